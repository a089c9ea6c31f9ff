//! Models as data: a list of named layers from which a [`Network`] is built.
//!
//! The model zoo and users' TOML files describe networks the same way, e.g.
//!
//! ```toml
//! name = "tiny"
//! input = { channels = 1, height = 28, width = 28 }
//! [[layers]]
//! type = "conv2d"
//! name = "conv1"
//! out_channels = 8
//! kernel_size = 3
//! padding = 1
//! [[layers]]
//! type = "relu"
//! [[layers]]
//! type = "max_pool2d"
//! kernel_size = 2
//! [[layers]]
//! type = "flatten"
//! [[layers]]
//! type = "linear"
//! name = "fc"
//! out_features = 10
//! ```

use super::{
    AvgPool2d, BasicBlock, BatchNorm, Conv2d, Dropout, Flatten, GlobalAvgPool, Init, Layer, Linear,
    MaxPool2d, Network, Relu,
};
use crate::nn::conv2d::{images_per_block, runs_in_blocks, Conv2dConfig};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;

/// The shape of one input image.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputShape {
    pub channels: usize,
    pub height: usize,
    pub width: usize,
}

impl std::fmt::Display for InputShape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = if self.channels == 1 { "" } else { "s" };
        write!(
            f,
            "{} channel{s} of {}x{} pixels",
            self.channels, self.height, self.width
        )
    }
}

/// A sequential network: an input shape and layers applied in order. The last layer must
/// produce one value per class.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSpec {
    pub name: String,
    pub input: InputShape,
    pub layers: Vec<LayerSpec>,
}

fn one() -> usize {
    1
}

fn yes() -> bool {
    true
}

/// One layer of a [`ModelSpec`]. Layers with parameters carry the name that prefixes their
/// parameters (PyTorch's module path, e.g. `conv1` or `layer1.0`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum LayerSpec {
    /// Square-kernel convolution (`stride` 1, `padding` 0, `bias` true by default).
    Conv2d {
        name: String,
        out_channels: usize,
        kernel_size: usize,
        #[serde(default = "one")]
        stride: usize,
        #[serde(default)]
        padding: usize,
        #[serde(default = "yes")]
        bias: bool,
    },
    /// Fully connected layer on flat features (`bias` true by default).
    Linear {
        name: String,
        out_features: usize,
        #[serde(default = "yes")]
        bias: bool,
    },
    Relu,
    /// Max pooling; `stride` defaults to `kernel_size` and `padding` (an implicit -inf border,
    /// at most half the kernel) to 0, as in PyTorch.
    MaxPool2d {
        kernel_size: usize,
        stride: Option<usize>,
        #[serde(default)]
        padding: usize,
    },
    /// Average pooling; `stride` defaults to `kernel_size`.
    AvgPool2d {
        kernel_size: usize,
        stride: Option<usize>,
    },
    /// Mean over each channel's pixels: `[N, H, W, C] -> [N, C]`.
    GlobalAvgPool,
    BatchNorm2d {
        name: String,
    },
    BatchNorm1d {
        name: String,
    },
    /// Inverted dropout with drop probability `p` in [0, 1).
    Dropout {
        p: f32,
    },
    /// Images to feature vectors, in PyTorch's `(c, h, w)` order.
    Flatten,
    /// ResNet basic block (two 3x3 convolutions with batch norm, projection shortcut when the
    /// shape changes).
    BasicBlock {
        name: String,
        out_channels: usize,
        #[serde(default = "one")]
        stride: usize,
    },
}

/// A model spec that cannot be built.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ModelSpecError {
    #[error("layer {index} ({layer}): {problem}")]
    Layer {
        index: usize,
        layer: String,
        problem: String,
    },
    #[error("name `{0}` is used by two layers or parameters")]
    DuplicateName(String),
    #[error("input {field} must be at least 1")]
    EmptyInput { field: &'static str },
    #[error("the model has no layers")]
    Empty,
    #[error("the last layer must output flat class scores, but it outputs {0}")]
    NotFlatOutput(String),
}

/// The shape flowing between layers, without the batch dimension.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Shape {
    Image { h: usize, w: usize, c: usize },
    Flat(usize),
}

impl std::fmt::Display for Shape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Shape::Image { h, w, c } => write!(f, "{c} channels of {h}x{w}"),
            Shape::Flat(n) => write!(f, "{n} flat features"),
        }
    }
}

impl LayerSpec {
    fn label(&self) -> String {
        match self {
            LayerSpec::Conv2d { name, .. }
            | LayerSpec::Linear { name, .. }
            | LayerSpec::BatchNorm2d { name }
            | LayerSpec::BatchNorm1d { name }
            | LayerSpec::BasicBlock { name, .. } => format!("`{name}`"),
            other => format!("{other:?}")
                .split([' ', '{'])
                .next()
                .unwrap_or("")
                .to_lowercase(),
        }
    }

    /// A short description, e.g. `conv2d conv1` or `max_pool2d`.
    pub fn describe(&self) -> String {
        let kind = format!("{self:?}");
        let kind = kind.split([' ', '{', '(']).next().unwrap_or("");
        match self.name() {
            Some(name) => format!("{kind} {name}"),
            None => kind.to_string(),
        }
    }

    fn name(&self) -> Option<&str> {
        match self {
            LayerSpec::Conv2d { name, .. }
            | LayerSpec::Linear { name, .. }
            | LayerSpec::BatchNorm2d { name }
            | LayerSpec::BatchNorm1d { name }
            | LayerSpec::BasicBlock { name, .. } => Some(name),
            _ => None,
        }
    }

    /// Checks the layer against an input of shape `input` and works out, without allocating,
    /// its output shape and what it holds in memory (see [`MemoryEstimate`]).
    fn plan(&self, input: Shape) -> Result<Footprint, String> {
        let image = || match input {
            Shape::Image { h, w, c } => Ok((h, w, c)),
            Shape::Flat(_) => Err(format!("needs an image input, got {input}")),
        };
        let flat = || match input {
            Shape::Flat(n) => Ok(n),
            Shape::Image { .. } => Err(format!(
                "needs flat features, got {input} (add a flatten layer)"
            )),
        };
        let positive = |what: &str, v: usize| {
            if v == 0 {
                Err(format!("{what} must be at least 1"))
            } else {
                Ok(v)
            }
        };
        // Most layers keep one output per image; those that keep more say so below.
        let same = |out: Shape, params: usize, copies: usize| Footprint {
            out,
            params,
            stored: copies.saturating_mul(out.len()),
            patches: 0,
        };
        Ok(match *self {
            LayerSpec::Conv2d {
                out_channels,
                kernel_size,
                stride,
                padding,
                bias,
                ..
            } => {
                let (h, w, c) = image()?;
                positive("out_channels", out_channels)?;
                positive("kernel_size", kernel_size)?;
                positive("stride", stride)?;
                let weights = parameter_size(&[out_channels, c, kernel_size, kernel_size])?;
                let (oh, ow) = (
                    window_out(padded(h, padding)?, kernel_size, stride)?,
                    window_out(padded(w, padding)?, kernel_size, stride)?,
                );
                let pointwise = kernel_size == 1 && stride == 1 && padding == 0;
                let out = Shape::Image {
                    h: oh,
                    w: ow,
                    c: out_channels,
                };
                Footprint {
                    patches: if pointwise {
                        0
                    } else {
                        oh.saturating_mul(ow).saturating_mul(weights / out_channels)
                    },
                    ..same(out, weights + if bias { out_channels } else { 0 }, 1)
                }
            }
            LayerSpec::Linear {
                out_features, bias, ..
            } => {
                let n = flat()?;
                positive("out_features", out_features)?;
                let weights = parameter_size(&[n, out_features])?;
                let params = weights + if bias { out_features } else { 0 };
                same(Shape::Flat(out_features), params, 1)
            }
            LayerSpec::Relu => same(input, 0, 1),
            LayerSpec::MaxPool2d {
                kernel_size,
                stride,
                padding,
            } => {
                let (h, w, c) = image()?;
                let k = positive("kernel_size", kernel_size)?;
                let s = positive("stride", stride.unwrap_or(k))?;
                if padding > k / 2 {
                    return Err(format!("padding {padding} exceeds half the kernel ({k})"));
                }
                let out = Shape::Image {
                    h: window_out(padded(h, padding)?, k, s)?,
                    w: window_out(padded(w, padding)?, k, s)?,
                    c,
                };
                // The output and the index of each window's winner.
                same(out, 0, 3)
            }
            LayerSpec::AvgPool2d {
                kernel_size,
                stride,
            } => {
                let (h, w, c) = image()?;
                let k = positive("kernel_size", kernel_size)?;
                let s = positive("stride", stride.unwrap_or(k))?;
                let out = Shape::Image {
                    h: window_out(h, k, s)?,
                    w: window_out(w, k, s)?,
                    c,
                };
                same(out, 0, 1)
            }
            LayerSpec::GlobalAvgPool => {
                let (_, _, c) = image()?;
                same(Shape::Flat(c), 0, 1)
            }
            // Scale, shift and the two running statistics; the output and the normalized
            // input.
            LayerSpec::BatchNorm2d { .. } => same(input, 4 * image()?.2, 2),
            LayerSpec::BatchNorm1d { .. } => same(input, 4 * flat()?, 2),
            LayerSpec::Dropout { p } => {
                if !(0.0..1.0).contains(&p) {
                    return Err(format!("p must be in [0, 1), got {p}"));
                }
                // The output and the mask.
                same(input, 0, 2)
            }
            LayerSpec::Flatten => {
                let n = match input {
                    Shape::Image { h, w, c } => h.saturating_mul(w).saturating_mul(c),
                    Shape::Flat(n) => n,
                };
                same(Shape::Flat(n), 0, 1)
            }
            LayerSpec::BasicBlock {
                out_channels,
                stride,
                ..
            } => {
                let (h, w, c) = image()?;
                positive("out_channels", out_channels)?;
                parameter_size(&[out_channels, out_channels.max(c), 9])?;
                positive("stride", stride)?;
                let side = |x: usize| (x - 1) / stride + 1;
                let out = Shape::Image {
                    h: side(h),
                    w: side(w),
                    c: out_channels,
                };
                let projection = stride != 1 || c != out_channels;
                let params = 9 * out_channels * (c + out_channels)
                    + 8 * out_channels
                    + if projection {
                        out_channels * c + 4 * out_channels
                    } else {
                        0
                    };
                // Two convolutions, two batch norms (two copies each), a ReLU, the sum and
                // its ReLU, and the projection's convolution and batch norm.
                let copies = if projection { 11 } else { 8 };
                Footprint {
                    patches: side(h)
                        .saturating_mul(side(w))
                        .saturating_mul(9 * c.max(out_channels)),
                    ..same(out, params, copies)
                }
            }
        })
    }

    /// Builds the layer for an input of shape `input`, returning it with its output shape.
    fn build(
        &self,
        input: Shape,
        init: Init,
        seed: u64,
    ) -> Result<(Box<dyn Layer>, Shape), String> {
        let out = self.plan(input)?.out;
        let (in_channels, in_len) = match input {
            Shape::Image { c, .. } => (c, input.len()),
            Shape::Flat(n) => (n, n),
        };
        let layer: Box<dyn Layer> = match *self {
            LayerSpec::Conv2d {
                ref name,
                out_channels,
                kernel_size,
                stride,
                padding,
                bias,
            } => {
                let config = Conv2dConfig {
                    in_channels,
                    out_channels,
                    kernel_size,
                    stride,
                    padding,
                    bias,
                };
                Box::new(Conv2d::new(name, config, init, seed))
            }
            LayerSpec::Linear {
                ref name,
                out_features,
                bias,
            } => Box::new(Linear::new(name, in_len, out_features, bias, init, seed)),
            LayerSpec::Relu => Box::new(Relu::default()),
            LayerSpec::MaxPool2d {
                kernel_size,
                stride,
                padding,
            } => Box::new(
                MaxPool2d::new(kernel_size, stride.unwrap_or(kernel_size)).with_padding(padding),
            ),
            LayerSpec::AvgPool2d {
                kernel_size,
                stride,
            } => Box::new(AvgPool2d::new(kernel_size, stride.unwrap_or(kernel_size))),
            LayerSpec::GlobalAvgPool => Box::new(GlobalAvgPool::default()),
            LayerSpec::BatchNorm2d { ref name } | LayerSpec::BatchNorm1d { ref name } => {
                Box::new(BatchNorm::new(name, in_channels))
            }
            LayerSpec::Dropout { p } => Box::new(Dropout::new(p)),
            LayerSpec::Flatten => Box::new(Flatten::default()),
            LayerSpec::BasicBlock {
                ref name,
                out_channels,
                stride,
            } => Box::new(BasicBlock::new(
                name,
                in_channels,
                out_channels,
                stride,
                init,
                seed,
            )),
        };
        Ok((layer, out))
    }
}

/// What one layer holds, without the batch dimension.
struct Footprint {
    out: Shape,
    /// Parameters and buffers (batch-norm running statistics).
    params: usize,
    /// Values per image kept from the forward pass: outputs, masks, normalized inputs.
    stored: usize,
    /// Values per image of the convolution's patch matrix (im2col), 0 without one.
    patches: usize,
}

/// Output side of a window of `kernel` moved by `stride` over `size` (padding included).
fn window_out(size: usize, kernel: usize, stride: usize) -> Result<usize, String> {
    if kernel > size {
        return Err(format!(
            "kernel {kernel} is larger than its {size}-pixel input"
        ));
    }
    Ok((size - kernel) / stride + 1)
}

/// `size + 2 * padding`, refusing sizes no image has.
fn padded(size: usize, padding: usize) -> Result<usize, String> {
    padding
        .checked_mul(2)
        .and_then(|p| p.checked_add(size))
        .filter(|&s| s <= MAX_VALUES_PER_IMAGE)
        .ok_or_else(|| format!("padding {padding} is too large"))
}

/// Largest activation of one image that a layer may produce (2^28 values, 1 GiB).
const MAX_VALUES_PER_IMAGE: usize = 1 << 28;

/// Largest parameter tensor a layer may hold (2^30 values, 4 GiB).
const MAX_PARAMETER_VALUES: usize = 1 << 30;

/// The product of `factors`, or an error if a parameter that large cannot be meant.
fn parameter_size(factors: &[usize]) -> Result<usize, String> {
    factors
        .iter()
        .try_fold(1usize, |acc, &f| acc.checked_mul(f))
        .filter(|&n| n <= MAX_PARAMETER_VALUES)
        .ok_or_else(|| format!("its parameters exceed {MAX_PARAMETER_VALUES} values"))
}

impl Shape {
    /// Values per image, saturating (see [`Shape::checked_len`] for the limit).
    fn len(self) -> usize {
        match self {
            Shape::Image { h, w, c } => h.saturating_mul(w).saturating_mul(c),
            Shape::Flat(n) => n,
        }
    }

    /// Values per image, or an error when a layer's output would be absurdly large.
    fn checked_len(self) -> Result<usize, String> {
        let len = match self {
            Shape::Image { h, w, c } => h.checked_mul(w).and_then(|hw| hw.checked_mul(c)),
            Shape::Flat(n) => Some(n),
        };
        len.filter(|&n| n <= MAX_VALUES_PER_IMAGE).ok_or_else(|| {
            format!("its output ({self}) exceeds {MAX_VALUES_PER_IMAGE} values per image")
        })
    }
}

/// Bytes of training memory a network needs, estimated from its spec before anything is
/// allocated, by [`ModelSpec::memory_estimate`]. Values are f32 (4 bytes). The estimate errs
/// high:
///
/// - `parameters`: 4 x P, each parameter with its gradient and two optimizer slots (Adam's
///   moments; SGD has at most one);
/// - `activations`: (F + B) x S, where S is the values per image every layer keeps from
///   the forward pass (its output, plus masks, normalized inputs and a block's inner
///   outputs; the input image counted once), F = max(B, evaluation batch) images flow
///   forward (the buffers grow to the largest batch) and B = the training batch size
///   carries gradients back;
/// - `patches`: the convolutions' patch matrices (im2col), built block by block of images
///   or for the whole batch (see `conv2d`): 2 x F x the largest per-image patch matrix (the
///   patches and their gradient), plus, per convolution that runs in blocks,
///   its kernel's size for each block of the training batch (each block's share of the
///   kernel gradient);
/// - `inputs`: 4 x B x the input image, the batch in use, its augmented copy and two batches
///   prefetched by the loader.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryEstimate {
    pub parameters: u64,
    pub activations: u64,
    pub patches: u64,
    pub inputs: u64,
}

impl MemoryEstimate {
    /// The sum of the parts.
    pub fn total(&self) -> u64 {
        self.parameters
            .saturating_add(self.activations)
            .saturating_add(self.patches)
            .saturating_add(self.inputs)
    }
}

/// Bytes of one f32 value times `values`, saturating.
fn f32_bytes(values: u64) -> u64 {
    values.saturating_mul(4)
}

impl ModelSpec {
    /// Estimates the memory of training this network on batches of `batch` images and
    /// evaluating it on batches of `eval_batch` (see [`MemoryEstimate`] for the formula),
    /// without allocating: a spec too large for the machine can be refused before it is
    /// built. Errors are those [`ModelSpec::build`] would report.
    pub fn memory_estimate(
        &self,
        batch: usize,
        eval_batch: usize,
    ) -> Result<MemoryEstimate, ModelSpecError> {
        let InputShape {
            channels,
            height,
            width,
        } = self.input;
        let mut shape = Shape::Image {
            h: height,
            w: width,
            c: channels,
        };
        let input = shape.len() as u64;
        let (mut params, mut stored, mut largest_patches, mut gradient_shares) =
            (0u64, input, 0u64, 0u64);
        let (train, forward) = (batch as u64, batch.max(eval_batch) as u64);
        for (index, spec) in self.layers.iter().enumerate() {
            let plan = spec.plan(shape).map_err(|problem| ModelSpecError::Layer {
                index,
                layer: spec.label(),
                problem,
            })?;
            params = params.saturating_add(plan.params as u64);
            stored = stored.saturating_add(plan.stored as u64);
            largest_patches = largest_patches.max(plan.patches as u64);
            if let (true, Shape::Image { h, w, c }) = (plan.patches > 0, plan.out) {
                let kernel_len = plan.patches / (h * w).max(1) * c;
                if runs_in_blocks(h * w, plan.patches, kernel_len, batch) {
                    let blocks = batch.div_ceil(images_per_block(plan.patches)) as u64;
                    gradient_shares =
                        gradient_shares.saturating_add(blocks.saturating_mul(kernel_len as u64));
                }
            }
            shape = plan.out;
        }
        Ok(MemoryEstimate {
            parameters: f32_bytes(params.saturating_mul(4)),
            activations: f32_bytes(stored.saturating_mul(forward + train)),
            patches: f32_bytes(
                largest_patches
                    .saturating_mul(2 * forward)
                    .saturating_add(gradient_shares),
            ),
            inputs: f32_bytes(input.saturating_mul(4 * train)),
        })
    }

    /// Builds the network with freshly initialized parameters (seeded per parameter name).
    pub fn build(&self, init: Init, seed: u64) -> Result<Network, ModelSpecError> {
        if self.layers.is_empty() {
            return Err(ModelSpecError::Empty);
        }
        let InputShape {
            channels,
            height,
            width,
        } = self.input;
        for (field, value) in [("channels", channels), ("height", height), ("width", width)] {
            if value == 0 {
                return Err(ModelSpecError::EmptyInput { field });
            }
        }
        let mut names = HashSet::new();
        let mut shape = Shape::Image {
            h: height,
            w: width,
            c: channels,
        };
        shape
            .checked_len()
            .map_err(|problem| ModelSpecError::Layer {
                index: 0,
                layer: "input".into(),
                problem,
            })?;
        let mut layers: Vec<Box<dyn Layer>> = Vec::with_capacity(self.layers.len());
        let mut labels = Vec::with_capacity(self.layers.len());
        let mut index = 0;
        while index < self.layers.len() {
            let spec = &self.layers[index];
            if let Some(name) = spec.name() {
                if !names.insert(name.to_string()) {
                    return Err(ModelSpecError::DuplicateName(name.to_string()));
                }
            }
            fn at(index: usize, spec: &LayerSpec) -> impl FnOnce(String) -> ModelSpecError + '_ {
                move |problem| ModelSpecError::Layer {
                    index,
                    layer: spec.label(),
                    problem,
                }
            }
            let (layer, out) = spec.build(shape, init, seed).map_err(at(index, spec))?;
            out.checked_len().map_err(at(index, spec))?;
            // A ReLU followed by a max-pool runs as one layer (see `MaxPool2d::after_relu`).
            let next = self.layers.get(index + 1);
            if let (
                LayerSpec::Relu,
                Some(
                    pool @ LayerSpec::MaxPool2d {
                        kernel_size,
                        stride,
                        padding,
                    },
                ),
            ) = (spec, next)
            {
                let (_, out) = pool.build(shape, init, seed).map_err(at(index + 1, pool))?;
                let stride = stride.unwrap_or(*kernel_size);
                let fused = MaxPool2d::after_relu(*kernel_size, stride).with_padding(*padding);
                layers.push(Box::new(fused));
                labels.push(format!("{} + {}", spec.describe(), pool.describe()));
                shape = out;
                index += 2;
                continue;
            }
            layers.push(layer);
            labels.push(spec.describe());
            shape = out;
            index += 1;
        }
        let Shape::Flat(classes) = shape else {
            return Err(ModelSpecError::NotFlatOutput(shape.to_string()));
        };
        // Layer names are unique, but a layer `b.conv1` and a block `b` would both own
        // `b.conv1.weight`: parameters are found by name in optimizers and checkpoints.
        let mut param_names = HashSet::new();
        for param in layers.iter().flat_map(|l| l.params()) {
            if !param_names.insert(param.name.as_str()) {
                return Err(ModelSpecError::DuplicateName(param.name.clone()));
            }
        }
        Ok(Network::new(self.clone(), layers, labels, classes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(layers: Vec<LayerSpec>) -> ModelSpec {
        ModelSpec {
            name: "t".into(),
            input: InputShape {
                channels: 1,
                height: 8,
                width: 8,
            },
            layers,
        }
    }

    #[test]
    fn a_toml_spec_builds_a_network_with_pytorch_parameter_names() {
        let text = "name = 'tiny'\ninput = { channels = 1, height = 28, width = 28 }\n\
            [[layers]]\ntype = 'conv2d'\nname = 'conv1'\nout_channels = 8\nkernel_size = 3\npadding = 1\n\
            [[layers]]\ntype = 'relu'\n[[layers]]\ntype = 'max_pool2d'\nkernel_size = 2\n\
            [[layers]]\ntype = 'flatten'\n[[layers]]\ntype = 'linear'\nname = 'fc'\nout_features = 10\n";
        let spec: ModelSpec = toml::from_str(text).unwrap();
        let net = spec.build(Init::Pytorch, 0).unwrap();
        let names: Vec<String> = net.params().iter().map(|p| p.name.clone()).collect();
        assert_eq!(
            names,
            ["conv1.weight", "conv1.bias", "fc.weight", "fc.bias"]
        );
        assert_eq!(net.params()[2].shape, vec![10, 8 * 14 * 14]);
        assert_eq!(net.classes(), 10);
    }

    #[test]
    fn a_linear_layer_on_images_is_rejected_with_a_hint() {
        let err = spec(vec![LayerSpec::Linear {
            name: "fc".into(),
            out_features: 2,
            bias: true,
        }])
        .build(Init::Pytorch, 0)
        .err()
        .unwrap();
        assert!(err.to_string().contains("layer 0 (`fc`)"), "{err}");
        assert!(err.to_string().contains("add a flatten layer"), "{err}");
    }

    #[test]
    fn dropout_outside_zero_to_one_is_rejected() {
        let err = spec(vec![LayerSpec::Flatten, LayerSpec::Dropout { p: 1.0 }])
            .build(Init::Pytorch, 0)
            .err()
            .unwrap();
        assert!(err.to_string().contains("p must be in [0, 1)"), "{err}");
    }

    #[test]
    fn a_kernel_larger_than_its_input_is_rejected() {
        let err = spec(vec![
            LayerSpec::MaxPool2d {
                kernel_size: 9,
                stride: None,
                padding: 0,
            },
            LayerSpec::Flatten,
        ])
        .build(Init::Pytorch, 0)
        .err()
        .unwrap();
        assert!(err.to_string().contains("larger than"), "{err}");
    }

    #[test]
    fn duplicate_names_and_image_outputs_are_rejected() {
        let bn = || LayerSpec::BatchNorm2d { name: "bn".into() };
        assert_eq!(
            spec(vec![bn(), bn()]).build(Init::Pytorch, 0).err(),
            Some(ModelSpecError::DuplicateName("bn".into()))
        );
        assert!(matches!(
            spec(vec![bn()]).build(Init::Pytorch, 0).err(),
            Some(ModelSpecError::NotFlatOutput(_))
        ));
    }

    #[test]
    fn a_layer_and_a_block_owning_the_same_parameter_name_are_rejected() {
        let layers = vec![
            LayerSpec::BasicBlock {
                name: "b".into(),
                out_channels: 4,
                stride: 1,
            },
            LayerSpec::Conv2d {
                name: "b.conv1".into(),
                out_channels: 4,
                kernel_size: 1,
                stride: 1,
                padding: 0,
                bias: false,
            },
            LayerSpec::GlobalAvgPool,
        ];
        let err = spec(layers).build(Init::Pytorch, 0).err();
        assert_eq!(
            err,
            Some(ModelSpecError::DuplicateName("b.conv1.weight".into()))
        );
    }

    #[test]
    fn empty_inputs_and_absurd_sizes_are_rejected_without_panicking() {
        let mut empty = spec(vec![LayerSpec::Flatten]);
        empty.input.height = 0;
        let err = empty.build(Init::Pytorch, 0).err();
        assert_eq!(err, Some(ModelSpecError::EmptyInput { field: "height" }));
        let huge_padding = spec(vec![
            LayerSpec::Conv2d {
                name: "c".into(),
                out_channels: 1,
                kernel_size: 1,
                stride: 1,
                padding: usize::MAX / 2,
                bias: true,
            },
            LayerSpec::Flatten,
        ]);
        let err = huge_padding
            .build(Init::Pytorch, 0)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("padding"), "{err}");
        let huge_layer = spec(vec![
            LayerSpec::Flatten,
            LayerSpec::Linear {
                name: "fc".into(),
                out_features: usize::MAX,
                bias: true,
            },
        ]);
        let err = huge_layer
            .build(Init::Pytorch, 0)
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("layer 1 (`fc`)") && err.contains("exceed"),
            "{err}"
        );
    }

    #[test]
    fn the_memory_estimate_follows_its_documented_formula() {
        let spec = spec(vec![
            LayerSpec::Conv2d {
                name: "c".into(),
                out_channels: 4,
                kernel_size: 3,
                stride: 1,
                padding: 1,
                bias: true,
            },
            LayerSpec::Flatten,
            LayerSpec::Linear {
                name: "fc".into(),
                out_features: 2,
                bias: true,
            },
        ]);
        let m = spec.memory_estimate(10, 20).unwrap();
        // Parameters 4*9 + 4 + 256*2 + 2 = 554, times 4 copies of 4 bytes.
        assert_eq!(m.parameters, 554 * 16);
        // Kept per image: input 64, convolution 8x8x4 = 256, flatten 256, linear 2; 20
        // images forward and 10 backward.
        assert_eq!(m.activations, 578 * 30 * 4);
        // Patches of 8x8 positions x 9 values, and their gradient, for 20 images; the 10
        // training images fit one block, with one share of the 36-value kernel's gradient.
        assert_eq!(m.patches, (2 * 20 * 576 + 36) * 4);
        assert_eq!(m.inputs, 64 * 4 * 10 * 4);
        assert_eq!(
            m.total(),
            m.parameters + m.activations + m.patches + m.inputs
        );
    }

    #[test]
    fn a_model_of_200000_channels_is_estimated_at_hundreds_of_gigabytes_without_allocating() {
        let mut wide = spec(vec![
            LayerSpec::Conv2d {
                name: "c".into(),
                out_channels: 200_000,
                kernel_size: 3,
                stride: 1,
                padding: 1,
                bias: true,
            },
            LayerSpec::GlobalAvgPool,
        ]);
        wide.input = InputShape {
            channels: 3,
            height: 32,
            width: 32,
        };
        let m = wide.memory_estimate(64, 256).unwrap();
        assert!(m.total() > 100 << 30, "{m:?}");
    }

    #[test]
    fn an_unknown_layer_type_fails_to_parse() {
        let text = "name = 'x'\ninput = { channels = 1, height = 2, width = 2 }\n[[layers]]\ntype = 'conv3d'\n";
        let err = toml::from_str::<ModelSpec>(text).unwrap_err();
        assert!(err.to_string().contains("conv3d"), "{err}");
    }
}
