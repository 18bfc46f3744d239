//! Transposed views of a scored sample: the model's distributions for the same window moved by
//! a few semitones, moved back and averaged (test-time augmentation).
//!
//! Why: the model was trained on every transposition of every piece, so each view is an equally
//! informed guess with its own noise; their mixture shows how much of the model's error is
//! noise that averaging takes out, and how much is a repair it never makes (the model card's
//! transposition section). Scoring only: generation decodes one view.

use candle_core::{Device, Tensor};

use crate::corrupt::{PIANO_HIGH, PIANO_LOW};
use crate::model::generate::argmax;
use crate::model::ImprovNetModel;
use crate::tokens::{Token, PAD, VOCAB_SIZE};

use super::loss::LossOutput;
use super::rules::piano_note;
use super::sample::{Batch, Sample};
use super::trainer::batch_loss;
use super::TrainError;

/// The shifts of `n` views, nearest first: 0, −1, +1, −2, +2, …
pub fn view_shifts(n: usize) -> Vec<i8> {
    (0..n as i32)
        .map(|i| if i % 2 == 1 { -(i + 1) / 2 } else { i / 2 } as i8)
        .collect()
}

/// The id of note token `id` moved by `shift` semitones (its loudness kept) if the pitch stays
/// within `range`; every other id as it is.
fn moved(id: u32, shift: i8, range: (u8, u8)) -> Option<u32> {
    let Some((pitch, velocity)) = piano_note(id) else {
        return Some(id);
    };
    let to = i32::from(pitch) + i32::from(shift);
    (i32::from(range.0)..=i32::from(range.1))
        .contains(&to)
        .then(|| Token::piano(to, velocity).map(Token::id))
        .flatten()
}

/// `sample` with every note of its encoder input and target moved by `shift` semitones;
/// `None` when a note would leave the keyboard (21..=108), as training's transposition never
/// moves one.
pub fn transposed_sample(sample: &Sample, shift: i8) -> Option<Sample> {
    if shift == 0 {
        return Some(sample.clone());
    }
    let keys = (PIANO_LOW, PIANO_HIGH);
    let all = |ids: &[u32]| -> Option<Vec<u32>> {
        ids.iter().map(|&id| moved(id, shift, keys)).collect()
    };
    Some(Sample {
        encoder_ids: all(&sample.encoder_ids)?,
        labels: all(&sample.labels)?,
        ..sample.clone()
    })
}

/// The teacher-forced scores of one sample under the mixture of its views' distributions.
pub struct ViewScores {
    /// Summed negative log-likelihood, counted positions and correct argmax predictions, as
    /// [`LossOutput`]'s per-row fields.
    pub nll: f64,
    pub count: f64,
    pub correct: f64,
    /// The mixture's argmax at each scored position.
    pub pred: Vec<u32>,
    /// The mixture's log-probabilities, `[positions, vocabulary]`.
    pub log_probs: Tensor,
    pub views: usize,
}

/// Scores `sample` with its distributions averaged over the views of `shifts` that stay on the
/// keyboard: at each target position the mixture of the views' distributions, each moved back
/// by its shift. `own` is the unshifted view's output, already computed by the caller (one row,
/// cut to the target's length); it is always among the views.
pub fn view_scores(
    model: &ImprovNetModel,
    sample: &Sample,
    own: &LossOutput,
    shifts: &[i8],
    device: &Device,
) -> Result<ViewScores, TrainError> {
    let v = VOCAB_SIZE as usize;
    let rows = own.pred.len();
    let first = own.log_probs.detach().flatten_all()?.to_vec1::<f32>()?;
    let mut mixture: Vec<f64> = first.iter().map(|&x| f64::from(x).exp()).collect();
    let mut views = 1;
    for &shift in shifts.iter().filter(|&&s| s != 0) {
        let Some(view) = transposed_sample(sample, shift) else {
            continue;
        };
        let out = batch_loss(model, &Batch::from_samples(vec![view]), false, device)?;
        let lp = out.log_probs.detach().flatten_all()?.to_vec1::<f32>()?;
        // Token `o` of the original is token `o` moved by `shift` in this view; a note moved
        // off the tokenizer's range has no id and gets nothing from this view.
        let source: Vec<Option<usize>> = (0..v as u32)
            .map(|o| moved(o, shift, (0, 127)).map(|id| id as usize))
            .collect();
        for r in 0..rows {
            let row = &lp[r * v..(r + 1) * v];
            for (o, src) in source.iter().enumerate() {
                if let Some(s) = src {
                    mixture[r * v + o] += f64::from(row[*s]).exp();
                }
            }
        }
        views += 1;
    }
    let log: Vec<f32> = mixture
        .iter()
        .map(|&p| (p / views as f64).ln() as f32)
        .collect();
    let (mut nll, mut count, mut correct) = (0.0, 0.0, 0.0);
    let mut pred = Vec::with_capacity(rows);
    for (row, &label) in log.chunks_exact(v).zip(&sample.labels) {
        let best = argmax(row);
        pred.push(best);
        if label != PAD {
            nll -= f64::from(row[label as usize]);
            count += 1.0;
            correct += (best == label) as usize as f64;
        }
    }
    Ok(ViewScores {
        nll,
        count,
        correct,
        pred,
        log_probs: Tensor::from_vec(log, (rows, v), &Device::Cpu)?,
        views,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tokens::{BOS, EOS, ONSET_BASE, PIANO_BASE};

    fn note(pitch: i32, velocity: u8) -> u32 {
        Token::piano(pitch, velocity).unwrap().id()
    }

    #[test]
    fn the_shifts_go_out_from_the_original() {
        assert_eq!(view_shifts(1), [0]);
        assert_eq!(view_shifts(5), [0, -1, 1, -2, 2]);
    }

    #[test]
    fn a_view_moves_every_note_and_nothing_else() {
        let onset = ONSET_BASE + 4;
        let sample = Sample::padded(
            crate::tokens::Corruption::IncorrectTransposition,
            &[note(60, 90), onset, note(64, 45)],
            &[BOS, note(62, 120), onset, EOS],
        );
        let up = transposed_sample(&sample, 2).unwrap();
        assert_eq!(&up.encoder_ids[..3], &[note(62, 90), onset, note(66, 45)]);
        assert_eq!(&up.labels[..4], &[BOS, note(64, 120), onset, EOS]);
        assert_eq!(up.attention_mask, sample.attention_mask);
        // The note id moves by the semitones within its loudness row.
        assert_eq!(note(62, 90), note(60, 90) + 2);
        assert!(note(60, 90) >= PIANO_BASE);
        // A note pushed off the keyboard drops the view; the unshifted view is always there.
        let high = Sample::padded(
            crate::tokens::Corruption::IncorrectTransposition,
            &[note(107, 60)],
            &[BOS, note(107, 60), EOS],
        );
        assert!(transposed_sample(&high, 2).is_none());
        assert_eq!(
            transposed_sample(&high, 1).unwrap().labels[1],
            note(108, 60)
        );
        assert_eq!(transposed_sample(&high, 0).unwrap(), high);
    }

    #[test]
    fn the_mixture_averages_each_views_probability_of_the_moved_label() {
        use crate::model::{BertConfig, Config};
        let part = BertConfig::sized(16, 1, 2, 32, 64);
        let config = Config::from_parts(part.clone(), part);
        let model = ImprovNetModel::random(&config, 3, &Device::Cpu).unwrap();
        let onset = ONSET_BASE + 4;
        let labels = [BOS, note(62, 120), onset, note(21, 60), EOS];
        let sample = Sample::padded(
            crate::tokens::Corruption::IncorrectTransposition,
            &[note(60, 90), onset, note(64, 45)],
            &labels,
        );
        let one = |s: &Sample| {
            let out = batch_loss(
                &model,
                &Batch::from_samples(vec![s.clone()]),
                false,
                &Device::Cpu,
            )
            .unwrap();
            let lp = out
                .log_probs
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap();
            (out, lp)
        };
        let (own, lp0) = one(&sample);
        let (_, lp_up) = one(&transposed_sample(&sample, 1).unwrap());
        // Shifts 0, -1, +1: the -1 view would move pitch 21 off the keyboard and is left out.
        let mixed = view_scores(&model, &sample, &own, &view_shifts(3), &Device::Cpu).unwrap();
        assert_eq!(mixed.views, 2);
        assert_eq!(mixed.count, labels.len() as f64);
        let v = VOCAB_SIZE as usize;
        let mut nll = 0.0;
        for (r, &label) in labels.iter().enumerate() {
            let up = moved(label, 1, (0, 127)).unwrap() as usize;
            let p = (f64::from(lp0[r * v + label as usize]).exp()
                + f64::from(lp_up[r * v + up]).exp())
                / 2.0;
            nll -= p.ln();
        }
        assert!((mixed.nll - nll).abs() < 1e-4, "{} vs {nll}", mixed.nll);
        assert_eq!(mixed.pred.len(), labels.len());
        // A view of its own reproduces the model's scores.
        let alone = view_scores(&model, &sample, &own, &[0], &Device::Cpu).unwrap();
        assert!((alone.nll - own.row_nll[0]).abs() < 1e-3);
        assert_eq!(alone.pred, own.pred);
    }
}
