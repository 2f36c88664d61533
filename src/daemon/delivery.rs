//! The daemon's dispatcher task: delivers alerts as they fall due, right after
//! each import, and when a command asks for a pass over the control socket.

use super::*;

/// The longest the dispatcher sleeps without looking at the outbox.
pub(super) const MAX_IDLE: std::time::Duration = std::time::Duration::from_secs(60);

/// Delivers alerts as they fall due, and right after each import.
///
/// Each round first takes back the alerts claimed by a process that is gone (a
/// crash, a killed `outbox flush`): never this process's own, so a reload takes
/// nothing from the sends of the generation before it, nor from a live `outbox
/// flush` beside the daemon.
pub(super) async fn deliver(
    dispatcher: Dispatcher,
    wake: Arc<Notify>,
    mut flushes: tokio::sync::mpsc::Receiver<control::Flush>,
    cancel: CancellationToken,
) {
    // A flush asked over the control socket: its pass, answered when done.
    let mut asked: Option<control::Flush> = None;
    loop {
        if let Err(error) = dispatcher.recover().await {
            error!(error = %format!("{error:#}"), "Cannot recover the alerts left being sent.");
        }
        // A pass is not interrupted: the messages in flight are recorded first.
        let force = asked.as_ref().is_some_and(|(force, _)| *force);
        let drained = dispatcher.drain(force).await;
        if let Some((_, reply)) = asked.take() {
            let _ = reply.send(drained.as_ref().map(|r| *r).map_err(|e| format!("{e:#}")));
        }
        if let Err(error) = drained {
            error!(error = %format!("{error:#}"), "Delivery failed; will try again.");
        }
        if let Err(error) = dispatcher.admin_digest().await {
            error!(error = %format!("{error:#}"), "The administrators' digest failed; will try again.");
        }
        let wait = match dispatcher.next_due().await {
            Ok(Some(next)) => (next - Utc::now())
                .to_std()
                .unwrap_or_default()
                .clamp(std::time::Duration::from_secs(1), MAX_IDLE),
            _ => MAX_IDLE,
        };
        tokio::select! {
            () = cancel.cancelled() => break,
            () = wake.notified() => {}
            () = tokio::time::sleep(wait) => {}
            Some(flush) = flushes.recv() => asked = Some(flush),
        }
    }
    // Claims whose outcome could not be recorded go back, as possible duplicates.
    if let Err(error) = dispatcher.release().await {
        error!(error = %format!("{error:#}"), "Cannot give back the alerts being sent.");
    }
}
