//! When a snapshot was taken (issue 19): the instant an import runs at, given
//! (`import --as-of`), read from its file (the connector's `[as_of]`), or the
//! wall clock the caller passed; and the two refusals that keep a history in
//! date order: an as-of in the future, and one before the connector's last
//! applied snapshot's.
//!
//! A refusal here is recorded without the file's checksum, so that the same
//! file, renamed or given a right `--as-of`, is read again rather than skipped
//! as refused before.

use super::*;

/// Why a snapshot cannot be dated.
pub(super) struct Undated {
    /// Why, naming the file.
    pub(super) reason: String,
    /// Dated in the future: it may be read once its time has come.
    pub(super) later: bool,
}

/// When a snapshot was taken, if it is dated: given by the caller
/// ([`Options::as_of`], which wins), else read from its file by its
/// connector's `[as_of]` (or why it cannot be).
pub(super) fn snapshot_as_of(
    connector: &Connector,
    origin: Origin<'_>,
    tz: chrono_tz::Tz,
    options: &Options<'_>,
) -> Option<Result<DateTime<Utc>, String>> {
    match (options.as_of, origin) {
        (Some(given), _) => Some(Ok(given)),
        (None, Origin::File(path)) => connector.file_as_of(path, tz),
        (None, Origin::Api(_)) => None,
    }
}

/// The clock a snapshot runs on, and its as-of when it was dated (`as_of`,
/// from [`snapshot_as_of`]); without one, the caller's `now`.
///
/// # Errors
/// When its file cannot be dated (a name that does not match the pattern…),
/// or its as-of is after the caller's `now`.
pub(super) fn snapshot_clock(
    connector: &Connector,
    origin: Origin<'_>,
    tz: chrono_tz::Tz,
    options: &Options<'_>,
    as_of: Option<Result<DateTime<Utc>, String>>,
) -> Result<(Clock, Option<DateTime<Utc>>), Undated> {
    let as_of = match as_of {
        Some(Ok(as_of)) => as_of,
        Some(Err(reason)) => {
            return Err(Undated {
                reason,
                later: false,
            });
        }
        None => return Ok((Clock::start(options.now), None)),
    };
    if as_of > options.now {
        let shown = match origin {
            Origin::File(path) => path.display().to_string(),
            Origin::Api(_) => connector.name.clone(),
        };
        let reason = format!(
            "{shown}: dated {}, which is in the future (it is now {}); an export cannot be imported before it was taken",
            local_time(as_of, tz),
            local_time(options.now, tz)
        );
        return Err(Undated {
            reason,
            later: true,
        });
    }
    Ok((Clock::start(as_of), Some(as_of)))
}

/// Records the refusal of a snapshot that could not be dated: a refused run,
/// without the file's checksum (see the module's comment).
pub(super) fn undated(
    store: &mut Store,
    connector: &Connector,
    origin: Origin<'_>,
    reason: String,
    clock: &Clock,
) -> Result<Summary, StoreError> {
    let shown = match origin {
        Origin::File(path) => path.display().to_string(),
        Origin::Api(_) => connector.source.address().unwrap_or_default(),
    };
    let run = NewRun::new(
        &connector.name,
        &shown,
        connector.fingerprint_text(),
        clock.at(),
    );
    let summary = Summary::new(&connector.name, shown);
    refuse(
        store,
        Refusal::before_reading(run, reason, summary),
        clock.at(),
    )
}

/// Why a snapshot taken at `as_of` comes too late to be applied: the
/// connector's last applied snapshot was taken after it. History is read in
/// date order, or a step would be left before it was entered.
///
/// The wall clock (an import without an as-of) trips this only if it went
/// back since the last import, or that import was dated by hand after it
/// (which `snapshot_clock` refuses): in practice, never.
///
/// # Errors
/// On a store failure.
pub(super) fn out_of_order(
    tx: &ImportTx<'_>,
    connector: &str,
    as_of: DateTime<Utc>,
    tz: chrono_tz::Tz,
) -> Result<Option<String>, StoreError> {
    let Some(last) = tx.last_snapshot(connector)? else {
        return Ok(None);
    };
    Ok((as_of < last.as_of).then(|| {
        format!(
            "this export is dated {}, before the last applied snapshot's {} (run {}); history is read in date order: import older exports first (`import --backfill` sorts them), or give the right --as-of",
            local_time(as_of, tz),
            local_time(last.as_of, tz),
            last.id
        )
    }))
}

/// The table of a snapshot, each record checked to carry its as-of when its
/// connector dates files by a column and that as-of was read from the file
/// (by this import, or by a backfill's plan): an as-of a person gave
/// (`--as-of`) wins over the file, whose column is then neither read nor
/// checked.
///
/// # Errors
/// When the file has no such column.
pub(super) fn checked_table(
    connector: &Connector,
    options: &Options<'_>,
    table: Table,
    tz: chrono_tz::Tz,
    clock: &Clock,
) -> Result<Table, String> {
    match &connector.as_of {
        Some(as_of) if options.as_of.is_none() || options.as_of_from_file => {
            as_of.checked(table, tz, clock.now())
        }
        _ => Ok(table),
    }
}
