//! Datasets built from folders of MIDI files (issue "dataset builder", spec §2.1, §8.1).
//!
//! `build` walks the folders, reads every `.mid`/`.midi` file in parallel, keeps what the
//! original's data builder keeps and lists everything else with its reason (never silently),
//! splits each genre deterministically and returns the pieces; `save` writes them to a directory:
//!
//! - `pieces.bin`: every kept piece as its quantized T-segments, compact and versioned
//!   (see [`encode_pieces`]). Training transposes pitches and cuts windows on the fly (spec §7),
//!   so pieces are stored as notes, not token ids.
//! - `manifest.json`: per file its path, genre, split, minutes, notes and segments, in
//!   `pieces.bin` order; the dropped files; totals per genre and split.
//! - `report.txt` / `report.json`: the dropped files with their reasons, and the warnings of
//!   the kept ones.
//!
//! Every file is written atomically, the manifest last: a directory with a manifest is complete.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::music::{read_midi, write_atomic, MusicError, Note, Piece, Segment, Warning};
use crate::tokens::Genre;

/// Seed of the validation split (the original's `random.seed(42)`, spec §8.1).
pub const SPLIT_SEED: u64 = 42;
/// Validation files per genre for large sets, as in the original.
pub const DEFAULT_VALID_FILES: usize = 100;
/// Below this many files in a genre, the default validation set is 10% of it (at least 1).
pub const SMALL_GENRE_FILES: usize = 1000;

pub const PIECES_FILE: &str = "pieces.bin";
pub const MANIFEST_FILE: &str = "manifest.json";
pub const REPORT_TXT: &str = "report.txt";
pub const REPORT_JSON: &str = "report.json";

/// First bytes of `pieces.bin`.
pub const MAGIC: [u8; 8] = *b"IMPVNDS\0";
/// Version of `pieces.bin` and `manifest.json`; bumped on any layout change.
pub const FORMAT_VERSION: u32 = 1;

/// What went wrong with a dataset directory or its inputs. Messages name the file.
#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: not a folder", path.display())]
    NotADirectory { path: PathBuf },
    #[error("no .mid or .midi files found in {0}")]
    NoFiles(String),
    #[error("{}: invalid JSON: {source}", path.display())]
    Json {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("{}: {reason}", path.display())]
    Format { path: PathBuf, reason: String },
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> DatasetError + '_ {
    move |source| DatasetError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Training or validation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Split {
    Train,
    Valid,
}

impl Split {
    pub const ALL: [Split; 2] = [Split::Train, Split::Valid];

    pub const fn name(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Valid => "valid",
        }
    }
}

impl fmt::Display for Split {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Split {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "train" => Ok(Split::Train),
            "valid" | "validation" => Ok(Split::Valid),
            _ => Err(format!("unknown split {s:?}; valid: train, valid")),
        }
    }
}

/// `Genre` in JSON, by its name ("classical", "pop", "jazz").
mod genre_name {
    use super::Genre;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(g: &Genre, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(g.name())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Genre, D::Error> {
        let name = String::deserialize(d)?;
        name.parse().map_err(serde::de::Error::custom)
    }
}

/// Folders whose MIDI files all carry one genre label.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Source {
    pub genre: Genre,
    pub dirs: Vec<PathBuf>,
}

/// How to build a dataset.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BuildOptions {
    /// Validation files per genre; `None` = [`default_valid_count`].
    pub valid: Option<usize>,
    /// Seed of the split shuffle.
    pub seed: u64,
}

impl Default for BuildOptions {
    fn default() -> Self {
        Self {
            valid: None,
            seed: SPLIT_SEED,
        }
    }
}

/// Progress of a build, for a progress bar.
#[derive(Clone, Copy, Debug)]
pub enum Progress<'a> {
    /// The folders were walked: this many files will be read.
    Found { files: usize },
    /// One file was read (kept or dropped). Called from worker threads.
    Read { path: &'a Path },
}

/// Why a file is not in the dataset.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DropKind {
    /// Not a MIDI file, truncated, or unreadable from disk.
    Unreadable,
    /// A MIDI file without any (closed) note.
    NoNotes,
    /// Only drum-channel notes.
    DrumsOnly,
    /// A program outside the piano family (0–7) on a non-drum channel.
    NonPiano,
    /// The same file (after resolving links) was already listed, under this or another genre.
    Duplicate,
}

impl DropKind {
    pub const fn name(self) -> &'static str {
        match self {
            DropKind::Unreadable => "unreadable",
            DropKind::NoNotes => "no notes",
            DropKind::DrumsOnly => "drums only",
            DropKind::NonPiano => "non-piano",
            DropKind::Duplicate => "duplicate",
        }
    }
}

impl fmt::Display for DropKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A file left out, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dropped {
    pub path: String,
    #[serde(with = "genre_name")]
    pub genre: Genre,
    pub kind: DropKind,
    /// The reader's message (names the file) or the rule that dropped it.
    pub reason: String,
}

/// A kept file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FileEntry {
    pub path: String,
    #[serde(with = "genre_name")]
    pub genre: Genre,
    pub split: Split,
    /// From the first note's onset to the end of the last note (pedal included), unquantized.
    pub minutes: f64,
    pub notes: usize,
    pub segments: usize,
    /// What the reader noticed but did not drop the file for.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// Sums over the files of one genre and split.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Totals {
    #[serde(with = "genre_name")]
    pub genre: Genre,
    pub split: Split,
    pub files: usize,
    pub minutes: f64,
    pub notes: usize,
    pub segments: usize,
}

/// `manifest.json`: everything about a dataset except the notes themselves.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub format_version: u32,
    /// Seed of the split shuffle.
    pub seed: u64,
    /// The `--valid` given, or `None` for the default rule.
    pub valid: Option<usize>,
    /// Kept files in `pieces.bin` order: per genre (classical, pop, jazz), validation first,
    /// each split in shuffled order.
    pub files: Vec<FileEntry>,
    pub dropped: Vec<Dropped>,
    /// Per genre and split present, in genre then split order.
    pub totals: Vec<Totals>,
}

impl Manifest {
    /// Sums per genre and split over `files` (what `totals` stores).
    pub fn compute_totals(files: &[FileEntry]) -> Vec<Totals> {
        let mut map: BTreeMap<(Genre, Split), Totals> = BTreeMap::new();
        for f in files {
            let t = map.entry((f.genre, f.split)).or_insert_with(|| Totals {
                genre: f.genre,
                split: f.split,
                files: 0,
                minutes: 0.0,
                notes: 0,
                segments: 0,
            });
            t.files += 1;
            t.minutes += f.minutes;
            t.notes += f.notes;
            t.segments += f.segments;
        }
        map.into_values().collect()
    }

    /// Dropped files per reason.
    pub fn dropped_by_kind(&self) -> BTreeMap<DropKind, usize> {
        let mut map = BTreeMap::new();
        for d in &self.dropped {
            *map.entry(d.kind).or_insert(0) += 1;
        }
        map
    }
}

/// A piece with its genre label: one training item.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LabeledPiece {
    pub genre: Genre,
    pub piece: Piece,
}

/// A dataset in memory: the manifest and, in the same order, its pieces.
#[derive(Clone, Debug, PartialEq)]
pub struct Dataset {
    pub manifest: Manifest,
    pub pieces: Vec<LabeledPiece>,
}

impl Dataset {
    /// The pieces of one split, in stored order.
    pub fn pieces(&self, split: Split) -> Vec<&LabeledPiece> {
        self.manifest
            .files
            .iter()
            .zip(&self.pieces)
            .filter(|(f, _)| f.split == split)
            .map(|(_, p)| p)
            .collect()
    }

    /// The manifest entries of one split, in the same order as [`Dataset::pieces`].
    pub fn files(&self, split: Split) -> Vec<&FileEntry> {
        self.manifest
            .files
            .iter()
            .filter(|f| f.split == split)
            .collect()
    }

    pub fn len(&self) -> usize {
        self.pieces.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pieces.is_empty()
    }
}

/// The default validation count for a genre of `files` files: 100, or 10% (rounded, at least 1)
/// when the genre has fewer than 1000 files. A lone file stays in training.
pub fn default_valid_count(files: usize) -> usize {
    if files >= SMALL_GENRE_FILES {
        DEFAULT_VALID_FILES
    } else if files <= 1 {
        0
    } else {
        ((files + 5) / 10).max(1)
    }
}

/// The split of spec §8.1: sort, shuffle with `seed`, the first `valid` (clamped to the count)
/// are validation. Returns the paths in shuffled order and the validation count.
pub fn split_order(paths: &[String], valid: Option<usize>, seed: u64) -> (Vec<String>, usize) {
    let mut order = paths.to_vec();
    order.sort();
    order.dedup();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    order.shuffle(&mut rng);
    let n_valid = valid
        .unwrap_or_else(|| default_valid_count(order.len()))
        .min(order.len());
    (order, n_valid)
}

/// Every `.mid`/`.midi` file under `dir` (recursively, case-insensitive extension), sorted.
/// Linked folders are not followed (no cycles); linked files are.
pub fn find_midi_files(dir: &Path) -> Result<Vec<PathBuf>, DatasetError> {
    let meta = std::fs::metadata(dir).map_err(io_err(dir))?;
    if !meta.is_dir() {
        return Err(DatasetError::NotADirectory {
            path: dir.to_path_buf(),
        });
    }
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).map_err(io_err(&d))? {
            let entry = entry.map_err(io_err(&d))?;
            let path = entry.path();
            let ty = entry.file_type().map_err(io_err(&path))?;
            if ty.is_dir() {
                stack.push(path);
            } else if is_midi_name(&path)
                && (ty.is_file() || std::fs::metadata(&path).is_ok_and(|m| m.is_file()))
            {
                out.push(path);
            }
        }
    }
    out.sort();
    Ok(out)
}

fn is_midi_name(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("mid") || e.eq_ignore_ascii_case("midi"))
}

/// A file that passed the keep rule.
struct KeptFile {
    piece: Piece,
    minutes: f64,
    notes: usize,
    warnings: Vec<String>,
}

/// What reading one file gave.
enum Outcome {
    Kept(KeptFile),
    Dropped { kind: DropKind, reason: String },
}

/// The keep rule for one file: readable, with notes, and piano only (spec §2.1).
///
/// Stricter than the original in one respect: the original keeps a file if *any* program is
/// piano (0–7) and rewrites the others to piano; we drop a file as soon as a non-drum channel
/// uses a non-piano program, so no ensemble arrangement is read as piano. Drum notes (channel 10)
/// are dropped by the reader, as in the original.
fn read_one(path: &Path) -> Outcome {
    let perf = match read_midi(path) {
        Ok(p) => p,
        Err(e) => {
            let kind = match &e {
                MusicError::NoNotes { .. } => DropKind::NoNotes,
                MusicError::DrumsOnly { .. } => DropKind::DrumsOnly,
                _ => DropKind::Unreadable,
            };
            return Outcome::Dropped {
                kind,
                reason: e.to_string(),
            };
        }
    };
    let non_piano: Vec<String> = perf
        .warnings
        .iter()
        .filter(|w| matches!(w, Warning::NonPianoProgram { .. }))
        .map(|w| match w {
            Warning::NonPianoProgram { program, channel } => {
                format!("program {program} on channel {}", channel + 1)
            }
            _ => unreachable!(),
        })
        .collect();
    if !non_piano.is_empty() {
        return Outcome::Dropped {
            kind: DropKind::NonPiano,
            reason: format!(
                "{}: not piano only ({}); the model knows piano (programs 0-7) only",
                path.display(),
                non_piano.join(", ")
            ),
        };
    }
    let end_ms = perf
        .notes
        .iter()
        .map(|n| n.start_ms + n.dur_ms)
        .max()
        .unwrap_or(0);
    let piece = perf.to_piece();
    if piece.segments.is_empty() {
        return Outcome::Dropped {
            kind: DropKind::NoNotes,
            reason: format!("{}: the file contains no notes", path.display()),
        };
    }
    Outcome::Kept(KeptFile {
        notes: piece.note_count(),
        minutes: end_ms as f64 / 60_000.0,
        warnings: perf.warnings.iter().map(|w| w.to_string()).collect(),
        piece,
    })
}

/// Reads every MIDI file under the sources' folders, in parallel, and splits each genre.
///
/// Missing folders are errors; a bad file is not: it is dropped and listed with its reason.
/// Paths are recorded as found (the folder as given, joined with the file's relative path).
pub fn build(
    sources: &[Source],
    options: &BuildOptions,
    progress: &(dyn Fn(Progress<'_>) + Sync),
) -> Result<Dataset, DatasetError> {
    // Walk: (genre, path), in source order.
    let mut jobs: Vec<(Genre, PathBuf)> = Vec::new();
    for source in sources {
        for dir in &source.dirs {
            jobs.extend(find_midi_files(dir)?.into_iter().map(|p| (source.genre, p)));
        }
    }
    if jobs.is_empty() {
        let dirs: Vec<String> = sources
            .iter()
            .flat_map(|s| s.dirs.iter().map(|d| d.display().to_string()))
            .collect();
        return Err(DatasetError::NoFiles(dirs.join(", ")));
    }

    // The same file twice (two folders, or a link) is read once, under its first genre.
    let mut dropped: Vec<Dropped> = Vec::new();
    let mut seen: HashMap<PathBuf, (Genre, String)> = HashMap::new();
    let mut unique: Vec<(Genre, PathBuf)> = Vec::new();
    for (genre, path) in jobs {
        let key = std::fs::canonicalize(&path).unwrap_or_else(|_| path.clone());
        if let Some((g, first)) = seen.get(&key) {
            dropped.push(Dropped {
                path: path.display().to_string(),
                genre,
                kind: DropKind::Duplicate,
                reason: format!("{}: same file as {first} (kept as {g})", path.display()),
            });
            continue;
        }
        seen.insert(key, (genre, path.display().to_string()));
        unique.push((genre, path));
    }

    progress(Progress::Found {
        files: unique.len(),
    });
    let outcomes: Vec<Outcome> = unique
        .par_iter()
        .map(|(_, path)| {
            let outcome = read_one(path);
            progress(Progress::Read { path });
            outcome
        })
        .collect();

    // Kept files per genre, keyed by path string.
    let mut kept: BTreeMap<Genre, BTreeMap<String, KeptFile>> = BTreeMap::new();
    for ((genre, path), outcome) in unique.into_iter().zip(outcomes) {
        let name = path.display().to_string();
        match outcome {
            Outcome::Kept(file) => {
                kept.entry(genre).or_default().insert(name, file);
            }
            Outcome::Dropped { kind, reason } => dropped.push(Dropped {
                path: name,
                genre,
                kind,
                reason,
            }),
        }
    }
    dropped.sort_by(|a, b| (a.genre, &a.path).cmp(&(b.genre, &b.path)));

    let mut files = Vec::new();
    let mut pieces = Vec::new();
    for (genre, mut by_path) in kept {
        let names: Vec<String> = by_path.keys().cloned().collect();
        let (order, n_valid) = split_order(&names, options.valid, options.seed);
        for (i, name) in order.into_iter().enumerate() {
            let file = by_path
                .remove(&name)
                .expect("split_order returns the names it was given");
            files.push(FileEntry {
                path: name,
                genre,
                split: if i < n_valid {
                    Split::Valid
                } else {
                    Split::Train
                },
                minutes: file.minutes,
                notes: file.notes,
                segments: file.piece.segments.len(),
                warnings: file.warnings,
            });
            pieces.push(LabeledPiece {
                genre,
                piece: file.piece,
            });
        }
    }
    // Validation first within a genre: a stable sort keeps the shuffled order inside each split.
    let mut idx: Vec<usize> = (0..files.len()).collect();
    idx.sort_by_key(|&i| (files[i].genre, files[i].split != Split::Valid));
    let files: Vec<FileEntry> = idx.iter().map(|&i| files[i].clone()).collect();
    let pieces: Vec<LabeledPiece> = idx.iter().map(|&i| pieces[i].clone()).collect();

    Ok(Dataset {
        manifest: Manifest {
            format_version: FORMAT_VERSION,
            seed: options.seed,
            valid: options.valid,
            totals: Manifest::compute_totals(&files),
            files,
            dropped,
        },
        pieces,
    })
}

/// FNV-1a, 64 bit: a cheap checksum against truncated or damaged files.
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

fn genre_byte(g: Genre) -> u8 {
    g.index() as u8
}

/// `pieces.bin`, little-endian:
///
/// ```text
/// magic "IMPVNDS\0" | version u32 | piece count u32
/// per piece:   genre u8 (0 classical, 1 pop, 2 jazz) | segment count u32
/// per segment: window u32 | note count u32 | notes, 6 bytes each:
///              pitch u8, velocity u8, onset_ms u16, dur_ms u16
/// trailer:     FNV-1a 64 of everything before it
/// ```
pub fn encode_pieces(pieces: &[LabeledPiece]) -> Vec<u8> {
    let notes: usize = pieces.iter().map(|p| p.piece.note_count()).sum();
    let mut out = Vec::with_capacity(24 + 6 * notes);
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&(pieces.len() as u32).to_le_bytes());
    for p in pieces {
        out.push(genre_byte(p.genre));
        out.extend_from_slice(&(p.piece.segments.len() as u32).to_le_bytes());
        for seg in &p.piece.segments {
            out.extend_from_slice(&seg.window.to_le_bytes());
            out.extend_from_slice(&(seg.notes.len() as u32).to_le_bytes());
            for n in &seg.notes {
                out.push(n.pitch);
                out.push(n.velocity);
                out.extend_from_slice(&n.onset_ms.to_le_bytes());
                out.extend_from_slice(&n.dur_ms.to_le_bytes());
            }
        }
    }
    let sum = fnv1a(&out);
    out.extend_from_slice(&sum.to_le_bytes());
    out
}

/// Reads `pieces.bin` bytes; `name` is used in messages.
pub fn decode_pieces(bytes: &[u8], name: &Path) -> Result<Vec<LabeledPiece>, DatasetError> {
    let bad = |reason: String| DatasetError::Format {
        path: name.to_path_buf(),
        reason,
    };
    if bytes.len() < MAGIC.len() + 16 || bytes[..MAGIC.len()] != MAGIC {
        return Err(bad("not an ImprovNet pieces file (bad magic)".into()));
    }
    let (body, trailer) = bytes.split_at(bytes.len() - 8);
    let version = u32::from_le_bytes(body[8..12].try_into().expect("4 bytes"));
    if version != FORMAT_VERSION {
        return Err(bad(format!(
            "format version {version}, this build reads version {FORMAT_VERSION}; rebuild the dataset"
        )));
    }
    if fnv1a(body) != u64::from_le_bytes(trailer.try_into().expect("8 bytes")) {
        return Err(bad(
            "checksum mismatch: the file is damaged or truncated".into()
        ));
    }
    let mut r = Reader {
        bytes: body,
        pos: 12,
    };
    let truncated = |what: &str| bad(format!("truncated while reading {what}"));
    let count = r.u32().ok_or_else(|| truncated("the piece count"))? as usize;
    let mut pieces = Vec::with_capacity(count.min(1 << 20));
    for i in 0..count {
        let g = r.u8().ok_or_else(|| truncated("a genre"))?;
        let genre = *Genre::ALL
            .get(g as usize)
            .ok_or_else(|| bad(format!("piece {i}: unknown genre byte {g}")))?;
        let n_segs = r.u32().ok_or_else(|| truncated("a segment count"))? as usize;
        let mut segments = Vec::with_capacity(n_segs.min(1 << 16));
        for _ in 0..n_segs {
            let window = r.u32().ok_or_else(|| truncated("a window"))?;
            let n_notes = r.u32().ok_or_else(|| truncated("a note count"))? as usize;
            let raw = r
                .take(n_notes.checked_mul(6).ok_or_else(|| truncated("notes"))?)
                .ok_or_else(|| truncated("notes"))?;
            let notes = raw
                .chunks_exact(6)
                .map(|c| {
                    Note::new(
                        c[0],
                        c[1],
                        u16::from_le_bytes([c[2], c[3]]),
                        u16::from_le_bytes([c[4], c[5]]),
                    )
                })
                .collect();
            segments.push(Segment { window, notes });
        }
        pieces.push(LabeledPiece {
            genre,
            piece: Piece { segments },
        });
    }
    if r.pos != body.len() {
        return Err(bad(format!(
            "{} unexpected bytes after the last piece",
            body.len() - r.pos
        )));
    }
    Ok(pieces)
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let s = self.bytes.get(self.pos..end)?;
        self.pos = end;
        Some(s)
    }

    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }

    fn u32(&mut self) -> Option<u32> {
        self.take(4)
            .map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")))
    }
}

/// `report.json`: what was left out and what was noticed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub kept: usize,
    pub dropped: Vec<Dropped>,
    /// Kept files with warnings: path and messages.
    pub warnings: Vec<(String, Vec<String>)>,
}

impl Report {
    pub fn of(manifest: &Manifest) -> Self {
        Self {
            kept: manifest.files.len(),
            dropped: manifest.dropped.clone(),
            warnings: manifest
                .files
                .iter()
                .filter(|f| !f.warnings.is_empty())
                .map(|f| (f.path.clone(), f.warnings.clone()))
                .collect(),
        }
    }

    /// The human-readable `report.txt`.
    pub fn text(&self) -> String {
        let mut s = format!("kept {} files, dropped {}\n", self.kept, self.dropped.len());
        if !self.dropped.is_empty() {
            s.push_str("\ndropped:\n");
            for d in &self.dropped {
                s.push_str(&format!(
                    "  [{}] {} ({}): {}\n",
                    d.kind, d.path, d.genre, d.reason
                ));
            }
        }
        if !self.warnings.is_empty() {
            s.push_str("\nkept with warnings:\n");
            for (path, ws) in &self.warnings {
                for w in ws {
                    s.push_str(&format!("  {path}: {w}\n"));
                }
            }
        }
        s
    }
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<(), DatasetError> {
    write_atomic(path, bytes).map_err(io_err(path))
}

fn to_json<T: Serialize>(value: &T, path: &Path) -> Result<Vec<u8>, DatasetError> {
    let mut bytes = serde_json::to_vec_pretty(value).map_err(|source| DatasetError::Json {
        path: path.to_path_buf(),
        source,
    })?;
    bytes.push(b'\n');
    Ok(bytes)
}

/// Writes a dataset to `dir` (created if needed): pieces, reports, then the manifest, each
/// atomically. An existing dataset there is replaced.
pub fn save(dataset: &Dataset, dir: &Path) -> Result<(), DatasetError> {
    std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    write_file(&dir.join(PIECES_FILE), &encode_pieces(&dataset.pieces))?;
    let report = Report::of(&dataset.manifest);
    write_file(&dir.join(REPORT_TXT), report.text().as_bytes())?;
    let path = dir.join(REPORT_JSON);
    write_file(&path, &to_json(&report, &path)?)?;
    let path = dir.join(MANIFEST_FILE);
    write_file(&path, &to_json(&dataset.manifest, &path)?)
}

/// Reads only `manifest.json` (enough for statistics).
pub fn load_manifest(dir: &Path) -> Result<Manifest, DatasetError> {
    let path = dir.join(MANIFEST_FILE);
    let bytes = std::fs::read(&path).map_err(io_err(&path))?;
    let manifest: Manifest =
        serde_json::from_slice(&bytes).map_err(|source| DatasetError::Json {
            path: path.clone(),
            source,
        })?;
    if manifest.format_version != FORMAT_VERSION {
        return Err(DatasetError::Format {
            path,
            reason: format!(
                "format version {}, this build reads version {FORMAT_VERSION}; rebuild the dataset",
                manifest.format_version
            ),
        });
    }
    Ok(manifest)
}

/// Reads a dataset written by [`save`], checking that pieces and manifest agree.
pub fn load(dir: &Path) -> Result<Dataset, DatasetError> {
    let manifest = load_manifest(dir)?;
    let path = dir.join(PIECES_FILE);
    let bytes = std::fs::read(&path).map_err(io_err(&path))?;
    let pieces = decode_pieces(&bytes, &path)?;
    let mismatch = |reason: String| DatasetError::Format {
        path: path.clone(),
        reason,
    };
    if pieces.len() != manifest.files.len() {
        return Err(mismatch(format!(
            "{} pieces but {MANIFEST_FILE} lists {} files",
            pieces.len(),
            manifest.files.len()
        )));
    }
    for (i, (p, f)) in pieces.iter().zip(&manifest.files).enumerate() {
        if p.genre != f.genre || p.piece.note_count() != f.notes {
            return Err(mismatch(format!(
                "piece {i} does not match {MANIFEST_FILE} entry {} ({} {} notes, stored {} {} notes)",
                f.path,
                f.genre,
                f.notes,
                p.genre,
                p.piece.note_count()
            )));
        }
    }
    Ok(Dataset { manifest, pieces })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_valid_counts() {
        assert_eq!(default_valid_count(0), 0);
        assert_eq!(default_valid_count(1), 0);
        assert_eq!(default_valid_count(2), 1);
        assert_eq!(default_valid_count(14), 1);
        assert_eq!(default_valid_count(15), 2);
        assert_eq!(default_valid_count(119), 12);
        assert_eq!(default_valid_count(999), 100);
        assert_eq!(default_valid_count(5000), 100);
    }

    #[test]
    fn pieces_bin_rejects_damage() {
        let pieces = vec![LabeledPiece {
            genre: Genre::Jazz,
            piece: Piece {
                segments: vec![Segment {
                    window: 3,
                    notes: vec![Note::new(60, 90, 120, 500)],
                }],
            },
        }];
        let bytes = encode_pieces(&pieces);
        let name = Path::new("x/pieces.bin");
        assert_eq!(decode_pieces(&bytes, name).unwrap(), pieces);
        let err = decode_pieces(&bytes[..bytes.len() - 3], name).unwrap_err();
        assert!(err.to_string().contains("x/pieces.bin"), "{err}");
        let mut flipped = bytes.clone();
        flipped[20] ^= 1;
        assert!(decode_pieces(&flipped, name)
            .unwrap_err()
            .to_string()
            .contains("checksum"));
        let mut old = bytes;
        old[8] = 9;
        assert!(decode_pieces(&old, name)
            .unwrap_err()
            .to_string()
            .contains("version 9"));
    }
}
