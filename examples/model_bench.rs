//! Model benchmark: one config per process (so the peak memory is that config's).
//!
//!     cargo run --release --example model_bench -- small [--runs 5] [--enc 1000] [--dec 300] [--export DIR]
//!     cargo run --release --example model_bench -- base
//!     cargo run --release --example model_bench -- path/to/model_dir
//!
//! `--size L,D,H,FFN` or `--size2 ENC_L,DEC_L,D,H,FFN` bench other shapes; `--bf16` runs the
//! encoder's products in bf16 (AVX-512 BF16), `--int8` the decoder's weights in 8 bits.
//!
//! `--export DIR` saves the random weights (HF layout) and `input.json` for
//! `scripts/bench_model_pytorch.py`.

use candle_core::Device;
use improvnet::model::fast::{DecoderWeights, MAX_FEED};
use improvnet::model::{
    BertConfig, Config, ForbidTokens, GenerateOptions, ImprovNetModel, SamplingParams, EOS, PAD,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::path::PathBuf;
use std::time::Instant;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut spec = BenchSpec::default();
    let mut which = "small".to_string();
    let mut export: Option<PathBuf> = None;
    let mut custom: Option<Config> = None;
    let mut bf16 = false;
    let mut int8 = false;
    let mut i = 0;
    while i < args.len() {
        let next = || args.get(i + 1).cloned().unwrap_or_default();
        match args[i].as_str() {
            "--int8" => {
                int8 = true;
            }
            "--bf16" => {
                bf16 = true;
                i += 1;
                continue;
            }
            "--runs" => spec.runs = next().parse()?,
            "--enc" => spec.enc_tokens = next().parse()?,
            "--dec" => spec.dec_tokens = next().parse()?,
            "--seed" => spec.seed = next().parse()?,
            "--export" => export = Some(next().into()),
            // A custom size: --size LAYERS,D,HEADS,FFN (encoder and decoder alike).
            "--size" => {
                let v: Vec<usize> = next()
                    .split(',')
                    .map(|x| x.parse())
                    .collect::<Result<_, _>>()?;
                anyhow::ensure!(v.len() == 4, "--size LAYERS,D,HEADS,FFN");
                custom = Some(Config::from_parts(
                    BertConfig::sized(v[1], v[0], v[2], v[3], 2048),
                    BertConfig::sized(v[1], v[0], v[2], v[3], 512),
                ));
                which = format!("{}+{} d{} h{} ffn{}", v[0], v[0], v[1], v[2], v[3]);
            }
            // A custom size with different depths: --size2 ENC_LAYERS,DEC_LAYERS,D,HEADS,FFN.
            "--size2" => {
                let v: Vec<usize> = next()
                    .split(',')
                    .map(|x| x.parse())
                    .collect::<Result<_, _>>()?;
                anyhow::ensure!(v.len() == 5, "--size2 ENC_LAYERS,DEC_LAYERS,D,HEADS,FFN");
                custom = Some(Config::from_parts(
                    BertConfig::sized(v[2], v[0], v[3], v[4], 2048),
                    BertConfig::sized(v[2], v[1], v[3], v[4], 512),
                ));
                which = format!("{}+{} d{} h{} ffn{}", v[0], v[1], v[2], v[3], v[4]);
            }
            other => {
                which = other.to_string();
                i += 1;
                continue;
            }
        }
        i += 2;
    }
    let dev = Device::Cpu;
    let mut model = match (custom, which.as_str()) {
        (Some(c), _) => ImprovNetModel::random(&c, 1, &dev)?,
        (None, w) => match w {
            "small" => ImprovNetModel::random(&Config::small(), 1, &dev)?,
            "base" => ImprovNetModel::random(&Config::base(), 1, &dev)?,
            dir => ImprovNetModel::load(std::path::Path::new(dir), &dev)?,
        },
    };
    if let Some(dir) = &export {
        model.save(dir)?;
        let input = bench_input(spec.enc_tokens, spec.seed);
        std::fs::write(
            dir.join("input.json"),
            serde_json::to_string(&serde_json::json!({
                "enc_ids": input, "dec_tokens": spec.dec_tokens, "runs": spec.runs
            }))?,
        )?;
    }
    // As the command line does: each copy made, the f32 matrices it replaces are freed.
    if int8 {
        model.set_int8_decoder(true)?;
        model.keep_generation_weights()?;
        which.push_str(" (int8 decoder)");
    }
    if bf16 {
        anyhow::ensure!(
            model.set_bf16_encoder(true)?,
            "--bf16: no AVX-512 BF16 here"
        );
        which.push_str(" (bf16 encoder)");
    }
    model.keep_generation_weights()?;
    let r = bench_model(&model, &spec)?;
    println!("rust {which}: {r}");
    // What verifying a draft costs: one decoder forward over k tokens against one token
    // (speculative decoding), median of 30 after the encoder, at decoder position 100.
    let input = bench_input(spec.enc_tokens, spec.seed);
    let mut state = model.start_segment(&input)?;
    let w = DecoderWeights::lock(&model)?;
    let mut logits = vec![0.0f32; MAX_FEED * w.vocab];
    for t in 0..100u32 {
        state.step(&w, 1 + t % 2000, &mut logits[..w.vocab])?;
    }
    let mut one = 0.0;
    for k in [1, 2, 4, MAX_FEED] {
        let tokens: Vec<u32> = (0..k as u32).map(|t| 1 + t * 7).collect();
        let mut times = Vec::new();
        for _ in 0..30 {
            let t0 = std::time::Instant::now();
            state.feed(&w, &tokens, &mut logits[..k * w.vocab])?;
            times.push(t0.elapsed().as_secs_f64() * 1e3);
            state.rewind(100);
        }
        times.sort_by(f64::total_cmp);
        let ms = times[times.len() / 2];
        if k == 1 {
            one = ms;
        }
        println!("  feed {k} token(s): {ms:.3} ms ({:.2}x one)", ms / one);
    }
    // Candidates side by side: four lanes of 3 tokens in one forward against four forwards.
    state.reset_lanes(4, w.max_positions)?;
    let tokens = [1u32, 8, 15];
    let batch: Vec<(usize, &[u32])> = (0..4).map(|l| (l, &tokens[..])).collect();
    let mut logits = vec![0.0f32; 12 * w.vocab];
    let mut apart = Vec::new();
    let mut together = Vec::new();
    for _ in 0..30 {
        let t0 = std::time::Instant::now();
        for l in 0..4 {
            state.feed_lanes(&w, &batch[l..l + 1], &mut logits[..3 * w.vocab])?;
        }
        apart.push(t0.elapsed().as_secs_f64() * 1e3);
        let t0 = std::time::Instant::now();
        state.feed_lanes(&w, &batch, &mut logits)?;
        together.push(t0.elapsed().as_secs_f64() * 1e3);
        (0..4).for_each(|l| state.rewind_lane(l, 0));
    }
    apart.sort_by(f64::total_cmp);
    together.sort_by(f64::total_cmp);
    let (a, t) = (apart[15], together[15]);
    println!(
        "  4 lanes x 3 tokens: {t:.3} ms together, {a:.3} ms one lane after another ({:.2}x)",
        a / t
    );
    #[cfg(target_arch = "x86_64")]
    kernel_ab(w.hidden, w.ffn, w.vocab, input.len(), w.hidden / w.heads);
    Ok(())
}

/// The decoder's products of several rows, AVX2 kernel (one input per register) against the
/// AVX-512 one (two inputs per register, same sums), alternated, median of 200 each.
#[cfg(target_arch = "x86_64")]
fn kernel_ab(d: usize, f: usize, vocab: usize, enc: usize, dh: usize) {
    use improvnet::model::kernels::{avx, avx512, has_avx512};
    if !has_avx512() {
        return;
    }
    let shapes = [
        ("d x d", d, d, d),
        ("ffn up", f, d, d),
        ("ffn down", d, f, f),
        ("lm head", vocab, d, d),
        ("cross scores", enc, dh, d),
    ];
    for (name, m, n, xs) in shapes {
        let w: Vec<f32> = (0..m * n).map(|i| (i % 17) as f32 * 0.01).collect();
        for rows in [4, 12] {
            let x: Vec<f32> = (0..rows * xs).map(|i| (i % 13) as f32 * 0.1).collect();
            let mut y = vec![0.0f32; rows * m];
            let (mut a, mut b) = (Vec::new(), Vec::new());
            for _ in 0..200 {
                for (k, times) in [&mut a, &mut b].into_iter().enumerate() {
                    let t0 = Instant::now();
                    // SAFETY: AVX-512 checked above; `x` holds `rows` inputs `xs` apart and `y`
                    // `rows` outputs of `m`.
                    unsafe {
                        let (xp, yp) = (x.as_ptr(), y.as_mut_ptr());
                        match k {
                            0 => avx::matvec_rows(&w, n, None, xp, n, xs, rows, yp, m, m),
                            _ => avx512::matvec_rows(&w, n, None, xp, n, xs, rows, yp, m, m),
                        }
                    }
                    times.push(t0.elapsed().as_secs_f64() * 1e6);
                }
            }
            let (a, b) = (median(&mut a), median(&mut b));
            println!(
                "  {name:>12} {m}x{n}, {rows:>2} rows: AVX2 {a:.1} us, AVX-512 pairs {b:.1} us ({:.2}x)",
                a / b
            );
        }
    }
    // The element-wise kernels of the encoder: a block of 64 attention rows over `enc` keys
    // (softmax) and 64 rows of the feed-forward layer (GELU).
    let scores: Vec<f32> = (0..64 * enc).map(|i| (i % 101) as f32 * 0.05).collect();
    let hidden: Vec<f32> = (0..64 * f).map(|i| (i % 37) as f32 * 0.1 - 1.8).collect();
    for (name, data, row) in [("softmax", &scores, enc), ("gelu", &hidden, f)] {
        let (mut a, mut b) = (Vec::new(), Vec::new());
        for _ in 0..200 {
            for (k, times) in [&mut a, &mut b].into_iter().enumerate() {
                let mut x = data.clone();
                let t0 = Instant::now();
                for r in x.chunks_exact_mut(row) {
                    // SAFETY: AVX-512 (and so AVX2) checked above.
                    unsafe {
                        match (name, k) {
                            ("softmax", 0) => avx::softmax(r),
                            ("softmax", _) => avx512::softmax(r),
                            (_, 0) => avx::gelu(r),
                            _ => avx512::gelu(r),
                        }
                    }
                }
                times.push(t0.elapsed().as_secs_f64() * 1e6);
            }
        }
        let (a, b) = (median(&mut a), median(&mut b));
        println!(
            "  {name:>12} 64x{row}: AVX2 {a:.1} us, AVX-512 {b:.1} us ({:.2}x)",
            a / b
        );
    }
}

// ------------------------------------------------------------------------------------------------
// The per-segment benchmark: encoder over ~1000 tokens of context, the decoder generating a fixed
// number of tokens with `<E>` suppressed.

/// What to measure.
#[derive(Debug, Clone, Copy)]
struct BenchSpec {
    /// Encoder input length (5 + 5 segments of context around the segment: ~1000 tokens).
    enc_tokens: usize,
    /// Decoder tokens generated per segment (~100 notes = 300 tokens).
    dec_tokens: usize,
    /// Timed runs (after one warm-up run).
    runs: usize,
    seed: u64,
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
struct BenchReport {
    parameters: usize,
    enc_tokens: usize,
    dec_tokens: usize,
    runs: usize,
    /// Median wall time for one segment (encoder + decoding), ms.
    segment_ms: f64,
    /// Median encoder time (including cross-attention K/V), ms.
    encoder_ms: f64,
    /// Median decoding time, ms.
    decode_ms: f64,
    /// Decoder tokens per second (median decode time).
    decoder_tok_per_s: f64,
    /// Peak resident memory of this process so far (VmHWM), MB, when /proc is available.
    peak_rss_mb: Option<f64>,
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
fn bench_input(enc_tokens: usize, seed: u64) -> Vec<u32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..enc_tokens).map(|_| rng.gen_range(1..2300)).collect()
}

/// Peak resident set size (VmHWM) of this process, MB.
fn peak_rss_mb() -> Option<f64> {
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
fn bench_model(model: &ImprovNetModel, spec: &BenchSpec) -> anyhow::Result<BenchReport> {
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
