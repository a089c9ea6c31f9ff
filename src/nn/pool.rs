//! Max, average and global average pooling over channels-last images.
//!
//! Max pooling takes an optional implicit border ([`MaxPool2d::with_padding`]) of `-inf`, so a
//! padded position never wins, and its output side is `(size + 2*padding - kernel) / stride + 1`
//! (PyTorch's `MaxPool2d(padding=...)`, as ResNet's stem uses). Average pooling has no padding:
//! every window lies inside the image and is divided by `k*k`.

use super::{Context, Layer};
use crate::engine::Tensor;
use rayon::prelude::*;
use std::cmp::Ordering;

/// Output side of a pooling window: `(size - kernel) / stride + 1` (PyTorch's floor rule).
fn pooled(size: usize, kernel: usize, stride: usize) -> usize {
    (size - kernel) / stride + 1
}

/// `y[n, oy, ox, c] = max over the k x k window at (oy*s, ox*s)`; backward routes each output
/// gradient to the first input of its window equal to the maximum (PyTorch's tie rule; a NaN
/// wins, so it propagates as in PyTorch; with several NaNs in one window the gradient goes to
/// the first, where PyTorch picks the last).
///
/// The winners are found again in backward from the input and output rather than stored: both
/// passes are then branch-free loops over channels that vectorize, and no index buffer is kept.
///
/// With `relu_first`, the layer computes `max_pool(relu(x))` as `relu(max_pool(x))` (equal,
/// since both are monotone), so a ReLU before a max-pool costs no pass of its own. Gradients are
/// those of the two layers in sequence: zero where the maximum is not positive.
pub struct MaxPool2d {
    kernel: usize,
    stride: usize,
    /// Implicit -inf border on each side (at most half the kernel, as PyTorch requires).
    padding: usize,
    relu_first: bool,
    output: Tensor,
    grad_input: Tensor,
}

impl MaxPool2d {
    pub fn new(kernel: usize, stride: usize) -> Self {
        Self {
            kernel,
            stride,
            padding: 0,
            relu_first: false,
            output: Tensor::default(),
            grad_input: Tensor::default(),
        }
    }

    /// The same pool over the input padded by `padding` on each side (padding never wins).
    pub fn with_padding(self, padding: usize) -> Self {
        Self { padding, ..self }
    }

    /// Maps kernel position `position` (`ky * k + kx`) of output pixel `(oy, ox)` to its input
    /// pixel in an `h x w` image, or `None` in the padding.
    fn sources(&self, h: usize, w: usize) -> impl Fn(usize, usize, usize) -> Option<usize> {
        let (k, s, p) = (self.kernel, self.stride, self.padding);
        move |oy, ox, position| {
            let (ky, kx) = (position / k, position % k);
            let iy = (oy * s + ky).checked_sub(p).filter(|&y| y < h)?;
            let ix = (ox * s + kx).checked_sub(p).filter(|&x| x < w)?;
            Some(iy * w + ix)
        }
    }

    /// `max_pool(relu(x))` in one pass (see the type's documentation).
    pub fn after_relu(kernel: usize, stride: usize) -> Self {
        Self {
            relu_first: true,
            ..Self::new(kernel, stride)
        }
    }
}

/// `v` replaces `best` as the window maximum (NaN always does, once).
#[inline]
fn beats(v: f32, best: f32) -> bool {
    v > best || (v.is_nan() && !best.is_nan())
}

impl Layer for MaxPool2d {
    fn forward(&mut self, input: &Tensor, _ctx: &mut Context) {
        let (n, h, w, c) = input.nhwc();
        let (k, s, p) = (self.kernel, self.stride, self.padding);
        let (oh, ow) = (pooled(h + 2 * p, k, s), pooled(w + 2 * p, k, s));
        self.output.reshape_for(&[n, oh, ow, c]);
        // relu(max(x)) = max(0, x_1, ..., x_n): start from 0 instead of -inf.
        let floor = if self.relu_first {
            0.0
        } else {
            f32::NEG_INFINITY
        };
        let source = self.sources(h, w);
        self.output
            .data_mut()
            .par_chunks_mut(oh * ow * c)
            .zip(input.data().par_chunks(h * w * c))
            .for_each(|(out, image)| {
                for (o, out_px) in out.chunks_exact_mut(c).enumerate() {
                    let (oy, ox) = (o / ow, o % ow);
                    out_px.fill(floor);
                    for position in 0..k * k {
                        let Some(pixel) = source(oy, ox, position) else {
                            continue;
                        };
                        let at = pixel * c;
                        for (best, &v) in out_px.iter_mut().zip(&image[at..at + c]) {
                            *best = if beats(v, *best) { v } else { *best };
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
        let (_, h, w, c) = input.nhwc();
        let (_, _, ow, _) = grad_output.nhwc();
        let (k, s) = (self.kernel, self.stride);
        let out_len = grad_output.item_len();
        self.grad_input.reshape_for(input.shape());
        let source = self.sources(h, w);
        // Windows that do not overlap cover each input at most once: plain stores suffice, and
        // when they also tile the image exactly, every input is stored and none needs zeroing.
        let overlapping = s < k;
        let tiles_exactly = s == k && self.padding == 0 && h % k == 0 && w % k == 0;
        // After a ReLU, a maximum of 0 passes no gradient (relu'(x) = 0 for x <= 0).
        let relu_first = self.relu_first;
        self.grad_input
            .data_mut()
            .par_chunks_mut(h * w * c)
            .zip(input.data().par_chunks(h * w * c))
            .zip(self.output.data().par_chunks(out_len))
            .zip(grad_output.data().par_chunks(out_len))
            .for_each(|(((dx, image), out), dy)| {
                if !tiles_exactly {
                    dx.fill(0.0);
                }
                let none = (k * k) as u32;
                let mut winner = vec![none; c];
                let mut passed = vec![0.0f32; c];
                let pixels = out.chunks_exact(c).zip(dy.chunks_exact(c));
                for (o, (out_px, dy_px)) in pixels.enumerate() {
                    for ((p, &d), &best) in passed.iter_mut().zip(dy_px).zip(out_px) {
                        *p = if relu_first && best.partial_cmp(&0.0) != Some(Ordering::Greater) {
                            0.0
                        } else {
                            d
                        };
                    }
                    let (oy, ox) = (o / ow, o % ow);
                    // The first position holding the maximum: scan backwards, keep the last hit.
                    winner.fill(none);
                    for position in (0..k * k).rev() {
                        let Some(pixel) = source(oy, ox, position) else {
                            continue;
                        };
                        let inputs = &image[pixel * c..pixel * c + c];
                        for ((win, &v), &best) in winner.iter_mut().zip(inputs).zip(out_px) {
                            let hit = v == best || (v.is_nan() && best.is_nan());
                            *win = if hit { position as u32 } else { *win };
                        }
                    }
                    for position in 0..k * k {
                        let Some(pixel) = source(oy, ox, position) else {
                            continue;
                        };
                        let grads = &mut dx[pixel * c..pixel * c + c];
                        let routed = grads.iter_mut().zip(&winner).zip(&passed);
                        for ((g, &win), &d) in routed {
                            let share = if win == position as u32 { d } else { 0.0 };
                            *g = if overlapping { *g + share } else { share };
                        }
                    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Rng;

    fn image(values: &[f32]) -> Tensor {
        Tensor::from_vec(&[1, 2, 2, 1], values.to_vec()).unwrap()
    }

    fn pool_grad(layer: &mut MaxPool2d, x: &Tensor) -> (f32, Vec<f32>) {
        layer.forward(x, &mut Context::eval());
        let dy = Tensor::from_vec(&[1, 1, 1, 1], vec![1.0]).unwrap();
        layer.backward(x, &dy, true);
        (layer.output().data()[0], layer.grad_input().data().to_vec())
    }

    #[test]
    fn ties_send_the_gradient_to_the_first_maximum() {
        let (max, grad) = pool_grad(&mut MaxPool2d::new(2, 2), &image(&[1.0, 3.0, 3.0, 0.0]));
        assert_eq!(max, 3.0);
        assert_eq!(grad, [0.0, 1.0, 0.0, 0.0]);
    }

    #[test]
    fn nan_propagates_and_takes_the_gradient() {
        let (max, grad) = pool_grad(
            &mut MaxPool2d::new(2, 2),
            &image(&[1.0, f32::NAN, 5.0, 0.0]),
        );
        assert!(max.is_nan());
        assert_eq!(grad, [0.0, 1.0, 0.0, 0.0]);
    }

    #[test]
    fn pooling_after_relu_equals_relu_then_pooling() {
        let mut rng = Rng::new(3);
        let shape = [2, 6, 6, 3];
        let x = Tensor::from_vec(&shape, (0..216).map(|_| rng.uniform(-1.0, 0.3)).collect());
        let x = x.unwrap();
        let dy = Tensor::from_vec(
            &[2, 3, 3, 3],
            (0..54).map(|_| rng.uniform(-1.0, 1.0)).collect(),
        );
        let dy = dy.unwrap();
        let mut ctx = Context::eval();
        let (mut relu, mut pool) = (crate::nn::Relu::default(), MaxPool2d::new(2, 2));
        relu.forward(&x, &mut ctx);
        pool.forward(relu.output(), &mut ctx);
        pool.backward(relu.output(), &dy, true);
        relu.backward(&x, pool.grad_input(), true);
        let mut fused = MaxPool2d::after_relu(2, 2);
        fused.forward(&x, &mut ctx);
        fused.backward(&x, &dy, true);
        assert_eq!(fused.output(), pool.output());
        assert_eq!(fused.grad_input(), relu.grad_input());
        // All-negative windows exist in this input, so the zero-gradient rule was exercised.
        assert!(pool.output().data().contains(&0.0));
    }
}
