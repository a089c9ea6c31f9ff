//! Weight statistics, computed from the network in memory: how many kernel weights and whole
//! groups (a convolution's filters, a linear layer's output units) the regularizers have
//! driven to zero, the norms of what is left, and the histogram of magnitudes.

use super::group_size;
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
    /// Output groups (filters or units, see [`group_size`]); 0 when not counted.
    #[serde(default)]
    pub groups: u64,
    /// Groups whose every weight is exactly 0.
    #[serde(default)]
    pub zero_groups: u64,
    /// `zero_groups / groups` (0 without groups).
    #[serde(default)]
    pub zero_group_fraction: f64,
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

    /// The statistics of a kernel's values, with its output groups counted.
    pub fn of_kernel(param: &Param) -> Self {
        let mut s = Self::of(&param.value);
        for group in param.value.chunks(group_size(param)) {
            s.groups += 1;
            s.zero_groups += u64::from(group.iter().all(|&w| w == 0.0));
        }
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
            s.groups += p.groups;
            s.zero_groups += p.zero_groups;
        }
        s.l2_norm = squares.sqrt();
        s.finish()
    }

    fn finish(mut self) -> Self {
        let n = self.count.max(1) as f64;
        self.zero_fraction = self.zeros as f64 / n;
        self.below_fraction = self.below.map(|b| b as f64 / n);
        self.zero_group_fraction = self.zero_groups as f64 / self.groups.max(1) as f64;
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
            stats: WeightStats::of_kernel(p),
        })
        .collect();
    let parts: Vec<WeightStats> = layers.iter().map(|l| l.stats).collect();
    SparsityReport {
        overall: WeightStats::merge(&parts),
        layers,
    }
}

/// Counts of the final kernel weights by magnitude: `zeros` exact zeros, then
/// `counts[k]` weights with `10^(log10_min + k*width) <= |w| < 10^(log10_min + (k+1)*width)`
/// (the first bin also takes everything below it, the last everything above).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WeightHistogram {
    pub zeros: u64,
    pub log10_min: f64,
    pub width: f64,
    pub counts: Vec<u64>,
}

impl WeightHistogram {
    /// Bins of a tenth of a decade from 1e-8 to 10.
    pub const LOG10_MIN: f64 = -8.0;
    pub const LOG10_MAX: f64 = 1.0;
    pub const WIDTH: f64 = 0.1;

    /// The histogram of `weights` on the standard bins.
    pub fn of<'a>(weights: impl IntoIterator<Item = &'a [f32]>) -> Self {
        let bins = ((Self::LOG10_MAX - Self::LOG10_MIN) / Self::WIDTH).round() as usize;
        let mut h = WeightHistogram {
            zeros: 0,
            log10_min: Self::LOG10_MIN,
            width: Self::WIDTH,
            counts: vec![0; bins],
        };
        for values in weights {
            for &w in values {
                if w == 0.0 {
                    h.zeros += 1;
                    continue;
                }
                let position = (f64::from(w.abs()).log10() - h.log10_min) / h.width;
                let bin = position.floor().clamp(0.0, (bins - 1) as f64) as usize;
                h.counts[bin] += 1;
            }
        }
        h
    }

    /// Total number of weights counted.
    pub fn total(&self) -> u64 {
        self.zeros + self.counts.iter().sum::<u64>()
    }
}

/// The histogram of every kernel's weights in `params`.
pub fn kernel_histogram(params: &[&Param]) -> WeightHistogram {
    WeightHistogram::of(
        params
            .iter()
            .filter(|p| p.kind == ParamKind::Kernel)
            .map(|p| p.value.as_slice()),
    )
}

/// Sparsity and magnitudes of a network's kernels (convolution and linear weights), as a run
/// ends: what its summary, the study's record and the report show.
#[derive(Clone, Debug, PartialEq)]
pub struct WeightStatistics {
    pub sparsity: SparsityReport,
    pub histogram: WeightHistogram,
}

impl WeightStatistics {
    /// The statistics of `params`' kernels.
    pub fn of(params: &[&Param]) -> Self {
        WeightStatistics {
            sparsity: kernel_sparsity(params),
            histogram: kernel_histogram(params),
        }
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

    #[test]
    fn filters_and_units_entirely_zero_are_counted_per_layer_and_overall() {
        // A convolution of 3 filters of 2 weights each, the second all zero; a linear layer
        // of 2 units of 2 weights, one unit with a single zero only.
        let params = [
            Param::new(
                "conv.weight".into(),
                ParamKind::Kernel,
                &[3, 2, 1, 1],
                vec![1.0, 0.0, 0.0, -0.0, 0.5, 0.5],
            ),
            Param::new(
                "fc.weight".into(),
                ParamKind::Kernel,
                &[2, 2],
                vec![0.0, 2.0, 1.0, 1.0],
            ),
        ];
        let report = kernel_sparsity(&params.iter().collect::<Vec<_>>());
        assert_eq!(
            (
                report.layers[0].stats.groups,
                report.layers[0].stats.zero_groups
            ),
            (3, 1)
        );
        assert_eq!(
            (
                report.layers[1].stats.groups,
                report.layers[1].stats.zero_groups
            ),
            (2, 0)
        );
        assert_eq!((report.overall.groups, report.overall.zero_groups), (5, 1));
        assert!((report.overall.zero_group_fraction - 0.2).abs() < 1e-12);
    }

    #[test]
    fn statistics_written_before_group_counts_existed_still_load() {
        let old = r#"{"count":2,"zeros":1,"below":[1,1,1],"zero_fraction":0.5,
            "below_fraction":[0.5,0.5,0.5],"l1_norm":1.0,"l2_norm":1.0}"#;
        let s: WeightStats = serde_json::from_str(old).unwrap();
        assert_eq!((s.count, s.groups, s.zero_groups), (2, 0, 0));
    }

    #[test]
    fn the_histogram_puts_each_weight_in_its_decade_tenth() {
        let weights = [0.0f32, 1e-9, 1.5e-3, -1.5e-3, 0.5, 100.0];
        let h = WeightHistogram::of([&weights[..]]);
        assert_eq!(h.zeros, 1);
        assert_eq!(h.total(), 6);
        assert_eq!(h.counts[0], 1, "below the range goes to the first bin");
        // log10(1.5e-3) = -2.82 -> bin floor((-2.82 + 8) / 0.1) = 51
        assert_eq!(h.counts[51], 2);
        // log10(0.5) = -0.30 -> bin 76
        assert_eq!(h.counts[76], 1);
        assert_eq!(
            *h.counts.last().unwrap(),
            1,
            "above the range goes to the last bin"
        );
    }
}
