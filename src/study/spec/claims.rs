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
use serde::{Deserialize, Serialize};
use std::path::Path;
use toml::Spanned;

/// A claim and its test.
#[derive(Clone, Debug, PartialEq, Serialize)]
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
#[derive(Clone, Debug, PartialEq, Serialize)]
pub enum ClaimTest {
    /// The method's value of a metric lies in `[low, high]`.
    Range(RangeTest),
    /// The method's test accuracy is above each other method's.
    Beats(BeatsTest),
    /// The claim cannot be decided from a study's numbers; `why` says so in the report.
    Untested { why: String },
}

/// Holds when the 95% confidence interval of `metric` over the method's reported runs lies
/// inside `[low, high]`; does not hold when it lies wholly outside; open otherwise.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RangeTest {
    pub method: String,
    pub metric: Metric,
    /// Bounds, as fractions like the metric.
    pub low: f64,
    pub high: f64,
}

/// Holds when `method`'s test accuracy is significantly above each method in `over`
/// (two-sided paired t-tests over the reported seeds, Holm's adjustment over the claim's
/// comparisons, adjusted p < 0.05 with a positive difference); does not hold when any
/// method in `over` is significantly above it; open otherwise.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
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
    text: String,
    #[serde(default)]
    source: String,
    group: Option<String>,
    range: Option<RangeTest>,
    beats: Option<BeatsTest>,
    untested: Option<String>,
}

/// Reads the claims file `text` (`file` names it in errors) and checks each claim against
/// `spec`: one test per claim, methods and group of the study, sensible bounds.
pub fn read_claims(
    text: &str,
    file: &Path,
    spec: &StudySpec,
) -> Result<Vec<PaperClaim>, StudySpecError> {
    let at = Locator { file, text };
    let raw: RawClaims = toml::from_str(text).map_err(|e| at.toml_error(&e))?;
    raw.claim
        .into_iter()
        .enumerate()
        .map(|(i, raw)| {
            let span = raw.span();
            let fail = |field: &str, problem: String| {
                at.error(Some(span.clone()), format!("claim[{i}].{field}"), problem)
            };
            check_claim(raw.into_inner(), spec).map_err(|(field, problem)| fail(&field, problem))
        })
        .collect()
}

/// The claim with its one test, or the field at fault and what was expected.
fn check_claim(raw: RawClaim, spec: &StudySpec) -> Result<PaperClaim, (String, String)> {
    if raw.text.trim().is_empty() {
        return Err((
            "text".into(),
            "expected the claim's words, got nothing".into(),
        ));
    }
    if let Some(group) = &raw.group {
        if !spec.groups.iter().any(|g| &g.name == group) {
            let names: Vec<&str> = spec.groups.iter().map(|g| g.name.as_str()).collect();
            let problem = format!(
                "no group is called `{group}` (groups: {})",
                names.join(", ")
            );
            return Err(("group".into(), problem));
        }
    }
    let test = match (raw.range, raw.beats, raw.untested) {
        (Some(range), None, None) => {
            check_method(spec, &range.method, "range.method")?;
            let bounds_ok =
                range.low.is_finite() && range.high.is_finite() && range.low <= range.high;
            if !bounds_ok {
                let problem = format!(
                    "expected finite bounds with low <= high, got low = {} and high = {}",
                    range.low, range.high
                );
                return Err(("range".into(), problem));
            }
            ClaimTest::Range(range)
        }
        (None, Some(beats), None) => {
            check_method(spec, &beats.method, "beats.method")?;
            if beats.over.is_empty() {
                return Err(("beats.over".into(), "expected at least one method".into()));
            }
            for other in &beats.over {
                check_method(spec, other, "beats.over")?;
                if *other == beats.method {
                    let problem = format!("`{other}` cannot be compared with itself");
                    return Err(("beats.over".into(), problem));
                }
            }
            ClaimTest::Beats(beats)
        }
        (None, None, Some(why)) => ClaimTest::Untested { why },
        _ => {
            let problem = "expected exactly one of `range`, `beats` or `untested`".to_string();
            return Err(("test".into(), problem));
        }
    };
    Ok(PaperClaim {
        text: raw.text,
        source: raw.source,
        group: raw.group,
        test,
    })
}

fn check_method(spec: &StudySpec, name: &str, field: &str) -> Result<(), (String, String)> {
    if spec.method(name).is_some() {
        return Ok(());
    }
    let names: Vec<&str> = spec.methods.iter().map(|m| m.name.as_str()).collect();
    let problem = format!(
        "no method is called `{name}` (methods: {})",
        names.join(", ")
    );
    Err((field.into(), problem))
}
