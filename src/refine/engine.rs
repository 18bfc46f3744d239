//! The iterative corruption–refinement sweep (spec §10): one segment at a time, left to right,
//! each result replacing its segment before the sweep moves on, so later segments see refined
//! left context and still-unrefined right context.
//!
//! Two of the original's inference bugs are fixed here:
//! - §16.3: no random context drop; every window keeps its full after-context.
//! - §16.7: segments are replaced by index within a pass (no re-splitting on `<T>`), and the
//!   decoder may not emit what would break the segment structure: `<T>`, pad, an onset of
//!   5000 ms (the next window), a zero duration or a silent (velocity 0) note.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::corrupt::{corrupt, Behaviour, CorruptedSegment, Corruption, CorruptionChoice};
use crate::model::{
    ChordConstraint, CopyDraft, DecodeStats, Draft, ForbidTokens, GenerateOptions, ImprovNetModel,
    LogitsProcessor, NoDraft, SamplingParams, Sequence, MAX_LANES,
};
use crate::music::{Note, Piece, Segment};
use crate::tokens::{
    encoder_input, parse_notes, Genre, DUR_BASE, ENCODER_MAX_LEN, MAX_TIME_MS, ONSET_BASE, PAD,
    PIANO_BASE, TIME_STEP_MS, T_SEP,
};

use crate::eval::musical::{in_key, key_of};
use crate::eval::pitch_class_histogram;

use super::fit;
use super::options::{Context, PassSpec, RandomMode, RefineOptions};
use super::template::{tune_of, Bounds, Fidelity, Template, TemplateDraft};
use super::RefineError;

/// Tokens a refined segment may not contain (§16.7): they would move notes out of the segment,
/// end decoding on a pad, or write notes a MIDI file cannot keep.
pub fn forbidden_in_segment() -> Vec<u32> {
    let mut ids = vec![
        T_SEP,
        PAD,
        ONSET_BASE + u32::from(MAX_TIME_MS / TIME_STEP_MS),
        DUR_BASE,
    ];
    // ("piano", pitch, 0): velocity index 0 comes first in the vocabulary.
    ids.extend(PIANO_BASE..PIANO_BASE + 128);
    ids
}

/// What the sweep reports while it runs (the CLI draws progress bars, the plugin its editor).
#[derive(Debug)]
pub enum Progress<'a> {
    /// A pass starts over `segments` candidate segments.
    PassStart {
        pass: usize,
        passes: usize,
        label: String,
        segments: usize,
    },
    /// A candidate segment is done; `refined` says whether it was regenerated (rate draw).
    Segment {
        pass: usize,
        done: usize,
        segments: usize,
        window: u32,
        refined: bool,
        elapsed: Duration,
    },
    /// A pass is finished; `piece` is the piece as it now stands.
    PassEnd {
        pass: usize,
        passes: usize,
        refined: usize,
        piece: &'a Piece,
    },
}

/// A progress callback that ignores everything.
pub fn no_progress(_: Progress<'_>) {}

/// What one pass did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PassReport {
    /// The corruption name, `random`, or the one a per-pass `random` picked.
    pub label: String,
    pub candidates: usize,
    pub refined: usize,
}

/// What a whole refinement did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RefineReport {
    pub passes: Vec<PassReport>,
    /// Wall time of every regenerated segment (encoder + decoding), in order.
    pub segment_times: Vec<Duration>,
    /// Decoder tokens sampled for every regenerated segment (start token excluded), in order.
    pub segment_tokens: Vec<usize>,
    /// Encoder input length of every regenerated segment, in order.
    pub segment_inputs: Vec<usize>,
    /// Windows regenerated at least once. Every other window keeps its original notes.
    pub refined_windows: BTreeSet<u32>,
    /// Windows structure preservation kept.
    pub protected_windows: Vec<u32>,
    /// How speculative decoding fared, per corruption.
    pub drafts: BTreeMap<Corruption, DecodeStats>,
}

/// A segment to refine in a pass, with its after-context (infilling hides the rest of the gap).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Target {
    pub window: u32,
    pub context_after: usize,
}

/// How one pass treats its targets.
#[derive(Clone, Copy, Debug)]
pub struct PassPlan {
    pub spec: PassSpec,
    pub context_before: usize,
    /// Decode under the harmonization chord constraint (spec §11, pass 1).
    pub chord_constraint: bool,
    /// Show the segment unchanged under the pass's label instead of corrupting it
    /// (harmonization without `reharmonize`).
    pub verbatim: bool,
}

/// One defect of a candidate outweighs any difference in harmonic fit (pitch-class KL, rarely
/// above 10).
const FLAW_WEIGHT: f64 = 100.0;

/// What shapes one candidate's sampling: its logits processors and its draft.
struct Shapers<'a> {
    chord: ChordConstraint,
    forbid: ForbidTokens,
    template: Option<Template>,
    draft: Box<dyn Draft + 'a>,
}

impl<'a> Shapers<'a> {
    /// The processors in the order they run (the chord constraint only when asked for) and the
    /// draft.
    fn parts(&mut self, chord: bool) -> (Vec<&mut dyn LogitsProcessor>, &mut (dyn Draft + 'a)) {
        let mut p: Vec<&mut dyn LogitsProcessor> = Vec::with_capacity(3);
        if chord {
            p.push(&mut self.chord);
        }
        p.push(&mut self.forbid);
        if let Some(t) = self.template.as_mut() {
            p.push(t);
        }
        (p, self.draft.as_mut())
    }
}

/// How a segment is harmonized, if it is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Harmony {
    /// Decode under the chord constraint (spec §11, pass 1).
    chord_constraint: bool,
    /// The segment is a melody to harmonize: chords under it, bounded by it.
    melody: bool,
}

/// A model and the sampling settings of one refinement.
pub struct Engine<'m> {
    model: &'m ImprovNetModel,
    sampling: SamplingParams,
    max_tokens: usize,
    behaviour: Behaviour,
    target: Genre,
    random_mode: RandomMode,
    candidates: usize,
    fidelity: Fidelity,
    sanity: bool,
    speculative: bool,
    /// The tune each window keeps under strict fidelity; `None`: the top voice of the segment
    /// as it stands when it is rewritten (the plugin's one pass over what was just played).
    tunes: Option<BTreeMap<u32, Vec<Note>>>,
    /// The music the sanity bounds are measured on: the input as given, so that ten passes do
    /// not drift in register, loudness or density; `None`: the piece as it stands.
    reference: Option<Piece>,
}

impl<'m> Engine<'m> {
    pub fn new(model: &'m ImprovNetModel, opts: &RefineOptions) -> Self {
        Self {
            model,
            sampling: SamplingParams {
                temperature: opts.temperature,
                top_k: opts.top_k,
                top_p: 1.0,
                greedy: false,
            },
            max_tokens: opts
                .max_tokens_per_segment
                .min(model.config.decoder.max_position_embeddings),
            behaviour: opts.behaviour,
            target: opts.target,
            random_mode: opts.random_mode,
            candidates: opts.candidates.max(1),
            fidelity: opts.fidelity,
            sanity: opts.sanity,
            speculative: opts.speculative,
            tunes: None,
            reference: None,
        }
    }

    /// Keeps `piece`'s top voice as the tune of each of its windows for every later pass, so
    /// that passes over already rewritten music still keep what the player played.
    pub fn keep_tunes_of(&mut self, piece: &Piece) {
        self.reference = Some(piece.clone());
        self.tunes = Some(
            piece
                .segments
                .iter()
                .map(|s| (s.window, tune_of(&s.notes)))
                .collect(),
        );
    }

    /// No window has a tune to keep (gap filling: the music in `gap` is to be replaced, and
    /// the bounds are measured on the music around it).
    pub fn keep_no_tunes(&mut self, piece: &Piece, gap: &[u32]) {
        let mut reference = piece.clone();
        reference.segments.retain(|s| !gap.contains(&s.window));
        self.reference = Some(reference);
        self.tunes = Some(BTreeMap::new());
    }

    /// The kept tune of `window`, if the tunes are kept.
    fn tune_at(&self, window: u32) -> Vec<Note> {
        self.tunes
            .as_ref()
            .and_then(|map| map.get(&window).cloned())
            .unwrap_or_default()
    }

    fn tune(&self, segment: &Segment) -> Vec<Note> {
        match &self.tunes {
            Some(_) => self.tune_at(segment.window),
            None => tune_of(&segment.notes),
        }
    }

    /// The logits processor that keeps a rewritten segment musical, if any: strict fidelity's
    /// template, or free fidelity's sanity rules alone.
    fn template(
        &self,
        piece: &Piece,
        index: usize,
        context: Context,
        block: &CorruptedSegment,
        chord_constraint: bool,
        harmonize: bool,
    ) -> Option<Template> {
        if self.fidelity == Fidelity::Free && !self.sanity {
            return None;
        }
        let segment = &piece.segments[index];
        let tune = self.tune(segment);
        let max_notes = self.max_tokens.saturating_sub(2) / 3;
        let bounds = if self.sanity {
            Bounds::around(
                self.reference.as_ref().unwrap_or(piece),
                segment.window,
                context.before,
                context.after,
                tune.len(),
                harmonize,
                max_notes,
            )
            .with_sounding_into(piece, index)
        } else {
            Bounds::open(max_notes)
        };
        let template = match self.fidelity {
            Fidelity::Strict => Template::strict(&segment.notes, block, &tune, bounds)
                .with_next_tune(&self.tune_at(segment.window + 1))
                .with_previous_tune(
                    &segment
                        .window
                        .checked_sub(1)
                        .map_or_else(Vec::new, |w| self.tune_at(w)),
                ),
            Fidelity::Free => Template::free(bounds),
        };
        let strict = self.fidelity == Fidelity::Strict;
        let template = if chord_constraint && strict {
            template.with_chord_constraint()
        } else {
            template
        };
        Some(if harmonize && strict && self.sanity {
            // Chords under a melody prefer its key (and the blue third and seventh).
            let reference = self.reference.as_ref().unwrap_or(piece);
            let (tonic, major) = key_of(&pitch_class_histogram(reference));
            template
                .with_key(std::array::from_fn(|pc| in_key(pc as u8, tonic, major)))
                .with_chord_fill()
        } else {
            template
        })
    }

    /// The encoder input for segment `index` with `block` in its place. Where the window would
    /// exceed the encoder's length, the farthest context segments go first (the original cut
    /// the end instead, which can lose the block itself, spec §16.8).
    pub fn encoder_ids(
        &self,
        piece: &Piece,
        index: usize,
        mut before: usize,
        mut after: usize,
        block: &CorruptedSegment,
    ) -> Vec<u32> {
        let limit = ENCODER_MAX_LEN.min(self.model.config.encoder.max_position_embeddings);
        loop {
            let ids = encoder_input(piece, index, before, after, block);
            if ids.len() <= limit || (before == 0 && after == 0) {
                let mut ids = ids;
                ids.truncate(limit);
                return ids;
            }
            // Context actually present on each side, so the shrinking side is a real one.
            let have_before = before.min(index);
            let have_after = after.min(piece.segments.len().saturating_sub(index + 1));
            before = have_before;
            after = have_after;
            if after >= before && after > 0 {
                after -= 1;
            } else {
                before = before.saturating_sub(1);
            }
        }
    }

    /// Samples new notes for segment `index` from `block` and its context, sorted by onset
    /// (stable, keeping the model's in-chord order), as a MIDI round trip would give them.
    pub fn regenerate<R: Rng + ?Sized>(
        &self,
        piece: &Piece,
        index: usize,
        context: Context,
        block: &CorruptedSegment,
        chord_constraint: bool,
        rng: &mut R,
    ) -> Result<Vec<Note>, RefineError> {
        let harmony = Harmony {
            chord_constraint,
            melody: chord_constraint,
        };
        self.regenerate_counted(piece, index, context, block, harmony, rng)
            .map(|(notes, _, _)| notes)
    }

    /// One candidate's processors and draft: the template's forced tokens, else a copy of the
    /// encoder input (no draft when speculative decoding is off).
    fn shapers<'a>(
        &self,
        template: &Option<Template>,
        copy: &'a CopyDraft<'a>,
        forbidden: &ForbidTokens,
    ) -> Shapers<'a> {
        Shapers {
            chord: ChordConstraint::default(),
            forbid: forbidden.clone(),
            template: template.clone(),
            draft: match template {
                _ if !self.speculative => Box::new(NoDraft),
                Some(t) => Box::new(TemplateDraft::new(
                    t.clone(),
                    copy,
                    forbidden.clone(),
                    self.model.config.decoder.vocab_size,
                )),
                None => Box::new(copy),
            },
        }
    }

    /// [`regenerate`](Self::regenerate), also returning the number of tokens sampled and how
    /// the drafts of speculative decoding fared.
    fn regenerate_counted<R: Rng + ?Sized>(
        &self,
        piece: &Piece,
        index: usize,
        context: Context,
        block: &CorruptedSegment,
        harmony: Harmony,
        rng: &mut R,
    ) -> Result<(Vec<Note>, usize, DecodeStats), RefineError> {
        let chord_constraint = harmony.chord_constraint;
        let enc = self.encoder_ids(piece, index, context.before, context.after, block);
        let opts = GenerateOptions {
            sampling: self.sampling,
            max_len: self.max_tokens,
        };
        let reference = match self.candidates {
            1 => None,
            _ => fit::neighbours(piece, index, context),
        };
        let draws = if reference.is_some() || self.sanity {
            self.candidates
        } else {
            1
        };
        let mut best: Option<(f64, Vec<Note>)> = None;
        let mut tokens = 0;
        let mut stats = DecodeStats::default();
        let template = self.template(
            piece,
            index,
            context,
            block,
            chord_constraint,
            harmony.melody,
        );
        // One encoder run for every candidate.
        let started = Instant::now();
        let mut state = self.model.start_segment(&enc)?;
        stats.encoder = started.elapsed();
        stats.encoder_tokens = enc.len();
        let forbidden = ForbidTokens(forbidden_in_segment());
        let copy = CopyDraft::new(&enc);
        // Strict fidelity's template holds the chord constraint itself, as a preference.
        let strict = self.fidelity == Fidelity::Strict && template.is_some();
        // One candidate samples with the caller's draws; several each get their own stream
        // (seeded from the caller's) so that they can be decoded side by side.
        let seeds: Vec<u64> = match draws {
            1 => Vec::new(),
            _ => (0..draws).map(|_| rng.gen()).collect(),
        };
        let mut caller: &mut R = rng;
        for first in (0..draws).step_by(MAX_LANES) {
            let group = first..(first + MAX_LANES).min(draws);
            let mut shapers: Vec<Shapers> = group
                .clone()
                .map(|_| self.shapers(&template, &copy, &forbidden))
                .collect();
            let mut own: Vec<ChaCha8Rng> = group
                .filter_map(|c| seeds.get(c).map(|&s| ChaCha8Rng::seed_from_u64(s)))
                .collect();
            let mut rngs: Vec<&mut dyn RngCore> = match own.is_empty() {
                true => vec![&mut caller],
                false => own.iter_mut().map(|r| r as &mut dyn RngCore).collect(),
            };
            let mut parts: Vec<_> = shapers
                .iter_mut()
                .map(|s| s.parts(chord_constraint && !strict))
                .collect();
            let mut seqs: Vec<Sequence> = parts
                .iter_mut()
                .zip(rngs.iter_mut())
                .map(|((processors, draft), rng)| Sequence {
                    processors,
                    draft: &mut **draft,
                    rng: &mut **rng,
                })
                .collect();
            let (outs, drafted) = self.model.generate_lanes(&mut state, &opts, &mut seqs)?;
            stats.add(drafted);
            for ids in outs {
                tokens += ids.len().saturating_sub(1);
                let mut candidate = Segment {
                    window: piece.segments[index].window,
                    notes: parse_notes(&ids).notes,
                };
                candidate.notes.sort_by_key(|n| n.onset_ms);
                // With the sanity rules, a candidate with fewer defects (restrikes, clusters)
                // wins first; the harmonic fit decides between equals.
                let flaws = if self.sanity {
                    fit::flaws(&candidate) as f64
                } else {
                    0.0
                };
                let d =
                    flaws * FLAW_WEIGHT + reference.map_or(0.0, |r| fit::distance(&r, &candidate));
                if best.as_ref().is_none_or(|(b, _)| d < *b) {
                    best = Some((d, candidate.notes));
                }
            }
        }
        let (_, notes) = best.expect("at least one candidate is drawn");
        Ok((notes, tokens, stats))
    }

    /// Runs one pass over `targets` (windows, left to right), each refined with probability
    /// `plan.spec.rate`. Missing target windows are created empty first (gap tasks).
    #[allow(clippy::too_many_arguments)]
    pub fn run_pass<R: Rng>(
        &self,
        piece: &mut Piece,
        pass: usize,
        passes: usize,
        plan: &PassPlan,
        targets: &[Target],
        rng: &mut R,
        report: &mut RefineReport,
        progress: &mut dyn FnMut(Progress<'_>),
    ) -> Result<(), RefineError> {
        let per_pass = match (plan.spec.corruption, self.random_mode) {
            (CorruptionChoice::Random, RandomMode::PerPass) => {
                Some(CorruptionChoice::Random.pick(rng))
            }
            _ => None,
        };
        let label = per_pass.map_or(plan.spec.corruption.to_string(), |c| {
            format!("random ({c})")
        });
        progress(Progress::PassStart {
            pass,
            passes,
            label: label.clone(),
            segments: targets.len(),
        });
        let mut refined = 0;
        for (done, target) in targets.iter().enumerate() {
            let start = Instant::now();
            let hit = rng.gen::<f64>() < plan.spec.rate;
            if hit {
                let index = ensure_window(piece, target.window);
                let kind = per_pass.unwrap_or_else(|| plan.spec.corruption.pick(rng));
                let segment = &piece.segments[index];
                let block = if plan.verbatim {
                    CorruptedSegment::verbatim(kind, self.target, segment)
                } else {
                    corrupt(segment, kind, self.target, self.behaviour, rng)
                };
                let context = Context {
                    before: plan.context_before,
                    after: target.context_after,
                };
                let (notes, tokens, drafts) = self.regenerate_counted(
                    piece,
                    index,
                    context,
                    &block,
                    Harmony {
                        chord_constraint: plan.chord_constraint,
                        melody: plan.verbatim || plan.chord_constraint,
                    },
                    rng,
                )?;
                let keep_melody = self.sanity || self.fidelity == Fidelity::Strict;
                piece.segments[index].notes = if notes.is_empty() && plan.verbatim && keep_melody {
                    // A harmonization never loses its melody: an empty answer (possible under
                    // free fidelity) falls back to the melody alone (a sanity rule: without
                    // them, free fidelity stays the original's, which drops the window).
                    let tune = self.tune(&piece.segments[index]);
                    if tune.is_empty() {
                        piece.segments[index].notes.clone()
                    } else {
                        tune
                    }
                } else {
                    notes
                };
                report.segment_times.push(start.elapsed());
                report.segment_tokens.push(tokens);
                report.segment_inputs.push(drafts.encoder_tokens);
                report.drafts.entry(kind).or_default().add(drafts);
                report.refined_windows.insert(target.window);
                refined += 1;
            }
            progress(Progress::Segment {
                pass,
                done: done + 1,
                segments: targets.len(),
                window: target.window,
                refined: hit,
                elapsed: start.elapsed(),
            });
        }
        report.passes.push(PassReport {
            label,
            candidates: targets.len(),
            refined,
        });
        Ok(())
    }
}

/// Refuses a target genre the model was never trained on (its config's `improvnet_genres`).
pub fn check_genre(model: &ImprovNetModel, genre: Genre) -> Result<(), RefineError> {
    match &model.config.genres {
        Some(known) if !known.iter().any(|g| g == genre.name()) => Err(RefineError::UnknownGenre {
            genre: genre.name().to_string(),
            known: known.join(", "),
        }),
        _ => Ok(()),
    }
}

/// Index of the segment at `window`, inserting an empty one in time order if there is none.
pub fn ensure_window(piece: &mut Piece, window: u32) -> usize {
    match piece.segments.binary_search_by_key(&window, |s| s.window) {
        Ok(i) => i,
        Err(i) => {
            piece.segments.insert(
                i,
                crate::music::Segment {
                    window,
                    notes: Vec::new(),
                },
            );
            i
        }
    }
}

/// Drops segments left without notes: a piece holds non-empty windows only (spec §4.2), and
/// context is counted in non-empty segments, as in the original.
pub fn drop_empty(piece: &mut Piece) {
    piece.segments.retain(|s| !s.notes.is_empty());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::corrupt::Corruption;
    use crate::model::{BertConfig, Config};
    use crate::tokens::{BlockElement, Token, SEP};
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn piece(segments: u32, notes_each: u16) -> Piece {
        Piece {
            segments: (0..segments)
                .map(|window| Segment {
                    window,
                    notes: (0..notes_each)
                        .map(|k| Note::new(60, 90, k * 100, 100))
                        .collect(),
                })
                .collect(),
        }
    }

    /// A random one-layer model with `positions` encoder and decoder positions.
    fn tiny_model(positions: usize, seed: u64) -> ImprovNetModel {
        let part = BertConfig::sized(16, 1, 2, 32, positions);
        let config = Config::from_parts(part.clone(), part);
        ImprovNetModel::random(&config, seed, &candle_core::Device::Cpu).unwrap()
    }

    #[test]
    fn long_windows_lose_far_context_not_the_block() {
        // Encoder of 64 positions; 10 notes (30 tokens) per segment.
        let model = tiny_model(64, 0);
        let engine = Engine::new(&model, &RefineOptions::default());
        let p = piece(5, 10);
        let block = CorruptedSegment {
            kind: Corruption::WholeMask,
            genre: Genre::Jazz,
            content: vec![crate::tokens::BlockElement::Mask],
        };
        let ids = engine.encoder_ids(&p, 2, 2, 2, &block);
        assert!(ids.len() <= 64);
        // The whole block survives: SEP whole_mask jazz mask SEP.
        assert_eq!(ids.iter().filter(|&&t| t == SEP).count(), 2, "{ids:?}");
        // Context on both sides: one segment each (5 + 30 + 1 + 30 + 1 = 67 > 64 with both,
        // so the after side gives way first, then the before side).
        assert!(ids.starts_with(&[Token::Onset(0).id()]), "{ids:?}");
    }

    #[test]
    fn forbidden_tokens_cover_the_segment_breakers() {
        let f = forbidden_in_segment();
        for t in [T_SEP, PAD, Token::Onset(5000).id(), Token::Dur(0).id()] {
            assert!(f.contains(&t), "{t}");
        }
        assert!(f.contains(&Token::piano(60, 0).unwrap().id()));
        assert!(!f.contains(&Token::piano(60, 15).unwrap().id()));
        assert!(!f.contains(&Token::Onset(4990).id()));
        assert!(!f.contains(&crate::tokens::EOS));
    }

    #[test]
    fn ensure_window_inserts_in_time_order() {
        let mut p = piece(2, 1);
        p.segments[1].window = 4;
        assert_eq!(ensure_window(&mut p, 4), 1);
        assert_eq!(ensure_window(&mut p, 2), 1);
        assert_eq!(
            p.segments.iter().map(|s| s.window).collect::<Vec<_>>(),
            vec![0, 2, 4]
        );
        drop_empty(&mut p);
        assert_eq!(p.segments.len(), 2);
    }

    #[test]
    fn best_of_n_keeps_the_draw_closest_to_the_reference() {
        let model = tiny_model(256, 3);
        let piece = Piece {
            segments: (0..3)
                .map(|window| Segment {
                    window,
                    notes: vec![Note::new(60 + 4 * window as u8, 90, 0, 400)],
                })
                .collect(),
        };
        let block = CorruptedSegment {
            kind: Corruption::WholeMask,
            genre: Genre::Jazz,
            content: vec![BlockElement::Mask],
        };
        let context = Context {
            before: 1,
            after: 1,
        };
        // The fit alone ranks: free fidelity, no sanity rules (which would rank by defects first).
        let opts = |candidates| RefineOptions {
            candidates,
            max_tokens_per_segment: 90,
            fidelity: Fidelity::Free,
            sanity: false,
            ..RefineOptions::default()
        };
        let reference = fit::neighbours(&piece, 1, context).unwrap();
        let mut distinct = 0;
        for seed in 0..4 {
            // The four single draws, each with the stream the best-of-4 engine seeds for it.
            let one = Engine::new(&model, &opts(1));
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let seeds: Vec<u64> = (0..4).map(|_| rng.gen()).collect();
            let draws: Vec<Vec<Note>> = seeds
                .iter()
                .map(|&s| {
                    let mut rng = ChaCha8Rng::seed_from_u64(s);
                    one.regenerate(&piece, 1, context, &block, false, &mut rng)
                        .unwrap()
                })
                .collect();
            let dist = |notes: &Vec<Note>| {
                fit::distance(
                    &reference,
                    &Segment {
                        window: 1,
                        notes: notes.clone(),
                    },
                )
            };
            let best = draws
                .iter()
                .min_by(|a, b| dist(a).total_cmp(&dist(b)))
                .unwrap();
            distinct += (dist(best) < dist(&draws[0])) as usize;
            let four = Engine::new(&model, &opts(4));
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let (kept, tokens, _) = four
                .regenerate_counted(&piece, 1, context, &block, Harmony::default(), &mut rng)
                .unwrap();
            assert_eq!(&kept, best, "seed {seed}");
            assert!(tokens > 0);
        }
        assert!(
            distinct > 0,
            "no seed where a later draw fits better: a weak test"
        );
    }
}
