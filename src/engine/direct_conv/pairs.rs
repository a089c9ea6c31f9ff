//! bf16 direct convolutions: the padded image as bf16 pairs of neighbouring channels.
//!
//! VDPBF16PS adds two products a lane: `acc[j] += x_lo * w_lo[j] + x_hi * w_hi[j]`. The pairs
//! are taken along the input channels, which are adjacent in a channels-last image: pixel
//! `(y, x)` of the padded image holds `ceil(C / 2)` pairs `(c, c + 1)` (a zero after an odd
//! last channel), and the weight panel holds, for each tap and pair of channels, the matching
//! pairs of its `NR` columns. A grid row then reads one pair per term, broadcast against two
//! vectors of weight pairs, over half as many terms as in fp32:
//!
//! `y[r, o] = b[o] + sum_{ky, kx, p} dot(xpad[r + ky * Wp + kx][p], w[(ky, kx, p), o])`
//!
//! The kernel gradient sums over output pixels, so its pairs are of two neighbouring pixels
//! `(ox, ox + 1)` of an output row ([`pair_kernel_gradient`]): of the padded image, each value
//! with the one `C` floats on, and of the output gradient, each pixel's with the next pixel's
//! (a zero after an odd last pixel).
//!
//! Operands are rounded to bf16 as the products of `--precision bf16` round them
//! ([`bf16::to_bf16`]); each product is exact in f32 and the sums are f32, a pair at a time,
//! in an order that depends only on the shapes.

use super::{GradTile, Grid, Kernel, Scratch, Tile, MR, NR, SKIP};
use crate::engine::bf16::{self, halves, pair};
use crate::engine::im2col::Window;

/// Pairs per pixel of a padded bf16 image over `win`: its channels, rounded up to even, halved.
pub(super) fn per_pixel(win: &Window) -> usize {
    win.channels.div_ceil(2)
}

/// A convolution kernel as `(taps * pairs) x N` bf16 pairs in panels of [`NR`] columns: row
/// `(tap, p)` holds the pairs `(w[(tap, 2p), n], w[(tap, 2p + 1), n])`, zero past the last
/// channel and past column `N`.
#[derive(Default)]
pub(crate) struct PackedPairs {
    values: Vec<u32>,
    /// Rows of a panel: taps times pairs of channels.
    rows: usize,
    n: usize,
}

impl PackedPairs {
    /// Packs `taps` taps of `channels` channels into `n` columns, element `(tap, c, j)` being
    /// `at(tap, c, j)`.
    fn pack(
        &mut self,
        taps: usize,
        channels: usize,
        n: usize,
        at: impl Fn(usize, usize, usize) -> f32,
    ) {
        let pairs = channels.div_ceil(2);
        let rows = taps * pairs;
        self.values.clear();
        self.values.resize(n.div_ceil(NR) * rows * NR, 0);
        for (q, panel) in self.values.chunks_exact_mut(rows * NR).enumerate() {
            for (row, values) in panel.chunks_exact_mut(NR).enumerate() {
                let (tap, c) = (row / pairs, 2 * (row % pairs));
                let columns = n.saturating_sub(q * NR).min(NR);
                for (j, value) in values.iter_mut().enumerate().take(columns) {
                    let hi = if c + 1 < channels {
                        at(tap, c + 1, q * NR + j)
                    } else {
                        0.0
                    };
                    *value = pair(at(tap, c, q * NR + j), hi);
                }
            }
        }
        (self.rows, self.n) = (rows, n);
    }

    /// A kernel stored `[out_channels][size][size][in_channels]`, as the forward pass
    /// multiplies it.
    pub(crate) fn for_output(&mut self, kernel: &[f32], out_channels: usize, size: usize) {
        let k = kernel.len() / out_channels;
        let channels = k / (size * size);
        self.pack(size * size, channels, out_channels, |tap, c, o| {
            kernel[o * k + tap * channels + c]
        });
    }

    /// The same kernel for the input gradient: turned by 180 degrees, input and output
    /// channels swapped (see [`super::PackedWeight::for_input_gradient`]).
    pub(crate) fn for_input_gradient(&mut self, kernel: &[f32], out_channels: usize, size: usize) {
        let k = kernel.len() / out_channels;
        let (taps, in_channels) = (size * size, k / (size * size));
        self.pack(taps, out_channels, in_channels, |tap, o, c| {
            kernel[o * k + (taps - 1 - tap) * in_channels + c]
        });
    }
}

impl Grid {
    /// Writes `image` (`H x W x C`) into `padded` as bf16 pairs of channels, zero around it.
    fn pad_pairs(&self, image: &[f32], padded: &mut Vec<u32>) {
        let (c, p, w) = (self.win.channels, self.win.padding, self.win.width);
        let pairs = per_pixel(&self.win);
        padded.clear();
        padded.resize(self.padded_len(pairs), 0);
        for (y, row) in image.chunks_exact(w * c).enumerate() {
            let at = ((y + p) * self.wp + p) * pairs;
            let out = &mut padded[at..at + w * pairs];
            if c % 2 == 0 {
                bf16::to_pairs(row, out);
            } else {
                // Few channels (an RGB input): a scalar loop beats a vector call per pixel.
                for (pixel, out) in row.chunks_exact(c).zip(out.chunks_exact_mut(pairs)) {
                    for (word, values) in out.iter_mut().zip(pixel.chunks(2)) {
                        *word = pair(values[0], values.get(1).copied().unwrap_or(0.0));
                    }
                }
            }
        }
    }
}

/// The scalar kernel: per pair, the high product and then the low one, each added in f32 (the
/// order VDPBF16PS is specified in).
fn portable_pair_tile(tile: &Tile, a: &[u32], b: &[u32], c: &mut [f32], bias: &[f32]) {
    tile.check(a, b, c, bias);
    let mut acc = [[0.0f32; NR]; MR];
    if let Some(at) = tile.bias_at {
        for sums in &mut acc {
            sums[..tile.cols].copy_from_slice(&bias[at..at + tile.cols]);
        }
    }
    let mut b_row = tile.b_at;
    for &tap in tile.taps {
        for p in 0..tile.channels {
            let weights = &b[b_row..b_row + NR];
            for (i, sums) in acc.iter_mut().enumerate() {
                let (x_lo, x_hi) = halves(a[tile.a_at + i * tile.channels + tap + p]);
                for (s, &w) in sums.iter_mut().zip(weights) {
                    let (w_lo, w_hi) = halves(w);
                    *s += x_hi * w_hi;
                    *s += x_lo * w_lo;
                }
            }
            b_row += NR;
        }
    }
    for (&row, sums) in tile.rows.iter().zip(&acc) {
        if row != SKIP {
            let at = row * tile.ldc + tile.c_at;
            c[at..at + tile.cols].copy_from_slice(&sums[..tile.cols]);
        }
    }
}

/// [`super::convolve_image`] in bf16: convolves one `H x W x C` `image` with `weight`,
/// writing the `out_h x out_w x N` result to `out`, each output starting from `bias` when
/// given. The vector kernel needs AVX512-BF16 ([`Kernel::detect_bf16`]).
///
/// # Panics
/// If the lengths do not match the geometry (programming errors).
pub(crate) fn convolve_image_pairs(
    kernel: Kernel,
    grid: &Grid,
    image: &[f32],
    weight: &PackedPairs,
    bias: Option<&[f32]>,
    out: &mut [f32],
    scratch: &mut Scratch,
) {
    let win = &grid.win;
    let n = weight.n;
    assert_eq!(image.len(), win.image_len());
    assert_eq!(weight.rows, grid.pair_taps.len() * per_pixel(win));
    assert_eq!(out.len(), win.out_h() * win.out_w() * n);
    assert!(bias.is_none_or(|b| b.len() == n));
    grid.pad_pairs(image, &mut scratch.padded_pairs);
    let bias_values = bias.unwrap_or(&[]);
    let a = &scratch.padded_pairs;
    let per_pixel = per_pixel(win);
    let shape = (weight.rows, n);
    grid.for_each_tile(
        &grid.pair_taps,
        per_pixel,
        shape,
        bias.is_some(),
        |tile| match kernel {
            Kernel::Portable => portable_pair_tile(tile, a, &weight.values, out, bias_values),
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx512 => super::avx512::pair_tile(tile, a, &weight.values, out, bias_values),
        },
    );
}

impl GradTile {
    /// [`GradTile::check`] for [`pair_kernel_gradient`]'s layouts: `x` holds pixel pairs of
    /// the padded image, `dy` the output gradient's pixel pairs.
    pub(crate) fn check_pairs(&self, x: &[u32], dy: &[u32], out: &[f32]) {
        assert!(self.rows > 0 && self.rows <= MR && self.cols > 0 && self.cols <= NR);
        assert!(self.out_h > 0 && self.out_w > 0);
        let last_pair = (self.out_w - 1) / 2 * 2;
        let last_pixel = (self.out_h - 1) * self.wp + last_pair;
        assert!(self.x_at + last_pixel * self.channels + MR <= x.len());
        let last_output = (self.out_h * self.out_w.div_ceil(2) - 1) * self.ldd;
        assert!(last_output + self.c_at + self.cols <= dy.len());
        assert!(self.out_at + (self.rows - 1) * self.ldc + self.cols <= out.len());
    }
}

/// The scalar pair gradient kernel: per pixel pair, the second pixel's product and then the
/// first's, each added in f32 (the order VDPBF16PS is specified in).
fn portable_pair_grad_tile(tile: &GradTile, x: &[u32], dy: &[u32], out: &mut [f32]) {
    tile.check_pairs(x, dy, out);
    let mut acc = [[0.0f32; NR]; MR];
    if !tile.fresh {
        for (i, sums) in acc.iter_mut().enumerate().take(tile.rows) {
            let at = tile.out_at + i * tile.ldc;
            sums[..tile.cols].copy_from_slice(&out[at..at + tile.cols]);
        }
    }
    let pairs_per_row = tile.out_w.div_ceil(2);
    for oy in 0..tile.out_h {
        for index in 0..pairs_per_row {
            let pixel = tile.x_at + (oy * tile.wp + 2 * index) * tile.channels;
            let d = (oy * pairs_per_row + index) * tile.ldd + tile.c_at;
            let grads = &dy[d..d + tile.cols];
            for (i, sums) in acc.iter_mut().enumerate() {
                let (x_lo, x_hi) = halves(x[pixel + i]);
                for (s, &g) in sums.iter_mut().zip(grads) {
                    let (g_lo, g_hi) = halves(g);
                    *s += x_hi * g_hi;
                    *s += x_lo * g_lo;
                }
            }
        }
    }
    for (i, sums) in acc.iter().enumerate().take(tile.rows) {
        let at = tile.out_at + i * tile.ldc;
        out[at..at + tile.cols].copy_from_slice(&sums[..tile.cols]);
    }
}

/// The padded image's pixel pairs: value `j` of `padded` with value `j + C`, the same channel
/// of the next pixel (a zero past the end).
fn pixel_pairs_of_image(padded: &[f32], channels: usize, out: &mut Vec<u32>) {
    out.clear();
    out.resize(padded.len(), 0);
    let paired = padded.len().saturating_sub(channels);
    bf16::pairs_of(&padded[..paired], &padded[channels..], &mut out[..paired]);
    for (word, &last) in out[paired..].iter_mut().zip(&padded[paired..]) {
        *word = pair(last, 0.0);
    }
}

/// An image's output gradient (`out_h x out_w x n`) as pixel pairs: for each row `oy` and
/// each even `ox`, the `n` pairs `(dy[oy][ox][o], dy[oy][ox + 1][o])`, zero past the row.
fn pixel_pairs_of_gradient(dy: &[f32], out_w: usize, n: usize, out: &mut Vec<u32>) {
    let pairs_per_row = out_w.div_ceil(2);
    out.clear();
    out.resize(dy.len() / out_w * pairs_per_row, 0);
    let rows = dy
        .chunks_exact(out_w * n)
        .zip(out.chunks_exact_mut(pairs_per_row * n));
    for (row, out) in rows {
        for (index, out) in out.chunks_exact_mut(n).enumerate() {
            let first = &row[2 * index * n..][..n];
            match row.get((2 * index + 1) * n..(2 * index + 2) * n) {
                Some(second) => bf16::pairs_of(first, second, out),
                None => {
                    for (word, &value) in out.iter_mut().zip(first) {
                        *word = pair(value, 0.0);
                    }
                }
            }
        }
    }
}

/// [`super::kernel_gradient`] in bf16 (which has checked the lengths): adds image by image
/// the kernel gradient of `images` (geometry `grid`) to `out` (`dW^T`, `K x N`), or writes it
/// when `fresh`, summed over pairs of neighbouring output pixels with VDPBF16PS.
pub(super) fn pair_kernel_gradient(
    kernel: Kernel,
    grid: &Grid,
    images: &[f32],
    dy: &[f32],
    out: &mut [f32],
    fresh: bool,
    scratch: &mut Scratch,
) {
    let win = &grid.win;
    let (c, k) = (win.channels, win.kernel_h);
    let pixels = win.out_h() * win.out_w();
    let n = out.len() / win.patch_len();
    let segment = k * c;
    for (index, (image, dy)) in images
        .chunks_exact(win.image_len())
        .zip(dy.chunks_exact(pixels * n))
        .enumerate()
    {
        grid.pad(image, &mut scratch.padded);
        pixel_pairs_of_image(&scratch.padded, c, &mut scratch.padded_pairs);
        pixel_pairs_of_gradient(dy, win.out_w(), n, &mut scratch.gradient_pairs);
        let (x, dy) = (&scratch.padded_pairs, &scratch.gradient_pairs);
        for tile in grid.grad_tiles(segment, n, fresh && index == 0) {
            match kernel {
                Kernel::Portable => portable_pair_grad_tile(&tile, x, dy, out),
                #[cfg(target_arch = "x86_64")]
                Kernel::Avx512 => super::avx512::pair_grad_tile(&tile, x, dy, out),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{random, window, SHAPES};
    use super::*;
    use crate::engine::bf16::{from_bf16, to_bf16};
    use crate::engine::im2col::im2col_image;
    use crate::engine::Rng;

    fn rounded(x: f32) -> f64 {
        from_bf16(to_bf16(x)) as f64
    }

    /// The convolution of the bf16-rounded operands through im2col's patch matrix, exact in
    /// f64, with each output's sum of the terms' magnitudes.
    fn exact(win: &Window, image: &[f32], kernel: &[f32], bias: &[f32]) -> Vec<(f64, f64)> {
        let k = win.patch_len();
        let mut patches = vec![0.0; win.patches_per_image()];
        im2col_image(image, win, &mut patches);
        let mut sums = Vec::new();
        for row in patches.chunks_exact(k) {
            for (o, &b) in bias.iter().enumerate() {
                let terms = row.iter().zip(&kernel[o * k..(o + 1) * k]);
                let terms: Vec<f64> = terms.map(|(&x, &w)| rounded(x) * rounded(w)).collect();
                let size: f64 = terms.iter().map(|t| t.abs()).sum::<f64>() + (b as f64).abs();
                sums.push((terms.iter().sum::<f64>() + b as f64, size));
            }
        }
        sums
    }

    /// Each output within f32 summation error of its exact value: `2 * terms * u` of the sum
    /// of its terms' magnitudes.
    fn assert_within_summation_error(got: &[f32], want: &[(f64, f64)], terms: usize) {
        assert_eq!(got.len(), want.len());
        let bound = 2.0 * (terms + 1) as f64 * f32::EPSILON as f64 / 2.0;
        for (i, (&g, &(value, size))) in got.iter().zip(want).enumerate() {
            assert!(
                (g as f64 - value).abs() <= bound * size + f32::MIN_POSITIVE as f64,
                "{i}: {g} vs {value} (terms' size {size})"
            );
        }
    }

    fn convolve(kernel: Kernel, win: &Window, image: &[f32], w: &[f32], bias: &[f32]) -> Vec<f32> {
        let mut packed = PackedPairs::default();
        packed.for_output(w, bias.len(), win.kernel_h);
        let mut out = vec![f32::NAN; win.out_h() * win.out_w() * bias.len()];
        let mut scratch = Scratch::default();
        let grid = Grid::new(*win);
        convolve_image_pairs(
            kernel,
            &grid,
            image,
            &packed,
            Some(bias),
            &mut out,
            &mut scratch,
        );
        out
    }

    fn kernels() -> Vec<Kernel> {
        std::iter::once(Kernel::Portable)
            .chain(Kernel::detect_bf16())
            .collect()
    }

    #[test]
    fn bf16_direct_convolutions_match_the_exact_product_of_the_rounded_patches() {
        let mut rng = Rng::new(21);
        for kernel in kernels() {
            for (h, w, c, k, p, n) in SHAPES {
                let win = window(h, w, c, k, p);
                let image = random(win.image_len(), &mut rng);
                let weight = random(n * win.patch_len(), &mut rng);
                let bias = random(n, &mut rng);
                let got = convolve(kernel, &win, &image, &weight, &bias);
                let want = exact(&win, &image, &weight, &bias);
                assert_within_summation_error(&got, &want, win.patch_len());
            }
        }
    }

    #[test]
    fn the_vector_pair_kernel_agrees_with_the_portable_one() {
        let Some(vector) = Kernel::detect_bf16() else {
            eprintln!("no AVX512-BF16 here: the vector pair kernel is not run");
            return;
        };
        let mut rng = Rng::new(22);
        for (h, w, c, k, p, n) in SHAPES {
            let win = window(h, w, c, k, p);
            let image = random(win.image_len(), &mut rng);
            let weight = random(n * win.patch_len(), &mut rng);
            let bias = random(n, &mut rng);
            let portable = convolve(Kernel::Portable, &win, &image, &weight, &bias);
            let fast = convolve(vector, &win, &image, &weight, &bias);
            // Both sum the same pairs in the same order; the CPU may add a pair's two products
            // before rounding, so the last bits may differ.
            for (i, (&a, &b)) in fast.iter().zip(&portable).enumerate() {
                let scale = 1.0 + a.abs().max(b.abs());
                assert!((a - b).abs() <= 1e-5 * scale, "{i}: {a} vs {b}");
            }
        }
    }

    #[test]
    fn the_turned_pair_kernel_gives_the_input_gradient_of_the_rounded_operands() {
        let mut rng = Rng::new(23);
        for kernel in kernels() {
            for (h, w, c, k, p, n) in SHAPES {
                let win = window(h, w, c, k, p);
                let weight = random(n * win.patch_len(), &mut rng);
                let dy = random(win.out_h() * win.out_w() * n, &mut rng);
                let back = window(win.out_h(), win.out_w(), n, k, k - 1 - p);
                let mut turned = PackedPairs::default();
                turned.for_input_gradient(&weight, n, k);
                let mut dx = vec![f32::NAN; win.image_len()];
                let mut scratch = Scratch::default();
                let grid = Grid::new(back);
                convolve_image_pairs(kernel, &grid, &dy, &turned, None, &mut dx, &mut scratch);
                // dx = col2im(dY W), exact in f64 from the rounded operands.
                let mut want = vec![(0.0f64, 0.0f64); win.image_len()];
                let pk = win.patch_len();
                let mut patches = vec![0.0; win.patches_per_image()];
                let ones: Vec<f32> = (0..win.image_len()).map(|i| i as f32).collect();
                im2col_image(&ones, &win, &mut patches);
                for (r, row) in patches.chunks_exact(pk).enumerate() {
                    for (j, &source) in row.iter().enumerate() {
                        // Padding reads zeros; every other entry names the input it read.
                        if source == 0.0 && !is_first_input(&win, r, j) {
                            continue;
                        }
                        for o in 0..n {
                            let term = rounded(dy[r * n + o]) * rounded(weight[o * pk + j]);
                            let slot = &mut want[source as usize];
                            (slot.0, slot.1) = (slot.0 + term, slot.1 + term.abs());
                        }
                    }
                }
                assert_within_summation_error(&dx, &want, back.patch_len());
            }
        }
    }

    #[test]
    fn bf16_kernel_gradients_over_pixel_pairs_match_the_exact_product_of_the_rounded_operands() {
        let mut rng = Rng::new(24);
        for kernel in kernels() {
            for (h, w, c, k, p, n) in SHAPES {
                let win = window(h, w, c, k, p);
                let images = 2;
                let pixels = win.out_h() * win.out_w();
                let x = random(images * win.image_len(), &mut rng);
                let dy = random(images * pixels * n, &mut rng);
                // dW^T = P^T dY, exact in f64 from the rounded operands.
                let pk = win.patch_len();
                let mut want = vec![(0.0f64, 0.0f64); pk * n];
                let mut patches = vec![0.0; win.patches_per_image()];
                let per_image = x
                    .chunks_exact(win.image_len())
                    .zip(dy.chunks_exact(pixels * n));
                for (image, dy) in per_image {
                    im2col_image(image, &win, &mut patches);
                    for (row, d) in patches.chunks_exact(pk).zip(dy.chunks_exact(n)) {
                        for (r, &value) in row.iter().enumerate() {
                            for (o, &g) in d.iter().enumerate() {
                                let term = rounded(value) * rounded(g);
                                let slot = &mut want[r * n + o];
                                (slot.0, slot.1) = (slot.0 + term, slot.1 + term.abs());
                            }
                        }
                    }
                }
                let grid = Grid::new(win);
                let mut scratch = Scratch::default();
                let mut got = vec![f32::NAN; pk * n];
                let bf16 = crate::engine::Precision::Bf16;
                let kernel_gradient = super::super::kernel_gradient;
                kernel_gradient(kernel, bf16, &grid, &x, &dy, &mut got, true, &mut scratch);
                assert_within_summation_error(&got, &want, images * pixels);
                // Not fresh: adds onto what is there.
                kernel_gradient(kernel, bf16, &grid, &x, &dy, &mut got, false, &mut scratch);
                let twice: Vec<_> = want.iter().map(|&(v, s)| (2.0 * v, 2.0 * s)).collect();
                assert_within_summation_error(&got, &twice, 2 * images * pixels);
            }
        }
    }

    /// Whether patch `r`'s entry `j` reads input value 0 (rather than padding).
    fn is_first_input(win: &Window, r: usize, j: usize) -> bool {
        let (oy, ox) = (r / win.out_w(), r % win.out_w());
        let (tap, c) = (j / win.channels, j % win.channels);
        let (ky, kx) = (tap / win.kernel_w, tap % win.kernel_w);
        c == 0 && oy + ky == win.padding && ox + kx == win.padding
    }
}
