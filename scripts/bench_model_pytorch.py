"""PyTorch eager reference for the model bench (same weights and inputs as the Rust bench).

    cargo run --release --example model_bench -- small --export /tmp/bench_small
    /work/pyenv/bin/python scripts/bench_model_pytorch.py /tmp/bench_small

Times one segment: encoder over the exported input, then sampled decoding (top-k 50, KV cache)
of exactly `dec_tokens` tokens (<E> and pad suppressed). Median of `runs` after one warm-up.
"""
import json
import resource
import statistics
import sys
import time

import torch
from transformers import EncoderDecoderModel

torch.set_num_threads(2)
d = sys.argv[1]
runs_override = int(sys.argv[2]) if len(sys.argv) > 2 else None
inp = json.load(open(f"{d}/input.json"))
model = EncoderDecoderModel.from_pretrained(d).eval()
enc = torch.tensor([inp["enc_ids"]])
n = inp["dec_tokens"]
runs = runs_override or inp["runs"]
params = sum(p.numel() for p in model.parameters())


def once():
    t0 = time.perf_counter()
    with torch.inference_mode():
        out = model.generate(input_ids=enc, attention_mask=torch.ones_like(enc), do_sample=True,
                             top_k=50, top_p=1.0, temperature=1.0, max_new_tokens=n,
                             min_new_tokens=n, decoder_start_token_id=2303, eos_token_id=2304,
                             pad_token_id=0, suppress_tokens=[0], use_cache=True)
    t1 = time.perf_counter()
    assert out.shape[1] == n + 1, out.shape
    with torch.inference_mode():
        model.encoder(input_ids=enc, attention_mask=torch.ones_like(enc))
    t2 = time.perf_counter()
    return (t1 - t0) * 1e3, (t2 - t1) * 1e3


once()
seg, encs = zip(*[once() for _ in range(runs)])
seg_ms = statistics.median(seg)
enc_ms = statistics.median(encs)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(f"pytorch {d}: params {params / 1e6:.2f} M | enc {enc.shape[1]} + dec {n} tokens | "
      f"segment {seg_ms:.1f} ms (encoder {enc_ms:.1f} ms, decode {seg_ms - enc_ms:.1f} ms) | "
      f"{n / ((seg_ms - enc_ms) / 1e3):.0f} tok/s | peak {peak:.0f} MB | median of {runs} "
      f"| torch {torch.__version__}, {torch.get_num_threads()} threads")
