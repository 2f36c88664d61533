//! Stage 3, guards: whether a snapshot read whole looks broken (a column no
//! record has, no data, too many records rejected or dossiers gone), and the
//! refusal that records it without applying anything: the transaction is
//! rolled back, and the run is recorded on its own.

use super::*;

/// Why the guards refuse a snapshot read whole; none when they let it through.
pub(super) fn check(
    connector: &Connector,
    file: &str,
    read: &ReadEnd,
    rejected: u64,
    gone: &Disappearances<'_>,
) -> Vec<String> {
    let guards = &connector.guards;
    let mut reasons = Vec::new();
    // A column no record has: a broken export, or (for a batch of changes) a batch too small to say.
    if connector.mode == Mode::Full {
        reasons.extend(read.vanished.iter().cloned());
    }
    // An incremental source with nothing new is normal; a full export without data is not.
    if read.rows == 0 && connector.mode == Mode::Full {
        reasons.push(format!(
            "{file}: the export holds no data record, only a header"
        ));
    }
    let rejected_ratio = ratio(rejected, read.rows);
    if read.rows > 0 && rejected_ratio > guards.max_rejected_ratio {
        reasons.push(format!(
            "{file}: {rejected} of {} records rejected ({:.1} %), above max_rejected_ratio ({:.1} %)",
            read.rows,
            rejected_ratio * 100.0,
            guards.max_rejected_ratio * 100.0
        ));
    }
    let (missing, present_before) = (gone.missing, gone.present_before);
    let disappeared_ratio = ratio(missing, present_before);
    if gone.full && missing > 0 && disappeared_ratio > guards.max_disappeared_ratio {
        reasons.push(format!(
            "{missing} of {present_before} dossiers would disappear ({:.1} %), above max_disappeared_ratio ({:.1} %): is the export truncated?",
            disappeared_ratio * 100.0,
            guards.max_disappeared_ratio * 100.0
        ));
    }
    reasons
}

pub(super) fn ratio(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

/// A file still being written would look truncated: neither applied nor
/// refused, it is read again later.
pub(super) fn changed_while_read(connector: &Connector, mut summary: Summary) -> Summary {
    let file = &summary.file;
    warn!(
        connector = %connector.name, file = %file,
        "The file changed while it was read; nothing was applied, it is read again at the next tick."
    );
    let reason = format!("{file}: the file changed while it was read; nothing was applied");
    summary.status = "skipped";
    summary.reasons.push(reason);
    summary
}

/// A snapshot refused: the run to record, why, and what was rejected.
pub(super) struct Refusal {
    /// The run, with what was counted of the records read.
    pub(super) run: NewRun,
    pub(super) reasons: Vec<String>,
    pub(super) rejections: Vec<Rejection>,
    pub(super) summary: Summary,
}

impl Refusal {
    /// A snapshot refused for one reason, before any record was read.
    pub(super) fn before_reading(run: NewRun, reason: String, summary: Summary) -> Self {
        Self {
            run,
            reasons: vec![reason],
            rejections: Vec::new(),
            summary,
        }
    }
}

/// Records a refused run, finished at `finished_at`: nothing of the snapshot is
/// applied (the caller dropped its transaction).
pub(super) fn refuse(
    store: &mut Store,
    refusal: Refusal,
    finished_at: DateTime<Utc>,
) -> Result<Summary, StoreError> {
    let Refusal {
        mut run,
        reasons,
        rejections,
        mut summary,
    } = refusal;
    run.finished_at = finished_at;
    run.reasons = reasons;
    // The transaction was rolled back: nothing was created, changed or queued.
    // What was read (rows, records unchanged or rejected, values ignored) stays.
    let read = run.counts;
    run.counts = Counts {
        rows: read.rows,
        unchanged: read.unchanged,
        rejected: read.rejected,
        warnings: read.warnings,
        ..Counts::default()
    };
    let run_id = store.record_refused(&run, &rejections)?;
    error!(
        connector = %run.connector, file = %run.source, run = run_id,
        reasons = %run.reasons.join("; "),
        "Refused a snapshot: nothing was changed."
    );
    summary.run_id = Some(run_id);
    summary.status = RunStatus::Refused.as_str();
    summary.counts = run.counts;
    summary.reasons = run.reasons;
    summary.show(rejections);
    Ok(summary)
}
