//! Sequence layouts of spec §4, the worked example of §4.4 token for token.

use improvnet::corrupt::{corrupt, Behaviour};
use improvnet::music::{Note, Piece, Segment};
use improvnet::tokens::*;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

fn seg(window: u32, notes: &[(u8, u8, u16, u16)]) -> Segment {
    Segment {
        window,
        notes: notes
            .iter()
            .map(|&(p, v, o, d)| Note::new(p, v, o, d))
            .collect(),
    }
}

fn worked_piece() -> Piece {
    Piece {
        segments: vec![
            seg(
                0,
                &[(60, 90, 0, 500), (64, 75, 0, 480), (67, 60, 1000, 250)],
            ),
            seg(1, &[(62, 90, 120, 300), (65, 45, 2500, 700)]),
            seg(2, &[(69, 105, 40, 900)]),
        ],
    }
}

/// Hand-computed ids: piano = 1 + vel_index*128 + pitch, onset = 1281 + o/10, dur = 1782 + d/10.
const SEG0: [u32; 9] = [1281, 1832, 829, 1281, 1830, 705, 1381, 1807, 580];
const SEG2: [u32; 3] = [1285, 1872, 966];

fn block(kind: Corruption, behaviour: Behaviour) -> Vec<u32> {
    let piece = worked_piece();
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    corrupt(&piece.segments[1], kind, Genre::Jazz, behaviour, &mut rng).tokens()
}

#[test]
fn worked_example_pitch_velocity_mask_full_sequence() {
    let piece = worked_piece();
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let b = corrupt(
        &piece.segments[1],
        Corruption::PitchVelocityMask,
        Genre::Jazz,
        Behaviour::Faithful,
        &mut rng,
    );
    let mut want = SEG0.to_vec();
    want.push(2300);
    want.extend([2305, 2290, 2285, 1293, 1812, 2288, 1531, 1852, 2288, 2305]);
    want.push(2300);
    want.extend(SEG2);
    assert_eq!(encoder_input(&piece, 1, 1, 1, &b), want);
    // Larger context clamps to the same window.
    assert_eq!(encoder_input(&piece, 1, 5, 5, &b), want);
}

#[test]
fn worked_example_blocks() {
    for behaviour in [Behaviour::Faithful, Behaviour::Fixed] {
        assert_eq!(
            block(Corruption::OnsetDurationMask, behaviour),
            [2305, 2291, 2285, 2286, 2287, 831, 2286, 2287, 450, 2305]
        );
        assert_eq!(
            block(Corruption::WholeMask, behaviour),
            [2305, 2292, 2285, 2289, 2305]
        );
        assert_eq!(
            block(Corruption::Skyline, behaviour),
            [2305, 2297, 2285, 1293, 1812, 831, 1531, 1852, 834, 2305]
        );
    }
}

#[test]
fn worked_example_decoder_target() {
    let piece = worked_piece();
    assert_eq!(
        decoder_target(&piece.segments[1]),
        [2303, 1293, 1812, 831, 1531, 1852, 450, 2304]
    );
    let parsed = parse_notes(&decoder_target(&piece.segments[1]));
    assert_eq!(parsed.notes, piece.segments[1].notes);
    assert!(parsed.terminated);
    assert!(parsed.t_positions.is_empty());
}

#[test]
fn piece_tokens_counts_t_from_time_zero() {
    let mut want = SEG0.to_vec();
    want.push(2300);
    want.extend([1293, 1812, 831, 1531, 1852, 450]);
    want.push(2300);
    want.extend(SEG2);
    assert_eq!(piece_tokens(&worked_piece()), want);

    // An empty window between segments gives two <T>s; a first segment in window 1 gets one.
    let piece = Piece {
        segments: vec![seg(1, &[(60, 90, 0, 500)]), seg(3, &[(62, 90, 0, 500)])],
    };
    assert_eq!(
        piece_tokens(&piece),
        [2300, 1281, 1832, 829, 2300, 2300, 1281, 1832, 831]
    );
    // The encoder window never starts with <T>, but keeps every <T> between its segments.
    let b = CorruptedSegment {
        kind: Corruption::WholeMask,
        genre: Genre::Pop,
        content: vec![BlockElement::Mask],
    };
    assert_eq!(
        encoder_input(&piece, 1, 1, 0, &b),
        [1281, 1832, 829, 2300, 2300, 2305, 2292, 2284, 2289, 2305]
    );
    assert_eq!(piece_tokens(&Piece::default()), Vec::<u32>::new());
}

#[test]
fn context_is_counted_in_segments_and_clamped() {
    let piece = worked_piece();
    let b = CorruptedSegment {
        kind: Corruption::WholeMask,
        genre: Genre::Jazz,
        content: vec![BlockElement::Mask],
    };
    let blk = [2305, 2292, 2285, 2289, 2305];
    let mut want = blk.to_vec();
    want.push(2300);
    want.extend([1293, 1812, 831, 1531, 1852, 450]);
    assert_eq!(encoder_input(&piece, 0, 3, 1, &b), want);
    let mut want = vec![1293, 1812, 831, 1531, 1852, 450, 2300];
    want.extend(blk);
    assert_eq!(encoder_input(&piece, 2, 1, 4, &b), want);
    assert_eq!(encoder_input(&piece, 1, 0, 0, &b), blk);
    // Past the end: only the block.
    assert_eq!(encoder_input(&piece, 9, 1, 1, &b), blk);
    assert_eq!(encoder_input(&Piece::default(), 0, 1, 1, &b), blk);
}

#[test]
fn tail_drop_loses_the_last_segment_but_keeps_its_t() {
    let piece = worked_piece();
    let b = CorruptedSegment {
        kind: Corruption::WholeMask,
        genre: Genre::Jazz,
        content: vec![BlockElement::Mask],
    };
    let mut want = SEG0.to_vec();
    want.push(2300);
    want.extend([2305, 2292, 2285, 2289, 2305, 2300]);
    assert_eq!(
        encoder_input_with_tail(&piece, 1, 1, 1, &b, Tail::Drop),
        want
    );
    // after = 0: the corrupted segment itself is lost (spec §6.2).
    let mut want = SEG0.to_vec();
    want.push(2300);
    assert_eq!(
        encoder_input_with_tail(&piece, 1, 1, 0, &b, Tail::Drop),
        want
    );
}

#[test]
fn classifier_window_has_no_block_tokens() {
    let piece = worked_piece();
    let ids = classifier_input(&piece, 1, 2, 2, Tail::Keep);
    assert_eq!(ids, piece_tokens(&piece));
    assert!(!ids.contains(&SEP));

    let dense = Piece {
        segments: (0..10)
            .map(|w| Segment {
                window: w,
                notes: vec![Note::new(60, 90, 0, 100); 100],
            })
            .collect(),
    };
    assert_eq!(
        classifier_input(&dense, 5, 2, 2, Tail::Keep).len(),
        CLASSIFIER_MAX_LEN
    );
}

#[test]
fn truncation_keeps_the_beginning() {
    let dense = Piece {
        segments: (0..6)
            .map(|w| Segment {
                window: w,
                notes: (0..200)
                    .map(|i| Note::new(40 + (i % 40) as u8, 60, (i * 20) as u16, 100))
                    .collect(),
            })
            .collect(),
    };
    let b = CorruptedSegment::verbatim(Corruption::Skyline, Genre::Classical, &dense.segments[5]);
    let ids = encoder_input(&dense, 5, 5, 0, &b);
    assert_eq!(ids.len(), ENCODER_MAX_LEN);
    assert_eq!(ids[..], piece_tokens(&dense)[..ENCODER_MAX_LEN]);

    let target = decoder_target(&dense.segments[0]);
    assert_eq!(target.len(), DECODER_MAX_LEN);
    assert_eq!(target[0], BOS);
    assert!(!target.contains(&EOS));
    let parsed = parse_notes(&target);
    assert_eq!(parsed.notes[..], dense.segments[0].notes[..170]);
    assert!(!parsed.terminated);
}

#[test]
fn pad_builds_the_attention_mask() {
    let p = pad(&[5, 6, 7], 5);
    assert_eq!(p.ids, [5, 6, 7, 0, 0]);
    assert_eq!(p.attention_mask, [1, 1, 1, 0, 0]);
    let p = pad(&[5, 6, 7], 2);
    assert_eq!(p.ids, [5, 6]);
    assert_eq!(p.attention_mask, [1, 1]);
    assert_eq!(pad(&[], ENCODER_MAX_LEN).ids.len(), 2048);
}

#[test]
fn parse_ignores_incomplete_notes_and_stops_on_eos_or_pad() {
    let n = |o: u16, d: u16, p: u8, v: u8| {
        [
            Token::Onset(o).id(),
            Token::Dur(d).id(),
            Token::PianoNote {
                pitch: p,
                velocity: v,
            }
            .id(),
        ]
    };
    let mut ids = vec![BOS, BOS];
    ids.extend(n(0, 500, 60, 90));
    ids.extend([
        Token::Dur(100).id(),
        Token::PianoNote {
            pitch: 61,
            velocity: 90,
        }
        .id(),
    ]); // no onset
    ids.extend([2285, 2290, SEP, 9999]); // ignored
    ids.push(T_SEP);
    ids.extend(n(10, 20, 62, 15));
    ids.push(Token::Onset(30).id()); // dangling
    ids.push(EOS);
    ids.extend(n(40, 50, 64, 30)); // after <E>
    let parsed = parse_notes(&ids);
    assert_eq!(
        parsed.notes,
        [Note::new(60, 90, 0, 500), Note::new(62, 15, 10, 20)]
    );
    assert_eq!(parsed.t_positions, [1]);
    assert!(parsed.terminated);

    let mut ids = n(0, 500, 60, 90).to_vec();
    ids.push(PAD);
    ids.extend(n(10, 20, 62, 15));
    assert_eq!(parse_notes(&ids).notes.len(), 1);
    assert_eq!(parse_notes(&[]), ParsedNotes::default());
}

#[test]
fn out_of_range_pitch_loses_only_its_pitch_velocity_token() {
    let b = CorruptedSegment {
        kind: Corruption::IncorrectTransposition,
        genre: Genre::Classical,
        content: vec![
            BlockElement::Note(MaskedNote {
                onset_ms: Some(0),
                dur_ms: Some(10),
                pitch_velocity: Some(PitchVelocity {
                    pitch: -3,
                    velocity: 90,
                }),
            }),
            BlockElement::Note(MaskedNote {
                onset_ms: Some(10),
                dur_ms: Some(10),
                pitch_velocity: Some(PitchVelocity {
                    pitch: 130,
                    velocity: 90,
                }),
            }),
        ],
    };
    assert_eq!(b.tokens(), [2305, 2296, 2283, 1281, 1783, 1282, 1783, 2305]);
}
