//! `regstudy study run` through the training side: paths that are not UTF-8 and resource
//! limits reach every trial the same way as `regstudy train`.

mod common;

use common::{Scratch, DATA};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::Output;

/// One trial of about a second on 300 MNIST images, its data set from `--data-dir`.
fn write_spec(dir: &Path) -> PathBuf {
    let spec = format!(
        "name = \"paths\"\nseeds = 1\nruns_dir = \"{}\"\n\n[base]\ndataset = \"mnist\"\n\
         model = \"simple-cnn\"\nepochs = 1\ntrain_subset = 300\ntest_subset = 100\n\
         val_fraction = 0.05\n\n[[method]]\nname = \"none\"\n",
        dir.join("runs").display()
    );
    let path = dir.join("study.toml");
    std::fs::write(&path, spec).unwrap();
    path
}

fn study_run(dir: &Path, extra: &[&OsStr]) -> Output {
    common::regstudy()
        .args(["study", "run", "--quiet"])
        .arg(write_spec(dir))
        .arg("--store")
        .arg(dir.join("store.db"))
        .args(extra)
        .env("REGSTUDY_OFFLINE", "1")
        .output()
        .unwrap()
}

#[test]
fn a_study_reading_its_data_from_a_non_utf8_folder_trains_every_trial() {
    let dir = Scratch::new("strain-bytes");
    let data_dir = dir.join(OsStr::from_bytes(b"data-\xff"));
    std::os::unix::fs::symlink(DATA, &data_dir).unwrap();
    let out = study_run(&dir, &[OsStr::new("--data-dir"), data_dir.as_os_str()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let summary = std::fs::read_to_string(dir.join("runs/0000-none-seed0/summary.json"))
        .expect("the trial finished");
    assert!(summary.contains("\"status\": \"completed\""), "{summary}");
}

#[test]
fn a_study_with_more_threads_than_four_per_core_is_refused() {
    let dir = Scratch::new("strain-threads");
    let out = study_run(&dir, &[OsStr::new("--threads"), OsStr::new("100000")]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--threads: 100000 threads is more than"),
        "{stderr}"
    );
}
