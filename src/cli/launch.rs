//! `regstudy study launch slurm|k8s`: start a study's workers through a cluster's scheduler.

use super::study::StoreArgs;
use super::CommandResult;
use clap::{Args, Subcommand};
use regstudy::store;
use regstudy::study::launch::{to_yaml, KubernetesJob, SlurmJob, WorkerSettings};
use regstudy::study::layout::Workers;
use regstudy::study::name::StudyName;
use regstudy::study::runner::StudyRunOptions;
use std::path::{Path, PathBuf};
use std::process::Command;

#[derive(Debug, Subcommand)]
pub enum LaunchCommand {
    /// Submit a Slurm job array whose tasks each run `regstudy study work NAME`; with
    /// --dry-run, print the script instead.
    Slurm(SlurmArgs),
    /// Print a Kubernetes Indexed Job whose pods each run `regstudy study work NAME`, for
    /// `kubectl apply -f -`; the store's URL comes from a secret.
    K8s(KubernetesArgs),
}

/// What every worker a launch starts runs with: `study work`'s options.
#[derive(Debug, Args)]
pub struct TaskArgs {
    /// Trials trained at once by each task (pod), its threads divided among them; `auto`:
    /// each task times the divisions of its threads on its node and takes the fastest.
    #[arg(long, value_name = "K|auto", default_value_t = Workers::Count(1))]
    task_workers: Workers,
    /// Threads of each task in all (0: the cores it has, --cpus-per-task or the whole cores
    /// of --cpu).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Seconds without a heartbeat after which another worker takes a trial over.
    #[arg(long, default_value_t = StudyRunOptions::default().stale_after.as_secs(), value_name = "SECS")]
    stale_after: u64,
    /// A trial claimed this many times without finishing is marked failed.
    #[arg(long, default_value_t = StudyRunOptions::default().max_attempts, value_name = "N")]
    max_attempts: u32,
    /// Folder holding the data sets, at this path for every task [default: the spec's].
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Folder for the trials' run folders, on storage every task sees at this path
    /// [default: the spec's runs_dir].
    #[arg(long, value_name = "DIR")]
    runs_dir: Option<PathBuf>,
}

impl TaskArgs {
    /// The workers' settings, with relative folders taken from `here` (`None`: as given,
    /// paths inside a container).
    fn settings(&self, here: Option<&Path>) -> WorkerSettings {
        let place = |dir: &Option<PathBuf>| match here {
            Some(here) => dir.as_ref().map(|d| here.join(d)),
            None => dir.clone(),
        };
        WorkerSettings {
            workers: self.task_workers,
            threads: self.threads,
            stale_after: self.stale_after,
            max_attempts: self.max_attempts,
            data_dir: place(&self.data_dir),
            runs_dir: place(&self.runs_dir),
        }
    }
}

#[derive(Debug, Args)]
pub struct KubernetesArgs {
    /// The study, as `study create` stored it.
    #[arg(value_name = "NAME")]
    study: StudyName,
    /// The container image, with `regstudy` on its PATH.
    #[arg(long)]
    image: String,
    /// Pods in all (the Job's completions), each one worker process.
    #[arg(long, value_name = "N")]
    workers: usize,
    /// Pods at once [default: all].
    #[arg(long, value_name = "K")]
    parallelism: Option<usize>,
    /// The secret whose key `url` holds the store's URL, e.g. made with `kubectl create
    /// secret generic regstudy-store --from-literal=url=postgres://...`.
    #[arg(long, value_name = "SECRET")]
    store_secret: String,
    /// CPU of each pod, requested and limited; the worker's threads follow it.
    #[arg(long, default_value = "2")]
    cpu: String,
    /// Memory of each pod, requested and limited.
    #[arg(long, default_value = "4Gi")]
    memory: String,
    /// Failed pods of one index before it is given up (evictions and preemptions do not
    /// count).
    #[arg(long, value_name = "N", default_value_t = 3)]
    retries_per_index: u32,
    #[command(flatten)]
    task: TaskArgs,
    /// Print the manifest as YAML or JSON.
    #[arg(long, value_enum, default_value_t = ManifestFormat::Yaml)]
    output: ManifestFormat,
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum ManifestFormat {
    Yaml,
    Json,
}

#[derive(Debug, Args)]
pub struct SlurmArgs {
    /// The study, as `study create` stored it.
    #[arg(value_name = "NAME")]
    study: StudyName,
    #[command(flatten)]
    store: StoreArgs,
    /// Array tasks: worker processes in all.
    #[arg(long, value_name = "N")]
    workers: usize,
    /// At most this many tasks at once [default: all].
    #[arg(long, value_name = "K")]
    max_running: Option<usize>,
    /// The partition [default: the cluster's].
    #[arg(long, value_name = "P")]
    partition: Option<String>,
    /// Each task's time limit, as Slurm writes it (`MM`, `HH:MM:SS`, `D-HH`)
    /// [default: the partition's]. Tasks get SIGTERM two minutes before it.
    #[arg(long, value_name = "T")]
    time: Option<String>,
    /// Cores per task; the worker trains on all of them unless --threads says otherwise.
    #[arg(long, value_name = "C", default_value_t = 2)]
    cpus_per_task: usize,
    /// Memory per task, as Slurm writes it (`4G`) [default: the partition's].
    #[arg(long, value_name = "M")]
    mem: Option<String>,
    #[command(flatten)]
    task: TaskArgs,
    /// Folder of the tasks' output files [default: slurm-logs in the current folder].
    #[arg(long, value_name = "DIR")]
    log_dir: Option<PathBuf>,
    /// Where the job script is written [default: NAME.sbatch in the log folder].
    #[arg(long, value_name = "FILE")]
    script: Option<PathBuf>,
    /// Print the job script and submit nothing.
    #[arg(long)]
    dry_run: bool,
}

pub fn run(command: LaunchCommand) -> CommandResult {
    match command {
        LaunchCommand::Slurm(args) => slurm(args),
        LaunchCommand::K8s(args) => kubernetes(args),
    }
}

fn kubernetes(args: KubernetesArgs) -> CommandResult {
    let job = KubernetesJob {
        study: args.study,
        image: args.image,
        workers: args.workers,
        parallelism: args.parallelism,
        store_secret: args.store_secret,
        cpu: args.cpu,
        memory: args.memory,
        retries_per_index: args.retries_per_index,
        worker: args.task.settings(None),
    };
    let manifest = job.manifest()?;
    match args.output {
        ManifestFormat::Yaml => print!("{}", to_yaml(&manifest)),
        ManifestFormat::Json => println!("{}", serde_json::to_string_pretty(&manifest)?),
    }
    Ok(())
}

fn slurm(args: SlurmArgs) -> CommandResult {
    let here = std::env::current_dir().map_err(|e| format!("the current folder: {e}"))?;
    let log_dir = here.join(args.log_dir.clone().unwrap_or_else(|| "slurm-logs".into()));
    let job = SlurmJob {
        study: args.study.clone(),
        tasks: args.workers,
        max_running: args.max_running,
        partition: args.partition.clone(),
        time: args.time.clone(),
        cpus_per_task: args.cpus_per_task,
        mem: args.mem.clone(),
        log_dir: log_dir.clone(),
        binary: std::env::current_exe().map_err(|e| format!("regstudy's own path: {e}"))?,
        worker: args.task.settings(Some(&here)),
    };
    let script = job.script()?;
    if args.dry_run {
        print!("{script}");
        return Ok(());
    }
    // The workers open the store by what they are given: check now that it has the study.
    let store = store::open_existing(&args.store.store)?;
    store.study(args.study.as_str())?;
    let location = store.identity().location;
    let path = args
        .script
        .map(|p| here.join(p))
        .unwrap_or_else(|| log_dir.join(format!("{}.sbatch", args.study.as_str())));
    std::fs::create_dir_all(&log_dir)
        .map_err(|e| format!("creating {}: {e}", log_dir.display()))?;
    regstudy::fsio::write_atomic(&path, script.as_bytes())
        .map_err(|e| format!("writing {}: {e}", path.display()))?;
    let id = submit(&path, &store_for_tasks(&args.store.store, &here))?;
    let name = args.study.as_str();
    println!(
        "submitted job {id}: {} workers of study {name} on {location}",
        args.workers
    );
    println!("script: {}", path.display());
    println!("follow: squeue -j {id}; regstudy study status {name} --store STORE");
    println!("logs:   {}", log_dir.display());
    Ok(())
}

/// The store as the tasks must name it: a SQLite path made absolute (tasks start in their own
/// folder), a URL as given.
fn store_for_tasks(store: &str, here: &Path) -> String {
    if store.contains("://") {
        store.to_string()
    } else {
        here.join(store).display().to_string()
    }
}

/// `sbatch --parsable SCRIPT` with the store in `REGSTUDY_STORE`; the job id.
fn submit(script: &Path, store: &str) -> Result<String, String> {
    let output = Command::new("sbatch")
        .arg("--parsable")
        .arg(script)
        .env("REGSTUDY_STORE", store)
        .output()
        .map_err(|e| format!("running sbatch: {e} (is Slurm installed on this machine?)"))?;
    if !output.status.success() {
        return Err(format!(
            "sbatch refused the job: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    let text = String::from_utf8_lossy(&output.stdout);
    let id = text
        .trim()
        .split(';')
        .next()
        .unwrap_or_default()
        .to_string();
    if id.is_empty() {
        return Err("sbatch printed no job id".into());
    }
    Ok(id)
}
