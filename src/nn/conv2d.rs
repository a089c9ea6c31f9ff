//! 2-D convolution as one matrix multiply of image patches (channels-last).

use super::init::{rng_for, Fans};
use super::{Context, Init, Layer, Param, ParamKind};
use crate::engine::im2col::{col2im, im2col, Window};
use crate::engine::matmul::{matmul, MatRef};
use crate::engine::par::{add_row_vector, column_sums_into};
use crate::engine::Tensor;

/// Hyper-parameters of a [`Conv2d`] (square kernels, equal stride and padding on both axes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv2dConfig {
    pub in_channels: usize,
    pub out_channels: usize,
    pub kernel_size: usize,
    pub stride: usize,
    pub padding: usize,
    pub bias: bool,
}

/// `y[n, oy, ox, o] = b[o] + sum_{ky, kx, c} x[n, oy*s - p + ky, ox*s - p + kx, c] * w[o, ky, kx, c]`
///
/// Forward: `Y (M x O) = P (M x K) * W^T`, where `P` is the patch matrix of the input (`M` =
/// batch * output pixels, `K = kh * kw * C`) and `W` the kernel as `O x K`.
/// Backward: `dW = (P^T * dY)^T`, `db = column sums of dY`, `dP = dY * W`, then `dX = col2im(dP)`.
/// A 1x1 stride-1 unpadded convolution multiplies the input directly (its patches are itself).
pub struct Conv2d {
    config: Conv2dConfig,
    weight: Param,
    bias: Option<Param>,
    patches: Vec<f32>,
    grad_patches: Vec<f32>,
    /// dLoss/dKernel transposed (`patch_len x out_channels`), before it is written to the kernel.
    grad_weight_t: Vec<f32>,
    output: Tensor,
    grad_input: Tensor,
}

impl Conv2d {
    /// A convolution named `name` (parameters `{name}.weight`, `{name}.bias`).
    pub fn new(name: &str, config: Conv2dConfig, init: Init, seed: u64) -> Self {
        let k = config.kernel_size;
        let fans = Fans {
            fan_in: config.in_channels * k * k,
            fan_out: config.out_channels * k * k,
        };
        let weight_name = format!("{name}.weight");
        let len = config.out_channels * fans.fan_in;
        // Drawn in PyTorch's order, so a kernel's values do not depend on our storage layout.
        let torch_order = init.kernel(fans, len, &mut rng_for(seed, &weight_name));
        let shape = [config.out_channels, config.in_channels, k, k];
        let mut weight = Param::channels_last_kernel(weight_name, shape, vec![0.0; len]);
        weight.value = weight.from_pytorch_order(&torch_order);
        let bias = config.bias.then(|| {
            let bias_name = format!("{name}.bias");
            let value = init.bias(fans, config.out_channels, &mut rng_for(seed, &bias_name));
            Param::new(bias_name, ParamKind::Bias, &[config.out_channels], value)
        });
        Self {
            config,
            weight,
            bias,
            patches: Vec::new(),
            grad_patches: Vec::new(),
            grad_weight_t: Vec::new(),
            output: Tensor::default(),
            grad_input: Tensor::default(),
        }
    }

    pub fn config(&self) -> &Conv2dConfig {
        &self.config
    }

    fn window(&self, height: usize, width: usize) -> Window {
        Window {
            height,
            width,
            channels: self.config.in_channels,
            kernel_h: self.config.kernel_size,
            kernel_w: self.config.kernel_size,
            stride: self.config.stride,
            padding: self.config.padding,
        }
    }

    /// True when the patch matrix is the input itself.
    fn is_pointwise(&self) -> bool {
        let c = &self.config;
        c.kernel_size == 1 && c.stride == 1 && c.padding == 0
    }
}

impl Layer for Conv2d {
    fn forward(&mut self, input: &Tensor, _ctx: &mut Context) {
        let (n, h, w, _) = input.nhwc();
        let win = self.window(h, w);
        let rows = n * win.out_h() * win.out_w();
        let out_c = self.config.out_channels;
        self.output
            .reshape_for(&[n, win.out_h(), win.out_w(), out_c]);
        let patches: &[f32] = if self.is_pointwise() {
            input.data()
        } else {
            self.patches.resize(rows * win.patch_len(), 0.0);
            im2col(input.data(), n, &win, &mut self.patches);
            &self.patches
        };
        let patches = MatRef::row_major(patches, rows, win.patch_len());
        let kernel = MatRef::row_major(&self.weight.value, out_c, win.patch_len());
        matmul(patches, kernel.t(), self.output.data_mut(), false);
        if let Some(bias) = &self.bias {
            add_row_vector(self.output.data_mut(), &bias.value);
        }
    }

    fn output(&self) -> &Tensor {
        &self.output
    }

    fn backward(&mut self, input: &Tensor, grad_output: &Tensor, need_grad_input: bool) {
        let (n, h, w, _) = input.nhwc();
        let win = self.window(h, w);
        let rows = n * win.out_h() * win.out_w();
        let out_c = self.config.out_channels;
        let dy = MatRef::row_major(grad_output.data(), rows, out_c);
        let patches = if self.is_pointwise() {
            input.data()
        } else {
            &self.patches
        };
        let patches = MatRef::row_major(patches, rows, win.patch_len());
        // dW^T = P^T dY, then transposed: the GEMM runs faster with the long patch dimension as
        // rows of its output than as columns (measured with examples/gemm_shapes.rs).
        let patch_len = win.patch_len();
        self.grad_weight_t.resize(patch_len * out_c, 0.0);
        matmul(patches.t(), dy, &mut self.grad_weight_t, false);
        for (o, row) in self.weight.grad.chunks_exact_mut(patch_len).enumerate() {
            for (j, g) in row.iter_mut().enumerate() {
                *g = self.grad_weight_t[j * out_c + o];
            }
        }
        if let Some(bias) = &mut self.bias {
            column_sums_into(grad_output.data(), &mut bias.grad);
        }
        if !need_grad_input {
            return;
        }
        self.grad_input.reshape_for(input.shape());
        let kernel = MatRef::row_major(&self.weight.value, out_c, win.patch_len());
        if self.is_pointwise() {
            matmul(dy, kernel, self.grad_input.data_mut(), false);
        } else {
            self.grad_patches.resize(rows * win.patch_len(), 0.0);
            matmul(dy, kernel, &mut self.grad_patches, false);
            col2im(&self.grad_patches, n, &win, self.grad_input.data_mut());
        }
    }

    fn grad_input(&self) -> &Tensor {
        &self.grad_input
    }

    fn params(&self) -> Vec<&Param> {
        std::iter::once(&self.weight).chain(&self.bias).collect()
    }

    fn params_mut(&mut self) -> Vec<&mut Param> {
        std::iter::once(&mut self.weight)
            .chain(&mut self.bias)
            .collect()
    }
}
