//! Strict fidelity on a tiny random model (which samples garbage, so only the template can make
//! the output keep anything): every corruption, many seeds, the template never broken; and free
//! fidelity without the sanity rules is the engine as it was before templates, bit for bit.
mod refine_common;

use improvnet::corrupt::{corrupt, top_voice, Behaviour, BlockElement, Corruption};
use improvnet::music::{Note, Piece};
use improvnet::refine::{
    self, no_progress, Context, Engine, Fidelity, HarmonyOptions, RefineOptions, Settings,
};
use proptest::prelude::*;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use refine_common::{nocturne, tiny_model};

fn sorted(mut v: Vec<(u16, u16, u8, u8)>) -> Vec<(u16, u16, u8, u8)> {
    v.sort_unstable();
    v
}

/// What `kind`'s strict template promises about `out`, the rewrite of `notes`.
fn check_template(kind: Corruption, notes: &[Note], block: &[BlockElement], out: &[Note]) {
    let tune: Vec<Note> = top_voice(notes).into_iter().map(|i| notes[i]).collect();
    for t in &tune {
        assert!(out.contains(t), "{kind}: tune note {t:?} lost: {out:?}");
    }
    let shown: Vec<(i16, u8)> = block
        .iter()
        .filter_map(|e| match e {
            BlockElement::Note(n) => n.pitch_velocity.map(|pv| (pv.pitch, pv.velocity)),
            BlockElement::Mask => None,
        })
        .collect();
    let grid = matches!(
        kind,
        Corruption::PitchVelocityMask
            | Corruption::OnsetDurationMask
            | Corruption::PermutePitches
            | Corruption::PermutePitchVelocity
            | Corruption::IncorrectTransposition
    );
    if grid {
        assert_eq!(out.len(), notes.len(), "{kind}: one note per slot");
    }
    match kind {
        Corruption::PitchVelocityMask => {
            for (o, n) in out.iter().zip(notes) {
                assert_eq!((o.onset_ms, o.dur_ms), (n.onset_ms, n.dur_ms), "{kind}");
            }
        }
        Corruption::OnsetDurationMask => {
            for (o, n) in out.iter().zip(notes) {
                assert_eq!((o.pitch, o.velocity), (n.pitch, n.velocity), "{kind}");
            }
        }
        Corruption::PermutePitches | Corruption::PermutePitchVelocity => {
            let mut a: Vec<u8> = out.iter().map(|n| n.pitch).collect();
            let mut b: Vec<u8> = notes.iter().map(|n| n.pitch).collect();
            a.sort_unstable();
            b.sort_unstable();
            assert_eq!(a, b, "{kind}: the block's own pitches, each once");
            let velocities = |v: &[Note]| {
                let mut x: Vec<u8> = v.iter().map(|n| n.velocity).collect();
                x.sort_unstable();
                x
            };
            assert_eq!(velocities(out), velocities(notes), "{kind}");
            for (o, n) in out.iter().zip(notes) {
                assert_eq!((o.onset_ms, o.dur_ms), (n.onset_ms, n.dur_ms), "{kind}");
                if kind == Corruption::PermutePitches {
                    assert_eq!(o.velocity, n.velocity, "{kind}");
                }
            }
        }
        Corruption::IncorrectTransposition => {
            for ((o, n), s) in out.iter().zip(notes).zip(&shown) {
                assert_eq!(
                    (o.onset_ms, o.dur_ms, o.velocity),
                    (n.onset_ms, n.dur_ms, n.velocity)
                );
                assert!(
                    (i16::from(o.pitch) - s.0).abs() <= 5,
                    "{kind}: {} far from the shown {}",
                    o.pitch,
                    s.0
                );
            }
        }
        Corruption::Fragmentation => {
            let kept: Vec<(u16, u16, u8, u8)> = block
                .iter()
                .filter_map(|e| match e {
                    BlockElement::Note(n) => n
                        .to_note()
                        .map(|n| (n.onset_ms, n.dur_ms, n.pitch, n.velocity)),
                    BlockElement::Mask => None,
                })
                .collect();
            let all = sorted(
                out.iter()
                    .map(|n| (n.onset_ms, n.dur_ms, n.pitch, n.velocity))
                    .collect(),
            );
            for k in kept {
                assert!(all.contains(&k), "{kind}: kept note {k:?} lost");
            }
        }
        _ => {}
    }
    for n in out {
        assert!(n.onset_ms < 5000 && n.dur_ms > 0 && n.velocity > 0, "{n:?}");
        assert!((21..=108).contains(&n.pitch), "{n:?}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn the_strict_decoder_never_breaks_the_template(
        kind in 0..Corruption::ALL.len(),
        segment in 1usize..6,
        seed in 0u64..1_000_000,
        sanity in any::<bool>(),
    ) {
        let model = tiny_model(seed % 7);
        let piece: Piece = nocturne(8);
        let kind = Corruption::ALL[kind];
        let opts = RefineOptions {
            seed,
            sanity,
            fidelity: Fidelity::Strict,
            ..RefineOptions::default()
        };
        let engine = Engine::new(&model, &opts);
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let notes = piece.segments[segment].notes.clone();
        let block = corrupt(&piece.segments[segment], kind, opts.target, Behaviour::Fixed, &mut rng);
        let context = Context { before: 2, after: 2 };
        let out = engine
            .regenerate(&piece, segment, context, &block, false, &mut rng)
            .unwrap();
        check_template(kind, &notes, &block.content, &out);
    }
}

/// FNV-1a over every note (window, pitch, velocity, onset, duration).
fn digest(piece: &Piece) -> String {
    let mut h: u64 = 0xcbf29ce484222325;
    let mut n = 0;
    for s in &piece.segments {
        for x in &s.notes {
            for b in [
                u64::from(s.window),
                u64::from(x.pitch),
                u64::from(x.velocity),
                u64::from(x.onset_ms),
                u64::from(x.dur_ms),
            ] {
                h ^= b;
                h = h.wrapping_mul(0x100000001b3);
            }
            n += 1;
        }
    }
    format!("{n} notes, fnv {h:016x}")
}

#[test]
fn free_fidelity_without_sanity_is_the_engine_before_templates() {
    // Digests recorded with the same calls on 3638f68, the last commit before strict fidelity.
    let model = tiny_model(11);
    let piece = nocturne(8);
    let mut opts = RefineOptions {
        seed: 3,
        max_tokens_per_segment: 120,
        fidelity: Fidelity::Free,
        sanity: false,
        ..RefineOptions::default()
    };
    opts.passes.truncate(4);
    let out = refine::improvise(&model, &piece, &opts, &mut no_progress).unwrap();
    assert_eq!(digest(&out.piece), "109 notes, fnv 56dd3008df821ad0");

    let mut melody = nocturne(4);
    for s in &mut melody.segments {
        s.notes = improvnet::corrupt::skyline(&s.notes, Behaviour::Fixed);
    }
    let mut h = Settings::harmony().refine;
    h.seed = 5;
    h.max_tokens_per_segment = 120;
    h.passes.truncate(2);
    let harmonize = |fidelity, sanity| {
        let opts = RefineOptions {
            fidelity,
            sanity,
            ..h.clone()
        };
        refine::harmonize(
            &model,
            &melody,
            "m",
            &opts,
            HarmonyOptions::default(),
            &mut no_progress,
        )
        .unwrap()
    };
    let out = harmonize(Fidelity::Free, false);
    assert_eq!(digest(&out.piece), "30 notes, fnv c1b41b095f921e1d");

    // The default (strict, with sanity) keeps every note of the melody, which the random
    // model alone does not.
    let strict = harmonize(Fidelity::Strict, true);
    let kept = |p: &Piece| {
        melody
            .segments
            .iter()
            .flat_map(|s| s.notes.iter().map(move |n| (s.window, *n)))
            .filter(|(w, n)| {
                p.segments
                    .iter()
                    .any(|s| s.window == *w && s.notes.contains(n))
            })
            .count()
    };
    assert_eq!(kept(&strict.piece), melody.note_count());
    assert!(kept(&out.piece) < melody.note_count());
}

#[test]
fn speculative_decoding_changes_nothing_but_the_forwards() {
    // Ten passes of the default recipe (every corruption of it, strict and free) and a
    // harmonization, with and without drafts: the same notes, and the template's forced tokens
    // taken several a forward.
    let model = tiny_model(5);
    let piece = nocturne(8);
    let mut totals = Vec::new();
    for fidelity in [Fidelity::Strict, Fidelity::Free] {
        let run = |speculative| {
            let opts = RefineOptions {
                seed: 9,
                max_tokens_per_segment: 100,
                fidelity,
                speculative,
                ..RefineOptions::default()
            };
            refine::improvise(&model, &piece, &opts, &mut no_progress).unwrap()
        };
        let (plain, drafted) = (run(false), run(true));
        assert_eq!(digest(&plain.piece), digest(&drafted.piece), "{fidelity}");
        assert_eq!(plain.report.segment_tokens, drafted.report.segment_tokens);
        let sum =
            |r: &refine::RefineReport| -> improvnet::model::DecodeStats { r.drafts.values().sum() };
        let (p, d) = (sum(&plain.report), sum(&drafted.report));
        let tokens: usize = drafted.report.segment_tokens.iter().sum();
        assert_eq!(
            p.forwards, tokens,
            "{fidelity}: one forward a token without drafts"
        );
        assert_eq!(p.tokens, tokens);
        assert_eq!(p.drafted, 0);
        assert_eq!(d.tokens, tokens, "{fidelity}");
        // Each forward gives one token the draft did not guess, except one ending on a guessed
        // `<E>`.
        assert!(d.forwards + d.accepted >= tokens, "{fidelity}");
        assert!(d.forwards + d.accepted <= tokens + plain.report.segment_tokens.len());
        totals.push((fidelity, tokens, d));
    }
    let (_, tokens, strict) = totals[0];
    assert!(
        strict.forwards * 3 < tokens * 2,
        "strict: {} forwards for {tokens} tokens",
        strict.forwards
    );
}
