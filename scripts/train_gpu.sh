#!/usr/bin/env bash
# Train the shipped model on one GPU: the Rust binary draws the §7 samples (all cores), PyTorch
# trains on them (scripts/train_torch.py). What models/improvnet-small/MODEL_CARD.md reports.
#
#   scripts/train_gpu.sh BIN DATA INIT OUT MINUTES [TRAIN_SAMPLES [TRAIN_TORCH_ARGS...]]
#   INIT: a model folder to fine-tune, or a config.json to train from scratch: the Rust trainer
#   writes its initial weights (`--copy-circuit --align-positions --steps 0`: a model that
#   already copies its corrupted input, with the labels' log-frequency output bias;
#   src/train/induction.rs).
#   TRAIN_TORCH_ARGS go to scripts/train_torch.py after the defaults (a later flag wins there),
#   e.g. `--no-dropout` or `--lr 1e-4` for a fine-tune.
#   e.g. scripts/train_gpu.sh target/release/improvnet data/cj-v1 models/improvnet-small/config.json runs/gpu-v2 9
#   SAMPLE_ARGS (environment) go to `dataset samples` for the training samples only (validation
#   stays uniform), e.g. the shipped model's mix and shifts:
#   SAMPLE_ARGS="--corruption-weight incorrect_transposition=6 --velocity-shift 3 --register-shift 12"
set -euo pipefail
bin=$1 data=$2 init=$3 out=$4 minutes=$5 count=${6:-1000000}
extra=("${@:7}")
read -r -a sample_args <<< "${SAMPLE_ARGS:-}"
tmp=${TMPDIR:-/tmp}
mkdir -p "$out"
t0=$(date +%s)
"$bin" dataset samples "$data" --count "$count" --seed 444 "${sample_args[@]}" \
  --out "$tmp/train.samples"
"$bin" dataset samples "$data" --valid --count 1800 --seed 7 --out "$tmp/valid.samples"
echo "samples drawn in $(( $(date +%s) - t0 )) s"
if [[ $init == *.json ]]; then
  "$bin" train --data "$data" --config "$init" --copy-circuit --align-positions --steps 0 \
    --valid-pieces 4 --out "$tmp/init-run"
  start=(--init "$tmp/init-run/final")
else
  start=(--init "$init")
fi
python3 scripts/train_torch.py "${start[@]}" --train "$tmp/train.samples" \
  --valid "$tmp/valid.samples" --minutes "$minutes" --out "$out" --batch 64 --lr 1e-3 \
  --warmup-steps 300 --eval-every 30 --save-every 60 "${extra[@]}"
