//! One training step on one batch: forward, cross-entropy loss, backward, optimizer step.
//!
//! Training, `regstudy bench` and the engine tests all step through [`TrainStep::run`], so
//! the order of the stages, and where the regularizers enter (their non-element-wise
//! gradients before the optimizer's update, their element-wise terms inside it through
//! [`crate::optim::StepHook`], their proximal steps and masks after it), is written once.

use crate::engine::Tensor;
use crate::nn::{cross_entropy, Context, Network};
use crate::optim::Optimizer;
use crate::regularize::Regularizers;

/// What one step measured on its batch, before the update.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepResult {
    /// Mean cross-entropy over the batch.
    pub loss: f64,
    /// Images whose highest score is their label.
    pub correct: usize,
    /// Images in the batch.
    pub images: usize,
}

/// A loss that is not a finite number: the step stopped before the backward pass, so the
/// weights are those the loss was computed with.
#[derive(Clone, Copy, Debug, PartialEq, thiserror::Error)]
#[error("the training loss is {0}")]
pub struct NonFiniteLoss(pub f64);

/// A training step, with the buffer of the loss's gradient that it reuses from batch to
/// batch.
#[derive(Debug, Default)]
pub struct TrainStep {
    /// dLoss/dScores of the last batch.
    grad: Tensor,
}

impl TrainStep {
    pub fn new() -> Self {
        Self::default()
    }

    /// One step of `optimizer` on the batch (`images` `[n, h, w, c]`, one label each):
    ///
    /// ```text
    /// scores = net(images)                       forward, in ctx's mode (dropout, batch norm)
    /// loss   = mean_i -log softmax(scores_i)[y_i]
    /// grads  = dloss/dparams                     backward
    /// params = optimizer(params, grads, hook)    the update, penalties folded in by hook
    /// ```
    ///
    /// A non-finite loss returns [`NonFiniteLoss`] without backward pass or update, so a
    /// diverged run keeps the last finite weights.
    pub fn run(
        &mut self,
        net: &mut Network,
        optimizer: &mut dyn Optimizer,
        regularizers: &mut Regularizers,
        ctx: &mut Context,
        images: &Tensor,
        labels: &[u32],
    ) -> Result<StepResult, NonFiniteLoss> {
        let out = cross_entropy(net.forward(images, ctx), labels, &mut self.grad);
        if !out.loss.is_finite() {
            return Err(NonFiniteLoss(out.loss));
        }
        net.backward(images, &self.grad);
        let mut params = net.params_mut();
        regularizers.add_gradients(&mut params);
        optimizer.step(&mut params, regularizers);
        regularizers.after_step(&mut params, optimizer);
        Ok(StepResult {
            loss: out.loss,
            correct: out.correct,
            images: labels.len(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Rng;
    use crate::nn::spec::InputShape;
    use crate::nn::Init;
    use crate::optim::SgdConfig;
    use crate::regularize::Regularizers;

    fn tiny_net() -> Network {
        let input = InputShape {
            channels: 1,
            height: 8,
            width: 8,
        };
        crate::models::by_name("simple-cnn", input, 3)
            .expect("a zoo model")
            .build(Init::Pytorch, 0)
            .expect("builds")
    }

    fn batch() -> (Tensor, Vec<u32>) {
        let mut rng = Rng::new(5);
        let x = (0..4 * 8 * 8).map(|_| rng.next_f32()).collect();
        (
            Tensor::from_vec(&[4, 8, 8, 1], x).unwrap(),
            vec![0, 1, 2, 1],
        )
    }

    fn weights(net: &Network) -> Vec<Vec<f32>> {
        net.params().iter().map(|p| p.value.clone()).collect()
    }

    #[test]
    fn repeated_steps_on_one_batch_lower_its_loss() {
        let mut net = tiny_net();
        let mut optimizer = SgdConfig::new(0.05).init();
        let mut ctx = Context::train(Rng::new(1));
        let (x, y) = batch();
        let mut step = TrainStep::new();
        let first = step
            .run(
                &mut net,
                &mut optimizer,
                &mut Regularizers::default(),
                &mut ctx,
                &x,
                &y,
            )
            .unwrap();
        assert_eq!(first.images, 4);
        assert!(first.correct <= 4);
        let mut last = first;
        for _ in 0..20 {
            last = step
                .run(
                    &mut net,
                    &mut optimizer,
                    &mut Regularizers::default(),
                    &mut ctx,
                    &x,
                    &y,
                )
                .unwrap();
        }
        assert!(
            last.loss < first.loss,
            "loss {} after 20 steps, {} before",
            last.loss,
            first.loss
        );
    }

    #[test]
    fn a_non_finite_loss_leaves_the_weights_untouched() {
        let mut net = tiny_net();
        for p in net.params_mut() {
            if p.kind.is_trainable() {
                p.value.iter_mut().for_each(|v| *v = f32::NAN);
            }
        }
        let before = weights(&net);
        let mut optimizer = SgdConfig::new(0.05).init();
        let mut ctx = Context::train(Rng::new(1));
        let (x, y) = batch();
        let result = TrainStep::new().run(
            &mut net,
            &mut optimizer,
            &mut Regularizers::default(),
            &mut ctx,
            &x,
            &y,
        );
        assert!(
            matches!(result, Err(NonFiniteLoss(loss)) if loss.is_nan()),
            "{result:?}"
        );
        let after = weights(&net);
        let same = before
            .iter()
            .flatten()
            .zip(after.iter().flatten())
            .all(|(a, b)| a.to_bits() == b.to_bits());
        assert!(same, "the weights changed");
    }
}
