//! Scratch (not committed): where the copy is right and the model wrong on transposition.
use candle_core::{Device, D};
use improvnet::corrupt::CorruptionChoice;
use improvnet::model::ImprovNetModel;
use improvnet::tokens::{Corruption, Token, PAD};
use improvnet::train::heldout::copy_prediction;
use improvnet::train::loss::{inputs, trim};
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
    for (k, p) in pieces.iter().enumerate() {
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
            let pred: Vec<u32> = logits.squeeze(0)?.argmax(D::Minus1)?.to_vec1()?;
            let lp =
                candle_nn::ops::log_softmax(&logits.squeeze(0)?, D::Minus1)?.to_vec2::<f32>()?;
            let n = t.labels.iter().filter(|&&l| l != PAD).count();
            for (i, &label) in t.labels.iter().enumerate() {
                if label == PAD || copy.get(i) != Some(&label) || pred[i] == label {
                    continue;
                }
                println!(
                    "piece {k} {:?} enc {} dec {n} pos {i}: margin {:.2} label {:?} pred {:?} prev {:?} {:?}",
                    p.genre,
                    t.enc_len,
                    lp[i][label as usize] - lp[i][pred[i] as usize],
                    Token::from_id(label),
                    Token::from_id(pred[i]),
                    Token::from_id(t.labels[i.saturating_sub(2)]),
                    Token::from_id(t.labels[i.saturating_sub(1)]),
                );
            }
        }
    }
    Ok(())
}
