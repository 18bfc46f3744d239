//! Hearing and seeing a result: a SoundFont render to WAV ([`audio`]) and a piano-roll PNG of
//! original vs result with the changed T-segments marked ([`roll`]). I/O at the edge of the
//! pipeline: nothing here is needed to improvise, only to judge what came out.

pub mod audio;
pub mod roll;

pub use audio::{
    find_soundfont, render_midi_bytes, render_piece, write_wav, Audio, SOUNDFONT_PATHS,
};
pub use roll::{changed_windows, plot_piano_roll, RollOptions};

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("{path}: SoundFont not found")]
    MissingSoundFont { path: PathBuf },
    #[error(
        "no SoundFont given and none installed (looked for {tried}); pass --soundfont FILE.sf2 \
         or install one, e.g. `apt-get install timgm6mb-soundfont`"
    )]
    NoSoundFont { tried: String },
    #[error("{path}: not a usable SoundFont 2 file ({reason}); SF3 (compressed) is not supported")]
    BadSoundFont { path: PathBuf, reason: String },
    #[error("{path}: cannot render this MIDI data ({reason})")]
    BadMidi { path: PathBuf, reason: String },
    #[error("sample rate {0} Hz: the synthesizer supports 16000..=192000 Hz")]
    SampleRate(u32),
    #[error("{path}: {reason}")]
    Write { path: PathBuf, reason: String },
}
