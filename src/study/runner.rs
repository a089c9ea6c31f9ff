//! Runs a study's trials: N workers claim trials from the store one at a time, train them
//! with `regstudy train`'s loop, and record each epoch and the outcome.
//!
//! Crash safety comes from three facts. The store hands each trial to one worker at a time
//! and takes back the trials of dead workers. A trial's run folder keeps a checkpoint per
//! epoch, so a reclaimed trial continues from its last finished epoch (to the same result,
//! with the same thread count). And a trial is marked finished in one transaction, after its
//! run folder is complete, so a kill at any point leaves either a finished trial or one that
//! will be run (or continued) again.

use crate::checkpoint::read_tensors;
use crate::data::{self, Dataset, DatasetSpec};
use crate::store::{Outcome, Store, StoreError, Worker};
use crate::study::record::{TrialRecord, TrialState, WeightHistogram};
use crate::study::spec::{SpecError, StudySpec};
use crate::train::{self, EpochMetrics, RunOptions, Summary, TrainError};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::collections::{BTreeMap, HashMap};
use std::io::IsTerminal;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How a study is run.
#[derive(Clone, Debug)]
pub struct RunnerConfig {
    /// Trials trained at the same time. Default: 1.
    pub workers: usize,
    /// Threads shared among the workers (each gets `threads / workers`, at least 1);
    /// 0 means one per core. Default: 0.
    pub threads: usize,
    /// A running trial whose heartbeat is older than this is taken over. Default: 120 s.
    pub stale_after: Duration,
    /// How often a worker's trials beat. Default: 5 s.
    pub heartbeat_every: Duration,
    /// Draw an overall bar (on a terminal) and print a line per finished trial.
    pub progress: bool,
}

impl Default for RunnerConfig {
    fn default() -> Self {
        RunnerConfig {
            workers: 1,
            threads: 0,
            stale_after: Duration::from_secs(120),
            heartbeat_every: Duration::from_secs(5),
            progress: true,
        }
    }
}

/// Why a study could not run.
#[derive(Debug, thiserror::Error)]
pub enum StudyError {
    #[error(transparent)]
    Spec(#[from] SpecError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What a call to [`run_study`] did.
#[derive(Clone, Debug, PartialEq)]
pub struct StudyRun {
    /// Trials this call finished.
    pub finished_here: usize,
    /// The study's trials by state afterwards.
    pub counts: BTreeMap<TrialState, usize>,
    pub seconds: f64,
}

/// Runs (or resumes) the study: checks its data sets, creates it in the store if new, then
/// trains every trial left. Several calls on one store, at once or one after another, share
/// the work; none repeats a finished trial.
pub fn run_study(
    spec: &StudySpec,
    spec_text: &str,
    store: &dyn Store,
    config: &RunnerConfig,
) -> Result<StudyRun, StudyError> {
    let start = Instant::now();
    let datasets = load_datasets(spec)?;
    let record = crate::study::record::StudyRecord {
        name: spec.name.clone(),
        spec: spec_text.to_string(),
        created_at: unix_now(),
        version: env!("CARGO_PKG_VERSION").into(),
    };
    store.create_study(&record, &spec.trials())?;
    let workers = config.workers.max(1);
    let cores = crate::engine::ThreadPool::new(config.threads)
        .map(|p| p.threads())
        .unwrap_or(1);
    let threads_each = (cores / workers).max(1);
    let counts = store.counts(&spec.name)?;
    let total: usize = counts.values().sum();
    let finished: usize = counts
        .iter()
        .filter(|(s, _)| s.is_finished())
        .map(|(_, n)| n)
        .sum();
    let bar = overall_bar(config.progress, total, finished);
    let shared = Shared {
        spec,
        store,
        datasets,
        bar: bar.clone(),
        threads_each,
        stale_after: config.stale_after,
        progress: config.progress,
        total,
    };
    let finished_here = run_workers(&shared, workers, config.heartbeat_every)?;
    bar.finish_and_clear();
    Ok(StudyRun {
        finished_here,
        counts: store.counts(&spec.name)?,
        seconds: start.elapsed().as_secs_f64(),
    })
}

/// What the workers of one call share.
struct Shared<'a> {
    spec: &'a StudySpec,
    store: &'a dyn Store,
    datasets: HashMap<String, Arc<Dataset>>,
    bar: ProgressBar,
    threads_each: usize,
    stale_after: Duration,
    progress: bool,
    total: usize,
}

/// Loads every data set the trials use, once, before any trial starts: a missing or broken
/// one is reported at the line of the spec that names it.
fn load_datasets(spec: &StudySpec) -> Result<HashMap<String, Arc<Dataset>>, SpecError> {
    let mut loaded = HashMap::new();
    for (name, data_dir, g, m) in spec.datasets() {
        let located = |problem: String| spec.error_at(g, m, 0, "dataset", problem);
        let parsed: DatasetSpec = name.parse().map_err(|e| located(format!("{e}")))?;
        let dataset =
            data::load(&parsed, data_dir.as_deref()).map_err(|e| located(format!("{e}")))?;
        loaded.insert(parsed.to_string(), Arc::new(dataset));
    }
    Ok(loaded)
}

/// Starts the workers and the heartbeat, waits for them; returns the trials they finished.
fn run_workers(shared: &Shared, workers: usize, beat: Duration) -> Result<usize, StoreError> {
    let ids: Vec<Worker> = (0..workers).map(Worker::of_this_process).collect();
    let stop = AtomicBool::new(false);
    std::thread::scope(|scope| {
        let heart = scope.spawn(|| heartbeat(shared.store, &ids, beat, &stop));
        let handles: Vec<_> = ids
            .iter()
            .map(|worker| scope.spawn(|| work(shared, worker)))
            .collect();
        // A panic while training is caught and recorded as a failed trial; a worker that
        // panics elsewhere has printed why, and its trial is taken over after a restart.
        let results: Vec<Result<usize, StoreError>> = handles
            .into_iter()
            .map(|h| h.join().unwrap_or(Ok(0)))
            .collect();
        stop.store(true, Ordering::Relaxed);
        let _ = heart.join();
        results.into_iter().sum()
    })
}

/// Refreshes the workers' heartbeats until `stop`.
fn heartbeat(store: &dyn Store, workers: &[Worker], every: Duration, stop: &AtomicBool) {
    let tick = Duration::from_millis(100);
    let mut since = Duration::ZERO;
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(tick);
        since += tick;
        if since >= every {
            since = Duration::ZERO;
            for worker in workers {
                if let Err(e) = store.heartbeat(worker) {
                    eprintln!("warning: heartbeat of {}: {e}", worker.name);
                }
            }
        }
    }
}

/// One worker: claim, train, record, until no trial is left.
fn work(shared: &Shared, worker: &Worker) -> Result<usize, StoreError> {
    let mut finished = 0;
    while let Some(trial) = shared
        .store
        .claim(&shared.spec.name, worker, shared.stale_after)?
    {
        let outcome = run_trial(shared, worker, &trial);
        match finish(shared.store, trial.id, worker, outcome.clone()) {
            // Another worker took the trial over (this one's heartbeat went stale): its
            // result stands, this one is dropped.
            Err(StoreError::Trial { message, .. }) => {
                eprintln!(
                    "warning: trial {}: result not recorded: {message}",
                    trial.trial.number
                );
                continue;
            }
            other => other?,
        }
        finished += 1;
        shared.bar.inc(1);
        report_line(shared, &trial, &outcome);
    }
    Ok(finished)
}

/// Records the outcome. A diverged run's summary can hold values the store refuses (norms
/// of non-finite weights); the trial is then recorded without it rather than left running.
fn finish(
    store: &dyn Store,
    trial: i64,
    worker: &Worker,
    outcome: Outcome,
) -> Result<(), StoreError> {
    match store.finish(trial, worker, &outcome) {
        Err(StoreError::Trial { message, .. }) if outcome.summary.is_some() => {
            let message = format!(
                "{} (summary not stored: {message})",
                outcome.message.unwrap_or_default()
            );
            let bare = Outcome {
                summary: None,
                histogram: None,
                message: Some(message),
                ..outcome
            };
            store.finish(trial, worker, &bare)
        }
        other => other,
    }
}

/// Trains one trial (continuing its run folder if an earlier attempt left a checkpoint) and
/// says how it ended. Never panics: a panic in training becomes a failed trial.
fn run_trial(shared: &Shared, worker: &Worker, trial: &TrialRecord) -> Outcome {
    let attempt = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        train_trial(shared, worker, trial)
    }));
    attempt.unwrap_or_else(|panic| {
        let what = panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "unknown panic".into());
        failed(format!("training panicked: {what}"))
    })
}

fn failed(message: String) -> Outcome {
    Outcome {
        state: TrialState::Failed,
        summary: None,
        message: Some(message),
        histogram: None,
    }
}

fn train_trial(shared: &Shared, worker: &Worker, trial: &TrialRecord) -> Outcome {
    let mut config = trial.trial.config.clone();
    config.threads = shared.threads_each;
    let Some(out) = config.out.clone() else {
        return failed("the trial has no run folder".into());
    };
    if let Some(outcome) = adopt_finished_run(shared, worker, trial.id, &out) {
        return outcome;
    }
    let checked = match config.check() {
        Ok(checked) => checked,
        Err(e) => return failed(e.to_string()),
    };
    let resume = out.join("checkpoint").is_dir();
    if !resume && out.exists() {
        // An earlier attempt died before its first checkpoint: nothing to keep.
        if let Err(e) = std::fs::remove_dir_all(&out) {
            return failed(format!(
                "{}: cannot clear for a fresh start: {e}",
                out.display()
            ));
        }
    }
    let epochs = config.epochs;
    let record_epoch = |m: &EpochMetrics| {
        if let Err(e) = shared.store.record_epoch(trial.id, worker, m) {
            eprintln!("warning: {e}");
        }
        shared.bar.set_message(format!(
            "trial {}: epoch {}/{epochs}",
            trial.trial.number + 1,
            m.epoch
        ));
    };
    let options = RunOptions {
        resume,
        progress: false,
        dataset: shared.datasets.get(&checked.dataset.to_string()).cloned(),
        on_epoch: Some(&record_epoch),
    };
    let result = match train::run(&checked, &options) {
        Err(TrainError::Resume(_) | TrainError::Checkpoint(_)) if resume => {
            // The checkpoint cannot be continued (the run had ended, or the kill tore it):
            // start the trial again from scratch.
            if let Err(e) = std::fs::remove_dir_all(&out) {
                return failed(format!(
                    "{}: cannot clear for a fresh start: {e}",
                    out.display()
                ));
            }
            let fresh = RunOptions {
                resume: false,
                ..options
            };
            train::run(&checked, &fresh)
        }
        other => other,
    };
    outcome_of(result, &out)
}

/// A trial whose run folder already holds a finished run (the worker died between the end
/// of training and recording it): its summary is taken as is, its epochs recorded again.
fn adopt_finished_run(shared: &Shared, worker: &Worker, trial: i64, out: &Path) -> Option<Outcome> {
    let summary: Summary =
        serde_json::from_slice(&std::fs::read(out.join("summary.json")).ok()?).ok()?;
    if summary.status == "diverged" || !out.join("weights.safetensors").is_file() {
        return None;
    }
    let text = std::fs::read_to_string(out.join("metrics.jsonl")).ok()?;
    for line in text.lines() {
        let metrics: EpochMetrics = serde_json::from_str(line).ok()?;
        shared.store.record_epoch(trial, worker, &metrics).ok()?;
    }
    Some(done(summary, out))
}

fn done(summary: Summary, out: &Path) -> Outcome {
    Outcome {
        state: TrialState::Done,
        histogram: kernel_histogram(&out.join("weights.safetensors")),
        summary: Some(summary),
        message: None,
    }
}

/// The outcome of a finished `train::run`.
fn outcome_of(result: Result<Summary, TrainError>, out: &Path) -> Outcome {
    match result {
        Ok(summary) => done(summary, out),
        Err(TrainError::Diverged(message)) => Outcome {
            state: TrialState::Diverged,
            summary: std::fs::read(out.join("summary.json"))
                .ok()
                .and_then(|bytes| serde_json::from_slice(&bytes).ok()),
            message: Some(message),
            histogram: None,
        },
        Err(e) => failed(e.to_string()),
    }
}

/// Magnitudes of the kernels (tensors of rank 2 and more: convolution and linear weights)
/// in a weights file.
fn kernel_histogram(weights: &Path) -> Option<WeightHistogram> {
    let (tensors, _) = read_tensors(weights).ok()?;
    let kernels = tensors
        .values()
        .filter(|(shape, _)| shape.len() >= 2)
        .map(|(_, values)| values.as_slice());
    Some(WeightHistogram::of(kernels))
}

/// The line printed when a trial finishes.
fn report_line(shared: &Shared, trial: &TrialRecord, outcome: &Outcome) {
    if !shared.progress {
        return;
    }
    let t = &trial.trial;
    let point: Vec<String> = t.point.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let name = [t.group.as_str(), t.method.as_str(), &point.join(",")]
        .iter()
        .filter(|s| !s.is_empty())
        .cloned()
        .collect::<Vec<_>>()
        .join(" ");
    let result = match (&outcome.summary, outcome.state) {
        (Some(s), TrialState::Done) => format!(
            "test {:6.2}%  best val {:6.2}%  {:6.2} s/epoch",
            100.0 * s.test_acc.unwrap_or(f64::NAN),
            100.0 * s.best_val_acc.unwrap_or(f64::NAN),
            s.mean_epoch_seconds
        ),
        _ => format!(
            "{}: {}",
            outcome.state,
            outcome.message.clone().unwrap_or_default()
        ),
    };
    let line = format!(
        "[{:>4}/{}] {name} seed {}: {result}",
        t.number + 1,
        shared.total,
        t.seed
    );
    if shared.bar.is_hidden() {
        println!("{line}");
    } else {
        shared.bar.println(line);
    }
}

/// The overall bar: finished trials out of all.
fn overall_bar(show: bool, total: usize, finished: usize) -> ProgressBar {
    if !show || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(total as u64), ProgressDrawTarget::stderr());
    let style = ProgressStyle::with_template(
        "study [{bar:30}] {pos}/{len} trials {msg} ({elapsed}, eta {eta})",
    )
    .expect("valid template")
    .progress_chars("=> ");
    bar.set_style(style);
    bar.set_position(finished as u64);
    bar
}

fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}
