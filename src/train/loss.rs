//! From a padded §7 batch to model inputs, and the loss (spec §5.2).
//!
//! HF `EncoderDecoderModel` builds the decoder input by shifting the labels right and putting
//! `decoder_start_token_id` (`<S>`) first: the decoder sees `<S> <S> tok1 ...` and the first
//! target is `<S>` itself. The original's loss covers all 512 label positions, padding included
//! (labels are 0, not -100); by default we mask padding out instead.

use candle_core::{DType, Device, Result, Tensor, D};

use super::rules::TargetShare;
use super::sample::Batch;
use crate::model::{BOS, PAD};
use crate::tokens::{DECODER_MAX_LEN, ENCODER_MAX_LEN};

/// A batch cut to its longest real row: what the model actually computes on.
#[derive(Clone, Debug, PartialEq)]
pub struct TrimmedBatch {
    pub size: usize,
    /// Encoder length: the longest `attention_mask` row (padded keys are masked, so cutting the
    /// common padding changes nothing).
    pub enc_len: usize,
    /// Decoder length: the longest target, or 512 with `loss_on_padding` (the original's loss
    /// sees every position).
    pub dec_len: usize,
    pub enc_ids: Vec<u32>,
    pub enc_mask: Vec<u32>,
    pub dec_ids: Vec<u32>,
    pub labels: Vec<u32>,
    /// 1 where the position counts in the loss.
    pub loss_mask: Vec<f32>,
    /// Non-pad encoder ids plus non-pad labels: the tokens/s numerator.
    pub tokens: usize,
}

/// Positions the loss counts in `batch`: non-pad labels, or every label position with
/// `loss_on_padding`.
pub fn loss_positions(batch: &Batch, loss_on_padding: bool) -> usize {
    if loss_on_padding {
        batch.size * DECODER_MAX_LEN
    } else {
        batch.labels.iter().filter(|&&l| l != PAD).count()
    }
}

/// `[<S>] + labels[..len-1]`.
pub fn shift_right(labels: &[u32]) -> Vec<u32> {
    let mut out = Vec::with_capacity(labels.len());
    if labels.is_empty() {
        return out;
    }
    out.push(BOS);
    out.extend_from_slice(&labels[..labels.len() - 1]);
    out
}

/// Length of the longest unpadded row (at least 1) of `rows` masks of `row_len` each.
pub(crate) fn longest_row(mask: &[u32], row_len: usize, rows: usize) -> usize {
    (0..rows)
        .map(|i| {
            mask[i * row_len..(i + 1) * row_len]
                .iter()
                .rposition(|&m| m != 0)
                .map_or(0, |p| p + 1)
        })
        .max()
        .unwrap_or(0)
        .max(1)
}

/// Cuts the padding every row shares.
pub fn trim(batch: &Batch, loss_on_padding: bool) -> TrimmedBatch {
    let b = batch.size;
    let enc_len = longest_row(&batch.attention_mask, ENCODER_MAX_LEN, b);
    let dec_len = if loss_on_padding {
        DECODER_MAX_LEN
    } else {
        (0..b)
            .map(|i| {
                batch
                    .labels_row(i)
                    .iter()
                    .rposition(|&t| t != PAD)
                    .map_or(0, |p| p + 1)
            })
            .max()
            .unwrap_or(0)
            .max(1)
    };
    let mut t = TrimmedBatch {
        size: b,
        enc_len,
        dec_len,
        enc_ids: Vec::with_capacity(b * enc_len),
        enc_mask: Vec::with_capacity(b * enc_len),
        dec_ids: Vec::with_capacity(b * dec_len),
        labels: Vec::with_capacity(b * dec_len),
        loss_mask: Vec::with_capacity(b * dec_len),
        tokens: 0,
    };
    for i in 0..b {
        let e = i * ENCODER_MAX_LEN;
        t.enc_ids
            .extend_from_slice(&batch.encoder_ids[e..e + enc_len]);
        t.enc_mask
            .extend_from_slice(&batch.attention_mask[e..e + enc_len]);
        let full = batch.labels_row(i);
        // Shift over the full row, then cut: position j sees label j-1, whatever the cut.
        let shifted = shift_right(full);
        t.dec_ids.extend_from_slice(&shifted[..dec_len]);
        let labels = &full[..dec_len];
        t.labels.extend_from_slice(labels);
        t.loss_mask.extend(labels.iter().map(|&l| {
            if loss_on_padding || l != PAD {
                1.0
            } else {
                0.0
            }
        }));
        t.tokens += batch.attention_mask[e..e + enc_len]
            .iter()
            .filter(|&&m| m != 0)
            .count()
            + full.iter().filter(|&&l| l != PAD).count();
    }
    t
}

/// The batch as tensors: `(enc_ids, enc_mask, dec_ids)` `[B, L]` u32.
pub fn inputs(t: &TrimmedBatch, dev: &Device) -> Result<(Tensor, Tensor, Tensor)> {
    Ok((
        Tensor::from_slice(&t.enc_ids, (t.size, t.enc_len), dev)?,
        Tensor::from_slice(&t.enc_mask, (t.size, t.enc_len), dev)?,
        Tensor::from_slice(&t.dec_ids, (t.size, t.dec_len), dev)?,
    ))
}

/// Loss and per-row statistics of one forward pass.
pub struct LossOutput {
    /// Scalar: masked mean cross-entropy (differentiable).
    pub loss: Tensor,
    /// Per row: summed negative log-likelihood, counted positions, correct argmax predictions.
    pub row_nll: Vec<f64>,
    pub row_count: Vec<f64>,
    pub row_correct: Vec<f64>,
    /// The argmax prediction at every position, `[B * L]` as `t.labels`.
    pub pred: Vec<u32>,
    /// Log-probabilities `[B * L, V]` (differentiable), for [`target_mix_term`].
    pub log_probs: Tensor,
}

/// Mean cross-entropy of `logits` `[B, L, V]` over the positions of `t.loss_mask`.
pub fn cross_entropy(logits: &Tensor, t: &TrimmedBatch) -> Result<LossOutput> {
    cross_entropy_over(logits, t, t.loss_mask.iter().sum::<f32>() as f64)
}

/// Masked cross-entropy summed and divided by `denominator`: the positions of the whole batch
/// when `t` is one micro-batch of it, so the micro-batch gradients add up to the batch's.
pub fn cross_entropy_over(
    logits: &Tensor,
    t: &TrimmedBatch,
    denominator: f64,
) -> Result<LossOutput> {
    let (b, l, v) = logits.dims3()?;
    let dev = logits.device();
    let flat = logits.reshape((b * l, v))?;
    let labels = Tensor::from_slice(&t.labels, b * l, dev)?;
    let mask = Tensor::from_slice(&t.loss_mask, b * l, dev)?;
    let logp = candle_nn::ops::log_softmax(&flat, D::Minus1)?;
    let nll = logp.gather(&labels.unsqueeze(1)?, 1)?.squeeze(1)?.neg()?;
    let loss = ((&nll * &mask)?.sum_all()? / denominator.max(1.0))?;
    let nll_v = nll.detach().to_dtype(DType::F32)?.to_vec1::<f32>()?;
    let pred = flat.detach().argmax(D::Minus1)?.to_vec1::<u32>()?;
    let mut out = LossOutput {
        loss,
        row_nll: vec![0.0; b],
        row_count: vec![0.0; b],
        row_correct: vec![0.0; b],
        pred: Vec::new(),
        log_probs: logp,
    };
    for i in 0..b {
        for j in 0..l {
            let k = i * l + j;
            let m = t.loss_mask[k] as f64;
            out.row_nll[i] += nll_v[k] as f64 * m;
            out.row_count[i] += m;
            if pred[k] == t.labels[k] {
                out.row_correct[i] += m;
            }
        }
    }
    out.pred = pred;
    Ok(out)
}

/// What [`cross_entropy_over`]'s loss becomes when, at some positions, `shares` of the target
/// move from the label to other tokens ([`super::rules::target_mix`]): the term to add so that
/// the sum is the cross-entropy against `(1 − Σ share) · label + Σ share · token`, over the same
/// `denominator`. Per share that is `share · (log p(label) − log p(token))`, read from the
/// `log_probs` that [`cross_entropy_over`] returned. `None` without shares.
pub fn target_mix_term(
    log_probs: &Tensor,
    t: &TrimmedBatch,
    shares: &[TargetShare],
    denominator: f64,
) -> Result<Option<Tensor>> {
    let (b, l) = (t.size, t.dec_len);
    let v = log_probs.dim(D::Minus1)?;
    let mut index = Vec::with_capacity(2 * shares.len());
    let mut weight = Vec::with_capacity(2 * shares.len());
    for s in shares.iter().filter(|s| s.row < b && s.position < l) {
        let at = s.row * l + s.position;
        index.extend([(at * v) as u32 + t.labels[at], (at * v) as u32 + s.token]);
        weight.extend([s.share, -s.share]);
    }
    if index.is_empty() {
        return Ok(None);
    }
    weighted_sum(log_probs, &index, &weight, denominator).map(Some)
}

/// `Σ weight[k] · log_probs[index[k]] / denominator`, `index` into the flattened `log_probs`:
/// the loss terms that re-weigh single targets.
fn weighted_sum(
    log_probs: &Tensor,
    index: &[u32],
    weight: &[f32],
    denominator: f64,
) -> Result<Tensor> {
    let dev = log_probs.device();
    let logp = log_probs.flatten_all()?;
    let picked = logp.index_select(&Tensor::from_slice(index, index.len(), dev)?, 0)?;
    let weight = Tensor::from_slice(weight, weight.len(), dev)?.to_dtype(picked.dtype())?;
    (picked * weight)?.sum_all()? / denominator.max(1.0)
}

/// How near the label's log-probability must come to the best other token's for a target to be
/// a close call ([`label_margins`] within it, either side), in nats: token accuracy changes only
/// where the argmax changes, so the near misses and the narrow wins are where the next repair
/// or loss of the copy is decided (`score-model`'s ledger counts them).
pub const CLOSE_CALL_MARGIN: f32 = 1.0;

/// Per row of `log_probs` `[N, V]`: the label's log-probability minus the best other token's
/// (above 0: the argmax is the label, by that many nats). `labels` has one label per row.
pub fn label_margins(log_probs: &Tensor, labels: &[u32]) -> Result<Vec<f32>> {
    let (rows, v) = log_probs.dims2()?;
    let flat = log_probs.detach().flatten_all()?.to_vec1::<f32>()?;
    Ok((0..rows.min(labels.len()))
        .map(|at| {
            let row = &flat[at * v..(at + 1) * v];
            let label = labels[at] as usize;
            let other = row
                .iter()
                .enumerate()
                .filter(|&(k, _)| k != label)
                .map(|(_, &x)| x)
                .fold(f32::NEG_INFINITY, f32::max);
            row[label] - other
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::sample::{Batch, Sample};

    fn sample(enc: &[u32], labels: &[u32]) -> Sample {
        Sample::padded(crate::tokens::Corruption::Skyline, enc, labels)
    }

    #[test]
    fn trims_to_the_longest_row_and_shifts_like_hf() {
        let batch = Batch::from_samples(vec![
            sample(&[5, 6, 7], &[BOS, 10, 11, 2304]),
            sample(&[5, 6, 7, 8, 9], &[BOS, 12, 2304]),
        ]);
        let t = trim(&batch, false);
        assert_eq!((t.enc_len, t.dec_len), (5, 4));
        assert_eq!(&t.dec_ids[..4], &[BOS, BOS, 10, 11]);
        assert_eq!(&t.dec_ids[4..], &[BOS, BOS, 12, 2304]);
        assert_eq!(&t.loss_mask[4..], &[1.0, 1.0, 1.0, 0.0]);
        assert_eq!(t.tokens, 3 + 4 + 5 + 3);
        let full = trim(&batch, true);
        assert_eq!(full.dec_len, DECODER_MAX_LEN);
        assert!(full.loss_mask.iter().all(|&m| m == 1.0));
    }

    /// A trimmed batch of one row with `labels` (one encoder token; the decoder inputs are the
    /// labels shifted right) and `loss_mask`.
    fn one_row(labels: &[u32], loss_mask: &[f32]) -> TrimmedBatch {
        TrimmedBatch {
            size: 1,
            enc_len: 1,
            dec_len: labels.len(),
            enc_ids: vec![5],
            enc_mask: vec![1],
            dec_ids: shift_right(labels),
            labels: labels.to_vec(),
            loss_mask: loss_mask.to_vec(),
            tokens: 1 + labels.len(),
        }
    }

    /// log-softmax of row `row` of `values` (rows of `v` logits) at `tok`, in f64.
    fn log_softmax_at(values: &[f32], v: usize, row: usize, tok: usize) -> f64 {
        let r = &values[row * v..(row + 1) * v];
        let z = r.iter().map(|&x| (x as f64).exp()).sum::<f64>().ln();
        r[tok] as f64 - z
    }

    #[test]
    fn the_mix_term_turns_the_loss_into_cross_entropy_against_the_mixed_target() {
        let dev = Device::Cpu;
        let v = 16;
        let t = one_row(&[2, 10, 11], &[1.0; 3]);
        let values: Vec<f32> = (0..3 * v).map(|i| ((i * 7) % 11) as f32 * 0.3).collect();
        let logits = Tensor::from_slice(&values, (1, 3, v), &dev).unwrap();
        // Position 1 (label 10): 0.25 of the target goes to token 3, 0.25 to token 10 itself.
        let share = |token, share| TargetShare {
            row: 0,
            position: 1,
            token,
            share,
        };
        let shares = [share(3, 0.25), share(10, 0.25)];
        let ce = cross_entropy_over(&logits, &t, 3.0).unwrap();
        assert!(target_mix_term(&ce.log_probs, &t, &[], 3.0)
            .unwrap()
            .is_none());
        let term = target_mix_term(&ce.log_probs, &t, &shares, 3.0)
            .unwrap()
            .unwrap();
        let mixed = (ce.loss + term).unwrap().to_scalar::<f32>().unwrap() as f64;
        let logp = |row, tok| log_softmax_at(&values, v, row, tok);
        // The mixed target at position 1 is 0.75 on 10 and 0.25 on 3; the others keep labels.
        let want = -(logp(0, 2) + 0.75 * logp(1, 10) + 0.25 * logp(1, 3) + logp(2, 11)) / 3.0;
        assert!((mixed - want).abs() < 1e-5, "{mixed} vs {want}");
    }
}
