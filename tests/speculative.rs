//! Speculative decoding: several tokens verified per decoder forward, the plain decoder's output.
//!
//! - `feed` of several tokens gives, row for row, the very logits of one `step` at a time, and so
//!   does feeding several lanes (the candidates of one segment) in one forward;
//! - sequences decoded side by side get the tokens each gets decoded alone;
//! - decoding with any draft (none, copying from the input, right or wrong guesses) gives the
//!   tokens of plain decoding for the same seed, greedy and sampled, with logits processors;
//! - the acceptance rule keeps a guess with the probability the distribution gives it and, when
//!   it does not, draws from the distribution without the guess (chi-square over thousands of
//!   draws; a broken rule is shown to fail the same test).

use candle_core::Device;
use improvnet::model::fast::{DecoderWeights, MAX_FEED, MAX_LANES};
use improvnet::model::generate::{sample, verify};
use improvnet::model::{
    BertConfig, ChordConstraint, Config, CopyDraft, Draft, ForbidTokens, GenerateOptions,
    ImprovNetModel, LogitsProcessor, NoDraft, SamplingParams, Sequence, EOS, VOCAB,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Odd sizes (d 36, 3 heads of 12) so that the vector kernels' tails run too.
fn tiny() -> ImprovNetModel {
    let cfg = Config::from_parts(
        BertConfig::sized(36, 2, 3, 80, 256),
        BertConfig::sized(36, 2, 3, 80, 128),
    );
    ImprovNetModel::random(&cfg, 11, &Device::Cpu).unwrap()
}

/// The tiny model in each arithmetic generation offers: f32, and 8-bit decoder weights with
/// bf16 cross-attention keys and values (its f32 matrices freed, as the command line does).
fn arithmetics() -> Vec<(&'static str, ImprovNetModel)> {
    let mut int8 = tiny();
    int8.set_int8_decoder(true).unwrap();
    int8.keep_generation_weights().unwrap();
    vec![("f32", tiny()), ("int8", int8)]
}

fn encoder_ids(len: u32, salt: u32) -> Vec<u32> {
    (0..len)
        .map(|i| (i * 97 + salt * 31 + 5) % 2300 + 1)
        .collect()
}

#[test]
fn feeding_several_tokens_gives_the_logits_of_one_at_a_time_bit_for_bit() {
    for (name, m) in arithmetics() {
        eprintln!("{name}");
        feeding_several_tokens_gives_the_logits_of_one_at_a_time_bit_for_bit_in(m);
    }
}

fn feeding_several_tokens_gives_the_logits_of_one_at_a_time_bit_for_bit_in(m: ImprovNetModel) {
    let enc = encoder_ids(150, 1);
    let tokens: Vec<u32> = (0..40u32).map(|i| (i * 131 + 7) % 2300 + 1).collect();
    let w = DecoderWeights::lock(&m).unwrap();
    let mut one = m.start_segment(&enc).unwrap();
    let mut want = vec![0.0f32; tokens.len() * VOCAB];
    for (t, row) in tokens.iter().zip(want.chunks_exact_mut(VOCAB)) {
        one.step(&w, *t, row).unwrap();
    }
    let mut many = m.start_segment(&enc).unwrap();
    let mut got = vec![0.0f32; tokens.len() * VOCAB];
    let mut at = 0;
    for (k, size) in [1, 3, MAX_FEED, 2, 5, MAX_FEED, 1, 7]
        .iter()
        .cycle()
        .enumerate()
    {
        if at == tokens.len() {
            break;
        }
        let end = (at + size).min(tokens.len());
        // Every other batch first feeds wrong tokens and rewinds, as a rejected draft does.
        if k % 2 == 1 {
            let wrong: Vec<u32> = tokens[at..end].iter().map(|t| t % 2300 + 2).collect();
            let mut scratch = vec![0.0f32; wrong.len() * VOCAB];
            many.feed(&w, &wrong, &mut scratch).unwrap();
            many.rewind(at);
        }
        many.feed(&w, &tokens[at..end], &mut got[at * VOCAB..end * VOCAB])
            .unwrap();
        assert_eq!(many.position(), end);
        at = end;
    }
    let differing = want
        .iter()
        .zip(&got)
        .filter(|(a, b)| a.to_bits() != b.to_bits())
        .count();
    assert_eq!(differing, 0, "{differing} logits differ");
}

#[test]
fn feed_refuses_too_many_tokens_and_positions_past_the_end() {
    let m = tiny();
    let w = DecoderWeights::lock(&m).unwrap();
    let mut s = m.start_segment(&encoder_ids(20, 2)).unwrap();
    let mut logits = vec![0.0f32; (MAX_FEED + 1) * VOCAB];
    let err = s.feed(&w, &[5; MAX_FEED + 1], &mut logits).unwrap_err();
    assert!(err.to_string().contains("tokens fed at once"), "{err}");
    while s.position() + MAX_FEED <= 128 {
        s.feed(&w, &[5; MAX_FEED], &mut logits[..MAX_FEED * VOCAB])
            .unwrap();
    }
    let err = s.feed(&w, &[5; MAX_FEED], &mut logits[..MAX_FEED * VOCAB]);
    assert!(err.is_err(), "position {} + {MAX_FEED} > 128", s.position());
}

#[test]
fn lanes_fed_together_give_the_logits_of_each_lane_alone() {
    for (name, m) in arithmetics() {
        eprintln!("{name}");
        lanes_fed_together_give_the_logits_of_each_lane_alone_in(m);
    }
}

fn lanes_fed_together_give_the_logits_of_each_lane_alone_in(m: ImprovNetModel) {
    let enc = encoder_ids(120, 4);
    let w = DecoderWeights::lock(&m).unwrap();
    let token = |lane: usize, i: usize| ((lane * 53 + i * 131 + 7) % 2300 + 1) as u32;
    // Three lanes at different positions, fed 1..=MAX_FEED tokens each per forward.
    let sizes = [
        [2, 1, 3],
        [MAX_FEED, 4, 1],
        [1, MAX_FEED, 5],
        [3, 2, MAX_FEED],
    ];
    let mut together = m.start_segment(&enc).unwrap();
    together.reset_lanes(3, 128).unwrap();
    let mut alone: Vec<_> = (0..3).map(|_| m.start_segment(&enc).unwrap()).collect();
    let mut fed = [0usize; 3];
    for round in sizes {
        let tokens: Vec<Vec<u32>> = (0..3)
            .map(|l| (fed[l]..fed[l] + round[l]).map(|i| token(l, i)).collect())
            .collect();
        // Lanes in a shuffled order: rows follow the batch, not the lane numbers.
        let batch: Vec<(usize, &[u32])> = [2, 0, 1].iter().map(|&l| (l, &tokens[l][..])).collect();
        let rows: usize = round.iter().sum();
        let mut got = vec![0.0f32; rows * VOCAB];
        together.feed_lanes(&w, &batch, &mut got).unwrap();
        let mut want = Vec::new();
        for &(l, t) in &batch {
            let mut row = vec![0.0f32; t.len() * VOCAB];
            alone[l].feed(&w, t, &mut row).unwrap();
            want.extend(row);
        }
        assert!(want
            .iter()
            .zip(&got)
            .all(|(a, b)| a.to_bits() == b.to_bits()));
        for l in 0..3 {
            fed[l] += round[l];
            assert_eq!(together.lane_position(l), fed[l]);
        }
    }
    let mut logits = vec![0.0f32; 2 * VOCAB];
    let err = together
        .feed_lanes(&w, &[(1, &[5]), (1, &[6])], &mut logits)
        .unwrap_err();
    assert!(err.to_string().contains("each lane once"), "{err}");
    let err = together.feed_lanes(&w, &[(3, &[5])], &mut logits[..VOCAB]);
    assert!(err.is_err(), "lane 3 of 3");
    assert!(together.reset_lanes(MAX_LANES + 1, 128).is_err());
}

/// Ends the sequence (forces `<E>`) once it holds `after` tokens.
struct StopAfter(usize);

impl LogitsProcessor for StopAfter {
    fn process(&mut self, generated: &[u32], logits: &mut [f32]) {
        if generated.len() >= self.0 {
            logits.fill(f32::NEG_INFINITY);
            logits[EOS as usize] = 0.0;
        }
    }
}

#[test]
fn sequences_decoded_side_by_side_get_the_tokens_each_gets_alone() {
    for (name, m) in arithmetics() {
        eprintln!("{name}");
        sequences_decoded_side_by_side_get_the_tokens_each_gets_alone_in(m);
    }
}

fn sequences_decoded_side_by_side_get_the_tokens_each_gets_alone_in(m: ImprovNetModel) {
    let enc = encoder_ids(90, 5);
    for sampling in [SamplingParams::greedy(), SamplingParams::default()] {
        let opts = GenerateOptions {
            sampling,
            max_len: 60,
        };
        // Five sequences that end at different lengths, with different drafts.
        let stops = [60, 17, 33, 5, 48];
        let alone: Vec<Vec<u32>> = stops
            .iter()
            .enumerate()
            .map(|(i, &stop)| {
                let mut state = m.start_segment(&enc).unwrap();
                let mut s = StopAfter(stop);
                let mut forbid = ForbidTokens(vec![0, 2300]);
                let mut processors: Vec<&mut dyn LogitsProcessor> = vec![&mut forbid, &mut s];
                let mut rng = ChaCha8Rng::seed_from_u64(i as u64);
                m.generate_from(&mut state, &opts, &mut processors, &mut NoDraft, &mut rng)
                    .unwrap()
                    .0
            })
            .collect();
        let mut state = m.start_segment(&enc).unwrap();
        let mut shapers: Vec<(StopAfter, ForbidTokens)> = stops
            .iter()
            .map(|&s| (StopAfter(s), ForbidTokens(vec![0, 2300])))
            .collect();
        let mut processors: Vec<Vec<&mut dyn LogitsProcessor>> = shapers
            .iter_mut()
            .map(|(s, f)| vec![f as &mut dyn LogitsProcessor, s])
            .collect();
        let mut drafts: Vec<Box<dyn Draft>> = vec![
            Box::new(NoDraft),
            Box::new(CopyDraft::new(&enc)),
            Box::new(Oracle {
                tokens: alone[2].clone(),
                wrong_every: 0,
                calls: 0,
            }),
            Box::new(Oracle {
                tokens: alone[3].clone(),
                wrong_every: 3,
                calls: 0,
            }),
            Box::new(Oracle {
                tokens: alone[4].clone(),
                wrong_every: 2,
                calls: 0,
            }),
        ];
        let mut rngs: Vec<ChaCha8Rng> = (0..5).map(ChaCha8Rng::seed_from_u64).collect();
        let mut seqs: Vec<Sequence> = processors
            .iter_mut()
            .zip(drafts.iter_mut())
            .zip(rngs.iter_mut())
            .map(|((processors, draft), rng)| Sequence {
                processors,
                draft: draft.as_mut(),
                rng,
            })
            .collect();
        let (together, stats) = m.generate_lanes(&mut state, &opts, &mut seqs).unwrap();
        assert_eq!(together, alone, "{sampling:?}");
        let lengths: Vec<usize> = together.iter().map(Vec::len).collect();
        assert_eq!(
            lengths,
            [60, 18, 34, 6, 49],
            "<E> after the stop, or max_len"
        );
        assert_eq!(stats.tokens, lengths.iter().map(|l| l - 1).sum::<usize>());
        assert!(stats.accepted > 40, "{stats:?}");
    }
}

/// Guesses the given tokens, every `wrong_every`-th one replaced by another token.
struct Oracle {
    tokens: Vec<u32>,
    wrong_every: usize,
    calls: usize,
}

impl Draft for Oracle {
    fn propose(&mut self, generated: &[u32], max: usize, draft: &mut Vec<u32>) {
        for (k, &t) in self
            .tokens
            .iter()
            .skip(generated.len())
            .take(max)
            .enumerate()
        {
            self.calls += 1;
            let wrong = self.wrong_every > 0 && (self.calls + k).is_multiple_of(self.wrong_every);
            draft.push(if wrong { t % 2300 + 1 } else { t });
        }
    }
}

fn decode(
    m: &ImprovNetModel,
    enc: &[u32],
    opts: &GenerateOptions,
    draft: &mut dyn Draft,
    seed: u64,
) -> (Vec<u32>, improvnet::model::DecodeStats) {
    let mut forbid = ForbidTokens(vec![0, 2300, EOS]);
    let mut chord = ChordConstraint::default();
    let mut processors: Vec<&mut dyn LogitsProcessor> = vec![&mut chord, &mut forbid];
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    m.generate_drafted(enc, opts, &mut processors, draft, &mut rng)
        .unwrap()
}

#[test]
fn every_draft_gives_the_plain_decoders_tokens() {
    for (name, m) in arithmetics() {
        eprintln!("{name}");
        every_draft_gives_the_plain_decoders_tokens_in(m);
    }
}

fn every_draft_gives_the_plain_decoders_tokens_in(m: ImprovNetModel) {
    let mut taken = 0;
    let mut missed = 0;
    for (seed, sampling) in (0..12u64).map(|s| {
        let p = match s % 3 {
            0 => SamplingParams::greedy(),
            1 => SamplingParams::default(),
            _ => SamplingParams {
                temperature: 0.8,
                top_k: 5,
                top_p: 0.9,
                greedy: false,
            },
        };
        (s, p)
    }) {
        let enc = encoder_ids(60 + seed as u32 * 7, seed as u32);
        let opts = GenerateOptions {
            sampling,
            max_len: 40 + seed as usize,
        };
        let (plain, stats) = decode(&m, &enc, &opts, &mut NoDraft, seed);
        assert_eq!(stats.forwards, plain.len() - 1, "one forward per token");
        assert_eq!(plain.len(), opts.max_len, "<E> is forbidden");
        let (copied, _) = decode(&m, &enc, &opts, &mut CopyDraft::new(&enc), seed);
        assert_eq!(copied, plain, "copy draft, seed {seed}");
        for wrong_every in [0, 2, 3, 7] {
            let mut oracle = Oracle {
                tokens: plain.clone(),
                wrong_every,
                calls: 0,
            };
            let (got, stats) = decode(&m, &enc, &opts, &mut oracle, seed);
            assert_eq!(got, plain, "seed {seed}, every {wrong_every}th guess wrong");
            assert!(stats.forwards < plain.len() - 1 || wrong_every == 2);
            taken += stats.accepted;
            missed += stats.drafted - stats.accepted;
        }
    }
    assert!(
        taken > 500 && missed > 100,
        "taken {taken}, missed {missed}"
    );
}

#[test]
fn a_right_draft_takes_several_tokens_a_forward() {
    let m = tiny();
    let enc = encoder_ids(80, 3);
    let opts = GenerateOptions {
        sampling: SamplingParams::greedy(),
        max_len: 100,
    };
    let (plain, _) = decode(&m, &enc, &opts, &mut NoDraft, 0);
    let mut oracle = Oracle {
        tokens: plain.clone(),
        wrong_every: 0,
        calls: 0,
    };
    let (_, stats) = decode(&m, &enc, &opts, &mut oracle, 0);
    // 99 tokens: the draft grows 2, 3, ... up to MAX_FEED - 1 guesses a forward.
    assert_eq!(stats.accepted + stats.forwards, 99);
    assert_eq!(stats.tokens, 99);
    assert!(stats.forwards <= 20, "{stats:?}");
}

#[test]
fn the_copy_draft_continues_the_longest_latest_match() {
    let source = [5, 6, 7, 8, 5, 6, 9, 1, 6, 7, 3];
    let mut d = CopyDraft::new(&source);
    let mut guess = Vec::new();
    // `6` occurs three times; `5 6` twice: the later one is followed by 9.
    d.propose(&[2303, 5, 6], 3, &mut guess);
    assert_eq!(guess, [9, 1, 6]);
    guess.clear();
    // `1 6 7` is the longest match.
    d.propose(&[2303, 1, 6, 7], 3, &mut guess);
    assert_eq!(guess, [3]);
    guess.clear();
    d.propose(&[2303, 4], 3, &mut guess);
    assert!(guess.is_empty(), "no match, no guess");
    d.propose(&[2303, 3], 3, &mut guess);
    assert!(
        guess.is_empty(),
        "the source's last token has nothing after it"
    );
}

/// Chi-square statistic of `counts` against `probs` (cells with probability 0 must be empty).
fn chi_square(counts: &[u64], probs: &[f64]) -> f64 {
    let n: u64 = counts.iter().sum();
    counts
        .iter()
        .zip(probs)
        .map(|(&c, &p)| {
            if p == 0.0 {
                assert_eq!(c, 0, "a token of probability 0 was drawn");
                0.0
            } else {
                let e = n as f64 * p;
                (c as f64 - e).powi(2) / e
            }
        })
        .sum()
}

/// What happens to a guess at one position: the token and whether the guess was kept.
type Rule = fn(&mut [f32], u32, &SamplingParams, &mut ChaCha8Rng, &mut Vec<f32>) -> (u32, bool);

/// Counts, over 40,000 draws: every token, the kept guesses, and the tokens of the rejections.
fn run_rule(
    rule: Rule,
    logits: &[f32],
    guess: u32,
    p: &SamplingParams,
) -> (Vec<u64>, u64, Vec<u64>) {
    let mut rng = ChaCha8Rng::seed_from_u64(42);
    let mut scratch = Vec::new();
    let mut all = vec![0u64; logits.len()];
    let mut rejected = vec![0u64; logits.len()];
    let mut kept = 0;
    for _ in 0..40_000 {
        let mut l = logits.to_vec();
        let (t, k) = rule(&mut l, guess, p, &mut rng, &mut scratch);
        all[t as usize] += 1;
        if k {
            kept += 1;
        } else {
            rejected[t as usize] += 1;
        }
    }
    (all, kept, rejected)
}

/// Whether a rule passes: overall distribution, kept rate, and rejections' distribution.
fn rule_holds(rule: Rule, logits: &[f32], guess: u32, p: &SamplingParams) -> bool {
    let probs = processed(logits, p);
    let (all, kept, rejected) = run_rule(rule, logits, guess, p);
    let df = probs.iter().filter(|&&q| q > 0.0).count() - 1;
    // The 99.9 % quantile of chi-square with df degrees of freedom (Wilson–Hilferty).
    let limit = |df: usize| {
        let k = df as f64;
        k * (1.0 - 2.0 / (9.0 * k) + 3.09 * (2.0 / (9.0 * k)).sqrt()).powi(3)
    };
    let overall = chi_square(&all, &probs);
    let pd = probs[guess as usize];
    let n = 40_000.0;
    let kept_right = if pd == 0.0 {
        kept == 0
    } else {
        let z = (kept as f64 - n * pd) / (n * pd * (1.0 - pd)).sqrt();
        z.abs() < 3.3
    };
    let without: Vec<f64> = probs
        .iter()
        .enumerate()
        .map(|(i, &q)| {
            if i as u32 == guess {
                0.0
            } else {
                q / (1.0 - pd)
            }
        })
        .collect();
    let residual = if rejected[guess as usize] > 0 {
        f64::INFINITY
    } else {
        chi_square(&rejected, &without)
    };
    overall < limit(df) && kept_right && residual < limit(df - 1)
}

/// The distribution `sample` draws from: softmax of the logits after temperature and top-k.
fn processed(logits: &[f32], p: &SamplingParams) -> Vec<f64> {
    let scaled: Vec<f64> = logits
        .iter()
        .map(|&l| l as f64 / p.temperature as f64)
        .collect();
    let mut sorted = scaled.clone();
    sorted.sort_by(|a, b| b.total_cmp(a));
    let kth = match p.top_k {
        0 => f64::NEG_INFINITY,
        k => sorted[k.min(sorted.len()) - 1],
    };
    let w: Vec<f64> = scaled
        .iter()
        .map(|&l| if l < kth { 0.0 } else { l.exp() })
        .collect();
    let total: f64 = w.iter().sum();
    w.iter().map(|x| x / total).collect()
}

/// A broken rule: keep the guess with its probability, else draw again from the whole
/// distribution (the guess not removed), so the guess comes out too often.
fn redraw_everything(
    l: &mut [f32],
    guess: u32,
    p: &SamplingParams,
    rng: &mut ChaCha8Rng,
    scratch: &mut Vec<f32>,
) -> (u32, bool) {
    let mut again = l.to_vec();
    let (t, _) = verify(l, Some(guess), p, rng, scratch);
    if t == guess {
        return (t, true);
    }
    (sample(&mut again, p, rng, scratch), false)
}

/// Another broken rule: always keep the guess when it is among the top half.
fn keep_likely_guesses(
    l: &mut [f32],
    guess: u32,
    p: &SamplingParams,
    rng: &mut ChaCha8Rng,
    scratch: &mut Vec<f32>,
) -> (u32, bool) {
    let better = l.iter().filter(|&&x| x > l[guess as usize]).count();
    if better < l.len() / 2 {
        let _ = rng.gen::<f64>();
        return (guess, true);
    }
    verify(l, Some(guess), p, rng, scratch)
}

#[test]
fn the_acceptance_rule_keeps_the_distribution_and_a_broken_one_fails() {
    let exact: Rule = |l, g, p, rng, s| verify(l, Some(g), p, rng, s);
    let logits = [1.2f32, 0.3, -0.5, 2.0, 0.9, -1.5, 0.0, 1.6];
    let params = [
        SamplingParams {
            temperature: 1.0,
            top_k: 0,
            top_p: 1.0,
            greedy: false,
        },
        SamplingParams {
            temperature: 0.7,
            top_k: 5,
            top_p: 1.0,
            greedy: false,
        },
    ];
    for p in &params {
        for guess in [3, 0, 6] {
            let in_top_k = processed(&logits, p)[guess as usize] > 0.0;
            assert!(rule_holds(exact, &logits, guess, p), "{p:?}, guess {guess}");
            if in_top_k {
                assert!(
                    !rule_holds(redraw_everything, &logits, guess, p),
                    "{p:?} {guess}"
                );
            }
        }
        assert!(!rule_holds(keep_likely_guesses, &logits, 0, p), "{p:?}");
    }
}
