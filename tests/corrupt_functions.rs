//! The corruptions of spec §6: the spec's verified examples, hand-checked seeded cases, and the
//! Faithful/Fixed differences of §16.4.

use improvnet::corrupt::*;
use improvnet::music::{Note, Piece, Segment};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

fn n(pitch: u8, onset_ms: u16) -> Note {
    Note::new(pitch, 60, onset_ms, 200)
}

fn segment(notes: Vec<Note>) -> Segment {
    Segment { window: 0, notes }
}

fn rng(seed: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed)
}

/// The content of a corrupted block as notes (panics on masks or out-of-range pitches).
fn notes_of(c: &CorruptedSegment) -> Vec<Note> {
    c.content
        .iter()
        .map(|e| match e {
            BlockElement::Note(m) => m.to_note().expect("plain note"),
            BlockElement::Mask => panic!("unexpected mask"),
        })
        .collect()
}

fn run(notes: Vec<Note>, kind: Corruption, behaviour: Behaviour, seed: u64) -> Vec<Note> {
    notes_of(&corrupt(
        &segment(notes),
        kind,
        Genre::Jazz,
        behaviour,
        &mut rng(seed),
    ))
}

fn sky(pitch: u8, onset_ms: u16) -> Note {
    Note::new(pitch, 90, onset_ms, 200)
}

#[test]
fn skyline_faithful_spec_examples() {
    let f = Behaviour::Faithful;
    assert_eq!(
        skyline(&[n(60, 0), n(64, 0), n(67, 1000)], f),
        [sky(64, 0), sky(67, 1000)]
    );
    assert_eq!(
        skyline(&[n(60, 0), n(64, 0), n(67, 1000), n(72, 1010)], f),
        [sky(64, 0)]
    );
    assert_eq!(skyline(&[n(60, 0)], f), []);
    assert_eq!(skyline(&[], f), []);
    // Through `corrupt`, too.
    assert_eq!(
        run(
            vec![n(60, 0), n(64, 0), n(67, 1000), n(72, 1010)],
            Corruption::Skyline,
            f,
            0
        ),
        [sky(64, 0)]
    );
}

#[test]
fn skyline_fixed_keeps_final_chord_and_single_notes() {
    let x = Behaviour::Fixed;
    assert_eq!(
        skyline(&[n(60, 0), n(64, 0), n(67, 1000)], x),
        [sky(64, 0), sky(67, 1000)]
    );
    assert_eq!(
        skyline(&[n(60, 0), n(64, 0), n(67, 1000), n(72, 1010)], x),
        [sky(64, 0), sky(72, 1010)]
    );
    assert_eq!(skyline(&[n(60, 0)], x), [sky(60, 0)]);
    assert_eq!(skyline(&[], x), []);
}

#[test]
fn skyline_chains_arpeggios_and_keeps_the_first_highest() {
    // 30 ms steps chain into one group although 0 and 90 are 90 ms apart; the top note keeps
    // its own onset. A later equal pitch does not replace the pointer.
    let notes = [n(60, 0), n(67, 30), n(64, 60), n(67, 90), n(50, 2000)];
    let want = [sky(67, 30), sky(50, 2000)];
    assert_eq!(skyline(&notes, Behaviour::Faithful), want);
    assert_eq!(skyline(&notes, Behaviour::Fixed), want);
    // A final chord whose later notes are lower: Faithful skips via `continue`, still loses it.
    let notes = [n(60, 0), n(72, 1000), n(64, 1010)];
    assert_eq!(skyline(&notes, Behaviour::Faithful), [sky(60, 0)]);
    assert_eq!(
        skyline(&notes, Behaviour::Fixed),
        [sky(60, 0), sky(72, 1000)]
    );
}

fn four_notes() -> Vec<Note> {
    vec![
        Note::new(60, 90, 0, 1000),
        Note::new(64, 75, 1000, 400),
        Note::new(67, 60, 2000, 300),
        Note::new(72, 45, 3000, 200),
    ]
}

#[test]
fn note_modification_faithful_hand_checked_seeds() {
    let f = Behaviour::Faithful;
    let nm = Corruption::NoteModification;
    // ChaCha8Rng(0) draws 0.709 0.466 | 0.699 0.060 | 0.879 0.550 | 0.829 0.935:
    // n=0: q = 0.1 + 0.3*0.709 = 0.313, 0.466 >= q: keep A.
    // n=1: q = 0.310, 0.060 < q: drop C, 1000 ms apart so B.dur = 400 + 300 = 700.
    // n=2 skipped; D (last) never appended.
    // Addition: 0.879 >= 0.265 and 0.829 >= 0.380: nothing added.
    assert_eq!(
        run(four_notes(), nm, f, 0),
        [Note::new(60, 90, 0, 1000), Note::new(64, 75, 1000, 700)]
    );
    // ChaCha8Rng(3) draws 0.623 0.081 | 0.323 0.084 | 0.596 0.810 | 0.204 0.219:
    // n=0: q = 0.287, 0.081 < q: drop B, A.dur = 1400. n=1 skipped.
    // n=2: q = 0.197, 0.084 < q: "drop" D (dropped anyway), C.dur = 300 + 200 = 500.
    // Addition: 0.596 >= 0.343, 0.204 >= 0.166: nothing added.
    assert_eq!(
        run(four_notes(), nm, f, 3),
        [Note::new(60, 90, 0, 1400), Note::new(67, 60, 2000, 500)]
    );
    // ChaCha8Rng(7): omission keeps A, B, C (0.168 >= 0.147, 0.727 >= 0.311, 0.359 >= 0.280).
    // Addition on A: 0.083 < 0.355 and dur 1000 > 500: A becomes dur round10(500) = 500 and a
    // new note follows with pitch 60-1, velocity 60 (of 45..105), onset in 0..=1000 (380),
    // dur 500 +- 50 (500). B: 0.364 < 0.397 but dur 400 <= 500: unchanged. C is last.
    assert_eq!(
        run(four_notes(), nm, f, 7),
        [
            Note::new(60, 90, 0, 500),
            Note::new(59, 60, 380, 500),
            Note::new(64, 75, 1000, 400),
            Note::new(67, 60, 2000, 300),
        ]
    );
}

#[test]
fn note_modification_faithful_always_drops_the_last_note() {
    let nm = Corruption::NoteModification;
    assert_eq!(run(vec![], nm, Behaviour::Faithful, 1), []);
    assert_eq!(run(vec![n(60, 0)], nm, Behaviour::Faithful, 1), []);
    // Short notes: no addition, so the output is a subsequence of all but the last note, each
    // keeping its duration or absorbing its dropped successor's.
    let notes: Vec<Note> = (0..8)
        .map(|i| Note::new(50 + i, 60, i as u16 * 500, 100 + i as u16 * 10))
        .collect();
    for seed in 0..200 {
        let out = run(notes.clone(), nm, Behaviour::Faithful, seed);
        assert!(!out.is_empty() && out.len() < notes.len(), "seed {seed}");
        assert_eq!(out[0].pitch, 50, "the first note is never dropped");
        assert!(
            out.iter().all(|o| o.pitch != 57),
            "seed {seed}: last note kept"
        );
        for o in &out {
            let i = (o.pitch - 50) as usize;
            let orig = notes[i];
            assert_eq!((o.onset_ms, o.velocity), (orig.onset_ms, orig.velocity));
            assert!(
                o.dur_ms == orig.dur_ms || o.dur_ms == orig.dur_ms + notes[i + 1].dur_ms,
                "seed {seed}: {o:?}"
            );
        }
    }
}

#[test]
fn note_modification_fixed_keeps_the_last_note_and_sorts() {
    let nm = Corruption::NoteModification;
    assert_eq!(run(vec![n(60, 0)], nm, Behaviour::Fixed, 1), [n(60, 0)]);
    let mut kept_last = 0;
    for seed in 0..200 {
        let out = run(four_notes(), nm, Behaviour::Fixed, seed);
        assert!(
            out.windows(2).all(|w| w[0].onset_ms <= w[1].onset_ms),
            "seed {seed}"
        );
        assert!(out.iter().all(|o| (21..=108).contains(&o.pitch)));
        // D is dropped only when C chose to absorb it.
        let has_d = out.contains(&Note::new(72, 45, 3000, 200));
        let c_absorbed = out.contains(&Note::new(67, 60, 2000, 500));
        assert!(has_d || c_absorbed, "seed {seed}: {out:?}");
        kept_last += has_d as u32;
    }
    assert!(kept_last > 100, "{kept_last}");
    // Seed 0 takes the same omission draws as in the Faithful case above, then keeps D.
    assert!(run(four_notes(), nm, Behaviour::Fixed, 0).contains(&Note::new(72, 45, 3000, 200)));
}

#[test]
fn added_notes_respect_the_original_ranges() {
    // Long notes, so the addition stage fires often.
    let notes: Vec<Note> = (0..6)
        .map(|i| Note::new(22 + i * 17, 90, i as u16 * 800, 2000))
        .collect();
    for behaviour in [Behaviour::Faithful, Behaviour::Fixed] {
        for seed in 0..100 {
            let c = corrupt(
                &segment(notes.clone()),
                Corruption::NoteModification,
                Genre::Pop,
                behaviour,
                &mut rng(seed),
            );
            for e in &c.content {
                let BlockElement::Note(m) = e else {
                    panic!("mask")
                };
                let pv = m.pitch_velocity.unwrap();
                let onset = m.onset_ms.unwrap();
                let dur = m.dur_ms.unwrap();
                assert!(onset % 10 == 0 && onset <= 4000, "{m:?}");
                assert!(dur % 10 == 0 && (10..=5000).contains(&dur), "{m:?}");
                assert!((17..=113).contains(&pv.pitch), "{m:?}");
                if behaviour == Behaviour::Fixed {
                    assert!((21..=108).contains(&pv.pitch), "{m:?}");
                }
            }
        }
    }
}

#[test]
fn round10_is_python_half_to_even() {
    assert_eq!(round10(255.0), 260);
    assert_eq!(round10(265.0), 260);
    assert_eq!(round10(245.0), 240);
    assert_eq!(round10(250.0), 250);
    assert_eq!(round10(4994.0), 4990);
}

#[test]
fn masks_and_whole_mask() {
    let notes = vec![Note::new(62, 90, 120, 300)];
    let s = segment(notes);
    let c = corrupt(
        &s,
        Corruption::PitchVelocityMask,
        Genre::Jazz,
        Behaviour::Fixed,
        &mut rng(0),
    );
    assert_eq!(c.tokens(), [2305, 2290, 2285, 1293, 1812, 2288, 2305]);
    let c = corrupt(
        &segment(vec![]),
        Corruption::WholeMask,
        Genre::Jazz,
        Behaviour::Fixed,
        &mut rng(0),
    );
    assert_eq!(c.content, [BlockElement::Mask]);
    for kind in Corruption::ALL {
        for behaviour in [Behaviour::Faithful, Behaviour::Fixed] {
            let c = corrupt(
                &segment(vec![]),
                kind,
                Genre::Classical,
                behaviour,
                &mut rng(0),
            );
            let want: &[BlockElement] = if kind == Corruption::WholeMask {
                &[BlockElement::Mask]
            } else {
                &[]
            };
            assert_eq!(c.content, want, "{kind}");
            assert_eq!(c.kind, kind);
        }
    }
}

#[test]
fn permutations_keep_timing_and_the_multisets() {
    let notes: Vec<Note> = (0..12)
        .map(|i| {
            Note::new(
                40 + i * 3,
                [15, 30, 45, 60][i as usize % 4],
                i as u16 * 100,
                50 + i as u16 * 10,
            )
        })
        .collect();
    let sorted = |mut v: Vec<u8>| {
        v.sort();
        v
    };
    for seed in 0..20 {
        let p = run(
            notes.clone(),
            Corruption::PermutePitches,
            Behaviour::Faithful,
            seed,
        );
        let v = run(
            notes.clone(),
            Corruption::PermutePitchVelocity,
            Behaviour::Faithful,
            seed,
        );
        for out in [&p, &v] {
            assert_eq!(out.len(), notes.len());
            for (o, n) in out.iter().zip(&notes) {
                assert_eq!((o.onset_ms, o.dur_ms), (n.onset_ms, n.dur_ms));
            }
            assert_eq!(
                sorted(out.iter().map(|o| o.pitch).collect()),
                sorted(notes.iter().map(|o| o.pitch).collect())
            );
            assert_eq!(
                sorted(out.iter().map(|o| o.velocity).collect()),
                sorted(notes.iter().map(|o| o.velocity).collect())
            );
        }
        assert!(p.iter().zip(&notes).all(|(o, n)| o.velocity == n.velocity));
    }
    assert_ne!(
        run(
            notes.clone(),
            Corruption::PermutePitchVelocity,
            Behaviour::Faithful,
            1
        ),
        notes
    );
}

#[test]
fn fragmentation_keeps_a_leading_fragment() {
    let notes: Vec<Note> = (0..20).map(|i| n(40 + i, i as u16 * 100)).collect();
    for seed in 0..50 {
        let out = run(
            notes.clone(),
            Corruption::Fragmentation,
            Behaviour::Fixed,
            seed,
        );
        assert!((4..=10).contains(&out.len()), "{}", out.len());
        assert_eq!(out[..], notes[..out.len()]);
    }
    assert_eq!(
        run(
            vec![n(60, 0), n(62, 10)],
            Corruption::Fragmentation,
            Behaviour::Fixed,
            0
        ),
        []
    );
}

#[test]
fn transposition_faithful_is_unbounded_fixed_is_clamped() {
    let low: Vec<Note> = (0..10)
        .map(|i| Note::new(i % 3, 60, i as u16 * 10, 100))
        .collect();
    let high: Vec<Note> = (0..10)
        .map(|i| Note::new(127 - i % 3, 60, i as u16 * 10, 100))
        .collect();
    let mut out_of_range = 0;
    for seed in 0..30 {
        for notes in [&low, &high] {
            let seg = segment(notes.clone());
            let c = corrupt(
                &seg,
                Corruption::IncorrectTransposition,
                Genre::Jazz,
                Behaviour::Faithful,
                &mut rng(seed),
            );
            for (e, orig) in c.content.iter().zip(notes.iter()) {
                let BlockElement::Note(m) = e else {
                    panic!("mask")
                };
                let shift = m.pitch_velocity.unwrap().pitch - orig.pitch as i16;
                assert!((-5..=5).contains(&shift));
                out_of_range += !(0..=127).contains(&m.pitch_velocity.unwrap().pitch) as u32;
            }
            // Out-of-range pitches lose their pitch-velocity token; every id stays valid.
            let ids = c.tokens();
            assert!(ids.iter().all(|&i| (1..=2305).contains(&i)));
            let c = corrupt(
                &seg,
                Corruption::IncorrectTransposition,
                Genre::Jazz,
                Behaviour::Fixed,
                &mut rng(seed),
            );
            for m in &c.content {
                let BlockElement::Note(m) = m else {
                    panic!("mask")
                };
                let p = m.pitch_velocity.unwrap().pitch;
                assert!(
                    (21..=108).contains(&p) || p == 0 || p == 1 || p == 2 || p >= 125,
                    "{p}"
                );
            }
        }
    }
    assert!(out_of_range > 0);
    // In-range input stays in range under Fixed.
    let mid: Vec<Note> = (0..10)
        .map(|i| Note::new(21 + (i % 2) * 87, 60, i as u16 * 10, 100))
        .collect();
    for seed in 0..30 {
        let out = run(
            mid.clone(),
            Corruption::IncorrectTransposition,
            Behaviour::Fixed,
            seed,
        );
        assert!(out.iter().all(|o| (21..=108).contains(&o.pitch)));
    }
}

#[test]
fn same_seed_same_output() {
    let notes = four_notes();
    for kind in Corruption::ALL {
        for behaviour in [Behaviour::Faithful, Behaviour::Fixed] {
            let a = corrupt(
                &segment(notes.clone()),
                kind,
                Genre::Jazz,
                behaviour,
                &mut rng(42),
            );
            let b = corrupt(
                &segment(notes.clone()),
                kind,
                Genre::Jazz,
                behaviour,
                &mut rng(42),
            );
            assert_eq!(a, b);
        }
    }
}

#[test]
fn corruption_choice() {
    assert_eq!(
        "random".parse::<CorruptionChoice>(),
        Ok(CorruptionChoice::Random)
    );
    assert_eq!(
        "skyline".parse::<CorruptionChoice>(),
        Ok(CorruptionChoice::Fixed(Corruption::Skyline))
    );
    assert_eq!(CorruptionChoice::Random.to_string(), "random");
    assert_eq!(
        CorruptionChoice::from(Corruption::PermutePitches).to_string(),
        "permute_pitches"
    );
    let err = "shuffle"
        .parse::<CorruptionChoice>()
        .unwrap_err()
        .to_string();
    for name in [
        "pitch_velocity_mask",
        "permute_pitches",
        "note_modification",
        "random",
    ] {
        assert!(err.contains(name), "{err}");
    }
    let mut r = rng(5);
    let mut seen = [0u32; 9];
    for _ in 0..900 {
        seen[CorruptionChoice::Random.pick(&mut r).index()] += 1;
    }
    assert!(seen.iter().all(|&c| (60..=140).contains(&c)), "{seen:?}");
    assert_eq!(
        CorruptionChoice::Fixed(Corruption::Skyline).pick(&mut r),
        Corruption::Skyline
    );
}

#[test]
fn context_drop_is_ten_percent_and_never_on_the_first_element() {
    let piece = Piece {
        segments: (0..3)
            .map(|w| Segment {
                window: w,
                notes: vec![n(60, 0)],
            })
            .collect(),
    };
    let mut r = rng(9);
    assert!((0..1000).all(|_| random_context_drop(&piece, 0, &mut r) == Tail::Keep));
    let drops = (0..10_000)
        .filter(|_| random_context_drop(&piece, 1, &mut r) == Tail::Drop)
        .count();
    assert!((800..1200).contains(&drops), "{drops}");
    // A piece whose first element is a <T>: segment 0 can be dropped too.
    let shifted = Piece {
        segments: vec![Segment {
            window: 1,
            notes: vec![n(60, 0)],
        }],
    };
    assert!((0..1000).any(|_| random_context_drop(&shifted, 0, &mut r) == Tail::Drop));
}
