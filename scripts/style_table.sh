#!/usr/bin/env bash
# Mean swing ratio and sonority shares (improvnet eval) of every third MIDI file, up to 40, in
# each folder given: the jazz issue's classifier-free reference values per data set.
# Usage (repository root, after cargo build --release): scripts/style_table.sh DIR...
for dir in "$@"; do
  ls "$dir"/*.mid | awk 'NR % 3 == 1' | head -40 | while read -r f; do
    ./target/release/improvnet eval "$f" "$f" 2>/dev/null | awk '/^swing_ratio/ {s=$3} /^chords_7th_plus/ {c=$2} /^chords_9th_13th/ {n=$2} END {print s, c, n}'
  done | awk -v d="$dir" '{ if ($1 != "n/a") {ss += $1; sn++}; if ($2 != "n/a") {cs += $2; cn++; ns += $3} } END { printf "%-32s files %3d  swing %.3f (%d)  7th+ %.3f  9th/13th %.3f\n", d, NR, ss/sn, sn, cs/cn, ns/cn }'
done
