//! `regstudy study run|create|work|status|retry`: run a study's trials from a spec (on one
//! machine, or created once and worked on by many), and see where it stands.

use super::progress::StudyConsole;
use super::CommandResult;
use clap::{Args, Subcommand};
use regstudy::store::{self, Created, Store};
use regstudy::study::layout::Workers;
use regstudy::study::name::StudyName;
use regstudy::study::retry::{numbers_text, retry_failed, Retried};
use regstudy::study::runner::{create_study, run_study, StudyRunOptions};
use regstudy::study::spec::StudySpec;
use regstudy::trial::TrialState;
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Subcommand)]
pub enum StudyCommand {
    /// Run the trials of a study spec (TOML); rerun the same command to resume after a crash.
    /// The same as `study create` followed by `study work` on this machine.
    Run(RunArgs),
    /// Store a study and its trials without running any, before workers are started on
    /// other machines; a second create of the same spec changes nothing.
    Create(CreateArgs),
    /// Claim, train and record trials of a stored study until none is left; any number of
    /// workers, on any machines that reach the store, share the study.
    Work(WorkArgs),
    /// Copy a study with every attempt, epoch and claim into another store (start on a
    /// laptop with SQLite, continue on a cluster with PostgreSQL).
    Copy(CopyArgs),
    /// Start a stored study's workers through a cluster's scheduler.
    #[command(subcommand)]
    Launch(super::launch::LaunchCommand),
    /// Count each study's trials by state, and list the running and failed ones.
    Status(StatusArgs),
    /// Give failed trials a new attempt, trained at the next `study run` of the study's spec;
    /// the failed attempts stay in the store.
    Retry(RetryArgs),
}

/// Where the studies are kept.
#[derive(Debug, Args)]
pub struct StoreArgs {
    /// The study store: a SQLite file (created if absent), sqlite://PATH, or a PostgreSQL
    /// database, postgres://USER[:PASSWORD]@HOST[:PORT]/DB[?sslmode=MODE&sslrootcert=PATH]
    /// (the password also from $PGPASSWORD), which workers on many machines can share.
    #[arg(
        long,
        value_name = "STORE",
        env = "REGSTUDY_STORE",
        default_value = "regstudy.db"
    )]
    pub store: String,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The study spec file.
    spec: PathBuf,
    #[command(flatten)]
    store: StoreArgs,
    #[command(flatten)]
    workers: WorkerArgs,
    /// First give every failed trial of the study a new attempt (the failed attempts stay
    /// in the store), then run.
    #[arg(long)]
    retry_failed: bool,
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// The study spec file.
    spec: PathBuf,
    #[command(flatten)]
    store: StoreArgs,
}

#[derive(Debug, Args)]
pub struct CopyArgs {
    /// The study.
    #[arg(value_name = "NAME")]
    study: StudyName,
    /// The store to copy from (a SQLite file, sqlite://PATH or postgres://...).
    #[arg(long, value_name = "STORE")]
    from: String,
    /// The store to copy into, which must not have a study of that name.
    #[arg(long, value_name = "STORE")]
    to: String,
}

#[derive(Debug, Args)]
pub struct WorkArgs {
    /// The study, as `study create` stored it.
    #[arg(value_name = "NAME")]
    study: StudyName,
    #[command(flatten)]
    store: StoreArgs,
    #[command(flatten)]
    workers: WorkerArgs,
}

#[derive(Debug, Args)]
pub struct RetryArgs {
    /// The study.
    #[arg(value_name = "NAME")]
    study: StudyName,
    /// Only this trial (its number, as `study status` shows it); repeat for several.
    /// Default: every failed trial.
    #[arg(long = "trial", value_name = "N")]
    trials: Vec<usize>,
    #[command(flatten)]
    store: StoreArgs,
}

/// How many trials run at once, and on how many threads.
#[derive(Debug, Args)]
pub struct WorkerArgs {
    /// Trials trained at the same time in this process; the threads are divided among them.
    /// `auto` times every even division of the threads on the study's next network for a
    /// few seconds and takes the one that trains the most images per second (printed, and
    /// written under the runs folder in workers-auto/).
    #[arg(long, value_name = "N|auto", default_value_t = StudyRunOptions::default().workers)]
    pub workers: Workers,
    /// Threads in all (0: one per core).
    #[arg(long, default_value_t = StudyRunOptions::default().threads)]
    pub threads: usize,
    /// Seconds without a heartbeat after which another worker takes a running trial over
    /// (a trial of a process that is gone from this machine is taken over at once).
    #[arg(long, default_value_t = StudyRunOptions::default().stale_after.as_secs(), value_name = "SECS")]
    pub stale_after: u64,
    /// A trial claimed this many times without finishing (its worker died each time) is
    /// marked failed.
    #[arg(long, default_value_t = StudyRunOptions::default().max_attempts, value_name = "N")]
    pub max_attempts: u32,
    /// Folder holding the data sets, for every trial (overrides the spec's data_dir)
    /// [default: the spec's, else $REGSTUDY_DATA, else the user's cache folder].
    #[arg(long, value_name = "DIR", env = super::DATA_ENV)]
    pub data_dir: Option<PathBuf>,
    /// Folder for the trials' run folders in place of the spec's runs_dir: the same shared
    /// storage, wherever it is mounted on this machine [default: the spec's].
    #[arg(long, value_name = "DIR")]
    pub runs_dir: Option<PathBuf>,
    /// No progress bar or per-trial lines.
    #[arg(long)]
    pub quiet: bool,
}

impl WorkerArgs {
    pub fn run_options(&self) -> StudyRunOptions {
        StudyRunOptions {
            workers: self.workers,
            threads: self.threads,
            stale_after: Duration::from_secs(self.stale_after),
            max_attempts: self.max_attempts,
            data_dir: self.data_dir.clone(),
            runs_dir: self.runs_dir.clone(),
            ..StudyRunOptions::default()
        }
    }

    /// The bar and the per-trial lines, unless `--quiet`.
    pub fn console(&self) -> StudyConsole {
        StudyConsole::new(!self.quiet)
    }
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Only this study [default: every study in the store].
    #[arg(value_name = "NAME")]
    study: Option<StudyName>,
    #[command(flatten)]
    store: StoreArgs,
}

impl StudyCommand {
    /// The command's `--data-dir`, for those that have one.
    pub fn data_dir_mut(&mut self) -> Option<&mut Option<PathBuf>> {
        match self {
            StudyCommand::Run(args) => Some(&mut args.workers.data_dir),
            StudyCommand::Work(args) => Some(&mut args.workers.data_dir),
            StudyCommand::Create(_)
            | StudyCommand::Copy(_)
            | StudyCommand::Launch(_)
            | StudyCommand::Status(_)
            | StudyCommand::Retry(_) => None,
        }
    }
}

pub fn run(command: StudyCommand) -> CommandResult {
    match command {
        StudyCommand::Run(args) => run_spec(args),
        StudyCommand::Create(args) => create(args),
        StudyCommand::Work(args) => work(args),
        StudyCommand::Copy(args) => copy(args),
        StudyCommand::Launch(command) => super::launch::run(command),
        StudyCommand::Status(args) => status(args),
        StudyCommand::Retry(args) => retry(args),
    }
}

fn run_spec(args: RunArgs) -> CommandResult {
    let text = std::fs::read_to_string(&args.spec)
        .map_err(|e| format!("{}: cannot read the spec: {e}", args.spec.display()))?;
    let spec = StudySpec::parse(&text, &args.spec)?;
    let store = store::open(&args.store.store)?;
    let options = StudyRunOptions {
        retry_failed: args.retry_failed,
        stop: Some(super::signals::stop_on_signals()),
        ..args.workers.run_options()
    };
    let console = args.workers.console();
    let done = run_study(&spec, &text, store.as_ref(), &options, &console)?;
    print_retried(&spec.name, &done.retried);
    print_run_end(&spec.name, &store.identity().location, &done);
    stopped_by_signal(&spec.name)?;
    match failed_trials_error(
        &spec.name,
        &args.spec,
        &store.identity().location,
        &done.failed,
    ) {
        Some(message) => Err(message.into()),
        None => Ok(()),
    }
}

fn create(args: CreateArgs) -> CommandResult {
    let text = std::fs::read_to_string(&args.spec)
        .map_err(|e| format!("{}: cannot read the spec: {e}", args.spec.display()))?;
    let spec = StudySpec::parse(&text, &args.spec)?;
    let store = store::open(&args.store.store)?;
    let created = create_study(&spec, &text, store.as_ref())?;
    let name = &spec.name;
    let location = store.identity().location;
    match created {
        Created::New => println!(
            "study {name}: created in {location} with {} trials",
            store.counts(name)?.values().sum::<usize>()
        ),
        Created::Existing => println!("study {name}: already in {location}, unchanged"),
    }
    println!("work on it, on any machine that reaches the store: regstudy study work {name} --store STORE");
    Ok(())
}

fn copy(args: CopyArgs) -> CommandResult {
    let from = store::open_existing(&args.from)?;
    let to = store::open(&args.to)?;
    let name = args.study.as_str();
    let copy = store::copy_study(from.as_ref(), to.as_ref(), name)?;
    let epochs: usize = copy.attempts.iter().map(|(_, e)| e.len()).sum();
    println!(
        "study {name}: copied {} attempts, {epochs} epochs and {} claims from {} to {}",
        copy.attempts.len(),
        copy.claims.len(),
        from.identity().location,
        to.identity().location
    );
    Ok(())
}

fn work(args: WorkArgs) -> CommandResult {
    let store = store::open_existing_writable(&args.store.store)?;
    let name = args.study.as_str();
    let record = store.study(name)?;
    let origin = PathBuf::from(format!("study {name} in {}", store.identity().location));
    let spec = StudySpec::parse(&record.spec, &origin)?;
    let console = args.workers.console();
    let options = StudyRunOptions {
        stop: Some(super::signals::stop_on_signals()),
        ..args.workers.run_options()
    };
    let done = run_study(&spec, &record.spec, store.as_ref(), &options, &console)?;
    print_run_end(name, &store.identity().location, &done);
    stopped_by_signal(name)?;
    if done.failed.is_empty() {
        return Ok(());
    }
    Err(format!(
        "study {name}: {} failed (see why with `regstudy study status {name} --store STORE`); \
         once the cause is fixed, `regstudy study retry {name} --store STORE` and work again",
        trials_text(&done.failed)
    )
    .into())
}

/// The error of a run whose workers a signal stopped: they handed their trials back.
pub(super) fn stopped_by_signal(study: &str) -> CommandResult {
    match super::signals::received() {
        Some(signal) => Err(format!(
            "study {study}: stopped by signal {signal}; the running trials were handed back \
             and continue from their last epoch at the next `study work` or `study run`"
        )
        .into()),
        None => Ok(()),
    }
}

/// The error a study run ends with when trials failed: which ones, where to see why, and how
/// to retry them; `None` when none failed.
pub fn failed_trials_error(
    study: &str,
    spec: &std::path::Path,
    store: &str,
    failed: &[usize],
) -> Option<String> {
    if failed.is_empty() {
        return None;
    }
    Some(format!(
        "study {study}: {} failed (see why with `regstudy study status {study} --store \
         {store}`); once the cause is fixed, retry with `regstudy study run {} --store {store} \
         --retry-failed`, or one trial with `regstudy study retry {study} --trial N --store \
         {store}`",
        trials_text(failed),
        spec.display(),
    ))
}

/// `trial 3` or `2 trials (3, 5)`.
fn trials_text(numbers: &[usize]) -> String {
    match numbers {
        [one] => format!("trial {one}"),
        more => format!("{} trials ({})", more.len(), numbers_text(more)),
    }
}

/// What `--retry-failed` did.
fn print_retried(study: &str, retried: &Retried) {
    if !retried.numbers.is_empty() {
        println!(
            "study {study}: {} get a new attempt",
            trials_text(&retried.numbers)
        );
    }
    for why in &retried.kept {
        eprintln!("warning: {why}");
    }
}

fn retry(args: RetryArgs) -> CommandResult {
    let store = store::open_existing_writable(&args.store.store)?;
    let study = args.study.as_str();
    let retried = retry_failed(store.as_ref(), study, &args.trials)?;
    if retried.numbers.is_empty() {
        println!("study {study}: no failed trial to retry");
    } else {
        println!(
            "study {study}: {} will run again at the next `regstudy study run` of its spec \
             with --store {} (the failed attempts stay in the store)",
            trials_text(&retried.numbers),
            store.identity().location
        );
    }
    for why in &retried.kept {
        eprintln!("warning: {why}");
    }
    Ok(())
}

/// The closing lines of a study run: counts, time, and what to do next.
pub fn print_run_end(study: &str, store: &str, done: &regstudy::study::runner::StudyRun) {
    println!(
        "study {study}: {} trials finished in {:.0} s by this run; {}",
        done.finished_here,
        done.seconds,
        counts_text(&done.counts)
    );
    println!("report: regstudy report {study} --store {store} --out reports/{study}");
}

fn counts_text(counts: &std::collections::BTreeMap<TrialState, usize>) -> String {
    counts
        .iter()
        .map(|(state, n)| format!("{n} {state}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn status(args: StatusArgs) -> CommandResult {
    let store = store::open_existing(&args.store.store)?;
    let studies = match &args.study {
        Some(name) => vec![store.study(name.as_str())?],
        None => store.studies()?,
    };
    if studies.is_empty() {
        println!("no studies in {}", store.identity().location);
    }
    println!(
        "{:<28} {:>7} {:>7} {:>7} {:>7} {:>8} {:>7} {:>7}",
        "study", "waiting", "running", "done", "failed", "diverged", "pruned", "total"
    );
    for study in &studies {
        print_status(store.as_ref(), &study.name)?;
    }
    Ok(())
}

fn print_status(store: &dyn Store, study: &str) -> CommandResult {
    let counts = store.counts(study)?;
    let n = |state| counts.get(&state).copied().unwrap_or(0);
    println!(
        "{study:<28} {:>7} {:>7} {:>7} {:>7} {:>8} {:>7} {:>7}",
        n(TrialState::Waiting),
        n(TrialState::Running),
        n(TrialState::Done),
        n(TrialState::Failed),
        n(TrialState::Diverged),
        n(TrialState::Pruned),
        counts.values().sum::<usize>()
    );
    for trial in store.trials(study)? {
        let t = &trial.trial;
        let name = [t.group.as_str(), t.method.as_str()]
            .iter()
            .filter(|s| !s.is_empty())
            .cloned()
            .collect::<Vec<_>>()
            .join(" ");
        match trial.state {
            TrialState::Running => {
                let epochs = store.epochs(trial.id)?.len();
                println!(
                    "  running: trial {}{} ({name}, seed {}), {epochs}/{} epochs done, on {} \
                     (claim {}, heartbeat {})",
                    t.number,
                    retry_text(trial.retry),
                    t.seed,
                    t.config.epochs,
                    trial.worker.as_deref().unwrap_or("?"),
                    trial.attempts,
                    trial
                        .heartbeat_age
                        .map_or("never".into(), |age| format!("{age:.0} s ago"))
                );
            }
            TrialState::Failed | TrialState::Diverged => println!(
                "  {}: trial {}{} ({name}, seed {}): {}",
                trial.state,
                t.number,
                retry_text(trial.retry),
                t.seed,
                trial.message.as_deref().unwrap_or("")
            ),
            _ => {}
        }
    }
    print_takeovers(store, study)
}

/// Every claim of an attempt after its first (a takeover, or a hand-back continued), with
/// where its training began: from a checkpoint, or from epoch 0 and why.
fn print_takeovers(store: &dyn Store, study: &str) -> CommandResult {
    let attempts: HashMap<i64, (usize, u32)> = store
        .history(study)?
        .iter()
        .map(|t| (t.id, (t.trial.number, t.retry)))
        .collect();
    let mut claims_seen: HashMap<i64, usize> = HashMap::new();
    for claim in store.claims(study)? {
        let seen = claims_seen.entry(claim.trial).or_default();
        *seen += 1;
        let Some((number, retry)) = attempts.get(&claim.trial) else {
            continue;
        };
        if *seen > 1 {
            println!(
                "  claim {seen} of trial {number}{}, by {}: {}",
                retry_text(*retry),
                claim.worker,
                claim
                    .start
                    .map_or("its training did not begin".into(), |s| s.to_string())
            );
        }
    }
    Ok(())
}

/// ` (retry 2)` for a retried trial's attempt, else nothing.
fn retry_text(retry: u32) -> String {
    match retry {
        0 => String::new(),
        k => format!(" (retry {k})"),
    }
}
