//! The study spec: a TOML file that says which runs to compare and how.
//!
//! ```toml
//! name = "deepa2025"
//! description = "Simple CNN on CIFAR-10 under L1, L2 and elastic-net penalties"
//! seeds = 3                 # seeds of the grid search; or a list: [0, 1, 2]
//! confirm_seeds = 5         # fresh seeds on which the chosen points are reported
//! select = "val_acc"        # how a method's strength is chosen: val_acc or val_loss
//! baseline = "none"         # the method the others are tested against (default: the first)
//!
//! [base]                    # any `regstudy train` option, shared by every trial
//! dataset = "cifar10"
//! model = "simple-cnn"
//! epochs = 20
//!
//! [[group]]                 # optional: settings compared separately (data sets, models)
//! name = "cifar10"
//! set = { dataset = "cifar10" }
//!
//! [[method]]                # the things compared
//! name = "none"
//!
//! [[method]]
//! name = "l1"
//! set = { penalty = "l1" }              # fixed options of the method
//! grid = { l1 = [1e-5, 1e-4, 1e-3] }    # tuned options: every combination is a grid point
//!
//! [[method]]
//! name = "l1l2"
//! set = { penalty = "l1l2" }
//! points = [{ l1 = 1e-5, l2 = 1e-4 }, { l1 = 1e-4, l2 = 1e-3 }]  # or listed explicitly
//! components = ["l1", "l2"] # for combination and ablation tables
//!
//! [[method]]
//! name = "l2+dropout"
//! set = { penalty = "l2", dropout = 0.5 }
//! point_from = "l2"         # the strength chosen for `l2`, not searched again
//!
//! [[paper]]                 # published numbers, shown beside ours
//! method = "none"
//! metric = "test_acc"
//! value = 0.70
//! source = "Deepa et al. 2025, Table 3"
//! ```
//!
//! A study expands to groups x methods x grid points x seeds trials. Each trial's settings are
//! `base`, then the group's `set`, then the method's `set`, then its grid point, then the seed
//! and its own run folder. Every option is checked, with the file, line and field of a bad
//! one, before any trial starts.
//!
//! With `confirm_seeds`, the study runs in two phases (see [`Phase`](crate::trial::Phase)): a method with several
//! points searches them on `seeds`, and once its search has ended the chosen point runs on
//! `confirm_seeds`; a method with one point runs on `confirm_seeds` only. The report's
//! estimates and tests use the confirmation runs alone, so the choice does not bias them
//! (the winner's curse). A method with `point_from` takes another method's chosen point; its
//! trials start once that choice is made. Later trials are numbered after the first phase's,
//! by group, method and seed, so every worker that adds them adds the same ones.
//!
//! The file is read in `parse` (the raw TOML types and their conversion into a spec), whose
//! errors `error` locates at a file, line and field; `expand` turns the spec into trials, with
//! one walk over groups x methods x points that serves every expansion and count.

mod claims;
mod error;
mod expand;
mod parse;
#[cfg(test)]
mod tests;

pub use claims::{read_claims, BeatsTest, ClaimTest, PaperClaim, RangeTest};
pub use error::StudySpecError;
pub use expand::{value_text, DatasetUse};

use crate::study::prune::PruneRule;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// How the best grid point of a method is chosen: always on the validation split, never on
/// the test set, and on the weights that are tested (see [`crate::study::select`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Selection {
    /// Highest mean (over seeds) validation accuracy of the tested weights.
    #[default]
    ValAcc,
    /// Lowest mean (over seeds) validation loss of the tested weights.
    ValLoss,
}

/// A comparison group: trials in different groups are never compared with each other.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Group {
    pub name: String,
    /// Options set for the group's trials.
    pub set: toml::Table,
}

/// A method: fixed options, and the options tuned over a grid or a list of points.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Method {
    pub name: String,
    pub set: toml::Table,
    /// The grid points, expanded (a single empty point when the method tunes nothing).
    pub points: Vec<toml::Table>,
    /// What the method combines (e.g. `["l2", "dropout"]`), for combination and ablation
    /// tables. Empty when not given.
    pub components: Vec<String>,
    /// The method whose chosen point this method takes (then `points` is the single empty
    /// point, and the trials wait for that choice).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub point_from: Option<String>,
}

/// A figure of a method's reported runs that a paper quotes or a claim is about, as a
/// fraction (a share in [0, 1]; the gaps, differences of two shares, in [-1, 1]). Each run's
/// figure is taken at the epoch whose weights were tested, except `best_val_acc`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// Accuracy on the test set.
    TestAcc,
    /// Highest validation accuracy of any epoch (the figure papers quote).
    BestValAcc,
    /// Validation accuracy of the tested weights.
    ValAcc,
    /// Training accuracy as Keras reports it: averaged during the epoch, with dropout,
    /// batch statistics and augmentation active (the figure papers quote).
    TrainAcc,
    /// Training accuracy of the tested weights in evaluation mode.
    TrainEvalAcc,
    /// `train_acc - val_acc`: the gap papers quote.
    GapAcc,
    /// `train_eval_acc - val_acc`: the gap of the tested weights.
    EvalGapAcc,
    /// Share of kernel weights exactly 0.
    ZeroWeights,
    /// Share of kernel weights with `|w| < 1e-3`.
    SmallWeights,
    /// Share of output groups (conv filters, linear units) whose every weight is 0.
    ZeroGroups,
}

impl Metric {
    /// The name in spec and claims files.
    pub fn name(self) -> &'static str {
        match self {
            Metric::TestAcc => "test_acc",
            Metric::BestValAcc => "best_val_acc",
            Metric::ValAcc => "val_acc",
            Metric::TrainAcc => "train_acc",
            Metric::TrainEvalAcc => "train_eval_acc",
            Metric::GapAcc => "gap_acc",
            Metric::EvalGapAcc => "eval_gap_acc",
            Metric::ZeroWeights => "zero_weights",
            Metric::SmallWeights => "small_weights",
            Metric::ZeroGroups => "zero_groups",
        }
    }

    /// What it is, in words, for a report.
    pub fn description(self) -> &'static str {
        match self {
            Metric::TestAcc => "test accuracy",
            Metric::BestValAcc => "best validation accuracy over epochs",
            Metric::ValAcc => "validation accuracy",
            Metric::TrainAcc => "training accuracy (running, as Keras reports it)",
            Metric::TrainEvalAcc => "training accuracy (eval)",
            Metric::GapAcc => "gap (running training accuracy - validation accuracy)",
            Metric::EvalGapAcc => "gap (eval training accuracy - validation accuracy)",
            Metric::ZeroWeights => "kernel weights exactly 0",
            Metric::SmallWeights => "kernel weights with |w| < 1e-3",
            Metric::ZeroGroups => "filters and units entirely 0",
        }
    }
}

/// A published number to show beside ours.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PaperValue {
    /// The group it belongs to (`None`: the only group).
    #[serde(default)]
    pub group: Option<String>,
    pub method: String,
    /// A fraction in [0, 1].
    pub metric: Metric,
    pub value: f64,
    /// Where the number is printed (paper, table, figure).
    #[serde(default)]
    pub source: String,
}

/// A checked study spec.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StudySpec {
    pub name: String,
    pub description: String,
    /// The seeds of the grid search (and of every trial, without confirmation seeds).
    pub seeds: Vec<u64>,
    /// Fresh seeds, disjoint from `seeds`, on which chosen points and methods without a
    /// grid are run and reported. Empty: the search seeds are also reported.
    #[serde(default)]
    pub confirm_seeds: Vec<u64>,
    pub select: Selection,
    /// How search trials of clearly worse grid points are stopped early; `None`: every
    /// trial runs to its last epoch.
    #[serde(default)]
    pub prune: Option<PruneRule>,
    /// The baseline method's name.
    pub baseline: String,
    /// Folder under which each trial gets its run folder. Default: `runs/<name>`.
    pub runs_dir: std::path::PathBuf,
    /// Options shared by every trial.
    pub base: toml::Table,
    /// At least one; a single unnamed group (`""`) when the spec has none.
    pub groups: Vec<Group>,
    pub methods: Vec<Method>,
    pub paper: Vec<PaperValue>,
    /// Free-form notes shown at the top of the report (e.g. what `--quick` reduced).
    pub notes: Vec<String>,
    /// The file the spec came from, for errors found after parsing (a missing data set).
    #[serde(skip)]
    pub file: PathBuf,
    /// Line and column of every option, by field path (`base.dataset`,
    /// `method[1].grid.l1`, `method[2].points[0].l2`, `group[0].set.dataset`).
    #[serde(skip)]
    pub origins: BTreeMap<String, (usize, usize)>,
}

impl StudySpec {
    /// The method called `name`.
    pub fn method(&self, name: &str) -> Option<&Method> {
        self.methods.iter().find(|m| m.name == name)
    }

    /// Parses and checks spec `text`; `file` names it in errors. Every trial's settings are
    /// checked as `regstudy train` would check them, so a spec that parses runs.
    pub fn parse(text: &str, file: &Path) -> Result<StudySpec, StudySpecError> {
        let spec = StudySpec::parse_unchecked(text, file)?;
        spec.check_trials()?;
        Ok(spec)
    }

    /// Parses spec `text` without checking each trial's settings against this machine
    /// (model files, data): for reading back a stored study, wherever the report is made.
    pub fn parse_unchecked(text: &str, file: &Path) -> Result<StudySpec, StudySpecError> {
        parse::read(text, file)
    }

    /// Whether chosen points are reported on fresh seeds.
    pub fn confirms(&self) -> bool {
        !self.confirm_seeds.is_empty()
    }

    /// Whether the method's point is chosen by a search on the search seeds.
    pub fn searches(&self, method: &Method) -> bool {
        method.point_from.is_none() && method.points.len() > 1
    }
}
