//! Structure preservation (spec §13): find the points where the music changes, and keep the
//! T-segments that start the new sections untouched during refinement.
//!
//! The original runs SSMNet (a small trained network) on a WAV rendering. We compute the same
//! kind of novelty without a network: a self-similarity matrix of chroma features, Foote's
//! Gaussian checkerboard kernel along its diagonal, then SSMNet's own peak picking
//! ([`novelty`]). The features come from the MIDI itself (piano-roll chroma, the default: no
//! rendering needed) or, like the original, from a WAV file (STFT chroma) ([`chroma`]).
//!
//! Timelines. Boundaries from [`find_boundaries_midi`] are on the piece's timeline (0 = its first
//! note), the one [`protected_segments`] expects. Boundaries from [`find_boundaries_wav`] are on the
//! audio file's timeline, which includes the MIDI file's silence before its first note; shift
//! them with [`to_piece_timeline`] and the `leading_silence_ms` of the
//! [`Performance`](crate::music::Performance) the piece was read from. (The original compared
//! SSMNet's absolute times with absolute note times, which is the same thing, spec §16.6.)

pub mod chroma;
mod error;
pub mod novelty;

use std::path::Path;

pub use chroma::{Chroma, ChromaParams};
pub use error::StructureError;
pub use novelty::{Boundary, NoveltyParams};

use crate::music::quantize::SEGMENT_MS;
use crate::music::Piece;

/// Boundaries of a piece from its own notes (piano-roll chroma), on the piece's timeline, in
/// time order.
pub fn find_boundaries_midi(piece: &Piece, params: &NoveltyParams) -> Vec<Boundary> {
    let chroma = chroma::chroma_from_piece(piece, &params.chroma);
    novelty::boundaries_from_chroma(&chroma, params)
}

/// Boundaries of a WAV rendering (STFT chroma), on the audio file's timeline, in time order.
/// See [`to_piece_timeline`] before passing them to [`protected_segments`].
pub fn find_boundaries_wav(
    path: &Path,
    params: &NoveltyParams,
) -> Result<Vec<Boundary>, StructureError> {
    let chroma = chroma::chroma_from_wav(path, &params.chroma)?;
    Ok(novelty::boundaries_from_chroma(&chroma, params))
}

/// Move boundaries from an audio file's timeline to the piece's: subtract the MIDI file's
/// silence before its first note (`Performance::leading_silence_ms`). A boundary inside that
/// silence gets a negative time, and so protects the segment of the first note.
pub fn to_piece_timeline(boundaries: &[Boundary], leading_silence_ms: u64) -> Vec<Boundary> {
    let shift_s = leading_silence_ms as f64 / 1000.0;
    boundaries
        .iter()
        .map(|b| Boundary {
            time_s: b.time_s - shift_s,
            ..*b
        })
        .collect()
}

/// Number of `<T>` tokens in the piece's token stream: one per 5 s window boundary before the last
/// segment (spec §2.2), i.e. the last segment's window index.
pub fn t_token_count(piece: &Piece) -> usize {
    piece.segments.last().map_or(0, |s| s.window as usize)
}

/// How many boundaries a preservation ratio keeps (spec §13.2):
/// `ceil(novel_peaks_pct × number of <T> tokens)`. A ratio of 0 or less keeps none.
pub fn novel_peak_count(piece: &Piece, novel_peaks_pct: f64) -> usize {
    if novel_peaks_pct.is_nan() || novel_peaks_pct <= 0.0 {
        return 0;
    }
    (novel_peaks_pct * t_token_count(piece) as f64).ceil() as usize
}

/// The segments that structure preservation keeps untouched (spec §13.2), as indices into
/// `piece.segments`, sorted and deduplicated.
///
/// `boundaries` are on the piece's timeline (see the module notes). The
/// [`novel_peak_count`] with the highest novelty are kept and put in time order. Then the notes
/// are walked in order (segment by segment, in-segment order): a note that starts strictly after
/// the next pending boundary is a "novel note" and consumes that boundary (one boundary per note,
/// as in the original); the segments holding novel notes are protected. A boundary after the last
/// note start protects nothing (the original crashed there, spec §16.6).
pub fn protected_segments(
    piece: &Piece,
    boundaries: &[Boundary],
    novel_peaks_pct: f64,
) -> Vec<usize> {
    let n_peaks = novel_peak_count(piece, novel_peaks_pct);
    if n_peaks == 0 {
        return Vec::new();
    }
    let mut ranked: Vec<&Boundary> = boundaries.iter().collect();
    // Highest novelty first; ties keep the input order (time order, as the finders return).
    ranked.sort_by(|a, b| b.novelty.total_cmp(&a.novelty));
    let mut times: Vec<f64> = ranked.iter().take(n_peaks).map(|b| b.time_s).collect();
    times.sort_by(f64::total_cmp);

    let mut pending = times.into_iter().peekable();
    let mut protected = Vec::new();
    'segments: for (index, seg) in piece.segments.iter().enumerate() {
        for note in &seg.notes {
            let Some(&peak_s) = pending.peek() else {
                break 'segments;
            };
            let note_ms = seg.window as u64 * SEGMENT_MS as u64 + note.onset_ms as u64;
            if note_ms as f64 / 1000.0 > peak_s {
                pending.next();
                if protected.last() != Some(&index) {
                    protected.push(index);
                }
            }
        }
    }
    protected
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::music::{Note, Segment};

    fn boundary(time_s: f64, novelty: f64) -> Boundary {
        Boundary {
            time_s,
            novelty,
            ratio: 2.0,
        }
    }

    /// Segments in windows 0, 1, 2, 4, 5 (window 3 empty), two notes each at 0 and 2.5 s.
    fn piece() -> Piece {
        let segments = [0, 1, 2, 4, 5]
            .into_iter()
            .map(|window| Segment {
                window,
                notes: vec![Note::new(60, 90, 0, 500), Note::new(64, 90, 2500, 500)],
            })
            .collect();
        Piece { segments }
    }

    #[test]
    fn peak_count_follows_the_t_token_count() {
        let p = piece();
        assert_eq!(t_token_count(&p), 5);
        assert_eq!(novel_peak_count(&p, 0.0), 0);
        assert_eq!(novel_peak_count(&p, 0.05), 1);
        assert_eq!(novel_peak_count(&p, 0.2), 1);
        assert_eq!(novel_peak_count(&p, 0.21), 2);
        assert_eq!(novel_peak_count(&p, f64::NAN), 0);
        assert_eq!(novel_peak_count(&Piece::default(), 0.5), 0);
    }

    #[test]
    fn top_boundaries_protect_the_segment_of_the_next_note() {
        let p = piece();
        // Note starts: 0, 2.5, 5, 7.5, 10, 12.5, 20, 22.5, 25, 27.5 s.
        let b = [
            boundary(4.0, 0.9),  // -> note at 5 s, segment 1
            boundary(12.5, 0.5), // not strictly later than 12.5: note at 20 s, segment 3
            boundary(18.0, 0.2), // lowest: dropped when two are kept
        ];
        assert_eq!(protected_segments(&p, &b, 0.0), Vec::<usize>::new());
        assert_eq!(protected_segments(&p, &b, 0.2), vec![1]);
        assert_eq!(protected_segments(&p, &b, 0.4), vec![1, 3]);
        // All three: 18 s is consumed by the note after 20 s's (one boundary per note), 22.5 s.
        assert_eq!(protected_segments(&p, &b, 1.0), vec![1, 3]);
    }

    #[test]
    fn boundaries_before_the_first_or_after_the_last_note() {
        let p = piece();
        // Before the first note (e.g. in the leading silence): the first note's segment.
        assert_eq!(protected_segments(&p, &[boundary(-0.3, 1.0)], 1.0), vec![0]);
        // After the last note start: nothing, and no crash.
        assert_eq!(
            protected_segments(&p, &[boundary(27.5, 1.0), boundary(40.0, 0.5)], 1.0),
            Vec::<usize>::new()
        );
        assert!(protected_segments(&p, &[], 1.0).is_empty());
    }

    #[test]
    fn audio_times_shift_by_the_leading_silence() {
        let b = to_piece_timeline(&[boundary(7.0, 0.8)], 2500);
        assert_eq!(b[0].time_s, 4.5);
        assert_eq!(b[0].novelty, 0.8);
        // 4.5 s on the piece: the note at 5 s, segment 1.
        assert_eq!(protected_segments(&piece(), &b, 1.0), vec![1]);
    }
}
