//! Rendering: SoundFont → WAV (rustysynth) on a SoundFont the test builds itself (a looped
//! 440 Hz sine), and the piano-roll PNG.
use std::path::Path;

mod common;

use common::sf2::sine_soundfont;

use improvnet::music::{Note, Piece, Segment};
use improvnet::render::{
    changed_windows, find_soundfont, plot_piano_roll, render_piece, write_wav, RenderError,
    RollOptions,
};

fn piece(notes: &[(u32, Note)]) -> Piece {
    let mut segments: Vec<Segment> = Vec::new();
    for &(window, note) in notes {
        match segments.last_mut() {
            Some(s) if s.window == window => s.notes.push(note),
            _ => segments.push(Segment {
                window,
                notes: vec![note],
            }),
        }
    }
    Piece { segments }
}

/// Energy of `x` at `freq_hz` (a single DFT bin), normalised by length.
fn tone_energy(x: &[f32], rate: u32, freq_hz: f64) -> f64 {
    let (mut re, mut im) = (0.0, 0.0);
    for (i, &s) in x.iter().enumerate() {
        let ph = 2.0 * std::f64::consts::PI * freq_hz * i as f64 / rate as f64;
        re += s as f64 * ph.cos();
        im += s as f64 * ph.sin();
    }
    (re * re + im * im).sqrt() / x.len() as f64
}

fn window(audio: &[f32], rate: u32, from_s: f64, to_s: f64) -> &[f32] {
    &audio[(from_s * rate as f64) as usize..(to_s * rate as f64) as usize]
}

#[test]
fn renders_notes_at_their_time_and_pitch() {
    let dir = tempfile::tempdir().unwrap();
    let sf = dir.path().join("sine.sf2");
    std::fs::write(&sf, sine_soundfont()).unwrap();
    // A4 (440 Hz) at 0–1 s, A5 (880 Hz) at 2–3 s, silence between and after.
    let p = piece(&[
        (0, Note::new(69, 100, 0, 1000)),
        (0, Note::new(81, 100, 2000, 1000)),
    ]);
    let rate = 22_050;
    let audio = render_piece(&p, &sf, rate).unwrap();
    // 3 s of notes + 2 s release tail.
    assert!(
        (audio.duration_s() - 5.0).abs() < 0.01,
        "{}",
        audio.duration_s()
    );
    assert!(
        audio.peak() > 0.01 && audio.peak() <= 1.0,
        "peak {}",
        audio.peak()
    );
    let first = window(&audio.left, rate, 0.2, 0.8);
    let second = window(&audio.left, rate, 2.2, 2.8);
    assert!(tone_energy(first, rate, 440.0) > 10.0 * tone_energy(first, rate, 880.0));
    assert!(tone_energy(second, rate, 880.0) > 10.0 * tone_energy(second, rate, 440.0));
    // Between the notes (after the release) it is far quieter than during them.
    let gap = window(&audio.left, rate, 1.7, 1.95);
    let loud = first.iter().fold(0.0f32, |m, x| m.max(x.abs()));
    let quiet = gap.iter().fold(0.0f32, |m, x| m.max(x.abs()));
    assert!(quiet < loud / 5.0, "gap {quiet} vs note {loud}");
    // Deterministic, and written as 16-bit stereo WAV.
    assert_eq!(render_piece(&p, &sf, rate).unwrap(), audio);
    let wav = dir.path().join("out.wav");
    write_wav(&audio, &wav).unwrap();
    let r = hound::WavReader::open(&wav).unwrap();
    assert_eq!(r.spec().channels, 2);
    assert_eq!(r.spec().sample_rate, rate);
    assert_eq!(r.len() as usize, audio.left.len() * 2);
}

#[test]
fn soundfont_errors_name_the_problem() {
    let missing = Path::new("/nonexistent/piano.sf2");
    let err = find_soundfont(Some(missing)).unwrap_err();
    assert!(matches!(err, RenderError::MissingSoundFont { .. }));
    assert!(err.to_string().contains("/nonexistent/piano.sf2"), "{err}");
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.sf2");
    std::fs::write(&junk, b"RIFF not a soundfont").unwrap();
    let p = piece(&[(0, Note::new(60, 80, 0, 500))]);
    let err = render_piece(&p, &junk, 22_050).unwrap_err();
    assert!(matches!(err, RenderError::BadSoundFont { .. }), "{err}");
    assert!(err.to_string().contains("junk.sf2"), "{err}");
}

#[test]
fn piano_roll_marks_changed_segments() {
    let original = piece(&[
        (0, Note::new(60, 80, 0, 500)),
        (1, Note::new(64, 80, 100, 500)),
        (2, Note::new(67, 80, 0, 500)),
    ]);
    let mut result = original.clone();
    result.segments[1].notes[0].pitch = 65;
    result.segments.push(Segment {
        window: 4,
        notes: vec![Note::new(72, 90, 0, 300)],
    });
    assert_eq!(changed_windows(&original, &result), vec![1, 4]);
    assert_eq!(changed_windows(&original, &original), Vec::<u32>::new());
    let dir = tempfile::tempdir().unwrap();
    let png = dir.path().join("roll.png");
    let opts = RollOptions {
        width_px: 400,
        panel_height_px: 150,
        ..RollOptions::default()
    };
    assert_eq!(
        plot_piano_roll(&original, &result, &png, &opts).unwrap(),
        vec![1, 4]
    );
    let bytes = std::fs::read(&png).unwrap();
    assert_eq!(&bytes[1..4], b"PNG");
    // 400 × 300 pixels, and no temporary file left behind.
    assert_eq!(u32::from_be_bytes(bytes[16..20].try_into().unwrap()), 400);
    assert_eq!(u32::from_be_bytes(bytes[20..24].try_into().unwrap()), 300);
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    // An unwritable destination is an error naming it.
    let err =
        plot_piano_roll(&original, &result, Path::new("/nonexistent/x.png"), &opts).unwrap_err();
    assert!(err.to_string().contains("/nonexistent/x.png"), "{err}");
}

#[test]
fn render_command_writes_wav_and_roll_and_explains_errors() {
    let dir = tempfile::tempdir().unwrap();
    let sf = dir.path().join("sine.sf2");
    std::fs::write(&sf, sine_soundfont()).unwrap();
    let input = common::data("chopin_nocturne_op15_1.mid");
    let (wav, png) = (dir.path().join("n.wav"), dir.path().join("n.png"));
    let s = |p: &Path| p.to_str().unwrap().to_owned();
    let (input_s, wav_s, png_s, sf_s) = (s(&input), s(&wav), s(&png), s(&sf));
    let (ok, out, err) = common::improvnet(&[
        "render",
        &input_s,
        "--wav",
        &wav_s,
        "--soundfont",
        &sf_s,
        "--sample-rate",
        "16000",
        "--plot",
        &png_s,
        "--against",
        &input_s,
    ]);
    assert!(ok, "{err}");
    // A file against itself: nothing shaded.
    assert!(out.contains("0 changed T-segments"), "{out}");
    let r = hound::WavReader::open(&wav).unwrap();
    // The 5-minute nocturne plus the 2 s tail, at 16 kHz.
    let secs = r.len() as f64 / 2.0 / 16000.0;
    assert!((300.0..320.0).contains(&secs), "{secs}");
    // Normalised: the peak sample is -1 dBFS (0.891 of full scale), whatever the SoundFont.
    let peak = r
        .into_samples::<i16>()
        .map(|x| x.unwrap().unsigned_abs())
        .max()
        .unwrap();
    let want = (0.891_25 * f64::from(i16::MAX)).round();
    assert!(
        (f64::from(peak) - want).abs() <= 1.0,
        "peak {peak}, want {want}"
    );
    assert!(png.is_file());

    let (ok, _, err) = common::improvnet(&[
        "render",
        &s(&input),
        "--wav",
        &s(&wav),
        "--soundfont",
        "/nope.sf2",
    ]);
    assert!(!ok);
    assert!(err.contains("/nope.sf2: SoundFont not found"), "{err}");
    let (ok, _, err) = common::improvnet(&[
        "render",
        &input_s,
        "--wav",
        &wav_s,
        "--soundfont",
        &sf_s,
        "--sample-rate",
        "8000",
    ]);
    assert!(!ok);
    assert!(err.contains("sample rate 8000 Hz"), "{err}");
    let (ok, _, err) = common::improvnet(&["render", &s(&input)]);
    assert!(!ok);
    assert!(err.contains("--wav") && err.contains("--plot"), "{err}");

    // A preview: the first 3 T-segments (15 s) plus the release tail.
    let (ok, _, err) = common::improvnet(&[
        "render",
        &input_s,
        "--wav",
        &wav_s,
        "--soundfont",
        &sf_s,
        "--sample-rate",
        "16000",
        "--segments",
        "3",
    ]);
    assert!(ok, "{err}");
    let r = hound::WavReader::open(&wav).unwrap();
    let secs = r.len() as f64 / 2.0 / 16000.0;
    assert!((15.0..19.0).contains(&secs), "{secs}");
    let (ok, _, err) =
        common::improvnet(&["render", &input_s, "--plot", &png_s, "--segments", "0"]);
    assert!(!ok);
    assert!(err.contains("--segments 0"), "{err}");
}
