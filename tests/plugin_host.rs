//! A real CLAP host (clack-host) drives the built plugin library: 48 kHz, 256-sample blocks,
//! live-sized input, parameters automated through CLAP events, realtime and offline rendering.
#![cfg(feature = "plugin")]

mod refine_common;

use std::path::PathBuf;

use clack_extensions::render::{PluginRender, RenderMode};
use clack_host::events::event_types::{NoteOffEvent, NoteOnEvent, ParamValueEvent};
use clack_host::events::Match;
use clack_host::prelude::*;
use clack_host::utils::ClapId;

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

/// The plugin library cargo built next to this test (the lib is also a cdylib).
fn plugin_library() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let deps = exe.parent().expect("deps folder");
    let candidates = [
        deps.join("libimprovnet.so"),
        deps.join("../libimprovnet.so"),
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/debug/libimprovnet.so"),
    ];
    candidates
        .iter()
        .find(|p| p.is_file())
        .cloned()
        .unwrap_or_else(|| panic!("no built plugin library among {candidates:?}"))
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

/// Plays `input` through the plugin for `total` samples; `params` are (id, CLAP value) sent
/// in the first block. Returns the output note events in absolute samples.
fn session(input: &[Ev], total: i64, params: &[(&str, f64)], offline: bool) -> Vec<Ev> {
    let host_info = HostInfo::new("improvnet-test", "tests", "https://example.invalid", "0.1")
        .expect("host info");
    let entry = unsafe { PluginEntry::load(plugin_library()) }.expect("load the plugin library");
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
    if offline {
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
    while t0 < total {
        in_buf.clear();
        out_buf.clear();
        if t0 == 0 {
            for (name, value) in params {
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
        // A MIDI-only plugin has no audio ports: the frame count must be declared.
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
    out
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

#[test]
fn a_clap_host_drives_the_plugin() {
    let input = phrase(12);
    let total = 7 * SEG;

    // 1. No model: the input comes back unchanged, two segments (the default delay) later.
    std::env::remove_var("IMPROVNET_MODEL");
    let out = session(&input, total, &[], false);
    assert_balanced(&out);
    assert_eq!(sorted(out), sorted(shifted(&input, 2 * SEG)));

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
    std::env::remove_var("IMPROVNET_MODEL");
}
