//! The seq2seq training loop (spec §7, §8.2): §7 samples drawn on the fly, dropout, AdamW with
//! warmup + cosine decay, gradient clipping, padding-masked loss, checkpoints, validation per
//! corruption, CSV logs.
//!
//! Reproducibility: every random draw of step `s` comes from streams seeded by `(seed, s)` (the
//! batch's pieces from the epoch's shuffle, the samples, the dropout masks). A checkpoint holds
//! the weights, the AdamW moments and `s`; resuming from it gives bit-identical next steps.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use candle_core::backprop::GradStore;
use candle_core::Device;
use candle_nn::VarMap;
use serde::{Deserialize, Serialize};

use super::checkpoint;
use super::dataset::{Dataset, LabeledPiece, Split};
use super::error::{io, TrainError};
use super::init::{
    init_bert, pull_output_bias, set_output_bias, stream, stream_seed, unigram_log_frequencies,
};
use super::loss::{
    cross_entropy, cross_entropy_over, inputs, loss_positions, target_mix_term, trim, LossOutput,
};
use super::optim::{named_vars, AdamW, AdamWConfig};
use super::rules::target_mix;
use super::sample::{epoch_batches, training_batch, training_sample, Batch, SampleConfig};
use super::schedule::Schedule;
use crate::corrupt::CorruptionChoice;
use crate::model::{Config, ImprovNetModel, Train};
use crate::tokens::{Corruption, ENCODER_MAX_LEN};

const SALT_ORDER: u64 = 1;
const SALT_SAMPLE: u64 = 2;
const SALT_DROPOUT: u64 = 3;
const SALT_VALID: u64 = 4;
const SALT_UNIGRAM: u64 = 5;

/// Samples counted for the unigram output bias.
const UNIGRAM_SAMPLES: usize = 2000;

/// Log-frequencies of the label positions the loss covers, over [`UNIGRAM_SAMPLES`] training
/// samples drawn as training draws them (pads included with `loss_on_padding`).
pub fn label_log_frequencies(data: &Dataset, config: &TrainConfig, vocab_size: usize) -> Vec<f32> {
    let train = data.pieces(Split::Train);
    let mut rng = stream(config.seed, SALT_UNIGRAM, 0);
    let sample_config = config.training_sample_config();
    let mut labels = Vec::new();
    if !train.is_empty() {
        for i in 0..UNIGRAM_SAMPLES {
            let p = train[i % train.len()];
            let s = training_sample(&p.piece, p.genre, &sample_config, &mut rng);
            labels.extend(
                s.labels
                    .into_iter()
                    .filter(|&l| config.loss_on_padding || l != crate::model::PAD),
            );
        }
    }
    unigram_log_frequencies(labels, vocab_size)
}

/// Pre-training from scratch, or fine-tuning from a model folder.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    Pretrain,
    Finetune,
}

/// Settings of a run; saved in every checkpoint and restored on resume. Settings it no longer
/// has are ignored when a saved run is read (no `deny_unknown_fields`), so runs saved with the
/// removed experiments (docs/experiments.md, "The six removed experiments") still resume.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    pub stage: Stage,
    /// Optimizer steps in the whole run (the schedule's length).
    pub steps: u64,
    pub batch: usize,
    /// Samples per forward/backward pass; their gradients are summed into the batch's. 1 (the
    /// default) means no padding at all: on CPU a padded position costs as much as a real one,
    /// and the longest of 4 random windows is often twice the mean.
    #[serde(default = "one")]
    pub micro_batch: usize,
    pub lr: f64,
    pub warmup_ratio: f64,
    pub weight_decay: f64,
    /// Global gradient-norm clip (3.0 as the original).
    pub clip: f64,
    pub seed: u64,
    /// The original's loss over all 512 label positions, padding included.
    pub loss_on_padding: bool,
    pub dropout: bool,
    /// Context segments drawn on each side: 1..=max_context (5 as the original).
    pub max_context: usize,
    /// Checkpoint every this many steps (0: only at the end and on interrupt).
    pub ckpt_every: u64,
    /// Also checkpoint when this many minutes passed since the last one (0: off).
    pub ckpt_minutes: f64,
    /// Validate every this many steps (0: only at the end).
    pub eval_every: u64,
    /// Validation pieces used (0: all); each gives one sample per corruption.
    pub valid_pieces: usize,
    /// From scratch, start the output bias at the training labels' log-frequencies
    /// ([`super::init::unigram_log_frequencies`]: delays the encoder's collapse); off gives
    /// HF's zero bias. Runs saved before this setting existed resume with it off.
    #[serde(default)]
    pub unigram_bias: bool,
    /// From scratch, start from weights that already copy the corrupted input: an induction
    /// circuit written into the initial weights ([`super::induction`]).
    #[serde(default)]
    pub copy_circuit: bool,
    /// With `copy_circuit`: add the alignment prior (the block's target token i sits i + 1
    /// places after the corruption token; [`super::induction`]).
    #[serde(default)]
    pub align_positions: bool,
    /// With `copy_circuit`: pitch-velocity codes share a part per pitch and per pitch class
    /// ([`super::induction`], `share_pitch_codes`).
    #[serde(default)]
    pub pitch_codes: bool,
    /// With `copy_circuit`: pitch-velocity codes share a part per velocity
    /// ([`super::induction`], `share_velocity_codes`).
    #[serde(default)]
    pub velocity_codes: bool,
    /// Relative weights of the nine corruptions in training samples (in [`Corruption::ALL`]
    /// order); `None` draws them uniformly, as the original. Validation stays uniform.
    #[serde(default)]
    pub corruption_weights: Option<[f64; 9]>,
    /// Share of the target that moves from the label to a rule's belief wherever a rule that
    /// knows no harmony has one ([`super::rules::target_mix`]: the permutations' and
    /// transposition's pitches); 0 trains on the labels alone, as the original.
    #[serde(default)]
    pub rule_teacher: f64,
    /// Largest loudness shift of a training window, in velocity bins
    /// ([`SampleConfig::max_velocity_shift`]); 0 keeps the velocities as played, as the original.
    #[serde(default)]
    pub velocity_shift: u8,
    /// Largest register shift of a training window, in semitones
    /// ([`SampleConfig::max_register_shift`]); 0 keeps the piece's transposition alone, as the
    /// original.
    #[serde(default)]
    pub register_shift: u8,
    /// Share of the way each field's output bias is pulled to the field's mean when the run
    /// starts ([`super::init::pull_output_bias`]); 0 keeps the bias as loaded.
    #[serde(default)]
    pub pull_output_bias: f64,
}

/// Refuses a share outside 0..=1 (NaN included), naming its flag.
fn share(flag: &str, value: f64) -> Result<(), TrainError> {
    if (0.0..=1.0).contains(&value) {
        return Ok(());
    }
    Err(TrainError::Config(format!(
        "{flag} {value} must be a share between 0 and 1"
    )))
}

fn one() -> usize {
    1
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            stage: Stage::Pretrain,
            steps: 1000,
            batch: 4,
            micro_batch: 1,
            lr: 1e-4,
            warmup_ratio: 0.3,
            weight_decay: 0.01,
            clip: 3.0,
            seed: 444,
            loss_on_padding: false,
            dropout: true,
            max_context: 5,
            ckpt_every: 0,
            ckpt_minutes: 0.0,
            eval_every: 0,
            valid_pieces: 0,
            unigram_bias: true,
            copy_circuit: false,
            align_positions: false,
            pitch_codes: false,
            velocity_codes: false,
            corruption_weights: None,
            rule_teacher: 0.0,
            velocity_shift: 0,
            register_shift: 0,
            pull_output_bias: 0.0,
        }
    }
}

impl TrainConfig {
    pub fn validate(&self) -> Result<(), TrainError> {
        if self.batch == 0 {
            return Err(TrainError::Config("--batch must be at least 1".into()));
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return Err(TrainError::Config(format!(
                "--lr {} must be positive",
                self.lr
            )));
        }
        if !(0.0..=1.0).contains(&self.warmup_ratio) {
            return Err(TrainError::Config(format!(
                "--warmup-ratio {} must be within 0..=1",
                self.warmup_ratio
            )));
        }
        self.training_sample_config()
            .check_options()
            .map_err(TrainError::Config)?;
        share("--rule-teacher", self.rule_teacher)?;
        share("--pull-output-bias", self.pull_output_bias)?;
        if self.align_positions && !self.copy_circuit {
            return Err(TrainError::Config(
                "--align-positions is part of the copy circuit: add --copy-circuit".into(),
            ));
        }
        for (on, flag) in [
            (self.pitch_codes, "--pitch-codes"),
            (self.velocity_codes, "--velocity-codes"),
        ] {
            if on && !self.copy_circuit {
                return Err(TrainError::Config(format!(
                    "{flag} shapes the copy circuit's codes: add --copy-circuit"
                )));
            }
        }
        Ok(())
    }

    /// The sampling of validation and scoring: the original's.
    pub fn sample_config(&self) -> SampleConfig {
        SampleConfig {
            context: (1, self.max_context),
            ..SampleConfig::default()
        }
    }

    /// The sampling of training batches: [`sample_config`](Self::sample_config) plus the
    /// corruption weights and the loudness and register shifts.
    pub fn training_sample_config(&self) -> SampleConfig {
        SampleConfig {
            corruption_weights: self.corruption_weights,
            max_velocity_shift: self.velocity_shift,
            max_register_shift: self.register_shift,
            ..self.sample_config()
        }
    }
}

/// What `trainer_state.json` holds.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TrainerState {
    /// Optimizer steps done.
    pub step: u64,
    pub config: TrainConfig,
    /// The dataset folder trained on (informative).
    pub data: String,
    /// The rng state is `(config.seed, step)`: every stream is derived from them.
    pub rng: String,
    /// Best validation loss so far and its step.
    pub best_valid_loss: Option<f64>,
    pub best_step: Option<u64>,
    /// Training seconds so far, over all sessions.
    pub elapsed_s: f64,
}

/// One optimizer step.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepStats {
    /// The step just done (1-based).
    pub step: u64,
    pub loss: f64,
    pub lr: f64,
    pub grad_norm: f64,
    pub samples: usize,
    /// Non-pad encoder + decoder ids.
    pub tokens: usize,
    pub enc_len: usize,
    /// Longest encoder / decoder pass of the step.
    pub dec_len: usize,
    pub ms: f64,
}

/// Loss and token accuracy of one corruption type (or all).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Metric {
    pub nll: f64,
    pub tokens: f64,
    pub correct: f64,
    pub samples: usize,
}

impl Metric {
    pub fn loss(&self) -> f64 {
        self.nll / self.tokens.max(1.0)
    }
    pub fn accuracy(&self) -> f64 {
        self.correct / self.tokens.max(1.0)
    }
    pub(crate) fn add(&mut self, nll: f64, tokens: f64, correct: f64) {
        self.nll += nll;
        self.tokens += tokens;
        self.correct += correct;
        self.samples += 1;
    }
}

/// Validation after `step` steps: overall and per corruption (in [`Corruption::ALL`] order).
#[derive(Clone, Debug, PartialEq)]
pub struct EvalReport {
    pub step: u64,
    pub all: Metric,
    pub per_corruption: Vec<(Corruption, Metric)>,
    /// Validation loss with each sample given the previous sample's encoder input, minus the
    /// loss with its own (nats per token): 0 when the decoder ignores its encoder, the failure
    /// every model trained here showed first (the "encoder collapse" of docs/experiments.md,
    /// "How we got here"). `None` with fewer than two validation samples.
    pub encoder_gap: Option<f64>,
}

/// What the loop reports to its caller (a progress bar, a test).
pub enum Event<'a> {
    Step(&'a StepStats),
    Eval(&'a EvalReport),
    Checkpoint(&'a Path),
}

/// Why the loop returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Finish {
    Done,
    Interrupted,
}

/// A run in progress: the model over a `VarMap`, the optimizer, the data, the step.
pub struct Trainer {
    pub model: ImprovNetModel,
    pub vars: VarMap,
    pub optimizer: AdamW,
    pub config: TrainConfig,
    pub schedule: Schedule,
    pub step: u64,
    pub out: PathBuf,
    data_name: String,
    train: Vec<LabeledPiece>,
    valid: Vec<Batch>,
    /// `valid` with every sample's encoder input replaced by the previous sample's.
    valid_swapped: Vec<Batch>,
    order: Option<(u64, Vec<Vec<usize>>)>,
    best: Option<(f64, u64)>,
    elapsed_s: f64,
    device: Device,
}

impl Trainer {
    /// A new run: the model from scratch (`init: None`, seeded init) or from a model folder.
    pub fn new(
        model_config: &Config,
        init: Option<&Path>,
        data: &Dataset,
        data_name: &str,
        config: TrainConfig,
        out: &Path,
        device: &Device,
    ) -> Result<Self, TrainError> {
        config.validate()?;
        let (model_config, init) = match init {
            Some(dir) => (Config::from_file(&dir.join("config.json"))?, Some(dir)),
            None => (model_config.clone(), None),
        };
        model_config.validate()?;
        let vars = VarMap::new();
        let model = ImprovNetModel::trainable(&model_config, &vars, device)?;
        match init {
            Some(dir) => checkpoint::load_weights(&vars, dir)?,
            None => {
                init_bert(&vars, config.seed, model_config.encoder.initializer_range)?;
                if config.copy_circuit {
                    super::induction::write_circuit(
                        &vars,
                        &model_config,
                        config.seed,
                        config.align_positions,
                        config.pitch_codes,
                        config.velocity_codes,
                    )?;
                }
                if config.unigram_bias {
                    let bias =
                        label_log_frequencies(data, &config, model_config.decoder.vocab_size);
                    set_output_bias(&vars, &bias)?;
                }
            }
        }
        if config.pull_output_bias > 0.0 {
            pull_output_bias(&vars, config.pull_output_bias)?;
        }
        let optimizer = AdamW::new(
            named_vars(&vars),
            AdamWConfig {
                weight_decay: config.weight_decay,
                ..AdamWConfig::default()
            },
        )?;
        Self::assemble(model, vars, optimizer, config, data, data_name, out, device)
    }

    /// Continues the run saved in `dir` (a checkpoint folder or a run folder).
    pub fn resume(
        dir: &Path,
        data: &Dataset,
        out: &Path,
        device: &Device,
    ) -> Result<Self, TrainError> {
        let ckpt = checkpoint::locate(dir)?;
        let state: TrainerState = checkpoint::read_state(&ckpt)?;
        let model_config = Config::from_file(&ckpt.join("config.json"))?;
        let vars = VarMap::new();
        let model = ImprovNetModel::trainable(&model_config, &vars, device)?;
        checkpoint::load_weights(&vars, &ckpt)?;
        let mut optimizer = AdamW::new(
            named_vars(&vars),
            AdamWConfig {
                weight_decay: state.config.weight_decay,
                ..AdamWConfig::default()
            },
        )?;
        checkpoint::load_optimizer(&mut optimizer, &ckpt, state.step)?;
        let mut t = Self::assemble(
            model,
            vars,
            optimizer,
            state.config.clone(),
            data,
            &state.data,
            out,
            device,
        )?;
        t.step = state.step;
        t.best = state.best_valid_loss.zip(state.best_step);
        t.elapsed_s = state.elapsed_s;
        Ok(t)
    }

    #[allow(clippy::too_many_arguments)]
    fn assemble(
        model: ImprovNetModel,
        vars: VarMap,
        optimizer: AdamW,
        config: TrainConfig,
        data: &Dataset,
        data_name: &str,
        out: &Path,
        device: &Device,
    ) -> Result<Self, TrainError> {
        let train: Vec<LabeledPiece> = data.pieces(Split::Train).into_iter().cloned().collect();
        if train.is_empty() {
            return Err(TrainError::Config(format!(
                "{data_name}: the dataset has no training pieces"
            )));
        }
        let valid = validation_batches(data, &config);
        let valid_swapped = swap_encoders(&valid);
        Ok(Self {
            schedule: Schedule::new(config.lr, config.warmup_ratio, config.steps),
            model,
            vars,
            optimizer,
            config,
            step: 0,
            out: out.to_path_buf(),
            data_name: data_name.to_string(),
            train,
            valid,
            valid_swapped,
            order: None,
            best: None,
            elapsed_s: 0.0,
            device: device.clone(),
        })
    }

    /// The batch of 0-based step `step`: epoch `e` shuffles the pieces with stream `(seed, e)`;
    /// the samples are drawn from stream `(seed, step)`.
    pub fn batch_for_step(&mut self, step: u64) -> Batch {
        let n = self.train.len();
        let per_epoch = n.div_ceil(self.config.batch) as u64;
        let epoch = step / per_epoch;
        if self.order.as_ref().map(|o| o.0) != Some(epoch) {
            let mut rng = stream(self.config.seed, SALT_ORDER, epoch);
            self.order = Some((epoch, epoch_batches(n, self.config.batch, &mut rng)));
        }
        let idx = &self.order.as_ref().expect("order set").1[(step % per_epoch) as usize];
        let pieces: Vec<&LabeledPiece> = idx.iter().map(|&i| &self.train[i]).collect();
        let mut rng = stream(self.config.seed, SALT_SAMPLE, step);
        training_batch(&pieces, &self.config.training_sample_config(), &mut rng)
    }

    /// One optimizer step on the next batch (micro-batch by micro-batch, gradients summed).
    pub fn train_step(&mut self) -> Result<StepStats, TrainError> {
        let start = Instant::now();
        let step = self.step;
        let batch = self.batch_for_step(step);
        let denominator = loss_positions(&batch, self.config.loss_on_padding) as f64;
        let train = Train::new(
            stream_seed(self.config.seed, SALT_DROPOUT, step),
            self.config.dropout,
        );
        let micro = self.config.micro_batch.max(1);
        let mut grads = GradStore::default();
        let (mut loss, mut tokens, mut enc_len, mut dec_len) = (0f64, 0usize, 0usize, 0usize);
        for first in (0..batch.size).step_by(micro) {
            let rows = batch.rows(first, first + micro);
            let t = trim(&rows, self.config.loss_on_padding);
            let (enc, mask, dec) = inputs(&t, &self.device)?;
            let logits = self.model.forward_t(&enc, &mask, &dec, &train)?;
            let out = cross_entropy_over(&logits, &t, denominator)?;
            // The logged loss stays the labels' cross-entropy; the teacher only moves gradients.
            let part = out.loss.to_scalar::<f32>()? as f64;
            if !part.is_finite() {
                return Err(TrainError::NonFinite {
                    step: step + 1,
                    loss: part,
                });
            }
            loss += part;
            let mix = target_mix(&rows, self.config.rule_teacher);
            let objective = match target_mix_term(&out.log_probs, &t, &mix, denominator)? {
                Some(term) => (&out.loss + term)?,
                None => out.loss,
            };
            let g = objective.backward()?;
            // Keep the parameters' gradients only; the rest of `g` is freed here.
            for var in self.optimizer.vars() {
                if let Some(x) = g.get(var.as_tensor()) {
                    let sum = match grads.get(var.as_tensor()) {
                        Some(acc) => (acc + x)?,
                        None => x.clone(),
                    };
                    grads.insert(var.as_tensor(), sum);
                }
            }
            tokens += t.tokens;
            enc_len = enc_len.max(t.enc_len);
            dec_len = dec_len.max(t.dec_len);
        }
        let lr = self.schedule.lr(step);
        let info = self.optimizer.step(&grads, lr, Some(self.config.clip))?;
        self.step += 1;
        let ms = start.elapsed().as_secs_f64() * 1e3;
        self.elapsed_s += ms / 1e3;
        Ok(StepStats {
            step: self.step,
            loss,
            lr,
            grad_norm: info.grad_norm,
            samples: batch.size,
            tokens,
            enc_len,
            dec_len,
            ms,
        })
    }

    /// Validation loss and token accuracy, overall and per corruption, without dropout, on a
    /// fixed set (each validation piece once per corruption, seeded by the run's seed).
    pub fn evaluate(&self) -> Result<EvalReport, TrainError> {
        let mut all = Metric::default();
        let mut per: Vec<(Corruption, Metric)> = Corruption::ALL
            .iter()
            .map(|&c| (c, Metric::default()))
            .collect();
        for (corruption, nll, n, c) in self.score_rows(&self.valid)? {
            all.add(nll, n, c);
            let k = Corruption::ALL
                .iter()
                .position(|&x| x == corruption)
                .unwrap_or(0);
            per[k].1.add(nll, n, c);
        }
        let mut swapped = Metric::default();
        for (_, nll, n, c) in self.score_rows(&self.valid_swapped)? {
            swapped.add(nll, n, c);
        }
        Ok(EvalReport {
            step: self.step,
            all,
            per_corruption: per,
            encoder_gap: (!self.valid_swapped.is_empty()).then(|| swapped.loss() - all.loss()),
        })
    }

    /// [`row_scores`] of every row of `batches`, with the run's model and loss setting.
    fn score_rows(
        &self,
        batches: &[Batch],
    ) -> Result<Vec<(Corruption, f64, f64, f64)>, TrainError> {
        let mut rows = Vec::new();
        for batch in batches {
            rows.extend(row_scores(
                &self.model,
                batch,
                self.config.loss_on_padding,
                &self.device,
            )?);
        }
        Ok(rows)
    }

    /// Sets the run's length to `steps` (above the step reached): the warmup keeps its length
    /// and the cosine decay stretches to the new end, so a finished or running schedule can be
    /// extended on resume. Saved with the next checkpoint, so later resumes keep it.
    pub fn set_total_steps(&mut self, steps: u64) -> Result<(), TrainError> {
        if steps <= self.step {
            return Err(TrainError::Config(format!(
                "--steps {steps}: the run is already at step {}; give a larger total",
                self.step
            )));
        }
        let warmup = self.schedule.warmup_steps;
        self.config.steps = steps;
        // The ratio whose `ceil(ratio * steps)` is the same warmup length.
        self.config.warmup_ratio = if warmup == 0 {
            0.0
        } else {
            (warmup as f64 - 0.5) / steps as f64
        };
        self.schedule = Schedule::new(self.config.lr, self.config.warmup_ratio, steps);
        debug_assert_eq!(self.schedule.warmup_steps, warmup);
        Ok(())
    }

    /// Number of validation samples.
    pub fn valid_samples(&self) -> usize {
        self.valid.iter().map(|b| b.size).sum()
    }

    pub fn train_pieces(&self) -> usize {
        self.train.len()
    }

    fn state(&self) -> TrainerState {
        TrainerState {
            step: self.step,
            config: self.config.clone(),
            data: self.data_name.clone(),
            rng: format!(
                "derived: every stream is seeded from (seed {}, step {})",
                self.config.seed, self.step
            ),
            best_valid_loss: self.best.map(|b| b.0),
            best_step: self.best.map(|b| b.1),
            elapsed_s: self.elapsed_s,
        }
    }

    /// Writes the checkpoint (weights, optimizer, step) to `dir` atomically.
    pub fn save_checkpoint(&self, dir: &Path) -> Result<(), TrainError> {
        checkpoint::save(
            dir,
            |tmp| Ok(self.model.save(tmp)?),
            &self.optimizer,
            &self.state(),
        )
    }

    /// Runs to `config.steps` or until `stop` is set: checkpoints to `out/checkpoint`,
    /// validation (best weights to `out/best`), `out/train_log.csv` and `out/valid_log.csv`.
    pub fn run(
        &mut self,
        stop: &AtomicBool,
        mut on_event: impl FnMut(Event),
    ) -> Result<Finish, TrainError> {
        std::fs::create_dir_all(&self.out).map_err(io(&self.out))?;
        let train_csv = self.out.join("train_log.csv");
        let valid_csv = self.out.join("valid_log.csv");
        let mut train_log = CsvLog::open(
            &train_csv,
            "step,lr,loss,grad_norm,samples,tokens,enc_len,dec_len,ms",
            self.step,
        )?;
        let mut header = String::from("step,loss,accuracy");
        for c in Corruption::ALL {
            header.push_str(&format!(",{0}_loss,{0}_acc", c.name()));
        }
        header.push_str(",encoder_gap");
        let mut valid_log = CsvLog::open(&valid_csv, &header, self.step)?;
        let ckpt_dir = self.out.join("checkpoint");
        let mut last_ckpt = Instant::now();
        let mut last_saved = self.step;
        while self.step < self.config.steps {
            if stop.load(Ordering::SeqCst) {
                self.save_checkpoint(&ckpt_dir)?;
                on_event(Event::Checkpoint(&ckpt_dir));
                return Ok(Finish::Interrupted);
            }
            let s = self.train_step()?;
            train_log.row(&format!(
                "{},{:.6e},{:.6},{:.4},{},{},{},{},{:.1}",
                s.step, s.lr, s.loss, s.grad_norm, s.samples, s.tokens, s.enc_len, s.dec_len, s.ms
            ))?;
            on_event(Event::Step(&s));
            if self.config.eval_every > 0 && self.step.is_multiple_of(self.config.eval_every) {
                self.validate(&mut valid_log, &mut on_event)?;
            }
            let by_steps =
                self.config.ckpt_every > 0 && self.step.is_multiple_of(self.config.ckpt_every);
            let by_time = self.config.ckpt_minutes > 0.0
                && last_ckpt.elapsed().as_secs_f64() >= self.config.ckpt_minutes * 60.0;
            if by_steps || by_time {
                self.save_checkpoint(&ckpt_dir)?;
                last_ckpt = Instant::now();
                last_saved = self.step;
                on_event(Event::Checkpoint(&ckpt_dir));
            }
        }
        // (A run of 0 steps validates its initial weights: `--steps 0` writes them to `final`.)
        if self.step == 0
            || self.config.eval_every == 0
            || !self.step.is_multiple_of(self.config.eval_every)
        {
            self.validate(&mut valid_log, &mut on_event)?;
        }
        if last_saved != self.step || !ckpt_dir.exists() {
            self.save_checkpoint(&ckpt_dir)?;
            on_event(Event::Checkpoint(&ckpt_dir));
        }
        self.model.save(&self.out.join("final"))?;
        Ok(Finish::Done)
    }

    fn validate(
        &mut self,
        log: &mut CsvLog,
        on_event: &mut impl FnMut(Event),
    ) -> Result<(), TrainError> {
        if self.valid.is_empty() {
            return Ok(());
        }
        let r = self.evaluate()?;
        let mut row = format!("{},{:.6},{:.6}", r.step, r.all.loss(), r.all.accuracy());
        for (_, m) in &r.per_corruption {
            row.push_str(&format!(",{:.6},{:.6}", m.loss(), m.accuracy()));
        }
        row.push(',');
        if let Some(gap) = r.encoder_gap {
            row.push_str(&format!("{gap:.6}"));
        }
        log.row(&row)?;
        super::plot::write_loss_svg(&self.out)?;
        super::plot::write_loss_png(&self.out)?;
        if self.best.is_none_or(|(b, _)| r.all.loss() < b) {
            self.best = Some((r.all.loss(), r.step));
            self.model.save(&self.out.join("best"))?;
        }
        on_event(Event::Eval(&r));
        Ok(())
    }
}

/// One forward pass over `batch` without dropout, scored: per-row sums and argmax predictions.
pub(crate) fn batch_loss(
    model: &ImprovNetModel,
    batch: &Batch,
    loss_on_padding: bool,
    device: &Device,
) -> Result<LossOutput, TrainError> {
    let t = trim(batch, loss_on_padding);
    let (enc, mask, dec) = inputs(&t, device)?;
    let logits = model.forward(&enc, &mask, &dec)?;
    Ok(cross_entropy(&logits, &t)?)
}

/// Per row of `batch`, from one forward pass without dropout: its corruption, summed negative
/// log-likelihood, counted positions and correct argmax predictions.
pub(crate) fn row_scores(
    model: &ImprovNetModel,
    batch: &Batch,
    loss_on_padding: bool,
    device: &Device,
) -> Result<Vec<(Corruption, f64, f64, f64)>, TrainError> {
    let out = batch_loss(model, batch, loss_on_padding, device)?;
    Ok(batch
        .meta
        .iter()
        .enumerate()
        .map(|(i, m)| {
            (
                m.corruption,
                out.row_nll[i],
                out.row_count[i],
                out.row_correct[i],
            )
        })
        .collect())
}

/// The fixed validation set: each validation piece (the first `valid_pieces`, 0 = all) once per
/// corruption, drawn from a fixed seeded stream, in micro-batches (no padding at 1).
fn validation_batches(data: &Dataset, config: &TrainConfig) -> Vec<Batch> {
    let mut pieces = data.pieces(Split::Valid);
    if config.valid_pieces > 0 {
        pieces.truncate(config.valid_pieces);
    }
    let mut rng = stream(config.seed, SALT_VALID, 0);
    let mut samples = Vec::new();
    for p in &pieces {
        for c in Corruption::ALL {
            let cfg = SampleConfig {
                corruption: CorruptionChoice::Fixed(c),
                ..config.sample_config()
            };
            samples.push(super::sample::training_sample(
                &p.piece, p.genre, &cfg, &mut rng,
            ));
        }
    }
    let mut batches = Vec::new();
    let mut it = samples.into_iter().peekable();
    while it.peek().is_some() {
        let chunk: Vec<_> = it.by_ref().take(config.micro_batch.max(1)).collect();
        batches.push(Batch::from_samples(chunk));
    }
    batches
}

/// The validation batches again, each sample with the previous sample's encoder input (the
/// first with the last's); empty when there are fewer than two samples. Labels and metadata
/// stay, so the loss difference is what the encoder's content is worth to the decoder.
fn swap_encoders(valid: &[Batch]) -> Vec<Batch> {
    let rows: Vec<(&[u32], &[u32])> = valid
        .iter()
        .flat_map(|b| {
            b.encoder_ids
                .chunks(ENCODER_MAX_LEN)
                .zip(b.attention_mask.chunks(ENCODER_MAX_LEN))
        })
        .collect();
    if rows.len() < 2 {
        return Vec::new();
    }
    let mut k = rows.len() - 1;
    valid
        .iter()
        .map(|b| {
            let mut swapped = b.clone();
            swapped.encoder_ids.clear();
            swapped.attention_mask.clear();
            for _ in 0..b.size {
                swapped.encoder_ids.extend_from_slice(rows[k].0);
                swapped.attention_mask.extend_from_slice(rows[k].1);
                k = (k + 1) % rows.len();
            }
            swapped
        })
        .collect()
}

/// An append-only CSV log. Opening it for a run at step `from` drops rows past `from` (steps
/// logged after the checkpoint being resumed), so a resumed log has each step once.
pub struct CsvLog {
    file: std::fs::File,
    path: PathBuf,
}

impl CsvLog {
    /// A log written by an older version whose header is a prefix of `header` (columns added
    /// since, such as `encoder_gap`) gets the new header and empty cells in its old rows.
    pub fn open(path: &Path, header: &str, from: u64) -> Result<Self, TrainError> {
        let mut keep = String::new();
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let mut lines = text.lines();
        if let Some(old_header) = lines.next() {
            let pad = match header.strip_prefix(old_header) {
                Some(rest) if !old_header.is_empty() && rest.starts_with(',') => {
                    rest.matches(',').count()
                }
                _ => 0,
            };
            keep.push_str(if pad > 0 { header } else { old_header });
            keep.push('\n');
            for line in lines {
                let step = line.split(',').next().and_then(|s| s.parse::<u64>().ok());
                if step.is_some_and(|s| s <= from) {
                    keep.push_str(line);
                    keep.extend(std::iter::repeat_n(',', pad));
                    keep.push('\n');
                }
            }
        }
        if keep.is_empty() {
            keep = format!("{header}\n");
        }
        std::fs::write(path, &keep).map_err(io(path))?;
        let file = std::fs::OpenOptions::new()
            .append(true)
            .open(path)
            .map_err(io(path))?;
        Ok(Self {
            file,
            path: path.to_path_buf(),
        })
    }

    pub fn row(&mut self, line: &str) -> Result<(), TrainError> {
        writeln!(self.file, "{line}").map_err(io(&self.path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `trainer_state.json` of a run saved before six training experiments were removed
    /// (docs/experiments.md, "The six removed experiments"): their settings are ignored, so the
    /// run still resumes, with the shipped settings it had.
    #[test]
    fn a_state_saved_with_the_removed_experiments_still_loads() {
        let saved = r#"{
            "step": 300,
            "config": {
                "stage": "pretrain", "steps": 1500, "batch": 4, "micro_batch": 1, "lr": 0.0005,
                "warmup_ratio": 0.03, "weight_decay": 0.01, "clip": 3.0, "seed": 444,
                "loss_on_padding": false, "dropout": false, "max_context": 5, "ckpt_every": 50,
                "ckpt_minutes": 10.0, "eval_every": 50, "valid_pieces": 0, "block_first": 0.25,
                "unigram_bias": true, "copy_circuit": true, "align_positions": true,
                "pitch_codes": true, "velocity_codes": true,
                "corruption_weights": [1.0, 1.0, 1.0, 3.0, 3.0, 1.0, 6.0, 1.0, 1.0],
                "rule_teacher": 0.3, "transposition_teacher": null, "velocity_shift": 3,
                "register_shift": 12, "pull_output_bias": 0.0, "close_calls": 4.0,
                "repair_weight": 50.0, "repair_teacher": 0.5
            },
            "data": "data/cj-v1",
            "rng": "(444, 300)",
            "best_valid_loss": 1.25,
            "best_step": 300,
            "elapsed_s": 1234.5
        }"#;
        let state: TrainerState = serde_json::from_str(saved).unwrap();
        assert_eq!(state.step, 300);
        let want = TrainConfig {
            steps: 1500,
            lr: 0.0005,
            warmup_ratio: 0.03,
            dropout: false,
            ckpt_every: 50,
            ckpt_minutes: 10.0,
            eval_every: 50,
            copy_circuit: true,
            align_positions: true,
            pitch_codes: true,
            velocity_codes: true,
            corruption_weights: Some([1.0, 1.0, 1.0, 3.0, 3.0, 1.0, 6.0, 1.0, 1.0]),
            rule_teacher: 0.3,
            velocity_shift: 3,
            register_shift: 12,
            ..TrainConfig::default()
        };
        assert_eq!(state.config, want);
        state.config.validate().unwrap();
        // Written again, it holds the shipped settings only.
        let again = serde_json::to_string(&state.config).unwrap();
        for gone in [
            "block_first",
            "transposition_teacher",
            "close_calls",
            "repair_weight",
            "repair_teacher",
        ] {
            assert!(!again.contains(gone), "{again}");
        }
    }
}
