//! Finite-difference checks of every layer's backward pass.
//!
//! For a layer `f` and a fixed random `r`, the scalar `L(x, theta) = sum r * f(x; theta)` is
//! evaluated in f32 and summed in f64; central differences `(L(x + h e_i) - L(x - h e_i)) / 2h`
//! must match the analytic dL/dx_i and dL/dtheta_i. Inputs are distinct values at least 0.01
//! apart and away from 0, so no difference step crosses a ReLU kink or changes a max-pool winner.
//!
//! Layers with matrix products are also checked in bf16: the analytic gradients of the bf16
//! layer against the finite differences of the same layer in fp32 (the true gradient; a
//! difference quotient of the bf16 forward would only measure its rounding steps), within a
//! tolerance for operands rounded to 8 significant bits.

use super::conv2d::Conv2dConfig;
use super::*;
use crate::engine::{Precision, Rng, Tensor};

/// Difference step, tolerance (absolute + relative + a fraction of the largest gradient of
/// the same tensor) for one check.
#[derive(Clone, Copy)]
struct Tolerance {
    step: f32,
    abs: f64,
    rel: f64,
    of_largest: f64,
}

/// Piecewise-linear layers: FD is exact up to rounding, so a large step keeps rounding small.
const LINEAR: Tolerance = Tolerance {
    step: 4e-3,
    abs: 1e-3,
    rel: 1e-2,
    of_largest: 0.0,
};

/// Smooth non-linear layers (batch norm): a smaller step for a smaller truncation error.
const SMOOTH: Tolerance = Tolerance {
    step: 1e-3,
    abs: 4e-3,
    rel: 2e-2,
    of_largest: 0.0,
};

/// Products of bf16-rounded operands: each term is off by up to 2^-8 of itself, so a sum is
/// off by up to 2^-8 of the sum of its terms' magnitudes, which for a weight gradient (a sum
/// over every pixel of the batch) is several times the gradient itself. Measured errors on
/// these layers stay below 1% of the tensor's largest gradient; 2^-6 of it is allowed. A
/// wrong product (a transposed or misplaced operand) is off by the size of the gradients.
const BF16: Tolerance = Tolerance {
    step: 4e-3,
    abs: 1e-3,
    rel: 1e-2,
    of_largest: 1.0 / 64.0,
};

/// [`BF16`] for smooth layers, with [`SMOOTH`]'s step.
const BF16_SMOOTH: Tolerance = Tolerance {
    step: SMOOTH.step,
    abs: SMOOTH.abs,
    rel: SMOOTH.rel,
    ..BF16
};

/// Distinct values spaced 0.01 apart, shuffled, none within 0.005 of zero.
fn distinct_input(shape: &[usize], rng: &mut Rng) -> Tensor {
    let n: usize = shape.iter().product();
    let mut values: Vec<f32> = (0..n)
        .map(|i| (i as f32 - n as f32 / 2.0) * 0.01 + 0.005)
        .collect();
    rng.shuffle(&mut values);
    Tensor::from_vec(shape, values).unwrap()
}

fn weighted_sum(layer: &mut dyn Layer, x: &Tensor, ctx: &Context, r: &[f32]) -> f64 {
    let mut ctx = ctx.clone();
    layer.forward(x, &mut ctx);
    layer
        .output()
        .data()
        .iter()
        .zip(r)
        .map(|(&y, &r)| y as f64 * r as f64)
        .sum()
}

/// Asserts `analytic` is within `tol` of `numeric`; `largest` is the largest magnitude in the
/// analytic gradient's tensor.
fn assert_close(what: &str, analytic: f32, numeric: f64, largest: f32, tol: Tolerance) {
    let err = (analytic as f64 - numeric).abs();
    assert!(
        err <= tol.abs + tol.rel * numeric.abs() + tol.of_largest * largest as f64,
        "{what}: analytic {analytic} vs finite difference {numeric}"
    );
}

fn largest(values: &[f32]) -> f32 {
    values.iter().fold(0.0, |max, v| max.max(v.abs()))
}

/// Indices to check: all of them for small tensors, a fixed sample of 150 otherwise.
fn sample(len: usize, rng: &mut Rng) -> Vec<usize> {
    if len <= 150 {
        (0..len).collect()
    } else {
        (0..150).map(|_| rng.below(len as u64) as usize).collect()
    }
}

/// Checks dL/dx and dL/dtheta of `layer` at a random input of `shape`.
fn check(layer: impl Layer, shape: &[usize], training: bool, tol: Tolerance) {
    check_in(Precision::Fp32, layer, shape, training, tol);
}

/// [`check`] for the gradients `layer` computes in `precision`; the finite differences are
/// of the layer in fp32. In bf16 the layer's output must also differ from its fp32 output
/// (its products do round).
fn check_in(
    precision: Precision,
    mut layer: impl Layer,
    shape: &[usize],
    training: bool,
    tol: Tolerance,
) {
    let mut rng = Rng::new(99);
    let x = distinct_input(shape, &mut rng);
    let ctx = Context {
        training,
        rng: Rng::new(5),
    };
    weighted_sum(&mut layer, &x, &ctx, &[]);
    let r: Vec<f32> = (0..layer.output().len())
        .map(|_| rng.uniform(-1.0, 1.0))
        .collect();
    let grad_output = Tensor::from_vec(layer.output().shape(), r.clone()).unwrap();
    let fp32_output = layer.output().data().to_vec();
    layer.set_precision(precision);
    weighted_sum(&mut layer, &x, &ctx, &r);
    if precision != Precision::Fp32 {
        assert_ne!(
            layer.output().data(),
            fp32_output,
            "{precision} did not round"
        );
    }
    layer.backward(&x, &grad_output, true);
    let grad_input = layer.grad_input().data().to_vec();
    let grads: Vec<Vec<f32>> = layer.params().iter().map(|p| p.grad.clone()).collect();
    layer.set_precision(Precision::Fp32);

    for i in sample(x.len(), &mut rng) {
        let mut shifted = x.clone();
        shifted.data_mut()[i] += tol.step;
        let plus = weighted_sum(&mut layer, &shifted, &ctx, &r);
        shifted.data_mut()[i] -= 2.0 * tol.step;
        let minus = weighted_sum(&mut layer, &shifted, &ctx, &r);
        let numeric = (plus - minus) / (2.0 * tol.step as f64);
        assert_close(
            &format!("dL/dx[{i}]"),
            grad_input[i],
            numeric,
            largest(&grad_input),
            tol,
        );
    }
    let count = layer.params().len();
    for (k, grad) in grads.iter().enumerate().take(count) {
        if !layer.params()[k].kind.is_trainable() {
            continue;
        }
        let name = layer.params()[k].name.clone();
        for i in sample(grad.len(), &mut rng) {
            let nudge = |layer: &mut dyn Layer, delta: f32| layer.params_mut()[k].value[i] += delta;
            nudge(&mut layer, tol.step);
            let plus = weighted_sum(&mut layer, &x, &ctx, &r);
            nudge(&mut layer, -2.0 * tol.step);
            let minus = weighted_sum(&mut layer, &x, &ctx, &r);
            nudge(&mut layer, tol.step);
            let numeric = (plus - minus) / (2.0 * tol.step as f64);
            assert_close(
                &format!("dL/d{name}[{i}]"),
                grad[i],
                numeric,
                largest(grad),
                tol,
            );
        }
    }
}

fn conv(cin: usize, cout: usize, k: usize, stride: usize, padding: usize, bias: bool) -> Conv2d {
    let config = Conv2dConfig {
        in_channels: cin,
        out_channels: cout,
        kernel_size: k,
        stride,
        padding,
        bias,
    };
    Conv2d::new("conv", config, Init::Pytorch, 1)
}

#[test]
fn conv2d_gradients_match_finite_differences() {
    check(conv(3, 4, 3, 1, 1, true), &[2, 5, 6, 3], false, LINEAR);
}

#[test]
fn direct_conv2d_gradients_match_finite_differences() {
    // 6 x 14 outputs: 84 of the 96 grid rows used, and 16 input channels, so both passes and
    // the input gradient read the padded images directly where the CPU has the kernel.
    let layer = conv(16, 5, 3, 1, 1, true);
    let expected = crate::engine::direct_conv::Kernel::detect().is_some();
    assert_eq!(layer.takes_direct_passes(6, 14), expected);
    check(layer, &[2, 6, 14, 16], false, LINEAR);
    let layer = conv(16, 3, 2, 1, 0, false);
    assert_eq!(layer.takes_direct_passes(9, 12), expected);
    check(layer, &[2, 9, 12, 16], false, LINEAR);
}

#[test]
fn strided_unpadded_conv2d_gradients_match_finite_differences() {
    check(conv(2, 3, 3, 2, 0, false), &[2, 7, 7, 2], false, LINEAR);
}

#[test]
fn pointwise_conv2d_gradients_match_finite_differences() {
    check(conv(4, 3, 1, 1, 0, true), &[2, 3, 3, 4], false, LINEAR);
    check(conv(4, 3, 1, 2, 0, false), &[2, 5, 5, 4], false, LINEAR);
}

#[test]
fn linear_gradients_match_finite_differences() {
    check(
        Linear::new("fc", 7, 5, true, Init::Keras, 2),
        &[3, 7],
        false,
        LINEAR,
    );
}

#[test]
fn relu_gradients_match_finite_differences() {
    check(Relu::default(), &[2, 3, 3, 4], false, LINEAR);
}

#[test]
fn max_pool_gradients_match_finite_differences() {
    check(MaxPool2d::new(2, 2), &[2, 4, 6, 3], false, LINEAR);
    check(MaxPool2d::new(3, 2), &[1, 7, 7, 2], false, LINEAR);
    check(
        MaxPool2d::new(3, 2).with_padding(1),
        &[1, 6, 7, 2],
        false,
        LINEAR,
    );
    check(
        MaxPool2d::after_relu(3, 2).with_padding(1),
        &[1, 6, 7, 2],
        false,
        LINEAR,
    );
}

#[test]
fn avg_pool_gradients_match_finite_differences() {
    check(AvgPool2d::new(2, 2), &[2, 4, 6, 3], false, LINEAR);
}

#[test]
fn global_avg_pool_gradients_match_finite_differences() {
    check(GlobalAvgPool::default(), &[2, 3, 4, 5], false, LINEAR);
}

#[test]
fn flatten_gradients_match_finite_differences() {
    check(Flatten::default(), &[2, 3, 2, 4], false, LINEAR);
}

#[test]
fn dropout_gradients_match_finite_differences_for_a_fixed_mask() {
    check(Dropout::new(0.4), &[3, 20], true, LINEAR);
}

#[test]
fn batch_norm_gradients_match_finite_differences_in_training() {
    let mut bn = BatchNorm::new("bn", 3);
    // Non-trivial scale and shift, so their gradients are exercised away from the identity.
    let params = bn.params_mut();
    params
        .into_iter()
        .take(2)
        .for_each(|p| p.value = vec![0.5, -1.5, 2.0]);
    check(bn, &[2, 3, 2, 3], true, SMOOTH);
    check(BatchNorm::new("bn1d", 4), &[6, 4], true, SMOOTH);
}

#[test]
fn batch_norm_gradients_match_finite_differences_in_evaluation() {
    let mut bn = BatchNorm::new("bn", 3);
    bn.params_mut()[2].value = vec![0.1, -0.2, 0.3];
    bn.params_mut()[3].value = vec![0.5, 2.0, 1.5];
    check(bn, &[2, 3, 2, 3], false, LINEAR);
}

#[test]
fn basic_block_gradients_match_finite_differences() {
    check(
        BasicBlock::new("b", 3, 3, 1, Init::Pytorch, 3),
        &[2, 4, 4, 3],
        true,
        SMOOTH,
    );
}

#[test]
fn basic_block_with_projection_gradients_match_finite_differences() {
    check(
        BasicBlock::new("b", 2, 4, 2, Init::Pytorch, 4),
        &[2, 5, 5, 2],
        true,
        SMOOTH,
    );
}

#[test]
fn bf16_conv2d_gradients_match_fp32_finite_differences() {
    let bf16 = Precision::Bf16;
    check_in(bf16, conv(3, 4, 3, 1, 1, true), &[2, 5, 6, 3], false, BF16);
    check_in(bf16, conv(2, 3, 3, 2, 0, false), &[2, 7, 7, 2], false, BF16);
    check_in(bf16, conv(4, 3, 1, 1, 0, true), &[2, 3, 3, 4], false, BF16);
}

#[test]
fn bf16_direct_conv2d_gradients_match_fp32_finite_differences() {
    // The shapes of `direct_conv2d_gradients_match_finite_differences`, in bf16: pairs of
    // channels for the output and the input gradient, rounded operands for the kernel's.
    let expected = crate::engine::direct_conv::Kernel::detect_bf16().is_some();
    for (layer, shape) in [
        (conv(16, 5, 3, 1, 1, true), [2, 6, 14, 16]),
        (conv(16, 3, 2, 1, 0, false), [2, 9, 12, 16]),
        (conv(17, 3, 3, 1, 1, true), [2, 6, 14, 17]),
    ] {
        let mut layer = layer;
        layer.set_precision(Precision::Bf16);
        assert_eq!(layer.takes_direct_passes(shape[1], shape[2]), expected);
        // `check_in` starts from the layer in fp32, its reference.
        layer.set_precision(Precision::Fp32);
        check_in(Precision::Bf16, layer, &shape, false, BF16);
    }
}

#[test]
fn bf16_conv2d_gradients_over_blocks_of_images_match_fp32_finite_differences() {
    // 9 x 9 outputs per image, so the layer runs block by block of images.
    check_in(
        Precision::Bf16,
        conv(2, 3, 3, 1, 1, true),
        &[2, 9, 9, 2],
        false,
        BF16,
    );
}

#[test]
fn bf16_linear_gradients_match_fp32_finite_differences() {
    let layer = Linear::new("fc", 7, 5, true, Init::Keras, 2);
    check_in(Precision::Bf16, layer, &[3, 7], false, BF16);
}

#[test]
fn bf16_basic_block_gradients_match_fp32_finite_differences() {
    let block = BasicBlock::new("b", 2, 4, 2, Init::Pytorch, 4);
    check_in(Precision::Bf16, block, &[2, 5, 5, 2], true, BF16_SMOOTH);
}
