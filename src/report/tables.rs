//! The report's tables, built from an [`Analysis`]: per group the methods, the strength
//! sweep, published values, combinations and the ablation; for the study the trial counts
//! and the failed and diverged trials.

use super::analysis::{ablation, all_components, Analysis, GroupAnalysis, MethodAnalysis, Verdict};
use super::format::{fixed, p_value, pct, pct_pm, signed, MISSING};
use super::table::Table;

/// A file-name stem for a group: lowercase letters, digits and dashes; `""` for the unnamed
/// group, `group<i>` when nothing usable is left.
pub fn slug(name: &str, index: usize) -> String {
    let mut s = String::new();
    for c in name.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_alphanumeric() {
            s.push(c);
        } else if !s.is_empty() && !s.ends_with('-') {
            s.push('-');
        }
    }
    let s = s.trim_end_matches('-').to_string();
    if s.is_empty() && !name.is_empty() {
        format!("group{index}")
    } else {
        s
    }
}

/// `prefix-kind` (or `kind` for the unnamed group) and the title with the group name.
fn named(group: &GroupAnalysis, prefix: &str, kind: &str, title: &str) -> (String, String) {
    if prefix.is_empty() {
        (kind.to_string(), title.to_string())
    } else {
        (
            format!("{prefix}-{kind}"),
            format!("{title} — {}", group.name),
        )
    }
}

/// The verdict as a cell: `better (p = 0.0305)`, `n/a (n<2)`, `baseline`.
pub fn verdict_text(v: &Verdict) -> String {
    match v {
        Verdict::Baseline => "baseline".into(),
        Verdict::Better { p, .. } => format!("better (p = {})", p_value(*p)),
        Verdict::Worse { p, .. } => format!("worse (p = {})", p_value(*p)),
        Verdict::NoDifference { p, .. } => {
            format!("no significant difference (p = {})", p_value(*p))
        }
        Verdict::NotAvailable(reason) => format!("n/a ({reason})"),
    }
}

/// One row per method: the chosen point's results over seeds and the verdict.
pub fn methods(group: &GroupAnalysis, prefix: &str) -> Table {
    let (name, title) = named(group, prefix, "methods", "Methods");
    let mut t = Table::new(
        title,
        name,
        &[
            "method",
            "chosen point",
            "n",
            "test acc % (mean ± 95% CI)",
            "train acc %",
            "val acc %",
            "gap (pp)",
            "zero weights %",
            "|w|<1e-3 %",
            "s/epoch",
            "overhead %",
            "vs baseline",
        ],
    );
    for m in &group.methods {
        t.rows.push(method_row(m));
    }
    t
}

fn method_row(m: &MethodAnalysis) -> Vec<String> {
    let point = m.chosen_point().map_or(MISSING.into(), |p| p.label.clone());
    let Some(r) = &m.result else {
        let mut row = vec![m.name.clone(), point, "0".into()];
        row.extend((0..8).map(|_| MISSING.to_string()));
        row.push(verdict_text(&m.verdict));
        return row;
    };
    let mean = |e: Option<super::stats::Estimate>| e.map(|e| e.mean);
    let overhead = match m.verdict {
        Verdict::Baseline => MISSING.into(),
        _ => signed(r.overhead_pct, 1),
    };
    vec![
        m.name.clone(),
        point,
        r.n.to_string(),
        pct_pm(r.test_acc),
        pct(mean(r.train_acc)),
        pct(mean(r.final_val_acc)),
        pct(mean(r.gap)),
        pct(mean(r.zero_fraction)),
        pct(mean(r.below_1e3)),
        fixed(mean(r.seconds_per_epoch), 2),
        overhead,
        verdict_text(&m.verdict),
    ]
}

/// Every grid point of every method with its validation scores; ✓ marks the chosen one.
pub fn sweep(group: &GroupAnalysis, prefix: &str) -> Table {
    let (name, title) = named(group, prefix, "sweep", "Strength sweep");
    let mut t = Table::new(
        title,
        name,
        &[
            "method",
            "point",
            "n",
            "best val acc % (mean ± 95% CI)",
            "best val loss (mean)",
            "chosen",
        ],
    );
    for m in &group.methods {
        for (i, p) in m.points.iter().enumerate() {
            t.rows.push(vec![
                m.name.clone(),
                p.label.clone(),
                p.done_ids.len().to_string(),
                pct_pm(p.best_val_acc),
                fixed(p.best_val_loss.map(|e| e.mean), 4),
                if m.chosen == Some(i) { "✓" } else { "" }.into(),
            ]);
        }
    }
    t
}

/// Published values beside ours; `None` when the group has none.
pub fn paper(group: &GroupAnalysis, prefix: &str) -> Option<Table> {
    if group.paper.is_empty() {
        return None;
    }
    let (name, title) = named(group, prefix, "paper", "Paper vs regstudy");
    let mut t = Table::new(
        title,
        name,
        &[
            "method",
            "metric",
            "paper %",
            "regstudy % (mean ± 95% CI)",
            "difference (pp)",
            "source",
        ],
    );
    for p in &group.paper {
        t.rows.push(vec![
            p.method.clone(),
            p.metric.clone(),
            pct(Some(p.paper)),
            pct_pm(p.ours),
            signed(p.ours.map(|o| 100.0 * (o.mean - p.paper)), 2),
            p.source.clone(),
        ]);
    }
    Some(t)
}

/// Which components each method combines, with its test accuracy; `None` when no method
/// names components.
pub fn combinations(group: &GroupAnalysis, prefix: &str) -> Option<Table> {
    let components = all_components(&group.methods);
    if components.is_empty() {
        return None;
    }
    let (name, title) = named(group, prefix, "combinations", "Combinations");
    let mut columns: Vec<&str> = vec!["method"];
    columns.extend(components.iter().map(String::as_str));
    columns.extend(["n", "test acc % (mean ± 95% CI)"]);
    let mut t = Table::new(title, name, &columns);
    for m in &group.methods {
        let is_baseline = m.verdict == Verdict::Baseline;
        if m.components.is_empty() && !is_baseline {
            continue;
        }
        let mut row = vec![m.name.clone()];
        row.extend(
            components
                .iter()
                .map(|c| if m.components.contains(c) { "✓" } else { "" }.to_string()),
        );
        let r = m.result.as_ref();
        row.push(r.map_or(0, |r| r.n).to_string());
        row.push(pct_pm(r.and_then(|r| r.test_acc)));
        t.rows.push(row);
    }
    Some(t)
}

/// The full combination and each method with one component removed; `None` when no
/// method combines all components.
pub fn ablation_table(group: &GroupAnalysis, prefix: &str) -> Option<Table> {
    let rows = ablation(&group.methods);
    if rows.is_empty() {
        return None;
    }
    let (name, title) = named(group, prefix, "ablation", "Ablation");
    let mut t = Table::new(
        title,
        name,
        &[
            "removed",
            "method",
            "test acc % (mean ± 95% CI)",
            "drop from full (pp)",
        ],
    );
    for r in rows {
        t.rows.push(vec![
            r.removed.unwrap_or_else(|| "nothing (full)".into()),
            r.method.unwrap_or_else(|| "not in study".into()),
            pct_pm(r.test_acc),
            signed(r.drop.map(|d| 100.0 * d), 2),
        ]);
    }
    Some(t)
}

/// Trials in each state.
pub fn counts(analysis: &Analysis) -> Table {
    let mut t = Table::new("Trials by state", "trials", &["state", "trials"]);
    for (state, n) in &analysis.counts {
        t.rows.push(vec![state.to_string(), n.to_string()]);
    }
    let total: usize = analysis.counts.values().sum();
    t.rows.push(vec!["total".into(), total.to_string()]);
    t
}

/// Failed and diverged trials with their messages; `None` when there are none.
pub fn problems(analysis: &Analysis) -> Option<Table> {
    if analysis.problems.is_empty() {
        return None;
    }
    let mut t = Table::new(
        "Failed and diverged trials",
        "problems",
        &[
            "trial", "group", "method", "point", "seed", "state", "message",
        ],
    );
    for p in &analysis.problems {
        t.rows.push(vec![
            p.number.to_string(),
            p.group.clone(),
            p.method.clone(),
            p.point.clone(),
            p.seed.to_string(),
            p.state.to_string(),
            p.message.clone(),
        ]);
    }
    Some(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_names_become_file_stems() {
        assert_eq!(slug("CIFAR-10 / simple CNN", 0), "cifar-10-simple-cnn");
        assert_eq!(slug("", 0), "");
        assert_eq!(slug("ÆØ", 3), "group3");
    }
}
