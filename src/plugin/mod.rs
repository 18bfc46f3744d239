//! The live plugin (CLAP + VST3): a MIDI effect that answers each 5 s phrase with its
//! ImprovNet refinement `delay` segments later (docs/design.md, "The plugin's shape"; docs/plugin.md).
//!
//! - [`notes`] — the fixed-capacity note buffer the threads pass by value.
//! - [`capture`] — audio thread: live notes into segments on the sample clock.
//! - [`playback`] — audio thread: refined (or original) segments back out, every on with its off.
//! - [`worker`] — inference thread: the model, the history, the refine engine.
//! - [`params`] — what the host automates and saves; [`presets`] — named settings to start from.
//! - `editor` (feature `editor`) — the egui editor.
//!
//! Only `worker` touches candle; the audio thread uses the other modules and two bounded
//! channels it never blocks on (except in offline rendering, where waiting is the point).

pub mod capture;
#[cfg(feature = "editor")]
pub mod editor;
pub mod embedded;
pub mod notes;
pub mod params;
pub mod playback;
pub mod presets;
pub mod worker;

use std::num::NonZeroU32;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TryRecvError, TrySendError};
use nice_plug::midi::{Channel, Key, VoiceID};
use nice_plug::prelude::*;

use capture::{bar_seconds, grace, segment_samples, Capture};
pub use capture::{GRACE_SECONDS, SEGMENT_SECONDS};
use params::{ImprovParams, Mode};
use playback::{PlayEvent, Playback};
use worker::{Job, ModelSource, ModelState, Msg, Reply, Status, Worker};

/// The environment variable naming a model folder when the project names none (it wins over
/// the built-in model).
pub const MODEL_ENV: &str = "IMPROVNET_MODEL";
/// Diagnostics: with `IMPROVNET_DEBUG` set (to a file path, or anything else for stderr), the
/// worker writes a line per answered segment and each deactivation the status counters.
pub const DEBUG_ENV: &str = "IMPROVNET_DEBUG";
/// Samples the host position may differ from the expected one without counting as a seek.
const SEEK_TOLERANCE: i64 = 16;
/// Jobs and replies in flight at most (one segment each).
const QUEUE: usize = 16;
/// Longest an offline render waits for one segment's answer: a safety net for a worker that
/// died. A live worker answers a due segment at once (see [`Msg::Due`]).
const OFFLINE_WAIT: Duration = Duration::from_secs(60);

/// The plugin object the host instantiates.
pub struct ImprovNet {
    params: Arc<ImprovParams>,
    status: Arc<Status>,
    rt: Option<Realtime>,
    /// The segment length (seconds) the last activation ended with (bar-synced segments follow
    /// the host's tempo), so a reactivation reports the latency the host last saw.
    seg_seconds: f64,
}

/// Everything that exists between activate and deactivate.
struct Realtime {
    sample_rate: f32,
    offline: bool,
    capture: Capture,
    playback: Playback,
    jobs: Sender<Msg>,
    replies: Receiver<Reply>,
    _worker: Worker,
    generation: u32,
    /// Where the next block starts on the plugin's clock.
    clock: i64,
    /// Playback and capture have reached this time in the current block.
    rendered_to: i64,
    following_host: bool,
    flush: bool,
    bypassed: bool,
    mode: Mode,
    latency: u32,
    thru_sounding: [bool; 128],
    send_failed: u64,
}

impl Default for ImprovNet {
    fn default() -> Self {
        Self {
            params: Arc::new(ImprovParams::default()),
            status: Arc::new(Status::default()),
            rt: None,
            seg_seconds: f64::from(SEGMENT_SECONDS),
        }
    }
}

impl ImprovNet {
    /// The status the worker and the audio thread publish (for the editor and tests).
    pub fn status(&self) -> Arc<Status> {
        self.status.clone()
    }

    /// The model: the project's folder, else `$IMPROVNET_MODEL`, else the built-in one (feature
    /// `embed-model`), else none (segments pass through).
    fn model_source(&self) -> Option<ModelSource> {
        let saved = self
            .params
            .model_dir
            .read()
            .map(|s| s.trim().to_string())
            .unwrap_or_default();
        if !saved.is_empty() {
            return Some(ModelSource::Folder(PathBuf::from(saved)));
        }
        if let Some(dir) = std::env::var_os(MODEL_ENV).filter(|v| !v.is_empty()) {
            return Some(ModelSource::Folder(PathBuf::from(dir)));
        }
        embedded::model_bytes().map(|_| ModelSource::BuiltIn)
    }
}

fn send_event<P: Plugin>(ctx: &mut impl ProcessContext<P>, e: PlayEvent, failed: &mut u64) {
    let event = match e {
        PlayEvent::On {
            offset,
            pitch,
            velocity,
        } => NoteEvent::NoteOn {
            timing: offset,
            voice_id: VoiceID::Wildcard,
            channel: Channel::Number(0),
            key: Key::Number(pitch),
            velocity: f32::from(velocity) / 127.0,
        },
        PlayEvent::Off { offset, pitch } => NoteEvent::NoteOff {
            timing: offset,
            voice_id: VoiceID::Wildcard,
            channel: Channel::Number(0),
            key: Key::Number(pitch),
            velocity: 0.0,
        },
    };
    if ctx.try_send_event(event).is_err() {
        *failed += 1;
    }
}

impl Realtime {
    /// Releases everything sounding at `offset` and starts a new generation (seek, stop, reset).
    fn flush<P: Plugin>(&mut self, offset: u32, ctx: &mut impl ProcessContext<P>) {
        let failed = &mut self.send_failed;
        self.playback
            .all_off(offset, true, &mut |e| send_event(ctx, e, failed));
        for (pitch, on) in self.thru_sounding.iter_mut().enumerate() {
            if std::mem::take(on) {
                send_event(
                    ctx,
                    PlayEvent::Off {
                        offset,
                        pitch: pitch as u8,
                    },
                    failed,
                );
            }
        }
        self.capture.reset();
        self.generation = self.generation.wrapping_add(1);
        self.flush = false;
    }

    /// Follows the host: the segment length (bar-synced at its tempo and metre when `sync`), and
    /// the block's start on the plugin's clock (see [`Self::block_start`]).
    fn follow_transport<P: Plugin>(&mut self, sync: bool, ctx: &mut impl ProcessContext<P>) -> i64 {
        let transport = ctx.transport();
        let host_pos = transport.pos_samples().filter(|_| transport.playing);
        let bar = bar_seconds(transport).filter(|_| sync);
        let seg_len = segment_samples(self.sample_rate, bar);
        if seg_len != self.capture.seg_len() {
            // A new tempo or metre: what was captured no longer lines up; start again.
            self.flush(0, ctx);
            self.playback.set_seg_len(seg_len);
            self.capture.set_seg_len(seg_len);
        }
        let t0 = self.block_start(host_pos, ctx);
        self.rendered_to = t0;
        t0
    }

    /// Bypassed: releases what the effect played once, then hands the input on untouched.
    fn pass_through<P: Plugin>(&mut self, end: i64, ctx: &mut impl ProcessContext<P>) {
        if !self.bypassed {
            self.flush(0, ctx);
            self.bypassed = true;
        }
        while let Some(event) = ctx.next_event() {
            if ctx.try_send_event(event).is_err() {
                self.send_failed += 1;
            }
        }
        self.clock = end;
    }

    /// The block's start on the plugin's clock: the host's position (`host`) while its transport
    /// runs (a jump there is a seek), a free-running count otherwise.
    fn block_start<P: Plugin>(
        &mut self,
        host: Option<i64>,
        ctx: &mut impl ProcessContext<P>,
    ) -> i64 {
        match host {
            Some(pos) => {
                // Hosts that give seconds or beats round to samples: a few samples off is no jump.
                if !self.following_host || (pos - self.clock).abs() > SEEK_TOLERANCE {
                    self.flush(0, ctx);
                }
                self.clock = pos;
            }
            None if self.following_host => {
                self.flush(0, ctx);
                self.clock = 0;
            }
            None => {}
        }
        self.following_host = host.is_some();
        if self.flush {
            self.flush(0, ctx);
        }
        self.clock
    }

    /// Brings capture and playback to `t` (within the block that starts at `t0`).
    fn run_to<P: Plugin>(
        &mut self,
        t0: i64,
        t: i64,
        params: &ImprovParams,
        status: &Status,
        ctx: &mut impl ProcessContext<P>,
    ) {
        // Capture always moves (a note at the block's first sample needs its segment open);
        // rendering an empty range does nothing.
        let snapshot = params.snapshot();
        // Samples per model second: the host's rate, or scaled so a bar-synced segment spans
        // the model's 5 s.
        let (generation, sample_rate) = (
            self.generation,
            self.capture.seg_len() as f32 / SEGMENT_SECONDS,
        );
        let jobs = &self.jobs;
        self.capture.advance(t, &mut |index, notes| {
            status.pending.fetch_add(1, Ordering::Relaxed);
            let job = Job {
                generation,
                index,
                notes: *notes,
                params: snapshot,
                sample_rate,
            };
            if jobs.try_send(Msg::Segment(job)).is_err() {
                status.pending.fetch_sub(1, Ordering::Relaxed);
                status.queue_full.fetch_add(1, Ordering::Relaxed);
            }
        });
        self.drain_replies();
        if self.offline {
            wait_while_loading(status);
        }
        let expect =
            snapshot.refine && snapshot.rate > 0.0 && status.model_state() == ModelState::Ready;
        if self.offline && expect {
            self.wait_for_turns(self.rendered_to, t);
        }
        let failed = &mut self.send_failed;
        self.playback
            .render(t0, self.rendered_to, t, &self.capture, expect, &mut |e| {
                send_event(ctx, e, failed)
            });
        self.rendered_to = t;
    }

    fn drain_replies(&mut self) {
        loop {
            match self.replies.try_recv() {
                Ok(r) if r.generation == self.generation => {
                    self.playback.receive(r.index, r.answer)
                }
                Ok(_) => {}
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
            }
        }
    }

    /// Offline only: waits until the answers for the turns starting in `[from, to)` are in,
    /// telling the worker each is due (so it never waits for context that cannot come in time).
    fn wait_for_turns(&mut self, from: i64, to: i64) {
        let Some(first) = self.capture.first() else {
            return;
        };
        for index in self.playback.turns_in(from, to) {
            if index < first || self.playback.has_answer(index) {
                continue;
            }
            let mut due = Some(Msg::Due {
                generation: self.generation,
                index,
            });
            let deadline = Instant::now() + OFFLINE_WAIT;
            while !self.playback.has_answer(index) && Instant::now() < deadline {
                // The worker may be sending replies while the job queue is full: keep draining.
                if let Some(msg) = due.take() {
                    match self.jobs.try_send(msg) {
                        Err(TrySendError::Full(msg)) => due = Some(msg),
                        Err(TrySendError::Disconnected(_)) => return,
                        Ok(()) => {}
                    }
                }
                // (Polling: a blocking receive allocates its waiter once, which the debug
                // builds' allocation check forbids on the audio thread.)
                match self.replies.try_recv() {
                    Ok(r) if r.generation == self.generation => {
                        self.playback.receive(r.index, r.answer)
                    }
                    Ok(_) => {}
                    Err(TryRecvError::Empty) => std::thread::sleep(Duration::from_millis(1)),
                    Err(TryRecvError::Disconnected) => return,
                }
            }
        }
    }

    /// Parameter changes the audio thread acts on: mode and delay release what sounds (a delay
    /// change also moves the grace); "align" and the delay set the reported latency.
    fn apply_params<P: Plugin>(&mut self, params: &ImprovParams, ctx: &mut impl ProcessContext<P>) {
        let mode = params.mode.value();
        let delay = params.delay.value().max(1) as u32;
        if mode != self.mode || delay != self.playback.delay() {
            let failed = &mut self.send_failed;
            self.playback
                .all_off(0, false, &mut |e| send_event(ctx, e, failed));
            self.playback.set_delay(delay);
            self.capture.set_grace(grace(self.sample_rate, delay));
            self.mode = mode;
        }
        let latency = latency_samples(params, self.capture.seg_len());
        if latency != self.latency {
            // The wrapper asks the host for a restart and reports it inside `activate`.
            self.latency = latency;
            ctx.set_latency_samples(latency);
        }
    }

    /// One input event at `t`: captured, and echoed when "MIDI thru" is on.
    fn handle_event<P: Plugin>(
        &mut self,
        t: i64,
        event: PluginNoteEvent<P>,
        thru: bool,
        ctx: &mut impl ProcessContext<P>,
    ) {
        match event {
            NoteEvent::NoteOn {
                key: Key::Number(k),
                velocity,
                ..
            } if velocity > 0.0 => {
                // (velocity 0 is a note-off in MIDI 1 terms: next arm)
                let vel = (velocity * 127.0).round().clamp(1.0, 127.0) as u8;
                self.capture.note_on(t, k, vel);
                if thru && k < 128 {
                    self.thru_sounding[usize::from(k)] = true;
                    if ctx.try_send_event(event).is_err() {
                        self.send_failed += 1;
                    }
                }
            }
            NoteEvent::NoteOn {
                key: Key::Number(k),
                ..
            }
            | NoteEvent::NoteOff {
                key: Key::Number(k),
                ..
            }
            | NoteEvent::Choke {
                key: Key::Number(k),
                ..
            } => {
                self.capture.note_off(t, k);
                if k < 128
                    && std::mem::take(&mut self.thru_sounding[usize::from(k)])
                    && ctx.try_send_event(event).is_err()
                {
                    self.send_failed += 1;
                }
            }
            _ => {}
        }
    }
}

impl Plugin for ImprovNet {
    const NAME: &'static str = "ImprovNet";
    const VENDOR: &'static str = "ImprovNet-in-Rust";
    // No project site or support address yet: none rather than someone else's.
    const URL: &'static str = "";
    const EMAIL: &'static str = "";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");

    /// MIDI only first; a stereo pass-through for hosts that refuse MIDI-only plugins.
    const AUDIO_IO_LAYOUTS: &'static [AudioIOLayout] = &[
        AudioIOLayout::const_default(),
        AudioIOLayout {
            main_input_channels: NonZeroU32::new(2),
            main_output_channels: NonZeroU32::new(2),
            ..AudioIOLayout::const_default()
        },
    ];
    const MIDI_INPUT: MidiConfig = MidiConfig::Basic;
    const MIDI_OUTPUT: MidiConfig = MidiConfig::Basic;
    const SAMPLE_ACCURATE_AUTOMATION: bool = false;

    #[cfg(feature = "editor")]
    type Editor = editor::ImprovEditor;
    #[cfg(not(feature = "editor"))]
    type Editor = ();
    type SysExMessage = ();
    type BackgroundTask = ();

    fn params(&self) -> Arc<dyn Params> {
        self.params.clone()
    }

    #[cfg(feature = "editor")]
    fn editor(&mut self, _executor: AsyncExecutor<Self>) -> Option<Self::Editor> {
        Some(editor::ImprovEditor::new(
            self.params.clone(),
            self.status.clone(),
        ))
    }

    fn activate(
        &mut self,
        _layout: &AudioIOLayout,
        config: &BufferConfig,
        _ctx: &mut impl ActivateContext<Self>,
    ) -> bool {
        let sample_rate = config.sample_rate.max(1.0);
        let seg_len = (SEGMENT_SECONDS * sample_rate).round() as u32;
        let delay = self.params.delay.value().max(1) as u32;
        // The latency is set here, where both formats allow it; `process` changes it only when
        // "align", the delay or the bar length changes (and the host then restarts the plugin).
        let last_seg_len = (self.seg_seconds * f64::from(sample_rate)).round().max(1.0) as u32;
        let latency = latency_samples(&self.params, last_seg_len);
        _ctx.set_latency_samples(latency);
        let (job_tx, job_rx) = crossbeam_channel::bounded(QUEUE);
        let (reply_tx, reply_rx) = crossbeam_channel::bounded(QUEUE);
        // Set before the thread starts, so an offline render never sees a stale state.
        let model = self.model_source();
        self.status.set_model_state(if model.is_some() {
            ModelState::Loading
        } else {
            ModelState::None
        });
        let threads =
            worker::inference_threads(self.params.threads.load(Ordering::Relaxed), worker::cores());
        let worker = match Worker::spawn(model, job_rx, reply_tx, self.status.clone(), threads) {
            Ok(w) => w,
            Err(e) => {
                nice_error!("cannot start the ImprovNet worker thread: {e}");
                return false;
            }
        };
        self.rt = Some(Realtime {
            sample_rate,
            offline: config.process_mode == ProcessMode::Offline,
            capture: Capture::new(seg_len, grace(sample_rate, delay)),
            playback: Playback::new(seg_len, delay),
            jobs: job_tx,
            replies: reply_rx,
            _worker: worker,
            generation: 0,
            clock: 0,
            rendered_to: 0,
            following_host: false,
            flush: false,
            bypassed: false,
            mode: self.params.mode.value(),
            latency,
            thru_sounding: [false; 128],
            send_failed: 0,
        });
        true
    }

    fn reset(&mut self) {
        // No context to send note-offs from here: the next block does it.
        if let Some(rt) = self.rt.as_mut() {
            rt.flush = true;
        }
    }

    fn deactivate(&mut self) {
        if let Some(rt) = &self.rt {
            self.seg_seconds = f64::from(rt.capture.seg_len()) / f64::from(rt.sample_rate);
            if std::env::var_os(DEBUG_ENV).is_some() {
                worker::debug_line(&self.status.summary(rt.offline));
            }
        }
        // Dropping the worker stops and joins its thread.
        self.rt = None;
    }

    fn process(
        &mut self,
        buffer: &mut Buffer,
        _aux: &mut AuxiliaryBuffers,
        ctx: &mut impl ProcessContext<Self>,
    ) -> ProcessStatus {
        // Audio (stereo layout) passes through untouched: the buffer is processed in place.
        let Some(rt) = self.rt.as_mut() else {
            return ProcessStatus::Normal;
        };
        flush_subnormals(buffer);
        // Read per block: a VST3 host may flag an offline bounce only here (Ardour's export).
        rt.offline = ctx.process_mode() == ProcessMode::Offline;
        let (params, status) = (&*self.params, &*self.status);
        let n = buffer.samples() as i64;
        let t0 = rt.follow_transport(params.sync.value(), ctx);
        if params.bypass.value() {
            rt.pass_through(t0 + n, ctx);
            return ProcessStatus::Normal;
        }
        rt.bypassed = false;

        rt.apply_params(params, ctx);
        let thru = params.thru.value();
        while let Some(event) = ctx.next_event() {
            let t = t0 + i64::from(event.timing()).min(n);
            rt.run_to(t0, t, params, status, ctx);
            rt.handle_event(t, event, thru, ctx);
        }
        rt.run_to(t0, t0 + n, params, status, ctx);
        rt.clock = t0 + n;
        status.late.store(rt.playback.late(), Ordering::Relaxed);
        status
            .dropped_notes
            .store(rt.capture.dropped() + rt.send_failed, Ordering::Relaxed);
        ProcessStatus::Normal
    }
}

/// Offline only: a bounce must not depend on how fast the model loads.
fn wait_while_loading(status: &Status) {
    let deadline = Instant::now() + OFFLINE_WAIT;
    while status.model_state() == ModelState::Loading && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// The latency to report: the delay in segments when "align to timeline" is on, else none.
fn latency_samples(params: &ImprovParams, seg_len: u32) -> u32 {
    if params.align.value() {
        (params.delay.value().max(1) as u32).saturating_mul(seg_len)
    } else {
        0
    }
}

/// The stereo layout passes audio through: subnormal input leaves as zero, so no later plugin
/// pays for denormal arithmetic (and validators that flag them pass).
fn flush_subnormals(buffer: &mut Buffer) {
    for channel in buffer.as_slice() {
        for x in channel.iter_mut() {
            if x.is_subnormal() {
                *x = 0.0;
            }
        }
    }
}

impl ClapPlugin for ImprovNet {
    const CLAP_ID: &'static str = "org.improvnet-in-rust.improvnet";
    const CLAP_DESCRIPTION: Option<&'static str> =
        Some("Answers your piano phrases with ImprovNet improvisations");
    const CLAP_MANUAL_URL: Option<&'static str> = None;
    const CLAP_SUPPORT_URL: Option<&'static str> = None;
    const CLAP_FEATURES: &'static [ClapFeature] = &[ClapFeature::NoteEffect, ClapFeature::Utility];
}

impl Vst3Plugin for ImprovNet {
    const VST3_CLASS_ID: [u8; 16] = *b"ImprovNetRustFx1";
    // VST3 has no MIDI-effect category: "Fx|Tools" files it with the effects (it makes no sound),
    // where hosts that take VST3 MIDI effects (Ardour, REAPER, Bitwig) let it sit on a MIDI track.
    const VST3_SUBCATEGORIES: &'static [Vst3SubCategory] =
        &[Vst3SubCategory::Fx, Vst3SubCategory::Tools];
}

nice_export_clap!(ImprovNet);
nice_export_vst3!(ImprovNet);
