use serde::{Deserialize, Serialize};

use super::quantize::{
    quantize_duration, quantize_onset, quantize_velocity, MAX_DUR_MS, SEGMENT_MS,
};

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

// The reader quantizes every note of every file: these tables hold the quantizers' answers for
// every input they can tell apart, computed at compile time, so a note costs three loads instead
// of three grid searches.

/// [`quantize_onset`] of every millisecond of a window.
static ONSET_OF_MS: [u16; SEGMENT_MS as usize] = {
    let mut table = [0u16; SEGMENT_MS as usize];
    let mut ms = 0;
    while ms < table.len() {
        table[ms] = quantize_onset(ms as u32);
        ms += 1;
    }
    table
};

/// [`quantize_duration`] of 0..=5000 ms (longer ones clip to 5000).
static DURATION_OF_MS: [u16; MAX_DUR_MS as usize + 1] = {
    let mut table = [0u16; MAX_DUR_MS as usize + 1];
    let mut ms = 0;
    while ms < table.len() {
        table[ms] = quantize_duration(ms as u64);
        ms += 1;
    }
    table
};

/// [`quantize_velocity`] of every velocity byte.
static VELOCITY_OF: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut v = 0;
    while v < table.len() {
        table[v] = quantize_velocity(v as u8);
        v += 1;
    }
    table
};

/// [`quantize_onset`], fast.
fn fast_onset(ms_in_window: u32) -> u16 {
    ONSET_OF_MS[ms_in_window as usize]
}

/// [`quantize_duration`], fast.
fn fast_duration(dur_ms: u64) -> u16 {
    DURATION_OF_MS[dur_ms.min(u64::from(MAX_DUR_MS)) as usize]
}

/// [`quantize_velocity`], fast.
fn fast_velocity(velocity: u8) -> u8 {
    VELOCITY_OF[usize::from(velocity)]
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
        let window_of = |n: &PlayedNote| (n.start_ms / SEGMENT_MS as u64) as u32;
        let mut segments: Vec<Segment> = Vec::new();
        let mut rest = notes;
        while let Some(first) = rest.first() {
            // One window's notes at a time, so each segment is allocated once at its final size.
            let window = window_of(first);
            let len = rest
                .iter()
                .position(|n| window_of(n) != window)
                .unwrap_or(rest.len());
            let (inside, after) = rest.split_at(len);
            segments.push(Segment {
                window,
                notes: inside
                    .iter()
                    .map(|n| Note {
                        pitch: n.pitch,
                        velocity: fast_velocity(n.velocity),
                        onset_ms: fast_onset((n.start_ms % SEGMENT_MS as u64) as u32),
                        dur_ms: fast_duration(n.dur_ms),
                    })
                    .collect(),
            });
            rest = after;
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
    fn fast_quantizers_match_the_grid_search_everywhere() {
        for ms in 0..SEGMENT_MS {
            assert_eq!(fast_onset(ms), quantize_onset(ms), "onset {ms}");
        }
        for d in (0..=2 * u64::from(MAX_DUR_MS)).chain([u64::MAX - 5, u64::MAX]) {
            assert_eq!(fast_duration(d), quantize_duration(d), "duration {d}");
        }
        for v in 0..=u8::MAX {
            assert_eq!(fast_velocity(v), quantize_velocity(v), "velocity {v}");
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
