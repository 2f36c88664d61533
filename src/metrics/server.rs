//! The small HTTP/1.1 server that answers `GET /metrics`, `/healthz` and
//! `/readyz`, bounded so that no client, however many or slow, and no shortage
//! of file descriptors can hurt the daemon (issue 17, item 34):
//!
//! - an accept that fails (EMFILE: the process is out of file descriptors) pauses
//!   the listener, 100 ms then twice as long each time up to 1 s, with one warning
//!   for the whole episode, where it used to try again at once, hundreds of
//!   thousands of times a second;
//! - at most [`Limits::max_connections`] connections at once: when every slot is
//!   taken, the connection that has waited longest without sending its request is
//!   closed for the newcomer; when every one is being answered, the newcomer is
//!   told 503 and closed at once;
//! - a request head is read within [`Limits::head_timeout`] and
//!   [`Limits::max_head_bytes`] (431 beyond, then closed), a response written
//!   within [`Limits::write_timeout`];
//! - the store thread gets one scrape at a time, and a scrape or readiness probe
//!   that gave up before the thread reached it is skipped there: `/metrics`
//!   answers within [`Limits::scrape_timeout`] and `/readyz` within
//!   [`Limits::ready_timeout`], 503 beyond.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use chrono::Utc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::{Live, render};
use crate::store::Store;
use crate::store::StoreHandle;

/// The bounds of the metrics endpoint.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Connections served at once.
    pub max_connections: usize,
    /// The longest request head (request line and headers) read, in bytes.
    pub max_head_bytes: usize,
    /// How long a client may take to send its request head.
    pub head_timeout: Duration,
    /// How long writing a response may take.
    pub write_timeout: Duration,
    /// How long `/metrics` waits for the figures of the store thread.
    pub scrape_timeout: Duration,
    /// How long `/readyz` waits for the store thread.
    pub ready_timeout: Duration,
    /// The first pause after an accept failed; it doubles while they fail.
    pub first_pause: Duration,
    /// The longest pause after an accept failed.
    pub max_pause: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_connections: 64,
            max_head_bytes: 8 * 1024,
            head_timeout: Duration::from_secs(5),
            write_timeout: Duration::from_secs(5),
            scrape_timeout: Duration::from_secs(5),
            ready_timeout: Duration::from_secs(2),
            first_pause: Duration::from_millis(100),
            max_pause: Duration::from_secs(1),
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
    let server = Arc::new(Server {
        store,
        live,
        limits,
        slots: Arc::new(Semaphore::new(limits.max_connections)),
        scrapes: Semaphore::new(1),
        waiting: Mutex::default(),
    });
    let (mut failures, mut full) = (AcceptFailures::default(), Full::default());
    loop {
        let accepted = tokio::select! {
            () = cancel.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, peer)) => {
                failures.accepted(Instant::now());
                let admission = server.admit(stream, peer).await;
                full.note(admission, limits.max_connections, Instant::now());
            }
            // This connection only: the next one may be fine.
            Err(error) if per_connection(&error) => {
                debug!(%error, "A connection to the metrics endpoint ended before it was accepted.");
            }
            Err(error) => {
                let pause = failures.pause(&error, &limits, Instant::now());
                tokio::select! {
                    () = cancel.cancelled() => return,
                    () = tokio::time::sleep(pause) => {}
                }
            }
        }
    }
}

/// Whether a failed accept is about one connection only (gone before it was
/// accepted), rather than the process (out of descriptors or memory).
fn per_connection(error: &std::io::Error) -> bool {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionReset, Interrupted};
    matches!(
        error.kind(),
        ConnectionAborted | ConnectionReset | Interrupted
    )
}

/// How long things must work again for an episode of trouble to be over: at
/// the limit of descriptors, one accept may work between two that fail, and an
/// episode is logged once, not at each of them.
const QUIET: Duration = Duration::from_secs(10);

/// Trouble that lasts, logged once: an episode begins at its first occurrence
/// and is over once none happened for [`QUIET`].
#[derive(Debug, Default)]
struct Episode {
    /// The first and the last occurrence.
    span: Option<(Instant, Instant)>,
    count: u64,
}

impl Episode {
    /// Notes an occurrence at `now`; whether it begins an episode.
    fn occurred(&mut self, now: Instant) -> bool {
        self.count += 1;
        match &mut self.span {
            Some((_, last)) => {
                *last = now;
                false
            }
            None => {
                self.span = Some((now, now));
                true
            }
        }
    }

    /// Notes things working at `now`; when that ends an episode, how many
    /// occurrences it had and how long it lasted.
    fn calm(&mut self, now: Instant) -> Option<(u64, Duration)> {
        let (first, last) = self.span?;
        if now.duration_since(last) < QUIET {
            return None;
        }
        let ended = (self.count, last.duration_since(first));
        (self.span, self.count) = (None, 0);
        Some(ended)
    }
}

/// Failed accepts: how long to pause next, and what to log once.
#[derive(Debug, Default)]
struct AcceptFailures {
    episode: Episode,
    /// The last pause, doubled at each failure in a row (zero after an accept).
    pause: Duration,
}

impl AcceptFailures {
    /// How long to pause after `error`, at `now`.
    fn pause(&mut self, error: &std::io::Error, limits: &Limits, now: Instant) -> Duration {
        if self.episode.occurred(now) {
            warn!(%error, "The metrics endpoint cannot accept connections: it pauses, then tries again.");
        }
        self.pause = if self.pause.is_zero() {
            limits.first_pause
        } else {
            (self.pause * 2).min(limits.max_pause)
        };
        self.pause
    }

    /// An accept worked at `now`: the next failure pauses briefly again.
    fn accepted(&mut self, now: Instant) {
        self.pause = Duration::ZERO;
        if let Some((failures, lasted)) = self.episode.calm(now) {
            info!(
                failures,
                seconds = lasted.as_secs(),
                "The metrics endpoint accepts connections again."
            );
        }
    }
}

/// How a new connection got a slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Admission {
    /// A slot was free.
    Free,
    /// The connection that waited longest for its request was closed for it.
    Evicted,
    /// Every slot was answering: told 503 and closed.
    Refused,
}

/// Connections admitted while every slot was taken, logged once an episode.
#[derive(Debug, Default)]
struct Full(Episode);

impl Full {
    fn note(&mut self, admission: Admission, max: usize, now: Instant) {
        if admission == Admission::Free {
            if let Some((n, lasted)) = self.0.calm(now) {
                info!(
                    connections = n,
                    seconds = lasted.as_secs(),
                    "The metrics endpoint has free connection slots again."
                );
            }
        } else if self.0.occurred(now) {
            warn!(
                connections = max,
                "The metrics endpoint has as many connections as it serves: it closes those that sent no request yet, and refuses new ones while all are answered."
            );
        }
    }
}

/// What the connections share.
struct Server {
    store: StoreHandle,
    live: Arc<Live>,
    limits: Limits,
    /// One permit per connection served.
    slots: Arc<Semaphore>,
    /// One scrape on the store thread at a time.
    scrapes: Semaphore,
    /// The connections whose request is not read yet, oldest first.
    waiting: Mutex<Waiting>,
}

#[derive(Debug, Default)]
struct Waiting {
    next: u64,
    queue: VecDeque<(u64, CancellationToken)>,
}

/// A connection in [`Server::waiting`] while it lives.
struct WaitingGuard {
    server: Arc<Server>,
    id: u64,
    closed: CancellationToken,
}

impl Drop for WaitingGuard {
    fn drop(&mut self) {
        let mut waiting = self.server.waiting();
        waiting.queue.retain(|(id, _)| *id != self.id);
    }
}

impl Server {
    fn waiting(&self) -> std::sync::MutexGuard<'_, Waiting> {
        // Nothing is left half-done under this lock: a poisoned one is usable.
        self.waiting.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Gives `stream` a slot and a task to answer it, or refuses it.
    async fn admit(self: &Arc<Self>, stream: TcpStream, peer: SocketAddr) -> Admission {
        let (permit, admission) = match Arc::clone(&self.slots).try_acquire_owned() {
            Ok(permit) => (Some(permit), Admission::Free),
            Err(_) => (self.evict().await, Admission::Evicted),
        };
        let Some(permit) = permit else {
            debug!(%peer, "Every metrics connection slot is answering: refused.");
            let _ = stream.try_write(
                response(
                    "503 Service Unavailable",
                    "text/plain",
                    "too many connections\n",
                )
                .as_bytes(),
            );
            return Admission::Refused;
        };
        // Registered before its task runs, so that the next newcomer may close it.
        let waiting = self.wait_for_request();
        let server = Arc::clone(self);
        tokio::spawn(async move {
            if let Err(error) = server.answer(stream, waiting).await {
                debug!(%peer, %error, "A metrics request failed.");
            }
            drop(permit);
        });
        admission
    }

    /// Closes the connection that has waited longest without sending its
    /// request, and takes its slot.
    async fn evict(&self) -> Option<OwnedSemaphorePermit> {
        let (_, closed) = self.waiting().queue.pop_front()?;
        closed.cancel();
        // Its task lets the slot go as soon as it runs again.
        tokio::time::timeout(
            Duration::from_millis(100),
            Arc::clone(&self.slots).acquire_owned(),
        )
        .await
        .ok()?
        .ok()
    }

    /// Registers a connection waiting for its request.
    fn wait_for_request(self: &Arc<Self>) -> WaitingGuard {
        let closed = CancellationToken::new();
        let mut waiting = self.waiting();
        waiting.next += 1;
        let id = waiting.next;
        waiting.queue.push_back((id, closed.clone()));
        WaitingGuard {
            server: Arc::clone(self),
            id,
            closed,
        }
    }

    /// Reads one request and answers it, within the limits.
    async fn answer(&self, mut stream: TcpStream, waiting: WaitingGuard) -> std::io::Result<()> {
        let limits = &self.limits;
        let head = tokio::select! {
            // Closed for a newer connection.
            () = waiting.closed.cancelled() => return Ok(()),
            head = tokio::time::timeout(limits.head_timeout, read_head(&mut stream, limits.max_head_bytes)) => head,
        };
        drop(waiting);
        let text = match head {
            // No request within the time: closed.
            Err(_) | Ok(Ok(Head::Closed)) => return Ok(()),
            Ok(Err(error)) => return Err(error),
            Ok(Ok(Head::TooLarge)) => response(
                "431 Request Header Fields Too Large",
                "text/plain",
                &format!("the request head is over {} bytes\n", limits.max_head_bytes),
            ),
            Ok(Ok(Head::Complete(head))) => {
                let line = String::from_utf8_lossy(&head);
                let mut words = line.split_whitespace();
                let (method, path) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
                let (status, kind, body) = self.route(method, path).await;
                response(status, kind, &body)
            }
        };
        tokio::time::timeout(limits.write_timeout, async {
            stream.write_all(text.as_bytes()).await?;
            stream.shutdown().await
        })
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "writing the response"))?
    }

    /// The status, content type and body for `method` and `path`.
    async fn route(&self, method: &str, path: &str) -> (&'static str, &'static str, String) {
        const UNAVAILABLE: &str = "503 Service Unavailable";
        match (method, path) {
            ("GET", "/healthz") => ("200 OK", "text/plain", "ok\n".to_owned()),
            ("GET", "/readyz") => {
                let ping = ask(&self.store, |s| s.ping());
                match tokio::time::timeout(self.limits.ready_timeout, ping).await {
                    Ok(Ok(Some(Ok(())))) => ("200 OK", "text/plain", "ready\n".to_owned()),
                    _ => (
                        UNAVAILABLE,
                        "text/plain",
                        "the state database is busy or stopped\n".to_owned(),
                    ),
                }
            }
            ("GET", "/metrics") => {
                let figures = tokio::time::timeout(self.limits.scrape_timeout, async {
                    let _turn = self.scrapes.acquire().await;
                    ask(&self.store, |s| s.gauges(Utc::now())).await
                });
                match figures.await {
                    Ok(Ok(Some(Ok(g)))) => (
                        "200 OK",
                        "text/plain; version=0.0.4",
                        render(&g, &self.live),
                    ),
                    Err(_) => (
                        UNAVAILABLE,
                        "text/plain",
                        "the state database is busy: no figures in time\n".to_owned(),
                    ),
                    _ => (
                        UNAVAILABLE,
                        "text/plain",
                        "the state database cannot be read\n".to_owned(),
                    ),
                }
            }
            ("GET", _) => (
                "404 Not Found",
                "text/plain",
                "/metrics, /healthz and /readyz only\n".to_owned(),
            ),
            _ => (
                "405 Method Not Allowed",
                "text/plain",
                "GET only\n".to_owned(),
            ),
        }
    }
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

/// A request head, as read.
#[derive(Debug, PartialEq, Eq)]
enum Head {
    /// Up to the blank line that ends it (excluded).
    Complete(Vec<u8>),
    /// No blank line within the limit.
    TooLarge,
    /// The client closed before the head ended.
    Closed,
}

/// Reads a request head, never more than `max` bytes.
async fn read_head(stream: &mut (impl AsyncReadExt + Unpin), max: usize) -> std::io::Result<Head> {
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    while head.len() < max {
        let room = (max - head.len()).min(buf.len());
        let n = stream.read(&mut buf[..room]).await?;
        if n == 0 {
            return Ok(Head::Closed);
        }
        // The end may straddle two reads.
        let from = head.len().saturating_sub(3);
        head.extend_from_slice(&buf[..n]);
        if let Some(end) = head[from..].windows(4).position(|w| w == b"\r\n\r\n") {
            head.truncate(from + end);
            return Ok(Head::Complete(head));
        }
    }
    Ok(Head::TooLarge)
}

/// A whole response, the connection closed after it.
fn response(status: &str, kind: &str, body: &str) -> String {
    format!(
        "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_failures_pause_longer_up_to_a_bound_and_make_one_episode() {
        let limits = Limits::default();
        let error = std::io::Error::from_raw_os_error(24); // EMFILE
        let mut failures = AcceptFailures::default();
        let start = Instant::now();
        let pauses: Vec<u128> = (0..7)
            .map(|_| failures.pause(&error, &limits, start).as_millis())
            .collect();
        assert_eq!(pauses, [100, 200, 400, 800, 1_000, 1_000, 1_000]);
        // One accept between two failures: a short pause again, the same episode.
        failures.accepted(start + Duration::from_secs(1));
        assert_eq!(
            failures
                .pause(&error, &limits, start + Duration::from_secs(2))
                .as_millis(),
            100
        );
        assert_eq!(failures.episode.count, 8);
        failures.accepted(start + Duration::from_secs(5));
        assert!(failures.episode.span.is_some());
        // Accepts working for QUIET end it.
        failures.accepted(start + Duration::from_secs(2) + QUIET);
        assert_eq!((failures.episode.span, failures.episode.count), (None, 0));
        assert!(!per_connection(&error));
        assert!(per_connection(
            &std::io::ErrorKind::ConnectionAborted.into()
        ));
    }

    #[tokio::test]
    async fn a_request_head_is_read_up_to_its_blank_line_within_the_limit() {
        let head =
            |text: &'static [u8], max| async move { read_head(&mut &text[..], max).await.unwrap() };
        assert_eq!(
            head(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\nrest", 8192).await,
            Head::Complete(b"GET /metrics HTTP/1.1\r\nHost: x".to_vec())
        );
        assert_eq!(head(b"GET /metrics HTTP/1.1\r\n", 8192).await, Head::Closed);
        let long: &'static [u8] = Box::leak(
            format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(10_000))
                .into_bytes()
                .into_boxed_slice(),
        );
        assert_eq!(head(long, 8192).await, Head::TooLarge);
        // Exactly at the limit is still a request.
        assert!(matches!(
            head(&long[long.len() - 8192..], 8192).await,
            Head::Complete(_)
        ));
    }

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
