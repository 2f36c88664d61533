//! Sending a pass's groups, a few at a time, so that one that goes wrong never
//! stops the others (issue 17, item 1): each group's task is watched with the
//! alerts it claimed, and a task that errs or panics gives back its own alerts,
//! to pending with an `interrupted` attempt, while its siblings finish.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use tokio::sync::Semaphore;
use tokio::task::{Id, JoinError, JoinSet};
use tracing::error;

use super::PassReport;

/// How the groups of a pass are sent.
pub(super) struct Sending<Stop, Send, Back> {
    /// How many messages at once.
    pub(super) concurrency: usize,
    /// The first message goes alone (a probe of a transport that was paused).
    pub(super) probe: bool,
    /// Whether to start no new message (a shutdown, a relay outage).
    pub(super) stop: Stop,
    /// Sends one group.
    pub(super) send: Send,
    /// Gives the alerts of a group that went wrong back, with why.
    pub(super) give_back: Back,
}

/// Sends each group with `sending.send`, `concurrency` at a time; `ids` names
/// the alerts a group holds. Returns what the groups did, a group that went
/// wrong counted in `errors`.
///
/// # Errors
/// When the alerts of a group that went wrong cannot be given back.
pub(super) async fn each<G, Stop, Send, SendFut, Back, BackFut>(
    groups: Vec<G>,
    ids: impl Fn(&G) -> Vec<i64>,
    sending: Sending<Stop, Send, Back>,
) -> anyhow::Result<PassReport>
where
    Stop: Fn() -> bool,
    Send: Fn(G) -> SendFut,
    SendFut: Future<Output = anyhow::Result<PassReport>> + std::marker::Send + 'static,
    Back: Fn(Vec<i64>, String) -> BackFut,
    BackFut: Future<Output = anyhow::Result<()>>,
{
    let Sending {
        concurrency,
        mut probe,
        stop,
        send,
        give_back,
    } = sending;
    let mut report = PassReport::default();
    let permits = Arc::new(Semaphore::new(concurrency));
    let mut tasks = JoinSet::new();
    let mut claims: HashMap<Id, Vec<i64>> = HashMap::new();
    for group in groups {
        let permit = Arc::clone(&permits).acquire_owned().await?;
        // On shutdown or a relay outage, no new message starts; those in
        // flight are recorded.
        if stop() {
            break;
        }
        let held = ids(&group);
        let sent = send(group);
        let handle = tasks.spawn(async move {
            let report = sent.await;
            drop(permit);
            report
        });
        claims.insert(handle.id(), held);
        if std::mem::take(&mut probe)
            && let Some(done) = tasks.join_next_with_id().await
        {
            report.add(settle(done, &mut claims, &give_back).await?);
        }
    }
    while let Some(done) = tasks.join_next_with_id().await {
        report.add(settle(done, &mut claims, &give_back).await?);
    }
    Ok(report)
}

/// What one group's task ended with: its report, or, when it went wrong (a
/// panic, a database error), its alerts given back.
async fn settle<Back, BackFut>(
    done: Result<(Id, anyhow::Result<PassReport>), JoinError>,
    claims: &mut HashMap<Id, Vec<i64>>,
    give_back: &Back,
) -> anyhow::Result<PassReport>
where
    Back: Fn(Vec<i64>, String) -> BackFut,
    BackFut: Future<Output = anyhow::Result<()>>,
{
    let (id, why) = match done {
        Ok((_, Ok(report))) => return Ok(report),
        Ok((id, Err(e))) => (id, format!("{e:#}")),
        Err(e) => (e.id(), e.to_string()),
    };
    error!(error = %why, "Sending one message went wrong; its alerts wait for the next pass.");
    let ids = claims.remove(&id).unwrap_or_default();
    give_back(ids, why).await?;
    Ok(PassReport {
        errors: 1,
        ..PassReport::default()
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    /// Sends groups of `(alert ids, what the send does)`; returns the report,
    /// what was sent and what was given back.
    async fn pass(
        groups: Vec<(Vec<i64>, &'static str)>,
        concurrency: usize,
    ) -> (PassReport, Vec<i64>, Vec<(Vec<i64>, String)>) {
        let sent = Arc::new(Mutex::new(Vec::new()));
        let given_back = Mutex::new(Vec::new());
        let report = each(
            groups,
            |(ids, _)| ids.clone(),
            Sending {
                concurrency,
                probe: false,
                stop: || false,
                send: |(ids, fate): (Vec<i64>, &'static str)| {
                    let sent = Arc::clone(&sent);
                    async move {
                        // The others are in flight when this one goes wrong.
                        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                        match fate {
                            "panic" => panic!("a fault in a dependency"),
                            "error" => anyhow::bail!("database is locked"),
                            _ => {}
                        }
                        tokio::time::sleep(std::time::Duration::from_millis(30)).await;
                        sent.lock().unwrap().extend(&ids);
                        Ok(PassReport {
                            messages: 1,
                            sent: ids.len() as u64,
                            ..PassReport::default()
                        })
                    }
                },
                give_back: |ids, why| {
                    given_back.lock().unwrap().push((ids, why));
                    async { Ok(()) }
                },
            },
        )
        .await
        .unwrap();
        let mut sent = sent.lock().unwrap().clone();
        sent.sort_unstable();
        (report, sent, given_back.into_inner().unwrap())
    }

    /// Regression: the first group to fail returned from the pass and dropped
    /// the others mid-send, leaving their alerts (delivered ones included)
    /// `sending` until a restart, then sent again.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn issue_17_item_1_a_group_that_panics_never_aborts_the_others() {
        let groups = vec![
            (vec![1, 2], "send"),
            (vec![3], "panic"),
            (vec![4], "send"),
            (vec![5, 6], "error"),
            (vec![7], "send"),
        ];
        let (report, sent, given_back) = pass(groups, 3).await;
        assert_eq!(sent, [1, 2, 4, 7], "the others finished");
        assert_eq!(report.messages, 3);
        assert_eq!(report.sent, 4);
        assert_eq!(report.errors, 2);
        let mut back: Vec<_> = given_back.iter().map(|(ids, _)| ids.clone()).collect();
        back.sort();
        assert_eq!(
            back,
            [vec![3], vec![5, 6]],
            "each gives back its own alerts"
        );
        let why: Vec<&str> = given_back.iter().map(|(_, why)| why.as_str()).collect();
        assert!(why.iter().any(|w| w.contains("panicked")), "{why:?}");
        assert!(
            why.iter().any(|w| w.contains("database is locked")),
            "{why:?}"
        );
    }

    #[tokio::test]
    async fn a_stop_starts_no_new_message() {
        let report = each(
            vec![vec![1], vec![2]],
            Clone::clone,
            Sending {
                concurrency: 1,
                probe: true,
                stop: || true,
                send: |_| async { anyhow::Ok(PassReport::default()) },
                give_back: |_, _| async { Ok(()) },
            },
        )
        .await
        .unwrap();
        assert_eq!(report, PassReport::default());
    }
}
