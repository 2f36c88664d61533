//! `alertissimo check`: validates what the daemon would run with, by the rule the
//! daemon applies.
//!
//! A connector file that does not validate is left out by `run` (and by a
//! reload), which starts with the others; so `check` reports it as a warning
//! naming the file and each problem, and exits 0 as long as everything else is
//! valid: the unit's `ExecStartPre=` and `ExecReload=` never refuse what the
//! daemon would run. `--strict` makes it an error (exit 78), for the CI of a
//! repository of configuration files. Invalid `config.toml`, lifecycle, rules or
//! templates, and a folder where no connector validates, are errors either way:
//! the daemon does not start on them.
// See: issue 17, item 18.

use crate::config::Config;
use crate::connector::LeftOut;
use crate::diag::Problems;
use crate::rules::Class;
use crate::store::Store;

use super::{Exit, Loaded, load_apart, warnings};

/// Checks the configuration and the files it names; with `environment`, also the
/// folders, secrets and database they point at. Prints the problems and warnings.
pub(super) fn check(config: &Config, environment: bool, strict: bool) -> Exit {
    let mut problems = Problems::default();
    let mut loaded = load_apart(config, &mut problems);
    let mut left_out = loaded
        .as_mut()
        .map(|l| std::mem::take(&mut l.left_out))
        .unwrap_or_default();
    // The daemon does not start without a valid connector: then they are errors.
    if strict || loaded.as_ref().is_some_and(|l| l.connectors.is_empty()) {
        let mut all = Problems::default();
        for l in left_out.drain(..) {
            all.append(l.problems);
        }
        all.append(problems);
        problems = all;
    }
    if environment {
        check_environment(config, loaded.as_ref(), &mut problems);
    }
    if !problems.is_empty() {
        eprint!("{problems}");
        eprintln!(
            "{} problem{} found",
            problems.len(),
            if problems.len() == 1 { "" } else { "s" }
        );
        return Exit::Config;
    }
    for l in &left_out {
        eprintln!("{}", left_out_warning(l));
    }
    if config.region.email.is_none() && config.region.phone.is_none() {
        eprintln!(
            "warning: [region] gives neither an e-mail nor a phone: messages cannot tell people how to reach the Region"
        );
    }
    let informational = loaded
        .as_ref()
        .and_then(|l| l.rules.as_ref())
        .is_some_and(|r| r.rules.iter().any(|r| r.class == Class::Informational));
    let mut all = warnings::all(config, loaded.as_ref().map_or(&[], |l| &l.connectors));
    if let Some(loaded) = &loaded {
        let today = chrono::Utc::now()
            .with_timezone(&config.timezone)
            .date_naive();
        all.extend(loaded.lifecycle.sessions_running_out(today, SESSIONS_AHEAD));
    }
    all.extend(warnings::way_out(config, informational));
    all.extend(crate::web::pages::Pages::problems(
        &config.rules_dir.join(crate::web::pages::PAGES_DIR),
    ));
    for warning in all {
        eprintln!("warning: {warning}");
    }
    if let Some(loaded) = loaded {
        out!("{}", summary(config, &loaded, &left_out));
    }
    Exit::Ok
}

/// How far ahead a `[[calendar]]` should list sessions, in days, before
/// `check` and the daemon warn.
pub(super) const SESSIONS_AHEAD: i64 = 60;

/// The warning about a connector file the daemon leaves out: its file, and each
/// problem on a line of its own.
fn left_out_warning(l: &LeftOut) -> String {
    let mut text = format!(
        "warning: {}: connector '{}' is left out: the daemon runs the others without it (`check --strict` fails on it):",
        l.file.display(),
        l.name
    );
    for line in l.problems.to_string().lines() {
        text.push_str("\n  ");
        text.push_str(line);
    }
    text
}

/// What the environment must offer the enabled connectors, the store and the
/// transport. A disabled connector is not imported, so its folder and secrets
/// are not looked at.
fn check_environment(config: &Config, loaded: Option<&Loaded>, problems: &mut Problems) {
    for c in loaded.map_or(&[][..], |l| &l.connectors) {
        if !c.enabled {
            continue;
        }
        // The secrets of an API the daemon will call (their values are never shown).
        if let Err(reason) = c.source.check_secrets() {
            problems.push(&c.file, reason);
        }
        let Some(source) = c.source.folder() else {
            continue;
        };
        if let Err(reason) = source.files() {
            problems.push(&c.file, reason);
        } else if let Some(dir) = source.pattern.parent().filter(|d| !d.is_dir()) {
            problems.push(
                &c.file,
                format!("the drop folder {} does not exist", dir.display()),
            );
        }
    }
    if let Err(reason) = Store::check(&config.store.path) {
        problems.push(&config.store.path, reason);
    }
    let inbound = config.inbound.as_ref().map(|i| i.check_environment());
    for reason in config
        .delivery
        .transport
        .check_environment()
        .into_iter()
        .chain(inbound.into_iter().flatten())
    {
        problems.push(
            config
                .file
                .as_deref()
                .unwrap_or(std::path::Path::new("configuration")),
            reason,
        );
    }
}

/// The line that says the configuration is valid, and what it holds.
fn summary(config: &Config, loaded: &Loaded, left_out: &[LeftOut]) -> String {
    let names = |names: Vec<&str>| names.join(", ");
    let n = loaded.connectors.len();
    format!(
        "configuration is valid: {}, lifecycle of {} steps, {n} connector{} ({}){}, {} rules, {} templates",
        config.file.as_ref().map_or_else(
            || "built-in defaults".to_owned(),
            |f| f.display().to_string()
        ),
        loaded.lifecycle.steps().len(),
        if n == 1 { "" } else { "s" },
        names(loaded.connectors.iter().map(|c| c.name.as_str()).collect()),
        if left_out.is_empty() {
            String::new()
        } else {
            format!(
                ", {} left out ({})",
                left_out.len(),
                names(left_out.iter().map(|l| l.name.as_str()).collect())
            )
        },
        loaded.rules.as_ref().map_or(0, |r| r.rules.len()),
        loaded
            .rules
            .as_ref()
            .map_or(0, |r| r.templates.names().len()),
    )
}
