//! `regstudy study launch slurm` on a real one-node Slurm cluster with a PostgreSQL store: a
//! small MNIST study launched as a job array of four workers, one worker killed with
//! `scancel --signal=KILL` in the middle of a trial and another sent SIGTERM. The study
//! finishes, every trial is done once, the claims show the takeovers and where each began,
//! and the report's tables (but for their wall-clock times) equal those of the same study run
//! on one machine with SQLite.
//!
//! Runs when `REGSTUDY_TEST_SLURM=1` (a cluster answers `sbatch`; `tools/services/slurm.sh
//! start` makes one and CI sets this) and `REGSTUDY_TEST_POSTGRES` names a server.

mod common;

use common::{assert_success, stdout, PostgresDatabase, Scratch, DATA};
use regstudy::store::{self, StartReason, Store};
use regstudy::trial::TrialState;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

fn write_spec(dir: &Path) -> PathBuf {
    let spec = format!(
        r#"name = "cluster"
seeds = 2
runs_dir = "{runs}"

[base]
dataset = "mnist"
data_dir = "{DATA}"
model = "simple-cnn"
epochs = 3
train_subset = 3000
test_subset = 500
val_fraction = 0.05

[[method]]
name = "none"

[[method]]
name = "l2"
set = {{ penalty = "l2", l2 = 1e-4 }}
"#,
        runs = dir.join("runs").display()
    );
    let path = dir.join("cluster.toml");
    std::fs::write(&path, spec).unwrap();
    path
}

fn regstudy(args: &[&str]) -> std::process::Output {
    common::regstudy()
        .args(args)
        .env("REGSTUDY_OFFLINE", "1")
        .output()
        .unwrap()
}

/// Each trial's test accuracy by number, after checking that each is done and was not
/// claimed after it finished.
fn results(store: &dyn Store) -> BTreeMap<usize, f64> {
    let claims = store.claims("cluster").unwrap();
    store
        .trials("cluster")
        .unwrap()
        .iter()
        .map(|t| {
            assert_eq!(t.state, TrialState::Done, "{:?}", t.message);
            let finished = t.finished_at.unwrap();
            assert!(
                claims.iter().all(|c| c.trial != t.id || c.at <= finished),
                "trial {} was claimed after it finished",
                t.trial.number
            );
            (
                t.trial.number,
                t.summary.as_ref().unwrap().test_acc.unwrap(),
            )
        })
        .collect()
}

/// The columns of the report's tables that hold wall-clock times, which differ between any
/// two runs of a study.
const TIMING_COLUMNS: [&str; 2] = ["train s/epoch", "overhead %"];

/// Every table of the report `regstudy report` renders from study `cluster` in `store` (into
/// `out`), by file name, without its timing columns.
fn report_tables(store: &str, out: &Path) -> BTreeMap<String, Vec<serde_json::Value>> {
    assert_success(&regstudy(&[
        "report",
        "cluster",
        "--store",
        store,
        "--out",
        out.to_str().unwrap(),
    ]));
    let mut tables = BTreeMap::new();
    for entry in std::fs::read_dir(out.join("tables")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("json") {
            continue;
        }
        let mut rows: Vec<serde_json::Value> =
            serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        for row in &mut rows {
            let row = row.as_object_mut().expect("a table row is an object");
            for column in TIMING_COLUMNS {
                row.remove(column);
            }
        }
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        tables.insert(name, rows);
    }
    tables
}

/// A running trial with an epoch recorded whose holder is not in `spare`: its id and its
/// worker's process id.
fn trial_in_progress(store: &dyn Store, spare: &[u32]) -> Option<(i64, u32)> {
    store.trials("cluster").unwrap().into_iter().find_map(|t| {
        let pid: u32 = t.worker.as_deref()?.split(':').nth(1)?.parse().ok()?;
        let started = t.state == TrialState::Running && !store.epochs(t.id).ok()?.is_empty();
        (started && !spare.contains(&pid)).then_some((t.id, pid))
    })
}

/// The array task (`JOB_TASK`) that process `pid` runs in, from the environment Slurm gave
/// it. (The numeric job ids `scontrol listpids` shows cannot be used: the array's own id is
/// also one task's, and `scancel` of it signals every task.)
fn array_task_of(pid: u32) -> String {
    let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
    let var = |name: &str| {
        environ
            .split(|&b| b == 0)
            .find_map(|entry| entry.strip_prefix(format!("{name}=").as_bytes()))
            .map(|value| String::from_utf8_lossy(value).into_owned())
            .unwrap_or_else(|| panic!("process {pid} has no {name}"))
    };
    format!(
        "{}_{}",
        var("SLURM_ARRAY_JOB_ID"),
        var("SLURM_ARRAY_TASK_ID")
    )
}

/// Sends `signal` to the batch process of array task `task`; whether `scancel` did (it fails
/// for a task that ended meanwhile).
fn scancel(signal: &str, task: &str) -> bool {
    let out = Command::new("scancel")
        .args(["--full", "--signal", signal, task])
        .output()
        .unwrap();
    if !out.status.success() {
        eprintln!(
            "scancel --signal {signal} {task}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    out.status.success()
}

#[test]
fn a_launched_job_array_finishes_the_study_despite_a_killed_and_a_terminated_worker() {
    if common::required_service("REGSTUDY_TEST_SLURM").is_none() {
        return;
    }
    let Some(database) = PostgresDatabase::new("slurm") else {
        return;
    };
    let dir = Scratch::new("slurm");
    let spec = write_spec(&dir);
    let url = database.url.as_str();
    assert_success(&regstudy(&[
        "study",
        "create",
        spec.to_str().unwrap(),
        "--store",
        url,
    ]));
    let logs = dir.join("logs");
    let launched = regstudy(&[
        "study",
        "launch",
        "slurm",
        "cluster",
        "--store",
        url,
        "--workers",
        "4",
        "--max-running",
        "2",
        "--cpus-per-task",
        "1",
        "--stale-after",
        "15",
        "--log-dir",
        logs.to_str().unwrap(),
    ]);
    assert_success(&launched);
    let job = stdout(&launched)
        .split_whitespace()
        .skip_while(|w| *w != "job")
        .nth(1)
        .map(|id| id.trim_end_matches(':').to_string())
        .expect("the job id is printed");

    let store = store::open_existing(url).unwrap();
    let mut signalled = Vec::new();
    let mut tried = Vec::new();
    for signal in ["KILL", "TERM"] {
        let start = Instant::now();
        loop {
            assert!(
                start.elapsed() < Duration::from_secs(180),
                "no trial in progress"
            );
            let Some((trial, pid)) = trial_in_progress(store.as_ref(), &tried) else {
                std::thread::sleep(Duration::from_millis(50));
                continue;
            };
            tried.push(pid);
            if scancel(signal, &array_task_of(pid)) {
                eprintln!("sent SIG{signal} to the worker of trial id {trial} (process {pid})");
                signalled.push(trial);
                break;
            }
        }
    }

    let start = Instant::now();
    loop {
        let queue = Command::new("squeue")
            .args(["-h", "-j", &job])
            .output()
            .unwrap();
        if String::from_utf8_lossy(&queue.stdout).trim().is_empty() {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(600),
            "the job did not end"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let on_cluster = results(store.as_ref());
    assert_eq!(on_cluster.len(), 4);
    let claims = store.claims("cluster").unwrap();
    for trial in signalled {
        let of_trial: Vec<_> = claims.iter().filter(|c| c.trial == trial).collect();
        assert!(
            of_trial.len() >= 2,
            "trial id {trial} was continued by another worker: {claims:?}"
        );
        // One node shares the run folders: the worker that finished the trial continued it
        // from the checkpoint the signalled one left.
        let last = of_trial.last().unwrap().start;
        assert!(
            last.is_some_and(|s| s.reason == StartReason::Checkpoint && s.from_epoch >= 1),
            "trial id {trial}: {last:?}"
        );
    }

    let alone = Scratch::new("slurm-alone");
    let spec = write_spec(&alone);
    let sqlite = alone.join("studies.db");
    assert_success(&regstudy(&[
        "study",
        "run",
        "--quiet",
        "--threads",
        "1",
        spec.to_str().unwrap(),
        "--store",
        sqlite.to_str().unwrap(),
    ]));
    let one_machine = store::open_existing(sqlite.to_str().unwrap()).unwrap();
    assert_eq!(on_cluster, results(one_machine.as_ref()));
    let cluster_tables = report_tables(url, &dir.join("report"));
    assert!(
        cluster_tables.contains_key("methods.json"),
        "{:?}",
        cluster_tables.keys()
    );
    assert_eq!(
        cluster_tables,
        report_tables(sqlite.to_str().unwrap(), &alone.join("report")),
        "the report's tables, but for wall-clock times, are those of one machine"
    );
}
