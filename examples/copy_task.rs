//! Diagnostic: can the seq2seq model learn to copy its encoder input through cross-attention?
//! `cargo run --release --example copy_task -- [steps] [lr] [hidden] [layers] [init_std] [context] [at_start] [sin_scale] [grow] [length] [batch] [align] [offset]`
use candle_core::{Device, Tensor};
use candle_nn::VarMap;
use improvnet::model::{bert::Train, BertConfig, Config, ImprovNetModel};
use improvnet::train::optim::{named_vars, AdamW, AdamWConfig};
use rand::{Rng, SeedableRng};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let steps: usize = args.get(1).map(|s| s.parse().unwrap()).unwrap_or(300);
    let lr: f64 = args.get(2).map(|s| s.parse().unwrap()).unwrap_or(1e-3);
    let d: usize = args.get(3).map(|s| s.parse().unwrap()).unwrap_or(64);
    let layers: usize = args.get(4).map(|s| s.parse().unwrap()).unwrap_or(1);
    let dev = Device::Cpu;
    let cfg = Config::from_parts(
        BertConfig::sized(d, layers, 4, 4 * d, 2048),
        BertConfig::sized(d, layers, 4, 4 * d, 512),
    );
    let vars = VarMap::new();
    let model = ImprovNetModel::trainable(&cfg, &vars, &dev)?;
    let std: f64 = args.get(5).map(|s| s.parse().unwrap()).unwrap_or(0.02);
    improvnet::train::init::init_bert(&vars, 1, std)?;
    // Optional: sinusoidal position tables (scaled), so relative offsets are linear maps.
    let sin_scale: f64 = args.get(8).map(|s| s.parse().unwrap()).unwrap_or(0.0);
    if sin_scale > 0.0 {
        for (name, var) in vars.data().lock().unwrap().iter() {
            if name.ends_with("position_embeddings.weight") {
                let (n, dim) = var.as_tensor().dims2()?;
                let mut v = vec![0f32; n * dim];
                for p in 0..n {
                    for i in 0..dim / 2 {
                        let f = (p as f64) / 10000f64.powf(2.0 * i as f64 / dim as f64);
                        v[p * dim + 2 * i] = (f.sin() * sin_scale) as f32;
                        v[p * dim + 2 * i + 1] = (f.cos() * sin_scale) as f32;
                    }
                }
                var.set(&Tensor::from_vec(v, (n, dim), &dev)?)?;
            }
        }
    }
    // Optional: an alignment-friendly start. Decoder position i starts equal to encoder position
    // i + offset, and every cross-attention's query and key start as `align` × identity, so step i
    // attends to encoder position i + offset from the first step on.
    let align: f64 = args.get(12).map(|s| s.parse().unwrap()).unwrap_or(0.0);
    let offset: usize = args.get(13).map(|s| s.parse().unwrap()).unwrap_or(0);
    if align > 0.0 {
        let data = vars.data().lock().unwrap();
        let enc_pos = data["encoder.embeddings.position_embeddings.weight"]
            .as_tensor()
            .clone();
        let dec_pos = &data["decoder.bert.embeddings.position_embeddings.weight"];
        let rows = dec_pos.as_tensor().dim(0)?;
        dec_pos.set(&enc_pos.narrow(0, offset, rows)?)?;
        let eye = (Tensor::eye(d, candle_core::DType::F32, &dev)? * align)?;
        for (name, var) in data.iter() {
            if name.contains("crossattention.self.query.weight")
                || name.contains("crossattention.self.key.weight")
            {
                var.set(&eye)?;
            }
        }
    }
    let mut opt = AdamW::new(named_vars(&vars), AdamWConfig::default())?;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
    let b: usize = args.get(11).map(|s| s.parse().unwrap()).unwrap_or(8);
    let n: usize = args.get(10).map(|s| s.parse().unwrap()).unwrap_or(24);
    // Context around the block, as in real samples: a random-length prefix and the rest as
    // suffix (same token range), the block between two separators.
    let context: usize = args.get(6).map(|s| s.parse().unwrap()).unwrap_or(0);
    let sep = improvnet::tokens::SEP;
    // Share of rows with the block first (no prefix): a curriculum that gives the decoder an
    // absolute alignment to find before it has to search for the block.
    let at_start: f64 = args.get(7).map(|s| s.parse().unwrap()).unwrap_or(0.0);
    let grow: usize = args.get(9).map(|s| s.parse().unwrap()).unwrap_or(0);
    for step in 0..steps {
        let mut enc: Vec<u32> = Vec::new();
        let mut dec: Vec<u32> = Vec::new();
        let mut lab: Vec<u32> = Vec::new();
        for _ in 0..b {
            let xs: Vec<u32> = (0..n).map(|_| rng.gen_range(10..60)).collect();
            if context > 0 {
                // A growing curriculum when `grow` > 0: prefixes up to step / grow tokens.
                let reach = step.checked_div(grow).map_or(context, |r| r.min(context));
                let r = if rng.gen_bool(at_start) {
                    0
                } else {
                    rng.gen_range(0..=reach)
                };
                enc.extend((0..r).map(|_| rng.gen_range(10u32..60)));
                enc.push(sep);
                enc.extend(&xs);
                enc.push(sep);
                enc.extend((0..context - r).map(|_| rng.gen_range(10u32..60)));
            } else {
                enc.extend(&xs);
            }
            dec.push(5u32);
            dec.extend(&xs[..n - 1]);
            lab.extend(&xs);
        }
        let width = enc.len() / b;
        let enc = Tensor::from_vec(enc, (b, width), &dev)?;
        let mask = Tensor::ones((b, width), candle_core::DType::U32, &dev)?;
        let dec = Tensor::from_vec(dec, (b, n), &dev)?;
        let labels = Tensor::from_vec(lab.clone(), b * n, &dev)?;
        let train = Train::new(step as u64, false);
        let logits = model.forward_t(&enc, &mask, &dec, &train)?;
        let flat = logits.reshape((b * n, ()))?;
        let loss = candle_nn::loss::cross_entropy(&flat, &labels)?;
        let pred = flat.argmax(1)?.to_vec1::<u32>()?;
        let acc = pred.iter().zip(&lab).filter(|(a, b)| a == b).count() as f64 / lab.len() as f64;
        let g = loss.backward()?;
        let warm = ((step + 1) as f64 / 30.0).min(1.0);
        let info = opt.step(&g, lr * warm, Some(3.0))?;
        if step % 20 == 0 || step + 1 == steps {
            println!(
                "step {step:4} loss {:.4} acc {acc:.3} gnorm {:.3}",
                loss.to_scalar::<f32>()?,
                info.grad_norm
            );
        }
    }
    Ok(())
}
