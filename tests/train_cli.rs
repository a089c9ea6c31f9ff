//! `regstudy train` end to end: the binary on real MNIST.

mod common;

use common::{summary, Scratch, DATA};
use regstudy::data::{
    self, split_validation, stratified_subset, BatchLoader, DatasetSpec, LoaderConfig,
};
use regstudy::engine::{Rng, Tensor};
use regstudy::nn::{cross_entropy, Context, Init, ModelSpec};
use regstudy::train::run::train_eval_subset;
use regstudy::weights_file::{load_weights, read_tensors};
use std::path::Path;
use std::process::Output;
use std::sync::Arc;

/// A path for one test's run folder (or file), where nothing is yet; removed when the test
/// ends.
fn out_dir(name: &str) -> Scratch {
    Scratch::absent(&format!("train-{name}"))
}

/// Runs `regstudy train` on MNIST with `args`, quietly and offline.
fn train(args: &[&str]) -> Output {
    common::train_mnist(args)
}

fn train_ok(args: &[&str]) {
    common::assert_success(&train(args));
}

/// The lines of `metrics.jsonl`.
fn epochs(run: &Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(run.join("metrics.jsonl")).expect("metrics.jsonl");
    text.lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

fn kernel_zeros(run: &Path) -> usize {
    let (tensors, _) = read_tensors(&run.join("weights.safetensors")).unwrap();
    tensors
        .iter()
        .filter(|(name, (shape, _))| name.ends_with(".weight") && shape.len() > 1)
        .map(|(_, (_, values))| values.iter().filter(|v| **v == 0.0).count())
        .sum()
}

#[test]
fn simple_cnn_reaches_97_percent_on_mnist_in_one_epoch_and_bf16_within_0_3_points_of_it() {
    let run = out_dir("full");
    let out = run.to_str().unwrap();
    train_ok(&["--model", "simple-cnn", "--epochs", "1", "--out", out]);
    let s = summary(&run);
    assert_eq!(s["status"], "completed");
    assert_eq!(s["epochs_run"], 1);
    let acc = s["test_acc"].as_f64().unwrap();
    assert!(acc >= 0.97, "test accuracy {acc}");
    for file in [
        "config.toml",
        "run.json",
        "model.toml",
        "metrics.jsonl",
        "metrics.csv",
        "weights.safetensors",
    ] {
        assert!(run.join(file).is_file(), "{file}");
    }
    let line = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
    let m: serde_json::Value = serde_json::from_str(line.lines().next().unwrap()).unwrap();
    assert!(m["val_acc"].as_f64().unwrap() > 0.95);
    assert!(m["images_per_s"].as_f64().unwrap() > 0.0);
    let record: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("run.json")).unwrap()).unwrap();
    assert_eq!(record["precision"], "fp32");
    bf16_is_within_0_3_points_of_fp32_and_repeats_bit_for_bit(acc);
    std::fs::remove_dir_all(&run).unwrap();
}

/// The same epoch in bf16, twice (or, on a CPU without AVX512-BF16, the error saying so).
fn bf16_is_within_0_3_points_of_fp32_and_repeats_bit_for_bit(fp32_acc: f64) {
    let runs = [out_dir("bf16-a"), out_dir("bf16-b")];
    let args = |run: &Scratch| {
        let out = run.to_str().unwrap().to_string();
        let args = [
            "--model",
            "simple-cnn",
            "--epochs",
            "1",
            "--precision",
            "bf16",
            "--out",
        ];
        train(&[&args[..], &[out.as_str()]].concat())
    };
    let first = args(&runs[0]);
    if !regstudy::engine::bf16::has_avx512_bf16() {
        let err = common::stderr(&first);
        assert!(
            !first.status.success() && err.contains("--precision") && err.contains("AVX512-BF16"),
            "{err}"
        );
        return;
    }
    common::assert_success(&first);
    common::assert_success(&args(&runs[1]));
    let acc = summary(&runs[0])["test_acc"].as_f64().unwrap();
    assert!(
        (acc - fp32_acc).abs() <= 0.003,
        "bf16 {acc} against fp32 {fp32_acc}"
    );
    let weights = |run: &Scratch| std::fs::read(run.join("weights.safetensors")).unwrap();
    assert!(
        weights(&runs[0]) == weights(&runs[1]),
        "two bf16 runs of one seed differ"
    );
    let record: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(runs[0].join("run.json")).unwrap()).unwrap();
    assert_eq!(record["precision"], "bf16");
    assert!(
        record["kernel"].as_str().unwrap().contains("VDPBF16PS"),
        "{record}"
    );
    let config = std::fs::read_to_string(runs[0].join("config.toml")).unwrap();
    assert!(config.contains("precision = \"bf16\""), "{config}");
}

#[test]
fn proximal_l1_gives_exact_zeros_and_l2_gives_none() {
    let quick = [
        "--model",
        "simple-cnn",
        "--epochs",
        "1",
        "--train-subset",
        "2000",
        "--test-subset",
        "500",
        "--threads",
        "1",
    ];
    let prox = out_dir("prox");
    let mut args = quick.to_vec();
    args.extend(["--penalty", "l1", "--l1", "1e-3", "--l1-mode", "prox"]);
    args.extend(["--out", prox.to_str().unwrap()]);
    train_ok(&args);
    let zeros = summary(&prox)["sparsity"]["overall"]["zeros"]
        .as_u64()
        .unwrap();
    assert!(zeros > 1000, "{zeros} exact zeros");
    assert_eq!(kernel_zeros(&prox), zeros as usize);

    // The same settings from a config file, with a flag overriding it.
    let l2 = out_dir("l2");
    let config = l2.with_extension("toml");
    std::fs::write(
        &config,
        "model = \"simple-cnn\"\npenalty = \"l2\"\nl2 = 1e-3\nepochs = 3\ntrain_subset = 2000\n\
         test_subset = 500\nthreads = 1\n",
    )
    .unwrap();
    let config_arg = config.to_str().unwrap();
    train_ok(&[
        "--config",
        config_arg,
        "--epochs",
        "1",
        "--out",
        l2.to_str().unwrap(),
    ]);
    assert_eq!(summary(&l2)["sparsity"]["overall"]["zeros"], 0);
    assert_eq!(kernel_zeros(&l2), 0);
    let resolved = std::fs::read_to_string(l2.join("config.toml")).unwrap();
    assert!(
        resolved.contains("epochs = 1") && resolved.contains("l2 = 0.001"),
        "{resolved}"
    );
    for dir in [&prox, &l2] {
        std::fs::remove_dir_all(dir).unwrap();
    }
    std::fs::remove_file(config).unwrap();
}

#[test]
fn resuming_gives_the_weights_of_an_uninterrupted_run() {
    // Batch norm (running statistics), dropout (its generator) and early stopping (its
    // state) all have to survive the checkpoint.
    let settings = [
        "--model",
        "standard-cnn",
        "--batch-norm",
        "--dropout",
        "0.3",
        "--patience",
        "5",
        "--train-subset",
        "1000",
        "--val-fraction",
        "0.02",
        "--test-subset",
        "200",
        "--threads",
        "2",
    ];
    let whole = out_dir("whole");
    let mut args = settings.to_vec();
    args.extend(["--epochs", "2", "--out", whole.to_str().unwrap()]);
    train_ok(&args);

    let parts = out_dir("parts");
    let mut args = settings.to_vec();
    args.extend(["--epochs", "1", "--out", parts.to_str().unwrap()]);
    train_ok(&args);
    train_ok(&["--resume", parts.to_str().unwrap(), "--epochs", "2"]);

    let (a, _) = read_tensors(&whole.join("weights.safetensors")).unwrap();
    let (b, _) = read_tensors(&parts.join("weights.safetensors")).unwrap();
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
    for (name, (_, values)) in &a {
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert!(bits(values) == bits(&b[name].1), "{name} differs");
    }
    let (sa, sb) = (summary(&whole), summary(&parts));
    for key in [
        "test_acc",
        "test_loss",
        "best_val_loss",
        "best_epoch",
        "tested_epoch",
        "epochs_run",
    ] {
        assert_eq!(sa[key], sb[key], "{key}");
    }
    // With patience the restored best epoch is the one tested.
    assert!(sb["best_epoch"].is_u64(), "{sb}");
    assert_eq!(sb["tested_epoch"], sb["best_epoch"]);
    // The fixed training subset measured in evaluation mode is the same after the resume.
    let (ea, eb) = (epochs(&whole), epochs(&parts));
    assert_eq!(eb.len(), 2);
    for (a, b) in ea.iter().zip(&eb) {
        for key in ["train_eval_loss", "train_eval_acc", "eval_gap_acc"] {
            assert!(b[key].is_f64(), "{key}: {b}");
            assert_eq!(a[key], b[key], "{key}");
        }
    }

    // A finished run cannot be resumed without more epochs, nor with other settings.
    let again = train(&["--resume", parts.to_str().unwrap(), "--epochs", "2"]);
    assert!(!again.status.success());
    let other = train(&["--resume", parts.to_str().unwrap(), "--lr", "0.1"]);
    assert!(String::from_utf8_lossy(&other.stderr).contains("--lr"));
    for dir in [&whole, &parts] {
        std::fs::remove_dir_all(dir).unwrap();
    }
}

#[test]
fn bad_options_fail_naming_the_option_and_create_no_run_folder() {
    let cases: [(&[&str], &str); 9] = [
        (&["--model", "simple-cnn", "--adam-eps", "0"], "--adam-eps"),
        (
            &[
                "--model",
                "simple-cnn",
                "--penalty",
                "l2",
                "--layer-penalty",
                "fc1:l1=0.1",
            ],
            "--layer-penalty",
        ),
        (
            &["--model", "simple-cnn", "--early-stop-monitor", "val-acc"],
            "--early-stop-monitor",
        ),
        (&["--model", "simple-cnn", "--l1", "-1"], "--l1"),
        (
            &["--model", "standard-cnn", "--dropout", "1.5"],
            "--dropout",
        ),
        (&["--model", "vgg99"], "--model"),
        (&["--model", "simple-cnn", "--dropout", "0.5"], "--dropout"),
        (
            &["--model", "simple-cnn", "--l2", "1e-3", "--penalty", "l1"],
            "--l2",
        ),
        (
            &[
                "--model",
                "simple-cnn",
                "--penalty",
                "l1",
                "--layer-penalty",
                "conv9:l1=0.1",
                "--train-subset",
                "10",
            ],
            "--layer-penalty",
        ),
    ];
    for (i, (args, option)) in cases.iter().enumerate() {
        let run = out_dir(&format!("bad{i}"));
        let mut all = args.to_vec();
        all.extend(["--out", run.to_str().unwrap()]);
        let out = train(&all);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(stderr.contains(option), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert!(!run.exists(), "{args:?} created {}", run.display());
    }
}

#[test]
fn an_absurd_learning_rate_ends_the_run_as_diverged() {
    // SGD at lr 1e6 overflows to a NaN loss within a few batches (Adam's steps are bounded
    // by lr, so its losses grow huge but stay finite).
    let run = out_dir("diverge");
    let out = train(&[
        "--model",
        "simple-cnn",
        "--optimizer",
        "sgd",
        "--lr",
        "1e6",
        "--epochs",
        "3",
        "--train-subset",
        "1000",
        "--test-subset",
        "100",
        "--out",
        run.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("diverged") && !stderr.contains("panicked"),
        "{stderr}"
    );
    let s = summary(&run);
    assert_eq!(s["status"], "diverged");
    assert!(s["test_acc"].is_null());
    assert!(s["tested_epoch"].is_null());
    std::fs::remove_dir_all(&run).unwrap();
}

/// Loss, accuracy and image count of `net` over `set` in one mode, batch after batch of 256.
fn measure(
    net: &mut regstudy::nn::Network,
    set: regstudy::data::ImageSet,
    mut ctx: Context,
) -> (f64, f64, usize) {
    let [h, w, ch] = net.input_shape();
    let mut loader = BatchLoader::new(Arc::new(set), LoaderConfig::new(256)).unwrap();
    let mut grad = Tensor::default();
    let (mut loss_sum, mut correct, mut seen) = (0.0f64, 0usize, 0usize);
    for batch in loader.epoch(0) {
        let x = Tensor::from_vec(&[batch.len, h, w, ch], batch.images).unwrap();
        let out = cross_entropy(net.forward(&x, &mut ctx), &batch.labels, &mut grad);
        loss_sum += out.loss * batch.len as f64;
        correct += out.correct;
        seen += batch.len;
    }
    (loss_sum / seen as f64, correct as f64 / seen as f64, seen)
}

#[test]
fn the_evaluation_mode_training_accuracy_is_that_of_the_saved_weights_on_a_fixed_subset() {
    // Dropout and batch norm make training mode and evaluation mode disagree (batches of 16
    // let the running statistics settle); without patience the saved weights are the last
    // epoch's.
    let run = out_dir("train-eval");
    train_ok(&[
        "--model",
        "standard-cnn",
        "--batch-norm",
        "--dropout",
        "0.5",
        "--batch-size",
        "16",
        "--epochs",
        "2",
        "--seed",
        "7",
        "--train-subset",
        "400",
        "--val-fraction",
        "0.005",
        "--test-subset",
        "100",
        "--threads",
        "1",
        "--out",
        run.to_str().unwrap(),
    ]);
    let history = epochs(&run);
    assert_eq!(history.len(), 2);
    for m in &history {
        let f = |key: &str| m[key].as_f64().unwrap_or_else(|| panic!("{key} in {m}"));
        assert_eq!(f("eval_gap_acc"), f("train_eval_acc") - f("val_acc"), "{m}");
        assert_eq!(
            f("eval_gap_loss"),
            f("val_loss") - f("train_eval_loss"),
            "{m}"
        );
        // The on-the-fly figures keep their definitions.
        assert_eq!(f("gap_acc"), f("train_acc") - f("val_acc"), "{m}");
    }
    let s = summary(&run);
    assert_eq!(s["epochs_run"], 2);
    assert_eq!(
        s["tested_epoch"], 2,
        "no patience: the last epoch is tested"
    );
    let train_seconds: Vec<f64> = history
        .iter()
        .map(|m| m["train_seconds"].as_f64().unwrap())
        .collect();
    let mean = train_seconds.iter().sum::<f64>() / 2.0;
    let reported = s["mean_train_seconds"].as_f64().unwrap();
    assert!(
        (reported - mean).abs() <= 1e-12 * mean,
        "{reported} vs {mean}"
    );

    // The same subset, drawn independently: the run's training part (validation split, then
    // the training subset), then the fixed draw, smaller than the part.
    let dataset = data::load(
        &"mnist".parse::<DatasetSpec>().unwrap(),
        Some(Path::new(DATA)),
    )
    .unwrap();
    let (train, val) = split_validation(&dataset.train, 0.005, 7).unwrap();
    let train = stratified_subset(&train, 400, 7);
    let subset = train_eval_subset(&train, val.len(), 7);
    assert_eq!(subset.len(), val.len());
    assert!(subset.len() < train.len());

    let text = std::fs::read_to_string(run.join("model.toml")).unwrap();
    let spec: ModelSpec = toml::from_str(&text).unwrap();
    let mut net = spec.build(Init::Pytorch, 0).unwrap();
    load_weights(&run.join("weights.safetensors"), &mut net.params_mut()).unwrap();
    let (loss, acc, seen) = measure(&mut net, subset.clone(), Context::eval());
    assert_eq!(seen, val.len());
    let last = &history[1];
    assert_eq!(last["train_eval_acc"].as_f64().unwrap(), acc, "{last}");
    let recorded = last["train_eval_loss"].as_f64().unwrap();
    assert!((recorded - loss).abs() <= 1e-9, "{recorded} vs {loss}");
    // Training mode gives another loss on the same weights and images, so the equality
    // above is evaluation mode's.
    let (train_mode_loss, _, _) = measure(&mut net, subset, Context::train(Rng::new(1)));
    assert!(
        (train_mode_loss - loss).abs() > 1e-3,
        "{train_mode_loss} vs {loss}"
    );
    std::fs::remove_dir_all(&run).unwrap();
}

#[test]
fn without_a_validation_split_there_is_no_evaluation_mode_training_figure() {
    let run = out_dir("no-val");
    train_ok(&[
        "--model",
        "simple-cnn",
        "--epochs",
        "1",
        "--val-fraction",
        "0",
        "--train-subset",
        "200",
        "--test-subset",
        "100",
        "--threads",
        "1",
        "--out",
        run.to_str().unwrap(),
    ]);
    let history = epochs(&run);
    assert_eq!(history.len(), 1);
    for key in [
        "train_eval_loss",
        "train_eval_acc",
        "eval_gap_acc",
        "eval_gap_loss",
    ] {
        let value = history[0].as_object().unwrap().get(key);
        assert_eq!(
            value,
            Some(&serde_json::Value::Null),
            "{key}: {}",
            history[0]
        );
    }
    let s = summary(&run);
    assert_eq!(s["tested_epoch"], 1);
    std::fs::remove_dir_all(&run).unwrap();
}

/// Runs `regstudy train` with exactly `args`, quietly and offline.
fn train_raw(args: &[&std::ffi::OsStr]) -> Output {
    common::regstudy()
        .arg("train")
        .args(args)
        .arg("--quiet")
        .env("REGSTUDY_OFFLINE", "1")
        .output()
        .expect("the binary runs")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A folder `DIR/mnist` with MNIST's files linked from the real ones, except those in
/// `replaced` (name, bytes before compression).
fn mnist_copy(name: &str, replaced: &[(&str, Vec<u8>)]) -> Scratch {
    use std::io::Write;
    let dir = out_dir(name);
    let mnist = dir.join("mnist");
    std::fs::create_dir_all(&mnist).unwrap();
    for file in [
        "train-images-idx3-ubyte.gz",
        "train-labels-idx1-ubyte.gz",
        "t10k-images-idx3-ubyte.gz",
        "t10k-labels-idx1-ubyte.gz",
    ] {
        match replaced.iter().find(|(n, _)| *n == file) {
            Some((_, bytes)) => {
                let mut gz = flate2::write::GzEncoder::new(Vec::new(), Default::default());
                gz.write_all(bytes).unwrap();
                std::fs::write(mnist.join(file), gz.finish().unwrap()).unwrap();
            }
            None => {
                let real = Path::new(DATA).join("mnist").join(file);
                std::os::unix::fs::symlink(real, mnist.join(file)).unwrap();
            }
        }
    }
    dir
}

/// MNIST's test labels with the first one changed.
fn changed_test_labels() -> Vec<u8> {
    use std::io::Read;
    let path = Path::new(DATA).join("mnist/t10k-labels-idx1-ubyte.gz");
    let mut bytes = Vec::new();
    flate2::read::GzDecoder::new(std::fs::File::open(path).unwrap())
        .read_to_end(&mut bytes)
        .unwrap();
    bytes[8] = (bytes[8] + 1) % 10;
    bytes
}

/// A run of seconds: few images, no validation split.
const QUICK: [&str; 12] = [
    "--val-fraction",
    "0",
    "--model",
    "simple-cnn",
    "--train-subset",
    "300",
    "--test-subset",
    "100",
    "--threads",
    "1",
    "--epochs",
    "1",
];

#[test]
fn resuming_on_changed_data_is_refused_naming_the_file_and_run_json_keeps_its_checksums() {
    let run = out_dir("changed-data");
    let mut args = QUICK.to_vec();
    args.extend(["--out", run.to_str().unwrap()]);
    train_ok(&args);
    let record = std::fs::read(run.join("run.json")).unwrap();
    let changed = mnist_copy(
        "changed-data-dir",
        &[("t10k-labels-idx1-ubyte.gz", changed_test_labels())],
    );
    let resume = |data_dir: &Path| {
        common::regstudy()
            .args(["train", "--quiet", "--epochs", "2", "--resume"])
            .arg(&run)
            .arg("--data-dir")
            .arg(data_dir)
            .env("REGSTUDY_OFFLINE", "1")
            .output()
            .unwrap()
    };
    let out = resume(&changed);
    assert!(!out.status.success());
    let message = stderr(&out);
    assert!(
        message.contains("the data differ from those the run was trained on")
            && message.contains("t10k-labels-idx1-ubyte.gz"),
        "{message}"
    );
    assert_eq!(std::fs::read(run.join("run.json")).unwrap(), record);
    assert_eq!(summary(&run)["epochs_run"], 1, "nothing was trained");
    // The same data in another folder may be used: the record follows it.
    let moved = mnist_copy("moved-data-dir", &[]);
    let out = resume(&moved);
    assert!(out.status.success(), "{}", stderr(&out));
    let record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.join("run.json")).unwrap()).unwrap();
    let first = record["data"]["sources"][0]["path"].as_str().unwrap();
    assert!(first.starts_with(moved.to_str().unwrap()), "{first}");
    assert_eq!(record["config"]["epochs"], 2);
    for dir in [run, changed, moved] {
        std::fs::remove_dir_all(dir).unwrap();
    }
}

#[test]
fn resuming_after_config_toml_was_edited_is_refused_naming_the_setting() {
    let run = out_dir("edited-config");
    let mut args = QUICK.to_vec();
    args.extend(["--out", run.to_str().unwrap()]);
    train_ok(&args);
    let config = run.join("config.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(text.contains("lr = 0.001"), "{text}");
    std::fs::write(&config, text.replace("lr = 0.001", "lr = 0.5")).unwrap();
    let out = train_raw(&[
        "--resume".as_ref(),
        run.as_os_str(),
        "--epochs".as_ref(),
        "2".as_ref(),
    ]);
    assert!(!out.status.success());
    let message = stderr(&out);
    assert!(
        message.contains("setting `lr` is 0.5 (config.toml), but the run was trained with 0.001"),
        "{message}"
    );
    assert_eq!(summary(&run)["epochs_run"], 1);
    std::fs::remove_dir_all(run).unwrap();
}

#[test]
fn a_study_worker_resuming_a_trial_on_changed_data_is_refused() {
    use regstudy::train::{self, RunConfig, RunOptions, TrainError};
    let run = out_dir("worker-resume");
    let config = RunConfig {
        dataset: "mnist".into(),
        data_dir: Some(DATA.into()),
        model: "simple-cnn".into(),
        epochs: 1,
        train_subset: Some(300),
        test_subset: Some(100),
        val_fraction: 0.0,
        threads: 1,
        out: Some(run.to_path_buf()),
        ..RunConfig::default()
    };
    train::run(&config.check().unwrap(), &RunOptions::default()).unwrap();
    // What the study runner does for a trial it finds with a checkpoint: the data set it
    // loaded for every trial, the trial's settings with more threads, `complete_ended`.
    let changed = mnist_copy(
        "worker-data",
        &[("t10k-labels-idx1-ubyte.gz", changed_test_labels())],
    );
    let dataset = data::load(&DatasetSpec::Mnist, Some(&changed)).unwrap();
    let resumed = RunConfig {
        data_dir: Some(changed.to_path_buf()),
        threads: 2,
        ..config
    };
    let options = RunOptions {
        resume: true,
        complete_ended: true,
        dataset: Some(Arc::new(dataset)),
        ..RunOptions::default()
    };
    let error = train::run(&resumed.check().unwrap(), &options).unwrap_err();
    assert!(matches!(error, TrainError::Mismatch { .. }), "{error}");
    assert!(error.to_string().contains("t10k-labels"), "{error}");
    for dir in [run, changed] {
        std::fs::remove_dir_all(dir).unwrap();
    }
}

#[test]
fn training_on_zero_images_is_refused() {
    let mut images = vec![0, 0, 8, 3, 0, 0, 0, 0];
    images.extend([0, 0, 0, 28, 0, 0, 0, 28]);
    let empty = mnist_copy(
        "no-images",
        &[
            ("train-images-idx3-ubyte.gz", images),
            ("train-labels-idx1-ubyte.gz", vec![0, 0, 8, 1, 0, 0, 0, 0]),
        ],
    );
    let run = out_dir("no-images-run");
    let out = train_raw(&[
        "--dataset".as_ref(),
        "mnist".as_ref(),
        "--data-dir".as_ref(),
        empty.as_os_str(),
        "--model".as_ref(),
        "simple-cnn".as_ref(),
        "--out".as_ref(),
        run.as_os_str(),
    ]);
    assert!(!out.status.success(), "not `completed`");
    let message = stderr(&out);
    assert!(
        message.contains("--dataset: no training images are left"),
        "{message}"
    );
    assert!(!run.exists(), "no run folder");
    std::fs::remove_dir_all(empty).unwrap();
}

#[test]
fn non_utf8_folders_train_and_resume_and_a_non_utf8_model_path_is_refused() {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    let base = out_dir("bytes");
    std::fs::create_dir_all(&base).unwrap();
    let data_dir = base.join(OsStr::from_bytes(b"data-\xff"));
    std::os::unix::fs::symlink(DATA, &data_dir).unwrap();
    let run = base.join(OsStr::from_bytes(b"out-\xff"));
    let mut args: Vec<&OsStr> = QUICK.iter().map(OsStr::new).collect();
    args.extend([
        OsStr::new("--dataset"),
        OsStr::new("mnist"),
        OsStr::new("--data-dir"),
        data_dir.as_os_str(),
        OsStr::new("--out"),
        run.as_os_str(),
    ]);
    let out = train_raw(&args);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(summary(&run)["status"], "completed");
    let resume = |extra: &[&OsStr]| {
        let mut args = vec![
            OsStr::new("--resume"),
            run.as_os_str(),
            OsStr::new("--epochs"),
            OsStr::new("2"),
        ];
        args.extend(extra);
        train_raw(&args)
    };
    let out = resume(&[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("is not valid UTF-8") && stderr(&out).contains("--data-dir"),
        "{}",
        stderr(&out)
    );
    let out = resume(&[OsStr::new("--data-dir"), data_dir.as_os_str()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(summary(&run)["epochs_run"], 2);
    let model = base.join(OsStr::from_bytes(b"model-\xff.toml"));
    let out = train_raw(&[
        OsStr::new("--dataset"),
        OsStr::new("mnist"),
        OsStr::new("--model"),
        model.as_os_str(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).starts_with("error: --model: `") && stderr(&out).contains("not valid UTF-8"),
        "{}",
        stderr(&out)
    );
    std::fs::remove_dir_all(base).unwrap();
}

#[test]
fn runs_too_large_for_the_machine_are_refused_before_allocating() {
    let out = train(&["--model", "simple-cnn", "--threads", "100000"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).starts_with("error: --threads: 100000 threads is more than"),
        "{}",
        stderr(&out)
    );
    // A batch of the whole training set through ResNet-18 needs terabytes.
    let run = out_dir("huge-batch");
    let out = train(&[
        "--model",
        "resnet18",
        "--batch-size",
        "60000",
        "--out",
        run.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1), "refused, not aborted");
    let message = stderr(&out);
    assert!(
        message.starts_with(
            "error: --batch-size: training `resnet18` on batches of 60000 images needs about"
        ) && message.contains("of memory available"),
        "{message}"
    );
    assert!(!run.exists());
    // A convolution of 200,000 channels: every image's output alone is 600 MB.
    let spec = out_dir("wide").with_extension("toml");
    std::fs::write(
        &spec,
        "name = 'wide'\ninput = { channels = 1, height = 28, width = 28 }\n\
         [[layers]]\ntype = 'conv2d'\nname = 'c'\nout_channels = 200000\nkernel_size = 3\npadding = 1\n\
         [[layers]]\ntype = 'global_avg_pool'\n[[layers]]\ntype = 'linear'\nname = 'fc'\nout_features = 10\n",
    )
    .unwrap();
    let out = train(&[
        "--model",
        spec.to_str().unwrap(),
        "--out",
        run.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1), "refused, not aborted");
    assert!(
        stderr(&out).contains("of memory available"),
        "{}",
        stderr(&out)
    );
    std::fs::remove_file(spec).unwrap();
}

#[test]
fn messages_show_no_rust_internals_no_cause_twice_and_resume_errors_name_resume() {
    // A spec whose input does not match MNIST's images.
    let spec = out_dir("colour").with_extension("toml");
    std::fs::write(
        &spec,
        "name = 'colour'\ninput = { channels = 3, height = 32, width = 32 }\n\
         [[layers]]\ntype = 'flatten'\n[[layers]]\ntype = 'linear'\nname = 'fc'\nout_features = 10\n",
    )
    .unwrap();
    let out = train(&["--model", spec.to_str().unwrap(), "--train-subset", "100"]);
    let message = stderr(&out);
    assert!(
        message.contains("the spec's input (3 channels of 32x32 pixels) does not match the data's images (1 channel of 28x28 pixels)")
            && !message.contains("InputShape"),
        "{message}"
    );
    std::fs::remove_file(spec).unwrap();
    // A run folder under a file: the cause is in the message and not repeated.
    let file = out_dir("a-file");
    std::fs::write(&file, "").unwrap();
    let run = file.join("run");
    let out = train(&[
        "--model",
        "simple-cnn",
        "--train-subset",
        "100",
        "--out",
        run.to_str().unwrap(),
    ]);
    let message = stderr(&out);
    assert_eq!(message.matches("Not a directory").count(), 1, "{message}");
    assert!(!message.contains("caused by"), "{message}");
    std::fs::remove_file(file).unwrap();
    let out = train_raw(&["--resume".as_ref(), "no-such-run-folder".as_ref()]);
    let message = stderr(&out);
    assert!(
        message.starts_with("error: --resume: cannot read no-such-run-folder/config.toml: "),
        "{message}"
    );
}
