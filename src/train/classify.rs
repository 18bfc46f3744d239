//! Genre-classifier training (spec §9): uncorrupted windows, ±12 transposition, AdamW with
//! warmup + cosine decay, early stopping on the validation loss, and a held-out report
//! (window accuracy and confusion matrix) from the best weights.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use candle_core::{Device, Tensor, D};
use candle_nn::VarMap;
use serde::Serialize;

use super::checkpoint;
use super::dataset::{Dataset, LabeledPiece, Split};
use super::error::{io, TrainError};
use super::init::{init_bert, stream, stream_seed};
use super::optim::{named_vars, AdamW, AdamWConfig};
use super::sample::{classifier_batch, epoch_batches, ClassifierBatch, ClassifierConfig};
use super::schedule::Schedule;
use crate::model::classifier::GENRES;
use crate::model::{BertConfig, GenreClassifier, Train};
use crate::tokens::CLASSIFIER_MAX_LEN;

const SALT_ORDER: u64 = 11;
const SALT_SAMPLE: u64 = 12;
const SALT_DROPOUT: u64 = 13;
const SALT_VALID: u64 = 14;

/// A classifier sized like the `small` seq2seq preset: 4 layers, d 192, 4 heads, FFN 768.
pub fn small_config() -> BertConfig {
    let base = GenreClassifier::base_config();
    BertConfig {
        hidden_size: 192,
        num_hidden_layers: 4,
        num_attention_heads: 4,
        intermediate_size: 768,
        ..base
    }
}

/// Training windows as the classifier's config says (its `improvnet_window_context`).
fn window_config(cfg: &BertConfig) -> ClassifierConfig {
    let context = cfg.classifier_context();
    ClassifierConfig {
        context_before: context,
        context_after: context,
        ..ClassifierConfig::default()
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ClassifierTrainConfig {
    pub epochs: usize,
    pub patience: usize,
    pub batch: usize,
    pub lr: f64,
    pub warmup_ratio: f64,
    pub weight_decay: f64,
    pub clip: f64,
    pub seed: u64,
    /// Validation windows drawn per validation piece (fixed, seeded).
    pub valid_windows: usize,
    pub dropout: bool,
    /// Training windows with varied velocities and durations (validation keeps them as they
    /// are): see [`super::sample::vary_rendering`].
    pub vary_rendering: bool,
}

impl Default for ClassifierTrainConfig {
    fn default() -> Self {
        Self {
            epochs: 200,
            patience: 30,
            batch: 16,
            lr: 1e-4,
            warmup_ratio: 0.3,
            weight_decay: 0.01,
            clip: 3.0,
            seed: 444,
            valid_windows: 8,
            dropout: true,
            vary_rendering: false,
        }
    }
}

/// Held-out result of the best weights.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ClassifierReport {
    pub epochs_run: usize,
    pub best_epoch: usize,
    pub best_valid_loss: f64,
    pub windows: usize,
    pub accuracy: f64,
    /// `confusion[true][predicted]`, labels classical 0, pop 1, jazz 2.
    pub confusion: [[usize; 3]; 3],
}

impl ClassifierReport {
    pub fn text(&self) -> String {
        let mut s = format!(
            "best epoch {} of {} (validation loss {:.4}); held-out windows {}: accuracy {:.3}\n\
             confusion (rows true, columns predicted):\n{:>10}",
            self.best_epoch, self.epochs_run, self.best_valid_loss, self.windows, self.accuracy, ""
        );
        for g in GENRES {
            s.push_str(&format!("{g:>10}"));
        }
        for (i, row) in self.confusion.iter().enumerate() {
            s.push_str(&format!("\n{:>10}", GENRES[i]));
            for c in row {
                s.push_str(&format!("{c:>10}"));
            }
        }
        s
    }
}

pub struct ClassifierRun {
    pub model: GenreClassifier,
    vars: VarMap,
    optimizer: AdamW,
    config: ClassifierTrainConfig,
    train: Vec<LabeledPiece>,
    valid: Vec<ClassifierBatch>,
    device: Device,
}

/// Cuts a padded classifier batch to its longest row.
fn tensors(b: &ClassifierBatch, dev: &Device) -> Result<(Tensor, Tensor, Tensor), TrainError> {
    let len = super::loss::longest_row(&b.attention_mask, CLASSIFIER_MAX_LEN, b.size);
    let mut ids = Vec::with_capacity(b.size * len);
    let mut mask = Vec::with_capacity(b.size * len);
    for i in 0..b.size {
        let r = i * CLASSIFIER_MAX_LEN;
        ids.extend_from_slice(&b.ids[r..r + len]);
        mask.extend_from_slice(&b.attention_mask[r..r + len]);
    }
    Ok((
        Tensor::from_vec(ids, (b.size, len), dev)?,
        Tensor::from_vec(mask, (b.size, len), dev)?,
        Tensor::from_slice(&b.labels, b.size, dev)?,
    ))
}

impl ClassifierRun {
    pub fn new(
        cfg: &BertConfig,
        data: &Dataset,
        config: ClassifierTrainConfig,
        device: &Device,
    ) -> Result<Self, TrainError> {
        if config.batch == 0 || config.epochs == 0 {
            return Err(TrainError::Config(
                "--batch and --epochs must be at least 1".into(),
            ));
        }
        cfg.validate("classifier")?;
        let vars = VarMap::new();
        let model = GenreClassifier::from_backend(cfg, Box::new(vars.clone()), device)?;
        init_bert(&vars, config.seed, cfg.initializer_range)?;
        let optimizer = AdamW::new(
            named_vars(&vars),
            AdamWConfig {
                weight_decay: config.weight_decay,
                ..AdamWConfig::default()
            },
        )?;
        let train: Vec<LabeledPiece> = data.pieces(Split::Train).into_iter().cloned().collect();
        if train.is_empty() {
            return Err(TrainError::Config(
                "the dataset has no training pieces".into(),
            ));
        }
        let mut rng = stream(config.seed, SALT_VALID, 0);
        let wcfg = window_config(cfg);
        let valid_pieces = data.pieces(Split::Valid);
        let mut valid = Vec::new();
        for _ in 0..config.valid_windows {
            for chunk in valid_pieces.chunks(config.batch) {
                valid.push(classifier_batch(chunk, &wcfg, &mut rng));
            }
        }
        Ok(Self {
            model,
            vars,
            optimizer,
            config,
            train,
            valid,
            device: device.clone(),
        })
    }

    /// Validation loss, and the confusion matrix of argmax predictions.
    pub fn evaluate(&self) -> Result<(f64, [[usize; 3]; 3], usize), TrainError> {
        let mut nll = 0f64;
        let mut n = 0usize;
        let mut conf = [[0usize; 3]; 3];
        for b in &self.valid {
            let (ids, mask, labels) = tensors(b, &self.device)?;
            let logits = self.model.forward(&ids, &mask)?.detach();
            let loss = candle_nn::loss::cross_entropy(&logits, &labels)?.to_scalar::<f32>()?;
            nll += loss as f64 * b.size as f64;
            n += b.size;
            let pred = logits.argmax(D::Minus1)?.to_vec1::<u32>()?;
            for (p, &t) in pred.iter().zip(&b.labels) {
                conf[(t as usize).min(2)][(*p as usize).min(2)] += 1;
            }
        }
        Ok((nll / n.max(1) as f64, conf, n))
    }

    /// Trains with early stopping; best weights in `out/best`, the report in `out/report.json`.
    pub fn run(
        &mut self,
        out: &Path,
        stop: &AtomicBool,
        mut log: impl FnMut(&str),
    ) -> Result<ClassifierReport, TrainError> {
        std::fs::create_dir_all(out).map_err(io(out))?;
        let c = self.config.clone();
        let per_epoch = self.train.len().div_ceil(c.batch);
        let schedule = Schedule::new(c.lr, c.warmup_ratio, (per_epoch * c.epochs) as u64);
        let wcfg = ClassifierConfig {
            vary_rendering: c.vary_rendering,
            ..window_config(self.model.config())
        };
        let best_dir = out.join("best");
        let mut best = (f64::INFINITY, 0usize);
        let mut epochs_run = 0;
        let mut step = 0u64;
        'epochs: for epoch in 1..=c.epochs {
            let mut rng = stream(c.seed, SALT_ORDER, epoch as u64);
            let mut train_loss = 0f64;
            for idx in epoch_batches(self.train.len(), c.batch, &mut rng) {
                if stop.load(Ordering::SeqCst) {
                    log("interrupted: reporting the best weights so far");
                    break 'epochs;
                }
                let pieces: Vec<&LabeledPiece> = idx.iter().map(|&i| &self.train[i]).collect();
                let mut srng = stream(c.seed, SALT_SAMPLE, step);
                let b = classifier_batch(&pieces, &wcfg, &mut srng);
                let (ids, mask, labels) = tensors(&b, &self.device)?;
                let train = Train::new(stream_seed(c.seed, SALT_DROPOUT, step), c.dropout);
                let logits = self.model.forward_t(&ids, &mask, &train)?;
                let loss = candle_nn::loss::cross_entropy(&logits, &labels)?;
                let lv = loss.to_scalar::<f32>()? as f64;
                if !lv.is_finite() {
                    return Err(TrainError::NonFinite {
                        step: step + 1,
                        loss: lv,
                    });
                }
                let grads = loss.backward()?;
                self.optimizer
                    .step(&grads, schedule.lr(step), Some(c.clip))?;
                step += 1;
                train_loss += lv / per_epoch as f64;
            }
            epochs_run = epoch;
            let (vloss, conf, n) = self.evaluate()?;
            let acc = (0..3).map(|i| conf[i][i]).sum::<usize>() as f64 / n.max(1) as f64;
            log(&format!(
                "epoch {epoch}: train loss {train_loss:.4}, valid loss {vloss:.4}, acc {acc:.3}"
            ));
            if vloss < best.0 {
                best = (vloss, epoch);
                self.model.save(&best_dir)?;
            } else if epoch - best.1 >= c.patience {
                log(&format!(
                    "early stop: no better validation loss for {} epochs",
                    c.patience
                ));
                break;
            }
        }
        if best_dir.join(checkpoint::WEIGHTS_FILE).is_file() {
            checkpoint::load_weights(&self.vars, &best_dir)?;
        }
        let (_, confusion, windows) = self.evaluate()?;
        let accuracy =
            (0..3).map(|i| confusion[i][i]).sum::<usize>() as f64 / windows.max(1) as f64;
        let report = ClassifierReport {
            epochs_run,
            best_epoch: best.1,
            best_valid_loss: best.0,
            windows,
            accuracy,
            confusion,
        };
        let path = out.join("report.json");
        let json = serde_json::to_string_pretty(&report).expect("report serializes");
        std::fs::write(&path, json).map_err(io(&path))?;
        Ok(report)
    }
}
