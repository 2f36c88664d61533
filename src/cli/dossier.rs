//! `alertissimo dossier REF`: the timeline of one dossier, its messages and
//! their deliveries, its exchanges (issue 21: what the beneficiary and the
//! service wrote each other, through the front office, by e-mail or on the
//! source's messagerie, each with its direction, author, channel, kind and
//! forwarding), and the front office's audit of it (who signed in or saw it in
//! their list, when, from where).

use super::*;

/// The alerts of a dossier, each with its delivery attempts.
type Alerts = Vec<(crate::store::AlertRecord, Vec<crate::store::Attempt>)>;

pub(super) fn dossier(
    config: &Config,
    reference: &str,
    json: bool,
    as_of: Option<&str>,
) -> anyhow::Result<Exit> {
    let lifecycle = {
        let mut problems = Problems::default();
        Lifecycle::load(&config.lifecycle_path(), &mut problems)
            .with_context(|| format!("invalid lifecycle:\n{problems}"))?
    };
    let store = open_existing(config)?;
    let found = store.find_dossiers(reference)?;
    if found.is_empty() {
        eprintln!("no dossier with reference or id '{reference}'");
        return Ok(Exit::Failure);
    }
    let tz = config.timezone;
    let at = super::as_of(config, &store, as_of)?;
    let delays = store.delays(&lifecycle, config.delays.min_sample, at, tz)?;
    let mut all = Vec::new();
    for d in &found {
        let events = store.events(d.rowid)?;
        let alerts = store
            .alerts(None, Some(d.rowid), usize::MAX)?
            .into_iter()
            .map(|a| {
                let deliveries = store.deliveries(a.id)?;
                Ok((a, deliveries))
            })
            .collect::<Result<Alerts, crate::store::StoreError>>()?;
        let prediction = delays
            .of(&d.dossier, d.step_entered_at, at)
            .and_then(|e| e.dates);
        let audit = store.audit(d.rowid)?;
        let exchanges = exchanges(&store.exchanges(d.rowid)?, &events);
        if json {
            let mut one = as_json(d, &events, &alerts, &lifecycle, tz);
            one["delay"] = serde_json::to_value(&prediction)?;
            one["exchanges"] = serde_json::to_value(&exchanges)?;
            one["front_office"] = serde_json::to_value(&audit)?;
            all.push(one);
        } else {
            print(d, &events, &alerts, &lifecycle, tz);
            if let Some(p) = &prediction {
                out!("  {}", prediction_text(p));
            }
            print_exchanges(&exchanges, tz);
            print_audit(&audit, tz);
        }
    }
    if json {
        out!("{}", serde_json::to_string_pretty(&all)?);
    }
    Ok(Exit::Ok)
}

/// One dossier for `--json`.
fn as_json(
    d: &crate::store::StoredDossier,
    events: &[crate::store::StoredEvent],
    alerts: &Alerts,
    lifecycle: &Lifecycle,
    tz: chrono_tz::Tz,
) -> serde_json::Value {
    serde_json::json!({
        "connector": d.connector,
        "id": d.dossier.id,
        "reference": d.dossier.reference(),
        "step": d.dossier.step,
        "step_label": lifecycle.label(&d.dossier.step),
        "status": d.dossier.status,
        "step_entered_at": d.step_entered_at.with_timezone(&tz).to_rfc3339(),
        "present": d.present,
        "fields": d.dossier.fields,
        "events": events.iter().map(|e| serde_json::json!({
            "kind": e.event.kind.as_str(),
            "from_step": e.event.from_step,
            "to_step": e.event.to_step,
            "field": e.event.field,
            "old_value": e.event.old_value,
            "new_value": e.event.new_value,
            "occurred_at": e.event.occurred_at.with_timezone(&tz).to_rfc3339(),
            "detected_at": e.detected_at.with_timezone(&tz).to_rfc3339(),
            "run_id": e.run_id,
            "baseline": e.baseline,
        })).collect::<Vec<_>>(),
        "alerts": alerts.iter().map(|(a, deliveries)| {
            let mut v = serde_json::to_value(a).unwrap_or_default();
            v["deliveries"] = serde_json::to_value(deliveries).unwrap_or_default();
            v
        }).collect::<Vec<_>>(),
    })
}

/// One dossier for people: its state, its history, its messages.
fn print(
    d: &crate::store::StoredDossier,
    events: &[crate::store::StoredEvent],
    alerts: &Alerts,
    lifecycle: &Lifecycle,
    tz: chrono_tz::Tz,
) {
    out!(
        "{} — {} ({}, id {})",
        d.dossier.reference(),
        d.dossier.text("title").unwrap_or("sans intitulé"),
        d.connector,
        d.dossier.id
    );
    if let Some(name) = d.dossier.get("beneficiary.name") {
        out!("  bénéficiaire : {name}");
    }
    out!(
        "  étape : {} (« {} ») depuis le {}{}",
        lifecycle.label(&d.dossier.step),
        d.dossier.status,
        d.step_entered_at
            .with_timezone(&tz)
            .format("%d/%m/%Y %H:%M"),
        if d.present {
            ""
        } else {
            " — absent du dernier export"
        }
    );
    out!("  historique :");
    for e in events {
        let when = e
            .event
            .occurred_at
            .with_timezone(&tz)
            .format("%d/%m/%Y %H:%M");
        let what = event_text(&e.event, lifecycle);
        let baseline = if e.baseline { " [état initial]" } else { "" };
        out!(
            "    {when}  {:<13} {what}{baseline}  (import {})",
            e.event.kind.as_str(),
            e.run_id
        );
    }
    if !alerts.is_empty() {
        out!("  messages :");
    }
    for (a, deliveries) in alerts {
        print_alert(a, deliveries, tz);
    }
}

/// One exchange of a dossier, whatever its channel, as `dossier` lists it.
#[derive(Debug, serde::Serialize)]
struct Listed {
    /// When it was written or received.
    at: chrono::DateTime<chrono::Utc>,
    /// `beneficiary` or `service`; none for the source's messagerie, which
    /// does not say.
    direction: Option<&'static str>,
    /// The writer (an address, or the source's name for them).
    author: Option<String>,
    /// `web` (front office or staff view), `email`, or `source` (the source's
    /// messagerie).
    channel: &'static str,
    /// `message`, `auto_reply` or `bounce`.
    kind: &'static str,
    /// What was written.
    text: Option<String>,
    /// Whom it was forwarded to.
    recipient: Option<String>,
    /// `pending`, `sent` or `failed`; none when nothing is forwarded.
    status: Option<String>,
    /// When its forwarding left.
    sent_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Why its forwarding did not (yet) leave.
    reason: Option<String>,
}

/// The exchanges kept and the source's messages, in time order.
fn exchanges(kept: &[crate::store::Exchange], events: &[crate::store::StoredEvent]) -> Vec<Listed> {
    let mut all: Vec<Listed> = kept
        .iter()
        .map(|x| Listed {
            at: x.at,
            direction: Some(x.side.as_str()),
            author: Some(x.author.clone()),
            channel: x.channel.as_str(),
            kind: x.kind.as_str(),
            text: Some(x.body.clone()),
            recipient: x.recipient.clone(),
            status: x.status.clone(),
            sent_at: x.sent_at,
            reason: x.reason.clone(),
        })
        .collect();
    all.extend(
        events
            .iter()
            .filter(|e| e.event.kind == EventKind::Message)
            .map(|e| Listed {
                at: e.event.occurred_at,
                direction: None,
                author: e.event.field.clone(),
                channel: "source",
                kind: "message",
                text: e.event.new_value.clone(),
                recipient: None,
                status: None,
                sent_at: None,
                reason: None,
            }),
    );
    all.sort_by_key(|x| x.at);
    all
}

/// The exchanges of a dossier, two lines each: who wrote to whom, how, and
/// what became of it; the start of the text.
fn print_exchanges(exchanges: &[Listed], tz: chrono_tz::Tz) {
    if exchanges.is_empty() {
        return;
    }
    out!("  échanges :");
    let time = |t: chrono::DateTime<chrono::Utc>| t.with_timezone(&tz).format("%d/%m/%Y %H:%M");
    for x in exchanges {
        let direction = match x.direction {
            Some("beneficiary") => "bénéficiaire → service",
            Some(_) => "service → bénéficiaire",
            None => "sans direction connue",
        };
        let channel = match x.channel {
            "web" => "espace en ligne",
            "email" => "courriel",
            _ => "messagerie de la source",
        };
        let kind = match x.kind {
            "auto_reply" => "réponse automatique",
            "bounce" => "avis de non-remise",
            _ => "message",
        };
        let forwarding = match (x.status.as_deref(), &x.recipient) {
            (Some("sent"), Some(to)) => format!(
                "transmis à {to} le {}",
                x.sent_at.map(|t| time(t).to_string()).unwrap_or_default()
            ),
            (Some("pending"), Some(to)) => format!("en attente de transmission à {to}"),
            (Some("failed"), Some(to)) => format!("non transmis à {to}"),
            (_, None) if x.channel != "source" && x.kind == "message" => {
                "non transmis : aucun destinataire".to_owned()
            }
            _ => "non transmis".to_owned(),
        };
        let reason = x
            .reason
            .as_deref()
            .map(|r| format!(" ({r})"))
            .unwrap_or_default();
        out!(
            "    {}  {direction}, {channel}, {kind}, de {} : {forwarding}{reason}",
            time(x.at),
            x.author.as_deref().unwrap_or("?"),
        );
        let text = x.text.as_deref().unwrap_or("");
        let short: String = text.chars().take(160).collect();
        out!(
            "        « {}{} »",
            short.replace('\n', " "),
            if short.len() < text.len() { "…" } else { "" }
        );
    }
}

/// The front office's audit of a dossier, one line a record.
fn print_audit(audit: &[crate::store::AuditRecord], tz: chrono_tz::Tz) {
    if audit.is_empty() {
        return;
    }
    out!("  espace en ligne :");
    for r in audit {
        let what = match r.action.as_str() {
            "sign-in" => "connexion",
            "dossier" => "page du dossier consultée",
            "message" => "message envoyé relu en ligne",
            "staff-dossier" => "page agent du dossier consultée",
            "staff-reply" => "réponse écrite depuis la vue des agents",
            _ => "liste des dossiers consultée",
        };
        out!(
            "    {}  {what} par {}{}",
            r.at.with_timezone(&tz).format("%d/%m/%Y %H:%M"),
            r.email,
            r.client
                .as_deref()
                .map(|c| format!(" (depuis {c})"))
                .unwrap_or_default()
        );
    }
}

/// A prediction in a line, in French: the staff read it.
fn prediction_text(p: &crate::delays::Prediction) -> String {
    let day = |d: Option<chrono::NaiveDate>| d.map(|d| d.format("%d/%m/%Y").to_string());
    let basis = match p.basis {
        crate::delays::Basis::Scheme => format!("d'après {} dossiers de ce dispositif", p.sample),
        crate::delays::Basis::Step => format!("d'après {} dossiers, tous dispositifs", p.sample),
        crate::delays::Basis::Lifecycle => "délai indicatif du cycle de vie".to_owned(),
    };
    let basis = if p.sessions {
        format!("{basis}, selon le calendrier des séances")
    } else {
        basis
    };
    let interval = match (day(p.low), day(p.high), day(p.not_before)) {
        (Some(low), Some(high), _) => format!(", 8 sur 10 entre le {low} et le {high}"),
        (_, None, Some(not_before)) => format!(", pas avant le {not_before} (sans borne haute)"),
        _ => String::new(),
    };
    format!(
        "sortie d'étape attendue : {}{interval} ({basis})",
        day(p.expected).map_or_else(|| "inconnue".to_owned(), |d| format!("vers le {d}"))
    )
}

/// What an event says, in French.
fn event_text(event: &crate::model::Event, lifecycle: &Lifecycle) -> String {
    match event.kind {
        EventKind::Created => format!(
            "apparu à l'étape {}",
            lifecycle.label(event.to_step.as_deref().unwrap_or("?"))
        ),
        EventKind::StepChanged => format!(
            "{} → {}",
            lifecycle.label(event.from_step.as_deref().unwrap_or("?")),
            lifecycle.label(event.to_step.as_deref().unwrap_or("?"))
        ),
        EventKind::FieldChanged => format!(
            "{} : {} → {}",
            event.field.as_deref().unwrap_or("?"),
            event.old_value.as_deref().unwrap_or("(vide)"),
            event.new_value.as_deref().unwrap_or("(vide)")
        ),
        EventKind::Disappeared
            if event.field.as_deref() == Some(crate::model::DELETED_ON_SOURCE) =>
        {
            format!(
                "supprimé sur la source (motif : {})",
                event.new_value.as_deref().unwrap_or("non précisé")
            )
        }
        EventKind::Disappeared => "absent de l'export".to_owned(),
        EventKind::Reappeared => "de retour dans l'export".to_owned(),
        EventKind::Stalled => format!(
            "à l'étape {} depuis plus longtemps que prévu (seuil {})",
            lifecycle.label(event.from_step.as_deref().unwrap_or("?")),
            event.new_value.as_deref().unwrap_or("?")
        ),
        EventKind::Review => format!(
            "signalé dans le point périodique à l'instructeur{}",
            event
                .old_value
                .as_deref()
                .map(|d| format!(" (échéance le {d})"))
                .unwrap_or_default()
        ),
        EventKind::Deadline => format!(
            "échéance {} le {} : rappel à J-{}",
            event.field.as_deref().unwrap_or("?"),
            event.old_value.as_deref().unwrap_or("?"),
            event.new_value.as_deref().unwrap_or("?")
        ),
        EventKind::Message => {
            let text = event.new_value.as_deref().unwrap_or("");
            let short: String = text.chars().take(160).collect();
            format!(
                "message de {} : {}{}",
                event.field.as_deref().unwrap_or("?"),
                short.replace('\n', " "),
                if short.len() < text.len() { "…" } else { "" }
            )
        }
    }
}

/// One alert and its delivery attempts.
fn print_alert(
    a: &crate::store::AlertRecord,
    deliveries: &[crate::store::Attempt],
    tz: chrono_tz::Tz,
) {
    let status = match a.status.as_str() {
        "pending" => "en attente",
        "sending" => "en cours d'envoi",
        "sent" => "envoyé",
        "failed" => "échec",
        "cancelled" => "annulé",
        other => other,
    };
    out!(
        "    {}  {:<13} {} à {} ({}), prévu le {}{}",
        a.created_at.with_timezone(&tz).format("%d/%m/%Y %H:%M"),
        a.rule,
        status,
        a.recipient,
        a.role,
        a.due_at.with_timezone(&tz).format("%d/%m/%Y %H:%M"),
        a.reason
            .as_deref()
            .map(|r| format!(" — {r}"))
            .unwrap_or_default()
    );
    for d in deliveries {
        let outcome = match d.outcome.as_str() {
            "sent" => "remis",
            "transient" => "échec temporaire",
            "permanent" => "échec définitif",
            "interrupted" => "interrompu",
            other => other,
        };
        out!(
            "        {}  {outcome} ({}){}",
            d.attempted_at
                .with_timezone(&tz)
                .format("%d/%m/%Y %H:%M:%S"),
            if d.transport.is_empty() {
                "-"
            } else {
                d.transport.as_str()
            },
            d.reply
                .as_deref()
                .map(|r| format!(" : {r}"))
                .unwrap_or_default()
        );
    }
}
