//! Stochastic gradient descent with momentum, PyTorch's `torch.optim.SGD`.

use super::{
    check_algorithm, soft_threshold, Optimizer, OptimizerState, Slots, StateError, StepHook,
    StepScale,
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

    /// The factor `K` by which the proximal L1 threshold is scaled, `t = K * lr * l1_prox`:
    /// the steady-state factor by which the momentum rule multiplies the smooth gradient,
    ///
    /// ```text
    /// K = 1                              without momentum (mu = 0: no buffer, no dampening),
    /// K = (1 - tau) / (1 - mu)           classical momentum,
    /// K = 1 + mu * (1 - tau) / (1 - mu)  Nesterov momentum.
    /// ```
    ///
    /// Why: at a fixed point `w*` the gradient `g` is constant, so the buffer settles at
    /// `b = mu b + (1 - tau) g`, i.e. `b = (1 - tau) / (1 - mu) g`, and the step direction at
    /// `d = K g` (`d = b`, or `d = g + mu b` with Nesterov). `w* = S_t(w* - lr K g)` holds iff
    /// `-lr K g` lies in `t * d|w*|` (the subdifferential of `|w|` at `w*`), i.e. with
    /// `t = K lr l1` iff `-g` lies in `l1 * d|w*|`: the optimality condition of
    /// `smooth(w) + l1 |w|`. With `t = lr * l1` the fixed points would instead be those of an
    /// L1 strength `l1 / K` (10 times too weak at `mu = 0.9`). Needs `mu < 1`.
    pub fn prox_scale(&self) -> f32 {
        let (mu, tau) = (self.momentum, self.dampening);
        if mu == 0.0 {
            1.0
        } else if self.nesterov {
            1.0 + mu * (1.0 - tau) / (1.0 - mu)
        } else {
            (1.0 - tau) / (1.0 - mu)
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
/// then the proximal L1 step with threshold `K * lr * l1_prox`, where `K` is the momentum's
/// steady-state gain ([`SgdConfig::prox_scale`]: 1 without momentum), so that the fixed points
/// are the minimizers of `smooth + l1_prox * |w|` with momentum too. A weight at 0 leaves 0
/// when `|d| > K * l1_prox`, as the proximal step prescribes: zeros are not permanent.
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
            let threshold = c.prox_scale() * c.lr * terms.l1_prox;
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

    fn steps(&self) -> u64 {
        self.step
    }

    fn step_scale(&self, _param: &Param) -> StepScale<'_> {
        StepScale::Uniform(self.config.prox_scale() * self.config.lr)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::ParamKind;
    use crate::optim::PenaltyTerms;

    /// Proximal L1 of strength `0.5` on every parameter.
    struct ProxL1(f32);

    impl StepHook for ProxL1 {
        fn terms(&self, _param: &Param) -> PenaltyTerms {
            PenaltyTerms {
                l1_prox: self.0,
                ..PenaltyTerms::default()
            }
        }
    }

    /// Minimizes `1/2 (w - target)^2 + l1 |w|` from `w = 2` with `config`, the smooth part's
    /// gradient `w - target` supplied by hand; returns the final `w`.
    fn minimize(config: SgdConfig, target: f32, l1: f32) -> f32 {
        let mut p = Param::new("w".into(), ParamKind::Kernel, &[1], vec![2.0]);
        let mut sgd = config.init();
        for _ in 0..5000 {
            p.grad[0] = p.value[0] - target;
            sgd.step(&mut [&mut p], &ProxL1(l1));
        }
        p.value[0]
    }

    #[test]
    fn proximal_l1_with_momentum_converges_to_the_minimizer_of_the_stated_objective() {
        // argmin 1/2 (w - 1)^2 + 0.5 |w| = 0.5; argmin 1/2 (w - 0.3)^2 + 0.5 |w| = 0 exactly.
        let base = SgdConfig::new(0.05);
        let configs = [
            ("plain", base),
            ("momentum 0.9", base.with_momentum(0.9)),
            ("nesterov 0.9", base.with_momentum(0.9).with_nesterov(true)),
            (
                "momentum 0.9, dampening 0.5",
                base.with_momentum(0.9).with_dampening(0.5),
            ),
            (
                "nesterov 0.9, dampening 0.5",
                base.with_momentum(0.9)
                    .with_nesterov(true)
                    .with_dampening(0.5),
            ),
        ];
        for (name, config) in configs {
            let w = minimize(config, 1.0, 0.5);
            assert!((w - 0.5).abs() < 1e-5, "{name}: ended at {w}, expected 0.5");
            let w = minimize(config, 0.3, 0.5);
            assert_eq!(w, 0.0, "{name}: ended at {w}, expected exactly 0");
        }
    }

    #[test]
    fn the_prox_scale_is_the_momentum_steady_state_gain() {
        let base = SgdConfig::new(0.1);
        assert_eq!(base.prox_scale(), 1.0);
        // Dampening has no effect without momentum (there is no buffer).
        assert_eq!(base.with_dampening(0.5).prox_scale(), 1.0);
        let close = |a: f32, b: f32| (a - b).abs() < 1e-5;
        assert!(close(base.with_momentum(0.9).prox_scale(), 10.0));
        assert!(close(
            base.with_momentum(0.9).with_dampening(0.5).prox_scale(),
            5.0
        ));
        assert!(close(
            base.with_momentum(0.9).with_nesterov(true).prox_scale(),
            10.0
        ));
        assert!(close(
            base.with_momentum(0.5)
                .with_nesterov(true)
                .with_dampening(0.5)
                .prox_scale(),
            1.5
        ));
    }
}
