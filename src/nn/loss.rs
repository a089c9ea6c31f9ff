//! Softmax cross-entropy, the training loss of every source study.

use crate::engine::Tensor;
use rayon::prelude::*;

/// Mean loss and number of correct predictions over a batch.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LossOutput {
    /// `-(1/N) * sum_i log softmax(z_i)[y_i]`.
    pub loss: f64,
    /// Rows whose largest logit (the first, on ties) is at the label.
    pub correct: usize,
}

/// Computes the mean softmax cross-entropy of `logits` (`[N, classes]`) against `labels`, and
/// writes dLoss/dLogits `= (softmax(z) - onehot(y)) / N` into `grad`.
///
/// Uses the log-sum-exp shift by the row maximum, so large logits do not overflow. A NaN or
/// +inf logit yields a non-finite loss, which the caller reports as divergence (a -inf logit
/// away from the label leaves the loss finite, as in PyTorch).
///
/// # Panics
/// If a label is not below the number of classes: data sets are checked against the model's
/// classes before training, so this is a programming error.
pub fn cross_entropy(logits: &Tensor, labels: &[u32], grad: &mut Tensor) -> LossOutput {
    let n = logits.batch();
    let classes = logits.item_len();
    assert_eq!(labels.len(), n, "one label per row");
    grad.reshape_for(logits.shape());
    let inv_n = 1.0 / n as f32;
    let per_row: Vec<(f64, bool)> = grad
        .data_mut()
        .par_chunks_mut(classes)
        .zip(logits.data().par_chunks(classes))
        .zip(labels.par_iter())
        .map(|((g, z), &y)| {
            let y = y as usize;
            assert!(y < classes, "label {y} with {classes} classes");
            let (argmax, max) =
                z.iter()
                    .enumerate()
                    .fold((0, f32::NEG_INFINITY), |(bi, bv), (i, &v)| {
                        if v > bv {
                            (i, v)
                        } else {
                            (bi, bv)
                        }
                    });
            let mut sum = 0.0f64;
            for (g, &v) in g.iter_mut().zip(z) {
                let e = ((v - max) as f64).exp();
                *g = e as f32;
                sum += e;
            }
            for g in g.iter_mut() {
                *g = (*g as f64 / sum) as f32 * inv_n;
            }
            g[y] -= inv_n;
            let loss = sum.ln() - (z[y] - max) as f64;
            (loss, argmax == y)
        })
        .collect();
    LossOutput {
        loss: per_row.iter().map(|r| r.0).sum::<f64>() / n as f64,
        correct: per_row.iter().filter(|r| r.1).count(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uniform_logits_give_log_of_the_class_count() {
        let logits = Tensor::zeros(&[2, 4]);
        let mut grad = Tensor::default();
        let out = cross_entropy(&logits, &[1, 3], &mut grad);
        assert!((out.loss - 4f64.ln()).abs() < 1e-7);
        // (1/4 - 1) / 2 at the label, 1/4 / 2 elsewhere.
        assert!((grad.data()[1] + 0.375).abs() < 1e-7);
        assert!((grad.data()[0] - 0.125).abs() < 1e-7);
    }

    #[test]
    fn huge_logits_do_not_overflow() {
        let logits = Tensor::from_vec(&[1, 2], vec![1000.0, 0.0]).unwrap();
        let mut grad = Tensor::default();
        let out = cross_entropy(&logits, &[0], &mut grad);
        assert!(out.loss.is_finite() && out.loss < 1e-6);
        assert_eq!(out.correct, 1);
    }

    #[test]
    fn gradient_matches_finite_differences() {
        let z = vec![0.3, -1.2, 2.0, 0.7, 0.1, -0.4];
        let labels = [2, 0];
        let mut grad = Tensor::default();
        let logits = Tensor::from_vec(&[2, 3], z.clone()).unwrap();
        cross_entropy(&logits, &labels, &mut grad);
        let mut scratch = Tensor::default();
        for i in 0..z.len() {
            let mut eval = |delta: f32| {
                let mut zz = z.clone();
                zz[i] += delta;
                let t = Tensor::from_vec(&[2, 3], zz).unwrap();
                cross_entropy(&t, &labels, &mut scratch).loss
            };
            let fd = (eval(1e-3) - eval(-1e-3)) / 2e-3;
            assert!((fd - grad.data()[i] as f64).abs() < 1e-4, "{i}: {fd}");
        }
    }
}
