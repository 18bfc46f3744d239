//! Training samples built on the fly (spec §7) and genre-classifier windows (spec §9).
//!
//! One sample per piece per epoch. Every draw comes from the rng passed in, in this order:
//! transposition, context before, context after, corruption, segment, the loudness shift and the
//! register shift (each only when on), the corruption's own draws, then the context drop. The
//! same rng state gives the same sample.
//!
//! Transposition: the original adds `randint(-12, 12)` to every pitch of the piece. We draw the
//! shift uniformly from the shifts in `-max_transpose..=max_transpose` that keep every pitch of
//! the piece inside `pitch_range` (21..=108 by default, the 88 keys): the same uniform law
//! restricted to shifts that stay on the keyboard (equivalent to redrawing until one fits). A
//! piece that already fills the keyboard is not transposed; a piece with pitches outside the range
//! gets the allowed shifts that bring it inside, or 0 if none does. `pitch_range: (0, 127)` is
//! closest to the original, which only fails beyond MIDI's 0..=127.
//!
//! Loudness shift (off by default, as the original): with `max_velocity_shift` above 0 the
//! window's velocities move together by a whole number of velocity bins, drawn (after the
//! segment) the same way as the transposition, from the shifts that keep every velocity inside
//! 15..=120, the bins the tokenizer writes. Why: the loud and soft bins are rare (120 is 0.8% of
//! the notes here, 15 and 30 under 1%), so a model trained on the data as it is learns to copy
//! the common loudness and turns a rare one into a common one.
//!
//! Register shift (off by default): with `max_register_shift` above 0 the window moves again,
//! by semitones drawn the same way from the shifts that keep the *window's* pitches inside
//! `pitch_range`. Why: the piece-wide transposition barely moves a piece that spans the keyboard,
//! so the lowest and highest octaves stay rare, and a model that has seldom copied a low A turns
//! it into a common pitch. A window is narrower than its piece, so it can travel further.

use rand::Rng;

use crate::corrupt::{
    corrupt, random_context_drop, Behaviour, CorruptionChoice, PIANO_HIGH, PIANO_LOW,
};
use crate::music::{Piece, Segment};
use crate::tokens::{
    classifier_input, decoder_target, encoder_input_with_tail, pad, velocity_row, Corruption,
    Genre, Tail, CLASSIFIER_MAX_LEN, DECODER_MAX_LEN, ENCODER_MAX_LEN, VELOCITY_BINS,
};

use super::dataset::LabeledPiece;

/// One of the nine drawn with probability proportional to `weights` (in [`Corruption::ALL`]
/// order; their sum must be positive).
pub fn weighted_corruption(weights: &[f64; 9], rng: &mut impl Rng) -> Corruption {
    let mut x = rng.gen::<f64>() * weights.iter().sum::<f64>();
    for (c, &w) in Corruption::ALL.iter().zip(weights) {
        if x < w {
            return *c;
        }
        x -= w;
    }
    // Rounding at the very top: the last corruption with any weight.
    let last = weights.iter().rposition(|&w| w > 0.0).unwrap_or(0);
    Corruption::ALL[last]
}

/// How training samples are drawn.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SampleConfig {
    /// `Faithful` (default) reproduces the corruptions the released model was trained with.
    pub behaviour: Behaviour,
    /// `Random` (default): uniform over the nine, per sample.
    pub corruption: CorruptionChoice,
    /// Largest transposition, in semitones, either way (12).
    pub max_transpose: u8,
    /// Pitches a transposed piece must stay within, inclusive (21..=108).
    pub pitch_range: (u8, u8),
    /// Largest loudness shift, in velocity bins, either way (0: none, as the original).
    pub max_velocity_shift: u8,
    /// Largest register shift of the window, in semitones, either way, on top of the piece's
    /// transposition (0: none, as the original).
    pub max_register_shift: u8,
    /// Context segments on each side are drawn uniformly from this range, inclusive (1..=5).
    pub context: (usize, usize),
    /// Apply the original's hidden 10% context drop (spec §6.2); on for training.
    pub context_drop: bool,
    /// Relative weights of the nine corruptions (in [`Corruption::ALL`] order) when
    /// `corruption` is `Random`; `None` draws them uniformly, as the original.
    pub corruption_weights: Option<[f64; 9]>,
}

impl Default for SampleConfig {
    fn default() -> Self {
        Self {
            behaviour: Behaviour::Faithful,
            corruption: CorruptionChoice::Random,
            max_transpose: 12,
            pitch_range: (PIANO_LOW, PIANO_HIGH),
            max_velocity_shift: 0,
            max_register_shift: 0,
            context: (1, 5),
            context_drop: true,
            corruption_weights: None,
        }
    }
}

impl SampleConfig {
    /// Refuses sampling options outside their ranges (the context, the corruption weights, the
    /// loudness and register shifts), naming the flag that sets each: `improvnet train` and
    /// `improvnet dataset samples` take the same flags.
    pub fn check_options(&self) -> Result<(), String> {
        if self.context.1 == 0 {
            return Err(
                "--max-context 0: at least one context segment each side is drawn (1..=N)".into(),
            );
        }
        if let Some(w) = &self.corruption_weights {
            if w.iter().any(|x| !(x.is_finite() && *x >= 0.0)) || w.iter().sum::<f64>() <= 0.0 {
                return Err(format!(
                    "corruption weights {w:?}: each must be 0 or more, and one above 0"
                ));
            }
        }
        // Eight bins are written (15..=120): a shift of 7 moves the softest to the loudest.
        if self.max_velocity_shift > 7 {
            return Err(format!(
                "--velocity-shift {} must be within 0..=7 (velocity bins)",
                self.max_velocity_shift
            ));
        }
        // Beyond four octaves a window of one note would leave the keyboard either way.
        if self.max_register_shift > 48 {
            return Err(format!(
                "--register-shift {} must be within 0..=48 (semitones)",
                self.max_register_shift
            ));
        }
        Ok(())
    }
}

/// What was drawn for one sample (for logging and tests).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SampleMeta {
    pub genre: Genre,
    pub corruption: Corruption,
    /// Index of the corrupted (non-empty) segment.
    pub segment: usize,
    pub context_before: usize,
    pub context_after: usize,
    /// Semitones added to every pitch of the piece.
    pub transpose: i8,
    /// Velocity bins added to every velocity of the window.
    pub velocity_shift: i8,
    /// Semitones added to every pitch of the window, after `transpose`.
    pub register_shift: i8,
    pub tail: Tail,
}

/// One seq2seq training example, padded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sample {
    /// [`ENCODER_MAX_LEN`] ids, right-padded with 0.
    pub encoder_ids: Vec<u32>,
    /// `id != 0`, as the original.
    pub attention_mask: Vec<u32>,
    /// `<S>` segment `<E>`, [`DECODER_MAX_LEN`] ids, right-padded with 0. The original's loss
    /// covers all 512 positions, pads included (spec §5.2); mask `labels != 0` to deviate.
    pub labels: Vec<u32>,
    pub meta: SampleMeta,
}

/// The shifts (inclusive) that keep every pitch of `piece` inside `range`, within
/// `-max..=max`; `(0, 0)` when none exists or the piece is empty.
pub fn transpose_range(piece: &Piece, max: u8, range: (u8, u8)) -> (i8, i8) {
    let pitches = piece
        .segments
        .iter()
        .flat_map(|s| s.notes.iter().map(|n| n.pitch));
    shift_range(pitches, max, range)
}

/// The shifts (inclusive) within `-max..=max` that move every value into `range`; `(0, 0)`
/// when none does or there are no values.
fn shift_range(values: impl Iterator<Item = u8>, max: u8, range: (u8, u8)) -> (i8, i8) {
    let (lo, hi) = values.fold((u8::MAX, u8::MIN), |(lo, hi), p| (lo.min(p), hi.max(p)));
    if lo > hi {
        return (0, 0);
    }
    let max = max.min(127) as i16;
    let down = (range.0 as i16 - lo as i16).max(-max);
    let up = (range.1 as i16 - hi as i16).min(max);
    if down > up {
        (0, 0)
    } else {
        (down as i8, up as i8)
    }
}

/// The velocity bins the tokenizer writes (15..=120): a shift keeps the window inside them.
const VELOCITY_ROWS_WRITTEN: (u8, u8) = (1, 8);

/// The loudness shifts, in bins, that keep every velocity of `window` inside 15..=120, within
/// `-max..=max`; `(0, 0)` when none does or the window has no notes.
pub fn velocity_shift_range(window: &Piece, max: u8) -> (i8, i8) {
    let rows = window
        .segments
        .iter()
        .flat_map(|s| s.notes.iter().map(|n| velocity_row(n.velocity) as u8));
    shift_range(rows, max, VELOCITY_ROWS_WRITTEN)
}

/// Every velocity of `window` moved by `shift` bins (saturating at the vocabulary's bins).
pub fn shift_velocities(window: &mut Piece, shift: i8) {
    let last = VELOCITY_BINS.len() as i16 - 1;
    for n in window.segments.iter_mut().flat_map(|s| s.notes.iter_mut()) {
        let row = (velocity_row(n.velocity) as i16 + shift as i16).clamp(0, last);
        n.velocity = VELOCITY_BINS[row as usize];
    }
}

/// A uniform shift from [`transpose_range`].
pub fn draw_transpose(piece: &Piece, max: u8, range: (u8, u8), rng: &mut impl Rng) -> i8 {
    let (down, up) = transpose_range(piece, max, range);
    rng.gen_range(down..=up)
}

/// Segments `first..=last` of `piece`, every pitch moved by `shift` (saturating at 0..=127).
fn transposed_slice(piece: &Piece, first: usize, last: usize, shift: i8) -> Piece {
    let mut slice = Piece {
        segments: piece.segments[first..=last].to_vec(),
    };
    shift_pitches(&mut slice, shift);
    slice
}

/// Moves every pitch of `window` by `shift` semitones in place (saturating at 0..=127): the
/// register shift moves the window it already built instead of building another.
fn shift_pitches(window: &mut Piece, shift: i8) {
    for n in window.segments.iter_mut().flat_map(|s| s.notes.iter_mut()) {
        n.pitch = (n.pitch as i16 + shift as i16).clamp(0, 127) as u8;
    }
}

/// The whole piece moved by `shift` semitones (saturating at 0..=127).
pub fn transpose(piece: &Piece, shift: i8) -> Piece {
    if piece.segments.is_empty() {
        return Piece::default();
    }
    transposed_slice(piece, 0, piece.segments.len() - 1, shift)
}

fn randint(rng: &mut impl Rng, (lo, hi): (usize, usize)) -> usize {
    if lo >= hi {
        lo
    } else {
        rng.gen_range(lo..=hi)
    }
}

/// The training sample of spec §7 for one piece.
///
/// A piece without segments (never stored by the dataset builder) gives the block of an empty
/// segment and the target `<S> <E>`.
pub fn training_sample(
    piece: &Piece,
    genre: Genre,
    config: &SampleConfig,
    rng: &mut impl Rng,
) -> Sample {
    let shift = draw_transpose(piece, config.max_transpose, config.pitch_range, rng);
    let before = randint(rng, config.context);
    let after = randint(rng, config.context);
    let kind = match (config.corruption, config.corruption_weights) {
        (CorruptionChoice::Random, Some(w)) => weighted_corruption(&w, rng),
        (choice, _) => choice.pick(rng),
    };
    let n = piece.segments.len();
    let s = if n == 0 { 0 } else { rng.gen_range(0..n) };

    // Only the window's segments are transposed: the tokens are the same as transposing all.
    let (mut window, s_local) = if n == 0 {
        (Piece::default(), 0)
    } else {
        let first = s.saturating_sub(before);
        let last = s.saturating_add(after).min(n - 1);
        (transposed_slice(piece, first, last, shift), s - first)
    };
    // No draw when off, so the original's sample stream is unchanged.
    let velocity_shift = if config.max_velocity_shift > 0 {
        let (down, up) = velocity_shift_range(&window, config.max_velocity_shift);
        let v = rng.gen_range(down..=up);
        shift_velocities(&mut window, v);
        v
    } else {
        0
    };
    let register_shift = if config.max_register_shift > 0 {
        let (down, up) = transpose_range(&window, config.max_register_shift, config.pitch_range);
        let r = rng.gen_range(down..=up);
        shift_pitches(&mut window, r);
        r
    } else {
        0
    };
    let empty = Segment::default();
    let segment = window.segments.get(s_local).unwrap_or(&empty);
    let block = corrupt(segment, kind, genre, config.behaviour, rng);
    let tail = if config.context_drop {
        random_context_drop(piece, s, rng)
    } else {
        Tail::Keep
    };
    let encoder = encoder_input_with_tail(&window, s_local, before, after, &block, tail);
    let encoder = pad(&encoder, ENCODER_MAX_LEN);
    let labels = pad(&decoder_target(segment), DECODER_MAX_LEN).ids;
    Sample {
        encoder_ids: encoder.ids,
        attention_mask: encoder.attention_mask,
        labels,
        meta: SampleMeta {
            genre,
            corruption: kind,
            segment: s,
            context_before: before,
            context_after: after,
            transpose: shift,
            velocity_shift,
            register_shift,
            tail,
        },
    }
}

/// `B` samples as flat row-major arrays, ready for `Tensor::from_vec(.., (B, len), ..)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Batch {
    pub size: usize,
    /// `[size, ENCODER_MAX_LEN]`
    pub encoder_ids: Vec<u32>,
    /// `[size, ENCODER_MAX_LEN]`
    pub attention_mask: Vec<u32>,
    /// `[size, DECODER_MAX_LEN]`
    pub labels: Vec<u32>,
    pub meta: Vec<SampleMeta>,
}

impl Batch {
    pub fn from_samples(samples: Vec<Sample>) -> Self {
        let size = samples.len();
        let mut batch = Batch {
            size,
            encoder_ids: Vec::with_capacity(size * ENCODER_MAX_LEN),
            attention_mask: Vec::with_capacity(size * ENCODER_MAX_LEN),
            labels: Vec::with_capacity(size * DECODER_MAX_LEN),
            meta: Vec::with_capacity(size),
        };
        for s in samples {
            batch.encoder_ids.extend(s.encoder_ids);
            batch.attention_mask.extend(s.attention_mask);
            batch.labels.extend(s.labels);
            batch.meta.push(s.meta);
        }
        batch
    }

    /// Rows `start..end` as a batch of their own (micro-batches).
    pub fn rows(&self, start: usize, end: usize) -> Batch {
        let end = end.min(self.size);
        let start = start.min(end);
        let (e, d) = (ENCODER_MAX_LEN, DECODER_MAX_LEN);
        Batch {
            size: end - start,
            encoder_ids: self.encoder_ids[start * e..end * e].to_vec(),
            attention_mask: self.attention_mask[start * e..end * e].to_vec(),
            labels: self.labels[start * d..end * d].to_vec(),
            meta: self.meta[start..end].to_vec(),
        }
    }

    /// Row `i` of the encoder ids.
    pub fn encoder_row(&self, i: usize) -> &[u32] {
        &self.encoder_ids[i * ENCODER_MAX_LEN..(i + 1) * ENCODER_MAX_LEN]
    }

    /// Row `i` of the labels.
    pub fn labels_row(&self, i: usize) -> &[u32] {
        &self.labels[i * DECODER_MAX_LEN..(i + 1) * DECODER_MAX_LEN]
    }
}

/// One training sample per piece, in the order given.
pub fn training_batch(
    pieces: &[&LabeledPiece],
    config: &SampleConfig,
    rng: &mut impl Rng,
) -> Batch {
    Batch::from_samples(
        pieces
            .iter()
            .map(|p| training_sample(&p.piece, p.genre, config, rng))
            .collect(),
    )
}

/// An epoch: every piece index once, shuffled, cut into batches of `batch_size` (the last may be
/// shorter). One sample per piece per epoch, as the original.
pub fn epoch_batches(pieces: usize, batch_size: usize, rng: &mut impl Rng) -> Vec<Vec<usize>> {
    use rand::seq::SliceRandom;
    let mut order: Vec<usize> = (0..pieces).collect();
    order.shuffle(rng);
    order
        .chunks(batch_size.max(1))
        .map(|c| c.to_vec())
        .collect()
}

/// How genre-classifier windows are drawn (spec §9).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClassifierConfig {
    pub max_transpose: u8,
    pub pitch_range: (u8, u8),
    /// Segments before and after the window's centre (2 and 2).
    pub context_before: usize,
    pub context_after: usize,
    /// The 10% tail drop applies to the classifier too in the original.
    pub context_drop: bool,
    /// Vary each window's velocities and durations ([`vary_rendering`]), so the genre cannot
    /// be read from how a file was rendered (pedalled performance vs. generated comping).
    pub vary_rendering: bool,
}

impl Default for ClassifierConfig {
    fn default() -> Self {
        Self {
            max_transpose: 12,
            pitch_range: (PIANO_LOW, PIANO_HIGH),
            context_before: 2,
            context_after: 2,
            context_drop: true,
            vary_rendering: false,
        }
    }
}

/// One genre-classifier example: an uncorrupted window, padded to [`CLASSIFIER_MAX_LEN`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClassifierSample {
    pub ids: Vec<u32>,
    pub attention_mask: Vec<u32>,
    /// Classical 0, pop 1, jazz 2.
    pub label: u32,
    pub segment: usize,
    pub transpose: i8,
    pub tail: Tail,
}

/// A random window of `piece` for the genre classifier. Draws: transposition, segment, drop.
pub fn classifier_sample(
    piece: &Piece,
    genre: Genre,
    config: &ClassifierConfig,
    rng: &mut impl Rng,
) -> ClassifierSample {
    let shift = draw_transpose(piece, config.max_transpose, config.pitch_range, rng);
    let n = piece.segments.len();
    let s = if n == 0 { 0 } else { rng.gen_range(0..n) };
    let tail = if config.context_drop {
        random_context_drop(piece, s, rng)
    } else {
        Tail::Keep
    };
    let ids = if n == 0 {
        Vec::new()
    } else {
        let first = s.saturating_sub(config.context_before);
        let last = s.saturating_add(config.context_after).min(n - 1);
        let mut window = transposed_slice(piece, first, last, shift);
        if config.vary_rendering {
            vary_rendering(&mut window, rng);
        }
        classifier_input(
            &window,
            s - first,
            config.context_before,
            config.context_after,
            tail,
        )
    };
    let padded = pad(&ids, CLASSIFIER_MAX_LEN);
    ClassifierSample {
        ids: padded.ids,
        attention_mask: padded.attention_mask,
        label: genre.index() as u32,
        segment: s,
        transpose: shift,
        tail,
    }
}

/// A different rendering of the same music: velocities through a random affine map (softer or
/// louder, flatter or more contrasted) and durations scaled by one random factor per window
/// (dry to pedalled), each with a little per-note spread, then snapped to the token grids.
///
/// Why: the classical side here is mostly pedalled human performances and the jazz side
/// generated comping, so an unaugmented classifier learns "long, dynamic notes = classical"; the
/// same performed rag reads 0.22 jazz, its dry score 0.98 (see the classifier's model card).
pub fn vary_rendering(window: &mut Piece, rng: &mut impl Rng) {
    use crate::music::quantize::{quantize_duration, quantize_velocity};
    let gain = rng.gen_range(0.5..1.5);
    let shift = rng.gen_range(-25.0..25.0);
    let stretch = rng.gen_range(-1.2f64..0.8).exp();
    for seg in &mut window.segments {
        for n in &mut seg.notes {
            let v = (n.velocity as f64 - 64.0) * gain + 64.0 + shift + rng.gen_range(-6.0..6.0);
            n.velocity = quantize_velocity(v.round().clamp(1.0, 127.0) as u8);
            let d = n.dur_ms as f64 * stretch * rng.gen_range(-0.2f64..0.2).exp();
            n.dur_ms = quantize_duration(d.round().max(0.0) as u64);
        }
    }
}

/// Classifier examples as flat `[size, CLASSIFIER_MAX_LEN]` arrays and `[size]` labels.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClassifierBatch {
    pub size: usize,
    pub ids: Vec<u32>,
    pub attention_mask: Vec<u32>,
    pub labels: Vec<u32>,
}

/// One classifier window per piece, in the order given.
pub fn classifier_batch(
    pieces: &[&LabeledPiece],
    config: &ClassifierConfig,
    rng: &mut impl Rng,
) -> ClassifierBatch {
    let mut batch = ClassifierBatch {
        size: pieces.len(),
        ids: Vec::with_capacity(pieces.len() * CLASSIFIER_MAX_LEN),
        attention_mask: Vec::with_capacity(pieces.len() * CLASSIFIER_MAX_LEN),
        labels: Vec::with_capacity(pieces.len()),
    };
    for p in pieces {
        let s = classifier_sample(&p.piece, p.genre, config, rng);
        batch.ids.extend(s.ids);
        batch.attention_mask.extend(s.attention_mask);
        batch.labels.push(s.label);
    }
    batch
}

/// A test sample of `corruption`: `enc` and `labels` padded to the model's lengths, nothing
/// shifted and no context counted (tests of the loss, the rules and the held-out ledger).
#[cfg(test)]
impl Sample {
    pub(crate) fn padded(corruption: Corruption, enc: &[u32], labels: &[u32]) -> Sample {
        let mut encoder_ids = enc.to_vec();
        encoder_ids.resize(ENCODER_MAX_LEN, crate::tokens::PAD);
        let mut labels = labels.to_vec();
        labels.resize(DECODER_MAX_LEN, crate::tokens::PAD);
        Sample {
            attention_mask: encoder_ids
                .iter()
                .map(|&x| (x != crate::tokens::PAD) as u32)
                .collect(),
            encoder_ids,
            labels,
            meta: SampleMeta {
                genre: Genre::Classical,
                corruption,
                segment: 0,
                context_before: 0,
                context_after: 0,
                transpose: 0,
                velocity_shift: 0,
                register_shift: 0,
                tail: Tail::Keep,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::music::Note;
    use crate::tokens::velocity_index_exact;
    use rand::SeedableRng;

    #[test]
    fn a_varied_rendering_keeps_the_notes_and_moves_dynamics_and_lengths() {
        let original = Piece {
            segments: vec![Segment {
                window: 0,
                notes: (0..40)
                    .map(|k| Note::new(40 + k as u8, 60 + (k % 4) as u8 * 15, k * 100, 400))
                    .collect(),
            }],
        };
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        let mut mean_durations = Vec::new();
        for _ in 0..20 {
            let mut w = original.clone();
            vary_rendering(&mut w, &mut rng);
            let (a, b) = (&original.segments[0].notes, &w.segments[0].notes);
            assert_eq!(a.len(), b.len());
            for (x, y) in a.iter().zip(b) {
                assert_eq!((x.pitch, x.onset_ms), (y.pitch, y.onset_ms));
                assert_eq!(y.velocity % 15, 0, "velocity {} off the grid", y.velocity);
                assert!(y.velocity >= 15);
                assert!(y.dur_ms % 10 == 0 && (10..=5000).contains(&y.dur_ms));
            }
            mean_durations.push(b.iter().map(|n| n.dur_ms as f64).sum::<f64>() / 40.0);
        }
        let lo = mean_durations.iter().cloned().fold(f64::MAX, f64::min);
        let hi = mean_durations.iter().cloned().fold(0.0, f64::max);
        // exp(-1.2) .. exp(0.8) of 400 ms: dry staccato to pedalled.
        assert!(lo < 250.0 && hi > 600.0, "{lo} .. {hi}");
    }

    #[test]
    fn corruption_weights_set_how_often_each_is_drawn() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let mut only = [0.0; 9];
        only[Corruption::PermutePitches.index()] = 2.0;
        for _ in 0..200 {
            assert_eq!(
                weighted_corruption(&only, &mut rng),
                Corruption::PermutePitches
            );
        }
        // Transposition three times as often as each of the other eight: 3/11 of the draws.
        let mut w = [1.0; 9];
        let t = Corruption::IncorrectTransposition.index();
        w[t] = 3.0;
        let mut counts = [0usize; 9];
        for _ in 0..11_000 {
            counts[weighted_corruption(&w, &mut rng).index()] += 1;
        }
        assert!((2800..3200).contains(&counts[t]), "{counts:?}");
        assert!(counts.iter().all(|&n| n > 800), "{counts:?}");
    }

    /// A piece of consecutive segments, one per `values` entry, its notes from `notes(i, value)`.
    fn segments(values: &[u8], notes: impl Fn(usize, u8) -> Vec<Note>) -> Piece {
        Piece {
            segments: values
                .iter()
                .enumerate()
                .map(|(i, &v)| Segment {
                    window: i as u32,
                    notes: notes(i, v),
                })
                .collect(),
        }
    }

    fn piece(pitches: &[u8]) -> Piece {
        segments(pitches, |_, p| vec![Note::new(p, 90, 0, 500)])
    }

    #[test]
    fn transpose_range_keeps_the_keyboard() {
        assert_eq!(transpose_range(&piece(&[60, 72]), 12, (21, 108)), (-12, 12));
        assert_eq!(transpose_range(&piece(&[25, 100]), 12, (21, 108)), (-4, 8));
        assert_eq!(transpose_range(&piece(&[21, 108]), 12, (21, 108)), (0, 0));
        // Below the keyboard: only the shifts that bring it inside.
        assert_eq!(transpose_range(&piece(&[15, 60]), 12, (21, 108)), (6, 12));
        // No shift fits: none.
        assert_eq!(transpose_range(&piece(&[5, 120]), 12, (21, 108)), (0, 0));
        assert_eq!(transpose_range(&Piece::default(), 12, (21, 108)), (0, 0));
        assert_eq!(transpose_range(&piece(&[100]), 12, (0, 127)), (-12, 12));
    }

    #[test]
    fn window_slice_gives_the_same_tokens_as_the_whole_piece() {
        let p = piece(&[60, 62, 64, 65, 67, 69, 71, 72]);
        let block = corrupt(
            &p.segments[4],
            Corruption::WholeMask,
            Genre::Jazz,
            Behaviour::Fixed,
            &mut rand::thread_rng(),
        );
        let whole = encoder_input_with_tail(&p, 4, 2, 5, &block, Tail::Drop);
        let slice = transposed_slice(&p, 2, 7, 0);
        assert_eq!(
            encoder_input_with_tail(&slice, 2, 2, 5, &block, Tail::Drop),
            whole
        );
    }

    fn loud(velocities: &[u8]) -> Piece {
        segments(velocities, |i, v| {
            vec![
                Note::new(60 + i as u8, v, 0, 500),
                Note::new(64, v, 100, 300),
            ]
        })
    }

    #[test]
    fn velocity_shift_range_keeps_the_written_bins() {
        // 60 and 90 are rows 4 and 6 of 0, 15, ..., 120, 127.
        assert_eq!(velocity_shift_range(&loud(&[60, 90]), 2), (-2, 2));
        assert_eq!(velocity_shift_range(&loud(&[60, 90]), 7), (-3, 2));
        assert_eq!(velocity_shift_range(&loud(&[105]), 3), (-3, 1));
        // Already from the softest to the loudest written bin: no shift.
        assert_eq!(velocity_shift_range(&loud(&[15, 120]), 3), (0, 0));
        assert_eq!(velocity_shift_range(&Piece::default(), 3), (0, 0));
        // A velocity off the grid counts as its nearest bin (70 -> 75, row 5).
        assert_eq!(velocity_shift_range(&loud(&[70]), 7), (-4, 3));
        let mut p = loud(&[70, 120]);
        shift_velocities(&mut p, -2);
        let v: Vec<u8> = p
            .segments
            .iter()
            .flat_map(|s| s.notes.iter().map(|n| n.velocity))
            .collect();
        assert_eq!(v, [45, 45, 90, 90]);
    }

    #[test]
    fn a_loudness_shift_moves_the_window_and_its_target_together() {
        use crate::train::rules::piano_note;
        let p = loud(&[45, 60, 75, 90, 60, 45, 75, 90]);
        let config = SampleConfig {
            corruption: CorruptionChoice::Fixed(Corruption::IncorrectTransposition),
            max_velocity_shift: 3,
            context_drop: false,
            ..SampleConfig::default()
        };
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(9);
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..200 {
            let s = training_sample(&p, Genre::Classical, &config, &mut rng);
            let shift = s.meta.velocity_shift;
            seen.insert(shift);
            let row = |v: u8| velocity_index_exact(v).unwrap() as i8;
            // The target is the segment as played, every velocity `shift` bins away, in order.
            let want: Vec<(u8, i8)> = p.segments[s.meta.segment]
                .notes
                .iter()
                .map(|n| {
                    (
                        (n.pitch as i16 + s.meta.transpose as i16) as u8,
                        row(n.velocity) + shift,
                    )
                })
                .collect();
            let got: Vec<(u8, i8)> = s
                .labels
                .iter()
                .filter_map(|&id| piano_note(id))
                .map(|(pitch, v)| (pitch, row(v)))
                .collect();
            assert_eq!(got, want, "shift {shift}");
            // The encoder's notes (context and block) are all inside 15..=120.
            for id in s.encoder_ids.iter().filter_map(|&id| piano_note(id)) {
                assert!(
                    (15..=120).contains(&id.1),
                    "velocity {} in the encoder",
                    id.1
                );
            }
        }
        // The range is the window's: the whole piece (rows 3..=6) allows -2..=2, a window of
        // 60 and 75 only (rows 4 and 5) -3..=3. Each is drawn.
        assert_eq!(
            seen.into_iter().collect::<Vec<_>>(),
            [-3, -2, -1, 0, 1, 2, 3]
        );
    }

    #[test]
    fn a_register_shift_moves_the_window_within_the_keyboard() {
        use crate::train::rules::piano_note;
        // The piece spans the keyboard (21 and 108), so its own transposition is always 0; each
        // window is narrower and may travel.
        let pitches = [21u8, 40, 60, 64, 67, 72, 60, 108];
        let p = piece(&pitches);
        let config = SampleConfig {
            corruption: CorruptionChoice::Fixed(Corruption::PermutePitches),
            max_register_shift: 24,
            context: (1, 1),
            context_drop: false,
            ..SampleConfig::default()
        };
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        let (mut lowest, mut highest) = (0i8, 0i8);
        for _ in 0..300 {
            let s = training_sample(&p, Genre::Classical, &config, &mut rng);
            assert_eq!(s.meta.transpose, 0);
            let r = s.meta.register_shift;
            let k = s.meta.segment;
            // The window is the block and one segment each side (fewer at the ends).
            let window = &pitches[k.saturating_sub(1)..(k + 2).min(pitches.len())];
            let (lo, hi) = (*window.iter().min().unwrap(), *window.iter().max().unwrap());
            let allowed = (21i16 - lo as i16).max(-24)..=(108i16 - hi as i16).min(24);
            assert!(
                allowed.contains(&(r as i16)),
                "shift {r} for window {window:?}"
            );
            let target: Vec<u8> = s
                .labels
                .iter()
                .filter_map(|&id| piano_note(id))
                .map(|n| n.0)
                .collect();
            assert_eq!(target, [(window[k.min(1)] as i16 + r as i16) as u8]);
            for (pitch, _) in s.encoder_ids.iter().filter_map(|&id| piano_note(id)) {
                assert!((21..=108).contains(&pitch), "pitch {pitch} in the encoder");
            }
            lowest = lowest.min(r);
            highest = highest.max(r);
        }
        // Windows of the middle segments travel the full 24 either way.
        assert_eq!((lowest, highest), (-24, 24));
    }

    #[test]
    fn a_shift_that_is_off_draws_nothing() {
        // Off, every shift is 0 and the same rng gives the same samples; on, the extra draw
        // changes the stream. For the loudness shift and for the register shift.
        type Shift = fn(&SampleMeta) -> i8;
        let cases: [(Piece, SampleConfig, Shift, u64); 2] = [
            (
                loud(&[45, 60, 75, 90, 60, 45, 75, 90]),
                SampleConfig {
                    max_velocity_shift: 1,
                    ..SampleConfig::default()
                },
                |m| m.velocity_shift,
                3,
            ),
            (
                piece(&[50, 55, 60, 62, 64, 65, 67, 69]),
                SampleConfig {
                    max_register_shift: 5,
                    ..SampleConfig::default()
                },
                |m| m.register_shift,
                4,
            ),
        ];
        for (p, on, shift, seed) in cases {
            let draw = |c: &SampleConfig| {
                let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
                (0..20)
                    .map(|_| training_sample(&p, Genre::Jazz, c, &mut rng))
                    .collect::<Vec<_>>()
            };
            let off = SampleConfig::default();
            let a = draw(&off);
            assert_eq!(a, draw(&off));
            assert!(a.iter().all(|s| shift(&s.meta) == 0));
            assert_ne!(draw(&on), a);
        }
    }
}
