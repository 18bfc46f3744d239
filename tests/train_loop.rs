//! The training loops on a tiny model: the loss falls, an interrupted run resumed from its
//! checkpoint continues bit for bit, the checkpoint is a loadable HF model folder, and the genre
//! classifier trains.
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use candle_core::Device;
use improvnet::eval::heldout::{HeldOutConfig, HeldOutReport};
use improvnet::model::{BertConfig, Config, GenreClassifier, ImprovNetModel};
use improvnet::tokens::{Corruption, Genre};
use improvnet::train::classify::{ClassifierRun, ClassifierTrainConfig};
use improvnet::train::{self, BuildOptions, Dataset, Event, Finish, Source, TrainConfig, Trainer};

fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

/// Classical: three files (one held out); jazz: two files (one held out).
fn fixture() -> (tempfile::TempDir, Dataset) {
    let tmp = tempfile::tempdir().unwrap();
    let put = |genre: &str, name: &str| {
        let dir = tmp.path().join(genre);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::copy(data(name), dir.join(name)).unwrap();
    };
    for f in [
        "chopin_nocturne_op15_1.mid",
        "two_hands.mid",
        "tempo_changes.mid",
    ] {
        put("classical", f);
    }
    for f in ["pedal.mid", "restrike.mid"] {
        put("jazz", f);
    }
    let sources = vec![
        Source {
            genre: Genre::Classical,
            dirs: vec![tmp.path().join("classical")],
        },
        Source {
            genre: Genre::Jazz,
            dirs: vec![tmp.path().join("jazz")],
        },
    ];
    let options = BuildOptions {
        valid: Some(1),
        ..BuildOptions::default()
    };
    let ds = train::build(&sources, &options, &|_| {}).unwrap();
    assert!(ds.pieces(train::Split::Train).len() >= 2);
    (tmp, ds)
}

/// 1 + 1 layers, d 32, 2 heads.
fn tiny() -> Config {
    Config::from_parts(
        BertConfig::sized(32, 1, 2, 64, 2048),
        BertConfig::sized(32, 1, 2, 64, 512),
    )
}

/// A new run of the tiny model from scratch on `ds`, on the CPU.
fn tiny_run(ds: &Dataset, cfg: TrainConfig, out: &Path) -> Trainer {
    Trainer::new(&tiny(), None, ds, "fixture", cfg, out, &Device::Cpu).unwrap()
}

fn config(steps: u64) -> TrainConfig {
    TrainConfig {
        steps,
        batch: 2,
        lr: 3e-3,
        warmup_ratio: 0.1,
        max_context: 1,
        seed: 7,
        ..TrainConfig::default()
    }
}

#[test]
fn tiny_model_loss_falls() {
    let (tmp, ds) = fixture();
    let out = tmp.path().join("run");
    let cfg = TrainConfig {
        unigram_bias: false,
        ..config(40)
    };
    let mut t = tiny_run(&ds, cfg, &out);
    let losses: Vec<f64> = (0..40).map(|_| t.train_step().unwrap().loss).collect();
    let first = losses[..5].iter().sum::<f64>() / 5.0;
    let last = losses[35..].iter().sum::<f64>() / 5.0;
    // ln(2306) = 7.74 at the start; the token statistics alone are worth far more than 1 nat.
    assert!(first > 7.0, "{losses:?}");
    assert!(
        last < first - 1.0,
        "first {first:.3} last {last:.3}: {losses:?}"
    );
    let report = t.evaluate().unwrap();
    assert!(report.all.tokens > 0.0);
    assert!(report.all.loss() < first, "{}", report.all.loss());
    assert_eq!(report.per_corruption.len(), 9);
}

#[test]
fn from_scratch_the_output_bias_starts_at_the_label_log_frequencies() {
    let (tmp, ds) = fixture();
    for unigram_bias in [false, true] {
        let cfg = TrainConfig {
            unigram_bias,
            ..config(1)
        };
        let t = tiny_run(
            &ds,
            cfg.clone(),
            &tmp.path().join(format!("run-{unigram_bias}")),
        );
        let bias = output_bias(&t);
        if !unigram_bias {
            assert!(bias.iter().all(|&b| b == 0.0), "HF's zero bias");
            continue;
        }
        assert_eq!(bias, train::trainer::label_log_frequencies(&ds, &cfg, 2306));
        // Log-probabilities, add-one smoothed: padding (never a label) is the floor, and
        // `<S>`/`<E>` (once per sample) sit above it.
        let total: f64 = bias.iter().map(|&b| (b as f64).exp()).sum();
        assert!((total - 1.0).abs() < 1e-4, "{total}");
        let pad = bias[0];
        assert!(bias.iter().all(|&b| b >= pad));
        assert!(bias[improvnet::tokens::BOS as usize] > pad);
        assert!(bias[improvnet::tokens::EOS as usize] > pad);
        // The first loss is then near the labels' unigram entropy, far below ln(2306) = 7.74.
        let mut t = t;
        let first = t.train_step().unwrap().loss;
        assert!(first < 7.0, "{first}");
    }
}

fn output_bias(t: &Trainer) -> Vec<f32> {
    let vars = t.vars.data().lock().unwrap();
    let bias = vars.get(train::init::OUTPUT_BIAS).unwrap().as_tensor();
    bias.to_vec1().unwrap()
}

#[test]
fn a_pulled_output_bias_is_what_the_run_starts_from() {
    let (tmp, ds) = fixture();
    let cfg = TrainConfig {
        pull_output_bias: 1.0,
        ..config(1)
    };
    let t = tiny_run(&ds, cfg.clone(), tmp.path());
    let mut expected = train::trainer::label_log_frequencies(&ds, &cfg, 2306);
    let pad = expected[0];
    train::init::pull_to_field_means(&mut expected, 1.0);
    let bias = output_bias(&t);
    assert_eq!(bias, expected);
    // Pulled all the way, each field is flat; the specials keep their frequencies.
    let notes =
        &bias[improvnet::tokens::PIANO_BASE as usize..improvnet::tokens::ONSET_BASE as usize];
    assert!(
        notes.iter().all(|&b| (b - notes[0]).abs() < 1e-5),
        "{:?}",
        &notes[..4]
    );
    assert_eq!(bias[0], pad);
    let err = new_run_error(TrainConfig {
        pull_output_bias: 1.5,
        ..config(1)
    });
    assert!(err.contains("--pull-output-bias 1.5"), "{err}");
}

fn losses_of(log: &Path) -> Vec<(u64, String)> {
    std::fs::read_to_string(log)
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| {
            let cols: Vec<&str> = l.split(',').collect();
            (cols[0].parse().unwrap(), cols[2].to_string())
        })
        .collect()
}

#[test]
fn interrupted_run_resumes_bit_identically() {
    let (tmp, ds) = fixture();
    let steps = 6;
    let dev = Device::Cpu;

    let straight = tmp.path().join("straight");
    let mut a = tiny_run(&ds, config(steps), &straight);
    let never = AtomicBool::new(false);
    assert_eq!(a.run(&never, |_| {}).unwrap(), Finish::Done);
    // The loss curve, as a PNG and as an SVG.
    let png = std::fs::read(straight.join("loss.png")).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    assert!(std::fs::read_to_string(straight.join("loss.svg"))
        .unwrap()
        .contains("<polyline"));

    // The same run, stopped (as by Ctrl-C) after step 3, then resumed from its checkpoint.
    let cut = tmp.path().join("cut");
    let mut b = tiny_run(&ds, config(steps), &cut);
    let stop = AtomicBool::new(false);
    let finish = b
        .run(&stop, |ev| {
            if let Event::Step(s) = ev {
                if s.step == 3 {
                    stop.store(true, Ordering::SeqCst);
                }
            }
        })
        .unwrap();
    assert_eq!(finish, Finish::Interrupted);
    drop(b);
    let mut c = Trainer::resume(&cut, &ds, &cut, &dev).unwrap();
    assert_eq!(c.step, 3);
    assert_eq!(c.run(&never, |_| {}).unwrap(), Finish::Done);

    let expect = losses_of(&straight.join("train_log.csv"));
    let got = losses_of(&cut.join("train_log.csv"));
    assert_eq!(expect.len(), steps as usize);
    assert_eq!(
        got, expect,
        "resumed losses differ from the uninterrupted run"
    );

    // Final weights are identical too, and the checkpoint is a loadable HF model folder.
    let wa = std::fs::read(straight.join("final/model.safetensors")).unwrap();
    let wc = std::fs::read(cut.join("final/model.safetensors")).unwrap();
    assert!(wa == wc, "final weights differ");
    let m = ImprovNetModel::load(&cut.join("checkpoint"), &dev).unwrap();
    assert_eq!(m.num_parameters(), c.model.num_parameters());
    // Every tensor of HF's EncoderDecoderModel, the unused encoder pooler included.
    assert!(m
        .named_tensors()
        .iter()
        .any(|(n, _)| n == "encoder.pooler.dense.weight"));
    assert!(cut.join("checkpoint/optimizer.safetensors").is_file());
    assert!(cut.join("valid_log.csv").is_file());

    // A finished run extended on resume: same warmup, the decay stretched to the new end, and
    // the extension survives another checkpoint and resume.
    let warmup = c.schedule.warmup_steps;
    assert_eq!(c.schedule.lr(steps), 0.0);
    assert!(c.set_total_steps(steps).is_err());
    c.set_total_steps(2 * steps).unwrap();
    assert_eq!(c.schedule.warmup_steps, warmup);
    assert!(c.schedule.lr(steps) > 0.0);
    assert_eq!(c.train_step().unwrap().step, steps + 1);
    c.save_checkpoint(&cut.join("checkpoint")).unwrap();
    let d = Trainer::resume(&cut, &ds, &cut, &dev).unwrap();
    assert_eq!((d.step, d.config.steps), (steps + 1, 2 * steps));
    assert_eq!(d.schedule, c.schedule);
}

/// A run saved before six training experiments were removed (docs/experiments.md, "The six
/// removed experiments") has their settings in its trainer state: they are ignored, and the
/// run resumes with the rest.
#[test]
fn a_run_saved_with_the_removed_experiments_still_resumes() {
    let (tmp, ds) = fixture();
    let run = tmp.path().join("old");
    let mut a = tiny_run(&ds, config(2), &run);
    assert_eq!(
        a.run(&AtomicBool::new(false), |_| {}).unwrap(),
        Finish::Done
    );
    let path = run.join("checkpoint/trainer_state.json");
    let mut state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let removed = serde_json::json!({
        "block_first": 0.0,
        "transposition_teacher": null,
        "close_calls": 0.0,
        "repair_weight": 0.0,
        "repair_teacher": 0.0,
    });
    for (k, v) in removed.as_object().unwrap() {
        state["config"][k] = v.clone();
    }
    std::fs::write(&path, serde_json::to_string_pretty(&state).unwrap()).unwrap();
    let b = Trainer::resume(&run, &ds, &run, &Device::Cpu).unwrap();
    assert_eq!((b.step, &b.config), (2, &a.config));
}

#[test]
fn loss_on_padding_trains_on_all_512_positions() {
    let (tmp, ds) = fixture();
    let cfg = TrainConfig {
        loss_on_padding: true,
        micro_batch: 2,
        ..config(1)
    };
    let mut t = tiny_run(&ds, cfg, tmp.path());
    let s = t.train_step().unwrap();
    assert_eq!(s.dec_len, 512);
    assert!(s.loss.is_finite());
}

#[test]
fn classifier_trains_and_reports() {
    let (tmp, ds) = fixture();
    let mut cfg = GenreClassifier::base_config();
    cfg.hidden_size = 32;
    cfg.num_hidden_layers = 1;
    cfg.num_attention_heads = 2;
    cfg.intermediate_size = 64;
    assert_eq!(
        cfg.classifier_context(),
        2,
        "the original's windows by default"
    );
    // 5 s windows (no context), remembered in the saved config.
    cfg.window_context = Some(0);
    let run_cfg = ClassifierTrainConfig {
        epochs: 3,
        patience: 2,
        batch: 2,
        lr: 1e-3,
        valid_windows: 2,
        seed: 3,
        ..ClassifierTrainConfig::default()
    };
    let mut run = ClassifierRun::new(&cfg, &ds, run_cfg, &Device::Cpu).unwrap();
    let out = tmp.path().join("cls");
    let mut lines = Vec::new();
    let report = run
        .run(&out, &AtomicBool::new(false), |l| lines.push(l.to_string()))
        .unwrap();
    assert!(
        report.epochs_run >= 1 && report.best_epoch >= 1,
        "{lines:?}"
    );
    let total: usize = report.confusion.iter().flatten().sum();
    assert_eq!(total, report.windows);
    assert!(report.windows > 0);
    assert!(out.join("report.json").is_file());
    let loaded = GenreClassifier::load(&out.join("best"), &Device::Cpu).unwrap();
    assert_eq!(loaded.num_parameters(), run.model.num_parameters());
    assert_eq!(loaded.config().classifier_context(), 0);
    let json = std::fs::read_to_string(out.join("best/config.json")).unwrap();
    assert!(json.contains("\"improvnet_window_context\": 0"), "{json}");
}

/// The gradient path through the encoder and cross-attention works: a tiny model learns to copy
/// random token strings (unlearnable from the decoder's own prefix alone).
#[test]
fn tiny_model_learns_to_copy_through_cross_attention() {
    use candle_core::Tensor;
    use candle_nn::VarMap;
    use improvnet::model::{Train, BOS, EOS};
    use improvnet::train::optim::{named_vars, AdamW, AdamWConfig};
    use rand::{Rng, SeedableRng};

    let dev = Device::Cpu;
    let vars = VarMap::new();
    let model = ImprovNetModel::trainable(&tiny(), &vars, &dev).unwrap();
    improvnet::train::init::init_bert(&vars, 1, 0.02).unwrap();
    let mut opt = AdamW::new(named_vars(&vars), AdamWConfig::default()).unwrap();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
    let (b, n) = (16usize, 6usize);
    let batch = |rng: &mut rand_chacha::ChaCha8Rng| {
        let seqs: Vec<Vec<u32>> = (0..b)
            .map(|_| (0..n).map(|_| rng.gen_range(10..20)).collect())
            .collect();
        let enc: Vec<u32> = seqs.iter().flatten().copied().collect();
        let labels: Vec<u32> = seqs
            .iter()
            .flat_map(|s| std::iter::once(BOS).chain(s.iter().copied()).chain([EOS]))
            .collect();
        let dec: Vec<u32> = labels
            .chunks(n + 2)
            .flat_map(improvnet::train::loss::shift_right)
            .collect();
        (
            Tensor::from_vec(enc, (b, n), &dev).unwrap(),
            Tensor::from_vec(dec, (b, n + 2), &dev).unwrap(),
            Tensor::from_vec(labels, b * (n + 2), &dev).unwrap(),
        )
    };
    let train = Train::new(0, false);
    let mut acc = 0.0;
    let mut steps = 0;
    for step in 0..400 {
        steps = step;
        let (enc, dec, labels) = batch(&mut rng);
        let logits = model
            .forward_t(&enc, &enc.ones_like().unwrap(), &dec, &train)
            .unwrap()
            .reshape((b * (n + 2), vocab_size()))
            .unwrap();
        let loss = candle_nn::loss::cross_entropy(&logits, &labels).unwrap();
        let pred = logits.argmax(1).unwrap().to_vec1::<u32>().unwrap();
        let truth = labels.to_vec1::<u32>().unwrap();
        acc = pred.iter().zip(&truth).filter(|(p, t)| p == t).count() as f64 / truth.len() as f64;
        if acc > 0.95 {
            break;
        }
        let grads = loss.backward().unwrap();
        let lr = 3e-3 * ((step + 1) as f64 / 20.0).min(1.0);
        opt.step(&grads, lr, Some(3.0)).unwrap();
    }
    assert!(acc > 0.95, "copy accuracy {acc} after {steps} steps");
    eprintln!("copy accuracy {acc} after {steps} steps");
}

fn vocab_size() -> usize {
    improvnet::model::VOCAB
}

/// The held-out report: every corruption scored on every validation piece, the copy baseline
/// aligned token by token, and an untrained model losing to it.
#[test]
fn held_out_scores_against_the_baselines() {
    use improvnet::corrupt::CorruptionChoice;
    use improvnet::eval::heldout::{copy_score, score};
    use improvnet::tokens::{ONSET_BASE, PAD, PIANO_BASE};
    use improvnet::train::{training_sample, SampleConfig};
    use rand::SeedableRng;

    let (_tmp, ds) = fixture();
    // pitch_velocity_mask keeps every onset and duration token in place: the copy baseline gets
    // exactly the target's non-pitch tokens right (`<S>`, `<E>` and the time tokens).
    let piece = &ds.pieces(train::Split::Valid)[0];
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
    let cfg = SampleConfig {
        corruption: CorruptionChoice::Fixed(Corruption::PitchVelocityMask),
        ..SampleConfig::default()
    };
    let sample = training_sample(&piece.piece, piece.genre, &cfg, &mut rng);
    let labels: Vec<u32> = sample
        .labels
        .iter()
        .copied()
        .filter(|&t| t != PAD)
        .collect();
    let pitch = labels
        .iter()
        .filter(|&&t| (PIANO_BASE..ONSET_BASE).contains(&t))
        .count();
    assert!(pitch > 0);
    assert_eq!(
        copy_score(&sample),
        ((labels.len() - pitch) as f64, labels.len() as f64)
    );

    let model = ImprovNetModel::random(&tiny(), 5, &Device::Cpu).unwrap();
    let held_out = HeldOutConfig {
        max_context: 1,
        infill_per_piece: 1,
        infill_context: 1,
        ..HeldOutConfig::default()
    };
    let report = score(&model, &ds, &held_out, &Device::Cpu, &|_| {}).unwrap();
    let valid = ds.pieces(train::Split::Valid);
    assert_eq!(report.pieces, valid.len());
    assert_eq!(report.per_corruption.len(), 9);
    for c in &report.per_corruption {
        assert_eq!(c.model.samples, valid.len(), "{:?}", c.corruption);
        assert!(
            c.model.loss() > 5.0,
            "an untrained model: {}",
            c.model.loss()
        );
    }
    let with_gap = valid.iter().filter(|p| p.piece.segments.len() >= 3).count();
    assert_eq!(report.infill.segments, with_gap);
    assert!(report.infill.model_kl.is_finite() && report.infill.previous_kl.is_finite());
    assert!(report
        .copy_losses()
        .contains(&Corruption::PitchVelocityMask));
    let md = report.markdown();
    assert!(md.contains("| pitch_velocity_mask | "), "{md}");
    // The ledger accounts for the whole difference between the model and the copy.
    for c in report.per_corruption.iter().filter(|c| c.keeps_tokens()) {
        assert_eq!(
            c.ledger.net(),
            c.model.correct - c.copy.correct,
            "{:?}",
            c.corruption
        );
        // Close calls are a subset: narrow keeps of what both get right, near repairs of what
        // both miss.
        let l = &c.ledger;
        assert!(l.narrow_keeps <= c.copy.correct - l.notes_lost - l.other_lost);
        let both_miss = c.model.tokens - c.copy.correct - l.notes_repaired - l.other_found;
        assert!(l.near_repairs <= both_miss);
    }
    assert!(md.contains("| notes lost | notes repaired |"), "{md}");
    assert!(md.contains("| near repairs | narrow keeps |"), "{md}");
    // The kept-notes tables count exactly the notes the copy gets right, once by loudness and
    // once by octave.
    let copied: f64 = report
        .per_corruption
        .iter()
        .filter(|c| c.keeps_tokens())
        .map(|c| c.by_field[0].copy_correct)
        .sum();
    assert!(copied > 0.0);
    let notes = |cells: &[(f64, f64)]| cells.iter().map(|c| c.0).sum::<f64>();
    assert_eq!(notes(&report.kept.by_velocity), copied);
    assert_eq!(notes(&report.kept.by_octave), copied);
    assert!(
        md.contains("| velocity |") && md.contains("| pitches |"),
        "{md}"
    );
    // A model that samples differently (the copy circuit stops at the block's end) is scored on
    // the same infill segments: the baseline does not move.
    let circuit = Trainer::new(
        &circuit_sized(),
        None,
        &ds,
        "fixture",
        TrainConfig {
            copy_circuit: true,
            ..config(1)
        },
        &_tmp.path().join("circuit"),
        &Device::Cpu,
    )
    .unwrap();
    let held_out = HeldOutConfig {
        infill_per_piece: 4,
        ..held_out
    };
    let report = score(&model, &ds, &held_out, &Device::Cpu, &|_| {}).unwrap();
    let again = score(&circuit.model, &ds, &held_out, &Device::Cpu, &|_| {}).unwrap();
    assert_ne!(again.infill.model_notes, report.infill.model_notes);
    assert_eq!(again.infill.previous_kl, report.infill.previous_kl);
    assert_eq!(again.infill.original_notes, report.infill.original_notes);
}

/// The held-out token scores of one seeded random tiny model (no infills, one context segment
/// each side), with `change` applied to that configuration.
fn quick_scores(ds: &Dataset, change: impl FnOnce(&mut HeldOutConfig)) -> HeldOutReport {
    let model = ImprovNetModel::random(&tiny(), 5, &Device::Cpu).unwrap();
    let mut cfg = HeldOutConfig {
        max_context: 1,
        infill_per_piece: 0,
        ..HeldOutConfig::default()
    };
    change(&mut cfg);
    improvnet::eval::heldout::score(&model, ds, &cfg, &Device::Cpu, &|_| {}).unwrap()
}

#[test]
fn more_draws_score_more_windows() {
    let (_tmp, ds) = fixture();
    let one = quick_scores(&ds, |_| {});
    let three = quick_scores(&ds, |c| c.draws = 3);
    let valid = ds.pieces(train::Split::Valid).len();
    for (a, b) in one.per_corruption.iter().zip(&three.per_corruption) {
        assert_eq!((a.model.samples, b.model.samples), (valid, 3 * valid));
        assert!(b.copy.tokens > a.copy.tokens, "{:?}", a.corruption);
        assert_eq!(b.ledger.net(), b.model.correct - b.copy.correct);
    }
}

#[test]
fn validation_measures_how_much_the_decoder_reads_its_encoder() {
    let (tmp, ds) = fixture();
    let t = tiny_run(&ds, config(1), &tmp.path().join("run"));
    // A random model's decoder reads its (random) encoder: another sample's input changes the loss.
    let gap = t
        .evaluate()
        .unwrap()
        .encoder_gap
        .expect("2+ validation samples");
    assert!(gap.is_finite() && gap.abs() > 1e-6, "gap {gap}");

    // Cross-attention that outputs nothing: the encoder cannot matter, and the gap is 0.
    {
        let vars = t.vars.data().lock().unwrap();
        for (name, var) in vars.iter() {
            if name.contains("crossattention.output.dense.") {
                var.set(&var.as_tensor().zeros_like().unwrap()).unwrap();
            }
        }
    }
    let report = t.evaluate().unwrap();
    let gap = report.encoder_gap.unwrap();
    assert!(
        gap.abs() < 1e-9,
        "gap {gap} with cross-attention switched off"
    );
    assert!(report.all.tokens > 0.0);
}

#[test]
fn a_log_from_before_a_new_column_is_padded_not_mixed() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("valid_log.csv");
    std::fs::write(&path, "step,loss\n100,5.0\n200,4.5\n300,4.0\n").unwrap();
    let mut log = train::trainer::CsvLog::open(&path, "step,loss,encoder_gap", 200).unwrap();
    log.row("300,4.1,0.2").unwrap();
    drop(log);
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        "step,loss,encoder_gap\n100,5.0,\n200,4.5,\n300,4.1,0.2\n"
    );
    // The same header again: rows past the resumed step dropped, nothing padded.
    let log = train::trainer::CsvLog::open(&path, "step,loss,encoder_gap", 100).unwrap();
    drop(log);
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        "step,loss,encoder_gap\n100,5.0,\n"
    );
}

/// 2 + 1 layers, d 96, 4 heads: room for the copy circuit's five 18-dimensional subspaces.
fn circuit_sized() -> Config {
    Config::from_parts(
        BertConfig::sized(96, 2, 4, 192, 2048),
        BertConfig::sized(96, 1, 4, 192, 512),
    )
}

/// Validation of a `circuit_sized` model before any training.
fn initial_report(ds: &Dataset, out: &Path, copy_circuit: bool, align: bool) -> train::EvalReport {
    let t = Trainer::new(
        &circuit_sized(),
        None,
        ds,
        "fixture",
        TrainConfig {
            copy_circuit,
            align_positions: align,
            max_context: 5,
            ..config(1)
        },
        out,
        &Device::Cpu,
    )
    .unwrap();
    t.evaluate().unwrap()
}

/// Token accuracy of one corruption in `r`.
fn acc(r: &train::EvalReport, name: &str) -> f64 {
    r.per_corruption
        .iter()
        .find(|(c, _)| c.name() == name)
        .unwrap()
        .1
        .accuracy()
}

#[test]
fn the_copy_circuit_copies_before_any_training() {
    let (tmp, ds) = fixture();
    let random = initial_report(&ds, &tmp.path().join("random"), false, false);
    let circuit = initial_report(&ds, &tmp.path().join("circuit"), true, false);
    eprintln!(
        "random {:.3} circuit {:.3} gap {:?}",
        random.all.accuracy(),
        circuit.all.accuracy(),
        circuit.encoder_gap
    );
    assert!(random.all.accuracy() < 0.05, "{}", random.all.accuracy());
    assert!(circuit.all.accuracy() > 0.2, "{}", circuit.all.accuracy());
    // Where the block keeps most tokens in place, most of the target is copied.
    assert!(acc(&circuit, "incorrect_transposition") > 0.5);
    assert!(acc(&circuit, "permute_pitches") > 0.3);
    // And the decoder reads its encoder: another sample's input costs nats per token.
    assert!(circuit.encoder_gap.unwrap() > 1.0);
}

/// The alignment prior finds the block's place by position where content matching loses it:
/// moved pitches (transposition, permutations) keep their onset and duration tokens in place.
#[test]
fn the_alignment_prior_copies_length_keeping_blocks_in_place() {
    let (tmp, ds) = fixture();
    let content = initial_report(&ds, &tmp.path().join("content"), true, false);
    let aligned = initial_report(&ds, &tmp.path().join("aligned"), true, true);
    for name in [
        "incorrect_transposition",
        "permute_pitches",
        "permute_pitch_velocity",
        "pitch_velocity_mask",
    ] {
        eprintln!(
            "{name}: content {:.3} aligned {:.3}",
            acc(&content, name),
            acc(&aligned, name)
        );
        assert!(
            acc(&aligned, name) > acc(&content, name) + 0.03,
            "{name}: {} vs {}",
            acc(&aligned, name),
            acc(&content, name)
        );
    }
    assert!(aligned.all.accuracy() > content.all.accuracy());
}

/// The error `Trainer::new` gives for `cfg` on a `circuit_sized` model.
fn new_run_error(cfg: TrainConfig) -> String {
    let (tmp, ds) = fixture();
    let t = Trainer::new(
        &circuit_sized(),
        None,
        &ds,
        "fixture",
        cfg,
        &tmp.path().join("run"),
        &Device::Cpu,
    );
    t.err().expect("a config error").to_string()
}

#[test]
fn the_alignment_prior_needs_the_copy_circuit() {
    let err = new_run_error(TrainConfig {
        align_positions: true,
        ..config(1)
    });
    assert!(err.contains("add --copy-circuit"), "{err}");
    let err = new_run_error(TrainConfig {
        pitch_codes: true,
        ..config(1)
    });
    assert!(err.contains("--pitch-codes"), "{err}");
    let err = new_run_error(TrainConfig {
        velocity_codes: true,
        ..config(1)
    });
    assert!(err.contains("--velocity-codes shapes"), "{err}");
}

#[test]
fn the_copy_circuit_says_which_models_it_cannot_fit() {
    let (tmp, ds) = fixture();
    let err = Trainer::new(
        &tiny(),
        None,
        &ds,
        "fixture",
        TrainConfig {
            copy_circuit: true,
            ..config(1)
        },
        &tmp.path().join("run"),
        &Device::Cpu,
    )
    .err()
    .expect("2 heads cannot hold the circuit");
    assert!(
        err.to_string().contains("--copy-circuit needs 3+ heads"),
        "{err}"
    );
}

#[test]
fn zero_steps_write_and_validate_the_initial_weights() {
    let (tmp, ds) = fixture();
    let out = tmp.path().join("run");
    let cfg = TrainConfig {
        copy_circuit: true,
        ..config(0)
    };
    let mut t = Trainer::new(
        &circuit_sized(),
        None,
        &ds,
        "fixture",
        cfg,
        &out,
        &Device::Cpu,
    )
    .unwrap();
    let at_init = t.evaluate().unwrap();
    let never = AtomicBool::new(false);
    assert_eq!(t.run(&never, |_| {}).unwrap(), Finish::Done);
    assert_eq!(t.step, 0);
    let log = std::fs::read_to_string(out.join("valid_log.csv")).unwrap();
    let row: Vec<&str> = log
        .lines()
        .nth(1)
        .expect("a validation row")
        .split(',')
        .collect();
    assert_eq!(row[0], "0");
    let logged: f64 = row[2].parse().unwrap();
    assert!((logged - at_init.all.accuracy()).abs() < 1e-6, "{log}");
    // `final` holds exactly the initial weights: loaded back, it scores the same.
    let m = ImprovNetModel::load(&out.join("final"), &Device::Cpu).unwrap();
    assert_eq!(m.num_parameters(), t.model.num_parameters());
    let t2 = Trainer::new(
        &circuit_sized(),
        Some(&out.join("final")),
        &ds,
        "fixture",
        config(1),
        &tmp.path().join("run2"),
        &Device::Cpu,
    )
    .unwrap();
    let again = t2.evaluate().unwrap();
    assert!((again.all.loss() - at_init.all.loss()).abs() < 1e-4);
}

/// Asserts that `changed` differs from `plain` in the updates only: over a tiny run's first
/// three steps both log the same loss at step 1 (same batches and weights, and the logged loss
/// is the labels' cross-entropy whatever the option), and `changed` has moved other weights by
/// step 3 (the warmup's learning rate is 0 at step 1, so step 2's update is the first).
fn assert_changes_only_the_updates(
    ds: &Dataset,
    dir: &Path,
    plain: TrainConfig,
    changed: TrainConfig,
) {
    let losses = |cfg: TrainConfig, name: &str| -> Vec<f64> {
        let mut t = tiny_run(ds, cfg, &dir.join(name));
        (0..3).map(|_| t.train_step().unwrap().loss).collect()
    };
    let (a, b) = (losses(plain, "plain"), losses(changed, "changed"));
    assert_eq!(a[0], b[0], "the logged loss at step 1");
    assert_ne!(a[2], b[2], "the loss at step 3");
}

#[test]
fn the_rule_teacher_changes_the_updates_not_the_logged_loss() {
    let (tmp, ds) = fixture();
    // Only the corruptions a rule speaks for: the permutations and transposition.
    let plain = TrainConfig {
        corruption_weights: Some([0.0, 0.0, 0.0, 1.0, 1.0, 0.0, 1.0, 0.0, 0.0]),
        ..config(3)
    };
    let taught = TrainConfig {
        rule_teacher: 0.5,
        ..plain.clone()
    };
    assert_changes_only_the_updates(&ds, tmp.path(), plain, taught);
    let err = new_run_error(TrainConfig {
        rule_teacher: 1.5,
        ..config(1)
    });
    assert!(err.contains("--rule-teacher 1.5"), "{err}");
}

#[test]
fn the_shifts_reach_the_training_samples_and_bad_ones_are_refused() {
    let cfg = TrainConfig {
        velocity_shift: 3,
        register_shift: 12,
        ..config(1)
    };
    let sampling = cfg.training_sample_config();
    assert_eq!(
        (sampling.max_velocity_shift, sampling.max_register_shift),
        (3, 12)
    );
    // Validation and scoring stay the original's.
    let plain = cfg.sample_config();
    assert_eq!((plain.max_velocity_shift, plain.max_register_shift), (0, 0));
    for (bad, flag) in [
        (
            TrainConfig {
                register_shift: 49,
                ..config(1)
            },
            "--register-shift 49",
        ),
        (
            TrainConfig {
                velocity_shift: 8,
                ..config(1)
            },
            "--velocity-shift 8",
        ),
    ] {
        let err = new_run_error(bad);
        assert!(err.contains(flag), "{err}");
    }
}
