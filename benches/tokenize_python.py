"""Side-by-side baseline for `cargo bench --bench tokenize`: the same MIDI parse in Python.

symusic (C++ parser) reads the file into note arrays; mido reads it and pairs note on/off in Python.
Prints the median time, MB/s and notes/s of each. Usage:
    python benches/tokenize_python.py tests/data/chopin_nocturne_op15_1.mid [iterations] [--cpu]
--cpu times thread CPU time instead of wall time (pair with `cargo run --release --example
tokenize_cpu`), which a busy machine distorts far less.
"""
import statistics
import sys
import time


def bench(name, fn, data, iters, clock):
    times = []
    notes = 0
    for _ in range(max(1, iters // 10)):  # warm up
        fn(data)
    for _ in range(iters):
        t0 = clock()
        notes = fn(data)
        times.append(clock() - t0)
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
    args = [a for a in sys.argv[1:] if a != "--cpu"]
    cpu = "--cpu" in sys.argv
    path = args[0]
    iters = int(args[1]) if len(args) > 1 else 50
    clock = time.thread_time if cpu else time.perf_counter
    data = open(path, "rb").read()
    print(f"{path}: {len(data)} bytes, {iters} iterations, {'thread CPU' if cpu else 'wall'} time")
    for name, fn in (("symusic", with_symusic), ("mido", with_mido)):
        try:
            bench(name, fn, data, iters if name == "symusic" else max(1, iters // 50), clock)
        except ImportError as e:
            print(f"{name:8s} not installed ({e})")


if __name__ == "__main__":
    main()
