//! A tiny fork-join team for the per-token decoder: persistent worker threads that spin briefly
//! and then park, and a caller that takes part in every job.
//!
//! A job is `n` chunks; every thread (the caller included) claims chunks from one atomic counter,
//! so the caller never waits for a worker that has not started (say, one descheduled by a busy
//! machine): it runs the chunks itself and waits only for chunks a worker has already claimed.
//! The counter word carries the job's epoch, so a late worker cannot claim a chunk of a newer
//! job with an older job's closure.

use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Ordering::*};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long an idle worker spins before parking.
const SPIN: Duration = Duration::from_micros(200);

struct Job<'a> {
    f: &'a (dyn Fn(usize) + Sync),
}

struct Shared {
    /// epoch << 32 | next chunk
    state: AtomicU64,
    job: AtomicPtr<()>,
    n: AtomicUsize,
    done: AtomicUsize,
    sleeping: Vec<AtomicBool>,
    stop: AtomicBool,
}

pub struct Team {
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<()>>,
    epoch: u64,
    /// Jobs run so far, and until when jobs run inline (back-off, see `run`).
    jobs: u64,
    solo_until: Option<Instant>,
    backoffs: u64,
    waited: Duration,
}

/// The counter value of a job being set up (no chunk can be claimed).
const CLOSED: u64 = 0xFFFF_FFFF;

/// A wait for a claimed chunk longer than this means a worker lost its core mid-chunk (a busy
/// machine): the team then runs jobs inline for `BACKOFF` before trying the workers again.
/// A time, not a count of jobs: a job of the base model's decoder takes several times one of
/// the small model's, and 3,000 jobs (~20 ms of the small model's) ran 40–60 % of base's jobs
/// inline on a machine with a little load (4–6 stalls a segment of 300 tokens).
const SLOW_WAIT: Duration = Duration::from_micros(300);
const BACKOFF: Duration = Duration::from_millis(20);

impl Team {
    /// A team of `threads` (the caller plus `threads - 1` workers; 1 = run inline).
    pub fn new(threads: usize) -> Self {
        let nw = threads.clamp(1, 8) - 1;
        let shared = Arc::new(Shared {
            state: AtomicU64::new(0),
            job: AtomicPtr::new(std::ptr::null_mut()),
            n: AtomicUsize::new(0),
            done: AtomicUsize::new(0),
            sleeping: (0..nw).map(|_| AtomicBool::new(false)).collect(),
            stop: AtomicBool::new(false),
        });
        let workers = (0..nw)
            .map(|i| {
                let s = shared.clone();
                std::thread::Builder::new()
                    .name(format!("improvnet-dec-{i}"))
                    .spawn(move || worker(&s, i))
                    .expect("spawn decoder worker")
            })
            .collect();
        Self {
            shared,
            workers,
            epoch: 0,
            jobs: 0,
            solo_until: None,
            backoffs: 0,
            waited: Duration::ZERO,
        }
    }

    pub fn threads(&self) -> usize {
        self.workers.len() + 1
    }

    /// Runs `f(0..n)` across the team; returns when every chunk is done.
    pub fn run(&mut self, n: usize, f: &(dyn Fn(usize) + Sync)) {
        self.jobs += 1;
        if self.solo_until.is_some_and(|t| Instant::now() >= t) {
            self.solo_until = None;
        }
        if self.workers.is_empty() || n <= 1 || self.solo_until.is_some() {
            (0..n).for_each(f);
            return;
        }
        assert!((n as u64) < CLOSED);
        let s = &*self.shared;
        let job = Job { f };
        self.epoch = (self.epoch + 1) & 0xFFFF_FFFF;
        let epoch = self.epoch;
        // Close the old job before touching `job` and `n`: a worker still looking at the old
        // epoch must not pair its counter with the new `n` (it could claim a chunk twice).
        s.state.store(epoch << 32 | CLOSED, SeqCst);
        s.done.store(0, Relaxed);
        s.job.store(&job as *const Job as *mut (), Release);
        s.n.store(n, Release);
        s.state.store(epoch << 32, SeqCst);
        for (i, sl) in s.sleeping.iter().enumerate() {
            if sl.load(SeqCst) {
                self.workers[i].thread().unpark();
            }
        }
        let mut mine = 0;
        while let Some(c) = claim(s, epoch, n) {
            f(c);
            mine += 1;
        }
        s.done.fetch_add(mine, AcqRel);
        // Wait only for chunks a worker claimed. No yield here: on a busy machine a yield can
        // cost this thread its core for milliseconds.
        let mut spins = 0u32;
        let mut since: Option<Instant> = None;
        while s.done.load(Acquire) < n {
            spins += 1;
            if spins.is_multiple_of(256) {
                let t0 = *since.get_or_insert_with(Instant::now);
                let now = Instant::now();
                // Once per wait: a back-off set here stays set until this job returns.
                if now - t0 > SLOW_WAIT && self.solo_until.is_none() {
                    self.solo_until = Some(now + BACKOFF);
                    self.backoffs += 1;
                }
            }
            std::hint::spin_loop();
        }
        if let Some(t0) = since {
            self.waited += t0.elapsed();
        }
        // Every chunk is done: no thread can touch `job` any more (claims check the epoch).
    }
}

fn claim(s: &Shared, epoch: u64, n: usize) -> Option<usize> {
    let mut cur = s.state.load(Acquire);
    loop {
        if cur >> 32 != epoch || (cur & 0xFFFF_FFFF) as usize >= n {
            return None;
        }
        match s.state.compare_exchange_weak(cur, cur + 1, AcqRel, Acquire) {
            Ok(_) => return Some((cur & 0xFFFF_FFFF) as usize),
            Err(v) => cur = v,
        }
    }
}

fn worker(s: &Shared, me: usize) {
    let mut seen = 0u64;
    let mut idle_since = Instant::now();
    loop {
        if s.stop.load(Acquire) {
            return;
        }
        let st = s.state.load(Acquire);
        let epoch = st >> 32;
        if epoch != seen && st & CLOSED != CLOSED {
            seen = epoch;
            let job = s.job.load(Acquire) as *const Job;
            // SAFETY: `job` and `n` are read after seeing `epoch` and used only for chunks
            // claimed under that same epoch (a stale pair fails every claim); the caller keeps
            // the job alive until all its chunks, claimed ones included, are done.
            let n = s.n.load(Acquire);
            let mut mine = 0;
            while let Some(c) = claim(s, epoch, n) {
                unsafe { ((*job).f)(c) };
                mine += 1;
            }
            if mine > 0 {
                s.done.fetch_add(mine, AcqRel);
            }
            idle_since = Instant::now();
            continue;
        }
        if idle_since.elapsed() < SPIN {
            std::hint::spin_loop();
            continue;
        }
        s.sleeping[me].store(true, SeqCst);
        if s.state.load(SeqCst) >> 32 == seen && !s.stop.load(SeqCst) {
            std::thread::park();
        }
        s.sleeping[me].store(false, SeqCst);
        idle_since = Instant::now();
    }
}

impl Drop for Team {
    fn drop(&mut self) {
        if std::env::var_os("IMPROVNET_TEAM_DEBUG").is_some() {
            eprintln!(
                "team: {} jobs, {} back-offs, {:?} waited on workers",
                self.jobs, self.backoffs, self.waited
            );
        }
        self.shared.stop.store(true, SeqCst);
        for w in &self.workers {
            w.thread().unpark();
        }
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU32;

    #[test]
    fn every_chunk_runs_once() {
        let mut t = Team::new(3);
        for round in 0..2000 {
            let n = 1 + round % 9;
            let hits: Vec<AtomicU32> = (0..n).map(|_| AtomicU32::new(0)).collect();
            t.run(n, &|c| {
                hits[c].fetch_add(1, Relaxed);
            });
            assert!(hits.iter().all(|h| h.load(Relaxed) == 1));
            if round % 500 == 0 {
                std::thread::sleep(Duration::from_millis(1)); // let the workers park
            }
        }
    }
}
