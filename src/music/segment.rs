use serde::{Deserialize, Serialize};

use super::quantize::{quantize_duration, quantize_onset, quantize_velocity, SEGMENT_MS};

/// A performed note in absolute time, as read from a MIDI file (spec §2.1–2.2).
///
/// Times are Python-rounded milliseconds measured from the first note's onset (leading silence
/// removed); `dur_ms` already includes the sustain-pedal extension and is not yet clipped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PlayedNote {
    pub pitch: u8,
    pub velocity: u8,
    pub start_ms: u64,
    pub dur_ms: u64,
}

/// A quantized note inside a T-segment: the unit the model reads and writes.
///
/// `onset_ms` is relative to the segment's window start (0..=4990, step 10), `dur_ms` is
/// 10..=5000 (step 10), `velocity` one of 0, 15, ..., 120.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Note {
    pub pitch: u8,
    pub velocity: u8,
    pub onset_ms: u16,
    pub dur_ms: u16,
}

impl Note {
    pub const fn new(pitch: u8, velocity: u8, onset_ms: u16, dur_ms: u16) -> Self {
        Self {
            pitch,
            velocity,
            onset_ms,
            dur_ms,
        }
    }
}

/// One non-empty 5-second window of a piece ("T-segment").
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Segment {
    /// Index of the 5 s window this segment occupies: it starts at `window * 5000` ms.
    pub window: u32,
    /// Notes in the tokenizer's order (stable-sorted by onset, in-chord order from the file).
    pub notes: Vec<Note>,
}

impl Segment {
    /// Start of this segment on the piece's timeline, in milliseconds.
    pub fn start_ms(&self) -> u64 {
        self.window as u64 * SEGMENT_MS as u64
    }
}

/// A piece as the model sees it: its non-empty T-segments in time order.
///
/// "Segment index k" means the k-th *non-empty* window, as in the original (spec §4.2).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Piece {
    pub segments: Vec<Segment>,
}

impl Piece {
    /// Cut performed notes into quantized T-segments (spec §2.2). `notes` must be in the reader's
    /// order (stable-sorted by start); the order inside a chord is kept.
    pub fn from_played(notes: &[PlayedNote]) -> Self {
        let mut segments: Vec<Segment> = Vec::new();
        for n in notes {
            let window = (n.start_ms / SEGMENT_MS as u64) as u32;
            let note = Note {
                pitch: n.pitch,
                velocity: quantize_velocity(n.velocity),
                onset_ms: quantize_onset((n.start_ms % SEGMENT_MS as u64) as u32),
                dur_ms: quantize_duration(n.dur_ms),
            };
            match segments.last_mut() {
                Some(seg) if seg.window == window => seg.notes.push(note),
                _ => segments.push(Segment {
                    window,
                    notes: vec![note],
                }),
            }
        }
        Self { segments }
    }

    /// Number of notes over all segments.
    pub fn note_count(&self) -> usize {
        self.segments.iter().map(|s| s.notes.len()).sum()
    }

    /// The piece's notes on its own timeline, in milliseconds (what a MIDI writer plays).
    pub fn to_played(&self) -> Vec<PlayedNote> {
        self.segments
            .iter()
            .flat_map(|seg| {
                seg.notes.iter().map(move |n| PlayedNote {
                    pitch: n.pitch,
                    velocity: n.velocity,
                    start_ms: seg.start_ms() + n.onset_ms as u64,
                    dur_ms: n.dur_ms as u64,
                })
            })
            .collect()
    }

    /// Length of the piece in milliseconds: the end of its last sounding note.
    pub fn duration_ms(&self) -> u64 {
        self.to_played()
            .iter()
            .map(|n| n.start_ms + n.dur_ms)
            .max()
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn played(pitch: u8, velocity: u8, start_ms: u64, dur_ms: u64) -> PlayedNote {
        PlayedNote {
            pitch,
            velocity,
            start_ms,
            dur_ms,
        }
    }

    #[test]
    fn empty_windows_are_skipped_but_positions_kept() {
        let piece = Piece::from_played(&[
            played(60, 90, 0, 500),
            played(64, 80, 4996, 120),
            played(67, 60, 12_345, 7000),
        ]);
        assert_eq!(piece.segments.len(), 2);
        assert_eq!(piece.segments[0].window, 0);
        assert_eq!(
            piece.segments[0].notes,
            vec![Note::new(60, 90, 0, 500), Note::new(64, 75, 4990, 120)]
        );
        assert_eq!(piece.segments[1].window, 2);
        assert_eq!(piece.segments[1].notes, vec![Note::new(67, 60, 2350, 5000)]);
        assert_eq!(piece.note_count(), 3);
        assert_eq!(piece.to_played()[2].start_ms, 12_350);
        assert_eq!(piece.duration_ms(), 17_350);
    }
}
