//! Hand-written SVG charts: line charts, grouped bars with error bars, stepped histograms
//! and scatter plots, 640x400, in the Okabe-Ito palette (distinguishable with the common
//! colour-vision deficiencies), with light gridlines and "nice" tick steps (1, 2 or 5 times
//! a power of ten). The SVG uses no ids, scripts or external references, so several can be
//! inlined in one HTML page and rendered by resvg with only the embedded font.

use super::table::escape;
use std::fmt::Write;

pub const WIDTH: f64 = 640.0;
pub const HEIGHT: f64 = 400.0;
pub const FONT: &str = "DejaVu Sans, sans-serif";

/// Okabe-Ito colours, yellow last (faint on white).
pub const PALETTE: [&str; 8] = [
    "#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#000000", "#F0E442",
];

/// Colour `i` of the palette, cycling.
pub fn color(i: usize) -> &'static str {
    PALETTE[i % PALETTE.len()]
}

const GRID: &str = "#e6e6e6";
const INK: &str = "#333333";
const NEUTRAL: &str = "#777777";

/// The plot area: left, top, right, bottom (the legend sits right of it).
struct Area {
    x0: f64,
    y0: f64,
    x1: f64,
    y1: f64,
}

const AREA: Area = Area {
    x0: 70.0,
    y0: 44.0,
    x1: 470.0,
    y1: 340.0,
};

/// How a legend entry is drawn.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mark {
    Line { dashed: bool },
    Box,
    Dot,
}

/// One legend entry.
#[derive(Clone, Debug, PartialEq)]
pub struct LegendEntry {
    pub label: String,
    pub color: String,
    pub mark: Mark,
}

/// The x axis of a line chart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum XAxis {
    Linear,
    /// Counts such as epochs: ticks at whole numbers.
    Integer,
    /// Positive values on a log scale (non-positive ones are dropped).
    Log,
    /// Values that are already `log10(v)`, labelled as powers of ten.
    Log10Values,
}

/// A line series.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    pub color: String,
    pub dashed: bool,
    /// Draw a dot at each point (for short series).
    pub markers: bool,
    /// Draw as steps: each point's y holds until the next x.
    pub stepped: bool,
    pub points: Vec<(f64, f64)>,
}

/// A line chart; the legend is given explicitly so that styles can be explained once.
#[derive(Clone, Debug, PartialEq)]
pub struct LineChart {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub x_axis: XAxis,
    pub series: Vec<Series>,
    pub legend: Vec<LegendEntry>,
}

/// One bar: a value and its error half-width.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Bar {
    pub value: Option<f64>,
    pub error: Option<f64>,
}

/// Grouped bars: one group per category (method), one bar per series within it.
#[derive(Clone, Debug, PartialEq)]
pub struct BarChart {
    pub title: String,
    pub y_label: String,
    pub series: Vec<String>,
    pub categories: Vec<String>,
    /// `bars[category][series]`.
    pub bars: Vec<Vec<Bar>>,
}

/// A point of a scatter plot.
#[derive(Clone, Debug, PartialEq)]
pub struct ScatterPoint {
    pub x: f64,
    pub y: f64,
    /// Index into the chart's series (colour and legend).
    pub series: usize,
    pub label: Option<String>,
}

/// A scatter plot.
#[derive(Clone, Debug, PartialEq)]
pub struct Scatter {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub series: Vec<String>,
    pub points: Vec<ScatterPoint>,
}

/// A linear or log10 map from data to pixels.
#[derive(Clone, Copy, Debug)]
struct Scale {
    d0: f64,
    d1: f64,
    r0: f64,
    r1: f64,
    log: bool,
}

impl Scale {
    fn map(&self, v: f64) -> f64 {
        let t = |v: f64| if self.log { v.max(1e-300).log10() } else { v };
        let span = t(self.d1) - t(self.d0);
        let f = if span.abs() > 0.0 {
            (t(v) - t(self.d0)) / span
        } else {
            0.5
        };
        self.r0 + f * (self.r1 - self.r0)
    }
}

/// Ticks at 1, 2 or 5 times a power of ten covering `[lo, hi]`, about `target` of them;
/// returns the widened range, the ticks and the decimals their labels need.
/// The linear vertical scale over `lo..hi` rounded out to nice ticks, with its axis drawn.
fn draw_y_axis(svg: &mut String, lo: f64, hi: f64, label: &str) -> Scale {
    let (d0, d1, ticks, decimals) = nice_ticks(lo, hi, 5);
    let y = Scale {
        d0,
        d1,
        r0: AREA.y1,
        r1: AREA.y0,
        log: false,
    };
    y_axis(svg, &y, &ticks, decimals, label);
    y
}

pub fn nice_ticks(lo: f64, hi: f64, target: usize) -> (f64, f64, Vec<f64>, usize) {
    let (mut lo, mut hi) = if lo.is_finite() && hi.is_finite() {
        (lo, hi)
    } else {
        (0.0, 1.0)
    };
    if hi - lo <= f64::EPSILON * hi.abs().max(1.0) {
        let pad = if lo == 0.0 { 1.0 } else { lo.abs() * 0.1 };
        (lo, hi) = (lo - pad, hi + pad);
    }
    let raw = (hi - lo) / target.max(1) as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw * (1.0 - 1e-9))
        .unwrap_or(10.0 * mag);
    let first = (lo / step + 1e-9).floor();
    let last = (hi / step - 1e-9).ceil();
    let ticks = (0..=((last - first) as usize).min(100))
        .map(|k| (first + k as f64) * step)
        .collect();
    let decimals = (-step.log10().floor()).max(0.0) as usize;
    (first * step, last * step, ticks, decimals)
}

/// A log axis over `[lo, hi]` (both positive), padded by a tenth of a decade each side:
/// the domain and ticks at `m * 10^k`, with `m` in {1, 2, 5} over at most 2.5 decades,
/// `m = 1` over more, every other decade over more than 8.
fn log_ticks(lo: f64, hi: f64) -> (f64, f64, Vec<(f64, String)>) {
    let (mut a, mut b) = (lo.log10() - 0.1, hi.log10() + 0.1);
    if b - a < 0.5 {
        (a, b) = (a - 0.25, b + 0.25);
    }
    let mults: &[i64] = if b - a <= 2.5 { &[1, 2, 5] } else { &[1] };
    let every = if b - a > 8.0 { 2 } else { 1 };
    let mut ticks = Vec::new();
    for k in (a.floor() as i32)..=(b.ceil() as i32) {
        for &m in mults.iter().filter(|_| k.rem_euclid(every) == 0) {
            let v = m as f64 * 10f64.powi(k);
            if (a..=b).contains(&v.log10()) {
                ticks.push((v, power_label(m, k)));
            }
        }
    }
    (10f64.powf(a), 10f64.powf(b), ticks)
}

/// `m * 10^k` as text: plain between 0.001 and 5000, else `2e-4`.
pub fn power_label(m: i64, k: i32) -> String {
    match k {
        -3..=-1 => format!("{:.*}", (-k) as usize, m as f64 * 10f64.powi(k)),
        0..=3 => format!("{}", m * 10i64.pow(k as u32)),
        _ => format!("{m}e{k}"),
    }
}

/// `10^k` as text.
pub fn decade_label(k: i32) -> String {
    power_label(1, k)
}

fn tick_label(v: f64, decimals: usize) -> String {
    format!("{:.*}", decimals, v + 0.0)
}

/// Opens the SVG: background and title.
fn open(title: &str) -> String {
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{HEIGHT}\" \
         viewBox=\"0 0 {WIDTH} {HEIGHT}\" font-family=\"{FONT}\" font-size=\"12\">\n\
         <rect width=\"{WIDTH}\" height=\"{HEIGHT}\" fill=\"#ffffff\"/>\n"
    );
    let _ = writeln!(
        s,
        "<text x=\"{:.1}\" y=\"26\" text-anchor=\"middle\" font-size=\"15\" fill=\"{INK}\">{}</text>",
        WIDTH / 2.0,
        escape(&clip(title, 80))
    );
    s
}

/// `s` cut to `n` characters with an ellipsis.
fn clip(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        s.chars().take(n.saturating_sub(1)).collect::<String>() + "…"
    }
}

fn text(svg: &mut String, x: f64, y: f64, anchor: &str, extra: &str, body: &str) {
    let _ = writeln!(
        svg,
        "<text x=\"{x:.1}\" y=\"{y:.1}\" text-anchor=\"{anchor}\" fill=\"{INK}\"{extra}>{}</text>",
        escape(body)
    );
}

fn line(svg: &mut String, (x1, y1): (f64, f64), (x2, y2): (f64, f64), stroke: &str) {
    let _ = writeln!(
        svg,
        "<line x1=\"{x1:.1}\" y1=\"{y1:.1}\" x2=\"{x2:.1}\" y2=\"{y2:.1}\" stroke=\"{stroke}\" stroke-width=\"1\"/>"
    );
}

/// Horizontal gridlines and labels for the y ticks.
fn y_axis(svg: &mut String, y: &Scale, ticks: &[f64], decimals: usize, label: &str) {
    for &t in ticks {
        let py = y.map(t);
        line(svg, (AREA.x0, py), (AREA.x1, py), GRID);
        text(
            svg,
            AREA.x0 - 6.0,
            py + 4.0,
            "end",
            "",
            &tick_label(t, decimals),
        );
    }
    let (cx, cy) = (18.0, (AREA.y0 + AREA.y1) / 2.0);
    let rotate = format!(" transform=\"rotate(-90 {cx:.1} {cy:.1})\"");
    text(svg, cx, cy, "middle", &rotate, &clip(label, 50));
}

/// Vertical gridlines and labels for the x ticks.
fn x_axis(svg: &mut String, x: &Scale, ticks: &[(f64, String)], label: &str) {
    for (t, l) in ticks {
        let px = x.map(*t);
        line(svg, (px, AREA.y0), (px, AREA.y1), GRID);
        text(svg, px, AREA.y1 + 16.0, "middle", "", l);
    }
    let cx = (AREA.x0 + AREA.x1) / 2.0;
    text(svg, cx, AREA.y1 + 40.0, "middle", "", &clip(label, 60));
}

/// The frame of the plot area.
fn frame(svg: &mut String) {
    line(svg, (AREA.x0, AREA.y1), (AREA.x1, AREA.y1), INK);
    line(svg, (AREA.x0, AREA.y0), (AREA.x0, AREA.y1), INK);
}

/// The legend, right of the plot area, one entry per line.
fn legend(svg: &mut String, entries: &[LegendEntry]) {
    let x = AREA.x1 + 16.0;
    for (i, e) in entries.iter().enumerate().take(19) {
        let y = AREA.y0 + 8.0 + 16.0 * i as f64;
        let c = &e.color;
        let _ = match e.mark {
            Mark::Line { dashed } => writeln!(
                svg,
                "<line x1=\"{x:.1}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\" stroke=\"{c}\" stroke-width=\"2\"{}/>",
                x + 22.0,
                if dashed { " stroke-dasharray=\"5 3\"" } else { "" }
            ),
            Mark::Box => writeln!(
                svg,
                "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"14\" height=\"10\" fill=\"{c}\"/>",
                x + 4.0,
                y - 5.0
            ),
            Mark::Dot => writeln!(
                svg,
                "<circle cx=\"{:.1}\" cy=\"{y:.1}\" r=\"4\" fill=\"{c}\"/>",
                x + 11.0
            ),
        };
        text(svg, x + 28.0, y + 4.0, "start", "", &clip(&e.label, 18));
    }
}

/// A centred note for a chart without data.
fn no_data(svg: &mut String) {
    let (cx, cy) = ((AREA.x0 + AREA.x1) / 2.0, (AREA.y0 + AREA.y1) / 2.0);
    text(svg, cx, cy, "middle", "", "no data");
}

/// The finite points of all series, positive x only on a log axis.
fn usable(points: &[(f64, f64)], axis: XAxis) -> Vec<(f64, f64)> {
    points
        .iter()
        .copied()
        .filter(|(x, y)| x.is_finite() && y.is_finite() && (axis != XAxis::Log || *x > 0.0))
        .collect()
}

fn min_max(values: impl Iterator<Item = f64>) -> Option<(f64, f64)> {
    values.fold(None, |acc, v| match acc {
        None => Some((v, v)),
        Some((a, b)) => Some((a.min(v), b.max(v))),
    })
}

/// The x scale and labelled ticks of a line chart.
fn x_scale(axis: XAxis, lo: f64, hi: f64) -> (Scale, Vec<(f64, String)>) {
    let scale = |d0, d1, log| Scale {
        d0,
        d1,
        r0: AREA.x0,
        r1: AREA.x1,
        log,
    };
    match axis {
        XAxis::Linear => {
            let (a, b, ticks, dec) = nice_ticks(lo, hi, 6);
            let labels = ticks.iter().map(|&t| (t, tick_label(t, dec))).collect();
            (scale(a, b, false), labels)
        }
        XAxis::Integer => {
            let (mut a, mut b, mut ticks, dec) = nice_ticks(lo, hi, 6);
            if dec > 0 {
                (a, b) = (lo.floor(), hi.ceil().max(lo.floor() + 1.0));
                ticks = (0..=((b - a) as usize)).map(|k| a + k as f64).collect();
            }
            let labels = ticks.iter().map(|&t| (t, tick_label(t, 0))).collect();
            (scale(a, b, false), labels)
        }
        XAxis::Log => {
            let (a, b, labels) = log_ticks(lo, hi);
            (scale(a, b, true), labels)
        }
        XAxis::Log10Values => {
            let (a, b) = (lo.floor(), hi.ceil().max(lo.floor() + 1.0));
            let step = ((b - a) / 8.0).ceil().max(1.0);
            let n = ((b - a) / step) as usize;
            let labels = (0..=n)
                .map(|k| a + step * k as f64)
                .map(|t| (t, decade_label(t as i32)))
                .collect();
            (scale(a, b, false), labels)
        }
    }
}

/// A polyline (or steps) through `points` in pixel space.
fn path_points(series: &Series, x: &Scale, y: &Scale, axis: XAxis) -> String {
    let pts = usable(&series.points, axis);
    let mut out = Vec::with_capacity(pts.len() * 2);
    for (i, &(px, py)) in pts.iter().enumerate() {
        let (sx, sy) = (x.map(px), y.map(py));
        if series.stepped && i > 0 {
            out.push(format!("{sx:.1},{:.1}", y.map(pts[i - 1].1)));
        }
        out.push(format!("{sx:.1},{sy:.1}"));
    }
    out.join(" ")
}

/// A line chart.
pub fn line_chart(chart: &LineChart) -> String {
    let mut svg = open(&chart.title);
    let all: Vec<(f64, f64)> = chart
        .series
        .iter()
        .flat_map(|s| usable(&s.points, chart.x_axis))
        .collect();
    let xr = min_max(all.iter().map(|p| p.0));
    let yr = min_max(all.iter().map(|p| p.1));
    let (Some((xlo, xhi)), Some((ylo, yhi))) = (xr, yr) else {
        no_data(&mut svg);
        return svg + "</svg>\n";
    };
    let (x, xticks) = x_scale(chart.x_axis, xlo, xhi);
    let y = draw_y_axis(&mut svg, ylo, yhi, &chart.y_label);
    x_axis(&mut svg, &x, &xticks, &chart.x_label);
    frame(&mut svg);
    for s in &chart.series {
        draw_series(&mut svg, s, &x, &y, chart.x_axis);
    }
    legend(&mut svg, &chart.legend);
    svg + "</svg>\n"
}

fn draw_series(svg: &mut String, s: &Series, x: &Scale, y: &Scale, axis: XAxis) {
    let dash = if s.dashed {
        " stroke-dasharray=\"6 4\""
    } else {
        ""
    };
    let _ = writeln!(
        svg,
        "<polyline fill=\"none\" stroke=\"{}\" stroke-width=\"2\" stroke-linejoin=\"round\"{dash} points=\"{}\"/>",
        s.color,
        path_points(s, x, y, axis)
    );
    if s.markers {
        for (px, py) in usable(&s.points, axis) {
            let _ = writeln!(
                svg,
                "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3.5\" fill=\"{}\"/>",
                x.map(px),
                y.map(py),
                s.color
            );
        }
    }
}

/// A grouped bar chart with error bars (`value ± error`); the y axis starts at 0 unless
/// values are negative.
pub fn bar_chart(chart: &BarChart) -> String {
    let mut svg = open(&chart.title);
    let ends = chart.bars.iter().flatten().filter_map(|b| {
        let v = b.value.filter(|v| v.is_finite())?;
        let e = b.error.filter(|e| e.is_finite()).unwrap_or(0.0).abs();
        Some([v - e, v + e])
    });
    let Some((lo, hi)) = min_max(ends.flatten().chain([0.0])) else {
        no_data(&mut svg);
        return svg + "</svg>\n";
    };
    if chart.categories.is_empty() {
        no_data(&mut svg);
        return svg + "</svg>\n";
    }
    let y = draw_y_axis(&mut svg, lo, hi, &chart.y_label);
    draw_bars(&mut svg, chart, &y);
    frame(&mut svg);
    legend(&mut svg, &series_legend(&chart.series, Mark::Box));
    svg + "</svg>\n"
}

fn draw_bars(svg: &mut String, chart: &BarChart, y: &Scale) {
    let slot = (AREA.x1 - AREA.x0) / chart.categories.len() as f64;
    let k = chart.series.len().max(1) as f64;
    let bar_w = (slot * 0.8 / k).min(40.0);
    let rotate = chart
        .categories
        .iter()
        .any(|c| c.chars().count() as f64 * 7.0 > slot);
    for (ci, cat) in chart.categories.iter().enumerate() {
        let center = AREA.x0 + slot * (ci as f64 + 0.5);
        let start = center - bar_w * k / 2.0;
        for (si, bar) in chart.bars.get(ci).into_iter().flatten().enumerate() {
            let x = start + bar_w * si as f64;
            draw_bar(svg, bar, x, bar_w, y, color(si));
        }
        let ly = AREA.y1 + 16.0;
        if rotate {
            let t = format!(" transform=\"rotate(-25 {center:.1} {ly:.1})\" font-size=\"11\"");
            text(svg, center, ly, "end", &t, &clip(cat, 13));
        } else {
            text(svg, center, ly, "middle", "", cat);
        }
    }
}

fn draw_bar(svg: &mut String, bar: &Bar, x: f64, w: f64, y: &Scale, fill: &str) {
    let Some(v) = bar.value.filter(|v| v.is_finite()) else {
        return;
    };
    let (top, base) = (y.map(v).min(y.map(0.0)), y.map(v).max(y.map(0.0)));
    let _ = writeln!(
        svg,
        "<rect x=\"{:.1}\" y=\"{top:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{fill}\"/>",
        x + 1.0,
        (w - 2.0).max(1.0),
        base - top
    );
    if let Some(e) = bar.error.filter(|e| e.is_finite() && *e > 0.0) {
        let cx = x + w / 2.0;
        let (e0, e1) = (y.map(v - e), y.map(v + e));
        line(svg, (cx, e0), (cx, e1), INK);
        line(svg, (cx - 4.0, e0), (cx + 4.0, e0), INK);
        line(svg, (cx - 4.0, e1), (cx + 4.0, e1), INK);
    }
}

/// A scatter plot, one colour per series, optional labels beside points.
pub fn scatter(chart: &Scatter) -> String {
    let mut svg = open(&chart.title);
    let pts: Vec<&ScatterPoint> = chart
        .points
        .iter()
        .filter(|p| p.x.is_finite() && p.y.is_finite())
        .collect();
    let (Some((xlo, xhi)), Some((ylo, yhi))) = (
        min_max(pts.iter().map(|p| p.x)),
        min_max(pts.iter().map(|p| p.y)),
    ) else {
        no_data(&mut svg);
        return svg + "</svg>\n";
    };
    let (x, xticks) = x_scale(XAxis::Linear, xlo, xhi);
    let y = draw_y_axis(&mut svg, ylo, yhi, &chart.y_label);
    x_axis(&mut svg, &x, &xticks, &chart.x_label);
    frame(&mut svg);
    for p in pts {
        let (px, py) = (x.map(p.x), y.map(p.y));
        let _ = writeln!(
            svg,
            "<circle cx=\"{px:.1}\" cy=\"{py:.1}\" r=\"4\" fill=\"{}\" fill-opacity=\"0.8\"/>",
            color(p.series)
        );
        if let Some(l) = &p.label {
            text(
                &mut svg,
                px + 6.0,
                py - 6.0,
                "start",
                " font-size=\"10\"",
                &clip(l, 16),
            );
        }
    }
    legend(&mut svg, &series_legend(&chart.series, Mark::Dot));
    svg + "</svg>\n"
}

/// One legend entry per series, in the palette's order.
fn series_legend(series: &[String], mark: Mark) -> Vec<LegendEntry> {
    series
        .iter()
        .enumerate()
        .map(|(i, s)| LegendEntry {
            label: s.clone(),
            color: color(i).into(),
            mark,
        })
        .collect()
}

/// A neutral grey legend entry explaining a line style.
pub fn style_entry(label: &str, dashed: bool) -> LegendEntry {
    LegendEntry {
        label: label.into(),
        color: NEUTRAL.into(),
        mark: Mark::Line { dashed },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nice_ticks_use_round_steps_that_cover_the_range() {
        let (lo, hi, ticks, dec) = nice_ticks(0.13, 0.87, 5);
        assert_eq!((lo, hi, dec), (0.0, 1.0, 1));
        assert_eq!(ticks.len(), 6);
        let (lo, hi, ticks, _) = nice_ticks(3.0, 3.0, 5);
        assert!(lo < 3.0 && hi > 3.0 && !ticks.is_empty());
    }

    #[test]
    fn decades_are_labelled_plainly_near_one_and_in_exponents_far_away() {
        assert_eq!(decade_label(-2), "0.01");
        assert_eq!(decade_label(2), "100");
        assert_eq!(decade_label(-5), "1e-5");
    }

    #[test]
    fn chart_text_is_escaped_and_empty_charts_say_no_data() {
        let chart = LineChart {
            title: "a < b & c".into(),
            x_label: "x".into(),
            y_label: "y".into(),
            x_axis: XAxis::Log,
            series: vec![Series {
                color: color(0).into(),
                dashed: false,
                markers: true,
                stepped: false,
                points: vec![(0.0, 1.0), (f64::NAN, 2.0)],
            }],
            legend: vec![style_entry("<train>", false)],
        };
        let svg = line_chart(&chart);
        assert!(svg.contains("a &lt; b &amp; c"));
        assert!(svg.contains("no data"));
        assert!(!svg.contains("NaN"));
    }
}
