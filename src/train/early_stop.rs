//! Early stopping on the validation loss.

use serde::{Deserialize, Serialize};

/// Tracks the lowest validation loss. An epoch improves when its loss is strictly lower than
/// the best so far; after `patience` epochs in a row without improvement, training stops.
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
}
