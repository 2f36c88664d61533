//! The front office (issue 20): passwordless sign-in by e-mail and the list of
//! a beneficiary's dossiers.
//!
//! - `GET /`: what the service is, and one field, `email`;
//! - `POST /connexion` (`email`, `csrf`): the same page whether the address
//!   is known or not; a beneficiary's or a staff member's address gets a
//!   single-use link by e-mail,
//!   queued in the sign-in outbox and the dispatcher woken at once. At most
//!   [`PER_ADDRESS`] links an hour go to one address (more asks answer the same
//!   page, nothing sent), and one client address may ask [`PER_CLIENT`] times
//!   an hour (then 429, with a French page: a person never asks that often);
//! - `GET /connexion/{token}`: a valid link opens a session and answers 303 to
//!   `dossiers`, or to `instruction` for staff ([`super::staff`]); a used or
//!   expired one 410, an unknown one 404, each with a
//!   French page and a link to ask for a new one;
//! - `POST /deconnexion` (`csrf`): ends the session, 303 to `/`;
//! - `GET /dossiers`: the session's dossiers, last changed first, those closed
//!   for more than [`CLOSED_APART`] apart; without a session, 303 to `/`.
//!
//! Every sign-in and every list shown is recorded in the audit of each dossier
//! concerned (`store::front`). Forms carry a CSRF token ([`super::guard`]).
//! Addresses in URLs are relative to the public address's path, so that the
//! pages work under a path of the Region's reverse proxy.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use minijinja::{Value, context};
use tokio::sync::Notify;
use tracing::{error, info};

use super::WebState;
use super::guard::{self, CSRF_COOKIE, SESSION_COOKIE};
use super::pages::Pages;
use crate::config::{Region, Web};
use crate::rules::Rules;
use crate::store::{Asked, DelayCache, FrontDossier, Redeemed, SignInLimits, StoreHandle};

/// Links sent to one address within an hour.
pub const PER_ADDRESS: u32 = 3;
/// Sign-ins one client address may ask within an hour.
pub const PER_CLIENT: u32 = 30;
/// A dossier closed (final step, or gone from its source) for longer than this
/// is listed apart.
pub const CLOSED_APART: chrono::TimeDelta = chrono::TimeDelta::days(180);

/// What the pages need of the running configuration (a reload replaces it).
pub struct Current {
    /// The rules: the lifecycle, the templates' `next_steps`.
    pub rules: Arc<Rules>,
    /// The delay estimates.
    pub delays: Arc<DelayCache>,
    /// Wakes the dispatcher: a sign-in message leaves at once.
    pub wake: Arc<Notify>,
    /// The connectors' links to their portals.
    pub sources: Arc<crate::model::Sources>,
    /// `[web] staff`: the staff besides the instructors, and their roles.
    pub staff: Arc<Vec<crate::config::StaffMember>>,
    /// `[delays] review_horizon`: how far ahead the staff list looks for deadlines.
    pub horizon: std::time::Duration,
}

/// The front office: its settings and pages, for the daemon's whole life.
pub struct FrontOffice {
    /// `[web]`.
    pub settings: Web,
    /// The Region, as the pages present it.
    pub region: Region,
    /// The Region's zone, for dates.
    pub tz: chrono_tz::Tz,
    /// The pages.
    pub pages: Pages,
    /// The running configuration's parts.
    pub current: tokio::sync::watch::Receiver<Arc<Current>>,
    /// The path of the public address, ending with `/`.
    pub(super) base: String,
    /// Cookies are `Secure` (the public address is https).
    secure: bool,
    /// `[web.theme]` as the pages read it (`theme`), made once: the logo is
    /// large.
    theme: Value,
    /// The secret that signs CSRF tokens and pages' addresses, read from the
    /// store once: it never changes once drawn.
    secret: tokio::sync::OnceCell<Vec<u8>>,
    /// The dossiers' addresses the staff view has met, to find a dossier from
    /// its key.
    pub(super) staff_keys: tokio::sync::Mutex<super::staff::Keys>,
    /// The staff's lists read lately.
    pub(super) lists: super::staff::Lists,
    /// The figures of `/pilotage` last read.
    pub(super) pilotage: super::pilotage::Figures,
    /// How long the service takes to answer, recomputed now and then.
    pub(super) answers: super::write::AnswerCache,
}

impl FrontOffice {
    /// The front office of `settings`, when it is served (`listen` and
    /// `public_url` set).
    pub fn new(
        settings: &Web,
        region: Region,
        tz: chrono_tz::Tz,
        pages: Pages,
        current: tokio::sync::watch::Receiver<Arc<Current>>,
    ) -> Option<Self> {
        let public = settings.front_office()?;
        let url = url::Url::parse(public).ok()?;
        Some(Self {
            base: format!("{}/", url.path().trim_end_matches('/')),
            secure: url.scheme() == "https",
            theme: theme(&settings.theme),
            settings: settings.clone(),
            region,
            tz,
            pages,
            current,
            secret: tokio::sync::OnceCell::new(),
            staff_keys: tokio::sync::Mutex::default(),
            lists: super::staff::Lists::default(),
            pilotage: super::pilotage::Figures::default(),
            answers: super::write::AnswerCache::new(crate::calendar::Business::new(
                crate::calendar::Zone::new(tz),
            )),
        })
    }
}

/// The pages' variable `theme`. The logo is a `data:` URI made here (base64,
/// nothing to escape): it is given as is, so that pages carry it unaltered.
fn theme(theme: &crate::config::Theme) -> Value {
    context! {
        name => &theme.name,
        logo => theme.logo.clone().map(Value::from_safe_string),
        colour => &theme.colour,
        email => &theme.email,
        phone => &theme.phone,
        legal_notice => &theme.legal_notice,
    }
}

/// The front office's routes.
pub(super) fn routes() -> Router<WebState> {
    Router::new()
        .route("/", get(home))
        .route("/connexion", post(ask))
        .route("/connexion/{token}", get(follow))
        .route("/deconnexion", post(leave))
        .route("/dossiers", get(dossiers))
        .merge(super::dossier::routes())
        .merge(super::staff::routes())
}

/// A request's parts every handler reads.
pub(super) struct Asker {
    pub(super) front: Arc<FrontOffice>,
    pub(super) store: StoreHandle,
    pub(super) client: String,
}

impl Asker {
    pub(super) fn of(state: &WebState, peer: SocketAddr, headers: &HeaderMap) -> Option<Self> {
        let front = Arc::clone(state.front.as_ref()?);
        let client = guard::client(peer, headers, &front.settings.trusted_proxies).to_string();
        Some(Self {
            front,
            store: state.store.clone(),
            client,
        })
    }

    /// Renders `page` with `extra` and what every page has.
    pub(super) fn page(
        &self,
        status: StatusCode,
        page: &str,
        title: &str,
        extra: Value,
    ) -> Response {
        // What `extra` says wins over these defaults.
        let ctx = context! {
            ..extra,
            ..context! {
                title => title,
                region => Value::from(minijinja::value::Serde(&self.front.region)),
                theme => self.front.theme.clone(),
                base => &self.front.base,
                signed_in => Value::from(()),
                csrf => "",
                wide => false,
            }
        };
        match self.front.pages.render(page, &ctx) {
            Ok(html) => (status, Html(html)).into_response(),
            Err(reason) => {
                error!(page, %reason, "A front office page failed to render.");
                (StatusCode::INTERNAL_SERVER_ERROR, "erreur interne").into_response()
            }
        }
    }

    pub(super) fn refusal(&self, status: StatusCode, title: &str, message: &str) -> Response {
        self.page(status, "erreur", title, context! { message => message })
    }

    pub(super) fn unavailable(&self, error: &anyhow::Error) -> Response {
        error!(error = %format!("{error:#}"), "A front office page could not read or write the store.");
        self.refusal(
            StatusCode::SERVICE_UNAVAILABLE,
            "Service momentanément indisponible",
            "Votre demande n'a pas pu aboutir. Merci de réessayer dans quelques minutes.",
        )
    }

    pub(super) fn forbidden(&self) -> Response {
        self.refusal(
            StatusCode::FORBIDDEN,
            "Formulaire expiré",
            "Ce formulaire n'est plus valable (il a peut-être été ouvert il y a longtemps, \
             ou dans un autre navigateur). Revenez à la page d'accueil et recommencez.",
        )
    }

    pub(super) fn redirect(&self, to: &str, cookie: Option<String>) -> Response {
        let mut response = (
            StatusCode::SEE_OTHER,
            [(header::LOCATION, format!("{}{to}", self.front.base))],
        )
            .into_response();
        if let Some(cookie) = cookie
            && let Ok(value) = cookie.parse()
        {
            response.headers_mut().append(header::SET_COOKIE, value);
        }
        response
    }

    pub(super) async fn secret(&self) -> Result<Vec<u8>, Response> {
        self.front
            .secret
            .get_or_try_init(|| async {
                flatten(self.store.call(|s| s.web_secret(Utc::now())).await)
                    .map_err(|e| self.unavailable(&e))
            })
            .await
            .cloned()
    }

    /// The asker of a request and the secret, or the answer: 404 when the
    /// front office is off, 503 when the store cannot give the secret.
    async fn with_secret(
        state: &WebState,
        peer: SocketAddr,
        headers: &HeaderMap,
    ) -> Result<(Self, Vec<u8>), Response> {
        let Some(asker) = Self::of(state, peer, headers) else {
            return Err(super::unsubscribe::not_found().await);
        };
        let secret = asker.secret().await?;
        Ok((asker, secret))
    }

    /// The session's address, when the request has an open one.
    pub(super) async fn session(
        &self,
        headers: &HeaderMap,
    ) -> Result<Option<(String, String)>, Response> {
        let Some(cookie) = guard::cookie(headers, SESSION_COOKIE).map(str::to_owned) else {
            return Ok(None);
        };
        let (idle, max) = (
            self.front.settings.session_idle,
            self.front.settings.session_max,
        );
        let key = cookie.clone();
        let email = flatten(
            self.store
                .call(move |s| s.session(&key, idle, max, Utc::now()))
                .await,
        )
        .map_err(|e| self.unavailable(&e))?;
        Ok(email.map(|email| (email, cookie)))
    }
}

pub(super) fn flatten<T>(
    result: anyhow::Result<Result<T, crate::store::StoreError>>,
) -> anyhow::Result<T> {
    Ok(result??)
}

/// `GET /`: the sign-in form, with the anonymous CSRF cookie.
async fn home(
    State(state): State<WebState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    let (asker, secret) = match Asker::with_secret(&state, peer, &headers).await {
        Ok(found) => found,
        Err(page) => return page,
    };
    let nonce = match guard::cookie(&headers, CSRF_COOKIE).filter(|c| crate::store::token_shape(c))
    {
        Some(nonce) => nonce.to_owned(),
        None => match crate::store::new_token() {
            Ok(nonce) => nonce,
            Err(e) => return asker.unavailable(&e.into()),
        },
    };
    let csrf = guard::csrf_token(&secret, &format!("anonymous:{nonce}"));
    let mut response = asker.page(
        StatusCode::OK,
        "accueil",
        "Suivre mes dossiers d'aide",
        context! { csrf => csrf },
    );
    if let Ok(value) = guard::set_cookie(CSRF_COOKIE, Some(&nonce), asker.front.secure).parse() {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}

/// `POST /connexion`: the same answer for every address.
async fn ask(
    State(state): State<WebState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (asker, secret) = match Asker::with_secret(&state, peer, &headers).await {
        Ok(found) => found,
        Err(page) => return page,
    };
    let nonce = guard::cookie(&headers, CSRF_COOKIE).unwrap_or_default();
    let token = guard::field(&body, "csrf").unwrap_or_default();
    if nonce.is_empty() || !guard::csrf_valid(&secret, &format!("anonymous:{nonce}"), &token) {
        return asker.forbidden();
    }
    let email = guard::field(&body, "email").unwrap_or_default();
    let listed = {
        let wanted = email.trim().to_lowercase();
        asker
            .front
            .current
            .borrow()
            .staff
            .iter()
            .any(|m| m.email == wanted)
    };
    let (client, lifetime) = (
        asker.client.clone(),
        asker.front.settings.login_link_lifetime,
    );
    let limits = SignInLimits {
        per_address: PER_ADDRESS,
        per_client: PER_CLIENT,
    };
    let asked = flatten(
        asker
            .store
            .call(move |s| s.ask_sign_in(&email, &client, (limits, listed), lifetime, Utc::now()))
            .await,
    );
    match asked {
        Ok(Asked::ClientLimited) => asker.refusal(
            StatusCode::TOO_MANY_REQUESTS,
            "Trop de demandes",
            "Trop de demandes de connexion sont venues de votre connexion internet en peu de temps. \
             Merci de réessayer dans une heure.",
        ),
        Ok(asked) => {
            if asked == Asked::Queued {
                info!("A sign-in link was queued.");
                asker.front.current.borrow().wake.notify_one();
            }
            asker.page(
                StatusCode::OK,
                "envoye",
                "Vérifiez votre messagerie",
                context! { lifetime => crate::rules::french::duration(lifetime) },
            )
        }
        Err(e) => asker.unavailable(&e),
    }
}

/// `GET /connexion/{token}`: opens a session, or says why not.
async fn follow(
    State(state): State<WebState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(token): Path<String>,
) -> Response {
    let Some(asker) = Asker::of(&state, peer, &headers) else {
        return super::unsubscribe::not_found().await;
    };
    let client = asker.client.clone();
    let redeemed = flatten(
        asker
            .store
            .call(move |s| s.redeem(&token, &client, Utc::now()))
            .await,
    );
    let (status, why) = match redeemed {
        Ok(Redeemed::Opened { cookie, email }) => {
            // Staff go to their view first (it links to their own dossiers).
            let to = match super::staff::roles(&asker, &email).await {
                Ok(roles) if roles.staff() => {
                    info!("A staff member signed in to the front office.");
                    "instruction"
                }
                _ => {
                    info!("A beneficiary signed in to the front office.");
                    "dossiers"
                }
            };
            let cookie = guard::set_cookie(SESSION_COOKIE, Some(&cookie), asker.front.secure);
            return asker.redirect(to, Some(cookie));
        }
        Ok(Redeemed::Used) => (StatusCode::GONE, "Ce lien de connexion a déjà servi."),
        Ok(Redeemed::Expired) => (StatusCode::GONE, "Ce lien de connexion a expiré."),
        Ok(Redeemed::Unknown) => (
            StatusCode::NOT_FOUND,
            "Ce lien de connexion n'est pas valable. Vérifiez que son adresse est complète : \
             votre messagerie a pu la couper en deux lignes.",
        ),
        Err(e) => return asker.unavailable(&e),
    };
    asker.page(
        status,
        "lien",
        "Ce lien ne permet pas de vous connecter",
        context! { why => why },
    )
}

/// `POST /deconnexion`: ends the session.
async fn leave(
    State(state): State<WebState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (asker, secret) = match Asker::with_secret(&state, peer, &headers).await {
        Ok(found) => found,
        Err(page) => return page,
    };
    let cookie = guard::cookie(&headers, SESSION_COOKIE)
        .unwrap_or_default()
        .to_owned();
    let token = guard::field(&body, "csrf").unwrap_or_default();
    if cookie.is_empty() || !guard::csrf_valid(&secret, &format!("session:{cookie}"), &token) {
        return asker.forbidden();
    }
    if let Err(e) = flatten(asker.store.call(move |s| s.end_session(&cookie)).await) {
        return asker.unavailable(&e);
    }
    asker.redirect(
        "",
        Some(guard::set_cookie(SESSION_COOKIE, None, asker.front.secure)),
    )
}

/// `GET /dossiers`: the session's dossiers.
async fn dossiers(
    State(state): State<WebState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    let Some(asker) = Asker::of(&state, peer, &headers) else {
        return super::unsubscribe::not_found().await;
    };
    let (email, cookie) = match asker.session(&headers).await {
        Ok(Some(found)) => found,
        Ok(None) => return asker.redirect("", None),
        Err(page) => return page,
    };
    let secret = match asker.secret().await {
        Ok(secret) => secret,
        Err(page) => return page,
    };
    let now = Utc::now();
    let (who, client) = (email.clone(), asker.client.clone());
    let found = flatten(
        asker
            .store
            .call(move |s| {
                let found = s.beneficiary_dossiers(&who)?;
                s.record_list(&who, &found, &client, now)?;
                Ok(found)
            })
            .await,
    );
    let found = match found {
        Ok(found) => found,
        Err(e) => return asker.unavailable(&e),
    };
    let current = Arc::clone(&asker.front.current.borrow());
    let delays = match current.delays.get(now).await {
        Ok(delays) => delays,
        Err(e) => return asker.unavailable(&e),
    };
    let (mut open, mut closed) = (Vec::new(), Vec::new());
    for d in &found {
        let mut row = row(d, &current.rules, &delays, asker.front.tz, now);
        row = context! { ..row, ..context! {
            system => current.sources.label(&d.stored.connector),
            href => format!("{}dossiers/{}", asker.front.base, super::dossier::key(&secret, d.stored.rowid)),
        }};
        if closed_long_ago(d, &current.rules, now) {
            closed.push(row);
        } else {
            open.push(row);
        }
    }
    asker.page(
        StatusCode::OK,
        "dossiers",
        "Mes dossiers d'aide",
        context! {
            signed_in => email,
            csrf => guard::csrf_token(&secret, &format!("session:{cookie}")),
            current => open,
            closed => closed,
        },
    )
}

/// Whether a dossier has been closed for longer than [`CLOSED_APART`].
fn closed_long_ago(d: &FrontDossier, rules: &Rules, now: DateTime<Utc>) -> bool {
    let is_final = rules
        .lifecycle
        .step(&d.stored.dossier.step)
        .is_some_and(|s| s.is_final);
    (is_final || !d.stored.present) && now - d.changed_at > CLOSED_APART
}

/// One dossier as the list shows it.
fn row(
    d: &FrontDossier,
    rules: &Rules,
    delays: &crate::delays::Delays,
    tz: chrono_tz::Tz,
    now: DateTime<Utc>,
) -> Value {
    use crate::model::Value as Field;
    let dossier = &d.stored.dossier;
    let amount = |name| match dossier.get(name) {
        Some(Field::Amount(cents)) => Some(crate::rules::french::amount(*cents)),
        _ => None,
    };
    let (amount_label, amount) = match (amount("amount_granted"), amount("amount_requested")) {
        (Some(granted), _) => ("Montant accordé", Some(granted)),
        (None, requested) => ("Montant demandé", requested),
    };
    let delay = delays.of(dossier, d.stored.step_entered_at, now);
    let since = d.stored.step_entered_at.with_timezone(&tz).date_naive();
    context! {
        reference => dossier.reference(),
        title => dossier.text("title"),
        scheme => dossier.text("scheme"),
        amount => amount,
        amount_label => amount_label,
        step => rules.lifecycle.label(&dossier.step),
        since => crate::rules::french::date(since),
        next => rules.next_steps(dossier, delay.as_ref()),
    }
}
