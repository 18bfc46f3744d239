//! The command line: the `Cli`, its `Command`s and the dispatch. Thin: each command group has
//! its file, and what several share is in `common`.
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};

mod bench;
mod common;
mod corpus;
mod dataset;
mod generate;
mod piece;
mod render;
mod train;

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
    /// Compare a generated piece with its original: the paper's symbolic metrics, and with
    /// `--classifier` the genre probabilities of both.
    Eval {
        original: PathBuf,
        generated: PathBuf,
        /// A genre classifier folder (config.json + model.safetensors): adds P(genre).
        #[arg(long)]
        classifier: Option<PathBuf>,
    },
    /// Musical measures of a generated piece against its original: the top voice kept, defects
    /// (restrikes, holes, clusters, range), register, loudness and density, seams, pitch-class
    /// distance to the neighbours, swing; with --melody, how the melody was harmonized.
    Check {
        original: PathBuf,
        generated: PathBuf,
        /// The melody a harmonization was made from (often the same file as ORIGINAL).
        #[arg(long)]
        melody: Option<PathBuf>,
        /// Print JSON instead of a Markdown table.
        #[arg(long)]
        json: bool,
        /// A genre classifier folder: adds P(genre) of both pieces beside the measures.
        #[arg(long)]
        classifier: Option<PathBuf>,
    },
    /// The genre classifier's P(classical), P(pop), P(jazz) for each file, as a Markdown table.
    Classify {
        /// A genre classifier folder (config.json + model.safetensors).
        #[arg(long, default_value = common::DEFAULT_CLASSIFIER)]
        classifier: PathBuf,
        /// Piano MIDI files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Improvise on a piano piece: style transfer (--to jazz) or in its own genre (spec §10).
    ///
    /// Example: improvnet improvise nocturne.mid --to jazz --passes 4 --seed 7 --out output
    Improvise {
        /// A piano MIDI file (or generation.midi_file_path of --config).
        input: Option<PathBuf>,
        /// Target genre: classical, pop or jazz [recipe: jazz].
        #[arg(long)]
        to: Option<String>,
        #[command(flatten)]
        common: generate::Common,
    },
    /// Harmonize a monophonic melody in a genre's style (spec §11).
    ///
    /// Example: improvnet harmonize melody.mid --to jazz
    Harmonize {
        /// A MIDI file with one note at a time.
        input: Option<PathBuf>,
        /// Genre of the harmony: classical or jazz [recipe: classical].
        #[arg(long)]
        to: Option<String>,
        /// Really take the skyline of the current harmony in every pass.
        #[arg(long)]
        reharmonize: bool,
        /// Decode pass 1 without the chord constraint.
        #[arg(long)]
        no_constraints: bool,
        #[command(flatten)]
        common: generate::Common,
    },
    /// Continue a prompt by some seconds of new music (spec §12).
    ///
    /// Example: improvnet continue prompt.mid --seconds 20
    Continue {
        input: Option<PathBuf>,
        /// Length of the continuation, rounded up to 5 s windows [recipe: 20].
        #[arg(long)]
        seconds: Option<f64>,
        /// Genre token to condition on [recipe: classical].
        #[arg(long)]
        genre: Option<String>,
        #[command(flatten)]
        common: generate::Common,
    },
    /// Replace a span of a piece with new music that fits its past and future (spec §12).
    ///
    /// Example: improvnet infill piece.mid --from 20s --to 30s
    Infill {
        input: Option<PathBuf>,
        /// Start of the gap (20s, 1:05, 1500ms), rounded down to a 5 s window.
        #[arg(long)]
        from: Option<String>,
        /// End of the gap, rounded up to a 5 s window.
        #[arg(long)]
        to: Option<String>,
        /// Genre token to condition on [recipe: classical].
        #[arg(long)]
        genre: Option<String>,
        #[command(flatten)]
        common: generate::Common,
    },
    /// A jazz corpus from chord charts: MMA song files and improvised right-hand lines.
    Corpus {
        #[command(subcommand)]
        command: corpus::CorpusCommand,
    },
    /// Build training datasets from folders of MIDI files, and show their statistics.
    Dataset {
        #[command(subcommand)]
        command: dataset::DatasetCommand,
    },
    /// Render a MIDI file: WAV through a SoundFont, and/or a piano-roll PNG (optionally against
    /// the original, with the changed T-segments shaded).
    Render(render::RenderArgs),
    /// Train the ImprovNet model on a dataset (pre-training or fine-tuning), resumable.
    Train(train::TrainArgs),
    /// Train the genre classifier (spec §9) with early stopping; held-out accuracy.
    TrainClassifier(train::ClassifierArgs),
    /// The musical benchmark: improvise (two recipes), continue, infill on held-out pieces and
    /// harmonize on held-out melodies, measured musically, with the originals' values beside.
    BenchMusic(bench::BenchMusicArgs),
    /// Refinement speed on real music: per-segment time (encoder, decoding) and tokens per
    /// decoder forward per corruption, plain and speculative decoding side by side.
    BenchModel(bench::BenchModelArgs),
    /// Training throughput: median ms/step, samples/s and tokens/s on fixed batches.
    BenchTrain(train::BenchArgs),
    /// Score a model on a dataset's validation split against the trivial baselines: token
    /// accuracy per corruption vs copying the corrupted input, infilling pitch-class KL vs
    /// repeating the previous segment.
    ScoreModel(train::ScoreArgs),
    /// Draw a run's loss curve (training and validation) into RUN/loss.png and RUN/loss.svg.
    PlotLoss {
        /// A run folder of `improvnet train` (train_log.csv, valid_log.csv).
        run: PathBuf,
    },
}

pub fn main() -> ExitCode {
    // Errors are for musicians: the file and the problem, with their causes, no backtrace.
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Inspect { file } => piece::inspect(&file),
        Command::Tokenize { file, out } => piece::tokenize(&file, &out),
        Command::Corrupt {
            file,
            segment,
            kind,
            seed,
            faithful,
            out,
        } => piece::corrupt(&file, segment, &kind, seed, faithful, &out),
        Command::Eval {
            original,
            generated,
            classifier,
        } => piece::eval(&original, &generated, classifier.as_deref()),
        Command::Check {
            original,
            generated,
            melody,
            json,
            classifier,
        } => piece::check(
            &original,
            &generated,
            melody.as_deref(),
            json,
            classifier.as_deref(),
        ),
        Command::Classify { classifier, files } => piece::classify(&classifier, &files),
        Command::Improvise { input, to, common } => generate::improvise(input, to, common),
        Command::Harmonize {
            input,
            to,
            reharmonize,
            no_constraints,
            common,
        } => generate::harmonize(input, to, reharmonize, no_constraints, common),
        Command::Continue {
            input,
            seconds,
            genre,
            common,
        } => generate::continue_prompt(input, seconds, genre, common),
        Command::Infill {
            input,
            from,
            to,
            genre,
            common,
        } => generate::infill(input, from, to, genre, common),
        Command::Corpus { command } => corpus::run(command),
        Command::Dataset { command } => dataset::run(command),
        Command::Render(args) => render::run(args),
        Command::Train(a) => train::train(a),
        Command::TrainClassifier(a) => train::train_classifier(a),
        Command::BenchMusic(a) => bench::run(a),
        Command::BenchModel(a) => bench::bench_model(a),
        Command::BenchTrain(a) => train::bench_train(a),
        Command::ScoreModel(a) => train::score_model(a),
        Command::PlotLoss { run } => {
            for path in [
                improvnet::train::plot::write_loss_png(&run)?,
                improvnet::train::plot::write_loss_svg(&run)?,
            ] {
                println!("wrote {}", path.display());
            }
            Ok(())
        }
    }
}
