//! The report's tables, built from an [`Analysis`]: per group the methods, the strength
//! sweep, published values, combinations and the ablation; for the study the trial counts
//! and the failed and diverged trials.

use super::analysis::{
    ablation, all_components, Analysis, Choice, GroupAnalysis, MethodAnalysis, Verdict,
};
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

/// The verdict as a cell: `better`, `n/a (n<2)`, `baseline`, `at chance: not ranked`; the
/// p-values have their own columns.
pub fn verdict_text(v: &Verdict) -> String {
    match v {
        Verdict::Baseline => "baseline".into(),
        Verdict::Better { .. } => "better".into(),
        Verdict::Worse { .. } => "worse".into(),
        Verdict::NoDifference { .. } => "no significant difference".into(),
        Verdict::AtChance => "at chance: not ranked".into(),
        Verdict::NotAvailable(reason) => format!("n/a ({reason})"),
    }
}

/// The raw and Holm-adjusted p-values of a tested verdict.
fn p_values(v: &Verdict) -> (String, String) {
    match v {
        Verdict::Better { p, p_adjusted, .. }
        | Verdict::Worse { p, p_adjusted, .. }
        | Verdict::NoDifference { p, p_adjusted, .. } => (p_value(*p), p_value(*p_adjusted)),
        _ => (MISSING.into(), MISSING.into()),
    }
}

/// Seeds as runs of consecutive numbers: `0-2, 5`.
pub fn seeds_text(seeds: &[u64]) -> String {
    let mut runs: Vec<(u64, u64)> = Vec::new();
    for &s in seeds {
        match runs.last_mut() {
            Some((_, end)) if s == *end + 1 => *end = s,
            _ => runs.push((s, s)),
        }
    }
    let parts: Vec<String> = runs
        .iter()
        .map(|&(a, b)| {
            if a == b {
                a.to_string()
            } else {
                format!("{a}-{b}")
            }
        })
        .collect();
    if parts.is_empty() {
        MISSING.into()
    } else {
        parts.join(", ")
    }
}

/// The methods table's columns that fit a terminal.
pub const BRIEF_METHOD_COLUMNS: [&str; 10] = [
    "method",
    "point",
    "reported seeds",
    "test acc % (mean ± 95% CI)",
    "gap (pp)",
    "|w|<1e-3 %",
    "train s/epoch",
    "diverged",
    "p (Holm)",
    "vs baseline",
];

/// The mark of overheads measured while trials ran concurrently.
pub const CONCURRENT_MARK: &str = "†";

/// One row per method: the reported runs' results over seeds and the verdict. Under
/// `concurrent`, overheads carry [`CONCURRENT_MARK`].
pub fn methods(group: &GroupAnalysis, prefix: &str, concurrent: bool) -> Table {
    let (name, title) = named(group, prefix, "methods", "Methods");
    let mut t = Table::new(
        title,
        name,
        &[
            "method",
            "point",
            "chosen on seeds",
            "reported seeds",
            "n",
            "test acc % (mean ± 95% CI)",
            "train acc % (eval)",
            "val acc %",
            "gap (pp)",
            "train acc % (running)",
            "zero weights %",
            "zero filters/units %",
            "|w|<1e-3 %",
            "train s/epoch",
            "overhead %",
            "diverged",
            "p",
            "p (Holm)",
            "vs baseline",
        ],
    );
    for m in &group.methods {
        t.rows.push(method_row(m, concurrent));
    }
    t
}

/// How a method's point was found: `l1=0.0001` with `(from l2)` for a borrowed one.
fn point_text(m: &MethodAnalysis) -> String {
    let label = m.reported_label().unwrap_or(MISSING).to_string();
    match &m.choice {
        Choice::From(source) => format!("{label} (from {source})"),
        _ => label,
    }
}

/// `k of n`, with failed runs when there are any.
fn diverged_text(m: &MethodAnalysis) -> String {
    let mut text = format!("{} of {}", m.diverged, m.trials);
    if m.failed > 0 {
        text.push_str(&format!(" ({} failed)", m.failed));
    }
    text
}

fn method_row(m: &MethodAnalysis, concurrent: bool) -> Vec<String> {
    let chosen_on = match m.choice {
        Choice::Searched => seeds_text(&m.selection_seeds),
        _ => "—".into(),
    };
    let (p, p_adjusted) = p_values(&m.verdict);
    let Some(r) = &m.result else {
        let mut row = vec![
            m.name.clone(),
            point_text(m),
            chosen_on,
            MISSING.into(),
            "0".into(),
        ];
        row.extend((0..9).map(|_| MISSING.to_string()));
        row.extend([diverged_text(m), p, p_adjusted, verdict_text(&m.verdict)]);
        return row;
    };
    let mean = |e: Option<super::stats::Estimate>| e.map(|e| e.mean);
    let overhead = match m.verdict {
        Verdict::Baseline => MISSING.into(),
        _ if concurrent && r.overhead_pct.is_some() => {
            format!("{} {CONCURRENT_MARK}", signed(r.overhead_pct, 1))
        }
        _ => signed(r.overhead_pct, 1),
    };
    let verdict = match m.verdict {
        Verdict::Baseline if r.at_chance => "baseline; at chance".into(),
        ref v => verdict_text(v),
    };
    vec![
        m.name.clone(),
        point_text(m),
        chosen_on,
        seeds_text(&r.seeds),
        r.n.to_string(),
        pct_pm(r.test_acc),
        pct(mean(r.train_acc)),
        pct(mean(r.val_acc)),
        pct(mean(r.gap)),
        pct(mean(r.train_acc_running)),
        pct(mean(r.zero_fraction)),
        pct(mean(r.zero_group_fraction)),
        pct(mean(r.below_1e3)),
        fixed(mean(r.train_seconds_per_epoch), 2),
        overhead,
        diverged_text(m),
        p,
        p_adjusted,
        verdict,
    ]
}

/// Every searched grid point with its validation scores on the search seeds; ✓ marks
/// the chosen one, and a point that could not be chosen says why.
pub fn sweep(group: &GroupAnalysis, prefix: &str) -> Table {
    let (name, title) = named(group, prefix, "sweep", "Strength sweep");
    let mut t = Table::new(
        title,
        name,
        &[
            "method",
            "point",
            "n",
            "val acc % (tested weights, mean ± 95% CI)",
            "val loss (tested weights, mean)",
            "best val acc % over epochs (paper metric)",
            "chosen",
        ],
    );
    for m in group
        .methods
        .iter()
        .filter(|m| m.choice == Choice::Searched)
    {
        for (i, p) in m.points.iter().enumerate() {
            let chosen = match &p.score.excluded {
                _ if m.chosen == Some(i) => "✓".to_string(),
                Some(why) => format!("not eligible: {why}"),
                None => String::new(),
            };
            t.rows.push(vec![
                m.name.clone(),
                p.label.clone(),
                p.done_ids.len().to_string(),
                pct_pm(p.score.val_acc),
                fixed(p.score.val_loss.map(|e| e.mean), 4),
                pct_pm(p.best_val_acc),
                chosen,
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
            p.metric.name().to_string(),
            pct(Some(p.paper)),
            pct_pm(p.ours),
            signed(p.ours.map(|o| 100.0 * (o.mean - p.paper)), 2),
            p.source.clone(),
        ]);
    }
    Some(t)
}

/// The columns of the claims table shown in the terminal.
pub const BRIEF_CLAIM_COLUMNS: [&str; 3] = ["claim", "regstudy's numbers", "verdict"];

/// The source paper's claims with the verdict of this group's numbers; `None` when the
/// report judges none.
pub fn claims(group: &GroupAnalysis, prefix: &str) -> Option<Table> {
    if group.claims.is_empty() {
        return None;
    }
    let (name, title) = named(group, prefix, "claims", "The paper's claims");
    let mut t = Table::new(
        title,
        name,
        &["claim", "source", "test", "regstudy's numbers", "verdict"],
    );
    for c in &group.claims {
        t.rows.push(vec![
            c.text.clone(),
            c.source.clone(),
            c.test.clone(),
            c.evidence.clone(),
            c.verdict.text().to_string(),
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
    fn seeds_print_as_runs_of_consecutive_numbers() {
        assert_eq!(seeds_text(&[0, 1, 2, 5, 7, 8]), "0-2, 5, 7-8");
        assert_eq!(seeds_text(&[3]), "3");
        assert_eq!(seeds_text(&[]), MISSING);
    }

    #[test]
    fn group_names_become_file_stems() {
        assert_eq!(slug("CIFAR-10 / simple CNN", 0), "cifar-10-simple-cnn");
        assert_eq!(slug("", 0), "");
        assert_eq!(slug("ÆØ", 3), "group3");
    }
}
