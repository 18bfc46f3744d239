//! Helpers of the refinement tests: a tiny random model, short pieces, and comparisons.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use candle_core::Device;
use improvnet::model::{BertConfig, Config, ImprovNetModel};
use improvnet::music::{read_midi, Note, Piece, PlayedNote};

/// A fixture under `tests/data`.
pub fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

/// A one-layer d32 model with random weights: generates garbage, fast. What the tests check
/// is structure, not music.
pub fn tiny_config() -> Config {
    Config::from_parts(
        BertConfig::sized(32, 1, 2, 64, 2048),
        BertConfig::sized(32, 1, 2, 64, 512),
    )
}

pub fn tiny_model(seed: u64) -> ImprovNetModel {
    ImprovNetModel::random(&tiny_config(), seed, &Device::Cpu).unwrap()
}

/// Saves the tiny model to `dir` (for the CLI).
pub fn save_tiny_model(dir: &Path, seed: u64) {
    tiny_model(seed).save(dir).unwrap();
}

/// The first `segments` non-empty segments of the Chopin nocturne fixture (real playing).
pub fn nocturne(segments: usize) -> Piece {
    let perf = read_midi(&data("chopin_nocturne_op15_1.mid")).unwrap();
    let mut piece = Piece::from_played(&perf.notes);
    piece.segments.truncate(segments);
    piece
}

/// A monophonic melody: one note every 500 ms for `seconds`, a C major scale up and down.
pub fn melody(seconds: u64) -> Piece {
    let scale = [60u8, 62, 64, 65, 67, 69, 71, 72, 71, 69, 67, 65, 64, 62];
    let notes: Vec<PlayedNote> = (0..seconds * 2)
        .map(|i| PlayedNote {
            pitch: scale[i as usize % scale.len()],
            velocity: 80,
            start_ms: i * 500,
            dur_ms: 450,
        })
        .collect();
    Piece::from_played(&notes)
}

/// Notes per window.
pub fn by_window(piece: &Piece) -> BTreeMap<u32, Vec<Note>> {
    piece
        .segments
        .iter()
        .map(|s| (s.window, s.notes.clone()))
        .collect()
}

/// Renders a piece as quiet sine tones, 16-bit mono at 4 kHz (low, so the dev-profile FFT is
/// quick): a stand-in for a SoundFont rendering, for structure analysis from a WAV.
pub fn render_wav(piece: &Piece, path: &Path) {
    const SR: u64 = 4000;
    let notes = piece.to_played();
    let end_ms = notes
        .iter()
        .map(|n| n.start_ms + n.dur_ms)
        .max()
        .unwrap_or(0);
    let mut buf = vec![0f32; (end_ms * SR / 1000) as usize + 1];
    for n in &notes {
        let freq = 440.0 * 2f32.powf((n.pitch as f32 - 69.0) / 12.0);
        let first = (n.start_ms * SR / 1000) as usize;
        let len = (n.dur_ms * SR / 1000) as usize;
        let step = 2.0 * std::f32::consts::PI * freq / SR as f32;
        for i in 0..len {
            buf[first + i] += 0.1 * (step * i as f32).sin();
        }
    }
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: SR as u32,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    for s in buf {
        w.write_sample((s.clamp(-1.0, 1.0) * 32767.0) as i16)
            .unwrap();
    }
    w.finalize().unwrap();
}
