//! What templates and conditions see of an event on a dossier (see
//! `docs/rules.md`, "Templates").

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use minijinja::Value;
use minijinja::value::{DynObject, Object};

use super::{Rules, Scene};
use crate::delays::Estimate;
use crate::lifecycle::Lifecycle;
use crate::model::{self, Dossier, Event, EventKind, FieldKind};

/// What a context is for: conditions compare amounts with numbers, messages
/// show them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Purpose {
    /// A rule's `when`.
    Condition,
    /// A message.
    Message,
}

/// An exchange to forward, as its message tells it (issue 21).
pub(crate) struct Forward<'a> {
    /// The dossier it is about.
    pub dossier: &'a Dossier,
    /// When the dossier entered its step.
    pub since: chrono::DateTime<chrono::Utc>,
    /// What was written.
    pub text: &'a str,
    /// Who wrote it (an address).
    pub author: &'a str,
    /// When.
    pub at: chrono::DateTime<chrono::Utc>,
    /// Where the recipient reads the dossier and answers (none without a
    /// public address).
    pub link: Option<&'a str>,
    /// Whom it goes to.
    pub recipient: &'a str,
}

impl Rules {
    /// The variables templates see (see `docs/rules.md`, "Templates"), built
    /// once for each message.
    pub fn context(&self, scene: &Scene<'_>, recipient: Option<(&str, &str)>) -> Value {
        self.build(scene, recipient, Purpose::Message)
    }

    /// The variables a rule's condition sees: those of [`Rules::context`], with
    /// amounts as the template engine's numbers (`dossier.amount_granted > 23000`).
    pub(crate) fn condition_context(&self, scene: &Scene<'_>) -> Value {
        self.build(scene, None, Purpose::Condition)
    }

    fn build(&self, scene: &Scene<'_>, recipient: Option<(&str, &str)>, purpose: Purpose) -> Value {
        let lc = &self.lifecycle;
        let link = link_for_role(scene, recipient.map(|(role, _)| role));
        let recipient = recipient.map(|(role, address)| {
            minijinja::context! { role => role, address => address }
        });
        minijinja::context! {
            dossier => self.dossier_value(scene, purpose),
            event => event_value(scene.event, lc),
            step => step_value(scene.dossier, lc),
            delay => scene.delay.map(|e| Value::from(minijinja::value::Serde(e))),
            // The configuration's own links may become links in the HTML part;
            // the export's text never does (see `template::DATA_START`).
            link => link.map(|l| Value::from_safe_string(l.to_owned())),
            region => minijinja::context! {
                website => self.region.website.clone().map(Value::from_safe_string),
                ..Value::from(minijinja::value::Serde(&self.region))
            },
            recipient => recipient,
            front_office => self.front_office_value(),
            replies => self.replies,
        }
    }

    /// `front_office`: its address, when the front office is served.
    fn front_office_value(&self) -> Value {
        self.front_office.as_ref().map_or(Value::from(()), |url| {
            minijinja::context! { url => Value::from_safe_string(url.clone()) }
        })
    }

    /// The variables of the sign-in message (`_connexion.jinja`): the link and
    /// how long it lasts, and what the layouts use.
    pub(crate) fn sign_in_context(&self, link: &str, lifetime: Duration, address: &str) -> Value {
        minijinja::context! {
            sign_in => minijinja::context! {
                link => Value::from_safe_string(link.to_owned()),
                lifetime => lifetime.as_secs(),
            },
            region => minijinja::context! {
                website => self.region.website.clone().map(Value::from_safe_string),
                ..Value::from(minijinja::value::Serde(&self.region))
            },
            recipient => minijinja::context! { role => "beneficiary", address => address },
            front_office => self.front_office_value(),
            // A sign-in message is not answered to the inbound mailbox.
            replies => false,
        }
    }

    /// The variables of an exchange's forwarding (`_echange_service.jinja`,
    /// `_echange_beneficiaire.jinja`, issue 21): `exchange` (the dossier's
    /// reference, project, scheme, step and since when, the text, its author,
    /// when it was written, the link to answer it), and what the layouts use;
    /// `to_service`: it goes to the instructing service (else to the
    /// beneficiary).
    pub(crate) fn exchange_context(&self, forward: &Forward<'_>, to_service: bool) -> Value {
        let d = forward.dossier;
        let scheme = d.text("scheme");
        minijinja::context! {
            exchange => minijinja::context! {
                reference => d.reference(),
                project => d.text("title"),
                scheme => scheme,
                step => self.lifecycle.label(&d.step),
                since => forward.since.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                text => forward.text,
                author => forward.author,
                written_at => forward.at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                link => forward.link.map(|l| Value::from_safe_string(l.to_owned())),
            },
            region => minijinja::context! {
                website => self.region.website.clone().map(Value::from_safe_string),
                ..Value::from(minijinja::value::Serde(&self.region))
            },
            recipient => minijinja::context! {
                role => if to_service { "service" } else { "beneficiary" },
                address => forward.recipient,
            },
            front_office => self.front_office_value(),
            replies => self.replies,
        }
    }

    /// What comes next for `dossier` and when, in one paragraph, as messages
    /// say it (the `next_steps` macro), or the next steps' labels alone.
    pub(crate) fn next_steps(&self, dossier: &Dossier, delay: Option<&Estimate>) -> String {
        let ctx = minijinja::context! {
            step => step_value(dossier, &self.lifecycle),
            delay => delay.map(|e| Value::from(minijinja::value::Serde(e))),
        };
        self.templates.next_steps(&ctx).unwrap_or_else(|| {
            let next: Vec<String> = self
                .lifecycle
                .next(&dossier.step)
                .iter()
                .map(|s| format!("« {} »", s.label))
                .collect();
            if next.is_empty() {
                String::new()
            } else {
                format!("Prochaine étape : {}.", next.join(" ou "))
            }
        })
    }

    /// `dossier`: every canonical field and declared extra field (`none` when
    /// absent), grouped by their prefix (`dossier.beneficiary.email`).
    fn dossier_value(&self, scene: &Scene<'_>, purpose: Purpose) -> Value {
        let d = scene.dossier;
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
            put(f.name, field_value(d.get(f.name), purpose));
        }
        for name in self.extra_fields.keys() {
            put(name, Value::from(()));
        }
        for (name, value) in d.fields.iter() {
            if let Some(kind) = name
                .starts_with(model::EXTRA_PREFIX)
                .then(|| self.extra_fields.get(&**name).copied())
            {
                put(name, extra_value(value, kind, purpose));
            }
        }
        groups.entry("extra".to_owned()).or_default();
        for (group, map) in groups {
            dossier.insert(group, Value::from(map));
        }
        let lc = &self.lifecycle;
        dossier.insert("id".to_owned(), Value::from(d.id.as_str()));
        dossier.insert("reference".to_owned(), Value::from(d.reference()));
        dossier.insert("connector".to_owned(), Value::from(scene.connector));
        dossier.insert("step".to_owned(), Value::from(d.step.as_str()));
        dossier.insert("step_label".to_owned(), Value::from(lc.label(&d.step)));
        dossier.insert("status".to_owned(), Value::from(d.status.as_str()));
        Value::from(dossier)
    }
}

/// `event`: what happened, with the steps' labels.
fn event_value(e: &Event, lc: &Lifecycle) -> Value {
    let opt = |v: &Option<String>| Value::from(v.clone());
    let label = |v: &Option<String>| Value::from(v.as_deref().map(|s| lc.label(s).to_owned()));
    let deleted =
        e.kind == EventKind::Disappeared && e.field.as_deref() == Some(model::DELETED_ON_SOURCE);
    minijinja::context! {
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
    }
}

/// `step`: the dossier's current step, its pieces and the steps that may follow.
fn step_value(d: &Dossier, lc: &Lifecycle) -> Value {
    let current = lc.step(&d.step);
    minijinja::context! {
        id => d.step.as_str(),
        label => lc.label(&d.step),
        final => current.is_some_and(|s| s.is_final),
        expected_duration => current.and_then(|s| s.expected_duration).map(|d| d.as_secs()),
        pieces => lc.pieces(&d.step, d.text("scheme")).to_vec(),
        next => lc.next(&d.step).iter().map(|s| minijinja::context! {
            id => s.id.as_str(), label => s.label.as_str()
        }).collect::<Vec<_>>(),
    }
}

/// A field's value as templates see it: amounts as [`Amount`] (numbers, for a
/// condition), the rest as their canonical text.
fn field_value(value: Option<&model::Value>, purpose: Purpose) -> Value {
    match (value, purpose) {
        (None, _) => Value::from(()),
        (Some(model::Value::Amount(cents)), Purpose::Message) => Value::from_object(Amount(*cents)),
        (Some(model::Value::Amount(cents)), Purpose::Condition) => comparable(*cents),
        (Some(v), _) => Value::from(v.text().into_owned()),
    }
}

/// An extra field's value, of the kind its connector declares: read back from
/// the store as text, an amount is typed here (from its canonical text).
fn extra_value(value: &model::Value, kind: Option<FieldKind>, purpose: Purpose) -> Value {
    match (value, kind) {
        (model::Value::Text(text), Some(FieldKind::Amount)) => {
            match model::Value::from_text(FieldKind::Amount, text) {
                typed @ model::Value::Amount(_) => field_value(Some(&typed), purpose),
                _ => Value::from(text.as_str()),
            }
        }
        (model::Value::Amount(_), _) => field_value(Some(value), purpose),
        _ => Value::from(value.text().into_owned()),
    }
}

/// An amount as the template engine's number, for conditions to compare with
/// the numbers they write (`> 23000`). The engine's only number with decimals
/// is a binary float: a condition sees the nearest one (as it always has), and
/// nothing turns it back into money; messages get [`Amount`] and its cents.
fn comparable(cents: i64) -> Value {
    if cents % 100 == 0 {
        Value::from(cents / 100)
    } else {
        // Exact below 2^53 cents, then the nearest float, as a parsed literal is.
        Value::from(cents as f64 / 100.0)
    }
}

/// An amount in a message: integer cents, which `montant` reads. It shows as
/// the engine showed an amount in euros (`26956.0`, `10782.4`), is false when
/// zero, and compares with other amounts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Amount(pub(super) i64);

impl Object for Amount {
    fn is_true(self: &Arc<Self>) -> bool {
        self.0 != 0
    }

    fn custom_cmp(self: &Arc<Self>, other: &DynObject) -> Option<std::cmp::Ordering> {
        other.downcast_ref::<Self>().map(|o| self.0.cmp(&o.0))
    }

    fn render(self: &Arc<Self>, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let (euros, cents) = (self.0.unsigned_abs() / 100, self.0.unsigned_abs() % 100);
        // The shortest decimals, at least one: 26956.0, 10782.4, 0.05.
        match (cents % 10, cents) {
            (_, 0) => write!(f, "{sign}{euros}.0"),
            (0, _) => write!(f, "{sign}{euros}.{}", cents / 10),
            _ => write!(f, "{sign}{euros}.{cents:02}"),
        }
    }
}

/// The dossier's link as `role` sees it: the Region's staff (`instructor`,
/// `service`) get the dossier's `instructor.url` when it has one (DS's page for
/// instructeurs), everyone else the scene's link (DS's page for the usager: a
/// beneficiary cannot open the instructeurs' one).
fn link_for_role<'a>(scene: &Scene<'a>, role: Option<&str>) -> Option<&'a str> {
    let staff = matches!(role, Some("instructor" | "service"));
    staff
        .then(|| scene.dossier.text("instructor.url"))
        .flatten()
        .or(scene.link)
}

/// The places where a message template computes with an amount, or compares
/// one with a number: `(line, what is written)`. In a message an amount is
/// [`Amount`], exact cents, which compares only with another amount and takes
/// no arithmetic; the engine would not say so, but order it apart from every
/// number. Conditions (`when`) compare amounts with numbers as they always have.
pub(super) fn amounts_misused(text: &str) -> Vec<(usize, String)> {
    const NAME: &str = "dossier.amount_";
    let mut found = Vec::new();
    let mut from = 0;
    while let Some(at) = text[from..].find(NAME).map(|i| from + i) {
        let end = at
            + NAME.len()
            + text[at + NAME.len()..]
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(text.len() - at - NAME.len());
        from = end;
        let (left, right) = (operator_before(&text[..at]), operator_after(&text[end..]));
        let misused = [left, right].into_iter().flatten().any(|(op, operand)| {
            matches!(op, "+" | "-" | "*" | "/" | "//" | "%" | "**")
                || operand.starts_with(|c: char| c.is_ascii_digit() || c == '-' || c == '.')
        });
        if misused {
            let line_start = text[..at].rfind('\n').map_or(0, |i| i + 1);
            let line_end = text[end..].find('\n').map_or(text.len(), |i| end + i);
            let line = text[..at].matches('\n').count() + 1;
            found.push((line, text[line_start..line_end].trim().to_owned()));
        }
    }
    found.dedup();
    found
}

/// The operator written just after an expression, and the first characters of
/// what follows it; none at the end of a tag or an output (`%}`, `-%}`, `-}}`).
fn operator_after(text: &str) -> Option<(&str, String)> {
    let rest = text.trim_start();
    if ["%}", "-%}", "-}}"].iter().any(|end| rest.starts_with(end)) {
        return None;
    }
    let len = rest
        .find(|c: char| !"<>=!+-*/%".contains(c))
        .unwrap_or(rest.len());
    let (op, after) = rest.split_at(len);
    (!op.is_empty() && op != "=").then(|| (op, after.trim_start().chars().take(2).collect()))
}

/// The operator written just before an expression, and the last characters of
/// what precedes it (reversed); none at the start of a tag or an output (`{%`,
/// `{%-`, `{{-`) or after an assignment.
fn operator_before(text: &str) -> Option<(&'static str, String)> {
    let rest = text.trim_end();
    if ["{%", "{%-", "{{-"]
        .iter()
        .any(|start| rest.ends_with(start))
    {
        return None;
    }
    let len = rest.len()
        - rest
            .rfind(|c: char| !"<>=!+-*/%".contains(c))
            .map_or(0, |i| i + 1);
    let (before, op) = rest.split_at(rest.len() - len);
    let op = [
        "<=", ">=", "==", "!=", "<", ">", "//", "**", "+", "-", "*", "/", "%",
    ]
    .into_iter()
    .find(|o| *o == op)?;
    Some((op, before.trim_end().chars().rev().take(2).collect()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::tests::{RULES, dossier, setup, step_changed};

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

    /// The engine's environment, with the filters messages use.
    fn env() -> minijinja::Environment<'static> {
        let (_dir, rules) = setup(RULES, "send_windows = []");
        let rules = rules.unwrap_or_else(|p| panic!("{p}"));
        crate::rules::template::environment(rules.lifecycle.clone(), chrono_tz::Europe::Paris)
    }

    /// What a dossier's amount showed as before typed values: its stored text
    /// read as the engine's number, written as the shortest decimals.
    fn shown_before(cents: i64) -> String {
        let text = model::amount_text(cents);
        let trimmed = text.trim_end_matches('0');
        if trimmed.ends_with('.') {
            format!("{trimmed}0")
        } else {
            trimmed.to_owned()
        }
    }

    proptest::proptest! {
        /// Any amount, mapped to cents, reaches `montant` as its cents, and
        /// shows bare as it did.
        #[test]
        fn amounts_reach_montant_in_cents(cents in proptest::prelude::any::<i64>()) {
            let env = env();
            let value = model::Value::from_text(FieldKind::Amount, &model::amount_text(cents));
            let ctx = minijinja::context! {
                a => field_value(Some(&value), Purpose::Message),
            };
            let out = env
                .render_str("{{ a | montant }}|{{ a }}|{% if a %}yes{% endif %}", ctx)
                .expect("renders")
                .replace(['\u{E000}', '\u{E001}'], "");
            let truthy = if cents == 0 { "" } else { "yes" };
            proptest::prop_assert_eq!(
                out,
                format!("{}|{}|{truthy}", crate::rules::french::amount(cents), shown_before(cents))
            );
        }
    }

    #[test]
    fn amounts_compare_with_numbers_in_conditions_and_with_each_other_in_messages() {
        let env = env();
        let amount = |cents, purpose| field_value(Some(&model::Value::Amount(cents)), purpose);
        let eval = |expr: &str, ctx: Value| env.render_str(expr, ctx).expect("renders");
        let condition = |cents| minijinja::context! { a => amount(cents, Purpose::Condition) };
        assert_eq!(eval("{{ a > 23000 }}", condition(2_300_000)), "False");
        assert_eq!(eval("{{ a > 23000 }}", condition(2_300_001)), "True");
        assert_eq!(eval("{{ a < 23000.5 }}", condition(2_300_049)), "True");
        let message = minijinja::context! {
            paid => amount(1_078_240, Purpose::Message),
            granted => amount(2_695_600, Purpose::Message),
        };
        assert_eq!(
            eval("{{ paid < granted }}|{{ granted < paid }}", message),
            "True|False"
        );
    }

    #[test]
    fn computing_with_an_amount_or_comparing_it_with_a_number_is_found() {
        let text = "{% if dossier.amount_paid < dossier.amount_granted %}ok{% endif %}\n\
                    {{- dossier.amount_paid | montant -}}\n\
                    {% if dossier.amount_granted > 23000 %}big{% endif %}\n\
                    {% set x = dossier.amount_granted %}\n\
                    Reste : {{ (dossier.amount_granted - dossier.amount_paid) | montant }}\n\
                    {% if 0 == dossier.amount_paid %}none{% endif %}\n";
        let found: Vec<usize> = amounts_misused(text).into_iter().map(|(l, _)| l).collect();
        assert_eq!(found, [3, 5, 6]);
        assert_eq!(
            amounts_misused("{% if dossier.amount_granted >= 1 %}")[0].1,
            "{% if dossier.amount_granted >= 1 %}"
        );
    }

    /// Issue 19, item 4: messages get the prediction's dates as `delay.dates.*`,
    /// the same figures as `dossier --json` and `stats --dossiers`.
    #[test]
    fn messages_get_the_predictions_dates() {
        let (_dir, rules) = setup(RULES, "send_windows = []");
        let rules = rules.unwrap_or_else(|p| panic!("{p}"));
        let d = dossier("instruction", &[]);
        let event = step_changed("complet", "instruction");
        let now = crate::test_support::utc("2026-03-10T09:00:00Z");
        let estimate =
            crate::test_support::estimate(crate::delays::Basis::Step, 20 * 86_400, Some(0), None)
                .dated(now, chrono_tz::Europe::Paris);
        let scene = Scene {
            connector: "x",
            link: None,
            dossier: &d,
            event: &event,
            delay: Some(&estimate),
        };
        let ctx = rules.context(&scene, None);
        let dates = ctx
            .get_attr("delay")
            .and_then(|d| d.get_attr("dates"))
            .unwrap();
        let text = |key: &str| dates.get_attr(key).unwrap().to_string();
        assert_eq!(text("expected"), "2026-03-30");
        assert_eq!(text("low"), "2026-03-10");
        assert_eq!(text("not_before"), "2026-03-10");
        assert!(dates.get_attr("high").unwrap().is_none());
    }

    /// Issue 19: the shipped messages quote the day the next step is expected.
    #[test]
    fn the_shipped_messages_quote_the_expected_day() {
        let (_dir, rules) = setup(RULES, "send_windows = []");
        let rules = rules.unwrap_or_else(|p| panic!("{p}"));
        let d = dossier("instruction", &[]);
        let event = step_changed("complet", "instruction");
        let now = crate::test_support::utc("2026-03-10T09:00:00Z");
        let estimate = crate::test_support::estimate(
            crate::delays::Basis::Scheme,
            20 * 86_400,
            Some(5 * 86_400),
            Some(40 * 86_400),
        );
        let message = |estimate: &crate::delays::Estimate| {
            let scene = Scene {
                connector: "x",
                link: None,
                dossier: &d,
                event: &event,
                delay: Some(estimate),
            };
            let rule = rules.rule("vers-instruction").unwrap();
            rules
                .render(rule, &scene, "beneficiary", "a@example.org")
                .unwrap()
                .text
        };
        let dated = message(&estimate.clone().dated(now, chrono_tz::Europe::Paris));
        assert!(dated.contains("(vers le 30 mars 2026)"), "{dated}");
        assert!(!message(&estimate).contains("vers le"));
    }
}
