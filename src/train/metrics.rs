//! What is recorded per epoch and at the end, and how it is written.

use crate::regularize::{SparsityReport, WeightStats};
use serde::{Deserialize, Serialize};
use std::fmt::Write;

/// One epoch's record (a line of `metrics.jsonl`, a row of `metrics.csv`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpochMetrics {
    /// 1-based.
    pub epoch: usize,
    /// Mean cross-entropy over the epoch's training batches (dropout active, weights
    /// changing during the epoch, as Keras reports it).
    pub train_data_loss: f64,
    /// The penalty part of the objective at the end of the epoch (see
    /// [`crate::regularize`]).
    pub train_penalty: f64,
    /// `train_data_loss + train_penalty`.
    pub train_loss: f64,
    /// Fraction of training images classified correctly during the epoch.
    pub train_acc: f64,
    /// Mean cross-entropy on the validation split at the end of the epoch.
    pub val_loss: Option<f64>,
    pub val_acc: Option<f64>,
    /// Generalization gap in loss: `val_loss - train_data_loss`.
    pub gap_loss: Option<f64>,
    /// Generalization gap in accuracy: `train_acc - val_acc`.
    pub gap_acc: Option<f64>,
    pub lr: f64,
    /// Wall time of the epoch: training, validation and statistics (not the checkpoint).
    pub seconds: f64,
    /// Wall time of the training batches only.
    pub train_seconds: f64,
    /// Training images per second of `train_seconds`.
    pub images_per_s: f64,
    /// Kernel sparsity and norms at the end of the epoch.
    pub sparsity: SparsityReport,
}

/// `summary.json`: the outcome of the run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// `completed`, `early_stopped` or `diverged`.
    pub status: String,
    /// Why the run ended, when it did not complete.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Test accuracy and loss of the final weights (the best epoch's with early stopping);
    /// absent for a diverged run.
    pub test_acc: Option<f64>,
    pub test_loss: Option<f64>,
    /// Highest validation accuracy of any epoch.
    pub best_val_acc: Option<f64>,
    /// Lowest validation loss, and its epoch (the early-stopping criterion).
    pub best_val_loss: Option<f64>,
    pub best_epoch: Option<usize>,
    pub epochs_run: usize,
    pub mean_epoch_seconds: f64,
    /// Kernel sparsity of the final weights.
    pub sparsity: SparsityReport,
    pub seed: u64,
    pub threads: usize,
    pub version: String,
}

/// The header of the per-epoch console lines.
pub fn console_header() -> String {
    format!(
        "{:>5} {:>10} {:>9} {:>8} {:>10} {:>8} {:>8} {:>8} {:>8} {:>9}",
        "epoch",
        "data_loss",
        "penalty",
        "acc",
        "val_loss",
        "val_acc",
        "gap",
        "zeros",
        "sec",
        "img/s"
    )
}

/// One fixed-column console line.
pub fn console_line(m: &EpochMetrics) -> String {
    let opt = |v: Option<f64>, pct: bool| match v {
        Some(v) if pct => format!("{:.2}%", 100.0 * v),
        Some(v) => format!("{v:.4}"),
        None => "-".into(),
    };
    format!(
        "{:>5} {:>10.4} {:>9.4} {:>7.2}% {:>10} {:>8} {:>8} {:>7.2}% {:>8.1} {:>9.0}",
        m.epoch,
        m.train_data_loss,
        m.train_penalty,
        100.0 * m.train_acc,
        opt(m.val_loss, false),
        opt(m.val_acc, true),
        opt(m.gap_acc, true),
        100.0 * m.sparsity.overall.zero_fraction,
        m.seconds,
        m.images_per_s
    )
}

/// `metrics.jsonl`: one JSON object per epoch.
pub fn jsonl(history: &[EpochMetrics]) -> String {
    history
        .iter()
        .map(|m| serde_json::to_string(m).expect("metrics serialize") + "\n")
        .collect()
}

const STAT_COLUMNS: [&str; 6] = [
    "zero_frac",
    "below_1e-4_frac",
    "below_1e-3_frac",
    "below_1e-2_frac",
    "l1_norm",
    "l2_norm",
];

fn stat_values(s: &WeightStats) -> [f64; 6] {
    let b = s.below_fraction;
    [s.zero_fraction, b[0], b[1], b[2], s.l1_norm, s.l2_norm]
}

/// `metrics.csv`: the scalar metrics, the overall sparsity, then each kernel's
/// (`<param>:<stat>` columns).
pub fn csv(history: &[EpochMetrics]) -> String {
    let mut out = String::from(
        "epoch,train_data_loss,train_penalty,train_loss,train_acc,val_loss,val_acc,gap_loss,\
         gap_acc,lr,seconds,train_seconds,images_per_s",
    );
    for stat in STAT_COLUMNS {
        let _ = write!(out, ",{stat}");
    }
    if let Some(first) = history.first() {
        for layer in &first.sparsity.layers {
            for stat in STAT_COLUMNS {
                let _ = write!(out, ",{}:{stat}", layer.name);
            }
        }
    }
    out.push('\n');
    let opt = |v: Option<f64>| v.map_or(String::new(), |v| v.to_string());
    for m in history {
        let _ = write!(
            out,
            "{},{},{},{},{},{},{},{},{},{},{},{},{}",
            m.epoch,
            m.train_data_loss,
            m.train_penalty,
            m.train_loss,
            m.train_acc,
            opt(m.val_loss),
            opt(m.val_acc),
            opt(m.gap_loss),
            opt(m.gap_acc),
            m.lr,
            m.seconds,
            m.train_seconds,
            m.images_per_s
        );
        let stats =
            std::iter::once(&m.sparsity.overall).chain(m.sparsity.layers.iter().map(|l| &l.stats));
        for s in stats {
            for v in stat_values(s) {
                let _ = write!(out, ",{v}");
            }
        }
        out.push('\n');
    }
    out
}
