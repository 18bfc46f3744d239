//! The four tasks on a tiny random model: which segments change, which stay note for note, how
//! long the result is, and that a seed reproduces a run byte for byte.
mod refine_common;

use std::collections::BTreeSet;

use improvnet::corrupt::{Corruption, CorruptionChoice};
use improvnet::music::{piece_to_smf, Piece, PlayedNote};
use improvnet::refine::{
    self, continue_piece, harmonize, improvise, infill, infill_windows, no_progress,
    preserved_windows, Fidelity, HarmonyOptions, PassSpec, Progress, RefineError, RefineOptions,
    Settings, StructureSource,
};
use refine_common::{by_window, melody, nocturne, tiny_model};

/// Short decodes keep the tests fast; a random model rarely stops by itself.
const MAX_TOKENS: usize = 31;

fn quick(opts: RefineOptions) -> RefineOptions {
    RefineOptions {
        max_tokens_per_segment: MAX_TOKENS,
        ..opts
    }
}

#[test]
fn improvise_keeps_the_start_the_end_and_protected_segments() {
    let model = tiny_model(1);
    let piece = nocturne(12);
    let mut opts = quick(RefineOptions::default());
    opts.passes = vec![
        PassSpec::new(1.0, Corruption::Skyline),
        PassSpec::new(0.5, CorruptionChoice::Random),
    ];
    opts.protected_windows = vec![6];
    opts.seed = 11;
    let mut events = Vec::new();
    let out = improvise(&model, &piece, &opts, &mut |e| {
        events.push(match e {
            Progress::PassStart { pass, segments, .. } => format!("start {pass} {segments}"),
            Progress::Segment { .. } => "seg".to_string(),
            Progress::PassEnd { pass, refined, .. } => format!("end {pass} {refined}"),
        })
    })
    .unwrap();

    let before = by_window(&piece);
    let after = by_window(&out.piece);
    // Kept: the first two (t_segment_start), the protected one, the last (end_original).
    let kept: BTreeSet<u32> = [0, 1, 6, 11].into();
    for w in &kept {
        assert_eq!(before[w], after[w], "window {w} must stay note for note");
        assert!(!out.report.refined_windows.contains(w), "window {w}");
    }
    // Pass 1 has rate 1: every other window was rewritten, and (random weights) differs.
    let expected: BTreeSet<u32> = (0..12).filter(|w| !kept.contains(w)).collect();
    assert_eq!(out.report.passes[0].refined, expected.len());
    assert!(expected.is_subset(&out.report.refined_windows));
    for w in &out.report.refined_windows {
        assert_ne!(before.get(w), after.get(w), "window {w} was rewritten");
    }
    // No window beyond the original's.
    assert!(after.keys().all(|w| *w <= 11));
    assert_eq!(out.report.protected_windows, vec![6]);
    // Progress: a start, one event per candidate, an end, per pass.
    assert_eq!(events[0], "start 1 8");
    // (Pass 2's candidates are those still holding notes: a random model may write none.)
    let candidates: usize = out.report.passes.iter().map(|p| p.candidates).sum();
    assert_eq!(events.iter().filter(|e| *e == "seg").count(), candidates);
    assert!(out.report.passes[1].candidates <= 8);
    assert_eq!(events[9], "end 1 8");
    assert_eq!(
        out.report.segment_times.len(),
        out.report.passes.iter().map(|p| p.refined).sum::<usize>()
    );
}

#[test]
fn same_seed_same_bytes_other_seed_other_music() {
    let model = tiny_model(2);
    let piece = nocturne(8);
    // Free fidelity: a random model under the strict template keeps almost everything, so
    // only the free sampler shows the seed.
    let mut opts = quick(RefineOptions {
        fidelity: Fidelity::Free,
        ..RefineOptions::default()
    });
    opts.passes.truncate(3);
    opts.seed = 5;
    let a = improvise(&model, &piece, &opts, &mut no_progress).unwrap();
    let b = improvise(&model, &piece, &opts, &mut no_progress).unwrap();
    assert_eq!(piece_to_smf(&a.piece), piece_to_smf(&b.piece));
    opts.seed = 6;
    let c = improvise(&model, &piece, &opts, &mut no_progress).unwrap();
    assert_ne!(piece_to_smf(&a.piece), piece_to_smf(&c.piece));
}

#[test]
fn t_segment_stop_and_per_pass_random() {
    let model = tiny_model(3);
    let piece = nocturne(10);
    let mut opts = quick(RefineOptions::default());
    opts.passes = vec![PassSpec::new(1.0, CorruptionChoice::Random)];
    opts.random_mode = refine::RandomMode::PerPass;
    opts.t_segment_start = 3;
    opts.t_segment_stop = Some(5);
    let out = improvise(&model, &piece, &opts, &mut no_progress).unwrap();
    assert_eq!(out.report.refined_windows, [3, 4].into());
    assert!(
        out.report.passes[0].label.starts_with("random ("),
        "{:?}",
        out.report
    );
    let (before, after) = (by_window(&piece), by_window(&out.piece));
    for w in [0, 1, 2, 5, 6, 7, 8, 9] {
        assert_eq!(before[&w], after[&w], "window {w}");
    }
}

/// A A B B A (20 s sections, distinct material): structure preservation keeps the segments
/// where the music changes, found from the MIDI alone, and refinement leaves them untouched.
#[test]
fn structure_preservation_keeps_novel_segments() {
    let mut notes = Vec::new();
    for (i, b_section) in [false, false, true, true, false].into_iter().enumerate() {
        let start = i as u64 * 20_000;
        for k in 0..80u64 {
            let pitch = if b_section {
                [51u8, 54, 58, 63][k as usize % 4]
            } else {
                [60u8, 64, 67, 72][k as usize % 4]
            };
            notes.push(PlayedNote {
                pitch,
                velocity: 80,
                start_ms: start + k * 250,
                dur_ms: 240,
            });
        }
    }
    let piece = Piece::from_played(&notes);
    let kept = preserved_windows(&piece, 0.1, StructureSource::Midi).unwrap();
    assert!(!kept.is_empty());
    // Every kept window is within one window of a true change (40 s = window 8, 80 s = 16).
    for w in &kept {
        assert!(
            [7, 8, 9, 15, 16, 17].contains(w),
            "kept window {w} is not at a section change: {kept:?}"
        );
    }
    assert!(preserved_windows(&piece, 0.0, StructureSource::Midi)
        .unwrap()
        .is_empty());

    let model = tiny_model(4);
    let mut opts = quick(RefineOptions::default());
    opts.passes = vec![PassSpec::new(1.0, Corruption::WholeMask)];
    opts.protected_windows = kept.clone();
    let out = improvise(&model, &piece, &opts, &mut no_progress).unwrap();
    let (before, after) = (by_window(&piece), by_window(&out.piece));
    for w in &kept {
        assert_eq!(before[w], after[w], "protected window {w}");
    }
}

#[test]
fn harmonize_rewrites_every_segment_of_a_melody() {
    let model = tiny_model(5);
    let tune = melody(30);
    let mut opts = quick(Settings::harmony().refine);
    opts.passes.truncate(2);
    // Free fidelity, to see the chord constraint and reharmonize reach the sampler (strict
    // keeps the melody and has little room left in 31 tokens).
    opts.fidelity = Fidelity::Free;
    let out = harmonize(
        &model,
        &tune,
        "tune.mid",
        &opts,
        HarmonyOptions::default(),
        &mut no_progress,
    )
    .unwrap();
    assert_eq!(out.report.passes[0].refined, tune.segments.len());
    assert_eq!(out.report.refined_windows.len(), tune.segments.len());
    assert!(out.piece.segments.iter().all(|s| s.window < 6));

    let reharm = harmonize(
        &model,
        &tune,
        "tune.mid",
        &opts,
        HarmonyOptions {
            use_constraints: false,
            reharmonize: true,
        },
        &mut no_progress,
    )
    .unwrap();
    assert_ne!(piece_to_smf(&out.piece), piece_to_smf(&reharm.piece));
}

#[test]
fn harmonize_rejects_chords() {
    let model = tiny_model(5);
    let mut notes = melody(10).to_played();
    notes.push(PlayedNote {
        pitch: 76,
        velocity: 80,
        start_ms: 3020,
        dur_ms: 400,
    });
    notes.sort_by_key(|n| n.start_ms);
    let chordal = Piece::from_played(&notes);
    let err = harmonize(
        &model,
        &chordal,
        "chords.mid",
        &quick(Settings::harmony().refine),
        HarmonyOptions::default(),
        &mut no_progress,
    )
    .unwrap_err();
    assert!(
        matches!(err, RefineError::NotMonophonic { count: 2, .. }),
        "{err}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains("chords.mid") && msg.contains("monophonic") && msg.contains("3.00 s"),
        "{msg}"
    );
}

#[test]
fn continuation_grows_by_the_requested_seconds() {
    let model = tiny_model(6);
    let prompt = nocturne(6);
    let opts = quick(Settings::continuation().refine);
    let out = continue_piece(&model, &prompt, 12.0, &opts, &mut no_progress).unwrap();
    // 12 s -> 3 windows after the prompt's last (5): 6, 7, 8.
    assert_eq!(out.report.refined_windows, [6, 7, 8].into());
    let after = by_window(&out.piece);
    for (w, notes) in by_window(&prompt) {
        assert_eq!(after[&w], notes, "prompt window {w}");
    }
    assert!(after.keys().all(|w| *w <= 8));
    assert!(after.keys().any(|w| *w > 5), "something was generated");
    let played = out.piece.to_played();
    let last_onset = played.iter().map(|n| n.start_ms).max().unwrap();
    assert!((30_000..45_000).contains(&last_onset), "{last_onset}");

    assert!(matches!(
        continue_piece(&model, &prompt, 0.0, &opts, &mut no_progress),
        Err(RefineError::Options(_))
    ));
}

#[test]
fn infill_rewrites_only_the_gap() {
    let model = tiny_model(7);
    let piece = nocturne(12);
    let windows = infill_windows(&piece, "p.mid", 20_000, 30_000).unwrap();
    assert_eq!(windows, vec![4, 5]);
    // Widened to whole windows.
    assert_eq!(
        infill_windows(&piece, "p.mid", 21_000, 25_500).unwrap(),
        vec![4, 5]
    );
    let opts = quick(Settings::infilling().refine);
    let out = infill(&model, &piece, &windows, &opts, &mut no_progress).unwrap();
    let (before, after) = (by_window(&piece), by_window(&out.piece));
    for w in 0..12u32 {
        if windows.contains(&w) {
            assert_ne!(before.get(&w), after.get(&w), "gap window {w} rewritten");
        } else {
            assert_eq!(before[&w], after[&w], "window {w} outside the gap");
        }
    }
    let a = infill(&model, &piece, &windows, &opts, &mut no_progress).unwrap();
    assert_eq!(piece_to_smf(&a.piece), piece_to_smf(&out.piece));
}

#[test]
fn infill_rejects_empty_ranges() {
    let piece = nocturne(12);
    for (from, to, why) in [
        (20_000, 20_000, "not after"),
        (30_000, 20_000, "not after"),
        (60_000, 70_000, "after the piece ends"),
    ] {
        let err = infill_windows(&piece, "p.mid", from, to).unwrap_err();
        assert!(matches!(err, RefineError::EmptyRange { .. }));
        let msg = err.to_string();
        assert!(
            msg.contains("p.mid") && msg.contains("empty") && msg.contains(why),
            "{msg}"
        );
    }
}

#[test]
fn invalid_options_are_errors_not_panics() {
    let model = tiny_model(8);
    let piece = nocturne(4);
    let mut opts = quick(RefineOptions::default());
    opts.passes[0].rate = 1.5;
    assert!(matches!(
        improvise(&model, &piece, &opts, &mut no_progress),
        Err(RefineError::Options(_))
    ));
    let mut opts = quick(RefineOptions::default());
    opts.passes.clear();
    assert!(improvise(&model, &piece, &opts, &mut no_progress).is_err());
    // A start past the end refines nothing and changes nothing.
    let mut opts = quick(RefineOptions::default());
    opts.t_segment_start = 99;
    let out = improvise(&model, &piece, &opts, &mut no_progress).unwrap();
    assert_eq!(out.piece, piece);
    // An empty piece is fine too.
    let out = improvise(&model, &Piece::default(), &opts, &mut no_progress).unwrap();
    assert!(out.piece.segments.is_empty());
}
