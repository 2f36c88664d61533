//! What templates and conditions see of an event on a dossier (see
//! `docs/rules.md`, "Templates").

use std::collections::BTreeMap;

use minijinja::Value;

use super::{Rules, Scene};
use crate::model::{self, EventKind, FieldKind};

impl Rules {
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
}
