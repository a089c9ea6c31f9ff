//! Times one layer's forward and backward on a simple-CNN-sized input (a development aid for
//! the profile printed by `regstudy bench --profile`).
//!
//!     cargo run --release --example layer_timing

use regstudy::engine::im2col::{col2im, im2col, Window};
use regstudy::engine::matmul::{matmul, MatRef};
use regstudy::engine::par::column_sums;
use regstudy::engine::{Precision, Rng, Tensor, ThreadPool};
use regstudy::nn::{Context, Conv2d, Conv2dConfig, Init, Layer, MaxPool2d, Relu};
use std::time::Instant;

/// Times `layer`'s passes; `flops` is a forward pass's multiply-adds times two (0: not shown).
fn time(name: &str, layer: &mut dyn Layer, shape: &[usize], flops: f64) {
    let mut rng = Rng::new(0);
    let n: usize = shape.iter().product();
    let x = Tensor::from_vec(shape, (0..n).map(|_| rng.uniform(-1.0, 1.0)).collect()).unwrap();
    let mut ctx = Context::train(Rng::new(1));
    layer.forward(&x, &mut ctx);
    let dy = layer.output().clone();
    let reps = 50;
    let start = Instant::now();
    for _ in 0..reps {
        layer.forward(&x, &mut ctx);
    }
    let fwd = start.elapsed().as_secs_f64() / reps as f64;
    let start = Instant::now();
    for _ in 0..reps {
        layer.backward(&x, &dy, true);
    }
    let bwd = start.elapsed().as_secs_f64() / reps as f64;
    let rate = |secs: f64, passes: f64| {
        if flops > 0.0 {
            format!(" ({:.0} GFLOP/s)", passes * flops / secs / 1e9)
        } else {
            String::new()
        }
    };
    println!(
        "{name:<16} forward {:.3} ms{}, backward {:.3} ms{}",
        fwd * 1e3,
        rate(fwd, 1.0),
        bwd * 1e3,
        rate(bwd, 2.0)
    );
}

fn main() {
    let pool = ThreadPool::new(0).unwrap();
    pool.install(|| {
        time(
            "max_pool",
            &mut MaxPool2d::new(2, 2),
            &[64, 32, 32, 32],
            0.0,
        );
        time("relu", &mut Relu::default(), &[64, 32, 32, 32], 0.0);
        // simple-cnn's two convolutions, standard-cnn's second of each block, then ResNet-18's.
        for (label, shape, out) in [
            ("conv1", [64, 32, 32, 3], 32),
            ("conv2", [64, 16, 16, 32], 64),
            ("conv1_2", [64, 32, 32, 32], 32),
            ("conv2_2", [64, 16, 16, 64], 64),
            ("conv3_2", [64, 8, 8, 128], 128),
            // ResNet-18's first and second stages.
            ("layer1", [64, 32, 32, 64], 64),
            ("layer2", [64, 16, 16, 128], 128),
        ] {
            let config = Conv2dConfig {
                in_channels: shape[3],
                out_channels: out,
                kernel_size: 3,
                stride: 1,
                padding: 1,
                bias: true,
            };
            let flops = 2.0 * (shape[0] * shape[1] * shape[2] * shape[3] * 9 * out) as f64;
            // Each convolution both ways: read directly from the padded images where that
            // pays on this CPU, and through the patch matrix.
            for direct in [true, false] {
                let layer = Conv2d::new(label, config, Init::Pytorch, 0).with_direct_passes(direct);
                if direct && !layer.takes_direct_passes(shape[1], shape[2]) {
                    continue;
                }
                let name = format!("{label} {}", if direct { "direct" } else { "patches" });
                time(&name, &mut { layer }, &shape, flops);
            }
        }
        let (m, k, n) = (16384, 288, 64);
        let a = vec![0.5f32; m * k];
        let b = vec![0.25f32; k * n];
        let dy = vec![0.125f32; m * n];
        let mut c = vec![0.0f32; m * n];
        let mut dw = vec![0.0f32; k * n];
        let mut dp = vec![0.0f32; m * k];
        let reps = 50;
        let ms = |f: &mut dyn FnMut()| {
            f();
            let start = Instant::now();
            for _ in 0..reps {
                f();
            }
            start.elapsed().as_secs_f64() / reps as f64 * 1e3
        };
        let fwd = ms(&mut || {
            matmul(
                MatRef::row_major(&a, m, k),
                MatRef::row_major(&b, n, k).t(),
                &mut c,
                false,
                Precision::Fp32,
            )
        });
        let dwt = ms(&mut || {
            matmul(
                MatRef::row_major(&a, m, k).t(),
                MatRef::row_major(&dy, m, n),
                &mut dw,
                false,
                Precision::Fp32,
            )
        });
        let dx = ms(&mut || {
            matmul(
                MatRef::row_major(&dy, m, n),
                MatRef::row_major(&b, n, k),
                &mut dp,
                false,
                Precision::Fp32,
            )
        });
        println!("conv2 products: forward {fwd:.3} ms, dW^T {dwt:.3} ms, dP {dx:.3} ms");
        for (label, win) in [
            (
                "conv1",
                Window {
                    height: 32,
                    width: 32,
                    channels: 3,
                    kernel_h: 3,
                    kernel_w: 3,
                    stride: 1,
                    padding: 1,
                },
            ),
            (
                "conv2",
                Window {
                    height: 16,
                    width: 16,
                    channels: 32,
                    kernel_h: 3,
                    kernel_w: 3,
                    stride: 1,
                    padding: 1,
                },
            ),
        ] {
            let x = vec![0.5f32; 64 * win.height * win.width * win.channels];
            let mut patches = vec![0.0f32; 64 * win.out_h() * win.out_w() * win.patch_len()];
            let mut back = x.clone();
            let reps = 50;
            let start = Instant::now();
            for _ in 0..reps {
                im2col(&x, 64, &win, &mut patches);
            }
            let t1 = start.elapsed().as_secs_f64() / reps as f64;
            let start = Instant::now();
            for _ in 0..reps {
                col2im(&patches, 64, &win, &mut back);
            }
            let t2 = start.elapsed().as_secs_f64() / reps as f64;
            let start = Instant::now();
            for _ in 0..reps {
                std::hint::black_box(column_sums(&patches[..patches.len() / 32 * 32], 32));
            }
            let t3 = start.elapsed().as_secs_f64() / reps as f64;
            println!(
                "{label} im2col {:.3} ms, col2im {:.3} ms, column sums (2M) {:.3} ms",
                t1 * 1e3,
                t2 * 1e3,
                t3 * 1e3
            );
        }
    });
}
