//! The sample dossiers and events every template and condition is checked on
//! when the rules load, so that a typo fails there rather than when sending.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use super::{Rules, Scene, template};
use crate::diag::Problems;
use crate::model::{self, Dossier, Event, EventKind, FieldKind};

impl Rules {
    /// Renders the forwarding of an exchange (issue 21), each way, for
    /// `dossier` (described by `label`), when its template is there (the front
    /// office requires them: `Rules::load`).
    fn check_exchange_samples(&self, dossier: &Dossier, label: &str, problems: &mut Problems) {
        let at = chrono::DateTime::parse_from_rfc3339("2026-03-02T09:30:00Z")
            .expect("a valid instant")
            .to_utc();
        for (file, to_service) in [
            (template::EXCHANGE_SERVICE, true),
            (template::EXCHANGE_BENEFICIARY, false),
        ] {
            if !self.templates.has_file(file) {
                continue;
            }
            let forward = super::Forward {
                dossier,
                since: at,
                text: "Bonjour,\nOù en est notre dossier ?\nMerci.",
                author: "contact@example.org",
                at,
                link: Some("https://aides.region.example.org/dossiers/0123456789abcdef"),
                recipient: "instruction@example.org",
            };
            let ctx = self.exchange_context(&forward, to_service);
            if let Err(reason) = self.templates.render(file.trim_end_matches(".jinja"), &ctx) {
                problems.push(
                    self.templates.dir.join(file),
                    format!("fails to render for {label}: {reason}"),
                );
            }
        }
    }

    /// Renders every template and evaluates every condition against a complete
    /// sample dossier and a sparse one, so that a typo or a missing guard fails
    /// here rather than when sending.
    pub(super) fn check_samples(&self, problems: &mut Problems) {
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
            if label.starts_with("a complete") && self.templates.has_file(template::SIGN_IN) {
                let ctx = self.sign_in_context(
                    "https://aides.region.example.org/connexion/0123456789abcdef",
                    std::time::Duration::from_secs(900),
                    "contact@example.org",
                );
                let name = template::SIGN_IN.trim_end_matches(".jinja");
                if let Err(reason) = self.templates.render(name, &ctx) {
                    problems.push(
                        self.templates.dir.join(template::SIGN_IN),
                        format!("fails to render: {reason}"),
                    );
                }
            }
            self.check_exchange_samples(&dossier, label, problems);
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
                    let ctx = self.condition_context(&sample_scene(&dossier, &event, delay));
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
}

/// A dossier for checking templates: every canonical field filled, or none.
pub(crate) fn sample_dossier(complete: bool, extra: &BTreeMap<String, FieldKind>) -> Dossier {
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
    let mut fields = model::Fields::default();
    if complete {
        for f in model::FIELDS {
            fields.insert(
                f.name,
                model::Value::from_text(f.kind, &sample(f.name, f.kind)),
            );
        }
        for (name, kind) in extra {
            fields.insert(
                name.as_str(),
                model::Value::from_text(*kind, &sample(name, *kind)),
            );
        }
    }
    Dossier {
        id: "AR-24-000123".to_owned(),
        step: "instruction".to_owned(),
        status: "En cours d'instruction".to_owned(),
        fields,
    }
}

/// The instant the samples' estimates are dated at: a Tuesday morning in Paris.
fn sample_now() -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp(1_773_133_200, 0).unwrap_or_default()
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
        sessions: false,
        extrapolated: false,
        past_p80: None,
        past_p90: None,
        dates: None,
    }
    .dated(sample_now(), chrono_tz::Europe::Paris);
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
        sessions: false,
        extrapolated: false,
        past_p80: None,
        past_p90: None,
        dates: None,
    }
    .dated(sample_now(), chrono_tz::Europe::Paris);
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
    use std::sync::Arc;

    use crate::config::Config;
    use crate::diag::Problems;
    use crate::lifecycle::Lifecycle;
    use crate::rules::Rules;
    use crate::rules::tests::{RULES, setup};

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
}
