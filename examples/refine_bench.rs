//! Refinement benchmark: the default 10-pass style transfer (`configs/style_transfer.yaml`) on
//! the first ~3 minutes of the Chopin nocturne fixture, with the wall time of the whole run and
//! the latency of each rewritten segment (median, p95).
//!
//!     cargo run --release --example refine_bench -- [small | base | MODEL_DIR] [--seconds 180]
//!         [--max-tokens N] [--passes N] [--seed S] [--out FILE.mid] [--save-model DIR]
//!
//! Measured 2026-11-26 on the 2-core dev machine while another engineer's training run and
//! builds kept the load average at 6–8 (so these are upper bounds, and varied run to run),
//! random `small` weights, seed 0, 36 segments (181 s), 2 kept by structure:
//! - cap 86 tokens (the piece's median): 206 segments rewritten in 21–41 s (three runs);
//!   per segment median 68–174 ms, p95 273–431 ms;
//! - cap 300 tokens: 188 segments in 129–177 s (two runs); median 678–922 ms, p95 1016–1430 ms.
//!
//! `--save-model DIR` writes the random `small` (or `base`) model in the HF layout, so the CLI
//! commands can be tried (`--model DIR`) before a trained model ships, and the plugin's paced
//! benchmark has a worker that is busy all the time (`base`).
//!
//! With no trained model, `small` uses `Config::small()` with random weights. An untrained
//! decoder does not stop where a trained one would, so each segment's decoding is capped at
//! `--max-tokens` (default: the piece's median segment length with `<S>` and `<E>`, i.e. what a
//! model that keeps the density of the original writes); the report gives the tokens actually
//! decoded.

use std::path::PathBuf;
use std::time::Instant;

use candle_core::Device;
use improvnet::model::{Config, ImprovNetModel};
use improvnet::music::{read_midi, Piece};
use improvnet::refine::{improvise, preserved_windows, Progress, Settings, StructureSource};
use improvnet::tokens::decoder_target;

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut which = "small".to_string();
    let mut seconds = 180u32;
    let mut max_tokens: Option<usize> = None;
    let mut passes: Option<usize> = None;
    let mut seed = 0u64;
    let mut out_file: Option<PathBuf> = None;
    let mut save_model: Option<PathBuf> = None;
    let mut i = 0;
    while i < args.len() {
        let next = || args.get(i + 1).cloned().unwrap_or_default();
        match args[i].as_str() {
            "--seconds" => seconds = next().parse()?,
            "--max-tokens" => max_tokens = Some(next().parse()?),
            "--passes" => passes = Some(next().parse()?),
            "--seed" => seed = next().parse()?,
            "--out" => out_file = Some(next().into()),
            "--save-model" => save_model = Some(next().into()),
            other => {
                which = other.to_string();
                i += 1;
                continue;
            }
        }
        i += 2;
    }

    let fixture =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/chopin_nocturne_op15_1.mid");
    let perf = read_midi(&fixture)?;
    let mut piece = Piece::from_played(&perf.notes);
    let windows = seconds.div_ceil(5);
    piece.segments.retain(|s| s.window < windows);
    let mut lens: Vec<usize> = piece
        .segments
        .iter()
        .map(|s| decoder_target(s).len())
        .collect();
    lens.sort_unstable();
    let median_len = lens[lens.len() / 2];

    let model = if which == "small" {
        ImprovNetModel::random(&Config::small(), 0, &Device::Cpu)?
    } else if which == "base" {
        ImprovNetModel::random(&Config::base(), 0, &Device::Cpu)?
    } else {
        ImprovNetModel::load(&PathBuf::from(&which), &Device::Cpu)?
    };
    if let Some(dir) = &save_model {
        model.save(dir)?;
        println!("saved the model to {}", dir.display());
        return Ok(());
    }

    let mut settings = Settings::style_transfer();
    settings.refine.seed = seed;
    settings.refine.max_tokens_per_segment = max_tokens.unwrap_or(median_len);
    if let Some(n) = passes {
        settings.refine.passes.truncate(n);
    }
    let t0 = Instant::now();
    settings.refine.protected_windows =
        preserved_windows(&piece, settings.novel_peaks_pct, StructureSource::Midi)?;
    let structure_s = t0.elapsed().as_secs_f64();
    let mut pass_times = Vec::new();
    let mut pass_start = Instant::now();
    let out = improvise(&model, &piece, &settings.refine, &mut |e| match e {
        Progress::PassStart { .. } => pass_start = Instant::now(),
        Progress::PassEnd { .. } => pass_times.push(pass_start.elapsed().as_secs_f64()),
        _ => {}
    })?;
    let total_s = t0.elapsed().as_secs_f64();

    let mut ms: Vec<f64> = out
        .report
        .segment_times
        .iter()
        .map(|d| d.as_secs_f64() * 1e3)
        .collect();
    ms.sort_by(f64::total_cmp);
    let tokens: usize = out.report.segment_tokens.iter().sum();
    let n = ms.len().max(1);
    println!(
        "model {which} ({:.2} M params), piece {:.0} s ({} segments, median {} tokens), \
         {} passes, cap {} tokens/segment, seed {seed}",
        model.num_parameters() as f64 / 1e6,
        piece.duration_ms() as f64 / 1000.0,
        piece.segments.len(),
        median_len,
        settings.refine.passes.len(),
        settings.refine.max_tokens_per_segment,
    );
    println!(
        "total {total_s:.1} s (structure {structure_s:.2} s) | {} segments rewritten, \
         {:.0} decoder tokens each on average | per segment median {:.0} ms, p95 {:.0} ms, \
         max {:.0} ms",
        ms.len(),
        tokens as f64 / n as f64,
        percentile(&ms, 0.5),
        percentile(&ms, 0.95),
        ms.last().copied().unwrap_or(0.0),
    );
    let per_pass: Vec<String> = out
        .report
        .passes
        .iter()
        .zip(&pass_times)
        .map(|(p, t)| format!("{} {}/{} {:.1}s", p.label, p.refined, p.candidates, t))
        .collect();
    println!("passes: {}", per_pass.join(" | "));
    if let Some(path) = out_file {
        improvnet::music::write_midi(&out.piece, &path)?;
        println!("wrote {}", path.display());
    }
    if let Ok(load) = std::fs::read_to_string("/proc/loadavg") {
        println!("load average at the end: {}", load.trim());
    }
    Ok(())
}
