//! What several commands share: the shipped models' folders and their loading, the
//! renderings beside a generated file, the corruption-weight flags.
use std::path::Path;

use anyhow::{bail, Context, Result};
use candle_core::Device;

use improvnet::corrupt::Corruption;
use improvnet::model::{GenreClassifier, ImprovNetModel, ModelError};
use improvnet::music::{read_midi, Performance, Piece};
use improvnet::render::{self, RollOptions};

/// Reads a piano MIDI file into a performance and its T-segments (the error names the file).
pub fn load_piece(file: &Path) -> Result<(Performance, Piece)> {
    let performance = read_midi(file)?;
    let piece = performance.to_piece();
    Ok((performance, piece))
}

/// The model the commands use unless `--model` names another.
pub const DEFAULT_MODEL: &str = "models/improvnet-small";

/// `--precision`: the library's own [`Precision`], whose doc comments are the help text.
pub use improvnet::model::Precision;

/// What `model` computes in, in words ("bf16 encoder, int8 decoder weights").
pub fn describe_precision(model: &ImprovNetModel) -> String {
    let enc = if model.bf16_encoder_on() {
        "bf16"
    } else {
        "f32"
    };
    let dec = if model.int8_decoder_on() {
        "int8"
    } else {
        "f32"
    };
    format!("{enc} encoder, {dec} decoder weights")
}

/// Loads the model with generation's arithmetic set to `precision`, saying what to do when
/// there is none.
pub fn load_model(dir: &Path, precision: Precision) -> Result<ImprovNetModel> {
    let mut model = load_f32_model(dir)?;
    model.set_precision(precision).map_err(|e| match e {
        // What this CPU or model cannot do with that arithmetic: the option's error.
        ModelError::Input(why) => anyhow::anyhow!("--precision {why}"),
        other => anyhow::Error::new(other),
    })?;
    Ok(model)
}

fn load_f32_model(dir: &Path) -> Result<ImprovNetModel> {
    if !dir.join("config.json").is_file() {
        bail!(
            "{}: no model there (config.json missing); name a model folder (config.json + \
             model.safetensors) with --model DIR, such as the shipped models/improvnet-small \
             (run from the repository root), or train one with `improvnet train`",
            dir.display()
        );
    }
    ImprovNetModel::load(dir, &Device::Cpu)
        .with_context(|| format!("{}: cannot load the model", dir.display()))
}

/// The genre classifier that ships with the project (the default of `classify`).
pub const DEFAULT_CLASSIFIER: &str = "models/genre-classifier-tiny";

/// A genre classifier folder, with errors that say what a classifier folder holds.
pub fn load_classifier(dir: &Path) -> Result<GenreClassifier> {
    if !dir.join("config.json").is_file() {
        bail!(
            "{}: no genre classifier there (config.json missing); name a folder with \
             config.json + model.safetensors",
            dir.display()
        );
    }
    GenreClassifier::load(dir, &Device::Cpu)
        .with_context(|| format!("{}: cannot load the genre classifier", dir.display()))
}

/// `NAME=W` pairs as the nine weights (unnamed corruptions 1); `None` without pairs.
pub fn corruption_weights(pairs: &[String]) -> Result<Option<[f64; 9]>> {
    if pairs.is_empty() {
        return Ok(None);
    }
    let mut w = [1.0; 9];
    for pair in pairs {
        let (name, value) = pair
            .split_once('=')
            .with_context(|| format!("--corruption-weight {pair}: write NAME=W"))?;
        let c: Corruption = name
            .trim()
            .parse()
            .map_err(|e| anyhow::anyhow!("--corruption-weight {pair}: {e}"))?;
        let v: f64 = value
            .trim()
            .parse()
            .ok()
            .filter(|v: &f64| v.is_finite() && *v >= 0.0)
            .with_context(|| {
                format!("--corruption-weight {pair}: the weight must be a number, 0 or more")
            })?;
        w[c.index()] = v;
    }
    Ok(Some(w))
}

/// The peak of a written WAV: each file is normalised on its own, so an original and its
/// rewrite play at one peak level (their loudness difference is in `check`'s measures).
const WAV_PEAK_DBFS: f32 = -1.0;

/// Both renderings of `piece` that were asked for; shared with the generation commands.
pub fn write_renderings(
    piece: &Piece,
    original: Option<&Piece>,
    wav: Option<&Path>,
    soundfont: Option<&Path>,
    sample_rate_hz: u32,
    plot: Option<&Path>,
) -> Result<()> {
    if let Some(out) = wav {
        let sf = render::find_soundfont(soundfont)?;
        let mut audio = render::render_piece(piece, &sf, sample_rate_hz)?;
        audio.normalize(WAV_PEAK_DBFS);
        render::write_wav(&audio, out)?;
        println!(
            "wrote {} ({:.1} s, SoundFont {})",
            out.display(),
            audio.duration_s(),
            sf.display()
        );
    }
    if let Some(out) = plot {
        let opts = RollOptions {
            original_title: "original".into(),
            result_title: "result".into(),
            ..RollOptions::default()
        };
        let empty = Piece::default();
        let (top, opts) = match original {
            Some(o) => (o, opts),
            None => (
                &empty,
                RollOptions {
                    original_title: String::new(),
                    ..opts
                },
            ),
        };
        let changed = render::plot_piano_roll(top, piece, out, &opts)?;
        println!(
            "wrote {} ({} changed T-segments shaded)",
            out.display(),
            if original.is_some() { changed.len() } else { 0 }
        );
    }
    Ok(())
}

/// How training samples are drawn (spec §7), shared by `train` and `dataset samples` so that an
/// outside trainer gets the mix the shipped model practised.
#[derive(clap::Args, Debug, Clone)]
pub struct SamplingArgs {
    /// Context segments drawn on each side, 1..=N (the original: 5).
    #[arg(long, default_value_t = 5)]
    pub max_context: usize,
    /// Weight of one corruption in the training samples, NAME=W (repeatable; the others keep
    /// weight 1), e.g. `--corruption-weight permute_pitches=3` to practise it three times as
    /// often. Validation stays uniform.
    #[arg(long = "corruption-weight", value_name = "NAME=W")]
    pub corruption_weight: Vec<String>,
    /// Largest loudness shift of a training window, in velocity bins either way (0..=7): the
    /// window's velocities move together by a drawn number of bins that keeps them inside
    /// 15..=120, as transposition moves its pitches, so the rare loud and soft bins are
    /// practised too. 0 (default): the velocities as played, as the original.
    #[arg(long, default_value_t = 0, value_name = "BINS")]
    pub velocity_shift: u8,
    /// Largest register shift of a training window, in semitones either way (0..=48): after
    /// the piece's transposition the window moves again by a drawn shift that keeps its own
    /// pitches on the keyboard, so the lowest and highest octaves are practised too. 0
    /// (default): the piece's transposition alone, as the original.
    #[arg(long, default_value_t = 0, value_name = "SEMITONES")]
    pub register_shift: u8,
}

/// The median and the 95th percentile (nearest rank) of `values`; zeros when there are none.
pub fn median_p95(values: &[f64]) -> (f64, f64) {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let at = |p: f64| {
        sorted
            .get(((sorted.len() as f64 - 1.0) * p).round() as usize)
            .copied()
            .unwrap_or(0.0)
    };
    (at(0.5), at(0.95))
}
