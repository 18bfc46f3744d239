//! Differentiable CPU kernels for training: LayerNorm and last-dim softmax with a backward pass.
//!
//! candle-nn's fast `layer_norm` records no backward op (gradients silently stop there) and its
//! `softmax_last_dim` has none (backward fails); the composed-op versions are differentiable but
//! allocate a tensor per step of the formula. These fused kernels keep training on CPU fast and
//! correct. Other devices take the composed candle ops.

use candle_core::{CpuStorage, CustomOp1, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor, D};
use rayon::prelude::*;

use super::kernels::{erfc_and_gauss, gelu, softmax};

fn slice<'a>(s: &'a CpuStorage, l: &Layout, what: &str) -> Result<&'a [f32]> {
    let data = s.as_slice::<f32>()?;
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&data[a..b]),
        None => candle_core::bail!("{what}: input has to be contiguous"),
    }
}

/// Rows of at least this many elements are worth a rayon task each.
const PAR_MIN: usize = 1 << 14;

fn chunk_rows(d: usize) -> usize {
    (PAR_MIN / d.max(1)).max(1)
}

struct LayerNormOp {
    eps: f32,
}

/// Mean and `1/sqrt(var + eps)` of one row.
fn row_stats(x: &[f32], eps: f32) -> (f32, f32) {
    let d = x.len() as f32;
    let mean = x.iter().sum::<f32>() / d;
    let var = x.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / d;
    (mean, 1.0 / (var + eps).sqrt())
}

impl CustomOp3 for LayerNormOp {
    fn name(&self) -> &'static str {
        "train-layer-norm"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let x = slice(s1, l1, "layer norm")?;
        let w = slice(s2, l2, "layer norm")?;
        let b = slice(s3, l3, "layer norm")?;
        let d = w.len();
        let mut y = vec![0f32; x.len()];
        let rows = chunk_rows(d);
        y.par_chunks_mut(d * rows)
            .zip(x.par_chunks(d * rows))
            .for_each(|(yc, xc)| {
                for (yr, xr) in yc.chunks_mut(d).zip(xc.chunks(d)) {
                    let (mean, rstd) = row_stats(xr, self.eps);
                    for i in 0..d {
                        yr[i] = (xr[i] - mean) * rstd * w[i] + b[i];
                    }
                }
            });
        Ok((CpuStorage::F32(y), l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _b: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let d = w.dim(0)?;
        let xv = x.flatten_all()?.to_vec1::<f32>()?;
        let wv = w.to_vec1::<f32>()?;
        let gv = grad.contiguous()?.flatten_all()?.to_vec1::<f32>()?;
        let mut dx = vec![0f32; xv.len()];
        let rows = chunk_rows(d);
        // dx = rstd * (dxh - mean(dxh) - xh * mean(dxh * xh)), dxh = g * w; dw, db summed over rows.
        let (dw, db) = dx
            .par_chunks_mut(d * rows)
            .zip(xv.par_chunks(d * rows).zip(gv.par_chunks(d * rows)))
            .map(|(dxc, (xc, gc))| {
                let mut dw = vec![0f32; d];
                let mut db = vec![0f32; d];
                let mut xh = vec![0f32; d];
                for ((dxr, xr), gr) in dxc.chunks_mut(d).zip(xc.chunks(d)).zip(gc.chunks(d)) {
                    let (mean, rstd) = row_stats(xr, self.eps);
                    let (mut m1, mut m2) = (0f32, 0f32);
                    for i in 0..d {
                        xh[i] = (xr[i] - mean) * rstd;
                        let dxh = gr[i] * wv[i];
                        m1 += dxh;
                        m2 += dxh * xh[i];
                        dw[i] += gr[i] * xh[i];
                        db[i] += gr[i];
                    }
                    m1 /= d as f32;
                    m2 /= d as f32;
                    for i in 0..d {
                        dxr[i] = rstd * (gr[i] * wv[i] - m1 - xh[i] * m2);
                    }
                }
                (dw, db)
            })
            .collect::<Vec<_>>()
            // Partial sums in chunk order, added sequentially: the same bits on every run.
            .into_iter()
            .fold((vec![0f32; d], vec![0f32; d]), |(mut a, mut b), (c, e)| {
                a.iter_mut().zip(&c).for_each(|(p, q)| *p += q);
                b.iter_mut().zip(&e).for_each(|(p, q)| *p += q);
                (a, b)
            });
        let dev = x.device();
        Ok((
            Some(Tensor::from_vec(dx, x.shape(), dev)?),
            Some(Tensor::from_vec(dw, d, dev)?),
            Some(Tensor::from_vec(db, d, dev)?),
        ))
    }
}

/// LayerNorm over the last dimension with gradients for `x`, `w` and `b`.
pub fn layer_norm(x: &Tensor, w: &Tensor, b: &Tensor, eps: f64) -> Result<Tensor> {
    if x.device().is_cpu() && x.dtype() == candle_core::DType::F32 {
        x.contiguous()?
            .apply_op3(w, b, LayerNormOp { eps: eps as f32 })
    } else {
        let d = x.dim(D::Minus1)? as f64;
        let mean = (x.sum_keepdim(D::Minus1)? / d)?;
        let xc = x.broadcast_sub(&mean)?;
        let var = (xc.sqr()?.sum_keepdim(D::Minus1)? / d)?;
        let xh = xc.broadcast_div(&(var + eps)?.sqrt()?)?;
        xh.broadcast_mul(w)?.broadcast_add(b)
    }
}

struct SoftmaxOp;

impl CustomOp1 for SoftmaxOp {
    fn name(&self) -> &'static str {
        "train-softmax"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = slice(s, l, "softmax")?;
        let d = l.dims().last().copied().unwrap_or(1);
        let mut y = x.to_vec();
        y.par_chunks_mut(d * chunk_rows(d))
            .for_each(|c| c.chunks_mut(d).for_each(softmax));
        Ok((CpuStorage::F32(y), l.shape().clone()))
    }

    fn bwd(&self, _arg: &Tensor, res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(
            res.apply_op2_no_bwd(&grad.contiguous()?, &SoftmaxBwd)?,
        ))
    }
}

/// `dx = y * (g - sum(g * y))` per row.
struct SoftmaxBwd;

impl CustomOp2 for SoftmaxBwd {
    fn name(&self) -> &'static str {
        "train-softmax-bwd"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let y = slice(s1, l1, "softmax backward")?;
        let g = slice(s2, l2, "softmax backward")?;
        let d = l1.dims().last().copied().unwrap_or(1);
        let mut dx = vec![0f32; y.len()];
        let n = d * chunk_rows(d);
        dx.par_chunks_mut(n)
            .zip(y.par_chunks(n).zip(g.par_chunks(n)))
            .for_each(|(dc, (yc, gc))| {
                for ((dr, yr), gr) in dc.chunks_mut(d).zip(yc.chunks(d)).zip(gc.chunks(d)) {
                    let dot: f32 = yr.iter().zip(gr).map(|(a, b)| a * b).sum();
                    for i in 0..d {
                        dr[i] = yr[i] * (gr[i] - dot);
                    }
                }
            });
        Ok((CpuStorage::F32(dx), l1.shape().clone()))
    }
}

/// Softmax over the last dimension, differentiable.
pub fn softmax_last_dim(x: &Tensor) -> Result<Tensor> {
    if x.device().is_cpu() && x.dtype() == candle_core::DType::F32 {
        x.contiguous()?.apply_op1(SoftmaxOp)
    } else {
        candle_nn::ops::softmax(x, D::Minus1)
    }
}

/// Keep-scale of element `i` under dropout key `key` (0 = dropped): the same hash as
/// [`crate::model::bert::Train::dropout`], recomputed in the backward pass instead of stored.
#[inline]
fn keep(key: u64, i: u64, threshold: u64, scale: f32) -> f32 {
    if (splitmix64(key.wrapping_add(i)) >> 32) < threshold {
        0.0
    } else {
        scale
    }
}

/// Softmax over the last dimension followed by dropout, fused: no mask tensor is stored, the
/// backward pass recomputes the softmax and the mask from the input and the key.
struct SoftmaxDropout {
    key: u64,
    threshold: u64,
    scale: f32,
}

/// The vector softmax of generation (`kernels::softmax`), into `y`.
fn softmax_row(x: &[f32], y: &mut [f32]) {
    y.copy_from_slice(x);
    softmax(y);
}

impl CustomOp1 for SoftmaxDropout {
    fn name(&self) -> &'static str {
        "train-softmax-dropout"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = slice(s, l, "softmax dropout")?;
        let d = l.dims().last().copied().unwrap_or(1);
        let n = d * chunk_rows(d);
        let mut y = vec![0f32; x.len()];
        y.par_chunks_mut(n)
            .zip(x.par_chunks(n))
            .enumerate()
            .for_each(|(c, (yc, xc))| {
                for (r, (yr, xr)) in yc.chunks_mut(d).zip(xc.chunks(d)).enumerate() {
                    softmax_row(xr, yr);
                    let base = (c * n + r * d) as u64;
                    for (j, v) in yr.iter_mut().enumerate() {
                        *v *= keep(self.key, base + j as u64, self.threshold, self.scale);
                    }
                }
            });
        Ok((CpuStorage::F32(y), l.shape().clone()))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let op = SoftmaxDropoutBwd {
            key: self.key,
            threshold: self.threshold,
            scale: self.scale,
        };
        Ok(Some(
            arg.contiguous()?
                .apply_op2_no_bwd(&grad.contiguous()?, &op)?,
        ))
    }
}

struct SoftmaxDropoutBwd {
    key: u64,
    threshold: u64,
    scale: f32,
}

impl CustomOp2 for SoftmaxDropoutBwd {
    fn name(&self) -> &'static str {
        "train-softmax-dropout-bwd"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let x = slice(s1, l1, "softmax dropout backward")?;
        let g = slice(s2, l2, "softmax dropout backward")?;
        let d = l1.dims().last().copied().unwrap_or(1);
        let n = d * chunk_rows(d);
        let mut dx = vec![0f32; x.len()];
        dx.par_chunks_mut(n)
            .zip(x.par_chunks(n).zip(g.par_chunks(n)))
            .enumerate()
            .for_each(|(c, (dc, (xc, gc)))| {
                let mut y = vec![0f32; d];
                for (r, ((dr, xr), gr)) in dc
                    .chunks_mut(d)
                    .zip(xc.chunks(d))
                    .zip(gc.chunks(d))
                    .enumerate()
                {
                    softmax_row(xr, &mut y);
                    let base = (c * n + r * d) as u64;
                    // dy = g * mask; dx = y * (dy - sum(dy * y)).
                    let mut dot = 0f32;
                    for j in 0..d {
                        let dy =
                            gr[j] * keep(self.key, base + j as u64, self.threshold, self.scale);
                        dr[j] = dy;
                        dot += dy * y[j];
                    }
                    for j in 0..d {
                        dr[j] = y[j] * (dr[j] - dot);
                    }
                }
            });
        Ok((CpuStorage::F32(dx), l1.shape().clone()))
    }
}

/// `dropout(softmax(x), p)` with the mask of `key` (see [`crate::model::Train`]).
pub fn softmax_dropout(x: &Tensor, p: f64, key: u64) -> Result<Tensor> {
    let threshold = (p * 4_294_967_296.0) as u64;
    let scale = (1.0 / (1.0 - p)) as f32;
    x.contiguous()?.apply_op1(SoftmaxDropout {
        key,
        threshold,
        scale,
    })
}

/// GELU (erf form) with its backward pass, fused: candle's `gelu_erf` takes a scalar `erf` per
/// element and its gradient is a chain of eight tensor ops, each a pass over memory and an
/// allocation. The forward is generation's vector kernel (`kernels::gelu`).
struct GeluOp;

impl CustomOp1 for GeluOp {
    fn name(&self) -> &'static str {
        "train-gelu"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let mut y = slice(s, l, "gelu")?.to_vec();
        y.par_chunks_mut(PAR_MIN).for_each(gelu);
        Ok((CpuStorage::F32(y), l.shape().clone()))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(arg.apply_op2_no_bwd(&grad.contiguous()?, &GeluBwd)?))
    }
}

/// `d gelu(x) / dx = Φ(x) + x φ(x)`, with Φ from the same erfc approximation as the forward.
fn gelu_grad(x: f32) -> f32 {
    let z = x.abs() * std::f32::consts::FRAC_1_SQRT_2;
    let (erfc, e) = erfc_and_gauss(z);
    let cdf = if x >= 0.0 {
        1.0 - 0.5 * erfc
    } else {
        0.5 * erfc
    };
    // φ(x) = exp(-x²/2) / sqrt(2π), and exp(-z²) is exp(-x²/2).
    cdf + x * e * 0.398_942_3
}

struct GeluBwd;

impl CustomOp2 for GeluBwd {
    fn name(&self) -> &'static str {
        "train-gelu-bwd"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let x = slice(s1, l1, "gelu backward")?;
        let g = slice(s2, l2, "gelu backward")?;
        let mut dx = vec![0f32; x.len()];
        dx.par_chunks_mut(PAR_MIN)
            .zip(x.par_chunks(PAR_MIN).zip(g.par_chunks(PAR_MIN)))
            .for_each(|(dc, (xc, gc))| {
                for ((d, &x), &g) in dc.iter_mut().zip(xc).zip(gc) {
                    *d = g * gelu_grad(x);
                }
            });
        Ok((CpuStorage::F32(dx), l1.shape().clone()))
    }
}

/// GELU (erf form), differentiable.
pub fn gelu_erf(x: &Tensor) -> Result<Tensor> {
    if x.device().is_cpu() && x.dtype() == candle_core::DType::F32 {
        x.contiguous()?.apply_op1(GeluOp)
    } else {
        x.gelu_erf()
    }
}

/// SplitMix64 finaliser: a well-mixed 64-bit hash of a counter.
pub(crate) fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    /// The gradients of `sum(t * up)`: every input's share of an upstream gradient `up`.
    fn backward_of(t: Tensor, up: &Tensor) -> candle_core::backprop::GradStore {
        (t * up).unwrap().sum_all().unwrap().backward().unwrap()
    }

    fn close(a: &Tensor, b: &Tensor) -> f32 {
        (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
    }

    #[test]
    fn layer_norm_grads_match_composed_ops() {
        let dev = Device::Cpu;
        let x = Var::from_tensor(&Tensor::randn(0f32, 1., (3, 5, 8), &dev).unwrap()).unwrap();
        let w = Var::from_tensor(&Tensor::randn(1f32, 0.1, 8, &dev).unwrap()).unwrap();
        let b = Var::from_tensor(&Tensor::randn(0f32, 0.1, 8, &dev).unwrap()).unwrap();
        let up = Tensor::randn(0f32, 1., (3, 5, 8), &dev).unwrap();
        let fused = layer_norm(&x, &w, &b, 1e-12).unwrap();
        let d = 8f64;
        let mean = (x.sum_keepdim(D::Minus1).unwrap() / d).unwrap();
        let xc = x.broadcast_sub(&mean).unwrap();
        let var = (xc.sqr().unwrap().sum_keepdim(D::Minus1).unwrap() / d).unwrap();
        let plain = xc
            .broadcast_div(&(var + 1e-12).unwrap().sqrt().unwrap())
            .unwrap()
            .broadcast_mul(&w)
            .unwrap()
            .broadcast_add(&b)
            .unwrap();
        assert!(close(&fused, &plain) < 1e-5);
        let g1 = backward_of(fused, &up);
        let g2 = backward_of(plain, &up);
        for v in [&x, &w, &b] {
            let (a, c) = (g1.get(v).unwrap(), g2.get(v).unwrap());
            assert!(close(a, c) < 1e-4, "{}", close(a, c));
        }
    }

    #[test]
    fn gelu_and_its_gradient_match_candles() {
        let dev = Device::Cpu;
        let x = Var::from_tensor(&Tensor::randn(0f32, 3., (4, 50, 37), &dev).unwrap()).unwrap();
        let up = Tensor::randn(0f32, 1., (4, 50, 37), &dev).unwrap();
        let fused = gelu_erf(&x).unwrap();
        let plain = x.gelu_erf().unwrap();
        assert!(close(&fused, &plain) < 1e-5, "{}", close(&fused, &plain));
        let g1 = backward_of(fused, &up);
        let g2 = backward_of(plain, &up);
        let (a, b) = (g1.get(&x).unwrap(), g2.get(&x).unwrap());
        assert!(close(a, b) < 1e-5, "{}", close(a, b));
        // And against finite differences, away from candle's formula.
        for v in [-3.0f32, -0.7, 0.0, 0.3, 2.5] {
            let h = 1e-2f64;
            let f = |x: f64| 0.5 * x * (1.0 + candle_core::cpu::erf::erf_f64(x / 2f64.sqrt()));
            let want = (f(v as f64 + h) - f(v as f64 - h)) / (2.0 * h);
            assert!((gelu_grad(v) as f64 - want).abs() < 1e-4, "{v}");
        }
    }

    #[test]
    fn fused_softmax_dropout_matches_softmax_then_mask() {
        let dev = Device::Cpu;
        let x = Var::from_tensor(&Tensor::randn(0f32, 2., (2, 3, 40), &dev).unwrap()).unwrap();
        let up = Tensor::randn(0f32, 1., (2, 3, 40), &dev).unwrap();
        let (p, key) = (0.3, 12345u64);
        let fused = softmax_dropout(&x, p, key).unwrap();
        let threshold = (p * 4_294_967_296.0) as u64;
        let mask: Vec<f32> = (0..240u64)
            .map(|i| keep(key, i, threshold, (1.0 / (1.0 - p)) as f32))
            .collect();
        assert!(mask.contains(&0.0) && mask.iter().any(|&m| m > 1.0));
        let mask = Tensor::from_vec(mask, (2, 3, 40), &dev).unwrap();
        let plain = (candle_nn::ops::softmax(&x, D::Minus1).unwrap() * &mask).unwrap();
        assert!(close(&fused, &plain) < 1e-6);
        let g1 = backward_of(fused, &up);
        let g2 = backward_of(plain, &up);
        assert!(close(g1.get(&x).unwrap(), g2.get(&x).unwrap()) < 1e-5);
    }

    #[test]
    fn softmax_grads_match_composed_ops() {
        let dev = Device::Cpu;
        let x = Var::from_tensor(&Tensor::randn(0f32, 2., (2, 3, 7), &dev).unwrap()).unwrap();
        let up = Tensor::randn(0f32, 1., (2, 3, 7), &dev).unwrap();
        let fused = softmax_last_dim(&x).unwrap();
        let plain = candle_nn::ops::softmax(&x, D::Minus1).unwrap();
        assert!(close(&fused, &plain) < 1e-6);
        let g1 = backward_of(fused, &up);
        let g2 = backward_of(plain, &up);
        assert!(close(g1.get(&x).unwrap(), g2.get(&x).unwrap()) < 1e-5);
    }
}
