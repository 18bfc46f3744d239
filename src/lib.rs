//! ImprovNet for musicians' DAWs: piano improvisation by iterative corruption refinement.
//!
//! The pipeline, one module per concept (see `docs/design.md`):
//! `music` (MIDI <-> notes <-> T-segments) -> `tokens` (the exact ImprovNet vocabulary) ->
//! `corrupt` (the nine corruption functions) -> `model` (BERT2BERT in candle); `structure` (which
//! segments structure preservation keeps).

pub mod corpus;
pub mod corrupt;
pub mod eval;
mod fonts;
pub mod model;
pub mod music;
#[cfg(feature = "plugin")]
pub mod plugin;
pub mod refine;
pub mod render;
pub mod structure;
pub mod tokens;
pub mod train;
