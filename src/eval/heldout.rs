//! Held-out scores of a trained model against the trivial baselines it has to beat:
//!
//! - **token accuracy per corruption** (teacher forced, as in validation) against "copy the
//!   corrupted input": the prediction `<S> content <E>` read straight out of the encoder's
//!   corrupted block, compared position by position with the target. A model that has not
//!   learned to read its encoder loses to this for every corruption that keeps tokens.
//! - **infilling pitch-class KL** (spec §14) against "repeat the previous segment": a segment
//!   of a held-out piece is masked whole (`whole_mask`, context 4 + 4 as the infilling config)
//!   and sampled; its pitch-class histogram is compared with the original segment's, and so is
//!   the previous segment's.
//! - **does it read its input at all**: the same teacher-forced loss with every sample given the
//!   encoder input of the sample scored before it. A decoder that ignores its encoder (a collapsed
//!   encoder, see docs/experiments.md, "How we got here") scores the same either way.

use candle_core::Device;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::corrupt::{corrupt, Behaviour, CorruptionChoice};
use crate::eval::{histogram_kl, pitch_class_histogram};
use crate::model::ImprovNetModel;
use crate::music::{Piece, Segment};
use crate::refine::options::INFILL_CANDIDATES;
use crate::refine::{fit, Context, Engine, Fidelity, RefineOptions};
use crate::tokens::Corruption;
use crate::tokens::{
    velocity_index_exact, DUR_BASE, GENRE_BASE, ONSET_BASE, PAD, PIANO_BASE, VELOCITY_BINS,
};

use crate::train::dataset::{Dataset, Split};
use crate::train::loss::{label_margins, CLOSE_CALL_MARGIN};
use crate::train::rules::{copy_prediction, piano_note, rule_name, rule_prediction};
use crate::train::sample::{training_sample, Batch, Sample, SampleConfig};
use crate::train::trainer::{batch_loss, row_scores, Metric};
use crate::train::TrainError;

/// What to score and how.
#[derive(Clone, Debug)]
pub struct HeldOutConfig {
    /// Validation pieces used (0: all).
    pub pieces: usize,
    /// Seeds the samples, the masked segments and the sampling.
    pub seed: u64,
    /// Context segments drawn on each side for the token-accuracy samples, 1..=N.
    pub max_context: usize,
    /// Segments infilled per piece (0: no infilling score).
    pub infill_per_piece: usize,
    /// Context on each side of an infilled segment (4, as `config_infilling.yaml`).
    pub infill_context: usize,
    /// Sampling temperature of the infill (0.97, as the paper's infilling experiment).
    pub temperature: f32,
    /// Samples per infill, the one whose pitch classes fit the neighbours kept (the `infill`
    /// command's default; 1 = the original's single sample).
    pub candidates: usize,
    /// Token-accuracy windows drawn per piece and corruption. Why more than one: on 60 pieces
    /// a model and the copy can part by a dozen targets of 7,700, a few windows' worth; more
    /// draws narrow that. The first draw is the one-draw score's, so 1 (the default) keeps it.
    pub draws: usize,
}

impl Default for HeldOutConfig {
    fn default() -> Self {
        Self {
            pieces: 0,
            seed: 42,
            max_context: 5,
            infill_per_piece: 2,
            infill_context: 4,
            temperature: 0.97,
            candidates: INFILL_CANDIDATES,
            draws: 1,
        }
    }
}

/// What a target is judged on: a whole token of one note field, or one half of a
/// pitch-velocity token (tells a wrong pitch from a wrong loudness). Where a model gains or
/// loses against the copy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Field {
    PitchVelocity,
    /// A pitch-velocity target's pitch, whatever the velocity.
    Pitch,
    /// A pitch-velocity target's velocity, whatever the pitch.
    Velocity,
    Onset,
    Duration,
}

impl Field {
    pub const ALL: [Field; 5] = [
        Field::PitchVelocity,
        Field::Pitch,
        Field::Velocity,
        Field::Onset,
        Field::Duration,
    ];

    /// Whether the target `label` is judged on this field (`<S>`, `<E>` and the other
    /// specials are on none).
    fn judges(self, label: u32) -> bool {
        let range = match self {
            Field::PitchVelocity | Field::Pitch | Field::Velocity => PIANO_BASE..ONSET_BASE,
            Field::Onset => ONSET_BASE..DUR_BASE,
            Field::Duration => DUR_BASE..GENRE_BASE,
        };
        range.contains(&label)
    }

    /// Whether `guess` gets this field of `label` right.
    fn right(self, label: u32, guess: Option<u32>) -> bool {
        let part = |id: Option<u32>, half: fn((u8, u8)) -> u8| id.and_then(piano_note).map(half);
        match self {
            Field::Pitch => part(guess, |n| n.0) == part(Some(label), |n| n.0),
            Field::Velocity => part(guess, |n| n.1) == part(Some(label), |n| n.1),
            _ => guess == Some(label),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Field::PitchVelocity => "pitch-velocity",
            Field::Pitch => "pitch alone",
            Field::Velocity => "velocity alone",
            Field::Onset => "onset",
            Field::Duration => "duration",
        }
    }
}

/// Target tokens judged on one field, and how many of them the model and the copy get right.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct FieldScore {
    pub tokens: f64,
    pub model_correct: f64,
    pub copy_correct: f64,
}

/// One corruption's teacher-forced scores.
#[derive(Clone, Debug)]
pub struct CorruptionScore {
    pub corruption: Corruption,
    pub model: Metric,
    /// "Copy the corrupted input": `correct` / `tokens` is its token accuracy (no loss).
    pub copy: Metric,
    /// Both accuracies split by the target token's field, in [`Field::ALL`] order.
    pub by_field: [FieldScore; 5],
    /// A rule that knows no harmony and still beats the copy ([`rule_prediction`]): "count the
    /// block" for the permutations, "hear it again" for transposition; `None` for the others.
    /// What the model could reach by counting or remembering alone.
    pub rule: Option<Metric>,
    /// Where the model and the copy part ways, token by token.
    pub ledger: Ledger,
}

/// The targets exactly one of the model and the copy gets right, split into notes
/// (pitch-velocity tokens) and everything else. Why: a model a few tokens behind the copy is
/// either losing what the corruption left in place (a copy failure) or not repairing what it
/// moved, and only the second needs musical knowledge; the accuracies alone cannot tell.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Ledger {
    /// Notes the copy has right and the model misses.
    pub notes_lost: f64,
    /// Notes the copy has wrong and the model restores.
    pub notes_repaired: f64,
    /// Other targets (onsets, durations, `<T>`, `<E>`, …): the copy right, the model wrong.
    pub other_lost: f64,
    /// Other targets: the copy wrong, the model right.
    pub other_found: f64,
    /// Notes the copy has wrong that the model misses by less than [`CLOSE_CALL_MARGIN`] nats:
    /// the repairs nearest to being made.
    pub near_repairs: f64,
    /// Targets the copy has right that the model keeps by less than [`CLOSE_CALL_MARGIN`] nats:
    /// the losses nearest to happening.
    pub narrow_keeps: f64,
}

impl Ledger {
    /// Adds one sample: `copy` and `model` are predictions of its target positions, `margins`
    /// the model's label margins there ([`label_margins`]).
    fn add(&mut self, sample: &Sample, copy: &[u32], model: &[u32], margins: &[f32]) {
        for (i, &label) in sample.labels.iter().enumerate() {
            if label == PAD {
                continue;
            }
            let copy_right = copy.get(i) == Some(&label);
            let model_right = model.get(i) == Some(&label);
            let note = piano_note(label).is_some();
            let close = margins.get(i).is_some_and(|m| m.abs() < CLOSE_CALL_MARGIN);
            match (copy_right, model_right, close) {
                (false, false, true) if note => self.near_repairs += 1.0,
                (true, true, true) => self.narrow_keeps += 1.0,
                _ => {}
            }
            match (copy_right, model_right, note) {
                (true, false, true) => self.notes_lost += 1.0,
                (false, true, true) => self.notes_repaired += 1.0,
                (true, false, false) => self.other_lost += 1.0,
                (false, true, false) => self.other_found += 1.0,
                _ => {}
            }
        }
    }

    /// Targets the model gets right beyond the copy (negative: behind it).
    pub fn net(&self) -> f64 {
        self.notes_repaired + self.other_found - self.notes_lost - self.other_lost
    }
}

impl CorruptionScore {
    /// Whether the copy baseline is defined: the corruption leaves note tokens in the block.
    pub fn keeps_tokens(&self) -> bool {
        self.corruption != Corruption::WholeMask
    }
}

/// Infilling pitch-class KL, mean over the masked segments (lower is closer).
#[derive(Clone, Debug, Default)]
pub struct InfillScore {
    pub segments: usize,
    pub model_kl: f64,
    pub previous_kl: f64,
    /// The previous and the next segment together as the prediction.
    pub neighbours_kl: f64,
    /// Segments where the model's KL is below the repeated segment's.
    pub model_closer: usize,
    /// Mean notes per segment: original, model.
    pub original_notes: f64,
    pub model_notes: f64,
    /// The sampling temperature of the infills.
    pub temperature: f32,
    /// Samples drawn per infill, the best fit to the neighbours kept.
    pub candidates: usize,
}

/// Teacher-forced loss with each sample's own encoder input and with another sample's.
#[derive(Clone, Debug, Default)]
pub struct EncoderUse {
    pub own: Metric,
    pub swapped: Metric,
}

impl EncoderUse {
    /// How much worse the model does on another sample's input (nats per token); 0 when the
    /// decoder ignores the encoder.
    pub fn gap(&self) -> f64 {
        self.swapped.loss() - self.own.loss()
    }
}

/// The notes a corruption left in place (the copy gets them right) and how many of them the
/// model keeps, by loudness and by octave, over the corruptions that keep tokens. Why: a model
/// that copies a common note and loses a rare one (a loud bin, a high octave) falls behind the
/// copy on exactly the corruptions it should win, and the per-corruption scores hide it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct KeptNotes {
    /// (left in place, kept by the model) per velocity bin, in [`VELOCITY_BINS`] order.
    pub by_velocity: [(f64, f64); VELOCITY_BINS.len()],
    /// (left in place, kept by the model) per octave, `pitch / 12` (0..=10).
    pub by_octave: [(f64, f64); 11],
}

impl KeptNotes {
    /// Adds one sample: `copy` and `model` are predictions of its target positions.
    fn add(&mut self, sample: &Sample, copy: &[u32], model: &[u32]) {
        for (i, &label) in sample.labels.iter().enumerate() {
            let Some((pitch, velocity)) = piano_note(label) else {
                continue;
            };
            if copy.get(i) != Some(&label) {
                continue;
            }
            let kept = (model.get(i) == Some(&label)) as usize as f64;
            let row = velocity_index_exact(velocity);
            for cell in [
                row.map(|r| &mut self.by_velocity[r as usize]),
                Some(&mut self.by_octave[usize::from(pitch / 12)]),
            ]
            .into_iter()
            .flatten()
            {
                cell.0 += 1.0;
                cell.1 += kept;
            }
        }
    }

    /// Two one-row tables (the share kept, and how many notes), empty columns left out.
    fn markdown(&self) -> String {
        let table = |name: &str, cells: &[(f64, f64)], label: &dyn Fn(usize) -> String| {
            let used: Vec<usize> = (0..cells.len()).filter(|&i| cells[i].0 > 0.0).collect();
            let mut s = format!("| {name} |");
            for &i in &used {
                s += &format!(" {} |", label(i));
            }
            s += &format!("\n|---|{}\n| kept |", "---:|".repeat(used.len()));
            for &i in &used {
                s += &format!(" {:.3} |", cells[i].1 / cells[i].0);
            }
            s += "\n| notes |";
            for &i in &used {
                s += &format!(" {} |", cells[i].0);
            }
            s + "\n"
        };
        let octave = |o: usize| format!("{}–{}", o * 12, (o * 12 + 11).min(127));
        format!(
            "{}\n{}",
            table("velocity", &self.by_velocity, &|r| VELOCITY_BINS[r]
                .to_string()),
            table("pitches", &self.by_octave, &octave)
        )
    }
}

#[derive(Clone, Debug)]
pub struct HeldOutReport {
    pub pieces: usize,
    pub per_corruption: Vec<CorruptionScore>,
    /// The notes left in place that the model keeps, by loudness and octave.
    pub kept: KeptNotes,
    pub encoder_use: EncoderUse,
    pub infill: InfillScore,
}

impl HeldOutReport {
    /// Corruptions where the model's token accuracy is not above the copy baseline's.
    pub fn copy_losses(&self) -> Vec<Corruption> {
        self.per_corruption
            .iter()
            .filter(|s| s.keeps_tokens() && s.model.accuracy() <= s.copy.accuracy())
            .map(|s| s.corruption)
            .collect()
    }

    /// The report as Markdown tables (the model card's).
    pub fn markdown(&self) -> String {
        let mut s = String::from(
            "| corruption | samples | model loss | model token acc | copy-input acc | model wins |\n\
             |---|---:|---:|---:|---:|:---:|\n",
        );
        for c in &self.per_corruption {
            let (copy, wins) = if c.keeps_tokens() {
                (
                    format!("{:.3}", c.copy.accuracy()),
                    if c.model.accuracy() > c.copy.accuracy() {
                        "yes"
                    } else {
                        "no"
                    },
                )
            } else {
                ("n/a".to_string(), "n/a")
            };
            s += &format!(
                "| {} | {} | {:.3} | {:.3} | {} | {} |\n",
                c.corruption.name(),
                c.model.samples,
                c.model.loss(),
                c.model.accuracy(),
                copy,
                wins
            );
        }
        s += "\nBy the target token's field (model / copy accuracy):\n\n| corruption |";
        for f in Field::ALL {
            s += &format!(" {} |", f.name());
        }
        s += &format!("\n|---|{}\n", "---:|".repeat(Field::ALL.len()));
        for c in self.per_corruption.iter().filter(|c| c.keeps_tokens()) {
            s += &format!("| {} |", c.corruption.name());
            for f in &c.by_field {
                let n = f.tokens.max(1.0);
                s += &format!(" {:.3} / {:.3} |", f.model_correct / n, f.copy_correct / n);
            }
            s += "\n";
        }
        s += "\nAgainst the copy, target by target: notes (pitch-velocity tokens) the copy has \
              right and the model loses, notes the corruption moved or hid and the model \
              restores, the same for the other tokens, and the net count (the model's lead in \
              targets); then the close calls, within a nat of the model's argmax: notes it \
              misses that the copy misses too (repairs nearly made) and targets the copy has \
              right that it keeps by under a nat (losses nearly made):\n\n\
              | corruption | notes lost | notes repaired | other lost | other found | net | \
              near repairs | narrow keeps |\n\
              |---|---:|---:|---:|---:|---:|---:|---:|\n";
        for c in self.per_corruption.iter().filter(|c| c.keeps_tokens()) {
            let l = &c.ledger;
            s += &format!(
                "| {} | {} | {} | {} | {} | {:+} | {} | {} |\n",
                c.corruption.name(),
                l.notes_lost,
                l.notes_repaired,
                l.other_lost,
                l.other_found,
                l.net(),
                l.near_repairs,
                l.narrow_keeps
            );
        }
        let ruled: Vec<_> = self
            .per_corruption
            .iter()
            .filter_map(|c| c.rule.as_ref().map(|m| (c, m)))
            .collect();
        if !ruled.is_empty() {
            s += "\nRules that know no harmony, against the model and the copy: \"count the block\" \
                  (each pitch is the block's most common one not used yet), \"hear it again\" \
                  (a pitch moves to a neighbour within 5 semitones only where that neighbour \
                  sounds 12 times as often before it and around it):\n\n\
                  | corruption | rule | rule acc | model | copy |\n|---|---|---:|---:|---:|\n";
            for (c, m) in ruled {
                s += &format!(
                    "| {} | {} | {:.3} | {:.3} | {:.3} |\n",
                    c.corruption.name(),
                    rule_name(c.corruption).unwrap_or("-"),
                    m.accuracy(),
                    c.model.accuracy(),
                    c.copy.accuracy()
                );
            }
        }
        if self.kept.by_octave.iter().any(|c| c.0 > 0.0) {
            s += "\nNotes the corruption left in place (the copy keeps them all), kept by the \
                  model, by loudness and by octave (all corruptions that keep tokens):\n\n";
            s += &self.kept.markdown();
        }
        let e = &self.encoder_use;
        if e.swapped.samples > 0 {
            s += &format!(
                "\nReads its input: loss {:.3} with each sample's own encoder input, {:.3} with \
                 the previous sample's ({} samples): gap {:.3} nats/token (0: the decoder \
                 ignores the encoder).\n",
                e.own.loss(),
                e.swapped.loss(),
                e.swapped.samples,
                e.gap()
            );
        }
        let i = &self.infill;
        if i.segments > 0 {
            s += &format!(
                "\n| infilling ({} segments) | pitch-class KL | mean notes |\n|---|---:|---:|\n\
                 | original | 0 | {:.1} |\n| model (whole_mask, T={}, best of {}) | {:.3} | {:.1} |\n\
                 | repeat previous segment | {:.3} | |\n\
                 | previous and next segment together | {:.3} | |\n\n\
                 Model closer than the repeat on {} of {} segments.\n",
                i.segments,
                i.original_notes,
                i.temperature,
                i.candidates,
                i.model_kl,
                i.model_notes,
                i.previous_kl,
                i.neighbours_kl,
                i.model_closer,
                i.segments
            );
        }
        s
    }
}

/// Target positions the copy baseline gets right, and the positions counted (non-padding).
pub fn copy_score(sample: &Sample) -> (f64, f64) {
    prediction_score(
        sample,
        &copy_prediction(&sample.encoder_ids).unwrap_or_default(),
    )
}

/// Positions of `sample` that `pred` gets right, and the positions counted (non-padding).
fn prediction_score(sample: &Sample, pred: &[u32]) -> (f64, f64) {
    let counted = sample.labels.iter().enumerate().filter(|(_, &l)| l != PAD);
    counted.fold((0.0, 0.0), |(correct, count), (i, &label)| {
        (
            correct + (pred.get(i) == Some(&label)) as usize as f64,
            count + 1.0,
        )
    })
}

/// Adds one sample's note tokens to `fields`: `copy` and `model` hold the copy's and the
/// model's prediction for each target position (as the non-padding labels).
fn add_fields(fields: &mut [FieldScore; 5], sample: &Sample, copy: &[u32], model: &[u32]) {
    for (i, &label) in sample.labels.iter().enumerate() {
        for (field, f) in Field::ALL.into_iter().zip(fields.iter_mut()) {
            if field.judges(label) {
                f.tokens += 1.0;
                f.model_correct += field.right(label, model.get(i).copied()) as usize as f64;
                f.copy_correct += field.right(label, copy.get(i).copied()) as usize as f64;
            }
        }
    }
}

/// The engine settings of the infills. Candidates are judged by the neighbours only
/// (`refine::fit`): the masked segment itself, still in the piece handed to the engine, never
/// steers its own infill.
/// The model's own infill, as trained: free fidelity, no sanity rules (the segment being masked
/// still holds the original, which a strict template would hand back).
fn infill_options(config: &HeldOutConfig) -> RefineOptions {
    RefineOptions {
        temperature: config.temperature,
        candidates: config.candidates,
        fidelity: Fidelity::Free,
        sanity: false,
        ..RefineOptions::default()
    }
}

/// The scored pieces: the validation split's first `pieces` (0 = all).
fn pieces(data: &Dataset, n: usize) -> Vec<&crate::train::LabeledPiece> {
    let mut p = data.pieces(Split::Valid);
    if n > 0 {
        p.truncate(n);
    }
    p
}

/// Scores `model` on `data`'s validation split.
pub fn score(
    model: &ImprovNetModel,
    data: &Dataset,
    config: &HeldOutConfig,
    device: &Device,
    progress: &dyn Fn(&str),
) -> Result<HeldOutReport, TrainError> {
    // A bad infill setting fails now, not after the token-accuracy part.
    infill_options(config)
        .validate()
        .map_err(|e| TrainError::Config(format!("infilling: {e}")))?;
    let chosen = pieces(data, config.pieces);
    if chosen.is_empty() {
        return Err(TrainError::Config(
            "the dataset has no validation pieces to score".into(),
        ));
    }
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
    let mut per: Vec<CorruptionScore> = Corruption::ALL
        .iter()
        .map(|&c| CorruptionScore {
            corruption: c,
            model: Metric::default(),
            copy: Metric::default(),
            by_field: [FieldScore::default(); 5],
            rule: None,
            ledger: Ledger::default(),
        })
        .collect();
    let mut encoder_use = EncoderUse::default();
    let mut kept = KeptNotes::default();
    let mut previous: Option<Sample> = None;
    let draws = config.draws.max(1);
    let windows = (0..draws).flat_map(|d| chosen.iter().enumerate().map(move |kp| (d, kp)));
    for (draw, (k, p)) in windows {
        progress(&format!(
            "token accuracy: draw {}/{draws}, piece {}/{}",
            draw + 1,
            k + 1,
            chosen.len()
        ));
        for (ci, &c) in Corruption::ALL.iter().enumerate() {
            let cfg = SampleConfig {
                corruption: CorruptionChoice::Fixed(c),
                context: (1, config.max_context.max(1)),
                ..SampleConfig::default()
            };
            let sample = training_sample(&p.piece, p.genre, &cfg, &mut rng);
            let copy = copy_prediction(&sample.encoder_ids).unwrap_or_default();
            let (correct, count) = prediction_score(&sample, &copy);
            per[ci].copy.add(0.0, count, correct);
            if let Some(pred) = rule_prediction(&sample.encoder_ids, &sample.labels, c) {
                let (correct, count) = prediction_score(&sample, &pred);
                per[ci]
                    .rule
                    .get_or_insert_with(Metric::default)
                    .add(0.0, count, correct);
            }
            let own = batch_loss(
                model,
                &Batch::from_samples(vec![sample.clone()]),
                false,
                device,
            )?;
            let (nll, n, c) = (own.row_nll[0], own.row_count[0], own.row_correct[0]);
            per[ci].model.add(nll, n, c);
            let (pred, log_probs) = (&own.pred, &own.log_probs);
            add_fields(&mut per[ci].by_field, &sample, &copy, pred);
            // One row, cut to its own length: the trimmed labels are the sample's first ones.
            let margins = label_margins(log_probs, &sample.labels[..pred.len()])?;
            per[ci].ledger.add(&sample, &copy, pred, &margins);
            if per[ci].keeps_tokens() {
                kept.add(&sample, &copy, pred);
            }
            if let Some(prev) = previous.replace(sample.clone()) {
                let swapped = Sample {
                    encoder_ids: prev.encoder_ids,
                    attention_mask: prev.attention_mask,
                    ..sample
                };
                let batch = Batch::from_samples(vec![swapped]);
                for (_, nll, n, c) in row_scores(model, &batch, false, device)? {
                    encoder_use.swapped.add(nll, n, c);
                }
                encoder_use.own.add(nll, n, c);
            }
        }
    }
    let infill = infill_scores(model, &chosen, config, &mut rng, progress)?;
    Ok(HeldOutReport {
        pieces: chosen.len(),
        per_corruption: per,
        kept,
        encoder_use,
        infill,
    })
}

fn single(segment: &Segment) -> Piece {
    Piece {
        segments: vec![segment.clone()],
    }
}

fn infill_scores(
    model: &ImprovNetModel,
    chosen: &[&crate::train::LabeledPiece],
    config: &HeldOutConfig,
    rng: &mut ChaCha8Rng,
    progress: &dyn Fn(&str),
) -> Result<InfillScore, TrainError> {
    let engine = Engine::new(model, &infill_options(config));
    let mut s = InfillScore {
        temperature: config.temperature,
        candidates: config.candidates,
        ..InfillScore::default()
    };
    // The segments come from their own stream, so every model is scored on the same ones
    // however many random numbers its sampling draws.
    let mut choose = ChaCha8Rng::seed_from_u64(rng.gen());
    for (k, p) in chosen.iter().enumerate() {
        let segs = &p.piece.segments;
        // A masked segment needs a previous one (the baseline) and a following one (context).
        if segs.len() < 3 || config.infill_per_piece == 0 {
            continue;
        }
        progress(&format!("infilling: piece {}/{}", k + 1, chosen.len()));
        for _ in 0..config.infill_per_piece {
            let index = choose.gen_range(1..segs.len() - 1);
            let original = &segs[index];
            let block = corrupt(
                original,
                Corruption::WholeMask,
                p.genre,
                Behaviour::Fixed,
                rng,
            );
            let context = Context {
                before: config.infill_context,
                after: config.infill_context,
            };
            let notes = engine
                .regenerate(&p.piece, index, context, &block, false, rng)
                .map_err(|e| TrainError::Config(format!("infilling: {e}")))?;
            let generated = Segment {
                window: original.window,
                notes,
            };
            // Every baseline is measured against the same histogram of the original.
            let reference = pitch_class_histogram(&single(original));
            let kl_to = |segment: &Segment| {
                histogram_kl(&reference, &pitch_class_histogram(&single(segment)))
            };
            let model_kl = kl_to(&generated);
            let previous_kl = kl_to(&segs[index - 1]);
            let around = fit::neighbours(
                &p.piece,
                index,
                Context {
                    before: 1,
                    after: 1,
                },
            );
            s.neighbours_kl += histogram_kl(&reference, &around.unwrap_or_default());
            s.segments += 1;
            s.model_kl += model_kl;
            s.previous_kl += previous_kl;
            s.model_closer += (model_kl < previous_kl) as usize;
            s.original_notes += original.notes.len() as f64;
            s.model_notes += generated.notes.len() as f64;
        }
    }
    if s.segments > 0 {
        let n = s.segments as f64;
        s.model_kl /= n;
        s.previous_kl /= n;
        s.neighbours_kl /= n;
        s.original_notes /= n;
        s.model_notes /= n;
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tokens::{BOS, CORRUPTION_BASE, EOS, MASK, SEP};

    #[test]
    fn copy_prediction_reads_the_corrupted_block() {
        // context note tokens, then SEP skyline classical 10 11 12 SEP, then more context.
        let enc = [
            5,
            6,
            SEP,
            CORRUPTION_BASE + 7,
            GENRE_BASE,
            10,
            11,
            12,
            SEP,
            7,
        ];
        assert_eq!(copy_prediction(&enc).unwrap(), vec![BOS, 10, 11, 12, EOS]);
        assert_eq!(copy_prediction(&[5, 6]), None);
        let masked = [SEP, CORRUPTION_BASE + 2, GENRE_BASE, MASK, SEP];
        assert_eq!(copy_prediction(&masked).unwrap(), vec![BOS, MASK, EOS]);
    }

    #[test]
    fn fields_tell_a_wrong_pitch_from_a_wrong_velocity() {
        let pv = |vel_bin: u32, pitch: u32| PIANO_BASE + vel_bin * 128 + pitch;
        let (onset, dur) = (ONSET_BASE + 3, DUR_BASE + 5);
        let corruption = Corruption::IncorrectTransposition;
        let block = [pv(4, 63), onset, dur, pv(4, 67), onset, dur];
        let mut encoder_ids = vec![SEP, CORRUPTION_BASE + corruption.index() as u32, GENRE_BASE];
        encoder_ids.extend(block);
        encoder_ids.push(SEP);
        // The original: the first note was moved up a semitone, the second left alone.
        let labels = vec![BOS, pv(4, 62), onset, dur, pv(4, 67), onset, dur, EOS];
        let sample = Sample::padded(corruption, &encoder_ids, &labels);
        // The model repairs the first pitch at the wrong loudness and keeps the second.
        let model = [BOS, pv(6, 62), onset, dur, pv(4, 67), onset, dur, EOS];
        let copy = copy_prediction(&sample.encoder_ids).unwrap();
        let mut fields = [FieldScore::default(); 5];
        add_fields(&mut fields, &sample, &copy, &model);
        let score = |f: Field| {
            let s = fields[Field::ALL.iter().position(|&g| g == f).unwrap()];
            (s.tokens, s.model_correct, s.copy_correct)
        };
        assert_eq!(score(Field::PitchVelocity), (2.0, 1.0, 1.0));
        assert_eq!(score(Field::Pitch), (2.0, 2.0, 1.0));
        assert_eq!(score(Field::Velocity), (2.0, 1.0, 2.0));
        assert_eq!(score(Field::Onset), (2.0, 2.0, 2.0));
        assert_eq!(score(Field::Duration), (2.0, 2.0, 2.0));
        // The ledger: the first note is repaired in pitch but not loudness, so neither side has
        // it; a model that restores it exactly and drops an onset is level with the copy.
        // Margins far from the argmax: no close calls.
        let sure = [5.0; 8];
        let mut ledger = Ledger::default();
        ledger.add(&sample, &copy, &model, &sure);
        assert_eq!(ledger, Ledger::default());
        let mut exact = model;
        exact[1] = pv(4, 62);
        exact[2] = ONSET_BASE + 4;
        ledger.add(&sample, &copy, &exact, &sure);
        let want = Ledger {
            notes_repaired: 1.0,
            other_lost: 1.0,
            ..Ledger::default()
        };
        assert_eq!((ledger, ledger.net()), (want, 0.0));
        // Close calls: the moved first note missed by half a nat is a near repair; the second
        // note and the first onset, kept by 0.3 nats, are narrow keeps; the second onset, kept
        // by 1.5 nats, is not.
        let margins = [5.0, -0.5, 0.3, 5.0, 0.3, 1.5, 5.0, 5.0];
        let mut close = Ledger::default();
        close.add(&sample, &copy, &model, &margins);
        assert_eq!(
            (close.near_repairs, close.narrow_keeps, close.net()),
            (1.0, 2.0, 0.0)
        );
        // Kept notes: only the second was left in place (60 is row 4, 67 in octave 5), and the
        // model keeps it; a model that changes its loudness does not.
        let mut kept = KeptNotes::default();
        kept.add(&sample, &copy, &model);
        let mut dropped = model;
        dropped[4] = pv(3, 67);
        kept.add(&sample, &copy, &dropped);
        let mut want = KeptNotes::default();
        want.by_velocity[4] = (2.0, 1.0);
        want.by_octave[5] = (2.0, 1.0);
        assert_eq!(kept, want);
        assert_eq!(
            kept.markdown(),
            "| velocity | 60 |\n|---|---:|\n| kept | 0.500 |\n| notes | 2 |\n\n\
             | pitches | 60–71 |\n|---|---:|\n| kept | 0.500 |\n| notes | 2 |\n"
        );
    }
}
