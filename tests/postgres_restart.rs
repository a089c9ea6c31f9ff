//! The PostgreSQL server restarted in the middle of a study: the worker reconnects and the
//! study finishes with every trial done once. In a test binary of its own, because the restart
//! drops every connection to the server. Runs when `REGSTUDY_TEST_POSTGRES` names a server and
//! `REGSTUDY_TEST_POSTGRES_RESTART` the command that restarts it
//! (`tools/services/postgres.sh restart`, as CI sets it).

mod common;

use common::{PostgresDatabase, Scratch, DATA};
use regstudy::store;
use regstudy::trial::TrialState;
use std::time::{Duration, Instant};

#[test]
fn a_server_restart_during_a_study_loses_no_trial_and_runs_none_twice() {
    let Some(restart) = common::required_service("REGSTUDY_TEST_POSTGRES_RESTART") else {
        return;
    };
    let Some(database) = PostgresDatabase::new("restart") else {
        return;
    };
    let dir = Scratch::new("postgres-restart");
    let spec = dir.write(
        "study.toml",
        format!(
            r#"name = "restart"
seeds = 3
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
"#,
            runs = dir.join("runs").display()
        )
        .as_bytes(),
    );
    let worker = common::regstudy()
        .args(["study", "run", "--quiet", "--threads", "1"])
        .arg(&spec)
        .args(["--store", &database.url])
        .env("REGSTUDY_OFFLINE", "1")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();

    // Restart once the first epoch of the study is recorded, while trials are running.
    let store = wait_for_store(&database.url);
    let start = Instant::now();
    while !first_epoch_recorded(store.as_ref()) {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "no epoch recorded"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(store);
    let restarted = std::process::Command::new("sh")
        .args(["-c", &restart])
        .status()
        .unwrap();
    assert!(restarted.success(), "{restart} failed");

    let output = worker.wait_with_output().unwrap();
    let messages = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{messages}");
    let store = store::open_existing(&database.url).unwrap();
    let trials = store.trials("restart").unwrap();
    assert_eq!(trials.len(), 3);
    assert!(
        trials.iter().all(|t| t.state == TrialState::Done),
        "{trials:?}"
    );
    assert_eq!(
        store.claims("restart").unwrap().len(),
        3,
        "each trial claimed once"
    );
    for trial in &trials {
        let epochs: Vec<usize> = store
            .epochs(trial.id)
            .unwrap()
            .iter()
            .map(|m| m.epoch)
            .collect();
        assert_eq!(epochs, [1, 2, 3], "trial {}", trial.trial.number);
    }
}

/// The store, once the study run has created it.
fn wait_for_store(url: &str) -> Box<dyn store::Store> {
    let start = Instant::now();
    loop {
        if let Ok(store) = store::open_existing(url) {
            if store.study("restart").is_ok() {
                return store;
            }
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the study was never created"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn first_epoch_recorded(store: &dyn store::Store) -> bool {
    store
        .trials("restart")
        .unwrap()
        .iter()
        .any(|t| !store.epochs(t.id).unwrap().is_empty())
}
