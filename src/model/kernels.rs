//! CPU kernels shared by the fast encoder and the incremental decoder: matrix products through
//! the `gemm` crate, and AVX2/FMA versions of exp (softmax), GELU (erf) and LayerNorm.
//!
//! Accuracy: the vector exp is Cephes' polynomial (relative error ~1e-7), GELU uses
//! Abramowitz–Stegun 7.1.26 for erfc (absolute error <= 1.5e-7, computed as `x - x/2 erfc` or
//! `x/2 erfc` so that no cancellation occurs); both keep the 1e-4 parity with PyTorch.

use gemm::Parallelism;

/// Threads for the matrix products and the decoder's team: those of the rayon pool this runs in
/// (the global one: `RAYON_NUM_THREADS` or `--threads`, else the cores; the plugin worker's own).
pub fn threads() -> usize {
    rayon::current_num_threads().max(1)
}

fn par(threads: usize) -> Parallelism {
    if threads > 1 {
        Parallelism::Rayon(threads)
    } else {
        Parallelism::None
    }
}

/// A raw pointer that may cross threads (disjoint writes only).
#[derive(Clone, Copy)]
pub struct SendPtr(pub *mut f32);
unsafe impl Send for SendPtr {}
unsafe impl Sync for SendPtr {}

/// General strided product `dst = (acc ? dst : 0) + scale * A B`, `A` `[m, k]`, `B` `[k, n]`,
/// every operand given by pointer and (row, column) strides in elements.
///
/// # Safety
/// Every index reached through the strides must be inside its buffer; `dst` must not alias.
#[allow(clippy::too_many_arguments)]
pub unsafe fn gemm_raw(
    m: usize,
    n: usize,
    k: usize,
    dst: *mut f32,
    dst_rs: isize,
    dst_cs: isize,
    acc: bool,
    a: *const f32,
    a_rs: isize,
    a_cs: isize,
    b: *const f32,
    b_rs: isize,
    b_cs: isize,
    scale: f32,
    threads: usize,
) {
    gemm::gemm(
        m,
        n,
        k,
        dst,
        dst_cs,
        dst_rs,
        acc,
        a,
        a_cs,
        a_rs,
        b,
        b_cs,
        b_rs,
        if acc { 1.0 } else { 0.0 },
        scale,
        false,
        false,
        false,
        par(threads),
    )
}

/// `y[r] (+)= x[r] W^T` for `x` `[rows, k]`, a PyTorch linear weight `W` `[n, k]` and `y`
/// `[rows, n]` (all contiguous). With `acc`, `y` already holds what to add to (bias, residual).
pub fn linear_acc(x: &[f32], rows: usize, w: &[f32], n: usize, y: &mut [f32], threads: usize) {
    let k = x.len().checked_div(rows).unwrap_or(0);
    assert!(x.len() == rows * k && w.len() == n * k && y.len() == rows * n);
    // SAFETY: shapes checked above.
    unsafe {
        gemm_raw(
            rows,
            n,
            k,
            y.as_mut_ptr(),
            n as isize,
            1,
            true,
            x.as_ptr(),
            k as isize,
            1,
            w.as_ptr(),
            1,
            k as isize,
            1.0,
            threads,
        )
    }
}

/// Fills each `n`-wide row of `y` with `b`.
pub fn fill_rows(y: &mut [f32], b: &[f32]) {
    for row in y.chunks_exact_mut(b.len()) {
        row.copy_from_slice(b);
    }
}

/// Adds `b` to each `n`-wide row of `y`.
pub fn add_rows(y: &mut [f32], b: &[f32]) {
    for row in y.chunks_exact_mut(b.len()) {
        for (v, b) in row.iter_mut().zip(b) {
            *v += b;
        }
    }
}

pub fn has_avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        use std::sync::OnceLock;
        static HAS: OnceLock<bool> = OnceLock::new();
        *HAS.get_or_init(|| {
            std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
        })
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

// Cephes `expf`: the input clamp, ln 2 split in two, and the polynomial's coefficients (highest
// first). One table for every vector width, so the widths give the same values.
const EXP_MIN: f32 = -87.336_55;
const EXP_MAX: f32 = 88.722_83;
const EXP_LN2: [f32; 2] = [0.693_359_4, -2.121_944_4e-4];
const EXP_POLY: [f32; 6] = [
    1.987_569_1e-4,
    1.398_199_9e-3,
    8.333_452e-3,
    4.166_579_6e-2,
    0.166_666_65,
    0.5,
];

// Abramowitz & Stegun 7.1.26.
const AS_P: f32 = 0.327_591_1;
const AS_A: [f32; 5] = [
    0.254_829_6,
    -0.284_496_74,
    1.421_413_8,
    -1.453_152,
    1.061_405_4,
];

/// `(erfc(z), exp(-z²))` for `z >= 0`, by the vector kernel's formula.
#[inline]
pub fn erfc_and_gauss(z: f32) -> (f32, f32) {
    let t = 1.0 / (1.0 + AS_P * z);
    let poly = ((((AS_A[4] * t + AS_A[3]) * t + AS_A[2]) * t + AS_A[1]) * t + AS_A[0]) * t;
    let e = (-z * z).exp();
    (poly * e, e)
}

/// GELU (erf form) of one value, same formula as the vector kernel.
#[inline]
pub fn gelu_scalar(x: f32) -> f32 {
    let z = x.abs() * std::f32::consts::FRAC_1_SQRT_2;
    let (erfc, _) = erfc_and_gauss(z);
    if x >= 0.0 {
        x - 0.5 * x * erfc
    } else {
        0.5 * x * erfc
    }
}

/// AVX2/FMA kernels.
///
/// # Safety
/// Every function here needs a CPU with AVX2 and FMA (see [`has_avx2`]).
#[cfg(target_arch = "x86_64")]
#[allow(clippy::missing_safety_doc)]
pub mod avx {
    use super::{AS_A, AS_P, EXP_LN2, EXP_MAX, EXP_MIN, EXP_POLY};
    use std::arch::x86_64::*;

    #[inline]
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn hsum(v: __m256) -> f32 {
        let lo = _mm256_castps256_ps128(v);
        let hi = _mm256_extractf128_ps(v, 1);
        let s = _mm_add_ps(lo, hi);
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        let s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 0x55));
        _mm_cvtss_f32(s)
    }

    /// Four dot products `w[r, :] . x` for the rows `r0`, `r0 + ld`, ... (`n` values each).
    /// Every product of the decoder goes through here, in this order of additions, so a result
    /// does not depend on how many inputs share the weight read.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn dot4(r0: *const f32, ld: usize, xp: *const f32, n: usize) -> [f32; 4] {
        let n8 = n / 8 * 8;
        let r1 = r0.add(ld);
        let r2 = r1.add(ld);
        let r3 = r2.add(ld);
        let mut a0 = _mm256_setzero_ps();
        let mut a1 = _mm256_setzero_ps();
        let mut a2 = _mm256_setzero_ps();
        let mut a3 = _mm256_setzero_ps();
        let mut i = 0;
        while i < n8 {
            let xv = _mm256_loadu_ps(xp.add(i));
            a0 = _mm256_fmadd_ps(_mm256_loadu_ps(r0.add(i)), xv, a0);
            a1 = _mm256_fmadd_ps(_mm256_loadu_ps(r1.add(i)), xv, a1);
            a2 = _mm256_fmadd_ps(_mm256_loadu_ps(r2.add(i)), xv, a2);
            a3 = _mm256_fmadd_ps(_mm256_loadu_ps(r3.add(i)), xv, a3);
            i += 8;
        }
        let mut s = [hsum(a0), hsum(a1), hsum(a2), hsum(a3)];
        for i in n8..n {
            let xi = *xp.add(i);
            s[0] += *r0.add(i) * xi;
            s[1] += *r1.add(i) * xi;
            s[2] += *r2.add(i) * xi;
            s[3] += *r3.add(i) * xi;
        }
        s
    }

    /// `y[j * ys + o] = b[o] + w[o, :] . x[j * xs ..][..n]` for `rows` inputs: four weight rows are
    /// loaded once and used for every input while they sit in L1 (a speculative decoder step
    /// verifies several tokens for about the memory traffic of one). Each value is the sum
    /// computed for that input alone (`rows` = 1), bit for bit.
    ///
    /// # Safety
    /// `x` holds `(rows - 1) * xs + n` values, `y` `(rows - 1) * ys + m`, `w` `(m - 1) * ld + n`.
    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn matvec_rows(
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
        let wp = w.as_ptr();
        let bias = |o: usize| b.map_or(0.0, |b| *b.get_unchecked(o));
        let mut o = 0;
        while o + 4 <= m {
            for j in 0..rows {
                let s = dot4(wp.add(o * ld), ld, x.add(j * xs), n);
                for (k, sk) in s.iter().enumerate() {
                    *y.add(j * ys + o + k) = sk + bias(o + k);
                }
            }
            o += 4;
        }
        while o < m {
            let row = std::slice::from_raw_parts(wp.add(o * ld), n);
            for j in 0..rows {
                let xj = std::slice::from_raw_parts(x.add(j * xs), n);
                *y.add(j * ys + o) = dot(row, xj) + bias(o);
            }
            o += 1;
        }
    }

    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn dot(a: &[f32], b: &[f32]) -> f32 {
        let n = a.len().min(b.len());
        let n8 = n / 8 * 8;
        let mut acc = _mm256_setzero_ps();
        let mut i = 0;
        while i < n8 {
            acc = _mm256_fmadd_ps(
                _mm256_loadu_ps(a.as_ptr().add(i)),
                _mm256_loadu_ps(b.as_ptr().add(i)),
                acc,
            );
            i += 8;
        }
        let mut s = hsum(acc);
        for i in n8..n {
            s += a[i] * b[i];
        }
        s
    }

    #[inline]
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn hmax(v: __m256) -> f32 {
        let lo = _mm256_castps256_ps128(v);
        let hi = _mm256_extractf128_ps(v, 1);
        let s = _mm_max_ps(lo, hi);
        let s = _mm_max_ps(s, _mm_movehl_ps(s, s));
        let s = _mm_max_ss(s, _mm_shuffle_ps(s, s, 0x55));
        _mm_cvtss_f32(s)
    }

    /// Cephes `expf`, 8 lanes (inputs clamped to [-87.3, 88.7]).
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn exp256(x: __m256) -> __m256 {
        let x = _mm256_min_ps(
            _mm256_max_ps(x, _mm256_set1_ps(EXP_MIN)),
            _mm256_set1_ps(EXP_MAX),
        );
        let fx = _mm256_round_ps(
            _mm256_mul_ps(x, _mm256_set1_ps(std::f32::consts::LOG2_E)),
            _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC,
        );
        let x = _mm256_fnmadd_ps(fx, _mm256_set1_ps(EXP_LN2[0]), x);
        let x = _mm256_fnmadd_ps(fx, _mm256_set1_ps(EXP_LN2[1]), x);
        let mut y = _mm256_set1_ps(EXP_POLY[0]);
        for c in &EXP_POLY[1..] {
            y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(*c));
        }
        y = _mm256_fmadd_ps(y, _mm256_mul_ps(x, x), x);
        y = _mm256_add_ps(y, _mm256_set1_ps(1.0));
        let e = _mm256_slli_epi32(
            _mm256_add_epi32(_mm256_cvtps_epi32(fx), _mm256_set1_epi32(127)),
            23,
        );
        _mm256_mul_ps(y, _mm256_castsi256_ps(e))
    }

    /// In-place softmax of one row.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn softmax(x: &mut [f32]) {
        let n = x.len();
        let n8 = n / 8 * 8;
        let p = x.as_mut_ptr();
        let mut mv = _mm256_set1_ps(f32::NEG_INFINITY);
        let mut i = 0;
        while i < n8 {
            mv = _mm256_max_ps(mv, _mm256_loadu_ps(p.add(i)));
            i += 8;
        }
        let mut max = hmax(mv);
        for &v in &x[n8..] {
            max = max.max(v);
        }
        let m = _mm256_set1_ps(max);
        let mut sv = _mm256_setzero_ps();
        i = 0;
        while i < n8 {
            let e = exp256(_mm256_sub_ps(_mm256_loadu_ps(p.add(i)), m));
            _mm256_storeu_ps(p.add(i), e);
            sv = _mm256_add_ps(sv, e);
            i += 8;
        }
        let mut sum = hsum(sv);
        for v in &mut x[n8..] {
            *v = (*v - max).exp();
            sum += *v;
        }
        let inv = 1.0 / sum;
        let iv = _mm256_set1_ps(inv);
        i = 0;
        while i < n8 {
            _mm256_storeu_ps(p.add(i), _mm256_mul_ps(_mm256_loadu_ps(p.add(i)), iv));
            i += 8;
        }
        for v in &mut x[n8..] {
            *v *= inv;
        }
    }

    /// In-place GELU (erf form).
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn gelu(x: &mut [f32]) {
        let n = x.len();
        let n8 = n / 8 * 8;
        let p = x.as_mut_ptr();
        let sign = _mm256_set1_ps(-0.0);
        let half = _mm256_set1_ps(0.5);
        let one = _mm256_set1_ps(1.0);
        let mut i = 0;
        while i < n8 {
            let v = _mm256_loadu_ps(p.add(i));
            let z = _mm256_mul_ps(
                _mm256_andnot_ps(sign, v),
                _mm256_set1_ps(std::f32::consts::FRAC_1_SQRT_2),
            );
            let t = _mm256_div_ps(one, _mm256_fmadd_ps(_mm256_set1_ps(AS_P), z, one));
            let mut poly = _mm256_set1_ps(AS_A[4]);
            poly = _mm256_fmadd_ps(poly, t, _mm256_set1_ps(AS_A[3]));
            poly = _mm256_fmadd_ps(poly, t, _mm256_set1_ps(AS_A[2]));
            poly = _mm256_fmadd_ps(poly, t, _mm256_set1_ps(AS_A[1]));
            poly = _mm256_fmadd_ps(poly, t, _mm256_set1_ps(AS_A[0]));
            poly = _mm256_mul_ps(poly, t);
            let e = exp256(_mm256_sub_ps(_mm256_setzero_ps(), _mm256_mul_ps(z, z)));
            let hq = _mm256_mul_ps(_mm256_mul_ps(half, v), _mm256_mul_ps(poly, e));
            // x >= 0: x - x/2 erfc; x < 0: x/2 erfc.
            let pos = _mm256_sub_ps(v, hq);
            let r = _mm256_blendv_ps(pos, hq, v);
            _mm256_storeu_ps(p.add(i), r);
            i += 8;
        }
        for v in &mut x[n8..] {
            *v = super::gelu_scalar(*v);
        }
    }
}

/// Whether the CPU has the AVX-512 subsets [`avx512`] uses.
pub fn has_avx512() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        use std::sync::OnceLock;
        static HAS: OnceLock<bool> = OnceLock::new();
        *HAS.get_or_init(|| {
            has_avx2()
                && std::arch::is_x86_feature_detected!("avx512f")
                && std::arch::is_x86_feature_detected!("avx512dq")
        })
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Whether the CPU multiplies bytes by bytes in AVX-512 (VNNI, with BW for byte loads):
/// the 8-bit decoder's products (`int8::Inputs`).
pub fn has_avx512_vnni() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        use std::sync::OnceLock;
        static HAS: OnceLock<bool> = OnceLock::new();
        *HAS.get_or_init(|| {
            has_avx512()
                && std::arch::is_x86_feature_detected!("avx512bw")
                && std::arch::is_x86_feature_detected!("avx512vnni")
        })
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// AVX-512 kernels with the AVX2 kernels' arithmetic: a 512-bit register holds two 8-lane
/// accumulators, one input each against the same weights, so every sum is the one
/// [`avx::matvec_rows`] computes, bit for bit, at twice the multiply-adds per instruction.
///
/// # Safety
/// Every function here needs a CPU with AVX-512 F and DQ, AVX2 and FMA (see [`has_avx512`]).
#[cfg(target_arch = "x86_64")]
#[allow(clippy::missing_safety_doc)]
pub mod avx512 {
    use super::avx::{dot, dot4, exp256, hsum};
    use super::{AS_A, AS_P, EXP_LN2, EXP_MAX, EXP_MIN, EXP_POLY};
    use std::arch::x86_64::*;

    /// `s[k][j] = w[k, :] . x_j` for four weight rows (`ld` apart) and `2 * P` inputs (`xs`
    /// apart), each summed as [`dot4`] sums it.
    #[inline]
    #[target_feature(enable = "avx512f,avx512dq,avx2,fma")]
    unsafe fn quad<const P: usize>(
        w: *const f32,
        ld: usize,
        x: *const f32,
        xs: usize,
        n: usize,
        s: &mut [[f32; 8]; 4],
    ) {
        let n8 = n / 8 * 8;
        let mut acc = [[_mm512_setzero_ps(); P]; 4];
        let mut i = 0;
        while i < n8 {
            let mut xv = [_mm512_setzero_ps(); P];
            for (p, v) in xv.iter_mut().enumerate() {
                let lo = _mm256_loadu_ps(x.add(2 * p * xs + i));
                let hi = _mm256_loadu_ps(x.add((2 * p + 1) * xs + i));
                *v = _mm512_insertf32x8::<1>(_mm512_castps256_ps512(lo), hi);
            }
            for (k, acc) in acc.iter_mut().enumerate() {
                let wv = _mm512_broadcast_f32x8(_mm256_loadu_ps(w.add(k * ld + i)));
                for (a, v) in acc.iter_mut().zip(&xv) {
                    *a = _mm512_fmadd_ps(wv, *v, *a);
                }
            }
            i += 8;
        }
        // The 8P sums, 16 at a time (zmm `k * P + p` holds inputs 2p and 2p + 1).
        let flat = acc.as_flattened();
        for (g, group) in flat.chunks(8).enumerate() {
            let mut z = [_mm512_setzero_ps(); 8];
            z[..group.len()].copy_from_slice(group);
            let r = hsum16(z);
            for (i, _) in group.iter().enumerate() {
                let zi = 8 * g + i;
                let (k, p) = (zi / P, zi % P);
                for h in 0..2 {
                    let letter = 2 * i + h;
                    s[k][2 * p + h] = r[(letter % 4) * 4 + letter / 4];
                }
            }
        }
        // The tails, in `dot4`'s order.
        for (k, sk) in s.iter_mut().enumerate() {
            for (j, v) in sk[..2 * P].iter_mut().enumerate() {
                let xj = x.add(j * xs);
                for i in n8..n {
                    *v += *w.add(k * ld + i) * *xj.add(i);
                }
            }
        }
    }

    /// The [`hsum`](super::avx::hsum)s of the 16 8-lane halves of `z` at once, each with `hsum`'s additions
    /// (`((v0 + v4) + (v2 + v6)) + ((v1 + v5) + (v3 + v7))`), so bit for bit: half `h` of
    /// `z[i]` is "letter" `l = 2i + h`, and its sum is at `(l % 4) * 4 + l / 4`.
    #[inline]
    #[target_feature(enable = "avx512f,avx512dq,avx2,fma")]
    unsafe fn hsum16(z: [__m512; 8]) -> [f32; 16] {
        // Blocks of four: [a_lo, a_hi, b_lo, b_hi] -> a_lo + a_hi, pairs of registers at once.
        let fold = |x: __m512, y: __m512| {
            _mm512_add_ps(
                _mm512_shuffle_f32x4::<0x88>(x, y),
                _mm512_shuffle_f32x4::<0xDD>(x, y),
            )
        };
        let s = [
            fold(z[0], z[1]),
            fold(z[2], z[3]),
            fold(z[4], z[5]),
            fold(z[6], z[7]),
        ];
        // Within each block [s0, s1, s2, s3]: s0 + s2 and s1 + s3, two registers at once.
        let t = |x: __m512, y: __m512| {
            _mm512_add_ps(
                _mm512_shuffle_ps::<0x44>(x, y),
                _mm512_shuffle_ps::<0xEE>(x, y),
            )
        };
        let (t0, t1) = (t(s[0], s[1]), t(s[2], s[3]));
        // And (s0 + s2) + (s1 + s3).
        let r = _mm512_add_ps(
            _mm512_shuffle_ps::<0x88>(t0, t1),
            _mm512_shuffle_ps::<0xDD>(t0, t1),
        );
        let mut out = [0.0f32; 16];
        _mm512_storeu_ps(out.as_mut_ptr(), r);
        out
    }

    /// [`exp256`](super::avx::exp256) on 16 lanes: the same operations per lane, so the same
    /// values.
    #[inline]
    #[target_feature(enable = "avx512f,avx512dq,avx2,fma")]
    unsafe fn exp512(x: __m512) -> __m512 {
        let x = _mm512_min_ps(
            _mm512_max_ps(x, _mm512_set1_ps(EXP_MIN)),
            _mm512_set1_ps(EXP_MAX),
        );
        let fx = _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(
            _mm512_mul_ps(x, _mm512_set1_ps(std::f32::consts::LOG2_E)),
        );
        let x = _mm512_fnmadd_ps(fx, _mm512_set1_ps(EXP_LN2[0]), x);
        let x = _mm512_fnmadd_ps(fx, _mm512_set1_ps(EXP_LN2[1]), x);
        let mut y = _mm512_set1_ps(EXP_POLY[0]);
        for c in &EXP_POLY[1..] {
            y = _mm512_fmadd_ps(y, x, _mm512_set1_ps(*c));
        }
        y = _mm512_fmadd_ps(y, _mm512_mul_ps(x, x), x);
        y = _mm512_add_ps(y, _mm512_set1_ps(1.0));
        let e = _mm512_slli_epi32::<23>(_mm512_add_epi32(
            _mm512_cvtps_epi32(fx),
            _mm512_set1_epi32(127),
        ));
        _mm512_mul_ps(y, _mm512_castsi512_ps(e))
    }

    /// [`avx::softmax`](super::avx::softmax), the exponentials 16 at a time; the sum is still
    /// taken 8 lanes at a time in the same order, so every value is the same.
    #[target_feature(enable = "avx512f,avx512dq,avx2,fma")]
    pub unsafe fn softmax(x: &mut [f32]) {
        let n = x.len();
        let (n8, n16) = (n / 8 * 8, n / 16 * 16);
        let p = x.as_mut_ptr();
        // The maximum does not depend on the order.
        let mut mv = _mm512_set1_ps(f32::NEG_INFINITY);
        let mut i = 0;
        while i < n16 {
            mv = _mm512_max_ps(mv, _mm512_loadu_ps(p.add(i)));
            i += 16;
        }
        let mut max = _mm512_reduce_max_ps(mv);
        for &v in &x[n16..] {
            max = max.max(v);
        }
        let m = _mm512_set1_ps(max);
        let mut sv = _mm256_setzero_ps();
        i = 0;
        while i < n16 {
            let e = exp512(_mm512_sub_ps(_mm512_loadu_ps(p.add(i)), m));
            _mm512_storeu_ps(p.add(i), e);
            sv = _mm256_add_ps(sv, _mm512_castps512_ps256(e));
            sv = _mm256_add_ps(sv, _mm512_extractf32x8_ps::<1>(e));
            i += 16;
        }
        if n8 > n16 {
            let e = exp256(_mm256_sub_ps(
                _mm256_loadu_ps(p.add(i)),
                _mm512_castps512_ps256(m),
            ));
            _mm256_storeu_ps(p.add(i), e);
            sv = _mm256_add_ps(sv, e);
        }
        let mut sum = hsum(sv);
        for v in &mut x[n8..] {
            *v = (*v - max).exp();
            sum += *v;
        }
        let inv = 1.0 / sum;
        let iv = _mm512_set1_ps(inv);
        i = 0;
        while i < n16 {
            _mm512_storeu_ps(p.add(i), _mm512_mul_ps(_mm512_loadu_ps(p.add(i)), iv));
            i += 16;
        }
        for v in &mut x[n16..] {
            *v *= inv;
        }
    }

    /// [`avx::gelu`](super::avx::gelu), 16 lanes at a time: the same operations per value.
    #[target_feature(enable = "avx512f,avx512dq,avx2,fma")]
    pub unsafe fn gelu(x: &mut [f32]) {
        let n16 = x.len() / 16 * 16;
        let p = x.as_mut_ptr();
        let half = _mm512_set1_ps(0.5);
        let one = _mm512_set1_ps(1.0);
        let mut i = 0;
        while i < n16 {
            let v = _mm512_loadu_ps(p.add(i));
            let z = _mm512_mul_ps(
                _mm512_abs_ps(v),
                _mm512_set1_ps(std::f32::consts::FRAC_1_SQRT_2),
            );
            let t = _mm512_div_ps(one, _mm512_fmadd_ps(_mm512_set1_ps(AS_P), z, one));
            let mut poly = _mm512_set1_ps(AS_A[4]);
            poly = _mm512_fmadd_ps(poly, t, _mm512_set1_ps(AS_A[3]));
            poly = _mm512_fmadd_ps(poly, t, _mm512_set1_ps(AS_A[2]));
            poly = _mm512_fmadd_ps(poly, t, _mm512_set1_ps(AS_A[1]));
            poly = _mm512_fmadd_ps(poly, t, _mm512_set1_ps(AS_A[0]));
            poly = _mm512_mul_ps(poly, t);
            let e = exp512(_mm512_sub_ps(_mm512_setzero_ps(), _mm512_mul_ps(z, z)));
            let hq = _mm512_mul_ps(_mm512_mul_ps(half, v), _mm512_mul_ps(poly, e));
            // x >= 0: x - x/2 erfc; x < 0 (sign bit set): x/2 erfc.
            let pos = _mm512_sub_ps(v, hq);
            let neg = _mm512_movepi32_mask(_mm512_castps_si512(v));
            _mm512_storeu_ps(p.add(i), _mm512_mask_blend_ps(neg, pos, hq));
            i += 16;
        }
        super::avx::gelu(&mut x[n16..]);
    }

    /// [`avx::matvec_rows`](super::avx::matvec_rows), inputs two by two.
    ///
    /// # Safety
    /// As [`avx::matvec_rows`](super::avx::matvec_rows).
    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx512f,avx512dq,avx2,fma")]
    pub unsafe fn matvec_rows(
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
        let wp = w.as_ptr();
        let bias = |o: usize| b.map_or(0.0, |b| *b.get_unchecked(o));
        let mut s = [[0.0f32; 8]; 4];
        let mut o = 0;
        while o + 4 <= m {
            let wo = wp.add(o * ld);
            let mut j = 0;
            while j + 2 <= rows {
                let xj = x.add(j * xs);
                let take = match (rows - j) / 2 {
                    1 => {
                        quad::<1>(wo, ld, xj, xs, n, &mut s);
                        2
                    }
                    2 => {
                        quad::<2>(wo, ld, xj, xs, n, &mut s);
                        4
                    }
                    3 => {
                        quad::<3>(wo, ld, xj, xs, n, &mut s);
                        6
                    }
                    _ => {
                        quad::<4>(wo, ld, xj, xs, n, &mut s);
                        8
                    }
                };
                for (k, sk) in s.iter().enumerate() {
                    for (r, v) in sk[..take].iter().enumerate() {
                        *y.add((j + r) * ys + o + k) = v + bias(o + k);
                    }
                }
                j += take;
            }
            if j < rows {
                let sk = dot4(wo, ld, x.add(j * xs), n);
                for (k, v) in sk.iter().enumerate() {
                    *y.add(j * ys + o + k) = v + bias(o + k);
                }
            }
            o += 4;
        }
        while o < m {
            let row = std::slice::from_raw_parts(wp.add(o * ld), n);
            for j in 0..rows {
                let xj = std::slice::from_raw_parts(x.add(j * xs), n);
                *y.add(j * ys + o) = dot(row, xj) + bias(o);
            }
            o += 1;
        }
    }
}

/// In-place softmax.
pub fn softmax(x: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if has_avx512() {
        // SAFETY: the CPU has AVX-512 F/DQ, AVX2 and FMA.
        unsafe { avx512::softmax(x) };
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        // SAFETY: the CPU has AVX2 and FMA.
        unsafe { avx::softmax(x) };
        return;
    }
    let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0;
    for v in x.iter_mut() {
        *v = (*v - max).exp();
        sum += *v;
    }
    let inv = 1.0 / sum;
    for v in x.iter_mut() {
        *v *= inv;
    }
}

/// In-place GELU (erf form).
pub fn gelu(x: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if has_avx512() {
        // SAFETY: the CPU has AVX-512 F/DQ, AVX2 and FMA.
        unsafe { avx512::gelu(x) };
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        // SAFETY: the CPU has AVX2 and FMA.
        unsafe { avx::gelu(x) };
        return;
    }
    for v in x.iter_mut() {
        *v = gelu_scalar(*v);
    }
}

/// In-place LayerNorm of one row (biased variance, as PyTorch).
pub fn layer_norm(x: &mut [f32], g: &[f32], b: &[f32], eps: f32) {
    let n = x.len() as f32;
    let mean = x.iter().sum::<f32>() / n;
    let var = x.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / n;
    let inv = 1.0 / (var + eps).sqrt();
    for ((v, g), b) in x.iter_mut().zip(g).zip(b) {
        *v = (*v - mean) * inv * g + b;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn erf_ref(x: f64) -> f64 {
        // High-precision series / continued fraction is overkill: use candle's f64 erf.
        candle_core::cpu::erf::erf_f64(x)
    }

    #[test]
    fn gelu_is_close_to_the_erf_form() {
        let xs: Vec<f32> = (-2000..=2000).map(|i| i as f32 * 0.005).collect();
        let mut v = xs.clone();
        gelu(&mut v);
        let mut worst = 0.0f64;
        for (x, g) in xs.iter().zip(&v) {
            let x = *x as f64;
            let want = 0.5 * x * (1.0 + erf_ref(x / std::f64::consts::SQRT_2));
            worst = worst.max((want - *g as f64).abs());
        }
        assert!(worst < 1e-6, "gelu error {worst}");
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn the_avx512_kernels_give_the_avx2_values_bit_for_bit() {
        if !has_avx512() {
            return;
        }
        for n in [1, 7, 8, 15, 16, 23, 24, 40, 1003] {
            let x: Vec<f32> = (0..n)
                .map(|i| ((i * 7919) % 997) as f32 * 0.037 - 18.0)
                .collect();
            let (mut a, mut b) = (x.clone(), x.clone());
            // SAFETY: AVX-512 (and so AVX2) checked above.
            unsafe {
                avx::softmax(&mut a);
                avx512::softmax(&mut b);
            }
            assert!(
                a.iter().zip(&b).all(|(p, q)| p.to_bits() == q.to_bits()),
                "softmax {n}"
            );
            let (mut a, mut b) = (x.clone(), x);
            // SAFETY: as above.
            unsafe {
                avx::gelu(&mut a);
                avx512::gelu(&mut b);
            }
            assert!(
                a.iter().zip(&b).all(|(p, q)| p.to_bits() == q.to_bits()),
                "gelu {n}"
            );
        }
    }

    #[test]
    fn softmax_is_close() {
        let mut x: Vec<f32> = (0..1003)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) * 0.3)
            .collect();
        let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
        let want: Vec<f64> = x.iter().map(|&v| (v as f64 - max).exp()).collect();
        let s: f64 = want.iter().sum();
        softmax(&mut x);
        for (g, w) in x.iter().zip(&want) {
            assert!((*g as f64 - w / s).abs() < 1e-7 + 1e-5 * w / s);
        }
    }
}
