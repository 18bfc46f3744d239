//! Model benchmark: one config per process (so the peak memory is that config's).
//!
//!     cargo run --release --example model_bench -- small [--runs 5] [--enc 1000] [--dec 300] [--export DIR]
//!     cargo run --release --example model_bench -- base
//!     cargo run --release --example model_bench -- path/to/model_dir
//!
//! `--size L,D,H,FFN` or `--size2 ENC_L,DEC_L,D,H,FFN` bench other shapes.
//!
//! `--export DIR` saves the random weights (HF layout) and `input.json` for
//! `scripts/bench_model_pytorch.py`.

use candle_core::Device;
use improvnet::model::bench::{bench_input, bench_model, BenchSpec};
use improvnet::model::fast::{DecoderWeights, MAX_FEED};
use improvnet::model::{BertConfig, Config, ImprovNetModel};
use std::path::PathBuf;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut spec = BenchSpec::default();
    let mut which = "small".to_string();
    let mut export: Option<PathBuf> = None;
    let mut custom: Option<Config> = None;
    let mut i = 0;
    while i < args.len() {
        let next = || args.get(i + 1).cloned().unwrap_or_default();
        match args[i].as_str() {
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
    let model = match (custom, which.as_str()) {
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
    Ok(())
}
