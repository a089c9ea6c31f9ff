//! ASHA on fixture studies whose validation curves are known, driven through a real SQLite
//! store the way workers drive it: claim, judge before training, record each epoch and
//! judge it, finish. No network is trained.

use super::*;
use crate::store::{self, Outcome, Worker};
use crate::study::select::{choose, PointScore};
use crate::trial::StudyRecord;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A store in a scratch folder, removed at the end.
struct Scratch(PathBuf);

impl Scratch {
    fn new(test: &str) -> Scratch {
        let dir =
            std::env::temp_dir().join(format!("regstudy-prune-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    fn store(&self) -> Box<dyn Store> {
        store::open(self.0.join("store.db").to_str().unwrap()).unwrap()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A study of a baseline and a method with `points` grid points, `seeds` seeds and 4 epochs,
/// pruned by ASHA from epoch 1 with reduction 2 (rungs at epochs 1 and 2).
fn spec(points: usize, seeds: usize) -> StudySpec {
    let strengths: Vec<String> = (0..points).map(|k| format!("1e-{}", k + 2)).collect();
    let text = format!(
        r#"name = "asha"
seeds = {seeds}
prune = {{ rule = "asha", min_epochs = 1, reduction = 2 }}

[base]
dataset = "mnist"
model = "simple-cnn"
epochs = 4

[[method]]
name = "none"

[[method]]
name = "l2"
set = {{ penalty = "l2" }}
grid = {{ l2 = [{}] }}
"#,
        strengths.join(", ")
    );
    StudySpec::parse_unchecked(&text, Path::new("asha.toml")).unwrap()
}

/// The study created in `store` with only its search trials of method `l2`, numbered so
/// that they are claimed in `order` (of point and seed); returns them in that order.
fn create(store: &dyn Store, spec: &StudySpec, order: &[(usize, u64)]) -> Vec<TrialRecord> {
    let record = StudyRecord {
        name: spec.name.clone(),
        spec: "fixture".into(),
        created_at: 1.7e9,
        version: "test".into(),
    };
    let points = &spec.method("l2").unwrap().points;
    let mut trials = Vec::new();
    for (number, &(point, seed)) in order.iter().enumerate() {
        let mut trial = spec
            .trials()
            .into_iter()
            .find(|t| {
                t.method == "l2"
                    && t.seed == seed
                    && t.point["l2"].as_f64() == points[point]["l2"].as_float()
            })
            .unwrap();
        trial.number = number;
        trials.push(trial);
    }
    store.create_study(&record, &trials).unwrap();
    store.trials(&spec.name).unwrap()
}

/// Every point on every seed, by point then seed.
fn every_trial(points: usize, seeds: u64) -> Vec<(usize, u64)> {
    (0..points)
        .flat_map(|p| (0..seeds).map(move |s| (p, s)))
        .collect()
}

/// Claims and works on trials until none is left, as one worker; each trial runs to its
/// end or its pruning before the next is claimed.
fn work_through(pruner: &Pruner, store: &dyn Store, worker: &Worker, levels: &[f64]) {
    while let Some(t) = store
        .claim("asha", worker, Duration::from_secs(60))
        .unwrap()
    {
        work_on(pruner, store, worker, &t, levels, Duration::ZERO);
    }
}

/// The validation accuracy of grid point `point` at `epoch`: a fixed level per point that
/// rises by one point per epoch, so points rank alike at every epoch.
fn accuracy(levels: &[f64], point: usize, epoch: usize) -> f64 {
    levels[point] + 0.01 * epoch as f64
}

/// Metrics of `epoch` whose validation accuracy is `val_acc`.
fn metrics(epoch: usize, val_acc: f64) -> EpochMetrics {
    EpochMetrics {
        val_acc: Some(val_acc),
        val_loss: Some(1.0 - val_acc),
        ..crate::store::contract::metrics(epoch, 1.0)
    }
}

/// The grid point of a trial: its index in the method's points.
fn point_of(spec: &StudySpec, trial: &TrialRecord) -> usize {
    let points = &spec.method("l2").unwrap().points;
    let value = &trial.trial.point["l2"];
    points
        .iter()
        .position(|p| p["l2"].as_float() == value.as_f64())
        .unwrap()
}

/// Does what a worker does with a claimed trial: judged before training, then each epoch
/// recorded and judged; finished `pruned` or `done`. Returns whether it was pruned.
fn work_on(
    pruner: &Pruner,
    store: &dyn Store,
    worker: &Worker,
    trial: &TrialRecord,
    levels: &[f64],
    pause: Duration,
) -> bool {
    let point = point_of(pruner.spec, trial);
    let mut judgement = pruner.judge(trial, 0).unwrap();
    let epochs = trial.trial.config.epochs;
    for epoch in 1..=epochs {
        if judgement != Judgement::GoesOn {
            break;
        }
        std::thread::sleep(pause);
        let m = metrics(epoch, accuracy(levels, point, epoch));
        store.record_epoch(trial.id, worker, &m).unwrap();
        if epoch < epochs {
            judgement = pruner.judge(trial, epoch).unwrap();
        }
    }
    let outcome = match judgement {
        Judgement::GoesOn => Outcome {
            state: TrialState::Done,
            summary: None,
            message: None,
            histogram: None,
        },
        Judgement::Pruned(message) => Outcome {
            state: TrialState::Pruned,
            summary: None,
            message: Some(message),
            histogram: None,
        },
    };
    let pruned = outcome.state == TrialState::Pruned;
    store.finish(trial.id, worker, &outcome).unwrap();
    pruned
}

/// The points, by index, whose trials the rule stopped.
fn pruned_points(spec: &StudySpec, store: &dyn Store) -> BTreeSet<usize> {
    store
        .trials(&spec.name)
        .unwrap()
        .iter()
        .filter(|t| t.state == TrialState::Pruned)
        .map(|t| point_of(spec, t))
        .collect()
}

/// The rule written out for trials that reach the rungs one after another, each running to
/// its end or its pruning before the next starts (one seed): the points it stops.
fn reference_pruned(order: &[usize], levels: &[f64], rungs: &[usize], eta: usize) -> Vec<usize> {
    let mut reached: BTreeMap<usize, Vec<f64>> = BTreeMap::new();
    let mut pruned = Vec::new();
    for &point in order {
        for &rung in rungs {
            let own = accuracy(levels, point, rung);
            let at_rung = reached.entry(rung).or_default();
            at_rung.push(own);
            let better = at_rung.iter().filter(|&&s| s > own).count();
            if better >= (at_rung.len() / eta).max(1) {
                pruned.push(point);
                break;
            }
        }
    }
    pruned.sort_unstable();
    pruned
}

#[test]
fn rungs_lie_at_min_epochs_times_powers_of_the_reduction_below_the_last_epoch() {
    let rule = |min_epochs, reduction| PruneRule {
        rule: PruneKind::Asha,
        min_epochs,
        reduction,
    };
    assert_eq!(rule(2, 3).rungs(20), [2, 6, 18]);
    assert_eq!(rule(2, 3).rungs(18), [2, 6]);
    assert_eq!(rule(1, 4).rungs(20), [1, 4, 16]);
    assert!(rule(5, 2).rungs(5).is_empty());
    assert_eq!(
        rule(1, 2).rungs(usize::MAX).len(),
        64,
        "2^0 .. 2^63, no overflow"
    );
    assert_eq!(
        [1, 2, 3, 4, 5, 8, 9].map(|n| rule(1, 3).kept(n)),
        [1, 1, 1, 1, 1, 2, 3]
    );
    assert_eq!(rule(0, 3).problem().unwrap().0, "min_epochs");
    assert_eq!(rule(1, 1).problem().unwrap().0, "reduction");
    assert!(rule(1, 2).problem().is_none());
}

#[test]
fn a_spec_names_a_bad_pruning_rule_by_field() {
    let text = spec(2, 1).name.clone();
    assert_eq!(text, "asha");
    let bad = |prune: &str| {
        let text = format!(
            "name = \"s\"\nprune = {prune}\n[base]\ndataset = \"mnist\"\nmodel = \"simple-cnn\"\n\
             [[method]]\nname = \"none\"\n"
        );
        StudySpec::parse_unchecked(&text, Path::new("s.toml")).unwrap_err()
    };
    let e = bad("{ rule = \"asha\", reduction = 1 }");
    assert_eq!(e.field, "prune.reduction", "{e}");
    let e = bad("{ rule = \"asha\", min_epochs = 0 }");
    assert_eq!(e.field, "prune.min_epochs", "{e}");
    let e = bad("{ rule = \"hyperband\" }");
    assert!(e.to_string().contains("asha"), "{e}");
    let e = bad("{ rule = \"asha\", grace = 2 }");
    assert!(e.to_string().contains("grace"), "{e}");
}

#[test]
fn one_worker_in_number_order_stops_exactly_the_points_the_rule_says() {
    let scratch = Scratch::new("sequential");
    let store = scratch.store();
    let spec = spec(4, 1);
    create(store.as_ref(), &spec, &every_trial(4, 1));
    let pruner = Pruner::of(&spec, store.as_ref()).unwrap();
    let worker = Worker::of_this_process(0);
    // Point 0 arrives alone and goes on; point 1 beats it; point 2 is beaten by point 1 of
    // the 3 trials at epoch 1, where only the top max(1, 3/2) = 1 goes on; point 3 is the
    // best of 4 at epoch 1 and of the 3 that reached epoch 2.
    let levels = [0.5, 0.7, 0.6, 0.8];
    work_through(&pruner, store.as_ref(), &worker, &levels);
    assert_eq!(pruned_points(&spec, store.as_ref()), BTreeSet::from([2]));
    let pruned = store
        .trials("asha")
        .unwrap()
        .into_iter()
        .find(|t| t.state == TrialState::Pruned)
        .unwrap();
    assert_eq!(
        store.epochs(pruned.id).unwrap().len(),
        1,
        "stopped at epoch 1"
    );
    assert_eq!(
        pruned.message.as_deref(),
        Some(
            "pruned at epoch 1: its validation accuracy 61.00% was beaten by 1 of the 3 \
             trials of seed 0 at that epoch, and only the top 1 go on"
        )
    );
}

#[test]
fn in_every_claim_order_the_rule_stops_the_points_it_says_for_that_order() {
    let levels = [0.5, 0.7, 0.6, 0.8];
    let mut orders: Vec<Vec<usize>> = vec![vec![]];
    for _ in 0..4 {
        let mut longer = Vec::new();
        for order in &orders {
            for p in (0..4).filter(|p| !order.contains(p)) {
                let mut next = order.clone();
                next.push(p);
                longer.push(next);
            }
        }
        orders = longer;
    }
    assert_eq!(orders.len(), 24);
    let spec = spec(4, 1);
    let mut outcomes = BTreeSet::new();
    for (k, order) in orders.iter().enumerate() {
        let scratch = Scratch::new(&format!("order{k}"));
        let store = scratch.store();
        let claim_order: Vec<(usize, u64)> = order.iter().map(|&p| (p, 0)).collect();
        create(store.as_ref(), &spec, &claim_order);
        let pruner = Pruner::of(&spec, store.as_ref()).unwrap();
        let worker = Worker::of_this_process(0);
        work_through(&pruner, store.as_ref(), &worker, &levels);
        let got: Vec<usize> = pruned_points(&spec, store.as_ref()).into_iter().collect();
        assert_eq!(
            got,
            reference_pruned(order, &levels, &[1, 2], 2),
            "order {order:?}"
        );
        assert!(
            !got.contains(&3),
            "the best point is never stopped: {order:?}"
        );
        outcomes.insert(got);
    }
    // The order matters (the first arrivals face fewer rivals): best first stops the
    // other three, worst first stops none at epoch 1.
    assert!(
        outcomes.contains(&vec![0, 1, 2]) && outcomes.len() > 2,
        "{outcomes:?}"
    );
}

#[test]
fn a_point_stopped_on_one_seed_is_stopped_on_the_others_before_they_train() {
    let scratch = Scratch::new("point");
    let store = scratch.store();
    let spec = spec(2, 2);
    let trials = create(store.as_ref(), &spec, &[(0, 0), (1, 0), (1, 1), (0, 1)]);
    let pruner = Pruner::of(&spec, store.as_ref()).unwrap();
    let worker = Worker::of_this_process(0);
    let levels = [0.8, 0.5];
    let of = |point: usize, seed: u64| {
        trials
            .iter()
            .find(|t| point_of(&spec, t) == point && t.trial.seed == seed)
            .unwrap()
    };
    for _ in 0..2 {
        let t = store.claim("asha", &worker, Duration::from_secs(60));
        work_on(
            &pruner,
            store.as_ref(),
            &worker,
            &t.unwrap().unwrap(),
            &levels,
            Duration::ZERO,
        );
    }
    assert_eq!(pruned_points(&spec, store.as_ref()), BTreeSet::from([1]));
    let weak = of(1, 1);
    assert_eq!(
        pruner.judge(weak, 0).unwrap(),
        Judgement::Pruned(format!(
            "pruned: its point was stopped on seed 0 (trial {})",
            of(1, 0).trial.number
        ))
    );
    assert_eq!(pruner.judge(of(0, 1), 0).unwrap(), Judgement::GoesOn);
}

#[test]
fn confirmation_trials_and_methods_without_a_grid_are_never_pruned() {
    let scratch = Scratch::new("never");
    let store = scratch.store();
    let spec = spec(2, 1);
    let record = StudyRecord {
        name: "asha".into(),
        spec: "fixture".into(),
        created_at: 1.7e9,
        version: "test".into(),
    };
    store.create_study(&record, &spec.trials()).unwrap();
    let pruner = Pruner::of(&spec, store.as_ref()).unwrap();
    let worker = Worker::of_this_process(0);
    let levels = [0.8, 0.5];
    let all = store.trials("asha").unwrap();
    let baseline = all.iter().find(|t| t.trial.method == "none").unwrap();
    assert_eq!(
        store
            .claim("asha", &worker, Duration::from_secs(60))
            .unwrap()
            .unwrap()
            .id,
        baseline.id
    );
    store
        .record_epoch(baseline.id, &worker, &metrics(1, 0.01))
        .unwrap();
    assert_eq!(pruner.judge(baseline, 1).unwrap(), Judgement::GoesOn);
    work_through(&pruner, store.as_ref(), &worker, &levels);
    assert_eq!(pruned_points(&spec, store.as_ref()), BTreeSet::from([1]));
    let mut confirm = all
        .iter()
        .find(|t| t.trial.method == "l2" && point_of(&spec, t) == 1)
        .unwrap()
        .clone();
    confirm.trial.phase = Phase::Confirm;
    confirm.id = -1;
    assert_eq!(pruner.judge(&confirm, 1).unwrap(), Judgement::GoesOn);
}

#[test]
fn several_workers_take_only_decisions_the_rule_allows_and_never_choose_a_pruned_point() {
    let scratch = Scratch::new("workers");
    let spec = spec(8, 2);
    let location = scratch.0.join("store.db");
    create(scratch.store().as_ref(), &spec, &every_trial(8, 2));
    let levels = [0.55, 0.8, 0.6, 0.75, 0.5, 0.7, 0.65, 0.45];
    std::thread::scope(|scope| {
        for index in 0..4 {
            let (spec, levels, location) = (&spec, &levels, &location);
            scope.spawn(move || {
                let store = store::open(location.to_str().unwrap()).unwrap();
                let pruner = Pruner::of(spec, store.as_ref()).unwrap();
                let worker = Worker::of_this_process(index);
                while let Some(t) = store
                    .claim("asha", &worker, Duration::from_secs(60))
                    .unwrap()
                {
                    if t.trial.method != "l2" {
                        store.finish(t.id, &worker, &done_outcome()).unwrap();
                        continue;
                    }
                    let pause = Duration::from_millis(1 + (t.id as u64 * 7 + index as u64) % 5);
                    work_on(&pruner, store.as_ref(), &worker, &t, levels, pause);
                }
            });
        }
    });
    let store = scratch.store();
    let trials = store.trials("asha").unwrap();
    assert!(trials.iter().all(|t| t.state.is_finished()));
    assert_eq!(
        store.claims("asha").unwrap().len(),
        trials.len(),
        "each claimed once"
    );
    let best = 1;
    for t in trials.iter().filter(|t| t.state == TrialState::Pruned) {
        let point = point_of(&spec, t);
        assert_ne!(point, best, "the best point is never stopped");
        let message = t.message.as_deref().unwrap();
        if message.starts_with("pruned: its point was stopped") {
            assert!(trials.iter().any(|o| o.state == TrialState::Pruned
                && point_of(&spec, o) == point
                && o.id != t.id));
            continue;
        }
        // "pruned at epoch E: ... beaten by B of the N trials of seed S ..."
        let words: Vec<&str> = message.split_whitespace().collect();
        let after = |w: &str| words[words.iter().position(|x| *x == w).unwrap() + 1];
        let epoch: usize = after("epoch").trim_end_matches(':').parse().unwrap();
        let better: usize = after("by").parse().unwrap();
        let n: usize = after("the").parse().unwrap();
        assert!(better >= (n / 2).max(1), "{message}");
        let own = accuracy(&levels, point, epoch);
        let rivals: Vec<f64> = trials
            .iter()
            .filter(|o| o.trial.method == "l2" && o.trial.seed == t.trial.seed)
            .filter(|o| store.epochs(o.id).unwrap().len() >= epoch)
            .map(|o| accuracy(&levels, point_of(&spec, o), epoch))
            .collect();
        assert!(n <= rivals.len(), "{message}: {rivals:?}");
        assert!(
            better <= rivals.iter().filter(|&&s| s > own).count(),
            "{message}"
        );
        assert_eq!(store.epochs(t.id).unwrap().len(), epoch);
    }
    let epochs: BTreeMap<i64, Vec<EpochMetrics>> = trials
        .iter()
        .map(|t| (t.id, store.epochs(t.id).unwrap()))
        .collect();
    let points = &spec.method("l2").unwrap().points;
    let scores: Vec<PointScore> = (0..points.len())
        .map(|p| {
            let of_point: Vec<&TrialRecord> = trials
                .iter()
                .filter(|t| t.trial.method == "l2" && point_of(&spec, t) == p)
                .collect();
            PointScore::of(&of_point, |id| epochs[&id].as_slice())
        })
        .collect();
    let pruned = pruned_points(&spec, store.as_ref());
    assert!(!pruned.is_empty(), "the weak points are stopped");
    for (p, score) in scores.iter().enumerate() {
        assert_eq!(score.pruned > 0, pruned.contains(&p));
    }
    if let Some(chosen) = choose(&scores, spec.select) {
        assert!(!pruned.contains(&chosen), "a pruned point is never chosen");
    }
}

#[test]
fn a_trial_whose_worker_died_after_a_rung_is_judged_there_when_taken_over() {
    let scratch = Scratch::new("takeover");
    let store = scratch.store();
    let spec = spec(3, 1);
    let trials = create(store.as_ref(), &spec, &every_trial(3, 1));
    let pruner = Pruner::of(&spec, store.as_ref()).unwrap();
    let levels = [0.8, 0.7, 0.5];
    let me = Worker::of_this_process(0);
    let first = store.claim("asha", &me, Duration::from_secs(60)).unwrap();
    work_on(
        &pruner,
        store.as_ref(),
        &me,
        &first.unwrap(),
        &levels,
        Duration::ZERO,
    );
    // Two workers on another machine record epoch 1 of points 1 and 2, and die before
    // judging it.
    for (k, t) in trials[1..].iter().enumerate() {
        let dead = Worker {
            name: format!("elsewhere{k}:1:1:0"),
            host: format!("elsewhere{k}"),
            pid: 1,
        };
        let claimed = store.claim("asha", &dead, Duration::from_secs(60)).unwrap();
        assert_eq!(claimed.unwrap().id, t.id);
        let m = metrics(1, accuracy(&levels, point_of(&spec, t), 1));
        store.record_epoch(t.id, &dead, &m).unwrap();
    }
    std::thread::sleep(Duration::from_millis(20));
    let stale = Duration::from_millis(10);
    let mut judged = Vec::new();
    while let Some(t) = store.claim("asha", &me, stale).unwrap() {
        let recorded = store.epochs(t.id).unwrap().len();
        let judgement = pruner.judge(&t, recorded).unwrap();
        judged.push((point_of(&spec, &t), judgement.clone()));
        let outcome = match judgement {
            Judgement::Pruned(message) => Outcome {
                state: TrialState::Pruned,
                message: Some(message),
                ..done_outcome()
            },
            Judgement::GoesOn => done_outcome(),
        };
        store.finish(t.id, &me, &outcome).unwrap();
    }
    // Of the 3 trials at epoch 1, the top 1 goes on: points 1 and 2 are both beaten.
    assert_eq!(judged.len(), 2);
    for (point, judgement) in &judged {
        assert!(
            matches!(judgement, Judgement::Pruned(m) if m.starts_with("pruned at epoch 1")),
            "point {point}: {judgement:?}"
        );
    }
    assert_eq!(pruned_points(&spec, store.as_ref()), BTreeSet::from([1, 2]));
}

fn done_outcome() -> Outcome {
    Outcome {
        state: TrialState::Done,
        summary: None,
        message: None,
        histogram: None,
    }
}
