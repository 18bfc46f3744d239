//! The genre classifier (spec §9): HF `BertForSequenceClassification`, 3 labels
//! (classical = 0, pop = 1, jazz = 2), pooled first token (tanh pooler), max 1024 positions.

use candle_core::{DType, Device, Module, Tensor};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::{Linear, VarBuilder};
use std::path::Path;

use super::bert::{linear, BertModel};
use super::config::BertConfig;
use super::weights::{self, CheckedTensors};
use super::{ModelError, Result};

pub const GENRES: [&str; 3] = ["classical", "pop", "jazz"];

pub struct GenreClassifier {
    pub config: BertConfig,
    pub bert: BertModel,
    pub classifier: Linear,
    device: Device,
    tensors: Vec<(String, Tensor)>,
}

impl GenreClassifier {
    /// The released classifier's shape: 12 layers, d 512, 8 heads, FFN 2048, 1024 positions.
    pub fn base_config() -> BertConfig {
        let mut c = BertConfig::sized(512, 12, 8, 2048, 1024);
        c.architectures = Some(vec!["BertForSequenceClassification".into()]);
        c.id2label = Some(
            GENRES
                .iter()
                .enumerate()
                .map(|(i, g)| (i.to_string(), g.to_string()))
                .collect(),
        );
        c
    }

    /// Builds the layers (`bert.*`, `classifier.*`) from a `VarBuilder`.
    pub fn layers(cfg: &BertConfig, vb: VarBuilder) -> candle_core::Result<(BertModel, Linear)> {
        let bert = BertModel::new(cfg, vb.pp("bert"), Some(true))?;
        let classifier = linear(cfg.hidden_size, 3, vb.pp("classifier"))?;
        Ok((bert, classifier))
    }

    pub fn from_backend<'a>(
        cfg: &BertConfig,
        backend: Box<dyn SimpleBackend + 'a>,
        device: &Device,
    ) -> candle_core::Result<Self> {
        let (vb, log) = weights::recording(backend, DType::F32, device);
        let (bert, classifier) = Self::layers(cfg, vb)?;
        let tensors = std::mem::take(&mut *log.lock().unwrap());
        Ok(Self {
            config: cfg.clone(),
            bert,
            classifier,
            device: device.clone(),
            tensors,
        })
    }

    /// Loads `dir/config.json` + `dir/model.safetensors`.
    pub fn load(dir: &Path, device: &Device) -> Result<Self> {
        let cfg_path = dir.join("config.json");
        if !cfg_path.is_file() {
            return Err(ModelError::MissingFile { path: cfg_path });
        }
        let text = std::fs::read_to_string(&cfg_path).map_err(|e| ModelError::Io {
            path: cfg_path.clone(),
            error: e,
        })?;
        let cfg: BertConfig = serde_json::from_str(&text).map_err(|e| ModelError::Json {
            path: cfg_path.clone(),
            message: e.to_string(),
        })?;
        cfg.validate("classifier")?;
        let st = dir.join("model.safetensors");
        let tensors = CheckedTensors::load(&st)?;
        Self::from_backend(&cfg, Box::new(tensors), device)
            .map_err(|e| weights::weights_error(&st, e))
    }

    pub fn config(&self) -> &BertConfig {
        &self.config
    }

    pub fn num_parameters(&self) -> usize {
        self.tensors.iter().map(|(_, t)| t.elem_count()).sum()
    }

    /// Logits `[B, 3]` for `ids` `[B, L]` with `mask` `[B, L]`.
    pub fn forward(&self, ids: &Tensor, mask: &Tensor) -> Result<Tensor> {
        let m = super::bert::padding_mask(mask)?;
        let h = self.bert.forward(ids, Some(&m), None, None)?;
        let pooled = self.bert.pool(&h)?;
        Ok(self.classifier.forward(&pooled)?)
    }

    /// [`forward`](Self::forward) for training: dropout (also on the pooled output, as HF)
    /// and differentiable kernels.
    pub fn forward_t(&self, ids: &Tensor, mask: &Tensor, train: &super::Train) -> Result<Tensor> {
        let m = super::bert::padding_mask(mask)?;
        let h = self.bert.forward(ids, Some(&m), None, Some(train))?;
        let pooled = self.bert.pool(&h)?;
        let pooled = train.dropout(&pooled, self.config.hidden_dropout_prob)?;
        Ok(self.classifier.forward(&pooled)?)
    }

    /// Softmax probabilities (classical, pop, jazz) for one unpadded window.
    pub fn predict_proba(&self, ids: &[u32]) -> Result<[f32; 3]> {
        let max = self.config.max_position_embeddings;
        let ids = &ids[..ids.len().min(max)];
        if ids.is_empty() {
            return Err(ModelError::Input("empty classifier input".into()));
        }
        let t = Tensor::new(ids, &self.device)?.unsqueeze(0)?;
        let logits = self.forward(&t, &t.ones_like()?)?;
        let p = candle_nn::ops::softmax_last_dim(&logits)?
            .squeeze(0)?
            .to_vec1::<f32>()?;
        Ok([p[0], p[1], p[2]])
    }

    /// Writes `config.json` and `model.safetensors` in the HF layout.
    pub fn save(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|e| ModelError::Io {
            path: dir.to_path_buf(),
            error: e,
        })?;
        weights::save_tensors(&self.tensors, &dir.join("model.safetensors"))?;
        let json = serde_json::to_string_pretty(&self.config).expect("config serializes");
        weights::write_atomic(&dir.join("config.json"), &json)
    }
}
