//! The contract every layer keeps.

use super::Param;
use crate::engine::{Precision, Rng, Tensor};

/// What a forward pass needs besides its input.
#[derive(Clone, Debug)]
pub struct Context {
    /// Training mode: batch statistics in batch norm, active dropout.
    pub training: bool,
    /// The stream dropout masks are drawn from; part of a run's checkpoint.
    pub rng: Rng,
}

impl Context {
    pub fn train(rng: Rng) -> Self {
        Self {
            training: true,
            rng,
        }
    }

    pub fn eval() -> Self {
        Self {
            training: false,
            rng: Rng::new(0),
        }
    }
}

/// A differentiable layer. Shapes include the batch dimension first; images are NHWC.
///
/// The network calls `forward` for every layer in order, then `backward` in reverse order with
/// the same `input` the layer saw in `forward` (the previous layer's output, or the batch).
pub trait Layer: Send {
    /// Computes [`Layer::output`] from `input`.
    fn forward(&mut self, input: &Tensor, ctx: &mut Context);

    /// The result of the last `forward`.
    fn output(&self) -> &Tensor;

    /// Given dLoss/dOutput, writes (not adds) the parameter gradients and, when
    /// `need_grad_input`, dLoss/dInput into [`Layer::grad_input`].
    fn backward(&mut self, input: &Tensor, grad_output: &Tensor, need_grad_input: bool);

    /// dLoss/dInput from the last `backward` that asked for it.
    fn grad_input(&self) -> &Tensor;

    /// The layer's parameters and buffers, in a fixed order.
    fn params(&self) -> Vec<&Param> {
        Vec::new()
    }

    /// The layer's parameters and buffers, mutably, in the same order.
    fn params_mut(&mut self) -> Vec<&mut Param> {
        Vec::new()
    }

    /// Sets how the layer's matrix products multiply (fp32 unless set); layers without
    /// products ignore it.
    fn set_precision(&mut self, _precision: Precision) {}
}
