//! `improvnet corpus charts`: a jazz corpus from chord charts, for want of a jazz dataset.
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Subcommand;
use serde::Serialize;

use improvnet::corpus::{self, mma, Chart};
use improvnet::music::{write_atomic, write_midi, Piece};

#[derive(Subcommand)]
pub enum CorpusCommand {
    /// Write chord charts (blues, jazz blues, rhythm changes, ii–V–I cycles, AABA songs, modal
    /// vamps, jazz waltzes; all keys, 80–260 bpm) as MMA song files, each with an improvised
    /// right-hand line, and a manifest charts.json.
    ///
    /// Writes OUT/chart_00001.mma (render with `mma -f chart_00001.mid chart_00001.mma`),
    /// OUT/chart_00001.melody.mid (the right hand; time 0 is bar 1, beat 1) and OUT/charts.json.
    ///
    /// Example: improvnet corpus charts --out data/jazz-charts --count 84 --seed 1
    Charts {
        /// Output folder (created; files of the same names are replaced).
        #[arg(long)]
        out: PathBuf,
        /// Number of charts; 84 takes every form through all twelve keys.
        #[arg(long, default_value_t = 84)]
        count: usize,
        /// The same seed writes the same files.
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
}

/// One line of charts.json.
#[derive(Serialize)]
struct ManifestEntry {
    mma: String,
    melody: String,
    form: &'static str,
    key: String,
    tempo_bpm: u16,
    time_signature: String,
    groove: &'static str,
    swing_percent: u8,
    bars: usize,
    substitutions: Vec<&'static str>,
    melody_notes: usize,
    /// The changes, one string per bar ("Dm7 G7").
    chords: Vec<String>,
}

pub fn run(command: CorpusCommand) -> Result<()> {
    match command {
        CorpusCommand::Charts { out, count, seed } => write_charts(&out, count, seed),
    }
}

fn write_charts(out: &Path, count: usize, seed: u64) -> Result<()> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let mut manifest = Vec::with_capacity(count);
    for (i, chart) in corpus::charts(count, seed).iter().enumerate() {
        let stem = format!("chart_{:05}", i + 1);
        let mma_path = out.join(format!("{stem}.mma"));
        write_atomic(&mma_path, mma::to_mma(chart).as_bytes())
            .with_context(|| format!("writing {}", mma_path.display()))?;

        let line = corpus::right_hand(chart);
        let melody_path = out.join(format!("{stem}.melody.mid"));
        write_midi(&Piece::from_played(&line), &melody_path)?;

        manifest.push(entry(chart, &stem, line.len()));
    }
    let manifest_path = out.join("charts.json");
    let json = serde_json::to_vec_pretty(&manifest)?;
    write_atomic(&manifest_path, &json)
        .with_context(|| format!("writing {}", manifest_path.display()))?;
    println!(
        "wrote {count} charts (.mma + .melody.mid) and {} to {}",
        manifest_path.display(),
        out.display()
    );
    Ok(())
}

fn entry(chart: &Chart, stem: &str, melody_notes: usize) -> ManifestEntry {
    ManifestEntry {
        mma: format!("{stem}.mma"),
        melody: format!("{stem}.melody.mid"),
        form: chart.form.name(),
        key: chart.key_name(),
        tempo_bpm: chart.tempo_bpm,
        time_signature: format!("{}/4", chart.beats_per_bar),
        groove: chart.groove,
        swing_percent: chart.swing_percent,
        bars: chart.bars.len(),
        substitutions: chart.substitutions.clone(),
        melody_notes,
        chords: chart.bars.iter().map(|b| b.name()).collect(),
    }
}
