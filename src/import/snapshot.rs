//! One snapshot imported in one transaction: the store's side of the pipeline
//! (diff, events, alerts), the guards, and the refusal that applies nothing.

use super::*;

/// A value of a record that was not used, as the run reports it.
pub(super) fn warning(file: &str, line: u64, id: &str, field: String, reason: String) -> Rejection {
    Rejection {
        severity: "warning",
        file: file.to_owned(),
        line: Some(line),
        record: None,
        source_id: Some(id.to_owned()),
        field: Some(field),
        reason,
    }
}

/// Puts back the stored values of the fields a record left empty with
/// `on_empty = "keep"` (see [`crate::connector::mapping::OnEmpty`]), and the
/// stored form of its fields with them; returns the fields kept.
pub(super) fn keep_stored(
    mut mapped: Mapped,
    fields: Vec<u8>,
    stored: Option<&model::Dossier>,
    encoder: &FieldEncoder,
) -> Result<(Mapped, Vec<u8>, Vec<String>), StoreError> {
    let Some(stored) = stored.filter(|_| !mapped.kept.is_empty()) else {
        return Ok((mapped, fields, Vec::new()));
    };
    let mut kept = Vec::new();
    for name in std::mem::take(&mut mapped.kept) {
        if let Some(value) = stored.fields.get(&name) {
            mapped.dossier.fields.insert(name.clone(), value.clone());
            kept.push(name);
        }
    }
    if kept.is_empty() {
        return Ok((mapped, fields, kept));
    }
    let fields = encoder
        .encode(&mapped.dossier.fields)
        .map_err(StoreError::Corrupt)?;
    Ok((mapped, fields, kept))
}

/// Imports one snapshot of a connector, from a file or its API.
pub(super) fn import_snapshot(
    store: &mut Store,
    connector: &Connector,
    origin: Origin<'_>,
    tz: chrono_tz::Tz,
    options: &Options<'_>,
) -> Result<Summary, StoreError> {
    let (started_at, shown) = match origin {
        Origin::File(path) => (Utc::now(), path.display().to_string()),
        // The next synchronisation asks for what changed since this one began.
        Origin::Api(spool) => (
            spool.started_at,
            connector.source.address().unwrap_or_default(),
        ),
    };
    let stamp = || match origin {
        Origin::File(path) => file_stamp(path),
        Origin::Api(_) => None,
    };
    let stamp_before = stamp();
    // The first pass (checksum, and the encoding of text) reads the whole file
    // before the write transaction: a slow drop folder (a network share) never
    // holds the database's lock, and a file passed over is never read under it.
    let inspected = FirstPass::of(origin, &connector.source);
    // One import at a time per database: what is read below cannot change under it.
    // A connector's first import records every dossier: it writes them once
    // with a rollback journal, where the WAL would write them twice. The journal
    // is chosen before the transaction (SQLite cannot change it inside one), so
    // whether this is the baseline is asked again below, under the lock.
    let mut tx = if store.has_applied_run(&connector.name)? {
        store.begin_import()?
    } else {
        store.begin_bulk_import()?
    };
    let baseline = !tx.has_applied_run(&connector.name)?;
    let mut summary = Summary {
        baseline: baseline && !connector.alert_on_first_import,
        ..Summary::new(&connector.name, shown.clone())
    };
    let index = Index::load(&tx, &connector.name)?;
    let clock = std::time::Instant::now();
    debug!(connector = %connector.name, dossiers = index.entries.len(), elapsed_ms = (Utc::now() - started_at).num_milliseconds(), "Loaded the change-detection index.");
    let mut run = NewRun {
        baseline: summary.baseline,
        ..NewRun::new(
            &connector.name,
            &summary.file,
            connector.fingerprint_text(),
            started_at,
        )
    };
    let inspected: FirstPass = match inspected {
        Ok(i) => i,
        Err(reason) => {
            drop(tx);
            return refuse(store, run, vec![reason], Vec::new(), summary);
        }
    };
    run.checksum = inspected.checksum().map(str::to_owned);
    run.encoding = inspected.encoding().map(str::to_owned);
    summary.encoding.clone_from(&run.encoding);
    summary.checksum.clone_from(&run.checksum);
    // An empty file is refused every time: all empty files share one checksum.
    if !options.force
        && inspected.bytes() > 0
        && let Some(checksum) = inspected.checksum()
    {
        // The very content of the last applied snapshot: nothing to read again.
        // A content applied long ago, with other snapshots since, is read again.
        if let Some(last) = tx.last_snapshot(&connector.name)?
            && last.checksum.as_deref() == Some(checksum)
        {
            info!(
                connector = %connector.name, file = %shown, run = last.id,
                "The file holds the same content as the last applied snapshot: recorded as unchanged."
            );
            run.finished_at = Utc::now();
            run.reasons.push(format!(
                "same content as the last applied snapshot (run {}); use --force to read it again",
                last.id
            ));
            summary.run_id = Some(tx.finish_unchanged(&run)?);
            summary.status = RunStatus::Unchanged.as_str();
            summary.dispose = true;
            summary.reasons = run.reasons;
            return Ok(summary);
        }
        // Refused by this very connector: refusing it again would change nothing.
        // Once the connector is fixed (another fingerprint), the file is read again.
        if let Some(earlier) = tx.run_with_checksum(&connector.name, checksum)?
            && earlier.status == RunStatus::Refused
            && earlier.fingerprint == run.fingerprint
        {
            summary.run_id = Some(earlier.id);
            warn!(
                connector = %connector.name, file = %shown, run = earlier.id,
                "Skipped a file refused before; fix the export or the connector, or import it with --force."
            );
            summary.status = "skipped";
            summary.reasons.push(format!(
                "same content as the file refused by run {} with the same connector; fix the export or the connector, or use --force",
                earlier.id
            ));
            return Ok(summary);
        }
    }
    let (file, size) = match inspected.open(origin, connector) {
        Ok(f) => f,
        Err(reason) => {
            drop(tx);
            return refuse(store, run, vec![reason], Vec::new(), summary);
        }
    };
    let file_name = summary.file.clone();
    tx.start_run(&run)?;
    let encoder = tx.field_encoder(
        connector
            .mapping
            .field_names()
            .filter(|&name| name != model::ID && name != model::STEP),
    )?;
    let mut counts = Counts::default();
    let mut rejections: Vec<Rejection> = Vec::new();
    let mut reasons: Vec<String> = Vec::new();
    // The dossiers this import created, when an API may send one again.
    let repeats_replace = file.is_api();
    let mut inserted: std::collections::HashMap<IdKey, usize> = std::collections::HashMap::new();
    // What becomes of the index: new raw hashes of stored dossiers (by position),
    // and the dossiers this import created.
    let mut rehashed: Vec<(usize, u64)> = Vec::new();
    let mut added: Vec<Entry> = Vec::new();
    // Duplicate ids named in the reasons; beyond, counted.
    let mut duplicates = 0u64;
    let mut alerting = options.rules.filter(|_| !summary.baseline).map(|rules| {
        Alerting::new(
            rules,
            &connector.name,
            connector.link.as_deref(),
            options.now,
        )
    });
    let reject = |rejections: &mut Vec<Rejection>, r: Rejection| {
        if rejections.len() < MAX_STORED_REJECTIONS {
            rejections.push(r);
        }
    };
    let (parsed, store_result) = std::thread::scope(|s| {
        let (sender, receiver) = sync_channel::<Vec<Item>>(8);
        // The dossiers the store is done with go back to the parser to be freed:
        // freeing their fields costs the busier thread a twentieth of a first import.
        let (recycle, recycled) = std::sync::mpsc::channel::<Vec<model::Dossier>>();
        let parser = s.spawn(|| {
            parse(
                connector,
                file,
                &index,
                &encoder,
                tz,
                |offset| {
                    if let Some(progress) = options.progress {
                        progress(offset, size);
                    }
                },
                move |batch| {
                    recycled.try_iter().for_each(drop);
                    sender.send(batch).is_ok()
                },
            )
        });
        let mut apply = || -> Result<(), StoreError> {
            for batch in receiver.iter() {
                let mut spent = Vec::with_capacity(batch.len());
                for item in batch {
                    match item {
                        Item::Rejected {
                            line,
                            number,
                            id,
                            issues,
                        } => {
                            counts.rejected += 1;
                            for issue in issues {
                                reject(
                                    &mut rejections,
                                    Rejection {
                                        severity: "rejected",
                                        file: file_name.clone(),
                                        line: Some(line),
                                        record: Some(number),
                                        source_id: id.clone(),
                                        field: Some(issue.field).filter(|f| !f.is_empty()),
                                        reason: issue.reason,
                                    },
                                );
                            }
                        }
                        Item::Duplicate {
                            line,
                            first_line,
                            id,
                        } => {
                            duplicates += 1;
                            if duplicates > SHOWN_REJECTIONS as u64 {
                                continue;
                            }
                            let id = match id {
                                Ok(id) => Some(id),
                                // Both copies are new: the first was just inserted.
                                Err(key) => match added.iter().find(|e| e.key() == key) {
                                    Some(e) => tx.get(e.dossier_id())?.map(|(d, _)| d.id),
                                    None => None,
                                },
                            };
                            reasons.push(duplicate(&file_name, line, first_line, id.as_deref()));
                        }
                        Item::Changed {
                            line,
                            mapped,
                            key,
                            fields,
                            row_hash,
                            at,
                            messages,
                        } => {
                            let mut previous = None;
                            // A stored dossier, or one this import created and now reads again.
                            let slot = match at {
                                Some(i) => Some(Slot::Stored(i)),
                                None => inserted.get(&key).map(|&a| Slot::Added(a)),
                            };
                            let stored = slot.map(|slot| match slot {
                                Slot::Stored(i) => {
                                    let e = &index.entries[i];
                                    (e.dossier_id(), e.present())
                                }
                                Slot::Added(a) => (added[a].dossier_id(), true),
                            });
                            if let Some((rowid, present)) = stored
                                && let Some((dossier, step_entered_at)) = tx.get(rowid)?
                                // Equal 96-bit id hashes of different ids: never seen, but cheap to rule out.
                                && dossier.id == mapped.dossier.id
                            {
                                previous = Some((
                                    rowid,
                                    Known {
                                        dossier,
                                        present,
                                        step_entered_at,
                                    },
                                ));
                            }
                            let (mapped, fields, kept) = keep_stored(
                                mapped,
                                fields,
                                previous.as_ref().map(|(_, known)| &known.dossier),
                                &encoder,
                            )?;
                            for field in kept {
                                counts.warnings += 1;
                                let reason = "empty in this export: the stored value is kept (on_empty = \"keep\")";
                                reject(
                                    &mut rejections,
                                    warning(
                                        &file_name,
                                        line,
                                        &mapped.dossier.id,
                                        field,
                                        reason.to_owned(),
                                    ),
                                );
                            }
                            let mut change = diff::compare(
                                previous.as_ref().map(|(_, known)| known),
                                &mapped.dossier,
                                &connector.watch,
                                options.now,
                            );
                            mark_notified_by_source(
                                &mut change.events,
                                &messages,
                                connector.source.automatic_senders(),
                            );
                            let write = DossierWrite {
                                dossier: &mapped.dossier,
                                step_entered_at: change.step_entered_at,
                                fields: &fields,
                            };
                            if let Some((rowid, known)) = &previous
                                && change.state_changed
                            {
                                tx.update(*rowid, known.dossier.reference(), &write)?;
                            }
                            let rowid = match (previous, slot) {
                                (Some((rowid, _)), Some(Slot::Stored(i))) => {
                                    rehashed.push((i, row_hash));
                                    rowid
                                }
                                (Some((rowid, _)), Some(Slot::Added(a))) => {
                                    added[a].set(row_hash, true);
                                    rowid
                                }
                                _ => {
                                    let rowid = tx.insert(&connector.name, &write)?;
                                    if repeats_replace {
                                        inserted.insert(key, added.len());
                                    }
                                    added.push(Entry::new(key, entry_row(rowid)?, row_hash, true));
                                    rowid
                                }
                            };
                            let mut stored = Vec::with_capacity(change.events.len());
                            for event in &change.events {
                                stored.push((
                                    tx.insert_event(rowid, event, summary.baseline)?,
                                    event,
                                ));
                                counts.add(event.kind);
                            }
                            if let Some(alerting) = &mut alerting
                                && !stored.is_empty()
                            {
                                alerting.on_events(
                                    &tx,
                                    rowid,
                                    &mapped.dossier,
                                    &stored,
                                    &mut counts,
                                )?;
                            }
                            let mut told = !stored.is_empty();
                            for message in &messages {
                                if tx.insert_message(rowid, message, summary.baseline)? {
                                    counts.add(EventKind::Message);
                                    told = true;
                                }
                            }
                            if told {
                                counts.changed += 1;
                            } else {
                                counts.unchanged += 1;
                            }
                            for w in mapped.warnings {
                                counts.warnings += 1;
                                let reason = format!("{} (value ignored)", w.reason);
                                reject(
                                    &mut rejections,
                                    warning(&file_name, line, &mapped.dossier.id, w.field, reason),
                                );
                            }
                            spent.push(mapped.dossier);
                        }
                    }
                }
                // Once the parser ended, they are freed here.
                let _ = recycle.send(spent);
            }
            Ok(())
        };
        let store_result = apply();
        // On a store error, dropping the receiver stops the parser at its next batch.
        drop(receiver);
        let parsed = parser
            .join()
            .unwrap_or_else(|_| Err("the file parser panicked".to_owned()));
        (parsed, store_result)
    });
    store_result?;
    if duplicates > SHOWN_REJECTIONS as u64 {
        reasons.push(format!(
            "{file_name}: … and {} more ids that appear more than once",
            duplicates - SHOWN_REJECTIONS as u64
        ));
    }
    debug!(connector = %connector.name, elapsed_ms = clock.elapsed().as_millis() as u64, "Read the snapshot and wrote its changes.");
    let parsed = match parsed {
        Ok(p) => p,
        Err(reason) => {
            drop(tx);
            reasons.insert(0, reason);
            run.counts = counts;
            return refuse(store, run, reasons, rejections, summary);
        }
    };
    counts.rows = parsed.rows;
    counts.unchanged += parsed.unchanged;
    // A file still being written would look truncated: neither apply nor refuse it,
    // read it again later.
    if stamp() != stamp_before {
        drop(tx);
        warn!(
            connector = %connector.name, file = %file_name,
            "The file changed while it was read; nothing was applied, it is read again at the next tick."
        );
        summary.status = "skipped";
        summary.reasons.push(format!(
            "{file_name}: the file changed while it was read; nothing was applied"
        ));
        return Ok(summary);
    }

    // Guards.
    let guards = &connector.guards;
    // A column no record has: a broken export, or (for a batch of changes) a batch too small to say.
    if connector.mode == Mode::Full {
        reasons.extend(parsed.vanished);
    }
    // An incremental source with nothing new is normal; a full export without data is not.
    if parsed.rows == 0 && connector.mode == Mode::Full {
        reasons.push(format!(
            "{file_name}: the export holds no data record, only a header"
        ));
    }
    let rejected_ratio = ratio(counts.rejected, parsed.rows);
    if parsed.rows > 0 && rejected_ratio > guards.max_rejected_ratio {
        reasons.push(format!(
            "{file_name}: {} of {} records rejected ({:.1} %), above max_rejected_ratio ({:.1} %)",
            counts.rejected,
            parsed.rows,
            rejected_ratio * 100.0,
            guards.max_rejected_ratio * 100.0
        ));
    }
    // Only a full snapshot tells who is gone by absence (an incremental one holds
    // changes only, unless it started over); the source's own deletions always do.
    let full = connector.mode == Mode::Full || parsed.full_snapshot;
    let gone = gone(&index.entries, &parsed.seen, full, &parsed.deleted);
    let present_before = index.entries.iter().filter(|e| e.present()).count() as u64;
    // The guard is against truncated snapshots; deletions a source states are not guessed.
    let missing = gone.iter().filter(|(_, stated)| stated.is_none()).count() as u64;
    let disappeared_ratio = ratio(missing, present_before);
    if full && missing > 0 && disappeared_ratio > guards.max_disappeared_ratio {
        reasons.push(format!(
            "{missing} of {present_before} dossiers would disappear ({:.1} %), above max_disappeared_ratio ({:.1} %): is the export truncated?",
            disappeared_ratio * 100.0,
            guards.max_disappeared_ratio * 100.0
        ));
    }
    if !reasons.is_empty() {
        drop(tx);
        run.counts = counts;
        return refuse(store, run, reasons, rejections, summary);
    }
    let mut entries = index.entries;
    for (i, row_hash) in rehashed {
        entries[i].set(row_hash, true);
    }
    for (i, stated) in gone {
        entries[i].set_absent();
        let rowid = entries[i].dossier_id();
        let step = tx.step_of(rowid)?;
        tx.mark_disappeared(rowid)?;
        let event = match stated {
            Some(deletion) => diff::deleted_on_source(&step, deletion, options.now),
            None => diff::disappeared(&step, options.now),
        };
        let event_id = tx.insert_event(rowid, &event, summary.baseline)?;
        counts.add(event.kind);
        if let Some(alerting) = &mut alerting
            && let Some((dossier, _)) = tx.get(rowid)?
        {
            alerting.on_events(&tx, rowid, &dossier, &[(event_id, &event)], &mut counts)?;
        }
    }
    if let Some(alerting) = &alerting {
        alerting.report();
        if counts.alerts_queued > 1 {
            tx.align_digests()?;
        }
    }
    if let Some(cursor) = &parsed.cursor {
        // With the import, in its transaction: it advances only with applied data.
        tx.set_source_cursor(&connector.name, cursor, options.now)?;
    }
    // Stored in key order, so that the next import sorts nothing; merged rather
    // than appended, which would copy the whole index into a vector twice as large.
    let added = Index::sorted(added).entries;
    tx.save_index(&connector.name, merge_sorted(&entries, &added))?;
    run.counts = counts;
    run.finished_at = Utc::now();
    let before_commit = std::time::Instant::now();
    let run_id = tx.finish(&run, &rejections)?;
    debug!(connector = %connector.name, elapsed_ms = before_commit.elapsed().as_millis() as u64, "Committed.");
    info!(
        connector = %connector.name, file = %file_name, run = run_id, rows = counts.rows,
        created = counts.created, step_changed = counts.step_changed,
        field_changed = counts.field_changed, disappeared = counts.disappeared,
        reappeared = counts.reappeared, rejected = counts.rejected, baseline = summary.baseline,
        alerts_queued = counts.alerts_queued, "Applied a snapshot."
    );
    summary.run_id = Some(run_id);
    summary.status = RunStatus::Applied.as_str();
    summary.dispose = true;
    summary.counts = counts;
    summary.show(rejections);
    Ok(summary)
}

/// The stored dossiers a snapshot makes go, as positions in the index, each with
/// the deletion the source stated for it, if it did: those the source said it
/// deleted and, from a `full` snapshot, every present one it did not hold.
pub(super) fn gone<'d>(
    entries: &[Entry],
    seen: &[u32],
    full: bool,
    deleted: &'d [model::SourceDeletion],
) -> Vec<(usize, Option<&'d model::SourceDeletion>)> {
    let mut stated: Vec<(IdKey, &model::SourceDeletion)> =
        deleted.iter().map(|d| (id_key(&d.id), d)).collect();
    stated.sort_unstable_by_key(|(key, _)| *key);
    entries
        .iter()
        .zip(seen)
        .enumerate()
        .filter(|(_, (e, _))| e.present())
        .filter_map(|(i, (e, seen))| {
            let deletion = stated
                .binary_search_by_key(&e.key(), |(key, _)| *key)
                .ok()
                .map(|at| stated[at].1);
            (deletion.is_some() || (full && *seen == 0)).then_some((i, deletion))
        })
        .collect()
}

/// Marks the creations and step changes the source already e-mailed the
/// applicant about (DS's deposit e-mail, its e-mail on each state change): one
/// of its automatic messages (from `senders`) within an hour of the event.
pub(super) fn mark_notified_by_source(
    events: &mut [Event],
    messages: &[crate::model::SourceMessage],
    senders: &[String],
) {
    if senders.is_empty() {
        return;
    }
    for event in events
        .iter_mut()
        .filter(|e| matches!(e.kind, EventKind::Created | EventKind::StepChanged))
    {
        event.notified_by_source = messages.iter().any(|m| {
            senders.contains(&m.from.to_lowercase())
                && (m.at - event.occurred_at).abs() <= chrono::Duration::hours(1)
        });
    }
}

pub(super) fn duplicate(file: &str, line: u64, first_line: u64, id: Option<&str>) -> String {
    match id {
        Some(id) => {
            format!("{file}:{line}: id '{id}' appears more than once (first at line {first_line})")
        }
        // Both records were rejected: the id is in the rejections.
        None => format!("{file}:{line}: the id of line {first_line} appears again"),
    }
}

pub(super) fn ratio(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

/// Records a refused run: nothing of the snapshot is applied.
pub(super) fn refuse(
    store: &mut Store,
    mut run: NewRun,
    reasons: Vec<String>,
    rejections: Vec<Rejection>,
    mut summary: Summary,
) -> Result<Summary, StoreError> {
    run.finished_at = Utc::now();
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
