//! The alerts an import queues: each once (its idempotency key), a cooldown per
//! rule and recipient, digests that leave together, and the debounced alerts a
//! dossier cancels when it leaves the step they wait for.

use chrono::{DateTime, Utc};
use rusqlite::params;

use super::{ImportTx, Result, format_time};

/// An alert to queue.
#[derive(Debug, Clone)]
pub(crate) struct NewAlert<'a> {
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
    pub(crate) fn key(&self) -> String {
        format!(
            "{}/{}/{}/{}",
            self.rule,
            self.dossier_id,
            self.event_id,
            self.recipient.to_lowercase()
        )
    }
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

impl ImportTx<'_> {
    /// Queues an alert; returns false when its key is already queued (the same
    /// rule, dossier, event and recipient), which keeps alerts unique.
    ///
    /// # Errors
    /// On a database error.
    pub(crate) fn queue_alert(&self, alert: &NewAlert<'_>) -> Result<bool> {
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
    pub(crate) fn align_digests(&self) -> Result<()> {
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
    pub(crate) fn alerted_since(
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
    pub(crate) fn cancel_held(
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

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
