//! Style statistics that do not depend on our genre classifier (issue #7 step 5): swing of
//! eighth-note pairs, the share of 7th/9th/13th sonorities, and a symbolic stand-in for the
//! original's self-similarity-matrix comparison (spec §14).
//!
//! A classifier can learn the data set instead of the genre; these numbers are musical facts a
//! listener would name, so they show whether a "jazz" output swings and voices like jazz.

use super::{timeline, Timed};
use crate::music::Piece;

/// Notes starting this close together count as one onset (a chord, or a slightly rolled one).
/// How long after its onset a held note still joins a sonority (see [`chord_shares`]).
pub const HELD_WINDOW_S: f64 = 0.5;
const CHORD_SPREAD_S: f64 = 0.030;
/// Inter-onset intervals that may be one half of an eighth-note pair: from very fast bebop
/// (~60 ms) to a slow ballad's long swung eighth (600 ms).
const EIGHTH_MIN_S: f64 = 0.060;
const EIGHTH_MAX_S: f64 = 0.600;
/// How far a pair's length (one beat) may stray from the piece's median beat.
const BEAT_TOLERANCE: f64 = 0.20;
/// Fewer pairs than this say nothing about a piece's feel.
const MIN_SWING_PAIRS: usize = 8;

/// Chroma frame length of [`ssm_pearson`] (librosa's hop of 1024 at 22.05 kHz is ~46 ms; a
/// coarser frame suits note data and keeps the matrix small).
const FRAME_S: f64 = 0.5;
/// The original compares the first five minutes only.
const SSM_SPAN_S: f64 = 300.0;
/// Largest side of the compared matrices (the original resizes to 512; 256 frames of 0.5 s
/// already cover two minutes at full resolution).
const SSM_MAX_SIDE: usize = 256;

/// Onsets of the top voice ("skyline"): for every group of notes starting within 30 ms of the
/// group's first note, the start of its highest note.
fn top_voice_onsets(notes: &[Timed]) -> Vec<f64> {
    onset_groups(notes)
        .into_iter()
        .map(|g| {
            notes[g]
                .iter()
                .max_by(|a, b| a.pitch.cmp(&b.pitch).then(b.start.total_cmp(&a.start)))
                .map(|n| n.start)
                .unwrap_or_default()
        })
        .collect()
}

/// Index ranges of notes (sorted by start) that start within [`CHORD_SPREAD_S`] of the range's
/// first note. Anchored on the first note so that an arpeggio does not chain into one chord.
fn onset_groups(notes: &[Timed]) -> Vec<std::ops::Range<usize>> {
    let mut groups = Vec::new();
    let mut first = 0;
    for i in 1..=notes.len() {
        if i == notes.len() || notes[i].start - notes[first].start >= CHORD_SPREAD_S {
            groups.push(first..i);
            first = i;
        }
    }
    groups
}

/// Median of a non-empty slice (mean of the two middle values for an even length).
pub(crate) fn median(xs: &mut [f64]) -> f64 {
    xs.sort_by(f64::total_cmp);
    let m = xs.len() / 2;
    if xs.len() % 2 == 1 {
        xs[m]
    } else {
        (xs[m - 1] + xs[m]) / 2.0
    }
}

fn mean(xs: &[f64]) -> Option<f64> {
    (!xs.is_empty()).then(|| xs.iter().sum::<f64>() / xs.len() as f64)
}

/// Swing ratio of the piece's eighth-note pairs: long / (long + short), so straight eighths give
/// 0.5, triplet swing (2:1) ~0.667 and dotted-eighth-sixteenth (3:1) 0.75.
///
/// Performance MIDI has no beat grid, so the pairs are guessed from the top voice's onsets:
/// consecutive inter-onset intervals (a, b), both 60–600 ms, whose sum lies within ±20 % of the
/// median such sum (the piece's "beat"). A chain of such intervals (each neighbour pairs into a
/// beat) can be read from its first or its second interval; the reading whose mean ratio is
/// larger is taken, since in swing the pair starts on the long note. The answer is the median
/// ratio over all pairs read; `None` under 8 pairs.
///
/// Limits: it measures whatever subdivision dominates (sixteenths in a sixteenth-note étude);
/// rubato and ritardandi blur it; choosing the larger-looking phase biases noisy straight
/// eighths slightly above 0.5; when the melody rests, the accompaniment's onsets become the
/// "top voice"; a two-interval chain has no phase evidence and is read as it starts.
pub fn swing_ratio(piece: &Piece) -> Option<f64> {
    let onsets = top_voice_onsets(&timeline(piece));
    let iois: Vec<f64> = onsets.windows(2).map(|w| w[1] - w[0]).collect();
    let eighthish = |x: &f64| (EIGHTH_MIN_S..=EIGHTH_MAX_S).contains(x);
    let runs: Vec<&[f64]> = iois
        .split(|x| !eighthish(x))
        .filter(|r| r.len() >= 2)
        .collect();
    let mut beats: Vec<f64> = runs
        .iter()
        .flat_map(|r| r.windows(2).map(|w| w[0] + w[1]))
        .collect();
    if beats.is_empty() {
        return None;
    }
    let beat = median(&mut beats);
    let fits = |a: f64, b: f64| (a + b - beat).abs() <= BEAT_TOLERANCE * beat;
    let mut ratios = Vec::new();
    for run in runs {
        // Split the run where neighbours do not make a beat (a quarter note amid eighths), so
        // that each chain keeps its own phase.
        let mut start = 0;
        for i in 1..=run.len() {
            if i == run.len() || !fits(run[i - 1], run[i]) {
                let chain = &run[start..i];
                let read = |phase: usize| -> Vec<f64> {
                    chain
                        .get(phase..)
                        .unwrap_or_default()
                        .chunks_exact(2)
                        .map(|p| p[0] / (p[0] + p[1]))
                        .collect()
                };
                let (on, off) = (read(0), read(1));
                let better_off = match (mean(&on), mean(&off)) {
                    (Some(a), Some(b)) => b > a,
                    (None, Some(_)) => true,
                    _ => false,
                };
                ratios.extend(if better_off { off } else { on });
                start = i;
            }
        }
    }
    (ratios.len() >= MIN_SWING_PAIRS).then(|| median(&mut ratios))
}

/// How often the piece's harmony goes beyond triads.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ChordShares {
    /// Onsets whose sounding notes hold at least 3 distinct pitch classes.
    pub sonorities: usize,
    /// Share of those with a third and a seventh over some root: 7th chords and up.
    pub seventh_or_more: f64,
    /// Share of those that, over such a root, also hold a 9th or a 13th.
    pub ninth_or_thirteenth: f64,
}

/// Does pitch-class set `pcs` (bit k = pitch class k) hold `root + interval`?
fn has(pcs: u16, root: u32, interval: u32) -> bool {
    pcs & (1 << ((root + interval) % 12)) != 0
}

/// (7th chord, 7th chord with a 9th or 13th) over some root of the set.
fn classify(pcs: u16) -> (bool, bool) {
    let mut seventh = false;
    let mut upper = false;
    for root in (0..12).filter(|r| has(pcs, *r, 0)) {
        let third = has(pcs, root, 3) || has(pcs, root, 4);
        let sev = has(pcs, root, 10) || has(pcs, root, 11);
        if third && sev {
            seventh = true;
            upper |= has(pcs, root, 2) || has(pcs, root, 9);
        }
    }
    (seventh, upper)
}

/// Shares of 7th-and-up and 9th/13th sonorities among the piece's chords.
///
/// A sonority is the set of pitch classes sounding at an onset (the notes starting there, within
/// 30 ms, plus those still held), counted once per onset; those with ≥ 3 pitch classes count.
/// Any root in the set with a third (m3/M3) and a seventh (m7/M7) makes it a 7th chord; a 9th
/// (M2) or 13th (M6) over such a root makes it a 9th/13th chord. Inversions and rootless
/// voicings count when the root is present; a C6 counts as Am7, as a jazz pianist would hear it.
/// A held note counts only within [`HELD_WINDOW_S`] of its onset: durations include the sustain
/// pedal, and without the cap a pedalled classical piece blends its passing notes into "7th
/// chords" (the Chopin nocturne read 0.75 uncapped, 0.53 with the cap) and would look more jazz
/// than unpedalled comping. `None` when no onset has 3 pitch classes.
pub fn chord_shares(piece: &Piece) -> Option<ChordShares> {
    let notes = timeline(piece);
    let mut active: Vec<usize> = Vec::new();
    let (mut kept, mut seventh, mut upper) = (0usize, 0usize, 0usize);
    for g in onset_groups(&notes) {
        let at = notes[g.end - 1].start;
        active.extend(g);
        active.retain(|&i| notes[i].end > at && at - notes[i].start <= HELD_WINDOW_S);
        let pcs = active
            .iter()
            .fold(0u16, |s, &i| s | 1 << (notes[i].pitch % 12));
        if pcs.count_ones() >= 3 {
            kept += 1;
            let (s, u) = classify(pcs);
            seventh += usize::from(s);
            upper += usize::from(u);
        }
    }
    (kept > 0).then(|| ChordShares {
        sonorities: kept,
        seventh_or_more: seventh as f64 / kept as f64,
        ninth_or_thirteenth: upper as f64 / kept as f64,
    })
}

/// Share of the piece's sonorities that are 7th chords or richer (see [`chord_shares`]).
pub fn extended_chord_share(piece: &Piece) -> Option<f64> {
    chord_shares(piece).map(|c| c.seventh_or_more)
}

/// Duration-weighted chroma per 0.5 s frame over the first five minutes.
fn chroma_frames(piece: &Piece) -> Vec<[f64; 12]> {
    let notes = timeline(piece);
    let end = notes
        .iter()
        .map(|n| n.end)
        .fold(0.0, f64::max)
        .min(SSM_SPAN_S);
    let count = (end / FRAME_S).ceil() as usize;
    let mut frames = vec![[0.0; 12]; count];
    for n in &notes {
        let (start, stop) = (n.start, n.end.min(end));
        if stop <= start {
            continue;
        }
        let first = (start / FRAME_S).floor() as usize;
        let last = ((stop / FRAME_S).ceil() as usize).min(count);
        for (f, frame) in frames.iter_mut().enumerate().take(last).skip(first) {
            let lo = start.max(f as f64 * FRAME_S);
            let hi = stop.min((f + 1) as f64 * FRAME_S);
            if hi > lo {
                frame[n.pitch as usize % 12] += hi - lo;
            }
        }
    }
    frames
}

/// Cosine self-similarity, row-major. Two silent frames are alike (1); silence and sound are not (0).
fn self_similarity(frames: &[[f64; 12]]) -> Vec<f64> {
    let norms: Vec<f64> = frames
        .iter()
        .map(|f| f.iter().map(|x| x * x).sum::<f64>().sqrt())
        .collect();
    let n = frames.len();
    let mut m = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..n {
            m[i * n + j] = match (norms[i] > 0.0, norms[j] > 0.0) {
                (true, true) => {
                    let dot: f64 = frames[i].iter().zip(&frames[j]).map(|(a, b)| a * b).sum();
                    dot / (norms[i] * norms[j])
                }
                (false, false) => 1.0,
                _ => 0.0,
            };
        }
    }
    m
}

/// Bilinear resize of an n×n matrix to size×size (pixel centres aligned, as image resizers do).
fn resize(m: &[f64], n: usize, size: usize) -> Vec<f64> {
    let scale = n as f64 / size as f64;
    let coord = |i: usize| {
        let x = ((i as f64 + 0.5) * scale - 0.5).clamp(0.0, (n - 1) as f64);
        let lo = x.floor() as usize;
        (lo, (lo + 1).min(n - 1), x - lo as f64)
    };
    let mut out = vec![0.0; size * size];
    for i in 0..size {
        let (i0, i1, fi) = coord(i);
        for j in 0..size {
            let (j0, j1, fj) = coord(j);
            let top = m[i0 * n + j0] * (1.0 - fj) + m[i0 * n + j1] * fj;
            let bottom = m[i1 * n + j0] * (1.0 - fj) + m[i1 * n + j1] * fj;
            out[i * size + j] = top * (1.0 - fi) + bottom * fi;
        }
    }
    out
}

/// Scale to [0, 1] (all zeros when constant), as the original does before comparing.
fn min_max(m: &mut [f64]) {
    let lo = m.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = m.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let span = hi - lo;
    m.iter_mut()
        .for_each(|x| *x = if span > 0.0 { (*x - lo) / span } else { 0.0 });
}

/// Pearson r; `None` when either side is constant.
fn pearson(a: &[f64], b: &[f64]) -> Option<f64> {
    let (ma, mb) = (mean(a)?, mean(b)?);
    let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
    for (x, y) in a.iter().zip(b) {
        let (dx, dy) = (x - ma, y - mb);
        sab += dx * dy;
        saa += dx * dx;
        sbb += dy * dy;
    }
    (saa > 0.0 && sbb > 0.0).then(|| sab / (saa * sbb).sqrt())
}

/// Pearson r between the two pieces' self-similarity matrices: does the generated piece keep
/// the original's form (where sections return, where they contrast)?
///
/// The original (spec §14) uses librosa's chroma-CQT of the rendered audio; this is *symbolic*
/// chroma (each note's duration added to its pitch class per 0.5 s frame), so timbre,
/// overtones and velocity play no part and the numbers are comparable in trend, not in value.
/// Over the first five minutes: cosine SSM per piece, both bilinear-resized to N×N (N = the
/// shorter frame count, at most 256), min-max normalised, r over all entries. (The original's
/// vertical flip changes neither side's pairing, so it is left out.) `None` when a piece is
/// shorter than two frames or a matrix is constant.
pub fn ssm_pearson(original: &Piece, generated: &Piece) -> Option<f64> {
    let (fa, fb) = (chroma_frames(original), chroma_frames(generated));
    let side = fa.len().min(fb.len()).min(SSM_MAX_SIDE);
    if side < 2 {
        return None;
    }
    let mut a = resize(&self_similarity(&fa), fa.len(), side);
    let mut b = resize(&self_similarity(&fb), fb.len(), side);
    min_max(&mut a);
    min_max(&mut b);
    pearson(&a, &b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::music::PlayedNote;

    /// A piece from (pitch, start ms, duration ms); times on the 10 ms grid stay exact.
    fn piece(notes: &[(u8, u64, u64)]) -> Piece {
        let mut played: Vec<PlayedNote> = notes
            .iter()
            .map(|&(pitch, start_ms, dur_ms)| PlayedNote {
                pitch,
                velocity: 80,
                start_ms,
                dur_ms,
            })
            .collect();
        played.sort_by_key(|n| n.start_ms);
        Piece::from_played(&played)
    }

    /// `beats` beats of 600 ms (100 bpm) of melody eighths split long:short, over a left-hand
    /// chord on every beat (lower, so the top voice stays the melody).
    fn eighths(beats: u64, long_ms: u64) -> Piece {
        let mut notes = Vec::new();
        for b in 0..beats {
            let t = b * 600;
            notes.push((72 + (b % 5) as u8, t, long_ms));
            notes.push((74 + (b % 3) as u8, t + long_ms, 600 - long_ms));
            notes.push((48, t, 550));
            notes.push((52, t, 550));
        }
        piece(&notes)
    }

    #[test]
    fn straight_eighths_are_even() {
        let r = swing_ratio(&eighths(16, 300)).unwrap();
        assert!((r - 0.5).abs() <= 0.02, "{r}");
    }

    #[test]
    fn triplet_swing_is_two_to_one() {
        let r = swing_ratio(&eighths(16, 400)).unwrap();
        assert!((r - 2.0 / 3.0).abs() <= 0.02, "{r}");
    }

    #[test]
    fn dotted_swing_is_three_to_one() {
        let r = swing_ratio(&eighths(16, 450)).unwrap();
        assert!((r - 0.75).abs() <= 0.02, "{r}");
    }

    #[test]
    fn swing_survives_a_pickup_and_quarter_notes() {
        // A short pickup, then swung pairs broken by a quarter note every second bar: each
        // chain must find its own phase.
        let mut notes = vec![(70, 0, 200)];
        let mut t = 200;
        for bar in 0..6 {
            for _ in 0..3 {
                notes.push((72, t, 400));
                notes.push((74, t + 400, 200));
                t += 600;
            }
            if bar % 2 == 1 {
                notes.push((76, t, 600));
                t += 600;
            }
        }
        let r = swing_ratio(&piece(&notes)).unwrap();
        assert!((r - 2.0 / 3.0).abs() <= 0.02, "{r}");
    }

    #[test]
    fn swing_holds_under_human_timing() {
        // Triplet swing at 100 bpm with each onset pushed or pulled up to 20 ms.
        let jitter = [0i64, 20, -10, 10, -20, 0, 10, -10, 20, -20, 0, 10];
        let mut notes = Vec::new();
        for b in 0..24u64 {
            let t = (b * 600) as i64 + 30;
            let j = |k: u64| jitter[((2 * b + k) % 12) as usize];
            notes.push((72, (t + j(0)) as u64, 380));
            notes.push((74, (t + 400 + j(1)) as u64, 180));
        }
        let r = swing_ratio(&piece(&notes)).unwrap();
        assert!((r - 2.0 / 3.0).abs() <= 0.03, "{r}");
    }

    #[test]
    fn too_few_pairs_say_nothing() {
        // 7 beats of melody: 14 onsets, 13 intervals, at most 6 pairs either way.
        assert_eq!(swing_ratio(&eighths(7, 400)), None);
        // 8 beats: 16 onsets, 15 intervals, 7 pairs; a closing note makes it 8.
        assert_eq!(swing_ratio(&eighths(8, 400)), None);
        let closed = {
            let mut notes: Vec<(u8, u64, u64)> = (0..8)
                .flat_map(|b| [(72, b * 600, 400), (74, b * 600 + 400, 200)])
                .collect();
            notes.push((72, 4800, 400));
            piece(&notes)
        };
        let r = swing_ratio(&closed).unwrap();
        assert!((r - 2.0 / 3.0).abs() <= 0.02, "{r}");
        assert_eq!(swing_ratio(&piece(&[])), None);
        // Long notes only: no eighths at all.
        let slow: Vec<(u8, u64, u64)> = (0..20).map(|i| (60, i * 1000, 900)).collect();
        assert_eq!(swing_ratio(&piece(&slow)), None);
    }

    /// Block chords, one per second, from pitch lists.
    fn chords(list: &[&[u8]]) -> Piece {
        let notes: Vec<(u8, u64, u64)> = list
            .iter()
            .enumerate()
            .flat_map(|(i, c)| c.iter().map(move |&p| (p, i as u64 * 1000, 900)))
            .collect();
        piece(&notes)
    }

    const CMAJ7: &[u8] = &[48, 64, 67, 71];
    const DM7: &[u8] = &[50, 53, 57, 60];
    const G7: &[u8] = &[43, 59, 62, 65];
    const C: &[u8] = &[48, 64, 67];
    const F: &[u8] = &[53, 57, 60];
    const G: &[u8] = &[55, 59, 62];
    const CMAJ9: &[u8] = &[48, 52, 59, 62];
    const G13: &[u8] = &[43, 53, 59, 64];

    #[test]
    fn sevenths_are_extended_and_triads_are_not() {
        let s = chord_shares(&chords(&[DM7, G7, CMAJ7])).unwrap();
        assert_eq!(s.sonorities, 3);
        assert_eq!(s.seventh_or_more, 1.0);
        assert_eq!(s.ninth_or_thirteenth, 0.0);
        assert_eq!(extended_chord_share(&chords(&[C, F, G, C])), Some(0.0));
        // 1 of 4, then 2 of 5.
        assert_eq!(extended_chord_share(&chords(&[C, F, G7, C])), Some(0.25));
        let s = chord_shares(&chords(&[C, DM7, G13, CMAJ9, F])).unwrap();
        assert_eq!(s.seventh_or_more, 0.6);
        assert_eq!(s.ninth_or_thirteenth, 0.4);
    }

    #[test]
    fn held_notes_join_the_sonority_and_dyads_do_not_count() {
        // A C-E held under a G 0.3 s later, then a B 0.4 s after that: the B makes Cmaj7 with
        // the held notes (all within the held-note window).
        let p = piece(&[(48, 0, 3000), (64, 0, 3000), (67, 300, 500), (71, 400, 500)]);
        let s = chord_shares(&p).unwrap();
        // Onset 0 holds only C-E (2 pcs, dropped); 0.3 s: C E G; 0.4 s: C E G B.
        assert_eq!(s.sonorities, 2);
        assert_eq!(s.seventh_or_more, 0.5);
        assert_eq!(chord_shares(&piece(&[(60, 0, 500), (64, 0, 500)])), None);
        // A pedalled C-E from long ago does not colour a later G-B: only 2 pcs remain.
        let late = piece(&[
            (48, 0, 3000),
            (64, 0, 3000),
            (67, 2000, 500),
            (71, 2000, 500),
        ]);
        assert_eq!(chord_shares(&late), None);
    }

    /// Sections of 4 s, one repeated block chord each (a quarter-second pulse).
    fn form(sections: &[&[u8]]) -> Vec<(u8, u64, u64)> {
        sections
            .iter()
            .enumerate()
            .flat_map(|(s, chord)| {
                (0..16u64).flat_map(move |k| {
                    chord
                        .iter()
                        .map(move |&p| (p, s as u64 * 4000 + k * 250, 240))
                })
            })
            .collect()
    }

    const FORM: [&[u8]; 8] = [C, C, C, C, &[54, 58, 61], DM7, &[56, 59, 63], &[49, 53, 56]];

    #[test]
    fn ssm_of_a_piece_with_itself_is_one() {
        let p = piece(&form(&FORM));
        let r = ssm_pearson(&p, &p).unwrap();
        assert!((r - 1.0).abs() < 1e-9, "{r}");
    }

    #[test]
    fn ssm_drops_for_reversed_or_scrambled_pieces() {
        let notes = form(&FORM);
        let p = piece(&notes);
        let end = 32_000;
        let reversed: Vec<(u8, u64, u64)> = notes
            .iter()
            .map(|&(pitch, start, dur)| (pitch, end - start - dur, dur))
            .collect();
        let r_rev = ssm_pearson(&p, &piece(&reversed)).unwrap();
        let scrambled: Vec<(u8, u64, u64)> = notes
            .iter()
            .enumerate()
            .map(|(i, &(_, start, dur))| (60 + ((i * 7 + i * i * 5) % 12) as u8, start, dur))
            .collect();
        let r_scr = ssm_pearson(&p, &piece(&scrambled)).unwrap();
        assert!(r_rev < 0.4, "reversed {r_rev}");
        assert!(r_scr < 0.2, "scrambled {r_scr}");
        // A different length is resized, not truncated: the same form at half speed matches.
        let slow: Vec<(u8, u64, u64)> = notes
            .iter()
            .map(|&(pitch, start, dur)| (pitch, start * 2, dur * 2))
            .collect();
        let r_slow = ssm_pearson(&p, &piece(&slow)).unwrap();
        assert!(r_slow > 0.9, "slow {r_slow}");
        assert_eq!(ssm_pearson(&p, &piece(&[])), None);
    }
}
