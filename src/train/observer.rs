//! What a run tells whoever watches it. The library does not print: the command line draws
//! progress bars and per-epoch lines from these calls, a study records epochs in its store.

use super::folder::RunFolder;
use super::metrics::EpochMetrics;
use super::outcome::RunOutcome;
use crate::data::{DownloadObserver, Unobserved};

/// A run about to train (its first epoch, or the one after its checkpoint).
#[derive(Clone, Copy, Debug)]
pub struct RunStart<'a> {
    pub folder: &'a RunFolder,
    /// Epochs finished before (by a resumed run's earlier attempts).
    pub epochs_done: usize,
    /// Epochs the run trains in all.
    pub epochs: usize,
}

/// Where the training pass of an epoch is, after one batch.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BatchProgress {
    pub epoch: usize,
    /// The batch just done, from 1.
    pub batch: usize,
    /// Batches in the epoch.
    pub batches: usize,
    /// Mean training loss over the epoch's batches so far.
    pub mean_loss: f64,
    /// Training accuracy over the epoch's batches so far, in [0, 1].
    pub accuracy: f64,
}

/// Told what a run does, in order: `run_started`, then per epoch `epoch_started`,
/// `batch_done` per batch and `epoch_finished`, then `run_finished` (unless the run ends
/// with an error). Calls come from the thread that trains.
pub trait TrainObserver: Sync {
    fn run_started(&self, _start: &RunStart) {}

    fn epoch_started(&self, _epoch: usize, _batches: usize) {}

    fn batch_done(&self, _progress: &BatchProgress) {}

    /// An epoch's record, once it and the epoch's checkpoint are on disk, so that whatever
    /// the observer stores never runs ahead of what a resumed run continues from. An `Err`
    /// stops the run with [`super::TrainError::Stopped`] (a study's worker that lost its
    /// trial).
    fn epoch_finished(&self, _metrics: &EpochMetrics) -> Result<(), String> {
        Ok(())
    }

    fn run_finished(&self, _outcome: &RunOutcome) {}

    /// Something went wrong that does not change the run's outcome (its summary could not
    /// be written).
    fn warning(&self, _message: &str) {}

    /// Told how the downloads of missing data files go, before the run starts.
    fn downloads(&self) -> &dyn DownloadObserver {
        &Unobserved
    }
}

/// Watches nothing.
#[derive(Clone, Copy, Debug, Default)]
pub struct Silent;

impl TrainObserver for Silent {}
