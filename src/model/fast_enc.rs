//! The encoder forward used for generation: one unpadded sequence, f32 on the CPU, with matrix
//! products straight through `gemm` (rayon, all cores) and fused CPU kernels, instead of a chain
//! of candle ops (each with its own allocation, copies and thread-pool hand-off).
//!
//! Same arithmetic as `BertModel::forward` (HF BERT, post-LN, GELU erf); the candle forward
//! stays the reference (`ImprovNetModel::encode`, padded batches, any device).
//!
//! Attention runs per (head, block of query rows): scores for a block of 64 rows against all
//! keys (64 x L, in L2), softmax, times V, written into the context rows; the blocks are spread
//! over the rayon pool. No pooler.

use candle_core::{CpuStorage, DType, Storage, Tensor};
use rayon::prelude::*;

use super::bert::BertModel;
use super::kernels::{self, fill_rows, gemm_raw, linear_acc, SendPtr};
use super::{ModelError, Result};

const BLOCK: usize = 64;

/// Read-locks an f32 CPU tensor and hands its contiguous data to `f`.
pub(crate) fn with_f32<R>(t: &Tensor, f: impl FnOnce(&[f32]) -> Result<R>) -> Result<R> {
    if t.dtype() != DType::F32 || !t.device().is_cpu() {
        return Err(ModelError::Input(
            "fast path needs f32 weights on the CPU".into(),
        ));
    }
    let (g, layout) = t.storage_and_layout();
    let Some((s, e)) = layout.contiguous_offsets() else {
        return Err(ModelError::Input("non-contiguous weight".into()));
    };
    match &*g {
        Storage::Cpu(CpuStorage::F32(v)) => f(&v[s..e]),
        _ => Err(ModelError::Input("weights must be f32 on the CPU".into())),
    }
}

/// Copies an f32 CPU tensor's data (small tensors only: biases, LayerNorms).
fn vec_of(t: &Tensor) -> Result<Vec<f32>> {
    with_f32(t, |v| Ok(v.to_vec()))
}

fn bias(l: &candle_nn::Linear) -> Result<Vec<f32>> {
    vec_of(
        l.bias()
            .ok_or_else(|| ModelError::Input("linear without bias".into()))?,
    )
}

fn ln(l: &candle_nn::LayerNorm) -> Result<(Vec<f32>, Vec<f32>)> {
    Ok((
        vec_of(l.weight())?,
        vec_of(
            l.bias()
                .ok_or_else(|| ModelError::Input("LayerNorm without bias".into()))?,
        )?,
    ))
}

/// Row-parallel LayerNorm over `[rows, d]`.
fn layer_norm_rows(x: &mut [f32], d: usize, g: &[f32], b: &[f32], eps: f32) {
    x.par_chunks_mut(d * 16).for_each(|c| {
        c.chunks_exact_mut(d)
            .for_each(|r| kernels::layer_norm(r, g, b, eps))
    });
}

/// Encoder hidden states `[L, D]` (row-major) for one unpadded sequence.
pub fn encode_unpadded(enc: &BertModel, ids: &[u32]) -> Result<Vec<f32>> {
    let cfg = &enc.config;
    let d = cfg.hidden_size;
    let h = cfg.num_attention_heads;
    let dh = d / h;
    let f = cfg.intermediate_size;
    let l = ids.len();
    let eps = cfg.layer_norm_eps as f32;
    let threads = kernels::threads();
    if l > cfg.max_position_embeddings {
        return Err(ModelError::Input(format!(
            "encoder input of {l} tokens exceeds {} positions",
            cfg.max_position_embeddings
        )));
    }

    // Embeddings.
    let e = &enc.embeddings;
    let mut x = vec![0.0f32; l * d];
    with_f32(e.word_embeddings.embeddings(), |we| {
        with_f32(e.position_embeddings.embeddings(), |pe| {
            with_f32(e.token_type_embeddings.embeddings(), |te| {
                for (p, (&t, row)) in ids.iter().zip(x.chunks_exact_mut(d)).enumerate() {
                    let t = t as usize;
                    if (t + 1) * d > we.len() {
                        return Err(ModelError::Input(format!(
                            "token {t} out of the vocabulary"
                        )));
                    }
                    for i in 0..d {
                        row[i] = we[t * d + i] + (pe[p * d + i] + te[i]);
                    }
                }
                Ok(())
            })
        })
    })?;
    let (g, b) = ln(&e.layer_norm)?;
    layer_norm_rows(&mut x, d, &g, &b, eps);

    let mut q = vec![0.0f32; l * d];
    let mut k = vec![0.0f32; l * d];
    let mut v = vec![0.0f32; l * d];
    let mut ctx = vec![0.0f32; l * d];
    let mut hid = vec![0.0f32; l * f];
    let scale = 1.0 / (dh as f32).sqrt();

    for layer in &enc.layers {
        let sa = &layer.attention.self_attention;
        for (lin, out) in [(&sa.query, &mut q), (&sa.key, &mut k), (&sa.value, &mut v)] {
            fill_rows(out, &bias(lin)?);
            with_f32(lin.weight(), |w| {
                linear_acc(&x, l, w, d, out, threads);
                Ok(())
            })?;
        }
        attention(&q, &k, &v, &mut ctx, l, h, dh, scale);
        // x = LN(x + ctx Wo^T + bo)
        let ao = &layer.attention.output;
        kernels::add_rows(&mut x, &bias(&ao.dense)?);
        with_f32(ao.dense.weight(), |w| {
            linear_acc(&ctx, l, w, d, &mut x, threads);
            Ok(())
        })?;
        let (g, b) = ln(&ao.layer_norm)?;
        layer_norm_rows(&mut x, d, &g, &b, eps);
        // Feed-forward.
        fill_rows(&mut hid, &bias(&layer.intermediate)?);
        with_f32(layer.intermediate.weight(), |w| {
            linear_acc(&x, l, w, f, &mut hid, threads);
            Ok(())
        })?;
        hid.par_chunks_mut(f * 16).for_each(kernels::gelu);
        let o = &layer.output;
        kernels::add_rows(&mut x, &bias(&o.dense)?);
        with_f32(o.dense.weight(), |w| {
            linear_acc(&hid, l, w, d, &mut x, threads);
            Ok(())
        })?;
        let (g, b) = ln(&o.layer_norm)?;
        layer_norm_rows(&mut x, d, &g, &b, eps);
    }
    Ok(x)
}

/// `ctx[:, head] = softmax(scale Q_h K_h^T) V_h` for every head, `[L, D]` buffers.
#[allow(clippy::too_many_arguments)]
fn attention(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    ctx: &mut [f32],
    l: usize,
    h: usize,
    dh: usize,
    scale: f32,
) {
    let d = h * dh;
    let blocks = l.div_ceil(BLOCK);
    let out = SendPtr(ctx.as_mut_ptr());
    (0..h * blocks).into_par_iter().for_each_init(
        || vec![0.0f32; BLOCK * l],
        |s, task| {
            #[allow(clippy::redundant_locals)] // capture the Sync wrapper, not its raw field
            let out = out;
            let (hh, blk) = (task / blocks, task % blocks);
            let r0 = blk * BLOCK;
            let rows = BLOCK.min(l - r0);
            // SAFETY: all offsets stay inside the [L, D] buffers and the [BLOCK, L] scratch;
            // each task writes only its own rows of its own head's columns of `ctx`.
            unsafe {
                gemm_raw(
                    rows,
                    l,
                    dh,
                    s.as_mut_ptr(),
                    l as isize,
                    1,
                    false,
                    q.as_ptr().add(r0 * d + hh * dh),
                    d as isize,
                    1,
                    k.as_ptr().add(hh * dh),
                    1,
                    d as isize,
                    scale,
                    1,
                );
                for row in s[..rows * l].chunks_exact_mut(l) {
                    kernels::softmax(row);
                }
                gemm_raw(
                    rows,
                    dh,
                    l,
                    out.0.add(r0 * d + hh * dh),
                    d as isize,
                    1,
                    false,
                    s.as_ptr(),
                    l as isize,
                    1,
                    v.as_ptr().add(hh * dh),
                    d as isize,
                    1,
                    1.0,
                    1,
                );
            }
        },
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{BertConfig, Config, ImprovNetModel};
    use candle_core::Device;

    #[test]
    fn fast_encoder_matches_candle() {
        // d 36, 3 heads of 12: odd sizes for the vector tails; 150 tokens: 3 row blocks.
        let cfg = Config::from_parts(
            BertConfig::sized(36, 2, 3, 80, 256),
            BertConfig::sized(36, 1, 3, 80, 256),
        );
        let m = ImprovNetModel::random(&cfg, 7, &Device::Cpu).unwrap();
        let ids: Vec<u32> = (0..150u32).map(|i| (i * 97 + 5) % 2300 + 1).collect();
        let t = Tensor::new(ids.as_slice(), &Device::Cpu)
            .unwrap()
            .unsqueeze(0)
            .unwrap();
        let want = m
            .encode(&t, &t.ones_like().unwrap())
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let got = encode_unpadded(&m.encoder, &ids).unwrap();
        let worst = want
            .iter()
            .zip(&got)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(worst < 2e-5, "fast encoder diff {worst}");
    }
}
