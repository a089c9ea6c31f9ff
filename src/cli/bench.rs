//! `regstudy bench`: throughput of training and inference on synthetic data.

use super::CommandResult;
use clap::Args;
use regstudy::bench::{self, BenchConfig};
use regstudy::engine::ThreadPool;
use std::time::Duration;

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Models to time: simple-cnn, levy-initial, levy-new, resnet18.
    #[arg(default_values_t = vec!["simple-cnn".to_string()])]
    models: Vec<String>,
    /// Seconds of timed training steps (batch --batch, Adam lr 1e-3) per model.
    #[arg(long, default_value_t = 20.0)]
    train_secs: f64,
    /// Seconds of timed inference (batch 256) per model.
    #[arg(long, default_value_t = 10.0)]
    infer_secs: f64,
    /// Seconds of untimed warm-up before each measurement.
    #[arg(long, default_value_t = 3.0)]
    warmup_secs: f64,
    /// Worker threads (0: one per core).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Print the time spent in each layer's forward and backward pass while training.
    #[arg(long)]
    profile: bool,
    /// Training batch size.
    #[arg(long, default_value_t = 64)]
    batch: usize,
}

fn seconds(option: &str, value: f64) -> Result<Duration, String> {
    Duration::try_from_secs_f64(value)
        .map_err(|_| format!("--{option} must be a non-negative number of seconds, got {value}"))
}

pub fn run(args: BenchArgs) -> CommandResult {
    for model in &args.models {
        if !bench::MODELS.contains(&model.as_str()) {
            return Err(format!(
                "unknown benchmark model `{model}`; expected one of {}",
                bench::MODELS.join(", ")
            )
            .into());
        }
    }
    if !(1..=4096).contains(&args.batch) {
        return Err(format!("--batch must be between 1 and 4096, got {}", args.batch).into());
    }
    let config = BenchConfig {
        batch: args.batch,
        warmup: seconds("warmup-secs", args.warmup_secs)?,
        train: seconds("train-secs", args.train_secs)?,
        infer: seconds("infer-secs", args.infer_secs)?,
        profile: args.profile,
    };
    let pool = ThreadPool::new(args.threads).map_err(|e| format!("--threads: {e}"))?;
    for model in &args.models {
        let result = bench::run(model, &config, &pool).ok_or("model failed to build")?;
        println!("{}", serde_json::to_string(&result)?);
    }
    Ok(())
}
