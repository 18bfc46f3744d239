//! `improvnet improvise | harmonize | continue | infill`: the engine for musicians.
//!
//! Every command reads a recipe (the task's defaults, or `--config FILE` with the original's
//! keys), lets flags override it, and writes like the original: `original_<name>.mid` (the input
//! as the model sees it: quantized, leading silence removed), `pass_k/generated_<name>.mid` when
//! asked, and `generated_<name>.mid`, each written atomically.
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use clap::{ArgAction, Args};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use improvnet::corrupt::{Behaviour, CorruptionChoice};
use improvnet::music::{write_midi, Performance, Piece};
use improvnet::refine::config::load_config;
use improvnet::refine::{
    self, infill_windows, preserved_windows, segment_range_windows, PassSpec, Progress, RandomMode,
    Refined, Settings, StructureSource,
};
use improvnet::render;
use improvnet::tokens::Genre;

use super::common::{load_model, load_piece, median_p95, Precision, DEFAULT_MODEL};

/// Options every refinement command takes. Unset flags leave the recipe's value.
#[derive(Args, Debug, Clone)]
pub struct Common {
    /// A YAML recipe with the original's keys (see configs/); flags override it.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Model folder (config.json + model.safetensors).
    #[arg(long, default_value = DEFAULT_MODEL)]
    pub model: PathBuf,
    /// Output folder.
    #[arg(long, default_value = "output")]
    pub out: PathBuf,
    /// Generation's arithmetic: auto is bf16 products where the CPU has AVX-512 BF16 (a third
    /// less time per segment) and 8-bit decoder weights for large decoders (half the time per
    /// token of the released model); f32 reproduces the reference forward.
    #[arg(long, value_enum, default_value = "auto")]
    pub precision: Precision,
    /// Seed of every random choice: the same seed gives the same files.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Number of passes: the recipe's first N (repeated from its start when N is larger).
    #[arg(long)]
    pub passes: Option<usize>,
    /// Corruption rate of every pass (0..1): the share of segments rewritten per pass.
    #[arg(long)]
    pub rate: Option<f64>,
    /// Corruption of every pass: one of the nine (e.g. skyline, whole_mask) or `random`.
    #[arg(long)]
    pub corruption: Option<String>,
    /// `random` corruption picked once per pass instead of per segment.
    #[arg(long, value_parser = ["segment", "pass"])]
    pub random_per: Option<String>,
    /// Sampling temperature: above 1 more adventurous, below 1 more conservative.
    #[arg(long)]
    pub temperature: Option<f32>,
    /// Top-k sampling (0 = off).
    #[arg(long)]
    pub top_k: Option<usize>,
    /// Samples per rewritten segment; the one whose pitch classes fit the segments around it
    /// best is kept (1 = one sample, as the original; infill defaults to 4). They share one
    /// encoder run and are decoded side by side.
    #[arg(long)]
    pub candidates: Option<usize>,
    /// Segments (5 s each) of context before the rewritten one.
    #[arg(long)]
    pub context_before: Option<usize>,
    /// Segments of context after the rewritten one.
    #[arg(long)]
    pub context_after: Option<usize>,
    /// The first N segments stay original (t_segment_start).
    #[arg(long)]
    pub start: Option<usize>,
    /// Refine only segments before this index (t_segment_stop); -1 = to the end.
    #[arg(long, allow_negative_numbers = true)]
    pub stop: Option<i64>,
    /// Keep the last segment original (true/false).
    #[arg(long)]
    pub end_original: Option<bool>,
    /// Preservation ratio (novel_peaks_pct): keep the segments that start new sections.
    #[arg(long)]
    pub preserve: Option<f64>,
    /// Find sections in this WAV rendering of the input instead of the MIDI itself.
    #[arg(long)]
    pub structure_wav: Option<PathBuf>,
    /// Write pass_k/generated_<name>.mid after every pass (true/false).
    #[arg(long)]
    pub write_passes: Option<bool>,
    /// Decoder tokens per segment (start token included; at most 512).
    #[arg(long)]
    pub max_tokens: Option<usize>,
    /// strict (default): a rewritten segment keeps what its corruption keeps and the player's
    /// tune; free: the original's unconstrained regeneration.
    #[arg(long)]
    pub fidelity: Option<String>,
    /// The musical sanity rules at decode time: no restrike, the range and loudness of the music
    /// around, a note count near the input's (true/false; default true).
    #[arg(long)]
    pub sanity: Option<bool>,
    /// Corrupt with the original's edge-case bugs (training parity) instead of the fixed ones.
    #[arg(long, action = ArgAction::SetTrue)]
    pub faithful: bool,
    /// No progress bars.
    #[arg(long, short, action = ArgAction::SetTrue)]
    pub quiet: bool,
    /// Also render the result to generated_<name>.wav through a SoundFont.
    #[arg(long, action = ArgAction::SetTrue)]
    pub wav: bool,
    /// SoundFont 2 file for --wav (default: the first installed General MIDI SoundFont).
    #[arg(long)]
    pub soundfont: Option<PathBuf>,
    /// Also draw roll_<name>.png: original above, result below, changed T-segments shaded.
    #[arg(long, action = ArgAction::SetTrue)]
    pub plot: bool,
}

/// The recipe: the task defaults, the config file over them, the flags over both.
fn settings(common: &Common, defaults: Settings, genre: Option<&str>) -> Result<Settings> {
    // A missing SoundFont is found now, not after minutes of generation.
    if common.wav {
        render::find_soundfont(common.soundfont.as_deref())?;
    }
    let mut s = match &common.config {
        Some(path) => {
            let loaded = load_config(path, defaults)?;
            for w in &loaded.warnings {
                eprintln!("warning: {w}");
            }
            loaded.settings
        }
        None => defaults,
    };
    let r = &mut s.refine;
    if let Some(g) = genre {
        r.target = g.parse::<Genre>().map_err(|e| anyhow!("--to {g}: {e}"))?;
    }
    if let Some(name) = &common.corruption {
        let c: CorruptionChoice = name
            .parse()
            .map_err(|e| anyhow!("--corruption {name}: {e}"))?;
        r.passes.iter_mut().for_each(|p| p.corruption = c);
    }
    if let Some(rate) = common.rate {
        if !(0.0..=1.0).contains(&rate) {
            bail!("--rate {rate}: a corruption rate is between 0 and 1");
        }
        r.passes.iter_mut().for_each(|p| p.rate = rate);
    }
    if let Some(n) = common.passes {
        if n == 0 {
            bail!("--passes 0: at least one pass is needed");
        }
        r.passes = resize_passes(&r.passes, n);
    }
    if let Some(mode) = &common.random_per {
        r.random_mode = if mode == "pass" {
            RandomMode::PerPass
        } else {
            RandomMode::PerSegment
        };
    }
    if let Some(v) = common.seed {
        r.seed = v;
    }
    if let Some(v) = common.temperature {
        r.temperature = v;
    }
    if let Some(v) = common.top_k {
        r.top_k = v;
    }
    if let Some(v) = common.candidates {
        r.candidates = v;
    }
    if let Some(v) = common.context_before {
        r.context_before = v;
    }
    if let Some(v) = common.context_after {
        r.context_after = v;
    }
    if let Some(v) = common.start {
        r.t_segment_start = v;
    }
    if let Some(v) = common.stop {
        r.t_segment_stop = usize::try_from(v).ok();
    }
    if let Some(v) = common.end_original {
        r.end_original = v;
    }
    if let Some(v) = common.max_tokens {
        r.max_tokens_per_segment = v;
    }
    if common.faithful {
        r.behaviour = Behaviour::Faithful;
    }
    if let Some(f) = &common.fidelity {
        r.fidelity = f.parse().map_err(|e| anyhow!("--fidelity {f}: {e}"))?;
    }
    if let Some(v) = common.sanity {
        r.sanity = v;
    }
    if let Some(v) = common.preserve {
        if !(0.0..=1.0).contains(&v) {
            bail!("--preserve {v}: a preservation ratio is between 0 and 1");
        }
        s.novel_peaks_pct = v;
    }
    if let Some(v) = common.write_passes {
        s.write_intermediate_passes = v;
    }
    s.refine.validate()?;
    Ok(s)
}

/// The first `n` passes of a schedule, the schedule repeating when `n` is longer.
fn resize_passes(passes: &[PassSpec], n: usize) -> Vec<PassSpec> {
    passes.iter().copied().cycle().take(n).collect()
}

/// The input file: the command line's, else the config's `midi_file_path`.
fn input_path(arg: Option<PathBuf>, s: &Settings) -> Result<(PathBuf, bool)> {
    match (arg, &s.midi_file_path) {
        (Some(p), _) => Ok((p, false)),
        (None, Some(p)) => Ok((p.clone(), true)),
        (None, None) => {
            bail!("no input MIDI file: name one, or set generation.midi_file_path in --config")
        }
    }
}

/// File name used in output names, as the original: `generated_<name>`.
fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "piece.mid".into())
}

fn create_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("{}: cannot create folder", dir.display()))
}

/// Progress bars (one per pass) and the per-pass files.
struct Reporter<'a> {
    quiet: bool,
    bar: Option<ProgressBar>,
    pass_dir: Option<(&'a Path, &'a str)>,
    /// The piece to write instead of the whole one (infilling's `save_infilling_only`).
    crop: Option<&'a dyn Fn(&Piece) -> Piece>,
    error: Option<anyhow::Error>,
}

impl<'a> Reporter<'a> {
    fn new(quiet: bool, pass_dir: Option<(&'a Path, &'a str)>) -> Self {
        Self {
            quiet,
            bar: None,
            pass_dir,
            crop: None,
            error: None,
        }
    }

    fn event(&mut self, event: Progress<'_>) {
        match event {
            Progress::PassStart {
                pass,
                passes,
                label,
                segments,
            } => {
                let bar = if self.quiet {
                    ProgressBar::hidden()
                } else {
                    let bar = ProgressBar::with_draw_target(
                        Some(segments as u64),
                        ProgressDrawTarget::stderr(),
                    );
                    bar.set_style(
                        ProgressStyle::with_template(
                            "pass {prefix:>5} {msg:<28} [{bar:30}] {pos}/{len} segments {elapsed}",
                        )
                        .expect("valid template")
                        .progress_chars("=> "),
                    );
                    bar
                };
                bar.set_prefix(format!("{pass}/{passes}"));
                bar.set_message(label);
                self.bar = Some(bar);
            }
            Progress::Segment { .. } => {
                if let Some(bar) = &self.bar {
                    bar.inc(1);
                }
            }
            Progress::PassEnd {
                pass,
                refined,
                piece,
                ..
            } => {
                if let Some(bar) = self.bar.take() {
                    bar.finish_with_message(format!("{} ({refined} rewritten)", bar.message()));
                }
                if let (Some((out, name)), None) = (self.pass_dir, &self.error) {
                    let dir = out.join(format!("pass_{pass}"));
                    let piece = match self.crop {
                        Some(crop) => crop(piece),
                        None => piece.clone(),
                    };
                    let result = create_dir(&dir).and_then(|()| {
                        write_midi(&piece, &dir.join(format!("generated_{name}")))
                            .map_err(Into::into)
                    });
                    if let Err(e) = result {
                        self.error = Some(e);
                    }
                }
            }
        }
    }
}

fn summarize(result: &Refined, started: Instant) {
    let r = &result.report;
    let times: Vec<f64> = r.segment_times.iter().map(Duration::as_secs_f64).collect();
    let (median, p95) = median_p95(&times);
    println!(
        "{} passes, {} segments rewritten ({} distinct windows), {} kept by structure; \
         {:.1} s in all, per segment median {:.0} ms, p95 {:.0} ms",
        r.passes.len(),
        times.len(),
        r.refined_windows.len(),
        r.protected_windows.len(),
        started.elapsed().as_secs_f64(),
        median * 1e3,
        p95 * 1e3
    );
    let all: improvnet::model::DecodeStats = r.drafts.values().sum();
    if all.forwards > 0 {
        println!(
            "decoding: {:.2} tokens per decoder forward ({} of {} drafted tokens taken)",
            all.tokens_per_forward(),
            all.accepted,
            all.drafted
        );
    }
}

fn write_outputs(common: &Common, name: &str, original: &Piece, generated: &Piece) -> Result<()> {
    let out = &common.out;
    create_dir(out)?;
    let orig = out.join(format!("original_{name}"));
    write_midi(original, &orig)?;
    let gen = out.join(format!("generated_{name}"));
    write_midi(generated, &gen)?;
    println!("wrote {}", orig.display());
    println!("wrote {}", gen.display());
    let stem = Path::new(name).with_extension("");
    let stem = stem.display();
    super::common::write_renderings(
        generated,
        Some(original),
        common
            .wav
            .then(|| out.join(format!("generated_{stem}.wav")))
            .as_deref(),
        common.soundfont.as_deref(),
        44_100,
        common
            .plot
            .then(|| out.join(format!("roll_{stem}.png")))
            .as_deref(),
    )
}

/// Structure preservation for improvise and harmonize.
fn protected(
    s: &Settings,
    common: &Common,
    piece: &Piece,
    performance: &Performance,
    from_config: bool,
) -> Result<Vec<u32>> {
    // A config's WAV belongs to the config's MIDI: use it only when that is the input.
    let wav = common.structure_wav.clone().or(if from_config {
        s.wav_file_path.clone()
    } else {
        None
    });
    let source = match &wav {
        Some(path) => StructureSource::Wav {
            path,
            leading_silence_ms: performance.leading_silence_ms,
        },
        None => StructureSource::Midi,
    };
    Ok(preserved_windows(piece, s.novel_peaks_pct, source)?)
}

pub fn improvise(input: Option<PathBuf>, to: Option<String>, common: Common) -> Result<()> {
    let s = settings(&common, Settings::style_transfer(), to.as_deref())?;
    sweep_command(input, s, common, false)
}

pub fn harmonize(
    input: Option<PathBuf>,
    to: Option<String>,
    reharmonize: bool,
    no_constraints: bool,
    common: Common,
) -> Result<()> {
    let mut s = settings(&common, Settings::harmony(), to.as_deref())?;
    if reharmonize {
        s.harmony.reharmonize = true;
    }
    if no_constraints {
        s.harmony.use_constraints = false;
    }
    sweep_command(input, s, common, true)
}

fn sweep_command(
    input: Option<PathBuf>,
    mut s: Settings,
    common: Common,
    harmony: bool,
) -> Result<()> {
    let (path, from_config) = input_path(input, &s)?;
    let (performance, piece) = load_piece(&path)?;
    let name = file_name(&path);
    if harmony {
        refine::check_monophonic(&piece, &path.display().to_string())?;
    }
    s.refine.protected_windows = protected(&s, &common, &piece, &performance, from_config)?;
    if refine::sweep_windows(&piece, &s.refine).is_empty() {
        eprintln!(
            "note: {}: nothing to rewrite ({} segments; the first {} and{} the structure-kept ones stay)",
            path.display(),
            piece.segments.len(),
            s.refine.t_segment_start,
            if s.refine.end_original { " the last and" } else { "" }
        );
    }
    let model = load_model(&common.model, common.precision)?;
    create_dir(&common.out)?;
    let started = Instant::now();
    let pass_dir = s
        .write_intermediate_passes
        .then_some((common.out.as_path(), name.as_str()));
    let mut reporter = Reporter::new(common.quiet, pass_dir);
    let result = if harmony {
        refine::harmonize(
            &model,
            &piece,
            &path.display().to_string(),
            &s.refine,
            s.harmony,
            &mut |e| reporter.event(e),
        )?
    } else {
        refine::improvise(&model, &piece, &s.refine, &mut |e| reporter.event(e))?
    };
    if let Some(e) = reporter.error {
        return Err(e);
    }
    write_outputs(&common, &name, &piece, &result.piece)?;
    summarize(&result, started);
    Ok(())
}

pub fn continue_prompt(
    input: Option<PathBuf>,
    seconds: Option<f64>,
    genre: Option<String>,
    common: Common,
) -> Result<()> {
    let s = settings(&common, Settings::continuation(), genre.as_deref())?;
    let (path, _) = input_path(input, &s)?;
    let (_, prompt) = load_piece(&path)?;
    let name = file_name(&path);
    let seconds = seconds.unwrap_or(s.context_infilling as f64 * 5.0);
    if !(seconds.is_finite() && seconds > 0.0) {
        bail!("--seconds {seconds}: the continuation needs a positive length");
    }
    let model = load_model(&common.model, common.precision)?;
    create_dir(&common.out)?;
    let first = prompt.segments.last().map_or(0, |s| s.window + 1);
    // The original's prompt generation regenerates from window `t_segment_start` on, over the
    // rest of the prompt; ours always continues after the whole prompt. Say so, not silently.
    let start = s.refine.t_segment_start;
    if let Some(config) = common.config.as_ref().filter(|_| start < first as usize) {
        eprintln!(
            "warning: {}: t_segment_start {start} is not used by `continue`: the music is added \
             after the whole prompt ({} s); to regenerate from {} s on as the original did, cut \
             the prompt there",
            config.display(),
            first * 5,
            start * 5
        );
    }
    let crop = move |p: &Piece| Piece {
        segments: p
            .segments
            .iter()
            .filter(|seg| seg.window >= first)
            .cloned()
            .collect(),
    };
    let started = Instant::now();
    let pass_dir = s
        .write_intermediate_passes
        .then_some((common.out.as_path(), name.as_str()));
    let mut reporter = Reporter::new(common.quiet, pass_dir);
    if s.save_infilling_only {
        reporter.crop = Some(&crop);
    }
    let result = refine::continue_piece(&model, &prompt, seconds, &s.refine, &mut |e| {
        reporter.event(e)
    })?;
    if let Some(e) = reporter.error {
        return Err(e);
    }
    let generated = if s.save_infilling_only {
        crop(&result.piece)
    } else {
        result.piece.clone()
    };
    write_outputs(&common, &name, &prompt, &generated)?;
    println!(
        "continued {} by {} s ({} windows from {:.0} s)",
        path.display(),
        refine::tasks::windows_for_seconds(seconds) * 5,
        refine::tasks::windows_for_seconds(seconds),
        f64::from(first) * 5.0
    );
    summarize(&result, started);
    Ok(())
}

/// A time on the command line: `20`, `20s`, `20.5s`, `1:05`, `1:05.5`, `1500ms`.
pub fn parse_time_ms(text: &str) -> Result<u64> {
    let t = text.trim();
    let bad = || anyhow!("`{text}` is not a time (examples: 20s, 1:05, 1500ms)");
    let seconds = if let Some(ms) = t.strip_suffix("ms") {
        ms.trim().parse::<f64>().map_err(|_| bad())? / 1000.0
    } else if let Some((m, sec)) = t.split_once(':') {
        let m: f64 = m.trim().parse().map_err(|_| bad())?;
        let sec: f64 = sec.trim().parse().map_err(|_| bad())?;
        m * 60.0 + sec
    } else {
        t.strip_suffix('s')
            .unwrap_or(t)
            .trim()
            .parse::<f64>()
            .map_err(|_| bad())?
    };
    if !(seconds.is_finite() && seconds >= 0.0) {
        return Err(bad());
    }
    Ok((seconds * 1000.0).round() as u64)
}

pub fn infill(
    input: Option<PathBuf>,
    from: Option<String>,
    to: Option<String>,
    genre: Option<String>,
    common: Common,
) -> Result<()> {
    let s = settings(&common, Settings::infilling(), genre.as_deref())?;
    let (path, _) = input_path(input, &s)?;
    let (_, piece) = load_piece(&path)?;
    let name = file_name(&path);
    let source_name = path.display().to_string();
    let windows = match (from, to) {
        (Some(f), Some(t)) => {
            let from_ms = parse_time_ms(&f).with_context(|| format!("--from {f}"))?;
            let to_ms = parse_time_ms(&t).with_context(|| format!("--to {t}"))?;
            infill_windows(&piece, &source_name, from_ms, to_ms)?
        }
        (None, None) => {
            let w = segment_range_windows(&piece, s.refine.t_segment_start, s.context_infilling);
            if w.is_empty() {
                bail!(
                    "{source_name}: no segments to infill: t_segment_start {} with context_infilling {} \
                     lies outside the piece's {} segments (give --from and --to)",
                    s.refine.t_segment_start,
                    s.context_infilling,
                    piece.segments.len()
                );
            }
            w
        }
        _ => bail!("give both --from and --to (e.g. --from 20s --to 30s)"),
    };
    let (lo, hi) = (windows[0], windows[windows.len() - 1] + 1);
    let model = load_model(&common.model, common.precision)?;
    create_dir(&common.out)?;
    let crop = move |p: &Piece| Piece {
        segments: p
            .segments
            .iter()
            .filter(|seg| (lo..hi).contains(&seg.window))
            .cloned()
            .collect(),
    };
    let started = Instant::now();
    let pass_dir = s
        .write_intermediate_passes
        .then_some((common.out.as_path(), name.as_str()));
    let mut reporter = Reporter::new(common.quiet, pass_dir);
    if s.save_infilling_only {
        reporter.crop = Some(&crop);
    }
    let result = refine::infill(&model, &piece, &windows, &s.refine, &mut |e| {
        reporter.event(e)
    })?;
    if let Some(e) = reporter.error {
        return Err(e);
    }
    let (original, generated) = if s.save_infilling_only {
        (crop(&piece), crop(&result.piece))
    } else {
        (piece.clone(), result.piece.clone())
    };
    write_outputs(&common, &name, &original, &generated)?;
    println!(
        "filled {} from {} s to {} s ({} windows)",
        path.display(),
        lo * 5,
        hi * 5,
        windows.len()
    );
    summarize(&result, started);
    Ok(())
}

/// The arguments of `improvnet improvise`.
#[derive(clap::Args, Debug)]
pub struct ImproviseArgs {
    /// A piano MIDI file (or generation.midi_file_path of --config).
    pub input: Option<PathBuf>,
    /// Target genre: classical, pop or jazz [recipe: jazz].
    #[arg(long)]
    pub to: Option<String>,
    #[command(flatten)]
    pub common: Common,
}

/// The arguments of `improvnet harmonize`.
#[derive(clap::Args, Debug)]
pub struct HarmonizeArgs {
    /// A MIDI file with one note at a time.
    pub input: Option<PathBuf>,
    /// Genre of the harmony: classical or jazz [recipe: classical].
    #[arg(long)]
    pub to: Option<String>,
    /// Really take the skyline of the current harmony in every pass.
    #[arg(long)]
    pub reharmonize: bool,
    /// Decode pass 1 without the chord constraint.
    #[arg(long)]
    pub no_constraints: bool,
    #[command(flatten)]
    pub common: Common,
}

/// The arguments of `improvnet continue`.
#[derive(clap::Args, Debug)]
pub struct ContinueArgs {
    pub input: Option<PathBuf>,
    /// Length of the continuation, rounded up to 5 s windows [recipe: 20].
    #[arg(long)]
    pub seconds: Option<f64>,
    /// Genre token to condition on [recipe: classical].
    #[arg(long)]
    pub genre: Option<String>,
    #[command(flatten)]
    pub common: Common,
}

/// The arguments of `improvnet infill`.
#[derive(clap::Args, Debug)]
pub struct InfillArgs {
    pub input: Option<PathBuf>,
    /// Start of the gap (20s, 1:05, 1500ms), rounded down to a 5 s window.
    #[arg(long)]
    pub from: Option<String>,
    /// End of the gap, rounded up to a 5 s window.
    #[arg(long)]
    pub to: Option<String>,
    /// Genre token to condition on [recipe: classical].
    #[arg(long)]
    pub genre: Option<String>,
    #[command(flatten)]
    pub common: Common,
}
