//! Sampling and the decode loop (spec §5.3), with a logits-processor hook for constraints such as
//! "forbid `<T>`" or the harmonization chord constraint (spec §11).

use candle_core::Tensor;
use rand::Rng;

use super::fast::{DecoderState, DecoderWeights};
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
        let rows = super::fast_enc::encode_unpadded(&self.encoder, enc_ids)?;
        DecoderState::from_rows(self, &rows, enc_ids.len())
    }

    /// Generates one decoder sequence for `enc_ids` (no padding), starting from `[<S>]`; returns
    /// every token including that start token and the final `<E>` if one was produced. Stops on
    /// `<E>`, on pad (0) or at `opts.max_len` tokens. Processors run in order on every step.
    pub fn generate<R: Rng + ?Sized>(
        &self,
        enc_ids: &[u32],
        opts: &GenerateOptions,
        processors: &mut [&mut dyn LogitsProcessor],
        rng: &mut R,
    ) -> Result<Vec<u32>> {
        let mut state = self.start_segment(enc_ids)?;
        let w = DecoderWeights::lock(self)?;
        let max_len = opts.max_len.min(state.max_len());
        let mut out = vec![BOS];
        let mut logits = vec![0.0f32; w.vocab];
        let mut scratch = Vec::with_capacity(w.vocab);
        while out.len() < max_len {
            state.step(&w, *out.last().unwrap(), &mut logits)?;
            for p in processors.iter_mut() {
                p.process(&out, &mut logits);
            }
            let next = sample(&mut logits, &opts.sampling, rng, &mut scratch);
            out.push(next);
            if next == EOS || next == PAD {
                break;
            }
        }
        Ok(out)
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
