//! The figures `/metrics` exposes, read from the state database at each scrape.
//!
//! Owns the queries behind the Prometheus exposition: imports by connector and
//! status, last successful import per connector, rows, events and rejected records
//! by connector, alerts by status, the outbox's depth and the age of its oldest
//! pending alert, and the delivery latency of sent alerts. Nothing here names a
//! person: connectors, statuses and counts only.
//!
//! A scrape costs the same whatever the size of the history (issue 17, item 16):
//! the counts by connector and by status and the latency histogram are running
//! totals that triggers keep as runs and alerts change (migration 0017), and the
//! other figures read a range of an index (the pending or the claimed alerts). A
//! test reads the plan of every statement a scrape runs.

use chrono::{DateTime, Utc};

use rusqlite::OptionalExtension;

use super::{Result, Store, epoch};

/// One connector's import figures.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct ImportGauges {
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
pub(crate) struct Gauges {
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
    /// The replies' mailbox (`[inbound]`): all empty before its first poll.
    pub inbound: super::InboundState,
}

/// The bounds of the delivery latency histogram, in seconds: a minute to a week.
/// The table `latency_buckets` (migration 0017) has a row for each: change both
/// together (a test compares them).
pub(crate) const LATENCY_BOUNDS: [f64; 8] = [
    60.0, 600.0, 3_600.0, 14_400.0, 43_200.0, 86_400.0, 259_200.0, 604_800.0,
];

impl Store {
    /// Reads the gauges as of `now`.
    ///
    /// # Errors
    /// On a database error.
    pub(crate) fn gauges(&self, now: DateTime<Utc>) -> Result<Gauges> {
        let (deferred, oldest_due_seconds) = self.pending_gauges(now)?;
        let mut g = Gauges {
            imports: self.import_gauges()?,
            alerts: self.alert_counts()?,
            deferred,
            oldest_due_seconds,
            stale_claims: self.claims_older_than(now - chrono::Duration::minutes(1))?,
            transports: self.transport_states()?,
            inbound: self.inbound_state()?,
            ..Gauges::default()
        };
        self.latency(&mut g)?;
        Ok(g)
    }

    /// Whether the database answers (for `/readyz`): reads its schema
    /// version, in the header of its first page.
    ///
    /// # Errors
    /// On a database error.
    pub(crate) fn ping(&self) -> Result<()> {
        self.conn
            .prepare_cached("PRAGMA schema_version")?
            .query_row([], |_| Ok(()))?;
        Ok(())
    }

    /// Import figures by connector, from their running totals.
    fn import_gauges(&self) -> Result<Vec<ImportGauges>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT connector, applied, refused, last_success, rows, events, rejected
             FROM import_totals WHERE runs > 0 ORDER BY connector",
        )?;
        let mut rows = stmt.query([])?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            let count = |i: usize| -> Result<u64> { Ok(r.get::<_, i64>(i)?.max(0) as u64) };
            out.push(ImportGauges {
                connector: r.get(0)?,
                applied: count(1)?,
                refused: count(2)?,
                last_success: r.get_ref(3)?.as_bytes_or_null()?.map(epoch).transpose()?,
                rows: count(4)?,
                events: count(5)?,
                rejected: count(6)?,
            });
        }
        Ok(out)
    }

    /// Alerts by status, from their running totals (statuses with none left out).
    fn alert_counts(&self) -> Result<Vec<(String, u64)>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT status, n FROM alert_totals WHERE n > 0 ORDER BY status")?;
        let mut rows = stmt.query([])?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            out.push((r.get(0)?, r.get::<_, i64>(1)?.max(0) as u64));
        }
        Ok(out)
    }

    /// Pending alerts due after `now`, and how long the oldest one due has waited
    /// (seconds, 0: none): two ranges of the index `alerts_due`.
    fn pending_gauges(&self, now: DateTime<Utc>) -> Result<(u64, i64)> {
        let now_text = super::format_time(now);
        let deferred: i64 = self
            .conn
            .prepare_cached("SELECT count(*) FROM alerts WHERE status = 'pending' AND due_at > ?1")?
            .query_row([&now_text], |r| r.get(0))?;
        // The earliest due time of all pending alerts is the oldest due one's
        // when it is not in the future.
        let earliest: Option<String> = self
            .conn
            .prepare_cached("SELECT min(due_at) FROM alerts WHERE status = 'pending'")?
            .query_row([], |r| r.get(0))?;
        let oldest = earliest
            .filter(|t| *t <= now_text)
            .map(|t| epoch(t.as_bytes()))
            .transpose()?
            .map_or(0, |t| (now.timestamp() - t).max(0));
        Ok((deferred.max(0) as u64, oldest))
    }

    /// The delivery latency histogram: the count at or under each of
    /// [`LATENCY_BOUNDS`], then the count and sum of all, from running totals.
    fn latency(&self, g: &mut Gauges) -> Result<()> {
        let mut counts = [0u64; LATENCY_BOUNDS.len()];
        let mut stmt = self
            .conn
            .prepare_cached("SELECT bound, n FROM latency_buckets ORDER BY bound")?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            let (bound, n): (i64, i64) = (r.get(0)?, r.get(1)?);
            if let Some(i) = LATENCY_BOUNDS.iter().position(|b| *b == bound as f64) {
                counts[i] = n.max(0) as u64;
            }
        }
        let (count, sum): (i64, i64) = self
            .conn
            .prepare_cached("SELECT count, sum FROM latency_totals")?
            .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?
            .unwrap_or((0, 0));
        g.latency_buckets = LATENCY_BOUNDS.iter().copied().zip(counts).collect();
        g.latency_count = count.max(0) as u64;
        g.latency_sum = sum.max(0) as f64;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;

    use chrono::TimeZone;
    use rusqlite::trace::{TraceEvent, TraceEventCodes};
    use rusqlite::{Connection, StatementStatus, params};

    use super::*;
    use crate::store::{Attempt, Counts, NewRun, OutboxChange, format_time};

    /// The gauges as scrapes read them before issue 17, item 16: every import run
    /// and every sent alert, at each scrape. The totals must give the same.
    fn full_scan(conn: &Connection, now: DateTime<Utc>) -> Gauges {
        let mut g = Gauges::default();
        let mut stmt = conn
            .prepare(
                "SELECT connector,
                        sum(status = 'applied'), sum(status = 'refused'),
                        max(CASE WHEN status IN ('applied', 'unchanged') THEN finished_at END),
                        sum(rows),
                        sum(created + step_changed + field_changed + disappeared + reappeared + messages),
                        sum(rejected)
                 FROM runs WHERE kind = 'import' GROUP BY connector ORDER BY connector",
            )
            .unwrap();
        let mut rows = stmt.query([]).unwrap();
        while let Some(r) = rows.next().unwrap() {
            let count = |i: usize| r.get::<_, i64>(i).unwrap().max(0) as u64;
            let last: Option<String> = r.get(3).unwrap();
            g.imports.push(ImportGauges {
                connector: r.get(0).unwrap(),
                applied: count(1),
                refused: count(2),
                last_success: last.map(|t| epoch(t.as_bytes()).unwrap()),
                rows: count(4),
                events: count(5),
                rejected: count(6),
            });
        }
        let mut stmt = conn
            .prepare("SELECT status, count(*) FROM alerts GROUP BY status ORDER BY status")
            .unwrap();
        g.alerts = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get::<_, i64>(1)? as u64)))
            .unwrap()
            .map(|r| r.unwrap())
            .collect();
        let now_text = format_time(now);
        let (deferred, oldest): (i64, Option<String>) = conn
            .query_row(
                "SELECT coalesce(sum(due_at > ?1), 0), min(CASE WHEN due_at <= ?1 THEN due_at END)
                 FROM alerts WHERE status = 'pending'",
                [&now_text],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        g.deferred = deferred as u64;
        g.oldest_due_seconds = oldest.map_or(0, |t| {
            (now.timestamp() - epoch(t.as_bytes()).unwrap()).max(0)
        });
        let mut counts = [0u64; LATENCY_BOUNDS.len()];
        let mut stmt = conn
            .prepare("SELECT created_at, sent_at FROM alerts WHERE status = 'sent' AND sent_at IS NOT NULL")
            .unwrap();
        let mut rows = stmt.query([]).unwrap();
        while let Some(r) = rows.next().unwrap() {
            let time = |i: usize| epoch(r.get_ref(i).unwrap().as_bytes().unwrap()).unwrap();
            let latency = (time(1) - time(0)).max(0) as f64;
            g.latency_count += 1;
            g.latency_sum += latency;
            for (bound, n) in LATENCY_BOUNDS.iter().zip(counts.iter_mut()) {
                if latency <= *bound {
                    *n += 1;
                }
            }
        }
        g.latency_buckets = LATENCY_BOUNDS.iter().copied().zip(counts).collect();
        g.stale_claims = conn
            .query_row(
                "SELECT count(*) FROM alerts WHERE status = 'sending' AND updated_at < ?1",
                [format_time(now - chrono::Duration::minutes(1))],
                |r| r.get::<_, i64>(0),
            )
            .unwrap() as u64;
        g
    }

    /// A small deterministic generator (xorshift64*), for varied rows.
    struct Dice(u64);

    impl Dice {
        fn below(&mut self, n: u64) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n
        }
    }

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 6, 1, 12, 0, 0).unwrap()
    }

    /// A time `seconds` around [`now`], as stored.
    fn at(seconds: i64) -> String {
        format_time(now() + chrono::Duration::seconds(seconds))
    }

    /// Latencies that hit the histogram's edges: on a bound, past it, negative
    /// (a clock set back), past the last bound.
    const LATENCIES: [i64; 10] = [0, 59, 60, 61, 600, 3_599, 86_400, 604_800, 700_000, -30];

    /// One dossier and event for alerts to point to, from run 1.
    fn base(conn: &Connection) {
        conn.execute_batch(
            "INSERT INTO runs (id, connector, source, fingerprint, started_at, finished_at, status, baseline)
             VALUES (1, 'a', 'first.csv', '0', '2026-01-01T00:00:00Z', '2026-01-01T00:00:10Z', 'applied', 1);
             INSERT INTO dossiers (id, connector, source_id, reference, scheme, step, status,
                                   step_entered_at, fields, first_run, last_run)
             VALUES (1, 'a', 'D1', 'REF-1', NULL, 'depose', 'Déposé', '2026-01-01T00:00:00Z', x'', 1, 1);
             INSERT INTO events (id, run_id, dossier_id, kind, occurred_at, baseline)
             VALUES (1, 1, 1, 'created', '2026-01-01T00:00:00Z', 0);",
        )
        .unwrap();
    }

    fn insert_alert(
        conn: &Connection,
        key: &str,
        status: &str,
        created: i64,
        due: i64,
        sent: Option<i64>,
    ) {
        conn.prepare_cached(
            "INSERT INTO alerts (key, run_id, event_id, dossier_id, rule, template, class, role,
                                 recipient, digest, status, created_at, due_at, updated_at, sent_at)
             VALUES (?1, 1, 1, 1, 'r', 't', 'mandatory', 'beneficiary', 'x@example.org', 0,
                     ?2, ?3, ?4, ?4, ?5)",
        )
        .unwrap()
        .execute(params![key, status, at(created), at(due), sent.map(at)])
        .unwrap();
    }

    /// `history` runs and four times as many alerts done with (sent, failed,
    /// cancelled), in varied shapes.
    fn history(conn: &Connection, history: usize, seed: u64) {
        let mut dice = Dice(seed);
        let tx = conn.unchecked_transaction().unwrap();
        for i in 0..history {
            let (connector, kind) = match dice.below(5) {
                0 => ("", "evaluation"),
                n => (["a", "b", "c", "d\"quoted"][n as usize - 1], "import"),
            };
            let status = ["applied", "refused", "unchanged"][dice.below(3) as usize];
            let finished = -(dice.below(10_000_000) as i64);
            let counts: Vec<i64> = (0..8).map(|_| dice.below(1_000) as i64).collect();
            tx.prepare_cached(
                "INSERT INTO runs (connector, source, fingerprint, started_at, finished_at, status,
                                   baseline, kind, rows, created, step_changed, field_changed,
                                   disappeared, reappeared, messages, rejected)
                 VALUES (?1, ?2, '0', ?3, ?3, ?4, 0, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
            )
            .unwrap()
            .execute(params![
                connector,
                format!("{i}.csv"),
                at(finished),
                status,
                kind,
                counts[0],
                counts[1],
                counts[2],
                counts[3],
                counts[4],
                counts[5],
                counts[6],
                counts[7]
            ])
            .unwrap();
        }
        for i in 0..history * 4 {
            let created = -(dice.below(10_000_000) as i64);
            let (status, sent) = match dice.below(4) {
                0 => ("failed", None),
                1 => ("cancelled", None),
                _ if i % 97 == 0 => ("sent", None),
                _ => (
                    "sent",
                    Some(created + LATENCIES[dice.below(10) as usize] + dice.below(2) as i64),
                ),
            };
            insert_alert(&tx, &format!("h{seed}:{i}"), status, created, created, sent);
        }
        tx.commit().unwrap();
    }

    /// The outbox as it stands: pending (due and deferred) and claimed alerts,
    /// the same whatever the history.
    fn outbox(conn: &Connection) {
        let mut dice = Dice(7);
        for i in 0..60 {
            let due = dice.below(20_000) as i64 - 10_000;
            insert_alert(conn, &format!("p{i}"), "pending", due - 100, due, None);
        }
        for i in 0..6 {
            let since = -(dice.below(200) as i64);
            insert_alert(conn, &format!("s{i}"), "sending", since - 10, since, None);
        }
    }

    fn new_run(connector: &str, finished: i64) -> NewRun {
        NewRun {
            connector: connector.to_owned(),
            source: "export.csv".to_owned(),
            checksum: None,
            fingerprint: "0".to_owned(),
            started_at: now() + chrono::Duration::seconds(finished - 5),
            finished_at: now() + chrono::Duration::seconds(finished - 5),
            baseline: false,
            counts: Counts::default(),
            reasons: Vec::new(),
            encoding: None,
            as_of: None,
        }
    }

    /// What the daemon does to runs and alerts, through the store's own code,
    /// and what a later version might (rows changed back, deleted).
    fn churn(store: &mut Store) {
        // An import: its run written first, then its counts and end.
        let mut run = new_run("b", 100);
        let mut tx = store.begin_import().unwrap();
        tx.start_run(&run).unwrap();
        run.finished_at = now() + chrono::Duration::seconds(100);
        run.counts = Counts {
            rows: 40,
            created: 3,
            step_changed: 2,
            rejected: 1,
            ..Counts::default()
        };
        tx.finish(&run, &[]).unwrap();
        store.record_refused(&new_run("e", 50), &[]).unwrap();
        // Deliveries: sent, retried, failed; a cancellation.
        let ids: Vec<i64> = store
            .conn
            .prepare("SELECT id FROM alerts WHERE status = 'pending' ORDER BY id LIMIT 8")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(|r| r.unwrap())
            .collect();
        store
            .conn
            .execute(
                "UPDATE alerts SET status = 'sending' WHERE id IN (SELECT id FROM alerts WHERE status = 'pending' ORDER BY id LIMIT 6)",
                [],
            )
            .unwrap();
        let delivery = |outcome: &str| Attempt {
            attempted_at: now() + chrono::Duration::seconds(3_000),
            transport: "smtp".to_owned(),
            outcome: outcome.to_owned(),
            reply: None,
            message_id: Some("<m@example.org>".to_owned()),
        };
        let mut changes: Vec<OutboxChange> = ids[..4]
            .iter()
            .map(|&id| OutboxChange::Attempt {
                id,
                delivery: delivery("sent"),
                status: "sent",
                retry_at: None,
            })
            .collect();
        changes.push(OutboxChange::Attempt {
            id: ids[4],
            delivery: delivery("transient"),
            status: "pending",
            retry_at: Some(now()),
        });
        changes.push(OutboxChange::Attempt {
            id: ids[5],
            delivery: delivery("permanent"),
            status: "failed",
            retry_at: None,
        });
        changes.push(OutboxChange::Cancel {
            id: ids[6],
            reason: "gone".to_owned(),
        });
        store.apply(&changes, now()).unwrap();
        store.retry_failed(Some(ids[5]), now()).unwrap();
        store.cancel_alert(ids[7], now()).unwrap();
        // Rows changed or removed in other ways: a run ending earlier than first
        // written, runs and alerts deleted, a sent alert's times corrected.
        store
            .conn
            .execute_batch(
                "UPDATE runs SET finished_at = '2020-01-01T00:00:00Z'
                 WHERE id = (SELECT id FROM runs WHERE kind = 'import' AND status = 'applied' AND connector = 'c'
                             ORDER BY finished_at DESC LIMIT 1);
                 DELETE FROM runs WHERE id = (SELECT id FROM runs WHERE connector = 'a' AND id > 1
                                              ORDER BY finished_at DESC LIMIT 1);
                 DELETE FROM runs WHERE connector = 'e';
                 DELETE FROM alerts WHERE id IN (SELECT id FROM alerts WHERE status = 'sent'
                                                 AND id NOT IN (SELECT alert_id FROM deliveries) LIMIT 5);
                 UPDATE alerts SET sent_at = created_at
                 WHERE id IN (SELECT id FROM alerts WHERE status = 'sent' AND sent_at IS NOT NULL LIMIT 3);
                 UPDATE alerts SET created_at = sent_at
                 WHERE id IN (SELECT id FROM alerts WHERE status = 'sent' AND sent_at IS NOT NULL ORDER BY id DESC LIMIT 3);",
            )
            .unwrap();
    }

    fn assert_as_full_scan(store: &Store) {
        let g = store.gauges(now()).unwrap();
        let mut expected = full_scan(&store.conn, now());
        expected.transports = g.transports.clone();
        assert_eq!(g, expected);
        assert!(
            g.imports.len() >= 3 && g.latency_count > 0 && g.deferred > 0 && g.stale_claims > 0,
            "{g:?}"
        );
    }

    /// See: issue 17, item 16.
    #[test]
    fn issue_17_item_16_running_totals_equal_a_full_scan() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("state.db"), 8).unwrap();
        base(&store.conn);
        history(&store.conn, 3_000, 42);
        outbox(&store.conn);
        assert_as_full_scan(&store);
        churn(&mut store);
        assert_as_full_scan(&store);
        // The histogram's bounds are the table's.
        let bounds: Vec<f64> = store
            .conn
            .prepare("SELECT bound FROM latency_buckets ORDER BY bound")
            .unwrap()
            .query_map([], |r| Ok(r.get::<_, i64>(0)? as f64))
            .unwrap()
            .map(|r| r.unwrap())
            .collect();
        assert_eq!(bounds, LATENCY_BOUNDS);
    }

    /// See: issue 17, item 16. The migration fills the totals from a history
    /// written before it.
    #[test]
    fn issue_17_item_16_the_migration_fills_the_totals() {
        let migration = include_str!("migrations/0017_gauge_totals.sql");
        let position = super::super::migrate::MIGRATIONS
            .iter()
            .position(|(sql, _)| *sql == migration)
            .expect("migration 0017 registered");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        let mut conn = Connection::open(&path).unwrap();
        rusqlite_migration::Migrations::new(
            super::super::migrate::MIGRATIONS[..position]
                .iter()
                .map(|(sql, hook)| match hook {
                    Some(hook) => rusqlite_migration::M::up_with_hook(sql, *hook),
                    None => rusqlite_migration::M::up(sql),
                })
                .collect(),
        )
        .to_latest(&mut conn)
        .unwrap();
        base(&conn);
        history(&conn, 2_000, 9);
        outbox(&conn);
        drop(conn);
        let mut store = Store::open(&path, 8).unwrap();
        assert_as_full_scan(&store);
        churn(&mut store);
        assert_as_full_scan(&store);
    }

    thread_local! {
        /// The statements a scrape ran, with their virtual machine steps.
        static RAN: RefCell<Vec<(String, i32)>> = const { RefCell::new(Vec::new()) };
    }

    fn record(event: TraceEvent<'_>) {
        if let TraceEvent::Profile(stmt, _) = event {
            let sql = stmt.sql().into_owned();
            RAN.with(|ran| {
                ran.borrow_mut()
                    .push((sql, stmt.get_status(StatementStatus::VmStep)))
            });
        }
    }

    /// The statements one scrape of a store with `history` runs runs, with their
    /// steps.
    fn scrape(history: usize) -> Vec<(String, i32)> {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("state.db"), 8).unwrap();
        base(&store.conn);
        self::history(&store.conn, history, 3);
        outbox(&store.conn);
        RAN.with(|ran| ran.borrow_mut().clear());
        store
            .conn
            .trace_v2(TraceEventCodes::SQLITE_TRACE_PROFILE, Some(record));
        store.gauges(now()).unwrap();
        store.conn.trace_v2(TraceEventCodes::empty(), None);
        RAN.with(|ran| ran.take())
    }

    /// See: issue 17, item 16. No statement of a scrape reads the whole of
    /// `runs` or `alerts`, not even through an index.
    #[test]
    fn issue_17_item_16_no_scrape_statement_scans_runs_or_alerts() {
        let ran = scrape(100);
        assert!(ran.len() >= 6, "{ran:?}");
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("state.db"), 8).unwrap();
        for (sql, _) in &ran {
            let mut stmt = store
                .conn
                .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
                .unwrap();
            // Plans do not depend on the values: NULL for each parameter.
            let nulls = vec![rusqlite::types::Null; stmt.parameter_count()];
            let plan: Vec<String> = stmt
                .query_map(rusqlite::params_from_iter(nulls), |r| r.get(3))
                .unwrap()
                .map(|r| r.unwrap())
                .collect();
            for step in &plan {
                assert!(
                    !["SCAN alerts", "SCAN runs"]
                        .iter()
                        .any(|t| step.starts_with(t)),
                    "{sql}\nreads a whole table: {plan:?}"
                );
            }
        }
    }

    /// See: issue 17, item 16. A scrape takes as many steps with ten times the
    /// history (runs and alerts done with), the outbox being the same.
    #[test]
    fn issue_17_item_16_a_scrape_costs_the_same_whatever_the_history() {
        let steps = |ran: &[(String, i32)]| ran.iter().map(|(_, n)| i64::from(*n)).sum::<i64>();
        let (small, large) = (scrape(300), scrape(3_000));
        assert_eq!(steps(&small), steps(&large), "{small:#?}\n{large:#?}");
    }
}
