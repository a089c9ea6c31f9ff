//! The AVX512-BF16 code of the bf16 products: conversion, packing and the `MR x NR` kernel.
//!
//! Each public function here is safe: it asserts that the CPU has the instructions and that
//! every element it touches lies inside its slices, then calls the `unsafe` vector code.
//! Masked loads and stores do not touch masked-off lanes, so partial rows and columns need no
//! scalar tail.

use super::{has_avx512_bf16, ALayout, Tile, MR, NR};
use crate::engine::matmul::MatRef;
use std::arch::x86_64::*;
use std::mem::transmute;

/// Lane `2i` of the interleaved vector takes lane `i` (the even element), lane `2i + 1` takes
/// lane `16 + i` (the odd element): a converted `[even x 16, odd x 16]` becomes 16 pairs.
const INTERLEAVE: [i16; 32] = {
    let mut index = [0i16; 32];
    let mut i = 0;
    while i < 16 {
        index[2 * i] = i as i16;
        index[2 * i + 1] = 16 + i as i16;
        i += 1;
    }
    index
};

/// A mask of the first `count` of 16 lanes.
fn lanes(count: usize) -> u16 {
    if count >= 16 {
        u16::MAX
    } else {
        (1u16 << count) - 1
    }
}

fn assert_cpu_has_avx512_bf16() {
    assert!(
        has_avx512_bf16(),
        "the AVX512-BF16 kernel was chosen on a CPU without AVX512-BF16"
    );
}

/// Packs `a` in `layout` when its memory order suits vectors; false leaves it to the scalar
/// code.
pub(super) fn pack_a(a: MatRef<'_>, layout: ALayout, pairs: usize, data: &mut [u32]) -> bool {
    assert_cpu_has_avx512_bf16();
    let (m, k) = (a.rows(), a.cols());
    let src = a.data();
    match layout {
        ALayout::RowPairs if a.col_stride() == 1 => {
            for i in 0..m {
                let row = &src[i * a.row_stride()..][..k];
                // SAFETY: the CPU has the features; the row holds k elements and its slot
                // ceil(k / 2) pairs.
                unsafe { convert_run(row, &mut data[i * pairs..][..pairs]) };
            }
            true
        }
        ALayout::Panels => {
            assert!(data.len() >= m.div_ceil(MR) * MR * pairs && 2 * pairs >= k);
            assert!(m + (k - 1) * a.col_stride() <= src.len());
            // SAFETY: the CPU has the features, and the asserts above bound every read of a
            // column and every write of a tile.
            unsafe { pack_a_panels(src, m, k, a.col_stride(), pairs, data) };
            true
        }
        ALayout::RowPairs => false,
    }
}

/// Packs `b` as panels of `NR` columns when its memory order suits vectors; false leaves it
/// to the scalar code.
pub(super) fn pack_b(b: MatRef<'_>, pairs: usize, data: &mut [u32]) -> bool {
    assert_cpu_has_avx512_bf16();
    let (k, n) = (b.rows(), b.cols());
    let src = b.data();
    assert!(data.len() >= n.div_ceil(NR) * NR * pairs && 2 * pairs >= k);
    if b.col_stride() == 1 {
        assert!((k - 1) * b.row_stride() + n <= src.len());
        // SAFETY: the CPU has the features, and the asserts above bound every read of a row
        // and every write of a panel.
        unsafe { pack_b_rows(src, k, n, b.row_stride(), pairs, data) };
        true
    } else if b.row_stride() == 1 {
        // Each column is a run of k elements: convert it a piece at a time, into a buffer on
        // the stack, then place its pairs NR apart. Pieces have an even length, so no pair
        // straddles two of them.
        const PIECE_PAIRS: usize = 64;
        let mut converted = [0u32; PIECE_PAIRS];
        for j in 0..n {
            let run = &src[j * b.col_stride()..][..k];
            let panel = &mut data[(j / NR) * pairs * NR..][..pairs * NR];
            for (piece_index, piece) in run.chunks(2 * PIECE_PAIRS).enumerate() {
                let piece_pairs = &mut converted[..piece.len().div_ceil(2)];
                // SAFETY: the CPU has the features; `piece_pairs` holds ceil(len / 2) pairs.
                unsafe { convert_run(piece, piece_pairs) };
                let first = piece_index * PIECE_PAIRS;
                for (p, &value) in piece_pairs.iter().enumerate() {
                    panel[(first + p) * NR + j % NR] = value;
                }
            }
        }
        true
    } else {
        false
    }
}

/// Runs the kernel on one tile.
pub(super) fn tile(tile: &Tile, a: &[u32], b: &[u32], c: &mut [f32]) {
    assert_cpu_has_avx512_bf16();
    tile.check(a, b, c);
    // SAFETY: the CPU has the features and `check` bounds every read and write.
    unsafe { kernel(tile, a.as_ptr(), b.as_ptr(), c.as_mut_ptr()) }
}

/// Converts adjacent elements `2p, 2p + 1` of `src` to pair `p` of `dst`; a zero pads an odd
/// length.
pub(super) fn to_pairs(src: &[f32], dst: &mut [u32]) {
    assert_cpu_has_avx512_bf16();
    assert!(dst.len() >= src.len().div_ceil(2));
    // SAFETY: the CPU has the features, and `dst` holds ceil(src.len() / 2) pairs.
    unsafe { convert_run(src, dst) }
}

/// Pairs `(lo[i], hi[i])` of bf16 into `dst[i]`, for the `dst.len()` elements all three hold.
pub(super) fn pairs_of(lo: &[f32], hi: &[f32], dst: &mut [u32]) {
    assert_cpu_has_avx512_bf16();
    let len = dst.len();
    assert!(lo.len() >= len && hi.len() >= len);
    // SAFETY: the CPU has the features; every access is masked to the first `len` elements.
    unsafe {
        let index = _mm512_loadu_si512(INTERLEAVE.as_ptr().cast());
        let mut i = 0;
        while i < len {
            let mask = lanes(len - i);
            let even = _mm512_maskz_loadu_ps(mask, lo.as_ptr().add(i));
            let odd = _mm512_maskz_loadu_ps(mask, hi.as_ptr().add(i));
            let pairs = interleave(even, odd, index);
            _mm512_mask_storeu_epi32(dst.as_mut_ptr().add(i).cast(), mask, pairs);
            i += 16;
        }
    }
}

/// Converts adjacent elements `2p, 2p + 1` of `src` to pair `p` of `dst` (a zero pads an odd
/// length): 32 floats per VCVTNE2PS2BF16, which already leaves them in pair order.
///
/// # Safety
/// The CPU must have AVX-512 F, BW and BF16, and `dst` must hold `ceil(src.len() / 2)` pairs.
#[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
unsafe fn convert_run(src: &[f32], dst: &mut [u32]) {
    let len = src.len();
    debug_assert!(dst.len() >= len.div_ceil(2));
    let (src, dst) = (src.as_ptr(), dst.as_mut_ptr());
    let mut i = 0;
    while i + 32 <= len {
        let low = _mm512_loadu_ps(src.add(i));
        let high = _mm512_loadu_ps(src.add(i + 16));
        let packed: __m512i = transmute(_mm512_cvtne2ps_pbh(high, low));
        _mm512_storeu_si512(dst.add(i / 2).cast(), packed);
        i += 32;
    }
    if i < len {
        let rest = len - i;
        let low = _mm512_maskz_loadu_ps(lanes(rest), src.add(i));
        let high = _mm512_maskz_loadu_ps(lanes(rest.saturating_sub(16)), src.wrapping_add(i + 16));
        let packed: __m512i = transmute(_mm512_cvtne2ps_pbh(high, low));
        _mm512_mask_storeu_epi32(dst.add(i / 2).cast(), lanes(rest.div_ceil(2)), packed);
    }
}

/// Pairs `(even[l], odd[l])` for the 16 lanes `l`, as bf16.
#[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
unsafe fn interleave(even: __m512, odd: __m512, index: __m512i) -> __m512i {
    let converted: __m512i = transmute(_mm512_cvtne2ps_pbh(odd, even));
    _mm512_permutexvar_epi16(index, converted)
}

/// Packs a column-major `m x k` `a` (column stride `cs`) as panels of `MR` rows.
///
/// # Safety
/// The CPU must have AVX-512 F, BW and BF16; `src` must hold the matrix and `dst`
/// `ceil(m / MR) * MR * pairs` pairs.
#[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
unsafe fn pack_a_panels(src: &[f32], m: usize, k: usize, cs: usize, pairs: usize, dst: &mut [u32]) {
    let index = _mm512_loadu_si512(INTERLEAVE.as_ptr().cast());
    let (src, dst) = (src.as_ptr(), dst.as_mut_ptr());
    for t in 0..m.div_ceil(MR) {
        let first_row = t * MR;
        let rows = lanes((m - first_row).min(MR));
        for p in 0..pairs {
            let even = _mm512_maskz_loadu_ps(rows, src.add(first_row + 2 * p * cs));
            let odd = if 2 * p + 1 < k {
                _mm512_maskz_loadu_ps(rows, src.add(first_row + (2 * p + 1) * cs))
            } else {
                _mm512_setzero_ps()
            };
            let at = dst.add(t * MR * pairs + p * MR);
            _mm512_mask_storeu_epi32(at.cast(), lanes(MR), interleave(even, odd, index));
        }
    }
}

/// Packs a row-major `k x n` `b` (row stride `rs`) as panels of `NR` columns.
///
/// # Safety
/// The CPU must have AVX-512 F, BW and BF16; `src` must hold the matrix and `dst`
/// `ceil(n / NR) * NR * pairs` pairs.
#[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
unsafe fn pack_b_rows(src: &[f32], k: usize, n: usize, rs: usize, pairs: usize, dst: &mut [u32]) {
    let index = _mm512_loadu_si512(INTERLEAVE.as_ptr().cast());
    let (src, dst) = (src.as_ptr(), dst.as_mut_ptr());
    for q in 0..n.div_ceil(NR) {
        for p in 0..pairs {
            for half in 0..NR / 16 {
                let first_column = q * NR + half * 16;
                if first_column >= n {
                    break;
                }
                let columns = lanes(n - first_column);
                let even = _mm512_maskz_loadu_ps(columns, src.add(2 * p * rs + first_column));
                let odd = if 2 * p + 1 < k {
                    _mm512_maskz_loadu_ps(columns, src.add((2 * p + 1) * rs + first_column))
                } else {
                    _mm512_setzero_ps()
                };
                let at = dst.add(q * pairs * NR + p * NR + half * 16);
                _mm512_storeu_si512(at.cast(), interleave(even, odd, index));
            }
        }
    }
}

/// The `MR x NR` kernel: 24 accumulators of 16 lanes; per pair, two loads of `b`, and per row
/// one broadcast of `a` feeding two VDPBF16PS. Rows and columns past the tile's corner are
/// computed (the packing made them zero) but neither loaded nor stored.
///
/// # Safety
/// The CPU must have AVX-512 F, BW and BF16, and [`Tile::check`] must hold for the slices the
/// pointers start.
#[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
unsafe fn kernel(tile: &Tile, a: *const u32, b: *const u32, c: *mut f32) {
    let (a, b, c) = (a.add(tile.a_at), b.add(tile.b_at), c.add(tile.c_at));
    let (row_step, pair_step) = (tile.row_step, tile.pair_step);
    let low_columns = lanes(tile.cols);
    let high_columns = lanes(tile.cols.saturating_sub(16));
    // Per-row masks keep every index below constant, so the accumulators stay in registers.
    let row_mask = |r: usize, columns: u16| if r < tile.rows { columns } else { 0 };
    let mut acc = [[_mm512_setzero_ps(); 2]; MR];
    if tile.load_c {
        for (r, sums) in acc.iter_mut().enumerate() {
            let row = c.wrapping_add(r * tile.ldc);
            sums[0] = _mm512_maskz_loadu_ps(row_mask(r, low_columns), row);
            sums[1] = _mm512_maskz_loadu_ps(row_mask(r, high_columns), row.wrapping_add(16));
        }
    }
    for p in 0..tile.pairs {
        let b_low: __m512bh = transmute(_mm512_loadu_si512(b.add(p * NR).cast()));
        let b_high: __m512bh = transmute(_mm512_loadu_si512(b.add(p * NR + 16).cast()));
        let a_pairs = a.add(p * pair_step);
        for (r, sums) in acc.iter_mut().enumerate() {
            let a_pair: __m512bh = transmute(_mm512_set1_epi32(*a_pairs.add(r * row_step) as i32));
            sums[0] = _mm512_dpbf16_ps(sums[0], a_pair, b_low);
            sums[1] = _mm512_dpbf16_ps(sums[1], a_pair, b_high);
        }
    }
    for (r, sums) in acc.iter().enumerate() {
        let row = c.wrapping_add(r * tile.ldc);
        _mm512_mask_storeu_ps(row, row_mask(r, low_columns), sums[0]);
        _mm512_mask_storeu_ps(row.wrapping_add(16), row_mask(r, high_columns), sums[1]);
    }
}
