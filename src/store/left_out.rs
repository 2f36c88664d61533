//! The connector files the daemon leaves out, recorded at each start and reload
//! for the administrators' digest, which tells each once per change (a new file
//! left out, or a new reason), not at every digest.

use chrono::{DateTime, Utc};
use rusqlite::params;

use super::{Result, Store, format_time, parse_time};

/// A connector file left out: its name, file and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LeftOutConnector {
    /// The connector's name (its file's stem).
    pub connector: String,
    /// Its file.
    pub file: String,
    /// Why, one problem a line.
    pub reason: String,
    /// Since when it is left out for this reason.
    pub since: DateTime<Utc>,
}

impl Store {
    /// Records the connector files left out now (`since` is ignored: a file left
    /// out for the same reason keeps its date and whether it was told; a new file
    /// or reason is dated `now`, to be told); the others are forgotten.
    ///
    /// # Errors
    /// On a database error; then nothing changed.
    pub(crate) fn record_left_out(
        &mut self,
        left_out: &[LeftOutConnector],
        now: DateTime<Utc>,
    ) -> Result<()> {
        let tx = self.conn.transaction()?;
        let files: Vec<&str> = left_out.iter().map(|l| l.file.as_str()).collect();
        tx.execute(
            "DELETE FROM left_out_connectors WHERE file NOT IN (SELECT value FROM json_each(?1))",
            [serde_json::to_string(&files).unwrap_or_else(|_| "[]".to_owned())],
        )?;
        for l in left_out {
            tx.prepare_cached(
                "INSERT INTO left_out_connectors (file, connector, reason, since) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (file) DO UPDATE SET
                     connector = excluded.connector,
                     since = CASE WHEN reason = excluded.reason THEN since ELSE excluded.since END,
                     reported = CASE WHEN reason = excluded.reason THEN reported ELSE 0 END,
                     reason = excluded.reason",
            )?
            .execute(params![l.file, l.connector, l.reason, format_time(now)])?;
        }
        tx.commit()?;
        Ok(())
    }

    /// The connector files left out that no digest told yet.
    ///
    /// # Errors
    /// On a database error or a corrupt row.
    pub(super) fn left_out_untold(&self) -> Result<Vec<LeftOutConnector>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT connector, file, reason, since FROM left_out_connectors
             WHERE reported = 0 ORDER BY file",
        )?;
        let mut rows = stmt.query([])?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            out.push(LeftOutConnector {
                connector: r.get(0)?,
                file: r.get(1)?,
                reason: r.get(2)?,
                since: parse_time(&r.get::<_, String>(3)?)?,
            });
        }
        Ok(out)
    }

    /// Marks a left-out file as told, unless its reason changed meanwhile.
    pub(super) fn mark_left_out_told(
        tx: &rusqlite::Transaction<'_>,
        told: &LeftOutConnector,
    ) -> Result<()> {
        tx.prepare_cached(
            "UPDATE left_out_connectors SET reported = 1 WHERE file = ?1 AND reason = ?2",
        )?
        .execute([&told.file, &told.reason])?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::utc;

    fn left(file: &str, reason: &str) -> LeftOutConnector {
        LeftOutConnector {
            connector: file.trim_end_matches(".toml").to_owned(),
            file: file.to_owned(),
            reason: reason.to_owned(),
            since: DateTime::UNIX_EPOCH,
        }
    }

    #[test]
    fn a_left_out_connector_is_told_once_per_change() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("state.db"), 8).unwrap();
        let (t1, t2) = (utc("2026-12-01T08:00:00Z"), utc("2026-12-02T08:00:00Z"));
        store
            .record_left_out(&[left("a.toml", "bad schedule")], t1)
            .unwrap();
        let untold = store.left_out_untold().unwrap();
        assert_eq!(untold.len(), 1);
        assert_eq!(untold[0].since, t1);
        let tx = store.conn.transaction().unwrap();
        Store::mark_left_out_told(&tx, &untold[0]).unwrap();
        tx.commit().unwrap();
        // The same reason at the next start: nothing new to tell.
        store
            .record_left_out(&[left("a.toml", "bad schedule")], t2)
            .unwrap();
        assert_eq!(store.left_out_untold().unwrap(), []);
        // Another reason: told again, from then.
        store
            .record_left_out(&[left("a.toml", "bad step")], t2)
            .unwrap();
        let untold = store.left_out_untold().unwrap();
        assert_eq!(
            (untold[0].reason.as_str(), untold[0].since),
            ("bad step", t2)
        );
        // Fixed, then broken again: told again.
        store.record_left_out(&[], t2).unwrap();
        assert_eq!(store.left_out_untold().unwrap(), []);
        store
            .record_left_out(&[left("a.toml", "bad step")], t2)
            .unwrap();
        assert_eq!(store.left_out_untold().unwrap().len(), 1);
    }
}
