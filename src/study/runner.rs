//! Runs a study's trials: N workers claim trials from the store one at a time, train them
//! with `regstudy train`'s loop, and record each epoch and the outcome.
//!
//! Crash safety comes from four facts. The store hands each trial to one worker at a time
//! and takes back the trials of dead workers. A trial's run folder keeps a checkpoint per
//! epoch, so a reclaimed trial continues from its last finished epoch (to the same result,
//! with the same thread count). A trial is marked finished in one transaction, after its run
//! folder is complete and its epochs are recorded from it, so a kill at any point leaves
//! either a finished trial or one that will be run (or continued) again. And a worker that
//! finds it lost its trial (its heartbeat went stale and another took over) stops at the end
//! of the epoch instead of writing on.

use crate::data::{self, Dataset, DatasetSpec, DownloadObserver, Unobserved};
use crate::nn::spec::InputShape;
use crate::store::StoreIdentity;
use crate::store::{Created, Outcome, StartReason, Store, StoreError, TrainingStart, Worker};
use crate::study::layout::{self, Layout, LayoutChoice, Timing, Workers};
use crate::study::owner::{self, Owner, OwnerError, Standing};
use crate::study::prune::{Judgement, Pruner};
use crate::study::retry::{retry_failed, Retried, RetryError};
use crate::study::spec::{StudySpec, StudySpecError};
use crate::train::{
    self, EpochMetrics, RunFolder, RunOptions, RunOutcome, RunStart, TrainError, TrainObserver,
};
use crate::trial::{Phase, StudyRecord, TrialRecord, TrialState};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// The most workers one process runs.
pub const MAX_WORKERS: usize = 256;

/// How a study is run: workers, threads, and how long a silent worker's trial waits before
/// another takes it over (not part of the study's identity).
#[derive(Clone, Debug)]
pub struct StudyRunOptions {
    /// Trials trained at the same time, or `auto`: the division of the threads that trains
    /// the most images per second, measured at the start ([`super::layout`]). Default: 1.
    pub workers: Workers,
    /// Threads shared among the workers (each gets `threads / workers`, at least 1);
    /// 0 means one per core. Default: 0.
    pub threads: usize,
    /// A running trial whose heartbeat is older than this is taken over; at least three
    /// heartbeats. Default: 120 s.
    pub stale_after: Duration,
    /// How often a worker's trials beat. Default: 5 s.
    pub heartbeat_every: Duration,
    /// A trial claimed this many times without finishing (its worker died each time: out of
    /// memory, killed) is marked failed instead of being tried again. Default: 5.
    pub max_attempts: u32,
    /// Where the data sets are, for every trial (not part of the study's identity).
    /// Default: each trial's `data_dir`.
    pub data_dir: Option<PathBuf>,
    /// Give every failed trial a new attempt before running (`--retry-failed`).
    pub retry_failed: bool,
    /// Where this process writes the trials' run folders, in place of the spec's `runs_dir`
    /// (the same shared storage, mounted elsewhere on this machine): a trial's folder keeps
    /// its path below `runs_dir`. Default: the spec's.
    pub runs_dir: Option<PathBuf>,
    /// Once set (by a signal handler: SIGTERM from a scheduler, Ctrl-C), workers claim no
    /// more trials, finish and record the epoch they are training, and hand their trials
    /// back to the store, whose next claim continues them from that epoch's checkpoint.
    pub stop: Option<&'static AtomicBool>,
}

impl Default for StudyRunOptions {
    fn default() -> Self {
        StudyRunOptions {
            workers: Workers::Count(1),
            threads: 0,
            stale_after: Duration::from_secs(120),
            heartbeat_every: Duration::from_secs(5),
            max_attempts: 5,
            data_dir: None,
            retry_failed: false,
            runs_dir: None,
            stop: None,
        }
    }
}

impl StudyRunOptions {
    /// Rejects settings under which workers would take each other's trials or cannot start.
    fn check(&self) -> Result<(), StudyError> {
        if let Workers::Count(n) = self.workers {
            if n == 0 || n > MAX_WORKERS {
                return Err(StudyError::Invalid(format!(
                    "--workers: expected 1 to {MAX_WORKERS} or `auto`, got {n}"
                )));
            }
        }
        if self.stale_after < 3 * self.heartbeat_every {
            return Err(StudyError::Invalid(format!(
                "--stale-after: expected at least {} s (three heartbeats), got {} s; a live \
                 worker's trial would be taken over",
                (3 * self.heartbeat_every).as_secs(),
                self.stale_after.as_secs()
            )));
        }
        if self.max_attempts == 0 {
            return Err(StudyError::Invalid(
                "--max-attempts: expected at least 1".into(),
            ));
        }
        Ok(())
    }
}

/// Why a study could not run.
#[derive(Debug, thiserror::Error)]
pub enum StudyError {
    #[error(transparent)]
    Spec(#[from] StudySpecError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Retry(#[from] RetryError),
    /// A run folder of the study that another study or store owns.
    #[error("{0}")]
    Folder(#[from] OwnerError),
    /// A runner setting, named as its command-line option.
    #[error("{0}")]
    Invalid(String),
}

/// Told what a study run does. The library does not print: the command line draws the
/// overall bar and prints a line per finished trial from these calls. Calls come from the
/// workers' threads.
pub trait StudyObserver: Sync {
    /// Before the first trial: `finished` of `total` trials are finished already.
    fn study_started(&self, _total: usize, _finished: usize) {}

    /// A trial finished `epoch` of its `epochs` (and it is recorded in the store).
    fn trial_epoch(&self, _trial: &TrialRecord, _epoch: usize, _epochs: usize) {}

    /// A trial's outcome was recorded.
    fn trial_finished(&self, _report: &TrialReport) {}

    /// Something went wrong that the study survives (a heartbeat or an epoch not stored).
    fn warning(&self, _message: &str) {}

    /// Every worker has stopped.
    fn study_finished(&self) {}

    /// `--workers auto` measured the layouts and chose one, before the first trial.
    fn layout_chosen(&self, _choice: &LayoutChoice) {}

    /// Told how the downloads of missing data files go, before any trial starts.
    fn downloads(&self) -> &dyn DownloadObserver {
        &Unobserved
    }
}

/// Watches nothing.
#[derive(Clone, Copy, Debug, Default)]
pub struct SilentStudy;

impl StudyObserver for SilentStudy {}

/// A trial whose outcome was just recorded.
#[derive(Clone, Copy, Debug)]
pub struct TrialReport<'a> {
    /// Trials finished so far, this one included (by any worker of this process, plus
    /// those finished before it started).
    pub finished: usize,
    /// Trials in the study.
    pub total: usize,
    pub trial: &'a TrialRecord,
    pub outcome: &'a Outcome,
    /// Whether the trial is a confirmation run of a study that confirms.
    pub confirmation: bool,
}

impl TrialReport<'_> {
    /// The progress line: `[   3/12] trial 3: GROUP METHOD POINT seed S: test  97.50%  1.20 s/epoch`.
    pub fn line(&self) -> String {
        let t = &self.trial.trial;
        let point: Vec<String> = t.point.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let name = [t.group.as_str(), t.method.as_str(), &point.join(",")]
            .iter()
            .filter(|s| !s.is_empty())
            .cloned()
            .collect::<Vec<_>>()
            .join(" ");
        let outcome = self.outcome;
        let result = match (&outcome.summary, outcome.state) {
            (Some(s), TrialState::Done) => format!(
                "test {:6.2}%  {:6.2} s/epoch",
                100.0 * s.test_acc.unwrap_or(f64::NAN),
                s.mean_epoch_seconds
            ),
            _ => format!(
                "{}: {}",
                outcome.state,
                outcome.message.clone().unwrap_or_default()
            ),
        };
        let phase = if self.confirmation {
            " (confirmation)"
        } else {
            ""
        };
        let retry = match self.trial.retry {
            0 => String::new(),
            k => format!(" (retry {k})"),
        };
        format!(
            "[{:>4}/{}] trial {}{retry}: {name} seed {}{phase}: {result}",
            self.finished, self.total, t.number, t.seed
        )
    }
}

/// What a call to [`run_study`] did.
#[derive(Clone, Debug, PartialEq)]
pub struct StudyRun {
    /// Trials this call finished.
    pub finished_here: usize,
    /// The study's trials by state afterwards.
    pub counts: BTreeMap<TrialState, usize>,
    pub seconds: f64,
    /// What `retry_failed` did before the run.
    pub retried: Retried,
    /// The numbers of the trials whose latest attempt failed, afterwards.
    pub failed: Vec<usize>,
}

/// Runs (or resumes) the study: checks its data sets, creates it in the store if new, then
/// trains every trial left. Several calls on one store, at once or one after another, share
/// the work; none repeats a finished trial.
pub fn run_study(
    spec: &StudySpec,
    spec_text: &str,
    store: &dyn Store,
    config: &StudyRunOptions,
    observer: &dyn StudyObserver,
) -> Result<StudyRun, StudyError> {
    let start = Instant::now();
    config.check()?;
    let cores = crate::engine::ThreadPool::new(config.threads)
        .map_err(|e| StudyError::Invalid(format!("--threads: {e}")))?
        .threads();
    let datasets = load_datasets(spec, config.data_dir.as_deref(), observer.downloads())?;
    create_study(spec, spec_text, store)?;
    let retried = if config.retry_failed {
        retry_failed(store, &spec.name, &[])?
    } else {
        Retried::default()
    };
    let counts = store.counts(&spec.name)?;
    let total = spec.expected_trials().max(counts.values().sum());
    let finished = counts
        .iter()
        .filter(|(state, _)| state.is_finished())
        .map(|(_, n)| n)
        .sum::<usize>();
    let (workers, threads_each) = match config.workers {
        Workers::Count(n) => (n, (cores / n).max(1)),
        Workers::Auto => {
            let layout = auto_layout(spec, store, &datasets, cores, config, observer)?;
            (layout.workers, layout.threads_each)
        }
    };
    observer.study_started(total, finished);
    let context = WorkerContext {
        spec,
        store,
        datasets,
        observer,
        workers,
        threads_each,
        config,
        total,
        identity: store.identity(),
        finished: AtomicUsize::new(finished),
    };
    let finished_here = run_workers(&context);
    observer.study_finished();
    let finished_here = finished_here?;
    let failed = store
        .trials(&spec.name)?
        .iter()
        .filter(|t| t.state == TrialState::Failed)
        .map(|t| t.trial.number)
        .collect();
    Ok(StudyRun {
        finished_here,
        counts: store.counts(&spec.name)?,
        seconds: start.elapsed().as_secs_f64(),
        retried,
        failed,
    })
}

/// `--workers auto`: times every even division of this process's threads on the network of
/// the study's next waiting trial ([`layout::measure`]), tells the observer the choice and
/// writes it to `workers-auto/<process>.json` under the runs folder, where the choices of
/// every machine that works on the study are kept. With no trial waiting, one worker.
fn auto_layout(
    spec: &StudySpec,
    store: &dyn Store,
    datasets: &HashMap<String, Arc<Dataset>>,
    threads: usize,
    config: &StudyRunOptions,
    observer: &dyn StudyObserver,
) -> Result<Layout, StudyError> {
    let trials = store.trials(&spec.name)?;
    let waiting: Vec<&TrialRecord> = trials
        .iter()
        .filter(|t| t.state == TrialState::Waiting)
        .collect();
    let Some(next) = waiting.iter().min_by_key(|t| t.trial.number) else {
        return Ok(Layout {
            workers: 1,
            threads_each: threads,
        });
    };
    let invalid = |e: String| {
        StudyError::Invalid(format!(
            "--workers auto: cannot time trial {}'s network: {e}",
            next.trial.number
        ))
    };
    let checked = next
        .trial
        .config
        .check()
        .map_err(|e| invalid(e.to_string()))?;
    let dataset = datasets
        .get(&checked.dataset().to_string())
        .ok_or_else(|| invalid(format!("its data set {} is not loaded", checked.dataset())))?;
    let input = InputShape {
        channels: dataset.train.channels,
        height: dataset.train.height,
        width: dataset.train.width,
    };
    let network = crate::train::run::network_spec(&checked, input, dataset.classes.len())
        .map_err(|e| invalid(e.to_string()))?;
    let batch = checked.config().batch_size;
    let layouts = layout::candidates(threads, waiting.len());
    let measured =
        layout::measure(&network, batch, &layouts, Timing::default()).map_err(invalid)?;
    let chosen = layout::choose(&measured).ok_or_else(|| invalid("no layout to time".into()))?;
    let choice = LayoutChoice {
        network: network.name.clone(),
        batch,
        measured,
        chosen,
    };
    observer.layout_chosen(&choice);
    if let Err(e) = record_layout(spec, config, &choice) {
        observer.warning(&format!("--workers auto: the choice was not written: {e}"));
    }
    Ok(chosen)
}

/// Writes `choice` to `<runs_dir>/workers-auto/<host>-<pid>-<start>.json`, with the host and
/// the thread count.
fn record_layout(
    spec: &StudySpec,
    config: &StudyRunOptions,
    choice: &LayoutChoice,
) -> std::io::Result<PathBuf> {
    let worker = Worker::of_this_process(0);
    let runs_dir = config.runs_dir.as_ref().unwrap_or(&spec.runs_dir);
    let path = runs_dir
        .join("workers-auto")
        .join(format!("{}.json", worker.process().replace(':', "-")));
    let record = serde_json::json!({
        "study": spec.name,
        "host": worker.host,
        "process": worker.process(),
        "at": unix_now(),
        "version": env!("CARGO_PKG_VERSION"),
        "choice": choice,
    });
    std::fs::create_dir_all(path.parent().unwrap_or(runs_dir))?;
    let text = serde_json::to_string_pretty(&record).map_err(std::io::Error::other)?;
    crate::fsio::write_atomic(&path, text.as_bytes())?;
    Ok(path)
}

/// Creates the study in the store with its first trials (confirmation trials are added once
/// the search has chosen), or, when the store has it with the same spec text, leaves it as it
/// is; a different spec under the same name is refused. Workers on other machines then need
/// only the store and the study's name (`regstudy study work`).
pub fn create_study(
    spec: &StudySpec,
    spec_text: &str,
    store: &dyn Store,
) -> Result<Created, StudyError> {
    let record = StudyRecord {
        name: spec.name.clone(),
        spec: spec_text.to_string(),
        created_at: unix_now(),
        version: env!("CARGO_PKG_VERSION").into(),
    };
    let first = spec.trials();
    check_run_folders(spec, &first, &store.identity())?;
    Ok(store.create_study(&record, &first)?)
}

/// Refuses to start when a run folder of the study's first trials is owned by another
/// store or study, or holds another run without an owner (see [`crate::study::owner`]):
/// the study stops before it is created rather than failing trial after trial. Any attempt
/// of the same trial in this store is its own.
fn check_run_folders(
    spec: &StudySpec,
    trials: &[crate::trial::NewTrial],
    store: &StoreIdentity,
) -> Result<(), OwnerError> {
    for trial in trials {
        let Some(out) = trial.config.out.as_ref().filter(|out| out.exists()) else {
            continue;
        };
        let Ok(checked) = trial.config.check() else {
            continue;
        };
        let owner = Owner {
            store_id: store.id.clone(),
            store: store.location.clone(),
            study: spec.name.clone(),
            trial: trial.number,
            // Any attempt: every attempt's folder of this trial is an earlier one.
            retry: u32::MAX,
        };
        owner::standing(out, &owner, checked.config())?;
    }
    Ok(())
}

/// What the workers of one call share.
struct WorkerContext<'a> {
    spec: &'a StudySpec,
    store: &'a dyn Store,
    datasets: HashMap<String, Arc<Dataset>>,
    observer: &'a dyn StudyObserver,
    /// Trials trained at once, and the threads of each.
    workers: usize,
    threads_each: usize,
    config: &'a StudyRunOptions,
    total: usize,
    /// The store's identity, recorded as the owner of each run folder.
    identity: StoreIdentity,
    /// Trials finished so far, for the progress lines.
    finished: AtomicUsize,
}

impl WorkerContext<'_> {
    /// Whether the workers were told to stop (see [`StudyRunOptions::stop`]).
    fn stopping(&self) -> bool {
        self.config
            .stop
            .is_some_and(|stop| stop.load(Ordering::Relaxed))
    }

    /// The owner record of `trial`'s run folder.
    fn owner_of(&self, trial: &TrialRecord) -> Owner {
        Owner {
            store_id: self.identity.id.clone(),
            store: self.identity.location.clone(),
            study: self.spec.name.clone(),
            trial: trial.trial.number,
            retry: trial.retry,
        }
    }

    /// What the study's pruning rule says about `trial` after `epochs_done` epochs
    /// ([`Pruner::judge`]); a store error is warned about and the trial goes on (pruning
    /// only saves time).
    fn judged(&self, trial: &TrialRecord, epochs_done: usize) -> Judgement {
        let Some(pruner) = Pruner::of(self.spec, self.store) else {
            return Judgement::GoesOn;
        };
        pruner.judge(trial, epochs_done).unwrap_or_else(|e| {
            let number = trial.trial.number;
            self.observer
                .warning(&format!("trial {number}: not judged for pruning: {e}"));
            Judgement::GoesOn
        })
    }

    /// The message of a trial stopped because its run folder is not its own.
    fn stopped_by_folder(&self, trial: &TrialRecord, e: &OwnerError) -> String {
        format!(
            "{e}; then retry the trial with: regstudy study retry {} --trial {} --store {}",
            self.spec.name, trial.trial.number, self.identity.location
        )
    }
}

/// Loads every data set the trials use, once, before any trial starts: a missing or broken
/// one is reported at the line of the spec that names it.
fn load_datasets(
    spec: &StudySpec,
    data_dir: Option<&Path>,
    downloads: &dyn DownloadObserver,
) -> Result<HashMap<String, Arc<Dataset>>, StudySpecError> {
    let mut loaded = HashMap::new();
    for used in spec.datasets() {
        let located = |problem: String| {
            spec.error_at(used.group, used.method, used.point, "dataset", problem)
        };
        let parsed: DatasetSpec = used.dataset.parse().map_err(|e| located(format!("{e}")))?;
        let dir = data_dir.or(used.data_dir.as_deref());
        let dataset =
            data::load_observed(&parsed, dir, downloads).map_err(|e| located(format!("{e}")))?;
        loaded.insert(parsed.to_string(), Arc::new(dataset));
    }
    Ok(loaded)
}

/// Starts the workers and the heartbeat, waits for them; returns the trials they finished.
fn run_workers(context: &WorkerContext) -> Result<usize, StoreError> {
    let ids: Vec<Worker> = (0..context.workers).map(Worker::of_this_process).collect();
    let stop = AtomicBool::new(false);
    let beat = context.config.heartbeat_every;
    std::thread::scope(|scope| {
        let heart = scope.spawn(|| heartbeat(context, &ids, beat, &stop));
        let handles: Vec<_> = ids
            .iter()
            .map(|worker| scope.spawn(|| work(context, worker)))
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
fn heartbeat(context: &WorkerContext, workers: &[Worker], every: Duration, stop: &AtomicBool) {
    let tick = Duration::from_millis(100);
    let mut since = Duration::ZERO;
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(tick);
        since += tick;
        if since >= every {
            since = Duration::ZERO;
            for worker in workers {
                if let Err(e) = context.store.heartbeat(worker) {
                    let message = format!("heartbeat of {}: {e}", worker.name);
                    context.observer.warning(&message);
                }
            }
        }
    }
}

/// One worker: claim, train, record, until no trial is left.
fn work(context: &WorkerContext, worker: &Worker) -> Result<usize, StoreError> {
    let (store, config) = (context.store, context.config);
    let mut finished = 0;
    while let Some(trial) = next_trial(context, worker)? {
        if context.stopping() {
            store.release(trial.id, worker)?;
            break;
        }
        let end = if trial.attempts > config.max_attempts {
            TrialEnd::failed(format!(
                "its worker stopped during each of {} attempts (killed, or out of memory?)",
                config.max_attempts
            ))
        } else {
            run_trial(context, worker, &trial)
        };
        if end.handed_back {
            if let Err(e) = store.release(trial.id, worker) {
                let number = trial.trial.number;
                context
                    .observer
                    .warning(&format!("trial {number}: not handed back: {e}"));
            }
            break;
        }
        if let Some(history) = &end.history {
            sync_epochs(context, &trial, worker, history);
        }
        let outcome = end.outcome;
        match record_outcome(store, trial.id, worker, outcome.clone()) {
            // Another worker took the trial over (this one's heartbeat went stale): its
            // result stands, this one is dropped.
            Err(StoreError::Trial { message, .. }) => {
                context.observer.warning(&format!(
                    "trial {}: result not recorded: {message}",
                    trial.trial.number
                ));
                continue;
            }
            other => other?,
        }
        finished += 1;
        context.observer.trial_finished(&TrialReport {
            finished: context.finished.fetch_add(1, Ordering::Relaxed) + 1,
            total: context.total,
            trial: &trial,
            outcome: &outcome,
            confirmation: trial.trial.phase == Phase::Confirm && context.spec.confirms(),
        });
    }
    Ok(finished)
}

/// The next trial to train, claimed from the store. When none is left to claim, the trials
/// that the finished ones determine (confirmation runs, `point_from` methods) are added and
/// claimed; while other workers' trials run, and could still determine some, waits for them.
fn next_trial(context: &WorkerContext, worker: &Worker) -> Result<Option<TrialRecord>, StoreError> {
    let (store, spec) = (context.store, context.spec);
    // Later trials depend only on finished ones: look again only when more have finished.
    let mut finished_seen = None;
    loop {
        if let Some(trial) = store.claim(&spec.name, worker, context.config.stale_after)? {
            return Ok(Some(trial));
        }
        if !spec.has_later_trials() {
            return Ok(None);
        }
        let counts = store.counts(&spec.name)?;
        let finished: usize = counts
            .iter()
            .filter(|(state, _)| state.is_finished())
            .map(|(_, n)| n)
            .sum();
        if finished_seen != Some(finished) {
            finished_seen = Some(finished);
            if add_later_trials(store, spec)? > 0 {
                continue;
            }
        }
        if counts.get(&TrialState::Running).copied().unwrap_or(0) == 0 || context.stopping() {
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Adds the trials that the study's finished trials determine; returns how many were new.
fn add_later_trials(store: &dyn Store, spec: &StudySpec) -> Result<usize, StoreError> {
    let records = store.trials(&spec.name)?;
    // Only search trials take part in a choice.
    let mut epochs = HashMap::new();
    let searched = |t: &&TrialRecord| t.state == TrialState::Done && t.trial.phase == Phase::Search;
    for t in records.iter().filter(searched) {
        epochs.insert(t.id, store.epochs(t.id)?);
    }
    let later = spec.later_trials(&records, |id| {
        epochs.get(&id).map_or(&[][..], Vec::as_slice)
    });
    store.add_trials(&spec.name, &later)
}

/// Makes the stored epochs those of the run that finished (an earlier attempt may have
/// recorded epochs the last one did not reach).
fn sync_epochs(
    context: &WorkerContext,
    record: &TrialRecord,
    worker: &Worker,
    epochs: &[EpochMetrics],
) {
    let (store, trial) = (context.store, record.id);
    let synced = store.reset_epochs(trial, worker).and_then(|()| {
        epochs
            .iter()
            .try_for_each(|m| store.record_epoch(trial, worker, m))
    });
    if let Err(e) = synced {
        let message = format!("trial {}: {e}", record.trial.number);
        context.observer.warning(&message);
    }
}

/// Records the outcome. A diverged run's summary can hold values the store refuses (norms
/// of non-finite weights); the trial is then recorded without it rather than left running.
fn record_outcome(
    store: &dyn Store,
    trial: i64,
    worker: &Worker,
    outcome: Outcome,
) -> Result<(), StoreError> {
    match store.finish(trial, worker, &outcome) {
        Err(StoreError::Trial { message, .. }) if outcome.state == TrialState::Diverged => {
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

/// How a trial's attempt ended: the outcome to record, and the epochs of the run it
/// finished, which replace those recorded while it trained (`None`: keep those).
struct TrialEnd {
    outcome: Outcome,
    history: Option<Vec<EpochMetrics>>,
    /// The run stopped after an epoch because the worker was told to stop: the trial goes
    /// back to the store rather than ending.
    handed_back: bool,
}

impl TrialEnd {
    fn failed(message: String) -> Self {
        TrialEnd {
            handed_back: false,
            outcome: Outcome {
                state: TrialState::Failed,
                summary: None,
                message: Some(message),
                histogram: None,
            },
            history: None,
        }
    }

    /// A run that went to its end. A diverged run is recorded without a histogram: its
    /// weights are not the tested ones, and may not be finite.
    fn finished(outcome: RunOutcome) -> Self {
        let diverged = matches!(outcome, RunOutcome::Diverged(_));
        let report = outcome.into_report();
        let (state, message, histogram) = if diverged {
            (TrialState::Diverged, Some(report.divergence()), None)
        } else {
            (TrialState::Done, None, Some(report.weights.histogram))
        };
        TrialEnd {
            outcome: Outcome {
                state,
                summary: Some(report.summary),
                message,
                histogram,
            },
            history: Some(report.history),
            handed_back: false,
        }
    }

    /// A trial stopped by the pruning rule; its recorded epochs are kept.
    fn pruned(message: String) -> Self {
        TrialEnd {
            outcome: Outcome {
                state: TrialState::Pruned,
                summary: None,
                message: Some(message),
                histogram: None,
            },
            history: None,
            handed_back: false,
        }
    }

    fn handed_back() -> Self {
        TrialEnd {
            handed_back: true,
            ..TrialEnd::failed(HANDED_BACK.into())
        }
    }
}

/// Why a worker told to stop ends its run after an epoch.
const HANDED_BACK: &str = "the worker was told to stop; the trial is handed back";

/// Trains one trial (continuing its run folder if an earlier attempt left a checkpoint) and
/// says how it ended. Never panics: a panic in training becomes a failed trial.
fn run_trial(context: &WorkerContext, worker: &Worker, trial: &TrialRecord) -> TrialEnd {
    let attempt = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        train_trial(context, worker, trial)
    }));
    attempt.unwrap_or_else(|panic| {
        let what = panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "unknown panic".into());
        TrialEnd::failed(format!("training panicked: {what}"))
    })
}

/// Records in the store where a trial's training begins and each epoch as it finishes
/// (after its checkpoint), and stops the run when the trial was taken over.
struct EpochRecorder<'a> {
    context: &'a WorkerContext<'a>,
    worker: &'a Worker,
    trial: &'a TrialRecord,
    epochs: usize,
    /// Epochs that earlier claims recorded in the store before this one began.
    recorded_before: usize,
    /// Why the training begins where it does, if it begins from epoch 0 after an earlier
    /// claim trained ([`StartReason::First`] when none did).
    restart_reason: Mutex<StartReason>,
    /// Epochs this attempt finished.
    finished: AtomicUsize,
    /// Why the pruning rule stopped the trial, once it did.
    pruned: Mutex<Option<String>>,
}

impl EpochRecorder<'_> {
    /// Where the training of a run starting after `epochs_done` epochs begins, and why.
    fn start(&self, epochs_done: usize) -> TrainingStart {
        if epochs_done > 0 {
            return TrainingStart {
                from_epoch: epochs_done,
                discarded_epochs: 0,
                reason: StartReason::Checkpoint,
            };
        }
        TrainingStart {
            from_epoch: 0,
            discarded_epochs: self.recorded_before,
            reason: *self
                .restart_reason
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        }
    }
}

impl TrainObserver for EpochRecorder<'_> {
    fn run_started(&self, start: &RunStart) {
        let (context, trial) = (self.context, self.trial);
        let begun = self.start(start.epochs_done);
        if let Err(e) = context.store.record_start(trial.id, self.worker, &begun) {
            let number = trial.trial.number;
            context.observer.warning(&format!("trial {number}: {e}"));
        }
    }

    fn epoch_finished(&self, m: &EpochMetrics) -> Result<(), String> {
        self.finished.fetch_add(1, Ordering::Relaxed);
        let (context, trial) = (self.context, self.trial);
        context.observer.trial_epoch(trial, m.epoch, self.epochs);
        match context.store.record_epoch(trial.id, self.worker, m) {
            Err(StoreError::Trial { message, .. }) => return Err(message),
            Err(e) => {
                let message = format!("trial {}: {e}", trial.trial.number);
                context.observer.warning(&message);
            }
            Ok(()) => {}
        }
        if m.epoch < self.epochs {
            let judged = context.judged(trial, m.epoch);
            if let Judgement::Pruned(message) = judged {
                *self.pruned.lock().unwrap_or_else(PoisonError::into_inner) = Some(message.clone());
                return Err(message);
            }
        }
        if context.stopping() && m.epoch < self.epochs {
            return Err(HANDED_BACK.into());
        }
        Ok(())
    }

    fn warning(&self, message: &str) {
        let number = self.trial.trial.number;
        self.context
            .observer
            .warning(&format!("trial {number}: {message}"));
    }
}

fn train_trial(context: &WorkerContext, worker: &Worker, trial: &TrialRecord) -> TrialEnd {
    let mut config = trial.trial.config.clone();
    config.threads = context.threads_each;
    if let (Some(dir), Some(out)) = (&context.config.runs_dir, &config.out) {
        config.out = Some(rebased(out, &context.spec.runs_dir, dir));
    }
    if let Some(dir) = &context.config.data_dir {
        config.data_dir = Some(dir.clone());
    }
    let checked = match config.check() {
        Ok(checked) => checked,
        Err(e) => return TrialEnd::failed(e.to_string()),
    };
    let Some(out) = config.out.clone() else {
        return TrialEnd::failed("the trial has no run folder".into());
    };
    let folder = RunFolder::new(out);
    let owner = context.owner_of(trial);
    let clear = || clear_folder(context.store, trial.id, worker, &folder, &owner);
    let recorded_before = match context.store.epochs(trial.id) {
        Ok(epochs) => epochs.len(),
        Err(e) => return TrialEnd::failed(e.to_string()),
    };
    // A trial whose point was pruned meanwhile, or resumed at a rung it is not in the top
    // of, trains no further.
    if let Judgement::Pruned(message) = context.judged(trial, recorded_before) {
        return TrialEnd::pruned(message);
    }
    // Whether an earlier claim of this attempt trained: a start from epoch 0 is then a
    // restart, and the store records why.
    let trained_before = recorded_before > 0 || trial.attempts > 1;
    let mut restart_reason = StartReason::NoCheckpoint;
    let taken = match owner::standing(folder.path(), &owner, checked.config()) {
        Err(e) => return TrialEnd::failed(context.stopped_by_folder(trial, &e)),
        Ok(Standing::EarlierAttempt) => clear(),
        Ok(Standing::Free | Standing::ThisAttempt) => owner::write(folder.path(), &owner)
            .map_err(|e| e.to_string())
            .and_then(|()| {
                if folder.resumable_with(checked.config()) {
                    Ok(())
                } else {
                    restart_reason = StartReason::FolderNotResumable;
                    clear()
                }
            }),
    };
    if let Err(message) = taken {
        return TrialEnd::failed(message);
    }
    if let Some(end) = finished_run(context, trial, &folder) {
        return end;
    }
    let resume = folder.has_checkpoint();
    if !resume {
        // An earlier claim died before its first checkpoint, or its run folder is on
        // storage this machine does not see: nothing to keep.
        if let Err(message) = clear() {
            return TrialEnd::failed(message);
        }
    }
    let recorder = EpochRecorder {
        context,
        worker,
        trial,
        epochs: config.epochs,
        recorded_before,
        restart_reason: Mutex::new(if trained_before {
            restart_reason
        } else {
            StartReason::First
        }),
        finished: AtomicUsize::new(0),
        pruned: Mutex::new(None),
    };
    let options = RunOptions {
        resume,
        dataset: context
            .datasets
            .get(&checked.dataset().to_string())
            .cloned(),
        observer: &recorder,
        complete_ended: true,
    };
    let result = match train::run(&checked, &options) {
        // The checkpoint could not be read (torn by a kill): start the trial again.
        Err(TrainError::Resume(_) | TrainError::Checkpoint(_))
            if options.resume && recorder.finished.load(Ordering::Relaxed) == 0 =>
        {
            if let Err(message) = clear() {
                return TrialEnd::failed(message);
            }
            *recorder
                .restart_reason
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = StartReason::UnreadableCheckpoint;
            let fresh = RunOptions {
                resume: false,
                ..options
            };
            train::run(&checked, &fresh)
        }
        other => other,
    };
    let pruned = recorder
        .pruned
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .take();
    match result {
        Ok(outcome) => TrialEnd::finished(outcome),
        Err(TrainError::Stopped(_)) if pruned.is_some() => {
            TrialEnd::pruned(pruned.unwrap_or_default())
        }
        Err(TrainError::Stopped(why)) if why == HANDED_BACK => TrialEnd::handed_back(),
        Err(e) => TrialEnd::failed(e.to_string()),
    }
}

/// `out`, a run folder under `runs_dir`, moved under `instead` with the same path below it
/// (a folder outside `runs_dir` keeps its last component).
fn rebased(out: &Path, runs_dir: &Path, instead: &Path) -> PathBuf {
    match out.strip_prefix(runs_dir) {
        Ok(below) => instead.join(below),
        Err(_) => instead.join(out.file_name().unwrap_or(out.as_os_str())),
    }
}

/// Empties a run folder of this trial that cannot be continued, keeping its owner record,
/// and forgets the epochs recorded from it.
fn clear_folder(
    store: &dyn Store,
    trial: i64,
    worker: &Worker,
    folder: &RunFolder,
    owner: &Owner,
) -> Result<(), String> {
    folder.remove().map_err(|e| {
        format!(
            "{}: cannot clear for a fresh start: {e}",
            folder.path().display()
        )
    })?;
    owner::write(folder.path(), owner).map_err(|e| e.to_string())?;
    store.reset_epochs(trial, worker).map_err(|e| e.to_string())
}

/// The end of a run folder whose run finished (the worker died between the end of training
/// and recording it): it is taken as is. `None` when the run did not finish, or diverged
/// (it is trained again).
fn finished_run(
    context: &WorkerContext,
    trial: &TrialRecord,
    folder: &RunFolder,
) -> Option<TrialEnd> {
    let summary = folder.read_summary().ok()?;
    if summary.status == "diverged" || !folder.weights_file().is_file() {
        return None;
    }
    let history = match folder.read_metrics() {
        Ok(history) => Some(history),
        Err(e) => {
            let number = trial.trial.number;
            context.observer.warning(&format!(
                "trial {number}: {e}; the epochs recorded while it trained are kept"
            ));
            None
        }
    };
    Some(TrialEnd {
        outcome: Outcome {
            state: TrialState::Done,
            histogram: folder.read_weight_histogram().ok(),
            summary: Some(summary),
            message: None,
        },
        history,
        handed_back: false,
    })
}

fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rebased_run_folder_keeps_its_path_below_the_runs_folder() {
        let moved = rebased(
            Path::new("runs/s/l1-0001"),
            Path::new("runs/s"),
            Path::new("/mnt/r"),
        );
        assert_eq!(moved, Path::new("/mnt/r/l1-0001"));
        let outside = rebased(
            Path::new("/elsewhere/x"),
            Path::new("runs/s"),
            Path::new("/mnt/r"),
        );
        assert_eq!(outside, Path::new("/mnt/r/x"));
    }

    #[test]
    fn a_stale_limit_under_three_heartbeats_is_refused() {
        let config = StudyRunOptions {
            stale_after: Duration::from_secs(10),
            ..StudyRunOptions::default()
        };
        let err = config.check().unwrap_err().to_string();
        assert!(
            err.starts_with("--stale-after: expected at least 15 s"),
            "{err}"
        );
        let none = StudyRunOptions {
            workers: Workers::Count(0),
            ..StudyRunOptions::default()
        };
        assert!(none.check().is_err());
        assert!(StudyRunOptions::default().check().is_ok());
    }
}
