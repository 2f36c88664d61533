//! The SQLite state: every rusqlite call lives here.
//!
//! Owns the database file, its pragmas and versioned migrations
//! (`src/store/migrations/NNNN_name.sql`), and every query. One [`Store`] owns the
//! one connection of the process; imports write through an `ImportTx`, a single
//! transaction with prepared statements, so that an import is applied whole or
//! not at all. Another backend (PostgreSQL) would replace this module only: the
//! rest of the crate sees plain Rust types.

use std::cell::RefCell;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension};

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

mod beneficiaries;
mod claims;
mod dossiers;
mod evaluations;
mod exchanges;
mod fields;
mod files;
mod front;
mod front_pages;
mod gauges;
mod history;
mod import_tx;
mod inbound;
mod index;
mod instance;
mod journal;
mod left_out;
mod migrate;
mod outbox;
mod queue;
mod recipients;
mod references;
mod retention;
mod runs;
mod sources;
mod staff;
mod sticky;
mod thread;

use claims::ClaimOwner;
use migrate::{migrate, migrations_count};

pub(crate) use claims::TransportState;
pub(crate) use dossiers::{StoredDossier, StoredEvent};
pub(crate) use evaluations::OpenDossier;
pub(crate) use exchanges::{Channel, DueExchange, Exchange, ExchangeKind, NewExchange, Side};
pub(crate) use fields::{FieldEncoder, IdKey, id_key};
pub(crate) use files::SeenFile;
pub(crate) use front::{
    Asked, AuditRecord, FrontDossier, Redeemed, SignInLimits, SignInMail, SmallAttempt,
};
pub(crate) use front_pages::{DossierPage, KeptMessage};
pub(crate) use gauges::{Gauges, ImportGauges};
pub(crate) use import_tx::{DossierWrite, ImportTx};
pub(crate) use inbound::{Answered, InboundState, Unmatched};
pub(crate) use index::{Entry, entry_row};
pub use instance::{InstanceLock, LockError, lock_path};
pub(crate) use left_out::LeftOutConnector;
pub(crate) use outbox::{AdminNews, AlertRecord, Attempt, DueAlert, OutboxChange};
pub(crate) use queue::NewAlert;
pub(crate) use recipients::{OptOutHow, Subscription, new_token, token_shape};
pub(crate) use retention::{Purged, closed_before};
pub(crate) use runs::{Counts, MAX_STORED_REJECTIONS, NewRun, Rejection, RunRecord, RunStatus};
pub(crate) use sources::SourceHealth;
pub(crate) use staff::{Choices, Replied, Scope, StaffPage, WorkRow};
pub(crate) use thread::{DelayCache, StoreHandle};

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

/// How long a statement waits for another program's lock on the database.
const BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Runs `f` again while its error is `busy` (SQLite answers busy at once where
/// waiting could deadlock: it does not call the busy handler), up to the busy
/// timeout. Serves the switch to the WAL and the migrations at open.
fn patiently<T, E>(
    busy: impl Fn(&E) -> bool,
    mut f: impl FnMut() -> std::result::Result<T, E>,
) -> std::result::Result<T, E> {
    let start = std::time::Instant::now();
    loop {
        match f() {
            Err(e) if busy(&e) && start.elapsed() < BUSY_TIMEOUT => {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            other => return other,
        }
    }
}

/// Whether SQLite answered that another connection holds the database.
fn is_busy(error: &rusqlite::Error) -> bool {
    error.sqlite_error_code() == Some(rusqlite::ErrorCode::DatabaseBusy)
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
        patiently(is_busy, || {
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

    /// Opens a second connection to the database at `path`, which must exist
    /// and be migrated (by [`Store::open`]), for reading only (`query_only`):
    /// the reader of `StoreHandle`, whose long reads (a staff list, the
    /// managers' figures, the delay estimates) then leave the writer's thread
    /// to the pages and imports. WAL mode lets it read beside the writer.
    ///
    /// # Errors
    /// When the file cannot be opened.
    pub fn open_reader(path: &Path, cache_mb: u32) -> Result<Self> {
        let open_err = |source: rusqlite::Error| StoreError::Open {
            path: path.to_owned(),
            source: source.into(),
        };
        let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE
            | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX
            | rusqlite::OpenFlags::SQLITE_OPEN_URI;
        let conn = Connection::open_with_flags(path, flags).map_err(open_err)?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(open_err)?;
        conn.execute_batch(&format!(
            "PRAGMA query_only = ON;
             PRAGMA temp_store = MEMORY;
             PRAGMA cache_size = -{};",
            u64::from(cache_mb) * 1024
        ))
        .map_err(open_err)?;
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
    pub(crate) fn check(path: &Path) -> std::result::Result<(), String> {
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
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

/// A store in a temporary folder with one applied run (row 1) and the
/// dossiers `dossiers`: the rows of `INSERT INTO dossiers (id, connector,
/// source_id, reference, scheme, step, status, step_entered_at, fields,
/// first_run, last_run) VALUES …`; then the statements `more`.
#[cfg(test)]
pub(crate) fn test_store(dossiers: &str, more: &str) -> (Store, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("state.db"), 8).unwrap();
    store
        .conn
        .execute_batch(&format!(
            "INSERT INTO runs (id, connector, source, fingerprint, started_at, finished_at, status, baseline)
             VALUES (1, 'p', 'f', '0', '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z', 'applied', 1);
             INSERT INTO dossiers (id, connector, source_id, reference, scheme, step, status,
                                   step_entered_at, fields, first_run, last_run)
             VALUES {dossiers};
             {more}"
        ))
        .unwrap();
    (store, dir)
}
