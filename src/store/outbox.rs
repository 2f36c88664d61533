//! The outbox side of the store: alerts waiting to leave, their deliveries, and
//! the state changes the dispatcher and the `outbox` commands make.
//!
//! Every change is one transaction: an alert is marked `sending` (and committed)
//! before it is handed to a transport, and `sent` after the transport accepted it,
//! so a crash in between leaves it `sending`, which [`Store::recover_orphaned`]
//! turns back into `pending` once its owner is gone (a possible duplicate,
//! counted). Claims and their owners are in `claims.rs`.

use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, params};

use super::{Result, Store, StoreError, StoredDossier, format_time, parse_time};
use crate::model::Event;

/// An alert due for delivery, with what its message needs.
#[derive(Debug, Clone)]
pub(crate) struct DueAlert {
    /// Its id.
    pub id: i64,
    /// Its idempotency key.
    pub key: String,
    /// The rule that queued it.
    pub rule: String,
    /// The template of its message.
    pub template: String,
    /// The recipient's role.
    pub role: String,
    /// `mandatory` or `informational` (its rule's class when it was queued).
    pub class: String,
    /// The address.
    pub recipient: String,
    /// Whether it may share a message with others to the same address.
    pub digest: bool,
    /// Debounce: the step its dossier must still be in.
    pub hold_step: Option<String>,
    /// Earlier attempts.
    pub attempts: u32,
    /// When it was queued.
    pub created_at: DateTime<Utc>,
    /// Its dossier, as it is now.
    pub dossier: StoredDossier,
    /// The event that triggered it.
    pub event: Event,
    /// The Message-ID of the message it was last claimed for: a message sent
    /// again after an interruption keeps it, so that mail clients see a copy.
    pub message_id: Option<String>,
}

/// What becomes of an alert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum OutboxChange {
    /// Cancelled, with why.
    Cancel {
        /// The alert.
        id: i64,
        /// Why.
        reason: String,
    },
    /// Due later (a daily limit reached).
    Defer {
        /// The alert.
        id: i64,
        /// The new due time.
        until: DateTime<Utc>,
        /// Why.
        reason: String,
    },
    /// One attempt, and its outcome.
    Attempt {
        /// The alert.
        id: i64,
        /// The attempt.
        delivery: Attempt,
        /// `sent`, `pending` (retried at `retry_at`) or `failed`.
        status: &'static str,
        /// For a retry, when.
        retry_at: Option<DateTime<Utc>>,
    },
}

/// One attempt to hand an alert to a transport.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub(crate) struct Attempt {
    /// When.
    pub attempted_at: DateTime<Utc>,
    /// `file` or `smtp`.
    pub transport: String,
    /// `sent`, `transient`, `permanent` or `interrupted`.
    pub outcome: String,
    /// The relay's reply, or why it failed.
    pub reply: Option<String>,
    /// The message's Message-ID.
    pub message_id: Option<String>,
}

/// A dossier's columns first (as [`Store::read_dossier`] reads them), then the
/// alert's and its event's, from column 9.
const DUE_SELECT: &str = "SELECT d.id, d.connector, d.source_id, d.step, d.status, d.fields,
        d.present, d.step_entered_at, d.scheme,
        a.id, a.key, a.rule, a.template, a.role, a.recipient, a.digest, a.hold_step,
        a.attempts, a.created_at, a.due_at,
        e.kind, e.from_step, e.to_step, e.field, e.old_value, e.new_value, e.occurred_at,
        e.notified_by_source, a.message_id, a.class
    FROM alerts a JOIN events e ON e.id = a.event_id
    JOIN dossiers d ON d.id = a.dossier_id";

impl Store {
    /// The pending alerts due at `until` (every pending one when `None`), next
    /// due first, at most `limit`.
    ///
    /// # Errors
    /// On a database error or a corrupt row.
    pub(crate) fn due_alerts(
        &self,
        until: Option<DateTime<Utc>>,
        limit: usize,
    ) -> Result<Vec<DueAlert>> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "{DUE_SELECT} WHERE a.status = 'pending' AND (?1 IS NULL OR a.due_at <= ?1)
             ORDER BY a.due_at, a.id LIMIT ?2"
        ))?;
        let mut rows = stmt.query(params![until.map(format_time), limit as i64])?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            out.push(DueAlert {
                dossier: self.read_dossier(r)?,
                id: r.get(9)?,
                key: r.get(10)?,
                rule: r.get(11)?,
                template: r.get(12)?,
                role: r.get(13)?,
                recipient: r.get(14)?,
                digest: r.get(15)?,
                hold_step: r.get(16)?,
                attempts: r.get(17)?,
                created_at: parse_time(r.get_ref(18)?.as_str()?)?,
                event: super::dossiers::read_event(r, 20)?,
                message_id: r.get(28)?,
                class: r.get(29)?,
            });
        }
        Ok(out)
    }

    /// How many messages went to `recipient` (any case) since `since` (a digest
    /// counts once).
    ///
    /// # Errors
    /// On a database error.
    pub(crate) fn messages_sent_since(&self, recipient: &str, since: DateTime<Utc>) -> Result<u32> {
        Ok(self
            .conn
            .prepare_cached(
                "SELECT count(DISTINCT message_id) FROM alerts
                 WHERE recipient = ?1 COLLATE NOCASE AND sent_at >= ?2 AND status = 'sent'",
            )?
            .query_row(params![recipient, format_time(since)], |r| r.get(0))?)
    }

    /// The earliest due time of a pending alert, if any.
    ///
    /// # Errors
    /// On a database error or a corrupt row.
    pub(crate) fn next_due(&self) -> Result<Option<DateTime<Utc>>> {
        let due: Option<String> = self
            .conn
            .query_row(
                "SELECT min(due_at) FROM alerts WHERE status = 'pending'",
                [],
                |r| r.get(0),
            )
            .optional()?
            .flatten();
        due.map(|d| parse_time(&d)).transpose()
    }

    /// Applies changes to alerts, all in one transaction.
    ///
    /// # Errors
    /// On a database error; then none is applied.
    pub(crate) fn apply(&mut self, changes: &[OutboxChange], now: DateTime<Utc>) -> Result<()> {
        let tx = self.conn.transaction()?;
        let now_text = format_time(now);
        for change in changes {
            match change {
                OutboxChange::Cancel { id, reason } => {
                    tx.prepare_cached(
                        "UPDATE alerts SET status = 'cancelled', reason = ?2, updated_at = ?3
                         WHERE id = ?1 AND status IN ('pending', 'sending')",
                    )?
                    .execute(params![id, reason, now_text])?;
                }
                OutboxChange::Defer { id, until, reason } => {
                    tx.prepare_cached(
                        "UPDATE alerts SET due_at = ?2, reason = ?3, updated_at = ?4
                         WHERE id = ?1 AND status = 'pending'",
                    )?
                    .execute(params![
                        id,
                        format_time(*until),
                        reason,
                        now_text
                    ])?;
                }
                OutboxChange::Attempt {
                    id,
                    delivery,
                    status,
                    retry_at,
                } => {
                    let (sent_at, reason) = match *status {
                        "sent" => (Some(format_time(delivery.attempted_at)), None),
                        _ => (None, delivery.reply.clone()),
                    };
                    // Only an alert still claimed records the attempt: one cancelled
                    // or taken back meanwhile keeps its own story.
                    let claimed = tx
                        .prepare_cached(
                            "UPDATE alerts SET status = ?2, sent_at = ?3, message_id = coalesce(?4, message_id),
                                    reason = ?5, due_at = coalesce(?6, due_at), updated_at = ?7,
                                    claimed_by = NULL, claimed_until = NULL
                             WHERE id = ?1 AND status = 'sending'",
                        )?
                        .execute(params![
                            id,
                            status,
                            sent_at,
                            delivery.message_id,
                            reason,
                            retry_at.map(format_time),
                            now_text
                        ])?;
                    if claimed == 1 {
                        insert_delivery(&tx, *id, delivery)?;
                    }
                }
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Makes failed alerts (one, or all when `id` is `None`) pending again, due
    /// now; returns how many.
    ///
    /// # Errors
    /// On a database error.
    pub(crate) fn retry_failed(&mut self, id: Option<i64>, now: DateTime<Utc>) -> Result<u64> {
        let n = self.conn.execute(
            "UPDATE alerts SET status = 'pending', due_at = ?2, updated_at = ?2, reason = NULL,
                    created_at = ?2, reported = 0
             WHERE status = 'failed' AND (?1 IS NULL OR id = ?1)",
            params![id, format_time(now)],
        )?;
        Ok(n as u64)
    }

    /// Cancels a pending alert; returns whether it was pending.
    ///
    /// # Errors
    /// On a database error.
    pub(crate) fn cancel_alert(&mut self, id: i64, now: DateTime<Utc>) -> Result<bool> {
        let n = self.conn.execute(
            "UPDATE alerts SET status = 'cancelled', reason = 'annulé par un administrateur',
                    updated_at = ?2
             WHERE id = ?1 AND status = 'pending'",
            params![id, format_time(now)],
        )?;
        Ok(n == 1)
    }

    /// The status of an alert, if it exists.
    ///
    /// # Errors
    /// On a database error.
    pub(crate) fn alert_status(&self, id: i64) -> Result<Option<String>> {
        Ok(self
            .conn
            .query_row("SELECT status FROM alerts WHERE id = ?1", [id], |r| {
                r.get(0)
            })
            .optional()?)
    }

    /// Every attempt to deliver an alert, oldest first.
    ///
    /// # Errors
    /// On a database error or a corrupt row.
    pub(crate) fn deliveries(&self, alert_id: i64) -> Result<Vec<Attempt>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT attempted_at, transport, outcome, reply, message_id FROM deliveries
             WHERE alert_id = ?1 ORDER BY id",
        )?;
        let mut rows = stmt.query([alert_id])?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            out.push(Attempt {
                attempted_at: parse_time(r.get_ref(0)?.as_str()?)?,
                transport: r.get(1)?,
                outcome: r.get(2)?,
                reply: r.get(3)?,
                message_id: r.get(4)?,
            });
        }
        Ok(out)
    }
}

pub(super) fn insert_delivery(
    tx: &rusqlite::Transaction<'_>,
    alert_id: i64,
    d: &Attempt,
) -> Result<()> {
    tx.prepare_cached(
        "INSERT INTO deliveries (alert_id, attempted_at, transport, outcome, reply, message_id)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![
        alert_id,
        format_time(d.attempted_at),
        d.transport,
        d.outcome,
        d.reply,
        d.message_id
    ])?;
    Ok(())
}

/// What the administrators' digest reports.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct AdminNews {
    /// Failed alerts: (alert, dossier reference, rule, recipient, reason).
    pub failed: Vec<(i64, String, String, String, String)>,
    /// Refused snapshots: (run, connector, file, reasons).
    pub refused: Vec<(i64, String, String, Vec<String>)>,
    /// Sources with no successful import within their `max_age`, not told yet.
    pub stale: Vec<super::SourceHealth>,
    /// Connector files the daemon leaves out, not told yet (or told with
    /// another reason).
    pub left_out: Vec<super::LeftOutConnector>,
    /// Messages of the replies' mailbox that matched no dossier, not told yet.
    pub unmatched: Vec<super::Unmatched>,
}

impl AdminNews {
    /// Whether there is nothing to tell.
    pub(crate) fn is_empty(&self) -> bool {
        self.failed.is_empty()
            && self.refused.is_empty()
            && self.stale.is_empty()
            && self.left_out.is_empty()
            && self.unmatched.is_empty()
    }
}

impl Store {
    /// Until when the last administrators' digest reported, if one was sent.
    ///
    /// # Errors
    /// On a database error or a corrupt row.
    pub(crate) fn last_admin_report(&self) -> Result<Option<DateTime<Utc>>> {
        let last: Option<String> =
            self.conn
                .query_row("SELECT max(covered_until) FROM admin_reports", [], |r| {
                    r.get(0)
                })?;
        last.map(|t| parse_time(&t)).transpose()
    }

    /// Alerts failed, snapshots refused, sources gone stale (of `sources`,
    /// `(connector, max_age)`, at `now`) and connector files left out that no
    /// report told yet.
    ///
    /// # Errors
    /// On a database error or a corrupt row.
    pub(crate) fn admin_news(
        &mut self,
        sources: &[(String, Option<std::time::Duration>)],
        now: DateTime<Utc>,
    ) -> Result<AdminNews> {
        let mut news = AdminNews {
            stale: self
                .source_health(sources, now)?
                .into_iter()
                .filter(|h| h.stale && !h.stale_reported)
                .collect(),
            left_out: self.left_out_untold()?,
            unmatched: self.unmatched_untold()?,
            ..AdminNews::default()
        };
        let mut stmt = self.conn.prepare_cached(
            "SELECT a.id, d.reference, a.rule, a.recipient, coalesce(a.reason, '')
             FROM alerts a JOIN dossiers d ON d.id = a.dossier_id
             WHERE a.status = 'failed' AND a.reported = 0
             ORDER BY a.updated_at, a.id",
        )?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            news.failed
                .push((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?));
        }
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, connector, source, reasons FROM runs
             WHERE status = 'refused' AND reported = 0 ORDER BY id",
        )?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            let reasons: String = r.get(3)?;
            news.refused.push((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                serde_json::from_str(&reasons)
                    .map_err(|e| StoreError::Corrupt(format!("run reasons: {e}")))?,
            ));
        }
        Ok(news)
    }

    /// Records that the administrators were told `news` (its alerts and runs are
    /// not told again), the schedule counting from `covered_until`.
    ///
    /// # Errors
    /// On a database error; then nothing is recorded.
    pub(crate) fn record_admin_report(
        &mut self,
        sent_at: DateTime<Utc>,
        covered_until: DateTime<Utc>,
        news: &AdminNews,
        message_id: Option<&str>,
    ) -> Result<()> {
        let tx = self.conn.transaction()?;
        for (id, ..) in &news.failed {
            tx.prepare_cached("UPDATE alerts SET reported = 1 WHERE id = ?1")?
                .execute([id])?;
        }
        for (id, ..) in &news.refused {
            tx.prepare_cached("UPDATE runs SET reported = 1 WHERE id = ?1")?
                .execute([id])?;
        }
        for source in &news.stale {
            Store::mark_stale_reported(&tx, &source.connector, sent_at)?;
        }
        for left_out in &news.left_out {
            Store::mark_left_out_told(&tx, left_out)?;
        }
        Store::mark_unmatched_told(&tx, &news.unmatched)?;
        tx.execute(
            "INSERT INTO admin_reports (sent_at, covered_until, failed, refused, message_id)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                format_time(sent_at),
                format_time(covered_until),
                news.failed.len() as i64,
                news.refused.len() as i64,
                message_id
            ],
        )?;
        tx.commit()?;
        Ok(())
    }
}

/// An alert as stored in the outbox.
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct AlertRecord {
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

impl Store {
    /// Alerts of the outbox, those still to send first (next due first), then
    /// failed, then sent and cancelled: those with `status` (any when `None`), of
    /// one dossier (any when `None`), at most `limit`.
    ///
    /// # Errors
    /// On a database error or a corrupt row.
    pub(crate) fn alerts(
        &self,
        status: Option<&str>,
        dossier: Option<i64>,
        limit: usize,
    ) -> Result<Vec<AlertRecord>> {
        // Each filter spelt out when given, so that SQLite uses its index (a
        // dossier's page must not scan the whole outbox).
        let by_status = if status.is_some() {
            "a.status = ?1"
        } else {
            "?1 IS NULL"
        };
        let by_dossier = if dossier.is_some() {
            "a.dossier_id = ?3"
        } else {
            "?3 IS NULL"
        };
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT a.id, a.key, d.reference, d.connector, e.kind, a.rule, a.template, a.class,
                    a.role, a.recipient, a.digest, a.status, a.created_at, a.due_at, a.reason,
                    a.event_id
             FROM alerts a JOIN dossiers d ON d.id = a.dossier_id JOIN events e ON e.id = a.event_id
             WHERE {by_status} AND {by_dossier}
             ORDER BY CASE a.status WHEN 'sending' THEN 0 WHEN 'pending' THEN 1 WHEN 'failed' THEN 2
                                    ELSE 3 END, a.due_at, a.id
             LIMIT ?2"
        ))?;
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
}
