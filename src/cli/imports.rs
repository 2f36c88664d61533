//! `alertissimo import`: one import now, by the running daemon or alone (with a
//! progress bar on a terminal), and its summary, as text or JSON.

use super::*;
use crate::connector::source::{ProgressUnit, Reads};

pub(super) fn import_now(
    config: &Config,
    name: &str,
    file: Option<&Path>,
    json: bool,
    force: bool,
    as_of: Option<String>,
) -> anyhow::Result<Exit> {
    let as_of = match as_of
        .map(|text| given_as_of(config, name, &text))
        .transpose()?
    {
        Some(Err(exit)) => return Ok(exit),
        Some(Ok(at)) => Some(at),
        None => None,
    };
    let asked = import::Asked {
        force,
        as_of,
        as_of_from_file: false,
        baseline: false,
    };
    match import_one(config, name, file, asked)? {
        Ok(summaries) => print_summaries(config, name, &summaries, json),
        Err(exit) => Ok(exit),
    }
}

/// Imports as asked: by the running daemon, or alone.
pub(super) fn import_one(
    config: &Config,
    name: &str,
    file: Option<&Path>,
    asked: import::Asked,
) -> anyhow::Result<Result<Vec<Summary>, Exit>> {
    let request = Request::Import {
        connector: name.to_owned(),
        file: file.map(std::path::absolute).transpose()?,
        force: asked.force,
        as_of: asked.as_of,
        as_of_from_file: asked.as_of_from_file,
        baseline: asked.baseline,
    };
    Ok(match hand_off(config, &request)? {
        Some(Answer::Imported(summaries)) => Ok(summaries),
        Some(other) => Err(failed(other)),
        None => import_alone(config, name, file, asked)?,
    })
}

/// The instant `--as-of TIME` gives: RFC 3339, or a date at the connector's
/// `[as_of]` time of day in the Region's zone; refused when in the future.
fn given_as_of(
    config: &Config,
    name: &str,
    text: &str,
) -> anyhow::Result<Result<chrono::DateTime<Utc>, Exit>> {
    // A date needs the connector's time of day; an instant needs nothing.
    let time = if chrono::DateTime::parse_from_rfc3339(text).is_ok() {
        chrono::NaiveTime::MIN
    } else {
        match find_connector(config, name)? {
            Ok(connector) => connector
                .as_of
                .as_ref()
                .map_or(chrono::NaiveTime::MIN, |a| a.time),
            Err(exit) => return Ok(Err(exit)),
        }
    };
    let at = match crate::timing::parse_as_of(text, time, config.timezone) {
        Ok(at) => at,
        Err(reason) => {
            eprintln!("error: {reason}");
            return Ok(Err(Exit::Failure));
        }
    };
    let now = Utc::now();
    if at > now {
        eprintln!(
            "error: --as-of {text} is {}, in the future (it is now {}): an export cannot be imported before it was taken",
            import::local_time(at, config.timezone),
            import::local_time(now, config.timezone)
        );
        return Ok(Err(Exit::Failure));
    }
    Ok(Ok(at))
}

/// The connector `name`, as this command reads the connectors folder.
pub(super) fn find_connector(
    config: &Config,
    name: &str,
) -> anyhow::Result<Result<Connector, Exit>> {
    let loaded = match load_or_explain(config) {
        Ok(l) => l,
        Err(exit) => return Ok(Err(exit)),
    };
    let found = loaded.connectors.iter().find(|c| c.name == name).cloned();
    Ok(found.ok_or_else(|| no_connector(config, &loaded.connectors, name)))
}

/// Says that there is no connector `name`.
fn no_connector(config: &Config, connectors: &[Connector], name: &str) -> Exit {
    let known: Vec<&str> = connectors.iter().map(|c| c.name.as_str()).collect();
    eprintln!(
        "error: no connector '{name}' in {} (known: {})",
        config.connectors_dir.display(),
        known.join(", ")
    );
    Exit::Failure
}

/// Imports with a store of this command's own (no daemon runs), with a progress
/// bar on a terminal.
pub(super) fn import_alone(
    config: &Config,
    name: &str,
    file: Option<&Path>,
    asked: import::Asked,
) -> anyhow::Result<Result<Vec<Summary>, Exit>> {
    let loaded = match load_or_explain(config) {
        Ok(l) => l,
        Err(exit) => return Ok(Err(exit)),
    };
    let Some(connector) = loaded.connectors.iter().find(|c| c.name == name) else {
        return Ok(Err(no_connector(config, &loaded.connectors, name)));
    };
    let mut store = Store::open(&config.store.path, config.store.cache_mb)?;
    // Files go by bytes, workbooks by rows; an API by pages, counted as they are
    // fetched (no total yet), then imported.
    let api = connector.source.folder().is_none() && file.is_none();
    let bar = std::io::stderr().is_terminal().then(|| {
        let bar = indicatif::ProgressBar::new(0);
        let template = match connector.source.reads() {
            _ if api => "{spinner} {msg} [{bar:30}] {pos}/{len} pages",
            Reads::Files(files) if files.progress_unit() == ProgressUnit::Rows => {
                "{spinner} {msg} [{bar:30}] {pos}/{len} rows ({eta})"
            }
            _ => "{spinner} {msg} [{bar:30}] {bytes}/{total_bytes} ({eta})",
        };
        bar.set_style(
            indicatif::ProgressStyle::with_template(template)
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar.set_message(format!("importing {name}"));
        bar
    });
    let progress = |done: u64, total: u64| {
        if let Some(bar) = &bar {
            if api && total == 0 {
                bar.set_message(format!("fetching {name}"));
                bar.set_length(done);
            } else {
                bar.set_message(format!("importing {name}"));
                bar.set_length(total);
            }
            bar.set_position(done.min(bar.length().unwrap_or(0)));
        }
    };
    let options = Options {
        now: Utc::now(),
        as_of: asked.as_of,
        as_of_from_file: asked.as_of_from_file,
        baseline: asked.baseline,
        force: asked.force,
        progress: Some(&progress),
        stop: None,
        rules: loaded.rules.as_ref(),
    };
    let summaries = match file {
        Some(file) => vec![import::import_file(
            &mut store,
            connector,
            file,
            config.timezone,
            &options,
        )?],
        None => import::import_pending(&mut store, connector, config.timezone, &options)?,
    };
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    Ok(Ok(summaries))
}

/// Prints what an import did; exit 1 when a snapshot was refused.
pub(super) fn print_summaries(
    config: &Config,
    name: &str,
    summaries: &[Summary],
    json: bool,
) -> anyhow::Result<Exit> {
    if summaries.is_empty() {
        if json {
            let none = Summary {
                status: "no_file",
                reasons: vec!["no file waiting in the drop folder".to_owned()],
                ..Summary::new(name, String::new())
            };
            out!("{}", serde_json::to_string(&none)?);
        } else {
            out!("{name}: no file waiting in the drop folder");
        }
        return Ok(Exit::Ok);
    }
    let mut exit = Exit::Ok;
    for s in summaries {
        if s.status == "refused" {
            exit = Exit::Failure;
        }
        if json {
            out!("{}", serde_json::to_string(s)?);
        } else {
            print_summary(s, config.timezone);
        }
    }
    Ok(exit)
}

pub(super) fn print_summary(s: &Summary, tz: Tz) {
    let c = &s.counts;
    let run = s
        .run_id
        .map_or_else(String::new, |id| format!(" (run {id})"));
    out!("{}: {}{run}", s.file, s.status.to_uppercase());
    if let Some(as_of) = s.as_of {
        out!("  as of {}", import::local_time(as_of, tz));
    }
    if s.status != "skipped" && s.status != "unchanged" {
        out!(
            "  rows {}  unchanged {}  changed {}  created {}  step changes {}  field changes {}  disappeared {}  reappeared {}  rejected {}{}",
            c.rows,
            c.unchanged,
            c.changed,
            c.created,
            c.step_changed,
            c.field_changed,
            c.disappeared,
            c.reappeared,
            c.rejected,
            if c.warnings > 0 {
                format!("  warnings {}", c.warnings)
            } else {
                String::new()
            }
        );
    }
    if s.baseline && s.status == "applied" && s.as_of.is_some() {
        out!("  baseline: recorded without alerts (a backfill, or the connector's first import)");
    } else if s.baseline && s.status == "applied" {
        out!("  baseline: first import of this connector, recorded without alerts");
    } else if s.status == "applied" {
        out!(
            "  alerts queued {}{}",
            c.alerts_queued,
            if c.alerts_cancelled > 0 {
                format!(
                    "  cancelled {} (their dossier left the step before they were due)",
                    c.alerts_cancelled
                )
            } else {
                String::new()
            }
        );
    }
    for reason in &s.reasons {
        out!(
            "  {}: {reason}",
            match s.status {
                "skipped" | "unchanged" => s.status,
                _ => "refused",
            }
        );
    }
    for r in &s.rejections {
        out!("  {}", describe_rejection(r));
    }
    if s.more_rejections > 0 {
        out!(
            "  … {} more; see `alertissimo runs --rejections {}`",
            s.more_rejections,
            s.run_id.unwrap_or_default()
        );
    }
    if let Some(to) = &s.archived_to {
        out!("  archived to {to}");
    }
}

pub(super) fn describe_rejection(r: &crate::store::Rejection) -> String {
    let mut at = r.file.clone();
    if let Some(line) = r.line {
        at.push_str(&format!(":{line}"));
    }
    let record = r.record.map(|n| format!(" record {n}")).unwrap_or_default();
    let id = r
        .source_id
        .as_ref()
        .map(|i| format!(" id '{i}'"))
        .unwrap_or_default();
    let field = r
        .field
        .as_ref()
        .map(|f| format!(" field '{f}'"))
        .unwrap_or_default();
    let line = format!("{}: {at}:{record}{id}{field}: {}", r.severity, r.reason);
    printable(&line).into_owned()
}
