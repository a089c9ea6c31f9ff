//! The SQLite store: one file that any number of threads and processes on one machine share.
//!
//! Concurrency rests on SQLite's own locking. Every change that reads before it writes runs in
//! an IMMEDIATE transaction, which takes the database's write lock when it begins, so two
//! workers can never both see a trial as claimable; the busy timeout makes the others wait for
//! the lock instead of failing. WAL journal mode lets readers (a report) run beside a writer.
//!
//! Finished trials are made immutable by triggers in the database, not only by this code, so
//! that neither a bug nor hand-typed SQL can change a result after the fact.

use super::rows::{
    self, config_to_toml, imported_attempts, sql_int, study_hint, to_json, trial_columns, SqlError,
    StoredTrial, CLAIM_COLUMNS, LATEST, START_REASONS,
};
use super::{
    Claim, Created, Holder, Outcome, Store, StoreError, StoreIdentity, StudyCopy, TrainingStart,
    Worker,
};
use crate::train::EpochMetrics;
use crate::trial::{NewTrial, StudyRecord, TrialRecord, TrialState};
use rusqlite::{
    params, Connection, ErrorCode, OpenFlags, OptionalExtension, Row, TransactionBehavior,
};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The schema this code reads and writes, kept in `PRAGMA user_version`.
const SCHEMA_VERSION: i64 = 4;

/// Marks a SQLite file as a regstudy store (`PRAGMA application_id`, "RegS"), so that
/// another program's database is told apart before anything in it is changed. Stores of
/// schema versions 1 and 2 predate it and are recognized by their tables.
const APPLICATION_ID: i64 = 0x5265_6753;

/// Steps that bring a store of an older schema version to the next one; entry `k` upgrades
/// version `k + 1`. Each runs inside the transaction that opens the store.
const MIGRATIONS: [fn(&Connection) -> rusqlite::Result<()>; 3] = [
    add_trial_phases,
    add_retries_and_identity,
    add_starts_and_pruning,
];

/// Version 1 had no trial phases: its trials are search trials (a study without
/// confirmation seeds reports the chosen point's search trials).
fn add_trial_phases(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute_batch(
        "ALTER TABLE trials ADD COLUMN phase TEXT NOT NULL DEFAULT 'search' \
         CHECK (phase IN ('search', 'confirm'));",
    )
}

/// Version 2 kept one row per trial number, so a failed trial could never run again, and
/// had no identity for run folders to name. Its trials become the first attempts (retry 0)
/// of a table where a retry is a new row; SQLite cannot drop a UNIQUE constraint in place,
/// so the table is rebuilt (ids kept, so epochs and claims still point at their rows).
/// Foreign keys are off while this runs (see [`SqliteStore::open`]) and checked at the end.
fn add_retries_and_identity(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute_batch(&format!(
        "{DROP_TRIGGERS_V2}
         DROP INDEX trials_by_worker;
         CREATE TABLE trials_v3 {TRIALS_DEFINITION};
         INSERT INTO trials_v3 ({V2_TRIAL_COLUMNS}) SELECT {V2_TRIAL_COLUMNS} FROM trials;
         DROP TABLE trials;
         ALTER TABLE trials_v3 RENAME TO trials;
         {TRIAL_INDEXES}{TRIGGERS}{METADATA}{IDENTITY}"
    ))?;
    check_foreign_keys(conn)
}

/// Refuses an upgrade that left rows pointing at rows that do not exist.
fn check_foreign_keys(conn: &Connection) -> rusqlite::Result<()> {
    let dangling: i64 =
        conn.query_row("SELECT count(*) FROM pragma_foreign_key_check", [], |r| {
            r.get(0)
        })?;
    if dangling > 0 {
        return Err(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CONSTRAINT),
            Some(format!("{dangling} rows point at rows that do not exist")),
        ));
    }
    Ok(())
}

/// Version 3 had no `pruned` state and did not record where each claim's training began.
/// Its trials table is rebuilt with the state added (SQLite cannot change a CHECK
/// constraint in place; ids kept, so epochs and claims still point at their rows), and its
/// claims have no start.
fn add_starts_and_pruning(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute_batch(&format!(
        "{DROP_TRIGGERS_V2}
         DROP TRIGGER retries_follow_failed_attempts;
         DROP INDEX trials_by_worker;
         CREATE TABLE trials_v4 {TRIALS_DEFINITION};
         INSERT INTO trials_v4 ({V3_TRIAL_COLUMNS}) SELECT {V3_TRIAL_COLUMNS} FROM trials;
         DROP TABLE trials;
         ALTER TABLE trials_v4 RENAME TO trials;
         {TRIAL_INDEXES}{TRIGGERS}{}",
        starts_table()
    ))?;
    check_foreign_keys(conn)
}

/// The columns a version 3 trials table has, all kept by the upgrade.
const V3_TRIAL_COLUMNS: &str = "id, study, number, retry, retry_of, grp, method, point, seed, \
     config, phase, state, worker, worker_host, worker_pid, heartbeat, attempts, started_at, \
     finished_at, summary, message, histogram";

/// Where each claim's training began (see [`super::TrainingStart`]): at most one row per
/// claim, as append-only as the claims.
fn starts_table() -> String {
    format!(
        "CREATE TABLE starts (
    claim INTEGER PRIMARY KEY REFERENCES claims(id),
    from_epoch INTEGER NOT NULL CHECK (from_epoch >= 0),
    discarded INTEGER NOT NULL CHECK (discarded >= 0),
    reason TEXT NOT NULL CHECK (reason IN ({START_REASONS}))
);
CREATE TRIGGER starts_do_not_change BEFORE UPDATE ON starts
BEGIN SELECT RAISE(ABORT, 'the claims are an append-only record'); END;
CREATE TRIGGER starts_stay BEFORE DELETE ON starts
BEGIN SELECT RAISE(ABORT, 'the claims are an append-only record'); END;
"
    )
}

/// The triggers of schema versions 1 and 2, replaced by [`TRIGGERS`] (version 3 added
/// `retries_follow_failed_attempts`).
const DROP_TRIGGERS_V2: &str = "
DROP TRIGGER finished_trials_do_not_change;
DROP TRIGGER finished_trials_stay;
DROP TRIGGER finished_epochs_get_none_added;
DROP TRIGGER finished_epochs_do_not_change;
DROP TRIGGER finished_epochs_stay;
DROP TRIGGER claims_do_not_change;
DROP TRIGGER claims_stay;
";

/// The columns a version 2 trials table has, all kept by the upgrade.
const V2_TRIAL_COLUMNS: &str = "id, study, number, grp, method, point, seed, config, phase, \
     state, worker, worker_host, worker_pid, heartbeat, attempts, started_at, finished_at, \
     summary, message, histogram";

/// How long a worker waits for another's write lock before it gives up. Transactions here
/// last milliseconds, so 30 s is only ever reached when something is truly stuck.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// The trials table. A trial is identified by its study and number; each attempt at it is
/// a row: the first has `retry` 0, and a retry of a failed attempt is a new row with the
/// next `retry` and `retry_of` naming the failed row, which stays as it was (finished rows
/// never change). The latest attempt of a number is the trial's current state.
const TRIALS_DEFINITION: &str = "(
    id INTEGER PRIMARY KEY,
    study TEXT NOT NULL REFERENCES studies(name),
    number INTEGER NOT NULL,
    retry INTEGER NOT NULL DEFAULT 0 CHECK (retry >= 0),
    retry_of INTEGER UNIQUE REFERENCES trials(id),
    grp TEXT NOT NULL,
    method TEXT NOT NULL,
    point TEXT NOT NULL,
    seed INTEGER NOT NULL,
    config TEXT NOT NULL,
    phase TEXT NOT NULL DEFAULT 'search' CHECK (phase IN ('search', 'confirm')),
    state TEXT NOT NULL
        CHECK (state IN ('waiting', 'running', 'done', 'failed', 'diverged', 'pruned')),
    worker TEXT,
    worker_host TEXT,
    worker_pid INTEGER,
    heartbeat REAL,
    attempts INTEGER NOT NULL DEFAULT 0,
    started_at REAL,
    finished_at REAL,
    summary TEXT,
    message TEXT,
    histogram TEXT,
    UNIQUE (study, number, retry),
    CHECK ((retry = 0) = (retry_of IS NULL))
)";

const TRIAL_INDEXES: &str = "
CREATE INDEX trials_by_worker ON trials(worker, state);
";

/// The other tables. `point`, `summary`, `histogram` and `metrics` hold JSON, `config` the
/// TOML of the trial's `RunConfig`; times are unix seconds. `metadata` holds `store_id`, a
/// random identity that run folders record as their owner.
const TABLES: &str = "
CREATE TABLE studies (
    name TEXT PRIMARY KEY,
    spec TEXT NOT NULL,
    created_at REAL NOT NULL,
    version TEXT NOT NULL
);
CREATE TABLE epochs (
    trial INTEGER NOT NULL REFERENCES trials(id),
    epoch INTEGER NOT NULL,
    metrics TEXT NOT NULL,
    PRIMARY KEY (trial, epoch)
) WITHOUT ROWID;
CREATE TABLE claims (
    id INTEGER PRIMARY KEY,
    trial INTEGER NOT NULL REFERENCES trials(id),
    worker TEXT NOT NULL,
    at REAL NOT NULL
);
CREATE INDEX claims_by_trial ON claims(trial);
";

const METADATA: &str = "
CREATE TABLE metadata (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
";

/// The store's identity, given once when it is created (or upgraded to version 3).
const IDENTITY: &str = "
INSERT INTO metadata (key, value) VALUES ('store_id', lower(hex(randomblob(16))));
PRAGMA application_id = 1382377299;
";

/// The triggers that keep finished trials, their epochs and the claim record as they were
/// written, and let a retry only follow a failed attempt of the same trial.
const TRIGGERS: &str = "
CREATE TRIGGER finished_trials_do_not_change BEFORE UPDATE ON trials
WHEN OLD.state IN ('done', 'failed', 'diverged', 'pruned')
BEGIN SELECT RAISE(ABORT, 'a finished trial cannot change'); END;
CREATE TRIGGER finished_trials_stay BEFORE DELETE ON trials
WHEN OLD.state IN ('done', 'failed', 'diverged', 'pruned')
BEGIN SELECT RAISE(ABORT, 'a finished trial cannot be deleted'); END;
CREATE TRIGGER retries_follow_failed_attempts BEFORE INSERT ON trials
WHEN NEW.retry_of IS NOT NULL AND NOT EXISTS (
    SELECT 1 FROM trials WHERE id = NEW.retry_of AND state = 'failed'
        AND study = NEW.study AND number = NEW.number AND retry = NEW.retry - 1)
BEGIN SELECT RAISE(ABORT, 'a retry follows a failed attempt of the same trial'); END;
CREATE TRIGGER finished_epochs_get_none_added BEFORE INSERT ON epochs
WHEN (SELECT state FROM trials WHERE id = NEW.trial) IN ('done', 'failed', 'diverged', 'pruned')
BEGIN SELECT RAISE(ABORT, 'the epochs of a finished trial cannot change'); END;
CREATE TRIGGER finished_epochs_do_not_change BEFORE UPDATE ON epochs
WHEN (SELECT state FROM trials WHERE id = OLD.trial) IN ('done', 'failed', 'diverged', 'pruned')
  OR (SELECT state FROM trials WHERE id = NEW.trial) IN ('done', 'failed', 'diverged', 'pruned')
BEGIN SELECT RAISE(ABORT, 'the epochs of a finished trial cannot change'); END;
CREATE TRIGGER finished_epochs_stay BEFORE DELETE ON epochs
WHEN (SELECT state FROM trials WHERE id = OLD.trial) IN ('done', 'failed', 'diverged', 'pruned')
BEGIN SELECT RAISE(ABORT, 'the epochs of a finished trial cannot change'); END;
CREATE TRIGGER claims_do_not_change BEFORE UPDATE ON claims
BEGIN SELECT RAISE(ABORT, 'the claims are an append-only record'); END;
CREATE TRIGGER claims_stay BEFORE DELETE ON claims
BEGIN SELECT RAISE(ABORT, 'the claims are an append-only record'); END;
";

/// The whole schema of a new store.
fn schema() -> String {
    format!(
        "{TABLES}CREATE TABLE trials {TRIALS_DEFINITION};{TRIAL_INDEXES}{TRIGGERS}{METADATA}\
         {IDENTITY}{}",
        starts_table()
    )
}

/// A store in one SQLite file. The connection sits behind a mutex, so that one store object
/// can serve every thread of a process; processes each open their own.
pub struct SqliteStore {
    path: PathBuf,
    /// The random identity kept in the store's `metadata` table.
    id: String,
    conn: Mutex<Connection>,
}

impl SqliteStore {
    /// Opens the store at `path` for reading and writing, creating the file, its folder and
    /// the schema if absent, and upgrading an older schema in place. A file that is not a
    /// regstudy store, or a damaged store, is refused before anything in it changes.
    pub fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        let fail = |f: Failure| f.into_error(path, || "opening the store".into());
        if let FileKind::Store { conn, .. } = inspect(path, Locking::Shared).map_err(fail)? {
            drop(conn);
        }
        create_folder(path).map_err(fail)?;
        let mut conn = Connection::open(path).map_err(|e| fail(e.into()))?;
        configure(&conn).map_err(fail)?;
        prepare_schema(&mut conn).map_err(fail)?;
        conn.execute_batch("PRAGMA foreign_keys = ON;")
            .map_err(|e| fail(e.into()))?;
        let id = store_id(&conn).map_err(fail)?;
        Ok(SqliteStore {
            path: path.to_path_buf(),
            id,
            conn: Mutex::new(conn),
        })
    }

    /// Opens the existing store at `path` only to read it: nothing is created (no file, no
    /// folder, no `-wal` or `-shm` beside an idle store), no schema is upgraded, and the
    /// store may sit on a read-only filesystem. A missing file, another program's file, a
    /// damaged store, and a store of an older schema (upgraded only by a command that
    /// writes) are refused.
    pub fn open_read_only(path: &Path) -> Result<SqliteStore, StoreError> {
        let fail = |f: Failure| f.into_error(path, || "opening the store".into());
        let conn = match inspect(path, Locking::NoneWhenIdle).map_err(fail)? {
            FileKind::Absent => {
                return Err(StoreError::Missing {
                    path: path.to_path_buf(),
                })
            }
            FileKind::Empty => return Err(fail(Failure::Data(EMPTY_FILE.into()))),
            FileKind::Store { version, .. } if version < SCHEMA_VERSION => {
                return Err(fail(Failure::Data(format!(
                    "the store has schema version {version}; this regstudy ({}) upgrades it \
                     in place to version {SCHEMA_VERSION} when it writes to it: run \
                     `regstudy study run` (or `regstudy study retry`) on it once, then repeat \
                     this command",
                    env!("CARGO_PKG_VERSION")
                ))))
            }
            FileKind::Store { conn, .. } => conn,
        };
        let id = store_id(&conn).map_err(fail)?;
        Ok(SqliteStore {
            path: path.to_path_buf(),
            id,
            conn: Mutex::new(conn),
        })
    }

    /// Runs `work` on the connection; `what` says, for an error, what was being done.
    fn run<T>(
        &self,
        what: impl FnOnce() -> String,
        work: impl FnOnce(&mut Connection) -> Result<T, Failure>,
    ) -> Result<T, StoreError> {
        // A thread that panicked while holding the lock dropped its transaction on the way
        // out, which rolled it back: the connection is as good as before, so poisoning is
        // ignored rather than turned into a failure of every later call.
        let mut conn = self.conn.lock().unwrap_or_else(PoisonError::into_inner);
        work(&mut conn).map_err(|f| f.into_error(&self.path, what))
    }
}

impl Store for SqliteStore {
    fn create_study(
        &self,
        study: &StudyRecord,
        trials: &[NewTrial],
    ) -> Result<Created, StoreError> {
        self.run(
            || format!("creating study `{}`", study.name),
            |conn| create_study(conn, study, trials),
        )
    }

    fn add_trials(&self, study: &str, trials: &[NewTrial]) -> Result<usize, StoreError> {
        self.run(
            || format!("adding trials to study `{study}`"),
            |conn| add_trials(conn, study, trials),
        )
    }

    fn studies(&self) -> Result<Vec<StudyRecord>, StoreError> {
        self.run(|| "listing the studies".into(), |conn| studies(conn))
    }

    fn study(&self, name: &str) -> Result<StudyRecord, StoreError> {
        self.run(
            || format!("reading study `{name}`"),
            |conn| {
                let found = studies(conn)?.into_iter().find(|s| s.name == name);
                found.ok_or_else(|| no_study(conn, name))
            },
        )
    }

    /// Also sets `started_at` to now at every claim: it is when the current attempt began,
    /// so `finished_at - started_at` is the time of the attempt that finished.
    fn claim(
        &self,
        study: &str,
        worker: &Worker,
        stale_after: Duration,
    ) -> Result<Option<TrialRecord>, StoreError> {
        self.run(
            || format!("claiming a trial of study `{study}`"),
            |conn| claim(conn, study, worker, stale_after),
        )
    }

    fn heartbeat(&self, worker: &Worker) -> Result<(), StoreError> {
        self.run(
            || format!("refreshing the heartbeat of worker {}", worker.name),
            |conn| {
                conn.execute(
                    "UPDATE trials SET heartbeat = ?2 WHERE worker = ?1 AND state = 'running'",
                    params![worker.name, now()],
                )?;
                Ok(())
            },
        )
    }

    fn record_epoch(
        &self,
        trial: i64,
        worker: &Worker,
        metrics: &EpochMetrics,
    ) -> Result<(), StoreError> {
        self.run(
            || {
                format!(
                    "recording epoch {} of the trial with id {trial}",
                    metrics.epoch
                )
            },
            |conn| record_epoch(conn, trial, worker, metrics),
        )
    }

    fn reset_epochs(&self, trial: i64, worker: &Worker) -> Result<(), StoreError> {
        self.run(
            || format!("clearing the epochs of the trial with id {trial}"),
            |conn| reset_epochs(conn, trial, worker),
        )
    }

    fn record_start(
        &self,
        trial: i64,
        worker: &Worker,
        start: &TrainingStart,
    ) -> Result<(), StoreError> {
        self.run(
            || format!("recording where the trial with id {trial} began training"),
            |conn| record_start(conn, trial, worker, start),
        )
    }

    fn release(&self, trial: i64, worker: &Worker) -> Result<(), StoreError> {
        self.run(
            || format!("handing back the trial with id {trial}"),
            |conn| {
                let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
                check_holder(&tx, trial, worker, "hand it back")?;
                tx.execute(
                    "UPDATE trials SET state = 'waiting', worker = NULL, worker_host = NULL,
             worker_pid = NULL, heartbeat = NULL, attempts = attempts - 1
         WHERE id = ?1",
                    [trial],
                )?;
                tx.commit()?;
                Ok(())
            },
        )
    }

    fn finish(&self, trial: i64, worker: &Worker, outcome: &Outcome) -> Result<(), StoreError> {
        self.run(
            || format!("finishing the trial with id {trial}"),
            |conn| finish(conn, trial, worker, outcome),
        )
    }

    fn trials(&self, study: &str) -> Result<Vec<TrialRecord>, StoreError> {
        self.run(
            || format!("reading the trials of study `{study}`"),
            |conn| trials(conn, study, false),
        )
    }

    fn epochs(&self, trial: i64) -> Result<Vec<EpochMetrics>, StoreError> {
        self.run(
            || format!("reading the epochs of the trial with id {trial}"),
            |conn| epochs(conn, trial),
        )
    }

    fn counts(&self, study: &str) -> Result<BTreeMap<TrialState, usize>, StoreError> {
        self.run(
            || format!("counting the trials of study `{study}`"),
            |conn| counts(conn, study),
        )
    }

    fn claims(&self, study: &str) -> Result<Vec<Claim>, StoreError> {
        self.run(
            || format!("reading the claims of study `{study}`"),
            |conn| claims(conn, study),
        )
    }

    fn history(&self, study: &str) -> Result<Vec<TrialRecord>, StoreError> {
        self.run(
            || format!("reading every attempt of study `{study}`"),
            |conn| trials(conn, study, true),
        )
    }

    fn retry(&self, study: &str, numbers: &[usize]) -> Result<Vec<usize>, StoreError> {
        self.run(
            || format!("retrying failed trials of study `{study}`"),
            |conn| retry(conn, study, numbers),
        )
    }

    fn import(&self, copy: &StudyCopy) -> Result<(), StoreError> {
        self.run(
            || format!("copying study `{}` in", copy.study.name),
            |conn| import(conn, copy),
        )
    }

    fn identity(&self) -> StoreIdentity {
        StoreIdentity {
            id: self.id.clone(),
            location: self.path.display().to_string(),
        }
    }
}

/// SQLite's message, made plainer where SQLite's own says little.
impl SqlError for rusqlite::Error {
    fn describe(&self) -> String {
        match self.sqlite_error_code() {
            Some(ErrorCode::NotADatabase) => NOT_A_DATABASE.into(),
            _ => self.to_string(),
        }
    }
}

const NOT_A_DATABASE: &str = "the file is not a SQLite database (a regstudy store is one)";

const EMPTY_FILE: &str = "the file is empty: no study has been stored in it yet";

/// What a file given as a store holds.
enum FileKind {
    Absent,
    /// An empty file, or a SQLite database without tables: a store is created in it.
    Empty,
    /// A regstudy store of schema `version`, open read-only.
    Store {
        version: i64,
        conn: Connection,
    },
}

/// How a read-only connection takes part in SQLite's locking.
#[derive(Clone, Copy, PartialEq)]
enum Locking {
    /// As any reader: it waits for writers, and, on a file in WAL mode, SQLite creates the
    /// `-wal` and `-shm` files beside it if they are absent.
    Shared,
    /// When no `-wal` file is there (no connection has the store open), the file is read
    /// as immutable, which creates nothing beside it and works on a read-only filesystem.
    /// A store in WAL mode is only written through its `-wal` (its main file changes only
    /// when a checkpoint copies the `-wal` back), so a writer that starts meanwhile does
    /// not change what is being read unless it also finishes, which a study run does not
    /// do in the time a report reads.
    NoneWhenIdle,
}

/// Tells what the file at `path` is without changing it: absent, empty, a regstudy store
/// (checked for damage), or an error for anything else. Every open calls this first, so
/// another program's file is never switched to WAL mode or given tables.
fn inspect(path: &Path, locking: Locking) -> Result<FileKind, Failure> {
    let meta = match std::fs::metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(FileKind::Absent),
        Err(e) => return Err(Failure::Data(format!("cannot read it: {e}"))),
        Ok(meta) => meta,
    };
    if meta.is_dir() {
        return Err(Failure::Data(
            "it is a folder; give the store's file (a SQLite file), such as regstudy.db".into(),
        ));
    }
    if meta.len() == 0 {
        return Ok(FileKind::Empty);
    }
    check_header(path)?;
    let conn = open_read_only(path, locking)?;
    let version: i64 = conn.pragma_query_value(None, "user_version", |row| row.get(0))?;
    let application: i64 = conn.pragma_query_value(None, "application_id", |row| row.get(0))?;
    let tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")?
        .query_map([], |row| row.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let has = |name: &str| tables.iter().any(|t| t == name);
    let ours = match application {
        APPLICATION_ID => true,
        0 if version == 0 && tables.is_empty() => return Ok(FileKind::Empty),
        0 => (1..=2).contains(&version) && has("studies") && has("trials"),
        _ => false,
    };
    if !ours {
        return Err(Failure::Data(format!(
            "the file is a SQLite database but not a regstudy store (tables: {}); it was \
             left as it was",
            if tables.is_empty() {
                "none".to_string()
            } else {
                tables.join(", ")
            }
        )));
    }
    if version > SCHEMA_VERSION {
        return Err(Failure::Data(format!(
            "the file has store schema version {version}, but this regstudy ({}) reads \
             version {SCHEMA_VERSION}; a newer regstudy probably wrote it",
            env!("CARGO_PKG_VERSION")
        )));
    }
    check_integrity(&conn)?;
    Ok(FileKind::Store { version, conn })
}

/// A read-only connection to the database at `path` (see [`Locking`]).
fn open_read_only(path: &Path, locking: Locking) -> Result<Connection, Failure> {
    let idle = !sibling(path, "-wal").exists();
    let absolute = std::path::absolute(path)
        .map_err(|e| Failure::Data(format!("cannot resolve the path: {e}")))?;
    let mut uri = format!("file://{}?mode=ro", uri_path(&absolute));
    if locking == Locking::NoneWhenIdle && idle {
        uri.push_str("&immutable=1");
    }
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY
        | OpenFlags::SQLITE_OPEN_URI
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(uri, flags)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    Ok(conn)
}

/// `path` with `suffix` added to its file name (`store.db` and `-wal`: `store.db-wal`).
fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_os_string();
    name.push(suffix);
    PathBuf::from(name)
}

/// The path's bytes as a URI path: every byte but letters, digits and `/._-~` escaped, so
/// that `?`, `#`, `%` and bytes that are not UTF-8 keep their meaning.
fn uri_path(path: &Path) -> String {
    use std::os::unix::ffi::OsStrExt;
    let mut out = String::new();
    for &b in path.as_os_str().as_bytes() {
        if b.is_ascii_alphanumeric() || b"/._-~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// SQLite's quick check of the file's structure (pages, b-trees, record formats): a
/// damaged store would otherwise be read with rows silently missing.
fn check_integrity(conn: &Connection) -> Result<(), Failure> {
    let problems: Vec<String> = conn
        .prepare("PRAGMA quick_check(5)")?
        .query_map([], |row| row.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    if problems.len() == 1 && problems[0] == "ok" {
        return Ok(());
    }
    Err(Failure::Data(format!(
        "the store is damaged, and regstudy reads nothing from a damaged store; restore it \
         from a backup (SQLite's check says: {})",
        problems.join("; ")
    )))
}

/// The store's random identity, from its `metadata` table.
fn store_id(conn: &Connection) -> Result<String, Failure> {
    let id: Option<String> = conn
        .query_row(
            "SELECT value FROM metadata WHERE key = 'store_id'",
            [],
            |row| row.get(0),
        )
        .optional()?;
    id.ok_or_else(|| Failure::Data("the store has no `store_id` in its metadata table".into()))
}

/// Fails if the file is not empty and does not begin as a SQLite database does. SQLite
/// itself takes a file shorter than its header for an empty database and writes over it; a
/// file given by mistake must be left alone.
fn check_header(path: &Path) -> Result<(), Failure> {
    use std::io::Read;
    let mut header = Vec::with_capacity(16);
    std::fs::File::open(path)
        .and_then(|file| file.take(16).read_to_end(&mut header))
        .map_err(|e| Failure::Data(format!("cannot read it: {e}")))?;
    if header == b"SQLite format 3\0" {
        Ok(())
    } else {
        Err(Failure::Data(NOT_A_DATABASE.into()))
    }
}

/// Unix seconds.
fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

fn create_folder(path: &Path) -> Result<(), Failure> {
    match path.parent() {
        Some(folder) if !folder.as_os_str().is_empty() => std::fs::create_dir_all(folder)
            .map_err(|e| Failure::Data(format!("creating {}: {e}", folder.display()))),
        _ => Ok(()),
    }
}

/// Sets the connection's behaviour; none of this is stored in the file except WAL mode.
///
/// `synchronous = FULL` rather than NORMAL: with NORMAL a power loss may undo the last
/// commits, and a trial could then be trained again with its claim forgotten. Commits here are
/// few (a claim, an epoch, a heartbeat every few seconds), so the fsync of each costs nothing
/// one can measure.
fn configure(conn: &Connection) -> Result<(), Failure> {
    conn.busy_timeout(BUSY_TIMEOUT)?;
    let mode = wal_mode(conn)?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(Failure::Data(format!(
            "SQLite could not switch the journal to WAL mode (it stays `{mode}`); a store \
             needs a local, writable filesystem"
        )));
    }
    // Foreign keys are turned on once the schema is prepared: an upgrade that rebuilds a
    // table must run without them (they can only change outside a transaction).
    conn.execute_batch("PRAGMA synchronous = FULL; PRAGMA foreign_keys = OFF;")?;
    Ok(())
}

/// Switches the journal to WAL mode and says which mode it is in. SQLite can answer "database
/// is locked" at once, without waiting, when processes opening a new file switch it together
/// (one of them is creating the schema): the switch is tried again for up to
/// [`BUSY_TIMEOUT`].
fn wal_mode(conn: &Connection) -> Result<String, Failure> {
    let start = std::time::Instant::now();
    loop {
        match conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0)) {
            Err(e)
                if e.sqlite_error_code() == Some(ErrorCode::DatabaseBusy)
                    && start.elapsed() < BUSY_TIMEOUT =>
            {
                std::thread::sleep(Duration::from_millis(5));
            }
            other => return Ok(other?),
        }
    }
}

/// Creates the schema in a new file, or upgrades an older one in place (the file was
/// recognized as a store by [`inspect`]). In a transaction, so that processes opening a new
/// file at once create it only once, and an upgrade is whole or not at all.
fn prepare_schema(conn: &mut Connection) -> Result<(), Failure> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let version: i64 = tx.pragma_query_value(None, "user_version", |row| row.get(0))?;
    match version {
        SCHEMA_VERSION => {}
        1..SCHEMA_VERSION => {
            for migrate in &MIGRATIONS[(version - 1) as usize..] {
                migrate(&tx)?;
            }
            tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
        }
        0 => {
            let tables: i64 = tx.query_row(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table'",
                [],
                |row| row.get(0),
            )?;
            if tables > 0 {
                return Err(Failure::Data(
                    "the file is a SQLite database but not a regstudy store (it has tables \
                     and no store schema version)"
                        .into(),
                ));
            }
            tx.execute_batch(&schema())?;
            tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
        }
        other => {
            return Err(Failure::Data(format!(
                "the file has store schema version {other}, but this regstudy ({}) reads \
                 version {SCHEMA_VERSION}; a newer regstudy probably wrote it",
                env!("CARGO_PKG_VERSION")
            )))
        }
    }
    tx.commit()?;
    Ok(())
}

fn studies(conn: &Connection) -> Result<Vec<StudyRecord>, Failure> {
    let mut select =
        conn.prepare("SELECT name, spec, created_at, version FROM studies ORDER BY name")?;
    let rows = select.query_map([], |row| {
        Ok(StudyRecord {
            name: row.get(0)?,
            spec: row.get(1)?,
            created_at: row.get(2)?,
            version: row.get(3)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// [`Failure::NoStudy`], with the names of the studies there are.
fn no_study(conn: &Connection, name: &str) -> Failure {
    let names: Vec<String> = conn
        .prepare("SELECT name FROM studies ORDER BY name")
        .and_then(|mut select| select.query_map([], |row| row.get(0))?.collect())
        .unwrap_or_default();
    let hint = study_hint(&names);
    Failure::NoStudy {
        study: name.into(),
        hint,
    }
}

fn require_study(conn: &Connection, name: &str) -> Result<(), Failure> {
    let found = conn
        .query_row("SELECT 1 FROM studies WHERE name = ?1", [name], |_| Ok(()))
        .optional()?;
    found.ok_or_else(|| no_study(conn, name))
}

fn create_study(
    conn: &mut Connection,
    study: &StudyRecord,
    trials: &[NewTrial],
) -> Result<Created, Failure> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let spec: Option<String> = tx
        .query_row(
            "SELECT spec FROM studies WHERE name = ?1",
            [&study.name],
            |row| row.get(0),
        )
        .optional()?;
    match spec {
        Some(spec) if spec == study.spec => return Ok(Created::Existing),
        Some(_) => return Err(Failure::SpecChanged(study.name.clone())),
        None => {}
    }
    tx.execute(
        "INSERT INTO studies (name, spec, created_at, version) VALUES (?1, ?2, ?3, ?4)",
        params![study.name, study.spec, study.created_at, study.version],
    )?;
    insert_trials(&tx, &study.name, trials)?;
    tx.commit()?;
    Ok(Created::New)
}

/// Inserts the trials whose number the study does not have yet; returns how many.
fn insert_trials(conn: &Connection, study: &str, trials: &[NewTrial]) -> Result<usize, Failure> {
    let mut added = 0;
    let mut insert = conn.prepare(
        "INSERT OR IGNORE INTO trials
             (study, number, grp, method, point, seed, config, phase, state, attempts)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 'waiting', 0)",
    )?;
    for t in trials {
        let unstorable = |part: &str, e: String| {
            Failure::Data(format!(
                "trial number {}: its {part} cannot be stored: {e}",
                t.number
            ))
        };
        let point = to_json(&t.point).map_err(|e| unstorable("grid point", e))?;
        let config = config_to_toml(&t.config).map_err(|e| unstorable("config", e))?;
        let number = sql_int(t.number, "the trial number").map_err(Failure::Data)?;
        let seed = sql_int(t.seed, "the seed").map_err(Failure::Data)?;
        added += insert.execute(params![
            study,
            number,
            t.group,
            t.method,
            point,
            seed,
            config,
            t.phase.as_str()
        ])?;
    }
    Ok(added)
}

fn add_trials(conn: &mut Connection, study: &str, trials: &[NewTrial]) -> Result<usize, Failure> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    require_study(&tx, study)?;
    let added = insert_trials(&tx, study, trials)?;
    tx.commit()?;
    Ok(added)
}

fn claim(
    conn: &mut Connection,
    study: &str,
    worker: &Worker,
    stale_after: Duration,
) -> Result<Option<TrialRecord>, Failure> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    require_study(&tx, study)?;
    let now = now();
    let Some(id) = claimable(&tx, study, worker, stale_after, now)? else {
        return Ok(None);
    };
    tx.execute(
        "UPDATE trials SET state = 'running', worker = ?2, worker_host = ?3, worker_pid = ?4,
             heartbeat = ?5, attempts = attempts + 1, started_at = ?5
         WHERE id = ?1",
        params![id, worker.name, worker.host, worker.pid, now],
    )?;
    tx.execute(
        "INSERT INTO claims (trial, worker, at) VALUES (?1, ?2, ?3)",
        params![id, worker.name, now],
    )?;
    let record = read_trial(&tx, id)?;
    tx.commit()?;
    Ok(Some(record))
}

/// The lowest-numbered trial that is waiting, or running with a dead holder. Whether a
/// process is alive can only be asked outside SQL, so the candidates are read here, inside the
/// caller's transaction, and judged by [`Holder::is_gone`].
fn claimable(
    conn: &Connection,
    study: &str,
    claimant: &Worker,
    stale_after: Duration,
    now: f64,
) -> Result<Option<i64>, Failure> {
    let mut select = conn.prepare(
        "SELECT id, state, worker_host, worker_pid, heartbeat, worker FROM trials
         WHERE study = ?1 AND state IN ('waiting', 'running') ORDER BY number",
    )?;
    let mut rows = select.query([study])?;
    while let Some(row) = rows.next()? {
        let state: String = row.get(1)?;
        let holder = Holder {
            host: row.get(2)?,
            pid: row.get(3)?,
            heartbeat: row.get(4)?,
            worker: row.get(5)?,
        };
        if state == "waiting" || holder.is_gone(claimant, stale_after, now) {
            return Ok(Some(row.get(0)?));
        }
    }
    Ok(None)
}

/// Fails unless `trial` is running and held by `worker`; `action` completes the message
/// ("... so worker W cannot `action`").
fn check_holder(
    conn: &Connection,
    trial: i64,
    worker: &Worker,
    action: &str,
) -> Result<(), Failure> {
    let row: Option<(String, Option<String>)> = conn
        .query_row(
            "SELECT state, worker FROM trials WHERE id = ?1",
            [trial],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .optional()?;
    rows::check_holder(trial, row, worker, action)
}

fn record_epoch(
    conn: &mut Connection,
    trial: i64,
    worker: &Worker,
    metrics: &EpochMetrics,
) -> Result<(), Failure> {
    let (epoch, json) = rows::epoch_row(trial, metrics)?;
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    check_holder(&tx, trial, worker, &format!("record epoch {epoch}"))?;
    tx.execute(
        "INSERT OR REPLACE INTO epochs (trial, epoch, metrics) VALUES (?1, ?2, ?3)",
        params![trial, epoch, json],
    )?;
    tx.commit()?;
    Ok(())
}

fn reset_epochs(conn: &mut Connection, trial: i64, worker: &Worker) -> Result<(), Failure> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    check_holder(&tx, trial, worker, "clear its epochs")?;
    tx.execute("DELETE FROM epochs WHERE trial = ?1", [trial])?;
    tx.commit()?;
    Ok(())
}

fn record_start(
    conn: &mut Connection,
    trial: i64,
    worker: &Worker,
    start: &TrainingStart,
) -> Result<(), Failure> {
    let (from_epoch, discarded, reason) = rows::start_columns(start).map_err(Failure::Data)?;
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    check_holder(&tx, trial, worker, "record where its training began")?;
    let claim: Option<i64> = tx.query_row(
        "SELECT max(id) FROM claims WHERE trial = ?1 AND worker = ?2",
        params![trial, worker.name],
        |row| row.get(0),
    )?;
    let claim = claim.ok_or_else(|| Failure::Trial {
        trial,
        message: format!("has no claim by worker {}", worker.name),
    })?;
    tx.execute(
        "INSERT INTO starts (claim, from_epoch, discarded, reason) VALUES (?1, ?2, ?3, ?4)",
        params![claim, from_epoch, discarded, reason],
    )?;
    tx.commit()?;
    Ok(())
}

fn finish(
    conn: &mut Connection,
    trial: i64,
    worker: &Worker,
    outcome: &Outcome,
) -> Result<(), Failure> {
    let (summary, histogram) = rows::outcome_columns(trial, outcome)?;
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    check_holder(&tx, trial, worker, "finish it")?;
    tx.execute(
        "UPDATE trials SET state = ?2, finished_at = ?3, summary = ?4, message = ?5,
             histogram = ?6
         WHERE id = ?1",
        params![
            trial,
            outcome.state.as_str(),
            now(),
            summary,
            outcome.message,
            histogram
        ],
    )?;
    tx.commit()?;
    Ok(())
}

/// Adds a new attempt after the failed latest attempt of each trial in `numbers` (every
/// failed trial when empty); returns the numbers retried. The failed rows stay as they
/// are, with their epochs and claims.
fn retry(conn: &mut Connection, study: &str, numbers: &[usize]) -> Result<Vec<usize>, Failure> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    require_study(&tx, study)?;
    let latest: Vec<(usize, i64, String)> = tx
        .prepare(&format!(
            "SELECT t.number, t.id, t.state FROM trials t WHERE t.study = ?1 AND {LATEST}
             ORDER BY t.number"
        ))?
        .query_map([study], |row| {
            let number: i64 = row.get(0)?;
            Ok((
                usize::try_from(number).unwrap_or(usize::MAX),
                row.get(1)?,
                row.get(2)?,
            ))
        })?
        .collect::<rusqlite::Result<_>>()?;
    let chosen = rows::attempts_to_retry(&latest, study, numbers)?;
    for (_, id, _) in &chosen {
        tx.execute(
            "INSERT INTO trials (study, number, retry, retry_of, grp, method, point, seed,
                 config, phase, state, attempts)
             SELECT study, number, retry + 1, id, grp, method, point, seed, config, phase,
                 'waiting', 0
             FROM trials WHERE id = ?1",
            [id],
        )?;
    }
    tx.commit()?;
    Ok(chosen.into_iter().map(|(number, _, _)| *number).collect())
}

/// Writes a copied study in one transaction (see [`Store::import`]). Each attempt is written
/// as a worker would have left it: inserted, given its epochs while running, then ended.
fn import(conn: &mut Connection, copy: &StudyCopy) -> Result<(), Failure> {
    let rows = imported_attempts(copy).map_err(Failure::Data)?;
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let study = &copy.study;
    let exists = tx
        .query_row(
            "SELECT 1 FROM studies WHERE name = ?1",
            [&study.name],
            |_| Ok(()),
        )
        .optional()?;
    if exists.is_some() {
        return Err(Failure::Exists(study.name.clone()));
    }
    tx.execute(
        "INSERT INTO studies (name, spec, created_at, version) VALUES (?1, ?2, ?3, ?4)",
        params![study.name, study.spec, study.created_at, study.version],
    )?;
    let mut ids = rows::ImportedIds::default();
    for r in &rows {
        let retry_of = ids.retry_of(r).map_err(Failure::Data)?;
        tx.execute(
            "INSERT INTO trials (study, number, retry, retry_of, grp, method, point, seed,
                 config, phase, state, worker, attempts, started_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, 'running', ?11, ?12, ?13)",
            params![
                study.name,
                r.number,
                r.retry,
                retry_of,
                r.group,
                r.method,
                r.point,
                r.seed,
                r.config,
                r.phase,
                r.worker,
                r.attempts,
                r.started_at
            ],
        )?;
        let id = tx.last_insert_rowid();
        for (epoch, json) in &r.epochs {
            tx.execute(
                "INSERT INTO epochs (trial, epoch, metrics) VALUES (?1, ?2, ?3)",
                params![id, epoch, json],
            )?;
        }
        tx.execute(
            "UPDATE trials SET state = ?2, finished_at = ?3, summary = ?4, message = ?5,
                 histogram = ?6
             WHERE id = ?1",
            params![
                id,
                r.finished.unwrap_or("waiting"),
                r.finished_at,
                r.summary,
                r.message,
                r.histogram
            ],
        )?;
        ids.insert(r, id);
    }
    for c in &copy.claims {
        let trial = ids.of(c.trial).map_err(Failure::Data)?;
        tx.execute(
            "INSERT INTO claims (trial, worker, at) VALUES (?1, ?2, ?3)",
            params![trial, c.worker, c.at],
        )?;
        if let Some(start) = &c.start {
            let (from_epoch, discarded, reason) =
                rows::start_columns(start).map_err(Failure::Data)?;
            tx.execute(
                "INSERT INTO starts (claim, from_epoch, discarded, reason)
                 VALUES (?1, ?2, ?3, ?4)",
                params![tx.last_insert_rowid(), from_epoch, discarded, reason],
            )?;
        }
    }
    tx.commit()?;
    Ok(())
}

fn read_trial(conn: &Connection, id: i64) -> Result<TrialRecord, Failure> {
    let sql = format!(
        "SELECT {} FROM trials t WHERE t.id = ?1",
        sqlite_trial_columns()
    );
    conn.query_row(&sql, [id], stored_trial)?
        .parse()
        .map_err(Failure::Data)
}

/// The study's trials: each number's latest attempt (`every_attempt`: all of them), by
/// number and attempt.
fn trials(
    conn: &Connection,
    study: &str,
    every_attempt: bool,
) -> Result<Vec<TrialRecord>, Failure> {
    require_study(conn, study)?;
    let latest = if every_attempt { "1" } else { LATEST };
    let sql = format!(
        "SELECT {} FROM trials t WHERE t.study = ?1 AND {latest}
         ORDER BY t.number, t.retry",
        sqlite_trial_columns()
    );
    let mut select = conn.prepare(&sql)?;
    let stored = select.query_map([study], stored_trial)?;
    let stored = stored.collect::<rusqlite::Result<Vec<_>>>()?;
    stored
        .into_iter()
        .map(|t| t.parse().map_err(Failure::Data))
        .collect()
}

fn epochs(conn: &Connection, trial: i64) -> Result<Vec<EpochMetrics>, Failure> {
    let exists = conn
        .query_row("SELECT 1 FROM trials WHERE id = ?1", [trial], |_| Ok(()))
        .optional()?;
    if exists.is_none() {
        return Err(Failure::Trial {
            trial,
            message: "does not exist".into(),
        });
    }
    let mut select =
        conn.prepare("SELECT epoch, metrics FROM epochs WHERE trial = ?1 ORDER BY epoch")?;
    let rows = select.query_map([trial], |row| Ok((row.get::<_, i64>(0)?, row.get(1)?)))?;
    let rows = rows.collect::<rusqlite::Result<Vec<(i64, String)>>>()?;
    rows.into_iter()
        .map(|(epoch, json)| rows::read_epoch(trial, epoch, &json))
        .collect()
}

fn counts(conn: &Connection, study: &str) -> Result<BTreeMap<TrialState, usize>, Failure> {
    require_study(conn, study)?;
    let mut counts: BTreeMap<TrialState, usize> =
        TrialState::ALL.into_iter().map(|s| (s, 0)).collect();
    let mut select = conn.prepare(&format!(
        "SELECT t.state, count(*) FROM trials t WHERE t.study = ?1 AND {LATEST}
             GROUP BY t.state"
    ))?;
    let rows = select.query_map([study], |row| Ok((row.get::<_, String>(0)?, row.get(1)?)))?;
    for row in rows {
        let (state, n): (String, i64) = row?;
        let state = state.parse::<TrialState>().map_err(Failure::Data)?;
        counts.insert(state, usize::try_from(n).unwrap_or(0));
    }
    Ok(counts)
}

fn claims(conn: &Connection, study: &str) -> Result<Vec<Claim>, Failure> {
    require_study(conn, study)?;
    let mut select = conn.prepare(&format!(
        "SELECT {CLAIM_COLUMNS} FROM claims c JOIN trials t ON t.id = c.trial
         LEFT JOIN starts s ON s.claim = c.id
         WHERE t.study = ?1 ORDER BY c.id"
    ))?;
    let rows = select.query_map([study], |row| {
        let start = (row.get(3)?, row.get(4)?, row.get(5)?);
        let claim = Claim {
            trial: row.get(0)?,
            worker: row.get(1)?,
            at: row.get(2)?,
            start: None,
        };
        Ok((claim, start))
    })?;
    let mut claims = Vec::new();
    for row in rows {
        let (claim, (from_epoch, discarded, reason)) = row?;
        let start = rows::training_start(from_epoch, discarded, reason).map_err(Failure::Data)?;
        claims.push(Claim { start, ..claim });
    }
    Ok(claims)
}

/// The trials columns read by [`stored_trial`].
fn sqlite_trial_columns() -> String {
    trial_columns("((julianday('now') - 2440587.5) * 86400.0)")
}

/// Reads the columns of [`sqlite_trial_columns`].
fn stored_trial(row: &Row<'_>) -> rusqlite::Result<StoredTrial> {
    Ok(StoredTrial {
        id: row.get(0)?,
        number: row.get(1)?,
        group: row.get(2)?,
        method: row.get(3)?,
        point: row.get(4)?,
        seed: row.get(5)?,
        config: row.get(6)?,
        state: row.get(7)?,
        worker: row.get(8)?,
        attempts: row.get(9)?,
        started_at: row.get(10)?,
        finished_at: row.get(11)?,
        summary: row.get(12)?,
        message: row.get(13)?,
        histogram: row.get(14)?,
        phase: row.get(15)?,
        retry: row.get(16)?,
        heartbeat_age: row.get(17)?,
    })
}

/// Why an operation failed, before the store's path and the operation are added.
type Failure = rows::Failure<rusqlite::Error>;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trial::Phase;
    use std::collections::BTreeSet;
    use std::sync::Arc;

    use crate::store::contract::{
        dead_pid, done, metrics, new_trials, pruned, study_record, FOREVER,
    };

    /// The schema of version 2, as it was written, for the upgrade tests.
    const SCHEMA_V2: &str = "
CREATE TABLE studies (
    name TEXT PRIMARY KEY,
    spec TEXT NOT NULL,
    created_at REAL NOT NULL,
    version TEXT NOT NULL
);
CREATE TABLE trials (
    id INTEGER PRIMARY KEY,
    study TEXT NOT NULL REFERENCES studies(name),
    number INTEGER NOT NULL,
    grp TEXT NOT NULL,
    method TEXT NOT NULL,
    point TEXT NOT NULL,
    seed INTEGER NOT NULL,
    config TEXT NOT NULL,
    phase TEXT NOT NULL DEFAULT 'search' CHECK (phase IN ('search', 'confirm')),
    state TEXT NOT NULL
        CHECK (state IN ('waiting', 'running', 'done', 'failed', 'diverged')),
    worker TEXT,
    worker_host TEXT,
    worker_pid INTEGER,
    heartbeat REAL,
    attempts INTEGER NOT NULL DEFAULT 0,
    started_at REAL,
    finished_at REAL,
    summary TEXT,
    message TEXT,
    histogram TEXT,
    UNIQUE (study, number)
);
CREATE INDEX trials_by_worker ON trials(worker, state);
CREATE TABLE epochs (
    trial INTEGER NOT NULL REFERENCES trials(id),
    epoch INTEGER NOT NULL,
    metrics TEXT NOT NULL,
    PRIMARY KEY (trial, epoch)
) WITHOUT ROWID;
CREATE TABLE claims (
    id INTEGER PRIMARY KEY,
    trial INTEGER NOT NULL REFERENCES trials(id),
    worker TEXT NOT NULL,
    at REAL NOT NULL
);
CREATE INDEX claims_by_trial ON claims(trial);

CREATE TRIGGER finished_trials_do_not_change BEFORE UPDATE ON trials
WHEN OLD.state IN ('done', 'failed', 'diverged')
BEGIN SELECT RAISE(ABORT, 'a finished trial cannot change'); END;
CREATE TRIGGER finished_trials_stay BEFORE DELETE ON trials
WHEN OLD.state IN ('done', 'failed', 'diverged')
BEGIN SELECT RAISE(ABORT, 'a finished trial cannot be deleted'); END;
CREATE TRIGGER finished_epochs_get_none_added BEFORE INSERT ON epochs
WHEN (SELECT state FROM trials WHERE id = NEW.trial) IN ('done', 'failed', 'diverged')
BEGIN SELECT RAISE(ABORT, 'the epochs of a finished trial cannot change'); END;
CREATE TRIGGER finished_epochs_do_not_change BEFORE UPDATE ON epochs
WHEN (SELECT state FROM trials WHERE id = OLD.trial) IN ('done', 'failed', 'diverged')
  OR (SELECT state FROM trials WHERE id = NEW.trial) IN ('done', 'failed', 'diverged')
BEGIN SELECT RAISE(ABORT, 'the epochs of a finished trial cannot change'); END;
CREATE TRIGGER finished_epochs_stay BEFORE DELETE ON epochs
WHEN (SELECT state FROM trials WHERE id = OLD.trial) IN ('done', 'failed', 'diverged')
BEGIN SELECT RAISE(ABORT, 'the epochs of a finished trial cannot change'); END;
CREATE TRIGGER claims_do_not_change BEFORE UPDATE ON claims
BEGIN SELECT RAISE(ABORT, 'the claims are an append-only record'); END;
CREATE TRIGGER claims_stay BEFORE DELETE ON claims
BEGIN SELECT RAISE(ABORT, 'the claims are an append-only record'); END;
";

    /// A folder of its own for one test, removed at the end.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new(test: &str) -> Self {
            let dir =
                std::env::temp_dir().join(format!("regstudy-store-{}-{test}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            Scratch(dir)
        }

        fn db(&self) -> PathBuf {
            self.0.join("store.db")
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// A store holding study `s` with `n` trials.
    fn store_with(test: &str, n: usize) -> (Scratch, SqliteStore) {
        let scratch = Scratch::new(test);
        let store = SqliteStore::open(&scratch.db()).unwrap();
        let created = store.create_study(&study_record("spec"), &new_trials(n));
        assert_eq!(created.unwrap(), Created::New);
        (scratch, store)
    }

    /// Claims with `worker` until nothing is left; the trials' numbers.
    fn claim_all(store: &SqliteStore, worker: &Worker) -> Vec<usize> {
        std::iter::from_fn(|| store.claim("s", worker, FOREVER).unwrap())
            .map(|t| t.trial.number)
            .collect()
    }

    #[test]
    fn a_created_studys_trials_are_waiting_and_read_back_as_given() {
        let (_scratch, store) = store_with("created", 5);
        let trials = store.trials("s").unwrap();
        assert_eq!(trials.len(), 5);
        for (stored, given) in trials.iter().zip(new_trials(5)) {
            assert_eq!(stored.trial, given);
            assert_eq!(stored.state, TrialState::Waiting);
            assert_eq!((stored.attempts, stored.worker.as_deref()), (0, None));
        }
        assert_eq!(store.study("s").unwrap(), study_record("spec"));
        assert_eq!(store.studies().unwrap(), vec![study_record("spec")]);
    }

    #[test]
    fn creating_a_study_again_changes_nothing_and_a_new_spec_is_refused() {
        let (_scratch, store) = store_with("again", 3);
        let again = store.create_study(&study_record("spec"), &new_trials(7));
        assert_eq!(again.unwrap(), Created::Existing);
        assert_eq!(store.trials("s").unwrap().len(), 3);
        let changed = store.create_study(&study_record("spec "), &new_trials(3));
        assert!(matches!(changed, Err(StoreError::SpecChanged { .. })));
    }

    #[test]
    fn an_unknown_study_is_named_with_the_studies_there_are() {
        let (_scratch, store) = store_with("unknown", 1);
        let e = store.study("t").unwrap_err().to_string();
        assert!(
            e.contains("no study `t`") && e.contains("(it has: s)"),
            "{e}"
        );
        assert!(matches!(
            store.claim("t", &Worker::of_this_process(0), FOREVER),
            Err(StoreError::NoStudy { .. })
        ));
    }

    #[test]
    fn claims_go_in_number_order_each_trial_once() {
        let (_scratch, store) = store_with("order", 4);
        let worker = Worker::of_this_process(0);
        let first = store.claim("s", &worker, FOREVER).unwrap().unwrap();
        assert_eq!((first.state, first.attempts), (TrialState::Running, 1));
        assert_eq!(first.worker.as_deref(), Some(worker.name.as_str()));
        assert!(first.started_at.is_some());
        assert_eq!(claim_all(&store, &worker), vec![1, 2, 3]);
        assert!(store.claim("s", &worker, FOREVER).unwrap().is_none());
        assert_eq!(store.claims("s").unwrap().len(), 4);
    }

    #[test]
    fn threads_sharing_a_store_never_claim_the_same_trial() {
        let (_scratch, store) = store_with("threads", 50);
        let store = Arc::new(store);
        let claimed: Vec<usize> = (0..8)
            .map(|i| {
                let store = Arc::clone(&store);
                std::thread::spawn(move || claim_all(&store, &Worker::of_this_process(i)))
            })
            .collect::<Vec<_>>()
            .into_iter()
            .flat_map(|thread| thread.join().unwrap())
            .collect();
        assert_eq!(claimed.len(), 50);
        assert_eq!(claimed.into_iter().collect::<BTreeSet<_>>().len(), 50);
    }

    #[test]
    fn stores_opened_at_once_on_a_new_file_create_one_study_and_share_its_trials() {
        let scratch = Scratch::new("processes");
        let db = scratch.db();
        let threads: Vec<_> = (0..4)
            .map(|i| {
                let db = db.clone();
                std::thread::spawn(move || {
                    let store = SqliteStore::open(&db).unwrap();
                    let created = store.create_study(&study_record("spec"), &new_trials(40));
                    (
                        created.unwrap(),
                        claim_all(&store, &Worker::of_this_process(i)),
                    )
                })
            })
            .collect();
        let results: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        let new = results.iter().filter(|(c, _)| *c == Created::New).count();
        assert_eq!(new, 1);
        let claimed: Vec<usize> = results.into_iter().flat_map(|(_, n)| n).collect();
        assert_eq!(claimed.len(), 40);
        assert_eq!(claimed.into_iter().collect::<BTreeSet<_>>().len(), 40);
    }

    #[test]
    fn a_trial_with_a_stale_heartbeat_is_claimed_again() {
        let (_scratch, store) = store_with("stale", 1);
        let (first, second) = (Worker::of_this_process(0), Worker::of_this_process(1));
        let trial = store.claim("s", &first, FOREVER).unwrap().unwrap();
        let again = store.claim("s", &second, Duration::ZERO).unwrap().unwrap();
        assert_eq!((again.id, again.attempts), (trial.id, 2));
        assert_eq!(again.worker.as_deref(), Some(second.name.as_str()));
        let late = store.record_epoch(trial.id, &first, &metrics(1, 1.0));
        let e = late.unwrap_err().to_string();
        assert!(
            e.contains(&format!("held by worker {}", second.name)),
            "{e}"
        );
    }

    #[test]
    fn a_live_worker_of_this_process_keeps_its_trial() {
        let (_scratch, store) = store_with("live", 1);
        let holder = Worker::of_this_process(0);
        store.claim("s", &holder, FOREVER).unwrap().unwrap();
        store.heartbeat(&holder).unwrap();
        let other = Worker::of_this_process(1);
        assert!(store.claim("s", &other, FOREVER).unwrap().is_none());
    }

    #[test]
    fn a_trial_held_by_an_earlier_process_with_this_pid_is_claimed_at_once() {
        let (_scratch, store) = store_with("same-pid", 1);
        let me = Worker::of_this_process(0);
        let earlier = Worker {
            name: format!("{}:{}:1:0", me.host, me.pid),
            ..me.clone()
        };
        let trial = store.claim("s", &earlier, FOREVER).unwrap().unwrap();
        store.heartbeat(&earlier).unwrap();
        let again = store.claim("s", &me, FOREVER).unwrap().unwrap();
        assert_eq!((again.id, again.attempts), (trial.id, 2));
    }

    #[test]
    fn reset_epochs_forgets_an_earlier_attempts_epochs() {
        let (_scratch, store) = store_with("reset", 1);
        let worker = Worker::of_this_process(0);
        let trial = store.claim("s", &worker, FOREVER).unwrap().unwrap();
        store
            .record_epoch(trial.id, &worker, &metrics(1, 1.0))
            .unwrap();
        store.reset_epochs(trial.id, &worker).unwrap();
        assert!(store.epochs(trial.id).unwrap().is_empty());
        let other = Worker::of_this_process(1);
        assert!(
            store.reset_epochs(trial.id, &other).is_err(),
            "only the holder may"
        );
    }

    #[test]
    fn a_trial_held_by_a_dead_process_on_this_host_is_claimed_at_once() {
        let Some(pid) = dead_pid() else { return };
        let (_scratch, store) = store_with("dead", 2);
        let me = Worker::of_this_process(0);
        let ghost = Worker {
            name: format!("{}:{pid}:0", me.host),
            host: me.host.clone(),
            pid,
        };
        let elsewhere = Worker {
            name: "elsewhere:1:0".into(),
            host: "elsewhere".into(),
            pid,
        };
        let held = store.claim("s", &ghost, FOREVER).unwrap().unwrap();
        store.claim("s", &elsewhere, FOREVER).unwrap().unwrap();
        let again = store.claim("s", &me, FOREVER).unwrap().unwrap();
        assert_eq!((again.id, again.attempts), (held.id, 2));
        assert!(
            store.claim("s", &me, FOREVER).unwrap().is_none(),
            "a pid on another host says nothing about this host's processes"
        );
    }

    #[test]
    fn epochs_read_back_in_order_and_are_replaced_while_running() {
        let (_scratch, store) = store_with("epochs", 1);
        let worker = Worker::of_this_process(0);
        let trial = store.claim("s", &worker, FOREVER).unwrap().unwrap().id;
        for epoch in [2, 1, 3] {
            store
                .record_epoch(trial, &worker, &metrics(epoch, 1.0))
                .unwrap();
        }
        store
            .record_epoch(trial, &worker, &metrics(2, 0.5))
            .unwrap();
        let expected = vec![metrics(1, 1.0), metrics(2, 0.5), metrics(3, 1.0)];
        assert_eq!(store.epochs(trial).unwrap(), expected);
    }

    #[test]
    fn metrics_that_json_cannot_hold_are_refused_not_stored() {
        let (_scratch, store) = store_with("nan", 1);
        let worker = Worker::of_this_process(0);
        let trial = store.claim("s", &worker, FOREVER).unwrap().unwrap().id;
        let refused = store.record_epoch(trial, &worker, &metrics(1, f64::NAN));
        assert!(matches!(refused, Err(StoreError::Trial { .. })));
        assert!(store.epochs(trial).unwrap().is_empty());
    }

    #[test]
    fn a_finished_trial_cannot_be_finished_again_nor_get_epochs() {
        let (_scratch, store) = store_with("finish", 1);
        let worker = Worker::of_this_process(0);
        let trial = store.claim("s", &worker, FOREVER).unwrap().unwrap().id;
        let running = Outcome {
            state: TrialState::Running,
            ..done()
        };
        assert!(store.finish(trial, &worker, &running).is_err());
        store.finish(trial, &worker, &done()).unwrap();
        let stored = store.trials("s").unwrap().remove(0);
        assert_eq!(stored.state, TrialState::Done);
        assert_eq!(
            (stored.summary, stored.histogram),
            (done().summary, done().histogram)
        );
        assert!(stored.finished_at.is_some());
        let e = store
            .finish(trial, &worker, &done())
            .unwrap_err()
            .to_string();
        assert!(e.contains("is already done"), "{e}");
        assert!(store
            .record_epoch(trial, &worker, &metrics(1, 1.0))
            .is_err());
    }

    #[test]
    fn the_database_itself_refuses_to_change_a_finished_trial() {
        let (scratch, store) = store_with("trigger", 1);
        let worker = Worker::of_this_process(0);
        let trial = store.claim("s", &worker, FOREVER).unwrap().unwrap().id;
        store
            .record_epoch(trial, &worker, &metrics(1, 1.0))
            .unwrap();
        store.finish(trial, &worker, &done()).unwrap();
        let raw = Connection::open(scratch.db()).unwrap();
        raw.busy_timeout(BUSY_TIMEOUT).unwrap();
        let refused = [
            "UPDATE trials SET state = 'waiting' WHERE id = ?1",
            "DELETE FROM trials WHERE id = ?1",
            "UPDATE epochs SET metrics = '{}' WHERE trial = ?1",
            "DELETE FROM epochs WHERE trial = ?1",
            "INSERT INTO epochs (trial, epoch, metrics) VALUES (?1, 2, '{}')",
            "DELETE FROM claims WHERE trial = ?1",
        ];
        for sql in refused {
            let e = raw.execute(sql, [trial]).unwrap_err().to_string();
            assert!(
                e.contains("cannot") || e.contains("append-only"),
                "{sql}: {e}"
            );
        }
        assert_eq!(store.epochs(trial).unwrap(), vec![metrics(1, 1.0)]);
    }

    #[test]
    fn added_trials_keep_their_phase_and_adding_them_again_changes_nothing() {
        let (_scratch, store) = store_with("add", 2);
        let mut confirm = new_trials(4).split_off(2);
        for t in &mut confirm {
            t.phase = Phase::Confirm;
        }
        assert_eq!(store.add_trials("s", &confirm).unwrap(), 2);
        assert_eq!(store.add_trials("s", &confirm).unwrap(), 0);
        let mut changed = confirm.clone();
        changed[0].method = "l2".into();
        assert_eq!(store.add_trials("s", &changed).unwrap(), 0);
        let phases: Vec<(usize, Phase, String)> = store
            .trials("s")
            .unwrap()
            .into_iter()
            .map(|t| (t.trial.number, t.trial.phase, t.trial.method))
            .collect();
        let l1 = || "l1".to_string();
        let expected = vec![
            (0, Phase::Search, l1()),
            (1, Phase::Search, l1()),
            (2, Phase::Confirm, l1()),
            (3, Phase::Confirm, l1()),
        ];
        assert_eq!(phases, expected);
        assert!(store.add_trials("nope", &confirm).is_err());
    }

    #[test]
    fn a_store_of_schema_one_is_upgraded_and_its_trials_read_as_search_trials() {
        let scratch = Scratch::new("upgrade");
        let raw = Connection::open(scratch.db()).unwrap();
        let version_one = SCHEMA_V2.replace(
            "    phase TEXT NOT NULL DEFAULT 'search' CHECK (phase IN ('search', 'confirm')),\n",
            "",
        );
        assert_ne!(version_one, SCHEMA_V2, "the phase column is removed");
        raw.execute_batch(&version_one).unwrap();
        raw.pragma_update(None, "user_version", 1).unwrap();
        raw.execute(
            "INSERT INTO studies (name, spec, created_at, version) VALUES ('s', 'x', 1, '0')",
            [],
        )
        .unwrap();
        let config = config_to_toml(&new_trials(1)[0].config).unwrap();
        raw.execute(
            "INSERT INTO trials (study, number, grp, method, point, seed, config, state)
             VALUES ('s', 0, '', 'l1', '{}', 0, ?1, 'waiting')",
            [config],
        )
        .unwrap();
        drop(raw);
        let store = SqliteStore::open(&scratch.db()).unwrap();
        let trials = store.trials("s").unwrap();
        assert_eq!(trials.len(), 1);
        assert_eq!(trials[0].trial.phase, Phase::Search);
        let raw = Connection::open(scratch.db()).unwrap();
        let version: i64 = raw
            .pragma_query_value(None, "user_version", |row| row.get(0))
            .unwrap();
        assert_eq!(version, SCHEMA_VERSION);
    }

    #[test]
    fn counts_name_every_state() {
        let (_scratch, store) = store_with("counts", 4);
        let worker = Worker::of_this_process(0);
        let trial = store.claim("s", &worker, FOREVER).unwrap().unwrap().id;
        store.finish(trial, &worker, &done()).unwrap();
        store.claim("s", &worker, FOREVER).unwrap().unwrap();
        let counts = store.counts("s").unwrap();
        let expected = BTreeMap::from([
            (TrialState::Waiting, 2),
            (TrialState::Running, 1),
            (TrialState::Done, 1),
            (TrialState::Failed, 0),
            (TrialState::Diverged, 0),
            (TrialState::Pruned, 0),
        ]);
        assert_eq!(counts, expected);
    }

    #[test]
    fn a_file_that_is_not_a_database_is_refused_by_name() {
        let scratch = Scratch::new("notadb");
        let path = scratch.0.join("notes.txt");
        for text in ["x".to_string(), "these are notes\n".repeat(1000)] {
            std::fs::write(&path, &text).unwrap();
            let e = SqliteStore::open(&path).err().unwrap().to_string();
            assert!(
                e.contains("notes.txt") && e.contains("not a SQLite database"),
                "{e}"
            );
            assert_eq!(
                std::fs::read_to_string(&path).unwrap(),
                text,
                "the file is untouched"
            );
        }
    }

    #[test]
    fn a_store_of_a_newer_schema_is_refused() {
        let (scratch, store) = store_with("newer", 1);
        drop(store);
        let raw = Connection::open(scratch.db()).unwrap();
        raw.pragma_update(None, "user_version", 99).unwrap();
        drop(raw);
        let e = SqliteStore::open(&scratch.db()).err().unwrap().to_string();
        assert!(e.contains("store.db") && e.contains("version 99"), "{e}");
    }

    #[test]
    fn a_store_opens_from_a_path_or_a_sqlite_url() {
        let scratch = Scratch::new("url");
        let url = format!("sqlite://{}", scratch.0.join("sub/url.db").display());
        let store = crate::store::open(&url).unwrap();
        assert!(store.studies().unwrap().is_empty());
        assert!(scratch.0.join("sub/url.db").exists());
        assert!(crate::store::open("postgres://localhost/x").is_err());
    }

    /// Fails the claimed trial `number` of study `s` with `worker`.
    fn fail_next(store: &SqliteStore, worker: &Worker, message: &str) -> i64 {
        let trial = store.claim("s", worker, FOREVER).unwrap().unwrap().id;
        let outcome = Outcome {
            state: TrialState::Failed,
            summary: None,
            message: Some(message.into()),
            histogram: None,
        };
        store.finish(trial, worker, &outcome).unwrap();
        trial
    }

    #[test]
    fn a_failed_trial_gets_a_new_attempt_and_its_failed_attempt_stays_in_the_history() {
        let (_scratch, store) = store_with("retry", 2);
        let worker = Worker::of_this_process(0);
        let failed = fail_next(&store, &worker, "disk full");
        store.claim("s", &worker, FOREVER).unwrap().unwrap();
        assert_eq!(store.retry("s", &[]).unwrap(), vec![0]);
        let current = store.trials("s").unwrap();
        assert_eq!(current.len(), 2, "one row per trial number");
        assert_eq!(
            (current[0].state, current[0].retry, current[0].attempts),
            (TrialState::Waiting, 1, 0)
        );
        assert_eq!(current[0].trial, new_trials(1)[0], "the same trial again");
        let counts = store.counts("s").unwrap();
        assert_eq!(counts[&TrialState::Failed], 0);
        assert_eq!(counts[&TrialState::Waiting], 1);
        let history = store.history("s").unwrap();
        assert_eq!(history.len(), 3);
        assert_eq!((history[0].id, history[0].retry), (failed, 0));
        assert_eq!(history[0].state, TrialState::Failed);
        assert_eq!(history[0].message.as_deref(), Some("disk full"));
        let again = store.claim("s", &worker, FOREVER).unwrap().unwrap();
        assert_eq!((again.trial.number, again.retry), (0, 1));
        let claimed: Vec<i64> = store.claims("s").unwrap().iter().map(|c| c.trial).collect();
        assert_eq!(
            claimed,
            vec![failed, current[1].id, again.id],
            "every claim is kept"
        );
        store.finish(again.id, &worker, &done()).unwrap();
        assert!(store.retry("s", &[]).unwrap().is_empty(), "nothing failed");
    }

    #[test]
    fn only_failed_trials_are_retried_and_a_refused_number_retries_none() {
        let (_scratch, store) = store_with("retry-refused", 3);
        let worker = Worker::of_this_process(0);
        fail_next(&store, &worker, "boom");
        let done_id = store.claim("s", &worker, FOREVER).unwrap().unwrap().id;
        store.finish(done_id, &worker, &done()).unwrap();
        for (numbers, expected) in [
            (
                vec![0, 1],
                "study `s`, trial 1: cannot retry it: it is done",
            ),
            (vec![2], "trial 2: cannot retry it: it is waiting"),
            (
                vec![0, 7],
                "trial 7: cannot retry it: the study has no such trial",
            ),
        ] {
            let e = store.retry("s", &numbers).unwrap_err().to_string();
            assert!(e.contains(expected), "{e}");
        }
        assert_eq!(store.history("s").unwrap().len(), 3, "nothing was added");
        assert!(matches!(
            store.retry("t", &[0]),
            Err(StoreError::NoStudy { .. })
        ));
    }

    #[test]
    fn the_database_itself_lets_a_retry_follow_only_a_failed_attempt() {
        let (scratch, store) = store_with("retry-trigger", 2);
        let worker = Worker::of_this_process(0);
        let failed = fail_next(&store, &worker, "boom");
        let raw = Connection::open(scratch.db()).unwrap();
        raw.busy_timeout(BUSY_TIMEOUT).unwrap();
        let insert = "INSERT INTO trials (study, number, retry, retry_of, grp, method, point,
                          seed, config, state)
                      SELECT study, ?2, ?3, id, grp, method, point, seed, config, 'waiting'
                      FROM trials WHERE id = ?1";
        let waiting = store.trials("s").unwrap()[1].id;
        for (of, number, retry) in [(waiting, 1, 1), (failed, 1, 1), (failed, 0, 2)] {
            let e = raw.execute(insert, params![of, number, retry]).unwrap_err();
            assert!(
                e.to_string().contains("a retry follows a failed attempt"),
                "{e}"
            );
        }
        raw.execute(insert, params![failed, 0, 1]).unwrap();
        let e = raw.execute(insert, params![failed, 0, 1]).unwrap_err();
        assert!(
            e.to_string().contains("UNIQUE"),
            "one retry per failed attempt: {e}"
        );
    }

    #[test]
    fn a_store_of_schema_two_is_upgraded_in_place_keeping_its_trials_epochs_and_claims() {
        let scratch = Scratch::new("upgrade-two");
        let raw = Connection::open(scratch.db()).unwrap();
        raw.execute_batch(SCHEMA_V2).unwrap();
        raw.pragma_update(None, "user_version", 2).unwrap();
        raw.execute(
            "INSERT INTO studies (name, spec, created_at, version) VALUES ('s', 'x', 1, '0')",
            [],
        )
        .unwrap();
        let config = config_to_toml(&new_trials(1)[0].config).unwrap();
        for (id, state) in [(5, "failed"), (9, "waiting")] {
            raw.execute(
                "INSERT INTO trials (id, study, number, grp, method, point, seed, config, state,
                     message, attempts)
                 VALUES (?1, 's', ?1, '', 'l1', '{}', 0, ?2, 'running', 'disk full', 1)",
                params![id, config],
            )
            .unwrap();
            raw.execute(
                "INSERT INTO claims (trial, worker, at) VALUES (?1, 'w', 1)",
                [id],
            )
            .unwrap();
            let epoch = serde_json::to_string(&metrics(1, 0.5)).unwrap();
            raw.execute(
                "INSERT INTO epochs (trial, epoch, metrics) VALUES (?1, 1, ?2)",
                params![id, epoch],
            )
            .unwrap();
            raw.execute(
                "UPDATE trials SET state = ?2 WHERE id = ?1",
                params![id, state],
            )
            .unwrap();
        }
        drop(raw);
        let store = SqliteStore::open(&scratch.db()).unwrap();
        let trials = store.trials("s").unwrap();
        let rows: Vec<(i64, usize, u32, TrialState)> = trials
            .iter()
            .map(|t| (t.id, t.trial.number, t.retry, t.state))
            .collect();
        assert_eq!(
            rows,
            vec![
                (5, 5, 0, TrialState::Failed),
                (9, 9, 0, TrialState::Waiting)
            ]
        );
        assert_eq!(store.epochs(5).unwrap(), vec![metrics(1, 0.5)]);
        assert_eq!(store.claims("s").unwrap().len(), 2);
        assert_eq!(store.identity().id.len(), 32, "a store id was given");
        assert_eq!(
            store.retry("s", &[]).unwrap(),
            vec![5],
            "a v2 failure can be retried"
        );
        let raw = Connection::open(scratch.db()).unwrap();
        let pragma = |name: &str| -> i64 {
            raw.pragma_query_value(None, name, |row| row.get(0))
                .unwrap()
        };
        assert_eq!(pragma("user_version"), SCHEMA_VERSION);
        assert_eq!(pragma("application_id"), APPLICATION_ID);
        let e = raw
            .execute("UPDATE trials SET state = 'waiting' WHERE id = 5", [])
            .unwrap_err();
        assert!(
            e.to_string().contains("cannot change"),
            "triggers are back: {e}"
        );
        let e = raw.execute("DELETE FROM claims", []).unwrap_err();
        assert!(e.to_string().contains("append-only"), "{e}");
    }

    /// Every file of the scratch folder with its bytes and modification time.
    fn snapshot(dir: &Path) -> BTreeMap<PathBuf, (Vec<u8>, std::time::SystemTime)> {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|entry| {
                let path = entry.unwrap().path();
                let modified = std::fs::metadata(&path).unwrap().modified().unwrap();
                (path.clone(), (std::fs::read(&path).unwrap(), modified))
            })
            .collect()
    }

    #[test]
    fn a_store_of_schema_three_is_rebuilt_with_the_pruned_state_keeping_its_rows() {
        let scratch = Scratch::new("v3");
        let raw = Connection::open(scratch.db()).unwrap();
        let v3 = format!(
            "{TABLES}CREATE TABLE trials {TRIALS_DEFINITION};{TRIAL_INDEXES}{TRIGGERS}{METADATA}\
             {IDENTITY}"
        )
        .replace(", 'pruned'", "");
        raw.execute_batch(&v3).unwrap();
        raw.pragma_update(None, "user_version", 3).unwrap();
        let refused = raw.execute(
            "INSERT INTO trials (study, number, grp, method, point, seed, config, state)
             VALUES ('s', 9, '', 'l1', '{}', 0, '', 'pruned')",
            [],
        );
        assert!(refused.is_err(), "version 3 has no pruned state");
        raw.execute(
            "INSERT INTO studies (name, spec, created_at, version) VALUES ('s', 'spec', 1, '0')",
            [],
        )
        .unwrap();
        assert!(matches!(insert_trials(&raw, "s", &new_trials(2)), Ok(2)));
        drop(raw);

        let store = SqliteStore::open(&scratch.db()).unwrap();
        let worker = Worker::of_this_process(0);
        let trial = store.claim("s", &worker, FOREVER).unwrap().unwrap();
        store.finish(trial.id, &worker, &pruned()).unwrap();
        assert_eq!(store.trials("s").unwrap()[0].state, TrialState::Pruned);
        assert_eq!(store.trials("s").unwrap().len(), 2);
        let raw = Connection::open(scratch.db()).unwrap();
        let version: i64 = raw
            .pragma_query_value(None, "user_version", |row| row.get(0))
            .unwrap();
        assert_eq!(version, SCHEMA_VERSION);
        let e = raw
            .execute(
                "UPDATE trials SET state = 'waiting' WHERE state = 'pruned'",
                [],
            )
            .unwrap_err();
        assert!(e.to_string().contains("finished trial"), "{e}");
    }

    #[test]
    fn a_read_only_open_creates_and_changes_nothing() {
        let (scratch, store) = store_with("read-only", 3);
        let id = store.identity().id;
        drop(store);
        let before = snapshot(&scratch.0);
        assert_eq!(
            before.len(),
            1,
            "an idle store is one file: {:?}",
            before.keys()
        );
        let reader = SqliteStore::open_read_only(&scratch.db()).unwrap();
        assert_eq!(reader.trials("s").unwrap().len(), 3);
        assert_eq!(reader.identity().id, id);
        let e = reader
            .add_trials("s", &new_trials(4))
            .unwrap_err()
            .to_string();
        assert!(e.contains("readonly"), "{e}");
        drop(reader);
        assert_eq!(
            snapshot(&scratch.0),
            before,
            "no byte, time or file changed"
        );
    }

    #[test]
    fn a_read_only_open_refuses_a_missing_store_by_name_and_creates_no_folder() {
        let scratch = Scratch::new("missing");
        let path = scratch.0.join("typo/store.db");
        let e = crate::store::open_existing(path.to_str().unwrap())
            .err()
            .unwrap();
        let message = e.to_string();
        assert!(
            message.contains("no store at") && message.contains("typo/store.db"),
            "{message}"
        );
        assert!(message.contains("--store"), "{message}");
        assert!(!scratch.0.join("typo").exists());
        let e = crate::store::open_existing_writable(path.to_str().unwrap())
            .err()
            .unwrap();
        assert!(matches!(e, StoreError::Missing { .. }));
    }

    #[test]
    fn a_read_only_open_of_an_older_schema_says_how_to_upgrade_it() {
        let scratch = Scratch::new("ro-old");
        let raw = Connection::open(scratch.db()).unwrap();
        raw.execute_batch(SCHEMA_V2).unwrap();
        raw.pragma_update(None, "user_version", 2).unwrap();
        drop(raw);
        let before = std::fs::read(scratch.db()).unwrap();
        let e = SqliteStore::open_read_only(&scratch.db())
            .err()
            .unwrap()
            .to_string();
        assert!(
            e.contains("schema version 2") && e.contains("regstudy study run"),
            "{e}"
        );
        assert_eq!(std::fs::read(scratch.db()).unwrap(), before);
    }

    #[test]
    fn another_programs_database_is_refused_and_left_byte_for_byte_as_it_was() {
        let scratch = Scratch::new("foreign");
        let path = scratch.0.join("other.sqlite");
        let raw = Connection::open(&path).unwrap();
        raw.execute_batch(
            "CREATE TABLE notes (body TEXT); INSERT INTO notes VALUES ('keep me');
             PRAGMA user_version = 2;",
        )
        .unwrap();
        drop(raw);
        let before = snapshot(&scratch.0);
        for open in [SqliteStore::open, SqliteStore::open_read_only] {
            let e = open(&path).err().unwrap().to_string();
            assert!(
                e.contains("other.sqlite") && e.contains("not a regstudy store"),
                "{e}"
            );
            assert!(e.contains("notes"), "names what it holds: {e}");
            assert_eq!(
                snapshot(&scratch.0),
                before,
                "not switched to WAL, nothing added"
            );
        }
    }

    #[test]
    fn a_damaged_store_is_refused_rather_than_read_with_trials_missing() {
        let (scratch, store) = store_with("damaged", 300);
        drop(store);
        let mut bytes = std::fs::read(scratch.db()).unwrap();
        let page = 4096;
        let pages = bytes.len() / page;
        // Two neighbouring leaves of the trials table: the second becomes a copy of the
        // first, so its rows are gone and the first's appear twice.
        let (from, to) = (pages / 2 - 1, pages / 2);
        let copy = bytes[from * page..(from + 1) * page].to_vec();
        bytes[to * page..(to + 1) * page].copy_from_slice(&copy);
        std::fs::write(scratch.db(), &bytes).unwrap();
        let raw = Connection::open(scratch.db()).unwrap();
        let numbers: Vec<i64> = raw
            .prepare("SELECT number FROM trials NOT INDEXED")
            .unwrap()
            .query_map([], |row| row.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        let distinct: BTreeSet<i64> = numbers.iter().copied().collect();
        assert!(
            distinct.len() < 300,
            "plain SQLite reads it without an error, trials missing"
        );
        drop(raw);
        for open in [SqliteStore::open, SqliteStore::open_read_only] {
            let e = open(&scratch.db()).err().unwrap().to_string();
            assert!(
                e.contains("store.db") && e.contains("the store is damaged"),
                "{e}"
            );
        }
    }
}
