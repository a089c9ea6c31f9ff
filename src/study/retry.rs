//! Retrying failed trials. A failed trial (a full disk, a bug since fixed) gets a new
//! attempt that runs at the next `regstudy study run`; the failed attempt stays in the
//! store with its message, epochs and claims (see [`Store::retry`]). The study's results,
//! its report and its choices read the latest attempt of each trial.
//!
//! One kind of failed trial is not retried: a search trial whose method's point has been
//! chosen and used already (confirmation runs or a `point_from` method were added from the
//! choice). The choice excluded the failed point; a retry that succeeds could make another
//! point the best one, and the trials already run on the old choice would no longer match.

use crate::store::{Store, StoreError};
use crate::study::spec::{StudySpec, StudySpecError};
use crate::trial::{Phase, TrialRecord, TrialState};
use std::path::Path;

/// Why trials could not be retried.
#[derive(Debug, thiserror::Error)]
pub enum RetryError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the stored spec of study `{study}` does not read: {source}")]
    Spec {
        study: String,
        source: StudySpecError,
    },
    #[error(
        "study `{study}`, trial {number}: cannot retry it: it searched method `{method}`, whose \
         point was chosen without it and already used by trials {}; a retry could change that \
         choice. Search again in a new study (another name)",
        numbers_text(later)
    )]
    ChoiceUsed {
        study: String,
        number: usize,
        method: String,
        later: Vec<usize>,
    },
}

/// What [`retry_failed`] did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Retried {
    /// The trials given a new attempt.
    pub numbers: Vec<usize>,
    /// Failed trials left as they are, each with why (when every failed trial was asked).
    pub kept: Vec<String>,
}

/// Gives the failed trials `numbers` of `study` (every failed trial when empty) a new
/// attempt. Asked by number, a trial that cannot be retried is an error and none is
/// retried; asked for every failed trial, those that cannot are kept and said why.
pub fn retry_failed(
    store: &dyn Store,
    study: &str,
    numbers: &[usize],
) -> Result<Retried, RetryError> {
    let record = store.study(study)?;
    let spec = StudySpec::parse_unchecked(&record.spec, Path::new(&format!("{study}.toml")))
        .map_err(|source| RetryError::Spec {
            study: study.into(),
            source,
        })?;
    let trials = store.trials(study)?;
    let mut retried = Retried::default();
    let asked: Vec<usize> = if numbers.is_empty() {
        trials
            .iter()
            .filter(|t| t.state == TrialState::Failed)
            .map(|t| t.trial.number)
            .collect()
    } else {
        numbers.to_vec()
    };
    let mut chosen = Vec::new();
    for number in asked {
        let trial = trials.iter().find(|t| t.trial.number == number);
        match trial.map(|t| choice_used(&spec, &trials, t)) {
            Some(Err(e)) if numbers.is_empty() => retried.kept.push(e.to_string()),
            Some(Err(e)) => return Err(e),
            // A number that is not a trial is refused by the store, by name.
            _ => chosen.push(number),
        }
    }
    if !chosen.is_empty() {
        retried.numbers = store.retry(study, &chosen)?;
    }
    Ok(retried)
}

/// Fails if `trial` searched a method whose choice later trials already use.
fn choice_used(
    spec: &StudySpec,
    trials: &[TrialRecord],
    trial: &TrialRecord,
) -> Result<(), RetryError> {
    let t = &trial.trial;
    if t.phase != Phase::Search {
        return Ok(());
    }
    let takes_its_point = |other: &TrialRecord| {
        let o = &other.trial;
        (o.method == t.method && o.phase == Phase::Confirm)
            || spec
                .method(&o.method)
                .is_some_and(|m| m.point_from.as_deref() == Some(t.method.as_str()))
    };
    let later: Vec<usize> = trials
        .iter()
        .filter(|o| o.trial.group == t.group && takes_its_point(o))
        .map(|o| o.trial.number)
        .collect();
    if later.is_empty() {
        return Ok(());
    }
    Err(RetryError::ChoiceUsed {
        study: spec.name.clone(),
        number: t.number,
        method: t.method.clone(),
        later,
    })
}

/// `3, 5, 8`.
pub fn numbers_text(numbers: &[usize]) -> String {
    numbers
        .iter()
        .map(usize::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}
