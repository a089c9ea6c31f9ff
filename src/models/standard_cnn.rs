//! The L2 / dropout / batch-norm study's network: a small VGG-style CNN with two switches.

use super::build::{linear, max_pool};
use crate::nn::spec::InputShape;
use crate::nn::{LayerSpec, ModelSpec};

/// The switches of [`standard_cnn`].
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct StandardCnnOptions {
    /// Batch norm after every convolution (before its ReLU); the convolutions then have no
    /// bias, since the norm's shift replaces it.
    pub batch_norm: bool,
    /// Drop probability of the dropout layer before the classifier; 0 leaves the layer out.
    pub dropout: f32,
}

/// Three VGG blocks, each two 3x3 convolutions (padding 1) with ReLU and a 2x2 max-pool, of
/// 32, 64 and 128 channels; then flatten, linear 128 + ReLU, dropout `p`, linear to the classes.
///
/// Exact layers (`[bn]` only with batch norm, `[dropout]` only when `p > 0`):
///
/// ```text
/// conv1_1 3x3 32  [bn1_1] relu   conv1_2 3x3 32  [bn1_2] relu   max-pool 2
/// conv2_1 3x3 64  [bn2_1] relu   conv2_2 3x3 64  [bn2_2] relu   max-pool 2
/// conv3_1 3x3 128 [bn3_1] relu   conv3_2 3x3 128 [bn3_2] relu   max-pool 2
/// flatten   fc1 128 relu   [dropout p]   fc2 classes
/// ```
///
/// On 32x32 inputs the first linear layer sees 128 * 4 * 4 = 2048 features; on 28x28 inputs
/// 128 * 3 * 3 = 1152.
pub fn standard_cnn(input: InputShape, classes: usize, options: StandardCnnOptions) -> ModelSpec {
    let mut layers = Vec::new();
    for (block, channels) in [32, 64, 128].into_iter().enumerate() {
        for conv in 1..=2 {
            let id = format!("{}_{conv}", block + 1);
            layers.push(LayerSpec::Conv2d {
                name: format!("conv{id}"),
                out_channels: channels,
                kernel_size: 3,
                stride: 1,
                padding: 1,
                bias: !options.batch_norm,
            });
            if options.batch_norm {
                layers.push(LayerSpec::BatchNorm2d {
                    name: format!("bn{id}"),
                });
            }
            layers.push(LayerSpec::Relu);
        }
        layers.push(max_pool(2));
    }
    layers.extend([LayerSpec::Flatten, linear("fc1", 128), LayerSpec::Relu]);
    if options.dropout > 0.0 {
        layers.push(LayerSpec::Dropout { p: options.dropout });
    }
    layers.push(linear("fc2", classes));
    ModelSpec {
        name: "standard-cnn".into(),
        input,
        layers,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::Init;

    #[test]
    fn switches_add_batch_norm_and_dropout() {
        let input = InputShape {
            channels: 3,
            height: 32,
            width: 32,
        };
        let plain = standard_cnn(input, 10, StandardCnnOptions::default());
        let both = standard_cnn(
            input,
            10,
            StandardCnnOptions {
                batch_norm: true,
                dropout: 0.5,
            },
        );
        assert_eq!(plain.layers.len(), 6 * 2 + 3 + 4);
        assert_eq!(both.layers.len(), plain.layers.len() + 6 + 1);
        let net = plain.build(Init::Pytorch, 0).unwrap();
        // Convolutions: 896 + 9248 + 18496 + 36928 + 73856 + 147584; linear: 262272 + 1290.
        assert_eq!(net.trainable_count(), 550_570);
        assert!(both.build(Init::Pytorch, 0).is_ok());
    }
}
