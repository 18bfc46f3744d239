//! SoundFont rendering with rustysynth: the MIDI file we write is what gets played, so what a
//! musician hears is exactly what they would import into a DAW.

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustysynth::{MidiFile, MidiFileSequencer, SoundFont, Synthesizer, SynthesizerSettings};

use super::RenderError;
use crate::music::{piece_to_smf, write_atomic, Piece};

/// Where Debian's General MIDI SoundFonts land, most common first. `default-GM.sf2` is the
/// alternatives link every GM SoundFont package provides.
pub const SOUNDFONT_PATHS: &[&str] = &[
    "/usr/share/sounds/sf2/default-GM.sf2",
    "/usr/share/sounds/sf2/FluidR3_GM.sf2",
    "/usr/share/sounds/sf2/TimGM6mb.sf2",
    "/usr/share/sounds/sf2/MuseScore_General.sf2",
];

/// Release tail after the last event, so the final chord rings out instead of being cut.
const TAIL_S: f64 = 2.0;
/// Rendering block: rustysynth renders in 64-frame blocks; a few of them per call.
const BLOCK: usize = 4096;

/// Stereo audio, `f32` in -1..1.
#[derive(Clone, Debug, PartialEq)]
pub struct Audio {
    pub sample_rate_hz: u32,
    pub left: Vec<f32>,
    pub right: Vec<f32>,
}

impl Audio {
    pub fn duration_s(&self) -> f64 {
        self.left.len() as f64 / self.sample_rate_hz as f64
    }

    /// Scales the audio so its peak is `peak_dbfs` (silence stays silence). A SoundFont piano
    /// renders with peaks near −20 to −12 dBFS, too quiet to listen to beside other audio.
    pub fn normalize(&mut self, peak_dbfs: f32) {
        let peak = self.peak();
        if peak > 0.0 {
            let gain = 10f32.powf(peak_dbfs / 20.0) / peak;
            for x in self.left.iter_mut().chain(self.right.iter_mut()) {
                *x *= gain;
            }
        }
    }

    /// Largest absolute sample value over both channels.
    pub fn peak(&self) -> f32 {
        self.left
            .iter()
            .chain(&self.right)
            .fold(0.0f32, |m, &x| m.max(x.abs()))
    }
}

/// The SoundFont to use: `explicit` if given (it must exist), else the first installed one of
/// [`SOUNDFONT_PATHS`].
pub fn find_soundfont(explicit: Option<&Path>) -> Result<PathBuf, RenderError> {
    if let Some(p) = explicit {
        return if p.is_file() {
            Ok(p.to_path_buf())
        } else {
            Err(RenderError::MissingSoundFont {
                path: p.to_path_buf(),
            })
        };
    }
    SOUNDFONT_PATHS
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .ok_or_else(|| RenderError::NoSoundFont {
            tried: SOUNDFONT_PATHS.join(", "),
        })
}

fn load_soundfont(path: &Path) -> Result<Arc<SoundFont>, RenderError> {
    let bad = |reason: String| RenderError::BadSoundFont {
        path: path.to_path_buf(),
        reason,
    };
    let bytes = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
    let sf = SoundFont::new(&mut Cursor::new(bytes)).map_err(|e| bad(format!("{e:?}")))?;
    Ok(Arc::new(sf))
}

/// Renders standard MIDI file bytes (`name` is for error messages) through the SoundFont at
/// `soundfont`. Deterministic: the same bytes give the same samples.
pub fn render_midi_bytes(
    smf: &[u8],
    name: &Path,
    soundfont: &Path,
    sample_rate_hz: u32,
) -> Result<Audio, RenderError> {
    if !(16_000..=192_000).contains(&sample_rate_hz) {
        return Err(RenderError::SampleRate(sample_rate_hz));
    }
    let sf = load_soundfont(soundfont)?;
    let midi = MidiFile::new(&mut Cursor::new(smf)).map_err(|e| RenderError::BadMidi {
        path: name.to_path_buf(),
        reason: format!("{e:?}"),
    })?;
    let settings = SynthesizerSettings::new(sample_rate_hz as i32);
    let synth = Synthesizer::new(&sf, &settings).map_err(|e| RenderError::BadSoundFont {
        path: soundfont.to_path_buf(),
        reason: format!("{e:?}"),
    })?;
    let frames = ((midi.get_length() + TAIL_S) * sample_rate_hz as f64).ceil() as usize;
    let mut seq = MidiFileSequencer::new(synth);
    seq.play(&Arc::new(midi), false);
    let mut left = vec![0.0f32; frames];
    let mut right = vec![0.0f32; frames];
    for (l, r) in left.chunks_mut(BLOCK).zip(right.chunks_mut(BLOCK)) {
        seq.render(l, r);
    }
    Ok(Audio {
        sample_rate_hz,
        left,
        right,
    })
}

/// Renders a piece as the MIDI file [`crate::music::write_midi`] would write.
pub fn render_piece(
    piece: &Piece,
    soundfont: &Path,
    sample_rate_hz: u32,
) -> Result<Audio, RenderError> {
    render_midi_bytes(
        &piece_to_smf(piece),
        Path::new("<piece>"),
        soundfont,
        sample_rate_hz,
    )
}

/// Writes 16-bit stereo PCM, atomically. Samples are clipped to -1..1.
pub fn write_wav(audio: &Audio, path: &Path) -> Result<(), RenderError> {
    let err = |reason: String| RenderError::Write {
        path: path.to_path_buf(),
        reason,
    };
    let spec = hound::WavSpec {
        channels: 2,
        sample_rate: audio.sample_rate_hz,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut bytes = Cursor::new(Vec::with_capacity(audio.left.len() * 4 + 44));
    {
        let mut w = hound::WavWriter::new(&mut bytes, spec).map_err(|e| err(e.to_string()))?;
        for (&l, &r) in audio.left.iter().zip(&audio.right) {
            for x in [l, r] {
                let s = (x.clamp(-1.0, 1.0) * i16::MAX as f32).round() as i16;
                w.write_sample(s).map_err(|e| err(e.to_string()))?;
            }
        }
        w.finalize().map_err(|e| err(e.to_string()))?;
    }
    write_atomic(path, bytes.get_ref()).map_err(|e| err(e.to_string()))
}
