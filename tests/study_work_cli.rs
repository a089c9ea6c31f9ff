//! `regstudy study create` once, then `regstudy study work` in several processes that know only
//! the study's name and the store: the way a study runs on many machines. On SQLite, and on
//! PostgreSQL when `REGSTUDY_TEST_POSTGRES` names a server.

mod common;

use common::{assert_success, stderr, stdout, PostgresDatabase, Scratch, DATA};
use regstudy::store;
use regstudy::trial::TrialState;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Output;

/// Four trials of two epochs on 1500 MNIST images: two methods x two seeds.
fn write_spec(dir: &Path, name: &str, lr: &str) -> PathBuf {
    let spec = format!(
        r#"name = "{name}"
seeds = 2
runs_dir = "{runs}"

[base]
dataset = "mnist"
data_dir = "{DATA}"
model = "simple-cnn"
epochs = 2
lr = {lr}
train_subset = 1500
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
    let path = dir.join(format!("{name}-{lr}.toml"));
    std::fs::write(&path, spec).unwrap();
    path
}

fn regstudy(args: &[&str], store: &str) -> Output {
    common::regstudy()
        .args(args)
        .args(["--store", store])
        .env("REGSTUDY_OFFLINE", "1")
        .output()
        .unwrap()
}

/// Each trial's test accuracy by number, after checking that every trial is done and was
/// claimed exactly once.
fn results(store: &str, study: &str) -> BTreeMap<usize, f64> {
    let store = store::open_existing(store).unwrap();
    let trials = store.trials(study).unwrap();
    let claims = store.claims(study).unwrap();
    assert_eq!(claims.len(), trials.len(), "one claim per trial");
    trials
        .iter()
        .map(|t| {
            assert_eq!(t.state, TrialState::Done, "{:?}", t.message);
            let acc = t.summary.as_ref().unwrap().test_acc.unwrap();
            (t.trial.number, acc)
        })
        .collect()
}

/// Creates the study in `store`, checks that creating it again changes nothing and that a
/// different spec under its name is refused, then works on it with two processes at once.
fn create_then_work_in_two_processes(dir: &Path, store: &str) -> BTreeMap<usize, f64> {
    let spec = write_spec(dir, "shared", "0.001");
    let created = regstudy(&["study", "create", spec.to_str().unwrap()], store);
    assert_success(&created);
    assert!(stdout(&created).contains("created in") && stdout(&created).contains("4 trials"));
    let again = regstudy(&["study", "create", spec.to_str().unwrap()], store);
    assert_success(&again);
    assert!(stdout(&again).contains("unchanged"), "{}", stdout(&again));
    let changed = write_spec(dir, "shared", "0.002");
    let refused = regstudy(&["study", "create", changed.to_str().unwrap()], store);
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains("different spec"),
        "{}",
        stderr(&refused)
    );

    let work = || {
        common::regstudy()
            .args(["study", "work", "shared", "--quiet", "--threads", "1"])
            .args(["--store", store])
            .env("REGSTUDY_OFFLINE", "1")
            .spawn()
            .unwrap()
    };
    let (mut a, mut b) = (work(), work());
    assert!(a.wait().unwrap().success());
    assert!(b.wait().unwrap().success());
    results(store, "shared")
}

#[test]
fn workers_that_know_only_the_name_and_a_sqlite_store_finish_a_created_study() {
    let dir = Scratch::new("work-sqlite");
    let store = dir.path("studies.db").display().to_string();
    let accuracies = create_then_work_in_two_processes(&dir, &store);
    assert_eq!(accuracies.len(), 4);
    assert!(accuracies.values().all(|&acc| acc > 0.5), "{accuracies:?}");
}

#[test]
fn a_study_worked_through_postgresql_gives_the_results_of_one_run_on_sqlite() {
    let Some(database) = PostgresDatabase::new("work") else {
        return;
    };
    let dir = Scratch::new("work-postgres");
    let on_postgres = create_then_work_in_two_processes(&dir, &database.url);

    let alone = Scratch::new("work-postgres-alone");
    let spec = write_spec(&alone, "shared", "0.001");
    let sqlite = alone.path("studies.db").display().to_string();
    let run = regstudy(
        &[
            "study",
            "run",
            "--quiet",
            "--threads",
            "1",
            spec.to_str().unwrap(),
        ],
        &sqlite,
    );
    assert_success(&run);
    assert_eq!(on_postgres, results(&sqlite, "shared"));

    let status = regstudy(&["study", "status", "shared"], &database.url);
    assert_success(&status);
    assert!(stdout(&status).contains("shared"), "{}", stdout(&status));
    let password = database.url.split_once(':').and_then(|(_, rest)| {
        let userinfo = rest.trim_start_matches('/').split('@').next()?;
        userinfo.split_once(':').map(|(_, p)| p.to_string())
    });
    if let Some(password) = password {
        assert!(!stdout(&status).contains(&password) && !stderr(&status).contains(&password));
    }
}
