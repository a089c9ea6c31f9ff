//! The ResNet basic block.

use super::conv2d::Conv2dConfig;
use super::{BatchNorm, Context, Conv2d, Init, Layer, Param, Relu};
use crate::engine::par::CHUNK;
use crate::engine::{Precision, Tensor};
use rayon::prelude::*;

/// `y = relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))` (He et al. 2016), where both
/// convolutions are 3x3 without bias, the first with the block's stride, and the shortcut is the
/// identity or, when the stride or the channel count changes, a 1x1 convolution with that stride
/// followed by batch norm (the projection shortcut).
///
/// Parameter names follow torchvision: `{name}.conv1.weight`, `{name}.bn1.running_mean`,
/// `{name}.downsample.0.weight`, `{name}.downsample.1.weight`.
pub struct BasicBlock {
    conv1: Conv2d,
    bn1: BatchNorm,
    relu1: Relu,
    conv2: Conv2d,
    bn2: BatchNorm,
    downsample: Option<(Conv2d, BatchNorm)>,
    output: Tensor,
    /// dLoss/d(sum before the final ReLU): the gradient entering both branches.
    grad_sum: Tensor,
    grad_input: Tensor,
}

impl BasicBlock {
    pub fn new(
        name: &str,
        in_channels: usize,
        out_channels: usize,
        stride: usize,
        init: Init,
        seed: u64,
    ) -> Self {
        let conv = |suffix: &str, cin, kernel_size, stride, padding| {
            let config = Conv2dConfig {
                in_channels: cin,
                out_channels,
                kernel_size,
                stride,
                padding,
                bias: false,
            };
            Conv2d::new(&format!("{name}.{suffix}"), config, init, seed)
        };
        let downsample = (stride != 1 || in_channels != out_channels).then(|| {
            (
                conv("downsample.0", in_channels, 1, stride, 0),
                BatchNorm::new(&format!("{name}.downsample.1"), out_channels),
            )
        });
        Self {
            conv1: conv("conv1", in_channels, 3, stride, 1),
            bn1: BatchNorm::new(&format!("{name}.bn1"), out_channels),
            relu1: Relu::default(),
            conv2: conv("conv2", out_channels, 3, 1, 1),
            bn2: BatchNorm::new(&format!("{name}.bn2"), out_channels),
            downsample,
            output: Tensor::default(),
            grad_sum: Tensor::default(),
            grad_input: Tensor::default(),
        }
    }
}

impl Layer for BasicBlock {
    fn forward(&mut self, input: &Tensor, ctx: &mut Context) {
        self.conv1.forward(input, ctx);
        self.bn1.forward(self.conv1.output(), ctx);
        self.relu1.forward(self.bn1.output(), ctx);
        self.conv2.forward(self.relu1.output(), ctx);
        self.bn2.forward(self.conv2.output(), ctx);
        let shortcut = match &mut self.downsample {
            Some((conv, bn)) => {
                conv.forward(input, ctx);
                bn.forward(conv.output(), ctx);
                bn.output()
            }
            None => input,
        };
        let main = self.bn2.output();
        self.output.reshape_for(main.shape());
        self.output
            .data_mut()
            .par_chunks_mut(CHUNK)
            .zip(main.data().par_chunks(CHUNK))
            .zip(shortcut.data().par_chunks(CHUNK))
            .for_each(|((y, a), b)| {
                for ((y, &a), &b) in y.iter_mut().zip(a).zip(b) {
                    let sum = a + b;
                    *y = if sum > 0.0 || sum.is_nan() { sum } else { 0.0 };
                }
            });
    }

    fn output(&self) -> &Tensor {
        &self.output
    }

    fn backward(&mut self, input: &Tensor, grad_output: &Tensor, need_grad_input: bool) {
        self.grad_sum.reshape_for(grad_output.shape());
        self.grad_sum
            .data_mut()
            .par_chunks_mut(CHUNK)
            .zip(self.output.data().par_chunks(CHUNK))
            .zip(grad_output.data().par_chunks(CHUNK))
            .for_each(|((g, y), dy)| {
                for ((g, &y), &dy) in g.iter_mut().zip(y).zip(dy) {
                    *g = if y > 0.0 { dy } else { 0.0 };
                }
            });
        let g = &self.grad_sum;
        self.bn2.backward(self.conv2.output(), g, true);
        self.conv2
            .backward(self.relu1.output(), self.bn2.grad_input(), true);
        self.relu1
            .backward(self.bn1.output(), self.conv2.grad_input(), true);
        self.bn1
            .backward(self.conv1.output(), self.relu1.grad_input(), true);
        self.conv1
            .backward(input, self.bn1.grad_input(), need_grad_input);
        let shortcut_grad = match &mut self.downsample {
            Some((conv, bn)) => {
                bn.backward(conv.output(), g, true);
                conv.backward(input, bn.grad_input(), need_grad_input);
                conv.grad_input()
            }
            None => g,
        };
        if !need_grad_input {
            return;
        }
        self.grad_input.reshape_for(input.shape());
        self.grad_input
            .data_mut()
            .par_chunks_mut(CHUNK)
            .zip(self.conv1.grad_input().data().par_chunks(CHUNK))
            .zip(shortcut_grad.data().par_chunks(CHUNK))
            .for_each(|((dx, a), b)| {
                for ((dx, &a), &b) in dx.iter_mut().zip(a).zip(b) {
                    *dx = a + b;
                }
            });
    }

    fn grad_input(&self) -> &Tensor {
        &self.grad_input
    }

    fn params(&self) -> Vec<&Param> {
        let mut out = self.conv1.params();
        out.extend(self.bn1.params());
        out.extend(self.conv2.params());
        out.extend(self.bn2.params());
        if let Some((conv, bn)) = &self.downsample {
            out.extend(conv.params());
            out.extend(bn.params());
        }
        out
    }

    fn params_mut(&mut self) -> Vec<&mut Param> {
        let mut out = self.conv1.params_mut();
        out.extend(self.bn1.params_mut());
        out.extend(self.conv2.params_mut());
        out.extend(self.bn2.params_mut());
        if let Some((conv, bn)) = &mut self.downsample {
            out.extend(conv.params_mut());
            out.extend(bn.params_mut());
        }
        out
    }

    fn set_precision(&mut self, precision: Precision) {
        self.conv1.set_precision(precision);
        self.conv2.set_precision(precision);
        if let Some((conv, _)) = &mut self.downsample {
            conv.set_precision(precision);
        }
    }
}
