//! How fast a store hands out trials, and what it costs a trial (a benchmark, not a test):
//! `W` workers, each a thread with its own connection, claim the trials of a fresh study and
//! for each record `E` epochs of metrics and finish it, as `study work` does, without
//! training. Prints claims per second and the store's time per trial.
//!
//!     cargo run --release --example store_throughput -- STORE [WORKERS] [TRIALS] [EPOCHS]
//!
//! STORE is a SQLite path or a postgres:// URL of an empty database (the study `bench` is
//! created in it).

use regstudy::regularize::{SparsityReport, WeightHistogram};
use regstudy::store::{self, Outcome, Worker};
use regstudy::train::{EpochMetrics, RunConfig, Summary};
use regstudy::trial::{NewTrial, Phase, StudyRecord, TrialState};
use std::time::{Duration, Instant};

fn metrics(epoch: usize) -> EpochMetrics {
    EpochMetrics {
        epoch,
        train_data_loss: 0.5,
        train_penalty: 0.01,
        train_loss: 0.51,
        train_acc: 0.8,
        val_loss: Some(0.6),
        val_acc: Some(0.78),
        gap_loss: Some(0.1),
        gap_acc: Some(0.02),
        train_eval_loss: Some(0.5),
        train_eval_acc: Some(0.8),
        eval_gap_acc: Some(0.02),
        eval_gap_loss: Some(0.1),
        lr: 0.001,
        seconds: 25.0,
        train_seconds: 23.0,
        images_per_s: 2000.0,
        threads: Some(1),
        sparsity: SparsityReport::default(),
    }
}

fn outcome() -> Outcome {
    Outcome {
        state: TrialState::Done,
        summary: Some(Summary {
            status: "completed".into(),
            message: None,
            test_acc: Some(0.7),
            test_loss: Some(0.9),
            best_val_acc: Some(0.7),
            best_val_loss: Some(0.9),
            best_epoch: Some(20),
            tested_epoch: Some(20),
            epochs_run: 20,
            mean_epoch_seconds: 25.0,
            mean_train_seconds: 23.0,
            sparsity: SparsityReport::default(),
            seed: 0,
            threads: 2,
            version: env!("CARGO_PKG_VERSION").into(),
            classes: 10,
        }),
        message: None,
        histogram: Some(WeightHistogram::of([&vec![0.01f32; 10_000][..]])),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let location = args
        .first()
        .expect("usage: store_throughput STORE [W] [T] [E]");
    let number = |i: usize, default: usize| args.get(i).map_or(default, |a| a.parse().unwrap());
    let (workers, trials, epochs) = (number(1, 16), number(2, 400), number(3, 20));
    let new_trials: Vec<NewTrial> = (0..trials)
        .map(|number| NewTrial {
            number,
            group: String::new(),
            method: "l1".into(),
            point: [("l1".to_string(), serde_json::json!(1e-4))].into(),
            seed: number as u64,
            phase: Phase::Search,
            config: RunConfig {
                dataset: "mnist".into(),
                model: "simple-cnn".into(),
                seed: number as u64,
                ..Default::default()
            },
        })
        .collect();
    let study = StudyRecord {
        name: "bench".into(),
        spec: "bench".into(),
        created_at: 0.0,
        version: env!("CARGO_PKG_VERSION").into(),
    };
    store::open(location)
        .unwrap()
        .create_study(&study, &new_trials)
        .unwrap();
    let (metrics, outcome) = ((1..=epochs).map(metrics).collect::<Vec<_>>(), outcome());
    let start = Instant::now();
    let per_worker: Vec<(usize, Duration, Duration)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|i| {
                let (metrics, outcome) = (&metrics, &outcome);
                scope.spawn(move || {
                    let store = store::open(location).unwrap();
                    let worker = Worker::of_this_process(i);
                    let (mut claimed, mut claiming, mut recording) =
                        (0, Duration::ZERO, Duration::ZERO);
                    loop {
                        let t = Instant::now();
                        let Some(trial) = store
                            .claim("bench", &worker, Duration::from_secs(600))
                            .unwrap()
                        else {
                            break;
                        };
                        claiming += t.elapsed();
                        let t = Instant::now();
                        for m in metrics {
                            store.record_epoch(trial.id, &worker, m).unwrap();
                            store.heartbeat(&worker).unwrap();
                        }
                        store.finish(trial.id, &worker, outcome).unwrap();
                        recording += t.elapsed();
                        claimed += 1;
                    }
                    (claimed, claiming, recording)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let wall = start.elapsed().as_secs_f64();
    let claimed: usize = per_worker.iter().map(|w| w.0).sum();
    assert_eq!(claimed, trials, "every trial claimed once");
    let claiming: f64 = per_worker.iter().map(|w| w.1.as_secs_f64()).sum();
    let recording: f64 = per_worker.iter().map(|w| w.2.as_secs_f64()).sum();
    let shown = store::open(location).unwrap().identity().location;
    println!("{workers} workers, {trials} trials of {epochs} epochs, store {shown}");
    println!(
        "  {:.0} trials claimed, recorded and finished per second ({wall:.2} s)",
        trials as f64 / wall
    );
    println!(
        "  per trial: claim {:.2} ms; {epochs} epochs + heartbeats + finish {:.1} ms",
        claiming / trials as f64 * 1e3,
        recording / trials as f64 * 1e3
    );
}
