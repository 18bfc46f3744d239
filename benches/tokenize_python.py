"""Side-by-side baseline for `cargo bench --bench tokenize`: the same MIDI parse in Python.

symusic (C++ parser) reads the file into note arrays; mido reads it and pairs note on/off in Python.
Prints the median time, MB/s and notes/s of each. Usage:
    python benches/tokenize_python.py tests/data/chopin_nocturne_op15_1.mid [iterations]
"""
import statistics
import sys
import time


def bench(name, fn, data, iters):
    times = []
    notes = 0
    for _ in range(iters):
        t0 = time.perf_counter()
        notes = fn(data)
        times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    mb = len(data) / 1e6
    print(f"{name:8s} median {med * 1e3:9.3f} ms  {mb / med:8.2f} MB/s  {notes / med:12.0f} notes/s  ({notes} notes)")


def with_symusic(data):
    import symusic

    score = symusic.Score.from_midi(data)
    return sum(len(t.notes) for t in score.tracks)


def with_mido(data):
    import io

    import mido

    mid = mido.MidiFile(file=io.BytesIO(data))
    notes = 0
    for track in mid.tracks:
        t = 0
        open_notes = {}
        for msg in track:
            t += msg.time
            if msg.type == "note_on" and msg.velocity > 0:
                open_notes.setdefault((msg.note, msg.channel), []).append(t)
            elif msg.type in ("note_on", "note_off"):
                notes += len(open_notes.pop((msg.note, msg.channel), []))
    return notes


def main():
    path = sys.argv[1]
    iters = int(sys.argv[2]) if len(sys.argv) > 2 else 50
    data = open(path, "rb").read()
    print(f"{path}: {len(data)} bytes, {iters} iterations")
    for name, fn in (("symusic", with_symusic), ("mido", with_mido)):
        try:
            bench(name, fn, data, iters)
        except ImportError as e:
            print(f"{name:8s} not installed ({e})")


if __name__ == "__main__":
    main()
