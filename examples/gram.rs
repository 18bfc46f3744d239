//! Scratch (not committed): raw vs grammar-masked argmax accuracy vs copy, per corruption.
use candle_core::{Device, D};
use improvnet::corrupt::CorruptionChoice;
use improvnet::model::ImprovNetModel;
use improvnet::tokens::{Corruption, BOS, DUR_BASE, EOS, GENRE_BASE, ONSET_BASE, PAD, T_SEP};
use improvnet::train::heldout::copy_prediction;
use improvnet::train::loss::{inputs, trim};
use improvnet::train::sample::{training_sample, Batch, SampleConfig};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::path::Path;

fn allowed(prev: Option<u32>, t: u32) -> bool {
    let onset = (ONSET_BASE..DUR_BASE).contains(&t);
    let dur = (DUR_BASE..GENRE_BASE).contains(&t);
    let pv = (1..ONSET_BASE).contains(&t);
    match prev {
        None => t == BOS,
        Some(BOS) | Some(T_SEP) => onset || t == EOS || t == T_SEP,
        Some(p) if (1..ONSET_BASE).contains(&p) => onset || t == EOS || t == T_SEP,
        Some(p) if (ONSET_BASE..DUR_BASE).contains(&p) => dur,
        Some(p) if (DUR_BASE..GENRE_BASE).contains(&p) => pv,
        _ => true,
    }
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let dev = Device::Cpu;
    let model = ImprovNetModel::load(Path::new(&args[1]), &dev)?;
    let data = improvnet::train::dataset::load(Path::new("data/cj-v1"))?;
    let pieces = data.pieces(improvnet::train::dataset::Split::Valid);
    let seed: u64 = args.get(2).map(|x| x.parse().unwrap()).unwrap_or(42);
    let reps: usize = args.get(3).map(|x| x.parse().unwrap()).unwrap_or(1);
    let only: bool = args.get(4).is_some();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut tot = [[0f64; 4]; 9];
    let mut viol = [0usize; 9];
    let mut hyb = [0f64; 9];
    let mut fires = [0usize; 9];
    let mut follow = [0usize; 9];
    let mut fire_ok = [0usize; 9];
    let mut rul = [0f64; 9];
    for _ in 0..reps {
        for p in pieces.iter() {
            for &c in Corruption::ALL.iter() {
                let cfg = SampleConfig {
                    corruption: CorruptionChoice::Fixed(c),
                    context: (1, 5),
                    ..SampleConfig::default()
                };
                let s = training_sample(&p.piece, p.genre, &cfg, &mut rng);
                if only && c != Corruption::IncorrectTransposition {
                    continue;
                }
                let copy = copy_prediction(&s.encoder_ids).unwrap_or_default();
                let t = trim(&Batch::from_samples(vec![s.clone()]), false);
                let (e, m, d) = inputs(&t, &dev)?;
                let logits = model.forward(&e, &m, &d)?;
                let lg = logits.squeeze(0)?.to_vec2::<f32>()?;
                let pred: Vec<u32> = logits.squeeze(0)?.argmax(D::Minus1)?.to_vec1()?;
                let ci = c.index();
                let rule = improvnet::train::rules::rule_prediction(&s.encoder_ids, &t.labels, c);
                for (i, &label) in t.labels.iter().enumerate() {
                    if label == PAD {
                        continue;
                    }
                    let prev = if i == 0 { None } else { Some(t.labels[i - 1]) };
                    let mut best = 0u32;
                    let mut bv = f32::NEG_INFINITY;
                    for (k, &v) in lg[i].iter().enumerate() {
                        if allowed(prev, k as u32) && v > bv {
                            bv = v;
                            best = k as u32;
                        }
                    }
                    if !allowed(prev, pred[i]) {
                        viol[ci] += 1;
                    }
                    tot[ci][0] += 1.0;
                    tot[ci][1] += (pred[i] == label) as u8 as f64;
                    tot[ci][2] += (best == label) as u8 as f64;
                    if let Some(r) = &rule {
                        let fire = r.get(i) != copy.get(i);
                        if fire {
                            fires[ci] += 1;
                            follow[ci] += (pred[i] == r[i]) as usize;
                            fire_ok[ci] += (pred[i] == label) as usize;
                        }
                        let h = if fire { r[i] } else { pred[i] };
                        hyb[ci] += (h == label) as u8 as f64;
                        rul[ci] += (r.get(i) == Some(&label)) as u8 as f64;
                    }
                    tot[ci][3] += (copy.get(i) == Some(&label)) as u8 as f64;
                }
            }
        }
    }
    for c in Corruption::ALL {
        let t = tot[c.index()];
        println!("{:28} n {:6} raw {:.4} ({:5}) gram {:.4} ({:5}) copy {:.4} ({:5}) viol {} hyb {} rule {} fires {} model=rule {} model ok at fires {}",
            c.name(), t[0], t[1]/t[0], t[1], t[2]/t[0], t[2], t[3]/t[0], t[3], viol[c.index()], hyb[c.index()], rul[c.index()], fires[c.index()], follow[c.index()], fire_ok[c.index()]);
    }
    Ok(())
}
