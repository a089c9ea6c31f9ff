//! A run's regularizers: the plan a config resolves to, and the set built from it on one
//! network, which the training step calls.

use super::{
    Reach, Regularizer, RegularizerError, RegularizerKind, RegularizerSpec, RegularizerState,
    StepInfo,
};
use crate::nn::Param;
use crate::optim::{Optimizer, PenaltyTerms, StepHook};

/// A run's regularizers before they meet a network: each spec with the [`Reach`] it acts on,
/// and the coupled weight decay the objective counts.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RegularizerPlan {
    pub members: Vec<(RegularizerSpec, Reach)>,
    /// Coupled weight decay `wd` (applied by the optimizer; its `wd/2 * ||w||^2` is counted
    /// in [`Regularizers::value`]).
    pub weight_decay: f32,
}

impl RegularizerPlan {
    /// The kinds in the plan, in order.
    pub fn kinds(&self) -> Vec<RegularizerKind> {
        self.members.iter().map(|(spec, _)| spec.kind()).collect()
    }

    /// The set on `params`; `last_step` is the run's last optimizer step. Refuses keys that
    /// reach no parameter (see [`Reach::resolve`]).
    pub fn build(
        &self,
        params: &[&Param],
        last_step: u64,
    ) -> Result<Regularizers, RegularizerError> {
        let members = self
            .members
            .iter()
            .map(|(spec, reach)| spec.build(reach, params, last_step))
            .collect::<Result<_, _>>()?;
        Ok(Regularizers::new(members, self.weight_decay))
    }
}

/// The regularizers of a run on one network. Through [`StepHook`] the optimizer gets the sum
/// of the members' element-wise terms for each parameter.
#[derive(Debug, Default)]
pub struct Regularizers {
    members: Vec<Box<dyn Regularizer>>,
    weight_decay: f32,
}

impl Regularizers {
    pub fn new(members: Vec<Box<dyn Regularizer>>, weight_decay: f32) -> Self {
        Self {
            members,
            weight_decay,
        }
    }

    pub fn members(&self) -> &[Box<dyn Regularizer>] {
        &self.members
    }

    /// The regularization part of the objective at `params`, in f64: the members' values
    /// plus `wd/2 * sum_trainable w^2`.
    pub fn value(&self, params: &[&Param]) -> f64 {
        let members: f64 = self.members.iter().map(|r| r.value(params)).sum();
        if self.weight_decay == 0.0 {
            return members;
        }
        let squares: f64 = params
            .iter()
            .filter(|p| p.kind.is_trainable())
            .flat_map(|p| p.value.iter())
            .map(|&w| f64::from(w) * f64::from(w))
            .sum();
        members + f64::from(self.weight_decay) / 2.0 * squares
    }

    /// Adds the members' gradients that are not element-wise, before the optimizer's step.
    pub fn add_gradients(&self, params: &mut [&mut Param]) {
        for r in &self.members {
            for p in params.iter_mut().filter(|p| p.kind.is_trainable()) {
                r.add_gradient(p);
            }
        }
    }

    /// Lets every member act after `optimizer`'s step (proximal operators, masks).
    pub fn after_step(&mut self, params: &mut [&mut Param], optimizer: &dyn Optimizer) {
        let info = StepInfo::of(optimizer);
        for r in &mut self.members {
            r.after_step(params, &info);
        }
    }

    /// Whether a member keeps state that a resume needs.
    pub fn has_state(&self) -> bool {
        self.members.iter().any(|r| !r.state_prefix().is_empty())
    }

    /// Every member's state, by the members' unique names.
    pub fn state(&self) -> RegularizerState {
        self.members.iter().flat_map(|r| r.state()).collect()
    }

    /// Restores a state saved by [`Regularizers::state`] for the same network. A tensor that
    /// belongs to no member is refused, naming it.
    pub fn load_state(
        &mut self,
        state: &RegularizerState,
        params: &[&Param],
    ) -> Result<(), RegularizerError> {
        let mut left = state.clone();
        for r in &mut self.members {
            let prefix = r.state_prefix().to_string();
            let mine: RegularizerState = if prefix.is_empty() {
                RegularizerState::new()
            } else {
                let names: Vec<String> = left
                    .keys()
                    .filter(|k| k.starts_with(&prefix))
                    .cloned()
                    .collect();
                names
                    .into_iter()
                    .filter_map(|k| left.remove_entry(&k))
                    .collect()
            };
            r.load_state(&mine, params)?;
        }
        match left.into_keys().next() {
            Some(name) => Err(RegularizerError::UnexpectedTensor(name)),
            None => Ok(()),
        }
    }
}

impl StepHook for Regularizers {
    fn terms(&self, param: &Param) -> PenaltyTerms {
        let mut sum = PenaltyTerms::default();
        for r in &self.members {
            let t = r.fused(param);
            sum.l1 += t.l1;
            sum.l2 += t.l2;
            sum.l1_prox += t.l1_prox;
        }
        sum
    }
}
