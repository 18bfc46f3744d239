//! Errors of structure analysis. Every message names the file.

use std::path::PathBuf;

/// Why a structure analysis input could not be used.
#[derive(Debug, thiserror::Error)]
pub enum StructureError {
    /// The WAV file could not be opened or decoded (missing, not RIFF/WAVE, unsupported format).
    #[error("{}: cannot read WAV file: {source}", path.display())]
    Wav { path: PathBuf, source: hound::Error },
    /// The WAV file decoded but cannot be analysed.
    #[error("{}: unusable WAV file: {reason}", path.display())]
    BadWav { path: PathBuf, reason: String },
}
