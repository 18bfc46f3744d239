#!/usr/bin/env python3
"""Decodes the probe channel of an ImprovNet check export and reports on it.

analyze.py EXPORT.wav [--delay 2] [--seg 5] [--rate 48000]
  prints per 5-second window: input notes, output notes, whether the output equals the input
  shifted by `delay` windows; and a final line "refined n/N".
analyze.py --events EXPORT.wav   dumps the decoded events (tag time note on vel), for diffs.
The right channel holds one sample per MIDI note event: value = (code + 1) / 65536,
code = tag * 32768 + on * 16384 + note * 128 + velocity (see improvnet_pattern.lua).
"""
import subprocess, sys, argparse
import numpy as np


def events(path):
    raw = subprocess.run(["sox", path, "-t", "f32", "-c", "1", "-", "remix", "2"],
                         check=True, capture_output=True).stdout
    r = np.frombuffer(raw, dtype="<f4")
    idx = np.nonzero(r)[0]
    out = []
    for i in idx:
        c = int(round(float(r[i]) * 65536)) - 1
        tag, on, note, vel = c >> 15, (c >> 14) & 1, (c >> 7) & 127, c & 127
        out.append((tag, int(i), note, on, vel))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("wav")
    ap.add_argument("--delay", type=int, default=2)
    ap.add_argument("--seg", type=float, default=5.0)
    ap.add_argument("--rate", type=int, default=48000)
    ap.add_argument("--events", action="store_true")
    a = ap.parse_args()
    ev = events(a.wav)
    if a.events:
        for e in ev:
            print(*e)
        return
    seg = int(a.seg * a.rate)
    total = int(subprocess.run(["soxi", "-s", a.wav], capture_output=True, text=True).stdout)
    nwin = total // seg
    ons = {0: [[] for _ in range(nwin + 1)], 1: [[] for _ in range(nwin + 1)]}
    for tag, t, note, on, vel in ev:
        if on:
            ons[tag][t // seg].append((t % seg, note, vel))
    refined = 0
    n = 0
    for w in range(nwin):
        out = sorted(ons[1][w])
        line = f"window {w:2d} ({w * a.seg:5.1f}-{(w + 1) * a.seg:5.1f} s): out {len(out):3d} notes"
        if w >= a.delay:
            src = sorted(ons[0][w - a.delay])
            # "same": the same (note, velocity) pairs at the same times, give or take a few
            # samples (events at one sample are serialized onto consecutive samples).
            same = len(out) == len(src) and all(
                a[1:] == b[1:] and abs(a[0] - b[0]) <= 16
                for a, b in zip(sorted(out, key=lambda x: (x[1], x[2], x[0])),
                                sorted(src, key=lambda x: (x[1], x[2], x[0]))))
            pitches_same = sorted(x[1] for x in out) == sorted(x[1] for x in src)
            n += 1
            refined += (not same) and len(out) > 0
            line += (f", input window {w - a.delay} had {len(src)}: "
                     f"{'IDENTICAL (not refined)' if same else ('refined' if out else 'EMPTY (not refined)')}"
                     f"{'' if same else (', same pitches' if pitches_same else ', pitches differ')}")
        print(line)
    print(f"input note-ons {sum(len(x) for x in ons[0])}, output note-ons {sum(len(x) for x in ons[1])}")
    print(f"refined {refined}/{n}")


if __name__ == "__main__":
    main()
