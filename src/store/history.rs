//! The history the delay estimates learn from, read in one pass.
//!
//! Owns the queries that feed a [`History`]: every stored dossier (scheme, step,
//! when it entered it, whether it is still in its source), then every event that
//! moves a dossier between steps, in the order they were recorded, each with the
//! start of the import that noticed it.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use super::{Result, Store, StoreError};
use crate::delays::{Delays, History};
use crate::lifecycle::Lifecycle;
use crate::model::EventKind;

impl Store {
    /// The delay estimates from the whole history, as of `now`.
    ///
    /// # Errors
    /// On a database error or a corrupt row.
    pub fn delays(
        &self,
        lifecycle: &Lifecycle,
        min_sample: u64,
        now: DateTime<Utc>,
    ) -> Result<Delays> {
        let mut history = History::new();
        self.read_history(&mut history)?;
        Ok(history.finish(lifecycle, min_sample, now.timestamp()))
    }

    /// Feeds `history` with every dossier and every step event.
    ///
    /// # Errors
    /// On a database error or a corrupt row.
    pub fn read_history(&self, history: &mut History) -> Result<()> {
        let mut runs: HashMap<i64, i64> = HashMap::new();
        let mut stmt = self
            .conn
            .prepare("SELECT id, unixepoch(started_at) FROM runs")?;
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            runs.insert(row.get(0)?, row.get(1)?);
        }
        let mut stmt = self.conn.prepare(
            "SELECT d.id, d.scheme, d.step, unixepoch(d.step_entered_at), k.present
             FROM dossiers d JOIN dossier_state k ON k.connector = d.connector AND k.dossier_id = d.id",
        )?;
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            history.dossier(
                row.get(0)?,
                row.get_ref(1)?.as_str_or_null()?,
                row.get_ref(2)?.as_str()?,
                row.get(3)?,
                row.get(4)?,
            );
        }
        // In id order, which is the order they were recorded (no sort needed).
        let mut stmt = self.conn.prepare(
            "SELECT dossier_id, kind, to_step, unixepoch(occurred_at), run_id FROM events
             WHERE kind IN ('created', 'step_changed', 'reappeared', 'disappeared')
             ORDER BY id",
        )?;
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            let kind = row.get_ref(1)?.as_str()?;
            let kind = EventKind::parse(kind)
                .ok_or_else(|| StoreError::Corrupt(format!("event kind '{kind}'")))?;
            let run: i64 = row.get(4)?;
            let seen = *runs
                .get(&run)
                .ok_or_else(|| StoreError::Corrupt(format!("event of a missing run {run}")))?;
            history.event(
                row.get(0)?,
                kind,
                row.get_ref(2)?.as_str_or_null()?,
                row.get(3)?,
                seen,
            );
        }
        Ok(())
    }
}
