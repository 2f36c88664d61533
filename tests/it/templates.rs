//! Snapshots of every shipped message: each rule of `rules/*.toml` rendered
//! (subject, text part, HTML part) for two realistic dossiers, and digests.
//!
//! The dossiers come from the shipped `portail-aides` connector of
//! `config.example.toml`: an association whose export fills every field
//! (amounts, dates, instructor, service, link), written by a Region whose
//! `[region]` section is complete; and a small company whose export gives only
//! what a message needs (no amount, date, scheme, instructor, service e-mail or
//! link), written by the Region of `config.example.toml` (a name and a service,
//! no contact). Times are fixed, so the snapshots only change with the templates.
//!
//! A changed snapshot is a changed message: read the `.snap.new` file as its
//! recipient would before accepting it. Besides the snapshots, every message is
//! checked for what a reader must never see (a stray `none`, a label left with
//! no value, a doubled space, unbalanced HTML).

use std::sync::Arc;

use alertissimo::config::{Config, Region};
use alertissimo::connector::Connector;
use alertissimo::delays::{Basis, Estimate, History};
use alertissimo::diag::Problems;
use alertissimo::lifecycle::Lifecycle;
use alertissimo::model::{Dossier, Event, EventKind};
use alertissimo::rules::template::Message;
use alertissimo::rules::{Rules, Scene};
use chrono::{DateTime, Utc};

use crate::common::repo;

/// The shipped connector the dossiers come from.
const CONNECTOR: &str = "portail-aides";

/// When the events were detected: Monday 22 June 2026, 09:30 in Paris.
const DETECTED_AT: &str = "2026-06-22T07:30:00Z";

/// What happens to a dossier for one rule to fire.
struct Case {
    rule: &'static str,
    kind: EventKind,
    /// The step the dossier left (step_changed) or was in (disappeared).
    from: Option<&'static str>,
    /// The dossier's step after the event.
    step: &'static str,
}

const fn case(
    rule: &'static str,
    kind: EventKind,
    from: Option<&'static str>,
    step: &'static str,
) -> Case {
    Case {
        rule,
        kind,
        from,
        step,
    }
}

/// A step change of the dossier, the most common case.
const fn moved(rule: &'static str, from: &'static str, to: &'static str) -> Case {
    case(rule, EventKind::StepChanged, Some(from), to)
}

/// One scene per shipped rule; a rule missing here fails `every_rule_has_a_case`.
const CASES: &[Case] = &[
    case("depot-recu", EventKind::Created, None, "depose"),
    moved("dossier-incomplet", "depose", "incomplet"),
    moved("dossier-complet", "incomplet", "complet"),
    moved("en-instruction", "complet", "instruction"),
    moved("en-commission", "instruction", "commission"),
    moved("aide-accordee", "commission", "accorde"),
    moved("aide-refusee", "commission", "refuse"),
    moved("decision-ajournee", "commission", "ajourne"),
    moved("convention-signee", "accorde", "convention"),
    moved("paiement-avance", "convention", "paiement_avance"),
    moved("paiement-acompte", "paiement_avance", "paiement_acompte"),
    moved("paiement-solde", "paiement_acompte", "paiement_solde"),
    moved("dossier-cloture", "paiement_solde", "cloture"),
    moved("dossier-sans-suite", "incomplet", "sans_suite"),
    // The granted amount goes from 24 000 € to 26 956 € after the convention (the
    // company's dossier keeps no amount of its own: the template reads the event).
    case(
        "montant-modifie",
        EventKind::FieldChanged,
        None,
        "convention",
    ),
    case(
        "instructeur-dossier-disparu",
        EventKind::Disappeared,
        Some("instruction"),
        "instruction",
    ),
    case(
        "instructeur-dossier-reapparu",
        EventKind::Reappeared,
        None,
        "commission",
    ),
    moved("instructeur-pieces-recues", "incomplet", "complet"),
    case("rappel-echeance", EventKind::Deadline, None, "convention"),
    case(
        "dossier-en-attente",
        EventKind::Stalled,
        None,
        "instruction",
    ),
    case(
        "instructeur-dossier-bloque",
        EventKind::Stalled,
        None,
        "instruction",
    ),
    case("instructeur-point", EventKind::Review, None, "convention"),
];

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .expect("an RFC 3339 instant")
        .with_timezone(&Utc)
}

/// The shipped rules and connectors, loaded as `alertissimo check` does.
fn shipped() -> (Rules, Vec<Connector>) {
    let config = Config::load(Some(&repo().join("config.example.toml")))
        .unwrap_or_else(|problems| panic!("config.example.toml is invalid:\n{problems}"));
    let mut problems = Problems::default();
    let lifecycle = Lifecycle::load(&config.lifecycle_path(), &mut problems)
        .unwrap_or_else(|| panic!("the lifecycle is invalid:\n{problems}"));
    let lifecycle = Arc::new(lifecycle);
    let connectors = Connector::load_all(&config, &lifecycle, &mut problems);
    let rules = Rules::load(
        &config,
        lifecycle,
        alertissimo::connector::Connector::extra_fields(&connectors),
        &mut problems,
    );
    assert!(
        problems.is_empty(),
        "the shipped files are invalid:\n{problems}"
    );
    (rules.expect("the shipped rules load"), connectors)
}

/// A Region that fills every key of `[region]`.
fn complete_region() -> Region {
    Region {
        name: "Région Auvergne-Rhône-Alpes".to_owned(),
        service: Some("Direction de la culture et du patrimoine".to_owned()),
        email: Some("aides-culture@region.example.fr".to_owned()),
        phone: Some("04 26 73 40 00".to_owned()),
        website: Some("https://www.region.example.fr/aides".to_owned()),
    }
}

fn dossier(id: &str, step: &str, status: &str, fields: &[(&str, &str)]) -> Dossier {
    Dossier {
        id: id.to_owned(),
        step: step.to_owned(),
        status: status.to_owned(),
        fields: fields
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
    }
}

/// The source's status label of a step (the `[steps]` table of portail-aides.toml).
fn status(step: &str) -> &'static str {
    match step {
        "depose" => "Déposé",
        "incomplet" => "Incomplet",
        "complet" => "Complet",
        "instruction" => "Instruction en cours",
        "commission" => "Passage en CP",
        "accorde" => "Voté en CP",
        "refuse" => "Refusé",
        "ajourne" => "Ajourné",
        "convention" => "Convention signée",
        "paiement_avance" => "Avance versée",
        "paiement_acompte" => "Acompte versé",
        "paiement_solde" => "Soldé",
        "cloture" => "Clôturé",
        "sans_suite" => "Sans suite",
        other => panic!("no status label for step '{other}'"),
    }
}

/// An association whose export fills every field.
fn association(step: &str) -> Dossier {
    dossier(
        "2026-00412",
        step,
        status(step),
        &[
            ("reference", "AR-26-0412"),
            (
                "title",
                "Festival des arts de la rue de Crest, édition 2026",
            ),
            ("scheme", "Soutien aux manifestations culturelles"),
            ("step_since", "2026-06-19T08:00:00Z"),
            ("filed_on", "2026-02-14"),
            ("decided_on", "2026-06-19"),
            ("justification_due", "2027-06-30"),
            ("expires_on", "2027-12-31"),
            ("beneficiary.name", "Association Les Tréteaux de Crest"),
            ("beneficiary.siret", "73282932000074"),
            ("beneficiary.email", "contact@treteaux-crest.example.org"),
            ("instructor.name", "Claire Fontaine"),
            ("instructor.email", "claire.fontaine@region.example.fr"),
            ("service", "Direction de la culture et du patrimoine"),
            ("service.email", "culture@region.example.fr"),
            ("amount_requested", "30000.00"),
            ("amount_granted", "26956.00"),
            ("amount_paid", "10782.40"),
            ("url", "https://aides.region.example.fr/dossiers/AR-26-0412"),
            ("extra.commune", "Crest"),
        ],
    )
}

/// A small company whose export gives only what a message needs.
fn company(step: &str) -> Dossier {
    dossier(
        "2026-00587",
        step,
        status(step),
        &[
            ("reference", "AR-26-0587"),
            ("title", "Remplacement d'une scie à panneaux"),
            ("beneficiary.name", "Menuiserie Dumont SARL"),
            ("beneficiary.email", "menuiserie.dumont@example.fr"),
        ],
    )
}

/// The event of a case; a field change is always the granted amount's.
fn event(kind: EventKind, from: Option<&str>, step: &str) -> Event {
    let mut event = Event::new(kind, at(DETECTED_AT));
    match kind {
        EventKind::Created | EventKind::Reappeared => {
            event.to_step = Some(step.to_owned());
        }
        EventKind::StepChanged => {
            event.from_step = from.map(str::to_owned);
            event.to_step = Some(step.to_owned());
        }
        EventKind::FieldChanged => {
            event.field = Some("amount_granted".to_owned());
            event.old_value = Some("24000.00".to_owned());
            event.new_value = Some("26956.00".to_owned());
        }
        EventKind::Disappeared => {
            event.from_step = from.map(str::to_owned);
        }
        // Stalled in its step past the 90th percentile.
        EventKind::Stalled => {
            event.from_step = Some(step.to_owned());
            event.new_value = Some("p90".to_owned());
        }
        // The justification period ends on 30 June 2027: the 30-day reminder.
        EventKind::Deadline => {
            event.field = Some("justification_due".to_owned());
            event.old_value = Some("2027-06-30".to_owned());
            event.new_value = Some("30".to_owned());
        }
        // In the instructor's weekly review: stalled, and its justification period
        // ends on 30 June 2027.
        EventKind::Review => {
            event.from_step = Some(step.to_owned());
            event.new_value = Some("stalled".to_owned());
            event.field = Some("justification_due".to_owned());
            event.old_value = Some("2027-06-30".to_owned());
        }
        EventKind::Message => unreachable!("messages never alert"),
    }
    event
}

/// The message as its recipient gets it, for the snapshot.
fn show(header: &str, message: &Message) -> String {
    format!(
        "{header}\nSubject: {}\n\n----- text -----\n{}\n----- html -----\n{}",
        message.subject, message.text, message.html
    )
}

/// What a reader must never see, whatever the dossier lacks.
fn assert_readable(what: &str, message: &Message) {
    let fail = |why: &str, part: &str| panic!("{what}: {why}:\n{part}");
    if message.subject.trim().is_empty() || message.subject.contains('\n') {
        fail("the subject is not one line", &message.subject);
    }
    for (part, name) in [
        (&message.subject, "subject"),
        (&message.text, "text"),
        (&message.html, "html"),
    ] {
        for needle in ["none", "None", "{{", "}}", "{%", "%}", "«  »", "« »", "()"] {
            if part.contains(needle) {
                fail(&format!("the {name} shows {needle:?}"), part);
            }
        }
    }
    let lines: Vec<&str> = message.text.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        // A value left out: doubled spaces, a space before a full stop or a comma.
        for needle in ["  ", " .", " ,", "( ", " )"] {
            if line.trim_start().contains(needle) {
                fail(&format!("line {line:?} holds {needle:?}"), &message.text);
            }
        }
        // A label with nothing after it ("Montant :") must introduce a list.
        if line.ends_with(" :") {
            let next = lines[i + 1..].iter().find(|l| !l.trim().is_empty());
            if !next.is_some_and(|l| l.starts_with("- ")) {
                fail(
                    &format!("line {line:?} announces a list that is not there"),
                    &message.text,
                );
            }
        }
    }
    let html = &message.html;
    for tag in [
        "p", "ul", "li", "a", "strong", "table", "tr", "td", "body", "html",
    ] {
        let opened =
            html.matches(&format!("<{tag}>")).count() + html.matches(&format!("<{tag} ")).count();
        let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
        let closed = html.matches(&close).count();
        if opened != closed {
            fail(&format!("{opened} {open} for {closed} {close}"), html);
        }
    }
    for empty in ["<p></p>", "<ul>\n</ul>", "<li></li>", "<strong></strong>"] {
        if html.contains(empty) {
            fail(&format!("the html holds an empty {empty}"), html);
        }
    }
}

fn snapshot(name: &str, suffix: &str, content: &str) {
    let mut settings = insta::Settings::clone_current();
    settings.set_snapshot_suffix(suffix);
    settings.set_omit_expression(true);
    settings.set_prepend_module_to_snapshot(false);
    settings.set_snapshot_path("snapshots/templates");
    settings.bind(|| insta::assert_snapshot!(name, content));
}

/// What the history says of a step: for the association, its scheme's history of
/// 312 dossiers (figures as `alertissimo stats` would give them); for the company,
/// which has no scheme, only the lifecycle's expected duration. Final steps have none.
fn delay(rules: &Rules, history: bool, step: &str) -> Option<Estimate> {
    const DAY: i64 = 86_400;
    let now = at(DETECTED_AT).timestamp();
    let lifecycle = History::new().finish(&rules.lifecycle, 30, now, rules.policy.tz);
    let fallback = lifecycle.estimate(None, step, now, now)?;
    Some(if history {
        Estimate {
            basis: Basis::Scheme,
            sample: 312,
            median: Some(23 * DAY),
            p80: Some(31 * DAY),
            p90: Some(38 * DAY),
            elapsed: 3 * DAY,
            remaining: Some(20 * DAY),
            low: Some(6 * DAY),
            high: Some(35 * DAY),
            overdue: false,
            sessions: false,
            extrapolated: false,
            past_p80: None,
            past_p90: None,
            dates: None,
        }
    } else {
        fallback
    })
}

/// Renders every rule for the dossiers `make` builds, under `region`.
fn render_every_rule(suffix: &str, region: Option<Region>, make: fn(&str) -> Dossier) {
    let (mut rules, connectors) = shipped();
    if let Some(region) = region {
        rules.region = region;
    }
    let connector = connectors
        .iter()
        .find(|c| c.name == CONNECTOR)
        .expect("the shipped portail-aides connector");
    let applicable = rules.for_connector(CONNECTOR);
    for case in CASES {
        let rule = rules
            .rule(case.rule)
            .unwrap_or_else(|| panic!("no shipped rule '{}'", case.rule));
        let dossier = make(case.step);
        let event = event(case.kind, case.from, case.step);
        let link = connector.link_for(&dossier);
        let mut delay = delay(&rules, dossier.get("scheme").is_some(), case.step);
        // A stalled dossier has been there long: 45 days, with about 12 to go.
        if let Some(d) = delay
            .as_mut()
            .filter(|_| matches!(case.kind, EventKind::Stalled | EventKind::Review))
        {
            d.elapsed = 45 * 86_400;
            d.remaining = d.remaining.map(|_| 12 * 86_400);
            d.overdue = true;
        }
        let scene = Scene {
            connector: CONNECTOR,
            link: link.as_deref(),
            dossier: &dossier,
            event: &event,
            delay: delay.as_ref(),
        };
        // The scene must be one the rule really fires on, or the snapshot shows
        // a message nobody would ever get.
        let plan = rules.plan(&applicable, &scene, at(DETECTED_AT));
        assert!(plan.failed.is_empty(), "{}: {:?}", case.rule, plan.failed);
        let planned = plan.alerts.iter().find(|a| a.rule.name == case.rule);
        let unaddressed = plan.unaddressed.iter().find(|(r, _)| r.name == case.rule);
        let (role, address, header) = match (planned, unaddressed) {
            (Some(a), _) => (
                a.role,
                a.address.clone(),
                format!("To: {} ({})", a.address, a.role),
            ),
            (None, Some((_, role))) => (
                *role,
                "nobody@example.org".to_owned(),
                format!("To: nobody: the dossier has no {role} address, so nothing is queued"),
            ),
            (None, None) => panic!("rule '{}' does not fire on its scene", case.rule),
        };
        let message = rules
            .render(rule, &scene, role, &address)
            .unwrap_or_else(|reason| panic!("{}: {reason}", case.rule));
        let what = format!("{} for {suffix}", case.rule);
        assert_readable(&what, &message);
        let header = format!(
            "Rule: {} (template {}), event {}\n{header}",
            rule.name,
            rule.template,
            event.kind.as_str()
        );
        snapshot(case.rule, suffix, &show(&header, &message));
    }
}

#[test]
fn every_rule_has_a_case() {
    let (rules, _) = shipped();
    let shipped: Vec<&str> = rules.rules.iter().map(|r| r.name.as_str()).collect();
    let cased: Vec<&str> = CASES.iter().map(|c| c.rule).collect();
    for name in &shipped {
        assert!(
            cased.contains(name),
            "rule '{name}' has no case in tests/it/templates.rs: add one so its message is snapshotted"
        );
    }
    for name in &cased {
        assert!(shipped.contains(name), "case for unknown rule '{name}'");
    }
}

#[test]
fn every_rule_for_an_association_with_every_field() {
    render_every_rule("association", Some(complete_region()), association);
}

#[test]
fn every_rule_for_a_company_with_the_required_fields_only() {
    render_every_rule("entreprise", None, company);
}

/// Alerts of one import to the beneficiary of every item, as one message.
fn digest(suffix: &str, items: &[(&str, Dossier, Event)]) {
    let (mut rules, connectors) = shipped();
    rules.region = complete_region();
    let connector = connectors
        .iter()
        .find(|c| c.name == CONNECTOR)
        .expect("the shipped portail-aides connector");
    let applicable = rules.for_connector(CONNECTOR);
    let links: Vec<Option<String>> = items
        .iter()
        .map(|(_, d, _)| connector.link_for(d))
        .collect();
    let mut rendered = Vec::new();
    let mut addresses = Vec::new();
    for ((rule, dossier, event), link) in items.iter().zip(&links) {
        let rule = rules.rule(rule).expect("a shipped rule");
        assert!(rule.digest, "rule '{}' does not go into digests", rule.name);
        let delay = delay(&rules, false, &dossier.step);
        let scene = Scene {
            connector: CONNECTOR,
            link: link.as_deref(),
            dossier,
            event,
            delay: delay.as_ref(),
        };
        let plan = rules.plan(&applicable, &scene, at(DETECTED_AT));
        let address = plan
            .alerts
            .iter()
            .find(|a| a.rule == rule && a.role == "beneficiary")
            .map(|a| a.address.clone())
            .unwrap_or_else(|| panic!("rule '{}' does not fire on its scene", rule.name));
        let ctx = rules.context(&scene, Some(("beneficiary", &address)));
        addresses.push(address);
        rendered.push((rule.template.as_str(), ctx));
    }
    let message = rules
        .templates
        .render_many(&rendered)
        .unwrap_or_else(|reason| panic!("digest: {reason}"));
    assert_readable(&format!("digest {suffix}"), &message);
    addresses.dedup();
    assert_eq!(addresses.len(), 1, "a digest goes to one person");
    let header = format!(
        "Digest of {}\nTo: {} (beneficiary)",
        items
            .iter()
            .map(|(rule, d, _)| format!("{rule} ({})", d.reference()))
            .collect::<Vec<_>>()
            .join(", "),
        addresses[0]
    );
    snapshot("digest", suffix, &show(&header, &message));
}

/// A second dossier of the same association, filed the year before.
fn association_second_dossier(step: &str) -> Dossier {
    let mut d = association(step);
    d.id = "2025-01187".to_owned();
    for (k, v) in [
        ("reference", "AR-25-1187"),
        ("title", "Résidence d'artistes au Moulin de la Pipe"),
        ("filed_on", "2025-11-03"),
        ("url", "https://aides.region.example.fr/dossiers/AR-25-1187"),
        ("amount_requested", "8500.00"),
    ] {
        d.fields.insert_text(k, v);
    }
    for k in [
        "decided_on",
        "justification_due",
        "expires_on",
        "amount_granted",
        "amount_paid",
    ] {
        d.fields.remove(k);
    }
    d
}

#[test]
fn digest_of_three_alerts_to_one_beneficiary() {
    // One import: the first dossier's convention is signed with a new amount,
    // and the second dossier goes to the vote.
    let changed = EventKind::StepChanged;
    digest(
        "deux-dossiers",
        &[
            (
                "convention-signee",
                association("convention"),
                event(changed, Some("accorde"), "convention"),
            ),
            (
                "montant-modifie",
                association("convention"),
                event(EventKind::FieldChanged, None, "convention"),
            ),
            (
                "en-commission",
                association_second_dossier("commission"),
                event(changed, Some("instruction"), "commission"),
            ),
        ],
    );
}

/// Issue 19: a dossier waiting for the Commission permanente, whose step has a
/// calendar of sessions, is told the session it is expected at, and for 9 in 10
/// the latest one; without history, the first it can reach, said as indicative.
#[test]
fn issue_19_a_step_that_ends_at_a_session_names_the_session() {
    let (rules, connectors) = shipped();
    let connector = connectors
        .iter()
        .find(|c| c.name == CONNECTOR)
        .expect("the shipped portail-aides connector");
    let rule = rules.rule("en-commission").expect("the en-commission rule");
    let dossier = association("commission");
    let event = event(EventKind::StepChanged, Some("instruction"), "commission");
    let link = connector.link_for(&dossier);
    let now = at(DETECTED_AT);
    let sessions = |basis, low: i64, high: Option<i64>| {
        const DAY: i64 = 86_400;
        Estimate {
            basis,
            sample: if basis == Basis::Lifecycle { 0 } else { 140 },
            median: Some(low * DAY),
            p80: None,
            p90: None,
            elapsed: 0,
            remaining: Some(low * DAY),
            low: (basis != Basis::Lifecycle).then_some(low * DAY),
            high: high.map(|h| h * DAY),
            overdue: false,
            sessions: true,
            extrapolated: false,
            past_p80: None,
            past_p90: None,
            dates: None,
        }
        .dated(now, chrono_tz::Europe::Paris)
    };
    let text = |delay: &Estimate| {
        let scene = Scene {
            connector: CONNECTOR,
            link: link.as_deref(),
            dossier: &dossier,
            event: &event,
            delay: Some(delay),
        };
        rules
            .render(rule, &scene, "beneficiary", "contact@asso.example.org")
            .unwrap_or_else(|reason| panic!("{reason}"))
            .text
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    };
    // 22 June 2026: the session of 17 July, and for 9 in 10 that of 25 September.
    let from_history = text(&sessions(Basis::Scheme, 25, Some(95)));
    assert!(
        from_history.contains(
            "votre dossier devrait être examiné lors de la séance du 17 juillet 2026, et pour 9 dossiers sur 10 au plus tard lors de celle du 25 septembre 2026"
        ),
        "{from_history}"
    );
    let indicative = text(&sessions(Basis::Lifecycle, 25, None));
    assert!(
        indicative.contains(
            "Votre dossier pourra être examiné lors de la séance du 17 juillet 2026, la première qu'il peut rejoindre (date indicative"
        ),
        "{indicative}"
    );
}
