//! Template-constrained decoding (issue #26): what a corruption keeps, the output keeps.
//!
//! Under [`Fidelity::Strict`] a rewritten segment is decoded under a [`Template`] built from the
//! segment as it stands, its corruption, and its *tune* (the top voice of the player's original,
//! or the melody being harmonized). A token the template forces is the only one the sampler may
//! pick; the model chooses only what the corruption took away, within its bounds:
//!
//! | corruption | forced | the model chooses |
//! |---|---|---|
//! | pitch_velocity_mask | every timing, the tune's notes | other pitches and velocities |
//! | onset_duration_mask | every pitch and velocity, the tune's notes | other timings, in order |
//! | permute_pitches, permute_pitch_velocity | timings (and velocities), the tune | the block's own pitches (velocities), each once |
//! | incorrect_transposition | timings, velocities, the tune | other pitches within 5 semitones of the block's |
//! | fragmentation | the kept notes, then the tune | notes around the tune |
//! | skyline, whole_mask, note_modification, harmonization | the tune | notes around and below it |
//!
//! [`Bounds`] are the musical sanity rules (no pitch struck while it still sounds, the range of
//! the music around, velocities near the music around, a note count near the input's), used in
//! both fidelities. They are *soft*: each narrows the choice only when something is left, so a
//! forced token always wins.

use std::fmt;
use std::str::FromStr;

use crate::corrupt::{top_voice, BlockElement, CorruptedSegment, Corruption};
use crate::model::{ChordConstraint, CopyDraft, Draft, ForbidTokens, LogitsProcessor};
use crate::music::{Note, Piece, Segment};
use crate::tokens::{velocity_row, DUR_BASE, EOS, ONSET_BASE, PIANO_BASE, VELOCITY_BINS};

/// How much of the player's music a rewritten segment must keep.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Fidelity {
    /// Decode under the corruption's template: kept tokens and the tune are forced.
    #[default]
    Strict,
    /// The original's unconstrained regeneration (parity with the released weights).
    Free,
}

impl Fidelity {
    pub const fn name(self) -> &'static str {
        match self {
            Fidelity::Strict => "strict",
            Fidelity::Free => "free",
        }
    }
}

impl fmt::Display for Fidelity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Fidelity {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "strict" => Ok(Fidelity::Strict),
            "free" => Ok(Fidelity::Free),
            _ => Err(format!("unknown fidelity {s:?}; valid: strict, free")),
        }
    }
}

/// Lowest and highest pitch the decoder may write (an 88-key piano).
const LOWEST: u8 = 21;
const HIGHEST: u8 = 108;
/// Last onset inside a segment (5000 ms is the next window).
const LAST_ONSET_MS: u16 = 4990;
/// Velocity rows a note may get: 15..=120 (row 0 is silent, 127 is never tokenized).
const VELOCITY_ROWS: std::ops::RangeInclusive<u32> = 1..=8;
/// A note starting this soon after a tune note belongs to its chord.
const CHORD_MS: u16 = 50;
/// Notes whose onsets lie this close together form one onset group ...
const CLUSTER_MS: u16 = 40;
/// ... and a group takes at most this many notes (six within 40 ms is a cluster).
const MAX_GROUP: usize = 5;
/// How long a chord filled under a melody note is held, at least (a beat at 120 bpm).
const CHORD_HOLD_MS: u16 = 500;
/// How far `onset_duration_mask` may move a note from where the player put it.
const RETIME_MS: u16 = 250;
/// Velocity steps the mean of the model's own notes may stray from the loudness target.
const LOUDNESS_SLACK: u32 = 6;
/// Semitones the median of the model's own notes may stray from the register before it is
/// pulled back.
const REGISTER_SLACK: u8 = 2;
/// Largest transposition error `incorrect_transposition` makes (spec §6).
const TRANSPOSITION_RADIUS: u8 = 5;

fn onset_id(ms: u16) -> u32 {
    ONSET_BASE + u32::from(ms / 10)
}

fn dur_id(ms: u16) -> u32 {
    DUR_BASE + u32::from(ms / 10)
}

fn pv_id(pitch: u8, velocity: u8) -> u32 {
    PIANO_BASE + velocity_row(velocity) * 128 + u32::from(pitch)
}

/// What a token id is, for the template's bookkeeping.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Onset(u16),
    Dur(u16),
    Note { pitch: u8, velocity: u8 },
    Other,
}

fn kind(id: u32) -> Kind {
    if (PIANO_BASE..ONSET_BASE).contains(&id) {
        let i = id - PIANO_BASE;
        Kind::Note {
            pitch: (i % 128) as u8,
            velocity: VELOCITY_BINS[(i / 128) as usize],
        }
    } else if (ONSET_BASE..DUR_BASE).contains(&id) {
        Kind::Onset(((id - ONSET_BASE) * 10) as u16)
    } else if (DUR_BASE..DUR_BASE + 501).contains(&id) {
        Kind::Dur(((id - DUR_BASE) * 10) as u16)
    } else {
        Kind::Other
    }
}

/// The musical sanity rules of one segment (soft limits, both fidelities).
#[derive(Clone, Debug, PartialEq)]
pub struct Bounds {
    /// Pitch range: the segment's and its neighbours', widened by a margin.
    pub low: u8,
    pub high: u8,
    /// Velocity range: the segment's and its neighbours', one bin wider each way.
    pub velocity_low: u8,
    pub velocity_high: u8,
    /// The end may not come before this many notes, nor after this many.
    pub min_notes: usize,
    pub max_notes: usize,
    /// Notes of earlier segments still sounding here: pitch and end (ms from this segment's start).
    pub sounding: Vec<(u8, u16)>,
    /// Notes of the next segment: pitch and onset (ms from this segment's start, so 5000 on):
    /// nothing is held over a later strike of its pitch.
    pub later: Vec<(u8, u16)>,
    /// The median pitch the model's own notes keep to (the segment's inner voices, or a gap's
    /// neighbours): the register does not drift.
    pub register: Option<u8>,
    /// The mean velocity the model's own notes keep to (a gap: its neighbours').
    pub loudness: Option<u8>,
    /// Pitch classes the model's notes prefer (a gap: those of the music around it).
    pub key: Option<[bool; 12]>,
}

impl Bounds {
    /// Everything allowed: no sanity rule narrows anything.
    pub fn open(max_notes: usize) -> Self {
        Self {
            low: LOWEST,
            high: HIGHEST,
            velocity_low: 0,
            velocity_high: 127,
            min_notes: 0,
            max_notes,
            sounding: Vec::new(),
            later: Vec::new(),
            register: None,
            loudness: None,
            key: None,
        }
    }
}

/// Semitones the decoder may go beyond the range of the music around a segment.
pub const RANGE_MARGIN: u8 = 7;
/// Under a melody being harmonized, the chords may reach this far below its lowest note.
pub const HARMONY_REACH: u8 = 24;
/// Semitones a rewrite may go beyond its own segment's range.
pub const OWN_RANGE_MARGIN: u8 = 3;

impl Bounds {
    /// The bounds of segment `index` of `piece` with `before` and `after` segments of context
    /// around it; `tune` notes are forced, and `max_notes` is what the decoder's length allows.
    pub fn around(
        piece: &Piece,
        window: u32,
        before: usize,
        after: usize,
        tune: usize,
        harmonize: bool,
        max_notes: usize,
    ) -> Self {
        let segs = &piece.segments;
        let at = segs.partition_point(|s| s.window < window);
        let own = segs.get(at).filter(|s| s.window == window);
        let next = at + usize::from(own.is_some());
        let around: Vec<&Segment> = segs[at.saturating_sub(before)..at]
            .iter()
            .chain(own)
            .chain(&segs[next..(next + after).min(segs.len())])
            .filter(|s| !s.notes.is_empty())
            .collect();
        // The segment's own register and loudness where it has notes (a rewrite stays where the
        // player was); in a gap, its nearest neighbours' (the music it must join).
        let own_notes = own.filter(|s| !s.notes.is_empty() && !harmonize);
        // The nearest music on each side the model sees; of the two, the closer one (both
        // when they are as close): a gap's first window joins what came before, its last what
        // comes after.
        let prev = segs[..at]
            .iter()
            .rev()
            .find(|s| !s.notes.is_empty())
            .filter(|_| before > 0);
        let following = segs[next..]
            .iter()
            .find(|s| !s.notes.is_empty())
            .filter(|_| after > 0);
        let near: Vec<&Segment> = match (prev, following) {
            (Some(p), Some(f)) => match (window - p.window).cmp(&(f.window - window)) {
                std::cmp::Ordering::Less => vec![p],
                std::cmp::Ordering::Greater => vec![f],
                std::cmp::Ordering::Equal => vec![p, f],
            },
            (p, f) => p.into_iter().chain(f).collect(),
        };
        let (notes, margin): (Vec<&Note>, u8) = match own_notes {
            Some(s) => (s.notes.iter().collect(), OWN_RANGE_MARGIN),
            None => (
                around.iter().flat_map(|s| s.notes.iter()).collect(),
                RANGE_MARGIN,
            ),
        };
        let (mut low, mut high) = (LOWEST, HIGHEST);
        if let (Some(min), Some(max)) = (
            notes.iter().map(|n| n.pitch).min(),
            notes.iter().map(|n| n.pitch).max(),
        ) {
            let below = if harmonize { HARMONY_REACH } else { margin };
            low = min.saturating_sub(below).clamp(LOWEST, HIGHEST);
            high = max.saturating_add(margin).clamp(low, HIGHEST);
        }
        let (mut velocity_low, mut velocity_high) = (VELOCITY_BINS[1], VELOCITY_BINS[8]);
        let mut register = None;
        let mut loudness = None;
        let mut key = None;
        match own_notes {
            Some(s) => {
                let (min, max) = (
                    s.notes.iter().map(|n| n.velocity).min().unwrap_or(0),
                    s.notes.iter().map(|n| n.velocity).max().unwrap_or(127),
                );
                velocity_low = VELOCITY_BINS[(velocity_row(min) as usize).max(1)];
                velocity_high = VELOCITY_BINS[(velocity_row(max) as usize).clamp(1, 8)];
                let top = top_voice(&s.notes);
                let inner: Vec<u8> = (0..s.notes.len())
                    .filter(|i| !top.contains(i))
                    .map(|i| s.notes[i].pitch)
                    .collect();
                register = median(inner);
            }
            None if !near.is_empty() => {
                let near_notes = || near.iter().flat_map(|s| s.notes.iter());
                let count = near_notes().count();
                let mean = near_notes().map(|n| u32::from(n.velocity)).sum::<u32>() / count as u32;
                let row = velocity_row(mean as u8) as usize;
                velocity_low = VELOCITY_BINS[row.saturating_sub(1).max(1)];
                velocity_high = VELOCITY_BINS[(row + 1).clamp(1, 8)];
                loudness = Some(mean as u8);
                register = median(near_notes().map(|n| n.pitch).collect());
                key = Some(context_key(&notes));
            }
            None => {}
        }
        let own = own.map_or(0, |s| s.notes.len());
        let near_count = if near.is_empty() {
            0
        } else {
            near.iter()
                .map(|s| s.notes.len())
                .sum::<usize>()
                .div_ceil(near.len())
        };
        let (min_notes, max_notes) = if harmonize {
            (tune, ((5 * tune).div_ceil(2) + 4).min(max_notes))
        } else if own > 0 {
            (own * 3 / 5, (own + own.div_ceil(10) + 1).min(max_notes))
        } else if near_count > 0 {
            // A gap joins its neighbours: within a fifth of their note count.
            (
                (near_count * 4).div_ceil(5),
                (near_count + (near_count / 5).max(1)).min(max_notes),
            )
        } else {
            (0, max_notes)
        };
        Self {
            low,
            high,
            velocity_low,
            velocity_high,
            min_notes: min_notes.min(max_notes),
            max_notes,
            sounding: Vec::new(),
            later: Vec::new(),
            register,
            loudness,
            key,
        }
    }

    /// Also keeps from restriking the notes of `piece`'s segment before `index` that still sound
    /// into segment `index`, and from holding a note over a strike of its pitch in the next.
    pub fn with_sounding_into(mut self, piece: &Piece, index: usize) -> Self {
        self.sounding.clear();
        self.later.clear();
        if let (Some(seg), Some(next)) = (piece.segments.get(index), piece.segments.get(index + 1))
        {
            if next.window == seg.window + 1 {
                self.later.extend(
                    next.notes
                        .iter()
                        .map(|n| (n.pitch, n.onset_ms.saturating_add(5000))),
                );
            }
        }
        let (Some(prev), Some(seg)) = (
            index.checked_sub(1).and_then(|i| piece.segments.get(i)),
            piece.segments.get(index),
        ) else {
            return self;
        };
        let start = seg.start_ms();
        for n in &prev.notes {
            let end = prev.start_ms() + u64::from(n.onset_ms) + u64::from(n.dur_ms);
            if end > start {
                self.sounding
                    .push((n.pitch, (end - start).min(u64::from(u16::MAX)) as u16));
            }
        }
        self
    }
}

/// The median of some pitches (the lower middle one), `None` for none.
fn median(mut pitches: Vec<u8>) -> Option<u8> {
    pitches.sort_unstable();
    pitches.get(pitches.len().saturating_sub(1) / 2).copied()
}

/// The pitch classes that sound at least 3 % of the time in `notes` (duration-weighted).
fn context_key(notes: &[&Note]) -> [bool; 12] {
    let mut weight = [0u64; 12];
    for n in notes {
        weight[usize::from(n.pitch % 12)] += u64::from(n.dur_ms.max(10));
    }
    let total: u64 = weight.iter().sum();
    std::array::from_fn(|pc| total == 0 || weight[pc] * 100 >= 3 * total)
}

/// How a grid slot's pitch is chosen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Pitch {
    Exact(u8),
    /// Within [`TRANSPOSITION_RADIUS`] of the block's pitch.
    Near(u8),
    /// One of the block's pitches not used yet.
    Pool,
    Any,
}

/// One note of a grid template.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Slot {
    onset: Option<u16>,
    /// A free onset stays near this one (the player's), where it can.
    near: Option<u16>,
    dur: Option<u16>,
    pitch: Pitch,
    /// `None` with a velocity pool: one of the block's velocities not used yet.
    velocity: Option<u8>,
}

#[derive(Clone, Debug, PartialEq)]
enum Shape {
    /// One slot per note of the segment, then the end.
    Grid {
        slots: Vec<Slot>,
        /// How many of each pitch (velocity) the block still has to give, by value.
        pitch_pool: Option<Box<[u16; 128]>>,
        velocity_pool: Option<Box<[u16; 128]>>,
    },
    /// `prefix` note for note, then the model's notes with every `tune` note at its time.
    Include { prefix: Vec<Note>, tune: Vec<Note> },
    /// Nothing forced (free fidelity): only the bounds.
    Free,
}

/// Where the note being decoded stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Forced {
    /// A note of the prefix or the tune: every field forced.
    Note(Note),
    /// A grid slot.
    Slot(Slot),
    /// The model's own note.
    Added,
}

/// A logits processor that decodes one segment under its template and bounds.
#[derive(Clone, Debug)]
pub struct Template {
    shape: Shape,
    bounds: Bounds,
    /// The tune's notes: added notes stay below the one sounding with them.
    ceiling: Vec<Note>,
    chord: Option<ChordConstraint>,
    /// Pitch classes added notes prefer (a harmonization's key and its colours).
    key: Option<[bool; 12]>,
    /// Fill every tune note to a chord of three pitch classes (harmonization).
    fill_chords: bool,
    // Decoding state.
    seen: usize,
    notes: Vec<Note>,
    /// Pitches the model chose itself (not forced).
    added: Vec<u8>,
    /// Velocities the model chose itself.
    added_velocities: Vec<u8>,
    onset: Option<u16>,
    dur: Option<u16>,
    current: Forced,
    tune_next: usize,
    ids: Vec<u32>,
    keep: Vec<bool>,
    scratch: Vec<f32>,
    /// The template before any token, to start a new sequence from.
    fresh: Option<Box<Template>>,
}

impl Template {
    /// The strict template of `block` for a segment now holding `notes`, whose tune is `tune`
    /// (a subset of the player's notes, in onset order).
    pub fn strict(notes: &[Note], block: &CorruptedSegment, tune: &[Note], bounds: Bounds) -> Self {
        let shape = match block.kind {
            Corruption::PitchVelocityMask
            | Corruption::OnsetDurationMask
            | Corruption::PermutePitches
            | Corruption::PermutePitchVelocity
            | Corruption::IncorrectTransposition
                if block.content.len() == notes.len() =>
            {
                grid(notes, block, tune)
            }
            Corruption::Fragmentation => {
                let prefix: Vec<Note> = block
                    .content
                    .iter()
                    .filter_map(|e| match e {
                        BlockElement::Note(n) => n.to_note(),
                        BlockElement::Mask => None,
                    })
                    .collect();
                let from = prefix.last().map_or(0, |n| n.onset_ms);
                let rest = tune
                    .iter()
                    .filter(|t| t.onset_ms >= from && !prefix.contains(t))
                    .copied()
                    .collect();
                Shape::Include { prefix, tune: rest }
            }
            _ => Shape::Include {
                prefix: Vec::new(),
                tune: tune.to_vec(),
            },
        };
        let mut bounds = bounds;
        let forced = match &shape {
            Shape::Grid { slots, .. } => slots.len(),
            Shape::Include { prefix, tune } => prefix.len() + tune.len(),
            Shape::Free => 0,
        };
        bounds.max_notes = bounds.max_notes.max(forced);
        Self::new(shape, bounds, tune.to_vec())
    }

    /// Only the sanity rules (free fidelity).
    pub fn free(bounds: Bounds) -> Self {
        Self::new(Shape::Free, bounds, Vec::new())
    }

    fn new(shape: Shape, bounds: Bounds, ceiling: Vec<Note>) -> Self {
        Self {
            shape,
            bounds,
            ceiling,
            chord: None,
            key: None,
            fill_chords: false,
            seen: 0,
            notes: Vec::new(),
            added: Vec::new(),
            added_velocities: Vec::new(),
            onset: None,
            dur: None,
            current: Forced::Added,
            tune_next: 0,
            ids: Vec::new(),
            keep: Vec::new(),
            scratch: Vec::new(),
            fresh: None,
        }
    }

    /// Also prefers the harmonization chord constraint (spec §11), where the template allows it.
    pub fn with_chord_constraint(mut self) -> Self {
        self.chord = Some(ChordConstraint::default());
        self
    }

    /// Added notes prefer these pitch classes (index 0 = C).
    pub fn with_key(mut self, pitch_classes: [bool; 12]) -> Self {
        self.key = Some(pitch_classes);
        self
    }

    /// Prefers, after each tune note, added notes with it until three pitch classes sound.
    pub fn with_chord_fill(mut self) -> Self {
        self.fill_chords = true;
        self
    }

    /// The next segment's tune (onsets from this segment's start, i.e. 5000 ms on): added notes
    /// held into it stay below it too.
    pub fn with_next_tune(mut self, next: &[Note]) -> Self {
        self.ceiling.extend(next.iter().map(|n| Note {
            onset_ms: n.onset_ms.saturating_add(5000),
            ..*n
        }));
        self
    }

    /// The previous segment's tune notes still sounding at this segment's start (clipped to it):
    /// added notes stay below them and clear of them too.
    pub fn with_previous_tune(mut self, previous: &[Note]) -> Self {
        self.ceiling.extend(previous.iter().filter_map(|n| {
            let end = n.onset_ms.saturating_add(n.dur_ms);
            (end > 5000).then(|| Note {
                onset_ms: 0,
                dur_ms: end - 5000,
                ..*n
            })
        }));
        self
    }

    /// Forced notes from the `from`-th note of the segment on: onset, and pitch where forced.
    fn forced_from(&self, from: usize) -> Vec<(u16, Option<u8>)> {
        match &self.shape {
            Shape::Include { prefix, tune } => prefix
                .iter()
                .skip(from)
                .chain(&tune[self.tune_next.min(tune.len())..])
                .map(|n| (n.onset_ms, Some(n.pitch)))
                .collect(),
            Shape::Grid { slots, .. } => slots
                .iter()
                .skip(from)
                .filter_map(|s| {
                    let pitch = match s.pitch {
                        Pitch::Exact(p) => Some(p),
                        _ => None,
                    };
                    s.onset.map(|o| (o, pitch))
                })
                .collect(),
            Shape::Free => Vec::new(),
        }
    }

    /// The onset of the next tune note to decode, if any.
    fn next_tune_onset(&self) -> Option<u16> {
        match &self.shape {
            Shape::Include { tune, .. } => tune.get(self.tune_next).map(|t| t.onset_ms),
            _ => None,
        }
    }

    /// Pitch classes sounding at the onset of the last tune note decoded, when no later onset
    /// has been decoded yet and fewer than three sound.
    fn thin_chord(&self) -> Option<(u16, Vec<u8>)> {
        let Shape::Include { tune, .. } = &self.shape else {
            return None;
        };
        let t = tune.get(self.tune_next.checked_sub(1)?)?;
        if self.notes.last()?.onset_ms != t.onset_ms {
            return None;
        }
        let mut pcs: Vec<u8> = self
            .notes
            .iter()
            .filter(|n| {
                n.onset_ms <= t.onset_ms && t.onset_ms < n.onset_ms.saturating_add(n.dur_ms)
            })
            .map(|n| n.pitch % 12)
            .collect();
        pcs.sort_unstable();
        pcs.dedup();
        (pcs.len() < 3).then_some((t.onset_ms, pcs))
    }

    fn observe(&mut self, id: u32) {
        match kind(id) {
            Kind::Onset(o) => {
                self.onset = Some(o);
                self.dur = None;
                self.current = self.classify(o);
            }
            Kind::Dur(d) => self.dur = Some(d),
            Kind::Note { pitch, velocity } => {
                if let (Some(o), Some(d)) = (self.onset, self.dur) {
                    let note = Note::new(pitch, velocity, o, d);
                    if let Shape::Grid {
                        pitch_pool,
                        velocity_pool,
                        ..
                    } = &mut self.shape
                    {
                        if let Some(pool) = pitch_pool {
                            pool[usize::from(pitch)] = pool[usize::from(pitch)].saturating_sub(1);
                        }
                        if let Some(pool) = velocity_pool {
                            let v = usize::from(velocity);
                            pool[v] = pool[v].saturating_sub(1);
                        }
                    }
                    if let (Forced::Note(_), Shape::Include { prefix, .. }) =
                        (self.current, &self.shape)
                    {
                        if self.notes.len() >= prefix.len() {
                            self.tune_next += 1;
                        }
                    }
                    let chosen = match self.current {
                        Forced::Note(_) => false,
                        Forced::Slot(slot) => !matches!(slot.pitch, Pitch::Exact(_)),
                        Forced::Added => true,
                    };
                    if chosen {
                        self.added.push(pitch);
                        self.added_velocities.push(velocity);
                    }
                    self.notes.push(note);
                }
                self.onset = None;
                self.dur = None;
                self.current = Forced::Added;
            }
            Kind::Other => {}
        }
    }

    /// What the note starting at onset `o` is: decided by the notes so far.
    fn classify(&self, o: u16) -> Forced {
        match &self.shape {
            Shape::Grid { slots, .. } => slots
                .get(self.notes.len())
                .map_or(Forced::Added, |s| Forced::Slot(*s)),
            Shape::Include { prefix, tune } => {
                if let Some(n) = prefix.get(self.notes.len()) {
                    Forced::Note(*n)
                } else {
                    match tune.get(self.tune_next) {
                        Some(t) if t.onset_ms == o => Forced::Note(*t),
                        _ => Forced::Added,
                    }
                }
            }
            Shape::Free => Forced::Added,
        }
    }

    /// The hard choice for the next token, pushed into `self.ids`; `None`: anything goes.
    fn hard(&mut self) -> Option<()> {
        self.ids.clear();
        let last_onset = self.notes.last().map_or(0, |n| n.onset_ms);
        let strict = !matches!(self.shape, Shape::Free);
        if self.onset.is_none() {
            // Next: a note's onset, or the end.
            match &self.shape {
                Shape::Free => return None,
                Shape::Grid { slots, .. } => match slots.get(self.notes.len()) {
                    None => self.ids.push(EOS),
                    Some(slot) => match slot.onset {
                        Some(o) => self.ids.push(onset_id(o)),
                        None => {
                            let hi = slots[self.notes.len()..]
                                .iter()
                                .find_map(|s| s.onset)
                                .unwrap_or(LAST_ONSET_MS);
                            let lo = last_onset.min(hi);
                            self.ids
                                .extend((lo / 10..=hi / 10).map(|k| onset_id(k * 10)));
                        }
                    },
                },
                Shape::Include { prefix, tune } => {
                    if let Some(n) = prefix.get(self.notes.len()) {
                        self.ids.push(onset_id(n.onset_ms));
                    } else {
                        let left = tune.len() - self.tune_next.min(tune.len());
                        match tune.get(self.tune_next) {
                            Some(t) if self.notes.len() + left >= self.bounds.max_notes => {
                                self.ids.push(onset_id(t.onset_ms))
                            }
                            Some(t) => {
                                let lo = last_onset.min(t.onset_ms);
                                self.ids
                                    .extend((lo / 10..=t.onset_ms / 10).map(|k| onset_id(k * 10)));
                            }
                            None if self.notes.len() >= self.bounds.max_notes => self.ids.push(EOS),
                            None => {
                                self.ids.extend(
                                    (last_onset / 10..=LAST_ONSET_MS / 10)
                                        .map(|k| onset_id(k * 10)),
                                );
                                self.ids.push(EOS);
                            }
                        }
                    }
                }
            }
            return Some(());
        }
        let forced_dur = match self.current {
            Forced::Note(n) => Some(n.dur_ms),
            Forced::Slot(s) => s.dur,
            Forced::Added => None,
        };
        if self.dur.is_none() {
            if !strict {
                return None;
            }
            match forced_dur {
                Some(d) => self.ids.push(dur_id(d)),
                None => self.ids.extend((1..=500).map(|k| dur_id(k * 10))),
            }
            return Some(());
        }
        // Next: the pitch-velocity token.
        match self.current {
            Forced::Note(n) => self.ids.push(pv_id(n.pitch, n.velocity)),
            Forced::Slot(slot) => {
                let (pitch_pool, velocity_pool) = match &self.shape {
                    Shape::Grid {
                        pitch_pool,
                        velocity_pool,
                        ..
                    } => (
                        pitch_pool.as_deref().copied(),
                        velocity_pool.as_deref().copied(),
                    ),
                    _ => (None, None),
                };
                // Pool entries the tune's later slots still need.
                let (mut need_p, mut need_v) = ([0u16; 128], [0u16; 128]);
                if let Shape::Grid { slots, .. } = &self.shape {
                    for s in &slots[self.notes.len() + 1..] {
                        if let (Pitch::Exact(p), Some(v)) = (s.pitch, s.velocity) {
                            need_p[usize::from(p)] += 1;
                            need_v[usize::from(v)] += 1;
                        }
                    }
                }
                let pitches: Vec<u8> = match slot.pitch {
                    Pitch::Exact(p) => vec![p],
                    Pitch::Near(p) => (p.saturating_sub(TRANSPOSITION_RADIUS).max(LOWEST)
                        ..=p.saturating_add(TRANSPOSITION_RADIUS).min(HIGHEST))
                        .collect(),
                    Pitch::Pool => {
                        let pool = pitch_pool.unwrap_or([0; 128]);
                        let free: Vec<u8> = (0..128u8)
                            .filter(|&p| pool[usize::from(p)] > need_p[usize::from(p)])
                            .collect();
                        if free.is_empty() {
                            (0..128u8).filter(|&p| pool[usize::from(p)] > 0).collect()
                        } else {
                            free
                        }
                    }
                    Pitch::Any => (LOWEST..=HIGHEST).collect(),
                };
                let velocities: Vec<u8> = match (slot.velocity, velocity_pool) {
                    (Some(v), _) => vec![v],
                    (None, Some(pool)) => {
                        let free: Vec<u8> = VELOCITY_BINS
                            .iter()
                            .copied()
                            .filter(|&v| pool[usize::from(v)] > need_v[usize::from(v)])
                            .collect();
                        if free.is_empty() {
                            VELOCITY_BINS[1..9].to_vec()
                        } else {
                            free
                        }
                    }
                    (None, None) => VELOCITY_BINS[1..9].to_vec(),
                };
                for &p in &pitches {
                    for &v in &velocities {
                        self.ids.push(pv_id(p, v));
                    }
                }
            }
            Forced::Added => {
                if !strict {
                    return None;
                }
                for p in LOWEST..=HIGHEST {
                    for row in VELOCITY_ROWS {
                        self.ids.push(PIANO_BASE + row * 128 + u32::from(p));
                    }
                }
            }
        }
        Some(())
    }

    /// Narrows `self.ids` (already the allowed, finite ids) by the sanity rules, each only where
    /// it leaves something.
    fn soft(&mut self, logits: &[f32], generated: &[u32]) {
        let is_free = |f: &Forced| !matches!(f, Forced::Note(_));
        if let (Some(onset), None, Forced::Added, true) =
            (self.onset, self.dur, self.current, self.fill_chords)
        {
            // A chord filled under a melody note is held (comping), so the next melody notes
            // sound over it rather than each getting a chord of its own.
            if self.thin_chord().is_some_and(|(at, _)| at == onset) {
                narrow(&mut self.ids, |id| match kind(id) {
                    Kind::Dur(d) => (CHORD_HOLD_MS..=4 * CHORD_HOLD_MS).contains(&d),
                    _ => true,
                });
            }
        }
        if self.onset.is_none() {
            let count = self.notes.len();
            if count < self.bounds.min_notes {
                narrow(&mut self.ids, |id| id != EOS);
            }
            if count >= self.bounds.max_notes {
                narrow(&mut self.ids, |id| id == EOS);
            }
            // A re-timed note stays near where the player put it.
            if let Shape::Grid { slots, .. } = &self.shape {
                if let Some(at) = slots.get(self.notes.len()).and_then(|s| s.near) {
                    narrow(&mut self.ids, |id| match kind(id) {
                        Kind::Onset(o) => o.abs_diff(at) <= RETIME_MS,
                        _ => true,
                    });
                }
            }
            // No cluster: a note may not make six within 40 ms, counting the forced notes still
            // to come (the tune's next note itself is always allowed where choosing its onset
            // makes the note the tune's).
            // (The note to be decoded next is the `notes.len()`-th.)
            let upcoming: Vec<u16> = self
                .forced_from(self.notes.len())
                .into_iter()
                .map(|(o, _)| o)
                .collect();
            let next = upcoming
                .first()
                .copied()
                .filter(|_| matches!(self.shape, Shape::Include { .. }));
            let notes = &self.notes;
            narrow(&mut self.ids, |id| match kind(id) {
                Kind::Onset(o) if Some(o) != next => {
                    let before = notes
                        .iter()
                        .filter(|n| n.onset_ms.saturating_add(CLUSTER_MS) >= o)
                        .count();
                    let after = upcoming
                        .iter()
                        .filter(|&&u| u >= o && u <= o.saturating_add(CLUSTER_MS))
                        .count();
                    before + after < MAX_GROUP
                }
                _ => true,
            });
            if self.fill_chords {
                // Room for a chord under every tune note still to come: once the notes left
                // would not hold them, the next note is the tune's.
                if let (Some(at), Shape::Include { tune, .. }) =
                    (self.next_tune_onset(), &self.shape)
                {
                    let left = tune.len() - self.tune_next;
                    if count + 3 * left >= self.bounds.max_notes && self.thin_chord().is_none() {
                        let id = onset_id(at);
                        narrow(&mut self.ids, |x| x == id);
                    }
                }
                if let Some((at, _)) = self.thin_chord() {
                    let id = onset_id(at);
                    narrow(&mut self.ids, |x| x == id);
                }
            }
        } else if self.dur.is_some() && is_free(&self.current) {
            let (onset, dur) = (self.onset.unwrap_or(0), self.dur.unwrap_or(0));
            let b = &self.bounds;
            let (low, high) = (b.low, b.high);
            narrow(&mut self.ids, |id| match kind(id) {
                Kind::Note { pitch, .. } => (low..=high).contains(&pitch),
                _ => true,
            });
            let sounding: Vec<u8> = self
                .notes
                .iter()
                .filter(|n| n.onset_ms <= onset && onset < n.onset_ms.saturating_add(n.dur_ms))
                .map(|n| n.pitch)
                .chain(
                    b.sounding
                        .iter()
                        .filter(|&&(_, end)| onset < end)
                        .map(|&(p, _)| p),
                )
                .collect();
            narrow(&mut self.ids, |id| match kind(id) {
                Kind::Note { pitch, .. } => !sounding.contains(&pitch),
                _ => true,
            });
            // Nor held over a later strike of its pitch (a forced note still to come here, or
            // the next segment's).
            let end = onset.saturating_add(dur);
            let struck_later: Vec<u8> = self
                .forced_from(self.notes.len() + 1)
                .into_iter()
                .filter_map(|(at, p)| p.map(|p| (p, at)))
                .chain(self.bounds.later.iter().copied())
                .filter(|&(_, at)| onset < at && at < end)
                .map(|(p, _)| p)
                .collect();
            narrow(&mut self.ids, |id| match kind(id) {
                Kind::Note { pitch, .. } => !struck_later.contains(&pitch),
                _ => true,
            });
            if let Some(top) = ceiling(&self.ceiling, onset, dur, self.fill_chords) {
                narrow(&mut self.ids, |id| match kind(id) {
                    Kind::Note { pitch, .. } => pitch < top,
                    _ => true,
                });
            }
            // No semitone or minor ninth against a tune note sounding with it.
            let against: Vec<u8> = with_tune(&self.ceiling, onset, dur)
                .map(|t| t.pitch)
                .collect();
            narrow(&mut self.ids, |id| match kind(id) {
                Kind::Note { pitch, .. } => against
                    .iter()
                    .all(|&t| !matches!(t.abs_diff(pitch), 1 | 13)),
                _ => true,
            });
            if self.fill_chords {
                if let Some((at, pcs)) = self.thin_chord().filter(|(at, _)| *at == onset) {
                    debug_assert_eq!(at, onset);
                    narrow(&mut self.ids, |id| match kind(id) {
                        Kind::Note { pitch, .. } => !pcs.contains(&(pitch % 12)),
                        _ => true,
                    });
                }
            }
            if let Some(target) = self.bounds.register {
                // Keep the median of the model's own notes near the target.
                if let Some(m) = median(self.added.clone()) {
                    let (lo, hi) = if m + REGISTER_SLACK < target {
                        (target, HIGHEST)
                    } else if m > target + REGISTER_SLACK {
                        (LOWEST, target)
                    } else {
                        (LOWEST, HIGHEST)
                    };
                    narrow(&mut self.ids, |id| match kind(id) {
                        Kind::Note { pitch, .. } => (lo..=hi).contains(&pitch),
                        _ => true,
                    });
                }
            }
            if let Some(key) = self.key.or(self.bounds.key) {
                narrow(&mut self.ids, |id| match kind(id) {
                    Kind::Note { pitch, .. } => key[usize::from(pitch % 12)],
                    _ => true,
                });
            }
            if let Some(target) = self.bounds.loudness {
                // Keep the mean velocity of the model's own notes near the target.
                if !self.added_velocities.is_empty() {
                    let n = self.added_velocities.len() as u32;
                    let mean = self
                        .added_velocities
                        .iter()
                        .map(|&v| u32::from(v))
                        .sum::<u32>()
                        / n;
                    let target = u32::from(target);
                    let (lo, hi) = if mean + LOUDNESS_SLACK < target {
                        (target, 127)
                    } else if mean > target + LOUDNESS_SLACK {
                        (0, target)
                    } else {
                        (0, 127)
                    };
                    narrow(&mut self.ids, |id| match kind(id) {
                        Kind::Note { velocity, .. } => (lo..=hi).contains(&u32::from(velocity)),
                        _ => true,
                    });
                }
            }
            let b = &self.bounds;
            let (vlo, vhi) = (b.velocity_low, b.velocity_high);
            narrow(&mut self.ids, |id| match kind(id) {
                Kind::Note { velocity, .. } => (vlo..=vhi).contains(&velocity),
                _ => true,
            });
        }
        if let Some(chord) = self.chord.as_mut() {
            if matches!(self.current, Forced::Added) || self.onset.is_none() {
                self.scratch.clear();
                self.scratch.resize(logits.len(), 0.0);
                chord.process(generated, &mut self.scratch);
                let allowed = &self.scratch;
                narrow(&mut self.ids, |id| allowed[id as usize].is_finite());
            }
        }
    }
}

/// Keeps the ids `keep` accepts, unless that would leave none.
fn narrow(ids: &mut Vec<u32>, keep: impl Fn(u32) -> bool) {
    if ids.iter().any(|&id| keep(id)) {
        ids.retain(|&id| keep(id));
    }
}

/// The lowest tune pitch sounding with a note at `onset` lasting `dur` ms (or starting with it,
/// within a chord's 50 ms): an added note stays below it.
///
/// The melody is the highest tune note sounding at the onset (a lower one is a bass note the top
/// voice took where the melody rested). Under a melody being harmonized (`held`), tune notes
/// starting later while the note is held bound it too; in a piece, a later tune note may be a
/// bass note under a held chord.
fn ceiling(tune: &[Note], onset: u16, dur: u16, held: bool) -> Option<u8> {
    let end = onset.saturating_add(dur.max(1));
    let chord_end = onset.saturating_add(CHORD_MS);
    let now = tune
        .iter()
        .filter(|t| {
            (t.onset_ms <= onset && onset < t.onset_ms.saturating_add(t.dur_ms))
                || (t.onset_ms >= onset && t.onset_ms <= chord_end)
        })
        .map(|t| t.pitch)
        .max();
    let later = tune
        .iter()
        .filter(|t| held && t.onset_ms > chord_end && t.onset_ms < end)
        .map(|t| t.pitch)
        .min();
    match (now, later) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// The tune notes sounding with a note at `onset` lasting `dur` ms (or starting with it, within
/// a chord's 50 ms).
fn with_tune(tune: &[Note], onset: u16, dur: u16) -> impl Iterator<Item = &Note> {
    let end = onset.saturating_add(dur.max(1));
    tune.iter().filter(move |t| {
        let t_end = t.onset_ms.saturating_add(t.dur_ms);
        (t.onset_ms < end && onset < t_end)
            || (t.onset_ms >= onset && t.onset_ms <= onset.saturating_add(CHORD_MS))
    })
}

impl LogitsProcessor for Template {
    fn process(&mut self, generated: &[u32], logits: &mut [f32]) {
        // The template as built, kept at its first step, to start a new sequence from.
        let fresh = self.fresh.take().unwrap_or_else(|| Box::new(self.clone()));
        if generated.len() < self.seen {
            *self = (*fresh).clone();
        }
        self.fresh = Some(fresh);
        for &id in generated.get(self.seen.max(1)..).unwrap_or_default() {
            self.observe(id);
        }
        self.seen = generated.len();
        let hard = self.hard().is_some();
        if !hard {
            self.ids.clear();
            self.ids
                .extend((0..logits.len() as u32).filter(|&i| logits[i as usize].is_finite()));
        } else {
            let finite = |i: &u32| logits.get(*i as usize).is_some_and(|l| l.is_finite());
            if self.ids.iter().any(finite) {
                self.ids.retain(finite);
            } else {
                // Another processor forbade every allowed token: the template wins, evenly.
                for &i in &self.ids {
                    logits[i as usize] = 0.0;
                }
            }
        }
        self.soft(logits, generated);
        // Everything not chosen is forbidden (a buffer reused step to step: this runs per token).
        self.keep.clear();
        self.keep.resize(logits.len(), false);
        for &i in &self.ids {
            self.keep[i as usize] = true;
        }
        for (l, &k) in logits.iter_mut().zip(&self.keep) {
            if !k {
                *l = f32::NEG_INFINITY;
            }
        }
    }
}

/// Speculative decoding's guesses under a template: the token it forces where it allows only
/// one, else the copy draft's guess where it allows that. Kept tokens, the tune and the note
/// grammar are mostly forced, so most of a strict segment is verified several tokens a forward.
pub struct TemplateDraft<'a> {
    /// Kept in step with the generated tokens (it observes only what it has not seen).
    template: Template,
    copy: &'a CopyDraft<'a>,
    /// What the other processors forbid everywhere (they run before the template).
    forbid: ForbidTokens,
    logits: Vec<f32>,
    seq: Vec<u32>,
}

impl<'a> TemplateDraft<'a> {
    /// Guesses under `template` (as built, before any token), else copying as `copy` does.
    pub fn new(
        template: Template,
        copy: &'a CopyDraft<'a>,
        forbid: ForbidTokens,
        vocab: usize,
    ) -> Self {
        Self {
            template,
            copy,
            forbid,
            logits: vec![0.0; vocab],
            seq: Vec::new(),
        }
    }

    /// What `template` allows after `seq` (as it sees it), as -inf / 0 logits.
    fn allowed(
        template: &mut Template,
        forbid: &mut ForbidTokens,
        seq: &[u32],
        logits: &mut [f32],
    ) {
        logits.fill(0.0);
        forbid.process(seq, logits);
        template.process(seq, logits);
    }
}

impl Draft for TemplateDraft<'_> {
    fn propose(&mut self, generated: &[u32], max: usize, draft: &mut Vec<u32>) {
        self.seq.clear();
        self.seq.extend_from_slice(generated);
        // The first guess asks the template itself, at the sequence as it stands; later ones a
        // copy, which sees guesses the decoder may not take.
        let mut ahead: Option<Template> = None;
        for step in 0..max {
            let template = if step == 0 {
                &mut self.template
            } else {
                ahead.get_or_insert_with(|| self.template.clone())
            };
            Self::allowed(template, &mut self.forbid, &self.seq, &mut self.logits);
            let mut finite =
                (0..self.logits.len() as u32).filter(|&i| self.logits[i as usize].is_finite());
            let guess = match (finite.next(), finite.next()) {
                (Some(only), None) => Some(only),
                _ => self
                    .copy
                    .follow(&self.seq)
                    .map(|next| self.copy.source()[next])
                    .filter(|&t| self.logits.get(t as usize).is_some_and(|l| l.is_finite())),
            };
            let Some(guess) = guess else { break };
            draft.push(guess);
            self.seq.push(guess);
        }
    }
}

/// The grid template: one slot per note, in the segment's order.
fn grid(notes: &[Note], block: &CorruptedSegment, tune: &[Note]) -> Shape {
    let tune_slots = tune_slots(notes, tune);
    let mut pitch_pool = None;
    let mut velocity_pool = None;
    let block_notes: Vec<Option<(i16, u8)>> = block
        .content
        .iter()
        .map(|e| match e {
            BlockElement::Note(n) => n.pitch_velocity.map(|pv| (pv.pitch, pv.velocity)),
            BlockElement::Mask => None,
        })
        .collect();
    match block.kind {
        Corruption::PermutePitches | Corruption::PermutePitchVelocity => {
            let mut pool = [0u16; 128];
            for pv in block_notes.iter().flatten() {
                if let Ok(p) = u8::try_from(pv.0) {
                    pool[usize::from(p.min(127))] += 1;
                }
            }
            pitch_pool = Some(Box::new(pool));
            if block.kind == Corruption::PermutePitchVelocity {
                let mut pool = [0u16; 128];
                for pv in block_notes.iter().flatten() {
                    pool[usize::from(pv.1.min(127))] += 1;
                }
                velocity_pool = Some(Box::new(pool));
            }
        }
        _ => {}
    }
    // Onset groups (notes chained within 50 ms, as the top voice reads them): a tune note's
    // chord keeps its timing under onset_duration_mask; the notes between are re-timed.
    let mut group = vec![0usize; notes.len()];
    for i in 1..notes.len() {
        let gap = notes[i].onset_ms.abs_diff(notes[i - 1].onset_ms);
        group[i] = group[i - 1] + usize::from(gap > CHORD_MS);
    }
    let tune_groups: Vec<usize> = tune_slots.iter().map(|&i| group[i]).collect();
    let slots = notes
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let is_tune = tune_slots.contains(&i);
            let timing = (Some(n.onset_ms), Some(n.dur_ms));
            let (onset, dur) = match block.kind {
                Corruption::OnsetDurationMask if !tune_groups.contains(&group[i]) => (None, None),
                _ => timing,
            };
            let (pitch, velocity) = if is_tune {
                (Pitch::Exact(n.pitch), Some(n.velocity))
            } else {
                match block.kind {
                    Corruption::PitchVelocityMask => (Pitch::Any, None),
                    Corruption::OnsetDurationMask => (Pitch::Exact(n.pitch), Some(n.velocity)),
                    Corruption::PermutePitches => (Pitch::Pool, Some(n.velocity)),
                    Corruption::PermutePitchVelocity => (Pitch::Pool, None),
                    _ => {
                        let shown = block_notes[i]
                            .map_or(n.pitch, |pv| pv.0.clamp(0, 127) as u8)
                            .clamp(LOWEST, HIGHEST);
                        (Pitch::Near(shown), Some(n.velocity))
                    }
                }
            };
            Slot {
                onset,
                near: onset.is_none().then_some(n.onset_ms),
                dur,
                pitch,
                velocity,
            }
        })
        .collect();
    Shape::Grid {
        slots,
        pitch_pool,
        velocity_pool,
    }
}

/// Indices of `notes` that are the tune's notes (same onset and pitch), each tune note once.
fn tune_slots(notes: &[Note], tune: &[Note]) -> Vec<usize> {
    let mut used = vec![false; notes.len()];
    tune.iter()
        .filter_map(|t| {
            let i = (0..notes.len()).find(|&i| {
                !used[i] && notes[i].onset_ms == t.onset_ms && notes[i].pitch == t.pitch
            })?;
            used[i] = true;
            Some(i)
        })
        .collect()
}

/// The tune of a segment as the player played it: its top voice.
pub fn tune_of(notes: &[Note]) -> Vec<Note> {
    top_voice(notes).into_iter().map(|i| notes[i]).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tokens::{Genre, BOS, VOCAB_SIZE};

    /// The ids the processor leaves finite after `generated`, from flat logits.
    fn allowed(t: &mut Template, generated: &[u32]) -> Vec<u32> {
        let mut logits = vec![0.0f32; VOCAB_SIZE as usize];
        t.process(generated, &mut logits);
        (0..VOCAB_SIZE)
            .filter(|&i| logits[i as usize].is_finite())
            .collect()
    }

    fn pitches(ids: &[u32]) -> Vec<u8> {
        let mut p: Vec<u8> = ids
            .iter()
            .filter_map(|&id| match kind(id) {
                Kind::Note { pitch, .. } => Some(pitch),
                _ => None,
            })
            .collect();
        p.dedup();
        p
    }

    fn open() -> Bounds {
        Bounds::open(100)
    }

    #[test]
    fn no_pitch_is_struck_while_it_sounds_nor_held_over_its_next_strike() {
        let mut b = open();
        b.sounding = vec![(60, 300)];
        b.later = vec![(64, 5200)];
        let mut t = Template::free(b);
        let at = |onset, dur| vec![BOS, onset_id(onset), dur_id(dur)];
        let p = pitches(&allowed(&mut t.clone(), &at(100, 100)));
        assert!(!p.contains(&60) && p.contains(&62) && p.contains(&64));
        // After the held note ends, 60 may sound again.
        assert!(pitches(&allowed(&mut t.clone(), &at(300, 100))).contains(&60));
        // Held from 4900 for 500 ms: over the next segment's 64 at 200 ms.
        let p = pitches(&allowed(&mut t, &at(4900, 500)));
        assert!(!p.contains(&64) && p.contains(&65));
    }

    #[test]
    fn the_tune_is_forced_where_the_model_reaches_its_onset() {
        let tune = [Note::new(72, 75, 500, 400), Note::new(74, 90, 1000, 300)];
        let block = CorruptedSegment {
            kind: Corruption::WholeMask,
            genre: Genre::Jazz,
            content: vec![BlockElement::Mask],
        };
        let mut t = Template::strict(&tune, &block, &tune, open());
        let first = allowed(&mut t, &[BOS]);
        // Onsets up to the tune's first note, no end before the tune is played.
        assert_eq!(first.first(), Some(&onset_id(0)));
        assert_eq!(first.last(), Some(&onset_id(500)));
        assert!(!first.contains(&EOS));
        // Choosing 500 ms makes the note the tune's: its duration and pitch-velocity follow.
        let mut seq = vec![BOS, onset_id(500)];
        assert_eq!(allowed(&mut t, &seq), vec![dur_id(400)]);
        seq.push(dur_id(400));
        assert_eq!(allowed(&mut t, &seq), vec![pv_id(72, 75)]);
        seq.push(pv_id(72, 75));
        // An added note at 600 ms, held 500 ms: below the sounding 72, and not a semitone or
        // a minor ninth from it (71, 59) or from the 74 it is held under (73, 61).
        seq.extend([onset_id(600), dur_id(500)]);
        let p = pitches(&allowed(&mut t, &seq));
        assert_eq!(p.last(), Some(&70));
        for clash in [71, 59, 61] {
            assert!(!p.contains(&clash), "{clash}");
        }
        assert!(p.contains(&60) && p.contains(&58));
    }

    #[test]
    fn an_onset_group_takes_no_sixth_note_and_soft_rules_never_empty_the_choice() {
        let mut t = Template::free(open());
        let mut seq = vec![BOS];
        for p in 60..65 {
            seq.extend([onset_id(100), dur_id(200), pv_id(p, 75)]);
        }
        let ids = allowed(&mut t, &seq);
        assert!(!ids.contains(&onset_id(100)) && !ids.contains(&onset_id(140)));
        assert!(ids.contains(&onset_id(150)) && ids.contains(&EOS));
        // A pool of one pitch that is still sounding: the pool (hard) wins over the restrike
        // rule (soft).
        let notes = [Note::new(60, 75, 0, 1000), Note::new(62, 75, 100, 500)];
        let block = CorruptedSegment {
            kind: Corruption::PermutePitches,
            genre: Genre::Jazz,
            content: notes
                .iter()
                .map(|n| BlockElement::Note(crate::tokens::MaskedNote::plain(n)))
                .collect(),
        };
        let mut t = Template::strict(&notes, &block, &[], open());
        let seq = [
            BOS,
            onset_id(0),
            dur_id(1000),
            pv_id(62, 75),
            onset_id(100),
            dur_id(500),
        ];
        assert_eq!(pitches(&allowed(&mut t, &seq)), vec![60]);
    }
}
