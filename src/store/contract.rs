//! The [`Store`] contract, one suite run against every store: SQLite always, PostgreSQL when
//! `REGSTUDY_TEST_POSTGRES` names a database server (a URL whose role may create databases;
//! each test makes its own database and drops it). With `REGSTUDY_REQUIRE_SERVICES=1`, as CI
//! sets it, a missing server fails the PostgreSQL tests instead of skipping them.
//!
//! Tests that need several processes run this test binary again, with `--ignored --exact`
//! naming a helper test and the store in `REGSTUDY_CONTRACT_STORE`.

use super::{open, Claim, Created, Outcome, StartReason, Store, StoreError, TrainingStart, Worker};
use crate::regularize::{SparsityReport, WeightHistogram};
use crate::train::{EpochMetrics, RunConfig, Summary};
use crate::trial::{NewTrial, Phase, StudyRecord, TrialState};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

pub(super) const FOREVER: Duration = Duration::from_secs(3600);

/// `n` trials of study `s`, numbered from 0.
pub(super) fn new_trials(n: usize) -> Vec<NewTrial> {
    (0..n)
        .map(|number| NewTrial {
            number,
            group: if number % 2 == 0 { "mnist" } else { "" }.into(),
            method: "l1".into(),
            point: BTreeMap::from([("l1".to_string(), serde_json::json!(1e-4))]),
            seed: (number % 3) as u64,
            phase: Phase::Search,
            config: RunConfig {
                dataset: "mnist".into(),
                model: "simple-cnn".into(),
                seed: number as u64,
                l1: Some(1e-4),
                ..Default::default()
            },
        })
        .collect()
}

/// Study `s` with spec text `spec`.
pub(super) fn study_record(spec: &str) -> StudyRecord {
    StudyRecord {
        name: "s".into(),
        spec: spec.into(),
        created_at: 1.7e9,
        version: "0.1.0".into(),
    }
}

/// Metrics of `epoch` with training and validation loss `loss`.
pub(crate) fn metrics(epoch: usize, loss: f64) -> EpochMetrics {
    EpochMetrics {
        epoch,
        train_data_loss: loss,
        train_penalty: 0.0,
        train_loss: loss,
        train_acc: 0.5,
        val_loss: Some(loss),
        val_acc: None,
        gap_loss: None,
        gap_acc: None,
        train_eval_loss: None,
        train_eval_acc: None,
        eval_gap_acc: None,
        eval_gap_loss: None,
        lr: 0.01,
        seconds: 1.0,
        train_seconds: 0.9,
        images_per_s: 1000.0,
        threads: Some(1),
        sparsity: SparsityReport::default(),
    }
}

/// A trial stopped by the pruning rule at epoch 1.
pub(super) fn pruned() -> Outcome {
    Outcome {
        state: TrialState::Pruned,
        summary: None,
        message: Some("pruned at epoch 1".into()),
        histogram: None,
    }
}

pub(super) fn done() -> Outcome {
    Outcome {
        state: TrialState::Done,
        summary: Some(Summary {
            status: "completed".into(),
            message: None,
            test_acc: Some(0.9),
            test_loss: Some(0.3),
            best_val_acc: Some(0.91),
            best_val_loss: Some(0.29),
            best_epoch: Some(2),
            tested_epoch: Some(2),
            epochs_run: 2,
            mean_epoch_seconds: 1.5,
            mean_train_seconds: 0.9,
            sparsity: SparsityReport::default(),
            seed: 0,
            threads: 1,
            version: "0.1.0".into(),
            classes: 10,
        }),
        message: None,
        histogram: Some(WeightHistogram::of([&[0.0f32, 0.5][..]])),
    }
}

/// A pid with no process on this host, or `None` without `/proc`.
pub(super) fn dead_pid() -> Option<u32> {
    if !Path::new("/proc/self").exists() {
        return None;
    }
    (1u32 << 30..).find(|pid| !Path::new(&format!("/proc/{pid}")).exists())
}

/// The store a test runs against.
#[derive(Clone, Copy, Debug)]
enum Kind {
    Sqlite,
    Postgres,
}

/// A fresh, empty store for one test, removed when dropped.
struct Fixture {
    /// What [`open`] takes.
    location: String,
    cleanup: Cleanup,
}

enum Cleanup {
    Folder(PathBuf),
    Database { admin: String, name: String },
}

/// The server that PostgreSQL tests use, or `None` (the test is skipped) when none is named.
fn postgres_admin_url() -> Option<String> {
    match std::env::var("REGSTUDY_TEST_POSTGRES") {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var("REGSTUDY_REQUIRE_SERVICES").is_ok_and(|v| v == "1") => {
            panic!("REGSTUDY_REQUIRE_SERVICES=1 but REGSTUDY_TEST_POSTGRES names no server")
        }
        _ => {
            eprintln!("skipped: REGSTUDY_TEST_POSTGRES names no PostgreSQL server");
            None
        }
    }
}

/// `url` with its database replaced by `db`.
pub(super) fn with_database(url: &str, db: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let slash = base[scheme_end..].find('/').map(|i| i + scheme_end);
    let root = slash.map_or(base, |i| &base[..i]);
    match query {
        Some(q) => format!("{root}/{db}?{q}"),
        None => format!("{root}/{db}"),
    }
}

/// A synchronous client for the server's administration: creating and dropping test
/// databases, and SQL written by hand.
pub(super) fn raw_client(url: &str) -> ::postgres::Client {
    let parsed = super::PostgresUrl::parse(url, std::env::var("PGPASSWORD").ok()).unwrap();
    let mut config = ::postgres::Config::new();
    config
        .user(&parsed.user)
        .host(&parsed.host)
        .port(parsed.port)
        .dbname(&parsed.dbname);
    if let Some(p) = &parsed.password {
        config.password(p);
    }
    config.connect(::postgres::NoTls).unwrap()
}

impl Fixture {
    fn new(kind: Kind, test: &str) -> Option<Fixture> {
        let unique = format!("{test}_{}", std::process::id());
        match kind {
            Kind::Sqlite => {
                let dir = std::env::temp_dir().join(format!("regstudy-contract-{unique}"));
                let _ = std::fs::remove_dir_all(&dir);
                std::fs::create_dir_all(&dir).unwrap();
                Some(Fixture {
                    location: dir.join("store.db").display().to_string(),
                    cleanup: Cleanup::Folder(dir),
                })
            }
            Kind::Postgres => {
                let admin = postgres_admin_url()?;
                let name = format!("regstudy_test_{unique}");
                let mut client = raw_client(&admin);
                client
                    .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .unwrap();
                client
                    .batch_execute(&format!("CREATE DATABASE {name}"))
                    .unwrap();
                Some(Fixture {
                    location: with_database(&admin, &name),
                    cleanup: Cleanup::Database { admin, name },
                })
            }
        }
    }

    fn open(&self) -> Box<dyn Store> {
        open(&self.location).unwrap()
    }

    /// A store holding study `s` with `n` trials.
    fn with_study(&self, n: usize) -> Box<dyn Store> {
        let store = self.open();
        let created = store.create_study(&study_record("spec"), &new_trials(n));
        assert_eq!(created.unwrap(), Created::New);
        store
    }

    /// Runs `sql` on the store's database directly, as a person at a SQL prompt would;
    /// the database's error message if it refused.
    fn execute_by_hand(&self, sql: &str) -> Result<(), String> {
        match &self.cleanup {
            Cleanup::Folder(_) => {
                let conn = rusqlite::Connection::open(&self.location).unwrap();
                conn.execute_batch(sql).map_err(|e| e.to_string())
            }
            Cleanup::Database { .. } => {
                let mut client = raw_client(&self.location);
                client
                    .batch_execute(&format!("SET search_path TO regstudy; {sql}"))
                    .map_err(|e| {
                        e.as_db_error()
                            .map_or(e.to_string(), |d| d.message().into())
                    })
            }
        }
    }

    /// Runs the ignored helper test `helper` in `n` processes at once, with the store's
    /// location in their environment; each process's standard output.
    fn in_processes(&self, helper: &str, n: usize) -> Vec<String> {
        let exe = std::env::current_exe().unwrap();
        let children: Vec<_> = (0..n)
            .map(|_| {
                Command::new(&exe)
                    .args([
                        "--ignored",
                        "--exact",
                        "--nocapture",
                        "--test-threads=1",
                        helper,
                    ])
                    .env("REGSTUDY_CONTRACT_STORE", &self.location)
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        children
            .into_iter()
            .map(|child| {
                let out = child.wait_with_output().unwrap();
                let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
                assert!(
                    out.status.success(),
                    "{helper}: {stdout}{}",
                    String::from_utf8_lossy(&out.stderr)
                );
                stdout
            })
            .collect()
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        match &self.cleanup {
            Cleanup::Folder(dir) => {
                let _ = std::fs::remove_dir_all(dir);
            }
            Cleanup::Database { admin, name } => {
                let mut client = raw_client(admin);
                let _ =
                    client.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
            }
        }
    }
}

/// The word after `key` in a helper process's output (which the test harness may print on the
/// line of the test's name).
fn reported<'a>(out: &'a str, key: &str) -> Option<&'a str> {
    let mut words = out.split_whitespace();
    words.find(|w| *w == key)?;
    words.next()
}

/// A worker of a process on another host, so that only its heartbeat can condemn it.
fn remote_worker(index: usize) -> Worker {
    Worker {
        name: format!("elsewhere:7:1:{index}"),
        host: "elsewhere".into(),
        pid: 7,
    }
}

/// Claims with `worker` and finishes each claimed trial, until nothing is left; the
/// trials' numbers.
fn claim_and_finish_all(store: &dyn Store, worker: &Worker) -> Vec<usize> {
    let mut numbers = Vec::new();
    while let Some(trial) = store.claim("s", worker, FOREVER).unwrap() {
        store.finish(trial.id, worker, &done()).unwrap();
        numbers.push(trial.trial.number);
    }
    numbers
}

/// Every trial of study `s` was claimed exactly once and is done.
fn assert_each_trial_claimed_once(store: &dyn Store, n: usize) {
    let claims: Vec<Claim> = store.claims("s").unwrap();
    let ids: BTreeSet<i64> = claims.iter().map(|c| c.trial).collect();
    assert_eq!(claims.len(), n, "one claim per trial");
    assert_eq!(ids.len(), n, "no trial claimed twice");
    let counts = store.counts("s").unwrap();
    assert_eq!(counts[&TrialState::Done], n, "{counts:?}");
}

fn created_trials_read_back_and_creating_again_changes_nothing(kind: Kind) {
    let Some(fixture) = Fixture::new(kind, "created") else {
        return;
    };
    let store = fixture.with_study(5);
    let trials = store.trials("s").unwrap();
    assert_eq!(trials.len(), 5);
    for (stored, given) in trials.iter().zip(new_trials(5)) {
        assert_eq!(stored.trial, given);
        assert_eq!((stored.state, stored.attempts), (TrialState::Waiting, 0));
        assert_eq!(
            stored.heartbeat_age, None,
            "only a running trial has a heartbeat"
        );
    }
    let again = store.create_study(&study_record("spec"), &new_trials(7));
    assert_eq!(again.unwrap(), Created::Existing);
    assert_eq!(store.trials("s").unwrap().len(), 5, "nothing added");
    let changed = store.create_study(&study_record("another spec"), &new_trials(5));
    assert!(matches!(changed, Err(StoreError::SpecChanged { .. })));
    let missing = store.trials("t").unwrap_err().to_string();
    assert!(
        missing.contains("no study `t`") && missing.contains("it has: s"),
        "{missing}"
    );
}

fn threads_with_their_own_connections_never_claim_the_same_trial(kind: Kind) {
    let Some(fixture) = Fixture::new(kind, "threads") else {
        return;
    };
    let store = fixture.with_study(200);
    let claimed: Vec<usize> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..8)
            .map(|i| {
                let fixture = &fixture;
                scope.spawn(move || {
                    let own = fixture.open();
                    claim_and_finish_all(own.as_ref(), &Worker::of_this_process(i))
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    assert_eq!(claimed.len(), 200);
    assert_each_trial_claimed_once(store.as_ref(), 200);
}

fn processes_never_claim_the_same_trial(kind: Kind) {
    let Some(fixture) = Fixture::new(kind, "processes") else {
        return;
    };
    let store = fixture.with_study(200);
    let outputs = fixture.in_processes("store::contract::claimer_process", 3);
    let claimed: usize = outputs
        .iter()
        .map(|out| {
            reported(out, "claimed")
                .and_then(|n| n.parse::<usize>().ok())
                .expect("the helper says how many it claimed")
        })
        .sum();
    assert_eq!(claimed, 200);
    assert_each_trial_claimed_once(store.as_ref(), 200);
}

/// Run by [`processes_never_claim_the_same_trial`]: four threads of this process claim and
/// finish trials of the store in `REGSTUDY_CONTRACT_STORE` until none is left.
#[test]
#[ignore = "a helper that other tests run in processes of their own"]
fn claimer_process() {
    let location = std::env::var("REGSTUDY_CONTRACT_STORE").unwrap();
    let claimed: usize = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..4)
            .map(|i| {
                let location = &location;
                scope.spawn(move || {
                    let store = open(location).unwrap();
                    claim_and_finish_all(store.as_ref(), &Worker::of_this_process(i)).len()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).sum()
    });
    println!("claimed {claimed}");
}

fn schema_creation_raced_by_four_processes_makes_one_store(kind: Kind) {
    let Some(fixture) = Fixture::new(kind, "race") else {
        return;
    };
    let outputs = fixture.in_processes("store::contract::opener_process", 4);
    let ids: BTreeSet<&str> = outputs
        .iter()
        .filter_map(|out| reported(out, "store"))
        .collect();
    assert_eq!(ids.len(), 1, "{outputs:?}");
    let created: Vec<&str> = outputs
        .iter()
        .filter_map(|out| reported(out, "created"))
        .collect();
    assert_eq!(created.len(), 4, "{outputs:?}");
    assert_eq!(
        created.iter().filter(|c| **c == "New").count(),
        1,
        "{created:?}"
    );
    assert_eq!(fixture.open().trials("s").unwrap().len(), 10);
}

/// Run by [`schema_creation_raced_by_four_processes_makes_one_store`]: opens the store in
/// `REGSTUDY_CONTRACT_STORE` and creates study `s`.
#[test]
#[ignore = "a helper that other tests run in processes of their own"]
fn opener_process() {
    let location = std::env::var("REGSTUDY_CONTRACT_STORE").unwrap();
    let store = open(&location).unwrap();
    let created = store
        .create_study(&study_record("spec"), &new_trials(10))
        .unwrap();
    println!("store {}", store.identity().id);
    println!("created {created:?}");
}

fn a_stale_trial_is_taken_over_and_its_old_holder_cannot_write(kind: Kind) {
    let Some(fixture) = Fixture::new(kind, "stale") else {
        return;
    };
    let store = fixture.with_study(1);
    let (old, new) = (remote_worker(0), Worker::of_this_process(0));
    let trial = store.claim("s", &old, FOREVER).unwrap().unwrap();
    store
        .record_epoch(trial.id, &old, &metrics(1, 0.5))
        .unwrap();
    let age = store.trials("s").unwrap()[0].heartbeat_age;
    assert!(
        age.is_some_and(|age| (-1.0..60.0).contains(&age)),
        "{age:?}"
    );
    assert!(
        store.claim("s", &new, FOREVER).unwrap().is_none(),
        "a live holder keeps it"
    );
    std::thread::sleep(Duration::from_millis(50));
    let taken = store
        .claim("s", &new, Duration::from_millis(10))
        .unwrap()
        .unwrap();
    assert_eq!((taken.id, taken.attempts), (trial.id, 2));
    let refused = store.record_epoch(trial.id, &old, &metrics(2, 0.4));
    assert!(
        matches!(&refused, Err(StoreError::Trial { message, .. }) if message.contains("held by")),
        "{refused:?}"
    );
    let restart = TrainingStart {
        from_epoch: 0,
        discarded_epochs: 1,
        reason: StartReason::NoCheckpoint,
    };
    assert!(store.record_start(trial.id, &old, &restart).is_err());
    store.record_start(trial.id, &new, &restart).unwrap();
    let again = store.record_start(trial.id, &new, &restart);
    assert!(again.is_err(), "a claim has one start: {again:?}");
    assert!(store.finish(trial.id, &old, &done()).is_err());
    store.finish(trial.id, &new, &done()).unwrap();
    let audit: Vec<(String, Option<TrainingStart>)> = store
        .claims("s")
        .unwrap()
        .into_iter()
        .map(|c| (c.worker, c.start))
        .collect();
    assert_eq!(
        audit,
        [(old.name, None), (new.name, Some(restart))],
        "the audit shows the takeover and where it began"
    );
}

fn a_trial_of_a_dead_process_on_this_host_is_claimed_at_once(kind: Kind) {
    let (Some(fixture), Some(pid)) = (Fixture::new(kind, "dead"), dead_pid()) else {
        return;
    };
    let store = fixture.with_study(1);
    let me = Worker::of_this_process(0);
    let dead = Worker {
        name: format!("{}:{pid}:1:0", me.host),
        host: me.host.clone(),
        pid,
    };
    let trial = store.claim("s", &dead, FOREVER).unwrap().unwrap();
    let taken = store.claim("s", &me, FOREVER).unwrap().unwrap();
    assert_eq!(taken.id, trial.id);
}

fn finished_trials_epochs_and_claims_refuse_hand_written_changes(kind: Kind) {
    let Some(fixture) = Fixture::new(kind, "immutable") else {
        return;
    };
    let store = fixture.with_study(2);
    let worker = Worker::of_this_process(0);
    let trial = store.claim("s", &worker, FOREVER).unwrap().unwrap();
    let start = TrainingStart {
        from_epoch: 0,
        discarded_epochs: 0,
        reason: StartReason::First,
    };
    store.record_start(trial.id, &worker, &start).unwrap();
    store
        .record_epoch(trial.id, &worker, &metrics(1, 0.5))
        .unwrap();
    store.finish(trial.id, &worker, &done()).unwrap();
    let id = trial.id;
    for (sql, refusal) in [
        (
            format!("UPDATE trials SET state = 'waiting' WHERE id = {id}"),
            "finished trial",
        ),
        (
            format!("DELETE FROM trials WHERE id = {id}"),
            "finished trial",
        ),
        (
            format!("UPDATE epochs SET metrics = '{{}}' WHERE trial = {id}"),
            "epochs",
        ),
        (format!("DELETE FROM epochs WHERE trial = {id}"), "epochs"),
        (
            format!("INSERT INTO epochs (trial, epoch, metrics) VALUES ({id}, 9, '{{}}')"),
            "epochs",
        ),
        (
            "UPDATE claims SET worker = 'someone else'".to_string(),
            "append-only",
        ),
        ("DELETE FROM claims".to_string(), "append-only"),
        (
            "UPDATE starts SET from_epoch = 3".to_string(),
            "append-only",
        ),
        ("DELETE FROM starts".to_string(), "append-only"),
    ] {
        let e = fixture.execute_by_hand(&sql).unwrap_err();
        assert!(e.contains(refusal), "{sql}: {e}");
    }
    assert_eq!(store.trials("s").unwrap()[0].state, TrialState::Done);
    assert_eq!(store.epochs(id).unwrap(), vec![metrics(1, 0.5)]);
    let claims = store.claims("s").unwrap();
    assert_eq!(claims.len(), 1);
    assert_eq!(claims[0].start, Some(start));
}

fn epochs_are_replaced_while_running_and_forgotten_on_reset(kind: Kind) {
    let Some(fixture) = Fixture::new(kind, "epochs") else {
        return;
    };
    let store = fixture.with_study(1);
    let worker = Worker::of_this_process(0);
    let trial = store.claim("s", &worker, FOREVER).unwrap().unwrap();
    for (epoch, loss) in [(2, 0.4), (1, 0.5), (2, 0.3)] {
        store
            .record_epoch(trial.id, &worker, &metrics(epoch, loss))
            .unwrap();
    }
    assert_eq!(
        store.epochs(trial.id).unwrap(),
        vec![metrics(1, 0.5), metrics(2, 0.3)]
    );
    store.reset_epochs(trial.id, &worker).unwrap();
    assert!(store.epochs(trial.id).unwrap().is_empty());
}

fn a_released_trial_is_claimed_next_with_its_epochs_and_its_attempt_uncounted(kind: Kind) {
    let Some(fixture) = Fixture::new(kind, "release") else {
        return;
    };
    let store = fixture.with_study(2);
    let (first, second) = (remote_worker(0), Worker::of_this_process(0));
    let trial = store.claim("s", &first, FOREVER).unwrap().unwrap();
    store
        .record_epoch(trial.id, &first, &metrics(1, 0.5))
        .unwrap();
    let refused = store.release(trial.id, &second);
    assert!(
        matches!(refused, Err(StoreError::Trial { .. })),
        "{refused:?}"
    );
    store.release(trial.id, &first).unwrap();
    let released = &store.trials("s").unwrap()[0];
    assert_eq!(
        (released.state, released.attempts),
        (TrialState::Waiting, 0)
    );
    assert_eq!(released.worker, None);
    let again = store.claim("s", &second, FOREVER).unwrap().unwrap();
    assert_eq!((again.id, again.attempts), (trial.id, 1));
    assert_eq!(store.epochs(trial.id).unwrap(), vec![metrics(1, 0.5)]);
    assert!(
        store.release(trial.id, &first).is_err(),
        "no longer its holder"
    );
    let workers: Vec<String> = store
        .claims("s")
        .unwrap()
        .into_iter()
        .map(|c| c.worker)
        .collect();
    assert_eq!(workers, [first.name, second.name]);
}

fn a_failed_trial_is_retried_as_a_new_attempt_that_keeps_the_old_one(kind: Kind) {
    let Some(fixture) = Fixture::new(kind, "retry") else {
        return;
    };
    let store = fixture.with_study(2);
    let worker = Worker::of_this_process(0);
    let trial = store.claim("s", &worker, FOREVER).unwrap().unwrap();
    let failed = Outcome {
        state: TrialState::Failed,
        summary: None,
        message: Some("disk full".into()),
        histogram: None,
    };
    store.finish(trial.id, &worker, &failed).unwrap();
    let refused = store.retry("s", &[1]).unwrap_err().to_string();
    assert!(refused.contains("it is waiting"), "{refused}");
    assert_eq!(store.retry("s", &[]).unwrap(), vec![0]);
    let history = store.history("s").unwrap();
    let attempts: Vec<(usize, u32, TrialState)> = history
        .iter()
        .map(|t| (t.trial.number, t.retry, t.state))
        .collect();
    assert_eq!(
        attempts,
        [
            (0, 0, TrialState::Failed),
            (0, 1, TrialState::Waiting),
            (1, 0, TrialState::Waiting)
        ]
    );
    assert_eq!(history[0].message.as_deref(), Some("disk full"));
    assert_eq!(store.trials("s").unwrap().len(), 2, "the latest attempts");
    let again = store.claim("s", &worker, FOREVER).unwrap().unwrap();
    assert_eq!((again.trial.number, again.retry), (0, 1));
}

fn a_copied_study_arrives_with_every_attempt_epoch_and_claim_and_continues_there(kind: Kind) {
    let (Some(source), Some(target)) = (
        Fixture::new(Kind::Sqlite, "copy_from"),
        Fixture::new(kind, "copy_to"),
    ) else {
        return;
    };
    let from = source.with_study(3);
    let worker = Worker::of_this_process(0);
    let claim = || from.claim("s", &worker, FOREVER).unwrap().unwrap();
    let (done_trial, failed_trial, running) = (claim(), claim(), claim());
    let continued = TrainingStart {
        from_epoch: 1,
        discarded_epochs: 0,
        reason: StartReason::Checkpoint,
    };
    from.record_start(done_trial.id, &worker, &continued)
        .unwrap();
    for epoch in [1, 2] {
        from.record_epoch(done_trial.id, &worker, &metrics(epoch, 0.5))
            .unwrap();
    }
    from.finish(done_trial.id, &worker, &done()).unwrap();
    let failed = Outcome {
        state: TrialState::Failed,
        summary: None,
        message: Some("out of memory".into()),
        histogram: None,
    };
    from.finish(failed_trial.id, &worker, &failed).unwrap();
    from.retry("s", &[1]).unwrap();
    from.record_epoch(running.id, &worker, &metrics(1, 0.7))
        .unwrap();

    let to = target.open();
    let copy = super::copy_study(from.as_ref(), to.as_ref(), "s").unwrap();
    assert_eq!(copy.attempts.len(), 4);
    let attempt = |t: &crate::trial::TrialRecord| {
        (
            t.trial.clone(),
            t.retry,
            t.state,
            t.summary.clone(),
            t.message.clone(),
            t.histogram.clone(),
        )
    };
    let copied = to.history("s").unwrap();
    let mut expected: Vec<_> = from.history("s").unwrap().iter().map(attempt).collect();
    expected[3].2 = TrialState::Waiting; // the running attempt arrives waiting
    assert_eq!(copied.iter().map(attempt).collect::<Vec<_>>(), expected);
    assert_eq!(
        to.epochs(copied[0].id).unwrap(),
        vec![metrics(1, 0.5), metrics(2, 0.5)]
    );
    assert_eq!(to.epochs(copied[3].id).unwrap(), vec![metrics(1, 0.7)]);
    let audit = |claims: Vec<Claim>| -> Vec<(String, f64, Option<TrainingStart>)> {
        claims
            .into_iter()
            .map(|c| (c.worker, c.at, c.start))
            .collect()
    };
    let copied_claims = audit(to.claims("s").unwrap());
    assert_eq!(copied_claims, audit(from.claims("s").unwrap()));
    assert_eq!(copied_claims[0].2, Some(continued));
    assert_eq!(to.study("s").unwrap(), from.study("s").unwrap());

    let again = super::copy_study(from.as_ref(), to.as_ref(), "s");
    assert!(matches!(again, Err(StoreError::Exists { .. })), "{again:?}");
    let next = to.claim("s", &worker, FOREVER).unwrap().unwrap();
    assert_eq!((next.trial.number, next.retry), (1, 1));
    to.finish(next.id, &worker, &done()).unwrap();
}

fn a_store_of_the_schema_before_starts_is_upgraded_and_its_claims_have_none(kind: Kind) {
    let Some(fixture) = Fixture::new(kind, "upgrade_starts") else {
        return;
    };
    let store = fixture.with_study(1);
    let worker = Worker::of_this_process(0);
    let trial = store.claim("s", &worker, FOREVER).unwrap().unwrap();
    drop(store);
    let downgrade = match kind {
        Kind::Sqlite => "DROP TABLE starts; PRAGMA user_version = 3;",
        Kind::Postgres => {
            "DROP TABLE starts; UPDATE metadata SET value = '1' WHERE key = 'schema_version';"
        }
    };
    fixture.execute_by_hand(downgrade).unwrap();
    let read_only = super::open_existing(&fixture.location).err().unwrap();
    assert!(read_only.to_string().contains("upgrades it"), "{read_only}");
    let store = fixture.open();
    let claims = store.claims("s").unwrap();
    assert_eq!((claims.len(), claims[0].start), (1, None));
    let start = TrainingStart {
        from_epoch: 2,
        discarded_epochs: 0,
        reason: StartReason::Checkpoint,
    };
    store.record_start(trial.id, &worker, &start).unwrap();
    assert_eq!(store.claims("s").unwrap()[0].start, Some(start));
    let e = fixture.execute_by_hand("DELETE FROM starts").unwrap_err();
    assert!(e.contains("append-only"), "{e}");
}

fn a_pruned_trial_is_finished_and_neither_it_nor_its_epochs_change(kind: Kind) {
    let Some(fixture) = Fixture::new(kind, "pruned") else {
        return;
    };
    let store = fixture.with_study(1);
    let worker = Worker::of_this_process(0);
    let trial = store.claim("s", &worker, FOREVER).unwrap().unwrap();
    store
        .record_epoch(trial.id, &worker, &metrics(1, 0.5))
        .unwrap();
    store.finish(trial.id, &worker, &pruned()).unwrap();
    let id = trial.id;
    for sql in [
        format!("UPDATE trials SET state = 'waiting' WHERE id = {id}"),
        format!("DELETE FROM epochs WHERE trial = {id}"),
        format!("INSERT INTO epochs (trial, epoch, metrics) VALUES ({id}, 2, '{{}}')"),
    ] {
        assert!(fixture.execute_by_hand(&sql).is_err(), "{sql}");
    }
    assert!(store.claim("s", &worker, Duration::ZERO).unwrap().is_none());
    let stored = &store.trials("s").unwrap()[0];
    assert_eq!(
        (stored.state, stored.message.as_deref()),
        (TrialState::Pruned, Some("pruned at epoch 1"))
    );
    assert_eq!(store.counts("s").unwrap()[&TrialState::Pruned], 1);
    assert_eq!(store.epochs(id).unwrap(), vec![metrics(1, 0.5)]);
}

/// Each contract test, once per store.
macro_rules! for_every_store {
    ($($test:ident),* $(,)?) => {
        mod sqlite {
            $(#[test]
            fn $test() {
                super::$test(super::Kind::Sqlite)
            })*
        }
        mod postgres {
            $(#[test]
            fn $test() {
                super::$test(super::Kind::Postgres)
            })*
        }
    };
}

for_every_store!(
    created_trials_read_back_and_creating_again_changes_nothing,
    threads_with_their_own_connections_never_claim_the_same_trial,
    processes_never_claim_the_same_trial,
    schema_creation_raced_by_four_processes_makes_one_store,
    a_stale_trial_is_taken_over_and_its_old_holder_cannot_write,
    a_trial_of_a_dead_process_on_this_host_is_claimed_at_once,
    finished_trials_epochs_and_claims_refuse_hand_written_changes,
    epochs_are_replaced_while_running_and_forgotten_on_reset,
    a_failed_trial_is_retried_as_a_new_attempt_that_keeps_the_old_one,
    a_released_trial_is_claimed_next_with_its_epochs_and_its_attempt_uncounted,
    a_copied_study_arrives_with_every_attempt_epoch_and_claim_and_continues_there,
    a_store_of_the_schema_before_starts_is_upgraded_and_its_claims_have_none,
    a_pruned_trial_is_finished_and_neither_it_nor_its_epochs_change,
);

/// The test server's URL with the host, TLS settings and password replaced; `None` when no
/// server is named.
fn tls_url(fixture: &Fixture, host: &str, password: Option<&str>, query: &str) -> String {
    let url =
        super::PostgresUrl::parse(&fixture.location, std::env::var("PGPASSWORD").ok()).unwrap();
    let password = password.or(url.password.as_deref()).unwrap_or_default();
    format!(
        "postgres://{}:{password}@{host}:{}/{}?{query}",
        url.user, url.port, url.dbname
    )
}

/// Debian's PostgreSQL serves TLS with this self-signed certificate, issued for `localhost`.
const SNAKEOIL: &str = "/etc/ssl/certs/ssl-cert-snakeoil.pem";

/// Opening the store at `url` fails; the message, checked not to contain the password.
fn open_error(url: &str, password: &str) -> String {
    let message = match open(url) {
        Ok(_) => panic!("{url} opened"),
        Err(e) => e.to_string(),
    };
    assert!(!message.contains(password), "{message}");
    message
}

#[test]
fn postgres_verify_full_against_the_servers_certificate_for_localhost_connects() {
    let Some(fixture) = Fixture::new(Kind::Postgres, "tls_ok") else {
        return;
    };
    assert!(Path::new(SNAKEOIL).exists(), "{SNAKEOIL} is missing");
    let url = tls_url(
        &fixture,
        "localhost",
        None,
        &format!("sslmode=verify-full&sslrootcert={SNAKEOIL}"),
    );
    let store = open(&url).unwrap();
    assert!(store.studies().unwrap().is_empty());
    assert!(
        !store.identity().location.contains(":regstudy@"),
        "no password shown"
    );
}

#[test]
fn postgres_a_wrong_ca_a_wrong_host_and_a_wrong_password_fail_without_showing_the_password() {
    let Some(fixture) = Fixture::new(Kind::Postgres, "tls_bad") else {
        return;
    };
    let secret = super::PostgresUrl::parse(&fixture.location, std::env::var("PGPASSWORD").ok())
        .unwrap()
        .password
        .unwrap_or_default();
    let wrong_ca = tls_url(&fixture, "localhost", None, "sslmode=require");
    let message = open_error(&wrong_ca, &secret);
    assert!(
        message.contains("certificate") && message.contains("sslrootcert"),
        "{message}"
    );
    let wrong_host = tls_url(
        &fixture,
        "127.0.0.1",
        None,
        &format!("sslmode=verify-full&sslrootcert={SNAKEOIL}"),
    );
    let message = open_error(&wrong_host, &secret);
    assert!(
        message.contains("certificate") && message.contains("`127.0.0.1`"),
        "{message}"
    );
    let wrong_password = tls_url(
        &fixture,
        "127.0.0.1",
        Some("not-the-Pa55word"),
        "sslmode=disable",
    );
    let message = open_error(&wrong_password, "not-the-Pa55word");
    assert!(message.contains("password"), "{message}");
}
