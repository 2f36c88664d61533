//! Metrics and health over HTTP: `/metrics` (Prometheus text exposition),
//! `/healthz` and `/readyz`, on `[metrics] listen` (off unless set).
//!
//! Owns the exposition ([`render`], pure) and the three GET endpoints
//! (`endpoints`: an axum router, one scrape at a time, each answer within its
//! time), served by the server both listeners share (`httpd`: bounded in
//! connections, request size and time, and paused when the process runs out of
//! descriptors). The figures come from the state database at
//! each scrape (see `store::gauges`), so they survive restarts and agree with
//! `alertissimo runs` and `outbox list`; reload outcomes and the connector files'
//! states are kept in memory ([`Live`]). No metric names a person: connectors,
//! statuses and counts only.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::store::Gauges;

mod endpoints;

pub use endpoints::{Limits, serve};

/// Reloads since start, by outcome.
#[derive(Debug, Default)]
pub struct Reloads {
    /// Reloads applied.
    pub applied: AtomicU64,
    /// Reloads refused (an invalid file): the previous set went on.
    pub refused: AtomicU64,
}

/// What a connector file is to the running daemon.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectorState {
    /// Valid and enabled: imported on its schedule.
    Enabled,
    /// Valid, with `enabled = false`.
    Disabled,
    /// Invalid: the daemon runs without it.
    LeftOut,
}

impl ConnectorState {
    const ALL: [Self; 3] = [Self::Enabled, Self::Disabled, Self::LeftOut];

    fn as_str(self) -> &'static str {
        match self {
            Self::Enabled => "enabled",
            Self::Disabled => "disabled",
            Self::LeftOut => "left_out",
        }
    }
}

/// What the daemon knows in memory rather than from the store: its reloads, and
/// the state of each connector file as of its last start or reload.
#[derive(Debug, Default)]
pub struct Live {
    /// Reloads since start, by outcome.
    pub reloads: Reloads,
    connectors: std::sync::Mutex<Vec<(String, ConnectorState)>>,
}

impl Live {
    /// Replaces the connectors' states (at a start or a reload).
    pub fn set_connectors(&self, states: Vec<(String, ConnectorState)>) {
        // A panic while holding this lock cannot leave it half-written: take it anyway.
        *self
            .connectors
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = states;
    }

    fn connectors(&self) -> Vec<(String, ConnectorState)> {
        self.connectors
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

/// The Prometheus text exposition of `gauges` and of what the daemon knows
/// in memory (`live`).
pub fn render(g: &Gauges, live: &Live) -> String {
    let mut out = String::new();
    imports(&mut out, g);
    outbox(&mut out, g);
    transports(&mut out, g);
    inbound(&mut out, g);
    reloads(&mut out, &live.reloads);
    connectors(&mut out, &live.connectors());
    out
}

/// The imports, by connector.
fn imports(out: &mut String, g: &Gauges) {
    family(
        out,
        "alertissimo_imports_total",
        "counter",
        "Imports by connector and status (applied, refused).",
    );
    for i in &g.imports {
        for (status, n) in [("applied", i.applied), ("refused", i.refused)] {
            let _ = writeln!(
                out,
                "alertissimo_imports_total{{connector=\"{}\",status=\"{status}\"}} {n}",
                label(&i.connector)
            );
        }
    }
    family(
        out,
        "alertissimo_last_success_timestamp_seconds",
        "gauge",
        "When the last applied import of each connector ended (Unix time).",
    );
    for i in &g.imports {
        if let Some(t) = i.last_success {
            let _ = writeln!(
                out,
                "alertissimo_last_success_timestamp_seconds{{connector=\"{}\"}} {t}",
                label(&i.connector)
            );
        }
    }
    for (name, help, value) in [
        (
            "alertissimo_rows_total",
            "Rows read by imports, by connector.",
            (|i: &crate::store::ImportGauges| i.rows) as fn(&crate::store::ImportGauges) -> u64,
        ),
        (
            "alertissimo_events_total",
            "Events recorded by imports, by connector.",
            |i| i.events,
        ),
        (
            "alertissimo_rejected_records_total",
            "Records rejected by imports, by connector.",
            |i| i.rejected,
        ),
    ] {
        family(out, name, "counter", help);
        for i in &g.imports {
            let _ = writeln!(
                out,
                "{name}{{connector=\"{}\"}} {}",
                label(&i.connector),
                value(i)
            );
        }
    }
}

/// The outbox: alerts by status, what waits and for how long.
fn outbox(out: &mut String, g: &Gauges) {
    family(
        out,
        "alertissimo_alerts",
        "gauge",
        "Alerts in the outbox by status (pending, sending, sent, failed, cancelled).",
    );
    for (status, n) in &g.alerts {
        let _ = writeln!(
            out,
            "alertissimo_alerts{{status=\"{}\"}} {n}",
            label(status)
        );
    }
    family(
        out,
        "alertissimo_alerts_deferred",
        "gauge",
        "Pending alerts due later (debounce, digest, sending hours, retry backoff).",
    );
    let _ = writeln!(out, "alertissimo_alerts_deferred {}", g.deferred);
    family(
        out,
        "alertissimo_outbox_depth",
        "gauge",
        "Alerts waiting to be sent (pending or being sent).",
    );
    let depth: u64 = g
        .alerts
        .iter()
        .filter(|(s, _)| s == "pending" || s == "sending")
        .map(|(_, n)| n)
        .sum();
    let _ = writeln!(out, "alertissimo_outbox_depth {depth}");
    family(
        out,
        "alertissimo_outbox_oldest_due_seconds",
        "gauge",
        "How long the oldest pending alert that is due has been waiting (0: none).",
    );
    let _ = writeln!(
        out,
        "alertissimo_outbox_oldest_due_seconds {}",
        g.oldest_due_seconds
    );
    family(
        out,
        "alertissimo_alerts_claimed_over_a_minute",
        "gauge",
        "Alerts being sent for more than a minute: a stuck send, or a process gone.",
    );
    let _ = writeln!(
        out,
        "alertissimo_alerts_claimed_over_a_minute {}",
        g.stale_claims
    );
}

/// The replies' mailbox (`[inbound]`), once it was read or tried.
fn inbound(out: &mut String, g: &Gauges) {
    let state = &g.inbound;
    if state.last_success.is_none() && state.last_failure.is_none() {
        return;
    }
    family(
        out,
        "alertissimo_inbound_failures",
        "gauge",
        "Failed polls in a row of the replies' mailbox (0 once it is read again).",
    );
    let _ = writeln!(out, "alertissimo_inbound_failures {}", state.failures);
    family(
        out,
        "alertissimo_inbound_received_total",
        "counter",
        "Messages taken from the replies' mailbox.",
    );
    let _ = writeln!(out, "alertissimo_inbound_received_total {}", state.received);
    if let Some(t) = state.last_success {
        family(
            out,
            "alertissimo_inbound_last_success_timestamp_seconds",
            "gauge",
            "When the replies' mailbox was last read (Unix time).",
        );
        let _ = writeln!(
            out,
            "alertissimo_inbound_last_success_timestamp_seconds {}",
            t.timestamp()
        );
    }
}

/// The transports' state, and how long delivery takes.
fn transports(out: &mut String, g: &Gauges) {
    family(
        out,
        "alertissimo_transport_paused",
        "gauge",
        "1 while a transport is paused after relay-level failures (alerts wait), else 0.",
    );
    for t in &g.transports {
        let _ = writeln!(
            out,
            "alertissimo_transport_paused{{transport=\"{}\"}} {}",
            label(&t.name),
            u8::from(t.paused_since.is_some())
        );
    }
    family(
        out,
        "alertissimo_transport_failures",
        "gauge",
        "Relay-level failures in a row of each transport (0 once it works again).",
    );
    for t in &g.transports {
        let _ = writeln!(
            out,
            "alertissimo_transport_failures{{transport=\"{}\"}} {}",
            label(&t.name),
            t.failures
        );
    }
    family(
        out,
        "alertissimo_delivery_latency_seconds",
        "histogram",
        "From an alert queued to its message sent.",
    );
    for (bound, n) in &g.latency_buckets {
        let _ = writeln!(
            out,
            "alertissimo_delivery_latency_seconds_bucket{{le=\"{bound}\"}} {n}"
        );
    }
    let _ = writeln!(
        out,
        "alertissimo_delivery_latency_seconds_bucket{{le=\"+Inf\"}} {}\n\
         alertissimo_delivery_latency_seconds_sum {}\n\
         alertissimo_delivery_latency_seconds_count {}",
        g.latency_count, g.latency_sum, g.latency_count
    );
}

/// The reloads, by outcome.
fn reloads(out: &mut String, reloads: &Reloads) {
    family(
        out,
        "alertissimo_reloads_total",
        "counter",
        "Reloads (SIGHUP) since start, by outcome (applied, refused).",
    );
    let _ = writeln!(
        out,
        "alertissimo_reloads_total{{outcome=\"applied\"}} {}\nalertissimo_reloads_total{{outcome=\"refused\"}} {}",
        reloads.applied.load(Ordering::Relaxed),
        reloads.refused.load(Ordering::Relaxed)
    );
}

/// The connector files by state, and which are left out, by name.
fn connectors(out: &mut String, states: &[(String, ConnectorState)]) {
    family(
        out,
        "alertissimo_connectors",
        "gauge",
        "Connector files by state: enabled, disabled (enabled = false), left_out (invalid: the daemon runs without it).",
    );
    for state in ConnectorState::ALL {
        let n = states.iter().filter(|(_, s)| *s == state).count();
        let _ = writeln!(
            out,
            "alertissimo_connectors{{state=\"{}\"}} {n}",
            state.as_str()
        );
    }
    family(
        out,
        "alertissimo_connector_left_out",
        "gauge",
        "1 for a connector file that does not validate (the daemon runs without it), else 0.",
    );
    for (name, state) in states {
        let _ = writeln!(
            out,
            "alertissimo_connector_left_out{{connector=\"{}\"}} {}",
            label(name),
            u8::from(*state == ConnectorState::LeftOut)
        );
    }
}

/// The `# HELP` and `# TYPE` lines of a metric family.
fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// A label value, escaped as the exposition format wants.
fn label(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::ImportGauges;

    #[test]
    fn the_exposition_names_no_person_and_follows_the_format() {
        let g = Gauges {
            imports: vec![ImportGauges {
                connector: "portail-aides".to_owned(),
                applied: 12,
                refused: 1,
                last_success: Some(1_780_000_000),
                rows: 3_400,
                events: 210,
                rejected: 3,
            }],
            alerts: vec![("pending".to_owned(), 4), ("sent".to_owned(), 90)],
            deferred: 3,
            oldest_due_seconds: 120,
            latency_buckets: vec![(60.0, 10), (600.0, 80)],
            latency_count: 90,
            latency_sum: 12_345.0,
            stale_claims: 2,
            transports: vec![crate::store::TransportState {
                name: "smtp".to_owned(),
                paused_since: Some(chrono::DateTime::UNIX_EPOCH),
                paused_until: Some(chrono::DateTime::UNIX_EPOCH),
                failures: 3,
                reason: Some("connection refused".to_owned()),
            }],
            inbound: crate::store::InboundState {
                last_success: Some(chrono::DateTime::UNIX_EPOCH),
                last_failure: Some(chrono::DateTime::UNIX_EPOCH),
                failures: 2,
                error: Some("refused".to_owned()),
                received: 7,
            },
        };
        let live = Live::default();
        live.reloads.refused.fetch_add(1, Ordering::Relaxed);
        live.set_connectors(vec![
            ("portail-aides".to_owned(), ConnectorState::Enabled),
            ("osiris".to_owned(), ConnectorState::Disabled),
            ("cassé".to_owned(), ConnectorState::LeftOut),
        ]);
        let text = render(&g, &live);
        for line in [
            "alertissimo_imports_total{connector=\"portail-aides\",status=\"applied\"} 12",
            "alertissimo_imports_total{connector=\"portail-aides\",status=\"refused\"} 1",
            "alertissimo_last_success_timestamp_seconds{connector=\"portail-aides\"} 1780000000",
            "alertissimo_rows_total{connector=\"portail-aides\"} 3400",
            "alertissimo_rejected_records_total{connector=\"portail-aides\"} 3",
            "alertissimo_alerts{status=\"sent\"} 90",
            "alertissimo_outbox_depth 4",
            "alertissimo_outbox_oldest_due_seconds 120",
            "alertissimo_delivery_latency_seconds_bucket{le=\"600\"} 80",
            "alertissimo_delivery_latency_seconds_bucket{le=\"+Inf\"} 90",
            "alertissimo_delivery_latency_seconds_count 90",
            "alertissimo_reloads_total{outcome=\"refused\"} 1",
            "alertissimo_alerts_claimed_over_a_minute 2",
            "alertissimo_transport_paused{transport=\"smtp\"} 1",
            "alertissimo_transport_failures{transport=\"smtp\"} 3",
            "alertissimo_inbound_failures 2",
            "alertissimo_inbound_received_total 7",
            "alertissimo_inbound_last_success_timestamp_seconds 0",
            "alertissimo_connectors{state=\"enabled\"} 1",
            "alertissimo_connectors{state=\"disabled\"} 1",
            "alertissimo_connectors{state=\"left_out\"} 1",
            "alertissimo_connector_left_out{connector=\"cassé\"} 1",
            "alertissimo_connector_left_out{connector=\"portail-aides\"} 0",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in:\n{text}"
            );
        }
        // Every sample belongs to a declared family.
        for l in text.lines().filter(|l| !l.starts_with('#')) {
            let name = l.split(['{', ' ']).next().unwrap();
            let family = name
                .trim_end_matches("_bucket")
                .trim_end_matches("_sum")
                .trim_end_matches("_count");
            assert!(
                text.contains(&format!("# TYPE {family} ")),
                "{name} has no # TYPE"
            );
        }
    }
}
