//! The control socket: how a command that writes hands its work to the running
//! daemon, so that one process writes to the state (issue 17, item 31).
//!
//! Owns the socket's place (`<database>.sock`, in the state folder, owner and
//! group only), the protocol (one JSON request line, one JSON answer line, then
//! the connection closes), the client side, and the accept loop. What each
//! request does in the daemon is `daemon::control`'s; how a command prints the
//! answer is the command line's, the same whether the daemon or the command
//! itself did the work.
//!
//! ```text
//! alertissimo import X ─▶ connect(<db>.sock) ─┬─ refused / absent ─▶ opens the store itself
//!                                            └─ request ─▶ daemon (its store thread,
//!                                               its dispatcher) ─▶ answer ─▶ printed
//! ```

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;
use tracing::{error, warn};

/// The longest request the daemon reads (an import's file path, mostly).
const MAX_REQUEST: u64 = 64 * 1024;

/// How long the daemon waits for a connected command to send its request.
const REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// How many requests the daemon answers at once; more wait to be accepted.
const MAX_CONNECTIONS: usize = 8;

/// The control socket of the state database at `db`: `<db>.sock`, beside it.
pub fn socket_path(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push(".sock");
    PathBuf::from(name)
}

/// Work a command hands to the daemon: the commands that write to the state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    /// `import CONNECTOR [FILE] [--force] [--as-of TIME]`, and each file of
    /// `import --backfill` (a baseline, dated); the file's path is absolute.
    Import {
        /// The connector's name.
        connector: String,
        /// The file to read instead of the drop folder.
        file: Option<PathBuf>,
        /// Import even a content already imported.
        force: bool,
        /// When the export was taken (issue 19); absent from an older
        /// command's request, and then the daemon's clock.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        as_of: Option<chrono::DateTime<chrono::Utc>>,
        /// `as_of` is the file's own, read by its connector's `[as_of]` (a
        /// backfill's plan), not given by a person (`import::Options::as_of_from_file`).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        as_of_from_file: bool,
        /// Record it as a baseline (events, no alert): a backfill.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        baseline: bool,
    },
    /// `outbox retry ID|--failed`.
    Retry {
        /// The alert, or every failed one.
        id: Option<i64>,
    },
    /// `outbox cancel ID`.
    Cancel {
        /// The alert.
        id: i64,
    },
    /// `outbox flush [--force]`.
    Flush {
        /// Also what waits for its debounce, a digest window or sending hours.
        force: bool,
    },
    /// `evaluate [--review]`.
    Evaluate {
        /// The instructors' review rather than stalls and deadlines.
        review: bool,
    },
    /// `purge [--dry-run]`.
    Purge {
        /// Only count.
        dry_run: bool,
    },
}

/// What was done, for the command to print as if it had done it itself.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "answer", content = "data", rename_all = "snake_case")]
pub enum Answer {
    /// The summaries of the files imported (none: no file was waiting).
    Imported(Vec<crate::import::Summary>),
    /// How many alerts are pending again; with an id that was not failed, its status.
    Retried {
        /// Alerts made pending.
        count: u64,
        /// The status of the alert named, when it was not failed (`None`:
        /// there is no such alert).
        status: Option<String>,
    },
    /// Whether the alert was cancelled; if not, its status.
    Cancelled {
        /// Cancelled.
        done: bool,
        /// Its status when it was not pending (`None`: there is no such alert).
        status: Option<String>,
    },
    /// What the delivery pass did.
    Flushed(crate::dispatch::PassReport),
    /// What the evaluation did.
    Evaluated(crate::timers::Evaluated),
    /// What the purge erased.
    Purged(Purge),
    /// The work could not be done: why.
    Failed(String),
}

/// `outbox retry`, done on `store` by whichever process holds it (the daemon, or
/// a command alone).
///
/// # Errors
/// On a database error.
pub fn retry(
    store: &mut crate::store::Store,
    id: Option<i64>,
    now: DateTime<Utc>,
) -> Result<Answer, crate::store::StoreError> {
    let count = store.retry_failed(id, now)?;
    let status = match id {
        Some(id) if count == 0 => store.alert_status(id)?,
        _ => None,
    };
    Ok(Answer::Retried { count, status })
}

/// `outbox cancel`, done on `store` by whichever process holds it.
///
/// # Errors
/// On a database error.
pub fn cancel(
    store: &mut crate::store::Store,
    id: i64,
    now: DateTime<Utc>,
) -> Result<Answer, crate::store::StoreError> {
    let done = store.cancel_alert(id, now)?;
    let status = if done { None } else { store.alert_status(id)? };
    Ok(Answer::Cancelled { done, status })
}

/// What a purge erased (or would erase), in the store and in files.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Purge {
    /// Only counted.
    pub dry_run: bool,
    /// Dossiers closed before this instant lost their personal data.
    pub closed_before: DateTime<Utc>,
    /// In the store.
    pub purged: crate::store::Purged,
    /// In files.
    pub swept: crate::retention::Swept,
    /// The files that could not be deleted, each with why.
    pub failures: Vec<String>,
    /// What the purge could not reach (connectors left out), each with why.
    pub warnings: Vec<String>,
}

/// Why a command could not hand its work to a daemon that runs.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// The socket exists and the daemon listens, but this user may not connect.
    #[error(
        "the daemon is running, but this user may not use its control socket {0} (owner and group only): run the command as the service's user (sudo -u alertissimo alertissimo …), or as a member of its group"
    )]
    Forbidden(PathBuf),
    /// The exchange failed half-way.
    #[error("the running daemon did not answer over {path}: {reason}; see its log")]
    NoAnswer {
        /// The socket.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

/// Hands `request` to the daemon of the state database at `db` and waits for
/// its answer (an import takes as long as it takes). `None` when no daemon
/// listens: the command then does the work itself.
///
/// # Errors
/// When a daemon listens but the exchange fails.
pub fn hand_off(db: &Path, request: &Request) -> Result<Option<Answer>, ControlError> {
    let path = socket_path(db);
    let mut stream = match std::os::unix::net::UnixStream::connect(&path) {
        Ok(stream) => stream,
        // No socket, or the one a killed daemon left: nobody listens.
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
            ) =>
        {
            return Ok(None);
        }
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            return Err(ControlError::Forbidden(path));
        }
        Err(e) => {
            return Err(ControlError::NoAnswer {
                path,
                reason: e.to_string(),
            });
        }
    };
    let no_answer = |reason: String| ControlError::NoAnswer {
        path: path.clone(),
        reason,
    };
    let mut line = serde_json::to_string(request).map_err(|e| no_answer(e.to_string()))?;
    line.push('\n');
    stream
        .write_all(line.as_bytes())
        .map_err(|e| no_answer(e.to_string()))?;
    let mut answer = String::new();
    BufReader::new(stream)
        .read_line(&mut answer)
        .map_err(|e| no_answer(e.to_string()))?;
    if answer.is_empty() {
        return Err(no_answer(
            "it closed the connection before answering (it stopped, or the work panicked)"
                .to_owned(),
        ));
    }
    serde_json::from_str(&answer).map(Some).map_err(|e| {
        no_answer(format!(
            "an answer this command cannot read ({e}): is the daemon the same version?"
        ))
    })
}

/// Listens on the control socket of `db`, readable and writable by the
/// daemon's owner and group only. The socket is made under a temporary name,
/// its mode set, then renamed into place: no command ever meets it open to all.
/// Only the daemon that holds the instance lock calls this, so a socket already
/// there is a killed daemon's, and replaced.
///
/// # Errors
/// When the socket cannot be made (a path longer than a socket's, a folder
/// that cannot be written).
pub fn bind(db: &Path) -> std::io::Result<tokio::net::UnixListener> {
    use std::os::unix::fs::PermissionsExt;
    let path = socket_path(db);
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(format!(".{}", std::process::id()));
    let temporary = PathBuf::from(temporary);
    let _ = std::fs::remove_file(&temporary);
    let listener = tokio::net::UnixListener::bind(&temporary)?;
    let placed = std::fs::set_permissions(&temporary, std::fs::Permissions::from_mode(0o660))
        .and_then(|()| std::fs::rename(&temporary, &path));
    if let Err(e) = placed {
        let _ = std::fs::remove_file(&temporary);
        return Err(e);
    }
    Ok(listener)
}

/// Answers requests on `listener` with `answer`, a few at a time, until
/// `cancel`; then removes the socket, so that commands do their work
/// themselves again. A request being answered goes on to its end.
pub async fn serve<F, A>(
    listener: tokio::net::UnixListener,
    db: PathBuf,
    answer: F,
    cancel: CancellationToken,
) where
    F: Fn(Request) -> A + Clone + Send + 'static,
    A: std::future::Future<Output = Answer> + Send + 'static,
{
    let slots = std::sync::Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok(slot) = std::sync::Arc::clone(&slots).acquire_owned().await else {
            break;
        };
        let stream = tokio::select! {
            () = cancel.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    // Out of descriptors, most likely: wait rather than spin.
                    warn!(%error, "The control socket cannot accept a connection; trying again in a second.");
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                    continue;
                }
            },
        };
        let answer = answer.clone();
        tokio::spawn(async move {
            if let Err(error) = exchange(stream, answer).await {
                warn!(%error, "A command's request over the control socket went wrong.");
            }
            drop(slot);
        });
    }
    if let Err(error) = std::fs::remove_file(socket_path(&db))
        && error.kind() != std::io::ErrorKind::NotFound
    {
        error!(%error, "Cannot remove the control socket: commands will find it refused and work alone.");
    }
}

/// Reads one request, answers it, and closes.
async fn exchange<F, A>(stream: tokio::net::UnixStream, answer: F) -> std::io::Result<()>
where
    F: Fn(Request) -> A,
    A: std::future::Future<Output = Answer>,
{
    use tokio::io::AsyncReadExt as _;
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    let mut reader = tokio::io::BufReader::new(read.take(MAX_REQUEST));
    tokio::time::timeout(REQUEST_TIMEOUT, reader.read_line(&mut line))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "no request in time"))??;
    let reply = match serde_json::from_str::<Request>(&line) {
        Ok(request) => answer(request).await,
        Err(e) => Answer::Failed(format!(
            "the daemon cannot read this request ({e}): is the command the same version as the daemon?"
        )),
    };
    let mut text = serde_json::to_string(&reply).map_err(std::io::Error::other)?;
    text.push('\n');
    write.write_all(text.as_bytes()).await?;
    write.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 19: an import request carries its as-of and baseline; one from
    /// an older command (without them) still parses, and a plain import's
    /// request is written as before.
    #[test]
    fn issue_19_an_import_request_carries_as_of_and_baseline() {
        let old = r#"{"command":"import","connector":"c","file":null,"force":false}"#;
        let parsed: Request = serde_json::from_str(old).unwrap();
        let plain = Request::Import {
            connector: "c".to_owned(),
            file: None,
            force: false,
            as_of: None,
            as_of_from_file: false,
            baseline: false,
        };
        assert_eq!(parsed, plain);
        assert_eq!(serde_json::to_string(&plain).unwrap(), old);
        let dated = Request::Import {
            connector: "c".to_owned(),
            file: None,
            force: false,
            as_of: Some(crate::test_support::utc("2025-10-01T04:00:00Z")),
            as_of_from_file: true,
            baseline: true,
        };
        let text = serde_json::to_string(&dated).unwrap();
        assert!(
            text.contains(
                r#""as_of":"2025-10-01T04:00:00Z","as_of_from_file":true,"baseline":true"#
            ),
            "{text}"
        );
        assert_eq!(serde_json::from_str::<Request>(&text).unwrap(), dated);
    }

    #[test]
    fn the_socket_lies_beside_the_database() {
        assert_eq!(
            socket_path(Path::new("/var/lib/alertissimo/state.db")),
            Path::new("/var/lib/alertissimo/state.db.sock")
        );
    }

    #[test]
    fn without_a_daemon_the_command_works_alone() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("state.db");
        let request = Request::Flush { force: false };
        assert!(hand_off(&db, &request).unwrap().is_none());
        // The socket a killed daemon left behind answers nothing.
        let stale = std::os::unix::net::UnixListener::bind(socket_path(&db)).unwrap();
        drop(stale);
        assert!(hand_off(&db, &request).unwrap().is_none());
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_request_is_answered_by_the_daemon_and_the_socket_goes_with_it() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("state.db");
        let listener = bind(&db).unwrap();
        let mode = std::fs::metadata(socket_path(&db))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o660, "owner and group only");
        let cancel = CancellationToken::new();
        let server = tokio::spawn(serve(
            listener,
            db.clone(),
            |request| async move {
                match request {
                    Request::Cancel { id } => Answer::Cancelled {
                        done: id == 7,
                        status: None,
                    },
                    other => Answer::Failed(format!("{other:?}")),
                }
            },
            cancel.clone(),
        ));
        let asked = db.clone();
        let answer =
            tokio::task::spawn_blocking(move || hand_off(&asked, &Request::Cancel { id: 7 }))
                .await
                .unwrap()
                .unwrap();
        assert!(
            matches!(answer, Some(Answer::Cancelled { done: true, .. })),
            "{answer:?}"
        );
        cancel.cancel();
        server.await.unwrap();
        assert!(!socket_path(&db).exists());
        assert!(hand_off(&db, &Request::Cancel { id: 7 }).unwrap().is_none());
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_request_from_another_version_is_answered_with_why() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("state.db");
        let listener = bind(&db).unwrap();
        let cancel = CancellationToken::new();
        let server = tokio::spawn(serve(
            listener,
            db.clone(),
            |_| async { Answer::Failed("unreachable".to_owned()) },
            cancel.clone(),
        ));
        let path = socket_path(&db);
        let reply = tokio::task::spawn_blocking(move || {
            let mut stream = std::os::unix::net::UnixStream::connect(path).unwrap();
            stream.write_all(b"{\"command\":\"reindex\"}\n").unwrap();
            let mut line = String::new();
            BufReader::new(stream).read_line(&mut line).unwrap();
            line
        })
        .await
        .unwrap();
        let answer: Answer = serde_json::from_str(&reply).unwrap();
        assert!(
            matches!(&answer, Answer::Failed(why) if why.contains("same version")),
            "{answer:?}"
        );
        cancel.cancel();
        server.await.unwrap();
    }
}
