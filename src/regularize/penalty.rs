//! The names of the L1/L2 shorthands of a run config (`--penalty`, `--l1-mode`,
//! `--layer-penalty`), which become [`super::L1`] and [`super::L2`] regularizers.

use serde::{Deserialize, Serialize};

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
