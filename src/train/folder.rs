//! The run folder: every file a run writes, by name, in one place.
//!
//! | file | written | content |
//! |---|---|---|
//! | `owner.json` | by a study, before training | which store and trial own the folder |
//! | `config.toml` | at the start, again on resume | the resolved [`RunConfig`] |
//! | `run.json` | at the start, updated on resume | version, threads, data identity, settings |
//! | `model.toml` | at the start | the network's [`ModelSpec`] |
//! | `metrics.jsonl`, `metrics.csv` | after each epoch | one [`EpochMetrics`] per epoch |
//! | `checkpoint/` | after each epoch | see [`super::checkpoint`] |
//! | `weights.safetensors` | at the end | the tested weights |
//! | `summary.json` | at the end, also on divergence | the [`Summary`] |
//!
//! Every file is written atomically (a temporary file renamed into place), so a run killed
//! at any moment leaves each file either whole or absent.

use super::checkpoint::{self, TrainState};
use super::config::{ConfigError, RunConfig};
use super::metrics::{self, EpochMetrics, Summary};
use super::record::resume_conflict;
use super::TrainError;
use crate::fsio::{is_atomic_write_leftover, write_atomic};
use crate::nn::{ModelSpec, Network};
use crate::optim::Optimizer;
use crate::regularize::{Regularizers, WeightHistogram};
use crate::weights_file::{read_tensors, save_weights};
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// The file a study writes in a run folder before training starts, recording which store
/// and trial own the folder; a folder that holds only it is empty.
pub const OWNER_FILE: &str = "owner.json";
const CONFIG_FILE: &str = "config.toml";
const RUN_RECORD_FILE: &str = "run.json";
const MODEL_FILE: &str = "model.toml";
const METRICS_JSONL_FILE: &str = "metrics.jsonl";
const METRICS_CSV_FILE: &str = "metrics.csv";
const CHECKPOINT_DIR: &str = "checkpoint";
const WEIGHTS_FILE: &str = "weights.safetensors";
const SUMMARY_FILE: &str = "summary.json";

/// A run folder (it need not exist yet).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunFolder {
    dir: PathBuf,
}

fn io(path: PathBuf) -> impl FnOnce(std::io::Error) -> TrainError {
    move |cause| TrainError::Io { path, cause }
}

impl RunFolder {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        RunFolder { dir: dir.into() }
    }

    /// The folder itself.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    pub fn owner_file(&self) -> PathBuf {
        self.dir.join(OWNER_FILE)
    }

    pub fn config_file(&self) -> PathBuf {
        self.dir.join(CONFIG_FILE)
    }

    /// The folder of the per-epoch checkpoint (see [`super::checkpoint`]).
    pub fn checkpoint_dir(&self) -> PathBuf {
        self.dir.join(CHECKPOINT_DIR)
    }

    pub fn run_record_file(&self) -> PathBuf {
        self.dir.join(RUN_RECORD_FILE)
    }

    pub fn summary_file(&self) -> PathBuf {
        self.dir.join(SUMMARY_FILE)
    }

    pub fn weights_file(&self) -> PathBuf {
        self.dir.join(WEIGHTS_FILE)
    }

    /// Whether the folder holds files of a run: anything but an owner record (and the
    /// temporary file of one being written).
    pub fn holds_run(&self) -> bool {
        self.dir.read_dir().is_ok_and(|entries| {
            entries.flatten().any(|e| {
                let name = e.file_name();
                name != OWNER_FILE && !is_atomic_write_leftover(&name)
            })
        })
    }

    /// Whether a run was started here (its settings were written).
    pub fn is_started(&self) -> bool {
        self.config_file().is_file()
    }

    /// Whether the run here may be continued with `config`: no run was started here, or
    /// its `config.toml` differs from `config` only where [`resume_conflict`] allows.
    pub fn resumable_with(&self, config: &RunConfig) -> bool {
        !self.is_started()
            || self
                .read_config("resume")
                .is_ok_and(|recorded| resume_conflict(&recorded, config).is_none())
    }

    /// Whether an epoch's checkpoint may be here to continue from.
    pub fn has_checkpoint(&self) -> bool {
        self.checkpoint_dir().is_dir()
    }

    /// Creates the folder (and its parents).
    pub fn create(&self) -> Result<(), TrainError> {
        std::fs::create_dir_all(&self.dir).map_err(io(self.dir.clone()))
    }

    /// Removes the folder and everything in it; an absent folder is already clear.
    pub fn remove(&self) -> Result<(), TrainError> {
        match std::fs::remove_dir_all(&self.dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io(self.dir.clone())(e)),
            _ => Ok(()),
        }
    }

    fn write(&self, path: PathBuf, bytes: &[u8]) -> Result<(), TrainError> {
        write_atomic(&path, bytes).map_err(io(path))
    }

    /// Writes `config.toml`, with `out` set to this folder so that it loads back as is.
    pub fn write_config(&self, config: &RunConfig) -> Result<(), TrainError> {
        let config = RunConfig {
            out: Some(self.dir.clone()),
            ..config.clone()
        };
        self.write(self.config_file(), config.to_toml().as_bytes())
    }

    /// Reads `config.toml`; errors name `option` (the flag that gave the folder).
    pub fn read_config(&self, option: &str) -> Result<RunConfig, ConfigError> {
        RunConfig::read(&self.config_file(), option)
    }

    pub fn write_model(&self, spec: &ModelSpec) -> Result<(), TrainError> {
        let text =
            toml::to_string(spec).map_err(|e| TrainError::Invalid(format!("model spec: {e}")))?;
        self.write(self.dir.join(MODEL_FILE), text.as_bytes())
    }

    /// Writes `run.json`, the record of what the run trains on.
    pub fn write_run_record(&self, record: &Value) -> Result<(), TrainError> {
        let mut json = serde_json::to_vec_pretty(record).expect("a JSON object serializes");
        json.push(b'\n');
        self.write(self.run_record_file(), &json)
    }

    /// Reads `run.json`, which must be a JSON object.
    pub fn read_run_record(&self) -> Result<Map<String, Value>, TrainError> {
        let path = self.run_record_file();
        let bytes = std::fs::read(&path).map_err(|e| {
            TrainError::Resume(format!(
                "cannot read {}: {e} (it records the data the run was trained on)",
                path.display()
            ))
        })?;
        match serde_json::from_slice(&bytes) {
            Ok(Value::Object(record)) => Ok(record),
            Ok(_) => Err(TrainError::Resume(format!(
                "{}: expected a JSON object",
                path.display()
            ))),
            Err(e) => Err(TrainError::Resume(format!("{}: {e}", path.display()))),
        }
    }

    /// Rewrites `metrics.jsonl` and `metrics.csv` from the history.
    pub fn write_metrics(&self, history: &[EpochMetrics]) -> Result<(), TrainError> {
        self.write(
            self.dir.join(METRICS_JSONL_FILE),
            metrics::jsonl(history).as_bytes(),
        )?;
        self.write(
            self.dir.join(METRICS_CSV_FILE),
            metrics::csv(history).as_bytes(),
        )
    }

    /// The epochs of `metrics.jsonl`: none when it is absent (no epoch finished).
    pub fn read_metrics(&self) -> Result<Vec<EpochMetrics>, TrainError> {
        let path = self.dir.join(METRICS_JSONL_FILE);
        let text = match std::fs::read_to_string(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            other => other.map_err(io(path.clone()))?,
        };
        text.lines()
            .enumerate()
            .map(|(i, line)| {
                serde_json::from_str(line).map_err(|e| TrainError::Unreadable {
                    path: path.clone(),
                    problem: format!("line {}: {e}", i + 1),
                })
            })
            .collect()
    }

    pub fn write_summary(&self, summary: &Summary) -> Result<(), TrainError> {
        let mut json = serde_json::to_vec_pretty(summary).expect("a summary serializes");
        json.push(b'\n');
        self.write(self.summary_file(), &json)
    }

    pub fn read_summary(&self) -> Result<Summary, TrainError> {
        let path = self.summary_file();
        let bytes = std::fs::read(&path).map_err(io(path.clone()))?;
        serde_json::from_slice(&bytes).map_err(|e| TrainError::Unreadable {
            path,
            problem: e.to_string(),
        })
    }

    /// Writes the final weights (PyTorch's names and layouts), tagged with the version.
    pub fn write_weights(&self, net: &Network) -> Result<(), TrainError> {
        let metadata = HashMap::from([(
            "regstudy_version".to_string(),
            env!("CARGO_PKG_VERSION").to_string(),
        )]);
        save_weights(&self.weights_file(), &net.params(), metadata)?;
        Ok(())
    }

    /// The histogram of the kernels in `weights.safetensors` (tensors of rank 2 and more).
    pub fn read_weight_histogram(&self) -> Result<WeightHistogram, TrainError> {
        let (tensors, _) = read_tensors(&self.weights_file())?;
        let kernels = tensors
            .values()
            .filter(|(shape, _)| shape.len() >= 2)
            .map(|(_, values)| values.as_slice());
        Ok(WeightHistogram::of(kernels))
    }

    /// Writes the checkpoint of `state.epochs_done` (see [`checkpoint::save`]).
    pub fn save_checkpoint(
        &self,
        net: &Network,
        optimizer: &dyn Optimizer,
        regularizers: &Regularizers,
        state: &TrainState,
    ) -> Result<(), TrainError> {
        checkpoint::save(&self.checkpoint_dir(), net, optimizer, regularizers, state)
    }

    /// Loads the last checkpoint into `net`, `optimizer` and `regularizers` (see
    /// [`checkpoint::load`]).
    pub fn load_checkpoint(
        &self,
        net: &mut Network,
        optimizer: &mut dyn Optimizer,
        regularizers: &mut Regularizers,
    ) -> Result<TrainState, TrainError> {
        checkpoint::load(&self.checkpoint_dir(), net, optimizer, regularizers)
    }

    /// Saves the weights of a new best epoch (see [`checkpoint::save_best`]).
    pub fn save_best(&self, net: &Network, epoch: usize) -> Result<(), TrainError> {
        checkpoint::save_best(&self.checkpoint_dir(), net, epoch)
    }

    /// Loads the weights of best epoch `epoch` into `net`.
    pub fn load_best(&self, net: &mut Network, epoch: usize) -> Result<(), TrainError> {
        let path = checkpoint::best_file(&self.checkpoint_dir(), epoch);
        crate::weights_file::load_weights(&path, &mut net.params_mut())?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::regularize::{SparsityReport, WeightStats};

    fn scratch(name: &str) -> RunFolder {
        let dir =
            std::env::temp_dir().join(format!("regstudy-folder-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        RunFolder::new(dir)
    }

    fn summary() -> Summary {
        Summary {
            status: "completed".into(),
            message: None,
            test_acc: Some(0.75),
            test_loss: Some(0.5),
            best_val_acc: Some(0.7),
            best_val_loss: Some(0.6),
            best_epoch: Some(2),
            tested_epoch: Some(3),
            epochs_run: 3,
            mean_epoch_seconds: 1.5,
            mean_train_seconds: 1.25,
            sparsity: SparsityReport {
                overall: WeightStats::default(),
                layers: Vec::new(),
            },
            seed: 7,
            threads: 2,
            version: "0.0.0".into(),
            classes: 10,
        }
    }

    fn epoch(n: usize) -> EpochMetrics {
        EpochMetrics {
            epoch: n,
            train_data_loss: 1.0 / n as f64,
            train_penalty: 0.0,
            train_loss: 1.0 / n as f64,
            train_acc: 0.5,
            val_loss: Some(0.75),
            val_acc: None,
            gap_loss: None,
            gap_acc: None,
            train_eval_loss: None,
            train_eval_acc: None,
            eval_gap_acc: None,
            eval_gap_loss: None,
            lr: 0.001,
            seconds: 2.0,
            train_seconds: 1.0,
            images_per_s: 100.0,
            threads: Some(1),
            sparsity: SparsityReport::default(),
        }
    }

    #[test]
    fn summary_config_and_metrics_read_back_as_written() {
        let folder = scratch("round-trip");
        folder.write_summary(&summary()).unwrap();
        assert_eq!(folder.read_summary().unwrap(), summary());
        let config = RunConfig {
            dataset: "mnist".into(),
            model: "simple-cnn".into(),
            epochs: 4,
            ..RunConfig::default()
        };
        folder.write_config(&config).unwrap();
        let read = folder.read_config("resume").unwrap();
        assert_eq!(
            read.out.as_deref(),
            Some(folder.path()),
            "out is the folder"
        );
        assert_eq!(RunConfig { out: None, ..read }, config);
        assert!(folder.is_started());
        let history = vec![epoch(1), epoch(2)];
        folder.write_metrics(&history).unwrap();
        assert_eq!(folder.read_metrics().unwrap(), history);
        std::fs::remove_dir_all(folder.path()).unwrap();
    }

    #[test]
    fn a_folder_without_metrics_has_no_epochs_and_a_torn_line_is_named() {
        let folder = scratch("metrics");
        assert_eq!(folder.read_metrics().unwrap(), Vec::new());
        std::fs::write(folder.path().join("metrics.jsonl"), "{\"epoch\": 1").unwrap();
        let e = folder.read_metrics().unwrap_err().to_string();
        assert!(e.contains("metrics.jsonl") && e.contains("line 1"), "{e}");
        std::fs::remove_dir_all(folder.path()).unwrap();
    }

    #[test]
    fn writes_replace_files_whole_and_leave_no_temporary_file() {
        let folder = scratch("atomic");
        let mut first = summary();
        first.message = Some("x".repeat(10_000));
        folder.write_summary(&first).unwrap();
        folder.write_summary(&summary()).unwrap();
        assert_eq!(folder.read_summary().unwrap(), summary());
        let names: Vec<String> = std::fs::read_dir(folder.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["summary.json"]);
        std::fs::remove_dir_all(folder.path()).unwrap();
    }

    #[test]
    fn a_folder_holding_only_an_owner_record_holds_no_run() {
        let folder = scratch("owner-only");
        assert!(!folder.holds_run());
        std::fs::write(folder.owner_file(), "{}").unwrap();
        assert!(!folder.holds_run());
        assert!(!folder.is_started());
        std::fs::write(folder.path().join("model.toml"), "").unwrap();
        assert!(folder.holds_run());
        folder.remove().unwrap();
        assert!(!folder.path().exists());
        folder.remove().unwrap();
    }

    #[test]
    fn an_unreadable_summary_names_the_file() {
        let folder = scratch("bad-summary");
        std::fs::write(folder.summary_file(), "{").unwrap();
        let e = folder.read_summary().unwrap_err().to_string();
        assert!(e.contains("summary.json"), "{e}");
        std::fs::remove_dir_all(folder.path()).unwrap();
    }
}
