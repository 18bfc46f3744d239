"""Build monophonic held-out melodies from the music21 corpus (folk collections only).

Usage: python3 scripts/heldout_melodies.py OUTDIR   (pip install music21 mido)

The held-out melodies of `improvnet bench-music` (docs/evaluation.md): eight folk tunes the model
never trained on, strictly monophonic, 20-60 s, pitches 55..84, velocity 80, one piano track.
Writes OUTDIR/NAME.mid and OUTDIR/melodies.json (metadata for the README).
"""
import json
import os
import sys
import warnings

import mido
from music21 import bar, chord, converter, corpus, note, spanner, stream, tempo

warnings.filterwarnings("ignore")

CORPUS_DIR = os.path.dirname(corpus.__file__)
TPB = 480
MAX_S = 60.0
MIN_S = 20.0
LO, HI = 55, 84

# (output name, corpus path relative to music21/corpus, X: number or None for single-tune files)
# When number is a list, the first tune that satisfies every constraint is used.
CANDIDATES = [
    ("essen_altdeu10_roland_und_godelinde", "essenFolksong/altdeu10.abc", [6]),
    ("essen_kinder0_schlauf_man_wawerl", "essenFolksong/kinder0.abc", [9]),
    ("essen_han1_renmin_gongshe_shizai_hao", "essenFolksong/han1.abc", [1]),
    ("essen_lux_als_ich_noch_jung_war", "essenFolksong/lux.abc", [3]),
    ("ryans_arkansas_traveller", "ryansMammoth/ArkansasTravellerReel.abc", None),
    ("ryans_banish_misfortune", "ryansMammoth/BanishMisfortune.abc", None),
    ("airds_book1_ranting_highlandman", "airdsAirs/book1.abc", [1]),
    ("airds_book2_my_love_shes_but_a_lassie_yet", "airdsAirs/book2.abc", [1]),
]


def quarter_bpm(part):
    for mm in part.recurse().getElementsByClass(tempo.MetronomeMark):
        bpm = mm.getQuarterBPM()
        if bpm:
            return round(float(bpm), 3), True
    return 100.0, False


def expand_measures(part):
    """ABC-convention repeat expansion at measure level: an end-repeat goes back to the
    latest start-repeat, or to just after the previous end-repeat (or the start).
    First-ending (volta 1) measures are skipped on the repeat pass; later endings follow."""
    ms = list(part.getElementsByClass(stream.Measure))
    first_ending = set()
    for sp in part.spannerBundle.getByClass(spanner.RepeatBracket):
        nums = sp.getNumberList() if hasattr(sp, "getNumberList") else [int(sp.number)]
        if 1 in nums and 2 not in nums:
            for m in sp.getSpannedElements():
                first_ending.add(id(m))
    order = []
    sec = 0
    for i, m in enumerate(ms):
        lb, rb = m.leftBarline, m.rightBarline
        if isinstance(lb, bar.Repeat) and lb.direction == "start":
            sec = i
        order.append(m)
        if isinstance(rb, bar.Repeat) and rb.direction == "end":
            times = rb.times or 2
            for _ in range(times - 1):
                order.extend(x for x in ms[sec:i + 1] if id(x) not in first_ending)
            sec = i + 1
        elif isinstance(rb, bar.Repeat) and rb.direction == "start":
            sec = i + 1
    return order


def extract(score):
    """Return (notes, bar_offsets, bpm, had_tempo) for the first part, or raise."""
    parts = score.parts if hasattr(score, "parts") and len(score.parts) else [score]
    part = parts[0]
    bpm, had_tempo = quarter_bpm(part)
    part = part.stripTies()
    notes = []  # (onset_q, dur_q, midi)
    bars = []
    cur = 0.0
    for m in expand_measures(part):
        for el in m.flatten().notes:
            if el.duration.isGrace or el.duration.quarterLength == 0:
                continue
            if isinstance(el, chord.Chord):
                midi = max(p.midi for p in el.pitches)  # melody = top voice
            elif isinstance(el, note.Note):
                midi = el.pitch.midi
            else:
                continue
            notes.append((cur + float(el.offset), float(el.duration.quarterLength), midi))
        cur += float(m.duration.quarterLength)
        bars.append(cur)
    notes.sort()
    # strictly monophonic: one note per onset (keep the highest), clip overlaps
    mono = []
    for on, d, m in notes:
        if mono and abs(mono[-1][0] - on) < 1e-6:
            if m > mono[-1][2]:
                mono[-1] = (on, d, m)
            continue
        mono.append((on, d, m))
    out = []
    for i, (on, d, m) in enumerate(mono):
        if i + 1 < len(mono):
            d = min(d, mono[i + 1][0] - on)
        out.append((on, d, m))
    end = max(on + d for on, d, _ in out) if out else 0.0
    bars = sorted(set(b for b in bars if 0 < b <= end + 1e-9) | {end})
    return out, bars, bpm, had_tempo


def fit_range(notes):
    best = None
    for shift in range(-48, 49, 12):
        inside = sum(LO <= m + shift <= HI for _, _, m in notes)
        key = (inside, -abs(shift))
        if best is None or key > best[0]:
            best = (key, shift)
    shift = best[1]
    folded = 0
    res = []
    for on, d, m in notes:
        p = m + shift
        while p < LO:
            p += 12
            folded += 1
        while p > HI:
            p -= 12
            folded += 1
        res.append((on, d, p))
    return res, shift, folded


def cut(notes, bars, bpm):
    qsec = 60.0 / bpm
    end = max(on + d for on, d, _ in notes)
    if end * qsec <= MAX_S + 1e-9:
        return notes, end, False
    ok = [b for b in bars if b * qsec <= MAX_S + 1e-9]
    c = max(ok) if ok else MAX_S / qsec
    res = [(on, min(d, c - on), m) for on, d, m in notes if on < c - 1e-9]
    return res, c, True


def write_midi(path, notes, bpm, title):
    mid = mido.MidiFile(type=0, ticks_per_beat=TPB)
    tr = mido.MidiTrack()
    mid.tracks.append(tr)
    tr.append(mido.MetaMessage("track_name", name=title[:60], time=0))
    tr.append(mido.MetaMessage("set_tempo", tempo=int(round(60_000_000 / bpm)), time=0))
    tr.append(mido.Message("program_change", program=0, channel=0, time=0))
    ev = []  # (tick, order, msg) ; offs before ons at the same tick
    for on, d, m in notes:
        a = int(round(on * TPB))
        b = max(a + 1, int(round((on + d) * TPB)))
        ev.append((a, 1, mido.Message("note_on", note=m, velocity=80, channel=0)))
        ev.append((b, 0, mido.Message("note_off", note=m, velocity=0, channel=0)))
    ev.sort(key=lambda e: (e[0], e[1]))
    last = 0
    for t, _, msg in ev:
        tr.append(msg.copy(time=t - last))
        last = t
    tr.append(mido.MetaMessage("end_of_track", time=0))
    mid.save(path)


def try_score(score):
    from music21 import meter
    if not list(score.recurse().getElementsByClass(meter.TimeSignature)):
        return None  # 'M: none' (unmetred) encodings: no bar lines to cut at
    notes, bars, bpm, had_tempo = extract(score)
    if len(notes) < 16 or len(bars) < 8:
        return None
    notes, shift, folded = fit_range(notes)
    notes, end_q, was_cut = cut(notes, bars, bpm)
    dur = end_q * 60.0 / bpm
    if dur < MIN_S or dur > MAX_S + 1e-6 or folded:
        return None
    if len(notes) / dur < 1.0:  # skip very sparse (slow ballad) settings
        return None
    gaps = [(b[0] - a[0]) * 60.0 / bpm for a, b in zip(notes, notes[1:])]
    if min(gaps) < 0.05:
        return None
    return dict(notes=notes, bpm=bpm, had_tempo=had_tempo, shift=shift, cut=was_cut, dur=dur)


def main():
    outdir = sys.argv[1]
    os.makedirs(outdir, exist_ok=True)
    meta = []
    for name, rel, numbers in CANDIDATES:
        path = os.path.join(CORPUS_DIR, rel)
        parsed = converter.parse(path)
        chosen = None
        if numbers is None:
            sc = parsed if not isinstance(parsed, stream.Opus) else parsed.scores[0]
            r = try_score(sc)
            if r:
                chosen = (sc, None, r)
        else:
            for n in numbers:
                sc = parsed.getScoreByNumber(n) if isinstance(parsed, stream.Opus) else parsed
                if sc is None:
                    continue
                try:
                    r = try_score(sc)
                except Exception as e:  # odd encodings: skip
                    print("skip", rel, n, e, file=sys.stderr)
                    continue
                if r:
                    chosen = (sc, n, r)
                    break
        if not chosen:
            print("NO CANDIDATE for", name, file=sys.stderr)
            continue
        sc, n, r = chosen
        title = (sc.metadata.title if sc.metadata and sc.metadata.title else name) or name
        fn = os.path.join(outdir, name + ".mid")
        write_midi(fn, r["notes"], r["bpm"], title)
        meta.append(dict(file=name + ".mid", corpus_path="music21/corpus/" + rel, number=n, title=title,
                         quarter_bpm=r["bpm"], tempo_from_score=r["had_tempo"], octave_shift=r["shift"],
                         cut_at_bar=r["cut"], duration_s=round(r["dur"], 2), notes=len(r["notes"])))
        print(meta[-1])
    with open(os.path.join(outdir, "..", "melodies.json"), "w") as f:
        json.dump(meta, f, indent=1)


if __name__ == "__main__":
    main()
