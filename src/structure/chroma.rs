//! Chroma features: 12 pitch-class energies per frame, from a piece's notes (piano roll) or from
//! audio samples (STFT).
//!
//! Frame convention, shared by both inputs so their boundaries are comparable: frame `i` covers
//! `[i / rate, (i + 1) / rate)` seconds of its input's timeline; a boundary between frames
//! `n - 1` and `n` is at `n / rate` seconds. For a [`Piece`] the timeline is the piece's own (0 =
//! the first note of the file it was read from); for audio it is the audio file's, which includes
//! any silence before the first note.

use std::f64::consts::PI;
use std::path::Path;
use std::sync::Arc;

use rustfft::num_complex::Complex;
use rustfft::{Fft, FftPlanner};

use super::error::StructureError;
use crate::music::{Piece, PlayedNote};

/// Lowest frequency mapped to a pitch class: A0, the piano's lowest key.
pub const MIN_FREQ_HZ: f64 = 27.5;
/// Highest frequency mapped to a pitch class (about C8, the piano's highest key).
pub const MAX_FREQ_HZ: f64 = 4200.0;
/// STFT window length in seconds: 4096 samples at 22,050 Hz. The FFT size is the next power of
/// two of this many samples at the file's own rate.
pub const STFT_WINDOW_S: f64 = 4096.0 / 22_050.0;
/// Log compression `log(1 + γ·|X|)` of the spectral magnitudes (|X| of a full-scale sine ≈ 0.5).
pub const LOG_GAMMA: f64 = 100.0;
/// A frame whose energy is below this (before normalisation) counts as silent: all zeros.
const SILENCE_EPS: f64 = 1e-9;

/// How chroma frames are computed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ChromaParams {
    /// Frames per second. 10 ≈ SSMNet's ~0.093 s step (spec §13.1).
    pub frame_rate_hz: f64,
    /// Piano roll only: weight each note by `velocity / 127` as well as by its duration.
    pub velocity_weighted: bool,
    /// Length of the centred moving average applied over time before normalisation, in seconds
    /// (0 = none). Smoothing makes frames of one chord's arpeggio look alike, much as SSMNet's
    /// 3.7 s patches do.
    pub smooth_s: f64,
}

impl Default for ChromaParams {
    fn default() -> Self {
        Self {
            frame_rate_hz: 10.0,
            velocity_weighted: true,
            smooth_s: 1.0,
        }
    }
}

/// Chroma frames: each either all zeros (silence) or of unit Euclidean norm.
#[derive(Clone, Debug, PartialEq)]
pub struct Chroma {
    pub frames: Vec<[f64; 12]>,
    pub frame_rate_hz: f64,
}

impl Chroma {
    /// Time in seconds of the boundary before frame `n` (`n == frames.len()`: the end).
    pub fn edge_time_s(&self, n: usize) -> f64 {
        n as f64 / self.frame_rate_hz
    }

    /// Number of frames.
    pub fn len(&self) -> usize {
        self.frames.len()
    }

    /// No frames at all.
    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }
}

/// Chroma of a piece on its own timeline (see [`chroma_from_notes`]).
pub fn chroma_from_piece(piece: &Piece, params: &ChromaParams) -> Chroma {
    chroma_from_notes(&piece.to_played(), params)
}

/// Piano-roll chroma: each note adds to its pitch class, in every frame it sounds in, the time it
/// sounds there (seconds, times `velocity / 127` if `velocity_weighted`). Then optional smoothing
/// and per-frame normalisation. The frames run from 0 to the end of the last note.
pub fn chroma_from_notes(notes: &[PlayedNote], params: &ChromaParams) -> Chroma {
    let rate = params.frame_rate_hz;
    let end_s = notes
        .iter()
        .map(|n| (n.start_ms + n.dur_ms) as f64 / 1000.0)
        .fold(0.0, f64::max);
    let n_frames = (end_s * rate).ceil() as usize;
    let mut frames = vec![[0.0; 12]; n_frames];
    for note in notes {
        let weight = if params.velocity_weighted {
            note.velocity as f64 / 127.0
        } else {
            1.0
        };
        let pc = (note.pitch % 12) as usize;
        let start = note.start_ms as f64 / 1000.0;
        let end = (note.start_ms + note.dur_ms) as f64 / 1000.0;
        let first = (start * rate).floor() as usize;
        let last = ((end * rate).ceil() as usize).min(n_frames);
        for (i, frame) in frames.iter_mut().enumerate().take(last).skip(first) {
            let lo = (i as f64 / rate).max(start);
            let hi = ((i + 1) as f64 / rate).min(end);
            if hi > lo {
                frame[pc] += weight * (hi - lo);
            }
        }
    }
    finish(frames, params)
}

/// Smooth over time, then normalise every frame.
fn finish(frames: Vec<[f64; 12]>, params: &ChromaParams) -> Chroma {
    let width = (params.smooth_s * params.frame_rate_hz).round() as usize;
    let mut frames = if width > 1 {
        smooth(&frames, width)
    } else {
        frames
    };
    for frame in &mut frames {
        normalise(frame);
    }
    Chroma {
        frames,
        frame_rate_hz: params.frame_rate_hz,
    }
}

/// Centred moving average over `width` frames (truncated at the ends), by running sums.
fn smooth(frames: &[[f64; 12]], width: usize) -> Vec<[f64; 12]> {
    let n = frames.len();
    let mut prefix = vec![[0.0; 12]; n + 1];
    for i in 0..n {
        for pc in 0..12 {
            prefix[i + 1][pc] = prefix[i][pc] + frames[i][pc];
        }
    }
    let before = (width - 1) / 2;
    let after = width - 1 - before;
    (0..n)
        .map(|i| {
            let lo = i.saturating_sub(before);
            let hi = (i + after + 1).min(n);
            let mut out = [0.0; 12];
            for pc in 0..12 {
                out[pc] = (prefix[hi][pc] - prefix[lo][pc]) / (hi - lo) as f64;
            }
            out
        })
        .collect()
}

/// Scale to unit Euclidean norm; a (near-)silent frame becomes all zeros.
fn normalise(frame: &mut [f64; 12]) {
    let norm = frame.iter().map(|x| x * x).sum::<f64>().sqrt();
    if norm > SILENCE_EPS {
        frame.iter_mut().for_each(|x| *x /= norm);
    } else {
        *frame = [0.0; 12];
    }
}

/// A WAV file as mono samples in [-1, 1].
#[derive(Clone, Debug, PartialEq)]
pub struct MonoAudio {
    pub samples: Vec<f32>,
    pub sample_rate_hz: u32,
}

/// Read a WAV file (8/16/24/32-bit integer or 32-bit float PCM) and mix its channels to mono.
pub fn read_wav_mono(path: &Path) -> Result<MonoAudio, StructureError> {
    let wav_err = |source| StructureError::Wav {
        path: path.to_path_buf(),
        source,
    };
    let mut reader = hound::WavReader::open(path).map_err(wav_err)?;
    let spec = reader.spec();
    if spec.channels == 0 || spec.sample_rate == 0 {
        return Err(StructureError::BadWav {
            path: path.to_path_buf(),
            reason: format!("{} channels at {} Hz", spec.channels, spec.sample_rate),
        });
    }
    let interleaved: Vec<f32> = match spec.sample_format {
        hound::SampleFormat::Float => reader
            .samples::<f32>()
            .collect::<Result<_, _>>()
            .map_err(wav_err)?,
        hound::SampleFormat::Int => {
            let scale = 1.0 / (1u64 << (spec.bits_per_sample.clamp(1, 32) - 1)) as f32;
            reader
                .samples::<i32>()
                .map(|s| s.map(|s| s as f32 * scale))
                .collect::<Result<_, _>>()
                .map_err(wav_err)?
        }
    };
    let channels = spec.channels as usize;
    let samples = interleaved
        .chunks(channels)
        .map(|c| c.iter().sum::<f32>() / channels as f32)
        .collect::<Vec<_>>();
    if samples.is_empty() {
        return Err(StructureError::BadWav {
            path: path.to_path_buf(),
            reason: "no samples".into(),
        });
    }
    Ok(MonoAudio {
        samples,
        sample_rate_hz: spec.sample_rate,
    })
}

/// STFT chroma of mono audio: frames of `sample_rate / frame_rate` samples; each frame's Hann
/// window (FFT size: the next power of two of [`STFT_WINDOW_S`] seconds) is centred on the frame's
/// middle, zero-padded at the ends. Bins from [`MIN_FREQ_HZ`] to [`MAX_FREQ_HZ`] go to the pitch
/// class of their nearest MIDI pitch, as `log(1 + γ·|X|)` with |X| scaled by the window's sum.
/// Then optional smoothing and per-frame normalisation (`velocity_weighted` does not apply).
pub fn chroma_from_samples(samples: &[f32], sample_rate_hz: u32, params: &ChromaParams) -> Chroma {
    let sr = sample_rate_hz as f64;
    let hop = sr / params.frame_rate_hz;
    let n_fft = ((STFT_WINDOW_S * sr).round() as usize)
        .max(16)
        .next_power_of_two();
    let n_frames = (samples.len() as f64 / hop).ceil() as usize;
    let window: Vec<f64> = (0..n_fft)
        .map(|i| 0.5 - 0.5 * (2.0 * PI * i as f64 / n_fft as f64).cos())
        .collect();
    let window_sum: f64 = window.iter().sum();
    // (bin, pitch class) of every bin in the piano's range.
    let bin_pc: Vec<(usize, usize)> = (0..=n_fft / 2)
        .filter_map(|k| {
            let f = k as f64 * sr / n_fft as f64;
            (MIN_FREQ_HZ..=MAX_FREQ_HZ).contains(&f).then(|| {
                let midi = (69.0 + 12.0 * (f / 440.0).log2()).round() as i64;
                (k, midi.rem_euclid(12) as usize)
            })
        })
        .collect();
    // Two real frames per complex FFT (frame i in the real part, i + 1 in the imaginary part),
    // in f32: the FFT dominates the cost, and this crate's code is unoptimised in dev builds.
    let fft: Arc<dyn Fft<f32>> = FftPlanner::new().plan_fft_forward(n_fft);
    let zero = Complex::new(0.0f32, 0.0);
    let mut buf = vec![zero; n_fft];
    let mut scratch = vec![zero; fft.get_inplace_scratch_len()];
    let mut frames = vec![[0.0; 12]; n_frames];
    for (pair, out) in frames.chunks_mut(2).enumerate() {
        buf.fill(zero);
        for (half, _) in out.iter().enumerate() {
            let i = 2 * pair + half;
            // Window start in samples, and the part of the window inside the signal.
            let first = ((i as f64 + 0.5) * hop).round() as i64 - (n_fft / 2) as i64;
            let lo = (-first).clamp(0, n_fft as i64) as usize;
            let hi = (samples.len() as i64 - first).clamp(lo as i64, n_fft as i64) as usize;
            if hi > lo {
                let start = (first + lo as i64) as usize;
                let src = &samples[start..start + (hi - lo)];
                for ((b, x), w) in buf[lo..hi].iter_mut().zip(src).zip(&window[lo..hi]) {
                    let v = (*x as f64 * w) as f32;
                    if half == 0 {
                        b.re = v;
                    } else {
                        b.im = v;
                    }
                }
            }
        }
        fft.process_with_scratch(&mut buf, &mut scratch);
        for &(k, pc) in &bin_pc {
            // Z = A + iB for real A, B: A[k] = (Z[k] + conj Z[-k]) / 2, B[k] = (Z[k] - conj Z[-k]) / 2i.
            let z = buf[k];
            let zc = buf[(n_fft - k) % n_fft].conj();
            let (a, b) = ((z + zc) * 0.5, (z - zc) * Complex::new(0.0, -0.5));
            for (frame, c) in out.iter_mut().zip([a, b]) {
                let mag = (c.re as f64).hypot(c.im as f64) / window_sum;
                frame[pc] += (LOG_GAMMA * mag).ln_1p();
            }
        }
    }
    finish(frames, params)
}

/// Chroma of a WAV file (see [`read_wav_mono`], [`chroma_from_samples`]).
pub fn chroma_from_wav(path: &Path, params: &ChromaParams) -> Result<Chroma, StructureError> {
    let audio = read_wav_mono(path)?;
    Ok(chroma_from_samples(
        &audio.samples,
        audio.sample_rate_hz,
        params,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn note(pitch: u8, start_ms: u64, dur_ms: u64) -> PlayedNote {
        PlayedNote {
            pitch,
            velocity: 100,
            start_ms,
            dur_ms,
        }
    }

    fn raw() -> ChromaParams {
        ChromaParams {
            smooth_s: 0.0,
            ..ChromaParams::default()
        }
    }

    #[test]
    fn single_note_lights_its_pitch_class_only_while_it_sounds() {
        // E4 from 0.25 s to 0.75 s: frames 2..=7 at 10 frames/s.
        let c = chroma_from_notes(&[note(64, 250, 500)], &raw());
        assert_eq!(c.len(), 8);
        for (i, f) in c.frames.iter().enumerate() {
            let expect = if i >= 2 { 1.0 } else { 0.0 };
            assert!((f[4] - expect).abs() < 1e-12, "frame {i}: {f:?}");
            assert_eq!(f.iter().filter(|x| **x != 0.0).count(), (i >= 2) as usize);
        }
    }

    #[test]
    fn partial_frames_and_velocity_weight_the_energy() {
        // C held over a whole frame, G over half of it with the same velocity: ratio 2:1.
        let c = chroma_from_notes(&[note(60, 0, 100), note(67, 50, 50)], &raw());
        let f = c.frames[0];
        assert!((f[0] / f[7] - 2.0).abs() < 1e-9);
        // Velocity weighting: a softer note counts less.
        let mut soft = note(67, 0, 100);
        soft.velocity = 50;
        let f = chroma_from_notes(&[note(60, 0, 100), soft], &raw()).frames[0];
        assert!((f[0] / f[7] - 100.0 / 50.0).abs() < 1e-9);
        let p = ChromaParams {
            velocity_weighted: false,
            ..raw()
        };
        let f = chroma_from_notes(&[note(60, 0, 100), soft], &p).frames[0];
        assert!((f[0] - f[7]).abs() < 1e-12);
    }

    #[test]
    fn smoothing_spreads_over_neighbouring_frames_and_keeps_unit_norm() {
        let p = ChromaParams {
            smooth_s: 0.3,
            ..raw()
        };
        let c = chroma_from_notes(
            &[note(60, 0, 100), note(62, 100, 100), note(64, 200, 100)],
            &p,
        );
        // Frame 1 averages frames 0..=2: equal C, D and E.
        let f = c.frames[1];
        assert!((f[0] - f[2]).abs() < 1e-12 && (f[2] - f[4]).abs() < 1e-12);
        for f in &c.frames {
            let norm: f64 = f.iter().map(|x| x * x).sum();
            assert!((norm - 1.0).abs() < 1e-9);
        }
    }

    #[test]
    fn sine_maps_to_its_pitch_class() {
        let sr = 8000;
        let samples: Vec<f32> = (0..sr)
            .map(|i| 0.5 * (2.0 * std::f32::consts::PI * 440.0 * i as f32 / sr as f32).sin())
            .collect();
        let c = chroma_from_samples(&samples, sr, &raw());
        assert_eq!(c.len(), 10);
        for f in &c.frames {
            let best = (0..12).max_by(|a, b| f[*a].total_cmp(&f[*b])).unwrap();
            assert_eq!(best, 9, "{f:?}");
        }
        // Silence gives zero frames.
        let c = chroma_from_samples(&[0.0; 4000], sr, &raw());
        assert!(c.frames.iter().all(|f| f.iter().all(|x| *x == 0.0)));
    }

    #[test]
    fn missing_wav_names_the_file() {
        let err = read_wav_mono(Path::new("/no/such/dir/take1.wav")).unwrap_err();
        assert!(err.to_string().contains("/no/such/dir/take1.wav"), "{err}");
    }
}
