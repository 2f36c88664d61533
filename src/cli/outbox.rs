//! `alertissimo outbox …`: list, retry, cancel and flush alerts.

use std::sync::Arc;

use chrono::Utc;
use clap::Subcommand;

use super::{Exit, failed, hand_off, load_or_explain, open_existing};
use crate::config::Config;
use crate::control::{Answer, Request};
use crate::dispatch::{Dispatcher, PassReport};
use crate::store::{DelayCache, StoreHandle};

/// The statuses of an alert.
const STATUSES: [&str; 5] = ["pending", "sending", "sent", "failed", "cancelled"];

#[derive(Debug, Subcommand)]
pub(super) enum OutboxCommand {
    /// List alerts, next due first
    List {
        /// Only alerts with this status: pending, sending, sent, failed, cancelled
        #[arg(long)]
        status: Option<String>,
        /// At most this many [default: 50 in the table, every one with --json]
        #[arg(long)]
        limit: Option<usize>,
        /// Print one JSON array of the alerts, each with its status
        #[arg(long)]
        json: bool,
    },
    /// Make a failed alert (or every failed one) pending again, due now
    Retry {
        /// The alert's id (see `outbox list`)
        #[arg(required_unless_present = "failed", conflicts_with = "failed")]
        id: Option<i64>,
        /// Every failed alert
        #[arg(long)]
        failed: bool,
    },
    /// Cancel a pending alert
    Cancel {
        /// The alert's id (see `outbox list`)
        id: i64,
    },
    /// Send everything that is due now, then exit
    Flush {
        /// Also what waits for its debounce, a digest window, sending hours or a retry
        #[arg(long)]
        force: bool,
    },
}

pub(super) fn run(config: &Config, command: OutboxCommand) -> anyhow::Result<Exit> {
    match command {
        OutboxCommand::List {
            status,
            limit,
            json,
        } => list(config, status.as_deref(), limit, json),
        OutboxCommand::Retry { id, .. } => retry(config, id),
        OutboxCommand::Cancel { id } => cancel(config, id),
        OutboxCommand::Flush { force } => flush(config, force),
    }
}

/// Makes the failed alert `id` (or every failed one) pending again.
fn retry(config: &Config, id: Option<i64>) -> anyhow::Result<Exit> {
    let answer = match hand_off(config, &Request::Retry { id })? {
        Some(answer) => answer,
        None => crate::control::retry(&mut open_existing(config)?, id, Utc::now())?,
    };
    let Answer::Retried { count, status } = answer else {
        return Ok(failed(answer));
    };
    match (id, count) {
        (Some(id), 0) => {
            eprintln!("error: alert {id} is not failed ({})", known(status));
            Ok(Exit::Failure)
        }
        _ => {
            out!("{count} alert{} pending again, due now", plural(count));
            Ok(Exit::Ok)
        }
    }
}

/// Cancels the pending alert `id`.
fn cancel(config: &Config, id: i64) -> anyhow::Result<Exit> {
    let answer = match hand_off(config, &Request::Cancel { id })? {
        Some(answer) => answer,
        None => crate::control::cancel(&mut open_existing(config)?, id, Utc::now())?,
    };
    let Answer::Cancelled { done, status } = answer else {
        return Ok(failed(answer));
    };
    if done {
        out!("alert {id} cancelled");
        Ok(Exit::Ok)
    } else {
        eprintln!("error: alert {id} is not pending ({})", known(status));
        Ok(Exit::Failure)
    }
}

/// An alert's status, or that there is no such alert.
fn known(status: Option<String>) -> String {
    status.unwrap_or_else(|| "no such alert".to_owned())
}

fn plural(n: u64) -> &'static str {
    if n == 1 { "" } else { "s" }
}

fn list(
    config: &Config,
    status: Option<&str>,
    limit: Option<usize>,
    json: bool,
) -> anyhow::Result<Exit> {
    if let Some(s) = status.filter(|s| !STATUSES.contains(s)) {
        eprintln!(
            "error: unknown status '{s}' (one of {})",
            STATUSES.join(", ")
        );
        return Ok(Exit::Failure);
    }
    let store = open_existing(config)?;
    let limit = limit.unwrap_or(if json { usize::MAX } else { 50 });
    let alerts = store.alerts(status, None, limit)?;
    let tz = config.timezone;
    if json {
        out!("{}", serde_json::to_string(&alerts)?);
        return Ok(Exit::Ok);
    }
    for t in store.transport_states()? {
        if let (Some(since), Some(until)) = (t.paused_since, t.paused_until) {
            out!(
                "transport {}: PAUSED since {} ({} failure{} in a row), next try {}: {}",
                t.name,
                since.with_timezone(&tz).format("%d/%m/%Y %H:%M"),
                t.failures,
                plural(u64::from(t.failures)),
                until.with_timezone(&tz).format("%d/%m/%Y %H:%M"),
                super::printable(t.reason.as_deref().unwrap_or_default())
            );
        }
    }
    let inbound = store.inbound_state()?;
    if let (Some(since), Some(error)) = (inbound.last_failure, &inbound.error)
        && inbound.failures > 0
    {
        out!(
            "replies' mailbox ([inbound]): CANNOT BE READ ({} failed poll{} in a row, last {}): {}",
            inbound.failures,
            plural(inbound.failures),
            since.with_timezone(&tz).format("%d/%m/%Y %H:%M"),
            super::printable(error)
        );
    }
    if alerts.is_empty() {
        out!(
            "the outbox is empty{}",
            status.map(|s| format!(" ({s})")).unwrap_or_default()
        );
        return Ok(Exit::Ok);
    }
    let to_width = alerts
        .iter()
        .map(|a| a.recipient.len() + a.role.len() + 3)
        .max()
        .unwrap_or(2);
    out!(
        "{:>6}  {:<9}  {:<16}  {:<18}  {:<28}  {:<to_width$}  event",
        "id",
        "status",
        "due",
        "dossier",
        "rule",
        "to"
    );
    for a in &alerts {
        out!(
            "{:>6}  {:<9}  {:<16}  {:<18}  {:<28}  {:<to_width$}  {}{}",
            a.id,
            a.status,
            a.due_at.with_timezone(&tz).format("%d/%m/%Y %H:%M"),
            super::printable(&a.reference),
            a.rule,
            super::printable(&format!("{} ({})", a.recipient, a.role)),
            a.event,
            a.reason
                .as_deref()
                .map(|r| format!(" — {}", super::printable(r)))
                .unwrap_or_default()
        );
    }
    Ok(Exit::Ok)
}

/// Sends what is due, then exits. Ctrl-C or SIGTERM stops it cleanly: no new
/// message starts, those in flight are recorded, and any claim left is given
/// back. Exits non-zero when messages were due and none could be delivered.
fn flush(config: &Config, force: bool) -> anyhow::Result<Exit> {
    // Beside the daemon, its dispatcher makes the pass: one sending rate.
    let report = match hand_off(config, &Request::Flush { force })? {
        Some(Answer::Flushed(report)) => report,
        Some(other) => return Ok(failed(other)),
        None => match flush_alone(config, force)? {
            Ok(report) => report,
            Err(exit) => return Ok(exit),
        },
    };
    print_flush(config, &report)
}

/// Sends with a dispatcher of this command's own (no daemon runs).
fn flush_alone(config: &Config, force: bool) -> anyhow::Result<Result<PassReport, Exit>> {
    let loaded = match load_or_explain(config) {
        Ok(l) => l,
        Err(exit) => return Ok(Err(exit)),
    };
    let Some(rules) = loaded.rules else {
        return Ok(Err(Exit::Config));
    };
    let store = open_existing(config)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let report = runtime.block_on(async {
        let (handle, thread) = StoreHandle::spawn(store);
        let rules = Arc::new(rules);
        let delays = Arc::new(DelayCache::new(
            handle.clone(),
            Arc::clone(&rules.lifecycle),
            config.delays.min_sample,
            config.timezone,
            config.delays.refresh,
        ));
        let stop = tokio_util::sync::CancellationToken::new();
        let dispatcher = Dispatcher::new(
            handle,
            rules,
            Arc::new(crate::connector::Connector::sources(&loaded.connectors)),
            &config.delivery,
            config.web.public_url.clone(),
            delays,
            stop.clone(),
        )?;
        let signal = tokio::spawn(async move {
            crate::daemon::shutdown_signal().await;
            stop.cancel();
        });
        dispatcher.recover().await?;
        let report = dispatcher.drain(force).await;
        let released = dispatcher.release().await;
        signal.abort();
        drop(dispatcher);
        let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        released?;
        report
    })?;
    Ok(Ok(report))
}

/// Prints what a pass did; exit 1 when messages were due and none went.
fn print_flush(config: &Config, report: &PassReport) -> anyhow::Result<Exit> {
    out!(
        "{} message{} sent ({} alert{}), {} to retry, {} failed, {} cancelled, {} put off",
        report.messages,
        plural(report.messages),
        report.sent,
        plural(report.sent),
        report.retried,
        report.failed,
        report.cancelled,
        report.deferred
    );
    if report.errors > 0 {
        eprintln!(
            "error: {} message{} went wrong (see the log); {} alerts wait for the next flush",
            report.errors,
            plural(report.errors),
            if report.errors == 1 { "its" } else { "their" }
        );
    }
    if let Some(until) = report.paused_until {
        eprintln!(
            "error: the {} transport fails ({} alert{} waiting); it is tried again at {}",
            config.delivery.transport.name(),
            report.waiting,
            plural(report.waiting),
            until
                .with_timezone(&config.timezone)
                .format("%d/%m/%Y %H:%M")
        );
    }
    let undelivered = report.retried + report.failed + report.waiting + report.errors;
    Ok(
        if report.messages == 0 && (undelivered > 0 || report.paused_until.is_some()) {
            Exit::Failure
        } else {
            Exit::Ok
        },
    )
}
