//! A right hand that improvises over a chart, so the jazz side of the corpus is not only comping.
//!
//! Lines are swung eighths in phrases separated by rests. Inside a phrase the line runs along the
//! chord's bebop scale and lands on chord tones on the beats; now and then it uses one of the
//! bebop devices below (enclosure, chromatic approach) to reach the next beat's chord tone, and
//! over a blues it quotes a blues lick. Each device is a small function with its own test.
//!
//! Timing is exact (no humanisation): the corpus applies one seeded humanisation to every source
//! alike, so that "expressive vs quantized" does not become the genre.

use rand::Rng;

use super::chord::{Chord, PitchClass};
use super::form::Chart;
use crate::music::PlayedNote;

/// Lowest and highest pitch of the line (G3..D6): a right hand above the comping.
pub const LINE_LOW: i32 = 55;
pub const LINE_HIGH: i32 = 86;

/// Where eighth notes fall: on the beat, and `swing` of the way through it.
#[derive(Clone, Copy, Debug)]
pub struct SwingGrid {
    beat_ms: f64,
    swing: f64,
}

impl SwingGrid {
    /// `swing` is the long eighth's share of the beat: 0.5 straight, 0.66 triplet swing.
    pub fn new(tempo_bpm: u16, swing: f64) -> Self {
        Self {
            beat_ms: 60_000.0 / f64::from(tempo_bpm.max(1)),
            swing: swing.clamp(0.5, 0.8),
        }
    }

    pub fn beat_ms(&self) -> f64 {
        self.beat_ms
    }

    /// Onset of the `eighth`-th eighth-note slot (two a beat), in milliseconds.
    pub fn onset_ms(&self, eighth: usize) -> u64 {
        let beat = (eighth / 2) as f64;
        let within = if eighth % 2 == 1 { self.swing } else { 0.0 };
        ((beat + within) * self.beat_ms).round() as u64
    }
}

/// How hard a note is played.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Accent {
    /// Swallowed, the way bebop players half-play a note before an accented upbeat.
    Ghost,
    Normal,
    /// Accented: upbeat approach notes, the target of an enclosure.
    Strong,
}

/// The next pitch above (`up`) or below `pitch` that belongs to `scale`.
pub fn scale_step(pitch: i32, scale: &[PitchClass], up: bool) -> i32 {
    let step = if up { 1 } else { -1 };
    let mut p = pitch + step;
    while !scale.iter().any(|pc| pc.contains(p)) {
        p += step;
    }
    p
}

/// The chord tone nearest `pitch` in the direction of travel (`pitch` itself if it is one).
pub fn chord_tone_from(pitch: i32, chord: &Chord, up: bool) -> i32 {
    let step = if up { 1 } else { -1 };
    let mut p = pitch;
    while !chord.has_tone(p) {
        p += step;
    }
    p
}

/// Bebop enclosure: the scale tone above the target, the half step below, then the target
/// (on the beat). `scale` is the target chord's scale.
pub fn enclosure(target: i32, scale: &[PitchClass]) -> [i32; 3] {
    [scale_step(target, scale, true), target - 1, target]
}

/// Chromatic approach: the half step below the target (rising line) or above it (falling).
pub fn chromatic_approach(target: i32, rising: bool) -> i32 {
    if rising {
        target - 1
    } else {
        target + 1
    }
}

/// Blues licks as (semitones above the tonic, length in eighths). Named for what they do.
pub const BLUES_LICKS: [(&str, &[(i32, usize)]); 4] = [
    // b3 bent up to the major 3rd, up the arpeggio to the b7 and the octave.
    ("blue_third", &[(3, 1), (4, 1), (7, 1), (10, 1), (12, 2)]),
    // Down the blues scale through the flat five to the root.
    (
        "blues_scale_descent",
        &[(10, 1), (7, 1), (6, 1), (5, 1), (3, 1), (0, 3)],
    ),
    // Minor pentatonic up and back down.
    (
        "pentatonic_turn",
        &[
            (7, 1),
            (10, 1),
            (12, 1),
            (10, 1),
            (7, 1),
            (5, 1),
            (3, 1),
            (0, 1),
        ],
    ),
    // A call from the octave answered by the blue third.
    (
        "call_and_blue_third",
        &[(12, 1), (10, 1), (7, 2), (3, 1), (4, 1), (0, 2)],
    ),
];

/// The blues scale with the major third the blue third resolves to: 1 b3 3 4 b5 5 b7.
pub const BLUES_SCALE: [i32; 7] = [0, 3, 4, 5, 6, 7, 10];

/// The `index`-th blues lick on the tonic `tonic_pitch`: (pitch, eighths).
pub fn blues_lick(tonic_pitch: i32, index: usize) -> Vec<(i32, usize)> {
    BLUES_LICKS[index % BLUES_LICKS.len()]
        .1
        .iter()
        .map(|&(interval, eighths)| (tonic_pitch + interval, eighths))
        .collect()
}

/// Move a pitch by octaves into the line's range.
pub fn fold_into_range(mut pitch: i32) -> i32 {
    while pitch > LINE_HIGH {
        pitch -= 12;
    }
    while pitch < LINE_LOW {
        pitch += 12;
    }
    pitch
}

/// Velocity for an accent on top of the phrase's dynamic `base`; upbeats lean a little
/// (swing phrasing accents the "and").
pub fn velocity(accent: Accent, base: i32, offbeat: bool) -> u8 {
    let v = match accent {
        Accent::Ghost => base - 16,
        Accent::Normal => base + if offbeat { 6 } else { 0 },
        Accent::Strong => base + 16,
    };
    v.clamp(20, 120) as u8
}

/// One note of the line on the eighth grid, before timing.
#[derive(Clone, Copy, Debug)]
struct GridNote {
    slot: usize,
    eighths: usize,
    pitch: i32,
    accent: Accent,
    base: i32,
}

/// Where the phrases go: (first slot, end slot) pairs, separated by rests of a beat or more.
fn plan_phrases(total_eighths: usize, rng: &mut impl Rng) -> Vec<(usize, usize)> {
    let mut phrases = Vec::new();
    // Often a pickup: the first phrase may start on an upbeat.
    let mut pos = rng.gen_range(0..=3);
    while pos + 4 <= total_eighths {
        let len = rng.gen_range(6..=20);
        let end = (pos + len).min(total_eighths);
        phrases.push((pos, end));
        pos = end + rng.gen_range(2..=6);
    }
    phrases
}

/// Improvise a right-hand line over `chart` with eighths swung at `swing` (long eighth's share
/// of the beat). Notes are monophonic, in time order, inside [`LINE_LOW`]..=[`LINE_HIGH`] plus
/// an enclosure's step.
pub fn improvise(chart: &Chart, swing: f64, rng: &mut impl Rng) -> Vec<PlayedNote> {
    let grid = SwingGrid::new(chart.tempo_bpm, swing);
    let total = chart.beats() * 2;
    let per_bar = usize::from(chart.beats_per_bar);
    let mut notes: Vec<GridNote> = Vec::new();
    let mut pitch = 67;
    let mut up = true;

    for (start, end) in plan_phrases(total, rng) {
        let base = rng.gen_range(60..=76);
        let first = notes.len();
        let mut s = start;
        let push = |notes: &mut Vec<GridNote>, slot, eighths, pitch, accent| {
            notes.push(GridNote {
                slot,
                eighths,
                pitch,
                accent,
                base,
            })
        };
        // Enter on a chord tone near where the last phrase left off, not on the same note.
        let aim = pitch + rng.gen_range(-7..=7);
        pitch = fold_into_range(chord_tone_from(aim, &chart.chord_at_beat(s / 2), up));
        push(&mut notes, s, 1, pitch, Accent::Normal);
        s += 1;

        while s < end {
            let beat = s / 2;
            let on_beat = s % 2 == 0;
            let left = end - s;
            let chord = chart.chord_at_beat(beat);
            let next = chart.chord_at_beat((beat + 1).min(chart.beats() - 1));

            let bar_start = on_beat && beat % per_bar == 0;
            if chart.form.is_blues() && bar_start && left >= 6 && rng.gen_bool(0.3) {
                let tonic = 60 + i32::from(chart.key.value());
                for (p, eighths) in blues_lick(tonic, rng.gen_range(0..BLUES_LICKS.len())) {
                    if s >= end {
                        break;
                    }
                    let accent = if s % 2 == 1 {
                        Accent::Strong
                    } else {
                        Accent::Normal
                    };
                    push(&mut notes, s, eighths, p, accent);
                    pitch = p;
                    s += eighths;
                }
                continue;
            }
            let aim = pitch + if up { 2 } else { -2 };
            let target = fold_into_range(chord_tone_from(aim, &next, up));
            let surround = enclosure(target, &next.scale());
            // An enclosure that would start on the note just played sounds stuck: skip it.
            if on_beat && left >= 3 && surround[0] != pitch && rng.gen_bool(0.2) {
                for (i, p) in surround.into_iter().enumerate() {
                    let accent = if i == 2 {
                        Accent::Strong
                    } else {
                        Accent::Normal
                    };
                    push(&mut notes, s + i, 1, p, accent);
                }
                pitch = target;
                s += 3;
                continue;
            }
            if !on_beat && left >= 2 && rng.gen_bool(0.25) {
                push(
                    &mut notes,
                    s,
                    1,
                    chromatic_approach(target, up),
                    Accent::Strong,
                );
                push(&mut notes, s + 1, 1, target, Accent::Normal);
                pitch = target;
                s += 2;
                continue;
            }

            // Bebop-scale run; turn round at the edges of the range, and now and then on a beat.
            let at_edge = (up && pitch >= LINE_HIGH - 2) || (!up && pitch <= LINE_LOW + 2);
            if at_edge || (on_beat && rng.gen_bool(0.15)) {
                up = !up;
            }
            let mut p = scale_step(pitch, &chord.bebop_scale(), up);
            if on_beat {
                p = chord_tone_from(p, &chord, up);
            }
            pitch = fold_into_range(p);
            let accent = if on_beat && rng.gen_bool(0.15) {
                Accent::Ghost
            } else {
                Accent::Normal
            };
            push(&mut notes, s, 1, pitch, accent);
            s += 1;
        }
        // The phrase ends on a held note, and its peak is accented.
        if let Some(last) = notes.last_mut() {
            last.eighths = last.eighths.max(3);
        }
        if let Some(peak) = notes[first..].iter_mut().max_by_key(|n| n.pitch) {
            peak.accent = Accent::Strong;
        }
    }

    let mut played: Vec<PlayedNote> = notes
        .iter()
        .map(|n| {
            let start_ms = grid.onset_ms(n.slot);
            let span = grid.onset_ms(n.slot + n.eighths) - start_ms;
            PlayedNote {
                pitch: n.pitch.clamp(21, 108) as u8,
                velocity: velocity(n.accent, n.base, n.slot % 2 == 1),
                start_ms,
                // Legato, but re-struck notes stay audible.
                dur_ms: ((span as f64 * 0.9).round() as u64).max(20),
            }
        })
        .collect();
    // One voice: a held note ends where the next begins.
    for i in 1..played.len() {
        let next_start = played[i].start_ms;
        let prev = &mut played[i - 1];
        prev.dur_ms = prev.dur_ms.min(next_start - prev.start_ms).max(1);
    }
    played
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::corpus::charts;
    use crate::corpus::chord::Quality;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn c_major() -> Vec<PitchClass> {
        Chord::new(PitchClass::C, Quality::Maj7).scale()
    }

    #[test]
    fn enclosure_of_c_is_d_b_c() {
        assert_eq!(enclosure(60, &c_major()), [62, 59, 60]);
        // Onto E: F above (a half step in C major), D# below.
        assert_eq!(enclosure(64, &c_major()), [65, 63, 64]);
    }

    #[test]
    fn chromatic_approach_is_a_half_step_away() {
        assert_eq!(chromatic_approach(64, true), 63);
        assert_eq!(chromatic_approach(64, false), 65);
    }

    #[test]
    fn scale_steps_and_chord_tones() {
        let g7 = Chord::new(PitchClass::new(7), Quality::Dom7);
        assert_eq!(scale_step(67, &g7.scale(), true), 69);
        assert_eq!(scale_step(67, &g7.bebop_scale(), false), 66); // F#: the passing major 7th
        assert_eq!(chord_tone_from(68, &g7, true), 71);
        assert_eq!(chord_tone_from(68, &g7, false), 67);
        assert_eq!(chord_tone_from(71, &g7, false), 71);
    }

    #[test]
    fn blues_licks_stay_in_the_blues_scale() {
        for i in 0..BLUES_LICKS.len() {
            let lick = blues_lick(65, i);
            assert!(lick.len() >= 5);
            for (p, eighths) in lick {
                assert!(
                    BLUES_SCALE.contains(&(p - 65).rem_euclid(12)),
                    "lick {i}: {p}"
                );
                assert!(eighths >= 1);
            }
        }
        // The descent goes b7 5 b5 4 b3 1.
        let pitches: Vec<i32> = blues_lick(60, 1).iter().map(|n| n.0).collect();
        assert_eq!(pitches, [70, 67, 66, 65, 63, 60]);
    }

    #[test]
    fn accents_are_louder_than_ghosts() {
        assert!(velocity(Accent::Strong, 70, false) > velocity(Accent::Normal, 70, true));
        assert!(velocity(Accent::Normal, 70, true) > velocity(Accent::Normal, 70, false));
        assert!(velocity(Accent::Ghost, 70, false) < velocity(Accent::Normal, 70, false));
        assert_eq!(velocity(Accent::Ghost, 0, false), 20);
    }

    #[test]
    fn swing_grid_places_the_upbeat() {
        let grid = SwingGrid::new(120, 2.0 / 3.0);
        assert_eq!(grid.onset_ms(0), 0);
        assert_eq!(grid.onset_ms(1), 333);
        assert_eq!(grid.onset_ms(2), 500);
        assert_eq!(SwingGrid::new(120, 0.5).onset_ms(3), 750);
    }

    #[test]
    fn generated_eighths_swing_within_the_requested_ratio() {
        for (i, chart) in charts(14, 3).iter().enumerate() {
            for ratio in [0.6, 0.66, 0.7] {
                let mut rng = ChaCha8Rng::seed_from_u64(i as u64);
                let notes = improvise(chart, ratio, &mut rng);
                let beat_ms = 60_000.0 / f64::from(chart.tempo_bpm);
                let mut pairs = 0;
                for n in &notes {
                    let pos = n.start_ms as f64 / beat_ms;
                    let frac = pos - (pos + 0.02).floor();
                    assert!(
                        frac.abs() <= 0.02 || (frac - ratio).abs() <= 0.02,
                        "{}: note at {} ms is {frac:.3} into the beat",
                        chart.form.name(),
                        n.start_ms
                    );
                }
                // Eighth pairs: a downbeat note followed by the upbeat of the same beat.
                for w in notes.windows(2) {
                    let a = w[0].start_ms as f64 / beat_ms;
                    let b = w[1].start_ms as f64 / beat_ms;
                    if (a - a.round()).abs() < 0.02 && b - a < 0.9 && b > a {
                        assert!(((b - a) - ratio).abs() <= 0.02, "pair {a:.3} {b:.3}");
                        pairs += 1;
                    }
                }
                assert!(
                    pairs > 4,
                    "{}: only {pairs} eighth pairs",
                    chart.form.name()
                );
            }
        }
    }

    #[test]
    fn lines_stay_on_the_keyboard_and_in_one_voice() {
        for (i, chart) in charts(28, 9).iter().enumerate() {
            let mut rng = ChaCha8Rng::seed_from_u64(100 + i as u64);
            let notes = improvise(chart, chart.swing_ratio(), &mut rng);
            assert!(notes.len() > 20, "{}", chart.form.name());
            for n in &notes {
                assert!((21..=108).contains(&n.pitch), "pitch {}", n.pitch);
                assert!((LINE_LOW - 1..=LINE_HIGH + 2).contains(&i32::from(n.pitch)));
                assert!(n.velocity > 0 && n.velocity <= 127 && n.dur_ms > 0);
            }
            for w in notes.windows(2) {
                assert!(w[0].start_ms < w[1].start_ms);
                assert!(w[0].start_ms + w[0].dur_ms <= w[1].start_ms);
            }
            // Nothing past the end of the chart's last bar (plus the held last note).
            let end_ms = chart.beats() as f64 * 60_000.0 / f64::from(chart.tempo_bpm);
            assert!((notes.last().unwrap().start_ms as f64) < end_ms);
        }
    }

    #[test]
    fn on_beat_run_notes_are_chord_tones_mostly() {
        // Downbeats spell the harmony: most notes on beats are chord tones of their chord.
        let chart = charts(4, 2).into_iter().nth(3).unwrap(); // ii–V–I cycle
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let notes = improvise(&chart, 0.66, &mut rng);
        let beat_ms = 60_000.0 / f64::from(chart.tempo_bpm);
        let on_beats: Vec<_> = notes
            .iter()
            .filter(|n| {
                let pos = n.start_ms as f64 / beat_ms;
                (pos - pos.round()).abs() < 0.02
            })
            .collect();
        let tones = on_beats
            .iter()
            .filter(|n| {
                let beat = (n.start_ms as f64 / beat_ms).round() as usize;
                chart.chord_at_beat(beat).has_tone(i32::from(n.pitch))
            })
            .count();
        assert!(
            tones * 10 >= on_beats.len() * 7,
            "{tones} of {}",
            on_beats.len()
        );
    }

    #[test]
    fn same_seed_same_line() {
        let chart = &charts(1, 4)[0];
        let a = improvise(chart, 0.64, &mut ChaCha8Rng::seed_from_u64(1));
        let b = improvise(chart, 0.64, &mut ChaCha8Rng::seed_from_u64(1));
        let c = improvise(chart, 0.64, &mut ChaCha8Rng::seed_from_u64(2));
        assert_eq!(a, b);
        assert_ne!(a, c);
    }
}
