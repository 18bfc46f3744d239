//! The vocabulary ids of spec §3 / §17, checked by hand against the formulas.

use improvnet::tokens::*;

#[test]
fn spec_examples() {
    assert_eq!(
        Token::PianoNote {
            pitch: 60,
            velocity: 90
        }
        .id(),
        829
    );
    assert_eq!(Token::Onset(0).id(), 1281);
    assert_eq!(Token::Dur(10).id(), 1783);
    assert_eq!(Token::Bos.id(), 2303);
    assert_eq!(Token::Eos.id(), 2304);
    assert_eq!(Token::Sep.id(), 2305);
    assert_eq!(
        (BOS, EOS, SEP, PAD, VOCAB_SIZE),
        (2303, 2304, 2305, 0, 2306)
    );
}

#[test]
fn range_edges() {
    assert_eq!(
        Token::PianoNote {
            pitch: 0,
            velocity: 0
        }
        .id(),
        1
    );
    assert_eq!(
        Token::PianoNote {
            pitch: 127,
            velocity: 120
        }
        .id(),
        1152
    );
    assert_eq!(Token::Onset(5000).id(), 1781);
    assert_eq!(Token::Dur(0).id(), 1782);
    assert_eq!(Token::Dur(5000).id(), 2282);
    assert_eq!(Token::Onset(120).id(), 1293);
    assert_eq!(Token::Dur(300).id(), 1812);
}

#[test]
fn velocity_127_row() {
    // The 10th row (index 9): 1 + 9 * 128 + pitch.
    assert_eq!(
        Token::PianoNote {
            pitch: 0,
            velocity: 127
        }
        .id(),
        1153
    );
    assert_eq!(
        Token::PianoNote {
            pitch: 60,
            velocity: 127
        }
        .id(),
        1213
    );
    assert_eq!(
        Token::PianoNote {
            pitch: 127,
            velocity: 127
        }
        .id(),
        1280
    );
    assert_eq!(
        Token::from_id(1213),
        Some(Token::PianoNote {
            pitch: 60,
            velocity: 127
        })
    );
}

#[test]
fn genre_mask_corruption_and_special_ids() {
    assert_eq!(Token::Genre(Genre::Classical).id(), 2283);
    assert_eq!(Token::Genre(Genre::Pop).id(), 2284);
    assert_eq!(Token::Genre(Genre::Jazz).id(), 2285);
    assert_eq!(Token::MaskOnset.id(), 2286);
    assert_eq!(Token::MaskDur.id(), 2287);
    assert_eq!(Token::MaskPitchVelocity.id(), 2288);
    assert_eq!(Token::Mask.id(), 2289);
    let names = [
        "pitch_velocity_mask",
        "onset_duration_mask",
        "whole_mask",
        "pitch_permutation",
        "pitch_velocity_permutation",
        "fragmentation",
        "incorrect_transposition",
        "skyline",
        "note_modification",
    ];
    for (i, (c, name)) in Corruption::ALL.iter().zip(names).enumerate() {
        assert_eq!(Token::Corruption(*c).id(), 2290 + i as u32);
        assert_eq!(c.token_name(), name);
    }
    assert_eq!(Token::Corruption(Corruption::NoteModification).id(), 2298);
    assert_eq!(Token::Prefix.id(), 2299);
    assert_eq!(Token::T.id(), 2300);
    assert_eq!(Token::D.id(), 2301);
    assert_eq!(Token::U.id(), 2302);
    assert_eq!((T_SEP, D_TOKEN, U_TOKEN, PREFIX), (2300, 2301, 2302, 2299));
}

#[test]
fn round_trip_every_id() {
    for id in 1..VOCAB_SIZE {
        let t = Token::from_id(id).unwrap_or_else(|| panic!("id {id} has no token"));
        assert_eq!(t.id(), id, "{t:?}");
        assert_eq!(t.checked_id(), Some(id), "{t:?}");
    }
    assert_eq!(Token::from_id(0), None);
    assert_eq!(Token::from_id(2306), None);
    assert_eq!(Token::from_id(u32::MAX), None);
}

#[test]
fn names_parse_and_print() {
    for g in Genre::ALL {
        assert_eq!(g.to_string().parse::<Genre>(), Ok(g));
    }
    assert_eq!("jazz".parse::<Genre>(), Ok(Genre::Jazz));
    let err = "rock".parse::<Genre>().unwrap_err().to_string();
    assert!(err.contains("classical, pop, jazz"), "{err}");

    for c in Corruption::ALL {
        assert_eq!(c.to_string().parse::<Corruption>(), Ok(c));
    }
    assert_eq!(
        "permute_pitches".parse::<Corruption>(),
        Ok(Corruption::PermutePitches)
    );
    let err = "pitch_permutation"
        .parse::<Corruption>()
        .unwrap_err()
        .to_string();
    assert!(err.contains("permute_pitch_velocity"), "{err}");
    assert!(err.contains("note_modification"), "{err}");
}
