//! `regstudy study run` end to end on real MNIST: crash safety under kill -9, two processes
//! sharing one store, and a spec that names a missing data set.

use regstudy::store::{self, Store};
use regstudy::study::record::TrialState;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/data");

fn work_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("regstudy-study-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
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
    let mut a = study_run(spec, store, 1).spawn().unwrap();
    let mut b = study_run(spec, store, 1).spawn().unwrap();
    assert!(a.wait().unwrap().success());
    assert!(b.wait().unwrap().success());
}

fn study_run(spec: &Path, store: &Path, threads: usize) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_regstudy"));
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
    let status = Command::new(env!("CARGO_BIN_EXE_regstudy"))
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
        ["pair", "0", "0", "6", "0", "0", "6"],
        "waiting running done failed diverged total"
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
    let report = Command::new(env!("CARGO_BIN_EXE_regstudy"))
        .args(["report", "--study", "confirm", "--store"])
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
