//! A plain f32 tensor: a shape and a contiguous row-major buffer.

/// A dense f32 tensor stored row-major (the last dimension varies fastest).
///
/// Layers own their output and gradient tensors and [`Tensor::reshape_for`] them each step, so a
/// training step reuses the same allocations instead of asking the allocator for fresh pages.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Tensor {
    shape: Vec<usize>,
    data: Vec<f32>,
}

impl Tensor {
    /// A tensor of zeros.
    pub fn zeros(shape: &[usize]) -> Self {
        Self {
            shape: shape.to_vec(),
            data: vec![0.0; shape.iter().product()],
        }
    }

    /// Wraps `data`; returns `None` when its length is not the product of `shape`.
    pub fn from_vec(shape: &[usize], data: Vec<f32>) -> Option<Self> {
        (shape.iter().product::<usize>() == data.len()).then(|| Self {
            shape: shape.to_vec(),
            data,
        })
    }

    /// Sets the shape, growing or shrinking the buffer while keeping its allocation. Values are
    /// left as they were (new elements are zero): callers overwrite what they use.
    pub fn reshape_for(&mut self, shape: &[usize]) {
        if self.shape != shape {
            self.shape.clear();
            self.shape.extend_from_slice(shape);
        }
        self.data.resize(shape.iter().product(), 0.0);
    }

    /// Sets the shape and fills every element with zero.
    pub fn zero_with_shape(&mut self, shape: &[usize]) {
        self.reshape_for(shape);
        self.data.fill(0.0);
    }

    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    pub fn data(&self) -> &[f32] {
        &self.data
    }

    pub fn data_mut(&mut self) -> &mut [f32] {
        &mut self.data
    }

    pub fn into_vec(self) -> Vec<f32> {
        self.data
    }

    pub fn len(&self) -> usize {
        self.data.len()
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The leading (batch) dimension.
    pub fn batch(&self) -> usize {
        self.shape.first().copied().unwrap_or(0)
    }

    /// Elements per batch item: the product of all but the first dimension.
    pub fn item_len(&self) -> usize {
        self.shape.iter().skip(1).product()
    }

    /// The four dimensions of an NHWC tensor.
    ///
    /// # Panics
    /// If the tensor is not 4-dimensional: network construction checks every layer's input
    /// rank, so this is a programming error, never a user error.
    pub fn nhwc(&self) -> (usize, usize, usize, usize) {
        match self.shape[..] {
            [n, h, w, c] => (n, h, w, c),
            _ => panic!("expected an NHWC tensor, got shape {:?}", self.shape),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reshape_keeps_the_allocation_when_shrinking() {
        let mut t = Tensor::zeros(&[4, 8]);
        let capacity = t.data.capacity();
        t.reshape_for(&[2, 8]);
        assert_eq!(t.shape(), &[2, 8]);
        assert_eq!(t.len(), 16);
        assert_eq!(t.data.capacity(), capacity);
    }

    #[test]
    fn from_vec_rejects_a_length_that_does_not_match_the_shape() {
        assert!(Tensor::from_vec(&[2, 3], vec![0.0; 5]).is_none());
        assert!(Tensor::from_vec(&[2, 3], vec![0.0; 6]).is_some());
    }
}
