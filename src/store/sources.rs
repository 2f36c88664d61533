//! The health of each source: last success, last error, staleness.
//!
//! Owns the `source_status` table and the queries that tell, per connector, when
//! it last imported a snapshot, its last error (a refused snapshot, or a drop
//! folder that could not be listed), and whether it is stale: no successful import
//! within its `max_age`, counted from its last success or, before any, from when the
//! daemon first saw it.

use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, params};

use super::{ImportTx, Result, Store, StoreError, format_time, parse_time};

/// The health of one source.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub(crate) struct SourceHealth {
    /// The connector.
    pub connector: String,
    /// The end of its last applied import.
    pub last_success: Option<DateTime<Utc>>,
    /// When its last error happened.
    pub last_error_at: Option<DateTime<Utc>>,
    /// Its last error: why a snapshot was refused, or why the source could not be read.
    pub last_error: Option<String>,
    /// Its `max_age`, in seconds, when it has one.
    pub max_age_seconds: Option<u64>,
    /// Whether it had no successful import within its `max_age`.
    pub stale: bool,
    /// Whether the administrators were already told of this staleness.
    #[serde(skip)]
    pub stale_reported: bool,
}

impl Store {
    /// Records an error reading a source outside a run (its drop folder cannot be listed).
    ///
    /// # Errors
    /// On a database error.
    pub(crate) fn record_source_error(
        &mut self,
        connector: &str,
        at: DateTime<Utc>,
        error: &str,
    ) -> Result<()> {
        self.conn.execute(
            "INSERT INTO source_status (connector, first_seen_at, last_error_at, last_error)
             VALUES (?1, ?2, ?2, ?3)
             ON CONFLICT (connector) DO UPDATE SET last_error_at = ?2, last_error = ?3",
            params![connector, format_time(at), error],
        )?;
        Ok(())
    }

    /// The health of each source `(connector, max_age)`, at `now`; a source seen
    /// for the first time is recorded as first seen now.
    ///
    /// # Errors
    /// On a database error or a corrupt row.
    pub(crate) fn source_health(
        &mut self,
        sources: &[(String, Option<std::time::Duration>)],
        now: DateTime<Utc>,
    ) -> Result<Vec<SourceHealth>> {
        let tx = self.conn.transaction()?;
        let mut out = Vec::with_capacity(sources.len());
        for (connector, max_age) in sources {
            tx.prepare_cached(
                "INSERT INTO source_status (connector, first_seen_at) VALUES (?1, ?2)
                 ON CONFLICT (connector) DO NOTHING",
            )?
            .execute(params![connector, format_time(now)])?;
            let (first_seen, error_at, error, reported): (
                String,
                Option<String>,
                Option<String>,
                Option<String>,
            ) = tx
                .prepare_cached(
                    "SELECT first_seen_at, last_error_at, last_error, stale_reported_at
                     FROM source_status WHERE connector = ?1",
                )?
                .query_row([connector], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
                })?;
            let success: Option<String> = tx
                .prepare_cached(
                    "SELECT max(finished_at) FROM runs
                     WHERE connector = ?1 AND status IN ('applied', 'unchanged')",
                )?
                .query_row([connector], |r| r.get(0))?;
            let refused: Option<(String, String)> = tx
                .prepare_cached(
                    "SELECT finished_at, reasons FROM runs
                     WHERE connector = ?1 AND status = 'refused' ORDER BY id DESC LIMIT 1",
                )?
                .query_row([connector], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()?;
            let last_success = success.as_deref().map(parse_time).transpose()?;
            let mut last_error_at = error_at.as_deref().map(parse_time).transpose()?;
            let mut last_error = error;
            if let Some((at, reasons)) = refused {
                let at = parse_time(&at)?;
                if last_error_at.is_none_or(|e| at > e) {
                    let reasons: Vec<String> = serde_json::from_str(&reasons)
                        .map_err(|e| StoreError::Corrupt(format!("run reasons: {e}")))?;
                    last_error_at = Some(at);
                    last_error = Some(format!("snapshot refused: {}", reasons.join("; ")));
                }
            }
            let since = match last_success {
                Some(t) => t,
                None => parse_time(&first_seen)?,
            };
            let stale = max_age.is_some_and(|age| {
                chrono::Duration::from_std(age).is_ok_and(|age| now - since > age)
            });
            let reported = reported.as_deref().map(parse_time).transpose()?;
            out.push(SourceHealth {
                connector: connector.clone(),
                last_success,
                last_error_at,
                last_error,
                max_age_seconds: max_age.map(|a| a.as_secs()),
                stale,
                stale_reported: reported.is_some_and(|r| r >= since),
            });
        }
        tx.commit()?;
        Ok(out)
    }

    pub(super) fn mark_stale_reported(
        tx: &rusqlite::Transaction<'_>,
        connector: &str,
        at: DateTime<Utc>,
    ) -> Result<()> {
        tx.prepare_cached("UPDATE source_status SET stale_reported_at = ?2 WHERE connector = ?1")?
            .execute(params![connector, format_time(at)])?;
        Ok(())
    }
}

impl Store {
    /// Where the synchronisation of an API source stands (opaque to the store).
    ///
    /// # Errors
    /// On a database error.
    pub(crate) fn source_cursor(&self, connector: &str) -> Result<Option<String>> {
        Ok(self
            .conn
            .prepare_cached("SELECT cursor FROM source_status WHERE connector = ?1")?
            .query_row([connector], |r| r.get(0))
            .optional()?
            .flatten())
    }
}

impl ImportTx<'_> {
    /// Records where the synchronisation of an API source stands, with the import.
    ///
    /// # Errors
    /// On a database error.
    pub(crate) fn set_source_cursor(
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::utc;
    use std::time::Duration;

    #[test]
    fn a_source_is_stale_after_max_age_without_success() {
        let dir = tempfile::tempdir().expect("temporary folder");
        let mut store = Store::open(&dir.path().join("s.db"), 8).expect("store");
        let sources = vec![
            ("portail".to_owned(), Some(Duration::from_secs(2 * 86_400))),
            ("scdl".to_owned(), None),
        ];
        let first = utc("2026-11-02T08:00:00Z");
        let health = store.source_health(&sources, first).expect("health");
        assert!(health.iter().all(|h| !h.stale && h.last_success.is_none()));
        store
            .record_source_error(
                "portail",
                utc("2026-11-03T08:00:00Z"),
                "cannot list /srv/inbox",
            )
            .expect("error recorded");
        // Two days after it was first seen, with no success: stale, and never told.
        let later = utc("2026-11-04T08:00:01Z");
        let health = store.source_health(&sources, later).expect("health");
        assert!(health[0].stale && !health[0].stale_reported);
        assert_eq!(
            health[0].last_error.as_deref(),
            Some("cannot list /srv/inbox")
        );
        assert!(!health[1].stale, "no max_age: never stale");
        let tx = store.conn.transaction().expect("tx");
        Store::mark_stale_reported(&tx, "portail", later).expect("marked");
        tx.commit().expect("commit");
        assert!(store.source_health(&sources, later).expect("health")[0].stale_reported);
    }
}
