//! The ImprovNet network in candle: a BERT2BERT `EncoderDecoderModel` (spec §5) and the genre
//! classifier (spec §9), with weight names identical to the Hugging Face checkpoints.
//!
//! The model knows token ids only; the vocabulary lives in `tokens`.
//!
//! - [`config`] — `Config` read from / written to HF `config.json`.
//! - [`autograd`] — differentiable LayerNorm and softmax kernels for training.
//! - [`bert`] — embeddings, encoder and decoder layers, LM head (full-sequence forward, candle ops).
//! - [`seq2seq`] — [`ImprovNetModel`]: load, save, forward.
//! - [`fast`] — the incremental decoder (KV cache, CPU kernels) used for generation.
//! - [`fast_enc`] — the encoder forward used for generation (gemm, fused kernels).
//! - [`bf16`] — bf16 matrix products (AVX-512 BF16) for the encoder.
//! - [`int8`] — 8-bit decoder weights and their products (AVX-512 or AVX2).
//! - [`kernels`] — gemm wrappers and vector exp / GELU / softmax / LayerNorm.
//! - [`generate`] — sampling (temperature, top-k, top-p), logits processors, the decode loop.
//! - [`classifier`] — `BertForSequenceClassification`.

pub mod autograd;
pub mod bert;
pub mod bf16;
pub mod classifier;
pub mod config;
pub mod fast;
pub mod fast_enc;
pub mod generate;
pub mod int8;
pub mod kernels;
pub mod seq2seq;
pub mod team;
pub mod weights;

pub use bert::Train;
pub use classifier::GenreClassifier;
pub use config::{BertConfig, Config};
pub use fast::MAX_LANES;
pub use generate::{
    ChordConstraint, CopyDraft, DecodeStats, Draft, ForbidTokens, GenerateOptions, LogitsProcessor,
    NoDraft, SamplingParams, Sequence,
};
pub use seq2seq::{ImprovNetModel, Precision, INT8_FROM_BYTES};

use std::path::PathBuf;

/// Padding id (also a stop token at inference, spec §5.3).
pub const PAD: u32 = 0;
/// `<T>`: the 5-second window marker.
pub const T_TOKEN: u32 = 2300;
/// `<S>`: BOS and decoder start.
pub const BOS: u32 = 2303;
/// `<E>`: end of sequence.
pub const EOS: u32 = 2304;
/// Model vocabulary size (2,305 tokens + pad).
pub const VOCAB: usize = 2306;

/// What a user needs to know about a model folder.
pub const EXPECTED_FORMAT: &str = "a Hugging Face save_pretrained folder with config.json and \
model.safetensors (f32, f16 or bf16); pytorch_model.bin is not supported: convert it with \
`python -c \"from transformers import EncoderDecoderModel as M; \
M.from_pretrained('DIR').save_pretrained('DIR', safe_serialization=True)\"` \
(BertForSequenceClassification instead of EncoderDecoderModel for the classifier)";

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("{path}: not found; expected {EXPECTED_FORMAT}")]
    MissingFile { path: PathBuf },
    /// The io error is in the message, not the source chain: `{:#}` would print it twice.
    #[error("{path}: {error}")]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{path}: invalid config.json: {message}")]
    Json { path: PathBuf, message: String },
    #[error("invalid model config: {0}")]
    Config(String),
    #[error("{path}: {message}")]
    Weights { path: PathBuf, message: String },
    #[error("input: {0}")]
    Input(String),
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

pub type Result<T> = std::result::Result<T, ModelError>;
