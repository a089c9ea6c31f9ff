//! A study's results in other tools' formats: TensorBoard event files (one run per trial,
//! scalars per epoch) and CSV (one row per trial, one row per trial and epoch).

pub mod tensorboard;

use crate::fsio::write_atomic;
use crate::store::{Store, StoreError};
use crate::train::EpochMetrics;
use crate::trial::TrialRecord;
use std::fmt::Write;
use std::path::{Path, PathBuf};
use tensorboard::EventFile;

/// An export's failure.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The cause is part of the message, not a source, so it is shown once.
    #[error("{}: {cause}", path.display())]
    Io {
        path: PathBuf,
        cause: std::io::Error,
    },
}

/// The scalars of an epoch, under TensorBoard tags.
fn scalars(m: &EpochMetrics) -> Vec<(&'static str, f64)> {
    let mut s = vec![
        ("train/loss", m.train_loss),
        ("train/data_loss", m.train_data_loss),
        ("train/penalty", m.train_penalty),
        ("train/accuracy", m.train_acc),
        ("sparsity/zero_fraction", m.sparsity.overall.zero_fraction),
        ("sparsity/below_1e-3", m.sparsity.overall.below_fraction[1]),
        ("time/epoch_seconds", m.seconds),
        ("time/images_per_second", m.images_per_s),
    ];
    for (tag, value) in [
        ("val/loss", m.val_loss),
        ("val/accuracy", m.val_acc),
        ("gap/accuracy", m.gap_acc),
        ("gap/loss", m.gap_loss),
    ] {
        if let Some(v) = value {
            s.push((tag, v));
        }
    }
    s
}

/// The folder name of a trial's TensorBoard run: its run folder's name.
fn run_name(trial: &TrialRecord) -> String {
    trial
        .trial
        .config
        .out
        .as_ref()
        .and_then(|p| p.file_name())
        .map_or_else(
            || format!("trial-{}", trial.trial.number),
            |n| n.to_string_lossy().into_owned(),
        )
}

/// Writes `<out>/<run>/events.out.tfevents.<time>.regstudy` for every trial with epochs;
/// point TensorBoard at `out`. Returns the number of files written.
pub fn tensorboard(store: &dyn Store, study: &str, out: &Path) -> Result<usize, ExportError> {
    let started = store.study(study)?.created_at;
    let mut written = 0;
    for trial in store.trials(study)? {
        let epochs = store.epochs(trial.id)?;
        if epochs.is_empty() {
            continue;
        }
        let mut file = EventFile::new(started);
        let mut clock = started;
        for m in &epochs {
            clock += m.seconds;
            file.scalars(clock, m.epoch as i64, &scalars(m));
        }
        let dir = out.join(run_name(&trial));
        let path = dir.join(format!("events.out.tfevents.{}.regstudy", started as u64));
        create_dir(&dir)?;
        write_atomic(&path, &file.into_bytes()).map_err(|cause| ExportError::Io { path, cause })?;
        written += 1;
    }
    Ok(written)
}

fn create_dir(dir: &Path) -> Result<(), ExportError> {
    std::fs::create_dir_all(dir).map_err(|cause| ExportError::Io {
        path: dir.into(),
        cause,
    })
}

/// Writes `<out>/trials.csv` (one row per trial: settings and outcome) and
/// `<out>/epochs.csv` (one row per trial and epoch).
pub fn csv(store: &dyn Store, study: &str, out: &Path) -> Result<(), ExportError> {
    let trials = store.trials(study)?;
    let mut trial_rows = String::from(
        "trial,group,method,point,seed,phase,state,epochs_run,test_acc,test_loss,best_val_acc,best_epoch,tested_epoch,zero_fraction,below_1e-3_fraction,mean_epoch_seconds,run_dir\n",
    );
    let mut epoch_rows = String::from(
        "trial,group,method,point,seed,epoch,train_loss,train_data_loss,train_penalty,train_acc,val_loss,val_acc,gap_acc,zero_fraction,below_1e-3_fraction,seconds\n",
    );
    for trial in &trials {
        let t = &trial.trial;
        let point = quote(&serde_json::to_string(&t.point).unwrap_or_default());
        let key = format!(
            "{},{},{},{point},{}",
            t.number,
            quote(&t.group),
            quote(&t.method),
            t.seed
        );
        let s = trial.summary.as_ref();
        let _ = writeln!(
            trial_rows,
            "{key},{},{},{},{},{},{},{},{},{},{},{},{}",
            t.phase,
            trial.state,
            s.map_or(String::new(), |s| s.epochs_run.to_string()),
            opt(s.and_then(|s| s.test_acc)),
            opt(s.and_then(|s| s.test_loss)),
            opt(s.and_then(|s| s.best_val_acc)),
            s.and_then(|s| s.best_epoch)
                .map_or(String::new(), |e| e.to_string()),
            s.and_then(|s| s.tested_epoch)
                .map_or(String::new(), |e| e.to_string()),
            opt(s.map(|s| s.sparsity.overall.zero_fraction)),
            opt(s.map(|s| s.sparsity.overall.below_fraction[1])),
            opt(s.map(|s| s.mean_epoch_seconds)),
            quote(
                &t.config
                    .out
                    .as_ref()
                    .map_or(String::new(), |p| p.display().to_string())
            ),
        );
        for m in store.epochs(trial.id)? {
            let _ = writeln!(
                epoch_rows,
                "{key},{},{},{},{},{},{},{},{},{},{},{}",
                m.epoch,
                m.train_loss,
                m.train_data_loss,
                m.train_penalty,
                m.train_acc,
                opt(m.val_loss),
                opt(m.val_acc),
                opt(m.gap_acc),
                m.sparsity.overall.zero_fraction,
                m.sparsity.overall.below_fraction[1],
                m.seconds
            );
        }
    }
    create_dir(out)?;
    for (name, text) in [("trials.csv", trial_rows), ("epochs.csv", epoch_rows)] {
        let path = out.join(name);
        write_atomic(&path, text.as_bytes()).map_err(|cause| ExportError::Io { path, cause })?;
    }
    Ok(())
}

fn opt(value: Option<f64>) -> String {
    value.map_or(String::new(), |v| v.to_string())
}

/// A CSV field, quoted when it holds a comma, quote or line break (RFC 4180).
fn quote(field: &str) -> String {
    if field.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", field.replace('"', "\"\""))
    } else {
        field.to_string()
    }
}
