//! `improvnet dataset build|stats`: training datasets from folders of MIDI files.
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::{ArgAction, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};

use improvnet::tokens::Genre;
use improvnet::train::{self, BuildOptions, Manifest, Progress, Source, Split, Totals};

#[derive(Subcommand)]
pub enum DatasetCommand {
    /// Read folders of MIDI files into a dataset: pieces.bin, manifest.json, report.txt/json.
    ///
    /// Example: improvnet dataset build --genre classical data/raw/hannds/train data/music21
    /// --genre jazz data/jazz --out data/mix-v1
    Build {
        #[command(flatten)]
        genre: GenreDirs,
        /// Output folder (created; an existing dataset there is replaced).
        #[arg(long)]
        out: PathBuf,
        /// Validation files per genre [default: 100, or 10% (at least 1) below 1000 files].
        #[arg(long)]
        valid: Option<usize>,
        /// Seed of the split shuffle.
        #[arg(long, default_value_t = train::SPLIT_SEED)]
        seed: u64,
    },
    /// Files, minutes and notes per genre and split, and the dropped files.
    Stats {
        /// A dataset folder written by `dataset build`.
        dir: PathBuf,
    },
    /// Write §7 training samples (the very ones `improvnet train` draws) to a file, for a
    /// trainer outside this tool, e.g. `scripts/train_torch.py` on a GPU. Format: see
    /// `src/train/export.rs`.
    ///
    /// Example: improvnet dataset samples data/mix-v1 --count 100000 --out /tmp/mix.samples
    Samples {
        /// A dataset folder written by `dataset build`.
        dir: PathBuf,
        /// Number of samples (one per training piece per epoch, as many epochs as it takes).
        #[arg(long)]
        count: u32,
        #[arg(long, default_value_t = 444)]
        seed: u64,
        /// Draw from the validation split instead of the training split.
        #[arg(long)]
        valid: bool,
        #[command(flatten)]
        sampling: super::common::SamplingArgs,
        /// Output file (written to a temporary file first, then renamed).
        #[arg(long)]
        out: PathBuf,
    },
}

/// `--genre GENRE DIR [DIR...]`, repeatable, grouped by occurrence. Derive cannot group values by
/// occurrence (`Vec<Vec<_>>` is unstable in clap 4), so this one argument is wired by hand.
#[derive(Clone, Debug)]
pub struct GenreDirs(Vec<Vec<String>>);

impl clap::FromArgMatches for GenreDirs {
    fn from_arg_matches(m: &clap::ArgMatches) -> Result<Self, clap::Error> {
        Ok(GenreDirs(
            m.get_occurrences::<String>("genre")
                .map(|occ| occ.map(|o| o.cloned().collect()).collect())
                .unwrap_or_default(),
        ))
    }

    fn update_from_arg_matches(&mut self, m: &clap::ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(m)?;
        Ok(())
    }
}

impl clap::Args for GenreDirs {
    fn augment_args(cmd: clap::Command) -> clap::Command {
        cmd.arg(
            clap::Arg::new("genre")
                .long("genre")
                .required(true)
                .num_args(2..)
                .value_names(["GENRE", "DIR"])
                .action(ArgAction::Append)
                .help(
                    "A genre (classical, pop, jazz) and the folders whose files carry it; \
                     repeatable. Folders are searched recursively for .mid and .midi files",
                ),
        )
    }

    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        Self::augment_args(cmd)
    }
}

pub fn run(command: DatasetCommand) -> Result<()> {
    match command {
        DatasetCommand::Build {
            genre,
            out,
            valid,
            seed,
        } => build(&genre.0, &out, valid, seed),
        DatasetCommand::Stats { dir } => stats(&dir),
        DatasetCommand::Samples {
            dir,
            count,
            seed,
            valid,
            sampling,
            out,
        } => {
            let config = train::SampleConfig {
                context: (1, sampling.max_context),
                corruption_weights: super::common::corruption_weights(&sampling.corruption_weight)?,
                max_velocity_shift: sampling.velocity_shift,
                max_register_shift: sampling.register_shift,
                ..train::SampleConfig::default()
            };
            config.check_options().map_err(anyhow::Error::msg)?;
            samples(&dir, count, seed, valid, &config, &out)
        }
    }
}

fn sources(groups: &[Vec<String>]) -> Result<Vec<Source>> {
    let mut sources: Vec<Source> = Vec::new();
    for group in groups {
        let (name, dirs) = group
            .split_first()
            .context("--genre needs a genre and folders")?;
        let genre: Genre = name
            .parse()
            .with_context(|| format!("--genre {name}: expected `--genre GENRE DIR [DIR...]`"))?;
        if dirs.is_empty() {
            bail!("--genre {name}: no folder given");
        }
        let dirs = dirs.iter().map(PathBuf::from);
        match sources.iter_mut().find(|s| s.genre == genre) {
            Some(s) => s.dirs.extend(dirs),
            None => sources.push(Source {
                genre,
                dirs: dirs.collect(),
            }),
        }
    }
    Ok(sources)
}

fn build(groups: &[Vec<String>], out: &Path, valid: Option<usize>, seed: u64) -> Result<()> {
    let sources = sources(groups)?;
    let bar = ProgressBar::hidden();
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} files {elapsed} {wide_msg}")
            .expect("valid template"),
    );
    let progress = |p: Progress<'_>| match p {
        Progress::Found { files } => {
            bar.set_length(files as u64);
            bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
        }
        Progress::Read { path } => {
            bar.set_message(
                path.file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
            );
            bar.inc(1);
        }
    };
    let dataset = train::build(&sources, &BuildOptions { valid, seed }, &progress)?;
    bar.finish_and_clear();
    train::save(&dataset, out)
        .with_context(|| format!("cannot write the dataset to {}", out.display()))?;
    let m = &dataset.manifest;
    println!(
        "wrote {}: {} files kept, {} dropped (see {})",
        out.display(),
        m.files.len(),
        m.dropped.len(),
        out.join(train::dataset::REPORT_TXT).display()
    );
    print_table(m);
    Ok(())
}

fn stats(dir: &Path) -> Result<()> {
    // A full load: checks pieces.bin (checksum, counts) against the manifest.
    let dataset = train::load(dir)?;
    let m = dataset.manifest;
    let bytes = std::fs::metadata(dir.join(train::dataset::PIECES_FILE)).map_or(0, |m| m.len());
    println!(
        "{}: {} files kept, {} dropped; split seed {}, validation {}",
        dir.display(),
        m.files.len(),
        m.dropped.len(),
        m.seed,
        match m.valid {
            Some(n) => format!("{n} per genre"),
            None => "default (100, or 10% below 1000 files)".into(),
        }
    );
    print_table(&m);
    println!(
        "storage    {} ({:.1} MB, {} pieces, checksum ok)",
        train::dataset::PIECES_FILE,
        bytes as f64 / 1e6,
        dataset.pieces.len()
    );
    Ok(())
}

fn row(label_genre: &str, label_split: &str, t: &Totals) {
    println!(
        "{:<10} {:<6} {:>6} {:>10.1} {:>7.2} {:>10} {:>9}",
        label_genre,
        label_split,
        t.files,
        t.minutes,
        t.minutes / 60.0,
        t.notes,
        t.segments
    );
}

fn sum<'a>(genre: Genre, split: Split, ts: impl Iterator<Item = &'a Totals>) -> Totals {
    let mut out = Totals {
        genre,
        split,
        files: 0,
        minutes: 0.0,
        notes: 0,
        segments: 0,
    };
    for t in ts {
        out.files += t.files;
        out.minutes += t.minutes;
        out.notes += t.notes;
        out.segments += t.segments;
    }
    out
}

fn print_table(m: &Manifest) {
    let totals = Manifest::compute_totals(&m.files);
    println!(
        "{:<10} {:<6} {:>6} {:>10} {:>7} {:>10} {:>9}",
        "genre", "split", "files", "minutes", "hours", "notes", "segments"
    );
    for genre in Genre::ALL {
        let of_genre: Vec<&Totals> = totals.iter().filter(|t| t.genre == genre).collect();
        if of_genre.is_empty() {
            continue;
        }
        for split in Split::ALL {
            let t = sum(
                genre,
                split,
                of_genre.iter().copied().filter(|t| t.split == split),
            );
            row(genre.name(), split.name(), &t);
        }
        row(
            genre.name(),
            "all",
            &sum(genre, Split::Train, of_genre.iter().copied()),
        );
    }
    for split in Split::ALL {
        let t = sum(
            Genre::Classical,
            split,
            totals.iter().filter(|t| t.split == split),
        );
        row("total", split.name(), &t);
    }
    row(
        "total",
        "all",
        &sum(Genre::Classical, Split::Train, totals.iter()),
    );
    let by_kind = m.dropped_by_kind();
    if by_kind.is_empty() {
        println!("dropped    0");
    } else {
        let parts: Vec<String> = by_kind.iter().map(|(k, n)| format!("{k} {n}")).collect();
        println!("dropped    {} ({})", m.dropped.len(), parts.join(", "));
    }
}

fn samples(
    dir: &Path,
    count: u32,
    seed: u64,
    valid: bool,
    config: &train::SampleConfig,
    out: &Path,
) -> Result<()> {
    let dataset = train::load(dir)?;
    let split = if valid { Split::Valid } else { Split::Train };
    let pieces = dataset.pieces(split);
    if pieces.is_empty() {
        bail!("{}: no pieces in the {} split", dir.display(), split.name());
    }
    let tmp = out.with_file_name(format!(
        ".{}.{}.tmp",
        out.file_name()
            .map_or("samples".into(), |n| n.to_string_lossy()),
        std::process::id()
    ));
    let file =
        std::fs::File::create(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
    let mut writer = std::io::BufWriter::new(file);
    let bar = ProgressBar::new(count as u64);
    let bytes = train::export::export_samples(&pieces, config, seed, count, &mut writer, |n| {
        bar.set_position(n)
    })
    .and_then(|n| {
        use std::io::Write;
        writer.flush()?;
        Ok(n)
    });
    bar.finish_and_clear();
    let bytes = match bytes {
        Ok(n) => n,
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            return Err(e).with_context(|| format!("cannot write {}", tmp.display()));
        }
    };
    drop(writer);
    std::fs::rename(&tmp, out)
        .with_context(|| format!("cannot move {} to {}", tmp.display(), out.display()))?;
    println!(
        "wrote {}: {count} samples from {} {} pieces ({:.1} MB)",
        out.display(),
        pieces.len(),
        split.name(),
        bytes as f64 / 1e6
    );
    Ok(())
}
