//! ResNet-18 (He et al. 2016) in its CIFAR form.

use crate::nn::spec::InputShape;
use crate::nn::{LayerSpec, ModelSpec};

/// ResNet-18 for small images (CIFAR): a 3x3 stride-1 stem (64 channels, no bias) with batch
/// norm and ReLU and no max-pool, then [`stages`]. Names follow torchvision (`conv1`, `bn1`,
/// `layer1.0.conv1`, ..., `fc`).
pub fn resnet18_cifar(input: InputShape, classes: usize) -> ModelSpec {
    let stem = vec![
        stem_conv(3, 1, 1),
        LayerSpec::BatchNorm2d { name: "bn1".into() },
        LayerSpec::Relu,
    ];
    resnet18(stem, "resnet18", input, classes)
}

/// ResNet-18 with torchvision's ImageNet stem: a 7x7 stride-2 convolution (padding 3), batch
/// norm, ReLU and a 3x3 stride-2 max-pool (padding 1), then [`stages`]; a 64x64 Tiny-ImageNet
/// image reaches the first stage at 16x16 and the last at 2x2.
pub fn resnet18_imagenet(input: InputShape, classes: usize) -> ModelSpec {
    let stem = vec![
        stem_conv(7, 2, 3),
        LayerSpec::BatchNorm2d { name: "bn1".into() },
        LayerSpec::Relu,
        LayerSpec::MaxPool2d {
            kernel_size: 3,
            stride: Some(2),
            padding: 1,
        },
    ];
    resnet18(stem, "resnet18-imagenet", input, classes)
}

fn stem_conv(kernel_size: usize, stride: usize, padding: usize) -> LayerSpec {
    LayerSpec::Conv2d {
        name: "conv1".into(),
        out_channels: 64,
        kernel_size,
        stride,
        padding,
        bias: false,
    }
}

/// Four stages of two basic blocks (64, 128, 256, 512 channels; stages 2-4 halve the resolution
/// in their first block), global average pooling and a linear classifier.
fn stages() -> Vec<LayerSpec> {
    let mut layers = Vec::new();
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
    layers
}

fn resnet18(stem: Vec<LayerSpec>, name: &str, input: InputShape, classes: usize) -> ModelSpec {
    let mut layers = stem;
    layers.extend(stages());
    layers.push(LayerSpec::Linear {
        name: "fc".into(),
        out_features: classes,
        bias: true,
    });
    ModelSpec {
        name: name.into(),
        input,
        layers,
    }
}
