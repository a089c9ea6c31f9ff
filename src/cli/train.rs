//! `regstudy train`: one run of a source-study experiment.

use super::progress::TrainConsole;
use super::CommandResult;
use clap::Args;
use regstudy::nn::Init;
use regstudy::regularize::{L1Mode, LayerStrength, PenaltyKind};
use regstudy::train::config::{NormalizationKind, OptimizerKind};
use regstudy::train::record::resume_conflict;
use regstudy::train::EarlyStopMonitor;
use regstudy::train::{self, RunConfig, RunFolder, RunOptions};
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};

/// Every option may also come from `--config run.toml` (keys are the option names with
/// underscores); options given here override the file.
#[derive(Debug, Args)]
pub struct TrainArgs {
    /// Settings file (TOML); a run folder's config.toml loads back as is.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Continue the run in this folder from its last checkpoint, with its recorded settings;
    /// only --epochs (to train longer), --data-dir and --threads may be given with it.
    #[arg(long, value_name = "RUN_DIR")]
    resume: Option<PathBuf>,
    /// Data set: cifar10, mnist, fashion-mnist, tiny-imagenet, or folder:PATH.
    #[arg(long)]
    dataset: Option<OsString>,
    /// Folder holding the data sets [default: $REGSTUDY_DATA, else the user's cache folder].
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Model: simple-cnn, levy-initial, levy-new, resnet18 (3x3 stem), resnet18-imagenet (7x7
    /// stem and max-pool, for 64x64 inputs), standard-cnn, or a model spec
    /// file (.toml).
    #[arg(long)]
    model: Option<OsString>,
    /// Weight initialization: pytorch or keras [default: pytorch].
    #[arg(long, value_parser = parse_init)]
    init: Option<Init>,
    /// Penalty on the kernels: l1 = l1*sum|w|, l2 = l2*sum w^2, l1l2 = both (Keras's
    /// definitions) [default: the family of the strengths given, else none].
    #[arg(long, value_enum)]
    penalty: Option<PenaltyKind>,
    /// L1 strength [default: 0.01 when the penalty has an L1 term].
    #[arg(long, allow_negative_numbers = true)]
    l1: Option<f32>,
    /// L2 strength (no 1/2) [default: 0.01 when the penalty has an L2 term].
    #[arg(long, allow_negative_numbers = true)]
    l2: Option<f32>,
    /// How the L1 term is minimized: subgradient (l1*sign(w) in the gradient, Keras) or prox
    /// (soft-thresholding after each step, which gives exact zeros) [default: subgradient].
    #[arg(long, value_enum)]
    l1_mode: Option<L1Mode>,
    /// Penalize biases as well as kernels.
    #[arg(long, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    penalize_biases: Option<bool>,
    /// Penalize batch-norm scale and shift as well.
    #[arg(long, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    penalize_norm: Option<bool>,
    /// Per-layer strengths, NAME:l1=X,l2=Y (either may be left out); NAME is a parameter
    /// name (fc1.weight) or a layer (fc1). Repeatable.
    #[arg(long, value_name = "NAME:l1=X,l2=Y", value_parser = parse_layer_penalty)]
    layer_penalty: Vec<(String, LayerStrength)>,
    /// Coupled weight decay wd (PyTorch SGD/Adam weight_decay: an L2 penalty of wd/2 on every
    /// trainable parameter) [default: 0].
    #[arg(long, allow_negative_numbers = true)]
    weight_decay: Option<f32>,
    /// Decoupled weight decay d, w <- w*(1 - lr*d) each step (AdamW) [default: 0].
    #[arg(long, allow_negative_numbers = true)]
    decoupled_decay: Option<f32>,
    /// Dropout probability before the classifier, in [0, 1) (standard-cnn).
    #[arg(long, allow_negative_numbers = true)]
    dropout: Option<f32>,
    /// Batch norm after every convolution (standard-cnn).
    #[arg(long, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    batch_norm: Option<bool>,
    /// Training augmentation: random horizontal flips and shifts of up to 4 pixels.
    #[arg(long, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    augment: Option<bool>,
    /// Input scaling [default: unit-range].
    #[arg(long, value_enum)]
    normalization: Option<NormalizationKind>,
    /// Optimizer [default: adam].
    #[arg(long, value_enum)]
    optimizer: Option<OptimizerKind>,
    /// Learning rate [default: 1e-3].
    #[arg(long, allow_negative_numbers = true)]
    lr: Option<f32>,
    /// Adam's eps, added to sqrt(v_hat) in the denominator (Keras uses 1e-7) [default: 1e-8].
    #[arg(long, allow_negative_numbers = true)]
    adam_eps: Option<f32>,
    /// SGD momentum [default: 0].
    #[arg(long, allow_negative_numbers = true)]
    momentum: Option<f32>,
    /// SGD Nesterov momentum.
    #[arg(long, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    nesterov: Option<bool>,
    /// Batch size [default: 64].
    #[arg(long)]
    batch_size: Option<usize>,
    /// Epochs [default: 10].
    #[arg(long)]
    epochs: Option<usize>,
    /// Seed of initialization, split, shuffles, augmentation and dropout [default: 0].
    #[arg(long)]
    seed: Option<u64>,
    /// Worker threads, 0 = one per core [default: 0].
    #[arg(long)]
    threads: Option<usize>,
    /// Fraction of the training set held out for validation [default: 0.1].
    #[arg(long, allow_negative_numbers = true)]
    val_fraction: Option<f64>,
    /// Early stopping: epochs without a lower validation loss before stopping; the best
    /// epoch's weights are restored [default: off].
    #[arg(long)]
    patience: Option<usize>,
    /// What early stopping minimizes: data-loss (validation cross-entropy) or total-loss
    /// (plus the penalty's value, as Keras's val_loss) [default: data-loss].
    #[arg(long, value_enum)]
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

fn parse_init(text: &str) -> Result<Init, String> {
    match text {
        "pytorch" => Ok(Init::Pytorch),
        "keras" => Ok(Init::Keras),
        _ => Err(format!("expected pytorch or keras, got `{text}`")),
    }
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
        init, l1_mode, penalize_biases, penalize_norm, weight_decay,
        decoupled_decay, batch_norm, augment, normalization, optimizer, lr, adam_eps, momentum,
        nesterov, batch_size, epochs, seed, threads, val_fraction, early_stop_monitor);
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
