#!/usr/bin/env python3
"""The training step of `improvnet bench-train`, in PyTorch, on the very same batches.

    target/release/improvnet bench-train --data data/NAME --config small --batch 4 --steps 5 \
        --threads 2 --dump /tmp/bench_batches.json
    /work/pyenv/bin/python scripts/bench_train_pytorch.py /tmp/bench_batches.json --threads 2

Same model shape (HF EncoderDecoderModel from the dumped config.json fields), same work per step:
each sample of the batch alone (micro-batch 1, no padding), dropout 0.1 on, the masked
cross-entropy summed over the batch's label positions, gradients accumulated, global-norm clip 3.0,
AdamW (weight decay 0.01). Prints the median ms/step, samples/s and tokens/s (non-pad encoder +
decoder ids, as the Rust bench counts them). One untimed warm-up step first.
"""

import argparse
import json
import statistics
import time

import torch
from transformers import BertConfig, EncoderDecoderConfig, EncoderDecoderModel


def bert_config(c):
    keys = ["vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
            "intermediate_size", "max_position_embeddings", "type_vocab_size", "layer_norm_eps",
            "hidden_dropout_prob", "attention_probs_dropout_prob", "is_decoder",
            "add_cross_attention", "pad_token_id"]
    cfg = BertConfig(**{k: c[k] for k in keys if k in c})
    cfg.tie_word_embeddings = False
    return cfg


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dump")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    d = json.load(open(args.dump))
    cfg = EncoderDecoderConfig.from_encoder_decoder_configs(
        bert_config(d["config"]["encoder"]), bert_config(d["config"]["decoder"]))
    cfg.decoder_start_token_id = 2303
    cfg.pad_token_id = 0
    cfg.tie_word_embeddings = False
    model = EncoderDecoderModel(config=cfg)
    model.train()
    decay = [p for n, p in model.named_parameters() if not (n.endswith("bias") or "LayerNorm" in n)]
    no_decay = [p for n, p in model.named_parameters() if n.endswith("bias") or "LayerNorm" in n]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01},
                             {"params": no_decay, "weight_decay": 0.0}], lr=1e-4)
    params = sum(p.numel() for p in model.parameters())

    def rows(b):
        le, ld = b["enc_len"], b["dec_len"]
        for i in range(b["batch"]):
            m = b["enc_mask"][i * le:(i + 1) * le]
            n_enc = sum(1 for x in m if x)
            lab = b["labels"][i * ld:(i + 1) * ld]
            n_dec = sum(1 for x in lab if x)
            yield (b["enc_ids"][i * le:i * le + n_enc], b["dec_ids"][i * ld:i * ld + n_dec],
                   lab[:n_dec])

    def step(b):
        t0 = time.perf_counter()
        samples = list(rows(b))
        denom = sum(len(l) for _, _, l in samples)
        tokens = sum(len(e) + len(l) for e, _, l in samples)
        opt.zero_grad(set_to_none=True)
        for enc, dec, lab in samples:
            enc = torch.tensor([enc])
            out = model(input_ids=enc, attention_mask=torch.ones_like(enc),
                        decoder_input_ids=torch.tensor([dec]))
            loss = torch.nn.functional.cross_entropy(
                out.logits[0], torch.tensor(lab), reduction="sum") / denom
            loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 3.0)
        opt.step()
        return (time.perf_counter() - t0) * 1e3, len(samples), tokens

    batches = d["batches"]
    step(batches[0])  # warm-up
    ms, samples, tokens = [], 0, 0
    for b in batches:
        t, s, k = step(b)
        ms.append(t)
        samples += s
        tokens += k
    total = sum(ms) / 1e3
    print(f"pytorch {torch.__version__}, {params} params, {args.threads} threads, "
          f"{len(ms)} timed steps")
    print(f"median {statistics.median(ms):.0f} ms/step (min {min(ms):.0f}, max {max(ms):.0f})")
    print(f"{samples / total:.2f} samples/s, {tokens / total:.0f} tokens/s")


if __name__ == "__main__":
    main()
