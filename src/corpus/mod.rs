//! A jazz corpus without a jazz dataset: chord charts from the standard forms, written as MMA
//! song files (MMA comps them on piano), and a right-hand line improvised over each chart.
//!
//! Everything is a small named rule (a form, a substitution, a bebop device) so it can be checked
//! against the tune books, and everything is deterministic in the seed.

pub mod chord;
pub mod form;
pub mod melody;
pub mod mma;
pub mod substitute;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

pub use chord::{Chord, PitchClass, Quality};
pub use form::{Bar, Chart, Form, Mode};

use crate::music::PlayedNote;

/// How often each reharmonisation rule fires where it fits.
const RELATED_TWO_P: f64 = 0.3;
const BACKDOOR_P: f64 = 0.25;
const TRITONE_P: f64 = 0.25;
const TENSION_P: f64 = 0.2;

/// `count` charts, deterministic in `seed`. Forms cycle (blues, jazz blues, rhythm changes,
/// ii–V–I cycle, AABA song, modal vamp, jazz waltz); each form moves a fourth up in key every
/// time it comes round, so every form visits all twelve keys within 84 charts.
pub fn charts(count: usize, seed: u64) -> Vec<Chart> {
    (0..count).map(|i| chart(i, seed)).collect()
}

/// The `index`-th chart of [`charts`]; independent of how many are asked for.
pub fn chart(index: usize, seed: u64) -> Chart {
    let forms = Form::ALL.len();
    let form = Form::ALL[index % forms];
    let round = (index / forms) as i32;
    let key = PitchClass::new(5 * round + (seed % 12) as i32);

    // One stream per chart, so chart k does not depend on the charts before it.
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(index as u64);
    let chart_seed = u64::from(rng.gen::<u32>());

    let names = mma::grooves_for(form);
    let groove = mma::find_groove(names[rng.gen_range(0..names.len())])
        .expect("grooves_for names only listed grooves");
    let tempo_bpm = rng.gen_range(groove.tempo.0..=groove.tempo.1);
    let swing_percent = groove.swing.map_or(50, |(lo, hi)| rng.gen_range(lo..=hi));

    let mut bars = form.bars(key, &mut rng);
    let mut substitutions = Vec::new();
    if form.takes_substitutions() {
        // Related ii's first (they create ii–V's), then the backdoor (acts on ii–V–I), then
        // tritone substitutes on the dominants left.
        if substitute::apply_related_twos(&mut bars, RELATED_TWO_P, &mut rng) > 0 {
            substitutions.push("related_two");
        }
        if substitute::apply_backdoor(&mut bars, BACKDOOR_P, &mut rng) > 0 {
            substitutions.push("backdoor");
        }
        if substitute::apply_tritone_subs(&mut bars, TRITONE_P, &mut rng) > 0 {
            substitutions.push("tritone");
        }
    }
    if substitute::apply_tensions(&mut bars, TENSION_P, &mut rng) > 0 {
        substitutions.push("tensions");
    }

    Chart {
        form,
        key,
        mode: form.mode(),
        beats_per_bar: form.beats_per_bar(),
        tempo_bpm,
        groove: groove.name,
        swing_percent,
        bars,
        substitutions,
        seed: chart_seed,
    }
}

/// The chart's right-hand line at its own swing, seeded by the chart.
pub fn right_hand(chart: &Chart) -> Vec<PlayedNote> {
    let mut rng = ChaCha8Rng::seed_from_u64(chart.seed);
    melody::improvise(chart, chart.swing_ratio(), &mut rng)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn same_seed_same_charts() {
        assert_eq!(charts(21, 7), charts(21, 7));
        assert_ne!(charts(21, 7), charts(21, 8));
        // Chart k is the same whatever the count.
        assert_eq!(charts(30, 7)[20], charts(21, 7)[20]);
        assert_eq!(right_hand(&charts(3, 7)[2]), right_hand(&charts(3, 7)[2]));
    }

    #[test]
    fn every_form_visits_every_key_and_tempi_stay_in_range() {
        let all = charts(84, 0);
        for form in Form::ALL {
            let keys: HashSet<u8> = all
                .iter()
                .filter(|c| c.form == form)
                .map(|c| c.key.value())
                .collect();
            assert_eq!(keys.len(), 12, "{}", form.name());
        }
        for c in &all {
            assert!((80..=260).contains(&c.tempo_bpm), "{}", c.tempo_bpm);
            assert!((50..=70).contains(&c.swing_percent));
            assert_eq!(c.beats_per_bar, c.form.beats_per_bar());
            assert!(c.bars.iter().all(|b| (1..=2).contains(&b.chords.len())));
            assert!(mma::grooves_for(c.form).contains(&c.groove));
        }
        // Waltzes are slower than bebop.
        let max_waltz = all
            .iter()
            .filter(|c| c.beats_per_bar == 3)
            .map(|c| c.tempo_bpm)
            .max();
        assert!(max_waltz.unwrap() <= 200);
    }

    #[test]
    fn substitutions_are_used_and_recorded() {
        let all = charts(84, 1);
        for rule in ["related_two", "backdoor", "tritone", "tensions"] {
            assert!(
                all.iter().any(|c| c.substitutions.contains(&rule)),
                "{rule} never applied"
            );
        }
        // The plain blues stays plain (apart from colour tones).
        for c in all.iter().filter(|c| c.form == Form::Blues) {
            assert!(c.substitutions.iter().all(|s| *s == "tensions"));
            assert!(c.bars.iter().all(|b| b.chords.len() == 1));
        }
    }
}
