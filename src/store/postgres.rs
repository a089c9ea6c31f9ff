//! The PostgreSQL store: one database that workers on many machines share.
//!
//! Every guarantee of the SQLite store holds here, enforced by the database server rather
//! than by a file lock:
//! - the schema is created (or checked) under a transaction-scoped advisory lock, so that any
//!   number of workers starting at once create it once; it lives in its own PostgreSQL schema,
//!   `regstudy`, and touches nothing else in the database;
//! - a claim is one statement: the first claimable trial is locked with `FOR UPDATE SKIP
//!   LOCKED`, marked running and written to the claims table together, so two workers can
//!   never take the same trial and neither waits for the other;
//! - heartbeats and every time stamp are the server's clock (`clock_timestamp()`), so that
//!   machines whose clocks differ judge staleness alike;
//! - triggers keep finished trials, their epochs and the claims as they were written.
//!
//! A lost connection (a server restart, a network cut) is re-established with backoff, and the
//! operation is repeated where repeating cannot do it twice: a claim carries a token, written
//! with its claims row, by which a claim whose reply was lost is found rather than made again;
//! a finish whose reply was lost is recognized by its result. A worker whose trial was taken
//! over while it was cut off learns so at its next epoch and stops ([`StoreError::Trial`]).

use super::postgres_url::{PostgresUrl, SslMode};
use super::rows::{
    self, config_to_toml, imported_attempts, sql_int, study_hint, to_json, trial_columns,
    Failure as RowFailure, LatestAttempt, SqlError, StoredTrial, CLAIM_COLUMNS, LATEST,
    START_REASONS,
};
use super::{
    Claim, Created, Holder, Outcome, Store, StoreError, StoreIdentity, StudyCopy, TrainingStart,
    Worker,
};
use crate::train::EpochMetrics;
use crate::trial::{NewTrial, StudyRecord, TrialRecord, TrialState};
use postgres::error::SqlState;
use postgres::{Client, GenericClient, Row, Transaction};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// The schema this code reads and writes, kept in `regstudy.metadata`.
const SCHEMA_VERSION: i64 = 2;

/// The key of the advisory lock under which the schema is created or checked ("RegS").
const SCHEMA_LOCK: i64 = 0x5265_6753;

/// How long a lost connection is tried again before the operation fails.
const RECONNECT_FOR: Duration = Duration::from_secs(120);

/// How long one connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The server's clock, in Unix seconds.
const SERVER_NOW: &str = "extract(epoch FROM clock_timestamp())::float8";

/// The schema of version 1, from which a new store is made and then upgraded
/// ([`upgrade_to_2`]). `point`, `summary`, `histogram` and `metrics` hold JSON, `config` the
/// TOML of the trial's `RunConfig`; times are Unix seconds of the server's clock. Columns
/// mean what they mean in the SQLite store.
const SCHEMA: &str = "
CREATE SCHEMA IF NOT EXISTS regstudy;
SET LOCAL search_path TO regstudy;
CREATE TABLE metadata (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE studies (
    name TEXT PRIMARY KEY,
    spec TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    version TEXT NOT NULL
);
CREATE TABLE trials (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    study TEXT NOT NULL REFERENCES studies(name),
    number BIGINT NOT NULL,
    retry INTEGER NOT NULL DEFAULT 0 CHECK (retry >= 0),
    retry_of BIGINT UNIQUE REFERENCES trials(id),
    grp TEXT NOT NULL,
    method TEXT NOT NULL,
    point TEXT NOT NULL,
    seed BIGINT NOT NULL,
    config TEXT NOT NULL,
    phase TEXT NOT NULL DEFAULT 'search' CHECK (phase IN ('search', 'confirm')),
    state TEXT NOT NULL
        CHECK (state IN ('waiting', 'running', 'done', 'failed', 'diverged')),
    worker TEXT,
    worker_host TEXT,
    worker_pid BIGINT,
    heartbeat DOUBLE PRECISION,
    attempts INTEGER NOT NULL DEFAULT 0,
    started_at DOUBLE PRECISION,
    finished_at DOUBLE PRECISION,
    summary TEXT,
    message TEXT,
    histogram TEXT,
    UNIQUE (study, number, retry),
    CHECK ((retry = 0) = (retry_of IS NULL))
);
CREATE INDEX trials_by_worker ON trials(worker, state);
CREATE INDEX trials_to_claim ON trials(study, state, number);
CREATE TABLE epochs (
    trial BIGINT NOT NULL REFERENCES trials(id),
    epoch BIGINT NOT NULL,
    metrics TEXT NOT NULL,
    PRIMARY KEY (trial, epoch)
);
CREATE TABLE claims (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    trial BIGINT NOT NULL REFERENCES trials(id),
    worker TEXT NOT NULL,
    at DOUBLE PRECISION NOT NULL,
    token TEXT UNIQUE
);
CREATE INDEX claims_by_trial ON claims(trial);

CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION '%', TG_ARGV[0] USING ERRCODE = 'integrity_constraint_violation'; END
$$;
CREATE TRIGGER finished_trials_do_not_change BEFORE UPDATE ON trials FOR EACH ROW
    WHEN (OLD.state IN ('done', 'failed', 'diverged'))
    EXECUTE FUNCTION refuse('a finished trial cannot change');
CREATE TRIGGER finished_trials_stay BEFORE DELETE ON trials FOR EACH ROW
    WHEN (OLD.state IN ('done', 'failed', 'diverged'))
    EXECUTE FUNCTION refuse('a finished trial cannot be deleted');
CREATE TRIGGER trials_are_not_truncated BEFORE TRUNCATE ON trials
    FOR EACH STATEMENT EXECUTE FUNCTION refuse('trials cannot be truncated');

CREATE FUNCTION retry_follows_failed_attempt() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.retry_of IS NOT NULL AND NOT EXISTS (
        SELECT 1 FROM regstudy.trials WHERE id = NEW.retry_of AND state = 'failed'
            AND study = NEW.study AND number = NEW.number AND retry = NEW.retry - 1)
    THEN
        RAISE EXCEPTION 'a retry follows a failed attempt of the same trial'
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER retries_follow_failed_attempts BEFORE INSERT ON trials FOR EACH ROW
    EXECUTE FUNCTION retry_follows_failed_attempt();

CREATE FUNCTION finished_epochs_stay() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF (TG_OP <> 'INSERT' AND EXISTS (SELECT 1 FROM regstudy.trials
            WHERE id = OLD.trial AND state IN ('done', 'failed', 'diverged')))
       OR (TG_OP <> 'DELETE' AND EXISTS (SELECT 1 FROM regstudy.trials
            WHERE id = NEW.trial AND state IN ('done', 'failed', 'diverged')))
    THEN
        RAISE EXCEPTION 'the epochs of a finished trial cannot change'
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    IF TG_OP = 'DELETE' THEN RETURN OLD; END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER finished_epochs_stay BEFORE INSERT OR UPDATE OR DELETE ON epochs FOR EACH ROW
    EXECUTE FUNCTION finished_epochs_stay();
CREATE TRIGGER epochs_are_not_truncated BEFORE TRUNCATE ON epochs
    FOR EACH STATEMENT EXECUTE FUNCTION refuse('epochs cannot be truncated');

CREATE TRIGGER claims_do_not_change BEFORE UPDATE OR DELETE ON claims FOR EACH ROW
    EXECUTE FUNCTION refuse('the claims are an append-only record');
CREATE TRIGGER claims_are_not_truncated BEFORE TRUNCATE ON claims
    FOR EACH STATEMENT EXECUTE FUNCTION refuse('the claims are an append-only record');
";

/// The trial states after which a trial and its epochs never change, as an SQL list.
const FINISHED_STATES: &str = "'done', 'failed', 'diverged', 'pruned'";

/// Version 2 adds the `pruned` state (a finished one) and records where each claim's
/// training began (see [`super::TrainingStart`]): at most one row per claim, as
/// append-only as the claims. A new store is made as version 1 ([`SCHEMA`]) and upgraded.
fn upgrade_to_2() -> String {
    format!(
        "
ALTER TABLE regstudy.trials DROP CONSTRAINT trials_state_check,
    ADD CONSTRAINT trials_state_check
        CHECK (state IN ('waiting', 'running', {FINISHED_STATES}));
DROP TRIGGER finished_trials_do_not_change ON regstudy.trials;
CREATE TRIGGER finished_trials_do_not_change BEFORE UPDATE ON regstudy.trials FOR EACH ROW
    WHEN (OLD.state IN ({FINISHED_STATES}))
    EXECUTE FUNCTION regstudy.refuse('a finished trial cannot change');
DROP TRIGGER finished_trials_stay ON regstudy.trials;
CREATE TRIGGER finished_trials_stay BEFORE DELETE ON regstudy.trials FOR EACH ROW
    WHEN (OLD.state IN ({FINISHED_STATES}))
    EXECUTE FUNCTION regstudy.refuse('a finished trial cannot be deleted');
CREATE OR REPLACE FUNCTION regstudy.finished_epochs_stay() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF (TG_OP <> 'INSERT' AND EXISTS (SELECT 1 FROM regstudy.trials
            WHERE id = OLD.trial AND state IN ({FINISHED_STATES})))
       OR (TG_OP <> 'DELETE' AND EXISTS (SELECT 1 FROM regstudy.trials
            WHERE id = NEW.trial AND state IN ({FINISHED_STATES})))
    THEN
        RAISE EXCEPTION 'the epochs of a finished trial cannot change'
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    IF TG_OP = 'DELETE' THEN RETURN OLD; END IF;
    RETURN NEW;
END
$$;
CREATE TABLE regstudy.starts (
    claim BIGINT PRIMARY KEY REFERENCES regstudy.claims(id),
    from_epoch BIGINT NOT NULL CHECK (from_epoch >= 0),
    discarded BIGINT NOT NULL CHECK (discarded >= 0),
    reason TEXT NOT NULL CHECK (reason IN ({START_REASONS}))
);
CREATE TRIGGER starts_do_not_change BEFORE UPDATE OR DELETE ON regstudy.starts FOR EACH ROW
    EXECUTE FUNCTION regstudy.refuse('the claims are an append-only record');
CREATE TRIGGER starts_are_not_truncated BEFORE TRUNCATE ON regstudy.starts
    FOR EACH STATEMENT EXECUTE FUNCTION regstudy.refuse('the claims are an append-only record');
"
    )
}

type Failure = RowFailure<postgres::Error>;

/// PostgreSQL's message, with its detail and hint when the server gave them.
impl SqlError for postgres::Error {
    fn describe(&self) -> String {
        let Some(db) = self.as_db_error() else {
            return match std::error::Error::source(self) {
                Some(source) => format!("{self}: {source}"),
                None => self.to_string(),
            };
        };
        let mut text = db.message().to_string();
        if let Some(detail) = db.detail() {
            text.push_str(&format!(" ({detail})"));
        }
        if let Some(hint) = db.hint() {
            text.push_str(&format!("; {hint}"));
        }
        text
    }
}

/// Whether the store may be created, or must exist already.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum OpenMode {
    /// Creates the schema when the database has none (`study run`, `study create`).
    Create,
    /// The store must exist; it is changed (`study retry`).
    Existing,
    /// The store must exist; every transaction is read-only (`status`, `report`).
    ReadOnly,
}

/// A store in a PostgreSQL database. The connection sits behind a mutex, so that one store
/// object serves every thread of a process; processes each open their own.
pub struct PostgresStore {
    url: PostgresUrl,
    tls: tokio_postgres_rustls::MakeRustlsConnect,
    mode: OpenMode,
    /// The random identity kept in the store's `metadata` table.
    id: String,
    /// `None` after the connection was lost and not yet re-established.
    client: Mutex<Option<Client>>,
}

impl PostgresStore {
    /// Connects to the database at `url`, creating the store's schema there under
    /// [`OpenMode::Create`].
    pub fn open(url: PostgresUrl, mode: OpenMode) -> Result<PostgresStore, StoreError> {
        let location = PathBuf::from(url.redacted());
        let fail = |f: Failure| f.into_error(&location, || "opening the store".into());
        let tls = tls_connector(&url).map_err(|e| fail(Failure::Data(e)))?;
        let mut client = connect(&url, &tls, mode).map_err(|e| connect_error(&url, e))?;
        let id = prepare_schema(&mut client, mode).map_err(fail)?;
        Ok(PostgresStore {
            url,
            tls,
            mode,
            id,
            client: Mutex::new(Some(client)),
        })
    }

    fn location(&self) -> PathBuf {
        PathBuf::from(self.url.redacted())
    }

    /// Runs `work` on the connection; `what` says, for an error, what was being done. When
    /// the connection is lost, it is re-established (with backoff, for up to
    /// [`RECONNECT_FOR`]) and `work` runs again with `again` set, if `repeatable`.
    fn run<T>(
        &self,
        what: impl Fn() -> String,
        repeatable: bool,
        mut work: impl FnMut(&mut Client, bool) -> Result<T, Failure>,
    ) -> Result<T, StoreError> {
        // A thread that panicked while holding the lock left the connection either usable or
        // closed, and a closed one is replaced below: poisoning is ignored.
        let mut slot = self.client.lock().unwrap_or_else(PoisonError::into_inner);
        let mut again = false;
        loop {
            if slot.as_ref().is_none_or(Client::is_closed) {
                *slot = None;
                let client = self.reconnect().map_err(|e| connect_error(&self.url, e))?;
                *slot = Some(client);
            }
            let client = slot.as_mut().expect("connected above");
            match work(client, again) {
                Err(Failure::Sql(e)) if is_connection_loss(&e) || client.is_closed() => {
                    *slot = None;
                    if !repeatable || again {
                        return Err(Failure::Sql(e).into_error(&self.location(), what));
                    }
                    again = true;
                }
                other => return other.map_err(|f| f.into_error(&self.location(), what)),
            }
        }
    }

    /// A new connection, tried with doubling pauses while the failure is one a restarting
    /// or unreachable server gives.
    fn reconnect(&self) -> Result<Client, postgres::Error> {
        let start = Instant::now();
        let mut pause = Duration::from_millis(250);
        loop {
            match connect(&self.url, &self.tls, self.mode) {
                Ok(client) => return Ok(client),
                Err(e) if is_connection_loss(&e) && start.elapsed() < RECONNECT_FOR => {
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_secs(8));
                }
                Err(e) => return Err(e),
            }
        }
    }
}

/// The TLS set-up of `url`. Under `require` and `verify-full` the server's certificate
/// must chain to a CA of `sslrootcert` (or of the public web roots without it) and name the
/// host; under `prefer` it is not checked, as libpq does not: TLS then only hides the traffic
/// from a passive observer (see [`SslMode`]).
fn tls_connector(url: &PostgresUrl) -> Result<tokio_postgres_rustls::MakeRustlsConnect, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS set-up: {e}"))?;
    let config = match url.sslmode {
        SslMode::Disable | SslMode::Prefer => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Unverified(provider)))
            .with_no_client_auth(),
        SslMode::Require | SslMode::VerifyFull => builder
            .with_root_certificates(trusted_roots(url)?)
            .with_no_client_auth(),
    };
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
}

/// The certificate authorities a verified connection trusts.
fn trusted_roots(url: &PostgresUrl) -> Result<rustls::RootCertStore, String> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::CertificateDer;
    let mut roots = rustls::RootCertStore::empty();
    let Some(path) = &url.sslrootcert else {
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        return Ok(roots);
    };
    let shown = path.display();
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("sslrootcert {shown}: cannot read it: {e}"))?;
    for cert in certs {
        let cert = cert.map_err(|e| format!("sslrootcert {shown}: not a PEM certificate: {e}"))?;
        roots
            .add(cert)
            .map_err(|e| format!("sslrootcert {shown}: unusable certificate: {e}"))?;
    }
    if roots.is_empty() {
        return Err(format!("sslrootcert {shown}: holds no certificate"));
    }
    Ok(roots)
}

/// `sslmode=prefer`'s verifier: any certificate is accepted, but the handshake's signatures
/// are still checked, so the session is encrypted to whoever holds the certificate's key.
#[derive(Debug)]
struct Unverified(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for Unverified {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls_pki_types::CertificateDer<'_>,
        _intermediates: &[rustls_pki_types::CertificateDer<'_>],
        _server_name: &rustls_pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls_pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// One connection attempt, with the store's schema as the search path.
fn connect(
    url: &PostgresUrl,
    tls: &tokio_postgres_rustls::MakeRustlsConnect,
    mode: OpenMode,
) -> Result<Client, postgres::Error> {
    let mut config = postgres::Config::new();
    config
        .user(&url.user)
        .host(&url.host)
        .port(url.port)
        .dbname(&url.dbname)
        .application_name("regstudy")
        .connect_timeout(CONNECT_TIMEOUT)
        .ssl_mode(match url.sslmode {
            SslMode::Disable => postgres::config::SslMode::Disable,
            SslMode::Prefer => postgres::config::SslMode::Prefer,
            SslMode::Require | SslMode::VerifyFull => postgres::config::SslMode::Require,
        });
    if let Some(password) = &url.password {
        config.password(password);
    }
    let mut client = config.connect(tls.clone())?;
    let read_only = if mode == OpenMode::ReadOnly {
        "SET default_transaction_read_only = on;"
    } else {
        ""
    };
    client.batch_execute(&format!("SET search_path TO regstudy; {read_only}"))?;
    Ok(client)
}

/// Whether `e` is a lost or refused connection, which a later attempt may not meet.
fn is_connection_loss(e: &postgres::Error) -> bool {
    if e.is_closed() {
        return true;
    }
    match e.code() {
        Some(code) => {
            let code = code.code();
            code.starts_with("08") || code.starts_with("57P")
        }
        // No server error: the failure is the transport's (refused, reset, timed out).
        None => e.as_db_error().is_none() && !is_tls_failure(e),
    }
}

/// Whether `e` is a failed TLS verification, which no retry mends.
fn is_tls_failure(e: &postgres::Error) -> bool {
    let text = format!("{e} {}", e.describe()).to_lowercase();
    text.contains("certificate") || text.contains("tls")
}

/// A failed connection, named by the URL without its password, with what to check.
fn connect_error(url: &PostgresUrl, e: postgres::Error) -> StoreError {
    let mut message = format!("connecting to the database: {}", e.describe());
    if is_tls_failure(&e) {
        let roots = url.sslrootcert.as_ref().map_or_else(
            || "the public web roots (name the server's CA with sslrootcert=PATH)".to_string(),
            |p| format!("sslrootcert {}", p.display()),
        );
        message.push_str(&format!(
            "; the server's certificate must be issued for host `{}` by a CA in {roots}",
            url.host
        ));
    } else if e.code() == Some(&SqlState::INVALID_PASSWORD) {
        message.push_str("; check the password in the URL or $PGPASSWORD");
    }
    StoreError::Database {
        path: PathBuf::from(url.redacted()),
        message,
    }
}

/// Creates the schema when the database has none (under [`OpenMode::Create`]), or checks the
/// one there; returns the store's identity. Under an advisory lock, so that workers that
/// start at once create it once.
fn prepare_schema(client: &mut Client, mode: OpenMode) -> Result<String, Failure> {
    let mut tx = client.transaction()?;
    if mode != OpenMode::ReadOnly {
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&SCHEMA_LOCK])?;
    }
    let exists: bool = tx
        .query_one("SELECT to_regclass('regstudy.metadata') IS NOT NULL", &[])?
        .get(0);
    if !exists {
        let schema_used: bool = tx
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n
                     ON n.oid = c.relnamespace WHERE n.nspname = 'regstudy')",
                &[],
            )?
            .get(0);
        if schema_used {
            return Err(Failure::Data(
                "the database has a schema `regstudy` that is not a regstudy store (it has \
                 tables and no store metadata)"
                    .into(),
            ));
        }
        if mode != OpenMode::Create {
            return Err(Failure::Data(
                "the database holds no regstudy store yet: create one with `regstudy study \
                 create SPEC --store URL` (or `study run`)"
                    .into(),
            ));
        }
        tx.batch_execute(SCHEMA)?;
        tx.execute(
            "INSERT INTO regstudy.metadata (key, value) VALUES ('schema_version', '1'),
                 ('store_id', md5(random()::text || clock_timestamp()::text))",
            &[],
        )?;
    }
    let mut version: String = tx
        .query_one(
            "SELECT value FROM regstudy.metadata WHERE key = 'schema_version'",
            &[],
        )?
        .get(0);
    if version == "1" {
        if mode == OpenMode::ReadOnly {
            return Err(Failure::Data(format!(
                "the store has schema version 1; this regstudy ({}) upgrades it to version \
                 {SCHEMA_VERSION} when it writes to it: run `regstudy study work` (or \
                 `study create`, `study retry`) on it once, then repeat this command",
                env!("CARGO_PKG_VERSION")
            )));
        }
        tx.batch_execute(&upgrade_to_2())?;
        version = SCHEMA_VERSION.to_string();
        tx.execute(
            "UPDATE regstudy.metadata SET value = $1 WHERE key = 'schema_version'",
            &[&version],
        )?;
    }
    if version != SCHEMA_VERSION.to_string() {
        return Err(Failure::Data(format!(
            "the store has schema version {version}, but this regstudy ({}) reads version \
             {SCHEMA_VERSION}; a newer regstudy probably wrote it",
            env!("CARGO_PKG_VERSION")
        )));
    }
    let id: String = tx
        .query_one(
            "SELECT value FROM regstudy.metadata WHERE key = 'store_id'",
            &[],
        )?
        .get(0);
    tx.commit()?;
    Ok(id)
}

impl Store for PostgresStore {
    fn create_study(
        &self,
        study: &StudyRecord,
        trials: &[NewTrial],
    ) -> Result<Created, StoreError> {
        self.run(
            || format!("creating study `{}`", study.name),
            true,
            |client, _| create_study(client, study, trials),
        )
    }

    fn add_trials(&self, study: &str, trials: &[NewTrial]) -> Result<usize, StoreError> {
        self.run(
            || format!("adding trials to study `{study}`"),
            true,
            |client, _| {
                let mut tx = client.transaction()?;
                require_study(&mut tx, study)?;
                let added = insert_trials(&mut tx, study, trials)?;
                tx.commit()?;
                Ok(added)
            },
        )
    }

    fn studies(&self) -> Result<Vec<StudyRecord>, StoreError> {
        self.run(
            || "listing the studies".into(),
            true,
            |client, _| studies(client),
        )
    }

    fn study(&self, name: &str) -> Result<StudyRecord, StoreError> {
        self.run(
            || format!("reading study `{name}`"),
            true,
            |client, _| match studies(client)?.into_iter().find(|s| s.name == name) {
                Some(study) => Ok(study),
                None => Err(no_study(client, name)),
            },
        )
    }

    /// Also sets `started_at` to now at every claim, as the SQLite store does.
    fn claim(
        &self,
        study: &str,
        worker: &Worker,
        stale_after: Duration,
    ) -> Result<Option<TrialRecord>, StoreError> {
        let token = claim_token(worker);
        self.run(
            || format!("claiming a trial of study `{study}`"),
            true,
            |client, again| claim(client, study, worker, stale_after, &token, again),
        )
    }

    fn heartbeat(&self, worker: &Worker) -> Result<(), StoreError> {
        self.run(
            || format!("refreshing the heartbeat of worker {}", worker.name),
            true,
            |client, _| {
                client.execute(
                    &format!(
                        "UPDATE trials SET heartbeat = {SERVER_NOW}
                         WHERE worker = $1 AND state = 'running'"
                    ),
                    &[&worker.name],
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
            true,
            |client, _| record_epoch(client, trial, worker, metrics),
        )
    }

    fn reset_epochs(&self, trial: i64, worker: &Worker) -> Result<(), StoreError> {
        self.run(
            || format!("clearing the epochs of the trial with id {trial}"),
            true,
            |client, _| {
                let mut tx = client.transaction()?;
                check_holder(&mut tx, trial, worker, "clear its epochs")?;
                tx.execute("DELETE FROM epochs WHERE trial = $1", &[&trial])?;
                tx.commit()?;
                Ok(())
            },
        )
    }

    /// Not repeated after a lost connection: a start whose reply was lost may have been
    /// recorded, and a claim has one start.
    fn record_start(
        &self,
        trial: i64,
        worker: &Worker,
        start: &TrainingStart,
    ) -> Result<(), StoreError> {
        self.run(
            || format!("recording where the trial with id {trial} began training"),
            false,
            |client, _| record_start(client, trial, worker, start),
        )
    }

    /// Not repeated after a lost connection: another worker may have claimed the trial in
    /// between, and the trial is taken over when its heartbeat stops anyway.
    fn release(&self, trial: i64, worker: &Worker) -> Result<(), StoreError> {
        self.run(
            || format!("handing back the trial with id {trial}"),
            false,
            |client, _| {
                let mut tx = client.transaction()?;
                check_holder(&mut tx, trial, worker, "hand it back")?;
                tx.execute(
                    "UPDATE trials SET state = 'waiting', worker = NULL, worker_host = NULL,
             worker_pid = NULL, heartbeat = NULL, attempts = attempts - 1
         WHERE id = $1",
                    &[&trial],
                )?;
                tx.commit()?;
                Ok(())
            },
        )
    }

    fn finish(&self, trial: i64, worker: &Worker, outcome: &Outcome) -> Result<(), StoreError> {
        self.run(
            || format!("finishing the trial with id {trial}"),
            true,
            |client, again| finish(client, trial, worker, outcome, again),
        )
    }

    fn trials(&self, study: &str) -> Result<Vec<TrialRecord>, StoreError> {
        self.run(
            || format!("reading the trials of study `{study}`"),
            true,
            |client, _| trials(client, study, false),
        )
    }

    fn history(&self, study: &str) -> Result<Vec<TrialRecord>, StoreError> {
        self.run(
            || format!("reading every attempt of study `{study}`"),
            true,
            |client, _| trials(client, study, true),
        )
    }

    /// Not repeated after a lost connection: whether the retry was made cannot be told from
    /// its result, and the command says so rather than guess.
    fn retry(&self, study: &str, numbers: &[usize]) -> Result<Vec<usize>, StoreError> {
        self.run(
            || format!("retrying failed trials of study `{study}`"),
            false,
            |client, _| retry(client, study, numbers),
        )
    }

    /// Repeated after a lost connection only as a whole: the transaction either committed
    /// (and the repeat finds the study there) or did not.
    fn import(&self, copy: &StudyCopy) -> Result<(), StoreError> {
        self.run(
            || format!("copying study `{}` in", copy.study.name),
            false,
            |client, _| import(client, copy),
        )
    }

    fn identity(&self) -> StoreIdentity {
        StoreIdentity {
            id: self.id.clone(),
            location: self.url.redacted(),
        }
    }

    fn epochs(&self, trial: i64) -> Result<Vec<EpochMetrics>, StoreError> {
        self.run(
            || format!("reading the epochs of the trial with id {trial}"),
            true,
            |client, _| epochs(client, trial),
        )
    }

    fn counts(&self, study: &str) -> Result<BTreeMap<TrialState, usize>, StoreError> {
        self.run(
            || format!("counting the trials of study `{study}`"),
            true,
            |client, _| counts(client, study),
        )
    }

    fn claims(&self, study: &str) -> Result<Vec<Claim>, StoreError> {
        self.run(
            || format!("reading the claims of study `{study}`"),
            true,
            |client, _| claims(client, study),
        )
    }
}

fn studies(client: &mut impl GenericClient) -> Result<Vec<StudyRecord>, Failure> {
    let rows = client.query(
        "SELECT name, spec, created_at, version FROM studies ORDER BY name",
        &[],
    )?;
    Ok(rows
        .iter()
        .map(|row| StudyRecord {
            name: row.get(0),
            spec: row.get(1),
            created_at: row.get(2),
            version: row.get(3),
        })
        .collect())
}

/// [`Failure::NoStudy`], with the names of the studies there are.
fn no_study(client: &mut impl GenericClient, name: &str) -> Failure {
    let names: Vec<String> = client
        .query("SELECT name FROM studies ORDER BY name", &[])
        .map(|rows| rows.iter().map(|r| r.get(0)).collect())
        .unwrap_or_default();
    Failure::NoStudy {
        study: name.into(),
        hint: study_hint(&names),
    }
}

fn require_study(client: &mut impl GenericClient, name: &str) -> Result<(), Failure> {
    let found = client.query_opt("SELECT 1 FROM studies WHERE name = $1", &[&name])?;
    match found {
        Some(_) => Ok(()),
        None => Err(no_study(client, name)),
    }
}

/// Inserts the study unless one of its name exists; a concurrent creator's insert is waited
/// for by `ON CONFLICT`, so two creators of one study agree on who made it.
fn create_study(
    client: &mut Client,
    study: &StudyRecord,
    trials: &[NewTrial],
) -> Result<Created, Failure> {
    let mut tx = client.transaction()?;
    let inserted = tx.query_opt(
        "INSERT INTO studies (name, spec, created_at, version) VALUES ($1, $2, $3, $4)
         ON CONFLICT (name) DO NOTHING RETURNING name",
        &[&study.name, &study.spec, &study.created_at, &study.version],
    )?;
    if inserted.is_none() {
        let spec: String = tx
            .query_one("SELECT spec FROM studies WHERE name = $1", &[&study.name])?
            .get(0);
        return if spec == study.spec {
            Ok(Created::Existing)
        } else {
            Err(Failure::SpecChanged(study.name.clone()))
        };
    }
    insert_trials(&mut tx, &study.name, trials)?;
    tx.commit()?;
    Ok(Created::New)
}

/// Inserts the trials whose number the study does not have yet; returns how many.
fn insert_trials(
    tx: &mut Transaction<'_>,
    study: &str,
    trials: &[NewTrial],
) -> Result<usize, Failure> {
    let insert = tx.prepare(
        "INSERT INTO trials (study, number, grp, method, point, seed, config, phase, state,
             attempts)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'waiting', 0)
         ON CONFLICT (study, number, retry) DO NOTHING",
    )?;
    let mut added = 0;
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
        added += tx.execute(
            &insert,
            &[
                &study,
                &number,
                &t.group,
                &t.method,
                &point,
                &seed,
                &config,
                &t.phase.as_str(),
            ],
        )?;
    }
    Ok(added as usize)
}

/// A token that names one call of [`Store::claim`], kept with the claim it made, so that a
/// claim whose reply was lost with the connection is found again instead of made twice.
fn claim_token(worker: &Worker) -> String {
    static CALLS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{}:{call}", worker.name)
}

/// The claim as one statement: the lowest-numbered trial of the study that is waiting, or
/// running with a stale heartbeat (by the server's clock) or a holder whose process is gone
/// from this host, locked past any trial another claim has locked, is marked running for
/// `worker`, and the claim is recorded with `token`. With `again` (the connection was lost
/// during an earlier try of this call), a claim already made under `token` is returned.
fn claim(
    client: &mut Client,
    study: &str,
    worker: &Worker,
    stale_after: Duration,
    token: &str,
    again: bool,
) -> Result<Option<TrialRecord>, Failure> {
    require_study(client, study)?;
    if again {
        let made = client.query_opt("SELECT trial FROM claims WHERE token = $1", &[&token])?;
        if let Some(row) = made {
            return read_trial(client, row.get(0)).map(Some);
        }
    }
    let dead = dead_holders_here(client, study, worker)?;
    let pid = i64::from(worker.pid);
    let row = client.query_opt(
        &format!(
            "WITH candidate AS (
                 SELECT t.id FROM trials t
                 WHERE t.study = $1 AND (t.state = 'waiting' OR (t.state = 'running' AND (
                     t.heartbeat IS NULL OR t.heartbeat <= {SERVER_NOW} - $5
                     OR t.id = ANY($6))))
                 ORDER BY t.number
                 LIMIT 1
                 FOR UPDATE SKIP LOCKED
             ), claimed AS (
                 UPDATE trials t SET state = 'running', worker = $2, worker_host = $3,
                     worker_pid = $4, heartbeat = {SERVER_NOW}, attempts = t.attempts + 1,
                     started_at = {SERVER_NOW}
                 FROM candidate WHERE t.id = candidate.id
                 RETURNING t.id, t.started_at
             )
             INSERT INTO claims (trial, worker, at, token)
             SELECT id, $2, started_at, $7 FROM claimed
             RETURNING trial"
        ),
        &[
            &study,
            &worker.name,
            &worker.host,
            &pid,
            &stale_after.as_secs_f64(),
            &dead,
            &token,
        ],
    )?;
    match row {
        Some(row) => read_trial(client, row.get(0)).map(Some),
        None => Ok(None),
    }
}

/// The running trials of the study held by processes of this host that no longer exist
/// ([`Holder::is_gone`] without the heartbeat, which the claim judges by the server's clock).
fn dead_holders_here(
    client: &mut Client,
    study: &str,
    claimant: &Worker,
) -> Result<Vec<i64>, Failure> {
    let rows = client.query(
        "SELECT id, worker_pid, worker FROM trials
         WHERE study = $1 AND state = 'running' AND worker_host = $2",
        &[&study, &claimant.host],
    )?;
    Ok(rows
        .iter()
        .filter(|row| {
            let holder = Holder {
                host: Some(claimant.host.clone()),
                pid: row
                    .get::<_, Option<i64>>(1)
                    .and_then(|p| u32::try_from(p).ok()),
                heartbeat: None,
                worker: row.get(2),
            };
            holder.process_is_gone_here(claimant)
        })
        .map(|row| row.get(0))
        .collect())
}

/// Locks the trial's row and fails unless it is running and held by `worker`; `action`
/// completes the message ("... so worker W cannot `action`").
fn check_holder(
    tx: &mut Transaction<'_>,
    trial: i64,
    worker: &Worker,
    action: &str,
) -> Result<(), Failure> {
    let row = tx.query_opt(
        "SELECT state, worker FROM trials WHERE id = $1 FOR UPDATE",
        &[&trial],
    )?;
    let row: Option<(String, Option<String>)> = row.map(|r| (r.get(0), r.get(1)));
    rows::check_holder(trial, row, worker, action)
}

fn record_start(
    client: &mut Client,
    trial: i64,
    worker: &Worker,
    start: &TrainingStart,
) -> Result<(), Failure> {
    let (from_epoch, discarded, reason) = rows::start_columns(start).map_err(Failure::Data)?;
    let mut tx = client.transaction()?;
    check_holder(&mut tx, trial, worker, "record where its training began")?;
    let claim: Option<i64> = tx
        .query_one(
            "SELECT max(id) FROM claims WHERE trial = $1 AND worker = $2",
            &[&trial, &worker.name],
        )?
        .get(0);
    let claim = claim.ok_or_else(|| Failure::Trial {
        trial,
        message: format!("has no claim by worker {}", worker.name),
    })?;
    tx.execute(
        "INSERT INTO starts (claim, from_epoch, discarded, reason) VALUES ($1, $2, $3, $4)",
        &[&claim, &from_epoch, &discarded, &reason],
    )?;
    tx.commit()?;
    Ok(())
}

fn record_epoch(
    client: &mut Client,
    trial: i64,
    worker: &Worker,
    metrics: &EpochMetrics,
) -> Result<(), Failure> {
    let (epoch, json) = rows::epoch_row(trial, metrics)?;
    let mut tx = client.transaction()?;
    check_holder(&mut tx, trial, worker, &format!("record epoch {epoch}"))?;
    tx.execute(
        "INSERT INTO epochs (trial, epoch, metrics) VALUES ($1, $2, $3)
         ON CONFLICT (trial, epoch) DO UPDATE SET metrics = EXCLUDED.metrics",
        &[&trial, &epoch, &json],
    )?;
    tx.commit()?;
    Ok(())
}

/// Ends the trial. With `again` (the connection was lost during an earlier try), a trial
/// that this worker already ended with this state counts as ended by this call.
fn finish(
    client: &mut Client,
    trial: i64,
    worker: &Worker,
    outcome: &Outcome,
    again: bool,
) -> Result<(), Failure> {
    let (summary, histogram) = rows::outcome_columns(trial, outcome)?;
    let mut tx = client.transaction()?;
    if again {
        let ended = tx.query_opt(
            "SELECT 1 FROM trials WHERE id = $1 AND state = $2 AND worker = $3",
            &[&trial, &outcome.state.as_str(), &worker.name],
        )?;
        if ended.is_some() {
            return Ok(());
        }
    }
    check_holder(&mut tx, trial, worker, "finish it")?;
    tx.execute(
        &format!(
            "UPDATE trials SET state = $2, finished_at = {SERVER_NOW}, summary = $3,
                 message = $4, histogram = $5
             WHERE id = $1"
        ),
        &[
            &trial,
            &outcome.state.as_str(),
            &summary,
            &outcome.message,
            &histogram,
        ],
    )?;
    tx.commit()?;
    Ok(())
}

/// Adds a new attempt after the failed latest attempt of each trial in `numbers` (every
/// failed trial when empty); returns the numbers retried.
fn retry(client: &mut Client, study: &str, numbers: &[usize]) -> Result<Vec<usize>, Failure> {
    let mut tx = client.transaction()?;
    require_study(&mut tx, study)?;
    let latest: Vec<LatestAttempt> = tx
        .query(
            &format!(
                "SELECT t.number, t.id, t.state FROM trials t WHERE t.study = $1 AND {LATEST}
                 ORDER BY t.number FOR UPDATE"
            ),
            &[&study],
        )?
        .iter()
        .map(|row| {
            let number: i64 = row.get(0);
            (
                usize::try_from(number).unwrap_or(usize::MAX),
                row.get(1),
                row.get(2),
            )
        })
        .collect();
    let chosen = rows::attempts_to_retry(&latest, study, numbers)?;
    for (_, id, _) in &chosen {
        tx.execute(
            "INSERT INTO trials (study, number, retry, retry_of, grp, method, point, seed,
                 config, phase, state, attempts)
             SELECT study, number, retry + 1, id, grp, method, point, seed, config, phase,
                 'waiting', 0
             FROM trials WHERE id = $1",
            &[id],
        )?;
    }
    tx.commit()?;
    Ok(chosen.into_iter().map(|(number, _, _)| *number).collect())
}

/// Writes a copied study in one transaction (see [`Store::import`]). Each attempt is written
/// as a worker would have left it: inserted, given its epochs while running, then ended.
fn import(client: &mut Client, copy: &StudyCopy) -> Result<(), Failure> {
    let rows = imported_attempts(copy).map_err(Failure::Data)?;
    let mut tx = client.transaction()?;
    let study = &copy.study;
    let inserted = tx.query_opt(
        "INSERT INTO studies (name, spec, created_at, version) VALUES ($1, $2, $3, $4)
         ON CONFLICT (name) DO NOTHING RETURNING name",
        &[&study.name, &study.spec, &study.created_at, &study.version],
    )?;
    if inserted.is_none() {
        return Err(Failure::Exists(study.name.clone()));
    }
    let mut ids = rows::ImportedIds::default();
    for r in &rows {
        let retry_of = ids.retry_of(r).map_err(Failure::Data)?;
        let retry = i32::try_from(r.retry).map_err(|e| Failure::Data(e.to_string()))?;
        let attempts = i32::try_from(r.attempts).map_err(|e| Failure::Data(e.to_string()))?;
        let id: i64 = tx
            .query_one(
                "INSERT INTO trials (study, number, retry, retry_of, grp, method, point, seed,
                     config, phase, state, worker, attempts, started_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 'running', $11, $12, $13)
                 RETURNING id",
                &[
                    &study.name,
                    &r.number,
                    &retry,
                    &retry_of,
                    &r.group,
                    &r.method,
                    &r.point,
                    &r.seed,
                    &r.config,
                    &r.phase,
                    &r.worker,
                    &attempts,
                    &r.started_at,
                ],
            )?
            .get(0);
        for (epoch, json) in &r.epochs {
            tx.execute(
                "INSERT INTO epochs (trial, epoch, metrics) VALUES ($1, $2, $3)",
                &[&id, epoch, json],
            )?;
        }
        tx.execute(
            "UPDATE trials SET state = $2, finished_at = $3, summary = $4, message = $5,
                 histogram = $6
             WHERE id = $1",
            &[
                &id,
                &r.finished.unwrap_or("waiting"),
                &r.finished_at,
                &r.summary,
                &r.message,
                &r.histogram,
            ],
        )?;
        ids.insert(r, id);
    }
    for c in &copy.claims {
        let trial = ids.of(c.trial).map_err(Failure::Data)?;
        let claim: i64 = tx
            .query_one(
                "INSERT INTO claims (trial, worker, at) VALUES ($1, $2, $3) RETURNING id",
                &[&trial, &c.worker, &c.at],
            )?
            .get(0);
        if let Some(start) = &c.start {
            let (from_epoch, discarded, reason) =
                rows::start_columns(start).map_err(Failure::Data)?;
            tx.execute(
                "INSERT INTO starts (claim, from_epoch, discarded, reason)
                 VALUES ($1, $2, $3, $4)",
                &[&claim, &from_epoch, &discarded, &reason],
            )?;
        }
    }
    tx.commit()?;
    Ok(())
}

fn read_trial(client: &mut impl GenericClient, id: i64) -> Result<TrialRecord, Failure> {
    let sql = format!(
        "SELECT {} FROM trials t WHERE t.id = $1",
        trial_columns(SERVER_NOW)
    );
    let row = client.query_one(&sql, &[&id])?;
    stored_trial(&row)?.parse().map_err(Failure::Data)
}

/// The study's trials: each number's latest attempt (`every_attempt`: all of them), by
/// number and attempt.
fn trials(
    client: &mut Client,
    study: &str,
    every_attempt: bool,
) -> Result<Vec<TrialRecord>, Failure> {
    require_study(client, study)?;
    let latest = if every_attempt { "TRUE" } else { LATEST };
    let sql = format!(
        "SELECT {} FROM trials t WHERE t.study = $1 AND {latest}
         ORDER BY t.number, t.retry",
        trial_columns(SERVER_NOW)
    );
    let rows = client.query(&sql, &[&study])?;
    rows.iter()
        .map(|row| stored_trial(row)?.parse().map_err(Failure::Data))
        .collect()
}

/// Reads the columns of [`trial_columns`].
fn stored_trial(row: &Row) -> Result<StoredTrial, Failure> {
    let count = |column: usize, name: &str| -> Result<u32, Failure> {
        let value: i32 = row.try_get(column)?;
        u32::try_from(value)
            .map_err(|_| Failure::Data(format!("column {name} holds {value}, not a count")))
    };
    Ok(StoredTrial {
        id: row.try_get(0)?,
        number: row.try_get(1)?,
        group: row.try_get(2)?,
        method: row.try_get(3)?,
        point: row.try_get(4)?,
        seed: row.try_get(5)?,
        config: row.try_get(6)?,
        state: row.try_get(7)?,
        worker: row.try_get(8)?,
        attempts: count(9, "attempts")?,
        started_at: row.try_get(10)?,
        finished_at: row.try_get(11)?,
        summary: row.try_get(12)?,
        message: row.try_get(13)?,
        histogram: row.try_get(14)?,
        phase: row.try_get(15)?,
        retry: count(16, "retry")?,
        heartbeat_age: row.try_get(17)?,
    })
}

fn epochs(client: &mut Client, trial: i64) -> Result<Vec<EpochMetrics>, Failure> {
    if client
        .query_opt("SELECT 1 FROM trials WHERE id = $1", &[&trial])?
        .is_none()
    {
        return Err(Failure::Trial {
            trial,
            message: "does not exist".into(),
        });
    }
    let rows = client.query(
        "SELECT epoch, metrics FROM epochs WHERE trial = $1 ORDER BY epoch",
        &[&trial],
    )?;
    rows.iter()
        .map(|row| {
            let (epoch, json): (i64, String) = (row.get(0), row.get(1));
            rows::read_epoch(trial, epoch, &json)
        })
        .collect()
}

fn counts(client: &mut Client, study: &str) -> Result<BTreeMap<TrialState, usize>, Failure> {
    require_study(client, study)?;
    let mut counts: BTreeMap<TrialState, usize> =
        TrialState::ALL.into_iter().map(|s| (s, 0)).collect();
    let rows = client.query(
        &format!(
            "SELECT t.state, count(*) FROM trials t WHERE t.study = $1 AND {LATEST}
             GROUP BY t.state"
        ),
        &[&study],
    )?;
    for row in rows {
        let (state, n): (String, i64) = (row.get(0), row.get(1));
        let state = state.parse::<TrialState>().map_err(Failure::Data)?;
        counts.insert(state, usize::try_from(n).unwrap_or(0));
    }
    Ok(counts)
}

fn claims(client: &mut Client, study: &str) -> Result<Vec<Claim>, Failure> {
    require_study(client, study)?;
    let rows = client.query(
        &format!(
            "SELECT {CLAIM_COLUMNS} FROM claims c JOIN trials t ON t.id = c.trial
             LEFT JOIN starts s ON s.claim = c.id
             WHERE t.study = $1 ORDER BY c.id"
        ),
        &[&study],
    )?;
    rows.iter()
        .map(|row| {
            Ok(Claim {
                trial: row.get(0),
                worker: row.get(1),
                at: row.get(2),
                start: rows::training_start(row.get(3), row.get(4), row.get(5))
                    .map_err(Failure::Data)?,
            })
        })
        .collect()
}
