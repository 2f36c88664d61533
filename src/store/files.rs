//! The files of drop folders a connector has read: what they were (size,
//! modification time, checksum) and what became of them, so that a file
//! unchanged since is passed over without being opened.

use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, params};

use super::{Result, Store, format_time};

/// A file as a connector last read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SeenFile {
    /// Its size, in bytes.
    pub size: u64,
    /// Its modification time, in nanoseconds since 1970.
    pub mtime_ns: i64,
    /// Its content checksum, when it was read whole.
    pub checksum: Option<String>,
    /// `applied`, `refused`, `unchanged` or `skipped`.
    pub outcome: String,
    /// The run that read it, when one was recorded.
    pub run_id: Option<i64>,
    /// The connector file's fingerprint when it read it.
    pub fingerprint: String,
}

impl Store {
    /// How `connector` last read the file at `path`, if it did.
    ///
    /// # Errors
    /// On a database error.
    pub(crate) fn file_seen(&self, connector: &str, path: &str) -> Result<Option<SeenFile>> {
        Ok(self
            .conn
            .prepare_cached(
                "SELECT size, mtime_ns, checksum, outcome, run_id, fingerprint FROM files_seen
                 WHERE connector = ?1 AND path = ?2",
            )?
            .query_row([connector, path], |r| {
                Ok(SeenFile {
                    size: r.get::<_, i64>(0)?.max(0) as u64,
                    mtime_ns: r.get(1)?,
                    checksum: r.get(2)?,
                    outcome: r.get(3)?,
                    run_id: r.get(4)?,
                    fingerprint: r.get(5)?,
                })
            })
            .optional()?)
    }

    /// Records how `connector` read the file at `path`.
    ///
    /// # Errors
    /// On a database error.
    pub(crate) fn record_file_seen(
        &mut self,
        connector: &str,
        path: &str,
        seen: &SeenFile,
        now: DateTime<Utc>,
    ) -> Result<()> {
        self.conn
            .prepare_cached(
                "INSERT INTO files_seen (connector, path, size, mtime_ns, checksum, outcome,
                                         run_id, seen_at, fingerprint)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
                 ON CONFLICT (connector, path) DO UPDATE SET
                     size = excluded.size, mtime_ns = excluded.mtime_ns,
                     checksum = excluded.checksum, outcome = excluded.outcome,
                     run_id = excluded.run_id, seen_at = excluded.seen_at,
                     fingerprint = excluded.fingerprint",
            )?
            .execute(params![
                connector,
                path,
                seen.size as i64,
                seen.mtime_ns,
                seen.checksum,
                seen.outcome,
                seen.run_id,
                format_time(now),
                seen.fingerprint
            ])?;
        Ok(())
    }
}
