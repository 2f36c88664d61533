//! Drop folders: the files waiting, those seen before and passed over unopened,
//! and what becomes of a file once imported (archived or deleted).

use super::*;

/// Imports every waiting file of a connector's drop folder, in the order
/// their exports were taken (by the connector's `[as_of]`; else in name order),
/// then archives (or keeps, or deletes) each one that was read.
///
/// # Errors
/// On a store failure, or when the drop folder cannot be listed; problems with
/// the files themselves become refused runs.
pub fn import_pending(
    store: &mut Store,
    connector: &Connector,
    tz: chrono_tz::Tz,
    options: &Options<'_>,
) -> Result<Vec<Summary>, ImportError> {
    let clock = Clock::start(options.now);
    let Some(source) = connector.source.folder() else {
        return synchronise(store, connector, tz, options, &clock);
    };
    let files = match source.files() {
        Ok(files) => files,
        Err(reason) => {
            store.record_source_error(&connector.name, clock.at(), &reason)?;
            return Err(ImportError::Folder {
                connector: connector.name.clone(),
                reason,
            });
        }
    };
    let mut out = Vec::with_capacity(files.len());
    let mut waiting = Vec::with_capacity(files.len());
    for file in files {
        let state = file_state(&file);
        let shown = file.display().to_string();
        match passed_over(
            store,
            connector,
            &shown,
            state,
            source.after_import,
            options,
        )? {
            Seen::Refused(summary) => out.push(*summary),
            Seen::Kept => {}
            Seen::ToRead => waiting.push(Waiting {
                file,
                state,
                as_of: None,
            }),
        }
    }
    for file in by_date(waiting, connector, tz, options) {
        if options.stop.is_some_and(|stop| stop()) {
            info!(connector = %connector.name, "Stopping: the files still waiting are left for the next start.");
            break;
        }
        out.push(import_waiting(store, connector, file, tz, options, &clock)?);
    }
    Ok(out)
}

/// A drop-folder file to read: its size and modification time, and when it
/// was taken, when the connector dates its files.
struct Waiting {
    file: std::path::PathBuf,
    state: Option<(u64, i64)>,
    as_of: Option<Result<DateTime<Utc>, String>>,
}

/// Imports one waiting file of a drop folder, then archives (or keeps, or
/// deletes) it once read; one that cannot be dated is refused.
fn import_waiting(
    store: &mut Store,
    connector: &Connector,
    waiting: Waiting,
    tz: chrono_tz::Tz,
    options: &Options<'_>,
    clock: &Clock,
) -> Result<Summary, ImportError> {
    let Waiting { file, state, as_of } = waiting;
    let shown = file.display().to_string();
    let origin = Origin::File(&file);
    let (file_clock, as_of) = match snapshot_clock(connector, origin, tz, options, as_of) {
        Ok(dated) => dated,
        Err(why) => {
            let summary = undated(store, connector, origin, why.reason, clock)?;
            // A name that does not match is passed over until renamed (a new
            // path) or changed; a file dated in the future is read once its time has come.
            if !why.later {
                record_seen(store, connector, &shown, state, &summary, clock.at())?;
            }
            return Ok(summary);
        }
    };
    let mut summary = guarded(store, connector, origin, tz, options, &file_clock)?;
    summary.as_of = as_of;
    record_seen(store, connector, &shown, state, &summary, clock.at())?;
    // A refused file stays where it is, for the administrators to look at; its
    // checksum keeps it from being read again until it or the connector changes.
    if summary.dispose
        && let Some(source) = connector.source.folder()
    {
        let stamp = file_clock.now().format("%Y%m%dT%H%M%SZ").to_string();
        match source.dispose(&file, &stamp) {
            Ok(target) => summary.archived_to = target.map(|t| t.display().to_string()),
            Err(error) => warn!(
                connector = %connector.name, file = %file.display(), %error,
                "Cannot archive or delete an imported file; its checksum prevents importing it twice."
            ),
        }
    }
    Ok(summary)
}

/// Imports an API connector: one snapshot (or one batch of changes) per
/// import, fetched first into a spool.
fn synchronise(
    store: &mut Store,
    connector: &Connector,
    tz: chrono_tz::Tz,
    options: &Options<'_>,
    clock: &Clock,
) -> Result<Vec<Summary>, ImportError> {
    let state = api_state(store, connector)?;
    let dir = spool_dir(store.path());
    let stop = || options.stop.is_some_and(|stop| stop());
    let progress = |pages| {
        if let Some(progress) = options.progress {
            progress(pages, 0);
        }
    };
    let spool = match spool::fetch(connector, state, &dir, &stop, &progress) {
        Ok(spool) => spool,
        Err(spool::SpoolError::Interrupted) => {
            info!(connector = %connector.name, "Stopping: the synchronisation is left for the next start.");
            return Ok(Vec::new());
        }
        Err(error) => {
            let reason = error.to_string();
            store.record_source_error(&connector.name, clock.at(), &reason)?;
            return Err(ImportError::Spool(error));
        }
    };
    let origin = Origin::Api(&spool);
    Ok(vec![dated(store, connector, origin, tz, options)?])
}

/// The waiting files in the order their exports were taken, each dated once
/// (a file dated by a column is read up to its first record) when the
/// connector dates them (`[as_of]`), else in name order; a file that cannot be
/// dated comes first, to be refused. Files passed over unopened (refused
/// before, or kept) are not dated.
fn by_date(
    mut files: Vec<Waiting>,
    connector: &Connector,
    tz: chrono_tz::Tz,
    options: &Options<'_>,
) -> Vec<Waiting> {
    if connector.as_of.is_some() && options.as_of.is_none() {
        for waiting in &mut files {
            waiting.as_of = snapshot_as_of(connector, Origin::File(&waiting.file), tz, options);
        }
        files.sort_by(|a, b| {
            let key = |w: &Waiting| w.as_of.as_ref().and_then(|r| r.as_ref().ok()).copied();
            (key(a), &a.file).cmp(&(key(b), &b.file))
        });
    } else {
        for waiting in &mut files {
            waiting.as_of = options.as_of.map(Ok);
        }
    }
    files
}

/// Records what became of a drop-folder file of this size and modification
/// time (`state`), so that it is passed over while unchanged.
fn record_seen(
    store: &mut Store,
    connector: &Connector,
    shown: &str,
    state: Option<(u64, i64)>,
    summary: &Summary,
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    let Some((size, mtime_ns)) = state else {
        return Ok(());
    };
    let seen = SeenFile {
        size,
        mtime_ns,
        checksum: summary.checksum.clone(),
        outcome: summary.status.to_owned(),
        run_id: summary.run_id,
        fingerprint: connector.fingerprint_text(),
    };
    store.record_file_seen(&connector.name, shown, &seen, at)
}

/// A drop-folder file's size and modification time (nanoseconds since 1970).
pub(super) fn file_state(path: &Path) -> Option<(u64, i64)> {
    let meta = std::fs::metadata(path).ok()?;
    let modified = meta.modified().ok()?;
    let since = modified.duration_since(std::time::UNIX_EPOCH).ok()?;
    Some((meta.len(), i64::try_from(since.as_nanos()).ok()?))
}

/// What becomes of a drop-folder file the connector may have read before.
pub(super) enum Seen {
    /// New or changed (or `--force`): read it.
    ToRead,
    /// Refused before by the same connector file, unchanged since: said again
    /// as skipped, without being opened.
    Refused(Box<Summary>),
    /// Kept in place after its import, unchanged since: passed over silently.
    Kept,
}

/// Whether a file unchanged since the connector last read it (same size and
/// modification time) is passed over without being opened.
pub(super) fn passed_over(
    store: &Store,
    connector: &Connector,
    shown: &str,
    state: Option<(u64, i64)>,
    after_import: AfterImport,
    options: &Options<'_>,
) -> Result<Seen, StoreError> {
    let Some((size, mtime_ns)) = state.filter(|_| !options.force) else {
        return Ok(Seen::ToRead);
    };
    let Some(seen) = store.file_seen(&connector.name, shown)? else {
        return Ok(Seen::ToRead);
    };
    if seen.size != size || seen.mtime_ns != mtime_ns {
        return Ok(Seen::ToRead);
    }
    let same_connector = seen.fingerprint == connector.fingerprint_text();
    match seen.outcome.as_str() {
        // Once the connector file changes (a mapping fixed), a refused file is read again.
        "refused" | "skipped" if same_connector => {
            debug!(connector = %connector.name, file = %shown, "Passed over a file refused before and unchanged since.");
            let mut summary = Summary::new(&connector.name, shown.to_owned());
            summary.status = "skipped";
            summary.run_id = seen.run_id;
            summary.reasons.push(format!(
                "unchanged since run {} refused it; fix the export or the connector, or use --force",
                seen.run_id.map_or_else(|| "?".to_owned(), |id| id.to_string())
            ));
            Ok(Seen::Refused(Box::new(summary)))
        }
        _ if after_import == AfterImport::Keep => Ok(Seen::Kept),
        _ => Ok(Seen::ToRead),
    }
}

/// Size and modification time of a file, to notice it changing while read.
pub(super) fn file_stamp(path: &Path) -> Option<(u64, std::time::SystemTime)> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.len(), meta.modified().ok()?))
}
