//! The improvisation engine (spec §10–§12): iterative corruption refinement and its four tasks.
//!
//! - [`options`] — the pass schedule, sampling, context and preservation settings; the
//!   original's recipes as defaults.
//! - [`engine`] — one left-to-right pass: corrupt, re-sample, replace; progress callbacks.
//! - [`fit`] — best of N: the candidate whose pitch classes fit the music around it.
//! - [`template`] — strict fidelity: decode under what a corruption keeps, and the sanity rules.
//! - [`tasks`] — improvise, harmonize, continue, infill; structure preservation.
//! - [`config`] — YAML recipes with the original's keys.

pub mod config;
pub mod engine;
mod error;
pub mod fit;
pub mod options;
pub mod tasks;
pub mod template;

pub use engine::{no_progress, Engine, PassReport, Progress, RefineReport};
pub use error::RefineError;
pub use options::{Context, HarmonyOptions, PassSpec, RandomMode, RefineOptions, Settings};
pub use tasks::{
    check_monophonic, continue_piece, harmonize, improvise, infill, infill_windows,
    preserved_windows, segment_range_windows, sweep_windows, Refined, StructureSource,
};
pub use template::Fidelity;
