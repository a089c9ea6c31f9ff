//! The CIFAR-10 study's network.

use super::build::{conv, linear, max_pool};
use crate::nn::spec::InputShape;
use crate::nn::{LayerSpec, ModelSpec};

/// Conv 3x3 32 (padding 1) + ReLU, max-pool 2, conv 3x3 64 + ReLU, max-pool 2, linear 128 +
/// ReLU, linear to the classes. 545,098 parameters on CIFAR-10.
pub fn simple_cnn(input: InputShape, classes: usize) -> ModelSpec {
    ModelSpec {
        name: "simple-cnn".into(),
        input,
        layers: vec![
            conv("conv1", 32, 3, 1),
            LayerSpec::Relu,
            max_pool(2),
            conv("conv2", 64, 3, 1),
            LayerSpec::Relu,
            max_pool(2),
            LayerSpec::Flatten,
            linear("fc1", 128),
            LayerSpec::Relu,
            linear("fc2", classes),
        ],
    }
}
