//! `alertissimo import CONNECTOR --backfill DIR-or-GLOB`: a Region's archived
//! exports imported one by one, oldest first, each at its as-of and as a
//! baseline (events recorded, no alert), by the running daemon (one request a
//! file) or alone. It stops at the first refusal: the history stays in order.

use super::*;
use crate::import::backfill::{self, Dated};

pub(super) fn backfill(
    config: &Config,
    name: &str,
    spec: &Path,
    json: bool,
    force: bool,
) -> anyhow::Result<Exit> {
    let connector = match imports::find_connector(config, name)? {
        Ok(c) => c,
        Err(exit) => return Ok(exit),
    };
    let last = if config.store.path.exists() {
        Store::open(&config.store.path, config.store.cache_mb)?.last_snapshot_as_of(name)?
    } else {
        None
    };
    let plan = match backfill::plan(&connector, spec, last, config.timezone) {
        Ok(plan) => plan,
        Err(reason) => {
            eprintln!("error: {reason}");
            return Ok(Exit::Failure);
        }
    };
    for dated in &plan.passed_over {
        let summary = passed_over(name, dated, last, config.timezone);
        imports::print_summaries(config, name, std::slice::from_ref(&summary), json)?;
    }
    for (at, dated) in plan.files.iter().enumerate() {
        let asked = import::Asked {
            force,
            as_of: Some(dated.as_of),
            as_of_from_file: true,
            baseline: true,
        };
        let summaries = match imports::import_one(config, name, Some(&dated.path), asked)? {
            Ok(summaries) => summaries,
            Err(exit) => return Ok(exit),
        };
        let exit = imports::print_summaries(config, name, &summaries, json)?;
        if exit != Exit::Ok {
            let left = plan.files.len() - at - 1;
            eprintln!(
                "error: the backfill stopped at {}, refused; {left} later file(s) not imported. Fix it and run the same command again: the files applied are passed over",
                dated.path.display()
            );
            return Ok(exit);
        }
    }
    if !json {
        out!(
            "{name}: backfill done: {} file(s) imported, {} passed over",
            plan.files.len(),
            plan.passed_over.len()
        );
    }
    Ok(Exit::Ok)
}

/// The summary of a file taken no later than the last applied snapshot.
fn passed_over(name: &str, dated: &Dated, last: Option<DateTime>, tz: Tz) -> Summary {
    let last = last.map_or_else(String::new, |t| import::local_time(t, tz));
    Summary {
        status: "skipped",
        as_of: Some(dated.as_of),
        reasons: vec![format!(
            "taken no later than the connector's last applied snapshot ({last}): passed over"
        )],
        ..Summary::new(name, dated.path.display().to_string())
    }
}

type DateTime = chrono::DateTime<Utc>;
