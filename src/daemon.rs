//! The daemon: imports every connector on its cron schedule, and delivers the
//! alerts as they fall due, until told to stop.
//!
//! ```text
//!  one task per connector                          store thread (owns the Store)
//!  cron (in the configured zone) ─▶ job ─bounded channel─▶ import_pending ─▶ reply
//!        │ (an API: fetched first, ─▶ spool file ─────▶ import_spool ─▶ reply)
//!        │  on a thread of its own)
//!        └─ wakes ─▶ dispatcher task ─▶ outbox ─▶ transport
//!  cron ([delays] evaluate) ─▶ stalled dossiers, deadlines ─▶ store thread ─▶ wakes
//!  cron ([delays] review)   ─▶ instructors' review ──────▶ store thread ─▶ wakes
//!  SIGHUP ─▶ config, connectors, rules, templates read again ─▶ valid: the tasks
//!            stop between two imports and the new set starts; invalid: logged, the
//!            running set goes on
//!  SIGTERM / SIGINT ─▶ cancel ─▶ tasks stop waiting; the running import finishes
//!                                 (or, past shutdown_timeout, is rolled back by SQLite);
//!                                 no new message starts, those in flight are recorded
//!                                 (during a reload too: the new set never starts)
//!  every [inbound] poll_interval ─▶ IMAP: replies recorded ─▶ store thread ─▶ wakes
//!  heartbeat (one task) ─▶ round trip to the store thread ─▶ answered in time: WATCHDOG=1
//!  control socket (<db>.sock) ─▶ a command's import, evaluation, purge ─▶ store thread
//!                             └─ its flush ─▶ the dispatcher task's next pass ─▶ answer
//! ```
//! A failing connector is logged and retried at its next tick; it never stops the
//! others. Imports run one at a time because SQLite has one writer.

use std::future::Future;
use std::sync::Arc;

use chrono::Utc;
use chrono_tz::Tz;
use tokio::sync::{Notify, oneshot};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{error, info, warn};

use crate::config::Config;
use crate::connector::spool::{self, SpoolError};
use crate::connector::{Connector, LeftOut};
use crate::dispatch::Dispatcher;
use crate::import::{self, Asked, Options};
use crate::model::Sources;
use crate::rules::Rules;
use crate::store::Store;
use crate::timers::{self, Clock, Pass};
use crate::timing::next_run;

mod control;
mod delivery;
mod evaluations;
mod imports;
mod inbound;
mod retention;
mod service;

use crate::store::{DelayCache, StoreHandle};
use delivery::deliver;
use evaluations::{Evaluation, evaluate, evaluate_now, every};
use imports::{follow, import_now};

/// Resolves on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(error) => {
                warn!(%error, "Cannot listen for SIGTERM; only Ctrl-C stops the daemon.");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// What the daemon runs with; read again whole on SIGHUP.
pub struct Setup {
    /// The configuration.
    pub config: Config,
    /// The valid connectors.
    pub connectors: Vec<Connector>,
    /// The connector files that do not validate: the daemon runs without them.
    pub left_out: Vec<LeftOut>,
    /// The rules and templates.
    pub rules: Arc<Rules>,
}

/// The tasks of one setup: stopped together, between two imports, at a reload.
struct Generation {
    cancel: CancellationToken,
    tracker: TaskTracker,
    /// What the control socket may ask of this set.
    hands: Arc<control::Hands>,
}

/// Starts the tasks of a setup: the dispatcher, the evaluations of time-based
/// events, and one task per enabled connector.
///
/// # Errors
/// When the transport cannot be set up (TLS settings): then nothing started.
fn start(
    setup: &Setup,
    store: &StoreHandle,
    shutdown: &CancellationToken,
) -> anyhow::Result<Generation> {
    let Setup {
        config,
        connectors,
        rules,
        ..
    } = setup;
    let cancel = shutdown.child_token();
    let tracker = TaskTracker::new();
    // One reading of the history serves the messages and the evaluations.
    let delays = Arc::new(DelayCache::new(
        store.clone(),
        Arc::clone(&rules.lifecycle),
        config.delays.min_sample,
        config.timezone,
        config.delays.refresh,
    ));
    let sources = Arc::new(Connector::sources(connectors));
    let dispatcher = Dispatcher::new(
        store.clone(),
        Arc::clone(rules),
        Arc::clone(&sources),
        &config.delivery,
        config.web.public_url.clone(),
        Arc::clone(&delays),
        cancel.clone(),
    )?;
    let wake = Arc::new(Notify::new());
    let (flushes, asked) = tokio::sync::mpsc::channel(4);
    tracker.spawn(deliver(
        dispatcher,
        Arc::clone(&wake),
        asked,
        cancel.clone(),
    ));
    let all = Arc::new(connectors.clone());
    for (schedule, pass) in [
        (config.delays.evaluate.clone(), Pass::Events),
        (
            config.delays.review.clone(),
            Pass::Review(config.delays.review_horizon),
        ),
    ] {
        tracker.spawn(evaluate(
            Evaluation {
                rules: Arc::clone(rules),
                sources: Arc::clone(&sources),
                config: config.clone(),
                delays: Arc::clone(&delays),
                schedule,
                pass,
            },
            store.clone(),
            Arc::clone(&wake),
            cancel.clone(),
        ));
    }
    inbound::spawn(&tracker, config, store, &wake, &cancel);
    tracker.spawn(retention::purge(
        config.clone(),
        Arc::clone(rules),
        Arc::clone(&all),
        store.clone(),
        cancel.clone(),
    ));
    for connector in connectors {
        if !connector.enabled {
            info!(connector = %connector.name, "Disabled (enabled = false): not imported on schedule.");
            continue;
        }
        tracker.spawn(follow(
            Arc::new(connector.clone()),
            Arc::clone(rules),
            Arc::clone(&wake),
            store.clone(),
            config.timezone,
            config.daemon.import_at_startup,
            cancel.clone(),
        ));
    }
    tracker.close();
    started(setup);
    let hands = Arc::new(control::Hands {
        config: config.clone(),
        connectors: all,
        sources,
        left_out: control::Hands::left_out(&setup.left_out),
        rules: Arc::clone(rules),
        delays,
        wake,
        flushes,
        cancel: cancel.clone(),
    });
    Ok(Generation {
        cancel,
        tracker,
        hands,
    })
}

/// Logs that the tasks of `setup` started, and when none imports anything.
fn started(setup: &Setup) {
    let Setup {
        config,
        connectors,
        rules,
        ..
    } = setup;
    if !connectors.iter().any(|c| c.enabled) {
        warn!(
            folder = %config.connectors_dir.display(),
            "No connector is enabled: nothing will be imported. Set enabled = true in the \
             connector file of your source, then reload."
        );
    }
    info!(
        connectors = connectors.len(),
        rules = rules.rules.len(),
        database = %config.store.path.display(),
        timezone = %config.timezone,
        "Started."
    );
}

/// Resolves at each SIGHUP (never, where there is none).
async fn hangup(signals: &mut Option<tokio::signal::unix::Signal>) {
    match signals {
        Some(s) => {
            s.recv().await;
        }
        None => std::future::pending().await,
    }
}

/// The running set: its setup and its tasks.
struct Running {
    current: Setup,
    generation: Generation,
}

/// Says which connector files are left out (they do not validate), at a start
/// and a reload: in the log, in `/metrics` (with the state of every connector
/// file), and to the store, for the administrators' digest to tell each once.
async fn announce(setup: &Setup, store: &StoreHandle, live: &crate::metrics::Live) {
    use crate::metrics::ConnectorState;
    for l in &setup.left_out {
        for p in l.problems.iter() {
            error!(connector = %l.name, place = %p.place, problem = %p.message, "Invalid connector left out; the others run.");
        }
    }
    let mut states: Vec<_> = setup
        .connectors
        .iter()
        .map(|c| {
            let state = if c.enabled {
                ConnectorState::Enabled
            } else {
                ConnectorState::Disabled
            };
            (c.name.clone(), state)
        })
        .chain(
            setup
                .left_out
                .iter()
                .map(|l| (l.name.clone(), ConnectorState::LeftOut)),
        )
        .collect();
    states.sort_by(|a, b| a.0.cmp(&b.0));
    live.set_connectors(states);
    let left_out: Vec<_> = setup
        .left_out
        .iter()
        .map(|l| crate::store::LeftOutConnector {
            connector: l.name.clone(),
            file: l.file.display().to_string(),
            reason: l.reason(),
            since: Utc::now(),
        })
        .collect();
    match store
        .call(move |s| s.record_left_out(&left_out, Utc::now()))
        .await
    {
        Ok(Ok(())) => {}
        Ok(Err(error)) => {
            error!(error = %format!("{:#}", anyhow::Error::from(error)), "Cannot record the connectors left out for the administrators' digest.");
        }
        Err(error) => {
            error!(%error, "Cannot record the connectors left out for the administrators' digest.")
        }
    }
}

/// How a reload ended.
#[derive(Debug, PartialEq, Eq)]
enum Reloaded {
    /// The new set runs, or the previous one goes on.
    Running,
    /// A shutdown was asked while the previous tasks were stopping.
    Shutdown,
}

/// Runs the daemon until `shutdown` resolves. On SIGHUP, `reload` reads the
/// configuration, connectors, rules and templates again: when they are valid, the
/// running tasks stop between two imports and the new ones start; when not, the
/// error is logged and the daemon goes on as it was.
///
/// # Errors
/// When the store cannot be opened, or another daemon holds it.
pub async fn run(
    setup: Setup,
    reload: impl Fn() -> Result<Setup, String>,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let config = &setup.config;
    // One daemon per state: held until the daemon ends.
    let _lock = crate::store::InstanceLock::acquire(&config.store.path)?;
    let store = Store::open(&config.store.path, config.store.cache_mb)?;
    let (handle, store_thread) = StoreHandle::spawn(store);
    let handle = handle.with_reader(Store::open_reader(
        &config.store.path,
        config.store.cache_mb,
    )?);
    let cancel = CancellationToken::new();
    let live = Arc::new(crate::metrics::Live::default());
    // Metrics and health, for the whole life of the daemon (a reload keeps them).
    let metrics = match setup.config.metrics_listen {
        Some(address) => {
            let listener = tokio::net::TcpListener::bind(address)
                .await
                .map_err(|e| anyhow::anyhow!("metrics.listen: cannot listen on {address}: {e}"))?;
            info!(%address, "Serving /metrics, /healthz and /readyz.");
            Some(tokio::spawn(crate::metrics::serve(
                listener,
                handle.clone(),
                Arc::clone(&live),
                crate::metrics::Limits::default(),
                cancel.clone(),
            )))
        }
        None => None,
    };
    announce(&setup, &handle, &live).await;
    let mut running = Running {
        generation: start(&setup, &handle, &cancel)?,
        current: setup,
    };
    // The web face too, for the daemon's whole life (a reload keeps it, and
    // hands it the new rules, estimates and dispatcher).
    let (front, front_rx) = tokio::sync::watch::channel(front_parts(&running.generation.hands));
    let web = serve_web(&running.current.config, front_rx, &handle, &cancel).await?;
    // Commands that write hand their work to this daemon (one writer).
    let (hands, current_hands) = tokio::sync::watch::channel(Arc::clone(&running.generation.hands));
    let control = listen_for_commands(
        &running.current.config.store.path,
        current_hands,
        &handle,
        &cancel,
    );
    let mut hangups = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .map_err(|error| warn!(%error, "Cannot listen for SIGHUP: reloads need a restart."))
        .ok();
    service::ready();
    // One heartbeat for the daemon's whole life, reloads included.
    let heartbeat = service::heartbeat(handle.clone());
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            () = hangup(&mut hangups) => {
                let reloaded = apply_reload(&mut running, &reload, &handle, &cancel, &live, &mut shutdown).await?;
                hands.send_replace(Arc::clone(&running.generation.hands));
                front.send_replace(front_parts(&running.generation.hands));
                if reloaded == Reloaded::Shutdown {
                    break;
                }
            }
        }
    }
    info!("Stopping: waiting for the running import to finish.");
    service::stopping();
    cancel.cancel();
    if let Some(metrics) = metrics {
        let _ = metrics.await;
    }
    if let Some(control) = control {
        let _ = control.await;
    }
    if let Some(web) = web {
        // Requests under way finish (each within web::REQUEST_TIMEOUT).
        let _ = tokio::time::timeout(crate::web::REQUEST_TIMEOUT, web).await;
    }
    let timeout = running.current.config.daemon.shutdown_timeout;
    if tokio::time::timeout(timeout, running.generation.tracker.wait())
        .await
        .is_err()
    {
        warn!(
            ?timeout,
            "Work was still running at the shutdown timeout: an import is rolled back, a message being sent is sent again at the next start."
        );
        return Ok(());
    }
    // The heartbeat, the running set (its delay estimates), the front office's
    // parts and the control socket's requests hold handles to the store thread: once they and the tasks
    // are gone, the store thread drains and stops.
    drop(hands);
    drop(front);
    drop(running);
    if let Some(heartbeat) = heartbeat {
        heartbeat.abort();
        let _ = heartbeat.await;
    }
    drop(handle);
    let _ = tokio::task::spawn_blocking(move || store_thread.join()).await;
    info!("Stopped.");
    Ok(())
}

/// Serves the control socket beside the database for the daemon's whole life,
/// each request going to the running set of the moment. Without the socket (a
/// path too long for one, a folder that cannot be written) the daemon runs all
/// the same, and commands beside it open the store themselves.
fn listen_for_commands(
    db: &std::path::Path,
    hands: tokio::sync::watch::Receiver<Arc<control::Hands>>,
    store: &StoreHandle,
    cancel: &CancellationToken,
) -> Option<tokio::task::JoinHandle<()>> {
    let listener = match crate::control::bind(db) {
        Ok(listener) => listener,
        Err(error) => {
            error!(socket = %crate::control::socket_path(db).display(), %error, "Cannot open the control socket: commands beside the daemon will open the database themselves.");
            return None;
        }
    };
    info!(socket = %crate::control::socket_path(db).display(), "Commands that write hand their work to the daemon over its control socket.");
    let store = store.clone();
    let answer = move |request| {
        let hands = Arc::clone(&hands.borrow());
        control::answer(hands, store.clone(), request)
    };
    Some(tokio::spawn(crate::control::serve(
        listener,
        db.to_owned(),
        answer,
        cancel.clone(),
    )))
}

/// What the front office needs of a running set.
fn front_parts(hands: &control::Hands) -> Arc<crate::web::front::Current> {
    Arc::new(crate::web::front::Current {
        rules: Arc::clone(&hands.rules),
        delays: Arc::clone(&hands.delays),
        wake: Arc::clone(&hands.wake),
        sources: Arc::clone(&hands.sources),
        staff: Arc::new(hands.config.web.staff.clone()),
        horizon: hands.config.delays.review_horizon,
    })
}

/// Starts the web face on `[web] listen`, when set, until `cancel`; with the
/// front office when `[web] public_url` is set too.
///
/// # Errors
/// When the address cannot be listened on.
async fn serve_web(
    config: &crate::config::Config,
    current: tokio::sync::watch::Receiver<Arc<crate::web::front::Current>>,
    store: &StoreHandle,
    cancel: &CancellationToken,
) -> anyhow::Result<Option<tokio::task::JoinHandle<()>>> {
    let Some(address) = config.web.listen else {
        return Ok(None);
    };
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .map_err(|e| anyhow::anyhow!("web.listen: cannot listen on {address}: {e}"))?;
    let pages =
        crate::web::pages::Pages::load(&config.rules_dir.join(crate::web::pages::PAGES_DIR));
    let front = crate::web::front::FrontOffice::new(
        &config.web,
        config.region.clone(),
        config.timezone,
        pages,
        current,
    )
    .map(Arc::new);
    if front.is_some() {
        info!(%address, "Serving the web pages (the front office, unsubscribing).");
    } else {
        info!(%address, "Serving the web pages (unsubscribing; no front office without web.public_url).");
    }
    let https = config
        .web
        .public_url
        .as_deref()
        .is_some_and(|url| url.starts_with("https://"));
    let (store, cancel) = (store.clone(), cancel.clone());
    Ok(Some(tokio::spawn(crate::web::serve(
        listener, store, front, https, cancel,
    ))))
}

/// Reads the files again and, when they are valid, stops the running tasks and
/// starts the new set; a shutdown asked while the tasks stop is not kept waiting
/// for them (the caller then stops within `daemon.shutdown_timeout`).
///
/// # Errors
/// When neither the new set nor the previous one can start again.
async fn apply_reload<S: Future<Output = ()> + Unpin>(
    running: &mut Running,
    reload: &impl Fn() -> Result<Setup, String>,
    store: &StoreHandle,
    cancel: &CancellationToken,
    live: &crate::metrics::Live,
    shutdown: &mut S,
) -> anyhow::Result<Reloaded> {
    use std::sync::atomic::Ordering::Relaxed;
    let reloads = &live.reloads;
    info!("SIGHUP: reading the configuration, connectors, rules and templates again.");
    let current = &running.current.config.store.path;
    let next = reload().and_then(|next| {
        if next.config.store.path == *current {
            Ok(next)
        } else {
            Err(format!(
                "store.path changed ({} → {}): restart the daemon to move the state",
                current.display(),
                next.config.store.path.display()
            ))
        }
    });
    let next = match next {
        Ok(next) => next,
        Err(problems) => {
            reloads.refused.fetch_add(1, Relaxed);
            error!(%problems, "Reload refused: the daemon goes on with its previous configuration.");
            return Ok(Reloaded::Running);
        }
    };
    service::reloading();
    // The running import finishes first, unless a shutdown is asked meanwhile.
    running.generation.cancel.cancel();
    tokio::select! {
        () = running.generation.tracker.wait() => {}
        () = shutdown => {
            info!("Shutdown asked during a reload: the new configuration is not started.");
            return Ok(Reloaded::Shutdown);
        }
    }
    running.generation = match start(&next, store, cancel) {
        Ok(generation) => {
            announce(&next, store, live).await;
            running.current = next;
            reloads.applied.fetch_add(1, Relaxed);
            generation
        }
        Err(error) => {
            reloads.refused.fetch_add(1, Relaxed);
            error!(error = %format!("{error:#}"), "Reload refused: the daemon goes on with its previous configuration.");
            start(&running.current, store, cancel)?
        }
    };
    service::ready();
    info!("Reloaded.");
    Ok(Reloaded::Running)
}
