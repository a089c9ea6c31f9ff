//! A study pruned by ASHA, run end to end on MNIST by the binary: the weak grid points stop
//! at the first rung, `study status` counts them, the report says what the rule saved, and
//! the chosen point is one trained to the end.

mod common;

use common::{assert_success, run_offline, stdout, Scratch, DATA};
use regstudy::store;
use regstudy::trial::TrialState;

/// A baseline and three learning rates, one seed, 3 epochs on 1500 images; rungs at epoch 1
/// (and 2), where the top half goes on. Trials run in number order with one worker, so the
/// good rate (first) reaches each rung first and the two tiny rates, beaten by it, stop at
/// epoch 1.
fn write_spec(dir: &Scratch) -> std::path::PathBuf {
    let spec = format!(
        r#"name = "asha"
seeds = 1
runs_dir = "{runs}"
prune = {{ rule = "asha", min_epochs = 1, reduction = 2 }}

[base]
dataset = "mnist"
data_dir = "{DATA}"
model = "simple-cnn"
epochs = 3
train_subset = 1500
test_subset = 300
val_fraction = 0.1

[[method]]
name = "none"

[[method]]
name = "l2"
set = {{ penalty = "l2", l2 = 1e-4 }}
grid = {{ lr = [0.001, 1e-6, 1e-7] }}
"#,
        runs = dir.path("runs").display()
    );
    let path = dir.path("asha.toml");
    std::fs::write(&path, spec).unwrap();
    path
}

#[test]
fn a_pruned_study_stops_the_weak_points_at_the_first_rung_and_reports_what_it_saved() {
    let dir = Scratch::new("prune-cli");
    let spec = write_spec(&dir);
    let db = dir.path("studies.db").display().to_string();
    let run = run_offline(&[
        "study",
        "run",
        spec.to_str().unwrap(),
        "--store",
        &db,
        "--workers",
        "1",
        "--threads",
        "1",
        "--quiet",
    ]);
    assert_success(&run);

    let opened = store::open_existing(&db).unwrap();
    let trials = opened.trials("asha").unwrap();
    let mut states = Vec::new();
    for t in &trials {
        let epochs = opened.epochs(t.id).unwrap().len();
        states.push((t.trial.method.clone(), t.state, epochs));
    }
    assert_eq!(
        states,
        [
            ("none".to_string(), TrialState::Done, 3),
            ("l2".to_string(), TrialState::Done, 3),
            ("l2".to_string(), TrialState::Pruned, 1),
            ("l2".to_string(), TrialState::Pruned, 1),
        ]
    );
    let message = trials[2].message.as_deref().unwrap();
    assert!(
        message.starts_with("pruned at epoch 1: its validation accuracy"),
        "{message}"
    );

    let status = run_offline(&["study", "status", "asha", "--store", &db]);
    assert_success(&status);
    let line = stdout(&status)
        .lines()
        .find(|l| l.starts_with("asha"))
        .unwrap()
        .split_whitespace()
        .map(str::to_string)
        .collect::<Vec<_>>();
    // waiting running done failed diverged pruned total
    assert_eq!(line[1..], ["0", "0", "2", "0", "0", "2", "4"]);

    let out = dir.path("report");
    let report = run_offline(&[
        "report",
        "asha",
        "--store",
        &db,
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_success(&report);
    let text = std::fs::read_to_string(out.join("report.md")).unwrap();
    // 4 trials of 3 epochs; the two pruned ones trained 1 of their 3.
    assert!(
        text.contains(
            "It stopped 2 of the 3 search trials of methods with a grid, which left 4 of the \
             study's 12 trial-epochs untrained (33.3%)"
        ),
        "{text}"
    );
    assert!(text.contains("rungs at 1, 2 of 3 epochs"), "{text}");
    let methods = std::fs::read_to_string(out.join("tables/methods.csv")).unwrap();
    let l2 = methods.lines().find(|l| l.starts_with("l2,")).unwrap();
    assert!(
        l2.starts_with("l2,lr=0.001,"),
        "the point trained to the end: {l2}"
    );
    let trials_table = std::fs::read_to_string(out.join("tables/trials.csv")).unwrap();
    assert!(trials_table.contains("pruned,2"), "{trials_table}");
}
