//! ResNet-18 (He et al. 2016) in its CIFAR form.

use crate::nn::spec::InputShape;
use crate::nn::{LayerSpec, ModelSpec};

/// ResNet-18 for small images: a 3x3 stride-1 stem (64 channels, no bias) with batch norm and
/// ReLU and no max-pool, four stages of two basic blocks (64, 128, 256, 512 channels; stages 2-4
/// halve the resolution in their first block), global average pooling and a linear classifier.
/// Names follow torchvision (`conv1`, `bn1`, `layer1.0.conv1`, ..., `fc`).
pub fn resnet18_cifar(input: InputShape, classes: usize) -> ModelSpec {
    let mut layers = vec![
        LayerSpec::Conv2d {
            name: "conv1".into(),
            out_channels: 64,
            kernel_size: 3,
            stride: 1,
            padding: 1,
            bias: false,
        },
        LayerSpec::BatchNorm2d { name: "bn1".into() },
        LayerSpec::Relu,
    ];
    for (stage, (channels, stride)) in [(64, 1), (128, 2), (256, 2), (512, 2)]
        .into_iter()
        .enumerate()
    {
        for block in 0..2 {
            layers.push(LayerSpec::BasicBlock {
                name: format!("layer{}.{block}", stage + 1),
                out_channels: channels,
                stride: if block == 0 { stride } else { 1 },
            });
        }
    }
    layers.push(LayerSpec::GlobalAvgPool);
    layers.push(LayerSpec::Linear {
        name: "fc".into(),
        out_features: classes,
        bias: true,
    });
    ModelSpec {
        name: "resnet18".into(),
        input,
        layers,
    }
}
