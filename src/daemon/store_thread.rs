//! The thread that owns the [`Store`]: every use of the database in the daemon
//! is a job sent to it, run one at a time (SQLite has one writer).

use tokio::sync::{mpsc, oneshot};
use tracing::error;

use crate::store::Store;

type Job = Box<dyn FnOnce(&mut Store) + Send>;

/// A handle to the thread that owns the store: work is sent to it as closures.
#[derive(Clone)]
pub struct StoreHandle {
    jobs: mpsc::Sender<Job>,
}

impl StoreHandle {
    /// Starts the store thread.
    pub fn spawn(mut store: Store) -> (Self, std::thread::JoinHandle<()>) {
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
    pub async fn call<T: Send + 'static>(
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
