//! The figures `/metrics` exposes, read from the state database at each scrape.
//!
//! Owns the queries behind the Prometheus exposition: imports by connector and
//! status, last successful import per connector, rows, events and rejected records
//! by connector, alerts by status, the outbox's depth and the age of its oldest
//! pending alert, and the delivery latency of sent alerts. Nothing here names a
//! person: connectors, statuses and counts only.

use chrono::{DateTime, Utc};

use super::{Result, Store, epoch};

/// One connector's import figures.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ImportGauges {
    /// The connector.
    pub connector: String,
    /// Applied imports.
    pub applied: u64,
    /// Refused imports.
    pub refused: u64,
    /// The end of its last applied import (Unix seconds).
    pub last_success: Option<i64>,
    /// Rows read by its imports.
    pub rows: u64,
    /// Events its imports recorded (every kind).
    pub events: u64,
    /// Records its imports rejected.
    pub rejected: u64,
}

/// Everything `/metrics` shows that the database knows.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Gauges {
    /// By connector.
    pub imports: Vec<ImportGauges>,
    /// Alerts by status (pending, sending, sent, failed, cancelled).
    pub alerts: Vec<(String, u64)>,
    /// Pending alerts due later (debounce, digest, sending hours, retry backoff).
    pub deferred: u64,
    /// The age of the oldest pending alert that is due, in seconds (0: none).
    pub oldest_due_seconds: i64,
    /// Delivery latency (from queued to sent) of sent alerts, in seconds: the
    /// count at or under each bucket's bound, then the count and sum of all.
    pub latency_buckets: Vec<(f64, u64)>,
    /// See `latency_buckets`.
    pub latency_count: u64,
    /// See `latency_buckets`.
    pub latency_sum: f64,
    /// Alerts claimed (`sending`) more than a minute ago and not recorded: a
    /// send stuck, or a process gone that no other has noticed yet.
    pub stale_claims: u64,
    /// The transports that ever failed, paused or working again.
    pub transports: Vec<super::TransportState>,
}

/// The bounds of the delivery latency histogram, in seconds: a minute to a week.
pub const LATENCY_BOUNDS: [f64; 8] = [
    60.0, 600.0, 3_600.0, 14_400.0, 43_200.0, 86_400.0, 259_200.0, 604_800.0,
];

impl Store {
    /// Reads the gauges as of `now`.
    ///
    /// # Errors
    /// On a database error.
    pub fn gauges(&self, now: DateTime<Utc>) -> Result<Gauges> {
        let mut g = Gauges::default();
        let mut stmt = self.conn.prepare(
            "SELECT connector,
                    sum(status = 'applied'), sum(status = 'refused'),
                    max(CASE WHEN status IN ('applied', 'unchanged') THEN finished_at END),
                    sum(rows),
                    sum(created + step_changed + field_changed + disappeared + reappeared + messages),
                    sum(rejected)
             FROM runs WHERE kind = 'import' GROUP BY connector ORDER BY connector",
        )?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            let count = |i: usize| -> Result<u64> { Ok(r.get::<_, i64>(i)?.max(0) as u64) };
            g.imports.push(ImportGauges {
                connector: r.get(0)?,
                applied: count(1)?,
                refused: count(2)?,
                last_success: r.get_ref(3)?.as_bytes_or_null()?.map(epoch).transpose()?,
                rows: count(4)?,
                events: count(5)?,
                rejected: count(6)?,
            });
        }
        let mut stmt = self
            .conn
            .prepare("SELECT status, count(*) FROM alerts GROUP BY status ORDER BY status")?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            g.alerts
                .push((r.get(0)?, r.get::<_, i64>(1)?.max(0) as u64));
        }
        let now_text = super::format_time(now);
        let (deferred, oldest): (i64, Option<String>) = self.conn.query_row(
            "SELECT sum(due_at > ?1), min(CASE WHEN due_at <= ?1 THEN due_at END)
             FROM alerts WHERE status = 'pending'",
            [&now_text],
            |r| Ok((r.get::<_, Option<i64>>(0)?.unwrap_or(0), r.get(1)?)),
        )?;
        g.deferred = deferred.max(0) as u64;
        g.oldest_due_seconds = oldest
            .map(|t| epoch(t.as_bytes()))
            .transpose()?
            .map_or(0, |t| (now.timestamp() - t).max(0));
        let mut counts = [0u64; LATENCY_BOUNDS.len()];
        let mut stmt = self.conn.prepare(
            "SELECT created_at, sent_at FROM alerts WHERE status = 'sent' AND sent_at IS NOT NULL",
        )?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            let latency = (epoch(r.get_ref(1)?.as_bytes()?)? - epoch(r.get_ref(0)?.as_bytes()?)?)
                .max(0) as f64;
            g.latency_count += 1;
            g.latency_sum += latency;
            for (bound, n) in LATENCY_BOUNDS.iter().zip(counts.iter_mut()) {
                if latency <= *bound {
                    *n += 1;
                }
            }
        }
        g.latency_buckets = LATENCY_BOUNDS.iter().copied().zip(counts).collect();
        g.stale_claims = self.claims_older_than(now - chrono::Duration::minutes(1))?;
        g.transports = self.transport_states()?;
        Ok(g)
    }
}
