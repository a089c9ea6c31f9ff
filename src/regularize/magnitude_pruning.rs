//! Gradual magnitude pruning (Zhu and Gupta 2017, "To prune, or not to prune"), the baseline
//! of TensorFlow Model Optimization's `PolynomialDecay` and of `torch.nn.utils.prune` users.
//!
//! Not a term of the objective but a constraint, `||w||_0 <= (1 - s_t) * n`, whose target
//! sparsity `s_t` rises on a polynomial schedule from 0 at the begin step `t0` to the final
//! sparsity `s_f` at the end step `t1`:
//!
//! ```text
//! s_t = s_f + (0 - s_f) * (1 - (t - t0) / (t1 - t0))^e      for t0 <= t <= t1 (e = 3),
//! ```
//!
//! and `s_f` after `t1`. Steps are the optimizer's, counted from 1 (the first update is step
//! 1). At each pruning step, `t0 <= t <= t1` with `t - t0` a multiple of the frequency `dt`,
//! or `t = t1`, after the optimizer's update, the mask is recomputed: with scope `layer`,
//! each reached parameter of `n` weights keeps all but its `k = round(s_t * n)` smallest
//! magnitudes (`f64::round`, halves away from zero); with scope `global` the `k = round(s_t *
//! N)` smallest magnitudes over all `N` reached weights are pruned together. Weights pruned
//! earlier are pruned first (the schedule never lowers `k`, so a pruned weight stays pruned),
//! then the smallest `|w|`, ties going to the lower index. After every step, pruning step or
//! not, pruned weights are set to 0, so they stay 0 whatever the optimizer does; the masks are
//! saved in the checkpoint so that a resumed run continues bit for bit.

use super::{Reach, Regularizer, RegularizerError, RegularizerState, StepInfo};
use crate::nn::Param;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// Whether sparsity is reached per parameter or over all reached parameters together.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PruningScope {
    /// Each reached parameter reaches the target sparsity.
    #[default]
    Layer,
    /// The reached parameters together reach it; layers may differ.
    Global,
}

/// Zhu and Gupta's polynomial sparsity schedule.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PruningSchedule {
    /// Final sparsity `s_f`, in [0, 1).
    pub target: f64,
    /// First step at which weights are pruned, `t0`.
    pub begin: u64,
    /// Step at which the target is reached, `t1 >= t0`.
    pub end: u64,
    /// Steps between two prunings, `dt >= 1`.
    pub frequency: u64,
    /// Exponent `e` of the schedule (3 in the paper).
    pub exponent: i32,
}

impl PruningSchedule {
    /// Whether step `t` recomputes the masks.
    pub fn prunes_at(&self, t: u64) -> bool {
        t >= self.begin
            && t <= self.end
            && ((t - self.begin).is_multiple_of(self.frequency) || t == self.end)
    }

    /// The target sparsity `s_t` at step `t` (0 before `t0`, `s_f` from `t1` on).
    pub fn sparsity_at(&self, t: u64) -> f64 {
        if t < self.begin {
            0.0
        } else if t >= self.end {
            self.target
        } else {
            let progress = (t - self.begin) as f64 / (self.end - self.begin) as f64;
            self.target - self.target * (1.0 - progress).powi(self.exponent)
        }
    }

    /// Weights to prune out of `n` at step `t`.
    pub fn pruned_count(&self, t: u64, n: usize) -> usize {
        ((self.sparsity_at(t) * n as f64).round() as usize).min(n)
    }
}

/// Gradual magnitude pruning of the reached parameters.
#[derive(Clone, Debug)]
pub struct MagnitudePruning {
    schedule: PruningSchedule,
    scope: PruningScope,
    /// Reached parameters, in network order.
    reached: BTreeSet<String>,
    /// `true` for a pruned weight, per reached parameter, once the first pruning step is past.
    masks: BTreeMap<String, Vec<bool>>,
}

/// The prefix of the masks' names in a saved state.
const PREFIX: &str = "magnitude_pruning.mask.";

impl MagnitudePruning {
    /// Resolves `reach` on `params`.
    pub fn new(
        schedule: PruningSchedule,
        scope: PruningScope,
        reach: &Reach,
        params: &[&Param],
    ) -> Result<Self, RegularizerError> {
        let reached = reach
            .resolve(1.0, params)?
            .names()
            .map(String::from)
            .collect();
        Ok(Self {
            schedule,
            scope,
            reached,
            masks: BTreeMap::new(),
        })
    }

    pub fn schedule(&self) -> &PruningSchedule {
        &self.schedule
    }

    /// The mask of parameter `name` (`true` = pruned), once pruning has begun.
    pub fn mask(&self, name: &str) -> Option<&[bool]> {
        self.masks.get(name).map(Vec::as_slice)
    }

    /// Recomputes the masks of `params` for step `t`.
    fn prune(&mut self, params: &[&mut Param], t: u64) {
        let reached: Vec<&Param> = params
            .iter()
            .map(|p| &**p)
            .filter(|p| self.reached.contains(&p.name))
            .collect();
        let groups: Vec<Vec<&Param>> = match self.scope {
            PruningScope::Layer => reached.iter().map(|p| vec![*p]).collect(),
            PruningScope::Global => vec![reached],
        };
        for group in groups {
            let n = group.iter().map(|p| p.len()).sum();
            let k = self.schedule.pruned_count(t, n);
            let chosen = self.smallest(&group, k);
            for (p, mask) in group.iter().zip(chosen) {
                self.masks.insert(p.name.clone(), mask);
            }
        }
    }

    /// Masks of the `k` weights of `group` that go first: pruned before, then smallest `|w|`,
    /// then parameter order and index.
    fn smallest(&self, group: &[&Param], k: usize) -> Vec<Vec<bool>> {
        let mut keys: Vec<(bool, u32, u32, u32)> = Vec::new();
        for (pi, p) in group.iter().enumerate() {
            let before = self.masks.get(&p.name);
            for (i, w) in p.value.iter().enumerate() {
                let pruned = before.is_some_and(|m| m[i]);
                keys.push((!pruned, w.abs().to_bits(), pi as u32, i as u32));
            }
        }
        let mut masks: Vec<Vec<bool>> = group.iter().map(|p| vec![false; p.len()]).collect();
        if k > 0 {
            keys.select_nth_unstable(k - 1);
            for &(_, _, pi, i) in &keys[..k] {
                masks[pi as usize][i as usize] = true;
            }
        }
        masks
    }
}

impl Regularizer for MagnitudePruning {
    fn after_step(&mut self, params: &mut [&mut Param], step: &StepInfo) {
        if self.schedule.prunes_at(step.step) {
            self.prune(params, step.step);
        }
        for p in params.iter_mut() {
            if let Some(mask) = self.masks.get(&p.name) {
                for (w, &pruned) in p.value.iter_mut().zip(mask) {
                    if pruned {
                        *w = 0.0;
                    }
                }
            }
        }
    }

    fn state(&self) -> RegularizerState {
        self.masks
            .iter()
            .map(|(name, mask)| {
                let values = mask.iter().map(|&m| f32::from(u8::from(m))).collect();
                (format!("{PREFIX}{name}"), values)
            })
            .collect()
    }

    fn load_state(
        &mut self,
        state: &RegularizerState,
        params: &[&Param],
    ) -> Result<(), RegularizerError> {
        let mut masks = BTreeMap::new();
        for (key, values) in state {
            let param = key
                .strip_prefix(PREFIX)
                .filter(|name| self.reached.contains(*name))
                .and_then(|name| params.iter().find(|p| p.name == name))
                .ok_or_else(|| RegularizerError::UnexpectedTensor(key.clone()))?;
            if values.len() != param.len() {
                return Err(RegularizerError::WrongLength {
                    name: key.clone(),
                    expected: param.len(),
                    found: values.len(),
                });
            }
            if let Some(bad) = values.iter().find(|&&v| v != 0.0 && v != 1.0) {
                return Err(RegularizerError::InvalidTensor {
                    name: key.clone(),
                    problem: format!("a mask holds 0 or 1, found {bad}"),
                });
            }
            masks.insert(
                param.name.clone(),
                values.iter().map(|&v| v == 1.0).collect(),
            );
        }
        self.masks = masks;
        Ok(())
    }

    fn state_prefix(&self) -> &str {
        PREFIX
    }
}
