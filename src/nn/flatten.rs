//! Flattening images into feature vectors in PyTorch's order.

use super::{Context, Layer};
use crate::engine::Tensor;
use rayon::prelude::*;

/// `[N, H, W, C] -> [N, C*H*W]`, ordered `(c, h, w)` as PyTorch's `flatten(1)` of an NCHW
/// tensor, so a following linear layer has exactly PyTorch's weight matrix. A 2-D input passes
/// through unchanged.
#[derive(Default)]
pub struct Flatten {
    output: Tensor,
    grad_input: Tensor,
}

/// Copies `src` (an `[rows, cols]` matrix per image) transposed into `dst`, image by image.
fn transpose_images(src: &[f32], dst: &mut [f32], rows: usize, cols: usize) {
    let len = rows * cols;
    dst.par_chunks_mut(len)
        .zip(src.par_chunks(len))
        .for_each(|(d, s)| {
            for r in 0..rows {
                for c in 0..cols {
                    d[c * rows + r] = s[r * cols + c];
                }
            }
        });
}

impl Layer for Flatten {
    fn forward(&mut self, input: &Tensor, _ctx: &mut Context) {
        let n = input.batch();
        self.output.reshape_for(&[n, input.item_len()]);
        if let [_, h, w, c] = input.shape()[..] {
            transpose_images(input.data(), self.output.data_mut(), h * w, c);
        } else {
            self.output.data_mut().copy_from_slice(input.data());
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
        if let [_, h, w, c] = input.shape()[..] {
            transpose_images(grad_output.data(), self.grad_input.data_mut(), c, h * w);
        } else {
            self.grad_input
                .data_mut()
                .copy_from_slice(grad_output.data());
        }
    }

    fn grad_input(&self) -> &Tensor {
        &self.grad_input
    }
}
