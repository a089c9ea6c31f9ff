//! `regstudy train` with the regularizers of `--regularizer`: group lasso's zero filters,
//! gradual magnitude pruning's schedule and its bit-identical resume, and the errors.

mod common;

use common::{assert_success, summary, train_mnist, Scratch};
use regstudy::weights_file::read_tensors;
use std::path::Path;
use std::process::Output;

/// A path for one test's run folder, where nothing is yet; removed when the test ends.
fn out_dir(name: &str) -> Scratch {
    Scratch::absent(&format!("reg-{name}"))
}

/// Runs `regstudy train` on a small part of MNIST with `args`, quietly and offline.
fn train(args: &[&str]) -> Output {
    let small = [
        "--model",
        "simple-cnn",
        "--threads",
        "2",
        "--train-subset",
        "640",
        "--val-fraction",
        "0.02",
        "--test-subset",
        "200",
    ];
    train_mnist(&[&small[..], args].concat())
}

fn train_ok(args: &[&str]) {
    assert_success(&train(args));
}

/// The kernels of the final weights: name, PyTorch shape, values.
fn kernels(run: &Path) -> Vec<(String, Vec<usize>, Vec<f32>)> {
    let (tensors, _) = read_tensors(&run.join("weights.safetensors")).unwrap();
    tensors
        .into_iter()
        .filter(|(name, (shape, _))| name.ends_with(".weight") && shape.len() > 1)
        .map(|(name, (shape, values))| (name, shape, values))
        .collect()
}

#[test]
fn magnitude_pruning_reaches_its_target_per_layer_and_resumes_bit_identically() {
    // 640 images in batches of 64: 10 steps an epoch, 30 in 3 epochs. The end step is given,
    // since by default it follows --epochs, which the resume changes.
    let pruning = "magnitude-pruning:target=0.6,frequency=4,end_step=25";
    let whole = out_dir("pruning-whole");
    train_ok(&[
        "--regularizer",
        pruning,
        "--epochs",
        "3",
        "--out",
        whole.to_str().unwrap(),
    ]);
    let parts = out_dir("pruning-parts");
    train_ok(&[
        "--regularizer",
        pruning,
        "--epochs",
        "1",
        "--out",
        parts.to_str().unwrap(),
    ]);
    let masks = std::fs::read_dir(parts.join("checkpoint"))
        .unwrap()
        .flatten()
        .any(|e| e.file_name() == "regularizers-1.safetensors");
    assert!(masks, "the checkpoint holds the pruning masks");
    train_ok(&["--resume", parts.to_str().unwrap(), "--epochs", "3"]);

    let (a, _) = read_tensors(&whole.join("weights.safetensors")).unwrap();
    let (b, _) = read_tensors(&parts.join("weights.safetensors")).unwrap();
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
    for (name, (_, values)) in &a {
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert!(
            bits(values) == bits(&b[name].1),
            "{name} differs after the resume"
        );
    }
    assert_eq!(summary(&whole)["test_acc"], summary(&parts)["test_acc"]);

    // Every kernel is pruned to round(0.6 * n) exact zeros, and the summary counts them.
    let layers = summary(&whole)["sparsity"]["layers"].clone();
    for (name, _, values) in kernels(&whole) {
        let zeros = values.iter().filter(|v| **v == 0.0).count();
        let expected = (0.6 * values.len() as f64).round() as usize;
        assert_eq!(zeros, expected, "{name}");
        let layer = layers
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["name"] == name.as_str())
            .unwrap();
        assert_eq!(layer["zeros"], zeros as u64, "{name}");
    }
    let record = std::fs::read_to_string(whole.join("config.toml")).unwrap();
    assert!(
        record.contains("magnitude-pruning") && record.contains("end_step = 25"),
        "{record}"
    );
}

#[test]
fn group_lasso_prox_zeroes_whole_filters_and_the_summary_counts_them() {
    let run = out_dir("group-lasso");
    train_ok(&[
        "--regularizer",
        "group-lasso:strength=0.05,mode=prox",
        "--epochs",
        "1",
        "--out",
        run.to_str().unwrap(),
    ]);
    let s = summary(&run);
    let layers = s["sparsity"]["layers"].as_array().unwrap().clone();
    let mut total = 0;
    for (name, shape, values) in kernels(&run) {
        let size = values.len() / shape[0];
        let zero_groups = values
            .chunks(size)
            .filter(|g| g.iter().all(|v| *v == 0.0))
            .count();
        let layer = layers.iter().find(|l| l["name"] == name.as_str()).unwrap();
        assert_eq!(layer["groups"], shape[0] as u64, "{name}");
        assert_eq!(layer["zero_groups"], zero_groups as u64, "{name}");
        total += zero_groups;
    }
    assert!(
        total > 0,
        "group soft-thresholding zeroed no filter or unit: {s}"
    );
    assert_eq!(s["sparsity"]["overall"]["zero_groups"], total as u64);
}

#[test]
fn regularizers_given_twice_or_badly_are_refused_naming_the_option() {
    let cases: [(&[&str], &[&str]); 4] = [
        (
            &["--l1", "1e-4", "--regularizer", "l1:strength=1e-3"],
            &["--regularizers:", "l1 can appear once"],
        ),
        (
            &["--regularizer", "group-lasso:strenght=1e-3"],
            &["--regularizer", "strenght", "strength"],
        ),
        (
            &["--regularizer", "magnitude-pruning:target=1.5"],
            &["--regularizers:", "target must be in [0, 1)"],
        ),
        (
            &["--regularizer", "group-lasso:strength=1e-3,layers=conv9"],
            &["group-lasso", "`conv9`", "matches no parameter"],
        ),
    ];
    for (args, expected) in cases {
        let run = out_dir("refused");
        let mut args = args.to_vec();
        args.extend(["--epochs", "1", "--out", run.to_str().unwrap()]);
        let out = train(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} was accepted");
        for text in expected {
            assert!(stderr.contains(text), "{args:?}: `{text}` not in {stderr}");
        }
        assert!(!run.join("summary.json").exists());
    }
}
