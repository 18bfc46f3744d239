#!/usr/bin/env bash
# Separate the jazz-flavoured real performances from the classical training folders (issue #7).
#
# Usage (repository root, after scripts/fetch_hannds.sh and scripts/export_music21.py):
#   scripts/jazz_check_set.sh [HANNDS=data/raw/hannds] [MUSIC21=data/music21] [OUT=data/raw]
# Writes OUT/hannds-classical/ (hannds train/ without the jazz-flavoured pieces) and
# OUT/jazz-check/ (those pieces and music21's Joplin rag). The check set is never trained on: it
# shows whether the genre classifier learned jazz or learned the `mma` renderer.
set -euo pipefail
HANNDS="${1:-data/raw/hannds}"
MUSIC21="${2:-data/music21}"
OUT="${3:-data/raw}"
JAZZY=(
    001-Joplin_MapleLeaveRag.mid
    002-Schulhoff-5EtudesDeJazz_No4uNo5.mid
    088-Schoenmehl-MelancholyReflections.mid
    108-Schoenmehl-DiscoVisit.mid
)
rm -rf "${OUT:?}/hannds-classical" "$OUT/jazz-check"
mkdir -p "$OUT/hannds-classical" "$OUT/jazz-check"
cp "$HANNDS"/train/*.mid "$OUT/hannds-classical/"
for f in "${JAZZY[@]}"; do
    mv "$OUT/hannds-classical/$f" "$OUT/jazz-check/$f"
done
if [ -f "$MUSIC21/piano/joplin_maple_leaf_rag.mid" ]; then
    mv "$MUSIC21/piano/joplin_maple_leaf_rag.mid" "$OUT/jazz-check/music21_joplin_maple_leaf_rag.mid"
fi
echo "classical: $(ls "$OUT/hannds-classical" | wc -l) files in $OUT/hannds-classical;" \
     "jazz check set: $(ls "$OUT/jazz-check" | wc -l) files in $OUT/jazz-check"
