//! The history the delay estimates learn from, read in one pass.
//!
//! Owns the queries that feed a [`History`]: every stored dossier (scheme, step,
//! when it entered it, whether it is still in its source), then every event that
//! moves a dossier between steps, in the order they were recorded, each with the
//! start of the import that noticed it.

use std::collections::HashSet;

use chrono::{DateTime, Utc};

use super::{Result, Store, StoreError, epoch};
use crate::delays::{Delays, History, Seen};
use crate::lifecycle::Lifecycle;
use crate::model::EventKind;

impl Store {
    /// The delay estimates from the whole history, as of `now`, days counted in `tz`.
    ///
    /// # Errors
    /// On a database error or a corrupt row.
    pub fn delays(
        &self,
        lifecycle: &Lifecycle,
        min_sample: u64,
        now: DateTime<Utc>,
        tz: chrono_tz::Tz,
    ) -> Result<Delays> {
        let mut history = History::new();
        self.read_history(&mut history)?;
        Ok(history.finish(lifecycle, min_sample, now.timestamp(), tz))
    }

    /// Feeds `history` with every dossier and every step event.
    ///
    /// # Errors
    /// On a database error or a corrupt row.
    pub(crate) fn read_history(&self, history: &mut History) -> Result<()> {
        let runs = RunStarts::read(&self.conn)?;
        let last: Option<i64> = self
            .conn
            .query_row("SELECT max(id) FROM dossiers", [], |r| r.get(0))?;
        history.reserve(usize::try_from(last.unwrap_or(0)).unwrap_or(0) + 1);
        // Dossiers still in their source were last seen at their connector's
        // last applied import.
        let mut last_imports = LastImports::read(&self.conn, false)?;
        let mut stmt = self
            .conn
            .prepare("SELECT id, scheme, step, step_entered_at, connector FROM dossiers")?;
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            let id = row.get(0)?;
            history.dossier(
                id,
                row.get_ref(1)?.as_str_or_null()?,
                row.get_ref(2)?.as_str()?,
                epoch(row.get_ref(3)?.as_bytes()?)?,
            );
            if let Some(at) = last_imports.of(row.get_ref(4)?.as_bytes()?) {
                history.last_seen(id, at);
            }
        }
        for dossier in absent_dossiers(&self.conn)? {
            history.absent(dossier);
        }
        // In id order, which is the order they were recorded (no sort needed). The
        // events that enter a step name it; a test on a column is cheaper than on a
        // list of kinds.
        let mut stmt = self.conn.prepare(
            "SELECT dossier_id, kind, to_step, occurred_at, run_id FROM events
             WHERE to_step IS NOT NULL OR kind = 'disappeared'
             ORDER BY id",
        )?;
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            let kind = match row.get_ref(1)?.as_bytes()? {
                b"created" => EventKind::Created,
                b"step_changed" => EventKind::StepChanged,
                b"reappeared" => EventKind::Reappeared,
                b"disappeared" => EventKind::Disappeared,
                // Time-based events name the step they are about, and move nothing.
                _ => continue,
            };
            let run: i64 = row.get(4)?;
            let (seen, since) = runs
                .run(run)
                .ok_or_else(|| StoreError::Corrupt(format!("event of a missing run {run}")))?;
            history.event(
                row.get(0)?,
                kind,
                row.get_ref(2)?.as_str_or_null()?,
                epoch(row.get_ref(3)?.as_bytes()?)?,
                Seen { at: seen, since },
            );
        }
        Ok(())
    }
}

/// When each connector's last applied import started (Unix seconds), looked up
/// for dossiers read by id, which mostly come a connector's after another's.
pub(super) struct LastImports {
    starts: std::collections::HashMap<Vec<u8>, i64>,
    /// The connector asked for last, and its answer.
    last: (Vec<u8>, Option<i64>),
}

impl LastImports {
    /// Every connector's last applied import, or with `baselines` its last
    /// baseline one (its first import, or the last file of a backfill).
    pub(super) fn read(conn: &rusqlite::Connection, baselines: bool) -> Result<Self> {
        let mut stmt = conn.prepare(
            "SELECT connector, max(started_at) FROM runs
             WHERE kind = 'import' AND status = 'applied' AND (?1 = 0 OR baseline = 1)
             GROUP BY connector",
        )?;
        let mut rows = stmt.query([baselines])?;
        let mut starts = std::collections::HashMap::new();
        while let Some(row) = rows.next()? {
            starts.insert(
                row.get_ref(0)?.as_bytes()?.to_vec(),
                epoch(row.get_ref(1)?.as_bytes()?)?,
            );
        }
        Ok(Self {
            starts,
            last: (Vec::new(), None),
        })
    }

    /// The start of `connector`'s last such import, if it had one.
    pub(super) fn of(&mut self, connector: &[u8]) -> Option<i64> {
        if connector != self.last.0.as_slice() {
            self.last = (connector.to_vec(), self.starts.get(connector).copied());
        }
        self.last.1
    }
}

/// When each run started (Unix seconds), by run id: ids are dense, so a
/// vector. For an import, also when the connector's export before it was
/// taken: a change it found happened in between.
pub(super) struct RunStarts(Vec<(i64, Option<i64>)>);

impl RunStarts {
    /// Reads every run's start.
    pub(super) fn read(conn: &rusqlite::Connection) -> Result<Self> {
        let mut starts = Vec::new();
        let mut before: std::collections::HashMap<Vec<u8>, i64> = std::collections::HashMap::new();
        let mut stmt = conn.prepare(
            "SELECT id, started_at, connector, kind = 'import' AND status != 'refused' FROM runs
             ORDER BY started_at, id",
        )?;
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            let id = usize::try_from(row.get::<_, i64>(0)?).unwrap_or(0);
            if starts.len() <= id {
                starts.resize(id + 1, (i64::MIN, None));
            }
            let start = epoch(row.get_ref(1)?.as_bytes()?)?;
            let since = if row.get::<_, bool>(3)? {
                before.insert(row.get_ref(2)?.as_bytes()?.to_vec(), start)
            } else {
                None
            };
            starts[id] = (start, since);
        }
        Ok(Self(starts))
    }

    /// When run `id` started; `None` for a run that is not stored.
    pub(super) fn get(&self, id: i64) -> Option<i64> {
        self.run(id).map(|r| r.0)
    }

    /// When run `id` started, and for an import, when its connector's export
    /// before it was taken.
    pub(super) fn run(&self, id: i64) -> Option<(i64, Option<i64>)> {
        usize::try_from(id)
            .ok()
            .and_then(|i| self.0.get(i))
            .copied()
            .filter(|&(t, _)| t != i64::MIN)
    }
}

/// The dossiers no longer in their source.
pub(super) fn absent_dossiers(conn: &rusqlite::Connection) -> Result<HashSet<i64>> {
    let mut stmt = conn.prepare("SELECT id FROM dossiers WHERE present = 0")?;
    let rows = stmt.query_map([], |r| r.get(0))?;
    Ok(rows.collect::<std::result::Result<_, _>>()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_instants_are_read_as_chrono_reads_them() {
        for text in [
            "1970-01-01T00:00:00Z",
            "2000-02-29T23:59:59Z",
            "2026-03-29T01:30:00Z",
            "2026-11-28T22:47:48Z",
            "2100-03-01T00:00:00Z",
            "1969-12-31T23:59:59Z",
            "2026-11-28T23:47:48+01:00",
        ] {
            let expected = chrono::DateTime::parse_from_rfc3339(text)
                .unwrap()
                .timestamp();
            assert_eq!(epoch(text.as_bytes()).unwrap(), expected, "{text}");
        }
        assert!(epoch(b"2026-13-01T00:00:00Z").is_err());
        assert!(epoch(b"yesterday").is_err());
    }
}
