//! Image patches as matrix rows (im2col) and the reverse scatter-add (col2im), channels-last.
//!
//! For an NHWC input and a `kh x kw` kernel, row `(n, oy, ox)` of the patch matrix holds the
//! input values under the kernel at that output position in `(ky, kx, c)` order, zeros where
//! the kernel hangs over the padding. A convolution is then `patches * kernel^T` with the
//! kernel stored as `[out_channels, kh, kw, in_channels]`.

use rayon::prelude::*;

/// The geometry of a 2-D convolution or pooling window over an NHWC tensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    pub height: usize,
    pub width: usize,
    pub channels: usize,
    pub kernel_h: usize,
    pub kernel_w: usize,
    pub stride: usize,
    pub padding: usize,
}

impl Window {
    /// Output height: `(H + 2p - kh) / s + 1` (floor, as PyTorch).
    pub fn out_h(&self) -> usize {
        (self.height + 2 * self.padding - self.kernel_h) / self.stride + 1
    }

    /// Output width: `(W + 2p - kw) / s + 1`.
    pub fn out_w(&self) -> usize {
        (self.width + 2 * self.padding - self.kernel_w) / self.stride + 1
    }

    /// Columns of the patch matrix: `kh * kw * C`.
    pub fn patch_len(&self) -> usize {
        self.kernel_h * self.kernel_w * self.channels
    }

    /// Values of one input image (`height * width * channels`).
    pub fn image_len(&self) -> usize {
        self.height * self.width * self.channels
    }

    /// Values of one image's patch matrix (`out_h * out_w * patch_len`).
    pub fn patches_per_image(&self) -> usize {
        self.out_h() * self.out_w() * self.patch_len()
    }

    /// Input row of kernel row `ky` at output row `oy`, or `None` in the padding.
    #[inline]
    fn source_row(&self, oy: usize, ky: usize) -> Option<usize> {
        (oy * self.stride + ky)
            .checked_sub(self.padding)
            .filter(|&iy| iy < self.height)
    }

    /// For output column `ox`: the kernel columns `lo..hi` that fall inside the image, and the
    /// input column under kernel column `lo`. Inside one kernel row those inputs are contiguous.
    #[inline]
    fn inside_columns(&self, ox: usize) -> (usize, usize, usize) {
        let start = (ox * self.stride) as isize - self.padding as isize;
        let lo = (-start).clamp(0, self.kernel_w as isize) as usize;
        let hi = (self.width as isize - start).clamp(lo as isize, self.kernel_w as isize) as usize;
        (lo, hi, (start + lo as isize).max(0) as usize)
    }
}

/// Writes the patch matrix of `input` (`batch` NHWC images) into `patches`, which must hold
/// `batch * out_h * out_w * patch_len` values. Images run in parallel.
pub fn im2col(input: &[f32], batch: usize, win: &Window, patches: &mut [f32]) {
    let rows_len = win.out_h() * win.out_w() * win.patch_len();
    debug_assert_eq!(patches.len(), batch * rows_len);
    patches
        .par_chunks_mut(rows_len)
        .zip(input.par_chunks(win.image_len()))
        .take(batch)
        .for_each(|(out, image)| im2col_image(image, win, out));
}

/// [`im2col`] of one image, on the calling thread: `out` holds `out_h * out_w * patch_len`
/// values.
pub fn im2col_image(image: &[f32], win: &Window, out: &mut [f32]) {
    let c = win.channels;
    let row_len = win.kernel_w * c;
    let mut segments = out.chunks_exact_mut(row_len);
    for oy in 0..win.out_h() {
        for ox in 0..win.out_w() {
            let (lo, hi, x0) = win.inside_columns(ox);
            for ky in 0..win.kernel_h {
                let segment = segments.next().expect("patch row length");
                let Some(iy) = win.source_row(oy, ky) else {
                    segment.fill(0.0);
                    continue;
                };
                segment[..lo * c].fill(0.0);
                segment[hi * c..].fill(0.0);
                if hi > lo {
                    let at = (iy * win.width + x0) * c;
                    segment[lo * c..hi * c].copy_from_slice(&image[at..at + (hi - lo) * c]);
                }
            }
        }
    }
}

/// The adjoint of [`im2col`]: adds every patch-matrix entry back onto the input position it was
/// read from. `grad_input` is overwritten. Images are independent, so they run in parallel with
/// a fixed order of additions inside each.
pub fn col2im(patches: &[f32], batch: usize, win: &Window, grad_input: &mut [f32]) {
    let rows_len = win.out_h() * win.out_w() * win.patch_len();
    grad_input
        .par_chunks_mut(win.image_len())
        .zip(patches.par_chunks(rows_len))
        .take(batch)
        .for_each(|(image, rows)| col2im_image(rows, win, image));
}

/// [`col2im`] of one image, on the calling thread: `image` is overwritten.
pub fn col2im_image(rows: &[f32], win: &Window, image: &mut [f32]) {
    let c = win.channels;
    image.fill(0.0);
    let row_len = win.kernel_w * c;
    let mut segments = rows.chunks_exact(row_len);
    for oy in 0..win.out_h() {
        for ox in 0..win.out_w() {
            let (lo, hi, x0) = win.inside_columns(ox);
            for ky in 0..win.kernel_h {
                let segment = segments.next().expect("patch row length");
                if let (Some(iy), true) = (win.source_row(oy, ky), hi > lo) {
                    let at = (iy * win.width + x0) * c;
                    let target = &mut image[at..at + (hi - lo) * c];
                    for (g, &v) in target.iter_mut().zip(&segment[lo * c..hi * c]) {
                        *g += v;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A window of a square `k x k` kernel with stride `s` and padding `p`.
    pub(crate) fn window(h: usize, w: usize, c: usize, k: usize, s: usize, p: usize) -> Window {
        Window {
            height: h,
            width: w,
            channels: c,
            kernel_h: k,
            kernel_w: k,
            stride: s,
            padding: p,
        }
    }

    #[test]
    fn output_size_follows_pytorch_floor_rule() {
        assert_eq!(window(32, 32, 3, 3, 1, 1).out_h(), 32);
        assert_eq!(window(32, 32, 3, 3, 2, 1).out_h(), 16);
        assert_eq!(window(7, 7, 1, 2, 2, 0).out_w(), 3);
    }

    #[test]
    fn patches_hold_neighbours_and_zero_padding() {
        // One 2x2 single-channel image [[1,2],[3,4]], 3x3 kernel, padding 1.
        let win = window(2, 2, 1, 3, 1, 1);
        let mut patches = vec![f32::NAN; 4 * 9];
        im2col(&[1.0, 2.0, 3.0, 4.0], 1, &win, &mut patches);
        assert_eq!(&patches[..9], &[0., 0., 0., 0., 1., 2., 0., 3., 4.]);
        assert_eq!(&patches[27..], &[1., 2., 0., 3., 4., 0., 0., 0., 0.]);
    }

    #[test]
    fn windows_entirely_in_the_padding_are_zero() {
        // 1x1 kernel, padding 2: the outer ring of outputs reads only padding.
        let win = window(2, 2, 1, 1, 1, 2);
        let mut patches = vec![f32::NAN; 6 * 6];
        im2col(&[1.0, 2.0, 3.0, 4.0], 1, &win, &mut patches);
        assert_eq!(patches.iter().sum::<f32>(), 10.0);
        assert_eq!(patches[2 * 6 + 2], 1.0);
        let mut back = vec![0.0; 4];
        col2im(&patches, 1, &win, &mut back);
        assert_eq!(back, [1.0, 2.0, 3.0, 4.0]);
    }

    #[test]
    fn col2im_is_the_adjoint_of_im2col() {
        // <im2col(x), y> == <x, col2im(y)> for any x, y.
        let win = window(5, 4, 3, 3, 2, 1);
        let batch = 2;
        let x: Vec<f32> = (0..batch * 5 * 4 * 3)
            .map(|i| (i as f32 * 0.37).sin())
            .collect();
        let rows = batch * win.out_h() * win.out_w() * win.patch_len();
        let y: Vec<f32> = (0..rows).map(|i| (i as f32 * 0.11).cos()).collect();
        let mut patches = vec![0.0; rows];
        im2col(&x, batch, &win, &mut patches);
        let mut back = vec![0.0; x.len()];
        col2im(&y, batch, &win, &mut back);
        let lhs: f64 = patches.iter().zip(&y).map(|(a, b)| (a * b) as f64).sum();
        let rhs: f64 = x.iter().zip(&back).map(|(a, b)| (a * b) as f64).sum();
        assert!(
            (lhs - rhs).abs() < 1e-4 * lhs.abs().max(1.0),
            "{lhs} vs {rhs}"
        );
    }
}
