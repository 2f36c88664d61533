//! One snapshot imported: the driver that opens the import and runs its stages
//! in order (see [the module's map](super)), ending it applied, refused or
//! skipped.

use super::*;

/// An import opened: its one transaction, and what was read before the records.
pub(super) struct Import<'s> {
    pub(super) tx: ImportTx<'s>,
    /// The connector's stored index.
    pub(super) index: Index,
    /// The stored form of the dossiers' fields.
    pub(super) encoder: FieldEncoder,
    /// The run, recorded as started in the transaction.
    pub(super) run: NewRun,
    pub(super) summary: Summary,
}

/// An import opened, and the table it reads.
struct Opened<'s> {
    import: Import<'s>,
    table: Table,
    /// The table's size, for progress.
    size: u64,
}

/// How opening an import ended.
enum Opening<'s> {
    /// Ready to read the table.
    Ready(Box<Opened<'s>>),
    /// Ended already.
    Ended(Ended),
}

/// How an import's stages ended, once its transaction is committed or gone.
enum Ended {
    /// Applied, or nothing to do (the content was imported or refused before),
    /// or skipped.
    Done(Box<Summary>),
    /// Refused: to be recorded, the transaction rolled back.
    Refused(Box<Refusal>),
}

/// A content read before, which an import does not read again.
enum Earlier {
    /// The last applied snapshot's, by this run.
    Applied(i64),
    /// Refused by this run, with the same connector file.
    Refused(i64),
}

/// Imports one snapshot of a connector, from a file or its API.
pub(super) fn import_snapshot(
    store: &mut Store,
    connector: &Connector,
    origin: Origin<'_>,
    tz: chrono_tz::Tz,
    options: &Options<'_>,
    clock: &Clock,
) -> Result<Summary, StoreError> {
    match stages(store, connector, origin, tz, options, clock)? {
        Ended::Done(summary) => Ok(*summary),
        // The transaction was rolled back when the stages returned.
        Ended::Refused(refusal) => refuse(store, *refusal, clock.at()),
    }
}

/// The stages of an import, in order, in its one transaction.
fn stages(
    store: &mut Store,
    connector: &Connector,
    origin: Origin<'_>,
    tz: chrono_tz::Tz,
    options: &Options<'_>,
    clock: &Clock,
) -> Result<Ended, StoreError> {
    let stamp = || match origin {
        Origin::File(path) => file_stamp(path),
        Origin::Api(_) => None,
    };
    let stamp_before = stamp();
    let (import, table, size) = match open(store, connector, origin, tz, options, clock)? {
        Opening::Ready(opened) => (opened.import, opened.table, opened.size),
        Opening::Ended(ended) => return Ok(ended),
    };
    let timer = std::time::Instant::now();
    let (read, mut applied) = stream(&import, connector, table, size, tz, options, clock)?;
    applied.findings.end();
    debug!(connector = %connector.name, elapsed_ms = timer.elapsed().as_millis() as u64, "Read the snapshot and wrote its changes.");
    let read = match read {
        Ok(read) => read,
        Err(reason) => {
            let mut reasons = std::mem::take(&mut applied.findings.reasons);
            reasons.insert(0, reason);
            return Ok(Ended::Refused(Box::new(refused(import, applied, reasons))));
        }
    };
    applied.counts.rows = read.rows;
    applied.counts.unchanged += read.unchanged;
    if stamp() != stamp_before {
        let summary = changed_while_read(connector, import.summary);
        return Ok(Ended::Done(Box::new(summary)));
    }
    let gone = reconcile::disappearances(&import.index, &read, connector.mode);
    let file = &import.summary.file;
    let guarded = guards::check(connector, file, &read, applied.counts.rejected, &gone);
    if !applied.findings.reasons.is_empty() || !guarded.is_empty() {
        let mut reasons = std::mem::take(&mut applied.findings.reasons);
        reasons.extend(guarded);
        return Ok(Ended::Refused(Box::new(refused(import, applied, reasons))));
    }
    let summary = apply::commit(import, connector, applied, &read, &gone, clock)?;
    Ok(Ended::Done(Box::new(summary)))
}

/// The refusal of an import whose records were read (some, or all): what was
/// counted and rejected, and why. Its transaction is dropped: rolled back.
fn refused(import: Import<'_>, applied: Applied<'_>, reasons: Vec<String>) -> Refusal {
    let mut run = import.run;
    run.counts = applied.counts;
    Refusal {
        run,
        reasons,
        rejections: applied.findings.rejections,
        summary: import.summary,
    }
}

/// Opens an import: the first pass over the file, the transaction, the stored
/// index and the run; or ends it already.
fn open<'s>(
    store: &'s mut Store,
    connector: &Connector,
    origin: Origin<'_>,
    tz: chrono_tz::Tz,
    options: &Options<'_>,
    clock: &Clock,
) -> Result<Opening<'s>, StoreError> {
    let (started_at, shown) = match origin {
        Origin::File(path) => (clock.at(), path.display().to_string()),
        // The next synchronisation asks for what changed since this one began.
        Origin::Api(spool) => (
            spool.started_at,
            connector.source.address().unwrap_or_default(),
        ),
    };
    // The first pass (checksum, and the encoding of text) reads the whole file
    // before the write transaction: a slow drop folder (a network share) never
    // holds the database's lock, and a file passed over is never read under it.
    let inspected = FirstPass::of(origin, &connector.source);
    let mut tx = begin(store, &connector.name)?;
    let baseline = options.baseline
        || (!tx.has_applied_run(&connector.name)? && !connector.alert_on_first_import);
    let mut summary = Summary {
        baseline,
        ..Summary::new(&connector.name, shown)
    };
    let index = Index::load(&tx, &connector.name)?;
    debug!(connector = %connector.name, dossiers = index.entries.len(), elapsed_ms = clock.elapsed_ms(), "Loaded the change-detection index.");
    let fingerprint = connector.fingerprint_text();
    let mut run = NewRun {
        baseline,
        as_of: Some(clock.now()),
        ..NewRun::new(&connector.name, &summary.file, fingerprint, started_at)
    };
    // Before the checksum is known: the same file, given its right date, is
    // read again rather than skipped as refused.
    if let Some(reason) = out_of_order(&tx, &connector.name, clock.now(), tz)? {
        return Ok(refused_before_reading(run, reason, summary));
    }
    let inspected = match inspected {
        Ok(inspected) => inspected,
        Err(reason) => return Ok(refused_before_reading(run, reason, summary)),
    };
    run.checksum = inspected.checksum().map(str::to_owned);
    run.encoding = inspected.encoding().map(str::to_owned);
    summary.encoding.clone_from(&run.encoding);
    summary.checksum.clone_from(&run.checksum);
    match earlier(&tx, connector, &inspected, &run, options)? {
        Some(Earlier::Applied(last)) => return unchanged(tx, run, summary, last, clock),
        Some(Earlier::Refused(earlier)) => {
            let summary = skipped(summary, earlier);
            return Ok(Opening::Ended(Ended::Done(Box::new(summary))));
        }
        None => {}
    }
    let opened = inspected
        .open(origin, connector)
        .and_then(|(table, size)| Ok((checked_table(connector, options, table, tz, clock)?, size)));
    let (table, size) = match opened {
        Ok(opened) => opened,
        Err(reason) => return Ok(refused_before_reading(run, reason, summary)),
    };
    tx.start_run(&run)?;
    let encoder = tx.field_encoder(
        connector
            .mapping
            .field_names()
            .filter(|&name| name != model::ID && name != model::STEP),
    )?;
    let import = Import {
        tx,
        index,
        encoder,
        run,
        summary,
    };
    Ok(Opening::Ready(Box::new(Opened {
        import,
        table,
        size,
    })))
}

/// Begins the one transaction of an import. One import at a time per
/// database: what it reads cannot change under it. A connector's first import
/// records every dossier: it writes them once with a rollback journal, where the
/// WAL would write them twice. The journal is chosen before the transaction
/// (SQLite cannot change it inside one), so whether this is the baseline is
/// asked again under the lock.
fn begin<'s>(store: &'s mut Store, connector: &str) -> Result<ImportTx<'s>, StoreError> {
    if store.has_applied_run(connector)? {
        store.begin_import()
    } else {
        store.begin_bulk_import()
    }
}

/// A snapshot that cannot be read: refused.
fn refused_before_reading<'s>(run: NewRun, reason: String, summary: Summary) -> Opening<'s> {
    let refusal = Refusal::before_reading(run, reason, summary);
    Opening::Ended(Ended::Refused(Box::new(refusal)))
}

/// The earlier run that read the same content, when it is not read again.
fn earlier(
    tx: &ImportTx<'_>,
    connector: &Connector,
    inspected: &FirstPass,
    run: &NewRun,
    options: &Options<'_>,
) -> Result<Option<Earlier>, StoreError> {
    // An empty file is refused every time: all empty files share one checksum.
    let Some(checksum) = inspected
        .checksum()
        .filter(|_| !options.force && inspected.bytes() > 0)
    else {
        return Ok(None);
    };
    // The very content of the last applied snapshot: nothing to read again.
    // A content applied long ago, with other snapshots since, is read again.
    if let Some(last) = tx.last_snapshot(&connector.name)?
        && last.checksum.as_deref() == Some(checksum)
    {
        return Ok(Some(Earlier::Applied(last.id)));
    }
    // Refused by this very connector: refusing it again would change nothing.
    // Once the connector is fixed (another fingerprint), the file is read again.
    if let Some(earlier) = tx.run_with_checksum(&connector.name, checksum)?
        && earlier.status == RunStatus::Refused
        && earlier.fingerprint == run.fingerprint
    {
        return Ok(Some(Earlier::Refused(earlier.id)));
    }
    Ok(None)
}

/// Records a run whose content is the last applied snapshot's (`last`), and
/// commits it.
fn unchanged<'s>(
    tx: ImportTx<'_>,
    mut run: NewRun,
    mut summary: Summary,
    last: i64,
    clock: &Clock,
) -> Result<Opening<'s>, StoreError> {
    info!(
        connector = %run.connector, file = %summary.file, run = last,
        "The file holds the same content as the last applied snapshot: recorded as unchanged."
    );
    run.finished_at = clock.at();
    run.reasons.push(format!(
        "same content as the last applied snapshot (run {last}); use --force to read it again"
    ));
    summary.run_id = Some(tx.finish_unchanged(&run)?);
    summary.status = RunStatus::Unchanged.as_str();
    summary.dispose = true;
    summary.reasons = run.reasons;
    Ok(Opening::Ended(Ended::Done(Box::new(summary))))
}

/// A content refused before by run `earlier`, with the same connector file:
/// skipped.
fn skipped(mut summary: Summary, earlier: i64) -> Summary {
    warn!(
        connector = %summary.connector, file = %summary.file, run = earlier,
        "Skipped a file refused before; fix the export or the connector, or import it with --force."
    );
    summary.run_id = Some(earlier);
    summary.status = "skipped";
    summary.reasons.push(format!(
        "same content as the file refused by run {earlier} with the same connector; fix the export or the connector, or use --force"
    ));
    summary
}

/// Stages 1, 2 and 4, record by record: the reader's thread reads and maps the
/// table (stage 1) while this one plans (stage 2) and applies (stage 4) what it
/// sends. Gives how the reading ended, and what was applied.
fn stream<'a>(
    import: &Import<'_>,
    connector: &'a Connector,
    table: Table,
    size: u64,
    tz: chrono_tz::Tz,
    options: &Options<'a>,
    clock: &Clock,
) -> Result<(Result<ReadEnd, String>, Applied<'a>), StoreError> {
    let cx = Context {
        tx: &import.tx,
        connector,
        index: &import.index,
        encoder: &import.encoder,
        now: clock.now(),
        baseline: import.summary.baseline,
    };
    let alerting = options
        .rules
        .filter(|_| !cx.baseline)
        .map(|rules| Alerting::new(rules, &connector.name, connector.link.as_deref(), cx.now));
    let file = import.summary.file.clone();
    let mut applied = Applied::new(file, table.is_api(), alerting);
    let (index, encoder) = (cx.index, cx.encoder);
    let (read, applying) = std::thread::scope(|s| {
        let (sender, receiver) = sync_channel::<Vec<Encoded>>(8);
        // The dossiers the store is done with go back to the reader to be freed:
        // freeing their fields costs the busier thread a twentieth of a first import.
        let (recycle, recycled) = std::sync::mpsc::channel::<Vec<model::Dossier>>();
        let reader = s.spawn(move || {
            let progress = |offset| {
                if let Some(progress) = options.progress {
                    progress(offset, size);
                }
            };
            let send = move |batch| {
                recycled.try_iter().for_each(drop);
                sender.send(batch).is_ok()
            };
            read::read(connector, table, index, encoder, tz, progress, send)
        });
        // On a store error, the receiver is dropped: the reader stops at its next batch.
        let applying = applied.drain(&cx, receiver, recycle);
        let read = reader
            .join()
            .unwrap_or_else(|_| Err("the file parser panicked".to_owned()));
        (read, applying)
    });
    applying?;
    Ok((read, applied))
}
