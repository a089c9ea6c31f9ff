//! The L1 penalty `R(w) = sum_p l1_p * sum_i |w_pi|` (Keras's `l1`), over the parameters its
//! [`Reach`](super::Reach) resolves, `l1_p` the default strength or a per-layer override.
//!
//! Two ways to minimize it ([`L1Mode`]):
//! - subgradient (the default, as in Keras): the gradient gets `l1 * sign(w)` (`sign(0) = 0`);
//!   weights oscillate around 0 but rarely reach it exactly;
//! - proximal: after each step `w <- sign(w) * max(|w| - t, 0)` with `t = s * l1`, where `s`
//!   is the optimizer's step scale: `K * lr` for SGD (`K` the momentum's steady-state gain: 1
//!   without momentum, `(1 - tau) / (1 - mu)` with momentum `mu` and dampening `tau`,
//!   `1 + mu (1 - tau) / (1 - mu)` with Nesterov; see [`crate::optim::SgdConfig::prox_scale`])
//!   or `lr / (sqrt(v_hat) + eps)` per weight for Adam. This is the exact minimizer of
//!   `1/2 (x - w)^2 + t |x|` around the gradient step, which yields exact zeros; its fixed
//!   points minimize the objective. Zeros are not permanent: a weight at 0 leaves it when its
//!   step exceeds `t` (under Adam, when `|m_hat| > l1`; the momentum `m_hat` still carries
//!   earlier gradients), as the proximal method prescribes.
//!
//! Both are element-wise, so both are [`FusedTerms`] that the optimizer folds into its single
//! pass over each parameter: the proximal step is `FusedTerms::l1_prox`, which the optimizer
//! applies with its own step scale.

use super::{FusedTerms, L1Mode, Reach, Regularizer, RegularizerError, Strengths};
use crate::nn::Param;

/// `l1 * sum|w|` on the reached parameters.
#[derive(Clone, Debug, Default)]
pub struct L1 {
    strengths: Strengths,
    mode: L1Mode,
}

impl L1 {
    /// Resolves `reach` on `params` with default strength `strength`.
    pub fn new(
        strength: f32,
        mode: L1Mode,
        reach: &Reach,
        params: &[&Param],
    ) -> Result<Self, RegularizerError> {
        Ok(Self {
            strengths: reach.resolve(strength, params)?,
            mode,
        })
    }
}

impl Regularizer for L1 {
    fn value(&self, params: &[&Param]) -> f64 {
        params
            .iter()
            .map(|p| {
                let l1 = f64::from(self.strengths.of(&p.name));
                if l1 == 0.0 {
                    return 0.0;
                }
                l1 * p.value.iter().map(|&w| f64::from(w.abs())).sum::<f64>()
            })
            .sum()
    }

    fn fused(&self, param: &Param) -> FusedTerms {
        let l1 = self.strengths.of(&param.name);
        match self.mode {
            L1Mode::Subgradient => FusedTerms {
                l1,
                ..FusedTerms::default()
            },
            L1Mode::Prox => FusedTerms {
                l1_prox: l1,
                ..FusedTerms::default()
            },
        }
    }
}
