//! Weights and optimizer state in the safetensors format.
//!
//! Weight files hold one f32 tensor per parameter and buffer, under PyTorch's `state_dict` name
//! and in PyTorch's shape and element order (convolution kernels as `[out, in, kh, kw]`), so a
//! file written here loads into the equivalent PyTorch module with
//! `model.load_state_dict(safetensors.torch.load_file(path), strict=False)` and vice versa
//! (`num_batches_tracked`, which regstudy does not use, is ignored on load).

use crate::fsio::write_atomic;
use crate::nn::Param;
use crate::optim::OptimizerState;
use safetensors::{Dtype, SafeTensors};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

/// A checkpoint that cannot be written or read; every variant names the file. Causes are part
/// of the message, not sources, so that they are shown once.
#[derive(Debug, thiserror::Error)]
pub enum WeightsFileError {
    #[error("{}: {cause}", path.display())]
    Io {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error("{}: not a valid safetensors file: {cause}", path.display())]
    Format {
        path: PathBuf,
        cause: safetensors::SafeTensorError,
    },
    #[error("{}: tensor `{name}` is missing", path.display())]
    Missing { path: PathBuf, name: String },
    #[error("{}: tensor `{name}` has shape {found:?}, expected {expected:?}", path.display())]
    Shape {
        path: PathBuf,
        name: String,
        expected: Vec<usize>,
        found: Vec<usize>,
    },
    #[error("{}: tensor `{name}` has dtype {found}, expected F32", path.display())]
    Dtype {
        path: PathBuf,
        name: String,
        found: String,
    },
    #[error("{}: tensor `{name}` matches no parameter of this model", path.display())]
    Unexpected { path: PathBuf, name: String },
    #[error("{}: metadata field `{field}` is missing or invalid", path.display())]
    Metadata { path: PathBuf, field: String },
    #[error("{}: {cause}", path.display())]
    State {
        path: PathBuf,
        cause: crate::optim::StateError,
    },
}

fn f32_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

fn write_tensors(
    path: &Path,
    tensors: Vec<(String, Vec<usize>, Vec<u8>)>,
    metadata: HashMap<String, String>,
) -> Result<(), WeightsFileError> {
    let views = tensors
        .iter()
        .map(|(name, shape, bytes)| {
            safetensors::tensor::TensorView::new(Dtype::F32, shape.clone(), bytes)
                .map(|view| (name.clone(), view))
        })
        .collect::<Result<Vec<_>, _>>();
    let format = |cause| WeightsFileError::Format {
        path: path.into(),
        cause,
    };
    let bytes = safetensors::serialize(views.map_err(format)?, Some(metadata)).map_err(format)?;
    write_atomic(path, &bytes).map_err(|cause| WeightsFileError::Io {
        path: path.into(),
        cause,
    })
}

/// Tensors by name: shape and values.
pub type NamedTensors = BTreeMap<String, (Vec<usize>, Vec<f32>)>;

/// Reads a whole safetensors file: its tensors as f32 (name -> (shape, values)) and metadata.
pub fn read_tensors(
    path: &Path,
) -> Result<(NamedTensors, HashMap<String, String>), WeightsFileError> {
    let bytes = std::fs::read(path).map_err(|cause| WeightsFileError::Io {
        path: path.into(),
        cause,
    })?;
    let format = |cause| WeightsFileError::Format {
        path: path.into(),
        cause,
    };
    let (_, metadata) = SafeTensors::read_metadata(&bytes).map_err(format)?;
    let file = SafeTensors::deserialize(&bytes).map_err(format)?;
    let mut out = BTreeMap::new();
    for (name, view) in file.tensors() {
        if view.dtype() != Dtype::F32 {
            if name.ends_with(".num_batches_tracked") {
                continue;
            }
            return Err(WeightsFileError::Dtype {
                path: path.into(),
                name,
                found: format!("{:?}", view.dtype()),
            });
        }
        let values = view
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        out.insert(name, (view.shape().to_vec(), values));
    }
    Ok((out, metadata.metadata().clone().unwrap_or_default()))
}

/// Saves every parameter and buffer, with `metadata` (e.g. the run's config and version).
pub fn save_weights(
    path: &Path,
    params: &[&Param],
    metadata: HashMap<String, String>,
) -> Result<(), WeightsFileError> {
    let tensors = params
        .iter()
        .map(|p| {
            (
                p.name.clone(),
                p.shape.clone(),
                f32_bytes(&p.to_pytorch_order()),
            )
        })
        .collect();
    write_tensors(path, tensors, metadata)
}

/// Loads every parameter and buffer of the network from `path`; the file must hold exactly
/// those tensors with those shapes (apart from PyTorch's `num_batches_tracked`).
pub fn load_weights(path: &Path, params: &mut [&mut Param]) -> Result<(), WeightsFileError> {
    let (mut tensors, _) = read_tensors(path)?;
    // Every tensor is checked before any parameter changes, so a bad file leaves the network
    // as it was.
    let mut loaded = Vec::with_capacity(params.len());
    for p in params.iter() {
        let (shape, values) = tensors
            .remove(&p.name)
            .ok_or_else(|| WeightsFileError::Missing {
                path: path.into(),
                name: p.name.clone(),
            })?;
        if shape != p.shape {
            return Err(WeightsFileError::Shape {
                path: path.into(),
                name: p.name.clone(),
                expected: p.shape.clone(),
                found: shape,
            });
        }
        loaded.push(p.from_pytorch_order(&values));
    }
    if let Some(name) = tensors
        .into_keys()
        .find(|k| !k.ends_with(".num_batches_tracked"))
    {
        return Err(WeightsFileError::Unexpected {
            path: path.into(),
            name,
        });
    }
    for (p, values) in params.iter_mut().zip(loaded) {
        p.value = values;
    }
    Ok(())
}

/// Saves an optimizer's state: its slots as tensors, algorithm and step count as metadata.
pub fn save_optimizer(path: &Path, state: &OptimizerState) -> Result<(), WeightsFileError> {
    let tensors = state
        .tensors
        .iter()
        .map(|(name, values)| (name.clone(), vec![values.len()], f32_bytes(values)))
        .collect();
    let metadata = HashMap::from([
        ("algorithm".to_string(), state.algorithm.clone()),
        ("step".to_string(), state.step.to_string()),
    ]);
    write_tensors(path, tensors, metadata)
}

/// Loads a state written by [`save_optimizer`].
pub fn load_optimizer(path: &Path) -> Result<OptimizerState, WeightsFileError> {
    let (tensors, metadata) = read_tensors(path)?;
    let field = |name: &str| {
        metadata
            .get(name)
            .cloned()
            .ok_or(WeightsFileError::Metadata {
                path: path.into(),
                field: name.into(),
            })
    };
    let step = field("step")?
        .parse()
        .map_err(|_| WeightsFileError::Metadata {
            path: path.into(),
            field: "step".into(),
        })?;
    Ok(OptimizerState {
        algorithm: field("algorithm")?,
        step,
        tensors: tensors.into_iter().map(|(k, (_, v))| (k, v)).collect(),
    })
}
