//! What the small outboxes share (the sign-in messages of [`super::sign_in`],
//! the exchanges' forwardings of [`super::exchanges`]): whether the transport is
//! paused, how one of their messages is made and handed over, and how a pass
//! counts them. Each is drained at the start of a delivery pass, its messages
//! due at once and retried like alerts until their deadline.

use chrono::{DateTime, Utc};
use lettre::message::Mailbox;
use minijinja::Value;
use tracing::warn;

use super::{Inner, PassReport, message, retry_at};
use crate::transport::Outcome;

/// One attempt's outcome: its status (`sent`, `pending`, `failed`), when to
/// try again, its Message-ID when sent, why it did not leave.
pub(super) type Attempt = (
    &'static str,
    Option<DateTime<Utc>>,
    Option<String>,
    Option<String>,
);

/// One message of a small outbox, ready to make.
pub(super) struct Small<'a> {
    /// The template's file name (`_connexion.jinja`) and its variables.
    pub template: (&'a str, Value),
    /// Whom to.
    pub to: &'a str,
    /// Its Reply-To, if any.
    pub reply_to: Option<&'a Mailbox>,
    /// Its Message-ID.
    pub message_id: String,
    /// Its row, and the attempts made so far: the backoff's inputs.
    pub row: (i64, u32),
    /// Past this, a message not yet delivered fails rather than waits.
    pub deadline: DateTime<Utc>,
}

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

impl Inner {
    /// Renders, builds (no unsubscribe footer: someone waits for it) and hands
    /// over one message of a small outbox at `now`: the attempt, and the
    /// message's subject and text when it left.
    pub(super) async fn send_small(
        &self,
        m: Small<'_>,
        now: DateTime<Utc>,
    ) -> (Attempt, Option<(String, String)>) {
        let mut content = None;
        let email = self
            .rules
            .templates
            .render_many(&[(m.template.0.trim_end_matches(".jinja"), m.template.1)])
            .map_err(|reason| format!("le message ne peut pas être composé : {reason}"))
            .and_then(|made| {
                content = Some((made.subject.clone(), made.text.clone()));
                message::build(
                    &made,
                    &self.from,
                    m.reply_to,
                    m.to,
                    &m.message_id,
                    now,
                    &message::Footer::Nothing,
                )
            });
        let outcome = match email {
            Ok(email) => self.transmit(email, &m.message_id).await,
            Err(reason) => Outcome::Permanent(reason),
        };
        match outcome {
            Outcome::Sent(_) => (("sent", None, Some(m.message_id), None), content),
            Outcome::Permanent(reason) => (("failed", None, None, Some(reason)), None),
            Outcome::Transient(reason) | Outcome::Relay(reason) => {
                let (id, attempts) = m.row;
                let at = retry_at(now, attempts + 1, id, &self.config);
                if at >= m.deadline {
                    (("failed", None, None, Some(reason)), None)
                } else {
                    (("pending", Some(at), None, Some(reason)), None)
                }
            }
        }
    }
}
