//! Rule test cases (`alertissimo test`): admins check their rules like code.
//!
//! Owns the `rules/tests/*.toml` format and its runner. Each case gives a dossier
//! before and after (or a dossier and an event) and what must come of it: which
//! rules fire, for which recipients, what the subject and body say, or that
//! nothing is sent. The runner uses the real diff, the real rules and the real
//! templates, with `now` fixed by the case, so a case gives the same answer on
//! every machine and at every hour; what an event queues comes from the caller
//! ([`Queue`]: `alertissimo test` gives `alerting::rehearse`, the import's own
//! alerting path in a throw-away store), so a case that passes is what
//! production does (cooldowns, held alerts, invalid addresses).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::Deserialize;
use toml::Spanned;

use crate::connector::Connector;
use crate::diag::FileProblems;
use crate::diag::Problems;
use crate::diff::{self, Known};
use crate::model::{Dossier, Event, EventKind, Value, parse_instant_text};
use crate::rules::{Rules, Scene};

/// One alert a rehearsal queued: its rule, role, address, the index of its
/// event, and why it can never leave, when it cannot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queued {
    /// The rule.
    pub rule: String,
    /// The recipient's role.
    pub role: String,
    /// The address.
    pub address: String,
    /// The event, by its index in the rehearsed events.
    pub event: usize,
    /// Why it is queued as failed (an invalid address), if it is.
    pub invalid: Option<String>,
}

/// What the alerting path of an import made of a case: the alerts it queued,
/// and the rules whose condition failed, with why.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rehearsal {
    /// The alerts queued.
    pub queued: Vec<Queued>,
    /// (rule, why) for each condition that failed to evaluate.
    pub failed: Vec<(String, String)>,
}

/// What the alerting of an import queues for a dossier and its events (see
/// `alerting::rehearse`): given by the caller, so that cases run the very path an
/// import takes.
pub type Queue<'a> = &'a dyn Fn(
    (&str, Option<&str>),
    &Dossier,
    &[Event],
    DateTime<Utc>,
) -> Result<Rehearsal, String>;

/// The instant cases run at unless they say otherwise: a Tuesday morning in Paris.
const DEFAULT_NOW: &str = "2026-03-10T10:00:00+01:00";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CaseFile {
    #[serde(default)]
    case: Vec<Spanned<CaseDef>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CaseDef {
    name: String,
    #[serde(default)]
    connector: Option<String>,
    #[serde(default)]
    now: Option<String>,
    #[serde(default)]
    baseline: bool,
    #[serde(default)]
    watch: Option<Vec<String>>,
    #[serde(default)]
    before: Option<StateDef>,
    #[serde(default)]
    after: Option<StateDef>,
    #[serde(default)]
    dossier: Option<StateDef>,
    #[serde(default)]
    event: Option<EventDef>,
    #[serde(default)]
    expect: Vec<ExpectDef>,
    #[serde(default)]
    expect_nothing: bool,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct StateDef {
    id: Option<String>,
    step: Option<String>,
    status: Option<String>,
    #[serde(default)]
    fields: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EventDef {
    kind: String,
    from: Option<String>,
    to: Option<String>,
    field: Option<String>,
    old: Option<String>,
    new: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpectDef {
    rule: String,
    to: Option<Vec<String>>,
    #[serde(default)]
    subject_contains: Vec<String>,
    #[serde(default)]
    body_contains: Vec<String>,
    #[serde(default)]
    body_excludes: Vec<String>,
}

/// The outcome of one case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The case's file.
    pub file: PathBuf,
    /// Its line in the file.
    pub line: usize,
    /// Its name.
    pub name: String,
    /// What went wrong; empty when it passed.
    pub failures: Vec<String>,
}

/// Every `*.toml` file under the given paths (files as they are, folders listed),
/// or `rules/tests/` when none is given.
pub fn collect(paths: &[PathBuf], default: &Path, problems: &mut Problems) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let defaults = [default.to_owned()];
    let paths = if paths.is_empty() {
        &defaults[..]
    } else {
        paths
    };
    for path in paths {
        if path.is_dir() {
            match std::fs::read_dir(path) {
                Ok(entries) => {
                    let mut found: Vec<PathBuf> = entries
                        .filter_map(|e| e.ok().map(|e| e.path()))
                        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
                        .collect();
                    found.sort();
                    if found.is_empty() {
                        problems.push(path, "no test file (*.toml) in this folder");
                    }
                    files.extend(found);
                }
                Err(error) => problems.push(path, format!("cannot read the folder: {error}")),
            }
        } else if path.is_file() {
            files.push(path.clone());
        } else {
            problems.push(path, "no such file or folder");
        }
    }
    files
}

/// Runs every case of a file. Problems with the file itself (syntax, unknown
/// keys) go to `problems`; failing cases are outcomes.
pub fn run_file(
    path: &Path,
    rules: &Rules,
    connectors: &[Connector],
    queue: Queue<'_>,
    problems: &mut Problems,
) -> Vec<Outcome> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) => {
            problems.push(path, format!("cannot read the test file: {error}"));
            return Vec::new();
        }
    };
    let mut fp = FileProblems::new(path, &text, problems);
    let Some(file) = fp.parse::<CaseFile>() else {
        return Vec::new();
    };
    if file.case.is_empty() {
        fp.file("the file declares no [[case]]");
    }
    file.case
        .into_iter()
        .map(|case| {
            let (line, _) = crate::diag::line_col(&text, case.span().start);
            let case = case.into_inner();
            Outcome {
                file: path.to_owned(),
                line,
                name: case.name.clone(),
                failures: run_case(&case, rules, connectors, queue),
            }
        })
        .collect()
}

fn run_case(
    case: &CaseDef,
    rules: &Rules,
    connectors: &[Connector],
    queue: Queue<'_>,
) -> Vec<String> {
    let mut failures = Vec::new();
    let now = match case
        .now
        .as_deref()
        .unwrap_or(DEFAULT_NOW)
        .parse::<DateTime<chrono::FixedOffset>>()
    {
        Ok(t) => t.with_timezone(&Utc),
        Err(_) => {
            return vec![format!(
                "`now` is not an RFC 3339 instant like \"{DEFAULT_NOW}\""
            )];
        }
    };
    let connector_name = case.connector.as_deref().unwrap_or("test");
    let connector = connectors.iter().find(|c| c.name == connector_name);
    if case.connector.is_some() && connector.is_none() {
        failures.push(format!("no connector '{connector_name}'"));
    }
    let (dossier, events) = match scenario(case, rules, connector, now) {
        Ok(found) => found,
        Err(reason) => {
            failures.push(reason);
            return failures;
        }
    };
    // (rule, address, message)
    let mut sent = Vec::new();
    if !case.baseline {
        match sent_by(
            rules,
            (connector_name, connector.and_then(|c| c.link.as_deref())),
            &dossier,
            &events,
            now,
            queue,
        ) {
            Ok((messages, problems)) => {
                sent = messages;
                failures.extend(problems);
            }
            Err(reason) => failures.push(reason),
        }
    }
    failures.extend(judge(case, rules, &sent));
    failures
}

/// What a case's expectations find wrong with the messages `sent`.
fn judge(case: &CaseDef, rules: &Rules, sent: &[Sent]) -> Vec<String> {
    let mut failures = Vec::new();
    if case.expect_nothing && !case.expect.is_empty() {
        failures.push("`expect_nothing` and [[case.expect]] contradict each other".to_owned());
    }
    if case.expect.is_empty() && !case.expect_nothing {
        failures.push(
            "the case expects nothing: add [[case.expect]] or expect_nothing = true".to_owned(),
        );
    }
    for expect in &case.expect {
        if rules.rule(&expect.rule).is_none() {
            failures.push(format!("no rule '{}'", expect.rule));
            continue;
        }
        let fired: Vec<&Sent> = sent
            .iter()
            .filter(|(rule, ..)| *rule == expect.rule)
            .collect();
        if fired.is_empty() {
            failures.push(format!("rule '{}' did not fire", expect.rule));
            continue;
        }
        failures.extend(judge_fired(expect, &fired));
    }
    for (rule, address, _) in sent {
        if !case.expect.iter().any(|e| e.rule == *rule) {
            failures.push(format!("rule '{rule}' fired unexpectedly (to {address})"));
        }
    }
    failures
}

/// What one expectation finds wrong with the messages its rule sent.
fn judge_fired(expect: &ExpectDef, fired: &[&Sent]) -> Vec<String> {
    let mut failures = Vec::new();
    if let Some(to) = &expect.to {
        let mut want: Vec<String> = to.iter().map(|a| a.to_lowercase()).collect();
        let mut got: Vec<String> = fired.iter().map(|(_, a, _)| a.to_lowercase()).collect();
        want.sort();
        got.sort();
        if want != got {
            failures.push(format!(
                "rule '{}' wrote to [{}], expected [{}]",
                expect.rule,
                got.join(", "),
                want.join(", ")
            ));
        }
    }
    for (_, address, message) in fired {
        for needle in &expect.subject_contains {
            if !message.subject.contains(needle.as_str()) {
                failures.push(format!(
                    "rule '{}' to {address}: the subject does not contain \"{needle}\": \"{}\"",
                    expect.rule, message.subject
                ));
            }
        }
        for needle in &expect.body_contains {
            if !message.text.contains(needle.as_str()) {
                failures.push(format!(
                    "rule '{}' to {address}: the body does not contain \"{needle}\"; it reads:\n{}",
                    expect.rule,
                    indent(&message.text)
                ));
            }
        }
        for needle in &expect.body_excludes {
            if message.text.contains(needle.as_str()) {
                failures.push(format!(
                    "rule '{}' to {address}: the body contains \"{needle}\"",
                    expect.rule
                ));
            }
        }
    }
    failures
}

/// A message a case sends: (rule, address, message).
type Sent = (String, String, crate::rules::template::Message);

/// The messages an import would send for `dossier` and its `events`: what the
/// alerting path queues, rendered as the dispatcher renders them; and the
/// problems met (an alert that can never leave, a message that cannot be made).
fn sent_by(
    rules: &Rules,
    connector: (&str, Option<&str>),
    dossier: &Dossier,
    events: &[Event],
    now: DateTime<Utc>,
    queue: Queue<'_>,
) -> Result<(Vec<Sent>, Vec<String>), String> {
    let link = crate::model::link(dossier, connector.1);
    // A case has no history: its messages quote the lifecycle's expected durations.
    let delays =
        crate::delays::History::new().finish(&rules.lifecycle, 1, now.timestamp(), rules.policy.tz);
    let entered = dossier
        .get(crate::model::STEP_SINCE)
        .and_then(|v| v.instant().or_else(|| parse_instant_text(&v.text())))
        .unwrap_or(now);
    let delay = delays.of(dossier, entered, now);
    let (mut sent, mut problems) = (Vec::new(), Vec::new());
    let rehearsal = queue(connector, dossier, events, now)?;
    for (rule, reason) in rehearsal.failed {
        problems.push(format!("rule '{rule}': the condition fails: {reason}"));
    }
    for alert in rehearsal.queued {
        if let Some(reason) = &alert.invalid {
            problems.push(format!(
                "rule '{}' to {}: {reason}",
                alert.rule, alert.address
            ));
            continue;
        }
        let Some(rule) = rules.rule(&alert.rule) else {
            continue;
        };
        let scene = Scene {
            connector: connector.0,
            link: link.as_deref(),
            dossier,
            event: &events[alert.event],
            delay: delay.as_ref(),
        };
        match rules.render(rule, &scene, &alert.role, &alert.address) {
            Ok(message) => sent.push((alert.rule, alert.address, message)),
            Err(reason) => problems.push(format!("rule '{}': {reason}", alert.rule)),
        }
    }
    Ok((sent, problems))
}

fn indent(text: &str) -> String {
    text.lines()
        .map(|l| format!("        | {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The dossier after the case and the events that led to it.
fn scenario(
    case: &CaseDef,
    rules: &Rules,
    connector: Option<&Connector>,
    now: DateTime<Utc>,
) -> Result<(Dossier, Vec<Event>), String> {
    let build = |state: &StateDef, base: Option<&Dossier>| -> Result<Dossier, String> {
        let step = state
            .step
            .clone()
            .or_else(|| base.map(|b| b.step.clone()))
            .ok_or("a dossier needs a `step`")?;
        if rules.lifecycle.step(&step).is_none() {
            return Err(format!("unknown step '{step}'"));
        }
        let mut fields = base.map(|b| b.fields.clone()).unwrap_or_default();
        for (name, value) in &state.fields {
            if crate::model::field(name).is_none() && !name.starts_with(crate::model::EXTRA_PREFIX)
            {
                return Err(format!("unknown field '{name}'"));
            }
            if value.is_empty() {
                fields.remove(name);
            } else {
                let kind = crate::model::field(name)
                    .map(|f| f.kind)
                    .or_else(|| rules.extra_kind(name))
                    .unwrap_or(crate::model::FieldKind::Text);
                fields.insert(name.as_str(), Value::from_text(kind, value));
            }
        }
        Ok(Dossier {
            id: state
                .id
                .clone()
                .or_else(|| base.map(|b| b.id.clone()))
                .unwrap_or_else(|| "TEST-1".to_owned()),
            status: state
                .status
                .clone()
                .or_else(|| {
                    (base.map(|b| &b.step) == Some(&step))
                        .then(|| base.map(|b| b.status.clone()))
                        .flatten()
                })
                .unwrap_or_else(|| rules.lifecycle.label(&step).to_owned()),
            step,
            fields,
        })
    };
    match (&case.before, &case.after, &case.dossier, &case.event) {
        (before, Some(after), None, None) => {
            let before = before.as_ref().map(|b| build(b, None)).transpose()?;
            let after = build(after, before.as_ref())?;
            let watch = case
                .watch
                .clone()
                .or_else(|| connector.map(|c| c.watch.clone()))
                .unwrap_or_default();
            let known = before.map(|dossier| Known {
                dossier,
                present: true,
                step_entered_at: now - chrono::Duration::days(30),
            });
            let change = diff::compare(known.as_ref(), &after, &watch, now);
            Ok((after, change.events))
        }
        (None, None, Some(dossier), Some(e)) => {
            let dossier = build(dossier, None)?;
            let kind = EventKind::parse(&e.kind).ok_or_else(|| format!("unknown event '{}'", e.kind))?;
            let mut event = Event::new(kind, now);
            event.from_step = e.from.clone();
            event.to_step = e.to.clone();
            event.field = e.field.clone();
            event.old_value = e.old.clone();
            event.new_value = e.new.clone();
            Ok((dossier, vec![event]))
        }
        _ => Err("a case gives either [case.after] (and maybe [case.before]), or [case.dossier] and [case.event]".to_owned()),
    }
}
