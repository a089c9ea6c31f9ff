//! Which penalty acts on which parameter, its value, and its gradient through the optimizer.

use crate::nn::{Param, ParamKind};
use crate::optim::{PenaltyTerms, StepHook};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};

/// The penalty family, as Keras names its regularizers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum PenaltyKind {
    /// No penalty.
    #[default]
    None,
    /// `l1 * sum|w|`.
    L1,
    /// `l2 * sum w^2`.
    L2,
    /// `l1 * sum|w| + l2 * sum w^2` (elastic net).
    L1l2,
}

impl PenaltyKind {
    pub fn has_l1(self) -> bool {
        matches!(self, PenaltyKind::L1 | PenaltyKind::L1l2)
    }

    pub fn has_l2(self) -> bool {
        matches!(self, PenaltyKind::L2 | PenaltyKind::L1l2)
    }

    /// The family that uses exactly the strengths given (`l1` and/or `l2`).
    pub fn from_strengths(l1: bool, l2: bool) -> Self {
        match (l1, l2) {
            (false, false) => PenaltyKind::None,
            (true, false) => PenaltyKind::L1,
            (false, true) => PenaltyKind::L2,
            (true, true) => PenaltyKind::L1l2,
        }
    }
}

/// How the L1 term is minimized (see the module documentation of [`crate::regularize`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum L1Mode {
    /// `l1 * sign(w)` added to the gradient (Keras).
    #[default]
    Subgradient,
    /// Soft-thresholding after each step; yields exact zeros.
    Prox,
}

/// A per-layer override: a strength left out keeps the run's default.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LayerStrength {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub l1: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub l2: Option<f32>,
}

/// What to penalize and how strongly, before it is matched to a network's parameters.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PenaltyRule {
    /// Default L1 strength (0 when the family has no L1 term).
    pub l1: f32,
    /// Default L2 strength (0 when the family has no L2 term).
    pub l2: f32,
    pub mode: L1Mode,
    /// Penalize biases too (default: kernels only).
    pub biases: bool,
    /// Penalize batch-norm scale and shift too.
    pub norm: bool,
    /// Overrides keyed by a parameter name (`fc1.weight`) or a prefix of names ending at a
    /// dot (`fc1`, `layer1.0`). The longest matching key wins. A full parameter name applies
    /// to that parameter whatever its kind; a prefix applies to the parameters it covers that
    /// the rule penalizes (kernels, plus biases/norm when asked).
    pub layers: BTreeMap<String, LayerStrength>,
    /// Coupled weight decay `wd` (its `wd/2 * ||w||^2` is counted in [`PenaltyPlan::value`];
    /// the optimizer applies its gradient).
    pub weight_decay: f32,
}

/// A rule that does not fit the network.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum PenaltyError {
    #[error("--layer-penalty `{key}` matches no parameter of the model (parameters: {known})")]
    UnknownLayer { key: String, known: String },
    /// The key matches parameters, but the override reaches none of them: it would change
    /// nothing.
    #[error("--layer-penalty `{key}` reaches no penalized parameter: {why}")]
    ReachesNothing { key: String, why: String },
}

/// A [`PenaltyRule`] resolved to the coefficients of every parameter of one network.
#[derive(Clone, Debug, Default)]
pub struct PenaltyPlan {
    terms: HashMap<String, PenaltyTerms>,
    weight_decay: f32,
}

impl PenaltyPlan {
    /// Matches `rule` to `params` (a network's parameters), rejecting override keys that
    /// reach no parameter: a key that matches no name, or one whose override would act on
    /// nothing, because it matches only buffers, or (as a prefix) only parameters the rule
    /// does not penalize (biases without `biases`, batch-norm scale and shift without
    /// `norm`), or only parameters that a longer key takes.
    pub fn new(rule: &PenaltyRule, params: &[&Param]) -> Result<Self, PenaltyError> {
        for key in rule.layers.keys() {
            rule.check_reach(key, params)?;
        }
        let terms = params
            .iter()
            .filter(|p| p.kind.is_trainable())
            .map(|p| (p.name.clone(), rule.terms_of(p)))
            .collect();
        Ok(Self {
            terms,
            weight_decay: rule.weight_decay,
        })
    }

    /// The coefficients of the parameter named `name` (zero if it is not penalized).
    pub fn terms_of(&self, name: &str) -> PenaltyTerms {
        self.terms.get(name).copied().unwrap_or_default()
    }

    /// The penalty part of the objective at the current weights, in f64:
    /// `sum_p (l1_p * sum|w| + l2_p * sum w^2) + wd/2 * sum_trainable w^2`.
    pub fn value(&self, params: &[&Param]) -> f64 {
        let mut total = 0.0;
        for p in params.iter().filter(|p| p.kind.is_trainable()) {
            let t = self.terms_of(&p.name);
            let l1 = f64::from(t.l1 + t.l1_prox);
            let l2 = f64::from(t.l2) + f64::from(self.weight_decay) / 2.0;
            if l1 == 0.0 && l2 == 0.0 {
                continue;
            }
            let (abs, squares) = p.value.iter().fold((0.0f64, 0.0f64), |(a, s), &w| {
                let w = f64::from(w);
                (a + w.abs(), s + w * w)
            });
            total += l1 * abs + l2 * squares;
        }
        total
    }
}

impl StepHook for PenaltyPlan {
    fn terms(&self, param: &Param) -> PenaltyTerms {
        self.terms_of(&param.name)
    }
}

/// The optional kinds among `params` ("biases", "batch-norm parameters" or both), and the
/// switches that would penalize them.
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

/// Whether override key `key` covers parameter `name`: equal, or a prefix ending at a dot.
fn covers(key: &str, name: &str) -> bool {
    name == key || (name.starts_with(key) && name.as_bytes().get(key.len()) == Some(&b'.'))
}

impl PenaltyRule {
    fn penalizes(&self, kind: ParamKind) -> bool {
        match kind {
            ParamKind::Kernel => true,
            ParamKind::Bias => self.biases,
            ParamKind::NormScale | ParamKind::NormShift => self.norm,
            ParamKind::Buffer => false,
        }
    }

    /// The longest override key matching `p`, with its strengths.
    fn best_override(&self, p: &Param) -> Option<(&String, &LayerStrength)> {
        self.layers
            .iter()
            .filter(|(key, _)| covers(key, &p.name))
            .max_by_key(|(key, _)| key.len())
    }

    /// Whether override `key` sets the strengths of at least one trainable parameter of
    /// `params`; if not, the error says why.
    fn check_reach<'p>(&self, key: &str, params: &[&'p Param]) -> Result<(), PenaltyError> {
        let matched: Vec<&'p Param> = params
            .iter()
            .copied()
            .filter(|p| covers(key, &p.name))
            .collect();
        let reaches = |p: &Param| {
            p.kind.is_trainable()
                && (p.name == key || self.penalizes(p.kind))
                && self.best_override(p).is_some_and(|(best, _)| best == key)
        };
        if matched.iter().any(|p| reaches(p)) {
            return Ok(());
        }
        let names = |ps: &[&Param]| {
            ps.iter()
                .map(|p| p.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let trainable_of = |ps: &[&'p Param]| -> Vec<&'p Param> {
            ps.iter()
                .copied()
                .filter(|p| p.kind.is_trainable())
                .collect()
        };
        if matched.is_empty() {
            return Err(PenaltyError::UnknownLayer {
                key: key.into(),
                known: names(&trainable_of(params)),
            });
        }
        let trainable = trainable_of(&matched);
        let why = if trainable.is_empty() {
            format!(
                "it matches only buffers ({}), which are never penalized",
                names(&matched)
            )
        } else if !trainable.iter().any(|p| self.penalizes(p.kind)) {
            let (kinds, switches) = optional_kinds(&trainable);
            format!(
                "it matches only {} ({}), which this run does not penalize; set {} or give a \
                 parameter's full name",
                kinds,
                names(&trainable),
                switches
            )
        } else {
            let longer: Vec<&str> = trainable
                .iter()
                .filter_map(|p| self.best_override(p).map(|(best, _)| best.as_str()))
                .filter(|best| *best != key)
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect();
            format!(
                "every parameter it would set is set by a longer key ({})",
                longer.join(", ")
            )
        };
        Err(PenaltyError::ReachesNothing {
            key: key.into(),
            why,
        })
    }

    /// The coefficients for one parameter: the longest matching override, else the default.
    fn terms_of(&self, p: &Param) -> PenaltyTerms {
        let best = self.best_override(p);
        let (l1, l2) = match best {
            Some((key, s)) if *key == p.name || self.penalizes(p.kind) => {
                (s.l1.unwrap_or(self.l1), s.l2.unwrap_or(self.l2))
            }
            _ if self.penalizes(p.kind) => (self.l1, self.l2),
            _ => (0.0, 0.0),
        };
        match self.mode {
            L1Mode::Subgradient => PenaltyTerms {
                l1,
                l2,
                l1_prox: 0.0,
            },
            L1Mode::Prox => PenaltyTerms {
                l1: 0.0,
                l2,
                l1_prox: l1,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::ParamKind;

    fn params() -> Vec<Param> {
        vec![
            Param::new(
                "conv1.weight".into(),
                ParamKind::Kernel,
                &[3],
                vec![0.5, -1.0, 0.0],
            ),
            Param::new("conv1.bias".into(), ParamKind::Bias, &[2], vec![2.0, -2.0]),
            Param::new(
                "fc.weight".into(),
                ParamKind::Kernel,
                &[2],
                vec![3.0, -0.25],
            ),
            Param::new("bn.weight".into(), ParamKind::NormScale, &[1], vec![1.0]),
            Param::new("bn.running_var".into(), ParamKind::Buffer, &[1], vec![9.0]),
        ]
    }

    fn rule(l1: f32, l2: f32) -> PenaltyRule {
        PenaltyRule {
            l1,
            l2,
            ..PenaltyRule::default()
        }
    }

    #[test]
    fn default_rule_penalizes_kernels_only_with_keras_values() {
        let ps = params();
        let refs: Vec<&Param> = ps.iter().collect();
        let plan = PenaltyPlan::new(&rule(0.1, 0.01), &refs).unwrap();
        // Kernels: sum|w| = 1.5 + 3.25 = 4.75, sum w^2 = 1.25 + 9.0625 = 10.3125.
        let expected = 0.1 * 4.75 + 0.01 * 10.3125;
        assert!((plan.value(&refs) - expected).abs() < 1e-6);
        assert!(plan.terms_of("conv1.bias").is_zero());
        assert!(plan.terms_of("bn.weight").is_zero());
        assert!(plan.terms_of("bn.running_var").is_zero());
    }

    #[test]
    fn coupled_decay_counts_as_half_an_l2_penalty_on_every_trainable_parameter() {
        let ps = params();
        let refs: Vec<&Param> = ps.iter().collect();
        let rule = PenaltyRule {
            weight_decay: 0.2,
            ..PenaltyRule::default()
        };
        let plan = PenaltyPlan::new(&rule, &refs).unwrap();
        // Trainable sum w^2: 1.25 + 8 + 9.0625 + 1 = 19.3125 (the buffer is left out).
        assert!((plan.value(&refs) - 0.1 * 19.3125).abs() < 1e-6);
    }

    #[test]
    fn overrides_pick_the_longest_key_and_full_names_reach_any_kind() {
        let ps = params();
        let refs: Vec<&Param> = ps.iter().collect();
        let mut r = rule(0.1, 0.0);
        r.layers.insert(
            "conv1".into(),
            LayerStrength {
                l1: Some(0.5),
                l2: None,
            },
        );
        r.layers.insert(
            "conv1.bias".into(),
            LayerStrength {
                l1: None,
                l2: Some(0.3),
            },
        );
        let plan = PenaltyPlan::new(&r, &refs).unwrap();
        assert_eq!(plan.terms_of("conv1.weight").l1, 0.5);
        assert_eq!(plan.terms_of("conv1.bias").l2, 0.3);
        assert_eq!(plan.terms_of("conv1.bias").l1, 0.1);
        assert_eq!(plan.terms_of("fc.weight").l1, 0.1);
        r.layers.insert("conv".into(), LayerStrength::default());
        let err = PenaltyPlan::new(&r, &refs).unwrap_err().to_string();
        assert!(
            err.contains("`conv`") && err.contains("--layer-penalty"),
            "{err}"
        );
    }

    #[test]
    fn an_override_that_reaches_no_penalized_parameter_is_an_error_naming_the_key_and_why() {
        let mut ps = params();
        ps.push(Param::new(
            "head.bias".into(),
            ParamKind::Bias,
            &[1],
            vec![0.5],
        ));
        let refs: Vec<&Param> = ps.iter().collect();
        let strength = LayerStrength {
            l1: None,
            l2: Some(0.2),
        };
        let error_with = |keys: &[&str], biases: bool, norm: bool| {
            let mut r = rule(0.0, 0.1);
            r.biases = biases;
            r.norm = norm;
            for key in keys {
                r.layers.insert((*key).into(), strength);
            }
            PenaltyPlan::new(&r, &refs).err().map(|e| e.to_string())
        };
        // A buffer, named in full or by its layer.
        let e = error_with(&["bn.running_var"], true, true).unwrap();
        assert!(
            e.contains("`bn.running_var`") && e.contains("only buffers"),
            "{e}"
        );
        // A layer with only batch-norm parameters (and buffers) while norm is off.
        let e = error_with(&["bn"], false, false).unwrap();
        assert!(
            e.contains("`bn`") && e.contains("batch-norm") && e.contains("--penalize-norm"),
            "{e}"
        );
        assert_eq!(error_with(&["bn"], false, true), None);
        // A layer with only a bias while biases are off.
        let e = error_with(&["head"], false, false).unwrap();
        assert!(
            e.contains("`head`") && e.contains("biases") && e.contains("--penalize-biases"),
            "{e}"
        );
        assert_eq!(error_with(&["head"], true, false), None);
        // A layer whose every penalized parameter has a longer key.
        let e = error_with(&["fc", "fc.weight"], false, false).unwrap();
        assert!(e.contains("`fc`") && e.contains("fc.weight"), "{e}");
        // A full name still reaches its parameter whatever its kind.
        assert_eq!(error_with(&["bn.weight", "head.bias"], false, false), None);
    }

    #[test]
    fn prox_mode_moves_l1_to_the_proximal_step() {
        let ps = params();
        let refs: Vec<&Param> = ps.iter().collect();
        let mut r = rule(0.1, 0.01);
        r.mode = L1Mode::Prox;
        let t = PenaltyPlan::new(&r, &refs).unwrap().terms_of("fc.weight");
        assert_eq!((t.l1, t.l2, t.l1_prox), (0.0, 0.01, 0.1));
    }

    #[test]
    fn hook_gradient_matches_finite_differences_of_the_value() {
        let ps = params();
        let refs: Vec<&Param> = ps.iter().collect();
        let mut r = rule(0.07, 0.03);
        r.biases = true;
        let plan = PenaltyPlan::new(&r, &refs).unwrap();
        for (pi, p) in ps.iter().enumerate().filter(|(_, p)| p.kind.is_trainable()) {
            let terms = plan.terms(p);
            for i in 0..p.len() {
                if p.value[i] == 0.0 {
                    continue; // |w| has no derivative at 0
                }
                let at = |delta: f32| {
                    let mut moved = ps.clone();
                    moved[pi].value[i] += delta;
                    plan.value(&moved.iter().collect::<Vec<_>>())
                };
                let fd = (at(1e-3) - at(-1e-3)) / 2e-3;
                let analytic = f64::from(terms.gradient(p.value[i]));
                assert!(
                    (fd - analytic).abs() < 1e-3,
                    "{} {i}: {fd} {analytic}",
                    p.name
                );
            }
        }
    }
}
