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
