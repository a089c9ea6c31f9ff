//! Batch normalization over the last (channel) dimension: BatchNorm2d on NHWC images,
//! BatchNorm1d on `[N, C]` features.

use super::{Context, Layer, Param, ParamKind};
use crate::engine::par::{reduce_row_blocks, CHUNK};
use crate::engine::Tensor;
use rayon::prelude::*;

/// PyTorch's defaults.
pub const MOMENTUM: f32 = 0.1;
pub const EPS: f32 = 1e-5;

/// `y = gamma * (x - mean) / sqrt(var + eps) + beta`, per channel, over the `M` rows of the
/// input seen as an `M x C` matrix (`M = N*H*W` for images).
///
/// Training uses the batch mean and biased variance, and updates the running statistics as
/// PyTorch does: `running = (1 - momentum) * running + momentum * batch`, with the unbiased
/// variance `var * M / (M - 1)`. Evaluation uses the running statistics. With a single value
/// per channel (`M = 1`, e.g. a last batch of one image before BatchNorm1d) the batch variance
/// is 0 and the layer outputs `beta`; PyTorch refuses such batches, so training loops should
/// drop or merge them.
///
/// Backward (training), with `xhat = (x - mean) * inv_std`:
/// `dgamma = sum dy * xhat`, `dbeta = sum dy`,
/// `dx = gamma * inv_std / M * (M * dy - sum dy - xhat * sum(dy * xhat))`.
pub struct BatchNorm {
    channels: usize,
    gamma: Param,
    beta: Param,
    running_mean: Param,
    running_var: Param,
    /// Mean and `1 / sqrt(var + eps)` used by the last forward (batch or running).
    mean: Vec<f32>,
    inv_std: Vec<f32>,
    used_batch_stats: bool,
    output: Tensor,
    grad_input: Tensor,
}

impl BatchNorm {
    /// A layer named `name` (`{name}.weight`, `.bias`, `.running_mean`, `.running_var`).
    pub fn new(name: &str, channels: usize) -> Self {
        let param = |suffix: &str, kind, value: f32| {
            Param::new(
                format!("{name}.{suffix}"),
                kind,
                &[channels],
                vec![value; channels],
            )
        };
        Self {
            channels,
            gamma: param("weight", ParamKind::NormScale, 1.0),
            beta: param("bias", ParamKind::NormShift, 0.0),
            running_mean: param("running_mean", ParamKind::Buffer, 0.0),
            running_var: param("running_var", ParamKind::Buffer, 1.0),
            mean: vec![0.0; channels],
            inv_std: vec![0.0; channels],
            used_batch_stats: false,
            output: Tensor::default(),
            grad_input: Tensor::default(),
        }
    }

    /// Batch mean and biased variance per channel (two passes, for accuracy).
    fn batch_stats(&self, x: &[f32]) -> (Vec<f32>, Vec<f64>) {
        let c = self.channels;
        let rows = x.len() / c;
        let sums = reduce_row_blocks(rows, c, |r, acc| {
            for row in x[r.start * c..r.end * c].chunks_exact(c) {
                acc.iter_mut().zip(row).for_each(|(a, &v)| *a += v);
            }
        });
        let mean: Vec<f32> = sums.iter().map(|s| (s / rows as f64) as f32).collect();
        let squares = reduce_row_blocks(rows, c, |r, acc| {
            for row in x[r.start * c..r.end * c].chunks_exact(c) {
                for ((a, &v), &m) in acc.iter_mut().zip(row).zip(&mean) {
                    *a += (v - m) * (v - m);
                }
            }
        });
        let var = squares.iter().map(|s| s / rows as f64).collect();
        (mean, var)
    }

    fn update_running_stats(&mut self, mean: &[f32], var: &[f64], rows: usize) {
        let unbias = rows as f64 / (rows.max(2) - 1) as f64;
        for ch in 0..self.channels {
            let rm = &mut self.running_mean.value[ch];
            *rm = (1.0 - MOMENTUM) * *rm + MOMENTUM * mean[ch];
            let rv = &mut self.running_var.value[ch];
            *rv = (1.0 - MOMENTUM) * *rv + MOMENTUM * (var[ch] * unbias) as f32;
        }
    }
}

impl Layer for BatchNorm {
    fn forward(&mut self, input: &Tensor, ctx: &mut Context) {
        let c = self.channels;
        self.used_batch_stats = ctx.training;
        if ctx.training {
            let (mean, var) = self.batch_stats(input.data());
            self.update_running_stats(&mean, &var, input.len() / c);
            self.inv_std = var
                .iter()
                .map(|v| 1.0 / ((*v as f32) + EPS).sqrt())
                .collect();
            self.mean = mean;
        } else {
            self.mean.copy_from_slice(&self.running_mean.value);
            for (s, v) in self.inv_std.iter_mut().zip(&self.running_var.value) {
                *s = 1.0 / (v + EPS).sqrt();
            }
        }
        // y = x * scale + shift, folded per channel.
        let scale: Vec<f32> = self
            .gamma
            .value
            .iter()
            .zip(&self.inv_std)
            .map(|(g, s)| g * s)
            .collect();
        let shift: Vec<f32> = (0..c)
            .map(|ch| self.beta.value[ch] - self.mean[ch] * scale[ch])
            .collect();
        self.output.reshape_for(input.shape());
        let rows_per_task = (CHUNK / c).max(1) * c;
        self.output
            .data_mut()
            .par_chunks_mut(rows_per_task)
            .zip(input.data().par_chunks(rows_per_task))
            .for_each(|(y, x)| {
                for (y, x) in y.chunks_exact_mut(c).zip(x.chunks_exact(c)) {
                    for ch in 0..c {
                        y[ch] = x[ch] * scale[ch] + shift[ch];
                    }
                }
            });
    }

    fn output(&self) -> &Tensor {
        &self.output
    }

    fn backward(&mut self, input: &Tensor, grad_output: &Tensor, need_grad_input: bool) {
        let c = self.channels;
        let rows = input.len() / c;
        let (x, dy) = (input.data(), grad_output.data());
        let (mean, inv_std) = (&self.mean, &self.inv_std);
        // Per channel: [sum dy, sum dy * xhat].
        let sums = reduce_row_blocks(rows, 2 * c, |r, acc| {
            let (sum_dy, sum_dy_xhat) = acc.split_at_mut(c);
            let rows_x = x[r.start * c..r.end * c].chunks_exact(c);
            for (xr, dyr) in rows_x.zip(dy[r.start * c..r.end * c].chunks_exact(c)) {
                for ch in 0..c {
                    sum_dy[ch] += dyr[ch];
                    sum_dy_xhat[ch] += dyr[ch] * (xr[ch] - mean[ch]) * inv_std[ch];
                }
            }
        });
        let (sum_dy, sum_dy_xhat) = sums.split_at(c);
        for ch in 0..c {
            self.beta.grad[ch] = sum_dy[ch] as f32;
            self.gamma.grad[ch] = sum_dy_xhat[ch] as f32;
        }
        if !need_grad_input {
            return;
        }
        let m = rows as f32;
        let gamma_inv_std: Vec<f32> = self
            .gamma
            .value
            .iter()
            .zip(inv_std)
            .map(|(g, s)| g * s)
            .collect();
        // Per channel: dx = k * dy + a + b * x (training) or k * dy (evaluation).
        let (a, b): (Vec<f32>, Vec<f32>) = if self.used_batch_stats {
            (0..c)
                .map(|ch| {
                    let mean_dy = sum_dy[ch] as f32 / m;
                    let mean_dy_xhat = sum_dy_xhat[ch] as f32 / m;
                    let b = -gamma_inv_std[ch] * mean_dy_xhat * inv_std[ch];
                    (-gamma_inv_std[ch] * mean_dy - b * mean[ch], b)
                })
                .unzip()
        } else {
            (vec![0.0; c], vec![0.0; c])
        };
        self.grad_input.reshape_for(input.shape());
        let rows_per_task = (CHUNK / c).max(1) * c;
        self.grad_input
            .data_mut()
            .par_chunks_mut(rows_per_task)
            .zip(x.par_chunks(rows_per_task))
            .zip(dy.par_chunks(rows_per_task))
            .for_each(|((dx, x), dy)| {
                let rows = dx
                    .chunks_exact_mut(c)
                    .zip(x.chunks_exact(c))
                    .zip(dy.chunks_exact(c));
                for ((dx, x), dy) in rows {
                    for ch in 0..c {
                        dx[ch] = gamma_inv_std[ch] * dy[ch] + a[ch] + b[ch] * x[ch];
                    }
                }
            });
    }

    fn grad_input(&self) -> &Tensor {
        &self.grad_input
    }

    fn params(&self) -> Vec<&Param> {
        vec![
            &self.gamma,
            &self.beta,
            &self.running_mean,
            &self.running_var,
        ]
    }

    fn params_mut(&mut self) -> Vec<&mut Param> {
        vec![
            &mut self.gamma,
            &mut self.beta,
            &mut self.running_mean,
            &mut self.running_var,
        ]
    }
}
