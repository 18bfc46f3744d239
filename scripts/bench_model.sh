#!/usr/bin/env bash
# Rust vs PyTorch eager, same weights and the same work, alternated A B A B. Needs a Python with
# torch and transformers (PYTHON, default python3).
#
#   scripts/bench_model.sh --real [ROUNDS]
#       the shipped model on the README's piece: `improvnet bench-model` (plain and speculative)
#       and, for the same segments (encoder lengths, decoded tokens), HF `generate`;
#   scripts/bench_model.sh [RUNS] [PT_RUNS] [DEC_TOKENS]
#       the small and base presets with random weights, one synthetic 1,000-token segment
#       (`examples/model_bench`, which also exports the weights for PyTorch).
#
# Prints the load average with each measurement: on a shared 2-core machine, compare only rows
# of one run.
set -euo pipefail
PY=${PYTHON:-python3}
if [ "${1:-}" = "--real" ]; then
  ROUNDS=${2:-2}
  cargo build --release
  SEGS=/tmp/improvnet_bench_segments.json
  for _ in $(seq "$ROUNDS"); do
    target/release/improvnet bench-model --rounds 1 --candidates 1 --export "$SEGS" |
      grep -E "plain|drafted|written"
    "$PY" scripts/bench_model_pytorch.py --segments "$SEGS" 2>&1 | grep '^pytorch'
  done
  exit 0
fi
RUNS=${1:-5}
PT_RUNS=${2:-3}
DEC=${3:-300}
cargo build --release --example model_bench
for cfg in small base; do
  uptime
  target/release/examples/model_bench "$cfg" --runs "$RUNS" --dec "$DEC" --export "/tmp/improvnet_bench_$cfg"
  uptime
  "$PY" scripts/bench_model_pytorch.py "/tmp/improvnet_bench_$cfg" "$PT_RUNS" 2>&1 | grep '^pytorch'
done
