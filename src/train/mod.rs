//! `regstudy train`: one run of a source-study experiment.
//!
//! A run trains one network on one data set under one regularization and records, per epoch,
//! the training loss split into data and penalty terms, training and validation accuracy, the
//! generalization gap, kernel sparsity and norms per layer, and throughput; at the end it
//! evaluates the test set once. Everything goes to a run folder ([`RunFolder`]):
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
//! [`config`] holds the settings, [`run`] the loop, [`step`] one training step; [`run()`]
//! returns a [`RunOutcome`] and tells a [`TrainObserver`] what it does.

pub mod checkpoint;
pub mod config;
pub mod early_stop;
pub mod folder;
pub mod metrics;
pub mod observer;
pub mod outcome;
pub mod record;
pub mod resources;
pub mod run;
pub mod step;

pub use config::{CheckedRunConfig, ConfigError, ModelSource, RunConfig};
pub use early_stop::{EarlyStopMonitor, EarlyStopping};
pub use folder::RunFolder;
pub use metrics::{EpochMetrics, Summary};
pub use observer::{BatchProgress, RunStart, Silent, TrainObserver};
pub use outcome::{RunOutcome, RunReport};
pub use run::{run, RunOptions};
pub use step::{NonFiniteLoss, StepResult, TrainStep};

use std::path::PathBuf;

impl From<crate::nn::ModelSpecError> for TrainError {
    fn from(error: crate::nn::ModelSpecError) -> Self {
        TrainError::Spec(error)
    }
}

/// Why a run could not start, could not continue, or ended badly.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Data(#[from] crate::data::DataError),
    /// The cause is part of the message, not a source, so it is shown once.
    #[error("--model: {0}")]
    Spec(crate::nn::ModelSpecError),
    #[error(transparent)]
    Regularizer(#[from] crate::regularize::RegularizerError),
    #[error(transparent)]
    Checkpoint(#[from] crate::weights_file::WeightsFileError),
    /// The cause is part of the message, not a source, so it is shown once.
    #[error("{}: {cause}", path.display())]
    Io {
        path: PathBuf,
        cause: std::io::Error,
    },
    /// Settings that only prove invalid once the data or the network is known.
    #[error("{0}")]
    Invalid(String),
    #[error("cannot resume: {0}")]
    Resume(String),
    /// The run folder's records do not match what resuming would train on: other data
    /// (checksums), or other settings (an edited `config.toml`). Unlike [`TrainError::Resume`]
    /// the folder is sound; it must not be continued, nor cleared.
    #[error("cannot resume {}: {problem}", dir.display())]
    Mismatch { dir: PathBuf, problem: String },
    /// A record in the run folder that cannot be read back.
    #[error("{}: {problem}", path.display())]
    Unreadable { path: PathBuf, problem: String },
    /// The observer asked the run to stop (see [`TrainObserver::epoch_finished`]).
    #[error("stopped: {0}")]
    Stopped(String),
    /// A non-finite loss, for callers that treat divergence as a failure (see
    /// [`RunOutcome::into_result`]); the run folder's `summary.json` has status `diverged`.
    #[error("training diverged: {0}")]
    Diverged(String),
}
