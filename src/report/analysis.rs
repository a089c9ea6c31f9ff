//! What the trials say, as plain numbers: per group and method, each grid point's
//! validation score, the chosen point, the chosen point's results over seeds, and the
//! verdict against the baseline. Formatting lives elsewhere.
//!
//! Grid points are chosen on the validation split only (`best_val_acc`, highest mean over
//! seeds, or `best_val_loss`, lowest); the test set is read only for the chosen point, so
//! the reported test accuracy is an unbiased estimate of the tuned method.

use super::stats::{paired_t_test, Estimate, PairedTest};
use super::StudyResults;
use crate::study::record::{TrialRecord, TrialState};
use crate::study::spec::Selection;
use crate::train::EpochMetrics;
use std::collections::{BTreeMap, BTreeSet};

/// Significance level of the verdicts.
pub const ALPHA: f64 = 0.05;

/// Everything the report shows, as numbers.
#[derive(Clone, Debug, PartialEq)]
pub struct Analysis {
    /// Trials in each state (every state present).
    pub counts: BTreeMap<TrialState, usize>,
    /// Failed and diverged trials, by number.
    pub problems: Vec<Problem>,
    pub groups: Vec<GroupAnalysis>,
}

/// A trial that failed or diverged.
#[derive(Clone, Debug, PartialEq)]
pub struct Problem {
    pub number: usize,
    pub group: String,
    pub method: String,
    pub point: String,
    pub seed: u64,
    pub state: TrialState,
    pub message: String,
}

/// One comparison group.
#[derive(Clone, Debug, PartialEq)]
pub struct GroupAnalysis {
    pub name: String,
    /// The spec's methods in spec order, then any other method found in the trials.
    pub methods: Vec<MethodAnalysis>,
    /// The index of the baseline in `methods`, if it has trials in this group.
    pub baseline: Option<usize>,
    /// Published values for this group, with ours.
    pub paper: Vec<PaperComparison>,
}

/// One method in one group.
#[derive(Clone, Debug, PartialEq)]
pub struct MethodAnalysis {
    pub name: String,
    pub components: Vec<String>,
    /// Grid points in expansion order (lowest trial number first).
    pub points: Vec<PointAnalysis>,
    /// Index of the chosen point in `points`.
    pub chosen: Option<usize>,
    /// Results of the chosen point (`None` when no point has a done trial).
    pub result: Option<ChosenResult>,
    pub verdict: Verdict,
}

impl MethodAnalysis {
    /// The chosen point, if any.
    pub fn chosen_point(&self) -> Option<&PointAnalysis> {
        self.points.get(self.chosen?)
    }
}

/// One grid point of a method, over its done trials.
#[derive(Clone, Debug, PartialEq)]
pub struct PointAnalysis {
    pub point: BTreeMap<String, serde_json::Value>,
    /// `key=value` pairs joined by `, `; `—` for the empty point.
    pub label: String,
    /// Every trial of the point (any state), by number.
    pub trial_ids: Vec<i64>,
    /// Done trials with a summary.
    pub done_ids: Vec<i64>,
    pub best_val_acc: Option<Estimate>,
    pub best_val_loss: Option<Estimate>,
}

impl PointAnalysis {
    /// The selection score: the mean of the selection metric, oriented so that higher is
    /// better (validation loss is negated).
    pub fn score(&self, select: Selection) -> Option<f64> {
        match select {
            Selection::ValAcc => self.best_val_acc.map(|e| e.mean),
            Selection::ValLoss => self.best_val_loss.map(|e| -e.mean),
        }
    }
}

/// The chosen point's results over its done trials (fractions, not percent).
#[derive(Clone, Debug, PartialEq)]
pub struct ChosenResult {
    /// Test accuracy by seed.
    pub test_by_seed: BTreeMap<u64, f64>,
    pub test_acc: Option<Estimate>,
    /// Final-epoch training accuracy.
    pub train_acc: Option<Estimate>,
    pub best_val_acc: Option<Estimate>,
    /// Final-epoch validation accuracy.
    pub final_val_acc: Option<Estimate>,
    /// `train_acc - val_acc` at the final epoch.
    pub gap: Option<Estimate>,
    /// Final-epoch training data loss (without the penalty) and validation loss.
    pub train_loss: Option<Estimate>,
    pub val_loss: Option<Estimate>,
    pub zero_fraction: Option<Estimate>,
    /// Fraction of kernel weights with `|w| < 1e-3`.
    pub below_1e3: Option<Estimate>,
    pub seconds_per_epoch: Option<Estimate>,
    /// `100 * (s/epoch / baseline s/epoch - 1)`; `None` for the baseline itself.
    pub overhead_pct: Option<f64>,
    /// Number of done trials (seeds).
    pub n: usize,
}

/// The method against the baseline.
#[derive(Clone, Debug, PartialEq)]
pub enum Verdict {
    Baseline,
    /// Tested: `mean_diff` is method minus baseline test accuracy over common seeds.
    Better {
        p: f64,
        mean_diff: f64,
    },
    Worse {
        p: f64,
        mean_diff: f64,
    },
    NoDifference {
        p: f64,
        mean_diff: f64,
    },
    /// Not tested, with the reason (`n<2`, `zero variance`, `no baseline`).
    NotAvailable(String),
}

/// A published value beside ours.
#[derive(Clone, Debug, PartialEq)]
pub struct PaperComparison {
    pub method: String,
    pub metric: String,
    pub paper: f64,
    /// Our estimate of the same metric at the chosen point (fractions).
    pub ours: Option<Estimate>,
    pub source: String,
}

/// Analyzes the results.
pub fn analyze(results: &StudyResults) -> Analysis {
    let mut counts: BTreeMap<TrialState, usize> = TrialState::ALL.iter().map(|&s| (s, 0)).collect();
    for t in &results.trials {
        *counts.entry(t.state).or_default() += 1;
    }
    let groups = group_names(results)
        .into_iter()
        .map(|g| analyze_group(results, &g))
        .collect();
    Analysis {
        counts,
        problems: problems(&results.trials),
        groups,
    }
}

/// The spec's groups in order, then groups found only in the trials (by first number).
fn group_names(results: &StudyResults) -> Vec<String> {
    let mut names: Vec<String> = results.spec.groups.iter().map(|g| g.name.clone()).collect();
    if names.is_empty() {
        names.push(String::new());
    }
    for t in sorted_trials(&results.trials) {
        if !names.contains(&t.trial.group) {
            names.push(t.trial.group.clone());
        }
    }
    names
}

fn sorted_trials(trials: &[TrialRecord]) -> Vec<&TrialRecord> {
    let mut v: Vec<&TrialRecord> = trials.iter().collect();
    v.sort_by_key(|t| (t.trial.number, t.id));
    v
}

fn problems(trials: &[TrialRecord]) -> Vec<Problem> {
    sorted_trials(trials)
        .into_iter()
        .filter(|t| matches!(t.state, TrialState::Failed | TrialState::Diverged))
        .map(|t| Problem {
            number: t.trial.number,
            group: t.trial.group.clone(),
            method: t.trial.method.clone(),
            point: point_label(&t.trial.point),
            seed: t.trial.seed,
            state: t.state,
            message: t
                .message
                .clone()
                .or_else(|| t.summary.as_ref().and_then(|s| s.message.clone()))
                .unwrap_or_default(),
        })
        .collect()
}

/// `l1=0.0001, l2=0.001`, or `—` for the empty point.
pub fn point_label(point: &BTreeMap<String, serde_json::Value>) -> String {
    if point.is_empty() {
        return "—".into();
    }
    let parts: Vec<String> = point
        .iter()
        .map(|(k, v)| match v {
            serde_json::Value::String(s) => format!("{k}={s}"),
            other => format!("{k}={other}"),
        })
        .collect();
    parts.join(", ")
}

fn analyze_group(results: &StudyResults, group: &str) -> GroupAnalysis {
    let trials: Vec<&TrialRecord> = sorted_trials(&results.trials)
        .into_iter()
        .filter(|t| t.trial.group == group)
        .collect();
    let mut names: Vec<String> = results
        .spec
        .methods
        .iter()
        .map(|m| m.name.clone())
        .collect();
    for t in &trials {
        if !names.contains(&t.trial.method) {
            names.push(t.trial.method.clone());
        }
    }
    let mut methods: Vec<MethodAnalysis> = names
        .iter()
        .map(|name| analyze_method(results, &trials, name))
        .collect();
    let baseline = methods
        .iter()
        .position(|m| m.name == results.spec.baseline && m.result.is_some());
    add_comparisons(&mut methods, baseline);
    if baseline.is_none() {
        // The baseline without results is still the baseline, not a method without one.
        let name = &results.spec.baseline;
        if let Some(m) = methods.iter_mut().find(|m| &m.name == name) {
            m.verdict = Verdict::Baseline;
        }
    }
    let paper = paper_rows(results, group, &methods);
    GroupAnalysis {
        name: group.to_string(),
        methods,
        baseline,
        paper,
    }
}

fn analyze_method(results: &StudyResults, trials: &[&TrialRecord], name: &str) -> MethodAnalysis {
    let mine: Vec<&TrialRecord> = trials
        .iter()
        .copied()
        .filter(|t| t.trial.method == name)
        .collect();
    let mut points: Vec<PointAnalysis> = Vec::new();
    for t in &mine {
        if !points.iter().any(|p| p.point == t.trial.point) {
            points.push(analyze_point(&mine, &t.trial.point));
        }
    }
    let chosen = choose(&points, results.spec.select);
    let result = chosen.map(|i| chosen_result(results, &mine, &points[i]));
    MethodAnalysis {
        name: name.to_string(),
        components: results
            .spec
            .method(name)
            .map(|m| m.components.clone())
            .unwrap_or_default(),
        points,
        chosen,
        result,
        verdict: Verdict::NotAvailable("no baseline".into()),
    }
}

/// A done trial's summary, if it is done and has one.
fn done_summary(t: &TrialRecord) -> Option<&crate::train::Summary> {
    (t.state == TrialState::Done)
        .then_some(t.summary.as_ref())
        .flatten()
}

fn analyze_point(
    trials: &[&TrialRecord],
    point: &BTreeMap<String, serde_json::Value>,
) -> PointAnalysis {
    let at: Vec<&TrialRecord> = trials
        .iter()
        .copied()
        .filter(|t| &t.trial.point == point)
        .collect();
    let done: Vec<&TrialRecord> = at
        .iter()
        .copied()
        .filter(|t| done_summary(t).is_some())
        .collect();
    let collect = |f: fn(&crate::train::Summary) -> Option<f64>| -> Vec<f64> {
        done.iter()
            .filter_map(|t| done_summary(t).and_then(f))
            .collect()
    };
    PointAnalysis {
        point: point.clone(),
        label: point_label(point),
        trial_ids: at.iter().map(|t| t.id).collect(),
        done_ids: done.iter().map(|t| t.id).collect(),
        best_val_acc: Estimate::of(&collect(|s| s.best_val_acc)),
        best_val_loss: Estimate::of(&collect(|s| s.best_val_loss)),
    }
}

/// The point with the best selection score; ties go to the earlier point.
fn choose(points: &[PointAnalysis], select: Selection) -> Option<usize> {
    let mut best: Option<(usize, f64)> = None;
    for (i, p) in points.iter().enumerate() {
        if let Some(score) = p.score(select).filter(|s| s.is_finite()) {
            if best.is_none_or(|(_, b)| score > b) {
                best = Some((i, score));
            }
        }
    }
    best.map(|(i, _)| i)
}

/// The final epoch of a trial's recorded epochs.
fn final_epoch(results: &StudyResults, id: i64) -> Option<&EpochMetrics> {
    results.epochs.get(&id)?.iter().max_by_key(|m| m.epoch)
}

fn chosen_result(
    results: &StudyResults,
    trials: &[&TrialRecord],
    point: &PointAnalysis,
) -> ChosenResult {
    let done: Vec<&TrialRecord> = trials
        .iter()
        .copied()
        .filter(|t| point.done_ids.contains(&t.id))
        .collect();
    let summaries = |f: &dyn Fn(&crate::train::Summary) -> Option<f64>| -> Option<Estimate> {
        let v: Vec<f64> = done
            .iter()
            .filter_map(|t| done_summary(t).and_then(f))
            .collect();
        Estimate::of(&v)
    };
    let finals = |f: &dyn Fn(&EpochMetrics) -> Option<f64>| -> Option<Estimate> {
        let v: Vec<f64> = done
            .iter()
            .filter_map(|t| final_epoch(results, t.id).and_then(f))
            .collect();
        Estimate::of(&v)
    };
    let test_by_seed = done
        .iter()
        .filter_map(|t| Some((t.trial.seed, done_summary(t)?.test_acc?)))
        .filter(|(_, v)| v.is_finite())
        .collect();
    ChosenResult {
        test_by_seed,
        test_acc: summaries(&|s| s.test_acc),
        train_acc: finals(&|m| Some(m.train_acc)),
        best_val_acc: summaries(&|s| s.best_val_acc),
        final_val_acc: finals(&|m| m.val_acc),
        gap: finals(&|m| m.val_acc.map(|v| m.train_acc - v)),
        train_loss: finals(&|m| Some(m.train_data_loss)),
        val_loss: finals(&|m| m.val_loss),
        zero_fraction: summaries(&|s| Some(s.sparsity.overall.zero_fraction)),
        below_1e3: summaries(&|s| Some(s.sparsity.overall.below_fraction[1])),
        seconds_per_epoch: summaries(&|s| Some(s.mean_epoch_seconds)),
        overhead_pct: None,
        n: done.len(),
    }
}

/// Fills in overheads and verdicts against the baseline.
fn add_comparisons(methods: &mut [MethodAnalysis], baseline: Option<usize>) {
    let Some(b) = baseline else {
        return;
    };
    let base = methods[b].result.clone();
    for (i, m) in methods.iter_mut().enumerate() {
        if i == b {
            m.verdict = Verdict::Baseline;
            continue;
        }
        let (Some(r), Some(base)) = (m.result.as_mut(), base.as_ref()) else {
            m.verdict = Verdict::NotAvailable("n<2".into());
            continue;
        };
        r.overhead_pct = overhead(r, base);
        m.verdict = verdict(&r.test_by_seed, &base.test_by_seed);
    }
}

/// `100 * (s / s_baseline - 1)`, when both are known and the baseline's is positive.
fn overhead(r: &ChosenResult, base: &ChosenResult) -> Option<f64> {
    let (s, b) = (r.seconds_per_epoch?.mean, base.seconds_per_epoch?.mean);
    (b > 0.0).then(|| 100.0 * (s / b - 1.0))
}

/// The paired t-test on test accuracy over the seeds both have.
fn verdict(method: &BTreeMap<u64, f64>, base: &BTreeMap<u64, f64>) -> Verdict {
    let seeds: Vec<u64> = method
        .keys()
        .filter(|s| base.contains_key(s))
        .copied()
        .collect();
    let a: Vec<f64> = seeds.iter().map(|s| method[s]).collect();
    let b: Vec<f64> = seeds.iter().map(|s| base[s]).collect();
    match paired_t_test(&a, &b) {
        PairedTest::NotTested { reason, .. } => Verdict::NotAvailable(reason),
        PairedTest::Tested { p, mean_diff, .. } if p < ALPHA && mean_diff > 0.0 => {
            Verdict::Better { p, mean_diff }
        }
        PairedTest::Tested { p, mean_diff, .. } if p < ALPHA => Verdict::Worse { p, mean_diff },
        PairedTest::Tested { p, mean_diff, .. } => Verdict::NoDifference { p, mean_diff },
    }
}

/// Published values of this group (a value without a group belongs to every group), with
/// our estimate of the same metric.
fn paper_rows(
    results: &StudyResults,
    group: &str,
    methods: &[MethodAnalysis],
) -> Vec<PaperComparison> {
    results
        .spec
        .paper
        .iter()
        .filter(|p| p.group.as_deref().is_none_or(|g| g == group))
        .map(|p| PaperComparison {
            method: p.method.clone(),
            metric: p.metric.clone(),
            paper: p.value,
            ours: methods
                .iter()
                .find(|m| m.name == p.method)
                .and_then(|m| m.result.as_ref())
                .and_then(|r| metric(r, &p.metric)),
            source: p.source.clone(),
        })
        .collect()
}

/// Our estimate of a paper metric: `test_acc`, `best_val_acc`, `train_acc`, `gap_acc`.
fn metric(r: &ChosenResult, name: &str) -> Option<Estimate> {
    match name {
        "test_acc" => r.test_acc,
        "best_val_acc" => r.best_val_acc,
        "train_acc" => r.train_acc,
        "gap_acc" => r.gap,
        _ => None,
    }
}

/// A row of the ablation table.
#[derive(Clone, Debug, PartialEq)]
pub struct AblationRow {
    /// The component removed (`None` for the full method itself).
    pub removed: Option<String>,
    /// The method with that component removed, if the study has it.
    pub method: Option<String>,
    pub test_acc: Option<Estimate>,
    /// `full - this`, in accuracy fraction; positive when removing the component hurts.
    pub drop: Option<f64>,
}

/// All components used by the group's methods, sorted.
pub fn all_components(methods: &[MethodAnalysis]) -> Vec<String> {
    let set: BTreeSet<&String> = methods.iter().flat_map(|m| &m.components).collect();
    set.into_iter().cloned().collect()
}

/// The ablation of the "full" method (the one whose components are all the group's
/// components): for each component, the method with exactly that one removed. Empty when
/// no method is full.
pub fn ablation(methods: &[MethodAnalysis]) -> Vec<AblationRow> {
    let all: BTreeSet<String> = all_components(methods).into_iter().collect();
    let set = |m: &MethodAnalysis| m.components.iter().cloned().collect::<BTreeSet<String>>();
    let Some(full) = methods.iter().find(|m| !all.is_empty() && set(m) == all) else {
        return Vec::new();
    };
    let full_acc = full.result.as_ref().and_then(|r| r.test_acc);
    let mut rows = vec![AblationRow {
        removed: None,
        method: Some(full.name.clone()),
        test_acc: full_acc,
        drop: None,
    }];
    for c in &all {
        let mut without = all.clone();
        without.remove(c);
        let m = methods.iter().find(|m| set(m) == without);
        let acc = m.and_then(|m| m.result.as_ref()).and_then(|r| r.test_acc);
        rows.push(AblationRow {
            removed: Some(c.clone()),
            method: m.map(|m| m.name.clone()),
            test_acc: acc,
            drop: full_acc.zip(acc).map(|(f, a)| f.mean - a.mean),
        });
    }
    rows
}
