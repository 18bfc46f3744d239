//! Training checkpoints: a folder that is at once a loadable HF model (config.json +
//! model.safetensors with the original's names) and a resumable state (optimizer.safetensors
//! with the AdamW moments, trainer_state.json with the step, the seed and the settings).
//!
//! Written atomically: into `NAME.tmp`, then swapped in by renames, so an interruption at any
//! moment leaves either the previous checkpoint or the new one (`NAME.old` is taken when the
//! swap itself was cut between its two renames).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use candle_nn::VarMap;
use serde::{de::DeserializeOwned, Serialize};

use super::error::{io, TrainError};
use super::optim::AdamW;

pub const OPTIMIZER_FILE: &str = "optimizer.safetensors";
pub const STATE_FILE: &str = "trainer_state.json";
pub const WEIGHTS_FILE: &str = "model.safetensors";

fn with_suffix(dir: &Path, suffix: &str) -> PathBuf {
    let mut s = dir.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// Writes a checkpoint to `dir`: `write_model` fills the folder with the model files, then the
/// optimizer moments and `state` are added, then the folder replaces `dir`.
pub fn save<S: Serialize>(
    dir: &Path,
    write_model: impl FnOnce(&Path) -> Result<(), TrainError>,
    optimizer: &AdamW,
    state: &S,
) -> Result<(), TrainError> {
    let tmp = with_suffix(dir, ".tmp");
    let old = with_suffix(dir, ".old");
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(io(&tmp))?;
    }
    std::fs::create_dir_all(&tmp).map_err(io(&tmp))?;
    write_model(&tmp)?;
    let opt_path = tmp.join(OPTIMIZER_FILE);
    let moments: HashMap<String, Tensor> = optimizer.state();
    candle_core::safetensors::save(&moments, &opt_path).map_err(|e| TrainError::Checkpoint {
        path: opt_path.clone(),
        message: format!("cannot write: {e}"),
    })?;
    let json = serde_json::to_string_pretty(state).map_err(|e| TrainError::Checkpoint {
        path: tmp.join(STATE_FILE),
        message: e.to_string(),
    })?;
    let state_path = tmp.join(STATE_FILE);
    std::fs::write(&state_path, json).map_err(io(&state_path))?;
    if dir.exists() {
        if old.exists() {
            std::fs::remove_dir_all(&old).map_err(io(&old))?;
        }
        std::fs::rename(dir, &old).map_err(io(dir))?;
    }
    std::fs::rename(&tmp, dir).map_err(io(dir))?;
    if old.exists() {
        std::fs::remove_dir_all(&old).map_err(io(&old))?;
    }
    Ok(())
}

/// The checkpoint folder to resume from: `dir` itself when it holds a state file, else
/// `dir/checkpoint`, else the `.old` copy a cut swap left behind.
pub fn locate(dir: &Path) -> Result<PathBuf, TrainError> {
    let candidates = [
        dir.to_path_buf(),
        dir.join("checkpoint"),
        with_suffix(dir, ".old"),
        with_suffix(&dir.join("checkpoint"), ".old"),
    ];
    candidates
        .into_iter()
        .find(|c| c.join(STATE_FILE).is_file())
        .ok_or_else(|| TrainError::Checkpoint {
            path: dir.to_path_buf(),
            message: format!(
                "no checkpoint here ({STATE_FILE} not found in it or in its checkpoint/ folder)"
            ),
        })
}

/// Reads `trainer_state.json`.
pub fn read_state<S: DeserializeOwned>(dir: &Path) -> Result<S, TrainError> {
    let path = dir.join(STATE_FILE);
    let text = std::fs::read_to_string(&path).map_err(io(&path))?;
    serde_json::from_str(&text).map_err(|e| TrainError::Checkpoint {
        path,
        message: format!("invalid JSON: {e}"),
    })
}

fn read_safetensors(path: &Path) -> Result<HashMap<String, Tensor>, TrainError> {
    if !path.is_file() {
        return Err(TrainError::Checkpoint {
            path: path.to_path_buf(),
            message: "not found".into(),
        });
    }
    candle_core::safetensors::load(path, &Device::Cpu).map_err(|e| TrainError::Checkpoint {
        path: path.to_path_buf(),
        message: format!("cannot read safetensors: {e}"),
    })
}

/// Whether a missing tensor may keep its initial value: the encoder's pooler, which no loss
/// reaches, and which checkpoints written before it was added to training models lack.
pub fn optional(name: &str) -> bool {
    name.starts_with("encoder.pooler.")
}

/// Sets every variable of `vars` from `dir/model.safetensors` (HF names; the LM-head bias under
/// either of its names). Every variable must be found with its shape, except [`optional`] ones.
pub fn load_weights(vars: &VarMap, dir: &Path) -> Result<(), TrainError> {
    let path = dir.join(WEIGHTS_FILE);
    let tensors = read_safetensors(&path)?;
    let data = vars.data().lock().expect("var map lock");
    for (name, var) in data.iter() {
        let found = tensors
            .get(name)
            .or_else(|| crate::model::weights::bias_alias(name).and_then(|a| tensors.get(&a)));
        let t = match found {
            Some(t) => t,
            None if optional(name) => continue,
            None => {
                return Err(TrainError::Checkpoint {
                    path: path.clone(),
                    message: format!("tensor `{name}` is missing"),
                })
            }
        };
        if t.shape() != var.shape() {
            return Err(TrainError::Checkpoint {
                path: path.clone(),
                message: format!(
                    "tensor `{name}` has shape {:?}, the model expects {:?}",
                    t.dims(),
                    var.dims()
                ),
            });
        }
        let t = t
            .to_dtype(candle_core::DType::F32)?
            .to_device(var.device())?;
        var.set(&t)?;
    }
    Ok(())
}

/// Restores the AdamW moments from `dir/optimizer.safetensors`.
pub fn load_optimizer(opt: &mut AdamW, dir: &Path, steps: u64) -> Result<(), TrainError> {
    let path = dir.join(OPTIMIZER_FILE);
    let map = read_safetensors(&path)?;
    opt.load_state(&map, steps, optional)
        .map_err(|e| TrainError::Checkpoint {
            path,
            message: e.to_string(),
        })
}
