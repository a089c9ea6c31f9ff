//! Whole-engine properties: reproducibility, checkpoints, penalties inside the optimizer step.
//! (Memory growth has its own test binary, so no other test shares its process.)

use regstudy::engine::{Rng, Tensor, ThreadPool};
use regstudy::nn::spec::InputShape;
use regstudy::nn::{Context, Init, ModelSpec, Network, Param, ParamKind};
use regstudy::optim::{AdamConfig, Optimizer, SgdConfig};
use regstudy::regularize::{RegularizerPlan, RegularizerSpec, Regularizers};
use regstudy::train::TrainStep;
use regstudy::weights_file::{load_optimizer, load_weights, save_optimizer, save_weights};
use std::path::PathBuf;

/// A small network with every kind of layer that has state or randomness.
fn small_spec() -> ModelSpec {
    let text = r#"
        name = "small"
        input = { channels = 3, height = 12, width = 12 }
        [[layers]]
        type = "conv2d"
        name = "conv1"
        out_channels = 8
        kernel_size = 3
        padding = 1
        [[layers]]
        type = "batch_norm2d"
        name = "bn1"
        [[layers]]
        type = "relu"
        [[layers]]
        type = "max_pool2d"
        kernel_size = 2
        [[layers]]
        type = "basic_block"
        name = "layer1.0"
        out_channels = 16
        stride = 2
        [[layers]]
        type = "flatten"
        [[layers]]
        type = "dropout"
        p = 0.3
        [[layers]]
        type = "linear"
        name = "fc"
        out_features = 5
    "#;
    toml::from_str(text).expect("spec")
}

fn batch(seed: u64) -> (Tensor, Vec<u32>) {
    let mut rng = Rng::new(seed);
    let x = (0..16 * 12 * 12 * 3).map(|_| rng.next_f32()).collect();
    let y = (0..16).map(|_| rng.below(5) as u32).collect();
    (Tensor::from_vec(&[16, 12, 12, 3], x).unwrap(), y)
}

fn train_steps(
    net: &mut Network,
    opt: &mut dyn Optimizer,
    ctx: &mut Context,
    steps: u64,
    regularizers: &[&str],
) {
    let mut regularizers = regularizers_on(net, regularizers);
    let mut train_step = TrainStep::new();
    for step in 0..steps {
        let (x, y) = batch(step);
        let done = train_step.run(net, opt, &mut regularizers, ctx, &x, &y);
        assert!(done.is_ok_and(|d| d.loss.is_finite()), "{done:?}");
    }
}

/// The regularizers written as `KIND:key=value,...` (none for an empty list), on `net`'s
/// kernels.
fn regularizers_on(net: &Network, specs: &[&str]) -> Regularizers {
    let members = specs
        .iter()
        .map(|text| {
            let spec: RegularizerSpec = text.parse().expect("a regularizer");
            let reach = spec.reach("regularizer");
            (spec, reach)
        })
        .collect();
    let plan = RegularizerPlan {
        members,
        weight_decay: 0.0,
    };
    plan.build(&net.params(), 100).expect("reaches the kernels")
}

fn values(net: &Network) -> Vec<Vec<f32>> {
    net.params().iter().map(|p| p.value.clone()).collect()
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("regstudy-engine-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn the_same_seed_and_thread_count_give_bit_identical_training() {
    let pool = ThreadPool::new(2).unwrap();
    let run = || {
        pool.install(|| {
            let mut net = small_spec().build(Init::Pytorch, 3).unwrap();
            let mut opt = AdamConfig::new(1e-2).init();
            let mut ctx = Context::train(Rng::new(4));
            train_steps(&mut net, &mut opt, &mut ctx, 5, &[]);
            values(&net)
        })
    };
    let first = run();
    assert_eq!(first, run());
    let other_seed = pool.install(|| values(&small_spec().build(Init::Pytorch, 4).unwrap()));
    assert_ne!(first[0], other_seed[0]);
}

#[test]
fn training_resumed_from_a_checkpoint_matches_uninterrupted_training() {
    let dir = temp_dir("resume");
    let spec = small_spec();
    let mut net = spec.build(Init::Pytorch, 1).unwrap();
    let mut opt = SgdConfig::new(0.05).with_momentum(0.9).init();
    let mut ctx = Context::train(Rng::new(2));
    train_steps(&mut net, &mut opt, &mut ctx, 2, &[]);
    save_weights(
        &dir.join("w.safetensors"),
        &net.params(),
        Default::default(),
    )
    .unwrap();
    save_optimizer(&dir.join("o.safetensors"), &opt.state(&net.params())).unwrap();
    let rng_state = ctx.rng.state();
    train_steps(&mut net, &mut opt, &mut ctx, 2, &[]);

    let mut resumed = spec.build(Init::Pytorch, 99).unwrap();
    load_weights(&dir.join("w.safetensors"), &mut resumed.params_mut()).unwrap();
    let mut resumed_opt = SgdConfig::new(0.05).with_momentum(0.9).init();
    let state = load_optimizer(&dir.join("o.safetensors")).unwrap();
    resumed_opt.load_state(&state, &resumed.params()).unwrap();
    let mut resumed_ctx = Context::train(Rng::from_state(rng_state));
    train_steps(&mut resumed, &mut resumed_opt, &mut resumed_ctx, 2, &[]);

    assert_eq!(values(&net), values(&resumed));
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn adam_resumed_from_its_saved_state_matches_uninterrupted_adam() {
    let dir = temp_dir("adam-resume");
    let spec = small_spec();
    let mut net = spec.build(Init::Pytorch, 1).unwrap();
    let mut opt = AdamConfig::adamw(1e-2, 0.1).init();
    let mut ctx = Context::train(Rng::new(2));
    train_steps(&mut net, &mut opt, &mut ctx, 3, &[]);
    let path = dir.join("o.safetensors");
    save_optimizer(&path, &opt.state(&net.params())).unwrap();
    let mut resumed = AdamConfig::adamw(1e-2, 0.1).init();
    resumed
        .load_state(&load_optimizer(&path).unwrap(), &net.params())
        .unwrap();
    let mut copy = spec.build(Init::Pytorch, 1).unwrap();
    for (c, p) in copy.params_mut().into_iter().zip(net.params()) {
        c.value = p.value.clone();
    }
    let mut copy_ctx = ctx.clone();
    train_steps(&mut net, &mut opt, &mut ctx, 2, &[]);
    train_steps(&mut copy, &mut resumed, &mut copy_ctx, 2, &[]);
    assert_eq!(values(&net), values(&copy));
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn an_optimizer_state_that_does_not_fit_the_model_is_refused() {
    let net = small_spec().build(Init::Pytorch, 1).unwrap();
    let mut opt = AdamConfig::new(1e-3).init();
    let mut state = regstudy::optim::OptimizerState {
        algorithm: "adam".into(),
        step: 3,
        tensors: Default::default(),
    };
    let err = opt
        .load_state(&state, &net.params())
        .unwrap_err()
        .to_string();
    assert!(err.contains("conv1.weight.exp_avg"), "{err}");
    state.algorithm = "sgd".into();
    let err = opt
        .load_state(&state, &net.params())
        .unwrap_err()
        .to_string();
    assert!(err.contains("`sgd`"), "{err}");
}

#[test]
fn loading_weights_of_another_model_names_the_file_and_the_tensor() {
    let dir = temp_dir("mismatch");
    let path = dir.join("small.safetensors");
    let net = small_spec().build(Init::Pytorch, 1).unwrap();
    save_weights(&path, &net.params(), Default::default()).unwrap();
    let input = InputShape {
        channels: 3,
        height: 32,
        width: 32,
    };
    let mut other = regstudy::models::simple_cnn(input, 10)
        .build(Init::Pytorch, 1)
        .unwrap();
    let err = load_weights(&path, &mut other.params_mut())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("small.safetensors") && err.contains("conv1.weight"),
        "{err}"
    );
    let garbage = dir.join("garbage.safetensors");
    std::fs::write(&garbage, b"not a tensor file").unwrap();
    let err = load_weights(&garbage, &mut other.params_mut())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("garbage.safetensors") && err.contains("not a valid safetensors"),
        "{err}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

fn kernel_zeros(net: &Network) -> (usize, usize) {
    let kernels: Vec<&Param> = net
        .params()
        .into_iter()
        .filter(|p| p.kind == ParamKind::Kernel)
        .collect();
    let zeros = kernels
        .iter()
        .map(|p| p.value.iter().filter(|&&w| w == 0.0).count())
        .sum();
    (zeros, kernels.iter().map(|p| p.len()).sum())
}

#[test]
fn proximal_l1_yields_exact_zeros_and_l2_yields_none() {
    let run = |regularizers: &[&str]| {
        let mut net = small_spec().build(Init::Pytorch, 5).unwrap();
        let mut opt = AdamConfig::new(1e-2).init();
        let mut ctx = Context::train(Rng::new(6));
        train_steps(&mut net, &mut opt, &mut ctx, 10, regularizers);
        kernel_zeros(&net)
    };
    let (prox_zeros, total) = run(&["l1:strength=1,mode=prox"]);
    assert!(
        prox_zeros * 10 > total,
        "only {prox_zeros} of {total} kernel weights are zero"
    );
    assert_eq!(run(&["l2:strength=1e-3"]).0, 0);
}
