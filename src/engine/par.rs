//! Small parallel building blocks whose results do not depend on the number of threads.

use rayon::prelude::*;
use std::ops::Range;

/// Elements per task in element-wise kernels: large enough to amortise scheduling, small enough
/// to spread a 64-image batch over the workers.
pub const CHUNK: usize = 1 << 14;

/// Rows per block in [`reduce_row_blocks`]. Fixed, so the order of additions, and therefore
/// every bit of the result, is the same for any number of threads.
const BLOCK_ROWS: usize = 256;

/// Sums per-block partial results over the rows of a `rows x width` problem.
///
/// `partial(rows, acc)` adds the contribution of a block of rows into `acc` (`width` zeros on
/// entry) in f32; blocks run in parallel and are combined in order in f64.
pub fn reduce_row_blocks(
    rows: usize,
    width: usize,
    partial: impl Fn(Range<usize>, &mut [f32]) + Sync,
) -> Vec<f64> {
    let blocks = rows.div_ceil(BLOCK_ROWS);
    let mut partials = vec![0.0f32; blocks * width];
    partials
        .par_chunks_mut(width.max(1))
        .enumerate()
        .for_each(|(b, acc)| {
            let start = b * BLOCK_ROWS;
            partial(start..(start + BLOCK_ROWS).min(rows), acc);
        });
    let mut total = vec![0.0f64; width];
    for block in partials.chunks(width.max(1)) {
        for (t, &p) in total.iter_mut().zip(block) {
            *t += p as f64;
        }
    }
    total
}

/// Column sums of a row-major `rows x width` matrix, deterministic for any thread count.
pub fn column_sums(data: &[f32], width: usize) -> Vec<f64> {
    let rows = data.len() / width.max(1);
    reduce_row_blocks(rows, width, |range, acc| {
        for row in data[range.start * width..range.end * width].chunks_exact(width) {
            for (a, &x) in acc.iter_mut().zip(row) {
                *a += x;
            }
        }
    })
}

/// Sets every row of the row-major matrix `data` to `row` (a bias, before a product is added
/// onto it: cheaper than a separate pass adding the bias afterwards).
pub fn broadcast_rows(data: &mut [f32], row: &[f32]) {
    let width = row.len();
    let rows_per_task = (CHUNK / width.max(1)).max(1);
    data.par_chunks_mut(rows_per_task * width)
        .for_each(|block| {
            for r in block.chunks_exact_mut(width) {
                r.copy_from_slice(row);
            }
        });
}

/// Writes the column sums of the row-major matrix `data` (`width` columns) into `out` as f32.
pub fn column_sums_into(data: &[f32], out: &mut [f32]) {
    let sums = column_sums(data, out.len());
    for (o, s) in out.iter_mut().zip(sums) {
        *o = s as f32;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn column_sums_are_identical_on_one_and_two_threads() {
        let data: Vec<f32> = (0..3000 * 7)
            .map(|i| ((i * 37) % 101) as f32 * 0.013)
            .collect();
        let one = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap();
        let two = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap();
        let a = one.install(|| column_sums(&data, 7));
        let b = two.install(|| column_sums(&data, 7));
        assert_eq!(a, b);
        let exact: f64 = data.iter().step_by(7).map(|&x| x as f64).sum();
        assert!((a[0] - exact).abs() < 1e-3 * exact.abs());
    }
}
