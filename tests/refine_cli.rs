//! `improvnet improvise | harmonize | continue | infill` and `eval --classifier` end to end, with
//! a tiny random model saved the way a trained one ships.
mod common;
mod refine_common;

use std::path::{Path, PathBuf};

use candle_core::Device;
use common::{data, improvnet};
use improvnet::model::seq2seq::RandomInit;
use improvnet::model::{BertConfig, GenreClassifier};
use improvnet::music::{read_midi, write_midi, Note, Piece};
use refine_common::{by_window, melody, nocturne, render_wav, save_tiny_model};

struct Setup {
    _dir: tempfile::TempDir,
    root: PathBuf,
    model: String,
}

impl Setup {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        save_tiny_model(&root.join("model"), 9);
        let model = root.join("model").display().to_string();
        Self {
            _dir: dir,
            root,
            model,
        }
    }

    /// Writes a piece as a MIDI input file.
    fn input(&self, name: &str, piece: &Piece) -> String {
        let path = self.root.join(name);
        write_midi(piece, &path).unwrap();
        path.display().to_string()
    }

    fn out(&self, name: &str) -> String {
        self.root.join(name).display().to_string()
    }
}

fn read(path: impl AsRef<Path>) -> Piece {
    Piece::from_played(&read_midi(path.as_ref()).unwrap().notes)
}

/// Same notes, except that a kept note may end earlier in the file when a rewritten neighbour
/// strikes its key again (the MIDI writer ends a held note at a restrike).
fn same_notes(kept: &[Note], original: &[Note]) -> bool {
    kept.len() == original.len()
        && kept.iter().zip(original).all(|(a, b)| {
            (a.pitch, a.velocity, a.onset_ms) == (b.pitch, b.velocity, b.onset_ms)
                && a.dur_ms <= b.dur_ms
        })
}

fn run_ok(args: &[&str]) -> String {
    let (ok, stdout, stderr) = improvnet(args);
    assert!(ok, "{args:?}\n{stderr}");
    stdout
}

fn run_err(args: &[&str]) -> String {
    let (ok, _, stderr) = improvnet(args);
    assert!(!ok, "{args:?} should fail");
    assert!(!stderr.contains("panicked"), "{stderr}");
    stderr
}

#[test]
fn improvise_writes_the_original_every_pass_and_the_result_reproducibly() {
    let s = Setup::new();
    let input = s.input("noct.mid", &nocturne(10));
    let run = |out: &str| {
        run_ok(&[
            "improvise",
            &input,
            "--model",
            &s.model,
            "--out",
            out,
            "--passes",
            "2",
            "--max-tokens",
            "31",
            "--seed",
            "3",
            "--to",
            "jazz",
            // 31 tokens leave a strict template no room to sample: free shows the seed.
            "--fidelity",
            "free",
            "--quiet",
        ])
    };
    let (a, b) = (s.out("a"), s.out("b"));
    let stdout = run(&a);
    assert!(stdout.contains("2 passes"), "{stdout}");
    run(&b);
    for file in [
        "original_noct.mid",
        "generated_noct.mid",
        "pass_1/generated_noct.mid",
        "pass_2/generated_noct.mid",
    ] {
        let x = std::fs::read(Path::new(&a).join(file)).unwrap();
        let y = std::fs::read(Path::new(&b).join(file)).unwrap();
        assert!(x == y, "{file} differs between two runs with the same seed");
    }
    // No temporary files left behind by the atomic writes.
    let leftovers: Vec<_> = std::fs::read_dir(&a)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    let original = by_window(&read(Path::new(&a).join("original_noct.mid")));
    let generated = by_window(&read(Path::new(&a).join("generated_noct.mid")));
    assert!(
        original == by_window(&read(&input)),
        "original_ is the input as read (quantized)"
    );
    // First two segments (t_segment_start 2) and the last (end_original) stay note for note.
    for w in [0, 1, 9] {
        assert!(same_notes(&generated[&w], &original[&w]), "window {w}");
    }
    // Pass 1 is skyline at rate 1: the segments in between are rewritten.
    let changed = (2..9)
        .filter(|w| generated.get(w) != original.get(w))
        .count();
    assert!(changed >= 6, "{changed} of 7 changed");
    // Within the original's length.
    assert!(generated.keys().all(|w| *w <= 9));

    let c = s.out("c");
    run_ok(&[
        "improvise",
        &input,
        "--model",
        &s.model,
        "--out",
        &c,
        "--passes",
        "2",
        "--max-tokens",
        "31",
        "--seed",
        "4",
        "--fidelity",
        "free",
        "--quiet",
        "--write-passes",
        "false",
    ]);
    assert!(!Path::new(&c).join("pass_1").exists());
    assert_ne!(
        std::fs::read(Path::new(&a).join("generated_noct.mid")).unwrap(),
        std::fs::read(Path::new(&c).join("generated_noct.mid")).unwrap()
    );
}

#[test]
fn improvise_with_a_config_and_flags_over_it() {
    let s = Setup::new();
    let input = s.input("noct.mid", &nocturne(8));
    let cfg = s.root.join("r.yaml");
    std::fs::write(
        &cfg,
        "generation:\n  convert_to: classical\n  t_segment_start: 3\n  end_original: False\n  \
         novel_peaks_pct: 0\n  write_intermediate_passes: False\n  colour: blue\n  passes:\n    \
         pass_1:\n      corruption_rate: 1.0\n      corruption_type: whole_mask\n",
    )
    .unwrap();
    let out = s.out("o");
    let (ok, stdout, stderr) = improvnet(&[
        "improvise",
        &input,
        "--config",
        cfg.to_str().unwrap(),
        "--model",
        &s.model,
        "--out",
        &out,
        "--max-tokens",
        "31",
        "--start",
        "2",
        "-q",
    ]);
    assert!(ok, "{stderr}");
    assert!(
        stderr.contains("unknown key `generation.colour`"),
        "{stderr}"
    );
    assert!(stdout.contains("6 segments rewritten"), "{stdout}");
    let original = by_window(&read(Path::new(&out).join("original_noct.mid")));
    let generated = by_window(&read(Path::new(&out).join("generated_noct.mid")));
    for w in [0, 1] {
        assert!(same_notes(&generated[&w], &original[&w]), "window {w}");
    }
    // --start 2 overrode the config's 3; end_original False: the last one is rewritten too.
    assert_ne!(generated.get(&2), original.get(&2));
    assert_ne!(generated.get(&7), original.get(&7));
}

#[test]
fn harmonize_a_melody_and_reject_chords() {
    let s = Setup::new();
    let tune = s.input("tune.mid", &melody(20));
    let out = s.out("h");
    run_ok(&[
        "harmonize",
        &tune,
        "--model",
        &s.model,
        "--out",
        &out,
        "--passes",
        "2",
        "--max-tokens",
        "31",
        "--to",
        "jazz",
        "-q",
    ]);
    assert!(Path::new(&out).join("pass_2/generated_tune.mid").is_file());
    let generated = read(Path::new(&out).join("generated_tune.mid"));
    assert!(generated.segments.iter().all(|seg| seg.window < 4));

    let chords = s.input("chords.mid", &nocturne(4));
    let err = run_err(&["harmonize", &chords, "--model", &s.model, "--out", &out]);
    assert!(
        err.contains("chords.mid") && err.contains("monophonic"),
        "{err}"
    );
}

#[test]
fn continue_grows_the_prompt() {
    let s = Setup::new();
    let prompt = s.input("prompt.mid", &nocturne(6));
    let out = s.out("c");
    let stdout = run_ok(&[
        "continue",
        &prompt,
        "--seconds",
        "10",
        "--model",
        &s.model,
        "--out",
        &out,
        "--max-tokens",
        "31",
        "-q",
    ]);
    assert!(stdout.contains("by 10 s (2 windows from 30 s)"), "{stdout}");
    let original = by_window(&read(Path::new(&out).join("original_prompt.mid")));
    let generated = by_window(&read(Path::new(&out).join("generated_prompt.mid")));
    for (w, notes) in &original {
        assert!(same_notes(&generated[w], notes), "prompt window {w}");
    }
    assert!(
        generated.keys().any(|w| *w >= 6),
        "new music after the prompt"
    );
    assert!(generated.keys().all(|w| *w <= 7), "no more than 10 s more");

    // The original's config regenerates from its t_segment_start (window 4) on; we continue
    // after the whole prompt and say so.
    let config = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("configs/continuation.yaml");
    let (ok, _, stderr) = improvnet(&[
        "continue",
        &prompt,
        "--seconds",
        "5",
        "--config",
        config.to_str().unwrap(),
        "--model",
        &s.model,
        "--out",
        &s.out("c2"),
        "--max-tokens",
        "31",
        "-q",
    ]);
    assert!(ok, "{stderr}");
    assert!(
        stderr.contains("continuation.yaml: t_segment_start 4 is not used by `continue`")
            && stderr.contains("whole prompt (30 s)")
            && stderr.contains("from 20 s on"),
        "{stderr}"
    );

    // --wav and --plot beside the MIDI; a missing SoundFont fails before any generation.
    let sf = s.out("sine.sf2");
    std::fs::write(&sf, common::sf2::sine_soundfont()).unwrap();
    let rendered = s.out("r");
    let args = |sf: &'static str| {
        let mut v: Vec<String> = ["continue", &prompt, "--seconds", "5", "--model", &s.model]
            .iter()
            .map(|a| a.to_string())
            .collect();
        v.extend(
            [
                "--out",
                &rendered,
                "--max-tokens",
                "31",
                "-q",
                "--wav",
                "--plot",
            ]
            .map(String::from),
        );
        v.extend([
            "--soundfont".to_string(),
            if sf.is_empty() {
                String::new()
            } else {
                sf.to_string()
            },
        ]);
        v
    };
    let mut ok_args = args("");
    *ok_args.last_mut().unwrap() = sf.clone();
    let stdout = run_ok(&ok_args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(stdout.contains("changed T-segments shaded"), "{stdout}");
    let wav = Path::new(&rendered).join("generated_prompt.wav");
    let secs = hound::WavReader::open(&wav).unwrap().duration() as f64 / 44_100.0;
    assert!(
        secs > 30.0,
        "the prompt and its continuation are heard: {secs} s"
    );
    assert!(Path::new(&rendered).join("roll_prompt.png").is_file());
    let bad = args("/missing/piano.sf2");
    let stderr = run_err(&bad.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(
        stderr.contains("/missing/piano.sf2: SoundFont not found"),
        "{stderr}"
    );
}

#[test]
fn infill_a_gap_and_reject_an_empty_one() {
    let s = Setup::new();
    let input = s.input("p.mid", &nocturne(10));
    let out = s.out("i");
    let stdout = run_ok(&[
        "infill",
        &input,
        "--from",
        "20s",
        "--to",
        "0:30",
        "--model",
        &s.model,
        "--out",
        &out,
        "--max-tokens",
        "31",
        "-q",
    ]);
    assert!(stdout.contains("from 20 s to 30 s (2 windows)"), "{stdout}");
    let original = by_window(&read(Path::new(&out).join("original_p.mid")));
    let generated = by_window(&read(Path::new(&out).join("generated_p.mid")));
    for w in 0..10u32 {
        if w == 4 || w == 5 {
            assert_ne!(generated.get(&w), original.get(&w), "gap window {w}");
        } else {
            assert!(same_notes(&generated[&w], &original[&w]), "window {w}");
        }
    }
    let err = run_err(&[
        "infill", &input, "--from", "20s", "--to", "20s", "--model", &s.model, "--out", &out,
    ]);
    assert!(err.contains("p.mid") && err.contains("empty"), "{err}");
    let err = run_err(&["infill", &input, "--from", "soon", "--to", "20s"]);
    assert!(err.contains("soon"), "{err}");
}

#[test]
fn bad_input_is_a_clear_error() {
    let s = Setup::new();
    let input = s.input("p.mid", &nocturne(4));
    let out = s.out("x");
    // No model.
    let missing = s.out("no-model");
    let err = run_err(&["improvise", &input, "--model", &missing, "--out", &out]);
    assert!(
        err.contains("no-model")
            && err.contains("--model")
            && err.contains("models/improvnet-small"),
        "{err}"
    );
    // Unknown corruption.
    let err = run_err(&[
        "improvise",
        &input,
        "--corruption",
        "skyfall",
        "--model",
        &s.model,
    ]);
    assert!(
        err.contains("skyfall") && err.contains("whole_mask"),
        "{err}"
    );
    // Unknown genre.
    let err = run_err(&["improvise", &input, "--to", "polka", "--model", &s.model]);
    assert!(err.contains("polka"), "{err}");
    // Unknown fidelity: one line, naming the flag and the choices.
    let err = run_err(&[
        "improvise",
        &input,
        "--fidelity",
        "loose",
        "--model",
        &s.model,
    ]);
    assert!(
        err.contains("--fidelity loose")
            && err.contains("strict, free")
            && err.lines().count() == 1,
        "{err}"
    );
    // A genre the model never saw (its config lists the genres it was trained on).
    let config = Path::new(&s.model).join("config.json");
    let mut json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&config).unwrap()).unwrap();
    json["improvnet_genres"] = serde_json::json!(["classical", "jazz"]);
    std::fs::write(&config, json.to_string()).unwrap();
    let long = s.input("long.mid", &nocturne(8));
    let err = run_err(&[
        "improvise",
        &long,
        "--to",
        "pop",
        "--model",
        &s.model,
        "--out",
        &out,
    ]);
    assert!(
        err.contains("never trained on pop")
            && err.contains("classical, jazz")
            && err.lines().count() == 1,
        "{err}"
    );
    assert!(!Path::new(&out).join("generated_long.mid").exists());
    // A config value of the wrong type: key and line.
    let cfg = s.root.join("bad.yaml");
    std::fs::write(
        &cfg,
        "generation:\n  convert_to: jazz\n  context_before: many\n",
    )
    .unwrap();
    let err = run_err(&[
        "improvise",
        &input,
        "--config",
        cfg.to_str().unwrap(),
        "--model",
        &s.model,
    ]);
    assert!(
        err.contains("bad.yaml")
            && err.contains("generation.context_before")
            && err.contains("line 3"),
        "{err}"
    );
    // A rate outside 0..1.
    let err = run_err(&["improvise", &input, "--rate", "2", "--model", &s.model]);
    assert!(err.contains("--rate"), "{err}");
    // No input at all.
    let err = run_err(&["improvise", "--model", &s.model]);
    assert!(err.contains("no input"), "{err}");
    // Not a MIDI file.
    let not_midi = data("not_midi.mid");
    let err = run_err(&["improvise", not_midi.to_str().unwrap(), "--model", &s.model]);
    assert!(
        err.contains("not_midi.mid") && err.contains("MIDI"),
        "{err}"
    );
}

#[test]
fn structure_from_a_wav_rendering() {
    let s = Setup::new();
    let piece = nocturne(8);
    let input = s.input("p.mid", &piece);
    let wav = s.root.join("p.wav");
    render_wav(&read(&input), &wav);
    let out = s.out("w");
    let stdout = run_ok(&[
        "improvise",
        &input,
        "--structure-wav",
        wav.to_str().unwrap(),
        "--preserve",
        "0.3",
        "--passes",
        "1",
        "--max-tokens",
        "31",
        "--model",
        &s.model,
        "--out",
        &out,
        "-q",
    ]);
    assert!(stdout.contains("kept by structure"), "{stdout}");

    let missing = s.out("missing.wav");
    let err = run_err(&[
        "improvise",
        &input,
        "--structure-wav",
        &missing,
        "--preserve",
        "0.3",
        "--model",
        &s.model,
        "--out",
        &out,
    ]);
    assert!(err.contains("missing.wav"), "{err}");
}

#[test]
fn eval_adds_genre_probabilities_with_a_classifier() {
    let s = Setup::new();
    let mut cfg = BertConfig::sized(32, 1, 2, 64, 1024);
    cfg.architectures = GenreClassifier::base_config().architectures;
    cfg.id2label = GenreClassifier::base_config().id2label;
    let clf =
        GenreClassifier::from_backend(&cfg, Box::new(RandomInit::new(3)), &Device::Cpu).unwrap();
    let clf_dir = s.root.join("clf");
    clf.save(&clf_dir).unwrap();
    let a = s.input("a.mid", &nocturne(5));
    let b = s.input("b.mid", &melody(12));
    let stdout = run_ok(&["eval", &a, &b, "--classifier", clf_dir.to_str().unwrap()]);
    let probs: Vec<(f64, f64)> = stdout
        .lines()
        .filter(|l| l.starts_with("P("))
        .map(|l| {
            let v: Vec<f64> = l
                .split_whitespace()
                .skip(1)
                .map(|x| x.parse().unwrap())
                .collect();
            (v[0], v[1])
        })
        .collect();
    assert_eq!(probs.len(), 3, "{stdout}");
    assert!(stdout.contains("P(jazz)"), "{stdout}");
    let (sa, sb) = probs
        .iter()
        .fold((0.0, 0.0), |acc, p| (acc.0 + p.0, acc.1 + p.1));
    assert!(
        (sa - 1.0).abs() < 0.01 && (sb - 1.0).abs() < 0.01,
        "{stdout}"
    );

    let err = run_err(&["eval", &a, &b, "--classifier", &s.out("none")]);
    assert!(err.contains("none") && err.contains("classifier"), "{err}");

    // `classify`: one row per file, the same probabilities as `eval`, and the mean.
    let clf_arg = clf_dir.to_str().unwrap();
    let table = run_ok(&["classify", "--classifier", clf_arg, &a, &b]);
    let rows: Vec<Vec<String>> = table
        .lines()
        .filter(|l| l.starts_with("| "))
        .map(|l| l.split('|').map(|c| c.trim().to_string()).collect())
        .collect();
    assert_eq!(rows.len(), 4, "{table}"); // header, two files, mean
                                          // Paths as given, so files of one name in two folders stay apart.
    assert_eq!(rows[1][1], a);
    assert_eq!(rows[2][1], b);
    assert!(rows[3][1].contains("mean of 2"), "{table}");
    let p_jazz_eval = probs[2];
    assert_eq!(
        rows[1][5],
        format!("{:.3}", p_jazz_eval.0),
        "{table}\n{stdout}"
    );
    assert_eq!(
        rows[2][5],
        format!("{:.3}", p_jazz_eval.1),
        "{table}\n{stdout}"
    );
    let err = run_err(&[
        "classify",
        "--classifier",
        clf_arg,
        &a,
        &s.out("missing.mid"),
    ]);
    assert!(err.contains("missing.mid"), "{err}");
}

/// The shipped genre classifier (`models/genre-classifier-tiny`, the default of `classify`) on two
/// real performances it never saw: a Chopin nocturne reads as classical and Joplin's rag, played
/// by a person with pedal, as jazz (a classifier trained without `--vary-rendering` called it
/// classical: 0.22 jazz).
#[test]
fn the_shipped_classifier_tells_a_nocturne_from_a_rag() {
    let chopin = data("chopin_nocturne_op15_1.mid");
    let joplin = data("joplin_maple_leaf_rag.mid");
    let table = run_ok(&[
        "classify",
        chopin.to_str().unwrap(),
        joplin.to_str().unwrap(),
    ]);
    let p = |file: &str| -> (f64, f64) {
        let row = table
            .lines()
            .find(|l| l.starts_with(&format!("| {file} ")))
            .unwrap_or_else(|| panic!("no row for {file}: {table}"));
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        (cells[3].parse().unwrap(), cells[5].parse().unwrap())
    };
    let (chopin_classical, chopin_jazz) = p(chopin.to_str().unwrap());
    let (_, joplin_jazz) = p(joplin.to_str().unwrap());
    assert!(chopin_classical > 0.75, "{table}");
    assert!(joplin_jazz > 0.5, "{table}");
    assert!(joplin_jazz > 3.0 * chopin_jazz, "{table}");
}

#[test]
fn bench_model_compares_plain_and_speculative_decoding_on_the_same_output() {
    let s = Setup::new();
    let input = s.input("piece.mid", &nocturne(8));
    let shapes = s.out("segments.json");
    let out = run_ok(&[
        "bench-model",
        &input,
        "--model",
        &s.model,
        "--rounds",
        "1",
        "--candidates",
        "2",
        "--max-tokens",
        "60",
        "--export",
        &shapes,
    ]);
    assert!(out.contains("1 plain"), "{out}");
    assert!(out.contains("1 drafted"), "{out}");
    assert!(out.contains("outputs identical"), "{out}");
    assert!(out.contains("best of 2 costs"), "{out}");
    // The plain rounds take one forward a token; the tiny model's strict templates force some.
    assert!(out.contains("| 1.00 tokens/forward"), "{out}");
    let drafted = out.lines().find(|l| l.starts_with("1 drafted")).unwrap();
    let per_forward: f64 = drafted
        .split('|')
        .find(|f| f.contains("tokens/forward"))
        .and_then(|f| f.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap();
    assert!(per_forward > 1.2, "{drafted}");
    // The exported shapes are the drafted run's segments, for the PyTorch side.
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&shapes).unwrap()).unwrap();
    let segments = json["segments"].as_array().unwrap();
    let counted: usize = drafted
        .split(" segments")
        .next()
        .and_then(|f| f.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap();
    assert_eq!(segments.len(), counted, "{drafted}");
    assert!(segments.iter().all(|s| {
        let (e, t) = (
            s["encoder_tokens"].as_u64().unwrap(),
            s["tokens"].as_u64().unwrap(),
        );
        e > 20 && (1..=59).contains(&t)
    }));
    assert_eq!(json["model"].as_str(), Some(s.model.as_str()));
    let err = run_err(&["bench-model", "missing.mid", "--model", &s.model]);
    assert!(err.contains("missing.mid"), "{err}");
}
