//! Group lasso, `R(w) = sum_p lambda_p * sum_g sqrt(|g|) * ||w_g||_2`, where the groups `g` of
//! a parameter are its output channels (a convolution's filters) or output units (a linear
//! layer's rows), see [`group_size`], and `|g|` is a group's size (Yuan and Lin 2006; the
//! `sqrt(|g|)` weighs groups of different sizes alike). It drives whole groups to zero:
//! structured sparsity that a smaller network can exploit.
//!
//! Two ways to minimize it ([`GroupMode`]):
//! - subgradient: the gradient gets `lambda * sqrt(|g|) * w_g / ||w_g||` (0 for a zero group),
//!   added before the optimizer's step ([`Regularizer::add_gradient`]); groups approach zero
//!   but rarely reach it;
//! - proximal (group soft-thresholding), after the optimizer's step:
//!   `w_g <- max(0, 1 - t_g / ||w_g||) * w_g` with `t_g = s_g * lambda * sqrt(|g|)`, the exact
//!   minimizer of `1/2 ||x - w_g||^2 + t_g ||x||` with a uniform step scale `s_g` (SGD:
//!   `s_g = K * lr`, as for proximal L1). A group whose norm is at most `t_g` becomes exactly 0.
//!
//! Under Adam each weight has its own scale `s_i = lr / d_i`, `d_i = sqrt(v_hat_i) + eps`, and
//! the preconditioned group prox has no closed form. The rule used is the group's harmonic mean
//! scale, `s_g = lr / mean_{i in g} d_i` ([`crate::optim::StepScale::of_range`]). Its fixed points, with
//! `D = diag(s_i)` and `grad_g` the smooth gradient: a nonzero group is fixed when `grad_g =
//! -lambda * sqrt(|g|) * s_g * D^-1 * w_g / ||w_g||`, a zero group when `||D grad_g|| <= s_g *
//! lambda * sqrt(|g|)`. When a group's scales are equal (`D = s_g I`) these are exactly the
//! optimality conditions of the objective; otherwise each weight's share of the penalty is
//! reweighted by `s_g / s_i = d_i / mean d`, close to 1 when a group's second moments are
//! alike. The harmonic mean, not the arithmetic one, because a weight that has had no
//! gradient (an input that a ReLU keeps at 0) has `d_i = eps` and `s_i = lr / eps`: in an
//! arithmetic mean that one weight would set the threshold and zero a group that the data
//! still pulls on, and a zeroed group behind a ReLU gets no gradient to leave 0.

use super::{group_size, Reach, Regularizer, RegularizerError, StepInfo, Strengths};
use crate::nn::Param;
use serde::{Deserialize, Serialize};

/// How group lasso is minimized.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GroupMode {
    /// `lambda * sqrt(|g|) * w_g / ||w_g||` added to the gradient.
    #[default]
    Subgradient,
    /// Group soft-thresholding after each step; zeroes whole groups.
    Prox,
}

/// `lambda * sum_g sqrt(|g|) ||w_g||` on the reached parameters.
#[derive(Clone, Debug, Default)]
pub struct GroupLasso {
    strengths: Strengths,
    mode: GroupMode,
}

/// `||x||_2` in f64.
fn norm(x: &[f32]) -> f64 {
    x.iter()
        .map(|&v| f64::from(v) * f64::from(v))
        .sum::<f64>()
        .sqrt()
}

/// The proximal operator of `t * ||x||_2`: `x <- max(0, 1 - t / ||x||) * x`.
pub fn group_soft_threshold(x: &mut [f32], t: f64) {
    let n = norm(x);
    let shrink = if n > t { (1.0 - t / n) as f32 } else { 0.0 };
    x.iter_mut().for_each(|v| *v *= shrink);
}

impl GroupLasso {
    /// Resolves `reach` on `params` with default strength `strength`.
    pub fn new(
        strength: f32,
        mode: GroupMode,
        reach: &Reach,
        params: &[&Param],
    ) -> Result<Self, RegularizerError> {
        Ok(Self {
            strengths: reach.resolve(strength, params)?,
            mode,
        })
    }

    /// `lambda * sqrt(|g|)` of `param`'s groups.
    fn group_weight(&self, param: &Param) -> f64 {
        f64::from(self.strengths.of(&param.name)) * (group_size(param) as f64).sqrt()
    }

    fn prox(&self, param: &mut Param, step: &StepInfo) {
        let weight = self.group_weight(param);
        if weight == 0.0 {
            return;
        }
        let size = group_size(param);
        let scale = step.scale(param);
        for (i, g) in param.value.chunks_mut(size).enumerate() {
            group_soft_threshold(g, scale.of_range(i * size..(i + 1) * size) * weight);
        }
    }
}

impl Regularizer for GroupLasso {
    fn value(&self, params: &[&Param]) -> f64 {
        params
            .iter()
            .map(|p| {
                let weight = self.group_weight(p);
                if weight == 0.0 {
                    return 0.0;
                }
                weight * p.value.chunks(group_size(p)).map(norm).sum::<f64>()
            })
            .sum()
    }

    fn add_gradient(&self, param: &mut Param) {
        let weight = self.group_weight(param);
        if self.mode != GroupMode::Subgradient || weight == 0.0 {
            return;
        }
        let size = group_size(param);
        for (w, g) in param.value.chunks(size).zip(param.grad.chunks_mut(size)) {
            let n = norm(w);
            if n > 0.0 {
                let k = (weight / n) as f32;
                g.iter_mut().zip(w).for_each(|(g, &w)| *g += k * w);
            }
        }
    }

    fn after_step(&mut self, params: &mut [&mut Param], step: &StepInfo) {
        if self.mode == GroupMode::Prox {
            for p in params.iter_mut().filter(|p| p.kind.is_trainable()) {
                self.prox(p, step);
            }
        }
    }
}
