//! The front office's sign-in messages (issue 20): an outbox of their own
//! (`store::front`), drained at the start of every delivery pass.
//!
//! A sign-in message is due at once: no debounce, digest, sending window or
//! daily limit holds it, since someone is waiting for it in front of a page.
//! It is retried like an alert (the same backoff) while the transport refuses
//! it for now, and fails once its link has expired: a late link is useless. It
//! carries no unsubscribe footer (it answers a request). While the transport is
//! paused (a relay-level failure), sign-in messages wait with the alerts.

use super::small::{Attempt, Small};
use super::{Inner, PassReport, message};
use crate::store::{SignInMail, SmallAttempt};
use chrono::Utc;

/// The address a sign-in link leads to, under `public_url`.
pub fn sign_in_url(public_url: &str, token: &str) -> String {
    format!("{public_url}{SIGN_IN_PATH}/{token}")
}

/// Where sign-in links lead, below the public address.
pub const SIGN_IN_PATH: &str = "/connexion";

impl Inner {
    /// Sends the sign-in messages due now, one after the other.
    ///
    /// # Errors
    /// When the store fails.
    pub(super) async fn send_sign_ins(&self) -> anyhow::Result<PassReport> {
        let mut report = PassReport::default();
        let Some(public_url) = self.public_url.clone() else {
            return Ok(report);
        };
        let now = Utc::now();
        if self.paused(now).await? {
            return Ok(report);
        }
        let due = self.store.call(move |s| s.due_sign_ins(now)).await??;
        for mail in due {
            if self.stop.is_cancelled() {
                break;
            }
            let (status, retry, id, reason) = self.send_sign_in(&public_url, &mail).await;
            report.tally(status, reason.as_deref(), "a sign-in message");
            let now = Utc::now();
            self.store
                .call(move |s| {
                    let attempt = SmallAttempt {
                        status,
                        retry_at: retry,
                        message_id: id.as_deref(),
                        reason: reason.as_deref(),
                        now,
                    };
                    s.sign_in_attempt(mail.id, &attempt)
                })
                .await??;
        }
        Ok(report)
    }

    /// Makes and hands over one sign-in message: its new status, when to try
    /// again, its Message-ID when sent, and why it did not leave.
    async fn send_sign_in(&self, public_url: &str, mail: &SignInMail) -> Attempt {
        let now = Utc::now();
        if mail.expires_at <= now {
            let why = "le lien de connexion a expiré avant que le message parte";
            return ("failed", None, None, Some(why.to_owned()));
        }
        let lifetime = (mail.expires_at - mail.created_at)
            .to_std()
            .unwrap_or_default();
        let ctx = self.rules.sign_in_context(
            &sign_in_url(public_url, &mail.token),
            lifetime,
            &mail.recipient,
        );
        let small = Small {
            template: (crate::rules::template::SIGN_IN, ctx),
            to: &mail.recipient,
            reply_to: self.reply_to.as_ref(),
            message_id: message::message_id(&[&format!("sign-in:{}", mail.id)], &self.from),
            row: (mail.id, mail.attempts),
            // A late link is useless.
            deadline: mail.expires_at,
        };
        self.send_small(small, now).await.0
    }
}
