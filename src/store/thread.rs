//! The thread that owns the [`Store`] in a process that runs tasks (the daemon,
//! `outbox flush`): every use of the database is a job sent to it, run one at a
//! time (SQLite has one writer); and the delay estimates those tasks share,
//! read on that thread ([`DelayCache`]).

use tokio::sync::{mpsc, oneshot};
use tracing::error;

use std::sync::Arc;

use chrono::Utc;

use super::Store;
use crate::delays::Delays;

type Job = Box<dyn FnOnce(&mut Store) + Send>;

/// A handle to the thread that owns the store: work is sent to it as closures.
#[derive(Clone)]
pub(crate) struct StoreHandle {
    jobs: mpsc::Sender<Job>,
}

impl StoreHandle {
    /// Starts the store thread.
    pub(crate) fn spawn(mut store: Store) -> (Self, std::thread::JoinHandle<()>) {
        let (jobs, mut rx) = mpsc::channel::<Job>(16);
        let thread = std::thread::Builder::new()
            .name("store".to_owned())
            .spawn(move || {
                while let Some(job) = rx.blocking_recv() {
                    // A bug in one import must not take every connector down with it: the
                    // import's transaction was rolled back while unwinding.
                    if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(&mut store)))
                        .is_err()
                    {
                        error!("A job on the store panicked; it was rolled back and the daemon goes on.");
                    }
                }
            })
            .expect("the OS refused to start the store thread");
        (Self { jobs }, thread)
    }

    /// Runs `f` on the store thread and waits for its result.
    ///
    /// # Errors
    /// When the store thread has stopped.
    pub(crate) async fn call<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Store) -> T + Send + 'static,
    ) -> anyhow::Result<T> {
        let (tx, rx) = oneshot::channel();
        self.jobs
            .send(Box::new(move |store| {
                let _ = tx.send(f(store));
            }))
            .await
            .map_err(|_| anyhow::anyhow!("the store thread has stopped"))?;
        rx.await
            .map_err(|_| anyhow::anyhow!("the store thread stopped during a job"))
    }
}

/// The delay estimates, read from the history again once older than `refresh`
/// (`[delays] refresh`): one reading serves the messages' figures and the
/// evaluations' thresholds (at a million dossiers, a reading takes seconds of
/// the store thread).
pub(crate) struct DelayCache {
    store: StoreHandle,
    lifecycle: Arc<crate::lifecycle::Lifecycle>,
    /// The fewest stays a figure rests on (`[delays] min_sample`).
    min_sample: u64,
    /// The Region's zone, whose days the estimates count.
    tz: chrono_tz::Tz,
    refresh: std::time::Duration,
    cached: tokio::sync::Mutex<Option<(chrono::DateTime<Utc>, Arc<Delays>)>>,
}

impl DelayCache {
    /// An empty cache of the estimates of `lifecycle`'s steps, each resting on
    /// `min_sample` stays at least, days counted in `tz`, read again once older
    /// than `refresh`.
    pub(crate) fn new(
        store: StoreHandle,
        lifecycle: Arc<crate::lifecycle::Lifecycle>,
        min_sample: u64,
        tz: chrono_tz::Tz,
        refresh: std::time::Duration,
    ) -> Self {
        Self {
            store,
            lifecycle,
            min_sample,
            tz,
            refresh,
            cached: tokio::sync::Mutex::new(None),
        }
    }

    /// The estimates as of `now`, read again when the cached ones are too old.
    ///
    /// # Errors
    /// When the store fails.
    pub(crate) async fn get(&self, now: chrono::DateTime<Utc>) -> anyhow::Result<Arc<Delays>> {
        let mut cached = self.cached.lock().await;
        if let Some((at, delays)) = &*cached
            && (now - *at).to_std().unwrap_or_default() < self.refresh
        {
            return Ok(Arc::clone(delays));
        }
        let lifecycle = Arc::clone(&self.lifecycle);
        let (min_sample, tz) = (self.min_sample, self.tz);
        let fresh = Arc::new(
            self.store
                .call(move |s| s.delays(&lifecycle, min_sample, now, tz))
                .await??,
        );
        *cached = Some((now, Arc::clone(&fresh)));
        Ok(fresh)
    }
}
