//! How many kernel weights a penalty has driven to zero, and the size of what is left.

use crate::nn::{Param, ParamKind};
use serde::{Deserialize, Serialize};

/// The magnitudes below which a weight is counted as near zero.
pub const THRESHOLDS: [f32; 3] = [1e-4, 1e-3, 1e-2];

/// Counts and norms over a set of weights.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct WeightStats {
    /// Number of weights.
    pub count: u64,
    /// Weights exactly 0.
    pub zeros: u64,
    /// Weights with `|w| < 1e-4`, `< 1e-3`, `< 1e-2` (each includes the exact zeros).
    pub below: [u64; 3],
    /// `zeros / count`.
    pub zero_fraction: f64,
    /// `below[k] / count`.
    pub below_fraction: [f64; 3],
    /// `sum |w|`.
    pub l1_norm: f64,
    /// `sqrt(sum w^2)`.
    pub l2_norm: f64,
}

impl WeightStats {
    /// The statistics of `values`.
    pub fn of(values: &[f32]) -> Self {
        let mut s = WeightStats {
            count: values.len() as u64,
            ..WeightStats::default()
        };
        let mut squares = 0.0f64;
        for &w in values {
            let a = w.abs();
            s.zeros += u64::from(w == 0.0);
            for (below, t) in s.below.iter_mut().zip(THRESHOLDS) {
                *below += u64::from(a < t);
            }
            s.l1_norm += f64::from(a);
            squares += f64::from(w) * f64::from(w);
        }
        s.l2_norm = squares.sqrt();
        s.finish()
    }

    /// The statistics of the union of `parts`.
    pub fn merge(parts: &[WeightStats]) -> Self {
        let mut s = WeightStats::default();
        let mut squares = 0.0;
        for p in parts {
            s.count += p.count;
            s.zeros += p.zeros;
            for k in 0..3 {
                s.below[k] += p.below[k];
            }
            s.l1_norm += p.l1_norm;
            squares += p.l2_norm * p.l2_norm;
        }
        s.l2_norm = squares.sqrt();
        s.finish()
    }

    fn finish(mut self) -> Self {
        let n = self.count.max(1) as f64;
        self.zero_fraction = self.zeros as f64 / n;
        self.below_fraction = self.below.map(|b| b as f64 / n);
        self
    }
}

/// One kernel's statistics.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LayerStats {
    /// The kernel's parameter name, e.g. `conv1.weight`.
    pub name: String,
    #[serde(flatten)]
    pub stats: WeightStats,
}

/// Per-kernel statistics (in network order) and their total.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SparsityReport {
    pub overall: WeightStats,
    pub layers: Vec<LayerStats>,
}

/// Sparsity and norms of every kernel (convolution and linear weights) in `params`.
pub fn kernel_sparsity(params: &[&Param]) -> SparsityReport {
    let layers: Vec<LayerStats> = params
        .iter()
        .filter(|p| p.kind == ParamKind::Kernel)
        .map(|p| LayerStats {
            name: p.name.clone(),
            stats: WeightStats::of(&p.value),
        })
        .collect();
    let parts: Vec<WeightStats> = layers.iter().map(|l| l.stats).collect();
    SparsityReport {
        overall: WeightStats::merge(&parts),
        layers,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_exact_zeros_and_each_threshold() {
        let s = WeightStats::of(&[0.0, -0.0, 5e-5, -5e-4, 5e-3, 0.5, -2.0, 0.0]);
        assert_eq!(s.count, 8);
        assert_eq!(s.zeros, 3);
        assert_eq!(s.below, [4, 5, 6]);
        assert_eq!(s.zero_fraction, 3.0 / 8.0);
        assert!((s.l1_norm - (5e-5 + 5e-4 + 5e-3 + 2.5)).abs() < 1e-6);
        assert!((s.l2_norm - (0.25f64 + 4.0 + 2.5e-5 + 2.5e-7 + 2.5e-9).sqrt()).abs() < 1e-6);
    }

    #[test]
    fn the_report_covers_kernels_only_and_merges_them() {
        let params = [
            Param::new("a.weight".into(), ParamKind::Kernel, &[2], vec![0.0, 3.0]),
            Param::new("a.bias".into(), ParamKind::Bias, &[2], vec![0.0, 0.0]),
            Param::new("b.weight".into(), ParamKind::Kernel, &[2], vec![4.0, 0.0]),
        ];
        let report = kernel_sparsity(&params.iter().collect::<Vec<_>>());
        assert_eq!(report.layers.len(), 2);
        assert_eq!(report.overall.count, 4);
        assert_eq!(report.overall.zeros, 2);
        assert!((report.overall.l2_norm - 5.0).abs() < 1e-12);
        assert_eq!(report.overall.l1_norm, 7.0);
    }
}
