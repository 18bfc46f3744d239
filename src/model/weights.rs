//! Weight sources for the `VarBuilder`: a checked map over a safetensors file (clear errors for
//! missing tensors and wrong shapes, the LM-head bias alias) and a recorder that remembers every
//! tensor a model takes, for saving and counting parameters.

use candle_core::{DType, Device, Shape, Tensor};
use candle_nn::{Init, VarBuilder};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::{ModelError, Result};

/// In HF 4.x `cls.predictions.bias` and `cls.predictions.decoder.bias` are one tensor; 5.x saves
/// both. We load one name and accept either.
pub(crate) fn bias_alias(name: &str) -> Option<String> {
    if let Some(p) = name.strip_suffix("cls.predictions.bias") {
        Some(format!("{p}cls.predictions.decoder.bias"))
    } else {
        name.strip_suffix("cls.predictions.decoder.bias")
            .map(|p| format!("{p}cls.predictions.bias"))
    }
}

/// Tensors of one safetensors file, checked against the shapes the config asks for.
pub struct CheckedTensors {
    tensors: HashMap<String, Tensor>,
    path: PathBuf,
}

impl CheckedTensors {
    pub fn load(path: &Path) -> Result<Self> {
        if !path.is_file() {
            return Err(ModelError::MissingFile {
                path: path.to_path_buf(),
            });
        }
        // What candle's `safetensors::load` does, with the error worded as for a bad buffer.
        let bytes = std::fs::read(path).map_err(|e| ModelError::Weights {
            path: path.to_path_buf(),
            message: format!("cannot read safetensors: {e}"),
        })?;
        Self::from_buffer(&bytes, path)
    }

    /// Tensors from a safetensors file already in memory (a model built into the binary);
    /// `label` names it in errors.
    pub fn from_buffer(bytes: &[u8], label: &Path) -> Result<Self> {
        let tensors = candle_core::safetensors::load_buffer(bytes, &Device::Cpu).map_err(|e| {
            ModelError::Weights {
                path: label.to_path_buf(),
                message: format!("cannot read safetensors: {e}"),
            }
        })?;
        Ok(CheckedTensors {
            tensors,
            path: label.to_path_buf(),
        })
    }

    fn lookup(&self, name: &str) -> Option<&Tensor> {
        self.tensors
            .get(name)
            .or_else(|| bias_alias(name).and_then(|a| self.tensors.get(&a)))
    }
}

impl candle_nn::var_builder::SimpleBackend for CheckedTensors {
    fn get(
        &self,
        s: Shape,
        name: &str,
        _h: Init,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        let t = self.lookup(name).ok_or_else(|| {
            candle_core::Error::Msg(format!(
                "{}: tensor `{name}` (shape {:?}) is missing; expected {}",
                self.path.display(),
                s.dims(),
                super::EXPECTED_FORMAT
            ))
        })?;
        if t.shape() != &s {
            return Err(candle_core::Error::Msg(format!(
                "{}: tensor `{name}` has shape {:?} but the config expects {:?}",
                self.path.display(),
                t.dims(),
                s.dims()
            )));
        }
        t.to_dtype(dtype)?.to_device(dev)
    }

    fn get_unchecked(&self, name: &str, dtype: DType, dev: &Device) -> candle_core::Result<Tensor> {
        let t = self.lookup(name).ok_or_else(|| {
            candle_core::Error::Msg(format!(
                "{}: tensor `{name}` is missing",
                self.path.display()
            ))
        })?;
        t.to_dtype(dtype)?.to_device(dev)
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.lookup(name).is_some()
    }
}

/// Shared list of (name, tensor) in the order a model took them.
pub type Recorded = Arc<Mutex<Vec<(String, Tensor)>>>;

/// Wraps any backend and records every tensor handed out (names are full paths).
pub struct Recorder<'a> {
    inner: Box<dyn candle_nn::var_builder::SimpleBackend + 'a>,
    log: Recorded,
}

impl candle_nn::var_builder::SimpleBackend for Recorder<'_> {
    fn get(
        &self,
        s: Shape,
        name: &str,
        h: Init,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        let t = self.inner.get(s, name, h, dtype, dev)?;
        self.log.lock().unwrap().push((name.to_string(), t.clone()));
        Ok(t)
    }
    fn get_unchecked(&self, name: &str, dtype: DType, dev: &Device) -> candle_core::Result<Tensor> {
        let t = self.inner.get_unchecked(name, dtype, dev)?;
        self.log.lock().unwrap().push((name.to_string(), t.clone()));
        Ok(t)
    }
    fn contains_tensor(&self, name: &str) -> bool {
        self.inner.contains_tensor(name)
    }
}

/// A `VarBuilder` over `inner` that records what it hands out.
pub fn recording<'a>(
    inner: Box<dyn candle_nn::var_builder::SimpleBackend + 'a>,
    dtype: DType,
    dev: &Device,
) -> (VarBuilder<'a>, Recorded) {
    let log: Recorded = Arc::new(Mutex::new(Vec::new()));
    let vb = VarBuilder::from_backend(
        Box::new(Recorder {
            inner,
            log: log.clone(),
        }),
        dtype,
        dev.clone(),
    );
    (vb, log)
}

/// Zero tensors of the requested shapes (parameter counting, tests).
pub struct Zeros;

impl candle_nn::var_builder::SimpleBackend for Zeros {
    fn get(
        &self,
        s: Shape,
        _name: &str,
        _h: Init,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        Tensor::zeros(s, dtype, dev)
    }
    fn get_unchecked(&self, name: &str, _: DType, _: &Device) -> candle_core::Result<Tensor> {
        candle_core::bail!("Zeros backend cannot infer the shape of `{name}`")
    }
    fn contains_tensor(&self, _name: &str) -> bool {
        true
    }
}

/// Turns a candle error raised while building a model into a `ModelError` naming the file.
pub(crate) fn weights_error(path: &Path, e: candle_core::Error) -> ModelError {
    // Our backend's messages already name the path; strip candle's wrapping if any.
    let mut msg = e.to_string();
    let prefix = format!("{}: ", path.display());
    if let Some(stripped) = msg.strip_prefix(&prefix) {
        msg = stripped.to_string();
    }
    ModelError::Weights {
        path: path.to_path_buf(),
        message: msg,
    }
}

/// Writes recorded tensors to `path` as f32 safetensors (atomic: temp file + rename).
pub(crate) fn save_tensors(tensors: &[(String, Tensor)], path: &Path) -> Result<()> {
    let mut map: HashMap<String, Tensor> = HashMap::new();
    for (name, t) in tensors {
        let t = t
            .to_dtype(DType::F32)?
            .to_device(&Device::Cpu)?
            .contiguous()?;
        if let Some(alias) = bias_alias(name) {
            // Write both LM-head bias names (HF 5.x expects both; 4.x loads either).
            map.insert(alias, t.clone());
        }
        map.insert(name.clone(), t);
    }
    let tmp = path.with_extension("safetensors.tmp");
    candle_core::safetensors::save(&map, &tmp).map_err(|e| ModelError::Weights {
        path: tmp.clone(),
        message: format!("cannot write: {e}"),
    })?;
    std::fs::rename(&tmp, path).map_err(|e| ModelError::Io {
        path: path.to_path_buf(),
        error: e,
    })
}

pub(crate) fn write_atomic(path: &Path, text: &str) -> Result<()> {
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, text)
        .and_then(|_| std::fs::rename(&tmp, path))
        .map_err(|e| ModelError::Io {
            path: path.to_path_buf(),
            error: e,
        })
}
