//! `alertissimo test` and `alertissimo render`: the rule test cases, and the
//! message a rule would send about a stored dossier.

use super::*;

pub(super) fn test_rules(config: &Config, paths: &[PathBuf]) -> anyhow::Result<Exit> {
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

pub(super) fn render(
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
        .delays(
            &rules.lifecycle,
            config.delays.min_sample,
            now,
            config.timezone,
        )?
        .of(&found.dossier, found.step_entered_at, now);
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
