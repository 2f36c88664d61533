//! Alertissimo keeps grant applicants informed without changing a Region's grant
//! software: it reads what that software exports, remembers the last known state
//! of every dossier in SQLite, and detects when a dossier changes step.
//!
//! # Layout
//! ```text
//! cli        command line: parses arguments, runs one command
//! config     config.toml: defaults → file → ALERTISSIMO_* environment
//! diag       problems in admin-written files, shared values, TOML in one pass
//! lifecycle  rules/lifecycle.toml: canonical steps and their French labels
//! model      Dossier, Field, Event: the canonical vocabulary
//! connector  connectors/*.toml: every kind of source and the mapping to dossiers
//! value      pure: the values of exports read (amounts in cents, dates, e-mails…)
//! diff       pure change detection: stored state + new reading → events
//! delays     pure: how long dossiers stay in each step (Kaplan–Meier), estimates
//! import     one snapshot, streamed, guarded, applied in one transaction
//! alerting   the alerts events owe, queued in the transaction of the events
//! rules      rule files, templates, timing: which messages an event owes
//! dispatch   the outbox drained into a transport (file, smtp), with retries
//! store      SQLite: schema, migrations, every query
//! secret     pure: loopback hosts, names and values that carry a credential
//! timers     stalled dossiers and deadline reminders, raised once
//! retention  the RGPD purge's part in files: archived exports, .eml, spools
//! report     one self-contained HTML page for managers (inline SVG charts)
//! control    the control socket: commands hand their writes to the running daemon
//! daemon     schedules imports (cron, time zone), reload, shutdown
//! metrics    /metrics (Prometheus), /healthz, /readyz
//! web        the web face ([web] listen): the unsubscribe pages
//! ```
//! The pure core (`diff`, `connector::mapping`, `value`, the parsers)
//! does no I/O and takes `now` as an argument.

pub mod alerting;
pub mod cli;
pub mod config;
pub mod connector;
pub mod control;
pub mod daemon;
pub mod delays;
pub mod diag;
pub mod diff;
pub mod dispatch;
pub mod import;
pub mod lifecycle;
pub mod metrics;
pub mod model;
pub mod report;
pub mod retention;
pub mod rules;
pub mod secret;
pub mod store;
#[cfg(test)]
mod test_support;
pub mod timers;
pub(crate) mod value;
pub mod web;
