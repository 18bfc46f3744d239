//! The fast track-event decoder against midly, on generated event streams: well-formed ones
//! (running status, metas, sysex, long delta times) with broken bytes and cuts mixed in. Both
//! must yield the same events and fail at the same event.
use improvnet::music::smf::{events_fast, events_midly, Event, Events};
use proptest::prelude::*;

fn varlen(mut v: u32) -> Vec<u8> {
    let mut out = vec![(v & 0x7f) as u8];
    v >>= 7;
    while v > 0 {
        out.insert(0, (v & 0x7f) as u8 | 0x80);
        v >>= 7;
    }
    out
}

/// One piece of a track: an event in its usual encoding, or something broken.
fn atom() -> impl Strategy<Value = Vec<u8>> {
    let delta = prop_oneof![0u32..128, 0u32..0x0fff_ffff];
    let channel_msg = (
        0x80u8..0xf0,
        any::<u8>(),
        any::<u8>(),
        any::<bool>(),
        0u8..8,
    )
        .prop_map(|(status, a, b, running, broken)| {
            // Mostly valid data bytes; sometimes one with the top bit set.
            let (a, b) = if broken == 0 {
                (a, b)
            } else {
                (a & 0x7f, b & 0x7f)
            };
            let mut v = if running { vec![] } else { vec![status] };
            v.extend([a, b]);
            v
        });
    let meta = (
        prop_oneof![
            Just(0x51u8),
            Just(0x54),
            Just(0x59),
            Just(0x58),
            Just(0x2f),
            Just(0x03),
            Just(0x20),
            Just(0x00),
            any::<u8>()
        ],
        prop::collection::vec(any::<u8>(), 0..8),
        0u8..6,
    )
        .prop_map(|(kind, data, lie)| {
            let mut v = vec![0xff, kind];
            // Sometimes the declared length overruns the data.
            v.extend(varlen(data.len() as u32 + u32::from(lie == 0) * 5));
            v.extend(data);
            v
        });
    let sysex = (
        prop_oneof![Just(0xf0u8), Just(0xf7)],
        prop::collection::vec(any::<u8>(), 0..6),
    )
        .prop_map(|(s, data)| {
            let mut v = vec![s];
            v.extend(varlen(data.len() as u32));
            v.extend(data);
            v
        });
    // SMPTE offsets near the limits midly checks (hour 24, minute/second 60, frame rate, 100).
    let smpte = (0u8..4, 21u8..26, 58u8..62, 58u8..62, 22u8..32, 97u8..102)
        .prop_map(|(fps, h, m, s, f, sub)| vec![0xff, 0x54, 5, fps << 5 | h, m, s, f, sub]);
    let garbage = prop::collection::vec(any::<u8>(), 1..4);
    let event = prop_oneof![6 => channel_msg, 2 => meta, 1 => smpte, 1 => sysex, 1 => garbage];
    (delta, event).prop_map(|(d, e)| {
        let mut v = varlen(d);
        v.extend(e);
        v
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4000))]
    #[test]
    fn same_events_as_midly(atoms in prop::collection::vec(atom(), 0..40), cut in any::<prop::sample::Index>()) {
        let track: Vec<u8> = atoms.concat();
        prop_assert_eq!(events_fast(&track), events_midly(&track));
        // Cut anywhere: the end of a track mid-event.
        if !track.is_empty() {
            let cut = &track[..cut.index(track.len())];
            prop_assert_eq!(events_fast(cut), events_midly(cut));
        }
    }

    #[test]
    fn same_events_on_random_bytes(track in prop::collection::vec(any::<u8>(), 0..64)) {
        prop_assert_eq!(events_fast(&track), events_midly(&track));
    }
}

#[test]
fn decodes_running_status_tempo_and_note_off_as_note_on() {
    let track = [
        0x00, 0xff, 0x51, 0x03, 0x07, 0xa1, 0x20, // tempo 500,000
        0x00, 0x90, 60, 100, // note on
        0x81, 0x00, 60, 0, // 128 ticks later, running status, velocity 0
        0x00, 0xb0, 64, 127, // sustain down
        0x00, 0xc0, 5, // program 5
    ];
    let mut ev = Events::new(&track);
    let all: Vec<_> = std::iter::from_fn(|| ev.next_event())
        .map(Result::unwrap)
        .collect();
    assert_eq!(
        all,
        vec![
            (0, Event::Tempo(500_000)),
            (
                0,
                Event::NoteOn {
                    channel: 0,
                    key: 60,
                    vel: 100
                }
            ),
            (
                128,
                Event::NoteOn {
                    channel: 0,
                    key: 60,
                    vel: 0
                }
            ),
            (
                0,
                Event::Controller {
                    channel: 0,
                    controller: 64,
                    value: 127
                }
            ),
            (
                0,
                Event::Program {
                    channel: 0,
                    program: 5
                }
            ),
        ]
    );
    // A data byte with its top bit set is an error, and ends the track.
    let mut ev = Events::new(&[0x00, 0x90, 0x80, 0x10, 0x00, 0x90, 60, 1]);
    assert!(ev.next_event().unwrap().is_err());
    assert!(ev.next_event().is_none());
}
