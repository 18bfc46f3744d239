//! BERT building blocks with Hugging Face names (`BertModel`, `BertLMHeadModel` pieces).
//!
//! Post-LN everywhere, GELU (erf), LayerNorm eps from the config, learned absolute positions and
//! token-type row 0 always added (spec §5.1). Full-sequence forward with candle ops; the
//! incremental decoder used for generation lives in `fast.rs` and reads the same tensors.

use std::sync::atomic::{AtomicU64, Ordering};

use candle_core::{DType, Device, Module, Result, Tensor};
use candle_nn::{Embedding, LayerNorm, Linear, VarBuilder};
use rayon::prelude::*;

use super::autograd::{self, splitmix64};
use super::config::BertConfig;

/// Training mode: dropout (HF BERT's hidden and attention dropout) and differentiable kernels.
///
/// Masks come from a counter-based hash of `(seed, call number, element)`, not from candle's
/// unseeded CPU rng, so one seed per step reproduces a step exactly (bit-identical resume).
/// `None` where a `Train` is taken means inference: no dropout, the fast inference kernels.
#[derive(Debug)]
pub struct Train {
    seed: u64,
    calls: AtomicU64,
    /// Off for evaluation passes that still want the training kernels (tests, validation).
    pub dropout: bool,
}

impl Train {
    pub fn new(seed: u64, dropout: bool) -> Self {
        Self {
            seed,
            calls: AtomicU64::new(0),
            dropout,
        }
    }

    /// The mask key of the next dropout call (one per call, in call order).
    fn next_key(&self) -> u64 {
        let call = self.calls.fetch_add(1, Ordering::Relaxed);
        splitmix64(self.seed ^ splitmix64(call.wrapping_add(0x5EED)))
    }

    /// `dropout(softmax(scores), p)` over the last dimension, fused on CPU.
    pub fn softmax_dropout(&self, scores: &Tensor, p: f64) -> Result<Tensor> {
        if !self.dropout || p <= 0.0 {
            return autograd::softmax_last_dim(scores);
        }
        if scores.device().is_cpu() && scores.dtype() == DType::F32 {
            if p >= 1.0 {
                candle_core::bail!("dropout probability {p} must be below 1")
            }
            autograd::softmax_dropout(scores, p, self.next_key())
        } else {
            self.dropout(&autograd::softmax_last_dim(scores)?, p)
        }
    }

    /// `x` with each element zeroed with probability `p` and the rest scaled by `1/(1-p)`.
    pub fn dropout(&self, x: &Tensor, p: f64) -> Result<Tensor> {
        if !self.dropout || p <= 0.0 {
            return Ok(x.clone());
        }
        if p >= 1.0 {
            candle_core::bail!("dropout probability {p} must be below 1")
        }
        let key = self.next_key();
        let threshold = (p * 4_294_967_296.0) as u64;
        let scale = (1.0 / (1.0 - p)) as f32;
        let mut mask = vec![0f32; x.elem_count()];
        mask.par_chunks_mut(1 << 15)
            .enumerate()
            .for_each(|(c, chunk)| {
                let base = (c as u64) << 15;
                for (i, m) in chunk.iter_mut().enumerate() {
                    let r = splitmix64(key.wrapping_add(base + i as u64)) >> 32;
                    *m = if r < threshold { 0.0 } else { scale };
                }
            });
        let mask = Tensor::from_vec(mask, x.shape(), x.device())?.to_dtype(x.dtype())?;
        x * mask
    }
}

/// LayerNorm: the fast inference kernel, or the differentiable one when training.
fn norm(ln: &LayerNorm, x: &Tensor, train: Option<&Train>, eps: f64) -> Result<Tensor> {
    match (train, ln.bias()) {
        (Some(_), Some(b)) => autograd::layer_norm(x, ln.weight(), b, eps),
        _ => ln.forward(x),
    }
}

pub fn linear(d_in: usize, d_out: usize, vb: VarBuilder) -> Result<Linear> {
    let w = vb.get_with_hints(
        (d_out, d_in),
        "weight",
        candle_nn::Init::Randn {
            mean: 0.,
            stdev: 0.02,
        },
    )?;
    let b = vb.get_with_hints(d_out, "bias", candle_nn::Init::Const(0.))?;
    Ok(Linear::new(w, Some(b)))
}

pub fn layer_norm(size: usize, eps: f64, vb: VarBuilder) -> Result<LayerNorm> {
    let w = vb.get_with_hints(size, "weight", candle_nn::Init::Const(1.))?;
    let b = vb.get_with_hints(size, "bias", candle_nn::Init::Const(0.))?;
    Ok(LayerNorm::new(w, b, eps))
}

fn embedding(n: usize, d: usize, vb: VarBuilder) -> Result<Embedding> {
    let w = vb.get_with_hints(
        (n, d),
        "weight",
        candle_nn::Init::Randn {
            mean: 0.,
            stdev: 0.02,
        },
    )?;
    Ok(Embedding::new(w, d))
}

/// Applies a `[out, in]` linear layer to `[.., in]` as one 2-D matmul.
pub fn apply_linear(l: &Linear, x: &Tensor) -> Result<Tensor> {
    let dims = x.dims().to_vec();
    let d_in = *dims.last().unwrap();
    let n = x.elem_count() / d_in;
    let y = l.forward(&x.reshape((n, d_in))?)?;
    let mut out = dims;
    *out.last_mut().unwrap() = y.dim(1)?;
    y.reshape(out)
}

/// `word + position + token_type[0]`, then LayerNorm.
#[derive(Debug, Clone)]
pub struct BertEmbeddings {
    pub word_embeddings: Embedding,
    pub position_embeddings: Embedding,
    pub token_type_embeddings: Embedding,
    pub layer_norm: LayerNorm,
    pub eps: f64,
    pub dropout: f64,
}

impl BertEmbeddings {
    pub fn new(cfg: &BertConfig, vb: VarBuilder) -> Result<Self> {
        let d = cfg.hidden_size;
        Ok(Self {
            word_embeddings: embedding(cfg.vocab_size, d, vb.pp("word_embeddings"))?,
            position_embeddings: embedding(
                cfg.max_position_embeddings,
                d,
                vb.pp("position_embeddings"),
            )?,
            token_type_embeddings: embedding(
                cfg.type_vocab_size,
                d,
                vb.pp("token_type_embeddings"),
            )?,
            layer_norm: layer_norm(d, cfg.layer_norm_eps, vb.pp("LayerNorm"))?,
            eps: cfg.layer_norm_eps,
            dropout: cfg.hidden_dropout_prob,
        })
    }

    /// `ids`: `[B, L]` (u32), positions `start..start+L`; dropout after the LayerNorm when
    /// training (`train`: `None` at inference).
    pub fn forward(&self, ids: &Tensor, start: usize, train: Option<&Train>) -> Result<Tensor> {
        let (_b, l) = ids.dims2()?;
        let max = self.position_embeddings.embeddings().dim(0)?;
        if start + l > max {
            candle_core::bail!(
                "sequence of {} tokens exceeds max_position_embeddings {max}",
                start + l
            )
        }
        let words = self.word_embeddings.forward(ids)?;
        let pos = self.position_embeddings.embeddings().narrow(0, start, l)?;
        let tt = self.token_type_embeddings.embeddings().narrow(0, 0, 1)?;
        let x = words.broadcast_add(&pos.broadcast_add(&tt)?)?;
        let x = norm(&self.layer_norm, &x, train, self.eps)?;
        match train {
            Some(t) => t.dropout(&x, self.dropout),
            None => Ok(x),
        }
    }
}

/// `attention.self`: query/key/value projections and scaled dot-product attention.
#[derive(Debug, Clone)]
pub struct BertSelfAttention {
    pub query: Linear,
    pub key: Linear,
    pub value: Linear,
    pub num_heads: usize,
    pub head_dim: usize,
    pub dropout: f64,
}

impl BertSelfAttention {
    pub fn new(cfg: &BertConfig, vb: VarBuilder) -> Result<Self> {
        let d = cfg.hidden_size;
        Ok(Self {
            query: linear(d, d, vb.pp("query"))?,
            key: linear(d, d, vb.pp("key"))?,
            value: linear(d, d, vb.pp("value"))?,
            num_heads: cfg.num_attention_heads,
            head_dim: cfg.head_dim(),
            dropout: cfg.attention_probs_dropout_prob,
        })
    }

    fn split_heads(&self, x: &Tensor) -> Result<Tensor> {
        let (b, l, _) = x.dims3()?;
        x.reshape((b, l, self.num_heads, self.head_dim))?
            .transpose(1, 2)?
            .contiguous()
    }

    /// `q_in`: `[B, Lq, D]`, `kv_in`: `[B, Lk, D]`, `mask`: additive, broadcastable to
    /// `[B, H, Lq, Lk]`; dropout on the attention probabilities when training.
    pub fn forward(
        &self,
        q_in: &Tensor,
        kv_in: &Tensor,
        mask: Option<&Tensor>,
        train: Option<&Train>,
    ) -> Result<Tensor> {
        let (b, lq, d) = q_in.dims3()?;
        let q = apply_linear(&self.query, q_in)?;
        let k = self.split_heads(&apply_linear(&self.key, kv_in)?)?;
        let v = self.split_heads(&apply_linear(&self.value, kv_in)?)?;
        let scale = 1.0 / (self.head_dim as f64).sqrt();
        let probs = if let Some(t) = train {
            // Training: scale the (small) queries instead of the (L x L) scores, and fuse the
            // softmax with the attention dropout.
            let q = self.split_heads(&(q * scale)?)?;
            let mut scores = q.matmul(&k.t()?)?;
            if let Some(m) = mask {
                scores = scores.broadcast_add(m)?;
            }
            t.softmax_dropout(&scores, self.dropout)?
        } else {
            let q = self.split_heads(&q)?;
            let mut scores = (q.matmul(&k.t()?)? * scale)?;
            if let Some(m) = mask {
                scores = scores.broadcast_add(m)?;
            }
            candle_nn::ops::softmax_last_dim(&scores)?
        };
        probs
            .matmul(&v)?
            .transpose(1, 2)?
            .contiguous()?
            .reshape((b, lq, d))
    }
}

/// `attention.output` / `output`: dense, then LayerNorm of the residual sum.
#[derive(Debug, Clone)]
pub struct BertOutput {
    pub dense: Linear,
    pub layer_norm: LayerNorm,
    pub eps: f64,
    pub dropout: f64,
}

impl BertOutput {
    /// `dropout`: the hidden dropout applied to the dense output before the residual sum.
    pub fn new(d_in: usize, d: usize, eps: f64, dropout: f64, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            dense: linear(d_in, d, vb.pp("dense"))?,
            layer_norm: layer_norm(d, eps, vb.pp("LayerNorm"))?,
            eps,
            dropout,
        })
    }

    /// `LN(dropout(dense(h)) + residual)`.
    pub fn forward(&self, h: &Tensor, residual: &Tensor, train: Option<&Train>) -> Result<Tensor> {
        let mut y = apply_linear(&self.dense, h)?;
        if let Some(t) = train {
            y = t.dropout(&y, self.dropout)?;
        }
        norm(&self.layer_norm, &(y + residual)?, train, self.eps)
    }
}

/// `attention` or `crossattention`: `LN(x + Dense(Attn(x, kv)))`.
#[derive(Debug, Clone)]
pub struct BertAttention {
    pub self_attention: BertSelfAttention,
    pub output: BertOutput,
}

impl BertAttention {
    pub fn new(cfg: &BertConfig, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            self_attention: BertSelfAttention::new(cfg, vb.pp("self"))?,
            output: BertOutput::new(
                cfg.hidden_size,
                cfg.hidden_size,
                cfg.layer_norm_eps,
                cfg.hidden_dropout_prob,
                vb.pp("output"),
            )?,
        })
    }

    pub fn forward(
        &self,
        x: &Tensor,
        kv: &Tensor,
        mask: Option<&Tensor>,
        train: Option<&Train>,
    ) -> Result<Tensor> {
        let h = self.self_attention.forward(x, kv, mask, train)?;
        self.output.forward(&h, x, train)
    }
}

/// One BERT layer; with `crossattention` when the config is a decoder with cross-attention.
#[derive(Debug, Clone)]
pub struct BertLayer {
    pub attention: BertAttention,
    pub crossattention: Option<BertAttention>,
    pub intermediate: Linear,
    pub output: BertOutput,
}

impl BertLayer {
    pub fn new(cfg: &BertConfig, vb: VarBuilder) -> Result<Self> {
        let crossattention = if cfg.add_cross_attention {
            Some(BertAttention::new(cfg, vb.pp("crossattention"))?)
        } else {
            None
        };
        Ok(Self {
            attention: BertAttention::new(cfg, vb.pp("attention"))?,
            crossattention,
            intermediate: linear(
                cfg.hidden_size,
                cfg.intermediate_size,
                vb.pp("intermediate").pp("dense"),
            )?,
            output: BertOutput::new(
                cfg.intermediate_size,
                cfg.hidden_size,
                cfg.layer_norm_eps,
                cfg.hidden_dropout_prob,
                vb.pp("output"),
            )?,
        })
    }

    /// `self_mask`: padding mask (encoder) or causal mask (decoder); `cross`: encoder output and
    /// its key padding mask; `train`: dropout when training (`None` at inference).
    pub fn forward(
        &self,
        x: &Tensor,
        self_mask: Option<&Tensor>,
        cross: Option<(&Tensor, Option<&Tensor>)>,
        train: Option<&Train>,
    ) -> Result<Tensor> {
        let mut x = self.attention.forward(x, x, self_mask, train)?;
        if let (Some(ca), Some((enc, enc_mask))) = (&self.crossattention, cross) {
            x = ca.forward(&x, enc, enc_mask, train)?;
        }
        let h = super::autograd::gelu_erf(&apply_linear(&self.intermediate, &x)?)?;
        self.output.forward(&h, &x, train)
    }
}

/// `BertModel`: embeddings, `encoder.layer.{i}`, optional pooler (`pooler.dense`, tanh).
#[derive(Debug, Clone)]
pub struct BertModel {
    pub embeddings: BertEmbeddings,
    pub layers: Vec<BertLayer>,
    pub pooler: Option<Linear>,
    pub config: BertConfig,
}

impl BertModel {
    /// Every linear layer (attention, cross-attention, feed-forward, pooler), for passes over
    /// all of them.
    pub fn linears_mut(&mut self) -> Vec<&mut Linear> {
        let mut v = Vec::new();
        for layer in &mut self.layers {
            for att in std::iter::once(&mut layer.attention).chain(&mut layer.crossattention) {
                let s = &mut att.self_attention;
                v.extend([
                    &mut s.query,
                    &mut s.key,
                    &mut s.value,
                    &mut att.output.dense,
                ]);
            }
            v.extend([&mut layer.intermediate, &mut layer.output.dense]);
        }
        v.extend(&mut self.pooler);
        v
    }

    /// `with_pooler`: `Some(true)` requires it, `Some(false)` skips it, `None` loads it if the
    /// weights contain it.
    pub fn new(cfg: &BertConfig, vb: VarBuilder, with_pooler: Option<bool>) -> Result<Self> {
        let embeddings = BertEmbeddings::new(cfg, vb.pp("embeddings"))?;
        let layers = (0..cfg.num_hidden_layers)
            .map(|i| BertLayer::new(cfg, vb.pp("encoder").pp("layer").pp(i)))
            .collect::<Result<Vec<_>>>()?;
        let want = match with_pooler {
            Some(w) => w,
            None => vb.contains_tensor("pooler.dense.weight"),
        };
        let pooler = if want {
            Some(linear(
                cfg.hidden_size,
                cfg.hidden_size,
                vb.pp("pooler").pp("dense"),
            )?)
        } else {
            None
        };
        Ok(Self {
            embeddings,
            layers,
            pooler,
            config: cfg.clone(),
        })
    }

    pub fn forward(
        &self,
        ids: &Tensor,
        self_mask: Option<&Tensor>,
        cross: Option<(&Tensor, Option<&Tensor>)>,
        train: Option<&Train>,
    ) -> Result<Tensor> {
        let mut x = self.embeddings.forward(ids, 0, train)?;
        for layer in &self.layers {
            x = layer.forward(&x, self_mask, cross, train)?;
        }
        Ok(x)
    }

    /// `tanh(dense(hidden[:, 0]))`.
    pub fn pool(&self, hidden: &Tensor) -> Result<Tensor> {
        let p = self
            .pooler
            .as_ref()
            .ok_or_else(|| candle_core::Error::Msg("model has no pooler".into()))?;
        let first = hidden.narrow(1, 0, 1)?.squeeze(1)?;
        p.forward(&first)?.tanh()
    }
}

/// `cls.predictions`: transform (dense, GELU, LayerNorm) and the untied decoder with bias.
#[derive(Debug, Clone)]
pub struct LmHead {
    pub transform_dense: Linear,
    pub transform_layer_norm: LayerNorm,
    pub decoder: Linear,
    pub eps: f64,
}

impl LmHead {
    /// Both linear layers (the transform and the vocabulary projection).
    pub fn linears_mut(&mut self) -> [&mut Linear; 2] {
        [&mut self.transform_dense, &mut self.decoder]
    }

    pub fn new(cfg: &BertConfig, vb: VarBuilder) -> Result<Self> {
        let d = cfg.hidden_size;
        let t = vb.pp("transform");
        let w = vb.pp("decoder").get_with_hints(
            (cfg.vocab_size, d),
            "weight",
            candle_nn::Init::Randn {
                mean: 0.,
                stdev: 0.02,
            },
        )?;
        // One bias (HF 4.x `cls.predictions.bias`, aliased to `decoder.bias` by the loader).
        let b = vb.get_with_hints(cfg.vocab_size, "bias", candle_nn::Init::Const(0.))?;
        Ok(Self {
            transform_dense: linear(d, d, t.pp("dense"))?,
            transform_layer_norm: layer_norm(d, cfg.layer_norm_eps, t.pp("LayerNorm"))?,
            decoder: Linear::new(w, Some(b)),
            eps: cfg.layer_norm_eps,
        })
    }

    /// No dropout in the head (as HF); `train` picks the differentiable LayerNorm.
    pub fn forward(&self, x: &Tensor, train: Option<&Train>) -> Result<Tensor> {
        let h = super::autograd::gelu_erf(&apply_linear(&self.transform_dense, x)?)?;
        let h = norm(&self.transform_layer_norm, &h, train, self.eps)?;
        apply_linear(&self.decoder, &h)
    }
}

/// Additive key-padding mask `[B, 1, 1, Lk]`: 0 for keys with mask 1, `f32::MIN` for padding.
pub fn padding_mask(mask: &Tensor) -> Result<Tensor> {
    let (b, l) = mask.dims2()?;
    let m = mask.to_dtype(DType::F32)?;
    ((1.0 - m)? * f32::MIN as f64)?.reshape((b, 1, 1, l))
}

/// Additive causal mask `[1, 1, L, L]`.
pub fn causal_mask(l: usize, dev: &Device) -> Result<Tensor> {
    let data: Vec<f32> = (0..l)
        .flat_map(|i| (0..l).map(move |j| if j > i { f32::MIN } else { 0.0 }))
        .collect();
    Tensor::from_vec(data, (1, 1, l, l), dev)
}
