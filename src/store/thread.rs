//! The thread that owns the [`Store`] in a process that runs tasks (the daemon,
//! `outbox flush`): every use of the database is a job sent to it, run one at a
//! time (SQLite has one writer); beside it, in the daemon, a reader thread with
//! a read-only connection ([`Store::open_reader`]) for the long reads that need
//! not wait for writes nor hold them up ([`StoreHandle::read`]); and the delay
//! estimates those tasks share ([`DelayCache`]).

use tokio::sync::{mpsc, oneshot};
use tracing::error;

use std::sync::Arc;

use chrono::Utc;

use super::Store;
use crate::delays::Delays;

type Job = Box<dyn FnOnce(&mut Store) + Send>;
type Read = Box<dyn FnOnce(&Store) + Send>;

/// A handle to the thread that owns the store: work is sent to it as closures.
#[derive(Clone)]
pub(crate) struct StoreHandle {
    jobs: mpsc::Sender<Job>,
    /// The reader thread's queue, when there is one.
    reads: Option<mpsc::Sender<Read>>,
}

/// Runs `job`; a panic is logged and the thread goes on.
fn guarded(job: impl FnOnce()) {
    // A bug in one import must not take every connector down with it: the
    // import's transaction was rolled back while unwinding.
    if std::panic::catch_unwind(std::panic::AssertUnwindSafe(job)).is_err() {
        error!("A job on the store panicked; it was rolled back and the daemon goes on.");
    }
}

impl StoreHandle {
    /// Starts the store thread.
    pub(crate) fn spawn(mut store: Store) -> (Self, std::thread::JoinHandle<()>) {
        let (jobs, mut rx) = mpsc::channel::<Job>(16);
        let thread = std::thread::Builder::new()
            .name("store".to_owned())
            .spawn(move || {
                while let Some(job) = rx.blocking_recv() {
                    guarded(|| job(&mut store));
                }
            })
            .expect("the OS refused to start the store thread");
        (Self { jobs, reads: None }, thread)
    }

    /// Gives the handle a reader thread owning `reader` (a connection of
    /// [`Store::open_reader`]); it ends when every handle is dropped.
    pub(crate) fn with_reader(mut self, reader: Store) -> Self {
        let (reads, mut rx) = mpsc::channel::<Read>(16);
        std::thread::Builder::new()
            .name("store-reader".to_owned())
            .spawn(move || {
                while let Some(read) = rx.blocking_recv() {
                    guarded(|| read(&reader));
                }
            })
            .expect("the OS refused to start the store's reader thread");
        self.reads = Some(reads);
        self
    }

    /// Runs `f` on the reader thread, when there is one (else on the store
    /// thread), and waits for its result. What it reads is a snapshot: a
    /// write committed meanwhile may not be in it.
    ///
    /// # Errors
    /// When the thread has stopped.
    pub(crate) async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Store) -> T + Send + 'static,
    ) -> anyhow::Result<T> {
        let Some(reads) = &self.reads else {
            return self.call(move |store| f(store)).await;
        };
        let (tx, rx) = oneshot::channel();
        reads
            .send(Box::new(move |store| {
                let _ = tx.send(f(store));
            }))
            .await
            .map_err(|_| anyhow::anyhow!("the store's reader thread has stopped"))?;
        rx.await
            .map_err(|_| anyhow::anyhow!("the store's reader thread stopped during a read"))
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
                .read(move |s| s.delays(&lifecycle, min_sample, now, tz))
                .await??,
        );
        *cached = Some((now, Arc::clone(&fresh)));
        Ok(fresh)
    }
}
