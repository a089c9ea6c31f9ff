//! `regstudy study run` end to end on real MNIST: crash safety under kill -9, two processes
//! sharing one store, and a spec that names a missing data set.

mod common;

use common::{Scratch, DATA};
use regstudy::store::{self, Store};
use regstudy::trial::TrialState;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// An empty folder for one test, removed when the test ends.
fn work_dir(name: &str) -> Scratch {
    Scratch::new(&format!("study-{name}"))
}

/// Six trials of about a second each: three methods x two seeds on 1500 MNIST images.
fn write_spec(dir: &Path, name: &str) -> PathBuf {
    let methods = r#"
[[method]]
name = "none"

[[method]]
name = "l2"
set = { penalty = "l2", l2 = 1e-4 }

[[method]]
name = "l1-prox"
set = { penalty = "l1", l1 = 1e-4, l1_mode = "prox" }
"#;
    write_spec_with(dir, name, "seeds = 2", methods)
}

/// A study on 1500 MNIST images, 2 epochs per trial, with `seeds` lines and `methods`.
fn write_spec_with(dir: &Path, name: &str, seeds: &str, methods: &str) -> PathBuf {
    let spec = format!(
        r#"name = "{name}"
{seeds}
runs_dir = "{runs}"

[base]
dataset = "mnist"
data_dir = "{DATA}"
model = "simple-cnn"
epochs = 2
train_subset = 1500
test_subset = 500
val_fraction = 0.05
{methods}"#,
        runs = dir.join("runs").display()
    );
    let path = dir.join("study.toml");
    std::fs::write(&path, spec).unwrap();
    path
}

/// Runs the study in two processes of one thread each at once, until both exit successfully.
fn run_two_processes(spec: &Path, store: &Path) {
    let a = study_run(spec, store, 1).spawn().unwrap();
    let b = study_run(spec, store, 1).spawn().unwrap();
    for (name, process) in [("a", a), ("b", b)] {
        let out = process.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "process {name}: {}\n{}",
            out.status,
            common::stderr(&out)
        );
    }
}

fn study_run(spec: &Path, store: &Path, threads: usize) -> Command {
    let mut command = common::regstudy();
    // The kill test interrupts trials on purpose, possibly one many times.
    command
        .args(["study", "run", "--quiet", "--max-attempts", "1000"])
        .args(["--threads", &threads.to_string()])
        .arg(spec)
        .arg("--store")
        .arg(store)
        .env("REGSTUDY_OFFLINE", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    command
}

/// Checks that every trial is done, ran its epochs, and was never claimed after it finished.
fn assert_each_trial_done_once(store: &dyn Store, study: &str, trials: usize) {
    let records = store.trials(study).unwrap();
    assert_eq!(records.len(), trials);
    let claims = store.claims(study).unwrap();
    for trial in &records {
        assert_eq!(
            trial.state,
            TrialState::Done,
            "trial {}: {:?}",
            trial.trial.number,
            trial.message
        );
        let summary = trial
            .summary
            .as_ref()
            .expect("a done trial has its summary");
        assert_eq!(summary.epochs_run, 2);
        assert!(
            summary.test_acc.unwrap() > 0.5,
            "trial {} learned",
            trial.trial.number
        );
        let epochs: Vec<usize> = store
            .epochs(trial.id)
            .unwrap()
            .iter()
            .map(|m| m.epoch)
            .collect();
        assert_eq!(epochs, [1, 2], "trial {} epochs", trial.trial.number);
        let finished = trial.finished_at.unwrap();
        let late = claims
            .iter()
            .filter(|c| c.trial == trial.id && c.at > finished)
            .count();
        assert_eq!(
            late, 0,
            "trial {} was claimed after it finished",
            trial.trial.number
        );
        assert!(trial.histogram.is_some());
    }
}

/// A small deterministic generator for the kill delays (xorshift).
fn next_delay(state: &mut u64, max_ms: u64) -> Duration {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    Duration::from_millis(150 + *state % max_ms)
}

fn wait_or_kill(child: &mut Child, after: Duration) -> Option<bool> {
    let start = Instant::now();
    while start.elapsed() < after {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status.success());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    None
}

#[test]
fn a_study_killed_at_random_points_finishes_every_trial_exactly_once() {
    let dir = work_dir("kill");
    let spec = write_spec(&dir, "kill");
    let store_path = dir.join("store.db");
    let mut rng = 0x9E37_79B9_7F4A_7C15u64;
    let mut kills = 0;
    let mut finished = false;
    for _ in 0..60 {
        let mut child = study_run(&spec, &store_path, 2).spawn().unwrap();
        // Early attempts are killed at random points; later ones get more time, so the
        // study always ends.
        let delay = next_delay(&mut rng, 2500) * (1 + kills / 8);
        match wait_or_kill(&mut child, delay) {
            Some(true) => {
                finished = true;
                break;
            }
            Some(false) => {
                let mut err = String::new();
                std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
                panic!("study run failed: {err}");
            }
            None => kills += 1,
        }
    }
    assert!(finished, "the study did not finish");
    assert!(
        kills >= 3,
        "the harness killed the study only {kills} times"
    );
    let store = store::open(store_path.to_str().unwrap()).unwrap();
    assert_each_trial_done_once(store.as_ref(), "kill", 6);
    let attempts: u32 = store
        .trials("kill")
        .unwrap()
        .iter()
        .map(|t| t.attempts)
        .sum();
    assert!(
        attempts > 6,
        "some trial was interrupted and taken over ({attempts} claims)"
    );
    // Rerunning a finished study changes nothing.
    let before = store.trials("kill").unwrap();
    let status = study_run(&spec, &store_path, 2).status().unwrap();
    assert!(status.success());
    assert_eq!(store.trials("kill").unwrap(), before);
}

#[test]
fn two_processes_on_one_store_never_run_the_same_trial() {
    let dir = work_dir("pair");
    let spec = write_spec(&dir, "pair");
    let store_path = dir.join("store.db");
    run_two_processes(&spec, &store_path);
    let store = store::open(store_path.to_str().unwrap()).unwrap();
    assert_each_trial_done_once(store.as_ref(), "pair", 6);
    let claims = store.claims("pair").unwrap();
    assert_eq!(claims.len(), 6, "each trial was claimed once: {claims:?}");
    let mut processes: Vec<&str> = claims
        .iter()
        .map(|claim| claim.worker.rsplit_once(':').unwrap().0)
        .collect();
    processes.sort_unstable();
    processes.dedup();
    assert_eq!(processes.len(), 2, "both processes worked: {claims:?}");
    let status = common::regstudy()
        .args(["study", "status", "--store"])
        .arg(&store_path)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&status.stdout);
    let row: Vec<&str> = text
        .lines()
        .find(|l| l.starts_with("pair "))
        .unwrap_or_else(|| panic!("{text}"))
        .split_whitespace()
        .collect();
    assert_eq!(
        row,
        ["pair", "0", "0", "6", "0", "0", "0", "6"],
        "waiting running done failed diverged pruned total"
    );
}

#[test]
fn a_spec_naming_a_missing_data_set_fails_at_its_line_before_any_trial() {
    let dir = work_dir("missing");
    let spec = write_spec(&dir, "missing");
    let text = std::fs::read_to_string(&spec).unwrap();
    std::fs::write(
        &spec,
        text.replace("dataset = \"mnist\"", "dataset = \"fashion-mnist\""),
    )
    .unwrap();
    let empty = dir.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let text = std::fs::read_to_string(&spec).unwrap();
    std::fs::write(&spec, text.replace(DATA, empty.to_str().unwrap())).unwrap();
    let store_path = dir.join("store.db");
    let out = study_run(&spec, &store_path, 1).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    let expected = format!("{}:6:1: field `base.dataset`", spec.display());
    assert!(err.contains(&expected), "{err}");
    assert!(
        err.contains("train-images-idx3-ubyte.gz"),
        "names the missing file: {err}"
    );
    let store = store::open(store_path.to_str().unwrap()).unwrap();
    assert!(store.studies().unwrap().is_empty(), "no study was created");
}

#[test]
fn a_broken_spec_fails_with_file_line_and_field() {
    let dir = work_dir("broken");
    let spec = write_spec(&dir, "broken");
    let text = std::fs::read_to_string(&spec).unwrap();
    std::fs::write(
        &spec,
        text.replace("epochs = 2", "epochs = 2\ndropuot = 0.5"),
    )
    .unwrap();
    let out = study_run(&spec, &dir.join("store.db"), 1).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    let expected = format!(
        "{}:10:1: field `base.dropuot`: unknown field `dropuot`",
        spec.display()
    );
    assert!(err.contains(&expected), "{err}");
}

#[test]
fn a_confirmed_study_searches_on_its_seeds_then_runs_the_chosen_point_on_fresh_ones() {
    let dir = work_dir("confirm");
    let methods = r#"
[[method]]
name = "none"

[[method]]
name = "l2"
set = { penalty = "l2" }
grid = { l2 = [1e-4, 1e-3] }
"#;
    let spec = write_spec_with(&dir, "confirm", "seeds = 1\nconfirm_seeds = 2", methods);
    let store_path = dir.join("store.db");
    // Two processes: the one that does not finish the search waits for the other's
    // trials rather than leaving the confirmation to a single worker.
    run_two_processes(&spec, &store_path);
    let store = store::open(store_path.to_str().unwrap()).unwrap();
    // none on seeds 1-2; l2's two points on seed 0; the chosen point on seeds 1-2.
    assert_each_trial_done_once(store.as_ref(), "confirm", 6);
    let trials = store.trials("confirm").unwrap();
    let shape: Vec<(String, u64, String)> = trials
        .iter()
        .map(|t| {
            (
                t.trial.method.clone(),
                t.trial.seed,
                t.trial.phase.to_string(),
            )
        })
        .collect();
    let row = |m: &str, s, p: &str| (m.to_string(), s, p.to_string());
    assert_eq!(
        shape,
        vec![
            row("none", 1, "confirm"),
            row("none", 2, "confirm"),
            row("l2", 0, "search"),
            row("l2", 0, "search"),
            row("l2", 1, "confirm"),
            row("l2", 2, "confirm"),
        ]
    );
    let confirmed = &trials[4].trial.point;
    assert_eq!(&trials[5].trial.point, confirmed);
    assert!(trials[2..4].iter().any(|t| &t.trial.point == confirmed));
    let report = common::regstudy()
        .args(["report", "confirm", "--store"])
        .arg(&store_path)
        .arg("--out")
        .arg(dir.join("report"))
        .output()
        .unwrap();
    assert!(report.status.success(), "{report:?}");
    let md = std::fs::read_to_string(dir.join("report/report.md")).unwrap();
    assert!(
        md.contains("searched on seeds 0 and each chosen point")
            && md.contains("on the fresh seeds 1-2"),
        "{md}"
    );
}

/// Runs regstudy with `args` (and the store), returning its output.
fn regstudy(args: &[&str], store: &Path) -> std::process::Output {
    common::regstudy()
        .args(args)
        .arg("--store")
        .arg(store)
        .env("REGSTUDY_OFFLINE", "1")
        .output()
        .unwrap()
}

/// `regstudy study run --quiet --threads 1 SPEC` on `store`, returning its output.
fn run_quietly(spec: &Path, store: &Path) -> std::process::Output {
    regstudy(
        &[
            "study",
            "run",
            "--quiet",
            "--threads",
            "1",
            spec.to_str().unwrap(),
        ],
        store,
    )
}

/// Two trials of one epoch: method `none` on seeds 0 and 1.
fn write_two_trial_spec(dir: &Path, name: &str) -> PathBuf {
    let spec = write_spec_with(dir, name, "seeds = 2", "\n[[method]]\nname = \"none\"\n");
    let text = std::fs::read_to_string(&spec).unwrap();
    std::fs::write(&spec, text.replace("epochs = 2", "epochs = 1")).unwrap();
    spec
}

#[test]
fn a_failed_trial_fails_the_run_and_is_retried_as_a_new_attempt_keeping_the_failed_one() {
    let dir = work_dir("retry");
    let spec = write_two_trial_spec(&dir, "retry");
    let store_path = dir.join("store.db");
    // A worker killed during trial 0, then a run that allows one attempt: trial 0 fails,
    // as it would after an out-of-memory kill.
    let mut first = study_run(&spec, &store_path, 1).spawn().unwrap();
    let start = Instant::now();
    let running = loop {
        let counts = store::open_existing(store_path.to_str().unwrap())
            .and_then(|s| s.counts("retry"))
            .ok();
        if counts.is_some_and(|c| c[&TrialState::Running] > 0) {
            break true;
        }
        if start.elapsed() > Duration::from_secs(20) {
            break false;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    first.kill().unwrap();
    first.wait().unwrap();
    assert!(running, "the first run claimed a trial");
    let args = [
        "study",
        "run",
        "--quiet",
        "--threads",
        "1",
        "--max-attempts",
        "1",
    ];
    let out = regstudy(
        &[&args[..], &[spec.to_str().unwrap()]].concat(),
        &store_path,
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "failed trials fail the run: {err}");
    assert!(
        err.contains("study retry: trial 0 failed")
            && err.contains("--retry-failed")
            && err.contains("regstudy study retry retry --trial N"),
        "{err}"
    );
    let status = regstudy(&["study", "status"], &store_path);
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(
        text.contains("failed: trial 0 (none, seed 0): its worker stopped"),
        "status names the trial by the same number: {text}"
    );
    let out = regstudy(&["study", "retry", "retry", "--trial", "1"], &store_path);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("trial 1: cannot retry it: it is done"),
        "{err}"
    );
    let out = regstudy(&["study", "retry", "retry"], &store_path);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && said.contains("trial 0 will run again"),
        "{said}"
    );
    let out = run_quietly(&spec, &store_path);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let store = store::open(store_path.to_str().unwrap()).unwrap();
    let trials = store.trials("retry").unwrap();
    assert!(
        trials.iter().all(|t| t.state == TrialState::Done),
        "{trials:?}"
    );
    assert_eq!((trials[0].retry, trials[1].retry), (1, 0));
    let history = store.history("retry").unwrap();
    let failed = &history[0];
    assert_eq!(
        (failed.trial.number, failed.retry, failed.state),
        (0, 0, TrialState::Failed)
    );
    assert!(failed
        .message
        .as_deref()
        .unwrap()
        .contains("stopped during each of 1 attempts"));
    let claims = store.claims("retry").unwrap();
    let of = |id| claims.iter().filter(|c| c.trial == id).count();
    assert_eq!(
        of(failed.id),
        2,
        "the failed attempt's claims stay: {claims:?}"
    );
    assert_eq!(of(trials[0].id), 1);
    let owner = std::fs::read_to_string(
        trials[0]
            .trial
            .config
            .out
            .as_ref()
            .unwrap()
            .join("owner.json"),
    );
    assert!(
        owner.unwrap().contains("\"retry\": 1"),
        "the folder is the retry's"
    );
}

#[test]
fn another_stores_run_folder_is_left_alone_and_the_run_says_why() {
    let dir = work_dir("owner");
    let spec = write_two_trial_spec(&dir, "shared");
    let first_store = dir.join("first.db");
    let out = run_quietly(&spec, &first_store);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let first = store::open_existing(first_store.to_str().unwrap()).unwrap();
    let folder = first.trials("shared").unwrap()[0]
        .trial
        .config
        .out
        .clone()
        .unwrap();
    let weights = std::fs::read(folder.join("weights.safetensors")).unwrap();
    // The same study name and runs_dir, another spec, another store.
    let text = std::fs::read_to_string(&spec).unwrap();
    std::fs::write(
        &spec,
        text.replace("train_subset = 1500", "train_subset = 1000"),
    )
    .unwrap();
    let second_store = dir.join("second.db");
    let out = run_quietly(&spec, &second_store);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains(&format!("run folder {}", folder.display()))
            && err.contains("belongs to trial 0 (attempt 0) of study `shared` in another store")
            && err.contains("first.db")
            && err.contains("another `runs_dir`"),
        "{err}"
    );
    assert_eq!(
        std::fs::read(folder.join("weights.safetensors")).unwrap(),
        weights
    );
    let second = store::open_existing(second_store.to_str().unwrap()).unwrap();
    assert!(
        second.studies().unwrap().is_empty(),
        "the study was not created"
    );
}

#[test]
fn read_only_commands_create_nothing_and_change_nothing() {
    let dir = work_dir("read-only");
    let missing = dir.join("typo/store.db");
    for args in [
        vec!["study", "status"],
        vec!["report", "x", "--out", dir.join("report").to_str().unwrap()],
        vec![
            "export",
            "x",
            "--format",
            "csv",
            "--out",
            dir.join("export").to_str().unwrap(),
        ],
    ] {
        let out = regstudy(&args, &missing);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?}");
        assert!(
            err.contains(&format!("no store at {}", missing.display())) && err.contains("--store"),
            "{args:?}: {err}"
        );
    }
    assert!(!dir.join("typo").exists(), "no folder was created");
    let store_path = dir.join("store.db");
    drop(store::open(store_path.to_str().unwrap()).unwrap());
    let files = || {
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    };
    let (before, bytes, modified) = (
        files(),
        std::fs::read(&store_path).unwrap(),
        std::fs::metadata(&store_path).unwrap().modified().unwrap(),
    );
    let out = regstudy(&["study", "status"], &store_path);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(files(), before, "no -wal or -shm beside the store");
    assert_eq!(std::fs::read(&store_path).unwrap(), bytes);
    assert_eq!(
        std::fs::metadata(&store_path).unwrap().modified().unwrap(),
        modified
    );
}

#[test]
fn without_a_validation_split_a_grid_is_refused_and_a_study_without_choices_reports_its_runs() {
    let dir = work_dir("no-val");
    let spec = write_two_trial_spec(&dir, "noval");
    let text = std::fs::read_to_string(&spec)
        .unwrap()
        .replace("val_fraction = 0.05", "val_fraction = 0.0");
    let grid =
        "\n[[method]]\nname = \"l2\"\nset = { penalty = \"l2\" }\ngrid = { l2 = [1e-4, 1e-3] }\n";
    std::fs::write(&spec, format!("{text}{grid}")).unwrap();
    let store_path = dir.join("store.db");
    let out = study_run(&spec, &store_path, 1).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    let expected = format!(
        "{}:12:1: field `base.val_fraction`: method `l2` has 2 grid points",
        spec.display()
    );
    assert!(err.contains(&expected), "{err}");
    std::fs::write(&spec, text).unwrap();
    let out = study_run(&spec, &store_path, 1).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = dir.join("report");
    let args = ["report", "noval", "--out", report.to_str().unwrap()];
    let out = regstudy(&args, &store_path);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let md = std::fs::read_to_string(report.join("report.md")).unwrap();
    assert!(md.contains("No method searches a grid"), "{md}");
    let row = md
        .lines()
        .find(|l| l.starts_with("| none ") && l.contains("| 2 "))
        .unwrap_or_else(|| panic!("the baseline's row reports its 2 runs: {md}"));
    assert!(row.contains(" ± "), "with its test accuracy: {row}");
}

#[test]
fn workers_auto_times_each_division_of_the_threads_prints_the_choice_and_records_it() {
    let dir = work_dir("workers-auto");
    let spec = write_two_trial_spec(&dir, "auto");
    let store = dir.join("study.db");
    let out = regstudy(
        &[
            "study",
            "run",
            "--workers",
            "auto",
            "--threads",
            "2",
            spec.to_str().unwrap(),
        ],
        &store,
    );
    assert!(out.status.success(), "{}", common::stderr(&out));
    let stdout = common::stdout(&out);
    // Two threads and two trials: one worker of two threads, or two of one.
    let line = stdout
        .lines()
        .find(|l| l.starts_with("workers auto: "))
        .unwrap_or_else(|| panic!("no choice printed:\n{stdout}"));
    assert!(
        line.contains("simple-cnn training at batch 64: 1 x 2 threads: ")
            && line.contains(", 2 x 1 thread: "),
        "{line}"
    );
    let records: Vec<PathBuf> = std::fs::read_dir(dir.join("runs/workers-auto"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(records.len(), 1, "{records:?}");
    let record: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&records[0]).unwrap()).unwrap();
    assert_eq!(record["study"], "auto");
    let choice = &record["choice"];
    assert_eq!(choice["measured"].as_array().unwrap().len(), 2);
    let chosen = (
        choice["chosen"]["workers"].as_u64().unwrap(),
        choice["chosen"]["threads_each"].as_u64().unwrap(),
    );
    assert!(chosen == (1, 2) || chosen == (2, 1), "{choice}");
    assert!(line.ends_with(&format!(
        "chose {} worker{} of {} thread{}",
        chosen.0,
        if chosen.0 == 1 { "" } else { "s" },
        chosen.1,
        if chosen.1 == 1 { "" } else { "s" }
    )));
    // The epochs record the threads that trained them: the chosen division's.
    let store = store::open(store.to_str().unwrap()).unwrap();
    for t in store.trials("auto").unwrap() {
        assert_eq!(t.state, TrialState::Done);
        for e in store.epochs(t.id).unwrap() {
            assert_eq!(e.threads, Some(chosen.1 as usize));
        }
    }
}

#[test]
fn workers_must_be_a_number_or_auto() {
    let dir = work_dir("workers-bad");
    let spec = write_two_trial_spec(&dir, "bad-workers");
    let out = regstudy(
        &["study", "run", "--workers", "many", spec.to_str().unwrap()],
        &dir.join("study.db"),
    );
    assert!(!out.status.success());
    let stderr = common::stderr(&out);
    assert!(
        stderr.contains("--workers")
            && stderr.contains("expected a number of workers or `auto`, got `many`"),
        "{stderr}"
    );
}
