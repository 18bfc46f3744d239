//! The four tasks on one engine: improvise (style transfer and intra-genre, spec §10),
//! harmonize (§11), continue and infill (§12).

use std::path::Path;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::corrupt::CHORD_WINDOW_MS;
use crate::model::ImprovNetModel;
use crate::music::quantize::SEGMENT_MS;
use crate::music::{Piece, PlayedNote};
use crate::structure::{
    find_boundaries_midi, find_boundaries_wav, protected_segments, to_piece_timeline, NoveltyParams,
};

use super::engine::{check_genre, drop_empty, Engine, PassPlan, Progress, RefineReport, Target};
use super::options::{HarmonyOptions, PassSpec, RefineOptions};
use super::RefineError;

/// A refined piece and what was done to it.
#[derive(Clone, Debug)]
pub struct Refined {
    pub piece: Piece,
    pub report: RefineReport,
}

/// Where structure preservation reads the music from.
#[derive(Clone, Copy, Debug)]
pub enum StructureSource<'a> {
    /// Piano-roll chroma of the piece itself: no rendering needed (our default).
    Midi,
    /// A rendering of the same MIDI file, like the original; `leading_silence_ms` is the MIDI
    /// file's silence before its first note (`Performance::leading_silence_ms`).
    Wav {
        path: &'a Path,
        leading_silence_ms: u64,
    },
}

/// Windows that structure preservation keeps (spec §13): the segments holding the top
/// `novel_peaks_pct` novelty boundaries. Empty for a ratio of 0.
pub fn preserved_windows(
    piece: &Piece,
    novel_peaks_pct: f64,
    source: StructureSource<'_>,
) -> Result<Vec<u32>, RefineError> {
    if novel_peaks_pct.is_nan() || novel_peaks_pct <= 0.0 {
        return Ok(Vec::new());
    }
    let params = NoveltyParams::default();
    let boundaries = match source {
        StructureSource::Midi => find_boundaries_midi(piece, &params),
        StructureSource::Wav {
            path,
            leading_silence_ms,
        } => to_piece_timeline(&find_boundaries_wav(path, &params)?, leading_silence_ms),
    };
    Ok(protected_segments(piece, &boundaries, novel_peaks_pct)
        .into_iter()
        .map(|i| piece.segments[i].window)
        .collect())
}

/// The windows a sweep visits in this pass (spec §10): non-empty, unprotected segments, from
/// `t_segment_start`, up to `t_segment_stop`, the last one left alone with `end_original`.
pub fn sweep_windows(piece: &Piece, opts: &RefineOptions) -> Vec<u32> {
    let order: Vec<u32> = piece
        .segments
        .iter()
        .filter(|s| !s.notes.is_empty() && !opts.protected_windows.contains(&s.window))
        .map(|s| s.window)
        .collect();
    let n_it = if opts.end_original {
        order.len().saturating_sub(1)
    } else {
        order.len()
    };
    let stop = match opts.t_segment_stop {
        Some(stop) if stop > opts.t_segment_start => stop.min(n_it),
        _ => n_it,
    };
    order
        .get(opts.t_segment_start..stop)
        .unwrap_or_default()
        .to_vec()
}

/// Style transfer or intra-genre improvisation: every pass sweeps the piece (spec §10).
pub fn improvise(
    model: &ImprovNetModel,
    piece: &Piece,
    opts: &RefineOptions,
    progress: &mut dyn FnMut(Progress<'_>),
) -> Result<Refined, RefineError> {
    sweep(model, piece, opts, None, progress)
}

/// Harmonizes a monophonic melody (spec §11). Rejects input with chords.
pub fn harmonize(
    model: &ImprovNetModel,
    melody: &Piece,
    source_name: &str,
    opts: &RefineOptions,
    harmony: HarmonyOptions,
    progress: &mut dyn FnMut(Progress<'_>),
) -> Result<Refined, RefineError> {
    check_monophonic(melody, source_name)?;
    sweep(model, melody, opts, Some(harmony), progress)
}

/// Pass `p` (from 0) of a sweep, and its after-context. Harmonization's first pass decodes
/// under the chord constraint without after-context (spec §11); without `reharmonize` every
/// pass shows the segment verbatim under its label.
fn sweep_plan(
    p: usize,
    spec: PassSpec,
    opts: &RefineOptions,
    harmony: Option<HarmonyOptions>,
) -> (PassPlan, usize) {
    let first_constrained = p == 0 && harmony.is_some_and(|h| h.use_constraints);
    let plan = PassPlan {
        spec,
        context_before: opts.context_before,
        chord_constraint: first_constrained,
        verbatim: harmony.is_some_and(|h| !h.reharmonize),
    };
    let context_after = if first_constrained {
        0
    } else {
        opts.context_after
    };
    (plan, context_after)
}

fn sweep(
    model: &ImprovNetModel,
    piece: &Piece,
    opts: &RefineOptions,
    harmony: Option<HarmonyOptions>,
    progress: &mut dyn FnMut(Progress<'_>),
) -> Result<Refined, RefineError> {
    opts.validate()?;
    check_genre(model, opts.target)?;
    let mut engine = Engine::new(model, opts);
    let mut rng = ChaCha8Rng::seed_from_u64(opts.seed);
    let mut piece = piece.clone();
    drop_empty(&mut piece);
    // Every pass keeps the player's tune, not the top voice of the last pass's answer.
    engine.keep_tunes_of(&piece);
    let mut report = RefineReport {
        protected_windows: opts.protected_windows.clone(),
        ..RefineReport::default()
    };
    let passes = opts.passes.len();
    for (p, spec) in opts.passes.iter().enumerate() {
        let (plan, context_after) = sweep_plan(p, *spec, opts, harmony);
        let targets: Vec<Target> = sweep_windows(&piece, opts)
            .into_iter()
            .map(|window| Target {
                window,
                context_after,
            })
            .collect();
        engine.run_pass(
            &mut piece,
            p + 1,
            passes,
            &plan,
            &targets,
            &mut rng,
            &mut report,
            progress,
        )?;
        drop_empty(&mut piece);
        progress(Progress::PassEnd {
            pass: p + 1,
            passes,
            refined: report.passes.last().map_or(0, |r| r.refined),
            piece: &piece,
        });
    }
    Ok(Refined { piece, report })
}

/// A melody has one note at a time: no two notes may start within the chord window (50 ms,
/// the `skyline` rule). Legato overlaps are fine.
pub fn check_monophonic(piece: &Piece, source_name: &str) -> Result<(), RefineError> {
    let mut notes: Vec<PlayedNote> = piece.to_played();
    notes.sort_by_key(|n| n.start_ms);
    let mut i = 0;
    while i < notes.len() {
        let mut j = i + 1;
        while j < notes.len() && notes[j].start_ms - notes[i].start_ms <= CHORD_WINDOW_MS as u64 {
            j += 1;
        }
        if j - i > 1 {
            let pitches: Vec<String> = notes[i..j].iter().map(|n| n.pitch.to_string()).collect();
            return Err(RefineError::NotMonophonic {
                source_name: source_name.to_string(),
                count: j - i,
                at_s: notes[i].start_ms as f64 / 1000.0,
                pitches: pitches.join(", "),
            });
        }
        i = j;
    }
    Ok(())
}

/// The gap's windows in order: no after-context (the rest of the gap still holds the original
/// notes, which must not leak), except for the last window.
fn gap_targets(windows: &[u32], last_context_after: usize) -> Vec<Target> {
    windows
        .iter()
        .enumerate()
        .map(|(i, &window)| Target {
            window,
            context_after: if i + 1 == windows.len() {
                last_context_after
            } else {
                0
            },
        })
        .collect()
}

/// Refines `windows` in order, as a gap: each sees only generated music and the prompt before
/// it, and the true future (`opts.context_after`) only from the gap's last window (spec §12).
fn fill_gap(
    model: &ImprovNetModel,
    piece: &Piece,
    windows: &[u32],
    last_context_after: usize,
    opts: &RefineOptions,
    progress: &mut dyn FnMut(Progress<'_>),
) -> Result<Refined, RefineError> {
    opts.validate()?;
    check_genre(model, opts.target)?;
    let mut engine = Engine::new(model, opts);
    // The gap's music is to be replaced, not kept.
    engine.keep_no_tunes(piece, windows);
    let mut rng = ChaCha8Rng::seed_from_u64(opts.seed);
    let mut piece = piece.clone();
    drop_empty(&mut piece);
    let mut report = RefineReport::default();
    let targets = gap_targets(windows, last_context_after);
    let passes = opts.passes.len();
    for (p, spec) in opts.passes.iter().enumerate() {
        let plan = PassPlan {
            spec: *spec,
            context_before: opts.context_before,
            chord_constraint: false,
            verbatim: false,
        };
        engine.run_pass(
            &mut piece,
            p + 1,
            passes,
            &plan,
            &targets,
            &mut rng,
            &mut report,
            progress,
        )?;
        // Empty gap windows stay until the end, so later passes can still fill them.
        let mut written = piece.clone();
        drop_empty(&mut written);
        progress(Progress::PassEnd {
            pass: p + 1,
            passes,
            refined: report.passes.last().map_or(0, |r| r.refined),
            piece: &written,
        });
    }
    drop_empty(&mut piece);
    Ok(Refined { piece, report })
}

/// Number of 5-second windows that cover `seconds`.
pub fn windows_for_seconds(seconds: f64) -> u32 {
    (seconds * 1000.0 / SEGMENT_MS as f64).ceil().max(0.0) as u32
}

/// Continues a prompt by `seconds` (rounded up to whole 5-second windows), starting at the
/// window after the prompt's last note onset (spec §12: whole mask, no future context).
pub fn continue_piece(
    model: &ImprovNetModel,
    prompt: &Piece,
    seconds: f64,
    opts: &RefineOptions,
    progress: &mut dyn FnMut(Progress<'_>),
) -> Result<Refined, RefineError> {
    if !(seconds.is_finite() && seconds > 0.0) {
        return Err(RefineError::Options(format!(
            "continuation length {seconds} s must be a positive number of seconds"
        )));
    }
    let count = windows_for_seconds(seconds);
    let first = prompt.segments.last().map_or(0, |s| s.window + 1);
    let windows: Vec<u32> = (first..first + count).collect();
    fill_gap(model, prompt, &windows, 0, opts, progress)
}

/// The windows an infill range covers: `[from_ms, to_ms)` widened to whole 5-second windows,
/// within the piece. An empty result is an error.
pub fn infill_windows(
    piece: &Piece,
    source_name: &str,
    from_ms: u64,
    to_ms: u64,
) -> Result<Vec<u32>, RefineError> {
    let last = piece.segments.last().map_or(0, |s| s.window);
    let end_ms = (u64::from(last) + 1) * SEGMENT_MS as u64;
    let err = |reason| RefineError::EmptyRange {
        source_name: source_name.to_string(),
        from_s: from_ms as f64 / 1000.0,
        to_s: to_ms as f64 / 1000.0,
        end_s: end_ms as f64 / 1000.0,
        reason,
    };
    if piece.segments.is_empty() {
        return Err(err("the piece has no notes"));
    }
    if to_ms <= from_ms {
        return Err(err("its end is not after its start"));
    }
    if from_ms >= end_ms {
        return Err(err(
            "it starts after the piece ends (use `continue` to add music at the end)",
        ));
    }
    let first = (from_ms / SEGMENT_MS as u64) as u32;
    let stop = to_ms.div_ceil(SEGMENT_MS as u64).min(u64::from(last) + 1) as u32;
    Ok((first..stop).collect())
}

/// Fills `windows` (from [`infill_windows`]) with new music between the true past and future
/// (spec §12: whole mask; inside the gap no after-context, except for its last window).
pub fn infill(
    model: &ImprovNetModel,
    piece: &Piece,
    windows: &[u32],
    opts: &RefineOptions,
    progress: &mut dyn FnMut(Progress<'_>),
) -> Result<Refined, RefineError> {
    fill_gap(model, piece, windows, opts.context_after, opts, progress)
}

/// The windows of `count` non-empty segments from segment `start` (how the original's configs
/// name an infill gap: `t_segment_start`, `context_infilling`).
pub fn segment_range_windows(piece: &Piece, start: usize, count: usize) -> Vec<u32> {
    let segs = &piece.segments;
    match (
        segs.get(start),
        segs.get((start + count).min(segs.len()).saturating_sub(1)),
    ) {
        (Some(a), Some(b)) if count > 0 => (a.window..=b.window).collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::corrupt::Corruption;
    use crate::music::{Note, Segment};

    #[test]
    fn harmony_constrains_only_the_first_pass_and_hides_its_future() {
        let opts = super::super::Settings::harmony().refine;
        let spec = PassSpec::new(1.0, Corruption::Skyline);
        let h = HarmonyOptions::default();
        let (first, after) = sweep_plan(0, spec, &opts, Some(h));
        assert!(first.chord_constraint && first.verbatim);
        assert_eq!(after, 0);
        let (second, after) = sweep_plan(1, spec, &opts, Some(h));
        assert!(!second.chord_constraint && second.verbatim);
        assert_eq!(after, opts.context_after);
        let free = HarmonyOptions {
            use_constraints: false,
            reharmonize: true,
        };
        let (p, after) = sweep_plan(0, spec, &opts, Some(free));
        assert!(!p.chord_constraint && !p.verbatim);
        assert_eq!(after, opts.context_after);
        let (p, _) = sweep_plan(0, spec, &opts, None);
        assert!(!p.chord_constraint && !p.verbatim);
    }

    #[test]
    fn a_gap_sees_the_future_only_from_its_last_window() {
        let t = gap_targets(&[4, 5, 6], 4);
        let after: Vec<usize> = t.iter().map(|t| t.context_after).collect();
        assert_eq!(after, vec![0, 0, 4]);
        assert!(gap_targets(&[], 4).is_empty());
    }

    #[test]
    fn sweep_windows_follow_start_stop_end_and_protection() {
        let piece = Piece {
            segments: [0, 1, 2, 4, 5, 6, 7]
                .into_iter()
                .map(|window| Segment {
                    window,
                    notes: vec![Note::new(60, 90, 0, 100)],
                })
                .collect(),
        };
        let mut opts = RefineOptions {
            protected_windows: vec![1],
            ..RefineOptions::default()
        };
        // Eligible: 0 2 4 5 6 7; skip the first two (0, 2), keep the last (7).
        assert_eq!(sweep_windows(&piece, &opts), vec![4, 5, 6]);
        opts.t_segment_stop = Some(3);
        assert_eq!(sweep_windows(&piece, &opts), vec![4]);
        opts.t_segment_stop = Some(2); // not after the start: to the end
        assert_eq!(sweep_windows(&piece, &opts), vec![4, 5, 6]);
        opts.end_original = false;
        opts.t_segment_stop = None;
        assert_eq!(sweep_windows(&piece, &opts), vec![4, 5, 6, 7]);
        opts.t_segment_start = 10;
        assert!(sweep_windows(&piece, &opts).is_empty());
    }

    #[test]
    fn monophonic_means_no_two_onsets_within_50_ms() {
        let legato = Piece {
            segments: vec![Segment {
                window: 0,
                notes: vec![Note::new(60, 90, 0, 600), Note::new(62, 90, 500, 600)],
            }],
        };
        assert!(check_monophonic(&legato, "x").is_ok());
        let chord = Piece {
            segments: vec![Segment {
                window: 0,
                notes: vec![Note::new(60, 90, 1000, 600), Note::new(64, 90, 1040, 600)],
            }],
        };
        assert!(check_monophonic(&chord, "x").is_err());
    }

    #[test]
    fn segment_ranges_become_windows() {
        let piece = Piece {
            segments: [0, 1, 3, 4]
                .into_iter()
                .map(|window| Segment {
                    window,
                    notes: vec![Note::new(60, 90, 0, 100)],
                })
                .collect(),
        };
        assert_eq!(segment_range_windows(&piece, 1, 2), vec![1, 2, 3]);
        assert_eq!(segment_range_windows(&piece, 3, 4), vec![4]);
        assert!(segment_range_windows(&piece, 4, 1).is_empty());
        assert!(segment_range_windows(&piece, 0, 0).is_empty());
    }
}
