//! Rules: who is told what, for which events.
//!
//! Owns the rule files `rules/*.toml` (every TOML file of the rules folder but
//! `lifecycle.toml`): their strict parsing and validation with `file:line:column`,
//! and the pure decision of which alerts an event owes: [`Rules::plan`] matches an
//! event on a dossier against every rule (kinds, connector and scheme globs,
//! steps, fields, then the optional condition) and resolves the recipients and the
//! timing of each alert. Nothing here does I/O after loading; `now` is an argument.
//!
//! Submodules: [`template`] (the messages), [`french`] (filters). When alerts
//! leave is [`crate::timing`]'s; the rule test cases are [`crate::cases`]'s.

pub mod french;
pub mod template;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use globset::{Glob, GlobSet, GlobSetBuilder};
use minijinja::Value;
use serde::Deserialize;
use toml::Spanned;

use crate::config::{Config, Region};
use crate::diag::FileProblems;
use crate::diag::Problems;
use crate::lifecycle::{self, Lifecycle};
use crate::model::{self, Dossier, Event, EventKind, FieldKind};
use crate::timing::{self, Policy};
use template::{Message, Templates};

/// The folder of templates inside the rules folder.
pub const TEMPLATES_DIR: &str = "templates";

/// How much a message matters to its recipient: whether they may turn it off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Always sent (a decision, a missing piece, a deadline): its message says
    /// why it cannot be turned off.
    Mandatory,
    /// Good to know: its message carries a one-click way out (`List-Unsubscribe`
    /// and a footer link), and an address that took it gets no more of them.
    Informational,
}

impl Class {
    /// The name used in rule files and in the outbox.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Mandatory => "mandatory",
            Self::Informational => "informational",
        }
    }
}

/// Who a rule notifies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recipient {
    /// The addresses of the `beneficiary.email` field.
    Beneficiary,
    /// The addresses of the `instructor.email` field.
    Instructor,
    /// The addresses of the `service.email` field.
    Service,
    /// A fixed address.
    Address(String),
}

impl Recipient {
    /// The role name, as rules and the outbox write it.
    pub fn role(&self) -> &'static str {
        match self {
            Self::Beneficiary => "beneficiary",
            Self::Instructor => "instructor",
            Self::Service => "service",
            Self::Address(_) => "address",
        }
    }

    /// The addresses it stands for on a dossier.
    pub fn addresses<'a>(&'a self, dossier: &'a Dossier) -> Vec<&'a str> {
        let field = match self {
            Self::Beneficiary => "beneficiary.email",
            Self::Instructor => "instructor.email",
            Self::Service => "service.email",
            Self::Address(address) => return vec![address.as_str()],
        };
        dossier
            .get(field)
            .map(|list| {
                list.split(',')
                    .map(str::trim)
                    .filter(|a| !a.is_empty())
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// One validated rule.
#[derive(Debug, Clone)]
pub struct Rule {
    /// Unique name, part of every alert's key.
    pub name: String,
    /// The file it was read from.
    pub file: PathBuf,
    /// The event kinds it reacts to.
    pub on: Vec<EventKind>,
    connector: Option<GlobSet>,
    scheme: Option<GlobSet>,
    from: Vec<String>,
    to: Vec<String>,
    field: Vec<String>,
    /// The condition, as written.
    pub when: Option<String>,
    /// Who is told.
    pub notify: Vec<Recipient>,
    /// The template of the message.
    pub template: String,
    /// How much it matters.
    pub class: Class,
    /// No second alert of this rule for the same dossier and recipient within it.
    pub cooldown: Option<Duration>,
    /// Overrides the policy's debounce for step alerts.
    pub debounce: Option<Duration>,
    /// Whether its alerts may be gathered with others to the same person.
    pub digest: bool,
    /// Its messages' `From`, instead of `smtp.from` (a service's own address).
    pub sender: Option<String>,
    /// Its messages' `Reply-To`, instead of `smtp.reply_to`.
    pub reply_to: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleFile {
    #[serde(default)]
    rule: Vec<Spanned<RuleDef>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleDef {
    name: Spanned<String>,
    #[serde(default)]
    #[allow(dead_code)] // Documentation for admins only.
    description: Option<String>,
    on: Spanned<toml::Value>,
    connector: Option<Spanned<toml::Value>>,
    scheme: Option<Spanned<toml::Value>>,
    from: Option<Spanned<toml::Value>>,
    to: Option<Spanned<toml::Value>>,
    field: Option<Spanned<toml::Value>>,
    when: Option<Spanned<String>>,
    notify: Spanned<toml::Value>,
    template: Spanned<String>,
    class: Option<Spanned<String>>,
    cooldown: Option<Spanned<String>>,
    debounce: Option<Spanned<String>>,
    digest: Option<bool>,
    sender: Option<Spanned<String>>,
    reply_to: Option<Spanned<String>>,
}

/// An event on a dossier, as rules see it.
#[derive(Debug, Clone, Copy)]
pub struct Scene<'a> {
    /// The connector the dossier comes from.
    pub connector: &'a str,
    /// The dossier's page on the source portal, if known.
    pub link: Option<&'a str>,
    /// The dossier, in its state after the event.
    pub dossier: &'a Dossier,
    /// The event.
    pub event: &'a Event,
    /// What the history says of the dossier's stay in its step, when known.
    pub delay: Option<&'a crate::delays::Estimate>,
}

/// One alert an event owes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Planned<'r> {
    /// The rule that decided it.
    pub rule: &'r Rule,
    /// `beneficiary`, `instructor`, `service` or `address`.
    pub role: &'static str,
    /// The e-mail address.
    pub address: String,
    /// When it may leave.
    pub due_at: DateTime<Utc>,
    /// Debounced step alerts are cancelled if the dossier leaves this step first.
    pub hold_step: Option<String>,
}

impl PartialEq for Rule {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

impl Eq for Rule {}

/// What an event owes, and what prevented some of it.
#[derive(Debug, Default)]
pub struct Plan<'r> {
    /// The alerts to queue.
    pub alerts: Vec<Planned<'r>>,
    /// Rules that matched but had nobody to write to (no address on the dossier).
    pub unaddressed: Vec<(&'r Rule, &'static str)>,
    /// Rules whose condition failed to evaluate, with the reason.
    pub failed: Vec<(&'r Rule, String)>,
}

/// Every rule, the templates and what they need to render.
#[derive(Debug)]
pub struct Rules {
    /// The rules, in file then declaration order.
    pub rules: Vec<Rule>,
    /// The compiled templates.
    pub templates: Templates,
    /// The steps, for labels and expected pieces.
    pub lifecycle: Arc<Lifecycle>,
    /// Who signs the messages.
    pub region: Region,
    /// When alerts leave.
    pub policy: Policy,
    /// The extra fields connectors declare, with their kind, present (maybe
    /// `none`) in every context.
    extra_fields: BTreeMap<String, FieldKind>,
}

impl Rules {
    /// Reads every rule file and template, reporting every problem; then checks
    /// every template and condition against sample dossiers. `extra_fields` are
    /// the `extra.*` fields the connectors declare, with their kind
    /// ([`crate::connector::Connector::extra_fields`]).
    pub fn load(
        config: &Config,
        lifecycle: Arc<Lifecycle>,
        extra_fields: BTreeMap<String, FieldKind>,
        problems: &mut Problems,
    ) -> Option<Self> {
        let before = problems.len();
        let templates = Templates::load(
            &config.rules_dir.join(TEMPLATES_DIR),
            lifecycle.clone(),
            config.timezone,
            problems,
        );
        let mut files = match std::fs::read_dir(&config.rules_dir) {
            Ok(entries) => entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    p.extension().is_some_and(|x| x == "toml")
                        && p.is_file()
                        && !p.ends_with(lifecycle::FILE_NAME)
                })
                .collect::<Vec<_>>(),
            Err(error) => {
                problems.push(
                    &config.rules_dir,
                    format!("cannot read the rules folder: {error}"),
                );
                return None;
            }
        };
        files.sort();
        let mut templates = templates?;
        let mut rules: Vec<Rule> = Vec::new();
        for path in &files {
            let text = match std::fs::read_to_string(path) {
                Ok(text) => text,
                Err(error) => {
                    problems.push(path, format!("cannot read the rule file: {error}"));
                    continue;
                }
            };
            for rule in parse_file(path, &text, &lifecycle, &mut templates, problems) {
                if let Some(first) = rules.iter().find(|r| r.name == rule.name) {
                    problems.push(
                        path,
                        format!(
                            "rule '{}' is already declared in {}",
                            rule.name,
                            first.file.display()
                        ),
                    );
                    continue;
                }
                rules.push(rule);
            }
        }
        if config.web.public_url.is_none() {
            way_out_missing(&rules, problems);
        }
        let rules = Self {
            rules,
            templates,
            lifecycle,
            region: config.region.clone(),
            policy: config.alerts.clone(),
            extra_fields,
        };
        if problems.len() == before {
            rules.check_samples(problems);
        }
        (problems.len() == before).then_some(rules)
    }

    /// Renders every template and evaluates every condition against a complete
    /// sample dossier and a sparse one, so that a typo or a missing guard fails
    /// here rather than when sending.
    fn check_samples(&self, problems: &mut Problems) {
        let (history, lifecycle) = sample_delays();
        // Each template is rendered for the kinds of events its rules react to.
        let kinds_of = |name: &str| {
            let mut kinds: Vec<EventKind> = self
                .rules
                .iter()
                .filter(|r| r.template == name)
                .flat_map(|r| r.on.iter().copied())
                .collect();
            kinds.sort_by_key(|k| k.as_str());
            kinds.dedup();
            if kinds.is_empty() {
                kinds.push(EventKind::StepChanged);
            }
            kinds
        };
        let mut failed = std::collections::BTreeSet::new();
        for (label, complete, delay) in [
            ("a complete sample dossier", true, Some(&history)),
            (
                "a complete sample dossier whose delay comes from lifecycle.toml",
                true,
                Some(&lifecycle),
            ),
            ("a sample dossier with only an id and a step", false, None),
        ] {
            let dossier = sample_dossier(complete, &self.extra_fields);
            let mut renders = None;
            for name in self.templates.names() {
                for kind in kinds_of(name) {
                    // A template is said to fail once: the first reason is enough,
                    // and one that spent its whole budget would spend it again.
                    if failed.contains(name) {
                        continue;
                    }
                    let event = sample_event(kind, complete);
                    let scene = sample_scene(&dossier, &event, delay);
                    let ctx = self.context(&scene, Some(("beneficiary", "contact@example.org")));
                    match self.templates.render(name, &ctx) {
                        Ok(_) => {
                            renders.get_or_insert((name, ctx));
                        }
                        Err(reason) => {
                            failed.insert(name);
                            problems.push(
                                self.templates.path(name),
                                format!(
                                    "fails to render for {label} and a {} event: {reason}",
                                    kind.as_str()
                                ),
                            );
                        }
                    }
                }
            }
            // The digest, made of a template that renders on its own.
            if let Some((name, ctx)) = renders
                && let Err(reason) = self
                    .templates
                    .render_many(&[(name, ctx.clone()), (name, ctx)])
            {
                problems.push(
                    self.templates.dir.join(template::DIGEST),
                    format!("fails to render for {label}: {reason}"),
                );
            }
            for rule in self.rules.iter().filter(|r| r.when.is_some()) {
                for &kind in &rule.on {
                    let event = sample_event(kind, complete);
                    let ctx = self.context(&sample_scene(&dossier, &event, delay), None);
                    if let Err(reason) = self.templates.condition(&rule.name, &ctx) {
                        problems.push(
                            &rule.file,
                            format!(
                                "rule '{}': condition fails for {label} and a {} event: {reason}",
                                rule.name,
                                kind.as_str()
                            ),
                        );
                    }
                }
            }
        }
    }

    /// The rule with this name.
    pub fn rule(&self, name: &str) -> Option<&Rule> {
        self.rules.iter().find(|r| r.name == name)
    }

    /// The variables templates and conditions see (see `docs/rules.md`, "Templates").
    pub fn context(&self, scene: &Scene<'_>, recipient: Option<(&str, &str)>) -> Value {
        let d = scene.dossier;
        let e = scene.event;
        let lc = &self.lifecycle;
        let mut dossier: BTreeMap<String, Value> = BTreeMap::new();
        let mut groups: BTreeMap<String, BTreeMap<String, Value>> = BTreeMap::new();
        let mut put = |name: &str, value: Value| {
            // `service` is both a name and the prefix of `service.email`.
            let name = if name == "service" {
                "service.name"
            } else {
                name
            };
            match name.split_once('.') {
                Some((group, key)) => {
                    groups
                        .entry(group.to_owned())
                        .or_default()
                        .insert(key.to_owned(), value);
                }
                None => {
                    dossier.insert(name.to_owned(), value);
                }
            }
        };
        for f in model::FIELDS {
            put(f.name, field_value(f.kind, d.get(f.name)));
        }
        for name in self.extra_fields.keys() {
            put(name, Value::from(()));
        }
        for (name, value) in d
            .fields
            .iter()
            .filter(|(n, _)| n.starts_with(model::EXTRA_PREFIX))
        {
            let kind = self
                .extra_fields
                .get(name)
                .copied()
                .unwrap_or(FieldKind::Text);
            put(name, field_value(kind, Some(value)));
        }
        groups.entry("extra".to_owned()).or_default();
        for (group, map) in groups {
            dossier.insert(group, Value::from(map));
        }
        dossier.insert("id".to_owned(), Value::from(d.id.as_str()));
        dossier.insert("reference".to_owned(), Value::from(d.reference()));
        dossier.insert("connector".to_owned(), Value::from(scene.connector));
        dossier.insert("step".to_owned(), Value::from(d.step.as_str()));
        dossier.insert("step_label".to_owned(), Value::from(lc.label(&d.step)));
        dossier.insert("status".to_owned(), Value::from(d.status.as_str()));
        let opt = |v: &Option<String>| Value::from(v.clone());
        let label = |v: &Option<String>| Value::from(v.as_deref().map(|s| lc.label(s).to_owned()));
        let deleted = e.kind == EventKind::Disappeared
            && e.field.as_deref() == Some(model::DELETED_ON_SOURCE);
        let link = link_for_role(scene, recipient.map(|(role, _)| role));
        let event = minijinja::context! {
            kind => e.kind.as_str(),
            from => opt(&e.from_step),
            from_label => label(&e.from_step),
            to => opt(&e.to_step),
            to_label => label(&e.to_step),
            field => opt(&e.field),
            old => opt(&e.old_value),
            new => opt(&e.new_value),
            occurred_at => crate::model::instant_text(e.occurred_at),
            notified_by_source => e.notified_by_source,
            // A `disappeared` the source stated (DS's deletions), with its reason.
            deleted_on_source => deleted,
            reason => deleted.then(|| e.new_value.clone()).flatten(),
            // A deadline's label in lifecycle.toml ("la date limite des justificatifs").
            label => matches!(e.kind, EventKind::Deadline | EventKind::Review)
                .then_some(e.field.as_deref())
                .flatten()
                .and_then(|f| lc.deadlines.iter().find(|d| d.field == f))
                .map(|d| d.label.clone()),
        };
        let current = lc.step(&d.step);
        let step = minijinja::context! {
            id => d.step.as_str(),
            label => lc.label(&d.step),
            final => current.is_some_and(|s| s.is_final),
            expected_duration => current.and_then(|s| s.expected_duration).map(|d| d.as_secs()),
            pieces => lc.pieces(&d.step, d.get("scheme")).to_vec(),
            next => lc.next(&d.step).iter().map(|s| minijinja::context! {
                id => s.id.as_str(), label => s.label.as_str()
            }).collect::<Vec<_>>(),
        };
        let recipient = recipient.map(|(role, address)| {
            minijinja::context! { role => role, address => address }
        });
        minijinja::context! {
            dossier => dossier,
            event => event,
            step => step,
            delay => scene.delay.map(|e| Value::from(minijinja::value::Serde(e))),
            // The configuration's own links may become links in the HTML part;
            // the export's text never does (see `template::DATA_START`).
            link => link.map(|l| Value::from_safe_string(l.to_owned())),
            region => minijinja::context! {
                website => self.region.website.clone().map(Value::from_safe_string),
                ..Value::from(minijinja::value::Serde(&self.region))
            },
            recipient => recipient,
        }
    }

    /// The rules that apply to a connector, so that the connector globs are
    /// matched once per import rather than once per event.
    pub fn for_connector(&self, connector: &str) -> Vec<&Rule> {
        self.rules
            .iter()
            .filter(|r| r.connector.as_ref().is_none_or(|g| g.is_match(connector)))
            .collect()
    }

    /// The alerts an event owes (pure: `now` decides the timing).
    ///
    /// `rules` is [`Rules::for_connector`] for the scene's connector.
    pub fn plan<'r>(&self, rules: &[&'r Rule], scene: &Scene<'_>, now: DateTime<Utc>) -> Plan<'r> {
        let mut plan = Plan::default();
        let mut ctx: Option<Value> = None;
        let mut times: Vec<(Duration, bool, DateTime<Utc>)> = Vec::new();
        for &rule in rules {
            if !rule.matches(scene) {
                continue;
            }
            if rule.when.is_some() {
                let ctx = ctx.get_or_insert_with(|| self.context(scene, None));
                match self.templates.condition(&rule.name, ctx) {
                    Ok(true) => {}
                    Ok(false) => continue,
                    Err(reason) => {
                        plan.failed.push((rule, reason));
                        continue;
                    }
                }
            }
            let step_alert = matches!(
                scene.event.kind,
                EventKind::Created | EventKind::StepChanged
            );
            let debounce = if step_alert {
                rule.debounce.unwrap_or(self.policy.debounce)
            } else {
                Duration::ZERO
            };
            // Rules mostly share their timing: compute each distinct one once.
            let due_at = match times
                .iter()
                .find(|(d, g, _)| *d == debounce && *g == rule.digest)
            {
                Some(&(_, _, due)) => due,
                None => {
                    let due = self.policy.due_at(now, debounce, rule.digest);
                    times.push((debounce, rule.digest, due));
                    due
                }
            };
            let hold_step = (step_alert && !debounce.is_zero())
                .then(|| scene.event.to_step.clone())
                .flatten();
            for recipient in &rule.notify {
                let addresses = recipient.addresses(scene.dossier);
                if addresses.is_empty() {
                    plan.unaddressed.push((rule, recipient.role()));
                }
                for address in addresses {
                    let duplicate = plan
                        .alerts
                        .iter()
                        .any(|a| a.rule == rule && a.address.eq_ignore_ascii_case(address));
                    if !duplicate {
                        plan.alerts.push(Planned {
                            rule,
                            role: recipient.role(),
                            address: address.to_owned(),
                            due_at,
                            hold_step: hold_step.clone(),
                        });
                    }
                }
            }
        }
        plan
    }

    /// Whether a rule fires for a scene: its filters, its connector globs and its
    /// condition all accept it.
    pub fn fires(&self, rule: &Rule, scene: &Scene<'_>) -> bool {
        rule.connector
            .as_ref()
            .is_none_or(|g| g.is_match(scene.connector))
            && rule.matches(scene)
            && (rule.when.is_none()
                || self
                    .templates
                    .condition(&rule.name, &self.context(scene, None))
                    .unwrap_or(false))
    }

    /// Renders the message of one rule for one scene and recipient.
    ///
    /// # Errors
    /// When rendering fails (which `check` makes unlikely).
    pub fn render(
        &self,
        rule: &Rule,
        scene: &Scene<'_>,
        role: &str,
        address: &str,
    ) -> Result<Message, String> {
        let ctx = self.context(scene, Some((role, address)));
        self.templates.render(&rule.template, &ctx)
    }
}

impl Rule {
    /// Whether the event passes the rule's filters (all but the condition and the
    /// connector, matched by [`Rules::for_connector`]).
    fn matches(&self, scene: &Scene<'_>) -> bool {
        let e = scene.event;
        let listed = |list: &[String], value: &Option<String>| {
            list.is_empty() || value.as_ref().is_some_and(|v| list.contains(v))
        };
        self.on.contains(&e.kind)
            && listed(&self.from, &e.from_step)
            && listed(&self.to, &e.to_step)
            && listed(&self.field, &e.field)
            && self
                .scheme
                .as_ref()
                .is_none_or(|g| scene.dossier.get("scheme").is_some_and(|s| g.is_match(s)))
    }
}

/// A stored field value as templates see it: amounts as numbers, the rest as text.
fn field_value(kind: FieldKind, value: Option<&str>) -> Value {
    match (kind, value) {
        (_, None) => Value::from(()),
        (FieldKind::Amount, Some(v)) => v
            .parse::<f64>()
            .map_or_else(|_| Value::from(v), Value::from),
        (_, Some(v)) => Value::from(v),
    }
}

/// Why a debounced alert is not sent: its dossier left the step it was about and
/// is now in the step labelled `now_in`.
pub fn left_step(now_in: &str) -> String {
    format!("le dossier a quitté l'étape avant l'envoi (désormais : {now_in})")
}

/// Reports every informational rule: without `[web] public_url`, its messages
/// could not carry the way out that informational messages must have.
fn way_out_missing(rules: &[Rule], problems: &mut Problems) {
    for rule in rules.iter().filter(|r| r.class == Class::Informational) {
        problems.push(
            &rule.file,
            format!(
                "rule '{}' is informational: its messages must carry a way out: set [web] public_url and [web] listen",
                rule.name
            ),
        );
    }
}

/// A string or a list of strings, with the span of the whole value.
fn strings(value: &Spanned<toml::Value>, key: &str, fp: &mut FileProblems<'_>) -> Vec<String> {
    match value.get_ref() {
        toml::Value::String(s) => vec![s.clone()],
        toml::Value::Array(items) if items.iter().all(toml::Value::is_str) => items
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
        _ => {
            fp.at(
                value.span(),
                format!("`{key}` must be a string or a list of strings"),
            );
            Vec::new()
        }
    }
}

fn globs(
    value: Option<&Spanned<toml::Value>>,
    key: &str,
    fp: &mut FileProblems<'_>,
) -> Option<GlobSet> {
    let value = value?;
    let mut builder = GlobSetBuilder::new();
    for pattern in strings(value, key, fp) {
        match Glob::new(&pattern) {
            Ok(g) => {
                builder.add(g);
            }
            Err(error) => fp.at(
                value.span(),
                format!("`{key}`: '{pattern}' is not a valid glob: {error}"),
            ),
        }
    }
    builder.build().ok()
}

fn parse_file(
    path: &Path,
    text: &str,
    lifecycle: &Lifecycle,
    templates: &mut Templates,
    problems: &mut Problems,
) -> Vec<Rule> {
    let mut fp = FileProblems::new(path, text, problems);
    let Some(file) = fp.parse::<RuleFile>() else {
        return Vec::new();
    };
    if file.rule.is_empty() {
        fp.file("the file declares no [[rule]]");
    }
    let mut rules = Vec::new();
    for def in file.rule {
        let span = def.span();
        let def = def.into_inner();
        let before = fp.count();
        let name = def.name.get_ref().clone();
        let named = |m: String| format!("rule '{name}': {m}");
        if !name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
            || name.is_empty()
        {
            fp.at(
                def.name.span(),
                named("the name must use only a-z, 0-9, - and _".to_owned()),
            );
        }
        let mut on = Vec::new();
        for kind in strings(&def.on, "on", &mut fp) {
            match EventKind::parse(&kind).filter(|k| k.alerts()) {
                Some(k) => on.push(k),
                None => fp.at(
                    def.on.span(),
                    named(format!(
                        "unknown event '{kind}', expected one of {}",
                        EventKind::ALL.map(|k| format!("\"{k}\"")).join(", ")
                    )),
                ),
            }
        }
        let steps = |value: &Option<Spanned<toml::Value>>, key: &str, fp: &mut FileProblems<'_>| {
            let Some(value) = value else {
                return Vec::new();
            };
            let list = strings(value, key, fp);
            for id in &list {
                if lifecycle.step(id).is_none() {
                    let hint = lifecycle
                        .closest(id)
                        .map(|c| format!(" (did you mean '{c}'?)"))
                        .unwrap_or_default();
                    fp.at(
                        value.span(),
                        named(format!("`{key}`: unknown step '{id}'{hint}")),
                    );
                }
            }
            list
        };
        let from = steps(&def.from, "from", &mut fp);
        let to = steps(&def.to, "to", &mut fp);
        let field = def
            .field
            .as_ref()
            .map(|v| strings(v, "field", &mut fp))
            .unwrap_or_default();
        if let Some(value) = &def.field {
            for f in &field {
                if model::field(f).is_none() && !f.starts_with(model::EXTRA_PREFIX) {
                    let hint = crate::diag::closest(f, model::FIELDS.iter().map(|f| f.name))
                        .map(|c| format!(" (did you mean '{c}'?)"))
                        .unwrap_or_default();
                    fp.at(
                        value.span(),
                        named(format!("`field`: unknown field '{f}'{hint}")),
                    );
                }
            }
        }
        if !from.is_empty()
            && !on
                .iter()
                .all(|k| matches!(k, EventKind::StepChanged | EventKind::Stalled))
        {
            fp.at(
                span.clone(),
                named("`from` only applies to step_changed and stalled events".to_owned()),
            );
        }
        if !field.is_empty()
            && !on
                .iter()
                .all(|k| matches!(k, EventKind::FieldChanged | EventKind::Deadline))
        {
            fp.at(
                span.clone(),
                named("`field` only applies to field_changed and deadline events".to_owned()),
            );
        }
        let connector = globs(def.connector.as_ref(), "connector", &mut fp);
        let scheme = globs(def.scheme.as_ref(), "scheme", &mut fp);
        let mut notify = Vec::new();
        for who in strings(&def.notify, "notify", &mut fp) {
            notify.push(match who.as_str() {
                "beneficiary" => Recipient::Beneficiary,
                "instructor" => Recipient::Instructor,
                "service" => Recipient::Service,
                address => match crate::value::parse_emails(address) {
                    Ok(list) if list.len() == 1 => Recipient::Address(list[0].clone()),
                    _ => {
                        fp.at(
                            def.notify.span(),
                            named(format!(
                                "`notify`: '{who}' is neither beneficiary, instructor, service nor an e-mail address"
                            )),
                        );
                        continue;
                    }
                },
            });
        }
        if notify.is_empty() && fp.count() == before {
            fp.at(def.notify.span(), named("`notify` names nobody".to_owned()));
        }
        if !templates.has(def.template.get_ref()) {
            let hint = crate::diag::closest(
                def.template.get_ref(),
                templates.names().iter().map(String::as_str),
            )
            .map(|c| format!(" (did you mean '{c}'?)"))
            .unwrap_or_default();
            fp.at(
                def.template.span(),
                named(format!(
                    "no template '{}' in {}{hint}",
                    def.template.get_ref(),
                    templates.dir.display()
                )),
            );
        }
        let class = match def.class.as_ref().map(|c| c.get_ref().as_str()) {
            None | Some("mandatory") => Class::Mandatory,
            Some("informational") => Class::Informational,
            Some(other) => {
                let span = def.class.as_ref().map(Spanned::span).unwrap_or_default();
                fp.at(
                    span,
                    named(format!(
                        "class '{other}' is not \"mandatory\" nor \"informational\""
                    )),
                );
                Class::Mandatory
            }
        };
        let mut duration = |value: &Option<Spanned<String>>, key: &str, max| {
            value.as_ref().and_then(|v| {
                crate::diag::parse_duration_at_most(v.get_ref(), max)
                    .map_err(|reason| fp.at(v.span(), named(format!("`{key}`: {reason}"))))
                    .ok()
            })
        };
        let cooldown = duration(&def.cooldown, "cooldown", crate::diag::MAX_DURATION);
        let debounce = duration(&def.debounce, "debounce", timing::MAX_DEBOUNCE);
        let mut mailbox = |value: &Option<Spanned<String>>, key: &str| {
            value.as_ref().and_then(|v| {
                v.get_ref()
                    .parse::<lettre::message::Mailbox>()
                    .map(|_| v.get_ref().clone())
                    .map_err(|_| {
                        fp.at(
                            v.span(),
                            named(format!(
                                "`{key}`: '{}' is not an address like \"Service culture <culture@region.example.org>\"",
                                v.get_ref()
                            )),
                        )
                    })
                    .ok()
            })
        };
        let sender = mailbox(&def.sender, "sender");
        let reply_to = mailbox(&def.reply_to, "reply_to");
        if let Some(when) = &def.when
            && let Err(reason) = templates.add_condition(&name, when.get_ref())
        {
            fp.at(
                when.span(),
                named(format!("the condition does not compile: {reason}")),
            );
        }
        if fp.count() == before {
            rules.push(Rule {
                name,
                file: path.to_owned(),
                on,
                connector,
                scheme,
                from,
                to,
                field,
                when: def.when.map(Spanned::into_inner),
                notify,
                template: def.template.into_inner(),
                class,
                cooldown,
                debounce,
                digest: def.digest.unwrap_or(true),
                sender,
                reply_to,
            });
        }
    }
    rules
}

/// The dossier's link as `role` sees it: the Region's staff (`instructor`,
/// `service`) get the dossier's `instructor.url` when it has one (DS's page for
/// instructeurs), everyone else the scene's link (DS's page for the usager: a
/// beneficiary cannot open the instructeurs' one).
fn link_for_role<'a>(scene: &Scene<'a>, role: Option<&str>) -> Option<&'a str> {
    let staff = matches!(role, Some("instructor" | "service"));
    staff
        .then(|| scene.dossier.get("instructor.url"))
        .flatten()
        .or(scene.link)
}

/// A dossier for checking templates: every canonical field filled, or none.
pub fn sample_dossier(complete: bool, extra: &BTreeMap<String, FieldKind>) -> Dossier {
    let sample = |name: &str, kind: FieldKind| match kind {
        FieldKind::Text => match name {
            "url" => "https://portail.example.org/dossiers/AR-24-000123".to_owned(),
            "instructor.url" => {
                "https://portail.example.org/instruction/dossiers/AR-24-000123".to_owned()
            }
            "reference" => "AR-24-000123".to_owned(),
            _ => "Association Les Jardins partagés".to_owned(),
        },
        FieldKind::Date => "2024-03-12".to_owned(),
        FieldKind::Instant => "2024-03-12T09:30:00Z".to_owned(),
        FieldKind::Amount => "26956.00".to_owned(),
        FieldKind::Siret => "73282932000074".to_owned(),
        FieldKind::Emails => "contact@example.org".to_owned(),
    };
    let mut fields = BTreeMap::new();
    if complete {
        for f in model::FIELDS {
            fields.insert(f.name.to_owned(), sample(f.name, f.kind));
        }
        for (name, kind) in extra {
            fields.insert(name.clone(), sample(name, *kind));
        }
    }
    Dossier {
        id: "AR-24-000123".to_owned(),
        step: "instruction".to_owned(),
        status: "En cours d'instruction".to_owned(),
        fields,
    }
}

/// Two estimates for the samples: one from a scheme's history (every figure
/// known), one from the lifecycle's expected duration.
fn sample_delays() -> (crate::delays::Estimate, crate::delays::Estimate) {
    use crate::delays::{Basis, Estimate};
    const DAY: i64 = 86_400;
    let history = Estimate {
        basis: Basis::Scheme,
        sample: 312,
        median: Some(24 * DAY),
        p80: Some(33 * DAY),
        p90: Some(40 * DAY),
        elapsed: 3 * DAY,
        remaining: Some(21 * DAY),
        low: Some(8 * DAY),
        high: Some(37 * DAY),
        overdue: false,
    };
    let lifecycle = Estimate {
        basis: Basis::Lifecycle,
        sample: 0,
        median: Some(42 * DAY),
        p80: None,
        p90: None,
        elapsed: 3 * DAY,
        remaining: Some(39 * DAY),
        low: None,
        high: None,
        overdue: false,
    };
    (history, lifecycle)
}

fn sample_scene<'a>(
    dossier: &'a Dossier,
    event: &'a Event,
    delay: Option<&'a crate::delays::Estimate>,
) -> Scene<'a> {
    Scene {
        connector: "sample",
        link: Some("https://portail.example.org/dossiers/AR-24-000123"),
        dossier,
        event,
        delay,
    }
}

/// A sample event of `kind`; `complete` adds what a step change may carry.
fn sample_event(kind: EventKind, complete: bool) -> Event {
    let at = DateTime::parse_from_rfc3339("2024-03-12T09:30:00Z")
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_default();
    let mut event = Event::new(kind, at);
    let step = || Some("instruction".to_owned());
    match kind {
        EventKind::Created | EventKind::Reappeared => event.to_step = step(),
        EventKind::StepChanged => {
            event.to_step = step();
            if complete {
                event.from_step = Some("complet".to_owned());
                event.field = Some("amount_granted".to_owned());
                event.old_value = Some("20000.00".to_owned());
                event.new_value = Some("26956.00".to_owned());
            }
        }
        EventKind::FieldChanged => {
            event.field = Some("amount_granted".to_owned());
            event.old_value = complete.then(|| "20000.00".to_owned());
            event.new_value = Some("26956.00".to_owned());
        }
        EventKind::Disappeared => {
            event.from_step = step();
            if complete {
                event.field = Some(model::DELETED_ON_SOURCE.to_owned());
                event.new_value = Some("user_request".to_owned());
            }
        }
        EventKind::Stalled => {
            event.from_step = step();
            event.new_value = Some("p90".to_owned());
        }
        EventKind::Deadline => {
            event.field = Some("justification_due".to_owned());
            event.old_value = Some("2024-04-12".to_owned());
            event.new_value = Some("30".to_owned());
        }
        EventKind::Review => {
            event.from_step = step();
            if complete {
                event.field = Some("justification_due".to_owned());
                event.old_value = Some("2024-04-12".to_owned());
                event.new_value = Some("stalled".to_owned());
            }
        }
        EventKind::Message => {
            event.field = Some("contact@example.org".to_owned());
            event.new_value = Some("Bonjour".to_owned());
        }
    }
    event
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::utc;

    /// A rules folder with the shipped lifecycle and templates and `rules` as its
    /// only rule file; the configuration sends at any time after `debounce`.
    fn setup(rules: &str, alerts: &str) -> (tempfile::TempDir, Result<Rules, Problems>) {
        let dir = tempfile::tempdir().unwrap();
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("rules");
        let root = dir.path();
        std::fs::create_dir_all(root.join("rules/templates")).unwrap();
        std::fs::copy(
            repo.join("lifecycle.toml"),
            root.join("rules/lifecycle.toml"),
        )
        .unwrap();
        for entry in std::fs::read_dir(repo.join("templates")).unwrap() {
            let path = entry.unwrap().path();
            std::fs::copy(
                &path,
                root.join("rules/templates").join(path.file_name().unwrap()),
            )
            .unwrap();
        }
        std::fs::write(root.join("rules/test.toml"), rules).unwrap();
        std::fs::write(
            root.join("config.toml"),
            format!("rules_dir = \"rules\"\n[alerts]\n{alerts}\n"),
        )
        .unwrap();
        let config = Config::load(Some(&root.join("config.toml"))).unwrap();
        let mut problems = Problems::default();
        let lifecycle =
            Lifecycle::load(&config.lifecycle_path(), &mut problems).expect("shipped lifecycle");
        let rules = Rules::load(
            &config,
            Arc::new(lifecycle),
            Default::default(),
            &mut problems,
        );
        (dir, rules.ok_or(problems))
    }

    fn dossier(step: &str, fields: &[(&str, &str)]) -> Dossier {
        Dossier {
            id: "D1".to_owned(),
            step: step.to_owned(),
            status: step.to_owned(),
            fields: fields
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        }
    }

    fn step_changed(from: &str, to: &str) -> Event {
        let mut e = Event::new(EventKind::StepChanged, utc("2026-03-10T09:00:00Z"));
        e.from_step = Some(from.to_owned());
        e.to_step = Some(to.to_owned());
        e
    }

    fn fired(rules: &Rules, connector: &str, d: &Dossier, e: &Event) -> Vec<(String, String)> {
        let applicable = rules.for_connector(connector);
        let scene = Scene {
            connector,
            link: None,
            dossier: d,
            event: e,
            delay: None,
        };
        let plan = rules.plan(&applicable, &scene, utc("2026-03-10T09:00:00Z"));
        assert!(plan.failed.is_empty(), "{:?}", plan.failed);
        plan.alerts
            .iter()
            .map(|a| (a.rule.name.clone(), a.address.clone()))
            .collect()
    }

    const RULES: &str = r#"
        [[rule]]
        name = "vers-instruction"
        on = "step_changed"
        to = "instruction"
        notify = ["beneficiary", "suivi@example.org"]
        template = "en_instruction"

        [[rule]]
        name = "gros-montant"
        on = ["step_changed"]
        to = ["accorde"]
        scheme = "Aide à l'export*"
        connector = "portail-*"
        when = "dossier.amount_granted and dossier.amount_granted > 23000"
        notify = ["instructor"]
        template = "aide_accordee"
        class = "informational"

        [[rule]]
        name = "montant"
        on = "field_changed"
        field = "amount_granted"
        notify = "beneficiary"
        template = "montant_modifie"
        digest = false
    "#;

    #[test]
    fn filters_select_the_events_and_recipients() {
        let (_dir, rules) = setup(RULES, "send_windows = []");
        let rules = rules.unwrap_or_else(|p| panic!("{p}"));
        let d = dossier(
            "instruction",
            &[("beneficiary.email", "a@example.org, b@example.org")],
        );
        assert_eq!(
            fired(
                &rules,
                "portail-aides",
                &d,
                &step_changed("complet", "instruction")
            ),
            [
                ("vers-instruction".to_owned(), "a@example.org".to_owned()),
                ("vers-instruction".to_owned(), "b@example.org".to_owned()),
                (
                    "vers-instruction".to_owned(),
                    "suivi@example.org".to_owned()
                ),
            ]
        );
        // Another step: nothing.
        assert!(
            fired(
                &rules,
                "portail-aides",
                &d,
                &step_changed("depose", "complet")
            )
            .is_empty()
        );
        // The created event is not a step change.
        let mut created = Event::new(EventKind::Created, utc("2026-03-10T09:00:00Z"));
        created.to_step = Some("instruction".to_owned());
        assert!(fired(&rules, "portail-aides", &d, &created).is_empty());
    }

    #[test]
    fn a_rule_can_leave_what_the_source_e_mailed_to_it() {
        let text = "[[rule]]\nname = \"decision\"\non = \"step_changed\"\nwhen = \"not event.notified_by_source\"\nnotify = \"beneficiary\"\ntemplate = \"en_instruction\"\n";
        let (_dir, rules) = setup(text, "send_windows = []");
        let rules = rules.unwrap_or_else(|p| panic!("{p}"));
        let d = dossier("instruction", &[("beneficiary.email", "a@example.org")]);
        let mut event = step_changed("complet", "instruction");
        assert_eq!(fired(&rules, "demarches-simplifiees", &d, &event).len(), 1);
        event.notified_by_source = true;
        assert!(fired(&rules, "demarches-simplifiees", &d, &event).is_empty());
    }

    #[test]
    fn scheme_connector_and_condition_must_all_match() {
        let (_dir, rules) = setup(RULES, "send_windows = []");
        let rules = rules.unwrap_or_else(|p| panic!("{p}"));
        let event = step_changed("commission", "accorde");
        let big = dossier(
            "accorde",
            &[
                ("scheme", "Aide à l'export 2026"),
                ("amount_granted", "30000.00"),
                ("instructor.email", "instr@example.org"),
            ],
        );
        assert_eq!(
            fired(&rules, "portail-aides", &big, &event),
            [("gros-montant".to_owned(), "instr@example.org".to_owned())]
        );
        assert!(
            fired(&rules, "scdl", &big, &event).is_empty(),
            "connector glob"
        );
        let mut small = big.clone();
        small
            .fields
            .insert("amount_granted".to_owned(), "23000.00".to_owned());
        assert!(
            fired(&rules, "portail-aides", &small, &event).is_empty(),
            "condition"
        );
        let mut none = big.clone();
        none.fields.remove("amount_granted");
        assert!(
            fired(&rules, "portail-aides", &none, &event).is_empty(),
            "absent amount"
        );
        let mut other = big.clone();
        other
            .fields
            .insert("scheme".to_owned(), "Culture".to_owned());
        assert!(
            fired(&rules, "portail-aides", &other, &event).is_empty(),
            "scheme glob"
        );
    }

    #[test]
    fn a_dossier_without_address_is_reported_not_dropped_silently() {
        let (_dir, rules) = setup(RULES, "send_windows = []");
        let rules = rules.unwrap_or_else(|p| panic!("{p}"));
        let d = dossier("instruction", &[]);
        let applicable = rules.for_connector("x");
        let event = step_changed("complet", "instruction");
        let scene = Scene {
            connector: "x",
            link: None,
            dossier: &d,
            event: &event,
            delay: None,
        };
        let plan = rules.plan(&applicable, &scene, utc("2026-03-10T09:00:00Z"));
        // The fixed address still gets it; the beneficiary has none.
        assert_eq!(plan.alerts.len(), 1);
        assert_eq!(plan.unaddressed.len(), 1);
        assert_eq!(plan.unaddressed[0].1, "beneficiary");
    }

    #[test]
    fn timing_debounce_holds_step_alerts_only() {
        let (_dir, rules) = setup(
            RULES,
            "debounce = \"30m\"\nsend_windows = [\"mon-fri 08:00-19:00\"]",
        );
        let rules = rules.unwrap_or_else(|p| panic!("{p}"));
        let applicable = rules.for_connector("x");
        let d = dossier(
            "instruction",
            &[
                ("beneficiary.email", "a@example.org"),
                ("amount_granted", "100.00"),
            ],
        );
        let event = step_changed("complet", "instruction");
        let scene = Scene {
            connector: "x",
            link: None,
            dossier: &d,
            event: &event,
            delay: None,
        };
        // Tuesday 10 March 2026, 18:45 Paris: +30 min is past 19:00, so Wednesday 08:00.
        let plan = rules.plan(&applicable, &scene, utc("2026-03-10T17:45:00Z"));
        assert_eq!(plan.alerts[0].due_at, utc("2026-03-11T07:00:00Z"));
        assert_eq!(plan.alerts[0].hold_step.as_deref(), Some("instruction"));
        // A field change is not held.
        let mut change = Event::new(EventKind::FieldChanged, utc("2026-03-10T09:00:00Z"));
        change.field = Some("amount_granted".to_owned());
        let scene = Scene {
            event: &change,
            ..scene
        };
        let plan = rules.plan(&applicable, &scene, utc("2026-03-10T09:00:00Z"));
        assert_eq!(plan.alerts[0].due_at, utc("2026-03-10T09:00:00Z"));
        assert_eq!(plan.alerts[0].hold_step, None);
    }

    #[test]
    fn every_rule_problem_is_reported_with_its_line() {
        let text = "[[rule]]\nname = \"Bad Name\"\non = \"moved\"\nto = \"instrucion\"\nnotify = [\"boss\"]\ntemplate = \"en_instrucion\"\nclass = \"urgent\"\ncooldown = \"soon\"\n\n[[rule]]\nname = \"cond\"\non = \"created\"\nwhen = \"dossier.amount_granted >\"\nnotify = \"beneficiary\"\ntemplate = \"depot_recu\"\n\n[[rule]]\nname = \"typo\"\non = \"created\"\nwhen = \"dossier.amount_grnted\"\nnotify = \"beneficiary\"\ntemplate = \"depot_recu\"\n";
        let (_dir, rules) = setup(text, "");
        let problems = rules.unwrap_err().to_string();
        for needle in [
            "test.toml:2:8: rule 'Bad Name': the name must use only",
            "test.toml:3:6: rule 'Bad Name': unknown event 'moved'",
            "test.toml:4:6: rule 'Bad Name': `to`: unknown step 'instrucion' (did you mean 'instruction'?)",
            "test.toml:5:10: rule 'Bad Name': `notify`: 'boss' is neither",
            "test.toml:6:12: rule 'Bad Name': no template 'en_instrucion'",
            "(did you mean 'en_instruction'?)",
            "test.toml:7:9: rule 'Bad Name': class 'urgent'",
            "test.toml:8:12: rule 'Bad Name': `cooldown`: 'soon' is not a duration",
            "test.toml:13:8: rule 'cond': the condition does not compile: line 1: unexpected end of input",
        ] {
            assert!(
                problems.contains(needle),
                "missing {needle:?} in:\n{problems}"
            );
        }
    }

    #[test]
    fn a_condition_naming_an_unknown_field_fails_on_the_samples() {
        let text = "[[rule]]\nname = \"typo\"\non = \"created\"\nwhen = \"dossier.amount_grnted > 1\"\nnotify = \"beneficiary\"\ntemplate = \"depot_recu\"\n";
        let (_dir, rules) = setup(text, "");
        let problems = rules.unwrap_err().to_string();
        assert!(
            problems.contains("rule 'typo': condition fails for a complete sample dossier")
                && problems.contains("undefined"),
            "{problems}"
        );
    }

    #[test]
    fn unknown_keys_and_duplicate_names_are_errors() {
        let text = "[[rule]]\nname = \"a\"\non = \"created\"\nnotify = \"beneficiary\"\ntemplate = \"depot_recu\"\nrecipients = []\n";
        let (_dir, rules) = setup(text, "");
        let problems = rules.unwrap_err().to_string();
        assert!(
            problems.contains("unknown field `recipients`"),
            "{problems}"
        );
        assert!(problems.contains("line 6"), "{problems}");
        let text = "[[rule]]\nname = \"a\"\non = \"created\"\nnotify = \"beneficiary\"\ntemplate = \"depot_recu\"\n[[rule]]\nname = \"a\"\non = \"created\"\nnotify = \"beneficiary\"\ntemplate = \"depot_recu\"\n";
        let (_dir, rules) = setup(text, "");
        let problems = rules.unwrap_err().to_string();
        assert!(
            problems.contains("rule 'a' is already declared"),
            "{problems}"
        );
    }

    #[test]
    fn a_template_typo_fails_at_load() {
        let (dir, _) = setup(RULES, "");
        let templates = dir.path().join("rules/templates");
        std::fs::write(
            templates.join("en_instruction.jinja"),
            "{% block subject %}Dossier {{ dossier.referense }}{% endblock %}{% block body %}x{% endblock %}",
        )
        .unwrap();
        std::fs::write(
            templates.join("broken.jinja"),
            "{% block subject %}{% if %}{% endblock %}",
        )
        .unwrap();
        let config = Config::load(Some(&dir.path().join("config.toml"))).unwrap();
        let mut problems = Problems::default();
        let lifecycle = Lifecycle::load(&config.lifecycle_path(), &mut problems).unwrap();
        assert!(
            Rules::load(
                &config,
                Arc::new(lifecycle),
                Default::default(),
                &mut problems
            )
            .is_none()
        );
        let text = problems.to_string();
        assert!(text.contains("broken.jinja: line 1"), "{text}");
        // The syntax error stops loading before the samples; fix it and the typo shows.
        std::fs::remove_file(templates.join("broken.jinja")).unwrap();
        let mut problems = Problems::default();
        let lifecycle = Lifecycle::load(&config.lifecycle_path(), &mut problems).unwrap();
        assert!(
            Rules::load(
                &config,
                Arc::new(lifecycle),
                Default::default(),
                &mut problems
            )
            .is_none()
        );
        let text = problems.to_string();
        assert!(
            text.contains("en_instruction.jinja: fails to render for a complete sample dossier and a step_changed event")
                && text.contains("undefined"),
            "{text}"
        );
    }

    #[test]
    fn several_alerts_to_one_person_make_one_digest() {
        let (_dir, rules) = setup(RULES, "send_windows = []");
        let rules = rules.unwrap_or_else(|p| panic!("{p}"));
        let event = step_changed("complet", "instruction");
        let mut items = Vec::new();
        for (id, title) in [("D1", "Festival d'été"), ("D2", "Atelier vélo")] {
            let mut d = dossier(
                "instruction",
                &[
                    ("beneficiary.email", "a@example.org"),
                    ("reference", id),
                    ("title", title),
                ],
            );
            d.id = id.to_owned();
            let scene = Scene {
                connector: "x",
                link: None,
                dossier: &d,
                event: &event,
                delay: None,
            };
            items.push((
                "en_instruction",
                rules.context(&scene, Some(("beneficiary", "a@example.org"))),
            ));
        }
        let message = rules.templates.render_many(&items).unwrap();
        assert!(message.text.contains("Festival d'été"), "{}", message.text);
        assert!(message.text.contains("Atelier vélo"), "{}", message.text);
        assert!(message.subject.contains('2'), "{}", message.subject);
        assert!(!message.subject.contains('\n'));
    }

    /// The message of the rule `vers-instruction` to the beneficiary of a
    /// dossier with `fields`, moved from complet to instruction.
    fn into_instruction(
        fields: &[(&str, &str)],
        link: Option<&str>,
    ) -> crate::rules::template::Message {
        let (_dir, rules) = setup(RULES, "send_windows = []");
        let rules = rules.unwrap_or_else(|p| panic!("{p}"));
        let d = dossier("instruction", fields);
        let event = step_changed("complet", "instruction");
        let scene = Scene {
            connector: "x",
            link,
            dossier: &d,
            event: &event,
            delay: None,
        };
        let rule = rules.rule("vers-instruction").unwrap();
        rules
            .render(rule, &scene, "beneficiary", "a@example.org")
            .unwrap()
    }

    #[test]
    fn data_cannot_break_the_subject_or_the_html() {
        let m = into_instruction(
            &[
                ("reference", "AR-1\r\nBcc: victim@example.org"),
                ("title", "<script>alert(1)</script>"),
                ("scheme", "Culture & <b>Patrimoine</b>"),
            ],
            None,
        );
        assert!(
            !m.subject.contains('\r') && !m.subject.contains('\n'),
            "{:?}",
            m.subject
        );
        assert!(
            !m.html.contains("<script>") && !m.html.contains("<b>Patrimoine"),
            "{}",
            m.html
        );
        assert!(m.html.contains("&lt;b&gt;Patrimoine"), "{}", m.html);
    }

    /// Regression: text from an export made links in the HTML part (a
    /// beneficiary's title could put a link in the Region's e-mail). Only the
    /// links the configuration gives (the dossier's address) become links.
    #[test]
    fn only_the_configurations_links_are_clickable() {
        let m = into_instruction(
            &[
                ("reference", "AR-1"),
                ("title", "Gagnez un prix sur https://evil.example/win"),
                ("beneficiary.name", "Asso http://phish.example/x"),
            ],
            Some("https://portail.example.org/dossiers/AR-1"),
        );
        assert!(m.html.contains("evil.example/win"), "{}", m.html);
        assert!(!m.html.contains("href=\"https://evil"), "{}", m.html);
        assert!(!m.html.contains("href=\"http://phish"), "{}", m.html);
        assert!(
            m.html
                .contains("<a href=\"https://portail.example.org/dossiers/AR-1\">"),
            "{}",
            m.html
        );
        // The text part carries no marks.
        assert!(!m.text.contains(['\u{E000}', '\u{E001}']), "{}", m.text);
        assert!(m.text.contains("https://evil.example/win"), "{}", m.text);
    }
}
