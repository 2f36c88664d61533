//! The unsubscribe pages of informational messages (issue 17, item 25), in
//! French, sober HTML, no script and no external asset:
//!
//! - `GET /desabonnement/{token}` says what the link does, with a button: a GET
//!   never unsubscribes, since mail scanners and link previews open links;
//! - `POST /desabonnement/{token}` records that the address wants no more
//!   informational messages: the one-click POST of a mail client (RFC 8058, body
//!   `List-Unsubscribe=One-Click`) or the page's button, and answers with a
//!   button to take it back;
//! - `POST /desabonnement/{token}/annuler` takes it back.
//!
//! There is no CSRF token, on purpose: the random token in the URL is the
//! capability (only the mailbox that received the message knows it), and
//! one-click POSTs come from mail providers, without cookie or session. The
//! pages never show the address: a forwarded message must not reveal it.
//! Forms post to relative addresses, so that the pages work behind a reverse
//! proxy that serves them under a path of its own.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use chrono::Utc;
use tracing::{error, info};

use crate::store::StoreHandle;
use crate::store::{OptOutHow, Subscription, token_shape};

/// The body of an RFC 8058 one-click POST.
const ONE_CLICK: &[u8] = b"List-Unsubscribe=One-Click";

/// Where the three pages are, below the router's root.
pub(super) fn routes() -> Router<super::WebState> {
    Router::new()
        .route(
            &format!("{}/{{token}}", super::UNSUBSCRIBE_PATH),
            get(show).post(leave),
        )
        .route(
            &format!("{}/{{token}}/annuler", super::UNSUBSCRIBE_PATH),
            post(rejoin),
        )
}

/// What a change asked of the store.
enum Ask {
    Look,
    Leave(OptOutHow),
    Rejoin,
}

/// Runs `ask` for `token` on the store thread: the holder's choice after it,
/// `None` for a token nobody holds, or an error page when the store fails.
async fn ask(
    store: &StoreHandle,
    token: String,
    ask: Ask,
) -> Result<Option<Subscription>, Response> {
    if !token_shape(&token) {
        return Ok(None);
    }
    let done = store
        .call(move |s| match ask {
            Ask::Look => s.subscription(&token),
            Ask::Leave(how) => s.opt_out(&token, how, Utc::now()),
            Ask::Rejoin => s.opt_in(&token),
        })
        .await;
    match done {
        Ok(Ok(found)) => Ok(found),
        Ok(Err(e)) => Err(unavailable(&anyhow::Error::from(e))),
        Err(e) => Err(unavailable(&e)),
    }
}

/// `GET /desabonnement/{token}`: what the link does, and the button.
async fn show(State(store): State<StoreHandle>, Path(token): Path<String>) -> Response {
    match ask(&store, token.clone(), Ask::Look).await {
        Ok(Some(Subscription { opted_out: None })) => page(
            StatusCode::OK,
            "Se désabonner des messages d'information",
            &format!(
                "<p>Ce lien concerne les <strong>messages d'information</strong> que la Région \
                 envoie à votre adresse sur des dossiers d'aide.</p>\
                 <p>{MANDATORY}</p>{}",
                form("", "Me désabonner des messages d'information")
            ),
        ),
        Ok(Some(Subscription { opted_out: Some(_) })) => left(&token),
        Ok(None) => unknown(),
        Err(page) => page,
    }
}

/// `POST /desabonnement/{token}`: records the choice; says so.
async fn leave(
    State(store): State<StoreHandle>,
    Path(token): Path<String>,
    body: Bytes,
) -> Response {
    let how = if body.windows(ONE_CLICK.len()).any(|w| w == ONE_CLICK) {
        OptOutHow::OneClick
    } else {
        OptOutHow::Page
    };
    match ask(&store, token.clone(), Ask::Leave(how)).await {
        Ok(Some(_)) => {
            info!(
                how = how.as_str(),
                "An address unsubscribed from informational messages."
            );
            left(&token)
        }
        Ok(None) => unknown(),
        Err(page) => page,
    }
}

/// `POST /desabonnement/{token}/annuler`: takes the choice back; says so.
async fn rejoin(State(store): State<StoreHandle>, Path(token): Path<String>) -> Response {
    match ask(&store, token.clone(), Ask::Rejoin).await {
        Ok(Some(_)) => {
            info!("An address subscribed again to informational messages.");
            page(
                StatusCode::OK,
                "Vous recevrez de nouveau les messages d'information",
                &format!(
                    "<p>C'est noté : les messages d'information sur vos dossiers d'aide \
                     vous parviendront de nouveau.</p>{}",
                    // From …/{token}/annuler, "../{token}" is the unsubscribe address.
                    form(&format!("../{token}"), "Me désabonner de nouveau")
                ),
            )
        }
        Ok(None) => unknown(),
        Err(page) => page,
    }
}

/// Any other address.
pub(super) async fn not_found() -> Response {
    unknown()
}

/// Why mandatory messages still come.
const MANDATORY: &str = "Les messages obligatoires continueront de vous parvenir : ils concernent \
     une décision, une pièce manquante ou une échéance de votre dossier, qu'il vous faut connaître.";

/// The page of an address that left the informational messages, shown at its
/// unsubscribe address (`token` has the shape of a token: it is safe in HTML).
fn left(token: &str) -> Response {
    page(
        StatusCode::OK,
        "Vous êtes désabonné des messages d'information",
        &format!(
            "<p>C'est noté : vous ne recevrez plus de messages d'information à cette adresse.</p>\
             <p>{MANDATORY}</p>\
             <p>Vous avez changé d'avis ?</p>{}",
            // Relative to the page's address, …/desabonnement/{token}.
            form(
                &format!("{token}/annuler"),
                "Recevoir de nouveau les messages d'information"
            )
        ),
    )
}

/// The page of a token nobody holds.
fn unknown() -> Response {
    page(
        StatusCode::NOT_FOUND,
        "Lien inconnu",
        "<p>Ce lien de désabonnement n'est pas valable. Vérifiez que son adresse est complète : \
         votre messagerie a pu la couper en deux lignes.</p>\
         <p>Pour toute question, adressez-vous au service de la Région qui suit votre dossier.</p>",
    )
}

/// The page of a store that failed or was too slow.
fn unavailable(error: &anyhow::Error) -> Response {
    error!(error = %format!("{error:#}"), "An unsubscribe page could not read or record a choice.");
    page(
        StatusCode::SERVICE_UNAVAILABLE,
        "Service momentanément indisponible",
        "<p>Votre demande n'a pas pu être enregistrée. Merci de réessayer dans quelques minutes.</p>",
    )
}

/// A form of one button posting to `action` (relative to the page).
fn form(action: &str, button: &str) -> String {
    format!(
        "<form method=\"post\" action=\"{action}\">\
         <button type=\"submit\">{button}</button></form>"
    )
}

/// A whole page: French, self-contained, readable on a phone.
fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        "<!DOCTYPE html>\n<html lang=\"fr\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{title}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<main>\n\
         <h1>{title}</h1>\n{body}\n</main>\n</body>\n</html>\n"
    );
    (status, Html(html)).into_response()
}

/// The pages' only style.
const STYLE: &str = "body{margin:0;background:#f2f4f7;color:#1e1e1e;\
     font:16px/1.5 Arial,Helvetica,sans-serif}\
     main{max-width:36rem;margin:2rem auto;padding:1.5rem;background:#fff;\
     border:1px solid #dde1e6}\
     h1{font-size:1.4rem;color:#003b6f;margin-top:0}\
     button{font:inherit;padding:.6rem 1rem;border:0;background:#003b6f;color:#fff;\
     cursor:pointer}\
     button:focus{outline:3px solid #ffbf47;outline-offset:2px}";
