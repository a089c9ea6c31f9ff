//! The per-epoch checkpoint from which `--resume` continues a run bit for bit.
//!
//! A run's checkpoint folder ([`super::RunFolder::checkpoint_dir`], `RUN/checkpoint/`) holds,
//! after epoch `e`: `weights-e.safetensors` (every parameter and
//! buffer), `optimizer-e.safetensors` (the optimizer's slots and step),
//! `regularizers-e.safetensors` (the regularizers' state, such as pruning masks, when a
//! regularizer keeps one), `best-b.safetensors`
//! (the weights of the best epoch `b` so far, when a validation split exists) and
//! `state.json` ([`TrainState`]: epochs done, the dropout generator, early stopping and the
//! metrics so far). `state.json` is written last, atomically: it names the files of the
//! checkpoint, so a run stopped at any moment resumes from the last complete epoch. Files
//! of older epochs are removed after it is written.

use super::early_stop::EarlyStopping;
use super::metrics::EpochMetrics;
use super::TrainError;
use crate::fsio::write_atomic;
use crate::nn::Network;
use crate::optim::{Optimizer, OptimizerState};
use crate::regularize::Regularizers;
use crate::weights_file::{load_optimizer, load_weights, save_optimizer, save_weights};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// What a run needs, besides weights and optimizer state, to continue.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainState {
    /// Epochs completed.
    pub epochs_done: usize,
    /// State of the dropout generator ([`crate::engine::Rng::state`]).
    pub dropout_rng: [u64; 4],
    pub early_stop: EarlyStopping,
    /// Set when the run ended before its last epoch (`early_stopped`).
    pub stopped: Option<String>,
    pub history: Vec<EpochMetrics>,
}

fn weights_file(dir: &Path, epoch: usize) -> PathBuf {
    dir.join(format!("weights-{epoch}.safetensors"))
}

fn optimizer_file(dir: &Path, epoch: usize) -> PathBuf {
    dir.join(format!("optimizer-{epoch}.safetensors"))
}

fn regularizers_file(dir: &Path, epoch: usize) -> PathBuf {
    dir.join(format!("regularizers-{epoch}.safetensors"))
}

/// The algorithm name under which the regularizers' tensors are saved.
const REGULARIZERS: &str = "regularizers";

/// The weights of best epoch `epoch`.
pub fn best_file(dir: &Path, epoch: usize) -> PathBuf {
    dir.join(format!("best-{epoch}.safetensors"))
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> TrainError + '_ {
    move |cause| TrainError::Io {
        path: path.into(),
        cause,
    }
}

/// Saves the weights of a new best epoch (before [`save`] commits it).
pub fn save_best(dir: &Path, net: &Network, epoch: usize) -> Result<(), TrainError> {
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    save_weights(&best_file(dir, epoch), &net.params(), HashMap::new())?;
    Ok(())
}

/// Writes the checkpoint of `state.epochs_done` and removes older files.
pub fn save(
    dir: &Path,
    net: &Network,
    optimizer: &dyn Optimizer,
    regularizers: &Regularizers,
    state: &TrainState,
) -> Result<(), TrainError> {
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let e = state.epochs_done;
    let params = net.params();
    save_weights(&weights_file(dir, e), &params, HashMap::new())?;
    save_optimizer(&optimizer_file(dir, e), &optimizer.state(&params))?;
    if regularizers.has_state() {
        let saved = OptimizerState {
            algorithm: REGULARIZERS.into(),
            step: 0,
            tensors: regularizers.state(),
        };
        save_optimizer(&regularizers_file(dir, e), &saved)?;
    }
    let json = serde_json::to_vec_pretty(state).expect("state serializes");
    let state_path = dir.join("state.json");
    write_atomic(&state_path, &json).map_err(io(&state_path))?;
    let keep = [
        weights_file(dir, e),
        optimizer_file(dir, e),
        regularizers_file(dir, e),
        state_path,
        best_file(dir, state.early_stop.best_epoch().unwrap_or(0)),
    ];
    for entry in std::fs::read_dir(dir).map_err(io(dir))? {
        let path = entry.map_err(io(dir))?.path();
        if !keep.contains(&path) {
            let _ = std::fs::remove_file(&path);
        }
    }
    Ok(())
}

/// Loads the checkpoint into `net`, `optimizer` and `regularizers`, returning the state.
pub fn load(
    dir: &Path,
    net: &mut Network,
    optimizer: &mut dyn Optimizer,
    regularizers: &mut Regularizers,
) -> Result<TrainState, TrainError> {
    let state_path = dir.join("state.json");
    let bytes = std::fs::read(&state_path).map_err(|e| {
        TrainError::Resume(format!(
            "{}: {e} (no epoch of this run has finished)",
            state_path.display()
        ))
    })?;
    let state: TrainState = serde_json::from_slice(&bytes)
        .map_err(|e| TrainError::Resume(format!("{}: {e}", state_path.display())))?;
    load_weights(&weights_file(dir, state.epochs_done), &mut net.params_mut())?;
    let saved = load_optimizer(&optimizer_file(dir, state.epochs_done))?;
    optimizer
        .load_state(&saved, &net.params())
        .map_err(|e| TrainError::Resume(format!("optimizer state: {e}")))?;
    if regularizers.has_state() {
        let path = regularizers_file(dir, state.epochs_done);
        let saved = load_optimizer(&path)?;
        if saved.algorithm != REGULARIZERS {
            return Err(TrainError::Resume(format!(
                "{}: holds `{}` state, expected `{REGULARIZERS}`",
                path.display(),
                saved.algorithm
            )));
        }
        regularizers
            .load_state(&saved.tensors, &net.params())
            .map_err(|e| TrainError::Resume(format!("{}: {e}", path.display())))?;
    }
    Ok(state)
}
