#!/usr/bin/env python3
"""Export scores from the music21 corpus as humanized solo-piano MIDI files (classical, scores).

Run from the repository root with a Python that has music21 (pip install music21==10.5.1):

    /work/pyenv/bin/python scripts/export_music21.py [--out data/music21] [--seed 1] [--jobs 2]

What is exported (only `.mxl` sources: the corpus licence reserves derivative electronic formats
for some kern files, see docs/training.md):
  chorales/  Bach chorales (bach/*.mxl)
  quartets/  string quartet movements (Beethoven, Mozart, Haydn, Schumann op. 41), all parts merged
             into one piano part
  piano/     the few keyboard pieces (Mozart K. 545, Joplin, Clara Schumann, C. P. E. Bach,
             Schoenberg op. 19)

Every score: repeats expanded (the unexpanded score when expansion fails), ties merged, all parts
merged onto program 0 (acoustic grand piano), channel 1. Humanization, seeded per file from
`--seed` and the corpus path (so one file's output does not depend on the others):
  - tempo: the score's marks, or a per-group default when it has none, scaled by a per-piece
    factor in [0.92, 1.08], with a slow rubato (sinusoidal time warp, +-120 ms, 6-14 s period);
  - onsets: independent Gaussian jitter, sd 10 ms;
  - velocities: per-piece level, slow phrase swell, per-note sd 6, top note of a chord +6;
  - durations: per-note legato factor in [0.85, 1.0], at least 30 ms.
Pitches outside the 88 keys are moved by octaves into 21..108. Overlapping notes of the same pitch
(unisons between parts) are cut at the later onset, and exact doubles dropped.

The output folder gets one .mid per score and export.json (source, group, expanded, notes,
seconds). Rerunning with the same seed and music21 version gives identical files; --resume skips
the scores already exported (an interrupted run). export.json describes the last run only.
Speed: music21's expandRepeats and stripTies dominate (about 15 s CPU for a short quartet
movement); the chorales take about 0.6 s each, the 60 quartet movements far longer.
"""

import argparse
import json
import math
import os
import random
import struct
import sys
import zlib
from concurrent.futures import ProcessPoolExecutor

TPQ = 480
US_PER_BEAT = 500_000  # 120 bpm: one tick = 1/960 s
TICKS_PER_SECOND = TPQ * 1_000_000 / US_PER_BEAT

QUARTETS = ("beethoven/", "mozart/k155", "mozart/k156", "mozart/k458", "mozart/k80", "haydn/",
            "schumann_robert/opus41")
PIANO = ("mozart/k545", "joplin/", "schumann_clara/polonaise", "cpebach/", "schoenberg/opus19")
# Quarter-note tempo when a score has no metronome mark.
DEFAULT_QPM = {"chorales": (66, 84), "quartets": (96, 120), "piano": (90, 112)}


def group_of(rel):
    if rel.startswith("bach/"):
        return "chorales"
    if rel.startswith(QUARTETS):
        return "quartets"
    if rel.startswith(PIANO):
        return "piano"
    return None


def sources():
    from music21 import corpus

    out = []
    for p in corpus.getCorePaths():
        p = str(p)
        if not p.endswith(".mxl") or "corpus/" not in p:
            continue
        rel = p.split("corpus/", 1)[1]
        group = group_of(rel)
        if group:
            out.append((rel, p, group))
    out.sort()
    return out


def vlq(n):
    out = [n & 0x7F]
    n >>= 7
    while n:
        out.append(0x80 | (n & 0x7F))
        n >>= 7
    return bytes(reversed(out))


def smf(notes):
    """notes: (onset_s, dur_s, pitch, velocity) -> format-0 MIDI bytes, piano on channel 1."""
    events = []  # (tick, order, bytes): note-offs (0) before note-ons (1) at the same tick
    for onset, dur, pitch, vel in notes:
        a = int(round(onset * TICKS_PER_SECOND))
        b = max(a + 1, int(round((onset + dur) * TICKS_PER_SECOND)))
        events.append((a, 1, bytes([0x90, pitch, vel])))
        events.append((b, 0, bytes([0x80, pitch, 64])))
    events.sort(key=lambda e: (e[0], e[1]))
    track = bytearray()
    track += vlq(0) + b"\xff\x51\x03" + US_PER_BEAT.to_bytes(3, "big")
    track += vlq(0) + bytes([0xC0, 0])
    tick = 0
    for t, _, data in events:
        track += vlq(t - tick) + data
        tick = t
    track += vlq(0) + b"\xff\x2f\x00"
    return (b"MThd" + struct.pack(">IHHH", 6, 0, 1, TPQ)
            + b"MTrk" + struct.pack(">I", len(track)) + bytes(track))


def score_notes(score, rng, group):
    """(onset_s, dur_s, pitch) of every sounding note, on the score's own tempo map."""
    from music21 import chord, note, tempo

    flat = score.stripTies().flatten()
    if not flat.getElementsByClass(tempo.MetronomeMark):
        lo, hi = DEFAULT_QPM[group]
        flat.insert(0, tempo.MetronomeMark(number=rng.uniform(lo, hi)))
    out = []
    for entry in flat.secondsMap:
        el = entry["element"]
        if not isinstance(el, (note.Note, chord.Chord)) or el.duration.isGrace:
            continue
        dur = entry["durationSeconds"]
        if dur <= 0:
            continue
        for p in el.pitches:
            midi = p.midi
            while midi < 21:
                midi += 12
            while midi > 108:
                midi -= 12
            out.append((entry["offsetSeconds"], dur, midi))
    return out


def humanize(notes, rng):
    """Seeded rubato, onset jitter, velocities and legato; returns (onset, dur, pitch, vel)."""
    factor = rng.uniform(0.92, 1.08)
    amp = 0.12
    period = rng.uniform(6.0, 14.0)
    phase = rng.uniform(0, 2 * math.pi)

    def warp(t):
        # Monotone: d/dt = factor + amp*2pi/period*cos(...) >= 0.92 - 0.126 > 0.
        return factor * t + amp * (math.sin(2 * math.pi * t / period + phase) - math.sin(phase))

    level = rng.uniform(58, 80)
    swell_period = rng.uniform(8.0, 20.0)
    top = {}
    for onset, _, pitch in notes:
        key = round(onset, 3)
        top[key] = max(top.get(key, 0), pitch)
    out = []
    for onset, dur, pitch in sorted(notes):
        start = warp(onset)
        end = warp(onset + dur)
        start = max(0.0, start + rng.gauss(0, 0.010))
        length = max(0.030, (end - warp(onset)) * rng.uniform(0.85, 1.0))
        vel = level + 10 * math.sin(2 * math.pi * onset / swell_period) + rng.gauss(0, 6)
        if top[round(onset, 3)] == pitch:
            vel += 6
        out.append((start, length, pitch, int(min(110, max(25, round(vel))))))
    return resolve_unisons(out)


def resolve_unisons(notes):
    """Cut a note where the next one of the same pitch starts; drop exact doubles."""
    by_pitch = {}
    for n in notes:
        by_pitch.setdefault(n[2], []).append(n)
    out = []
    for pitch, ns in by_pitch.items():
        ns.sort()
        kept = []
        for n in ns:
            if kept and n[0] - kept[-1][0] < 0.020:
                # Same onset (two parts in unison): keep one, the longer and louder.
                prev = kept[-1]
                kept[-1] = (prev[0], max(prev[1], n[1]), pitch, max(prev[3], n[3]))
                continue
            if kept and kept[-1][0] + kept[-1][1] > n[0] - 0.005:
                prev = kept[-1]
                kept[-1] = (prev[0], max(0.010, n[0] - 0.005 - prev[0]), pitch, prev[3])
            kept.append(n)
        out.extend(kept)
    out.sort()
    return out


def export_one(job):
    rel, path, group, out_dir, seed, resume = job
    from music21 import converter

    rng = random.Random((seed << 32) ^ zlib.crc32(rel.encode()))
    name = rel[:-len(".mxl")].replace("/", "_") + ".mid"
    dest = os.path.join(out_dir, group, name)
    if resume and os.path.exists(dest):
        # Same seed, same music21: the file would come out identical.
        return {"source": rel, "group": group, "file": os.path.relpath(dest, out_dir),
                "resumed": True}
    try:
        score = converter.parse(path)
    except Exception as e:  # noqa: BLE001 - any parse failure is reported, not fatal
        return {"source": rel, "group": group, "error": f"parse failed: {e}"}
    expanded = True
    try:
        score = score.expandRepeats()
    except Exception:  # noqa: BLE001 - music21 raises several types here
        expanded = False
    try:
        notes = humanize(score_notes(score, rng, group), rng)
    except Exception as e:  # noqa: BLE001
        return {"source": rel, "group": group, "error": f"export failed: {e}"}
    if not notes:
        return {"source": rel, "group": group, "error": "no notes"}
    data = smf(notes)
    tmp = dest + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, dest)
    return {
        "source": rel,
        "group": group,
        "file": os.path.relpath(dest, out_dir),
        "expanded": expanded,
        "notes": len(notes),
        "seconds": round(max(o + d for o, d, _, _ in notes), 3),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="data/music21")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--limit", type=int, default=0, help="first N sources only (for a quick try)")
    ap.add_argument("--groups", default="chorales,quartets,piano",
                    help="comma-separated subset of: chorales, quartets, piano")
    ap.add_argument("--resume", action="store_true",
                    help="skip scores whose .mid already exists (an interrupted run, same seed)")
    args = ap.parse_args()

    groups = [g for g in args.groups.split(",") if g]
    unknown = set(groups) - set(DEFAULT_QPM)
    if unknown:
        ap.error(f"unknown group(s) {sorted(unknown)}; valid: {', '.join(DEFAULT_QPM)}")
    srcs = [s for s in sources() if s[2] in groups]
    if args.limit:
        srcs = srcs[: args.limit]
    for g in DEFAULT_QPM:
        os.makedirs(os.path.join(args.out, g), exist_ok=True)
    jobs = [(rel, path, group, args.out, args.seed, args.resume) for rel, path, group in srcs]
    with ProcessPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        results = list(pool.map(export_one, jobs, chunksize=4))
    ok = [r for r in results if "error" not in r]
    failed = [r for r in results if "error" in r]
    import music21

    summary = {
        "music21": music21.__version__,
        "seed": args.seed,
        "exported": len(ok),
        "failed": failed,
        "files": results,
    }
    with open(os.path.join(args.out, "export.json"), "w") as f:
        json.dump(summary, f, indent=1)
    for g in groups:
        rs = [r for r in ok if r["group"] == g and not r.get("resumed")]
        resumed = sum(1 for r in ok if r["group"] == g and r.get("resumed"))
        print(f"{g:9} {len(rs):4} files {sum(r['seconds'] for r in rs) / 3600:6.2f} h "
              f"{sum(r['notes'] for r in rs):8} notes "
              f"({sum(1 for r in rs if not r['expanded'])} unexpanded, {resumed} kept from before)")
    for r in failed:
        print(f"failed: {r['source']}: {r['error']}", file=sys.stderr)


if __name__ == "__main__":
    main()
