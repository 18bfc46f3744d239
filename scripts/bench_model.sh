#!/usr/bin/env bash
# Rust vs PyTorch model bench, same weights and inputs, one fresh process per config.
#   scripts/bench_model.sh [PYTHON] [RUNS] [PT_RUNS] [DEC_TOKENS]
# Prints the load average before each measurement: on a 2-core machine, anything above ~0.5
# makes the numbers (especially the memory-bound decoder's) unreliable.
set -euo pipefail
PY=${1:-/work/pyenv/bin/python}
RUNS=${2:-5}
PT_RUNS=${3:-3}
DEC=${4:-300}
cargo build --release --example model_bench
for cfg in small base; do
  uptime
  target/release/examples/model_bench "$cfg" --runs "$RUNS" --dec "$DEC" --export "/tmp/improvnet_bench_$cfg"
  uptime
  target/release/examples/model_bench "$cfg" --runs "$RUNS" --dec "$DEC" --f16
  uptime
  "$PY" scripts/bench_model_pytorch.py "/tmp/improvnet_bench_$cfg" "$PT_RUNS" 2>&1 | grep '^pytorch'
done
