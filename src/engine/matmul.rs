//! Matrix multiply on strided views, backed by the `gemm` crate.
//!
//! `gemm` 0.19 (with its runtime-dispatched AVX-512 kernels) was chosen by measurement: on the
//! shapes of a simple-CNN training step it was the fastest of `gemm`, `faer` and
//! `matrixmultiply` on 2 threads, and the steadiest (see `examples/gemm_shapes.rs`).
//! Transposed operands are strided views, so no operand is ever copied.

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
        assert!(
            data.len() >= rows * cols,
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

    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn cols(&self) -> usize {
        self.cols
    }
}

/// Below this many multiply-adds a product runs on the calling thread: waking the pool costs
/// more than it saves.
const PARALLEL_MIN_FLOPS: usize = 1 << 18;

/// `c = a * b`, or `c += a * b` when `accumulate`; `c` is row-major `a.rows() x b.cols()`.
///
/// Runs on the current rayon pool (see [`super::ThreadPool`]). The split of work depends only
/// on the shapes and the pool's size, so results are bit-identical for a given thread count.
///
/// # Panics
/// If the inner dimensions differ or `c` has the wrong length (programming errors).
pub fn matmul(a: MatRef<'_>, b: MatRef<'_>, c: &mut [f32], accumulate: bool) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    assert_eq!(
        k, b.rows,
        "inner dimensions differ: {m}x{k} times {}x{n}",
        b.rows
    );
    assert_eq!(c.len(), m * n, "output of {m}x{n} has {} elements", c.len());
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            c.fill(0.0);
        }
        return;
    }
    let parallelism = if m * n * k < PARALLEL_MIN_FLOPS || rayon::current_num_threads() == 1 {
        gemm::Parallelism::None
    } else {
        gemm::Parallelism::Rayon(rayon::current_num_threads())
    };
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
    use crate::engine::Rng;

    fn naive(a: &MatRef, b: &MatRef) -> Vec<f64> {
        let at = |m: &MatRef, i: usize, j: usize| m.data[i * m.row_stride + j * m.col_stride];
        let mut c = vec![0.0f64; a.rows * b.cols];
        for i in 0..a.rows {
            for j in 0..b.cols {
                c[i * b.cols + j] = (0..a.cols)
                    .map(|p| at(a, i, p) as f64 * at(b, p, j) as f64)
                    .sum();
            }
        }
        c
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
        for (a, b) in cases {
            let mut c = vec![0.0; m * n];
            matmul(a, b, &mut c, false);
            for (got, want) in c.iter().zip(naive(&a, &b)) {
                assert!((*got as f64 - want).abs() < 1e-4, "{got} vs {want}");
            }
        }
    }

    #[test]
    fn accumulate_adds_to_the_existing_output() {
        let a = [1.0, 2.0, 3.0, 4.0];
        let b = [1.0, 0.0, 0.0, 1.0];
        let mut c = [10.0, 10.0, 10.0, 10.0];
        matmul(
            MatRef::row_major(&a, 2, 2),
            MatRef::row_major(&b, 2, 2),
            &mut c,
            true,
        );
        assert_eq!(c, [11.0, 12.0, 13.0, 14.0]);
        matmul(
            MatRef::row_major(&a, 2, 2),
            MatRef::row_major(&b, 2, 2),
            &mut c,
            false,
        );
        assert_eq!(c, [1.0, 2.0, 3.0, 4.0]);
    }
}
