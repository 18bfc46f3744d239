//! AdamW over candle `Var`s, written here so that its moments can be checkpointed by name.
//!
//! PyTorch semantics: decoupled weight decay (`p -= lr * wd * p` before the Adam update),
//! bias-corrected moments, `eps` added outside the square root. Weight decay skips biases and
//! LayerNorm parameters, as the HF Trainer does. The original trained with Adafactor (spec §8.2);
//! AdamW is the deliberate deviation (stated in the model card).

use std::collections::HashMap;

use candle_core::backprop::GradStore;
use candle_core::{DType, Result, Tensor, Var};

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamWConfig {
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
}

impl Default for AdamWConfig {
    fn default() -> Self {
        Self {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.01,
        }
    }
}

/// The variables of `vars` with their names, as [`AdamW::new`] takes them.
pub fn named_vars(vars: &candle_nn::VarMap) -> Vec<(String, Var)> {
    let data = vars.data().lock().expect("var map lock");
    data.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

/// Whether a parameter gets weight decay (not biases, not LayerNorm weights).
pub fn decays(name: &str) -> bool {
    !(name.ends_with("bias") || name.contains("LayerNorm"))
}

struct Param {
    name: String,
    var: Var,
    decay: bool,
    m: Tensor,
    v: Tensor,
}

/// The optimizer: parameters in a fixed (name-sorted) order, their moments, the step count.
pub struct AdamW {
    params: Vec<Param>,
    config: AdamWConfig,
    /// Updates applied so far (the bias-correction exponent).
    pub steps: u64,
}

/// What one optimizer step saw.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepInfo {
    /// Global gradient L2 norm before clipping.
    pub grad_norm: f64,
    pub clipped: bool,
}

impl AdamW {
    /// `vars`: every trainable parameter with its (HF) name.
    pub fn new(mut vars: Vec<(String, Var)>, config: AdamWConfig) -> Result<Self> {
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        let params = vars
            .into_iter()
            .map(|(name, var)| {
                let m = var.as_tensor().zeros_like()?;
                let v = var.as_tensor().zeros_like()?;
                Ok(Param {
                    decay: decays(&name),
                    name,
                    var,
                    m,
                    v,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            params,
            config,
            steps: 0,
        })
    }

    /// Global L2 norm of the gradients (summed in a fixed order, in f64).
    pub fn grad_norm(&self, grads: &GradStore) -> Result<f64> {
        let mut sq = 0f64;
        for p in &self.params {
            if let Some(g) = grads.get(p.var.as_tensor()) {
                sq += g
                    .to_dtype(DType::F32)?
                    .sqr()?
                    .sum_all()?
                    .to_scalar::<f32>()? as f64;
            }
        }
        Ok(sq.sqrt())
    }

    /// One update at learning rate `lr`, gradients first clipped to global norm `clip`
    /// (PyTorch `clip_grad_norm_`: scale by `clip / (norm + 1e-6)` when that is below 1).
    /// Parameters without a gradient (the unused pooler) are left alone, as in PyTorch.
    pub fn step(&mut self, grads: &GradStore, lr: f64, clip: Option<f64>) -> Result<StepInfo> {
        let norm = self.grad_norm(grads)?;
        let scale = match clip {
            Some(c) if norm.is_finite() && c / (norm + 1e-6) < 1.0 => c / (norm + 1e-6),
            _ => 1.0,
        };
        self.steps += 1;
        let c = self.config;
        let t = self.steps as i32;
        let bc1 = 1.0 - c.beta1.powi(t);
        let bc2 = 1.0 - c.beta2.powi(t);
        for p in &mut self.params {
            let Some(g) = grads.get(p.var.as_tensor()) else {
                continue;
            };
            let g = if scale < 1.0 { (g * scale)? } else { g.clone() };
            p.m = ((&p.m * c.beta1)? + (&g * (1.0 - c.beta1))?)?;
            p.v = ((&p.v * c.beta2)? + (g.sqr()? * (1.0 - c.beta2))?)?;
            let denom = ((&p.v / bc2)?.sqrt()? + c.eps)?;
            let update = ((&p.m / bc1)? / denom)?;
            let w = p.var.as_tensor().detach();
            let w = if p.decay && c.weight_decay > 0.0 {
                (&w * (1.0 - lr * c.weight_decay))?
            } else {
                w
            };
            let new = (w - (update * lr)?)?;
            p.var.set(&new)?;
        }
        Ok(StepInfo {
            grad_norm: norm,
            clipped: scale < 1.0,
        })
    }

    /// The moments as `adam.m.NAME` / `adam.v.NAME` tensors.
    pub fn state(&self) -> HashMap<String, Tensor> {
        let mut map = HashMap::new();
        for p in &self.params {
            map.insert(format!("adam.m.{}", p.name), p.m.clone());
            map.insert(format!("adam.v.{}", p.name), p.v.clone());
        }
        map
    }

    /// Restores the moments written by [`state`](Self::state); every parameter must be there
    /// with its shape, except those `optional` says may be absent (their moments stay zero).
    pub fn load_state(
        &mut self,
        map: &HashMap<String, Tensor>,
        steps: u64,
        optional: impl Fn(&str) -> bool,
    ) -> Result<()> {
        for p in &mut self.params {
            for (kind, slot) in [("m", &mut p.m), ("v", &mut p.v)] {
                let key = format!("adam.{kind}.{}", p.name);
                let Some(t) = map.get(&key) else {
                    if optional(&p.name) {
                        continue;
                    }
                    candle_core::bail!("optimizer state lacks `{key}`")
                };
                if t.shape() != p.var.shape() {
                    candle_core::bail!(
                        "optimizer state `{key}` has shape {:?}, the model {:?}",
                        t.dims(),
                        p.var.dims()
                    )
                }
                *slot = t.to_dtype(DType::F32)?.to_device(p.var.device())?;
            }
        }
        self.steps = steps;
        Ok(())
    }

    /// The parameters, in the optimizer's order.
    pub fn vars(&self) -> impl Iterator<Item = &Var> {
        self.params.iter().map(|p| &p.var)
    }

    pub fn num_parameters(&self) -> usize {
        self.params.iter().map(|p| p.var.elem_count()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn one_step_matches_pytorch_adamw_formula() {
        let dev = Device::Cpu;
        let w = Var::new(&[1.0f32, -2.0], &dev).unwrap();
        let b = Var::new(&[0.5f32], &dev).unwrap();
        let mut opt = AdamW::new(
            vec![("l.weight".into(), w.clone()), ("l.bias".into(), b.clone())],
            AdamWConfig::default(),
        )
        .unwrap();
        // loss = 3 w0 + w1 + 2 b -> grads (3, 1) and 2.
        let loss = ((w.as_tensor() * &Tensor::new(&[3f32, 1.], &dev).unwrap())
            .unwrap()
            .sum_all()
            .unwrap()
            + (b.as_tensor() * 2.0).unwrap().sum_all().unwrap())
        .unwrap();
        let grads = loss.backward().unwrap();
        let info = opt.step(&grads, 0.1, None).unwrap();
        assert!((info.grad_norm - (9f64 + 1. + 4.).sqrt()).abs() < 1e-6);
        // First Adam step moves each parameter by lr * sign(g) (|m̂| / sqrt(v̂) = 1).
        let w1 = w.as_tensor().to_vec1::<f32>().unwrap();
        let expect0 = 1.0 * (1.0 - 0.1 * 0.01) - 0.1;
        assert!((w1[0] as f64 - expect0).abs() < 1e-6);
        let b1 = b.as_tensor().to_vec1::<f32>().unwrap();
        assert!((b1[0] as f64 - 0.4).abs() < 1e-6, "bias has no decay");
    }
}
