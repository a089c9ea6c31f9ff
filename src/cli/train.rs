//! `regstudy train`: one run of a source-study experiment.

use super::progress::TrainConsole;
use super::CommandResult;
use clap::{Args, ValueEnum};
use regstudy::data::DatasetSpec;
use regstudy::engine::Precision;
use regstudy::models;
use regstudy::nn::Init;
use regstudy::regularize::{L1Mode, LayerStrength, PenaltyKind, RegularizerSpec};
use regstudy::train::config::{NormalizationKind, OptimizerKind, DEFAULT_STRENGTH};
use regstudy::train::record::resume_conflict;
use regstudy::train::EarlyStopMonitor;
use regstudy::train::{self, RunConfig, RunFolder, RunOptions};
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};

/// Every option may also come from `--config run.toml` (keys are the option names with
/// underscores); options given here override the file. The defaults shown are those of
/// [`RunConfig::default`], where they are set.
#[derive(Debug, Args)]
pub struct TrainArgs {
    /// Settings file (TOML); a run folder's config.toml loads back as is.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Continue the run in this folder from its last checkpoint, with its recorded settings;
    /// only --epochs (to train longer), --data-dir and --threads may be given with it.
    #[arg(long, value_name = "RUN_DIR")]
    resume: Option<PathBuf>,
    #[arg(long, help = dataset_help())]
    dataset: Option<OsString>,
    /// Folder holding the data sets [default: $REGSTUDY_DATA, else the user's cache folder].
    #[arg(long, value_name = "DIR", env = super::DATA_ENV)]
    pub(super) data_dir: Option<PathBuf>,
    #[arg(long, help = model_help())]
    model: Option<OsString>,
    #[arg(long, value_parser = parse_init, help = with_default(
        "Weight initialization: pytorch or keras", init_name(defaults().init)))]
    init: Option<Init>,
    /// Penalty on the kernels: l1 = l1*sum|w|, l2 = l2*sum w^2, l1l2 = both (Keras's
    /// definitions) [default: the family of the strengths given, else none].
    #[arg(long, value_enum)]
    penalty: Option<PenaltyKind>,
    #[arg(long, allow_negative_numbers = true, help = with_default(
        "L1 strength", format!("{DEFAULT_STRENGTH} when the penalty has an L1 term")))]
    l1: Option<f32>,
    #[arg(long, allow_negative_numbers = true, help = with_default(
        "L2 strength (no 1/2)", format!("{DEFAULT_STRENGTH} when the penalty has an L2 term")))]
    l2: Option<f32>,
    #[arg(long, value_enum, help = with_default(
        "How the L1 term is minimized: subgradient (l1*sign(w) in the gradient, Keras) or prox \
         (soft-thresholding after each step, which gives exact zeros)",
        enum_name(defaults().l1_mode)))]
    l1_mode: Option<L1Mode>,
    #[arg(long, overrides_with = "no_penalize_biases", help = with_default(
        "Penalize biases as well as kernels", on_off(defaults().penalize_biases)))]
    penalize_biases: bool,
    /// Penalize kernels only (overrides --penalize-biases).
    #[arg(long, overrides_with = "penalize_biases")]
    no_penalize_biases: bool,
    #[arg(long, overrides_with = "no_penalize_norm", help = with_default(
        "Penalize batch-norm scale and shift as well", on_off(defaults().penalize_norm)))]
    penalize_norm: bool,
    /// Leave batch-norm scale and shift unpenalized (overrides --penalize-norm).
    #[arg(long, overrides_with = "penalize_norm")]
    no_penalize_norm: bool,
    /// Per-layer strengths, NAME:l1=X,l2=Y (either may be left out); NAME is a parameter
    /// name (fc1.weight) or a layer (fc1). Repeatable.
    #[arg(long, value_name = "NAME:l1=X,l2=Y", value_parser = parse_layer_penalty)]
    layer_penalty: Vec<(String, LayerStrength)>,
    /// A regularizer with its settings, KIND:key=value,... (l1, l2, group-lasso,
    /// magnitude-pruning; e.g. group-lasso:strength=1e-4,mode=prox or
    /// magnitude-pruning:target=0.8). Repeatable; each kind once.
    #[arg(long, value_name = "KIND:key=value,...", value_parser = parse_regularizer)]
    regularizer: Vec<RegularizerSpec>,
    #[arg(long, allow_negative_numbers = true, help = with_default(
        "Coupled weight decay wd (PyTorch SGD/Adam weight_decay: an L2 penalty of wd/2 on every \
         trainable parameter)", defaults().weight_decay))]
    weight_decay: Option<f32>,
    #[arg(long, allow_negative_numbers = true, help = with_default(
        "Decoupled weight decay d, w <- w*(1 - lr*d) each step (AdamW)",
        defaults().decoupled_decay))]
    decoupled_decay: Option<f32>,
    /// Dropout probability before the classifier, in [0, 1) (standard-cnn) [default: no
    /// dropout layer].
    #[arg(long, allow_negative_numbers = true)]
    dropout: Option<f32>,
    #[arg(long, overrides_with = "no_batch_norm", help = with_default(
        "Batch norm after every convolution (standard-cnn)", on_off(defaults().batch_norm)))]
    batch_norm: bool,
    /// No batch norm (overrides --batch-norm).
    #[arg(long, overrides_with = "batch_norm")]
    no_batch_norm: bool,
    #[arg(long, overrides_with = "no_augment", help = with_default(
        "Training augmentation: random horizontal flips and shifts of up to 4 pixels",
        on_off(defaults().augment)))]
    augment: bool,
    /// No training augmentation (overrides --augment).
    #[arg(long, overrides_with = "augment")]
    no_augment: bool,
    #[arg(long, value_enum, help = with_default(
        "Input scaling", enum_name(defaults().normalization)))]
    normalization: Option<NormalizationKind>,
    #[arg(long, value_enum, help = with_default("Optimizer", enum_name(defaults().optimizer)))]
    optimizer: Option<OptimizerKind>,
    #[arg(long, allow_negative_numbers = true, help = with_default(
        "Learning rate", defaults().lr))]
    lr: Option<f32>,
    #[arg(long, allow_negative_numbers = true, help = with_default(
        "Adam's eps, added to sqrt(v_hat) in the denominator (Keras uses 1e-7)",
        defaults().adam_eps))]
    adam_eps: Option<f32>,
    #[arg(long, allow_negative_numbers = true, help = with_default(
        "SGD momentum", defaults().momentum))]
    momentum: Option<f32>,
    #[arg(long, overrides_with = "no_nesterov", help = with_default(
        "SGD Nesterov momentum", on_off(defaults().nesterov)))]
    nesterov: bool,
    /// Plain SGD momentum (overrides --nesterov).
    #[arg(long, overrides_with = "nesterov")]
    no_nesterov: bool,
    #[arg(long, help = with_default("Training batch size", defaults().batch_size))]
    batch_size: Option<usize>,
    #[arg(long, help = with_default("Epochs", defaults().epochs))]
    epochs: Option<usize>,
    #[arg(long, help = with_default(
        "Seed of initialization, split, shuffles, augmentation and dropout", defaults().seed))]
    seed: Option<u64>,
    #[arg(long, help = with_default("Worker threads, 0 = one per core", defaults().threads))]
    threads: Option<usize>,
    #[arg(long, value_enum, help = with_default(
        "Arithmetic of the products: fp32, or bf16 (bfloat16 operands, fp32 sums; needs \
         AVX512-BF16)", enum_name(defaults().precision)))]
    precision: Option<Precision>,
    #[arg(long, allow_negative_numbers = true, help = with_default(
        "Fraction of the training set held out for validation", defaults().val_fraction))]
    val_fraction: Option<f64>,
    /// Early stopping: epochs without a lower validation loss before stopping; the best
    /// epoch's weights are restored [default: off].
    #[arg(long)]
    patience: Option<usize>,
    #[arg(long, value_enum, help = with_default(
        "What early stopping minimizes: data-loss (validation cross-entropy) or total-loss (plus \
         the penalty's value, as Keras's val_loss)", enum_name(defaults().early_stop_monitor)))]
    early_stop_monitor: Option<EarlyStopMonitor>,
    /// Train on N images of the training part only, drawn at random and stratified by class
    /// (quick runs).
    #[arg(long, value_name = "N")]
    train_subset: Option<usize>,
    /// Test on N test images only, drawn at random and stratified by class (the same for
    /// every seed).
    #[arg(long, value_name = "N")]
    test_subset: Option<usize>,
    /// Run folder [default: runs/<model>-<dataset>-<unix time>].
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// No per-epoch lines and no progress bar.
    #[arg(long)]
    quiet: bool,
}

/// The defaults every option's help shows: [`RunConfig::default`] is the one place they are
/// set.
fn defaults() -> RunConfig {
    RunConfig::default()
}

/// `text` followed by `[default: DEFAULT]`, as clap writes the defaults it knows.
fn with_default(text: &str, default: impl std::fmt::Display) -> String {
    format!("{text} [default: {default}]")
}

/// How a switch's default reads in the help.
fn on_off(value: bool) -> &'static str {
    if value {
        "on"
    } else {
        "off"
    }
}

/// The name `value` is given by on the command line.
fn enum_name<T: ValueEnum>(value: T) -> String {
    value
        .to_possible_value()
        .map(|name| name.get_name().to_string())
        .unwrap_or_default()
}

fn dataset_help() -> String {
    let names: Vec<&str> = DatasetSpec::NAMED.iter().map(DatasetSpec::name).collect();
    format!("Data set: {}, or folder:PATH", names.join(", "))
}

fn model_help() -> String {
    format!(
        "Model: {} (resnet18 has a 3x3 stem, resnet18-imagenet a 7x7 stem and max-pool for \
         64x64 inputs), or a model spec file (.toml)",
        models::NAMES.join(", ")
    )
}

/// `--x` and `--no-x` as one setting: `None` when neither was given, so that a settings
/// file's value stands (clap keeps only the last of the two given).
fn switch(on: bool, off: bool) -> Option<bool> {
    match (on, off) {
        (true, _) => Some(true),
        (_, true) => Some(false),
        _ => None,
    }
}

/// The initializations by name.
const INITS: [(&str, Init); 2] = [("pytorch", Init::Pytorch), ("keras", Init::Keras)];

fn init_name(init: Init) -> &'static str {
    INITS
        .iter()
        .find(|(_, known)| *known == init)
        .map_or("?", |(name, _)| name)
}

fn parse_init(text: &str) -> Result<Init, String> {
    INITS
        .iter()
        .find(|(name, _)| *name == text)
        .map(|(_, init)| *init)
        .ok_or_else(|| format!("expected pytorch or keras, got `{text}`"))
}

/// `NAME:l1=X,l2=Y`.
fn parse_layer_penalty(text: &str) -> Result<(String, LayerStrength), String> {
    let (name, terms) = text
        .split_once(':')
        .ok_or_else(|| format!("expected NAME:l1=X,l2=Y, got `{text}`"))?;
    let mut strength = LayerStrength::default();
    for term in terms.split(',') {
        let (key, value) = term
            .split_once('=')
            .ok_or_else(|| format!("expected l1=X or l2=Y, got `{term}`"))?;
        let value: f32 = value
            .parse()
            .map_err(|_| format!("`{value}` is not a number"))?;
        match key {
            "l1" => strength.l1 = Some(value),
            "l2" => strength.l2 = Some(value),
            _ => return Err(format!("unknown term `{key}` (expected l1 or l2)")),
        }
    }
    Ok((name.to_string(), strength))
}

fn parse_regularizer(text: &str) -> Result<RegularizerSpec, String> {
    text.parse().map_err(|e| format!("{e}"))
}

/// Sets `config.$field` from `args.$field` when given, and notes the option's name.
macro_rules! overlay {
    ($args:ident, $config:ident, $given:ident; $($field:ident),* $(,)?) => {
        $(
            if let Some(value) = $args.$field.clone() {
                $config.$field = value;
                $given.push(stringify!($field));
            }
        )*
    };
}

/// An option's value as text: the data set and the model are recorded in config.toml, which
/// holds only UTF-8.
fn text(option: &str, value: &OsStr) -> Result<String, String> {
    value.to_str().map(str::to_string).ok_or_else(|| {
        format!(
            "--{option}: `{}` is not valid UTF-8; the run records it as text in config.toml \
             (rename it, or give a link to it whose name is UTF-8)",
            value.to_string_lossy()
        )
    })
}

/// Overlays the given options on `config`; returns the names of those given.
fn apply(args: &TrainArgs, config: &mut RunConfig) -> Result<Vec<&'static str>, String> {
    let mut given = Vec::new();
    for (option, value, field) in [
        ("dataset", &args.dataset, &mut config.dataset),
        ("model", &args.model, &mut config.model),
    ] {
        if let Some(value) = value {
            *field = text(option, value)?;
            given.push(option);
        }
    }
    overlay!(args, config, given;
        init, l1_mode, weight_decay, decoupled_decay, normalization, optimizer, lr, adam_eps,
        momentum, batch_size, epochs, seed, threads, precision, val_fraction, early_stop_monitor);
    for (option, value, field) in [
        (
            "penalize_biases",
            switch(args.penalize_biases, args.no_penalize_biases),
            &mut config.penalize_biases,
        ),
        (
            "penalize_norm",
            switch(args.penalize_norm, args.no_penalize_norm),
            &mut config.penalize_norm,
        ),
        (
            "batch_norm",
            switch(args.batch_norm, args.no_batch_norm),
            &mut config.batch_norm,
        ),
        (
            "augment",
            switch(args.augment, args.no_augment),
            &mut config.augment,
        ),
        (
            "nesterov",
            switch(args.nesterov, args.no_nesterov),
            &mut config.nesterov,
        ),
    ] {
        if let Some(value) = value {
            *field = value;
            given.push(option);
        }
    }
    let optional = [
        (
            "data_dir",
            args.data_dir.clone().map(|d| config.data_dir = Some(d)),
        ),
        ("penalty", args.penalty.map(|p| config.penalty = Some(p))),
        ("l1", args.l1.map(|v| config.l1 = Some(v))),
        ("l2", args.l2.map(|v| config.l2 = Some(v))),
        ("dropout", args.dropout.map(|v| config.dropout = Some(v))),
        ("patience", args.patience.map(|v| config.patience = Some(v))),
        (
            "train_subset",
            args.train_subset.map(|v| config.train_subset = Some(v)),
        ),
        (
            "test_subset",
            args.test_subset.map(|v| config.test_subset = Some(v)),
        ),
        ("out", args.out.clone().map(|v| config.out = Some(v))),
    ];
    given.extend(
        optional
            .iter()
            .filter(|(_, set)| set.is_some())
            .map(|(name, _)| *name),
    );
    if !args.layer_penalty.is_empty() {
        config
            .layer_penalties
            .extend(args.layer_penalty.iter().cloned());
        given.push("layer_penalty");
    }
    if !args.regularizer.is_empty() {
        config.regularizers.extend(args.regularizer.iter().cloned());
        given.push("regularizers");
    }
    Ok(given)
}

pub fn run(args: TrainArgs) -> CommandResult {
    let (config, resume) = match &args.resume {
        Some(dir) => (resume_config(&args, dir)?, true),
        None => {
            let mut config = match &args.config {
                Some(path) => RunConfig::from_file(path)?,
                None => RunConfig::default(),
            };
            apply(&args, &mut config)?;
            (config, false)
        }
    };
    let checked = config.check()?;
    let console = TrainConsole::new(!args.quiet);
    let options = RunOptions {
        resume,
        observer: &console,
        ..RunOptions::default()
    };
    // A diverged run is an error here: the command exits non-zero.
    train::run(&checked, &options)?.into_result()?;
    Ok(())
}

/// The recorded config of the run in `dir`. Options given with `--resume` must repeat the
/// recorded values, except those [`resume_conflict`] lets change: --epochs (to train
/// longer), --data-dir (data that moved) and --threads.
/// Errors name `--resume`, the run folder being what was given.
fn resume_config(args: &TrainArgs, dir: &Path) -> Result<RunConfig, String> {
    if args.config.is_some() {
        return Err("--config: cannot be combined with --resume (the run's settings are in its config.toml)".into());
    }
    let recorded = RunConfig::from_run_folder(dir).map_err(|e| e.to_string())?;
    let mut config = recorded.clone();
    config.out = None;
    apply(args, &mut config)?;
    if let Some(change) = resume_conflict(&recorded, &config) {
        return Err(format!(
            "--{}: cannot be changed when resuming; only --epochs, --data-dir and --threads may differ from the run's config.toml",
            change.key.replace('_', "-")
        ));
    }
    if args.data_dir.is_none() && recorded.records_lossy_data_dir() {
        return Err(format!(
            "--resume: {} records its data folder as `{}`, whose name is not valid UTF-8 and \
             was recorded approximately; give the folder again with --data-dir",
            RunFolder::new(dir).config_file().display(),
            recorded.data_dir.unwrap_or_default().display()
        ));
    }
    config.out = Some(dir.to_path_buf());
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Train {
        #[command(flatten)]
        args: TrainArgs,
    }

    /// `config` with the options `flags` laid over it, and the names of those given.
    fn overlay(flags: &[&str], mut config: RunConfig) -> (RunConfig, Vec<&'static str>) {
        let parsed = Train::try_parse_from(std::iter::once("train").chain(flags.iter().copied()))
            .expect("the flags parse");
        let given = apply(&parsed.args, &mut config).unwrap();
        (config, given)
    }

    #[test]
    fn a_switch_and_its_negation_set_the_setting_and_the_last_one_wins() {
        let (config, given) = overlay(&["--augment"], RunConfig::default());
        assert!(config.augment);
        assert_eq!(given, ["augment"]);
        let (config, _) = overlay(&["--augment", "--no-augment"], RunConfig::default());
        assert!(!config.augment);
        let (config, _) = overlay(&["--no-batch-norm", "--batch-norm"], RunConfig::default());
        assert!(config.batch_norm);
    }

    #[test]
    fn a_settings_files_switch_stands_when_neither_form_is_given() {
        let file = RunConfig {
            augment: true,
            nesterov: true,
            penalize_biases: true,
            ..RunConfig::default()
        };
        let (config, given) = overlay(&["--no-nesterov"], file);
        assert!(config.augment && config.penalize_biases && !config.nesterov);
        assert_eq!(given, ["nesterov"]);
    }

    #[test]
    fn a_switch_given_a_value_is_refused() {
        let err = Train::try_parse_from(["train", "--augment", "false"]).unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::UnknownArgument);
    }

    #[test]
    fn every_initialization_parses_back_from_its_name() {
        for (name, init) in INITS {
            assert_eq!(parse_init(init_name(init)), Ok(init), "{name}");
        }
        assert!(parse_init("glorot").is_err());
    }
}
