//! The commands that look at a piece: inspect, tokenize, corrupt, and the measures (check, eval,
//! classify).
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use improvnet::corrupt::{corrupt as corrupt_segment, Behaviour, BlockElement, CorruptionChoice};
use improvnet::eval::style::{chord_shares, ssm_pearson, swing_ratio};
use improvnet::eval::{genre_probabilities, piece_stats, pitch_class_kl, transition_cosine};
use improvnet::music::{write_atomic, write_midi, Note, TimeDivision};
use improvnet::tokens::{decoder_target, piece_tokens, segment_tokens, Genre, DECODER_MAX_LEN};

use super::common::{load_classifier, load_piece};

fn fmt_time(ms: u64) -> String {
    format!("{}:{:04.1}", ms / 60_000, (ms % 60_000) as f64 / 1000.0)
}

pub fn inspect(file: &Path) -> Result<()> {
    let (performance, piece) = load_piece(file)?;
    let duration_ms = piece.duration_ms();
    let windows = piece.segments.last().map_or(0, |s| s.window as usize + 1);
    println!("{}", file.display());
    println!(
        "  duration   {} ({:.1} s, leading silence removed)",
        fmt_time(duration_ms),
        duration_ms as f64 / 1000.0
    );
    println!("  notes      {}", performance.notes.len());
    match performance.time_division {
        TimeDivision::TicksPerQuarter(tpq) => println!("  resolution {tpq} ticks per quarter note"),
        TimeDivision::Smpte {
            fps,
            ticks_per_frame,
        } => {
            println!(
                "  resolution SMPTE {fps} fps x {ticks_per_frame} ticks per frame (absolute time)"
            )
        }
    }
    let tempos: Vec<String> = performance
        .tempo_changes
        .iter()
        .map(|t| format!("{} at {}", fmt_bpm(t.us_per_beat), fmt_time(t.ms)))
        .collect();
    println!(
        "  tempo      {}",
        if tempos.is_empty() {
            "none (120 bpm assumed)".into()
        } else {
            tempos.join(", ")
        }
    );
    println!(
        "  segments   {} non-empty of {} five-second windows",
        piece.segments.len(),
        windows
    );
    let lens: Vec<usize> = piece
        .segments
        .iter()
        .map(|s| decoder_target(s).len())
        .collect();
    let over = piece
        .segments
        .iter()
        .filter(|s| 2 + 3 * s.notes.len() > DECODER_MAX_LEN)
        .count();
    println!(
        "  tokens     {} in the piece; per segment (with <S> <E>) min {} / median {} / max {}",
        piece_tokens(&piece).len(),
        lens.iter().min().unwrap_or(&0),
        median(&lens),
        lens.iter().max().unwrap_or(&0)
    );
    if over > 0 {
        println!("  note       {over} segment(s) exceed the decoder's {DECODER_MAX_LEN} tokens and would be cut");
    }
    let mut warnings: Vec<String> = performance.warnings.iter().map(|w| w.to_string()).collect();
    if let TimeDivision::Smpte { .. } = performance.time_division {
        warnings.push("SMPTE time division: timing is absolute, tempo events do not apply".into());
    }
    if warnings.is_empty() {
        println!("  warnings   none");
    }
    for w in &warnings {
        println!("  warning    {w}");
    }
    println!();
    println!(
        "  {:>4} {:>6} {:>8} {:>6} {:>7}",
        "seg", "window", "start", "notes", "tokens"
    );
    for (i, (seg, len)) in piece.segments.iter().zip(&lens).enumerate() {
        println!(
            "  {:>4} {:>6} {:>8} {:>6} {:>7}",
            i,
            seg.window,
            fmt_time(seg.start_ms()),
            seg.notes.len(),
            len
        );
    }
    Ok(())
}

fn fmt_bpm(us_per_beat: u32) -> String {
    format!("{:.1} bpm", 60_000_000.0 / us_per_beat.max(1) as f64)
}

fn median(xs: &[usize]) -> usize {
    let mut v = xs.to_vec();
    v.sort_unstable();
    v.get(v.len() / 2).copied().unwrap_or(0)
}

#[derive(Serialize)]
struct TokenFile<'a> {
    source: String,
    vocab_size: u32,
    /// The whole piece as the model reads it: notes as (onset, dur, pitch-velocity), `<T>` between windows.
    ids: Vec<u32>,
    segments: Vec<SegmentTokens<'a>>,
}

#[derive(Serialize)]
struct SegmentTokens<'a> {
    index: usize,
    window: u32,
    notes: &'a [Note],
    ids: Vec<u32>,
}

pub fn tokenize(file: &Path, out: &Path) -> Result<()> {
    let (_, piece) = load_piece(file)?;
    let doc = TokenFile {
        source: file.display().to_string(),
        vocab_size: improvnet::tokens::VOCAB_SIZE,
        ids: piece_tokens(&piece),
        segments: piece
            .segments
            .iter()
            .enumerate()
            .map(|(index, s)| SegmentTokens {
                index,
                window: s.window,
                notes: &s.notes,
                ids: segment_tokens(s),
            })
            .collect(),
    };
    let json = serde_json::to_vec_pretty(&doc)?;
    write_atomic(out, &json).with_context(|| format!("cannot write {}", out.display()))?;
    println!(
        "wrote {} ({} tokens, {} segments)",
        out.display(),
        doc.ids.len(),
        doc.segments.len()
    );
    Ok(())
}

/// What the model gets to see of a corrupted segment, made audible: masked pitches play a quiet
/// middle C (rhythm only), masked timing spreads the notes evenly over the window (pitches only),
/// a whole mask is silence.
fn audible(content: &[BlockElement]) -> Vec<Note> {
    let n = content.len().max(1) as u16;
    let step = (5000 / n).max(10) / 10 * 10;
    content
        .iter()
        .enumerate()
        .filter_map(|(i, el)| match el {
            BlockElement::Mask => None,
            BlockElement::Note(m) => {
                let (pitch, velocity) = match m.pitch_velocity {
                    Some(pv) => (
                        u8::try_from(pv.pitch).ok().filter(|p| *p <= 127)?,
                        pv.velocity,
                    ),
                    None => (60, 45),
                };
                let onset_ms = m.onset_ms.unwrap_or((i as u16 * step).min(4990));
                let dur_ms = m.dur_ms.unwrap_or(step.clamp(10, 250));
                Some(Note::new(pitch, velocity, onset_ms, dur_ms))
            }
        })
        .collect()
}

pub fn corrupt(
    file: &Path,
    segment: usize,
    kind: &str,
    seed: u64,
    faithful: bool,
    out: &Path,
) -> Result<()> {
    let (_, mut piece) = load_piece(file)?;
    let count = piece.segments.len();
    if segment >= count {
        bail!("{}: segment {segment} does not exist: the piece has {count} non-empty T-segments (0..{})", file.display(), count.saturating_sub(1));
    }
    let choice: CorruptionChoice = kind.parse().with_context(|| format!("--kind {kind}"))?;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let kind = choice.pick(&mut rng);
    let behaviour = if faithful {
        Behaviour::Faithful
    } else {
        Behaviour::Fixed
    };
    let original = piece.segments[segment].clone();
    let corrupted = corrupt_segment(&original, kind, Genre::Classical, behaviour, &mut rng);
    let notes = audible(&corrupted.content);
    println!(
        "segment {segment} ({} notes) corrupted by {kind}: {} notes audible",
        original.notes.len(),
        notes.len()
    );
    piece.segments[segment].notes = notes;
    write_midi(&piece, out)?;
    println!("wrote {}", out.display());
    Ok(())
}

/// P(genre) of each file as a Markdown table (spec §9 scoring: windows averaged per piece),
/// with the mean over the files.
pub fn classify(classifier: &Path, files: &[PathBuf]) -> Result<()> {
    if files.is_empty() {
        bail!("name at least one MIDI file to classify");
    }
    let clf = load_classifier(classifier)?;
    println!(
        "classifier {} (windows of {} segments each side)\n",
        classifier.display(),
        clf.config().classifier_context()
    );
    println!("| file | notes | P(classical) | P(pop) | P(jazz) |");
    println!("|---|---:|---:|---:|---:|");
    let mut sum = [0.0f64; 3];
    for file in files {
        let (performance, piece) = load_piece(file)?;
        let p = genre_probabilities(&clf, &piece).with_context(|| file.display().to_string())?;
        // The path as given: two files of one name in different folders stay apart.
        println!(
            "| {} | {} | {:.3} | {:.3} | {:.3} |",
            file.display(),
            performance.notes.len(),
            p[0],
            p[1],
            p[2]
        );
        for (acc, x) in sum.iter_mut().zip(p) {
            *acc += x;
        }
    }
    let n = files.len() as f64;
    println!(
        "| **mean of {}** | | {:.3} | {:.3} | {:.3} |",
        files.len(),
        sum[0] / n,
        sum[1] / n,
        sum[2] / n
    );
    Ok(())
}

pub fn check(
    original: &Path,
    generated: &Path,
    melody: Option<&Path>,
    json: bool,
    classifier: Option<&Path>,
) -> Result<()> {
    let (_, a) = load_piece(original)?;
    let (_, b) = load_piece(generated)?;
    let m = melody.map(load_piece).transpose()?.map(|(_, m)| m);
    let report = improvnet::eval::musical::check(&a, &b, m.as_ref());
    // P(genre) of both, beside the measures (the classifier alone is easy to fool).
    let genres = match classifier {
        Some(dir) => {
            let clf = load_classifier(dir)?;
            let pa =
                genre_probabilities(&clf, &a).with_context(|| original.display().to_string())?;
            let pb =
                genre_probabilities(&clf, &b).with_context(|| generated.display().to_string())?;
            Some((pa, pb))
        }
        None => None,
    };
    if json {
        let mut value = serde_json::to_value(&report)?;
        if let Some((pa, pb)) = genres {
            value["genre_original"] = serde_json::json!(pa);
            value["genre_generated"] = serde_json::json!(pb);
        }
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        print!("{}", report.markdown());
        if let Some((pa, pb)) = genres {
            for (i, genre) in Genre::ALL.iter().enumerate() {
                println!("| P({genre}) | {:.2} | {:.2} |", pb[i], pa[i]);
            }
        }
    }
    Ok(())
}

pub fn eval(original: &Path, generated: &Path, classifier: Option<&Path>) -> Result<()> {
    let (_, a) = load_piece(original)?;
    let (_, b) = load_piece(generated)?;
    let (sa, sb) = (piece_stats(&a), piece_stats(&b));
    println!("{:<22} {:>12} {:>12}", "", "original", "generated");
    println!(
        "{:<22} {:>12} {:>12}",
        "num_notes", sa.num_notes, sb.num_notes
    );
    println!(
        "{:<22} {:>12.2} {:>12.2}",
        "note_density (/5 s)", sa.note_density, sb.note_density
    );
    println!(
        "{:<22} {:>12} {:>12}",
        "used_pitch", sa.used_pitch, sb.used_pitch
    );
    println!(
        "{:<22} {:>12.3} {:>12.3}",
        "avg_ioi (s)", sa.avg_ioi_s, sb.avg_ioi_s
    );
    // Classifier-free style statistics (issue #7): "n/a" where a piece has too little to measure.
    let opt = |x: Option<f64>| x.map_or_else(|| "n/a".to_string(), |v| format!("{v:.3}"));
    println!(
        "{:<22} {:>12} {:>12}",
        "swing_ratio (8ths)",
        opt(swing_ratio(&a)),
        opt(swing_ratio(&b))
    );
    let (ca, cb) = (chord_shares(&a), chord_shares(&b));
    println!(
        "{:<22} {:>12} {:>12}",
        "chord_onsets (3+ pcs)",
        ca.map_or(0, |c| c.sonorities),
        cb.map_or(0, |c| c.sonorities)
    );
    println!(
        "{:<22} {:>12} {:>12}",
        "chords_7th_plus",
        opt(ca.map(|c| c.seventh_or_more)),
        opt(cb.map(|c| c.seventh_or_more))
    );
    println!(
        "{:<22} {:>12} {:>12}",
        "chords_9th_13th",
        opt(ca.map(|c| c.ninth_or_thirteenth)),
        opt(cb.map(|c| c.ninth_or_thirteenth))
    );
    println!(
        "pitch_class_kl (lower is closer)       {:.4}",
        pitch_class_kl(&a, &b)
    );
    println!(
        "pctm_cosine_sim (higher is closer)     {:.4}",
        transition_cosine(&a, &b)
    );
    println!(
        "ssm_pearson_r (higher is closer)       {}",
        ssm_pearson(&a, &b).map_or_else(|| "n/a".to_string(), |r| format!("{r:.4}"))
    );
    if let Some(dir) = classifier {
        let clf = load_classifier(dir)?;
        let pa = genre_probabilities(&clf, &a).with_context(|| original.display().to_string())?;
        let pb = genre_probabilities(&clf, &b).with_context(|| generated.display().to_string())?;
        for (i, genre) in Genre::ALL.iter().enumerate() {
            println!(
                "{:<22} {:>12.3} {:>12.3}",
                format!("P({genre})"),
                pa[i],
                pb[i]
            );
        }
    }
    Ok(())
}

/// The arguments of `improvnet inspect`.
#[derive(clap::Args, Debug)]
pub struct InspectArgs {
    /// A piano MIDI file.
    pub file: PathBuf,
}

/// The arguments of `improvnet tokenize`.
#[derive(clap::Args, Debug)]
pub struct TokenizeArgs {
    pub file: PathBuf,
    /// Output JSON file.
    #[arg(long)]
    pub out: PathBuf,
}

/// The arguments of `improvnet corrupt`.
#[derive(clap::Args, Debug)]
pub struct CorruptArgs {
    pub file: PathBuf,
    /// Index of the (non-empty) T-segment to corrupt, from 0.
    #[arg(long)]
    pub segment: usize,
    /// One of the nine corruptions (e.g. skyline) or `random`.
    #[arg(long)]
    pub kind: String,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Reproduce the original's corruption bugs (training parity) instead of the fixed versions.
    #[arg(long)]
    pub faithful: bool,
    /// Output MIDI file.
    #[arg(long)]
    pub out: PathBuf,
}

/// The arguments of `improvnet eval`.
#[derive(clap::Args, Debug)]
pub struct EvalArgs {
    pub original: PathBuf,
    pub generated: PathBuf,
    /// A genre classifier folder (config.json + model.safetensors): adds P(genre).
    #[arg(long)]
    pub classifier: Option<PathBuf>,
}

/// The arguments of `improvnet check`.
#[derive(clap::Args, Debug)]
pub struct CheckArgs {
    pub original: PathBuf,
    pub generated: PathBuf,
    /// The melody a harmonization was made from (often the same file as ORIGINAL).
    #[arg(long)]
    pub melody: Option<PathBuf>,
    /// Print JSON instead of a Markdown table.
    #[arg(long)]
    pub json: bool,
    /// A genre classifier folder: adds P(genre) of both pieces beside the measures.
    #[arg(long)]
    pub classifier: Option<PathBuf>,
}

/// The arguments of `improvnet classify`.
#[derive(clap::Args, Debug)]
pub struct ClassifyArgs {
    /// A genre classifier folder (config.json + model.safetensors).
    #[arg(long, default_value = super::common::DEFAULT_CLASSIFIER)]
    pub classifier: PathBuf,
    /// Piano MIDI files.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
}
