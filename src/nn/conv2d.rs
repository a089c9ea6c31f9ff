//! 2-D convolution as one matrix multiply of image patches (channels-last).

use super::init::{rng_for, Fans};
use super::{Context, Init, Layer, Param, ParamKind};
use crate::engine::im2col::{col2im, im2col, Window};
use crate::engine::matmul::{matmul, MatRef};
use crate::engine::par::{broadcast_rows, column_sums_into};
use crate::engine::Tensor;
use std::cell::RefCell;

/// Writes the transpose of the row-major `rows x (len / rows)` matrix `src` into `dst`.
fn transpose_into(src: &[f32], rows: usize, dst: &mut Vec<f32>) {
    let cols = src.len() / rows;
    dst.resize(src.len(), 0.0);
    for (r, row) in src.chunks_exact(cols).enumerate() {
        for (c, &v) in row.iter().enumerate() {
            dst[c * rows + r] = v;
        }
    }
}

/// Patch matrices up to this many values (32 MB) are kept from a training forward for its
/// backward; larger ones (ResNet's first stages: 150 MB per convolution at batch 64) are rebuilt
/// in backward in a buffer all convolutions share, trading one more im2col for memory.
pub(crate) const KEEP_PATCHES_MAX: usize = 8 << 20;

/// Buffers shared by every convolution running on a thread, used only within one call.
#[derive(Default)]
struct Scratch {
    /// Patches of a forward or backward whose layer does not keep them.
    patches: Vec<f32>,
    /// dLoss/dPatches, between the input-gradient GEMM and col2im.
    grad_patches: Vec<f32>,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

/// Runs `work` with this thread's scratch buffers, or fresh ones if they are in use (a
/// convolution of another network stolen by this thread while it waits inside one).
fn with_scratch<R>(work: impl FnOnce(&mut Scratch) -> R) -> R {
    SCRATCH.with(|cell| match cell.try_borrow_mut() {
        Ok(mut scratch) => work(&mut scratch),
        Err(_) => work(&mut Scratch::default()),
    })
}

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
    /// The patch matrix of the last training forward, when small enough to keep.
    patches: Vec<f32>,
    patches_kept: bool,
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
            patches_kept: false,
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

    /// `Y = P W^T + b`, with `P` the patch matrix (`rows x patch_len`).
    fn multiply(&mut self, patches: &[f32], win: &Window) {
        let rows = self.output.len() / self.config.out_channels;
        let patches = MatRef::row_major(patches, rows, win.patch_len());
        let kernel = MatRef::row_major(
            &self.weight.value,
            self.config.out_channels,
            win.patch_len(),
        );
        let with_bias = match &self.bias {
            Some(bias) => {
                broadcast_rows(self.output.data_mut(), &bias.value);
                true
            }
            None => false,
        };
        matmul(patches, kernel.t(), self.output.data_mut(), with_bias);
    }

    /// `dW = (P^T dY)^T` and `db = column sums of dY`. The GEMM runs faster with the long patch
    /// dimension as rows of its output than as columns (examples/gemm_shapes.rs), hence the
    /// product into a transposed buffer.
    fn weight_gradients(&mut self, patches: &[f32], grad_output: &Tensor, win: &Window) {
        let out_c = self.config.out_channels;
        let patch_len = win.patch_len();
        let rows = grad_output.len() / out_c;
        let dy = MatRef::row_major(grad_output.data(), rows, out_c);
        let patches = MatRef::row_major(patches, rows, patch_len);
        self.grad_weight_t.resize(patch_len * out_c, 0.0);
        matmul(patches.t(), dy, &mut self.grad_weight_t, false);
        self.store_weight_gradients(grad_output, win);
    }

    /// Writes `dW` from its transpose in `grad_weight_t`, and `db`.
    fn store_weight_gradients(&mut self, grad_output: &Tensor, win: &Window) {
        transpose_into(&self.grad_weight_t, win.patch_len(), &mut self.weight.grad);
        if let Some(bias) = &mut self.bias {
            column_sums_into(grad_output.data(), &mut bias.grad);
        }
    }

    /// `dX = col2im(dY W)` (or `dY W` directly for a pointwise convolution).
    fn input_gradient(
        &mut self,
        input: &Tensor,
        grad_output: &Tensor,
        win: &Window,
        grad_patches: &mut Vec<f32>,
    ) {
        let out_c = self.config.out_channels;
        let rows = grad_output.len() / out_c;
        let dy = MatRef::row_major(grad_output.data(), rows, out_c);
        let kernel = MatRef::row_major(&self.weight.value, out_c, win.patch_len());
        self.grad_input.reshape_for(input.shape());
        if self.is_pointwise() {
            matmul(dy, kernel, self.grad_input.data_mut(), false);
        } else {
            grad_patches.resize(rows * win.patch_len(), 0.0);
            matmul(dy, kernel, grad_patches, false);
            col2im(grad_patches, input.batch(), win, self.grad_input.data_mut());
        }
    }

    /// True when the patch matrix is the input itself.
    fn is_pointwise(&self) -> bool {
        let c = &self.config;
        c.kernel_size == 1 && c.stride == 1 && c.padding == 0
    }
}

impl Layer for Conv2d {
    fn forward(&mut self, input: &Tensor, ctx: &mut Context) {
        let (n, h, w, _) = input.nhwc();
        let win = self.window(h, w);
        self.output
            .reshape_for(&[n, win.out_h(), win.out_w(), self.config.out_channels]);
        let len = n * win.out_h() * win.out_w() * win.patch_len();
        self.patches_kept = false;
        if self.is_pointwise() {
            self.multiply(input.data(), &win);
        } else if ctx.training && len <= KEEP_PATCHES_MAX {
            let mut patches = std::mem::take(&mut self.patches);
            patches.resize(len, 0.0);
            im2col(input.data(), n, &win, &mut patches);
            self.multiply(&patches, &win);
            self.patches = patches;
            self.patches_kept = true;
        } else {
            with_scratch(|scratch| {
                scratch.patches.resize(len, 0.0);
                im2col(input.data(), n, &win, &mut scratch.patches);
                self.multiply(&scratch.patches, &win);
            });
        }
    }

    fn output(&self) -> &Tensor {
        &self.output
    }

    fn backward(&mut self, input: &Tensor, grad_output: &Tensor, need_grad_input: bool) {
        let (n, h, w, _) = input.nhwc();
        let win = self.window(h, w);
        let len = n * win.out_h() * win.out_w() * win.patch_len();
        with_scratch(|scratch| {
            let Scratch {
                patches: rebuilt,
                grad_patches,
            } = scratch;
            let patches = std::mem::take(&mut self.patches);
            let source: &[f32] = if self.is_pointwise() {
                input.data()
            } else if self.patches_kept {
                &patches
            } else {
                rebuilt.resize(len, 0.0);
                im2col(input.data(), n, &win, rebuilt);
                rebuilt
            };
            self.weight_gradients(source, grad_output, &win);
            self.patches = patches;
            if need_grad_input {
                self.input_gradient(input, grad_output, &win, grad_patches);
            }
        });
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
