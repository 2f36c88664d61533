//! The front office's dossier page and message pages (issue 20, item 5).
//!
//! - `GET /dossiers/{key}`: one of the session's dossiers: its steps passed,
//!   with dates, and those ahead (the lifecycle's order and `next`); the
//!   current step, what the beneficiary must send (`pieces`, the scheme's own
//!   included) and the delay to expect (the Region's history: the 80 % interval
//!   given the time already spent, and what it rests on; a session's date when
//!   a session ends the step; the lifecycle's indicative delay, said as such);
//!   the amounts requested, granted and paid, and the payments' dates (when
//!   the source's `amount_paid` changed); the messages Alertissimo sent about it
//!   to this address; the exchanges of the source's messagerie; whom to
//!   contact, and the link to the source's portal;
//! - `GET /dossiers/{key}/messages/{message}`: one of those messages, as it left;
//! - `POST /dossiers/{key}/messages`: a message to the service ([`super::write`]).
//!
//! A dossier's `key` is an HMAC of its row id under the front office's secret
//! ([`key`]), a message's one of its Message-ID: nobody can guess another
//! dossier's address from theirs. A key that is not one of the session's
//! dossiers (unknown, another beneficiary's, purged) answers the same 404 page;
//! without a session, every address answers 303 to the sign-in page. Each page
//! served is recorded in the dossier's audit (`dossier`, `message`).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use minijinja::{Value, context};

use super::WebState;
use super::front::{Asker, Current, FrontOffice, flatten};
use super::guard;
use crate::delays::{Basis, Estimate};
use crate::lifecycle::Lifecycle;
use crate::model::{Dossier, EventKind, FieldKind};
use crate::rules::french;
use crate::store::{DossierPage, KeptMessage};

/// How many hex digits of an HMAC make an address: 128 bits.
const KEY_DIGITS: usize = 32;
/// The steps ahead shown at most (the lifecycle may loop: `ajourne`).
const AHEAD: usize = 8;

/// The dossier pages' routes.
pub(super) fn routes() -> Router<WebState> {
    Router::new()
        .route("/dossiers/{key}", get(dossier))
        .route("/dossiers/{key}/messages/{message}", get(message))
}

/// The dossier pages' forms that carry a message: their bodies may be larger
/// ([`super::MAX_MESSAGE_BODY`]).
pub(super) fn message_routes() -> Router<WebState> {
    Router::new().route("/dossiers/{key}/messages", post(super::write::write))
}

/// The address key of dossier `rowid`, under `secret`.
pub(super) fn key(secret: &[u8], rowid: i64) -> String {
    crate::dispatch::exchanges::dossier_key(secret, rowid)
}

/// The address key of the message `message_id`, under `secret`.
fn message_key(secret: &[u8], message_id: &str) -> String {
    let mut key = guard::csrf_token(secret, &format!("message:{message_id}"));
    key.truncate(KEY_DIGITS);
    key
}

/// What a signed-in request for a dossier found.
pub(super) struct Found {
    pub(super) asker: Asker,
    pub(super) email: String,
    pub(super) csrf: String,
    pub(super) secret: Vec<u8>,
    pub(super) page: DossierPage,
    /// The row ids of every dossier of the session (the rate limit of
    /// messages counts them all).
    pub(super) mine: Vec<i64>,
}

/// The session's dossier whose key is `key`, its page recorded as `action`;
/// or the answer: 303 without a session, 404 when it is not the session's.
pub(super) async fn find(
    state: &WebState,
    peer: SocketAddr,
    headers: &HeaderMap,
    key: String,
    action: &'static str,
) -> Result<Found, Response> {
    let Some(asker) = Asker::of(state, peer, headers) else {
        return Err(super::unsubscribe::not_found().await);
    };
    let Some((email, cookie)) = asker.session(headers).await? else {
        return Err(asker.redirect("", None));
    };
    let secret = asker.secret().await?;
    let (who, client, with) = (email.clone(), asker.client.clone(), secret.clone());
    let found = flatten(
        asker
            .store
            .call(move |s| {
                let mine = s.beneficiary_dossiers(&who)?;
                let rows: Vec<i64> = mine.iter().map(|d| d.stored.rowid).collect();
                let Some(d) = mine
                    .into_iter()
                    .find(|d| self::key(&with, d.stored.rowid) == key)
                else {
                    return Ok(None);
                };
                s.dossier_page(&who, d, (action, &client), Utc::now())
                    .map(|page| Some((page, rows)))
            })
            .await,
    );
    match found {
        Ok(Some((page, mine))) => Ok(Found {
            csrf: guard::csrf_token(&secret, &format!("session:{cookie}")),
            asker,
            email,
            secret,
            page,
            mine,
        }),
        Ok(None) => Err(not_yours(&asker)),
        Err(e) => Err(asker.unavailable(&e)),
    }
}

/// The one answer for an address that is not one of the session's.
pub(super) fn not_yours(asker: &Asker) -> Response {
    asker.refusal(
        StatusCode::NOT_FOUND,
        "Page introuvable",
        "Cette page n'existe pas, ou elle ne concerne pas l'un de vos dossiers. \
         Retrouvez tous vos dossiers depuis la page « Mes dossiers d'aide ».",
    )
}

/// `GET /dossiers/{key}`: the dossier's page.
async fn dossier(
    State(state): State<WebState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(key): Path<String>,
) -> Response {
    match find(&state, peer, &headers, key, "dossier").await {
        Ok(found) => show(found, StatusCode::OK, &super::write::Form::default()).await,
        Err(answer) => answer,
    }
}

/// The dossier's page, answering `status`, its message form as `form` left
/// it (a refused message is shown again, with why).
pub(super) async fn show(found: Found, status: StatusCode, form: &super::write::Form) -> Response {
    let current = Arc::clone(&found.asker.front.current.borrow());
    let now = Utc::now();
    let delays = match current.delays.get(now).await {
        Ok(delays) => delays,
        Err(e) => return found.asker.unavailable(&e),
    };
    let answers = match super::write::answers_if_waiting(&found, now).await {
        Ok(answers) => answers,
        Err(e) => return found.asker.unavailable(&e),
    };
    let stored = &found.page.dossier.stored;
    let delay = delays.of(&stored.dossier, stored.step_entered_at, now);
    let tz = found.asker.front.tz;
    let own = format!(
        "{}dossiers/{}",
        found.asker.front.base,
        self::key(&found.secret, stored.rowid)
    );
    let base = format!("{own}/messages/");
    let messages: Vec<Value> = found
        .page
        .messages
        .iter()
        .map(|m| {
            context! {
                date => day(m.sent_at, tz),
                subject => &m.subject,
                href => format!("{base}{}", message_key(&found.secret, &m.message_id)),
            }
        })
        .collect();
    let ctx = context! {
        ..describe(&found.page, (&current, &found.asker.front), delay.as_ref(), tz),
        ..context! {
            signed_in => &found.email,
            csrf => &found.csrf,
            messages => messages,
            list => format!("{}dossiers", found.asker.front.base),
            write => super::write::section(
                &found.page,
                form,
                answers,
                (&own, tz, found.asker.front.settings.service_email.as_deref()),
            ),
        }
    };
    let title = format!("Dossier {}", stored.dossier.reference());
    found.asker.page(status, "dossier", &title, ctx)
}

/// `GET /dossiers/{key}/messages/{message}`: one message sent about the dossier.
async fn message(
    State(state): State<WebState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path((key, message)): Path<(String, String)>,
) -> Response {
    let found = match find(&state, peer, &headers, key, "message").await {
        Ok(found) => found,
        Err(answer) => return answer,
    };
    let Some(m): Option<&KeptMessage> = found
        .page
        .messages
        .iter()
        .find(|m| message_key(&found.secret, &m.message_id) == message)
    else {
        return not_yours(&found.asker);
    };
    let stored = &found.page.dossier.stored;
    let reference = stored.dossier.reference();
    found.asker.page(
        StatusCode::OK,
        "message",
        m.subject.as_deref().unwrap_or("Message envoyé"),
        context! {
            signed_in => &found.email,
            csrf => &found.csrf,
            reference => reference,
            date => day(m.sent_at, found.asker.front.tz),
            text => &m.text,
            back => format!("{}dossiers/{}", found.asker.front.base, self::key(&found.secret, stored.rowid)),
        },
    )
}

/// An instant as a French date in `tz`.
pub(super) fn day(at: DateTime<Utc>, tz: Tz) -> String {
    french::date(at.with_timezone(&tz).date_naive())
}

/// An amount field of `dossier`, in French.
fn amount(dossier: &Dossier, name: &str) -> Option<String> {
    match dossier.get(name) {
        Some(crate::model::Value::Amount(cents)) => Some(french::amount(*cents)),
        _ => None,
    }
}

/// What the dossier page shows of `page`: the dossier, its timeline, its
/// delay, its amounts and payments, the source's exchanges, whom to contact.
fn describe(
    page: &DossierPage,
    (current, front): (&Current, &FrontOffice),
    delay: Option<&Estimate>,
    tz: Tz,
) -> Value {
    let stored = &page.dossier.stored;
    let d = &stored.dossier;
    let lifecycle = &current.rules.lifecycle;
    let (passed, ahead) = timeline(page, lifecycle, tz);
    let mut payments = Vec::new();
    let mut exchanges = Vec::new();
    for e in &page.events {
        let e = &e.event;
        match e.kind {
            EventKind::FieldChanged if e.field.as_deref() == Some("amount_paid") => {
                let paid = e
                    .new_value
                    .as_deref()
                    .map(|t| crate::model::Value::from_text(FieldKind::Amount, t));
                if let Some(crate::model::Value::Amount(cents)) = paid {
                    payments.push(
                        context! { date => day(e.occurred_at, tz), total => french::amount(cents) },
                    );
                }
            }
            EventKind::Message => exchanges.push(context! {
                date => day(e.occurred_at, tz),
                from => &e.field,
                text => &e.new_value,
            }),
            _ => {}
        }
    }
    context! {
        reference => d.reference(),
        project => d.text("title"),
        scheme => d.text("scheme"),
        step => lifecycle.label(&d.step),
        is_final => lifecycle.step(&d.step).is_some_and(|s| s.is_final),
        since => day(stored.step_entered_at, tz),
        present => stored.present,
        passed => passed,
        ahead => ahead,
        pieces => lifecycle.pieces(&d.step, d.text("scheme")).to_vec(),
        delay => delay.map(delay_value),
        requested => amount(d, "amount_requested"),
        granted => amount(d, "amount_granted"),
        paid => amount(d, "amount_paid"),
        payments => payments,
        exchanges => exchanges,
        instructor => d.text("instructor.name"),
        service => d.text("service").or(front.region.service.as_deref()),
        contact_email => d.text("service.email").or(front.settings.theme.email.as_deref()),
        contact_phone => front.settings.theme.phone.as_deref(),
        portal => current.sources.link_of(&stored.connector, d),
        system => current.sources.label(&stored.connector),
    }
}

/// The steps passed (each with the date it was entered, the current one
/// last) and the steps ahead, each a list of alternatives.
fn timeline(page: &DossierPage, lifecycle: &Lifecycle, tz: Tz) -> (Vec<Value>, Vec<Vec<String>>) {
    let stored = &page.dossier.stored;
    let mut passed: Vec<(String, String)> = page
        .events
        .iter()
        .filter(|e| matches!(e.event.kind, EventKind::Created | EventKind::StepChanged))
        .filter_map(|e| {
            let to = e.event.to_step.as_deref()?;
            Some((lifecycle.label(to).to_owned(), day(e.event.occurred_at, tz)))
        })
        .collect();
    passed.dedup_by(|a, b| a.0 == b.0);
    let label = lifecycle.label(&stored.dossier.step).to_owned();
    if passed.last().is_none_or(|(l, _)| *l != label) {
        passed.push((label, day(stored.step_entered_at, tz)));
    }
    let last = passed.len() - 1;
    let passed = passed
        .into_iter()
        .enumerate()
        .map(|(i, (step, date))| context! { step => step, date => date, current => i == last })
        .collect();
    let mut ahead = Vec::new();
    let mut at = lifecycle.step(&stored.dossier.step);
    while let Some(step) = at
        && ahead.len() < AHEAD
    {
        let next: Vec<_> = lifecycle
            .next(&step.id)
            .into_iter()
            .filter(|n| n.order > step.order)
            .collect();
        if next.is_empty() {
            break;
        }
        ahead.push(next.iter().map(|n| n.label.clone()).collect());
        at = next.into_iter().find(|n| !n.is_final);
    }
    (passed, ahead)
}

/// The delay as the page says it: `kind` (`sessions`, `indicative`,
/// `history`), what it rests on, and its dates in French.
fn delay_value(e: &Estimate) -> Value {
    let dates = e.dates.as_ref();
    let date = |f: fn(&crate::delays::Prediction) -> Option<chrono::NaiveDate>| {
        dates.and_then(f).map(french::date)
    };
    let basis = match e.basis {
        Basis::Scheme => Some(format!("d'après {} dossiers de ce dispositif", e.sample)),
        Basis::Step => Some(format!(
            "d'après {} dossiers passés par cette étape, tous dispositifs confondus",
            e.sample
        )),
        Basis::Lifecycle => None,
    };
    let kind = match (e.sessions, e.basis) {
        (true, _) => "sessions",
        (false, Basis::Lifecycle) => "indicative",
        _ => "history",
    };
    let seconds = |s: Option<i64>| {
        s.and_then(|s| u64::try_from(s).ok())
            .map(|s| french::duration(std::time::Duration::from_secs(s)))
    };
    context! {
        kind => kind,
        basis => basis,
        expected => date(|p| p.expected),
        low => date(|p| p.low),
        high => date(|p| p.high),
        not_before => date(|p| p.not_before),
        usual => seconds(e.median),
        overdue => e.overdue,
    }
}
