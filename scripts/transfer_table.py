#!/usr/bin/env python3
"""The style-transfer table of the jazz issue (spec §15.2), measured with `improvnet` itself.

For every held-out piece and corruption rate, `improvnet improvise --to jazz` runs the largest pass
count once with `--write-passes true`; `improvnet eval --classifier` then compares the original
with the piece after each requested pass. The table holds the means over pieces: P(jazz) (the
paper's headline), the self-similarity-matrix Pearson r with the original (structure kept), and
the classifier-free statistics (swing ratio of eighth pairs, share of 7th+ and 9th/13th
sonorities, pitch-class KL to the original). `--reference` files (e.g. the jazz validation set)
add a row with their own values, the direction the generated pieces should move in.

    python3 scripts/transfer_table.py --model models/improvnet-small \\
        --classifier models/genre-classifier-tiny --out runs/transfer-table \\
        data/raw/hannds/test/*.mid

Runs already on disk are reused (a long table resumes where it stopped). Writes OUT/table.md and
OUT/rows.csv (one row per piece, rate and pass), each atomically.
"""

import argparse
import csv
import os
import subprocess
import sys

# `improvnet eval` line prefixes -> (column, which of the two value columns to read)
METRICS = {
    "P(jazz)": "p_jazz",
    "ssm_pearson_r": "ssm_r",
    "swing_ratio": "swing",
    "chords_7th_plus": "chords_7th",
    "chords_9th_13th": "chords_9th_13th",
    "pitch_class_kl": "pc_kl",
}
COLUMNS = ["p_jazz", "ssm_r", "swing", "chords_7th", "chords_9th_13th", "pc_kl"]
HEADERS = ["mean P(jazz)", "SSM r", "swing ratio", "7th+ share", "9th/13th share", "PC KL"]


def run(cmd):
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"failed ({done.returncode}): {' '.join(cmd)}\n{done.stderr.strip()}")
    return done.stdout


def number(text):
    try:
        return float(text)
    except ValueError:
        return None  # "n/a": e.g. no eighth-note pairs to measure swing on


def evaluate(binary, original, generated, classifier):
    """{column: (original value, generated value)} from `improvnet eval`. Comparison metrics
    (SSM r, KL) have one value, reported as the generated one."""
    out = run([binary, "eval", original, generated, "--classifier", classifier])
    values = {}
    for line in out.splitlines():
        for prefix, column in METRICS.items():
            if line.startswith(prefix):
                fields = line[len(prefix):].split()
                # "swing_ratio (8ths)  0.564  0.609": skip the parenthesised unit
                fields = [f for f in fields if not f.startswith("(") and not f.endswith(")")]
                nums = [number(f) for f in fields]
                values[column] = (nums[0], nums[-1]) if len(nums) >= 2 else (None, nums[0])
    missing = [c for c in COLUMNS if c not in values]
    if missing:
        sys.exit(f"`improvnet eval {original} {generated}` printed no {missing}")
    return values


def mean(xs):
    xs = [x for x in xs if x is not None]
    return sum(xs) / len(xs) if xs else None


def fmt(x):
    return "n/a" if x is None else f"{x:.3f}"


def write_atomic(path, text):
    tmp = os.path.join(os.path.dirname(path), "." + os.path.basename(path) + ".tmp")
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("pieces", nargs="+", help="held-out classical MIDI files")
    ap.add_argument("--model", default="models/improvnet-small")
    ap.add_argument("--classifier", default="models/genre-classifier-tiny")
    ap.add_argument("--out", required=True)
    ap.add_argument("--bin", default="target/release/improvnet")
    ap.add_argument("--rates", default="0.25,0.5,1.0")
    ap.add_argument("--passes", default="1,2,5,10")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--to", default="jazz")
    ap.add_argument("--improvise-args", default="",
                    help="more `improvnet improvise` flags, e.g. \"--candidates 4 --fit segment\"")
    ap.add_argument("--reference", nargs="*", default=[],
                    help="files of the target genre: a row with their own statistics")
    args = ap.parse_args()
    rates = [float(r) for r in args.rates.split(",")]
    passes = sorted(int(p) for p in args.passes.split(","))
    for path in args.pieces + args.reference + [args.bin]:
        if not os.path.isfile(path):
            sys.exit(f"{path}: no such file")
    os.makedirs(args.out, exist_ok=True)

    rows = []
    originals = {}
    for piece in args.pieces:
        name = os.path.splitext(os.path.basename(piece))[0]
        for rate in rates:
            out = os.path.join(args.out, name, f"rate-{rate}")
            last = os.path.join(out, f"pass_{passes[-1]}", f"generated_{name}.mid")
            if not os.path.isfile(last):
                print(f"{name}: rate {rate}, {passes[-1]} passes", flush=True)
                run([args.bin, "improvise", piece, "--to", args.to, "--model", args.model,
                     "--passes", str(passes[-1]), "--rate", str(rate), "--seed", str(args.seed),
                     "--write-passes", "true", "--out", out] + args.improvise_args.split())
            original = os.path.join(out, f"original_{name}.mid")
            for k in passes:
                generated = os.path.join(out, f"pass_{k}", f"generated_{name}.mid")
                values = evaluate(args.bin, original, generated, args.classifier)
                originals[name] = {c: v[0] for c, v in values.items()}
                rows.append({"piece": name, "rate": rate, "pass": k,
                             **{c: v[1] for c, v in values.items()}})

    with open(os.path.join(args.out, ".rows.csv.tmp"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["piece", "rate", "pass"] + COLUMNS)
        w.writeheader()
        w.writerows(rows)
    os.replace(os.path.join(args.out, ".rows.csv.tmp"), os.path.join(args.out, "rows.csv"))

    lines = [f"Mean over {len(args.pieces)} held-out pieces; model `{args.model}`, classifier "
             f"`{args.classifier}`, `--to {args.to} --seed {args.seed}"
             + (f" {args.improvise_args}" if args.improvise_args else "") + "`.", "",
             "| | rate | passes | " + " | ".join(HEADERS) + " |",
             "|---|---:|---:|" + "---:|" * len(HEADERS)]
    orig = [mean(o[c] for o in originals.values()) for c in COLUMNS]
    orig[COLUMNS.index("ssm_r")], orig[COLUMNS.index("pc_kl")] = 1.0, 0.0
    lines.append("| original | | 0 | " + " | ".join(fmt(x) for x in orig) + " |")
    for rate in rates:
        for k in passes:
            sel = [r for r in rows if r["rate"] == rate and r["pass"] == k]
            lines.append(f"| generated | {rate} | {k} | "
                         + " | ".join(fmt(mean(r[c] for r in sel)) for c in COLUMNS) + " |")
    if args.reference:
        ref = [evaluate(args.bin, f, f, args.classifier) for f in args.reference]
        vals = [mean(v[c][0] for v in ref) for c in COLUMNS]
        vals[COLUMNS.index("ssm_r")] = vals[COLUMNS.index("pc_kl")] = None
        lines.append(f"| reference ({len(ref)} files) | | | "
                     + " | ".join(fmt(x) for x in vals) + " |")
    table = "\n".join(lines) + "\n"
    write_atomic(os.path.join(args.out, "table.md"), table)
    print(table, end="")


if __name__ == "__main__":
    main()
