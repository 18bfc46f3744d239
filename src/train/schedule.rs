//! Learning-rate schedule: linear warmup, then cosine decay to 0 (spec §8.2).
//!
//! The original used HF `cosine_with_restarts` with one cycle, which is exactly this. As in HF,
//! the factor is evaluated at the 0-based optimizer step, so the first step has LR 0 when there
//! is a warmup, and warmup steps are `ceil(ratio * total)`.

/// LR as a function of the optimizer step.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Schedule {
    pub peak_lr: f64,
    pub warmup_steps: u64,
    pub total_steps: u64,
}

impl Schedule {
    pub fn new(peak_lr: f64, warmup_ratio: f64, total_steps: u64) -> Self {
        let warmup_steps = (warmup_ratio.clamp(0.0, 1.0) * total_steps as f64).ceil() as u64;
        Self {
            peak_lr,
            warmup_steps,
            total_steps,
        }
    }

    /// The multiplier of `peak_lr` at 0-based `step`, in `[0, 1]`.
    pub fn factor(&self, step: u64) -> f64 {
        if step < self.warmup_steps {
            return step as f64 / self.warmup_steps.max(1) as f64;
        }
        let span = self.total_steps.saturating_sub(self.warmup_steps).max(1);
        let progress = (step - self.warmup_steps) as f64 / span as f64;
        if progress >= 1.0 {
            0.0
        } else {
            0.5 * (1.0 + (std::f64::consts::PI * progress).cos())
        }
    }

    pub fn lr(&self, step: u64) -> f64 {
        self.peak_lr * self.factor(step)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warmup_then_cosine_to_zero() {
        let s = Schedule::new(1e-3, 0.3, 100);
        assert_eq!(s.warmup_steps, 30);
        assert_eq!(s.lr(0), 0.0);
        assert!((s.lr(15) - 0.5e-3).abs() < 1e-12);
        assert!((s.lr(30) - 1e-3).abs() < 1e-12);
        assert!((s.lr(65) - 0.5e-3).abs() < 1e-12);
        assert_eq!(s.lr(100), 0.0);
        assert_eq!(s.lr(500), 0.0);
        let flat = Schedule::new(1e-3, 0.0, 10);
        assert_eq!(flat.lr(0), 1e-3);
    }
}
