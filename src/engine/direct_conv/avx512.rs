//! The AVX-512 `MR x NR` kernel of the direct convolution.
//!
//! [`tile`] is safe: it asserts that the CPU has AVX-512 F and that every element the kernel
//! touches lies inside its slices ([`Tile::check`]), then runs the vector code.

use super::{GradTile, Tile, MR, NR, SKIP};
use std::arch::x86_64::*;

/// A mask of the first `count` of 16 lanes.
fn lanes(count: usize) -> u16 {
    if count >= 16 {
        u16::MAX
    } else {
        (1u16 << count) - 1
    }
}

/// Computes `tile` (see [`super::portable_tile`], whose bits it gives).
pub(super) fn tile(tile: &Tile, a: &[f32], b: &[f32], c: &mut [f32], bias: &[f32]) {
    assert!(
        std::arch::is_x86_feature_detected!("avx512f"),
        "the AVX-512 convolution kernel was chosen on a CPU without AVX-512"
    );
    tile.check(a, b, c, bias);
    // SAFETY: the CPU has AVX-512 F, and `check` bounds every load and store below.
    unsafe { kernel(tile, a.as_ptr(), b.as_ptr(), c.as_mut_ptr(), bias.as_ptr()) }
}

/// 24 accumulators of 16 lanes; per term two loads of the weight panel, and per row one
/// broadcast of the input feeding two fused multiply-adds.
///
/// # Safety
/// The CPU must have AVX-512 F, and [`Tile::check`] must hold for the slices the pointers
/// start.
#[target_feature(enable = "avx512f")]
unsafe fn kernel(tile: &Tile, a: *const f32, b: *const f32, c: *mut f32, bias: *const f32) {
    let low = lanes(tile.cols);
    let high = lanes(tile.cols.saturating_sub(16));
    let start = match tile.bias_at {
        Some(at) => [
            _mm512_maskz_loadu_ps(low, bias.add(at)),
            _mm512_maskz_loadu_ps(high, bias.wrapping_add(at + 16)),
        ],
        None => [_mm512_setzero_ps(); 2],
    };
    let mut acc = [start; MR];
    let stride = tile.channels;
    let mut weights = b.add(tile.b_at);
    for &tap in tile.taps {
        let rows = a.add(tile.a_at + tap);
        for ch in 0..tile.channels {
            let w_low = _mm512_loadu_ps(weights);
            let w_high = _mm512_loadu_ps(weights.add(16));
            weights = weights.add(NR);
            let x = rows.add(ch);
            for (i, sums) in acc.iter_mut().enumerate() {
                let v = _mm512_set1_ps(*x.add(i * stride));
                sums[0] = _mm512_fmadd_ps(v, w_low, sums[0]);
                sums[1] = _mm512_fmadd_ps(v, w_high, sums[1]);
            }
        }
    }
    for (&row, sums) in tile.rows.iter().zip(&acc) {
        if row != SKIP {
            let at = c.add(row * tile.ldc + tile.c_at);
            _mm512_mask_storeu_ps(at, low, sums[0]);
            _mm512_mask_storeu_ps(at.wrapping_add(16), high, sums[1]);
        }
    }
}

/// Computes `tile` (see [`super::portable_grad_tile`], whose bits it gives).
pub(super) fn grad_tile(tile: &GradTile, x: &[f32], dy: &[f32], out: &mut [f32]) {
    assert!(
        std::arch::is_x86_feature_detected!("avx512f"),
        "the AVX-512 convolution kernel was chosen on a CPU without AVX-512"
    );
    tile.check(x, dy, out);
    // SAFETY: the CPU has AVX-512 F, and `check` bounds every load and store below.
    unsafe { grad_kernel(tile, x.as_ptr(), dy.as_ptr(), out.as_mut_ptr()) }
}

/// 24 accumulators of 16 lanes; per output pixel two (masked) loads of its output gradient,
/// and per row one broadcast of the input feeding two fused multiply-adds.
///
/// # Safety
/// The CPU must have AVX-512 F, and [`GradTile::check`] must hold for the slices the pointers
/// start.
#[target_feature(enable = "avx512f")]
unsafe fn grad_kernel(tile: &GradTile, x: *const f32, dy: *const f32, out: *mut f32) {
    let low = lanes(tile.cols);
    let high = lanes(tile.cols.saturating_sub(16));
    let row_mask = |i: usize, columns: u16| if i < tile.rows { columns } else { 0 };
    let mut acc = [[_mm512_setzero_ps(); 2]; MR];
    if !tile.fresh {
        for (i, sums) in acc.iter_mut().enumerate() {
            let at = out.wrapping_add(tile.out_at + i * tile.ldc);
            sums[0] = _mm512_maskz_loadu_ps(row_mask(i, low), at);
            sums[1] = _mm512_maskz_loadu_ps(row_mask(i, high), at.wrapping_add(16));
        }
    }
    let c = tile.channels;
    for oy in 0..tile.out_h {
        let x_row = x.add(tile.x_at + oy * tile.wp * c);
        let dy_row = dy.add(oy * tile.out_w * tile.ldd + tile.c_at);
        for ox in 0..tile.out_w {
            let grads = dy_row.add(ox * tile.ldd);
            let g_low = _mm512_maskz_loadu_ps(low, grads);
            let g_high = _mm512_maskz_loadu_ps(high, grads.wrapping_add(16));
            let values = x_row.add(ox * c);
            for (i, sums) in acc.iter_mut().enumerate() {
                let v = _mm512_set1_ps(*values.add(i));
                sums[0] = _mm512_fmadd_ps(v, g_low, sums[0]);
                sums[1] = _mm512_fmadd_ps(v, g_high, sums[1]);
            }
        }
    }
    for (i, sums) in acc.iter().enumerate() {
        let at = out.wrapping_add(tile.out_at + i * tile.ldc);
        _mm512_mask_storeu_ps(at, row_mask(i, low), sums[0]);
        _mm512_mask_storeu_ps(at.wrapping_add(16), row_mask(i, high), sums[1]);
    }
}
