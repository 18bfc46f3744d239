#!/usr/bin/env python3
"""Write the small MIDI fixtures under tests/data/ (standard library only).

Run from the repository root: python3 scripts/make_fixtures.py
The expected values in tests/music_io.rs are worked out by hand from these event lists.
"""

import os
import struct

OUT = os.path.join(os.path.dirname(__file__), "..", "tests", "data")


def vlq(n):
    out = [n & 0x7F]
    n >>= 7
    while n:
        out.append(0x80 | (n & 0x7F))
        n >>= 7
    return bytes(reversed(out))


# Events: (abs_tick, bytes). Sorted stably by tick, so list order breaks ties.
def on(t, ch, key, vel):
    return (t, bytes([0x90 | ch, key, vel]))


def off(t, ch, key):
    return (t, bytes([0x80 | ch, key, 64]))


def off0(t, ch, key):  # note_on with velocity 0
    return (t, bytes([0x90 | ch, key, 0]))


def cc64(t, ch, value):
    return (t, bytes([0xB0 | ch, 64, value]))


def program(t, ch, prog):
    return (t, bytes([0xC0 | ch, prog]))


def tempo(t, us):
    return (t, b"\xff\x51\x03" + us.to_bytes(3, "big"))


def name(t, text):
    data = text.encode()
    return (t, b"\xff\x03" + vlq(len(data)) + data)


def track(events):
    events = sorted(events, key=lambda e: e[0])
    body = b""
    prev = 0
    for t, data in events:
        body += vlq(t - prev) + data
        prev = t
    body += b"\x00\xff\x2f\x00"
    return b"MTrk" + struct.pack(">I", len(body)) + body


def smf(fmt, division, tracks, raw_division=None):
    div = raw_division if raw_division is not None else struct.pack(">H", division)
    head = b"MThd" + struct.pack(">IHH", 6, fmt, len(tracks)) + div
    return head + b"".join(track(t) for t in tracks)


def write(name_, data):
    with open(os.path.join(OUT, name_), "wb") as f:
        f.write(data)


def two_hands():
    """A 40-second piece: melody over a I-vi-IV-V style progression, sustain pedal in the left
    hand's track, 120 bpm for 8 bars then 100 bpm for 10 bars. 480 ticks per quarter."""
    tpq = 480
    bar = 4 * tpq
    chords = [  # (bass root, triad for the left hand, chord tones for the melody)
        ("C", 48, [55, 60, 64]), ("Am", 45, [57, 60, 64]), ("F", 41, [57, 60, 65]),
        ("G", 43, [55, 59, 62]), ("C", 48, [55, 60, 64]), ("Am", 45, [57, 60, 64]),
        ("Dm", 50, [57, 62, 65]), ("G", 43, [55, 59, 62]),
        ("C", 48, [55, 60, 64]), ("Em", 40, [55, 59, 64]), ("F", 41, [57, 60, 65]),
        ("G", 43, [55, 59, 62]), ("Am", 45, [57, 60, 64]), ("F", 41, [57, 60, 65]),
        ("Dm", 50, [57, 62, 65]), ("G", 43, [55, 59, 62]), ("G7", 43, [53, 59, 62]),
        ("C", 48, [55, 60, 64]),
    ]
    # Melody, one line per bar: (beat, length in beats, pitch).
    melody = [
        [(0, 1, 72), (1, 1, 76), (2, 1.5, 79), (3.5, 0.5, 77)],
        [(0, 1, 76), (1, 1, 72), (2, 2, 69)],
        [(0, 1, 72), (1, 0.5, 74), (1.5, 0.5, 76), (2, 2, 77)],
        [(0, 1.5, 79), (1.5, 0.5, 77), (2, 1, 74), (3, 1, 71)],
        [(0, 1, 72), (1, 1, 76), (2, 1, 79), (3, 1, 84)],
        [(0, 1.5, 81), (1.5, 0.5, 79), (2, 1, 76), (3, 1, 72)],
        [(0, 1, 74), (1, 1, 77), (2, 1, 81), (3, 1, 77)],
        [(0, 2, 79), (2, 1, 74), (3, 1, 71)],
        [(0, 1, 72), (1, 0.5, 71), (1.5, 0.5, 72), (2, 2, 76)],
        [(0, 1, 79), (1, 1, 76), (2, 2, 71)],
        [(0, 1, 72), (1, 1, 77), (2, 1.5, 81), (3.5, 0.5, 79)],
        [(0, 1, 79), (1, 1, 74), (2, 2, 71)],
        [(0, 1, 72), (1, 1, 76), (2, 1, 81), (3, 1, 84)],
        [(0, 1.5, 84), (1.5, 0.5, 81), (2, 2, 77)],
        [(0, 1, 77), (1, 1, 74), (2, 1, 77), (3, 1, 81)],
        [(0, 2, 79), (2, 1, 83), (3, 1, 86)],
        [(0, 1, 84), (1, 1, 83), (2, 1, 79), (3, 1, 77)],
        [(0, 4, 72)],
    ]
    rh = [name(0, "Right hand"), tempo(0, 500_000), program(0, 0, 0), tempo(8 * bar, 600_000)]
    lh = [name(0, "Left hand"), program(0, 0, 0)]
    for i, ((_, root, triad), line) in enumerate(zip(chords, melody)):
        t0 = i * bar
        for beat, length, pitch in line:
            start = t0 + int(beat * tpq)
            vel = 84 if beat == 0 else 72
            rh += [on(start, 0, pitch, vel), off0(start + int(length * tpq) - 20, 0, pitch)]
        # Left hand: bass note on beat 1, triad on beats 2 and 3 (last bar: one long chord).
        lh += [on(t0, 0, root - 12, 70), off(t0 + 2 * tpq, 0, root - 12)]
        if i < len(chords) - 1:
            for beat in (1, 2):
                for p in triad:
                    lh += [on(t0 + beat * tpq, 0, p, 58), off(t0 + beat * tpq + tpq - 40, 0, p)]
        else:
            for p in triad:
                lh += [on(t0, 0, p, 64), off(t0 + 4 * tpq, 0, p)]
        # Pedal: lift at the chord change, press again just after it.
        lh += [cc64(t0 + 60, 0, 127), cc64(t0 + bar - 10, 0, 0)]
    return smf(1, tpq, [rh, lh])


def pedal():
    """tpq 500 and no tempo event: 1 tick = 1 ms."""
    return smf(0, 500, [[
        cc64(200, 0, 100),          # pedal on (>= 64)
        cc64(1000, 0, 63),          # pedal off (< 64)
        on(0, 0, 60, 80), on(0, 0, 64, 80), on(0, 1, 48, 80),
        off(200, 0, 64),            # ends at the pedal's start: not inside, not extended
        off(400, 1, 48),            # channel 1: channel 0's pedal does not apply
        off(400, 0, 60),            # inside (200, 1000): extended to 1000
        on(1000, 0, 67, 90),
        cc64(1100, 0, 127),         # pedal on, never released
        cc64(1150, 0, 64),          # on while on: ignored
        off(1200, 0, 67),           # inside (1100, end of last note = 1800): extended
        on(1500, 0, 72, 90), off(1800, 0, 72),
    ]])


def restrike():
    """Same-tick pairing rules. tpq 500, no tempo event: 1 tick = 1 ms."""
    return smf(0, 500, [[
        on(0, 0, 62, 90),
        on(300, 0, 62, 70),         # re-strike before the release...
        off0(300, 0, 62),           # ...released at the same tick: closes only the older note
        off0(600, 0, 62),           # closes the re-struck note
        on(500, 0, 65, 60), off(500, 0, 65),   # zero-length: Aria forgets it
        on(700, 0, 70, 50),         # never released
        on(800, 0, 55, 40), off(900, 0, 55),
    ]])


def tempo_changes():
    """tpq 480: a tempo map spread over two tracks, leading silence, cross-track chords."""
    conductor = [tempo(0, 500_000), tempo(960, 250_000),
                 on(1200, 0, 72, 100), off(1200 + 100, 0, 72)]
    music = [tempo(1920, 1_000_000),
             on(480, 0, 60, 64), off(1440, 0, 60),
             on(1200, 0, 64, 64), off(2400, 0, 64),
             on(2400, 0, 67, 64), off(2401, 0, 67)]
    return smf(1, 480, [conductor, music])


def main():
    os.makedirs(OUT, exist_ok=True)
    two = two_hands()
    write("two_hands.mid", two)
    write("pedal.mid", pedal())
    write("restrike.mid", restrike())
    write("tempo_changes.mid", tempo_changes())
    write("drums_only.mid", smf(0, 480, [[
        on(0, 9, 36, 100), off(240, 9, 36), on(480, 9, 38, 100), off(720, 9, 38)]]))
    write("non_piano.mid", smf(0, 480, [[
        program(0, 0, 40), on(0, 0, 67, 80), off(480, 0, 67), on(480, 0, 69, 80), off(960, 0, 69)]]))
    # SMPTE: 25 fps x 40 ticks per frame = 1000 ticks per second. The tempo event must not apply.
    write("smpte.mid", smf(0, 0, [[
        tempo(0, 1_000_000), on(100, 0, 60, 80), off(600, 0, 60), on(1000, 0, 62, 80),
        off(1250, 0, 62)]], raw_division=bytes([0x100 - 25, 40])))
    write("zero_tempo.mid", smf(0, 500, [[
        tempo(0, 0), on(0, 0, 60, 80), off(1000, 0, 60), on(1000, 0, 64, 80), off(1500, 0, 64)]]))
    write("empty.mid", smf(0, 480, [[name(0, "nothing here"), tempo(0, 500_000)]]))
    write("truncated.mid", two[: len(two) // 2])
    with open(os.path.join(OUT, "not_midi.mid"), "w") as f:
        f.write("This is a text file with a .mid extension, not a MIDI file.\n")


if __name__ == "__main__":
    main()
