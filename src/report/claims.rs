//! The source paper's claims, judged by a group's reported runs: each verdict follows from
//! the numbers given beside it (see [`crate::study::spec::PaperClaim`] for the tests).

use super::analysis::{paired, ChosenResult, MethodAnalysis, ALPHA};
use super::format::{p_value, pct_pm, signed, MISSING};
use super::stats::{holm, PairedTest};
use crate::study::spec::{BeatsTest, ClaimTest, Metric, PaperClaim, RangeTest};

/// What a group's numbers say of a claim.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClaimVerdict {
    /// The test is passed.
    Holds,
    /// The numbers contradict the claim.
    DoesNotHold,
    /// The numbers cannot tell (an interval across a bound, no significant difference).
    Open,
    /// A method the claim needs has no reported runs yet.
    NoData,
    /// The claim has no test.
    NotTested,
}

impl ClaimVerdict {
    pub fn text(self) -> &'static str {
        match self {
            ClaimVerdict::Holds => "holds",
            ClaimVerdict::DoesNotHold => "does not hold",
            ClaimVerdict::Open => "open",
            ClaimVerdict::NoData => "no data yet",
            ClaimVerdict::NotTested => "not tested",
        }
    }
}

/// A claim judged in one group.
#[derive(Clone, Debug, PartialEq)]
pub struct ClaimFinding {
    pub text: String,
    pub source: String,
    /// The test, in words (`95% CI of test accuracy of none inside 65.00-70.00%`).
    pub test: String,
    /// The numbers the verdict follows from.
    pub evidence: String,
    pub verdict: ClaimVerdict,
}

/// Judges `claim` by the group's `methods`.
pub fn judge(claim: &PaperClaim, methods: &[MethodAnalysis]) -> ClaimFinding {
    let (test, evidence, verdict) = match &claim.test {
        ClaimTest::Range(range) => judge_range(range, methods),
        ClaimTest::Beats(beats) => judge_beats(beats, methods),
        ClaimTest::Untested { why } => (MISSING.into(), why.clone(), ClaimVerdict::NotTested),
    };
    ClaimFinding {
        text: claim.text.clone(),
        source: claim.source.clone(),
        test,
        evidence,
        verdict,
    }
}

/// `name`'s reported runs in this group, if it has any.
fn result<'a>(methods: &'a [MethodAnalysis], name: &str) -> Option<&'a ChosenResult> {
    methods.iter().find(|m| m.name == name)?.result.as_ref()
}

/// A range in percent: `60.00-80.00%`, or `[-5.00, 5.00]%` when a bound is negative.
fn percent_range(low: f64, high: f64) -> String {
    if low < 0.0 {
        format!("[{:.2}, {:.2}]%", 100.0 * low, 100.0 * high)
    } else {
        format!("{:.2}-{:.2}%", 100.0 * low, 100.0 * high)
    }
}

/// How many of the reported runs diverged or failed, as a clause (`; 1 of 3 runs
/// diverged`), or nothing.
fn lost_runs(r: &ChosenResult) -> String {
    let runs = r.trial_ids.len() + r.diverged + r.failed;
    match (r.diverged, r.failed) {
        (0, 0) => String::new(),
        (d, 0) => format!("; {d} of {runs} runs diverged"),
        (0, f) => format!("; {f} of {runs} runs failed"),
        (d, f) => format!("; {d} of {runs} runs diverged, {f} failed"),
    }
}

fn judge_range(range: &RangeTest, methods: &[MethodAnalysis]) -> (String, String, ClaimVerdict) {
    let (what, name) = (range.metric.description(), &range.method);
    let test = format!(
        "95% CI of {what} of {name} inside {}",
        percent_range(range.low, range.high)
    );
    let Some(r) = result(methods, name) else {
        return (
            test,
            format!("{name} has no reported runs yet"),
            ClaimVerdict::NoData,
        );
    };
    let lost = lost_runs(r);
    // Test accuracy counts a diverged run at chance; any other figure would be that of the
    // runs that survived, which flatters the method.
    if r.diverged > 0 && range.metric != Metric::TestAcc {
        let evidence =
            format!("{name}: {what} is known only for the runs that did not diverge{lost}");
        return (test, evidence, ClaimVerdict::Open);
    }
    let Some(e) = r.estimate(range.metric) else {
        let evidence = format!("{name}: no finished run has a {what}{lost}");
        return (test, evidence, ClaimVerdict::Open);
    };
    let Some(half) = e.half_width else {
        let evidence = format!(
            "{name}: {:.2}% from {} run: no interval{lost}",
            100.0 * e.mean,
            e.n
        );
        return (test, evidence, ClaimVerdict::Open);
    };
    let (low, high) = (e.mean - half, e.mean + half);
    let verdict = if low >= range.low && high <= range.high {
        ClaimVerdict::Holds
    } else if high < range.low || low > range.high {
        ClaimVerdict::DoesNotHold
    } else {
        ClaimVerdict::Open
    };
    let evidence = format!(
        "{name}: {}% ({}, n = {}){lost}",
        pct_pm(Some(e)),
        percent_range(low, high),
        e.n
    );
    (test, evidence, verdict)
}

/// One comparison of a `beats` claim: the rival, its results and the paired test.
struct Comparison<'a> {
    rival: &'a str,
    theirs: &'a ChosenResult,
    test: PairedTest,
}

fn judge_beats(beats: &BeatsTest, methods: &[MethodAnalysis]) -> (String, String, ClaimVerdict) {
    let k = beats.over.len();
    let test = format!(
        "test accuracy of {} above {} (paired t-test{} by seed, α = {ALPHA})",
        beats.method,
        beats.over.join(", "),
        if k == 1 { "" } else { "s" }
    );
    // Each method named, with its reported runs when they have a test accuracy.
    let found = |name: &str| result(methods, name).filter(|r| r.test_acc.is_some());
    let missing: Vec<&str> = std::iter::once(&beats.method)
        .chain(&beats.over)
        .map(String::as_str)
        .filter(|name| found(name).is_none())
        .collect();
    let (Some(own), true) = (found(&beats.method), missing.is_empty()) else {
        let evidence = format!("no reported test accuracy yet for {}", missing.join(", "));
        return (test, evidence, ClaimVerdict::NoData);
    };
    let accuracy = |r: &ChosenResult| {
        let chance = if r.at_chance { " (at chance)" } else { "" };
        format!("{}%{chance}", pct_pm(r.test_acc))
    };
    let comparisons: Vec<Comparison> = beats
        .over
        .iter()
        .filter_map(|rival| Some((rival, found(rival)?)))
        .map(|(rival, theirs)| Comparison {
            rival,
            theirs,
            test: paired(&own.test_by_seed, &theirs.test_by_seed),
        })
        .collect();
    // Holm over all k comparisons: one that could not be tested counts with p = 1.
    let raw: Vec<f64> = comparisons
        .iter()
        .map(|c| match c.test {
            PairedTest::Tested { p, .. } => p,
            PairedTest::NotTested { .. } => 1.0,
        })
        .collect();
    let adjusted = holm(&raw);
    let mut parts = vec![format!("{} {}", beats.method, accuracy(own))];
    let (mut ahead, mut behind) = (0, 0);
    for (c, &p_holm) in comparisons.iter().zip(&adjusted) {
        let line = match &c.test {
            PairedTest::Tested { p, mean_diff, .. } => {
                ahead += usize::from(*p < ALPHA && *mean_diff > 0.0);
                behind += usize::from(p_holm < ALPHA && *mean_diff < 0.0);
                let holm_part = if k > 1 {
                    format!(", Holm p = {}", p_value(p_holm))
                } else {
                    String::new()
                };
                format!(
                    "{} pp, p = {}{holm_part}",
                    signed(Some(100.0 * mean_diff), 2),
                    p_value(*p)
                )
            }
            PairedTest::NotTested { reason, .. } => format!("not tested ({reason})"),
        };
        parts.push(format!("{} {}: {line}", c.rival, accuracy(c.theirs)));
    }
    // A method at chance learned nothing and is not ranked, as in the methods table.
    let at_chance = own.at_chance || comparisons.iter().any(|c| c.theirs.at_chance);
    let verdict = if at_chance {
        ClaimVerdict::Open
    } else if behind > 0 {
        ClaimVerdict::DoesNotHold
    } else if ahead == k {
        ClaimVerdict::Holds
    } else {
        ClaimVerdict::Open
    };
    (test, parts.join("; "), verdict)
}
