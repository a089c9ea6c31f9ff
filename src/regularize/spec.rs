//! A regularizer as a run config or a study names it: a TOML table tagged by `kind`, or the
//! compact text `KIND:key=value,...` (list values joined by `+`), e.g.
//!
//! ```text
//! { kind = "group-lasso", strength = 1e-4, mode = "prox", layers = ["conv1", "conv2"] }
//! "group-lasso:strength=1e-4,mode=prox,layers=conv1+conv2"
//! "magnitude-pruning:target=0.8,end_step=5000"
//! ```
//!
//! Where a list of regularizers is expected a single one is accepted too, so that every value
//! of a study's grid can be one regularizer.

use super::{
    GroupLasso, GroupMode, L1Mode, MagnitudePruning, PruningSchedule, PruningScope, Reach,
    Regularizer, RegularizerError, L1, L2,
};
use crate::nn::Param;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A penalty term: default strength, per-layer strengths and reach.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TermSpec<Mode> {
    /// Default strength, a finite number >= 0.
    pub strength: f32,
    #[serde(default)]
    pub mode: Mode,
    /// Strengths of chosen layers, keyed by parameter name or dotted prefix (longest wins).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub layer_strengths: BTreeMap<String, f32>,
    /// Reach biases too.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub biases: bool,
    /// Reach batch-norm scale and shift too.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub norm: bool,
    /// Only the parameters these names or dotted prefixes cover (default: every kernel).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub layers: Vec<String>,
}

/// L2 has one way of being minimized.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GradientOnly {
    #[default]
    Gradient,
}

/// Gradual magnitude pruning's settings (see [`super::magnitude_pruning`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PruningSpec {
    /// Final sparsity, in [0, 1).
    pub target: f64,
    /// First pruning step (default 0).
    #[serde(default)]
    pub begin_step: u64,
    /// Step at which the target is reached (default: the run's last step, epochs times
    /// batches per epoch; resuming with more `--epochs` then stretches the schedule, so give
    /// it to keep the schedule fixed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_step: Option<u64>,
    /// Steps between prunings (default 100).
    #[serde(default = "default_frequency")]
    pub frequency: u64,
    /// Exponent of the schedule (default 3).
    #[serde(default = "default_exponent")]
    pub exponent: i32,
    /// `layer` (default) or `global`.
    #[serde(default)]
    pub scope: PruningScope,
    /// Reach biases too.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub biases: bool,
    /// Reach batch-norm scale and shift too.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub norm: bool,
    /// Only the parameters these names or dotted prefixes cover (default: every kernel).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub layers: Vec<String>,
}

fn default_frequency() -> u64 {
    100
}

fn default_exponent() -> i32 {
    3
}

/// One regularizer of a run config.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum RegularizerSpec {
    /// `strength * sum|w|`, `mode` `subgradient` (default) or `prox`.
    L1(TermSpec<L1Mode>),
    /// `strength * sum w^2`.
    L2(TermSpec<GradientOnly>),
    /// `strength * sum_g sqrt(|g|) ||w_g||`, `mode` `subgradient` (default) or `prox`.
    GroupLasso(TermSpec<GroupMode>),
    /// Gradual magnitude pruning to `target` sparsity.
    MagnitudePruning(PruningSpec),
}

/// The kinds of regularizer, as configs name them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum RegularizerKind {
    L1,
    L2,
    GroupLasso,
    MagnitudePruning,
}

impl RegularizerKind {
    pub const NAMES: [&'static str; 4] = ["l1", "l2", "group-lasso", "magnitude-pruning"];

    pub fn name(self) -> &'static str {
        Self::NAMES[self as usize]
    }
}

/// Compact text that does not parse.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("`{text}`: {problem} (expected KIND:key=value,... with KIND one of l1, l2, group-lasso, magnitude-pruning)")]
pub struct SpecParseError {
    pub text: String,
    pub problem: String,
}

impl std::str::FromStr for RegularizerSpec {
    type Err = SpecParseError;

    /// `KIND:key=value,...`; values are TOML numbers or booleans, else text; `a+b` is a list.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let fail = |problem: String| SpecParseError {
            text: text.into(),
            problem,
        };
        let (kind, pairs) = text.split_once(':').unwrap_or((text, ""));
        let mut table = toml::Table::new();
        table.insert("kind".into(), toml::Value::String(kind.trim().into()));
        for pair in pairs.split(',').filter(|p| !p.trim().is_empty()) {
            let (key, value) = pair
                .split_once('=')
                .ok_or_else(|| fail(format!("`{pair}` is not key=value")))?;
            let key = key.trim();
            let value = if key == "layers" {
                toml::Value::Array(value.split('+').map(|v| scalar(v.trim())).collect())
            } else {
                scalar(value.trim())
            };
            if table.insert(key.into(), value).is_some() {
                return Err(fail(format!("`{key}` is given twice")));
            }
        }
        toml::Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| fail(e.message().trim().to_string()))
    }
}

/// A TOML number or boolean when `text` reads as one, else the text.
fn scalar(text: &str) -> toml::Value {
    toml::from_str::<toml::Table>(&format!("v = {text}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .filter(|v| !matches!(v, toml::Value::Table(_) | toml::Value::Array(_)))
        .unwrap_or_else(|| toml::Value::String(text.into()))
}

impl RegularizerSpec {
    pub fn kind(&self) -> RegularizerKind {
        match self {
            RegularizerSpec::L1(_) => RegularizerKind::L1,
            RegularizerSpec::L2(_) => RegularizerKind::L2,
            RegularizerSpec::GroupLasso(_) => RegularizerKind::GroupLasso,
            RegularizerSpec::MagnitudePruning(_) => RegularizerKind::MagnitudePruning,
        }
    }

    /// Rejects values out of range; the error says which key and what was expected.
    pub fn check(&self) -> Result<(), String> {
        let kind = self.kind().name();
        let term = |strength: f32, layers: &BTreeMap<String, f32>| {
            let bad = |v: f32| !(v.is_finite() && v >= 0.0);
            if bad(strength) {
                return Err(format!(
                    "{kind}: strength must be a finite number >= 0, got {strength}"
                ));
            }
            match layers.iter().find(|(_, v)| bad(**v)) {
                Some((key, v)) => Err(format!(
                    "{kind}: layer_strengths.{key} must be a finite number >= 0, got {v}"
                )),
                None => Ok(()),
            }
        };
        match self {
            RegularizerSpec::L1(t) => term(t.strength, &t.layer_strengths),
            RegularizerSpec::L2(t) => term(t.strength, &t.layer_strengths),
            RegularizerSpec::GroupLasso(t) => term(t.strength, &t.layer_strengths),
            RegularizerSpec::MagnitudePruning(p) => check_pruning(p),
        }
    }

    /// Its [`Reach`]; errors name the option as `option`.
    pub fn reach(&self, option: &str) -> Reach {
        let (biases, norm, layers, strengths) = match self {
            RegularizerSpec::L1(t) => (t.biases, t.norm, &t.layers, Some(&t.layer_strengths)),
            RegularizerSpec::L2(t) => (t.biases, t.norm, &t.layers, Some(&t.layer_strengths)),
            RegularizerSpec::GroupLasso(t) => {
                (t.biases, t.norm, &t.layers, Some(&t.layer_strengths))
            }
            RegularizerSpec::MagnitudePruning(p) => (p.biases, p.norm, &p.layers, None),
        };
        Reach {
            biases,
            norm,
            layers: layers.clone(),
            overrides: strengths
                .map(|s| s.iter().map(|(k, v)| (k.clone(), Some(*v))).collect())
                .unwrap_or_default(),
            option: option.into(),
        }
    }

    /// The regularizer on `params`, reaching what `reach` resolves; `last_step` is the run's
    /// last optimizer step (pruning's default end).
    pub fn build(
        &self,
        reach: &Reach,
        params: &[&Param],
        last_step: u64,
    ) -> Result<Box<dyn Regularizer>, RegularizerError> {
        Ok(match self {
            RegularizerSpec::L1(t) => Box::new(L1::new(t.strength, t.mode, reach, params)?),
            RegularizerSpec::L2(t) => Box::new(L2::new(t.strength, reach, params)?),
            RegularizerSpec::GroupLasso(t) => {
                Box::new(GroupLasso::new(t.strength, t.mode, reach, params)?)
            }
            RegularizerSpec::MagnitudePruning(p) => {
                let schedule = PruningSchedule {
                    target: p.target,
                    begin: p.begin_step,
                    end: p.end_step.unwrap_or(last_step).max(p.begin_step),
                    frequency: p.frequency,
                    exponent: p.exponent,
                };
                Box::new(MagnitudePruning::new(schedule, p.scope, reach, params)?)
            }
        })
    }
}

fn check_pruning(p: &PruningSpec) -> Result<(), String> {
    if !(0.0..1.0).contains(&p.target) {
        return Err(format!(
            "magnitude-pruning: target must be in [0, 1), got {}",
            p.target
        ));
    }
    if p.frequency == 0 {
        return Err("magnitude-pruning: frequency must be at least 1 step".into());
    }
    if !(1..=10).contains(&p.exponent) {
        return Err(format!(
            "magnitude-pruning: exponent must be in 1..=10, got {}",
            p.exponent
        ));
    }
    match p.end_step {
        Some(end) if end < p.begin_step => Err(format!(
            "magnitude-pruning: end_step ({end}) must not come before begin_step ({})",
            p.begin_step
        )),
        _ => Ok(()),
    }
}

/// Reads a list of regularizers where each is a table or compact text, and a single one as
/// a list of one.
pub fn one_or_many<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<RegularizerSpec>, D::Error> {
    d.deserialize_any(SpecVisitor { list: true })
        .map(|specs: Entries| specs.0)
}

struct Entries(Vec<RegularizerSpec>);

struct SpecVisitor {
    list: bool,
}

impl<'de> Visitor<'de> for SpecVisitor {
    type Value = Entries;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a regularizer (a table with `kind`, or text KIND:key=value,...)")?;
        if self.list {
            f.write_str(" or a list of them")?;
        }
        Ok(())
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Entries, E> {
        text.parse()
            .map(|spec| Entries(vec![spec]))
            .map_err(|e: SpecParseError| E::custom(e))
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Entries, A::Error> {
        RegularizerSpec::deserialize(de::value::MapAccessDeserializer::new(map))
            .map(|spec| Entries(vec![spec]))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Entries, A::Error> {
        if !self.list {
            return Err(de::Error::invalid_type(de::Unexpected::Seq, &self));
        }
        let mut out = Vec::new();
        while let Some(Entry(spec)) = seq.next_element()? {
            out.push(spec);
        }
        Ok(Entries(out))
    }
}

/// One element of a list: a table or compact text.
struct Entry(RegularizerSpec);

impl<'de> Deserialize<'de> for Entry {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let mut specs = d.deserialize_any(SpecVisitor { list: false })?.0;
        Ok(Entry(specs.remove(0)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct Holder {
        #[serde(deserialize_with = "one_or_many")]
        regularizers: Vec<RegularizerSpec>,
    }

    fn read(text: &str) -> Result<Vec<RegularizerSpec>, String> {
        toml::from_str::<Holder>(text)
            .map(|h| h.regularizers)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn compact_text_and_tables_read_the_same() {
        let from_text: RegularizerSpec = "group-lasso:strength=1e-4,mode=prox,layers=conv1+conv2"
            .parse()
            .unwrap();
        let from_table = read(
            "regularizers = { kind = \"group-lasso\", strength = 1e-4, mode = \"prox\", layers = [\"conv1\", \"conv2\"] }",
        )
        .unwrap();
        assert_eq!(from_table, vec![from_text.clone()]);
        let RegularizerSpec::GroupLasso(t) = &from_text else {
            panic!("{from_text:?}");
        };
        assert_eq!(t.mode, GroupMode::Prox);
        assert_eq!(t.layers, ["conv1", "conv2"]);
        let list = read(
            "regularizers = [\"l1:strength=0.001\", { kind = \"magnitude-pruning\", target = 0.8 }]",
        )
        .unwrap();
        assert_eq!(list.len(), 2);
        assert_eq!(list[1].kind(), RegularizerKind::MagnitudePruning);
        let RegularizerSpec::MagnitudePruning(p) = &list[1] else {
            panic!()
        };
        assert_eq!((p.frequency, p.exponent, p.end_step), (100, 3, None));
        assert_eq!(read("regularizers = \"l2:strength=1\"").unwrap().len(), 1);
    }

    #[test]
    fn bad_regularizers_are_errors_naming_the_key_and_what_was_expected() {
        let e = "group-lasso:strenght=1"
            .parse::<RegularizerSpec>()
            .unwrap_err()
            .to_string();
        assert!(e.contains("strenght") && e.contains("strength"), "{e}");
        let e = "dropout:rate=0.5"
            .parse::<RegularizerSpec>()
            .unwrap_err()
            .to_string();
        assert!(e.contains("dropout") && e.contains("group-lasso"), "{e}");
        let e = "l1:strength"
            .parse::<RegularizerSpec>()
            .unwrap_err()
            .to_string();
        assert!(e.contains("key=value"), "{e}");
        let e = read("regularizers = 3").unwrap_err();
        assert!(e.contains("KIND:key=value"), "{e}");
        let pruning: RegularizerSpec = "magnitude-pruning:target=1.0".parse().unwrap();
        assert!(pruning
            .check()
            .unwrap_err()
            .contains("target must be in [0, 1)"));
        let l1: RegularizerSpec = "l1:strength=-1".parse().unwrap();
        assert!(l1.check().unwrap_err().contains("strength must be"));
    }

    #[test]
    fn a_spec_round_trips_through_toml() {
        #[derive(Serialize, Deserialize, PartialEq, Debug)]
        struct Both {
            #[serde(deserialize_with = "one_or_many")]
            regularizers: Vec<RegularizerSpec>,
        }
        let specs: Vec<RegularizerSpec> = [
            "l1:strength=0.001,mode=prox,biases=true",
            "magnitude-pruning:target=0.5,end_step=40,scope=global",
        ]
        .iter()
        .map(|t| t.parse().unwrap())
        .collect();
        let both = Both {
            regularizers: specs,
        };
        let text = toml::to_string(&both).unwrap();
        assert_eq!(toml::from_str::<Both>(&text).unwrap(), both, "{text}");
    }
}
