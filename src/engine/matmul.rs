//! Matrix multiply on strided views, backed by the `gemm` crate.
//!
//! `gemm` 0.19 (with its runtime-dispatched AVX-512 kernels) was chosen by measurement: on the
//! shapes of a simple-CNN training step it was the fastest of `gemm`, `faer` and
//! `matrixmultiply` on 2 threads, and the steadiest (see `examples/gemm_shapes.rs`).
//! Transposed operands are strided views, so no fp32 operand is ever copied.
//!
//! In [`Precision::Bf16`] the products run on [`super::bf16`] instead: operands rounded to
//! bf16, sums in fp32. The blocking of long inner dimensions is the same in both.

use super::bf16;
use super::Precision;

/// A read-only view of a `rows x cols` matrix inside a slice, with element (i, j) at
/// `data[i * row_stride + j * col_stride]`.
#[derive(Clone, Copy, Debug)]
pub struct MatRef<'a> {
    data: &'a [f32],
    rows: usize,
    cols: usize,
    row_stride: usize,
    col_stride: usize,
}

impl<'a> MatRef<'a> {
    /// A row-major `rows x cols` matrix at the start of `data`.
    ///
    /// # Panics
    /// If `data` is shorter than `rows * cols` (a programming error).
    pub fn row_major(data: &'a [f32], rows: usize, cols: usize) -> Self {
        let len = rows.checked_mul(cols).expect("matrix size overflows");
        assert!(
            data.len() >= len,
            "matrix view {rows}x{cols} over {} elements",
            data.len()
        );
        Self {
            data,
            rows,
            cols,
            row_stride: cols,
            col_stride: 1,
        }
    }

    /// The transpose, as a view of the same memory.
    pub fn t(self) -> Self {
        Self {
            data: self.data,
            rows: self.cols,
            cols: self.rows,
            row_stride: self.col_stride,
            col_stride: self.row_stride,
        }
    }

    /// Columns `start..end` of this matrix, as a view of the same memory.
    ///
    /// # Panics
    /// If the range is not inside `0..cols`.
    pub fn columns(self, start: usize, end: usize) -> Self {
        assert!(
            start <= end && end <= self.cols,
            "columns {start}..{end} of {}",
            self.cols
        );
        let offset = if end > start {
            start * self.col_stride
        } else {
            0
        };
        Self {
            data: &self.data[offset..],
            cols: end - start,
            ..self
        }
    }

    /// Rows `start..end` of this matrix, as a view of the same memory.
    pub fn rows_range(self, start: usize, end: usize) -> Self {
        self.t().columns(start, end).t()
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn cols(&self) -> usize {
        self.cols
    }

    /// The slice the view lies in; element (i, j) is at `i * row_stride + j * col_stride`.
    pub(crate) fn data(&self) -> &'a [f32] {
        self.data
    }

    pub(crate) fn row_stride(&self) -> usize {
        self.row_stride
    }

    pub(crate) fn col_stride(&self) -> usize {
        self.col_stride
    }

    /// Element (i, j).
    ///
    /// # Panics
    /// If (i, j) is outside the matrix.
    pub(crate) fn at(&self, i: usize, j: usize) -> f32 {
        assert!(
            i < self.rows && j < self.cols,
            "element ({i}, {j}) of {}x{}",
            self.rows,
            self.cols
        );
        self.data[i * self.row_stride + j * self.col_stride]
    }

    /// Element (i, j), or zero outside the matrix (the padding of a packed operand).
    pub(crate) fn at_or_zero(&self, i: usize, j: usize) -> f32 {
        if i < self.rows && j < self.cols {
            self.at(i, j)
        } else {
            0.0
        }
    }
}

/// Below this many multiply-adds a product runs on the calling thread: waking the pool costs
/// more than it saves.
const PARALLEL_MIN_FLOPS: usize = 1 << 18;

/// Inner-dimension block for products with a small output and a long inner dimension (the
/// weight gradients of convolutions: `out_channels x patch` from a sum over every pixel of the
/// batch). A GEMM library parallelises over the output, which such a product barely has, so the
/// inner dimension is cut into blocks multiplied in parallel and summed in block order.
const INNER_BLOCK: usize = 4096;

/// Inner-dimension block for shorter products (k from 2048 to 8191, e.g. the first linear
/// layer's 4096 inputs): four or more blocks still give each thread whole blocks.
const SHORT_INNER_BLOCK: usize = 1024;

/// The block length for a split inner dimension of length `k`: a function of the shape alone,
/// so results do not depend on the thread count.
fn inner_block(k: usize) -> usize {
    if k >= 2 * INNER_BLOCK {
        INNER_BLOCK
    } else {
        SHORT_INNER_BLOCK
    }
}

/// Largest output (elements) multiplied by splitting the inner dimension.
const SPLIT_MAX_OUTPUT: usize = 1 << 17;

/// `c = a * b`, or `c += a * b` when `accumulate`; `c` is row-major `a.rows() x b.cols()`,
/// with the operands rounded to bf16 first in [`Precision::Bf16`].
///
/// Runs on the current rayon pool (see [`super::ThreadPool`]). The split of work depends only
/// on the shapes and the pool's size, so results are bit-identical for a given thread count.
///
/// # Panics
/// If the inner dimensions differ or `c` has the wrong length (programming errors).
pub fn matmul(a: MatRef<'_>, b: MatRef<'_>, c: &mut [f32], accumulate: bool, precision: Precision) {
    if finished_without_products(a, b, c, accumulate) {
        return;
    }
    let (m, k, n) = (a.rows, a.cols, b.cols);
    if m * n <= SPLIT_MAX_OUTPUT && k >= 2 * SHORT_INNER_BLOCK {
        return matmul_split_inner(a, b, c, accumulate, precision);
    }
    if m * n * k < PARALLEL_MIN_FLOPS || rayon::current_num_threads() == 1 {
        return serial_product(a, b, c, accumulate, precision);
    }
    match precision {
        Precision::Fp32 => {
            let threads = gemm::Parallelism::Rayon(rayon::current_num_threads());
            gemm_call(a, b, c, accumulate, threads);
        }
        Precision::Bf16 => bf16::matmul(a, b, c, accumulate, bf16::Kernel::detect()),
    }
}

/// [`matmul`] on the calling thread alone, for products that are themselves one task of a
/// parallel loop (a block of a convolution): nesting the library's own parallelism inside
/// such a task would only add synchronisation.
///
/// # Panics
/// As [`matmul`].
pub fn matmul_serial(
    a: MatRef<'_>,
    b: MatRef<'_>,
    c: &mut [f32],
    accumulate: bool,
    precision: Precision,
) {
    if !finished_without_products(a, b, c, accumulate) {
        serial_product(a, b, c, accumulate, precision);
    }
}

/// One product on the calling thread, on checked shapes with no empty dimension.
fn serial_product(
    a: MatRef<'_>,
    b: MatRef<'_>,
    c: &mut [f32],
    accumulate: bool,
    precision: Precision,
) {
    match precision {
        Precision::Fp32 => gemm_call(a, b, c, accumulate, gemm::Parallelism::None),
        Precision::Bf16 => bf16::matmul_serial(a, b, c, accumulate, bf16::Kernel::detect()),
    }
}

/// Checks the shapes of `c (+)= a * b` and completes the products that need no multiply (an
/// empty output, or an empty inner dimension: `c` is zero or unchanged); true if done.
///
/// # Panics
/// If the inner dimensions differ or `c` has the wrong length (programming errors).
fn finished_without_products(
    a: MatRef<'_>,
    b: MatRef<'_>,
    c: &mut [f32],
    accumulate: bool,
) -> bool {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    assert_eq!(
        k, b.rows,
        "inner dimensions differ: {m}x{k} times {}x{n}",
        b.rows
    );
    let len = m.checked_mul(n).expect("output size overflows");
    assert_eq!(c.len(), len, "output of {m}x{n} has {} elements", c.len());
    if k == 0 && !accumulate {
        c.fill(0.0);
    }
    m == 0 || n == 0 || k == 0
}

/// `c (+)= a * b` as a sum over blocks of the inner dimension, each block on one thread. The
/// blocks depend only on the shapes, and their products are added in block order, so the
/// result does not depend on the number of threads.
fn matmul_split_inner(
    a: MatRef<'_>,
    b: MatRef<'_>,
    c: &mut [f32],
    accumulate: bool,
    precision: Precision,
) {
    use rayon::prelude::*;
    let (k, len) = (a.cols, c.len());
    let block = inner_block(k);
    let blocks = k.div_ceil(block);
    let mut partials = vec![0.0f32; blocks * len];
    partials
        .par_chunks_mut(len)
        .enumerate()
        .for_each(|(i, partial)| {
            let (start, end) = (i * block, ((i + 1) * block).min(k));
            let (a, b) = (a.columns(start, end), b.rows_range(start, end));
            serial_product(a, b, partial, false, precision);
        });
    c.par_chunks_mut(1024).enumerate().for_each(|(chunk, out)| {
        for (j, value) in out.iter_mut().enumerate() {
            let at = chunk * 1024 + j;
            let sum: f32 = (0..blocks).map(|i| partials[i * len + at]).sum();
            *value = if accumulate { *value + sum } else { sum };
        }
    });
}

/// One call of the `gemm` crate on checked views.
fn gemm_call(
    a: MatRef<'_>,
    b: MatRef<'_>,
    c: &mut [f32],
    accumulate: bool,
    parallelism: gemm::Parallelism,
) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    // SAFETY: the views were checked to lie inside their slices when built (the transposed view
    // covers the same elements), `c` holds exactly m*n elements written row-major, and `c` is
    // a unique borrow so it cannot alias `a` or `b`.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            a.data.as_ptr(),
            a.col_stride as isize,
            a.row_stride as isize,
            b.data.as_ptr(),
            b.col_stride as isize,
            b.row_stride as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::bf16::{from_bf16, to_bf16};
    use crate::engine::Rng;

    const PRECISIONS: [Precision; 2] = [Precision::Fp32, Precision::Bf16];

    /// The exact product of the operands as `precision` reads them (rounded to bf16 or not),
    /// in f64, with the sum of the magnitudes of its terms.
    fn naive(a: &MatRef, b: &MatRef, precision: Precision) -> Vec<(f64, f64)> {
        let read = |x: f32| match precision {
            Precision::Fp32 => x as f64,
            Precision::Bf16 => from_bf16(to_bf16(x)) as f64,
        };
        let mut c = Vec::with_capacity(a.rows * b.cols);
        for i in 0..a.rows {
            for j in 0..b.cols {
                let terms = (0..a.cols).map(|p| read(a.at(i, p)) * read(b.at(p, j)));
                c.push(terms.fold((0.0, 0.0), |(s, m), t| (s + t, m + t.abs())));
            }
        }
        c
    }

    /// Asserts the f32 sums are within the bound of any order of summation of `k` exact
    /// products, `k u / (1 - k u) * sum |terms|` with `u = 2^-24`, plus `extra` on each.
    fn assert_close(got: &[f32], want: &[(f64, f64)], k: usize, extra: f64) {
        let ku = (k + 2) as f64 * f64::from(f32::EPSILON) / 2.0;
        for (index, (&got, &(sum, magnitude))) in got.iter().zip(want).enumerate() {
            let bound = ku / (1.0 - ku) * magnitude + extra;
            let error = (got as f64 - sum).abs();
            assert!(
                error <= bound,
                "c[{index}] = {got}, exact {sum}, bound {bound}"
            );
        }
    }

    fn random(len: usize, rng: &mut Rng) -> Vec<f32> {
        (0..len).map(|_| rng.uniform(-1.0, 1.0)).collect()
    }

    #[test]
    fn products_of_plain_and_transposed_views_match_a_naive_product() {
        let mut rng = Rng::new(11);
        let (m, k, n) = (37, 53, 29);
        let a_data = random(m * k, &mut rng);
        let b_data = random(k * n, &mut rng);
        let cases = [
            (
                MatRef::row_major(&a_data, m, k),
                MatRef::row_major(&b_data, k, n),
            ),
            (
                MatRef::row_major(&a_data, k, m).t(),
                MatRef::row_major(&b_data, k, n),
            ),
            (
                MatRef::row_major(&a_data, m, k),
                MatRef::row_major(&b_data, n, k).t(),
            ),
            (
                MatRef::row_major(&a_data, k, m).t(),
                MatRef::row_major(&b_data, n, k).t(),
            ),
        ];
        for precision in PRECISIONS {
            for (a, b) in cases {
                let mut c = vec![0.0; m * n];
                matmul(a, b, &mut c, false, precision);
                assert_close(&c, &naive(&a, &b, precision), k, 0.0);
            }
        }
    }

    #[test]
    fn long_inner_products_split_into_blocks_match_a_naive_product() {
        let mut rng = Rng::new(12);
        let (m, k, n) = (5, 3 * INNER_BLOCK + 77, 7);
        let a_data = random(k * m, &mut rng);
        let b_data = random(k * n, &mut rng);
        // The shape of a weight gradient: dY^T (stored pixels x channels) times patches.
        let a = MatRef::row_major(&a_data, k, m).t();
        let b = MatRef::row_major(&b_data, k, n);
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap();
        let one = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap();
        for precision in PRECISIONS {
            let mut c = vec![1.0; m * n];
            pool.install(|| matmul(a, b, &mut c, true, precision));
            let want: Vec<_> = naive(&a, &b, precision)
                .into_iter()
                .map(|(sum, magnitude)| (sum + 1.0, magnitude + 1.0))
                .collect();
            assert_close(&c, &want, k, 0.0);
            let mut single = vec![1.0; m * n];
            one.install(|| matmul(a, b, &mut single, true, precision));
            let mut again = vec![1.0; m * n];
            pool.install(|| matmul(a, b, &mut again, true, precision));
            assert_eq!(c, again, "two runs on two threads differ in {precision}");
            assert_eq!(c, single, "one and two threads differ in {precision}");
        }
    }

    #[test]
    fn products_split_among_threads_do_not_depend_on_the_thread_count() {
        let mut rng = Rng::new(13);
        // Big enough to run in parallel, with rows and columns that fill no whole tile.
        let (m, k, n) = (301, 77, 45);
        let a_data = random(m * k, &mut rng);
        let b_data = random(k * n, &mut rng);
        let (a, b) = (
            MatRef::row_major(&a_data, m, k),
            MatRef::row_major(&b_data, k, n),
        );
        for precision in PRECISIONS {
            let on = |threads: usize| {
                let pool = rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .build()
                    .unwrap();
                let mut c = vec![0.0; m * n];
                pool.install(|| matmul(a, b, &mut c, false, precision));
                c
            };
            let one = on(1);
            assert_close(&one, &naive(&a, &b, precision), k, 0.0);
            assert_eq!(one, on(2), "one and two threads differ in {precision}");
            assert_eq!(one, on(3), "one and three threads differ in {precision}");
        }
    }

    #[test]
    fn accumulate_adds_to_the_existing_output() {
        // Small integers are exact in bf16 too.
        let a = [1.0, 2.0, 3.0, 4.0];
        let b = [1.0, 0.0, 0.0, 1.0];
        for precision in PRECISIONS {
            let mut c = [10.0, 10.0, 10.0, 10.0];
            let (a, b) = (MatRef::row_major(&a, 2, 2), MatRef::row_major(&b, 2, 2));
            matmul(a, b, &mut c, true, precision);
            assert_eq!(c, [11.0, 12.0, 13.0, 14.0]);
            matmul(a, b, &mut c, false, precision);
            assert_eq!(c, [1.0, 2.0, 3.0, 4.0]);
        }
    }
}
