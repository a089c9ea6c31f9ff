//! `regstudy report` on a fixed store: the tables are checked as exact text against values
//! worked out by hand, and every file of the report is written.

mod common;

use common::Scratch;
use regstudy::regularize::{SparsityReport, WeightHistogram, WeightStats};
use regstudy::store::{Outcome, SqliteStore, Store, Worker};
use regstudy::study::spec::StudySpec;
use regstudy::train::{EpochMetrics, Summary};
use regstudy::trial::{StudyRecord, TrialState};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const SPEC: &str = r#"name = "fixed"
seeds = 3
baseline = "none"

[base]
dataset = "mnist"
model = "simple-cnn"
epochs = 2

[[method]]
name = "none"

[[method]]
name = "l2"
set = { penalty = "l2" }
grid = { l2 = [1e-4, 1e-3] }

[[paper]]
method = "none"
metric = "test_acc"
value = 0.70
source = "Example et al., Table 1"
"#;

/// Per trial (in trial order: none x 3 seeds, l2=1e-4 x 3, l2=1e-3 x 3): validation accuracy
/// of the last (tested) epoch, also the best, and test accuracy.
const RESULTS: [(f64, f64); 9] = [
    (0.69, 0.70),
    (0.70, 0.72),
    (0.71, 0.74),
    (0.70, 0.80),
    (0.71, 0.81),
    (0.72, 0.82),
    (0.73, 0.75),
    (0.74, 0.76),
    (0.75, 0.78),
];

fn sparsity(below_1e3: f64) -> SparsityReport {
    SparsityReport {
        overall: WeightStats {
            count: 1000,
            below_fraction: [0.0, below_1e3, below_1e3],
            ..WeightStats::default()
        },
        layers: Vec::new(),
    }
}

fn epoch(epoch: usize, train_acc: f64, val_acc: f64, below_1e3: f64) -> EpochMetrics {
    EpochMetrics {
        epoch,
        train_data_loss: 0.5,
        train_penalty: 0.0,
        train_loss: 0.5,
        train_acc,
        val_loss: Some(0.9),
        val_acc: Some(val_acc),
        gap_loss: Some(0.4),
        gap_acc: Some(train_acc - val_acc),
        train_eval_loss: Some(0.5),
        train_eval_acc: Some(train_acc),
        eval_gap_acc: Some(train_acc - val_acc),
        eval_gap_loss: Some(0.4),
        lr: 0.001,
        seconds: 10.0,
        train_seconds: 9.0,
        images_per_s: 1000.0,
        threads: Some(1),
        sparsity: sparsity(below_1e3),
    }
}

/// An empty folder for one test, removed when the test ends.
fn scratch(name: &str) -> Scratch {
    Scratch::new(name)
}

/// A store holding the study with every trial done, as a worker would have left it.
fn fixed_store(dir: &Path) -> PathBuf {
    let path = dir.join("fixed.db");
    let store = SqliteStore::open(&path).unwrap();
    let spec = StudySpec::parse(SPEC, Path::new("fixed.toml")).unwrap();
    let record = StudyRecord {
        name: "fixed".into(),
        spec: SPEC.into(),
        created_at: 1_790_000_000.0,
        version: "0.1.0".into(),
    };
    store.create_study(&record, &spec.trials()).unwrap();
    let worker = Worker::of_this_process(0);
    for (best_val, test) in RESULTS {
        let trial = store
            .claim("fixed", &worker, Duration::from_secs(60))
            .unwrap()
            .unwrap();
        let baseline = trial.trial.method == "none";
        let (train_acc, below, seconds) = if baseline {
            (0.90, 0.01, 10.0)
        } else {
            (0.85, 0.25, 10.5)
        };
        store
            .record_epoch(trial.id, &worker, &epoch(1, 0.6, 0.6, below))
            .unwrap();
        let last = EpochMetrics {
            seconds,
            ..epoch(2, train_acc, best_val, below)
        };
        store.record_epoch(trial.id, &worker, &last).unwrap();
        let summary = Summary {
            status: "completed".into(),
            message: None,
            test_acc: Some(test),
            test_loss: Some(0.8),
            best_val_acc: Some(best_val),
            best_val_loss: Some(0.9),
            best_epoch: Some(2),
            tested_epoch: Some(2),
            epochs_run: 2,
            mean_epoch_seconds: seconds,
            mean_train_seconds: seconds - 1.0,
            sparsity: sparsity(below),
            seed: trial.trial.seed,
            threads: 2,
            version: "0.1.0".into(),
            classes: 10,
        };
        let outcome = Outcome {
            state: TrialState::Done,
            summary: Some(summary),
            message: None,
            histogram: Some(WeightHistogram::of([&[0.0f32, 1e-4, 0.01][..]])),
        };
        store.finish(trial.id, &worker, &outcome).unwrap();
    }
    path
}

#[test]
fn the_report_of_a_fixed_store_has_exactly_the_hand_computed_tables() {
    let dir = scratch("report");
    let store = fixed_store(&dir);
    let out = dir.join("report");
    let run = common::regstudy()
        .args(["report", "fixed", "--store"])
        .arg(&store)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    // none: test 70, 72, 74 -> mean 72.00, s = 2, CI = t(0.975, 2) * 2 / sqrt(3) = 4.97.
    // l2: the point 1e-3 has the higher mean validation accuracy of its tested weights (74
    // against 71) even though 1e-4 tests better; its test 75, 76, 78 -> mean 76.33,
    // s = 1.528, CI = 3.79. Paired differences 5, 4, 4 -> t = 13.0 with 2 degrees of freedom,
    // p = 1 - 13 / sqrt(13^2 + 2) = 0.00587; one comparison, so Holm's p is the same.
    // Tested epoch: none trains at 90 and validates at 70 (gap 20), l2 at 85 and 74 (gap 11);
    // training takes 9 and 9.5 s per epoch (overhead 100 * (9.5 / 9 - 1) = +5.6%).
    let methods = std::fs::read_to_string(out.join("tables/methods.csv")).unwrap();
    let expected = "\
method,point,chosen on seeds,reported seeds,n,test acc % (mean ± 95% CI),train acc % (eval),val acc %,gap (pp),train acc % (running),zero weights %,zero filters/units %,|w|<1e-3 %,train s/epoch,overhead %,diverged,p,p (Holm),vs baseline
none,—,—,0-2,3,72.00 ± 4.97,90.00,70.00,20.00,90.00,0.00,0.00,1.00,9.00,—,0 of 3,—,—,baseline
l2,l2=0.001,0-2,0-2,3,76.33 ± 3.79,85.00,74.00,11.00,85.00,0.00,0.00,25.00,9.50,+5.6,0 of 6,0.00587,0.00587,better
";
    // RFC 4180: lines end in CRLF.
    assert_eq!(methods, expected.replace('\n', "\r\n"));
    let sweep = std::fs::read_to_string(out.join("tables/sweep.csv")).unwrap();
    assert!(sweep.contains("l2,l2=0.0001,3,71.00 ± 2.48"), "{sweep}");
    let paper = std::fs::read_to_string(out.join("tables/paper.csv")).unwrap();
    assert!(
        paper.contains("none,test_acc,70.00,72.00 ± 4.97,+2.00,"),
        "{paper}"
    );
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        stdout.contains("| l2     | l2=0.001 | 0-2            | 76.33 ± 3.79"),
        "{stdout}"
    );
    for file in [
        "report.md",
        "report.html",
        "figures/curves-acc.svg",
        "figures/curves-acc.png",
    ] {
        assert!(out.join(file).is_file(), "{file} written");
    }
}

#[test]
fn the_papers_claims_are_judged_with_the_numbers_they_follow_from() {
    let dir = scratch("claims");
    let store = fixed_store(&dir);
    let out = dir.join("report");
    // none: test 70, 72, 74 -> 95% CI 72.00 ± 4.97 = 67.03-76.97 (see the test above); l2
    // beats none with p = 0.00587 (one comparison).
    let claims = dir.join("claims.toml");
    std::fs::write(
        &claims,
        r#"
[[claim]]
text = "No penalty reaches 60-80%"
range = { method = "none", metric = "test_acc", low = 0.60, high = 0.80 }

[[claim]]
text = "No penalty reaches 80-90%"
range = { method = "none", metric = "test_acc", low = 0.80, high = 0.90 }

[[claim]]
text = "No penalty reaches 70-80%"
range = { method = "none", metric = "test_acc", low = 0.70, high = 0.80 }

[[claim]]
text = "L2 beats no penalty"
source = "Example et al., Sec. 2"
beats = { method = "l2", over = ["none"] }

[[claim]]
text = "No penalty beats L2"
beats = { method = "none", over = ["l2"] }
"#,
    )
    .unwrap();
    let run = common::regstudy()
        .args(["report", "fixed", "--store"])
        .arg(&store)
        .arg("--out")
        .arg(&out)
        .arg("--claims")
        .arg(&claims)
        .output()
        .unwrap();
    common::assert_success(&run);
    let table = std::fs::read_to_string(out.join("tables/claims.csv")).unwrap();
    let rows: Vec<&str> = table.lines().collect();
    assert_eq!(rows[0], "claim,source,test,regstudy's numbers,verdict");
    assert!(
        rows[1].ends_with("\"none: 72.00 ± 4.97% (67.03-76.97%, n = 3)\",holds"),
        "{table}"
    );
    assert!(rows[2].ends_with(",does not hold"), "{table}");
    assert!(rows[3].ends_with(",open"), "{table}");
    assert!(
        rows[4].contains("Example et al., Sec. 2")
            && rows[4].contains("+4.33 pp, p = 0.00587")
            && rows[4].ends_with(",holds"),
        "{table}"
    );
    assert!(rows[5].ends_with(",does not hold"), "{table}");
    assert!(common::stdout(&run).contains("| L2 beats no penalty"));
}

#[test]
fn a_claims_file_naming_another_studys_method_is_refused_with_its_place() {
    let dir = scratch("claims-bad");
    let store = fixed_store(&dir);
    let claims = dir.join("claims.toml");
    std::fs::write(
        &claims,
        "[[claim]]\ntext = \"L1 beats no penalty\"\nbeats = { method = \"l1\", over = [\"none\"] }\n",
    )
    .unwrap();
    let run = common::regstudy()
        .args(["report", "fixed", "--store"])
        .arg(&store)
        .arg("--out")
        .arg(dir.join("report"))
        .arg("--claims")
        .arg(&claims)
        .output()
        .unwrap();
    assert!(!run.status.success());
    let err = common::stderr(&run);
    assert!(
        err.contains("claims.toml:3:")
            && err.contains("claim[0].beats.method")
            && err.contains("no method is called `l1` (methods: none, l2)"),
        "{err}"
    );
    assert!(!dir.join("report").exists(), "no report without its claims");
    let run = common::regstudy()
        .args(["report", "fixed", "--store"])
        .arg(&store)
        .args(["--claims", "preset:nope"])
        .output()
        .unwrap();
    assert!(common::stderr(&run).contains(
        "no preset `nope` has claims (presets with claims: deepa2025, l2-dropout-bn, levy)"
    ));
}

#[test]
fn a_study_exports_as_tensorboard_event_files_and_csv() {
    let dir = scratch("export");
    let store = fixed_store(&dir);
    let export = |format: &str, out: &Path| {
        let run = common::regstudy()
            .args(["export", "fixed", "--format", format, "--store"])
            .arg(&store)
            .arg("--out")
            .arg(out)
            .output()
            .unwrap();
        assert!(
            run.status.success(),
            "{}",
            String::from_utf8_lossy(&run.stderr)
        );
    };
    let tensorboard = dir.join("tb");
    export("tensorboard", &tensorboard);
    let runs: Vec<_> = std::fs::read_dir(&tensorboard).unwrap().collect();
    assert_eq!(runs.len(), 9, "one TensorBoard run per trial");
    let run = tensorboard.join("0008-l2-l2=0.001-seed2");
    let events = std::fs::read_dir(&run)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let name = events.file_name().unwrap().to_string_lossy().into_owned();
    assert!(name.starts_with("events.out.tfevents."), "{name}");
    let bytes = std::fs::read(&events).unwrap();
    let text = String::from_utf8_lossy(&bytes);
    assert!(text.contains("brain.Event:2") && text.contains("val/accuracy"));
    let csv = dir.join("csv");
    export("csv", &csv);
    let trials = std::fs::read_to_string(csv.join("trials.csv")).unwrap();
    assert_eq!(trials.lines().count(), 1 + 9);
    let last = trials.lines().last().unwrap();
    assert!(
        last.starts_with("8,,l2,\"{\"\"l2\"\":0.001}\",2,search,done,2,0.78,"),
        "{last}"
    );
    let epochs = std::fs::read_to_string(csv.join("epochs.csv")).unwrap();
    assert_eq!(epochs.lines().count(), 1 + 9 * 2);
}

/// Every file under `dir`, by path relative to it, with its bytes.
fn snapshot(dir: &Path) -> std::collections::BTreeMap<PathBuf, Vec<u8>> {
    let mut files = std::collections::BTreeMap::new();
    let mut folders = vec![dir.to_path_buf()];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                folders.push(path);
            } else {
                let relative = path.strip_prefix(dir).unwrap().to_path_buf();
                files.insert(relative, std::fs::read(&path).unwrap());
            }
        }
    }
    files
}

fn report_command(store: &Path, out: &Path) -> Command {
    let mut command = common::regstudy();
    command
        .args(["report", "fixed", "--store"])
        .arg(store)
        .arg("--out")
        .arg(out)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    command
}

/// Writes `files` as the folder `dir`, replacing what it held.
fn lay_out(dir: &Path, files: &std::collections::BTreeMap<PathBuf, Vec<u8>>) {
    let _ = std::fs::remove_dir_all(dir);
    for (relative, bytes) in files {
        let path = dir.join(relative);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }
}

#[test]
fn a_report_killed_at_random_points_leaves_the_old_or_the_new_report_whole() {
    let dir = scratch("report-kill");
    let store = fixed_store(&dir);
    let reference = dir.join("reference");
    assert!(report_command(&store, &reference)
        .status()
        .unwrap()
        .success());
    let new = snapshot(&reference);
    assert!(new.len() > 10, "a report has its tables and figures");
    // The old report: the same files with other bytes, so that a mix shows.
    let old: std::collections::BTreeMap<PathBuf, Vec<u8>> = new
        .iter()
        .map(|(path, bytes)| (path.clone(), [b"old ".as_slice(), bytes].concat()))
        .collect();
    let reports = dir.join("reports");
    let out = reports.join("fixed");
    // Delays from a fixed seed, spread over the half second a report takes.
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let (mut saw_old, mut saw_new) = (false, false);
    for _ in 0..6 {
        lay_out(&out, &old);
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let delay = Duration::from_millis(5 + state % 450);
        let mut child = report_command(&store, &out).spawn().unwrap();
        std::thread::sleep(delay);
        let _ = child.kill();
        child.wait().unwrap();
        let now = snapshot(&out);
        assert!(
            now == old || now == new,
            "after a kill at {delay:?} the report folder holds {} files, neither the old \
             report nor the new one",
            now.len()
        );
        saw_old |= now == old;
        saw_new |= now == new;
    }
    assert!(saw_old, "some kill came before the swap");
    lay_out(&out, &old);
    assert!(report_command(&store, &out).status().unwrap().success());
    assert_eq!(snapshot(&out), new);
    let beside: Vec<_> = std::fs::read_dir(&reports)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        beside,
        ["fixed"],
        "no temporary is left (saw new: {saw_new})"
    );
}

#[test]
fn a_report_does_not_replace_a_folder_that_holds_other_files() {
    let dir = scratch("report-foreign");
    let store = fixed_store(&dir);
    let out = dir.join("mine");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("notes.txt"), "keep").unwrap();
    let run = report_command(&store, &out)
        .stderr(std::process::Stdio::piped())
        .output()
        .unwrap();
    assert!(!run.status.success());
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        stderr.contains("holds `notes.txt`, which is not part of a report"),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read_to_string(out.join("notes.txt")).unwrap(),
        "keep"
    );
}

#[test]
fn report_refuses_the_names_dot_and_dot_dot_and_leaves_the_working_folder_alone() {
    let dir = scratch("report-dots");
    let store = fixed_store(&dir);
    let work = dir.join("work");
    std::fs::create_dir_all(&work).unwrap();
    std::fs::write(work.join("report.md"), "my notes").unwrap();
    for name in ["..", ".", "a/b", "../fixed"] {
        let run = common::regstudy()
            .args(["report", name, "--store"])
            .arg(&store)
            .current_dir(&work)
            .output()
            .unwrap();
        assert!(!run.status.success(), "the name {name} is refused");
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert!(stderr.contains("<NAME>"), "{name}: {stderr}");
    }
    assert_eq!(
        std::fs::read_to_string(work.join("report.md")).unwrap(),
        "my notes"
    );
    let entries: Vec<_> = std::fs::read_dir(&work).unwrap().collect();
    assert_eq!(
        entries.len(),
        1,
        "nothing else is written in the working folder"
    );
}

#[test]
fn a_report_given_a_non_utf8_folder_is_written_there() {
    use std::os::unix::ffi::OsStrExt;
    let dir = scratch("report-bytes");
    let store = fixed_store(&dir);
    let out = dir.join(std::ffi::OsStr::from_bytes(b"out-\xff"));
    assert!(report_command(&store, &out).status().unwrap().success());
    assert!(out.join("report.md").is_file());
}
