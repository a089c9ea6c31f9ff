//! Which parameters a regularizer acts on, and with what strength: the resolution every
//! regularizer shares.
//!
//! A regularizer reaches the kernels (convolution and linear weights) by default, as Keras's
//! regularizers do; `biases` and `norm` add biases and batch-norm scale and shift. `layers`,
//! when not empty, limits it to the parameters those keys cover. `overrides` set per-layer
//! strengths. Keys are a parameter name (`fc1.weight`) or a prefix of names ending at a dot
//! (`fc1`, `layer1.0`); among overrides the longest matching key wins. A full parameter name
//! reaches that parameter whatever its kind; a prefix reaches the parameters it covers that the
//! regularizer acts on (kernels, plus biases/norm when asked). Buffers are never reached.

use crate::nn::{Param, ParamKind};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// The parameters a regularizer acts on, before it is matched to a network.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Reach {
    /// Reach biases too.
    pub biases: bool,
    /// Reach batch-norm scale and shift too.
    pub norm: bool,
    /// When not empty, only the parameters these keys cover.
    pub layers: Vec<String>,
    /// Per-layer strengths; `None` gives the parameters the key covers the default strength
    /// (a full name then reaches a parameter the switches leave out).
    pub overrides: BTreeMap<String, Option<f32>>,
    /// How the keys were given, for errors (`--layer-penalty`, `regularizer group-lasso`).
    pub option: String,
}

/// A key that does not fit the network.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ReachError {
    #[error("{option} `{key}` matches no parameter of the model (parameters: {known})")]
    UnknownLayer {
        option: String,
        key: String,
        known: String,
    },
    /// The key matches parameters, but reaches none of them: it would change nothing.
    #[error("{option} `{key}` reaches no penalized parameter: {why}")]
    ReachesNothing {
        option: String,
        key: String,
        why: String,
    },
}

/// Whether key `key` covers parameter `name`: equal, or a prefix ending at a dot.
pub fn covers(key: &str, name: &str) -> bool {
    name == key || (name.starts_with(key) && name.as_bytes().get(key.len()) == Some(&b'.'))
}

impl Reach {
    /// Reach of the kernels only, with no key.
    pub fn kernels(option: &str) -> Self {
        Self {
            option: option.into(),
            ..Self::default()
        }
    }

    /// The strength of every reached trainable parameter of `params`, by name (`default`
    /// unless an override sets it). Refuses keys that reach no parameter: a key that matches
    /// no name, or one that would act on nothing because it matches only buffers, or (as a
    /// prefix) only parameters the regularizer does not act on, or (as an override) only
    /// parameters that a longer key takes.
    pub fn resolve(&self, default: f32, params: &[&Param]) -> Result<Strengths, ReachError> {
        for key in &self.layers {
            self.check_reach(key, params, false)?;
        }
        for key in self.overrides.keys() {
            self.check_reach(key, params, true)?;
        }
        Ok(Strengths(
            params
                .iter()
                .filter(|p| p.kind.is_trainable())
                .filter_map(|p| self.strength_of(p, default).map(|s| (p.name.clone(), s)))
                .collect(),
        ))
    }

    fn acts_on(&self, kind: ParamKind) -> bool {
        match kind {
            ParamKind::Kernel => true,
            ParamKind::Bias => self.biases,
            ParamKind::NormScale | ParamKind::NormShift => self.norm,
            ParamKind::Buffer => false,
        }
    }

    /// Whether `key` reaches `p` by itself: the full name, or a prefix over a kind acted on.
    fn key_reaches(&self, key: &str, p: &Param) -> bool {
        p.kind.is_trainable() && covers(key, &p.name) && (p.name == key || self.acts_on(p.kind))
    }

    /// Reached without an override: by the switches, within `layers` when given.
    fn base_reach(&self, p: &Param) -> bool {
        if self.layers.is_empty() {
            p.kind.is_trainable() && self.acts_on(p.kind)
        } else {
            self.layers.iter().any(|key| self.key_reaches(key, p))
        }
    }

    /// The longest override key matching `p`, with its strength.
    fn best_override(&self, p: &Param) -> Option<(&String, &Option<f32>)> {
        self.overrides
            .iter()
            .filter(|(key, _)| covers(key, &p.name))
            .max_by_key(|(key, _)| key.len())
    }

    fn strength_of(&self, p: &Param, default: f32) -> Option<f32> {
        match self.best_override(p) {
            Some((key, s)) if self.key_reaches(key, p) => Some(s.unwrap_or(default)),
            _ if self.base_reach(p) => Some(default),
            _ => None,
        }
    }

    /// Whether `key` reaches at least one trainable parameter of `params` (an override: and
    /// is the longest key there); if not, the error says why.
    fn check_reach(
        &self,
        key: &str,
        params: &[&Param],
        is_override: bool,
    ) -> Result<(), ReachError> {
        let matched: Vec<&Param> = params
            .iter()
            .copied()
            .filter(|p| covers(key, &p.name))
            .collect();
        let reaches = |p: &Param| {
            self.key_reaches(key, p)
                && (!is_override || self.best_override(p).is_some_and(|(best, _)| best == key))
        };
        if matched.iter().any(|p| reaches(p)) {
            return Ok(());
        }
        let trainable = |ps: &[&Param]| -> Vec<String> {
            ps.iter()
                .filter(|p| p.kind.is_trainable())
                .map(|p| p.name.clone())
                .collect()
        };
        if matched.is_empty() {
            return Err(ReachError::UnknownLayer {
                option: self.option.clone(),
                key: key.into(),
                known: trainable(params).join(", "),
            });
        }
        Err(ReachError::ReachesNothing {
            option: self.option.clone(),
            key: key.into(),
            why: self.why_nothing(key, &matched),
        })
    }

    /// Why `key`, which matches `matched`, reaches none of them.
    fn why_nothing(&self, key: &str, matched: &[&Param]) -> String {
        let names = |ps: &[&Param]| {
            ps.iter()
                .map(|p| p.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let trainable: Vec<&Param> = matched
            .iter()
            .copied()
            .filter(|p| p.kind.is_trainable())
            .collect();
        if trainable.is_empty() {
            return format!(
                "it matches only buffers ({}), which are never penalized",
                names(matched)
            );
        }
        if !trainable.iter().any(|p| self.acts_on(p.kind)) {
            let (kinds, switches) = optional_kinds(&trainable);
            return format!(
                "it matches only {} ({}), which this run does not penalize; set {} or give a \
                 parameter's full name",
                kinds,
                names(&trainable),
                switches
            );
        }
        let longer: BTreeSet<&str> = trainable
            .iter()
            .filter_map(|p| self.best_override(p).map(|(best, _)| best.as_str()))
            .filter(|best| *best != key)
            .collect();
        format!(
            "every parameter it would set is set by a longer key ({})",
            longer.into_iter().collect::<Vec<_>>().join(", ")
        )
    }
}

/// The optional kinds among `params` ("biases", "batch-norm parameters" or both), and the
/// switches that would reach them.
fn optional_kinds(params: &[&Param]) -> (&'static str, &'static str) {
    let bias = params.iter().any(|p| p.kind == ParamKind::Bias);
    let norm = params
        .iter()
        .any(|p| matches!(p.kind, ParamKind::NormScale | ParamKind::NormShift));
    match (bias, norm) {
        (true, true) => (
            "biases and batch-norm parameters",
            "--penalize-biases or --penalize-norm",
        ),
        (true, false) => ("biases", "--penalize-biases"),
        _ => ("batch-norm parameters", "--penalize-norm"),
    }
}

/// The strength of every parameter a [`Reach`] reaches, by parameter name.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Strengths(HashMap<String, f32>);

impl Strengths {
    /// The strength on the parameter named `name`, if it is reached.
    pub fn get(&self, name: &str) -> Option<f32> {
        self.0.get(name).copied()
    }

    /// The strength on the parameter named `name` (0 when it is not reached).
    pub fn of(&self, name: &str) -> f32 {
        self.get(name).unwrap_or(0.0)
    }

    /// The names of the reached parameters.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::regularize::tests::penalty_params as params;

    #[test]
    fn layers_limit_the_reach_to_the_parameters_their_keys_cover() {
        let ps = params();
        let refs: Vec<&Param> = ps.iter().collect();
        let reach = Reach {
            layers: vec!["fc".into()],
            ..Reach::kernels("regularizer l1")
        };
        let strengths = reach.resolve(0.1, &refs).unwrap();
        assert_eq!(strengths.len(), 1);
        assert_eq!(strengths.of("fc.weight"), 0.1);
        let reach = Reach {
            layers: vec!["head".into()],
            ..Reach::kernels("regularizer l1")
        };
        let e = reach.resolve(0.1, &refs).unwrap_err().to_string();
        assert!(
            e.starts_with("regularizer l1 `head` matches no parameter"),
            "{e}"
        );
    }

    #[test]
    fn an_override_reaches_a_parameter_outside_the_layers_only_by_its_full_name() {
        let ps = params();
        let refs: Vec<&Param> = ps.iter().collect();
        let reach = Reach {
            layers: vec!["conv1".into()],
            overrides: BTreeMap::from([("bn.weight".to_string(), Some(0.5))]),
            ..Reach::kernels("regularizer l2")
        };
        let strengths = reach.resolve(0.1, &refs).unwrap();
        assert_eq!(strengths.get("conv1.weight"), Some(0.1));
        assert_eq!(strengths.get("bn.weight"), Some(0.5));
        assert_eq!(strengths.get("conv1.bias"), None);
        assert_eq!(strengths.get("fc.weight"), None);
    }
}
