//! The report's figures for one group, as SVG text: learning curves, final accuracy and
//! loss bars, the strength sweep, weight-magnitude histograms and accuracy against
//! sparsity. A figure without data is left out.
//!
//! Curves average each epoch over the reported runs' done seeds (an epoch some seeds did
//! not reach, after early stopping, averages the seeds that did, and the legend says how
//! many). Each method keeps its colour, `PALETTE[i]` for its position `i` in the group, in
//! every figure.

use super::analysis::{Choice, GroupAnalysis, MethodAnalysis};
use super::plot::{
    bar_chart, color, line_chart, scatter, style_entry, Bar, BarChart, LegendEntry, LineChart,
    Mark, Scatter, ScatterPoint, Series, XAxis,
};
use super::stats::Estimate;
use super::StudyResults;
use crate::regularize::WeightHistogram;
use crate::train::EpochMetrics;
use crate::trial::TrialState;
use std::collections::BTreeMap;

/// One figure: file stem, caption and SVG.
#[derive(Clone, Debug, PartialEq)]
pub struct Figure {
    pub name: String,
    pub title: String,
    pub svg: String,
}

/// All figures of a group; `prefix` is the group's file-name stem (empty for the unnamed
/// group).
pub fn group_figures(results: &StudyResults, group: &GroupAnalysis, prefix: &str) -> Vec<Figure> {
    let suffix = if group.name.is_empty() {
        String::new()
    } else {
        format!(" — {}", group.name)
    };
    let name = |kind: &str| {
        if prefix.is_empty() {
            kind.to_string()
        } else {
            format!("{prefix}-{kind}")
        }
    };
    let figures = [
        (
            "curves-acc",
            "Learning curves, accuracy",
            curves(results, group, &suffix, false),
        ),
        (
            "curves-loss",
            "Learning curves, loss",
            curves(results, group, &suffix, true),
        ),
        ("bars-acc", "Accuracy", accuracy_bars(group, &suffix)),
        ("bars-loss", "Loss", loss_bars(group, &suffix)),
        ("sweep", "Strength sweep", sweep(group, &suffix)),
        (
            "histogram",
            "Weight magnitudes",
            histogram(results, group, &suffix),
        ),
        (
            "scatter",
            "Accuracy vs sparsity",
            accuracy_vs_sparsity(results, group, &suffix),
        ),
    ];
    figures
        .into_iter()
        .filter_map(|(kind, title, svg)| {
            Some(Figure {
                name: name(kind),
                title: format!("{title}{suffix}"),
                svg: svg?,
            })
        })
        .collect()
}

/// The values of `f` over the reported done trials, by epoch.
fn by_epoch(
    results: &StudyResults,
    m: &MethodAnalysis,
    f: fn(&EpochMetrics) -> Option<f64>,
) -> BTreeMap<usize, Vec<f64>> {
    let mut by_epoch: BTreeMap<usize, Vec<f64>> = BTreeMap::new();
    for id in m.reported_ids() {
        for e in results.epochs.get(id).into_iter().flatten() {
            if let Some(v) = f(e).filter(|v| v.is_finite()) {
                by_epoch.entry(e.epoch).or_default().push(v);
            }
        }
    }
    by_epoch
}

/// Per-epoch means of `f` over the reported done trials.
fn mean_curve(
    results: &StudyResults,
    m: &MethodAnalysis,
    f: fn(&EpochMetrics) -> Option<f64>,
) -> Vec<(f64, f64)> {
    by_epoch(results, m, f)
        .into_iter()
        .filter_map(|(epoch, v)| Some((epoch as f64, Estimate::of(&v)?.mean)))
        .collect()
}

/// How many seeds the curve's epochs average: `3 seeds`, or `3 seeds; 1 from epoch 14`
/// when early stopping ended some runs sooner.
fn seeds_label(results: &StudyResults, m: &MethodAnalysis) -> String {
    let counts: Vec<(usize, usize)> = by_epoch(results, m, |e| e.val_acc.or(Some(e.train_acc)))
        .into_iter()
        .map(|(epoch, v)| (epoch, v.len()))
        .collect();
    let most = counts.iter().map(|&(_, n)| n).max().unwrap_or(0);
    let plural = |n: usize| if n == 1 { "seed" } else { "seeds" };
    match counts.iter().find(|&&(_, n)| n < most) {
        Some(&(epoch, _)) => {
            let least = counts.iter().map(|&(_, n)| n).min().unwrap_or(0);
            format!(
                "{most} {}; {least} by the last, fewer from epoch {epoch}",
                plural(most)
            )
        }
        None => format!("{most} {}", plural(most)),
    }
}

/// Training (solid) and validation (dashed) curves per method.
fn curves(
    results: &StudyResults,
    group: &GroupAnalysis,
    suffix: &str,
    loss: bool,
) -> Option<String> {
    type Pick = fn(&EpochMetrics) -> Option<f64>;
    // The training curve is the evaluation-mode one where the runs recorded it (the
    // running figure, with dropout and augmentation active, for older records).
    let (train, val): (Pick, Pick) = if loss {
        (
            |e| e.train_eval_loss.or(Some(e.train_data_loss)),
            |e| e.val_loss,
        )
    } else {
        (
            |e| Some(100.0 * e.train_eval_acc.unwrap_or(e.train_acc)),
            |e| e.val_acc.map(|v| 100.0 * v),
        )
    };
    let mut series = Vec::new();
    let mut legend = Vec::new();
    for (i, m) in group.methods.iter().enumerate() {
        let (t, v) = (mean_curve(results, m, train), mean_curve(results, m, val));
        if t.is_empty() && v.is_empty() {
            continue;
        }
        let line = |points, dashed| Series {
            color: color(i).into(),
            dashed,
            markers: false,
            stepped: false,
            points,
        };
        series.extend([line(t, false), line(v, true)]);
        legend.push(LegendEntry {
            label: format!("{} ({})", m.name, seeds_label(results, m)),
            color: color(i).into(),
            mark: Mark::Line { dashed: false },
        });
    }
    if series.is_empty() {
        return None;
    }
    legend.extend([
        style_entry("training (eval mode)", false),
        style_entry("validation", true),
    ]);
    let (what, y_label) = if loss {
        ("loss", "cross-entropy (without the penalty)")
    } else {
        ("accuracy", "accuracy (%)")
    };
    Some(line_chart(&LineChart {
        title: format!("Training and validation {what}{suffix}"),
        x_label: "epoch".into(),
        y_label: y_label.into(),
        x_axis: XAxis::Integer,
        series,
        legend,
    }))
}

/// A bar from an estimate scaled by `k`.
fn bar(e: Option<Estimate>, k: f64) -> Bar {
    let e = e.map(|e| e.scaled(k));
    Bar {
        value: e.map(|e| e.mean),
        error: e.and_then(|e| e.half_width),
    }
}

/// Methods with a result, with their bars.
fn bars(
    group: &GroupAnalysis,
    pick: impl Fn(&super::analysis::ChosenResult) -> Vec<Bar>,
) -> (Vec<String>, Vec<Vec<Bar>>) {
    group
        .methods
        .iter()
        .filter_map(|m| Some((m.name.clone(), pick(m.result.as_ref()?))))
        .unzip()
}

/// Training (evaluation mode) and validation accuracy at the tested epoch and test
/// accuracy, with 95% CIs.
fn accuracy_bars(group: &GroupAnalysis, suffix: &str) -> Option<String> {
    let (categories, bars) = bars(group, |r| {
        vec![
            bar(r.train_acc.or(r.train_acc_running), 100.0),
            bar(r.val_acc, 100.0),
            bar(r.test_acc, 100.0),
        ]
    });
    (!categories.is_empty()).then(|| {
        bar_chart(&BarChart {
            title: format!("Accuracy of the tested weights (mean, 95% CI){suffix}"),
            y_label: "accuracy (%)".into(),
            series: vec!["training".into(), "validation".into(), "test".into()],
            categories,
            bars,
        })
    })
}

/// Training data loss during the tested epoch and validation loss, with 95% CIs.
fn loss_bars(group: &GroupAnalysis, suffix: &str) -> Option<String> {
    let (categories, bars) = bars(group, |r| {
        vec![bar(r.train_loss, 1.0), bar(r.val_loss, 1.0)]
    });
    (!categories.is_empty()).then(|| {
        bar_chart(&BarChart {
            title: format!("Loss at the tested epoch (mean, 95% CI){suffix}"),
            y_label: "cross-entropy (training: data term only)".into(),
            series: vec!["training".into(), "validation".into()],
            categories,
            bars,
        })
    })
}

/// The strength of a point with one positive numeric option, else `None`.
fn strength(point: &BTreeMap<String, serde_json::Value>) -> Option<(String, f64)> {
    let (key, value) = point.iter().next().filter(|_| point.len() == 1)?;
    let v = value.as_f64().filter(|v| v.is_finite() && *v > 0.0)?;
    Some((key.clone(), v))
}

/// Mean validation accuracy of the tested weights against strength (log x), for methods tuning one numeric
/// option over at least two points.
fn sweep(group: &GroupAnalysis, suffix: &str) -> Option<String> {
    let mut series = Vec::new();
    let mut legend = Vec::new();
    for (i, m) in group.methods.iter().enumerate() {
        if m.choice != Choice::Searched {
            continue;
        }
        let Some(strengths) = m
            .points
            .iter()
            .map(|p| strength(&p.point))
            .collect::<Option<Vec<_>>>()
        else {
            continue;
        };
        let points: Vec<(f64, f64)> = m
            .points
            .iter()
            .zip(&strengths)
            .filter_map(|(p, (_, s))| Some((*s, 100.0 * p.score.val_acc?.mean)))
            .collect();
        if points.len() < 2 {
            continue;
        }
        let mut points = points;
        points.sort_by(|a, b| a.0.total_cmp(&b.0));
        series.push(Series {
            color: color(i).into(),
            dashed: false,
            markers: true,
            stepped: false,
            points,
        });
        let key = &strengths[0].0;
        let label = if *key == m.name {
            key.clone()
        } else {
            format!("{} ({key})", m.name)
        };
        legend.push(LegendEntry {
            label,
            color: color(i).into(),
            mark: Mark::Line { dashed: false },
        });
    }
    (!series.is_empty()).then(|| {
        line_chart(&LineChart {
            title: format!("Validation accuracy against strength{suffix}"),
            x_label: "strength (log scale)".into(),
            y_label: "validation accuracy of the tested weights (%, mean over seeds)".into(),
            x_axis: XAxis::Log,
            series,
            legend,
        })
    })
}

/// The histograms of the chosen point's done trials, summed (those on other bins than the
/// first are skipped).
fn summed_histogram(results: &StudyResults, m: &MethodAnalysis) -> Option<WeightHistogram> {
    let ids = m.reported_ids();
    let mut sum: Option<WeightHistogram> = None;
    for t in results.trials.iter().filter(|t| ids.contains(&t.id)) {
        let Some(h) = &t.histogram else { continue };
        match &mut sum {
            None => sum = Some(h.clone()),
            Some(s)
                if s.counts.len() == h.counts.len()
                    && s.log10_min == h.log10_min
                    && s.width == h.width =>
            {
                s.zeros += h.zeros;
                s.counts
                    .iter_mut()
                    .zip(&h.counts)
                    .for_each(|(a, b)| *a += b);
            }
            Some(_) => {}
        }
    }
    sum.filter(|s| s.total() > 0 && !s.counts.is_empty())
}

/// The histogram as step points `(left edge, percent of all weights)`, closed by the
/// right edge of the last bin.
fn steps(h: &WeightHistogram, total: f64) -> Vec<(f64, f64)> {
    let edge = |k: usize| h.log10_min + h.width * k as f64;
    let mut points: Vec<(f64, f64)> = h
        .counts
        .iter()
        .enumerate()
        .map(|(k, &c)| (edge(k), 100.0 * c as f64 / total))
        .collect();
    let last = points.last().map_or(0.0, |p| p.1);
    points.push((edge(h.counts.len()), last));
    points
}

/// Cuts the empty decades at both ends shared by all series, keeping half a decade of
/// margin, so the occupied range fills the chart.
fn trim_empty_ends(series: &mut [Series]) {
    let occupied = series.iter().flat_map(|s| {
        s.points
            .windows(2)
            .filter(|w| w[0].1 > 0.0)
            .map(|w| (w[0].0, w[1].0))
    });
    let Some((lo, hi)) = occupied.fold(None, |acc: Option<(f64, f64)>, (a, b)| {
        Some(acc.map_or((a, b), |(lo, hi)| (lo.min(a), hi.max(b))))
    }) else {
        return;
    };
    let (lo, hi) = (lo - 0.5, hi + 0.5);
    for s in series {
        s.points.retain(|p| p.0 >= lo - 1e-9 && p.0 <= hi + 1e-9);
    }
}

/// Weight magnitude distributions as steps over log10 |w|, in percent of all weights; the
/// exact zeros, which have no logarithm, are given in the legend.
fn histogram(results: &StudyResults, group: &GroupAnalysis, suffix: &str) -> Option<String> {
    let mut series = Vec::new();
    let mut legend = Vec::new();
    for (i, m) in group.methods.iter().enumerate() {
        let Some(h) = summed_histogram(results, m) else {
            continue;
        };
        let total = h.total() as f64;
        let points = steps(&h, total);
        series.push(Series {
            color: color(i).into(),
            dashed: false,
            markers: false,
            stepped: true,
            points,
        });
        let zeros = 100.0 * h.zeros as f64 / total;
        let label = format!("{} (0: {zeros:.1}%)", m.name);
        legend.push(LegendEntry {
            label,
            color: color(i).into(),
            mark: Mark::Line { dashed: false },
        });
    }
    trim_empty_ends(&mut series);
    (!series.is_empty()).then(|| {
        line_chart(&LineChart {
            title: format!("Final kernel weight magnitudes{suffix}"),
            x_label: "|w| (log scale; exact zeros in the legend)".into(),
            y_label: "weights (% per tenth of a decade)".into(),
            x_axis: XAxis::Log10Values,
            series,
            legend,
        })
    })
}

/// Test accuracy against the fraction of weights below 1e-3, one dot per done trial.
fn accuracy_vs_sparsity(
    results: &StudyResults,
    group: &GroupAnalysis,
    suffix: &str,
) -> Option<String> {
    let names: Vec<String> = group.methods.iter().map(|m| m.name.clone()).collect();
    let mut trials: Vec<_> = results
        .trials
        .iter()
        .filter(|t| t.trial.group == group.name && t.state == TrialState::Done)
        .collect();
    trials.sort_by_key(|t| t.trial.number);
    let points: Vec<ScatterPoint> = trials
        .iter()
        .filter_map(|t| {
            let s = t.summary.as_ref()?;
            Some(ScatterPoint {
                x: 100.0 * s.sparsity.overall.below_fraction[1],
                y: 100.0 * s.test_acc?,
                series: names.iter().position(|n| *n == t.trial.method)?,
                label: None,
            })
        })
        .collect();
    (!points.is_empty()).then(|| {
        scatter(&Scatter {
            title: format!("Test accuracy against sparsity, every trial{suffix}"),
            x_label: "kernel weights with |w| < 1e-3 (%)".into(),
            y_label: "test accuracy (%)".into(),
            series: names,
            points,
        })
    })
}
