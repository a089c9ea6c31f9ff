//! The study spec: a TOML file that says which runs to compare and how.
//!
//! ```toml
//! name = "deepa2025"
//! description = "Simple CNN on CIFAR-10 under L1, L2 and elastic-net penalties"
//! seeds = 3                 # or a list: [0, 1, 2]
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

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// How the best grid point of a method is chosen: always on the validation split, never on
/// the test set.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Selection {
    /// Highest mean (over seeds) best validation accuracy.
    #[default]
    ValAcc,
    /// Lowest mean (over seeds) best validation loss.
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
}

/// A published number to show beside ours.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PaperValue {
    /// The group it belongs to (`None`: the only group).
    pub group: Option<String>,
    pub method: String,
    /// `test_acc`, `best_val_acc`, `train_acc` (final epoch) or `gap_acc`; fractions in [0, 1].
    pub metric: String,
    pub value: f64,
    /// Where the number is printed (paper, table, figure).
    pub source: String,
}

/// A checked study spec.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StudySpec {
    pub name: String,
    pub description: String,
    pub seeds: Vec<u64>,
    pub select: Selection,
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
}

impl StudySpec {
    /// The method called `name`.
    pub fn method(&self, name: &str) -> Option<&Method> {
        self.methods.iter().find(|m| m.name == name)
    }
}

/// Keeps the compiler quiet until parsing lands.
#[allow(dead_code)]
fn _unused(_: BTreeMap<(), ()>) {}
