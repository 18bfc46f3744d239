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

use candle_core::{CpuStorage, DType, Storage, Tensor, TensorId};
use rayon::prelude::*;

use super::bert::BertModel;
use super::bf16::{self, PackedB};
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

/// Encoder hidden states `[L, D]` (row-major) for one unpadded sequence; the matrix products in
/// bf16 when `packed` holds the encoder's weights packed for them ([`PackedEncoder`]).
pub fn encode_unpadded(
    enc: &BertModel,
    ids: &[u32],
    packed: Option<&PackedEncoder>,
) -> Result<Vec<f32>> {
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

    if let Some(p) = packed {
        encode_layers_bf16(enc, p, &mut x, l)?;
        return Ok(x);
    }
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

/// Attention by blocks of [`BLOCK`] query rows of one head, spread over the rayon pool: for
/// each, `scores(e, head, r0, rows, s)` writes `scale Q K^T` of rows `r0..r0 + rows` into `s`
/// (`[rows, L]`), the softmax is taken here, and `context(e, head, r0, rows, s, out)` writes
/// `P V` at `out`: row `r0`, column `head * dh` of the `[L, D]` context, rows `D` apart. `e`
/// is per-split scratch from `extra`; splits are few, since each also allocates a `[BLOCK, L]`
/// score buffer.
#[allow(clippy::too_many_arguments)]
fn query_blocks<E>(
    ctx: &mut [f32],
    l: usize,
    h: usize,
    dh: usize,
    extra: impl Fn() -> E + Sync + Send,
    scores: impl Fn(&mut E, usize, usize, usize, &mut [f32]) + Sync + Send,
    context: impl Fn(&mut E, usize, usize, usize, &[f32], SendPtr) + Sync + Send,
) {
    let d = h * dh;
    assert!(ctx.len() >= l * d);
    let blocks = l.div_ceil(BLOCK);
    let out = SendPtr(ctx.as_mut_ptr());
    let per_split = (h * blocks).div_ceil(2 * kernels::threads());
    (0..h * blocks)
        .into_par_iter()
        .with_min_len(per_split)
        .for_each_init(
            || (vec![0.0f32; BLOCK * l], extra()),
            |(s, e), task| {
                #[allow(clippy::redundant_locals)] // capture the Sync wrapper, not its raw field
                let out = out;
                let (hh, blk) = (task / blocks, task % blocks);
                let r0 = blk * BLOCK;
                let rows = BLOCK.min(l - r0);
                let s = &mut s[..rows * l];
                scores(e, hh, r0, rows, s);
                for row in s.chunks_exact_mut(l) {
                    kernels::softmax(row);
                }
                // SAFETY: inside `ctx` ([L, D], asserted); each task's rows and head columns
                // are its own.
                context(
                    e,
                    hh,
                    r0,
                    rows,
                    s,
                    SendPtr(unsafe { out.0.add(r0 * d + hh * dh) }),
                );
            },
        );
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
    assert!(q.len() >= l * d && k.len() >= l * d && v.len() >= l * d);
    query_blocks(
        ctx,
        l,
        h,
        dh,
        || (),
        // SAFETY (both): offsets inside the [L, D] buffers (asserted) and the [rows, L] scores.
        |_, hh, r0, rows, s| unsafe {
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
            )
        },
        |_, hh, _, rows, s, out| unsafe {
            gemm_raw(
                rows,
                dh,
                l,
                out.0,
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
            )
        },
    );
}

/// What runs once per segment, packed for [`bf16::matmul`]: the encoder's weights and the
/// decoder's cross-attention key and value projections (which read the encoder's output).
/// Built once per loaded model, half the bytes of those f32 weights (the f32 tensors stay;
/// training and the reference forward use them).
pub struct PackedEncoder {
    layers: Vec<PackedLayer>,
    /// Per decoder layer: keys and values side by side (`[D] -> [2D]`).
    cross: Vec<PackedLinear>,
}

/// A linear layer (or several side by side, sharing their input) packed for bf16 products.
struct PackedLinear {
    w: PackedB,
    bias: Vec<f32>,
    /// The weights packed here (what the f32 copies can be freed for).
    sources: Vec<TensorId>,
}

impl PackedLinear {
    /// `lins` side by side: their outputs concatenated, one pass over an input of `k` values.
    fn fused(lins: &[&candle_nn::Linear], k: usize) -> Result<Self> {
        let mut w = Vec::new();
        let mut bias_all = Vec::new();
        let mut n = 0;
        let mut sources = Vec::new();
        for lin in lins {
            sources.push(lin.weight().id());
            let (rows, cols) = lin.weight().dims2()?;
            if cols != k {
                return Err(ModelError::Input(format!(
                    "a linear layer's input is {cols} wide, not {k}"
                )));
            }
            n += rows;
            with_f32(lin.weight(), |v| {
                w.extend_from_slice(v);
                Ok(())
            })?;
            bias_all.extend(bias(lin)?);
        }
        Ok(Self {
            w: PackedB::linear(&w, n, k),
            bias: bias_all,
            sources,
        })
    }
}

struct PackedLayer {
    /// Query, key and value side by side: one pass over the input for all three.
    qkv: PackedLinear,
    out: PackedLinear,
    out_ln: (Vec<f32>, Vec<f32>),
    up: PackedLinear,
    down: PackedLinear,
    down_ln: (Vec<f32>, Vec<f32>),
}

impl PackedEncoder {
    /// Packs the weights of `enc` and of `dec`'s cross-attention (the decoder's BERT); `None`
    /// when this CPU has no bf16 products ([`bf16::available`]).
    pub fn new(enc: &BertModel, dec: &BertModel) -> Result<Option<Self>> {
        if !bf16::available() {
            return Ok(None);
        }
        let d = enc.config.hidden_size;
        let f = enc.config.intermediate_size;
        let mut layers = Vec::with_capacity(enc.layers.len());
        for layer in &enc.layers {
            let sa = &layer.attention.self_attention;
            let ao = &layer.attention.output;
            layers.push(PackedLayer {
                qkv: PackedLinear::fused(&[&sa.query, &sa.key, &sa.value], d)?,
                out: PackedLinear::fused(&[&ao.dense], d)?,
                out_ln: ln(&ao.layer_norm)?,
                up: PackedLinear::fused(&[&layer.intermediate], d)?,
                down: PackedLinear::fused(&[&layer.output.dense], f)?,
                down_ln: ln(&layer.output.layer_norm)?,
            });
        }
        let mut cross = Vec::with_capacity(dec.layers.len());
        for layer in &dec.layers {
            let ca = &layer
                .crossattention
                .as_ref()
                .ok_or_else(|| ModelError::Input("decoder without cross-attention".into()))?
                .self_attention;
            cross.push(PackedLinear::fused(&[&ca.key, &ca.value], d)?);
        }
        Ok(Some(Self { layers, cross }))
    }

    /// The f32 weights packed here: generation no longer reads them.
    pub fn replaces(&self) -> Vec<TensorId> {
        let layers = self
            .layers
            .iter()
            .flat_map(|l| [&l.qkv, &l.out, &l.up, &l.down]);
        layers
            .chain(&self.cross)
            .flat_map(|p| p.sources.iter().copied())
            .collect()
    }

    /// Decoder layers packed (their cross-attention).
    pub fn decoder_layers(&self) -> usize {
        self.cross.len()
    }

    /// Decoder layer `layer`'s cross-attention keys and values of the encoder rows `enc`
    /// `[n, D]`, side by side: `[n, 2D]`.
    pub fn cross_keys_values(&self, layer: usize, enc: &[f32], n: usize) -> Vec<f32> {
        let lin = &self.cross[layer];
        let mut kv = vec![0.0f32; n * lin.w.n];
        fill_rows(&mut kv, &lin.bias);
        linear_bf16(enc, enc.len() / n.max(1), &lin.w, &mut kv);
        kv
    }
}

/// Rows per parallel task of a bf16 linear layer.
const ROWS_PER_TASK: usize = 4 * bf16::MR;

/// `y += x W^T` in bf16 for `x` `[rows, k]`, `y` `[rows, n]`: each task rounds its rows of `x`
/// to bf16 pairs and multiplies them.
fn linear_bf16(x: &[f32], k: usize, w: &PackedB, y: &mut [f32]) {
    let n = w.n;
    y.par_chunks_mut(ROWS_PER_TASK * n)
        .zip(x.par_chunks(ROWS_PER_TASK * k))
        .for_each_init(Vec::new, |pairs, (yc, xc)| {
            let m = xc.len() / k;
            bf16::pairs_into(xc, m, k, k, pairs);
            bf16::matmul(pairs, m, w, yc, n, true, 1.0);
        });
}

/// The layers of [`encode_unpadded`] with bf16 products; `x` holds the embeddings on entry and
/// the hidden states on return.
fn encode_layers_bf16(enc: &BertModel, p: &PackedEncoder, x: &mut [f32], l: usize) -> Result<()> {
    let cfg = &enc.config;
    let d = cfg.hidden_size;
    let h = cfg.num_attention_heads;
    let dh = d / h;
    let f = cfg.intermediate_size;
    let eps = cfg.layer_norm_eps as f32;
    let scale = 1.0 / (dh as f32).sqrt();
    let mut qkv = vec![0.0f32; l * 3 * d];
    let mut ctx = vec![0.0f32; l * d];
    let mut hid = vec![0.0f32; l * f];
    let mut keys = vec![PackedB::default(); h];
    let mut values = vec![PackedB::default(); h];
    for layer in &p.layers {
        fill_rows(&mut qkv, &layer.qkv.bias);
        linear_bf16(x, d, &layer.qkv.w, &mut qkv);
        attention_bf16(&qkv, &mut keys, &mut values, &mut ctx, l, h, dh, scale);
        kernels::add_rows(x, &layer.out.bias);
        linear_bf16(&ctx, d, &layer.out.w, x);
        layer_norm_rows(x, d, &layer.out_ln.0, &layer.out_ln.1, eps);
        fill_rows(&mut hid, &layer.up.bias);
        linear_bf16(x, d, &layer.up.w, &mut hid);
        hid.par_chunks_mut(f * 16).for_each(kernels::gelu);
        kernels::add_rows(x, &layer.down.bias);
        linear_bf16(&hid, f, &layer.down.w, x);
        layer_norm_rows(x, d, &layer.down_ln.0, &layer.down_ln.1, eps);
    }
    Ok(())
}

/// [`attention`] in bf16 over `qkv` `[L, 3D]` (queries, keys, values side by side): each head's
/// keys and values are packed once, then blocks of query rows run in parallel.
#[allow(clippy::too_many_arguments)]
fn attention_bf16(
    qkv: &[f32],
    keys: &mut [PackedB],
    values: &mut [PackedB],
    ctx: &mut [f32],
    l: usize,
    h: usize,
    dh: usize,
    scale: f32,
) {
    let d = h * dh;
    let ld = 3 * d;
    keys.par_iter_mut()
        .zip(values.par_iter_mut())
        .enumerate()
        .for_each_init(Vec::new, |scratch, (hh, (kb, vb))| {
            // Scores Q K^T (B = K^T); context P V (B = V).
            kb.pack_transposed(&qkv[d + hh * dh..], l, dh, ld, scratch);
            vb.pack_rows(&qkv[2 * d + hh * dh..], l, dh, ld);
        });
    let (keys, values) = (&*keys, &*values);
    query_blocks(
        ctx,
        l,
        h,
        dh,
        Vec::new,
        |pairs, hh, r0, rows, s| {
            bf16::pairs_into(&qkv[r0 * ld + hh * dh..], rows, dh, ld, pairs);
            bf16::matmul(pairs, rows, &keys[hh], s, l, false, scale);
        },
        |pairs, hh, _, rows, s, out| {
            bf16::pairs_into(s, rows, l, l, pairs);
            // SAFETY: `out` is this task's block of `ctx` (rows D apart, DH columns).
            unsafe { bf16::matmul_raw(pairs, rows, &values[hh], out.0, d, false, 1.0) };
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
        let got = encode_unpadded(&m.encoder, &ids, None).unwrap();
        let worst = want
            .iter()
            .zip(&got)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(worst < 2e-5, "fast encoder diff {worst}");
    }

    #[test]
    fn bf16_encoder_stays_near_f32() {
        // 4 heads of 12 (a key/value tail of 12 columns), 150 tokens: a partial query block and
        // an odd number of key pairs after the last full one.
        let cfg = Config::from_parts(
            BertConfig::sized(48, 2, 4, 96, 256),
            BertConfig::sized(48, 1, 4, 96, 256),
        );
        let mut m = ImprovNetModel::random(&cfg, 9, &Device::Cpu).unwrap();
        let ids: Vec<u32> = (0..151u32).map(|i| (i * 31 + 7) % 250 + 1).collect();
        let want = encode_unpadded(&m.encoder, &ids, None).unwrap();
        if !m.set_bf16_encoder(true).unwrap() {
            eprintln!("skipped: this CPU has no AVX-512 BF16");
            return;
        }
        let packed = PackedEncoder::new(&m.encoder, &m.decoder.bert)
            .unwrap()
            .unwrap();
        let got = encode_unpadded(&m.encoder, &ids, Some(&packed)).unwrap();
        // LayerNorm outputs are O(1); bf16 keeps 8 significant bits of each product's inputs.
        let worst = want
            .iter()
            .zip(&got)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(worst > 0.0, "bf16 path not taken");
        assert!(worst < 2e-3, "bf16 encoder diff {worst}");
    }
}
