//! Named parameters and buffers.

/// What a parameter is, so regularizers and sparsity metrics can choose what they act on
/// (penalties apply to kernels by default, as in Keras).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ParamKind {
    /// Convolution or linear weights.
    Kernel,
    /// Additive bias of a convolution or linear layer.
    Bias,
    /// Batch-norm scale (gamma, PyTorch's `weight`).
    NormScale,
    /// Batch-norm shift (beta, PyTorch's `bias`).
    NormShift,
    /// Non-trainable state such as batch-norm running statistics.
    Buffer,
}

impl ParamKind {
    pub fn is_trainable(self) -> bool {
        self != ParamKind::Buffer
    }
}

/// How [`Param::value`] is laid out relative to PyTorch's shape for the same tensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StorageLayout {
    /// The same row-major order as PyTorch.
    PyTorch,
    /// A convolution kernel PyTorch stores as `[out, in, kh, kw]`, kept here as
    /// `[out, kh, kw, in]` so it multiplies channels-last image patches directly.
    ChannelsLastKernel,
}

/// A named tensor of a network: a trainable parameter (with its gradient) or a buffer.
#[derive(Clone, Debug)]
pub struct Param {
    /// PyTorch's `state_dict` key, e.g. `conv1.weight` or `layer1.0.bn1.running_mean`.
    pub name: String,
    pub kind: ParamKind,
    /// PyTorch's shape for this tensor (e.g. `[out, in, kh, kw]` for a convolution kernel).
    pub shape: Vec<usize>,
    pub layout: StorageLayout,
    pub value: Vec<f32>,
    /// dLoss/dValue from the last backward pass; empty for buffers.
    pub grad: Vec<f32>,
}

impl Param {
    pub fn new(name: String, kind: ParamKind, shape: &[usize], value: Vec<f32>) -> Self {
        debug_assert_eq!(value.len(), shape.iter().product::<usize>());
        let grad = if kind.is_trainable() {
            vec![0.0; value.len()]
        } else {
            Vec::new()
        };
        Self {
            name,
            kind,
            shape: shape.to_vec(),
            layout: StorageLayout::PyTorch,
            value,
            grad,
        }
    }

    /// A convolution kernel of PyTorch shape `[out, in, kh, kw]` whose `value` is already in
    /// `[out, kh, kw, in]` order.
    pub fn channels_last_kernel(name: String, shape: [usize; 4], value: Vec<f32>) -> Self {
        Self {
            layout: StorageLayout::ChannelsLastKernel,
            ..Self::new(name, ParamKind::Kernel, &shape, value)
        }
    }

    pub fn len(&self) -> usize {
        self.value.len()
    }

    pub fn is_empty(&self) -> bool {
        self.value.is_empty()
    }

    /// The values in PyTorch's order for [`Param::shape`].
    pub fn to_pytorch_order(&self) -> Vec<f32> {
        self.convert(&self.value, true)
    }

    /// Any tensor of this parameter's size (its value, gradient or optimizer state) reordered
    /// to PyTorch's order.
    pub fn to_pytorch_order_of(&self, data: &[f32]) -> Vec<f32> {
        self.convert(data, true)
    }

    /// Converts data in PyTorch's order for [`Param::shape`] to this parameter's storage order.
    pub fn from_pytorch_order(&self, data: &[f32]) -> Vec<f32> {
        self.convert(data, false)
    }

    fn convert(&self, data: &[f32], to_pytorch: bool) -> Vec<f32> {
        match (self.layout, &self.shape[..]) {
            (StorageLayout::ChannelsLastKernel, &[o, i, kh, kw]) => {
                let mut out = vec![0.0; data.len()];
                for oc in 0..o {
                    for ic in 0..i {
                        for y in 0..kh {
                            for x in 0..kw {
                                let torch = ((oc * i + ic) * kh + y) * kw + x;
                                let ours = ((oc * kh + y) * kw + x) * i + ic;
                                if to_pytorch {
                                    out[torch] = data[ours];
                                } else {
                                    out[ours] = data[torch];
                                }
                            }
                        }
                    }
                }
                out
            }
            _ => data.to_vec(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channels_last_kernels_round_trip_through_pytorch_order() {
        let value: Vec<f32> = (0..2 * 3 * 2 * 2).map(|i| i as f32).collect();
        let p = Param::channels_last_kernel("k".into(), [2, 3, 2, 2], value.clone());
        let torch = p.to_pytorch_order();
        // PyTorch element [o=0, i=1, y=0, x=1] (flat index ((0*3 + 1)*2 + 0)*2 + 1 = 5) sits at
        // ours [o=0, y=0, x=1, i=1] (flat index ((0*2 + 0)*2 + 1)*3 + 1 = 4), which holds 4.
        assert_eq!(torch[5], 4.0);
        assert_eq!(p.from_pytorch_order(&torch), value);
    }

    #[test]
    fn buffers_have_no_gradient() {
        let p = Param::new("m".into(), ParamKind::Buffer, &[3], vec![0.0; 3]);
        assert!(p.grad.is_empty());
        assert!(!p.kind.is_trainable());
    }
}
