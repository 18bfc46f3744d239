//! `improvnet dataset build` and `improvnet dataset stats` end to end.
mod common;

use common::{data, improvnet};
use improvnet::tokens::Corruption;
use improvnet::train::export::exported_sample;
use improvnet::train::SampleConfig;
use std::path::{Path, PathBuf};

fn copy(name: &str, dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::copy(data(name), dir.join(name)).unwrap();
}

fn s(p: &Path) -> String {
    p.to_str().unwrap().to_string()
}

/// `improvnet dataset build` of `classical` and `jazz` fixture files (copied under `tmp`) into
/// `tmp/ds`, with `extra` flags: (success, stdout, stderr, the dataset folder).
fn build(
    tmp: &Path,
    classical: &[&str],
    jazz: &[&str],
    extra: &[&str],
) -> (bool, String, String, std::path::PathBuf) {
    let (c, j, out) = (tmp.join("c"), tmp.join("j"), tmp.join("ds"));
    classical.iter().for_each(|f| copy(f, &c));
    jazz.iter().for_each(|f| copy(f, &j));
    let (c, j, o) = (s(&c), s(&j), s(&out));
    let mut args = vec![
        "dataset",
        "build",
        "--genre",
        "classical",
        &c,
        "--genre",
        "jazz",
        &j,
        "--out",
        &o,
    ];
    args.extend_from_slice(extra);
    let (ok, stdout, stderr) = improvnet(&args);
    (ok, stdout, stderr, out)
}

#[test]
fn dataset_build_then_stats() {
    let tmp = tempfile::tempdir().unwrap();
    let (ok, stdout, stderr, out) = build(
        tmp.path(),
        &[
            "two_hands.mid",
            "chopin_nocturne_op15_1.mid",
            "truncated.mid",
        ],
        &["pedal.mid", "non_piano.mid"],
        &[],
    );
    let c = tmp.path().join("c");
    assert!(ok, "{stderr}");
    assert!(stdout.contains("3 files kept, 2 dropped"), "{stdout}");

    let (ok, stdout, stderr) = improvnet(&["dataset", "stats", &s(&out)]);
    assert!(ok, "{stderr}");
    let line = |prefix: &str| {
        stdout
            .lines()
            .find(|l| l.split_whitespace().take(2).collect::<Vec<_>>().join(" ") == prefix)
            .unwrap_or_else(|| panic!("no {prefix:?} line in\n{stdout}"))
            .split_whitespace()
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    assert_eq!(line("classical valid")[2], "1");
    assert_eq!(line("classical train")[2], "1");
    assert_eq!(line("jazz train")[2], "1");
    assert_eq!(line("total all")[2], "3");
    assert!(
        stdout.contains("dropped    2 (unreadable 1, non-piano 1)"),
        "{stdout}"
    );

    // Training samples for an outside trainer: the count asked for, atomically written.
    let samples = tmp.path().join("train.samples");
    let (ok, stdout, stderr) = improvnet(&[
        "dataset",
        "samples",
        &s(&out),
        "--count",
        "25",
        "--out",
        &s(&samples),
    ]);
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("25 samples from 2 train pieces"),
        "{stdout}"
    );
    let bytes = std::fs::read(&samples).unwrap();
    assert_eq!(
        improvnet::train::export::read_samples(&bytes)
            .unwrap()
            .len(),
        25
    );
    // The shipped recipe's sampling options reach the samples; out-of-range ones are refused.
    let shifted = tmp.path().join("shifted.samples");
    let (ok, _, stderr) = improvnet(&[
        "dataset",
        "samples",
        &s(&out),
        "--count",
        "25",
        "--corruption-weight",
        "incorrect_transposition=6",
        "--corruption-weight",
        "skyline=0",
        "--velocity-shift",
        "3",
        "--register-shift",
        "12",
        "--out",
        &s(&shifted),
    ]);
    assert!(ok, "{stderr}");
    // Exactly the samples the library draws with those options (the default seed, 444).
    let moved = improvnet::train::export::read_samples(&std::fs::read(&shifted).unwrap()).unwrap();
    let ds = improvnet::train::load(&out).unwrap();
    let pieces = ds.pieces(improvnet::train::Split::Train);
    let mut weights = [1.0; 9];
    weights[Corruption::IncorrectTransposition.index()] = 6.0;
    weights[Corruption::Skyline.index()] = 0.0;
    let shifts = SampleConfig {
        corruption_weights: Some(weights),
        max_velocity_shift: 3,
        max_register_shift: 12,
        ..SampleConfig::default()
    };
    let unshifted = SampleConfig {
        max_velocity_shift: 0,
        max_register_shift: 0,
        ..shifts
    };
    let draw = |c: &SampleConfig, i: u64| exported_sample(&pieces, c, 444, i);
    assert_eq!(moved, (0..25).map(|i| draw(&shifts, i)).collect::<Vec<_>>());
    assert!(moved.iter().all(|x| x.corruption != Corruption::Skyline));
    assert!(
        (0..25).any(|i| draw(&unshifted, i) != moved[i as usize]),
        "the shifts moved no window"
    );
    for (flag, value) in [
        ("--velocity-shift", "8"),
        ("--register-shift", "49"),
        ("--corruption-weight", "skyline=x"),
    ] {
        let (ok, _, stderr) = improvnet(&[
            "dataset",
            "samples",
            &s(&out),
            "--count",
            "5",
            flag,
            value,
            "--out",
            &s(&shifted),
        ]);
        assert!(!ok);
        assert!(stderr.contains(&format!("{flag} {value}")), "{stderr}");
    }

    let (ok, _, stderr) = improvnet(&[
        "dataset",
        "build",
        "--genre",
        "rock",
        &s(&c),
        "--out",
        &s(&out),
    ]);
    assert!(!ok);
    assert!(stderr.contains("rock"), "{stderr}");
    let (ok, _, stderr) = improvnet(&["dataset", "stats", &s(&tmp.path().join("nothing"))]);
    assert!(!ok);
    assert!(stderr.contains("manifest.json"), "{stderr}");

    // A corruption weight names one of the nine and a weight of 0 or more.
    for (pair, named) in [
        ("chorale=2", "chorale"),
        ("skyline=-1", "skyline=-1"),
        ("skyline", "NAME=W"),
    ] {
        let (ok, _, stderr) = improvnet(&[
            "train",
            "--data",
            &s(&out),
            "--steps",
            "1",
            "--corruption-weight",
            pair,
            "--out",
            &s(&tmp.path().join("run")),
        ]);
        assert!(!ok, "{pair}");
        assert!(stderr.contains(named), "{pair}: {stderr}");
    }
    assert!(!tmp.path().join("run").exists());
}

/// A small dataset (two pieces per genre, one for validation) and a tiny model config under
/// `tmp`: (dataset folder, config.json).
fn tiny_setup(tmp: &Path) -> (PathBuf, PathBuf) {
    use improvnet::model::{BertConfig, Config};
    let (ok, _, stderr, data) = build(
        tmp,
        &["two_hands.mid", "chopin_nocturne_op15_1.mid"],
        &["pedal.mid", "restrike.mid"],
        &["--valid", "1"],
    );
    assert!(ok, "{stderr}");
    let config = tmp.join("tiny.json");
    let tiny = Config::from_parts(
        BertConfig::sized(32, 1, 2, 64, 2048),
        BertConfig::sized(32, 1, 2, 64, 512),
    );
    std::fs::write(&config, tiny.to_json_string()).unwrap();
    (data, config)
}

/// A resumed run keeps its checkpoint cadence unless the resume says otherwise.
#[test]
fn train_then_resume_keeps_the_run_settings() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, config) = tiny_setup(tmp.path());
    let run = tmp.path().join("run");
    let (ok, _, stderr) = improvnet(&[
        "train",
        "--data",
        &s(&data),
        "--config",
        &s(&config),
        "--steps",
        "2",
        "--batch",
        "1",
        "--ckpt-every",
        "1",
        "--threads",
        "1",
        "--out",
        &s(&run),
    ]);
    assert!(ok, "{stderr}");
    let state = || -> serde_json::Value {
        let text = std::fs::read_to_string(run.join("checkpoint/trainer_state.json")).unwrap();
        serde_json::from_str(&text).unwrap()
    };
    assert_eq!(state()["step"], 2);
    let (ok, _, stderr) = improvnet(&[
        "train",
        "--resume",
        &s(&run.join("checkpoint")),
        "--steps",
        "3",
        "--threads",
        "1",
        "--out",
        &s(&run),
    ]);
    assert!(ok, "{stderr}");
    assert_eq!(state()["step"], 3);
    assert_eq!(state()["config"]["ckpt_every"], 1, "{}", state());
    assert_eq!(state()["config"]["batch"], 1);
    // A finetune from a folder with no model: the file and the reason, said once.
    let nowhere = tmp.path().join("nowhere");
    let (ok, _, stderr) = improvnet(&[
        "train",
        "--stage",
        "finetune",
        "--init",
        &s(&nowhere),
        "--data",
        &s(&data),
        "--out",
        &s(&tmp.path().join("run2")),
    ]);
    assert!(!ok);
    assert!(
        stderr.contains(&s(&nowhere.join("config.json"))),
        "{stderr}"
    );
    assert_eq!(stderr.matches("(os error 2)").count(), 1, "{stderr}");
}

/// `bench-train` times the steps `train` takes and writes the batches for the PyTorch side.
#[test]
fn bench_train_times_steps_and_dumps_the_batches() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, config) = tiny_setup(tmp.path());
    let dump = tmp.path().join("batches.json");
    let (ok, stdout, stderr) = improvnet(&[
        "bench-train",
        "--data",
        &s(&data),
        "--config",
        &s(&config),
        "--steps",
        "2",
        "--batch",
        "2",
        "--threads",
        "1",
        "--dump",
        &s(&dump),
    ]);
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("batch 2, 1 threads, 2 timed steps"),
        "{stdout}"
    );
    assert!(stdout.contains("ms/step"), "{stdout}");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&dump).unwrap()).unwrap();
    let batches = json["batches"].as_array().unwrap();
    assert_eq!(batches.len(), 2, "one per timed step");
    assert_eq!(batches[0]["batch"], 2);
    assert_eq!(json["config"]["encoder"]["hidden_size"], 32);
}
