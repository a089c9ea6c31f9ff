//! Adam and AdamW, PyTorch's `torch.optim.Adam` / `AdamW`.

use super::{
    check_algorithm, soft_threshold, Optimizer, OptimizerState, Slots, StateError, StepHook,
    StepScale,
};
use crate::engine::par::CHUNK;
use crate::nn::Param;
use rayon::prelude::*;
use std::ops::Range;

/// Settings of [`Adam`]; defaults are PyTorch's (`betas = (0.9, 0.999)`, `eps = 1e-8`).
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AdamConfig {
    pub lr: f32,
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    /// Coupled weight decay, added to the gradient as `wd * w` (PyTorch `Adam`); default 0.
    pub weight_decay: f32,
    /// Decoupled weight decay, `w <- w * (1 - lr * wd)` (PyTorch `AdamW`); default 0.
    pub decoupled_decay: f32,
}

impl AdamConfig {
    pub fn new(lr: f32) -> Self {
        Self {
            lr,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
            decoupled_decay: 0.0,
        }
    }

    /// AdamW: Adam with decoupled decay `decay` (PyTorch's `AdamW(lr, weight_decay=decay)`;
    /// note PyTorch's AdamW default decay is 0.01).
    pub fn adamw(lr: f32, decay: f32) -> Self {
        Self::new(lr).with_decoupled_decay(decay)
    }

    pub fn with_betas(self, beta1: f32, beta2: f32) -> Self {
        Self {
            beta1,
            beta2,
            ..self
        }
    }

    pub fn with_eps(self, eps: f32) -> Self {
        Self { eps, ..self }
    }

    pub fn with_weight_decay(self, weight_decay: f32) -> Self {
        Self {
            weight_decay,
            ..self
        }
    }

    pub fn with_decoupled_decay(self, decoupled_decay: f32) -> Self {
        Self {
            decoupled_decay,
            ..self
        }
    }

    pub fn init(self) -> Adam {
        Adam {
            config: self,
            step: 0,
            slots: Slots::default(),
        }
    }
}

/// At step `t`, per weight, with `g` the gradient plus penalty gradients plus `wd * w`:
/// `m <- b1 m + (1 - b1) g`, `v <- b2 v + (1 - b2) g^2`,
/// `w <- w * (1 - lr * decoupled) - lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)`,
/// then the proximal L1 step with threshold `lr * l1_prox / (sqrt(v_hat) + eps)`.
///
/// That threshold makes the fixed points those of `smooth + l1_prox * |w|` (the proximal
/// step in Adam's per-weight metric). Zeros it makes are not permanent: a weight at 0 is
/// moved to `-step_size * m / denom` before thresholding, so it leaves 0 whenever
/// `|m_hat| > l1_prox` (`m_hat = m / (1 - b1^t)`), which is what the preconditioned proximal
/// step prescribes, since the momentum `m` carries gradients from earlier steps.
pub struct Adam {
    config: AdamConfig,
    step: u64,
    slots: Slots,
}

const SLOT_NAMES: [&str; 2] = ["exp_avg", "exp_avg_sq"];

impl Optimizer for Adam {
    fn step(&mut self, params: &mut [&mut Param], hook: &dyn StepHook) {
        let c = self.config;
        self.step += 1;
        // Bias corrections and the betas' complements in f64, as PyTorch computes them.
        let t = self.step as f64;
        let (beta1, beta2) = (c.beta1 as f64, c.beta2 as f64);
        let step_size = (c.lr as f64 / (1.0 - beta1.powf(t))) as f32;
        let bias_correction2_sqrt = (1.0 - beta2.powf(t)).sqrt() as f32;
        let (one_minus_beta1, one_minus_beta2) = ((1.0 - beta1) as f32, (1.0 - beta2) as f32);
        for p in params.iter_mut().filter(|p| p.kind.is_trainable()) {
            let terms = hook.terms(p);
            let prox = c.lr * terms.l1_prox;
            let decay = 1.0 - c.lr * c.decoupled_decay;
            let (slots, _) = self.slots.of(p, 2);
            let (exp_avg, exp_avg_sq) = slots.split_at_mut(1);
            p.value
                .par_chunks_mut(CHUNK)
                .zip(p.grad.par_chunks(CHUNK))
                .zip(exp_avg[0].par_chunks_mut(CHUNK))
                .zip(exp_avg_sq[0].par_chunks_mut(CHUNK))
                .for_each(|(((w, g), m), v)| {
                    for i in 0..w.len() {
                        let g = g[i] + c.weight_decay * w[i] + terms.gradient(w[i]);
                        // PyTorch: exp_avg.lerp_(g, 1 - b1); exp_avg_sq.mul_(b2).addcmul_(g, g, 1 - b2).
                        m[i] += one_minus_beta1 * (g - m[i]);
                        v[i] = c.beta2 * v[i] + one_minus_beta2 * g * g;
                        let denom = v[i].sqrt() / bias_correction2_sqrt + c.eps;
                        let updated = w[i] * decay - step_size * (m[i] / denom);
                        w[i] = soft_threshold(updated, prox / denom);
                    }
                });
        }
    }

    fn learning_rate(&self) -> f32 {
        self.config.lr
    }

    fn steps(&self) -> u64 {
        self.step
    }

    /// `lr / (sqrt(v_hat) + eps)` per weight, with the denominator of the last step
    /// (`sqrt(v) / sqrt(1 - b2^t) + eps`, computed as in [`Adam::step`]); `lr` for a parameter
    /// not stepped yet.
    fn step_scale(&self, param: &Param) -> StepScale<'_> {
        match self.slots.by_param.get(&param.name).and_then(|s| s.get(1)) {
            Some(exp_avg_sq) => {
                StepScale::Adaptive(AdaptiveScale::new(&self.config, exp_avg_sq, self.step))
            }
            None => StepScale::Uniform(self.config.lr),
        }
    }

    fn state(&self, params: &[&Param]) -> OptimizerState {
        OptimizerState {
            algorithm: "adam".into(),
            step: self.step,
            tensors: self.slots.export(&SLOT_NAMES, params),
        }
    }

    fn load_state(&mut self, state: &OptimizerState, params: &[&Param]) -> Result<(), StateError> {
        check_algorithm(state, "adam")?;
        self.slots.import(&SLOT_NAMES, state, params)?;
        self.step = state.step;
        Ok(())
    }
}

/// Adam's per-weight scale `s_i = lr / d_i`, `d_i = sqrt(v_i) / sqrt(1 - b2^t) + eps`, read
/// from the second moments in place, in the order of the parameter's values.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdaptiveScale<'a> {
    lr: f32,
    exp_avg_sq: &'a [f32],
    bias_correction2_sqrt: f32,
    eps: f32,
}

impl<'a> AdaptiveScale<'a> {
    /// The scales of `exp_avg_sq` (Adam's `v`) after step `step` with `config`.
    pub fn new(config: &AdamConfig, exp_avg_sq: &'a [f32], step: u64) -> Self {
        let bias_correction2_sqrt = (1.0 - f64::from(config.beta2).powf(step as f64)).sqrt();
        Self {
            lr: config.lr,
            exp_avg_sq,
            bias_correction2_sqrt: bias_correction2_sqrt as f32,
            eps: config.eps,
        }
    }

    /// `d_i`, computed exactly as in [`Adam`]'s step.
    fn denominator(&self, i: usize) -> f32 {
        self.exp_avg_sq[i].sqrt() / self.bias_correction2_sqrt + self.eps
    }

    /// `s_i = lr / d_i`.
    pub fn at(&self, i: usize) -> f32 {
        self.lr / self.denominator(i)
    }

    /// `lr / mean_{i in range} d_i`.
    pub(super) fn harmonic_mean(&self, range: Range<usize>) -> f64 {
        let n = range.len() as f64;
        let sum: f64 = range.map(|i| f64::from(self.denominator(i))).sum();
        f64::from(self.lr) * n / sum
    }
}
