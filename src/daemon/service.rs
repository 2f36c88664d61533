//! What the daemon tells systemd (`Type=notify`): that it is ready, reloading or
//! stopping, and, when the unit sets `WatchdogSec=`, that it is alive. Without
//! systemd (`NOTIFY_SOCKET` unset), nothing.
//!
//! Alive means that the store thread answers: the heartbeat is sent only after a
//! round trip to it succeeded within half the watchdog's interval. A store stuck
//! on a hung database (a job that never returns) stops the heartbeat, and
//! systemd restarts the daemon after `WatchdogSec`. The heartbeat is one task for
//! the daemon's whole life: reloads do not start another.

use std::time::Duration;

use sd_notify::NotifyState;
use tokio::task::JoinHandle;
use tracing::{info, warn};

use super::StoreHandle;

fn tell(state: NotifyState<'_>) {
    if let Err(error) = sd_notify::notify(false, &[state]) {
        warn!(%error, "Cannot notify systemd.");
    }
}

/// Ready: the store is open and every task started (at start, and once a
/// reload's new set runs).
pub(super) fn ready() {
    tell(NotifyState::Ready);
}

/// Stopping: systemd waits for the exit rather than reporting a failure.
pub(super) fn stopping() {
    tell(NotifyState::Stopping);
}

/// Reloading: `READY=1` follows once the new configuration runs.
pub(super) fn reloading() {
    tell(NotifyState::Reloading);
}

/// Starts the watchdog's heartbeat when systemd expects one (`WATCHDOG_USEC`,
/// for this process): every half interval, a round trip to the store thread,
/// then `WATCHDOG=1` if it came back within that half interval. Abort the task
/// before waiting for the store thread to end: it holds a handle to it.
pub(super) fn heartbeat(store: StoreHandle) -> Option<JoinHandle<()>> {
    let mut usec = 0;
    if !sd_notify::watchdog_enabled(false, &mut usec) || usec == 0 {
        return None;
    }
    let every = Duration::from_micros(usec / 2);
    Some(tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut silent = false;
        loop {
            tick.tick().await;
            let answered = matches!(
                tokio::time::timeout(every, store.call(|_| ())).await,
                Ok(Ok(()))
            );
            if answered {
                tell(NotifyState::Watchdog);
                if std::mem::take(&mut silent) {
                    info!("The store thread answers again: the watchdog is told the daemon lives.");
                }
            } else if !std::mem::replace(&mut silent, true) {
                warn!(
                    within = ?every,
                    "The store thread did not answer in time: the watchdog is not told; systemd restarts the daemon if this lasts WatchdogSec."
                );
            }
        }
    }))
}
