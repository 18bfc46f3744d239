//! A from-scratch model that copies its corrupted input before any training: an induction
//! circuit written into the initial weights (`improvnet train --copy-circuit`).
//!
//! Why: the target is mostly a copy of the encoder's `SEP corruption genre … SEP` block, which sits
//! at a different offset in every sample. A model from random weights must discover that
//! alignment through learned absolute positions; on 2 CPU cores it had not within any session's
//! budget, and until it does the encoder collapses and the decoder ignores it
//! (docs/experiments.md, "How we got here"). So the alignment is built in and training only has
//! to learn the repairs. The residual stream is split into subspaces of `code` dimensions:
//!
//! - `POS`: sinusoidal positions; `TOK`: a random unit code of the token (shared by encoder,
//!   decoder and output head);
//! - encoder layer 0, heads 0–2 attend from position j to j−1, j−2, j−3 (a rotation of the
//!   sinusoids) and write those tokens' codes into `PREV`, `PREV2`, `PREV3`;
//! - decoder layer 0, self-attention heads 0–1 do the same for the decoder's inputs;
//! - decoder layer 0, cross-attention head 0: query = the decoder's last three tokens, key = the
//!   three tokens before each encoder position (superposed by random rotations): it finds where
//!   the target's last three tokens sit in the encoder and reads the next token's code into `OUT`
//!   (three, not two: with one of them masked, two still match);
//! - the output head reads `OUT` back as logits against every token's code (gelu(x) − gelu(−x) =
//!   x carries it through the head's GELU); masks, genre, corruption and `SEP` codes are zero
//!   there, except that a copied closing `SEP` stands for `<E>`.
//!
//! With `--align-positions` ([`write_alignment`]) a positional prior joins the content match in
//! cross-attention head 0: the target's i-th token sits i + 1 places after the corruption token
//! whenever the corruption keeps the block's length (masks, permutations, transposition), and
//! position finds that place where repeated patterns or moved pitches fool the content match.
//!
//! Every other residual branch starts nearly closed (std 0.002) so the circuit passes through the
//! other layers. The result is an ordinary BERT2BERT with the released checkpoint's tensor names.
//! On `data/cj-v1`'s validation samples (`--valid-pieces 8`, seed 444) the `small` model starts
//! at token accuracy 0.366 (0.72 where the corruption leaves most tokens in place, transposition)
//! and an encoder gap of 2.8 nats; HF's random init starts at 0.004 and a gap of 0. With the
//! alignment prior it starts at 0.459 (transposition 0.84, permutations 0.67–0.68: within 0.02 of
//! copying the input on held-out pieces) and a gap of 6.0 nats.

use candle_core::Tensor;
use candle_nn::VarMap;
use rand_chacha::ChaCha8Rng;

use super::error::TrainError;
use super::init::{normals, stream};
use crate::model::Config;
use crate::tokens::{
    velocity_index_exact, Corruption, Token, BOS, CORRUPTION_BASE, EOS, GENRE_BASE, PAD, SEP,
    VELOCITY_BINS,
};

/// The circuit's gains (chosen on `data/cj-v1` validation samples: accuracy at step 0 is flat
/// around them; larger logits only make the wrong guesses more confident).
#[derive(Clone, Debug)]
pub struct Circuit {
    /// Dimensions of a token's code and of the position sinusoids (even).
    pub code: usize,
    /// Gain of the positional heads' queries and keys (sharpness of "attend to j − k").
    pub pos_scale: f32,
    /// Gain of the cross-attention match.
    pub match_scale: f32,
    /// Gain of the output head.
    pub logit_scale: f32,
    /// Std of the residual branches outside the circuit.
    pub branch_std: f64,
    /// Sinusoid pairs of the alignment prior (0: content matching only; see [`write_circuit`]).
    pub align_pairs: usize,
    /// Gain of the alignment prior's queries and keys.
    pub align_scale: f32,
}

impl Circuit {
    /// The largest code that fits `config`: five subspaces in the hidden size, one per head;
    /// with `align`, also room for the alignment prior's sinusoids (in the residual and in
    /// cross-attention head 0) and a fourth head.
    pub fn for_config(config: &Config, align: bool) -> Result<Self, TrainError> {
        let (e, d) = (&config.encoder, &config.decoder);
        let hidden = e.hidden_size;
        let head = hidden / e.num_attention_heads.max(1);
        let align_pairs = if align { ALIGN_PAIRS } else { 0 };
        let room = 2 * align_pairs;
        let code = (hidden.saturating_sub(room) / 5).min(head.saturating_sub(room)) / 2 * 2;
        let heads = if align { 4 } else { 3 };
        let problem = if d.hidden_size != hidden || d.num_attention_heads != e.num_attention_heads {
            Some("encoder and decoder of the same width and head count".to_string())
        } else if e.num_attention_heads < heads {
            Some(format!("{heads}+ heads (it has {})", e.num_attention_heads))
        } else if align && e.intermediate_size < 12 * align_pairs {
            Some(format!("an intermediate size of {}+", 12 * align_pairs))
        } else if e.num_hidden_layers == 0 || d.num_hidden_layers == 0 {
            Some("1+ layers on each side".to_string())
        } else if code < 8 {
            Some(format!("a hidden size of 40+ (it has {hidden})"))
        } else {
            None
        };
        if let Some(p) = problem {
            return Err(TrainError::Config(format!("--copy-circuit needs {p}")));
        }
        Ok(Self {
            code,
            pos_scale: 1.5,
            match_scale: 1.0,
            logit_scale: 1.0,
            branch_std: 0.002,
            align_pairs,
            align_scale: 3.0,
        })
    }
}

/// A dense row-major matrix being edited, written back to its variable.
struct Mat {
    rows: usize,
    cols: usize,
    v: Vec<f32>,
}

impl Mat {
    fn set(&mut self, r: usize, c: usize, x: f32) {
        self.v[r * self.cols + c] = x;
    }
    fn zero_rows(&mut self, rows: std::ops::Range<usize>) {
        self.v[rows.start * self.cols..rows.end * self.cols].fill(0.0);
    }
    fn zero_cols(&mut self, cols: std::ops::Range<usize>) {
        for r in 0..self.rows {
            self.v[r * self.cols + cols.start..r * self.cols + cols.end].fill(0.0);
        }
    }
    /// Rows `r`, `r + 1` read the sinusoid pair at columns `col`, `col + 1` rotated by −`angle`
    /// (position j's pair becomes position j − angle/ω's), times `scale`.
    fn set_rotation(&mut self, r: usize, col: usize, angle: f64, scale: f32) {
        let (cs, sn) = (angle.cos() as f32, angle.sin() as f32);
        self.set(r, col, cs * scale);
        self.set(r, col + 1, sn * scale);
        self.set(r + 1, col, -sn * scale);
        self.set(r + 1, col + 1, cs * scale);
    }
}

struct Editor<'a> {
    vars: &'a std::collections::HashMap<String, candle_core::Var>,
}

impl Editor<'_> {
    fn get(&self, name: &str) -> Result<Mat, TrainError> {
        let var = self.vars.get(name).ok_or_else(|| {
            TrainError::Config(format!("--copy-circuit: the model has no {name}"))
        })?;
        let dims = var.shape().dims().to_vec();
        let (rows, cols) = match dims[..] {
            [r, c] => (r, c),
            [n] => (1, n),
            _ => unreachable!("weights are vectors or matrices"),
        };
        let v = var.as_tensor().flatten_all()?.to_vec1::<f32>()?;
        Ok(Mat { rows, cols, v })
    }
    fn put(&self, name: &str, m: Mat) -> Result<(), TrainError> {
        let var = &self.vars[name];
        var.set(&Tensor::from_vec(m.v, var.shape().clone(), var.device())?)?;
        Ok(())
    }
}

/// `n` random unit vectors of `dim` dimensions.
fn unit_codes(rng: &mut ChaCha8Rng, n: usize, dim: usize) -> Vec<Vec<f64>> {
    (0..n)
        .map(|_| {
            let mut v: Vec<f64> = normals(rng, dim, 1.0);
            normalize(&mut v);
            v
        })
        .collect()
}

/// Weights of a pitch-velocity token's own code, its pitch's and its pitch class's in
/// [`share_pitch_codes`].
const PITCH_CODE_MIX: [f64; 3] = [0.75, 0.5, 0.45];

/// Makes the codes of the pitch-velocity tokens share structure (`--pitch-codes`):
/// code(v, p) ∝ 0.75 own(v, p) + 0.5 pitch(p) + 0.45 class(p mod 12), all random unit vectors,
/// so two velocities of one pitch have codes at cosine ≈ 0.45 and two octaves of one class ≈ 0.2.
///
/// Why: with an independent code per token the ten velocities of a pitch look unrelated to the
/// output head, so nothing the decoder gathers over the block reads back as a pitch. A shuffle
/// keeps the block's pitches, and "the most common pitch not used yet" beats the copy by 0.04–0.05
/// token accuracy on the permutations (`score-model`'s "count the block"); which pitch classes
/// the music uses is what tells a transposed note. With shared parts, the head's logit of (v, p)
/// against an average of the block's codes grows with how often p and its class occur there.
fn share_pitch_codes(rng: &mut ChaCha8Rng, codes: &mut [Vec<f64>]) {
    let dim = codes.first().map_or(0, |c| c.len());
    let pitch = unit_codes(rng, 128, dim);
    let class = unit_codes(rng, 12, dim);
    let [own, wp, wc] = PITCH_CODE_MIX;
    for (id, code) in codes.iter_mut().enumerate() {
        let Some(Token::PianoNote { pitch: p, .. }) = Token::from_id(id as u32) else {
            continue;
        };
        let p = usize::from(p);
        for (k, x) in code.iter_mut().enumerate() {
            *x = own * *x + wp * pitch[p][k] + wc * class[p % 12][k];
        }
        normalize(code);
    }
}

/// Scales `v` to unit length (a zero vector stays zero).
fn normalize(v: &mut [f64]) {
    let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt().max(1e-12);
    v.iter_mut().for_each(|x| *x /= norm);
}

/// Weight of the shared velocity part in [`share_velocity_codes`], against a unit code.
const VELOCITY_CODE_MIX: f64 = 0.5;

/// Gives the pitch-velocity tokens of one velocity a shared part (`--velocity-codes`):
/// code(v, p) ∝ code(v, p) + 0.5 velocity(v), a random unit vector per velocity, so two pitches
/// at one velocity have codes at cosine ≈ 0.2 (and, on top of `--pitch-codes`, two velocities
/// of one pitch ≈ 0.36).
///
/// Why: a shuffle of the pitches keeps each note's loudness in place, but with the pitch codes
/// alone nothing ties one velocity across pitches, so a model that finds the right pitch
/// elsewhere in the block brings that note's loudness along (a quarter of the notes of
/// `runs/pc2-teach3`; docs/experiments.md). A shared part lets the output head read "this
/// pitch" and "that loudness" from two places.
fn share_velocity_codes(rng: &mut ChaCha8Rng, codes: &mut [Vec<f64>]) {
    let dim = codes.first().map_or(0, |c| c.len());
    let velocity = unit_codes(rng, VELOCITY_BINS.len(), dim);
    for (id, code) in codes.iter_mut().enumerate() {
        let Some(Token::PianoNote { velocity: v, .. }) = Token::from_id(id as u32) else {
            continue;
        };
        let Some(bin) = velocity_index_exact(v) else {
            continue;
        };
        for (x, s) in code.iter_mut().zip(&velocity[bin as usize]) {
            *x += VELOCITY_CODE_MIX * s;
        }
        normalize(code);
    }
}

/// A random orthogonal matrix (Gram–Schmidt on Gaussian rows).
fn orthogonal(rng: &mut ChaCha8Rng, dim: usize) -> Vec<Vec<f64>> {
    let mut rows: Vec<Vec<f64>> = Vec::with_capacity(dim);
    while rows.len() < dim {
        let mut v: Vec<f64> = normals(rng, dim, 1.0);
        for r in &rows {
            let dot: f64 = v.iter().zip(r).map(|(a, b)| a * b).sum();
            v.iter_mut().zip(r).for_each(|(a, b)| *a -= dot * b);
        }
        let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt();
        if norm > 1e-6 {
            rows.push(v.iter().map(|x| x / norm).collect());
        }
    }
    rows
}

/// Angular frequencies of the position sinusoids: wavelengths 2.5 to 4096 positions, geometric,
/// so that j − 1 scores well above j and j − 2 and no far position aliases onto it.
fn frequencies(pairs: usize) -> Vec<f64> {
    (0..pairs)
        .map(|i| {
            let t = i as f64 / (pairs.max(2) - 1) as f64;
            std::f64::consts::TAU / (2.5 * (4096.0f64 / 2.5).powf(t))
        })
        .collect()
}

/// Writes the circuit into `vars` (after [`super::init::init_bert`]; the output bias is set
/// separately). Deterministic in `seed`.
pub fn write_circuit(
    vars: &VarMap,
    config: &Config,
    seed: u64,
    align: bool,
    pitch_codes: bool,
    velocity_codes: bool,
) -> Result<(), TrainError> {
    let circuit = Circuit::for_config(config, align)?;
    let data = vars.data().lock().expect("var map lock");
    let ed = Editor { vars: &data };
    let d = config.encoder.hidden_size;
    let dh = d / config.encoder.num_attention_heads;
    let c = circuit.code;
    let sub = |i: usize| i * c..(i + 1) * c;
    let (pos, tok, prev) = (sub(0), sub(1), [sub(2), sub(3), sub(4)]);
    let out = sub(4); // decoder side: OUT reuses PREV3's dimensions
    let vocab = config.decoder.vocab_size;
    let mut rng = stream(seed, SALT_CIRCUIT, 0);
    let mut codes = unit_codes(&mut rng, vocab, c);
    // `<S>` starts every target: its code is the genres' together.
    let mut bos: Vec<f64> = (0..c)
        .map(|k| (0..3).map(|g| codes[(GENRE_BASE + g) as usize][k]).sum())
        .collect();
    normalize(&mut bos);
    codes[BOS as usize] = bos;
    codes[PAD as usize] = vec![0.0; c];
    if pitch_codes {
        share_pitch_codes(&mut stream(seed, SALT_PITCH_CODES, 0), &mut codes);
    }
    if velocity_codes {
        share_velocity_codes(&mut stream(seed, SALT_VELOCITY_CODES, 0), &mut codes);
    }
    let mix = [orthogonal(&mut rng, c), orthogonal(&mut rng, c)];
    let w = frequencies(c / 2);
    let mark = align.then(|| mark_corruptions(&mut rng, &mut codes));

    // Residual branches start nearly closed; every layer passes its input on.
    let names: Vec<String> = data.keys().cloned().collect();
    for name in &names {
        if name.ends_with("output.dense.weight") && !name.contains("pooler") {
            let mut m = ed.get(name)?;
            let h = name
                .bytes()
                .fold(0u64, |h, b| h.wrapping_mul(31) ^ b as u64);
            let mut r = stream(seed, SALT_CIRCUIT, h);
            m.v = normals(&mut r, m.v.len(), circuit.branch_std)
                .into_iter()
                .map(|x| x as f32)
                .collect();
            ed.put(name, m)?;
        }
    }

    for (prefix, positions) in [
        (
            "encoder.embeddings.",
            config.encoder.max_position_embeddings,
        ),
        (
            "decoder.bert.embeddings.",
            config.decoder.max_position_embeddings,
        ),
    ] {
        let mut word = ed.get(&format!("{prefix}word_embeddings.weight"))?;
        word.v.fill(0.0);
        for (t, code) in codes.iter().enumerate().take(word.rows) {
            for (k, x) in code.iter().enumerate() {
                word.set(t, tok.start + k, (x * (c as f64).sqrt()) as f32);
            }
        }
        ed.put(&format!("{prefix}word_embeddings.weight"), word)?;
        let mut p = ed.get(&format!("{prefix}position_embeddings.weight"))?;
        p.v.fill(0.0);
        for j in 0..positions.min(p.rows) {
            for (f, wf) in w.iter().enumerate() {
                let a = j as f64 * wf;
                p.set(j, pos.start + 2 * f, (a.cos() * 2f64.sqrt()) as f32);
                p.set(j, pos.start + 2 * f + 1, (a.sin() * 2f64.sqrt()) as f32);
            }
        }
        ed.put(&format!("{prefix}position_embeddings.weight"), p)?;
        let name = format!("{prefix}token_type_embeddings.weight");
        let mut tt = ed.get(&name)?;
        tt.v.fill(0.0);
        ed.put(&name, tt)?;
    }

    // "Attend from j to j − k, write that token's code into `target`".
    let positional_head = |attn: &str, head: usize, k: usize, target: std::ops::Range<usize>| {
        let rows = head * dh..head * dh + c;
        let mut q = ed.get(&format!("{attn}.self.query.weight"))?;
        let mut key = ed.get(&format!("{attn}.self.key.weight"))?;
        let mut v = ed.get(&format!("{attn}.self.value.weight"))?;
        for m in [&mut q, &mut key, &mut v] {
            m.zero_rows(head * dh..(head + 1) * dh);
        }
        for (f, wf) in w.iter().enumerate() {
            // The rotation by −k·ω maps position j's pair onto position j − k's.
            let (r, col) = (rows.start + 2 * f, pos.start + 2 * f);
            let s = circuit.pos_scale;
            q.set_rotation(r, col, k as f64 * wf, s);
            key.set(r, col, s);
            key.set(r + 1, col + 1, s);
        }
        for i in 0..c {
            v.set(rows.start + i, tok.start + i, 1.0);
        }
        let mut o = ed.get(&format!("{attn}.output.dense.weight"))?;
        o.zero_rows(target.clone());
        for i in 0..c {
            o.set(target.start + i, rows.start + i, 1.0);
        }
        for (part, m) in [("query", q), ("key", key), ("value", v)] {
            ed.put(&format!("{attn}.self.{part}.weight"), m)?;
        }
        ed.put(&format!("{attn}.output.dense.weight"), o)
    };
    let enc0 = "encoder.encoder.layer.0.attention";
    for (head, target) in prev.iter().enumerate() {
        positional_head(enc0, head, head + 1, target.clone())?;
    }
    let dec0 = "decoder.bert.encoder.layer.0";
    for (head, target) in prev[..2].iter().enumerate() {
        positional_head(&format!("{dec0}.attention"), head, head + 1, target.clone())?;
    }

    // Cross-attention head 0: the decoder's (current, previous, previous-but-one) tokens against
    // each encoder position's three predecessors; the value is the position's own token.
    let x = format!("{dec0}.crossattention");
    let mut q = ed.get(&format!("{x}.self.query.weight"))?;
    let mut key = ed.get(&format!("{x}.self.key.weight"))?;
    let mut v = ed.get(&format!("{x}.self.value.weight"))?;
    for m in [&mut q, &mut key, &mut v] {
        m.zero_rows(0..dh);
    }
    let s = circuit.match_scale;
    for (i, (row1, row2)) in mix[0].iter().zip(&mix[1]).enumerate() {
        q.set(i, tok.start + i, s);
        key.set(i, prev[0].start + i, s);
        v.set(i, tok.start + i, 1.0);
        for (j, (&m1, &m2)) in row1.iter().zip(row2).enumerate() {
            q.set(i, prev[0].start + j, m1 as f32 * s);
            q.set(i, prev[1].start + j, m2 as f32 * s);
            key.set(i, prev[1].start + j, m1 as f32 * s);
            key.set(i, prev[2].start + j, m2 as f32 * s);
        }
    }
    for (part, m) in [("query", q), ("key", key), ("value", v)] {
        ed.put(&format!("{x}.self.{part}.weight"), m)?;
    }
    let mut o = ed.get(&format!("{x}.output.dense.weight"))?;
    o.zero_rows(out.clone());
    for i in 0..c {
        o.set(out.start + i, i, 1.0);
    }
    ed.put(&format!("{x}.output.dense.weight"), o)?;

    // Output head: OUT as [+x, −x] through the GELU, then each token's code.
    let p = "decoder.cls.predictions";
    let mut dense = ed.get(&format!("{p}.transform.dense.weight"))?;
    dense.v.fill(0.0);
    for i in 0..c {
        dense.set(i, out.start + i, 1.0);
        dense.set(c + i, out.start + i, -1.0);
    }
    ed.put(&format!("{p}.transform.dense.weight"), dense)?;
    let mut head = ed.get(&format!("{p}.decoder.weight"))?;
    head.v.fill(0.0);
    for t in 0..head.rows {
        let id = t as u32;
        let source = match id {
            EOS => SEP,
            GENRE_BASE..EOS | SEP => continue, // masks, genre, corruption, <T>, <S>: never copied
            _ => id,
        };
        for (k, &code) in codes[source as usize].iter().enumerate() {
            let x = code as f32 * circuit.logit_scale;
            head.set(t, k, x);
            head.set(t, c + k, -x);
        }
    }
    ed.put(&format!("{p}.decoder.weight"), head)?;
    if let Some(mark) = mark {
        let layout = Layout { dh, c, pos, tok };
        write_alignment(&ed, &circuit, &layout, &w, &mark)?;
    }
    Ok(())
}

/// Pairs of sinusoids in the alignment prior.
const ALIGN_PAIRS: usize = 5;
/// Gain of the marker head's query: the corruption token must win the softmax everywhere.
const MARK_GAIN: f32 = 30.0;
/// Input scale of the squaring neurons (small: gelu(εx) + gelu(−εx) ≈ 0.798 ε²x²).
const SQUARE_EPS: f32 = 0.1;

/// Where the circuit's pieces sit.
struct Layout {
    dh: usize,
    c: usize,
    pos: std::ops::Range<usize>,
    tok: std::ops::Range<usize>,
}

/// Gives every code a zero component along a new direction `mark` except the nine corruption
/// tokens, which get 0.8 of it: the one corruption token of a sample is then findable from
/// anywhere with a single key direction. Returns `mark`.
fn mark_corruptions(rng: &mut ChaCha8Rng, codes: &mut [Vec<f64>]) -> Vec<f64> {
    let mark = unit_codes(rng, 1, codes[0].len()).remove(0);
    for (t, code) in codes.iter_mut().enumerate() {
        let along: f64 = code.iter().zip(&mark).map(|(a, b)| a * b).sum();
        code.iter_mut()
            .zip(&mark)
            .for_each(|(a, b)| *a -= along * b);
        let norm = code.iter().map(|x| x * x).sum::<f64>().sqrt();
        if norm < 1e-9 {
            continue; // PAD stays zero
        }
        let corruption =
            (CORRUPTION_BASE..CORRUPTION_BASE + Corruption::ALL.len() as u32).contains(&(t as u32));
        let (keep, add) = if corruption { (0.6, 0.8) } else { (1.0, 0.0) };
        code.iter_mut()
            .zip(&mark)
            .for_each(|(a, b)| *a = keep * *a / norm + add * b);
    }
    mark
}

/// The alignment prior: most corruptions keep the block's length, so the target token at
/// decoder position i sits at encoder position `marker + i + 1` (`<S>` shifts the labels by one;
/// the genre token sits between the marker and the block). Content matching alone cannot tell
/// apart repeated patterns, and loses its place where pitches were moved; this prior can.
///
/// - encoder layer 0, head 3: every position attends to the corruption token (the `mark`
///   direction of its code) and copies the marker's sinusoids into the free subspace `REL`;
/// - encoder layer 0 MLP: squares of sums of sinusoids give the products, so that `REL` becomes
///   the sinusoids of `j − marker` (cos(a − b) = ½|p_a + p_b|² − 1 for unit pairs);
/// - decoder cross-attention head 0, its spare dimensions: query = the sinusoids of i + 1,
///   key = `REL`; the score adds Σ cos(ω (i + 1 − (j − marker))) to the content match.
fn write_alignment(
    ed: &Editor,
    circuit: &Circuit,
    l: &Layout,
    w: &[f64],
    mark: &[f64],
) -> Result<(), TrainError> {
    let pairs = circuit.align_pairs;
    let rel = 5 * l.c..5 * l.c + 2 * pairs;
    let all_pairs = l.c / 2;
    // Spread over the sinusoids: short wavelengths make the peak sharp, long ones stop aliasing.
    let sel: Vec<usize> = (0..pairs)
        .map(|k| (k as f64 * (all_pairs - 1) as f64 * 0.8 / (pairs - 1) as f64).round() as usize)
        .collect();
    let col = |f: usize| l.pos.start + 2 * sel[f];

    // Encoder layer 0, head 3: attend to the marker, copy its sinusoids into REL.
    let attn = "encoder.encoder.layer.0.attention";
    let h = 3 * l.dh..4 * l.dh;
    let mut q = ed.get(&format!("{attn}.self.query.weight"))?;
    let mut qb = ed.get(&format!("{attn}.self.query.bias"))?;
    let mut k = ed.get(&format!("{attn}.self.key.weight"))?;
    let mut kb = ed.get(&format!("{attn}.self.key.bias"))?;
    let mut v = ed.get(&format!("{attn}.self.value.weight"))?;
    let mut vb = ed.get(&format!("{attn}.self.value.bias"))?;
    for m in [&mut q, &mut k, &mut v] {
        m.zero_rows(h.clone());
    }
    for m in [&mut qb, &mut kb, &mut vb] {
        m.v[h.clone()].fill(0.0);
    }
    qb.v[h.start] = MARK_GAIN;
    for (i, &x) in mark.iter().enumerate() {
        k.set(h.start, l.tok.start + i, x as f32);
    }
    for f in 0..pairs {
        v.set(h.start + 2 * f, col(f), 1.0);
        v.set(h.start + 2 * f + 1, col(f) + 1, 1.0);
    }
    for (part, m, b) in [("query", q, qb), ("key", k, kb), ("value", v, vb)] {
        ed.put(&format!("{attn}.self.{part}.weight"), m)?;
        ed.put(&format!("{attn}.self.{part}.bias"), b)?;
    }
    let mut o = ed.get(&format!("{attn}.output.dense.weight"))?;
    o.zero_rows(rel.clone());
    o.zero_cols(h.clone());
    for i in 0..2 * pairs {
        o.set(rel.start + i, h.start + i, 1.0);
    }
    ed.put(&format!("{attn}.output.dense.weight"), o)?;

    // Encoder layer 0 MLP: REL ← sinusoids of (j − marker), replacing the marker's.
    let mlp = "encoder.encoder.layer.0";
    let mut up = ed.get(&format!("{mlp}.intermediate.dense.weight"))?;
    let mut up_b = ed.get(&format!("{mlp}.intermediate.dense.bias"))?;
    let mut down = ed.get(&format!("{mlp}.output.dense.weight"))?;
    let mut down_b = ed.get(&format!("{mlp}.output.dense.bias"))?;
    let neurons = 12 * pairs;
    up.zero_rows(0..neurons);
    up_b.v[..neurons].fill(0.0);
    down.zero_rows(rel.clone());
    down.zero_cols(0..neurons);
    // Unit sinusoid pairs arrive with amplitude about √2 (LayerNorm keeps the residual's
    // per-dimension variance at 1, and each subspace its share): |p + q|² = 2a²(1 + cos).
    let amp2 = 2.0f32;
    let gain = std::f32::consts::SQRT_2 / (2.0 * amp2); // output amplitude √2, like POS
    let square = gain / ((2.0 / std::f32::consts::PI).sqrt() * SQUARE_EPS * SQUARE_EPS);
    let mut n = 0;
    for f in 0..pairs {
        let (cj, sj) = (col(f), col(f) + 1);
        let (cm, sm) = (rel.start + 2 * f, rel.start + 2 * f + 1);
        // cos(j − m) from (cj + cm)² + (sj + sm)²; sin(j − m) from (cj − sm)² + (sj + cm)².
        for (out, terms) in [
            (cm, [[(cj, 1.0), (cm, 1.0)], [(sj, 1.0), (sm, 1.0)]]),
            (sm, [[(cj, 1.0), (sm, -1.0)], [(sj, 1.0), (cm, 1.0)]]),
        ] {
            for term in terms {
                for sign in [1.0f32, -1.0] {
                    for &(input, x) in &term {
                        up.set(n, input, sign * x * SQUARE_EPS);
                    }
                    down.set(out, n, square);
                    n += 1;
                }
            }
            down_b.v[out] = -2.0 * amp2 * gain;
        }
    }
    // Minus the marker's sinusoids: gelu(x) − gelu(−x) = x.
    for i in rel.clone() {
        up.set(n, i, 1.0);
        down.set(i, n, -1.0);
        up.set(n + 1, i, -1.0);
        down.set(i, n + 1, 1.0);
        n += 2;
    }
    debug_assert_eq!(n, neurons);
    ed.put(&format!("{mlp}.intermediate.dense.weight"), up)?;
    ed.put(&format!("{mlp}.intermediate.dense.bias"), up_b)?;
    ed.put(&format!("{mlp}.output.dense.weight"), down)?;
    ed.put(&format!("{mlp}.output.dense.bias"), down_b)?;

    // Decoder cross-attention head 0, dimensions c..c + 2·pairs: i + 1 against j − marker.
    let x = "decoder.bert.encoder.layer.0.crossattention";
    let mut q = ed.get(&format!("{x}.self.query.weight"))?;
    let mut k = ed.get(&format!("{x}.self.key.weight"))?;
    let s = circuit.align_scale;
    for (f, &i) in sel.iter().enumerate() {
        let r = l.c + 2 * f;
        // Rotation by +ω: position i's pair becomes position i + 1's.
        q.set_rotation(r, col(f), -w[i], s);
        k.set(r, rel.start + 2 * f, s);
        k.set(r + 1, rel.start + 2 * f + 1, s);
    }
    ed.put(&format!("{x}.self.query.weight"), q)?;
    ed.put(&format!("{x}.self.key.weight"), k)?;
    Ok(())
}

/// Seed stream of the circuit's random codes and rotations.
const SALT_CIRCUIT: u64 = 31;
/// Seed stream of the shared pitch and pitch-class codes (apart, so that `--pitch-codes` leaves
/// every other part of the circuit as it is for the same seed).
const SALT_PITCH_CODES: u64 = 32;
/// Seed stream of the shared velocity codes (apart, for the same reason).
const SALT_VELOCITY_CODES: u64 = 33;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tokens::{ONSET_BASE, PIANO_BASE};
    use rand::SeedableRng;

    fn cos(a: &[f64], b: &[f64]) -> f64 {
        a.iter().zip(b).map(|(x, y)| x * y).sum()
    }

    /// Pitch-velocity id of velocity row `vel` and `pitch`.
    fn pv(vel: u32, pitch: u32) -> usize {
        (PIANO_BASE + vel * 128 + pitch) as usize
    }

    /// The mean cosine of `codes` over `pairs`.
    fn mean_cos(codes: &[Vec<f64>], pairs: impl Iterator<Item = (usize, usize)>) -> f64 {
        let cosines: Vec<f64> = pairs.map(|(a, b)| cos(&codes[a], &codes[b])).collect();
        cosines.iter().sum::<f64>() / cosines.len() as f64
    }

    /// Random unit codes for the whole vocabulary, before and after `shape`; checks that
    /// the shaped codes keep unit length and every other token's code is untouched.
    fn shaped(shape: impl Fn(&mut [Vec<f64>])) -> Vec<Vec<f64>> {
        let before = unit_codes(&mut ChaCha8Rng::seed_from_u64(5), 2306, 36);
        let mut codes = before.clone();
        shape(&mut codes);
        for id in [pv(3, 60), pv(9, 108)] {
            assert!((cos(&codes[id], &codes[id]) - 1.0).abs() < 1e-9);
        }
        for id in (0..PIANO_BASE).chain(ONSET_BASE..2306) {
            assert_eq!(codes[id as usize], before[id as usize]);
        }
        codes
    }

    #[test]
    fn pitch_codes_tie_velocities_of_a_pitch_and_octaves_of_a_class() {
        let codes = shaped(|c| share_pitch_codes(&mut ChaCha8Rng::seed_from_u64(6), c));
        let pitches = || 21..=96u32;
        let same_pitch = mean_cos(&codes, pitches().map(|p| (pv(1, p), pv(6, p))));
        let octave = mean_cos(&codes, pitches().map(|p| (pv(1, p), pv(6, p + 12))));
        let neighbour = mean_cos(&codes, pitches().map(|p| (pv(1, p), pv(6, p + 1))));
        // Expected: (0.5² + 0.45²) / 1.015 ≈ 0.45, 0.45² / 1.015 ≈ 0.20, 0.
        let (s, o, n) = (same_pitch, octave, neighbour);
        assert!((s - 0.45).abs() < 0.05, "same pitch {s}");
        assert!((o - 0.20).abs() < 0.05, "octave {o}");
        assert!(n.abs() < 0.05, "neighbour {n}");
    }

    #[test]
    fn velocity_codes_tie_the_pitches_of_a_velocity() {
        let codes = shaped(|c| {
            share_pitch_codes(&mut ChaCha8Rng::seed_from_u64(6), c);
            share_velocity_codes(&mut ChaCha8Rng::seed_from_u64(7), c);
        });
        let pitches = || 21..=96u32;
        let same_velocity = mean_cos(&codes, pitches().map(|p| (pv(4, p), pv(4, p + 1))));
        let same_pitch = mean_cos(&codes, pitches().map(|p| (pv(1, p), pv(6, p))));
        let neither = mean_cos(&codes, pitches().map(|p| (pv(1, p), pv(6, p + 1))));
        // Expected: 0.5² / 1.25 = 0.2; 0.45 / 1.25 ≈ 0.36; 0.
        let (v, s, n) = (same_velocity, same_pitch, neither);
        assert!((v - 0.20).abs() < 0.05, "same velocity {v}");
        assert!((s - 0.36).abs() < 0.05, "same pitch {s}");
        assert!(n.abs() < 0.05, "neither {n}");
    }
}
