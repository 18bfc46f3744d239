//! Rules that know no harmony and still beat "copy the corrupted input": what counting or
//! remembering alone is worth where a corruption keeps the block's tokens but moves its pitches.
//! `score-model` scores them beside the model (baselines it has to beat, [`rule_prediction`]),
//! and `train --rule-teacher` mixes their beliefs into the targets ([`target_mix`]): at every
//! moved pitch the label names one candidate, the rule says how likely each of them is.
//!
//! - **count the block** (the two permutations): a shuffle keeps the block's multiset of pitches
//!   (and, for `permute_pitch_velocity`, of velocities), so a target is one of the block's pitches
//!   the targets before it have not used yet, each as likely as it is common.
//! - **hear it again** (`incorrect_transposition`): the corruption moves each note with
//!   probability 1/2 by a shift drawn from −5..=5 (0 included, spec §6), so the block's pitch is
//!   the original with probability 6/11 and each of its ten neighbours is with 1/22. Music
//!   repeats its pitches: the prior of a pitch is 1/2 + the times it sounds in the context (the
//!   encoder's notes outside the block) and in the targets before it, zero off the 88 keys
//!   (where the sampler's transposition keeps the originals; a corrupted pitch may leave them).
//!   A neighbour wins only where its prior is more than 12 times the copy's.
//!
//! Both are teacher forced like the model: the targets before position `i` are `labels[..i]`.

use super::sample::Batch;
use crate::corrupt::{PIANO_HIGH, PIANO_LOW};
use crate::tokens::{Corruption, Token, BOS, DECODER_MAX_LEN, ENCODER_MAX_LEN, EOS, SEP};

/// What a rule believes about one pitch-velocity target.
#[derive(Clone, Debug, PartialEq)]
pub struct NoteBelief {
    /// Index of the target in the labels (and in the copy).
    pub position: usize,
    /// The copy's pitch and velocity there: the rule's choice on a tie.
    pub copy: (u8, u8),
    /// Unnormalised weights (all above 0) over pitches and, independently, over velocities.
    pub pitches: Vec<(u8, f64)>,
    pub velocities: Vec<(u8, f64)>,
}

impl NoteBelief {
    /// The most likely note: ties go to the copy's value, then to the lowest.
    pub fn guess(&self) -> (u8, u8) {
        (
            most_likely(&self.pitches, self.copy.0),
            most_likely(&self.velocities, self.copy.1),
        )
    }

    /// The belief as a distribution over pitch-velocity tokens (summing to 1; empty when the
    /// rule has no candidate).
    pub fn distribution(&self) -> Vec<(u32, f64)> {
        let total = self.pitches.iter().map(|p| p.1).sum::<f64>()
            * self.velocities.iter().map(|v| v.1).sum::<f64>();
        let mut out = Vec::with_capacity(self.pitches.len() * self.velocities.len());
        for &(pitch, wp) in &self.pitches {
            for &(velocity, wv) in &self.velocities {
                out.push((Token::PianoNote { pitch, velocity }.id(), wp * wv / total));
            }
        }
        out
    }
}

fn most_likely(weights: &[(u8, f64)], prefer: u8) -> u8 {
    let best = weights.iter().map(|w| w.1).fold(0.0, f64::max);
    if best <= 0.0 || weights.iter().any(|&(v, w)| v == prefer && w == best) {
        return prefer;
    }
    let ties = weights.iter().filter(|w| w.1 == best).map(|w| w.0);
    ties.min().unwrap_or(prefer)
}

/// The name of the rule for `corruption`, if one applies.
pub fn rule_name(corruption: Corruption) -> Option<&'static str> {
    match corruption {
        Corruption::PermutePitches | Corruption::PermutePitchVelocity => Some("count the block"),
        Corruption::IncorrectTransposition => Some("hear it again"),
        _ => None,
    }
}

/// The rule's belief at every pitch-velocity target of a sample with `corruption` (where the
/// copy also has a note); `None` where no rule applies or the input has no block.
pub fn beliefs(
    encoder_ids: &[u32],
    labels: &[u32],
    corruption: Corruption,
) -> Option<Vec<NoteBelief>> {
    copy_and_beliefs(encoder_ids, labels, corruption).map(|(_, found)| found)
}

/// [`copy_prediction`] and [`beliefs`], the copy read once.
fn copy_and_beliefs(
    encoder_ids: &[u32],
    labels: &[u32],
    corruption: Corruption,
) -> Option<(Vec<u32>, Vec<NoteBelief>)> {
    rule_name(corruption)?;
    let copy = copy_prediction(encoder_ids)?;
    let open = encoder_ids.iter().position(|&t| t == SEP)?;
    let mut rule = match corruption {
        Corruption::IncorrectTransposition => {
            // The block is `SEP corruption genre` + the copy's body + `SEP`; a block cut short
            // by the encoder's length has no context after it, but still has its notes.
            let close = open + 3 + (copy.len() - 2);
            let after = encoder_ids.get(close + 1..).unwrap_or_default();
            let outside = encoder_ids[..open].iter().chain(after);
            Rule::Hear(tally(outside.copied(), |n| n.0))
        }
        _ => Rule::Count {
            pitches: tally(copy.iter().copied(), |n| n.0),
            velocities: (corruption == Corruption::PermutePitchVelocity)
                .then(|| tally(copy.iter().copied(), |n| n.1)),
        },
    };
    let mut out = Vec::new();
    for (i, &label) in labels.iter().enumerate() {
        let target = piano_note(label);
        if let (Some(copied), Some(_)) = (copy.get(i).and_then(|&id| piano_note(id)), target) {
            out.push(rule.belief(i, copied));
        }
        if let Some(note) = target {
            rule.heard(note);
        }
    }
    Some((copy, out))
}

/// The rule's guess for every target: the copy, with each pitch-velocity target replaced by the
/// rule's most likely note. `None` where no rule applies.
pub fn rule_prediction(
    encoder_ids: &[u32],
    labels: &[u32],
    corruption: Corruption,
) -> Option<Vec<u32>> {
    let (mut out, found) = copy_and_beliefs(encoder_ids, labels, corruption)?;
    for b in found {
        let (pitch, velocity) = b.guess();
        out[b.position] = Token::PianoNote { pitch, velocity }.id();
    }
    Some(out)
}

/// A rule's running state along the targets.
enum Rule {
    /// Counts of the block's values not yet used by the targets (velocities only when shuffled).
    Count {
        pitches: Vec<f64>,
        velocities: Option<Vec<f64>>,
    },
    /// Times each pitch has sounded (context and targets so far).
    Hear(Vec<f64>),
}

/// (6/11) / (1/22): how much likelier "not moved" is than any one shift.
const STAY: f64 = 12.0;

impl Rule {
    fn belief(&self, position: usize, copy: (u8, u8)) -> NoteBelief {
        let present = |counts: &[f64]| -> Vec<(u8, f64)> {
            (0..=127u8)
                .map(|v| (v, counts[usize::from(v)]))
                .filter(|w| w.1 > 0.0)
                .collect()
        };
        let (pitches, velocities) = match self {
            Rule::Count {
                pitches,
                velocities,
            } => (present(pitches), velocities.as_deref().map(present)),
            Rule::Hear(heard) => {
                let prior = |c: i32| match u8::try_from(c) {
                    Ok(p) if (PIANO_LOW..=PIANO_HIGH).contains(&p) => 0.5 + heard[usize::from(p)],
                    _ => 0.0,
                };
                let o = i32::from(copy.0);
                let candidates = (o - 5..=o + 5).filter_map(|c| {
                    let w = prior(c) * if c == o { STAY } else { 1.0 };
                    (w > 0.0).then_some((c as u8, w)) // on the keys: 21..=108
                });
                (candidates.collect(), None)
            }
        };
        NoteBelief {
            position,
            copy,
            pitches,
            velocities: velocities.unwrap_or_else(|| vec![(copy.1, 1.0)]),
        }
    }

    /// A target's note is now known: used up (counting) or heard once more.
    fn heard(&mut self, (pitch, velocity): (u8, u8)) {
        match self {
            Rule::Count {
                pitches,
                velocities,
            } => {
                pitches[usize::from(pitch)] -= 1.0;
                if let Some(v) = velocities {
                    v[usize::from(velocity)] -= 1.0;
                }
            }
            Rule::Hear(heard) => heard[usize::from(pitch)] += 1.0,
        }
    }
}

/// How often each value of `field` (a note's pitch or velocity) occurs among the note tokens of
/// `ids`.
fn tally(ids: impl Iterator<Item = u32>, field: fn((u8, u8)) -> u8) -> Vec<f64> {
    let mut counts = vec![0.0; 128];
    for note in ids.filter_map(piano_note) {
        counts[usize::from(field(note))] += 1.0;
    }
    counts
}

/// The pitch and velocity of a pitch-velocity token; `None` for every other id.
pub fn piano_note(id: u32) -> Option<(u8, u8)> {
    match Token::from_id(id)? {
        Token::PianoNote { pitch, velocity } => Some((pitch, velocity)),
        _ => None,
    }
}

/// One share of a target moved from its label to another token: at row `row`, label position
/// `position`, `share` of the target goes to `token`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TargetShare {
    pub row: usize,
    pub position: usize,
    pub token: u32,
    pub share: f32,
}

/// The rule teacher: at every target a rule has a belief about, `teacher` (0..=1) of the
/// target moves from the label to the rule's distribution (so the label keeps `1 − teacher`
/// plus what the rule gives it). Rows without a rule get nothing, and so does every row with a
/// share of 0.
pub fn target_mix(batch: &Batch, teacher: f64) -> Vec<TargetShare> {
    let mut out = Vec::new();
    if teacher <= 0.0 {
        return out;
    }
    for (row, meta) in batch.meta.iter().enumerate() {
        let enc = &batch.encoder_ids[row * ENCODER_MAX_LEN..(row + 1) * ENCODER_MAX_LEN];
        let labels = &batch.labels[row * DECODER_MAX_LEN..(row + 1) * DECODER_MAX_LEN];
        for b in beliefs(enc, labels, meta.corruption).unwrap_or_default() {
            for (token, p) in b.distribution() {
                out.push(TargetShare {
                    row,
                    position: b.position,
                    token,
                    share: (teacher * p) as f32,
                });
            }
        }
    }
    out
}

/// "Copy the corrupted input" as a prediction of the decoder target: `<S>`, the content of the
/// encoder's `SEP corruption genre … SEP` block, `<E>`. `None` without a block.
pub fn copy_prediction(encoder_ids: &[u32]) -> Option<Vec<u32>> {
    let open = encoder_ids.iter().position(|&t| t == SEP)?;
    let body = encoder_ids.get(open + 3..)?;
    let close = body.iter().position(|&t| t == SEP).unwrap_or(body.len());
    let mut out = Vec::with_capacity(close + 2);
    out.push(BOS);
    out.extend_from_slice(&body[..close]);
    out.push(EOS);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tokens::{CORRUPTION_BASE, DUR_BASE, GENRE_BASE, ONSET_BASE, PAD, PIANO_BASE};
    use crate::train::sample::Sample;

    #[test]
    fn hearing_it_again_moves_a_pitch_only_to_a_much_more_familiar_neighbour() {
        let pv = |vel_bin: u32, pitch: u32| PIANO_BASE + vel_bin * 128 + pitch;
        let (o, d) = (ONSET_BASE, DUR_BASE);
        // Context: 60 six times, 62 once; then the block, then a context note after it (64).
        let mut enc = vec![pv(1, 60); 6];
        enc.push(pv(1, 62));
        enc.extend([
            SEP,
            CORRUPTION_BASE + Corruption::IncorrectTransposition.index() as u32,
        ]);
        enc.push(GENRE_BASE);
        let block = [61, 62, 67, 110];
        for (k, &p) in block.iter().enumerate() {
            enc.extend([o, d, pv(2 + k as u32, p)]);
        }
        enc.extend([SEP, pv(1, 64), PAD, PAD]);
        let originals = [60, 62, 67, 108];
        let mut labels = vec![BOS];
        for (k, &p) in originals.iter().enumerate() {
            labels.extend([o, d, pv(2 + k as u32, p)]);
        }
        labels.push(EOS);
        let t = Corruption::IncorrectTransposition;
        let pred = rule_prediction(&enc, &labels, t).unwrap();
        let pitches: Vec<u32> = [3, 6, 9, 12].iter().map(|&i| pred[i]).collect();
        // 61, never heard (prior 0.5, × 12 = 6), moves to 60 (prior 6.5); 62, heard once (1.5 ×
        // 12 = 18), stays though 60 has now been heard seven times (the first target counts);
        // 67 has no familiar neighbour; 110 is off the keys and goes to the lowest key within
        // reach on a tie (105). Velocities and the onset and duration tokens are the copy's.
        assert_eq!(pitches, vec![pv(2, 60), pv(3, 62), pv(4, 67), pv(5, 105)]);
        assert_eq!(pred[..3], [BOS, o, d]);
        assert_eq!(pred.len(), labels.len());
        // The belief behind the first guess: 61 weighs 12 × 0.5, 60 6.5, 62 and 64 1.5 (heard
        // once), the seven other neighbours 0.5 each.
        let first = &beliefs(&enc, &labels, t).unwrap()[0];
        assert_eq!(Some(first.copy), piano_note(pv(2, 61)));
        assert_eq!(first.position, 3);
        let weight = |p: u8| first.pitches.iter().find(|w| w.0 == p).map(|w| w.1);
        assert_eq!(
            (weight(61), weight(60), weight(62), weight(56), weight(55)),
            (Some(6.0), Some(6.5), Some(1.5), Some(0.5), None)
        );
        let dist = first.distribution();
        assert_eq!(dist.len(), 11);
        assert!((dist.iter().map(|d| d.1).sum::<f64>() - 1.0).abs() < 1e-12);
        assert!((dist.iter().find(|d| d.0 == pv(2, 60)).unwrap().1 - 6.5 / 19.0).abs() < 1e-12);
        assert_eq!(rule_prediction(&enc, &labels, Corruption::Skyline), None);
        // A block the encoder's length cut short (no closing SEP) is still repaired, from the
        // context before it (64, after it, never mattered).
        let cut = enc.iter().rposition(|&t| t == SEP).unwrap();
        assert_eq!(rule_prediction(&enc[..cut], &labels, t), Some(pred.clone()));
        // Without a block there is nothing to repair.
        assert_eq!(rule_prediction(&[pv(1, 60)], &labels, t), None);
    }

    #[test]
    fn counting_the_block_guesses_the_most_common_unused_pitch() {
        let pv = |vel_bin: u32, pitch: u32| PIANO_BASE + vel_bin * 128 + pitch;
        let (o, d) = (ONSET_BASE, DUR_BASE);
        let enc_of = |c: Corruption, block: &[u32]| {
            let mut e = vec![SEP, CORRUPTION_BASE + c.index() as u32, GENRE_BASE];
            e.extend_from_slice(block);
            e.push(SEP);
            e
        };
        // Original pitches 60 60 64 60 at velocity bins 1 2 3 4, shuffled to 64 60 60 60.
        let block = [
            pv(1, 64),
            o,
            d,
            pv(2, 60),
            o,
            d,
            pv(3, 60),
            o,
            d,
            pv(4, 60),
            o,
            d,
        ];
        let labels = [
            BOS,
            pv(1, 60),
            o,
            d,
            pv(2, 60),
            o,
            d,
            pv(3, 64),
            o,
            d,
            pv(4, 60),
            o,
            d,
            EOS,
        ];
        let enc = enc_of(Corruption::PermutePitches, &block);
        let pred = rule_prediction(&enc, &labels, Corruption::PermutePitches).unwrap();
        // 60 is the most common pitch (3 of 4) until the targets have used two of them; then
        // 60 and 64 tie and the copy's 60 wins; the last target leaves only 60.
        assert_eq!(
            pred,
            vec![
                BOS,
                pv(1, 60),
                o,
                d,
                pv(2, 60),
                o,
                d,
                pv(3, 60),
                o,
                d,
                pv(4, 60),
                o,
                d,
                EOS
            ]
        );
        assert_eq!(copy_prediction(&enc).unwrap()[1], pv(1, 64));
        // Velocities shuffled too: the most common unused bin (all tie: the copy's).
        let enc = enc_of(Corruption::PermutePitchVelocity, &block);
        let pred = rule_prediction(&enc, &labels, Corruption::PermutePitchVelocity).unwrap();
        assert_eq!(pred[1], pv(1, 60));
        // No rule for the other corruptions.
        let enc = enc_of(Corruption::Skyline, &block);
        assert_eq!(rule_prediction(&enc, &labels, Corruption::Skyline), None);
    }

    #[test]
    fn the_teacher_moves_a_share_of_each_ruled_target_to_the_rules_belief() {
        let pv = |vel_bin: u32, pitch: u32| PIANO_BASE + vel_bin * 128 + pitch;
        let (o, d) = (ONSET_BASE, DUR_BASE);
        let sample = |corruption: Corruption| {
            // Shuffled 64 60 from original 60 64.
            let mut enc = vec![SEP, CORRUPTION_BASE + corruption.index() as u32, GENRE_BASE];
            enc.extend([o, d, pv(1, 64), o, d, pv(2, 60), SEP]);
            let labels = vec![BOS, o, d, pv(1, 60), o, d, pv(2, 64), EOS];
            Sample::padded(corruption, &enc, &labels)
        };
        let batch = Batch::from_samples(vec![
            sample(Corruption::Skyline),
            sample(Corruption::PermutePitches),
        ]);
        let mix = target_mix(&batch, 0.5);
        // Row 1 only. At the first pitch both 60 and 64 remain (half each, at the copy's
        // velocity bin 1); at the second only 64 does (bin 2).
        let share = |s: f32| s as f64;
        assert_eq!(
            mix.iter()
                .map(|m| (m.row, m.position, m.token, share(m.share)))
                .collect::<Vec<_>>(),
            vec![
                (1, 3, pv(1, 60), 0.25),
                (1, 3, pv(1, 64), 0.25),
                (1, 6, pv(2, 64), 0.5),
            ]
        );
        assert!(target_mix(&batch, 0.0).is_empty());
    }
}
