//! Training samples (spec §7) and classifier windows (spec §9): layout and determinism.
use std::path::PathBuf;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use improvnet::corrupt::{Behaviour, CorruptionChoice};
use improvnet::music::Piece;
use improvnet::tokens::{
    decoder_target, pad, Corruption, Genre, Tail, Token, BOS, CLASSIFIER_MAX_LEN, CORRUPTION_BASE,
    DECODER_MAX_LEN, ENCODER_MAX_LEN, EOS, GENRE_BASE, ONSET_BASE, PAD, SEP,
};
use improvnet::train::{
    classifier_batch, classifier_sample, epoch_batches, training_batch, training_sample, transpose,
    ClassifierConfig, LabeledPiece, SampleConfig,
};

fn piece(name: &str) -> Piece {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name);
    Piece::from_midi(&path).unwrap()
}

fn pieces() -> Vec<LabeledPiece> {
    vec![
        LabeledPiece {
            genre: Genre::Classical,
            piece: piece("chopin_nocturne_op15_1.mid"),
        },
        LabeledPiece {
            genre: Genre::Jazz,
            piece: piece("two_hands.mid"),
        },
    ]
}

fn pitches(ids: &[u32]) -> Vec<u8> {
    ids.iter()
        .filter_map(|&id| match Token::from_id(id) {
            Some(Token::PianoNote { pitch, .. }) => Some(pitch),
            _ => None,
        })
        .collect()
}

#[test]
fn same_seed_same_batch() {
    let ps = pieces();
    let refs: Vec<&LabeledPiece> = ps.iter().collect();
    let cfg = SampleConfig::default();
    let a = training_batch(&refs, &cfg, &mut ChaCha8Rng::seed_from_u64(7));
    let b = training_batch(&refs, &cfg, &mut ChaCha8Rng::seed_from_u64(7));
    let c = training_batch(&refs, &cfg, &mut ChaCha8Rng::seed_from_u64(8));
    assert_eq!(a, b);
    assert_ne!(a, c);
    assert_eq!(a.size, 2);
    assert_eq!(a.encoder_ids.len(), 2 * ENCODER_MAX_LEN);
    assert_eq!(a.attention_mask.len(), 2 * ENCODER_MAX_LEN);
    assert_eq!(a.labels.len(), 2 * DECODER_MAX_LEN);
    assert_eq!(a.meta[0].genre, Genre::Classical);
    assert_eq!(a.meta[1].genre, Genre::Jazz);
    for i in 0..2 {
        assert_eq!(a.labels_row(i)[0], BOS);
        assert_ne!(a.encoder_row(i)[0], PAD);
    }

    let e1 = epoch_batches(10, 4, &mut ChaCha8Rng::seed_from_u64(1));
    let e2 = epoch_batches(10, 4, &mut ChaCha8Rng::seed_from_u64(1));
    assert_eq!(e1, e2);
    assert_eq!(e1.iter().map(Vec::len).collect::<Vec<_>>(), [4, 4, 2]);
    let mut all: Vec<usize> = e1.concat();
    all.sort();
    assert_eq!(all, (0..10).collect::<Vec<_>>());

    let ca = classifier_batch(
        &refs,
        &ClassifierConfig::default(),
        &mut ChaCha8Rng::seed_from_u64(3),
    );
    let cb = classifier_batch(
        &refs,
        &ClassifierConfig::default(),
        &mut ChaCha8Rng::seed_from_u64(3),
    );
    assert_eq!(ca, cb);
    assert_eq!(ca.ids.len(), 2 * CLASSIFIER_MAX_LEN);
    assert_eq!(ca.labels, [0, 2]);
}

#[test]
fn sample_layout_follows_spec_7() {
    let ps = pieces();
    let mut seen_kinds = std::collections::HashSet::new();
    let mut shifts = std::collections::HashSet::new();
    let mut drops = 0;
    for seed in 0..400u64 {
        let lp = &ps[(seed % 2) as usize];
        let cfg = SampleConfig {
            behaviour: if seed % 3 == 0 {
                Behaviour::Fixed
            } else {
                Behaviour::Faithful
            },
            ..SampleConfig::default()
        };
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let s = training_sample(&lp.piece, lp.genre, &cfg, &mut rng);
        let m = s.meta;
        seen_kinds.insert(m.corruption);
        shifts.insert(m.transpose);
        assert_eq!(s.encoder_ids.len(), ENCODER_MAX_LEN);
        assert_eq!(s.labels.len(), DECODER_MAX_LEN);
        assert!((1..=5).contains(&m.context_before) && (1..=5).contains(&m.context_after));
        assert!((-12..=12).contains(&m.transpose));
        let n = lp.piece.segments.len();
        assert!(m.segment < n);

        let used = s.encoder_ids.iter().take_while(|&&i| i != PAD).count();
        assert!(s.encoder_ids[used..].iter().all(|&i| i == PAD));
        let mask: Vec<u32> = s.encoder_ids.iter().map(|&i| u32::from(i != PAD)).collect();
        assert_eq!(s.attention_mask, mask);

        // Begins with a note (its onset) or with the block's SEP.
        let first = s.encoder_ids[0];
        assert!(
            first == SEP || (ONSET_BASE..ONSET_BASE + 501).contains(&first),
            "seed {seed}: starts with {first}"
        );
        let seps: Vec<usize> = (0..used).filter(|&i| s.encoder_ids[i] == SEP).collect();
        let block_dropped =
            m.tail == Tail::Drop && (m.segment + m.context_after).min(n - 1) == m.segment;
        if m.tail == Tail::Drop {
            drops += 1;
        }
        if block_dropped {
            assert!(seps.is_empty(), "seed {seed}");
        } else if used < ENCODER_MAX_LEN {
            assert_eq!(seps.len(), 2, "seed {seed}: {m:?}");
        } else {
            assert!(seps.len() <= 2 && !seps.is_empty(), "seed {seed}");
        }
        if let Some(&open) = seps.first() {
            assert_eq!(
                s.encoder_ids[open + 1],
                CORRUPTION_BASE + m.corruption.index() as u32
            );
            assert_eq!(
                s.encoder_ids[open + 2],
                GENRE_BASE + lp.genre.index() as u32
            );
        }

        // Labels: <S> the transposed segment <E>, padded with 0.
        let moved = transpose(&lp.piece, m.transpose);
        let expected = pad(&decoder_target(&moved.segments[m.segment]), DECODER_MAX_LEN).ids;
        assert_eq!(s.labels, expected, "seed {seed}");
        assert_eq!(s.labels[0], BOS);
        let label_len = s.labels.iter().take_while(|&&i| i != PAD).count();
        if label_len < DECODER_MAX_LEN {
            assert_eq!(s.labels[label_len - 1], EOS);
        }

        // Transposition keeps the target and the context on the keyboard.
        let context: Vec<u32> = match (seps.first(), seps.get(1)) {
            (Some(&a), Some(&b)) => s.encoder_ids[..a]
                .iter()
                .chain(&s.encoder_ids[b..used])
                .copied()
                .collect(),
            (Some(&a), None) => s.encoder_ids[..a].to_vec(),
            _ => s.encoder_ids[..used].to_vec(),
        };
        for p in pitches(&s.labels).into_iter().chain(pitches(&context)) {
            assert!((21..=108).contains(&p), "seed {seed}: pitch {p}");
        }
    }
    assert_eq!(seen_kinds.len(), 9, "all nine corruptions are drawn");
    assert!(shifts.len() > 15, "{shifts:?}");
    assert!((10..=80).contains(&drops), "about 10% tail drops: {drops}");
}

#[test]
fn fixed_corruption_and_no_context_drop() {
    let lp = &pieces()[0];
    let cfg = SampleConfig {
        corruption: CorruptionChoice::Fixed(Corruption::WholeMask),
        context_drop: false,
        context: (2, 2),
        ..SampleConfig::default()
    };
    for seed in 0..50 {
        let s = training_sample(
            &lp.piece,
            lp.genre,
            &cfg,
            &mut ChaCha8Rng::seed_from_u64(seed),
        );
        assert_eq!(s.meta.corruption, Corruption::WholeMask);
        assert_eq!(s.meta.tail, Tail::Keep);
        assert_eq!((s.meta.context_before, s.meta.context_after), (2, 2));
        let open = s.encoder_ids.iter().position(|&i| i == SEP).unwrap();
        assert_eq!(
            &s.encoder_ids[open..open + 5],
            &[
                SEP,
                Token::Corruption(Corruption::WholeMask).id(),
                Token::Genre(Genre::Classical).id(),
                Token::Mask.id(),
                SEP
            ]
        );
    }
}

#[test]
fn classifier_window_is_uncorrupted_and_on_the_keyboard() {
    let lp = &pieces()[0];
    for seed in 0..100 {
        let s = classifier_sample(
            &lp.piece,
            lp.genre,
            &ClassifierConfig::default(),
            &mut ChaCha8Rng::seed_from_u64(seed),
        );
        assert_eq!(s.ids.len(), CLASSIFIER_MAX_LEN);
        assert_eq!(s.label, 0);
        assert!(!s.ids.contains(&SEP));
        assert!(s
            .ids
            .iter()
            .all(|&i| i < GENRE_BASE || i == PAD || i == Token::T.id()));
        assert!(pitches(&s.ids).iter().all(|p| (21..=108).contains(p)));
        assert_ne!(s.ids[0], PAD);
    }
}

#[test]
fn exported_samples_read_back_and_do_not_depend_on_threads() {
    use improvnet::train::export::{export_samples, exported_sample, read_samples};
    let all = pieces();
    let refs: Vec<&LabeledPiece> = all.iter().collect();
    let config = SampleConfig::default();
    let write = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        let mut bytes = Vec::new();
        let mut seen = Vec::new();
        pool.install(|| export_samples(&refs, &config, 9, 40, &mut bytes, |n| seen.push(n)))
            .unwrap();
        (bytes, seen)
    };
    let (one, seen) = write(1);
    let (two, _) = write(2);
    assert_eq!(one, two, "the bytes depend on the thread count");
    assert_eq!(seen, vec![40]);
    assert_eq!(&one[..8], b"IMPVSMP1");

    let samples = read_samples(&one).unwrap();
    assert_eq!(samples.len(), 40);
    for (i, s) in samples.iter().enumerate() {
        assert_eq!(*s, exported_sample(&refs, &config, 9, i as u64));
        assert_eq!(s.labels.first(), Some(&BOS));
        assert_eq!(s.labels.last(), Some(&EOS));
        assert!(s.encoder_ids.iter().all(|&id| id != PAD));
        let k = Corruption::ALL
            .iter()
            .position(|&c| c == s.corruption)
            .unwrap();
        assert!(s.encoder_ids.contains(&(CORRUPTION_BASE + k as u32)));
        let g = Genre::ALL.iter().position(|&x| x == s.genre).unwrap();
        assert!(s.encoder_ids.contains(&(GENRE_BASE + g as u32)));
    }
    // One sample per piece per epoch: each pair of samples covers both pieces (both genres).
    for pair in samples.chunks(2) {
        assert_ne!(pair[0].genre, pair[1].genre);
    }
    // Different seeds, different samples; a cut file is an error, not a shorter list.
    let mut other = Vec::new();
    export_samples(&refs, &config, 10, 40, &mut other, |_| {}).unwrap();
    assert_ne!(read_samples(&other).unwrap(), samples);
    let err = read_samples(&one[..one.len() - 3]).unwrap_err();
    assert!(err.contains("truncated"), "{err}");
    assert!(read_samples(b"MThd\0\0\0\x06").is_err());
}
