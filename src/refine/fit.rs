//! Best of N: sample several candidates for a segment and keep the one whose harmony fits the
//! music around it.
//!
//! One sample at the paper's temperature often leaves out a pitch class the surrounding music
//! keeps playing; a listener hears that as a wrong turn. Judging a few samples against the
//! pitch-class histogram of the neighbouring segments keeps the model's rhythm and voicing while
//! steering its harmony, at N times the decoding cost.

use crate::eval::musical::defects;
use crate::eval::{histogram_kl, pitch_class_histogram};
use crate::music::{Piece, Segment};

use super::options::Context;

/// The pitch-class histogram of the segments on either side of `index` that the model sees as
/// context (the one before when `context.before > 0`, the one after when `context.after > 0`);
/// `None` when neither has notes, so every candidate is as good. The segment at `index` itself
/// never counts: in an infill it is the answer.
pub fn neighbours(piece: &Piece, index: usize, context: Context) -> Option<[f64; 12]> {
    let segs = &piece.segments;
    let mut around = Vec::with_capacity(2);
    if context.before > 0 && index > 0 {
        around.extend(segs.get(index - 1).cloned());
    }
    if context.after > 0 {
        around.extend(segs.get(index + 1).cloned());
    }
    around.retain(|s| !s.notes.is_empty());
    (!around.is_empty()).then(|| pitch_class_histogram(&Piece { segments: around }))
}

/// How far `candidate`'s pitch classes are from `reference`: KL(reference ‖ candidate), the
/// evaluation's pitch-class KL (spec §14), so a pitch class the reference plays and the
/// candidate leaves out costs most.
pub fn distance(reference: &[f64; 12], candidate: &Segment) -> f64 {
    let hist = pitch_class_histogram(&Piece {
        segments: vec![candidate.clone()],
    });
    histogram_kl(reference, &hist)
}

/// Restrikes and clusters inside one candidate segment ([`crate::eval::musical::defects`]):
/// what a pianist would not play, counted so that best of N can prefer the candidate without.
pub fn flaws(candidate: &Segment) -> usize {
    let d = defects(
        &Piece {
            segments: vec![candidate.clone()],
        },
        None,
    );
    d.restrikes + d.clusters
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::music::Note;

    fn seg(window: u32, pitches: &[u8]) -> Segment {
        Segment {
            window,
            notes: pitches.iter().map(|&p| Note::new(p, 80, 0, 500)).collect(),
        }
    }

    fn piece() -> Piece {
        Piece {
            segments: vec![
                seg(0, &[60, 64, 67]),
                seg(1, &[62, 65, 69]),
                seg(2, &[67, 71, 74]),
            ],
        }
    }

    #[test]
    fn neighbours_are_the_context_segments_with_notes() {
        let p = piece();
        let both = Context {
            before: 1,
            after: 1,
        };
        let r = neighbours(&p, 1, both).unwrap();
        // C E G and G B D, equal durations: G twice.
        assert!((r[7] - 2.0 / 6.0).abs() < 1e-12, "{r:?}");
        assert!((r[0] - 1.0 / 6.0).abs() < 1e-12);
        assert!((r[2] - 1.0 / 6.0).abs() < 1e-12);
        assert_eq!(r[5], 0.0, "the replaced segment's F is not a neighbour");
        let past = Context {
            before: 1,
            after: 0,
        };
        let r = neighbours(&p, 1, past).unwrap();
        assert!((r[0] - 1.0 / 3.0).abs() < 1e-12 && r[11] == 0.0);
        let none = Context {
            before: 0,
            after: 0,
        };
        assert_eq!(neighbours(&p, 1, none), None);
        let mut gap = p.clone();
        gap.segments[0].notes.clear();
        gap.segments[2].notes.clear();
        assert_eq!(neighbours(&gap, 1, both), None);
    }

    #[test]
    fn flaws_count_restrikes_and_clusters_of_one_candidate() {
        let mut s = seg(0, &[60, 62, 64, 65, 67]);
        assert_eq!(flaws(&s), 0, "five notes together are a chord");
        s.notes.push(Note::new(69, 80, 20, 500));
        assert_eq!(flaws(&s), 1, "six within 40 ms are a cluster");
        s.notes.push(Note::new(60, 80, 300, 100));
        assert_eq!(flaws(&s), 2, "60 struck again while it sounds");
    }

    #[test]
    fn the_candidate_with_the_reference_pitch_classes_is_closest() {
        let p = piece();
        let r = neighbours(
            &p,
            1,
            Context {
                before: 1,
                after: 0,
            },
        )
        .unwrap();
        let same = seg(1, &[48, 76, 79]); // C E G in other octaves
        let missing_one = seg(1, &[60, 64, 64]);
        let other = seg(1, &[61, 66, 70]);
        assert!(distance(&r, &same) < 1e-9);
        assert!(distance(&r, &same) < distance(&r, &missing_one));
        assert!(distance(&r, &missing_one) < distance(&r, &other));
    }
}
