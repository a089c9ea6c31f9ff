//! Layers as forward/backward pairs, the network built from a [`ModelSpec`], and the loss.
//!
//! Every layer owns its output and its input-gradient tensors and reuses them from step to
//! step. A layer's input is the previous layer's output, which is still alive during the
//! backward pass, so nothing is copied to be "saved for backward".

mod batchnorm;
mod block;
mod conv2d;
mod dropout;
mod flatten;
#[cfg(test)]
mod gradcheck;
pub mod init;
mod layer;
mod linear;
mod loss;
mod network;
mod param;
mod pool;
mod relu;
pub mod spec;

pub use batchnorm::BatchNorm;
pub use block::BasicBlock;
pub use conv2d::{Conv2d, Conv2dConfig};
pub use dropout::Dropout;
pub use flatten::Flatten;
pub use init::Init;
pub use layer::{Context, Layer};
pub use linear::Linear;
pub use loss::{cross_entropy, LossOutput};
pub use network::Network;
pub use param::{Param, ParamKind, StorageLayout};
pub use pool::{AvgPool2d, GlobalAvgPool, MaxPool2d};
pub use relu::Relu;
pub use spec::{LayerSpec, MemoryEstimate, ModelSpec, ModelSpecError};
