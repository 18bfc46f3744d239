//! The nine corruption functions of spec §6 and the choice between them.
//!
//! Every random draw takes an explicit rng, so a seed reproduces a run. Draws follow the
//! original's structure (same distributions, same order of decisions), not Python's bit stream.
//!
//! [`Behaviour::Faithful`] reproduces the original's edge-case bugs (spec §16.4), which shaped what
//! the released model learned; [`Behaviour::Fixed`], the default at inference, repairs them.

use std::fmt;
use std::str::FromStr;

use rand::seq::SliceRandom;
use rand::Rng;

use crate::music::{Note, Piece, Segment};
pub use crate::tokens::{
    BlockElement, CorruptedSegment, Corruption, Genre, MaskedNote, PitchVelocity, Tail, UnknownName,
};

/// Lowest pitch of an 88-key piano; `Fixed` corruptions never go below it.
pub const PIANO_LOW: u8 = 21;
/// Highest pitch of an 88-key piano; `Fixed` corruptions never go above it.
pub const PIANO_HIGH: u8 = 108;
/// Velocity `skyline` gives every note it keeps.
pub const SKYLINE_VELOCITY: u8 = 90;
/// Notes closer than this (ms) belong to one chord for `skyline` and `note_modification`.
pub const CHORD_WINDOW_MS: i64 = 50;
/// Velocities `note_modification` picks from for the notes it adds.
pub const ADDED_VELOCITIES: [u8; 5] = [45, 60, 75, 90, 105];
/// Probability of the original's hidden context drop (spec §6.2).
pub const CONTEXT_DROP_PROBABILITY: f64 = 0.1;

/// Whether to reproduce the original's corruption bugs or repair them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Behaviour {
    /// Exactly the original, bugs included: `skyline` loses a segment's final chord and turns a
    /// single note into nothing; `note_modification` always drops the last note and leaves added
    /// notes unsorted; transpositions and added notes are unbounded (pitches outside 0..=127 then
    /// lose their pitch-velocity token in the encoder input, as at the original's inference).
    Faithful,
    /// The repaired variant: `skyline` keeps the final group's top note and single notes,
    /// `note_modification` keeps the last note and sorts added notes by onset, and every
    /// transposed or added pitch stays inside 21..=108.
    #[default]
    Fixed,
}

/// A pass's corruption setting: one named corruption, or `random` (uniform per call, as the
/// current original code does per segment).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CorruptionChoice {
    Fixed(Corruption),
    Random,
}

impl CorruptionChoice {
    /// The corruption to apply now; `Random` draws uniformly over the nine.
    pub fn pick(self, rng: &mut impl Rng) -> Corruption {
        match self {
            CorruptionChoice::Fixed(c) => c,
            CorruptionChoice::Random => Corruption::ALL[rng.gen_range(0..Corruption::ALL.len())],
        }
    }
}

impl fmt::Display for CorruptionChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CorruptionChoice::Fixed(c) => c.fmt(f),
            CorruptionChoice::Random => f.write_str("random"),
        }
    }
}

impl FromStr for CorruptionChoice {
    type Err = UnknownName;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "random" {
            return Ok(CorruptionChoice::Random);
        }
        s.parse().map(CorruptionChoice::Fixed).map_err(|mut e| {
            e.valid.push_str(", random");
            e
        })
    }
}

impl From<Corruption> for CorruptionChoice {
    fn from(c: Corruption) -> Self {
        CorruptionChoice::Fixed(c)
    }
}

/// Python's `random.uniform(a, b)`.
fn uniform(rng: &mut impl Rng, a: f64, b: f64) -> f64 {
    a + (b - a) * rng.gen::<f64>()
}

/// Python's `random.randint(a, b)`: both ends inclusive.
fn randint(rng: &mut impl Rng, a: i64, b: i64) -> i64 {
    if a >= b {
        a
    } else {
        rng.gen_range(a..=b)
    }
}

/// `10 * round(x / 10)` with Python's half-to-even `round`.
pub fn round10(x: f64) -> i64 {
    (x / 10.0).round_ties_even() as i64 * 10
}

/// A note during corruption, in wide integers: the faithful variants can leave MIDI's ranges.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Work {
    pitch: i64,
    velocity: u8,
    onset: i64,
    dur: i64,
}

impl Work {
    fn from_note(n: &Note) -> Self {
        Self {
            pitch: n.pitch as i64,
            velocity: n.velocity,
            onset: n.onset_ms as i64,
            dur: n.dur_ms as i64,
        }
    }

    fn masked(self) -> MaskedNote {
        MaskedNote {
            onset_ms: Some(self.onset.clamp(0, u16::MAX as i64) as u16),
            dur_ms: Some(self.dur.clamp(0, u16::MAX as i64) as u16),
            pitch_velocity: Some(PitchVelocity {
                pitch: self.pitch.clamp(i16::MIN as i64, i16::MAX as i64) as i16,
                velocity: self.velocity,
            }),
        }
    }
}

fn clamp_piano(pitch: i64) -> i64 {
    pitch.clamp(PIANO_LOW as i64, PIANO_HIGH as i64)
}

/// Corrupts one segment with `kind` for the encoder block `SEP kind genre … SEP`.
///
/// `genre` is the label written into the block: the piece's genre in training, the *target*
/// genre at generation. Empty segments give empty content (or `mask` for `whole_mask`).
pub fn corrupt(
    segment: &Segment,
    kind: Corruption,
    genre: Genre,
    behaviour: Behaviour,
    rng: &mut impl Rng,
) -> CorruptedSegment {
    let notes = &segment.notes;
    let plain = |ns: Vec<Work>| {
        ns.into_iter()
            .map(|w| BlockElement::Note(w.masked()))
            .collect()
    };
    let content: Vec<BlockElement> = match kind {
        Corruption::PitchVelocityMask => notes
            .iter()
            .map(|n| {
                BlockElement::Note(MaskedNote {
                    pitch_velocity: None,
                    ..MaskedNote::plain(n)
                })
            })
            .collect(),
        Corruption::OnsetDurationMask => notes
            .iter()
            .map(|n| {
                BlockElement::Note(MaskedNote {
                    onset_ms: None,
                    dur_ms: None,
                    ..MaskedNote::plain(n)
                })
            })
            .collect(),
        Corruption::WholeMask => vec![BlockElement::Mask],
        Corruption::PermutePitches => plain(permute(notes, false, rng)),
        Corruption::PermutePitchVelocity => plain(permute(notes, true, rng)),
        Corruption::Fragmentation => fragmentation(notes, rng)
            .iter()
            .map(|n| BlockElement::Note(MaskedNote::plain(n)))
            .collect(),
        Corruption::IncorrectTransposition => plain(incorrect_transposition(notes, behaviour, rng)),
        Corruption::Skyline => skyline(notes, behaviour)
            .iter()
            .map(|n| BlockElement::Note(MaskedNote::plain(n)))
            .collect(),
        Corruption::NoteModification => plain(note_modification(notes, behaviour, rng)),
    };
    CorruptedSegment {
        kind,
        genre,
        content,
    }
}

/// `permute_pitches` / `permute_pitch_velocity`: shuffle pitches (and, independently,
/// velocities) and give them back in note order; timing is untouched.
fn permute(notes: &[Note], velocities_too: bool, rng: &mut impl Rng) -> Vec<Work> {
    let mut pitches: Vec<u8> = notes.iter().map(|n| n.pitch).collect();
    pitches.shuffle(rng);
    let mut vels: Vec<u8> = notes.iter().map(|n| n.velocity).collect();
    if velocities_too {
        vels.shuffle(rng);
    }
    notes
        .iter()
        .zip(pitches)
        .zip(vels)
        .map(|((n, p), v)| Work {
            pitch: p as i64,
            velocity: v,
            ..Work::from_note(n)
        })
        .collect()
}

/// `fragmentation`: keep only the leading `int(len * uniform(0.2, 0.5))` notes. A segment of one
/// or two notes always becomes empty (up to four may): the original's design, kept in both modes.
pub fn fragmentation(notes: &[Note], rng: &mut impl Rng) -> Vec<Note> {
    let frac = uniform(rng, 0.2, 0.5);
    let keep = (notes.len() as f64 * frac) as usize;
    notes[..keep.min(notes.len())].to_vec()
}

/// `incorrect_transposition`: each note, with probability 0.5, moves by `randint(-5, 5)`
/// (possibly 0). Faithful leaves the result unbounded; Fixed clamps it to the piano's range.
fn incorrect_transposition(notes: &[Note], behaviour: Behaviour, rng: &mut impl Rng) -> Vec<Work> {
    notes
        .iter()
        .map(|n| {
            let mut w = Work::from_note(n);
            if rng.gen::<f64>() < 0.5 {
                w.pitch += randint(rng, -5, 5);
                if behaviour == Behaviour::Fixed {
                    w.pitch = clamp_piano(w.pitch);
                }
            }
            w
        })
        .collect()
}

/// `skyline`: the top voice, notes chained within 50 ms of their predecessor forming one group,
/// each group represented by its (first) highest note at that note's own onset, velocity 90.
///
/// Faithful keeps the original's control flow, so a segment's final group is lost when it is a
/// chord, and a segment with fewer than two notes becomes empty. Fixed keeps them.
pub fn skyline(notes: &[Note], behaviour: Behaviour) -> Vec<Note> {
    let top = |n: &Note| Note::new(n.pitch, SKYLINE_VELOCITY, n.onset_ms, n.dur_ms);
    let mut out = Vec::new();
    match behaviour {
        Behaviour::Faithful => {
            if notes.len() < 2 {
                return out;
            }
            let mut pointer = notes[0];
            let last = notes.len() - 1;
            for i in 1..=last {
                let cur = notes[i];
                let gap = (cur.onset_ms as i64 - notes[i - 1].onset_ms as i64).abs();
                if gap > CHORD_WINDOW_MS {
                    if pointer.pitch > 0 {
                        out.push(top(&pointer));
                    }
                    pointer = cur;
                } else if cur.pitch > pointer.pitch {
                    pointer = cur;
                } else {
                    // The original `continue`s here, skipping its end-of-segment branch too.
                    continue;
                }
                if i == last {
                    if gap > CHORD_WINDOW_MS {
                        out.push(top(&pointer));
                    } else if cur.pitch > pointer.pitch {
                        // Never true (pointer was just set to cur): the final chord is lost.
                        out.push(top(&cur));
                    }
                }
            }
        }
        Behaviour::Fixed => out.extend(top_voice(notes).into_iter().map(|i| top(&notes[i]))),
    }
    out
}

/// Indices of a segment's top voice, in order: notes chained within 50 ms of their predecessor
/// form one group, and each group gives its first highest note (silent pitch 0 left out).
///
/// This is `skyline`'s fixed rule, shared with the constrained decoder and the musical checks,
/// so that "the tune" means the same everywhere.
pub fn top_voice(notes: &[Note]) -> Vec<usize> {
    let mut out = Vec::new();
    let mut pointer: Option<usize> = None;
    let mut prev_onset = 0i64;
    for (i, cur) in notes.iter().enumerate() {
        let onset = cur.onset_ms as i64;
        match pointer {
            Some(p) if (onset - prev_onset).abs() <= CHORD_WINDOW_MS => {
                if cur.pitch > notes[p].pitch {
                    pointer = Some(i);
                }
            }
            _ => {
                out.extend(pointer.filter(|&p| notes[p].pitch > 0));
                pointer = Some(i);
            }
        }
        prev_onset = onset;
    }
    out.extend(pointer.filter(|&p| notes[p].pitch > 0));
    out
}

/// `note_modification`: an omission stage (merging or dropping notes) then an addition stage
/// (splitting a long note and adding a nearby one). See spec §6 item 9 for the exact rules.
fn note_modification(notes: &[Note], behaviour: Behaviour, rng: &mut impl Rng) -> Vec<Work> {
    let fixed = behaviour == Behaviour::Fixed;
    let n = notes.len();

    // Omission. Faithful never reaches the last note, so it is always dropped.
    let mut skipped = vec![false; n];
    let mut kept: Vec<Work> = Vec::with_capacity(n);
    for i in 0..n.saturating_sub(1) {
        if skipped[i] {
            continue;
        }
        let mut w = Work::from_note(&notes[i]);
        let q = uniform(rng, 0.1, 0.4);
        if rng.gen::<f64>() < q {
            skipped[i + 1] = true;
            let next = Work::from_note(&notes[i + 1]);
            if (w.onset - next.onset).abs() > CHORD_WINDOW_MS {
                w.dur = (w.dur + next.dur).min(5000);
            }
        }
        kept.push(w);
    }
    if fixed && n > 0 && !skipped[n - 1] {
        kept.push(Work::from_note(&notes[n - 1]));
    }

    // Addition.
    let mut out: Vec<Work> = Vec::with_capacity(kept.len() * 2);
    for (e, &w) in kept.iter().enumerate() {
        let draw = rng.gen::<f64>() < uniform(rng, 0.1, 0.4);
        let next = kept.get(e + 1);
        match next {
            Some(next) if draw && w.dur > 500 => {
                let copy = Work {
                    dur: round10((w.dur / 2) as f64),
                    ..w
                };
                out.push(copy);
                let mut pitch = copy.pitch + randint(rng, -5, 5);
                if fixed {
                    pitch = clamp_piano(pitch);
                }
                let velocity = ADDED_VELOCITIES[rng.gen_range(0..ADDED_VELOCITIES.len())];
                let mut onset =
                    round10((copy.onset + randint(rng, 0, (next.onset - copy.onset).abs())) as f64);
                if fixed {
                    onset = onset.min(4990);
                }
                let spread = (0.1 * copy.dur as f64) as i64;
                let dur = round10((copy.dur + randint(rng, -spread, spread)).min(5000) as f64);
                out.push(Work {
                    pitch,
                    velocity,
                    onset,
                    dur,
                });
            }
            _ => out.push(w),
        }
    }
    if fixed {
        // Stable: chord order and the split note before its added neighbour are kept.
        out.sort_by_key(|w| w.onset);
    }
    out
}

/// The original's hidden context drop (spec §6.2): with probability 0.1, unless segment `s` is
/// the very first element of the piece, the window loses its farthest after-context segment.
/// The original applies it everywhere; our port uses it for training only.
pub fn random_context_drop(piece: &Piece, s: usize, rng: &mut impl Rng) -> Tail {
    let first_element = s == 0 && piece.segments.first().is_some_and(|seg| seg.window == 0);
    if !first_element && rng.gen::<f64>() < CONTEXT_DROP_PROBABILITY {
        Tail::Drop
    } else {
        Tail::Keep
    }
}
