//! YAML recipes with the original's keys (`configs/config_*.yaml`), so an original config runs
//! unchanged: its `generation:` block sets the refinement; `model`, `classifier_model`,
//! `training` and `raw_data` are recognised and left to other commands.
//!
//! Unknown keys are warnings (a typo should not cost a run, but should be seen); a value of
//! the wrong type or outside its meaning is an error naming the key and its line.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::corrupt::{Behaviour, CorruptionChoice};
use crate::tokens::Genre;

use super::options::{PassSpec, RandomMode, Settings};
use super::template::Fidelity;
use super::RefineError;

// Values are checked inside the deserializer's visitors, so a bad one is reported at its own
// key and line (a `try_from` conversion would be reported at the enclosing block).

/// A name parsed with `FromStr` (genre, corruption, ...), checked while parsing.
macro_rules! parsed_name {
    ($name:ident, $inner:ty, $what:literal, $parse:expr) => {
        #[derive(Clone, Copy, Debug)]
        struct $name($inner);

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl serde::de::Visitor<'_> for V {
                    type Value = $name;
                    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                        f.write_str($what)
                    }
                    fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<$name, E> {
                        let parse: fn(&str) -> Result<$inner, String> = $parse;
                        parse(s).map($name).map_err(E::custom)
                    }
                }
                d.deserialize_str(V)
            }
        }
    };
}

parsed_name!(GenreName, Genre, "a genre name", |s| s
    .parse()
    .map_err(|e: crate::tokens::UnknownName| e.to_string()));
parsed_name!(CorruptionName, CorruptionChoice, "a corruption name", |s| s
    .parse()
    .map_err(|e: crate::tokens::UnknownName| e.to_string()));
parsed_name!(FidelityName, Fidelity, "strict or free", |s| s.parse());
parsed_name!(RandomModeName, RandomMode, "per_segment or per_pass", |s| s
    .parse());
parsed_name!(BehaviourName, Behaviour, "fixed or faithful", |s| match s {
    "fixed" => Ok(Behaviour::Fixed),
    "faithful" => Ok(Behaviour::Faithful),
    _ => Err(format!(
        "unknown corruption behaviour `{s}`; expected fixed or faithful"
    )),
});

/// A number checked against a rule, at its own key and line.
macro_rules! checked_number {
    ($name:ident, $what:literal, $ok:expr, $why:literal) => {
        #[derive(Clone, Copy, Debug)]
        struct $name(f64);

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl V {
                    fn check<E: serde::de::Error>(x: f64) -> Result<$name, E> {
                        let ok: fn(f64) -> bool = $ok;
                        if ok(x) {
                            Ok($name(x))
                        } else {
                            Err(E::custom(format!("{x} {}", $why)))
                        }
                    }
                }
                impl serde::de::Visitor<'_> for V {
                    type Value = $name;
                    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                        f.write_str($what)
                    }
                    fn visit_f64<E: serde::de::Error>(self, x: f64) -> Result<$name, E> {
                        Self::check(x)
                    }
                    fn visit_i64<E: serde::de::Error>(self, x: i64) -> Result<$name, E> {
                        Self::check(x as f64)
                    }
                    fn visit_u64<E: serde::de::Error>(self, x: u64) -> Result<$name, E> {
                        Self::check(x as f64)
                    }
                }
                d.deserialize_f64(V)
            }
        }
    };
}

checked_number!(
    Rate,
    "a number between 0 and 1",
    |x| (0.0..=1.0).contains(&x),
    "is not between 0 and 1"
);
checked_number!(
    Positive,
    "a positive number",
    |x| x.is_finite() && x > 0.0,
    "must be a positive number"
);

#[derive(Debug, Deserialize)]
struct PassEntry {
    corruption_rate: Rate,
    corruption_type: CorruptionName,
}

/// The `generation:` block: the original's keys, then ours (`top_k`, `seed`,
/// `random_corruption`, `max_tokens_per_segment`, `corruption_behaviour`, `candidates`,
/// `fidelity`, `sanity`).
#[derive(Debug, Default, Deserialize)]
struct Generation {
    convert_from: Option<GenreName>,
    convert_to: Option<GenreName>,
    midi_file_path: Option<String>,
    wav_file_path: Option<String>,
    novel_peaks_pct: Option<Rate>,
    temperature: Option<Positive>,
    context_before: Option<usize>,
    context_after: Option<usize>,
    t_segment_start: Option<usize>,
    t_segment_stop: Option<i64>,
    end_original: Option<bool>,
    write_intermediate_passes: Option<bool>,
    use_constraints: Option<bool>,
    reharmonize: Option<bool>,
    context_infilling: Option<usize>,
    save_infilling_only: Option<bool>,
    passes: Option<BTreeMap<String, PassEntry>>,
    top_k: Option<usize>,
    seed: Option<u64>,
    random_corruption: Option<RandomModeName>,
    max_tokens_per_segment: Option<usize>,
    corruption_behaviour: Option<BehaviourName>,
    candidates: Option<usize>,
    fidelity: Option<FidelityName>,
    sanity: Option<bool>,
}

/// A whole config file. The other blocks belong to training and the model; they are accepted
/// as they are.
#[derive(Debug, Deserialize)]
struct ConfigFile {
    #[allow(dead_code)]
    model: Option<serde_yaml_ng::Value>,
    #[allow(dead_code)]
    classifier_model: Option<serde_yaml_ng::Value>,
    #[allow(dead_code)]
    training: Option<serde_yaml_ng::Value>,
    #[allow(dead_code)]
    raw_data: Option<serde_yaml_ng::Value>,
    generation: Option<Generation>,
}

/// Settings read from a config, and the warnings (unknown keys) to show.
#[derive(Clone, Debug)]
pub struct Loaded {
    pub settings: Settings,
    pub warnings: Vec<String>,
}

/// Reads a config file over `base` (the task's defaults): keys present replace base values.
pub fn load_config(path: &Path, base: Settings) -> Result<Loaded, RefineError> {
    let text = std::fs::read_to_string(path).map_err(|e| RefineError::Config {
        path: path.to_path_buf(),
        message: format!("cannot read config: {e}"),
    })?;
    parse_config(&text, path, base)
}

/// [`load_config`] on text already read; `path` names it in messages.
pub fn parse_config(text: &str, path: &Path, base: Settings) -> Result<Loaded, RefineError> {
    let config_err = |message: String| RefineError::Config {
        path: path.to_path_buf(),
        message,
    };
    let mut warnings = Vec::new();
    let file: ConfigFile = if text.trim().is_empty() {
        ConfigFile {
            model: None,
            classifier_model: None,
            training: None,
            raw_data: None,
            generation: None,
        }
    } else {
        let de = serde_yaml_ng::Deserializer::from_str(text);
        serde_ignored::deserialize(de, |key| {
            let key = key.to_string().replace(".?", "").replace("?.", "");
            warnings.push(format!("{}: unknown key `{key}` ignored", path.display()));
        })
        .map_err(|e| config_err(e.to_string()))?
    };
    let mut s = base;
    let Some(g) = file.generation else {
        warnings.push(format!(
            "{}: no `generation:` block; the defaults are used",
            path.display()
        ));
        return Ok(Loaded {
            settings: s,
            warnings,
        });
    };
    if let Some(v) = g.convert_from {
        s.convert_from = Some(v.0);
    }
    if let Some(v) = g.convert_to {
        s.refine.target = v.0;
    }
    let file_path = |p: Option<String>| p.filter(|p| !p.trim().is_empty()).map(PathBuf::from);
    if let Some(p) = file_path(g.midi_file_path) {
        s.midi_file_path = Some(p);
    }
    if let Some(p) = file_path(g.wav_file_path) {
        s.wav_file_path = Some(p);
    }
    if let Some(v) = g.novel_peaks_pct {
        s.novel_peaks_pct = v.0;
    }
    if let Some(v) = g.temperature {
        s.refine.temperature = v.0 as f32;
    }
    if let Some(v) = g.context_before {
        s.refine.context_before = v;
    }
    if let Some(v) = g.context_after {
        s.refine.context_after = v;
    }
    if let Some(v) = g.t_segment_start {
        s.refine.t_segment_start = v;
    }
    if let Some(v) = g.t_segment_stop {
        // -1 (or any stop not after the start) means "to the end", as in the original.
        s.refine.t_segment_stop = usize::try_from(v).ok();
    }
    if let Some(v) = g.end_original {
        s.refine.end_original = v;
    }
    if let Some(v) = g.write_intermediate_passes {
        s.write_intermediate_passes = v;
    }
    if let Some(v) = g.use_constraints {
        s.harmony.use_constraints = v;
    }
    if let Some(v) = g.reharmonize {
        s.harmony.reharmonize = v;
    }
    if let Some(v) = g.context_infilling {
        s.context_infilling = v;
    }
    if let Some(v) = g.save_infilling_only {
        s.save_infilling_only = v;
    }
    if let Some(passes) = g.passes {
        s.refine.passes = ordered_passes(passes).map_err(config_err)?;
    }
    if let Some(v) = g.top_k {
        s.refine.top_k = v;
    }
    if let Some(v) = g.seed {
        s.refine.seed = v;
    }
    if let Some(v) = g.random_corruption {
        s.refine.random_mode = v.0;
    }
    if let Some(v) = g.candidates {
        s.refine.candidates = v;
    }
    if let Some(v) = g.fidelity {
        s.refine.fidelity = v.0;
    }
    if let Some(v) = g.sanity {
        s.refine.sanity = v;
    }
    if let Some(v) = g.max_tokens_per_segment {
        s.refine.max_tokens_per_segment = v;
    }
    if let Some(v) = g.corruption_behaviour {
        s.refine.behaviour = v.0;
    }
    s.refine
        .validate()
        .map_err(|e| config_err(format!("generation: {e}")))?;
    Ok(Loaded {
        settings: s,
        warnings,
    })
}

/// `pass_1 … pass_N` in number order (a map would sort `pass_10` before `pass_2`). The
/// original reads exactly these keys, so a gap or another name is an error.
fn ordered_passes(passes: BTreeMap<String, PassEntry>) -> Result<Vec<PassSpec>, String> {
    let mut numbered = Vec::with_capacity(passes.len());
    for (key, entry) in passes {
        let n: usize = key
            .strip_prefix("pass_")
            .and_then(|n| n.parse().ok())
            .filter(|&n| n >= 1)
            .ok_or_else(|| {
                format!("generation.passes: `{key}` is not a pass name (pass_1, pass_2, ...)")
            })?;
        numbered.push((
            n,
            PassSpec::new(entry.corruption_rate.0, entry.corruption_type.0),
        ));
    }
    numbered.sort_by_key(|(n, _)| *n);
    for (i, (n, _)) in numbered.iter().enumerate() {
        if *n != i + 1 {
            return Err(format!(
                "generation.passes: pass_{} is missing (passes run pass_1 to pass_N)",
                i + 1
            ));
        }
    }
    if numbered.is_empty() {
        return Err("generation.passes: no passes".into());
    }
    Ok(numbered.into_iter().map(|(_, p)| p).collect())
}
