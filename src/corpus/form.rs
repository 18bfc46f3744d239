//! Song forms of the jazz repertoire, as rules that write a key's chord changes bar by bar.
//!
//! Each form is a small function of the key, written in scale degrees the way a player thinks of
//! it ("ii–V–I", "III7–VI7–II7–V7"), so the rule can be checked against the tune books.

use rand::Rng;
use serde::Serialize;

use super::chord::{Chord, PitchClass, Quality};

/// The forms the generator writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Form {
    /// 12-bar blues with dominant chords only (quick change to IV in bar 2).
    Blues,
    /// 12-bar jazz blues: ii–V into IV, #iv diminished, VI7 and a ii–V turnaround.
    JazzBlues,
    /// 32-bar AABA on "I Got Rhythm": I–vi–ii–V A sections, III7–VI7–II7–V7 bridge.
    RhythmChanges,
    /// ii–V–I in every key, round the cycle of fourths.
    TwoFiveOneCycle,
    /// 32-bar AABA standard with turnarounds.
    AabaSong,
    /// Dorian vamp, AABA with the bridge a half step up ("So What" / "Impressions").
    ModalVamp,
    /// 3/4 jazz waltz, 32 bars.
    JazzWaltz,
}

impl Form {
    pub const ALL: [Form; 7] = [
        Form::Blues,
        Form::JazzBlues,
        Form::RhythmChanges,
        Form::TwoFiveOneCycle,
        Form::AabaSong,
        Form::ModalVamp,
        Form::JazzWaltz,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Form::Blues => "blues",
            Form::JazzBlues => "jazz_blues",
            Form::RhythmChanges => "rhythm_changes",
            Form::TwoFiveOneCycle => "two_five_one_cycle",
            Form::AabaSong => "aaba_song",
            Form::ModalVamp => "modal_vamp",
            Form::JazzWaltz => "jazz_waltz",
        }
    }

    pub fn beats_per_bar(self) -> u8 {
        match self {
            Form::JazzWaltz => 3,
            _ => 4,
        }
    }

    /// The mode the key names: a modal vamp is "D dorian", everything else is major.
    pub fn mode(self) -> Mode {
        match self {
            Form::ModalVamp => Mode::Dorian,
            _ => Mode::Major,
        }
    }

    /// Whether the form is a blues (the right hand may play blues licks over it).
    pub fn is_blues(self) -> bool {
        matches!(self, Form::Blues | Form::JazzBlues)
    }

    /// Functional harmony that reharmonisation rules may act on: not the plain blues (kept
    /// plain on purpose) and not the modal vamp (no dominant motion to substitute).
    pub fn takes_substitutions(self) -> bool {
        !matches!(self, Form::Blues | Form::ModalVamp)
    }

    /// The chord changes of this form in `key`; `rng` picks among a form's standard variants.
    pub fn bars(self, key: PitchClass, rng: &mut impl Rng) -> Vec<Bar> {
        match self {
            Form::Blues => blues(key),
            Form::JazzBlues => jazz_blues(key),
            Form::RhythmChanges => rhythm_changes(key),
            Form::TwoFiveOneCycle => two_five_one_cycle(key),
            Form::AabaSong => aaba_song(key, rng),
            Form::ModalVamp => dorian_vamp(key),
            Form::JazzWaltz => jazz_waltz(key),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    Major,
    Dorian,
}

/// One bar: one chord, or two chords splitting it (2+2 beats in 4/4, 2+1 in 3/4).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bar {
    pub chords: Vec<Chord>,
}

impl Bar {
    pub fn one(chord: Chord) -> Self {
        Self {
            chords: vec![chord],
        }
    }

    pub fn two(first: Chord, second: Chord) -> Self {
        Self {
            chords: vec![first, second],
        }
    }

    /// The bar as a lead sheet writes it: its chords' names, space-separated (`"Dm7 G7"`).
    pub fn name(&self) -> String {
        self.chords
            .iter()
            .map(|c| c.to_string())
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// The chord sounding on `beat` (0-based) of the bar.
    pub fn chord_on_beat(&self, beat: u8) -> Chord {
        // The second chord comes in on beat 3 (index 2), in 4/4 and in 3/4 alike.
        if self.chords.len() > 1 && beat >= 2 {
            self.chords[1]
        } else {
            self.chords[0]
        }
    }
}

/// A lead sheet: the changes plus what the rhythm section needs to play them.
#[derive(Clone, Debug, PartialEq)]
pub struct Chart {
    pub form: Form,
    pub key: PitchClass,
    pub mode: Mode,
    pub beats_per_bar: u8,
    pub tempo_bpm: u16,
    /// An MMA groove name from [`super::mma::GROOVES`].
    pub groove: &'static str,
    /// Swing as the long eighth's share of the beat, in percent (50 = straight, 66 = triplet).
    pub swing_percent: u8,
    pub bars: Vec<Bar>,
    /// Names of the reharmonisation rules applied, in order.
    pub substitutions: Vec<&'static str>,
    /// The chart's own seed: drew its variants, and seeds MMA's humanisation (`RndSeed`) and the
    /// right hand, so one chart renders the same every time.
    pub seed: u64,
}

impl Chart {
    /// The long eighth's share of the beat (0.5 = straight).
    pub fn swing_ratio(&self) -> f64 {
        f64::from(self.swing_percent) / 100.0
    }

    pub fn beats(&self) -> usize {
        self.bars.len() * usize::from(self.beats_per_bar)
    }

    /// The chord on the `beat`-th beat of the chart, from 0.
    pub fn chord_at_beat(&self, beat: usize) -> Chord {
        let per_bar = usize::from(self.beats_per_bar);
        let bar = &self.bars[(beat / per_bar).min(self.bars.len() - 1)];
        bar.chord_on_beat((beat % per_bar) as u8)
    }

    /// "Bb major", "D dorian".
    pub fn key_name(&self) -> String {
        let mode = match self.mode {
            Mode::Major => "major",
            Mode::Dorian => "dorian",
        };
        format!("{} {mode}", self.key)
    }
}

/// A chord on a scale degree of `key`, given in semitones above the tonic (II = 2, bVII = 10).
pub fn degree(key: PitchClass, semitones: i32, quality: Quality) -> Chord {
    Chord::new(key.transpose(semitones), quality)
}

use Quality::{Dim7, Dom7, Dom9, Maj6, Maj7, Min7};

/// 12-bar blues, all dominants: I7 IV7 I7 I7 | IV7 IV7 I7 I7 | V7 IV7 I7 V7.
pub fn blues(key: PitchClass) -> Vec<Bar> {
    let one = degree(key, 0, Dom7);
    let four = degree(key, 5, Dom7);
    let five = degree(key, 7, Dom7);
    [
        one, four, one, one, four, four, one, one, five, four, one, five,
    ]
    .into_iter()
    .map(Bar::one)
    .collect()
}

/// 12-bar jazz blues (Parker/Basie style): ii–V into IV in bar 4, #iv diminished in bar 6,
/// I–VI7 in bars 7–8, ii–V in 9–10 and a I–VI7–ii–V turnaround.
pub fn jazz_blues(key: PitchClass) -> Vec<Bar> {
    let d = |s, q| degree(key, s, q);
    vec![
        Bar::one(d(0, Dom7)),
        Bar::one(d(5, Dom7)),
        Bar::one(d(0, Dom7)),
        Bar::two(d(7, Min7), d(0, Dom7)),
        Bar::one(d(5, Dom7)),
        Bar::one(d(6, Dim7)),
        Bar::one(d(0, Dom7)),
        Bar::one(d(9, Dom7)),
        Bar::one(d(2, Min7)),
        Bar::one(d(7, Dom7)),
        Bar::two(d(0, Dom7), d(9, Dom7)),
        Bar::two(d(2, Min7), d(7, Dom7)),
    ]
}

/// An A section of rhythm changes: I–vi | ii–V twice, I–I7 | IV–#iv° | then a turnaround
/// (`last` = false) or the final tonic.
pub fn rhythm_changes_a(key: PitchClass, last: bool) -> Vec<Bar> {
    let d = |s, q| degree(key, s, q);
    let i_vi = Bar::two(d(0, Maj6), d(9, Min7));
    let ii_v = Bar::two(d(2, Min7), d(7, Dom7));
    let ending = if last {
        Bar::one(d(0, Maj6))
    } else {
        ii_v.clone()
    };
    vec![
        i_vi.clone(),
        ii_v.clone(),
        i_vi,
        ii_v,
        Bar::two(d(0, Maj6), d(0, Dom7)),
        Bar::two(d(5, Maj6), d(6, Dim7)),
        Bar::two(d(0, Maj6), d(7, Dom7)),
        ending,
    ]
}

/// The rhythm-changes bridge: III7–VI7–II7–V7, two bars each (the "Sears Roebuck" bridge).
pub fn rhythm_changes_bridge(key: PitchClass) -> Vec<Bar> {
    [4, 9, 2, 7]
        .into_iter()
        .flat_map(|s| {
            let dom = Bar::one(degree(key, s, Dom7));
            [dom.clone(), dom]
        })
        .collect()
}

/// 32-bar AABA rhythm changes.
pub fn rhythm_changes(key: PitchClass) -> Vec<Bar> {
    let mut bars = rhythm_changes_a(key, false);
    bars.extend(rhythm_changes_a(key, false));
    bars.extend(rhythm_changes_bridge(key));
    bars.extend(rhythm_changes_a(key, true));
    bars
}

/// ii–V–I–I in twelve keys, each key a fourth above the last (the direction a V moves to I),
/// starting in `key`: 48 bars.
pub fn two_five_one_cycle(key: PitchClass) -> Vec<Bar> {
    (0..12)
        .flat_map(|k| {
            let tonic = key.transpose(5 * k);
            [
                Bar::one(degree(tonic, 2, Min7)),
                Bar::one(degree(tonic, 7, Dom7)),
                Bar::one(degree(tonic, 0, Maj7)),
                Bar::one(degree(tonic, 0, Maj7)),
            ]
        })
        .collect()
}

/// How an A section of a song ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ending {
    /// I–VI7 | ii–V back to the top.
    Turnaround,
    /// v–I7: a ii–V into IV, for a bridge that starts on IV.
    IntoFour,
    /// I for two bars: the end of the tune.
    Final,
}

/// An 8-bar A section: I | VI7 | ii | V | iii | VI7 | then the ending.
pub fn song_a_section(key: PitchClass, ending: Ending) -> Vec<Bar> {
    let d = |s, q| degree(key, s, q);
    let mut bars: Vec<Bar> = [
        d(0, Maj7),
        d(9, Dom7),
        d(2, Min7),
        d(7, Dom7),
        d(4, Min7),
        d(9, Dom7),
    ]
    .into_iter()
    .map(Bar::one)
    .collect();
    bars.extend(match ending {
        Ending::Turnaround => [
            Bar::two(d(0, Maj7), d(9, Dom7)),
            Bar::two(d(2, Min7), d(7, Dom7)),
        ],
        Ending::IntoFour => [Bar::one(d(2, Min7)), Bar::two(d(7, Min7), d(0, Dom7))],
        Ending::Final => [Bar::one(d(0, Maj7)), Bar::one(d(0, Maj7))],
    });
    bars
}

/// Bridge to the IV: IVmaj7 | IVmaj7 | iv | bVII7 | iii | VI7 | ii | V7.
pub fn bridge_to_four(key: PitchClass) -> Vec<Bar> {
    let d = |s, q| degree(key, s, q);
    [
        d(5, Maj7),
        d(5, Maj7),
        d(5, Min7),
        d(10, Dom7),
        d(4, Min7),
        d(9, Dom7),
        d(2, Min7),
        d(7, Dom7),
    ]
    .into_iter()
    .map(Bar::one)
    .collect()
}

/// Bridge on a chain of dominants round the cycle: III7–VI7–II7–V7, two bars each.
pub fn bridge_dominant_cycle(key: PitchClass) -> Vec<Bar> {
    rhythm_changes_bridge(key)
}

/// 32-bar AABA song: A (turnaround), A (into the bridge), B, A (final).
pub fn aaba_song(key: PitchClass, rng: &mut impl Rng) -> Vec<Bar> {
    let to_four = rng.gen_bool(0.5);
    let mut bars = song_a_section(key, Ending::Turnaround);
    if to_four {
        bars.extend(song_a_section(key, Ending::IntoFour));
        bars.extend(bridge_to_four(key));
    } else {
        bars.extend(song_a_section(key, Ending::Turnaround));
        bars.extend(bridge_dominant_cycle(key));
    }
    bars.extend(song_a_section(key, Ending::Final));
    bars
}

/// Dorian vamp, AABA: eight bars of i–IV colour (im7, IV9 in bars 4 and 8), the bridge the same
/// a half step up.
pub fn dorian_vamp(key: PitchClass) -> Vec<Bar> {
    let section = |tonic: PitchClass| -> Vec<Bar> {
        let i = Bar::one(degree(tonic, 0, Min7));
        let iv = Bar::one(degree(tonic, 5, Dom9));
        vec![
            i.clone(),
            i.clone(),
            i.clone(),
            iv.clone(),
            i.clone(),
            i.clone(),
            i,
            iv,
        ]
    };
    let mut bars = section(key);
    bars.extend(section(key));
    bars.extend(section(key.transpose(1)));
    bars.extend(section(key));
    bars
}

/// 3/4 jazz waltz, 32 bars (ABAB'), one chord a bar: I VI7 ii V iii VI7 ii V | IV iv iii VI7
/// ii V I I.
pub fn jazz_waltz(key: PitchClass) -> Vec<Bar> {
    let d = |s, q| degree(key, s, q);
    let a = [
        d(0, Maj7),
        d(9, Dom7),
        d(2, Min7),
        d(7, Dom7),
        d(4, Min7),
        d(9, Dom7),
        d(2, Min7),
        d(7, Dom7),
    ];
    let b = |last: bool| {
        [
            d(5, Maj7),
            d(5, Min7),
            d(4, Min7),
            d(9, Dom7),
            d(2, Min7),
            d(7, Dom7),
            d(0, Maj7),
            if last { d(0, Maj7) } else { d(7, Dom7) },
        ]
    };
    a.into_iter()
        .chain(b(false))
        .chain(a)
        .chain(b(true))
        .map(Bar::one)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn names(bars: &[Bar]) -> Vec<String> {
        bars.iter().map(Bar::name).collect()
    }

    const C: PitchClass = PitchClass::C;

    #[test]
    fn two_five_one_in_c_is_dm7_g7_cmaj7() {
        let bars = two_five_one_cycle(C);
        assert_eq!(names(&bars[..3]), ["Dm7", "G7", "Cmaj7"]);
        assert_eq!(bars.len(), 48);
        // The next key is F, then Bb: all twelve tonics appear once.
        assert_eq!(names(&bars[4..7]), ["Gm7", "C7", "Fmaj7"]);
        let mut tonics: Vec<u8> = bars
            .iter()
            .step_by(4)
            .map(|b| b.chords[0].root.value())
            .collect();
        tonics.sort();
        tonics.dedup();
        assert_eq!(tonics.len(), 12);
    }

    #[test]
    fn rhythm_changes_bridge_in_bb_is_d7_g7_c7_f7_two_bars_each() {
        let bb = PitchClass::new(10);
        let bridge = rhythm_changes_bridge(bb);
        assert_eq!(
            names(&bridge),
            ["D7", "D7", "G7", "G7", "C7", "C7", "F7", "F7"]
        );
        let tune = rhythm_changes(bb);
        assert_eq!(tune.len(), 32);
        assert_eq!(tune[16..24], bridge[..]);
        // A section: I–vi | ii–V.
        assert_eq!(names(&tune[..2]), ["Bb6 Gm7", "Cm7 F7"]);
    }

    #[test]
    fn twelve_bar_blues_has_twelve_bars_and_bar_five_is_the_four() {
        for key in 0..12 {
            let key = PitchClass::new(key);
            for bars in [blues(key), jazz_blues(key)] {
                assert_eq!(bars.len(), 12);
                assert_eq!(bars[4].chords, [degree(key, 5, Dom7)]);
                assert_eq!(bars[0].chords[0], degree(key, 0, Dom7));
            }
        }
        assert_eq!(
            names(&blues(PitchClass::new(5))),
            ["F7", "Bb7", "F7", "F7", "Bb7", "Bb7", "F7", "F7", "C7", "Bb7", "F7", "C7"]
        );
        assert_eq!(names(&jazz_blues(C))[5], "F#dim7");
    }

    #[test]
    fn songs_are_32_bars_and_end_on_the_tonic() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        for _ in 0..8 {
            let song = aaba_song(C, &mut rng);
            assert_eq!(song.len(), 32);
            assert_eq!(names(&song[30..]), ["Cmaj7", "Cmaj7"]);
        }
        assert_eq!(
            rhythm_changes(C).last().unwrap().chords[0].to_string(),
            "C6"
        );
    }

    #[test]
    fn dorian_vamp_bridge_is_a_half_step_up() {
        let d = PitchClass::new(2);
        let vamp = dorian_vamp(d);
        assert_eq!(vamp.len(), 32);
        assert_eq!(names(&vamp[..4]), ["Dm7", "Dm7", "Dm7", "G9"]);
        assert_eq!(names(&vamp[16..17]), ["Ebm7"]);
    }

    #[test]
    fn jazz_waltz_is_in_three_with_one_chord_a_bar() {
        let waltz = jazz_waltz(C);
        assert_eq!(Form::JazzWaltz.beats_per_bar(), 3);
        assert_eq!(waltz.len(), 32);
        assert!(waltz.iter().all(|b| b.chords.len() == 1));
    }

    #[test]
    fn second_chord_of_a_bar_comes_in_on_beat_three() {
        let bar = Bar::two(degree(C, 2, Min7), degree(C, 7, Dom7));
        let on: Vec<String> = (0..4).map(|b| bar.chord_on_beat(b).to_string()).collect();
        assert_eq!(on, ["Dm7", "Dm7", "G7", "G7"]);
    }
}
