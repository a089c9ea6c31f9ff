//! Rectified linear unit.

use super::{Context, Layer};
use crate::engine::par::CHUNK;
use crate::engine::Tensor;
use rayon::prelude::*;

/// `y = max(x, 0)` (NaN stays NaN, as in PyTorch); backward `dx = dy * [x > 0]`.
#[derive(Default)]
pub struct Relu {
    output: Tensor,
    grad_input: Tensor,
}

impl Layer for Relu {
    fn forward(&mut self, input: &Tensor, _ctx: &mut Context) {
        self.output.reshape_for(input.shape());
        self.output
            .data_mut()
            .par_chunks_mut(CHUNK)
            .zip(input.data().par_chunks(CHUNK))
            .for_each(|(y, x)| {
                for (y, &x) in y.iter_mut().zip(x) {
                    // Not `x.max(0.0)`, which maps NaN to 0 and would hide divergence.
                    *y = if x > 0.0 || x.is_nan() { x } else { 0.0 };
                }
            });
    }

    fn output(&self) -> &Tensor {
        &self.output
    }

    fn backward(&mut self, input: &Tensor, grad_output: &Tensor, need_grad_input: bool) {
        if !need_grad_input {
            return;
        }
        self.grad_input.reshape_for(input.shape());
        self.grad_input
            .data_mut()
            .par_chunks_mut(CHUNK)
            .zip(input.data().par_chunks(CHUNK))
            .zip(grad_output.data().par_chunks(CHUNK))
            .for_each(|((dx, x), dy)| {
                for ((dx, &x), &dy) in dx.iter_mut().zip(x).zip(dy) {
                    *dx = if x > 0.0 { dy } else { 0.0 };
                }
            });
    }

    fn grad_input(&self) -> &Tensor {
        &self.grad_input
    }
}
