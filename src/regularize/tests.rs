//! Checks every regularizer against independent references: each gradient against finite
//! differences of its value, each proximal operator against a brute-force minimization of
//! its 1-D or per-group problem; and the set's resolution of the shorthands.

use super::*;
use crate::nn::{Param, ParamKind};
use crate::optim::{Optimizer, SgdConfig, StepHook};

/// A convolution of 3 filters of 4 weights, a linear layer of 2 units of 3 weights, a bias;
/// no weight and no group is 0 (where `|w|` and `||w_g||` have no derivative).
fn params() -> Vec<Param> {
    vec![
        Param::channels_last_kernel(
            "conv.weight".into(),
            [3, 1, 2, 2],
            vec![
                0.5, -1.0, 0.25, 0.125, 0.02, -0.03, 0.01, 0.04, 2.0, -0.7, 0.3, 1.1,
            ],
        ),
        Param::new(
            "conv.bias".into(),
            ParamKind::Bias,
            &[3],
            vec![0.3, -0.2, 0.6],
        ),
        Param::new(
            "fc.weight".into(),
            ParamKind::Kernel,
            &[2, 3],
            vec![3.0, -0.25, 0.75, -0.05, 0.06, 0.02],
        ),
    ]
}

fn refs(ps: &[Param]) -> Vec<&Param> {
    ps.iter().collect()
}

fn all_kinds() -> Reach {
    Reach {
        biases: true,
        ..Reach::kernels("test")
    }
}

/// Every regularizer whose gradient reaches the optimizer, with its name.
fn differentiable(ps: &[&Param]) -> Vec<(&'static str, Box<dyn Regularizer>)> {
    let reach = all_kinds();
    vec![
        (
            "l1 subgradient",
            Box::new(L1::new(0.07, L1Mode::Subgradient, &reach, ps).unwrap()),
        ),
        ("l2", Box::new(L2::new(0.03, &reach, ps).unwrap())),
        (
            "group lasso subgradient",
            Box::new(GroupLasso::new(0.05, GroupMode::Subgradient, &reach, ps).unwrap()),
        ),
    ]
}

/// The regularization gradient the optimizer sees: the fused terms plus `add_gradient`.
fn gradient(r: &dyn Regularizer, p: &Param) -> Vec<f64> {
    let mut copy = p.clone();
    copy.grad.iter_mut().for_each(|g| *g = 0.0);
    r.add_gradient(&mut copy);
    let fused = r.fused(p);
    copy.grad
        .iter()
        .zip(&p.value)
        .map(|(&g, &w)| f64::from(g + fused.gradient(w)))
        .collect()
}

#[test]
fn every_gradient_matches_finite_differences_of_its_value() {
    let ps = params();
    for (name, r) in differentiable(&refs(&ps)) {
        for (pi, p) in ps.iter().enumerate() {
            for (i, analytic) in gradient(r.as_ref(), p).into_iter().enumerate() {
                let at = |delta: f32| {
                    let mut moved = ps.clone();
                    moved[pi].value[i] += delta;
                    r.value(&refs(&moved))
                };
                let fd = (at(1e-3) - at(-1e-3)) / 2e-3;
                assert!(
                    (fd - analytic).abs() < 1e-3,
                    "{name}, {} [{i}]: finite difference {fd}, gradient {analytic}",
                    p.name
                );
            }
        }
    }
}

/// Golden-section search of the minimum of a convex `f` on `[lo, hi]`.
fn golden_min(f: impl Fn(f64) -> f64, mut lo: f64, mut hi: f64) -> f64 {
    let ratio = (5f64.sqrt() - 1.0) / 2.0;
    while hi - lo > 1e-10 {
        let (a, b) = (hi - ratio * (hi - lo), lo + ratio * (hi - lo));
        if f(a) <= f(b) {
            hi = b;
        } else {
            lo = a;
        }
    }
    (lo + hi) / 2.0
}

/// How a proximal problem separates: per weight, or per output group.
enum Separates {
    Weights,
    Groups,
}

/// Every regularizer with a proximal step, how its problem separates, and its value's part
/// that the step minimizes (the same regularizer).
fn proximal(ps: &[&Param]) -> Vec<(&'static str, Box<dyn Regularizer>, Separates)> {
    let reach = all_kinds();
    vec![
        (
            "l1 prox",
            Box::new(L1::new(0.3, L1Mode::Prox, &reach, ps).unwrap()),
            Separates::Weights,
        ),
        (
            "group lasso prox",
            Box::new(GroupLasso::new(0.2, GroupMode::Prox, &reach, ps).unwrap()),
            Separates::Groups,
        ),
    ]
}

/// One SGD step of rate `lr` with zero gradient: only the regularizer's proximal step moves
/// the weights, so they must become `argmin_x 1/2 ||x - w||^2 + lr * R(x)`.
fn prox_step(r: Box<dyn Regularizer>, ps: &mut [Param], lr: f32) {
    let mut set = Regularizers::new(vec![r], 0.0);
    let mut sgd = SgdConfig::new(lr).init();
    let mut params: Vec<&mut Param> = ps.iter_mut().collect();
    set.add_gradients(&mut params);
    sgd.step(&mut params, &set);
    set.after_step(&mut params, &sgd);
}

#[test]
fn every_proximal_step_matches_a_brute_force_minimization_of_its_problem() {
    let lr = 0.5;
    let original = params();
    for (name, r, separates) in proximal(&refs(&original)) {
        // The objective of one block (a weight or a group) of parameter `pi`, others fixed.
        let objective = |pi: usize, range: std::ops::Range<usize>, x: &[f64]| {
            let mut moved = original.clone();
            let mut distance = 0.0;
            for (k, i) in range.enumerate() {
                // Both terms at the f32 the value sees, so that rounding adds no noise.
                moved[pi].value[i] = x[k] as f32;
                let x = f64::from(x[k] as f32);
                distance += (x - f64::from(original[pi].value[i])).powi(2);
            }
            0.5 * distance + f64::from(lr) * r.value(&refs(&moved))
        };
        let mut stepped = original.clone();
        let value_of = r.value(&refs(&original));
        prox_step(r_clone(name, &refs(&original)), &mut stepped, lr);
        assert!(value_of > 0.0);
        for (pi, p) in original.iter().enumerate() {
            let size = match separates {
                Separates::Weights => 1,
                Separates::Groups => group_size(p),
            };
            for start in (0..p.len()).step_by(size) {
                let range = start..start + size;
                let w: Vec<f64> = p.value[range.clone()]
                    .iter()
                    .map(|&v| f64::from(v))
                    .collect();
                let norm = w.iter().map(|v| v * v).sum::<f64>().sqrt();
                // The minimizer lies on the segment from 0 to w (shrinking only helps both
                // terms): search its radius.
                let along =
                    |radius: f64| -> Vec<f64> { w.iter().map(|v| v * radius / norm).collect() };
                let best = golden_min(
                    |radius| objective(pi, range.clone(), &along(radius)),
                    0.0,
                    norm,
                );
                let expected = along(best);
                let got: Vec<f64> = stepped[pi].value[range.clone()]
                    .iter()
                    .map(|&v| f64::from(v))
                    .collect();
                for (g, e) in got.iter().zip(&expected) {
                    assert!(
                        (g - e).abs() < 1e-5,
                        "{name}, {} {range:?}: {got:?} vs {expected:?}",
                        p.name
                    );
                }
                // And no coordinate move from the result lowers the objective.
                let at = objective(pi, range.clone(), &got);
                for k in 0..size {
                    for delta in [-1e-3, 1e-3] {
                        let mut x = got.clone();
                        x[k] += delta;
                        assert!(
                            objective(pi, range.clone(), &x) >= at - 1e-9,
                            "{name}, {} {range:?}",
                            p.name
                        );
                    }
                }
            }
        }
    }
}

/// A fresh copy of the proximal regularizer named `name` (regularizers are not `Clone`
/// behind the trait).
fn r_clone(name: &str, ps: &[&Param]) -> Box<dyn Regularizer> {
    proximal(ps)
        .into_iter()
        .find(|(n, _, _)| *n == name)
        .map(|(_, r, _)| r)
        .unwrap()
}

#[test]
fn group_prox_zeroes_whole_filters() {
    let mut ps = params();
    let before = refs(&ps)
        .iter()
        .map(|p| p.value.clone())
        .collect::<Vec<_>>();
    let reach = Reach::kernels("test");
    let r = GroupLasso::new(0.05, GroupMode::Prox, &reach, &refs(&ps)).unwrap();
    prox_step(Box::new(r), &mut ps, 1.0);
    // Threshold 0.05 * sqrt(4) = 0.1 on the conv filters, 0.05 * sqrt(3) on the fc units.
    let conv = &ps[0];
    let filters: Vec<&[f32]> = conv.value.chunks(4).collect();
    assert!(filters[1].iter().all(|&w| w == 0.0), "{:?}", filters[1]);
    assert!(filters[0].iter().all(|&w| w != 0.0) && filters[2].iter().all(|&w| w != 0.0));
    let units: Vec<&[f32]> = ps[2].value.chunks(3).collect();
    assert!(units[1].iter().all(|&w| w == 0.0), "{:?}", units[1]);
    assert!(units[0].iter().all(|&w| w != 0.0));
    assert_eq!(ps[1].value, before[1], "biases are not reached by default");
    let report = kernel_sparsity(&refs(&ps));
    assert_eq!((report.overall.groups, report.overall.zero_groups), (5, 2));
}

/// One Adam step on a single linear unit with weights `w` and gradients `grad` under group
/// lasso prox at `lambda`; returns the weights before the prox, after it, and the scales.
fn adam_group_prox(w: &[f32], grad: &[f32], lambda: f32) -> (Vec<f64>, Vec<f32>, Vec<f32>) {
    let mut ps = vec![Param::new(
        "fc.weight".into(),
        ParamKind::Kernel,
        &[1, w.len()],
        w.to_vec(),
    )];
    let reach = Reach::kernels("test");
    let mut set = Regularizers::new(
        vec![Box::new(
            GroupLasso::new(lambda, GroupMode::Prox, &reach, &refs(&ps)).unwrap(),
        )],
        0.0,
    );
    let mut adam = crate::optim::AdamConfig::new(0.01).init();
    ps[0].grad = grad.to_vec();
    let mut params: Vec<&mut Param> = ps.iter_mut().collect();
    adam.step(&mut params, &set);
    let crate::optim::StepScale::Adaptive(scale) = adam.step_scale(params[0]) else {
        panic!("Adam's scale is per weight");
    };
    let scales: Vec<f32> = (0..w.len()).map(|i| scale.at(i)).collect();
    let stepped: Vec<f64> = params[0].value.iter().map(|&v| f64::from(v)).collect();
    set.after_step(&mut params, &adam);
    (stepped, params[0].value.clone(), scales)
}

/// `max(0, 1 - t / ||w||) * w`, in f64.
fn shrunk(w: &[f64], t: f64) -> Vec<f64> {
    let norm = w.iter().map(|v| v * v).sum::<f64>().sqrt();
    w.iter().map(|v| v * (1.0 - t / norm).max(0.0)).collect()
}

#[test]
fn under_adam_the_group_prox_uses_the_harmonic_mean_of_the_groups_step_scales() {
    let (stepped, after, scales) = adam_group_prox(&[1.0, 1.0], &[1.0, 4.0], 0.1);
    // After one step v_hat = g^2: scales lr / (|g| + eps).
    assert!(
        (scales[0] - 0.01).abs() < 1e-6 && (scales[1] - 0.0025).abs() < 1e-6,
        "{scales:?}"
    );
    // lr / mean(|g| + eps) = 0.01 / 2.5.
    let t = 0.004 * 0.1 * 2f64.sqrt();
    for (got, want) in after.iter().zip(shrunk(&stepped, t)) {
        assert!((f64::from(*got) - want).abs() < 1e-7, "{got} vs {want}");
    }
}

#[test]
fn under_adam_a_weight_without_gradient_does_not_zero_its_group() {
    // The third weight has had no gradient: its scale is lr / eps = 1e6, and an arithmetic
    // mean of the scales (3.3e5) would zero the group at once.
    let (stepped, after, scales) = adam_group_prox(&[1.0, 1.0, 1.0], &[1.0, 1.0, 0.0], 0.1);
    assert!(scales[2] > 1e5, "{scales:?}");
    assert!(after.iter().all(|&w| w != 0.0), "{after:?}");
    // lr / mean(1, 1, eps) = 0.015.
    let t = 0.015 * 0.1 * 3f64.sqrt();
    for (got, want) in after.iter().zip(shrunk(&stepped, t)) {
        assert!((f64::from(*got) - want).abs() < 1e-6, "{got} vs {want}");
    }
}

fn pruning(target: f64, scope: PruningScope, ps: &[&Param]) -> MagnitudePruning {
    let schedule = PruningSchedule {
        target,
        begin: 2,
        end: 12,
        frequency: 3,
        exponent: 3,
    };
    MagnitudePruning::new(schedule, scope, &Reach::kernels("test"), ps).unwrap()
}

/// `steps` SGD steps with gradients drawn from `seed`, pruning after each; calls `check`
/// with the step number and the parameters.
fn run_pruned(
    ps: &mut [Param],
    set: &mut Regularizers,
    sgd: &mut crate::optim::Sgd,
    steps: usize,
    seed: u64,
    mut check: impl FnMut(u64, &[&mut Param]),
) {
    let mut rng = crate::engine::Rng::new(seed);
    for _ in 0..steps {
        let mut params: Vec<&mut Param> = ps.iter_mut().collect();
        for p in params.iter_mut() {
            p.grad.iter_mut().for_each(|g| *g = rng.next_f32() - 0.5);
        }
        set.add_gradients(&mut params);
        sgd.step(&mut params, set);
        set.after_step(&mut params, sgd);
        check(sgd.steps(), &params);
    }
}

#[test]
fn pruning_follows_the_polynomial_schedule_and_pruned_weights_stay_zero() {
    let mut ps = params();
    let r = pruning(0.75, PruningScope::Layer, &refs(&ps));
    let schedule = *r.schedule();
    let mut set = Regularizers::new(vec![Box::new(r)], 0.0);
    let mut sgd = SgdConfig::new(0.1).with_momentum(0.9).init();
    let mut pruned_before: Vec<Vec<bool>> = ps.iter().map(|p| vec![false; p.len()]).collect();
    let mut expected_zeros = [0usize, 0, 0];
    run_pruned(&mut ps, &mut set, &mut sgd, 16, 1, |t, params| {
        // The schedule's formula, independently: s_f + (0 - s_f)(1 - (t - t0)/(t1 - t0))^3.
        let prunes = (2..=12).contains(&t) && ((t - 2) % 3 == 0 || t == 12);
        assert_eq!(schedule.prunes_at(t), prunes, "step {t}");
        for (k, p) in params.iter().enumerate() {
            if p.kind != ParamKind::Kernel {
                assert!(p.value.iter().all(|&w| w != 0.0), "biases are not pruned");
                continue;
            }
            if prunes {
                let progress = ((t - 2) as f64 / 10.0).min(1.0);
                let s = 0.75 + (0.0 - 0.75) * (1.0 - progress).powi(3);
                expected_zeros[k] = (s * p.len() as f64).round() as usize;
            }
            let zeros: Vec<bool> = p.value.iter().map(|&w| w == 0.0).collect();
            assert_eq!(
                zeros.iter().filter(|z| **z).count(),
                expected_zeros[k],
                "{} at {t}",
                p.name
            );
            for (i, was) in pruned_before[k].iter().enumerate() {
                assert!(!was || zeros[i], "{}[{i}] left zero at step {t}", p.name);
            }
            pruned_before[k] = zeros;
        }
    });
    assert_eq!(expected_zeros, [9, 0, 5], "the final target, round(0.75 n)");
}

#[test]
fn global_pruning_reaches_the_target_over_all_reached_weights() {
    let mut ps = params();
    let r = pruning(0.5, PruningScope::Global, &refs(&ps));
    let mut set = Regularizers::new(vec![Box::new(r)], 0.0);
    let mut sgd = SgdConfig::new(0.1).init();
    run_pruned(&mut ps, &mut set, &mut sgd, 12, 2, |_, _| {});
    let kernels = ps.iter().filter(|p| p.kind == ParamKind::Kernel);
    let zeros: usize = kernels
        .flat_map(|p| &p.value)
        .filter(|w| **w == 0.0)
        .count();
    assert_eq!(zeros, 9, "round(0.5 * 18)");
}

#[test]
fn pruning_masks_survive_a_state_round_trip_and_the_run_continues_bit_identically() {
    let mut whole = params();
    let mut set = Regularizers::new(
        vec![Box::new(pruning(0.6, PruningScope::Layer, &refs(&whole)))],
        0.0,
    );
    let mut sgd = SgdConfig::new(0.1).with_momentum(0.9).init();
    run_pruned(&mut whole, &mut set, &mut sgd, 6, 3, |_, _| {});
    let (saved_state, saved_sgd, mut resumed) =
        (set.state(), sgd.state(&refs(&whole)), whole.clone());
    assert_eq!(
        saved_state.len(),
        2,
        "one mask per kernel: {:?}",
        saved_state.keys()
    );
    run_pruned(&mut whole, &mut set, &mut sgd, 8, 4, |_, _| {});

    let mut set2 = Regularizers::new(
        vec![Box::new(pruning(0.6, PruningScope::Layer, &refs(&resumed)))],
        0.0,
    );
    set2.load_state(&saved_state, &refs(&resumed)).unwrap();
    let mut sgd2 = SgdConfig::new(0.1).with_momentum(0.9).init();
    sgd2.load_state(&saved_sgd, &refs(&resumed)).unwrap();
    run_pruned(&mut resumed, &mut set2, &mut sgd2, 8, 4, |_, _| {});
    for (a, b) in whole.iter().zip(&resumed) {
        let bits = |p: &Param| p.value.iter().map(|w| w.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(a), bits(b), "{}", a.name);
    }
}

#[test]
fn a_pruning_state_that_does_not_fit_is_refused_naming_the_tensor() {
    let ps = params();
    let mut set = Regularizers::new(
        vec![Box::new(pruning(0.5, PruningScope::Layer, &refs(&ps)))],
        0.0,
    );
    let short =
        RegularizerState::from([("magnitude_pruning.mask.fc.weight".to_string(), vec![0.0; 5])]);
    let e = set.load_state(&short, &refs(&ps)).unwrap_err().to_string();
    assert!(
        e.contains("magnitude_pruning.mask.fc.weight") && e.contains("5 values"),
        "{e}"
    );
    let stray =
        RegularizerState::from([("magnitude_pruning.mask.conv.bias".to_string(), vec![0.0; 3])]);
    let e = set.load_state(&stray, &refs(&ps)).unwrap_err().to_string();
    assert!(e.contains("magnitude_pruning.mask.conv.bias"), "{e}");
    let odd =
        RegularizerState::from([("magnitude_pruning.mask.fc.weight".to_string(), vec![0.5; 6])]);
    let e = set.load_state(&odd, &refs(&ps)).unwrap_err().to_string();
    assert!(e.contains("0 or 1"), "{e}");
}

/// The plan of the shorthands (`penalty`, `l1`, `l2`, `l1_mode`, overrides, switches).
fn shorthand(
    l1: f32,
    l2: f32,
    mode: L1Mode,
    overrides: &[(&str, LayerStrength)],
    biases: bool,
) -> RegularizerPlan {
    let config = crate::train::RunConfig {
        dataset: "mnist".into(),
        model: "simple-cnn".into(),
        l1: (l1 > 0.0).then_some(l1),
        l2: (l2 > 0.0).then_some(l2),
        l1_mode: mode,
        penalize_biases: biases,
        layer_penalties: overrides.iter().map(|(k, s)| (k.to_string(), *s)).collect(),
        ..Default::default()
    };
    config.check().unwrap().regularizers().clone()
}

fn terms(set: &Regularizers, ps: &[Param], name: &str) -> crate::optim::PenaltyTerms {
    set.terms(ps.iter().find(|p| p.name == name).unwrap())
}

/// A few parameters of every kind, shared by the reach and penalty tests.
pub(crate) fn penalty_params() -> Vec<Param> {
    vec![
        Param::new(
            "conv1.weight".into(),
            ParamKind::Kernel,
            &[3],
            vec![0.5, -1.0, 0.0],
        ),
        Param::new("conv1.bias".into(), ParamKind::Bias, &[2], vec![2.0, -2.0]),
        Param::new(
            "fc.weight".into(),
            ParamKind::Kernel,
            &[2],
            vec![3.0, -0.25],
        ),
        Param::new("bn.weight".into(), ParamKind::NormScale, &[1], vec![1.0]),
        Param::new("bn.running_var".into(), ParamKind::Buffer, &[1], vec![9.0]),
    ]
}

#[test]
fn default_rule_penalizes_kernels_only_with_keras_values() {
    let ps = penalty_params();
    let set = shorthand(0.1, 0.01, L1Mode::Subgradient, &[], false)
        .build(&refs(&ps), 0)
        .unwrap();
    // Kernels: sum|w| = 1.5 + 3.25 = 4.75, sum w^2 = 1.25 + 9.0625 = 10.3125.
    let expected = 0.1 * 4.75 + 0.01 * 10.3125;
    assert!((set.value(&refs(&ps)) - expected).abs() < 1e-6);
    assert!(terms(&set, &ps, "conv1.bias").is_zero());
    assert!(terms(&set, &ps, "bn.weight").is_zero());
    assert!(terms(&set, &ps, "bn.running_var").is_zero());
}

#[test]
fn coupled_decay_counts_as_half_an_l2_penalty_on_every_trainable_parameter() {
    let ps = penalty_params();
    let set = Regularizers::new(Vec::new(), 0.2);
    // Trainable sum w^2: 1.25 + 8 + 9.0625 + 1 = 19.3125 (the buffer is left out).
    assert!((set.value(&refs(&ps)) - 0.1 * 19.3125).abs() < 1e-6);
}

#[test]
fn overrides_pick_the_longest_key_and_full_names_reach_any_kind() {
    let ps = penalty_params();
    let conv1 = LayerStrength {
        l1: Some(0.5),
        l2: None,
    };
    let bias = LayerStrength {
        l1: None,
        l2: Some(0.3),
    };
    let plan = shorthand(
        0.1,
        1e-9,
        L1Mode::Subgradient,
        &[("conv1", conv1), ("conv1.bias", bias)],
        false,
    );
    let set = plan.build(&refs(&ps), 0).unwrap();
    assert_eq!(terms(&set, &ps, "conv1.weight").l1, 0.5);
    assert_eq!(terms(&set, &ps, "conv1.bias").l2, 0.3);
    assert_eq!(terms(&set, &ps, "conv1.bias").l1, 0.1);
    assert_eq!(terms(&set, &ps, "fc.weight").l1, 0.1);
    let plan = shorthand(
        0.1,
        0.0,
        L1Mode::Subgradient,
        &[("conv", LayerStrength::default())],
        false,
    );
    let err = plan.build(&refs(&ps), 0).unwrap_err().to_string();
    assert!(
        err.contains("`conv`") && err.contains("--layer-penalty"),
        "{err}"
    );
}

#[test]
fn an_override_that_reaches_no_penalized_parameter_is_an_error_naming_the_key_and_why() {
    let mut ps = penalty_params();
    ps.push(Param::new(
        "head.bias".into(),
        ParamKind::Bias,
        &[1],
        vec![0.5],
    ));
    let strength = LayerStrength {
        l1: None,
        l2: Some(0.2),
    };
    let error_with = |keys: &[&str], biases: bool, norm: bool| {
        let overrides: Vec<(&str, LayerStrength)> = keys.iter().map(|k| (*k, strength)).collect();
        let mut plan = shorthand(0.0, 0.1, L1Mode::Subgradient, &overrides, biases);
        for (_, reach) in &mut plan.members {
            reach.norm = norm;
        }
        plan.build(&refs(&ps), 0).err().map(|e| e.to_string())
    };
    let e = error_with(&["bn.running_var"], true, true).unwrap();
    assert!(
        e.contains("`bn.running_var`") && e.contains("only buffers"),
        "{e}"
    );
    let e = error_with(&["bn"], false, false).unwrap();
    assert!(
        e.contains("`bn`") && e.contains("batch-norm") && e.contains("--penalize-norm"),
        "{e}"
    );
    assert_eq!(error_with(&["bn"], false, true), None);
    let e = error_with(&["head"], false, false).unwrap();
    assert!(
        e.contains("`head`") && e.contains("biases") && e.contains("--penalize-biases"),
        "{e}"
    );
    assert_eq!(error_with(&["head"], true, false), None);
    let e = error_with(&["fc", "fc.weight"], false, false).unwrap();
    assert!(e.contains("`fc`") && e.contains("fc.weight"), "{e}");
    assert_eq!(error_with(&["bn.weight", "head.bias"], false, false), None);
}

#[test]
fn prox_mode_moves_l1_to_the_proximal_step() {
    let ps = penalty_params();
    let set = shorthand(0.1, 0.01, L1Mode::Prox, &[], false)
        .build(&refs(&ps), 0)
        .unwrap();
    let t = terms(&set, &ps, "fc.weight");
    assert_eq!((t.l1, t.l2, t.l1_prox), (0.0, 0.01, 0.1));
}

#[test]
fn hook_gradient_matches_finite_differences_of_the_value() {
    let ps = penalty_params();
    let set = shorthand(0.07, 0.03, L1Mode::Subgradient, &[], true)
        .build(&refs(&ps), 0)
        .unwrap();
    for (pi, p) in ps.iter().enumerate().filter(|(_, p)| p.kind.is_trainable()) {
        let t = set.terms(p);
        for i in 0..p.len() {
            if p.value[i] == 0.0 {
                continue; // |w| has no derivative at 0
            }
            let at = |delta: f32| {
                let mut moved = ps.clone();
                moved[pi].value[i] += delta;
                set.value(&refs(&moved))
            };
            let fd = (at(1e-3) - at(-1e-3)) / 2e-3;
            let analytic = f64::from(t.gradient(p.value[i]));
            assert!(
                (fd - analytic).abs() < 1e-3,
                "{} {i}: {fd} {analytic}",
                p.name
            );
        }
    }
}

#[test]
fn a_study_grid_of_regularizers_makes_one_regularizer_per_point() {
    let text = r#"name = "structured"
seeds = 1

[base]
dataset = "mnist"
model = "simple-cnn"
epochs = 1

[[method]]
name = "none"

[[method]]
name = "group-lasso"
grid = { regularizers = ["group-lasso:strength=1e-5,mode=prox", "group-lasso:strength=1e-4,mode=prox"] }

[[method]]
name = "pruning"
set = { regularizers = { kind = "magnitude-pruning", target = 0.8 } }
"#;
    let spec =
        crate::study::spec::StudySpec::parse(text, std::path::Path::new("study.toml")).unwrap();
    let trials = spec.trials();
    let grid: Vec<_> = trials
        .iter()
        .filter(|t| t.method == "group-lasso")
        .collect();
    assert_eq!(grid.len(), 2);
    for (trial, strength) in grid.iter().zip([1e-5f32, 1e-4]) {
        assert_eq!(trial.config.regularizers.len(), 1);
        match &trial.config.regularizers[0] {
            RegularizerSpec::GroupLasso(t) => assert_eq!(t.strength, strength),
            other => panic!("{other:?}"),
        }
        let label = format!("group-lasso:strength={strength:e},mode=prox");
        assert_eq!(trial.point["regularizers"], serde_json::json!(label));
    }
    let pruning = trials.iter().find(|t| t.method == "pruning").unwrap();
    assert_eq!(
        pruning.config.regularizers[0].kind(),
        RegularizerKind::MagnitudePruning
    );
    let bad = text.replace("strength=1e-4,mode=prox", "strength=1e-4,mode=fast");
    let e = crate::study::spec::StudySpec::parse(&bad, std::path::Path::new("study.toml"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("regularizers") && e.contains("fast"), "{e}");
}
