//! The plugin's parameters: what the host automates and saves with the project.
//!
//! The audio thread reads them into a [`Snapshot`] when a segment is handed on, so a value the
//! host automated applies to the segment captured at that time.

use std::sync::atomic::AtomicU32;
use std::sync::{Arc, RwLock};

use nice_plug::prelude::*;

use crate::corrupt::{Corruption, CorruptionChoice};
use crate::refine::Fidelity;
use crate::tokens::Genre;

/// What the worker does with each segment.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Style transfer / intra-genre improvisation (spec §10).
    Improvise,
    /// Chords under a monophonic line (spec §11, first pass: chord constraint).
    Harmonize,
}

/// How much of what was played an answer keeps.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum FidelityParam {
    /// Keep what the corruption keeps and the tune (the top voice; the melody in harmonize).
    Strict,
    /// The original's unconstrained regeneration.
    Free,
}

impl From<FidelityParam> for Fidelity {
    fn from(f: FidelityParam) -> Self {
        match f {
            FidelityParam::Strict => Fidelity::Strict,
            FidelityParam::Free => Fidelity::Free,
        }
    }
}

/// The target genre token.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum GenreParam {
    Classical,
    Pop,
    Jazz,
}

impl From<GenreParam> for Genre {
    fn from(g: GenreParam) -> Self {
        match g {
            GenreParam::Classical => Genre::Classical,
            GenreParam::Pop => Genre::Pop,
            GenreParam::Jazz => Genre::Jazz,
        }
    }
}

/// The corruption applied before the model refines a segment: the nine, or a random one.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum CorruptionParam {
    Random,
    #[name = "Pitch/velocity mask"]
    PitchVelocityMask,
    #[name = "Onset/duration mask"]
    OnsetDurationMask,
    #[name = "Whole mask"]
    WholeMask,
    #[name = "Permute pitches"]
    PermutePitches,
    #[name = "Permute pitch+velocity"]
    PermutePitchVelocity,
    Fragmentation,
    #[name = "Incorrect transposition"]
    IncorrectTransposition,
    Skyline,
    #[name = "Note modification"]
    NoteModification,
}

impl From<CorruptionParam> for CorruptionChoice {
    fn from(c: CorruptionParam) -> Self {
        use CorruptionParam as P;
        CorruptionChoice::Fixed(match c {
            P::Random => return CorruptionChoice::Random,
            P::PitchVelocityMask => Corruption::PitchVelocityMask,
            P::OnsetDurationMask => Corruption::OnsetDurationMask,
            P::WholeMask => Corruption::WholeMask,
            P::PermutePitches => Corruption::PermutePitches,
            P::PermutePitchVelocity => Corruption::PermutePitchVelocity,
            P::Fragmentation => Corruption::Fragmentation,
            P::IncorrectTransposition => Corruption::IncorrectTransposition,
            P::Skyline => Corruption::Skyline,
            P::NoteModification => Corruption::NoteModification,
        })
    }
}

/// Longest delay in segments (the capture ring keeps a few more).
pub const MAX_DELAY: i32 = 8;

#[derive(Params)]
pub struct ImprovParams {
    #[id = "mode"]
    pub mode: EnumParam<Mode>,
    #[id = "genre"]
    pub genre: EnumParam<GenreParam>,
    #[id = "corruption"]
    pub corruption: EnumParam<CorruptionParam>,
    #[id = "fidelity"]
    pub fidelity: EnumParam<FidelityParam>,
    /// Share of segments refined (0: everything passes through, delayed).
    #[id = "rate"]
    pub rate: FloatParam,
    #[id = "temperature"]
    pub temperature: FloatParam,
    /// Earlier (already played) segments the model sees.
    #[id = "context_before"]
    pub context_before: IntParam,
    /// Segments between a phrase and its answer.
    #[id = "delay"]
    pub delay: IntParam,
    /// Echo the live input too (call and response).
    #[id = "thru"]
    pub thru: BoolParam,
    #[id = "seed"]
    pub seed: IntParam,
    /// Off: every segment comes back as played (delayed), no model time spent.
    #[id = "refine"]
    pub refine: BoolParam,
    /// Report the delay as latency, so delay compensation lines a recorded clip up.
    #[id = "align"]
    pub align: BoolParam,
    /// Segments of whole bars (the number closest to 5 s at the host's tempo and metre), so
    /// answers land on the beat; the model hears them time-scaled to its 5 s.
    #[id = "sync"]
    pub sync: BoolParam,
    /// The host's bypass: everything sounding is released, the input passes through as it is.
    #[id = "bypass"]
    pub bypass: BoolParam,
    /// Threads the model computes on; 0 = automatic (the cores less one). Read when the plugin
    /// is activated; never more than the cores less one (see [`super::worker::inference_threads`]).
    #[persist = "threads"]
    pub threads: Arc<AtomicU32>,
    /// The model folder ("" = the `IMPROVNET_MODEL` environment variable, then none).
    #[persist = "model_dir"]
    pub model_dir: Arc<RwLock<String>>,
    /// The editor's window size in logical pixels (saved even in builds without the editor).
    #[persist = "editor-state"]
    pub editor_size: Arc<RwLock<EditorSize>>,
}

/// The editor's window size in logical pixels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct EditorSize {
    pub width: u32,
    pub height: u32,
}

impl EditorSize {
    /// The size a new editor opens with.
    pub const DEFAULT: EditorSize = EditorSize {
        width: 800,
        height: 620,
    };
    /// The smallest size the editor can be resized to.
    pub const MIN: EditorSize = EditorSize {
        width: 640,
        height: 440,
    };
}

impl Default for EditorSize {
    fn default() -> Self {
        Self::DEFAULT
    }
}

impl Default for ImprovParams {
    fn default() -> Self {
        Self {
            mode: EnumParam::new("Mode", Mode::Improvise),
            genre: EnumParam::new("Genre", GenreParam::Jazz),
            corruption: EnumParam::new("Corruption", CorruptionParam::Random),
            fidelity: EnumParam::new("Fidelity", FidelityParam::Strict),
            rate: FloatParam::new(
                "Corruption rate",
                0.5,
                FloatRange::Linear { min: 0.0, max: 1.0 },
            )
            .with_step_size(0.01),
            temperature: FloatParam::new(
                "Temperature",
                1.0,
                FloatRange::Linear { min: 0.1, max: 2.0 },
            )
            .with_step_size(0.01),
            context_before: IntParam::new("Context before", 5, IntRange::Linear { min: 0, max: 8 }),
            delay: IntParam::new(
                "Delay",
                2,
                IntRange::Linear {
                    min: 1,
                    max: MAX_DELAY,
                },
            )
            .with_unit(" seg"),
            thru: BoolParam::new("MIDI thru", false),
            seed: IntParam::new("Seed", 0, IntRange::Linear { min: 0, max: 9999 }),
            refine: BoolParam::new("Refine", true),
            align: BoolParam::new("Align to timeline", false),
            sync: BoolParam::new("Sync to bars", false),
            bypass: BoolParam::new("Bypass", false).make_bypass(),
            threads: Arc::new(AtomicU32::new(0)),
            model_dir: Arc::new(RwLock::new(String::new())),
            editor_size: Arc::new(RwLock::new(EditorSize::DEFAULT)),
        }
    }
}

/// The parameters a segment is refined with, copied on the audio thread (no allocation).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Snapshot {
    pub mode: Mode,
    pub genre: GenreParam,
    pub corruption: CorruptionParam,
    pub fidelity: FidelityParam,
    pub rate: f32,
    pub temperature: f32,
    pub context_before: u32,
    /// Segments between a phrase and its answer; the worker shows the model `delay - 2` later
    /// segments as after-context (what arrives in time to refine before the answer is due).
    pub delay: u32,
    pub seed: u64,
    pub refine: bool,
}

impl Default for Snapshot {
    fn default() -> Self {
        ImprovParams::default().snapshot()
    }
}

impl ImprovParams {
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            mode: self.mode.value(),
            genre: self.genre.value(),
            corruption: self.corruption.value(),
            fidelity: self.fidelity.value(),
            rate: self.rate.value(),
            temperature: self.temperature.value(),
            context_before: self.context_before.value().max(0) as u32,
            delay: self.delay.value().max(1) as u32,
            seed: self.seed.value().max(0) as u64,
            refine: self.refine.value(),
        }
    }
}

impl Snapshot {
    /// Later segments the model can see: segment `s` plays during `s + delay`, segment `s + k` is
    /// captured when window `s + k + 1` starts, and the worker needs about one segment to refine.
    pub fn context_after(&self) -> usize {
        self.delay.saturating_sub(2) as usize
    }
}
