//! Matrix-multiply throughput on the shapes of a simple-CNN training step (batch 64) and a
//! ResNet-18 layer, for the `gemm` crate (through regstudy's `matmul`, which splits long inner
//! dimensions) and `matrixmultiply`, on the same thread pool, and for regstudy's bf16 products
//! where the CPU has AVX512-BF16. Prints GFLOP/s, median of 20 runs.
//!
//!     cargo run --release --example gemm_shapes [THREADS]

use regstudy::engine::matmul::{matmul, MatRef};
use regstudy::engine::{Precision, Rng, ThreadPool};
use std::time::Instant;

/// (label, m, k, n, a transposed, b transposed)
const SHAPES: [(&str, usize, usize, usize, bool, bool); 13] = [
    ("square 2048^3", 2048, 2048, 2048, false, false),
    ("conv1 fwd", 65536, 27, 32, false, true),
    ("conv1 dW (t)", 32, 65536, 27, true, false),
    ("conv1 dW^T (t)", 27, 65536, 32, true, false),
    ("conv2 fwd", 16384, 288, 64, false, true),
    ("conv2 dW (t)", 64, 16384, 288, true, false),
    ("conv2 dW^T (t)", 288, 16384, 64, true, false),
    ("conv2 dX", 16384, 64, 288, false, false),
    ("fc1 fwd", 64, 4096, 128, false, true),
    ("fc1 fwd^T", 128, 4096, 64, false, true),
    ("fc1 dX", 64, 128, 4096, false, false),
    ("fc1 dW (t)", 128, 64, 4096, true, false),
    ("resnet l3 fwd", 4096, 2304, 256, false, true),
];

fn median(mut runs: Vec<f64>) -> f64 {
    runs.sort_by(f64::total_cmp);
    runs[runs.len() / 2]
}

fn time(mut f: impl FnMut()) -> f64 {
    for _ in 0..3 {
        f();
    }
    median(
        (0..20)
            .map(|_| {
                let start = Instant::now();
                f();
                start.elapsed().as_secs_f64()
            })
            .collect(),
    )
}

fn main() {
    let threads = std::env::args()
        .nth(1)
        .and_then(|t| t.parse().ok())
        .unwrap_or(0);
    let pool = ThreadPool::new(threads).unwrap();
    println!("{} threads; GFLOP/s (median of 20)", pool.threads());
    let bf16 = Precision::Bf16.kernel().is_ok();
    println!(
        "{:<16} {:>8} {:>15} {:>8}",
        "shape", "gemm", "matrixmultiply", "bf16"
    );
    let mut rng = Rng::new(0);
    for (label, m, k, n, at, bt) in SHAPES {
        let a: Vec<f32> = (0..m * k).map(|_| rng.next_f32()).collect();
        let b: Vec<f32> = (0..k * n).map(|_| rng.next_f32()).collect();
        let mut c = vec![0.0f32; m * n];
        let av = if at {
            MatRef::row_major(&a, k, m).t()
        } else {
            MatRef::row_major(&a, m, k)
        };
        let bv = if bt {
            MatRef::row_major(&b, n, k).t()
        } else {
            MatRef::row_major(&b, k, n)
        };
        // Strides of the same operands, for matrixmultiply.
        let (ars, acs) = if at { (1, m as isize) } else { (k as isize, 1) };
        let (brs, bcs) = if bt { (1, k as isize) } else { (n as isize, 1) };
        let flops = 2.0 * (m * n * k) as f64;
        let ours = pool.install(|| time(|| matmul(av, bv, &mut c, false, Precision::Fp32)));
        let bf16_time =
            bf16.then(|| pool.install(|| time(|| matmul(av, bv, &mut c, false, Precision::Bf16))));
        let mm = pool.install(|| {
            time(|| unsafe {
                matrixmultiply::sgemm(
                    m,
                    k,
                    n,
                    1.0,
                    a.as_ptr(),
                    ars,
                    acs,
                    b.as_ptr(),
                    brs,
                    bcs,
                    0.0,
                    c.as_mut_ptr(),
                    n as isize,
                    1,
                )
            })
        });
        let bf16_rate = bf16_time.map_or("-".to_string(), |t| format!("{:.1}", flops / t / 1e9));
        println!(
            "{label:<16} {:>8.1} {:>15.1} {bf16_rate:>8}",
            flops / ours / 1e9,
            flops / mm / 1e9
        );
    }
}
