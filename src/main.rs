//! `improvnet`: the command-line front door. Thin: parses arguments and calls the library.
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

mod cli;

/// ImprovNet: controllable piano improvisation by iterative corruption refinement.
#[derive(Parser)]
#[command(name = "improvnet", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Show a MIDI file as the model sees it: duration, notes, T-segments, tokens, tempo, warnings.
    Inspect {
        /// A piano MIDI file.
        file: PathBuf,
    },
    /// Write the piece's model tokens (per T-segment and flattened) as JSON.
    Tokenize {
        file: PathBuf,
        /// Output JSON file.
        #[arg(long)]
        out: PathBuf,
    },
    /// Corrupt one T-segment and write the piece as MIDI, to hear what a corruption does.
    Corrupt {
        file: PathBuf,
        /// Index of the (non-empty) T-segment to corrupt, from 0.
        #[arg(long)]
        segment: usize,
        /// One of the nine corruptions (e.g. skyline) or `random`.
        #[arg(long)]
        kind: String,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Reproduce the original's corruption bugs (training parity) instead of the fixed versions.
        #[arg(long)]
        faithful: bool,
        /// Output MIDI file.
        #[arg(long)]
        out: PathBuf,
    },
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Inspect { file } => cli::inspect(&file),
        Command::Tokenize { file, out } => cli::tokenize(&file, &out),
        Command::Corrupt { file, segment, kind, seed, faithful, out } => {
            cli::corrupt(&file, segment, &kind, seed, faithful, &out)
        }
    }
}

/// Write `bytes` to `path` atomically: a temp file in the same folder, then rename.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().context("output path has no file name")?;
    let tmp = dir.join(format!(".{}.tmp", name.to_string_lossy()));
    std::fs::write(&tmp, bytes).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot move {} to {}", tmp.display(), path.display()))
}
