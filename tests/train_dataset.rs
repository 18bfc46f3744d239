//! The dataset builder: keep rule, reports, storage round trip, deterministic split.
use std::path::{Path, PathBuf};

use improvnet::music::read_midi;
use improvnet::tokens::Genre;
use improvnet::train::{
    self, default_valid_count, split_order, BuildOptions, DropKind, Progress, Source, Split,
};

fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

fn copy(name: &str, to: &Path) {
    std::fs::create_dir_all(to.parent().unwrap()).unwrap();
    std::fs::copy(data(name), to).unwrap();
}

/// classical/: two good files, a truncated one (in a subfolder), a text file named .mid, a
/// non-piano file and a README that is not MIDI at all. jazz/: one good file (.MIDI).
fn fixture() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    let c = tmp.path().join("classical");
    copy("two_hands.mid", &c.join("two_hands.mid"));
    copy("chopin_nocturne_op15_1.mid", &c.join("deep/er/chopin.mid"));
    copy("truncated.mid", &c.join("deep/truncated.mid"));
    copy("not_midi.mid", &c.join("not_midi.mid"));
    copy("non_piano.mid", &c.join("non_piano.mid"));
    std::fs::write(
        c.join("README.txt"),
        "not a MIDI file, and not named like one",
    )
    .unwrap();
    copy("pedal.mid", &tmp.path().join("jazz/pedal.MIDI"));
    tmp
}

fn sources(root: &Path) -> Vec<Source> {
    vec![
        Source {
            genre: Genre::Classical,
            dirs: vec![root.join("classical")],
        },
        Source {
            genre: Genre::Jazz,
            dirs: vec![root.join("jazz")],
        },
    ]
}

fn no_progress(_: Progress<'_>) {}

#[test]
fn builder_reports_and_skips_broken_files_and_keeps_the_others() {
    let tmp = fixture();
    let found = std::sync::atomic::AtomicUsize::new(0);
    let read = std::sync::atomic::AtomicUsize::new(0);
    let progress = |p: Progress<'_>| match p {
        Progress::Found { files } => found.store(files, std::sync::atomic::Ordering::SeqCst),
        Progress::Read { .. } => {
            read.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    };
    let ds = train::build(&sources(tmp.path()), &BuildOptions::default(), &progress).unwrap();
    assert_eq!(found.into_inner(), 6);
    assert_eq!(read.into_inner(), 6);

    let m = &ds.manifest;
    assert_eq!(ds.len(), 3);
    assert_eq!(m.files.len(), 3);
    let kept: Vec<(&str, Genre)> = m.files.iter().map(|f| (f.path.as_str(), f.genre)).collect();
    let name = |p: &str| {
        Path::new(p)
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .to_string()
    };
    let mut kept_names: Vec<String> = kept.iter().map(|(p, _)| name(p)).collect();
    kept_names.sort();
    assert_eq!(kept_names, ["chopin.mid", "pedal.MIDI", "two_hands.mid"]);
    assert_eq!(kept[2].1, Genre::Jazz, "{kept:?}");

    let dropped: Vec<(String, DropKind)> =
        m.dropped.iter().map(|d| (name(&d.path), d.kind)).collect();
    assert_eq!(
        dropped,
        [
            // Sorted by path: classical/deep/truncated.mid comes first.
            ("truncated.mid".to_string(), DropKind::Unreadable),
            ("non_piano.mid".to_string(), DropKind::NonPiano),
            ("not_midi.mid".to_string(), DropKind::Unreadable),
        ]
    );
    for d in &m.dropped {
        assert!(
            d.reason.contains(&name(&d.path)),
            "reason names the file: {d:?}"
        );
        assert_eq!(d.genre, Genre::Classical);
    }
    assert!(
        m.dropped[0].reason.contains("truncated"),
        "{:?}",
        m.dropped[0]
    );
    assert!(
        m.dropped[1].reason.contains("program 40"),
        "{:?}",
        m.dropped[1]
    );
    assert!(
        m.dropped[2].reason.contains("not a readable MIDI file"),
        "{:?}",
        m.dropped[2]
    );

    // Notes and segments agree with reading each file alone.
    for f in &m.files {
        let perf = read_midi(Path::new(&f.path)).unwrap();
        let piece = perf.to_piece();
        assert_eq!(f.notes, perf.notes.len());
        assert_eq!(f.segments, piece.segments.len());
        assert!(f.minutes > 0.0);
    }
    let chopin = m
        .files
        .iter()
        .find(|f| f.path.ends_with("chopin.mid"))
        .unwrap();
    assert_eq!(chopin.notes, 1788);
    assert!((chopin.minutes - 5.13).abs() < 0.1, "{}", chopin.minutes);

    // Default split: 2 classical files -> 1 validation; a lone jazz file stays in training.
    let classical: Vec<Split> = m
        .files
        .iter()
        .filter(|f| f.genre == Genre::Classical)
        .map(|f| f.split)
        .collect();
    assert_eq!(classical, [Split::Valid, Split::Train]);
    assert_eq!(m.files[2].split, Split::Train);
    assert_eq!(ds.pieces(Split::Valid).len(), 1);
    assert_eq!(ds.pieces(Split::Train).len(), 2);

    // The reports list every dropped file with its reason.
    let out = tmp.path().join("out/ds");
    train::save(&ds, &out).unwrap();
    let txt = std::fs::read_to_string(out.join("report.txt")).unwrap();
    assert!(txt.starts_with("kept 3 files, dropped 3\n"), "{txt}");
    for d in &m.dropped {
        assert!(txt.contains(&d.path) && txt.contains(&d.reason), "{txt}");
        assert!(txt.contains(&format!("[{}]", d.kind)), "{txt}");
    }
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap();
    assert_eq!(json["kept"], 3);
    assert_eq!(json["dropped"].as_array().unwrap().len(), 3);
    assert_eq!(json["dropped"][0]["kind"], "unreadable");
    assert_eq!(json["dropped"][1]["kind"], "non_piano");
    // No temporary files are left behind.
    let mut names: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["manifest.json", "pieces.bin", "report.json", "report.txt"]
    );
}

#[test]
fn saved_dataset_loads_back_equal() {
    let tmp = fixture();
    let ds = train::build(&sources(tmp.path()), &BuildOptions::default(), &no_progress).unwrap();
    let out = tmp.path().join("ds");
    train::save(&ds, &out).unwrap();
    let back = train::load(&out).unwrap();
    assert_eq!(back.pieces, ds.pieces);
    assert_eq!(back.manifest.dropped, ds.manifest.dropped);
    assert_eq!(back.manifest.files.len(), ds.manifest.files.len());
    for (a, b) in back.manifest.files.iter().zip(&ds.manifest.files) {
        assert_eq!(
            (&a.path, a.genre, a.split, a.notes),
            (&b.path, b.genre, b.split, b.notes)
        );
        assert!((a.minutes - b.minutes).abs() < 1e-9);
    }
    // Pieces and the manifest entries line up, per split too.
    for split in Split::ALL {
        let files = back.files(split);
        let pieces = back.pieces(split);
        assert_eq!(files.len(), pieces.len());
        for (f, p) in files.iter().zip(pieces) {
            assert_eq!(f.genre, p.genre);
            assert_eq!(f.notes, p.piece.note_count());
        }
    }
    // Same inputs, same bytes.
    let again = train::build(&sources(tmp.path()), &BuildOptions::default(), &no_progress).unwrap();
    let out2 = tmp.path().join("ds2");
    train::save(&again, &out2).unwrap();
    for f in ["pieces.bin", "manifest.json", "report.txt"] {
        assert_eq!(
            std::fs::read(out.join(f)).unwrap(),
            std::fs::read(out2.join(f)).unwrap(),
            "{f}"
        );
    }
}

#[test]
fn damaged_or_missing_dataset_files_are_named() {
    let tmp = fixture();
    let ds = train::build(&sources(tmp.path()), &BuildOptions::default(), &no_progress).unwrap();
    let out = tmp.path().join("ds");
    train::save(&ds, &out).unwrap();
    let bin = out.join("pieces.bin");
    let bytes = std::fs::read(&bin).unwrap();
    std::fs::write(&bin, &bytes[..bytes.len() / 2]).unwrap();
    let err = train::load(&out).unwrap_err().to_string();
    assert!(err.contains("pieces.bin"), "{err}");
    std::fs::remove_file(out.join("manifest.json")).unwrap();
    let err = train::load(&out).unwrap_err().to_string();
    assert!(err.contains("manifest.json"), "{err}");
    let err = train::build(
        &[Source {
            genre: Genre::Jazz,
            dirs: vec![tmp.path().join("no_such_folder")],
        }],
        &BuildOptions::default(),
        &no_progress,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("no_such_folder"), "{err}");
}

#[test]
fn a_file_listed_twice_is_read_once() {
    let tmp = fixture();
    let mut srcs = sources(tmp.path());
    srcs[1].dirs.push(tmp.path().join("classical/deep/er"));
    let ds = train::build(&srcs, &BuildOptions::default(), &no_progress).unwrap();
    assert_eq!(ds.len(), 3);
    let dup: Vec<_> = ds
        .manifest
        .dropped
        .iter()
        .filter(|d| d.kind == DropKind::Duplicate)
        .collect();
    assert_eq!(dup.len(), 1);
    assert_eq!(dup[0].genre, Genre::Jazz);
    assert!(dup[0].reason.contains("kept as classical"), "{:?}", dup[0]);
}

#[test]
fn split_is_deterministic_and_seeded() {
    let files: Vec<String> = (0..20).map(|i| format!("dir/{i:02}.mid")).collect();
    let (order, n_valid) = split_order(&files, None, 42);
    assert_eq!(n_valid, 2);
    // Pinned: ChaCha8 seeded with 42 (our stream, not Python's `random.seed(42)`).
    assert_eq!(&order[..2], ["dir/07.mid", "dir/12.mid"]);
    let mut sorted = order.clone();
    sorted.sort();
    assert_eq!(sorted, files);

    // Input order does not matter; the seed does.
    let mut reversed = files.clone();
    reversed.reverse();
    assert_eq!(split_order(&reversed, None, 42), (order.clone(), 2));
    assert_ne!(split_order(&files, None, 43).0, order);

    // --valid N, clamped to the count.
    assert_eq!(split_order(&files, Some(5), 42).1, 5);
    assert_eq!(&split_order(&files, Some(5), 42).0[..2], &order[..2]);
    assert_eq!(split_order(&files, Some(50), 42).1, 20);
    assert_eq!(default_valid_count(1000), 100);
    assert_eq!(default_valid_count(119), 12);
}

#[test]
fn valid_option_sets_the_validation_count_per_genre() {
    let tmp = fixture();
    let opts = BuildOptions {
        valid: Some(1),
        ..BuildOptions::default()
    };
    let ds = train::build(&sources(tmp.path()), &opts, &no_progress).unwrap();
    let splits: Vec<(Genre, Split)> = ds
        .manifest
        .files
        .iter()
        .map(|f| (f.genre, f.split))
        .collect();
    assert_eq!(
        splits,
        [
            (Genre::Classical, Split::Valid),
            (Genre::Classical, Split::Train),
            (Genre::Jazz, Split::Valid),
        ]
    );
    assert_eq!(ds.manifest.valid, Some(1));
    let totals = &ds.manifest.totals;
    assert_eq!(totals.len(), 3);
    assert_eq!(totals.iter().map(|t| t.files).sum::<usize>(), 3);
}
