#!/usr/bin/env python3
"""Render generated chord charts to humanized solo-piano jazz MIDI (issue #7, part 2).

Run from the repository root with a Python that has mido (pip install mido), after
`improvnet corpus charts --out CHARTS`:

    python3 scripts/render_jazz.py --charts CHARTS --out data/jazz-gen [--seed 1] [--bass fold]

For every CHARTS/chart_NNNNN.mma:
  1. Debian's `mma` renders it (installed with `sudo apt-get install -y mma` when missing and
     --install is given); the song files pin mma's own random seed, so renders repeat exactly.
  2. Only what a pianist would play is kept: the piano-family tracks (programs 0-7, not channel
     10). The walking bass is folded into the left hand (`--bass fold`, the default: moved up by
     octaves into 28..55, E1 to G3) or dropped (`--bass drop`); drums and other instruments go.
  3. The right-hand line CHARTS/chart_NNNNN.melody.mid (time 0 = bar 1, beat 1, as mma's) is
     laid over the comping.
  4. The *same* seeded humanization as the classical score exports (`export_music21.humanize`:
     rubato warp, onset jitter, velocity level/swell/top-note accent, legato) is applied, so that
     "expressive vs quantized" cannot become the genre signal.
Writes OUT/chart_NNNNN.mid (format 0, piano, channel 1) and OUT/render.json (per chart: notes,
seconds, notes kept per source, or the error). Deterministic in --seed and the chart files.
"""

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from export_music21 import humanize, smf  # noqa: E402  (same humanization and writer)

PIANO_PROGRAMS = range(0, 8)
BASS_PROGRAMS = range(32, 40)
DRUM_CHANNEL = 9
# Left-hand register a pianist walks a bass line in: E1..G3.
BASS_LOW, BASS_HIGH = 28, 55


def notes_of(path):
    """(onset_s, dur_s, pitch, program, channel) of every note of a MIDI file, in seconds."""
    import mido

    mid = mido.MidiFile(path)
    program = {}
    open_notes = {}
    out = []
    now = 0.0
    for msg in mid:  # merged tracks, delta times in seconds (tempo map applied)
        now += msg.time
        if msg.type == "program_change":
            program[msg.channel] = msg.program
        elif msg.type == "note_on" and msg.velocity > 0:
            open_notes.setdefault((msg.channel, msg.note), []).append(now)
        elif msg.type in ("note_off", "note_on"):
            starts = open_notes.get((msg.channel, msg.note))
            if starts:
                start = starts.pop(0)
                if now > start:
                    out.append((start, now - start, msg.note, program.get(msg.channel, 0),
                                msg.channel))
    return out


def fold_bass(pitch):
    while pitch < BASS_LOW:
        pitch += 12
    while pitch > BASS_HIGH:
        pitch -= 12
    return pitch


def pianist_notes(comping, melody, bass):
    """The notes a solo pianist plays: piano comping, the bass folded or dropped, the melody."""
    kept = {"piano": 0, "bass": 0, "melody": 0, "dropped": 0}
    notes = []
    for onset, dur, pitch, program, channel in comping:
        if channel == DRUM_CHANNEL:
            kept["dropped"] += 1
        elif program in PIANO_PROGRAMS:
            notes.append((onset, dur, pitch))
            kept["piano"] += 1
        elif program in BASS_PROGRAMS and bass == "fold":
            notes.append((onset, dur, fold_bass(pitch)))
            kept["bass"] += 1
        else:
            kept["dropped"] += 1
    for onset, dur, pitch, _, _ in melody:
        notes.append((onset, dur, pitch))
        kept["melody"] += 1
    notes = [(o, d, min(108, max(21, p))) for o, d, p in notes]
    return notes, kept


def render_one(job):
    mma_file, charts, out_dir, seed, bass, mma = job
    stem = os.path.basename(mma_file)[: -len(".mma")]
    dest = os.path.join(out_dir, stem + ".mid")
    with tempfile.TemporaryDirectory() as tmp:
        raw = os.path.join(tmp, stem + ".mid")
        run = subprocess.run([mma, "-f", raw, mma_file], capture_output=True, text=True)
        if run.returncode != 0 or not os.path.exists(raw):
            return {"chart": stem, "error": f"mma failed: {run.stderr.strip()[-300:]}"}
        comping = notes_of(raw)
    melody_path = os.path.join(charts, stem + ".melody.mid")
    melody = notes_of(melody_path) if os.path.exists(melody_path) else []
    notes, kept = pianist_notes(comping, melody, bass)
    if not notes:
        return {"chart": stem, "error": "no piano notes"}
    rng = random.Random((seed << 32) ^ zlib.crc32(stem.encode()))
    notes = humanize(notes, rng)
    tmp_dest = dest + ".tmp"
    with open(tmp_dest, "wb") as f:
        f.write(smf(notes))
    os.replace(tmp_dest, dest)
    return {
        "chart": stem,
        "file": os.path.basename(dest),
        "notes": len(notes),
        "seconds": round(max(o + d for o, d, _, _ in notes), 3),
        "kept": kept,
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--charts", required=True, help="folder written by `improvnet corpus charts`")
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--bass", choices=("fold", "drop"), default="fold")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--mma", default="mma", help="the mma executable")
    ap.add_argument("--install", action="store_true", help="apt-get install mma when missing")
    a = ap.parse_args()

    if shutil.which(a.mma) is None:
        if not a.install:
            sys.exit(f"{a.mma}: not found; install it (sudo apt-get install -y mma) or pass --install")
        sudo = [] if os.geteuid() == 0 else ["sudo"]
        subprocess.run(sudo + ["apt-get", "install", "-y", "mma"], check=True)
    files = sorted(os.path.join(a.charts, f) for f in os.listdir(a.charts) if f.endswith(".mma"))
    if not files:
        sys.exit(f"{a.charts}: no .mma files (run `improvnet corpus charts --out {a.charts}`)")
    os.makedirs(a.out, exist_ok=True)
    jobs = [(f, a.charts, a.out, a.seed, a.bass, a.mma) for f in files]
    if a.jobs > 1:
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(a.jobs) as pool:
            results = list(pool.map(render_one, jobs))
    else:
        results = [render_one(j) for j in jobs]
    errors = [r for r in results if "error" in r]
    ok = [r for r in results if "error" not in r]
    hours = sum(r["seconds"] for r in ok) / 3600
    notes = sum(r["notes"] for r in ok)
    with open(os.path.join(a.out, "render.json.tmp"), "w") as f:
        json.dump(results, f, indent=1)
    os.replace(os.path.join(a.out, "render.json.tmp"), os.path.join(a.out, "render.json"))
    print(f"{len(ok)} charts rendered ({hours:.2f} h, {notes} notes), {len(errors)} failed")
    for r in errors:
        print(f"  {r['chart']}: {r['error']}")
    return 1 if errors and not ok else 0


if __name__ == "__main__":
    sys.exit(main())
