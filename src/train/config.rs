//! A run's settings: [`RunConfig`] as written in `run.toml` or given as flags, and
//! [`RunConfig::check`], which rejects invalid settings, naming the option, before anything
//! is loaded or written.

use super::early_stop::EarlyStopMonitor;
use crate::data::DatasetSpec;
use crate::engine::Precision;
use crate::models;
use crate::nn::{Init, ModelSpec};
use crate::regularize::spec::{GradientOnly, TermSpec};
use crate::regularize::{
    one_or_many, L1Mode, LayerStrength, PenaltyKind, Reach, RegularizerKind, RegularizerPlan,
    RegularizerSpec,
};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Strength of a penalty family's terms when it is chosen without one (Keras's `'l1'`,
/// `'l2'` and `'l1_l2'` regularizers use 0.01).
pub const DEFAULT_STRENGTH: f32 = 0.01;

/// Adam's default `eps`, PyTorch's (Keras uses 1e-7).
pub const DEFAULT_ADAM_EPS: f32 = 1e-8;

/// The optimizer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum OptimizerKind {
    /// Adam (betas 0.9, 0.999; eps 1e-8), PyTorch's update rule.
    #[default]
    Adam,
    /// SGD with optional (Nesterov) momentum, PyTorch's update rule.
    Sgd,
}

/// How pixels become inputs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum NormalizationKind {
    /// `v / 255`.
    #[default]
    UnitRange,
    /// `(v / 255 - mean_c) / std_c`, per channel, from the training part of the split.
    Standardize,
}

/// Every setting of one run. In `run.toml` keys are the field names; on the command line
/// they are the same names with dashes (`batch_size` is `--batch-size`). Flags override the
/// file's values.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RunConfig {
    /// Data set: `cifar10`, `mnist`, `fashion-mnist`, `tiny-imagenet` or `folder:PATH`.
    /// Required.
    pub dataset: String,
    /// Folder holding the data sets. Default: `$REGSTUDY_DATA`, else the user's cache folder.
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "path_as_text"
    )]
    pub data_dir: Option<PathBuf>,
    /// A zoo model (one of [`models::NAMES`]: `simple-cnn`, `levy-initial`, `levy-new`,
    /// `resnet18`, `resnet18-imagenet`, `standard-cnn`) or the path of a model spec file
    /// (`.toml`). Required.
    pub model: String,
    /// Weight initialization: `pytorch` (default) or `keras`.
    pub init: Init,
    /// Penalty family: `none`, `l1`, `l2`, `l1l2`. Default: the family of the strengths
    /// given (`none` if neither `l1` nor `l2` is).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub penalty: Option<PenaltyKind>,
    /// L1 strength (`l1 * sum|w|`). Default: 0.01 when the family has an L1 term.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub l1: Option<f32>,
    /// L2 strength (`l2 * sum w^2`, no 1/2). Default: 0.01 when the family has an L2 term.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub l2: Option<f32>,
    /// How the L1 term is minimized: `subgradient` (default, Keras) or `prox`
    /// (soft-thresholding after each step, exact zeros; with SGD momentum the threshold is
    /// scaled by the momentum's steady-state gain so the objective is the one stated; zeros
    /// are not permanent, a weight leaves 0 when its step exceeds the threshold).
    pub l1_mode: L1Mode,
    /// Penalize biases as well as kernels. Default: false.
    pub penalize_biases: bool,
    /// Penalize batch-norm scale and shift as well. Default: false.
    pub penalize_norm: bool,
    /// Coupled weight decay `wd` on every trainable parameter (PyTorch's SGD/Adam
    /// `weight_decay`; equals an L2 penalty of `wd/2`). Default: 0.
    pub weight_decay: f32,
    /// Decoupled weight decay `d`: `w <- w * (1 - lr * d)` each step (AdamW). Default: 0.
    pub decoupled_decay: f32,
    /// Dropout probability before the classifier, in [0, 1); `standard-cnn` only.
    /// Default: none (no dropout layer).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dropout: Option<f32>,
    /// Batch norm after every convolution; `standard-cnn` only. Default: false.
    pub batch_norm: bool,
    /// Training augmentation: random horizontal flips and shifts of up to 4 pixels.
    /// Default: false.
    pub augment: bool,
    /// Input scaling: `unit-range` (default) or `standardize`.
    pub normalization: NormalizationKind,
    /// `adam` (default) or `sgd`.
    pub optimizer: OptimizerKind,
    /// Learning rate. Default: 1e-3.
    pub lr: f32,
    /// Adam's `eps`, added to `sqrt(v_hat)` in the denominator; a finite number > 0, with
    /// `--optimizer adam` only. Default: 1e-8 (PyTorch; Keras uses 1e-7).
    pub adam_eps: f32,
    /// SGD momentum, in [0, 1). Default: 0.
    pub momentum: f32,
    /// SGD Nesterov momentum (needs `momentum > 0`). Default: false.
    pub nesterov: bool,
    /// Training batch size. Default: 64.
    pub batch_size: usize,
    /// Epochs to train. Default: 10.
    pub epochs: usize,
    /// Seed of the initialization, the validation split, the shuffles, augmentation and
    /// dropout. Default: 0.
    pub seed: u64,
    /// Worker threads; 0 means one per core. Runs are bit-identical for the same seed and
    /// thread count. Default: 0.
    pub threads: usize,
    /// Arithmetic of the convolutions' and linear layers' products: `fp32` (default) or
    /// `bf16` (operands rounded to bfloat16, sums in fp32, as PyTorch's CPU autocast; needs
    /// AVX512-BF16). Weights, gradients, optimizer state and losses stay fp32 either way.
    /// Recorded in `run.json` always, in `config.toml` when not fp32.
    #[serde(skip_serializing_if = "Precision::is_fp32")]
    pub precision: Precision,
    /// Fraction of the training set held out for validation (stratified, seeded), in
    /// [0, 1). Default: 0.1.
    pub val_fraction: f64,
    /// Early stopping: stop after this many epochs without a lower validation loss, then
    /// restore the weights of the best epoch. Default: none (train every epoch, keep the
    /// last weights).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub patience: Option<usize>,
    /// What early stopping (and the best epoch) minimizes: `data-loss` (default: the
    /// validation cross-entropy) or `total-loss` (the validation cross-entropy plus the
    /// penalty's value at the epoch's end weights, as Keras's `val_loss` includes the
    /// regularization losses). The summary's `best_val_loss` stays the best epoch's
    /// validation cross-entropy either way.
    pub early_stop_monitor: EarlyStopMonitor,
    /// Train on only N images of the training part (after the split), drawn at random and
    /// stratified by class with the run's seed, for quick runs. Default: all.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub train_subset: Option<usize>,
    /// Test on only N test images, drawn at random and stratified by class (the same
    /// images for every seed). Default: all.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub test_subset: Option<usize>,
    /// Run folder. Default: `runs/<model>-<dataset>-<unix time>`.
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "path_as_text"
    )]
    pub out: Option<PathBuf>,
    /// Per-layer strengths, keyed by parameter name (`fc1.weight`) or a prefix of names
    /// ending at a dot (`fc1`, `layer1.0`); `{ l1 = X, l2 = Y }`, either may be left out to
    /// keep the default. Default: none.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub layer_penalties: BTreeMap<String, LayerStrength>,
    /// Regularizers, each a table tagged by `kind` (`l1`, `l2`, `group-lasso`,
    /// `magnitude-pruning`) or compact text `KIND:key=value,...`; a single one may stand for
    /// a list. `penalty`, `l1`, `l2`, `l1_mode`, `layer_penalties`, `penalize_biases` and
    /// `penalize_norm` are shorthands for `l1` and `l2` entries; a kind may appear once.
    /// Default: none.
    #[serde(
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "one_or_many"
    )]
    pub regularizers: Vec<RegularizerSpec>,
}

impl Default for RunConfig {
    fn default() -> Self {
        Self {
            dataset: String::new(),
            data_dir: None,
            model: String::new(),
            init: Init::Pytorch,
            penalty: None,
            l1: None,
            l2: None,
            l1_mode: L1Mode::Subgradient,
            penalize_biases: false,
            penalize_norm: false,
            weight_decay: 0.0,
            decoupled_decay: 0.0,
            dropout: None,
            batch_norm: false,
            augment: false,
            normalization: NormalizationKind::UnitRange,
            optimizer: OptimizerKind::Adam,
            lr: 1e-3,
            adam_eps: DEFAULT_ADAM_EPS,
            momentum: 0.0,
            nesterov: false,
            batch_size: 64,
            epochs: 10,
            seed: 0,
            threads: 0,
            precision: Precision::Fp32,
            val_fraction: 0.1,
            patience: None,
            early_stop_monitor: EarlyStopMonitor::DataLoss,
            train_subset: None,
            test_subset: None,
            out: None,
            layer_penalties: BTreeMap::new(),
            regularizers: Vec::new(),
        }
    }
}

/// Writes a path as text. TOML and JSON hold only UTF-8, and a path on Unix is any bytes: a
/// path that is not UTF-8 is recorded with U+FFFD in place of its invalid bytes, so that a
/// record can always be written. The run itself uses the path as given; only the record is
/// approximate, and resuming such a run needs `--data-dir` again (see
/// [`RunConfig::records_lossy_data_dir`]).
fn path_as_text<S: serde::Serializer>(path: &Option<PathBuf>, s: S) -> Result<S::Ok, S::Error> {
    match path {
        Some(path) => s.serialize_some(&path.to_string_lossy()),
        None => s.serialize_none(),
    }
}

/// An invalid setting, named as the command-line option that sets it.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("--{option}: {problem}")]
pub struct ConfigError {
    pub option: String,
    pub problem: String,
}

fn bad(option: &str, problem: impl Into<String>) -> ConfigError {
    ConfigError {
        option: option.into(),
        problem: problem.into(),
    }
}

/// Where the network comes from.
#[derive(Clone, Debug, PartialEq)]
pub enum ModelSource {
    /// A zoo model, sized from the data.
    Zoo(String),
    /// A user's spec file, with its own input shape.
    File(ModelSpec),
}

/// A [`RunConfig`] that passed [`RunConfig::check`], with its defaults resolved
/// (`config.penalty`, `config.l1`, `config.l2` are filled in) and its parts parsed.
#[derive(Clone, Debug)]
pub struct CheckedRunConfig {
    config: RunConfig,
    dataset: DatasetSpec,
    model: ModelSource,
    regularizers: RegularizerPlan,
}

impl CheckedRunConfig {
    /// The settings, defaults resolved.
    pub fn config(&self) -> &RunConfig {
        &self.config
    }

    /// The parsed `dataset`.
    pub fn dataset(&self) -> &DatasetSpec {
        &self.dataset
    }

    /// The parsed `model`: a zoo name, or the spec file's contents.
    pub fn model(&self) -> &ModelSource {
        &self.model
    }

    /// The regularizers of the shorthands and of `regularizers`, before they meet a network.
    pub fn regularizers(&self) -> &RegularizerPlan {
        &self.regularizers
    }
}

fn non_negative(option: &str, value: f32) -> Result<f32, ConfigError> {
    if value.is_finite() && value >= 0.0 {
        Ok(value)
    } else {
        Err(bad(
            option,
            format!("must be a finite number >= 0, got {value}"),
        ))
    }
}

impl RunConfig {
    /// Reads a `run.toml` file given with `--config`.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        Self::read(path, "config")
    }

    /// Reads the `config.toml` of the run folder `dir` given with `--resume`.
    pub fn from_run_folder(dir: &Path) -> Result<Self, ConfigError> {
        super::RunFolder::new(dir).read_config("resume")
    }

    /// Reads a settings file; errors name `option`, the file and the cause.
    pub(crate) fn read(path: &Path, option: &str) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| bad(option, format!("cannot read {}: {e}", path.display())))?;
        toml::from_str(&text).map_err(|e| bad(option, format!("{}: {e}", path.display())))
    }

    /// The config as TOML.
    pub fn to_toml(&self) -> String {
        // Every field is a number, a string, a flag or a table of them (paths are written
        // as text by `path_as_text`), all of which TOML holds.
        toml::to_string(self).expect("a run config always serializes")
    }

    /// Whether the recorded `data_dir` lost bytes that are not UTF-8 (see `path_as_text`):
    /// such a record cannot find the data again.
    pub fn records_lossy_data_dir(&self) -> bool {
        self.data_dir
            .as_ref()
            .is_some_and(|d| d.to_string_lossy().contains('\u{FFFD}'))
    }

    /// Validates every setting and resolves the defaults that depend on others.
    pub fn check(&self) -> Result<CheckedRunConfig, ConfigError> {
        let mut c = self.clone();
        if c.dataset.is_empty() {
            return Err(bad(
                "dataset",
                "is required (cifar10, mnist, fashion-mnist, tiny-imagenet or folder:PATH)",
            ));
        }
        let dataset: DatasetSpec = c
            .dataset
            .parse()
            .map_err(|e| bad("dataset", format!("{e}")))?;
        let model = check_model(&c.model)?;
        let regularizers = check_penalty(&mut c)?;
        let standard = matches!(&model, ModelSource::Zoo(name) if name == "standard-cnn");
        if let Some(p) = c.dropout {
            if !(0.0..1.0).contains(&p) {
                return Err(bad("dropout", format!("must be in [0, 1), got {p}")));
            }
            if !standard {
                return Err(bad("dropout", format!("model `{}` has no dropout switch (only standard-cnn has; put dropout layers in a model spec file instead)", c.model)));
            }
        }
        if c.batch_norm && !standard {
            return Err(bad("batch-norm", format!("model `{}` has no batch-norm switch (only standard-cnn has; put batch-norm layers in a model spec file instead)", c.model)));
        }
        if !(c.lr.is_finite() && c.lr > 0.0) {
            return Err(bad(
                "lr",
                format!("must be a finite number > 0, got {}", c.lr),
            ));
        }
        if !(c.adam_eps.is_finite() && c.adam_eps > 0.0) {
            return Err(bad(
                "adam-eps",
                format!("must be a finite number > 0, got {}", c.adam_eps),
            ));
        }
        if c.optimizer != OptimizerKind::Adam && c.adam_eps != DEFAULT_ADAM_EPS {
            return Err(bad("adam-eps", "applies to --optimizer adam only"));
        }
        if !(0.0..1.0).contains(&c.momentum) {
            return Err(bad(
                "momentum",
                format!("must be in [0, 1), got {}", c.momentum),
            ));
        }
        if c.optimizer == OptimizerKind::Adam && c.momentum != 0.0 {
            return Err(bad("momentum", "applies to --optimizer sgd only"));
        }
        if c.nesterov && (c.optimizer != OptimizerKind::Sgd || c.momentum == 0.0) {
            return Err(bad("nesterov", "needs --optimizer sgd and --momentum > 0"));
        }
        if c.batch_size == 0 {
            return Err(bad("batch-size", "must be at least 1"));
        }
        if c.batch_size == 1 && c.batch_norm {
            return Err(bad(
                "batch-size",
                "must be at least 2 with --batch-norm (batch statistics of one image are degenerate)",
            ));
        }
        if c.epochs == 0 {
            return Err(bad("epochs", "must be at least 1"));
        }
        if !(0.0..1.0).contains(&c.val_fraction) {
            return Err(bad(
                "val-fraction",
                format!("must be in [0, 1), got {}", c.val_fraction),
            ));
        }
        match c.patience {
            Some(0) => return Err(bad("patience", "must be at least 1")),
            Some(_) if c.val_fraction == 0.0 => {
                return Err(bad(
                    "patience",
                    "early stopping needs a validation split (--val-fraction > 0)",
                ))
            }
            _ => {}
        }
        if c.train_subset == Some(0) {
            return Err(bad("train-subset", "must be at least 1"));
        }
        if c.test_subset == Some(0) {
            return Err(bad("test-subset", "must be at least 1"));
        }
        Ok(CheckedRunConfig {
            config: c,
            dataset,
            model,
            regularizers,
        })
    }
}

/// A zoo name, or a `.toml` spec file that parses.
fn check_model(model: &str) -> Result<ModelSource, ConfigError> {
    if model.is_empty() {
        return Err(bad(
            "model",
            format!(
                "is required ({}, or a model spec .toml file)",
                models::NAMES.join(", ")
            ),
        ));
    }
    if models::NAMES.contains(&model) {
        return Ok(ModelSource::Zoo(model.to_string()));
    }
    let path = Path::new(model);
    if model.ends_with(".toml") || path.is_file() {
        let text = std::fs::read_to_string(path)
            .map_err(|e| bad("model", format!("cannot read {model}: {e}")))?;
        let spec = toml::from_str(&text).map_err(|e| bad("model", format!("{model}: {e}")))?;
        return Ok(ModelSource::File(spec));
    }
    Err(bad(
        "model",
        format!(
            "unknown model `{model}`; expected one of {}, or a model spec .toml file",
            models::NAMES.join(", ")
        ),
    ))
}

/// Resolves the penalty family and strengths (filling `c.penalty`, `c.l1`, `c.l2`).
fn check_penalty(c: &mut RunConfig) -> Result<RegularizerPlan, ConfigError> {
    if let Some(l1) = c.l1 {
        non_negative("l1", l1)?;
    }
    if let Some(l2) = c.l2 {
        non_negative("l2", l2)?;
    }
    non_negative("weight-decay", c.weight_decay)?;
    non_negative("decoupled-decay", c.decoupled_decay)?;
    let kind = c
        .penalty
        .unwrap_or_else(|| PenaltyKind::from_strengths(c.l1.is_some(), c.l2.is_some()));
    if c.l1.is_some() && !kind.has_l1() {
        return Err(bad(
            "l1",
            format!("is given but --penalty {kind:?} has no L1 term (use l1 or l1l2)")
                .to_lowercase(),
        ));
    }
    if c.l2.is_some() && !kind.has_l2() {
        return Err(bad(
            "l2",
            format!("is given but --penalty {kind:?} has no L2 term (use l2 or l1l2)")
                .to_lowercase(),
        ));
    }
    c.penalty = Some(kind);
    if kind.has_l1() {
        c.l1 = Some(c.l1.unwrap_or(DEFAULT_STRENGTH));
    }
    if kind.has_l2() {
        c.l2 = Some(c.l2.unwrap_or(DEFAULT_STRENGTH));
    }
    for (key, s) in &c.layer_penalties {
        let terms = [("l1", s.l1, kind.has_l1()), ("l2", s.l2, kind.has_l2())];
        for (term, value, in_family) in terms {
            if let Some(v) = value {
                if !(v.is_finite() && v >= 0.0) {
                    return Err(bad(
                        "layer-penalty",
                        format!("{key}: {term} must be a finite number >= 0, got {v}"),
                    ));
                }
                // The family decides which terms exist: an override of a term the family
                // lacks would silently add it to one layer.
                if !in_family {
                    let family = format!("{kind:?}").to_lowercase();
                    return Err(bad(
                        "layer-penalty",
                        format!(
                            "{key}: {term} is given but --penalty {family} has no {} term \
                             (choose a family with it, {term} or l1l2; --{term} 0 penalizes \
                             only the layers given)",
                            term.to_uppercase()
                        ),
                    ));
                }
            }
        }
    }
    let mut plan = shorthand_plan(c, kind);
    plan.members.extend(check_regularizers(c, &plan.kinds())?);
    Ok(plan)
}

/// The L1 and L2 regularizers the shorthands name (`penalty`, `l1`, `l2`, `l1_mode`,
/// `layer_penalties`, `penalize_biases`, `penalize_norm`), resolved by [`check_penalty`].
fn shorthand_plan(c: &RunConfig, kind: PenaltyKind) -> RegularizerPlan {
    let reach = |pick: fn(&LayerStrength) -> Option<f32>| Reach {
        biases: c.penalize_biases,
        norm: c.penalize_norm,
        layers: Vec::new(),
        overrides: c
            .layer_penalties
            .iter()
            .map(|(key, s)| (key.clone(), pick(s)))
            .collect(),
        option: "--layer-penalty".into(),
    };
    let mut members = Vec::new();
    if kind.has_l1() {
        let spec = RegularizerSpec::L1(TermSpec {
            strength: c.l1.unwrap_or(0.0),
            mode: c.l1_mode,
            ..TermSpec::default()
        });
        members.push((spec, reach(|s| s.l1)));
    }
    if kind.has_l2() {
        let spec = RegularizerSpec::L2(TermSpec::<GradientOnly> {
            strength: c.l2.unwrap_or(0.0),
            ..TermSpec::default()
        });
        members.push((spec, reach(|s| s.l2)));
    }
    RegularizerPlan {
        members,
        weight_decay: c.weight_decay,
    }
}

/// Checks `c.regularizers` and pairs each with its reach, refusing a kind that `taken` (the
/// shorthands' kinds) or an earlier entry already has.
fn check_regularizers(
    c: &RunConfig,
    taken: &[RegularizerKind],
) -> Result<Vec<(RegularizerSpec, Reach)>, ConfigError> {
    let mut kinds = taken.to_vec();
    let mut out = Vec::new();
    for spec in &c.regularizers {
        let kind = spec.kind();
        if kinds.contains(&kind) {
            let by = if taken.contains(&kind) {
                "the shorthand options (--penalty/--l1/--l2) already add it"
            } else {
                "it is given twice"
            };
            return Err(bad(
                "regularizers",
                format!(
                    "{} can appear once, but {by}; give one entry with its settings",
                    kind.name()
                ),
            ));
        }
        kinds.push(kind);
        spec.check()
            .map_err(|problem| bad("regularizers", problem))?;
        let option = format!("--regularizer {}: layer", kind.name());
        out.push((spec.clone(), spec.reach(&option)));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> RunConfig {
        RunConfig {
            dataset: "mnist".into(),
            model: "simple-cnn".into(),
            ..RunConfig::default()
        }
    }

    fn error_of(c: RunConfig) -> String {
        c.check().unwrap_err().to_string()
    }

    #[test]
    fn the_family_follows_the_strengths_given_and_defaults_fill_in() {
        let checked = RunConfig {
            l1: Some(1e-4),
            ..base()
        }
        .check()
        .unwrap();
        assert_eq!(checked.config.penalty, Some(PenaltyKind::L1));
        let kinds = checked.regularizers.kinds();
        assert_eq!(kinds, [RegularizerKind::L1]);
        match &checked.regularizers.members[0].0 {
            RegularizerSpec::L1(t) => assert_eq!(t.strength, 1e-4),
            other => panic!("{other:?}"),
        }
        let checked = RunConfig {
            penalty: Some(PenaltyKind::L1l2),
            ..base()
        }
        .check()
        .unwrap();
        assert_eq!(
            (checked.config.l1, checked.config.l2),
            (Some(0.01), Some(0.01))
        );
        let checked = base().check().unwrap();
        assert_eq!(checked.config.penalty, Some(PenaltyKind::None));
        assert_eq!(checked.config.l1, None);
    }

    #[test]
    fn invalid_settings_name_their_option() {
        assert!(error_of(RunConfig {
            l1: Some(-1.0),
            ..base()
        })
        .starts_with("--l1:"));
        assert!(error_of(RunConfig {
            l2: Some(f32::NAN),
            ..base()
        })
        .starts_with("--l2:"));
        let e = error_of(RunConfig {
            penalty: Some(PenaltyKind::L2),
            l1: Some(0.1),
            ..base()
        });
        assert!(e.starts_with("--l1:"), "{e}");
        let standard = RunConfig {
            model: "standard-cnn".into(),
            ..base()
        };
        assert!(error_of(RunConfig {
            dropout: Some(1.5),
            ..standard.clone()
        })
        .starts_with("--dropout:"));
        assert!(RunConfig {
            dropout: Some(0.5),
            batch_norm: true,
            ..standard
        }
        .check()
        .is_ok());
        assert!(error_of(RunConfig {
            dropout: Some(0.5),
            ..base()
        })
        .starts_with("--dropout:"));
        assert!(error_of(RunConfig {
            batch_norm: true,
            ..base()
        })
        .starts_with("--batch-norm:"));
        assert!(error_of(RunConfig {
            model: "vgg99".into(),
            ..base()
        })
        .starts_with("--model:"));
        assert!(error_of(RunConfig {
            dataset: "cifar100".into(),
            ..base()
        })
        .starts_with("--dataset:"));
        assert!(error_of(RunConfig { lr: 0.0, ..base() }).starts_with("--lr:"));
        assert!(error_of(RunConfig {
            weight_decay: -0.1,
            ..base()
        })
        .starts_with("--weight-decay:"));
        assert!(error_of(RunConfig {
            momentum: 0.9,
            ..base()
        })
        .starts_with("--momentum:"));
        assert!(error_of(RunConfig {
            batch_size: 0,
            ..base()
        })
        .starts_with("--batch-size:"));
        assert!(error_of(RunConfig {
            val_fraction: 1.0,
            ..base()
        })
        .starts_with("--val-fraction:"));
        let e = error_of(RunConfig {
            patience: Some(2),
            val_fraction: 0.0,
            ..base()
        });
        assert!(e.starts_with("--patience:"), "{e}");
    }

    #[test]
    fn a_layer_override_of_a_term_the_penalty_family_lacks_is_an_error_naming_the_key() {
        let with = |penalty: Option<PenaltyKind>, key: &str, s: LayerStrength| {
            let mut c = RunConfig { penalty, ..base() };
            c.layer_penalties.insert(key.into(), s);
            c.check().err().map(|e| e.to_string())
        };
        let l1 = LayerStrength {
            l1: Some(0.1),
            l2: None,
        };
        let l2 = LayerStrength {
            l1: None,
            l2: Some(0.1),
        };
        let e = with(Some(PenaltyKind::L2), "fc1", l1).unwrap();
        assert!(
            e.starts_with("--layer-penalty:") && e.contains("fc1") && e.contains("no L1 term"),
            "{e}"
        );
        let e = with(Some(PenaltyKind::L1), "conv1.weight", l2).unwrap();
        assert!(
            e.starts_with("--layer-penalty:")
                && e.contains("conv1.weight")
                && e.contains("no L2 term"),
            "{e}"
        );
        let e = with(None, "fc1", l1).unwrap();
        assert!(e.contains("--penalty none has no L1 term"), "{e}");
        assert_eq!(with(Some(PenaltyKind::L1), "fc1", l1), None);
        assert_eq!(with(Some(PenaltyKind::L1l2), "fc1", l2), None);
    }

    #[test]
    fn adam_eps_must_be_positive_and_finite_and_is_for_adam_only() {
        assert_eq!(RunConfig::default().adam_eps, 1e-8);
        for eps in [0.0, -1e-8, f32::NAN, f32::INFINITY] {
            let e = error_of(RunConfig {
                adam_eps: eps,
                ..base()
            });
            assert!(e.starts_with("--adam-eps:"), "{eps}: {e}");
        }
        assert!(RunConfig {
            adam_eps: 1e-7,
            ..base()
        }
        .check()
        .is_ok());
        let e = error_of(RunConfig {
            adam_eps: 1e-7,
            optimizer: OptimizerKind::Sgd,
            ..base()
        });
        assert!(e.starts_with("--adam-eps:"), "{e}");
    }

    #[test]
    fn batch_norm_with_batches_of_one_image_is_refused() {
        let e = error_of(RunConfig {
            model: "standard-cnn".into(),
            batch_norm: true,
            batch_size: 1,
            ..base()
        });
        assert!(e.starts_with("--batch-size:"), "{e}");
    }

    #[test]
    fn the_early_stop_monitor_and_adam_eps_round_trip_through_toml() {
        let c: RunConfig = toml::from_str(
            "dataset = \"mnist\"\nmodel = \"simple-cnn\"\nearly_stop_monitor = \"total-loss\"\nadam_eps = 1e-7\n",
        )
        .unwrap();
        assert_eq!(c.early_stop_monitor, EarlyStopMonitor::TotalLoss);
        assert_eq!(c.adam_eps, 1e-7);
        let resolved = c.check().unwrap().config;
        let back: RunConfig = toml::from_str(&resolved.to_toml()).unwrap();
        assert_eq!(back, resolved);
        assert_eq!(back.early_stop_monitor, EarlyStopMonitor::TotalLoss);
        // Files written before the options existed read as the defaults.
        let old: RunConfig = toml::from_str("dataset = \"mnist\"\n").unwrap();
        assert_eq!(old.early_stop_monitor, EarlyStopMonitor::DataLoss);
        assert_eq!(old.adam_eps, DEFAULT_ADAM_EPS);
        assert!(toml::from_str::<RunConfig>("early_stop_monitor = \"val-acc\"\n").is_err());
    }

    #[test]
    fn a_resolved_config_round_trips_through_toml_and_unknown_keys_are_rejected() {
        let mut c = base();
        c.layer_penalties.insert(
            "fc1".into(),
            LayerStrength {
                l1: Some(0.5),
                l2: None,
            },
        );
        let resolved = RunConfig {
            penalty: Some(PenaltyKind::L1l2),
            ..c
        }
        .check()
        .unwrap()
        .config;
        let text = resolved.to_toml();
        let back: RunConfig = toml::from_str(&text).unwrap();
        assert_eq!(back, resolved);
        assert!(toml::from_str::<RunConfig>("dataset = \"mnist\"\nlearning_rate = 0.1\n").is_err());
    }

    #[test]
    fn regularizers_read_as_one_value_or_a_list_and_round_trip_through_toml() {
        let one: RunConfig = toml::from_str(
            "dataset = \"mnist\"\nmodel = \"simple-cnn\"\nregularizers = \"group-lasso:strength=1e-5\"\n",
        )
        .unwrap();
        assert_eq!(one.regularizers.len(), 1);
        let many: RunConfig = toml::from_str(
            "dataset = \"mnist\"\nmodel = \"simple-cnn\"\nl2 = 0.001\nregularizers = [\n  { kind = \"group-lasso\", strength = 1e-4, mode = \"prox\", layers = [\"conv1\"] },\n  \"magnitude-pruning:target=0.5,scope=global\",\n]\n",
        )
        .unwrap();
        let checked = many.check().unwrap();
        assert_eq!(
            checked.regularizers.kinds(),
            [
                RegularizerKind::L2,
                RegularizerKind::GroupLasso,
                RegularizerKind::MagnitudePruning
            ]
        );
        let back: RunConfig = toml::from_str(&checked.config.to_toml()).unwrap();
        assert_eq!(back, checked.config);
    }

    #[test]
    fn a_regularizer_kind_given_twice_is_refused_naming_the_option() {
        let twice = RunConfig {
            regularizers: vec![
                "l2:strength=0.1".parse().unwrap(),
                "l2:strength=0.2".parse().unwrap(),
            ],
            ..base()
        };
        let e = error_of(twice);
        assert!(
            e.starts_with("--regularizers:") && e.contains("l2 can appear once"),
            "{e}"
        );
        let shorthand_too = RunConfig {
            l1: Some(0.1),
            regularizers: vec!["l1:strength=0.2,mode=prox".parse().unwrap()],
            ..base()
        };
        let e = error_of(shorthand_too);
        assert!(e.contains("shorthand"), "{e}");
        let bad = RunConfig {
            regularizers: vec!["magnitude-pruning:target=0.5,frequency=0".parse().unwrap()],
            ..base()
        };
        assert!(error_of(bad).contains("frequency must be at least 1"));
    }
}
