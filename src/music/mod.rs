//! Notes, T-segments and pieces, and their MIDI files. Pure: no model, no threads.
//!
//! A piece is read from MIDI into [`PlayedNote`]s (absolute milliseconds, pedal applied), then
//! cut into 5-second [`Segment`]s of quantized [`Note`]s: the representation the model reads and
//! writes. Empty windows are skipped but their positions kept, so written output keeps its timing.

pub mod quantize;
mod segment;

pub use segment::{Note, Piece, PlayedNote, Segment};
