//! The incremental decoder used for generation (spec §5.3): encoder once, cross-attention keys
//! and values once per segment, a preallocated self-attention KV cache, and one token per step
//! with plain CPU kernels (AVX2/FMA when available) and no allocation in the loop.
//!
//! It reads the model's own f32 tensors in place (read locks held for the segment), or, for its
//! matrices, the 8-bit copies that replace them (`model::int8`); no other copy of the weights.
//! CPU only; the full-sequence candle forward runs anywhere.

use candle_core::{CpuStorage, DType, Storage, Tensor};

use super::fast_enc::PackedEncoder;
use super::int8::{self, Int8Decoder, QMat};
use super::kernels::{has_avx2, has_avx512};
use super::seq2seq::ImprovNetModel;
use super::{ModelError, Result};
use half::bf16;

// ------------------------------------------------------------------------------------------------
// Kernels

/// `y = W x (+ b)` with the rows of `W` `ld` apart (`ld >= x.len()`).
pub fn matvec_ld(w: &[f32], ld: usize, b: Option<&[f32]>, x: &[f32], y: &mut [f32]) {
    let (n, m) = (x.len(), y.len());
    // SAFETY: one input of `n` values, one output of `m`.
    unsafe { matvec_rows(w, ld, b, x.as_ptr(), n, n, 1, y.as_mut_ptr(), m, m) }
}

/// `y[j * ys ..][..m] = W x[j * xs ..][..n] (+ b)` for `rows` inputs, each result bit-identical
/// to a [`matvec_ld`] of that input alone.
///
/// # Safety
/// `x` holds `(rows - 1) * xs + n` values and `y` `(rows - 1) * ys + m`, not overlapping `x`.
#[allow(clippy::too_many_arguments)]
unsafe fn matvec_rows(
    w: &[f32],
    ld: usize,
    b: Option<&[f32]>,
    x: *const f32,
    n: usize,
    xs: usize,
    rows: usize,
    y: *mut f32,
    ys: usize,
    m: usize,
) {
    assert!(ld >= n && (m == 0 || w.len() >= (m - 1) * ld + n));
    assert!(b.is_none_or(|b| b.len() >= m));
    #[cfg(target_arch = "x86_64")]
    if rows > 1 && has_avx512() {
        // SAFETY: the CPU supports AVX-512 F/DQ, AVX2 and FMA; bounds as below.
        unsafe { kernels::avx512::matvec_rows(w, ld, b, x, n, xs, rows, y, ys, m) };
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        // SAFETY: the CPU supports AVX2 and FMA; `w` and `b` bounds asserted above, `x` and `y`
        // the caller's.
        unsafe { kernels::avx::matvec_rows(w, ld, b, x, n, xs, rows, y, ys, m) };
        return;
    }
    for j in 0..rows {
        // SAFETY: the caller's bounds.
        let (xj, yj) = unsafe {
            (
                std::slice::from_raw_parts(x.add(j * xs), n),
                std::slice::from_raw_parts_mut(y.add(j * ys), m),
            )
        };
        for (o, yo) in yj.iter_mut().enumerate() {
            let row = &w[o * ld..o * ld + n];
            *yo = b.map_or(0.0, |b| b[o]) + row.iter().zip(xj).map(|(a, b)| a * b).sum::<f32>();
        }
    }
}

/// Output rows per team chunk: ~16k multiply-adds at least, a few chunks per thread for big
/// matrices, a multiple of 4 rows.
fn chunk_rows(team: &Team, m: usize, n: usize) -> usize {
    let want = (m * n / 16_384).clamp(1, 4 * team.threads());
    m.div_ceil(want).next_multiple_of(4)
}

/// A decoder matrix as generation reads it: the checkpoint's f32 rows, or their 8-bit copy.
#[derive(Clone, Copy)]
pub enum Mat<'a> {
    F32(&'a [f32]),
    I8(&'a QMat),
}

/// `K` products `ys[i] = W_i x + b_i` of the same `rows` inputs (`x` `[rows, n]`, `ys[i]`
/// `[rows, m]`; query, key and value are three) as one team job, chunks of output columns.
fn par_matvecs<const K: usize>(
    team: &mut Team,
    ws: [(Mat, &[f32]); K],
    x: &[f32],
    rows: usize,
    ys: [&mut [f32]; K],
) {
    let n = x.len() / rows;
    let m = ys[0].len() / rows;
    assert!(x.len() == rows * n);
    for ((w, b), y) in ws.iter().zip(&ys) {
        let fits = match w {
            Mat::F32(w) => w.len() >= m * n,
            Mat::I8(q) => q.m >= m && q.n == n,
        };
        assert!(y.len() == m * rows && fits && b.len() >= m);
    }
    let per_rows = chunk_rows(team, m, n);
    let per = m.div_ceil(per_rows);
    // The 8-bit products' inputs, rounded once for every chunk.
    let inputs = ws
        .iter()
        .any(|(w, _)| matches!(w, Mat::I8(_)))
        .then(|| int8::Inputs::new(x, n, rows));
    let yp = ys.map(|y| SendPtr(y.as_mut_ptr()));
    let xp = x.as_ptr() as usize;
    team.run(K * per, &|c| {
        #[allow(clippy::redundant_locals)] // capture the Sync wrapper, not its raw field
        let yp = yp;
        let (which, c) = (c / per, c % per);
        let r0 = c * per_rows;
        let r1 = (r0 + per_rows).min(m);
        let (w, b) = ws[which];
        let (x, y) = (xp as *const f32, yp[which].0);
        // SAFETY: chunks cover disjoint output columns `r0..r1` of `K` distinct outputs;
        // `x` is `rows * n` values.
        unsafe {
            match w {
                Mat::F32(w) => matvec_rows(
                    &w[r0 * n..],
                    n,
                    Some(&b[r0..r1]),
                    x,
                    n,
                    n,
                    rows,
                    y.add(r0),
                    m,
                    r1 - r0,
                ),
                Mat::I8(q) => {
                    let x = inputs.as_ref().expect("rounded for 8-bit weights");
                    q.matvec_rows(r0, r1, Some(&b[r0..r1]), x, y.add(r0), m)
                }
            }
        };
    });
}

/// `y = W x + b` for `rows` inputs (`x` `[rows, n]`, `y` `[rows, m]`) over the team.
fn par_matvec(team: &mut Team, w: Mat, b: &[f32], x: &[f32], rows: usize, y: &mut [f32]) {
    par_matvecs(team, [(w, b)], x, rows, [y]);
}

use super::fast_enc::with_f32;
use super::kernels;
use super::kernels::SendPtr;
use super::kernels::{gelu, layer_norm, softmax};
use super::team::Team;

/// One attention head over `n` keys: `out = V^T softmax(scale * K q)`, with K row-major
/// `[n, dh]` and V stored transposed, `[dh, ld]` (`ld >= n`).
#[allow(clippy::too_many_arguments)]
fn attend(
    q: &[f32],
    k: &[f32],
    vt: &[f32],
    ld: usize,
    n: usize,
    scale: f32,
    scores: &mut [f32],
    out: &mut [f32],
) {
    let dh = q.len();
    let scores = &mut scores[..n];
    matvec_ld(k, dh, None, q, scores);
    scaled_softmax(scores, scale);
    matvec_ld(vt, ld, None, scores, out);
}

/// Attention probabilities from raw scores: `softmax(scale * scores)`, in place.
fn scaled_softmax(scores: &mut [f32], scale: f32) {
    for s in scores.iter_mut() {
        *s *= scale;
    }
    softmax(scores);
}

// ------------------------------------------------------------------------------------------------
// Weights, read in place (or their 8-bit copies)

use super::seq2seq::{EMB_TENSORS as EMB, LAYER_TENSORS as PER_LAYER};

/// The decoder's tensors, in a fixed order, read-locked for the life of this value.
pub struct DecoderWeights<'m> {
    guards: Vec<(candle_core::StorageRef<'m>, usize, usize)>,
    int8: Option<&'m Int8Decoder>,
    pub layers: usize,
    pub hidden: usize,
    pub heads: usize,
    pub ffn: usize,
    pub vocab: usize,
    pub max_positions: usize,
    pub eps: f32,
}

impl<'m> DecoderWeights<'m> {
    pub fn lock(m: &'m ImprovNetModel) -> Result<Self> {
        let cfg = &m.config.decoder;
        let mut guards = Vec::new();
        for (t, _) in m.decoder.generation_tensors() {
            if t.dtype() != DType::F32 || !t.device().is_cpu() {
                return Err(ModelError::Input(
                    "incremental decoding needs f32 weights on the CPU".into(),
                ));
            }
            let (g, layout) = t.storage_and_layout();
            let Some((start, end)) = layout.contiguous_offsets() else {
                return Err(ModelError::Input("non-contiguous weight".into()));
            };
            if !matches!(&*g, Storage::Cpu(CpuStorage::F32(_))) {
                return Err(ModelError::Input("weights must be f32 on the CPU".into()));
            }
            guards.push((g, start, end));
        }
        Ok(Self {
            guards,
            int8: m.int8_decoder(),
            layers: cfg.num_hidden_layers,
            hidden: cfg.hidden_size,
            heads: cfg.num_attention_heads,
            ffn: cfg.intermediate_size,
            vocab: cfg.vocab_size,
            max_positions: cfg.max_position_embeddings,
            eps: cfg.layer_norm_eps as f32,
        })
    }

    #[inline]
    fn t(&self, i: usize) -> &[f32] {
        let (g, s, e) = &self.guards[i];
        match &**g {
            Storage::Cpu(CpuStorage::F32(v)) => &v[*s..*e],
            _ => unreachable!("checked in lock()"),
        }
    }

    #[inline]
    fn l(&self, layer: usize, k: usize) -> &[f32] {
        self.t(EMB + layer * PER_LAYER + k)
    }

    #[inline]
    fn head(&self, k: usize) -> &[f32] {
        self.t(EMB + self.layers * PER_LAYER + k)
    }

    /// Matrix `i` in the form generation multiplies by: 8-bit where the model has them.
    #[inline]
    fn mat(&self, i: usize) -> Mat<'_> {
        match self.int8.and_then(|q| q.get(i)) {
            Some(q) => Mat::I8(q),
            None => Mat::F32(self.t(i)),
        }
    }

    #[inline]
    fn layer_mat(&self, layer: usize, k: usize) -> Mat<'_> {
        self.mat(EMB + layer * PER_LAYER + k)
    }

    #[inline]
    fn head_mat(&self, k: usize) -> Mat<'_> {
        self.mat(EMB + self.layers * PER_LAYER + k)
    }
}

// ------------------------------------------------------------------------------------------------
// State

/// Per-segment decoding state: cross-attention K/V (shared), one self-attention cache per lane,
/// scratch buffers, and the thread team the per-token work is split over. Lanes are sequences
/// decoded side by side (the candidates of one segment): they share every weight read.
pub struct DecoderState {
    max_len: usize,
    enc_len: usize,
    hidden: usize,
    heads: usize,
    ffn_size: usize,
    lanes: Vec<Lane>,
    /// per layer: K `[H, enc_len, Dh]`, V transposed `[H, Dh, enc_len]`
    cross: Cross,
    /// Scratch for up to [`MAX_FEED`] tokens per lane fed together, `[rows, D]` (`ffn`
    /// `[rows, F]`).
    x: Vec<f32>,
    q: Vec<f32>,
    k: Vec<f32>,
    v: Vec<f32>,
    ctx: Vec<f32>,
    tmp: Vec<f32>,
    ffn: Vec<f32>,
    /// per token and head: `max(max_len, enc_len)` scores
    scores: Vec<f32>,
    /// per fed row: its lane and position
    at: Vec<(usize, usize)>,
    team: Team,
}

/// One sequence's self-attention cache.
struct Lane {
    pos: usize,
    /// Positions the cache holds.
    cap: usize,
    /// per layer: K `[H, cap, Dh]`, V transposed `[H, Dh, cap]`
    k: Vec<Vec<f32>>,
    v: Vec<Vec<f32>>,
}

impl Lane {
    fn new(layers: usize, d: usize, cap: usize) -> Self {
        Self {
            pos: 0,
            cap,
            k: vec![vec![0.0; cap * d]; layers],
            v: vec![vec![0.0; cap * d]; layers],
        }
    }
}

/// The most tokens one lane takes in a [`DecoderState::feed`] (a verified draft and the token
/// before it).
pub const MAX_FEED: usize = 8;

/// The most lanes one state decodes side by side (more candidates go in turns): each lane's
/// cache is `2 * layers * positions * D` floats, 25 MB for the released model.
pub const MAX_LANES: usize = 8;

impl DecoderState {
    /// Tokens fed so far in lane 0 (the position of the next one).
    pub fn position(&self) -> usize {
        self.lanes[0].pos
    }

    /// Tokens fed so far in `lane`.
    pub fn lane_position(&self, lane: usize) -> usize {
        self.lanes[lane].pos
    }

    /// Lanes ready to decode.
    pub fn lanes(&self) -> usize {
        self.lanes.len()
    }

    /// Makes at least `lanes` (<= [`MAX_LANES`]) lanes of at least `cap` positions, all at
    /// position 0. Allocates only when the state has fewer or shorter lanes than asked for.
    pub fn reset_lanes(&mut self, lanes: usize, cap: usize) -> Result<()> {
        if lanes == 0 || lanes > MAX_LANES {
            return Err(ModelError::Input(format!(
                "{lanes} lanes (1 to {MAX_LANES})"
            )));
        }
        let cap = cap.min(self.max_len);
        let (layers, d, f) = (self.lanes[0].k.len(), self.hidden, self.ffn_size);
        let per_row = self.heads * self.max_len.max(self.enc_len);
        for lane in &mut self.lanes {
            lane.pos = 0;
        }
        for lane in self.lanes.iter_mut().skip(1) {
            if lane.cap < cap {
                *lane = Lane::new(layers, d, cap);
            }
        }
        while self.lanes.len() < lanes {
            self.lanes.push(Lane::new(layers, d, cap));
        }
        let rows = MAX_FEED * self.lanes.len();
        for buf in [
            &mut self.x,
            &mut self.q,
            &mut self.k,
            &mut self.v,
            &mut self.ctx,
            &mut self.tmp,
        ] {
            buf.resize(rows * d, 0.0);
        }
        self.ffn.resize(rows * f, 0.0);
        self.scores.resize(rows * per_row, 0.0);
        self.at.reserve(rows);
        Ok(())
    }

    pub fn max_len(&self) -> usize {
        self.max_len
    }

    /// Prepares decoding of one segment from the encoder output `enc` `[1, L, D]` (or `[L, D]`)
    /// and its key mask (`true` = real token). Masked keys are dropped, which is exactly HF's
    /// additive-minimum mask.
    pub fn new(model: &ImprovNetModel, enc: &Tensor, mask: &[bool]) -> Result<Self> {
        let enc = if enc.rank() == 3 {
            enc.squeeze(0)?
        } else {
            enc.clone()
        };
        let (l, _) = enc.dims2()?;
        if mask.len() != l {
            return Err(ModelError::Input(format!(
                "mask has {} entries for {l} encoder positions",
                mask.len()
            )));
        }
        let keep: Vec<u32> = (0..l as u32).filter(|&i| mask[i as usize]).collect();
        let n = keep.len();
        let enc = enc.index_select(&Tensor::new(keep.as_slice(), enc.device())?, 0)?;
        let rows = enc.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
        Self::from_rows(model, &rows, n)
    }

    /// Prepares decoding of one segment from unpadded encoder rows `enc` `[n, D]` (row-major).
    pub fn from_rows(model: &ImprovNetModel, enc: &[f32], n: usize) -> Result<Self> {
        let cfg = &model.config.decoder;
        let d = cfg.hidden_size;
        let h = cfg.num_attention_heads;
        if enc.len() != n * d {
            return Err(ModelError::Input(format!(
                "encoder rows: {} values for {n} x {d}",
                enc.len()
            )));
        }
        let threads = kernels::threads();
        let (cross_k, cross_v) = match model.bf16_encoder() {
            Some(packed) => cross_bf16(packed, enc, n, d, h),
            None => cross_f32(model, enc, n, d, h, threads)?,
        };
        let cross = if model.int8_decoder_on() {
            let narrow = |v: Vec<Vec<f32>>| -> Vec<Vec<bf16>> {
                v.iter()
                    .map(|l| l.iter().map(|&x| bf16::from_f32(x)).collect())
                    .collect()
            };
            Cross::Bf16(narrow(cross_k), narrow(cross_v))
        } else {
            Cross::F32(cross_k, cross_v)
        };
        let max_len = cfg.max_position_embeddings;
        Ok(Self {
            max_len,
            enc_len: n,
            hidden: d,
            heads: h,
            ffn_size: cfg.intermediate_size,
            lanes: vec![Lane::new(cfg.num_hidden_layers, d, max_len)],
            cross,
            x: vec![0.0; MAX_FEED * d],
            q: vec![0.0; MAX_FEED * d],
            k: vec![0.0; MAX_FEED * d],
            v: vec![0.0; MAX_FEED * d],
            ctx: vec![0.0; MAX_FEED * d],
            tmp: vec![0.0; MAX_FEED * d],
            ffn: vec![0.0; MAX_FEED * cfg.intermediate_size],
            scores: vec![0.0; MAX_FEED * h * max_len.max(n)],
            at: Vec::with_capacity(MAX_FEED),
            team: Team::new(threads),
        })
    }

    /// Feeds `token` at the current position and writes the next-token logits (`vocab` values).
    pub fn step(&mut self, w: &DecoderWeights, token: u32, logits: &mut [f32]) -> Result<()> {
        self.feed(w, &[token], logits)
    }

    /// Goes back to `position` (<= the current one) in lane 0: the tokens fed after it are
    /// forgotten (a rejected draft). Their cache entries are overwritten before anything reads
    /// them.
    pub fn rewind(&mut self, position: usize) {
        self.rewind_lane(0, position);
    }

    /// [`rewind`](Self::rewind) for `lane`.
    pub fn rewind_lane(&mut self, lane: usize, position: usize) {
        let lane = &mut self.lanes[lane];
        lane.pos = lane.pos.min(position);
    }

    /// Feeds `tokens` (1..=[`MAX_FEED`]) at the next positions of lane 0 and writes, for each,
    /// the logits of the token after it (`tokens.len() * vocab` values). Each row is
    /// bit-identical to what feeding the tokens one [`step`](Self::step) at a time gives, for
    /// about the weight traffic of one step: this is how a draft is verified.
    pub fn feed(&mut self, w: &DecoderWeights, tokens: &[u32], logits: &mut [f32]) -> Result<()> {
        self.feed_lanes(w, &[(0, tokens)], logits)
    }

    /// [`feed`](Self::feed) for several lanes in one forward: `batch` lists `(lane, tokens)`
    /// (each lane once, 1..=[`MAX_FEED`] tokens), and `logits` gets their rows in that order.
    /// Every row is bit-identical to feeding its lane alone; the weights are read once for all.
    pub fn feed_lanes(
        &mut self,
        w: &DecoderWeights,
        batch: &[(usize, &[u32])],
        logits: &mut [f32],
    ) -> Result<()> {
        let d = w.hidden;
        let h = w.heads;
        let dh = d / h;
        self.at.clear();
        for &(lane, tokens) in batch {
            let Some(l) = self.lanes.get(lane) else {
                return Err(ModelError::Input(format!(
                    "lane {lane} of {}",
                    self.lanes.len()
                )));
            };
            let (pos, n) = (l.pos, tokens.len());
            if n == 0 || n > MAX_FEED || self.at.iter().any(|&(other, _)| other == lane) {
                return Err(ModelError::Input(format!(
                    "{n} tokens fed at once to lane {lane} (1 to {MAX_FEED}, each lane once)"
                )));
            }
            if pos + n > l.cap {
                return Err(ModelError::Input(format!(
                    "decoder position {} exceeds {} (max_position_embeddings {})",
                    pos + n - 1,
                    l.cap,
                    self.max_len
                )));
            }
            if let Some(&t) = tokens.iter().find(|&&t| t as usize >= w.vocab) {
                return Err(ModelError::Input(format!("token {t} >= vocab {}", w.vocab)));
            }
            self.at.extend((pos..pos + n).map(|p| (lane, p)));
        }
        let rows = self.at.len();
        if logits.len() != rows * w.vocab {
            return Err(ModelError::Input("logits buffer has the wrong size".into()));
        }
        let scale = 1.0 / (dh as f32).sqrt();
        let eps = w.eps;
        let f = w.ffn;
        let Self {
            lanes,
            at,
            cross,
            x,
            q,
            k,
            v,
            ctx,
            tmp,
            ffn,
            scores,
            team,
            max_len,
            enc_len,
            ..
        } = self;
        let n = *enc_len;
        let sl = (*max_len).max(n);
        let (x, q, k, v) = (
            &mut x[..rows * d],
            &mut q[..rows * d],
            &mut k[..rows * d],
            &mut v[..rows * d],
        );
        let (ctx, tmp, ffn) = (
            &mut ctx[..rows * d],
            &mut tmp[..rows * d],
            &mut ffn[..rows * f],
        );
        let ln_rows = |x: &mut [f32], g: &[f32], b: &[f32]| {
            x.chunks_exact_mut(d).for_each(|r| layer_norm(r, g, b, eps))
        };
        let add = |x: &mut [f32], y: &[f32]| x.iter_mut().zip(y).for_each(|(a, b)| *a += b);
        // Embeddings.
        let (we, pe, te) = (w.t(0), w.t(1), w.t(2));
        let tokens = batch.iter().flat_map(|(_, t)| t.iter());
        for ((&t, xr), &(_, p)) in tokens.zip(x.chunks_exact_mut(d)).zip(at.iter()) {
            let t = t as usize;
            for i in 0..d {
                xr[i] = we[t * d + i] + pe[p * d + i] + te[i];
            }
        }
        ln_rows(x, w.t(3), w.t(4));

        for li in 0..w.layers {
            // Causal self-attention with the cache: token j sees positions 0..=pos + j.
            par_matvecs(
                team,
                [
                    (w.layer_mat(li, 0), w.l(li, 1)),
                    (w.layer_mat(li, 2), w.l(li, 3)),
                    (w.layer_mat(li, 4), w.l(li, 5)),
                ],
                x,
                rows,
                [&mut q[..], &mut k[..], &mut v[..]],
            );
            for (j, &(lane, p)) in at.iter().enumerate() {
                let lane = &mut lanes[lane];
                let (ml, ck, cv) = (lane.cap, &mut lane.k[li], &mut lane.v[li]);
                let (kj, vj) = (&k[j * d..], &v[j * d..]);
                for hh in 0..h {
                    let off = (hh * ml + p) * dh;
                    ck[off..off + dh].copy_from_slice(&kj[hh * dh..hh * dh + dh]);
                    for i in 0..dh {
                        cv[(hh * dh + i) * ml + p] = vj[hh * dh + i];
                    }
                }
            }
            let (lanes_now, at_now) = (&*lanes, &*at);
            // One task per head, its rows in turn: the head's cache stays in cache.
            heads(team, rows, h, dh, sl, q, ctx, scores, &|hh, q, sc, out| {
                for (j, &(lane, p)) in at_now.iter().enumerate() {
                    let lane = &lanes_now[lane];
                    let (ml, ck, cv) = (lane.cap, &lane.k[li], &lane.v[li]);
                    let base = hh * ml * dh;
                    let seen = p + 1;
                    // SAFETY: row j's slices of this head's query and context (`d` apart).
                    let (qj, oj) = unsafe {
                        (
                            std::slice::from_raw_parts(q.add(j * d), dh),
                            std::slice::from_raw_parts_mut(out.add(j * d), dh),
                        )
                    };
                    attend(
                        qj,
                        &ck[base..base + seen * dh],
                        &cv[base..base + ml * dh],
                        ml,
                        seen,
                        scale,
                        sc,
                        oj,
                    );
                }
            });
            par_matvec(team, w.layer_mat(li, 6), w.l(li, 7), ctx, rows, tmp);
            add(x, tmp);
            ln_rows(x, w.l(li, 8), w.l(li, 9));

            // Cross-attention over the encoder output.
            par_matvec(team, w.layer_mat(li, 10), w.l(li, 11), x, rows, q);
            // Every row of a head against the head's keys and values at once: they are read
            // from memory once per forward, not once per token (what makes a draft cheap).
            let cross = &*cross;
            heads(team, rows, h, dh, sl, q, ctx, scores, &|hh, q, sc, out| {
                let base = hh * n * dh;
                let probs = |sc: &mut [f32]| {
                    for r in sc.chunks_exact_mut(sl).take(rows) {
                        scaled_softmax(&mut r[..n], scale);
                    }
                };
                // SAFETY: `q` and `out` hold `rows` head slices `d` apart, `sc` `rows` rows of
                // `sl >= n` scores; in f32 the products are `attend`'s, row by row, bit for bit.
                unsafe {
                    match cross {
                        Cross::F32(xk, xv) => {
                            let (k, vt) = (&xk[li][base..][..n * dh], &xv[li][base..][..n * dh]);
                            matvec_rows(k, dh, None, q, dh, d, rows, sc.as_mut_ptr(), sl, n);
                            probs(sc);
                            matvec_rows(vt, n, None, sc.as_ptr(), n, sl, rows, out, d, dh);
                        }
                        Cross::Bf16(xk, xv) => {
                            let (k, vt) = (&xk[li][base..][..n * dh], &xv[li][base..][..n * dh]);
                            int8::products(k, dh, None, None, q, d, rows, sc.as_mut_ptr(), sl);
                            probs(sc);
                            int8::products(vt, n, None, None, sc.as_ptr(), sl, rows, out, d);
                        }
                    }
                }
            });
            par_matvec(team, w.layer_mat(li, 12), w.l(li, 13), ctx, rows, tmp);
            add(x, tmp);
            ln_rows(x, w.l(li, 14), w.l(li, 15));

            // Feed-forward.
            par_matvec(team, w.layer_mat(li, 16), w.l(li, 17), x, rows, ffn);
            ffn.chunks_exact_mut(f).for_each(gelu);
            par_matvec(team, w.layer_mat(li, 18), w.l(li, 19), ffn, rows, tmp);
            add(x, tmp);
            ln_rows(x, w.l(li, 20), w.l(li, 21));
        }

        // LM head.
        par_matvec(team, w.head_mat(0), w.head(1), x, rows, tmp);
        tmp.chunks_exact_mut(d).for_each(gelu);
        ln_rows(tmp, w.head(2), w.head(3));
        par_matvec(team, w.head_mat(4), w.head(5), tmp, rows, logits);
        for &(lane, tokens) in batch {
            self.lanes[lane].pos += tokens.len();
        }
        Ok(())
    }
}

/// What [`heads`] runs per head: `(head, q, scores, ctx)`, where `q` and `ctx` point at the
/// head's slice of the first token row (rows are `d` apart) and `scores` is the head's own
/// `rows * sl` values.
type HeadFn<'a> = dyn Fn(usize, *const f32, &mut [f32], *mut f32) + Sync + 'a;

/// Runs `f` for every head over the team (`q` and `ctx` are `[rows, h * dh]`): each head owns
/// its `dh` columns of `ctx` and its scores.
#[allow(clippy::too_many_arguments)]
fn heads(
    team: &mut Team,
    rows: usize,
    h: usize,
    dh: usize,
    sl: usize,
    q: &[f32],
    ctx: &mut [f32],
    scores: &mut [f32],
    f: &HeadFn,
) {
    assert!(ctx.len() >= rows * h * dh && scores.len() >= rows * h * sl);
    assert!(q.len() >= rows * h * dh);
    let cp = SendPtr(ctx.as_mut_ptr());
    let sp = SendPtr(scores.as_mut_ptr());
    let qp = q.as_ptr() as usize;
    team.run(h, &|hh| {
        // Capture the Sync wrappers, not their raw fields.
        let (cp, sp) = (cp, sp);
        // SAFETY: each head owns its own `rows * sl` scores and its columns of `ctx`; the
        // pointers are the head's offset inside the first row.
        let (sc, qh, oh) = unsafe {
            (
                std::slice::from_raw_parts_mut(sp.0.add(hh * rows * sl), rows * sl),
                (qp as *const f32).add(hh * dh),
                cp.0.add(hh * dh),
            )
        };
        f(hh, qh, sc, oh);
    });
}

/// Per decoder layer: cross-attention keys `[H, n, Dh]`, and values transposed `[D, n]`.
type CrossKeysValues = (Vec<Vec<f32>>, Vec<Vec<f32>>);

/// The [`CrossKeysValues`] as decoding reads them: f32, or rounded to bf16 with the 8-bit
/// weights (every token reads all of them: 4 MB a layer for the released model's 1,000
/// encoder rows in f32).
enum Cross {
    F32(Vec<Vec<f32>>, Vec<Vec<f32>>),
    Bf16(Vec<Vec<bf16>>, Vec<Vec<bf16>>),
}

/// The [`CrossKeysValues`] of the encoder rows `enc` `[n, D]`, in f32.
fn cross_f32(
    model: &ImprovNetModel,
    enc: &[f32],
    n: usize,
    d: usize,
    h: usize,
    threads: usize,
) -> Result<CrossKeysValues> {
    let dh = d / h;
    let mut cross_k = Vec::new();
    let mut cross_v = Vec::new();
    let mut tmp = vec![0.0f32; n * d];
    for layer in &model.decoder.bert.layers {
        let ca = &layer
            .crossattention
            .as_ref()
            .expect("decoder has cross-attention")
            .self_attention;
        // K: [n, D] -> [H, n, Dh].
        with_f32(ca.key.bias().expect("bias"), |b| {
            kernels::fill_rows(&mut tmp, b);
            Ok(())
        })?;
        with_f32(ca.key.weight(), |w| {
            kernels::linear_acc(enc, n, w, d, &mut tmp, threads);
            Ok(())
        })?;
        let k = heads_major(&tmp, d, n, h, dh);
        // V transposed: [D, n] = Wv enc^T + bv, i.e. [H, Dh, n].
        let mut vt = vec![0.0f32; d * n];
        with_f32(ca.value.bias().expect("bias"), |b| {
            for (row, bv) in vt.chunks_exact_mut(n.max(1)).zip(b) {
                row.fill(*bv);
            }
            Ok(())
        })?;
        with_f32(ca.value.weight(), |w| {
            assert_eq!(w.len(), d * d);
            // SAFETY: Wv [D, D], enc [n, D], vt [D, n], strides within bounds.
            unsafe {
                kernels::gemm_raw(
                    d,
                    n,
                    d,
                    vt.as_mut_ptr(),
                    n as isize,
                    1,
                    true,
                    w.as_ptr(),
                    d as isize,
                    1,
                    enc.as_ptr(),
                    1,
                    d as isize,
                    1.0,
                    threads,
                )
            };
            Ok(())
        })?;
        cross_k.push(k);
        cross_v.push(vt);
    }
    Ok((cross_k, cross_v))
}

/// Keys `[H, n, Dh]` from the first `H * Dh` values of `n` rows `stride` apart.
fn heads_major(rows: &[f32], stride: usize, n: usize, h: usize, dh: usize) -> Vec<f32> {
    let mut k = vec![0.0f32; n * h * dh];
    for (j, row) in rows.chunks_exact(stride).take(n).enumerate() {
        for hh in 0..h {
            k[(hh * n + j) * dh..][..dh].copy_from_slice(&row[hh * dh..][..dh]);
        }
    }
    k
}

/// [`cross_f32`] with bf16 products ([`PackedEncoder::cross_keys_values`]).
fn cross_bf16(
    packed: &PackedEncoder,
    enc: &[f32],
    n: usize,
    d: usize,
    h: usize,
) -> CrossKeysValues {
    let dh = d / h;
    let mut cross_k = Vec::new();
    let mut cross_v = Vec::new();
    for layer in 0..packed.decoder_layers() {
        // [n, 2D] keys | values -> keys [H, n, Dh] and values transposed [D, n].
        let kv = packed.cross_keys_values(layer, enc, n);
        let k = heads_major(&kv, 2 * d, n, h, dh);
        let mut vt = vec![0.0f32; d * n];
        for (j, row) in kv.chunks_exact(2 * d).enumerate() {
            for (c, &v) in row[d..].iter().enumerate() {
                vt[c * n + j] = v;
            }
        }
        cross_k.push(k);
        cross_v.push(vt);
    }
    (cross_k, cross_v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{BertConfig, Config};
    use candle_core::Device;

    #[test]
    fn bf16_cross_keys_and_values_are_the_f32_ones_rounded() {
        // 3 heads of 16, 37 encoder rows (an odd tail of rows and of pairs).
        let cfg = Config::from_parts(
            BertConfig::sized(48, 1, 3, 64, 256),
            BertConfig::sized(48, 2, 3, 64, 256),
        );
        let mut m = ImprovNetModel::random(&cfg, 4, &Device::Cpu).unwrap();
        if !m.set_bf16_encoder(true).unwrap() {
            eprintln!("skipped: this CPU has no AVX-512 BF16");
            return;
        }
        let n = 37;
        let enc: Vec<f32> = (0..n * 48)
            .map(|i| ((i * 7919) % 201) as f32 / 100.0 - 1.0)
            .collect();
        let (k32, v32) = cross_f32(&m, &enc, n, 48, 3, 1).unwrap();
        let (k16, v16) = cross_bf16(m.bf16_encoder().unwrap(), &enc, n, 48, 3);
        assert_eq!(k16.len(), 2);
        for (a, b) in k32.iter().chain(&v32).zip(k16.iter().chain(&v16)) {
            let scale = a.iter().fold(0.0f32, |s, x| s.max(x.abs()));
            let worst = a
                .iter()
                .zip(b)
                .fold(0.0f32, |s, (x, y)| s.max((x - y).abs()));
            assert!(scale > 0.1, "degenerate test data");
            assert!(worst < 0.02 * scale, "worst {worst} of {scale}");
        }
    }

    #[test]
    fn int8_logits_are_near_f32_and_a_lean_model_refuses_what_it_cannot_do() {
        let cfg = Config::from_parts(
            BertConfig::sized(64, 1, 4, 128, 256),
            BertConfig::sized(64, 2, 4, 128, 256),
        );
        let f = ImprovNetModel::random(&cfg, 5, &Device::Cpu).unwrap();
        let mut q = ImprovNetModel::random(&cfg, 5, &Device::Cpu).unwrap();
        q.set_int8_decoder(true).unwrap();
        q.keep_generation_weights().unwrap();
        assert_eq!(q.num_parameters(), f.num_parameters());
        let enc: Vec<u32> = (0..90u32).map(|i| (i * 89 + 3) % 2300 + 1).collect();
        let tokens: Vec<u32> = (0..12u32).map(|i| (i * 131 + 7) % 2300 + 1).collect();
        let logits = |m: &ImprovNetModel| {
            let w = DecoderWeights::lock(m).unwrap();
            let mut state = m.start_segment(&enc).unwrap();
            let mut out = vec![0.0f32; tokens.len() * w.vocab];
            state
                .feed(&w, &tokens[..6], &mut out[..6 * w.vocab])
                .unwrap();
            state
                .feed(&w, &tokens[6..], &mut out[6 * w.vocab..])
                .unwrap();
            out
        };
        let (a, b) = (logits(&f), logits(&q));
        let scale = a.iter().fold(0.0f32, |s, x| s.max(x.abs()));
        let worst = a
            .iter()
            .zip(&b)
            .fold(0.0f32, |s, (x, y)| s.max((x - y).abs()));
        assert!(scale > 0.1, "degenerate logits");
        assert!(worst > 0.0, "the 8-bit weights were not used");
        assert!(worst < 0.02 * scale, "worst {worst} of {scale}");

        // What needs the freed f32 matrices says so instead of computing garbage.
        let ids = Tensor::new(&enc[..8], &Device::Cpu)
            .unwrap()
            .unsqueeze(0)
            .unwrap();
        let mask = ids.ones_like().unwrap();
        let err = q.forward(&ids, &mask, &ids).unwrap_err().to_string();
        assert!(err.contains("kept only generation's copies"), "{err}");
        assert!(q.set_int8_decoder(false).is_err());
        assert!(q
            .save(&std::env::temp_dir().join("improvnet-lean-model"))
            .is_err());
        assert!(f.forward(&ids, &mask, &ids).is_ok());
    }
}
