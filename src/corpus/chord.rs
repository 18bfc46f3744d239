//! Chord symbols as a jazz lead sheet writes them, and the notes a soloist plays over them.
//!
//! Names follow MMA's chord table (`/usr/share/mma/MMA/chordtable.py`, with its aliases `maj7`,
//! `maj9`, `7alt`), so a chart prints straight into an `.mma` file.

use std::fmt;

/// A pitch class: C = 0, C#/Db = 1, ..., B = 11.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PitchClass(u8);

/// Lead-sheet spelling: flats, except F# (the way most fake books spell roots). MMA reads
/// either spelling, so one table serves every key.
const NAMES: [&str; 12] = [
    "C", "Db", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B",
];

impl PitchClass {
    pub const C: Self = Self(0);

    /// Any integer, wrapped into one octave (so `-1` is B).
    pub fn new(semitones: i32) -> Self {
        Self(semitones.rem_euclid(12) as u8)
    }

    /// The pitch class `semitones` above (negative: below).
    pub fn transpose(self, semitones: i32) -> Self {
        Self::new(i32::from(self.0) + semitones)
    }

    /// 0..12.
    pub fn value(self) -> u8 {
        self.0
    }

    /// Semitones from `self` up to `other`, 0..12.
    pub fn interval_to(self, other: Self) -> u8 {
        Self::new(i32::from(other.0) - i32::from(self.0)).0
    }

    pub fn name(self) -> &'static str {
        NAMES[usize::from(self.0)]
    }

    /// Whether a MIDI pitch has this pitch class.
    pub fn contains(self, pitch: i32) -> bool {
        pitch.rem_euclid(12) == i32::from(self.0)
    }
}

impl fmt::Display for PitchClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Chord qualities of the jazz repertoire the forms use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Quality {
    Maj7,
    Maj6,
    Maj9,
    Min7,
    Min9,
    Min6,
    /// Dominant seventh.
    Dom7,
    Dom9,
    Dom13,
    /// Altered dominant (MMA voices it as 7b5b9).
    Alt7,
    /// Half-diminished, m7b5.
    HalfDim7,
    Dim7,
}

impl Quality {
    /// The suffix in MMA's chord-name syntax.
    pub fn mma_suffix(self) -> &'static str {
        match self {
            Quality::Maj7 => "maj7",
            Quality::Maj6 => "6",
            Quality::Maj9 => "maj9",
            Quality::Min7 => "m7",
            Quality::Min9 => "m9",
            Quality::Min6 => "m6",
            Quality::Dom7 => "7",
            Quality::Dom9 => "9",
            Quality::Dom13 => "13",
            Quality::Alt7 => "7alt",
            Quality::HalfDim7 => "m7b5",
            Quality::Dim7 => "dim7",
        }
    }

    /// Chord tones as semitones above the root: what a line lands on at strong beats. Tensions
    /// (9, 13) are left to the scale so that strong beats spell the harmony.
    pub fn tones(self) -> &'static [u8] {
        match self {
            Quality::Maj7 | Quality::Maj9 => &[0, 4, 7, 11],
            Quality::Maj6 => &[0, 4, 7, 9],
            Quality::Min7 | Quality::Min9 => &[0, 3, 7, 10],
            Quality::Min6 => &[0, 3, 7, 9],
            Quality::Dom7 | Quality::Dom9 | Quality::Dom13 => &[0, 4, 7, 10],
            Quality::Alt7 => &[0, 4, 8, 10],
            Quality::HalfDim7 => &[0, 3, 6, 10],
            Quality::Dim7 => &[0, 3, 6, 9],
        }
    }

    /// The chord-scale: the mode a jazz player thinks over this chord.
    pub fn scale(self) -> &'static [u8] {
        match self {
            // Ionian.
            Quality::Maj7 | Quality::Maj6 | Quality::Maj9 => &[0, 2, 4, 5, 7, 9, 11],
            // Dorian.
            Quality::Min7 | Quality::Min9 => &[0, 2, 3, 5, 7, 9, 10],
            // Melodic minor.
            Quality::Min6 => &[0, 2, 3, 5, 7, 9, 11],
            // Mixolydian.
            Quality::Dom7 | Quality::Dom9 | Quality::Dom13 => &[0, 2, 4, 5, 7, 9, 10],
            // Altered (super-Locrian).
            Quality::Alt7 => &[0, 1, 3, 4, 6, 8, 10],
            // Locrian.
            Quality::HalfDim7 => &[0, 1, 3, 5, 6, 8, 10],
            // Whole-half diminished.
            Quality::Dim7 => &[0, 2, 3, 5, 6, 8, 9, 11],
        }
    }

    /// The bebop scale: the chord-scale plus one chromatic passing tone, so that a run of
    /// eighths starting on a chord tone on the beat keeps chord tones on the beats.
    pub fn bebop_scale(self) -> &'static [u8] {
        match self {
            // Major bebop: passing #5.
            Quality::Maj7 | Quality::Maj6 | Quality::Maj9 => &[0, 2, 4, 5, 7, 8, 9, 11],
            // Dorian bebop: passing major 3rd.
            Quality::Min7 | Quality::Min9 => &[0, 2, 3, 4, 5, 7, 9, 10],
            // Dominant bebop: passing major 7th.
            Quality::Dom7 | Quality::Dom9 | Quality::Dom13 => &[0, 2, 4, 5, 7, 9, 10, 11],
            other => other.scale(),
        }
    }

    /// Dominant function: resolves down a fifth; the chords substitutions act on.
    pub fn is_dominant(self) -> bool {
        matches!(
            self,
            Quality::Dom7 | Quality::Dom9 | Quality::Dom13 | Quality::Alt7
        )
    }

    pub fn is_minor7(self) -> bool {
        matches!(self, Quality::Min7 | Quality::Min9)
    }

    pub fn is_major(self) -> bool {
        matches!(self, Quality::Maj7 | Quality::Maj6 | Quality::Maj9)
    }
}

/// A chord symbol: root and quality.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Chord {
    pub root: PitchClass,
    pub quality: Quality,
}

impl Chord {
    pub fn new(root: PitchClass, quality: Quality) -> Self {
        Self { root, quality }
    }

    /// The chord tones' pitch classes, root first.
    pub fn tones(&self) -> Vec<PitchClass> {
        self.pitch_classes(self.quality.tones())
    }

    /// The chord-scale's pitch classes, root first.
    pub fn scale(&self) -> Vec<PitchClass> {
        self.pitch_classes(self.quality.scale())
    }

    /// The bebop scale's pitch classes, root first.
    pub fn bebop_scale(&self) -> Vec<PitchClass> {
        self.pitch_classes(self.quality.bebop_scale())
    }

    /// Whether a MIDI pitch is one of the chord tones.
    pub fn has_tone(&self, pitch: i32) -> bool {
        self.tones().iter().any(|pc| pc.contains(pitch))
    }

    fn pitch_classes(&self, intervals: &[u8]) -> Vec<PitchClass> {
        intervals
            .iter()
            .map(|&i| self.root.transpose(i32::from(i)))
            .collect()
    }
}

impl fmt::Display for Chord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.root, self.quality.mma_suffix())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pc(v: i32) -> PitchClass {
        PitchClass::new(v)
    }

    #[test]
    fn names_use_mma_chord_syntax() {
        assert_eq!(Chord::new(pc(2), Quality::Min7).to_string(), "Dm7");
        assert_eq!(Chord::new(pc(7), Quality::Dom7).to_string(), "G7");
        assert_eq!(Chord::new(pc(0), Quality::Maj7).to_string(), "Cmaj7");
        assert_eq!(Chord::new(pc(10), Quality::HalfDim7).to_string(), "Bbm7b5");
        assert_eq!(Chord::new(pc(6), Quality::Dim7).to_string(), "F#dim7");
        assert_eq!(Chord::new(pc(3), Quality::Alt7).to_string(), "Eb7alt");
        assert_eq!(Chord::new(pc(-1), Quality::Dom13).to_string(), "B13");
    }

    #[test]
    fn g7_tones_and_mixolydian() {
        let g7 = Chord::new(pc(7), Quality::Dom7);
        let tones: Vec<u8> = g7.tones().iter().map(|p| p.value()).collect();
        assert_eq!(tones, [7, 11, 2, 5]);
        let scale: Vec<u8> = g7.scale().iter().map(|p| p.value()).collect();
        assert_eq!(scale, [7, 9, 11, 0, 2, 4, 5]);
        assert!(g7.has_tone(71) && !g7.has_tone(72));
    }

    #[test]
    fn bebop_scales_have_eight_notes_and_contain_the_chord() {
        for q in [Quality::Maj7, Quality::Min7, Quality::Dom7] {
            let bebop = q.bebop_scale();
            assert_eq!(bebop.len(), 8, "{q:?}");
            assert!(q.tones().iter().all(|t| bebop.contains(t)), "{q:?}");
        }
    }

    #[test]
    fn dominant_and_major_sixth_bebop_runs_keep_chord_tones_on_the_beat() {
        // From the root, every other step of the bebop scale is a chord tone.
        for (q, tones) in [
            (Quality::Dom7, Quality::Dom7.tones()),
            (Quality::Maj6, Quality::Maj6.tones()),
        ] {
            let on_beats: Vec<u8> = q.bebop_scale().iter().step_by(2).copied().collect();
            assert_eq!(on_beats, tones, "{q:?}");
        }
    }

    #[test]
    fn scales_contain_their_chord_tones() {
        use Quality::*;
        for q in [
            Maj7, Maj6, Maj9, Min7, Min9, Min6, Dom7, Dom9, Dom13, Alt7, HalfDim7, Dim7,
        ] {
            assert!(q.tones().iter().all(|t| q.scale().contains(t)), "{q:?}");
        }
    }
}
