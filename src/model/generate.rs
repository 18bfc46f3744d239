//! Sampling and the decode loop (spec §5.3), with a logits-processor hook for constraints such as
//! "forbid `<T>`" or the harmonization chord constraint (spec §11).
//!
//! The loop decodes speculatively: a [`Draft`] guesses the next few tokens (a refinement mostly
//! copies its input, and a template forces what the corruption kept), one decoder forward
//! verifies them all, and each position is then sampled exactly as plain decoding samples it,
//! with the same random draw. A drafted token is kept when that sample equals it, so it is kept
//! with the probability the processed distribution gives it and, when it is not, the token
//! comes from that distribution without it, renormalised: the standard rule for a point-mass
//! draft (Leviathan et al. 2023). The output is therefore the plain decoder's, byte for byte,
//! for a given seed; the draft changes only how many forwards it takes.

use std::time::{Duration, Instant};

use candle_core::Tensor;
use rand::{Rng, RngCore};

use super::fast::{DecoderState, DecoderWeights, MAX_FEED};
use super::seq2seq::ImprovNetModel;
use super::{ModelError, Result, BOS, EOS, PAD};

/// Edits one step's logits before sampling. `generated` holds every token so far, starting with
/// the decoder start `<S>`; the logits are the raw scores for the next token.
pub trait LogitsProcessor {
    fn process(&mut self, generated: &[u32], logits: &mut [f32]);
}

/// Sets the given tokens' logits to -inf at every step (e.g. `<T>`, or `<E>` for a fixed length).
#[derive(Debug, Clone, Default)]
pub struct ForbidTokens(pub Vec<u32>);

impl LogitsProcessor for ForbidTokens {
    fn process(&mut self, _generated: &[u32], logits: &mut [f32]) {
        for &t in &self.0 {
            if let Some(l) = logits.get_mut(t as usize) {
                *l = f32::NEG_INFINITY;
            }
        }
    }
}

/// Pitch-velocity token ids (spec §3: 1..=1280).
const PV_FIRST: u32 = 1;
const PV_LAST: u32 = 1280;
/// Onset token ids: `1281 + onset_ms / 10`, onset 0..=5000.
const ONSET_FIRST: u32 = 1281;
const ONSET_LAST: u32 = 1781;

/// The harmonization pass-1 constraint (spec §11): a stack of onsets (pushed when empty or within
/// 50 ms of the top); after a pitch-velocity token while 1 <= |stack| < `chord_strength`, the next
/// token must be an onset in {top, top+10, ..., top+50} ms. The stack is never reset, as in the
/// original, so in practice the first onset group of a segment gets >= 3 notes within ~50 ms.
#[derive(Debug, Clone)]
pub struct ChordConstraint {
    pub chord_strength: usize,
    stack: Vec<u32>,
    seen: usize,
    constrain_next: bool,
}

impl Default for ChordConstraint {
    fn default() -> Self {
        Self::new(3)
    }
}

impl ChordConstraint {
    pub fn new(chord_strength: usize) -> Self {
        Self {
            chord_strength,
            stack: Vec::new(),
            seen: 0,
            constrain_next: false,
        }
    }

    /// The onset stack, in ms.
    pub fn stack(&self) -> &[u32] {
        &self.stack
    }

    fn observe(&mut self, x: u32) {
        if (ONSET_FIRST..=ONSET_LAST).contains(&x) {
            let onset = (x - ONSET_FIRST) * 10;
            match self.stack.last() {
                None => self.stack.push(onset),
                Some(&top) if top.abs_diff(onset) <= 50 => self.stack.push(onset),
                _ => {}
            }
            self.constrain_next = false;
        } else if (PV_FIRST..=PV_LAST).contains(&x) {
            self.constrain_next = !self.stack.is_empty() && self.stack.len() < self.chord_strength;
        } else {
            self.constrain_next = false;
        }
    }
}

impl LogitsProcessor for ChordConstraint {
    fn process(&mut self, generated: &[u32], logits: &mut [f32]) {
        if generated.len() < self.seen {
            // A new sequence: start over (the stack itself persists only within one sequence).
            *self = Self::new(self.chord_strength);
        }
        for &x in &generated[self.seen..] {
            self.observe(x);
        }
        self.seen = generated.len();
        if self.constrain_next {
            let top = *self.stack.last().expect("non-empty when constraining");
            let allowed: Vec<usize> = (0..=5)
                .map(|k| top + 10 * k)
                .filter(|&o| o <= 5000)
                .map(|o| (ONSET_FIRST + o / 10) as usize)
                .collect();
            for (i, l) in logits.iter_mut().enumerate() {
                if !allowed.contains(&i) {
                    *l = f32::NEG_INFINITY;
                }
            }
        }
    }
}

/// Temperature, top-k (ties at the k-th value kept; 0 = off), top-p (1.0 = off), or greedy.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SamplingParams {
    pub temperature: f32,
    pub top_k: usize,
    pub top_p: f32,
    pub greedy: bool,
}

impl Default for SamplingParams {
    fn default() -> Self {
        Self {
            temperature: 1.0,
            top_k: 50,
            top_p: 1.0,
            greedy: false,
        }
    }
}

impl SamplingParams {
    pub fn greedy() -> Self {
        Self {
            greedy: true,
            ..Self::default()
        }
    }
}

/// Decoding options: sampling plus the total length limit (including the start token).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GenerateOptions {
    pub sampling: SamplingParams,
    pub max_len: usize,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        Self {
            sampling: SamplingParams::default(),
            max_len: 512,
        }
    }
}

/// Index of the first maximum (as `torch.argmax`).
pub fn argmax(logits: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &v) in logits.iter().enumerate() {
        if v > logits[best] {
            best = i;
        }
    }
    best as u32
}

/// Picks the next token: `logits / T`, top-k, top-p, softmax, multinomial (HF order).
/// `logits` is modified in place; `scratch` avoids allocation across steps.
pub fn sample<R: Rng + ?Sized>(
    logits: &mut [f32],
    p: &SamplingParams,
    rng: &mut R,
    scratch: &mut Vec<f32>,
) -> u32 {
    if p.greedy {
        return argmax(logits);
    }
    if p.temperature > 0.0 && p.temperature != 1.0 {
        let inv = 1.0 / p.temperature;
        for l in logits.iter_mut() {
            *l *= inv;
        }
    }
    if p.top_k > 0 && p.top_k < logits.len() {
        scratch.clear();
        scratch.extend_from_slice(logits);
        let k = p.top_k;
        let (_, kth, _) = scratch.select_nth_unstable_by(k - 1, |a, b| b.total_cmp(a));
        let kth = *kth;
        for l in logits.iter_mut() {
            if *l < kth {
                *l = f32::NEG_INFINITY;
            }
        }
    }
    if p.top_p < 1.0 {
        top_p_filter(logits, p.top_p);
    }
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    if max == f32::NEG_INFINITY {
        return argmax(logits);
    }
    let mut total = 0.0f64;
    for l in logits.iter_mut() {
        *l = (*l - max).exp();
        total += *l as f64;
    }
    let mut u = rng.gen::<f64>() * total;
    let mut last = 0;
    for (i, &w) in logits.iter().enumerate() {
        if w > 0.0 {
            last = i;
            if u < w as f64 {
                return i as u32;
            }
            u -= w as f64;
        }
    }
    last as u32
}

/// One position of a verified draft: the token plain decoding samples from the processed
/// `logits` with this step's random draw, and whether it is the `guess`. So the guess is kept
/// with the probability the distribution gives it, and otherwise the token is drawn from the
/// distribution without the guess, renormalised (the rule for a point-mass draft); and the
/// draws are the plain decoder's, so the output does not depend on the draft.
pub fn verify<R: Rng + ?Sized>(
    logits: &mut [f32],
    guess: Option<u32>,
    p: &SamplingParams,
    rng: &mut R,
    scratch: &mut Vec<f32>,
) -> (u32, bool) {
    let token = sample(logits, p, rng, scratch);
    (token, guess == Some(token))
}

/// HF `TopPLogitsWarper`: drop the lowest tokens whose cumulative probability is <= 1 - top_p,
/// keeping at least one.
fn top_p_filter(logits: &mut [f32], top_p: f32) {
    let mut idx: Vec<usize> = (0..logits.len()).collect();
    idx.sort_by(|&a, &b| logits[a].total_cmp(&logits[b]));
    let max = logits[idx[idx.len() - 1]];
    let probs: Vec<f64> = idx
        .iter()
        .map(|&i| ((logits[i] - max) as f64).exp())
        .collect();
    let total: f64 = probs.iter().sum();
    let mut cum = 0.0;
    for (r, &i) in idx.iter().enumerate() {
        cum += probs[r] / total;
        if cum <= (1.0 - top_p) as f64 && r + 1 < idx.len() {
            logits[i] = f32::NEG_INFINITY;
        }
    }
}

impl ImprovNetModel {
    /// Runs the encoder on one unpadded sequence and prepares incremental decoding.
    pub fn start_segment(&self, enc_ids: &[u32]) -> Result<DecoderState> {
        if enc_ids.is_empty() {
            return Err(ModelError::Input("empty encoder input".into()));
        }
        let max = self.config.encoder.max_position_embeddings;
        if enc_ids.len() > max {
            return Err(ModelError::Input(format!(
                "encoder input of {} tokens exceeds {max} positions",
                enc_ids.len()
            )));
        }
        // Generation runs on the CPU kernels (gemm and fused kernels for the encoder, no pooler,
        // no padding mask; the KV-cache decoder); its errors are the caller's to see.
        if !self.device().is_cpu() {
            return Err(ModelError::Input(
                "generation runs on the CPU: load the model there (--device cpu)".into(),
            ));
        }
        let rows = super::fast_enc::encode_unpadded(&self.encoder, enc_ids, self.bf16_encoder())?;
        DecoderState::from_rows(self, &rows, enc_ids.len())
    }

    /// Generates one decoder sequence for `enc_ids` (no padding), starting from `[<S>]`; returns
    /// every token including that start token and the final `<E>` if one was produced. Stops on
    /// `<E>`, on pad (0) or at `opts.max_len` tokens. Processors run in order on every step.
    /// Drafts by copying from `enc_ids` (see [`generate_drafted`](Self::generate_drafted)).
    pub fn generate<R: Rng + ?Sized>(
        &self,
        enc_ids: &[u32],
        opts: &GenerateOptions,
        processors: &mut [&mut dyn LogitsProcessor],
        rng: &mut R,
    ) -> Result<Vec<u32>> {
        let mut draft = CopyDraft::new(enc_ids);
        self.generate_drafted(enc_ids, opts, processors, &mut draft, rng)
            .map(|(out, _)| out)
    }

    /// [`generate`](Self::generate) with the given draft, also returning how the drafts fared.
    /// The tokens do not depend on the draft.
    pub fn generate_drafted<R: Rng + ?Sized>(
        &self,
        enc_ids: &[u32],
        opts: &GenerateOptions,
        processors: &mut [&mut dyn LogitsProcessor],
        draft: &mut dyn Draft,
        rng: &mut R,
    ) -> Result<(Vec<u32>, DecodeStats)> {
        let started = Instant::now();
        let mut state = self.start_segment(enc_ids)?;
        let encoder = started.elapsed();
        let (out, stats) = self.generate_from(&mut state, opts, processors, draft, rng)?;
        let encoder_tokens = enc_ids.len();
        Ok((
            out,
            DecodeStats {
                encoder,
                encoder_tokens,
                ..stats
            },
        ))
    }

    /// Decodes one sequence from a segment already encoded by
    /// [`start_segment`](Self::start_segment), from its start: several candidates of one
    /// segment share one encoder run.
    pub fn generate_from<R: Rng + ?Sized>(
        &self,
        state: &mut DecoderState,
        opts: &GenerateOptions,
        processors: &mut [&mut dyn LogitsProcessor],
        draft: &mut dyn Draft,
        rng: &mut R,
    ) -> Result<(Vec<u32>, DecodeStats)> {
        let mut rng = rng;
        let mut one = [Sequence {
            processors,
            draft,
            rng: &mut rng,
        }];
        let (mut out, stats) = self.generate_lanes(state, opts, &mut one)?;
        Ok((out.pop().expect("one sequence"), stats))
    }

    /// Decodes several sequences of one encoded segment side by side (up to
    /// [`MAX_LANES`](super::fast::MAX_LANES), the candidates of a best-of-N): each forward feeds
    /// every unfinished sequence's last token and guesses, so the weights are read once for all.
    /// Each sequence's tokens are what [`generate_from`](Self::generate_from) gives it alone
    /// with its own processors, draft and random draws. The stats are the sequences' totals
    /// (`forwards` counts each sequence's share of a forward, so tokens per forward stays the
    /// draft's measure) and the wall time.
    pub fn generate_lanes(
        &self,
        state: &mut DecoderState,
        opts: &GenerateOptions,
        seqs: &mut [Sequence],
    ) -> Result<(Vec<Vec<u32>>, DecodeStats)> {
        let started = Instant::now();
        let w = DecoderWeights::lock(self)?;
        let max_len = opts.max_len.min(state.max_len());
        state.reset_lanes(seqs.len(), max_len)?;
        let mut outs: Vec<Vec<u32>> = vec![vec![BOS]; seqs.len()];
        let mut fed: Vec<Vec<u32>> = vec![Vec::with_capacity(MAX_FEED); seqs.len()];
        let mut done = vec![false; seqs.len()];
        // Draft length per sequence: grows while drafts are taken whole, shrinks to what was
        // taken.
        let mut want = vec![2usize; seqs.len()];
        let mut logits = vec![0.0f32; MAX_FEED * seqs.len() * w.vocab];
        let mut scratch = Vec::with_capacity(w.vocab);
        let mut guess = Vec::with_capacity(MAX_FEED);
        let mut stats = DecodeStats::default();
        loop {
            // Feed each sequence's last token and the guesses after it; never past `max_len`.
            for (i, seq) in seqs.iter_mut().enumerate() {
                let out = &outs[i];
                done[i] |= out.len() >= max_len;
                if done[i] {
                    continue;
                }
                let room = (max_len - out.len()).min(MAX_FEED) - 1;
                guess.clear();
                if room > 0 {
                    seq.draft.propose(out, want[i].min(room), &mut guess);
                    guess.truncate(want[i].min(room));
                }
                fed[i].clear();
                fed[i].push(*out.last().unwrap());
                fed[i].extend_from_slice(&guess);
            }
            let batch: Vec<(usize, &[u32])> = (0..seqs.len())
                .filter(|&i| !done[i])
                .map(|i| (i, fed[i].as_slice()))
                .collect();
            if batch.is_empty() {
                break;
            }
            let positions: Vec<usize> =
                batch.iter().map(|&(i, _)| state.lane_position(i)).collect();
            let rows = batch.iter().map(|(_, t)| t.len()).sum::<usize>();
            state.feed_lanes(&w, &batch, &mut logits[..rows * w.vocab])?;
            let mut row = 0;
            for (&(i, fed), position) in batch.iter().zip(positions) {
                let (seq, out) = (&mut seqs[i], &mut outs[i]);
                let guessed = &fed[1..];
                stats.forwards += 1;
                stats.drafted += guessed.len();
                let mut taken = true;
                for (j, logits) in logits[row * w.vocab..(row + fed.len()) * w.vocab]
                    .chunks_exact_mut(w.vocab)
                    .enumerate()
                {
                    for p in seq.processors.iter_mut() {
                        p.process(out, logits);
                    }
                    let (next, kept) = verify(
                        logits,
                        guessed.get(j).copied(),
                        &opts.sampling,
                        &mut seq.rng,
                        &mut scratch,
                    );
                    out.push(next);
                    stats.tokens += 1;
                    stats.accepted += kept as usize;
                    if next == EOS || next == PAD {
                        done[i] = true;
                        break;
                    }
                    if !kept && j < guessed.len() {
                        // The rows after a miss were computed for tokens that did not come.
                        state.rewind_lane(i, position + j + 1);
                        want[i] = j.max(1);
                        taken = false;
                        break;
                    }
                }
                if taken {
                    want[i] = (want[i] + 1).min(MAX_FEED - 1);
                }
                row += fed.len();
            }
        }
        stats.decode = started.elapsed();
        Ok((outs, stats))
    }

    /// Logits `[len(dec_ids)][vocab]` computed token by token through the KV-cache path
    /// (parity checks against the full forward).
    pub fn incremental_logits(
        &self,
        enc_out: &Tensor,
        enc_mask: &[bool],
        dec_ids: &[u32],
    ) -> Result<Vec<Vec<f32>>> {
        let mut state = DecoderState::new(self, enc_out, enc_mask)?;
        let w = DecoderWeights::lock(self)?;
        dec_ids
            .iter()
            .map(|&t| {
                let mut l = vec![0.0; w.vocab];
                state.step(&w, t, &mut l)?;
                Ok(l)
            })
            .collect()
    }
}

/// How speculative decoding fared on one sequence.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DecodeStats {
    /// Tokens decoded (the start token not counted).
    pub tokens: usize,
    /// Decoder forwards run.
    pub forwards: usize,
    /// Tokens guessed by the draft.
    pub drafted: usize,
    /// Guessed tokens that were sampled.
    pub accepted: usize,
    /// Tokens the encoder read.
    pub encoder_tokens: usize,
    /// Time in the encoder (with the cross-attention keys and values), and in decoding.
    pub encoder: Duration,
    pub decode: Duration,
}

/// The totals of several sequences (e.g. a refinement's corruptions).
impl<'a> std::iter::Sum<&'a DecodeStats> for DecodeStats {
    fn sum<I: Iterator<Item = &'a DecodeStats>>(iter: I) -> Self {
        let mut all = DecodeStats::default();
        iter.for_each(|s| all.add(*s));
        all
    }
}

impl DecodeStats {
    /// Tokens decoded per decoder forward (1 without drafts).
    pub fn tokens_per_forward(&self) -> f64 {
        self.tokens as f64 / self.forwards.max(1) as f64
    }

    pub fn add(&mut self, other: DecodeStats) {
        self.tokens += other.tokens;
        self.forwards += other.forwards;
        self.drafted += other.drafted;
        self.accepted += other.accepted;
        self.encoder_tokens += other.encoder_tokens;
        self.encoder += other.encoder;
        self.decode += other.decode;
    }
}

/// One sequence of [`ImprovNetModel::generate_lanes`]: what edits its logits, what guesses
/// its tokens, and its own random draws.
pub struct Sequence<'a, 'p> {
    pub processors: &'a mut [&'p mut dyn LogitsProcessor],
    pub draft: &'a mut dyn Draft,
    pub rng: &'a mut dyn RngCore,
}

/// Guesses the tokens that follow a sequence, for speculative decoding. A guess costs only the
/// verification of its positions; a wrong guess changes nothing but the time taken.
pub trait Draft {
    /// Appends up to `max` tokens likely to follow `generated` (which starts with `<S>`).
    fn propose(&mut self, generated: &[u32], max: usize, draft: &mut Vec<u32>);
}

/// No guesses: one decoder forward per token.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoDraft;

impl Draft for NoDraft {
    fn propose(&mut self, _: &[u32], _: usize, _: &mut Vec<u32>) {}
}

/// Guesses by copying from a source (the encoder input, which holds the corrupted segment a
/// refinement mostly keeps): the continuation of the longest match of the last generated tokens.
#[derive(Debug, Clone)]
pub struct CopyDraft<'a> {
    source: &'a [u32],
    /// Where each token occurs in `source`.
    at: std::collections::HashMap<u32, Vec<usize>>,
}

/// The longest match [`CopyDraft`] looks for, in tokens (two notes).
const MATCH: usize = 6;

impl<'a> CopyDraft<'a> {
    pub fn new(source: &'a [u32]) -> Self {
        let mut at: std::collections::HashMap<u32, Vec<usize>> = Default::default();
        for (i, &t) in source.iter().enumerate() {
            at.entry(t).or_default().push(i);
        }
        Self { source, at }
    }

    /// What it copies from.
    pub fn source(&self) -> &'a [u32] {
        self.source
    }

    /// The source position after the longest match of `generated`'s last tokens (the latest
    /// of equals), if any token matches.
    pub fn follow(&self, generated: &[u32]) -> Option<usize> {
        let &last = generated.last()?;
        let mut best: Option<(usize, usize)> = None;
        for &i in self.at.get(&last)? {
            let len = (1..MATCH.min(generated.len()).min(i + 1))
                .take_while(|&k| self.source[i - k] == generated[generated.len() - 1 - k])
                .count()
                + 1;
            if i + 1 < self.source.len() && best.is_none_or(|(l, _)| len >= l) {
                best = Some((len, i + 1));
            }
        }
        best.map(|(_, next)| next)
    }
}

impl Draft for CopyDraft<'_> {
    fn propose(&mut self, generated: &[u32], max: usize, draft: &mut Vec<u32>) {
        (&*self).propose(generated, max, draft)
    }
}

/// A shared copy draft (its index is built once per segment, for every candidate).
impl Draft for &CopyDraft<'_> {
    fn propose(&mut self, generated: &[u32], max: usize, draft: &mut Vec<u32>) {
        if let Some(next) = self.follow(generated) {
            let end = (next + max).min(self.source.len());
            draft.extend_from_slice(&self.source[next..end]);
        }
    }
}
