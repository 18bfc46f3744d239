//! Musical measures of a generated piece against its original (issue #26): what a pianist hears
//! as kept or broken, counted from notes.
//!
//! - [`tune_kept`]: the original's top voice still there (same pitch, onset within 100 ms);
//! - [`harmony`]: a harmonized melody kept, on top, with chords under it that fit its key;
//! - [`defects`]: restrikes, holes, clusters and notes out of range;
//! - [`drift`] and [`seams`]: register, loudness and density per segment and where rewritten
//!   music meets kept music;
//! - [`pitch_class_distances`]: how far each rewritten segment's harmony is from its neighbours.
//!
//! Every measure is computed for the original too where it applies, as the reference value.

use std::collections::BTreeSet;

use serde::Serialize;

use crate::corrupt::top_voice;
use crate::music::{Piece, PlayedNote, Segment};

use super::{histogram_kl, pitch_class_histogram};

/// A top-voice note is kept when the generated piece has its pitch starting this close to it.
pub const TUNE_ONSET_MS: u64 = 100;
/// A melody note is kept when a note of its pitch starts and ends this close to it.
pub const MELODY_TOLERANCE_MS: u64 = 10;
/// Notes starting this soon after a melody note sound with it (a chord struck with the melody).
pub const WITH_MS: u64 = 50;
/// A silence at least this long is a hole.
pub const HOLE_MS: u64 = 1500;
/// Notes whose onsets lie within this span of the first form one onset group.
pub const CLUSTER_MS: u64 = 40;
/// An onset group of at least this many notes is a cluster.
pub const CLUSTER_NOTES: usize = 6;
/// Notes further than this outside the original's range are out of range.
pub const RANGE_MARGIN: u8 = 7;

/// Notes sorted by start (stable).
fn played(piece: &Piece) -> Vec<PlayedNote> {
    let mut notes = piece.to_played();
    notes.sort_by_key(|n| n.start_ms);
    notes
}

fn end(n: &PlayedNote) -> u64 {
    n.start_ms + n.dur_ms
}

/// Windows whose notes differ between the two pieces (a window missing on one side counts).
pub fn rewritten_windows(original: &Piece, generated: &Piece) -> BTreeSet<u32> {
    let notes = |p: &Piece, w: u32| -> Vec<crate::music::Note> {
        let mut v = p
            .segments
            .iter()
            .find(|s| s.window == w)
            .map(|s| s.notes.clone())
            .unwrap_or_default();
        v.sort_by_key(|n| (n.onset_ms, n.pitch, n.dur_ms, n.velocity));
        v
    };
    let windows: BTreeSet<u32> = original
        .segments
        .iter()
        .chain(&generated.segments)
        .map(|s| s.window)
        .collect();
    windows
        .into_iter()
        .filter(|&w| notes(original, w) != notes(generated, w))
        .collect()
}

/// The original's top voice in absolute time: each segment's [`top_voice`].
pub fn tune(piece: &Piece) -> Vec<PlayedNote> {
    piece
        .segments
        .iter()
        .flat_map(|s| {
            top_voice(&s.notes).into_iter().map(move |i| PlayedNote {
                pitch: s.notes[i].pitch,
                velocity: s.notes[i].velocity,
                start_ms: s.start_ms() + u64::from(s.notes[i].onset_ms),
                dur_ms: u64::from(s.notes[i].dur_ms),
            })
        })
        .collect()
}

/// How many of a set of notes were kept.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Kept {
    pub kept: usize,
    pub total: usize,
}

impl Kept {
    /// The share kept; 1 when there was nothing to keep.
    pub fn share(&self) -> f64 {
        if self.total == 0 {
            1.0
        } else {
            self.kept as f64 / self.total as f64
        }
    }
}

/// The original's top-voice notes in `windows` (all windows if `None`) that the generated piece
/// still plays: same pitch, onset within [`TUNE_ONSET_MS`].
pub fn tune_kept(original: &Piece, generated: &Piece, windows: Option<&BTreeSet<u32>>) -> Kept {
    let gen = played(generated);
    let mut k = Kept::default();
    for t in tune(original) {
        let window = (t.start_ms / 5000) as u32;
        if windows.is_some_and(|w| !w.contains(&window)) {
            continue;
        }
        k.total += 1;
        if gen
            .iter()
            .any(|g| g.pitch == t.pitch && g.start_ms.abs_diff(t.start_ms) <= TUNE_ONSET_MS)
        {
            k.kept += 1;
        }
    }
    k
}

/// The harmonization of a melody, measured.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Harmony {
    pub melody_notes: usize,
    /// Melody notes still there at their time, pitch and duration.
    pub kept: usize,
    /// Melody notes that are the highest note sounding at their onset.
    pub on_top: usize,
    /// Mean number of other notes sounding under a melody note at its onset.
    pub notes_under: f64,
    /// Share of melody notes sounding with at least three pitch classes.
    pub chords_per_note: f64,
    /// The melody's key, e.g. "G major".
    pub key: String,
    /// Added notes (not melody notes).
    pub added: usize,
    /// Share of added notes whose pitch class is in the key or its usual jazz colours.
    pub in_key: f64,
    /// Melody notes with an added note a semitone or a minor ninth away sounding with them.
    pub clashes: usize,
    /// Windows of the melody with no note in the generated piece.
    pub empty_windows: usize,
}

/// Krumhansl–Kessler key profiles (major, minor), tonic first.
const MAJOR: [f64; 12] = [
    6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88,
];
const MINOR: [f64; 12] = [
    6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17,
];
/// Pitch classes (from the tonic) of a major key with the blue third and seventh.
const MAJOR_SET: [u8; 9] = [0, 2, 3, 4, 5, 7, 9, 10, 11];
/// Natural minor with the raised sixth and seventh (melodic and harmonic minor).
const MINOR_SET: [u8; 9] = [0, 2, 3, 5, 7, 8, 9, 10, 11];
const NAMES: [&str; 12] = [
    "C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B",
];

/// The key whose Krumhansl–Kessler profile correlates best with the duration-weighted
/// pitch-class histogram: (tonic pitch class, major?).
pub fn key_of(histogram: &[f64; 12]) -> (u8, bool) {
    let corr = |profile: &[f64; 12], tonic: usize| {
        let x: Vec<f64> = (0..12).map(|i| histogram[(i + tonic) % 12]).collect();
        let (mx, my) = (
            x.iter().sum::<f64>() / 12.0,
            profile.iter().sum::<f64>() / 12.0,
        );
        let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
        for i in 0..12 {
            sxy += (x[i] - mx) * (profile[i] - my);
            sxx += (x[i] - mx).powi(2);
            syy += (profile[i] - my).powi(2);
        }
        if sxx == 0.0 {
            0.0
        } else {
            sxy / (sxx * syy).sqrt()
        }
    };
    let mut best = (0u8, true, f64::NEG_INFINITY);
    for tonic in 0..12 {
        for (major, profile) in [(true, &MAJOR), (false, &MINOR)] {
            let r = corr(profile, tonic);
            if r > best.2 {
                best = (tonic as u8, major, r);
            }
        }
    }
    (best.0, best.1)
}

/// Whether pitch class `pc` belongs to the key or its usual jazz colours.
pub fn in_key(pc: u8, tonic: u8, major: bool) -> bool {
    let set: &[u8] = if major { &MAJOR_SET } else { &MINOR_SET };
    set.contains(&((pc + 12 - tonic) % 12))
}

/// Notes sounding with a note starting at `at`: started by then (or within [`WITH_MS`] after)
/// and not yet ended.
fn sounding_at(notes: &[PlayedNote], at: u64) -> impl Iterator<Item = &PlayedNote> {
    notes
        .iter()
        .filter(move |n| n.start_ms <= at + WITH_MS && end(n) > at)
}

/// Measures how `generated` harmonizes `melody` (one note at a time).
pub fn harmony(melody: &Piece, generated: &Piece) -> Harmony {
    let tune = played(melody);
    let gen = played(generated);
    let is_melody = |g: &PlayedNote| {
        tune.iter().any(|m| {
            m.pitch == g.pitch
                && m.start_ms.abs_diff(g.start_ms) <= MELODY_TOLERANCE_MS
                && m.dur_ms.abs_diff(g.dur_ms) <= MELODY_TOLERANCE_MS
        })
    };
    let (tonic, major) = key_of(&pitch_class_histogram(melody));
    let mut h = Harmony {
        melody_notes: tune.len(),
        kept: 0,
        on_top: 0,
        notes_under: 0.0,
        chords_per_note: 0.0,
        key: format!(
            "{} {}",
            NAMES[usize::from(tonic)],
            if major { "major" } else { "minor" }
        ),
        added: 0,
        in_key: 1.0,
        clashes: 0,
        empty_windows: 0,
    };
    let (mut under, mut chords) = (0usize, 0usize);
    for m in &tune {
        if gen.iter().any(|g| {
            g.pitch == m.pitch
                && g.start_ms.abs_diff(m.start_ms) <= MELODY_TOLERANCE_MS
                && g.dur_ms.abs_diff(m.dur_ms) <= MELODY_TOLERANCE_MS
        }) {
            h.kept += 1;
        }
        let with: Vec<&PlayedNote> = sounding_at(&gen, m.start_ms).collect();
        if with.iter().all(|g| g.pitch <= m.pitch) && with.iter().any(|g| g.pitch == m.pitch) {
            h.on_top += 1;
        }
        let others: Vec<&&PlayedNote> = with
            .iter()
            .filter(|g| !(g.pitch == m.pitch && g.start_ms.abs_diff(m.start_ms) <= WITH_MS))
            .collect();
        under += others.iter().filter(|g| g.pitch < m.pitch).count();
        let mut pcs: Vec<u8> = others.iter().map(|g| g.pitch % 12).collect();
        pcs.push(m.pitch % 12);
        pcs.sort_unstable();
        pcs.dedup();
        chords += usize::from(pcs.len() >= 3);
        if others
            .iter()
            .any(|g| matches!(g.pitch.abs_diff(m.pitch), 1 | 13))
        {
            h.clashes += 1;
        }
    }
    let added: Vec<&PlayedNote> = gen.iter().filter(|g| !is_melody(g)).collect();
    h.added = added.len();
    if !added.is_empty() {
        h.in_key = added
            .iter()
            .filter(|g| in_key(g.pitch % 12, tonic, major))
            .count() as f64
            / added.len() as f64;
    }
    if !tune.is_empty() {
        h.notes_under = under as f64 / tune.len() as f64;
        h.chords_per_note = chords as f64 / tune.len() as f64;
    }
    let gen_windows: BTreeSet<u32> = generated
        .segments
        .iter()
        .filter(|s| !s.notes.is_empty())
        .map(|s| s.window)
        .collect();
    h.empty_windows = melody
        .segments
        .iter()
        .filter(|s| !s.notes.is_empty() && !gen_windows.contains(&s.window))
        .count();
    h
}

/// Things a pianist would not play, counted in one piece.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Defects {
    /// Notes struck while the same pitch still sounds.
    pub restrikes: usize,
    /// Silences of at least [`HOLE_MS`] (in the generated piece: only where the original plays).
    pub holes: usize,
    /// Onset groups of at least [`CLUSTER_NOTES`] notes within [`CLUSTER_MS`].
    pub clusters: usize,
    /// Notes more than [`RANGE_MARGIN`] semitones outside the original's range.
    pub out_of_range: usize,
}

impl Defects {
    /// Restrikes, holes and clusters together (what the "defects per piece" counts).
    pub fn total(&self) -> usize {
        self.restrikes + self.holes + self.clusters
    }
}

/// Silences of at least [`HOLE_MS`] between the first onset and the last end: `(from, to)`.
pub fn silences(notes: &[PlayedNote]) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    let mut covered = match notes.first() {
        Some(n) => end(n),
        None => return out,
    };
    for n in &notes[1..] {
        if n.start_ms >= covered + HOLE_MS {
            out.push((covered, n.start_ms));
        }
        covered = covered.max(end(n));
    }
    out
}

/// Milliseconds of `[from, to)` during which some note sounds.
fn sounding_ms(notes: &[PlayedNote], from: u64, to: u64) -> u64 {
    let mut spans: Vec<(u64, u64)> = notes
        .iter()
        .map(|n| (n.start_ms.max(from), end(n).min(to)))
        .filter(|(a, b)| a < b)
        .collect();
    spans.sort_unstable();
    let (mut total, mut reach) = (0, from);
    for (a, b) in spans {
        let a = a.max(reach);
        if b > a {
            total += b - a;
            reach = b;
        }
    }
    total
}

/// The defects of `piece`; with `original`, holes count only where the original sounds for
/// most of the hole, and the range is the original's.
pub fn defects(piece: &Piece, original: Option<&Piece>) -> Defects {
    let notes = played(piece);
    let reference = original.map(played);
    let mut d = Defects::default();
    for (i, n) in notes.iter().enumerate() {
        if notes[..i]
            .iter()
            .any(|m| m.pitch == n.pitch && m.start_ms <= n.start_ms && n.start_ms < end(m))
        {
            d.restrikes += 1;
        }
    }
    d.holes = silences(&notes)
        .into_iter()
        .filter(|&(a, b)| {
            reference
                .as_ref()
                .is_none_or(|r| 2 * sounding_ms(r, a, b) > b - a)
        })
        .count();
    let mut i = 0;
    while i < notes.len() {
        let j = i + notes[i..]
            .iter()
            .take_while(|m| m.start_ms - notes[i].start_ms <= CLUSTER_MS)
            .count();
        d.clusters += usize::from(j - i >= CLUSTER_NOTES);
        i = j;
    }
    let range = reference.as_deref().unwrap_or(&notes);
    if let (Some(lo), Some(hi)) = (
        range.iter().map(|n| n.pitch).min(),
        range.iter().map(|n| n.pitch).max(),
    ) {
        let (lo, hi) = (
            lo.saturating_sub(RANGE_MARGIN),
            hi.saturating_add(RANGE_MARGIN),
        );
        d.out_of_range = notes
            .iter()
            .filter(|n| n.pitch < lo || n.pitch > hi)
            .count();
    }
    d
}

/// Register, loudness and density of one segment.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct SegmentStats {
    pub window: u32,
    pub median_pitch: f64,
    pub velocity_mean: f64,
    pub velocity_sd: f64,
    pub notes_per_s: f64,
}

/// The median, 0 for none.
fn median(mut xs: Vec<f64>) -> f64 {
    if xs.is_empty() {
        0.0
    } else {
        super::style::median(&mut xs)
    }
}

/// [`SegmentStats`] of one segment (`None` when it has no notes).
pub fn segment_stats(segment: &Segment) -> Option<SegmentStats> {
    let n = segment.notes.len();
    if n == 0 {
        return None;
    }
    let vel: Vec<f64> = segment
        .notes
        .iter()
        .map(|x| f64::from(x.velocity))
        .collect();
    let mean = vel.iter().sum::<f64>() / n as f64;
    let var = vel.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n as f64;
    Some(SegmentStats {
        window: segment.window,
        median_pitch: median(segment.notes.iter().map(|x| f64::from(x.pitch)).collect()),
        velocity_mean: mean,
        velocity_sd: var.sqrt(),
        notes_per_s: n as f64 / 5.0,
    })
}

/// [`segment_stats`] of every non-empty segment.
pub fn drift(piece: &Piece) -> Vec<SegmentStats> {
    piece.segments.iter().filter_map(segment_stats).collect()
}

/// The whole piece's median pitch and mean velocity.
pub fn register_and_loudness(piece: &Piece) -> (f64, f64) {
    let notes = piece.to_played();
    let vel = if notes.is_empty() {
        0.0
    } else {
        notes.iter().map(|n| f64::from(n.velocity)).sum::<f64>() / notes.len() as f64
    };
    (
        median(notes.iter().map(|n| f64::from(n.pitch)).collect()),
        vel,
    )
}

/// Where rewritten music meets kept music: the relative jump in loudness and density from the
/// kept segment to the rewritten one next to it.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Seam {
    /// The kept window and the rewritten one.
    pub kept: u32,
    pub rewritten: u32,
    /// |rewritten − kept| / kept, of the mean velocity and of the notes per second.
    pub loudness_jump: f64,
    pub density_jump: f64,
}

/// The seams of `generated` given its rewritten windows: every pair of adjacent windows (both
/// non-empty) of which exactly one was rewritten.
pub fn seams(generated: &Piece, rewritten: &BTreeSet<u32>) -> Vec<Seam> {
    let stats = drift(generated);
    stats
        .windows(2)
        .filter(|w| w[1].window == w[0].window + 1)
        .filter_map(|w| {
            let (a, b) = (&w[0], &w[1]);
            let (kept, new) = match (rewritten.contains(&a.window), rewritten.contains(&b.window)) {
                (false, true) => (a, b),
                (true, false) => (b, a),
                _ => return None,
            };
            let jump = |k: f64, g: f64| if k > 0.0 { (g - k).abs() / k } else { 0.0 };
            Some(Seam {
                kept: kept.window,
                rewritten: new.window,
                loudness_jump: jump(kept.velocity_mean, new.velocity_mean),
                density_jump: jump(kept.notes_per_s, new.notes_per_s),
            })
        })
        .collect()
}

/// The largest loudness and density jump over `seams` (0 without seams).
pub fn worst_seam(seams: &[Seam]) -> (f64, f64) {
    seams.iter().fold((0.0, 0.0), |(l, d), s| {
        (f64::max(l, s.loudness_jump), f64::max(d, s.density_jump))
    })
}

/// Pitch-class distance (KL, as the paper's metric) of segment `window` to its neighbours
/// (the segments just before and after), or `None` without neighbours or notes.
pub fn neighbour_distance(piece: &Piece, window: u32) -> Option<f64> {
    let seg = piece.segments.iter().find(|s| s.window == window)?;
    if seg.notes.is_empty() {
        return None;
    }
    let around = Piece {
        segments: piece
            .segments
            .iter()
            .filter(|s| s.window + 1 == window || s.window == window + 1)
            .cloned()
            .collect(),
    };
    if around.note_count() == 0 {
        return None;
    }
    let own = Piece {
        segments: vec![seg.clone()],
    };
    Some(histogram_kl(
        &pitch_class_histogram(&around),
        &pitch_class_histogram(&own),
    ))
}

/// A rewritten window's pitch-class distance to its neighbours.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Distance {
    pub window: u32,
    pub generated: Option<f64>,
    /// The original's at the same place: the reference value.
    pub original: Option<f64>,
}

/// [`Distance`] of each rewritten window.
pub fn pitch_class_distances(
    original: &Piece,
    generated: &Piece,
    rewritten: &BTreeSet<u32>,
) -> Vec<Distance> {
    rewritten
        .iter()
        .map(|&window| Distance {
            window,
            generated: neighbour_distance(generated, window),
            original: neighbour_distance(original, window),
        })
        .collect()
}

/// The mean distance over the windows that have one: generated, original.
pub fn mean_distances(distances: &[Distance]) -> (Option<f64>, Option<f64>) {
    (
        mean(distances.iter().filter_map(|d| d.generated)),
        mean(distances.iter().filter_map(|d| d.original)),
    )
}

/// Every measure of one generated piece against its original, with the original's own values
/// as reference (`improvnet check`).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Check {
    pub rewritten_windows: usize,
    /// The top voice kept in the rewritten windows, and overall.
    pub tune_rewritten: Kept,
    pub tune_overall: Kept,
    pub defects: Defects,
    pub defects_original: Defects,
    pub median_pitch: f64,
    pub median_pitch_original: f64,
    pub velocity_mean: f64,
    pub velocity_mean_original: f64,
    pub notes_per_s: f64,
    pub notes_per_s_original: f64,
    pub seams: Vec<Seam>,
    /// Rewritten windows: pitch-class distance to the neighbours, generated and original.
    pub distances: Vec<Distance>,
    pub swing: Option<f64>,
    pub swing_original: Option<f64>,
    pub harmony: Option<Harmony>,
    pub per_segment: Vec<SegmentStats>,
}

fn notes_per_s(piece: &Piece) -> f64 {
    let notes = piece.to_played();
    let (Some(first), Some(last)) = (
        notes.iter().map(|n| n.start_ms).min(),
        notes.iter().map(end).max(),
    ) else {
        return 0.0;
    };
    notes.len() as f64 / ((last - first).max(1) as f64 / 1000.0)
}

/// Measures `generated` against `original` (and `melody`, for a harmonization).
pub fn check(original: &Piece, generated: &Piece, melody: Option<&Piece>) -> Check {
    let rewritten = rewritten_windows(original, generated);
    let (mp, vm) = register_and_loudness(generated);
    let (mpo, vmo) = register_and_loudness(original);
    Check {
        rewritten_windows: rewritten.len(),
        tune_rewritten: tune_kept(original, generated, Some(&rewritten)),
        tune_overall: tune_kept(original, generated, None),
        defects: defects(generated, Some(original)),
        defects_original: defects(original, None),
        median_pitch: mp,
        median_pitch_original: mpo,
        velocity_mean: vm,
        velocity_mean_original: vmo,
        notes_per_s: notes_per_s(generated),
        notes_per_s_original: notes_per_s(original),
        seams: seams(generated, &rewritten),
        distances: pitch_class_distances(original, generated, &rewritten),
        swing: super::style::swing_ratio(generated),
        swing_original: super::style::swing_ratio(original),
        harmony: melody.map(|m| harmony(m, generated)),
        per_segment: drift(generated),
    }
}

fn mean(xs: impl Iterator<Item = f64>) -> Option<f64> {
    let v: Vec<f64> = xs.collect();
    (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
}

fn opt(x: Option<f64>) -> String {
    x.map_or("–".into(), |x| format!("{x:.2}"))
}

impl Check {
    /// The largest loudness and density jump over the seams (0 without seams).
    pub fn worst_seam(&self) -> (f64, f64) {
        worst_seam(&self.seams)
    }

    /// The mean pitch-class distance of the rewritten windows to their neighbours: generated,
    /// original.
    pub fn mean_distance(&self) -> (Option<f64>, Option<f64>) {
        mean_distances(&self.distances)
    }

    /// A Markdown report: measure, generated, original.
    pub fn markdown(&self) -> String {
        let mut s = String::from("| measure | generated | original |\n|---|---:|---:|\n");
        let mut row = |name: &str, g: String, o: String| {
            s.push_str(&format!("| {name} | {g} | {o} |\n"));
        };
        let kept = |k: &Kept| format!("{:.1} % ({} of {})", 100.0 * k.share(), k.kept, k.total);
        row(
            "rewritten windows",
            self.rewritten_windows.to_string(),
            "–".into(),
        );
        row(
            "top voice kept, rewritten windows",
            kept(&self.tune_rewritten),
            "100 %".into(),
        );
        row(
            "top voice kept, overall",
            kept(&self.tune_overall),
            "100 %".into(),
        );
        let (d, o) = (&self.defects, &self.defects_original);
        row(
            "struck while sounding",
            d.restrikes.to_string(),
            o.restrikes.to_string(),
        );
        row(
            "holes ≥ 1.5 s (where the original plays)",
            d.holes.to_string(),
            o.holes.to_string(),
        );
        row(
            "clusters ≥ 6 notes in 40 ms",
            d.clusters.to_string(),
            o.clusters.to_string(),
        );
        row(
            "notes outside the range ± 7",
            d.out_of_range.to_string(),
            o.out_of_range.to_string(),
        );
        row(
            "median pitch",
            format!("{:.1}", self.median_pitch),
            format!("{:.1}", self.median_pitch_original),
        );
        row(
            "velocity mean",
            format!("{:.1}", self.velocity_mean),
            format!("{:.1}", self.velocity_mean_original),
        );
        row(
            "notes per second",
            format!("{:.2}", self.notes_per_s),
            format!("{:.2}", self.notes_per_s_original),
        );
        let (l, dj) = self.worst_seam();
        row(
            &format!(
                "worst seam jump, loudness / density ({} seams)",
                self.seams.len()
            ),
            format!("{:.0} % / {:.0} %", 100.0 * l, 100.0 * dj),
            "–".into(),
        );
        let (g, o) = self.mean_distance();
        row(
            "pitch-class distance to neighbours (rewritten, mean)",
            opt(g),
            opt(o),
        );
        row("swing ratio", opt(self.swing), opt(self.swing_original));
        if let Some(h) = &self.harmony {
            let share = |n: usize| {
                format!(
                    "{:.1} % ({n} of {})",
                    100.0 * n as f64 / h.melody_notes.max(1) as f64,
                    h.melody_notes
                )
            };
            row("melody notes kept", share(h.kept), "100 %".into());
            row("melody on top", share(h.on_top), "100 %".into());
            row(
                "notes under a melody note (mean)",
                format!("{:.2}", h.notes_under),
                "0".into(),
            );
            row(
                "chords (≥ 3 pitch classes) per melody note",
                format!("{:.2}", h.chords_per_note),
                "0".into(),
            );
            row(
                &format!("added notes in {} or its colours", h.key),
                format!("{:.1} % of {}", 100.0 * h.in_key, h.added),
                "–".into(),
            );
            row(
                "melody notes with a clash (semitone, minor ninth)",
                share(h.clashes),
                "0".into(),
            );
            row(
                "melody windows left empty",
                h.empty_windows.to_string(),
                "0".into(),
            );
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::music::Note;

    fn piece(notes: &[(u8, u64, u64)]) -> Piece {
        let played: Vec<PlayedNote> = notes
            .iter()
            .map(|&(pitch, start_ms, dur_ms)| PlayedNote {
                pitch,
                velocity: 75,
                start_ms,
                dur_ms,
            })
            .collect();
        let mut sorted = played;
        sorted.sort_by_key(|n| n.start_ms);
        Piece::from_played(&sorted)
    }

    #[test]
    fn tune_kept_counts_pitch_and_onset_within_100_ms() {
        // Two chords and a single note; the top voice is 72, 74, 76.
        let original = piece(&[
            (60, 0, 500),
            (72, 0, 500),
            (62, 1000, 500),
            (74, 1010, 500),
            (76, 2000, 500),
        ]);
        // 72 kept exactly, 74 moved by 90 ms (kept), 76 moved by 150 ms (lost).
        let generated = piece(&[
            (72, 0, 400),
            (74, 1100, 500),
            (50, 1100, 500),
            (76, 2150, 500),
        ]);
        assert_eq!(
            tune_kept(&original, &generated, None),
            Kept { kept: 2, total: 3 }
        );
        let only_first = BTreeSet::from([0]);
        assert_eq!(
            tune_kept(&original, &generated, Some(&only_first)).total,
            3,
            "all three are in window 0"
        );
        let none = BTreeSet::from([1]);
        assert_eq!(tune_kept(&original, &generated, Some(&none)).total, 0);
    }

    #[test]
    fn rewritten_windows_are_the_ones_whose_notes_differ() {
        let original = piece(&[(60, 0, 500), (62, 5000, 500), (64, 10_000, 500)]);
        let generated = piece(&[
            (60, 0, 500),
            (63, 5000, 500),
            (64, 10_000, 500),
            (65, 15_000, 10),
        ]);
        assert_eq!(
            rewritten_windows(&original, &generated),
            BTreeSet::from([1, 3])
        );
    }

    #[test]
    fn harmony_counts_kept_on_top_chords_key_and_clashes() {
        // C major melody: C5 E5 G5 C6, 1 s each.
        let melody = piece(&[
            (72, 0, 1000),
            (76, 1000, 1000),
            (79, 2000, 1000),
            (84, 3000, 1000),
        ]);
        let generated = piece(&[
            // Note 1: kept, a C major triad under it (3 pitch classes), on top.
            (72, 0, 1000),
            (60, 0, 1000),
            (64, 0, 1000),
            (67, 0, 1000),
            // Note 2: kept, one note under it a semitone away (a clash), 2 pitch classes.
            (76, 1000, 1000),
            (75, 1000, 1000),
            // Note 3: kept but covered by an added note above it (not on top).
            (79, 2000, 1000),
            (81, 2000, 1000),
            // Note 4: moved by 20 ms (not kept), nothing under it; C# out of key.
            (84, 3020, 1000),
            (61, 3500, 400),
        ]);
        let h = harmony(&melody, &generated);
        assert_eq!(h.melody_notes, 4);
        assert_eq!(h.kept, 3);
        // Note 4 is sounded at 3020 (within 50 ms): it is the top note there.
        assert_eq!(h.on_top, 3);
        assert_eq!(h.key, "C major");
        assert_eq!(h.clashes, 1);
        assert_eq!(h.chords_per_note, 0.25);
        // Added: 60, 64, 67, 75 (Eb: blue third, in), 81, 84@3020, 61 (C#: out): 6 of 7 in key.
        assert_eq!(h.added, 7);
        assert!((h.in_key - 6.0 / 7.0).abs() < 1e-9, "{}", h.in_key);
        // Under each: note 1 has 3 below, note 2 one, note 3 none below (81 is above), note 4 none.
        assert!((h.notes_under - 1.0).abs() < 1e-9, "{}", h.notes_under);
        assert_eq!(h.empty_windows, 0);
        let silent = piece(&[(72, 0, 1000)]);
        assert_eq!(harmony(&melody, &silent).kept, 1);
        let later = piece(&[(72, 0, 1000), (72, 12_000, 100)]);
        let m2 = piece(&[(72, 0, 1000), (74, 5000, 100)]);
        assert_eq!(harmony(&m2, &later).empty_windows, 1);
    }

    #[test]
    fn key_finding_reads_major_and_minor() {
        let g_major = piece(&[
            (67, 0, 1000),
            (71, 1000, 500),
            (74, 1500, 500),
            (66, 2000, 300),
            (67, 2300, 1000),
        ]);
        assert_eq!(key_of(&pitch_class_histogram(&g_major)), (7, true));
        let a_minor = piece(&[
            (69, 0, 1000),
            (72, 1000, 500),
            (76, 1500, 500),
            (68, 2000, 300),
            (69, 2300, 1000),
            (64, 3300, 600),
        ]);
        assert_eq!(key_of(&pitch_class_histogram(&a_minor)), (9, false));
    }

    #[test]
    fn defects_count_restrikes_holes_clusters_and_range() {
        let original = piece(&[(60, 0, 3000), (64, 3000, 3000), (67, 6000, 3000)]);
        let generated = piece(&[
            (60, 0, 1000),
            (60, 500, 300), // struck while 60 still sounds
            // 1000..3000 silent: a hole where the original plays.
            (64, 3000, 500),
            (55, 3000, 500),
            (57, 3010, 500),
            (59, 3020, 500),
            (62, 3030, 500),
            (65, 3040, 500), // six notes within 40 ms: a cluster
            (90, 6000, 500), // 90 > 67 + 7: out of range
        ]);
        let d = defects(&generated, Some(&original));
        assert_eq!(
            d,
            Defects {
                restrikes: 1,
                holes: 2,
                clusters: 1,
                out_of_range: 1,
            }
        );
        // The original itself has none.
        assert_eq!(defects(&original, None), Defects::default());
        // A silence the original has too is not counted.
        let rest = piece(&[(60, 0, 500), (62, 2500, 500)]);
        assert_eq!(defects(&rest, Some(&rest)).holes, 0);
        assert_eq!(defects(&rest, None).holes, 1);
    }

    #[test]
    fn drift_and_seams_compare_kept_and_rewritten_neighbours() {
        let mut p = piece(&[(60, 0, 500), (62, 1000, 500), (64, 5000, 500)]);
        p.segments[1].notes[0] = Note::new(64, 105, 0, 500);
        let stats = drift(&p);
        assert_eq!(stats.len(), 2);
        assert_eq!(stats[0].median_pitch, 61.0);
        assert_eq!(stats[0].velocity_mean, 75.0);
        assert_eq!(stats[0].notes_per_s, 0.4);
        let s = seams(&p, &BTreeSet::from([1]));
        assert_eq!(s.len(), 1);
        assert_eq!((s[0].kept, s[0].rewritten), (0, 1));
        assert!((s[0].loudness_jump - 0.4).abs() < 1e-9);
        assert!((s[0].density_jump - 0.5).abs() < 1e-9);
        assert!(seams(&p, &BTreeSet::from([0, 1])).is_empty());
    }

    #[test]
    fn neighbour_distance_is_zero_for_the_same_pitch_classes() {
        let p = piece(&[(60, 0, 500), (72, 5000, 500), (60, 10_000, 500)]);
        assert!(neighbour_distance(&p, 1).unwrap() < 1e-6);
        let q = piece(&[(60, 0, 500), (66, 5000, 500), (60, 10_000, 500)]);
        assert!(neighbour_distance(&q, 1).unwrap() > 1.0);
        assert_eq!(neighbour_distance(&q, 7), None);
    }
}
