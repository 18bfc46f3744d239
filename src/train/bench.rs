//! Training throughput: the same steps `improvnet train` takes (forward with dropout, backward,
//! AdamW), on fixed batches drawn from a dataset, timed per step.

use std::path::Path;

use candle_core::Device;

use super::dataset::{Dataset, Split};
use super::error::{io, TrainError};
use super::trainer::{TrainConfig, Trainer};
use crate::model::Config;

/// Timings of `steps` training steps (after one untimed warm-up step).
#[derive(Clone, Debug)]
pub struct BenchReport {
    pub params: usize,
    pub batch: usize,
    pub threads: usize,
    pub ms: Vec<f64>,
    pub samples: usize,
    pub tokens: usize,
    pub enc_tokens: usize,
    pub dec_tokens: usize,
    pub enc_len_mean: f64,
    pub dec_len_mean: f64,
}

impl BenchReport {
    pub fn median_ms(&self) -> f64 {
        let mut v = self.ms.clone();
        v.sort_by(|a, b| a.total_cmp(b));
        if v.is_empty() {
            0.0
        } else {
            v[v.len() / 2]
        }
    }

    pub fn text(&self) -> String {
        let total_s: f64 = self.ms.iter().sum::<f64>() / 1e3;
        format!(
            "train step, {} params, batch {}, {} threads, {} timed steps\n\
             median {:.0} ms/step (min {:.0}, max {:.0})\n\
             {:.2} samples/s, {:.0} tokens/s (encoder {:.0} + decoder {:.0} non-pad ids/s)\n\
             mean trimmed lengths: encoder {:.0}, decoder {:.0}",
            self.params,
            self.batch,
            self.threads,
            self.ms.len(),
            self.median_ms(),
            self.ms.iter().cloned().fold(f64::INFINITY, f64::min),
            self.ms.iter().cloned().fold(0.0, f64::max),
            self.samples as f64 / total_s,
            self.tokens as f64 / total_s,
            self.enc_tokens as f64 / total_s,
            self.dec_tokens as f64 / total_s,
            self.enc_len_mean,
            self.dec_len_mean,
        )
    }
}

/// What to time.
#[derive(Clone, Debug)]
pub struct BenchOptions<'a> {
    pub batch: usize,
    pub micro_batch: usize,
    /// Timed steps (after one untimed warm-up step).
    pub steps: usize,
    pub max_context: usize,
    pub seed: u64,
    /// Writes the timed batches (trimmed ids) as JSON for the PyTorch side of the bench.
    pub dump: Option<&'a Path>,
}

/// Runs `steps + 1` training steps of a fresh model.
pub fn run(config: &Config, data: &Dataset, o: &BenchOptions) -> Result<BenchReport, TrainError> {
    let BenchOptions {
        batch,
        micro_batch,
        steps,
        max_context,
        seed,
        dump,
    } = o.clone();
    let cfg = TrainConfig {
        steps: steps as u64 + 1,
        batch,
        micro_batch,
        seed,
        max_context,
        warmup_ratio: 0.0,
        ..TrainConfig::default()
    };
    let out = std::env::temp_dir().join("improvnet-bench-train");
    let mut t = Trainer::new(config, None, data, "bench", cfg, &out, &Device::Cpu)?;
    let _ = data.pieces(Split::Train);
    let mut report = BenchReport {
        params: t.model.num_parameters(),
        batch,
        threads: candle_core::utils::get_num_threads(),
        ms: Vec::new(),
        samples: 0,
        tokens: 0,
        enc_tokens: 0,
        dec_tokens: 0,
        enc_len_mean: 0.0,
        dec_len_mean: 0.0,
    };
    let mut dumped = Vec::new();
    for i in 0..=steps {
        if dump.is_some() && i > 0 {
            let b = t.batch_for_step(t.step);
            let tb = super::loss::trim(&b, false);
            dumped.push(serde_json::json!({
                "batch": tb.size, "enc_len": tb.enc_len, "dec_len": tb.dec_len,
                "enc_ids": tb.enc_ids, "enc_mask": tb.enc_mask, "dec_ids": tb.dec_ids,
                "labels": tb.labels, "loss_mask": tb.loss_mask,
            }));
        }
        let s = t.train_step()?;
        if i == 0 {
            continue;
        }
        let b = t.batch_for_step(s.step - 1);
        let enc: usize = b.attention_mask.iter().filter(|&&m| m != 0).count();
        report.ms.push(s.ms);
        report.samples += s.samples;
        report.tokens += s.tokens;
        report.enc_tokens += enc;
        report.dec_tokens += s.tokens - enc;
        report.enc_len_mean += s.enc_len as f64 / steps as f64;
        report.dec_len_mean += s.dec_len as f64 / steps as f64;
    }
    if let Some(path) = dump {
        let json = serde_json::json!({
            "config": serde_json::from_str::<serde_json::Value>(&config.to_json_string())
                .unwrap_or_default(),
            "batches": dumped,
        });
        std::fs::write(path, json.to_string()).map_err(io(path))?;
    }
    Ok(report)
}
