//! The report of a fixed synthetic study: exact tables, the selection rule, the files
//! written, and odd data.

use super::analysis::{analyze, Verdict};
use super::*;
use crate::regularize::{SparsityReport, WeightHistogram, WeightStats};
use crate::study::spec::{Group, Method, Metric, PaperValue, Selection};
use crate::train::{RunConfig, Summary};
use crate::trial::{NewTrial, Phase, TrialState};

/// What one synthetic trial produced.
struct Outcome {
    best_val: f64,
    test: f64,
    train: f64,
    val: f64,
    seconds: f64,
    zeros: f64,
    below: f64,
}

fn point(key: &str, value: f64) -> (toml::Table, BTreeMap<String, serde_json::Value>) {
    let mut t = toml::Table::new();
    t.insert(key.into(), toml::Value::Float(value));
    (
        t,
        BTreeMap::from([(key.to_string(), serde_json::json!(value))]),
    )
}

fn method(name: &str, points: Vec<toml::Table>, components: &[&str]) -> Method {
    Method {
        name: name.into(),
        set: toml::Table::new(),
        points,
        components: components.iter().map(|c| c.to_string()).collect(),
        point_from: None,
    }
}

fn spec(methods: Vec<Method>) -> StudySpec {
    StudySpec {
        name: "demo".into(),
        description: "Synthetic study".into(),
        seeds: vec![0, 1, 2],
        confirm_seeds: Vec::new(),
        select: Selection::ValAcc,
        prune: None,
        baseline: "none".into(),
        runs_dir: "runs/demo".into(),
        base: toml::Table::new(),
        groups: vec![Group {
            name: String::new(),
            set: toml::Table::new(),
        }],
        methods,
        paper: vec![PaperValue {
            group: None,
            method: "none".into(),
            metric: Metric::TestAcc,
            value: 0.70,
            source: "Example 2025, Table 1".into(),
        }],
        notes: vec!["Quick run".into()],
        file: "study.toml".into(),
        origins: Default::default(),
    }
}

fn stats(zeros: f64, below: f64) -> SparsityReport {
    SparsityReport {
        overall: WeightStats {
            count: 1000,
            zero_fraction: zeros,
            below_fraction: [zeros, below, below],
            ..WeightStats::default()
        },
        layers: Vec::new(),
    }
}

fn epoch(n: usize, train: f64, val: f64, seconds: f64) -> EpochMetrics {
    EpochMetrics {
        epoch: n,
        train_data_loss: 2.0 - train,
        train_penalty: 0.0,
        train_loss: 2.0 - train,
        train_acc: train,
        val_loss: Some(2.2 - val),
        val_acc: Some(val),
        gap_loss: Some(0.2 + train - val),
        gap_acc: Some(train - val),
        train_eval_loss: Some(2.0 - train),
        train_eval_acc: Some(train),
        eval_gap_acc: Some(train - val),
        eval_gap_loss: Some(0.2 + train - val),
        lr: 1e-3,
        seconds,
        train_seconds: seconds,
        images_per_s: 1000.0,
        threads: Some(1),
        sparsity: SparsityReport::default(),
    }
}

fn summary(o: &Outcome, seed: u64) -> Summary {
    Summary {
        status: "completed".into(),
        message: None,
        test_acc: Some(o.test),
        test_loss: Some(1.0),
        best_val_acc: Some(o.best_val),
        best_val_loss: Some(2.2 - o.best_val),
        best_epoch: Some(2),
        tested_epoch: Some(2),
        epochs_run: 2,
        mean_epoch_seconds: o.seconds,
        mean_train_seconds: o.seconds,
        sparsity: stats(o.zeros, o.below),
        seed,
        threads: 1,
        version: "0.1.0".into(),
        classes: 10,
    }
}

/// Adds a done trial with two epochs and a weight histogram.
fn add(
    r: &mut StudyResults,
    method: &str,
    point: &BTreeMap<String, serde_json::Value>,
    seed: u64,
    o: Outcome,
) {
    let number = r.trials.len();
    let id = number as i64 + 1;
    let weights: Vec<f32> = (0..100)
        .map(|k| {
            if k < (o.zeros * 100.0) as usize {
                0.0
            } else {
                1e-3 * k as f32
            }
        })
        .collect();
    r.epochs.insert(
        id,
        vec![
            epoch(1, o.train - 0.1, o.val - 0.05, o.seconds),
            epoch(2, o.train, o.val, o.seconds),
        ],
    );
    r.trials.push(TrialRecord {
        id,
        trial: NewTrial {
            number,
            group: String::new(),
            method: method.into(),
            point: point.clone(),
            seed,
            phase: Phase::Search,
            config: RunConfig::default(),
        },
        state: TrialState::Done,
        worker: Some("w".into()),
        retry: 0,
        attempts: 1,
        // One after another: overheads are comparable.
        started_at: Some(number as f64),
        finished_at: Some(number as f64 + 0.9),
        summary: Some(summary(&o, seed)),
        message: None,
        histogram: Some(WeightHistogram::of([&weights[..]])),
        heartbeat_age: None,
    });
}

/// none, l1 at two strengths (the weaker has the higher validation accuracy of the tested
/// weights, the stronger the higher test accuracy), l2; seeds 0, 1, 2.
fn fixture() -> StudyResults {
    let (a_toml, a) = point("l1", 1e-4);
    let (b_toml, b) = point("l1", 1e-3);
    let (l2_toml, l2) = point("l2", 1e-3);
    let mut r = StudyResults {
        study: StudyRecord {
            name: "demo".into(),
            spec: String::new(),
            created_at: 1_700_000_000.0,
            version: "0.1.0".into(),
        },
        spec: spec(vec![
            method("none", vec![toml::Table::new()], &[]),
            method("l1", vec![a_toml, b_toml], &[]),
            method("l2", vec![l2_toml], &[]),
        ]),
        trials: Vec::new(),
        epochs: BTreeMap::new(),
        claims: Vec::new(),
    };
    let o = |best_val, test, train, val, seconds, zeros, below| Outcome {
        best_val,
        test,
        train,
        val,
        seconds,
        zeros,
        below,
    };
    let empty = BTreeMap::new();
    for s in 0..3u64 {
        let k = s as f64 * 0.01;
        add(
            &mut r,
            "none",
            &empty,
            s,
            o(0.70 + k, 0.70 + k, 0.80 + k, 0.69 + k, 10.0, 0.0, 0.01),
        );
    }
    for (s, test) in [0.73, 0.745, 0.75].into_iter().enumerate() {
        let k = s as f64 * 0.01;
        add(
            &mut r,
            "l1",
            &a,
            s as u64,
            o(0.75 + k, test, 0.78 + k, 0.74 + k, 11.0, 0.10, 0.30),
        );
    }
    for s in 0..3u64 {
        let k = s as f64 * 0.01;
        add(
            &mut r,
            "l1",
            &b,
            s,
            o(0.70 + k, 0.80 + k, 0.78 + k, 0.69 + k, 11.0, 0.10, 0.30),
        );
    }
    for (s, test) in [0.69, 0.72, 0.72].into_iter().enumerate() {
        let k = s as f64 * 0.01;
        add(
            &mut r,
            "l2",
            &l2,
            s as u64,
            o(0.71 + k, test, 0.79 + k, 0.70 + k, 10.5, 0.0, 0.02),
        );
    }
    r
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("regstudy-report-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

#[test]
fn the_methods_table_of_the_fixed_study_is_exact() {
    let r = fixture();
    let a = analyze(&r);
    let table = tables::methods(&a.groups[0], "", a.concurrent);
    let expected = "\
| method | point     | chosen on seeds | reported seeds | n   | test acc % (mean ± 95% CI) | train acc % (eval) | val acc % | gap (pp) | train acc % (running) | zero weights % | zero filters/units % | \\|w\\|<1e-3 % | train s/epoch | overhead % | diverged | p       | p (Holm) | vs baseline               |
| ------ | --------- | --------------- | -------------- | --- | -------------------------- | ------------------ | --------- | -------- | --------------------- | -------------- | -------------------- | ------------ | ------------- | ---------- | -------- | ------- | -------- | ------------------------- |
| none   | —         | —               | 0-2            | 3   | 71.00 ± 2.48               | 81.00              | 70.00     | 11.00    | 81.00                 | 0.00           | 0.00                 | 1.00         | 10.00         | —          | 0 of 3   | —       | —        | baseline                  |
| l1     | l1=0.0001 | 0-2             | 0-2            | 3   | 74.17 ± 2.59               | 79.00              | 75.00     | 4.00     | 79.00                 | 10.00          | 0.00                 | 30.00        | 11.00         | +10.0      | 0 of 6   | 0.00276 | 0.00552  | better                    |
| l2     | l2=0.001  | —               | 0-2            | 3   | 71.00 ± 4.30               | 80.00              | 71.00     | 9.00     | 80.00                 | 0.00           | 0.00                 | 2.00         | 10.50         | +5.0       | 0 of 3   | 1.00    | 1.00     | no significant difference |
";
    assert_eq!(table.to_markdown(), expected);
}

#[test]
fn selection_takes_the_higher_validation_accuracy_even_when_the_other_point_tests_better() {
    let a = analyze(&fixture());
    let l1 = &a.groups[0].methods[1];
    assert_eq!(l1.name, "l1");
    assert_eq!(l1.chosen, Some(0));
    assert_eq!(l1.chosen_point().unwrap().label, "l1=0.0001");
    let test_of = |i: usize| {
        let ids = &l1.points[i].done_ids;
        let r = fixture();
        let v: Vec<f64> = r
            .trials
            .iter()
            .filter(|t| ids.contains(&t.id))
            .filter_map(|t| t.summary.as_ref()?.test_acc)
            .collect();
        stats::mean(&v).unwrap()
    };
    assert!(
        test_of(1) > test_of(0),
        "the other point has the higher test accuracy"
    );
    assert!(matches!(l1.verdict, Verdict::Better { .. }));
}

#[test]
fn the_paper_table_shows_the_published_value_beside_ours() {
    let a = analyze(&fixture());
    let t = tables::paper(&a.groups[0], "").unwrap();
    assert_eq!(
        t.rows,
        vec![vec![
            "none",
            "test_acc",
            "70.00",
            "71.00 ± 2.48",
            "+1.00",
            "Example 2025, Table 1"
        ]]
    );
    assert!(t.to_csv().contains("\"Example 2025, Table 1\"\r\n"));
}

#[test]
fn the_report_writes_every_file_and_the_html_links_nothing_outside() {
    let dir = temp_dir("files");
    let files = write_report(&fixture(), &dir).unwrap();
    for name in [
        "report.md",
        "report.html",
        "tables/methods.csv",
        "tables/methods.json",
        "tables/sweep.csv",
        "tables/paper.json",
        "tables/trials.csv",
    ] {
        assert!(dir.join(name).is_file(), "{name}");
    }
    for kind in [
        "curves-acc",
        "curves-loss",
        "bars-acc",
        "bars-loss",
        "sweep",
        "histogram",
        "scatter",
    ] {
        assert!(
            dir.join(format!("figures/{kind}.svg")).is_file(),
            "{kind}.svg"
        );
        assert!(
            dir.join(format!("figures/{kind}.png")).is_file(),
            "{kind}.png"
        );
    }
    assert_eq!(files.figures.len(), 14);
    let html = std::fs::read_to_string(&files.html).unwrap();
    for external in [
        "src=\"http",
        "href=\"http",
        "<link",
        "<script",
        "url(",
        "@import",
    ] {
        assert!(!html.contains(external), "{external}");
    }
    assert_eq!(html.matches("<svg ").count(), 7);
    let md = std::fs::read_to_string(&files.markdown).unwrap();
    assert!(md.contains("![Learning curves, accuracy](figures/curves-acc.svg)"));
    assert!(md.contains("CI = mean ± t(0.975, n-1)·s/√n"));
    assert!(md.contains("2023-11-14 22:13:20 UTC"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_png_starts_with_the_signature_and_is_twice_the_svg_size() {
    let dir = temp_dir("png");
    write_report(&fixture(), &dir).unwrap();
    let png = std::fs::read(dir.join("figures/curves-acc.png")).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    assert_eq!(
        png::dimensions(&png),
        Some((2 * plot::WIDTH as u32, 2 * plot::HEIGHT as u32))
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_same_results_give_the_same_bytes() {
    let (d1, d2) = (temp_dir("same1"), temp_dir("same2"));
    write_report(&fixture(), &d1).unwrap();
    write_report(&fixture(), &d2).unwrap();
    for name in ["report.md", "report.html", "figures/histogram.png"] {
        assert_eq!(
            std::fs::read(d1.join(name)).unwrap(),
            std::fs::read(d2.join(name)).unwrap(),
            "{name}"
        );
    }
    let _ = std::fs::remove_dir_all(&d1);
    let _ = std::fs::remove_dir_all(&d2);
}

#[test]
fn failed_trials_single_seeds_and_empty_groups_report_without_nan() {
    let mut r = fixture();
    r.spec.groups.push(Group {
        name: "empty group".into(),
        set: toml::Table::new(),
    });
    r.spec
        .methods
        .push(method("l1l2", Vec::new(), &["l1", "l2"]));
    // l2: keep one seed only; fail one none trial; drop one none summary.
    r.trials
        .retain(|t| t.trial.method != "l2" || t.trial.seed == 0);
    r.trials[0].state = TrialState::Failed;
    r.trials[0].summary = None;
    r.trials[0].message = Some("disk full".into());
    r.trials[1].summary = None;
    let a = analyze(&r);
    let g = &a.groups[0];
    assert_eq!(g.methods[0].result.as_ref().unwrap().n, 1);
    assert_eq!(g.methods[2].verdict, Verdict::NotAvailable("n<2".into()));
    assert_eq!(a.problems.len(), 1);
    assert_eq!(a.counts[&TrialState::Failed], 1);
    let dir = temp_dir("odd");
    let files = write_report(&r, &dir).unwrap();
    let md = std::fs::read_to_string(&files.markdown).unwrap();
    assert!(!md.contains("NaN") && !md.contains("| inf"), "{md}");
    assert!(md.contains("disk full"));
    assert!(md.contains("## Group empty group"));
    assert!(dir.join("tables/empty-group-methods.csv").is_file());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_ablation_removes_one_component_at_a_time_from_the_full_method() {
    let mut r = fixture();
    for (name, components) in [("l1", &["l1"][..]), ("l2", &["l2"][..])] {
        let m = r.spec.methods.iter_mut().find(|m| m.name == name).unwrap();
        m.components = components.iter().map(|c| c.to_string()).collect();
    }
    r.spec
        .methods
        .push(method("l1l2", Vec::new(), &["l1", "l2"]));
    let (_, p) = point("l1", 1e-4);
    for s in 0..3u64 {
        let test = 0.76 + 0.01 * s as f64;
        add(
            &mut r,
            "l1l2",
            &p,
            s,
            Outcome {
                best_val: 0.77,
                test,
                train: 0.8,
                val: 0.75,
                seconds: 12.0,
                zeros: 0.2,
                below: 0.4,
            },
        );
    }
    let a = analyze(&r);
    let t = tables::ablation_table(&a.groups[0], "").unwrap();
    assert_eq!(
        t.rows[0][..2],
        ["nothing (full)".to_string(), "l1l2".into()]
    );
    // Removing l1 leaves {l2}: 77.00 - 71.00 = +6.00 pp; removing l2 leaves {l1}: 77.00 - 74.17.
    assert_eq!(t.rows[1], ["l1", "l2", "71.00 ± 4.30", "+6.00"]);
    assert_eq!(t.rows[2], ["l2", "l1", "74.17 ± 2.59", "+2.83"]);
    let c = tables::combinations(&a.groups[0], "").unwrap();
    assert_eq!(
        c.columns,
        ["method", "l1", "l2", "n", "test acc % (mean ± 95% CI)"]
    );
    assert_eq!(
        c.rows[0][..3],
        ["none".to_string(), String::new(), String::new()]
    );
    assert_eq!(c.rows[3][..3], ["l1l2".to_string(), "✓".into(), "✓".into()]);
}

/// A store holding one finished study, for [`load`]; it refuses every write.
struct FixedStore(StudyResults);

impl FixedStore {
    fn refuse<T>() -> Result<T, StoreError> {
        Err(StoreError::Database {
            path: "fixed".into(),
            message: "read-only".into(),
        })
    }
}

impl Store for FixedStore {
    fn create_study(
        &self,
        _: &StudyRecord,
        _: &[NewTrial],
    ) -> Result<crate::store::Created, StoreError> {
        Self::refuse()
    }
    fn add_trials(&self, _: &str, _: &[NewTrial]) -> Result<usize, StoreError> {
        Self::refuse()
    }
    fn studies(&self) -> Result<Vec<StudyRecord>, StoreError> {
        Ok(vec![self.0.study.clone()])
    }
    fn study(&self, name: &str) -> Result<StudyRecord, StoreError> {
        if name == self.0.study.name {
            Ok(self.0.study.clone())
        } else {
            Err(StoreError::NoStudy {
                study: name.into(),
                path: "fixed".into(),
                hint: String::new(),
            })
        }
    }
    fn claim(
        &self,
        _: &str,
        _: &crate::store::Worker,
        _: std::time::Duration,
    ) -> Result<Option<TrialRecord>, StoreError> {
        Self::refuse()
    }
    fn heartbeat(&self, _: &crate::store::Worker) -> Result<(), StoreError> {
        Self::refuse()
    }
    fn record_epoch(
        &self,
        _: i64,
        _: &crate::store::Worker,
        _: &EpochMetrics,
    ) -> Result<(), StoreError> {
        Self::refuse()
    }
    fn reset_epochs(&self, _: i64, _: &crate::store::Worker) -> Result<(), StoreError> {
        Self::refuse()
    }
    fn record_start(
        &self,
        _: i64,
        _: &crate::store::Worker,
        _: &crate::store::TrainingStart,
    ) -> Result<(), StoreError> {
        Self::refuse()
    }
    fn release(&self, _: i64, _: &crate::store::Worker) -> Result<(), StoreError> {
        Self::refuse()
    }
    fn import(&self, _: &crate::store::StudyCopy) -> Result<(), StoreError> {
        Self::refuse()
    }
    fn finish(
        &self,
        _: i64,
        _: &crate::store::Worker,
        _: &crate::store::Outcome,
    ) -> Result<(), StoreError> {
        Self::refuse()
    }
    fn trials(&self, _: &str) -> Result<Vec<TrialRecord>, StoreError> {
        Ok(self.0.trials.clone())
    }
    fn epochs(&self, trial: i64) -> Result<Vec<EpochMetrics>, StoreError> {
        Ok(self.0.epochs.get(&trial).cloned().unwrap_or_default())
    }
    fn counts(&self, _: &str) -> Result<BTreeMap<TrialState, usize>, StoreError> {
        Self::refuse()
    }
    fn claims(&self, _: &str) -> Result<Vec<crate::store::Claim>, StoreError> {
        Self::refuse()
    }
    fn history(&self, _: &str) -> Result<Vec<TrialRecord>, StoreError> {
        Ok(self.0.trials.clone())
    }
    fn retry(&self, _: &str, _: &[usize]) -> Result<Vec<usize>, StoreError> {
        Self::refuse()
    }
    fn identity(&self) -> crate::store::StoreIdentity {
        crate::store::StoreIdentity {
            id: "fixed".into(),
            location: "fixed".into(),
        }
    }
}

#[test]
fn loading_reads_the_study_its_trials_and_their_epochs() {
    let r = fixture();
    let store = FixedStore(r.clone());
    assert_eq!(load(&store, "demo", r.spec.clone()).unwrap(), r);
    assert!(matches!(
        load(&store, "other", r.spec.clone()),
        Err(StoreError::NoStudy { .. })
    ));
}

#[test]
fn a_baseline_without_results_still_reads_baseline_and_others_say_why_untested() {
    let mut r = fixture();
    r.trials.retain(|t| t.trial.method != "none");
    let a = analyze(&r);
    let g = &a.groups[0];
    assert_eq!(g.methods[0].verdict, Verdict::Baseline);
    assert_eq!(g.methods[0].result, None);
    assert_eq!(
        g.methods[1].verdict,
        Verdict::NotAvailable("no baseline".into())
    );
    assert_eq!(tables::methods(g, "", a.concurrent).rows[0][4], "0");
}

#[test]
fn the_cost_sums_seconds_times_threads_and_the_wall_time_leaves_out_idle_gaps() {
    let mut r = fixture();
    // Trial 1 trained on 2 threads; trial 2's second epoch came from a version that did not
    // record threads. Trials 1 and 2 overlap; trial 12 ran long after the rest.
    for e in r.epochs.get_mut(&1).unwrap() {
        e.threads = Some(2);
    }
    r.epochs.get_mut(&2).unwrap()[1].threads = None;
    let span = |r: &mut StudyResults, id: i64, start: f64, end: f64| {
        let t = r.trials.iter_mut().find(|t| t.id == id).unwrap();
        (t.started_at, t.finished_at) = (Some(start), Some(end));
    };
    span(&mut r, 1, 0.0, 100.0);
    span(&mut r, 2, 50.0, 150.0);
    span(&mut r, 12, 1000.0, 1010.0);
    let cost = cost::Cost::of(&r);
    // 24 epochs: none 6 x 10 s, l1 12 x 11 s, l2 6 x 10.5 s.
    assert_eq!(cost.epochs, 24);
    assert!((cost.epoch_seconds - 255.0).abs() < 1e-9, "{cost:?}");
    // 255 core-seconds at one thread, + 20 for trial 1's second thread, - 10 unknown.
    assert!((cost.core_seconds - 265.0).abs() < 1e-9, "{cost:?}");
    assert_eq!(cost.epochs_without_threads, 1);
    assert_eq!(cost.thread_counts, [1, 2].into());
    let warning = cost::thread_counts_sentence(&cost).unwrap();
    assert!(
        warning.contains("different numbers of threads (1, 2)"),
        "{warning}"
    );
    // [0, 150] holds the other trials' spans; [1000, 1010] adds 10.
    assert!((cost.busy_seconds - 160.0).abs() < 1e-9, "{cost:?}");
    assert_eq!(cost.saved_core_seconds, None);
    assert_eq!(cost.saved_share(), None);
    let sentence = cost::cost_sentence(&cost);
    assert!(
        sentence.contains("24 epochs on record, 4 min of epoch time, 0.07 core-hours")
            && sentence.contains("in 3 min of wall time (the finished trials' last attempts")
            && sentence.contains("1 epoch was recorded without its threads"),
        "{sentence}"
    );
}

#[test]
fn pruning_saves_each_untrained_epoch_at_its_method_s_mean_cost_per_epoch() {
    let mut r = fixture();
    r.spec.prune = Some("asha".parse().unwrap());
    // Trials 7 and 8 (l1 at the stronger point) pruned after 1 and 0 of 10 epochs.
    for (id, kept) in [(7, 1), (8, 0)] {
        let t = r.trials.iter_mut().find(|t| t.id == id).unwrap();
        t.state = TrialState::Pruned;
        t.summary = None;
        t.trial.config.epochs = 10;
        r.epochs.get_mut(&id).unwrap().truncate(kept);
    }
    let cost = cost::Cost::of(&r);
    assert_eq!(cost.thread_counts, [1].into());
    assert_eq!(cost::thread_counts_sentence(&cost), None);
    // 255 core-seconds less the 3 epochs of 11 s not trained.
    assert!((cost.core_seconds - 222.0).abs() < 1e-9, "{cost:?}");
    // l1's 9 recorded epochs cost 11 core-seconds each: (9 + 10) x 11 saved.
    let saved = cost.saved_core_seconds.unwrap();
    assert!((saved - 209.0).abs() < 1e-9, "{cost:?}");
    let share = cost.saved_share().unwrap();
    assert!((share - 209.0 / 431.0).abs() < 1e-12, "{share}");
    let report = content::blocks(&r, &analyze(&r));
    let text = format!("{report:?}");
    assert!(text.contains("about 0.06 core-hours more"), "{text}");
    assert!(
        text.contains("48.5% of the study's cost without pruning"),
        "{text}"
    );
}

#[test]
fn pruning_with_early_stopping_reports_its_savings_as_upper_bounds() {
    let mut r = fixture();
    r.spec.prune = Some("asha".parse().unwrap());
    for t in r.trials.iter_mut() {
        t.trial.config.epochs = 10;
        t.trial.config.patience = Some(3);
    }
    let t = r.trials.iter_mut().find(|t| t.id == 7).unwrap();
    t.state = TrialState::Pruned;
    t.summary = None;
    r.epochs.get_mut(&7).unwrap().truncate(1);
    let analysis = analyze(&r);
    assert!(analysis.cost.saved_is_upper_bound);
    assert_eq!(analysis.pruning.as_ref().unwrap().saved_epochs, 9);
    let text = format!("{:?}", content::blocks(&r, &analysis));
    assert!(text.contains("left at most 9 of the study's"), "{text}");
    assert!(
        text.contains("an upper bound on what pruning saved"),
        "{text}"
    );
    assert!(text.contains("would have cost at most about"), "{text}");
}

#[test]
fn a_pruning_study_that_pruned_nothing_saved_zero_not_minus_zero() {
    let mut r = fixture();
    r.spec.prune = Some("asha".parse().unwrap());
    let cost = cost::Cost::of(&r);
    let saved = cost.saved_core_seconds.unwrap();
    assert!(saved == 0.0 && saved.is_sign_positive(), "{saved}");
    let sentence = cost::cost_sentence(&cost);
    assert!(
        sentence.contains("about 0.00 core-hours more"),
        "{sentence}"
    );
    assert!(
        sentence.contains(": 0.0% of the study's cost"),
        "{sentence}"
    );
}
