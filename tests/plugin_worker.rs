//! The plugin's worker: the same refine engine as the CLI, one segment at a time.
#![cfg(feature = "plugin")]

mod refine_common;

use improvnet::plugin::notes::{NoteBuf, SampleNote};
use improvnet::plugin::params::{FidelityParam, Mode, Snapshot};
use improvnet::plugin::playback::Answer;
use improvnet::plugin::worker::{to_model_notes, to_sample_notes, Job, Refiner};

const SR: f32 = 48_000.0;

fn job(index: i64, rate: f32, seed: u64) -> Job {
    let notes = NoteBuf::from_notes((0..8).map(|i| SampleNote {
        pitch: 60 + (i % 5) as u8,
        velocity: 90,
        onset: i * 24_000,
        dur: 12_000,
    }));
    Job {
        generation: 1,
        index,
        notes,
        params: Snapshot {
            rate,
            seed,
            ..Snapshot::default()
        },
        sample_rate: SR,
    }
}

#[test]
fn captured_notes_reach_the_model_grid_and_come_back_in_samples() {
    let j = job(0, 1.0, 0);
    let notes = to_model_notes(&j.notes, SR);
    assert_eq!(notes.len(), 8);
    assert_eq!(
        (notes[1].onset_ms, notes[1].dur_ms, notes[1].velocity),
        (500, 250, 90)
    );
    let back = to_sample_notes(&notes, SR);
    assert_eq!(back.as_slice()[1].onset, 24_000);
    assert_eq!(back.as_slice()[1].dur, 12_000);
}

#[test]
fn without_a_model_or_at_rate_zero_the_original_plays() {
    let mut none = Refiner::new(None);
    assert_eq!(none.answer(&job(0, 1.0, 0)).unwrap(), Answer::Original);
    let mut r = Refiner::new(Some(refine_common::tiny_model(3)));
    assert_eq!(r.answer(&job(0, 0.0, 0)).unwrap(), Answer::Original);
}

#[test]
fn a_model_refines_deterministically_per_seed_with_history_as_context() {
    let run = |seed| {
        let mut r = Refiner::new(Some(refine_common::tiny_model(3)));
        (0..3)
            .map(|i| r.answer(&job(i, 1.0, seed)).unwrap())
            .collect::<Vec<_>>()
    };
    let a = run(5);
    assert!(a.iter().all(|x| matches!(x, Answer::Refined(_))), "{a:?}");
    assert_eq!(a, run(5));
}

#[test]
fn bad_parameters_are_errors_not_panics() {
    let mut r = Refiner::new(Some(refine_common::tiny_model(3)));
    let mut j = job(0, 1.0, 0);
    j.params.temperature = 0.0;
    let err = r.answer(&j).unwrap_err().to_string();
    assert!(err.contains("temperature"), "{err}");
}

#[test]
fn the_worker_publishes_the_median_latency_and_the_last_segment_for_the_editor() {
    use improvnet::plugin::worker::{Latencies, Status, LATENCY_WINDOW};
    let mut l = Latencies::default();
    assert_eq!(l.push(10), 10);
    assert_eq!(l.push(30), 30); // upper median of two
    assert_eq!(l.push(20), 20);
    for _ in 0..LATENCY_WINDOW {
        l.push(500);
    }
    assert_eq!(l.push(1), 500, "only the last {LATENCY_WINDOW} count");

    let status = Status::default();
    assert!(status.last_segment().is_none());
    let j = job(7, 1.0, 0);
    let refined = NoteBuf::from_notes([SampleNote {
        pitch: 72,
        velocity: 80,
        onset: 0,
        dur: 100,
    }]);
    status.publish_segment(&j, &Answer::Refined(refined));
    let last = status.last_segment().expect("published");
    assert_eq!(
        (last.index, last.input, last.output),
        (7, j.notes, Some(refined))
    );
    // A silent segment answered with its (empty) original leaves the last one shown.
    let mut silent = job(8, 1.0, 0);
    silent.notes = NoteBuf::EMPTY;
    status.publish_segment(&silent, &Answer::Original);
    assert_eq!(status.last_segment().unwrap().index, 7);
    status.publish_segment(&job(9, 1.0, 0), &Answer::Original);
    let last = status.last_segment().unwrap();
    assert_eq!((last.index, last.output), (9, None));
}

#[test]
fn a_longer_delay_waits_for_later_segments_and_shows_them_as_after_context() {
    let with_delay = |index, delay| {
        let mut j = job(index, 1.0, 5);
        j.params.delay = delay;
        // A one-voice line is all tune, which strict fidelity keeps note for note: only the
        // free model shows what the after-context tells it.
        j.params.fidelity = FidelityParam::Free;
        // Different notes per segment, so the after-context carries information.
        for n in j.notes.as_mut_slice() {
            n.pitch += index as u8;
        }
        j
    };
    // Delay 4: two later segments fit, so segment 0 is answered when segment 2 arrives.
    let mut r = Refiner::new(Some(refine_common::tiny_model(3)));
    assert!(r.submit(with_delay(0, 4)).is_empty());
    assert!(r.submit(with_delay(1, 4)).is_empty());
    let done = r.submit(with_delay(2, 4));
    assert_eq!(done.len(), 1);
    assert_eq!(done[0].0.index, 0);
    let with_after = *done[0].1.as_ref().expect("refined");
    assert!(matches!(with_after, Answer::Refined(_)));
    let done = r.submit(with_delay(3, 4));
    assert_eq!(done.iter().map(|(j, _)| j.index).collect::<Vec<_>>(), [1]);

    // Delay 2: answered at once; the same segment without after-context sounds different.
    let mut r = Refiner::new(Some(refine_common::tiny_model(3)));
    let done = r.submit(with_delay(0, 2));
    assert_eq!(done.len(), 1);
    let without = *done[0].1.as_ref().expect("refined");
    assert_ne!(with_after, without, "the after-context changed nothing");
    // Same as answering directly.
    let mut r = Refiner::new(Some(refine_common::tiny_model(3)));
    assert_eq!(r.answer(&with_delay(0, 2)).unwrap(), without);
}

#[test]
fn a_new_generation_answers_the_waiting_jobs_with_their_originals() {
    let mut r = Refiner::new(Some(refine_common::tiny_model(3)));
    let mut j = job(0, 1.0, 0);
    j.params.delay = 5;
    assert!(r.submit(j).is_empty());
    let mut k = job(9, 1.0, 0);
    k.generation = 2;
    k.params.delay = 5;
    let done = r.submit(k);
    assert_eq!(done.len(), 1, "each job gets exactly one answer");
    assert_eq!((done[0].0.generation, done[0].0.index), (1, 0));
    assert_eq!(*done[0].1.as_ref().unwrap(), Answer::Original);
}

#[test]
fn live_answers_keep_the_players_tune_and_harmonize_keeps_the_melody_on_top() {
    for mode in [Mode::Improvise, Mode::Harmonize] {
        for seed in 0..4 {
            let mut j = job(0, 1.0, seed);
            j.params.mode = mode;
            let mut r = Refiner::new(Some(refine_common::tiny_model(3)));
            let Answer::Refined(out) = r.answer(&j).unwrap() else {
                panic!("{mode:?}: not refined");
            };
            let out = out.as_slice();
            // A one-voice line is all tune: every note is still there, as played.
            for n in j.notes.as_slice() {
                assert!(out.contains(n), "{mode:?} seed {seed}: {n:?} lost");
            }
            if mode == Mode::Harmonize {
                // Nothing sounds above a melody note when it starts.
                for m in j.notes.as_slice() {
                    let above = out.iter().any(|o| {
                        o.pitch > m.pitch && o.onset <= m.onset && m.onset < o.onset + o.dur
                    });
                    assert!(!above, "seed {seed}: a note above {m:?}");
                }
            }
        }
    }
}

#[test]
fn a_shortened_delay_or_a_due_turn_answers_waiting_jobs_at_once() {
    let with_delay = |index, delay| {
        let mut j = job(index, 1.0, 5);
        j.params.delay = delay;
        j
    };
    let indices = |done: &[improvnet::plugin::worker::Answered]| -> Vec<i64> {
        done.iter().map(|(j, _)| j.index).collect()
    };
    // Delay 8 wants six later segments; the delay drops to 2 at segment 2, whose job needs
    // none: it and the two jobs before it are answered now, in order, each refined.
    let mut r = Refiner::new(Some(refine_common::tiny_model(3)));
    assert!(r.submit(with_delay(0, 8)).is_empty());
    assert!(r.submit(with_delay(1, 8)).is_empty());
    let done = r.submit(with_delay(2, 2));
    assert_eq!(indices(&done), [0, 1, 2]);
    assert!(done
        .iter()
        .all(|(_, a)| matches!(a, Ok(Answer::Refined(_)))));

    // Offline, the audio thread says when a turn is due: every job up to it is answered with
    // the context there is; later ones keep waiting, and a stale generation changes nothing.
    let mut r = Refiner::new(Some(refine_common::tiny_model(3)));
    for i in 0..3 {
        assert!(r.submit(with_delay(i, 8)).is_empty());
    }
    assert!(r.due(7, 1).is_empty(), "another generation");
    assert_eq!(indices(&r.due(1, 1)), [0, 1]);
    assert!(r.due(1, 1).is_empty(), "each job is answered once");
    assert_eq!(indices(&r.due(1, 5)), [2]);
}

#[test]
fn inference_leaves_a_core_for_the_host() {
    use improvnet::plugin::worker::inference_threads;
    // Automatic: the cores less one; one core: one thread.
    assert_eq!(inference_threads(0, 1), 1);
    assert_eq!(inference_threads(0, 2), 1);
    assert_eq!(inference_threads(0, 8), 7);
    // A saved setting is honoured up to the cores less one.
    assert_eq!(inference_threads(3, 8), 3);
    assert_eq!(inference_threads(16, 8), 7);
    assert_eq!(inference_threads(4, 2), 1);
}

/// The worker and its compute threads run below the host's threads (Linux: `SCHED_IDLE`).
#[cfg(target_os = "linux")]
#[test]
fn the_worker_threads_run_at_idle_priority() {
    use improvnet::plugin::worker::{Msg, Reply, Status, Worker};
    use std::sync::Arc;

    let (_jobs, job_rx) = crossbeam_channel::bounded::<Msg>(4);
    let (reply_tx, _replies) = crossbeam_channel::bounded::<Reply>(4);
    let worker = Worker::spawn(None, job_rx, reply_tx, Arc::new(Status::default()), 2)
        .expect("spawn the worker");
    // (comm is cut to 15 bytes.)
    let policies = || -> Vec<(String, u32)> {
        let mut found = Vec::new();
        for task in std::fs::read_dir("/proc/self/task").expect("/proc") {
            let dir = task.expect("task").path();
            let comm = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
            let comm = comm.trim().to_string();
            // (Other tests' decoders run their own "improvnet-dec" threads meanwhile.)
            if !(comm.starts_with("improvnet-worke") || comm.starts_with("improvnet-infer")) {
                continue;
            }
            let stat = std::fs::read_to_string(dir.join("stat")).unwrap_or_default();
            // Fields after the parenthesised name; `policy` is field 41 (index 38 after it).
            let rest = &stat[stat.rfind(')').expect("stat") + 2..];
            let policy = rest
                .split(' ')
                .nth(38)
                .expect("policy")
                .parse()
                .expect("number");
            found.push((comm, policy));
        }
        found
    };
    let mut seen = Vec::new();
    // The pool starts at normal priority (the model loads first), then every thread drops.
    for _ in 0..400 {
        seen = policies();
        if seen.len() >= 3 && seen.iter().all(|(_, p)| *p == 5) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    drop(worker);
    // The worker and its pool of two; SCHED_IDLE is policy 5.
    assert!(seen.len() >= 3, "{seen:?}");
    assert!(seen.iter().all(|(_, p)| *p == 5), "{seen:?}");
}
