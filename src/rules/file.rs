//! One rule file, `rules/*.toml`: its strict parsing and validation, every
//! problem with its `file:line:column`.

use std::path::Path;

use globset::{Glob, GlobSet, GlobSetBuilder};
use serde::Deserialize;
use toml::Spanned;

use super::template::Templates;
use super::{Class, Recipient, Rule};
use crate::diag::FileProblems;
use crate::diag::Problems;
use crate::lifecycle::Lifecycle;
use crate::model::{self, EventKind};
use crate::timing;

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

/// Reports every informational rule: without `[web] public_url`, its messages
/// could not carry the way out that informational messages must have.
pub(super) fn way_out_missing(rules: &[Rule], problems: &mut Problems) {
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

pub(super) fn parse_file(
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
    file.rule
        .into_iter()
        .filter_map(|def| {
            let span = def.span();
            rule(path, def.into_inner(), span, lifecycle, templates, &mut fp)
        })
        .collect()
}

/// A problem of rule `name`.
fn named(name: &str, message: impl std::fmt::Display) -> String {
    format!("rule '{name}': {message}")
}

/// One `[[rule]]`, when it validates; its problems go to `fp`.
fn rule(
    path: &Path,
    def: RuleDef,
    span: std::ops::Range<usize>,
    lifecycle: &Lifecycle,
    templates: &mut Templates,
    fp: &mut FileProblems<'_>,
) -> Option<Rule> {
    let before = fp.count();
    let name = def.name.get_ref().clone();
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        || name.is_empty()
    {
        fp.at(
            def.name.span(),
            named(&name, "the name must use only a-z, 0-9, - and _"),
        );
    }
    let on = events(&name, &def.on, fp);
    let from = steps(&name, def.from.as_ref(), "from", lifecycle, fp);
    let to = steps(&name, def.to.as_ref(), "to", lifecycle, fp);
    let field = fields(&name, def.field.as_ref(), fp);
    if !from.is_empty()
        && !on
            .iter()
            .all(|k| matches!(k, EventKind::StepChanged | EventKind::Stalled))
    {
        fp.at(
            span.clone(),
            named(
                &name,
                "`from` only applies to step_changed and stalled events",
            ),
        );
    }
    if !field.is_empty()
        && !on
            .iter()
            .all(|k| matches!(k, EventKind::FieldChanged | EventKind::Deadline))
    {
        fp.at(
            span,
            named(
                &name,
                "`field` only applies to field_changed and deadline events",
            ),
        );
    }
    let connector = globs(def.connector.as_ref(), "connector", fp);
    let scheme = globs(def.scheme.as_ref(), "scheme", fp);
    let notify = recipients(&name, &def.notify, fp);
    if notify.is_empty() && fp.count() == before {
        fp.at(def.notify.span(), named(&name, "`notify` names nobody"));
    }
    check_template(&name, &def.template, templates, fp);
    let class = class(&name, def.class.as_ref(), fp);
    let cooldown = duration(
        &name,
        def.cooldown.as_ref(),
        "cooldown",
        crate::diag::MAX_DURATION,
        fp,
    );
    let debounce = duration(
        &name,
        def.debounce.as_ref(),
        "debounce",
        timing::MAX_DEBOUNCE,
        fp,
    );
    let sender = mailbox(&name, def.sender.as_ref(), "sender", fp);
    let reply_to = mailbox(&name, def.reply_to.as_ref(), "reply_to", fp);
    if let Some(when) = &def.when
        && let Err(reason) = templates.add_condition(&name, when.get_ref())
    {
        fp.at(
            when.span(),
            named(&name, format!("the condition does not compile: {reason}")),
        );
    }
    (fp.count() == before).then(|| Rule {
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
    })
}

/// `on`: the events a rule answers, each one that alerts.
fn events(name: &str, on: &Spanned<toml::Value>, fp: &mut FileProblems<'_>) -> Vec<EventKind> {
    let mut events = Vec::new();
    for kind in strings(on, "on", fp) {
        match EventKind::parse(&kind).filter(|k| k.alerts()) {
            Some(k) => events.push(k),
            None => fp.at(
                on.span(),
                named(
                    name,
                    format!(
                        "unknown event '{kind}', expected one of {}",
                        EventKind::ALL.map(|k| format!("\"{k}\"")).join(", ")
                    ),
                ),
            ),
        }
    }
    events
}

/// `from` or `to`: steps of the lifecycle.
fn steps(
    name: &str,
    value: Option<&Spanned<toml::Value>>,
    key: &str,
    lifecycle: &Lifecycle,
    fp: &mut FileProblems<'_>,
) -> Vec<String> {
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
                named(name, format!("`{key}`: unknown step '{id}'{hint}")),
            );
        }
    }
    list
}

/// `field`: canonical or `extra.*` fields.
fn fields(
    name: &str,
    value: Option<&Spanned<toml::Value>>,
    fp: &mut FileProblems<'_>,
) -> Vec<String> {
    let Some(value) = value else {
        return Vec::new();
    };
    let list = strings(value, "field", fp);
    for f in &list {
        if model::field(f).is_none() && !f.starts_with(model::EXTRA_PREFIX) {
            let hint = crate::diag::closest(f, model::FIELDS.iter().map(|f| f.name))
                .map(|c| format!(" (did you mean '{c}'?)"))
                .unwrap_or_default();
            fp.at(
                value.span(),
                named(name, format!("`field`: unknown field '{f}'{hint}")),
            );
        }
    }
    list
}

/// `notify`: roles or e-mail addresses.
fn recipients(
    name: &str,
    notify: &Spanned<toml::Value>,
    fp: &mut FileProblems<'_>,
) -> Vec<Recipient> {
    let mut found = Vec::new();
    for who in strings(notify, "notify", fp) {
        found.push(match who.as_str() {
            "beneficiary" => Recipient::Beneficiary,
            "instructor" => Recipient::Instructor,
            "service" => Recipient::Service,
            address => match crate::value::parse_emails(address) {
                Ok(list) if list.len() == 1 => Recipient::Address(list[0].clone()),
                _ => {
                    fp.at(
                        notify.span(),
                        named(
                            name,
                            format!("`notify`: '{who}' is neither beneficiary, instructor, service nor an e-mail address"),
                        ),
                    );
                    continue;
                }
            },
        });
    }
    found
}

/// `template`: one of the templates folder's.
fn check_template(
    name: &str,
    template: &Spanned<String>,
    templates: &Templates,
    fp: &mut FileProblems<'_>,
) {
    if templates.has(template.get_ref()) {
        return;
    }
    let hint = crate::diag::closest(
        template.get_ref(),
        templates.names().iter().map(String::as_str),
    )
    .map(|c| format!(" (did you mean '{c}'?)"))
    .unwrap_or_default();
    fp.at(
        template.span(),
        named(
            name,
            format!(
                "no template '{}' in {}{hint}",
                template.get_ref(),
                templates.dir.display()
            ),
        ),
    );
}

/// `class`: mandatory (the default) or informational.
fn class(name: &str, class: Option<&Spanned<String>>, fp: &mut FileProblems<'_>) -> Class {
    match class.map(|c| c.get_ref().as_str()) {
        None | Some("mandatory") => Class::Mandatory,
        Some("informational") => Class::Informational,
        Some(other) => {
            let span = class.map(Spanned::span).unwrap_or_default();
            fp.at(
                span,
                named(
                    name,
                    format!("class '{other}' is not \"mandatory\" nor \"informational\""),
                ),
            );
            Class::Mandatory
        }
    }
}

/// `cooldown` or `debounce`: a duration up to `max`.
fn duration(
    name: &str,
    value: Option<&Spanned<String>>,
    key: &str,
    max: std::time::Duration,
    fp: &mut FileProblems<'_>,
) -> Option<std::time::Duration> {
    value.and_then(|v| {
        crate::diag::parse_duration_at_most(v.get_ref(), max)
            .map_err(|reason| fp.at(v.span(), named(name, format!("`{key}`: {reason}"))))
            .ok()
    })
}

/// `sender` or `reply_to`: a mailbox.
fn mailbox(
    name: &str,
    value: Option<&Spanned<String>>,
    key: &str,
    fp: &mut FileProblems<'_>,
) -> Option<String> {
    value.and_then(|v| {
        crate::value::mailbox(v.get_ref())
            .map(|_| v.get_ref().clone())
            .map_err(|_| {
                fp.at(
                    v.span(),
                    named(
                        name,
                        format!(
                            "`{key}`: '{}' is not an address like \"Service culture <culture@region.example.org>\"",
                            v.get_ref()
                        ),
                    ),
                )
            })
            .ok()
    })
}

#[cfg(test)]
mod tests {
    use crate::rules::tests::setup;

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
}
