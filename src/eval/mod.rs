//! Symbolic evaluation metrics of the original (spec §14), on our own pieces.
//!
//! The original computes them with pretty_midi on written MIDI files; we compute the same
//! definitions on a [`Piece`]'s timeline (seconds), so tests and the model card need no Python.

use serde::Serialize;

use crate::model::{GenreClassifier, ModelError};
use crate::music::Piece;
use crate::tokens::{classifier_input, Tail};

pub mod heldout;
pub mod musical;
pub mod precision;
pub mod style;

/// Length of the window `note_density` counts onsets in.
const DENSITY_WINDOW_S: f64 = 5.0;
/// pretty_midi's `time_thresh`: a note "leads to" another when its end is this close to the other's start.
const TRANSITION_THRESH_S: f64 = 0.05;
/// Added to both pitch-class histograms before the KL divergence, as in the original.
const KL_EPSILON: f64 = 1e-5;

/// The per-piece statistics of §14.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PieceStats {
    pub num_notes: usize,
    /// Mean number of onsets per 5 s window over [0, end).
    pub note_density: f64,
    /// Number of distinct pitches.
    pub used_pitch: usize,
    /// Mean time between consecutive onsets, in seconds.
    pub avg_ioi_s: f64,
}

/// A note on the piece's timeline, in seconds.
pub(crate) struct Timed {
    pub(crate) pitch: u8,
    pub(crate) start: f64,
    pub(crate) end: f64,
}

/// The piece's notes in seconds, sorted by start.
pub(crate) fn timeline(piece: &Piece) -> Vec<Timed> {
    let mut notes: Vec<Timed> = piece
        .to_played()
        .iter()
        .map(|n| Timed {
            pitch: n.pitch,
            start: n.start_ms as f64 / 1000.0,
            end: (n.start_ms + n.dur_ms) as f64 / 1000.0,
        })
        .collect();
    notes.sort_by(|a, b| a.start.total_cmp(&b.start));
    notes
}

/// `num_notes`, `note_density`, `used_pitch` and `avg_ioi` of one piece.
pub fn piece_stats(piece: &Piece) -> PieceStats {
    let notes = timeline(piece);
    let end = notes.iter().map(|n| n.end).fold(0.0, f64::max);
    let windows = (end / DENSITY_WINDOW_S).ceil().max(1.0) as usize;
    let mut per_window = vec![0usize; windows];
    for n in &notes {
        let w = ((n.start / DENSITY_WINDOW_S) as usize).min(windows - 1);
        per_window[w] += 1;
    }
    let mut pitches: Vec<u8> = notes.iter().map(|n| n.pitch).collect();
    pitches.sort_unstable();
    pitches.dedup();
    let iois: Vec<f64> = notes.windows(2).map(|w| w[1].start - w[0].start).collect();
    PieceStats {
        num_notes: notes.len(),
        note_density: per_window.iter().sum::<usize>() as f64 / windows as f64,
        used_pitch: pitches.len(),
        avg_ioi_s: if iois.is_empty() {
            0.0
        } else {
            iois.iter().sum::<f64>() / iois.len() as f64
        },
    }
}

/// Duration-weighted pitch-class histogram, normalised to sum 1 (all zeros for an empty piece).
pub fn pitch_class_histogram(piece: &Piece) -> [f64; 12] {
    let mut h = [0.0; 12];
    for n in timeline(piece) {
        h[n.pitch as usize % 12] += n.end - n.start;
    }
    normalised(h)
}

fn normalised<const N: usize>(mut h: [f64; N]) -> [f64; N] {
    let total: f64 = h.iter().sum();
    if total > 0.0 {
        h.iter_mut().for_each(|x| *x /= total);
    }
    h
}

/// KL(original ‖ generated) of the pitch-class histograms, ε = 1e-5 added to both and each
/// renormalised (scipy's `entropy`). 0 for identical pitch content; lower is closer.
pub fn pitch_class_kl(original: &Piece, generated: &Piece) -> f64 {
    histogram_kl(
        &pitch_class_histogram(original),
        &pitch_class_histogram(generated),
    )
}

/// [`pitch_class_kl`] of two histograms already computed.
pub fn histogram_kl(original: &[f64; 12], generated: &[f64; 12]) -> f64 {
    let p = normalised(original.map(|x| x + KL_EPSILON));
    let q = normalised(generated.map(|x| x + KL_EPSILON));
    p.iter().zip(&q).map(|(p, q)| p * (p / q).ln()).sum()
}

/// pretty_midi's pitch-class transition matrix: counts of (pc of a note, pc of a note starting
/// within 50 ms of its end), normalised by the total.
pub fn pitch_class_transitions(piece: &Piece) -> [[f64; 12]; 12] {
    let notes = timeline(piece);
    let mut m = [[0.0; 12]; 12];
    if notes.len() > 1 {
        for a in &notes {
            for b in &notes {
                if (a.end - b.start).abs() < TRANSITION_THRESH_S {
                    m[a.pitch as usize % 12][b.pitch as usize % 12] += 1.0;
                }
            }
        }
    }
    let total: f64 = m.iter().flatten().sum();
    if total > 0.0 {
        m.iter_mut().flatten().for_each(|x| *x /= total);
    }
    m
}

/// |Σ a·b| / (‖a‖_F ‖b‖_F) of the two pieces' transition matrices (0 when either is empty).
pub fn transition_cosine(original: &Piece, generated: &Piece) -> f64 {
    let a = pitch_class_transitions(original);
    let b = pitch_class_transitions(generated);
    let dot: f64 = a
        .iter()
        .flatten()
        .zip(b.iter().flatten())
        .map(|(x, y)| x * y)
        .sum();
    let norm = |m: &[[f64; 12]; 12]| m.iter().flatten().map(|x| x * x).sum::<f64>().sqrt();
    let denom = norm(&a) * norm(&b);
    if denom > 0.0 {
        dot.abs() / denom
    } else {
        0.0
    }
}

/// Piece-level genre probabilities (classical, pop, jazz) as the original scores them (spec §9):
/// the softmax averaged over uncorrupted windows (2 segments either side, or what the classifier
/// was trained with) centred on every
/// segment but the last (on the only one, for a one-segment piece). No random tail drop.
pub fn genre_probabilities(
    classifier: &GenreClassifier,
    piece: &Piece,
) -> Result<[f64; 3], ModelError> {
    let n = piece.segments.len();
    if n == 0 {
        return Err(ModelError::Input(
            "the piece has no notes to classify".into(),
        ));
    }
    let centres = n.saturating_sub(1).max(1);
    let context = classifier.config().classifier_context();
    let mut sum = [0.0f64; 3];
    for s in 0..centres {
        let ids = classifier_input(piece, s, context, context, Tail::Keep);
        let p = classifier.predict_proba(&ids)?;
        for (acc, x) in sum.iter_mut().zip(p) {
            *acc += f64::from(x);
        }
    }
    Ok(sum.map(|x| x / centres as f64))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::music::{Note, Segment};

    fn piece(segments: &[(u32, &[Note])]) -> Piece {
        Piece {
            segments: segments
                .iter()
                .map(|(window, notes)| Segment {
                    window: *window,
                    notes: notes.to_vec(),
                })
                .collect(),
        }
    }

    /// C4 (0–1 s), E4 (1–1.5 s), G4 (1.5–2.5 s) in window 0; C5 at 12 s (window 2).
    fn arpeggio() -> Piece {
        piece(&[
            (
                0,
                &[
                    Note::new(60, 90, 0, 1000),
                    Note::new(64, 90, 1000, 500),
                    Note::new(67, 90, 1500, 1000),
                ],
            ),
            (2, &[Note::new(72, 90, 2000, 1000)]),
        ])
    }

    #[test]
    fn piece_stats_by_hand() {
        let s = piece_stats(&arpeggio());
        assert_eq!(s.num_notes, 4);
        assert_eq!(s.used_pitch, 4);
        // End 13 s -> 3 windows of 5 s holding 3, 0, 1 onsets.
        assert!((s.note_density - 4.0 / 3.0).abs() < 1e-12);
        // Onsets 0, 1, 1.5, 12 -> IOIs 1, 0.5, 10.5.
        assert!((s.avg_ioi_s - 4.0).abs() < 1e-12);
    }

    #[test]
    fn histogram_is_duration_weighted() {
        let h = pitch_class_histogram(&arpeggio());
        // C: 1 s + 1 s, E: 0.5 s, G: 1 s, total 3.5 s.
        assert!((h[0] - 2.0 / 3.5).abs() < 1e-12);
        assert!((h[4] - 0.5 / 3.5).abs() < 1e-12);
        assert!((h[7] - 1.0 / 3.5).abs() < 1e-12);
        assert!((h.iter().sum::<f64>() - 1.0).abs() < 1e-12);
    }

    #[test]
    fn kl_by_hand() {
        let a = arpeggio();
        assert!(pitch_class_kl(&a, &a).abs() < 1e-12);
        // Original all C, generated all G: p = (1+e, e...)/(1+12e), q mirrored.
        let c = piece(&[(0, &[Note::new(60, 90, 0, 1000)])]);
        let g = piece(&[(0, &[Note::new(67, 90, 0, 1000)])]);
        let e = KL_EPSILON;
        let z = 1.0 + 12.0 * e;
        let (hi, lo) = ((1.0 + e) / z, e / z);
        let want = hi * (hi / lo).ln() + lo * (lo / hi).ln();
        assert!(
            (pitch_class_kl(&c, &g) - want).abs() < 1e-9,
            "{}",
            pitch_class_kl(&c, &g)
        );
    }

    #[test]
    fn transitions_follow_note_ends() {
        let m = pitch_class_transitions(&arpeggio());
        // C ends at 1 s where E starts; E ends at 1.5 s where G starts; G ends 2.5 s, nothing starts.
        assert_eq!(m[0][4], 0.5);
        assert_eq!(m[4][7], 0.5);
        assert_eq!(m.iter().flatten().filter(|x| **x > 0.0).count(), 2);
        assert!((transition_cosine(&arpeggio(), &arpeggio()) - 1.0).abs() < 1e-12);
        // E -> C (same shape, other pitch classes): orthogonal.
        let other = piece(&[(
            0,
            &[Note::new(64, 90, 0, 1000), Note::new(60, 90, 1000, 500)],
        )]);
        assert_eq!(transition_cosine(&arpeggio(), &other), 0.0);
    }
}
