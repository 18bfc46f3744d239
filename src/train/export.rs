//! §7 training samples written to a file, for trainers outside this crate (PyTorch on a GPU).
//!
//! The samples are exactly the ones [`training_sample`] draws for the Rust trainer, so a model
//! trained elsewhere on them sees the same corruptions, contexts, transpositions and genre tokens.
//! Sample `i` is a pure function of `(seed, i)`: pieces are visited epoch by epoch in a shuffled
//! order (one sample per piece per epoch, as the original), and the sample's own draws come from
//! stream `(seed, i)`. Any number of threads writes the same bytes.
//!
//! # Format (little-endian)
//! A header: the magic `IMPVSMP1`, then `u32` sample count. Then per sample: `u16` encoder length,
//! `u16` label length, `u8` genre (index in [`Genre::ALL`]), `u8` corruption (index in
//! [`Corruption::ALL`]), then the encoder ids and the labels as `u16`, unpadded. The labels are
//! `<S> segment <E>`; the decoder input is the labels shifted right behind `<S>`
//! ([`super::loss::shift_right`]).

use std::io::Write;

use rayon::prelude::*;

use super::dataset::LabeledPiece;
use super::init::stream;
use super::sample::{epoch_batches, training_sample, SampleConfig};
use crate::model::PAD;
use crate::tokens::{Corruption, Genre};

/// The file's first eight bytes.
pub const MAGIC: &[u8; 8] = b"IMPVSMP1";

const SALT_EXPORT_ORDER: u64 = 21;
const SALT_EXPORT_SAMPLE: u64 = 22;

/// Samples produced per parallel chunk (bounds the memory held before writing).
const CHUNK: u64 = 4096;

/// One sample, unpadded, as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExportedSample {
    pub genre: Genre,
    pub corruption: Corruption,
    pub encoder_ids: Vec<u32>,
    pub labels: Vec<u32>,
}

/// Sample `index` of the stream seeded `seed` over `pieces`.
pub fn exported_sample(
    pieces: &[&LabeledPiece],
    config: &SampleConfig,
    seed: u64,
    index: u64,
) -> ExportedSample {
    let n = pieces.len() as u64;
    let epoch = index / n;
    let order = epoch_batches(pieces.len(), 1, &mut stream(seed, SALT_EXPORT_ORDER, epoch));
    let piece = pieces[order[(index % n) as usize][0]];
    let mut rng = stream(seed, SALT_EXPORT_SAMPLE, index);
    let s = training_sample(&piece.piece, piece.genre, config, &mut rng);
    let unpad = |ids: &[u32]| -> Vec<u32> {
        let len = ids.iter().rposition(|&t| t != PAD).map_or(0, |p| p + 1);
        ids[..len].to_vec()
    };
    ExportedSample {
        genre: s.meta.genre,
        corruption: s.meta.corruption,
        encoder_ids: unpad(&s.encoder_ids),
        labels: unpad(&s.labels),
    }
}

fn index<T: PartialEq>(all: &[T], x: T) -> u8 {
    all.iter().position(|y| *y == x).unwrap_or(0) as u8
}

fn encode(s: &ExportedSample, out: &mut Vec<u8>) {
    out.extend((s.encoder_ids.len() as u16).to_le_bytes());
    out.extend((s.labels.len() as u16).to_le_bytes());
    out.push(index(&Genre::ALL, s.genre));
    out.push(index(&Corruption::ALL, s.corruption));
    for &id in s.encoder_ids.iter().chain(&s.labels) {
        out.extend((id as u16).to_le_bytes());
    }
}

/// Writes samples `0..count` to `out` in the format above; `progress` gets the number written
/// after each chunk. Returns the bytes written.
pub fn export_samples(
    pieces: &[&LabeledPiece],
    config: &SampleConfig,
    seed: u64,
    count: u32,
    out: &mut impl Write,
    mut progress: impl FnMut(u64),
) -> std::io::Result<u64> {
    let mut written = 0u64;
    out.write_all(MAGIC)?;
    out.write_all(&count.to_le_bytes())?;
    written += 12;
    if pieces.is_empty() {
        return Ok(written);
    }
    let count = count as u64;
    let mut first = 0u64;
    while first < count {
        let last = (first + CHUNK).min(count);
        let chunks: Vec<Vec<u8>> = (first..last)
            .into_par_iter()
            .map(|i| {
                let mut bytes = Vec::with_capacity(2048);
                encode(&exported_sample(pieces, config, seed, i), &mut bytes);
                bytes
            })
            .collect();
        for bytes in chunks {
            out.write_all(&bytes)?;
            written += bytes.len() as u64;
        }
        first = last;
        progress(first);
    }
    Ok(written)
}

/// Reads a file written by [`export_samples`] (for tests and tools).
pub fn read_samples(bytes: &[u8]) -> Result<Vec<ExportedSample>, String> {
    let rest = bytes
        .strip_prefix(MAGIC.as_slice())
        .ok_or("not a sample file (no IMPVSMP1 magic)")?;
    let take = |rest: &mut &[u8], n: usize| -> Result<Vec<u8>, String> {
        if rest.len() < n {
            return Err("sample file truncated".into());
        }
        let (head, tail) = rest.split_at(n);
        *rest = tail;
        Ok(head.to_vec())
    };
    let mut rest = rest;
    let count = u32::from_le_bytes(take(&mut rest, 4)?.try_into().expect("4 bytes"));
    let mut samples = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let h = take(&mut rest, 6)?;
        let enc = u16::from_le_bytes([h[0], h[1]]) as usize;
        let lab = u16::from_le_bytes([h[2], h[3]]) as usize;
        let genre = *Genre::ALL.get(h[4] as usize).ok_or("bad genre index")?;
        let corruption = *Corruption::ALL
            .get(h[5] as usize)
            .ok_or("bad corruption index")?;
        let ids: Vec<u32> = take(&mut rest, 2 * (enc + lab))?
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]) as u32)
            .collect();
        samples.push(ExportedSample {
            genre,
            corruption,
            encoder_ids: ids[..enc].to_vec(),
            labels: ids[enc..].to_vec(),
        });
    }
    if !rest.is_empty() {
        return Err(format!("{} bytes after the last sample", rest.len()));
    }
    Ok(samples)
}
