//! Errors of MIDI reading and writing. Every message names the file, so a batch over a folder
//! says which input is at fault.

use std::path::PathBuf;

/// Why a MIDI file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum MusicError {
    // The OS error is part of the message and not a `source`: error chains (`{:#}`) would
    // print it twice.
    #[error("{}: cannot read file: {io}", path.display())]
    Read { path: PathBuf, io: std::io::Error },
    #[error("{}: cannot write file: {io}", path.display())]
    Write { path: PathBuf, io: std::io::Error },
    /// Not a Standard MIDI File, or midly could not parse its header.
    #[error("{file}: not a readable MIDI file: {reason}")]
    NotMidi { file: String, reason: String },
    /// A chunk or event is cut short: the file was probably not fully copied or downloaded.
    #[error("{file}: truncated or corrupt MIDI file: {reason}")]
    Truncated { file: String, reason: String },
    #[error("{file}: invalid time division: {reason}")]
    BadTimeDivision { file: String, reason: String },
    #[error("{file}: the file contains no notes{}", unclosed_note(*unclosed))]
    NoNotes { file: String, unclosed: usize },
    /// Everything was on MIDI channel 10, which ImprovNet ignores (spec §2.1).
    #[error(
        "{file}: only drum notes (MIDI channel 10, {count} notes); there is no piano part to read"
    )]
    DrumsOnly { file: String, count: usize },
    /// Times so far out that windows would not fit the segment index (about 680 years).
    #[error("{file}: a note starts {ms} ms after the first note, too late to represent")]
    TooLong { file: String, ms: u64 },
}

fn unclosed_note(count: usize) -> String {
    match count {
        0 => String::new(),
        n => format!(" ({n} note-ons were never released or had zero length)"),
    }
}
