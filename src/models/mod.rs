//! The source studies' networks, as specs sized from the input shape and class count.

mod levy;
mod resnet;
mod simple_cnn;
mod standard_cnn;

pub use levy::{levy_initial, levy_new};
pub use resnet::{resnet18_cifar, resnet18_imagenet};
pub use simple_cnn::simple_cnn;
pub use standard_cnn::{standard_cnn, StandardCnnOptions};

use crate::nn::spec::InputShape;
use crate::nn::ModelSpec;

/// Names accepted by [`by_name`].
pub const NAMES: [&str; 6] = [
    "simple-cnn",
    "levy-initial",
    "levy-new",
    "resnet18",
    "resnet18-imagenet",
    "standard-cnn",
];

/// The zoo model `name` for images of shape `input` and `classes` classes.
pub fn by_name(name: &str, input: InputShape, classes: usize) -> Option<ModelSpec> {
    Some(match name {
        "simple-cnn" => simple_cnn(input, classes),
        "levy-initial" => levy_initial(input, classes),
        "levy-new" => levy_new(input, classes),
        "resnet18" => resnet18_cifar(input, classes),
        "resnet18-imagenet" => resnet18_imagenet(input, classes),
        "standard-cnn" => standard_cnn(input, classes, StandardCnnOptions::default()),
        _ => return None,
    })
}

/// Shorthands for the zoo's layer lists.
mod build {
    use crate::nn::LayerSpec;

    pub fn conv(name: &str, out_channels: usize, kernel_size: usize, padding: usize) -> LayerSpec {
        LayerSpec::Conv2d {
            name: name.into(),
            out_channels,
            kernel_size,
            stride: 1,
            padding,
            bias: true,
        }
    }

    pub fn linear(name: &str, out_features: usize) -> LayerSpec {
        LayerSpec::Linear {
            name: name.into(),
            out_features,
            bias: true,
        }
    }

    pub fn max_pool(kernel_size: usize) -> LayerSpec {
        LayerSpec::MaxPool2d {
            kernel_size,
            stride: None,
            padding: 0,
        }
    }

    pub fn avg_pool(kernel_size: usize) -> LayerSpec {
        LayerSpec::AvgPool2d {
            kernel_size,
            stride: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::Init;

    #[test]
    fn every_zoo_model_builds_for_its_papers_input() {
        let cifar = InputShape {
            channels: 3,
            height: 32,
            width: 32,
        };
        let tiny = InputShape {
            channels: 3,
            height: 64,
            width: 64,
        };
        let cases = [
            ("simple-cnn", cifar, 10, 545_098),
            ("levy-initial", tiny, 200, 10_644_300),
            ("levy-new", tiny, 200, 2_128_730),
            ("resnet18", cifar, 10, 11_173_962),
            // torchvision.models.resnet18(num_classes=200): 11,689,512 - 1000 * 513 + 200 * 513.
            ("resnet18-imagenet", tiny, 200, 11_279_112),
        ];
        for (name, input, classes, trainable) in cases {
            let net = by_name(name, input, classes)
                .unwrap()
                .build(Init::Pytorch, 0)
                .unwrap();
            // Counts are those of the same networks in PyTorch (sum of p.numel()).
            assert_eq!(net.trainable_count(), trainable, "{name}");
            assert_eq!(net.classes(), classes);
        }
        assert!(by_name("vgg99", cifar, 10).is_none());
    }

    #[test]
    fn zoo_models_resize_to_other_data_sets() {
        let mnist = InputShape {
            channels: 1,
            height: 28,
            width: 28,
        };
        for name in NAMES {
            let spec = by_name(name, mnist, 10).unwrap();
            assert!(spec.build(Init::Pytorch, 0).is_ok(), "{name}");
        }
    }
}
