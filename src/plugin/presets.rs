//! Factory presets: named settings a musician can start from. nice-plug has no CLAP preset
//! discovery, so the editor offers them; each sets the musical parameters and leaves the seed,
//! bypass and "refine" switches as they are.

use super::params::{CorruptionParam, FidelityParam, GenreParam, ImprovParams, Mode};

/// One named setting of the musical parameters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Preset {
    pub name: &'static str,
    /// One line for the editor's tooltip.
    pub about: &'static str,
    pub mode: Mode,
    pub genre: GenreParam,
    pub corruption: CorruptionParam,
    pub fidelity: FidelityParam,
    pub rate: f32,
    pub temperature: f32,
    pub context_before: i32,
    pub delay: i32,
    pub thru: bool,
    pub sync: bool,
    pub align: bool,
}

/// The factory presets, in the order the editor lists them.
pub const PRESETS: &[Preset] = &[
    Preset {
        name: "Jazz style transfer",
        about: "Half of each phrase rewritten toward jazz, your top voice kept (the default)",
        mode: Mode::Improvise,
        genre: GenreParam::Jazz,
        corruption: CorruptionParam::Random,
        fidelity: FidelityParam::Strict,
        rate: 0.5,
        temperature: 1.0,
        context_before: 5,
        delay: 2,
        thru: false,
        sync: false,
        align: false,
    },
    Preset {
        name: "Jazz reharmonization",
        about: "Jazz chords under the melody you play, on the bar lines",
        mode: Mode::Harmonize,
        genre: GenreParam::Jazz,
        corruption: CorruptionParam::Skyline,
        fidelity: FidelityParam::Strict,
        rate: 1.0,
        temperature: 1.0,
        context_before: 5,
        delay: 2,
        thru: false,
        sync: true,
        align: false,
    },
    Preset {
        name: "Gentle variation",
        about: "A quarter of each phrase varied in its own (classical) style",
        mode: Mode::Improvise,
        genre: GenreParam::Classical,
        corruption: CorruptionParam::Random,
        fidelity: FidelityParam::Strict,
        rate: 0.25,
        temperature: 0.8,
        context_before: 5,
        delay: 2,
        thru: false,
        sync: false,
        align: false,
    },
    Preset {
        name: "Call and response",
        about: "You play, it answers two phrases later, freer; your playing sounds too",
        mode: Mode::Improvise,
        genre: GenreParam::Jazz,
        corruption: CorruptionParam::Random,
        fidelity: FidelityParam::Free,
        rate: 0.6,
        temperature: 1.0,
        context_before: 5,
        delay: 2,
        thru: true,
        sync: false,
        align: false,
    },
];

impl Preset {
    /// Whether the parameters hold exactly this preset's values (the editor names it then).
    pub fn matches(&self, p: &ImprovParams) -> bool {
        let close = |a: f32, b: f32| (a - b).abs() < 1e-4;
        p.mode.value() == self.mode
            && p.genre.value() == self.genre
            && p.corruption.value() == self.corruption
            && p.fidelity.value() == self.fidelity
            && close(p.rate.value(), self.rate)
            && close(p.temperature.value(), self.temperature)
            && p.context_before.value() == self.context_before
            && p.delay.value() == self.delay
            && p.thru.value() == self.thru
            && p.sync.value() == self.sync
            && p.align.value() == self.align
    }

    /// The preset the parameters hold, if any.
    pub fn current(p: &ImprovParams) -> Option<&'static Preset> {
        PRESETS.iter().find(|preset| preset.matches(p))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_parameters_are_the_first_preset_and_names_are_unique() {
        let p = ImprovParams::default();
        assert_eq!(Preset::current(&p).map(|x| x.name), Some(PRESETS[0].name));
        for (i, a) in PRESETS.iter().enumerate() {
            assert!(PRESETS[i + 1..].iter().all(|b| b.name != a.name));
            assert!(!a.about.is_empty());
        }
    }
}
