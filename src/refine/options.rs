//! What a refinement does: the pass schedule, sampling, context sizes and which segments stay.
//!
//! Defaults are the original's recipes (spec §10.1, §11, §12), so a run without a config file
//! behaves like the original's `configs/*.yaml`; `configs/` holds the same values as files.

use std::path::PathBuf;

use crate::corrupt::{Behaviour, Corruption, CorruptionChoice};
use crate::tokens::{Genre, DECODER_MAX_LEN};

use super::template::Fidelity;
use super::RefineError;

/// Context segments shown on each side of the refined one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Context {
    pub before: usize,
    pub after: usize,
}

/// Most candidates one segment may draw (each costs a full decode).
pub const MAX_CANDIDATES: usize = 64;
/// Candidates per infilled segment by default.
pub const INFILL_CANDIDATES: usize = 4;

/// One pass of the sweep: each eligible segment is refined with probability `rate`, corrupted
/// by `corruption` first.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PassSpec {
    pub rate: f64,
    pub corruption: CorruptionChoice,
}

impl PassSpec {
    pub fn new(rate: f64, corruption: impl Into<CorruptionChoice>) -> Self {
        Self {
            rate,
            corruption: corruption.into(),
        }
    }
}

/// How a `random` pass picks its corruption. The original picks per segment now, but picked once
/// per pass in the code behind the paper's experiments (spec §6.1, §16.5).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RandomMode {
    #[default]
    PerSegment,
    PerPass,
}

impl std::str::FromStr for RandomMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "per_segment" | "segment" => Ok(RandomMode::PerSegment),
            "per_pass" | "pass" => Ok(RandomMode::PerPass),
            _ => Err(format!(
                "unknown random mode `{s}`; expected per_segment or per_pass"
            )),
        }
    }
}

/// Harmonization's differences from style transfer (spec §11).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HarmonyOptions {
    /// Pass 1 decodes under the chord constraint and without after-context.
    pub use_constraints: bool,
    /// Really apply each pass's corruption; otherwise the segment is shown verbatim under the
    /// pass's label (the melody presented as if it were the skyline of a full texture).
    pub reharmonize: bool,
}

impl Default for HarmonyOptions {
    fn default() -> Self {
        Self {
            use_constraints: true,
            reharmonize: false,
        }
    }
}

/// Everything the engine needs to refine a piece.
#[derive(Clone, Debug, PartialEq)]
pub struct RefineOptions {
    /// The genre token written into every corrupted block: the style to move towards.
    pub target: Genre,
    pub passes: Vec<PassSpec>,
    pub random_mode: RandomMode,
    pub temperature: f32,
    /// Top-k sampling (0 = off). The original always uses 50.
    pub top_k: usize,
    /// Context segments shown before and after the refined one.
    pub context_before: usize,
    pub context_after: usize,
    /// Eligible segments (non-empty, not protected) before this index are never refined.
    pub t_segment_start: usize,
    /// Refine only eligible segments before this index (`None`: to the end). As in the
    /// original, a stop at or before `t_segment_start` means "to the end".
    pub t_segment_stop: Option<usize>,
    /// Keep the last eligible segment as it is, so the piece ends as it was written.
    pub end_original: bool,
    /// Windows (5 s, from 0) never refined: structure preservation (see `structure`).
    pub protected_windows: Vec<u32>,
    /// Decoder tokens per segment, start token included (at most 512). A trained model stops on
    /// `<E>` long before; a cap keeps an untrained one (tests, benchmarks) from running on.
    pub max_tokens_per_segment: usize,
    /// Corruptions repaired (default) or with the original's edge-case bugs.
    pub behaviour: Behaviour,
    pub seed: u64,
    /// Strict: decode under the corruption's template, keeping what it keeps and the tune
    /// ([`super::template`]); free: the original's unconstrained regeneration.
    pub fidelity: Fidelity,
    /// The musical sanity rules at decode time (no restrike, range, velocity, note count).
    pub sanity: bool,
    /// Samples drawn per regenerated segment; the one whose pitch classes fit the neighbouring
    /// segments best is kept ([`super::fit`]; 1: the original's single sample).
    pub candidates: usize,
    /// Verify guessed tokens several a decoder forward (speculative decoding, see
    /// [`crate::model::generate`]). The output is the same either way; only the time differs.
    pub speculative: bool,
}

/// The default 10-pass recipe of `config_style_transfer.yaml` (spec §10.1).
pub fn style_transfer_passes() -> Vec<PassSpec> {
    use Corruption::*;
    vec![
        PassSpec::new(1.0, Skyline),
        PassSpec::new(1.0, Skyline),
        PassSpec::new(0.5, PitchVelocityMask),
        PassSpec::new(0.5, IncorrectTransposition),
        PassSpec::new(0.5, PermutePitches),
        PassSpec::new(0.5, NoteModification),
        PassSpec::new(1.0, OnsetDurationMask),
        PassSpec::new(0.5, Fragmentation),
        PassSpec::new(0.25, WholeMask),
        PassSpec::new(0.25, CorruptionChoice::Random),
    ]
}

impl Default for RefineOptions {
    /// `config_style_transfer.yaml`: classical to jazz, 10 passes, context 5/5, the first two
    /// segments and the last kept.
    fn default() -> Self {
        Self {
            target: Genre::Jazz,
            passes: style_transfer_passes(),
            random_mode: RandomMode::PerSegment,
            temperature: 1.0,
            top_k: 50,
            context_before: 5,
            context_after: 5,
            t_segment_start: 2,
            t_segment_stop: None,
            end_original: true,
            protected_windows: Vec::new(),
            max_tokens_per_segment: DECODER_MAX_LEN,
            behaviour: Behaviour::Fixed,
            seed: 0,
            candidates: 1,
            fidelity: Fidelity::Strict,
            sanity: true,
            speculative: true,
        }
    }
}

impl RefineOptions {
    /// Checks the values a config or a flag could get wrong, before any model time is spent.
    pub fn validate(&self) -> Result<(), RefineError> {
        if self.passes.is_empty() {
            return Err(RefineError::Options("no passes to run".into()));
        }
        for (i, p) in self.passes.iter().enumerate() {
            if !(0.0..=1.0).contains(&p.rate) {
                return Err(RefineError::Options(format!(
                    "pass {}: corruption rate {} is outside 0..1",
                    i + 1,
                    p.rate
                )));
            }
        }
        if !(self.temperature.is_finite() && self.temperature > 0.0) {
            return Err(RefineError::Options(format!(
                "temperature {} must be a positive number",
                self.temperature
            )));
        }
        if !(1..=MAX_CANDIDATES).contains(&self.candidates) {
            return Err(RefineError::Options(format!(
                "{} candidates per segment: use 1 to {MAX_CANDIDATES}",
                self.candidates
            )));
        }
        if self.max_tokens_per_segment < 2 {
            return Err(RefineError::Options(format!(
                "max tokens per segment {} leaves no room for a note",
                self.max_tokens_per_segment
            )));
        }
        Ok(())
    }
}

/// A whole recipe: the engine's options plus what the tasks and the CLI read from a config.
#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    pub refine: RefineOptions,
    pub harmony: HarmonyOptions,
    /// Share of `<T>` boundaries whose novelty segments are kept (spec §13.2); 0 = off.
    pub novel_peaks_pct: f64,
    pub write_intermediate_passes: bool,
    /// Segments generated by continuation and (from a config) infilling.
    pub context_infilling: usize,
    /// Infilling: write only the generated gap, not the whole piece.
    pub save_infilling_only: bool,
    pub convert_from: Option<Genre>,
    /// Input files named by a config (the CLI's arguments take precedence).
    pub midi_file_path: Option<PathBuf>,
    pub wav_file_path: Option<PathBuf>,
}

impl Settings {
    /// `config_style_transfer.yaml` (spec §10.1).
    pub fn style_transfer() -> Self {
        Self {
            refine: RefineOptions::default(),
            harmony: HarmonyOptions::default(),
            novel_peaks_pct: 0.05,
            write_intermediate_passes: true,
            context_infilling: 0,
            save_infilling_only: false,
            convert_from: Some(Genre::Classical),
            midi_file_path: None,
            wav_file_path: None,
        }
    }

    /// `config_harmony.yaml` (spec §11): 5 × skyline at rate 1, context 5/2, every segment.
    pub fn harmony() -> Self {
        let mut s = Self::style_transfer();
        s.refine.target = Genre::Classical;
        s.refine.passes = vec![PassSpec::new(1.0, Corruption::Skyline); 5];
        s.refine.context_before = 5;
        s.refine.context_after = 2;
        s.refine.t_segment_start = 0;
        s.refine.end_original = false;
        s.novel_peaks_pct = 0.0;
        s
    }

    /// `config_prompt_generation.yaml` (spec §12): one whole-mask pass, 5 segments of prompt
    /// as context, 4 segments (20 s) generated.
    pub fn continuation() -> Self {
        let mut s = Self::style_transfer();
        s.refine.target = Genre::Classical;
        s.refine.passes = vec![PassSpec::new(1.0, Corruption::WholeMask)];
        s.refine.temperature = 0.99;
        s.refine.context_before = 5;
        s.refine.context_after = 0;
        s.refine.t_segment_start = 4;
        s.refine.end_original = false;
        s.novel_peaks_pct = 0.0;
        s.write_intermediate_passes = false;
        s.context_infilling = 4;
        s
    }

    /// `config_infilling.yaml` (spec §12): one whole-mask pass over 4 segments from segment 4,
    /// context 4/4.
    pub fn infilling() -> Self {
        let mut s = Self::continuation();
        s.refine.temperature = 0.97;
        s.refine.context_before = 4;
        s.refine.context_after = 4;
        // Best of 4 by the neighbours' harmony: on held-out pieces this halves the distance to
        // the original's pitch classes that one sample leaves (see the model card).
        s.refine.candidates = INFILL_CANDIDATES;
        s
    }
}
