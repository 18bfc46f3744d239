//! The CLI end to end, as a musician runs it.
mod common;

use common::{data, improvnet};

#[test]
fn inspect_reports_a_real_performance() {
    let file = data("chopin_nocturne_op15_1.mid");
    let (ok, stdout, stderr) = improvnet(&["inspect", file.to_str().unwrap()]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("notes      1788"), "{stdout}");
    assert!(stdout.contains("segments   "), "{stdout}");
    assert!(stdout.contains("warnings   none"), "{stdout}");
}

#[test]
fn inspect_names_the_file_and_problem_for_bad_input() {
    for (name, problem) in [
        ("not_midi.mid", "MIDI"),
        ("drums_only.mid", "drum"),
        ("empty.mid", "no notes"),
    ] {
        let file = data(name);
        let (ok, _, stderr) = improvnet(&["inspect", file.to_str().unwrap()]);
        assert!(!ok, "{name} should fail");
        assert!(stderr.contains(name), "{name}: {stderr}");
        assert!(
            stderr.to_lowercase().contains(&problem.to_lowercase()),
            "{name}: {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{name}: {stderr}");
    }
    let (ok, _, stderr) = improvnet(&["inspect", "/nonexistent/piece.mid"]);
    assert!(!ok);
    assert!(stderr.contains("/nonexistent/piece.mid"), "{stderr}");
    // The OS error once, on one line.
    assert_eq!(stderr.matches("(os error 2)").count(), 1, "{stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
}

#[test]
fn tokenize_writes_the_piece_tokens_as_json() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("tokens.json");
    let file = data("chopin_nocturne_op15_1.mid");
    let (ok, _, stderr) = improvnet(&[
        "tokenize",
        file.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(ok, "{stderr}");
    let doc: serde_json::Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    let ids = doc["ids"].as_array().unwrap();
    let notes: usize = doc["segments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["notes"].as_array().unwrap().len())
        .sum();
    assert_eq!(notes, 1788);
    let t_count = ids.iter().filter(|id| id.as_u64() == Some(2300)).count();
    assert_eq!(ids.len(), 3 * notes + t_count);
    assert!(ids
        .iter()
        .all(|id| (1..=2305).contains(&id.as_u64().unwrap())));
}

#[test]
fn corrupt_changes_only_the_chosen_segment() {
    let dir = tempfile::tempdir().unwrap();
    let file = data("chopin_nocturne_op15_1.mid");
    let out = dir.path().join("skyline.mid");
    let (ok, stdout, stderr) = improvnet(&[
        "corrupt",
        file.to_str().unwrap(),
        "--segment",
        "3",
        "--kind",
        "skyline",
        "--seed",
        "1",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("skyline"), "{stdout}");
    // The reference is the quantized original as written to MIDI (the writer's overlap rule may
    // shorten same-pitch overlaps, so compare written with written).
    let reference = dir.path().join("reference.mid");
    let piece =
        improvnet::music::Piece::from_played(&improvnet::music::read_midi(&file).unwrap().notes);
    improvnet::music::write_midi(&piece, &reference).unwrap();
    let original = improvnet::music::Piece::from_played(
        &improvnet::music::read_midi(&reference).unwrap().notes,
    );
    let corrupted =
        improvnet::music::Piece::from_played(&improvnet::music::read_midi(&out).unwrap().notes);
    assert_eq!(original.segments.len(), corrupted.segments.len());
    for (i, (a, b)) in original
        .segments
        .iter()
        .zip(&corrupted.segments)
        .enumerate()
    {
        if i == 3 {
            assert!(
                b.notes.len() < a.notes.len(),
                "skyline keeps one note per onset group"
            );
            assert!(b.notes.iter().all(|n| n.velocity == 90));
        } else if !(2..=4).contains(&i) {
            assert_eq!(a, b, "segment {i} must be untouched");
        }
    }
    let (ok, _, stderr) = improvnet(&[
        "corrupt",
        file.to_str().unwrap(),
        "--segment",
        "3",
        "--kind",
        "shuffle",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(!ok);
    assert!(
        stderr.contains("skyline") && stderr.contains("shuffle"),
        "unknown kind lists the valid ones: {stderr}"
    );
}

#[test]
fn eval_prints_the_symbolic_metrics() {
    let file = data("chopin_nocturne_op15_1.mid");
    let f = file.to_str().unwrap();
    let (ok, stdout, stderr) = improvnet(&["eval", f, f]);
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("num_notes                      1788         1788"),
        "{stdout}"
    );
    assert!(
        stdout.contains("pitch_class_kl (lower is closer)       0.0000"),
        "{stdout}"
    );
    assert!(
        stdout.contains("pctm_cosine_sim (higher is closer)     1.0000"),
        "{stdout}"
    );
}

/// `corpus charts` writes one MMA song and one right-hand MIDI file per chart and a manifest,
/// byte-identical for the same seed.
#[test]
fn corpus_charts_are_written_and_repeat_with_the_seed() {
    let run = |dir: &std::path::Path| {
        let (ok, _, stderr) = improvnet(&[
            "corpus",
            "charts",
            "--out",
            dir.to_str().unwrap(),
            "--count",
            "8",
            "--seed",
            "3",
        ]);
        assert!(ok, "{stderr}");
    };
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    run(a.path());
    run(b.path());
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(a.path().join("charts.json")).unwrap()).unwrap();
    let entries = manifest.as_array().expect("a list of charts");
    assert_eq!(entries.len(), 8);
    for i in 1..=8 {
        for ext in ["mma", "melody.mid"] {
            let name = format!("chart_{i:05}.{ext}");
            let x = std::fs::read(a.path().join(&name)).unwrap();
            assert!(
                x == std::fs::read(b.path().join(&name)).unwrap(),
                "{name} differs"
            );
        }
        let song = std::fs::read_to_string(a.path().join(format!("chart_{i:05}.mma"))).unwrap();
        assert!(
            song.contains("Groove ") && song.contains("Tempo "),
            "{song}"
        );
        let melody =
            improvnet::music::read_midi(&a.path().join(format!("chart_{i:05}.melody.mid")))
                .unwrap();
        assert!(!melody.notes.is_empty());
        assert!(melody.notes.iter().all(|n| (21..=108).contains(&n.pitch)));
    }
}

#[test]
fn check_measures_a_piece_against_itself_and_its_melody() {
    let file = data("chopin_nocturne_op15_1.mid");
    let f = file.to_str().unwrap();
    let (ok, stdout, stderr) = improvnet(&["check", f, f, "--json"]);
    assert!(ok, "{stderr}");
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    // Nothing rewritten, the whole top voice kept.
    assert_eq!(v["rewritten_windows"], 0);
    assert_eq!(v["tune_overall"]["kept"], v["tune_overall"]["total"]);
    assert!(v["tune_overall"]["total"].as_u64().unwrap() > 500);
    assert_eq!(v["median_pitch"], v["median_pitch_original"]);
    assert_eq!(v["defects"]["clusters"], v["defects_original"]["clusters"]);
    assert!(v["harmony"].is_null());
    // Markdown, with the classifier's P(genre) beside, and the harmony section with --melody.
    let (ok, stdout, stderr) = improvnet(&[
        "check",
        f,
        f,
        "--melody",
        f,
        "--classifier",
        "models/genre-classifier-tiny",
    ]);
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("| top voice kept, overall | 100.0 %"),
        "{stdout}"
    );
    assert!(
        stdout.contains("| melody notes kept | 100.0 % (1788 of 1788)"),
        "{stdout}"
    );
    assert!(stdout.contains("| P(jazz) |"), "{stdout}");
    // A missing file: one line naming it.
    let (ok, _, stderr) = improvnet(&["check", f, "/nonexistent/gen.mid"]);
    assert!(
        !ok && stderr.contains("/nonexistent/gen.mid") && stderr.lines().count() == 1,
        "{stderr}"
    );
}
