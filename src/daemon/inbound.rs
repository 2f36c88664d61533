//! The daemon's task of `[inbound]`: reads the replies' mailbox every
//! `poll_interval` ([`crate::inbound::poll`]), records how each poll went (for
//! `/metrics` and `outbox list`), and wakes the dispatcher when a reply is to
//! be forwarded. A failed poll (server down, password refused) is logged and
//! tried again at the next interval; it never stops the daemon.

use super::*;
use crate::config::Inbound;

/// Starts the task on `tracker` when `[inbound]` is on.
pub(super) fn spawn(
    tracker: &TaskTracker,
    config: &Config,
    store: &StoreHandle,
    wake: &Arc<Notify>,
    cancel: &CancellationToken,
) {
    if let Some(inbound) = config.inbound.clone() {
        tracker.spawn(read_replies(
            (inbound, config.web.service_email.clone()),
            store.clone(),
            Arc::clone(wake),
            cancel.clone(),
        ));
    }
}

/// Reads the mailbox until `cancel`.
async fn read_replies(
    (config, service_email): (Inbound, Option<String>),
    store: StoreHandle,
    wake: Arc<Notify>,
    cancel: CancellationToken,
) {
    info!(host = %config.host, folder = %config.folder, every = ?config.poll_interval,
        "Reading the replies' mailbox ([inbound]).");
    loop {
        let polled = tokio::select! {
            () = cancel.cancelled() => return,
            polled = crate::inbound::poll(&config, service_email.as_deref(), &store) => polled,
        };
        let recorded = match &polled {
            Ok(report) => {
                crate::inbound::log(report);
                if report.forwarded > 0 || report.bounced_alerts > 0 {
                    wake.notify_one();
                }
                Ok(report.read)
            }
            Err(error) => {
                error!(%error, host = %config.host,
                    "Cannot read the replies' mailbox; will try again at the next interval.");
                Err(error.clone())
            }
        };
        let kept = store
            .call(move |s| {
                s.record_poll(
                    recorded.as_ref().map(|n| *n).map_err(String::as_str),
                    Utc::now(),
                )
            })
            .await;
        if let Err(error) = kept
            .map_err(|e| e.to_string())
            .and_then(|r| r.map_err(|e| e.to_string()))
        {
            warn!(%error, "Cannot record how the replies' mailbox was read.");
        }
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(config.poll_interval) => {}
        }
    }
}
