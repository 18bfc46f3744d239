//! Reharmonisation rules a jazz player applies to a tune's changes, each a named rule.
//!
//! The chord-level rule (e.g. [`tritone_sub`]) is pure music theory and tested as such; the
//! `apply_*` function finds where it fits in a chart and applies it with probability `p`, so a
//! seed decides which spots get reharmonised.

use rand::Rng;

use super::chord::{Chord, PitchClass, Quality};
use super::form::Bar;

/// Tritone substitution: a dominant replaced by the dominant a tritone away (G7 → Db7). Both
/// share the guide tones (3rd and 7th swap roles), and the bass now falls by a half step.
pub fn tritone_sub(dominant: Chord) -> Chord {
    let quality = match dominant.quality {
        // The altered scale of G is the lydian-dominant scale of Db: plain Db7 names it.
        Quality::Alt7 => Quality::Dom7,
        q => q,
    };
    Chord::new(dominant.root.transpose(6), quality)
}

/// Backdoor ii–V: approach a tonic from iv7–bVII7 (Fm7–Bb7 → C) instead of ii–V.
pub fn backdoor_approach(tonic: PitchClass) -> (Chord, Chord) {
    (
        Chord::new(tonic.transpose(5), Quality::Min7),
        Chord::new(tonic.transpose(10), Quality::Dom7),
    )
}

/// The related ii of a dominant: the minor seventh a fifth above its root (G7 → Dm7).
pub fn related_two(dominant: Chord) -> Chord {
    Chord::new(dominant.root.transpose(7), Quality::Min7)
}

/// Upper-structure colour: 7 → 9 or 13, m7 → m9, maj7 → maj9 or 6. Same root and function.
pub fn add_tension(chord: Chord, rng: &mut impl Rng) -> Chord {
    let quality = match chord.quality {
        Quality::Dom7 if rng.gen_bool(0.5) => Quality::Dom9,
        Quality::Dom7 => Quality::Dom13,
        Quality::Min7 => Quality::Min9,
        Quality::Maj7 if rng.gen_bool(0.5) => Quality::Maj9,
        Quality::Maj7 => Quality::Maj6,
        q => q,
    };
    Chord::new(chord.root, quality)
}

/// Whether `from` resolves down a fifth to `to` (the root of `to` is a fourth above).
fn resolves_to(from: Chord, to: Chord) -> bool {
    from.root.interval_to(to.root) == 5
}

/// (bar, chord) positions of a chart in playing order.
fn positions(bars: &[Bar]) -> Vec<(usize, usize)> {
    bars.iter()
        .enumerate()
        .flat_map(|(b, bar)| (0..bar.chords.len()).map(move |c| (b, c)))
        .collect()
}

/// Tritone-substitute dominants that resolve down a fifth, each with probability `p`.
/// Returns how many were substituted.
pub fn apply_tritone_subs(bars: &mut [Bar], p: f64, rng: &mut impl Rng) -> usize {
    let pos = positions(bars);
    let mut count = 0;
    for w in pos.windows(2) {
        let ((b, c), (nb, nc)) = (w[0], w[1]);
        let (chord, next) = (bars[b].chords[c], bars[nb].chords[nc]);
        if chord.quality.is_dominant() && resolves_to(chord, next) && rng.gen_bool(p) {
            bars[b].chords[c] = tritone_sub(chord);
            count += 1;
        }
    }
    count
}

/// Replace ii–V–I (ii and V sharing a bar, I major) by the backdoor iv7–bVII7–I, each with
/// probability `p`. Returns how many.
pub fn apply_backdoor(bars: &mut [Bar], p: f64, rng: &mut impl Rng) -> usize {
    let mut count = 0;
    for b in 0..bars.len().saturating_sub(1) {
        let (ii, v) = match bars[b].chords[..] {
            [ii, v] => (ii, v),
            _ => continue,
        };
        let tonic = bars[b + 1].chords[0];
        let is_two_five_one = ii.quality.is_minor7()
            && v.quality.is_dominant()
            && resolves_to(ii, v)
            && resolves_to(v, tonic)
            && tonic.quality.is_major();
        if is_two_five_one && rng.gen_bool(p) {
            let (iv, bvii) = backdoor_approach(tonic.root);
            bars[b].chords = vec![iv, bvii];
            count += 1;
        }
    }
    count
}

/// Put the related ii in front of a dominant that fills a whole bar (G7 → Dm7 G7), each with
/// probability `p`, unless the ii or the same dominant is already sounding before it (a
/// two-bar D7 becomes Am7 D7 | D7). Returns how many.
pub fn apply_related_twos(bars: &mut [Bar], p: f64, rng: &mut impl Rng) -> usize {
    let mut count = 0;
    for b in 0..bars.len() {
        let v = match bars[b].chords[..] {
            [v] if v.quality.is_dominant() => v,
            _ => continue,
        };
        let ii = related_two(v);
        let before = b
            .checked_sub(1)
            .and_then(|p| bars[p].chords.last().copied());
        let preceded = before == Some(ii) || before == Some(v);
        if !preceded && rng.gen_bool(p) {
            bars[b].chords = vec![ii, v];
            count += 1;
        }
    }
    count
}

/// Colour chords with tensions (9ths, 13ths, 6ths), each with probability `p`. Returns how many.
pub fn apply_tensions(bars: &mut [Bar], p: f64, rng: &mut impl Rng) -> usize {
    let mut count = 0;
    for bar in bars.iter_mut() {
        for chord in bar.chords.iter_mut() {
            if rng.gen_bool(p) {
                let coloured = add_tension(*chord, rng);
                count += usize::from(coloured != *chord);
                *chord = coloured;
            }
        }
    }
    count
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::corpus::form::{degree, two_five_one_cycle};
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn pc(v: i32) -> PitchClass {
        PitchClass::new(v)
    }

    #[test]
    fn tritone_sub_of_g7_is_db7() {
        let g7 = Chord::new(pc(7), Quality::Dom7);
        assert_eq!(tritone_sub(g7).to_string(), "Db7");
        // Twice is back home, and the guide tones (B, F) are shared.
        assert_eq!(tritone_sub(tritone_sub(g7)), g7);
        let guide = |c: Chord| {
            let mut t = vec![c.tones()[1], c.tones()[3]];
            t.sort();
            t
        };
        assert_eq!(guide(g7), guide(tritone_sub(g7)));
    }

    #[test]
    fn backdoor_resolves_fm7_bb7_to_c() {
        let (iv, bvii) = backdoor_approach(PitchClass::C);
        assert_eq!(
            (iv.to_string(), bvii.to_string()),
            ("Fm7".into(), "Bb7".into())
        );

        let mut bars = vec![
            Bar::two(
                degree(pc(0), 2, Quality::Min7),
                degree(pc(0), 7, Quality::Dom7),
            ),
            Bar::one(degree(pc(0), 0, Quality::Maj7)),
        ];
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        assert_eq!(apply_backdoor(&mut bars, 1.0, &mut rng), 1);
        let names: Vec<String> = bars
            .iter()
            .flat_map(|b| &b.chords)
            .map(|c| c.to_string())
            .collect();
        assert_eq!(names, ["Fm7", "Bb7", "Cmaj7"]);
    }

    #[test]
    fn related_two_of_g7_is_dm7_and_is_not_doubled() {
        let g7 = Chord::new(pc(7), Quality::Dom7);
        assert_eq!(related_two(g7).to_string(), "Dm7");
        // In a ii–V–I cycle every V already has its ii: nothing to add.
        let mut bars = two_five_one_cycle(PitchClass::C);
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        assert_eq!(apply_related_twos(&mut bars, 1.0, &mut rng), 0);
        let mut lone = vec![Bar::one(g7)];
        assert_eq!(apply_related_twos(&mut lone, 1.0, &mut rng), 1);
        assert_eq!(lone[0].chords, [related_two(g7), g7]);
    }

    #[test]
    fn tritone_subs_act_only_on_resolving_dominants() {
        let mut bars = two_five_one_cycle(PitchClass::C);
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        assert_eq!(apply_tritone_subs(&mut bars, 1.0, &mut rng), 12);
        assert_eq!(bars[1].chords[0].to_string(), "Db7");
        assert_eq!(bars[0].chords[0].to_string(), "Dm7");
        assert_eq!(bars[2].chords[0].to_string(), "Cmaj7");
    }

    #[test]
    fn tensions_keep_root_and_function() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        for q in [
            Quality::Dom7,
            Quality::Min7,
            Quality::Maj7,
            Quality::HalfDim7,
        ] {
            for _ in 0..10 {
                let c = Chord::new(pc(4), q);
                let t = add_tension(c, &mut rng);
                assert_eq!(t.root, c.root);
                assert_eq!(t.quality.is_dominant(), q.is_dominant());
                assert_eq!(t.quality.tones()[..3], q.tones()[..3]);
            }
        }
    }
}
