//! 2-D convolution as one matrix multiply of image patches (channels-last).

use super::init::{rng_for, Fans};
use super::{Context, Init, Layer, Param, ParamKind};
use crate::engine::direct_conv::{
    self, convolve_image, convolve_image_pairs, kernel_gradient, Grid, PackedPairs, PackedWeight,
};
use crate::engine::im2col::{col2im, col2im_image, im2col, im2col_image, Window};
use crate::engine::matmul::{matmul, matmul_serial, MatRef};
use crate::engine::par::{broadcast_rows, column_sums_into};
use crate::engine::{Precision, Tensor};
use rayon::prelude::*;
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

/// The patch matrix of `block` (whole images) in `buffer`, built on the calling thread.
fn block_patches<'a>(block: &[f32], win: &Window, buffer: &'a mut Vec<f32>) -> &'a [f32] {
    let images = block.len() / win.image_len();
    let per_image = win.patches_per_image();
    buffer.resize(images * per_image, 0.0);
    let images = block.chunks_exact(win.image_len());
    for (image, out) in images.zip(buffer.chunks_exact_mut(per_image)) {
        im2col_image(image, win, out);
    }
    buffer
}

/// `out[i] = sum over shares s of shares[s * out.len() + i]`, added in share order (so the
/// result is the same for any number of threads).
fn sum_in_order(shares: &[f32], out: &mut [f32]) {
    let len = out.len();
    out.par_chunks_mut(1024)
        .enumerate()
        .for_each(|(chunk, out)| {
            for (j, value) in out.iter_mut().enumerate() {
                let at = chunk * 1024 + j;
                *value = shares.iter().skip(at).step_by(len).sum();
            }
        });
}

/// Patch values per block of images: a block's patch matrix (1 MiB) and its gradient stay in a
/// core's L2 cache between im2col and the products that read them, instead of a whole batch's
/// patches (75 MB for a 32-channel 3x3 convolution over 64 CIFAR images) passing through
/// memory several times. A block holds at least one image.
pub(crate) const BLOCK_PATCH_VALUES: usize = 1 << 18;

/// Buffers shared by every convolution running on a thread, used only within one block.
#[derive(Default)]
struct Scratch {
    /// The patch matrix of the block of images in hand.
    patches: Vec<f32>,
    /// dLoss/dPatches of the block, between the input-gradient product and col2im.
    grad_patches: Vec<f32>,
    /// The padded image of a direct convolution.
    direct: direct_conv::Scratch,
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

/// Images per block for a convolution with `patches_per_image` patch values per image.
pub(crate) fn images_per_block(patches_per_image: usize) -> usize {
    (BLOCK_PATCH_VALUES / patches_per_image.max(1)).max(1)
}

/// Images per share of a direct convolution's kernel gradient (see
/// [`Conv2d::grad_weight_direct`]): shares are summed in order, so their size is fixed, not
/// set by the thread count.
const DIRECT_SHARE_IMAGES: usize = 8;

/// Input channels from which a direct convolution also computes its input gradient directly.
const DIRECT_MIN_GRAD_INPUT_CHANNELS: usize = 16;

/// Output pixels per image from which a convolution runs in blocks of images (8 x 8).
const MIN_BLOCK_PIXELS: usize = 64;

/// Whether a convolution runs block by block of images (else over the whole batch at once):
/// when each image has at least [`MIN_BLOCK_PIXELS`] output pixels, and the blocks' shares
/// of the kernel gradient (`kernel_len` values each) hold no more than the batch's patches.
/// Layers with few pixels and many channels (ResNet's later stages) fail this: there a block
/// has few rows, one product over the whole batch is faster, and the shares would be nearly
/// as large as the patches.
///
/// `pixels` and `per_image` are the output pixels and patch values of one image.
pub(crate) fn runs_in_blocks(
    pixels: usize,
    per_image: usize,
    kernel_len: usize,
    batch: usize,
) -> bool {
    let blocks = batch.div_ceil(images_per_block(per_image));
    pixels >= MIN_BLOCK_PIXELS
        && blocks.saturating_mul(kernel_len) <= batch.saturating_mul(per_image)
}

/// A kernel packed for the direct passes, in the layer's precision.
#[derive(Clone, Copy)]
enum DirectWeight<'w> {
    Fp32(&'w PackedWeight),
    Bf16(&'w PackedPairs),
}

impl<'w> DirectWeight<'w> {
    fn of(precision: Precision, fp32: &'w PackedWeight, bf16: &'w PackedPairs) -> Self {
        match precision {
            Precision::Fp32 => DirectWeight::Fp32(fp32),
            Precision::Bf16 => DirectWeight::Bf16(bf16),
        }
    }

    /// Convolves each image of `images` (geometry `win`) into its slot of `out`, one image
    /// per task, each output starting from `bias` when given.
    fn convolve_images(
        self,
        kernel: direct_conv::Kernel,
        win: &Window,
        images: &[f32],
        bias: Option<&[f32]>,
        out: &mut [f32],
    ) {
        let grid = Grid::new(*win);
        let out_len = out.len() / (images.len() / win.image_len()).max(1);
        out.par_chunks_mut(out_len)
            .zip(images.par_chunks(win.image_len()))
            .for_each(|(out, image)| {
                with_scratch(|scratch| {
                    let scratch = &mut scratch.direct;
                    match self {
                        DirectWeight::Fp32(weight) => {
                            convolve_image(kernel, &grid, image, weight, bias, out, scratch)
                        }
                        DirectWeight::Bf16(weight) => {
                            convolve_image_pairs(kernel, &grid, image, weight, bias, out, scratch)
                        }
                    }
                });
            });
    }
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
///
/// A stride-1 convolution whose output rows fill the kernel's tiles well
/// ([`direct_conv::pays`]) takes the direct passes on a CPU with AVX-512 (in fp32) or
/// AVX512-BF16 (in bf16): the forward pass, `dW` and (with at least
/// [`DIRECT_MIN_GRAD_INPUT_CHANNELS`] input channels) `dX` read each padded image in place,
/// with no patch matrix ([`direct_conv`]; in bf16, pairs of channels or pixels).
///
/// Elsewhere, where [`runs_in_blocks`] says it pays, both passes run over blocks of images
/// ([`BLOCK_PATCH_VALUES`]), one block per task: the block's patches are built, multiplied
/// and (in backward, built again instead of kept) consumed while they are in cache, and `dW`
/// is summed over the blocks' partial products in block order. Elsewhere each pass builds the
/// whole batch's patches and multiplies them at once. Either way the work depends only on the
/// shapes, so results do not depend on the number of threads. A 1x1 stride-1 unpadded
/// convolution takes the whole-batch path with the input as its patches (they are equal).
pub struct Conv2d {
    config: Conv2dConfig,
    weight: Param,
    bias: Option<Param>,
    /// dLoss/dKernel transposed (`patch_len x out_channels`), before it is written to the kernel.
    grad_weight_t: Vec<f32>,
    /// Each block's share of `grad_weight_t`, summed in block order.
    grad_weight_blocks: Vec<f32>,
    /// The kernel as the direct passes multiply it (forward, or turned for the input gradient).
    packed_weight: PackedWeight,
    /// The same in bf16 pairs, for direct passes in bf16.
    packed_pairs: PackedPairs,
    /// Whether the direct passes may be taken where they pay (always, except to compare the
    /// two ways in tests).
    direct_allowed: bool,
    precision: Precision,
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
            grad_weight_t: Vec::new(),
            grad_weight_blocks: Vec::new(),
            packed_weight: PackedWeight::default(),
            packed_pairs: PackedPairs::default(),
            direct_allowed: true,
            precision: Precision::Fp32,
            output: Tensor::default(),
            grad_input: Tensor::default(),
        }
    }

    /// The same layer, with the direct passes allowed or not: the patch-matrix passes compute
    /// the same convolution, summed in another order.
    pub fn with_direct_passes(self, allowed: bool) -> Self {
        Self {
            direct_allowed: allowed,
            ..self
        }
    }

    /// Whether the passes over `height x width` inputs read the padded image directly (see
    /// [`direct_conv`]) rather than a patch matrix.
    pub fn takes_direct_passes(&self, height: usize, width: usize) -> bool {
        self.direct_kernel(&self.window(height, width)).is_some()
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

    /// Sets every output row to the bias (the products are then added onto it); false without
    /// a bias.
    fn start_from_bias(&mut self) -> bool {
        match &self.bias {
            Some(bias) => {
                broadcast_rows(self.output.data_mut(), &bias.value);
                true
            }
            None => false,
        }
    }

    /// `Y = P W^T + b`, block by block of images.
    fn forward_blocks(&mut self, input: &Tensor, win: &Window) {
        let with_bias = self.start_from_bias();
        let (out_c, patch_len) = (self.config.out_channels, win.patch_len());
        let pixels = win.out_h() * win.out_w();
        let images = images_per_block(win.patches_per_image());
        let kernel = MatRef::row_major(&self.weight.value, out_c, patch_len);
        let precision = self.precision;
        self.output
            .data_mut()
            .par_chunks_mut(images * pixels * out_c)
            .zip(input.data().par_chunks(images * win.image_len()))
            .for_each(|(out, block)| {
                with_scratch(|scratch| {
                    let patches = block_patches(block, win, &mut scratch.patches);
                    let rows = patches.len() / patch_len;
                    let patches = MatRef::row_major(patches, rows, patch_len);
                    matmul_serial(patches, kernel.t(), out, with_bias, precision);
                });
            });
    }

    /// `Y = conv(X, W) + b` read straight from each padded image (see [`direct_conv`]), one
    /// image per task.
    fn forward_direct(&mut self, input: &Tensor, win: &Window, kernel: direct_conv::Kernel) {
        let (out_c, size) = (self.config.out_channels, self.config.kernel_size);
        match self.precision {
            Precision::Fp32 => self.packed_weight.for_output(&self.weight.value, out_c),
            Precision::Bf16 => self
                .packed_pairs
                .for_output(&self.weight.value, out_c, size),
        }
        let bias = self.bias.as_ref().map(|b| b.value.as_slice());
        let direct = DirectWeight::of(self.precision, &self.packed_weight, &self.packed_pairs);
        let out = self.output.data_mut();
        direct.convolve_images(kernel, win, input.data(), bias, out);
    }

    /// `dW^T = P^T dY` read straight from each padded image: shares of
    /// [`DIRECT_SHARE_IMAGES`] images in parallel, each summed image by image, then the shares
    /// in order.
    fn grad_weight_direct(
        &mut self,
        input: &Tensor,
        grad_output: &Tensor,
        win: &Window,
        kernel: direct_conv::Kernel,
    ) {
        let share_len = win.patch_len() * self.config.out_channels;
        let shares = input.batch().div_ceil(DIRECT_SHARE_IMAGES);
        let grads_per_image = win.out_h() * win.out_w() * self.config.out_channels;
        self.grad_weight_blocks.resize(shares * share_len, 0.0);
        let grid = Grid::new(*win);
        let precision = self.precision;
        self.grad_weight_blocks
            .par_chunks_mut(share_len)
            .zip(
                input
                    .data()
                    .par_chunks(DIRECT_SHARE_IMAGES * win.image_len()),
            )
            .zip(
                grad_output
                    .data()
                    .par_chunks(DIRECT_SHARE_IMAGES * grads_per_image),
            )
            .for_each(|((share, images), dy)| {
                with_scratch(|scratch| {
                    let scratch = &mut scratch.direct;
                    kernel_gradient(kernel, precision, &grid, images, dy, share, true, scratch);
                });
            });
        self.grad_weight_t.resize(share_len, 0.0);
        sum_in_order(&self.grad_weight_blocks, &mut self.grad_weight_t);
    }

    /// `dX`, as the direct convolution of `dY` padded by `k - 1 - p` with the turned kernel,
    /// one image per task.
    fn grad_input_direct(
        &mut self,
        input: &Tensor,
        grad_output: &Tensor,
        win: &Window,
        kernel: direct_conv::Kernel,
    ) {
        let (out_c, size) = (self.config.out_channels, self.config.kernel_size);
        let weight = &self.weight.value;
        match self.precision {
            Precision::Fp32 => self.packed_weight.for_input_gradient(weight, out_c, size),
            Precision::Bf16 => self.packed_pairs.for_input_gradient(weight, out_c, size),
        }
        let back = Window {
            height: win.out_h(),
            width: win.out_w(),
            channels: out_c,
            kernel_h: size,
            kernel_w: size,
            stride: 1,
            padding: size - 1 - win.padding,
        };
        let direct = DirectWeight::of(self.precision, &self.packed_weight, &self.packed_pairs);
        self.grad_input.reshape_for(input.shape());
        let dx = self.grad_input.data_mut();
        direct.convolve_images(kernel, &back, grad_output.data(), None, dx);
    }

    /// The whole batch's patch matrix: the input itself for a pointwise convolution, else
    /// built in `buffer`.
    fn whole_patches<'a>(
        &self,
        input: &'a Tensor,
        win: &Window,
        buffer: &'a mut Vec<f32>,
    ) -> &'a [f32] {
        if self.is_pointwise() {
            return input.data();
        }
        buffer.resize(input.batch() * win.patches_per_image(), 0.0);
        im2col(input.data(), input.batch(), win, buffer);
        buffer
    }

    /// `Y = P W^T + b` over the whole batch: its patch matrix (in this thread's scratch), then
    /// one parallel product.
    fn forward_whole(&mut self, input: &Tensor, win: &Window) {
        let with_bias = self.start_from_bias();
        let (out_c, patch_len) = (self.config.out_channels, win.patch_len());
        let rows = self.output.len() / out_c;
        let precision = self.precision;
        with_scratch(|scratch| {
            let patches = self.whole_patches(input, win, &mut scratch.patches);
            let patches = MatRef::row_major(patches, rows, patch_len);
            let kernel = MatRef::row_major(&self.weight.value, out_c, patch_len);
            matmul(
                patches,
                kernel.t(),
                self.output.data_mut(),
                with_bias,
                precision,
            );
        });
    }

    /// Backward over the whole batch at once: its patch matrix (built again in this thread's
    /// scratch), then `dW^T = P^T dY` and `dP = dY W` are each one parallel product, and
    /// `dX = col2im(dP)` (`dX = dP` for a pointwise convolution).
    fn backward_whole(
        &mut self,
        input: &Tensor,
        grad_output: &Tensor,
        win: &Window,
        need_grad_input: bool,
    ) {
        let (out_c, patch_len) = (self.config.out_channels, win.patch_len());
        let rows = grad_output.len() / out_c;
        let precision = self.precision;
        with_scratch(|scratch| {
            let patches = self.whole_patches(input, win, &mut scratch.patches);
            let patches = MatRef::row_major(patches, rows, patch_len);
            let dy = MatRef::row_major(grad_output.data(), rows, out_c);
            self.grad_weight_t.resize(patch_len * out_c, 0.0);
            matmul(patches.t(), dy, &mut self.grad_weight_t, false, precision);
            if !need_grad_input {
                return;
            }
            let kernel = MatRef::row_major(&self.weight.value, out_c, patch_len);
            self.grad_input.reshape_for(input.shape());
            if self.is_pointwise() {
                matmul(dy, kernel, self.grad_input.data_mut(), false, precision);
                return;
            }
            scratch.grad_patches.resize(rows * patch_len, 0.0);
            matmul(dy, kernel, &mut scratch.grad_patches, false, precision);
            let dx = self.grad_input.data_mut();
            col2im(&scratch.grad_patches, input.batch(), win, dx);
        });
    }

    /// Backward block by block of images: each block's patches are built again, its share of
    /// `dW^T = P^T dY` is written to its own slot, and, when asked, `dX = col2im(dY W)` of its
    /// images; then the shares are summed in block order.
    fn backward_blocks(
        &mut self,
        input: &Tensor,
        grad_output: &Tensor,
        win: &Window,
        need_grad_input: bool,
    ) {
        let (out_c, patch_len) = (self.config.out_channels, win.patch_len());
        let pixels = win.out_h() * win.out_w();
        let images = images_per_block(win.patches_per_image());
        let blocks = input.batch().div_ceil(images);
        let share_len = patch_len * out_c;
        self.grad_weight_blocks.resize(blocks * share_len, 0.0);
        let mut grad_input: Vec<Option<&mut [f32]>> = if need_grad_input {
            self.grad_input.reshape_for(input.shape());
            let chunks = self
                .grad_input
                .data_mut()
                .chunks_mut(images * win.image_len());
            chunks.map(Some).collect()
        } else {
            (0..blocks).map(|_| None).collect()
        };
        let kernel = MatRef::row_major(&self.weight.value, out_c, patch_len);
        let precision = self.precision;
        self.grad_weight_blocks
            .par_chunks_mut(share_len)
            .zip(input.data().par_chunks(images * win.image_len()))
            .zip(grad_output.data().par_chunks(images * pixels * out_c))
            .zip(grad_input.par_iter_mut())
            .for_each(|(((share, block), dy), dx)| {
                with_scratch(|scratch| {
                    let patches = block_patches(block, win, &mut scratch.patches);
                    let rows = patches.len() / patch_len;
                    let patches = MatRef::row_major(patches, rows, patch_len);
                    let dy = MatRef::row_major(dy, rows, out_c);
                    matmul_serial(patches.t(), dy, share, false, precision);
                    if let Some(dx) = dx {
                        scratch.grad_patches.resize(rows * patch_len, 0.0);
                        matmul_serial(dy, kernel, &mut scratch.grad_patches, false, precision);
                        let per_image = win.patches_per_image();
                        let grads = scratch.grad_patches.chunks_exact(per_image);
                        for (image, grads) in dx.chunks_exact_mut(win.image_len()).zip(grads) {
                            col2im_image(grads, win, image);
                        }
                    }
                });
            });
        self.grad_weight_t.resize(share_len, 0.0);
        sum_in_order(&self.grad_weight_blocks, &mut self.grad_weight_t);
    }

    /// Writes `dW` from its transpose in `grad_weight_t`, and `db`.
    fn store_weight_gradients(&mut self, grad_output: &Tensor, patch_len: usize) {
        transpose_into(&self.grad_weight_t, patch_len, &mut self.weight.grad);
        if let Some(bias) = &mut self.bias {
            column_sums_into(grad_output.data(), &mut bias.grad);
        }
    }

    /// See [`runs_in_blocks`]; never for a pointwise convolution, whose input is its patches.
    fn runs_in_blocks(&self, win: &Window, batch: usize) -> bool {
        if self.is_pointwise() {
            return false;
        }
        let pixels = win.out_h() * win.out_w();
        let kernel_len = win.patch_len() * self.config.out_channels;
        runs_in_blocks(pixels, win.patches_per_image(), kernel_len, batch)
    }

    /// The direct kernel, when this convolution takes the direct passes: stride 1, not
    /// pointwise, few rows dropped, on a CPU with the kernels of its precision (AVX-512 for
    /// fp32, AVX512-BF16 for bf16; see [`direct_conv`]).
    fn direct_kernel(&self, win: &Window) -> Option<direct_conv::Kernel> {
        let shape = direct_conv::supports(win) && direct_conv::pays(win) && !self.is_pointwise();
        if !(shape && self.direct_allowed) {
            return None;
        }
        match self.precision {
            Precision::Fp32 => direct_conv::Kernel::detect(),
            Precision::Bf16 => direct_conv::Kernel::detect_bf16(),
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
        self.output
            .reshape_for(&[n, win.out_h(), win.out_w(), self.config.out_channels]);
        if let Some(kernel) = self.direct_kernel(&win) {
            self.forward_direct(input, &win, kernel);
        } else if self.runs_in_blocks(&win, n) {
            self.forward_blocks(input, &win);
        } else {
            self.forward_whole(input, &win);
        }
    }

    fn output(&self) -> &Tensor {
        &self.output
    }

    fn backward(&mut self, input: &Tensor, grad_output: &Tensor, need_grad_input: bool) {
        let (_, h, w, _) = input.nhwc();
        let win = self.window(h, w);
        // The direct input gradient has the input's channels as its output columns: with
        // few, most of each tile's lanes would be idle, and the patch matrix does better.
        let direct = self.direct_kernel(&win).filter(|_| {
            !need_grad_input || self.config.in_channels >= DIRECT_MIN_GRAD_INPUT_CHANNELS
        });
        if let Some(kernel) = direct {
            self.grad_weight_direct(input, grad_output, &win, kernel);
            if need_grad_input {
                self.grad_input_direct(input, grad_output, &win, kernel);
            }
        } else if self.runs_in_blocks(&win, input.batch()) {
            self.backward_blocks(input, grad_output, &win, need_grad_input);
        } else {
            self.backward_whole(input, grad_output, &win, need_grad_input);
        }
        self.store_weight_gradients(grad_output, win.patch_len());
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

    fn set_precision(&mut self, precision: Precision) {
        self.precision = precision;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Rng;

    /// A 3x3 convolution from `c_in` to `c_out` channels over `n` random `side x side` images,
    /// with a random output gradient.
    fn case(n: usize, side: usize, c_in: usize, c_out: usize) -> (Conv2d, Tensor, Tensor) {
        let config = Conv2dConfig {
            in_channels: c_in,
            out_channels: c_out,
            kernel_size: 3,
            stride: 1,
            padding: 1,
            bias: true,
        };
        let layer = Conv2d::new("c", config, Init::Pytorch, 5);
        let mut rng = Rng::new(6);
        let mut values = |len: usize| (0..len).map(|_| rng.uniform(-1.0, 1.0)).collect();
        let x = Tensor::from_vec(&[n, side, side, c_in], values(n * side * side * c_in));
        let dy = Tensor::from_vec(&[n, side, side, c_out], values(n * side * side * c_out));
        (layer, x.unwrap(), dy.unwrap())
    }

    /// 7 images of 24x24x16: 82,944 patch values per image, so blocks of 3, 3 and 1 images,
    /// in both passes (the direct passes not allowed).
    fn blocked() -> (Conv2d, Tensor, Tensor) {
        let (layer, x, dy) = case(7, 24, 16, 8);
        let layer = layer.with_direct_passes(false);
        let win = layer.window(24, 24);
        assert_eq!(images_per_block(win.patches_per_image()), 3);
        assert!(layer.runs_in_blocks(&win, 7) && !layer.takes_direct_passes(24, 24));
        (layer, x, dy)
    }

    /// 7 images of 4x4x32 to 32 channels: 16 output pixels per image, too few for blocks or
    /// the direct passes, so both passes take the whole batch at once.
    fn whole() -> (Conv2d, Tensor, Tensor) {
        let (layer, x, dy) = case(7, 4, 32, 32);
        let win = layer.window(4, 4);
        assert!(!layer.runs_in_blocks(&win, 7) && !layer.takes_direct_passes(4, 4));
        (layer, x, dy)
    }

    /// 11 images of 16x16x16 to 40 channels (two panels, the second partial), read directly
    /// from the padded images where the CPU has the kernel: shares of 8 and 3 images.
    fn direct() -> (Conv2d, Tensor, Tensor) {
        let (layer, x, dy) = case(11, 16, 16, 40);
        let expected = direct_conv::Kernel::detect().is_some();
        assert_eq!(layer.takes_direct_passes(16, 16), expected);
        (layer, x, dy)
    }

    fn close(got: &[f32], want: &[f32]) {
        assert_eq!(got.len(), want.len());
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            assert!((g - w).abs() <= 1e-4 * (1.0 + w.abs()), "{i}: {g} vs {w}");
        }
    }

    /// The layer's forward and backward against the same products over the whole batch's
    /// patch matrix, built and multiplied at once.
    fn matches_the_whole_batch_products((mut layer, x, dy): (Conv2d, Tensor, Tensor)) {
        let (n, side, _, o) = dy.nhwc();
        let win = layer.window(side, side);
        layer.forward(&x, &mut Context::eval());
        layer.backward(&x, &dy, true);
        let (rows, k) = (n * side * side, win.patch_len());
        let mut patches = vec![0.0; rows * k];
        im2col(x.data(), n, &win, &mut patches);
        let p = MatRef::row_major(&patches, rows, k);
        let w = MatRef::row_major(&layer.weight.value, o, k);
        let bias = &layer.bias.as_ref().unwrap().value;
        let mut y: Vec<f32> = (0..rows).flat_map(|_| bias.iter().copied()).collect();
        matmul(p, w.t(), &mut y, true, Precision::Fp32);
        close(layer.output().data(), &y);
        let d = MatRef::row_major(dy.data(), rows, o);
        let mut dw_t = vec![0.0; k * o];
        matmul(p.t(), d, &mut dw_t, false, Precision::Fp32);
        let mut dw = Vec::new();
        transpose_into(&dw_t, k, &mut dw);
        close(&layer.weight.grad, &dw);
        let mut dp = vec![0.0; rows * k];
        matmul(d, w, &mut dp, false, Precision::Fp32);
        let mut dx = vec![0.0; x.len()];
        col2im(&dp, n, &win, &mut dx);
        close(layer.grad_input().data(), &dx);
    }

    /// Output, kernel gradient and input gradient, as bits, computed on `threads` threads.
    fn bits_on(threads: usize, (mut layer, x, dy): (Conv2d, Tensor, Tensor)) -> Vec<Vec<u32>> {
        let pool = crate::engine::ThreadPool::new(threads).unwrap();
        pool.install(|| {
            layer.forward(&x, &mut Context::eval());
            layer.backward(&x, &dy, true);
        });
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect();
        vec![
            bits(layer.output().data()),
            bits(&layer.weight.grad),
            bits(layer.grad_input().data()),
        ]
    }

    #[test]
    fn blocks_of_images_give_the_products_of_the_whole_batch() {
        matches_the_whole_batch_products(blocked());
    }

    #[test]
    fn passes_over_the_whole_batch_give_the_same_products() {
        matches_the_whole_batch_products(whole());
    }

    #[test]
    fn direct_passes_give_the_products_of_the_whole_batch() {
        matches_the_whole_batch_products(direct());
    }

    #[test]
    fn every_way_gives_the_same_bits_on_one_and_two_threads() {
        assert_eq!(bits_on(1, blocked()), bits_on(2, blocked()));
        assert_eq!(bits_on(1, whole()), bits_on(2, whole()));
        assert_eq!(bits_on(1, direct()), bits_on(2, direct()));
        assert_eq!(bits_on(1, direct_bf16()), bits_on(2, direct_bf16()));
    }

    /// [`direct`] in bf16: the direct passes in pairs of channels where the CPU has
    /// AVX512-BF16.
    fn direct_bf16() -> (Conv2d, Tensor, Tensor) {
        let (mut layer, x, dy) = case(11, 16, 16, 40);
        layer.set_precision(Precision::Bf16);
        let expected = direct_conv::Kernel::detect_bf16().is_some();
        assert_eq!(layer.takes_direct_passes(16, 16), expected);
        (layer, x, dy)
    }

    #[test]
    fn bf16_direct_passes_give_the_bf16_products_of_the_patch_matrix() {
        // Both ways multiply the same bf16-rounded operands with f32 sums; only the order of
        // the sums differs.
        let (mut direct, x, dy) = direct_bf16();
        let mut patches = case(11, 16, 16, 40).0.with_direct_passes(false);
        patches.set_precision(Precision::Bf16);
        assert!(!patches.takes_direct_passes(16, 16));
        for layer in [&mut direct, &mut patches] {
            layer.forward(&x, &mut Context::eval());
            layer.backward(&x, &dy, true);
        }
        close(direct.output().data(), patches.output().data());
        close(&direct.weight.grad, &patches.weight.grad);
        close(direct.grad_input().data(), patches.grad_input().data());
    }
}
