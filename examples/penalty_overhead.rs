//! The cost of regularizers in a training step: l1l2 (L1 and L2 both in the set) against an
//! empty set (a benchmark, not a test). Both run the whole regularized step: gradients added,
//! the optimizer's fused pass, the steps after it.
//!
//!     cargo run --release --example penalty_overhead

use regstudy::engine::{Rng, Tensor, ThreadPool};
use regstudy::models;
use regstudy::nn::spec::InputShape;
use regstudy::nn::Param;
use regstudy::nn::{Context, Init, Network};
use regstudy::optim::{AdamConfig, Optimizer};
use regstudy::regularize::{L1Mode, Reach, Regularizers, L1, L2};
use regstudy::train::TrainStep;
use std::time::Instant;

/// Seconds for `steps` training steps of `net` on one synthetic MNIST-shaped batch of 64.
fn time_steps(net: &mut Network, regularizers: &mut Regularizers, steps: usize) -> f64 {
    let mut rng = Rng::new(1);
    let x: Vec<f32> = (0..64 * 28 * 28).map(|_| rng.next_f32()).collect();
    let x = Tensor::from_vec(&[64, 28, 28, 1], x).unwrap();
    let y: Vec<u32> = (0..64).map(|i| i % 10).collect();
    let mut optimizer = AdamConfig::new(1e-3).init();
    let mut ctx = Context::train(Rng::new(2));
    let mut step = TrainStep::new();
    let start = Instant::now();
    for _ in 0..steps {
        let done = step.run(net, &mut optimizer, regularizers, &mut ctx, &x, &y);
        std::hint::black_box(done.expect("a finite loss").loss);
    }
    start.elapsed().as_secs_f64()
}

/// The optimizer's part of a training step alone, as [`TrainStep`] takes it.
fn regularized_step(
    net: &mut Network,
    optimizer: &mut dyn Optimizer,
    regularizers: &mut Regularizers,
) {
    let mut params = net.params_mut();
    regularizers.add_gradients(&mut params);
    optimizer.step(&mut params, regularizers);
    regularizers.after_step(&mut params, optimizer);
}

/// L1 1e-5 and L2 1e-4 on the kernels (Keras's `l1_l2`).
fn elastic_net(params: &[&Param]) -> Regularizers {
    let reach = Reach::kernels("penalty");
    Regularizers::new(
        vec![
            Box::new(L1::new(1e-5, L1Mode::Subgradient, &reach, params).unwrap()),
            Box::new(L2::new(1e-4, &reach, params).unwrap()),
        ],
        0.0,
    )
}

fn main() {
    let pool = ThreadPool::new(0).unwrap();
    let input = InputShape {
        channels: 1,
        height: 28,
        width: 28,
    };
    let spec = models::by_name("simple-cnn", input, 10).unwrap();
    let mut net = spec.build(Init::Pytorch, 0).unwrap();
    let mut plan = elastic_net(&net.params());
    let mut empty = Regularizers::default();
    let (mut none, mut l1l2) = (Vec::new(), Vec::new());
    pool.install(|| {
        time_steps(&mut net, &mut empty, 50);
        for _ in 0..7 {
            none.push(time_steps(&mut net, &mut empty, 100));
            l1l2.push(time_steps(&mut net, &mut plan, 100));
        }
    });
    // The optimizer's pass alone, where the penalty's work happens.
    let (mut step_none, mut step_l1l2) = (Vec::new(), Vec::new());
    pool.install(|| {
        let mut optimizer = AdamConfig::new(1e-3).init();
        for _ in 0..7 {
            for (regularizers, times) in [(&mut empty, &mut step_none), (&mut plan, &mut step_l1l2)]
            {
                let start = Instant::now();
                for _ in 0..200 {
                    regularized_step(&mut net, &mut optimizer, regularizers);
                }
                times.push(start.elapsed().as_secs_f64());
            }
        }
    });
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (a, b) = (median(&mut none), median(&mut l1l2));
    println!(
        "100 steps, {} threads: none {a:.3} s, l1l2 {b:.3} s (median of 7), overhead {:+.2}%",
        pool.threads(),
        100.0 * (b / a - 1.0)
    );
    let (c, d) = (median(&mut step_none), median(&mut step_l1l2));
    println!(
        "200 Adam steps alone: none {c:.3} s, l1l2 {d:.3} s; l1l2's extra {:.2} ms per step is \
         {:.2}% of a training step",
        (d - c) / 0.2,
        100.0 * ((d - c) / 200.0) / (a / 100.0)
    );
}
