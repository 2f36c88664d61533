//! A dossier's staff page and the reply form (issue 21, item 2).
//!
//! - `GET /instruction/dossiers/{key}`: the whole record: the current step
//!   and the delay to expect, the amounts, the beneficiary's contact, every
//!   exchange (direction, author, channel, forwarding), and the timeline of
//!   its events (steps, field changes, the source's messagerie, stalls,
//!   deadlines) with every alert sent about it (recipient, rule, each
//!   delivery attempt and its outcome);
//! - `POST /instruction/dossiers/{key}/reponses` (`texte`, `csrf`): records
//!   the service's answer (`Side::Service`, `Channel::Web`, written by the
//!   session's address) for the beneficiary's first address, whose e-mail the
//!   dispatcher sends; then 303 back to the page. At most [`MAX_TEXT`]
//!   characters, [`PER_HOUR`] messages an hour by one address; the same text
//!   again within [`RESENT_WITHIN`] is recorded once.
//!
//! The key is the dossier's on the beneficiary's side ([`super::dossier::key`]).
//! A dossier the session may not see (another instructor's, unless
//! `pilotage`), an unknown or purged one, answer the same 404 by both paths.
//! The page served and each reply are recorded in the dossier's audit
//! (`staff-dossier`, `staff-reply`).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use minijinja::{Value, context};
use tracing::info;

use super::WebState;
use super::dossier::{amount, day, delay_value};
use super::front::{Current, flatten};
use super::guard;
use super::staff::StaffAsker;
use crate::lifecycle::Lifecycle;
use crate::model::{Event, EventKind};
use crate::store::{Channel, ExchangeKind, Replied, Side, StaffPage};

/// The longest reply, in characters.
pub const MAX_TEXT: usize = 5_000;
/// Replies one address may write within an hour.
pub const PER_HOUR: u32 = 60;
/// The same reply posted again within this long is the same one (a double
/// click), recorded once: as on the beneficiaries' form.
pub const RESENT_WITHIN: chrono::TimeDelta = super::write::RESENT_WITHIN;

/// An instant as a French date and time in `tz`.
fn moment(at: DateTime<Utc>, tz: Tz) -> String {
    format!(
        "{} à {}",
        day(at, tz),
        at.with_timezone(&tz).format("%H:%M")
    )
}

/// `GET /instruction/dossiers/{key}`.
pub(super) async fn page(
    State(state): State<WebState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(key): Path<String>,
) -> Response {
    let staff = match StaffAsker::of(&state, peer, &headers).await {
        Ok(staff) => staff,
        Err(answer) => return answer,
    };
    let rowid = match staff.dossier(&key).await {
        Ok(Some(rowid)) => rowid,
        Ok(None) => return staff.not_found(),
        Err(answer) => return answer,
    };
    let now = Utc::now();
    let (who, client) = (staff.email.clone(), staff.asker.client.clone());
    // Read beside the writer; then the page served is recorded.
    let found = flatten(staff.asker.store.read(move |s| s.staff_page(rowid)).await);
    let found = match found {
        Ok(Some(found)) => found,
        Ok(None) => return staff.not_found(),
        Err(e) => return staff.asker.unavailable(&e),
    };
    let recorded = staff
        .asker
        .store
        .call(move |s| s.record_staff(&who, "staff-dossier", &[rowid], &client, now))
        .await;
    if let Err(e) = flatten(recorded) {
        return staff.asker.unavailable(&e);
    }
    let current = Arc::clone(&staff.asker.front.current.borrow());
    let delays = match current.delays.get(now).await {
        Ok(delays) => delays,
        Err(e) => return staff.asker.unavailable(&e),
    };
    let stored = &found.dossier.stored;
    let delay = delays.of(&stored.dossier, stored.step_entered_at, now);
    let tz = staff.asker.front.tz;
    let title = format!("Dossier {}", stored.dossier.reference());
    let ctx = context! {
        ..describe(&found, &current, tz),
        ..context! {
            delay => delay.as_ref().map(delay_value),
            reply => format!("{}/reponses", staff.href(rowid)),
            max_text => MAX_TEXT,
            max_text_said => format!("{}\u{a0}{:03}", MAX_TEXT / 1000, MAX_TEXT % 1000),
        }
    };
    staff.page("instruction_dossier", &title, ctx)
}

/// What the staff page shows of `page`.
fn describe(page: &StaffPage, current: &Current, tz: Tz) -> Value {
    let stored = &page.dossier.stored;
    let d = &stored.dossier;
    let lifecycle = &current.rules.lifecycle;
    let exchanges = exchanges(page, tz);
    let timeline = timeline(page, lifecycle, tz);
    context! {
        reference => d.reference(),
        project => d.text("title"),
        scheme => d.text("scheme"),
        connector => &stored.connector,
        source_id => &d.id,
        status => &d.status,
        step => lifecycle.label(&d.step),
        since => day(stored.step_entered_at, tz),
        present => stored.present,
        requested => amount(d, "amount_requested"),
        granted => amount(d, "amount_granted"),
        paid => amount(d, "amount_paid"),
        beneficiary => d.text("beneficiary.name"),
        siret => d.text("beneficiary.siret"),
        emails => crate::rules::Recipient::Beneficiary
            .addresses(d)
            .into_iter()
            .map(str::to_owned)
            .collect::<Vec<_>>(),
        instructor => d.text("instructor.name"),
        instructor_email => d.text("instructor.email"),
        portal => current.sources.link_of(&stored.connector, d),
        staff_link => d.text("instructor.url"),
        exchanges => exchanges,
        timeline => timeline,
    }
}

/// The exchanges of `page`, oldest first, as the page shows them.
fn exchanges(page: &StaffPage, tz: Tz) -> Vec<Value> {
    page.exchanges
        .iter()
        .map(|x| {
            context! {
                date => moment(x.at, tz),
                from_beneficiary => x.side == Side::Beneficiary,
                author => &x.author,
                channel => match x.channel {
                    Channel::Web => "en ligne",
                    Channel::Email => "par e-mail",
                },
                kind => match x.kind {
                    ExchangeKind::Message => None,
                    ExchangeKind::AutoReply => Some("réponse automatique, ni transmise ni répondue"),
                    ExchangeKind::Bounce => Some("avis de non-remise, ni transmis ni répondu"),
                },
                forwarded => forwarding(x.status.as_deref(), x.sent_at, x.reason.as_deref(), tz),
                recipient => &x.recipient,
                text => &x.body,
            }
        })
        .collect()
}

/// The events and the alerts of `page`, in time order: each alert with its
/// delivery attempts.
fn timeline(page: &StaffPage, lifecycle: &Lifecycle, tz: Tz) -> Vec<Value> {
    let mut timeline: Vec<(DateTime<Utc>, Value)> = page
        .events
        .iter()
        .map(|e| {
            let what = event_text(&e.event, lifecycle);
            let date = moment(e.event.occurred_at, tz);
            let entry = context! {
                date => date, what => what, baseline => e.baseline, deliveries => Vec::<Value>::new(),
            };
            (e.event.occurred_at, entry)
        })
        .collect();
    for (a, attempts) in &page.alerts {
        let deliveries: Vec<Value> = attempts
            .iter()
            .map(|t| {
                context! {
                    date => moment(t.attempted_at, tz),
                    outcome => outcome(&t.outcome),
                    reply => &t.reply,
                }
            })
            .collect();
        let who = if a.recipient.is_empty() {
            "destinataire effacé"
        } else {
            a.recipient.as_str()
        };
        let what = format!(
            "Alerte « {} » (règle {}) pour {who} ({}) : {}",
            a.template,
            a.rule,
            role(&a.role),
            status(&a.status, a.reason.as_deref()),
        );
        let date = moment(a.created_at, tz);
        timeline.push((
            a.created_at,
            context! { date => date, what => what, baseline => false, deliveries => deliveries },
        ));
    }
    timeline.sort_by_key(|(at, _)| *at);
    timeline.into_iter().map(|(_, v)| v).collect()
}

/// An exchange's forwarding, in French; none when nothing is forwarded.
fn forwarding(
    status: Option<&str>,
    sent_at: Option<DateTime<Utc>>,
    reason: Option<&str>,
    tz: Tz,
) -> Option<String> {
    Some(match (status?, sent_at) {
        ("sent", Some(at)) => format!("transmis le {}", moment(at, tz)),
        ("sent", None) => "transmis".to_owned(),
        ("failed", _) => format!("non transmis : {}", reason.unwrap_or("échec de l'envoi")),
        _ => match reason {
            Some(reason) => format!("en attente d'envoi (dernier essai : {reason})"),
            None => "en attente d'envoi".to_owned(),
        },
    })
}

/// An alert's recipient role, in French.
fn role(role: &str) -> &str {
    match role {
        "beneficiary" => "bénéficiaire",
        "instructor" => "instructeur",
        "service" => "service",
        "address" => "adresse fixe",
        other => other,
    }
}

/// An alert's state, in French.
fn status(status: &str, reason: Option<&str>) -> String {
    let said = match status {
        "pending" => "en attente d'envoi",
        "sending" => "en cours d'envoi",
        "sent" => "envoyée",
        "failed" => "échec",
        "cancelled" => "annulée",
        other => other,
    };
    match reason {
        Some(reason) => format!("{said} ({reason})"),
        None => said.to_owned(),
    }
}

/// A delivery attempt's outcome, in French.
fn outcome(outcome: &str) -> &str {
    match outcome {
        "sent" => "remise au serveur de messagerie",
        "transient" => "échec temporaire, nouvel essai prévu",
        "permanent" => "refus définitif",
        "interrupted" => "interrompue",
        other => other,
    }
}

/// An event, in French.
fn event_text(e: &Event, lifecycle: &Lifecycle) -> String {
    let label = |s: &Option<String>| s.as_deref().map_or("?", |s| lifecycle.label(s)).to_owned();
    let text = |s: &Option<String>| s.clone().unwrap_or_else(|| "(vide)".to_owned());
    match e.kind {
        EventKind::Created => format!("Dossier enregistré, à l'étape « {} »", label(&e.to_step)),
        EventKind::StepChanged => format!(
            "Étape : « {} » → « {} »",
            label(&e.from_step),
            label(&e.to_step)
        ),
        EventKind::FieldChanged => format!(
            "Champ {} : {} → {}",
            e.field.as_deref().unwrap_or("?"),
            text(&e.old_value),
            text(&e.new_value)
        ),
        EventKind::Disappeared => "Absent de l'export de la source".to_owned(),
        EventKind::Reappeared => "De retour dans l'export de la source".to_owned(),
        EventKind::Message => format!(
            "Messagerie de la source{} : {}",
            e.field
                .as_deref()
                .map(|f| format!(", {f}"))
                .unwrap_or_default(),
            text(&e.new_value)
        ),
        EventKind::Stalled => format!("Bloqué à l'étape « {} »", label(&e.from_step)),
        EventKind::Deadline => format!(
            "Rappel d'échéance ({}, le {}) : {} jours avant",
            e.field.as_deref().unwrap_or("?"),
            e.old_value.as_deref().unwrap_or("?"),
            e.new_value.as_deref().unwrap_or("?")
        ),
        EventKind::Review => "Revue périodique de l'instructeur".to_owned(),
    }
}

/// `POST /instruction/dossiers/{key}/reponses`: records the service's answer.
pub(super) async fn reply(
    State(state): State<WebState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(key): Path<String>,
    body: Bytes,
) -> Response {
    let staff = match StaffAsker::of(&state, peer, &headers).await {
        Ok(staff) => staff,
        Err(answer) => return answer,
    };
    let token = guard::field(&body, "csrf").unwrap_or_default();
    if !guard::csrf_valid(&staff.secret, &format!("session:{}", staff.cookie), &token) {
        return staff.asker.forbidden();
    }
    let rowid = match staff.dossier(&key).await {
        Ok(Some(rowid)) => rowid,
        Ok(None) => return staff.not_found(),
        Err(answer) => return answer,
    };
    let text = guard::field(&body, "texte").unwrap_or_default();
    let text = text.trim().replace("\r\n", "\n");
    if text.is_empty() || text.chars().count() > MAX_TEXT {
        return staff.asker.refusal(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Réponse non enregistrée",
            &format!(
                "Votre réponse doit compter entre 1 et {MAX_TEXT} caractères. \
                 Revenez à la page du dossier pour la reprendre."
            ),
        );
    }
    let now = Utc::now();
    let (who, client) = (staff.email.clone(), staff.asker.client.clone());
    let recorded = flatten(
        staff
            .asker
            .store
            .call(move |s| {
                s.record_reply(rowid, (&who, &client), text, (PER_HOUR, RESENT_WITHIN), now)
            })
            .await,
    );
    match recorded {
        Ok(Replied::Recorded) => {
            info!("A staff member answered a beneficiary from the staff view.");
            staff.asker.front.current.borrow().wake.notify_one();
            staff.asker.front.lists.forget();
            let to = staff.href(rowid);
            let to = to.strip_prefix(&staff.asker.front.base).unwrap_or(&to);
            staff.asker.redirect(&format!("{to}#echanges"), None)
        }
        Ok(Replied::NoDossier) => staff.not_found(),
        Ok(Replied::Limited) => staff.asker.refusal(
            StatusCode::TOO_MANY_REQUESTS,
            "Trop de réponses",
            "Vous avez écrit de nombreuses réponses en peu de temps. \
             Merci de réessayer dans une heure.",
        ),
        Err(e) => staff.asker.unavailable(&e),
    }
}
