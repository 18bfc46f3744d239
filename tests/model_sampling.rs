//! Sampling and logits processors on synthetic logits.

use improvnet::model::generate::{argmax, sample};
use improvnet::model::{ChordConstraint, ForbidTokens, LogitsProcessor, SamplingParams};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

const ONSET: u32 = 1281; // ("onset", 0)
fn onset(ms: u32) -> u32 {
    ONSET + ms / 10
}
const PV: u32 = 829; // ("piano", 60, 90)
const DUR: u32 = 1783;

#[test]
fn forbid_tokens_sets_minus_infinity() {
    let mut l = vec![1.0f32; 2306];
    ForbidTokens(vec![2300, 2304]).process(&[2303], &mut l);
    assert_eq!(l[2300], f32::NEG_INFINITY);
    assert_eq!(l[2304], f32::NEG_INFINITY);
    assert_eq!(l[5], 1.0);
}

#[test]
fn top_k_keeps_ties_and_samples_only_allowed() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let p = SamplingParams {
        top_k: 2,
        ..Default::default()
    };
    let mut seen = [0usize; 5];
    let mut scratch = Vec::new();
    for _ in 0..3000 {
        // 1.0 appears twice at the k-th value: both kept (HF keeps ties).
        let mut l = vec![0.0, 2.0, 1.0, 1.0, -1.0];
        seen[sample(&mut l, &p, &mut rng, &mut scratch) as usize] += 1;
    }
    assert_eq!(seen[0], 0);
    assert_eq!(seen[4], 0);
    assert!(seen[2] > 100 && seen[3] > 100, "{seen:?}");
    // Probabilities ~ e^2 : e : e.
    let f = seen[1] as f64 / 3000.0;
    let want = 2f64.exp() / (2f64.exp() + 2.0 * 1f64.exp());
    assert!((f - want).abs() < 0.04, "{f} vs {want}");
}

#[test]
fn greedy_temperature_and_top_p() {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let mut scratch = Vec::new();
    let mut l = vec![0.0, 3.0, 3.0, 1.0];
    assert_eq!(
        sample(&mut l, &SamplingParams::greedy(), &mut rng, &mut scratch),
        1
    );
    assert_eq!(argmax(&[0.0, 5.0, 5.0]), 1);
    // top_p 0.5: only the top token survives when it holds > 50%.
    let p = SamplingParams {
        top_p: 0.5,
        top_k: 0,
        ..Default::default()
    };
    for _ in 0..200 {
        let mut l = vec![0.0, 5.0, 1.0, 1.0];
        assert_eq!(sample(&mut l, &p, &mut rng, &mut scratch), 1);
    }
    // Low temperature concentrates on the max.
    let p = SamplingParams {
        temperature: 0.01,
        ..Default::default()
    };
    for _ in 0..200 {
        let mut l = vec![0.0, 1.0, 0.9];
        assert_eq!(sample(&mut l, &p, &mut rng, &mut scratch), 1);
    }
    // Seeded: same stream, same draws.
    let draw = |seed| {
        let mut r = ChaCha8Rng::seed_from_u64(seed);
        let mut s = Vec::new();
        (0..50)
            .map(|_| {
                let mut l: Vec<f32> = (0..100).map(|i| (i % 7) as f32).collect();
                sample(&mut l, &SamplingParams::default(), &mut r, &mut s)
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(draw(9), draw(9));
}

fn allowed(l: &[f32]) -> Vec<u32> {
    l.iter()
        .enumerate()
        .filter(|(_, v)| v.is_finite())
        .map(|(i, _)| i as u32)
        .collect()
}

#[test]
fn chord_constraint_forces_the_first_group_to_three_notes() {
    let mut c = ChordConstraint::new(3);
    let mut gen = vec![2303u32, 2303];
    let mut l = vec![0.0f32; 2306];
    c.process(&gen, &mut l);
    assert_eq!(
        allowed(&l).len(),
        2306,
        "nothing constrained before any onset"
    );

    // Note 1 at 120 ms: onset pushed, then dur, then pitch-velocity -> constrain next.
    gen.extend([onset(120), DUR]);
    let mut l = vec![0.0f32; 2306];
    c.process(&gen, &mut l);
    assert_eq!(
        allowed(&l).len(),
        2306,
        "no constraint after an onset or a dur"
    );
    assert_eq!(c.stack(), &[120]);
    gen.push(PV);
    let mut l = vec![0.0f32; 2306];
    c.process(&gen, &mut l);
    let want: Vec<u32> = (0..=5).map(|k| onset(120 + 10 * k)).collect();
    assert_eq!(allowed(&l), want);
    assert!(
        !l[2304].is_finite(),
        "<E> cannot be sampled on a constrained step"
    );

    // Note 2 at 150 ms (within 50): pushed; after its PV still constrained (|stack| = 2).
    gen.extend([onset(150), DUR, PV]);
    let mut l = vec![0.0f32; 2306];
    c.process(&gen, &mut l);
    assert_eq!(c.stack(), &[120, 150]);
    let want: Vec<u32> = (0..=5).map(|k| onset(150 + 10 * k)).collect();
    assert_eq!(allowed(&l), want);

    // Note 3: stack reaches 3 -> unconstrained afterwards, for good.
    gen.extend([onset(160), DUR, PV]);
    let mut l = vec![0.0f32; 2306];
    c.process(&gen, &mut l);
    assert_eq!(c.stack().len(), 3);
    assert_eq!(allowed(&l).len(), 2306);
    // A far onset is not pushed and nothing is constrained.
    gen.extend([onset(900), DUR, PV]);
    let mut l = vec![0.0f32; 2306];
    c.process(&gen, &mut l);
    assert_eq!(c.stack().len(), 3);
    assert_eq!(allowed(&l).len(), 2306);
}

#[test]
fn chord_constraint_clips_at_the_last_onset() {
    let mut c = ChordConstraint::new(3);
    let gen = vec![2303u32, 2303, onset(4980), DUR, PV];
    let mut l = vec![0.0f32; 2306];
    c.process(&gen, &mut l);
    assert_eq!(allowed(&l), vec![onset(4980), onset(4990), onset(5000)]);
}
