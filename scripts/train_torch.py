#!/usr/bin/env python3
"""Train an ImprovNet model in PyTorch on a GPU, on the samples `improvnet dataset samples` wrote.

The Rust trainer (`improvnet train`) is the reference: it runs anywhere, resumes bit-identically and
is what the tests cover. This script is for the one thing 2 CPU cores cannot do in a session: many
thousand steps. It trains the very same model (HF `EncoderDecoderModel`, BERT2BERT, the tensor
names `improvnet` loads) on the very same §7 samples (the Rust code draws them), with the same loss
(cross-entropy on the non-pad labels, decoder input = labels shifted right behind `<S>`), AdamW
(weight decay 0.01 except biases and LayerNorms), linear warmup, cosine decay, clip 3.0, dropout
from the config (`--no-dropout`: none, as the shipped CPU recipe). The schedule runs on a
wall-clock budget (`--minutes`): the cosine decays over the time given, so a run of any length
ends at the low learning rate.

    improvnet dataset samples data/cj-v1 --count 600000 --out /tmp/train.samples
    improvnet dataset samples data/cj-v1 --valid --count 2000 --seed 7 --out /tmp/valid.samples
    python3 scripts/train_torch.py --init models/improvnet-small --train /tmp/train.samples \
        --valid /tmp/valid.samples --minutes 8 --out runs/torch-v1

Writes `OUT/model.safetensors` (f16 or f32, `--dtype`) + `OUT/config.json` every `--save-every`
seconds and at the end (atomically: temp file, then rename), and `OUT/log.csv` with training loss
and validation loss / token accuracy per corruption.
"""

import argparse
import json
import math
import os
import shutil
import struct
import sys
import time

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from transformers import BertConfig, EncoderDecoderConfig, EncoderDecoderModel

MAGIC = b"IMPVSMP1"
PAD, BOS = 0, 2303
CORRUPTIONS = ["pitch_velocity_mask", "onset_duration_mask", "whole_mask", "permute_pitches",
               "permute_pitch_velocity", "fragmentation", "incorrect_transposition", "skyline",
               "note_modification"]


def read_samples(path):
    """(enc offsets, enc lens, label offsets, label lens, corruption, ids) of a sample file."""
    raw = np.fromfile(path, dtype=np.uint8)
    if raw[:8].tobytes() != MAGIC:
        sys.exit(f"{path}: not a sample file (no IMPVSMP1 magic)")
    (count,) = struct.unpack("<I", raw[8:12].tobytes())
    enc_len = np.empty(count, np.int64)
    lab_len = np.empty(count, np.int64)
    corr = np.empty(count, np.int64)
    start = np.empty(count, np.int64)
    o = 12
    buf = raw.tobytes()  # each header's offset depends on every earlier sample: one pass
    for i in range(count):
        e, l, _genre, k = struct.unpack_from("<HHBB", buf, o)
        enc_len[i], lab_len[i], corr[i] = e, l, k
        start[i] = o + 6
        o += 6 + 2 * (e + l)
    if o != len(raw):
        sys.exit(f"{path}: {len(raw) - o} stray bytes after sample {count}")
    return dict(enc_len=enc_len, lab_len=lab_len, corr=corr, start=start, raw=raw)


def batch_tensors(data, idx, device):
    """Padded encoder ids, mask, decoder input and labels (-100 on padding) for samples `idx`."""
    # Lengths rounded up to 128: a few dozen shapes instead of thousands (each new shape costs
    # cuBLAS / attention kernel selection). Not to 64: with a mask, cuDNN's SDPA backward on
    # H100/H200 returns NaN for lengths = 64 mod 128 (pytorch/pytorch#196678, torch 2.11), which
    # is what turned a run here to NaN; `main` also switches that backend off.
    le = -(-int(data["enc_len"][idx].max()) // 128) * 128
    ll = -(-int(data["lab_len"][idx].max()) // 128) * 128
    enc = np.zeros((len(idx), le), np.int64)
    lab = np.full((len(idx), ll), -100, np.int64)
    dec = np.zeros((len(idx), ll), np.int64)
    raw = data["raw"]
    for r, i in enumerate(idx):
        s, e, l = int(data["start"][i]), int(data["enc_len"][i]), int(data["lab_len"][i])
        ids = raw[s:s + 2 * (e + l)].view("<u2").astype(np.int64)
        enc[r, :e] = ids[:e]
        lab[r, :l] = ids[e:]
        dec[r, 0] = BOS
        dec[r, 1:l] = ids[e:e + l - 1]
    t = lambda a: torch.from_numpy(a).to(device, non_blocking=True)
    enc, dec, lab = t(enc), t(dec), t(lab)
    return enc, (enc != PAD).long(), dec, lab


def batches(data, size, rng, bucket=64):
    """Endless shuffled batches; samples of similar encoder length share a batch (less padding)."""
    n = len(data["enc_len"])
    while True:
        order = rng.permutation(n)
        chunk = size * bucket
        for c in range(0, n, chunk):
            part = order[c:c + chunk]
            part = part[np.argsort(data["enc_len"][part], kind="stable")]
            groups = [part[i:i + size] for i in range(0, len(part), size)]
            for g in rng.permutation(len(groups)):
                yield groups[g]


def bert_config(c, dropout=True):
    keys = ["vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
            "intermediate_size", "max_position_embeddings", "type_vocab_size", "layer_norm_eps",
            "hidden_act", "hidden_dropout_prob", "attention_probs_dropout_prob", "is_decoder",
            "add_cross_attention", "pad_token_id"]
    cfg = BertConfig(**{k: c[k] for k in keys if k in c})
    cfg.tie_word_embeddings = False
    if not dropout:
        cfg.hidden_dropout_prob = cfg.attention_probs_dropout_prob = 0.0
    return cfg


def build_model(config_path, weights, dropout=True):
    """The model, and its config as read: `dropout=False` trains without dropout but saves the
    config's rates unchanged, as `improvnet train --no-dropout` does."""
    c = json.load(open(config_path))
    cfg = EncoderDecoderConfig.from_encoder_decoder_configs(
        bert_config(c["encoder"], dropout), bert_config(c["decoder"], dropout))
    cfg.decoder_start_token_id = BOS
    cfg.pad_token_id = PAD
    cfg.tie_word_embeddings = False
    model = EncoderDecoderModel(config=cfg)
    if weights:
        state = {k: v.float() for k, v in load_file(weights).items()}
        missing, unexpected = model.load_state_dict(state, strict=False)
        # position_ids / token_type_ids buffers are not stored; anything else must match.
        missing = [k for k in missing if not k.endswith(("position_ids", "token_type_ids"))]
        if missing or unexpected:
            sys.exit(f"{weights}: missing {missing[:5]}, unexpected {unexpected[:5]}")
    return model, c


def unigram_bias(data, vocab, samples=20000):
    """Log-frequencies of the labels (add-one smoothed), the output bias a model from scratch
    starts with: with HF's zero bias the encoder collapses to one vector within a few dozen
    steps (see `unigram_log_frequencies` in src/train/init.rs); the Rust trainer does the same."""
    counts = np.ones(vocab)
    raw = data["raw"]
    for i in range(min(samples, len(data["enc_len"]))):
        s, e, l = int(data["start"][i]), int(data["enc_len"][i]), int(data["lab_len"][i])
        np.add.at(counts, raw[s + 2 * e:s + 2 * (e + l)].view("<u2"), 1)
    return torch.tensor(np.log(counts / counts.sum()), dtype=torch.float32)


def save(model, out, config, dtype):
    if not all(torch.isfinite(p).all() for p in model.parameters()):
        sys.exit(f"refusing to save non-finite weights over {out}")
    os.makedirs(out, exist_ok=True)
    state = {k: v.detach().to("cpu", dtype).contiguous() for k, v in model.state_dict().items()
             if not k.endswith(("position_ids", "token_type_ids"))}
    tmp = os.path.join(out, ".model.safetensors.tmp")
    save_file(state, tmp, metadata={"format": "pt"})
    os.replace(tmp, os.path.join(out, "model.safetensors"))
    tmp = os.path.join(out, ".config.json.tmp")
    with open(tmp, "w") as f:
        json.dump(config, f, indent=2)
    os.replace(tmp, os.path.join(out, "config.json"))


@torch.no_grad()
def encoder_use(model, data, device, amp, size=16):
    """Two checks that the decoder reads the encoder at all (a collapsed encoder gives the same
    output for every position, and the decoder learns to ignore it):
    - spread: mean distance of the encoder's last-layer states from their per-sample mean,
      relative to their norm (about 0.84 at initialisation; near 0 when collapsed);
    - gap: validation loss with each sample given another sample's encoder input, minus the
      loss with its own (0 when the decoder ignores the encoder)."""
    model.eval()
    idx = np.arange(min(size, len(data["enc_len"])))
    enc, mask, dec, lab = batch_tensors(data, idx, device)
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
        h = model.encoder(input_ids=enc, attention_mask=mask).last_hidden_state.float()
        own = model(input_ids=enc, attention_mask=mask, decoder_input_ids=dec).logits.float()
        roll = lambda t: torch.roll(t, 1, dims=0)
        other = model(input_ids=roll(enc), attention_mask=roll(mask),
                      decoder_input_ids=dec).logits.float()
    spread = []
    for r in range(len(idx)):
        x = h[r, :int(mask[r].sum())]
        spread.append(((x - x.mean(0)).norm(dim=-1).mean() / x.norm(dim=-1).mean()).item())
    ce = lambda lo: torch.nn.functional.cross_entropy(lo.transpose(1, 2), lab,
                                                      ignore_index=-100).item()
    model.train()
    return float(np.mean(spread)), ce(other) - ce(own)


@torch.no_grad()
def evaluate(model, data, device, amp, size=64):
    """Teacher-forced loss and token accuracy on every sample of `data`, per corruption."""
    model.eval()
    n = len(data["enc_len"])
    nll = np.zeros(9)
    right = np.zeros(9)
    count = np.zeros(9)
    order = np.argsort(data["enc_len"], kind="stable")
    for b in range(0, n, size):
        idx = order[b:b + size]
        enc, mask, dec, lab = batch_tensors(data, idx, device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            logits = model(input_ids=enc, attention_mask=mask, decoder_input_ids=dec).logits
        logits = logits.float()
        keep = lab != -100
        tok_nll = torch.nn.functional.cross_entropy(
            logits.transpose(1, 2), lab.clamp(min=0), reduction="none") * keep
        ok = (logits.argmax(-1) == lab) & keep
        for r, i in enumerate(idx):
            k = int(data["corr"][i])
            nll[k] += tok_nll[r].sum().item()
            right[k] += ok[r].sum().item()
            count[k] += keep[r].sum().item()
    model.train()
    return nll, right, count


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--init", help="model folder to start from (config.json + model.safetensors)")
    ap.add_argument("--config", help="config.json for a model from scratch (no --init)")
    ap.add_argument("--train", required=True)
    ap.add_argument("--valid")
    ap.add_argument("--out", required=True)
    ap.add_argument("--minutes", type=float, required=True, help="training time budget")
    ap.add_argument("--max-steps", type=int, default=0, help="stop after N steps (0: time only)")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--min-lr-ratio", type=float, default=0.05)
    ap.add_argument("--warmup-steps", type=int, default=300)
    ap.add_argument("--weight-decay", type=float, default=0.01)
    ap.add_argument("--clip", type=float, default=3.0)
    ap.add_argument("--eval-every", type=float, default=60.0, help="seconds between validations")
    ap.add_argument("--save-every", type=float, default=120.0, help="seconds between saves")
    ap.add_argument("--dtype", choices=["f16", "f32"], default="f16")
    ap.add_argument("--dec-token-dropout", type=float, default=0.0,
                    help="share of decoder input tokens (after <S>) replaced by padding while "
                         "training: a weaker decoder language model has to read the encoder")
    ap.add_argument("--zero-output-bias", action="store_true",
                    help="from scratch, keep HF's zero output bias instead of the labels' "
                         "log-frequencies")
    ap.add_argument("--no-dropout", action="store_true",
                    help="train without dropout (the shipped CPU recipe); config.json keeps its rates")
    ap.add_argument("--seed", type=int, default=444)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--threads", type=int, default=0)
    args = ap.parse_args()
    if bool(args.init) == bool(args.config):
        sys.exit("give --init MODEL_DIR or --config config.json (one of them)")
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    device = torch.device(args.device)
    amp = device.type == "cuda"
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    # cuDNN's SDPA backward returns NaN grad_q with a mask at lengths = 64 mod 128 on H100/H200
    # (pytorch/pytorch#196678, a regression in torch 2.11): a run here with lengths padded to 64
    # turned to NaN from the first steps. The memory-efficient backend is exact on the same input.
    torch.backends.cuda.enable_cudnn_sdp(False)

    config_path = os.path.join(args.init, "config.json") if args.init else args.config
    weights = os.path.join(args.init, "model.safetensors") if args.init else None
    model, config = build_model(config_path, weights, dropout=not args.no_dropout)
    t0 = time.time()
    train = read_samples(args.train)
    if weights is None and not args.zero_output_bias:
        bias = unigram_bias(train, config["decoder"]["vocab_size"])
        with torch.no_grad():
            model.decoder.cls.predictions.bias.copy_(bias)
            if model.decoder.cls.predictions.decoder.bias is not None:
                model.decoder.cls.predictions.decoder.bias.copy_(bias)
    model.to(device).train()
    valid = read_samples(args.valid) if args.valid else None
    print(f"read {len(train['enc_len'])} training samples"
          + (f", {len(valid['enc_len'])} validation samples" if valid else "")
          + f" in {time.time() - t0:.1f} s; {sum(p.numel() for p in model.parameters())} "
          f"parameters on {device}", flush=True)

    params = list(model.named_parameters())
    no_decay = lambda n: n.endswith("bias") or "LayerNorm" in n
    groups = [{"params": [p for n, p in params if not no_decay(n)],
               "weight_decay": args.weight_decay},
              {"params": [p for n, p in params if no_decay(n)], "weight_decay": 0.0}]
    opt = torch.optim.AdamW(groups, lr=args.lr, betas=(0.9, 0.999),
                            **({"fused": True} if amp else {}))
    budget = args.minutes * 60.0
    rng = np.random.default_rng(args.seed)
    stream = batches(train, args.batch, rng)
    os.makedirs(args.out, exist_ok=True)
    log = open(os.path.join(args.out, "log.csv"), "w")
    log.write("step,seconds,samples,lr,train_loss,valid_loss,valid_acc,"
              + ",".join(f"{c}_acc" for c in CORRUPTIONS) + ",encoder_spread,encoder_gap\n")

    def validate(step, elapsed, samples, lr, train_loss):
        if valid is None:
            log.write(f"{step},{elapsed:.1f},{samples},{lr:.3e},{train_loss:.4f},,,"
                      + "," * 10 + "\n")
            log.flush()
            return
        nll, right, count = evaluate(model, valid, device, amp)
        spread, gap = encoder_use(model, valid, device, amp)
        per = right / np.maximum(count, 1)
        vl, va = nll.sum() / count.sum(), right.sum() / count.sum()
        log.write(f"{step},{elapsed:.1f},{samples},{lr:.3e},{train_loss:.4f},{vl:.4f},{va:.4f},"
                  + ",".join(f"{x:.4f}" for x in per) + f",{spread:.4f},{gap:.4f}\n")
        log.flush()
        print(f"step {step} {elapsed:.0f}s valid loss {vl:.3f} acc {va:.3f} encoder spread "
              f"{spread:.3f} gap {gap:.3f} | "
              + " ".join(f"{c[:8]} {x:.2f}" for c, x in zip(CORRUPTIONS, per)), flush=True)

    start = time.time()
    step, samples = 0, 0
    last_eval = last_save = start
    running = []
    lr = 0.0
    skipped = 0
    while True:
        elapsed = time.time() - start
        if elapsed >= budget or (args.max_steps and step >= args.max_steps):
            break
        progress = min(elapsed / budget, 1.0)
        if args.max_steps:
            progress = max(progress, step / args.max_steps)
        warm = min(1.0, (step + 1) / max(args.warmup_steps, 1))
        cosine = args.min_lr_ratio + (1 - args.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))
        lr = args.lr * warm * cosine
        for g in opt.param_groups:
            g["lr"] = lr
        idx = next(stream)
        enc, mask, dec, lab = batch_tensors(train, idx, device)
        if args.dec_token_dropout > 0:
            drop = torch.rand(dec.shape, device=device) < args.dec_token_dropout
            drop[:, 0] = False
            dec = dec.masked_fill(drop, PAD)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            logits = model(input_ids=enc, attention_mask=mask, decoder_input_ids=dec).logits
        loss = torch.nn.functional.cross_entropy(logits.float().transpose(1, 2), lab,
                                                 ignore_index=-100)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), args.clip)
        # A non-finite loss or gradient skips the update (one sync per step: cheap next to the
        # cost of a run whose weights turn to NaN); many in a row end the run.
        if not (torch.isfinite(loss) and torch.isfinite(norm)).item():
            skipped += 1
            if skipped >= 20:
                sys.exit(f"step {step}: {skipped} non-finite losses or gradients; stopping "
                         f"(the last saved weights in {args.out} are from before)")
            continue
        skipped = 0
        opt.step()
        step += 1
        samples += len(idx)
        running.append(loss.detach())
        now = time.time()
        if now - last_eval >= args.eval_every:
            tl = torch.stack(running).mean().item()
            running = []
            print(f"step {step} {now - start:.0f}s {samples / (now - start):.0f} samples/s "
                  f"lr {lr:.2e} train loss {tl:.3f}", flush=True)
            validate(step, now - start, samples, lr, tl)
            last_eval = time.time()
        if now - last_save >= args.save_every:
            save(model, args.out, config, torch.float16 if args.dtype == "f16" else torch.float32)
            last_save = time.time()
    tl = torch.stack(running).mean().item() if running else float("nan")
    elapsed = time.time() - start
    print(f"done: {step} steps, {samples} samples in {elapsed:.0f} s "
          f"({samples / max(elapsed, 1e-9):.0f} samples/s)", flush=True)
    validate(step, elapsed, samples, lr, tl)
    save(model, args.out, config, torch.float16 if args.dtype == "f16" else torch.float32)


if __name__ == "__main__":
    main()
