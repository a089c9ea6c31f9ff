//! The AVX-512 `MR x NR` kernel of the direct convolution.
//!
//! [`tile`] is safe: it asserts that the CPU has AVX-512 F and that every element the kernel
//! touches lies inside its slices ([`Tile::check`]), then runs the vector code. So are
//! [`grad_tile`] and [`pair_tile`] (the bf16 kernel, which asserts AVX512-BF16).

use super::{GradTile, Tile, MR, NR, SKIP};
use crate::engine::bf16::has_avx512_bf16;
use std::arch::x86_64::*;
use std::mem::transmute;

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

/// Computes the bf16 `tile` (see [`super::pairs`]): `a` and `b` hold bf16 pairs.
pub(super) fn pair_tile(tile: &Tile, a: &[u32], b: &[u32], c: &mut [f32], bias: &[f32]) {
    assert!(
        has_avx512_bf16(),
        "the AVX512-BF16 convolution kernel was chosen on a CPU without AVX512-BF16"
    );
    tile.check(a, b, c, bias);
    // SAFETY: the CPU has AVX-512 F, BW and BF16, and `check` bounds every load and store.
    unsafe { pair_kernel(tile, a.as_ptr(), b.as_ptr(), c.as_mut_ptr(), bias.as_ptr()) }
}

/// [`kernel`] on bf16 pairs: per term two loads of weight pairs, and per row one broadcast
/// pair of input channels feeding two VDPBF16PS.
///
/// # Safety
/// The CPU must have AVX-512 F, BW and BF16, and [`Tile::check`] must hold for the slices
/// the pointers start.
#[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
unsafe fn pair_kernel(tile: &Tile, a: *const u32, b: *const u32, c: *mut f32, bias: *const f32) {
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
        for pair in 0..tile.channels {
            let w_low: __m512bh = transmute(_mm512_loadu_si512(weights.cast()));
            let w_high: __m512bh = transmute(_mm512_loadu_si512(weights.add(16).cast()));
            weights = weights.add(NR);
            let x = rows.add(pair);
            for (i, sums) in acc.iter_mut().enumerate() {
                let v: __m512bh = transmute(_mm512_set1_epi32(*x.add(i * stride) as i32));
                sums[0] = _mm512_dpbf16_ps(sums[0], v, w_low);
                sums[1] = _mm512_dpbf16_ps(sums[1], v, w_high);
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

/// Computes the bf16 gradient `tile` (see [`super::pairs::pair_kernel_gradient`]): `x` and
/// `dy` hold bf16 pairs of neighbouring pixels.
pub(super) fn pair_grad_tile(tile: &GradTile, x: &[u32], dy: &[u32], out: &mut [f32]) {
    assert!(
        has_avx512_bf16(),
        "the AVX512-BF16 convolution kernel was chosen on a CPU without AVX512-BF16"
    );
    tile.check_pairs(x, dy, out);
    // SAFETY: the CPU has AVX-512 F, BW and BF16, and `check_pairs` bounds every access.
    unsafe { pair_grad_kernel(tile, x.as_ptr(), dy.as_ptr(), out.as_mut_ptr()) }
}

/// [`grad_kernel`] on pairs of pixels: per pixel pair two (masked) loads of output-gradient
/// pairs, and per row one broadcast pair of input values feeding two VDPBF16PS.
///
/// # Safety
/// The CPU must have AVX-512 F, BW and BF16, and [`GradTile::check_pairs`] must hold for the
/// slices the pointers start.
#[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
unsafe fn pair_grad_kernel(tile: &GradTile, x: *const u32, dy: *const u32, out: *mut f32) {
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
    let pairs_per_row = tile.out_w.div_ceil(2);
    for oy in 0..tile.out_h {
        let x_row = x.add(tile.x_at + oy * tile.wp * c);
        let dy_row = dy.add(oy * pairs_per_row * tile.ldd + tile.c_at);
        for pair in 0..pairs_per_row {
            let grads = dy_row.add(pair * tile.ldd);
            let g_low: __m512bh = transmute(_mm512_maskz_loadu_epi32(low, grads.cast()));
            let g_high: __m512bh = transmute(_mm512_maskz_loadu_epi32(
                high,
                grads.wrapping_add(16).cast(),
            ));
            let values = x_row.add(2 * pair * c);
            for (i, sums) in acc.iter_mut().enumerate() {
                let v: __m512bh = transmute(_mm512_set1_epi32(*values.add(i) as i32));
                sums[0] = _mm512_dpbf16_ps(sums[0], v, g_low);
                sums[1] = _mm512_dpbf16_ps(sums[1], v, g_high);
            }
        }
    }
    for (i, sums) in acc.iter().enumerate() {
        let at = out.wrapping_add(tile.out_at + i * tile.ldc);
        _mm512_mask_storeu_ps(at, row_mask(i, low), sums[0]);
        _mm512_mask_storeu_ps(at.wrapping_add(16), row_mask(i, high), sums[1]);
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
