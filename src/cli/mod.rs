//! The command line: argument parsing (clap) and one function per command.
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
use chrono::Utc;
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

mod check;
mod outbox;
mod purge;
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
    },
}

/// Exit codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
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
        Command::Run => run_daemon(config),
        Command::Check {
            no_environment,
            strict,
        } => Ok(check::check(&config, !no_environment, strict)),
        Command::Import {
            connector,
            file,
            json,
            force,
        } => import_now(&config, &connector, file.as_deref(), json, force),
        Command::Runs {
            connector,
            limit,
            rejections,
            sources,
            json,
        } => runs(
            &config,
            connector.as_deref(),
            limit,
            rejections,
            sources,
            json,
        ),
        Command::Dossier { reference, json } => dossier(&config, &reference, json),
        Command::Test { paths } => test_rules(&config, &paths),
        Command::Render {
            rule,
            dossier,
            to,
            json,
        } => render(&config, &rule, &dossier, to.as_deref(), json),
        Command::Outbox { command } => outbox::run(&config, command),
        Command::Stats { format } => stats::run(&config, format),
        Command::Report { out } => stats::report(&config, &out),
        Command::Backup { file } => backup(&config, &file),
        Command::Purge { dry_run, json } => purge::purge(&config, dry_run, json),
        Command::Evaluate { review, json } => evaluate(&config, review, json),
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
pub struct Loaded {
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
pub fn load(config: &Config, problems: &mut Problems) -> Option<Loaded> {
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
pub fn load_apart(config: &Config, problems: &mut Problems) -> Option<Loaded> {
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

fn import_now(
    config: &Config,
    name: &str,
    file: Option<&Path>,
    json: bool,
    force: bool,
) -> anyhow::Result<Exit> {
    let request = Request::Import {
        connector: name.to_owned(),
        file: file.map(std::path::absolute).transpose()?,
        force,
    };
    let summaries = match hand_off(config, &request)? {
        Some(Answer::Imported(summaries)) => summaries,
        Some(other) => return Ok(failed(other)),
        None => match import_alone(config, name, file, force)? {
            Ok(summaries) => summaries,
            Err(exit) => return Ok(exit),
        },
    };
    print_summaries(config, name, &summaries, json)
}

/// Imports with a store of this command's own (no daemon runs), with a progress
/// bar on a terminal.
fn import_alone(
    config: &Config,
    name: &str,
    file: Option<&Path>,
    force: bool,
) -> anyhow::Result<Result<Vec<Summary>, Exit>> {
    let loaded = match load_or_explain(config) {
        Ok(l) => l,
        Err(exit) => return Ok(Err(exit)),
    };
    let Some(connector) = loaded.connectors.iter().find(|c| c.name == name) else {
        let known: Vec<&str> = loaded.connectors.iter().map(|c| c.name.as_str()).collect();
        eprintln!(
            "error: no connector '{name}' in {} (known: {})",
            config.connectors_dir.display(),
            known.join(", ")
        );
        return Ok(Err(Exit::Failure));
    };
    let mut store = Store::open(&config.store.path, config.store.cache_mb)?;
    // Files go by bytes, workbooks by rows; an API by pages, counted as they are
    // fetched (no total yet), then imported.
    let api = connector.source.folder().is_none() && file.is_none();
    let bar = std::io::stderr().is_terminal().then(|| {
        let bar = indicatif::ProgressBar::new(0);
        let template = match &connector.source {
            _ if api => "{spinner} {msg} [{bar:30}] {pos}/{len} pages",
            crate::connector::Source::Spreadsheet(_) => {
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
        force,
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
fn print_summaries(
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

fn print_summary(s: &Summary, _tz: Tz) {
    let c = &s.counts;
    let run = s
        .run_id
        .map_or_else(String::new, |id| format!(" (run {id})"));
    out!("{}: {}{run}", s.file, s.status.to_uppercase());
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
    if s.baseline && s.status == "applied" {
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

fn describe_rejection(r: &crate::store::Rejection) -> String {
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

fn evaluate(config: &Config, review: bool, json: bool) -> anyhow::Result<Exit> {
    let summary = match hand_off(config, &Request::Evaluate { review })? {
        Some(Answer::Evaluated(summary)) => summary,
        Some(other) => return Ok(failed(other)),
        None => match evaluate_alone(config, review)? {
            Ok(summary) => summary,
            Err(exit) => return Ok(exit),
        },
    };
    if json {
        out!("{}", serde_json::to_string(&summary)?);
    } else {
        out!(
            "{} open dossiers looked at: {} newly stalled, {} deadline reminders, {} in a review, {} alerts queued{}",
            summary.dossiers,
            summary.stalled,
            summary.deadline,
            summary.review,
            summary.alerts_queued,
            summary
                .run_id
                .map(|id| format!(" (run {id})"))
                .unwrap_or_default()
        );
    }
    Ok(Exit::Ok)
}

fn evaluate_alone(
    config: &Config,
    review: bool,
) -> anyhow::Result<Result<crate::timers::Summary, Exit>> {
    let loaded = match load_or_explain(config) {
        Ok(l) => l,
        Err(exit) => return Ok(Err(exit)),
    };
    let Some(rules) = loaded.rules else {
        return Ok(Err(Exit::Config));
    };
    let mut store = open_existing(config)?;
    let now = Utc::now();
    let delays = store.delays(&loaded.lifecycle, config.delays.min_sample, now)?;
    let summary = crate::timers::evaluate(
        &mut store,
        &delays,
        Some(&rules),
        &loaded.connectors,
        &loaded.lifecycle,
        crate::timers::Clock {
            tz: config.timezone,
            now,
        },
        if review {
            crate::timers::Pass::Review(config.delays.review_horizon)
        } else {
            crate::timers::Pass::Events
        },
    )?;
    Ok(Ok(summary))
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

fn open_existing(config: &Config) -> anyhow::Result<Store> {
    if !config.store.path.exists() {
        anyhow::bail!(
            "no state database at {} yet: run an import or the daemon first",
            config.store.path.display()
        );
    }
    Ok(Store::open(&config.store.path, config.store.cache_mb)?)
}

fn test_rules(config: &Config, paths: &[PathBuf]) -> anyhow::Result<Exit> {
    let mut problems = Problems::default();
    let loaded = load(config, &mut problems);
    let Some((connectors, rules)) = loaded.and_then(|l| l.rules.map(|r| (l.connectors, r))) else {
        eprint!("invalid configuration:\n{problems}");
        return Ok(Exit::Config);
    };
    let files = crate::cases::collect(paths, &config.rules_dir.join("tests"), &mut problems);
    let mut outcomes = Vec::new();
    for file in &files {
        outcomes.extend(crate::cases::run_file(
            file,
            &rules,
            &connectors,
            &|connector, dossier, events, now| {
                crate::alerting::rehearse(&rules, connector, dossier, events, now)
            },
            &mut problems,
        ));
    }
    if !problems.is_empty() {
        eprint!("invalid test files:\n{problems}");
        return Ok(Exit::Config);
    }
    let mut current: Option<&Path> = None;
    for o in &outcomes {
        if current != Some(o.file.as_path()) {
            out!("{}", o.file.display());
            current = Some(&o.file);
        }
        if o.failures.is_empty() {
            out!("  ok    {}", o.name);
        } else {
            out!("  FAIL  {} (line {})", o.name, o.line);
            for f in &o.failures {
                out!("        {f}");
            }
        }
    }
    let failed = outcomes.iter().filter(|o| !o.failures.is_empty()).count();
    out!(
        "{} case{}: {} passed, {failed} failed",
        outcomes.len(),
        if outcomes.len() == 1 { "" } else { "s" },
        outcomes.len() - failed
    );
    Ok(if failed == 0 && !outcomes.is_empty() {
        Exit::Ok
    } else {
        Exit::Failure
    })
}

fn render(
    config: &Config,
    rule_name: &str,
    reference: &str,
    to: Option<&str>,
    json: bool,
) -> anyhow::Result<Exit> {
    let loaded = match load_or_explain(config) {
        Ok(l) => l,
        Err(exit) => return Ok(exit),
    };
    let Some(rules) = &loaded.rules else {
        return Ok(Exit::Config);
    };
    let Some(rule) = rules.rule(rule_name) else {
        eprintln!(
            "error: no rule '{rule_name}' (known: {})",
            rules
                .rules
                .iter()
                .map(|r| r.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
        return Ok(Exit::Failure);
    };
    let store = open_existing(config)?;
    let Some(found) = store.find_dossiers(reference)?.into_iter().next() else {
        eprintln!("no dossier with reference or id '{reference}'");
        return Ok(Exit::Failure);
    };
    let connector = loaded.connectors.iter().find(|c| c.name == found.connector);
    let link = connector.and_then(|c| c.link_for(&found.dossier));
    // The delays as the daemon would quote them now.
    let now = Utc::now();
    let delay = store
        .delays(&rules.lifecycle, config.delays.min_sample, now)?
        .estimate(
            found.dossier.get("scheme"),
            &found.dossier.step,
            (now - found.step_entered_at).num_seconds(),
        );
    let scene = |event| crate::rules::Scene {
        connector: &found.connector,
        link: link.as_deref(),
        dossier: &found.dossier,
        event,
        delay: delay.as_ref(),
    };
    // The latest stored event that fires the rule, else one made from the
    // dossier's current state (said so on stderr: the rule may not fire on it).
    let events = store.events(found.rowid)?;
    let stored = events
        .iter()
        .rev()
        .map(|e| &e.event)
        .find(|e| rules.fires(rule, &scene(e)))
        .cloned();
    let event = stored.unwrap_or_else(|| {
        eprintln!(
            "note: no stored event of this dossier fires '{rule_name}'; shown as if the dossier had just entered its current step"
        );
        let mut e = crate::model::Event::new(
            rule.on.first().copied().unwrap_or(EventKind::StepChanged),
            found.step_entered_at,
        );
        e.to_step = Some(found.dossier.step.clone());
        e
    });
    let scene = scene(&event);
    // The rule's first recipient on the dossier; `--to` changes the address only.
    let (role, first) = rule
        .notify
        .iter()
        .find_map(|r| {
            r.addresses(&found.dossier)
                .first()
                .map(|a| (r.role(), (*a).to_owned()))
        })
        .unwrap_or_else(|| {
            (
                rule.notify.first().map_or("address", |r| r.role()),
                "destinataire@example.org".to_owned(),
            )
        });
    let address = to.map_or(first, str::to_owned);
    let message = match rules.render(rule, &scene, role, &address) {
        Ok(m) => m,
        Err(reason) => {
            eprintln!("error: {reason}");
            return Ok(Exit::Failure);
        }
    };
    if json {
        out!(
            "{}",
            serde_json::json!({
                "rule": rule.name, "dossier": found.dossier.reference(), "to": address,
                "event": event.kind.as_str(), "subject": message.subject,
                "text": message.text, "html": message.html,
            })
        );
    } else {
        out!("To: {address} ({role})\nSubject: {}\n", message.subject);
        out!("--- text ---\n{}", message.text);
        out!("--- html ---\n{}", message.html);
    }
    Ok(Exit::Ok)
}

fn runs(
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
                out!("{}", describe_rejection(r));
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
fn show_sources(
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

fn run_json(r: &RunRecord, tz: Tz) -> serde_json::Value {
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

fn dossier(config: &Config, reference: &str, json: bool) -> anyhow::Result<Exit> {
    let lifecycle = {
        let mut problems = Problems::default();
        Lifecycle::load(&config.lifecycle_path(), &mut problems)
            .with_context(|| format!("invalid lifecycle:\n{problems}"))?
    };
    let store = open_existing(config)?;
    let found = store.find_dossiers(reference)?;
    if found.is_empty() {
        eprintln!("no dossier with reference or id '{reference}'");
        return Ok(Exit::Failure);
    }
    let tz = config.timezone;
    let mut all = Vec::new();
    for d in &found {
        let events = store.events(d.rowid)?;
        let alerts = store
            .alerts(None, Some(d.rowid), usize::MAX)?
            .into_iter()
            .map(|a| {
                let deliveries = store.deliveries(a.id)?;
                Ok((a, deliveries))
            })
            .collect::<Result<Vec<_>, crate::store::StoreError>>()?;
        if json {
            all.push(serde_json::json!({
                "connector": d.connector,
                "id": d.dossier.id,
                "reference": d.dossier.reference(),
                "step": d.dossier.step,
                "step_label": lifecycle.label(&d.dossier.step),
                "status": d.dossier.status,
                "step_entered_at": d.step_entered_at.with_timezone(&tz).to_rfc3339(),
                "present": d.present,
                "fields": d.dossier.fields,
                "events": events.iter().map(|e| serde_json::json!({
                    "kind": e.event.kind.as_str(),
                    "from_step": e.event.from_step,
                    "to_step": e.event.to_step,
                    "field": e.event.field,
                    "old_value": e.event.old_value,
                    "new_value": e.event.new_value,
                    "occurred_at": e.event.occurred_at.with_timezone(&tz).to_rfc3339(),
                    "detected_at": e.detected_at.with_timezone(&tz).to_rfc3339(),
                    "run_id": e.run_id,
                    "baseline": e.baseline,
                })).collect::<Vec<_>>(),
                "alerts": alerts.iter().map(|(a, deliveries)| {
                    let mut v = serde_json::to_value(a).unwrap_or_default();
                    v["deliveries"] = serde_json::to_value(deliveries).unwrap_or_default();
                    v
                }).collect::<Vec<_>>(),
            }));
            continue;
        }
        out!(
            "{} — {} ({}, id {})",
            d.dossier.reference(),
            d.dossier.get("title").unwrap_or("sans intitulé"),
            d.connector,
            d.dossier.id
        );
        if let Some(name) = d.dossier.get("beneficiary.name") {
            out!("  bénéficiaire : {name}");
        }
        out!(
            "  étape : {} (« {} ») depuis le {}{}",
            lifecycle.label(&d.dossier.step),
            d.dossier.status,
            d.step_entered_at
                .with_timezone(&tz)
                .format("%d/%m/%Y %H:%M"),
            if d.present {
                ""
            } else {
                " — absent du dernier export"
            }
        );
        out!("  historique :");
        for e in &events {
            let when = e
                .event
                .occurred_at
                .with_timezone(&tz)
                .format("%d/%m/%Y %H:%M");
            let what = match e.event.kind {
                EventKind::Created => format!(
                    "apparu à l'étape {}",
                    lifecycle.label(e.event.to_step.as_deref().unwrap_or("?"))
                ),
                EventKind::StepChanged => format!(
                    "{} → {}",
                    lifecycle.label(e.event.from_step.as_deref().unwrap_or("?")),
                    lifecycle.label(e.event.to_step.as_deref().unwrap_or("?"))
                ),
                EventKind::FieldChanged => format!(
                    "{} : {} → {}",
                    e.event.field.as_deref().unwrap_or("?"),
                    e.event.old_value.as_deref().unwrap_or("(vide)"),
                    e.event.new_value.as_deref().unwrap_or("(vide)")
                ),
                EventKind::Disappeared
                    if e.event.field.as_deref() == Some(crate::model::DELETED_ON_SOURCE) =>
                {
                    format!(
                        "supprimé sur la source (motif : {})",
                        e.event.new_value.as_deref().unwrap_or("non précisé")
                    )
                }
                EventKind::Disappeared => "absent de l'export".to_owned(),
                EventKind::Reappeared => "de retour dans l'export".to_owned(),
                EventKind::Stalled => format!(
                    "à l'étape {} depuis plus longtemps que prévu (seuil {})",
                    lifecycle.label(e.event.from_step.as_deref().unwrap_or("?")),
                    e.event.new_value.as_deref().unwrap_or("?")
                ),
                EventKind::Review => format!(
                    "signalé dans le point périodique à l'instructeur{}",
                    e.event
                        .old_value
                        .as_deref()
                        .map(|d| format!(" (échéance le {d})"))
                        .unwrap_or_default()
                ),
                EventKind::Deadline => format!(
                    "échéance {} le {} : rappel à J-{}",
                    e.event.field.as_deref().unwrap_or("?"),
                    e.event.old_value.as_deref().unwrap_or("?"),
                    e.event.new_value.as_deref().unwrap_or("?")
                ),
                EventKind::Message => {
                    let text = e.event.new_value.as_deref().unwrap_or("");
                    let short: String = text.chars().take(160).collect();
                    format!(
                        "message de {} : {}{}",
                        e.event.field.as_deref().unwrap_or("?"),
                        short.replace('\n', " "),
                        if short.len() < text.len() { "…" } else { "" }
                    )
                }
            };
            let baseline = if e.baseline { " [état initial]" } else { "" };
            out!(
                "    {when}  {:<13} {what}{baseline}  (import {})",
                e.event.kind.as_str(),
                e.run_id
            );
        }
        if !alerts.is_empty() {
            out!("  messages :");
        }
        for (a, deliveries) in &alerts {
            let status = match a.status.as_str() {
                "pending" => "en attente",
                "sending" => "en cours d'envoi",
                "sent" => "envoyé",
                "failed" => "échec",
                "cancelled" => "annulé",
                other => other,
            };
            out!(
                "    {}  {:<13} {} à {} ({}), prévu le {}{}",
                a.created_at.with_timezone(&tz).format("%d/%m/%Y %H:%M"),
                a.rule,
                status,
                a.recipient,
                a.role,
                a.due_at.with_timezone(&tz).format("%d/%m/%Y %H:%M"),
                a.reason
                    .as_deref()
                    .map(|r| format!(" — {r}"))
                    .unwrap_or_default()
            );
            for d in deliveries {
                let outcome = match d.outcome.as_str() {
                    "sent" => "remis",
                    "transient" => "échec temporaire",
                    "permanent" => "échec définitif",
                    "interrupted" => "interrompu",
                    other => other,
                };
                out!(
                    "        {}  {outcome} ({}){}",
                    d.attempted_at
                        .with_timezone(&tz)
                        .format("%d/%m/%Y %H:%M:%S"),
                    if d.transport.is_empty() {
                        "-"
                    } else {
                        d.transport.as_str()
                    },
                    d.reply
                        .as_deref()
                        .map(|r| format!(" : {r}"))
                        .unwrap_or_default()
                );
            }
        }
    }
    if json {
        out!("{}", serde_json::to_string_pretty(&all)?);
    }
    Ok(Exit::Ok)
}

fn run_daemon(config: Config) -> anyhow::Result<Exit> {
    let setup = match daemon_setup(config) {
        Ok(setup) => setup,
        Err(problems) => {
            eprint!("invalid configuration:\n{problems}");
            return Ok(Exit::Config);
        }
    };
    for warning in warnings::all(&setup.config, &setup.connectors) {
        tracing::warn!("{warning}");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    // A reload follows the rule of a start: every file valid but connector files,
    // which are left out (the others run); else the running set stays.
    let file = setup.config.file.clone();
    let reload = move || -> Result<crate::daemon::Setup, String> {
        let config = Config::load(file.as_deref()).map_err(|p| p.to_string())?;
        daemon_setup(config).map_err(|p| p.to_string())
    };
    runtime.block_on(crate::daemon::run(
        setup,
        reload,
        crate::daemon::shutdown_signal(),
    ))?;
    Ok(Exit::Ok)
}

/// What the daemon runs with: the valid connectors, the files left out, and the
/// rules. Rules are all or nothing (a broken rule could tell people wrong
/// things); a connector file that does not validate is left out, and the others
/// run, as long as one does. `check` applies the same rule.
///
/// # Errors
/// Every problem, when the daemon cannot run.
fn daemon_setup(config: Config) -> Result<crate::daemon::Setup, Problems> {
    let mut problems = Problems::default();
    match load_apart(&config, &mut problems) {
        Some(Loaded {
            connectors,
            left_out,
            rules: Some(rules),
            ..
        }) if problems.is_empty() && !connectors.is_empty() => Ok(crate::daemon::Setup {
            config,
            connectors,
            left_out,
            rules: Arc::new(rules),
        }),
        loaded => {
            let mut all = Problems::default();
            for l in loaded.map(|l| l.left_out).unwrap_or_default() {
                all.append(l.problems);
            }
            all.append(problems);
            Err(all)
        }
    }
}
