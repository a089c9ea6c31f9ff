//! Fully connected layer.

use super::init::{rng_for, Fans};
use super::{Context, Init, Layer, Param, ParamKind};
use crate::engine::matmul::{matmul, MatRef};
use crate::engine::par::{broadcast_rows, column_sums_into};
use crate::engine::{Precision, Tensor};

/// `y = x W^T + b`, with `W` of shape `[out, in]` as in PyTorch.
///
/// Backward: `dW = dY^T x`, `db = column sums of dY`, `dx = dY W`.
pub struct Linear {
    in_features: usize,
    out_features: usize,
    weight: Param,
    bias: Option<Param>,
    precision: Precision,
    output: Tensor,
    grad_input: Tensor,
}

impl Linear {
    /// A layer named `name` (parameters `{name}.weight`, `{name}.bias`).
    pub fn new(
        name: &str,
        in_features: usize,
        out_features: usize,
        bias: bool,
        init: Init,
        seed: u64,
    ) -> Self {
        let fans = Fans {
            fan_in: in_features,
            fan_out: out_features,
        };
        let weight_name = format!("{name}.weight");
        let value = init.kernel(
            fans,
            in_features * out_features,
            &mut rng_for(seed, &weight_name),
        );
        let weight = Param::new(
            weight_name,
            ParamKind::Kernel,
            &[out_features, in_features],
            value,
        );
        let bias = bias.then(|| {
            let bias_name = format!("{name}.bias");
            let value = init.bias(fans, out_features, &mut rng_for(seed, &bias_name));
            Param::new(bias_name, ParamKind::Bias, &[out_features], value)
        });
        Self {
            in_features,
            out_features,
            weight,
            bias,
            precision: Precision::Fp32,
            output: Tensor::default(),
            grad_input: Tensor::default(),
        }
    }
}

impl Layer for Linear {
    fn forward(&mut self, input: &Tensor, _ctx: &mut Context) {
        let n = input.batch();
        self.output.reshape_for(&[n, self.out_features]);
        let x = MatRef::row_major(input.data(), n, self.in_features);
        let weight = MatRef::row_major(&self.weight.value, self.out_features, self.in_features);
        let with_bias = match &self.bias {
            Some(bias) => {
                broadcast_rows(self.output.data_mut(), &bias.value);
                true
            }
            None => false,
        };
        let precision = self.precision;
        matmul(x, weight.t(), self.output.data_mut(), with_bias, precision);
    }

    fn output(&self) -> &Tensor {
        &self.output
    }

    fn backward(&mut self, input: &Tensor, grad_output: &Tensor, need_grad_input: bool) {
        let n = input.batch();
        let dy = MatRef::row_major(grad_output.data(), n, self.out_features);
        let x = MatRef::row_major(input.data(), n, self.in_features);
        matmul(dy.t(), x, &mut self.weight.grad, false, self.precision);
        if let Some(bias) = &mut self.bias {
            column_sums_into(grad_output.data(), &mut bias.grad);
        }
        if need_grad_input {
            self.grad_input.reshape_for(input.shape());
            let weight = MatRef::row_major(&self.weight.value, self.out_features, self.in_features);
            matmul(
                dy,
                weight,
                self.grad_input.data_mut(),
                false,
                self.precision,
            );
        }
    }

    fn grad_input(&self) -> &Tensor {
        &self.grad_input
    }

    fn params(&self) -> Vec<&Param> {
        std::iter::once(&self.weight).chain(&self.bias).collect()
    }

    fn params_mut(&mut self) -> Vec<&mut Param> {
        std::iter::once(&mut self.weight)
            .chain(&mut self.bias)
            .collect()
    }

    fn set_precision(&mut self, precision: Precision) {
        self.precision = precision;
    }
}
