//! `alertissimo runs`: the health of each source, recent imports, and the
//! rejected records of one run.

use super::*;

pub(super) fn runs(
    config: &Config,
    connector: Option<&str>,
    limit: u32,
    rejections: Option<i64>,
    sources: bool,
    json: bool,
) -> anyhow::Result<Exit> {
    let mut store = open_existing(config)?;
    if sources {
        return show_sources(config, &mut store, connector, json);
    }
    if let Some(run_id) = rejections {
        let list = store.rejections(run_id, crate::store::MAX_STORED_REJECTIONS as u32)?;
        if json {
            out!("{}", serde_json::to_string_pretty(&list)?);
        } else if list.is_empty() {
            out!("run {run_id}: no rejected record");
        } else {
            for r in &list {
                out!("{}", super::imports::describe_rejection(r));
            }
        }
        return Ok(Exit::Ok);
    }
    let runs = store.recent_runs(connector, limit)?;
    if json {
        let list: Vec<_> = runs.iter().map(|r| run_json(r, config.timezone)).collect();
        out!("{}", serde_json::to_string_pretty(&list)?);
        return Ok(Exit::Ok);
    }
    if runs.is_empty() {
        out!("no import yet");
        return Ok(Exit::Ok);
    }
    show_sources(config, &mut store, connector, false)?;
    out!("");
    out!(
        "{:>5}  {:<16}  {:<19}  {:<8}  {:>8}  {:>7}  {:>6}  {:>7}  {:>6}  {:>8}  file",
        "run",
        "connector",
        "started",
        "status",
        "rows",
        "created",
        "steps",
        "fields",
        "gone",
        "rejected"
    );
    for r in &runs {
        let status = if r.baseline && r.status == crate::store::RunStatus::Applied {
            "baseline"
        } else {
            r.status.as_str()
        };
        out!(
            "{:>5}  {:<16}  {:<19}  {:<8}  {:>8}  {:>7}  {:>6}  {:>7}  {:>6}  {:>8}  {}",
            r.id,
            r.connector,
            r.started_at
                .with_timezone(&config.timezone)
                .format("%Y-%m-%d %H:%M:%S"),
            status,
            r.counts.rows,
            r.counts.created,
            r.counts.step_changed,
            r.counts.field_changed,
            r.counts.disappeared,
            r.counts.rejected,
            printable(&r.source)
        );
        for reason in &r.reasons {
            out!("       refused: {}", printable(reason));
        }
    }
    Ok(Exit::Ok)
}

/// The health of the configured sources (one, with `connector`): last success,
/// last error, and whether each is stale (no success within its `max_age`).
pub(super) fn show_sources(
    config: &Config,
    store: &mut Store,
    connector: Option<&str>,
    json: bool,
) -> anyhow::Result<Exit> {
    let mut problems = Problems::default();
    let sources: Vec<_> = load(config, &mut problems)
        .map(|l| l.connectors)
        .unwrap_or_default()
        .into_iter()
        .filter(|c| connector.is_none_or(|name| c.name == name))
        // A disabled source is not expected to import: never stale.
        .map(|c| (c.name, c.max_age.filter(|_| c.enabled)))
        .collect();
    let health = store.source_health(&sources, Utc::now())?;
    if json {
        out!("{}", serde_json::to_string_pretty(&health)?);
        return Ok(Exit::Ok);
    }
    let tz = config.timezone;
    let when = |t: Option<chrono::DateTime<Utc>>| {
        t.map_or_else(
            || "never".to_owned(),
            |t| t.with_timezone(&tz).format("%Y-%m-%d %H:%M").to_string(),
        )
    };
    out!(
        "{:<18}  {:<16}  {:<16}  last error",
        "source",
        "last success",
        "error at"
    );
    for h in &health {
        let stale = if h.stale { "  STALE" } else { "" };
        out!(
            "{:<18}  {:<16}  {:<16}  {}{stale}",
            h.connector,
            when(h.last_success),
            if h.last_error_at.is_some() {
                when(h.last_error_at)
            } else {
                "-".to_owned()
            },
            h.last_error.as_deref().unwrap_or("-"),
        );
    }
    Ok(Exit::Ok)
}

pub(super) fn run_json(r: &RunRecord, tz: Tz) -> serde_json::Value {
    serde_json::json!({
        "run_id": r.id,
        "connector": r.connector,
        "source": r.source,
        "checksum": r.checksum,
        "started_at": r.started_at.with_timezone(&tz).to_rfc3339(),
        "finished_at": r.finished_at.with_timezone(&tz).to_rfc3339(),
        "status": r.status.as_str(),
        "baseline": r.baseline,
        "rows": r.counts.rows,
        "unchanged": r.counts.unchanged,
        "created": r.counts.created,
        "step_changed": r.counts.step_changed,
        "field_changed": r.counts.field_changed,
        "disappeared": r.counts.disappeared,
        "reappeared": r.counts.reappeared,
        "rejected": r.counts.rejected,
        "warnings": r.counts.warnings,
        "alerts_queued": r.counts.alerts_queued,
        "alerts_cancelled": r.counts.alerts_cancelled,
        "reasons": r.reasons,
        "encoding": r.encoding,
    })
}
