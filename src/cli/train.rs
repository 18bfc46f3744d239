//! `improvnet train`, `improvnet train-classifier`, `improvnet bench-train`.
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use candle_core::Device;
use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};

use improvnet::eval::heldout::{self, HeldOutConfig};
use improvnet::model::Config;
use improvnet::train::classify::{ClassifierRun, ClassifierTrainConfig};
use improvnet::train::{self, Event, Finish, Stage, TrainConfig, Trainer};

use super::common::{corruption_weights, SamplingArgs};

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum StageArg {
    Pretrain,
    Finetune,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum DeviceArg {
    Cpu,
    Cuda,
}

#[derive(Args, Debug)]
pub struct TrainArgs {
    /// A dataset folder written by `improvnet dataset build` (ignored with --resume: taken from
    /// the checkpoint unless given).
    #[arg(long)]
    data: Option<PathBuf>,
    /// Model size: small, base, or a config.json path.
    #[arg(long, default_value = "small")]
    config: String,
    /// Run folder: checkpoint/, best/, final/, train_log.csv, valid_log.csv.
    #[arg(long)]
    out: PathBuf,
    #[arg(long, value_enum, default_value = "pretrain")]
    stage: StageArg,
    /// Model folder to fine-tune from (--stage finetune).
    #[arg(long)]
    init: Option<PathBuf>,
    /// Continue the run saved in this checkpoint or run folder (its settings are kept).
    #[arg(long)]
    resume: Option<PathBuf>,
    /// Optimizer steps in the whole run [default: 1000]. With --resume: a new, larger total
    /// (the warmup keeps its length, the cosine decay stretches to the new end). 0: validate
    /// the initial weights and write them to OUT/final (e.g. `--copy-circuit` weights for
    /// `scripts/train_torch.py --init`).
    #[arg(long)]
    steps: Option<u64>,
    #[arg(long, default_value_t = 4)]
    batch: usize,
    /// Samples per forward pass (gradients accumulated to --batch); 1 computes no padding.
    #[arg(long, default_value_t = 1)]
    micro_batch: usize,
    /// Peak learning rate [default: 1e-4 pretrain, 5e-5 finetune].
    #[arg(long)]
    lr: Option<f64>,
    /// Warmup fraction of the steps [default: 0.3 pretrain, 0.1 finetune].
    #[arg(long)]
    warmup_ratio: Option<f64>,
    #[arg(long, default_value_t = 0.01)]
    weight_decay: f64,
    /// Global gradient-norm clip.
    #[arg(long, default_value_t = 3.0)]
    clip: f64,
    #[arg(long, default_value_t = 444)]
    seed: u64,
    /// Compute the loss on all 512 label positions, padding included, as the original did.
    #[arg(long)]
    loss_on_padding: bool,
    /// Train without dropout.
    #[arg(long)]
    no_dropout: bool,
    #[command(flatten)]
    sampling: SamplingArgs,
    /// Checkpoint every N steps (0: at the end and on Ctrl-C only) [default: 0; with --resume:
    /// the run's].
    #[arg(long)]
    ckpt_every: Option<u64>,
    /// Also checkpoint every M minutes (0: off) [default: 10; with --resume: the run's].
    #[arg(long)]
    ckpt_minutes: Option<f64>,
    /// Validate every N steps (0: at the end only).
    #[arg(long, default_value_t = 0)]
    eval_every: u64,
    /// Validation pieces used (0: all), one sample per corruption each.
    #[arg(long, default_value_t = 0)]
    valid_pieces: usize,
    /// From scratch, start the output bias at zero as HF does, instead of at the training
    /// labels' log-frequencies (which delays the encoder's collapse; see docs/experiments.md).
    #[arg(long)]
    zero_output_bias: bool,
    /// From scratch, start from weights that already copy the corrupted input (an induction
    /// circuit; see src/train/induction.rs): validation token accuracy 0.37 at step 0 where
    /// HF's random init has 0.004.
    #[arg(long)]
    copy_circuit: bool,
    /// With --copy-circuit: also align the target with the corrupted block by position (its
    /// i-th token sits i + 1 places after the corruption token), so repeated patterns and moved
    /// pitches do not lose the copy its place.
    #[arg(long)]
    align_positions: bool,
    /// With --copy-circuit: the codes of one pitch's velocities share a part, and so do the
    /// pitches of one pitch class, so that the output head can read "how often does this pitch
    /// (class) occur in the block" (see docs/training.md)
    #[arg(long)]
    pitch_codes: bool,
    /// With --copy-circuit: the codes of one velocity's pitches share a part, so that the output
    /// head can read a note's loudness apart from its pitch (see docs/training.md)
    #[arg(long)]
    velocity_codes: bool,
    /// Share of the target (0..=1) that moves from the label to the belief of a rule that knows
    /// no harmony, at the pitches of the permutations ("count the block") and of transposition
    /// ("hear it again"; both in src/train/rules.rs): a teacher that says how likely each
    /// candidate is where the label names one. 0 (default): the labels alone, as the original.
    #[arg(long, default_value_t = 0.0)]
    rule_teacher: f64,
    /// Pull the output bias of each field (notes, onsets, durations) this share of the way
    /// to the field's mean before training: rare tokens stop losing to the bias where the
    /// copy signal is weak, and the model relearns its priors from the context. 0 (default):
    /// the bias as loaded.
    #[arg(long, default_value_t = 0.0, value_name = "SHARE")]
    pull_output_bias: f64,
    /// Compute threads (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    #[arg(long, value_enum, default_value = "cpu")]
    device: DeviceArg,
    /// One line per step instead of a progress bar (for logs).
    #[arg(long)]
    plain: bool,
}

#[derive(Args, Debug)]
pub struct ClassifierArgs {
    #[arg(long)]
    data: PathBuf,
    /// small (4 layers, d 192, 1024 positions), base (the original's 12 layers, d 512), or a
    /// config.json path.
    #[arg(long, default_value = "small")]
    config: String,
    #[arg(long)]
    out: PathBuf,
    /// Epochs at most (one window per training piece each).
    #[arg(long, default_value_t = 200)]
    epochs: usize,
    /// Stop after this many epochs without a better validation loss.
    #[arg(long, default_value_t = 30)]
    patience: usize,
    #[arg(long, default_value_t = 16)]
    batch: usize,
    #[arg(long, default_value_t = 1e-4)]
    lr: f64,
    #[arg(long, default_value_t = 0.3)]
    warmup_ratio: f64,
    #[arg(long, default_value_t = 444)]
    seed: u64,
    /// Validation windows per validation piece.
    #[arg(long, default_value_t = 8)]
    windows: usize,
    /// Segments on each side of a window (the original: 2, ~25 s windows; 0 is 5 s windows,
    /// about 5× cheaper per step on a CPU). Saved in the classifier's config.json.
    #[arg(long)]
    context: Option<usize>,
    /// Vary each training window's velocities and durations, so the genre is learned from
    /// the notes rather than from how a file was rendered or pedalled.
    #[arg(long)]
    vary_rendering: bool,
    #[arg(long)]
    threads: Option<usize>,
    #[arg(long, value_enum, default_value = "cpu")]
    device: DeviceArg,
}

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// A dataset folder (samples are drawn from its training pieces).
    #[arg(long)]
    data: PathBuf,
    #[arg(long, default_value = "small")]
    config: String,
    #[arg(long, default_value_t = 4)]
    batch: usize,
    /// Samples per forward pass (see `train --micro-batch`).
    #[arg(long, default_value_t = 1)]
    micro_batch: usize,
    /// Timed steps (after one warm-up step).
    #[arg(long, default_value_t = 5)]
    steps: usize,
    #[arg(long, default_value_t = 5)]
    max_context: usize,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    #[arg(long)]
    threads: Option<usize>,
    /// Also write the batches as JSON here (for scripts/bench_train_pytorch.py).
    #[arg(long)]
    dump: Option<PathBuf>,
}

/// Sets the compute threads before candle or rayon start any.
///
/// candle's elementwise ops run on a pool whose idle workers spin; on a shared 2-core machine
/// that spinning took ~40% of a training step (measured: 13.5 s -> 7.4 s per step of `small`,
/// batch 4, with the pool off), so it is off unless `CANDLE_NUM_THREADS` says otherwise.
/// Matrix products keep `--threads` rayon threads.
pub fn set_threads(threads: Option<usize>) -> Result<()> {
    if std::env::var_os("CANDLE_NUM_THREADS").is_none() {
        std::env::set_var("CANDLE_NUM_THREADS", "1");
    }
    if let Some(n) = threads {
        if n == 0 {
            bail!("--threads must be at least 1");
        }
        std::env::set_var("RAYON_NUM_THREADS", n.to_string());
        // Ignore the error when a pool already exists (it has the same size in practice).
        let _ = rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build_global();
    }
    Ok(())
}

fn device(d: DeviceArg) -> Result<Device> {
    match d {
        DeviceArg::Cpu => Ok(Device::Cpu),
        DeviceArg::Cuda => {
            if !cfg!(feature = "cuda") {
                bail!(
                    "--device cuda needs a build with the `cuda` feature: \
                     cargo build --release --features cuda (CUDA toolkit required)"
                );
            }
            Device::new_cuda(0).context("cannot open CUDA device 0")
        }
    }
}

pub fn model_config(name: &str) -> Result<Config> {
    match name {
        "small" => Ok(Config::small()),
        "base" => Ok(Config::base()),
        path => Config::from_file(Path::new(path))
            .with_context(|| format!("--config {path}: not small, base or a config.json")),
    }
}

fn load_data(dir: &Path) -> Result<train::Dataset> {
    train::load(dir).with_context(|| format!("cannot load dataset {}", dir.display()))
}

/// A flag set by Ctrl-C (and SIGTERM): the loop checkpoints and returns.
fn stop_flag() -> Result<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    let s = stop.clone();
    ctrlc::set_handler(move || {
        if s.swap(true, Ordering::SeqCst) {
            eprintln!("\nsecond interrupt: exiting without a checkpoint");
            std::process::exit(130);
        }
        eprintln!("\ninterrupt: saving a checkpoint after this step (Ctrl-C again to quit now)");
    })
    .context("cannot install the Ctrl-C handler")?;
    Ok(stop)
}

pub fn train(a: TrainArgs) -> Result<()> {
    set_threads(a.threads)?;
    let dev = device(a.device)?;
    let mut trainer = if let Some(dir) = &a.resume {
        let ckpt = train::checkpoint::locate(dir)?;
        let state: train::trainer::TrainerState = train::checkpoint::read_state(&ckpt)?;
        let data_dir = a.data.clone().unwrap_or_else(|| PathBuf::from(&state.data));
        let data = load_data(&data_dir)?;
        let mut t = Trainer::resume(dir, &data, &a.out, &dev)?;
        // Checkpoint cadence may change on resume (only where given); the rest of the settings
        // are the run's.
        if let Some(n) = a.ckpt_every {
            t.config.ckpt_every = n;
        }
        if let Some(m) = a.ckpt_minutes {
            t.config.ckpt_minutes = m;
        }
        if let Some(steps) = a.steps.filter(|&n| n != t.config.steps) {
            t.set_total_steps(steps)?;
        }
        eprintln!(
            "resuming {} at step {} of {} (data {})",
            ckpt.display(),
            t.step,
            t.config.steps,
            data_dir.display()
        );
        t
    } else {
        let data_dir = a
            .data
            .clone()
            .context("--data DIR is required (a folder from `improvnet dataset build`)")?;
        let data = load_data(&data_dir)?;
        let (stage, lr, warmup) = match a.stage {
            StageArg::Pretrain => (Stage::Pretrain, 1e-4, 0.3),
            StageArg::Finetune => (Stage::Finetune, 5e-5, 0.1),
        };
        if matches!(stage, Stage::Finetune) && a.init.is_none() {
            bail!("--stage finetune needs --init MODEL_DIR (a model folder to start from)");
        }
        if matches!(stage, Stage::Pretrain) && a.init.is_some() {
            bail!("--init is for --stage finetune; pre-training starts from scratch");
        }
        let cfg = TrainConfig {
            stage,
            steps: a.steps.unwrap_or(1000),
            batch: a.batch,
            micro_batch: a.micro_batch,
            lr: a.lr.unwrap_or(lr),
            warmup_ratio: a.warmup_ratio.unwrap_or(warmup),
            weight_decay: a.weight_decay,
            clip: a.clip,
            seed: a.seed,
            loss_on_padding: a.loss_on_padding,
            dropout: !a.no_dropout,
            max_context: a.sampling.max_context,
            ckpt_every: a.ckpt_every.unwrap_or(0),
            ckpt_minutes: a.ckpt_minutes.unwrap_or(10.0),
            eval_every: a.eval_every,
            valid_pieces: a.valid_pieces,
            unigram_bias: !a.zero_output_bias,
            copy_circuit: a.copy_circuit,
            align_positions: a.align_positions,
            pitch_codes: a.pitch_codes,
            velocity_codes: a.velocity_codes,
            corruption_weights: corruption_weights(&a.sampling.corruption_weight)?,
            rule_teacher: a.rule_teacher,
            velocity_shift: a.sampling.velocity_shift,
            register_shift: a.sampling.register_shift,
            pull_output_bias: a.pull_output_bias,
        };
        let mc = model_config(&a.config)?;
        let name = data_dir.to_string_lossy().to_string();
        Trainer::new(&mc, a.init.as_deref(), &data, &name, cfg, &a.out, &dev)?
    };
    eprintln!(
        "model {} parameters; {} training pieces, {} validation samples; batch {}, {} steps, \
         lr {:.1e}, warmup {} steps; out {}",
        trainer.model.num_parameters(),
        trainer.train_pieces(),
        trainer.valid_samples(),
        trainer.config.batch,
        trainer.config.steps,
        trainer.config.lr,
        trainer.schedule.warmup_steps,
        a.out.display()
    );
    let stop = stop_flag()?;
    let total = trainer.config.steps;
    let bar = if a.plain {
        ProgressBar::hidden()
    } else {
        let b = ProgressBar::new(total);
        b.set_style(
            ProgressStyle::with_template(
                "{bar:30} {pos}/{len} [{elapsed_precise} < {eta_precise}] {msg}",
            )
            .expect("valid template"),
        );
        b
    };
    bar.set_position(trainer.step);
    let mut tok_rate = 0f64;
    let mut loss_avg: Option<f64> = None;
    let plain = a.plain;
    let start_step = trainer.step;
    let started = std::time::Instant::now();
    let result = trainer.run(&stop, |ev| match ev {
        Event::Step(s) => {
            let rate = s.tokens as f64 / (s.ms / 1e3);
            tok_rate = if tok_rate == 0.0 {
                rate
            } else {
                0.9 * tok_rate + 0.1 * rate
            };
            loss_avg = Some(loss_avg.map_or(s.loss, |l| 0.95 * l + 0.05 * s.loss));
            let msg = format!(
                "loss {:.4} (avg {:.4}) lr {:.2e} {:.0} tok/s {:.2} samples/s",
                s.loss,
                loss_avg.unwrap_or(s.loss),
                s.lr,
                tok_rate,
                s.samples as f64 / (s.ms / 1e3)
            );
            if plain {
                let done = (s.step - start_step) as f64;
                let eta = started.elapsed().as_secs_f64() / done * (total - s.step) as f64;
                println!(
                    "step {}/{total} {msg} enc {} dec {} {:.0} ms eta {:.0} min",
                    s.step,
                    s.enc_len,
                    s.dec_len,
                    s.ms,
                    eta / 60.0
                );
            }
            bar.set_position(s.step);
            bar.set_message(msg);
        }
        Event::Eval(r) => {
            let mut line = format!(
                "valid step {}: loss {:.4} acc {:.3}",
                r.step,
                r.all.loss(),
                r.all.accuracy()
            );
            if let Some(gap) = r.encoder_gap {
                line.push_str(&format!(" encoder gap {gap:.3}"));
            }
            for (c, m) in &r.per_corruption {
                line.push_str(&format!(
                    " | {} {:.3}/{:.3}",
                    c.name(),
                    m.loss(),
                    m.accuracy()
                ));
            }
            bar.println(&line);
            if plain {
                println!("{line}");
            }
        }
        Event::Checkpoint(p) => {
            let line = format!("checkpoint {}", p.display());
            bar.println(&line);
            if plain {
                println!("{line}");
            }
        }
    });
    bar.finish_and_clear();
    match result? {
        Finish::Done => eprintln!(
            "done: {} steps; model in {}/final, best validation in {}/best",
            trainer.step,
            a.out.display(),
            a.out.display()
        ),
        Finish::Interrupted => eprintln!(
            "interrupted at step {}; resume with: improvnet train --resume {} --out {}",
            trainer.step,
            a.out.join("checkpoint").display(),
            a.out.display()
        ),
    }
    Ok(())
}

pub fn train_classifier(a: ClassifierArgs) -> Result<()> {
    set_threads(a.threads)?;
    let dev = device(a.device)?;
    let data = load_data(&a.data)?;
    let mut cfg: improvnet::model::BertConfig = match a.config.as_str() {
        "small" => improvnet::train::classify::small_config(),
        "base" => improvnet::model::GenreClassifier::base_config(),
        path => {
            let text = std::fs::read_to_string(path).with_context(|| format!("--config {path}"))?;
            serde_json::from_str(&text).with_context(|| format!("--config {path}: invalid"))?
        }
    };
    if a.context.is_some() {
        cfg.window_context = a.context;
    }
    let run_cfg = ClassifierTrainConfig {
        epochs: a.epochs,
        patience: a.patience,
        batch: a.batch,
        lr: a.lr,
        warmup_ratio: a.warmup_ratio,
        seed: a.seed,
        valid_windows: a.windows,
        vary_rendering: a.vary_rendering,
        ..ClassifierTrainConfig::default()
    };
    let stop = stop_flag()?;
    let mut run = ClassifierRun::new(&cfg, &data, run_cfg, &dev)?;
    let report = run.run(&a.out, &stop, |line| eprintln!("{line}"))?;
    println!("{}", report.text());
    Ok(())
}

pub fn bench_train(a: BenchArgs) -> Result<()> {
    set_threads(a.threads)?;
    let data = load_data(&a.data)?;
    let mc = model_config(&a.config)?;
    let r = time_steps(
        &mc,
        &data,
        &BenchOptions {
            batch: a.batch,
            micro_batch: a.micro_batch,
            steps: a.steps,
            max_context: a.max_context,
            seed: a.seed,
            dump: a.dump.as_deref(),
        },
    )?;
    println!("{}", r.text());
    Ok(())
}

#[derive(Args, Debug)]
pub struct ScoreArgs {
    /// A model folder (config.json + model.safetensors).
    #[arg(long, default_value = super::common::DEFAULT_MODEL)]
    model: PathBuf,
    /// A dataset folder; its validation split is scored.
    #[arg(long)]
    data: PathBuf,
    /// Validation pieces used (0: all).
    #[arg(long, default_value_t = 0)]
    pieces: usize,
    /// Context segments drawn on each side for the token-accuracy samples, 1..=N.
    #[arg(long, default_value_t = 5)]
    max_context: usize,
    /// Token-accuracy windows drawn per piece and corruption (the first draw is the one-draw
    /// score's): more draws narrow a comparison a few windows can decide. With more than one
    /// the infilled segments differ from the one-draw run's.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=100))]
    draws: u64,
    /// Segments masked and infilled per piece (0: skip the infilling score).
    #[arg(long, default_value_t = 2)]
    infill_per_piece: usize,
    /// Samples per infill, the one that fits the neighbours' pitch classes kept (the `infill`
    /// command's default; 1 = the original's single sample).
    #[arg(long, default_value_t = improvnet::refine::options::INFILL_CANDIDATES)]
    candidates: usize,
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Also write the report as Markdown here (written atomically).
    #[arg(long)]
    out: Option<PathBuf>,
    #[arg(long)]
    threads: Option<usize>,
}

pub fn score_model(a: ScoreArgs) -> Result<()> {
    set_threads(a.threads)?;
    let model = super::common::load_model(&a.model, super::common::Precision::F32)?;
    let data = load_data(&a.data)?;
    let cfg = HeldOutConfig {
        pieces: a.pieces,
        seed: a.seed,
        max_context: a.max_context,
        infill_per_piece: a.infill_per_piece,
        candidates: a.candidates,
        draws: a.draws as usize,
        ..HeldOutConfig::default()
    };
    let report = heldout::score(&model, &data, &cfg, &Device::Cpu, &|line| {
        eprintln!("{line}")
    })?;
    let text = format!(
        "Held-out scores of {} on {} ({} validation pieces{}, seed {}):\n\n{}",
        a.model.display(),
        a.data.display(),
        report.pieces,
        match a.draws {
            1 => String::new(),
            n => format!(" × {n} draws"),
        },
        a.seed,
        report.markdown()
    );
    println!("{text}");
    let losses = report.copy_losses();
    if !losses.is_empty() {
        let names: Vec<&str> = losses.iter().map(|c| c.name()).collect();
        println!(
            "The copy-input baseline is not beaten for: {}",
            names.join(", ")
        );
    }
    if let Some(out) = &a.out {
        improvnet::music::write_atomic(out, text.as_bytes())
            .with_context(|| format!("{}: cannot write the report", out.display()))?;
    }
    Ok(())
}

/// Timings of `steps` training steps (after one untimed warm-up step).
#[derive(Clone, Debug)]
struct BenchReport {
    params: usize,
    batch: usize,
    threads: usize,
    ms: Vec<f64>,
    samples: usize,
    tokens: usize,
    enc_tokens: usize,
    dec_tokens: usize,
    enc_len_mean: f64,
    dec_len_mean: f64,
}

impl BenchReport {
    fn median_ms(&self) -> f64 {
        let mut v = self.ms.clone();
        v.sort_by(|a, b| a.total_cmp(b));
        if v.is_empty() {
            0.0
        } else {
            v[v.len() / 2]
        }
    }

    fn text(&self) -> String {
        let total_s: f64 = self.ms.iter().sum::<f64>() / 1e3;
        format!(
            "train step, {} params, batch {}, {} threads, {} timed steps\n\
             median {:.0} ms/step (min {:.0}, max {:.0})\n\
             {:.2} samples/s, {:.0} tokens/s (encoder {:.0} + decoder {:.0} non-pad ids/s)\n\
             mean trimmed lengths: encoder {:.0}, decoder {:.0}",
            self.params,
            self.batch,
            self.threads,
            self.ms.len(),
            self.median_ms(),
            self.ms.iter().cloned().fold(f64::INFINITY, f64::min),
            self.ms.iter().cloned().fold(0.0, f64::max),
            self.samples as f64 / total_s,
            self.tokens as f64 / total_s,
            self.enc_tokens as f64 / total_s,
            self.dec_tokens as f64 / total_s,
            self.enc_len_mean,
            self.dec_len_mean,
        )
    }
}

/// What to time.
#[derive(Clone, Debug)]
struct BenchOptions<'a> {
    batch: usize,
    micro_batch: usize,
    /// Timed steps (after one untimed warm-up step).
    steps: usize,
    max_context: usize,
    seed: u64,
    /// Writes the timed batches (trimmed ids) as JSON for the PyTorch side of the bench.
    dump: Option<&'a Path>,
}

/// Runs `steps + 1` training steps of a fresh model.
fn time_steps(config: &Config, data: &train::Dataset, o: &BenchOptions) -> Result<BenchReport> {
    let BenchOptions {
        batch,
        micro_batch,
        steps,
        max_context,
        seed,
        dump,
    } = o.clone();
    let cfg = improvnet::train::trainer::TrainConfig {
        steps: steps as u64 + 1,
        batch,
        micro_batch,
        seed,
        max_context,
        warmup_ratio: 0.0,
        ..improvnet::train::trainer::TrainConfig::default()
    };
    let out = std::env::temp_dir().join("improvnet-bench-train");
    let mut t = improvnet::train::trainer::Trainer::new(
        config,
        None,
        data,
        "bench",
        cfg,
        &out,
        &candle_core::Device::Cpu,
    )?;
    let _ = data.pieces(train::Split::Train);
    let mut report = BenchReport {
        params: t.model.num_parameters(),
        batch,
        threads: candle_core::utils::get_num_threads(),
        ms: Vec::new(),
        samples: 0,
        tokens: 0,
        enc_tokens: 0,
        dec_tokens: 0,
        enc_len_mean: 0.0,
        dec_len_mean: 0.0,
    };
    let mut dumped = Vec::new();
    for i in 0..=steps {
        if dump.is_some() && i > 0 {
            let b = t.batch_for_step(t.step);
            let tb = improvnet::train::loss::trim(&b, false);
            dumped.push(serde_json::json!({
                "batch": tb.size, "enc_len": tb.enc_len, "dec_len": tb.dec_len,
                "enc_ids": tb.enc_ids, "enc_mask": tb.enc_mask, "dec_ids": tb.dec_ids,
                "labels": tb.labels, "loss_mask": tb.loss_mask,
            }));
        }
        let s = t.train_step()?;
        if i == 0 {
            continue;
        }
        let b = t.batch_for_step(s.step - 1);
        let enc: usize = b.attention_mask.iter().filter(|&&m| m != 0).count();
        report.ms.push(s.ms);
        report.samples += s.samples;
        report.tokens += s.tokens;
        report.enc_tokens += enc;
        report.dec_tokens += s.tokens - enc;
        report.enc_len_mean += s.enc_len as f64 / steps as f64;
        report.dec_len_mean += s.dec_len as f64 / steps as f64;
    }
    if let Some(path) = dump {
        let json = serde_json::json!({
            "config": serde_json::from_str::<serde_json::Value>(&config.to_json_string())
                .unwrap_or_default(),
            "batches": dumped,
        });
        std::fs::write(path, json.to_string())
            .with_context(|| format!("{}: cannot write", path.display()))?;
    }
    Ok(report)
}

/// The arguments of `improvnet plot-loss`.
#[derive(clap::Args, Debug)]
pub struct PlotLossArgs {
    /// A run folder of `improvnet train` (train_log.csv, valid_log.csv).
    pub run: PathBuf,
}

/// Draws a run's loss curve into RUN/loss.png and RUN/loss.svg.
pub fn plot_loss(run: &Path) -> Result<()> {
    for path in [
        improvnet::train::plot::write_loss_png(run)?,
        improvnet::train::plot::write_loss_svg(run)?,
    ] {
        println!("wrote {}", path.display());
    }
    Ok(())
}
