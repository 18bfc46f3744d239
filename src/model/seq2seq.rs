//! `ImprovNetModel`: the BERT2BERT `EncoderDecoderModel` (spec §5.1).

use candle_core::{DType, Device, Tensor};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::VarBuilder;
use std::path::Path;

use super::bert::{causal_mask, padding_mask, BertModel, LmHead, Train};
use super::config::Config;
use super::weights::{self, CheckedTensors, Recorded};
use super::{ModelError, Result};

/// The decoder side: `decoder.bert.*` (no pooler) and `decoder.cls.predictions.*`.
#[derive(Debug, Clone)]
pub struct BertLmHeadModel {
    pub bert: BertModel,
    pub cls: LmHead,
}

impl BertLmHeadModel {
    pub fn new(cfg: &super::BertConfig, vb: VarBuilder) -> candle_core::Result<Self> {
        Ok(Self {
            bert: BertModel::new(cfg, vb.pp("bert"), Some(false))?,
            cls: LmHead::new(cfg, vb.pp("cls").pp("predictions"))?,
        })
    }

    /// The tensors incremental decoding reads, in the order `fast` indexes them
    /// ([`EMB_TENSORS`] embedding tensors, [`LAYER_TENSORS`] per layer, then the LM head's),
    /// each with whether it is a matrix every token multiplies by (what 8-bit copies replace).
    pub fn generation_tensors(&self) -> Vec<(&Tensor, bool)> {
        let e = &self.bert.embeddings;
        let mut v: Vec<(&Tensor, bool)> = vec![
            (e.word_embeddings.embeddings(), false),
            (e.position_embeddings.embeddings(), false),
            (e.token_type_embeddings.embeddings(), false),
            (e.layer_norm.weight(), false),
            (e.layer_norm.bias().expect("LayerNorm bias"), false),
        ];
        fn lin<'a>(v: &mut Vec<(&'a Tensor, bool)>, l: &'a candle_nn::Linear) {
            v.push((l.weight(), true));
            v.push((l.bias().expect("bias"), false));
        }
        fn ln<'a>(v: &mut Vec<(&'a Tensor, bool)>, l: &'a candle_nn::LayerNorm) {
            v.push((l.weight(), false));
            v.push((l.bias().expect("bias"), false));
        }
        for layer in &self.bert.layers {
            let sa = &layer.attention;
            let ca = layer
                .crossattention
                .as_ref()
                .expect("decoder layers have cross-attention");
            let s = &sa.self_attention;
            for l in [&s.query, &s.key, &s.value, &sa.output.dense] {
                lin(&mut v, l);
            }
            ln(&mut v, &sa.output.layer_norm);
            for l in [&ca.self_attention.query, &ca.output.dense] {
                lin(&mut v, l);
            }
            ln(&mut v, &ca.output.layer_norm);
            for l in [&layer.intermediate, &layer.output.dense] {
                lin(&mut v, l);
            }
            ln(&mut v, &layer.output.layer_norm);
        }
        let c = &self.cls;
        lin(&mut v, &c.transform_dense);
        ln(&mut v, &c.transform_layer_norm);
        lin(&mut v, &c.decoder);
        v
    }
}

/// Embedding tensors at the start of [`BertLmHeadModel::generation_tensors`].
pub const EMB_TENSORS: usize = 5;
/// Tensors per decoder layer in [`BertLmHeadModel::generation_tensors`].
pub const LAYER_TENSORS: usize = 22;

/// Generation's arithmetic ([`ImprovNetModel::set_precision`]; the command line's
/// `--precision`): what the encoder multiplies in and how the decoder's weights are stored.
/// Training always computes in f32.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Precision {
    /// bf16 products where the CPU has AVX-512 BF16; 8-bit decoder weights where the decoder
    /// is memory-bound (32 MB of f32 matrices or more: the released model, not the shipped one).
    Auto,
    /// f32 everywhere: the reference arithmetic.
    F32,
    /// The encoder's products in bf16 (an error where the CPU lacks AVX-512 BF16), the
    /// decoder's weights f32.
    Bf16,
    /// The decoder's weights in 8 bits (its products' inputs too where the CPU has AVX-512
    /// VNNI) and its cross-attention keys and values in bf16; the encoder in bf16 where the CPU
    /// has AVX-512 BF16.
    Int8,
}

/// Decoders whose f32 matrices reach this many bytes get 8-bit weights under
/// [`Precision::Auto`]: past the caches, each token's time is the time to read them (the
/// released model's are 182 MB). Below it they stay in cache and f32 products are as fast (the
/// shipped small model's are 6 MB).
pub const INT8_FROM_BYTES: usize = 32 << 20;

/// The ImprovNet network. Computes in f32.
pub struct ImprovNetModel {
    pub config: Config,
    pub encoder: BertModel,
    pub decoder: BertLmHeadModel,
    device: Device,
    tensors: Vec<(String, Tensor)>,
    /// The encoder's weights packed for bf16 products, when switched on ([`Self::set_bf16_encoder`]).
    bf16_encoder: Option<super::fast_enc::PackedEncoder>,
    /// The decoder's matrices in 8 bits, when switched on ([`Self::set_int8_decoder`]).
    int8_decoder: Option<super::int8::Int8Decoder>,
    /// Parameters of the checkpoint (counted before [`Self::keep_generation_weights`]).
    parameters: usize,
    /// The f32 matrices that the bf16 encoder replaces are gone.
    encoder_shed: bool,
    /// The f32 matrices that the 8-bit decoder replaces are gone.
    decoder_shed: bool,
}

impl ImprovNetModel {
    /// Builds the model from any weight source (a checkpoint, a `VarMap` for training, zeros),
    /// recording each tensor it takes so that [`save`](Self::save) writes exactly those.
    pub fn from_backend<'a>(
        config: &Config,
        backend: Box<dyn SimpleBackend + 'a>,
        device: &Device,
    ) -> candle_core::Result<Self> {
        let (vb, log) = weights::recording(backend, DType::F32, device);
        Self::build(config, vb, log, device, None)
    }

    /// A model over a `VarMap` for training, with the encoder's (unused) pooler, so that its
    /// checkpoints hold every tensor HF's `EncoderDecoderModel` expects.
    pub fn trainable(
        config: &Config,
        vars: &candle_nn::VarMap,
        device: &Device,
    ) -> candle_core::Result<Self> {
        let (vb, log) = weights::recording(Box::new(vars.clone()), DType::F32, device);
        Self::build(config, vb, log, device, Some(true))
    }

    fn build(
        config: &Config,
        vb: VarBuilder,
        log: Recorded,
        device: &Device,
        pooler: Option<bool>,
    ) -> candle_core::Result<Self> {
        let encoder = BertModel::new(&config.encoder, vb.pp("encoder"), pooler)?;
        let decoder = BertLmHeadModel::new(&config.decoder, vb.pp("decoder"))?;
        let tensors = std::mem::take(&mut *log.lock().unwrap());
        let parameters = tensors.iter().map(|(_, t)| t.elem_count()).sum();
        Ok(Self {
            config: config.clone(),
            encoder,
            decoder,
            device: device.clone(),
            tensors,
            bf16_encoder: None,
            int8_decoder: None,
            parameters,
            encoder_shed: false,
            decoder_shed: false,
        })
    }

    /// Loads `dir/config.json` and `dir/model.safetensors` (f32, f16 or bf16; computed in f32).
    pub fn load(dir: &Path, device: &Device) -> Result<Self> {
        let cfg_path = dir.join("config.json");
        if !cfg_path.is_file() {
            return Err(ModelError::MissingFile { path: cfg_path });
        }
        let config = Config::from_file(&cfg_path)?;
        let st = dir.join("model.safetensors");
        let tensors = CheckedTensors::load(&st)?;
        Self::from_backend(&config, Box::new(tensors), device)
            .map_err(|e| weights::weights_error(&st, e))
    }

    /// A model from `config.json` text and safetensors bytes already in memory (the model built
    /// into the plugin); `label` names it in errors.
    pub fn from_bytes(
        config_json: &str,
        safetensors: &[u8],
        label: &Path,
        device: &Device,
    ) -> Result<Self> {
        let config = Config::from_json(config_json, &label.join("config.json"))?;
        let st = label.join("model.safetensors");
        let tensors = CheckedTensors::from_buffer(safetensors, &st)?;
        Self::from_backend(&config, Box::new(tensors), device)
            .map_err(|e| weights::weights_error(&st, e))
    }

    /// A model with random weights: normal(0, 0.02) matrices, and (unlike HF's init) small noise
    /// on biases and LayerNorms so that tests and benches exercise them. Deterministic in `seed`.
    pub fn random(config: &Config, seed: u64, device: &Device) -> Result<Self> {
        config.validate()?;
        Ok(Self::from_backend(
            config,
            Box::new(RandomInit::new(seed)),
            device,
        )?)
    }

    /// Writes `dir/config.json` and `dir/model.safetensors` (f32) in the HF layout.
    pub fn save(&self, dir: &Path) -> Result<()> {
        self.needs("save", true, true)?;
        std::fs::create_dir_all(dir).map_err(|e| ModelError::Io {
            path: dir.to_path_buf(),
            error: e,
        })?;
        weights::save_tensors(&self.tensors, &dir.join("model.safetensors"))?;
        weights::write_atomic(&dir.join("config.json"), &self.config.to_json_string())
    }

    /// Every parameter tensor, by HF name (the LM-head bias once).
    pub fn named_tensors(&self) -> &[(String, Tensor)] {
        &self.tensors
    }

    /// Number of parameters (the LM-head bias counted once, as in transformers 4.40.1).
    pub fn num_parameters(&self) -> usize {
        self.parameters
    }

    /// An error naming `what` when f32 matrices it reads are gone: the encoder's (`enc`), the
    /// decoder's (`dec`).
    fn needs(&self, what: &str, enc: bool, dec: bool) -> Result<()> {
        if (enc && self.encoder_shed) || (dec && self.decoder_shed) {
            return Err(ModelError::Input(format!(
                "{what}: this model kept only generation's copies of its weights"
            )));
        }
        Ok(())
    }

    /// Frees the f32 matrices that generation no longer reads: the encoder's and the
    /// cross-attention key and value projections when they are packed in bf16, the decoder's
    /// when they are in 8 bits. Why: the released model's weights are 375 MB in f32, and a
    /// second copy beside them would put a plugin's memory past what a DAW expects. After
    /// this the model only generates: the full-sequence forward, `save` and switching the
    /// arithmetic of what was freed return an error. Call it after each switch (the 8-bit
    /// decoder first) to keep the peak low: the freed memory then holds the next copy.
    pub fn keep_generation_weights(&mut self) -> Result<()> {
        // What the copies replace is theirs to say: the packed encoder lists what it packed,
        // the 8-bit decoder what it rounded.
        let mut gone = Vec::new();
        if let (Some(p), false) = (&self.bf16_encoder, self.encoder_shed) {
            gone.extend(p.replaces());
            self.encoder_shed = true;
        }
        if let (Some(q), false) = (&self.int8_decoder, self.decoder_shed) {
            gone.extend_from_slice(q.replaces());
            self.decoder_shed = true;
        }
        let linears = self.encoder.linears_mut().into_iter();
        let linears = linears
            .chain(self.decoder.bert.linears_mut())
            .chain(self.decoder.cls.linears_mut());
        for l in linears.filter(|l| gone.contains(&l.weight().id())) {
            let (_, cols) = l.weight().dims2()?;
            let empty = Tensor::zeros((0, cols), DType::F32, &self.device)?;
            *l = candle_nn::Linear::new(empty, l.bias().cloned());
        }
        self.tensors.retain(|(_, t)| !gone.contains(&t.id()));
        Ok(())
    }

    /// Runs generation's encoder products in bf16 (`on`) or f32; returns whether bf16 is in use,
    /// which needs a CPU with AVX-512 BF16. Packs the encoder's weights as they are now: call it
    /// again after changing them (training never switches it on).
    pub fn set_bf16_encoder(&mut self, on: bool) -> Result<bool> {
        self.needs("switching the encoder's arithmetic", true, false)?;
        self.bf16_encoder = if on {
            super::fast_enc::PackedEncoder::new(&self.encoder, &self.decoder.bert)?
        } else {
            None
        };
        Ok(self.bf16_encoder.is_some())
    }

    /// Whether generation's encoder runs in bf16.
    pub fn bf16_encoder_on(&self) -> bool {
        self.bf16_encoder.is_some()
    }

    /// The packed encoder weights generation uses, if bf16 is switched on.
    pub(crate) fn bf16_encoder(&self) -> Option<&super::fast_enc::PackedEncoder> {
        self.bf16_encoder.as_ref()
    }

    /// Sets generation's arithmetic and frees the f32 matrices it no longer reads (each part as
    /// soon as its copy is made, so that the copy reuses the memory), except for
    /// [`Precision::F32`], which keeps the model whole.
    pub fn set_precision(&mut self, precision: Precision) -> Result<()> {
        let lean = precision != Precision::F32;
        let int8 = match precision {
            Precision::Int8 => true,
            Precision::Auto => 4 * self.config.decoder_matrix_weights() >= INT8_FROM_BYTES,
            _ => false,
        };
        self.set_int8_decoder(int8)?;
        if lean {
            self.keep_generation_weights()?;
        }
        let on = self.set_bf16_encoder(lean)?;
        if precision == Precision::Bf16 && !on {
            return Err(ModelError::Input(
                "bf16: this CPU has no AVX-512 BF16; use auto, int8 or f32".into(),
            ));
        }
        if lean {
            self.keep_generation_weights()?;
        }
        Ok(())
    }

    /// Runs generation's decoder with 8-bit weights (`on`) or the f32 ones. Rounds the weights
    /// as they are now: call it again after changing them (training never switches it on).
    pub fn set_int8_decoder(&mut self, on: bool) -> Result<()> {
        self.needs("switching the decoder's arithmetic", false, true)?;
        self.int8_decoder = if on {
            Some(super::int8::Int8Decoder::new(
                &self.decoder.generation_tensors(),
            )?)
        } else {
            None
        };
        Ok(())
    }

    /// Whether generation's decoder reads 8-bit weights.
    pub fn int8_decoder_on(&self) -> bool {
        self.int8_decoder.is_some()
    }

    pub(crate) fn int8_decoder(&self) -> Option<&super::int8::Int8Decoder> {
        self.int8_decoder.as_ref()
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Encoder output `[B, L, D]` for `ids` `[B, L]` (u32) with `mask` `[B, L]` (1 = token).
    pub fn encode(&self, ids: &Tensor, mask: &Tensor) -> Result<Tensor> {
        self.needs("the full-sequence encoder", true, false)?;
        // No padding: skip the additive mask (it would add zeros to every score).
        let all_ones = mask.to_dtype(DType::F32)?.min_all()?.to_scalar::<f32>()? >= 1.0;
        let m = if all_ones {
            None
        } else {
            Some(padding_mask(mask)?)
        };
        Ok(self.encoder.forward(ids, m.as_ref(), None, None)?)
    }

    /// Decoder logits `[B, Ld, V]` for the whole prefix `dec_ids` (no cache).
    pub fn decode(&self, dec_ids: &Tensor, enc_out: &Tensor, enc_mask: &Tensor) -> Result<Tensor> {
        self.needs("the full-sequence decoder", true, true)?;
        let (_, l) = dec_ids.dims2()?;
        let causal = causal_mask(l, &self.device)?;
        let em = padding_mask(enc_mask)?;
        let h =
            self.decoder
                .bert
                .forward(dec_ids, Some(&causal), Some((enc_out, Some(&em))), None)?;
        Ok(self.decoder.cls.forward(&h, None)?)
    }

    /// Full forward: `enc_ids`, `enc_mask` `[B, Le]`, `dec_ids` `[B, Ld]` -> logits `[B, Ld, V]`.
    pub fn forward(&self, enc_ids: &Tensor, enc_mask: &Tensor, dec_ids: &Tensor) -> Result<Tensor> {
        let enc = self.encode(enc_ids, enc_mask)?;
        self.decode(dec_ids, &enc, enc_mask)
    }

    /// [`forward`](Self::forward) for training: dropout and differentiable kernels from `train`.
    pub fn forward_t(
        &self,
        enc_ids: &Tensor,
        enc_mask: &Tensor,
        dec_ids: &Tensor,
        train: &Train,
    ) -> Result<Tensor> {
        self.needs("training", true, true)?;
        // No padding (a micro-batch of one): no additive mask at all.
        let all_ones = enc_mask
            .to_dtype(DType::F32)?
            .min_all()?
            .to_scalar::<f32>()?
            >= 1.0;
        let em = if all_ones {
            None
        } else {
            Some(padding_mask(enc_mask)?)
        };
        let enc = self
            .encoder
            .forward(enc_ids, em.as_ref(), None, Some(train))?;
        let (_, l) = dec_ids.dims2()?;
        let causal = causal_mask(l, &self.device)?;
        let h = self.decoder.bert.forward(
            dec_ids,
            Some(&causal),
            Some((&enc, em.as_ref())),
            Some(train),
        )?;
        Ok(self.decoder.cls.forward(&h, Some(train))?)
    }
}

/// Seeded random initialisation (see [`ImprovNetModel::random`]).
pub struct RandomInit {
    seed: u64,
    counter: std::sync::atomic::AtomicU64,
}

impl RandomInit {
    pub fn new(seed: u64) -> Self {
        Self {
            seed,
            counter: std::sync::atomic::AtomicU64::new(0),
        }
    }
}

impl SimpleBackend for RandomInit {
    fn get(
        &self,
        s: candle_core::Shape,
        _name: &str,
        h: candle_nn::Init,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        use rand::{Rng, SeedableRng};
        let k = self
            .counter
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(
            self.seed ^ (k.wrapping_mul(0x9E37_79B9_7F4A_7C15)),
        );
        let n = s.elem_count();
        let data: Vec<f32> = match h {
            candle_nn::Init::Const(c) => (0..n)
                .map(|_| c as f32 + 0.05 * (rng.gen::<f32>() - 0.5))
                .collect(),
            _ => (0..n)
                .map(|_| {
                    // Sum of 4 uniforms: a cheap, near-normal value with std 0.02.
                    let u: f32 = (0..4).map(|_| rng.gen::<f32>()).sum::<f32>() - 2.0;
                    u * 0.02 * (3.0f32).sqrt()
                })
                .collect(),
        };
        Tensor::from_vec(data, s, dev)?.to_dtype(dtype)
    }
    fn get_unchecked(&self, name: &str, _: DType, _: &Device) -> candle_core::Result<Tensor> {
        candle_core::bail!("RandomInit cannot infer the shape of `{name}`")
    }
    fn contains_tensor(&self, name: &str) -> bool {
        // The random model has the encoder pooler, like a fresh HF model.
        let _ = name;
        true
    }
}
