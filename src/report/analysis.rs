//! What the trials say, as plain numbers: per group and method, each grid point's
//! validation score, the chosen point, the chosen point's results over seeds, and the
//! verdict against the baseline. Formatting lives elsewhere.
//!
//! - A grid point is chosen on validation only, by the score of exactly the weights whose
//!   test accuracy is reported, among points with no diverged or failed seed that learned
//!   something ([`crate::study::select`]).
//! - With confirmation seeds the chosen point, and every method without a grid, is
//!   reported from fresh seeds that took no part in the choice, so its estimate is free of
//!   the winner's curse; without them the seeds that chose also report, and the report
//!   says the chosen point's estimate is biased upward.
//! - A reported run that diverged counts at chance accuracy (`1 / classes`), so a method
//!   is not scored by its survivors; a failed run (an error outside the method) is left
//!   out and counted.
//! - The verdicts against the baseline are two-sided paired t-tests (pairs matched by
//!   seed) with Holm's adjustment over the group's comparisons; a method whose test
//!   accuracy is at chance is flagged as such instead of being tested.
//! - Figures of a run (training, validation accuracy and loss, gap) are taken at the epoch
//!   whose weights were tested: the last one, or the restored one under early stopping.

use super::claims::{judge, ClaimFinding};
use super::cost::{last_attempt_spans, Cost};
use super::stats::{holm, paired_t_test, Estimate, PairedTest};
use super::StudyResults;
use crate::study::select::{at_chance, choose, classes_of, tested_epoch, PointScore};
use crate::study::spec::Metric;
use crate::train::EpochMetrics;
use crate::trial::{Phase, TrialRecord, TrialState};
use std::collections::{BTreeMap, BTreeSet};

/// Significance level of the verdicts (family-wise within a group, by Holm's procedure).
pub const ALPHA: f64 = 0.05;

/// Everything the report shows, as numbers.
#[derive(Clone, Debug, PartialEq)]
pub struct Analysis {
    /// Trials in each state (every state present).
    pub counts: BTreeMap<TrialState, usize>,
    /// Failed and diverged trials, by number.
    pub problems: Vec<Problem>,
    pub groups: Vec<GroupAnalysis>,
    /// Whether some trials ran at the same time as others: their times per epoch then
    /// include the contention, and overheads between methods are not reliable.
    pub concurrent: bool,
    /// What the study's pruning rule stopped; `None` when the study prunes nothing.
    pub pruning: Option<Pruning>,
    /// What the training cost, and what pruning saved.
    pub cost: Cost,
}

/// What a study's pruning rule stopped, and the training that saved.
#[derive(Clone, Debug, PartialEq)]
pub struct Pruning {
    /// The rule, in words.
    pub rule: String,
    /// Trials stopped by the rule.
    pub pruned: usize,
    /// Search trials of methods with a grid: those the rule may stop.
    pub prunable: usize,
    /// Epochs the pruned trials did not train: each one's epochs less those it recorded.
    pub saved_epochs: usize,
    /// Epochs of every trial of the study trained to its last epoch.
    pub budget_epochs: usize,
    /// Whether some trial stops early (its config has a patience): then a pruned trial might
    /// have stopped before its last epoch, and `saved_epochs` is an upper bound.
    pub early_stopping: bool,
}

impl Pruning {
    fn of(results: &StudyResults) -> Option<Pruning> {
        let (spec, trials) = (&results.spec, &results.trials);
        let rule = spec.prune?;
        let epochs_of = |t: &TrialRecord| t.trial.config.epochs;
        let prunable = trials
            .iter()
            .filter(|t| {
                t.trial.phase == Phase::Search
                    && spec
                        .method(&t.trial.method)
                        .is_some_and(|m| spec.searches(m))
            })
            .count();
        let pruned: Vec<&TrialRecord> = trials
            .iter()
            .filter(|t| t.state == TrialState::Pruned)
            .collect();
        let saved_epochs = pruned.iter().map(|t| results.untrained_epochs(t)).sum();
        let epochs = trials.iter().map(epochs_of).max().unwrap_or(0);
        Some(Pruning {
            rule: rule.describe(epochs),
            pruned: pruned.len(),
            prunable,
            saved_epochs,
            budget_epochs: trials.iter().map(epochs_of).sum(),
            early_stopping: results.trials_may_stop_early(),
        })
    }
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
    /// The claims about this group (or about every group), judged.
    pub claims: Vec<ClaimFinding>,
}

/// How a method's reported point was found.
#[derive(Clone, Debug, PartialEq)]
pub enum Choice {
    /// The method has one point: nothing was chosen.
    Only,
    /// Chosen by the method's own search on the search seeds.
    Searched,
    /// The point another method's search chose (`point_from`).
    From(String),
}

/// One method in one group.
#[derive(Clone, Debug, PartialEq)]
pub struct MethodAnalysis {
    pub name: String,
    pub components: Vec<String>,
    pub choice: Choice,
    /// Grid points in expansion order (lowest trial number first), scored on the search
    /// trials (on the reported trials for a method that searched nothing).
    pub points: Vec<PointAnalysis>,
    /// Index of the chosen point in `points`.
    pub chosen: Option<usize>,
    /// Seeds whose runs chose the point (empty when nothing was searched).
    pub selection_seeds: Vec<u64>,
    /// Results of the reported runs (`None` when none is done).
    pub result: Option<ChosenResult>,
    /// Every trial of the method in this group, and those that diverged or failed.
    pub trials: usize,
    pub diverged: usize,
    pub failed: usize,
    pub verdict: Verdict,
}

impl MethodAnalysis {
    /// The chosen point, if any.
    pub fn chosen_point(&self) -> Option<&PointAnalysis> {
        self.points.get(self.chosen?)
    }

    /// The label of the reported point: the chosen one, or the confirmation runs' own.
    pub fn reported_label(&self) -> Option<&str> {
        self.result
            .as_ref()
            .map(|r| r.label.as_str())
            .or_else(|| self.chosen_point().map(|p| p.label.as_str()))
    }

    /// The done trials whose results are reported.
    pub fn reported_ids(&self) -> &[i64] {
        self.result.as_ref().map_or(&[], |r| &r.trial_ids)
    }
}

/// One grid point of a method.
#[derive(Clone, Debug, PartialEq)]
pub struct PointAnalysis {
    pub point: BTreeMap<String, serde_json::Value>,
    /// `key=value` pairs joined by `, `; `—` for the empty point.
    pub label: String,
    /// Every scored trial of the point (any state), by number.
    pub trial_ids: Vec<i64>,
    /// Done trials with a summary.
    pub done_ids: Vec<i64>,
    /// The point's standing in the choice: validation figures of the tested weights,
    /// diverged and failed seeds, and why it is not eligible.
    pub score: PointScore,
    /// Highest validation accuracy of any epoch: a paper-comparison figure, never used to
    /// choose.
    pub best_val_acc: Option<Estimate>,
}

/// The reported runs' results (fractions, not percent), each run's figures taken at the
/// epoch whose weights were tested.
#[derive(Clone, Debug, PartialEq)]
pub struct ChosenResult {
    /// The reported point.
    pub label: String,
    /// Whether these runs are confirmation runs on fresh seeds.
    pub confirmed: bool,
    /// Reported trials that are done, and their seeds.
    pub trial_ids: Vec<i64>,
    pub seeds: Vec<u64>,
    /// Reported runs that diverged (scored at chance) and failed (left out).
    pub diverged: usize,
    pub failed: usize,
    /// Test accuracy by seed; a diverged run at chance.
    pub test_by_seed: BTreeMap<u64, f64>,
    pub test_acc: Option<Estimate>,
    /// Whether the mean test accuracy is at chance ([`at_chance`]).
    pub at_chance: bool,
    /// Accuracy on the training images during the tested epoch, with dropout, batch
    /// statistics and augmentation active (as Keras reports it; biased low).
    pub train_acc_running: Option<Estimate>,
    /// Accuracy of the tested weights in evaluation mode on a fixed training subset.
    pub train_acc: Option<Estimate>,
    pub val_acc: Option<Estimate>,
    /// `train_acc - val_acc`: the generalization gap in evaluation mode.
    pub gap: Option<Estimate>,
    /// `train_acc_running - val_acc`, the gap papers quote.
    pub gap_running: Option<Estimate>,
    /// Highest validation accuracy of any epoch (paper comparisons only).
    pub best_val_acc: Option<Estimate>,
    /// Training data loss (without the penalty) during the tested epoch, and validation loss.
    pub train_loss: Option<Estimate>,
    pub val_loss: Option<Estimate>,
    pub zero_fraction: Option<Estimate>,
    /// Fraction of output groups (conv filters, linear units) whose every weight is 0.
    pub zero_group_fraction: Option<Estimate>,
    /// Fraction of kernel weights with `|w| < 1e-3`.
    pub below_1e3: Option<Estimate>,
    /// Mean seconds per epoch, all of it (training, validation, statistics).
    pub seconds_per_epoch: Option<Estimate>,
    /// Mean seconds per epoch spent in the training batches alone.
    pub train_seconds_per_epoch: Option<Estimate>,
    /// `100 * (train s/epoch / baseline train s/epoch - 1)`; `None` for the baseline.
    pub overhead_pct: Option<f64>,
    /// Number of reported seeds with a test accuracy.
    pub n: usize,
}

/// The method against the baseline.
#[derive(Clone, Debug, PartialEq)]
pub enum Verdict {
    Baseline,
    /// Tested: `mean_diff` is method minus baseline test accuracy over common seeds, `p`
    /// the paired test's p-value and `p_adjusted` Holm's over the group's tests; the
    /// verdict follows `p_adjusted`.
    Better {
        p: f64,
        p_adjusted: f64,
        mean_diff: f64,
    },
    Worse {
        p: f64,
        p_adjusted: f64,
        mean_diff: f64,
    },
    NoDifference {
        p: f64,
        p_adjusted: f64,
        mean_diff: f64,
    },
    /// Test accuracy at chance: not tested, not ranked.
    AtChance,
    /// Not tested, with the reason (`n<2`, `zero variance`, `no baseline`).
    NotAvailable(String),
}

/// A published value beside ours.
#[derive(Clone, Debug, PartialEq)]
pub struct PaperComparison {
    pub method: String,
    pub metric: Metric,
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
        concurrent: ran_concurrently(&results.trials),
        pruning: Pruning::of(results),
        cost: Cost::of(results),
    }
}

/// Whether the last attempts of two finished trials overlap in time.
fn ran_concurrently(trials: &[TrialRecord]) -> bool {
    last_attempt_spans(trials)
        .windows(2)
        .any(|w| w[1].0 < w[0].1)
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
    let claims = results
        .claims
        .iter()
        .filter(|c| c.group.as_deref().is_none_or(|g| g == group))
        .map(|c| judge(c, &methods))
        .collect();
    GroupAnalysis {
        name: group.to_string(),
        methods,
        baseline,
        paper,
        claims,
    }
}

fn analyze_method(results: &StudyResults, trials: &[&TrialRecord], name: &str) -> MethodAnalysis {
    let mine: Vec<&TrialRecord> = trials
        .iter()
        .copied()
        .filter(|t| t.trial.method == name)
        .collect();
    let spec_method = results.spec.method(name);
    let choice = match spec_method {
        Some(m) if m.point_from.is_some() => Choice::From(m.point_from.clone().unwrap_or_default()),
        Some(m) if results.spec.searches(m) => Choice::Searched,
        Some(_) => Choice::Only,
        None if distinct_points(&mine) > 1 => Choice::Searched,
        None => Choice::Only,
    };
    let searched: Vec<&TrialRecord> = mine
        .iter()
        .copied()
        .filter(|t| t.trial.phase == Phase::Search)
        .collect();
    let confirmations: Vec<&TrialRecord> = mine
        .iter()
        .copied()
        .filter(|t| t.trial.phase == Phase::Confirm)
        .collect();
    // The points that were scored: the search's, or the reported runs' for a method that
    // searched nothing.
    let scored = if choice == Choice::Searched || confirmations.is_empty() {
        &searched
    } else {
        &confirmations
    };
    let mut points: Vec<PointAnalysis> = Vec::new();
    for t in scored {
        if !points.iter().any(|p| p.point == t.trial.point) {
            points.push(analyze_point(results, scored, &t.trial.point));
        }
    }
    let chosen = match choice {
        Choice::Searched => {
            let scores: Vec<PointScore> = points.iter().map(|p| p.score.clone()).collect();
            choose(&scores, results.spec.select)
        }
        _ => (!points.is_empty()).then_some(0),
    };
    let selection_seeds = match (&choice, chosen) {
        (Choice::Searched, Some(_)) => seeds_of(&searched),
        _ => Vec::new(),
    };
    // In a study that confirms, a searched point is reported only from its confirmation
    // runs: until they exist, the method has no result.
    let awaiting_confirmation =
        results.spec.confirms() && choice == Choice::Searched && confirmations.is_empty();
    let reported: Vec<&TrialRecord> = if !confirmations.is_empty() {
        confirmations
    } else if awaiting_confirmation {
        Vec::new()
    } else {
        let point = chosen.map(|i| &points[i].point);
        searched
            .into_iter()
            .filter(|t| Some(&t.trial.point) == point)
            .collect()
    };
    let result = (!reported.is_empty())
        .then(|| chosen_result(results, &reported))
        .flatten();
    let count = |state| mine.iter().filter(|t| t.state == state).count();
    let why = if result.is_some() {
        "no baseline"
    } else if choice == Choice::Searched && chosen.is_none() && !points.is_empty() {
        "no eligible point"
    } else if awaiting_confirmation && chosen.is_some() {
        "not yet confirmed"
    } else {
        "no finished run"
    };
    MethodAnalysis {
        name: name.to_string(),
        components: spec_method
            .map(|m| m.components.clone())
            .unwrap_or_default(),
        choice,
        points,
        chosen,
        selection_seeds,
        result,
        trials: mine.len(),
        diverged: count(TrialState::Diverged),
        failed: count(TrialState::Failed),
        verdict: Verdict::NotAvailable(why.into()),
    }
}

fn distinct_points(trials: &[&TrialRecord]) -> usize {
    let mut points: Vec<&BTreeMap<String, serde_json::Value>> = Vec::new();
    for t in trials {
        if !points.contains(&&t.trial.point) {
            points.push(&t.trial.point);
        }
    }
    points.len()
}

/// The distinct seeds of the trials, ascending.
fn seeds_of(trials: &[&TrialRecord]) -> Vec<u64> {
    let seeds: BTreeSet<u64> = trials.iter().map(|t| t.trial.seed).collect();
    seeds.into_iter().collect()
}

/// A done trial's summary, if it is done and has one.
fn done_summary(t: &TrialRecord) -> Option<&crate::train::Summary> {
    (t.state == TrialState::Done)
        .then_some(t.summary.as_ref())
        .flatten()
}

/// The recorded epochs of a trial.
fn epochs_of(results: &StudyResults, id: i64) -> &[EpochMetrics] {
    results.epochs.get(&id).map_or(&[], Vec::as_slice)
}

fn analyze_point(
    results: &StudyResults,
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
    let best: Vec<f64> = done
        .iter()
        .filter_map(|t| done_summary(t)?.best_val_acc)
        .collect();
    PointAnalysis {
        point: point.clone(),
        label: point_label(point),
        trial_ids: at.iter().map(|t| t.id).collect(),
        done_ids: done.iter().map(|t| t.id).collect(),
        score: PointScore::of(&at, |id| epochs_of(results, id)),
        best_val_acc: Estimate::of(&best),
    }
}

/// The epoch record whose weights the trial tested.
fn tested_metrics<'a>(results: &'a StudyResults, t: &TrialRecord) -> Option<&'a EpochMetrics> {
    let summary = done_summary(t)?;
    let epoch = tested_epoch(summary, t.trial.config.patience.is_some())?;
    epochs_of(results, t.id).iter().find(|m| m.epoch == epoch)
}

/// The reported runs' results; `None` when none is done or diverged.
fn chosen_result(results: &StudyResults, reported: &[&TrialRecord]) -> Option<ChosenResult> {
    let done: Vec<&TrialRecord> = reported
        .iter()
        .copied()
        .filter(|t| done_summary(t).is_some())
        .collect();
    let diverged: Vec<&TrialRecord> = reported
        .iter()
        .copied()
        .filter(|t| t.state == TrialState::Diverged)
        .collect();
    if done.is_empty() && diverged.is_empty() {
        return None;
    }
    let classes = classes_of(reported);
    let chance = (classes > 0).then(|| 1.0 / classes as f64);
    let summaries = |f: &dyn Fn(&crate::train::Summary) -> Option<f64>| -> Option<Estimate> {
        let v: Vec<f64> = done
            .iter()
            .filter_map(|t| done_summary(t).and_then(f))
            .collect();
        Estimate::of(&v)
    };
    let tested = |f: &dyn Fn(&EpochMetrics) -> Option<f64>| -> Option<Estimate> {
        let v: Vec<f64> = done
            .iter()
            .filter_map(|t| tested_metrics(results, t).and_then(f))
            .collect();
        Estimate::of(&v)
    };
    let mut test_by_seed: BTreeMap<u64, f64> = done
        .iter()
        .filter_map(|t| Some((t.trial.seed, done_summary(t)?.test_acc?)))
        .filter(|(_, v)| v.is_finite())
        .collect();
    if let Some(chance) = chance {
        for t in &diverged {
            test_by_seed.insert(t.trial.seed, chance);
        }
    }
    let test_values: Vec<f64> = test_by_seed.values().copied().collect();
    let test_acc = Estimate::of(&test_values);
    let train_seconds =
        |s: &crate::train::Summary| (s.mean_train_seconds > 0.0).then_some(s.mean_train_seconds);
    Some(ChosenResult {
        label: point_label(&reported[0].trial.point),
        confirmed: reported.iter().all(|t| t.trial.phase == Phase::Confirm)
            && results.spec.confirms(),
        trial_ids: done.iter().map(|t| t.id).collect(),
        seeds: seeds_of(reported),
        diverged: diverged.len(),
        failed: reported
            .iter()
            .filter(|t| t.state == TrialState::Failed)
            .count(),
        at_chance: test_acc.is_some_and(|e| at_chance(&e, classes)),
        n: test_values.len(),
        test_by_seed,
        test_acc,
        train_acc_running: tested(&|m| Some(m.train_acc)),
        train_acc: tested(&|m| m.train_eval_acc),
        val_acc: tested(&|m| m.val_acc),
        gap: tested(&|m| m.eval_gap_acc),
        gap_running: tested(&|m| m.gap_acc),
        best_val_acc: summaries(&|s| s.best_val_acc),
        train_loss: tested(&|m| Some(m.train_data_loss)),
        val_loss: tested(&|m| m.val_loss),
        zero_fraction: summaries(&|s| Some(s.sparsity.overall.zero_fraction)),
        zero_group_fraction: summaries(&|s| Some(s.sparsity.overall.zero_group_fraction)),
        below_1e3: summaries(&|s| Some(s.sparsity.overall.below_fraction[1])),
        seconds_per_epoch: summaries(&|s| Some(s.mean_epoch_seconds)),
        train_seconds_per_epoch: summaries(&train_seconds),
        overhead_pct: None,
    })
}

/// Fills in overheads and verdicts against the baseline, with Holm's adjustment over the
/// group's tests.
fn add_comparisons(methods: &mut [MethodAnalysis], baseline: Option<usize>) {
    let Some((b, base)) = baseline.and_then(|b| Some((b, methods[b].result.clone()?))) else {
        return;
    };
    let mut tested: Vec<(usize, f64, f64)> = Vec::new();
    for (i, m) in methods.iter_mut().enumerate() {
        if i == b {
            m.verdict = Verdict::Baseline;
            continue;
        }
        let Some(r) = m.result.as_mut() else {
            // The reason it has no result, set when it was analyzed.
            continue;
        };
        r.overhead_pct = overhead(r, &base);
        if r.at_chance {
            m.verdict = Verdict::AtChance;
            continue;
        }
        match paired(&r.test_by_seed, &base.test_by_seed) {
            PairedTest::NotTested { reason, .. } => m.verdict = Verdict::NotAvailable(reason),
            PairedTest::Tested { p, mean_diff, .. } => tested.push((i, p, mean_diff)),
        }
    }
    let raw: Vec<f64> = tested.iter().map(|&(_, p, _)| p).collect();
    for (&(i, p, mean_diff), p_adjusted) in tested.iter().zip(holm(&raw)) {
        methods[i].verdict = if p_adjusted >= ALPHA {
            Verdict::NoDifference {
                p,
                p_adjusted,
                mean_diff,
            }
        } else if mean_diff > 0.0 {
            Verdict::Better {
                p,
                p_adjusted,
                mean_diff,
            }
        } else {
            Verdict::Worse {
                p,
                p_adjusted,
                mean_diff,
            }
        };
    }
}

/// `100 * (s / s_baseline - 1)` on training seconds per epoch (validation and statistics
/// excluded), when both are known and the baseline's is positive.
fn overhead(r: &ChosenResult, base: &ChosenResult) -> Option<f64> {
    let (s, b) = (
        r.train_seconds_per_epoch?.mean,
        base.train_seconds_per_epoch?.mean,
    );
    (b > 0.0).then(|| 100.0 * (s / b - 1.0))
}

/// The paired t-test on test accuracy over the seeds both have.
pub(super) fn paired(method: &BTreeMap<u64, f64>, base: &BTreeMap<u64, f64>) -> PairedTest {
    let seeds: Vec<u64> = method
        .keys()
        .filter(|s| base.contains_key(s))
        .copied()
        .collect();
    let a: Vec<f64> = seeds.iter().map(|s| method[s]).collect();
    let b: Vec<f64> = seeds.iter().map(|s| base[s]).collect();
    paired_t_test(&a, &b)
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
            metric: p.metric,
            paper: p.value,
            ours: methods
                .iter()
                .find(|m| m.name == p.method)
                .and_then(|m| m.result.as_ref())
                .and_then(|r| r.estimate(p.metric)),
            source: p.source.clone(),
        })
        .collect()
}

impl ChosenResult {
    /// Our estimate of `metric` over the reported runs.
    pub fn estimate(&self, metric: Metric) -> Option<Estimate> {
        match metric {
            Metric::TestAcc => self.test_acc,
            Metric::BestValAcc => self.best_val_acc,
            Metric::ValAcc => self.val_acc,
            Metric::TrainAcc => self.train_acc_running,
            Metric::TrainEvalAcc => self.train_acc,
            Metric::GapAcc => self.gap_running,
            Metric::EvalGapAcc => self.gap,
            Metric::ZeroWeights => self.zero_fraction,
            Metric::SmallWeights => self.below_1e3,
            Metric::ZeroGroups => self.zero_group_fraction,
        }
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
