//! How a method's grid point is chosen. The runner needs the choice to start the
//! confirmation runs, and the report shows it; both call [`choose`].
//!
//! A point is scored by the validation metric of exactly the weights whose test accuracy is
//! reported: the last epoch's weights, or, under early stopping, the restored epoch's
//! ([`tested_validation`]). The best validation accuracy over any epoch is not used: a weak
//! penalty that peaks early and then overfits would win by its peak and be reported at its
//! overfit end.
//!
//! A point is not eligible when
//! - any of its trials diverged or failed: a point where 2 of 3 seeds diverged is not
//!   scored by its survivor;
//! - any of its trials was pruned ([`crate::study::prune`]): only points trained to the
//!   full budget on every search seed are chosen;
//! - it is at chance ([`at_chance`]): its mean validation accuracy is below 20% above chance,
//!   `1.2 / classes`. The margin is there because a network that predicts one class scores
//!   that class's share, above `1 / classes` when the classes are not balanced (11.35% on
//!   MNIST's test set). The spread over seeds is not used: with two or three seeds a
//!   t-interval is so wide that it reaches chance for networks that plainly learned (85%
//!   and 100%), while one run on thousands of images already tells learning from chance.
//!
//! Among eligible points the highest mean score wins (validation accuracy, or the negated
//! validation loss); ties go to the earlier point.

use super::spec::Selection;
use crate::stats::Estimate;
use crate::train::{EpochMetrics, Summary};
use crate::trial::{TrialRecord, TrialState};

/// The validation figures of the weights a trial tested.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TestedValidation {
    /// The epoch whose weights were tested (1-based).
    pub epoch: usize,
    pub acc: f64,
    pub loss: f64,
}

/// The epoch whose weights a finished run tested: the summary's `tested_epoch`; for a
/// summary written before that field existed, the best epoch under early stopping, else
/// the last epoch run.
pub fn tested_epoch(summary: &Summary, early_stopping: bool) -> Option<usize> {
    summary.tested_epoch.or(if early_stopping {
        summary.best_epoch
    } else {
        (summary.epochs_run > 0).then_some(summary.epochs_run)
    })
}

/// The validation accuracy and loss of the tested weights, read from the run's epochs.
/// `None` when the run has no validation split or the epoch was not recorded.
pub fn tested_validation(
    summary: &Summary,
    early_stopping: bool,
    epochs: &[EpochMetrics],
) -> Option<TestedValidation> {
    let epoch = tested_epoch(summary, early_stopping)?;
    let m = epochs.iter().find(|m| m.epoch == epoch)?;
    Some(TestedValidation {
        epoch,
        acc: m.val_acc?,
        loss: m.val_loss?,
    })
}

/// Whether an accuracy estimate over seeds is at chance: its mean is below `1.2 / classes`.
/// `false` when the number of classes is unknown (0).
pub fn at_chance(acc: &Estimate, classes: usize) -> bool {
    classes > 0 && acc.mean < 1.2 / classes as f64
}

/// Why a point cannot be chosen.
#[derive(Clone, Debug, PartialEq)]
pub enum Exclusion {
    /// Some of its trials diverged or failed.
    Unstable {
        diverged: usize,
        failed: usize,
        of: usize,
    },
    /// The study's pruning rule stopped some of its trials early.
    Pruned { pruned: usize, of: usize },
    /// Its validation accuracy cannot be told from chance, `1 / classes`.
    AtChance { chance: f64 },
    /// No trial of it is done with a validation score.
    NoScore,
}

impl std::fmt::Display for Exclusion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Exclusion::Unstable {
                diverged,
                failed,
                of,
            } => {
                let mut parts = Vec::new();
                if *diverged > 0 {
                    parts.push(format!("{diverged} of {of} diverged"));
                }
                if *failed > 0 {
                    parts.push(format!("{failed} of {of} failed"));
                }
                write!(f, "{}", parts.join(", "))
            }
            Exclusion::Pruned { pruned, of } => write!(f, "pruned ({pruned} of {of} trials)"),
            Exclusion::AtChance { chance } => write!(
                f,
                "at chance (mean validation accuracy below 1.2/classes = {:.1}%)",
                120.0 * chance
            ),
            Exclusion::NoScore => f.write_str("no validation score"),
        }
    }
}

/// One grid point's standing in the choice.
#[derive(Clone, Debug, PartialEq)]
pub struct PointScore {
    /// Validation accuracy and loss of the tested weights, over the done trials.
    pub val_acc: Option<Estimate>,
    pub val_loss: Option<Estimate>,
    /// Trials of the point in each final state, and all of them.
    pub done: usize,
    pub diverged: usize,
    pub failed: usize,
    pub pruned: usize,
    pub trials: usize,
    pub excluded: Option<Exclusion>,
}

impl PointScore {
    /// Scores the trials of one point; `epochs` gives each trial's recorded epochs.
    pub fn of<'a>(
        trials: &[&TrialRecord],
        epochs: impl Fn(i64) -> &'a [EpochMetrics],
    ) -> PointScore {
        let classes = classes_of(trials);
        let count = |state| trials.iter().filter(|t| t.state == state).count();
        let (diverged, failed) = (count(TrialState::Diverged), count(TrialState::Failed));
        let pruned = count(TrialState::Pruned);
        let tested: Vec<TestedValidation> = trials
            .iter()
            .filter(|t| t.state == TrialState::Done)
            .filter_map(|t| {
                let summary = t.summary.as_ref()?;
                tested_validation(summary, t.trial.config.patience.is_some(), epochs(t.id))
            })
            .collect();
        let val_acc = Estimate::of(&tested.iter().map(|v| v.acc).collect::<Vec<_>>());
        let val_loss = Estimate::of(&tested.iter().map(|v| v.loss).collect::<Vec<_>>());
        let excluded = if diverged + failed > 0 {
            Some(Exclusion::Unstable {
                diverged,
                failed,
                of: trials.len(),
            })
        } else if pruned > 0 {
            Some(Exclusion::Pruned {
                pruned,
                of: trials.len(),
            })
        } else if val_acc.is_some_and(|acc| at_chance(&acc, classes)) {
            Some(Exclusion::AtChance {
                chance: 1.0 / classes as f64,
            })
        } else if val_acc.is_none() {
            Some(Exclusion::NoScore)
        } else {
            None
        };
        PointScore {
            val_acc,
            val_loss,
            done: count(TrialState::Done),
            diverged,
            failed,
            pruned,
            trials: trials.len(),
            excluded,
        }
    }

    /// The selection score, higher is better (validation loss is negated); `None` when the
    /// point is not eligible.
    pub fn score(&self, select: Selection) -> Option<f64> {
        if self.excluded.is_some() {
            return None;
        }
        let score = match select {
            Selection::ValAcc => self.val_acc?.mean,
            Selection::ValLoss => -self.val_loss?.mean,
        };
        score.is_finite().then_some(score)
    }
}

/// The number of classes the trials' networks tell apart, from their summaries (0 when no
/// summary says).
pub fn classes_of(trials: &[&TrialRecord]) -> usize {
    trials
        .iter()
        .filter_map(|t| t.summary.as_ref())
        .map(|s| s.classes)
        .max()
        .unwrap_or(0)
}

/// The eligible point with the best score; ties go to the earlier point.
pub fn choose(points: &[PointScore], select: Selection) -> Option<usize> {
    let mut best: Option<(usize, f64)> = None;
    for (i, p) in points.iter().enumerate() {
        if let Some(score) = p.score(select) {
            if best.is_none_or(|(_, b)| score > b) {
                best = Some((i, score));
            }
        }
    }
    best.map(|(i, _)| i)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_accuracy_is_at_chance_when_its_mean_is_less_than_a_fifth_above_chance() {
        let of = |xs: &[f64]| Estimate::of(xs).unwrap();
        // Two seeds at 10.1% and 11.5%: mean 10.8% (below 12%).
        assert!(at_chance(&of(&[0.101, 0.115]), 10));
        // Every seed calls MNIST's most frequent class: 11.35%, no spread.
        assert!(at_chance(&of(&[0.1135, 0.1135]), 10));
        // Learned, although two seeds give an interval that reaches below chance.
        assert!(!at_chance(&of(&[0.85, 1.0]), 10));
        assert!(!at_chance(&of(&[0.13]), 10));
        assert!(at_chance(&of(&[0.005]), 200) && !at_chance(&of(&[0.02]), 200));
        // Unknown number of classes: never flagged.
        assert!(!at_chance(&of(&[0.0, 0.0]), 0));
    }
}
