//! The SQLite state: every rusqlite call lives here.
//!
//! Owns the database file, its pragmas and versioned migrations
//! (`src/store/migrations/NNNN_name.sql`), and every query. One [`Store`] owns the
//! one connection of the process; imports write through an [`ImportTx`], a single
//! transaction with prepared statements, so that an import is applied whole or
//! not at all. Another backend (PostgreSQL) would replace this module only: the
//! rest of the crate sees plain Rust types.

use std::cell::RefCell;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, Transaction, params};
use rusqlite_migration::{M, Migrations};
use sticky::Param;

use crate::model::{Dossier, Event, EventKind};

/// Errors from the state database.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The folder of the database could not be created.
    #[error("cannot create the state folder {path}")]
    Folder {
        /// The folder.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The database could not be opened or migrated.
    #[error("cannot open the state database {path}")]
    Open {
        /// The database file.
        path: PathBuf,
        /// Why.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A query failed.
    #[error("state database error")]
    Sqlite(#[source] rusqlite::Error),
    /// Another process held the database past the busy timeout.
    #[error(
        "the state database is busy: another process has been writing to it for more than {} s (an import, most likely: see `alertissimo runs`); try again when it is done",
        BUSY_TIMEOUT.as_secs()
    )]
    Locked(#[source] rusqlite::Error),
    /// Another process holds the write lock.
    #[error(
        "another import is writing to {0} (the daemon, or another command); try again when it is done"
    )]
    Busy(PathBuf),
    /// A stored value has an unexpected type.
    #[error("unexpected value in the state database")]
    Value(#[from] rusqlite::types::FromSqlError),
    /// A stored value could not be read back.
    #[error("corrupt value in the state database: {0}")]
    Corrupt(String),
    /// A backup could not be written.
    #[error("backup: {0}")]
    Backup(String),
    /// The operating system gave no random bytes for a token.
    #[error("cannot draw a random token: {0}")]
    Random(String),
}

mod claims;
mod evaluations;
mod fields;
mod files;
mod gauges;
mod history;
mod index;
mod instance;
mod journal;
mod left_out;
mod outbox;
mod recipients;
mod references;
mod retention;
mod sources;
mod sticky;
mod thread;

use claims::ClaimOwner;
pub use claims::TransportState;
pub use evaluations::OpenDossier;
pub use fields::{FieldEncoder, IdKey, id_key};
pub use files::SeenFile;
pub use gauges::{Gauges, ImportGauges, LATENCY_BOUNDS};
pub use index::{Entry, entry_row};
pub use instance::{InstanceLock, LockError, lock_path};
pub use left_out::LeftOutConnector;
pub use outbox::{AdminNews, Change, Delivery, DueAlert};
pub use recipients::{OptOut, OptOutHow, Subscription, token_shape};
pub use retention::{PERSONAL, Purged, closed_before};
pub use sources::SourceHealth;
pub use thread::{DelayCache, StoreHandle};

type Result<T, E = StoreError> = std::result::Result<T, E>;

/// SQLite's errors, a lock held too long told apart: its message says what to do.
impl From<rusqlite::Error> for StoreError {
    fn from(error: rusqlite::Error) -> Self {
        match error.sqlite_error_code() {
            Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) => {
                Self::Locked(error)
            }
            _ => Self::Sqlite(error),
        }
    }
}

/// A migration hook's error from the store's: SQLite's stays itself, the others
/// become their message.
impl From<StoreError> for rusqlite_migration::HookError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Sqlite(e) | StoreError::Locked(e) => Self::RusqliteError(e),
            other => Self::Hook(other.to_string()),
        }
    }
}

/// A migration: its SQL, then the Rust code that converts what SQL cannot.
type Migration = (
    &'static str,
    Option<fn(&Transaction<'_>) -> rusqlite_migration::HookResult>,
);

const MIGRATIONS: &[Migration] = &[
    (include_str!("migrations/0001_init.sql"), None),
    (include_str!("migrations/0002_outbox.sql"), None),
    (include_str!("migrations/0003_delivery.sql"), None),
    (include_str!("migrations/0004_admin_reports.sql"), None),
    (
        include_str!("migrations/0005_compact_state.sql"),
        Some(fields::migrate_0005),
    ),
    (include_str!("migrations/0006_sources.sql"), None),
    (include_str!("migrations/0007_messages.sql"), None),
    (include_str!("migrations/0008_timers.sql"), None),
    (include_str!("migrations/0009_retention.sql"), None),
    (
        include_str!("migrations/0010_change_index.sql"),
        Some(index::migrate_0010),
    ),
    (
        include_str!("migrations/0011_reference_index.sql"),
        Some(references::migrate_0011),
    ),
    (include_str!("migrations/0012_claims.sql"), None),
    (include_str!("migrations/0013_unchanged_runs.sql"), None),
    (
        include_str!("migrations/0014_run_encoding_and_changed.sql"),
        None,
    ),
    (include_str!("migrations/0015_files_seen.sql"), None),
    (include_str!("migrations/0016_left_out.sql"), None),
    (include_str!("migrations/0017_gauge_totals.sql"), None),
    (include_str!("migrations/0018_unsubscribe.sql"), None),
];

fn migrations() -> Migrations<'static> {
    Migrations::new(
        MIGRATIONS
            .iter()
            .map(|(sql, hook)| match hook {
                Some(hook) => M::up_with_hook(sql, *hook),
                None => M::up(sql),
            })
            .collect(),
    )
}

fn migrations_count() -> i64 {
    MIGRATIONS.len() as i64
}

/// How long a statement waits for another program's lock on the database.
const BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Runs `f` again while SQLite answers busy at once (where waiting could
/// deadlock, it does not call the busy handler), up to the busy timeout.
fn patiently<T>(mut f: impl FnMut() -> rusqlite::Result<T>) -> rusqlite::Result<T> {
    let start = std::time::Instant::now();
    loop {
        match f() {
            Err(e)
                if e.sqlite_error_code() == Some(rusqlite::ErrorCode::DatabaseBusy)
                    && start.elapsed() < BUSY_TIMEOUT =>
            {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            other => return other,
        }
    }
}

/// Migrates the database to this version's schema. Two programs opening a new
/// database at once both find it empty; the second one's migration fails on
/// the tables the first one made, or is refused at once: then what counts is
/// whether the schema is the latest now (issue 17, item 31).
fn migrate(conn: &mut Connection) -> std::result::Result<(), rusqlite_migration::Error> {
    let start = std::time::Instant::now();
    loop {
        let Err(error) = migrations().to_latest(conn) else {
            return Ok(());
        };
        let busy = matches!(&error, rusqlite_migration::Error::RusqliteError { err, .. }
            if err.sqlite_error_code() == Some(rusqlite::ErrorCode::DatabaseBusy));
        match migrations().pending_migrations(conn) {
            Ok(0) => return Ok(()),
            _ if busy && start.elapsed() < BUSY_TIMEOUT => {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            _ => return Err(error),
        }
    }
}

/// Formats an instant the way the store keeps it.
pub fn format_time(t: DateTime<Utc>) -> String {
    crate::model::instant_text(t)
}

fn parse_time(s: &str) -> Result<DateTime<Utc>> {
    crate::model::parse_instant_text(s).ok_or_else(|| {
        let reason = DateTime::parse_from_rfc3339(s)
            .err()
            .map_or_else(|| "out of range".to_owned(), |e| e.to_string());
        StoreError::Corrupt(format!("time '{s}': {reason}"))
    })
}

/// An instant as the store writes it (`2026-11-28T22:47:48Z`), in Unix seconds.
pub(crate) fn epoch(text: &[u8]) -> Result<i64> {
    match crate::model::instant_seconds(text) {
        Some(seconds) => Ok(seconds),
        None => {
            let text = std::str::from_utf8(text)
                .map_err(|_| StoreError::Corrupt("a time that is not UTF-8".to_owned()))?;
            Ok(parse_time(text)?.timestamp())
        }
    }
}

/// The outcome of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunStatus {
    /// The snapshot was applied.
    Applied,
    /// The snapshot was refused by a guard: nothing changed.
    Refused,
    /// The content was identical to the connector's last applied snapshot:
    /// nothing to read again, and the source is healthy.
    Unchanged,
}

impl RunStatus {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Applied => "applied",
            Self::Refused => "refused",
            Self::Unchanged => "unchanged",
        }
    }

    fn parse(s: &str) -> Result<Self> {
        match s {
            "applied" => Ok(Self::Applied),
            "refused" => Ok(Self::Refused),
            "unchanged" => Ok(Self::Unchanged),
            _ => Err(StoreError::Corrupt(format!("run status '{s}'"))),
        }
    }
}

/// Counts of one run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Counts {
    /// Data records read: `unchanged` + `changed` + `rejected` for an applied
    /// snapshot.
    pub rows: u64,
    /// Records that raised no event: identical to the stored state, or changed
    /// only in fields nobody watches (the state is updated).
    pub unchanged: u64,
    /// Records that raised at least one event (or brought a message).
    pub changed: u64,
    /// New dossiers.
    pub created: u64,
    /// Step changes.
    pub step_changed: u64,
    /// Watched field changes.
    pub field_changed: u64,
    /// Dossiers missing from the snapshot.
    pub disappeared: u64,
    /// Dossiers back in the snapshot.
    pub reappeared: u64,
    /// Records rejected.
    pub rejected: u64,
    /// Values ignored (fields with `on_invalid = "ignore"`).
    pub warnings: u64,
    /// Alerts the events queued in the outbox.
    pub alerts_queued: u64,
    /// Pending step alerts cancelled because their dossier left the step (debounce).
    pub alerts_cancelled: u64,
    /// Messages of the source added to the dossiers' timelines.
    pub messages: u64,
    /// Dossiers found stalled in their step (evaluations).
    pub stalled: u64,
    /// Deadline reminders due (evaluations).
    pub deadline: u64,
    /// Dossiers listed in a periodic review (evaluations).
    pub review: u64,
}

impl Counts {
    /// Counts one event.
    pub fn add(&mut self, kind: EventKind) {
        match kind {
            EventKind::Created => self.created += 1,
            EventKind::StepChanged => self.step_changed += 1,
            EventKind::FieldChanged => self.field_changed += 1,
            EventKind::Disappeared => self.disappeared += 1,
            EventKind::Reappeared => self.reappeared += 1,
            EventKind::Message => self.messages += 1,
            EventKind::Stalled => self.stalled += 1,
            EventKind::Deadline => self.deadline += 1,
            EventKind::Review => self.review += 1,
        }
    }
}

/// A run as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct RunRecord {
    /// Its id.
    pub id: i64,
    /// The connector.
    pub connector: String,
    /// What was read.
    pub source: String,
    /// The content checksum, for files.
    pub checksum: Option<String>,
    /// The connector's fingerprint when it ran.
    pub fingerprint: String,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// When it ended.
    pub finished_at: DateTime<Utc>,
    /// Applied or refused.
    pub status: RunStatus,
    /// Whether it was the connector's baseline.
    pub baseline: bool,
    /// What it counted.
    pub counts: Counts,
    /// Why it was refused.
    pub reasons: Vec<String>,
    /// The encoding a text export was decoded with.
    pub encoding: Option<String>,
}

/// An alert to queue.
#[derive(Debug, Clone)]
pub struct NewAlert<'a> {
    /// The event that triggered it.
    pub event_id: i64,
    /// Its dossier.
    pub dossier_id: i64,
    /// The rule that decided it.
    pub rule: &'a str,
    /// The template of its message.
    pub template: &'a str,
    /// `mandatory` or `informational`.
    pub class: &'a str,
    /// `beneficiary`, `instructor`, `service` or `address`.
    pub role: &'a str,
    /// The e-mail address.
    pub recipient: &'a str,
    /// Whether it may be gathered with others to the same recipient.
    pub digest: bool,
    /// Debounce: the step the dossier must still be in when it is due.
    pub hold_step: Option<&'a str>,
    /// When it was queued.
    pub created_at: DateTime<Utc>,
    /// Not before.
    pub due_at: DateTime<Utc>,
    /// Why it can never be sent (an address no relay would take): it is queued
    /// as failed, with this reason, so that it stays visible.
    pub invalid: Option<String>,
}

impl NewAlert<'_> {
    /// Its idempotency key: the same rule, dossier, event and recipient never
    /// queue twice. The Message-ID derives from it.
    pub fn key(&self) -> String {
        format!(
            "{}/{}/{}/{}",
            self.rule,
            self.dossier_id,
            self.event_id,
            self.recipient.to_lowercase()
        )
    }
}

/// An alert as stored in the outbox.
#[derive(Debug, Clone, serde::Serialize)]
pub struct AlertRecord {
    /// Its id.
    pub id: i64,
    /// Its idempotency key.
    pub key: String,
    /// The dossier's reference.
    pub reference: String,
    /// The dossier's connector.
    pub connector: String,
    /// The triggering event's kind.
    pub event: String,
    /// The triggering event's id.
    pub event_id: i64,
    /// The rule.
    pub rule: String,
    /// The template.
    pub template: String,
    /// `mandatory` or `informational`.
    pub class: String,
    /// The recipient's role.
    pub role: String,
    /// The address.
    pub recipient: String,
    /// Whether it may be gathered with others.
    pub digest: bool,
    /// `pending`, `sending`, `sent`, `failed` or `cancelled`.
    pub status: String,
    /// When it was queued.
    pub created_at: DateTime<Utc>,
    /// Not before.
    pub due_at: DateTime<Utc>,
    /// Why it was cancelled or failed.
    pub reason: Option<String>,
}

/// A rejected record or ignored value.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Rejection {
    /// `rejected` (the record was not used) or `warning` (a value was ignored).
    #[serde(deserialize_with = "known_severity")]
    pub severity: crate::model::StaticName,
    /// The file read.
    pub file: String,
    /// The line where the record starts.
    pub line: Option<u64>,
    /// The record number (1 = first data record).
    pub record: Option<u64>,
    /// The record's id, when it could be read.
    pub source_id: Option<String>,
    /// The field at fault.
    pub field: Option<String>,
    /// Why.
    pub reason: String,
}

/// A stored dossier, with its bookkeeping.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredDossier {
    /// The store's row id.
    pub rowid: i64,
    /// The connector it comes from.
    pub connector: String,
    /// Its canonical state.
    pub dossier: Dossier,
    /// Whether it is in the latest snapshot.
    pub present: bool,
    /// When it entered its current step.
    pub step_entered_at: DateTime<Utc>,
}

/// One event as stored, for timelines.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    /// The run that detected it.
    pub run_id: i64,
    /// The event.
    pub event: Event,
    /// When the import noticed it (the start of its run).
    pub detected_at: DateTime<Utc>,
    /// Whether it was recorded by a baseline import.
    pub baseline: bool,
}

/// A rejection's severity, read back (a daemon's answer over the control socket).
fn known_severity<'de, D: serde::Deserializer<'de>>(d: D) -> Result<&'static str, D::Error> {
    crate::model::one_of(d, &["rejected", "warning"])
}

/// The state database.
#[derive(Debug)]
pub struct Store {
    conn: Connection,
    path: PathBuf,
    names: RefCell<fields::Names>,
    /// This process as the owner of claims on alerts, once it claimed one.
    owner: Option<ClaimOwner>,
}

impl Store {
    /// Opens (creating if needed) the database at `path` and migrates it.
    ///
    /// # Errors
    /// When the folder cannot be created or the file opened or migrated.
    pub fn open(path: &Path, cache_mb: u32) -> Result<Self> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|source| StoreError::Folder {
                path: parent.to_owned(),
                source,
            })?;
        }
        let open_err = |source: Box<dyn std::error::Error + Send + Sync>| StoreError::Open {
            path: path.to_owned(),
            source,
        };
        let mut conn = Connection::open(path).map_err(|e| open_err(e.into()))?;
        conn.busy_timeout(BUSY_TIMEOUT)
            .map_err(|e| open_err(e.into()))?;
        // Switching to the WAL while another program's first import holds the
        // database in the rollback journal is refused at once (SQLite does not
        // wait where waiting could deadlock): it is tried again, up to the busy
        // timeout.
        patiently(|| {
            conn.execute_batch(&format!(
                "PRAGMA journal_mode = WAL;
                 PRAGMA synchronous = NORMAL;
                 PRAGMA temp_store = MEMORY;
                 PRAGMA cache_size = -{};",
                u64::from(cache_mb) * 1024
            ))
        })
        .map_err(|e| open_err(e.into()))?;
        // Every transaction here writes: it takes the write lock at its start,
        // waiting up to the busy timeout, rather than reading first and failing
        // at once when another program wrote meanwhile (issue 17, item 31).
        conn.set_transaction_behavior(rusqlite::TransactionBehavior::Immediate);
        // A migration may rebuild a table that others refer to (SQLite's way to
        // change a constraint): the links are checked once all have run.
        conn.pragma_update(None, "foreign_keys", false)
            .map_err(|e| open_err(e.into()))?;
        // Two commands opening a new database at once both find it empty; the
        // second one's migration then fails on the tables the first one made, and
        // only the first one's counts (issue 17, item 31).
        migrate(&mut conn).map_err(|e| open_err(e.into()))?;
        let broken: Option<String> = conn
            .query_row("PRAGMA foreign_key_check", [], |r| r.get(0))
            .optional()
            .map_err(|e| open_err(e.into()))?;
        if let Some(table) = broken {
            return Err(open_err(
                format!("a link of table {table} is broken after the migrations").into(),
            ));
        }
        conn.pragma_update(None, "foreign_keys", true)
            .map_err(|e| open_err(e.into()))?;
        Ok(Self {
            conn,
            path: path.to_owned(),
            names: RefCell::default(),
            owner: None,
        })
    }

    /// Checks, without creating or changing anything, that the database at
    /// `path` can be opened (or created) and migrated by this version.
    ///
    /// # Errors
    /// A reason naming the file or folder.
    pub fn check(path: &Path) -> std::result::Result<(), String> {
        if path.exists() {
            // A write killed in rollback-journal mode (a connector's first import)
            // leaves a hot journal that the next reader must roll back, which a
            // read-only connection cannot: then open it for writing (never
            // creating it), as `run` would, so that `check` accepts what `run`
            // recovers. Reading it rolls the interrupted write back, nothing else
            // (issue 17, item 30).
            let journal = PathBuf::from(format!("{}-journal", path.display()));
            let flags = if journal.exists() {
                rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE
            } else {
                rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY
            };
            let conn = Connection::open_with_flags(path, flags)
                .map_err(|e| format!("cannot open the state database: {e}"))?;
            // An import may hold it for a while.
            conn.busy_timeout(BUSY_TIMEOUT)
                .map_err(|e| format!("cannot open the state database: {e}"))?;
            let version: i64 = conn
                .query_row("PRAGMA user_version", [], |r| r.get(0))
                .map_err(|e| match e.sqlite_error_code() {
                    Some(rusqlite::ErrorCode::ReadOnly) if journal.exists() => format!(
                        "the state database holds an interrupted write ({}) that only a user who may write it can roll back: run check as the service's user, or start the service",
                        journal.display()
                    ),
                    _ => format!("not a readable SQLite database: {e}"),
                })?;
            let latest = migrations_count();
            if version > latest {
                return Err(format!(
                    "the state database has schema version {version}, newer than this alertissimo ({latest}): upgrade alertissimo"
                ));
            }
            return Ok(());
        }
        let mut dir = path.parent();
        while let Some(d) = dir {
            if d.as_os_str().is_empty() {
                dir = Some(Path::new("."));
                continue;
            }
            if d.exists() {
                let meta = std::fs::metadata(d)
                    .map_err(|e| format!("cannot inspect {}: {e}", d.display()))?;
                if !meta.is_dir() {
                    return Err(format!("{} is not a folder", d.display()));
                }
                if meta.permissions().readonly() {
                    return Err(format!("the folder {} is read-only", d.display()));
                }
                return Ok(());
            }
            dir = d.parent();
        }
        Ok(())
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// One run.
    ///
    /// # Errors
    /// On a database error.
    pub fn run(&self, id: i64) -> Result<Option<RunRecord>> {
        let mut runs = query_runs(&self.conn, "WHERE id = ?1", [id])?;
        Ok(runs.pop())
    }

    /// The most recent runs, newest first, optionally for one connector.
    ///
    /// # Errors
    /// On a database error.
    pub fn recent_runs(&self, connector: Option<&str>, limit: u32) -> Result<Vec<RunRecord>> {
        match connector {
            Some(c) => query_runs(
                &self.conn,
                "WHERE connector = ?1 AND kind = 'import' ORDER BY id DESC LIMIT ?2",
                params![c, limit],
            ),
            None => query_runs(
                &self.conn,
                "WHERE kind = 'import' ORDER BY id DESC LIMIT ?1",
                params![limit],
            ),
        }
    }
}

fn query_runs(
    conn: &Connection,
    tail: &str,
    params: impl rusqlite::Params,
) -> Result<Vec<RunRecord>> {
    let sql = format!(
        "SELECT id, connector, source, checksum, started_at, finished_at, status, baseline,
                    rows, unchanged, created, step_changed, field_changed, disappeared, reappeared,
                    rejected, warnings, reasons, fingerprint, alerts_queued, alerts_cancelled,
                    messages, stalled, deadline, review, encoding, changed
             FROM runs {tail}"
    );
    let mut stmt = conn.prepare(&sql)?;
    let mut rows = stmt.query(params)?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        let count = |i: usize| -> Result<u64> { Ok(r.get::<_, i64>(i)? as u64) };
        let reasons: String = r.get(17)?;
        out.push(RunRecord {
            id: r.get(0)?,
            connector: r.get(1)?,
            source: r.get(2)?,
            checksum: r.get(3)?,
            fingerprint: r.get(18)?,
            started_at: parse_time(r.get_ref(4)?.as_str()?)?,
            finished_at: parse_time(r.get_ref(5)?.as_str()?)?,
            status: RunStatus::parse(r.get_ref(6)?.as_str()?)?,
            baseline: r.get(7)?,
            counts: Counts {
                rows: count(8)?,
                unchanged: count(9)?,
                created: count(10)?,
                step_changed: count(11)?,
                field_changed: count(12)?,
                disappeared: count(13)?,
                reappeared: count(14)?,
                rejected: count(15)?,
                warnings: count(16)?,
                alerts_queued: count(19)?,
                alerts_cancelled: count(20)?,
                messages: count(21)?,
                stalled: count(22)?,
                deadline: count(23)?,
                review: count(24)?,
                changed: count(26)?,
            },
            reasons: serde_json::from_str(&reasons)
                .map_err(|e| StoreError::Corrupt(format!("run reasons: {e}")))?,
            encoding: r.get(25)?,
        });
    }
    Ok(out)
}

impl Store {
    /// The rejections of a run, in file order, at most `limit`.
    ///
    /// # Errors
    /// On a database error.
    pub fn rejections(&self, run_id: i64, limit: u32) -> Result<Vec<Rejection>> {
        let mut stmt = self.conn.prepare(
            "SELECT severity, file, line, record, source_id, field, reason
             FROM rejections WHERE run_id = ?1 ORDER BY id LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![run_id, limit], |r| {
            let severity: String = r.get(0)?;
            Ok(Rejection {
                severity: if severity == "warning" {
                    "warning"
                } else {
                    "rejected"
                },
                file: r.get(1)?,
                line: r.get::<_, Option<i64>>(2)?.map(|v| v as u64),
                record: r.get::<_, Option<i64>>(3)?.map(|v| v as u64),
                source_id: r.get(4)?,
                field: r.get(5)?,
                reason: r.get(6)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Dossiers whose reference or source id is `reference`.
    ///
    /// # Errors
    /// On a database error or a corrupt row.
    pub fn find_dossiers(&self, reference: &str) -> Result<Vec<StoredDossier>> {
        // The candidates, by the hash of their reference or of their source id
        // (compact states are scanned, not the dossiers), then checked.
        let mut rows = references::candidates(&self.conn, reference)?;
        rows.extend(index::rows_with_key(&self.conn, id_key(reference))?);
        let mut stmt = self.conn.prepare(&format!(
            "{DOSSIER_SELECT} WHERE d.id IN (SELECT value FROM json_each(?2))
                 AND (d.reference = ?1 OR d.source_id = ?1)
             ORDER BY 2, 3"
        ))?;
        let rows = serde_json::to_string(&rows).expect("integers serialise");
        let mut rows = stmt.query(params![reference, rows])?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            out.push(self.read_dossier(row)?);
        }
        Ok(out)
    }

    /// Every event of a dossier, in time order.
    ///
    /// # Errors
    /// On a database error or a corrupt row.
    pub fn events(&self, rowid: i64) -> Result<Vec<StoredEvent>> {
        let mut stmt = self.conn.prepare(
            "SELECT e.run_id, e.kind, e.from_step, e.to_step, e.field, e.old_value, e.new_value,
                    e.occurred_at, e.notified_by_source, r.started_at, e.baseline
             FROM events e JOIN runs r ON r.id = e.run_id
             WHERE e.dossier_id = ?1 ORDER BY e.occurred_at, e.id",
        )?;
        let mut rows = stmt.query([rowid])?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            out.push(StoredEvent {
                run_id: r.get(0)?,
                event: read_event(r, 1)?,
                detected_at: parse_time(r.get_ref(9)?.as_str()?)?,
                baseline: r.get(10)?,
            });
        }
        Ok(out)
    }

    /// Alerts of the outbox, those still to send first (next due first), then
    /// failed, then sent and cancelled: those with `status` (any when `None`), of
    /// one dossier (any when `None`), at most `limit`.
    ///
    /// # Errors
    /// On a database error or a corrupt row.
    pub fn alerts(
        &self,
        status: Option<&str>,
        dossier: Option<i64>,
        limit: usize,
    ) -> Result<Vec<AlertRecord>> {
        let mut stmt = self.conn.prepare(
            "SELECT a.id, a.key, d.reference, d.connector, e.kind, a.rule, a.template, a.class,
                    a.role, a.recipient, a.digest, a.status, a.created_at, a.due_at, a.reason,
                    a.event_id
             FROM alerts a JOIN dossiers d ON d.id = a.dossier_id JOIN events e ON e.id = a.event_id
             WHERE (?1 IS NULL OR a.status = ?1) AND (?3 IS NULL OR a.dossier_id = ?3)
             ORDER BY CASE a.status WHEN 'sending' THEN 0 WHEN 'pending' THEN 1 WHEN 'failed' THEN 2
                                    ELSE 3 END, a.due_at, a.id
             LIMIT ?2",
        )?;
        let mut rows = stmt.query(params![status, limit as i64, dossier])?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            out.push(AlertRecord {
                id: r.get(0)?,
                key: r.get(1)?,
                reference: r.get(2)?,
                connector: r.get(3)?,
                event: r.get(4)?,
                rule: r.get(5)?,
                template: r.get(6)?,
                class: r.get(7)?,
                role: r.get(8)?,
                recipient: r.get(9)?,
                digest: r.get(10)?,
                status: r.get(11)?,
                created_at: parse_time(r.get_ref(12)?.as_str()?)?,
                due_at: parse_time(r.get_ref(13)?.as_str()?)?,
                reason: r.get(14)?,
                event_id: r.get(15)?,
            });
        }
        Ok(out)
    }

    /// Records a refused run with its reasons and rejections, in its own transaction.
    ///
    /// # Errors
    /// On a database error.
    pub fn record_refused(&mut self, run: &NewRun, rejections: &[Rejection]) -> Result<i64> {
        let tx = self.conn.transaction()?;
        let id = insert_run(&tx, run, RunStatus::Refused)?;
        insert_rejections(&tx, id, rejections)?;
        tx.commit()?;
        Ok(id)
    }

    /// Starts the one transaction of an import, taking the database's write lock
    /// at once: what the import reads (the index, the checksums) cannot change
    /// under it, even from another process.
    ///
    /// # Errors
    /// When another import holds the lock longer than the busy timeout, or on a
    /// database error.
    pub fn begin_import(&mut self) -> Result<ImportTx<'_>> {
        self.begin(false)
    }

    /// Starts the transaction of an import that writes a great many new rows (a
    /// connector's first import, which records every dossier), with SQLite's
    /// rollback journal rather than its WAL when no other program has the
    /// database open.
    ///
    /// A rollback journal keeps the pages an import changes as they were; new
    /// pages, past the end of the file, need nothing kept: they are written
    /// once, where the WAL writes them twice (into the WAL, then into the
    /// database at the checkpoint). Meanwhile other programs reading the
    /// database wait for the import (up to the busy timeout), where with the WAL
    /// they would read the state before it. The WAL comes back when the
    /// transaction ends, committed or not.
    ///
    /// # Errors
    /// As [`Store::begin_import`].
    pub fn begin_bulk_import(&mut self) -> Result<ImportTx<'_>> {
        self.begin(true)
    }

    /// Whether the connector has an applied run (if not, its next import is its baseline).
    ///
    /// # Errors
    /// On a database error.
    pub fn has_applied_run(&self, connector: &str) -> Result<bool> {
        has_applied_run(&self.conn, connector)
    }

    fn begin(&mut self, bulk: bool) -> Result<ImportTx<'_>> {
        let conn = &self.conn;
        let journal = if bulk && journal::rollback(conn)? {
            journal::Restore(conn)
        } else {
            // Back in WAL mode if an earlier bulk import could not restore it.
            journal::wal(conn)?;
            // An import's commit is synced to the disk before it returns: the
            // file it read may be archived or deleted right after, so a power cut
            // must not take the import back. (Other commits keep the WAL's
            // `synchronous = NORMAL`; the guard below puts it back.)
            conn.pragma_update(None, "synchronous", "FULL")?;
            journal::Restore(conn)
        };
        // The import only links rows to the run it created and to dossiers it
        // created or read in this transaction: SQLite's own checks of those links
        // would cost a tenth of a first import. Debug builds check every link
        // before committing (ImportTx::finish).
        conn.pragma_update(None, "foreign_keys", false)?;
        let foreign_keys = ForeignKeysGuard(conn);
        let names = NamesGuard(&self.names);
        let tx = Transaction::new_unchecked(conn, rusqlite::TransactionBehavior::Immediate)
            .map_err(|e| match e.sqlite_error_code() {
                Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) => {
                    StoreError::Busy(self.path.clone())
                }
                _ => e.into(),
            })?;
        let prepare = |sql| sticky::Sticky::prepare(conn, sql).map(RefCell::new);
        Ok(ImportTx {
            hot: Statements {
                insert_dossier: prepare(INSERT_DOSSIER)?,
                insert_event: prepare(INSERT_EVENT)?,
            },
            references: RefCell::default(),
            last_time: RefCell::default(),
            tx,
            run_id: 0,
            names,
            _foreign_keys: foreign_keys,
            _journal: journal,
        })
    }
}

fn has_applied_run(conn: &Connection, connector: &str) -> Result<bool> {
    Ok(conn
        .prepare_cached("SELECT 1 FROM runs WHERE connector = ?1 AND status = 'applied' LIMIT 1")?
        .exists([connector])?)
}

/// A dossier's alerts held for another step than `?2`, and the step their event
/// came from. By the dossier's index, always: without statistics SQLite may take
/// the status index and scan every pending alert for each dossier (quadratic in
/// an import that queues thousands: 13.6 s instead of 1.8 s for the benchmark's
/// second snapshot).
const HELD_ALERTS: &str = "SELECT a.id, e.from_step FROM alerts a INDEXED BY alerts_dossier
     JOIN events e ON e.id = a.event_id
     WHERE a.dossier_id = ?1 AND a.status = 'pending' AND a.hold_step IS NOT NULL
       AND a.hold_step IS NOT ?2";

/// The columns [`Store::read_dossier`] reads, in its order.
const DOSSIER_SELECT: &str = "SELECT d.id, d.connector, d.source_id, d.step, d.status, d.fields,
    d.present, d.step_entered_at, d.scheme
    FROM dossiers d";

/// An event from the columns `kind, from_step, to_step, field, old_value,
/// new_value, occurred_at, notified_by_source`, the first at index `at`.
fn read_event(row: &rusqlite::Row<'_>, at: usize) -> Result<Event> {
    let kind: String = row.get(at)?;
    Ok(Event {
        kind: EventKind::parse(&kind)
            .ok_or_else(|| StoreError::Corrupt(format!("event kind '{kind}'")))?,
        from_step: row.get(at + 1)?,
        to_step: row.get(at + 2)?,
        field: row.get(at + 3)?,
        old_value: row.get(at + 4)?,
        new_value: row.get(at + 5)?,
        occurred_at: parse_time(row.get_ref(at + 6)?.as_str()?)?,
        notified_by_source: row.get(at + 7)?,
    })
}

impl Store {
    /// When the last applied import of a connector with this connector file
    /// (`fingerprint`) started, for incremental polling: what changed since then is
    /// asked for. A changed connector (a fixed mapping) asks for everything again.
    ///
    /// # Errors
    /// On a database error or a corrupt row.
    pub fn last_applied_start(
        &self,
        connector: &str,
        fingerprint: &str,
    ) -> Result<Option<DateTime<Utc>>> {
        let last: Option<String> = self
            .conn
            .prepare_cached(
                "SELECT max(started_at) FROM runs
                 WHERE connector = ?1 AND status = 'applied' AND fingerprint = ?2",
            )?
            .query_row([connector, fingerprint], |r| r.get(0))?;
        last.as_deref().map(parse_time).transpose()
    }

    /// Where the synchronisation of an API source stands (opaque to the store).
    ///
    /// # Errors
    /// On a database error.
    pub fn source_cursor(&self, connector: &str) -> Result<Option<String>> {
        Ok(self
            .conn
            .prepare_cached("SELECT cursor FROM source_status WHERE connector = ?1")?
            .query_row([connector], |r| r.get(0))
            .optional()?
            .flatten())
    }

    /// A dossier from the columns of [`DOSSIER_SELECT`] (the first nine of a row).
    fn read_dossier(&self, row: &rusqlite::Row<'_>) -> Result<StoredDossier> {
        let fields = fields::decode(
            row.get_ref(5)?.as_blob()?,
            row.get(8)?,
            &self.names,
            &self.conn,
        )?;
        Ok(StoredDossier {
            rowid: row.get(0)?,
            connector: row.get(1)?,
            dossier: Dossier {
                id: row.get(2)?,
                step: row.get(3)?,
                status: row.get(4)?,
                fields,
            },
            present: row.get(6)?,
            step_entered_at: parse_time(row.get_ref(7)?.as_str()?)?,
        })
    }
}

/// What is known of a run when it starts.
#[derive(Debug, Clone)]
pub struct NewRun {
    /// The connector.
    pub connector: String,
    /// What is read.
    pub source: String,
    /// The content checksum, for files.
    pub checksum: Option<String>,
    /// The connector's fingerprint (hex).
    pub fingerprint: String,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// When it ended (updated by [`ImportTx::finish`] for applied runs).
    pub finished_at: DateTime<Utc>,
    /// Whether it is the connector's baseline.
    pub baseline: bool,
    /// Counts so far.
    pub counts: Counts,
    /// Why it was refused.
    pub reasons: Vec<String>,
    /// The encoding a text export was decoded with.
    pub encoding: Option<String>,
}

impl NewRun {
    /// A run of `connector` reading `source`, started (and, until it ends,
    /// finished) at `at`, with nothing counted yet.
    pub fn new(connector: &str, source: &str, fingerprint: String, at: DateTime<Utc>) -> Self {
        Self {
            connector: connector.to_owned(),
            source: source.to_owned(),
            checksum: None,
            fingerprint,
            started_at: at,
            finished_at: at,
            baseline: false,
            counts: Counts::default(),
            reasons: Vec::new(),
            encoding: None,
        }
    }
}

fn insert_run(tx: &Transaction<'_>, run: &NewRun, status: RunStatus) -> Result<i64> {
    let c = &run.counts;
    tx.execute(
        "INSERT INTO runs (connector, source, checksum, started_at, finished_at, status, baseline,
                           rows, unchanged, created, step_changed, field_changed, disappeared,
                           reappeared, rejected, warnings, reasons, fingerprint, encoding)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18,
                 ?19)",
        params![
            run.connector,
            run.source,
            run.checksum,
            format_time(run.started_at),
            format_time(run.finished_at),
            status.as_str(),
            run.baseline,
            c.rows as i64,
            c.unchanged as i64,
            c.created as i64,
            c.step_changed as i64,
            c.field_changed as i64,
            c.disappeared as i64,
            c.reappeared as i64,
            c.rejected as i64,
            c.warnings as i64,
            serde_json::to_string(&run.reasons).unwrap_or_else(|_| "[]".to_owned()),
            run.fingerprint,
            run.encoding,
        ],
    )?;
    Ok(tx.last_insert_rowid())
}

/// How many rejections a run keeps in the store; the count is always exact.
pub const MAX_STORED_REJECTIONS: usize = 10_000;

fn insert_rejections(tx: &Transaction<'_>, run_id: i64, rejections: &[Rejection]) -> Result<()> {
    let mut stmt = tx.prepare_cached(
        "INSERT INTO rejections (run_id, severity, file, line, record, source_id, field, reason)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?;
    for r in rejections.iter().take(MAX_STORED_REJECTIONS) {
        stmt.execute(params![
            run_id,
            r.severity,
            r.file,
            r.line.map(|v| v as i64),
            r.record.map(|v| v as i64),
            r.source_id,
            r.field,
            r.reason,
        ])?;
    }
    Ok(())
}

/// The single transaction of an import. Dropping it without [`ImportTx::finish`] rolls back.
pub struct ImportTx<'a> {
    // Fields drop in this order: the statements, the transaction (rolled back
    // unless finished), then the guards.
    hot: Statements<'a>,
    /// The reference index entries of the dossiers this import created or renamed.
    references: RefCell<references::Pending>,
    /// The last instant written, and its text: a new dossier's `created` event
    /// happened when it entered its step, written just before.
    last_time: RefCell<(Option<DateTime<Utc>>, String)>,
    tx: Transaction<'a>,
    run_id: i64,
    names: NamesGuard<'a>,
    _foreign_keys: ForeignKeysGuard<'a>,
    /// Once it ended: back to the WAL and its usual syncs (a bulk import ran
    /// with the rollback journal, any import with full syncs).
    _journal: journal::Restore<'a>,
}

/// The statements an import runs for every new dossier, prepared once per import
/// (a statement cache lookup costs more than some of these inserts).
struct Statements<'a> {
    insert_dossier: RefCell<sticky::Sticky<'a>>,
    insert_event: RefCell<sticky::Sticky<'a>>,
}

const INSERT_DOSSIER: &str = "INSERT INTO dossiers (connector, source_id, reference, scheme,
        step, status, step_entered_at, fields, first_run, last_run)
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9)";
const INSERT_EVENT: &str = "INSERT INTO events (run_id, dossier_id, kind, from_step, to_step,
        field, old_value, new_value, occurred_at, baseline, notified_by_source, external_id)
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)
    ON CONFLICT (dossier_id, external_id) WHERE external_id IS NOT NULL DO NOTHING";

/// Turns the foreign key checks back on once an import's transaction ended
/// (the pragma does nothing inside a transaction).
struct ForeignKeysGuard<'a>(&'a Connection);

impl Drop for ForeignKeysGuard<'_> {
    fn drop(&mut self) {
        if let Err(error) = self.0.pragma_update(None, "foreign_keys", true) {
            tracing::error!(%error, "Cannot turn the foreign key checks back on.");
        }
    }
}

/// Forgets the field names cached during an import once it ends: a rolled-back
/// import may have cached names that were never committed.
struct NamesGuard<'a>(&'a RefCell<fields::Names>);

impl Drop for NamesGuard<'_> {
    fn drop(&mut self) {
        self.0.borrow_mut().clear();
    }
}

/// The state of a dossier to write.
#[derive(Debug)]
pub struct DossierWrite<'a> {
    /// The canonical state.
    pub dossier: &'a Dossier,
    /// When it entered its step.
    pub step_entered_at: DateTime<Utc>,
    /// The canonical fields as stored, encoded by the caller's thread
    /// ([`FieldEncoder`]).
    pub fields: &'a [u8],
}

impl DossierWrite<'_> {
    /// The stored columns of its state, in the order both writes use.
    fn state<'s>(&'s self, step_entered_at: &'s str) -> [Param<'s>; 6] {
        let d = self.dossier;
        [
            Param::Text(d.reference()),
            Param::text_or_null(d.get("scheme")),
            Param::Text(&d.step),
            Param::Text(&d.status),
            Param::Text(step_entered_at),
            Param::Blob(self.fields),
        ]
    }
}

impl ImportTx<'_> {
    /// Debug builds: every row links to rows that exist, as the foreign keys say,
    /// although SQLite did not check them during the import.
    #[cfg(debug_assertions)]
    fn check_links(&self) -> Result<()> {
        let mut stmt = self.tx.prepare("PRAGMA foreign_key_check")?;
        let broken: Vec<(String, Option<i64>, String)> = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
            .collect::<rusqlite::Result<_>>()?;
        match broken.first() {
            None => Ok(()),
            Some((table, row, parent)) => Err(StoreError::Corrupt(format!(
                "the import would leave {} rows linked to missing rows, the first in {table} \
                 (row {row:?}) to {parent}",
                broken.len()
            ))),
        }
    }

    /// Records the run being applied; the writes that follow belong to it.
    ///
    /// # Errors
    /// On a database error.
    pub fn start_run(&mut self, run: &NewRun) -> Result<i64> {
        self.run_id = insert_run(&self.tx, run, RunStatus::Applied)?;
        Ok(self.run_id)
    }

    /// The change-detection state of a connector, in stored order.
    ///
    /// # Errors
    /// On a database error, or when the stored state is cut.
    pub fn load_index(&self, connector: &str) -> Result<Vec<Entry>> {
        // Sized first: growing a large vector by doubling would briefly hold 1.5 copies of it.
        let mut entries = Vec::with_capacity(index::count(&self.tx, connector)?);
        index::read(&self.tx, connector, |e| entries.push(e))?;
        Ok(entries)
    }

    /// Replaces the change-detection state of a connector, with the import.
    ///
    /// # Errors
    /// On a database error.
    pub fn save_index(
        &self,
        connector: &str,
        entries: impl IntoIterator<Item = Entry>,
    ) -> Result<()> {
        index::write(&self.tx, connector, entries)
    }

    /// Gives every field name a stored id, and returns the encoder of an
    /// import's dossiers.
    ///
    /// # Errors
    /// On a database error.
    pub fn field_encoder<'n>(
        &self,
        names: impl IntoIterator<Item = &'n str>,
    ) -> Result<FieldEncoder> {
        fields::register(&self.tx, names)
    }

    /// Whether the connector already has an applied run (if not, the next import is its baseline).
    ///
    /// # Errors
    /// On a database error.
    pub fn has_applied_run(&self, connector: &str) -> Result<bool> {
        has_applied_run(&self.tx, connector)
    }

    /// Records where the synchronisation of an API source stands, with the import.
    ///
    /// # Errors
    /// On a database error.
    pub fn set_source_cursor(
        &self,
        connector: &str,
        cursor: &str,
        now: DateTime<Utc>,
    ) -> Result<()> {
        self.tx
            .prepare_cached(
                "INSERT INTO source_status (connector, first_seen_at, cursor) VALUES (?1, ?2, ?3)
                 ON CONFLICT (connector) DO UPDATE SET cursor = ?3",
            )?
            .execute(params![connector, format_time(now), cursor])?;
        Ok(())
    }

    /// The connector's last applied snapshot (an `unchanged` run repeats the
    /// one before it), if any.
    ///
    /// # Errors
    /// On a database error or a corrupt row.
    pub fn last_snapshot(&self, connector: &str) -> Result<Option<RunRecord>> {
        Ok(query_runs(
            &self.tx,
            "WHERE connector = ?1 AND kind = 'import' AND status IN ('applied', 'unchanged')
             ORDER BY id DESC LIMIT 1",
            [connector],
        )?
        .pop())
    }

    /// Records a run whose content is the connector's last applied snapshot's,
    /// read no further, and commits; returns its id.
    ///
    /// # Errors
    /// On a database error; then nothing is recorded.
    pub fn finish_unchanged(self, run: &NewRun) -> Result<i64> {
        let id = insert_run(&self.tx, run, RunStatus::Unchanged)?;
        drop(self.hot);
        self.tx.commit()?;
        Ok(id)
    }

    /// The latest run that read a file with this checksum, if any.
    ///
    /// # Errors
    /// On a database error.
    pub fn run_with_checksum(&self, connector: &str, checksum: &str) -> Result<Option<RunRecord>> {
        let id: Option<i64> = self
            .tx
            .query_row(
                "SELECT id FROM runs WHERE connector = ?1 AND checksum = ?2 ORDER BY id DESC LIMIT 1",
                [connector, checksum],
                |r| r.get(0),
            )
            .optional()?;
        match id {
            Some(id) => Ok(query_runs(&self.tx, "WHERE id = ?1", [id])?.pop()),
            None => Ok(None),
        }
    }

    /// Reads the stored state of a dossier.
    ///
    /// # Errors
    /// On a database error or a corrupt row.
    pub fn get(&self, rowid: i64) -> Result<Option<(Dossier, DateTime<Utc>)>> {
        let mut stmt = self.tx.prepare_cached(
            "SELECT source_id, step, status, fields, step_entered_at, scheme
             FROM dossiers WHERE id = ?1",
        )?;
        let mut rows = stmt.query([rowid])?;
        let Some(row) = rows.next()? else {
            return Ok(None);
        };
        let dossier = Dossier {
            id: row.get(0)?,
            step: row.get(1)?,
            status: row.get(2)?,
            fields: fields::decode(
                row.get_ref(3)?.as_blob()?,
                row.get(5)?,
                self.names.0,
                &self.tx,
            )?,
        };
        Ok(Some((dossier, parse_time(row.get_ref(4)?.as_str()?)?)))
    }

    /// The text of an instant, as stored.
    fn time_text(&self, t: DateTime<Utc>) -> std::cell::Ref<'_, str> {
        let mut last = self.last_time.borrow_mut();
        if last.0 != Some(t) {
            *last = (Some(t), format_time(t));
        }
        drop(last);
        std::cell::Ref::map(self.last_time.borrow(), |(_, text)| text.as_str())
    }

    /// Inserts a new dossier and returns its row id. The caller has made sure
    /// that its id is not stored yet for this connector.
    ///
    /// # Errors
    /// On a database error.
    pub fn insert(&self, connector: &str, w: &DossierWrite<'_>) -> Result<i64> {
        let entered = self.time_text(w.step_entered_at);
        let [reference, scheme, step, status, entered, fields] = w.state(&entered);
        self.hot.insert_dossier.borrow_mut().execute(&[
            Param::Kept(connector),
            Param::Text(&w.dossier.id),
            reference,
            scheme,
            step,
            status,
            entered,
            fields,
            Param::Int(self.run_id),
        ])?;
        let rowid = self.tx.last_insert_rowid();
        self.references
            .borrow_mut()
            .push(&self.tx, w.dossier.reference(), rowid)?;
        Ok(rowid)
    }

    /// Replaces the state of a stored dossier, whose reference was
    /// `stored_reference`, and marks it present.
    ///
    /// # Errors
    /// On a database error.
    pub fn update(&self, rowid: i64, stored_reference: &str, w: &DossierWrite<'_>) -> Result<()> {
        if w.dossier.reference() != stored_reference {
            self.references
                .borrow_mut()
                .push(&self.tx, w.dossier.reference(), rowid)?;
        }
        let entered = self.time_text(w.step_entered_at);
        let [reference, scheme, step, status, entered, fields] = w.state(&entered);
        self.tx
            .prepare_cached(
                "UPDATE dossiers SET reference = ?2, scheme = ?3, step = ?4, status = ?5,
                        step_entered_at = ?6, fields = ?7, last_run = ?8, present = 1
                 WHERE id = ?1",
            )?
            .execute(params![
                rowid,
                reference,
                scheme,
                step,
                status,
                entered,
                fields,
                self.run_id,
            ])?;
        Ok(())
    }

    /// The current step of a stored dossier.
    ///
    /// # Errors
    /// On a database error.
    pub fn step_of(&self, rowid: i64) -> Result<String> {
        Ok(self
            .tx
            .prepare_cached("SELECT step FROM dossiers WHERE id = ?1")?
            .query_row([rowid], |r| r.get(0))?)
    }

    /// Marks a dossier as missing from the latest snapshot.
    ///
    /// # Errors
    /// On a database error.
    pub fn mark_disappeared(&self, rowid: i64) -> Result<()> {
        self.tx
            .prepare_cached("UPDATE dossiers SET present = 0, last_run = ?2 WHERE id = ?1")?
            .execute(params![rowid, self.run_id])?;
        Ok(())
    }

    /// Records an event on a dossier.
    ///
    /// # Errors
    /// On a database error.
    pub fn insert_event(&self, rowid: i64, event: &Event, baseline: bool) -> Result<i64> {
        // Without a key, the row is always inserted.
        self.insert_event_keyed(rowid, event, baseline, None)
            .map(|id| id.unwrap_or_default())
    }

    /// Records an event; with a `key` (what it is about: a stay, a reminder), once:
    /// returns its id, or `None` when an event of this dossier has that key already.
    ///
    /// # Errors
    /// On a database error.
    pub fn insert_event_keyed(
        &self,
        rowid: i64,
        event: &Event,
        baseline: bool,
        key: Option<&str>,
    ) -> Result<Option<i64>> {
        fn text(v: &Option<String>) -> Param<'_> {
            Param::text_or_null(v.as_deref())
        }
        let inserted = self.hot.insert_event.borrow_mut().execute(&[
            Param::Int(self.run_id),
            Param::Int(rowid),
            Param::Static(event.kind.as_str()),
            text(&event.from_step),
            text(&event.to_step),
            text(&event.field),
            text(&event.old_value),
            text(&event.new_value),
            Param::Text(&self.time_text(event.occurred_at)),
            Param::Int(baseline.into()),
            Param::Int(event.notified_by_source.into()),
            Param::text_or_null(key),
        ])?;
        Ok((inserted == 1).then(|| self.tx.last_insert_rowid()))
    }

    /// Adds a message of the source to a dossier's timeline, once: returns false
    /// when this message is already there.
    ///
    /// # Errors
    /// On a database error.
    pub fn insert_message(
        &self,
        rowid: i64,
        message: &crate::model::SourceMessage,
        baseline: bool,
    ) -> Result<bool> {
        let mut event = Event::new(EventKind::Message, message.at);
        event.field = Some(message.from.clone());
        event.new_value = Some(message.text.clone());
        Ok(self
            .insert_event_keyed(rowid, &event, baseline, Some(&message.id))?
            .is_some())
    }

    /// Queues an alert; returns false when its key is already queued (the same
    /// rule, dossier, event and recipient), which keeps alerts unique.
    ///
    /// # Errors
    /// On a database error.
    pub fn queue_alert(&self, alert: &NewAlert<'_>) -> Result<bool> {
        let created = format_time(alert.created_at);
        let n = self
            .tx
            .prepare_cached(
                "INSERT INTO alerts (key, run_id, event_id, dossier_id, rule, template, class, role,
                                     recipient, digest, hold_step, status, created_at, due_at, updated_at,
                                     reason)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11,
                         CASE WHEN ?14 IS NULL THEN 'pending' ELSE 'failed' END, ?12, ?13, ?12, ?14)
                 ON CONFLICT (key) DO NOTHING",
            )?
            .execute(params![
                alert.key(),
                self.run_id,
                alert.event_id,
                alert.dossier_id,
                alert.rule,
                alert.template,
                alert.class,
                alert.role,
                alert.recipient,
                alert.digest,
                alert.hold_step,
                created,
                format_time(alert.due_at),
                alert.invalid,
            ])?;
        Ok(n == 1)
    }

    /// Gives the digestible alerts this run queued for one recipient the latest
    /// due time among them, so that they leave together as one message.
    ///
    /// # Errors
    /// On a database error.
    pub fn align_digests(&self) -> Result<()> {
        // One pass to find each recipient's latest due time, one to apply it: a
        // correlated subquery would read a recipient's alerts once per alert.
        self.tx.execute(
            "WITH latest AS (
                 SELECT recipient, max(due_at) AS due FROM alerts
                 WHERE run_id = ?1 AND digest = 1 AND status = 'pending'
                 GROUP BY recipient)
             UPDATE alerts SET due_at = latest.due
             FROM latest
             WHERE alerts.run_id = ?1 AND alerts.digest = 1 AND alerts.status = 'pending'
               AND alerts.recipient = latest.recipient AND alerts.due_at != latest.due",
            [self.run_id],
        )?;
        Ok(())
    }

    /// Whether a rule already alerted this recipient about this dossier since
    /// `since` (its cooldown); cancelled alerts do not count.
    ///
    /// # Errors
    /// On a database error.
    pub fn alerted_since(
        &self,
        dossier_id: i64,
        rule: &str,
        recipient: &str,
        since: DateTime<Utc>,
    ) -> Result<bool> {
        Ok(self
            .tx
            .prepare_cached(
                "SELECT 1 FROM alerts
                 WHERE dossier_id = ?1 AND rule = ?2 AND recipient = ?3 AND created_at >= ?4
                   AND status != 'cancelled'
                 LIMIT 1",
            )?
            .exists(params![dossier_id, rule, recipient, format_time(since)])?)
    }

    /// Cancels the pending debounced alerts of a dossier that now is in `step`
    /// while they wait for another one, with `reason()` (built only when there is
    /// one to cancel); returns how many, and the steps their events came from (a
    /// dossier back in one of them made a round trip: nothing to tell).
    ///
    /// # Errors
    /// On a database error.
    pub fn cancel_held(
        &self,
        dossier_id: i64,
        step: Option<&str>,
        now: DateTime<Utc>,
        reason: impl FnOnce() -> String,
    ) -> Result<(u64, Vec<String>)> {
        let mut held: Vec<(i64, Option<String>)> = Vec::new();
        {
            let mut stmt = self.tx.prepare_cached(HELD_ALERTS)?;
            let mut rows = stmt.query(params![dossier_id, step])?;
            while let Some(row) = rows.next()? {
                held.push((row.get(0)?, row.get(1)?));
            }
        }
        if held.is_empty() {
            return Ok((0, Vec::new()));
        }
        let reason = reason();
        let now = format_time(now);
        let mut cancel = self.tx.prepare_cached(
            "UPDATE alerts SET status = 'cancelled', reason = ?2, updated_at = ?3 WHERE id = ?1",
        )?;
        for (id, _) in &held {
            cancel.execute(params![id, reason, now])?;
        }
        Ok((
            held.len() as u64,
            held.into_iter().filter_map(|(_, from)| from).collect(),
        ))
    }

    /// Writes the final counts and rejections of the run and commits everything.
    ///
    /// # Errors
    /// On a database error; then nothing of the import is kept.
    pub fn finish(self, run: &NewRun, rejections: &[Rejection]) -> Result<i64> {
        let c = &run.counts;
        self.tx.execute(
            "UPDATE runs SET finished_at = ?2, rows = ?3, unchanged = ?4, created = ?5,
                    step_changed = ?6, field_changed = ?7, disappeared = ?8, reappeared = ?9,
                    rejected = ?10, warnings = ?11, alerts_queued = ?12, alerts_cancelled = ?13,
                    messages = ?14, stalled = ?15, deadline = ?16, review = ?17, changed = ?18
             WHERE id = ?1",
            params![
                self.run_id,
                format_time(run.finished_at),
                c.rows as i64,
                c.unchanged as i64,
                c.created as i64,
                c.step_changed as i64,
                c.field_changed as i64,
                c.disappeared as i64,
                c.reappeared as i64,
                c.rejected as i64,
                c.warnings as i64,
                c.alerts_queued as i64,
                c.alerts_cancelled as i64,
                c.messages as i64,
                c.stalled as i64,
                c.deadline as i64,
                c.review as i64,
                c.changed as i64,
            ],
        )?;
        insert_rejections(&self.tx, self.run_id, rejections)?;
        self.references.borrow_mut().flush(&self.tx)?;
        #[cfg(debug_assertions)]
        self.check_links()?;
        drop(self.hot);
        self.tx.commit()?;
        Ok(self.run_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new_run() -> NewRun {
        NewRun::new("portail", "export.csv", "0".to_owned(), Utc::now())
    }

    fn foreign_keys(store: &Store) -> bool {
        store
            .conn
            .pragma_query_value(None, "foreign_keys", |r| r.get(0))
            .unwrap()
    }

    fn journal_mode(conn: &Connection) -> String {
        conn.query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap()
    }

    fn runs(conn: &Connection) -> i64 {
        conn.query_row("SELECT count(*) FROM runs", [], |r| r.get(0))
            .unwrap()
    }

    #[test]
    fn a_bulk_import_uses_the_rollback_journal_then_the_wal_again() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        let mut store = Store::open(&path, 8).unwrap();
        let run = new_run();
        // Committed.
        let mut tx = store.begin_bulk_import().unwrap();
        assert_eq!(journal_mode(&tx.tx), "delete");
        tx.start_run(&run).unwrap();
        tx.finish(&run, &[]).unwrap();
        assert_eq!(journal_mode(&store.conn), "wal");
        assert_eq!(runs(&store.conn), 1);
        // Rolled back.
        let mut tx = store.begin_bulk_import().unwrap();
        tx.start_run(&run).unwrap();
        drop(tx);
        assert_eq!(journal_mode(&store.conn), "wal");
        assert_eq!(runs(&store.conn), 1, "the rolled-back run is gone");
        assert!(!dir.path().join("state.db-journal").exists());
        // Another program has the database open: the WAL, without waiting.
        let other = Connection::open(&path).unwrap();
        assert_eq!(runs(&other), 1);
        let started = std::time::Instant::now();
        let mut tx = store.begin_bulk_import().unwrap();
        assert_eq!(journal_mode(&tx.tx), "wal");
        assert!(
            started.elapsed() < BUSY_TIMEOUT / 2,
            "{:?}",
            started.elapsed()
        );
        tx.start_run(&run).unwrap();
        tx.finish(&run, &[]).unwrap();
        assert_eq!(runs(&other), 2, "the other program reads the import");
    }

    fn synchronous(conn: &Connection) -> i64 {
        conn.query_row("PRAGMA synchronous", [], |r| r.get(0))
            .unwrap()
    }

    /// Regression: an import committed with the WAL's `synchronous = NORMAL`,
    /// so a power cut right after could take it back while its file was
    /// already archived or deleted.
    #[test]
    fn an_import_commits_durably_and_other_writes_keep_the_wal_syncs() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("state.db"), 8).unwrap();
        assert_eq!(synchronous(&store.conn), 1, "NORMAL outside imports");
        let run = new_run();
        for bulk in [true, false] {
            let mut tx = if bulk {
                store.begin_bulk_import().unwrap()
            } else {
                store.begin_import().unwrap()
            };
            assert_eq!(synchronous(&tx.tx), 2, "FULL during an import");
            tx.start_run(&run).unwrap();
            tx.finish(&run, &[]).unwrap();
            assert_eq!(synchronous(&store.conn), 1, "NORMAL again after it");
        }
    }

    #[test]
    fn an_import_that_would_break_a_link_is_not_committed() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("state.db"), 8).unwrap();
        let mut tx = store.begin_import().unwrap();
        let run = new_run();
        tx.start_run(&run).unwrap();
        // An event of a dossier that does not exist.
        tx.insert_event_keyed(
            4242,
            &Event::new(EventKind::Created, run.started_at),
            false,
            None,
        )
        .unwrap();
        let error = tx.finish(&run, &[]).unwrap_err().to_string();
        assert!(error.contains("events"), "{error}");
        assert!(foreign_keys(&store), "checks are back on after the import");
        let runs: i64 = store
            .conn
            .query_row("SELECT count(*) FROM runs", [], |r| r.get(0))
            .unwrap();
        assert_eq!(runs, 0, "nothing of the import was committed");
    }

    #[test]
    fn foreign_keys_are_checked_again_after_an_import_rolls_back() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("state.db"), 8).unwrap();
        drop(store.begin_import().unwrap());
        assert!(foreign_keys(&store));
        let orphan = store.conn.execute(
            "INSERT INTO events (run_id, dossier_id, kind, occurred_at, baseline)
             VALUES (1, 1, 'created', '2026-01-01T00:00:00Z', 0)",
            [],
        );
        assert!(orphan.is_err(), "outside imports SQLite checks the links");
    }

    /// Regression: the held alerts of a dossier were looked up through the
    /// status index, scanning every pending alert for each step change.
    #[test]
    fn held_alerts_are_looked_up_by_dossier() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("state.db"), 8).unwrap();
        let plan: Vec<String> = store
            .conn
            .prepare(&format!("EXPLAIN QUERY PLAN {HELD_ALERTS}"))
            .unwrap()
            .query_map(params![1, "instruction"], |r| r.get::<_, String>(3))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert!(
            plan.iter()
                .any(|l| l.contains("USING INDEX alerts_dossier (dossier_id=?)")),
            "{plan:?}"
        );
    }
}
