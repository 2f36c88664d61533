//! The web face: the HTTP listener of `[web] listen`, for the daemon's whole
//! life, and the pages it serves: the unsubscribe pages of informational
//! messages ([`unsubscribe`], issue 17, item 25) and the front office
//! ([`front`], issue 20: sign-in by e-mail, a beneficiary's dossiers; [`write`](mod@write),
//! issue 21: their messages to the service), whose
//! forms are guarded by [`guard`] and whose pages are [`pages`].
//!
//! Owns the router and what protects every page: a request timeout, a small
//! body limit (larger for the forms that carry a message), security headers (no sniffing, no referrer, so that a token in a
//! URL never leaves in a `Referer`; a content security policy that allows no
//! script and no external asset, images only as `data:` URIs (the Region's logo); no framing; no caching) and a tracing span per
//! request that names the route, never the token. Its connections are served
//! by `httpd`, as the metrics endpoint's are. It does not own `/metrics`
//! (the `metrics` module, on its own listener) and writes the store only
//! through the store's own functions, on the store thread.

pub mod dossier;
pub mod front;
pub mod guard;
pub mod pages;
pub mod unsubscribe;
pub mod write;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{FromRef, MatchedPath, Request};
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::httpd;
use crate::store::StoreHandle;

pub use crate::dispatch::message::UNSUBSCRIBE_PATH;
/// How long one request may take, store included; then 503.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest request body read (a one-click body is 26 bytes).
pub const MAX_BODY: usize = 4 * 1024;
/// The largest body of a form that carries a message (a message of 5 000
/// characters, each up to 12 bytes once percent-encoded, and its CSRF field).
pub const MAX_MESSAGE_BODY: usize = 64 * 1024;

/// The headers every answer carries.
const SECURITY_HEADERS: [(HeaderName, &str); 6] = [
    (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    (header::REFERRER_POLICY, "no-referrer"),
    (
        header::CONTENT_SECURITY_POLICY,
        "default-src 'none'; style-src 'unsafe-inline'; img-src data:; form-action 'self'; \
         frame-ancestors 'none'; base-uri 'none'",
    ),
    (header::X_FRAME_OPTIONS, "DENY"),
    (header::CACHE_CONTROL, "no-store"),
    (HeaderName::from_static("x-robots-tag"), "noindex, nofollow"),
];

/// HSTS, on every answer when `[web] public_url` is https (issue 20, item 7):
/// a year, the value browsers' preload lists ask at least. Not sent over plain
/// http, where browsers ignore it anyway and a test setup would be pinned.
const HSTS: &str = "max-age=31536000";

/// What the pages share: the store, and the front office when it is served.
#[derive(Clone)]
pub struct WebState {
    /// The store thread.
    store: StoreHandle,
    /// The front office (none: `[web] public_url` is not set).
    front: Option<Arc<front::FrontOffice>>,
}

impl FromRef<WebState> for StoreHandle {
    fn from_ref(state: &WebState) -> Self {
        state.store.clone()
    }
}

/// Every page, with the layers that protect them; `https`: `[web] public_url`
/// is https, so every answer carries HSTS.
pub fn router(store: StoreHandle, front: Option<Arc<front::FrontOffice>>, https: bool) -> Router {
    let small = unsubscribe::routes()
        .merge(front::routes())
        .layer(RequestBodyLimitLayer::new(MAX_BODY));
    let messages = dossier::message_routes().layer(RequestBodyLimitLayer::new(MAX_MESSAGE_BODY));
    let mut router = small
        .merge(messages)
        .fallback(unsubscribe::not_found)
        .with_state(WebState { store, front })
        .layer(RequestBodyLimitLayer::new(MAX_MESSAGE_BODY))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            REQUEST_TIMEOUT,
        ))
        .layer(
            TraceLayer::new_for_http().make_span_with(|request: &Request| {
                // The route, not the path: a path holds a token.
                let route = request
                    .extensions()
                    .get::<MatchedPath>()
                    .map_or("(none)", MatchedPath::as_str);
                tracing::debug_span!("web", method = %request.method(), route)
            }),
        );
    for (name, value) in SECURITY_HEADERS {
        router = router.layer(SetResponseHeaderLayer::overriding(
            name,
            HeaderValue::from_static(value),
        ));
    }
    if https {
        router = router.layer(SetResponseHeaderLayer::overriding(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static(HSTS),
        ));
    }
    router
}

/// The bounds of the listener's connections: those of `/metrics`, with room
/// for a few hundred browsers (each may keep a connection alive) and their
/// cookies.
pub fn limits() -> httpd::Limits {
    httpd::Limits {
        max_connections: MAX_CONNECTIONS,
        max_head_bytes: 16 * 1024,
        ..httpd::Limits::default()
    }
}

/// Connections served at once (issue 20's benchmark: 200 clients at once).
pub const MAX_CONNECTIONS: usize = 512;

/// Serves the pages on `listener` until `cancel`, through the server the
/// metrics endpoint uses too (connections capped, request heads bounded in size
/// and time, accepts paused when descriptors run out, the client's address in
/// each request); requests under way finish. `https`: see [`router`].
pub async fn serve(
    listener: TcpListener,
    store: StoreHandle,
    front: Option<Arc<front::FrontOffice>>,
    https: bool,
    cancel: CancellationToken,
) {
    httpd::serve(
        listener,
        "web listener",
        router(store, front, https),
        limits(),
        cancel,
    )
    .await;
}
