//! Seeded parameter initialisation and the seed streams of a run.
//!
//! candle's `Init::Randn` draws from an unseeded rng; a run must be reproducible from its seed,
//! so after the model takes its variables every one is overwritten here, by name, with HF BERT's
//! init: normal(0, 0.02) for matrices and embeddings (the padding row of the word embeddings
//! zeroed), 1 for LayerNorm weights, 0 for biases.

use crate::tokens::{DUR_BASE, GENRE_BASE, ONSET_BASE, PIANO_BASE};
use candle_core::{Result, Tensor};
use candle_nn::VarMap;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// SplitMix64: a well-mixed hash, used to derive independent seeds.
pub fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The seed of stream `salt` at `index` (a step, an epoch) of a run seeded with `seed`. Every
/// random draw of training comes from one of these, so `(seed, step)` is the whole rng state.
pub fn stream_seed(seed: u64, salt: u64, index: u64) -> u64 {
    mix(mix(seed ^ mix(salt)) ^ index)
}

/// A ChaCha rng for stream `salt` at `index`.
pub fn stream(seed: u64, salt: u64, index: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(stream_seed(seed, salt, index))
}

/// Overwrites every variable with HF BERT's initialisation, deterministically in `seed`
/// (each tensor's values depend on the seed and its name only).
pub fn init_bert(vars: &VarMap, seed: u64, std: f64) -> Result<()> {
    let data = vars.data().lock().expect("var map lock");
    for (name, var) in data.iter() {
        let shape = var.shape().clone();
        let n = shape.elem_count();
        let values: Vec<f32> = if name.contains("LayerNorm") && name.ends_with("weight") {
            vec![1.0; n]
        } else if name.ends_with("bias") {
            vec![0.0; n]
        } else {
            let h = name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
                (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
            });
            let mut rng = ChaCha8Rng::seed_from_u64(mix(seed ^ h));
            let mut v: Vec<f32> = normals(&mut rng, n, std)
                .into_iter()
                .map(|x| x as f32)
                .collect();
            if name.ends_with("word_embeddings.weight") {
                // HF zeroes the `padding_idx` row (pad id 0).
                let d = shape.dims().last().copied().unwrap_or(0);
                v[..d].iter_mut().for_each(|x| *x = 0.0);
            }
            v
        };
        var.set(&Tensor::from_vec(values, shape, var.device())?)?;
    }
    Ok(())
}

/// `n` draws from normal(0, std) (Box–Muller: two normals per pair of uniforms).
pub fn normals(rng: &mut ChaCha8Rng, n: usize, std: f64) -> Vec<f64> {
    let mut v = Vec::with_capacity(n);
    while v.len() < n {
        let u1: f64 = rng.gen::<f64>().max(1e-300);
        let u2: f64 = rng.gen();
        let r = (-2.0 * u1.ln()).sqrt() * std;
        let t = std::f64::consts::TAU * u2;
        v.push(r * t.cos());
        if v.len() < n {
            v.push(r * t.sin());
        }
    }
    v
}

/// Log-frequencies of the label tokens the loss covers, add-one smoothed: the output bias a
/// from-scratch model starts with.
///
/// Why: with HF's zero bias, the first thing every decoder position learns is the same shift
/// toward frequent tokens. Adam pushes every path that can add a constant to the decoder's state,
/// the cross-attention included, and the cheapest constant the encoder can supply is the same
/// vector at every position: within a few dozen steps its states collapse (their spread falls
/// from about 0.8 to under 0.05 of their norm), and the decoder then learns to ignore it. Starting
/// the bias at the unigram log-frequencies removes the largest part of that shared gradient and
/// the encoder keeps its per-position information for hundreds of steps instead of dozens (it
/// delays the collapse, it does not prevent it: docs/experiments.md has the numbers;
/// `scripts/train_torch.py` logs `encoder_spread`).
pub fn unigram_log_frequencies(
    labels: impl IntoIterator<Item = u32>,
    vocab_size: usize,
) -> Vec<f32> {
    let mut counts = vec![1.0f64; vocab_size];
    for id in labels {
        if let Some(c) = counts.get_mut(id as usize) {
            *c += 1.0;
        }
    }
    let total: f64 = counts.iter().sum();
    counts.iter().map(|&c| (c / total).ln() as f32).collect()
}

/// The variable holding the decoder's output bias (HF `decoder.cls.predictions.bias`).
pub const OUTPUT_BIAS: &str = "decoder.cls.predictions.bias";

/// The [`OUTPUT_BIAS`] variable of `vars` (a handle: setting it sets the model's).
fn output_bias_var(vars: &VarMap) -> Result<candle_core::Var> {
    let data = vars.data().lock().expect("var map lock");
    data.get(OUTPUT_BIAS)
        .cloned()
        .ok_or_else(|| candle_core::Error::Msg(format!("the model has no variable {OUTPUT_BIAS}")))
}

/// Sets [`OUTPUT_BIAS`] in `vars` to `bias`.
pub fn set_output_bias(vars: &VarMap, bias: &[f32]) -> Result<()> {
    let var = output_bias_var(vars)?;
    var.set(&Tensor::from_vec(
        bias.to_vec(),
        var.shape().clone(),
        var.device(),
    )?)
}

/// The output-bias fields [`pull_output_bias`] flattens: notes, onsets, durations.
const BIAS_FIELDS: [std::ops::Range<usize>; 3] = [
    PIANO_BASE as usize..ONSET_BASE as usize,
    ONSET_BASE as usize..DUR_BASE as usize,
    DUR_BASE as usize..GENRE_BASE as usize,
];

/// Moves every note, onset and duration entry of `bias` the `share` of the way to its field's
/// mean (0 keeps it, 1 makes the field flat); special tokens and the fields' means stay.
///
/// Why: a token's bias is its frequency in the training labels, 5–12 nats lower for the rare
/// loud, soft, low and long ones, and it applies at every position, also where the model only
/// has to copy the input. Where the copy signal is weak (long blocks) the bias wins and the
/// model writes a common token instead of the rare one in front of it. With the bias flatter,
/// finetuning has to carry the prior in the decoder's state, where the context can switch it off.
pub fn pull_to_field_means(bias: &mut [f32], share: f64) {
    for field in BIAS_FIELDS {
        let Some(values) = bias.get_mut(field) else {
            continue;
        };
        let mean = values.iter().map(|&b| f64::from(b)).sum::<f64>() / values.len() as f64;
        for b in values.iter_mut() {
            *b = (f64::from(*b) + share * (mean - f64::from(*b))) as f32;
        }
    }
}

/// [`pull_to_field_means`] applied to [`OUTPUT_BIAS`] in `vars`.
pub fn pull_output_bias(vars: &VarMap, share: f64) -> Result<()> {
    let mut bias = output_bias_var(vars)?
        .as_tensor()
        .to_dtype(candle_core::DType::F32)?
        .to_vec1::<f32>()?;
    pull_to_field_means(&mut bias, share);
    set_output_bias(vars, &bias)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pulling_the_bias_flattens_each_field_around_its_own_mean() {
        let size = crate::tokens::VOCAB_SIZE as usize;
        // Notes alternate -2 / -6 (even / odd ids, mean -4), onsets are -1 but one at -9
        // (mean -1 - 8/501), durations -3 everywhere, specials -20.
        let mut bias: Vec<f32> = (0..size)
            .map(|i| match i {
                i if BIAS_FIELDS[0].contains(&i) => [-2.0, -6.0][i % 2],
                i if i == ONSET_BASE as usize => -9.0,
                i if BIAS_FIELDS[1].contains(&i) => -1.0,
                i if BIAS_FIELDS[2].contains(&i) => -3.0,
                _ => -20.0,
            })
            .collect();
        pull_to_field_means(&mut bias, 0.5);
        assert_eq!(
            bias[PIANO_BASE as usize], -5.0,
            "-6 (odd ids) halfway to -4"
        );
        assert_eq!(bias[PIANO_BASE as usize + 1], -3.0, "-2 halfway to -4");
        let onset_mean = -1.0 - 8.0 / 501.0;
        assert!((f64::from(bias[ONSET_BASE as usize]) - (-9.0 + onset_mean) / 2.0).abs() < 1e-5);
        assert!(
            (f64::from(bias[ONSET_BASE as usize + 1]) - (-1.0 + onset_mean) / 2.0).abs() < 1e-5
        );
        assert!(
            bias[BIAS_FIELDS[2].clone()].iter().all(|&b| b == -3.0),
            "flat stays flat"
        );
        for special in [0, GENRE_BASE as usize, crate::tokens::SEP as usize] {
            assert_eq!(bias[special], -20.0, "special token {special} kept");
        }
        let mut flat = vec![-2.0f32, -6.0, -2.0];
        flat.resize(size, -2.0);
        pull_to_field_means(&mut flat, 0.0);
        assert_eq!(&flat[..3], &[-2.0, -6.0, -2.0], "share 0 keeps the bias");
    }
}
