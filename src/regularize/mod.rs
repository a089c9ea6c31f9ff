//! Weight penalties and the measures of what they do to the weights.
//!
//! A run minimizes, over the trainable parameters `w`,
//!
//! ```text
//! J(w) = data_loss(w) + sum_p ( l1_p * sum_i |w_pi| + l2_p * sum_i w_pi^2 ) + wd/2 * ||w||^2
//! ```
//!
//! where `p` runs over the penalized parameters (kernels by default, Keras's convention, with no
//! 1/2 on the L2 term), `l1_p` and `l2_p` are the default strengths or a per-layer override, and
//! `wd` is the coupled weight decay (PyTorch's `weight_decay` of SGD/Adam, which is the same as
//! an L2 penalty of `wd/2` on every trainable parameter). Decoupled decay (AdamW) is not a term
//! of `J`: it shrinks `w <- w * (1 - lr * d)` at each step.
//!
//! The L1 term is minimized in one of two ways ([`L1Mode`]):
//! - subgradient (the default, as in Keras): the gradient gets `l1 * sign(w)` (`sign(0) = 0`);
//!   weights oscillate around 0 but rarely reach it exactly;
//! - proximal: after each step `w <- sign(w) * max(|w| - t, 0)` with `t = K * lr * l1`
//!   (SGD, `K` the momentum's steady-state gain: 1 without momentum, `(1 - tau) / (1 - mu)`
//!   with momentum `mu` and dampening `tau`, `1 + mu (1 - tau) / (1 - mu)` with Nesterov;
//!   see [`crate::optim::SgdConfig::prox_scale`]) or `t = lr * l1 / (sqrt(v_hat) + eps)`
//!   (Adam, per weight), the exact minimizer of the L1 term around the gradient step, which
//!   yields exact zeros; its fixed points minimize `J`. Zeros are not permanent: a weight at
//!   0 leaves it when its step exceeds `t` (under Adam, when `|m_hat| > l1`; the momentum
//!   `m_hat` still carries earlier gradients), as the proximal method prescribes.
//!
//! Both act inside the optimizer's single pass over each parameter, through
//! [`crate::optim::StepHook`] ([`PenaltyPlan`] is one): no extra pass over the weights.

mod penalty;
mod sparsity;

pub use penalty::{L1Mode, LayerStrength, PenaltyError, PenaltyKind, PenaltyPlan, PenaltyRule};
pub use sparsity::{kernel_sparsity, LayerStats, SparsityReport, WeightStats, THRESHOLDS};
