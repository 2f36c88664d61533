//! Stage 4, apply and commit, in the store's one transaction ([`ImportTx`]).
//!
//! While the records stream, each dossier's plan is written as it comes
//! ([`Applied`]): the snapshot is never held in memory, and a refusal by the
//! guards (stage 3) rolls all of it back. Once they let it through,
//! [`commit`] writes the disappearances, the source's cursor, the index and the
//! run, and commits.

use std::sync::mpsc::{Receiver, Sender};

use super::*;

/// Why a value was not used when an export left it empty.
const KEPT: &str = "empty in this export: the stored value is kept (on_empty = \"keep\")";

/// What the records read so far did, in the transaction: the stream's result.
pub(super) struct Applied<'a> {
    pub(super) counts: Counts,
    pub(super) findings: Findings,
    /// What becomes of the index.
    pub(super) changes: IndexChanges,
    /// The alerts events owe (none for a baseline, or without rules).
    pub(super) alerting: Option<Alerting<'a>>,
}

impl<'a> Applied<'a> {
    pub(super) fn new(file: String, repeats_replace: bool, alerting: Option<Alerting<'a>>) -> Self {
        Self {
            counts: Counts::default(),
            findings: Findings::new(file),
            changes: IndexChanges::new(repeats_replace),
            alerting,
        }
    }

    /// Plans (stage 2) and applies every record the reader sends, until it
    /// ends; the dossiers done with go back to it (`recycle`) to be freed.
    pub(super) fn drain(
        &mut self,
        cx: &Context<'_, '_>,
        batches: Receiver<Vec<Encoded>>,
        recycle: Sender<Vec<model::Dossier>>,
    ) -> Result<(), StoreError> {
        for batch in &batches {
            let mut spent = Vec::with_capacity(batch.len());
            for item in batch {
                if let Some(dossier) = self.record(cx, item)? {
                    spent.push(dossier);
                }
            }
            // Once the reader ended, they are freed here.
            let _ = recycle.send(spent);
        }
        Ok(())
    }

    /// One record read; gives back the dossier applied.
    fn record(
        &mut self,
        cx: &Context<'_, '_>,
        item: Encoded,
    ) -> Result<Option<model::Dossier>, StoreError> {
        match item {
            Encoded::Rejected(record) => {
                self.counts.rejected += 1;
                self.findings.rejected(record);
                Ok(None)
            }
            Encoded::Duplicate(duplicate) => {
                self.duplicate(cx, duplicate)?;
                Ok(None)
            }
            Encoded::Dossier(read, fields) => {
                let plan = reconcile::plan(cx, &self.changes, read, fields)?;
                self.apply(cx, plan).map(Some)
            }
        }
    }

    /// An id seen twice, named while few are.
    fn duplicate(&mut self, cx: &Context<'_, '_>, d: DuplicateId) -> Result<(), StoreError> {
        if !self.findings.count_duplicate() {
            return Ok(());
        }
        let id = match d.id {
            Ok(id) => Some(id),
            // Both copies are new: the first was just inserted.
            Err(key) => match self.changes.created_with(key) {
                Some(rowid) => cx.tx.get(rowid)?.map(|(dossier, _)| dossier.id),
                None => None,
            },
        };
        self.findings.duplicate(d.line, d.first_line, id.as_deref());
        Ok(())
    }

    /// Writes a dossier's plan: its state, its events and their alerts, its
    /// messages; gives the dossier back.
    fn apply(&mut self, cx: &Context<'_, '_>, plan: Plan) -> Result<model::Dossier, StoreError> {
        let Plan {
            read,
            fields,
            kept,
            change,
            action,
        } = plan;
        let ReadDossier {
            line,
            mapped,
            key,
            row_hash,
            messages,
            ..
        } = read;
        for field in kept {
            self.counts.warnings += 1;
            let id = &mapped.dossier.id;
            self.findings.warning(line, id, field, KEPT.to_owned());
        }
        let write = DossierWrite {
            dossier: &mapped.dossier,
            step_entered_at: change.step_entered_at,
            fields: &fields,
        };
        let rowid = match action {
            Action::Create => {
                let rowid = cx.tx.insert(&cx.connector.name, &write)?;
                self.changes.created(key, rowid, row_hash)?;
                rowid
            }
            Action::Change { held, stored } => {
                cx.tx.update(held.rowid, &stored.dossier, &write)?;
                self.changes.read_again(held.slot, row_hash);
                held.rowid
            }
            Action::Unchanged { held } => {
                self.changes.read_again(held.slot, row_hash);
                held.rowid
            }
        };
        if self.record_events(cx, rowid, &mapped.dossier, &change.events, &messages)? {
            self.counts.changed += 1;
        } else {
            self.counts.unchanged += 1;
        }
        for w in mapped.warnings {
            self.counts.warnings += 1;
            let reason = format!("{} (value ignored)", w.reason);
            self.findings
                .warning(line, &mapped.dossier.id, w.field, reason);
        }
        Ok(mapped.dossier)
    }

    /// Records a dossier's events, queues the alerts they owe, and adds the
    /// source's new messages to its timeline; whether anything was recorded.
    fn record_events(
        &mut self,
        cx: &Context<'_, '_>,
        rowid: i64,
        dossier: &model::Dossier,
        events: &[Event],
        messages: &[model::SourceMessage],
    ) -> Result<bool, StoreError> {
        let mut stored = Vec::with_capacity(events.len());
        for event in events {
            stored.push((cx.tx.insert_event(rowid, event, cx.baseline)?, event));
            self.counts.add(event.kind);
        }
        if let Some(alerting) = &mut self.alerting
            && !stored.is_empty()
        {
            alerting.on_events(cx.tx, rowid, dossier, &stored, &mut self.counts)?;
        }
        let mut told = !stored.is_empty();
        for message in messages {
            if cx.tx.insert_message(rowid, message, cx.baseline)? {
                self.counts.add(EventKind::Message);
                told = true;
            }
        }
        Ok(told)
    }

    /// Marks the dossiers gone as such, each with its event and the alerts it owes.
    fn disappear(
        &mut self,
        cx: &Context<'_, '_>,
        gone: &[(usize, Option<&model::SourceDeletion>)],
    ) -> Result<(), StoreError> {
        for &(i, stated) in gone {
            let rowid = cx.index.entries[i].dossier_id();
            let step = cx.tx.step_of(rowid)?;
            cx.tx.mark_disappeared(rowid)?;
            let event = match stated {
                Some(deletion) => diff::deleted_on_source(&step, deletion, cx.now),
                None => diff::disappeared(&step, cx.now),
            };
            let event_id = cx.tx.insert_event(rowid, &event, cx.baseline)?;
            self.counts.add(event.kind);
            if let Some(alerting) = &mut self.alerting
                && let Some((dossier, _)) = cx.tx.get(rowid)?
            {
                let events = [(event_id, &event)];
                alerting.on_events(cx.tx, rowid, &dossier, &events, &mut self.counts)?;
            }
        }
        Ok(())
    }
}

/// Stage 4's end, once the guards let the snapshot through: the dossiers gone,
/// the alerts' digests aligned, the source's cursor and the index written, the
/// run finished, and the one transaction committed.
pub(super) fn commit(
    import: Import<'_>,
    connector: &Connector,
    mut applied: Applied<'_>,
    read: &ReadEnd,
    gone: &Disappearances<'_>,
    clock: &Clock,
) -> Result<Summary, StoreError> {
    let Import {
        tx,
        index,
        encoder,
        mut run,
        mut summary,
    } = import;
    let now = clock.now();
    let cx = Context {
        tx: &tx,
        connector,
        index: &index,
        encoder: &encoder,
        now,
        baseline: summary.baseline,
    };
    applied.disappear(&cx, &gone.gone)?;
    if let Some(alerting) = &applied.alerting {
        alerting.report();
        if applied.counts.alerts_queued > 1 {
            tx.align_digests()?;
        }
    }
    if let Some(cursor) = &read.cursor {
        // With the import, in its transaction: it advances only with applied data.
        tx.set_source_cursor(&connector.name, cursor, now)?;
    }
    // Stored in key order, so that the next import sorts nothing; merged rather
    // than appended, which would copy the whole index into a vector twice as large.
    let (entries, added) = applied
        .changes
        .applied(index, gone.gone.iter().map(|&(i, _)| i));
    tx.save_index(&connector.name, merge_sorted(&entries, &added))?;
    let counts = applied.counts;
    run.counts = counts;
    run.finished_at = clock.at();
    let before_commit = std::time::Instant::now();
    let run_id = tx.finish(&run, &applied.findings.rejections)?;
    debug!(connector = %connector.name, elapsed_ms = before_commit.elapsed().as_millis() as u64, "Committed.");
    info!(
        connector = %connector.name, file = %summary.file, run = run_id, rows = counts.rows,
        created = counts.created, step_changed = counts.step_changed,
        field_changed = counts.field_changed, disappeared = counts.disappeared,
        reappeared = counts.reappeared, rejected = counts.rejected, baseline = summary.baseline,
        alerts_queued = counts.alerts_queued, "Applied a snapshot."
    );
    summary.run_id = Some(run_id);
    summary.status = RunStatus::Applied.as_str();
    summary.dispose = true;
    summary.counts = counts;
    summary.show(applied.findings.rejections);
    Ok(summary)
}

/// What a run reports of the records read: the rejected records and ignored
/// values (stored with the run, the first [`MAX_STORED_REJECTIONS`]), and the
/// reasons to refuse found while reading (ids seen twice).
pub(super) struct Findings {
    /// The file, as rejections name it.
    file: String,
    pub(super) rejections: Vec<Rejection>,
    pub(super) reasons: Vec<String>,
    /// How many ids were seen twice; the reasons name the first [`SHOWN_REJECTIONS`].
    duplicates: u64,
}

impl Findings {
    fn new(file: String) -> Self {
        Self {
            file,
            rejections: Vec::new(),
            reasons: Vec::new(),
            duplicates: 0,
        }
    }

    fn push(&mut self, rejection: Rejection) {
        if self.rejections.len() < MAX_STORED_REJECTIONS {
            self.rejections.push(rejection);
        }
    }

    /// A record rejected, one rejection per issue.
    fn rejected(&mut self, record: RejectedRecord) {
        for issue in record.issues {
            self.push(Rejection {
                severity: "rejected",
                file: self.file.clone(),
                line: Some(record.line),
                record: Some(record.number),
                source_id: record.id.clone(),
                field: Some(issue.field).filter(|f| !f.is_empty()),
                reason: issue.reason,
            });
        }
    }

    /// A value of a record that was not used.
    fn warning(&mut self, line: u64, id: &str, field: String, reason: String) {
        self.push(Rejection {
            severity: "warning",
            file: self.file.clone(),
            line: Some(line),
            record: None,
            source_id: Some(id.to_owned()),
            field: Some(field),
            reason,
        });
    }

    /// Counts an id seen twice; whether it is still named.
    fn count_duplicate(&mut self) -> bool {
        self.duplicates += 1;
        self.duplicates <= SHOWN_REJECTIONS as u64
    }

    /// Names an id seen twice, at `line` and first at `first_line`.
    fn duplicate(&mut self, line: u64, first_line: u64, id: Option<&str>) {
        let file = &self.file;
        self.reasons.push(match id {
            Some(id) => {
                format!(
                    "{file}:{line}: id '{id}' appears more than once (first at line {first_line})"
                )
            }
            // Both records were rejected: the id is in the rejections.
            None => format!("{file}:{line}: the id of line {first_line} appears again"),
        });
    }

    /// Once the snapshot is read: counts the ids seen twice not named.
    pub(super) fn end(&mut self) {
        if self.duplicates > SHOWN_REJECTIONS as u64 {
            self.reasons.push(format!(
                "{}: … and {} more ids that appear more than once",
                self.file,
                self.duplicates - SHOWN_REJECTIONS as u64
            ));
        }
    }
}
