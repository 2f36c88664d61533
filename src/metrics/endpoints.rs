//! `GET /metrics`, `/healthz` and `/readyz`: an axum router served on
//! `[metrics] listen` by the server both listeners share ([`crate::httpd`]:
//! connections capped, request heads bounded in size and time, writes in time,
//! accepts paused when the process runs out of descriptors; issue 17, item 34),
//! one request per connection.
//!
//! What is this endpoint's own: the store thread gets one scrape at a time, and
//! a scrape or readiness probe that gave up before the thread reached it is
//! skipped there: `/metrics` answers within [`Limits::scrape_timeout`] and
//! `/readyz` within [`Limits::ready_timeout`], 503 beyond.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{Method, StatusCode, header};
use axum::routing::get;
use chrono::Utc;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use super::{Live, render};
use crate::httpd;
use crate::store::Store;
use crate::store::StoreHandle;

/// The bounds of the metrics endpoint.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// The connections' bounds.
    pub connections: httpd::Limits,
    /// How long `/metrics` waits for the figures of the store thread.
    pub scrape_timeout: Duration,
    /// How long `/readyz` waits for the store thread.
    pub ready_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            // A scraper asks now and then: one request per connection.
            connections: httpd::Limits {
                keep_alive: false,
                ..httpd::Limits::default()
            },
            scrape_timeout: Duration::from_secs(5),
            ready_timeout: Duration::from_secs(2),
        }
    }
}

/// Answers `/metrics`, `/healthz` and `/readyz` on `listener` until `cancel`.
pub async fn serve(
    listener: TcpListener,
    store: StoreHandle,
    live: Arc<Live>,
    limits: Limits,
    cancel: CancellationToken,
) {
    let endpoints = Arc::new(Endpoints {
        store,
        live,
        limits,
        scrapes: Semaphore::new(1),
    });
    httpd::serve(
        listener,
        "metrics endpoint",
        router(endpoints),
        limits.connections,
        cancel,
    )
    .await;
}

/// What the answers share.
struct Endpoints {
    store: StoreHandle,
    live: Arc<Live>,
    limits: Limits,
    /// One scrape on the store thread at a time.
    scrapes: Semaphore,
}

/// A status, a content type and a body.
type Answer = (StatusCode, [(header::HeaderName, &'static str); 1], String);

const TEXT: &str = "text/plain";

fn answer(status: StatusCode, kind: &'static str, body: impl Into<String>) -> Answer {
    (status, [(header::CONTENT_TYPE, kind)], body.into())
}

/// The three endpoints; anything else is 404 (a GET) or 405.
fn router(endpoints: Arc<Endpoints>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .fallback(elsewhere)
        .method_not_allowed_fallback(not_get)
        .with_state(endpoints)
}

async fn healthz() -> Answer {
    answer(StatusCode::OK, TEXT, "ok\n")
}

async fn readyz(State(endpoints): State<Arc<Endpoints>>) -> Answer {
    let ping = ask(&endpoints.store, |s| s.ping());
    match tokio::time::timeout(endpoints.limits.ready_timeout, ping).await {
        Ok(Ok(Some(Ok(())))) => answer(StatusCode::OK, TEXT, "ready\n"),
        _ => answer(
            StatusCode::SERVICE_UNAVAILABLE,
            TEXT,
            "the state database is busy or stopped\n",
        ),
    }
}

async fn metrics(State(endpoints): State<Arc<Endpoints>>) -> Answer {
    let figures = tokio::time::timeout(endpoints.limits.scrape_timeout, async {
        let _turn = endpoints.scrapes.acquire().await;
        ask(&endpoints.store, |s| s.gauges(Utc::now())).await
    });
    match figures.await {
        Ok(Ok(Some(Ok(g)))) => answer(
            StatusCode::OK,
            "text/plain; version=0.0.4",
            render(&g, &endpoints.live),
        ),
        Err(_) => answer(
            StatusCode::SERVICE_UNAVAILABLE,
            TEXT,
            "the state database is busy: no figures in time\n",
        ),
        _ => answer(
            StatusCode::SERVICE_UNAVAILABLE,
            TEXT,
            "the state database cannot be read\n",
        ),
    }
}

async fn elsewhere(method: Method) -> Answer {
    if method == Method::GET {
        answer(
            StatusCode::NOT_FOUND,
            TEXT,
            "/metrics, /healthz and /readyz only\n",
        )
    } else {
        not_get().await
    }
}

async fn not_get() -> Answer {
    answer(StatusCode::METHOD_NOT_ALLOWED, TEXT, "GET only\n")
}

/// Runs `f` on the store thread, unless the caller has given up (its future was
/// dropped, by a timeout) by the time the thread reaches it: a probe that timed
/// out behind a long import costs nothing once the import ends.
async fn ask<T: Send + 'static>(
    store: &StoreHandle,
    f: impl FnOnce(&mut Store) -> T + Send + 'static,
) -> anyhow::Result<Option<T>> {
    let wanted = CancellationToken::new();
    let _given_up_when_dropped = wanted.clone().drop_guard();
    store
        .call(move |s| (!wanted.is_cancelled()).then(|| f(s)))
        .await
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::time::Instant;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    use super::*;

    /// A GET on `address`: the status line, within `within`.
    async fn status(address: SocketAddr, path: &str, within: Duration) -> String {
        let exchange = async {
            let mut stream = TcpStream::connect(address).await.unwrap();
            stream
                .write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
                .await
                .unwrap();
            let mut response = Vec::new();
            stream.read_to_end(&mut response).await.unwrap();
            String::from_utf8_lossy(&response)
                .lines()
                .next()
                .unwrap_or("")
                .to_owned()
        };
        tokio::time::timeout(within, exchange)
            .await
            .unwrap_or_else(|_| panic!("no answer to {path} within {within:?}"))
    }

    /// See: issue 17, item 34. The store thread busy (a long import) holds
    /// neither `/metrics` nor `/readyz` past their bounds, and scrapes that gave
    /// up are not run once it is free.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn issue_17_item_34_a_busy_store_thread_bounds_scrapes_and_readiness() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("state.db"), 8).unwrap();
        let (handle, thread) = StoreHandle::spawn(store);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let limits = Limits {
            scrape_timeout: Duration::from_millis(300),
            ready_timeout: Duration::from_millis(300),
            ..Limits::default()
        };
        let cancel = CancellationToken::new();
        let server = tokio::spawn(serve(
            listener,
            handle.clone(),
            Arc::default(),
            limits,
            cancel.clone(),
        ));
        assert_eq!(
            status(address, "/metrics", Duration::from_secs(5)).await,
            "HTTP/1.1 200 OK"
        );
        // An import of two seconds.
        let busy = tokio::spawn({
            let handle = handle.clone();
            async move {
                handle
                    .call(|_| std::thread::sleep(Duration::from_secs(2)))
                    .await
            }
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
        let started = Instant::now();
        let scrapes: Vec<_> = (0..10)
            .map(|_| tokio::spawn(status(address, "/metrics", Duration::from_secs(1))))
            .collect();
        for scrape in scrapes {
            assert_eq!(scrape.await.unwrap(), "HTTP/1.1 503 Service Unavailable");
        }
        assert_eq!(
            status(address, "/readyz", Duration::from_secs(1)).await,
            "HTTP/1.1 503 Service Unavailable"
        );
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "{:?}",
            started.elapsed()
        );
        busy.await.unwrap().unwrap();
        // The abandoned scrapes were skipped: the thread answers at once.
        let probe = Instant::now();
        handle.call(|_| ()).await.unwrap();
        assert!(
            probe.elapsed() < Duration::from_millis(200),
            "{:?}",
            probe.elapsed()
        );
        assert_eq!(
            status(address, "/readyz", Duration::from_secs(1)).await,
            "HTTP/1.1 200 OK"
        );
        assert_eq!(
            status(address, "/metrics", Duration::from_secs(1)).await,
            "HTTP/1.1 200 OK"
        );
        cancel.cancel();
        server.await.unwrap();
        drop(handle);
        thread.join().unwrap();
    }
}
