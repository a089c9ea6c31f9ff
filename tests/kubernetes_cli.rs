//! `regstudy study launch k8s`: the Indexed Job manifest, checked three ways, since no
//! Kubernetes cluster can run here: against a golden file; against the Kubernetes API schemas
//! by `kubernetes-validate --strict` (named by `REGSTUDY_TEST_K8S_VALIDATE`, as CI installs
//! it); and by running its container's command once per completion index, as the Job's pods
//! would, against a PostgreSQL store until the study is finished.

mod common;

use common::{assert_success, stdout, PostgresDatabase, Scratch, DATA};
use regstudy::store;
use regstudy::study::launch::KUBERNETES_VERSIONS;
use regstudy::trial::TrialState;
use std::process::Command;

const GOLDEN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/k8s/job.yaml");

fn launch(args: &[&str]) -> std::process::Output {
    common::regstudy()
        .args(["study", "launch", "k8s"])
        .args(args)
        .output()
        .unwrap()
}

const EXAMPLE: [&str; 11] = [
    "deepa2025",
    "--image",
    "registry.example.org/regstudy:0.1",
    "--workers",
    "16",
    "--parallelism",
    "8",
    "--store-secret",
    "regstudy-store",
    "--data-dir",
    "/data",
];

#[test]
fn the_manifest_matches_its_golden_file() {
    let printed = launch(&EXAMPLE);
    assert_success(&printed);
    let golden = std::fs::read_to_string(GOLDEN).unwrap();
    assert_eq!(
        stdout(&printed),
        golden,
        "regenerate {GOLDEN} if the change is meant"
    );
}

#[test]
fn the_manifest_is_valid_for_kubernetes_1_29_and_1_33() {
    let Some(validator) = common::required_service("REGSTUDY_TEST_K8S_VALIDATE") else {
        return;
    };
    for version in KUBERNETES_VERSIONS {
        let out = Command::new(&validator)
            .args(["--strict", "--kubernetes-version", version, GOLDEN])
            .output()
            .unwrap();
        let said = format!("{}{}", stdout(&out), common::stderr(&out));
        assert!(out.status.success(), "Kubernetes {version}: {said}");
        assert!(
            said.contains("passed for resource"),
            "Kubernetes {version}: {said}"
        );
    }
}

#[test]
fn a_bad_value_is_refused_by_its_option() {
    let mut args = EXAMPLE.to_vec();
    args[6] = "17";
    let refused = launch(&args);
    assert!(!refused.status.success());
    assert!(
        common::stderr(&refused).contains("--parallelism"),
        "{}",
        common::stderr(&refused)
    );
}

#[test]
fn the_containers_command_run_once_per_index_finishes_the_study() {
    let Some(database) = PostgresDatabase::new("k8s") else {
        return;
    };
    let dir = Scratch::new("k8s");
    let spec = dir.write(
        "study.toml",
        format!(
            r#"name = "pods"
seeds = 3
runs_dir = "{runs}"

[base]
dataset = "mnist"
model = "simple-cnn"
epochs = 1
train_subset = 1000
test_subset = 300
val_fraction = 0.05

[[method]]
name = "none"
"#,
            runs = dir.join("runs").display()
        )
        .as_bytes(),
    );
    let created = common::regstudy()
        .args(["study", "create"])
        .arg(&spec)
        .args(["--store", &database.url])
        .output()
        .unwrap();
    assert_success(&created);
    let printed = launch(&[
        "pods",
        "--image",
        "regstudy:test",
        "--workers",
        "3",
        "--parallelism",
        "2",
        "--store-secret",
        "store",
        "--cpu",
        "1",
        "--data-dir",
        DATA,
        "--output",
        "json",
    ]);
    assert_success(&printed);
    let manifest: serde_json::Value = serde_json::from_slice(&printed.stdout).unwrap();
    let completions = manifest["spec"]["completions"].as_u64().unwrap();
    let container = &manifest["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["command"], serde_json::json!(["regstudy"]));
    let args: Vec<String> = container["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_string())
        .collect();
    assert_eq!(container["env"][0]["name"], "REGSTUDY_STORE");
    for index in 0..completions {
        // What the Job's pod `index` runs: the image's regstudy, the store from the secret.
        let pod = common::regstudy()
            .args(&args)
            .env("JOB_COMPLETION_INDEX", index.to_string())
            .env("REGSTUDY_STORE", &database.url)
            .env("REGSTUDY_OFFLINE", "1")
            .output()
            .unwrap();
        assert_success(&pod);
    }
    let store = store::open_existing(&database.url).unwrap();
    let trials = store.trials("pods").unwrap();
    assert_eq!(trials.len(), 3);
    assert!(
        trials.iter().all(|t| t.state == TrialState::Done),
        "{trials:?}"
    );
    assert_eq!(
        store.claims("pods").unwrap().len(),
        3,
        "each trial claimed once"
    );
}
