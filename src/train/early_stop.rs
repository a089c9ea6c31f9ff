//! Early stopping on the validation loss.

use serde::{Deserialize, Serialize};

/// The validation quantity early stopping minimizes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum EarlyStopMonitor {
    /// The validation cross-entropy (PyTorch-style loops).
    #[default]
    DataLoss,
    /// The validation cross-entropy plus the penalty's value at the epoch's end weights, as
    /// Keras's `val_loss` includes the regularization losses.
    TotalLoss,
}

impl EarlyStopMonitor {
    /// The monitored value of an epoch with validation cross-entropy `val_loss`, whose
    /// end-of-epoch weights have penalty value `penalty`.
    pub fn value(self, val_loss: f64, penalty: f64) -> f64 {
        match self {
            EarlyStopMonitor::DataLoss => val_loss,
            EarlyStopMonitor::TotalLoss => val_loss + penalty,
        }
    }
}

/// Tracks the lowest validation loss (the value of the run's [`EarlyStopMonitor`]). An epoch
/// improves when its loss is strictly lower than the best so far; after `patience` epochs in
/// a row without improvement, training stops.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EarlyStopping {
    /// `None`: never stop early (the best epoch is still tracked).
    pub patience: Option<usize>,
    /// Lowest validation loss so far, and its epoch (1-based).
    pub best: Option<(f64, usize)>,
    /// Epochs since the best one.
    pub bad_epochs: usize,
}

impl EarlyStopping {
    pub fn new(patience: Option<usize>) -> Self {
        Self {
            patience,
            best: None,
            bad_epochs: 0,
        }
    }

    /// Records epoch `epoch`'s validation loss; returns whether it is the new best.
    pub fn update(&mut self, epoch: usize, val_loss: f64) -> bool {
        let improved = self.best.is_none_or(|(best, _)| val_loss < best);
        if improved {
            self.best = Some((val_loss, epoch));
            self.bad_epochs = 0;
        } else {
            self.bad_epochs += 1;
        }
        improved
    }

    /// Whether patience has run out.
    pub fn should_stop(&self) -> bool {
        self.patience.is_some_and(|p| self.bad_epochs >= p)
    }

    /// The best epoch (1-based), if any.
    pub fn best_epoch(&self) -> Option<usize> {
        self.best.map(|(_, e)| e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stops_after_patience_epochs_without_a_lower_loss() {
        let mut stop = EarlyStopping::new(Some(2));
        assert!(stop.update(1, 1.0));
        assert!(stop.update(2, 0.5));
        assert!(!stop.update(3, 0.5));
        assert!(!stop.should_stop());
        assert!(!stop.update(4, 0.7));
        assert!(stop.should_stop());
        assert_eq!(stop.best_epoch(), Some(2));
        let mut never = EarlyStopping::new(None);
        for e in 1..10 {
            never.update(e, e as f64);
        }
        assert!(!never.should_stop());
        assert_eq!(never.best_epoch(), Some(1));
    }

    #[test]
    fn with_total_loss_the_restored_epoch_can_differ_from_the_one_data_loss_picks() {
        // (validation cross-entropy, penalty value) per epoch: the cross-entropy is lowest at
        // epoch 3, but the penalty grew, so the total is lowest at epoch 2.
        let epochs = [(1.0, 0.5), (0.8, 0.3), (0.75, 0.6), (0.9, 0.7), (0.95, 0.8)];
        let best = |monitor: EarlyStopMonitor| {
            let mut stop = EarlyStopping::new(Some(2));
            for (i, &(val_loss, penalty)) in epochs.iter().enumerate() {
                stop.update(i + 1, monitor.value(val_loss, penalty));
                if stop.should_stop() {
                    break;
                }
            }
            stop.best_epoch()
        };
        assert_eq!(best(EarlyStopMonitor::DataLoss), Some(3));
        assert_eq!(best(EarlyStopMonitor::TotalLoss), Some(2));
        assert_eq!(EarlyStopMonitor::default(), EarlyStopMonitor::DataLoss);
    }
}
