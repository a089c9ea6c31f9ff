//! Max, average and global average pooling over channels-last images (no padding).

use super::{Context, Layer};
use crate::engine::Tensor;
use rayon::prelude::*;

/// Output side of a pooling window: `(size - kernel) / stride + 1` (PyTorch's floor rule).
fn pooled(size: usize, kernel: usize, stride: usize) -> usize {
    (size - kernel) / stride + 1
}

/// `y[n, oy, ox, c] = max over the k x k window at (oy*s, ox*s)`; backward routes each output
/// gradient to the first maximal input of its window (PyTorch's tie rule).
pub struct MaxPool2d {
    kernel: usize,
    stride: usize,
    /// For each output element, the index of its maximal input within its image.
    argmax: Vec<u32>,
    output: Tensor,
    grad_input: Tensor,
}

impl MaxPool2d {
    pub fn new(kernel: usize, stride: usize) -> Self {
        Self {
            kernel,
            stride,
            argmax: Vec::new(),
            output: Tensor::default(),
            grad_input: Tensor::default(),
        }
    }
}

impl Layer for MaxPool2d {
    fn forward(&mut self, input: &Tensor, _ctx: &mut Context) {
        let (n, h, w, c) = input.nhwc();
        let (oh, ow) = (
            pooled(h, self.kernel, self.stride),
            pooled(w, self.kernel, self.stride),
        );
        self.output.reshape_for(&[n, oh, ow, c]);
        self.argmax.resize(self.output.len(), 0);
        let (k, s) = (self.kernel, self.stride);
        self.output
            .data_mut()
            .par_chunks_mut(oh * ow * c)
            .zip(self.argmax.par_chunks_mut(oh * ow * c))
            .zip(input.data().par_chunks(h * w * c))
            .for_each(|((out, arg), image)| {
                for (o, (out_px, arg_px)) in out
                    .chunks_exact_mut(c)
                    .zip(arg.chunks_exact_mut(c))
                    .enumerate()
                {
                    let (oy, ox) = (o / ow, o % ow);
                    out_px.fill(f32::NEG_INFINITY);
                    for ky in 0..k {
                        for kx in 0..k {
                            let at = ((oy * s + ky) * w + ox * s + kx) * c;
                            for ch in 0..c {
                                let v = image[at + ch];
                                if v > out_px[ch] || v.is_nan() {
                                    out_px[ch] = v;
                                    arg_px[ch] = (at + ch) as u32;
                                }
                            }
                        }
                    }
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
        let image_len = input.item_len();
        let out_len = grad_output.item_len();
        self.grad_input
            .data_mut()
            .par_chunks_mut(image_len)
            .zip(grad_output.data().par_chunks(out_len))
            .zip(self.argmax.par_chunks(out_len))
            .for_each(|((dx, dy), arg)| {
                dx.fill(0.0);
                for (&g, &i) in dy.iter().zip(arg) {
                    dx[i as usize] += g;
                }
            });
    }

    fn grad_input(&self) -> &Tensor {
        &self.grad_input
    }
}

/// `y[n, oy, ox, c] = mean over the k x k window at (oy*s, ox*s)`; backward spreads each output
/// gradient evenly over its window.
pub struct AvgPool2d {
    kernel: usize,
    stride: usize,
    output: Tensor,
    grad_input: Tensor,
}

impl AvgPool2d {
    pub fn new(kernel: usize, stride: usize) -> Self {
        Self {
            kernel,
            stride,
            output: Tensor::default(),
            grad_input: Tensor::default(),
        }
    }
}

impl Layer for AvgPool2d {
    fn forward(&mut self, input: &Tensor, _ctx: &mut Context) {
        let (n, h, w, c) = input.nhwc();
        let (k, s) = (self.kernel, self.stride);
        let (oh, ow) = (pooled(h, k, s), pooled(w, k, s));
        self.output.reshape_for(&[n, oh, ow, c]);
        let scale = 1.0 / (k * k) as f32;
        self.output
            .data_mut()
            .par_chunks_mut(oh * ow * c)
            .zip(input.data().par_chunks(h * w * c))
            .for_each(|(out, image)| {
                for (o, out_px) in out.chunks_exact_mut(c).enumerate() {
                    let (oy, ox) = (o / ow, o % ow);
                    out_px.fill(0.0);
                    for ky in 0..k {
                        for kx in 0..k {
                            let at = ((oy * s + ky) * w + ox * s + kx) * c;
                            for (y, &x) in out_px.iter_mut().zip(&image[at..at + c]) {
                                *y += x;
                            }
                        }
                    }
                    out_px.iter_mut().for_each(|y| *y *= scale);
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
        let (_, h, w, c) = input.nhwc();
        let (_, oh, ow, _) = grad_output.nhwc();
        let (k, s) = (self.kernel, self.stride);
        let scale = 1.0 / (k * k) as f32;
        self.grad_input.reshape_for(input.shape());
        self.grad_input
            .data_mut()
            .par_chunks_mut(h * w * c)
            .zip(grad_output.data().par_chunks(oh * ow * c))
            .for_each(|(dx, dy)| {
                dx.fill(0.0);
                for (o, dy_px) in dy.chunks_exact(c).enumerate() {
                    let (oy, ox) = (o / ow, o % ow);
                    for ky in 0..k {
                        for kx in 0..k {
                            let at = ((oy * s + ky) * w + ox * s + kx) * c;
                            for (g, &d) in dx[at..at + c].iter_mut().zip(dy_px) {
                                *g += d * scale;
                            }
                        }
                    }
                }
            });
    }

    fn grad_input(&self) -> &Tensor {
        &self.grad_input
    }
}

/// `[N, H, W, C] -> [N, C]`: the mean of each channel over the image (PyTorch's
/// `adaptive_avg_pool2d(x, 1).flatten(1)`).
#[derive(Default)]
pub struct GlobalAvgPool {
    output: Tensor,
    grad_input: Tensor,
}

impl Layer for GlobalAvgPool {
    fn forward(&mut self, input: &Tensor, _ctx: &mut Context) {
        let (n, h, w, c) = input.nhwc();
        self.output.reshape_for(&[n, c]);
        let scale = 1.0 / (h * w) as f32;
        self.output
            .data_mut()
            .par_chunks_mut(c)
            .zip(input.data().par_chunks(h * w * c))
            .for_each(|(y, image)| {
                y.fill(0.0);
                for px in image.chunks_exact(c) {
                    for (y, &x) in y.iter_mut().zip(px) {
                        *y += x;
                    }
                }
                y.iter_mut().for_each(|y| *y *= scale);
            });
    }

    fn output(&self) -> &Tensor {
        &self.output
    }

    fn backward(&mut self, input: &Tensor, grad_output: &Tensor, need_grad_input: bool) {
        if !need_grad_input {
            return;
        }
        let (_, h, w, c) = input.nhwc();
        let scale = 1.0 / (h * w) as f32;
        self.grad_input.reshape_for(input.shape());
        self.grad_input
            .data_mut()
            .par_chunks_mut(h * w * c)
            .zip(grad_output.data().par_chunks(c))
            .for_each(|(dx, dy)| {
                for px in dx.chunks_exact_mut(c) {
                    for (g, &d) in px.iter_mut().zip(dy) {
                        *g = d * scale;
                    }
                }
            });
    }

    fn grad_input(&self) -> &Tensor {
        &self.grad_input
    }
}
