//! Expansion: the spec's trials, those that wait for a choice, and their counts, all from one
//! walk over groups x methods x points ([`StudySpec::cells`]).

use super::error::{field_of_option, StudySpecError};
use super::{Group, Method, StudySpec};
use crate::study::select::{choose, PointScore};
use crate::train::{EpochMetrics, RunConfig};
use crate::trial::{NewTrial, Phase, TrialRecord};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// One grid point of one method in one group, with their indices in the spec: a step of the
/// walk that every expansion and count makes.
#[derive(Clone, Copy, Debug)]
pub(super) struct Cell<'a> {
    pub g: usize,
    pub group: &'a Group,
    pub m: usize,
    pub method: &'a Method,
    pub p: usize,
    pub point: &'a toml::Table,
}

impl StudySpec {
    /// Every group x method x point, in the study's order: by group, then method, then point.
    /// A method with `point_from` visits its source's points, the points it may be given.
    pub(super) fn cells(&self) -> impl Iterator<Item = Cell<'_>> {
        self.groups.iter().enumerate().flat_map(move |(g, group)| {
            self.methods
                .iter()
                .enumerate()
                .flat_map(move |(m, method)| {
                    let points = &self.point_source(method).points;
                    points.iter().enumerate().map(move |(p, point)| Cell {
                        g,
                        group,
                        m,
                        method,
                        p,
                        point,
                    })
                })
        })
    }

    /// The method whose points `method`'s trials take: its `point_from`, or itself.
    fn point_source<'a>(&'a self, method: &'a Method) -> &'a Method {
        match &method.point_from {
            Some(name) => self.method(name).expect("checked when the spec was parsed"),
            None => method,
        }
    }

    /// The seeds and phase of the method's trials that are known before any has run: every
    /// point of a searched method on the search seeds, a method without a grid on the seeds it
    /// is reported on; `None` for a `point_from` method, whose trials all wait.
    fn first_phase(&self, method: &Method) -> Option<(&[u64], Phase)> {
        if method.point_from.is_some() {
            None
        } else if self.confirms() && !self.searches(method) {
            Some((&self.confirm_seeds, Phase::Confirm))
        } else {
            Some((&self.seeds, Phase::Search))
        }
    }

    /// Whether the method's trials wait for a choice: confirmation runs of a searched
    /// method, or a `point_from` method.
    fn waits(&self, method: &Method) -> bool {
        method.point_from.is_some() || (self.confirms() && self.searches(method))
    }

    /// Each method whose trials wait for a choice, once per group (as its first cell), in
    /// the order in which their later trials are numbered.
    fn waiting(&self) -> impl Iterator<Item = Cell<'_>> {
        self.cells()
            .filter(|cell| cell.p == 0 && self.waits(cell.method))
    }

    /// Whether some trials wait for a choice.
    pub fn has_later_trials(&self) -> bool {
        self.methods.iter().any(|m| self.waits(m))
    }

    /// How many trials the study has once every choice is made: the first phase's, then
    /// each waiting method's reported seeds in each group.
    pub fn expected_trials(&self) -> usize {
        let later = self
            .waiting()
            .count()
            .saturating_mul(self.reported_seeds().len());
        self.first_phase_len().saturating_add(later)
    }

    /// The seeds on which a method's reported point runs.
    fn reported_seeds(&self) -> &[u64] {
        if self.confirms() {
            &self.confirm_seeds
        } else {
            &self.seeds
        }
    }

    /// The trials known before any has run, numbered from 0 by group, method, point and
    /// seed: every point of a searched method on the search seeds, and each method without
    /// a grid on the seeds it is reported on. Methods with `point_from`, and the
    /// confirmation of searched methods, follow in [`StudySpec::later_trials`].
    pub fn trials(&self) -> Vec<NewTrial> {
        let mut trials = Vec::new();
        for cell in self.cells() {
            let Some((seeds, phase)) = self.first_phase(cell.method) else {
                continue;
            };
            for &seed in seeds {
                let number = trials.len();
                trials.push(self.trial(&cell, cell.point, seed, number, phase));
            }
        }
        trials
    }

    /// How many trials [`StudySpec::trials`] gives, without building them (the runner asks
    /// each time a worker looks for later trials).
    pub(super) fn first_phase_len(&self) -> usize {
        self.cells()
            .filter_map(|cell| self.first_phase(cell.method))
            .map(|(seeds, _)| seeds.len())
            .fold(0, usize::saturating_add)
    }

    fn trial(
        &self,
        cell: &Cell,
        point: &toml::Table,
        seed: u64,
        number: usize,
        phase: Phase,
    ) -> NewTrial {
        let config = self.config_of(cell, point, seed, number);
        NewTrial {
            number,
            group: cell.group.name.clone(),
            method: cell.method.name.clone(),
            point: point_json(point),
            seed,
            phase,
            config: config.expect("checked when the spec was parsed"),
        }
    }

    /// The trials that the finished ones determine: for each group, the confirmation of a
    /// searched method once its search has ended, and a `point_from` method once its source's
    /// point is chosen. A method whose search chose nothing (every point diverged or learned
    /// nothing) gets none. Numbered after [`StudySpec::trials`] by group, waiting method and seed,
    /// so the same records always give the same trials. `epochs` gives a trial's recorded
    /// epochs (the choice reads the tested epoch's validation score).
    pub fn later_trials<'a>(
        &self,
        records: &[TrialRecord],
        epochs: impl Fn(i64) -> &'a [EpochMetrics] + Copy,
    ) -> Vec<NewTrial> {
        let first = self.first_phase_len();
        let seeds = self.reported_seeds();
        let phase = if self.confirms() {
            Phase::Confirm
        } else {
            Phase::Search
        };
        let mut later = Vec::new();
        for (block, cell) in self.waiting().enumerate() {
            let in_group: Vec<&TrialRecord> = records
                .iter()
                .filter(|t| t.trial.group == cell.group.name)
                .collect();
            let source = self.point_source(cell.method);
            let Some(Some(point)) = self.chosen_point(source, &in_group, epochs) else {
                continue;
            };
            for (k, &seed) in seeds.iter().enumerate() {
                let number = first + block * seeds.len() + k;
                later.push(self.trial(&cell, &point, seed, number, phase));
            }
        }
        later
    }

    /// The point chosen for `method` among the group's trials: `None` while its search has
    /// not ended, `Some(None)` when it chose nothing. A method without a search has its one
    /// point.
    fn chosen_point<'a>(
        &self,
        method: &Method,
        in_group: &[&TrialRecord],
        epochs: impl Fn(i64) -> &'a [EpochMetrics] + Copy,
    ) -> Option<Option<toml::Table>> {
        if !self.searches(method) {
            return Some(method.points.first().cloned());
        }
        let searched: Vec<&TrialRecord> = in_group
            .iter()
            .copied()
            .filter(|t| t.trial.method == method.name && t.trial.phase == Phase::Search)
            .collect();
        let expected = method.points.len() * self.seeds.len();
        if searched.len() < expected || searched.iter().any(|t| !t.state.is_finished()) {
            return None;
        }
        let scores: Vec<PointScore> = method
            .points
            .iter()
            .map(|point| {
                let json = point_json(point);
                let at: Vec<&TrialRecord> = searched
                    .iter()
                    .copied()
                    .filter(|t| t.trial.point == json)
                    .collect();
                PointScore::of(&at, epochs)
            })
            .collect();
        Some(choose(&scores, self.select).map(|i| method.points[i].clone()))
    }

    /// One trial's settings: base, group, method, point, then seed and run folder.
    fn config_of(
        &self,
        cell: &Cell,
        point: &toml::Table,
        seed: u64,
        number: usize,
    ) -> Result<RunConfig, toml::de::Error> {
        let mut table = self.base.clone();
        for layer in [&cell.group.set, &cell.method.set, point] {
            table.extend(layer.clone());
        }
        let mut config: RunConfig = toml::Value::Table(table).try_into()?;
        config.seed = seed;
        config.out =
            Some(
                self.runs_dir
                    .join(trial_folder(number, cell.group, cell.method, point, seed)),
            );
        Ok(config)
    }

    /// Checks every trial's settings as `regstudy train` would, mapping a bad option back
    /// to the place in the file that set it. A `point_from` method is checked with each
    /// point its source may choose.
    pub(super) fn check_trials(&self) -> Result<(), StudySpecError> {
        for cell in self.cells() {
            let (g, m, p) = (cell.g, cell.m, cell.p);
            let config = self
                .config_of(&cell, cell.point, self.seeds[0], 0)
                .map_err(|e| self.error_at(g, m, p, "", e.message().trim()))?;
            if let Some(problem) = self.needs_validation(cell.method, &config) {
                return Err(self.error_at(g, m, p, "val_fraction", problem));
            }
            if let Err(e) = config.check() {
                let option = field_of_option(&e.option);
                return Err(self.error_at(g, m, p, &option, e.problem));
            }
        }
        Ok(())
    }

    /// Why a trial of `method` with `config` cannot run without a validation split, when
    /// it has none (`val_fraction = 0`): choosing among grid points and early stopping both
    /// read the validation split (the test set is never used to choose).
    fn needs_validation(&self, method: &Method, config: &RunConfig) -> Option<String> {
        if config.val_fraction > 0.0 {
            None
        } else if self.searches(method) {
            Some(format!(
                "method `{}` has {} grid points, chosen among on the validation split, so \
                 `val_fraction` must be above 0 (it is 0); the test set is never used to choose",
                method.name,
                method.points.len()
            ))
        } else if config.patience.is_some() {
            Some(
                "early stopping (`patience`) watches the validation split, so `val_fraction` \
                 must be above 0 (it is 0)"
                    .into(),
            )
        } else {
            None
        }
    }

    /// The data sets the trials use, each with the place of its first trial (a `point_from`
    /// method's trials with each point its source may choose).
    pub fn datasets(&self) -> Vec<DatasetUse> {
        let mut seen: Vec<DatasetUse> = Vec::new();
        for cell in self.cells() {
            let Ok(config) = self.config_of(&cell, cell.point, 0, 0) else {
                continue;
            };
            let new = !seen
                .iter()
                .any(|u| u.dataset == config.dataset && u.data_dir == config.data_dir);
            if new {
                seen.push(DatasetUse {
                    dataset: config.dataset,
                    data_dir: config.data_dir,
                    group: cell.g,
                    method: cell.m,
                    point: cell.p,
                });
            }
        }
        seen
    }
}

/// A data set a study uses, and the first group, method and point (indices) that use it.
#[derive(Clone, Debug, PartialEq)]
pub struct DatasetUse {
    pub dataset: String,
    pub data_dir: Option<PathBuf>,
    pub group: usize,
    pub method: usize,
    pub point: usize,
}

/// A trial's run folder name: `0007-l1-l1=0.0001-seed2`, with the group in front when there
/// is one; characters that are unsafe in file names become `_`.
fn trial_folder(
    number: usize,
    group: &Group,
    method: &Method,
    point: &toml::Table,
    seed: u64,
) -> String {
    let mut parts = vec![format!("{number:04}")];
    if !group.name.is_empty() {
        parts.push(group.name.clone());
    }
    parts.push(method.name.clone());
    parts.extend(point.iter().map(|(k, v)| format!("{k}={}", value_text(v))));
    parts.push(format!("seed{seed}"));
    parts
        .join("-")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_=.+".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// A TOML value as it reads in names and tables: strings bare, numbers in shortest form.
pub fn value_text(value: &toml::Value) -> String {
    match value {
        toml::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

pub(super) fn point_json(point: &toml::Table) -> BTreeMap<String, serde_json::Value> {
    point
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                serde_json::to_value(v).unwrap_or(serde_json::Value::Null),
            )
        })
        .collect()
}
