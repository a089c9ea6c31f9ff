//! Where studies live: the [`Store`] trait, with a SQLite store (one machine, the default)
//! and a PostgreSQL store (many machines).
//!
//! The split follows Optuna's: a *study* is a named set of trials, a *trial* one run of the
//! training with fixed settings, and the *storage* is all that workers share. Any number of
//! workers (threads or processes, on one machine) open the same store; each claims a waiting
//! trial atomically, keeps a heartbeat while it trains, and records the trial's epochs and
//! outcome. A trial whose worker stopped beating (killed, crashed, machine lost) goes back to
//! the waiting trials and is claimed again. Finished trials are immutable: a failed trial is
//! retried as a new attempt (a new row after the failed one), and the study's results read
//! the latest attempt of each trial.

#[cfg(test)]
pub(crate) mod contract;
mod postgres;
mod postgres_url;
mod rows;
mod sqlite;
mod worker;

use crate::regularize::WeightHistogram;
use crate::train::{EpochMetrics, Summary};
use crate::trial::{NewTrial, StudyRecord, TrialRecord, TrialState};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// One claim of a trial by a worker: the audit trail's entry.
#[derive(Clone, Debug, PartialEq)]
pub struct Claim {
    pub trial: i64,
    pub worker: String,
    /// Unix seconds.
    pub at: f64,
    /// Where the claim's training began; `None` when it never began (the worker died or
    /// was stopped first, or took a run that had already ended as it was).
    pub start: Option<TrainingStart>,
}

/// Where a claim's training began: from an earlier claim's checkpoint, or from epoch 0,
/// and why. A trial taken over on a machine that cannot see the earlier worker's run folder
/// restarts from epoch 0, and its record says so.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TrainingStart {
    /// Epochs done before the claim's first: those of the checkpoint it continued from,
    /// 0 when it trained from scratch.
    pub from_epoch: usize,
    /// Epochs that earlier claims had recorded and this one trains again (0 when it
    /// continued from a checkpoint).
    pub discarded_epochs: usize,
    pub reason: StartReason,
}

/// Why a claim's training began where it did ([`TrainingStart`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StartReason {
    /// No earlier claim of this attempt left anything: its first start.
    First,
    /// Continued from the checkpoint in the run folder.
    Checkpoint,
    /// An earlier claim trained, but its run folder holds no checkpoint here: the folder is
    /// on storage this machine does not see, or the earlier worker died before its first.
    NoCheckpoint,
    /// The checkpoint could not be read (torn by a kill).
    UnreadableCheckpoint,
    /// The run folder holds a run whose settings the trial's no longer match.
    FolderNotResumable,
}

impl StartReason {
    /// The name stored in the `starts` table.
    pub fn as_str(self) -> &'static str {
        match self {
            StartReason::First => "first",
            StartReason::Checkpoint => "checkpoint",
            StartReason::NoCheckpoint => "no-checkpoint",
            StartReason::UnreadableCheckpoint => "unreadable-checkpoint",
            StartReason::FolderNotResumable => "folder-not-resumable",
        }
    }
}

impl std::str::FromStr for StartReason {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "first" => StartReason::First,
            "checkpoint" => StartReason::Checkpoint,
            "no-checkpoint" => StartReason::NoCheckpoint,
            "unreadable-checkpoint" => StartReason::UnreadableCheckpoint,
            "folder-not-resumable" => StartReason::FolderNotResumable,
            other => return Err(format!("`{other}` is not a reason a training started")),
        })
    }
}

/// `continued from epoch 3`, `restarted from epoch 0 (no checkpoint visible; 2 recorded
/// epochs trained again)`, `started`.
impl std::fmt::Display for TrainingStart {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let why = match self.reason {
            StartReason::First => return write!(f, "started"),
            StartReason::Checkpoint => {
                return write!(f, "continued from epoch {}", self.from_epoch)
            }
            StartReason::NoCheckpoint => "no checkpoint visible",
            StartReason::UnreadableCheckpoint => "the checkpoint could not be read",
            StartReason::FolderNotResumable => "the run folder holds other settings",
        };
        write!(f, "restarted from epoch 0 ({why}")?;
        match self.discarded_epochs {
            0 => write!(f, ")"),
            1 => write!(f, "; 1 recorded epoch trained again)"),
            n => write!(f, "; {n} recorded epochs trained again)"),
        }
    }
}

/// A whole study as one store hands it to another ([`copy_study`]): the study, every
/// attempt at every trial (by number and attempt) with its epochs, and the claims.
#[derive(Clone, Debug, PartialEq)]
pub struct StudyCopy {
    pub study: StudyRecord,
    pub attempts: Vec<(TrialRecord, Vec<EpochMetrics>)>,
    /// Oldest first; `trial` is the attempt's id in the store copied from.
    pub claims: Vec<Claim>,
}

/// Copies study `name` from `from` to `to`, which must not have a study of that name: to
/// start a study on one machine with SQLite and continue it on a cluster with PostgreSQL, or
/// to keep a finished study. Finished attempts arrive as they were; a waiting or running one
/// arrives waiting, with its epochs, and is continued by the next worker on `to`.
pub fn copy_study(from: &dyn Store, to: &dyn Store, name: &str) -> Result<StudyCopy, StoreError> {
    let study = from.study(name)?;
    let attempts = from
        .history(name)?
        .into_iter()
        .map(|t| {
            let epochs = from.epochs(t.id)?;
            Ok((t, epochs))
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    let copy = StudyCopy {
        study,
        attempts,
        claims: from.claims(name)?,
    };
    to.import(&copy)?;
    Ok(copy)
}

/// What [`Store::create_study`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Created {
    /// The study is new; its trials were added.
    New,
    /// The study existed with the same spec text: nothing changed, the run resumes it.
    Existing,
}

/// Which store this is: its random identity, kept in the store, and where it was opened
/// from (for messages). Run folders record the identity of the store that owns them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreIdentity {
    pub id: String,
    pub location: String,
}

/// A store's failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "no store at {}: check the path, or name the store with --store FILE (or \
         $REGSTUDY_STORE)",
        path.display()
    )]
    Missing { path: PathBuf },
    #[error("store {path}: {message}")]
    Database { path: PathBuf, message: String },
    #[error(
        "study `{study}` already exists in {path} with a different spec; give the study \
         another name, or use another store"
    )]
    SpecChanged { study: String, path: PathBuf },
    #[error("no study `{study}` in {path}{hint}")]
    NoStudy {
        study: String,
        path: PathBuf,
        /// ` (it has: a, b)` or empty.
        hint: String,
    },
    /// A study copied into a store that has one of its name.
    #[error("study `{study}` already exists in {path}; copy it into another store")]
    Exists { study: String, path: PathBuf },
    /// A write to a finished trial, or to a trial held by another worker.
    #[error("the trial with id {trial}: {message}")]
    Trial { trial: i64, message: String },
    /// A trial that cannot be retried, by its number.
    #[error("study `{study}`, trial {number}: cannot retry it: {problem}")]
    Retry {
        study: String,
        number: usize,
        problem: String,
    },
}

/// The storage of studies. Implementations must be safe to share between threads and to
/// open from several processes at once.
pub trait Store: Send + Sync {
    /// Creates the study with its trials, or, when a study of that name already exists with
    /// the same spec text, leaves it as it is. A different spec under the same name is an
    /// error ([`StoreError::SpecChanged`]): finished trials must keep meaning what they meant.
    fn create_study(&self, study: &StudyRecord, trials: &[NewTrial])
        -> Result<Created, StoreError>;

    /// Adds the trials whose number the study does not have yet (those it has are left as
    /// they are), atomically; returns how many were added. Confirmation trials are added
    /// this way once their method's search has ended: every worker that sees the search
    /// end computes the same trials under the same numbers, so adding them twice is
    /// harmless.
    fn add_trials(&self, study: &str, trials: &[NewTrial]) -> Result<usize, StoreError>;

    /// All studies, by name.
    fn studies(&self) -> Result<Vec<StudyRecord>, StoreError>;

    /// The study called `name` ([`StoreError::NoStudy`] if there is none).
    fn study(&self, name: &str) -> Result<StudyRecord, StoreError>;

    /// Atomically takes the first waiting trial of the study (lowest number), or a running
    /// one whose worker is dead (its process is gone from this host, or its heartbeat is
    /// older than `stale_after`), marks it running for `worker`, counts the attempt, and
    /// returns it. `None` when no trial is left to claim.
    fn claim(
        &self,
        study: &str,
        worker: &Worker,
        stale_after: Duration,
    ) -> Result<Option<TrialRecord>, StoreError>;

    /// Refreshes the heartbeat of every trial `worker` holds.
    fn heartbeat(&self, worker: &Worker) -> Result<(), StoreError>;

    /// Records (or, after a resumed attempt, replaces) one epoch's metrics of a running
    /// trial held by `worker`.
    fn record_epoch(
        &self,
        trial: i64,
        worker: &Worker,
        metrics: &EpochMetrics,
    ) -> Result<(), StoreError>;

    /// Forgets the recorded epochs of a running trial held by `worker`, before it starts
    /// again from scratch (an earlier attempt's epochs would otherwise outlive it).
    fn reset_epochs(&self, trial: i64, worker: &Worker) -> Result<(), StoreError>;

    /// Records where the training of `worker`'s claim of a running trial began, beside the
    /// claim in the audit trail (once per claim). Fails ([`StoreError::Trial`]) if the trial
    /// is not running or is held by another worker.
    fn record_start(
        &self,
        trial: i64,
        worker: &Worker,
        start: &TrainingStart,
    ) -> Result<(), StoreError>;

    /// Gives a running trial held by `worker` back to the waiting trials, keeping its epochs
    /// (they match the checkpoint its run folder holds), so that the next claim continues
    /// it: what a worker told to stop (SIGTERM) does with its trial. The claim it gives back
    /// does not count among the trial's attempts. Fails ([`StoreError::Trial`]) if the trial
    /// is not running or is held by another worker.
    fn release(&self, trial: i64, worker: &Worker) -> Result<(), StoreError>;

    /// Ends a running trial held by `worker`: `state` is `Done`, `Failed` or `Diverged`.
    /// Fails ([`StoreError::Trial`]) if the trial is finished or held by another worker.
    fn finish(&self, trial: i64, worker: &Worker, outcome: &Outcome) -> Result<(), StoreError>;

    /// Every trial of the study, by number: of a retried trial, its latest attempt only
    /// (what the study's results are made of).
    fn trials(&self, study: &str) -> Result<Vec<TrialRecord>, StoreError>;

    /// Every attempt at every trial of the study, by number and attempt: the retried
    /// failures too.
    fn history(&self, study: &str) -> Result<Vec<TrialRecord>, StoreError>;

    /// Gives each trial in `numbers` (every failed trial when empty) a new attempt, waiting
    /// to be claimed, after its failed latest attempt; returns the numbers retried. The
    /// failed attempt stays in the store as it was, with its message, epochs and claims.
    /// Fails ([`StoreError::Retry`]) for a number that is not a trial or whose latest
    /// attempt did not fail, and then retries none.
    fn retry(&self, study: &str, numbers: &[usize]) -> Result<Vec<usize>, StoreError>;

    /// Writes a study copied from another store ([`copy_study`]) as it was: finished
    /// attempts with their results, epochs and claims; a waiting or running attempt as
    /// waiting, with its epochs. Fails ([`StoreError::Exists`]) if the store has a study of
    /// that name, and then writes nothing.
    fn import(&self, copy: &StudyCopy) -> Result<(), StoreError>;

    /// The store's identity.
    fn identity(&self) -> StoreIdentity;

    /// The recorded epochs of a trial, by epoch.
    fn epochs(&self, trial: i64) -> Result<Vec<EpochMetrics>, StoreError>;

    /// How many trials of the study are in each state (every state present, zeros included),
    /// counting the latest attempt of each.
    fn counts(&self, study: &str) -> Result<BTreeMap<TrialState, usize>, StoreError>;

    /// Every claim ever made in the study, oldest first, with where its training began:
    /// the audit trail that shows no finished trial was run twice, and every takeover.
    fn claims(&self, study: &str) -> Result<Vec<Claim>, StoreError>;
}

/// How a trial ended.
#[derive(Clone, Debug, PartialEq)]
pub struct Outcome {
    pub state: TrialState,
    pub summary: Option<Summary>,
    pub message: Option<String>,
    pub histogram: Option<WeightHistogram>,
}

pub use self::postgres::{OpenMode, PostgresStore};
pub use postgres_url::{PostgresUrl, SslMode, UrlError};
pub use sqlite::SqliteStore;
pub(crate) use worker::Holder;
pub use worker::Worker;

/// Opens the store at `location`, creating it if absent: a `postgres://` (or
/// `postgresql://`) URL, a path to a SQLite file, or a `sqlite://PATH` URL.
pub fn open(location: &str) -> Result<Box<dyn Store>, StoreError> {
    if postgres_url::is_postgres(location) {
        return Ok(Box::new(PostgresStore::open(
            postgres_url(location)?,
            OpenMode::Create,
        )?));
    }
    Ok(Box::new(SqliteStore::open(sqlite_path(location)?)?))
}

/// Opens an existing store at `location` (as [`open`]) for commands that only read it
/// (`study status`, `report`, `export`): read-only, so nothing is created or changed, and a
/// store on a read-only filesystem can be read. A missing store is an error.
pub fn open_existing(location: &str) -> Result<Box<dyn Store>, StoreError> {
    if postgres_url::is_postgres(location) {
        return Ok(Box::new(PostgresStore::open(
            postgres_url(location)?,
            OpenMode::ReadOnly,
        )?));
    }
    Ok(Box::new(SqliteStore::open_read_only(sqlite_path(
        location,
    )?)?))
}

/// Opens an existing store at `location` to change it (`study retry`): as [`open`], but a
/// missing store is an error rather than created.
pub fn open_existing_writable(location: &str) -> Result<Box<dyn Store>, StoreError> {
    if postgres_url::is_postgres(location) {
        return Ok(Box::new(PostgresStore::open(
            postgres_url(location)?,
            OpenMode::Existing,
        )?));
    }
    let path = sqlite_path(location)?;
    if !path.exists() {
        return Err(StoreError::Missing {
            path: path.to_path_buf(),
        });
    }
    Ok(Box::new(SqliteStore::open(path)?))
}

/// The PostgreSQL URL `location`, with the password from `$PGPASSWORD` when it has none.
fn postgres_url(location: &str) -> Result<PostgresUrl, StoreError> {
    PostgresUrl::parse(location, std::env::var("PGPASSWORD").ok()).map_err(|e| {
        StoreError::Database {
            path: PathBuf::from(e.url),
            message: e.problem,
        }
    })
}

/// The SQLite file named by `location`: a path, or a `sqlite://PATH` URL.
fn sqlite_path(location: &str) -> Result<&std::path::Path, StoreError> {
    let path = match location.split_once("://") {
        Some(("sqlite", path)) => path,
        Some(_) => {
            return Err(StoreError::Database {
                path: PathBuf::from(postgres_url::redact(location)),
                message: "unknown kind of store: give a SQLite file's path, a sqlite://PATH URL \
                     or a postgres://USER@HOST[:PORT]/DB URL"
                    .into(),
            })
        }
        None => location,
    };
    if path.is_empty() {
        return Err(StoreError::Database {
            path: PathBuf::from(location),
            message: "the store's path is empty".into(),
        });
    }
    Ok(std::path::Path::new(path))
}
