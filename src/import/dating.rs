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

/// The clock a snapshot runs on, and its as-of when it was dated (given, or
/// read from its file); without one, the caller's `now`.
///
/// # Errors
/// When its file cannot be dated (a name that does not match the pattern…),
/// or its as-of is after the caller's `now`.
pub(super) fn snapshot_clock(
    connector: &Connector,
    origin: Origin<'_>,
    tz: chrono_tz::Tz,
    options: &Options<'_>,
) -> Result<(Clock, Option<DateTime<Utc>>), Undated> {
    let as_of = match (options.as_of, &connector.as_of, origin) {
        (Some(given), _, _) => given,
        (None, Some(as_of), Origin::File(path)) => {
            as_of.of_file(path, tz).map_err(|reason| Undated {
                reason,
                later: false,
            })?
        }
        _ => return Ok((Clock::start(options.now), None)),
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

/// An instant as the Region reads it: `2025-03-03 06:00:00 +01:00 (Europe/Paris)`.
pub fn local_time(t: DateTime<Utc>, tz: chrono_tz::Tz) -> String {
    format!(
        "{} ({tz})",
        t.with_timezone(&tz).format("%Y-%m-%d %H:%M:%S %:z")
    )
}
