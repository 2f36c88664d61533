//! Integration tests: the real binary, on real files, with a real SQLite database.
//!
//! One test binary with a module per area (it links once). Every test gets its own
//! folder with a `config.toml`, a `connectors/` folder holding the fixture
//! connector, an `inbox/` drop folder, and its state database.

// Tests report what they measured, and a scenario reads top to bottom (the
// limit on long functions holds in src/).
#![allow(clippy::print_stdout, clippy::print_stderr, clippy::too_many_lines)]

mod alerts;
mod architecture;
mod beneficiaries;
mod browser;
mod check;
mod common;
mod control;
mod crash;
mod credentials;
mod daemon;
mod delays;
mod delivery;
mod dossier_page;
mod ds;
mod exchanges_web;
mod front_office;
mod front_office_browser;
mod front_office_snapshots;
mod front_office_theme;
mod generated;
mod http;
mod import;
mod inbound;
mod metrics;
mod outage;
mod pki;
mod presets;
mod replay;
mod retention;
mod sheets;
mod simulate;
mod simulate_replay;
mod smtp_server;
mod staff_browser;
mod staff_snapshots;
mod staff_view;
mod stats;
mod systemd;
mod templates;
mod timers;
mod tls;
mod unsubscribe;
mod xml;
