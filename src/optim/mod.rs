//! Optimizers with PyTorch's exact update rules, and the hook through which penalties act on
//! parameters inside the optimizer's single pass over them.
//!
//! Two kinds of weight decay are distinct, named options, because they are different
//! objectives:
//! - `weight_decay` (coupled, PyTorch's `SGD`/`Adam` argument): `g <- g + wd * w` before the
//!   update, the gradient of an L2 penalty `wd/2 * ||w||^2` (with Adam it is then rescaled per
//!   weight by the adaptive denominator);
//! - `decoupled_decay` (AdamW, Loshchilov and Hutter 2019): `w <- w * (1 - lr * wd)` before the
//!   update, independent of the gradient statistics.
//!
//! Both act on every trainable parameter (kernels, biases, batch-norm scale and shift), as in
//! PyTorch; buffers are never touched. Penalties that act on chosen parameters only come in
//! through a [`StepHook`].

mod adam;
mod sgd;

pub use adam::{Adam, AdamConfig, AdaptiveScale};
pub use sgd::{Sgd, SgdConfig};

use crate::nn::Param;
use std::collections::BTreeMap;
use std::ops::Range;

/// Per-parameter penalty coefficients that an optimizer folds into its update.
///
/// For a parameter `w` the optimizer uses the gradient `g + l1 * sign(w) + 2 * l2 * w` (the
/// gradient of `l1 * sum|w| + l2 * sum w^2`, with `sign(0) = 0` as in Keras), and after the
/// update applies the proximal step of `l1_prox * sum|w|`: soft-thresholding
/// `w <- sign(w) * max(|w| - t, 0)` with `t = K * lr * l1_prox` for SGD (`K` the momentum's
/// steady-state gain, [`SgdConfig::prox_scale`]: 1 without momentum, `(1 - tau) / (1 - mu)`
/// classical, `1 + mu (1 - tau) / (1 - mu)` Nesterov) and
/// `t = lr * l1_prox / (sqrt(v_hat) + eps)` for Adam (Adam's per-weight scale, without the
/// first-moment bias correction), which sets small weights exactly to 0. Either way the
/// fixed points are the minimizers of the smooth part plus `l1_prox * sum|w|`. The zeros are
/// not permanent: a zero weight leaves 0 when its step before thresholding exceeds `t` (for
/// Adam, when `|m_hat| > l1_prox`, where the momentum still carries earlier gradients).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct PenaltyTerms {
    pub l1: f32,
    pub l2: f32,
    pub l1_prox: f32,
}

impl PenaltyTerms {
    pub fn is_zero(&self) -> bool {
        self.l1 == 0.0 && self.l2 == 0.0 && self.l1_prox == 0.0
    }

    /// The penalty's (sub)gradient at `w`.
    #[inline]
    pub fn gradient(&self, w: f32) -> f32 {
        let sign = if w > 0.0 {
            1.0
        } else if w < 0.0 {
            -1.0
        } else {
            0.0
        };
        self.l1 * sign + 2.0 * self.l2 * w
    }
}

/// Soft-thresholding, the proximal operator of `t * |w|`.
#[inline]
pub fn soft_threshold(w: f32, t: f32) -> f32 {
    if w > t {
        w - t
    } else if w < -t {
        w + t
    } else {
        0.0
    }
}

/// Decides the penalty terms for each parameter; called once per parameter per step.
pub trait StepHook: Sync {
    fn terms(&self, param: &Param) -> PenaltyTerms;
}

/// No penalty on any parameter.
pub struct NoPenalty;

impl StepHook for NoPenalty {
    fn terms(&self, _param: &Param) -> PenaltyTerms {
        PenaltyTerms::default()
    }
}

/// An optimizer's state, in a form that checkpoints save and load.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct OptimizerState {
    /// `sgd` or `adam`.
    pub algorithm: String,
    /// Steps taken so far.
    pub step: u64,
    /// Per-parameter slots named `{param}.{slot}` (PyTorch's names: `momentum_buffer`,
    /// `exp_avg`, `exp_avg_sq`), in PyTorch's element order.
    pub tensors: BTreeMap<String, Vec<f32>>,
}

/// A state that does not fit the optimizer or the network.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum StateError {
    #[error("optimizer state is for `{found}`, expected `{expected}`")]
    WrongAlgorithm { expected: String, found: String },
    #[error("optimizer state `{name}` has {found} values, parameter has {expected}")]
    WrongLength {
        name: String,
        expected: usize,
        found: usize,
    },
    #[error("optimizer state has no `{0}`, though steps were taken")]
    MissingSlot(String),
    #[error("optimizer state `{0}` matches no parameter of this model")]
    UnexpectedSlot(String),
}

/// How far a step moves a parameter per unit of gradient: the `s` of a proximal step
/// `w <- prox_{s * R}(w - s * g)` that matches the optimizer's update.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum StepScale<'a> {
    /// One scale for every weight (SGD: `K * lr`, see [`SgdConfig::prox_scale`]).
    Uniform(f32),
    /// A scale per weight (Adam: `lr / (sqrt(v_hat) + eps)`).
    Adaptive(AdaptiveScale<'a>),
}

impl StepScale<'_> {
    /// The scale of the parameter's `i`-th value.
    pub fn at(&self, i: usize) -> f32 {
        match self {
            Self::Uniform(s) => *s,
            Self::Adaptive(a) => a.at(i),
        }
    }

    /// One scale for the values in `range`, for an operator that needs a single one (a
    /// group's proximal step): the harmonic mean of their scales, `n / sum_i 1/s_i`, which for
    /// Adam is `lr / mean_i d_i`. A weight that has had no gradient has `d_i = eps` and
    /// `s_i = lr / eps`; in the arithmetic mean that one weight would outweigh all others (by
    /// 1e5 at `eps = 1e-8`), in the harmonic mean it adds at most a factor `n / (n - 1)`.
    pub fn of_range(&self, range: Range<usize>) -> f64 {
        match self {
            Self::Uniform(s) => f64::from(*s),
            Self::Adaptive(a) => a.harmonic_mean(range),
        }
    }
}

/// A gradient-descent optimizer.
pub trait Optimizer: Send {
    /// Updates every trainable parameter from its gradient, folding in `hook`'s penalties.
    fn step(&mut self, params: &mut [&mut Param], hook: &dyn StepHook);
    fn learning_rate(&self) -> f32;
    /// Steps taken so far.
    fn steps(&self) -> u64;
    /// The scale of the last step on `param`, the one its fused proximal L1 step used.
    fn step_scale(&self, param: &Param) -> StepScale<'_>;
    /// The state, with slots reordered to PyTorch's element order using `params`.
    fn state(&self, params: &[&Param]) -> OptimizerState;
    /// Restores a state saved by [`Optimizer::state`] for the same network.
    fn load_state(&mut self, state: &OptimizerState, params: &[&Param]) -> Result<(), StateError>;
}

/// Shared bookkeeping: per-parameter slot vectors, keyed by parameter name.
#[derive(Clone, Debug, Default)]
struct Slots {
    by_param: BTreeMap<String, Vec<Vec<f32>>>,
}

impl Slots {
    /// The `count` slot vectors of `param`, created zeroed on first use, and whether they were
    /// created just now (PyTorch's "no state yet" for this parameter).
    fn of(&mut self, param: &Param, count: usize) -> (&mut [Vec<f32>], bool) {
        let created = !self.by_param.contains_key(&param.name);
        if created {
            self.by_param
                .insert(param.name.clone(), vec![vec![0.0; param.len()]; count]);
        }
        let slots = self.by_param.get_mut(&param.name).expect("inserted above");
        (slots, created)
    }

    fn export(&self, names: &[&str], params: &[&Param]) -> BTreeMap<String, Vec<f32>> {
        let mut out = BTreeMap::new();
        for p in params {
            if let Some(slots) = self.by_param.get(&p.name) {
                for (slot, data) in names.iter().zip(slots) {
                    out.insert(format!("{}.{slot}", p.name), p.to_pytorch_order_of(data));
                }
            }
        }
        out
    }

    /// Restores slots saved by [`Slots::export`]. After any step every trainable parameter must
    /// have every slot, and no slot may name another parameter: a state that does not fit is
    /// refused rather than partly applied.
    fn import(
        &mut self,
        names: &[&str],
        state: &OptimizerState,
        params: &[&Param],
    ) -> Result<(), StateError> {
        let mut restored = BTreeMap::new();
        let mut used = 0;
        for p in params.iter().filter(|p| p.kind.is_trainable()) {
            let mut slots = Vec::new();
            for slot in names {
                let key = format!("{}.{slot}", p.name);
                match state.tensors.get(&key) {
                    Some(data) if data.len() != p.len() => {
                        return Err(StateError::WrongLength {
                            name: key,
                            expected: p.len(),
                            found: data.len(),
                        })
                    }
                    Some(data) => slots.push(p.from_pytorch_order(data)),
                    None if state.step > 0 => return Err(StateError::MissingSlot(key)),
                    None => {}
                }
            }
            used += slots.len();
            if !slots.is_empty() {
                restored.insert(p.name.clone(), slots);
            }
        }
        if used != state.tensors.len() {
            let known = |k: &String| {
                params
                    .iter()
                    .any(|p| names.iter().any(|s| *k == format!("{}.{s}", p.name)))
            };
            let extra = state
                .tensors
                .keys()
                .find(|k| !known(k))
                .cloned()
                .unwrap_or_default();
            return Err(StateError::UnexpectedSlot(extra));
        }
        self.by_param = restored;
        Ok(())
    }
}

fn check_algorithm(state: &OptimizerState, expected: &str) -> Result<(), StateError> {
    if state.algorithm == expected {
        Ok(())
    } else {
        Err(StateError::WrongAlgorithm {
            expected: expected.into(),
            found: state.algorithm.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn soft_threshold_zeroes_small_weights_and_shrinks_large_ones() {
        assert_eq!(soft_threshold(0.05, 0.1), 0.0);
        assert_eq!(soft_threshold(-0.05, 0.1), 0.0);
        assert!((soft_threshold(0.5, 0.1) - 0.4).abs() < 1e-7);
        assert!((soft_threshold(-0.5, 0.1) + 0.4).abs() < 1e-7);
    }

    #[test]
    fn penalty_gradient_is_the_derivative_of_the_penalty() {
        let t = PenaltyTerms {
            l1: 0.3,
            l2: 0.2,
            l1_prox: 0.0,
        };
        let penalty = |w: f64| 0.3 * w.abs() + 0.2 * w * w;
        for w in [-1.5f32, -0.2, 0.4, 2.0] {
            let fd = (penalty(w as f64 + 1e-6) - penalty(w as f64 - 1e-6)) / 2e-6;
            assert!((fd - t.gradient(w) as f64).abs() < 1e-5, "{w}");
        }
        assert_eq!(t.gradient(0.0), 0.0);
    }
}
