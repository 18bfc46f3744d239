//! `improvnet bench-music`: the four tasks on a fixed held-out set with fixed seeds, measured
//! musically (issue #26). This table is the model's and the engine's headline.
//!
//! Pieces (real performances never trained on, e.g. hannds' `test/`): improvise with the
//! default recipe and with the jazz recipe, continue the first 20 s by 20 s, fill a 10 s gap in
//! the middle. Melodies (monophonic, never trained on): harmonize in jazz.
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Args;

use improvnet::eval::musical::{self, Check, Harmony};
use improvnet::eval::style::ssm_pearson;
use improvnet::eval::{genre_probabilities, histogram_kl, pitch_class_histogram};
use improvnet::model::DecodeStats;
use improvnet::music::Piece;
use improvnet::refine::config::load_config;
use improvnet::refine::{self, no_progress, Fidelity, Settings};

use super::common::{describe_precision, load_model, load_piece, median_p95, Precision};

#[derive(Args, Debug)]
pub struct BenchMusicArgs {
    /// Folder of held-out piano performances (*.mid).
    #[arg(long, default_value = "data/heldout/pieces")]
    pub pieces: PathBuf,
    /// Folder of held-out monophonic melodies (*.mid).
    #[arg(long, default_value = "data/heldout/melodies")]
    pub melodies: PathBuf,
    #[arg(long, default_value = super::common::DEFAULT_MODEL)]
    pub model: PathBuf,
    #[arg(long, default_value = super::common::DEFAULT_CLASSIFIER)]
    pub classifier: PathBuf,
    /// Generation's arithmetic (as improvise's).
    #[arg(long, value_enum, default_value = "auto")]
    pub precision: Precision,
    /// The jazz recipe measured beside the default one.
    #[arg(long, default_value = "configs/jazz_skyline.yaml")]
    pub jazz_config: PathBuf,
    /// strict or free (the engine's fidelity for every task).
    #[arg(long, default_value = "strict")]
    pub fidelity: String,
    /// The sanity rules at decode time (true/false).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub sanity: bool,
    /// Sampling temperature (default: each recipe's).
    #[arg(long)]
    pub temperature: Option<f32>,
    /// Candidates per rewritten segment (default: each recipe's).
    #[arg(long)]
    pub candidates: Option<usize>,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Only the first N pieces and N melodies (a quick look).
    #[arg(long)]
    pub limit: Option<usize>,
}

fn midi_files(dir: &Path, limit: Option<usize>) -> Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("{}: cannot read the folder", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension()
                .is_some_and(|x| x.eq_ignore_ascii_case("mid") || x.eq_ignore_ascii_case("midi"))
        })
        .collect();
    files.sort();
    files.truncate(limit.unwrap_or(usize::MAX));
    if files.is_empty() {
        bail!("{}: no MIDI files (*.mid) there", dir.display());
    }
    Ok(files)
}

fn load(path: &Path) -> Result<Piece> {
    Ok(load_piece(path)?.1)
}

fn name(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn pct(x: f64) -> String {
    format!("{:.1} %", 100.0 * x)
}

fn opt(x: Option<f64>) -> String {
    x.map_or("–".into(), |x| format!("{x:.2}"))
}

/// The options every task shares from the command line.
fn with_flags(mut s: Settings, args: &BenchMusicArgs, fidelity: Fidelity) -> Settings {
    s.refine.fidelity = fidelity;
    s.refine.sanity = args.sanity;
    s.refine.seed = args.seed;
    if let Some(t) = args.temperature {
        s.refine.temperature = t;
    }
    if let Some(c) = args.candidates {
        s.refine.candidates = c;
    }
    s
}

/// Windows `[from, to)` of a piece, as a piece.
fn crop(piece: &Piece, from: u32, to: u32) -> Piece {
    Piece {
        segments: piece
            .segments
            .iter()
            .filter(|s| (from..to).contains(&s.window))
            .cloned()
            .collect(),
    }
}

pub fn run(args: BenchMusicArgs) -> Result<()> {
    let fidelity: Fidelity = args
        .fidelity
        .parse()
        .map_err(|e| anyhow::anyhow!("--fidelity {}: {e}", args.fidelity))?;
    let pieces = midi_files(&args.pieces, args.limit)?;
    let melodies = midi_files(&args.melodies, args.limit)?;
    let model = load_model(&args.model, args.precision)?;
    let classifier = super::common::load_classifier(&args.classifier)?;
    let jazz = load_config(&args.jazz_config, Settings::style_transfer())
        .with_context(|| args.jazz_config.display().to_string())?
        .settings;
    println!(
        "# Musical benchmark: {} pieces, {} melodies, model {}, fidelity {fidelity}, sanity {}, seed {}\n",
        pieces.len(),
        melodies.len(),
        args.model.display(),
        args.sanity,
        args.seed
    );
    for (title, recipe) in [
        (
            "improvise, default recipe (10 passes)",
            Settings::style_transfer(),
        ),
        ("improvise, jazz recipe (configs/jazz_skyline.yaml)", jazz),
    ] {
        println!("## {title}\n");
        println!("| piece | top voice kept (rewritten) | overall | defects gen / orig | median pitch Δ | velocity Δ | P(jazz) orig → gen | SSM r | swing gen / orig |");
        println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
        for path in &pieces {
            let piece = load(path)?;
            let mut s = with_flags(recipe.clone(), &args, fidelity);
            s.refine.protected_windows = refine::preserved_windows(
                &piece,
                s.novel_peaks_pct,
                refine::StructureSource::Midi,
            )?;
            let out = refine::improvise(&model, &piece, &s.refine, &mut no_progress)?;
            let c = musical::check(&piece, &out.piece, None);
            let pj = |p: &Piece| genre_probabilities(&classifier, p).map(|p| p[2]);
            println!(
                "| {} | {} | {} | {} / {} | {:+.1} | {:+.1} | {:.2} → {:.2} | {} | {} / {} |",
                name(path),
                pct(c.tune_rewritten.share()),
                pct(c.tune_overall.share()),
                c.defects.total(),
                c.defects_original.total(),
                c.median_pitch - c.median_pitch_original,
                c.velocity_mean - c.velocity_mean_original,
                pj(&piece)?,
                pj(&out.piece)?,
                opt(ssm_pearson(&piece, &out.piece)),
                opt(c.swing),
                opt(c.swing_original),
            );
        }
        println!();
    }
    gap_tasks(&args, &pieces, &model, fidelity)?;
    #[cfg(feature = "plugin")]
    plugin_path(&args, &pieces, &melodies, fidelity)?;
    println!("## harmonize (jazz, the harmony recipe)\n");
    println!("| melody | notes | kept | on top | chords / note | in key | clashes | empty windows | notes/s |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for path in &melodies {
        let melody = load(path)?;
        let mut s = with_flags(Settings::harmony(), &args, fidelity);
        s.refine.target = improvnet::tokens::Genre::Jazz;
        let out = refine::harmonize(
            &model,
            &melody,
            &path.display().to_string(),
            &s.refine,
            s.harmony,
            &mut no_progress,
        )?;
        let c: Check = musical::check(&melody, &out.piece, Some(&melody));
        let h: &Harmony = c.harmony.as_ref().expect("melody given");
        let share = |n: usize| pct(n as f64 / h.melody_notes.max(1) as f64);
        println!(
            "| {} | {} | {} | {} | {:.2} | {} | {} | {} | {:.1} |",
            name(path),
            h.melody_notes,
            share(h.kept),
            share(h.on_top),
            h.chords_per_note,
            pct(h.in_key),
            share(h.clashes),
            h.empty_windows,
            c.notes_per_s
        );
    }
    println!("\n## the genre classifier on the real pieces\n");
    println!("| piece | P(classical) | P(jazz) |");
    println!("|---|---:|---:|");
    for path in &pieces {
        let p = genre_probabilities(&classifier, &load(path)?)?;
        println!("| {} | {:.2} | {:.2} |", name(path), p[0], p[2]);
    }
    Ok(())
}

/// The plugin's worker as a bounce drives it: every segment of a piece, in order, answered with
/// the default parameters (random corruption at rate 0.5, delay 2: no after-context); and each
/// melody in harmonize mode.
#[cfg(feature = "plugin")]
fn plugin_path(
    args: &BenchMusicArgs,
    pieces: &[PathBuf],
    melodies: &[PathBuf],
    fidelity: Fidelity,
) -> Result<()> {
    use improvnet::plugin::params::{FidelityParam, Snapshot};
    use improvnet::plugin::playback::Answer;
    use improvnet::plugin::worker::{to_model_notes, to_sample_notes, Job, Refiner};
    const SR: f32 = 48_000.0;
    use improvnet::plugin::params::Mode;
    // Harmonize mode at rate 1 (every phrase answered), improvise at the default 0.5.
    let params = |mode| Snapshot {
        mode,
        rate: if mode == Mode::Harmonize { 1.0 } else { 0.5 },
        seed: args.seed,
        fidelity: match fidelity {
            Fidelity::Strict => FidelityParam::Strict,
            Fidelity::Free => FidelityParam::Free,
        },
        ..Snapshot::default()
    };
    // Every segment of `piece` through a fresh worker, in order; the answers as a piece.
    let bounce = |piece: &Piece, mode| -> Result<(Piece, usize)> {
        let mut refiner = Refiner::new(Some(load_model(&args.model, args.precision)?));
        let mut out = piece.clone();
        let mut refined = 0;
        for seg in &mut out.segments {
            let job = Job {
                generation: 1,
                index: i64::from(seg.window),
                notes: to_sample_notes(&seg.notes, SR),
                params: params(mode),
                sample_rate: SR,
            };
            if let Answer::Refined(notes) = refiner.answer(&job)? {
                seg.notes = to_model_notes(&notes, SR);
                refined += 1;
            }
        }
        Ok((out, refined))
    };
    println!("## plugin: the worker's answers (default parameters, delay 2)\n");
    println!("| piece | segments refined | top voice kept (refined) | defects gen / orig | median pitch Δ | velocity Δ |");
    println!("|---|---:|---:|---:|---:|---:|");
    for path in pieces {
        let piece = load(path)?;
        let (out, refined) = bounce(&piece, Mode::Improvise)?;
        let c = musical::check(&piece, &out, None);
        println!(
            "| {} | {refined} of {} | {} | {} / {} | {:+.1} | {:+.1} |",
            name(path),
            piece.segments.len(),
            pct(c.tune_rewritten.share()),
            c.defects.total(),
            c.defects_original.total(),
            c.median_pitch - c.median_pitch_original,
            c.velocity_mean - c.velocity_mean_original,
        );
    }
    println!();
    println!("| melody (harmonize mode, rate 1) | segments refined | melody kept | on top | chords / note | clashes |");
    println!("|---|---:|---:|---:|---:|---:|");
    for path in melodies {
        let melody = load(path)?;
        let (out, refined) = bounce(&melody, Mode::Harmonize)?;
        let h = musical::harmony(&melody, &out);
        let share = |n: usize| pct(n as f64 / h.melody_notes.max(1) as f64);
        println!(
            "| {} | {refined} of {} | {} | {} | {:.2} | {} |",
            name(path),
            melody.segments.len(),
            share(h.kept),
            share(h.on_top),
            h.chords_per_note,
            share(h.clashes)
        );
    }
    println!();
    Ok(())
}

/// Continue the first 20 s by 20 s, and fill 10 s in the middle: the seams and the harmony
/// against the music around, with the real music's values beside.
fn gap_tasks(
    args: &BenchMusicArgs,
    pieces: &[PathBuf],
    model: &improvnet::model::ImprovNetModel,
    fidelity: Fidelity,
) -> Result<()> {
    println!("## continue (20 s prompt + 20 s) and infill (10 s gap in the middle)\n");
    println!("| piece | task | worst seam jump, loudness / density | pitch-class distance, generated / real |");
    println!("|---|---|---:|---:|");
    for path in pieces {
        let piece = load(path)?;
        let prompt = crop(&piece, 0, 4);
        let s = with_flags(Settings::continuation(), args, fidelity);
        let out = refine::continue_piece(model, &prompt, 20.0, &s.refine, &mut no_progress)?;
        let first = prompt.segments.last().map_or(0, |s| s.window + 1);
        let new: std::collections::BTreeSet<u32> = (first..first + 4).collect();
        let seams = musical::seams(&out.piece, &new);
        let worst = musical::worst_seam(&seams);
        let h = pitch_class_histogram(&prompt);
        let generated = histogram_kl(
            &h,
            &pitch_class_histogram(&crop(&out.piece, first, first + 4)),
        );
        let real = histogram_kl(&h, &pitch_class_histogram(&crop(&piece, first, first + 4)));
        println!(
            "| {} | continue | {} / {} | {:.2} / {:.2} |",
            name(path),
            pct(worst.0),
            pct(worst.1),
            generated,
            real
        );
        let last = piece.segments.last().map_or(0, |s| s.window);
        let from = (last / 2).max(1);
        let windows: Vec<u32> = (from..(from + 2).min(last)).collect();
        let s = with_flags(Settings::infilling(), args, fidelity);
        let out = refine::infill(model, &piece, &windows, &s.refine, &mut no_progress)?;
        let gap: std::collections::BTreeSet<u32> = windows.iter().copied().collect();
        let seams = musical::seams(&out.piece, &gap);
        let worst = musical::worst_seam(&seams);
        let (generated, real) =
            musical::mean_distances(&musical::pitch_class_distances(&piece, &out.piece, &gap));
        println!(
            "| {} | infill {}–{} s | {} / {} | {} / {} |",
            name(path),
            from * 5,
            (from + windows.len() as u32) * 5,
            pct(worst.0),
            pct(worst.1),
            opt(generated),
            opt(real),
        );
    }
    println!();
    Ok(())
}

/// `improvnet bench-model`: what refinement costs on real music, with and without speculative
/// decoding, side by side (issue #27).
#[derive(Args, Debug)]
pub struct BenchModelArgs {
    /// Piano performances to refine with the default recipe (10 passes, jazz).
    #[arg(default_value = "tests/data/chopin_nocturne_op15_1.mid")]
    pub pieces: Vec<PathBuf>,
    #[arg(long, default_value = super::common::DEFAULT_MODEL)]
    pub model: PathBuf,
    /// Rounds of plain then speculative decoding (A B A B ...).
    #[arg(long, default_value_t = 2)]
    pub rounds: usize,
    /// Also time best-of-N candidates per segment (once, speculative).
    #[arg(long, default_value_t = 4)]
    pub candidates: usize,
    /// Decoder tokens per segment at most (an untrained model does not stop by itself).
    #[arg(long)]
    pub max_tokens: Option<usize>,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Generation's arithmetic of every run (as improvise's).
    #[arg(long, value_enum, default_value = "auto")]
    pub precision: Precision,
    /// `--precision`'s arithmetic against f32 side by side: a third run per round in f32, then
    /// both models' greedy answers and logits compared on segments of the pieces (`--draws`
    /// per corruption and piece).
    #[arg(long)]
    pub compare_precision: bool,
    /// Segments per corruption and piece for `--compare-precision`.
    #[arg(long, default_value_t = 8)]
    pub draws: usize,
    /// Write the segments' shapes (encoder tokens, decoded tokens) to this JSON file, for
    /// `scripts/bench_model_pytorch.py` to time the same work through PyTorch.
    #[arg(long)]
    pub export: Option<PathBuf>,
}

/// One timed refinement of every piece.
struct Run {
    wall: f64,
    segments: Vec<f64>,
    /// Per segment: encoder input length, tokens decoded.
    shapes: Vec<(usize, usize)>,
    drafts: std::collections::BTreeMap<improvnet::corrupt::Corruption, DecodeStats>,
    digest: u64,
}

fn refine_all(
    model: &improvnet::model::ImprovNetModel,
    pieces: &[(Piece, Vec<u32>)],
    args: &BenchModelArgs,
    speculative: bool,
    candidates: usize,
) -> Result<Run> {
    let mut run = Run {
        wall: 0.0,
        segments: Vec::new(),
        shapes: Vec::new(),
        drafts: Default::default(),
        digest: 0xcbf2_9ce4_8422_2325,
    };
    for (piece, protected) in pieces {
        let mut s = Settings::style_transfer();
        s.refine.seed = args.seed;
        s.refine.speculative = speculative;
        s.refine.candidates = candidates;
        s.refine.protected_windows = protected.clone();
        if let Some(m) = args.max_tokens {
            s.refine.max_tokens_per_segment = m;
        }
        let started = std::time::Instant::now();
        let out = refine::improvise(model, piece, &s.refine, &mut no_progress)?;
        run.wall += started.elapsed().as_secs_f64();
        let r = &out.report;
        run.segments
            .extend(r.segment_times.iter().map(|t| t.as_secs_f64() * 1e3));
        run.shapes.extend(
            r.segment_inputs
                .iter()
                .copied()
                .zip(r.segment_tokens.iter().copied()),
        );
        for (kind, d) in &r.drafts {
            run.drafts.entry(*kind).or_default().add(*d);
        }
        for n in out.piece.segments.iter().flat_map(|s| &s.notes) {
            for b in [
                n.pitch as u64,
                n.velocity as u64,
                n.onset_ms as u64,
                n.dur_ms as u64,
            ] {
                run.digest = (run.digest ^ b).wrapping_mul(0x100_0000_01b3);
            }
        }
    }
    Ok(run)
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

fn print_run(label: &str, run: &Run) {
    let all: DecodeStats = run.drafts.values().sum();
    let (median, p95) = median_p95(&run.segments);
    let per = |d: std::time::Duration| d.as_secs_f64() * 1e3 / run.segments.len().max(1) as f64;
    println!(
        "{label:<12} {:>6.1} s | {} segments, median {median:.1} ms, p95 {p95:.1} ms | mean encoder {:.1} ms, decode {:.1} ms | {:.2} tokens/forward | load {}",
        run.wall,
        run.segments.len(),
        per(all.encoder),
        per(all.decode),
        all.tokens_per_forward(),
        load_average()
    );
}

pub fn bench_model(args: BenchModelArgs) -> Result<()> {
    let model = load_model(&args.model, args.precision)?;
    let reference = if args.compare_precision {
        if args.precision == Precision::F32 {
            bail!("--compare-precision compares --precision's arithmetic with f32: name another");
        }
        Some(load_model(&args.model, Precision::F32)?)
    } else {
        None
    };
    let mut pieces = Vec::new();
    for path in &args.pieces {
        let (_, piece) = load_piece(path)?;
        let protected = refine::preserved_windows(
            &piece,
            Settings::style_transfer().novel_peaks_pct,
            refine::StructureSource::Midi,
        )?;
        pieces.push((piece, protected));
    }
    println!(
        "bench-model: {} | {} piece(s) | default recipe, seed {} | {} | {} threads",
        args.model.display(),
        pieces.len(),
        args.seed,
        describe_precision(&model),
        rayon::current_num_threads()
    );
    let mut plain = Vec::new();
    let mut drafted = Vec::new();
    let mut last = None;
    for round in 1..=args.rounds.max(1) {
        let a = refine_all(&model, &pieces, &args, false, 1)?;
        print_run(&format!("{round} plain"), &a);
        let b = refine_all(&model, &pieces, &args, true, 1)?;
        print_run(&format!("{round} drafted"), &b);
        if a.digest != b.digest {
            bail!(
                "speculative decoding changed the output (digest {:016x} vs {:016x})",
                a.digest,
                b.digest
            );
        }
        plain.push(a.wall);
        drafted.push(b.wall);
        if let Some(reference) = &reference {
            let c = refine_all(reference, &pieces, &args, true, 1)?;
            print_run(&format!("{round} f32"), &c);
        }
        last = Some(b);
    }
    let last = last.expect("at least one round");
    if let Some(path) = &args.export {
        let shapes: Vec<_> = last
            .shapes
            .iter()
            .map(|&(e, t)| serde_json::json!({"encoder_tokens": e, "tokens": t}))
            .collect();
        let json = serde_json::json!({"model": args.model, "segments": shapes});
        improvnet::music::write_atomic(path, json.to_string().as_bytes())
            .with_context(|| format!("{}: cannot write", path.display()))?;
        println!(
            "{} segment shapes written to {}",
            shapes.len(),
            path.display()
        );
    }
    let (plain, drafted) = (median_p95(&plain).0, median_p95(&drafted).0);
    println!(
        "median wall: plain {plain:.1} s, drafted {drafted:.1} s ({:.2}x); outputs identical",
        plain / drafted
    );
    println!("\nper corruption (drafted): segments' tokens per decoder forward, guesses taken");
    for (kind, d) in &last.drafts {
        println!(
            "  {:<24} {:>6} tokens  {:>5.2} tokens/forward  {:>5.1} % of {} guesses",
            kind.name(),
            d.tokens,
            d.tokens_per_forward(),
            100.0 * d.accepted as f64 / d.drafted.max(1) as f64,
            d.drafted
        );
    }
    if args.candidates > 1 {
        let best = refine_all(&model, &pieces, &args, true, args.candidates)?;
        print_run(&format!("best of {}", args.candidates), &best);
        println!(
            "best of {} costs {:.2}x one candidate (per segment median)",
            args.candidates,
            median_p95(&best.segments).0 / median_p95(&last.segments).0
        );
    }
    if let Some(mb) = peak_rss_mb() {
        println!("peak memory {mb:.0} MB");
    }
    if let Some(reference) = &reference {
        print_agreement(reference, &model, &pieces, &args)?;
    }
    Ok(())
}

/// `other`'s arithmetic against f32 (`model`) on training-style segments of the pieces, greedy.
fn print_agreement(
    model: &improvnet::model::ImprovNetModel,
    other: &improvnet::model::ImprovNetModel,
    pieces: &[(Piece, Vec<u32>)],
    args: &BenchModelArgs,
) -> Result<()> {
    use improvnet::eval::precision;
    let pieces: Vec<Piece> = pieces.iter().map(|(p, _)| p.clone()).collect();
    let rows = precision::compare(
        model,
        other,
        &pieces,
        args.draws,
        args.max_tokens.unwrap_or(512),
        args.seed,
    )?;
    println!(
        "\n{} against f32, greedy, {} segments per corruption:",
        describe_precision(other),
        args.draws * pieces.len()
    );
    println!(
        "  {:<24} {:>9} {:>13} {:>13} {:>14} {:>14}",
        "corruption", "identical", "tokens agree", "same argmax", "max |dlogit|", "mean |dlogit|"
    );
    let total = precision::total(&rows);
    for (name, a) in rows
        .iter()
        .map(|(c, a)| (c.name(), a))
        .chain([("all", &total)])
    {
        println!(
            "  {name:<24} {:>4} / {:<3} {:>12.1}% {:>12.2}% {:>14.3} {:>14.4}",
            a.identical,
            a.segments,
            100.0 * a.agreeing_tokens as f64 / a.tokens.max(1) as f64,
            100.0 * a.same_argmax as f64 / a.positions.max(1) as f64,
            a.max_logit_diff,
            a.mean_logit_diff()
        );
    }
    Ok(())
}

/// Peak resident set size (VmHWM) of this process, MB (Linux).
fn peak_rss_mb() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}
