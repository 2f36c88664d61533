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
