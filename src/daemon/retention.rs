//! The daemon's RGPD purge, on `[retention] schedule`: the personal data of the
//! dossiers closed for longer than `[retention] personal_data` and the rejected
//! records of imports that old, on the store thread; then the copies in files
//! that old (archived exports, `.eml` files, left-over spools), off it.

use std::sync::Arc;

use chrono::Utc;
use tokio_util::sync::CancellationToken;
use tracing::{error, info};

use super::{StoreHandle, every};
use crate::config::Config;
use crate::connector::Connector;
use crate::retention::Copies;
use crate::rules::Rules;

/// Purges at each tick of `[retention] schedule` (none: never), until `cancel`.
pub(super) async fn purge(
    config: Config,
    rules: Arc<Rules>,
    connectors: Arc<Vec<Connector>>,
    store: StoreHandle,
    cancel: CancellationToken,
) {
    let Some(schedule) = config.purge_schedule.clone() else {
        return;
    };
    let copies = Copies::of(&config, &connectors);
    every(&schedule, config.timezone, &cancel, false, || {
        purge_once(
            Arc::clone(&rules),
            store.clone(),
            copies.clone(),
            config.personal_data,
            (config.web.session_idle, config.web.session_max),
        )
    })
    .await;
}

async fn purge_once(
    rules: Arc<Rules>,
    store: StoreHandle,
    copies: Copies,
    keep: std::time::Duration,
    sessions: (std::time::Duration, std::time::Duration),
) {
    let now = Utc::now();
    let before = crate::store::closed_before(now, keep).unwrap_or(chrono::DateTime::<Utc>::MIN_UTC);
    let result = store
        .call(move |s| s.purge(&rules.lifecycle, before, now, sessions, false))
        .await;
    match result {
        Ok(Ok(p)) if p.dossiers > 0 || p.rejections > 0 || p.front_office > 0 => info!(
            front_office = p.front_office,
            dossiers = p.dossiers,
            fields = p.fields,
            messages = p.messages,
            alerts = p.alerts,
            rejections = p.rejections,
            "Erased the personal data of dossiers closed for longer than retention.personal_data."
        ),
        Ok(Ok(_)) => {}
        Ok(Err(error)) => {
            error!(error = %format!("{:#}", anyhow::Error::from(error)), "The purge of personal data failed; will retry at the next tick.");
        }
        Err(error) => {
            error!(%error, "The purge of personal data failed; will retry at the next tick.")
        }
    }
    match tokio::task::spawn_blocking(move || copies.sweep(before.into(), false)).await {
        Ok((swept, failures)) => {
            if swept.total() > 0 {
                info!(
                    archived_files = swept.archived_files,
                    eml_files = swept.eml_files,
                    spool_files = swept.spool_files,
                    "Deleted the copies older than retention.personal_data."
                );
            }
            for failure in failures {
                error!(%failure, "A copy older than retention.personal_data was not deleted; will retry at the next tick.");
            }
        }
        Err(error) => error!(%error, "The purge of copies failed; will retry at the next tick."),
    }
}
