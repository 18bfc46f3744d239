//! Structure finding on a constructed piece with known section changes: A A B B A, 20 s each,
//! A and B of distinct material. The true changes are at 40 s (A→B) and 80 s (B→A); 20 s (A→A)
//! and 60 s (B→B) are not changes. Found within one T-segment (5 s), from the MIDI (piano-roll
//! chroma) and from a WAV rendering as sine tones (STFT chroma).

use std::f32::consts::PI;
use std::path::Path;

use improvnet::music::{Piece, PlayedNote};
use improvnet::structure::{
    find_boundaries_midi, find_boundaries_wav, protected_segments, to_piece_timeline, Boundary,
    NoveltyParams, StructureError,
};

const SECTION_MS: u64 = 20_000;
const TRUE_CHANGES_S: [f64; 2] = [40.0, 80.0];
const NOT_CHANGES_S: [f64; 2] = [20.0, 60.0];

fn note(pitch: u8, velocity: u8, start_ms: u64, dur_ms: u64) -> PlayedNote {
    PlayedNote {
        pitch,
        velocity,
        start_ms,
        dur_ms,
    }
}

/// A: I–IV–V–I in C major, 2 s per chord, arpeggiated in eighths (0.25 s) around C4–G5.
fn section_a(start_ms: u64, out: &mut Vec<PlayedNote>) {
    let chords: [[u8; 3]; 4] = [[60, 64, 67], [65, 69, 72], [67, 71, 74], [60, 64, 67]];
    for bar in 0..(SECTION_MS / 2000) {
        let chord = chords[bar as usize % 4];
        let pattern = [
            chord[0],
            chord[1],
            chord[2],
            chord[0] + 12,
            chord[2],
            chord[1],
        ];
        for step in 0..8u64 {
            let pitch = pattern[step as usize % pattern.len()];
            out.push(note(pitch, 80, start_ms + bar * 2000 + step * 250, 250));
        }
    }
}

/// B: E♭ minor – A♭ minor – B♭ minor, 2 s per chord, low block chords in half-second pulses
/// with a sustained bass.
fn section_b(start_ms: u64, out: &mut Vec<PlayedNote>) {
    let chords: [[u8; 3]; 3] = [[51, 54, 58], [56, 59, 63], [58, 61, 65]];
    for bar in 0..(SECTION_MS / 2000) {
        let chord = chords[bar as usize % 3];
        let t0 = start_ms + bar * 2000;
        out.push(note(chord[0] - 12, 100, t0, 2000));
        for pulse in 0..4u64 {
            for &p in &chord {
                out.push(note(p, 70, t0 + pulse * 500, 450));
            }
        }
    }
}

/// The notes of A A B B A, in reader order (stable-sorted by start).
fn aabba_notes() -> Vec<PlayedNote> {
    let mut notes = Vec::new();
    for (i, section) in ['A', 'A', 'B', 'B', 'A'].into_iter().enumerate() {
        let start = i as u64 * SECTION_MS;
        match section {
            'A' => section_a(start, &mut notes),
            _ => section_b(start, &mut notes),
        }
    }
    notes.sort_by_key(|n| n.start_ms);
    notes
}

fn times(b: &[Boundary]) -> Vec<f64> {
    b.iter().map(|b| b.time_s).collect()
}

/// Every true change has a boundary within 5 s, and the two strongest boundaries are those.
/// Chord changes inside the sections may give weaker boundaries (including near the A→A and B→B
/// joins, where the chord cycle restarts), but at less than half the weaker true change's novelty.
fn assert_structure(found: &[Boundary]) {
    let near = |t: f64| found.iter().filter(move |b| (b.time_s - t).abs() <= 5.0);
    let mut weakest_change = f64::INFINITY;
    for t in TRUE_CHANGES_S {
        let best = near(t).map(|b| b.novelty).fold(0.0, f64::max);
        assert!(best > 0.0, "no boundary near {t} s: {:?}", times(found));
        weakest_change = weakest_change.min(best);
    }
    for t in NOT_CHANGES_S {
        for b in near(t) {
            assert!(
                b.novelty < 0.5 * weakest_change,
                "strong boundary near {t} s, not a change: {b:?}"
            );
        }
    }
    let mut ranked = found.to_vec();
    ranked.sort_by(|a, b| b.novelty.total_cmp(&a.novelty));
    let mut top: Vec<f64> = times(&ranked[..2]);
    top.sort_by(f64::total_cmp);
    for (got, want) in top.iter().zip(TRUE_CHANGES_S) {
        assert!((got - want).abs() <= 5.0, "top two {top:?}");
    }
}

/// Protected segments for 2 kept peaks: those of the first notes after 40 s and 80 s (windows
/// 8 and 16; the piece has no empty window, so segment index = window), give or take one.
fn assert_protected(piece: &Piece, found: &[Boundary]) {
    assert_eq!(piece.segments.len(), 20);
    // 19 <T> tokens: ceil(0.1 × 19) = 2 peaks.
    let protected = protected_segments(piece, found, 0.1);
    assert_eq!(protected.len(), 2, "{protected:?}");
    for (got, want) in protected.iter().zip([8usize, 16]) {
        assert!(got.abs_diff(want) <= 1, "protected {protected:?}");
    }
    assert!(protected_segments(piece, found, 0.0).is_empty());
}

#[test]
fn midi_chroma_finds_the_section_changes() {
    let piece = Piece::from_played(&aabba_notes());
    let found = find_boundaries_midi(&piece, &NoveltyParams::default());
    eprintln!("MIDI boundaries: {found:?}");
    assert_structure(&found);
    assert_protected(&piece, &found);
}

/// Low, to keep the test fast (the FFT runs unoptimised in dev builds); the highest tone is
/// G5 (784 Hz), well below the 2 kHz Nyquist frequency.
const SAMPLE_RATE_HZ: u32 = 4000;

/// Render notes as sine tones (5 ms fades) after `lead_ms` of silence, as 16-bit mono.
fn render(notes: &[PlayedNote], lead_ms: u64, path: &Path) {
    let sr = SAMPLE_RATE_HZ as u64;
    let end_ms = notes.iter().map(|n| n.start_ms + n.dur_ms).max().unwrap() + lead_ms;
    let mut buf = vec![0f32; (end_ms * sr / 1000) as usize];
    let fade = (sr / 200) as usize;
    for n in notes {
        let freq = 440.0 * 2f32.powf((n.pitch as f32 - 69.0) / 12.0);
        let amp = 0.15 * n.velocity as f32 / 127.0;
        let first = ((n.start_ms + lead_ms) * sr / 1000) as usize;
        let len = (n.dur_ms * sr / 1000) as usize;
        let step = 2.0 * PI * freq / SAMPLE_RATE_HZ as f32;
        for i in 0..len {
            let env = (i.min(len - 1 - i).min(fade) as f32) / fade as f32;
            buf[first + i] += amp * env * (step * i as f32).sin();
        }
    }
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: SAMPLE_RATE_HZ,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    for s in buf {
        w.write_sample((s.clamp(-1.0, 1.0) * 32767.0) as i16)
            .unwrap();
    }
    w.finalize().unwrap();
}

#[test]
fn wav_chroma_finds_the_section_changes() {
    let notes = aabba_notes();
    let piece = Piece::from_played(&notes);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("aabba.wav");
    // The rendering keeps the MIDI file's 1.5 s of silence before the first note.
    render(&notes, 1500, &path);
    let on_audio = find_boundaries_wav(&path, &NoveltyParams::default()).unwrap();
    let found = to_piece_timeline(&on_audio, 1500);
    eprintln!("WAV boundaries (piece timeline): {found:?}");
    assert_structure(&found);
    assert_protected(&piece, &found);
}

#[test]
fn wav_errors_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.wav");
    let err = find_boundaries_wav(&missing, &NoveltyParams::default()).unwrap_err();
    assert!(matches!(err, StructureError::Wav { .. }));
    assert!(err.to_string().contains("missing.wav"), "{err}");

    let garbage = dir.path().join("notes.txt.wav");
    std::fs::write(&garbage, b"not a wave file at all").unwrap();
    let err = find_boundaries_wav(&garbage, &NoveltyParams::default()).unwrap_err();
    assert!(err.to_string().contains("notes.txt.wav"), "{err}");
}

#[test]
fn stereo_float_wav_is_mixed_to_mono() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("stereo.wav");
    let spec = hound::WavSpec {
        channels: 2,
        sample_rate: 4000,
        bits_per_sample: 32,
        sample_format: hound::SampleFormat::Float,
    };
    let mut w = hound::WavWriter::create(&path, spec).unwrap();
    for i in 0..4000 {
        w.write_sample((2.0 * PI * 440.0 * i as f32 / 4000.0).sin() * 0.5)
            .unwrap();
        w.write_sample(0.25f32).unwrap();
    }
    w.finalize().unwrap();
    let audio = improvnet::structure::chroma::read_wav_mono(&path).unwrap();
    assert_eq!(audio.sample_rate_hz, 4000);
    assert_eq!(audio.samples.len(), 4000);
    assert!((audio.samples[0] - 0.125).abs() < 1e-6);
    // One second of A: no boundary, and every frame's strongest pitch class is A.
    let params = improvnet::structure::ChromaParams::default();
    let c = improvnet::structure::chroma::chroma_from_samples(&audio.samples, 4000, &params);
    for f in &c.frames {
        let best = (0..12).max_by(|a, b| f[*a].total_cmp(&f[*b])).unwrap();
        assert_eq!(best, 9);
    }
}
