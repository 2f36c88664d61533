//! Rules: who is told what, for which events.
//!
//! Owns the rule files `rules/*.toml` (every TOML file of the rules folder but
//! `lifecycle.toml`): their strict parsing and validation with `file:line:column`,
//! and the pure decision of which alerts an event owes: [`Rules::plan`] matches an
//! event on a dossier against every rule (kinds, connector and scheme globs,
//! steps, fields, then the optional condition) and resolves the recipients and the
//! timing of each alert. Nothing here does I/O after loading; `now` is an argument.
//!
//! Submodules: [`template`] (the messages), `french` (filters). When alerts
//! leave is `crate::timing`'s; the rule test cases are `crate::cases`'s.
//!
//! Here: [`Rules`], its loading and [`Rules::plan`]; in `file.rs`, the parsing of
//! one rule file; in `context.rs`, what templates and conditions see of a
//! dossier; in `samples.rs`, the sample dossiers every template is checked on.

pub(crate) mod french;
pub mod template;

mod context;
pub(crate) use context::Forward;
mod file;
mod samples;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use globset::GlobSet;
use minijinja::Value;

use crate::config::{Config, Region};
use crate::diag::Problems;
use crate::lifecycle::{self, Lifecycle};
use crate::model::{Dossier, Event, EventKind, FieldKind};
use crate::timing::Policy;
use file::{parse_file, way_out_missing};
use template::{Message, Templates};

/// The folder of templates inside the rules folder.
pub(crate) const TEMPLATES_DIR: &str = "templates";

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
    pub(crate) const fn as_str(self) -> &'static str {
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
    pub(crate) fn role(&self) -> &'static str {
        match self {
            Self::Beneficiary => "beneficiary",
            Self::Instructor => "instructor",
            Self::Service => "service",
            Self::Address(_) => "address",
        }
    }

    /// The addresses it stands for on a dossier.
    pub(crate) fn addresses<'a>(&'a self, dossier: &'a Dossier) -> Vec<&'a str> {
        let field = match self {
            Self::Beneficiary => "beneficiary.email",
            Self::Instructor => "instructor.email",
            Self::Service => "service.email",
            Self::Address(address) => return vec![address.as_str()],
        };
        dossier
            .text(field)
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
    /// The front office's address (`[web] public_url`, when `[web] listen` is
    /// set too), ending with `/`: `front_office.url` in every message.
    pub front_office: Option<String>,
    /// Replies to the messages are read (`[inbound]` is set): `replies` in
    /// every message about dossiers, so that the layouts stop asking people not
    /// to answer.
    pub replies: bool,
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
        let front_office = config.web.front_office().map(|url| format!("{url}/"));
        if front_office.is_some() {
            for (file, what) in [
                (template::SIGN_IN, "its sign-in links"),
                (
                    template::EXCHANGE_SERVICE,
                    "the messages beneficiaries write to the service",
                ),
                (
                    template::EXCHANGE_BENEFICIARY,
                    "the service's replies to beneficiaries",
                ),
            ] {
                if !templates.has_file(file) {
                    problems.push(
                        templates.dir.join(file),
                        format!("the front office ([web] listen and public_url are set) sends {what} with this template, which is missing"),
                    );
                }
            }
        }
        let rules = Self {
            rules,
            templates,
            lifecycle,
            region: config.region.clone(),
            policy: config.alerts.clone(),
            front_office,
            replies: config.inbound.is_some(),
            extra_fields,
        };
        if problems.len() == before {
            rules.check_samples(problems);
        }
        (problems.len() == before).then_some(rules)
    }

    /// The kind of an extra field, as its connector declares it.
    pub(crate) fn extra_kind(&self, name: &str) -> Option<FieldKind> {
        self.extra_fields.get(name).copied()
    }

    /// The rule with this name.
    pub fn rule(&self, name: &str) -> Option<&Rule> {
        self.rules.iter().find(|r| r.name == name)
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
                let ctx = ctx.get_or_insert_with(|| self.condition_context(scene));
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
    pub(crate) fn fires(&self, rule: &Rule, scene: &Scene<'_>) -> bool {
        rule.connector
            .as_ref()
            .is_none_or(|g| g.is_match(scene.connector))
            && rule.matches(scene)
            && (rule.when.is_none()
                || self
                    .templates
                    .condition(&rule.name, &self.condition_context(scene))
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
                .is_none_or(|g| scene.dossier.text("scheme").is_some_and(|s| g.is_match(s)))
    }
}

/// Why a debounced alert is not sent: its dossier left the step it was about and
/// is now in the step labelled `now_in`.
pub(crate) fn left_step(now_in: &str) -> String {
    format!("le dossier a quitté l'étape avant l'envoi (désormais : {now_in})")
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::test_support::utc;

    /// A rules folder with the shipped lifecycle and templates and `rules` as its
    /// only rule file; the configuration sends at any time after `debounce`.
    pub(super) fn setup(rules: &str, alerts: &str) -> (tempfile::TempDir, Result<Rules, Problems>) {
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

    pub(super) fn dossier(step: &str, fields: &[(&str, &str)]) -> Dossier {
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

    pub(super) fn step_changed(from: &str, to: &str) -> Event {
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

    pub(super) const RULES: &str = r#"
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
        small.fields.insert_text("amount_granted", "23000.00");
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
        other.fields.insert_text("scheme", "Culture");
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
}
