//! Training data: datasets built from folders of MIDI files, and the samples drawn from them on
//! the fly (spec §7, §8.1, §9). No candle here: batches are flat `u32` arrays the trainer wraps.

pub mod dataset;
pub mod sample;

pub use dataset::{
    build, default_valid_count, load, load_manifest, save, split_order, BuildOptions, Dataset,
    DatasetError, DropKind, Dropped, FileEntry, LabeledPiece, Manifest, Progress, Report, Source,
    Split, Totals, SPLIT_SEED,
};
pub use sample::{
    classifier_batch, classifier_sample, epoch_batches, training_batch, training_sample, transpose,
    transpose_range, Batch, ClassifierBatch, ClassifierConfig, ClassifierSample, Sample,
    SampleConfig, SampleMeta,
};
