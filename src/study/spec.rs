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
//! With `confirm_seeds`, the study runs in two phases (see [`Phase`]): a method with several
//! points searches them on `seeds`, and once its search has ended the chosen point runs on
//! `confirm_seeds`; a method with one point runs on `confirm_seeds` only. The report's
//! estimates and tests use the confirmation runs alone, so the choice does not bias them
//! (the winner's curse). A method with `point_from` takes another method's chosen point; its
//! trials start once that choice is made. Later trials are numbered after the first phase's,
//! by group, method and seed, so every worker that adds them adds the same ones.

use crate::study::select::{choose, PointScore};
use crate::train::{EpochMetrics, RunConfig};
use crate::trial::{NewTrial, Phase, TrialRecord};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use toml::Spanned;

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

/// A published number to show beside ours.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PaperValue {
    /// The group it belongs to (`None`: the only group).
    #[serde(default)]
    pub group: Option<String>,
    pub method: String,
    /// `test_acc`, `best_val_acc`, `train_acc` (final epoch) or `gap_acc`; fractions in [0, 1].
    pub metric: String,
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
}

/// A mistake in a study spec, located: the file, the line and column where the value is
/// (when known), the field (as a path such as `method[2].grid.l1`) and what was expected.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub struct StudySpecError {
    pub file: PathBuf,
    /// 1-based line and column.
    pub position: Option<(usize, usize)>,
    pub field: String,
    pub problem: String,
}

impl fmt::Display for StudySpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some((line, column)) = self.position {
            write!(f, ":{line}:{column}")?;
        }
        write!(f, ": field `{}`: {}", self.field, self.problem)
    }
}

/// Where a value sits in the file: its byte range, to turn into a line and column.
type Span = Option<Range<usize>>;

/// An option table as written, each key and value with its place in the file.
type RawTable = BTreeMap<Spanned<String>, Spanned<toml::Value>>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSpec {
    name: Spanned<String>,
    #[serde(default)]
    description: String,
    seeds: Option<Spanned<RawSeeds>>,
    confirm_seeds: Option<Spanned<RawSeeds>>,
    #[serde(default)]
    select: Selection,
    baseline: Option<Spanned<String>>,
    runs_dir: Option<PathBuf>,
    #[serde(default)]
    base: RawTable,
    #[serde(default)]
    group: Vec<RawGroup>,
    method: Option<Spanned<Vec<RawMethod>>>,
    #[serde(default)]
    paper: Vec<Spanned<PaperValue>>,
    #[serde(default)]
    notes: Vec<String>,
    max_trials: Option<Spanned<usize>>,
}

/// `seeds` and `confirm_seeds`: a count, or a list of seeds.
enum RawSeeds {
    Count(u64),
    List(Vec<u64>),
}

/// Reads a count or a list of non-negative integers, and says so when given anything else.
impl<'de> Deserialize<'de> for RawSeeds {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Seeds;
        impl<'de> serde::de::Visitor<'de> for Seeds {
            type Value = RawSeeds;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a count of seeds (such as 3) or a list of seeds (such as [0, 1, 2])")
            }

            fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<RawSeeds, E> {
                u64::try_from(n).map(RawSeeds::Count).map_err(|_| {
                    E::custom(format!(
                        "expected a count of seeds (such as 3) or a list of seeds, got {n}"
                    ))
                })
            }

            fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<RawSeeds, E> {
                Ok(RawSeeds::Count(n))
            }

            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<RawSeeds, A::Error> {
                let mut list = Vec::new();
                while let Some(value) = seq.next_element::<toml::Value>()? {
                    let seed = value.as_integer().and_then(|n| u64::try_from(n).ok());
                    let seed = seed.ok_or_else(|| {
                        serde::de::Error::custom(format!(
                            "expected a list of seeds, each an integer >= 0, got {value}"
                        ))
                    })?;
                    list.push(seed);
                }
                Ok(RawSeeds::List(list))
            }
        }
        deserializer.deserialize_any(Seeds)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGroup {
    name: Spanned<String>,
    #[serde(default)]
    set: RawTable,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMethod {
    name: Spanned<String>,
    #[serde(default)]
    set: RawTable,
    #[serde(default)]
    grid: RawTable,
    points: Option<Spanned<Vec<RawTable>>>,
    #[serde(default)]
    components: Vec<String>,
    point_from: Option<Spanned<String>>,
}

/// The options a trial may not take from a spec: the runner sets them per trial.
const RUNNER_OPTIONS: [&str; 3] = ["out", "seed", "threads"];

/// The most seeds a study may have: a typo such as `seeds = 10000000000` is caught before
/// it is expanded.
const MAX_SEEDS: u64 = 10_000;
/// The most trials a study may have unless its `max_trials` says more: a grid typed with a
/// zero too many would otherwise fill the store (a million trials take most of a gigabyte)
/// before anything runs.
const DEFAULT_MAX_TRIALS: usize = 10_000;
/// The most `max_trials` may allow, and the most grid points one method may expand to.
const MAX_TRIALS: usize = 1_000_000;

/// Turns byte offsets into line and column numbers and builds located errors.
struct Locator<'a> {
    file: &'a Path,
    text: &'a str,
}

impl Locator<'_> {
    fn error(
        &self,
        span: Span,
        field: impl Into<String>,
        problem: impl Into<String>,
    ) -> StudySpecError {
        StudySpecError {
            file: self.file.to_path_buf(),
            position: span.map(|s| self.position(s.start)),
            field: field.into(),
            problem: problem.into(),
        }
    }

    /// 1-based line and column (in characters) of byte `offset`.
    fn position(&self, offset: usize) -> (usize, usize) {
        let before = &self.text[..offset.min(self.text.len())];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        (line, before[line_start..].chars().count() + 1)
    }

    /// The key an error at `offset` is about: the key of `key = value` when the offset is
    /// in the value, else the word at the offset (an "unknown field" error points at the key).
    fn key_at(&self, offset: usize) -> String {
        let offset = offset.min(self.text.len());
        let line_start = self.text[..offset].rfind('\n').map_or(0, |i| i + 1);
        let before = &self.text[line_start..offset];
        if let Some((key, _)) = before.split_once('=') {
            return key.trim().trim_matches('"').to_string();
        }
        self.text[offset..]
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == '-')
            .collect()
    }
}

impl StudySpec {
    /// Reads and checks the spec file at `path`.
    pub fn from_file(path: &Path) -> Result<StudySpec, StudySpecError> {
        let text = std::fs::read_to_string(path).map_err(|e| StudySpecError {
            file: path.to_path_buf(),
            position: None,
            field: "(file)".into(),
            problem: format!("cannot read it: {e}"),
        })?;
        StudySpec::parse(&text, path)
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
        let at = Locator { file, text };
        let raw: RawSpec = toml::from_str(text).map_err(|e| {
            let span = e.span();
            let field = span
                .clone()
                .map_or_else(String::new, |s| at.key_at(s.start));
            at.error(span, field, e.message().trim().to_string())
        })?;
        build(raw, &at)
    }

    /// Whether chosen points are reported on fresh seeds.
    pub fn confirms(&self) -> bool {
        !self.confirm_seeds.is_empty()
    }

    /// Whether the method's trials wait for a choice: confirmation runs of a searched
    /// method, or a `point_from` method.
    fn waits(&self, method: &Method) -> bool {
        method.point_from.is_some() || (self.confirms() && self.searches(method))
    }

    /// Whether some trials wait for a choice.
    pub fn has_later_trials(&self) -> bool {
        self.methods.iter().any(|m| self.waits(m))
    }

    /// How many trials the study has once every choice is made.
    pub fn expected_trials(&self) -> usize {
        let waiting = self.methods.iter().filter(|m| self.waits(m)).count();
        let later = self
            .groups
            .len()
            .saturating_mul(waiting)
            .saturating_mul(self.reported_seeds().len());
        self.first_phase_len().saturating_add(later)
    }

    /// Whether the method's point is chosen by a search on the search seeds.
    pub fn searches(&self, method: &Method) -> bool {
        method.point_from.is_none() && method.points.len() > 1
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
        for group in &self.groups {
            for method in self.methods.iter().filter(|m| m.point_from.is_none()) {
                let (seeds, phase) = if self.confirms() && !self.searches(method) {
                    (&self.confirm_seeds, Phase::Confirm)
                } else {
                    (&self.seeds, Phase::Search)
                };
                for point in &method.points {
                    for &seed in seeds {
                        let number = trials.len();
                        trials.push(self.trial(group, method, point, seed, number, phase));
                    }
                }
            }
        }
        trials
    }

    /// How many trials [`StudySpec::trials`] gives, without building them (the runner asks
    /// each time a worker looks for later trials).
    fn first_phase_len(&self) -> usize {
        let per_group: usize = self
            .methods
            .iter()
            .filter(|m| m.point_from.is_none())
            .map(|m| {
                let seeds = if self.confirms() && !self.searches(m) {
                    self.confirm_seeds.len()
                } else {
                    self.seeds.len()
                };
                m.points.len().saturating_mul(seeds)
            })
            .fold(0, usize::saturating_add);
        self.groups.len().saturating_mul(per_group)
    }

    fn trial(
        &self,
        group: &Group,
        method: &Method,
        point: &toml::Table,
        seed: u64,
        number: usize,
        phase: Phase,
    ) -> NewTrial {
        let config = self.config_of(group, method, point, seed, number);
        NewTrial {
            number,
            group: group.name.clone(),
            method: method.name.clone(),
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
        let waiting: Vec<&Method> = self.methods.iter().filter(|m| self.waits(m)).collect();
        let mut later = Vec::new();
        for (g, group) in self.groups.iter().enumerate() {
            let in_group: Vec<&TrialRecord> = records
                .iter()
                .filter(|t| t.trial.group == group.name)
                .collect();
            for (m, method) in waiting.iter().copied().enumerate() {
                let source = match &method.point_from {
                    Some(name) => self.method(name).expect("checked when the spec was parsed"),
                    None => method,
                };
                let Some(Some(point)) = self.chosen_point(source, &in_group, epochs) else {
                    continue;
                };
                for (k, &seed) in seeds.iter().enumerate() {
                    let number = first + (g * waiting.len() + m) * seeds.len() + k;
                    later.push(self.trial(group, method, &point, seed, number, phase));
                }
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
        group: &Group,
        method: &Method,
        point: &toml::Table,
        seed: u64,
        number: usize,
    ) -> Result<RunConfig, toml::de::Error> {
        let mut table = self.base.clone();
        for layer in [&group.set, &method.set, point] {
            table.extend(layer.clone());
        }
        let mut config: RunConfig = toml::Value::Table(table).try_into()?;
        config.seed = seed;
        config.out = Some(
            self.runs_dir
                .join(trial_folder(number, group, method, point, seed)),
        );
        Ok(config)
    }

    /// Checks every trial's settings as `regstudy train` would, mapping a bad option back
    /// to the place in the file that set it. A `point_from` method is checked with each
    /// point its source may choose.
    fn check_trials(&self) -> Result<(), StudySpecError> {
        for (g, group) in self.groups.iter().enumerate() {
            for (m, method) in self.methods.iter().enumerate() {
                let points = match &method.point_from {
                    Some(source) => &self.method(source).expect("checked").points,
                    None => &method.points,
                };
                for (p, point) in points.iter().enumerate() {
                    let seed = self.seeds[0];
                    let config = self
                        .config_of(group, method, point, seed, 0)
                        .map_err(|e| self.error_at(g, m, p, "", e.message().trim()))?;
                    if let Some(problem) = self.needs_validation(method, &config) {
                        return Err(self.error_at(g, m, p, "val_fraction", problem));
                    }
                    if let Err(e) = config.check() {
                        let option = field_of_option(&e.option);
                        return Err(self.error_at(g, m, p, &option, e.problem));
                    }
                }
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

    /// An error about `option` in the trials of group `g`, method `m`, point `p`, located at
    /// the most specific place that set the option (point, method, group, base); at the
    /// method when none did.
    pub fn error_at(
        &self,
        g: usize,
        m: usize,
        p: usize,
        option: &str,
        problem: impl Into<String>,
    ) -> StudySpecError {
        let candidates = [
            format!("method[{m}].points[{p}].{option}"),
            format!("method[{m}].grid.{option}"),
            format!("method[{m}].set.{option}"),
            format!("group[{g}].set.{option}"),
            format!("base.{option}"),
        ];
        let found = candidates
            .iter()
            .find_map(|path| self.origins.get(path).map(|at| (path.clone(), *at)));
        let (field, position) = match found {
            Some((path, at)) => (path, Some(at)),
            None => {
                let method = format!("method[{m}]");
                let field = if option.is_empty() {
                    method.clone()
                } else {
                    format!("base.{option}")
                };
                (field, self.origins.get(&method).copied())
            }
        };
        StudySpecError {
            file: self.file.clone(),
            position,
            field,
            problem: problem.into(),
        }
    }

    /// The data sets the trials use, each with the place of its first trial.
    pub fn datasets(&self) -> Vec<DatasetUse> {
        let mut seen: Vec<DatasetUse> = Vec::new();
        for (g, group) in self.groups.iter().enumerate() {
            for (m, method) in self.methods.iter().enumerate() {
                for (p, point) in method.points.iter().enumerate() {
                    let Ok(config) = self.config_of(group, method, point, 0, 0) else {
                        continue;
                    };
                    let new = !seen
                        .iter()
                        .any(|u| u.dataset == config.dataset && u.data_dir == config.data_dir);
                    if new {
                        seen.push(DatasetUse {
                            dataset: config.dataset,
                            data_dir: config.data_dir,
                            group: g,
                            method: m,
                            point: p,
                        });
                    }
                }
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

/// Converts the parsed file into a spec, checking every part that does not need a trial's
/// whole settings.
fn build(raw: RawSpec, at: &Locator) -> Result<StudySpec, StudySpecError> {
    let mut origins = BTreeMap::new();
    let name = check_name(&raw.name, "name", at)?;
    let seeds = check_seeds(raw.seeds.as_ref(), at)?;
    let confirm_seeds = check_confirm_seeds(raw.confirm_seeds.as_ref(), &seeds, at)?;
    let base = check_options(&raw.base, "base", at, &mut origins)?;
    let mut groups = Vec::new();
    for (g, group) in raw.group.iter().enumerate() {
        let field = format!("group[{g}]");
        origins.insert(field.clone(), at.position(group.name.span().start));
        let name = check_name(&group.name, &format!("{field}.name"), at)?;
        if groups.iter().any(|other: &Group| other.name == name) {
            return Err(at.error(
                Some(group.name.span()),
                format!("{field}.name"),
                format!("group `{name}` is defined twice"),
            ));
        }
        let set = check_options(&group.set, &format!("{field}.set"), at, &mut origins)?;
        groups.push(Group { name, set });
    }
    if groups.is_empty() {
        groups.push(Group {
            name: String::new(),
            set: toml::Table::new(),
        });
    }
    let Some(raw_methods) = &raw.method else {
        return Err(at.error(None, "method", "the study needs at least one [[method]]"));
    };
    let mut methods: Vec<Method> = Vec::new();
    for (m, method) in raw_methods.get_ref().iter().enumerate() {
        let built = check_method(method, m, at, &mut origins)?;
        if methods.iter().any(|other| other.name == built.name) {
            return Err(at.error(
                Some(method.name.span()),
                format!("method[{m}].name"),
                format!("method `{}` is defined twice", built.name),
            ));
        }
        methods.push(built);
    }
    if methods.is_empty() {
        return Err(at.error(
            Some(raw_methods.span()),
            "method",
            "the study needs at least one [[method]]",
        ));
    }
    let baseline = match &raw.baseline {
        Some(b) if methods.iter().any(|m| m.name == *b.get_ref()) => b.get_ref().clone(),
        Some(b) => {
            let names: Vec<&str> = methods.iter().map(|m| m.name.as_str()).collect();
            return Err(at.error(
                Some(b.span()),
                "baseline",
                format!(
                    "no method is called `{}` (methods: {})",
                    b.get_ref(),
                    names.join(", ")
                ),
            ));
        }
        None => methods[0].name.clone(),
    };
    check_point_sources(raw_methods.get_ref(), &methods, at)?;
    check_paper(&raw.paper, &groups, &methods, at)?;
    let runs_dir = raw
        .runs_dir
        .clone()
        .unwrap_or_else(|| Path::new("runs").join(&name));
    let spec = StudySpec {
        name,
        description: raw.description,
        seeds,
        confirm_seeds,
        select: raw.select,
        baseline,
        runs_dir,
        base,
        groups,
        methods,
        paper: raw.paper.into_iter().map(Spanned::into_inner).collect(),
        notes: raw.notes,
        file: at.file.to_path_buf(),
        origins,
    };
    check_trial_count(spec.expected_trials(), raw.max_trials.as_ref(), at)?;
    Ok(spec)
}

/// Refuses a study of more trials than its limit: `max_trials`, else
/// [`DEFAULT_MAX_TRIALS`]; `max_trials` itself is at most [`MAX_TRIALS`].
fn check_trial_count(
    trials: usize,
    max_trials: Option<&Spanned<usize>>,
    at: &Locator,
) -> Result<(), StudySpecError> {
    if let Some(limit) = max_trials.filter(|m| *m.get_ref() > MAX_TRIALS) {
        let problem = format!("expected at most {MAX_TRIALS}, got {}", limit.get_ref());
        return Err(at.error(Some(limit.span()), "max_trials", problem));
    }
    let limit = max_trials.map_or(DEFAULT_MAX_TRIALS, |m| *m.get_ref());
    if trials <= limit {
        return Ok(());
    }
    let problem = if trials > MAX_TRIALS {
        format!("the study expands to {trials} trials, more than the most a study may have ({MAX_TRIALS})")
    } else {
        format!(
            "the study expands to {trials} trials, more than its limit of {limit}; if that \
             many is meant, raise the limit with `max_trials = {trials}` at the top of the spec"
        )
    };
    Err(at.error(max_trials.map(Spanned::span), "max_trials", problem))
}

/// A name used in folder names and reports, checked by [`super::name::check_name`].
fn check_name(name: &Spanned<String>, field: &str, at: &Locator) -> Result<String, StudySpecError> {
    let value = name.get_ref();
    match super::name::check_name(value) {
        Ok(()) => Ok(value.clone()),
        Err(err) => Err(at.error(Some(name.span()), field, err.to_string())),
    }
}

/// Confirmation seeds: a count `n` gives the `n` seeds after the largest search seed; a list
/// must not share a seed with the search (a seed that chose a point would confirm it).
fn check_confirm_seeds(
    confirm: Option<&Spanned<RawSeeds>>,
    seeds: &[u64],
    at: &Locator,
) -> Result<Vec<u64>, StudySpecError> {
    let Some(raw) = confirm else {
        return Ok(Vec::new());
    };
    let after = seeds.iter().max().map_or(0, |s| s.saturating_add(1));
    let list = seed_list(raw, "confirm_seeds", after, at)?;
    if let Some(shared) = list.iter().find(|s| seeds.contains(s)) {
        let problem = format!(
            "seed {shared} is also a search seed; confirmation seeds must be fresh, or the \
             seeds that chose a point would also confirm it"
        );
        return Err(at.error(Some(raw.span()), "confirm_seeds", problem));
    }
    Ok(list)
}

/// A `point_from` names another method of the study that has its own points.
fn check_point_sources(
    raw: &[RawMethod],
    methods: &[Method],
    at: &Locator,
) -> Result<(), StudySpecError> {
    for (m, method) in methods.iter().enumerate() {
        let (Some(source), Some(span)) = (&method.point_from, raw[m].point_from.as_ref()) else {
            continue;
        };
        let field = format!("method[{m}].point_from");
        let problem = match methods.iter().find(|other| &other.name == source) {
            None => format!("no method is called `{source}`"),
            Some(other) if other.name == method.name => "a method cannot take its own point".into(),
            Some(other) if other.point_from.is_some() => format!(
                "method `{source}` takes its point from another method itself; name that one"
            ),
            Some(_) => continue,
        };
        return Err(at.error(Some(span.span()), field, problem));
    }
    Ok(())
}

fn check_seeds(
    seeds: Option<&Spanned<RawSeeds>>,
    at: &Locator,
) -> Result<Vec<u64>, StudySpecError> {
    match seeds {
        Some(seeds) => seed_list(seeds, "seeds", 0, at),
        None => Ok(vec![0]),
    }
}

/// The seeds of `field`: a count `n` gives `first, first + 1, ...`, a list is taken as it
/// is; at least one seed, at most [`MAX_SEEDS`], none twice.
fn seed_list(
    raw: &Spanned<RawSeeds>,
    field: &str,
    first: u64,
    at: &Locator,
) -> Result<Vec<u64>, StudySpecError> {
    let list: Vec<u64> = match raw.get_ref() {
        RawSeeds::Count(n) if *n > MAX_SEEDS => {
            let problem = format!("expected at most {MAX_SEEDS} seeds, got {n}");
            return Err(at.error(Some(raw.span()), field, problem));
        }
        RawSeeds::Count(n) => (0..*n).map(|k| first.saturating_add(k)).collect(),
        RawSeeds::List(list) => list.clone(),
    };
    if list.is_empty() {
        let problem = "expected at least one seed (a count >= 1 or a list of seeds)";
        return Err(at.error(Some(raw.span()), field, problem));
    }
    let mut sorted = list.clone();
    sorted.sort_unstable();
    sorted.dedup();
    if sorted.len() != list.len() {
        return Err(at.error(Some(raw.span()), field, "a seed is listed twice"));
    }
    Ok(list)
}

/// Checks each option of a table on its own: a `regstudy train` option, of the right type,
/// not one the runner sets.
fn check_options(
    table: &RawTable,
    field: &str,
    at: &Locator,
    origins: &mut BTreeMap<String, (usize, usize)>,
) -> Result<toml::Table, StudySpecError> {
    let mut checked = toml::Table::new();
    for (key, value) in table {
        let path = format!("{field}.{}", key.get_ref());
        check_option(key, value.get_ref(), &path, at)?;
        origins.insert(path, at.position(key.span().start));
        checked.insert(key.get_ref().clone(), value.get_ref().clone());
    }
    Ok(checked)
}

fn check_option(
    key: &Spanned<String>,
    value: &toml::Value,
    path: &str,
    at: &Locator,
) -> Result<(), StudySpecError> {
    let name = key.get_ref();
    if RUNNER_OPTIONS.contains(&name.as_str()) {
        let why = if name == "threads" {
            "threads are divided among the workers by `study run --threads`"
        } else if name == "seed" {
            "seeds are given by the study's `seeds`"
        } else {
            "each trial gets its own run folder under `runs_dir`"
        };
        return Err(at.error(
            Some(key.span()),
            path,
            format!("`{name}` cannot be set in a study: {why}"),
        ));
    }
    let mut one = toml::Table::new();
    one.insert(name.clone(), value.clone());
    toml::Value::Table(one)
        .try_into::<RunConfig>()
        .map(drop)
        .map_err(|e| at.error(Some(key.span()), path, e.message().trim().to_string()))
}

fn check_method(
    method: &RawMethod,
    m: usize,
    at: &Locator,
    origins: &mut BTreeMap<String, (usize, usize)>,
) -> Result<Method, StudySpecError> {
    let field = format!("method[{m}]");
    origins.insert(field.clone(), at.position(method.name.span().start));
    let name = check_name(&method.name, &format!("{field}.name"), at)?;
    let set = check_options(&method.set, &format!("{field}.set"), at, origins)?;
    if let (Some(from), false) = (
        &method.point_from,
        method.grid.is_empty() && method.points.is_none(),
    ) {
        return Err(at.error(
            Some(from.span()),
            format!("{field}.point_from"),
            "a method that takes another's point has no `grid` or `points` of its own",
        ));
    }
    let points = match (&method.points, method.grid.is_empty()) {
        (Some(points), false) => {
            return Err(at.error(
                Some(points.span()),
                format!("{field}.points"),
                "give either `grid` or `points`, not both",
            ));
        }
        (Some(points), true) => check_points(points, &field, at, origins)?,
        (None, _) => expand_grid(&method.grid, &field, at, origins)?,
    };
    Ok(Method {
        name,
        set,
        points,
        components: method.components.clone(),
        point_from: method.point_from.as_ref().map(|p| p.get_ref().clone()),
    })
}

fn check_points(
    points: &Spanned<Vec<RawTable>>,
    field: &str,
    at: &Locator,
    origins: &mut BTreeMap<String, (usize, usize)>,
) -> Result<Vec<toml::Table>, StudySpecError> {
    if points.get_ref().is_empty() {
        return Err(at.error(
            Some(points.span()),
            format!("{field}.points"),
            "expected at least one point",
        ));
    }
    points
        .get_ref()
        .iter()
        .enumerate()
        .map(|(p, point)| check_options(point, &format!("{field}.points[{p}]"), at, origins))
        .collect()
}

/// Every combination of the grid's values, the last key varying fastest.
fn expand_grid(
    grid: &RawTable,
    field: &str,
    at: &Locator,
    origins: &mut BTreeMap<String, (usize, usize)>,
) -> Result<Vec<toml::Table>, StudySpecError> {
    let count = grid.values().fold(1usize, |n, values| {
        n.saturating_mul(values.get_ref().as_array().map_or(1, Vec::len))
    });
    if count > MAX_TRIALS {
        let span = grid.values().next().map(Spanned::span);
        let problem = format!(
            "the grid has {count} points, more than the most a study may have ({MAX_TRIALS})"
        );
        return Err(at.error(span, format!("{field}.grid"), problem));
    }
    let mut points = vec![toml::Table::new()];
    for (key, values) in grid {
        let path = format!("{field}.grid.{}", key.get_ref());
        let toml::Value::Array(values_list) = values.get_ref() else {
            return Err(at.error(
                Some(values.span()),
                path,
                format!("expected a list of values, got {}", values.get_ref()),
            ));
        };
        if values_list.is_empty() {
            return Err(at.error(
                Some(values.span()),
                path,
                "the axis is empty: give at least one value",
            ));
        }
        for value in values_list {
            check_option(key, value, &path, at)?;
        }
        origins.insert(path, at.position(key.span().start));
        points = points
            .into_iter()
            .flat_map(|point| {
                values_list.iter().map(move |v| {
                    let mut next = point.clone();
                    next.insert(key.get_ref().clone(), v.clone());
                    next
                })
            })
            .collect();
    }
    Ok(points)
}

/// Paper values must name a method (and group) of the study and a metric the report knows.
fn check_paper(
    paper: &[Spanned<PaperValue>],
    groups: &[Group],
    methods: &[Method],
    at: &Locator,
) -> Result<(), StudySpecError> {
    const METRICS: [&str; 4] = ["test_acc", "best_val_acc", "train_acc", "gap_acc"];
    for (i, entry) in paper.iter().enumerate() {
        let field = format!("paper[{i}]");
        let (value, span) = (entry.get_ref(), Some(entry.span()));
        if !methods.iter().any(|m| m.name == value.method) {
            return Err(at.error(
                span.clone(),
                format!("{field}.method"),
                format!("no method is called `{}`", value.method),
            ));
        }
        if let Some(group) = &value.group {
            if !groups.iter().any(|g| &g.name == group) {
                return Err(at.error(
                    span.clone(),
                    format!("{field}.group"),
                    format!("no group is called `{group}`"),
                ));
            }
        }
        if !METRICS.contains(&value.metric.as_str()) {
            return Err(at.error(
                span.clone(),
                format!("{field}.metric"),
                format!(
                    "expected one of {}, got `{}`",
                    METRICS.join(", "),
                    value.metric
                ),
            ));
        }
    }
    Ok(())
}

/// The `RunConfig` field a `regstudy train` option sets (`--l1-mode` sets `l1_mode`,
/// `--layer-penalty` sets `layer_penalties`).
fn field_of_option(option: &str) -> String {
    match option {
        "layer-penalty" => "layer_penalties".into(),
        other => other.replace('-', "_"),
    }
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

fn point_json(point: &toml::Table) -> BTreeMap<String, serde_json::Value> {
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

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"name = "small"
seeds = 2

[base]
dataset = "mnist"
model = "simple-cnn"
epochs = 1

[[method]]
name = "none"

[[method]]
name = "l1"
set = { penalty = "l1" }
grid = { l1 = [1e-5, 1e-4], lr = [0.001, 0.01] }
"#;

    fn parse(text: &str) -> Result<StudySpec, StudySpecError> {
        StudySpec::parse(text, Path::new("study.toml"))
    }

    #[test]
    fn a_spec_expands_to_methods_times_grid_points_times_seeds() {
        let spec = parse(GOOD).unwrap();
        let trials = spec.trials();
        assert_eq!(trials.len(), 2 * (1 + 2 * 2));
        assert_eq!(spec.baseline, "none");
        let last = trials.last().unwrap();
        assert_eq!(last.method, "l1");
        assert_eq!(last.seed, 1);
        assert_eq!(last.config.l1, Some(1e-4));
        assert_eq!(last.config.lr, 0.01);
        assert_eq!(last.config.seed, 1);
        assert_eq!(
            last.config.out.as_deref(),
            Some(Path::new("runs/small/0009-l1-l1=0.0001-lr=0.01-seed1"))
        );
        let numbers: Vec<usize> = trials.iter().map(|t| t.number).collect();
        assert_eq!(numbers, (0..10).collect::<Vec<_>>());
    }

    #[test]
    fn an_unknown_option_is_named_with_its_line() {
        let text = GOOD.replace("epochs = 1", "epochs = 1\nlearning_rate = 0.1");
        let err = parse(&text).unwrap_err();
        assert_eq!(err.field, "base.learning_rate");
        assert_eq!(err.position, Some((8, 1)));
        assert!(err.problem.contains("unknown field"), "{err}");
        assert!(
            err.to_string()
                .starts_with("study.toml:8:1: field `base.learning_rate`"),
            "{err}"
        );
    }

    #[test]
    fn a_wrong_type_is_named_with_its_line() {
        let text = GOOD.replace("epochs = 1", "epochs = \"ten\"");
        let err = parse(&text).unwrap_err();
        assert_eq!(err.field, "base.epochs");
        assert_eq!(err.position, Some((7, 1)));
        assert!(err.problem.contains("invalid type"), "{err}");
    }

    #[test]
    fn an_empty_axis_is_refused_at_its_place() {
        let text = GOOD.replace("l1 = [1e-5, 1e-4]", "l1 = []");
        let err = parse(&text).unwrap_err();
        assert_eq!(err.field, "method[1].grid.l1");
        assert_eq!(err.position.map(|p| p.0), Some(15));
        assert!(err.problem.contains("empty"), "{err}");
    }

    #[test]
    fn an_invalid_value_is_traced_to_the_option_that_set_it() {
        let text = GOOD.replace("l1 = [1e-5, 1e-4]", "l1 = [1e-5, -1.0]");
        let err = parse(&text).unwrap_err();
        assert_eq!(err.field, "method[1].grid.l1");
        assert!(err.problem.contains(">= 0"), "{err}");
    }

    #[test]
    fn a_missing_required_option_is_reported() {
        let text = GOOD.replace("dataset = \"mnist\"\n", "");
        let err = parse(&text).unwrap_err();
        assert_eq!(err.field, "base.dataset");
        assert!(err.problem.contains("required"), "{err}");
    }

    #[test]
    fn an_unknown_top_level_key_and_bad_toml_are_located() {
        let err = parse(&format!("colour = 1\n{GOOD}")).unwrap_err();
        assert_eq!(err.position, Some((1, 1)));
        assert_eq!(err.field, "colour");
        let err = parse("name = \"x\"\n[base\n").unwrap_err();
        assert_eq!(err.position.map(|p| p.0), Some(2));
    }

    #[test]
    fn seeds_and_out_cannot_be_set_per_trial() {
        let err = parse(&GOOD.replace("epochs = 1", "epochs = 1\nseed = 3")).unwrap_err();
        assert_eq!(err.field, "base.seed");
        let err = parse(&GOOD.replace("seeds = 2", "seeds = 0")).unwrap_err();
        assert_eq!(err.field, "seeds");
    }

    #[test]
    fn a_bad_value_names_its_key_and_a_threads_setting_is_refused() {
        let err =
            parse(&GOOD.replace("seeds = 2", "seeds = 2\nselect = \"test_acc\"")).unwrap_err();
        assert_eq!(err.field, "select");
        assert_eq!(err.position.map(|p| p.0), Some(3));
        let err = parse(&GOOD.replace("epochs = 1", "epochs = 1\nthreads = 4")).unwrap_err();
        assert_eq!(err.field, "base.threads");
        let err = parse(&GOOD.replace("seeds = 2", "seeds = 10000000000")).unwrap_err();
        assert_eq!(err.field, "seeds");
    }

    #[test]
    fn a_paper_value_for_an_unknown_method_is_located() {
        let text =
            format!("{GOOD}\n[[paper]]\nmethod = \"l3\"\nmetric = \"test_acc\"\nvalue = 0.5\n");
        let err = parse(&text).unwrap_err();
        assert_eq!(err.field, "paper[0].method");
        assert!(err.position.is_some(), "{err}");
    }

    #[test]
    fn the_baseline_must_be_a_method() {
        let err = parse(&GOOD.replace("seeds = 2", "seeds = 2\nbaseline = \"l2\"")).unwrap_err();
        assert_eq!(err.field, "baseline");
        assert_eq!(err.position, Some((3, 12)));
    }

    const CONFIRMED: &str = r#"name = "confirmed"
seeds = 2
confirm_seeds = 3

[base]
dataset = "mnist"
model = "standard-cnn"
epochs = 1

[[method]]
name = "none"

[[method]]
name = "l2"
set = { penalty = "l2" }
grid = { l2 = [1e-4, 1e-3] }

[[method]]
name = "l2+dropout"
set = { penalty = "l2", dropout = 0.5 }
point_from = "l2"
"#;

    /// A finished record of `trial` whose tested (only) epoch has validation accuracy `val`.
    fn finished(trial: &NewTrial, id: i64, val: f64) -> (TrialRecord, Vec<EpochMetrics>) {
        let summary: crate::train::Summary = serde_json::from_value(serde_json::json!({
            "status": "completed", "test_acc": 0.9, "test_loss": 0.3, "best_val_acc": val,
            "best_val_loss": 0.3, "best_epoch": 1, "tested_epoch": 1, "epochs_run": 1,
            "mean_epoch_seconds": 1.0, "sparsity": crate::regularize::SparsityReport::default(),
            "seed": trial.seed, "threads": 1, "version": "0", "classes": 10
        }))
        .unwrap();
        let epoch: EpochMetrics = serde_json::from_value(serde_json::json!({
            "epoch": 1, "train_data_loss": 0.3, "train_penalty": 0.0, "train_loss": 0.3,
            "train_acc": 0.9, "val_loss": 1.0 - val, "val_acc": val, "gap_loss": null,
            "gap_acc": null, "lr": 0.001, "seconds": 1.0, "train_seconds": 1.0,
            "images_per_s": 1.0, "sparsity": crate::regularize::SparsityReport::default()
        }))
        .unwrap();
        let record = TrialRecord {
            id,
            trial: trial.clone(),
            state: crate::trial::TrialState::Done,
            worker: None,
            retry: 0,
            attempts: 1,
            started_at: None,
            finished_at: None,
            summary: Some(summary),
            message: None,
            histogram: None,
        };
        (record, vec![epoch])
    }

    #[test]
    fn names_that_are_folders_of_their_own_are_refused() {
        for name in [".", "..", "...", "a/b", "", "x\\ty"] {
            let text = GOOD.replace("name = \"small\"", &format!("name = \"{name}\""));
            let err = parse(&text).unwrap_err();
            assert_eq!(err.field, "name", "{name}: {err}");
        }
        let text = GOOD.replace("[[method]]\nname = \"none\"", "[[method]]\nname = \"..\"");
        assert_eq!(parse(&text).unwrap_err().field, "method[0].name");
        assert!(parse(&GOOD.replace("name = \"small\"", "name = \"v1.2\"")).is_ok());
    }

    #[test]
    fn a_bad_seeds_value_says_what_is_expected_at_its_line() {
        for (seeds, expected) in [
            (
                "\"three\"",
                "a count of seeds (such as 3) or a list of seeds",
            ),
            ("1.5", "a count of seeds (such as 3) or a list of seeds"),
            ("-1", "got -1"),
            ("[0, \"a\"]", "each an integer >= 0, got \"a\""),
            ("[0, -2]", "each an integer >= 0, got -2"),
        ] {
            let text = GOOD.replace("seeds = 2", &format!("seeds = {seeds}"));
            let err = parse(&text).unwrap_err();
            let message = err.to_string();
            assert!(
                message.starts_with("study.toml:2:") && message.contains(expected),
                "{seeds}: {message}"
            );
            assert!(
                !message.contains("RawSeeds") && !message.contains("untagged"),
                "{message}"
            );
        }
        let list = parse(&GOOD.replace("seeds = 2", "seeds = [4, 7]")).unwrap();
        assert_eq!(list.seeds, vec![4, 7]);
    }

    #[test]
    fn a_study_above_its_trial_limit_is_refused_with_the_count_and_how_to_raise_it() {
        let grid = "grid = { l1 = [1e-5, 1e-4], lr = [0.001, 0.01] }";
        let values: Vec<String> = (0..5001)
            .map(|k| format!("{}", 1e-6 * (k + 1) as f64))
            .collect();
        let big = GOOD.replace(grid, &format!("grid = {{ l1 = [{}] }}", values.join(", ")));
        let err = parse(&big).unwrap_err();
        assert_eq!(err.field, "max_trials");
        assert!(
            err.problem
                .contains("expands to 10004 trials, more than its limit of 10000")
                && err.problem.contains("`max_trials = 10004`"),
            "{err}"
        );
        let raised = format!("max_trials = 10004\n{big}");
        assert_eq!(parse(&raised).unwrap().trials().len(), 10004);
        let too_high = format!("max_trials = 2000000\n{GOOD}");
        assert!(parse(&too_high)
            .unwrap_err()
            .problem
            .contains("expected at most 1000000"));
    }

    #[test]
    fn a_grid_of_millions_of_points_is_refused_before_it_is_expanded() {
        let axis = "[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]";
        let axes: Vec<String> = [
            "epochs",
            "batch_size",
            "lr",
            "l1",
            "l2",
            "momentum",
            "dropout",
        ]
        .iter()
        .map(|k| format!("{k} = {axis}"))
        .collect();
        let grid = "grid = { l1 = [1e-5, 1e-4], lr = [0.001, 0.01] }";
        let text = GOOD.replace(grid, &format!("grid = {{ {} }}", axes.join(", ")));
        let err = parse(&text).unwrap_err();
        assert_eq!(err.field, "method[1].grid");
        assert!(err.problem.contains("10000000 points"), "{err}");
    }

    #[test]
    fn no_validation_split_is_refused_where_a_choice_or_early_stopping_needs_one() {
        let zero = GOOD.replace("epochs = 1", "epochs = 1\nval_fraction = 0.0");
        let err = parse(&zero).unwrap_err();
        assert_eq!(err.field, "base.val_fraction");
        assert_eq!(err.position, Some((8, 1)));
        assert!(
            err.problem.contains("method `l1` has 4 grid points")
                && err.problem.contains("`val_fraction` must be above 0"),
            "{err}"
        );
        let single = "grid = { l1 = [1e-5] }";
        let grid = "grid = { l1 = [1e-5, 1e-4], lr = [0.001, 0.01] }";
        let one_point = zero.replace(grid, single);
        assert!(parse(&one_point).is_ok(), "nothing is chosen: it may run");
        let stopping = one_point.replace("epochs = 1", "epochs = 1\npatience = 2");
        let err = parse(&stopping).unwrap_err();
        assert_eq!(err.field, "base.val_fraction");
        assert!(err.problem.contains("early stopping (`patience`)"), "{err}");
    }

    #[test]
    fn confirmation_seeds_follow_the_search_seeds_and_must_be_fresh() {
        let spec = parse(CONFIRMED).unwrap();
        assert_eq!(spec.seeds, vec![0, 1]);
        assert_eq!(spec.confirm_seeds, vec![2, 3, 4]);
        let err =
            parse(&CONFIRMED.replace("confirm_seeds = 3", "confirm_seeds = [1, 5]")).unwrap_err();
        assert_eq!(err.field, "confirm_seeds");
        assert!(
            err.problem.contains("seed 1 is also a search seed"),
            "{err}"
        );
        assert_eq!(err.position, Some((3, 17)));
    }

    #[test]
    fn a_method_without_a_grid_runs_only_on_the_confirmation_seeds_and_a_grid_on_the_search_seeds()
    {
        let spec = parse(CONFIRMED).unwrap();
        let summary: Vec<(String, u64, Phase)> = spec
            .trials()
            .iter()
            .map(|t| (t.method.clone(), t.seed, t.phase))
            .collect();
        let none = |seed| ("none".to_string(), seed, Phase::Confirm);
        let l2 = |seed| ("l2".to_string(), seed, Phase::Search);
        assert_eq!(
            summary,
            vec![none(2), none(3), none(4), l2(0), l2(1), l2(0), l2(1)]
        );
        assert_eq!(spec.expected_trials(), 7 + 2 * 3);
        assert_eq!(spec.first_phase_len(), spec.trials().len());
        let plain = parse(GOOD).unwrap();
        assert_eq!(plain.first_phase_len(), plain.trials().len());
    }

    #[test]
    fn the_chosen_point_is_confirmed_once_its_search_has_ended_and_lends_its_strength() {
        let spec = parse(CONFIRMED).unwrap();
        let trials = spec.trials();
        let mut records = Vec::new();
        let mut epochs = BTreeMap::new();
        // The search of l2: the second point (1e-3) scores higher on validation.
        for (k, t) in trials.iter().enumerate() {
            let val = if t.point.get("l2") == Some(&serde_json::json!(1e-3)) {
                0.8
            } else {
                0.7
            };
            let (record, e) = finished(t, k as i64, val);
            records.push(record);
            epochs.insert(k as i64, e);
        }
        let lookup = |id: i64| epochs.get(&id).map_or(&[][..], Vec::as_slice);
        // While one search trial is still running, nothing follows.
        let mut unfinished = records.clone();
        unfinished[6].state = crate::trial::TrialState::Running;
        assert!(spec.later_trials(&unfinished, lookup).is_empty());
        let later = spec.later_trials(&records, lookup);
        type Row = (usize, String, u64, Phase, Option<f32>, Option<f32>);
        let got: Vec<Row> = later
            .iter()
            .map(|t| {
                let c = &t.config;
                (t.number, t.method.clone(), t.seed, t.phase, c.l2, c.dropout)
            })
            .collect();
        let row = |number, method: &str, seed, dropout| {
            (
                number,
                method.to_string(),
                seed,
                Phase::Confirm,
                Some(1e-3),
                dropout,
            )
        };
        assert_eq!(
            got,
            vec![
                row(7, "l2", 2, None),
                row(8, "l2", 3, None),
                row(9, "l2", 4, None),
                row(10, "l2+dropout", 2, Some(0.5)),
                row(11, "l2+dropout", 3, Some(0.5)),
                row(12, "l2+dropout", 4, Some(0.5)),
            ]
        );
        assert_eq!(
            later[3].point,
            BTreeMap::from([("l2".to_string(), serde_json::json!(1e-3))])
        );
        // The same records give the same trials.
        assert_eq!(spec.later_trials(&records, lookup), later);
    }

    #[test]
    fn a_point_source_must_be_another_method_with_its_own_points() {
        let err =
            parse(&CONFIRMED.replace("point_from = \"l2\"", "point_from = \"l3\"")).unwrap_err();
        assert_eq!(err.field, "method[2].point_from");
        assert!(err.problem.contains("no method is called `l3`"), "{err}");
        let with_grid = CONFIRMED.replace(
            "point_from = \"l2\"",
            "point_from = \"l2\"\ngrid = { dropout = [0.2, 0.5] }",
        );
        let err = parse(&with_grid).unwrap_err();
        assert_eq!(err.field, "method[2].point_from");
    }
}
