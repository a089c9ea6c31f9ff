//! Whether a run fits the machine: its memory is estimated from the model spec and the batch
//! size (see [`crate::nn::MemoryEstimate`]) and compared with the memory available, before
//! the network is built or a batch allocated, so that a run too large for the machine is
//! refused with the numbers instead of aborting on allocation.

use super::TrainError;
use crate::nn::{MemoryEstimate, ModelSpec};

/// Bytes of memory this process may still take: the kernel's `MemAvailable`, lowered to
/// what the cgroup (container) allows when it sets a limit. `None` when neither is known;
/// then nothing is refused.
pub fn available_memory() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok();
    let system = meminfo.as_deref().and_then(mem_available);
    let read = |name: &str| {
        std::fs::read_to_string(format!("/sys/fs/cgroup/{name}"))
            .ok()
            .and_then(|text| text.trim().parse::<u64>().ok())
    };
    let cgroup =
        read("memory.max").map(|max| max.saturating_sub(read("memory.current").unwrap_or(0)));
    match (system, cgroup) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// `MemAvailable` (else `MemTotal`) of a `/proc/meminfo` text, in bytes.
fn mem_available(meminfo: &str) -> Option<u64> {
    let field = |name: &str| {
        meminfo.lines().find_map(|line| {
            let rest = line.strip_prefix(name)?.strip_prefix(':')?;
            let kib: u64 = rest.trim().strip_suffix("kB")?.trim().parse().ok()?;
            Some(kib.saturating_mul(1024))
        })
    };
    field("MemAvailable").or_else(|| field("MemTotal"))
}

/// `bytes` in GiB (or MiB below 1 GiB), for messages.
pub fn human(bytes: u64) -> String {
    const GIB: f64 = (1u64 << 30) as f64;
    if bytes >= 1 << 30 {
        format!("{:.1} GiB", bytes as f64 / GIB)
    } else {
        format!("{:.0} MiB", bytes as f64 / (1u64 << 20) as f64)
    }
}

/// Refuses to train `spec` on batches of `batch` images (evaluated on batches of
/// `eval_batch`) when its estimate exceeds `available` bytes. The message names the option
/// to change: `--model` when the parameters alone do not fit, else `--batch-size`.
pub fn check_memory(
    spec: &ModelSpec,
    batch: usize,
    eval_batch: usize,
    available: Option<u64>,
) -> Result<MemoryEstimate, TrainError> {
    let estimate = spec.memory_estimate(batch, eval_batch)?;
    let Some(limit) = available else {
        return Ok(estimate);
    };
    if estimate.total() <= limit {
        return Ok(estimate);
    }
    let parts = format!(
        "parameters with gradients and optimizer state {}, activations {}, convolution \
         patches {}, input batches {}",
        human(estimate.parameters),
        human(estimate.activations),
        human(estimate.patches),
        human(estimate.inputs)
    );
    let (total, free) = (human(estimate.total()), human(limit));
    Err(TrainError::Invalid(if estimate.parameters > limit {
        format!(
            "--model: the model `{}` needs about {total} to train ({parts}), more than the \
             {free} of memory available; use a smaller model",
            spec.name
        )
    } else {
        format!(
            "--batch-size: training `{}` on batches of {batch} images needs about {total} \
             ({parts}), more than the {free} of memory available; use a smaller \
             --batch-size or model",
            spec.name
        )
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models;
    use crate::nn::spec::InputShape;

    #[test]
    fn mem_available_is_read_from_meminfo_and_falls_back_to_mem_total() {
        let text = "MemTotal:       16000000 kB\nMemFree:  100 kB\nMemAvailable:    8000000 kB\n";
        assert_eq!(mem_available(text), Some(8_000_000 * 1024));
        assert_eq!(mem_available("MemTotal: 4 kB\n"), Some(4096));
        assert_eq!(mem_available("nothing here\n"), None);
    }

    #[test]
    fn a_run_that_does_not_fit_is_refused_with_the_estimate_and_the_limit() {
        let input = InputShape {
            channels: 1,
            height: 28,
            width: 28,
        };
        let spec = models::by_name("simple-cnn", input, 10).unwrap();
        let fits = check_memory(&spec, 64, 256, Some(64 << 30)).unwrap();
        assert!(fits.total() < 1 << 30, "{fits:?}");
        assert!(
            check_memory(&spec, 64, 256, None).is_ok(),
            "unknown: not refused"
        );
        let error = check_memory(&spec, 60_000, 256, Some(8 << 30))
            .unwrap_err()
            .to_string();
        assert!(
            error.starts_with("--batch-size: training `")
                && error.contains("batches of 60000 images")
                && error.contains("8.0 GiB of memory available"),
            "{error}"
        );
        let error = check_memory(&spec, 1, 1, Some(1000))
            .unwrap_err()
            .to_string();
        assert!(error.starts_with("--model:"), "{error}");
    }
}
