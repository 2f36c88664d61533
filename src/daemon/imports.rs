//! The daemon's imports: one task per connector follows its cron schedule; a
//! drop folder is imported on the store thread, an API fetched on a thread of
//! its own into a spool first.

use super::*;

/// How long after a file's settle time the daemon looks at it again: its
/// modification time's resolution, and a margin.
const SETTLED_MARGIN: std::time::Duration = std::time::Duration::from_millis(500);

/// Follows one connector's schedule, and looks again at its drop folder as soon
/// as a file left for being too recent has settled.
pub(super) async fn follow(
    connector: Arc<Connector>,
    rules: Arc<Rules>,
    wake: Arc<Notify>,
    store: StoreHandle,
    tz: Tz,
    at_startup: bool,
    cancel: CancellationToken,
) {
    let name = connector.name.clone();
    if at_startup {
        import_once(&connector, &rules, &store, tz, &cancel).await;
        wake.notify_one();
    }
    loop {
        let next = match next_run(&connector.schedule, tz, Utc::now()) {
            Ok(next) => next,
            Err(error) => {
                error!(connector = %name, %error, "The schedule has no next occurrence; this connector stops.");
                return;
            }
        };
        tracing::debug!(
            connector = %name,
            next = %next.with_timezone(&tz).format("%Y-%m-%d %H:%M:%S %Z"),
            "Next import scheduled."
        );
        let mut wait = (next - Utc::now()).to_std().unwrap_or_default();
        // A file left because it was modified moments ago is read once it has
        // settled, not at the next scheduled import (a day later, maybe).
        if let Some(settling) = connector.source.folder().and_then(|f| f.settling()) {
            wait = wait.min(settling + SETTLED_MARGIN);
        }
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(wait) => {}
        }
        if cancel.is_cancelled() {
            return;
        }
        import_once(&connector, &rules, &store, tz, &cancel).await;
        wake.notify_one();
    }
}

pub(super) async fn import_once(
    connector: &Arc<Connector>,
    rules: &Arc<Rules>,
    store: &StoreHandle,
    tz: Tz,
    cancel: &CancellationToken,
) {
    match import_now(connector, rules, store, tz, cancel, None, Asked::default()).await {
        Ok(summaries) if summaries.is_empty() => {
            tracing::debug!(connector = %connector.name, "No new file.");
        }
        Ok(_) => {}
        Err(error) => {
            error!(connector = %connector.name, error = %format!("{error:#}"), "Import failed; will retry at the next tick.")
        }
    }
}

/// Imports `connector` now: `file`, or what waits in its drop folder, or what
/// its API has new; as `asked` (with `force`, even a content already imported;
/// dated, or as a baseline).
pub(super) async fn import_now(
    connector: &Arc<Connector>,
    rules: &Arc<Rules>,
    store: &StoreHandle,
    tz: Tz,
    cancel: &CancellationToken,
    file: Option<std::path::PathBuf>,
    asked: Asked,
) -> anyhow::Result<Vec<import::Summary>> {
    if file.is_none() && connector.source.folder().is_none() {
        return synchronise(connector, rules, store, tz, cancel, asked).await;
    }
    let c = Arc::clone(connector);
    let rules = Arc::clone(rules);
    let cancel = cancel.clone();
    store
        .call(move |store| {
            // A job queued before a shutdown was asked does not start.
            if cancel.is_cancelled() {
                return Ok(Vec::new());
            }
            let stop = || cancel.is_cancelled();
            let options = options(&stop, &rules, asked);
            anyhow::Ok(match &file {
                Some(file) => vec![import::import_file(store, &c, file, tz, &options)?],
                None => import::import_pending(store, &c, tz, &options)?,
            })
        })
        .await?
}

/// What an import in the daemon is told: now, the rules, what was asked
/// (whether to import a content already imported, an as-of, a baseline), and
/// how to know a shutdown was asked.
pub(super) fn options<'a>(
    stop: &'a (dyn Fn() -> bool + Sync),
    rules: &'a Rules,
    asked: Asked,
) -> Options<'a> {
    Options {
        now: Utc::now(),
        as_of: asked.as_of,
        as_of_from_file: asked.as_of_from_file,
        baseline: asked.baseline,
        force: asked.force,
        progress: None,
        stop: Some(stop),
        rules: Some(rules),
    }
}

/// Imports an API connector in three steps, so that the store thread (and with it
/// the delivery of alerts) never waits on the network: where the source stands is
/// read from the store, the synchronisation is fetched into a spool on a thread of
/// its own, then the spool is imported in one transaction.
pub(super) async fn synchronise(
    connector: &Arc<Connector>,
    rules: &Arc<Rules>,
    store: &StoreHandle,
    tz: Tz,
    cancel: &CancellationToken,
    asked: Asked,
) -> anyhow::Result<Vec<import::Summary>> {
    let c = Arc::clone(connector);
    let (state, dir) = store
        .call(move |store| {
            import::api_state(store, &c).map(|state| (state, import::spool_dir(store.path())))
        })
        .await??;
    // A thread of its own, left behind at a shutdown: a slow API does not hold
    // the daemon up, and its spool, an unnamed file, goes with the process.
    let (tx, rx) = oneshot::channel();
    let c = Arc::clone(connector);
    let stop = cancel.clone();
    std::thread::Builder::new()
        .name(format!("fetch {}", connector.name))
        .spawn(move || {
            let _ = tx.send(spool::fetch(
                &c,
                state,
                &dir,
                &|| stop.is_cancelled(),
                &|_| {},
            ));
        })?;
    let interrupted = || {
        info!(connector = %connector.name, "Stopping: the synchronisation is left for the next start.");
        Ok(Vec::new())
    };
    let fetched = tokio::select! {
        fetched = rx => fetched.map_err(|_| anyhow::anyhow!("the fetching thread panicked"))?,
        () = cancel.cancelled() => return interrupted(),
    };
    let spool = match fetched {
        Ok(spool) => spool,
        Err(SpoolError::Interrupted) => return interrupted(),
        Err(error) => {
            let (name, reason) = (connector.name.clone(), error.to_string());
            store
                .call(move |store| store.record_source_error(&name, Utc::now(), &reason))
                .await??;
            return Err(error.into());
        }
    };
    let c = Arc::clone(connector);
    let rules = Arc::clone(rules);
    let cancel = cancel.clone();
    let summary = store
        .call(move |store| {
            let stop = || cancel.is_cancelled();
            import::import_spool(store, &c, &spool, tz, &options(&stop, &rules, asked))
        })
        .await??;
    Ok(vec![summary])
}
