//! The command line: the `Cli`, its `Command`s and the dispatch. Thin: each command group has
//! its file, and what several share is in `common`.
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
    Inspect(piece::InspectArgs),
    /// Write the piece's model tokens (per T-segment and flattened) as JSON.
    Tokenize(piece::TokenizeArgs),
    /// Corrupt one T-segment and write the piece as MIDI, to hear what a corruption does.
    Corrupt(piece::CorruptArgs),
    /// Compare a generated piece with its original: the paper's symbolic metrics, and with
    /// `--classifier` the genre probabilities of both.
    Eval(piece::EvalArgs),
    /// Musical measures of a generated piece against its original: the top voice kept, defects
    /// (restrikes, holes, clusters, range), register, loudness and density, seams, pitch-class
    /// distance to the neighbours, swing; with --melody, how the melody was harmonized.
    Check(piece::CheckArgs),
    /// The genre classifier's P(classical), P(pop), P(jazz) for each file, as a Markdown table.
    Classify(piece::ClassifyArgs),
    /// Improvise on a piano piece: style transfer (--to jazz) or in its own genre (spec §10).
    ///
    /// Example: improvnet improvise nocturne.mid --to jazz --passes 4 --seed 7 --out output
    Improvise(generate::ImproviseArgs),
    /// Harmonize a monophonic melody in a genre's style (spec §11).
    ///
    /// Example: improvnet harmonize melody.mid --to jazz
    Harmonize(generate::HarmonizeArgs),
    /// Continue a prompt by some seconds of new music (spec §12).
    ///
    /// Example: improvnet continue prompt.mid --seconds 20
    Continue(generate::ContinueArgs),
    /// Replace a span of a piece with new music that fits its past and future (spec §12).
    ///
    /// Example: improvnet infill piece.mid --from 20s --to 30s
    Infill(generate::InfillArgs),
    /// A jazz corpus from chord charts: MMA song files and improvised right-hand lines.
    #[command(subcommand)]
    Corpus(corpus::CorpusCommand),
    /// Build training datasets from folders of MIDI files, and show their statistics.
    #[command(subcommand)]
    Dataset(dataset::DatasetCommand),
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
    PlotLoss(train::PlotLossArgs),
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
        Command::Inspect(a) => piece::inspect(&a.file),
        Command::Tokenize(a) => piece::tokenize(&a.file, &a.out),
        Command::Corrupt(a) => {
            piece::corrupt(&a.file, a.segment, &a.kind, a.seed, a.faithful, &a.out)
        }
        Command::Eval(a) => piece::eval(&a.original, &a.generated, a.classifier.as_deref()),
        Command::Check(a) => piece::check(
            &a.original,
            &a.generated,
            a.melody.as_deref(),
            a.json,
            a.classifier.as_deref(),
        ),
        Command::Classify(a) => piece::classify(&a.classifier, &a.files),
        Command::Improvise(a) => generate::improvise(a.input, a.to, a.common),
        Command::Harmonize(a) => {
            generate::harmonize(a.input, a.to, a.reharmonize, a.no_constraints, a.common)
        }
        Command::Continue(a) => generate::continue_prompt(a.input, a.seconds, a.genre, a.common),
        Command::Infill(a) => generate::infill(a.input, a.from, a.to, a.genre, a.common),
        Command::Corpus(command) => corpus::run(command),
        Command::Dataset(command) => dataset::run(command),
        Command::Render(args) => render::run(args),
        Command::Train(a) => train::train(a),
        Command::TrainClassifier(a) => train::train_classifier(a),
        Command::BenchMusic(a) => bench::run(a),
        Command::BenchModel(a) => bench::bench_model(a),
        Command::BenchTrain(a) => train::bench_train(a),
        Command::ScoreModel(a) => train::score_model(a),
        Command::PlotLoss(a) => train::plot_loss(&a.run),
    }
}
