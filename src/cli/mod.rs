//! The command line: argument parsing (clap) and one function per command, each
//! command (or family) in a file of its own (`imports`, `runs`, `dossier`,
//! `rules`, `evaluate`, `outbox`, `purge`, `stats`, `check`, `daemon`).
//!
//! Owns what people see in a terminal: summaries, tables, JSON output, exit codes.
//! Commands call into the library; none holds domain logic of its own. This is
//! the one module that prints to stdout and stderr (the daemon logs instead).
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use clap::{CommandFactory, Parser, Subcommand};

use crate::config::{Config, LogFormat};
use crate::connector::{Connector, LeftOut};
use crate::control::{Answer, Request};
use crate::diag::Problems;
use crate::import::{self, Options, Summary};
use crate::lifecycle::Lifecycle;
use crate::model::EventKind;
use crate::rules::Rules;
use crate::store::{RunRecord, Store};

/// `println!` that ends the process quietly when stdout is closed early
/// (`alertissimo outbox list | head`), instead of panicking, and never lets
/// text from an export steer the terminal: control characters other than line
/// breaks and tabs (escape sequences, carriage returns) are shown escaped.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let line = format!($($arg)*);
        if let Err(e) = writeln!(std::io::stdout(), "{}", $crate::cli::terminal_safe(&line))
            && e.kind() == std::io::ErrorKind::BrokenPipe
        {
            std::process::exit(0);
        }
    }};
}

mod backfill;
mod check;
mod daemon;
mod dossier;
mod evaluate;
mod imports;
mod outbox;
mod purge;
mod rules;
mod runs;
mod stats;
mod warnings;

/// Text from export data or a remote server made safe for one line of a
/// terminal: control characters (escape sequences, carriage returns, line
/// breaks) are shown escaped, never interpreted.
pub(crate) fn printable(text: &str) -> std::borrow::Cow<'_, str> {
    escape_controls(text, |_| true)
}

/// Text made safe for a terminal, its line breaks and tabs kept: what [`out!`]
/// writes.
pub(crate) fn terminal_safe(text: &str) -> std::borrow::Cow<'_, str> {
    escape_controls(text, |c| c != '\n' && c != '\t')
}

/// Escapes the control characters `escaped` chooses.
fn escape_controls(text: &str, escaped: impl Fn(char) -> bool) -> std::borrow::Cow<'_, str> {
    let unsafe_char = |c: char| c.is_control() && escaped(c);
    if !text.chars().any(unsafe_char) {
        return std::borrow::Cow::Borrowed(text);
    }
    std::borrow::Cow::Owned(
        text.chars()
            .map(|c| {
                if unsafe_char(c) {
                    c.escape_default().to_string()
                } else {
                    c.to_string()
                }
            })
            .collect(),
    )
}

/// Keeps grant applicants informed: reads a Region's grant exports, tracks every
/// dossier in SQLite and detects when it changes step.
#[derive(Debug, Parser)]
#[command(name = "alertissimo", version, about, max_term_width = 100)]
pub struct Cli {
    /// The configuration file [default: /etc/alertissimo/config.toml when it exists,
    /// else the built-in defaults]
    #[arg(long, global = true, value_name = "FILE", env = "ALERTISSIMO_CONFIG")]
    config: Option<PathBuf>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the daemon: import every connector on its schedule
    Run,
    /// Validate the configuration, the lifecycle and every connector
    Check {
        /// Only check the files, not the folders and database they point at
        #[arg(long)]
        no_environment: bool,
        /// Fail (exit 78) on a connector file that does not validate too, which the
        /// daemon leaves out while it runs the others (for the CI of configuration files)
        #[arg(long)]
        strict: bool,
    },
    /// Import a connector's export now
    Import {
        /// The connector (the name of its file in the connectors folder, without .toml)
        connector: String,
        /// Read this file instead of the connector's drop folder (it is never moved)
        file: Option<PathBuf>,
        /// Print the summary as JSON
        #[arg(long)]
        json: bool,
        /// Import even a content that was already imported
        #[arg(long)]
        force: bool,
        /// When the export was taken: RFC 3339, or a date (YYYY-MM-DD) at the
        /// connector's as_of time of day (midnight without one) in the Region's zone
        #[arg(long, value_name = "TIME")]
        as_of: Option<String>,
        /// Import every file of this folder (or matching this glob) in the order
        /// the connector's as_of table dates them, without alerts
        #[arg(long, value_name = "DIR_OR_GLOB", conflicts_with_all = ["file", "as_of"])]
        backfill: Option<PathBuf>,
    },
    /// List recent imports
    Runs {
        /// Only this connector
        #[arg(long)]
        connector: Option<String>,
        /// How many
        #[arg(long, default_value_t = 20)]
        limit: u32,
        /// Show the rejected records of this run
        #[arg(long, value_name = "RUN_ID")]
        rejections: Option<i64>,
        /// Show only the health of each source: last success, last error, stale or not
        #[arg(long, conflicts_with = "rejections")]
        sources: bool,
        /// Print as JSON
        #[arg(long)]
        json: bool,
    },
    /// Run the rule test cases (rules/tests/*.toml by default)
    Test {
        /// Test files or folders
        paths: Vec<PathBuf>,
    },
    /// Print the message a rule would send about a stored dossier
    Render {
        /// The rule's name
        rule: String,
        /// The dossier's reference or id
        #[arg(long, value_name = "REF")]
        dossier: String,
        /// Write to this address (default: the rule's first recipient on the dossier)
        #[arg(long, value_name = "ADDRESS")]
        to: Option<String>,
        /// Print as JSON (subject, text, html)
        #[arg(long)]
        json: bool,
    },
    /// Inspect and act on the outbox of alerts
    Outbox {
        #[command(subcommand)]
        command: outbox::OutboxCommand,
    },
    /// Look for stalled dossiers and deadlines now, and queue what the rules owe
    /// (the daemon does it at start-up and on the schedule of `delays.evaluate`)
    Evaluate {
        /// Make the instructors' review instead: the dossiers each should look at
        /// (stalled, or with a deadline within `delays.review_horizon`)
        #[arg(long)]
        review: bool,
        /// Print the summary as JSON
        #[arg(long)]
        json: bool,
    },
    /// How long dossiers stay in each step, per scheme: sample, median, p80, p90,
    /// dossiers in the step now and overdue
    Stats {
        /// table, csv or json
        #[arg(long, value_enum, default_value_t = stats::Format::Table)]
        format: stats::Format,
        /// One line per dossier still in its source, with its prediction: when it
        /// is expected to leave its step, and the 80 % interval
        #[arg(long)]
        dossiers: bool,
        /// As of this instant (RFC 3339, or a date: its start in the Region's
        /// zone) [default: the last applied import]
        #[arg(long, value_name = "TIME")]
        as_of: Option<String>,
    },
    /// Write one self-contained HTML page for managers: time spent in each step per
    /// scheme, dossiers per step month by month, stalled dossiers per instructor
    Report {
        /// The file to write
        #[arg(long, value_name = "FILE.html")]
        out: PathBuf,
    },
    /// Erase the personal data of the dossiers closed for longer than
    /// `retention.personal_data` (RGPD); their steps and dates stay for statistics
    Purge {
        /// Only show what would be erased
        #[arg(long)]
        dry_run: bool,
        /// Print the counts as JSON
        #[arg(long)]
        json: bool,
    },
    /// Write a consistent copy of the state database to FILE, while the daemon runs
    Backup {
        /// The copy to write (it must not exist)
        file: PathBuf,
    },
    /// Print the completions of a shell (bash, zsh, fish, elvish, powershell), e.g.
    /// into /usr/share/bash-completion/completions/alertissimo
    Completions {
        /// The shell
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff), e.g. into /usr/share/man/man1/alertissimo.1
    Manpage,
    /// Show the timeline of a dossier (by reference or source id)
    Dossier {
        /// The dossier's reference or id
        reference: String,
        /// Print as JSON
        #[arg(long)]
        json: bool,
        /// Predict as of this instant (RFC 3339, or a date: its start in the
        /// Region's zone) [default: the last applied import]
        #[arg(long, value_name = "TIME")]
        as_of: Option<String>,
    },
}

/// Exit codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Exit {
    /// Everything went well.
    Ok = 0,
    /// A runtime failure (a refused snapshot, a database error…).
    Failure = 1,
    /// The configuration is invalid (`EX_CONFIG`): systemd must not restart.
    Config = 78,
}

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> Self {
        ExitCode::from(e as u8)
    }
}

/// Runs one command and returns the process exit code.
pub fn run(cli: Cli) -> ExitCode {
    let result = match cli.command {
        // These two describe the command line: no configuration is read.
        Command::Completions { shell } => {
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "alertissimo",
                &mut std::io::stdout(),
            );
            Ok(Exit::Ok)
        }
        Command::Manpage => clap_mangen::Man::new(Cli::command())
            .render(&mut std::io::stdout())
            .map(|()| Exit::Ok)
            .context("cannot write the manual page"),
        command => with_config(cli.config.as_deref(), command),
    };
    match result {
        Ok(exit) => exit.into(),
        Err(error) => {
            eprintln!("error: {error:#}");
            Exit::Failure.into()
        }
    }
}

/// Runs a command that reads the configuration.
fn with_config(file: Option<&Path>, command: Command) -> anyhow::Result<Exit> {
    let config = match Config::load(file) {
        Ok(c) => c,
        Err(problems) => {
            eprint!("invalid configuration:\n{problems}");
            return Ok(Exit::Config);
        }
    };
    init_logging(&config, matches!(command, Command::Run));
    match command {
        Command::Run => daemon::run_daemon(config),
        Command::Check {
            no_environment,
            strict,
        } => Ok(check::check(&config, !no_environment, strict)),
        Command::Import {
            connector,
            file,
            json,
            force,
            as_of,
            backfill,
        } => match backfill {
            Some(spec) => backfill::backfill(&config, &connector, &spec, json, force),
            None => imports::import_now(&config, &connector, file.as_deref(), json, force, as_of),
        },
        Command::Runs {
            connector,
            limit,
            rejections,
            sources,
            json,
        } => runs::runs(
            &config,
            connector.as_deref(),
            limit,
            rejections,
            sources,
            json,
        ),
        Command::Dossier {
            reference,
            json,
            as_of,
        } => dossier::dossier(&config, &reference, json, as_of.as_deref()),
        Command::Test { paths } => rules::test_rules(&config, &paths),
        Command::Render {
            rule,
            dossier,
            to,
            json,
        } => rules::render(&config, &rule, &dossier, to.as_deref(), json),
        Command::Outbox { command } => outbox::run(&config, command),
        Command::Stats {
            format,
            dossiers,
            as_of,
        } => stats::run(&config, format, dossiers, as_of.as_deref()),
        Command::Report { out } => stats::report(&config, &out),
        Command::Backup { file } => backup(&config, &file),
        Command::Purge { dry_run, json } => purge::purge(&config, dry_run, json),
        Command::Evaluate { review, json } => evaluate::evaluate(&config, review, json),
        Command::Completions { .. } | Command::Manpage => {
            unreachable!("answered without a configuration, in `run`")
        }
    }
}

fn init_logging(config: &Config, daemon: bool) {
    use tracing_subscriber::EnvFilter;
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&config.log.level));
    // Migrations are reported by our own start-up line.
    let filter = match "rusqlite_migration=warn".parse() {
        Ok(directive) => filter.add_directive(directive),
        Err(_) => filter,
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none());
    // Under systemd, journald stamps every line already.
    let journald = daemon && std::env::var_os("JOURNAL_STREAM").is_some();
    let _ = match (config.log.format, journald) {
        (LogFormat::Json, _) => builder.json().try_init(),
        (LogFormat::Text, true) => builder.without_time().try_init(),
        (LogFormat::Text, false) => builder.try_init(),
    };
}

/// Everything loaded from the admin-written files.
pub(crate) struct Loaded {
    /// The lifecycle.
    pub lifecycle: Arc<Lifecycle>,
    /// The valid connectors.
    pub connectors: Vec<Connector>,
    /// The connector files that do not validate, with their problems (see
    /// [`load_apart`]).
    pub left_out: Vec<LeftOut>,
    /// The rules and templates, when they are all valid.
    pub rules: Option<Rules>,
}

/// Loads the lifecycle, connectors, rules and templates, collecting every
/// problem, those of the connector files left out too.
pub(crate) fn load(config: &Config, problems: &mut Problems) -> Option<Loaded> {
    let loaded = load_apart(config, problems)?;
    // In the order found: the connector files, then the rules.
    let mut all = Problems::default();
    for l in &loaded.left_out {
        all.append(l.problems.clone());
    }
    all.append(std::mem::take(problems));
    *problems = all;
    Some(loaded)
}

/// Loads as [`load`], except that the problems of the connector files that do not
/// validate stay with them, in [`Loaded::left_out`]: the daemon runs without
/// those files, where any other problem stops it.
pub(crate) fn load_apart(config: &Config, problems: &mut Problems) -> Option<Loaded> {
    let lifecycle = Arc::new(Lifecycle::load(&config.lifecycle_path(), problems)?);
    let (connectors, left_out) = Connector::load_each(config, &lifecycle, problems);
    let rules = Rules::load(
        config,
        lifecycle.clone(),
        Connector::extra_fields(&connectors),
        problems,
    );
    Some(Loaded {
        lifecycle,
        connectors,
        left_out,
        rules,
    })
}

/// Loads what a command needs, or reports why it cannot run.
fn load_or_explain(config: &Config) -> Result<Loaded, Exit> {
    let mut problems = Problems::default();
    match load(config, &mut problems) {
        Some(loaded) if problems.is_empty() => Ok(loaded),
        _ => {
            eprint!("invalid configuration:\n{problems}");
            Err(Exit::Config)
        }
    }
}

/// Hands `request` to the daemon when one runs, so that one process writes to
/// the state (issue 17, item 31); `None` when none runs, and the command does
/// the work itself.
///
/// # Errors
/// When a daemon runs but cannot be asked.
fn hand_off(config: &Config, request: &Request) -> anyhow::Result<Option<Answer>> {
    let answer = crate::control::hand_off(&config.store.path, request)?;
    if answer.is_some() && std::io::stderr().is_terminal() {
        eprintln!("(done by the running daemon, with the configuration it last loaded)");
    }
    Ok(answer)
}

/// Explains an answer that is not the one asked for (a failure, mostly).
fn failed(answer: Answer) -> Exit {
    match answer {
        Answer::Failed(why) => eprintln!("error: {why}"),
        other => eprintln!("error: the daemon gave an answer to another question: {other:?}"),
    }
    Exit::Failure
}

/// The lifecycle, or the exit code of an invalid one (explained on stderr).
fn lifecycle(config: &Config) -> Result<Lifecycle, Exit> {
    let mut problems = Problems::default();
    Lifecycle::load(&config.lifecycle_path(), &mut problems).ok_or_else(|| {
        eprint!("invalid configuration:\n{problems}");
        Exit::Config
    })
}

fn backup(config: &Config, file: &Path) -> anyhow::Result<Exit> {
    let store = open_existing(config)?;
    let clock = std::time::Instant::now();
    let bytes = store.backup(file)?;
    eprintln!(
        "wrote {} ({} MB) in {:.1} s: a copy of {} as it was when the backup started",
        file.display(),
        bytes / 1_000_000,
        clock.elapsed().as_secs_f64(),
        config.store.path.display()
    );
    Ok(Exit::Ok)
}

/// The instant `--as-of` names, else the last applied import's (the state the
/// store holds), else now.
fn as_of(config: &Config, store: &Store, given: Option<&str>) -> anyhow::Result<DateTime<Utc>> {
    match given {
        Some(text) => crate::timing::parse_as_of(text, chrono::NaiveTime::MIN, config.timezone)
            .map_err(anyhow::Error::msg),
        None => Ok(store.last_import_at()?.unwrap_or_else(Utc::now)),
    }
}

fn open_existing(config: &Config) -> anyhow::Result<Store> {
    if !config.store.path.exists() {
        anyhow::bail!(
            "no state database at {} yet: run an import or the daemon first",
            config.store.path.display()
        );
    }
    Ok(Store::open(&config.store.path, config.store.cache_mb)?)
}
