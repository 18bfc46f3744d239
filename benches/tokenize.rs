//! Read + tokenize a multi-minute expressive piano performance (5 min, 1,788 notes, pedal).
//!
//! Compare with `python benches/tokenize_python.py tests/data/chopin_nocturne_op15_1.mid`
//! (symusic and mido parsing the same bytes), run in the same session.
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use improvnet::music::{parse_midi, Piece};
use improvnet::tokens::piece_tokens;

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/data/chopin_nocturne_op15_1.mid"
);

fn read_and_tokenize(bytes: &[u8]) -> usize {
    let performance = parse_midi(bytes, FIXTURE).expect("fixture parses");
    let piece = Piece::from_played(&performance.notes);
    piece_tokens(&piece).len()
}

fn bench_tokenize(c: &mut Criterion) {
    let bytes = std::fs::read(FIXTURE).expect("fixture exists");
    let notes = parse_midi(&bytes, FIXTURE)
        .expect("fixture parses")
        .notes
        .len() as u64;
    let mut group = c.benchmark_group("tokenize");
    group.throughput(Throughput::Bytes(bytes.len() as u64));
    group.bench_function("read+tokenize bytes", |b| {
        b.iter(|| read_and_tokenize(&bytes))
    });
    group.throughput(Throughput::Elements(notes));
    group.bench_function("read+tokenize notes", |b| {
        b.iter(|| read_and_tokenize(&bytes))
    });
    group.finish();
}

criterion_group!(benches, bench_tokenize);

fn bench_stages(c: &mut Criterion) {
    let bytes = std::fs::read(FIXTURE).expect("fixture exists");
    let performance = parse_midi(&bytes, FIXTURE).expect("fixture parses");
    let piece = Piece::from_played(&performance.notes);
    let mut group = c.benchmark_group("tokenize stages");
    group.bench_function("parse_midi", |b| {
        b.iter(|| parse_midi(&bytes, FIXTURE).map(|p| p.notes.len()))
    });
    group.bench_function("midly events only", |b| {
        b.iter(|| {
            let (_, tracks) = midly::parse(&bytes).unwrap();
            tracks.map(|t| t.unwrap().count()).sum::<usize>()
        })
    });
    group.bench_function("from_played", |b| {
        b.iter(|| Piece::from_played(&performance.notes).segments.len())
    });
    group.bench_function("piece_tokens", |b| b.iter(|| piece_tokens(&piece).len()));
    group.finish();
}

criterion_group!(stages, bench_stages);
criterion_main!(benches, stages);
