//! Training-time augmentation as in the source studies: a random horizontal flip and a
//! small random shift (zero padding then a random crop back to the original size,
//! `RandomCrop(size, padding=max_shift)` followed by `RandomHorizontalFlip()` in
//! torchvision terms).
//!
//! Padding is a raw pixel value of 0, applied before normalization, as torchvision pads
//! the image before `ToTensor` and `Normalize`.

use crate::engine::SplitMix64;

/// Which augmentations to apply to each training image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Augmentation {
    /// Mirror left-right with probability 1/2.
    pub horizontal_flip: bool,
    /// Shift by up to this many pixels in each direction (uniform in
    /// `-max_shift..=max_shift`, independently for rows and columns), filling with 0.
    pub max_shift: usize,
}

impl Augmentation {
    /// No augmentation (evaluation, or training without it).
    pub fn none() -> Self {
        Augmentation::default()
    }

    /// Whether every image is left unchanged.
    pub fn is_identity(&self) -> bool {
        !self.horizontal_flip && self.max_shift == 0
    }

    /// Draws the transform of one image.
    pub fn draw(&self, rng: &mut SplitMix64) -> Transform {
        let flip = self.horizontal_flip && rng.coin();
        let span = 2 * self.max_shift as u64 + 1;
        let shift = self.max_shift as isize;
        let dy = rng.below(span) as isize - shift;
        let dx = rng.below(span) as isize - shift;
        Transform { flip, dy, dx }
    }
}

/// One image's transform: output pixel `(y, x)` is input pixel
/// `(y + dy, x' + dx)` with `x' = width - 1 - x` if flipped, else `x`; outside the input
/// it is 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Transform {
    pub flip: bool,
    pub dy: isize,
    pub dx: isize,
}

impl Transform {
    /// Writes the transformed HWC image `src` of shape `(height, width, channels)` into
    /// `out`, converting each byte `v` of channel `c` to `table[c][v]`.
    pub fn apply(
        &self,
        src: &[u8],
        (height, width, channels): (usize, usize, usize),
        table: &[[f32; 256]],
        out: &mut [f32],
    ) {
        let row_len = width * channels;
        for (y, out_row) in out.chunks_exact_mut(row_len).enumerate().take(height) {
            let sy = y as isize + self.dy;
            if sy < 0 || sy >= height as isize {
                fill_padding(out_row, table, channels);
                continue;
            }
            let src_row = &src[sy as usize * row_len..][..row_len];
            for (x, out_px) in out_row.chunks_exact_mut(channels).enumerate() {
                let column = if self.flip { width - 1 - x } else { x };
                let sx = column as isize + self.dx;
                if sx < 0 || sx >= width as isize {
                    fill_padding(out_px, table, channels);
                } else {
                    let src_px = &src_row[sx as usize * channels..][..channels];
                    for (c, (o, &v)) in out_px.iter_mut().zip(src_px).enumerate() {
                        *o = table[c][usize::from(v)];
                    }
                }
            }
        }
    }
}

/// The normalized value of a zero pixel, per channel.
fn fill_padding(out: &mut [f32], table: &[[f32; 256]], channels: usize) {
    for (i, o) in out.iter_mut().enumerate() {
        *o = table[i % channels][0];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity_table(channels: usize) -> Vec<[f32; 256]> {
        let row: [f32; 256] = std::array::from_fn(|v| v as f32);
        vec![row; channels]
    }

    /// A 3x3 one-channel image with values 1..=9.
    fn apply(transform: Transform) -> Vec<f32> {
        let src: Vec<u8> = (1..=9).collect();
        let mut out = vec![-1.0; 9];
        transform.apply(&src, (3, 3, 1), &identity_table(1), &mut out);
        out
    }

    #[test]
    fn the_identity_transform_copies() {
        assert_eq!(
            apply(Transform::default()),
            vec![1., 2., 3., 4., 5., 6., 7., 8., 9.]
        );
    }

    #[test]
    fn a_flip_mirrors_each_row() {
        let flip = Transform {
            flip: true,
            dy: 0,
            dx: 0,
        };
        assert_eq!(apply(flip), vec![3., 2., 1., 6., 5., 4., 9., 8., 7.]);
    }

    #[test]
    fn a_shift_brings_in_zero_padding() {
        let shift = Transform {
            flip: false,
            dy: 1,
            dx: -1,
        };
        assert_eq!(apply(shift), vec![0., 4., 5., 0., 7., 8., 0., 0., 0.]);
        let both = Transform {
            flip: true,
            dy: 0,
            dx: 1,
        };
        assert_eq!(apply(both), vec![0., 3., 2., 0., 6., 5., 0., 9., 8.]);
    }

    #[test]
    fn padding_takes_each_channels_normalized_zero() {
        let mut table = identity_table(2);
        table[1][0] = -5.0;
        let mut out = vec![0.0; 4];
        Transform {
            flip: false,
            dy: 0,
            dx: 1,
        }
        .apply(&[1, 2, 3, 4], (1, 2, 2), &table, &mut out);
        assert_eq!(out, vec![3., 4., 0., -5.]);
    }

    #[test]
    fn draws_stay_within_the_allowed_shift_and_flip_both_ways() {
        let augmentation = Augmentation {
            horizontal_flip: true,
            max_shift: 2,
        };
        let mut rng = SplitMix64::new(9);
        let draws: Vec<Transform> = (0..200).map(|_| augmentation.draw(&mut rng)).collect();
        assert!(draws.iter().all(|t| t.dx.abs() <= 2 && t.dy.abs() <= 2));
        assert!(draws.iter().any(|t| t.flip) && draws.iter().any(|t| !t.flip));
        assert!(draws.iter().any(|t| t.dx == -2) && draws.iter().any(|t| t.dy == 2));
        assert_eq!(Augmentation::none().draw(&mut rng), Transform::default());
    }
}
