//! Properties over random segments: every corruption x behaviour x seed yields valid ids within
//! the model's lengths, Fixed stays on the piano, and decoder targets round-trip.

use improvnet::corrupt::*;
use improvnet::music::{Note, Piece, Segment};
use improvnet::tokens::{
    decoder_target, encoder_input, encoder_input_with_tail, parse_notes, DECODER_MAX_LEN,
    ENCODER_MAX_LEN,
};
use proptest::prelude::*;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

fn note() -> impl Strategy<Value = Note> {
    (21u8..=108, 0usize..9, 0u16..500, 1u16..=500)
        .prop_map(|(p, v, o, d)| Note::new(p, v as u8 * 15, o * 10, d * 10))
}

/// A segment as the tokenizer makes it: notes stably sorted by onset.
fn notes(max: usize) -> impl Strategy<Value = Vec<Note>> {
    prop::collection::vec(note(), 0..max).prop_map(|mut v| {
        v.sort_by_key(|n| n.onset_ms);
        v
    })
}

fn piece() -> impl Strategy<Value = Piece> {
    prop::collection::vec((1u32..4, notes(60)), 1..7).prop_map(|segs| {
        let mut window = 0;
        let segments = segs
            .into_iter()
            .enumerate()
            .map(|(i, (gap, mut notes))| {
                if i > 0 {
                    window += gap;
                }
                if notes.is_empty() {
                    notes.push(Note::new(60, 90, 0, 500)); // segments are non-empty windows
                }
                Segment { window, notes }
            })
            .collect();
        Piece { segments }
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn every_corruption_gives_valid_encoder_input(
        piece in piece(),
        s in 0usize..8,
        before in 0usize..6,
        after in 0usize..6,
        seed in any::<u64>(),
        drop_tail in any::<bool>(),
    ) {
        let s = s % piece.segments.len();
        for kind in Corruption::ALL {
            for behaviour in [Behaviour::Faithful, Behaviour::Fixed] {
                let mut rng = ChaCha8Rng::seed_from_u64(seed);
                let block = corrupt(&piece.segments[s], kind, Genre::Jazz, behaviour, &mut rng);
                if behaviour == Behaviour::Fixed {
                    for e in &block.content {
                        if let BlockElement::Note(m) = e {
                            if let Some(pv) = m.pitch_velocity {
                                prop_assert!((21..=108).contains(&pv.pitch), "{kind}: {pv:?}");
                            }
                        }
                    }
                }
                let tail = if drop_tail { Tail::Drop } else { Tail::Keep };
                for ids in [
                    encoder_input(&piece, s, before, after, &block),
                    encoder_input_with_tail(&piece, s, before, after, &block, tail),
                    block.tokens(),
                ] {
                    prop_assert!(ids.len() <= ENCODER_MAX_LEN);
                    prop_assert!(ids.iter().all(|&i| (1..=2305).contains(&i)), "{kind}");
                }
            }
        }
    }

    #[test]
    fn decoder_target_round_trips(notes in notes(250)) {
        let seg = Segment { window: 0, notes };
        let ids = decoder_target(&seg);
        prop_assert!(ids.len() <= DECODER_MAX_LEN);
        prop_assert!(ids.iter().all(|&i| (1..=2305).contains(&i)));
        let parsed = parse_notes(&ids);
        if 3 * seg.notes.len() + 2 <= DECODER_MAX_LEN {
            prop_assert_eq!(&parsed.notes, &seg.notes);
            prop_assert!(parsed.terminated);
        } else {
            prop_assert_eq!(&parsed.notes[..], &seg.notes[..170]);
        }
        prop_assert!(parsed.t_positions.is_empty());
    }

    #[test]
    fn parse_never_panics(ids in prop::collection::vec(0u32..2400, 0..600)) {
        let parsed = parse_notes(&ids);
        prop_assert!(parsed.notes.len() <= ids.len() / 3);
    }
}
