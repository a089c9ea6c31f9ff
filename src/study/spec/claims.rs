//! A source paper's claims, each with the test that decides it from a study's reported runs.
//!
//! ```toml
//! [[claim]]
//! text = "The baseline's validation accuracy plateaus at 65-70%"
//! source = "Deepa et al. 2025, Sec. 4"
//! group = "cifar10"   # optional: the group it is about (default: every group)
//! range = { method = "none", metric = "best_val_acc", low = 0.65, high = 0.70 }
//!
//! [[claim]]
//! text = "Batch norm gives the largest single gain"
//! beats = { method = "bn", over = ["l2", "dropout"] }
//!
//! [[claim]]
//! text = "L1+L2 gives the best balance of sparsity and accuracy"
//! untested = "the paper does not say how sparsity and accuracy are weighed"
//! ```
//!
//! Claims are kept apart from the spec: the spec says which trials run, the claims only how
//! a report reads them, so they can be written or changed after a study has run without
//! touching it (`regstudy report --claims FILE`). Each claim is checked against the study:
//! its methods and group must be the study's.

use super::error::{Locator, StudySpecError};
use super::{Metric, StudySpec};
use serde::Deserialize;
use std::path::Path;
use toml::Spanned;

/// A claim and its test.
#[derive(Clone, Debug, PartialEq)]
pub struct PaperClaim {
    /// The claim, in the paper's words.
    pub text: String,
    /// Where the paper makes it.
    pub source: String,
    /// The group it is about; `None`: every group.
    pub group: Option<String>,
    pub test: ClaimTest,
}

/// How a claim is decided.
#[derive(Clone, Debug, PartialEq)]
pub enum ClaimTest {
    /// The method's value of a metric lies in `[low, high]`.
    Range(RangeTest),
    /// The method's test accuracy is above each other method's.
    Beats(BeatsTest),
    /// The claim cannot be decided from a study's numbers; `why` says so in the report.
    Untested { why: String },
}

/// Holds when the 95% confidence interval of `metric` over the method's reported runs lies
/// inside `[low, high]`; does not hold when it lies wholly outside; open when it crosses a
/// bound, or when a reported run diverged and the metric is not test accuracy (which alone
/// counts such a run, at chance).
#[derive(Clone, Debug, PartialEq)]
pub struct RangeTest {
    pub method: String,
    pub metric: Metric,
    /// Bounds, as fractions like the metric (0.65 for 65%).
    pub low: f64,
    pub high: f64,
}

/// Holds when `method`'s test accuracy is above each method in `over` by a two-sided paired
/// t-test over the reported seeds at p < 0.05 with a positive difference: an
/// intersection-union test, whose level is 0.05 without adjustment since every comparison
/// must reject. Does not hold when any method in `over` is above it at Holm-adjusted
/// p < 0.05 over the claim's comparisons. Open otherwise, and when a method compared is at
/// chance (not ranked, as in the methods table).
#[derive(Clone, Debug, PartialEq)]
pub struct BeatsTest {
    pub method: String,
    pub over: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawClaims {
    #[serde(default)]
    claim: Vec<Spanned<RawClaim>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawClaim {
    text: Spanned<String>,
    #[serde(default)]
    source: String,
    group: Option<Spanned<String>>,
    range: Option<RawRange>,
    beats: Option<RawBeats>,
    untested: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRange {
    method: Spanned<String>,
    metric: Metric,
    low: Spanned<f64>,
    high: Spanned<f64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBeats {
    method: Spanned<String>,
    over: Spanned<Vec<Spanned<String>>>,
}

/// A mistake in one claim: the field below `claim[i]` (empty: the claim itself), where it
/// is, and what was expected.
type Problem = (String, std::ops::Range<usize>, String);

/// Reads the claims file `text` (`file` names it in errors) and checks each claim against
/// `spec`: one test per claim, methods and group of the study, bounds on the metric's scale.
pub fn read_claims(
    text: &str,
    file: &Path,
    spec: &StudySpec,
) -> Result<Vec<PaperClaim>, StudySpecError> {
    let at = Locator { file, text };
    let raw: RawClaims = toml::from_str(text).map_err(|e| toml_error(&at, &e))?;
    if raw.claim.is_empty() {
        return Err(at.error(None, "claim", "expected at least one [[claim]]"));
    }
    raw.claim
        .into_iter()
        .enumerate()
        .map(|(i, raw)| {
            check_claim(raw, spec).map_err(|(field, span, problem)| {
                let field = match field.as_str() {
                    "" => format!("claim[{i}]"),
                    field => format!("claim[{i}].{field}"),
                };
                at.error(Some(span), field, problem)
            })
        })
        .collect()
}

/// A TOML error, located, with the claim it is in: `claim[2].range.metric`.
fn toml_error(at: &Locator, e: &toml::de::Error) -> StudySpecError {
    let mut error = at.toml_error(e);
    let Some(offset) = e.span().map(|s| s.start) else {
        return error;
    };
    let before = &at.text[..offset.min(at.text.len())];
    let claims_before = before
        .lines()
        .filter(|line| line.trim_start().starts_with("[[claim]]"))
        .count();
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let line = &before[line_start..];
    // Inside an inline table (`range = { method = "l1", metrc = ... }`): outer.inner.
    if let Some(brace) = line.find('{') {
        let outer = line[..brace].trim_end().trim_end_matches('=').trim();
        let inner_start = line.rfind([',', '{']).map_or(0, |i| i + 1);
        let inner = match line[inner_start..].split_once('=') {
            Some((key, _)) => key.trim().to_string(),
            // The error is at a key (an unknown one): the word there.
            None => at.word_at(offset),
        };
        error.field = format!("{outer}.{inner}");
    }
    if claims_before > 0 {
        error.field = format!("claim[{}].{}", claims_before - 1, error.field);
    }
    error
}

/// The claim with its one test, or what is wrong with it.
fn check_claim(raw: Spanned<RawClaim>, spec: &StudySpec) -> Result<PaperClaim, Problem> {
    let whole = raw.span();
    let raw = raw.into_inner();
    if raw.text.get_ref().trim().is_empty() {
        let problem = "expected the claim's words, got nothing".to_string();
        return Err(("text".into(), raw.text.span(), problem));
    }
    if let Some(group) = &raw.group {
        check_group(spec, group)?;
    }
    let test = match (raw.range, raw.beats, raw.untested) {
        (Some(range), None, None) => ClaimTest::Range(check_range(range, spec)?),
        (None, Some(beats), None) => ClaimTest::Beats(check_beats(beats, spec)?),
        (None, None, Some(why)) if why.get_ref().trim().is_empty() => {
            let problem = "expected why the claim is not tested, got nothing".to_string();
            return Err(("untested".into(), why.span(), problem));
        }
        (None, None, Some(why)) => ClaimTest::Untested {
            why: why.into_inner(),
        },
        _ => {
            let problem = "expected exactly one test: `range`, `beats` or `untested`".to_string();
            return Err((String::new(), whole, problem));
        }
    };
    Ok(PaperClaim {
        text: raw.text.into_inner(),
        source: raw.source,
        group: raw.group.map(Spanned::into_inner),
        test,
    })
}

fn check_group(spec: &StudySpec, group: &Spanned<String>) -> Result<(), Problem> {
    let name = group.get_ref();
    if spec.groups.iter().any(|g| &g.name == name) {
        return Ok(());
    }
    let names: Vec<&str> = spec
        .groups
        .iter()
        .map(|g| g.name.as_str())
        .filter(|g| !g.is_empty())
        .collect();
    let problem = if names.is_empty() {
        format!("no group is called `{name}`: the study has no groups")
    } else {
        format!("no group is called `{name}` (groups: {})", names.join(", "))
    };
    Err(("group".into(), group.span(), problem))
}

fn check_range(raw: RawRange, spec: &StudySpec) -> Result<RangeTest, Problem> {
    check_method(spec, &raw.method, "range.method")?;
    // Gaps are differences of two accuracies; every other metric is a share.
    let (min, max) = if matches!(raw.metric, Metric::GapAcc | Metric::EvalGapAcc) {
        (-1.0, 1.0)
    } else {
        (0.0, 1.0)
    };
    for (name, bound) in [("low", &raw.low), ("high", &raw.high)] {
        let value = *bound.get_ref();
        if !(min..=max).contains(&value) {
            let problem = format!(
                "expected a fraction in [{min}, {max}] ({} is given as fractions: 0.65 for \
                 65%), got {value}",
                raw.metric.name()
            );
            return Err((format!("range.{name}"), bound.span(), problem));
        }
    }
    let (low, high) = (*raw.low.get_ref(), *raw.high.get_ref());
    if low > high {
        let problem = format!("expected low <= high, got low = {low} and high = {high}");
        return Err(("range.high".into(), raw.high.span(), problem));
    }
    Ok(RangeTest {
        method: raw.method.into_inner(),
        metric: raw.metric,
        low,
        high,
    })
}

fn check_beats(raw: RawBeats, spec: &StudySpec) -> Result<BeatsTest, Problem> {
    check_method(spec, &raw.method, "beats.method")?;
    if raw.over.get_ref().is_empty() {
        let problem = "expected at least one method to compare with".to_string();
        return Err(("beats.over".into(), raw.over.span(), problem));
    }
    let mut over: Vec<String> = Vec::new();
    for rival in raw.over.get_ref() {
        check_method(spec, rival, "beats.over")?;
        let name = rival.get_ref();
        let problem = if name == raw.method.get_ref() {
            format!("`{name}` cannot be compared with itself")
        } else if over.contains(name) {
            format!("`{name}` is named twice")
        } else {
            over.push(name.clone());
            continue;
        };
        return Err(("beats.over".into(), rival.span(), problem));
    }
    Ok(BeatsTest {
        method: raw.method.into_inner(),
        over,
    })
}

fn check_method(spec: &StudySpec, name: &Spanned<String>, field: &str) -> Result<(), Problem> {
    if spec.method(name.get_ref()).is_some() {
        return Ok(());
    }
    let names: Vec<&str> = spec.methods.iter().map(|m| m.name.as_str()).collect();
    let problem = format!(
        "no method is called `{}` (methods: {})",
        name.get_ref(),
        names.join(", ")
    );
    Err((field.into(), name.span(), problem))
}
