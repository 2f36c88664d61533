//! Reading stored dossiers back: their lookup by reference or source id, and
//! their timelines (every event, with the run that noticed it).

use chrono::{DateTime, Utc};
use rusqlite::params;

use super::{Result, Store, StoreError, fields, id_key, index, parse_time, references};
use crate::model::{Dossier, Event, EventKind};

/// A stored dossier, with its bookkeeping.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct StoredDossier {
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
pub(crate) struct StoredEvent {
    /// The run that detected it.
    pub run_id: i64,
    /// The event.
    pub event: Event,
    /// When the import noticed it (the start of its run).
    pub detected_at: DateTime<Utc>,
    /// Whether it was recorded by a baseline import.
    pub baseline: bool,
}

/// The columns [`Store::read_dossier`] reads, in its order.
pub(super) const DOSSIER_SELECT: &str =
    "SELECT d.id, d.connector, d.source_id, d.step, d.status, d.fields,
    d.present, d.step_entered_at, d.scheme
    FROM dossiers d";

/// A dossier still in its source, as `stats --dossiers` lists it.
#[derive(Debug, Clone)]
pub(crate) struct OpenRow {
    /// Its connector.
    pub connector: String,
    /// Its id in the source.
    pub id: String,
    /// Its reference.
    pub reference: String,
    /// Its scheme, when it has one.
    pub scheme: Option<String>,
    /// Its step.
    pub step: String,
    /// When it entered its step.
    pub entered: DateTime<Utc>,
}

/// An event from the columns `kind, from_step, to_step, field, old_value,
/// new_value, occurred_at, notified_by_source`, the first at index `at`.
pub(super) fn read_event(row: &rusqlite::Row<'_>, at: usize) -> Result<Event> {
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
    /// Dossiers whose reference or source id is `reference`.
    ///
    /// # Errors
    /// On a database error or a corrupt row.
    pub(crate) fn find_dossiers(&self, reference: &str) -> Result<Vec<StoredDossier>> {
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

    /// The dossier of row `rowid`, unless it is unknown or purged.
    ///
    /// # Errors
    /// On a database error or a corrupt row.
    pub(crate) fn dossier_row(&self, rowid: i64) -> Result<Option<StoredDossier>> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "{DOSSIER_SELECT} WHERE d.id = ?1 AND d.purged_at IS NULL"
        ))?;
        let mut rows = stmt.query([rowid])?;
        rows.next()?.map(|row| self.read_dossier(row)).transpose()
    }

    /// Every dossier still in its source, by connector and reference: what
    /// `stats --dossiers` predicts for.
    ///
    /// # Errors
    /// On a database error or a corrupt row.
    pub(crate) fn open_dossiers(&self) -> Result<Vec<OpenRow>> {
        let mut stmt = self.conn.prepare(
            "SELECT connector, source_id, reference, scheme, step, step_entered_at
             FROM dossiers WHERE present = 1 ORDER BY connector, reference, source_id",
        )?;
        let mut rows = stmt.query([])?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            out.push(OpenRow {
                connector: r.get(0)?,
                id: r.get(1)?,
                reference: r.get(2)?,
                scheme: r.get(3)?,
                step: r.get(4)?,
                entered: parse_time(r.get_ref(5)?.as_str()?)?,
            });
        }
        Ok(out)
    }

    /// When the last applied import started: the instant the state holds at.
    ///
    /// # Errors
    /// On a database error or a corrupt row.
    pub(crate) fn last_import_at(&self) -> Result<Option<DateTime<Utc>>> {
        let at: Option<String> = self.conn.query_row(
            "SELECT max(started_at) FROM runs WHERE kind = 'import' AND status = 'applied'",
            [],
            |r| r.get(0),
        )?;
        at.map(|t| parse_time(&t)).transpose()
    }

    /// Every event of a dossier, in time order.
    ///
    /// # Errors
    /// On a database error or a corrupt row.
    pub(crate) fn events(&self, rowid: i64) -> Result<Vec<StoredEvent>> {
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

    /// A dossier from the columns of [`DOSSIER_SELECT`] (the first nine of a row).
    pub(super) fn read_dossier(&self, row: &rusqlite::Row<'_>) -> Result<StoredDossier> {
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
