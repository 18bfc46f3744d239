//! The model benchmark: median time to refine one typical 5-second segment (encoder over ~1000
//! tokens of context, decoder generating a fixed number of tokens with `<E>` suppressed).

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::time::Instant;

use super::generate::{ForbidTokens, GenerateOptions, SamplingParams};
use super::seq2seq::ImprovNetModel;
use super::{Result, EOS, PAD};

/// What to measure.
#[derive(Debug, Clone, Copy)]
pub struct BenchSpec {
    /// Encoder input length (5 + 5 segments of context around the segment: ~1000 tokens).
    pub enc_tokens: usize,
    /// Decoder tokens generated per segment (~100 notes = 300 tokens).
    pub dec_tokens: usize,
    /// Timed runs (after one warm-up run).
    pub runs: usize,
    pub seed: u64,
}

impl Default for BenchSpec {
    fn default() -> Self {
        Self {
            enc_tokens: 1000,
            dec_tokens: 300,
            runs: 5,
            seed: 0,
        }
    }
}

#[derive(Debug, Clone)]
pub struct BenchReport {
    pub parameters: usize,
    pub enc_tokens: usize,
    pub dec_tokens: usize,
    pub runs: usize,
    /// Median wall time for one segment (encoder + decoding), ms.
    pub segment_ms: f64,
    /// Median encoder time (including cross-attention K/V), ms.
    pub encoder_ms: f64,
    /// Median decoding time, ms.
    pub decode_ms: f64,
    /// Decoder tokens per second (median decode time).
    pub decoder_tok_per_s: f64,
    /// Peak resident memory of this process so far (VmHWM), MB, when /proc is available.
    pub peak_rss_mb: Option<f64>,
}

impl std::fmt::Display for BenchReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "params {:.2} M | enc {} + dec {} tokens | segment {:.1} ms (encoder {:.1} ms, decode {:.1} ms) | {:.0} tok/s | peak {} MB | median of {}",
            self.parameters as f64 / 1e6,
            self.enc_tokens,
            self.dec_tokens,
            self.segment_ms,
            self.encoder_ms,
            self.decode_ms,
            self.decoder_tok_per_s,
            self.peak_rss_mb.map_or("?".into(), |m| format!("{m:.0}")),
            self.runs
        )
    }
}

/// Random but plausible encoder input (ids 1..2300), deterministic in `seed`.
pub fn bench_input(enc_tokens: usize, seed: u64) -> Vec<u32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..enc_tokens).map(|_| rng.gen_range(1..2300)).collect()
}

/// Peak resident set size (VmHWM) of this process, MB.
pub fn peak_rss_mb() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Times `spec.runs` segment refinements (plus one warm-up) with top-k 50 sampling and `<E>` and
/// pad suppressed, so every run decodes exactly `spec.dec_tokens` tokens.
pub fn bench_model(model: &ImprovNetModel, spec: &BenchSpec) -> Result<BenchReport> {
    let input = bench_input(spec.enc_tokens, spec.seed);
    let opts = GenerateOptions {
        sampling: SamplingParams::default(),
        max_len: spec.dec_tokens + 1,
    };
    let mut rng = ChaCha8Rng::seed_from_u64(spec.seed);
    let (mut seg, mut enc, mut dec) = (vec![], vec![], vec![]);
    for run in 0..=spec.runs {
        let t0 = Instant::now();
        let state = model.start_segment(&input)?;
        let t1 = Instant::now();
        drop(state);
        let mut forbid = ForbidTokens(vec![EOS, PAD]);
        let t2 = Instant::now();
        let out = model.generate(&input, &opts, &mut [&mut forbid], &mut rng)?;
        let t3 = Instant::now();
        assert_eq!(out.len(), spec.dec_tokens + 1);
        if run == 0 {
            continue; // warm-up
        }
        let e = (t1 - t0).as_secs_f64() * 1e3;
        let total = (t3 - t2).as_secs_f64() * 1e3;
        enc.push(e);
        seg.push(total);
        dec.push((total - e).max(1e-9));
    }
    let decode_ms = median(&mut dec);
    Ok(BenchReport {
        parameters: model.num_parameters(),
        enc_tokens: spec.enc_tokens,
        dec_tokens: spec.dec_tokens,
        runs: spec.runs,
        segment_ms: median(&mut seg),
        encoder_ms: median(&mut enc),
        decode_ms,
        decoder_tok_per_s: spec.dec_tokens as f64 / (decode_ms / 1e3),
        peak_rss_mb: peak_rss_mb(),
    })
}
