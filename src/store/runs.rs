//! The runs: what each import (or refused snapshot) read, counted and rejected.
//!
//! Owns the `runs` and `rejections` tables: recording a refused run, the run an
//! import applies (with its transaction), the listings of `alertissimo runs`,
//! and the lookups an import makes before reading (its baseline, its last
//! snapshot, a file read before).

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, Transaction, params};

use super::{ImportTx, Result, Store, StoreError, format_time, parse_time};
use crate::model::EventKind;

/// The outcome of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RunStatus {
    /// The snapshot was applied.
    Applied,
    /// The snapshot was refused by a guard: nothing changed.
    Refused,
    /// The content was identical to the connector's last applied snapshot:
    /// nothing to read again, and the source is healthy.
    Unchanged,
}

impl RunStatus {
    /// The stored name.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Applied => "applied",
            Self::Refused => "refused",
            Self::Unchanged => "unchanged",
        }
    }

    fn parse(s: &str) -> Result<Self> {
        match s {
            "applied" => Ok(Self::Applied),
            "refused" => Ok(Self::Refused),
            "unchanged" => Ok(Self::Unchanged),
            _ => Err(StoreError::Corrupt(format!("run status '{s}'"))),
        }
    }
}

/// Counts of one run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct Counts {
    /// Data records read: `unchanged` + `changed` + `rejected` for an applied
    /// snapshot.
    pub rows: u64,
    /// Records that raised no event: identical to the stored state, or changed
    /// only in fields nobody watches (the state is updated).
    pub unchanged: u64,
    /// Records that raised at least one event (or brought a message).
    pub changed: u64,
    /// New dossiers.
    pub created: u64,
    /// Step changes.
    pub step_changed: u64,
    /// Watched field changes.
    pub field_changed: u64,
    /// Dossiers missing from the snapshot.
    pub disappeared: u64,
    /// Dossiers back in the snapshot.
    pub reappeared: u64,
    /// Records rejected.
    pub rejected: u64,
    /// Values ignored (fields with `on_invalid = "ignore"`).
    pub warnings: u64,
    /// Alerts the events queued in the outbox.
    pub alerts_queued: u64,
    /// Pending step alerts cancelled because their dossier left the step (debounce).
    pub alerts_cancelled: u64,
    /// Messages of the source added to the dossiers' timelines.
    pub messages: u64,
    /// Dossiers found stalled in their step (evaluations).
    pub stalled: u64,
    /// Deadline reminders due (evaluations).
    pub deadline: u64,
    /// Dossiers listed in a periodic review (evaluations).
    pub review: u64,
}

impl Counts {
    /// Counts one event.
    pub(crate) fn add(&mut self, kind: EventKind) {
        match kind {
            EventKind::Created => self.created += 1,
            EventKind::StepChanged => self.step_changed += 1,
            EventKind::FieldChanged => self.field_changed += 1,
            EventKind::Disappeared => self.disappeared += 1,
            EventKind::Reappeared => self.reappeared += 1,
            EventKind::Message => self.messages += 1,
            EventKind::Stalled => self.stalled += 1,
            EventKind::Deadline => self.deadline += 1,
            EventKind::Review => self.review += 1,
        }
    }
}

/// A run as stored.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RunRecord {
    /// Its id.
    pub id: i64,
    /// The connector.
    pub connector: String,
    /// What was read.
    pub source: String,
    /// The content checksum, for files.
    pub checksum: Option<String>,
    /// The connector's fingerprint when it ran.
    pub fingerprint: String,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// When it ended.
    pub finished_at: DateTime<Utc>,
    /// Applied or refused.
    pub status: RunStatus,
    /// Whether it was the connector's baseline.
    pub baseline: bool,
    /// What it counted.
    pub counts: Counts,
    /// Why it was refused.
    pub reasons: Vec<String>,
    /// The encoding a text export was decoded with.
    pub encoding: Option<String>,
    /// When its export was taken (issue 19): its `--as-of`, its file's
    /// `[as_of]`, or the instant it ran at; a run recorded before the column
    /// existed gives its start.
    pub as_of: DateTime<Utc>,
}

/// A rejected record or ignored value.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct Rejection {
    /// `rejected` (the record was not used) or `warning` (a value was ignored).
    #[serde(deserialize_with = "known_severity")]
    pub severity: crate::model::StaticName,
    /// The file read.
    pub file: String,
    /// The line where the record starts.
    pub line: Option<u64>,
    /// The record number (1 = first data record).
    pub record: Option<u64>,
    /// The record's id, when it could be read.
    pub source_id: Option<String>,
    /// The field at fault.
    pub field: Option<String>,
    /// Why.
    pub reason: String,
}

/// A rejection's severity, read back (a daemon's answer over the control socket).
fn known_severity<'de, D: serde::Deserializer<'de>>(d: D) -> Result<&'static str, D::Error> {
    crate::model::one_of(d, &["rejected", "warning"])
}

/// What is known of a run when it starts.
#[derive(Debug, Clone)]
pub(crate) struct NewRun {
    /// The connector.
    pub connector: String,
    /// What is read.
    pub source: String,
    /// The content checksum, for files.
    pub checksum: Option<String>,
    /// The connector's fingerprint (hex).
    pub fingerprint: String,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// When it ended (updated by [`ImportTx::finish`] for applied runs).
    pub finished_at: DateTime<Utc>,
    /// Whether it is the connector's baseline.
    pub baseline: bool,
    /// Counts so far.
    pub counts: Counts,
    /// Why it was refused.
    pub reasons: Vec<String>,
    /// The encoding a text export was decoded with.
    pub encoding: Option<String>,
    /// When its export was taken (an import's instant); none for a run that
    /// reads no export.
    pub as_of: Option<DateTime<Utc>>,
}

impl NewRun {
    /// A run of `connector` reading `source`, started (and, until it ends,
    /// finished) at `at`, with nothing counted yet.
    pub(crate) fn new(
        connector: &str,
        source: &str,
        fingerprint: String,
        at: DateTime<Utc>,
    ) -> Self {
        Self {
            connector: connector.to_owned(),
            source: source.to_owned(),
            checksum: None,
            fingerprint,
            started_at: at,
            finished_at: at,
            baseline: false,
            counts: Counts::default(),
            reasons: Vec::new(),
            encoding: None,
            as_of: None,
        }
    }
}

impl Store {
    /// One run.
    ///
    /// # Errors
    /// On a database error.
    #[cfg(test)]
    pub(crate) fn run(&self, id: i64) -> Result<Option<RunRecord>> {
        let mut runs = query_runs(&self.conn, "WHERE id = ?1", [id])?;
        Ok(runs.pop())
    }

    /// The most recent runs, newest first, optionally for one connector.
    ///
    /// # Errors
    /// On a database error.
    pub(crate) fn recent_runs(
        &self,
        connector: Option<&str>,
        limit: u32,
    ) -> Result<Vec<RunRecord>> {
        match connector {
            Some(c) => query_runs(
                &self.conn,
                "WHERE connector = ?1 AND kind = 'import' ORDER BY id DESC LIMIT ?2",
                params![c, limit],
            ),
            None => query_runs(
                &self.conn,
                "WHERE kind = 'import' ORDER BY id DESC LIMIT ?1",
                params![limit],
            ),
        }
    }
}

fn query_runs(
    conn: &Connection,
    tail: &str,
    params: impl rusqlite::Params,
) -> Result<Vec<RunRecord>> {
    let sql = format!(
        "SELECT id, connector, source, checksum, started_at, finished_at, status, baseline,
                    rows, unchanged, created, step_changed, field_changed, disappeared, reappeared,
                    rejected, warnings, reasons, fingerprint, alerts_queued, alerts_cancelled,
                    messages, stalled, deadline, review, encoding, changed,
                    coalesce(as_of, started_at)
             FROM runs {tail}"
    );
    let mut stmt = conn.prepare(&sql)?;
    let mut rows = stmt.query(params)?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        let count = |i: usize| -> Result<u64> { Ok(r.get::<_, i64>(i)? as u64) };
        let reasons: String = r.get(17)?;
        out.push(RunRecord {
            id: r.get(0)?,
            connector: r.get(1)?,
            source: r.get(2)?,
            checksum: r.get(3)?,
            fingerprint: r.get(18)?,
            started_at: parse_time(r.get_ref(4)?.as_str()?)?,
            finished_at: parse_time(r.get_ref(5)?.as_str()?)?,
            status: RunStatus::parse(r.get_ref(6)?.as_str()?)?,
            baseline: r.get(7)?,
            counts: Counts {
                rows: count(8)?,
                unchanged: count(9)?,
                created: count(10)?,
                step_changed: count(11)?,
                field_changed: count(12)?,
                disappeared: count(13)?,
                reappeared: count(14)?,
                rejected: count(15)?,
                warnings: count(16)?,
                alerts_queued: count(19)?,
                alerts_cancelled: count(20)?,
                messages: count(21)?,
                stalled: count(22)?,
                deadline: count(23)?,
                review: count(24)?,
                changed: count(26)?,
            },
            reasons: serde_json::from_str(&reasons)
                .map_err(|e| StoreError::Corrupt(format!("run reasons: {e}")))?,
            encoding: r.get(25)?,
            as_of: parse_time(r.get_ref(27)?.as_str()?)?,
        });
    }
    Ok(out)
}

impl Store {
    /// The rejections of a run, in file order, at most `limit`.
    ///
    /// # Errors
    /// On a database error.
    pub(crate) fn rejections(&self, run_id: i64, limit: u32) -> Result<Vec<Rejection>> {
        let mut stmt = self.conn.prepare(
            "SELECT severity, file, line, record, source_id, field, reason
             FROM rejections WHERE run_id = ?1 ORDER BY id LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![run_id, limit], |r| {
            let severity: String = r.get(0)?;
            Ok(Rejection {
                severity: if severity == "warning" {
                    "warning"
                } else {
                    "rejected"
                },
                file: r.get(1)?,
                line: r.get::<_, Option<i64>>(2)?.map(|v| v as u64),
                record: r.get::<_, Option<i64>>(3)?.map(|v| v as u64),
                source_id: r.get(4)?,
                field: r.get(5)?,
                reason: r.get(6)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Records a refused run with its reasons and rejections, in its own transaction.
    ///
    /// # Errors
    /// On a database error.
    pub(crate) fn record_refused(&mut self, run: &NewRun, rejections: &[Rejection]) -> Result<i64> {
        let tx = self.conn.transaction()?;
        let id = insert_run(&tx, run, RunStatus::Refused)?;
        insert_rejections(&tx, id, rejections)?;
        tx.commit()?;
        Ok(id)
    }

    /// Whether the connector has an applied run (if not, its next import is its baseline).
    ///
    /// # Errors
    /// On a database error.
    pub(crate) fn has_applied_run(&self, connector: &str) -> Result<bool> {
        has_applied_run(&self.conn, connector)
    }

    /// When the last applied import of a connector with this connector file
    /// (`fingerprint`) started, for incremental polling: what changed since then is
    /// asked for. A changed connector (a fixed mapping) asks for everything again.
    ///
    /// # Errors
    /// On a database error or a corrupt row.
    pub(crate) fn last_applied_start(
        &self,
        connector: &str,
        fingerprint: &str,
    ) -> Result<Option<DateTime<Utc>>> {
        let last: Option<String> = self
            .conn
            .prepare_cached(
                "SELECT max(started_at) FROM runs
                 WHERE connector = ?1 AND status = 'applied' AND fingerprint = ?2",
            )?
            .query_row([connector, fingerprint], |r| r.get(0))?;
        last.as_deref().map(parse_time).transpose()
    }
}

impl Store {
    /// When the connector's last applied snapshot (applied, or unchanged) was
    /// taken: what an import must not go back before (issue 19).
    ///
    /// # Errors
    /// On a database error or a corrupt row.
    pub fn last_snapshot_as_of(&self, connector: &str) -> Result<Option<DateTime<Utc>>> {
        Ok(query_runs(
            &self.conn,
            "WHERE connector = ?1 AND kind = 'import' AND status IN ('applied', 'unchanged')
             ORDER BY id DESC LIMIT 1",
            [connector],
        )?
        .pop()
        .map(|run| run.as_of))
    }
}

fn has_applied_run(conn: &Connection, connector: &str) -> Result<bool> {
    Ok(conn
        .prepare_cached("SELECT 1 FROM runs WHERE connector = ?1 AND status = 'applied' LIMIT 1")?
        .exists([connector])?)
}

pub(super) fn insert_run(tx: &Transaction<'_>, run: &NewRun, status: RunStatus) -> Result<i64> {
    let c = &run.counts;
    tx.execute(
        "INSERT INTO runs (connector, source, checksum, started_at, finished_at, status, baseline,
                           rows, unchanged, created, step_changed, field_changed, disappeared,
                           reappeared, rejected, warnings, reasons, fingerprint, encoding, as_of)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18,
                 ?19, ?20)",
        params![
            run.connector,
            run.source,
            run.checksum,
            format_time(run.started_at),
            format_time(run.finished_at),
            status.as_str(),
            run.baseline,
            c.rows as i64,
            c.unchanged as i64,
            c.created as i64,
            c.step_changed as i64,
            c.field_changed as i64,
            c.disappeared as i64,
            c.reappeared as i64,
            c.rejected as i64,
            c.warnings as i64,
            serde_json::to_string(&run.reasons).unwrap_or_else(|_| "[]".to_owned()),
            run.fingerprint,
            run.encoding,
            run.as_of.map(format_time),
        ],
    )?;
    Ok(tx.last_insert_rowid())
}

/// How many rejections a run keeps in the store; the count is always exact.
pub(crate) const MAX_STORED_REJECTIONS: usize = 10_000;

pub(super) fn insert_rejections(
    tx: &Transaction<'_>,
    run_id: i64,
    rejections: &[Rejection],
) -> Result<()> {
    let mut stmt = tx.prepare_cached(
        "INSERT INTO rejections (run_id, severity, file, line, record, source_id, field, reason)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?;
    for r in rejections.iter().take(MAX_STORED_REJECTIONS) {
        stmt.execute(params![
            run_id,
            r.severity,
            r.file,
            r.line.map(|v| v as i64),
            r.record.map(|v| v as i64),
            r.source_id,
            r.field,
            r.reason,
        ])?;
    }
    Ok(())
}

impl ImportTx<'_> {
    /// Records the run being applied; the writes that follow belong to it.
    ///
    /// # Errors
    /// On a database error.
    pub(crate) fn start_run(&mut self, run: &NewRun) -> Result<i64> {
        self.run_id = insert_run(&self.tx, run, RunStatus::Applied)?;
        Ok(self.run_id)
    }

    /// Whether the connector already has an applied run (if not, the next import is its baseline).
    ///
    /// # Errors
    /// On a database error.
    pub(crate) fn has_applied_run(&self, connector: &str) -> Result<bool> {
        has_applied_run(&self.tx, connector)
    }

    /// The connector's last applied snapshot (an `unchanged` run repeats the
    /// one before it), if any.
    ///
    /// # Errors
    /// On a database error or a corrupt row.
    pub(crate) fn last_snapshot(&self, connector: &str) -> Result<Option<RunRecord>> {
        Ok(query_runs(
            &self.tx,
            "WHERE connector = ?1 AND kind = 'import' AND status IN ('applied', 'unchanged')
             ORDER BY id DESC LIMIT 1",
            [connector],
        )?
        .pop())
    }

    /// The latest run that read a file with this checksum, if any.
    ///
    /// # Errors
    /// On a database error.
    pub(crate) fn run_with_checksum(
        &self,
        connector: &str,
        checksum: &str,
    ) -> Result<Option<RunRecord>> {
        let id: Option<i64> = self
            .tx
            .query_row(
                "SELECT id FROM runs WHERE connector = ?1 AND checksum = ?2 ORDER BY id DESC LIMIT 1",
                [connector, checksum],
                |r| r.get(0),
            )
            .optional()?;
        match id {
            Some(id) => Ok(query_runs(&self.tx, "WHERE id = ?1", [id])?.pop()),
            None => Ok(None),
        }
    }
}
