//! The worker (inference thread): owns the model and the history of played segments, and
//! answers each captured segment with refined notes or "play the original".
//!
//! It calls the same engine as the CLI ([`Engine::run_pass`]): one pass over the new segment,
//! with the segments already played as before-context. The audio thread never blocks on the
//! channels (it only `try_send`s and `try_recv`s); the worker sleeps in `recv_timeout` when idle.
//!
//! Inference must leave the audio alone: the worker and its compute threads run at a lower OS
//! priority, on a pool of [`inference_threads`] threads (by default one core is left free).

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use candle_core::Device;
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TrySendError};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::corrupt::{Corruption, CorruptionChoice};
use crate::model::{ImprovNetModel, Precision};
use crate::music::{Note, Piece, PlayedNote, Segment};
use crate::refine::engine::{PassPlan, Target};
use crate::refine::{no_progress, Engine, PassSpec, RefineError, RefineOptions, RefineReport};

use super::notes::{NoteBuf, SampleNote, OPEN};
use super::params::{Mode, Snapshot, MAX_DELAY};
use super::playback::Answer;

/// A finished segment and the parameters it was captured with.
#[derive(Clone, Copy, Debug)]
pub struct Job {
    /// Bumped on every reset (seek, stop): answers of an older generation are stale.
    pub generation: u32,
    pub index: i64,
    pub notes: NoteBuf,
    pub params: Snapshot,
    pub sample_rate: f32,
}

/// What the audio thread sends the worker.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Copy, Debug)]
pub enum Msg {
    /// A captured segment to answer.
    Segment(Job),
    /// Offline only: the answer for `index` is due now. Every job up to it is answered at once
    /// with the after-context captured so far (a shortened delay, say, leaves a job waiting for
    /// later segments that would arrive only after its turn).
    Due { generation: u32, index: i64 },
}

/// The worker's answer for one segment.
#[derive(Clone, Copy, Debug)]
pub struct Reply {
    pub generation: u32,
    pub index: i64,
    pub answer: Answer,
}

/// Model states shown in the editor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum ModelState {
    None = 0,
    Loading = 1,
    Ready = 2,
    Failed = 3,
}

/// What the threads tell the editor and the tests (atomics: the audio thread writes some).
#[derive(Debug, Default)]
pub struct Status {
    model: AtomicU8,
    /// Milliseconds the last refined segment took.
    pub last_ms: AtomicU32,
    pub refined: AtomicU64,
    pub errors: AtomicU64,
    /// Written by the audio thread.
    pub late: AtomicU64,
    pub queue_full: AtomicU64,
    pub dropped_notes: AtomicU64,
    /// Jobs sent but not answered yet.
    pub pending: AtomicU64,
    /// Median milliseconds of the last [`LATENCY_WINDOW`] refined segments (worker only).
    pub median_ms: AtomicU32,
    /// The model folder, or the last error (never touched by the audio thread).
    pub message: Mutex<String>,
    /// The last answered segment with notes, for the editor's piano roll (written by the worker,
    /// read by the GUI; never touched by the audio thread).
    pub last_segment: Mutex<Option<LastSegment>>,
}

/// Refine times the median in [`Status::median_ms`] is taken over.
pub const LATENCY_WINDOW: usize = 32;

/// A segment as played and as answered, in samples from the segment's start.
#[derive(Clone, Copy, Debug)]
pub struct LastSegment {
    pub index: i64,
    pub sample_rate: f32,
    pub input: NoteBuf,
    /// The refined notes; `None` when the original plays.
    pub output: Option<NoteBuf>,
}

impl Status {
    pub fn model_state(&self) -> ModelState {
        match self.model.load(Ordering::Relaxed) {
            1 => ModelState::Loading,
            2 => ModelState::Ready,
            3 => ModelState::Failed,
            _ => ModelState::None,
        }
    }

    pub(crate) fn set_model_state(&self, s: ModelState) {
        self.model.store(s as u8, Ordering::Relaxed);
    }

    fn set_message(&self, m: String) {
        if let Ok(mut g) = self.message.lock() {
            *g = m;
        }
    }

    /// One line of counters for diagnostics (never called on the audio thread).
    pub fn summary(&self, offline: bool) -> String {
        let n = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let message = self.message.lock().map(|m| m.clone()).unwrap_or_default();
        format!(
            "ImprovNet: {} refined, {} late, {} errors, {} queue full, {} pending, model {:?}, \
             last block {}; {message}",
            n(&self.refined),
            n(&self.late),
            n(&self.errors),
            n(&self.queue_full),
            n(&self.pending),
            self.model_state(),
            if offline { "offline" } else { "realtime" },
        )
    }

    /// The last answered segment (GUI thread; a short lock the worker also takes).
    pub fn last_segment(&self) -> Option<LastSegment> {
        self.last_segment.lock().ok().and_then(|g| *g)
    }

    /// Worker side: publishes a segment and its answer unless both are empty.
    pub fn publish_segment(&self, job: &Job, answer: &Answer) {
        let output = match answer {
            Answer::Refined(notes) => Some(*notes),
            Answer::Original => None,
        };
        if job.notes.is_empty() && output.is_none_or(|o| o.is_empty()) {
            return;
        }
        if let Ok(mut g) = self.last_segment.lock() {
            *g = Some(LastSegment {
                index: job.index,
                sample_rate: job.sample_rate,
                input: job.notes,
                output,
            });
        }
    }
}

/// The last refine times and their median.
#[derive(Debug, Default)]
pub struct Latencies {
    recent: std::collections::VecDeque<u32>,
}

impl Latencies {
    /// Adds one refine time (ms) and returns the median of the last [`LATENCY_WINDOW`].
    pub fn push(&mut self, ms: u32) -> u32 {
        if self.recent.len() == LATENCY_WINDOW {
            self.recent.pop_front();
        }
        self.recent.push_back(ms);
        let mut sorted: Vec<u32> = self.recent.iter().copied().collect();
        sorted.sort_unstable();
        sorted[sorted.len() / 2]
    }
}

/// The refinement itself, without the thread: testable and deterministic.
///
/// Jobs arrive in capture order. A job waits until its after-context (the later segments its
/// delay leaves time for, [`Snapshot::context_after`]) has been captured, then is refined with
/// the segments already played before it and those originals after it.
pub struct Refiner {
    model: Option<ImprovNetModel>,
    history: Vec<Segment>,
    waiting: VecDeque<Job>,
    generation: Option<u32>,
    first: i64,
}

/// A job and what to play for it.
pub type Answered = (Job, Result<Answer, RefineError>);

impl Refiner {
    pub fn new(model: Option<ImprovNetModel>) -> Self {
        Self {
            model,
            history: Vec::new(),
            waiting: VecDeque::new(),
            generation: None,
            first: 0,
        }
    }

    pub fn has_model(&self) -> bool {
        self.model.is_some()
    }

    /// Takes a captured segment; returns every job whose after-context is now complete, in
    /// order. Jobs of an older generation (before a seek or stop) come back as `Original`: no
    /// one plays them, but each job gets exactly one answer.
    pub fn submit(&mut self, job: Job) -> Vec<Answered> {
        let mut done = Vec::new();
        if self.generation != Some(job.generation) {
            done.extend(self.waiting.drain(..).map(|j| (j, Ok(Answer::Original))));
            self.start_generation(&job);
        }
        self.waiting.push_back(job);
        // A job is due once the jobs after it are its after-context; jobs are answered in order,
        // so a due job releases every job before it too (with the context there is: a job
        // captured at a long delay would otherwise hold up one captured after the delay shrank).
        let n = self.waiting.len();
        let due = self
            .waiting
            .iter()
            .enumerate()
            .rev()
            .find(|(i, j)| n - 1 - i >= j.params.context_after())
            .map(|(i, _)| i + 1);
        if let Some(count) = due {
            done.extend(self.answer_first(count));
        }
        done
    }

    /// Answers every waiting job up to `index` at once, with the after-context it has (the
    /// audio thread's offline [`Msg::Due`]).
    pub fn due(&mut self, generation: u32, index: i64) -> Vec<Answered> {
        if self.generation != Some(generation) {
            return Vec::new();
        }
        let count = self.waiting.iter().take_while(|j| j.index <= index).count();
        self.answer_first(count)
    }

    /// Answers the first `count` waiting jobs in order, each with up to its own after-context.
    fn answer_first(&mut self, count: usize) -> Vec<Answered> {
        let mut done = Vec::with_capacity(count);
        for _ in 0..count {
            let next = self.waiting.pop_front().expect("count <= waiting");
            let after = next.params.context_after();
            let later: Vec<Job> = self.waiting.iter().take(after).copied().collect();
            let answer = self.refine(&next, &later);
            done.push((next, answer));
        }
        done
    }

    /// Answers `job` at once, without after-context (the delay-2 case of [`submit`]).
    ///
    /// [`submit`]: Self::submit
    pub fn answer(&mut self, job: &Job) -> Result<Answer, RefineError> {
        if self.generation != Some(job.generation) {
            self.waiting.clear();
            self.start_generation(job);
        }
        self.refine(job, &[])
    }

    fn start_generation(&mut self, job: &Job) {
        self.generation = Some(job.generation);
        self.history.clear();
        self.first = job.index;
    }

    fn window(&self, index: i64) -> u32 {
        (index - self.first).clamp(0, i64::from(u32::MAX)) as u32
    }

    /// Refines `job` with `later` (captured, not yet played) as after-context; an error leaves
    /// the history as if the original had played.
    fn refine(&mut self, job: &Job, later: &[Job]) -> Result<Answer, RefineError> {
        let window = self.window(job.index);
        let original = to_model_notes(&job.notes, job.sample_rate);
        let p = job.params;
        let model = match &self.model {
            Some(m) if p.refine && p.rate > 0.0 && !original.is_empty() => m,
            _ => {
                self.remember(window, original);
                return Ok(Answer::Original);
            }
        };
        let (corruption, harmonize) = match p.mode {
            Mode::Improvise => (CorruptionChoice::from(p.corruption), false),
            Mode::Harmonize => (CorruptionChoice::Fixed(Corruption::Skyline), true),
        };
        // Empty segments are no context, as in the engine.
        let after: Vec<Segment> = later
            .iter()
            .map(|j| Segment {
                window: self.window(j.index),
                notes: to_model_notes(&j.notes, j.sample_rate),
            })
            .filter(|s| !s.notes.is_empty())
            .collect();
        let opts = RefineOptions {
            target: p.genre.into(),
            passes: vec![PassSpec::new(f64::from(p.rate).clamp(0.0, 1.0), corruption)],
            temperature: p.temperature,
            context_before: p.context_before as usize,
            context_after: after.len(),
            t_segment_start: 0,
            end_original: false,
            seed: p.seed,
            fidelity: p.fidelity.into(),
            ..RefineOptions::default()
        };
        // A setting the model cannot honour (a genre it never saw): the original plays, and
        // the error is shown.
        let usable = opts
            .validate()
            .and_then(|()| crate::refine::engine::check_genre(model, opts.target));
        if let Err(e) = usable {
            self.remember(window, original);
            return Err(e);
        }
        let context = p.context_before as usize;
        let mut piece = Piece {
            segments: self.history[self.history.len().saturating_sub(context)..].to_vec(),
        };
        let index = piece.segments.len();
        piece.segments.push(Segment {
            window,
            notes: original.clone(),
        });
        let context_after = after.len();
        piece.segments.extend(after);
        let plan = PassPlan {
            spec: opts.passes[0],
            context_before: context,
            chord_constraint: harmonize,
            verbatim: harmonize,
        };
        // Seeded per segment, so a bounce does not depend on the worker's timing.
        let seed = p.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (job.index as u64);
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut report = RefineReport::default();
        let engine = Engine::new(model, &opts);
        let target = [Target {
            window,
            context_after,
        }];
        let run = engine.run_pass(
            &mut piece,
            0,
            1,
            &plan,
            &target,
            &mut rng,
            &mut report,
            &mut no_progress,
        );
        if let Err(e) = run {
            self.remember(window, original);
            return Err(e);
        }
        if report.refined_windows.is_empty() {
            self.remember(window, original);
            return Ok(Answer::Original);
        }
        let refined = piece.segments[index].notes.clone();
        let answer = Answer::Refined(to_sample_notes(&refined, job.sample_rate));
        self.remember(window, refined);
        Ok(answer)
    }

    /// Keeps what played as context for later segments (non-empty ones, as the engine counts).
    fn remember(&mut self, window: u32, notes: Vec<Note>) {
        if !notes.is_empty() {
            self.history.push(Segment { window, notes });
        }
        let keep = MAX_DELAY as usize + 2;
        if self.history.len() > keep {
            self.history.drain(..self.history.len() - keep);
        }
    }
}

/// Captured notes as the model sees them: milliseconds on the 10 ms grid, velocity bins.
pub fn to_model_notes(notes: &NoteBuf, sample_rate: f32) -> Vec<Note> {
    let ms = |samples: u32| (f64::from(samples) * 1000.0 / f64::from(sample_rate.max(1.0))).round();
    let played: Vec<PlayedNote> = notes
        .as_slice()
        .iter()
        .map(|n| PlayedNote {
            pitch: n.pitch.min(127),
            velocity: n.velocity,
            start_ms: ms(n.onset).clamp(0.0, 4999.0) as u64,
            dur_ms: if n.dur == OPEN {
                5000
            } else {
                ms(n.dur) as u64
            },
        })
        .collect();
    Piece::from_played(&played)
        .segments
        .into_iter()
        .next()
        .map(|s| s.notes)
        .unwrap_or_default()
}

/// Model notes back in samples from the segment's start.
pub fn to_sample_notes(notes: &[Note], sample_rate: f32) -> NoteBuf {
    let samples = |ms: u16| (f64::from(ms) * f64::from(sample_rate) / 1000.0).round() as u32;
    NoteBuf::from_notes(notes.iter().map(|n| SampleNote {
        pitch: n.pitch.min(127),
        velocity: n.velocity.clamp(1, 127),
        onset: samples(n.onset_ms),
        dur: samples(n.dur_ms).max(1),
    }))
}

/// The running worker thread.
pub struct Worker {
    handle: Option<JoinHandle<()>>,
    stop: Arc<AtomicBool>,
}

impl Worker {
    /// Starts the thread; it loads the model from `model` first (off the audio thread) and
    /// computes on `threads` threads (see [`inference_threads`]), all at a lowered priority.
    pub fn spawn(
        model: Option<ModelSource>,
        jobs: Receiver<Msg>,
        replies: Sender<Reply>,
        status: Arc<Status>,
        threads: usize,
    ) -> std::io::Result<Worker> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let handle = std::thread::Builder::new()
            .name("improvnet-worker".into())
            .spawn(move || {
                // Everything runs on this pool, whose threads are ours to join: a host unloads
                // the library after the last instance, and a thread still in its code then
                // crashes the host (rayon's global pool never ends its threads, and a dropped
                // pool ends them only later; Ardour crashed at session close).
                // (None only if the OS refuses threads: then everything runs here.)
                let mut pool_threads = Vec::new();
                let pool = rayon::ThreadPoolBuilder::new()
                    .num_threads(threads.max(1))
                    .spawn_handler(|thread| {
                        let handle = std::thread::Builder::new()
                            .name(format!("improvnet-infer-{}", thread.index()))
                            .spawn(|| thread.run())?;
                        pool_threads.push(handle);
                        Ok(())
                    })
                    .build()
                    .ok();
                // The model loads at the host's normal priority: a thread at idle priority
                // loading hundreds of megabytes behind a busy core stalled the audio thread
                // (blocks 23-33 ms late at start-up in the paced host, docs/plugin.md).
                let load_it = || match model {
                    Some(source) => load(&source, &status),
                    None => {
                        status.set_model_state(ModelState::None);
                        status.set_message("no model: segments pass through".into());
                        None
                    }
                };
                let model = match &pool {
                    Some(pool) => pool.install(load_it),
                    None => load_it(),
                };
                // Then the worker and every pool thread drop to idle priority.
                if let Some(pool) = &pool {
                    pool.broadcast(|_| lower_priority());
                }
                lower_priority();
                match &pool {
                    Some(pool) => pool.install(|| run(model, jobs, replies, status, flag)),
                    None => run(model, jobs, replies, status, flag),
                }
                drop(pool);
                for t in pool_threads {
                    let _ = t.join();
                }
            })?;
        Ok(Worker {
            handle: Some(handle),
            stop,
        })
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// Loads a model folder, naming the folder in the error.
pub fn load_model(dir: &Path) -> Result<ImprovNetModel, String> {
    ImprovNetModel::load(dir, &Device::Cpu)
        .map_err(|e| format!("cannot load the model in {}: {e}", dir.display()))
        .and_then(with_auto_precision)
}

/// The command line's `--precision auto`: the encoder in bf16 where the CPU runs it (a third
/// less time per segment), 8-bit decoder weights where the decoder is memory-bound (the
/// released model); answers within the musical benchmark's seed-to-seed spread.
fn with_auto_precision(mut model: ImprovNetModel) -> Result<ImprovNetModel, String> {
    model
        .set_precision(Precision::Auto)
        .map_err(|e| format!("cannot prepare the model's arithmetic: {e}"))?;
    Ok(model)
}

/// Where the worker takes its model from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ModelSource {
    /// A model folder (`config.json` + `model.safetensors`).
    Folder(PathBuf),
    /// The shipped model built into this binary (feature `embed-model`).
    BuiltIn,
}

impl ModelSource {
    pub fn load(&self) -> Result<ImprovNetModel, String> {
        match self {
            ModelSource::Folder(dir) => load_model(dir),
            ModelSource::BuiltIn => {
                let (config, weights) = super::embedded::model_bytes()
                    .ok_or_else(|| "this build has no built-in model".to_string())?;
                let label = Path::new(super::embedded::LABEL);
                ImprovNetModel::from_bytes(config, weights, label, &Device::Cpu)
                    .map_err(|e| format!("cannot load the {}: {e}", super::embedded::LABEL))
                    .and_then(with_auto_precision)
            }
        }
    }

    /// What the editor shows.
    pub fn describe(&self) -> String {
        match self {
            ModelSource::Folder(dir) => dir.display().to_string(),
            ModelSource::BuiltIn => super::embedded::LABEL.to_string(),
        }
    }
}

/// Loads the model, publishing its state (a failure leaves the segments passing through).
fn load(source: &ModelSource, status: &Status) -> Option<ImprovNetModel> {
    status.set_model_state(ModelState::Loading);
    match source.load() {
        Ok(m) => {
            status.set_model_state(ModelState::Ready);
            status.set_message(source.describe());
            Some(m)
        }
        Err(e) => {
            status.set_model_state(ModelState::Failed);
            status.set_message(format!("{e}; segments pass through"));
            None
        }
    }
}

fn run(
    model: Option<ImprovNetModel>,
    jobs: Receiver<Msg>,
    replies: Sender<Reply>,
    status: Arc<Status>,
    stop: Arc<AtomicBool>,
) {
    let mut refiner = Refiner::new(model);
    let mut latencies = Latencies::default();
    let stall = stall_from_env();
    let debug = std::env::var_os(super::DEBUG_ENV).is_some();
    while !stop.load(Ordering::Relaxed) {
        // Sleeps until a message comes (no polling); wakes now and then to see `stop`.
        let msg = match jobs.recv_timeout(IDLE_WAKE) {
            Ok(msg) => msg,
            Err(RecvTimeoutError::Timeout) => continue,
            Err(RecvTimeoutError::Disconnected) => return,
        };
        let start = Instant::now();
        let answered = match msg {
            Msg::Segment(job) => {
                if refiner.has_model() && !stall.is_zero() && !sleep_unless_stopped(stall, &stop) {
                    return;
                }
                refiner.submit(job)
            }
            Msg::Due { generation, index } => refiner.due(generation, index),
        };
        for (job, answer) in answered {
            let answer = match answer {
                Ok(a) => a,
                Err(e) => {
                    if debug {
                        debug_line(&format!("ImprovNet: segment {}: {e}", job.index));
                    }
                    status.errors.fetch_add(1, Ordering::Relaxed);
                    status.set_message(format!("segment {}: {e}", job.index));
                    Answer::Original
                }
            };
            if matches!(answer, Answer::Refined(_)) {
                status.refined.fetch_add(1, Ordering::Relaxed);
                let ms = start.elapsed().as_millis().min(u128::from(u32::MAX)) as u32;
                status.last_ms.store(ms, Ordering::Relaxed);
                status
                    .median_ms
                    .store(latencies.push(ms), Ordering::Relaxed);
            }
            if debug {
                let what = match &answer {
                    Answer::Refined(notes) => format!("refined, {} notes", notes.len()),
                    Answer::Original => "the original".to_string(),
                };
                debug_line(&format!(
                    "ImprovNet: segment {} (generation {}, {} notes in): {what}",
                    job.index,
                    job.generation,
                    job.notes.len()
                ));
            }
            status.publish_segment(&job, &answer);
            let reply = Reply {
                generation: job.generation,
                index: job.index,
                answer,
            };
            if !send_reply(&replies, reply, &stop) {
                return;
            }
            status.pending.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// Diagnostics ([`super::DEBUG_ENV`]): a line to the file the variable names (a value with a
/// `/`; hosts may not show a plugin's stderr), else to stderr.
pub fn debug_line(line: &str) {
    use std::io::Write;
    let to = std::env::var(super::DEBUG_ENV).unwrap_or_default();
    if to.contains('/') {
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&to)
        {
            let _ = writeln!(f, "{line}");
        }
    } else {
        eprintln!("{line}");
    }
}

/// How often an idle worker wakes to see whether it should stop.
const IDLE_WAKE: Duration = Duration::from_millis(100);

/// The nice value of the worker and its compute threads where Linux refuses `SCHED_IDLE`
/// (0 is normal, 19 the lowest).
pub const WORKER_NICE: i32 = 10;

/// Inference threads for a saved setting (`0` = automatic) on a machine with `cores` cores: at
/// most the cores less one (when there are two or more), so the host's audio thread always has
/// a core; automatic takes exactly that.
pub fn inference_threads(setting: u32, cores: usize) -> usize {
    let most = cores.saturating_sub(1).max(1);
    match setting as usize {
        0 => most,
        n => n.min(most),
    }
}

/// This machine's cores, as the OS reports them to this process.
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Lowers the calling thread's scheduling priority (threads it starts inherit it). Best effort:
/// a refused change leaves the priority as it was.
fn lower_priority() {
    // Linux: `SCHED_IDLE`, so any normal thread that wakes (the host's audio thread, when the
    // host has no realtime scheduling) takes the core at once; a nice value only weighs the
    // share. Both calls with pid/`who` 0 change the calling thread alone (NPTL threads each
    // have their own), not the whole host process.
    #[cfg(target_os = "linux")]
    // SAFETY: plain system calls on the calling thread; `param` outlives the call.
    unsafe {
        let param = libc::sched_param { sched_priority: 0 };
        if libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) != 0 {
            libc::setpriority(libc::PRIO_PROCESS, 0, WORKER_NICE);
        }
    }
    // macOS: the "utility" quality of service, below the host's user-interactive threads.
    #[cfg(target_os = "macos")]
    // SAFETY: plain call on the calling thread, no pointers.
    unsafe {
        libc::pthread_set_qos_class_self_np(libc::qos_class_t::QOS_CLASS_UTILITY, 0);
    }
}

/// Diagnostics: `IMPROVNET_WORKER_STALL_MS` adds that long to every segment the worker takes
/// (with a model), to hear and test what a machine too slow for the delay does.
pub const STALL_ENV: &str = "IMPROVNET_WORKER_STALL_MS";

fn stall_from_env() -> Duration {
    std::env::var(STALL_ENV)
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map_or(Duration::ZERO, Duration::from_millis)
}

/// Sleeps for `d` in short steps; false if told to stop meanwhile.
fn sleep_unless_stopped(d: Duration, stop: &AtomicBool) -> bool {
    let end = Instant::now() + d;
    while Instant::now() < end {
        if stop.load(Ordering::Relaxed) {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5).min(end - Instant::now()));
    }
    true
}

/// Hands a reply to the audio thread, polling while its queue is full; false once stopping.
fn send_reply(replies: &Sender<Reply>, mut reply: Reply, stop: &AtomicBool) -> bool {
    loop {
        match replies.try_send(reply) {
            Ok(()) => return true,
            Err(TrySendError::Full(r)) => {
                if stop.load(Ordering::Relaxed) {
                    return false;
                }
                reply = r;
                std::thread::sleep(Duration::from_millis(1));
            }
            Err(TrySendError::Disconnected(_)) => return false,
        }
    }
}
