//! The L2 penalty `R(w) = sum_p l2_p * sum_i w_pi^2` (Keras's `l2`: no 1/2), over the
//! parameters its [`Reach`](super::Reach) resolves, `l2_p` the default strength or a per-layer
//! override. Its gradient `2 * l2 * w` is element-wise, a [`FusedTerms`] that the optimizer
//! folds into its single pass over each parameter.
//!
//! Coupled weight decay `wd` (an optimizer option, PyTorch's `weight_decay`) is the same as an
//! L2 penalty of `wd / 2` on every trainable parameter; it stays an optimizer option, and
//! [`Regularizers::value`](super::Regularizers::value) counts it in the objective.

use super::{FusedTerms, Reach, Regularizer, RegularizerError, Strengths};
use crate::nn::Param;

/// `l2 * sum w^2` on the reached parameters.
#[derive(Clone, Debug, Default)]
pub struct L2 {
    strengths: Strengths,
}

impl L2 {
    /// Resolves `reach` on `params` with default strength `strength`.
    pub fn new(strength: f32, reach: &Reach, params: &[&Param]) -> Result<Self, RegularizerError> {
        Ok(Self {
            strengths: reach.resolve(strength, params)?,
        })
    }
}

impl Regularizer for L2 {
    fn value(&self, params: &[&Param]) -> f64 {
        params
            .iter()
            .map(|p| {
                let l2 = f64::from(self.strengths.of(&p.name));
                if l2 == 0.0 {
                    return 0.0;
                }
                l2 * p
                    .value
                    .iter()
                    .map(|&w| f64::from(w) * f64::from(w))
                    .sum::<f64>()
            })
            .sum()
    }

    fn fused(&self, param: &Param) -> FusedTerms {
        FusedTerms {
            l2: self.strengths.of(&param.name),
            ..FusedTerms::default()
        }
    }
}
