//! `regstudy study run|status`: run a study's trials from a spec, and see where it stands.

use super::CommandResult;
use clap::{Args, Subcommand};
use regstudy::store::{self, Store};
use regstudy::study::name::StudyName;
use regstudy::study::record::TrialState;
use regstudy::study::runner::{run_study, RunnerConfig};
use regstudy::study::spec::StudySpec;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Subcommand)]
pub enum StudyCommand {
    /// Run the trials of a study spec (TOML); rerun the same command to resume after a crash.
    Run(RunArgs),
    /// Count each study's trials by state, and list the running ones.
    Status(StatusArgs),
}

/// Where the studies are kept.
#[derive(Debug, Args)]
pub struct StoreArgs {
    /// The study store: a SQLite file (created if absent) or sqlite://PATH.
    #[arg(
        long,
        value_name = "FILE",
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
}

/// How many trials run at once, and on how many threads.
#[derive(Debug, Args)]
pub struct WorkerArgs {
    /// Trials trained at the same time in this process; the threads are divided among them.
    #[arg(long, default_value_t = 1)]
    pub workers: usize,
    /// Threads in all (0: one per core).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Seconds without a heartbeat after which another worker takes a running trial over
    /// (a trial of a process that is gone from this machine is taken over at once).
    #[arg(long, default_value_t = 120, value_name = "SECS")]
    pub stale_after: u64,
    /// A trial claimed this many times without finishing (its worker died each time) is
    /// marked failed.
    #[arg(long, default_value_t = 5, value_name = "N")]
    pub max_attempts: u32,
    /// Folder holding the data sets, for every trial (overrides the spec's data_dir)
    /// [default: the spec's, else $REGSTUDY_DATA, else the user's cache folder].
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// No progress bar or per-trial lines.
    #[arg(long)]
    pub quiet: bool,
}

impl WorkerArgs {
    pub fn runner_config(&self) -> RunnerConfig {
        RunnerConfig {
            workers: self.workers,
            threads: self.threads,
            stale_after: Duration::from_secs(self.stale_after),
            max_attempts: self.max_attempts,
            data_dir: self.data_dir.clone(),
            progress: !self.quiet,
            ..RunnerConfig::default()
        }
    }
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// Only this study.
    #[arg(long)]
    study: Option<StudyName>,
}

pub fn run(command: StudyCommand) -> CommandResult {
    match command {
        StudyCommand::Run(args) => run_spec(args),
        StudyCommand::Status(args) => status(args),
    }
}

fn run_spec(args: RunArgs) -> CommandResult {
    let text = std::fs::read_to_string(&args.spec)
        .map_err(|e| format!("{}: cannot read the spec: {e}", args.spec.display()))?;
    let spec = StudySpec::parse(&text, &args.spec)?;
    let store = store::open(&args.store.store)?;
    let config = args.workers.runner_config();
    let done = run_study(&spec, &text, store.as_ref(), &config)?;
    print_run_end(&spec.name, &args.store.store, &done);
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
    println!("report: regstudy report --store {store} --study {study} --out reports/{study}");
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
        println!("no studies in {}", args.store.store);
    }
    println!(
        "{:<28} {:>7} {:>7} {:>7} {:>7} {:>8} {:>7}",
        "study", "waiting", "running", "done", "failed", "diverged", "total"
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
        "{study:<28} {:>7} {:>7} {:>7} {:>7} {:>8} {:>7}",
        n(TrialState::Waiting),
        n(TrialState::Running),
        n(TrialState::Done),
        n(TrialState::Failed),
        n(TrialState::Diverged),
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
                    "  running: trial {} ({name}, seed {}), {epochs}/{} epochs done, on {}",
                    t.number,
                    t.seed,
                    t.config.epochs,
                    trial.worker.as_deref().unwrap_or("?")
                );
            }
            TrialState::Failed | TrialState::Diverged => println!(
                "  {}: trial {} ({name}, seed {}): {}",
                trial.state,
                t.number,
                t.seed,
                trial.message.as_deref().unwrap_or("")
            ),
            _ => {}
        }
    }
    Ok(())
}
