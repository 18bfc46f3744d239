//! Time of the plugin's `process()` per 256-sample block at 48 kHz, hosted by clack-host, with
//! live-sized input (a note on or off every few blocks) and the worker running beside it.
//!
//! `cargo run --release --example plugin_process_bench [-- MODEL_DIR]` (without a model folder
//! the segments pass through; with one, the worker refines on its own thread meanwhile).
//! The whole wrapper is timed (nice-plug's CLAP layer included), as a host would see it.

use std::path::PathBuf;
use std::time::Instant;

use clack_host::events::event_types::{NoteOffEvent, NoteOnEvent};
use clack_host::events::Match;
use clack_host::prelude::*;

const SR: u32 = 48_000;
const BLOCK: u32 = 256;

struct Shared;
impl SharedHandler<'_> for Shared {
    fn request_restart(&self) {}
    fn request_process(&self) {}
    fn request_callback(&self) {}
}
struct BenchHost;
impl HostHandlers for BenchHost {
    type Shared<'a> = Shared;
    type MainThread<'a> = ();
    type AudioProcessor<'a> = ();
}

fn library() -> PathBuf {
    let exe = std::env::current_exe().expect("exe path");
    let dir = exe.parent().expect("examples folder");
    [
        dir.join("../libimprovnet.so"),
        dir.join("../deps/libimprovnet.so"),
    ]
    .into_iter()
    .find(|p| p.is_file())
    .expect("libimprovnet.so next to the example (cargo builds it with the library)")
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    if let Some(dir) = std::env::args().nth(1) {
        std::env::set_var("IMPROVNET_MODEL", dir);
    }
    let info = HostInfo::new("improvnet-bench", "bench", "https://example.invalid", "0.1")?;
    let entry = unsafe { PluginEntry::load(library())? };
    let factory = entry.get_plugin_factory().ok_or("no plugin factory")?;
    let id = factory
        .plugin_descriptors()
        .find_map(|d| d.id().map(|i| i.to_owned()))
        .ok_or("no plugin in the library")?;
    let mut instance = PluginInstance::<BenchHost>::new(|_| Shared, |_| (), &entry, &id, &info)?;
    let config = PluginAudioConfiguration {
        sample_rate: f64::from(SR),
        min_frames_count: BLOCK,
        max_frames_count: BLOCK,
    };
    let mut processor = instance.activate(|_, _| (), config)?.start_processing()?;
    // Ten simulated minutes.
    let blocks = 10 * 60 * SR / BLOCK;
    let mut times = Vec::with_capacity(blocks as usize);
    let mut in_buf = EventBuffer::new();
    let mut out_buf = EventBuffer::new();
    let mut held: Option<u16> = None;
    let mut events = 0u64;
    for b in 0..blocks {
        in_buf.clear();
        out_buf.clear();
        if b % 4 == 0 {
            let key = 48 + (b / 4 % 36) as u16;
            if let Some(k) = held.take() {
                in_buf.push(&NoteOffEvent::new(
                    10,
                    Pckn::new(0u16, 0u16, k, Match::All),
                    0.0,
                ));
            }
            in_buf.push(&NoteOnEvent::new(
                20,
                Pckn::new(0u16, 0u16, key, Match::All),
                0.7,
            ));
            held = Some(key);
        }
        let input = unsafe { InputAudioBuffers::from_raw_buffers(&[], BLOCK) };
        let mut output = unsafe { OutputAudioBuffers::from_raw_buffers(&mut [], BLOCK) };
        let start = Instant::now();
        processor.process(
            &input,
            &mut output,
            &InputEvents::from_buffer(&in_buf),
            &mut OutputEvents::from_buffer(&mut out_buf),
            None,
            None,
        )?;
        times.push(start.elapsed().as_nanos() as u64);
        events += u64::from(in_buf.len() + out_buf.len());
    }
    instance.deactivate(processor.stop_processing());
    let (worst, _) = times
        .iter()
        .enumerate()
        .max_by_key(|(_, t)| **t)
        .unwrap_or((0, &0));
    let over_1ms = times.iter().filter(|t| **t > 1_000_000).count();
    times.sort_unstable();
    let pct = |p: f64| times[((times.len() - 1) as f64 * p) as usize];
    println!(
        "{} blocks of {BLOCK} samples at {SR} Hz, {events} note events in and out",
        times.len()
    );
    println!(
        "process() ns: median {}, p99 {}, max {} (block budget {} ns)",
        pct(0.5),
        pct(0.99),
        times[times.len() - 1],
        u64::from(BLOCK) * 1_000_000_000 / u64::from(SR)
    );
    println!(
        "blocks over 1 ms: {over_1ms}; the slowest was block {worst} (wall time: includes being \
         preempted on a loaded machine)"
    );
    Ok(())
}
