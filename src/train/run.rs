//! The training loop of one run, top to bottom: prepare data, build the network, open the run
//! folder, then per epoch train, validate, measure, checkpoint; at the end restore the best
//! weights (with early stopping), test once, and write the summary.

use super::checkpoint::TrainState;
use super::config::{CheckedRunConfig, ModelSource, NormalizationKind, OptimizerKind, RunConfig};
use super::early_stop::EarlyStopping;
use super::folder::RunFolder;
use super::metrics::{EpochMetrics, Summary};
use super::observer::{BatchProgress, RunStart, Silent, TrainObserver};
use super::outcome::{RunOutcome, RunReport};
use super::step::{NonFiniteLoss, TrainStep};
use super::{record, resources, TrainError};
use crate::data::{
    self, split_validation, stratified_subset, Augmentation, BatchLoader, DataIdentity, Dataset,
    ImageSet, LoaderConfig, Normalization,
};
use crate::engine::{Rng, Tensor, ThreadPool};
use crate::models::{self, StandardCnnOptions};
use crate::nn::spec::InputShape;
use crate::nn::{cross_entropy, Context, ModelSpec, Network, ParamKind};
use crate::optim::{AdamConfig, Optimizer, SgdConfig};
use crate::regularize::WeightStatistics;
use crate::regularize::{kernel_sparsity, Regularizers, SparsityReport};
use serde_json::json;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

/// Stream of the dropout generator, derived from the run's seed.
const DROPOUT_STREAM: u64 = 0x4452_4f50;
/// Seed of the test subset's draw, the same for every run.
const TEST_SUBSET_SEED: u64 = 0x5445_5354;
/// Stream of the draw of the fixed training subset evaluated at each epoch's end, derived
/// from the run's seed.
const TRAIN_EVAL_STREAM: u64 = 0x5452_4556;
/// Batch size for validation and test (it changes no result: evaluation has no batch
/// statistics).
const EVAL_BATCH: usize = 256;

/// How [`run`] behaves beyond its config.
#[derive(Clone)]
pub struct RunOptions<'a> {
    /// Continue the run in `config.out` from its checkpoint.
    pub resume: bool,
    /// The data set, already loaded (a study loads each data set once for all its trials);
    /// used when its spec is the config's, else the data set is loaded.
    pub dataset: Option<Arc<Dataset>>,
    /// Told about the run's progress: the command line's bars and lines, a study's store.
    pub observer: &'a dyn TrainObserver,
    /// With `resume`: when the checkpoint's training had ended (the process stopped before
    /// the test and the summary), test and write the summary instead of refusing.
    pub complete_ended: bool,
}

impl Default for RunOptions<'_> {
    fn default() -> Self {
        RunOptions {
            resume: false,
            dataset: None,
            observer: &Silent,
            complete_ended: false,
        }
    }
}

impl std::fmt::Debug for RunOptions<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunOptions")
            .field("resume", &self.resume)
            .field("dataset", &self.dataset.as_ref().map(|d| &d.identity.spec))
            .field("complete_ended", &self.complete_ended)
            .finish_non_exhaustive()
    }
}

/// The data of a run: training part, validation split, test set.
struct Data {
    train: Arc<ImageSet>,
    /// Images in the data set's training part, before the split and the subset.
    train_total: usize,
    val: Option<Arc<ImageSet>>,
    test: Arc<ImageSet>,
    classes: usize,
    identity: DataIdentity,
    normalization: Normalization,
}

/// Runs (or resumes) the experiment and says how it ended; the summary is also written to
/// the run folder. A non-finite loss ends the run as [`RunOutcome::Diverged`], with status
/// `diverged` in `summary.json`.
pub fn run(checked: &CheckedRunConfig, options: &RunOptions) -> Result<RunOutcome, TrainError> {
    let c = checked.config();
    let pool =
        ThreadPool::new(c.threads).map_err(|e| TrainError::Invalid(format!("--threads: {e}")))?;
    let data = prepare_data(checked, options)?;
    let folder = RunFolder::new(run_folder(c, &spec_name(checked, &data)?));
    if options.resume {
        record::check_resume(&folder, c, &data.identity)?;
    }
    if data.train.is_empty() {
        return Err(TrainError::Invalid(format!(
            "--dataset: no training images are left ({} in the data set's training part, {} \
             held out for validation{}); there is nothing to train on",
            data.train_total,
            data.val.as_ref().map_or(0, |v| v.len()),
            c.train_subset
                .map_or(String::new(), |n| format!(", --train-subset {n}"))
        )));
    }
    let spec = model_spec(checked, &data)?;
    resources::check_memory(
        &spec,
        c.batch_size,
        EVAL_BATCH,
        resources::available_memory(),
    )?;
    let kernel = c
        .precision
        .kernel()
        .map_err(|e| TrainError::Invalid(format!("--precision: {e}")))?;
    let mut net = spec.build(c.init, c.seed)?;
    net.set_precision(c.precision);
    if net.classes() != data.classes {
        return Err(TrainError::Invalid(format!(
            "--model: the network outputs {} classes, the data set has {}",
            net.classes(),
            data.classes
        )));
    }
    let last_step = (c.epochs * batches_per_epoch(data.train.len(), c.batch_size)) as u64;
    let mut regularizers = checked.regularizers().build(&net.params(), last_step)?;
    // Batch norm in training mode needs batches of 2 or more images (the loader merges a
    // last batch of one into the batch before; see `LoaderConfig::drop_last`).
    let batch_norm = net.params().iter().any(|p| p.kind == ParamKind::NormScale);
    if batch_norm && (c.batch_size == 1 || data.train.len() == 1) {
        return Err(TrainError::Invalid(format!(
            "--batch-size: the network has batch norm, whose batch statistics of one image are degenerate; it needs batches of 2 or more images (batch size {}, {} training images)",
            c.batch_size,
            data.train.len()
        )));
    }
    let mut optimizer = make_optimizer(c);
    let state = if options.resume {
        let state = folder.load_checkpoint(&mut net, optimizer.as_mut(), &mut regularizers)?;
        if !(options.complete_ended && training_ended(&state, c)) {
            check_resumable(&state, c)?;
        }
        folder.write_config(c)?;
        record::update(&folder, c, &data.identity)?;
        state
    } else {
        create_run_folder(&folder, checked, &spec, &net, &data, pool.threads(), kernel)?;
        TrainState {
            epochs_done: 0,
            dropout_rng: Rng::derive(c.seed, DROPOUT_STREAM).state(),
            early_stop: EarlyStopping::new(c.patience),
            stopped: None,
            history: Vec::new(),
        }
    };
    let mut trainer = Trainer {
        observer: options.observer,
        config: c,
        net,
        optimizer,
        regularizers,
        folder,
        state,
        threads: pool.threads(),
    };
    let outcome = pool.install(|| trainer.run(&data))?;
    options.observer.run_finished(&outcome);
    Ok(outcome)
}

/// Loads the data set (unless `options` holds it), carves the validation split, applies the
/// subsets.
fn prepare_data(checked: &CheckedRunConfig, options: &RunOptions) -> Result<Data, TrainError> {
    let c = checked.config();
    // A study's data set is shared by its trials: borrowed, and only the parts this run
    // keeps are copied.
    let owned;
    let dataset = match options.dataset.as_deref() {
        Some(d) if d.identity.spec == checked.dataset().to_string() => d,
        _ => {
            let downloads = options.observer.downloads();
            owned = data::load_observed(checked.dataset(), c.data_dir.as_deref(), downloads)?;
            &owned
        }
    };
    let (mut train, val) = if c.val_fraction > 0.0 {
        let (train, val) = split_validation(&dataset.train, c.val_fraction, c.seed)?;
        (train, Some(val))
    } else {
        (dataset.train.clone(), None)
    };
    // Subsets are drawn at random and stratified (data sets may be stored class by class);
    // the test subset does not depend on the seed, so every trial of a study is tested on
    // the same images.
    if let Some(n) = c.train_subset {
        train = stratified_subset(&train, n, c.seed);
    }
    let test = match c.test_subset {
        Some(n) => stratified_subset(&dataset.test, n, TEST_SUBSET_SEED),
        None => dataset.test.clone(),
    };
    let normalization = match c.normalization {
        NormalizationKind::UnitRange => Normalization::UnitRange,
        NormalizationKind::Standardize => Normalization::standardize_from(&train),
    };
    Ok(Data {
        train_total: dataset.train.len(),
        train: Arc::new(train),
        val: val.map(Arc::new),
        test: Arc::new(test),
        classes: dataset.classes.len(),
        identity: dataset.identity.clone(),
        normalization,
    })
}

/// The network's spec: a zoo model sized from the data (with the standard CNN's switches), or
/// the user's spec, which must fit the data.
fn model_spec(checked: &CheckedRunConfig, data: &Data) -> Result<ModelSpec, TrainError> {
    let input = InputShape {
        channels: data.train.channels,
        height: data.train.height,
        width: data.train.width,
    };
    network_spec(checked, input, data.classes)
}

/// The spec of the network a run of `checked` trains on images of shape `input` in
/// `classes` classes: a zoo model sized to them (with the standard CNN's switches), or the
/// user's spec, which must fit them.
pub fn network_spec(
    checked: &CheckedRunConfig,
    input: InputShape,
    classes: usize,
) -> Result<ModelSpec, TrainError> {
    let c = checked.config();
    let spec = match checked.model() {
        ModelSource::Zoo(name) if name == "standard-cnn" => {
            let options = StandardCnnOptions {
                batch_norm: c.batch_norm,
                dropout: c.dropout.unwrap_or(0.0),
            };
            models::standard_cnn(input, classes, options)
        }
        ModelSource::Zoo(name) => models::by_name(name, input, classes)
            .ok_or_else(|| TrainError::Invalid(format!("--model: unknown model `{name}`")))?,
        ModelSource::File(spec) => spec.clone(),
    };
    if spec.input != input {
        return Err(TrainError::Invalid(format!(
            "--model: the spec's input ({}) does not match the data's images ({input})",
            spec.input
        )));
    }
    Ok(spec)
}

/// The optimizer of the config, with its weight decays.
fn make_optimizer(c: &RunConfig) -> Box<dyn Optimizer> {
    match c.optimizer {
        OptimizerKind::Adam => Box::new(
            AdamConfig::new(c.lr)
                .with_eps(c.adam_eps)
                .with_weight_decay(c.weight_decay)
                .with_decoupled_decay(c.decoupled_decay)
                .init(),
        ),
        OptimizerKind::Sgd => Box::new(
            SgdConfig::new(c.lr)
                .with_momentum(c.momentum)
                .with_nesterov(c.nesterov)
                .with_weight_decay(c.weight_decay)
                .with_decoupled_decay(c.decoupled_decay)
                .init(),
        ),
    }
}

/// The model's name, for the default run folder: the zoo name, or the spec file's `name`.
fn spec_name(checked: &CheckedRunConfig, data: &Data) -> Result<String, TrainError> {
    Ok(match checked.model() {
        ModelSource::File(spec) => spec.name.clone(),
        ModelSource::Zoo(_) => model_spec(checked, data)?.name,
    })
}

/// `--out`, else `runs/<model>-<dataset>-<unix seconds>`, where the model's name is reduced
/// to a safe folder name (a spec file's `name` is any text).
fn run_folder(c: &RunConfig, model: &str) -> PathBuf {
    c.out.clone().unwrap_or_else(|| {
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let dataset = safe_name(&c.dataset);
        PathBuf::from("runs").join(format!("{}-{dataset}-{secs}", safe_name(model)))
    })
}

/// `text` with every character but ASCII letters, digits and `-` replaced by `_`: a name
/// that is one folder name, whatever the text (no separator, no `..`).
fn safe_name(text: &str) -> String {
    text.chars()
        .map(|ch| {
            if ch.is_ascii_alphanumeric() || ch == '-' {
                ch
            } else {
                '_'
            }
        })
        .collect()
}

/// Creates a new run folder with the resolved config, the run's identity and the model.
fn create_run_folder(
    folder: &RunFolder,
    checked: &CheckedRunConfig,
    spec: &ModelSpec,
    net: &Network,
    data: &Data,
    threads: usize,
    kernel: &str,
) -> Result<(), TrainError> {
    if folder.holds_run() {
        let out = folder.path().display();
        return Err(TrainError::Invalid(format!(
            "--out: {out} already holds files; choose another folder, or continue it with --resume {out}"
        )));
    }
    folder.create()?;
    let config = RunConfig {
        out: Some(folder.path().to_path_buf()),
        ..checked.config().clone()
    };
    folder.write_config(&config)?;
    folder.write_model(spec)?;
    let record = json!({
        "version": env!("CARGO_PKG_VERSION"),
        "threads": threads,
        "seed": config.seed,
        "precision": config.precision,
        "kernel": kernel,
        "data": data.identity,
        "config": config,
        "train_images": data.train.len(),
        "val_images": data.val.as_ref().map_or(0, |v| v.len()),
        "test_images": data.test.len(),
        "trainable_parameters": net.trainable_count(),
        // Arguments that are not UTF-8 are recorded with U+FFFD in their place.
        "command": std::env::args_os()
            .map(|a| a.to_string_lossy().into_owned())
            .collect::<Vec<_>>(),
    });
    folder.write_run_record(&record)
}

/// Whether the checkpoint's training is over: stopped early, or every epoch done.
fn training_ended(state: &TrainState, c: &RunConfig) -> bool {
    state.stopped.is_some() || state.epochs_done >= c.epochs
}

/// A checkpoint can continue only a run that has epochs left.
fn check_resumable(state: &TrainState, c: &RunConfig) -> Result<(), TrainError> {
    if let Some(stopped) = &state.stopped {
        return Err(TrainError::Resume(format!(
            "the run ended ({stopped}) after epoch {}",
            state.epochs_done
        )));
    }
    if state.epochs_done >= c.epochs {
        return Err(TrainError::Resume(format!(
            "the run has done {} of {} epochs; give --epochs above {}",
            state.epochs_done, c.epochs, state.epochs_done
        )));
    }
    Ok(())
}

/// Why an epoch ended the run.
enum EpochEnd {
    /// A non-finite loss, with the message saying where.
    Diverged(String),
    /// Writing the run folder failed.
    Error(TrainError),
}

/// What one pass over a data set gave.
struct Pass {
    loss: f64,
    acc: f64,
    images: usize,
}

/// A run in progress.
struct Trainer<'a> {
    config: &'a RunConfig,
    net: Network,
    optimizer: Box<dyn Optimizer>,
    regularizers: Regularizers,
    folder: RunFolder,
    state: TrainState,
    threads: usize,
    observer: &'a dyn TrainObserver,
}

/// How training ended, before the test.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Ending {
    Completed,
    EarlyStopped,
}

impl Ending {
    /// The summary's `status`.
    fn status(self) -> &'static str {
        match self {
            Ending::Completed => "completed",
            Ending::EarlyStopped => "early_stopped",
        }
    }
}

impl Trainer<'_> {
    /// Trains the remaining epochs, then tests and writes the summary.
    fn run(&mut self, data: &Data) -> Result<RunOutcome, TrainError> {
        let c = self.config;
        // Augmentation: a random horizontal flip and a shift of up to 4 pixels per image,
        // the usual CIFAR-10 recipe.
        let augmentation = if c.augment {
            Augmentation {
                horizontal_flip: true,
                max_shift: 4,
            }
        } else {
            Augmentation::none()
        };
        let mut train_loader = BatchLoader::new(
            Arc::clone(&data.train),
            LoaderConfig {
                batch_size: c.batch_size,
                shuffle: true,
                // A last batch of one image is merged into the batch before (batch norm).
                drop_last: false,
                seed: c.seed,
                normalization: data.normalization.clone(),
                augmentation,
                // Batches prepared ahead by the loader's thread while the step runs.
                prefetch: 2,
            },
        )?;
        let eval_config = LoaderConfig {
            normalization: data.normalization.clone(),
            ..LoaderConfig::new(EVAL_BATCH)
        };
        let mut val_loader = match &data.val {
            Some(val) => Some(BatchLoader::new(Arc::clone(val), eval_config.clone())?),
            None => None,
        };
        // The fixed training subset measured in evaluation mode at each epoch's end; drawn
        // from the seed, so a resumed run measures the same images.
        let mut train_eval_loader = match &data.val {
            Some(val) => {
                let subset = train_eval_subset(&data.train, val.len(), c.seed);
                Some(BatchLoader::new(Arc::new(subset), eval_config.clone())?)
            }
            None => None,
        };
        self.observer.run_started(&RunStart {
            folder: &self.folder,
            epochs_done: self.state.epochs_done,
            epochs: c.epochs,
        });
        let mut ending = match self.state.stopped.as_deref() {
            Some("early_stopped") => Ending::EarlyStopped,
            _ => Ending::Completed,
        };
        while ending == Ending::Completed && self.state.epochs_done < c.epochs {
            let epoch = self.state.epochs_done + 1;
            match self.epoch(
                epoch,
                &mut train_loader,
                val_loader.as_mut(),
                train_eval_loader.as_mut(),
            ) {
                Err(EpochEnd::Diverged(message)) => return Ok(self.diverged(message)),
                Err(EpochEnd::Error(e)) => return Err(e),
                Ok(()) => {}
            }
            if self.state.early_stop.should_stop() {
                ending = Ending::EarlyStopped;
                self.state.stopped = Some(ending.status().into());
            }
            self.folder.save_checkpoint(
                &self.net,
                self.optimizer.as_ref(),
                &self.regularizers,
                &self.state,
            )?;
            // Told only now, so that what the observer keeps never runs ahead of the
            // checkpoint a resumed run continues from.
            let finished = self.state.history.last().expect("the epoch was recorded");
            self.observer
                .epoch_finished(finished)
                .map_err(TrainError::Stopped)?;
        }
        self.finish(ending, data, eval_config)
    }

    /// One epoch: train, validate, measure (the fixed training subset in evaluation mode
    /// too), record in `metrics.jsonl`. `Err` carries a divergence message.
    fn epoch(
        &mut self,
        epoch: usize,
        train_loader: &mut BatchLoader,
        val_loader: Option<&mut BatchLoader>,
        train_eval_loader: Option<&mut BatchLoader>,
    ) -> Result<(), EpochEnd> {
        let start = Instant::now();
        let train = self
            .train_epoch(epoch, train_loader)
            .map_err(EpochEnd::Diverged)?;
        let train_seconds = start.elapsed().as_secs_f64();
        // The penalty part of the objective at the weights this epoch ends with.
        let penalty = self.regularizers.value(&self.net.params());
        let val = match val_loader {
            Some(loader) => Some(evaluate(&mut self.net, loader)),
            None => None,
        };
        if let Some(v) = &val {
            if !v.loss.is_finite() {
                let message = format!("validation loss is {} after epoch {epoch}", v.loss);
                return Err(EpochEnd::Diverged(message));
            }
            // The monitored value of the weights this epoch ends with (the penalty is added
            // with `early_stop_monitor = total-loss`).
            let monitored = self.config.early_stop_monitor.value(v.loss, penalty);
            let improved = self.state.early_stop.update(epoch, monitored);
            if improved && self.config.patience.is_some() {
                self.folder
                    .save_best(&self.net, epoch)
                    .map_err(EpochEnd::Error)?;
            }
        }
        let train_eval = match train_eval_loader {
            Some(loader) => Some(evaluate(&mut self.net, loader)),
            None => None,
        };
        let eval_gap = |f: fn(&Pass, &Pass) -> f64| match (&train_eval, &val) {
            (Some(t), Some(v)) => Some(f(t, v)),
            _ => None,
        };
        let sparsity = kernel_sparsity(&self.net.params());
        let m = EpochMetrics {
            epoch,
            train_data_loss: train.loss,
            train_penalty: penalty,
            train_loss: train.loss + penalty,
            train_acc: train.acc,
            val_loss: val.as_ref().map(|v| v.loss),
            val_acc: val.as_ref().map(|v| v.acc),
            gap_loss: val.as_ref().map(|v| v.loss - train.loss),
            gap_acc: val.as_ref().map(|v| train.acc - v.acc),
            train_eval_loss: train_eval.as_ref().map(|t| t.loss),
            train_eval_acc: train_eval.as_ref().map(|t| t.acc),
            eval_gap_acc: eval_gap(|t, v| t.acc - v.acc),
            eval_gap_loss: eval_gap(|t, v| v.loss - t.loss),
            lr: shortest_f64(self.optimizer.learning_rate()),
            seconds: start.elapsed().as_secs_f64(),
            train_seconds,
            images_per_s: train.images as f64 / train_seconds,
            threads: Some(self.threads),
            sparsity,
        };
        self.state.history.push(m);
        self.state.epochs_done = epoch;
        self.folder
            .write_metrics(&self.state.history)
            .map_err(EpochEnd::Error)
    }

    /// One pass over the shuffled training set with a gradient step per batch; the
    /// regularizers add their gradients before the optimizer's step, their element-wise terms
    /// inside it and their proximal steps and masks after it. `Err` on a non-finite loss.
    fn train_epoch(&mut self, epoch: usize, loader: &mut BatchLoader) -> Result<Pass, String> {
        let batches = loader.batches_per_epoch();
        self.observer.epoch_started(epoch, batches);
        let [h, w, ch] = self.net.input_shape();
        // Dropout draws continue the generator of the epoch before (kept in the checkpoint).
        let mut ctx = Context::train(Rng::from_state(self.state.dropout_rng));
        let mut step = TrainStep::new();
        let (mut loss_sum, mut correct, mut seen) = (0.0f64, 0usize, 0usize);
        for (i, batch) in loader.epoch(epoch as u64 - 1).enumerate() {
            let x = Tensor::from_vec(&[batch.len, h, w, ch], batch.images)
                .expect("the loader's batches have the data's shape");
            let done = step
                .run(
                    &mut self.net,
                    self.optimizer.as_mut(),
                    &mut self.regularizers,
                    &mut ctx,
                    &x,
                    &batch.labels,
                )
                .map_err(|NonFiniteLoss(loss)| {
                    format!(
                        "the training loss is {loss} at epoch {epoch}, batch {} (try a lower --lr)",
                        i + 1
                    )
                })?;
            loss_sum += done.loss * done.images as f64;
            correct += done.correct;
            seen += done.images;
            self.observer.batch_done(&BatchProgress {
                epoch,
                batch: i + 1,
                batches,
                mean_loss: loss_sum / seen as f64,
                accuracy: correct as f64 / seen as f64,
            });
        }
        self.state.dropout_rng = ctx.rng.state();
        let n = seen.max(1) as f64;
        Ok(Pass {
            loss: loss_sum / n,
            acc: correct as f64 / n,
            images: seen,
        })
    }

    /// Restores the best weights (with early stopping), tests once, saves the final weights
    /// and the summary.
    fn finish(
        &mut self,
        ending: Ending,
        data: &Data,
        eval_config: LoaderConfig,
    ) -> Result<RunOutcome, TrainError> {
        if let (Some(_), Some(best)) = (self.config.patience, self.state.early_stop.best_epoch()) {
            self.folder.load_best(&mut self.net, best)?;
        }
        let mut test_loader = BatchLoader::new(Arc::clone(&data.test), eval_config)?;
        let test = evaluate(&mut self.net, &mut test_loader);
        self.folder.write_weights(&self.net)?;
        let report = self.report(ending.status(), None, Some(&test));
        Ok(match ending {
            Ending::Completed => RunOutcome::Completed(report),
            Ending::EarlyStopped => RunOutcome::EarlyStopped(report),
        })
    }

    /// Records a diverged run.
    fn diverged(&mut self, message: String) -> RunOutcome {
        RunOutcome::Diverged(self.report("diverged", Some(message), None))
    }

    /// Builds the report and writes `summary.json` (a write failure is only a warning, so it
    /// does not hide the run's outcome).
    fn report(&self, status: &str, message: Option<String>, test: Option<&Pass>) -> RunReport {
        let weights = WeightStatistics::of(&self.net.params());
        let summary = self.summary(status, message, test, weights.sparsity.clone());
        if let Err(e) = self.folder.write_summary(&summary) {
            self.observer.warning(&e.to_string());
        }
        RunReport {
            folder: self.folder.clone(),
            summary,
            weights,
            history: self.state.history.clone(),
        }
    }

    /// The run's summary.
    fn summary(
        &self,
        status: &str,
        message: Option<String>,
        test: Option<&Pass>,
        sparsity: SparsityReport,
    ) -> Summary {
        let history = &self.state.history;
        let best_val_acc = history
            .iter()
            .filter_map(|m| m.val_acc)
            .fold(None, |best: Option<f64>, a| {
                Some(best.map_or(a, |b| b.max(a)))
            });
        // The weights `finish` tested: the restored best epoch's with early stopping, else
        // the last epoch's.
        let restored = self.config.patience.and(self.state.early_stop.best_epoch());
        let tested_epoch = test.and(restored.or(history.last().map(|m| m.epoch)));
        Summary {
            status: status.into(),
            message,
            test_acc: test.map(|t| t.acc),
            test_loss: test.map(|t| t.loss),
            best_val_acc,
            // The best epoch's validation cross-entropy, whatever early stopping monitors.
            best_val_loss: self
                .state
                .early_stop
                .best_epoch()
                .and_then(|e| history.iter().find(|m| m.epoch == e))
                .and_then(|m| m.val_loss),
            best_epoch: self.state.early_stop.best_epoch(),
            tested_epoch,
            epochs_run: history.len(),
            mean_epoch_seconds: history.iter().map(|m| m.seconds).sum::<f64>()
                / history.len().max(1) as f64,
            mean_train_seconds: history.iter().map(|m| m.train_seconds).sum::<f64>()
                / history.len().max(1) as f64,
            sparsity,
            seed: self.config.seed,
            threads: self.threads,
            version: env!("CARGO_PKG_VERSION").into(),
            classes: self.net.classes(),
        }
    }
}

/// Batches per epoch of a training set of `images` (as the loader makes them: a last batch
/// of one image joins the batch before).
fn batches_per_epoch(images: usize, batch_size: usize) -> usize {
    if images > 1 && images % batch_size == 1 {
        images / batch_size
    } else {
        images.div_ceil(batch_size)
    }
}

/// The f64 whose shortest decimal form is that of `v` (0.001, not 0.0010000000474974513).
fn shortest_f64(v: f32) -> f64 {
    v.to_string().parse().unwrap_or(f64::from(v))
}

/// The fixed subset of the training part measured in evaluation mode at each epoch's end
/// (`train_eval_loss`, `train_eval_acc`): `n` images (all of them if the part has fewer),
/// stratified, drawn from the run's `seed` on a stream of its own, so it is the same in a
/// resumed run.
pub fn train_eval_subset(train: &ImageSet, n: usize, seed: u64) -> ImageSet {
    stratified_subset(train, n, Rng::derive(seed, TRAIN_EVAL_STREAM).next_u64())
}

/// Mean loss and accuracy of the network in evaluation mode over one pass of `loader`.
fn evaluate(net: &mut Network, loader: &mut BatchLoader) -> Pass {
    let [h, w, ch] = net.input_shape();
    let mut ctx = Context::eval();
    let mut grad = Tensor::default();
    let (mut loss_sum, mut correct, mut seen) = (0.0f64, 0usize, 0usize);
    for batch in loader.epoch(0) {
        let x = Tensor::from_vec(&[batch.len, h, w, ch], batch.images)
            .expect("the loader's batches have the data's shape");
        let out = cross_entropy(net.forward(&x, &mut ctx), &batch.labels, &mut grad);
        loss_sum += out.loss * batch.len as f64;
        correct += out.correct;
        seen += batch.len;
    }
    let n = seen.max(1) as f64;
    Pass {
        loss: loss_sum / n,
        acc: correct as f64 / n,
        images: seen,
    }
}
#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/data");

    /// A quick MNIST run of simple-cnn into a fresh folder under the temporary folder.
    fn quick_run(name: &str) -> RunConfig {
        let out = std::env::temp_dir().join(format!("regstudy-run-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&out);
        RunConfig {
            dataset: "mnist".into(),
            data_dir: Some(DATA.into()),
            model: "simple-cnn".into(),
            train_subset: Some(300),
            test_subset: Some(100),
            val_fraction: 0.1,
            threads: 1,
            out: Some(out),
            ..RunConfig::default()
        }
    }

    /// Records, at each finished epoch, the epochs done by the checkpoint on disk.
    #[derive(Default)]
    struct CheckpointWitness {
        folder: Mutex<Option<RunFolder>>,
        seen: Mutex<Vec<(usize, usize)>>,
        finished: Mutex<Option<String>>,
    }

    impl TrainObserver for CheckpointWitness {
        fn run_started(&self, start: &RunStart) {
            *self.folder.lock().unwrap() = Some(start.folder.clone());
        }

        fn epoch_finished(&self, metrics: &EpochMetrics) -> Result<(), String> {
            let folder = self
                .folder
                .lock()
                .unwrap()
                .clone()
                .expect("run_started came first");
            let state = folder.checkpoint_dir().join("state.json");
            let state: TrainState =
                serde_json::from_slice(&std::fs::read(&state).map_err(|e| e.to_string())?)
                    .map_err(|e| e.to_string())?;
            self.seen
                .lock()
                .unwrap()
                .push((metrics.epoch, state.epochs_done));
            Ok(())
        }

        fn run_finished(&self, outcome: &RunOutcome) {
            *self.finished.lock().unwrap() = Some(outcome.summary().status.clone());
        }
    }

    #[test]
    fn each_finished_epoch_is_told_after_its_checkpoint_is_on_disk() {
        let config = RunConfig {
            epochs: 2,
            ..quick_run("checkpoint-order")
        };
        let witness = CheckpointWitness::default();
        let options = RunOptions {
            observer: &witness,
            ..RunOptions::default()
        };
        let outcome = run(&config.check().unwrap(), &options).unwrap();
        assert_eq!(*witness.seen.lock().unwrap(), [(1, 1), (2, 2)]);
        assert_eq!(
            witness.finished.lock().unwrap().as_deref(),
            Some("completed")
        );
        let RunOutcome::Completed(report) = outcome else {
            panic!("expected a completed run, got {outcome:?}");
        };
        assert_eq!(report.history.len(), 2);
        assert_eq!(report.folder.read_summary().unwrap(), report.summary);
        assert_eq!(report.folder.read_metrics().unwrap(), report.history);
        assert_eq!(
            report.folder.read_weight_histogram().unwrap(),
            report.weights.histogram,
            "the outcome's histogram is that of the saved weights"
        );
        std::fs::remove_dir_all(report.folder.path()).unwrap();
    }

    #[test]
    fn an_observer_that_refuses_an_epoch_stops_the_run_with_its_checkpoint_kept() {
        struct Refuse;
        impl TrainObserver for Refuse {
            fn epoch_finished(&self, _: &EpochMetrics) -> Result<(), String> {
                Err("the trial was taken over".into())
            }
        }
        let config = RunConfig {
            epochs: 3,
            ..quick_run("refused")
        };
        let options = RunOptions {
            observer: &Refuse,
            ..RunOptions::default()
        };
        let error = run(&config.check().unwrap(), &options).unwrap_err();
        assert!(
            matches!(&error, TrainError::Stopped(m) if m == "the trial was taken over"),
            "{error}"
        );
        let folder = RunFolder::new(config.out.clone().unwrap());
        assert!(folder.has_checkpoint());
        assert_eq!(folder.read_metrics().unwrap().len(), 1);
        std::fs::remove_dir_all(folder.path()).unwrap();
    }

    #[test]
    fn a_huge_learning_rate_returns_diverged_with_its_summary_and_weight_statistics() {
        // SGD at lr 1e6 overflows to a NaN loss within a few batches.
        let config = RunConfig {
            optimizer: OptimizerKind::Sgd,
            lr: 1e6,
            epochs: 3,
            ..quick_run("diverged")
        };
        let outcome = run(&config.check().unwrap(), &RunOptions::default()).unwrap();
        let RunOutcome::Diverged(report) = &outcome else {
            panic!("expected a diverged run, got {outcome:?}");
        };
        let summary = &report.summary;
        assert_eq!(summary.status, "diverged");
        let message = summary.message.as_deref().unwrap_or_default();
        assert!(message.contains("loss is"), "{message}");
        assert_eq!((summary.test_acc, summary.tested_epoch), (None, None));
        assert_eq!(report.folder.read_summary().unwrap(), *summary);
        // Statistics of every kernel weight of the last weights, finite or not.
        let weights = &report.weights;
        assert!(weights.sparsity.overall.count > 0);
        assert_eq!(weights.sparsity, summary.sparsity);
        assert_eq!(weights.histogram.total(), weights.sparsity.overall.count);
        assert!(!report.folder.weights_file().exists(), "nothing was tested");
        let error = outcome.clone().into_result().unwrap_err().to_string();
        assert!(
            error.starts_with("training diverged: ") && error.contains("summary.json"),
            "{error}"
        );
        std::fs::remove_dir_all(report.folder.path()).unwrap();
    }

    #[test]
    fn the_default_run_folder_is_one_folder_under_runs_whatever_the_model_spec_is_named() {
        let c = RunConfig {
            dataset: "folder:../x".into(),
            ..RunConfig::default()
        };
        let out = run_folder(&c, "../../etc/passwd");
        let parts: Vec<_> = out.components().collect();
        assert_eq!(parts.len(), 2, "{}", out.display());
        let name = out.file_name().unwrap().to_string_lossy().into_owned();
        assert!(name.starts_with("______etc_passwd-folder____x-"), "{name}");
    }
}
