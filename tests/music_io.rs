//! MIDI in and out against hand-computed values (spec §2.1–2.2, §10). Fixtures are made by
//! `scripts/make_fixtures.py`; the event lists there are the ground for every number here.

use std::path::PathBuf;

use improvnet::music::{
    parse_midi, piece_to_smf, read_midi, write_midi, MusicError, Note, Piece, PlayedNote, Segment,
    TempoChange, TimeDivision, Warning,
};
use proptest::prelude::*;

fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

fn played(pitch: u8, velocity: u8, start_ms: u64, dur_ms: u64) -> PlayedNote {
    PlayedNote {
        pitch,
        velocity,
        start_ms,
        dur_ms,
    }
}

fn read_err(name: &str) -> (MusicError, String) {
    let err = read_midi(&data(name)).expect_err(name);
    let msg = err.to_string();
    assert!(msg.contains(name), "message must name the file: {msg}");
    (err, msg)
}

#[test]
fn pedal_extends_notes_inside_an_interval_per_channel() {
    let p = read_midi(&data("pedal.mid")).unwrap();
    // tpq 500, default tempo: 1 tick = 1 ms. Order at tick 0 is note-off order: 64 (off at 200),
    // then 48 (channel 1, off before 60 at tick 400), then 60.
    assert_eq!(
        p.notes,
        vec![
            played(64, 80, 0, 200),    // ends at the pedal's start: not strictly inside
            played(48, 80, 0, 400),    // channel 1 has no pedal
            played(60, 80, 0, 1000),   // 400 inside (200, 1000) -> 1000
            played(67, 90, 1000, 800), // 1200 inside (1100, end of last note 1800) -> 1800
            played(72, 90, 1500, 300), // ends exactly at the open interval's end
        ]
    );
    assert!(p.warnings.is_empty(), "{:?}", p.warnings);
    assert_eq!(
        p.tempo_changes,
        vec![TempoChange {
            tick: 0,
            ms: 0,
            us_per_beat: 500_000
        }]
    );
}

#[test]
fn same_tick_restrike_and_zero_length_notes_pair_like_aria() {
    let p = read_midi(&data("restrike.mid")).unwrap();
    assert_eq!(
        p.notes,
        vec![
            played(62, 90, 0, 300), // closed by the off at 300; the note struck at 300 stays open
            played(62, 70, 300, 300), // closed at 600
            played(55, 40, 800, 100),
        ]
    );
    assert_eq!(
        p.warnings,
        vec![
            Warning::UnclosedNotes { count: 1 },
            Warning::ZeroLengthNotesDropped { count: 1 }
        ]
    );
    let messages = p.warning_messages();
    assert!(messages[0].contains("restrike.mid"), "{messages:?}");
    assert!(messages[0].contains("never released"), "{messages:?}");
}

#[test]
fn tempo_map_from_all_tracks_and_stable_chord_order() {
    let p = read_midi(&data("tempo_changes.mid")).unwrap();
    // tpq 480. Tempo 500,000 (1.0417 ms/tick) from 0, 250,000 (0.5208) from 960 (track 1),
    // 1,000,000 (2.0833) from 1920 (track 2). First note at tick 480 = 500 ms of silence.
    assert_eq!(p.leading_silence_ms, 500);
    assert_eq!(p.ticks_per_quarter, 480);
    assert_eq!(p.time_division, TimeDivision::TicksPerQuarter(480));
    assert_eq!(
        p.notes,
        vec![
            // 480->960 = 500 ms, 960->1440 = 250 ms.
            played(60, 64, 0, 750),
            // Track 1's note comes first in the chord at tick 1200 although it ends first too:
            // start 500 + 240 x 0.5208 = 625; dur 100 x 0.5208 = 52.08.
            played(72, 100, 625, 52),
            // dur 720 x 0.5208 = 375 plus 480 x 2.0833 = 1000.
            played(64, 64, 625, 1375),
            // start 500 + 500 + 1000; dur 1 tick = 2.08 ms. This note starts after the last
            // of three tempo events: the 2024 aria tokenizer sums its duration from the previous
            // tempo over a negative tick span; we sum forward (docs/spec.md, "Deliberate
            // differences", Tempo changes), and this fixture locks it.
            played(67, 64, 2000, 2),
        ]
    );
    assert_eq!(
        p.tempo_changes,
        vec![
            TempoChange {
                tick: 0,
                ms: 0,
                us_per_beat: 500_000
            },
            TempoChange {
                tick: 960,
                ms: 1000,
                us_per_beat: 250_000
            },
            TempoChange {
                tick: 1920,
                ms: 1500,
                us_per_beat: 1_000_000
            },
        ]
    );
}

#[test]
fn two_hands_demo_file() {
    let p = read_midi(&data("two_hands.mid")).unwrap();
    assert!(p.warnings.is_empty(), "{:?}", p.warnings);
    // 18 bars of 4/4 at tpq 480: 8 at 120 bpm (16 s), then 10 at 100 bpm (24 s).
    assert_eq!(p.tempo_changes.len(), 2);
    assert_eq!(p.tempo_changes[1].tick, 8 * 1920);
    assert_eq!(p.tempo_changes[1].ms, 16_000);
    let end = p.notes.iter().map(|n| n.start_ms + n.dur_ms).max();
    assert_eq!(end, Some(40_000));
    // First melody note: off at tick 460, inside the pedal (60, 1910): 1910 ticks = 1989.58 ms.
    assert_eq!(p.notes[0], played(72, 84, 0, 1990));
    // Bar 9, after the tempo change: 1910 ticks x 1.25 ms = 2387.5, Python rounds to 2388.
    let bar9 = p.notes.iter().find(|n| n.start_ms == 16_000).unwrap();
    assert_eq!(*bar9, played(72, 84, 16_000, 2388));
    // The final chord: right hand (track 1) first, then the left hand in note-off order.
    let last_start = p.notes.last().unwrap().start_ms;
    assert_eq!(last_start, 37_600);
    let chord: Vec<u8> = p
        .notes
        .iter()
        .filter(|n| n.start_ms == last_start)
        .map(|n| n.pitch)
        .collect();
    assert_eq!(chord, vec![72, 36, 55, 60, 64]);

    let piece = Piece::from_midi(&data("two_hands.mid")).unwrap();
    assert_eq!(piece.segments.len(), 8);
    assert_eq!(piece.note_count(), p.notes.len());
}

#[test]
fn smpte_division_is_converted_and_ignores_tempo() {
    // 25 fps x 40 ticks per frame = 1 ms per tick; its tempo event (1 s/beat) must not apply.
    let p = read_midi(&data("smpte.mid")).unwrap();
    assert_eq!(
        p.time_division,
        TimeDivision::Smpte {
            fps: 25,
            ticks_per_frame: 40
        }
    );
    assert_eq!(
        p.notes,
        vec![played(60, 80, 0, 500), played(62, 80, 900, 250)]
    );
    assert_eq!(p.leading_silence_ms, 100);
    assert!(p.tempo_changes.is_empty());
}

#[test]
fn zero_tempo_is_ignored_with_a_warning() {
    let p = read_midi(&data("zero_tempo.mid")).unwrap();
    assert_eq!(
        p.notes,
        vec![played(60, 80, 0, 1000), played(64, 80, 1000, 500)]
    );
    assert_eq!(p.warnings, vec![Warning::ZeroTempoIgnored { tick: 0 }]);
    let messages = p.warning_messages();
    assert!(messages[0].starts_with(&p.source), "{messages:?}");
    assert!(messages[0].contains("zero_tempo.mid"), "{messages:?}");
    assert!(messages[0].contains("tempo 0"), "{messages:?}");
}

#[test]
fn non_piano_program_is_read_with_a_warning() {
    let p = read_midi(&data("non_piano.mid")).unwrap();
    assert_eq!(
        p.warnings,
        vec![Warning::NonPianoProgram {
            program: 40,
            channel: 0
        }]
    );
    let messages = p.warning_messages();
    assert!(messages[0].contains("non_piano.mid"), "{messages:?}");
    assert!(messages[0].contains("program 40"), "{messages:?}");
    assert_eq!(
        p.notes,
        vec![played(67, 80, 0, 500), played(69, 80, 500, 500)]
    );
}

#[test]
fn drums_only_is_an_error_that_says_so() {
    let (err, msg) = read_err("drums_only.mid");
    assert!(
        matches!(err, MusicError::DrumsOnly { count: 2, .. }),
        "{msg}"
    );
    assert!(msg.contains("drum"), "{msg}");
}

#[test]
fn drums_are_dropped_with_a_warning() {
    let mut bytes = std::fs::read(data("pedal.mid")).unwrap();
    // Append a second track holding a drum hit, and declare it in the header.
    bytes[11] = 2;
    let body = [0u8, 0x99, 36, 100, 10, 0x89, 36, 0, 0, 0xff, 0x2f, 0];
    bytes.extend_from_slice(b"MTrk");
    bytes.extend_from_slice(&(body.len() as u32).to_be_bytes());
    bytes.extend_from_slice(&body);
    let p = parse_midi(&bytes, "with_drums.mid").unwrap();
    assert_eq!(p.notes.len(), 5);
    assert_eq!(p.warnings, vec![Warning::DrumsDropped { count: 1 }]);
    assert!(p.warning_messages()[0].contains("1 drum notes dropped"));
}

#[test]
fn empty_file_is_an_error() {
    let (err, msg) = read_err("empty.mid");
    assert!(matches!(err, MusicError::NoNotes { .. }), "{msg}");
    assert!(msg.contains("no notes"), "{msg}");
}

#[test]
fn truncated_file_is_an_error() {
    let (err, msg) = read_err("truncated.mid");
    assert!(matches!(err, MusicError::Truncated { .. }), "{msg}");
    assert!(msg.contains("truncated"), "{msg}");
}

#[test]
fn text_file_is_not_midi() {
    let (err, msg) = read_err("not_midi.mid");
    assert!(matches!(err, MusicError::NotMidi { .. }), "{msg}");
    assert!(msg.contains("not a midi file"), "{msg}");
}

#[test]
fn missing_file_names_the_path() {
    let (err, msg) = read_err("no_such_file.mid");
    assert!(matches!(err, MusicError::Read { .. }), "{msg}");
}

fn piece(segments: &[(u32, &[Note])]) -> Piece {
    Piece {
        segments: segments
            .iter()
            .map(|(window, notes)| Segment {
                window: *window,
                notes: notes.to_vec(),
            })
            .collect(),
    }
}

fn round_trip(p: &Piece) -> Piece {
    parse_midi(&piece_to_smf(p), "rt.mid").unwrap().to_piece()
}

#[test]
fn same_pitch_overlap_ends_the_held_note_at_the_restrike() {
    // A (0..1000) is still held when B (500..1500) strikes the same key: A ends at 500 (its off
    // sorts before B's on), B keeps its full length, and a second round trip changes nothing.
    let p = piece(&[(
        0,
        &[Note::new(60, 90, 0, 1000), Note::new(60, 60, 500, 1000)],
    )]);
    let back = round_trip(&p);
    assert_eq!(
        back,
        piece(&[(
            0,
            &[Note::new(60, 90, 0, 500), Note::new(60, 60, 500, 1000)]
        )])
    );
    assert_eq!(round_trip(&back), back);
    // B inside A: A ends where B strikes.
    let p = piece(&[(
        0,
        &[Note::new(60, 90, 0, 2000), Note::new(60, 60, 500, 500)],
    )]);
    assert_eq!(
        round_trip(&p),
        piece(&[(0, &[Note::new(60, 90, 0, 500), Note::new(60, 60, 500, 500)])])
    );
}

#[test]
fn same_tick_messages_are_offs_then_ons_by_velocity_then_the_rest() {
    let p = piece(&[(
        0,
        &[
            Note::new(60, 90, 0, 100),
            Note::new(64, 30, 0, 100),
            Note::new(67, 60, 100, 50),
        ],
    )]);
    let bytes = piece_to_smf(&p);
    let smf = midly::Smf::parse(&bytes).unwrap();
    assert_eq!(smf.header.format, midly::Format::SingleTrack);
    assert_eq!(
        smf.header.timing,
        midly::Timing::Metrical(500.into()),
        "500 ticks per quarter"
    );
    let mut tick = 0u32;
    let events: Vec<(u32, String)> = smf.tracks[0]
        .iter()
        .map(|e| {
            tick += e.delta.as_int();
            let what = match e.kind {
                midly::TrackEventKind::Midi {
                    channel,
                    message: midly::MidiMessage::NoteOn { key, vel },
                } => format!("ch{} on {key} {vel}", channel.as_int()),
                midly::TrackEventKind::Midi {
                    message: midly::MidiMessage::ProgramChange { program },
                    ..
                } => format!("program {program}"),
                midly::TrackEventKind::Meta(midly::MetaMessage::Tempo(t)) => format!("tempo {t}"),
                midly::TrackEventKind::Meta(midly::MetaMessage::EndOfTrack) => "end".into(),
                other => format!("{other:?}"),
            };
            (tick, what)
        })
        .collect();
    let want: Vec<(u32, String)> = [
        (0, "ch0 on 64 30"),
        (0, "ch0 on 60 90"),
        (0, "tempo 500000"),
        (0, "program 0"),
        (100, "ch0 on 60 0"),
        (100, "ch0 on 64 0"),
        (100, "ch0 on 67 60"),
        (150, "ch0 on 67 0"),
        (150, "end"),
    ]
    .iter()
    .map(|(t, s)| (*t, s.to_string()))
    .collect();
    assert_eq!(events, want);
}

#[test]
fn windows_place_segments_and_long_gaps_survive() {
    // Window 70,000 starts at 350,000,000 ms: beyond one MIDI delta (2^28 - 1 ticks).
    let p = piece(&[
        (0, &[Note::new(60, 90, 0, 500)]),
        (3, &[Note::new(62, 75, 1230, 40)]),
        (70_000, &[Note::new(64, 15, 4990, 5000)]),
    ]);
    assert_eq!(round_trip(&p), p);
}

#[test]
fn velocity_zero_notes_are_not_written() {
    let p = piece(&[(0, &[Note::new(60, 90, 0, 1000), Note::new(60, 0, 200, 100)])]);
    assert_eq!(round_trip(&p), piece(&[(0, &[Note::new(60, 90, 0, 1000)])]));
}

#[test]
fn write_midi_is_atomic_and_readable() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.mid");
    let p = Piece::from_midi(&data("two_hands.mid")).unwrap();
    write_midi(&p, &path).unwrap();
    write_midi(&p, &path).unwrap(); // overwrite in place
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        names,
        vec![std::ffi::OsString::from("out.mid")],
        "no temp files left"
    );
    assert_eq!(Piece::from_midi(&path).unwrap(), round_trip(&p));

    let err = write_midi(&p, &dir.path().join("missing/dir/out.mid")).unwrap_err();
    assert!(matches!(err, MusicError::Write { .. }));
    assert!(err.to_string().contains("out.mid"), "{err}");
}

/// Onsets and durations on the 10 ms grid, velocities 15..=120 on the 15 grid (velocity 0 is
/// silence and is not written).
fn note() -> impl Strategy<Value = Note> {
    (21u8..=108, 1u8..=8, 0u16..500, 1u16..=500)
        .prop_map(|(p, v, o, d)| Note::new(p, v * 15, o * 10, d * 10))
}

/// Random pieces starting at window 0, onset 0 (the reader measures from the first note), with
/// gaps between windows (some beyond one MIDI delta), and no two notes of a pitch overlapping.
fn piece_without_same_pitch_overlap() -> impl Strategy<Value = Piece> {
    let gap = prop_oneof![8 => 1u32..=3, 1 => 4u32..=60_000];
    (
        note(),
        prop::collection::vec((gap, prop::collection::vec(note(), 1..12)), 0..6),
    )
        .prop_map(|(first, rest)| {
            let mut first = first;
            first.onset_ms = 0;
            let mut windows = vec![(0u32, vec![first])];
            let mut window = 0u32;
            for (gap, notes) in rest {
                window += gap;
                windows.push((window, notes));
            }
            // Some notes in window 0 as well, after the first.
            let extra: Vec<Note> = windows
                .get(1)
                .map(|w| w.1.iter().take(3).copied().collect())
                .unwrap_or_default();
            windows[0].1.extend(extra);
            let mut kept: Vec<(u8, u64, u64)> = Vec::new();
            let mut segments = Vec::new();
            for (window, notes) in windows {
                let mut seg_notes: Vec<Note> = Vec::new();
                for n in notes {
                    let start = u64::from(window) * 5000 + u64::from(n.onset_ms);
                    let end = start + u64::from(n.dur_ms);
                    let clash = kept
                        .iter()
                        .any(|&(p, s, e)| p == n.pitch && s < end && start < e);
                    if !clash {
                        kept.push((n.pitch, start, end));
                        seg_notes.push(n);
                    }
                }
                seg_notes.sort_by_key(|n| n.onset_ms); // stable, as the reader's order
                if !seg_notes.is_empty() {
                    segments.push(Segment {
                        window,
                        notes: seg_notes,
                    });
                }
            }
            Piece { segments }
        })
}

/// In-chord order after a round trip follows the written note-off order (by end, then by the
/// pitch's first appearance, as in the original writer), not the input order: compare chords as
/// sets.
fn canonical(p: &Piece) -> Piece {
    let mut p = p.clone();
    for s in &mut p.segments {
        s.notes
            .sort_by_key(|n| (n.onset_ms, n.pitch, n.velocity, n.dur_ms));
    }
    p
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn write_then_read_gives_the_piece_back(p in piece_without_same_pitch_overlap()) {
        let back = round_trip(&p);
        prop_assert_eq!(canonical(&back), canonical(&p));
    }

    #[test]
    fn any_bytes_read_without_panic(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        let mut with_header = b"MThd\0\0\0\x06\0\x01\0\x01\x01\xe0MTrk".to_vec();
        with_header.extend_from_slice(&bytes);
        let _ = parse_midi(&bytes, "random.mid");
        if let Ok(p) = parse_midi(&with_header, "random.mid") {
            let piece = p.to_piece();
            prop_assert!(parse_midi(&piece_to_smf(&piece), "again.mid").is_ok());
        }
    }
}
