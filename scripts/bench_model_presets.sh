#!/usr/bin/env bash
# Candidate `small` shapes, Rust only, f32 and the opt-in f16 decoder, 300 and 150 decoded tokens.
#   scripts/bench_model_presets.sh [RUNS]
set -euo pipefail
RUNS=${1:-3}
cargo build --release --example model_bench
B=target/release/examples/model_bench
for shape in 4,4,256,4,1024 4,2,256,4,1024 3,2,256,4,1024 4,2,192,4,768 4,4,128,4,512 4,2,128,4,512; do
  for dec in 300 150; do
    for mode in "" --f16; do
      echo "load: $(cut -d' ' -f1 /proc/loadavg)"
      $B --size2 "$shape" --runs "$RUNS" --dec "$dec" $mode
    done
  done
done
