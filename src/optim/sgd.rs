//! Stochastic gradient descent with momentum, PyTorch's `torch.optim.SGD`.

use super::{
    check_algorithm, soft_threshold, Optimizer, OptimizerState, Slots, StateError, StepHook,
};
use crate::engine::par::CHUNK;
use crate::nn::Param;
use rayon::prelude::*;

/// Settings of [`Sgd`]; defaults are PyTorch's.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SgdConfig {
    pub lr: f32,
    /// Momentum factor `mu` (default 0: plain SGD).
    pub momentum: f32,
    /// Dampening `tau` of the gradient added to the momentum buffer (default 0).
    pub dampening: f32,
    /// Nesterov momentum (default false).
    pub nesterov: bool,
    /// Coupled weight decay (L2 of `wd/2 * ||w||^2` added to the gradient); default 0.
    pub weight_decay: f32,
    /// Decoupled weight decay, `w <- w * (1 - lr * wd)` each step; default 0.
    pub decoupled_decay: f32,
}

impl SgdConfig {
    pub fn new(lr: f32) -> Self {
        Self {
            lr,
            momentum: 0.0,
            dampening: 0.0,
            nesterov: false,
            weight_decay: 0.0,
            decoupled_decay: 0.0,
        }
    }

    pub fn with_momentum(self, momentum: f32) -> Self {
        Self { momentum, ..self }
    }

    pub fn with_nesterov(self, nesterov: bool) -> Self {
        Self { nesterov, ..self }
    }

    pub fn with_dampening(self, dampening: f32) -> Self {
        Self { dampening, ..self }
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

    pub fn init(self) -> Sgd {
        Sgd {
            config: self,
            step: 0,
            slots: Slots::default(),
        }
    }
}

/// Per weight, with `g` the gradient plus penalty gradients plus `wd * w`:
/// `b <- g` on the first step, else `b <- mu * b + (1 - tau) * g`;
/// `d = g + mu * b` (Nesterov) or `d = b`; `w <- w * (1 - lr * decoupled) - lr * d`;
/// then the proximal L1 step with threshold `lr * l1_prox`.
pub struct Sgd {
    config: SgdConfig,
    step: u64,
    slots: Slots,
}

const SLOT_NAMES: [&str; 1] = ["momentum_buffer"];

impl Optimizer for Sgd {
    fn step(&mut self, params: &mut [&mut Param], hook: &dyn StepHook) {
        let c = self.config;
        self.step += 1;
        let slot_count = usize::from(c.momentum != 0.0);
        for p in params.iter_mut().filter(|p| p.kind.is_trainable()) {
            let terms = hook.terms(p);
            let threshold = c.lr * terms.l1_prox;
            let decay = 1.0 - c.lr * c.decoupled_decay;
            // The first step of a parameter sets its buffer to the gradient (PyTorch).
            let (slots, first) = self.slots.of(p, slot_count);
            let update = |w: &mut [f32], g: &[f32], mut b: Option<&mut [f32]>| {
                for i in 0..w.len() {
                    let mut d = g[i] + c.weight_decay * w[i] + terms.gradient(w[i]);
                    if let Some(b) = b.as_deref_mut() {
                        b[i] = if first {
                            d
                        } else {
                            c.momentum * b[i] + (1.0 - c.dampening) * d
                        };
                        d = if c.nesterov {
                            d + c.momentum * b[i]
                        } else {
                            b[i]
                        };
                    }
                    w[i] = soft_threshold(w[i] * decay - c.lr * d, threshold);
                }
            };
            let weights = p.value.par_chunks_mut(CHUNK).zip(p.grad.par_chunks(CHUNK));
            match slots.first_mut() {
                Some(buffer) => weights
                    .zip(buffer.par_chunks_mut(CHUNK))
                    .for_each(|((w, g), b)| update(w, g, Some(b))),
                None => weights.for_each(|(w, g)| update(w, g, None)),
            }
        }
    }

    fn learning_rate(&self) -> f32 {
        self.config.lr
    }

    fn set_learning_rate(&mut self, lr: f32) {
        self.config.lr = lr;
    }

    fn state(&self, params: &[&Param]) -> OptimizerState {
        OptimizerState {
            algorithm: "sgd".into(),
            step: self.step,
            tensors: self.slots.export(&SLOT_NAMES, params),
        }
    }

    fn load_state(&mut self, state: &OptimizerState, params: &[&Param]) -> Result<(), StateError> {
        check_algorithm(state, "sgd")?;
        let slot_count = usize::from(self.config.momentum != 0.0);
        self.slots
            .import(&SLOT_NAMES[..slot_count], state, params)?;
        self.step = state.step;
        Ok(())
    }
}
