//! Regularizers, and the measures of what they do to the weights.
//!
//! A run minimizes, over the trainable parameters `w`,
//!
//! ```text
//! J(w) = data_loss(w) + sum_r R_r(w) + wd/2 * ||w||^2
//! ```
//!
//! where each `R_r` is one [`Regularizer`] of the run's set ([`Regularizers`]) and `wd` is the
//! coupled weight decay (PyTorch's `weight_decay` of SGD/Adam, the same as an L2 penalty of
//! `wd/2` on every trainable parameter, applied by the optimizer). Decoupled decay (AdamW) is
//! not a term of `J`: the optimizer shrinks `w <- w * (1 - lr * d)` at each step. The
//! regularizers, one file each:
//!
//! - [`l1`]: `l1 * sum|w|`, by subgradient (Keras) or by its proximal operator (exact zeros);
//! - [`l2`]: `l2 * sum w^2` (Keras's convention: no 1/2);
//! - elastic net is L1 and L2 both in the set (Keras's `l1_l2`);
//! - [`group_lasso`]: `lambda * sum_g sqrt(|g|) * ||w_g||_2` over the output channels of a
//!   convolution or the output units of a linear layer, by subgradient or by group
//!   soft-thresholding, which zeroes whole filters;
//! - [`magnitude_pruning`]: not a term but a constraint, `||w||_0 <= (1 - s_t) n`, with the
//!   target sparsity `s_t` raised on Zhu and Gupta's (2017) polynomial schedule.
//!
//! Each regularizer acts on the parameters its [`Reach`] resolves (kernels by default) and
//! takes part in a training step in up to three places:
//!
//! 1. [`Regularizer::add_gradient`], before the optimizer's step, adds a gradient that is not
//!    element-wise (group lasso's subgradient);
//! 2. [`Regularizer::fused`], inside the optimizer's single pass over each parameter, gives the
//!    element-wise terms [`FusedTerms`] that the optimizer folds into its update: the gradient
//!    `l1 * sign(w) + 2 * l2 * w` and the proximal L1 step (no extra pass over the weights);
//! 3. [`Regularizer::after_step`], after the optimizer's update, applies proximal operators
//!    and masks, given the optimizer's per-weight step scale ([`StepScale`]: `K * lr` for SGD,
//!    `K` its momentum's steady-state gain, [`crate::optim::SgdConfig::prox_scale`];
//!    `lr / (sqrt(v_hat) + eps)` per weight for Adam).
//!
//! A step is: forward, loss, backward, [`Regularizers::add_gradients`],
//! `optimizer.step(params, &regularizers)`, [`Regularizers::after_step`].
//!
//! State that must survive a resume (pruning masks) is [`Regularizer::state`], saved in the
//! run's checkpoint. Weight statistics (sparsity, groups entirely zero, histograms) are in
//! [`weight_stats`].

pub mod group_lasso;
pub mod l1;
pub mod l2;
pub mod magnitude_pruning;
mod penalty;
mod reach;
mod set;
pub mod spec;
#[cfg(test)]
mod tests;
pub mod weight_stats;

pub use crate::optim::PenaltyTerms as FusedTerms;
pub use group_lasso::{GroupLasso, GroupMode};
pub use l1::L1;
pub use l2::L2;
pub use magnitude_pruning::{MagnitudePruning, PruningSchedule, PruningScope};
pub use penalty::{L1Mode, LayerStrength, PenaltyKind};
pub use reach::{covers, Reach, ReachError, Strengths};
pub use set::{RegularizerPlan, Regularizers};
pub use spec::{one_or_many, RegularizerKind, RegularizerSpec, SpecParseError};
pub use weight_stats::{
    kernel_histogram, kernel_sparsity, LayerStats, SparsityReport, WeightHistogram,
    WeightStatistics, WeightStats, THRESHOLDS,
};

use crate::nn::Param;
use crate::optim::{Optimizer, StepScale};
use std::collections::BTreeMap;
use std::fmt::Debug;

/// The optimizer's step just taken, as [`Regularizer::after_step`] sees it.
pub struct StepInfo<'a> {
    /// Steps the optimizer has taken, this one included (1 after the first step).
    pub step: u64,
    optimizer: &'a dyn Optimizer,
}

impl<'a> StepInfo<'a> {
    /// The step just taken by `optimizer`.
    pub fn of(optimizer: &'a dyn Optimizer) -> Self {
        Self {
            step: optimizer.steps(),
            optimizer,
        }
    }

    /// The scale of `param`'s step: multiplied by a gradient it gives the step's change.
    pub fn scale(&self, param: &Param) -> StepScale<'a> {
        self.optimizer.step_scale(param)
    }
}

/// What a regularizer must save to continue bit for bit: named tensors (in the order of the
/// parameters' values). Counters are not needed: schedules follow the optimizer's step
/// count, which the optimizer's state saves.
pub type RegularizerState = BTreeMap<String, Vec<f32>>;

/// A regularizer's set-up or saved state that does not fit the network.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum RegularizerError {
    #[error(transparent)]
    Reach(#[from] ReachError),
    #[error("regularizer state `{name}` has {found} values, parameter has {expected}")]
    WrongLength {
        name: String,
        expected: usize,
        found: usize,
    },
    #[error("regularizer state `{0}` matches no regularizer of this run")]
    UnexpectedTensor(String),
    #[error("regularizer state `{name}` is invalid: {problem}")]
    InvalidTensor { name: String, problem: String },
}

/// One regularizer of a run, resolved to one network's parameters.
///
/// Every method has a default that does nothing, so that a regularizer implements only the
/// parts it has.
pub trait Regularizer: Send + Sync + Debug {
    /// Its value at `params`, in f64 (0 for a constraint such as pruning).
    fn value(&self, _params: &[&Param]) -> f64 {
        0.0
    }

    /// The element-wise terms the optimizer folds into its pass over `param`.
    fn fused(&self, _param: &Param) -> FusedTerms {
        FusedTerms::default()
    }

    /// Adds a gradient that is not element-wise to `param.grad`, before the optimizer's step.
    fn add_gradient(&self, _param: &mut Param) {}

    /// Acts on the parameters after the optimizer's step: proximal operators, masks.
    fn after_step(&mut self, _params: &mut [&mut Param], _step: &StepInfo) {}

    /// What a resume needs (see [`RegularizerState`]); names are unique across regularizers.
    fn state(&self) -> RegularizerState {
        RegularizerState::new()
    }

    /// Restores a state saved by [`Regularizer::state`]; `state` holds this regularizer's
    /// tensors only, `params` is the network. A state that does not fit is refused, naming
    /// the tensor.
    fn load_state(
        &mut self,
        state: &RegularizerState,
        _params: &[&Param],
    ) -> Result<(), RegularizerError> {
        match state.keys().next() {
            Some(name) => Err(RegularizerError::UnexpectedTensor(name.clone())),
            None => Ok(()),
        }
    }

    /// The names its state may use: a tensor is this regularizer's when its name starts with
    /// this prefix.
    fn state_prefix(&self) -> &str {
        ""
    }
}

/// The output groups of a kernel: its rows along the first dimension (PyTorch's
/// `[out, ...]`), the output channels of a convolution or the output units of a linear layer.
/// Both storage layouts keep `out` first, so each group is a contiguous run of `len / out`
/// values. In a parameter of one dimension (a bias) each value is its own group.
pub fn group_size(param: &Param) -> usize {
    match param.shape.first() {
        Some(&out) if out > 0 => (param.len() / out).max(1),
        _ => param.len().max(1),
    }
}
