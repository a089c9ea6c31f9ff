//! `regstudy train`: one run of a source-study experiment.
//!
//! A run trains one network on one data set under one regularization and records, per epoch,
//! the training loss split into data and penalty terms, training and validation accuracy, the
//! generalization gap, kernel sparsity and norms per layer, and throughput; at the end it
//! evaluates the test set once. Everything goes to a run folder:
//!
//! | file | content |
//! |---|---|
//! | `config.toml` | the resolved [`RunConfig`] (loads back with `--config`) |
//! | `run.json` | regstudy version, thread count, seed, data identity, parameter counts |
//! | `model.toml` | the network's [`crate::nn::ModelSpec`] |
//! | `metrics.jsonl`, `metrics.csv` | one [`EpochMetrics`] per epoch |
//! | `summary.json` | the [`Summary`] |
//! | `weights.safetensors` | the final weights (PyTorch names and layouts) |
//! | `checkpoint/` | the last epoch's checkpoint, see [`checkpoint`] |
//!
//! [`config`] holds the settings, [`run`] the loop.

pub mod checkpoint;
pub mod config;
pub mod early_stop;
pub mod metrics;
pub mod run;

pub use config::{CheckedRunConfig, ConfigError, ModelSource, RunConfig};
pub use early_stop::{EarlyStopMonitor, EarlyStopping};
pub use metrics::{EpochMetrics, Summary};
pub use run::{run, EpochCallback, RunOptions};

use std::path::PathBuf;

/// Why a run could not start, could not continue, or ended badly.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Data(#[from] crate::data::DataError),
    #[error("--model: {0}")]
    Spec(#[from] crate::nn::SpecError),
    #[error(transparent)]
    Penalty(#[from] crate::regularize::PenaltyError),
    #[error(transparent)]
    Checkpoint(#[from] crate::checkpoint::CheckpointError),
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Settings that only prove invalid once the data or the network is known.
    #[error("{0}")]
    Invalid(String),
    #[error("cannot resume: {0}")]
    Resume(String),
    /// The caller asked the run to stop (see [`run::EpochCallback`]).
    #[error("stopped: {0}")]
    Stopped(String),
    /// A non-finite loss; the run folder's `summary.json` has status `diverged`.
    #[error("training diverged: {0}")]
    Diverged(String),
}
