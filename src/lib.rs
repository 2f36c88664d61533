//! Alertissimo keeps grant applicants informed without changing a Region's grant
//! software: it reads what that software exports, remembers the last known state
//! of every dossier in SQLite, and detects when a dossier changes step.
//!
//! # Layout
//! By layer, lowest first: a module only uses those of lower layers
//! (`docs/ARCHITECTURE.md`, "Layers"; kept by `tests/it/architecture.rs`).
//! ```text
//! 0 model      Dossier, Field, Event: the canonical vocabulary
//!   diag       problems in admin-written files, shared values, TOML in one pass
//!   secret     pure: loopback hosts, names and values that carry a credential
//!   timing     pure: debounce, digests, sending windows, cron in the Region's zone
//!   calendar   pure: French public holidays, business days, committee sessions
//!   httpd      the bounded HTTP server of both listeners ([metrics], [web])
//! 1 value      pure: the values of exports (amounts in cents, dates, e-mails…)
//!   lifecycle  rules/lifecycle.toml: canonical steps and their French labels
//!   diff       pure change detection: stored state + new reading → events
//!   transport  what a message is handed to (file, smtp): one file each, one registry
//! 2 delays     pure: how long dossiers stay in each step (Kaplan–Meier), estimates
//!   config     config.toml: defaults → file → ALERTISSIMO_* environment
//! 3 connector  connectors/*.toml: every kind of source and the mapping to dossiers
//!   rules      rule files and templates: which messages an event owes
//!   store      SQLite: schema, migrations, every query, the store thread
//! 4 cases      the rule test cases (`alertissimo test`)
//! 5 alerting   the alerts events owe, queued in the transaction of the events
//! 6 import     one snapshot, streamed, guarded, applied in one transaction
//!   timers     stalled dossiers and deadline reminders, raised once
//!   dispatch   the outbox drained into the transport, with retries
//!   inbound    the replies' mailbox ([inbound]) read over IMAP, each reply recorded
//! 7 retention  the RGPD purge's part in files: archived exports, .eml, spools
//!   report     one self-contained HTML page for managers (inline SVG charts)
//!   metrics    /metrics (Prometheus), /healthz, /readyz
//!   web        the web face ([web] listen): the unsubscribe pages
//! 8 control    the control socket: commands hand their writes to the running daemon
//! 9 daemon     schedules imports (cron, time zone), reload, shutdown
//! 10 cli       command line: parses arguments, runs one command
//! ```
//! The pure core (`diff`, `connector::mapping`, `value`, the parsers)
//! does no I/O and takes `now` as an argument.

pub(crate) mod alerting;
pub(crate) mod calendar;
pub(crate) mod cases;
pub mod cli;
pub mod config;
pub mod connector;
pub(crate) mod control;
pub(crate) mod daemon;
pub mod delays;
pub mod diag;
pub(crate) mod diff;
pub(crate) mod dispatch;
pub(crate) mod httpd;
pub(crate) mod import;
pub(crate) mod inbound;
pub mod lifecycle;
pub(crate) mod metrics;
pub mod model;
pub(crate) mod report;
pub(crate) mod retention;
pub mod rules;
pub(crate) mod secret;
pub mod store;
#[cfg(test)]
mod test_support;
pub mod timers;
pub(crate) mod timing;
pub(crate) mod transport;
pub(crate) mod value;
pub(crate) mod web;
