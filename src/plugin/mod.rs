//! The live plugin (CLAP + VST3): a MIDI effect that answers each 5 s phrase with its
//! ImprovNet refinement `delay` segments later (DESIGN.md, "The plugin's shape").
//!
//! - [`notes`] — the fixed-capacity note buffer the threads pass by value.
//! - [`capture`] — audio thread: live notes into segments on the sample clock.
//! - [`playback`] — audio thread: refined (or original) segments back out, every on with its off.
//! - [`worker`] — inference thread: the model, the history, the refine engine.
//! - [`params`] — what the host automates and saves.
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
pub mod worker;

use std::num::NonZeroU32;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TryRecvError};
use nice_plug::midi::{Channel, Key, VoiceID};
use nice_plug::prelude::*;

use capture::Capture;
use params::{ImprovParams, Mode};
use playback::{PlayEvent, Playback};
use worker::{Job, ModelSource, ModelState, Reply, Status, Worker};

/// Segment length: the model's T-segment.
pub const SEGMENT_SECONDS: f32 = 5.0;
/// How long after a segment's window held notes may still end and count in full.
pub const GRACE_SECONDS: f32 = 0.25;
/// The environment variable naming a model folder when the project names none (it wins over
/// the built-in model).
pub const MODEL_ENV: &str = "IMPROVNET_MODEL";
/// Samples the host position may differ from the expected one without counting as a seek.
const SEEK_TOLERANCE: i64 = 16;
/// Jobs and replies in flight at most (one segment each).
const QUEUE: usize = 16;
/// Longest an offline render waits for one segment's answer.
const OFFLINE_WAIT: Duration = Duration::from_secs(60);

/// The plugin object the host instantiates.
pub struct ImprovNet {
    params: Arc<ImprovParams>,
    status: Arc<Status>,
    rt: Option<Realtime>,
}

/// Everything that exists between activate and deactivate.
struct Realtime {
    sample_rate: f32,
    offline: bool,
    capture: Capture,
    playback: Playback,
    jobs: Sender<Job>,
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
            if jobs.try_send(job).is_err() {
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

    /// Offline only: waits until the answers for the turns starting in `[from, to)` are in.
    fn wait_for_turns(&mut self, from: i64, to: i64) {
        let Some(first) = self.capture.first() else {
            return;
        };
        for index in self.playback.turns_in(from, to) {
            if index < first {
                continue;
            }
            let deadline = Instant::now() + OFFLINE_WAIT;
            while !self.playback.has_answer(index) && Instant::now() < deadline {
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
}

impl Plugin for ImprovNet {
    const NAME: &'static str = "ImprovNet";
    const VENDOR: &'static str = "ImprovNet-in-Rust";
    const URL: &'static str = "https://github.com/keshavbhandari/improvnet";
    const EMAIL: &'static str = "improvnet@example.invalid";
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
        let (job_tx, job_rx) = crossbeam_channel::bounded(QUEUE);
        let (reply_tx, reply_rx) = crossbeam_channel::bounded(QUEUE);
        // Set before the thread starts, so an offline render never sees a stale state.
        let model = self.model_source();
        self.status.set_model_state(if model.is_some() {
            ModelState::Loading
        } else {
            ModelState::None
        });
        let worker = match Worker::spawn(model, job_rx, reply_tx, self.status.clone()) {
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
            latency: 0,
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
        let params = &*self.params;
        let status = &*self.status;
        let n = buffer.samples() as i64;
        let (host_pos, bar_seconds) = {
            let transport = ctx.transport();
            let pos = if transport.playing {
                transport.pos_samples()
            } else {
                None
            };
            (pos, bar_seconds(transport))
        };
        let seg_len = segment_samples(rt.sample_rate, bar_seconds.filter(|_| params.sync.value()));
        if seg_len != rt.capture.seg_len() {
            // A new tempo or metre: what was captured no longer lines up; start again.
            rt.flush(0, ctx);
            rt.playback.set_seg_len(seg_len);
            rt.capture.set_seg_len(seg_len);
        }
        let t0 = rt.block_start(host_pos, ctx);
        rt.rendered_to = t0;

        if params.bypass.value() {
            // Release what the effect played once, then hand the input on untouched.
            if !rt.bypassed {
                rt.flush(0, ctx);
                rt.bypassed = true;
            }
            while let Some(event) = ctx.next_event() {
                if ctx.try_send_event(event).is_err() {
                    rt.send_failed += 1;
                }
            }
            rt.clock = t0 + n;
            return ProcessStatus::Normal;
        }
        rt.bypassed = false;

        // Mode and delay changes release what sounds; a delay change also moves the grace.
        let mode = params.mode.value();
        let delay = params.delay.value().max(1) as u32;
        if mode != rt.mode || delay != rt.playback.delay() {
            let failed = &mut rt.send_failed;
            rt.playback
                .all_off(0, false, &mut |e| send_event(ctx, e, failed));
            rt.playback.set_delay(delay);
            rt.capture.set_grace(grace(rt.sample_rate, delay));
            rt.mode = mode;
        }
        let latency = if params.align.value() {
            delay * rt.capture.seg_len()
        } else {
            0
        };
        if latency != rt.latency {
            rt.latency = latency;
            ctx.set_latency_samples(latency);
        }

        let thru = params.thru.value();
        while let Some(event) = ctx.next_event() {
            let t = t0 + i64::from(event.timing()).min(n);
            rt.run_to(t0, t, params, status, ctx);
            match event {
                NoteEvent::NoteOn {
                    key: Key::Number(k),
                    velocity,
                    ..
                } if velocity > 0.0 => {
                    // (velocity 0 is a note-off in MIDI 1 terms: next arm)
                    let vel = (velocity * 127.0).round().clamp(1.0, 127.0) as u8;
                    rt.capture.note_on(t, k, vel);
                    if thru && k < 128 {
                        rt.thru_sounding[usize::from(k)] = true;
                        if ctx.try_send_event(event).is_err() {
                            rt.send_failed += 1;
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
                    rt.capture.note_off(t, k);
                    if k < 128
                        && std::mem::take(&mut rt.thru_sounding[usize::from(k)])
                        && ctx.try_send_event(event).is_err()
                    {
                        rt.send_failed += 1;
                    }
                }
                _ => {}
            }
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

/// One bar in seconds at the host's tempo and metre, when the host tells both.
fn bar_seconds(transport: &Transport) -> Option<f64> {
    let tempo = transport.tempo.filter(|t| t.is_finite() && *t > 0.0)?;
    let num = transport.time_sig_numerator.filter(|n| *n > 0)?;
    let den = transport.time_sig_denominator.filter(|d| *d > 0)?;
    Some(f64::from(num) * 4.0 / f64::from(den) * 60.0 / tempo)
}

/// Segment length in samples: 5 s, or with `bar` (seconds) the whole number of bars closest to
/// 5 s (at least one, at most 4 × 5 s so a very slow tempo cannot starve the worker forever).
pub fn segment_samples(sample_rate: f32, bar: Option<f64>) -> u32 {
    let sr = f64::from(sample_rate);
    let seconds = match bar {
        Some(bar) if bar > 0.0 => {
            let target = f64::from(SEGMENT_SECONDS);
            let fewer = (target / bar).floor().max(1.0);
            // On a tie the shorter segment wins: less waiting for the answer.
            let bars = if ((fewer + 1.0) * bar - target).abs() < (fewer * bar - target).abs() {
                fewer + 1.0
            } else {
                fewer
            };
            (bars * bar).min(4.0 * target)
        }
        _ => f64::from(SEGMENT_SECONDS),
    };
    (seconds * sr).round().max(1.0) as u32
}

/// The grace period in samples; none at delay 1, where the original plays right after its window.
fn grace(sample_rate: f32, delay: u32) -> u32 {
    if delay <= 1 {
        0
    } else {
        (GRACE_SECONDS * sample_rate).round() as u32
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
    const VST3_SUBCATEGORIES: &'static [Vst3SubCategory] =
        &[Vst3SubCategory::Instrument, Vst3SubCategory::Tools];
}

nice_export_clap!(ImprovNet);
nice_export_vst3!(ImprovNet);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn synced_segments_are_the_whole_bars_closest_to_five_seconds() {
        let sr = 48_000.0;
        let bar = |bpm: f64, num: f64| num * 60.0 / bpm;
        assert_eq!(segment_samples(sr, None), 240_000);
        // 100 bpm 4/4: 2.4 s bars, two of them.
        assert_eq!(segment_samples(sr, Some(bar(100.0, 4.0))), 230_400);
        // 120 bpm 4/4: 2 s bars; 4 s and 6 s are as close, the shorter wins.
        assert_eq!(segment_samples(sr, Some(bar(120.0, 4.0))), 192_000);
        // 140 bpm 3/4: 1.2857 s bars, four of them (5.14 s).
        assert_eq!(
            segment_samples(sr, Some(bar(140.0, 3.0))),
            (4.0 * 3.0 * 60.0 / 140.0 * 48_000.0_f64).round() as u32
        );
        // 40 bpm 4/4: one 6 s bar; 8 bpm: one 30 s bar, capped at 20 s.
        assert_eq!(segment_samples(sr, Some(bar(40.0, 4.0))), 288_000);
        assert_eq!(segment_samples(sr, Some(bar(8.0, 4.0))), 960_000);
    }
}
