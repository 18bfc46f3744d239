//! Errors of refinement. Messages name the input and say what to do instead, because a musician
//! reads them, not a developer.

use std::path::PathBuf;

use crate::model::ModelError;
use crate::structure::StructureError;

/// Why a refinement could not run.
#[derive(Debug, thiserror::Error)]
pub enum RefineError {
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error(transparent)]
    Structure(#[from] StructureError),
    /// Harmonization needs one note at a time: the melody is presented as a `skyline`.
    #[error(
        "{source_name}: not a monophonic melody: {count} notes start together at {at_s:.2} s \
         (pitches {pitches}); harmonize expects the melody alone, one note at a time \
         (use `improvise` to re-imagine a piece that already has chords)"
    )]
    NotMonophonic {
        source_name: String,
        count: usize,
        at_s: f64,
        pitches: String,
    },
    /// An infill range that covers no 5-second window of the piece.
    #[error(
        "{source_name}: the infill range {from_s:.1} s to {to_s:.1} s is empty: {reason} \
         (the piece spans 0 s to {end_s:.1} s in 5-second windows)"
    )]
    EmptyRange {
        source_name: String,
        from_s: f64,
        to_s: f64,
        end_s: f64,
        reason: &'static str,
    },
    /// A target genre whose token the model never saw in training.
    #[error(
        "the model was never trained on {genre}; it knows {known} (improvnet_genres in its \
         config.json): choose one of those"
    )]
    UnknownGenre { genre: String, known: String },
    /// A setting outside its meaning (a rate above 1, no passes, ...).
    #[error("invalid setting: {0}")]
    Options(String),
    /// A recipe file that cannot be used.
    #[error("{}: {message}", path.display())]
    Config { path: PathBuf, message: String },
}
