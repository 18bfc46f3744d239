"""PyTorch eager reference for the model benches (same weights, same work as the Rust side).

Random-weight presets, one synthetic segment (`examples/model_bench`):

    cargo run --release --example model_bench -- small --export /tmp/bench_small
    python scripts/bench_model_pytorch.py /tmp/bench_small

Times one segment: encoder over the exported input, then sampled decoding (top-k 50, KV cache)
of exactly `dec_tokens` tokens (<E> and pad suppressed). Median of `runs` after one warm-up.

Real segments (`improvnet bench-model --export`), the shipped model:

    improvnet bench-model --rounds 1 --candidates 1 --export /tmp/segments.json
    python scripts/bench_model_pytorch.py --segments /tmp/segments.json [--limit N]

Refines nothing: for every segment the Rust run regenerated, runs HF's encoder over an input of
the same length and `generate` for exactly the tokens it decoded (top-k 50, KV cache), and prints
the per-segment median, p95, mean encoder and decode time in `bench-model`'s format. The
token ids are drawn at random: a dense model's work depends on the lengths, not the ids.
`scripts/bench_model.sh --real` runs both sides alternately.
"""
import json
import random
import resource
import statistics
import sys
import time

import torch
from transformers import EncoderDecoderModel

torch.set_num_threads(2)
BOS, EOS, PAD = 2303, 2304, 0


def timed(model, enc, n):
    """(encoder ms, encoder + generate ms) for one segment."""
    mask = torch.ones_like(enc)
    t0 = time.perf_counter()
    with torch.inference_mode():
        model.encoder(input_ids=enc, attention_mask=mask)
    t1 = time.perf_counter()
    with torch.inference_mode():
        out = model.generate(input_ids=enc, attention_mask=mask, do_sample=True, top_k=50,
                             top_p=1.0, temperature=1.0, max_new_tokens=n, min_new_tokens=n,
                             decoder_start_token_id=BOS, eos_token_id=EOS, pad_token_id=PAD,
                             suppress_tokens=[PAD], use_cache=True)
    t2 = time.perf_counter()
    assert out.shape[1] == n + 1, out.shape
    # generate runs the encoder itself: a segment is its generate call.
    return (t1 - t0) * 1e3, (t2 - t1) * 1e3


def peak_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def real_segments(path, limit):
    spec = json.load(open(path))
    model = EncoderDecoderModel.from_pretrained(spec["model"]).eval()
    segs = [s for s in spec["segments"] if s["tokens"] > 0]
    if limit:
        segs = segs[:limit]
    rng = random.Random(0)
    vocab = model.config.encoder.vocab_size
    timed(model, torch.tensor([[5] * 100]), 4)  # warm-up
    t_all = time.perf_counter()
    per, encs, decs = [], [], []
    for s in segs:
        enc = torch.tensor([[rng.randrange(5, vocab - 6) for _ in range(s["encoder_tokens"])]])
        e, seg = timed(model, enc, s["tokens"])
        per.append(seg)
        encs.append(e)
        decs.append(seg - e)
    wall = time.perf_counter() - t_all - sum(encs) / 1e3
    per.sort()
    p95 = per[min(len(per) - 1, int(0.95 * len(per)))]
    load = " ".join(open("/proc/loadavg").read().split()[:3])
    print(f"{'pytorch':<12} {wall:>6.1f} s | {len(per)} segments, median "
          f"{statistics.median(per):.1f} ms, p95 {p95:.1f} ms | mean encoder "
          f"{statistics.mean(encs):.1f} ms, decode {statistics.mean(decs):.1f} ms | 1.00 "
          f"tokens/forward | load {load} | peak {peak_mb():.0f} MB | torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads")


def preset(d, runs_override):
    inp = json.load(open(f"{d}/input.json"))
    model = EncoderDecoderModel.from_pretrained(d).eval()
    enc = torch.tensor([inp["enc_ids"]])
    n = inp["dec_tokens"]
    runs = runs_override or inp["runs"]
    params = sum(p.numel() for p in model.parameters())
    timed(model, enc, n)
    encs, seg = zip(*[timed(model, enc, n) for _ in range(runs)])
    seg_ms = statistics.median(seg)
    enc_ms = statistics.median(encs)
    print(f"pytorch {d}: params {params / 1e6:.2f} M | enc {enc.shape[1]} + dec {n} tokens | "
          f"segment {seg_ms:.1f} ms (encoder {enc_ms:.1f} ms, decode {seg_ms - enc_ms:.1f} ms) | "
          f"{n / ((seg_ms - enc_ms) / 1e3):.0f} tok/s | peak {peak_mb():.0f} MB | median of "
          f"{runs} | torch {torch.__version__}, {torch.get_num_threads()} threads")


if __name__ == "__main__":
    args = sys.argv[1:]
    if args and args[0] == "--segments":
        limit = int(args[args.index("--limit") + 1]) if "--limit" in args else 0
        real_segments(args[1], limit)
    else:
        preset(args[0], int(args[1]) if len(args) > 1 else None)
