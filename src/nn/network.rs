//! A sequential network built from a [`ModelSpec`].

use super::{Context, Layer, ModelSpec, Param};
use crate::engine::{Precision, Tensor};

/// Layers applied in order; built by [`ModelSpec::build`].
pub struct Network {
    spec: ModelSpec,
    layers: Vec<Box<dyn Layer>>,
    /// What each built layer computes (one spec layer, or two fused into one pass).
    labels: Vec<String>,
    classes: usize,
    /// Per layer: seconds spent in forward and in backward, when profiling is on.
    profile: Option<Vec<[f64; 2]>>,
}

impl Network {
    pub(super) fn new(
        spec: ModelSpec,
        layers: Vec<Box<dyn Layer>>,
        labels: Vec<String>,
        classes: usize,
    ) -> Self {
        Self {
            spec,
            layers,
            labels,
            classes,
            profile: None,
        }
    }

    /// Starts timing every layer's forward and backward pass (see [`Network::profile`]).
    pub fn enable_profiling(&mut self) {
        self.profile = Some(vec![[0.0; 2]; self.layers.len()]);
    }

    /// Seconds spent per layer in forward and backward since profiling was enabled, with a
    /// label per layer (its spec entry, e.g. `Conv2d conv1`).
    pub fn profile(&self) -> Option<Vec<(String, [f64; 2])>> {
        let times = self.profile.as_ref()?;
        Some(
            self.labels
                .iter()
                .cloned()
                .zip(times.iter().copied())
                .collect(),
        )
    }

    fn record(&mut self, layer: usize, pass: usize, start: Option<std::time::Instant>) {
        if let (Some(times), Some(start)) = (&mut self.profile, start) {
            times[layer][pass] += start.elapsed().as_secs_f64();
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
        for i in 0..self.layers.len() {
            let start = self.profile.is_some().then(std::time::Instant::now);
            let (before, rest) = self.layers.split_at_mut(i);
            let layer_input = before.last().map_or(input, |l| l.output());
            rest[0].forward(layer_input, ctx);
            self.record(i, 0, start);
        }
        self.layers.last().map_or(input, |l| l.output())
    }

    /// Back-propagates dLoss/dScores through the layers of the last [`Network::forward`],
    /// writing every parameter's gradient. `input` must be the batch given to that forward.
    pub fn backward(&mut self, input: &Tensor, grad_scores: &Tensor) {
        for i in (0..self.layers.len()).rev() {
            let (before, rest) = self.layers.split_at_mut(i);
            let (layer, after) = rest.split_first_mut().expect("index in range");
            let layer_input = before.last().map_or(input, |l| l.output());
            let grad_output = after.first().map_or(grad_scores, |l| l.grad_input());
            let start = self.profile.is_some().then(std::time::Instant::now);
            layer.backward(layer_input, grad_output, i > 0);
            self.record(i, 1, start);
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

    /// Sets how every convolution and linear layer multiplies (fp32 when built).
    pub fn set_precision(&mut self, precision: Precision) {
        for layer in &mut self.layers {
            layer.set_precision(precision);
        }
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
