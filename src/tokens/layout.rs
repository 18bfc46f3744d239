//! Sequence layouts (spec §4): the flattened piece, the encoder input with its `SEP … SEP` block,
//! the decoder target, the classifier window, and parsing model output back into notes.
//!
//! Segment content is notes only: we never insert Aria's random `<D>`, and novelty `<N>` lives in
//! segment flags elsewhere, so no string elements travel inside segments.

use super::vocab::{Corruption, Genre, Token, BOS, EOS, PAD, SEP, T_SEP};
use crate::music::{Note, Piece, Segment};

/// Encoder input length the model was trained with (positions 0..2048).
pub const ENCODER_MAX_LEN: usize = 2048;
/// Decoder length, start token included.
pub const DECODER_MAX_LEN: usize = 512;
/// Genre classifier input length.
pub const CLASSIFIER_MAX_LEN: usize = 1024;

/// Pitch and velocity of a note inside a corrupted block.
///
/// `pitch` is wider than MIDI because the faithful `incorrect_transposition` and
/// `note_modification` can move it outside 0..=127; such a note loses its pitch-velocity token.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PitchVelocity {
    pub pitch: i16,
    pub velocity: u8,
}

/// A note of a corrupted block; `None` fields are written as their mask token (`O`, `D`, `PVM`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MaskedNote {
    pub onset_ms: Option<u16>,
    pub dur_ms: Option<u16>,
    pub pitch_velocity: Option<PitchVelocity>,
}

impl MaskedNote {
    /// The note with nothing masked.
    pub fn plain(note: &Note) -> Self {
        Self {
            onset_ms: Some(note.onset_ms),
            dur_ms: Some(note.dur_ms),
            pitch_velocity: Some(PitchVelocity {
                pitch: note.pitch as i16,
                velocity: note.velocity,
            }),
        }
    }

    /// The note if nothing is masked and the pitch is a MIDI pitch.
    pub fn to_note(&self) -> Option<Note> {
        let pv = self.pitch_velocity?;
        Some(Note::new(
            u8::try_from(pv.pitch).ok().filter(|&p| p <= 127)?,
            pv.velocity,
            self.onset_ms?,
            self.dur_ms?,
        ))
    }

    fn push_tokens(&self, out: &mut Vec<u32>) {
        out.push(self.onset_ms.map_or(Token::MaskOnset, Token::Onset).id());
        out.push(self.dur_ms.map_or(Token::MaskDur, Token::Dur).id());
        match self.pitch_velocity {
            None => out.push(Token::MaskPitchVelocity.id()),
            Some(pv) => {
                // Out-of-range pitches have no id; the original drops them at inference.
                if let Some(t) = Token::piano(pv.pitch as i32, pv.velocity) {
                    out.push(t.id());
                }
            }
        }
    }
}

/// One element of a corrupted block's content.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BlockElement {
    Note(MaskedNote),
    /// `mask`: the whole segment hidden (`whole_mask`).
    Mask,
}

/// A corrupted segment as the encoder sees it: `SEP <corruption> <genre> content… SEP`.
///
/// Produced by `corrupt`, defined here so the dependency runs `tokens` <- `corrupt`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct CorruptedSegment {
    pub kind: Corruption,
    pub genre: Genre,
    pub content: Vec<BlockElement>,
}

impl CorruptedSegment {
    /// The segment's notes unchanged under the label `kind`: harmonization presents a melody as
    /// if it were a `skyline` (spec §11).
    pub fn verbatim(kind: Corruption, genre: Genre, segment: &Segment) -> Self {
        Self {
            kind,
            genre,
            content: segment
                .notes
                .iter()
                .map(|n| BlockElement::Note(MaskedNote::plain(n)))
                .collect(),
        }
    }

    /// The block's ids, `SEP` to `SEP`.
    pub fn tokens(&self) -> Vec<u32> {
        let mut out = Vec::with_capacity(4 + 3 * self.content.len());
        self.push_tokens(&mut out);
        out
    }

    fn push_tokens(&self, out: &mut Vec<u32>) {
        out.push(SEP);
        out.push(Token::Corruption(self.kind).id());
        out.push(Token::Genre(self.genre).id());
        for e in &self.content {
            match e {
                BlockElement::Note(n) => n.push_tokens(out),
                BlockElement::Mask => out.push(Token::Mask.id()),
            }
        }
        out.push(SEP);
    }
}

/// Appends one note as onset, dur, pitch-velocity (the model's order, not Aria's).
/// A pitch above 127 has no id and loses its pitch-velocity token.
#[inline]
pub fn push_note_tokens(note: &Note, out: &mut Vec<u32>) {
    // What `MaskedNote::plain(note).push_tokens(out)` writes, without the detour through options.
    let onset = Token::Onset(note.onset_ms).id();
    let dur = Token::Dur(note.dur_ms).id();
    if note.pitch <= 127 {
        let pitch_velocity = Token::PianoNote {
            pitch: note.pitch,
            velocity: note.velocity,
        }
        .id();
        out.extend_from_slice(&[onset, dur, pitch_velocity]);
    } else {
        out.extend_from_slice(&[onset, dur]);
    }
}

/// A segment's notes, three tokens each.
pub fn segment_tokens(segment: &Segment) -> Vec<u32> {
    let mut out = Vec::with_capacity(3 * segment.notes.len());
    for n in &segment.notes {
        push_note_tokens(n, &mut out);
    }
    out
}

/// `<T>`s between two consecutive segments: one per window boundary crossed. At least one, so a
/// malformed piece (windows not increasing) still keeps its segments apart.
fn t_count(prev_window: u32, window: u32) -> u32 {
    window.saturating_sub(prev_window).max(1)
}

/// The whole piece flattened (spec §2.2, §4.1): notes, with `<T>` for every 5 s boundary crossed.
///
/// As in the original, `<T>`s are counted from time 0, so a first segment in window `w` is
/// preceded by `w` `<T>`s; a piece read from MIDI starts at window 0 and hence with a note.
pub fn piece_tokens(piece: &Piece) -> Vec<u32> {
    let mut out = Vec::with_capacity(3 * piece.note_count() + piece.segments.len());
    let mut prev: Option<u32> = None;
    for seg in &piece.segments {
        let ts = match prev {
            None => seg.window,
            Some(p) => t_count(p, seg.window),
        };
        out.extend(std::iter::repeat_n(T_SEP, ts as usize));
        for n in &seg.notes {
            push_note_tokens(n, &mut out);
        }
        prev = Some(seg.window);
    }
    out
}

/// Whether a window keeps its farthest after-context segment.
///
/// `Drop` reproduces the original's hidden 10% rule (spec §6.2): the slice ends at the *start* of
/// segment `s + after`, keeping the `<T>`s before it; if that is `s` itself, the corrupted block
/// is lost too. Drawing it is the caller's business (training only, in our port).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Tail {
    #[default]
    Keep,
    Drop,
}

/// Segments `s-before ..= s+after` (clamped) with the `<T>`s between them; segment `s` replaced
/// by `middle` when given. Stops growing at `max_len`, so huge window gaps cost nothing.
fn window_tokens(
    piece: &Piece,
    s: usize,
    before: usize,
    after: usize,
    middle: Option<&CorruptedSegment>,
    tail: Tail,
    max_len: usize,
) -> Vec<u32> {
    let segs = &piece.segments;
    let mut out = Vec::new();
    if s >= segs.len() {
        // No such segment: there is no context to show, only the block itself.
        if let Some(m) = middle {
            m.push_tokens(&mut out);
        }
        out.truncate(max_len);
        return out;
    }
    let first = s.saturating_sub(before);
    let last = s.saturating_add(after).min(segs.len() - 1);
    for i in first..=last {
        if i > first {
            let ts = t_count(segs[i - 1].window, segs[i].window) as usize;
            out.extend(std::iter::repeat_n(T_SEP, ts.min(max_len)));
        }
        if out.len() >= max_len || (i == last && tail == Tail::Drop) {
            break;
        }
        match middle {
            Some(m) if i == s => m.push_tokens(&mut out),
            _ => {
                for n in &segs[i].notes {
                    push_note_tokens(n, &mut out);
                }
            }
        }
    }
    out.truncate(max_len);
    out
}

/// The encoder input of spec §4.4, unpadded: context segments `s-before ..= s+after` (counted in
/// segments, clamped), every `<T>` between them, segment `s` replaced by `block`'s
/// `SEP … SEP`; truncated to [`ENCODER_MAX_LEN`] keeping the beginning (as the original, which can
/// cut the block itself on dense music). If `s` is past the end, only the block is returned.
pub fn encoder_input(
    piece: &Piece,
    s: usize,
    context_before: usize,
    context_after: usize,
    block: &CorruptedSegment,
) -> Vec<u32> {
    encoder_input_with_tail(piece, s, context_before, context_after, block, Tail::Keep)
}

/// [`encoder_input`] with an explicit [`Tail`] (the original's random context drop).
pub fn encoder_input_with_tail(
    piece: &Piece,
    s: usize,
    context_before: usize,
    context_after: usize,
    block: &CorruptedSegment,
    tail: Tail,
) -> Vec<u32> {
    window_tokens(
        piece,
        s,
        context_before,
        context_after,
        Some(block),
        tail,
        ENCODER_MAX_LEN,
    )
}

/// The genre classifier's input (spec §9): the same window, uncorrupted, with no `SEP`, genre or
/// corruption token, truncated to [`CLASSIFIER_MAX_LEN`]. The original uses 2 before / 2 after.
pub fn classifier_input(
    piece: &Piece,
    s: usize,
    context_before: usize,
    context_after: usize,
    tail: Tail,
) -> Vec<u32> {
    window_tokens(
        piece,
        s,
        context_before,
        context_after,
        None,
        tail,
        CLASSIFIER_MAX_LEN,
    )
}

/// The decoder target of spec §4.5, unpadded: `<S>` notes… `<E>`, truncated to
/// [`DECODER_MAX_LEN`] (a dense segment loses its `<E>`, as in the original).
pub fn decoder_target(segment: &Segment) -> Vec<u32> {
    let mut out = Vec::with_capacity(2 + 3 * segment.notes.len());
    out.push(BOS);
    for n in &segment.notes {
        push_note_tokens(n, &mut out);
        if out.len() > DECODER_MAX_LEN {
            break;
        }
    }
    out.push(EOS);
    out.truncate(DECODER_MAX_LEN);
    out
}

/// Ids padded (or truncated) to a fixed length, with the model's attention mask (`id != 0`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Padded {
    pub ids: Vec<u32>,
    pub attention_mask: Vec<u32>,
}

/// Right-pads with [`PAD`] or truncates (keeping the beginning) to `len`.
pub fn pad(ids: &[u32], len: usize) -> Padded {
    let mut ids: Vec<u32> = ids.iter().copied().take(len).collect();
    ids.resize(len, PAD);
    let attention_mask = ids.iter().map(|&i| u32::from(i != PAD)).collect();
    Padded {
        ids,
        attention_mask,
    }
}

/// Notes read back from model output (spec §4.6).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ParsedNotes {
    pub notes: Vec<Note>,
    /// For each `<T>` met, the number of notes parsed before it. The decoder should never emit
    /// `<T>` inside a segment; if it does, the engine decides what to do (spec §16.7) instead of
    /// letting the segment structure drift silently.
    pub t_positions: Vec<usize>,
    /// Whether the sequence ended with `<E>` or pad rather than running out.
    pub terminated: bool,
}

/// Reads notes from decoder output. Each `(onset)(dur)(piano)` group makes a note; the pending
/// fields reset at every pitch-velocity token, so incomplete notes are ignored. `<E>` and pad
/// (which the Python decoder would crash on) stop; every other token is skipped.
pub fn parse_notes(ids: &[u32]) -> ParsedNotes {
    let mut parsed = ParsedNotes::default();
    let (mut onset, mut dur) = (None, None);
    for &id in ids {
        if id == PAD || id == EOS {
            parsed.terminated = true;
            break;
        }
        match Token::from_id(id) {
            Some(Token::Onset(o)) => onset = Some(o),
            Some(Token::Dur(d)) => dur = Some(d),
            Some(Token::PianoNote { pitch, velocity }) => {
                if let (Some(o), Some(d)) = (onset, dur) {
                    parsed.notes.push(Note::new(pitch, velocity, o, d));
                }
                onset = None;
                dur = None;
            }
            Some(Token::T) => parsed.t_positions.push(parsed.notes.len()),
            _ => {}
        }
    }
    parsed
}
