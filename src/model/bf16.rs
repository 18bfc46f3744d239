//! Matrix products in bfloat16 for the encoder: AVX-512 BF16's `vdpbf16ps` multiplies two
//! pairs of bf16 numbers per f32 lane and adds both products to an f32 accumulator, twice the
//! multiply-adds of an f32 FMA per instruction.
//!
//! Why: the encoder is most of a refined segment's time (a 1,000-token input through every
//! layer, every segment, every pass) and its products are compute-bound, so halving the width of
//! the numbers halves them. Inputs are rounded to bf16 (8 significant bits, f32's range); sums
//! stay f32. Softmax, GELU, LayerNorm and residuals stay f32 (`fast_enc`).
//!
//! A right-hand matrix `B` `[k, n]` is packed once into [`PackedB`]: 16-column blocks, and in
//! each block one 32-bit word per (pair of rows, column) holding both bf16 values, the order
//! `vdpbf16ps` reads. A left-hand matrix is a row-major `[m, ⌈k/2⌉]` array of such words
//! ([`pairs_into`]). Odd `k` and partial blocks are padded with zeros.

use half::bf16;

/// Columns per packed block (one 512-bit register of f32 results).
pub const LANES: usize = 16;
/// Rows of `A` per register tile.
pub const MR: usize = 8;

/// Whether this CPU runs the bf16 products (AVX-512 F, BW and BF16).
pub fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        use std::sync::OnceLock;
        static HAS: OnceLock<bool> = OnceLock::new();
        *HAS.get_or_init(|| {
            std::arch::is_x86_feature_detected!("avx512f")
                && std::arch::is_x86_feature_detected!("avx512bw")
                && std::arch::is_x86_feature_detected!("avx512bf16")
        })
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Two f32 values as one word of bf16s (round to nearest even), the first in the low half.
#[inline]
fn word(lo: f32, hi: f32) -> u32 {
    bf16::from_f32(lo).to_bits() as u32 | (bf16::from_f32(hi).to_bits() as u32) << 16
}

/// A `[k, n]` matrix in `vdpbf16ps` order: `data[(block * kp + p) * 16 + j]` holds rows `2p`
/// and `2p + 1` of column `block * 16 + j`.
#[derive(Debug, Clone, Default)]
pub struct PackedB {
    /// Row pairs (`⌈k/2⌉`).
    pub kp: usize,
    /// Columns.
    pub n: usize,
    data: Vec<u32>,
}

impl PackedB {
    /// Packs `B[r][c] = at(r, c)` for `r < k`, `c < n`: the layout by definition, one value at
    /// a time (the packers below must agree with it).
    #[cfg(test)]
    fn pack(&mut self, k: usize, n: usize, at: impl Fn(usize, usize) -> f32) {
        let kp = k.div_ceil(2);
        let blocks = n.div_ceil(LANES);
        self.kp = kp;
        self.n = n;
        self.data.clear();
        self.data.resize(blocks * kp * LANES, 0);
        for blk in 0..blocks {
            for p in 0..kp {
                let dst = &mut self.data[(blk * kp + p) * LANES..][..LANES];
                for (j, w) in dst.iter_mut().enumerate() {
                    let c = blk * LANES + j;
                    if c < n {
                        let lo = at(2 * p, c);
                        let hi = if 2 * p + 1 < k { at(2 * p + 1, c) } else { 0.0 };
                        *w = word(lo, hi);
                    }
                }
            }
        }
    }

    /// `B = W^T` for a linear layer's weight `W` `[n, k]` (row-major), so that `x B = x W^T`.
    pub fn linear(w: &[f32], n: usize, k: usize) -> Self {
        assert_eq!(w.len(), n * k, "weight of {n} x {k}");
        let mut b = Self::default();
        b.pack_transposed(w, n, k, k, &mut Vec::new());
        b
    }

    /// `B = S^T` for `S` `[n, k]` with rows `s[c * stride ..][..k]` (attention's keys: the
    /// scores are `Q K^T`), reusing this buffer and `scratch`.
    pub fn pack_transposed(
        &mut self,
        s: &[f32],
        n: usize,
        k: usize,
        stride: usize,
        scratch: &mut Vec<u32>,
    ) {
        let kp = k.div_ceil(2);
        pairs_into(s, n, k, stride, scratch);
        self.kp = kp;
        self.n = n;
        self.data.clear();
        self.data.resize(n.div_ceil(LANES) * kp * LANES, 0);
        for (c, row) in scratch.chunks_exact(kp).take(n).enumerate() {
            let (blk, j) = (c / LANES, c % LANES);
            for (p, &w) in row.iter().enumerate() {
                self.data[(blk * kp + p) * LANES + j] = w;
            }
        }
    }

    /// `B = S` for `S` `[k, n]` with rows `s[r * stride ..][..n]` (attention's values: the
    /// context is `P V`), reusing this buffer.
    pub fn pack_rows(&mut self, s: &[f32], k: usize, n: usize, stride: usize) {
        let kp = k.div_ceil(2);
        self.kp = kp;
        self.n = n;
        self.data.clear();
        self.data.resize(n.div_ceil(LANES) * kp * LANES, 0);
        let zero = vec![0.0f32; n];
        for p in 0..kp {
            let lo = &s[2 * p * stride..][..n];
            let hi = if 2 * p + 1 < k {
                &s[(2 * p + 1) * stride..][..n]
            } else {
                &zero[..]
            };
            for blk in 0..n.div_ceil(LANES) {
                let c0 = blk * LANES;
                let w = LANES.min(n - c0);
                let dst = &mut self.data[(blk * kp + p) * LANES..][..w];
                interleave(&lo[c0..c0 + w], &hi[c0..c0 + w], dst);
            }
        }
    }
}

/// `dst[j]` = the word of `lo[j]` and `hi[j]`.
fn interleave(lo: &[f32], hi: &[f32], dst: &mut [u32]) {
    #[cfg(target_arch = "x86_64")]
    if dst.len() == LANES && available() {
        // SAFETY: the CPU has the features; all three hold 16 values.
        unsafe { avx512::interleave16(lo, hi, dst) };
        return;
    }
    for ((w, &l), &h) in dst.iter_mut().zip(lo).zip(hi) {
        *w = word(l, h);
    }
}

/// Writes rows `a[r * stride ..][..k]` of an `[m, k]` matrix as `[m_pad, ⌈k/2⌉]` bf16 pairs,
/// `m_pad` = `m` rounded up to [`MR`] (padding rows are zero).
pub fn pairs_into(a: &[f32], m: usize, k: usize, stride: usize, out: &mut Vec<u32>) {
    let kp = k.div_ceil(2);
    let m_pad = m.div_ceil(MR) * MR;
    // Every word of rows < m is written below: only the padding rows need zeros.
    out.resize(m_pad * kp, 0);
    out[m * kp..].fill(0);
    for (r, dst) in out.chunks_exact_mut(kp).take(m).enumerate() {
        row_pairs(&a[r * stride..][..k], dst);
    }
}

/// One row as bf16 pairs (`dst` holds `⌈row.len() / 2⌉` words).
fn row_pairs(row: &[f32], dst: &mut [u32]) {
    let mut done = 0;
    #[cfg(target_arch = "x86_64")]
    if available() {
        // SAFETY: the CPU has the features; the kernel stays inside both slices.
        done = unsafe { avx512::row_pairs(row, dst) };
    }
    let mut pairs = row[2 * done..].chunks_exact(2);
    for (w, pr) in dst[done..].iter_mut().zip(&mut pairs) {
        *w = word(pr[0], pr[1]);
    }
    if let [last] = pairs.remainder() {
        dst[row.len() / 2] = word(*last, 0.0);
    }
}

/// `out[r][c] = (acc ? out[r][c] : 0) + scale * sum_i A[r][i] B[i][c]` for `r < m`, `c < b.n`,
/// `A` given as [`pairs_into`] words (`m` rounded up to [`MR`] rows of `b.kp` words), `out` row
/// `r` starting at `out[r * out_stride]`.
///
/// # Panics
/// When the shapes disagree or the CPU lacks AVX-512 BF16 ([`available`]).
pub fn matmul(
    a: &[u32],
    m: usize,
    b: &PackedB,
    out: &mut [f32],
    out_stride: usize,
    acc: bool,
    scale: f32,
) {
    assert!(
        m == 0 || out.len() >= (m - 1) * out_stride + b.n,
        "out of {m} rows x {} columns",
        b.n
    );
    // SAFETY: `out` holds every element written (asserted above).
    unsafe { matmul_raw(a, m, b, out.as_mut_ptr(), out_stride, acc, scale) }
}

/// [`matmul`] into rows of a buffer other threads write other columns of.
///
/// # Safety
/// `out.add(r * out_stride + c)` must be valid for reads and writes for `r < m`, `c < b.n`,
/// and no other thread may touch those elements meanwhile.
pub unsafe fn matmul_raw(
    a: &[u32],
    m: usize,
    b: &PackedB,
    out: *mut f32,
    out_stride: usize,
    acc: bool,
    scale: f32,
) {
    let kp = b.kp;
    assert!(available(), "bf16 products need AVX-512 BF16");
    assert!(
        a.len() >= m.div_ceil(MR) * MR * kp,
        "A of {m} rows x {kp} pairs"
    );
    #[cfg(target_arch = "x86_64")]
    // SAFETY: the CPU has the features (asserted); tiles read padded rows of A (asserted) and
    // write only rows < m and columns < n of `out` (the caller's promise).
    unsafe {
        avx512::matmul(a, m, b, out, out_stride, acc, scale)
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::{PackedB, LANES, MR};
    use std::arch::x86_64::*;

    /// Converts `row` two by two into `dst` 32 values at a time; returns the words written.
    #[target_feature(enable = "avx512f,avx512bf16")]
    pub unsafe fn row_pairs(row: &[f32], dst: &mut [u32]) -> usize {
        let mut w = 0;
        for chunk in row.chunks_exact(32) {
            let lo = _mm512_loadu_ps(chunk.as_ptr());
            let hi = _mm512_loadu_ps(chunk.as_ptr().add(16));
            // The second operand fills the low half: values stay in order, two to a word.
            let v: __m512i = std::mem::transmute(_mm512_cvtne2ps_pbh(hi, lo));
            _mm512_storeu_si512(dst.as_mut_ptr().add(w) as *mut _, v);
            w += 16;
        }
        w
    }

    /// `dst[j]` = the word of `lo[j]` and `hi[j]`, 16 of each.
    #[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
    pub unsafe fn interleave16(lo: &[f32], hi: &[f32], dst: &mut [u32]) {
        let both: __m512i = std::mem::transmute(_mm512_cvtne2ps_pbh(
            _mm512_loadu_ps(hi.as_ptr()),
            _mm512_loadu_ps(lo.as_ptr()),
        ));
        // bf16 j of lo sits at 16-bit lane j, of hi at 16 + j: take them alternately.
        let idx = _mm512_set_epi16(
            31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8, 23, 7, 22, 6, 21, 5, 20,
            4, 19, 3, 18, 2, 17, 1, 16, 0,
        );
        _mm512_storeu_si512(
            dst.as_mut_ptr() as *mut _,
            _mm512_permutexvar_epi16(idx, both),
        );
    }

    #[target_feature(enable = "avx512f,avx512bf16")]
    pub unsafe fn matmul(
        a: &[u32],
        m: usize,
        b: &PackedB,
        out: *mut f32,
        out_stride: usize,
        acc: bool,
        scale: f32,
    ) {
        let kp = b.kp;
        let blocks = b.n.div_ceil(LANES);
        for r0 in (0..m).step_by(MR) {
            let rows = MR.min(m - r0);
            let ap = a.as_ptr().add(r0 * kp);
            let mut blk = 0;
            while blk + 2 <= blocks {
                tile::<2>(ap, kp, b, blk, out, r0, rows, out_stride, acc, scale);
                blk += 2;
            }
            if blk < blocks {
                tile::<1>(ap, kp, b, blk, out, r0, rows, out_stride, acc, scale);
            }
        }
    }

    /// One [`MR`] x `NB * 16` tile of results, kept in registers over the whole of `k`.
    #[allow(clippy::too_many_arguments)]
    #[inline]
    #[target_feature(enable = "avx512f,avx512bf16")]
    unsafe fn tile<const NB: usize>(
        ap: *const u32,
        kp: usize,
        b: &PackedB,
        blk: usize,
        out: *mut f32,
        r0: usize,
        rows: usize,
        out_stride: usize,
        acc: bool,
        scale: f32,
    ) {
        let mut c = [[_mm512_setzero_ps(); NB]; MR];
        let bp = b.data.as_ptr().add(blk * kp * LANES);
        for p in 0..kp {
            let mut bv = [_mm512_setzero_si512(); NB];
            for (j, v) in bv.iter_mut().enumerate() {
                *v = _mm512_loadu_si512(bp.add((j * kp + p) * LANES) as *const _);
            }
            for (r, cr) in c.iter_mut().enumerate() {
                let av: __m512bh =
                    std::mem::transmute(_mm512_set1_epi32(*ap.add(r * kp + p) as i32));
                for j in 0..NB {
                    cr[j] = _mm512_dpbf16_ps(
                        cr[j],
                        av,
                        std::mem::transmute::<__m512i, __m512bh>(bv[j]),
                    );
                }
            }
        }
        let s = _mm512_set1_ps(scale);
        for (r, cr) in c.iter().enumerate().take(rows) {
            let row = out.add((r0 + r) * out_stride);
            for (j, &v) in cr.iter().enumerate() {
                let col = (blk + j) * LANES;
                let left = b.n - col;
                let mask: __mmask16 = if left >= LANES {
                    0xffff
                } else {
                    (1u16 << left) - 1
                };
                let mut v = _mm512_mul_ps(v, s);
                if acc {
                    v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(mask, row.add(col)));
                }
                _mm512_mask_storeu_ps(row.add(col), mask, v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rounded(x: f32) -> f32 {
        bf16::from_f32(x).to_f32()
    }

    /// The product of the bf16-rounded inputs, in f64: what the kernel computes up to f32 sums.
    fn reference(a: &[f32], b: &[f32], m: usize, k: usize, n: usize) -> Vec<f64> {
        let mut out = vec![0.0f64; m * n];
        for r in 0..m {
            for c in 0..n {
                out[r * n + c] = (0..k)
                    .map(|i| rounded(a[r * k + i]) as f64 * rounded(b[i * n + c]) as f64)
                    .sum();
            }
        }
        out
    }

    fn values(len: usize, seed: u32) -> Vec<f32> {
        (0..len)
            .map(|i| ((i as u32).wrapping_mul(2_654_435_761).wrapping_add(seed) >> 8) as f32)
            .map(|v| v / (1u32 << 24) as f32 - 0.5)
            .collect()
    }

    #[test]
    fn products_equal_the_rounded_inputs_product_for_odd_shapes() {
        if !available() {
            eprintln!("skipped: this CPU has no AVX-512 BF16");
            return;
        }
        // Odd k (a padded pair), a column tail of 3 and of 16 + 5, a row tail of 3.
        for &(m, k, n) in &[
            (11, 7, 3),
            (19, 48, 37),
            (8, 192, 32),
            (3, 5, 16),
            (9, 67, 50),
        ] {
            let a = values(m * k, 1);
            let bm = values(k * n, 2);
            let bt: Vec<f32> = (0..n * k).map(|i| bm[(i % k) * n + i / k]).collect();
            let mut packed = PackedB::default();
            packed.pack(k, n, |r, c| bm[r * n + c]);
            let mut rows = PackedB::default();
            rows.pack_rows(&bm, k, n, n);
            let mut transposed = PackedB::default();
            transposed.pack_transposed(&bt, n, k, k, &mut Vec::new());
            assert_eq!(rows.data, packed.data, "pack_rows {m}x{k}x{n}");
            assert_eq!(transposed.data, packed.data, "pack_transposed {m}x{k}x{n}");
            let mut pairs = Vec::new();
            pairs_into(&a, m, k, k, &mut pairs);
            let want = reference(&a, &bm, m, k, n);
            // Plain and accumulating with a scale; a guard column past n stays untouched.
            let stride = n + 1;
            let mut out = vec![7.0f32; m * stride];
            matmul(&pairs, m, &packed, &mut out, stride, false, 1.0);
            for r in 0..m {
                for c in 0..n {
                    let (g, w) = (out[r * stride + c] as f64, want[r * n + c]);
                    assert!(
                        (g - w).abs() < 1e-5 * (1.0 + w.abs()),
                        "{m}x{k}x{n} [{r},{c}] {g} vs {w}"
                    );
                }
                assert_eq!(out[r * stride + n], 7.0, "wrote past column {n}");
            }
            matmul(&pairs, m, &packed, &mut out, stride, true, 0.5);
            for r in 0..m {
                for c in 0..n {
                    let (g, w) = (out[r * stride + c] as f64, 1.5 * want[r * n + c]);
                    assert!(
                        (g - w).abs() < 1e-5 * (1.0 + w.abs()),
                        "acc [{r},{c}] {g} vs {w}"
                    );
                }
            }
        }
    }

    #[test]
    fn rows_convert_two_by_two_in_order() {
        // 70 values: two vector chunks of 32 and a scalar tail with an odd last value.
        let row: Vec<f32> = (0..69).map(|i| i as f32 * 1.37 - 40.0).collect();
        let mut got = vec![0u32; 35];
        row_pairs(&row, &mut got);
        let want: Vec<u32> = row
            .chunks(2)
            .map(|p| word(p[0], p.get(1).copied().unwrap_or(0.0)))
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn a_linear_weight_packs_transposed() {
        // W [n=2, k=3]: B = W^T, so B[r][c] = W[c][r]; pairs (rows 0,1) and (row 2, 0).
        let w = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        let b = PackedB::linear(&w, 2, 3);
        assert_eq!((b.kp, b.n), (2, 2));
        assert_eq!(b.data[0], word(1.0, 2.0));
        assert_eq!(b.data[1], word(4.0, 5.0));
        assert_eq!(b.data[16], word(3.0, 0.0));
        assert_eq!(b.data[17], word(6.0, 0.0));
        assert_eq!(b.data[2], 0, "padding column");
        assert_eq!(word(1.0, -2.0), 0x3f80 | 0xc000 << 16);
    }
}
