//! A sequential network built from a [`ModelSpec`].

use super::{Context, Layer, ModelSpec, Param};
use crate::engine::Tensor;

/// Layers applied in order; built by [`ModelSpec::build`].
pub struct Network {
    spec: ModelSpec,
    layers: Vec<Box<dyn Layer>>,
    classes: usize,
}

impl Network {
    pub(super) fn new(spec: ModelSpec, layers: Vec<Box<dyn Layer>>, classes: usize) -> Self {
        Self {
            spec,
            layers,
            classes,
        }
    }

    pub fn spec(&self) -> &ModelSpec {
        &self.spec
    }

    /// Number of outputs (class scores).
    pub fn classes(&self) -> usize {
        self.classes
    }

    /// The shape of one input image, NHWC order without the batch: `[H, W, C]`.
    pub fn input_shape(&self) -> [usize; 3] {
        let i = self.spec.input;
        [i.height, i.width, i.channels]
    }

    /// Runs every layer on `input` (`[N, H, W, C]`) and returns the class scores `[N, classes]`.
    ///
    /// # Panics
    /// If the input shape differs from the spec's (callers check data against the model first).
    pub fn forward<'a>(&'a mut self, input: &'a Tensor, ctx: &mut Context) -> &'a Tensor {
        assert_eq!(
            &input.shape()[1..],
            &self.input_shape()[..],
            "input shape does not match the model"
        );
        let mut x = input;
        for layer in self.layers.iter_mut() {
            layer.forward(x, ctx);
            x = layer.output();
        }
        x
    }

    /// Back-propagates dLoss/dScores through the layers of the last [`Network::forward`],
    /// writing every parameter's gradient. `input` must be the batch given to that forward.
    pub fn backward(&mut self, input: &Tensor, grad_scores: &Tensor) {
        for i in (0..self.layers.len()).rev() {
            let (before, rest) = self.layers.split_at_mut(i);
            let (layer, after) = rest.split_first_mut().expect("index in range");
            let layer_input = before.last().map_or(input, |l| l.output());
            let grad_output = after.first().map_or(grad_scores, |l| l.grad_input());
            layer.backward(layer_input, grad_output, i > 0);
        }
    }

    /// Parameters and buffers in a fixed order (the order of the spec's layers).
    pub fn params(&self) -> Vec<&Param> {
        self.layers.iter().flat_map(|l| l.params()).collect()
    }

    /// Parameters and buffers, mutably, in the same order as [`Network::params`].
    pub fn params_mut(&mut self) -> Vec<&mut Param> {
        self.layers
            .iter_mut()
            .flat_map(|l| l.params_mut())
            .collect()
    }

    /// Number of trainable values.
    pub fn trainable_count(&self) -> usize {
        self.params()
            .iter()
            .filter(|p| p.kind.is_trainable())
            .map(|p| p.len())
            .sum()
    }
}
