//! A beneficiary writes to the instructing service from a dossier's page
//! (issue 21, item 1), and the page shows the exchanges.
//!
//! `POST /dossiers/{key}/messages` (`texte`, `csrf`): without a session, 303 to
//! the sign-in page; a `csrf` that does not verify, 403 (as every form); a key
//! that is not one of the session's dossiers, the same 404 as the page. A text
//! empty or longer than [`MAX_CHARS`] characters answers the page again (422)
//! with the text kept and why; so does the [`PER_HOUR`]-th message of the hour
//! from the same address (429), counted over all the session's dossiers. The
//! same text posted again within [`RESENT_WITHIN`] (a double click) is the
//! same message, recorded once. A
//! message accepted is recorded on the dossier (`store::exchanges`: side
//! beneficiary, channel web), its forwarding due at once, the dispatcher
//! woken, and the answer is 303 to the dossier's page, where it shows as sent.
//!
//! Its recipient is the dossier's instructor (the first address of
//! `instructor.email`), else its service (`service.email`), else `[web]
//! service_email`; with none of them, it is recorded all the same and the page
//! tells the beneficiary to contact the service directly.
//!
//! While the beneficiary's last message waits for an answer, the page says how
//! long the service usually takes (`delays::answers`, over every dossier's
//! exchanges, recomputed at most every [`ANSWERS_FRESH`]).

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
use super::dossier::{Found, day, find, show};
use super::front::{Asker, flatten};
use super::guard::{self, SESSION_COOKIE};
use crate::calendar::Business;
use crate::delays::answers::AnswerDelays;
use crate::model::Dossier;
use crate::store::{Channel, DossierPage, ExchangeKind, NewExchange, Side};

/// The longest message, in characters.
pub const MAX_CHARS: usize = 5_000;
/// Messages one address may write within an hour.
pub const PER_HOUR: u32 = 10;
/// The same text sent again within this long is the same message (recorded
/// once).
pub const RESENT_WITHIN: chrono::TimeDelta = chrono::TimeDelta::minutes(10);
/// How long the answer delays computed are reused.
pub const ANSWERS_FRESH: chrono::TimeDelta = chrono::TimeDelta::minutes(10);

/// The message form as the page shows it: empty, or a refused text and why.
#[derive(Debug, Default)]
pub(super) struct Form {
    /// The text written.
    pub text: String,
    /// Why it was refused.
    pub error: Option<String>,
}

/// The answer delays, computed at most every [`ANSWERS_FRESH`].
pub struct AnswerCache {
    business: Arc<Business>,
    last: tokio::sync::Mutex<Option<(DateTime<Utc>, AnswerDelays)>>,
}

impl AnswerCache {
    /// The business days the delays count (`/pilotage` reads them fresh).
    pub(super) fn business(&self) -> Arc<Business> {
        Arc::clone(&self.business)
    }

    /// An empty cache counting `business` days.
    pub fn new(business: Business) -> Self {
        Self {
            business: Arc::new(business),
            last: tokio::sync::Mutex::new(None),
        }
    }
}

/// `POST /dossiers/{key}/messages`: a message to the service.
pub(super) async fn write(
    State(state): State<WebState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(key): Path<String>,
    body: Bytes,
) -> Response {
    let Some(asker) = Asker::of(&state, peer, &headers) else {
        return super::unsubscribe::not_found().await;
    };
    let Some(cookie) = guard::cookie(&headers, SESSION_COOKIE).filter(|c| !c.is_empty()) else {
        return asker.redirect("", None);
    };
    let secret = match asker.secret().await {
        Ok(secret) => secret,
        Err(page) => return page,
    };
    let token = guard::field(&body, "csrf").unwrap_or_default();
    if !guard::csrf_valid(&secret, &format!("session:{cookie}"), &token) {
        return asker.forbidden();
    }
    // Audited as the page it shows (`web_audit` knows no other action); the
    // message itself is the exchange recorded, with its author and time.
    let found = match find(&state, peer, &headers, key.clone(), "dossier").await {
        Ok(found) => found,
        Err(answer) => return answer,
    };
    let text = guard::field(&body, "texte")
        .unwrap_or_default()
        .replace("\r\n", "\n");
    if let Err(why) = acceptable(&text) {
        let form = Form {
            text,
            error: Some(why),
        };
        return show(found, StatusCode::UNPROCESSABLE_ENTITY, &form).await;
    }
    let dossier = &found.page.dossier.stored;
    let new = NewExchange {
        dossier: dossier.rowid,
        side: Side::Beneficiary,
        channel: Channel::Web,
        kind: ExchangeKind::Message,
        author: found.email.clone(),
        body: text.trim().to_owned(),
        original: None,
        received_id: None,
        recipient: recipient(
            &dossier.dossier,
            found.asker.front.settings.service_email.as_deref(),
        ),
    };
    let (who, mine, now) = (found.email.clone(), found.mine.clone(), Utc::now());
    let recorded = flatten(
        found
            .asker
            .store
            .call(move |s| {
                // The same text again soon after: the form sent twice (a
                // double click, a page reloaded), recorded once.
                let again = s.exchanges(new.dossier)?.iter().rev().any(|x| {
                    x.side == Side::Beneficiary
                        && x.author == who
                        && x.body == new.body
                        && now - x.at < RESENT_WITHIN
                });
                if again {
                    return Ok(true);
                }
                if s.beneficiary_written_since(&who, &mine, now - chrono::TimeDelta::hours(1))?
                    >= PER_HOUR
                {
                    return Ok(false);
                }
                s.record_exchange(&new, now).map(|_| true)
            })
            .await,
    );
    match recorded {
        Ok(true) => {
            info!("A beneficiary wrote to the service from the front office.");
            found.asker.front.current.borrow().wake.notify_one();
            found
                .asker
                .redirect(&format!("dossiers/{key}#echanges"), None)
        }
        Ok(false) => {
            let form = Form {
                text,
                error: Some(format!(
                    "Vous avez déjà écrit {PER_HOUR} messages au cours de la dernière heure, \
                     le nombre maximal. Votre message n'a pas été envoyé : merci de réessayer \
                     dans une heure, ou de contacter le service (coordonnées plus bas)."
                )),
            };
            show(found, StatusCode::TOO_MANY_REQUESTS, &form).await
        }
        Err(e) => found.asker.unavailable(&e),
    }
}

/// Whether `text` may be sent, or why not, in French.
fn acceptable(text: &str) -> Result<(), String> {
    let length = text.trim().chars().count();
    if length == 0 {
        return Err(
            "Votre message est vide : écrivez votre question ou votre information \
                    avant de l'envoyer."
                .to_owned(),
        );
    }
    if length > MAX_CHARS {
        return Err(format!(
            "Votre message compte {} caractères, pour {} au plus : raccourcissez-le, ou \
             envoyez-le en plusieurs fois.",
            group(length),
            group(MAX_CHARS),
        ));
    }
    Ok(())
}

/// A count with its thousands apart, as French writes it ("5 000").
fn group(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push('\u{a0}');
        }
        out.push(digit);
    }
    out
}

/// Whom a beneficiary's message about `dossier` goes to: its instructor, its
/// service, else `fallback` ([`Dossier::service_recipient`], which the replies
/// by e-mail share).
fn recipient(dossier: &Dossier, fallback: Option<&str>) -> Option<String> {
    dossier.service_recipient(fallback)
}

/// Whether the beneficiary's last message on the page waits for an answer:
/// it was (or is being) forwarded to the service.
fn waiting(page: &DossierPage) -> bool {
    page.exchanges
        .iter()
        .rev()
        .find(|x| x.kind == ExchangeKind::Message)
        .is_some_and(|x| {
            x.side == Side::Beneficiary && matches!(x.status.as_deref(), Some("pending" | "sent"))
        })
}

/// The service's answer delays when the page's dossier waits for an answer
/// (none otherwise: nothing is computed).
pub(super) async fn answers_if_waiting(
    found: &Found,
    now: DateTime<Utc>,
) -> anyhow::Result<Option<AnswerDelays>> {
    if !waiting(&found.page) {
        return Ok(None);
    }
    let cache = &found.asker.front.answers;
    let mut last = cache.last.lock().await;
    if let Some((at, answers)) = *last
        && now - at < ANSWERS_FRESH
    {
        return Ok(Some(answers));
    }
    let business = Arc::clone(&cache.business);
    let answers = flatten(
        found
            .asker
            .store
            .call(move |s| s.answer_delays(now, &business))
            .await,
    )?;
    *last = Some((now, answers));
    Ok(Some(answers))
}

/// The page's variable `write`: the exchanges, oldest first (messages only:
/// auto-replies and bounces are not the beneficiary's concern), each `{mine,
/// date, time, text, state, sent}` (`state`: `pending`, `sent`, `failed` or
/// `kept`: no recipient), whether a message written now would reach the
/// service (`reachable`; `fallback` is `[web] service_email`), what the
/// service usually takes (`usual`: a number of business days, or none;
/// `waiting`), the form's `action`, `text`, `error` and `max` (`max_text`: as
/// French writes it).
pub(super) fn section(
    page: &DossierPage,
    form: &Form,
    answers: Option<AnswerDelays>,
    (own, tz, fallback): (&str, Tz, Option<&str>),
) -> Value {
    let time = |at: DateTime<Utc>| at.with_timezone(&tz).format("%-H h %M").to_string();
    let exchanges: Vec<Value> = page
        .exchanges
        .iter()
        .filter(|x| x.kind == ExchangeKind::Message)
        .map(|x| {
            context! {
                mine => x.side == Side::Beneficiary,
                date => day(x.at, tz),
                time => time(x.at),
                text => &x.body,
                state => x.status.as_deref().unwrap_or("kept"),
                sent => x.sent_at.map(|at| day(at, tz)),
            }
        })
        .collect();
    context! {
        exchanges => exchanges,
        waiting => answers.is_some(),
        reachable => recipient(&page.dossier.stored.dossier, fallback).is_some(),
        usual => answers.and_then(|a| a.median_days),
        action => format!("{own}/messages"),
        text => &form.text,
        error => &form.error,
        max => MAX_CHARS,
        max_text => group(MAX_CHARS),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The links of the forwarded messages lead to the pages' own addresses.
    #[test]
    fn the_dispatcher_s_dossier_keys_are_the_pages_keys() {
        let secret = b"secret";
        assert_eq!(
            crate::dispatch::exchanges::dossier_key(secret, 7),
            guard::csrf_token(secret, "dossier:7")[..32]
        );
        assert_eq!(
            super::super::dossier::key(secret, 7),
            crate::dispatch::exchanges::dossier_key(secret, 7)
        );
    }

    #[test]
    fn a_message_must_say_something_and_not_too_much() {
        assert!(acceptable("Bonjour").is_ok());
        let empty = acceptable(" \n ").unwrap_err();
        assert!(empty.contains("vide"), "{empty}");
        assert!(
            acceptable(&"é".repeat(MAX_CHARS)).is_ok(),
            "characters, not bytes"
        );
        let long = acceptable(&"a".repeat(MAX_CHARS + 1)).unwrap_err();
        assert!(long.contains("5\u{a0}001 caractères"), "{long}");
    }

    #[test]
    fn the_instructor_comes_first_then_the_service_then_the_setting() {
        use crate::model::Value as Field;
        let mut dossier = Dossier {
            id: "D1".into(),
            step: "depose".into(),
            status: "Déposé".into(),
            fields: Default::default(),
        };
        assert_eq!(recipient(&dossier, None), None);
        assert_eq!(
            recipient(&dossier, Some("aides@region.test")).as_deref(),
            Some("aides@region.test")
        );
        let emails = |text: &str| Field::Emails(text.to_owned());
        dossier
            .fields
            .insert("service.email", emails("service@region.test"));
        assert_eq!(
            recipient(&dossier, Some("aides@region.test")).as_deref(),
            Some("service@region.test")
        );
        dossier.fields.insert(
            "instructor.email",
            emails(" , anne@region.test, paul@region.test"),
        );
        assert_eq!(
            recipient(&dossier, Some("aides@region.test")).as_deref(),
            Some("anne@region.test")
        );
    }
}
