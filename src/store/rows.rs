//! What the SQL stores share: how a row is written and read back, which trial rows are
//! current, and how a failure becomes a [`StoreError`]. The SQL itself differs between
//! SQLite and PostgreSQL only where their dialects do; the meaning of every column is here.

use super::{Outcome, StoreError, StudyCopy, TrainingStart, Worker};
use crate::train::{EpochMetrics, RunConfig};
use crate::trial::{NewTrial, TrialRecord, TrialState};
use serde::{de::DeserializeOwned, Serialize};
use std::path::Path;

/// Trials that are the latest attempt of their number (no retry follows them), as an SQL
/// condition on the trials table aliased `t`.
pub(super) const LATEST: &str = "NOT EXISTS (SELECT 1 FROM trials r WHERE r.retry_of = t.id)";

/// The columns a [`StoredTrial`] is read from, in its fields' order; `now` is the SQL of the
/// store's clock in Unix seconds.
pub(super) fn trial_columns(now: &str) -> String {
    format!(
        "t.id, t.number, t.grp, t.method, t.point, t.seed, t.config, t.state, t.worker, \
         t.attempts, t.started_at, t.finished_at, t.summary, t.message, t.histogram, t.phase, \
         t.retry, CASE WHEN t.state = 'running' THEN {now} - t.heartbeat END"
    )
}

/// A database's own error, in words for a message.
pub(super) trait SqlError {
    fn describe(&self) -> String;
}

/// Why an operation failed, before the store's location and the operation are added.
pub(super) enum Failure<E> {
    Sql(E),
    /// Stored or given data that cannot be read or written.
    Data(String),
    NoStudy {
        study: String,
        hint: String,
    },
    SpecChanged(String),
    Trial {
        trial: i64,
        message: String,
    },
    Retry {
        study: String,
        number: usize,
        problem: String,
    },
    Exists(String),
}

impl<E> From<E> for Failure<E> {
    fn from(e: E) -> Self {
        Failure::Sql(e)
    }
}

impl<E: SqlError> Failure<E> {
    /// The error to show: `location` is the store's path or its URL without password, `what`
    /// the operation that failed.
    pub(super) fn into_error(self, location: &Path, what: impl FnOnce() -> String) -> StoreError {
        let path = location.to_path_buf();
        let message = match self {
            Failure::Sql(e) => format!("{}: {}", what(), e.describe()),
            Failure::Data(problem) => format!("{}: {problem}", what()),
            Failure::NoStudy { study, hint } => return StoreError::NoStudy { study, path, hint },
            Failure::SpecChanged(study) => return StoreError::SpecChanged { study, path },
            Failure::Exists(study) => return StoreError::Exists { study, path },
            Failure::Trial { trial, message } => return StoreError::Trial { trial, message },
            Failure::Retry {
                study,
                number,
                problem,
            } => {
                return StoreError::Retry {
                    study,
                    number,
                    problem,
                }
            }
        };
        StoreError::Database { path, message }
    }
}

/// ` (it has: a, b)`, or empty when the store has no study: the hint of a missing study.
pub(super) fn study_hint(names: &[String]) -> String {
    if names.is_empty() {
        String::new()
    } else {
        format!(" (it has: {})", names.join(", "))
    }
}

/// JSON of `value`, checked to read back: a value that does not (a NaN where a number must
/// be, which JSON writes as `null`) is refused here rather than stored, because a finished
/// trial's unreadable row could never be mended.
pub(super) fn to_json<T: Serialize + DeserializeOwned>(value: &T) -> Result<String, String> {
    let json = serde_json::to_string(value).map_err(|e| e.to_string())?;
    serde_json::from_str::<T>(&json).map_err(|e| format!("it would not read back ({e})"))?;
    Ok(json)
}

/// TOML of a trial's config, checked to read back like [`to_json`].
pub(super) fn config_to_toml(config: &RunConfig) -> Result<String, String> {
    let text = toml::to_string(config).map_err(|e| e.to_string())?;
    toml::from_str::<RunConfig>(&text).map_err(|e| format!("it would not read back ({e})"))?;
    Ok(text)
}

/// `value` as an SQL integer, which is signed: only values above `i64::MAX` fail.
pub(super) fn sql_int<T>(value: T, what: &str) -> Result<i64, String>
where
    T: TryInto<i64> + Copy + std::fmt::Display,
{
    value
        .try_into()
        .map_err(|_| format!("{what} {value} is too large to store"))
}

/// The claims of a study with where their training began, as SQL columns over `claims c`
/// joined (LEFT JOIN) with `starts s`; read by [`training_start`].
pub(super) const CLAIM_COLUMNS: &str =
    "c.trial, c.worker, c.at, s.from_epoch, s.discarded, s.reason";

/// The reasons the `starts` table accepts, as an SQL list.
pub(super) const START_REASONS: &str =
    "'first', 'checkpoint', 'no-checkpoint', 'unreadable-checkpoint', 'folder-not-resumable'";

/// A claim's start from the `starts` columns of [`CLAIM_COLUMNS`]: all NULL when the
/// claim's training never began.
pub(super) fn training_start(
    from_epoch: Option<i64>,
    discarded: Option<i64>,
    reason: Option<String>,
) -> Result<Option<TrainingStart>, String> {
    let (Some(from_epoch), Some(discarded), Some(reason)) = (from_epoch, discarded, reason) else {
        return Ok(None);
    };
    let count = |n: i64, what: &str| {
        usize::try_from(n).map_err(|_| format!("a claim's {what} is {n}, not a count"))
    };
    Ok(Some(TrainingStart {
        from_epoch: count(from_epoch, "start epoch")?,
        discarded_epochs: count(discarded, "number of discarded epochs")?,
        reason: reason.parse()?,
    }))
}

/// A start's `starts` columns: `from_epoch`, `discarded`, `reason`.
pub(super) fn start_columns(start: &TrainingStart) -> Result<(i64, i64, &'static str), String> {
    Ok((
        sql_int(start.from_epoch, "start epoch")?,
        sql_int(start.discarded_epochs, "number of discarded epochs")?,
        start.reason.as_str(),
    ))
}

/// The latest attempt of one trial number: its number, row id and state.
pub(super) type LatestAttempt = (usize, i64, String);

/// The latest attempt of trial `number`, if it failed; otherwise why it cannot be retried.
fn retryable(latest: &[LatestAttempt], number: usize) -> Result<&LatestAttempt, String> {
    let Some(found) = latest.iter().find(|(n, _, _)| *n == number) else {
        return Err(format!(
            "the study has no such trial (its trials are numbered 0 to {})",
            latest.len().saturating_sub(1)
        ));
    };
    match found.2.as_str() {
        "failed" => Ok(found),
        state @ ("waiting" | "running") => Err(format!(
            "it is {state}; only a failed trial is retried, and this one will run at the next \
             `regstudy study run`"
        )),
        state => Err(format!(
            "it is {state}; only a failed trial is retried (a {state} trial is a result, and \
             results never change)"
        )),
    }
}

/// A trials row as stored: the text columns not yet parsed, so that a column that does not
/// parse is reported by name rather than as a row that failed.
pub(super) struct StoredTrial {
    pub id: i64,
    pub number: i64,
    pub group: String,
    pub method: String,
    pub point: String,
    pub seed: i64,
    pub config: String,
    pub state: String,
    pub worker: Option<String>,
    pub attempts: u32,
    pub started_at: Option<f64>,
    pub finished_at: Option<f64>,
    pub summary: Option<String>,
    pub message: Option<String>,
    pub histogram: Option<String>,
    pub phase: String,
    pub retry: u32,
    pub heartbeat_age: Option<f64>,
}

impl StoredTrial {
    /// The record, or which column of which row does not read.
    pub(super) fn parse(self) -> Result<TrialRecord, String> {
        let id = self.id;
        let config = toml::from_str(&self.config).map_err(|e| unreadable(id, "config", e))?;
        let point = serde_json::from_str(&self.point).map_err(|e| unreadable(id, "point", e))?;
        let number = usize::try_from(self.number).map_err(|e| unreadable(id, "number", e))?;
        let seed = u64::try_from(self.seed).map_err(|e| unreadable(id, "seed", e))?;
        Ok(TrialRecord {
            id,
            trial: NewTrial {
                number,
                group: self.group,
                method: self.method,
                point,
                seed,
                phase: self.phase.parse().map_err(|e| unreadable(id, "phase", e))?,
                config,
            },
            state: self.state.parse().map_err(|e| unreadable(id, "state", e))?,
            worker: self.worker,
            retry: self.retry,
            attempts: self.attempts,
            started_at: self.started_at,
            finished_at: self.finished_at,
            summary: optional_json(id, "summary", self.summary.as_deref())?,
            message: self.message,
            histogram: optional_json(id, "histogram", self.histogram.as_deref())?,
            heartbeat_age: self.heartbeat_age,
        })
    }
}

fn unreadable(trial: i64, column: &str, e: impl std::fmt::Display) -> String {
    format!("the trial with id {trial}: column {column} does not read: {e}")
}

fn optional_json<T: DeserializeOwned>(
    trial: i64,
    column: &str,
    text: Option<&str>,
) -> Result<Option<T>, String> {
    text.map(serde_json::from_str)
        .transpose()
        .map_err(|e| unreadable(trial, column, e))
}

/// Whether `worker` may write to `trial`, given the trial's row (`state`, `worker`) or `None`
/// when there is none; `action` completes the refusal ("... so worker W cannot `action`").
pub(super) fn check_holder<E>(
    trial: i64,
    row: Option<(String, Option<String>)>,
    worker: &Worker,
    action: &str,
) -> Result<(), Failure<E>> {
    let finished = |state: &str| state.parse().is_ok_and(TrialState::is_finished);
    let problem = match row {
        None => "does not exist".to_string(),
        Some((state, _)) if finished(&state) => format!("is already {state}"),
        Some((state, _)) if state != "running" => format!("is {state}, not running"),
        Some((_, holder)) if holder.as_deref() != Some(worker.name.as_str()) => {
            format!("is held by worker {}", holder.unwrap_or_default())
        }
        Some(_) => return Ok(()),
    };
    Err(Failure::Trial {
        trial,
        message: format!("{problem}, so worker {} cannot {action}", worker.name),
    })
}

/// An epoch's metrics as stored: the epoch number and the JSON.
pub(super) fn epoch_row<E>(
    trial: i64,
    metrics: &EpochMetrics,
) -> Result<(i64, String), Failure<E>> {
    let json = to_json(metrics).map_err(|e| Failure::Trial {
        trial,
        message: format!(
            "the metrics of epoch {} cannot be stored: {e}",
            metrics.epoch
        ),
    })?;
    let epoch = sql_int(metrics.epoch, "the epoch").map_err(Failure::Data)?;
    Ok((epoch, json))
}

/// An epoch's metrics read back from its JSON.
pub(super) fn read_epoch<E>(
    trial: i64,
    epoch: i64,
    json: &str,
) -> Result<EpochMetrics, Failure<E>> {
    serde_json::from_str(json).map_err(|e| {
        Failure::Data(format!(
            "the trial with id {trial}, epoch {epoch}: column metrics does not read: {e}"
        ))
    })
}

/// The stored summary and histogram JSON of a trial's end, after checking that `outcome`
/// ends a trial.
pub(super) fn outcome_columns<E>(
    trial: i64,
    outcome: &Outcome,
) -> Result<(Option<String>, Option<String>), Failure<E>> {
    let refuse = |message: String| Failure::Trial { trial, message };
    if !outcome.state.is_finished() {
        return Err(refuse(format!(
            "cannot end as {}: a trial ends done, failed or diverged",
            outcome.state
        )));
    }
    let summary = outcome.summary.as_ref().map(to_json).transpose();
    let summary = summary.map_err(|e| refuse(format!("its summary cannot be stored: {e}")))?;
    let histogram = outcome.histogram.as_ref().map(to_json).transpose();
    let histogram =
        histogram.map_err(|e| refuse(format!("its histogram cannot be stored: {e}")))?;
    Ok((summary, histogram))
}

/// The latest attempts to retry: those in `numbers`, each of which must have failed, or
/// every failed one when `numbers` is empty.
pub(super) fn attempts_to_retry<'a, E>(
    latest: &'a [LatestAttempt],
    study: &str,
    numbers: &[usize],
) -> Result<Vec<&'a LatestAttempt>, Failure<E>> {
    if numbers.is_empty() {
        return Ok(latest
            .iter()
            .filter(|(_, _, state)| state == "failed")
            .collect());
    }
    numbers
        .iter()
        .map(|&n| {
            retryable(latest, n).map_err(|problem| Failure::Retry {
                study: study.into(),
                number: n,
                problem,
            })
        })
        .collect()
}

/// One attempt of a copied study, as its row is written: every column by value.
pub(super) struct ImportedAttempt {
    /// The attempt's id in the store copied from.
    pub source_id: i64,
    pub number: i64,
    pub retry: i64,
    pub group: String,
    pub method: String,
    pub point: String,
    pub seed: i64,
    pub config: String,
    pub phase: &'static str,
    /// `done`, `failed` or `diverged` for a finished attempt, else `None`: it arrives waiting.
    pub finished: Option<&'static str>,
    pub worker: Option<String>,
    pub attempts: i64,
    pub started_at: Option<f64>,
    pub finished_at: Option<f64>,
    pub summary: Option<String>,
    pub message: Option<String>,
    pub histogram: Option<String>,
    /// `(epoch, metrics JSON)`.
    pub epochs: Vec<(i64, String)>,
}

/// The rows of a copied study, in the order they can be written: by number, then attempt,
/// so that each retry follows its failed attempt.
pub(super) fn imported_attempts(copy: &StudyCopy) -> Result<Vec<ImportedAttempt>, String> {
    let mut rows = Vec::with_capacity(copy.attempts.len());
    for (t, epochs) in &copy.attempts {
        let at = |e: String| format!("trial {} attempt {}: {e}", t.trial.number, t.retry);
        let finished = t.state.is_finished().then_some(t.state.as_str());
        rows.push(ImportedAttempt {
            source_id: t.id,
            number: sql_int(t.trial.number, "the trial number").map_err(at)?,
            retry: i64::from(t.retry),
            group: t.trial.group.clone(),
            method: t.trial.method.clone(),
            point: to_json(&t.trial.point).map_err(at)?,
            seed: sql_int(t.trial.seed, "the seed").map_err(at)?,
            config: config_to_toml(&t.trial.config).map_err(at)?,
            phase: t.trial.phase.as_str(),
            finished,
            worker: finished.and(t.worker.clone()),
            attempts: i64::from(t.attempts),
            started_at: finished.and(t.started_at),
            finished_at: t.finished_at,
            summary: t.summary.as_ref().map(to_json).transpose().map_err(at)?,
            message: t.message.clone(),
            histogram: t.histogram.as_ref().map(to_json).transpose().map_err(at)?,
            epochs: epochs
                .iter()
                .map(|m| Ok((sql_int(m.epoch, "the epoch")?, to_json(m)?)))
                .collect::<Result<_, String>>()
                .map_err(at)?,
        });
    }
    rows.sort_by_key(|r| (r.number, r.retry));
    Ok(rows)
}

/// The ids a copied study's attempts got in the store written to, by their ids in the store
/// copied from and by (number, attempt).
#[derive(Default)]
pub(super) struct ImportedIds {
    by_source: std::collections::HashMap<i64, i64>,
    by_attempt: std::collections::HashMap<(i64, i64), i64>,
}

impl ImportedIds {
    pub(super) fn insert(&mut self, row: &ImportedAttempt, id: i64) {
        self.by_source.insert(row.source_id, id);
        self.by_attempt.insert((row.number, row.retry), id);
    }

    /// The new id of the attempt that `row` retries (`None` for a first attempt).
    pub(super) fn retry_of(&self, row: &ImportedAttempt) -> Result<Option<i64>, String> {
        if row.retry == 0 {
            return Ok(None);
        }
        self.by_attempt
            .get(&(row.number, row.retry - 1))
            .copied()
            .map(Some)
            .ok_or_else(|| {
                format!(
                    "trial {} attempt {} retries an attempt the copy does not have",
                    row.number, row.retry
                )
            })
    }

    /// The new id of the attempt whose id was `source`.
    pub(super) fn of(&self, source: i64) -> Result<i64, String> {
        self.by_source
            .get(&source)
            .copied()
            .ok_or_else(|| format!("a claim of trial id {source}, which the copy does not have"))
    }
}
