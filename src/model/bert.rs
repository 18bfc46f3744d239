//! BERT building blocks with Hugging Face names (`BertModel`, `BertLMHeadModel` pieces).
//!
//! Post-LN everywhere, GELU (erf), LayerNorm eps from the config, learned absolute positions and
//! token-type row 0 always added (spec §5.1). Full-sequence forward with candle ops; the
//! incremental decoder used for generation lives in `fast.rs` and reads the same tensors.

use candle_core::{DType, Device, Module, Result, Tensor};
use candle_nn::{Embedding, LayerNorm, Linear, VarBuilder};

use super::config::BertConfig;

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
        })
    }

    /// `ids`: `[B, L]` (u32), positions `start..start+L`.
    pub fn forward(&self, ids: &Tensor, start: usize) -> Result<Tensor> {
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
        self.layer_norm.forward(&x)
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
        })
    }

    fn split_heads(&self, x: &Tensor) -> Result<Tensor> {
        let (b, l, _) = x.dims3()?;
        x.reshape((b, l, self.num_heads, self.head_dim))?
            .transpose(1, 2)?
            .contiguous()
    }

    /// `q_in`: `[B, Lq, D]`, `kv_in`: `[B, Lk, D]`, `mask`: additive, broadcastable to
    /// `[B, H, Lq, Lk]`.
    pub fn forward(&self, q_in: &Tensor, kv_in: &Tensor, mask: Option<&Tensor>) -> Result<Tensor> {
        let (b, lq, d) = q_in.dims3()?;
        let q = self.split_heads(&apply_linear(&self.query, q_in)?)?;
        let k = self.split_heads(&apply_linear(&self.key, kv_in)?)?;
        let v = self.split_heads(&apply_linear(&self.value, kv_in)?)?;
        let scale = 1.0 / (self.head_dim as f64).sqrt();
        let mut scores = (q.matmul(&k.t()?)? * scale)?;
        if let Some(m) = mask {
            scores = scores.broadcast_add(m)?;
        }
        let probs = candle_nn::ops::softmax_last_dim(&scores)?;
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
}

impl BertOutput {
    pub fn new(d_in: usize, d: usize, eps: f64, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            dense: linear(d_in, d, vb.pp("dense"))?,
            layer_norm: layer_norm(d, eps, vb.pp("LayerNorm"))?,
        })
    }

    pub fn forward(&self, h: &Tensor, residual: &Tensor) -> Result<Tensor> {
        self.layer_norm
            .forward(&(apply_linear(&self.dense, h)? + residual)?)
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
                vb.pp("output"),
            )?,
        })
    }

    pub fn forward(&self, x: &Tensor, kv: &Tensor, mask: Option<&Tensor>) -> Result<Tensor> {
        let h = self.self_attention.forward(x, kv, mask)?;
        self.output.forward(&h, x)
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
                vb.pp("output"),
            )?,
        })
    }

    /// `self_mask`: padding mask (encoder) or causal mask (decoder); `cross`: encoder output and
    /// its key padding mask.
    pub fn forward(
        &self,
        x: &Tensor,
        self_mask: Option<&Tensor>,
        cross: Option<(&Tensor, Option<&Tensor>)>,
    ) -> Result<Tensor> {
        let mut x = self.attention.forward(x, x, self_mask)?;
        if let (Some(ca), Some((enc, enc_mask))) = (&self.crossattention, cross) {
            x = ca.forward(&x, enc, enc_mask)?;
        }
        let h = apply_linear(&self.intermediate, &x)?.gelu_erf()?;
        self.output.forward(&h, &x)
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
    ) -> Result<Tensor> {
        let mut x = self.embeddings.forward(ids, 0)?;
        for layer in &self.layers {
            x = layer.forward(&x, self_mask, cross)?;
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
}

impl LmHead {
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
        })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let h = apply_linear(&self.transform_dense, x)?.gelu_erf()?;
        let h = self.transform_layer_norm.forward(&h)?;
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
