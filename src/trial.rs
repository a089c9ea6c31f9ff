//! What a study stores: the study itself, its trials, and what each trial produced.
//!
//! These records are the contract between the runner (which writes them through a
//! [`crate::store::Store`]), the store, and the report (which reads them). They sit below
//! [`crate::study`] and [`crate::store`] alike, so that the store, which the study runner
//! uses, does not depend on the study module for them.

use crate::regularize::WeightHistogram;
use crate::train::{RunConfig, Summary};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

/// Where a trial stands. `Done`, `Failed`, `Diverged` and `Pruned` are final: a finished
/// trial never changes again.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TrialState {
    /// Not started, or its worker died before it finished (it is claimed again).
    Waiting,
    /// Claimed by a worker that keeps its heartbeat.
    Running,
    /// Trained and tested.
    Done,
    /// Stopped by an error (bad data, full disk...); the message says which.
    Failed,
    /// The loss became non-finite; the run's metrics up to then are kept.
    Diverged,
    /// Stopped by the study's pruning rule ([`crate::study::prune`]) after the epochs
    /// recorded: never a result.
    Pruned,
}

impl TrialState {
    pub const ALL: [TrialState; 6] = [
        TrialState::Waiting,
        TrialState::Running,
        TrialState::Done,
        TrialState::Failed,
        TrialState::Diverged,
        TrialState::Pruned,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TrialState::Waiting => "waiting",
            TrialState::Running => "running",
            TrialState::Done => "done",
            TrialState::Failed => "failed",
            TrialState::Diverged => "diverged",
            TrialState::Pruned => "pruned",
        }
    }

    /// Whether the trial has ended for good.
    pub fn is_finished(self) -> bool {
        matches!(
            self,
            TrialState::Done | TrialState::Failed | TrialState::Diverged | TrialState::Pruned
        )
    }
}

impl fmt::Display for TrialState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for TrialState {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        TrialState::ALL
            .into_iter()
            .find(|state| state.as_str() == s)
            .ok_or_else(|| format!("unknown trial state `{s}`"))
    }
}

/// A trial as the study spec defines it, before it is stored.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NewTrial {
    /// 0-based position in the study's expansion; unique within the study.
    pub number: usize,
    /// The comparison group (a data set or model compared on its own), `""` when the study
    /// has one.
    pub group: String,
    /// The method compared against the baseline, e.g. `l1`, `l2+dropout`.
    pub method: String,
    /// The grid point within the method: the tuned options and their values, e.g.
    /// `{"l1": 0.0001}`. Empty when the method has no grid.
    pub point: BTreeMap<String, serde_json::Value>,
    pub seed: u64,
    /// Whether the trial searches the grid or confirms a chosen point on fresh seeds.
    #[serde(default)]
    pub phase: Phase,
    /// The complete settings of the run (its `out` folder included).
    pub config: RunConfig,
}

/// The part a trial plays in its method's result.
///
/// A grid point chosen as the best of several on some seeds looks better on those seeds
/// than it is (the winner's curse): its selection score is the maximum of noisy estimates.
/// A study with confirmation seeds therefore searches the grid on its `seeds` and re-runs
/// the chosen point, and every method without a grid, on disjoint `confirm_seeds`; the
/// report's estimates and tests use only the confirmation runs.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// A grid point on the search seeds: its validation score takes part in the choice.
    /// In a study without confirmation seeds, the chosen point's search trials are also
    /// its reported result.
    #[default]
    Search,
    /// The chosen point (or a method without a grid) on the confirmation seeds: reported
    /// and tested, never used to choose.
    Confirm,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Search => "search",
            Phase::Confirm => "confirm",
        }
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Phase {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        [Phase::Search, Phase::Confirm]
            .into_iter()
            .find(|phase| phase.as_str() == s)
            .ok_or_else(|| format!("unknown trial phase `{s}`"))
    }
}

/// A stored trial.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrialRecord {
    /// The store's key of the trial.
    pub id: i64,
    #[serde(flatten)]
    pub trial: NewTrial,
    pub state: TrialState,
    /// The worker that holds it (running) or finished it.
    pub worker: Option<String>,
    /// Which attempt at the trial this is: 0 for the first, `k` for the `k`-th retry of a
    /// failed trial (`regstudy study retry`).
    #[serde(default)]
    pub retry: u32,
    /// How many times this attempt was claimed and not handed back (more than one after a
    /// worker died).
    pub attempts: u32,
    /// Unix seconds.
    pub started_at: Option<f64>,
    pub finished_at: Option<f64>,
    /// The run's `summary.json`, for a done or diverged trial.
    pub summary: Option<Summary>,
    /// Why it failed or diverged.
    pub message: Option<String>,
    /// Magnitudes of the final kernel weights, for a done trial.
    pub histogram: Option<WeightHistogram>,
    /// Seconds since the holder's last heartbeat, by the store's clock, for a running
    /// trial: what `study status` shows to tell a live worker from a dead one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heartbeat_age: Option<f64>,
}

/// A stored study.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StudyRecord {
    pub name: String,
    /// The spec file's text as given, so the study can be repeated and reported.
    pub spec: String,
    /// Unix seconds.
    pub created_at: f64,
    /// The regstudy version that created it.
    pub version: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trial_states_round_trip_through_their_names() {
        for state in TrialState::ALL {
            assert_eq!(state.as_str().parse::<TrialState>(), Ok(state));
        }
        assert!("finished".parse::<TrialState>().is_err());
    }
}
