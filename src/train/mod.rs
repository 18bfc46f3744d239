//! Training: datasets built from folders of MIDI files, the samples drawn from them on the fly
//! (spec §7, §8.1, §9), and the loops that train the seq2seq model and the genre classifier.
//!
//! - [`dataset`], [`sample`] — data (no candle; batches are flat `u32` arrays).
//! - [`loss`] — trimmed batches, HF's shifted decoder input, the masked cross-entropy.
//! - [`optim`] — AdamW with checkpointable moments; [`schedule`] — warmup + cosine.
//! - [`init`] — seeded HF-style initialisation and the run's seed streams.
//! - [`checkpoint`] — atomic checkpoint folders (HF model + optimizer + state).
//! - [`trainer`] — the seq2seq loop; [`classify`] — the genre classifier's loop.
//! - [`rules`] — "count the block" and "hear it again": baselines, and a teacher for the targets.
//! - [`export`] — §7 samples to a file, for a trainer outside this crate (PyTorch on a GPU).
//! - [`plot`] — the loss curve as PNG and SVG.

pub mod checkpoint;
pub mod classify;
pub mod dataset;
pub mod error;
pub mod export;
pub mod induction;
pub mod init;
pub mod loss;
pub mod optim;
pub mod plot;
pub mod rules;
pub mod sample;
pub mod schedule;
pub mod trainer;

pub use dataset::{
    build, default_valid_count, load, load_manifest, save, split_order, BuildOptions, Dataset,
    DatasetError, DropKind, Dropped, FileEntry, LabeledPiece, Manifest, Progress, Report, Source,
    Split, Totals, SPLIT_SEED,
};
pub use error::TrainError;
pub use sample::{
    classifier_batch, classifier_sample, epoch_batches, training_batch, training_sample, transpose,
    transpose_range, Batch, ClassifierBatch, ClassifierConfig, ClassifierSample, Sample,
    SampleConfig, SampleMeta,
};
pub use trainer::{EvalReport, Event, Finish, Metric, Stage, StepStats, TrainConfig, Trainer};
