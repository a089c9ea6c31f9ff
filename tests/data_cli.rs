//! `regstudy data ...` run as a program on the MNIST files in `../shared/data/mnist`.

mod common;

use common::Scratch;

const MNIST: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/data/mnist");

fn regstudy(args: &[&str]) -> (bool, String, String) {
    let output = common::run_offline(args);
    let text = |bytes: Vec<u8>| String::from_utf8(bytes).unwrap();
    (
        output.status.success(),
        text(output.stdout),
        text(output.stderr),
    )
}

#[test]
fn data_info_prints_counts_per_split_and_class() {
    let (ok, stdout, stderr) =
        regstudy(&["data", "info", "mnist", "--data-dir", MNIST, "--offline"]);
    assert!(ok, "{stderr}");
    let lines: Vec<String> = stdout
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    for expected in [
        "train 60000 28x28x1",
        "test 10000 28x28x1",
        "1 6742 1135",
        "9 5949 1009",
    ] {
        assert!(lines.iter().any(|l| l == expected), "{expected}: {stdout}");
    }
    assert!(stdout.contains("official md5"), "{stdout}");
}

#[test]
fn data_info_json_is_machine_readable() {
    let (ok, stdout, stderr) = regstudy(&["data", "info", "mnist", "--data-dir", MNIST, "--json"]);
    assert!(ok, "{stderr}");
    let info: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(info["train"]["images"], 60000);
    assert_eq!(info["test"]["shape"], serde_json::json!([28, 28, 1]));
    assert_eq!(info["train"]["per_class"][5], 5421);
    assert_eq!(
        info["identity"]["sources"][1]["md5"],
        "d53e105ee54ea40749a09fcbcd1e9432"
    );
}

#[test]
fn data_verify_accepts_the_official_files() {
    let (ok, stdout, stderr) = regstudy(&["data", "verify", "mnist", "--data-dir", MNIST]);
    assert!(ok, "{stdout}{stderr}");
    assert_eq!(stdout.matches("ok ").count(), 4, "{stdout}");
}

#[test]
fn an_unknown_data_set_lists_the_accepted_forms() {
    let (ok, _, stderr) = regstudy(&["data", "info", "imagenet"]);
    assert!(!ok);
    assert!(stderr.contains("folder:PATH"), "{stderr}");
}

#[test]
fn a_data_set_absent_offline_says_where_to_place_it() {
    let empty = Scratch::new("cli-empty");
    let (ok, _, stderr) = regstudy(&[
        "data",
        "info",
        "cifar10",
        "--data-dir",
        empty.to_str().unwrap(),
        "--offline",
    ]);
    drop(empty);
    assert!(!ok);
    assert!(
        stderr.contains("cifar-10-binary.tar.gz") && stderr.contains("regstudy-cli-empty"),
        "{stderr}"
    );
}

#[test]
fn data_verify_fails_when_it_finds_nothing_to_verify() {
    let empty = Scratch::new("cli-verify");
    let dir = empty.to_str().unwrap();
    let (ok, stdout, stderr) = regstudy(&["data", "verify", "--data-dir", dir]);
    assert!(!ok, "{stdout}");
    assert!(
        stderr.contains("nothing verified") && stderr.contains("regstudy-cli-verify"),
        "{stderr}"
    );
    assert!(stdout.contains("train-images-idx3-ubyte.gz"), "{stdout}");
    let (ok, _, stderr) = regstudy(&["data", "verify", &format!("folder:{dir}")]);
    assert!(!ok);
    assert!(stderr.contains("nothing to verify"), "{stderr}");
}

#[test]
fn a_garbage_archive_is_refused_without_dumping_its_bytes() {
    let dir = Scratch::new("cli-garbage");
    let archive = dir.join("garbage.tar");
    // A tar header whose name and numeric fields are control bytes and escape sequences.
    let mut bytes: Vec<u8> = (0..512u32).map(|i| (i * 7 % 32) as u8).collect();
    bytes[..8].copy_from_slice(b"\x1b[31mX\x07\x00");
    bytes.extend(vec![0x1bu8; 4096]);
    std::fs::write(&archive, &bytes).unwrap();
    let spec = format!("folder:{}", archive.display());
    let (ok, _, stderr) = regstudy(&["data", "info", &spec]);
    drop(dir);
    assert!(!ok);
    assert!(stderr.contains("garbage.tar"), "{stderr}");
    assert!(
        !stderr.chars().any(|c| c.is_control() && c != '\n'),
        "{stderr:?}"
    );
    assert!(stderr.len() < 2000, "{stderr}");
}

#[test]
fn a_missing_folder_is_reported_with_its_cause() {
    let (ok, _, stderr) = regstudy(&["data", "info", "folder:/no/such/regstudy/folder"]);
    assert!(!ok);
    assert!(
        stderr.contains("cannot read /no/such/regstudy/folder")
            && stderr.contains("caused by: No such file"),
        "{stderr}"
    );
}
