//! Inverted dropout.

use super::{Context, Layer};
use crate::engine::Tensor;

/// Training: `y = x * m / (1 - p)` with `m ~ Bernoulli(1 - p)` drawn from the context's
/// generator; evaluation: `y = x`. Scaling at training time keeps the expected activation
/// unchanged, so evaluation needs no rescaling (PyTorch's and Keras's convention).
pub struct Dropout {
    p: f32,
    /// `1 / (1 - p)` where kept, 0 where dropped, for the last training forward.
    scale: Vec<f32>,
    training: bool,
    output: Tensor,
    grad_input: Tensor,
}

impl Dropout {
    /// `p` in [0, 1): the probability of zeroing an element.
    ///
    /// # Panics
    /// If `p` is outside [0, 1) (model specs reject such values with an error first).
    pub fn new(p: f32) -> Self {
        assert!(
            (0.0..1.0).contains(&p),
            "dropout probability {p} outside [0, 1)"
        );
        Self {
            p,
            scale: Vec::new(),
            training: false,
            output: Tensor::default(),
            grad_input: Tensor::default(),
        }
    }
}

impl Layer for Dropout {
    fn forward(&mut self, input: &Tensor, ctx: &mut Context) {
        self.training = ctx.training && self.p > 0.0;
        self.output.reshape_for(input.shape());
        if !self.training {
            self.output.data_mut().copy_from_slice(input.data());
            return;
        }
        let keep_scale = 1.0 / (1.0 - self.p);
        self.scale.clear();
        let p = self.p;
        self.scale.extend((0..input.len()).map(|_| {
            if ctx.rng.next_f32() < p {
                0.0
            } else {
                keep_scale
            }
        }));
        for ((y, &x), &s) in self
            .output
            .data_mut()
            .iter_mut()
            .zip(input.data())
            .zip(&self.scale)
        {
            *y = x * s;
        }
    }

    fn output(&self) -> &Tensor {
        &self.output
    }

    fn backward(&mut self, input: &Tensor, grad_output: &Tensor, need_grad_input: bool) {
        if !need_grad_input {
            return;
        }
        self.grad_input.reshape_for(input.shape());
        let dx = self.grad_input.data_mut();
        if self.training {
            for ((dx, &dy), &s) in dx.iter_mut().zip(grad_output.data()).zip(&self.scale) {
                *dx = dy * s;
            }
        } else {
            dx.copy_from_slice(grad_output.data());
        }
    }

    fn grad_input(&self) -> &Tensor {
        &self.grad_input
    }
}
