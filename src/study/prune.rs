//! Asynchronous successive halving (ASHA; Li et al., "A System for Massively Parallel
//! Hyperparameter Tuning", MLSys 2020) of a method's grid points: a point that is clearly
//! worse than its rivals after a few epochs is stopped, so that the study's budget goes to
//! the points that can still be chosen.
//!
//! Rungs sit at `r, r*eta, r*eta^2, ...` epochs below the trials' last epoch, where `r` is
//! `min_epochs` and `eta` the `reduction`. When a search trial of a method with a grid
//! records the epoch of a rung, its validation score there (the study's `select` metric:
//! accuracy, or the negated loss) is compared with those of the method's trials that ran on
//! the same seed and have reached that rung, itself included. Of these `n` trials it goes on
//! when fewer than `max(1, floor(n / eta))` of them score strictly better; otherwise its
//! point is stopped: the trial ends `pruned`, and so does every other trial of the point,
//! at its next rung or before it starts.
//!
//! - A worker never waits for a rung to fill. The first trials to reach it are compared
//!   with fewer rivals, as in ASHA and Ray Tune's ASHA scheduler: a point is kept while its
//!   rung is young rather than stopped on little evidence, so which points are stopped
//!   depends on the order in which trials reach a rung.
//! - Comparing on one seed keeps seeds out of the comparison: the two trials share their
//!   data split, initialization and batch order.
//! - A pruned trial is never a result. A point with a pruned trial cannot be chosen
//!   ([`crate::study::select::Exclusion::Pruned`]), so only points trained to the full
//!   budget on every search seed are. Confirmation trials, and methods without a grid, are
//!   never pruned.
//! - A trial resumed from a rung's checkpoint (its worker died after recording the rung) is
//!   judged again, with what the rung holds then.

use crate::store::{Store, StoreError};
use crate::train::EpochMetrics;
use crate::trial::{Phase, TrialRecord, TrialState};
use serde::{Deserialize, Serialize};

use super::spec::{Selection, StudySpec};

/// A study's pruning rule, as its spec gives it: `prune = { rule = "asha", min_epochs = 2,
/// reduction = 3 }`. The defaults are Ray Tune's ASHA scheduler's (`grace_period = 1`,
/// `reduction_factor = 4`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PruneRule {
    pub rule: PruneKind,
    /// The first rung, in epochs (`r`).
    #[serde(default = "default_min_epochs")]
    pub min_epochs: usize,
    /// How many times fewer trials go on at each rung than reach it (`eta`); the rungs are
    /// this many times apart.
    #[serde(default = "default_reduction")]
    pub reduction: usize,
}

/// The pruning rules there are.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PruneKind {
    /// Asynchronous successive halving.
    Asha,
}

fn default_min_epochs() -> usize {
    1
}

fn default_reduction() -> usize {
    4
}

impl PruneRule {
    /// Why the rule cannot be used, naming the field; `None` when it can.
    pub fn problem(&self) -> Option<(&'static str, String)> {
        let PruneRule {
            min_epochs,
            reduction,
            ..
        } = *self;
        if min_epochs == 0 {
            return Some(("min_epochs", "expected at least 1 epoch, got 0".into()));
        }
        if reduction < 2 {
            return Some((
                "reduction",
                format!("expected 2 or more (each rung keeps 1/reduction), got {reduction}"),
            ));
        }
        None
    }

    /// The rungs of trials of `epochs` epochs, in epochs: `r, r*eta, ...`, each below
    /// `epochs` (a trial that reaches its last epoch is finished, not judged).
    pub fn rungs(&self, epochs: usize) -> Vec<usize> {
        let PruneRule {
            min_epochs,
            reduction,
            ..
        } = *self;
        let mut rungs = Vec::new();
        let mut rung = min_epochs.max(1);
        while rung < epochs {
            rungs.push(rung);
            rung = match rung.checked_mul(reduction.max(2)) {
                Some(next) => next,
                None => break,
            };
        }
        rungs
    }

    /// How many of `n` trials at a rung go on: `max(1, floor(n / eta))`.
    pub fn kept(&self, n: usize) -> usize {
        (n / self.reduction.max(2)).max(1)
    }

    /// One line for reports: `ASHA (rungs at 2, 6, 18 of 20 epochs; 1/3 go on at each)`.
    pub fn describe(&self, epochs: usize) -> String {
        let reduction = self.reduction;
        let rungs: Vec<String> = self.rungs(epochs).iter().map(usize::to_string).collect();
        format!(
            "asynchronous successive halving (ASHA): rungs at {} of {epochs} epochs; at each, \
             a point goes on while it is in the top 1/{reduction} of the trials of its seed \
             that reached the rung",
            if rungs.is_empty() {
                "none".to_string()
            } else {
                rungs.join(", ")
            }
        )
    }
}

/// Reads the command line's form, `asha` or `asha:min_epochs=2,reduction=3` (keys as in a
/// spec's `prune` table, each optional).
impl std::str::FromStr for PruneRule {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (rule, settings) = text.split_once(':').unwrap_or((text, ""));
        if rule != "asha" {
            return Err(format!("unknown pruning rule `{rule}`; expected `asha`"));
        }
        let mut parsed = PruneRule {
            rule: PruneKind::Asha,
            min_epochs: default_min_epochs(),
            reduction: default_reduction(),
        };
        for setting in settings.split(',').filter(|s| !s.is_empty()) {
            let (key, value) = setting
                .split_once('=')
                .ok_or_else(|| format!("`{setting}`: expected KEY=VALUE"))?;
            let number = value
                .parse::<usize>()
                .map_err(|_| format!("{key}: expected a whole number, got `{value}`"))?;
            match key {
                "min_epochs" => parsed.min_epochs = number,
                "reduction" => parsed.reduction = number,
                other => {
                    return Err(format!(
                        "unknown setting `{other}`; expected min_epochs or reduction"
                    ))
                }
            }
        }
        match parsed.problem() {
            Some((field, problem)) => Err(format!("{field}: {problem}")),
            None => Ok(parsed),
        }
    }
}

/// What the rule says about a trial.
#[derive(Clone, Debug, PartialEq)]
pub enum Judgement {
    /// The trial goes on.
    GoesOn,
    /// The trial's point is stopped; the message says why.
    Pruned(String),
}

/// A trial's score at a rung, higher is better: validation accuracy, or the negated
/// validation loss. `None` when the epoch has no finite validation figure.
fn rung_score(m: &EpochMetrics, select: Selection) -> Option<f64> {
    let score = match select {
        Selection::ValAcc => m.val_acc?,
        Selection::ValLoss => -m.val_loss?,
    };
    score.is_finite().then_some(score)
}

/// Whether two trials belong to the same method's search in the same group.
fn same_search(a: &TrialRecord, b: &TrialRecord) -> bool {
    a.trial.group == b.trial.group
        && a.trial.method == b.trial.method
        && b.trial.phase == Phase::Search
}

/// The study's rule applied to its trials, reading the study's trials and epochs from the
/// store.
pub struct Pruner<'a> {
    rule: PruneRule,
    spec: &'a StudySpec,
    store: &'a dyn Store,
}

impl<'a> Pruner<'a> {
    /// The pruner of `spec`'s study in `store`; `None` when the study prunes nothing.
    pub fn of(spec: &'a StudySpec, store: &'a dyn Store) -> Option<Pruner<'a>> {
        Some(Pruner {
            rule: spec.prune?,
            spec,
            store,
        })
    }

    /// Whether `trial` may be pruned at all: a search trial of a method with a grid.
    fn applies_to(&self, trial: &TrialRecord) -> bool {
        trial.trial.phase == Phase::Search
            && self
                .spec
                .method(&trial.trial.method)
                .is_some_and(|m| self.spec.searches(m))
    }

    /// Whether `trial` may train past `epochs_done` epochs: asked before it starts (or
    /// resumes) and after each epoch it records. Pruned when another trial of its point
    /// was, or when `epochs_done` is a rung at which it is not in the top.
    pub fn judge(&self, trial: &TrialRecord, epochs_done: usize) -> Result<Judgement, StoreError> {
        if !self.applies_to(trial) {
            return Ok(Judgement::GoesOn);
        }
        let siblings = self.store.trials(&self.spec.name)?;
        if let Some(judgement) = point_pruned(trial, &siblings) {
            return Ok(judgement);
        }
        if epochs_done == 0 || !self.is_rung(trial, epochs_done) {
            return Ok(Judgement::GoesOn);
        }
        self.judge_at_rung(trial, epochs_done, &siblings)
    }

    fn is_rung(&self, trial: &TrialRecord, epoch: usize) -> bool {
        self.rule.rungs(trial.trial.config.epochs).contains(&epoch)
    }

    /// The rule at rung `epoch`, over the trials of the same search and seed that recorded
    /// that epoch.
    fn judge_at_rung(
        &self,
        trial: &TrialRecord,
        epoch: usize,
        siblings: &[TrialRecord],
    ) -> Result<Judgement, StoreError> {
        let Some(own) = self.score_at(trial.id, epoch)? else {
            // No validation figure at the rung: nothing to compare (a diverging run ends
            // by itself).
            return Ok(Judgement::GoesOn);
        };
        let mut scores = vec![own];
        for other in siblings.iter().filter(|t| {
            t.id != trial.id && same_search(trial, t) && t.trial.seed == trial.trial.seed
        }) {
            if let Some(score) = self.score_at(other.id, epoch)? {
                scores.push(score);
            }
        }
        let better = scores.iter().filter(|&&s| s > own).count();
        let kept = self.rule.kept(scores.len());
        if better < kept {
            return Ok(Judgement::GoesOn);
        }
        let what = match self.spec.select {
            Selection::ValAcc => format!("validation accuracy {:.2}%", 100.0 * own),
            Selection::ValLoss => format!("validation loss {:.4}", -own),
        };
        Ok(Judgement::Pruned(format!(
            "pruned at epoch {epoch}: its {what} was beaten by {better} of the {n} trials of \
             seed {seed} at that epoch, and only the top {kept} go on",
            n = scores.len(),
            seed = trial.trial.seed,
        )))
    }

    /// The score of trial `id` at `epoch`, if recorded.
    fn score_at(&self, id: i64, epoch: usize) -> Result<Option<f64>, StoreError> {
        let epochs = self.store.epochs(id)?;
        Ok(epochs
            .iter()
            .find(|m| m.epoch == epoch)
            .and_then(|m| rung_score(m, self.spec.select)))
    }
}

/// Pruned, naming the pruned trial, when another trial of `trial`'s point was pruned.
fn point_pruned(trial: &TrialRecord, siblings: &[TrialRecord]) -> Option<Judgement> {
    let pruned = siblings.iter().find(|t| {
        t.id != trial.id
            && same_search(trial, t)
            && t.trial.point == trial.trial.point
            && t.state == TrialState::Pruned
    })?;
    Some(Judgement::Pruned(format!(
        "pruned: its point was stopped on seed {} (trial {})",
        pruned.trial.seed, pruned.trial.number
    )))
}

#[cfg(test)]
#[path = "prune_tests.rs"]
mod tests;
