//! What the small outboxes share (the sign-in messages of [`super::sign_in`],
//! the exchanges' forwardings of [`super::exchanges`]): whether the transport is
//! paused, and how a pass counts their messages. Each is drained at the start
//! of a delivery pass, its messages due at once and retried like alerts.

use chrono::{DateTime, Utc};
use tracing::warn;

use super::{Inner, PassReport};

impl PassReport {
    /// Counts one message of the small outboxes (sign-ins, exchanges) by the
    /// status its attempt left it in, logging why one failed for good.
    pub(super) fn tally(&mut self, status: &str, reason: Option<&str>, what: &str) {
        match status {
            "sent" => {
                self.messages += 1;
                self.sent += 1;
            }
            "pending" => self.retried += 1,
            _ => {
                warn!(
                    reason = reason.unwrap_or(""),
                    what, "A message was not delivered."
                );
                self.failed += 1;
            }
        }
    }
}

impl Inner {
    /// Whether the transport is paused at `now` (a relay-level failure): the
    /// small outboxes then wait with the alerts.
    ///
    /// # Errors
    /// When the store fails.
    pub(super) async fn paused(&self, now: DateTime<Utc>) -> anyhow::Result<bool> {
        let name = self.transport.name();
        let state = self.store.call(move |s| s.transport_state(name)).await??;
        Ok(state.paused_until.is_some_and(|p| p > now))
    }
}
