//! `regstudy study create` once, then `regstudy study work` in several processes that know only
//! the study's name and the store: the way a study runs on many machines. On SQLite, and on
//! PostgreSQL when `REGSTUDY_TEST_POSTGRES` names a server.

mod common;

use common::{assert_success, stderr, stdout, PostgresDatabase, Scratch, DATA};
use regstudy::store::{self, StartReason, TrainingStart};
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

/// Each trial's test accuracy by number, after checking that every trial is done.
fn results(store: &str, study: &str) -> BTreeMap<usize, f64> {
    let store = store::open_existing(store).unwrap();
    store
        .trials(study)
        .unwrap()
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
    let opened = store::open_existing(store).unwrap();
    assert_eq!(
        opened.claims("shared").unwrap().len(),
        4,
        "one claim per trial"
    );
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

/// One trial of three epochs on 3000 MNIST images.
fn write_one_trial_spec(dir: &Path) -> PathBuf {
    let spec = format!(
        r#"name = "one"
seeds = 1
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
    );
    let path = dir.join("one.toml");
    std::fs::write(&path, spec).unwrap();
    path
}

/// Creates the one-trial study in a SQLite store in `dir`, starts a worker on it and sends
/// it SIGTERM once the trial runs; the store's location once the worker has handed the trial
/// back.
fn hand_back_mid_trial(dir: &Scratch) -> String {
    let spec = write_one_trial_spec(dir);
    let store = dir.path("studies.db").display().to_string();
    assert_success(&regstudy(
        &["study", "create", spec.to_str().unwrap()],
        &store,
    ));
    let worker = common::regstudy()
        .args([
            "study",
            "work",
            "one",
            "--quiet",
            "--threads",
            "1",
            "--store",
            &store,
        ])
        .env("REGSTUDY_OFFLINE", "1")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    let trial_started = || {
        let opened = store::open_existing(&store).ok()?;
        let trial = opened.trials("one").ok()?.into_iter().next()?;
        (trial.state == TrialState::Running).then_some(())
    };
    while trial_started().is_none() {
        assert!(start.elapsed().as_secs() < 60, "the trial never started");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // SAFETY: kill(2) on the child's pid, which this test owns and has not reaped.
    unsafe {
        libc::kill(worker.id() as libc::pid_t, libc::SIGTERM);
    }
    let stopped = worker.wait_with_output().unwrap();
    assert!(!stopped.status.success());
    assert!(
        stderr(&stopped).contains("stopped by signal 15"),
        "{}",
        stderr(&stopped)
    );
    store
}

/// `study work` on the one-trial study by a worker that finds the run folders under
/// `runs_dir`, as a machine mounting the shared storage there would.
fn work_with_runs_dir(store: &str, runs_dir: &Path) -> Output {
    regstudy(
        &[
            "study",
            "work",
            "one",
            "--quiet",
            "--threads",
            "1",
            "--runs-dir",
            runs_dir.to_str().unwrap(),
        ],
        store,
    )
}

/// The one-trial study's test accuracy, run on one machine without interruption (in a
/// scratch folder named after `test`).
fn uninterrupted_result(test: &str) -> BTreeMap<usize, f64> {
    let alone = Scratch::new(&format!("{test}-alone"));
    let spec = write_one_trial_spec(&alone);
    let reference = alone.path("studies.db").display().to_string();
    let run = regstudy(
        &[
            "study",
            "run",
            "--quiet",
            "--threads",
            "1",
            spec.to_str().unwrap(),
        ],
        &reference,
    );
    assert_success(&run);
    results(&reference, "one")
}

/// Where each claim of the study's trials began training.
fn starts(store: &str) -> Vec<Option<TrainingStart>> {
    store::open_existing(store)
        .unwrap()
        .claims("one")
        .unwrap()
        .into_iter()
        .map(|c| c.start)
        .collect()
}

#[test]
fn a_worker_sent_sigterm_hands_its_trial_back_after_the_epoch_and_the_next_continues_it() {
    let dir = Scratch::new("work-sigterm");
    let store = hand_back_mid_trial(&dir);
    let opened = store::open_existing(&store).unwrap();
    let trial = opened.trials("one").unwrap().remove(0);
    assert_eq!((trial.state, trial.attempts), (TrialState::Waiting, 0));
    let before = opened.epochs(trial.id).unwrap();
    assert!(
        (1..3).contains(&before.len()),
        "{} epochs recorded before the hand-back",
        before.len()
    );
    drop(opened);

    // The next worker sees the same run folders under another path, as another machine
    // mounting the shared storage elsewhere would.
    let mount = dir.path("elsewhere");
    std::os::unix::fs::symlink(dir.join("runs"), &mount).unwrap();
    let resumed = work_with_runs_dir(&store, &mount);
    assert_success(&resumed);
    let opened = store::open_existing(&store).unwrap();
    let after = opened.epochs(trial.id).unwrap();
    assert_eq!(after.len(), 3);
    assert_eq!(
        after[..before.len()],
        before[..],
        "continued from the checkpoint, not redone"
    );
    drop(opened);
    assert_eq!(
        starts(&store),
        [
            Some(TrainingStart {
                from_epoch: 0,
                discarded_epochs: 0,
                reason: StartReason::First,
            }),
            Some(TrainingStart {
                from_epoch: before.len(),
                discarded_epochs: 0,
                reason: StartReason::Checkpoint,
            }),
        ],
        "claimed, handed back, claimed again and continued"
    );
    assert_eq!(
        results(&store, "one"),
        uninterrupted_result("work-sigterm"),
        "the same result as uninterrupted"
    );
}

#[test]
fn a_trial_taken_over_where_its_run_folder_is_not_seen_restarts_from_epoch_zero_on_record() {
    let dir = Scratch::new("work-unseen");
    let store = hand_back_mid_trial(&dir);
    let recorded = {
        let opened = store::open_existing(&store).unwrap();
        let trial = opened.trials("one").unwrap().remove(0);
        opened.epochs(trial.id).unwrap().len()
    };
    assert!(recorded > 0, "an epoch was recorded before the hand-back");

    // Another machine, whose storage holds none of the first worker's run folders.
    let elsewhere = dir.path("other-machine");
    let resumed = work_with_runs_dir(&store, &elsewhere);
    assert_success(&resumed);
    let restart = TrainingStart {
        from_epoch: 0,
        discarded_epochs: recorded,
        reason: StartReason::NoCheckpoint,
    };
    assert_eq!(starts(&store)[1], Some(restart));
    let opened = store::open_existing(&store).unwrap();
    let trial = opened.trials("one").unwrap().remove(0);
    assert_eq!(
        (trial.state, opened.epochs(trial.id).unwrap().len()),
        (TrialState::Done, 3)
    );
    let status = regstudy(&["study", "status", "one"], &store);
    assert_success(&status);
    assert!(
        stdout(&status).contains("claim 2 of trial 0, by ")
            && stdout(&status).contains(&restart.to_string()),
        "{}",
        stdout(&status)
    );
    assert_eq!(
        results(&store, "one"),
        uninterrupted_result("work-unseen"),
        "trained again from the seed, the same result"
    );
}
