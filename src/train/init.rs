//! Seeded parameter initialisation and the seed streams of a run.
//!
//! candle's `Init::Randn` draws from an unseeded rng; a run must be reproducible from its seed,
//! so after the model takes its variables every one is overwritten here, by name, with HF BERT's
//! init: normal(0, 0.02) for matrices and embeddings (the padding row of the word embeddings
//! zeroed), 1 for LayerNorm weights, 0 for biases.

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
/// delays the collapse, it does not prevent it: the model card has the numbers;
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

/// Sets [`OUTPUT_BIAS`] in `vars` to `bias`.
pub fn set_output_bias(vars: &VarMap, bias: &[f32]) -> Result<()> {
    let data = vars.data().lock().expect("var map lock");
    let var = data.get(OUTPUT_BIAS).ok_or_else(|| {
        candle_core::Error::Msg(format!("the model has no variable {OUTPUT_BIAS}"))
    })?;
    var.set(&Tensor::from_vec(
        bias.to_vec(),
        var.shape().clone(),
        var.device(),
    )?)
}
