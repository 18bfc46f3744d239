//! Model configuration, read from and written to the Hugging Face `config.json` of an
//! `EncoderDecoderModel` (nested `encoder` and `decoder` sections with BERT field names).

use serde::{Deserialize, Serialize};
use std::path::Path;

use super::{ModelError, BOS, EOS, PAD, VOCAB};

fn d_vocab() -> usize {
    VOCAB
}
fn d_hidden() -> usize {
    512
}
fn d_layers() -> usize {
    12
}
fn d_heads() -> usize {
    8
}
fn d_ffn() -> usize {
    2048
}
fn d_positions() -> usize {
    512
}
fn d_eps() -> f64 {
    1e-12
}
fn d_type_vocab() -> usize {
    2
}
fn d_act() -> String {
    "gelu".into()
}
fn d_dropout() -> f64 {
    0.1
}
fn d_init() -> f64 {
    0.02
}
fn d_bert() -> String {
    "bert".into()
}
fn d_pad() -> Option<u32> {
    Some(PAD)
}

/// One BERT stack (`BertConfig`). Unknown fields in the JSON are ignored, absent ones defaulted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BertConfig {
    #[serde(default = "d_vocab")]
    pub vocab_size: usize,
    #[serde(default = "d_hidden")]
    pub hidden_size: usize,
    #[serde(default = "d_layers")]
    pub num_hidden_layers: usize,
    #[serde(default = "d_heads")]
    pub num_attention_heads: usize,
    #[serde(default = "d_ffn")]
    pub intermediate_size: usize,
    #[serde(default = "d_positions")]
    pub max_position_embeddings: usize,
    #[serde(default = "d_type_vocab")]
    pub type_vocab_size: usize,
    #[serde(default = "d_eps")]
    pub layer_norm_eps: f64,
    #[serde(default = "d_act")]
    pub hidden_act: String,
    #[serde(default = "d_dropout")]
    pub hidden_dropout_prob: f64,
    #[serde(default = "d_dropout")]
    pub attention_probs_dropout_prob: f64,
    #[serde(default = "d_init")]
    pub initializer_range: f64,
    #[serde(default)]
    pub is_decoder: bool,
    #[serde(default)]
    pub add_cross_attention: bool,
    #[serde(default)]
    pub tie_word_embeddings: bool,
    #[serde(default = "d_pad")]
    pub pad_token_id: Option<u32>,
    #[serde(default = "d_bert")]
    pub model_type: String,
    /// Classifier only: `{"0": "classical", ...}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id2label: Option<std::collections::BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub architectures: Option<Vec<String>>,
    /// Classifier only: segments on each side of the windows it was trained on (absent: 2,
    /// the original's ~25 s windows). Scoring uses the same windows.
    #[serde(
        default,
        rename = "improvnet_window_context",
        skip_serializing_if = "Option::is_none"
    )]
    pub window_context: Option<usize>,
}

impl BertConfig {
    /// A BERT stack of the given size with the original's fixed choices (GELU erf, eps 1e-12).
    pub fn sized(hidden: usize, layers: usize, heads: usize, ffn: usize, positions: usize) -> Self {
        BertConfig {
            vocab_size: VOCAB,
            hidden_size: hidden,
            num_hidden_layers: layers,
            num_attention_heads: heads,
            intermediate_size: ffn,
            max_position_embeddings: positions,
            type_vocab_size: 2,
            layer_norm_eps: 1e-12,
            hidden_act: "gelu".into(),
            hidden_dropout_prob: 0.1,
            attention_probs_dropout_prob: 0.1,
            initializer_range: 0.02,
            is_decoder: false,
            add_cross_attention: false,
            tie_word_embeddings: false,
            pad_token_id: Some(PAD),
            model_type: "bert".into(),
            id2label: None,
            architectures: None,
            window_context: None,
        }
    }

    /// Classifier windows: segments on each side of the centre (spec §9: 2).
    pub fn classifier_context(&self) -> usize {
        self.window_context.unwrap_or(2)
    }

    /// The same stack as a decoder (causal self-attention + cross-attention, untied LM head).
    pub fn into_decoder(mut self) -> Self {
        self.is_decoder = true;
        self.add_cross_attention = true;
        self.tie_word_embeddings = false;
        self
    }

    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.num_attention_heads
    }

    pub(crate) fn validate(&self, what: &str) -> Result<(), ModelError> {
        if self.num_attention_heads == 0
            || !self.hidden_size.is_multiple_of(self.num_attention_heads)
        {
            return Err(ModelError::Config(format!(
                "{what}: hidden_size {} is not a multiple of num_attention_heads {}",
                self.hidden_size, self.num_attention_heads
            )));
        }
        if !matches!(self.hidden_act.as_str(), "gelu" | "gelu_python") {
            return Err(ModelError::Config(format!(
                "{what}: hidden_act {:?} is not supported (only exact erf \"gelu\")",
                self.hidden_act
            )));
        }
        Ok(())
    }
}

fn d_ed() -> String {
    "encoder-decoder".into()
}
fn d_bos() -> Option<u32> {
    Some(BOS)
}
fn d_eos() -> Option<u32> {
    Some(EOS)
}

/// The `EncoderDecoderModel` configuration (BERT2BERT).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Config {
    pub encoder: BertConfig,
    pub decoder: BertConfig,
    #[serde(default = "d_ed")]
    pub model_type: String,
    #[serde(default = "d_bos")]
    pub decoder_start_token_id: Option<u32>,
    #[serde(default = "d_bos")]
    pub bos_token_id: Option<u32>,
    #[serde(default = "d_eos")]
    pub eos_token_id: Option<u32>,
    #[serde(default = "d_pad")]
    pub pad_token_id: Option<u32>,
    #[serde(default = "yes")]
    pub is_encoder_decoder: bool,
    #[serde(default)]
    pub tie_word_embeddings: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub architectures: Option<Vec<String>>,
    /// The genre tokens the model was trained with (ours, not HF's): a model that never saw a
    /// genre cannot be asked for it. `None` (the released weights): all three.
    #[serde(
        default,
        rename = "improvnet_genres",
        skip_serializing_if = "Option::is_none"
    )]
    pub genres: Option<Vec<String>>,
}

fn yes() -> bool {
    true
}

impl Config {
    /// Builds the top-level config around an encoder and a decoder stack.
    pub fn from_parts(encoder: BertConfig, decoder: BertConfig) -> Self {
        Config {
            encoder,
            decoder: decoder.into_decoder(),
            model_type: d_ed(),
            decoder_start_token_id: Some(BOS),
            bos_token_id: Some(BOS),
            eos_token_id: Some(EOS),
            pad_token_id: Some(PAD),
            is_encoder_decoder: true,
            tie_word_embeddings: false,
            architectures: Some(vec!["EncoderDecoderModel".into()]),
            genres: None,
        }
    }

    /// Weights in the decoder's matrices that each generated token reads: the self- and
    /// cross-attention projections (but the cross-attention keys and values, computed once per
    /// segment), the feed-forward layers and the LM head.
    pub fn decoder_matrix_weights(&self) -> usize {
        let c = &self.decoder;
        let (d, f) = (c.hidden_size, c.intermediate_size);
        c.num_hidden_layers * (6 * d * d + 2 * d * f) + d * d + c.vocab_size * d
    }

    /// The released ImprovNet model (spec §5.1): 12+12 layers, d 512, 8 heads, FFN 2048,
    /// 2048 encoder / 512 decoder positions, vocab 2306. 93,662,466 parameters.
    pub fn base() -> Self {
        Self::from_parts(
            BertConfig::sized(512, 12, 8, 2048, 2048),
            BertConfig::sized(512, 12, 8, 2048, 512),
        )
    }

    /// A small model for live use: a deeper encoder than decoder (4+2 layers), d 192, 4 heads,
    /// FFN 768, about 4.9 M parameters. Decoding dominates a segment (one token at a time,
    /// memory bound), so the decoder is the shallow side; the encoder runs once per segment.
    ///
    /// `examples/model_bench` / `scripts/bench_model_presets.sh`, encoder 1000 tokens, 2 cores,
    /// with the f16 decoder of the time (since removed), measured at load average ~10 (other builds on the machine; a quiet
    /// machine was ~2.7x faster for the same binary), ms per segment for 300 / 150 decoded tokens:
    ///
    /// | shape (enc+dec, d)   | params | 300 tok | 150 tok |
    /// |----------------------|--------|---------|---------|
    /// | 4+4 d256 (old small) | 9.94 M | 2441    | 1318    |
    /// | 4+2 d256             | 7.83 M | 1347    | 957     |
    /// | 3+2 d256             | 7.04 M | 1107    | 971     |
    /// | 4+2 d192 (small)     | 4.86 M | 512     | 371     |
    /// | 4+4 d128             | 3.10 M | 545     | 438     |
    /// | 4+2 d128             | 2.57 M | 287     | 160     |
    ///
    /// On a quiet machine (load < 1, 2026-11-26, `examples/model_bench small --runs 3`): 4+2 d192
    /// refines a 300-token segment in 145 ms (encoder 82 ms, decoder 0.21 ms/token) in f32.
    ///
    /// d256 cannot reach the 150 ms target: its encoder alone (~5 GMAC over 1000 tokens) is
    /// ~100 ms of gemm on 2 cores. 4+2 d192 is the widest shape near the target; 4+2 d128 is
    /// the one to take if 300-token segments must fit 150 ms.
    pub fn small() -> Self {
        Self::from_parts(
            BertConfig::sized(192, 4, 4, 768, 2048),
            BertConfig::sized(192, 2, 4, 768, 512),
        )
    }

    pub fn from_json_str(s: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(s)
    }

    /// Reads `config.json`.
    pub fn from_file(path: &Path) -> Result<Self, ModelError> {
        let text = std::fs::read_to_string(path).map_err(|e| ModelError::Io {
            path: path.to_path_buf(),
            error: e,
        })?;
        Self::from_json(&text, path)
    }

    /// Parses and validates `config.json` text; `path` names it in errors.
    pub fn from_json(text: &str, path: &Path) -> Result<Self, ModelError> {
        let cfg: Config = serde_json::from_str(text).map_err(|e| ModelError::Json {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        cfg.validate()?;
        Ok(cfg)
    }

    pub fn validate(&self) -> Result<(), ModelError> {
        self.encoder.validate("encoder")?;
        self.decoder.validate("decoder")?;
        if !self.decoder.add_cross_attention {
            return Err(ModelError::Config(
                "decoder: add_cross_attention must be true for a BERT2BERT model".into(),
            ));
        }
        if self.encoder.hidden_size != self.decoder.hidden_size {
            // HF would add an enc_to_dec_proj layer; the original never has one.
            return Err(ModelError::Config(format!(
                "encoder hidden_size {} != decoder hidden_size {} is not supported",
                self.encoder.hidden_size, self.decoder.hidden_size
            )));
        }
        Ok(())
    }

    /// `config.json` text in the HF layout.
    pub fn to_json_string(&self) -> String {
        serde_json::to_string_pretty(self).expect("config serializes")
    }
}
