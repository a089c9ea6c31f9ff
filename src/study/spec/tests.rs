use super::*;
use crate::engine::Precision;
use crate::train::EpochMetrics;
use crate::trial::{NewTrial, Phase, TrialRecord};

const GOOD: &str = r#"name = "small"
seeds = 2

[base]
dataset = "mnist"
model = "simple-cnn"
epochs = 1

[[method]]
name = "none"

[[method]]
name = "l1"
set = { penalty = "l1" }
grid = { l1 = [1e-5, 1e-4], lr = [0.001, 0.01] }
"#;

fn parse(text: &str) -> Result<StudySpec, StudySpecError> {
    StudySpec::parse(text, Path::new("study.toml"))
}

#[test]
fn a_spec_expands_to_methods_times_grid_points_times_seeds() {
    let spec = parse(GOOD).unwrap();
    let trials = spec.trials();
    assert_eq!(trials.len(), 2 * (1 + 2 * 2));
    assert_eq!(spec.baseline, "none");
    let last = trials.last().unwrap();
    assert_eq!(last.method, "l1");
    assert_eq!(last.seed, 1);
    assert_eq!(last.config.l1, Some(1e-4));
    assert_eq!(last.config.lr, 0.01);
    assert_eq!(last.config.seed, 1);
    assert_eq!(
        last.config.out.as_deref(),
        Some(Path::new("runs/small/0009-l1-l1=0.0001-lr=0.01-seed1"))
    );
    let numbers: Vec<usize> = trials.iter().map(|t| t.number).collect();
    assert_eq!(numbers, (0..10).collect::<Vec<_>>());
}

#[test]
fn an_unknown_option_is_named_with_its_line() {
    let text = GOOD.replace("epochs = 1", "epochs = 1\nlearning_rate = 0.1");
    let err = parse(&text).unwrap_err();
    assert_eq!(err.field, "base.learning_rate");
    assert_eq!(err.position, Some((8, 1)));
    assert!(err.problem.contains("unknown field"), "{err}");
    assert!(
        err.to_string()
            .starts_with("study.toml:8:1: field `base.learning_rate`"),
        "{err}"
    );
}

#[test]
fn a_wrong_type_is_named_with_its_line() {
    let text = GOOD.replace("epochs = 1", "epochs = \"ten\"");
    let err = parse(&text).unwrap_err();
    assert_eq!(err.field, "base.epochs");
    assert_eq!(err.position, Some((7, 1)));
    assert!(err.problem.contains("invalid type"), "{err}");
}

#[test]
fn an_empty_axis_is_refused_at_its_place() {
    let text = GOOD.replace("l1 = [1e-5, 1e-4]", "l1 = []");
    let err = parse(&text).unwrap_err();
    assert_eq!(err.field, "method[1].grid.l1");
    assert_eq!(err.position.map(|p| p.0), Some(15));
    assert!(err.problem.contains("empty"), "{err}");
}

#[test]
fn an_invalid_value_is_traced_to_the_option_that_set_it() {
    let text = GOOD.replace("l1 = [1e-5, 1e-4]", "l1 = [1e-5, -1.0]");
    let err = parse(&text).unwrap_err();
    assert_eq!(err.field, "method[1].grid.l1");
    assert!(err.problem.contains(">= 0"), "{err}");
}

#[test]
fn a_missing_required_option_is_reported() {
    let text = GOOD.replace("dataset = \"mnist\"\n", "");
    let err = parse(&text).unwrap_err();
    assert_eq!(err.field, "base.dataset");
    assert!(err.problem.contains("required"), "{err}");
}

#[test]
fn an_unknown_top_level_key_and_bad_toml_are_located() {
    let err = parse(&format!("colour = 1\n{GOOD}")).unwrap_err();
    assert_eq!(err.position, Some((1, 1)));
    assert_eq!(err.field, "colour");
    let err = parse("name = \"x\"\n[base\n").unwrap_err();
    assert_eq!(err.position.map(|p| p.0), Some(2));
}

#[test]
fn seeds_and_out_cannot_be_set_per_trial() {
    let err = parse(&GOOD.replace("epochs = 1", "epochs = 1\nseed = 3")).unwrap_err();
    assert_eq!(err.field, "base.seed");
    let err = parse(&GOOD.replace("seeds = 2", "seeds = 0")).unwrap_err();
    assert_eq!(err.field, "seeds");
}

#[test]
fn a_bad_value_names_its_key_and_a_threads_setting_is_refused() {
    let err = parse(&GOOD.replace("seeds = 2", "seeds = 2\nselect = \"test_acc\"")).unwrap_err();
    assert_eq!(err.field, "select");
    assert_eq!(err.position.map(|p| p.0), Some(3));
    let err = parse(&GOOD.replace("epochs = 1", "epochs = 1\nthreads = 4")).unwrap_err();
    assert_eq!(err.field, "base.threads");
    let err = parse(&GOOD.replace("seeds = 2", "seeds = 10000000000")).unwrap_err();
    assert_eq!(err.field, "seeds");
}

#[test]
fn precision_is_set_for_the_whole_study_and_refused_per_method() {
    let spec = parse(&GOOD.replace("epochs = 1", "epochs = 1\nprecision = \"bf16\"")).unwrap();
    assert!(spec
        .trials()
        .iter()
        .all(|t| t.config.precision == Precision::Bf16));
    assert!(parse(GOOD)
        .unwrap()
        .trials()
        .iter()
        .all(|t| t.config.precision.is_fp32()));
    let text = GOOD.replace(
        "set = { penalty = \"l1\" }",
        "set = { penalty = \"l1\", precision = \"bf16\" }",
    );
    let err = parse(&text).unwrap_err();
    assert!(err.field.ends_with("precision"), "{err}");
    assert!(err.problem.contains("[base]"), "{err}");
    let err = parse(&GOOD.replace("epochs = 1", "epochs = 1\nprecision = \"fp16\"")).unwrap_err();
    assert_eq!(err.field, "base.precision");
}

#[test]
fn a_paper_value_for_an_unknown_method_is_located() {
    let text = format!("{GOOD}\n[[paper]]\nmethod = \"l3\"\nmetric = \"test_acc\"\nvalue = 0.5\n");
    let err = parse(&text).unwrap_err();
    assert_eq!(err.field, "paper[0].method");
    assert!(err.position.is_some(), "{err}");
}

#[test]
fn the_baseline_must_be_a_method() {
    let err = parse(&GOOD.replace("seeds = 2", "seeds = 2\nbaseline = \"l2\"")).unwrap_err();
    assert_eq!(err.field, "baseline");
    assert_eq!(err.position, Some((3, 12)));
}

const CONFIRMED: &str = r#"name = "confirmed"
seeds = 2
confirm_seeds = 3

[base]
dataset = "mnist"
model = "standard-cnn"
epochs = 1

[[method]]
name = "none"

[[method]]
name = "l2"
set = { penalty = "l2" }
grid = { l2 = [1e-4, 1e-3] }

[[method]]
name = "l2+dropout"
set = { penalty = "l2", dropout = 0.5 }
point_from = "l2"
"#;

/// A finished record of `trial` whose tested (only) epoch has validation accuracy `val`.
fn finished(trial: &NewTrial, id: i64, val: f64) -> (TrialRecord, Vec<EpochMetrics>) {
    let summary: crate::train::Summary = serde_json::from_value(serde_json::json!({
        "status": "completed", "test_acc": 0.9, "test_loss": 0.3, "best_val_acc": val,
        "best_val_loss": 0.3, "best_epoch": 1, "tested_epoch": 1, "epochs_run": 1,
        "mean_epoch_seconds": 1.0, "sparsity": crate::regularize::SparsityReport::default(),
        "seed": trial.seed, "threads": 1, "version": "0", "classes": 10
    }))
    .unwrap();
    let epoch: EpochMetrics = serde_json::from_value(serde_json::json!({
        "epoch": 1, "train_data_loss": 0.3, "train_penalty": 0.0, "train_loss": 0.3,
        "train_acc": 0.9, "val_loss": 1.0 - val, "val_acc": val, "gap_loss": null,
        "gap_acc": null, "lr": 0.001, "seconds": 1.0, "train_seconds": 1.0,
        "images_per_s": 1.0, "sparsity": crate::regularize::SparsityReport::default()
    }))
    .unwrap();
    let record = TrialRecord {
        id,
        trial: trial.clone(),
        state: crate::trial::TrialState::Done,
        worker: None,
        retry: 0,
        attempts: 1,
        started_at: None,
        finished_at: None,
        summary: Some(summary),
        message: None,
        histogram: None,
        heartbeat_age: None,
    };
    (record, vec![epoch])
}

#[test]
fn names_that_are_folders_of_their_own_are_refused() {
    for name in [".", "..", "...", "a/b", "", "x\\ty"] {
        let text = GOOD.replace("name = \"small\"", &format!("name = \"{name}\""));
        let err = parse(&text).unwrap_err();
        assert_eq!(err.field, "name", "{name}: {err}");
    }
    let text = GOOD.replace("[[method]]\nname = \"none\"", "[[method]]\nname = \"..\"");
    assert_eq!(parse(&text).unwrap_err().field, "method[0].name");
    assert!(parse(&GOOD.replace("name = \"small\"", "name = \"v1.2\"")).is_ok());
}

#[test]
fn a_bad_seeds_value_says_what_is_expected_at_its_line() {
    for (seeds, expected) in [
        (
            "\"three\"",
            "a count of seeds (such as 3) or a list of seeds",
        ),
        ("1.5", "a count of seeds (such as 3) or a list of seeds"),
        ("-1", "got -1"),
        ("[0, \"a\"]", "each an integer >= 0, got \"a\""),
        ("[0, -2]", "each an integer >= 0, got -2"),
    ] {
        let text = GOOD.replace("seeds = 2", &format!("seeds = {seeds}"));
        let err = parse(&text).unwrap_err();
        let message = err.to_string();
        assert!(
            message.starts_with("study.toml:2:") && message.contains(expected),
            "{seeds}: {message}"
        );
        assert!(
            !message.contains("RawSeeds") && !message.contains("untagged"),
            "{message}"
        );
    }
    let list = parse(&GOOD.replace("seeds = 2", "seeds = [4, 7]")).unwrap();
    assert_eq!(list.seeds, vec![4, 7]);
}

#[test]
fn a_study_above_its_trial_limit_is_refused_with_the_count_and_how_to_raise_it() {
    let grid = "grid = { l1 = [1e-5, 1e-4], lr = [0.001, 0.01] }";
    let values: Vec<String> = (0..5001)
        .map(|k| format!("{}", 1e-6 * (k + 1) as f64))
        .collect();
    let big = GOOD.replace(grid, &format!("grid = {{ l1 = [{}] }}", values.join(", ")));
    let err = parse(&big).unwrap_err();
    assert_eq!(err.field, "max_trials");
    assert!(
        err.problem
            .contains("expands to 10004 trials, more than its limit of 10000")
            && err.problem.contains("`max_trials = 10004`"),
        "{err}"
    );
    let raised = format!("max_trials = 10004\n{big}");
    assert_eq!(parse(&raised).unwrap().trials().len(), 10004);
    let too_high = format!("max_trials = 2000000\n{GOOD}");
    assert!(parse(&too_high)
        .unwrap_err()
        .problem
        .contains("expected at most 1000000"));
}

#[test]
fn a_grid_of_millions_of_points_is_refused_before_it_is_expanded() {
    let axis = "[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]";
    let axes: Vec<String> = [
        "epochs",
        "batch_size",
        "lr",
        "l1",
        "l2",
        "momentum",
        "dropout",
    ]
    .iter()
    .map(|k| format!("{k} = {axis}"))
    .collect();
    let grid = "grid = { l1 = [1e-5, 1e-4], lr = [0.001, 0.01] }";
    let text = GOOD.replace(grid, &format!("grid = {{ {} }}", axes.join(", ")));
    let err = parse(&text).unwrap_err();
    assert_eq!(err.field, "method[1].grid");
    assert!(err.problem.contains("10000000 points"), "{err}");
}

#[test]
fn no_validation_split_is_refused_where_a_choice_or_early_stopping_needs_one() {
    let zero = GOOD.replace("epochs = 1", "epochs = 1\nval_fraction = 0.0");
    let err = parse(&zero).unwrap_err();
    assert_eq!(err.field, "base.val_fraction");
    assert_eq!(err.position, Some((8, 1)));
    assert!(
        err.problem.contains("method `l1` has 4 grid points")
            && err.problem.contains("`val_fraction` must be above 0"),
        "{err}"
    );
    let single = "grid = { l1 = [1e-5] }";
    let grid = "grid = { l1 = [1e-5, 1e-4], lr = [0.001, 0.01] }";
    let one_point = zero.replace(grid, single);
    assert!(parse(&one_point).is_ok(), "nothing is chosen: it may run");
    let stopping = one_point.replace("epochs = 1", "epochs = 1\npatience = 2");
    let err = parse(&stopping).unwrap_err();
    assert_eq!(err.field, "base.val_fraction");
    assert!(err.problem.contains("early stopping (`patience`)"), "{err}");
}

#[test]
fn confirmation_seeds_follow_the_search_seeds_and_must_be_fresh() {
    let spec = parse(CONFIRMED).unwrap();
    assert_eq!(spec.seeds, vec![0, 1]);
    assert_eq!(spec.confirm_seeds, vec![2, 3, 4]);
    let err = parse(&CONFIRMED.replace("confirm_seeds = 3", "confirm_seeds = [1, 5]")).unwrap_err();
    assert_eq!(err.field, "confirm_seeds");
    assert!(
        err.problem.contains("seed 1 is also a search seed"),
        "{err}"
    );
    assert_eq!(err.position, Some((3, 17)));
}

#[test]
fn a_method_without_a_grid_runs_only_on_the_confirmation_seeds_and_a_grid_on_the_search_seeds() {
    let spec = parse(CONFIRMED).unwrap();
    let summary: Vec<(String, u64, Phase)> = spec
        .trials()
        .iter()
        .map(|t| (t.method.clone(), t.seed, t.phase))
        .collect();
    let none = |seed| ("none".to_string(), seed, Phase::Confirm);
    let l2 = |seed| ("l2".to_string(), seed, Phase::Search);
    assert_eq!(
        summary,
        vec![none(2), none(3), none(4), l2(0), l2(1), l2(0), l2(1)]
    );
    assert_eq!(spec.expected_trials(), 7 + 2 * 3);
    assert_eq!(spec.first_phase_len(), spec.trials().len());
    let plain = parse(GOOD).unwrap();
    assert_eq!(plain.first_phase_len(), plain.trials().len());
}

#[test]
fn the_chosen_point_is_confirmed_once_its_search_has_ended_and_lends_its_strength() {
    let spec = parse(CONFIRMED).unwrap();
    let trials = spec.trials();
    let mut records = Vec::new();
    let mut epochs = BTreeMap::new();
    // The search of l2: the second point (1e-3) scores higher on validation.
    for (k, t) in trials.iter().enumerate() {
        let val = if t.point.get("l2") == Some(&serde_json::json!(1e-3)) {
            0.8
        } else {
            0.7
        };
        let (record, e) = finished(t, k as i64, val);
        records.push(record);
        epochs.insert(k as i64, e);
    }
    let lookup = |id: i64| epochs.get(&id).map_or(&[][..], Vec::as_slice);
    // While one search trial is still running, nothing follows.
    let mut unfinished = records.clone();
    unfinished[6].state = crate::trial::TrialState::Running;
    assert!(spec.later_trials(&unfinished, lookup).is_empty());
    let later = spec.later_trials(&records, lookup);
    type Row = (usize, String, u64, Phase, Option<f32>, Option<f32>);
    let got: Vec<Row> = later
        .iter()
        .map(|t| {
            let c = &t.config;
            (t.number, t.method.clone(), t.seed, t.phase, c.l2, c.dropout)
        })
        .collect();
    let row = |number, method: &str, seed, dropout| {
        (
            number,
            method.to_string(),
            seed,
            Phase::Confirm,
            Some(1e-3),
            dropout,
        )
    };
    assert_eq!(
        got,
        vec![
            row(7, "l2", 2, None),
            row(8, "l2", 3, None),
            row(9, "l2", 4, None),
            row(10, "l2+dropout", 2, Some(0.5)),
            row(11, "l2+dropout", 3, Some(0.5)),
            row(12, "l2+dropout", 4, Some(0.5)),
        ]
    );
    assert_eq!(
        later[3].point,
        BTreeMap::from([("l2".to_string(), serde_json::json!(1e-3))])
    );
    // The same records give the same trials.
    assert_eq!(spec.later_trials(&records, lookup), later);
}

#[test]
fn a_point_source_must_be_another_method_with_its_own_points() {
    let err = parse(&CONFIRMED.replace("point_from = \"l2\"", "point_from = \"l3\"")).unwrap_err();
    assert_eq!(err.field, "method[2].point_from");
    assert!(err.problem.contains("no method is called `l3`"), "{err}");
    let with_grid = CONFIRMED.replace(
        "point_from = \"l2\"",
        "point_from = \"l2\"\ngrid = { dropout = [0.2, 0.5] }",
    );
    let err = parse(&with_grid).unwrap_err();
    assert_eq!(err.field, "method[2].point_from");
}

/// [`CONFIRMED`] in two groups that differ by learning rate.
fn two_groups() -> String {
    CONFIRMED.replace(
        "[[method]]\nname = \"none\"",
        "[[group]]\nname = \"slow\"\nset = { lr = 0.001 }\n\n[[group]]\nname = \"fast\"\n\
         set = { lr = 0.01 }\n\n[[method]]\nname = \"none\"",
    )
}

#[test]
fn the_walk_visits_each_group_then_each_method_then_each_point_a_borrowed_point_among_them() {
    let spec = parse(&two_groups()).unwrap();
    let walk: Vec<(usize, usize, usize)> = spec.cells().map(|c| (c.g, c.m, c.p)).collect();
    // `none` has one point, `l2` two, and `l2+dropout` may be given either of `l2`'s.
    let per_group = [(0, 0), (1, 0), (1, 1), (2, 0), (2, 1)];
    let expected: Vec<(usize, usize, usize)> = (0..2)
        .flat_map(|g| per_group.iter().map(move |&(m, p)| (g, m, p)))
        .collect();
    assert_eq!(walk, expected);
    let borrowed = spec.cells().find(|c| c.m == 2 && c.p == 1).unwrap();
    assert_eq!(borrowed.point, &spec.methods[1].points[1]);
    assert_eq!(borrowed.group.name, "slow");
}

#[test]
fn later_trials_of_several_groups_are_numbered_by_group_then_waiting_method_then_seed() {
    let spec = parse(&two_groups()).unwrap();
    let trials = spec.trials();
    assert_eq!(trials.len(), 2 * 7);
    let mut records = Vec::new();
    let mut epochs = BTreeMap::new();
    for (k, t) in trials.iter().enumerate() {
        let (record, e) = finished(t, k as i64, 0.7);
        records.push(record);
        epochs.insert(k as i64, e);
    }
    let lookup = |id: i64| epochs.get(&id).map_or(&[][..], Vec::as_slice);
    let later = spec.later_trials(&records, lookup);
    let got: Vec<(usize, String, String, u64)> = later
        .iter()
        .map(|t| (t.number, t.group.clone(), t.method.clone(), t.seed))
        .collect();
    let mut expected = Vec::new();
    for group in ["slow", "fast"] {
        for method in ["l2", "l2+dropout"] {
            for seed in 2..5 {
                let number = 14 + expected.len();
                expected.push((number, group.to_string(), method.to_string(), seed));
            }
        }
    }
    assert_eq!(got, expected);
    assert_eq!(spec.expected_trials(), trials.len() + later.len());
    assert_eq!(
        later[0].config.lr, 0.001,
        "a group's settings reach its later trials"
    );
    assert_eq!(later[6].config.lr, 0.01);
}

fn claims(text: &str) -> Result<Vec<PaperClaim>, StudySpecError> {
    read_claims(text, Path::new("claims.toml"), &parse(GOOD).unwrap())
}

#[test]
fn a_claims_file_reads_each_kind_of_test() {
    let text = r#"
[[claim]]
text = "The baseline reaches 65-70%"
source = "Sec. 4"
range = { method = "none", metric = "best_val_acc", low = 0.65, high = 0.70 }

[[claim]]
text = "L1 beats no penalty"
beats = { method = "l1", over = ["none"] }

[[claim]]
text = "L1 is best balanced"
untested = "balance is not defined"
"#;
    let read = claims(text).unwrap();
    assert_eq!(read.len(), 3);
    assert_eq!(
        read[0].test,
        ClaimTest::Range(RangeTest {
            method: "none".into(),
            metric: Metric::BestValAcc,
            low: 0.65,
            high: 0.70
        })
    );
    assert_eq!(read[0].source, "Sec. 4");
    assert!(matches!(&read[1].test, ClaimTest::Beats(b) if b.over == ["none"]));
    assert!(
        matches!(&read[2].test, ClaimTest::Untested { why } if why == "balance is not defined")
    );
}

#[test]
fn a_bad_claim_is_located_by_claim_field_and_line() {
    // Each body is the second claim, from line 5 on; the bad value is on `line`.
    let cases = [
        (
            "text = \"x\"\nbeats = { method = \"l3\", over = [\"none\"] }",
            "claim[1].beats.method",
            6,
            "no method is called `l3` (methods: none, l1)",
        ),
        (
            "text = \"x\"\nbeats = { method = \"l1\", over = [\"none\", \"l1\"] }",
            "claim[1].beats.over",
            6,
            "compared with itself",
        ),
        (
            "text = \"x\"\nbeats = { method = \"l1\", over = [\"none\", \"none\"] }",
            "claim[1].beats.over",
            6,
            "`none` is named twice",
        ),
        (
            "text = \"x\"\nbeats = { method = \"l1\", over = [] }",
            "claim[1].beats.over",
            6,
            "at least one method",
        ),
        (
            "text = \"x\"\nrange = { method = \"none\", metric = \"test_acc\", low = 0.9, high = 0.1 }",
            "claim[1].range.high",
            6,
            "low <= high",
        ),
        (
            "text = \"x\"\nrange = { method = \"none\", metric = \"test_acc\", low = 65, high = 70 }",
            "claim[1].range.low",
            6,
            "0.65 for 65%",
        ),
        (
            "text = \"x\"\nuntested = \"a\"\nbeats = { method = \"l1\", over = [\"none\"] }",
            "claim[1]",
            4,
            "exactly one test",
        ),
        (
            "text = \"x\"\nuntested = \" \"",
            "claim[1].untested",
            6,
            "why the claim is not tested",
        ),
        (
            "text = \"x\"\ngroup = \"mnist\"\nuntested = \"a\"",
            "claim[1].group",
            6,
            "no group is called `mnist`: the study has no groups",
        ),
        ("text = \" \"\nuntested = \"a\"", "claim[1].text", 5, "the claim's words"),
    ];
    for (body, field, line, problem) in cases {
        let text = format!("[[claim]]\ntext = \"fine\"\nuntested = \"a\"\n[[claim]]\n{body}\n");
        let err = claims(&text).unwrap_err();
        assert_eq!(err.field, field, "{body}");
        assert!(err.problem.contains(problem), "{body}: {err}");
        assert_eq!(err.file, Path::new("claims.toml"));
        assert_eq!(err.position.map(|p| p.0), Some(line), "{body}: {err}");
    }
}

#[test]
fn a_misspelt_or_unknown_value_in_a_claim_names_the_claim_the_field_and_the_choices() {
    let first = "[[claim]]\ntext = \"fine\"\nuntested = \"a\"\n";
    let text = format!(
        "{first}[[claim]]\ntext = \"x\"\nrange = {{ method = \"none\", metrc = \"test_acc\", low = 0.1, high = 0.2 }}\n"
    );
    let err = claims(&text).unwrap_err();
    assert_eq!(err.field, "claim[1].range.metrc");
    assert!(err.problem.contains("`metric`"), "{err}");
    assert_eq!(err.position.map(|p| p.0), Some(6));
    let text = format!(
        "{first}[[claim]]\ntext = \"x\"\nrange = {{ method = \"none\", metric = \"f1\", low = 0.1, high = 0.2 }}\n"
    );
    let err = claims(&text).unwrap_err();
    assert_eq!(err.field, "claim[1].range.metric");
    assert!(
        err.problem.contains("f1") && err.problem.contains("test_acc"),
        "{err}"
    );
    let err = claims("# nothing here\n").unwrap_err();
    assert_eq!(err.field, "claim");
}

#[test]
fn a_paper_value_with_an_unknown_metric_is_located() {
    let text = format!("{GOOD}\n[[paper]]\nmethod = \"l1\"\nmetric = \"f1\"\nvalue = 0.5\n");
    let err = parse(&text).unwrap_err();
    assert!(
        err.problem.contains("f1") && err.problem.contains("best_val_acc"),
        "{err}"
    );
    assert_eq!(err.position, Some((19, 10)), "{err}");
}
