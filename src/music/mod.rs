//! Notes, T-segments and pieces, and their MIDI files. Pure: no model, no threads.
//!
//! A piece is read from MIDI into [`PlayedNote`]s (absolute milliseconds, pedal applied), then
//! cut into 5-second [`Segment`]s of quantized [`Note`]s: the representation the model reads and
//! writes. Empty windows are skipped but their positions kept, so written output keeps its timing.

mod error;
pub mod quantize;
mod read;
mod segment;
pub mod smf;
mod write;

pub use error::MusicError;
pub use read::{parse_midi, read_midi, Performance, TempoChange, TimeDivision, Warning};
pub use segment::{Note, Piece, PlayedNote, Segment};
pub use write::{piece_to_smf, write_atomic, write_midi};
