//! 8-bit decoder weights: every run of 32 weights of a matrix row as int8 numbers and one f32
//! scale (symmetric; llama.cpp's Q8_0 layout); and the same products over bf16 rows (the
//! cross-attention keys and values, which every token reads too).
//!
//! Why: decoding a token reads every decoder weight once, and for the released (base) model
//! that is 45.5 M weights a token: one byte a weight instead of four is most of its time. The
//! weights are rounded to 1/254 of the largest magnitude among their 32 (one scale per row
//! doubled the error on the shipped model, whose first layers have outlying weights); sums,
//! softmax and LayerNorm stay f32. The scales come from the f32 (or f16) checkpoint at load
//! time: no second file.
//!
//! Two ways to multiply, chosen once per process from the CPU. With AVX-512 VNNI the inputs are
//! rounded the same way, per 32 ([`Inputs`]), and bytes multiply bytes, 64 an instruction
//! (llama.cpp's Q8_0 by Q8_0). Elsewhere the kernels widen 16 (AVX-512) or 8 (AVX2) stored
//! weights to f32 per instruction and multiply-add them into f32 inputs. Either way each
//! result's additions are the same however many inputs go together, so verifying a draft of
//! several tokens gives every row's logits bit for bit as feeding its token alone (what keeps
//! greedy speculative decoding equal to plain).

use half::bf16;

/// Weights per int8 scale.
pub const GROUP: usize = 32;

/// A `[m, n]` matrix as int8 numbers with one scale per [`GROUP`] of a row:
/// `w[o][i] ≈ scale[o * ⌈n / GROUP⌉ + i / GROUP] * q[o * n + i]`.
#[derive(Debug, Clone)]
pub struct QMat {
    pub m: usize,
    pub n: usize,
    q: Vec<i8>,
    scale: Vec<f32>,
}

impl QMat {
    /// Rounds the row-major `[m, n]` matrix `w`: each group's largest magnitude maps to 127.
    pub fn quantize(w: &[f32], m: usize, n: usize) -> Self {
        assert_eq!(w.len(), m * n, "matrix of {m} x {n}");
        let groups = n.div_ceil(GROUP);
        let mut q = vec![0i8; m * n];
        let mut scale = vec![0.0f32; m * groups];
        for o in 0..m {
            for g in 0..groups {
                let span = o * n + g * GROUP..o * n + ((g + 1) * GROUP).min(n);
                let run = &w[span.clone()];
                let top = run.iter().fold(0.0f32, |a, v| a.max(v.abs()));
                if top > 0.0 && top.is_finite() {
                    scale[o * groups + g] = top / 127.0;
                    let inv = 127.0 / top;
                    for (d, v) in q[span].iter_mut().zip(run) {
                        *d = (v * inv).round().clamp(-127.0, 127.0) as i8;
                    }
                }
            }
        }
        Self { m, n, q, scale }
    }

    /// The value the kernels multiply by at row `o`, column `i`.
    pub fn get(&self, o: usize, i: usize) -> f32 {
        self.scale[o * self.n.div_ceil(GROUP) + i / GROUP] * self.q[o * self.n + i] as f32
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.q.len() + 4 * self.scale.len()
    }

    /// `y[j * ys + o] = b[o] + W[r0 + o] . x_j` for output rows `r0..r1` and every input
    /// `x_j` of `x` (see [`Inputs`]).
    ///
    /// # Safety
    /// `y` holds `(x.rows - 1) * ys + (r1 - r0)` values, not overlapping the inputs.
    pub unsafe fn matvec_rows(
        &self,
        r0: usize,
        r1: usize,
        b: Option<&[f32]>,
        x: &Inputs,
        y: *mut f32,
        ys: usize,
    ) {
        assert!(r0 <= r1 && r1 <= self.m && x.n == self.n);
        let (n, groups) = (self.n, self.n.div_ceil(GROUP));
        let (q, scale) = (
            &self.q[r0 * n..r1 * n],
            &self.scale[r0 * groups..r1 * groups],
        );
        #[cfg(target_arch = "x86_64")]
        if let Some(r) = &x.rounded {
            // SAFETY: `Rounded` exists only where AVX-512 VNNI does; `r` holds `x.rows`
            // inputs of `n`; `y` the caller's.
            unsafe { vnni::products(q, n, scale, b, r, x.rows, y, ys) };
            return;
        }
        // SAFETY: `x.x` holds `x.rows * n` values (`Inputs::new`); `y` the caller's.
        unsafe { products(q, n, Some(scale), b, x.x.as_ptr(), n, x.rows, y, ys) }
    }
}

/// The inputs of 8-bit products, `rows` rows of `n` values. On CPUs with AVX-512 VNNI each run
/// of 32 values is also rounded to int8 with one f32 scale: the products then multiply bytes by
/// bytes, summing exactly in int32 within a group, instead of widening every weight to f32,
/// which left them bound by arithmetic rather than by memory (one core: 11.5 GB/s of weights
/// against 32 GB/s of plain reading). The rounding moves each value by at most 1/254 of its
/// group's largest magnitude, as the weights'. Rounded once per product, before the threads
/// share out its output rows.
pub struct Inputs<'a> {
    x: &'a [f32],
    n: usize,
    rows: usize,
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    rounded: Option<Rounded>,
}

impl<'a> Inputs<'a> {
    /// `x` as `rows` inputs of `n` values each.
    pub fn new(x: &'a [f32], n: usize, rows: usize) -> Self {
        assert_eq!(x.len(), n * rows, "{rows} inputs of {n}");
        #[cfg(target_arch = "x86_64")]
        let rounded = super::kernels::has_avx512_vnni().then(|| Rounded::new(x, n, rows));
        #[cfg(not(target_arch = "x86_64"))]
        let rounded = None;
        Self {
            x,
            n,
            rows,
            rounded,
        }
    }
}

/// Inputs rounded for `vpdpbusd`, which multiplies unsigned by signed bytes: each value as
/// `q + 128` (`q` in -127..=127), rows padded to whole 64-byte chunks; and each chunk's two
/// group scales spread over the 8 int32 lanes each group's sums land in.
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
#[derive(Debug)]
struct Rounded {
    u: Vec<u8>,
    /// Per row, per chunk of 64 values: 16 scales (group `2c` in lanes 0..8, `2c + 1` in 8..16).
    s: Vec<f32>,
    chunks: usize,
}

impl Rounded {
    #[cfg(target_arch = "x86_64")]
    fn new(x: &[f32], n: usize, rows: usize) -> Self {
        let chunks = n.div_ceil(2 * GROUP);
        let mut u = vec![128u8; rows * chunks * 2 * GROUP];
        let mut s = vec![0.0f32; rows * chunks * 16];
        for j in 0..rows {
            let (u, s) = (
                &mut u[j * chunks * 2 * GROUP..][..chunks * 2 * GROUP],
                &mut s[j * chunks * 16..][..chunks * 16],
            );
            // SAFETY: `Rounded` is made only where AVX-512 VNNI (and BW) is.
            unsafe { vnni::round(&x[j * n..][..n], u, s) };
        }
        Self { u, s, chunks }
    }
}

/// A decoder's matrices rounded to 8 bits, by the index of its generation tensors
/// (`BertLmHeadModel::generation_tensors`): the self- and cross-attention projections, the
/// feed-forward layers and the LM head. Embeddings (a row gathered per token), biases and
/// LayerNorms stay f32.
#[derive(Debug, Clone)]
pub struct Int8Decoder {
    mats: Vec<Option<QMat>>,
    /// The f32 matrices rounded here: generation no longer reads them.
    replaces: Vec<candle_core::TensorId>,
}

impl Int8Decoder {
    /// Rounds the tensors marked as matrices (2-D, f32 or any float type).
    pub fn new(tensors: &[(&candle_core::Tensor, bool)]) -> candle_core::Result<Self> {
        let mut mats = Vec::with_capacity(tensors.len());
        let mut replaces = Vec::new();
        for &(t, is_mat) in tensors {
            mats.push(if is_mat {
                replaces.push(t.id());
                let (rows, cols) = t.dims2()?;
                let w = t
                    .to_dtype(candle_core::DType::F32)?
                    .flatten_all()?
                    .to_vec1::<f32>()?;
                Some(QMat::quantize(&w, rows, cols))
            } else {
                None
            });
        }
        Ok(Self { mats, replaces })
    }

    /// The f32 matrices these copies replace.
    pub fn replaces(&self) -> &[candle_core::TensorId] {
        &self.replaces
    }

    /// The 8-bit copy of tensor `i`, if it is a matrix.
    pub fn get(&self, i: usize) -> Option<&QMat> {
        self.mats.get(i).and_then(Option::as_ref)
    }

    /// Bytes of 8-bit weights and scales.
    pub fn bytes(&self) -> usize {
        self.mats.iter().flatten().map(QMat::bytes).sum()
    }
}

/// A number stored narrower than f32, widened to f32 as it is loaded.
pub trait Narrow: Copy + Send + Sync + 'static {
    fn to_f32(self) -> f32;
    /// 16 values from `p`, widened.
    ///
    /// # Safety
    /// AVX-512 F; `p` points at 16 values.
    #[cfg(target_arch = "x86_64")]
    unsafe fn widen16(p: *const Self) -> std::arch::x86_64::__m512;
    /// 8 values from `p`, widened.
    ///
    /// # Safety
    /// AVX2; `p` points at 8 values.
    #[cfg(target_arch = "x86_64")]
    unsafe fn widen8(p: *const Self) -> std::arch::x86_64::__m256;
}

impl Narrow for i8 {
    #[inline]
    fn to_f32(self) -> f32 {
        self as f32
    }
    #[cfg(target_arch = "x86_64")]
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn widen16(p: *const Self) -> std::arch::x86_64::__m512 {
        use std::arch::x86_64::*;
        _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(p as *const __m128i)))
    }
    #[cfg(target_arch = "x86_64")]
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn widen8(p: *const Self) -> std::arch::x86_64::__m256 {
        use std::arch::x86_64::*;
        _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(p as *const __m128i)))
    }
}

/// bf16 is the top half of an f32: widening is a 16-bit shift.
impl Narrow for bf16 {
    #[inline]
    fn to_f32(self) -> f32 {
        bf16::to_f32(self)
    }
    #[cfg(target_arch = "x86_64")]
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn widen16(p: *const Self) -> std::arch::x86_64::__m512 {
        use std::arch::x86_64::*;
        let w = _mm512_cvtepu16_epi32(_mm256_loadu_si256(p as *const __m256i));
        _mm512_castsi512_ps(_mm512_slli_epi32::<16>(w))
    }
    #[cfg(target_arch = "x86_64")]
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn widen8(p: *const Self) -> std::arch::x86_64::__m256 {
        use std::arch::x86_64::*;
        let w = _mm256_cvtepu16_epi32(_mm_loadu_si128(p as *const __m128i));
        _mm256_castsi256_ps(_mm256_slli_epi32::<16>(w))
    }
}

/// `y[j * ys + o] = b[o] + Σ_i scale[o, i / GROUP] * w[o, i] * x[j * xs + i]` for the
/// `m = w.len() / n` rows of `w` and `rows` inputs (`scale` `[m, ⌈n / GROUP⌉]`; no bias: 0; no
/// scale: 1). Each result is summed in the same order whatever `rows` is.
///
/// # Safety
/// `x` holds `(rows - 1) * xs + n` values and `y` `(rows - 1) * ys + m`, not overlapping `x`.
#[allow(clippy::too_many_arguments)]
pub unsafe fn products<T: Narrow>(
    w: &[T],
    n: usize,
    scale: Option<&[f32]>,
    b: Option<&[f32]>,
    x: *const f32,
    xs: usize,
    rows: usize,
    y: *mut f32,
    ys: usize,
) {
    let m = w.len() / n.max(1);
    assert!(w.len() == m * n);
    let groups = n.div_ceil(GROUP);
    assert!(b.is_none_or(|b| b.len() >= m) && scale.is_none_or(|s| s.len() >= m * groups));
    #[cfg(target_arch = "x86_64")]
    if super::kernels::has_avx512() {
        // SAFETY: AVX-512 F is present; `w` holds `m` rows, `x`/`y` the caller's.
        unsafe { avx512::products(w, n, scale, b, x, xs, rows, y, ys) };
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if super::kernels::has_avx2() {
        // SAFETY: AVX2 and FMA are present; bounds as above.
        unsafe { avx2::products(w, n, scale, b, x, xs, rows, y, ys) };
        return;
    }
    scalar(w, n, scale, b, x, xs, rows, y, ys)
}

/// [`products`] without SIMD.
///
/// # Safety
/// As [`products`].
#[allow(clippy::too_many_arguments)]
unsafe fn scalar<T: Narrow>(
    w: &[T],
    n: usize,
    scale: Option<&[f32]>,
    b: Option<&[f32]>,
    x: *const f32,
    xs: usize,
    rows: usize,
    y: *mut f32,
    ys: usize,
) {
    let m = w.len() / n.max(1);
    for j in 0..rows {
        // SAFETY: the caller's bounds.
        let (xj, yj) = unsafe {
            (
                std::slice::from_raw_parts(x.add(j * xs), n),
                std::slice::from_raw_parts_mut(y.add(j * ys), m),
            )
        };
        let groups = n.div_ceil(GROUP);
        for (o, yo) in yj.iter_mut().enumerate() {
            let at =
                |i: usize| scale.map_or(1.0, |s| s[o * groups + i / GROUP]) * w[o * n + i].to_f32();
            let dot: f32 = xj.iter().enumerate().map(|(i, x)| at(i) * x).sum();
            *yo = b.map_or(0.0, |b| b[o]) + dot;
        }
    }
}

/// Runs `tile::<R, P>` over every group of up to 4 rows of `w` `[m, n]` and `pmax` inputs and
/// writes each (row `o`, input `j`) sum through `emit`. Shared by both kernels.
macro_rules! tiles {
    ($tile:ident, $w:expr, $n:expr, $scale:expr, $x:expr, $xs:expr, $rows:expr, $pmax:expr, $emit:expr) => {{
        let (w, n, x, xs, rows) = ($w, $n, $x, $xs, $rows);
        let m = w.len() / n.max(1);
        // Unscaled rows read the one 1.0 over and over (row and group strides 0).
        static ONE: f32 = 1.0;
        let (sc, rs, gs) = match $scale {
            Some(s) => (s.as_ptr(), n.div_ceil(GROUP), 1),
            None => (&ONE as *const f32, 0, 0),
        };
        let mut o = 0;
        while o < m {
            let r = if m - o >= 4 { 4 } else { 1 };
            let mut j = 0;
            while j < rows {
                let p = (rows - j).min($pmax);
                let mut s = [[0.0f32; 4]; 4];
                let (wo, xj) = (w.as_ptr().add(o * n), x.add(j * xs));
                let g = Groups {
                    at: sc.add(o * rs),
                    row: rs,
                    step: gs,
                };
                match (r, p) {
                    (4, 1) => $tile::<T, 4, 1>(wo, n, g, xj, xs, &mut s),
                    (4, 2) => $tile::<T, 4, 2>(wo, n, g, xj, xs, &mut s),
                    (4, 3) => $tile::<T, 4, 3>(wo, n, g, xj, xs, &mut s),
                    (4, _) => $tile::<T, 4, 4>(wo, n, g, xj, xs, &mut s),
                    (_, 1) => $tile::<T, 1, 1>(wo, n, g, xj, xs, &mut s),
                    (_, 2) => $tile::<T, 1, 2>(wo, n, g, xj, xs, &mut s),
                    (_, 3) => $tile::<T, 1, 3>(wo, n, g, xj, xs, &mut s),
                    (_, _) => $tile::<T, 1, 4>(wo, n, g, xj, xs, &mut s),
                }
                for (k, sk) in s.iter().take(r).enumerate() {
                    for (pp, v) in sk.iter().take(p).enumerate() {
                        $emit(o + k, j + pp, *v);
                    }
                }
                j += p;
            }
            o += r;
        }
    }};
}

/// Writes `b[o] + v` to input `j`'s output `o`.
macro_rules! emitter {
    ($y:expr, $ys:expr, $b:expr) => {{
        let (y, ys, b) = ($y, $ys, $b);
        move |o: usize, j: usize, v: f32| {
            *y.add(j * ys + o) = b.map_or(0.0, |b: &[f32]| *b.get_unchecked(o)) + v;
        }
    }};
}

/// Where a tile's scales are: row `k`'s group `g` at `at + k * row + g * step`.
#[derive(Clone, Copy)]
struct Groups {
    at: *const f32,
    row: usize,
    step: usize,
}

impl Groups {
    /// The scale of row `k`, column `i`.
    ///
    /// # Safety
    /// Inside the scales the tile was given.
    #[inline(always)]
    unsafe fn of(self, k: usize, i: usize) -> f32 {
        *self.at.add(k * self.row + i / GROUP * self.step)
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::{Groups, Narrow, GROUP};
    use std::arch::x86_64::*;

    /// `s[k][p] = w[k, :] . x_p` (unscaled) for `R` rows `n` apart and `P` inputs `xs` apart.
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn tile<T: Narrow, const R: usize, const P: usize>(
        w: *const T,
        n: usize,
        g: Groups,
        x: *const f32,
        xs: usize,
        s: &mut [[f32; 4]; 4],
    ) {
        let n16 = n / 16 * 16;
        let mut acc = [[_mm512_setzero_ps(); P]; R];
        let mut i = 0;
        while i < n16 {
            let mut xv = [_mm512_setzero_ps(); P];
            for (p, v) in xv.iter_mut().enumerate() {
                *v = _mm512_loadu_ps(x.add(p * xs + i));
            }
            for (k, acc) in acc.iter_mut().enumerate() {
                let wv = _mm512_mul_ps(T::widen16(w.add(k * n + i)), _mm512_set1_ps(g.of(k, i)));
                for (a, v) in acc.iter_mut().zip(&xv) {
                    *a = _mm512_fmadd_ps(wv, *v, *a);
                }
            }
            i += 16;
        }
        for (k, acc) in acc.iter().enumerate() {
            for (p, a) in acc.iter().enumerate() {
                let mut v = _mm512_reduce_add_ps(*a);
                for i in n16..n {
                    v += g.of(k, i) * (*w.add(k * n + i)).to_f32() * *x.add(p * xs + i);
                }
                s[k][p] = v;
            }
        }
    }

    /// [`products`](super::products) with AVX-512.
    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx512f")]
    pub unsafe fn products<T: Narrow>(
        w: &[T],
        n: usize,
        scale: Option<&[f32]>,
        b: Option<&[f32]>,
        x: *const f32,
        xs: usize,
        rows: usize,
        y: *mut f32,
        ys: usize,
    ) {
        let emit = emitter!(y, ys, b);
        tiles!(tile, w, n, scale, x, xs, rows, 4, emit);
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::super::kernels::avx::hsum;
    use super::{Groups, Narrow, GROUP};
    use std::arch::x86_64::*;

    /// The AVX2 twin of the AVX-512 tile: 8 values a step.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn tile<T: Narrow, const R: usize, const P: usize>(
        w: *const T,
        n: usize,
        g: Groups,
        x: *const f32,
        xs: usize,
        s: &mut [[f32; 4]; 4],
    ) {
        let n8 = n / 8 * 8;
        let mut acc = [[_mm256_setzero_ps(); P]; R];
        let mut i = 0;
        while i < n8 {
            let mut xv = [_mm256_setzero_ps(); P];
            for (p, v) in xv.iter_mut().enumerate() {
                *v = _mm256_loadu_ps(x.add(p * xs + i));
            }
            for (k, acc) in acc.iter_mut().enumerate() {
                let wv = _mm256_mul_ps(T::widen8(w.add(k * n + i)), _mm256_set1_ps(g.of(k, i)));
                for (a, v) in acc.iter_mut().zip(&xv) {
                    *a = _mm256_fmadd_ps(wv, *v, *a);
                }
            }
            i += 8;
        }
        for (k, acc) in acc.iter().enumerate() {
            for (p, a) in acc.iter().enumerate() {
                let mut v = hsum(*a);
                for i in n8..n {
                    v += g.of(k, i) * (*w.add(k * n + i)).to_f32() * *x.add(p * xs + i);
                }
                s[k][p] = v;
            }
        }
    }

    /// [`products`](super::products) with AVX2.
    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn products<T: Narrow>(
        w: &[T],
        n: usize,
        scale: Option<&[f32]>,
        b: Option<&[f32]>,
        x: *const f32,
        xs: usize,
        rows: usize,
        y: *mut f32,
        ys: usize,
    ) {
        let emit = emitter!(y, ys, b);
        // Two inputs at a time: 16 registers hold 4 x 2 sums, the inputs and a weight row.
        tiles!(tile, w, n, scale, x, xs, rows, 2, emit);
    }
}

/// The products of [`QMat`] by [`Rounded`] inputs with AVX-512 VNNI.
///
/// # Safety
/// Every function here needs AVX-512 F, BW and VNNI (see `kernels::has_avx512_vnni`).
#[cfg(target_arch = "x86_64")]
mod vnni {
    use super::{Rounded, GROUP};
    use std::arch::x86_64::*;

    /// Rounds one input row: `u[i] = round(x[i] / scale_g) + 128`, `s` the chunks' lane scales.
    #[target_feature(enable = "avx512f,avx512bw")]
    pub unsafe fn round(x: &[f32], u: &mut [u8], s: &mut [f32]) {
        for (g, run) in x.chunks(GROUP).enumerate() {
            // Up to 32 values in two registers; absent ones are zero.
            let len = run.len();
            let m0 = if len >= 16 {
                0xffff
            } else {
                (1u32 << len) as u16 - 1
            };
            let m1 = if len >= 32 {
                0xffff
            } else if len > 16 {
                (1u32 << (len - 16)) as u16 - 1
            } else {
                0
            };
            let v0 = _mm512_maskz_loadu_ps(m0, run.as_ptr());
            let v1 = _mm512_maskz_loadu_ps(m1, run.as_ptr().add(16.min(len)));
            let top = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(v0), _mm512_abs_ps(v1)));
            // A NaN or infinity anywhere makes the group's sums NaN, as in f32.
            let finite = run.iter().all(|v| v.is_finite());
            let scale = if finite { top / 127.0 } else { f32::NAN };
            let lanes = g / 2 * 16 + g % 2 * 8;
            s[lanes..lanes + 8].fill(scale);
            if top > 0.0 && finite {
                let inv = _mm512_set1_ps(127.0 / top);
                let off = _mm512_set1_epi32(128);
                // Round to nearest (even); |v * inv| <= 127 so no clamp is needed.
                let q0 = _mm512_add_epi32(_mm512_cvtps_epi32(_mm512_mul_ps(v0, inv)), off);
                let q1 = _mm512_add_epi32(_mm512_cvtps_epi32(_mm512_mul_ps(v1, inv)), off);
                let d = u.as_mut_ptr().add(g * GROUP);
                _mm_storeu_si128(d as *mut __m128i, _mm512_cvtepi32_epi8(q0));
                _mm_storeu_si128(d.add(16) as *mut __m128i, _mm512_cvtepi32_epi8(q1));
            }
        }
    }

    /// `s[k][p] = Σ_g scale_w[k, g] * scale_x[p, g] * Σ_{i in g} w[k, i] * q_p[i]` for `R` rows
    /// `n` apart (their group scales `groups` apart) and `P` inputs.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    unsafe fn tile<const R: usize, const P: usize>(
        w: *const i8,
        n: usize,
        sw: *const f32,
        groups: usize,
        x: &Rounded,
        p0: usize,
        s: &mut [[f32; 4]; 4],
    ) {
        let stride = x.chunks * 2 * GROUP;
        let mut acc = [[_mm512_setzero_ps(); P]; R];
        // 0x80 in every byte: what the +128 of every input adds, per weight.
        let bias = _mm512_set1_epi8(-128);
        // Group 2c's scale to lanes 0..8, group 2c + 1's to 8..16.
        let spread = _mm512_set_epi32(1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0);
        for c in 0..x.chunks {
            let left = n - c * 2 * GROUP;
            // The last chunk may hold one group, and part of one.
            let both = c * 2 + 1 < groups;
            let mut xu = [_mm512_setzero_si512(); P];
            let mut xs = [_mm512_setzero_ps(); P];
            for p in 0..P {
                xu[p] =
                    _mm512_loadu_si512(x.u.as_ptr().add((p0 + p) * stride + c * 64) as *const _);
                xs[p] = _mm512_loadu_ps(x.s.as_ptr().add(((p0 + p) * x.chunks + c) * 16));
            }
            for (k, acc) in acc.iter_mut().enumerate() {
                // Masked loads are slow on some CPUs (Zen 5): only the last chunk's tail.
                let wv = if left >= 64 {
                    _mm512_loadu_si512(w.add(k * n + c * 64) as *const _)
                } else {
                    _mm512_maskz_loadu_epi8((1u64 << left) - 1, w.add(k * n + c * 64))
                };
                // Σ 128 * w per lane, taken off every input's sums.
                let extra = _mm512_dpbusd_epi32(_mm512_setzero_si512(), bias, wv);
                let start = _mm512_sub_epi32(_mm512_setzero_si512(), extra);
                let pair = sw.add(k * groups + c * 2);
                let two = if both {
                    _mm512_castpd_ps(_mm512_castpd128_pd512(_mm_load_sd(pair as *const f64)))
                } else {
                    _mm512_castps128_ps512(_mm_load_ss(pair))
                };
                let swv = _mm512_permutexvar_ps(spread, two);
                for (a, (u, sx)) in acc.iter_mut().zip(xu.iter().zip(&xs)) {
                    let dot = _mm512_dpbusd_epi32(start, *u, wv);
                    *a = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), _mm512_mul_ps(swv, *sx), *a);
                }
            }
        }
        for (k, acc) in acc.iter().enumerate() {
            for (p, a) in acc.iter().enumerate() {
                s[k][p] = _mm512_reduce_add_ps(*a);
            }
        }
    }

    /// `y[j * ys + o] = b[o] + W[o] . x_j` for the `w.len() / n` rows of `w` and the `rows`
    /// rounded inputs.
    ///
    /// # Safety
    /// `y` holds `(rows - 1) * ys + m` values; `x` holds `rows` inputs of `n`.
    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    pub unsafe fn products(
        w: &[i8],
        n: usize,
        scale: &[f32],
        b: Option<&[f32]>,
        x: &Rounded,
        rows: usize,
        y: *mut f32,
        ys: usize,
    ) {
        let m = w.len() / n.max(1);
        let groups = n.div_ceil(GROUP);
        assert!(w.len() == m * n && scale.len() >= m * groups && x.chunks == n.div_ceil(64));
        assert!(x.u.len() >= rows * x.chunks * 64 && b.is_none_or(|b| b.len() >= m));
        let emit = emitter!(y, ys, b);
        let mut o = 0;
        while o < m {
            let r = if m - o >= 4 { 4 } else { 1 };
            let (wo, so) = (w.as_ptr().add(o * n), scale.as_ptr().add(o * groups));
            let mut j = 0;
            while j < rows {
                let p = (rows - j).min(4);
                let mut s = [[0.0f32; 4]; 4];
                match (r, p) {
                    (4, 1) => tile::<4, 1>(wo, n, so, groups, x, j, &mut s),
                    (4, 2) => tile::<4, 2>(wo, n, so, groups, x, j, &mut s),
                    (4, 3) => tile::<4, 3>(wo, n, so, groups, x, j, &mut s),
                    (4, _) => tile::<4, 4>(wo, n, so, groups, x, j, &mut s),
                    (_, 1) => tile::<1, 1>(wo, n, so, groups, x, j, &mut s),
                    (_, 2) => tile::<1, 2>(wo, n, so, groups, x, j, &mut s),
                    (_, 3) => tile::<1, 3>(wo, n, so, groups, x, j, &mut s),
                    (_, _) => tile::<1, 4>(wo, n, so, groups, x, j, &mut s),
                }
                for (k, sk) in s.iter().take(r).enumerate() {
                    for (pp, v) in sk.iter().take(p).enumerate() {
                        emit(o + k, j + pp, *v);
                    }
                }
                j += p;
            }
            o += r;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(len: usize, seed: usize) -> Vec<f32> {
        (0..len)
            .map(|i| (((i + seed) * 7919 % 2003) as f32 / 1001.0 - 1.0) * 0.05)
            .collect()
    }

    #[test]
    fn rounding_is_within_half_a_step_per_group() {
        let (m, n) = (7, 77); // groups of 32, 32 and 13
        let mut w = data(m * n, 3);
        w[5 * n..6 * n].fill(0.0); // an all-zero row keeps scale 0
        w[2 * n + 40] = 3.0; // an outlier widens its group's steps only
        let q = QMat::quantize(&w, m, n);
        for o in 0..m {
            for g in 0..n.div_ceil(GROUP) {
                let span = g * GROUP..((g + 1) * GROUP).min(n);
                let top = span.clone().fold(0.0f32, |a, i| a.max(w[o * n + i].abs()));
                for i in span.clone() {
                    let err = (q.get(o, i) - w[o * n + i]).abs();
                    assert!(err <= top / 254.0 * 1.0001, "row {o} col {i}: {err}");
                }
                // The largest magnitude is exact (it maps to ±127).
                if top > 0.0 {
                    let i = span.clone().find(|&i| w[o * n + i].abs() == top).unwrap();
                    assert!((q.get(o, i) - w[o * n + i]).abs() <= top * 1e-6);
                }
            }
        }
        let fine = (0..n).filter(|&i| !(32..64).contains(&i));
        assert!(fine
            .map(|i| (q.get(2, i) - w[2 * n + i]).abs())
            .all(|e| e < 0.05 / 254.0 * 1.01));
        assert_eq!(q.bytes(), m * n + 4 * m * 3);
    }

    type Kernel<T> = unsafe fn(
        &[T],
        usize,
        Option<&[f32]>,
        Option<&[f32]>,
        *const f32,
        usize,
        usize,
        *mut f32,
        usize,
    );

    /// Every kernel this CPU runs, by name.
    fn kernels<T: Narrow>() -> Vec<(&'static str, Kernel<T>)> {
        let mut k: Vec<(&str, Kernel<T>)> = vec![("scalar", scalar::<T> as Kernel<T>)];
        #[cfg(target_arch = "x86_64")]
        {
            if crate::model::kernels::has_avx2() {
                k.push(("avx2", avx2::products::<T> as Kernel<T>));
            }
            if crate::model::kernels::has_avx512() {
                k.push(("avx512", avx512::products::<T> as Kernel<T>));
            }
        }
        k
    }

    /// Each kernel against the stored matrix in f64, and each input's row alone bit for bit
    /// as in the batch (what greedy drafting relies on).
    fn check<T: Narrow>(w: &[T], n: usize, scale: Option<&[f32]>) {
        let m = w.len() / n;
        let bias = data(m, 9);
        let rows = 7;
        let xs = n + 3;
        let x = data(rows * xs, 5);
        let ys = m + 2;
        for (name, kernel) in kernels::<T>() {
            let mut all = vec![0.0f32; rows * ys];
            // SAFETY: `x` holds `rows * xs >= (rows - 1) * xs + n` values, `all` `rows * ys`.
            unsafe {
                kernel(
                    w,
                    n,
                    scale,
                    Some(&bias),
                    x.as_ptr(),
                    xs,
                    rows,
                    all.as_mut_ptr(),
                    ys,
                )
            };
            for j in 0..rows {
                let xj = &x[j * xs..][..n];
                let mut one = vec![0.0f32; m];
                unsafe {
                    kernel(
                        w,
                        n,
                        scale,
                        Some(&bias),
                        xj.as_ptr(),
                        n,
                        1,
                        one.as_mut_ptr(),
                        m,
                    )
                };
                assert_eq!(
                    one,
                    all[j * ys..][..m],
                    "{name}: input {j} of {rows}, {m} x {n}"
                );
                let groups = n.div_ceil(GROUP);
                for o in 0..m {
                    let s = |i: usize| scale.map_or(1.0, |s| s[o * groups + i / GROUP]) as f64;
                    let dot: f64 = (0..n)
                        .map(|i| s(i) * w[o * n + i].to_f32() as f64 * xj[i] as f64)
                        .sum();
                    let want = bias[o] as f64 + dot;
                    assert!(
                        (one[o] as f64 - want).abs() < 1e-5,
                        "{name}: {m} x {n} row {o}"
                    );
                }
            }
        }
    }

    #[test]
    fn int8_products_match_the_rounded_matrix_and_each_row_alone() {
        // Odd sizes: a tail of output rows (not a multiple of 4) and of columns (not of 16).
        for (m, n) in [(11, 53), (8, 64), (3, 16), (6, 2050)] {
            let q = QMat::quantize(&data(m * n, 1), m, n);
            check(&q.q, n, Some(&q.scale));
            // A slice of output rows is those rows of the whole.
            let x = data(n, 5);
            let x = Inputs::new(&x, n, 1);
            let (mut all, mut part) = (vec![0.0f32; m], vec![0.0f32; 2]);
            unsafe {
                q.matvec_rows(0, m, None, &x, all.as_mut_ptr(), m);
                q.matvec_rows(1, 3, None, &x, part.as_mut_ptr(), 2);
            }
            assert_eq!(part, all[1..3]);
        }
    }

    /// The byte-by-byte products (AVX-512 VNNI) against the rounded weights and the rounded
    /// inputs in f64, each input alone bit for bit as in the batch, and within the inputs'
    /// rounding of the f32 products.
    #[test]
    fn rounded_inputs_match_their_rounding_and_each_row_alone() {
        if !crate::model::kernels::has_avx512_vnni() {
            eprintln!("no AVX-512 VNNI here: the f32-input kernels are checked above");
            return;
        }
        // Odd sizes: tails of output rows, of a 64-byte chunk (53, 2050) and of a group (53).
        for (m, n) in [(11, 53), (8, 64), (6, 2050), (9, 96)] {
            let q = QMat::quantize(&data(m * n, 1), m, n);
            let rows = 7;
            let mut x = data(rows * n, 5);
            x[3] = 0.4; // an outlier coarsens the steps of its group only
            let all_in = Inputs::new(&x, n, rows);
            let r = all_in.rounded.as_ref().unwrap();
            let mut all = vec![0.0f32; rows * m];
            unsafe { q.matvec_rows(0, m, None, &all_in, all.as_mut_ptr(), m) };
            for j in 0..rows {
                let xj = &x[j * n..][..n];
                let mut one = vec![0.0f32; m];
                unsafe { q.matvec_rows(0, m, None, &Inputs::new(xj, n, 1), one.as_mut_ptr(), m) };
                assert_eq!(one, all[j * m..][..m], "input {j} of {rows}, {m} x {n}");
                // The rounded input: within half a step of its group's largest magnitude.
                let xq = |i: usize| {
                    let u = r.u[j * r.chunks * 64 + i] as f64 - 128.0;
                    u * r.s[(j * r.chunks + i / 64) * 16 + i % 64 / 32 * 8] as f64
                };
                for i in 0..n {
                    let g = i / GROUP * GROUP..(i / GROUP * GROUP + GROUP).min(n);
                    let top = xj[g].iter().fold(0.0f32, |a, v| a.max(v.abs())) as f64;
                    assert!(
                        (xq(i) - xj[i] as f64).abs() <= top / 254.0 * 1.0001,
                        "x {i}"
                    );
                }
                for (o, got) in one.iter().enumerate() {
                    let want: f64 = (0..n).map(|i| q.get(o, i) as f64 * xq(i)).sum();
                    assert!((*got as f64 - want).abs() < 1e-5, "{m} x {n} row {o}");
                }
            }
        }
        // A NaN input makes its results NaN, as in f32.
        let q = QMat::quantize(&data(4 * 64, 1), 4, 64);
        let mut x = data(64, 2);
        x[40] = f32::NAN;
        let mut y = vec![0.0f32; 4];
        unsafe { q.matvec_rows(0, 4, None, &Inputs::new(&x, 64, 1), y.as_mut_ptr(), 4) };
        assert!(y.iter().all(|v| v.is_nan()));
    }

    #[test]
    fn bf16_products_match_the_stored_rows() {
        for (m, n) in [(13, 48), (5, 1000), (4, 7)] {
            let w: Vec<bf16> = data(m * n, 2).into_iter().map(bf16::from_f32).collect();
            check(&w, n, None);
        }
    }
}
