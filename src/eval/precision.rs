//! Does a cheaper arithmetic change what the model says? The same model with its encoder's
//! products in f32 and in bf16 ([`ImprovNetModel::set_bf16_encoder`]), compared on held-out
//! segments, per corruption: greedy outputs identical, how far they agree before they part, and
//! the next-token logits along the f32 model's greedy answer.
//!
//! Why greedy: sampling hides a changed distribution in noise; the argmax path shows the first
//! place a change in the logits is big enough to pick another token.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::corrupt::Corruption;
use crate::corrupt::CorruptionChoice;
use crate::model::fast::DecoderWeights;
use crate::model::{GenerateOptions, ImprovNetModel, ModelError, SamplingParams};
use crate::music::Piece;
use crate::tokens::Genre;
use crate::train::sample::{training_sample, SampleConfig};

/// One corruption's comparison.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Agreement {
    pub segments: usize,
    /// Segments whose greedy outputs are identical.
    pub identical: usize,
    /// Of the f32 greedy tokens, those before the first difference.
    pub agreeing_tokens: usize,
    pub tokens: usize,
    /// Along the f32 greedy answer: positions whose argmax is the same in both.
    pub same_argmax: usize,
    pub positions: usize,
    /// Largest and summed absolute differences of the logits.
    pub max_logit_diff: f32,
    pub sum_logit_diff: f64,
    pub logits: usize,
}

impl Agreement {
    fn add(&mut self, o: &Agreement) {
        self.segments += o.segments;
        self.identical += o.identical;
        self.agreeing_tokens += o.agreeing_tokens;
        self.tokens += o.tokens;
        self.same_argmax += o.same_argmax;
        self.positions += o.positions;
        self.max_logit_diff = self.max_logit_diff.max(o.max_logit_diff);
        self.sum_logit_diff += o.sum_logit_diff;
        self.logits += o.logits;
    }

    pub fn mean_logit_diff(&self) -> f64 {
        self.sum_logit_diff / self.logits.max(1) as f64
    }
}

/// Compares `reference` (f32) with `other` (the same weights, another arithmetic) on `draws`
/// segments per corruption of each piece (training samples with 1–5 context segments each side,
/// seeded), answers of at most `max_len` tokens; returns one [`Agreement`] per corruption, in
/// [`Corruption::ALL`] order.
pub fn compare(
    reference: &ImprovNetModel,
    other: &ImprovNetModel,
    pieces: &[Piece],
    draws: usize,
    max_len: usize,
    seed: u64,
) -> Result<Vec<(Corruption, Agreement)>, ModelError> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let opts = GenerateOptions {
        sampling: SamplingParams::greedy(),
        max_len,
    };
    let mut out: Vec<(Corruption, Agreement)> = Corruption::ALL
        .iter()
        .map(|&c| (c, Agreement::default()))
        .collect();
    for piece in pieces {
        for (c, agreement) in out.iter_mut() {
            let cfg = SampleConfig {
                corruption: CorruptionChoice::Fixed(*c),
                ..SampleConfig::default()
            };
            for _ in 0..draws {
                let sample = training_sample(piece, Genre::Classical, &cfg, &mut rng);
                let len = sample.attention_mask.iter().filter(|&&m| m != 0).count();
                let ids = &sample.encoder_ids[..len];
                let a = reference.generate(ids, &opts, &mut [], &mut rng)?;
                let b = other.generate(ids, &opts, &mut [], &mut rng)?;
                agreement.add(&compare_one(reference, other, ids, &a, &b)?);
            }
        }
    }
    Ok(out)
}

/// One segment: greedy answers `a` (reference) and `b`, and both models' logits along `a`.
fn compare_one(
    reference: &ImprovNetModel,
    other: &ImprovNetModel,
    ids: &[u32],
    a: &[u32],
    b: &[u32],
) -> Result<Agreement, ModelError> {
    let agreeing = a.iter().zip(b).skip(1).take_while(|(x, y)| x == y).count();
    let mut r = Agreement {
        segments: 1,
        identical: usize::from(a == b),
        agreeing_tokens: agreeing,
        tokens: a.len() - 1,
        ..Agreement::default()
    };
    let logits = |m: &ImprovNetModel| -> Result<Vec<f32>, ModelError> {
        let w = DecoderWeights::lock(m)?;
        let mut state = m.start_segment(ids)?;
        let mut all = vec![0.0f32; a.len() * w.vocab];
        for (t, row) in a.iter().zip(all.chunks_exact_mut(w.vocab)) {
            state.step(&w, *t, row)?;
        }
        Ok(all)
    };
    let (la, lb) = (logits(reference)?, logits(other)?);
    let vocab = la.len() / a.len().max(1);
    for (ra, rb) in la.chunks_exact(vocab).zip(lb.chunks_exact(vocab)) {
        r.positions += 1;
        r.same_argmax +=
            usize::from(crate::model::generate::argmax(ra) == crate::model::generate::argmax(rb));
        for (x, y) in ra.iter().zip(rb) {
            let d = (x - y).abs();
            r.max_logit_diff = r.max_logit_diff.max(d);
            r.sum_logit_diff += d as f64;
        }
        r.logits += vocab;
    }
    Ok(r)
}

/// The totals over corruptions.
pub fn total(rows: &[(Corruption, Agreement)]) -> Agreement {
    let mut all = Agreement::default();
    rows.iter().for_each(|(_, a)| all.add(a));
    all
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{BertConfig, Config};
    use candle_core::Device;

    #[test]
    fn a_model_agrees_with_itself_and_bf16_stays_close() {
        let cfg = Config::from_parts(
            BertConfig::sized(32, 1, 2, 64, 2306),
            BertConfig::sized(32, 1, 2, 64, 2306),
        );
        let reference = ImprovNetModel::random(&cfg, 3, &Device::Cpu).unwrap();
        let mut other = ImprovNetModel::random(&cfg, 3, &Device::Cpu).unwrap();
        let piece = crate::music::read_midi(std::path::Path::new(
            "tests/data/chopin_nocturne_op15_1.mid",
        ))
        .unwrap()
        .to_piece();
        // Same arithmetic: everything agrees, exactly.
        let same =
            total(&compare(&reference, &other, std::slice::from_ref(&piece), 1, 24, 5).unwrap());
        assert_eq!(same.segments, 9);
        assert_eq!(same.identical, 9);
        assert_eq!(same.same_argmax, same.positions);
        assert_eq!(same.max_logit_diff, 0.0);
        if other.set_bf16_encoder(true).unwrap() {
            let bf = total(&compare(&reference, &other, &[piece], 1, 24, 5).unwrap());
            assert!(bf.max_logit_diff > 0.0, "bf16 changed nothing: not in use?");
            assert!(bf.mean_logit_diff() < 0.05, "{bf:?}");
        }
    }
}
