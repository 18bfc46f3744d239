//! The exact ImprovNet vocabulary (spec §3): ids 1..=2305 in the original insertion order, 0 = pad.
//!
//! The released weights index their embedding and output rows by these ids, so every constant here
//! is part of the model's contract, not a free choice.

use std::fmt;
use std::str::FromStr;

/// Padding id (also: "stop" when a sampler ever produces it, spec §5.3).
pub const PAD: u32 = 0;
/// First `("piano", pitch, velocity)` id: `1 + vel_index * 128 + pitch`.
pub const PIANO_BASE: u32 = 1;
/// First `("onset", ms)` id: `1281 + ms / 10`, ms in 0..=5000.
pub const ONSET_BASE: u32 = 1281;
/// First `("dur", ms)` id: `1782 + ms / 10`, ms in 0..=5000.
pub const DUR_BASE: u32 = 1782;
/// First genre id; classical, pop, jazz follow in that order.
pub const GENRE_BASE: u32 = 2283;
/// `O`: masked onset.
pub const MASK_ONSET: u32 = 2286;
/// `D`: masked duration (not `<D>`).
pub const MASK_DUR: u32 = 2287;
/// `PVM`: masked pitch and velocity.
pub const MASK_PITCH_VELOCITY: u32 = 2288;
/// `mask`: the whole segment masked.
pub const MASK: u32 = 2289;
/// First corruption-token id; the nine follow in [`Corruption::ALL`] order.
pub const CORRUPTION_BASE: u32 = 2290;
/// `("prefix", "instrument", "piano")`: in the vocabulary, never used by the model.
pub const PREFIX: u32 = 2299;
/// `<T>`: a 5 s window boundary.
pub const T_SEP: u32 = 2300;
/// `<D>`: Aria's random inert token (we never insert it, but it has an id).
pub const D_TOKEN: u32 = 2301;
/// `<U>`: Aria's unknown token.
pub const U_TOKEN: u32 = 2302;
/// `<S>`: begin of sequence and decoder start token.
pub const BOS: u32 = 2303;
/// `<E>`: end of sequence.
pub const EOS: u32 = 2304;
/// `SEP`: wraps the corrupted block in the encoder input.
pub const SEP: u32 = 2305;
/// Number of embedding rows (ids 0..=2305).
pub const VOCAB_SIZE: u32 = 2306;

/// Velocity rows in id order. 127 has a row although the tokenizer never produces it.
pub const VELOCITY_BINS: [u8; 10] = [0, 15, 30, 45, 60, 75, 90, 105, 120, 127];
/// Grid step of onset and duration tokens, in ms.
pub const TIME_STEP_MS: u16 = 10;
/// Largest onset or duration a token carries, in ms.
pub const MAX_TIME_MS: u16 = 5000;

/// A genre label, spelled as in the original configs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Genre {
    Classical,
    Pop,
    Jazz,
}

impl Genre {
    /// In token (and classifier label) order.
    pub const ALL: [Genre; 3] = [Genre::Classical, Genre::Pop, Genre::Jazz];

    /// The original's name: "classical", "pop" or "jazz".
    pub const fn name(self) -> &'static str {
        match self {
            Genre::Classical => "classical",
            Genre::Pop => "pop",
            Genre::Jazz => "jazz",
        }
    }

    /// Index in token order; also the genre classifier's label (classical 0, pop 1, jazz 2).
    pub const fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Genre {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A name that is not one of the known genres or corruptions.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} {name:?}; valid: {valid}")]
pub struct UnknownName {
    pub what: &'static str,
    pub name: String,
    pub valid: String,
}

impl FromStr for Genre {
    type Err = UnknownName;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Genre::ALL
            .into_iter()
            .find(|g| g.name() == s)
            .ok_or_else(|| UnknownName {
                what: "genre",
                name: s.to_string(),
                valid: Genre::ALL.map(Genre::name).join(", "),
            })
    }
}

/// The nine corruption functions of spec §6, named as the original's functions.
///
/// Defined here rather than in `corrupt` because the vocabulary needs a token per corruption and
/// `tokens` must not depend on `corrupt`; `corrupt` re-exports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Corruption {
    PitchVelocityMask,
    OnsetDurationMask,
    WholeMask,
    PermutePitches,
    PermutePitchVelocity,
    Fragmentation,
    IncorrectTransposition,
    Skyline,
    NoteModification,
}

impl Corruption {
    /// In token order (ids 2290..=2298).
    pub const ALL: [Corruption; 9] = [
        Corruption::PitchVelocityMask,
        Corruption::OnsetDurationMask,
        Corruption::WholeMask,
        Corruption::PermutePitches,
        Corruption::PermutePitchVelocity,
        Corruption::Fragmentation,
        Corruption::IncorrectTransposition,
        Corruption::Skyline,
        Corruption::NoteModification,
    ];

    /// The original's function name, as written in its configs (e.g. `permute_pitches`).
    pub const fn name(self) -> &'static str {
        match self {
            Corruption::PitchVelocityMask => "pitch_velocity_mask",
            Corruption::OnsetDurationMask => "onset_duration_mask",
            Corruption::WholeMask => "whole_mask",
            Corruption::PermutePitches => "permute_pitches",
            Corruption::PermutePitchVelocity => "permute_pitch_velocity",
            Corruption::Fragmentation => "fragmentation",
            Corruption::IncorrectTransposition => "incorrect_transposition",
            Corruption::Skyline => "skyline",
            Corruption::NoteModification => "note_modification",
        }
    }

    /// The vocabulary's token name; differs from [`Corruption::name`] for the two permutations.
    pub const fn token_name(self) -> &'static str {
        match self {
            Corruption::PermutePitches => "pitch_permutation",
            Corruption::PermutePitchVelocity => "pitch_velocity_permutation",
            other => other.name(),
        }
    }

    /// Index in token order.
    pub const fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Corruption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Corruption {
    type Err = UnknownName;

    /// Accepts the function names only (what the configs use), not the token names.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Corruption::ALL
            .into_iter()
            .find(|c| c.name() == s)
            .ok_or_else(|| UnknownName {
                what: "corruption",
                name: s.to_string(),
                valid: Corruption::ALL.map(Corruption::name).join(", "),
            })
    }
}

/// One vocabulary entry. Values are in the token's own units (pitch 0..=127, velocity a bin of
/// [`VELOCITY_BINS`], onset and duration 0..=5000 ms in steps of 10).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Token {
    PianoNote {
        pitch: u8,
        velocity: u8,
    },
    Onset(u16),
    Dur(u16),
    Genre(Genre),
    /// `O`
    MaskOnset,
    /// `D`
    MaskDur,
    /// `PVM`
    MaskPitchVelocity,
    /// `mask`
    Mask,
    Corruption(Corruption),
    Prefix,
    /// `<T>`
    T,
    /// `<D>`
    D,
    /// `<U>`
    U,
    /// `<S>`
    Bos,
    /// `<E>`
    Eos,
    Sep,
}

/// The row of a velocity that is one of [`VELOCITY_BINS`]; `None` for any other.
pub fn velocity_index_exact(velocity: u8) -> Option<u32> {
    VELOCITY_BINS
        .iter()
        .position(|&v| v == velocity)
        .map(|i| i as u32)
}

/// The row of any velocity in [`VELOCITY_BINS`]: its bin's, or else the nearest bin's, the row
/// its note token gets ([`Token::id`] snaps the same way).
pub fn velocity_row(velocity: u8) -> u32 {
    u32::from(VELOCITY_ROW[usize::from(velocity)])
}

/// The row of every velocity: its bin's, or else the nearest bin's (ties to the lower one), as
/// [`Token::id`] snaps. A table, because this runs for every note of every tokenized piece.
const VELOCITY_ROW: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut v = 0;
    while v < 256 {
        let mut best = 0;
        let mut i = 1;
        while i < VELOCITY_BINS.len() {
            if VELOCITY_BINS[i].abs_diff(v as u8) < VELOCITY_BINS[best].abs_diff(v as u8) {
                best = i;
            }
            i += 1;
        }
        table[v] = best as u8;
        v += 1;
    }
    table
};

fn time_index_exact(ms: u16) -> Option<u32> {
    (ms <= MAX_TIME_MS && ms.is_multiple_of(TIME_STEP_MS)).then_some((ms / TIME_STEP_MS) as u32)
}

impl Token {
    /// The token's id, or `None` when a value is off the vocabulary's grid
    /// (pitch > 127, velocity not a bin, time not a multiple of 10 or above 5000).
    pub fn checked_id(self) -> Option<u32> {
        Some(match self {
            Token::PianoNote { pitch, velocity } => {
                if pitch > 127 {
                    return None;
                }
                PIANO_BASE + velocity_index_exact(velocity)? * 128 + pitch as u32
            }
            Token::Onset(ms) => ONSET_BASE + time_index_exact(ms)?,
            Token::Dur(ms) => DUR_BASE + time_index_exact(ms)?,
            other => other.id(),
        })
    }

    /// The token's id. Total, so it never panics: off-grid values are snapped to the nearest
    /// entry (pitch clamped to 127, velocity to the nearest bin, times to the 10 ms grid within
    /// 0..=5000). Use [`Token::checked_id`] to detect such values instead.
    #[inline]
    pub fn id(self) -> u32 {
        match self {
            Token::PianoNote { pitch, velocity } => {
                PIANO_BASE
                    + u32::from(VELOCITY_ROW[usize::from(velocity)]) * 128
                    + pitch.min(127) as u32
            }
            Token::Onset(ms) => ONSET_BASE + snap_time(ms),
            Token::Dur(ms) => DUR_BASE + snap_time(ms),
            Token::Genre(g) => GENRE_BASE + g.index() as u32,
            Token::MaskOnset => MASK_ONSET,
            Token::MaskDur => MASK_DUR,
            Token::MaskPitchVelocity => MASK_PITCH_VELOCITY,
            Token::Mask => MASK,
            Token::Corruption(c) => CORRUPTION_BASE + c.index() as u32,
            Token::Prefix => PREFIX,
            Token::T => T_SEP,
            Token::D => D_TOKEN,
            Token::U => U_TOKEN,
            Token::Bos => BOS,
            Token::Eos => EOS,
            Token::Sep => SEP,
        }
    }

    /// The token with this id; `None` for pad (0) and ids past the vocabulary.
    pub fn from_id(id: u32) -> Option<Token> {
        Some(match id {
            PIANO_BASE..ONSET_BASE => {
                let i = id - PIANO_BASE;
                Token::PianoNote {
                    pitch: (i % 128) as u8,
                    velocity: VELOCITY_BINS[(i / 128) as usize],
                }
            }
            ONSET_BASE..DUR_BASE => Token::Onset(((id - ONSET_BASE) * 10) as u16),
            DUR_BASE..GENRE_BASE => Token::Dur(((id - DUR_BASE) * 10) as u16),
            GENRE_BASE..MASK_ONSET => Token::Genre(Genre::ALL[(id - GENRE_BASE) as usize]),
            MASK_ONSET => Token::MaskOnset,
            MASK_DUR => Token::MaskDur,
            MASK_PITCH_VELOCITY => Token::MaskPitchVelocity,
            MASK => Token::Mask,
            CORRUPTION_BASE..PREFIX => {
                Token::Corruption(Corruption::ALL[(id - CORRUPTION_BASE) as usize])
            }
            PREFIX => Token::Prefix,
            T_SEP => Token::T,
            D_TOKEN => Token::D,
            U_TOKEN => Token::U,
            BOS => Token::Bos,
            EOS => Token::Eos,
            SEP => Token::Sep,
            _ => return None,
        })
    }

    /// The `("piano", pitch, velocity)` token if `pitch` fits 0..=127: the original silently drops
    /// out-of-range pitches at inference (they have no id), so callers skip on `None`.
    pub fn piano(pitch: i32, velocity: u8) -> Option<Token> {
        u8::try_from(pitch)
            .ok()
            .filter(|&p| p <= 127)
            .map(|pitch| Token::PianoNote { pitch, velocity })
    }
}

/// Nearest 10 ms grid index within 0..=5000 (ties up); exact grid values map to themselves.
#[inline]
fn snap_time(ms: u16) -> u32 {
    (ms.min(MAX_TIME_MS) as u32 + 5) / 10
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapping_keeps_ids_in_range() {
        assert_eq!(Token::Onset(4995).id(), ONSET_BASE + 500);
        assert_eq!(Token::Onset(60_000).id(), ONSET_BASE + 500);
        assert_eq!(Token::Dur(14).id(), DUR_BASE + 1);
        assert_eq!(
            Token::PianoNote {
                pitch: 200,
                velocity: 127
            }
            .id(),
            1280
        );
        assert_eq!(
            Token::PianoNote {
                pitch: 60,
                velocity: 91
            }
            .id(),
            829
        );
        assert_eq!(
            Token::PianoNote {
                pitch: 60,
                velocity: 91
            }
            .checked_id(),
            None
        );
        assert_eq!(Token::Onset(5).checked_id(), None);
        assert_eq!(Token::Dur(5010).checked_id(), None);
    }

    #[test]
    fn velocity_rows_are_the_exact_bin_or_the_nearest_lower_tie() {
        for v in 0..=u8::MAX {
            let mut best = 0usize;
            for (i, &b) in VELOCITY_BINS.iter().enumerate() {
                if b.abs_diff(v) < VELOCITY_BINS[best].abs_diff(v) {
                    best = i;
                }
            }
            assert_eq!(
                usize::from(VELOCITY_ROW[usize::from(v)]),
                best,
                "velocity {v}"
            );
            if let Some(exact) = velocity_index_exact(v) {
                assert_eq!(u32::from(VELOCITY_ROW[usize::from(v)]), exact);
            }
        }
    }

    #[test]
    fn piano_drops_out_of_range_pitches() {
        assert_eq!(Token::piano(-1, 90), None);
        assert_eq!(Token::piano(128, 90), None);
        assert_eq!(
            Token::piano(127, 90),
            Some(Token::PianoNote {
                pitch: 127,
                velocity: 90
            })
        );
    }
}
