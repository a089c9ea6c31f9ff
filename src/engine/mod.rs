//! The numerical engine: f32 tensors, matrix multiply, image-to-column transforms, the thread
//! pool and a reproducible random number generator.
//!
//! Activations are stored channels-last (NHWC): a convolution then becomes one matrix multiply
//! of the image patches (`N*H*W` rows) by the kernel, and its output is already NHWC.

pub mod im2col;
pub mod matmul;
pub mod par;
pub mod pool;
pub mod rng;
pub mod tensor;

pub use pool::ThreadPool;
pub use rng::Rng;
pub use tensor::Tensor;
