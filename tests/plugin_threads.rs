//! The worker leaves no thread behind: a host unloads the plugin library after the last
//! instance goes, and a thread still running its code then crashes the host (Ardour did, at
//! session close, while the model loaded on rayon's global pool, whose threads never end).
//! Its own test binary, so no other test's threads come and go meanwhile.
#![cfg(feature = "plugin")]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use improvnet::plugin::worker::{ModelSource, ModelState, Msg, Reply, Status, Worker};

fn threads() -> usize {
    std::fs::read_dir("/proc/self/task").map_or(0, |d| d.count())
}

/// Polls `f` for up to `secs` seconds.
fn eventually(secs: u64, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < end {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    f()
}

#[test]
fn a_dropped_worker_leaves_no_thread_behind() {
    if !std::path::Path::new("/proc/self/task").is_dir() {
        eprintln!("no /proc/self/task here: nothing to count");
        return;
    }
    let before = threads();
    let model = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models/improvnet-small");
    let status = Arc::new(Status::default());
    let (jobs, job_rx) = crossbeam_channel::bounded::<Msg>(4);
    let (reply_tx, _replies) = crossbeam_channel::bounded::<Reply>(4);
    let worker = Worker::spawn(
        Some(ModelSource::Folder(model)),
        job_rx,
        reply_tx,
        status.clone(),
        2,
    )
    .expect("spawn the worker");
    assert!(
        eventually(60, || status.model_state() == ModelState::Ready),
        "the model did not load: {:?}",
        status.model_state()
    );
    // The worker and its pool of two, nothing else.
    assert_eq!(threads(), before + 3);
    // Dropping the worker joins every thread it started, at once: no waiting here.
    drop(worker);
    drop(jobs);
    assert_eq!(
        threads(),
        before,
        "threads left running after the worker was dropped"
    );
}
