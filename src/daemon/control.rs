//! What the daemon does with a command's request over the control socket
//! (`crate::control`): the work runs where the daemon's own work runs (imports
//! and the store on the store thread, sending in its one dispatcher), with the
//! running set of connectors and rules, so that a command beside the daemon
//! neither waits on nor doubles it.

use std::sync::Arc;

use chrono::Utc;
use tokio::sync::{Notify, mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tracing::info;

use super::{DelayCache, StoreHandle};
use crate::config::Config;
use crate::connector::{Connector, LeftOut};
use crate::control::{Answer, Purge, Request};
use crate::dispatch::PassReport;
use crate::model::Sources;
use crate::retention::Copies;
use crate::rules::Rules;
use crate::timers::Pass;

/// A flush asked of the dispatcher task: with `force`, and where to answer.
pub(super) type Flush = (bool, oneshot::Sender<Result<PassReport, String>>);

/// What the running set can be asked to do: replaced at each reload.
pub(super) struct Hands {
    pub(super) config: Config,
    pub(super) connectors: Arc<Vec<Connector>>,
    /// What the evaluations need of them (the dossiers' links).
    pub(super) sources: Arc<Sources>,
    /// The connector files left out, each with why.
    pub(super) left_out: Vec<(String, String)>,
    pub(super) rules: Arc<Rules>,
    pub(super) delays: Arc<DelayCache>,
    /// Wakes the dispatcher after an import or an evaluation.
    pub(super) wake: Arc<Notify>,
    /// Asks the dispatcher task for a pass.
    pub(super) flushes: mpsc::Sender<Flush>,
    /// Cancelled when the set stops (a reload, a shutdown).
    pub(super) cancel: CancellationToken,
}

impl Hands {
    /// The names the left-out connector files bear, and why.
    pub(super) fn left_out(left_out: &[LeftOut]) -> Vec<(String, String)> {
        left_out
            .iter()
            .map(|l| (l.name.clone(), l.reason()))
            .collect()
    }
}

/// Does what `request` asks, and says what was done.
pub(super) async fn answer(hands: Arc<Hands>, store: StoreHandle, request: Request) -> Answer {
    info!(?request, "Asked over the control socket.");
    if hands.cancel.is_cancelled() {
        return Answer::Failed(
            "the daemon is reloading or stopping: try again in a moment".to_owned(),
        );
    }
    let result = match request {
        Request::Import {
            connector,
            file,
            force,
            as_of,
            as_of_from_file,
            baseline,
        } => {
            let asked = crate::import::Asked {
                force,
                as_of,
                as_of_from_file,
                baseline,
            };
            import(&hands, &store, &connector, file, asked).await
        }
        Request::Retry { id } => store
            .call(move |s| crate::control::retry(s, id, Utc::now()))
            .await
            .and_then(|r| r.map_err(anyhow::Error::from))
            .inspect(|_| hands.wake.notify_one()),
        Request::Cancel { id } => store
            .call(move |s| crate::control::cancel(s, id, Utc::now()))
            .await
            .and_then(|r| r.map_err(anyhow::Error::from)),
        Request::Flush { force } => flush(&hands, force).await,
        Request::Evaluate { review } => evaluate(&hands, &store, review).await,
        Request::Purge { dry_run } => purge(&hands, &store, dry_run).await,
    };
    result.unwrap_or_else(|error| Answer::Failed(format!("{error:#}")))
}

async fn import(
    hands: &Hands,
    store: &StoreHandle,
    name: &str,
    file: Option<std::path::PathBuf>,
    asked: crate::import::Asked,
) -> anyhow::Result<Answer> {
    let Some(connector) = hands.connectors.iter().find(|c| c.name == name) else {
        if let Some((_, why)) = hands.left_out.iter().find(|(n, _)| n == name) {
            anyhow::bail!(
                "the daemon left connector '{name}' out, its file does not validate: {why}"
            );
        }
        let known: Vec<&str> = hands.connectors.iter().map(|c| c.name.as_str()).collect();
        anyhow::bail!(
            "the running daemon has no connector '{name}' (known: {}); a connector file added since it started needs a reload (systemctl reload alertissimo)",
            known.join(", ")
        );
    };
    if let Some(file) = &file
        && let Err(e) = std::fs::File::open(file)
    {
        anyhow::bail!(
            "the daemon cannot read {}: {e}; it reads the file as its own user, so put the file where that user may read it (the connector's drop folder, for instance)",
            file.display()
        );
    }
    let connector = Arc::new(connector.clone());
    let summaries = super::import_now(
        &connector,
        &hands.rules,
        store,
        hands.config.timezone,
        &hands.cancel,
        file,
        asked,
    )
    .await?;
    hands.wake.notify_one();
    Ok(Answer::Imported(summaries))
}

async fn flush(hands: &Hands, force: bool) -> anyhow::Result<Answer> {
    let (reply, answer) = oneshot::channel();
    let stopped = || {
        anyhow::anyhow!(
            "the daemon's delivery stopped (a reload or a shutdown): try again in a moment"
        )
    };
    hands
        .flushes
        .send((force, reply))
        .await
        .map_err(|_| stopped())?;
    let report = answer.await.map_err(|_| stopped())?;
    Ok(Answer::Flushed(report.map_err(anyhow::Error::msg)?))
}

async fn evaluate(hands: &Hands, store: &StoreHandle, review: bool) -> anyhow::Result<Answer> {
    let pass = if review {
        Pass::Review(hands.config.delays.review_horizon)
    } else {
        Pass::Events
    };
    let summary = super::evaluate_now(
        &hands.rules,
        &hands.sources,
        &hands.delays,
        store,
        hands.config.timezone,
        pass,
    )
    .await?;
    if summary.alerts_queued > 0 {
        hands.wake.notify_one();
    }
    Ok(Answer::Evaluated(summary))
}

async fn purge(hands: &Hands, store: &StoreHandle, dry_run: bool) -> anyhow::Result<Answer> {
    let now = Utc::now();
    let Some(before) = crate::store::closed_before(now, hands.config.personal_data) else {
        anyhow::bail!("retention.personal_data is too long");
    };
    let rules = Arc::clone(&hands.rules);
    let sessions = (hands.config.web.session_idle, hands.config.web.session_max);
    let purged = store
        .call(move |s| s.purge(&rules.lifecycle, before, now, sessions, dry_run))
        .await??;
    let copies = Copies::of(&hands.config, &hands.connectors);
    let (swept, failures) =
        tokio::task::spawn_blocking(move || copies.sweep(before.into(), dry_run)).await?;
    let warnings = hands
        .left_out
        .iter()
        .map(|(name, why)| format!("connector '{name}' does not validate ({why}): its archive folder is unknown, and its archived exports are not expired"))
        .collect();
    Ok(Answer::Purged(Purge {
        dry_run,
        closed_before: before,
        purged,
        swept,
        failures,
        warnings,
    }))
}
