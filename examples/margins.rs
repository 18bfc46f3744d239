//! Scratch (not committed): label margins (log p(label) − best other) on held-out transposition.
use candle_core::{Device, D};
use improvnet::corrupt::CorruptionChoice;
use improvnet::model::ImprovNetModel;
use improvnet::tokens::{Corruption, PAD};
use improvnet::train::heldout::copy_prediction;
use improvnet::train::loss::{inputs, trim};
use improvnet::train::rules::piano_note;
use improvnet::train::sample::{training_sample, Batch, SampleConfig};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::path::Path;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let dev = Device::Cpu;
    let model = ImprovNetModel::load(Path::new(&args[1]), &dev)?;
    let data = improvnet::train::dataset::load(Path::new("data/cj-v1"))?;
    let pieces = data.pieces(improvnet::train::dataset::Split::Valid);
    let mut rng = ChaCha8Rng::seed_from_u64(42);
    let edges = [-3.0f32, -1.0, 0.0, 1.0, 3.0];
    let mut hist = [[0usize; 6]; 3];
    for p in pieces.iter() {
        for &c in Corruption::ALL.iter() {
            let cfg = SampleConfig {
                corruption: CorruptionChoice::Fixed(c),
                context: (1, 5),
                ..SampleConfig::default()
            };
            let s = training_sample(&p.piece, p.genre, &cfg, &mut rng);
            if c != Corruption::IncorrectTransposition {
                continue;
            }
            let copy = copy_prediction(&s.encoder_ids).unwrap_or_default();
            let t = trim(&Batch::from_samples(vec![s.clone()]), false);
            let (e, m, d) = inputs(&t, &dev)?;
            let logits = model.forward(&e, &m, &d)?;
            let lp =
                candle_nn::ops::log_softmax(&logits.squeeze(0)?, D::Minus1)?.to_vec2::<f32>()?;
            for (i, &label) in t.labels.iter().enumerate() {
                if label == PAD {
                    continue;
                }
                let row = &lp[i];
                let other = row
                    .iter()
                    .enumerate()
                    .filter(|&(k, _)| k != label as usize)
                    .map(|(_, &x)| x)
                    .fold(f32::NEG_INFINITY, f32::max);
                let margin = row[label as usize] - other;
                let kind = match (piano_note(label), copy.get(i).and_then(|&c| piano_note(c))) {
                    (Some(l), Some(c)) if l != c => 0,
                    (Some(_), Some(_)) => 1,
                    _ => 2,
                };
                let bin = edges.iter().filter(|&&e| margin >= e).count();
                hist[kind][bin] += 1;
            }
        }
    }
    println!("margin bins: <-3 | -3..-1 | -1..0 | 0..1 | 1..3 | >=3");
    for (k, name) in ["moved notes", "unmoved notes", "other tokens"]
        .iter()
        .enumerate()
    {
        println!("{name:14} {:?}", hist[k]);
    }
    Ok(())
}
