//! The store's side of evaluating time-based events (stalled dossiers, deadline
//! reminders): the evaluation's run, the open dossiers read in one pass, and each
//! event recorded once.

use chrono::{DateTime, Utc};
use rusqlite::OptionalExtension;

use super::history::{LastImports, RunStarts, absent_dossiers};
use super::{ImportTx, Result, Store, StoreError, epoch, fields, format_time};

/// An open dossier, as an evaluation reads it.
#[derive(Debug)]
pub(crate) struct OpenDossier<'a> {
    /// Its row id.
    pub rowid: i64,
    /// Its connector.
    pub connector: &'a str,
    /// Its scheme.
    pub scheme: Option<&'a str>,
    /// Its step.
    pub step: &'a str,
    /// When it entered the step (Unix seconds).
    pub entered: i64,
    /// When Alertissimo first saw it live: the start of its first import, or of
    /// its connector's last baseline import when later (a backfill's last
    /// archive: what happened in the archives is history, not news).
    pub first_seen: i64,
    /// The values of the fields asked for, in their order.
    pub values: &'a [Option<&'a str>],
}

impl ImportTx<'_> {
    /// Records an evaluation of time-based events, started at `at`, as the run the
    /// writes that follow belong to.
    ///
    /// # Errors
    /// On a database error.
    pub(crate) fn start_evaluation(&mut self, at: DateTime<Utc>) -> Result<i64> {
        let at = format_time(at);
        self.tx.execute(
            "INSERT INTO runs (connector, source, fingerprint, started_at, finished_at, status,
                               baseline, kind)
             VALUES ('', 'evaluation', '', ?1, ?1, 'applied', 0, 'evaluation')",
            [&at],
        )?;
        self.run_id = self.tx.last_insert_rowid();
        Ok(self.run_id)
    }

    /// Calls `f` with every dossier still in its source, with the values of the
    /// `fields`.
    ///
    /// # Errors
    /// On a database error, a corrupt row, or an error of `f`.
    pub(crate) fn for_each_open(
        &self,
        fields: &[String],
        f: impl FnMut(&OpenDossier<'_>) -> Result<()>,
    ) -> Result<()> {
        for_each_open(&self.tx, fields, f)
    }
}

impl Store {
    /// Calls `f` with every dossier still in its source, with the values of the
    /// `fields` (read only: for reports).
    ///
    /// # Errors
    /// On a database error, a corrupt row, or an error of `f`.
    pub(crate) fn for_each_open(
        &self,
        fields: &[String],
        f: impl FnMut(&OpenDossier<'_>) -> Result<()>,
    ) -> Result<()> {
        for_each_open(&self.conn, fields, f)
    }
}

fn for_each_open(
    conn: &rusqlite::Connection,
    fields: &[String],
    mut f: impl FnMut(&OpenDossier<'_>) -> Result<()>,
) -> Result<()> {
    let runs = RunStarts::read(conn)?;
    let absent = absent_dossiers(conn)?;
    let mut baselines = LastImports::read(conn, true)?;
    // A field no dossier has is not in the dictionary: it never matches.
    let mut wanted = Vec::with_capacity(fields.len());
    for name in fields {
        let id: Option<i64> = conn
            .query_row("SELECT id FROM field_names WHERE name = ?1", [name], |r| {
                r.get(0)
            })
            .optional()?;
        wanted.push(id.map_or(u64::MAX, |id| id as u64));
    }
    let mut stmt = conn.prepare(
        "SELECT id, connector, scheme, step, step_entered_at, first_run, fields FROM dossiers",
    )?;
    let mut rows = stmt.query([])?;
    while let Some(row) = rows.next()? {
        let rowid: i64 = row.get(0)?;
        if absent.contains(&rowid) {
            continue;
        }
        let first_run = row.get::<_, i64>(5)?;
        let connector = row.get_ref(1)?.as_str()?;
        let first_seen = runs
            .get(first_run)
            .ok_or_else(|| StoreError::Corrupt(format!("dossier of a missing run {first_run}")))?
            .max(baselines.of(connector.as_bytes()).unwrap_or(i64::MIN));
        let mut dates = vec![None; wanted.len()];
        if !wanted.is_empty() {
            fields::pick(row.get_ref(6)?.as_blob()?, &wanted, &mut dates);
        }
        f(&OpenDossier {
            rowid,
            connector,
            scheme: row.get_ref(2)?.as_str_or_null()?,
            step: row.get_ref(3)?.as_str()?,
            entered: epoch(row.get_ref(4)?.as_bytes()?)?,
            first_seen,
            values: &dates,
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 19: what happened in a backfill's archives is history. A dossier's
    /// stall counts as news only from its connector's last baseline import on.
    #[test]
    fn a_dossier_is_first_seen_live_after_its_connectors_last_baseline_import() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("state.db"), 8).unwrap();
        store
            .conn
            .execute_batch(
                "INSERT INTO runs (id, connector, source, fingerprint, started_at, finished_at, status, baseline)
                 VALUES (1, 'p', 'a', '0', '2025-10-01T07:00:00Z', '2025-10-01T07:00:01Z', 'applied', 1),
                        (2, 'p', 'b', '0', '2025-10-22T03:00:00Z', '2025-10-22T03:00:01Z', 'applied', 1),
                        (3, 'p', 'c', '0', '2025-10-29T04:00:00Z', '2025-10-29T04:00:01Z', 'applied', 0),
                        (4, 'q', 'd', '0', '2025-10-01T07:00:00Z', '2025-10-01T07:00:01Z', 'applied', 1);
                 INSERT INTO dossiers (id, connector, source_id, reference, scheme, step, status,
                                       step_entered_at, fields, first_run, last_run)
                 VALUES (1, 'p', 'D1', 'R1', NULL, 'instruction', 'x', '2025-09-01T00:00:00Z', x'01', 1, 1),
                        (2, 'p', 'D2', 'R2', NULL, 'instruction', 'x', '2025-10-28T00:00:00Z', x'01', 3, 3),
                        (3, 'q', 'D3', 'R3', NULL, 'instruction', 'x', '2025-09-01T00:00:00Z', x'01', 4, 4);",
            )
            .unwrap();
        let mut seen = Vec::new();
        store
            .for_each_open(&[], |d| {
                seen.push((d.rowid, d.first_seen));
                Ok(())
            })
            .unwrap();
        let at = |t: &str| crate::model::parse_instant_text(t).unwrap().timestamp();
        assert_eq!(
            seen,
            [
                // Backfilled from 1 October to 22 October: live from the 22nd.
                (1, at("2025-10-22T03:00:00Z")),
                // Created by a live import: from then.
                (2, at("2025-10-29T04:00:00Z")),
                // Another connector, one baseline import: from it.
                (3, at("2025-10-01T07:00:00Z")),
            ]
        );
    }
}
