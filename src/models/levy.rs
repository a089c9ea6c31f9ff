//! The Tiny-ImageNet study's two networks ("Initial Model" and "New Model").

use super::build::{avg_pool, conv, linear, max_pool};
use crate::nn::spec::InputShape;
use crate::nn::{LayerSpec, ModelSpec};

/// Conv 3x3 10 + ReLU, avg-pool 2, conv 3x3 20 + ReLU, avg-pool 2, linear 2000 + ReLU, linear
/// to the classes (all convolutions padded by 1). On 64x64 inputs the first linear layer sees
/// 20 * 16 * 16 = 5120 features.
pub fn levy_initial(input: InputShape, classes: usize) -> ModelSpec {
    ModelSpec {
        name: "levy-initial".into(),
        input,
        layers: vec![
            conv("conv1", 10, 3, 1),
            LayerSpec::Relu,
            avg_pool(2),
            conv("conv2", 20, 3, 1),
            LayerSpec::Relu,
            avg_pool(2),
            LayerSpec::Flatten,
            linear("fc1", 2000),
            LayerSpec::Relu,
            linear("fc2", classes),
        ],
    }
}

/// Conv 3x3 10 + ReLU, avg-pool 2, conv 3x3 20 + ReLU, max-pool 2, conv 3x3 30 + ReLU, max-pool
/// 2, dropout 0.2, linear 1000 + ReLU, linear to the classes. On 64x64 inputs the first linear
/// layer sees 30 * 8 * 8 = 1920 features.
pub fn levy_new(input: InputShape, classes: usize) -> ModelSpec {
    ModelSpec {
        name: "levy-new".into(),
        input,
        layers: vec![
            conv("conv1", 10, 3, 1),
            LayerSpec::Relu,
            avg_pool(2),
            conv("conv2", 20, 3, 1),
            LayerSpec::Relu,
            max_pool(2),
            conv("conv3", 30, 3, 1),
            LayerSpec::Relu,
            max_pool(2),
            LayerSpec::Flatten,
            LayerSpec::Dropout { p: 0.2 },
            linear("fc1", 1000),
            LayerSpec::Relu,
            linear("fc2", classes),
        ],
    }
}
