//! The HTTP/1.1 server that both listeners share, `[metrics] listen` and
//! `[web] listen`: hyper's HTTP/1.1 connections serving an axum [`Router`],
//! bounded so that no client, however many or slow, and no shortage of file
//! descriptors can hurt the daemon (issue 17, item 34; issue 20, item 1):
//!
//! - an accept that fails (EMFILE: the process is out of file descriptors) pauses
//!   the listener, [`Limits::first_pause`] then twice as long each time up to
//!   [`Limits::max_pause`], with one warning for the whole episode, where a naive
//!   loop tries again at once, hundreds of thousands of times a second;
//! - at most [`Limits::max_connections`] connections at once: when every slot is
//!   taken, the connection that has waited longest for a request (a new one, or
//!   one kept alive after its answers) is closed for the newcomer; when every one
//!   is being answered, the newcomer is told 503 and closed at once;
//! - a request head is read within [`Limits::head_timeout`] (hyper's
//!   `header_read_timeout`, from a connection's start and between the requests of
//!   a kept-alive one) and [`Limits::max_head_bytes`] (hyper answers 431 beyond,
//!   then closes);
//! - a write that makes no progress for [`Limits::write_timeout`] (a client that
//!   reads nothing) ends the connection.
//!
//! It owns no route and no answer: each listener brings its router and, in it,
//! its own time limits for an answer.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request};
use http_body_util::BodyExt as _;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

/// The bounds of a listener.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Connections served at once.
    pub max_connections: usize,
    /// The longest request head (request line and headers) read, in bytes; at
    /// least 8 KiB (hyper's smallest read buffer).
    pub max_head_bytes: usize,
    /// How long a client may take to send a request head.
    pub head_timeout: Duration,
    /// How long a write may make no progress.
    pub write_timeout: Duration,
    /// The first pause after an accept failed; it doubles while they fail.
    pub first_pause: Duration,
    /// The longest pause after an accept failed.
    pub max_pause: Duration,
    /// Whether a connection may carry several requests, one after the other
    /// (HTTP/1.1 keep-alive); without, each answer closes its connection.
    pub keep_alive: bool,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_connections: 64,
            max_head_bytes: 8 * 1024,
            head_timeout: Duration::from_secs(5),
            write_timeout: Duration::from_secs(5),
            first_pause: Duration::from_millis(100),
            max_pause: Duration::from_secs(1),
            keep_alive: true,
        }
    }
}

/// Serves `router` on `listener` until `cancel`, within `limits`; `name` (such
/// as "metrics endpoint") names the listener in the log. Once cancelled, the
/// connections waiting for a request are closed and the answers under way
/// finish before it returns.
pub async fn serve(
    listener: TcpListener,
    name: &'static str,
    router: Router,
    limits: Limits,
    cancel: CancellationToken,
) {
    let server = Arc::new(Server {
        name,
        router,
        limits,
        slots: Arc::new(Semaphore::new(limits.max_connections)),
        connections: Mutex::default(),
        tracker: TaskTracker::new(),
        cancel,
    });
    let (mut failures, mut full) = (AcceptFailures::default(), Full::default());
    loop {
        let accepted = tokio::select! {
            () = server.cancel.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, peer)) => {
                failures.accepted(name, Instant::now());
                let admission = server.admit(stream, peer).await;
                full.note(name, admission, limits.max_connections, Instant::now());
            }
            // This connection only: the next one may be fine.
            Err(error) if per_connection(&error) => {
                debug!(%error, "A connection ended before it was accepted.");
            }
            Err(error) => {
                let pause = failures.pause(name, &error, &limits, Instant::now());
                tokio::select! {
                    () = server.cancel.cancelled() => break,
                    () = tokio::time::sleep(pause) => {}
                }
            }
        }
    }
    drop(listener);
    server.tracker.close();
    server.tracker.wait().await;
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
    fn pause(
        &mut self,
        name: &str,
        error: &std::io::Error,
        limits: &Limits,
        now: Instant,
    ) -> Duration {
        if self.episode.occurred(now) {
            warn!(%error, "The {name} cannot accept connections: it pauses, then tries again.");
        }
        self.pause = if self.pause.is_zero() {
            limits.first_pause
        } else {
            (self.pause * 2).min(limits.max_pause)
        };
        self.pause
    }

    /// An accept worked at `now`: the next failure pauses briefly again.
    fn accepted(&mut self, name: &str, now: Instant) {
        self.pause = Duration::ZERO;
        if let Some((failures, lasted)) = self.episode.calm(now) {
            info!(
                failures,
                seconds = lasted.as_secs(),
                "The {name} accepts connections again."
            );
        }
    }
}

/// How a new connection got a slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Admission {
    /// A slot was free.
    Free,
    /// The connection that waited longest for a request was closed for it.
    Evicted,
    /// Every slot was answering: told 503 and closed.
    Refused,
}

/// Connections admitted while every slot was taken, logged once an episode.
#[derive(Debug, Default)]
struct Full(Episode);

impl Full {
    fn note(&mut self, name: &str, admission: Admission, max: usize, now: Instant) {
        if admission == Admission::Free {
            if let Some((n, lasted)) = self.0.calm(now) {
                info!(
                    connections = n,
                    seconds = lasted.as_secs(),
                    "The {name} has free connection slots again."
                );
            }
        } else if self.0.occurred(now) {
            warn!(
                connections = max,
                "The {name} has as many connections as it serves: it closes those that wait for a request, and refuses new ones while all are answered."
            );
        }
    }
}

/// What the connections of a listener share.
struct Server {
    name: &'static str,
    router: Router,
    limits: Limits,
    /// One permit per connection served.
    slots: Arc<Semaphore>,
    /// The connections served, by id.
    connections: Mutex<Connections>,
    /// The connections' tasks, waited for at the end.
    tracker: TaskTracker,
    cancel: CancellationToken,
}

#[derive(Debug, Default)]
struct Connections {
    next: u64,
    by_id: HashMap<u64, Connection>,
}

/// A connection served.
#[derive(Debug)]
struct Connection {
    /// Since when it waits for a request; `None` while it is answered.
    waiting_since: Option<Instant>,
    /// Cancelled to close it for a newcomer.
    closed: CancellationToken,
    /// Whether a write waits for the client: an answer is still being sent,
    /// after its body was handed to hyper.
    writing: Arc<AtomicBool>,
}

/// A connection's place in [`Server::connections`] while it lives.
struct Registered {
    server: Arc<Server>,
    id: u64,
}

impl Registered {
    /// Marks the connection as answered (`false`) or waiting for a request.
    fn set_waiting(&self, waiting: bool) {
        if let Some(connection) = self.server.connections().by_id.get_mut(&self.id) {
            connection.waiting_since = waiting.then(Instant::now);
        }
    }
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.server.connections().by_id.remove(&self.id);
    }
}

/// Marks its connection as waiting again when dropped: hyper drops a
/// response's body once it is written.
struct Answering(Arc<Registered>);

impl Drop for Answering {
    fn drop(&mut self) {
        self.0.set_waiting(true);
    }
}

impl Server {
    fn connections(&self) -> std::sync::MutexGuard<'_, Connections> {
        // Nothing is left half-done under this lock: a poisoned one is usable.
        self.connections
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Gives `stream` a slot and a task to serve it, or refuses it.
    async fn admit(self: &Arc<Self>, stream: TcpStream, peer: SocketAddr) -> Admission {
        let (permit, admission) = match Arc::clone(&self.slots).try_acquire_owned() {
            Ok(permit) => (Some(permit), Admission::Free),
            Err(_) => (self.evict().await, Admission::Evicted),
        };
        let Some(permit) = permit else {
            debug!(%peer, listener = self.name, "Every connection slot is answering: refused.");
            let _ = stream.try_write(REFUSED.as_bytes());
            return Admission::Refused;
        };
        // Registered before its task runs, so that the next newcomer may close it.
        let registered = self.register();
        let server = Arc::clone(self);
        self.tracker
            .spawn(server.connection(stream, peer, registered, permit));
        admission
    }

    /// Closes the connection that has waited longest for a request, and takes
    /// its slot.
    async fn evict(&self) -> Option<OwnedSemaphorePermit> {
        {
            let connections = self.connections();
            let oldest = connections
                .by_id
                .values()
                .filter(|c| c.waiting_since.is_some() && !c.writing.load(Ordering::Relaxed))
                .min_by_key(|c| c.waiting_since)?;
            oldest.closed.cancel();
        }
        // Its task lets the slot go as soon as it runs again.
        tokio::time::timeout(
            Duration::from_millis(100),
            Arc::clone(&self.slots).acquire_owned(),
        )
        .await
        .ok()?
        .ok()
    }

    /// Registers a new connection, waiting for its request.
    fn register(self: &Arc<Self>) -> Arc<Registered> {
        let mut connections = self.connections();
        connections.next += 1;
        let id = connections.next;
        connections.by_id.insert(
            id,
            Connection {
                waiting_since: Some(Instant::now()),
                closed: CancellationToken::new(),
                writing: Arc::default(),
            },
        );
        Arc::new(Registered {
            server: Arc::clone(self),
            id,
        })
    }

    /// Serves one connection until it ends, is closed for a newcomer, or the
    /// listener stops.
    async fn connection(
        self: Arc<Self>,
        stream: TcpStream,
        peer: SocketAddr,
        registered: Arc<Registered>,
        permit: OwnedSemaphorePermit,
    ) {
        let Some((closed, writing)) = self
            .connections()
            .by_id
            .get(&registered.id)
            .map(|c| (c.closed.clone(), Arc::clone(&c.writing)))
        else {
            return;
        };
        let io = TokioIo::new(WriteTimeout::new(
            stream,
            self.limits.write_timeout,
            writing,
        ));
        // The router, with the client's address in each request, marking the
        // connection as answered from a request's head until its response is
        // written.
        let (router, marks) = (
            TowerToHyperService::new(self.router.clone()),
            Arc::clone(&registered),
        );
        let service = hyper::service::service_fn(move |mut request: Request<Incoming>| {
            marks.set_waiting(false);
            let answering = Answering(Arc::clone(&marks));
            request.extensions_mut().insert(ConnectInfo(peer));
            let answer = hyper::service::Service::call(&router, request);
            async move {
                let response = answer.await?;
                Ok::<_, std::convert::Infallible>(response.map(|body| {
                    Body::new(body.map_frame(move |frame| {
                        let _marks_waiting_once_written = &answering;
                        frame
                    }))
                }))
            }
        });
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(self.limits.head_timeout)
            .keep_alive(self.limits.keep_alive)
            .max_buf_size(self.limits.max_head_bytes.max(8 * 1024));
        let connection = builder.serve_connection(io, service);
        tokio::pin!(connection);
        let ended = tokio::select! {
            ended = connection.as_mut() => Some(ended),
            // Closed for a newer connection: dropped.
            () = closed.cancelled() => None,
            () = self.cancel.cancelled() => {
                let waiting = self.connections().by_id.get(&registered.id).is_some_and(|c| c.waiting_since.is_some());
                if waiting {
                    None
                } else {
                    // The answer under way finishes, then the connection closes.
                    connection.as_mut().graceful_shutdown();
                    Some(connection.await)
                }
            }
        };
        if let Some(Err(error)) = ended {
            debug!(%peer, listener = self.name, %error, "A connection ended in error.");
        }
        drop(registered);
        drop(permit);
    }
}

/// What a connection refused for lack of a slot is told.
const REFUSED: &str = "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\n\
     Content-Length: 21\r\nX-Content-Type-Options: nosniff\r\nConnection: close\r\n\r\n\
     too many connections\n";

/// A stream whose writes fail once one has made no progress for a while.
struct WriteTimeout<S> {
    inner: S,
    limit: Duration,
    /// Running while a write waits.
    stalled: Option<Pin<Box<tokio::time::Sleep>>>,
    /// Whether a write waits, for [`Server::evict`].
    writing: Arc<AtomicBool>,
}

impl<S> WriteTimeout<S> {
    fn new(inner: S, limit: Duration, writing: Arc<AtomicBool>) -> Self {
        Self {
            inner,
            limit,
            stalled: None,
            writing,
        }
    }

    /// `polled`, or an error once the write has waited for `limit`.
    fn bound<T>(
        &mut self,
        cx: &mut Context<'_>,
        polled: Poll<std::io::Result<T>>,
    ) -> Poll<std::io::Result<T>> {
        self.writing.store(polled.is_pending(), Ordering::Relaxed);
        if polled.is_ready() {
            self.stalled = None;
            return polled;
        }
        let limit = self.limit;
        let stalled = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        match stalled.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the client read nothing for the write timeout",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for WriteTimeout<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for WriteTimeout<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.bound(cx, polled)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.bound(cx, polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let polled = Pin::new(&mut self.inner).poll_flush(cx);
        self.bound(cx, polled)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let polled = Pin::new(&mut self.inner).poll_shutdown(cx);
        self.bound(cx, polled)
    }
}

#[cfg(test)]
mod tests {
    use axum::routing::get;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    #[test]
    fn accept_failures_pause_longer_up_to_a_bound_and_make_one_episode() {
        let limits = Limits::default();
        let error = std::io::Error::from_raw_os_error(24); // EMFILE
        let mut failures = AcceptFailures::default();
        let start = Instant::now();
        let pauses: Vec<u128> = (0..7)
            .map(|_| failures.pause("test", &error, &limits, start).as_millis())
            .collect();
        assert_eq!(pauses, [100, 200, 400, 800, 1_000, 1_000, 1_000]);
        // One accept between two failures: a short pause again, the same episode.
        failures.accepted("test", start + Duration::from_secs(1));
        assert_eq!(
            failures
                .pause("test", &error, &limits, start + Duration::from_secs(2))
                .as_millis(),
            100
        );
        assert_eq!(failures.episode.count, 8);
        failures.accepted("test", start + Duration::from_secs(5));
        assert!(failures.episode.span.is_some());
        // Accepts working for QUIET end it.
        failures.accepted("test", start + Duration::from_secs(2) + QUIET);
        assert_eq!((failures.episode.span, failures.episode.count), (None, 0));
        assert!(!per_connection(&error));
        assert!(per_connection(
            &std::io::ErrorKind::ConnectionAborted.into()
        ));
    }

    /// A server of `/` ("hi"), `/slow` (a second) and `/big` (16 MiB) within
    /// `limits`: its address and what stops it.
    async fn start(limits: Limits) -> (SocketAddr, CancellationToken) {
        let router = Router::new()
            .route("/", get(|| async { "hi" }))
            .route(
                "/slow",
                get(|| async {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    "slow"
                }),
            )
            .route("/big", get(|| async { vec![b'a'; 16 << 20] }));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let cancel = CancellationToken::new();
        tokio::spawn(serve(listener, "test", router, limits, cancel.clone()));
        (address, cancel)
    }

    /// Sends a GET of `path` on a new connection.
    async fn send(address: SocketAddr, path: &str) -> TcpStream {
        let mut stream = TcpStream::connect(address).await.unwrap();
        stream
            .write_all(
                format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
            )
            .await
            .unwrap();
        stream
    }

    /// The status line of the answer on `stream`, within a second.
    async fn status(mut stream: TcpStream) -> String {
        let mut response = Vec::new();
        let mut buf = [0u8; 4096];
        let read = async {
            // A refusal resets a connection whose request was left unread.
            while let Ok(n @ 1..) = stream.read(&mut buf).await {
                response.extend_from_slice(&buf[..n]);
            }
        };
        tokio::time::timeout(Duration::from_secs(1), read)
            .await
            .expect("an answer within a second");
        let text = String::from_utf8_lossy(&response);
        text.lines().next().unwrap_or("").to_owned()
    }

    /// Whether the server closed `stream` (it may have answered first).
    async fn closed(stream: &mut TcpStream) -> bool {
        let mut buf = vec![0u8; 1 << 16];
        loop {
            match tokio::time::timeout(Duration::from_millis(50), stream.read(&mut buf)).await {
                Err(_) => return false,
                Ok(Ok(0) | Err(_)) => return true,
                Ok(Ok(_)) => {}
            }
        }
    }

    fn small() -> Limits {
        Limits {
            max_connections: 4,
            head_timeout: Duration::from_millis(300),
            write_timeout: Duration::from_millis(300),
            ..Limits::default()
        }
    }

    /// See: issue 20, item 1. Past the cap, the connection that has waited
    /// longest for a request is closed for the newcomer, which is answered.
    #[tokio::test]
    async fn idle_connections_beyond_the_cap_are_closed_for_a_newcomer() {
        let (address, _cancel) = start(Limits {
            head_timeout: Duration::from_secs(30),
            ..small()
        })
        .await;
        let mut idle = Vec::new();
        for _ in 0..6 {
            idle.push(TcpStream::connect(address).await.unwrap());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(status(send(address, "/").await).await, "HTTP/1.1 200 OK");
        let mut open = Vec::new();
        for stream in &mut idle {
            open.push(!closed(stream).await);
        }
        // The oldest three closed for the two beyond the cap and the request.
        assert_eq!(open, [false, false, false, true, true, true]);
    }

    /// See: issue 20, item 1. With every slot answering, a newcomer is told 503
    /// at once; a slot is free again once its answer is written.
    #[tokio::test]
    async fn every_slot_answering_means_503_for_a_newcomer() {
        let (address, _cancel) = start(small()).await;
        let mut slow = Vec::new();
        for _ in 0..4 {
            slow.push(send(address, "/slow").await);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(
            status(send(address, "/").await).await,
            "HTTP/1.1 503 Service Unavailable"
        );
        for stream in slow {
            assert_eq!(status(stream).await, "HTTP/1.1 200 OK");
        }
        assert_eq!(status(send(address, "/").await).await, "HTTP/1.1 200 OK");
    }

    /// See: issue 17, item 34. A head not sent in time, or too large (431),
    /// and a client that reads nothing of its answer lose their connection.
    #[tokio::test]
    async fn slow_heads_large_heads_and_clients_that_read_nothing_are_cut() {
        let (address, _cancel) = start(small()).await;
        let mut partial = TcpStream::connect(address).await.unwrap();
        partial.write_all(b"GET / HTTP/1.1\r\nHost").await.unwrap();
        tokio::time::sleep(Duration::from_millis(600)).await;
        assert!(
            closed(&mut partial).await,
            "the slow head's connection is open"
        );

        let mut large = TcpStream::connect(address).await.unwrap();
        let filler = format!("X-Filler: {}\r\n", "a".repeat(1_000));
        let head = format!("GET / HTTP/1.1\r\nHost: x\r\n{}\r\n", filler.repeat(20));
        let _ = large.write_all(head.as_bytes()).await;
        assert_eq!(
            status(large).await,
            "HTTP/1.1 431 Request Header Fields Too Large"
        );

        // Four clients that read nothing of 16 MiB hold every slot, until the
        // write timeout cuts them.
        let mut stuck = Vec::new();
        for _ in 0..4 {
            stuck.push(send(address, "/big").await);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(
            status(send(address, "/").await).await,
            "HTTP/1.1 503 Service Unavailable"
        );
        tokio::time::sleep(Duration::from_millis(800)).await;
        assert_eq!(status(send(address, "/").await).await, "HTTP/1.1 200 OK");
        drop(stuck);
    }
}
