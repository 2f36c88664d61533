//! `alertissimo purge`: the RGPD purge, now. The personal data of the dossiers
//! closed for longer than `[retention] personal_data` and the rejected records of
//! imports that old go from the store (`store::retention`); the copies in files
//! that old go too (`retention`): archived exports, `.eml` files, left-over spools.

use anyhow::Context;
use chrono::Utc;

use crate::config::Config;
use crate::connector::Connector;
use crate::diag::Problems;
use crate::retention::Copies;

use super::{Exit, failed, hand_off, lifecycle, open_existing};
use crate::control::{Answer, Purge, Request};

/// Purges, or with `dry_run` counts what would go; prints the counts (as JSON
/// with `json`). Exit 1 when a file could not be deleted.
pub(super) fn purge(config: &Config, dry_run: bool, json: bool) -> anyhow::Result<Exit> {
    let done = match hand_off(config, &Request::Purge { dry_run })? {
        Some(Answer::Purged(done)) => done,
        Some(other) => return Ok(failed(other)),
        None => match purge_alone(config, dry_run)? {
            Ok(done) => done,
            Err(exit) => return Ok(exit),
        },
    };
    for warning in &done.warnings {
        eprintln!("warning: {warning}");
    }
    print(config, &done, json)?;
    for failure in &done.failures {
        eprintln!("error: {failure}");
    }
    Ok(if done.failures.is_empty() {
        Exit::Ok
    } else {
        Exit::Failure
    })
}

/// Purges with a store of this command's own (no daemon runs).
fn purge_alone(config: &Config, dry_run: bool) -> anyhow::Result<Result<Purge, Exit>> {
    let lifecycle = match lifecycle(config) {
        Ok(l) => l,
        Err(exit) => return Ok(Err(exit)),
    };
    // The archive folders are the connectors'; one whose file does not validate
    // cannot be known, and is named.
    let mut problems = Problems::default();
    let (connectors, left_out) = Connector::load_each(config, &lifecycle, &mut problems);
    let warnings = problems
        .iter()
        .map(|p| format!("{}: {}: no archived export is expired", p.place, p.message))
        .chain(left_out.iter().map(|l| {
            format!(
                "{}: connector '{}' does not validate: its archive folder is unknown, and its archived exports are not expired",
                l.file.display(),
                l.name
            )
        }))
        .collect();
    let mut store = open_existing(config)?;
    let now = Utc::now();
    let before = crate::store::closed_before(now, config.personal_data)
        .context("retention.personal_data is too long")?;
    let purged = store.purge(
        &lifecycle,
        before,
        now,
        (config.web.session_idle, config.web.session_max),
        dry_run,
    )?;
    let (swept, failures) = Copies::of(config, &connectors).sweep(before.into(), dry_run);
    Ok(Ok(Purge {
        dry_run,
        closed_before: before,
        purged,
        swept,
        failures,
        warnings,
    }))
}

/// Prints the counts of a purge.
fn print(config: &Config, done: &Purge, json: bool) -> anyhow::Result<()> {
    let Purge {
        dry_run,
        closed_before: before,
        purged,
        swept,
        ..
    } = done;
    let dry_run = *dry_run;
    if json {
        let mut counts = serde_json::to_value(purged)?;
        if let (Some(counts), serde_json::Value::Object(files)) =
            (counts.as_object_mut(), serde_json::to_value(swept)?)
        {
            counts.extend(files);
        }
        out!(
            "{}",
            serde_json::json!({
                "dry_run": dry_run,
                "closed_before": crate::store::format_time(*before),
                "purged": counts,
            })
        );
    } else {
        let date = before.with_timezone(&config.timezone).format("%d/%m/%Y");
        out!(
            "Dossiers closed before {date} (in a final step, or gone from their source): {} {} {} personal fields, {} message senders and texts, {} field changes and {} alert addresses.",
            purged.dossiers,
            if dry_run { "would lose" } else { "lost" },
            purged.fields,
            purged.messages,
            purged.field_changes,
            purged.alerts,
        );
        out!(
            "Front office: {} records (the audit of these dossiers, sessions over, links expired, sign-in messages done) {}.",
            purged.front_office,
            if dry_run {
                "would be deleted"
            } else {
                "were deleted"
            },
        );
        out!(
            "Copies from before {date}: {} rejected records of imports, {} archived exports, {} .eml files of the file transport and {} left-over API spools {}.{}",
            purged.rejections,
            swept.archived_files,
            swept.eml_files,
            swept.spool_files,
            if dry_run {
                "would be deleted"
            } else {
                "were deleted"
            },
            if dry_run {
                " Nothing was changed (--dry-run)."
            } else {
                ""
            }
        );
    }
    Ok(())
}
