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
    /// Fraction of training images classified correctly during the epoch, on the fly:
    /// dropout, batch-norm batch statistics and augmentation active, weights changing from
    /// batch to batch. Biased low as a measure of the end-of-epoch weights; see
    /// `train_eval_acc` for the honest figure.
    pub train_acc: f64,
    /// Mean cross-entropy on the validation split at the end of the epoch.
    pub val_loss: Option<f64>,
    pub val_acc: Option<f64>,
    /// On-the-fly generalization gap in loss: `val_loss - train_data_loss`. Biased low (the
    /// training figure is taken with dropout, batch statistics and augmentation active and
    /// the weights changing); kept for comparison with papers that quote it. See
    /// `eval_gap_loss`.
    pub gap_loss: Option<f64>,
    /// On-the-fly generalization gap in accuracy: `train_acc - val_acc`. Biased low (often
    /// negative) for the same reasons as `gap_loss`; kept for comparison with papers that
    /// quote it. See `eval_gap_acc`.
    pub gap_acc: Option<f64>,
    /// Mean cross-entropy of the end-of-epoch weights in evaluation mode (no dropout,
    /// batch-norm running statistics, no augmentation) on a fixed subset of the training
    /// part, as large as the validation split, drawn once per run (stratified, from the
    /// run's seed). `None` without a validation split (or in records older than the field).
    #[serde(default)]
    pub train_eval_loss: Option<f64>,
    /// Accuracy of the end-of-epoch weights in evaluation mode on that fixed training
    /// subset (see `train_eval_loss`).
    #[serde(default)]
    pub train_eval_acc: Option<f64>,
    /// Generalization gap in accuracy, both sides measured the same way (evaluation mode,
    /// end-of-epoch weights): `train_eval_acc - val_acc`.
    #[serde(default)]
    pub eval_gap_acc: Option<f64>,
    /// Generalization gap in loss, both sides measured the same way (evaluation mode,
    /// end-of-epoch weights): `val_loss - train_eval_loss`.
    #[serde(default)]
    pub eval_gap_loss: Option<f64>,
    pub lr: f64,
    /// Wall time of the epoch: training, validation, the evaluation-mode pass over the
    /// training subset and statistics (not the checkpoint).
    pub seconds: f64,
    /// Wall time of the training batches only.
    pub train_seconds: f64,
    /// Training images per second of `train_seconds`.
    pub images_per_s: f64,
    /// Threads that trained the epoch, so that its cost in core-seconds is
    /// `seconds * threads`; `None` in records older than the field.
    #[serde(default)]
    pub threads: Option<usize>,
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
    /// Validation loss (cross-entropy) of the best epoch, and that epoch: the one early
    /// stopping picks, by the lowest value of the run's `early_stop_monitor`.
    pub best_val_loss: Option<f64>,
    pub best_epoch: Option<usize>,
    /// The epoch whose weights were tested: the restored best epoch with early stopping
    /// (`patience` set), else the last epoch run; `None` for a diverged run or a run of no
    /// epoch (or in summaries older than the field).
    #[serde(default)]
    pub tested_epoch: Option<usize>,
    pub epochs_run: usize,
    pub mean_epoch_seconds: f64,
    /// Mean over the epochs run of `train_seconds` (training batches only): `sum / epochs_run`,
    /// 0 without epochs.
    #[serde(default)]
    pub mean_train_seconds: f64,
    /// Kernel sparsity of the final weights.
    pub sparsity: SparsityReport,
    pub seed: u64,
    pub threads: usize,
    pub version: String,
    /// Classes the network tells apart, so that a report can say when an accuracy is at
    /// chance (`1 / classes`); 0 in summaries older than the field.
    #[serde(default)]
    pub classes: usize,
}

/// The header of the per-epoch console lines.
pub fn console_header() -> String {
    format!(
        "{:>5} {:>10} {:>9} {:>8} {:>10} {:>8} {:>8} {:>8} {:>8} {:>8} {:>9}",
        "epoch",
        "data_loss",
        "penalty",
        "acc",
        "val_loss",
        "val_acc",
        "gap",
        "eval_gap",
        "zeros",
        "sec",
        "img/s"
    )
}

/// One fixed-column console line: `acc` and `gap` are the on-the-fly figures, `eval_gap` is
/// `eval_gap_acc`.
pub fn console_line(m: &EpochMetrics) -> String {
    let opt = |v: Option<f64>, pct: bool| match v {
        Some(v) if pct => format!("{:.2}%", 100.0 * v),
        Some(v) => format!("{v:.4}"),
        None => "-".into(),
    };
    format!(
        "{:>5} {:>10.4} {:>9.4} {:>7.2}% {:>10} {:>8} {:>8} {:>8} {:>7.2}% {:>8.1} {:>9.0}",
        m.epoch,
        m.train_data_loss,
        m.train_penalty,
        100.0 * m.train_acc,
        opt(m.val_loss, false),
        opt(m.val_acc, true),
        opt(m.gap_acc, true),
        opt(m.eval_gap_acc, true),
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
         gap_acc,train_eval_loss,train_eval_acc,eval_gap_loss,eval_gap_acc,lr,seconds,\
         train_seconds,images_per_s",
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
            "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}",
            m.epoch,
            m.train_data_loss,
            m.train_penalty,
            m.train_loss,
            m.train_acc,
            opt(m.val_loss),
            opt(m.val_acc),
            opt(m.gap_loss),
            opt(m.gap_acc),
            opt(m.train_eval_loss),
            opt(m.train_eval_acc),
            opt(m.eval_gap_loss),
            opt(m.eval_gap_acc),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> EpochMetrics {
        EpochMetrics {
            epoch: 3,
            train_data_loss: 0.4,
            train_penalty: 0.1,
            train_loss: 0.5,
            train_acc: 0.8,
            val_loss: Some(0.6),
            val_acc: Some(0.85),
            gap_loss: Some(0.2),
            gap_acc: Some(-0.05),
            train_eval_loss: Some(0.25),
            train_eval_acc: Some(0.9375),
            eval_gap_acc: Some(0.0875),
            eval_gap_loss: Some(0.35),
            lr: 0.001,
            seconds: 2.0,
            train_seconds: 1.5,
            images_per_s: 1000.0,
            threads: Some(2),
            sparsity: SparsityReport::default(),
        }
    }

    #[test]
    fn records_written_before_the_evaluation_mode_fields_and_threads_still_parse() {
        let mut json = serde_json::to_value(record()).unwrap();
        let fields = json.as_object_mut().unwrap();
        for key in [
            "train_eval_loss",
            "train_eval_acc",
            "eval_gap_acc",
            "eval_gap_loss",
            "threads",
        ] {
            assert!(fields.remove(key).is_some(), "{key}");
        }
        let old: EpochMetrics = serde_json::from_value(json).unwrap();
        let expected = EpochMetrics {
            train_eval_loss: None,
            train_eval_acc: None,
            eval_gap_acc: None,
            eval_gap_loss: None,
            threads: None,
            ..record()
        };
        assert_eq!(old, expected);
    }

    #[test]
    fn summaries_written_before_tested_epoch_and_mean_train_seconds_still_parse() {
        let json = serde_json::json!({
            "status": "completed",
            "test_acc": 0.9,
            "test_loss": 0.3,
            "best_val_acc": 0.91,
            "best_val_loss": 0.29,
            "best_epoch": 2,
            "epochs_run": 2,
            "mean_epoch_seconds": 1.5,
            "sparsity": SparsityReport::default(),
            "seed": 0,
            "threads": 1,
            "version": "0.1.0",
        });
        let s: Summary = serde_json::from_value(json).unwrap();
        assert_eq!(s.tested_epoch, None);
        assert_eq!(s.mean_train_seconds, 0.0);
    }

    #[test]
    fn the_console_line_has_the_header_columns_and_the_evaluation_mode_gap() {
        let line = console_line(&record());
        let header = console_header();
        assert_eq!(line.len(), header.len(), "{header}\n{line}");
        assert!(header.contains("eval_gap"));
        assert!(line.contains("8.75%"), "{line}");
        let none = EpochMetrics {
            val_loss: None,
            val_acc: None,
            gap_loss: None,
            gap_acc: None,
            train_eval_loss: None,
            train_eval_acc: None,
            eval_gap_acc: None,
            eval_gap_loss: None,
            ..record()
        };
        assert_eq!(console_line(&none).len(), header.len());
    }

    #[test]
    fn the_csv_has_the_evaluation_mode_columns() {
        let csv = csv(&[record()]);
        let mut lines = csv.lines();
        let header: Vec<&str> = lines.next().unwrap().split(',').collect();
        let row: Vec<&str> = lines.next().unwrap().split(',').collect();
        assert_eq!(header.len(), row.len());
        let value = |name: &str| row[header.iter().position(|h| *h == name).unwrap()];
        assert_eq!(value("train_eval_loss"), "0.25");
        assert_eq!(value("train_eval_acc"), "0.9375");
        assert_eq!(value("eval_gap_acc"), "0.0875");
        assert_eq!(value("eval_gap_loss"), "0.35");
        assert_eq!(value("gap_acc"), "-0.05");
    }
}
