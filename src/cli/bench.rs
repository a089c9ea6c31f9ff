//! `regstudy bench`: throughput of training steps and inference on synthetic data, timed
//! exactly like `pytorch_peer.py` (the PyTorch reference) so the two can be compared side by
//! side. A training step is `train`'s own ([`TrainStep`]), with Adam (lr 1e-3) and no penalty.

use super::CommandResult;
use clap::Args;
use regstudy::engine::{Precision, Rng, Tensor, ThreadPool};
use regstudy::models;
use regstudy::nn::spec::InputShape;
use regstudy::nn::{Context, Init, Network};
use regstudy::optim::AdamConfig;
use regstudy::regularize::Regularizers;
use regstudy::train::TrainStep;
use std::time::{Duration, Instant};

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Model to time (repeatable), with the input and classes `pytorch_peer.py` gives it.
    #[arg(long = "model", value_name = "MODEL", value_enum, default_values_t = [BenchModel::SimpleCnn])]
    models: Vec<BenchModel>,
    /// Seconds of timed training steps (Adam lr 1e-3, batches of --batch-size) per model.
    #[arg(long, default_value_t = 20.0)]
    train_secs: f64,
    /// Seconds of timed inference (batch 256) per model.
    #[arg(long, default_value_t = 10.0)]
    infer_secs: f64,
    /// Seconds of untimed warm-up before each measurement.
    #[arg(long, default_value_t = 3.0)]
    warmup_secs: f64,
    /// Worker threads, 0 = one per core.
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Print the time spent in each layer's forward and backward pass while training.
    #[arg(long)]
    profile: bool,
    /// Training batch size.
    #[arg(long, default_value_t = 64)]
    batch_size: usize,
    /// Arithmetic of the products: fp32, or bf16 (bfloat16 operands, fp32 sums; the peer's
    /// `--bf16`). The result names the kernel used.
    #[arg(long, value_enum, default_value_t = Precision::Fp32)]
    precision: Precision,
}

fn seconds(option: &str, value: f64) -> Result<Duration, String> {
    Duration::try_from_secs_f64(value)
        .map_err(|_| format!("--{option} must be a non-negative number of seconds, got {value}"))
}

pub fn run(args: BenchArgs) -> CommandResult {
    if !(1..=4096).contains(&args.batch_size) {
        return Err(format!(
            "--batch-size must be between 1 and 4096, got {}",
            args.batch_size
        )
        .into());
    }
    let kernel = args
        .precision
        .kernel()
        .map_err(|e| format!("--precision: {e}"))?;
    let config = BenchConfig {
        precision: args.precision,
        kernel,
        batch: args.batch_size,
        warmup: seconds("warmup-secs", args.warmup_secs)?,
        train: seconds("train-secs", args.train_secs)?,
        infer: seconds("infer-secs", args.infer_secs)?,
        profile: args.profile,
    };
    let pool = ThreadPool::new(args.threads).map_err(|e| format!("--threads: {e}"))?;
    for &model in &args.models {
        let result = measure(model, &config, &pool).ok_or("model failed to build")?;
        println!("{}", serde_json::to_string(&result)?);
    }
    Ok(())
}

/// The models `pytorch_peer.py` times, under the names of [`models::by_name`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum BenchModel {
    SimpleCnn,
    LevyInitial,
    LevyNew,
    StandardCnn,
    Resnet18,
}

impl BenchModel {
    fn name(self) -> &'static str {
        match self {
            Self::SimpleCnn => "simple-cnn",
            Self::LevyInitial => "levy-initial",
            Self::LevyNew => "levy-new",
            Self::StandardCnn => "standard-cnn",
            Self::Resnet18 => "resnet18",
        }
    }

    /// Input side (square RGB images) and classes, as in `pytorch_peer.py`.
    fn shape(self) -> (usize, usize) {
        match self {
            Self::LevyInitial | Self::LevyNew => (64, 200),
            Self::SimpleCnn | Self::StandardCnn | Self::Resnet18 => (32, 10),
        }
    }
}

/// What to time.
#[derive(Clone, Debug)]
struct BenchConfig {
    precision: Precision,
    kernel: &'static str,
    /// Training batch size (inference always uses 256, as the peer script does).
    batch: usize,
    warmup: Duration,
    pub train: Duration,
    pub infer: Duration,
    /// Print the time per layer (forward and backward) of the training steps to stderr.
    profile: bool,
}

/// One JSON line of results, with the peer script's fields.
#[derive(Clone, Debug, serde::Serialize)]
struct BenchResult {
    engine: String,
    model: String,
    batch: usize,
    threads: usize,
    /// `fp32` or `bf16`, as the peer's `config` names its precision.
    precision: Precision,
    /// The code that multiplies in that precision on this CPU.
    kernel: &'static str,
    train_img_per_s: f64,
    infer_img_per_s: f64,
    /// Peak resident memory of the process so far, in MB (Linux only).
    peak_rss_mb: Option<f64>,
}

/// A batch of images with their labels.
type LabelledBatch = (Tensor, Vec<u32>);

/// The benchmark network and its synthetic data: 8 batches of uniform [0, 1) images with
/// random labels.
fn setup(model: BenchModel, batch: usize) -> Option<(Network, Vec<LabelledBatch>)> {
    let (side, classes) = model.shape();
    let input = InputShape {
        channels: 3,
        height: side,
        width: side,
    };
    let net = models::by_name(model.name(), input, classes)?
        .build(Init::Pytorch, 0)
        .ok()?;
    let mut rng = Rng::new(42);
    let batches = (0..8)
        .map(|_| {
            let x: Vec<f32> = (0..batch * side * side * 3)
                .map(|_| rng.next_f32())
                .collect();
            let y = (0..batch)
                .map(|_| rng.below(classes as u64) as u32)
                .collect();
            (
                Tensor::from_vec(&[batch, side, side, 3], x).expect("shape"),
                y,
            )
        })
        .collect();
    Some((net, batches))
}

/// Calls `step` for `warmup`, then counts calls for at least `duration`; returns images/s.
fn throughput(mut step: impl FnMut(), images: usize, warmup: Duration, duration: Duration) -> f64 {
    let start = Instant::now();
    while start.elapsed() < warmup {
        step();
    }
    let (start, mut calls) = (Instant::now(), 0usize);
    loop {
        step();
        calls += 1;
        let elapsed = start.elapsed();
        if elapsed >= duration {
            return (calls * images) as f64 / elapsed.as_secs_f64();
        }
    }
}

/// Times one model; `None` if it does not build for its benchmark input.
fn measure(model: BenchModel, config: &BenchConfig, pool: &ThreadPool) -> Option<BenchResult> {
    let (mut net, batches) = setup(model, config.batch)?;
    net.set_precision(config.precision);
    let (train, infer) = pool.install(|| {
        let mut optimizer = AdamConfig::new(1e-3).init();
        if config.profile {
            net.enable_profiling();
        }
        let mut ctx = Context::train(Rng::new(7));
        let mut step = TrainStep::new();
        let mut i = 0;
        let train = throughput(
            || {
                let (x, y) = &batches[i % batches.len()];
                i += 1;
                // Random labels on uniform images keep the loss finite.
                let done = step.run(
                    &mut net,
                    &mut optimizer,
                    &mut Regularizers::default(),
                    &mut ctx,
                    x,
                    y,
                );
                std::hint::black_box(done.map(|d| d.loss).unwrap_or(f64::NAN));
            },
            config.batch,
            config.warmup,
            config.train,
        );
        if let Some(profile) = net.profile() {
            print_profile(&profile);
        }
        let (side, _) = model.shape();
        let mut rng = Rng::new(43);
        let x = (0..256 * side * side * 3).map(|_| rng.next_f32()).collect();
        let x = Tensor::from_vec(&[256, side, side, 3], x).expect("shape");
        let mut eval = Context::eval();
        let classes = net.classes();
        let infer = throughput(
            || {
                let scores = net.forward(&x, &mut eval);
                std::hint::black_box(argmax(&scores.data()[..classes]));
            },
            256,
            config.warmup,
            config.infer,
        );
        (train, infer)
    });
    Some(BenchResult {
        engine: format!("regstudy-{}", env!("CARGO_PKG_VERSION")),
        model: model.name().into(),
        batch: config.batch,
        threads: pool.threads(),
        precision: config.precision,
        kernel: config.kernel,
        train_img_per_s: (train * 10.0).round() / 10.0,
        infer_img_per_s: (infer * 10.0).round() / 10.0,
        peak_rss_mb: peak_rss_mb(),
    })
}

fn print_profile(profile: &[(String, [f64; 2])]) {
    let total: f64 = profile.iter().map(|(_, t)| t[0] + t[1]).sum();
    eprintln!(
        "{:<24} {:>9} {:>9} {:>7}",
        "layer", "forward", "backward", "share"
    );
    for (label, [fwd, bwd]) in profile {
        let share = 100.0 * (fwd + bwd) / total;
        eprintln!("{label:<24} {fwd:>8.3}s {bwd:>8.3}s {share:>6.1}%");
    }
}

fn argmax(values: &[f32]) -> usize {
    values
        .iter()
        .enumerate()
        .fold((0, f32::NEG_INFINITY), |best, (i, &v)| {
            if v > best.1 {
                (i, v)
            } else {
                best
            }
        })
        .0
}

/// The process's peak resident set size (`VmHWM`), in MB.
fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some((kb / 1024.0 * 10.0).round() / 10.0)
}
