//! `improvnet`: the command-line front door. Thin: parses arguments and calls the library.
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};

mod cli;
mod cli_dataset;
mod cli_train;

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
    /// Compare a generated piece with its original: the paper's symbolic metrics.
    Eval {
        original: PathBuf,
        generated: PathBuf,
    },
    /// Build training datasets from folders of MIDI files, and show their statistics.
    Dataset {
        #[command(subcommand)]
        command: cli_dataset::DatasetCommand,
    },
    /// Train the ImprovNet model on a dataset (pre-training or fine-tuning), resumable.
    Train(cli_train::TrainArgs),
    /// Train the genre classifier (spec §9) with early stopping; held-out accuracy.
    TrainClassifier(cli_train::ClassifierArgs),
    /// Training throughput: median ms/step, samples/s and tokens/s on fixed batches.
    BenchTrain(cli_train::BenchArgs),
    /// Draw a run's loss curve (training and validation) into RUN/loss.svg.
    PlotLoss {
        /// A run folder of `improvnet train` (train_log.csv, valid_log.csv).
        run: PathBuf,
    },
}

fn main() -> ExitCode {
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
        Command::Inspect { file } => cli::inspect(&file),
        Command::Tokenize { file, out } => cli::tokenize(&file, &out),
        Command::Corrupt {
            file,
            segment,
            kind,
            seed,
            faithful,
            out,
        } => cli::corrupt(&file, segment, &kind, seed, faithful, &out),
        Command::Eval {
            original,
            generated,
        } => cli::eval(&original, &generated),
        Command::Dataset { command } => cli_dataset::run(command),
        Command::Train(a) => cli_train::train(a),
        Command::TrainClassifier(a) => cli_train::train_classifier(a),
        Command::BenchTrain(a) => cli_train::bench_train(a),
        Command::PlotLoss { run } => {
            let path = improvnet::train::plot::write_loss_svg(&run)?;
            println!("wrote {}", path.display());
            Ok(())
        }
    }
}
