//! Matrix products with bf16 operands and fp32 sums (`--precision bf16`).
//!
//! `c (+)= a * b` is computed as `c[i][j] (+)= sum_p bf16(a[i][p]) * bf16(b[p][j])`, where
//! `bf16(x)` rounds an f32 to bfloat16 (round to nearest even, subnormals to zero; see
//! [`to_bf16`]). Each product of two bf16 values is exact in f32; the sums are f32.
//!
//! Both operands are packed first, as pairs of bf16 along the inner dimension (one `u32`:
//! element `2p` in the low half, `2p + 1` in the high half, zero past the end), which is what
//! VDPBF16PS multiplies: `acc[j] += a_lo * b_lo[j] + a_hi * b_hi[j]`.
//! - `b` becomes panels of [`NR`] columns: pair `p` of column `j` of panel `q` at
//!   `q * kp * NR + p * NR + j` (columns past `n` are zero).
//! - `a` becomes either rows of pairs (pair `p` of row `i` at `i * kp + p`) or panels of
//!   [`MR`] rows (at `panel * kp * MR + p * MR + r`), whichever its memory order packs
//!   fastest; the kernel takes both through two strides. Rows past `m` are zero.
//!
//! The kernel computes an `MR x NR` tile of `c` over [`KC`] pairs at a time, adding onto the
//! tile between blocks. Every element of `c` is therefore summed in the same order whatever
//! the split of rows among threads: results depend only on the shapes.
//!
//! The vector code (AVX512-BF16, with AVX512-BW for the pair interleave) is in [`avx512`];
//! everything here is safe. A portable scalar kernel with the same layout and order serves
//! CPUs without AVX512-BF16 (the library's own tests run there; the command line refuses
//! bf16 on such CPUs, as it would be slower than fp32) and is the reference the vector
//! kernel is tested against.

#[cfg(target_arch = "x86_64")]
mod avx512;

use super::matmul::MatRef;
use rayon::prelude::*;
use std::cell::RefCell;

/// Rows of `c` per kernel tile.
pub(crate) const MR: usize = 12;
/// Columns of `c` per kernel tile (two 16-lane vectors).
pub(crate) const NR: usize = 32;
/// Pairs of the inner dimension per pass over a tile: a panel of `b` (`KC * NR * 4` bytes =
/// 16 KiB) and the tile's rows of `a` (6 KiB) stay in the 32 KiB L1 cache.
const KC: usize = 128;

/// Whether this CPU runs the AVX512-BF16 kernel (AVX-512 F, BW and BF16).
pub fn has_avx512_bf16() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        is_x86_feature_detected!("avx512f")
            && is_x86_feature_detected!("avx512bw")
            && is_x86_feature_detected!("avx512bf16")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Which code packs and multiplies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kernel {
    /// Scalar code, on any CPU.
    Portable,
    /// AVX512-BF16 vectors; only where [`has_avx512_bf16`] holds.
    #[cfg(target_arch = "x86_64")]
    Avx512,
}

impl Kernel {
    /// The fastest kernel this CPU has.
    pub(crate) fn detect() -> Self {
        #[cfg(target_arch = "x86_64")]
        if has_avx512_bf16() {
            return Kernel::Avx512;
        }
        Kernel::Portable
    }
}

/// f32 to bf16, rounding to nearest even, as VCVTNE2PS2BF16 does: a NaN stays a (quiet) NaN,
/// a subnormal becomes a zero of its sign, a finite value past the largest bf16 becomes an
/// infinity.
pub fn to_bf16(x: f32) -> u16 {
    let bits = x.to_bits();
    if x.is_nan() {
        return ((bits >> 16) as u16) | 0x0040;
    }
    if bits & 0x7f80_0000 == 0 {
        return ((bits >> 16) & 0x8000) as u16;
    }
    let round_bit_and_below = 0x7fff + ((bits >> 16) & 1);
    ((bits + round_bit_and_below) >> 16) as u16
}

/// The f32 value of a bf16.
pub fn from_bf16(h: u16) -> f32 {
    f32::from_bits((h as u32) << 16)
}

/// Converts adjacent elements `2p, 2p + 1` of `src` to the pair `p` of `dst`, as the kernels
/// read them (a zero pads an odd length); `dst` holds at least `ceil(src.len() / 2)` pairs.
pub(crate) fn to_pairs(src: &[f32], dst: &mut [u32]) {
    #[cfg(target_arch = "x86_64")]
    if has_avx512_bf16() {
        return avx512::to_pairs(src, dst);
    }
    for (pair_of, values) in dst.iter_mut().zip(src.chunks(2)) {
        *pair_of = pair(values[0], values.get(1).copied().unwrap_or(0.0));
    }
}

/// `dst[i] = (bf16(lo[i]), bf16(hi[i]))` for each `i < dst.len()`: pairs of two runs (two
/// neighbouring pixels' values of one channel, say), as the kernels read them.
pub(crate) fn pairs_of(lo: &[f32], hi: &[f32], dst: &mut [u32]) {
    #[cfg(target_arch = "x86_64")]
    if has_avx512_bf16() {
        return avx512::pairs_of(lo, hi, dst);
    }
    for ((pair_of, &lo), &hi) in dst.iter_mut().zip(lo).zip(hi) {
        *pair_of = pair(lo, hi);
    }
}

/// A pair of inner-dimension neighbours, `lo` first, as the kernels read them.
pub(crate) fn pair(lo: f32, hi: f32) -> u32 {
    to_bf16(lo) as u32 | (to_bf16(hi) as u32) << 16
}

/// The two values of a pair, `lo` first.
pub(crate) fn halves(pair: u32) -> (f32, f32) {
    (from_bf16(pair as u16), from_bf16((pair >> 16) as u16))
}

/// How the rows of `a` lie in its packing buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ALayout {
    /// Pair `p` of row `i` at `i * kp + p`: packed from rows whose elements are adjacent.
    RowPairs,
    /// Pair `p` of row `t * MR + r` at `t * MR * kp + p * MR + r`: packed from columns whose
    /// elements are adjacent (a transposed view).
    Panels,
}

/// `a` packed for the kernel: `tiles * MR` rows of `pairs` pairs.
struct PackedA<'a> {
    data: &'a [u32],
    pairs: usize,
    layout: ALayout,
}

impl PackedA<'_> {
    /// Offset of the first pair of tile `t`, and the distances between its rows and between
    /// its pairs.
    fn tile(&self, t: usize) -> (usize, usize, usize) {
        let start = t * MR * self.pairs;
        match self.layout {
            ALayout::RowPairs => (start, self.pairs, 1),
            ALayout::Panels => (start, 1, MR),
        }
    }
}

/// `b` packed for the kernel: panels of `NR` columns of `pairs` pairs.
struct PackedB<'a> {
    data: &'a [u32],
    pairs: usize,
    /// Columns of `b` (and of `c`), before padding.
    columns: usize,
}

/// `c (+)= bf16(a) * bf16(b)` on the current rayon pool; `c` is row-major `m x n`. The caller
/// has checked the shapes.
pub(crate) fn matmul(
    a: MatRef<'_>,
    b: MatRef<'_>,
    c: &mut [f32],
    accumulate: bool,
    kernel: Kernel,
) {
    let n = b.cols();
    let tiles = a.rows().div_ceil(MR);
    // Tasks of whole tiles, about four per thread; the split does not change any sum.
    let tiles_per_task = tiles.div_ceil(4 * rayon::current_num_threads()).max(1);
    with_b_buffer(|b_buffer| {
        let b = pack_b(b, kernel, b_buffer, true);
        c.par_chunks_mut(tiles_per_task * MR * n)
            .enumerate()
            .for_each(|(task, c)| {
                let first = task * tiles_per_task * MR;
                let rows = a.rows_range(first, first + c.len() / n);
                product_of_rows(rows, &b, c, accumulate, kernel);
            });
    });
}

/// [`matmul`] on the calling thread alone.
pub(crate) fn matmul_serial(
    a: MatRef<'_>,
    b: MatRef<'_>,
    c: &mut [f32],
    accumulate: bool,
    kernel: Kernel,
) {
    with_b_buffer(|b_buffer| {
        let b = pack_b(b, kernel, b_buffer, false);
        product_of_rows(a, &b, c, accumulate, kernel);
    });
}

/// Packs `a` (a band of rows) in this thread's buffer and multiplies it by the packed `b`.
fn product_of_rows(
    a: MatRef<'_>,
    b: &PackedB<'_>,
    c: &mut [f32],
    accumulate: bool,
    kernel: Kernel,
) {
    with_a_buffer(|a_buffer| {
        let a = pack_a(a, kernel, a_buffer);
        multiply_packed(&a, b, c, accumulate, kernel);
    });
}

/// Runs every `MR x NR` tile of `c`, [`KC`] pairs at a time. A tile's rows of `a` stay in L1
/// while it meets every panel of `b`; the `KC`-pair block of `b` stays in L2 across tiles.
fn multiply_packed(
    a: &PackedA<'_>,
    b: &PackedB<'_>,
    c: &mut [f32],
    accumulate: bool,
    kernel: Kernel,
) {
    debug_assert_eq!(a.pairs, b.pairs);
    let n = b.columns;
    let m = c.len() / n;
    let pairs = a.pairs;
    for first_pair in (0..pairs).step_by(KC) {
        let block = KC.min(pairs - first_pair);
        // The first block writes `c` (or adds to it when accumulating); later blocks add.
        let load_c = accumulate || first_pair > 0;
        for t in 0..m.div_ceil(MR) {
            let (a_start, row_step, pair_step) = a.tile(t);
            let tile = Tile {
                pairs: block,
                a_at: a_start + first_pair * pair_step,
                row_step,
                pair_step,
                b_at: 0,
                c_at: 0,
                ldc: n,
                rows: MR.min(m - t * MR),
                cols: 0,
                load_c,
            };
            for q in 0..n.div_ceil(NR) {
                let tile = Tile {
                    b_at: q * pairs * NR + first_pair * NR,
                    c_at: t * MR * n + q * NR,
                    cols: NR.min(n - q * NR),
                    ..tile
                };
                match kernel {
                    Kernel::Portable => portable_tile(&tile, a.data, b.data, c),
                    #[cfg(target_arch = "x86_64")]
                    Kernel::Avx512 => avx512::tile(&tile, a.data, b.data, c),
                }
            }
        }
    }
}

/// One call of the kernel: `c[r][j] (+)= sum_p a[r][p] . b[p][j]` over `pairs` pairs, for the
/// `rows x cols` corner of an `MR x NR` tile (the packed operands are zero past it).
#[derive(Clone, Copy, Debug)]
struct Tile {
    pairs: usize,
    /// Pair `p` of row `r` of the tile is `a[a_at + r * row_step + p * pair_step]`.
    a_at: usize,
    row_step: usize,
    pair_step: usize,
    /// Pair `p` of column `j` is `b[b_at + p * NR + j]`.
    b_at: usize,
    /// Element (r, j) of the tile is `c[c_at + r * ldc + j]`.
    c_at: usize,
    ldc: usize,
    rows: usize,
    cols: usize,
    /// Start from `c` rather than from zero.
    load_c: bool,
}

impl Tile {
    /// Checks that every element the kernel reads or writes lies inside the slices.
    fn check(&self, a: &[u32], b: &[u32], c: &[f32]) {
        assert!(self.rows >= 1 && self.rows <= MR && self.cols >= 1 && self.cols <= NR);
        assert!(self.pairs >= 1);
        let last_a = self.a_at + (MR - 1) * self.row_step + (self.pairs - 1) * self.pair_step;
        assert!(last_a < a.len(), "tile reads a[{last_a}] of {}", a.len());
        let last_b = self.b_at + (self.pairs - 1) * NR + NR - 1;
        assert!(last_b < b.len(), "tile reads b[{last_b}] of {}", b.len());
        let last_c = self.c_at + (self.rows - 1) * self.ldc + self.cols - 1;
        assert!(last_c < c.len(), "tile writes c[{last_c}] of {}", c.len());
    }
}

/// The scalar kernel, summing in the order VDPBF16PS is specified to: for each pair, the
/// high (odd) product and then the low (even) product, each added in f32.
fn portable_tile(tile: &Tile, a: &[u32], b: &[u32], c: &mut [f32]) {
    tile.check(a, b, c);
    let mut acc = [[0.0f32; NR]; MR];
    if tile.load_c {
        for (r, row) in acc.iter_mut().enumerate().take(tile.rows) {
            let at = tile.c_at + r * tile.ldc;
            row[..tile.cols].copy_from_slice(&c[at..at + tile.cols]);
        }
    }
    for p in 0..tile.pairs {
        let b_row = &b[tile.b_at + p * NR..][..NR];
        for (r, row) in acc.iter_mut().enumerate() {
            let (a_lo, a_hi) = halves(a[tile.a_at + r * tile.row_step + p * tile.pair_step]);
            for (sum, &b_pair) in row.iter_mut().zip(b_row) {
                let (b_lo, b_hi) = halves(b_pair);
                *sum += a_hi * b_hi;
                *sum += a_lo * b_lo;
            }
        }
    }
    for (r, row) in acc.iter().enumerate().take(tile.rows) {
        let at = tile.c_at + r * tile.ldc;
        c[at..at + tile.cols].copy_from_slice(&row[..tile.cols]);
    }
}

/// Packs `a` into `buffer` (see the module documentation for the layouts).
fn pack_a<'b>(a: MatRef<'_>, kernel: Kernel, buffer: &'b mut Vec<u32>) -> PackedA<'b> {
    let (m, k) = (a.rows(), a.cols());
    let pairs = k.div_ceil(2);
    let layout = if a.row_stride() == 1 && a.col_stride() != 1 {
        ALayout::Panels
    } else {
        ALayout::RowPairs
    };
    let data = zeroed_aligned(buffer, m.div_ceil(MR) * MR * pairs);
    let packed_by_vectors = match kernel {
        Kernel::Portable => false,
        #[cfg(target_arch = "x86_64")]
        Kernel::Avx512 => avx512::pack_a(a, layout, pairs, data),
    };
    if !packed_by_vectors {
        for i in 0..m {
            for p in 0..pairs {
                let at = match layout {
                    ALayout::RowPairs => i * pairs + p,
                    ALayout::Panels => (i / MR) * MR * pairs + p * MR + i % MR,
                };
                data[at] = pair(a.at(i, 2 * p), a.at_or_zero(i, 2 * p + 1));
            }
        }
    }
    PackedA {
        data,
        pairs,
        layout,
    }
}

/// Packs `b` into `buffer` as panels of [`NR`] columns; the panels are packed in parallel
/// when `parallel` (each is independent of the others).
fn pack_b<'b>(
    b: MatRef<'_>,
    kernel: Kernel,
    buffer: &'b mut Vec<u32>,
    parallel: bool,
) -> PackedB<'b> {
    let (k, n) = (b.rows(), b.cols());
    let pairs = k.div_ceil(2);
    let data = zeroed_aligned(buffer, n.div_ceil(NR) * NR * pairs);
    let pack = |(q, panel): (usize, &mut [u32])| {
        let first = q * NR;
        pack_b_panel(b.columns(first, n.min(first + NR)), kernel, pairs, panel);
    };
    if parallel {
        data.par_chunks_mut(pairs * NR).enumerate().for_each(pack);
    } else {
        data.chunks_mut(pairs * NR).enumerate().for_each(pack);
    }
    PackedB {
        data,
        pairs,
        columns: n,
    }
}

/// Packs the (at most [`NR`]) columns of `b` into one zeroed panel.
fn pack_b_panel(b: MatRef<'_>, kernel: Kernel, pairs: usize, panel: &mut [u32]) {
    let packed_by_vectors = match kernel {
        Kernel::Portable => false,
        #[cfg(target_arch = "x86_64")]
        Kernel::Avx512 => avx512::pack_b(b, pairs, panel),
    };
    if !packed_by_vectors {
        for j in 0..b.cols() {
            for p in 0..pairs {
                panel[p * NR + j] = pair(b.at(2 * p, j), b.at_or_zero(2 * p + 1, j));
            }
        }
    }
}

/// The first `len` elements of `buffer` from a 64-byte boundary (a cache line, and the
/// alignment of a vector load), all zero.
fn zeroed_aligned(buffer: &mut Vec<u32>, len: usize) -> &mut [u32] {
    const LANES: usize = 64 / std::mem::size_of::<u32>();
    buffer.clear();
    buffer.resize(len + LANES, 0);
    let offset = buffer.as_ptr().align_offset(64).min(LANES);
    &mut buffer[offset..offset + len]
}

thread_local! {
    /// Packing buffers, kept per thread so that a training step allocates nothing. `a` and
    /// `b` have one each: a thread packs its rows of `a` while it holds the packed `b`.
    static A_BUFFER: RefCell<Vec<u32>> = const { RefCell::new(Vec::new()) };
    static B_BUFFER: RefCell<Vec<u32>> = const { RefCell::new(Vec::new()) };
}

fn with_a_buffer<R>(f: impl FnOnce(&mut Vec<u32>) -> R) -> R {
    with_buffer(&A_BUFFER, f)
}

fn with_b_buffer<R>(f: impl FnOnce(&mut Vec<u32>) -> R) -> R {
    with_buffer(&B_BUFFER, f)
}

/// Lends this thread's buffer, or a fresh one when it is already lent (a thread that waits
/// in a parallel loop may run another product's task meanwhile).
fn with_buffer<R>(
    key: &'static std::thread::LocalKey<RefCell<Vec<u32>>>,
    f: impl FnOnce(&mut Vec<u32>) -> R,
) -> R {
    key.with(|cell| match cell.try_borrow_mut() {
        Ok(mut buffer) => f(&mut buffer),
        Err(_) => f(&mut Vec::new()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Rng;

    /// The kernels this CPU can run.
    fn kernels() -> Vec<Kernel> {
        let mut kernels = vec![Kernel::Portable];
        if Kernel::detect() != Kernel::Portable {
            kernels.push(Kernel::detect());
        }
        kernels
    }

    #[test]
    fn rounding_to_bf16_is_to_nearest_even_with_quiet_nans_and_flushed_subnormals() {
        assert_eq!(to_bf16(1.0), 0x3f80);
        assert_eq!(to_bf16(-2.5), 0xc020);
        // Halfway cases go to the even neighbour; anything past halfway goes up.
        assert_eq!(to_bf16(f32::from_bits(0x3f80_8000)), 0x3f80);
        assert_eq!(to_bf16(f32::from_bits(0x3f81_8000)), 0x3f82);
        assert_eq!(to_bf16(f32::from_bits(0x3f80_8001)), 0x3f81);
        assert_eq!(to_bf16(f32::from_bits(0x3f80_7fff)), 0x3f80);
        assert_eq!(to_bf16(f32::MAX), 0x7f80, "overflow gives infinity");
        assert_eq!(to_bf16(f32::INFINITY), 0x7f80);
        assert_eq!(to_bf16(f32::NEG_INFINITY), 0xff80);
        assert_eq!(
            to_bf16(f32::from_bits(0x7f80_0001)),
            0x7fc0,
            "NaN stays NaN"
        );
        assert_eq!(to_bf16(f32::from_bits(0xff81_2345)), 0xffc1);
        assert_eq!(to_bf16(f32::from_bits(0x0000_0001)), 0x0000);
        assert_eq!(to_bf16(f32::from_bits(0x807f_ffff)), 0x8000);
        assert_eq!(to_bf16(-0.0), 0x8000);
        for h in [0x3f80u16, 0x0080, 0xc2f7, 0x7f7f] {
            assert_eq!(to_bf16(from_bf16(h)), h, "bf16 values round to themselves");
        }
    }

    /// Values that exercise every branch of the rounding, then random ones.
    fn awkward_values(len: usize, rng: &mut Rng) -> Vec<f32> {
        let special = [
            0x3f80_8000u32,
            0x3f81_8000,
            0x3f80_8001,
            0x7f7f_ffff,
            0x7f80_0000,
            0xff80_0000,
            0x7f80_0001,
            0xffc0_1234,
            0x0000_0001,
            0x807f_ffff,
            0x8000_0000,
            0x0080_0000,
        ];
        (0..len)
            .map(|i| match special.get(i % 29) {
                Some(&bits) => f32::from_bits(bits),
                None => rng.uniform(-3.0, 3.0),
            })
            .collect()
    }

    /// The four memory orders of an `m x k` times `k x n` product over the same values.
    fn views<'a>(
        a: &'a [f32],
        b: &'a [f32],
        (m, k, n): (usize, usize, usize),
    ) -> Vec<(MatRef<'a>, MatRef<'a>)> {
        let a_orders = [MatRef::row_major(a, m, k), MatRef::row_major(a, k, m).t()];
        let b_orders = [MatRef::row_major(b, k, n), MatRef::row_major(b, n, k).t()];
        let mut pairs = Vec::new();
        for a in a_orders {
            for b in b_orders {
                pairs.push((a, b));
            }
        }
        pairs
    }

    #[test]
    fn vector_packing_matches_scalar_packing_bit_for_bit() {
        let Some(vector) = kernels().get(1).copied() else {
            eprintln!("no AVX512-BF16 on this CPU: only the portable packing exists");
            return;
        };
        let mut rng = Rng::new(3);
        for shape in [
            (1, 1, 1),
            (13, 33, 31),
            (25, 64, 33),
            (12, 67, 64),
            (5, 300, 70),
            (3, 257, 40),
        ] {
            let (m, k, n) = shape;
            let a = awkward_values(m * k, &mut rng);
            let b = awkward_values(k * n, &mut rng);
            for (a, b) in views(&a, &b, shape) {
                let (mut scalar, mut vectors) = (Vec::new(), Vec::new());
                let want = pack_a(a, Kernel::Portable, &mut scalar);
                let got = pack_a(a, vector, &mut vectors);
                assert_eq!(
                    want.data, got.data,
                    "a of {shape:?}, layout {:?}",
                    got.layout
                );
                let want = pack_b(b, Kernel::Portable, &mut scalar, false);
                let got = pack_b(b, vector, &mut vectors, true);
                assert_eq!(want.data, got.data, "b of {shape:?}");
            }
        }
    }

    #[test]
    fn vector_pairing_follows_the_scalar_rule_on_every_length() {
        let mut rng = Rng::new(4);
        for len in [0, 1, 2, 15, 16, 17, 31, 32, 33, 100] {
            let values = awkward_values(len, &mut rng);
            let mut pairs = vec![u32::MAX; len.div_ceil(2) + 1];
            to_pairs(&values, &mut pairs);
            for (p, &got) in pairs[..len.div_ceil(2)].iter().enumerate() {
                let hi = values.get(2 * p + 1).copied().unwrap_or(0.0);
                assert_eq!(got, pair(values[2 * p], hi), "pair {p} of {len}");
            }
            assert_eq!(pairs[len.div_ceil(2)], u32::MAX, "past the pairs of {len}");
            let (lo, hi) = values.split_at(len / 2);
            let mut pairs = vec![u32::MAX; len / 2 + 1];
            pairs_of(lo, hi, &mut pairs[..len / 2]);
            for (i, &got) in pairs[..len / 2].iter().enumerate() {
                assert_eq!(
                    got,
                    pair(lo[i], hi[i]),
                    "pair {i} of two runs of {}",
                    len / 2
                );
            }
            assert_eq!(pairs[len / 2], u32::MAX, "past the pairs of two runs");
        }
    }

    /// `sum_p a[i][p] b[p][j]` of the bf16-rounded operands, exact in f64, with the sum of the
    /// terms' magnitudes.
    fn exact(a: MatRef<'_>, b: MatRef<'_>) -> Vec<(f64, f64)> {
        let read = |x: f32| from_bf16(to_bf16(x)) as f64;
        let mut c = Vec::new();
        for i in 0..a.rows() {
            for j in 0..b.cols() {
                let terms = (0..a.cols()).map(|p| read(a.at(i, p)) * read(b.at(p, j)));
                c.push(terms.fold((0.0, 0.0), |(s, m), t| (s + t, m + t.abs())));
            }
        }
        c
    }

    #[test]
    fn products_match_the_exact_product_of_the_rounded_operands_within_the_f32_sum_bound() {
        let mut rng = Rng::new(4);
        // Partial tiles and panels, odd inner lengths, and more than one block of pairs.
        for shape in [
            (1, 1, 1),
            (13, 7, 33),
            (24, 2 * 2 * KC + 3, 64),
            (50, 301, 5),
        ] {
            let (m, k, n) = shape;
            let a: Vec<f32> = (0..m * k).map(|_| rng.uniform(-1.0, 1.0)).collect();
            let b: Vec<f32> = (0..k * n).map(|_| rng.uniform(-1.0, 1.0)).collect();
            let start: Vec<f32> = (0..m * n).map(|_| rng.uniform(-1.0, 1.0)).collect();
            let ku = (k + 2) as f64 * f64::from(f32::EPSILON) / 2.0;
            for kernel in kernels() {
                for (a, b) in views(&a, &b, shape) {
                    let want = exact(a, b);
                    for accumulate in [false, true] {
                        let mut c = start.clone();
                        matmul(a, b, &mut c, accumulate, kernel);
                        let mut serial = start.clone();
                        matmul_serial(a, b, &mut serial, accumulate, kernel);
                        assert_eq!(
                            c, serial,
                            "{kernel:?} {shape:?}: parallel and serial differ"
                        );
                        for (i, (&got, &(sum, magnitude))) in c.iter().zip(&want).enumerate() {
                            let initial = if accumulate { start[i] as f64 } else { 0.0 };
                            let bound = ku / (1.0 - ku) * (magnitude + initial.abs());
                            let error = (got as f64 - (sum + initial)).abs();
                            assert!(
                                error <= bound,
                                "{kernel:?} {shape:?} c[{i}] = {got}, exact {}, bound {bound}",
                                sum + initial
                            );
                        }
                    }
                }
            }
        }
    }
}
