//! What a study's training cost, from its records: epochs, epoch time, core-seconds, the wall
//! time of the finished trials' last attempts, and what the pruning rule saved.

use super::StudyResults;
use crate::trial::{TrialRecord, TrialState};
use std::collections::BTreeMap;

/// The cost of a study's training, from the epochs on record.
#[derive(Clone, Debug, PartialEq)]
pub struct Cost {
    /// Epochs on record over every trial. An epoch trained again after a restart from
    /// epoch 0 replaced its first record and counts once.
    pub epochs: usize,
    /// Sum of the recorded epochs' wall times: training, validation and the
    /// evaluation-mode pass (not data loading, checkpoints or the test pass).
    pub epoch_seconds: f64,
    /// Sum of `seconds * threads` over the epochs whose threads are on record.
    pub core_seconds: f64,
    /// Epochs recorded without their threads (by versions before the field), left out of
    /// `core_seconds`.
    pub epochs_without_threads: usize,
    /// The union of the finished trials' last attempts, each from its claim to its end. Time
    /// when nothing ran (a study resumed the next day) is not counted, nor the part of a
    /// trial trained before it was taken over: a lower bound of the wall time spent.
    pub busy_seconds: f64,
    /// The thread counts that trained the recorded epochs (those on record).
    pub thread_counts: std::collections::BTreeSet<usize>,
    /// Estimated core-seconds of the epochs the pruned trials did not train, each at the
    /// mean core-seconds per epoch of its method in its group (of its group when the method
    /// has no epoch on record); `None` when the study prunes nothing.
    pub saved_core_seconds: Option<f64>,
    /// Whether some trial stops early (has a patience), so that a pruned trial might have
    /// ended before its last epoch: `saved_core_seconds` is then an upper bound.
    pub saved_is_upper_bound: bool,
}

impl Cost {
    pub fn of(results: &StudyResults) -> Cost {
        let (mut epochs, mut epoch_seconds, mut core_seconds, mut without) = (0, 0.0, 0.0, 0);
        let mut thread_counts = std::collections::BTreeSet::new();
        for record in results.epochs.values().flatten() {
            epochs += 1;
            epoch_seconds += record.seconds;
            match record.threads {
                Some(threads) => {
                    core_seconds += record.seconds * threads as f64;
                    thread_counts.insert(threads);
                }
                None => without += 1,
            }
        }
        Cost {
            epochs,
            epoch_seconds,
            core_seconds,
            epochs_without_threads: without,
            thread_counts,
            busy_seconds: busy_seconds(&results.trials),
            saved_core_seconds: results.spec.prune.map(|_| saved_core_seconds(results)),
            saved_is_upper_bound: results.trials_may_stop_early(),
        }
    }

    /// The share of the unpruned cost that pruning saved, `saved / (spent + saved)` in
    /// core-seconds; `None` without pruning or without any cost on record.
    pub fn saved_share(&self) -> Option<f64> {
        let saved = self.saved_core_seconds?;
        let whole = self.core_seconds + saved;
        (whole > 0.0).then(|| saved / whole)
    }
}

/// The spans `[started_at, finished_at]` of the finished trials' last attempts, by start.
pub(super) fn last_attempt_spans(trials: &[TrialRecord]) -> Vec<(f64, f64)> {
    let mut spans: Vec<(f64, f64)> = trials
        .iter()
        .filter_map(|t| Some((t.started_at?, t.finished_at?)))
        .collect();
    spans.sort_by(|a, b| a.0.total_cmp(&b.0));
    spans
}

/// The length of the union of the finished trials' last-attempt spans.
fn busy_seconds(trials: &[TrialRecord]) -> f64 {
    let mut total = 0.0;
    let mut current: Option<(f64, f64)> = None;
    for (start, end) in last_attempt_spans(trials) {
        if end <= start {
            continue;
        }
        current = match current {
            Some((s, e)) if start <= e => Some((s, e.max(end))),
            Some((s, e)) => {
                total += e - s;
                Some((start, end))
            }
            None => Some((start, end)),
        };
    }
    total + current.map_or(0.0, |(s, e)| e - s)
}

/// Core-seconds per recorded epoch (with its threads), by (group, method) and by group.
struct Rates {
    by_method: BTreeMap<(String, String), (f64, usize)>,
    by_group: BTreeMap<String, (f64, usize)>,
}

impl Rates {
    fn of(results: &StudyResults) -> Rates {
        let mut rates = Rates {
            by_method: BTreeMap::new(),
            by_group: BTreeMap::new(),
        };
        for t in &results.trials {
            let Some(records) = results.epochs.get(&t.id) else {
                continue;
            };
            let (mut sum, mut n) = (0.0, 0);
            for r in records {
                if let Some(threads) = r.threads {
                    sum += r.seconds * threads as f64;
                    n += 1;
                }
            }
            if n == 0 {
                continue;
            }
            let key = (t.trial.group.clone(), t.trial.method.clone());
            add(rates.by_method.entry(key).or_default(), sum, n);
            add(
                rates.by_group.entry(t.trial.group.clone()).or_default(),
                sum,
                n,
            );
        }
        rates
    }

    /// Mean core-seconds per epoch for a trial of `group` and `method`.
    fn per_epoch(&self, group: &str, method: &str) -> Option<f64> {
        let key = (group.to_string(), method.to_string());
        self.by_method
            .get(&key)
            .or_else(|| self.by_group.get(group))
            .map(|&(sum, n)| sum / n as f64)
    }
}

/// Adds `epochs` epochs that cost `core_seconds` in all to a running `(sum, count)`.
fn add(entry: &mut (f64, usize), core_seconds: f64, epochs: usize) {
    entry.0 += core_seconds;
    entry.1 += epochs;
}

/// Each pruned trial's untrained epochs (up to its last) at its method's mean core-seconds
/// per epoch; 0 (not -0, the identity of `Sum`) when nothing was pruned.
fn saved_core_seconds(results: &StudyResults) -> f64 {
    let rates = Rates::of(results);
    results
        .trials
        .iter()
        .filter(|t| t.state == TrialState::Pruned)
        .filter_map(|t| {
            let left = results.untrained_epochs(t);
            Some(left as f64 * rates.per_epoch(&t.trial.group, &t.trial.method)?)
        })
        .fold(0.0, |sum, seconds| sum + seconds)
}

/// A duration in words: seconds under two minutes, minutes under two hours, else hours.
pub fn duration_text(seconds: f64) -> String {
    if seconds < 120.0 {
        format!("{seconds:.0} s")
    } else if seconds < 7200.0 {
        format!("{:.0} min", seconds / 60.0)
    } else {
        format!("{:.1} h", seconds / 3600.0)
    }
}

/// The cost in one sentence, for the report.
pub fn cost_sentence(cost: &Cost) -> String {
    let mut text = format!(
        "Training cost: {} epochs on record, {} of epoch time, {:.2} core-hours (each \
         epoch's seconds times its threads), in {} of wall time (the finished trials' last \
         attempts, each from its claim to its end, overlaps counted once; training before a \
         takeover is not in it).",
        cost.epochs,
        duration_text(cost.epoch_seconds),
        cost.core_seconds / 3600.0,
        duration_text(cost.busy_seconds)
    );
    match cost.epochs_without_threads {
        0 => {}
        1 => {
            text.push_str(" 1 epoch was recorded without its threads and is not in the core-hours.")
        }
        n => text.push_str(&format!(
            " {n} epochs were recorded without their threads and are not in the core-hours."
        )),
    }
    if let (Some(saved), Some(share)) = (cost.saved_core_seconds, cost.saved_share()) {
        let (about, bound) = if cost.saved_is_upper_bound {
            (
                "at most about",
                " Each pruned trial is counted to its last epoch, which early stopping might \
                 not have let it reach.",
            )
        } else {
            ("about", "")
        };
        text.push_str(&format!(
            " The epochs that pruning left untrained would have cost {about} {:.2} \
             core-hours more (each at its method's mean per epoch): {:.1}% of the study's \
             cost without pruning.{bound}",
            saved / 3600.0,
            100.0 * share
        ));
    }
    text
}

/// A warning when the epochs were trained on different numbers of threads, whose times per
/// epoch do not compare; `None` when they were all trained on one.
pub fn thread_counts_sentence(cost: &Cost) -> Option<String> {
    if cost.thread_counts.len() < 2 {
        return None;
    }
    let counts: Vec<String> = cost.thread_counts.iter().map(usize::to_string).collect();
    Some(format!(
        "The epochs were trained on different numbers of threads ({}): a time per epoch \
         compares only with times on the same number of threads and the same machine.",
        counts.join(", ")
    ))
}
