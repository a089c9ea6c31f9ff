//! How a run ended, as a value: [`RunOutcome`] carries everything a caller records (the
//! summary, the weight statistics, the epochs), so nobody reads the run folder back.

use super::folder::RunFolder;
use super::metrics::{EpochMetrics, Summary};
use super::TrainError;
use crate::regularize::WeightStatistics;

/// What a finished run left: its folder, summary, final weights' statistics and epochs.
#[derive(Clone, Debug, PartialEq)]
pub struct RunReport {
    pub folder: RunFolder,
    /// The summary, as written to `summary.json`.
    pub summary: Summary,
    /// Of the tested weights; for a diverged run, of the last weights (possibly not finite).
    pub weights: WeightStatistics,
    /// Every epoch of the run, as in `metrics.jsonl`.
    pub history: Vec<EpochMetrics>,
}

/// How a run ended. Each variant is a run that went to its end and wrote its summary; a run
/// that could not start or continue is a [`TrainError`] instead.
#[derive(Clone, Debug, PartialEq)]
pub enum RunOutcome {
    /// Every epoch trained, then tested.
    Completed(RunReport),
    /// Early stopping ended training; the best epoch's weights were restored and tested.
    EarlyStopped(RunReport),
    /// A non-finite loss ended training; nothing was tested (`summary.message` says where).
    Diverged(RunReport),
}

impl RunOutcome {
    pub fn report(&self) -> &RunReport {
        match self {
            RunOutcome::Completed(r) | RunOutcome::EarlyStopped(r) | RunOutcome::Diverged(r) => r,
        }
    }

    pub fn into_report(self) -> RunReport {
        match self {
            RunOutcome::Completed(r) | RunOutcome::EarlyStopped(r) | RunOutcome::Diverged(r) => r,
        }
    }

    pub fn summary(&self) -> &Summary {
        &self.report().summary
    }

    /// The run's result where divergence is a failure (`regstudy train` exits non-zero):
    /// a diverged run is [`TrainError::Diverged`].
    pub fn into_result(self) -> Result<RunReport, TrainError> {
        match self {
            RunOutcome::Diverged(report) => Err(TrainError::Diverged(report.divergence())),
            other => Ok(other.into_report()),
        }
    }
}

impl RunReport {
    /// Why and where the run diverged, and where its summary is.
    pub fn divergence(&self) -> String {
        format!(
            "{}; summary in {}",
            self.summary
                .message
                .as_deref()
                .unwrap_or("a non-finite loss"),
            self.folder.summary_file().display()
        )
    }
}
