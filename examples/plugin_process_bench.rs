//! Time of the plugin's `process()` per 256-sample block at 48 kHz, hosted by clack-host, with
//! live-sized input (a note on or off every few blocks) and the worker running beside it.
//!
//!     cargo run --release --example plugin_process_bench -- [MODEL_DIR]
//!         [--paced SECONDS] [--rounds N] [--lib PATH]...
//!
//! Without a model folder the segments pass through; with one, the worker refines on its own
//! threads meanwhile. The whole wrapper is timed (nice-plug's CLAP layer included), as a host
//! would see it.
//!
//! - Unpaced (default): ten simulated minutes as fast as the host can go.
//! - `--paced SECONDS`: a real-time host. A normal-priority audio thread (as many Linux and
//!   some Windows hosts have: no realtime scheduling) wakes for each block at its time and
//!   counts the blocks that finish after the next one is due ("late": a crackle). Rate 1,
//!   delay 1, so every segment goes to the model; with a big model (a random `base` from
//!   `refine_bench -- base --save-model DIR`) the worker is never idle. Late blocks of the
//!   first 2 s (the model loading beside the first blocks) are counted apart from the rest,
//!   with the worst wake-up delay of each part.
//! - `--lib PATH` (repeatable): plugin libraries to compare (say, before and after a change),
//!   run in turn A B A B for `--rounds` rounds, with the load average before each run.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use clack_host::events::event_types::{NoteOffEvent, NoteOnEvent, ParamValueEvent};
use clack_host::events::Match;
use clack_host::prelude::*;
use clack_host::utils::ClapId;

const SR: u32 = 48_000;
const BLOCK: u32 = 256;
/// The start of a paced run counted apart: the worker loads the model meanwhile.
const START_UP: Duration = Duration::from_secs(2);

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

fn default_library() -> PathBuf {
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

/// nice-plug's CLAP parameter id: a 31-bit string hash.
fn param_id(id: &str) -> ClapId {
    let mut h: u32 = 0;
    for b in id.bytes() {
        h = h.wrapping_mul(31).wrapping_add(u32::from(b));
    }
    ClapId::new(h & !(1 << 31))
}

/// What one run measured.
struct Run {
    /// process() wall time per block, ns.
    times: Vec<u64>,
    /// Blocks that finished after the next block was due (paced runs only): in the first
    /// [`START_UP`] and after it.
    late: [usize; 2],
    /// The latest wake-up after a block's time, ns, in the same two parts.
    worst_wake: [u64; 2],
    events: u64,
}

/// One session: `blocks` blocks, paced in real time or not.
fn run(lib: &PathBuf, blocks: u32, paced: bool) -> Result<Run, Box<dyn std::error::Error>> {
    let info = HostInfo::new("improvnet-bench", "bench", "https://example.invalid", "0.1")?;
    let entry = unsafe { PluginEntry::load(lib)? };
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
    let mut times = Vec::with_capacity(blocks as usize);
    let mut in_buf = EventBuffer::new();
    let mut out_buf = EventBuffer::new();
    let mut held: Option<u16> = None;
    let mut events = 0u64;
    let period = Duration::from_nanos(u64::from(BLOCK) * 1_000_000_000 / u64::from(SR));
    let start = Instant::now();
    let mut late = [0; 2];
    let mut worst_wake = [0u64; 2];
    for b in 0..blocks {
        in_buf.clear();
        out_buf.clear();
        if paced && b == 0 {
            // Every segment to the model, answered one segment later.
            for (name, value) in [("rate", 1.0), ("delay", 0.0)] {
                in_buf.push(&ParamValueEvent::new(
                    0,
                    param_id(name),
                    Pckn::match_all(),
                    value,
                ));
            }
        }
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
        if paced {
            // The block's audio is due when the next one starts; wake when this one starts.
            let at = start + period * b;
            if let Some(wait) = at.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
        }
        let part = usize::from(period * b >= START_UP);
        let woke = Instant::now().saturating_duration_since(start + period * b);
        worst_wake[part] = worst_wake[part].max(woke.as_nanos() as u64);
        let input = unsafe { InputAudioBuffers::from_raw_buffers(&[], BLOCK) };
        let mut output = unsafe { OutputAudioBuffers::from_raw_buffers(&mut [], BLOCK) };
        let t = Instant::now();
        processor.process(
            &input,
            &mut output,
            &InputEvents::from_buffer(&in_buf),
            &mut OutputEvents::from_buffer(&mut out_buf),
            None,
            None,
        )?;
        times.push(t.elapsed().as_nanos() as u64);
        if paced && Instant::now() > start + period * (b + 1) {
            late[part] += 1;
        }
        events += u64::from(in_buf.len() + out_buf.len());
    }
    instance.deactivate(processor.stop_processing());
    Ok(Run {
        times,
        late,
        worst_wake,
        events,
    })
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

fn report(label: &str, r: &Run, paced: bool) {
    let mut times = r.times.clone();
    times.sort_unstable();
    let pct = |p: f64| times[((times.len() - 1) as f64 * p) as usize];
    let over_1ms = times.iter().filter(|t| **t > 1_000_000).count();
    print!(
        "{label}: {} blocks, {} events; process() ns median {}, p99 {}, p99.9 {}, max {}; \
         over 1 ms {over_1ms}",
        times.len(),
        r.events,
        pct(0.5),
        pct(0.99),
        pct(0.999),
        times[times.len() - 1],
    );
    if paced {
        print!(
            "; late blocks {} in the first {} s (worst wake-up {} µs), {} after (worst {} µs)",
            r.late[0],
            START_UP.as_secs(),
            r.worst_wake[0] / 1000,
            r.late[1],
            r.worst_wake[1] / 1000
        );
    }
    println!();
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let mut libs: Vec<PathBuf> = Vec::new();
    let mut paced: Option<f64> = None;
    let mut rounds = 1;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--lib" => libs.push(args.next().ok_or("--lib needs a path")?.into()),
            "--paced" => paced = Some(args.next().ok_or("--paced needs seconds")?.parse()?),
            "--rounds" => rounds = args.next().ok_or("--rounds needs a count")?.parse()?,
            dir => std::env::set_var("IMPROVNET_MODEL", dir),
        }
    }
    if libs.is_empty() {
        libs.push(default_library());
    }
    let blocks = match paced {
        Some(s) => (s * f64::from(SR) / f64::from(BLOCK)).round() as u32,
        None => 10 * 60 * SR / BLOCK,
    };
    println!(
        "{} blocks of {BLOCK} samples at {SR} Hz (budget {} ns each), {}; {} cores",
        blocks,
        u64::from(BLOCK) * 1_000_000_000 / u64::from(SR),
        if paced.is_some() {
            "paced in real time by a normal-priority thread"
        } else {
            "as fast as possible"
        },
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    for round in 1..=rounds {
        for lib in &libs {
            let load = load_average();
            let r = run(lib, blocks, paced.is_some())?;
            report(
                &format!("round {round} {} (load {load})", lib.display()),
                &r,
                paced.is_some(),
            );
        }
    }
    Ok(())
}
