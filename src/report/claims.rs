//! The source paper's claims, judged by a group's reported runs: each verdict follows from
//! the numbers given beside it (see [`crate::study::spec::PaperClaim`] for the tests).

use super::analysis::{paired, MethodAnalysis, ALPHA};
use super::format::{p_value, pct_pm, signed, MISSING};
use super::stats::{holm, PairedTest};
use crate::study::spec::{BeatsTest, ClaimTest, PaperClaim, RangeTest};

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
fn result<'a>(
    methods: &'a [MethodAnalysis],
    name: &str,
) -> Option<&'a super::analysis::ChosenResult> {
    methods.iter().find(|m| m.name == name)?.result.as_ref()
}

fn judge_range(range: &RangeTest, methods: &[MethodAnalysis]) -> (String, String, ClaimVerdict) {
    let what = range.metric.description();
    let test = format!(
        "95% CI of {what} of {} inside {:.2}-{:.2}%",
        range.method,
        100.0 * range.low,
        100.0 * range.high
    );
    let estimate = result(methods, &range.method).and_then(|r| r.estimate(range.metric));
    let Some(e) = estimate else {
        let evidence = format!("{} has no reported {what} yet", range.method);
        return (test, evidence, ClaimVerdict::NoData);
    };
    let Some(half) = e.half_width else {
        let evidence = format!(
            "{}: {:.2}% from {} run: no interval",
            range.method,
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
        "{}: {}% ({:.2}-{:.2}%, n = {})",
        range.method,
        pct_pm(Some(e)),
        100.0 * low,
        100.0 * high,
        e.n
    );
    (test, evidence, verdict)
}

fn judge_beats(beats: &BeatsTest, methods: &[MethodAnalysis]) -> (String, String, ClaimVerdict) {
    let how = if beats.over.len() == 1 {
        format!("paired t-test by seed, α = {ALPHA}")
    } else {
        format!(
            "paired t-tests by seed, Holm over {} comparisons, α = {ALPHA}",
            beats.over.len()
        )
    };
    let test = format!(
        "test accuracy of {} significantly above {} ({how})",
        beats.method,
        beats.over.join(", "),
    );
    let missing: Vec<&str> = std::iter::once(&beats.method)
        .chain(&beats.over)
        .filter(|name| result(methods, name).and_then(|r| r.test_acc).is_none())
        .map(String::as_str)
        .collect();
    let (Some(own), true) = (result(methods, &beats.method), missing.is_empty()) else {
        let evidence = format!("no reported test accuracy yet for {}", missing.join(", "));
        return (test, evidence, ClaimVerdict::NoData);
    };
    let accuracy = |r: &super::analysis::ChosenResult| pct_pm(r.test_acc);
    let mut parts = vec![format!("{} {}%", beats.method, accuracy(own))];
    let mut tested: Vec<(usize, f64, f64)> = Vec::new();
    let mut untested = false;
    for (i, other) in beats.over.iter().enumerate() {
        let theirs = result(methods, other).expect("checked above");
        match paired(&own.test_by_seed, &theirs.test_by_seed) {
            PairedTest::Tested { p, mean_diff, .. } => tested.push((i, p, mean_diff)),
            PairedTest::NotTested { reason, .. } => {
                untested = true;
                parts.push(format!(
                    "{other} {}%: not tested ({reason})",
                    accuracy(theirs)
                ));
            }
        }
    }
    let raw: Vec<f64> = tested.iter().map(|&(_, p, _)| p).collect();
    let (mut ahead, mut behind) = (0, 0);
    for (&(i, _, diff), adjusted) in tested.iter().zip(holm(&raw)) {
        let other = &beats.over[i];
        let theirs = result(methods, other).expect("checked above");
        parts.push(format!(
            "{other} {}%: {} pp, {} = {}",
            accuracy(theirs),
            signed(Some(100.0 * diff), 2),
            if tested.len() == 1 { "p" } else { "Holm p" },
            p_value(adjusted)
        ));
        if adjusted < ALPHA {
            if diff > 0.0 {
                ahead += 1;
            } else {
                behind += 1;
            }
        }
    }
    let verdict = if behind > 0 {
        ClaimVerdict::DoesNotHold
    } else if !untested && ahead == beats.over.len() {
        ClaimVerdict::Holds
    } else {
        ClaimVerdict::Open
    };
    (test, parts.join("; "), verdict)
}
