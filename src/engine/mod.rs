//! The numerical engine: f32 tensors, matrix multiply, image-to-column transforms, the thread
//! pool and the reproducible random number generators (of the model and of the data).
//!
//! Activations are stored channels-last (NHWC): a convolution then becomes one matrix multiply
//! of the image patches (`N*H*W` rows) by the kernel, and its output is already NHWC.

pub mod bf16;
pub(crate) mod direct_conv;
pub mod im2col;
pub mod matmul;
pub mod par;
pub mod pool;
pub mod precision;
pub mod rng;
pub mod tensor;

pub use pool::ThreadPool;
pub use precision::Precision;
pub use rng::{Rng, SplitMix64};
pub use tensor::Tensor;
