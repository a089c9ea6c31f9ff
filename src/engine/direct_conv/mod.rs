//! Stride-1 convolutions read straight from a zero-padded image, without a patch matrix.
//!
//! Pad an `H x W x C` image by `p` on each side, to `Hp x Wp` with `Wp = W + 2p`, and give
//! output pixel `(oy, ox)` the *grid row* `r = oy * Wp + ox`. The input under kernel tap
//! `(ky, kx)` is then padded pixel `r + ky * Wp + kx`, so for a fixed tap consecutive grid rows
//! read consecutive pixels, `C` floats apart:
//!
//! `y[r, o] = b[o] + sum_{ky, kx, c} xpad[(r + ky * Wp + kx) * C + c] * w[(ky, kx, c), o]`
//!
//! This is the convolution's matrix product with the patch matrix read in place (an "implicit
//! GEMM"): im2col's copy of every input value `kh * kw` times, and the product's packing of
//! that copy, are gone. Grid rows with `ox >= out_w` (the `Wp - out_w` columns past each
//! output row) are computed and dropped, which costs `Wp / out_w - 1` of the work: 6% for a
//! 32-pixel-wide 3x3 convolution, 25% at 8 pixels.
//!
//! The kernel keeps an `MR x NR` tile of the output in registers over the whole sum, `k` in
//! `(ky, kx, c)` order, one fused multiply-add per term: every output is summed in the same
//! order whatever the thread count. The weight is packed once per pass in panels of `NR`
//! columns ([`PackedWeight`]).
//!
//! The same kernel gives a convolution's input gradient: with `dy` padded by `k - 1 - p`, `dx`
//! is the stride-1 convolution of `dy` by the kernel turned by 180 degrees, with input and
//! output channels swapped ([`PackedWeight::for_input_gradient`]).
//!
//! Only AVX-512 CPUs take this path ([`Kernel::detect`]); elsewhere convolutions keep their
//! patch matrix. The portable kernel computes the same bits (it fuses the same multiply-adds
//! in the same order) and is the reference in tests.
//!
//! In bf16 ([`pairs`]), the padded image holds bf16 pairs of neighbouring channels, and the
//! kernels multiply them with VDPBF16PS; the kernel gradient pairs neighbouring pixels.

#[cfg(target_arch = "x86_64")]
mod avx512;
mod pairs;

pub(crate) use pairs::{convolve_image_pairs, PackedPairs};

use super::bf16;
use super::im2col::Window;
use super::Precision;

/// Output rows (grid rows) per tile.
pub(crate) const MR: usize = 12;
/// Output columns (channels) per tile: two 16-lane vectors.
pub(crate) const NR: usize = 32;

/// Where a tile's row is stored: an output row, or nowhere (a grid column past the output).
pub(crate) const SKIP: usize = usize::MAX;

/// How tiles are computed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kernel {
    /// Scalar code with the same fused multiply-adds, in the same order; for tests.
    #[cfg_attr(not(test), allow(dead_code))]
    Portable,
    /// AVX-512 F vectors; only where the CPU has them.
    #[cfg(target_arch = "x86_64")]
    Avx512,
}

impl Kernel {
    /// The vector kernel, or `None` on a CPU without AVX-512 (convolutions then use their
    /// patch matrix).
    pub(crate) fn detect() -> Option<Self> {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx512f") {
            return Some(Kernel::Avx512);
        }
        None
    }

    /// The vector kernels for bf16 convolutions, or `None` on a CPU without AVX512-BF16.
    pub(crate) fn detect_bf16() -> Option<Self> {
        #[cfg(target_arch = "x86_64")]
        if bf16::has_avx512_bf16() {
            return Some(Kernel::Avx512);
        }
        None
    }
}

/// Whether a convolution over `win` can run here: stride 1, a square kernel, and a padding
/// below the kernel size (so its input gradient is a convolution with padding `k - 1 - p`).
pub(crate) fn supports(win: &Window) -> bool {
    win.stride == 1 && win.kernel_h == win.kernel_w && win.padding < win.kernel_h
}

/// Share of the tiles' rows that are output pixels, from which the direct passes are used.
/// Measured on 2 threads (`examples/layer_timing.rs`): at 32x32 and 16x16 outputs (94% and
/// 89% of rows used by a 3x3 kernel) they beat the patch matrix; at 8x8 (76%) they lose in
/// fp32, and in bf16 (`tools/compare_builds.py --precision bf16` with 8x8 layers taken
/// directly) they do no better.
const MIN_ROWS_USED: f64 = 0.85;

/// Whether the direct passes are expected to beat the patch matrix on `win` (which they
/// [`supports`]): when few of the grid's rows are dropped.
pub(crate) fn pays(win: &Window) -> bool {
    let wp = win.width + 2 * win.padding;
    let tiled = (win.out_h() * wp).div_ceil(MR) * MR;
    (win.out_h() * win.out_w()) as f64 >= MIN_ROWS_USED * tiled as f64
}

/// The padded image and output grid of a stride-1 convolution over `win`.
#[derive(Clone, Debug)]
pub(crate) struct Grid {
    win: Window,
    /// Padded width and height.
    wp: usize,
    hp: usize,
    /// The output row of each grid row, or [`SKIP`]; as many as the tiles cover.
    destinations: Vec<usize>,
    /// Offsets of each tap `(ky, kx)` from a grid row's first input value, in floats.
    taps: Vec<usize>,
    /// The same offsets in the bf16 padded image, in pairs.
    pair_taps: Vec<usize>,
}

impl Grid {
    pub(crate) fn new(win: Window) -> Self {
        assert!(supports(&win), "not a direct convolution: {win:?}");
        let p = win.padding;
        let wp = win.width + 2 * p;
        let (out_h, out_w) = (win.out_h(), win.out_w());
        let rows = out_h * wp;
        let destinations = (0..rows.div_ceil(MR) * MR)
            .map(|r| {
                let (oy, ox) = (r / wp, r % wp);
                if r < rows && ox < out_w {
                    oy * out_w + ox
                } else {
                    SKIP
                }
            })
            .collect();
        let k = win.kernel_h;
        let offsets = |per_pixel: usize| {
            (0..k * k)
                .map(|t| ((t / k) * wp + t % k) * per_pixel)
                .collect()
        };
        Self {
            win,
            wp,
            hp: win.height + 2 * p,
            destinations,
            taps: offsets(win.channels),
            pair_taps: offsets(pairs::per_pixel(&win)),
        }
    }

    /// Grid rows holding every output pixel: `out_h * Wp`.
    fn rows(&self) -> usize {
        self.win.out_h() * self.wp
    }

    /// Length of a padded image of `per_pixel` values a pixel, with room for the last tile's
    /// rows past the grid (their results are dropped, but they are read).
    fn padded_len(&self, per_pixel: usize) -> usize {
        (self.hp * self.wp + MR + self.win.kernel_w) * per_pixel
    }

    /// Writes `image` (`H x W x C`) into `padded`, zero around it.
    fn pad(&self, image: &[f32], padded: &mut Vec<f32>) {
        let (c, p, w) = (self.win.channels, self.win.padding, self.win.width);
        padded.clear();
        padded.resize(self.padded_len(c), 0.0);
        for (y, row) in image.chunks_exact(w * c).enumerate() {
            let at = ((y + p) * self.wp + p) * c;
            padded[at..at + w * c].copy_from_slice(row);
        }
    }

    /// The output row of each of the `MR` grid rows from `first`, or [`SKIP`].
    fn destinations(&self, first: usize) -> [usize; MR] {
        std::array::from_fn(|i| self.destinations[first + i])
    }
}

/// A `K x N` weight matrix (`K = kh * kw * C` in `(ky, kx, c)` order) in panels of [`NR`]
/// columns, each `K x NR` row-major, zero past column `N`.
#[derive(Default)]
pub(crate) struct PackedWeight {
    values: Vec<f32>,
    k: usize,
    n: usize,
}

impl PackedWeight {
    /// Packs the `K x N` matrix whose element `(k, n)` is `at(k, n)`.
    fn pack(&mut self, k: usize, n: usize, at: impl Fn(usize, usize) -> f32) {
        let panels = n.div_ceil(NR);
        self.values.clear();
        self.values.resize(panels * k * NR, 0.0);
        for (q, panel) in self.values.chunks_exact_mut(k * NR).enumerate() {
            for (row, values) in panel.chunks_exact_mut(NR).enumerate() {
                for (j, v) in values.iter_mut().enumerate().take(n.saturating_sub(q * NR)) {
                    *v = at(row, q * NR + j);
                }
            }
        }
        (self.k, self.n) = (k, n);
    }

    /// A convolution kernel stored `[out_channels][kh][kw][in_channels]` (`O x K`), as the
    /// forward pass multiplies it: `K x O`.
    pub(crate) fn for_output(&mut self, kernel: &[f32], out_channels: usize) {
        let k = kernel.len() / out_channels;
        self.pack(k, out_channels, |row, o| kernel[o * k + row]);
    }

    /// The same kernel for the input gradient: turned by 180 degrees, input and output
    /// channels swapped, `(kh * kw * O) x C` with element `((ky, kx, o), c) =
    /// w[o][kh-1-ky][kw-1-kx][c]`.
    pub(crate) fn for_input_gradient(&mut self, kernel: &[f32], out_channels: usize, size: usize) {
        let k = kernel.len() / out_channels;
        let in_channels = k / (size * size);
        let taps = size * size;
        self.pack(taps * out_channels, in_channels, |row, c| {
            let (tap, o) = (row / out_channels, row % out_channels);
            kernel[o * k + (taps - 1 - tap) * in_channels + c]
        });
    }
}

/// Reusable buffers for [`convolve_image`], [`convolve_image_pairs`] and [`kernel_gradient`].
#[derive(Default)]
pub(crate) struct Scratch {
    padded: Vec<f32>,
    /// The padded image as bf16 pairs: of channels, or of neighbouring pixels.
    padded_pairs: Vec<u32>,
    /// An image's output gradient as bf16 pairs of neighbouring pixels.
    gradient_pairs: Vec<u32>,
}

/// One tile's work: the kernel reads `a` at `a_at + i * channels + tap + c` for row `i`, tap
/// offset `tap` and channel `c`, reads the panel from `b_at`, and stores row `i` at
/// `rows[i] * ldc + c_at` (unless [`SKIP`]), `cols` columns.
pub(crate) struct Tile<'t> {
    pub(crate) a_at: usize,
    pub(crate) taps: &'t [usize],
    pub(crate) channels: usize,
    pub(crate) b_at: usize,
    pub(crate) rows: [usize; MR],
    pub(crate) c_at: usize,
    pub(crate) ldc: usize,
    pub(crate) cols: usize,
    /// Where the tile's `cols` starting sums are, in the bias slice; zeros without one.
    pub(crate) bias_at: Option<usize>,
}

impl Tile<'_> {
    /// Panics unless every element the kernel touches lies inside the slices (of floats, or
    /// of bf16 pairs).
    pub(crate) fn check<T>(&self, a: &[T], b: &[T], c: &[f32], bias: &[f32]) {
        let last_tap = self.taps.iter().copied().max().unwrap_or(0);
        assert!(self.cols <= NR && self.cols > 0);
        assert!(self.a_at + (MR - 1) * self.channels + last_tap + self.channels <= a.len());
        assert!(self.b_at + self.taps.len() * self.channels * NR <= b.len());
        for &row in self.rows.iter().filter(|&&r| r != SKIP) {
            assert!(row * self.ldc + self.c_at + self.cols <= c.len());
        }
        if let Some(at) = self.bias_at {
            assert!(at + self.cols <= bias.len());
        }
    }
}

/// The scalar kernel: the same sums as the vector one, fused multiply-adds in the same order.
fn portable_tile(tile: &Tile, a: &[f32], b: &[f32], c: &mut [f32], bias: &[f32]) {
    tile.check(a, b, c, bias);
    let mut acc = [[0.0f32; NR]; MR];
    if let Some(at) = tile.bias_at {
        for sums in &mut acc {
            sums[..tile.cols].copy_from_slice(&bias[at..at + tile.cols]);
        }
    }
    let mut b_row = tile.b_at;
    for &tap in tile.taps {
        for ch in 0..tile.channels {
            let weights = &b[b_row..b_row + NR];
            for (i, sums) in acc.iter_mut().enumerate() {
                let x = a[tile.a_at + i * tile.channels + tap + ch];
                for (s, &w) in sums.iter_mut().zip(weights) {
                    *s = x.mul_add(w, *s);
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

/// Convolves one `H x W x C` `image` (stride 1, geometry `grid`) with `weight`, writing the
/// `out_h x out_w x N` result to `out`; each output starts from `bias` when given.
///
/// # Panics
/// If the lengths do not match the geometry (programming errors).
pub(crate) fn convolve_image(
    kernel: Kernel,
    grid: &Grid,
    image: &[f32],
    weight: &PackedWeight,
    bias: Option<&[f32]>,
    out: &mut [f32],
    scratch: &mut Scratch,
) {
    let win = &grid.win;
    let n = weight.n;
    assert_eq!(image.len(), win.image_len());
    assert_eq!(weight.k, win.patch_len());
    assert_eq!(out.len(), win.out_h() * win.out_w() * n);
    assert!(bias.is_none_or(|b| b.len() == n));
    grid.pad(image, &mut scratch.padded);
    let bias_values = bias.unwrap_or(&[]);
    let a = &scratch.padded;
    let shape = (weight.k, n);
    grid.for_each_tile(
        &grid.taps,
        win.channels,
        shape,
        bias.is_some(),
        |tile| match kernel {
            Kernel::Portable => portable_tile(tile, a, &weight.values, out, bias_values),
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx512 => avx512::tile(tile, a, &weight.values, out, bias_values),
        },
    );
}

impl Grid {
    /// Runs `work` on every tile of a convolution over this grid into `n` columns, panel by
    /// panel: the image has `per_pixel` values a pixel at tap offsets `taps`, and a panel of
    /// the packed weight `k_rows` rows of [`NR`]. (Plain loops: tiles are short, and an
    /// iterator of tiles measured slower on a 3-channel input.)
    fn for_each_tile(
        &self,
        taps: &[usize],
        per_pixel: usize,
        (k_rows, n): (usize, usize),
        with_bias: bool,
        mut work: impl FnMut(&Tile),
    ) {
        for q in 0..n.div_ceil(NR) {
            for first in (0..self.rows()).step_by(MR) {
                work(&Tile {
                    a_at: first * per_pixel,
                    taps,
                    channels: per_pixel,
                    b_at: q * k_rows * NR,
                    rows: self.destinations(first),
                    c_at: q * NR,
                    ldc: n,
                    cols: (n - q * NR).min(NR),
                    bias_at: with_bias.then_some(q * NR),
                });
            }
        }
    }
}

/// One tile of a kernel gradient: rows `j0..j0 + MR` of kernel row `ky`'s `kw * C` values,
/// against `cols` output channels from `c_at`, summed over every output pixel of an image.
///
/// Row `i` at output pixel `(oy, ox)` reads the padded image at `x_at + (oy * wp + ox) * C + i`
/// (for kernel row `ky`, the values `(kx, c)` under a pixel are contiguous there); the pixel's
/// output gradient is read at `(oy * out_w + ox) * ldd + c_at`. The tile adds onto the
/// `rows x cols` block of `out` at `out_at` (row stride `ldc`), or overwrites it when `fresh`.
pub(crate) struct GradTile {
    pub(crate) x_at: usize,
    pub(crate) rows: usize,
    pub(crate) channels: usize,
    pub(crate) wp: usize,
    pub(crate) out_h: usize,
    pub(crate) out_w: usize,
    pub(crate) ldd: usize,
    pub(crate) c_at: usize,
    pub(crate) cols: usize,
    pub(crate) out_at: usize,
    pub(crate) ldc: usize,
    pub(crate) fresh: bool,
}

impl GradTile {
    /// Panics unless every element the kernel touches lies inside the slices.
    pub(crate) fn check(&self, x: &[f32], dy: &[f32], out: &[f32]) {
        assert!(self.rows > 0 && self.rows <= MR && self.cols > 0 && self.cols <= NR);
        assert!(self.out_h > 0 && self.out_w > 0);
        let last_pixel = (self.out_h - 1) * self.wp + self.out_w - 1;
        assert!(self.x_at + last_pixel * self.channels + MR <= x.len());
        let last_output = (self.out_h * self.out_w - 1) * self.ldd;
        assert!(last_output + self.c_at + self.cols <= dy.len());
        assert!(self.out_at + (self.rows - 1) * self.ldc + self.cols <= out.len());
    }
}

/// The scalar gradient kernel: the vector one's sums, fused multiply-adds in the same order.
fn portable_grad_tile(tile: &GradTile, x: &[f32], dy: &[f32], out: &mut [f32]) {
    tile.check(x, dy, out);
    let mut acc = [[0.0f32; NR]; MR];
    if !tile.fresh {
        for (i, sums) in acc.iter_mut().enumerate().take(tile.rows) {
            let at = tile.out_at + i * tile.ldc;
            sums[..tile.cols].copy_from_slice(&out[at..at + tile.cols]);
        }
    }
    for oy in 0..tile.out_h {
        for ox in 0..tile.out_w {
            let pixel = tile.x_at + (oy * tile.wp + ox) * tile.channels;
            let d = (oy * tile.out_w + ox) * tile.ldd + tile.c_at;
            let grads = &dy[d..d + tile.cols];
            for (i, sums) in acc.iter_mut().enumerate() {
                let v = x[pixel + i];
                for (s, &g) in sums.iter_mut().zip(grads) {
                    *s = v.mul_add(g, *s);
                }
            }
        }
    }
    for (i, sums) in acc.iter().enumerate().take(tile.rows) {
        let at = tile.out_at + i * tile.ldc;
        out[at..at + tile.cols].copy_from_slice(&sums[..tile.cols]);
    }
}

/// Adds image by image the kernel gradient of `images` (whole `H x W x C` images, geometry
/// `grid`) to `out`, or writes it when `fresh`: `out` is `dW^T`, `K x N` row-major with `K`
/// in `(ky, kx, c)` order, and `dy` holds the images' `out_h x out_w x N` output gradients.
///
/// `dW^T[(ky, kx, c), o] = sum over images and output pixels (oy, ox) of
/// xpad[oy + ky, ox + kx, c] * dy[oy, ox, o]`, summed pixel by pixel in row-major order.
///
/// In [`Precision::Bf16`], the sums run over pairs of neighbouring pixels of bf16 operands
/// ([`pairs::pair_kernel_gradient`]).
///
/// # Panics
/// If the lengths do not match the geometry (programming errors).
#[allow(clippy::too_many_arguments)]
pub(crate) fn kernel_gradient(
    kernel: Kernel,
    precision: Precision,
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
    assert_eq!(out.len(), win.patch_len() * n);
    assert_eq!(images.len() % win.image_len(), 0);
    assert_eq!(dy.len(), images.len() / win.image_len() * pixels * n);
    if precision == Precision::Bf16 {
        return pairs::pair_kernel_gradient(kernel, grid, images, dy, out, fresh, scratch);
    }
    for (index, (image, dy)) in images
        .chunks_exact(win.image_len())
        .zip(dy.chunks_exact(pixels * n))
        .enumerate()
    {
        grid.pad(image, &mut scratch.padded);
        let x = &scratch.padded;
        for tile in grid.grad_tiles(k * c, n, fresh && index == 0) {
            match kernel {
                Kernel::Portable => portable_grad_tile(&tile, x, dy, out),
                #[cfg(target_arch = "x86_64")]
                Kernel::Avx512 => avx512::grad_tile(&tile, x, dy, out),
            }
        }
    }
}

impl Grid {
    /// Every tile of a kernel gradient into `n` columns: for each kernel row `ky`, its
    /// `segment = kw * C` values in runs of [`MR`], against each panel of [`NR`] columns.
    fn grad_tiles(&self, segment: usize, n: usize, fresh: bool) -> impl Iterator<Item = GradTile> {
        let win = self.win;
        let (c, wp) = (win.channels, self.wp);
        let panels = n.div_ceil(NR);
        (0..win.kernel_h).flat_map(move |ky| {
            (0..segment).step_by(MR).flat_map(move |j0| {
                (0..panels).map(move |q| GradTile {
                    x_at: ky * wp * c + j0,
                    rows: (segment - j0).min(MR),
                    channels: c,
                    wp,
                    out_h: win.out_h(),
                    out_w: win.out_w(),
                    ldd: n,
                    c_at: q * NR,
                    cols: (n - q * NR).min(NR),
                    out_at: (ky * segment + j0) * n + q * NR,
                    ldc: n,
                    fresh,
                })
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::im2col::im2col_image;
    use crate::engine::Rng;

    pub(super) fn window(h: usize, w: usize, c: usize, k: usize, p: usize) -> Window {
        crate::engine::im2col::tests::window(h, w, c, k, 1, p)
    }

    pub(super) fn random(len: usize, rng: &mut Rng) -> Vec<f32> {
        (0..len).map(|_| rng.uniform(-1.0, 1.0)).collect()
    }

    /// `patches * kernel^T + bias` in f64, from im2col's patch matrix.
    fn through_patches(win: &Window, image: &[f32], kernel: &[f32], bias: &[f32]) -> Vec<f64> {
        let k = win.patch_len();
        let mut patches = vec![0.0; win.patches_per_image()];
        im2col_image(image, win, &mut patches);
        let n = bias.len();
        patches
            .chunks_exact(k)
            .flat_map(|row| {
                (0..n).map(move |o| {
                    let dot: f64 = row
                        .iter()
                        .zip(&kernel[o * k..(o + 1) * k])
                        .map(|(&x, &w)| x as f64 * w as f64)
                        .sum();
                    dot + bias[o] as f64
                })
            })
            .collect()
    }

    /// Checks `got` against the f64 reference within f32 summation error.
    fn assert_close(got: &[f32], want: &[f64], terms: usize) {
        assert_eq!(got.len(), want.len());
        let bound = 2.0 * terms as f64 * f32::EPSILON as f64;
        for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
            assert!(
                (g as f64 - w).abs() <= bound * (1.0 + w.abs()) * 4.0,
                "{i}: {g} vs {w}"
            );
        }
    }

    fn convolve(kernel: Kernel, win: &Window, image: &[f32], w: &[f32], bias: &[f32]) -> Vec<f32> {
        let mut packed = PackedWeight::default();
        packed.for_output(w, bias.len());
        let mut out = vec![f32::NAN; win.out_h() * win.out_w() * bias.len()];
        let grid = Grid::new(*win);
        let mut scratch = Scratch::default();
        convolve_image(
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

    /// Shapes with partial tiles and panels, one channel, a kernel wider than the padding, no
    /// padding, and an output of a single pixel.
    pub(super) const SHAPES: [(usize, usize, usize, usize, usize, usize); 7] = [
        (32, 32, 3, 3, 1, 32),
        (16, 16, 32, 3, 1, 64),
        (8, 8, 20, 3, 1, 10),
        (7, 5, 1, 3, 0, 40),
        (9, 6, 4, 5, 2, 33),
        (3, 3, 2, 3, 0, 17),
        (5, 7, 3, 2, 1, 5),
    ];

    #[test]
    fn the_portable_kernel_matches_the_products_of_the_patch_matrix() {
        let mut rng = Rng::new(11);
        for (h, w, c, k, p, n) in SHAPES {
            let win = window(h, w, c, k, p);
            let image = random(win.image_len(), &mut rng);
            let weight = random(n * win.patch_len(), &mut rng);
            let bias = random(n, &mut rng);
            let got = convolve(Kernel::Portable, &win, &image, &weight, &bias);
            let want = through_patches(&win, &image, &weight, &bias);
            assert_close(&got, &want, win.patch_len());
        }
    }

    #[test]
    fn the_vector_kernel_gives_the_portable_kernels_bits() {
        let Some(vector) = Kernel::detect() else {
            eprintln!("no AVX-512 here: the vector kernel is not run");
            return;
        };
        let mut rng = Rng::new(12);
        for (h, w, c, k, p, n) in SHAPES {
            let win = window(h, w, c, k, p);
            let image = random(win.image_len(), &mut rng);
            let weight = random(n * win.patch_len(), &mut rng);
            let bias = random(n, &mut rng);
            let portable = convolve(Kernel::Portable, &win, &image, &weight, &bias);
            let fast = convolve(vector, &win, &image, &weight, &bias);
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&fast), bits(&portable), "{h}x{w}x{c} k{k} p{p} n{n}");
        }
    }

    /// `dW^T = P^T dY` in f64, from im2col's patch matrix of each image.
    fn gradient_through_patches(win: &Window, images: &[f32], dy: &[f32], n: usize) -> Vec<f64> {
        let k = win.patch_len();
        let mut want = vec![0.0f64; k * n];
        let mut patches = vec![0.0; win.patches_per_image()];
        let pixels = win.out_h() * win.out_w();
        for (image, dy) in images
            .chunks_exact(win.image_len())
            .zip(dy.chunks_exact(pixels * n))
        {
            im2col_image(image, win, &mut patches);
            for (row, d) in patches.chunks_exact(k).zip(dy.chunks_exact(n)) {
                for (r, &x) in row.iter().enumerate() {
                    for (o, &g) in d.iter().enumerate() {
                        want[r * n + o] += x as f64 * g as f64;
                    }
                }
            }
        }
        want
    }

    #[test]
    fn kernel_gradients_match_the_products_of_the_patch_matrix_in_both_kernels() {
        let mut rng = Rng::new(14);
        for (h, w, c, k, p, n) in SHAPES {
            let win = window(h, w, c, k, p);
            let images = 3;
            let x = random(images * win.image_len(), &mut rng);
            let dy = random(images * win.out_h() * win.out_w() * n, &mut rng);
            let want = gradient_through_patches(&win, &x, &dy, n);
            let grid = Grid::new(win);
            let mut scratch = Scratch::default();
            let mut portable = vec![f32::NAN; win.patch_len() * n];
            kernel_gradient(
                Kernel::Portable,
                Precision::Fp32,
                &grid,
                &x,
                &dy,
                &mut portable,
                true,
                &mut scratch,
            );
            assert_close(&portable, &want, images * win.out_h() * win.out_w());
            // Not fresh: adds onto what is there.
            let mut twice = portable.clone();
            kernel_gradient(
                Kernel::Portable,
                Precision::Fp32,
                &grid,
                &x,
                &dy,
                &mut twice,
                false,
                &mut scratch,
            );
            let doubled: Vec<f64> = want.iter().map(|w| 2.0 * w).collect();
            assert_close(&twice, &doubled, 2 * images * win.out_h() * win.out_w());
            if let Some(vector) = Kernel::detect() {
                let mut fast = vec![f32::NAN; win.patch_len() * n];
                let fp32 = Precision::Fp32;
                kernel_gradient(vector, fp32, &grid, &x, &dy, &mut fast, true, &mut scratch);
                let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&fast), bits(&portable), "{h}x{w}x{c} k{k} p{p} n{n}");
                kernel_gradient(vector, fp32, &grid, &x, &dy, &mut fast, false, &mut scratch);
                assert_eq!(bits(&fast), bits(&twice));
            }
        }
    }

    #[test]
    fn the_turned_kernel_gives_the_adjoint_of_the_convolution() {
        // <conv(x), dy> == <x, conv_T(dy)>, where conv_T is the turned kernel over dy padded
        // by k - 1 - p.
        let mut rng = Rng::new(13);
        for (h, w, c, k, p, n) in SHAPES {
            let win = window(h, w, c, k, p);
            let x = random(win.image_len(), &mut rng);
            let weight = random(n * win.patch_len(), &mut rng);
            let y = convolve(Kernel::Portable, &win, &x, &weight, &vec![0.0; n]);
            let dy = random(y.len(), &mut rng);
            let back = window(win.out_h(), win.out_w(), n, k, k - 1 - p);
            assert_eq!((back.out_h(), back.out_w()), (h, w));
            let mut turned = PackedWeight::default();
            turned.for_input_gradient(&weight, n, k);
            let mut dx = vec![f32::NAN; x.len()];
            let grid = Grid::new(back);
            let mut scratch = Scratch::default();
            convolve_image(
                Kernel::Portable,
                &grid,
                &dy,
                &turned,
                None,
                &mut dx,
                &mut scratch,
            );
            let dot = |a: &[f32], b: &[f32]| -> f64 {
                a.iter().zip(b).map(|(&a, &b)| a as f64 * b as f64).sum()
            };
            let (lhs, rhs) = (dot(&y, &dy), dot(&x, &dx));
            assert!(
                (lhs - rhs).abs() <= 1e-4 * lhs.abs().max(1.0),
                "{lhs} vs {rhs}"
            );
        }
    }
}
