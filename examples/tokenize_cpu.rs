//! Read + tokenize timed in *thread CPU time*, so a busy machine (builds, a training run) does not
//! distort the figure the way wall-clock criterion runs are. Pair it with
//! `python benches/tokenize_python.py FILE N --cpu` in the same session for a fair ratio.
//!
//! `cargo run --release --example tokenize_cpu -- [FILE] [ITERATIONS]`
use improvnet::music::{parse_midi, Piece};
use improvnet::tokens::piece_tokens;

fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; the clock id is a constant Linux supports.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

fn median(mut xs: Vec<u64>) -> f64 {
    xs.sort_unstable();
    xs[xs.len() / 2] as f64
}

fn main() {
    let mut args = std::env::args().skip(1);
    let path = args
        .next()
        .unwrap_or_else(|| "tests/data/chopin_nocturne_op15_1.mid".into());
    let iters: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(2000);
    let bytes = std::fs::read(&path).expect("readable MIDI file");
    let stages: [(&str, &dyn Fn() -> usize); 3] = [
        ("read+tokenize", &|| {
            let p = parse_midi(&bytes, &path).expect("parses");
            piece_tokens(&Piece::from_played(&p.notes)).len()
        }),
        ("parse_midi", &|| {
            parse_midi(&bytes, &path).expect("parses").notes.len()
        }),
        ("midly events", &|| {
            let (_, tracks) = midly::parse(&bytes).expect("parses");
            tracks.map(|t| t.map_or(0, |t| t.count())).sum()
        }),
    ];
    println!(
        "{path}: {} bytes, {iters} iterations, thread CPU time",
        bytes.len()
    );
    for (name, f) in stages {
        for _ in 0..iters / 10 {
            std::hint::black_box(f());
        }
        let times: Vec<u64> = (0..iters)
            .map(|_| {
                let t0 = thread_cpu_ns();
                std::hint::black_box(f());
                thread_cpu_ns() - t0
            })
            .collect();
        println!("{name:14} median {:8.1} µs", median(times) / 1e3);
    }
}
