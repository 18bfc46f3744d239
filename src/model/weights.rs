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
    source: Source,
    path: PathBuf,
}

/// Where the tensors are.
enum Source {
    /// Already made from a buffer in memory (a model built into the binary).
    Loaded(HashMap<String, Tensor>),
    /// A file, read one tensor at a time as the model asks for it: the file's bytes and the
    /// model's tensors are never in memory together (the released model is 375 MB of each).
    File {
        file: Mutex<std::fs::File>,
        index: HashMap<String, Entry>,
    },
}

/// One tensor of a safetensors file: its type, shape and bytes in the file.
struct Entry {
    dtype: DType,
    shape: Vec<usize>,
    start: u64,
    len: usize,
}

/// The largest header we read (safetensors' own limit).
const MAX_HEADER: u64 = 100_000_000;

impl CheckedTensors {
    pub fn load(path: &Path) -> Result<Self> {
        if !path.is_file() {
            return Err(ModelError::MissingFile {
                path: path.to_path_buf(),
            });
        }
        let bad = |message: String| ModelError::Weights {
            path: path.to_path_buf(),
            message: format!("cannot read safetensors: {message}"),
        };
        let mut file = std::fs::File::open(path).map_err(|e| bad(e.to_string()))?;
        let size = file.metadata().map_err(|e| bad(e.to_string()))?.len();
        let index = read_index(&mut file, size).map_err(bad)?;
        Ok(CheckedTensors {
            source: Source::File {
                file: Mutex::new(file),
                index,
            },
            path: path.to_path_buf(),
        })
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
            source: Source::Loaded(tensors),
            path: label.to_path_buf(),
        })
    }

    /// The name under which `name` is stored (itself or its alias).
    fn stored(&self, name: &str) -> Option<String> {
        let has = |n: &str| match &self.source {
            Source::Loaded(t) => t.contains_key(n),
            Source::File { index, .. } => index.contains_key(n),
        };
        if has(name) {
            Some(name.to_string())
        } else {
            bias_alias(name).filter(|a| has(a))
        }
    }

    fn shape_of(&self, stored: &str) -> Vec<usize> {
        match &self.source {
            Source::Loaded(t) => t[stored].dims().to_vec(),
            Source::File { index, .. } => index[stored].shape.clone(),
        }
    }

    /// The tensor stored as `stored`, read from the file if it is one.
    fn fetch(&self, stored: &str) -> candle_core::Result<Tensor> {
        use std::io::{Read, Seek, SeekFrom};
        match &self.source {
            Source::Loaded(t) => Ok(t[stored].clone()),
            Source::File { file, index } => {
                let e = &index[stored];
                let mut bytes = vec![0u8; e.len];
                let mut f = file.lock().unwrap_or_else(|p| p.into_inner());
                f.seek(SeekFrom::Start(e.start))
                    .and_then(|_| f.read_exact(&mut bytes))
                    .map_err(|err| {
                        candle_core::Error::Msg(format!(
                            "{}: cannot read tensor `{stored}`: {err}",
                            self.path.display()
                        ))
                    })?;
                Tensor::from_raw_buffer(&bytes, e.dtype, &e.shape, &Device::Cpu)
            }
        }
    }

    fn missing(&self, name: &str, s: Option<&Shape>) -> candle_core::Error {
        candle_core::Error::Msg(match s {
            Some(s) => format!(
                "{}: tensor `{name}` (shape {:?}) is missing; expected {}",
                self.path.display(),
                s.dims(),
                super::EXPECTED_FORMAT
            ),
            None => format!("{}: tensor `{name}` is missing", self.path.display()),
        })
    }
}

/// The header of a safetensors file of `size` bytes: every tensor's type, shape and place,
/// checked against the file's size (so a cut file is an error here, not a short read).
fn read_index(
    file: &mut std::fs::File,
    size: u64,
) -> std::result::Result<HashMap<String, Entry>, String> {
    use std::io::Read;
    let mut n = [0u8; 8];
    file.read_exact(&mut n)
        .map_err(|_| "the file is shorter than a header".to_string())?;
    let n = u64::from_le_bytes(n);
    if n > MAX_HEADER || 8 + n > size {
        return Err(format!("header of {n} bytes in a file of {size}"));
    }
    let mut header = vec![0u8; n as usize];
    file.read_exact(&mut header).map_err(|e| e.to_string())?;
    // The safetensors crate's own header type: it checks that the tensors' bytes follow one
    // another and match their shapes and types.
    let meta: safetensors::tensor::Metadata =
        serde_json::from_slice(&header).map_err(|e| format!("header: {e}"))?;
    let data = 8 + n;
    if data + meta.data_len() as u64 != size {
        return Err(format!(
            "the header describes {} bytes of tensors, the file holds {}",
            meta.data_len(),
            size - data
        ));
    }
    meta.tensors()
        .into_iter()
        .map(|(name, info)| {
            let dtype = DType::try_from(info.dtype).map_err(|e| format!("tensor `{name}`: {e}"))?;
            let (start, end) = info.data_offsets;
            let entry = Entry {
                dtype,
                shape: info.shape.clone(),
                start: data + start as u64,
                len: end - start,
            };
            Ok((name, entry))
        })
        .collect()
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
        let stored = self
            .stored(name)
            .ok_or_else(|| self.missing(name, Some(&s)))?;
        let dims = self.shape_of(&stored);
        if dims != s.dims() {
            return Err(candle_core::Error::Msg(format!(
                "{}: tensor `{name}` has shape {:?} but the config expects {:?}",
                self.path.display(),
                dims,
                s.dims()
            )));
        }
        self.fetch(&stored)?.to_dtype(dtype)?.to_device(dev)
    }

    fn get_unchecked(&self, name: &str, dtype: DType, dev: &Device) -> candle_core::Result<Tensor> {
        let stored = self.stored(name).ok_or_else(|| self.missing(name, None))?;
        self.fetch(&stored)?.to_dtype(dtype)?.to_device(dev)
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.stored(name).is_some()
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{BertConfig, Config, ImprovNetModel};
    use candle_nn::var_builder::SimpleBackend;

    #[test]
    fn a_file_read_a_tensor_at_a_time_gives_the_buffers_tensors_and_a_cut_file_is_an_error() {
        let cfg = Config::from_parts(
            BertConfig::sized(32, 1, 2, 64, 64),
            BertConfig::sized(32, 1, 2, 64, 64),
        );
        let dir = tempfile::tempdir().unwrap();
        let model = ImprovNetModel::random(&cfg, 3, &Device::Cpu).unwrap();
        model.save(dir.path()).unwrap();
        let st = dir.path().join("model.safetensors");
        let bytes = std::fs::read(&st).unwrap();
        let (file, buffer) = (
            CheckedTensors::load(&st).unwrap(),
            CheckedTensors::from_buffer(&bytes, &st).unwrap(),
        );
        let Source::Loaded(all) = &buffer.source else {
            unreachable!()
        };
        assert!(all.len() > 20);
        for name in all.keys() {
            let a = file.get_unchecked(name, DType::F32, &Device::Cpu).unwrap();
            let b = buffer
                .get_unchecked(name, DType::F32, &Device::Cpu)
                .unwrap();
            assert_eq!(a.dims(), b.dims(), "{name}");
            let (a, b) = (
                a.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
                b.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            );
            assert_eq!(a, b, "{name}");
        }
        // The whole model loads from the file.
        let again = ImprovNetModel::load(dir.path(), &Device::Cpu).unwrap();
        assert_eq!(again.num_parameters(), model.num_parameters());

        // Cut short: an error naming the file, before any tensor is read.
        let cut = dir.path().join("cut.safetensors");
        std::fs::write(&cut, &bytes[..bytes.len() - 10]).unwrap();
        let err = CheckedTensors::load(&cut).err().unwrap().to_string();
        assert!(
            err.contains("cut.safetensors") && err.contains("cannot read safetensors"),
            "{err}"
        );
        std::fs::write(&cut, b"not a model").unwrap();
        let err = CheckedTensors::load(&cut).err().unwrap().to_string();
        assert!(err.contains("cannot read safetensors"), "{err}");
    }
}
