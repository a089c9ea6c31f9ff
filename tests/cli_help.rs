//! The help, completions and manual page, generated from the command-line definitions: every
//! default shown is the library's (`RunConfig::default()`, the runner's defaults), every zoo
//! model and data set is listed, and the data folder's environment variable is named.

mod common;

use common::{run_offline, stderr, stdout, Scratch};
use regstudy::data::DatasetSpec;
use regstudy::models;
use regstudy::study::runner::StudyRunOptions;
use regstudy::train::RunConfig;

/// The help of `regstudy ARGS --help`.
fn help(args: &[&str]) -> String {
    let mut args = args.to_vec();
    args.push("--help");
    let out = run_offline(&args);
    assert!(out.status.success(), "{}", stderr(&out));
    stdout(&out)
}

/// The help of option `--name`: its line and the lines up to the next option, with runs of
/// white space made one space (clap may wrap the text).
fn option_help(help: &str, name: &str) -> Option<String> {
    let is_option = |line: &str| {
        let line = line.trim_start();
        line.starts_with("--") || line.starts_with("-h, ") || line.starts_with("-V, ")
    };
    let flag = format!("--{name}");
    let mut lines = help
        .lines()
        .skip_while(|line| !(is_option(line) && line.split_whitespace().any(|word| word == flag)));
    let first = lines.next()?;
    let rest = lines.take_while(|line| !is_option(line));
    let text: Vec<&str> = std::iter::once(first)
        .chain(rest)
        .flat_map(str::split_whitespace)
        .collect();
    Some(text.join(" "))
}

/// The `[default: ...]` an option's help shows.
fn shown_default(text: &str) -> Option<&str> {
    let start = text.find("[default: ")? + "[default: ".len();
    let len = text[start..].find(']')?;
    Some(&text[start..start + len])
}

/// Whether `shown` is `value`, as the help writes it: names as they are, switches as on or
/// off, numbers as numbers.
fn shows(shown: &str, value: &toml::Value) -> bool {
    match value {
        toml::Value::String(text) => shown == text,
        toml::Value::Boolean(on) => shown == if *on { "on" } else { "off" },
        toml::Value::Integer(n) => shown.parse::<i64>() == Ok(*n),
        toml::Value::Float(x) => shown
            .parse::<f64>()
            .is_ok_and(|s| (s - x).abs() <= 1e-6 * x.abs()),
        _ => false,
    }
}

#[test]
fn train_help_shows_every_default_of_run_config() {
    let help = help(&["train"]);
    let defaults = toml::Value::try_from(RunConfig::default()).unwrap();
    let defaults = defaults.as_table().unwrap();
    let mut checked = 0;
    for (key, value) in defaults {
        // Required, without a default.
        if key == "dataset" || key == "model" {
            continue;
        }
        let name = key.replace('_', "-");
        let text = option_help(&help, &name).unwrap_or_else(|| panic!("no --{name} in {help}"));
        let shown =
            shown_default(&text).unwrap_or_else(|| panic!("--{name} shows no default: {text}"));
        assert!(
            shows(shown, value),
            "--{name} shows {shown}, the default is {value}"
        );
        if value.is_bool() {
            assert!(
                option_help(&help, &format!("no-{name}")).is_some(),
                "no --no-{name}"
            );
        }
        checked += 1;
    }
    assert!(checked >= 20, "only {checked} defaults checked");
}

#[test]
fn train_help_lists_every_zoo_model_and_named_data_set() {
    let help = help(&["train"]);
    let model = option_help(&help, "model").unwrap();
    for name in models::NAMES {
        assert!(model.contains(name), "{name} missing from: {model}");
    }
    let dataset = option_help(&help, "dataset").unwrap();
    for spec in DatasetSpec::NAMED {
        assert!(
            dataset.contains(spec.name()),
            "{} missing from: {dataset}",
            spec.name()
        );
    }
}

#[test]
fn study_run_help_shows_the_runners_defaults() {
    let help = help(&["study", "run"]);
    let runner = StudyRunOptions::default();
    for (name, value) in [
        ("workers", runner.workers.to_string()),
        ("threads", runner.threads.to_string()),
        ("stale-after", runner.stale_after.as_secs().to_string()),
        ("max-attempts", runner.max_attempts.to_string()),
    ] {
        let text = option_help(&help, name).unwrap_or_else(|| panic!("no --{name} in {help}"));
        assert_eq!(
            shown_default(&text),
            Some(value.as_str()),
            "--{name}: {text}"
        );
    }
}

#[test]
fn every_data_folder_option_names_its_environment_variable() {
    for command in [
        &["train"][..],
        &["study", "run"],
        &["reproduce"],
        &["data", "info"],
        &["data", "verify"],
    ] {
        let help = help(command);
        let text = option_help(&help, "data-dir").unwrap_or_else(|| panic!("{command:?}: {help}"));
        assert!(text.contains("[env: REGSTUDY_DATA"), "{command:?}: {text}");
    }
}

#[test]
fn a_data_folder_from_the_environment_does_not_override_a_settings_files() {
    let dir = Scratch::new("help-data-env");
    let config = dir.join("run.toml");
    let from_file = dir.join("from-file");
    std::fs::create_dir_all(&from_file).unwrap();
    std::fs::write(
        &config,
        format!(
            "dataset = \"mnist\"\nmodel = \"simple-cnn\"\ndata_dir = \"{}\"\n",
            from_file.display()
        ),
    )
    .unwrap();
    let out = common::regstudy()
        .args(["train", "--quiet", "--config"])
        .arg(&config)
        .arg("--out")
        .arg(dir.join("run"))
        .env("REGSTUDY_DATA", dir.join("from-environment"))
        .env("REGSTUDY_OFFLINE", "1")
        .output()
        .unwrap();
    let message = stderr(&out);
    assert!(!out.status.success(), "no MNIST in either folder");
    assert!(
        message.contains("from-file") && !message.contains("from-environment"),
        "{message}"
    );
}

#[test]
fn bash_completions_offer_every_command_and_the_negated_switches() {
    let out = run_offline(&["completions", "bash"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let script = stdout(&out);
    for word in [
        "train",
        "study",
        "report",
        "reproduce",
        "export",
        "data",
        "completions",
        "--no-augment",
        "--batch-size",
        "--retry-failed",
    ] {
        assert!(
            script.contains(word),
            "{word} missing from the bash completions"
        );
    }
}

#[test]
fn every_shell_gets_a_completion_script() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let out = run_offline(&["completions", shell]);
        assert!(out.status.success(), "{shell}: {}", stderr(&out));
        assert!(stdout(&out).contains("regstudy"), "{shell}");
    }
}

#[test]
fn the_man_page_documents_every_command_and_its_options() {
    let out = run_offline(&["man"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let page = stdout(&out);
    assert!(
        page.starts_with(".ie") || page.contains(".TH regstudy"),
        "{page}"
    );
    for text in [
        ".SH \"REGSTUDY TRAIN\"",
        ".SH \"REGSTUDY STUDY RUN\"",
        ".SH \"REGSTUDY REPORT\"",
        ".SH \"REGSTUDY DATA INFO\"",
        "\\-\\-batch\\-size",
        "\\-\\-no\\-augment",
        "\\-\\-stale\\-after",
        "\\-\\-data\\-dir",
        "REGSTUDY_DATA",
    ] {
        assert!(page.contains(text), "{text} missing from the manual page");
    }
}

#[test]
fn study_names_are_positional() {
    let dir = Scratch::new("help-positional");
    let store = dir.join("missing.db");
    let store = store.to_str().unwrap();
    for args in [
        vec!["report", "x", "--store", store],
        vec![
            "export", "x", "--format", "csv", "--out", "e", "--store", store,
        ],
        vec!["study", "status", "x", "--store", store],
    ] {
        let out = run_offline(&args);
        let message = stderr(&out);
        assert!(!out.status.success(), "{args:?}");
        // Parsed: the store is opened, and refused as missing.
        assert!(message.contains("missing.db"), "{args:?}: {message}");
    }
    let out = run_offline(&["report", "--study", "x"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("--study"), "{}", stderr(&out));
}

/// `bench` options that time nothing: one step of each kind.
const NO_TIMING: [&str; 6] = [
    "--train-secs",
    "0",
    "--infer-secs",
    "0",
    "--warmup-secs",
    "0",
];

/// Output piped into a reader that has gone ends the command as it ends any Unix tool: by
/// SIGPIPE, with nothing on standard error (no panic on the failed write). `bench` prints
/// its result with `println!`, which panics on a closed pipe when SIGPIPE is ignored.
#[test]
fn output_into_a_closed_pipe_ends_the_command_quietly() {
    use std::os::unix::process::ExitStatusExt;
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = common::regstudy()
        .arg("bench")
        .args(NO_TIMING)
        .stdout(writer)
        .output()
        .unwrap();
    assert_eq!(out.status.signal(), Some(libc::SIGPIPE), "{}", stderr(&out));
    assert_eq!(stderr(&out), "");
}

/// `bench --precision bf16` runs on the AVX512-BF16 kernel and says so, or, on a CPU without
/// it, refuses naming the option and the instructions missing.
fn bench_in_bf16_names_its_kernel_or_refuses() {
    let args = [
        &[
            "bench",
            "--threads",
            "1",
            "--batch-size",
            "2",
            "--precision",
            "bf16",
        ][..],
        &NO_TIMING,
    ]
    .concat();
    let out = run_offline(&args);
    if regstudy::engine::bf16::has_avx512_bf16() {
        assert!(out.status.success(), "{}", stderr(&out));
        let line: serde_json::Value = serde_json::from_str(stdout(&out).trim()).unwrap();
        assert!(
            line["kernel"]
                .as_str()
                .unwrap()
                .contains("AVX512-BF16 (VDPBF16PS)"),
            "{line}"
        );
        assert_eq!(line["precision"], "bf16");
        assert!(line["train_img_per_s"].as_f64().unwrap() > 0.0, "{line}");
    } else {
        assert!(!out.status.success());
        let message = stderr(&out);
        assert!(
            message.contains("--precision") && message.contains("AVX512-BF16"),
            "{message}"
        );
    }
}

/// `bench` times every model of PyTorch's peer script, each at its peer input, and names them
/// as the peer does, so `tools/compare_with_pytorch.py` can pair the two JSON lines.
#[test]
fn bench_times_every_peer_model_and_refuses_others_with_the_list() {
    let models = [
        "simple-cnn",
        "levy-initial",
        "levy-new",
        "standard-cnn",
        "resnet18",
    ];
    let mut args = vec!["bench", "--threads", "1", "--batch-size", "2"];
    for model in models {
        args.extend(["--model", model]);
    }
    args.extend(NO_TIMING);
    let out = run_offline(&args);
    assert!(out.status.success(), "{}", stderr(&out));
    let lines: Vec<serde_json::Value> = stdout(&out)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let timed: Vec<&str> = lines.iter().map(|l| l["model"].as_str().unwrap()).collect();
    assert_eq!(timed, models);
    for line in &lines {
        assert!(line["train_img_per_s"].as_f64().unwrap() > 0.0, "{line}");
        assert!(line["infer_img_per_s"].as_f64().unwrap() > 0.0, "{line}");
    }
    assert!(
        lines[0]["kernel"].as_str().unwrap().starts_with("fp32"),
        "{}",
        lines[0]
    );
    bench_in_bf16_names_its_kernel_or_refuses();
    let out = run_offline(&["bench", "--model", "vgg16"]);
    assert!(!out.status.success());
    let message = stderr(&out);
    assert!(
        message.contains("vgg16") && message.contains("standard-cnn"),
        "{message}"
    );
}
