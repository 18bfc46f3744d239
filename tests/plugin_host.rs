//! A real CLAP host (clack-host) drives the built plugin library: 48 kHz, 256-sample blocks,
//! live-sized input, parameters automated through CLAP events, realtime and offline rendering.
#![cfg(feature = "plugin")]

#[path = "common/plugin_library.rs"]
mod plugin_library;
mod refine_common;

use std::sync::Mutex;

use clack_extensions::latency::PluginLatency;
use clack_extensions::params::PluginParams;
use clack_extensions::render::{PluginRender, RenderMode};
use clack_extensions::state::PluginState;
use clack_host::events::event_types::{
    NoteOffEvent, NoteOnEvent, ParamValueEvent, TransportEvent, TransportFlags,
};
use clack_host::events::{EventFlags, EventHeader, Match};
use clack_host::prelude::*;
use clack_host::utils::ClapId;
use clack_host::utils::{BeatTime, SecondsTime};

const SR: u32 = 48_000;
const BLOCK: u32 = 256;
const SEG: i64 = 5 * SR as i64;

struct Shared;
impl SharedHandler<'_> for Shared {
    fn request_restart(&self) {}
    fn request_process(&self) {}
    fn request_callback(&self) {}
}
struct TestHost;
impl HostHandlers for TestHost {
    type Shared<'a> = Shared;
    type MainThread<'a> = ();
    type AudioProcessor<'a> = ();
}

/// nice-plug's CLAP parameter id: a 31-bit string hash.
fn param_id(id: &str) -> ClapId {
    let mut h: u32 = 0;
    for b in id.bytes() {
        h = h.wrapping_mul(31).wrapping_add(u32::from(b));
    }
    ClapId::new(h & !(1 << 31))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Ev {
    time: i64,
    key: u16,
    on: bool,
}

/// Input: a note (key, onset, length in samples) every 0.4 s for `seconds`.
fn phrase(seconds: i64) -> Vec<Ev> {
    // One note on the very first sample.
    let mut v = vec![
        Ev {
            time: 0,
            key: 50,
            on: true,
        },
        Ev {
            time: 5000,
            key: 50,
            on: false,
        },
    ];
    let mut t = 1000;
    let mut k = 0;
    while t < seconds * i64::from(SR) {
        let key = [60u16, 64, 67, 72, 67, 64][k % 6];
        v.push(Ev {
            time: t,
            key,
            on: true,
        });
        v.push(Ev {
            time: t + 9000,
            key,
            on: false,
        });
        t += 19_200;
        k += 1;
    }
    v.sort_by_key(|e| (e.time, e.on));
    v
}

/// The first `seconds` of the fixture performance (`tests/data/chopin_nocturne_op15_1.mid`, real
/// playing with pedal) as note events: durations capped at 4 s, and a repeated key's earlier
/// note ended just before the next strike, so every on has its off.
fn fixture(seconds: u64) -> Vec<Ev> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/chopin_nocturne_op15_1.mid"
    );
    let bytes = std::fs::read(path).expect("the fixture file");
    let notes: Vec<_> = improvnet::music::parse_midi(&bytes, path)
        .expect("the fixture parses")
        .notes
        .into_iter()
        .filter(|n| n.start_ms < seconds * 1000)
        .collect();
    let samples = |ms: u64| ms as i64 * i64::from(SR) / 1000;
    let mut v = Vec::new();
    for (i, n) in notes.iter().enumerate() {
        let start = samples(n.start_ms);
        let mut end = start + samples(n.dur_ms.clamp(10, 4000));
        if let Some(next) = notes[i + 1..].iter().find(|m| m.pitch == n.pitch) {
            end = end.min(samples(next.start_ms) - 1);
        }
        if end > start {
            let key = u16::from(n.pitch);
            v.push(Ev {
                time: start,
                key,
                on: true,
            });
            v.push(Ev {
                time: end,
                key,
                on: false,
            });
        }
    }
    v.sort_by_key(|e| (e.time, e.on));
    v
}

/// The host's timeline for one block starting at `t` (samples): `None` = no transport info.
type Timeline<'a> = &'a dyn Fn(i64) -> Option<TransportEvent>;

/// A transport playing at `pos` samples, `bpm` in 4/4 (`playing` false: stopped there).
fn transport(pos: i64, bpm: f64, playing: bool) -> TransportEvent {
    let seconds = pos as f64 / f64::from(SR);
    let beats = seconds * bpm / 60.0;
    let mut flags = TransportFlags::HAS_TEMPO
        | TransportFlags::HAS_BEATS_TIMELINE
        | TransportFlags::HAS_SECONDS_TIMELINE
        | TransportFlags::HAS_TIME_SIGNATURE;
    if playing {
        flags |= TransportFlags::IS_PLAYING;
    }
    let bar = (beats / 4.0).floor();
    TransportEvent {
        header: EventHeader::new_core(0, EventFlags::empty()),
        flags,
        song_pos_beats: BeatTime::from_float(beats),
        song_pos_seconds: SecondsTime::from_float(seconds),
        tempo: bpm,
        tempo_inc: 0.0,
        loop_start_beats: BeatTime::from_int(0),
        loop_end_beats: BeatTime::from_int(0),
        loop_start_seconds: SecondsTime::from_int(0),
        loop_end_seconds: SecondsTime::from_int(0),
        bar_start: BeatTime::from_float(bar * 4.0),
        bar_number: bar as i32,
        time_signature_numerator: 4,
        time_signature_denominator: 4,
    }
}

/// One session's settings.
#[derive(Default)]
struct Setup<'a> {
    /// (id, CLAP value) sent in the first block.
    params: &'a [(&'a str, f64)],
    offline: bool,
    timeline: Option<Timeline<'a>>,
    /// A saved state loaded before activation.
    state: Option<&'a [u8]>,
    /// (sample, id, CLAP value) sent in the block that contains the sample.
    automation: &'a [(i64, &'a str, f64)],
    /// The render extension switches to offline at the block that contains this sample, while
    /// the plugin is active (no restart: the mode counts from that block on).
    offline_from: Option<i64>,
}

/// What came out of a session.
struct Outcome {
    /// Output note events in absolute samples (block start + offset).
    events: Vec<Ev>,
    /// The latency the plugin reported after the last block.
    latency: u32,
    /// The plugin's saved state after the session.
    state: Vec<u8>,
    /// Parameter values after the session, in the order asked for by [`Outcome::value`].
    values: Vec<(ClapId, f64)>,
    /// The longest `process()` call.
    longest_block: std::time::Duration,
}

impl Outcome {
    fn value(&self, id: &str) -> f64 {
        let id = param_id(id);
        self.values
            .iter()
            .find(|(i, _)| *i == id)
            .map(|(_, v)| *v)
            .unwrap_or_else(|| panic!("no parameter {id:?}"))
    }
}

/// Plays `input` through the plugin for `total` samples; returns the output note events.
fn session(input: &[Ev], total: i64, params: &[(&str, f64)], offline: bool) -> Vec<Ev> {
    run(
        input,
        total,
        &Setup {
            params,
            offline,
            ..Setup::default()
        },
    )
    .events
}

/// Loads the plugin library, runs one session as `setup` says, and reads back its state.
fn run(input: &[Ev], total: i64, setup: &Setup) -> Outcome {
    let host_info = HostInfo::new("improvnet-test", "tests", "https://example.invalid", "0.1")
        .expect("host info");
    let entry = unsafe { PluginEntry::load(plugin_library::plugin_library("IMPROVNET_TEST_CLAP")) }
        .expect("load the plugin library");
    let factory = entry.get_plugin_factory().expect("a plugin factory");
    let descriptor = factory
        .plugin_descriptors()
        .find(|d| {
            d.id()
                .is_some_and(|id| id.to_bytes() == b"org.improvnet-in-rust.improvnet")
        })
        .expect("the ImprovNet descriptor");
    let id = descriptor.id().expect("id").to_owned();
    let mut instance = PluginInstance::<TestHost>::new(|_| Shared, |_| (), &entry, &id, &host_info)
        .expect("instance");
    let state_ext: PluginState = instance
        .plugin_handle()
        .get_extension()
        .expect("the state extension");
    if let Some(mut saved) = setup.state {
        state_ext
            .load(&instance.plugin_handle(), &mut saved)
            .expect("load the saved state");
    }
    if setup.offline {
        let render: PluginRender = instance
            .plugin_handle()
            .get_extension()
            .expect("the render extension");
        render
            .set(&instance.plugin_handle(), RenderMode::Offline)
            .expect("offline render mode");
    }
    let config = PluginAudioConfiguration {
        sample_rate: f64::from(SR),
        min_frames_count: BLOCK,
        max_frames_count: BLOCK,
    };
    let processor = instance.activate(|_, _| (), config).expect("activate");
    let mut processor = processor.start_processing().expect("start processing");
    let mut out = Vec::new();
    let mut in_buf = EventBuffer::new();
    let mut out_buf = EventBuffer::new();
    let mut next = 0;
    let mut t0 = 0i64;
    let mut longest_block = std::time::Duration::ZERO;
    let block_end = |t0: i64| t0 + i64::from(BLOCK);
    while t0 < total {
        in_buf.clear();
        out_buf.clear();
        if setup
            .offline_from
            .is_some_and(|t| (t0..block_end(t0)).contains(&t))
        {
            let render: PluginRender = instance
                .plugin_handle()
                .get_extension()
                .expect("the render extension");
            render
                .set(&instance.plugin_handle(), RenderMode::Offline)
                .expect("offline render mode");
        }
        for &(_, name, value) in setup
            .automation
            .iter()
            .filter(|(t, _, _)| (t0..block_end(t0)).contains(t))
        {
            in_buf.push(&ParamValueEvent::new(
                0,
                param_id(name),
                Pckn::match_all(),
                value,
            ));
        }
        if t0 == 0 {
            for (name, value) in setup.params {
                in_buf.push(&ParamValueEvent::new(
                    0,
                    param_id(name),
                    Pckn::match_all(),
                    *value,
                ));
            }
        }
        while next < input.len() && input[next].time < t0 + i64::from(BLOCK) {
            let e = input[next];
            let time = (e.time - t0) as u32;
            let pckn = Pckn::new(0u16, 0u16, e.key, Match::All);
            if e.on {
                in_buf.push(&NoteOnEvent::new(time, pckn, 0.8));
            } else {
                in_buf.push(&NoteOffEvent::new(time, pckn, 0.0));
            }
            next += 1;
        }
        let timeline = setup.timeline.and_then(|f| f(t0));
        // A MIDI-only plugin has no audio ports: the frame count must be declared.
        let input_audio = unsafe { InputAudioBuffers::from_raw_buffers(&[], BLOCK) };
        let mut output_audio = unsafe { OutputAudioBuffers::from_raw_buffers(&mut [], BLOCK) };
        let started = std::time::Instant::now();
        processor
            .process(
                &input_audio,
                &mut output_audio,
                &InputEvents::from_buffer(&in_buf),
                &mut OutputEvents::from_buffer(&mut out_buf),
                None,
                timeline.as_ref(),
            )
            .expect("process");
        longest_block = longest_block.max(started.elapsed());
        for e in out_buf.iter() {
            let time = t0 + i64::from(e.header().time());
            if let Some(on) = e.as_event::<NoteOnEvent>() {
                if let Match::Specific(key) = on.pckn().key {
                    out.push(Ev {
                        time,
                        key,
                        on: true,
                    });
                }
            } else if let Some(off) = e.as_event::<NoteOffEvent>() {
                if let Match::Specific(key) = off.pckn().key {
                    out.push(Ev {
                        time,
                        key,
                        on: false,
                    });
                }
            }
        }
        t0 += i64::from(BLOCK);
    }
    let processor = processor.stop_processing();
    instance.deactivate(processor);

    let latency: PluginLatency = instance
        .plugin_handle()
        .get_extension()
        .expect("the latency extension");
    let latency = latency.get(&instance.plugin_handle());
    let mut state = Vec::new();
    state_ext
        .save(&instance.plugin_handle(), &mut state)
        .expect("save the state");
    let params: PluginParams = instance
        .plugin_handle()
        .get_extension()
        .expect("the params extension");
    let values = ["rate", "delay", "sync", "align", "genre", "seed"]
        .iter()
        .map(|name| {
            let id = param_id(name);
            let v = params
                .get_value(&instance.plugin_handle(), id)
                .unwrap_or_else(|| panic!("no value for {name}"));
            (id, v)
        })
        .collect();
    Outcome {
        events: out,
        latency,
        state,
        values,
        longest_block,
    }
}

/// Every on has its off, in order, per key; nothing left sounding.
fn assert_balanced(events: &[Ev]) {
    let mut sounding = [false; 128];
    for e in events {
        let s = &mut sounding[usize::from(e.key)];
        assert_ne!(*s, e.on, "unbalanced {e:?}");
        *s = e.on;
    }
    assert!(sounding.iter().all(|s| !s), "stuck notes at the end");
}

/// Each of the first `turns` input segments was answered by the model: the notes starting in its
/// turn (`delay` segments later) are not those of the delayed input.
fn assert_turns_refined(out: &[Ev], input: &[Ev], delay: i64, turns: i64) {
    let expected = shifted(input, delay * SEG);
    let onsets = |v: &[Ev], s: i64| -> Vec<Ev> {
        let turn = (s + delay) * SEG..(s + delay + 1) * SEG;
        sorted(
            v.iter()
                .filter(|e| e.on && turn.contains(&e.time))
                .copied()
                .collect(),
        )
    };
    for s in 0..turns {
        assert_ne!(
            onsets(out, s),
            onsets(&expected, s),
            "segment {s} was not refined"
        );
    }
}

fn shifted(input: &[Ev], by: i64) -> Vec<Ev> {
    input
        .iter()
        .map(|e| Ev {
            time: e.time + by,
            ..*e
        })
        .collect()
}

fn sorted(mut v: Vec<Ev>) -> Vec<Ev> {
    v.sort_by_key(|e| (e.time, e.on, e.key));
    v
}

/// The tests set `IMPROVNET_MODEL` and friends for the plugin library in this process: one at a
/// time.
static ENV: Mutex<()> = Mutex::new(());

fn env_lock() -> std::sync::MutexGuard<'static, ()> {
    let guard = ENV.lock().unwrap_or_else(|e| e.into_inner());
    for var in ["IMPROVNET_MODEL", "IMPROVNET_WORKER_STALL_MS"] {
        std::env::remove_var(var);
    }
    guard
}

#[test]
fn a_clap_host_drives_the_plugin() {
    let _env = env_lock();
    let input = phrase(12);
    let total = 7 * SEG;

    // 1. No model: the input comes back unchanged, two segments (the default delay) later.
    std::env::remove_var("IMPROVNET_MODEL");
    let out = session(&input, total, &[], false);
    assert_balanced(&out);
    assert_eq!(sorted(out), sorted(shifted(&input, 2 * SEG)));

    // The fixture performance (20 s, chords and pedalled lines across segment boundaries)
    // comes back note for note.
    let chopin = fixture(20);
    assert!(chopin.len() > 100, "{} events", chopin.len());
    let out = session(&chopin, total, &[], false);
    assert_balanced(&out);
    assert_eq!(sorted(out), sorted(shifted(&chopin, 2 * SEG)));

    // 2. Delay automated to 3 segments (CLAP value = steps above the minimum of 1).
    let out = session(&input, total, &[("delay", 2.0)], false);
    assert_eq!(sorted(out), sorted(shifted(&input, 3 * SEG)));

    // Bypass: the input passes through at once, untouched.
    let out = session(&input, total, &[("bypass", 1.0)], false);
    assert_eq!(sorted(out), sorted(input.clone()));

    // 3. A (tiny, random) model, corruption rate automated to 0: pass-through, delayed.
    let dir = tempfile::tempdir().expect("temp dir");
    refine_common::save_tiny_model(dir.path(), 7);
    std::env::set_var("IMPROVNET_MODEL", dir.path());
    let out = session(&input, total, &[("rate", 0.0)], true);
    assert_eq!(sorted(out), sorted(shifted(&input, 2 * SEG)));

    // 4. Rate 1, offline: each segment is answered by the model, `delay` segments later, and
    //    two bounces with one seed are identical.
    let a = session(&input, total, &[("rate", 1.0)], true);
    assert_balanced(&a);
    assert_ne!(
        sorted(a.clone()),
        sorted(shifted(&input, 2 * SEG)),
        "nothing was refined"
    );
    assert!(
        a.iter().all(|e| e.time >= 2 * SEG),
        "output before its delay: {:?}",
        a.first()
    );
    let b = session(&input, total, &[("rate", 1.0)], true);
    assert_eq!(a, b, "offline bounces differ");

    // The fixture refined offline: balanced, nothing before its delay, not the input.
    let refined = session(&chopin, total, &[("rate", 1.0)], true);
    assert_balanced(&refined);
    assert!(refined.iter().all(|e| e.time >= 2 * SEG));
    assert_ne!(sorted(refined), sorted(shifted(&chopin, 2 * SEG)));

    // 5. Delay 4: two later segments are after-context; the bounce waits for them and still
    //    answers every segment on time (nothing falls back: the output differs from the input).
    let c = session(
        &input,
        total + 2 * SEG,
        &[("rate", 1.0), ("delay", 3.0)],
        true,
    );
    assert_balanced(&c);
    assert!(c.iter().all(|e| e.time >= 4 * SEG), "{:?}", c.first());
    assert_turns_refined(&c, &input, 4, 3);
    std::env::remove_var("IMPROVNET_MODEL");
}

#[test]
fn synced_to_bars_segments_are_whole_bars_at_the_host_tempo() {
    let _env = env_lock();
    // 100 bpm in 4/4: 2.4 s bars; the two closest to 5 s make 4.8 s segments.
    let seg = 230_400;
    let input = phrase(10);
    let playing = |t: i64| Some(transport(t, 100.0, true));
    let setup = Setup {
        params: &[("sync", 1.0)],
        timeline: Some(&playing),
        ..Setup::default()
    };
    let out = run(&input, 5 * seg, &setup);
    assert_balanced(&out.events);
    assert_eq!(sorted(out.events), sorted(shifted(&input, 2 * seg)));

    // Unsynced, the same timeline keeps 5 s segments.
    let setup = Setup {
        timeline: Some(&playing),
        ..Setup::default()
    };
    let out = run(&input, 5 * seg, &setup);
    assert_eq!(sorted(out.events), sorted(shifted(&input, 2 * SEG)));
}

#[test]
fn stopping_or_jumping_the_transport_releases_every_note() {
    let _env = env_lock();
    let input = phrase(6);
    // The first answer notes sound from 2 segments on; stop while one of them sounds
    // (input note 1000..10000 samples into its segment, so 2 * SEG + 1000..10000 out).
    let stop = 2 * SEG + 5120;
    assert_eq!(stop % i64::from(BLOCK), 0);
    let until_stop = |t: i64| Some(transport(t.min(stop), 120.0, t < stop));
    let setup = Setup {
        timeline: Some(&until_stop),
        ..Setup::default()
    };
    let out = run(&input, 3 * SEG, &setup).events;
    assert_balanced(&out);
    let (before, after): (Vec<Ev>, Vec<Ev>) = out.iter().partition(|e| e.time < stop);
    assert!(
        before.iter().any(|e| e.on),
        "nothing played before the stop"
    );
    assert!(
        !after.is_empty() && after.iter().all(|e| !e.on && e.time == stop),
        "the stop block must only release notes: {after:?}"
    );

    // A jump back (a loop) at the same moment: released there, and the answers start over
    // two segments after the new position.
    let jump = |t: i64| {
        let pos = if t < stop { t } else { t - stop };
        Some(transport(pos, 120.0, true))
    };
    let setup = Setup {
        timeline: Some(&jump),
        ..Setup::default()
    };
    let out = run(&input, stop + 3 * SEG, &setup).events;
    assert_balanced(&out);
    let at_jump: Vec<&Ev> = out.iter().filter(|e| e.time == stop).collect();
    assert!(
        !at_jump.is_empty() && at_jump.iter().all(|e| !e.on),
        "the jump must release what sounds: {at_jump:?}"
    );
    // After the jump the input is past its end: nothing new is captured, so nothing plays.
    assert!(
        out.iter().all(|e| e.time <= stop),
        "old answers played after the jump: {:?}",
        out.iter().find(|e| e.time > stop)
    );
}

#[test]
fn late_answers_fall_back_to_the_original() {
    let _env = env_lock();
    let dir = tempfile::tempdir().expect("temp dir");
    refine_common::save_tiny_model(dir.path(), 7);
    std::env::set_var("IMPROVNET_MODEL", dir.path());
    // Each answer takes 3 s of wall time; this host plays the 35 s in far less.
    std::env::set_var("IMPROVNET_WORKER_STALL_MS", "3000");
    let input = phrase(12);
    let out = session(&input, 7 * SEG, &[("rate", 1.0)], false);
    assert_balanced(&out);
    assert_eq!(sorted(out), sorted(shifted(&input, 2 * SEG)));
}

#[test]
fn align_reports_the_delay_as_latency_and_the_state_restores() {
    let _env = env_lock();
    let input = phrase(3);
    let setup = Setup {
        params: &[
            ("align", 1.0),
            ("delay", 2.0),
            ("rate", 0.37),
            ("sync", 1.0),
            ("seed", 42.0),
        ],
        ..Setup::default()
    };
    let first = run(&input, SEG, &setup);
    // Delay 3 segments (the CLAP value counts steps above 1); no tempo, so 5 s segments.
    assert_eq!(first.latency, 3 * SEG as u32);
    // (nice-plug keeps values as f32.)
    let close = |a: f64, b: f64| (a - b).abs() < 1e-6;
    assert!(close(first.value("rate"), 0.37), "{}", first.value("rate"));
    assert!(close(first.value("delay"), 2.0), "{}", first.value("delay"));

    // A new instance given the saved state has the same values and reports the same latency.
    let restored = run(
        &input,
        SEG,
        &Setup {
            state: Some(&first.state),
            ..Setup::default()
        },
    );
    for name in ["rate", "delay", "sync", "align", "genre", "seed"] {
        assert_eq!(restored.value(name), first.value(name), "{name}");
    }
    assert_eq!(restored.latency, first.latency);

    // Without align, no latency.
    let plain = run(&input, SEG, &Setup::default());
    assert_eq!(plain.latency, 0);
}

/// For a bundle built with `embed-model`: with no model folder anywhere, the built-in model
/// answers (offline, so nothing is late). Run against such a bundle with
/// `IMPROVNET_TEST_CLAP=target/bundled/ImprovNet.clap cargo test --test plugin_host -- --ignored`.
#[test]
#[ignore = "needs IMPROVNET_TEST_CLAP pointing at a bundle built with --features embed-model"]
fn a_bundle_with_the_built_in_model_refines_without_a_model_folder() {
    let _env = env_lock();
    assert!(
        std::env::var_os("IMPROVNET_TEST_CLAP").is_some(),
        "set IMPROVNET_TEST_CLAP to a bundle built with --features embed-model"
    );
    let input = phrase(12);
    let out = session(&input, 7 * SEG, &[("rate", 1.0)], true);
    assert_balanced(&out);
    assert_turns_refined(&out, &input, 2, 2);
}

#[test]
fn an_offline_render_flagged_while_active_waits_for_every_answer() {
    let _env = env_lock();
    let dir = tempfile::tempdir().expect("temp dir");
    refine_common::save_tiny_model(dir.path(), 7);
    std::env::set_var("IMPROVNET_MODEL", dir.path());
    // Every answer takes 0.5 s of wall time: live, this host (far faster than real time) would
    // hear the originals (see `late_answers_fall_back_to_the_original`).
    std::env::set_var("IMPROVNET_WORKER_STALL_MS", "500");
    let input = phrase(12);
    // Activated for realtime; the host flags offline rendering at the first block, as a VST3
    // host does through `ProcessData::processMode` (the wrapper asks for a restart this host
    // never makes: the mode must count from the block on).
    let setup = Setup {
        params: &[("rate", 1.0)],
        offline_from: Some(0),
        ..Setup::default()
    };
    let a = run(&input, 7 * SEG, &setup).events;
    assert_balanced(&a);
    assert_turns_refined(&a, &input, 2, 3);
    let b = run(&input, 7 * SEG, &setup).events;
    assert_eq!(a, b, "offline bounces differ");
    std::env::remove_var("IMPROVNET_MODEL");
}

#[test]
fn shortening_the_delay_mid_bounce_never_stalls_a_block() {
    let _env = env_lock();
    let dir = tempfile::tempdir().expect("temp dir");
    refine_common::save_tiny_model(dir.path(), 7);
    std::env::set_var("IMPROVNET_MODEL", dir.path());
    let input = phrase(40);
    // Delay 8 segments (CLAP value 7), automated to 2 after three segments: the segments
    // captured at delay 8 wait for six later ones that arrive only after their new turn.
    let setup = Setup {
        params: &[("rate", 1.0), ("delay", 7.0)],
        automation: &[(3 * SEG + 1000, "delay", 1.0)],
        offline: true,
        ..Setup::default()
    };
    let a = run(&input, 12 * SEG, &setup);
    assert_balanced(&a.events);
    // One refinement with the tiny model takes well under a second; a block that waits for
    // context that never comes would take the 60 s safety net.
    println!("longest block: {:?}", a.longest_block);
    assert!(
        a.longest_block < std::time::Duration::from_secs(10),
        "a block waited {:?}",
        a.longest_block
    );
    // Every turn after the change is refined, from segment 3 on (delay 2: heard at 5 and on).
    let expected = shifted(&input, 2 * SEG);
    for s in 3..8 {
        let turn = (s + 2) * SEG..(s + 3) * SEG;
        let onsets = |v: &[Ev]| -> Vec<Ev> {
            sorted(
                v.iter()
                    .filter(|e| e.on && turn.contains(&e.time))
                    .copied()
                    .collect(),
            )
        };
        assert_ne!(
            onsets(&a.events),
            onsets(&expected),
            "segment {s} not refined"
        );
    }
    let b = run(&input, 12 * SEG, &setup);
    assert_eq!(a.events, b.events, "offline bounces differ");
    std::env::remove_var("IMPROVNET_MODEL");
}

/// A host that implements the latency extension and records where `changed()` comes from.
mod latency_host {
    use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
    use std::sync::Arc;

    use clack_extensions::latency::{HostLatency, HostLatencyImpl};
    use clack_host::prelude::*;

    #[derive(Default)]
    pub struct Log {
        pub in_activate: AtomicBool,
        pub changed_inside: AtomicU32,
        pub changed_outside: AtomicU32,
        pub restarts: AtomicU32,
    }

    pub struct Shared(pub Arc<Log>);
    impl SharedHandler<'_> for Shared {
        fn request_restart(&self) {
            self.0.restarts.fetch_add(1, Ordering::SeqCst);
        }
        fn request_process(&self) {}
        fn request_callback(&self) {}
    }

    pub struct Main(pub Arc<Log>);
    impl MainThreadHandler<'_> for Main {}
    impl HostLatencyImpl for Main {
        fn changed(&self) {
            let counter = if self.0.in_activate.load(Ordering::SeqCst) {
                &self.0.changed_inside
            } else {
                &self.0.changed_outside
            };
            counter.fetch_add(1, Ordering::SeqCst);
        }
    }

    pub struct LatencyHost;
    impl HostHandlers for LatencyHost {
        type Shared<'a> = Shared;
        type MainThread<'a> = Main;
        type AudioProcessor<'a> = ();
        fn declare_extensions(builder: &mut HostExtensions<Self>, _shared: &Shared) {
            builder.register::<HostLatency>();
        }
    }
}

#[test]
fn latency_changes_reach_the_host_only_inside_activate() {
    use latency_host::{LatencyHost, Log, Main, Shared};
    use std::sync::atomic::Ordering::SeqCst;
    use std::sync::Arc;

    let _env = env_lock();
    let log = Arc::new(Log::default());
    let host_info = HostInfo::new("improvnet-test", "tests", "https://example.invalid", "0.1")
        .expect("host info");
    let entry = unsafe { PluginEntry::load(plugin_library::plugin_library("IMPROVNET_TEST_CLAP")) }
        .expect("load the plugin library");
    let id = c"org.improvnet-in-rust.improvnet";
    let (l1, l2) = (log.clone(), log.clone());
    let mut instance = PluginInstance::<LatencyHost>::new(
        move |_| Shared(l1),
        move |_| Main(l2),
        &entry,
        id,
        &host_info,
    )
    .expect("instance");
    let config = PluginAudioConfiguration {
        sample_rate: f64::from(SR),
        min_frames_count: BLOCK,
        max_frames_count: BLOCK,
    };
    let activate = |instance: &mut PluginInstance<LatencyHost>| {
        log.in_activate.store(true, SeqCst);
        let p = instance.activate(|_, _| (), config).expect("activate");
        log.in_activate.store(false, SeqCst);
        p.start_processing().expect("start processing")
    };
    // One block on an audio thread of its own (nice-plug runs main-thread tasks at once when
    // asked from the main thread, which would hide the race).
    let block = |processor: &mut StartedPluginAudioProcessor<LatencyHost>,
                 params: &[(&str, f64)]| {
        std::thread::scope(|s| {
            s.spawn(|| audio_block(processor, params))
                .join()
                .expect("audio thread")
        })
    };
    let latency = |instance: &mut PluginInstance<LatencyHost>| -> u32 {
        let ext: PluginLatency = instance
            .plugin_handle()
            .get_extension()
            .expect("the latency extension");
        ext.get(&instance.plugin_handle())
    };

    // 1. "Align" switched on while playing: the plugin asks for a restart from the main thread,
    //    and the new latency is reported inside the next activate.
    let mut processor = activate(&mut instance);
    block(&mut processor, &[("align", 1.0)]);
    block(&mut processor, &[]);
    instance.call_on_main_thread_callback();
    assert_eq!(log.restarts.load(SeqCst), 1, "no restart asked for");
    assert_eq!(log.changed_outside.load(SeqCst), 0);
    instance.deactivate(processor.stop_processing());
    let mut processor = activate(&mut instance);
    assert_eq!(log.changed_inside.load(SeqCst), 1);
    assert_eq!(latency(&mut instance), 2 * SEG as u32);

    // 2. The delay changes and the host deactivates before its main thread runs the plugin's
    //    callback (the race clap-validator's fuzzer hit): still nothing outside activate.
    block(&mut processor, &[("delay", 3.0)]);
    instance.deactivate(processor.stop_processing());
    instance.call_on_main_thread_callback();
    assert_eq!(
        log.changed_outside.load(SeqCst),
        0,
        "changed() outside activate"
    );
    let mut processor = activate(&mut instance);
    assert_eq!(log.changed_inside.load(SeqCst), 2);
    assert_eq!(latency(&mut instance), 4 * SEG as u32);

    // 3. Reactivating with the latency unchanged reports nothing and asks for no restart.
    block(&mut processor, &[]);
    instance.call_on_main_thread_callback();
    instance.deactivate(processor.stop_processing());
    let processor = activate(&mut instance);
    instance.deactivate(processor.stop_processing());
    instance.call_on_main_thread_callback();
    assert_eq!(log.changed_inside.load(SeqCst), 2);
    assert_eq!(log.changed_outside.load(SeqCst), 0);
    assert_eq!(log.restarts.load(SeqCst), 1);
}

/// One block of a [`latency_host`] session, no input notes.
fn audio_block(
    processor: &mut StartedPluginAudioProcessor<latency_host::LatencyHost>,
    params: &[(&str, f64)],
) {
    let mut in_buf = EventBuffer::new();
    let mut out_buf = EventBuffer::new();
    for (name, value) in params {
        in_buf.push(&ParamValueEvent::new(
            0,
            param_id(name),
            Pckn::match_all(),
            *value,
        ));
    }
    let input_audio = unsafe { InputAudioBuffers::from_raw_buffers(&[], BLOCK) };
    let mut output_audio = unsafe { OutputAudioBuffers::from_raw_buffers(&mut [], BLOCK) };
    processor
        .process(
            &input_audio,
            &mut output_audio,
            &InputEvents::from_buffer(&in_buf),
            &mut OutputEvents::from_buffer(&mut out_buf),
            None,
            None,
        )
        .expect("process");
}
