//! The forwarding of exchanges (issue 21): a beneficiary's message to the
//! instructing service, the service's reply to the beneficiary, each an e-mail
//! from the exchanges' own outbox (`store::exchanges`), drained in every
//! delivery pass right after the sign-in messages.
//!
//! A forwarding is due at once (someone waits for it: no debounce, digest,
//! sending window or daily limit holds it), carries no unsubscribe footer, and
//! is retried like an alert (the same backoff) while the transport refuses it
//! for now, until `[delivery] max_age` after it was written: then it fails,
//! and the pages say so. While the transport is paused (a relay-level
//! failure), forwardings wait with the alerts. One to a beneficiary is kept
//! like their alerts, for the front office.
//!
//! The links: the beneficiary's dossier page, `PUBLIC_URL/dossiers/KEY`, and
//! the staff view's, `PUBLIC_URL/instruction/dossiers/KEY`, where `KEY` is
//! [`dossier_key`] of the dossier's row under the front office's secret.

use chrono::Utc;
use ring::hmac;
use tracing::warn;

use super::small::{Attempt, Small};
use super::{Inner, PassReport, message};
use crate::rules::Forward;
use crate::rules::template::{EXCHANGE_BENEFICIARY, EXCHANGE_SERVICE};
use crate::store::{DueExchange, Side, SmallAttempt, StoredDossier};

/// How many hex digits of an HMAC make a dossier's address: 128 bits.
const KEY_DIGITS: usize = 32;

/// The key of dossier `rowid` in the front office's addresses, under `secret`
/// (the database's, `store::front`): nobody can guess another dossier's.
pub fn dossier_key(secret: &[u8], rowid: i64) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
    let mut hex: String = hmac::sign(&key, format!("dossier:{rowid}").as_bytes())
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    hex.truncate(KEY_DIGITS);
    hex
}

/// A beneficiary's page of a dossier, under `public_url`.
pub fn beneficiary_url(public_url: &str, key: &str) -> String {
    format!("{public_url}/dossiers/{key}")
}

/// The staff view of a dossier, under `public_url`.
pub fn staff_url(public_url: &str, key: &str) -> String {
    format!("{public_url}{STAFF_DOSSIERS_PATH}/{key}")
}

/// Where the staff view's dossier pages are, below the public address.
pub const STAFF_DOSSIERS_PATH: &str = "/instruction/dossiers";

impl Inner {
    /// Forwards the exchanges due now, one after the other.
    ///
    /// # Errors
    /// When the store fails.
    pub(super) async fn send_exchanges(&self) -> anyhow::Result<PassReport> {
        let mut report = PassReport::default();
        let now = Utc::now();
        if self.paused(now).await? {
            return Ok(report);
        }
        let due = self.store.call(move |s| s.due_exchanges(now)).await??;
        if due.is_empty() {
            return Ok(report);
        }
        // The front office's secret, for the links: only when there is
        // something to send (reading it draws it the first time).
        let secret = self.store.call(move |s| s.web_secret(now)).await??;
        for due in due {
            if self.stop.is_cancelled() {
                break;
            }
            let rowid = due.exchange.dossier;
            let dossier = self.store.call(move |s| s.dossier_row(rowid)).await??;
            let (status, retry, id, reason) = match &dossier {
                Some(dossier) => self.forward(&due, dossier, &secret).await,
                None => (
                    "failed",
                    None,
                    None,
                    Some("le dossier n'existe plus (purgé)".to_owned()),
                ),
            };
            report.tally(status, reason.as_deref(), "the forwarding of an exchange");
            let (exchange, now) = (due.exchange.id, Utc::now());
            self.store
                .call(move |s| {
                    let attempt = SmallAttempt {
                        status,
                        retry_at: retry,
                        message_id: id.as_deref(),
                        reason: reason.as_deref(),
                        now,
                    };
                    s.exchange_attempt(exchange, &attempt)
                })
                .await??;
        }
        Ok(report)
    }

    /// Makes and hands over the forwarding of one exchange about `dossier`.
    async fn forward(&self, due: &DueExchange, dossier: &StoredDossier, secret: &[u8]) -> Attempt {
        let x = &due.exchange;
        let Some(recipient) = x.recipient.clone() else {
            return ("failed", None, None, Some("aucun destinataire".to_owned()));
        };
        let now = Utc::now();
        let to_service = x.side.other() == Side::Service;
        let key = dossier_key(secret, dossier.rowid);
        let link = self.public_url.as_deref().map(|url| {
            if to_service {
                staff_url(url, &key)
            } else {
                beneficiary_url(url, &key)
            }
        });
        let forward = Forward {
            dossier: &dossier.dossier,
            since: dossier.step_entered_at,
            text: &x.body,
            author: &x.author,
            at: x.at,
            link: link.as_deref(),
            recipient: &recipient,
        };
        let ctx = self.rules.exchange_context(&forward, to_service);
        let file = if to_service {
            EXCHANGE_SERVICE
        } else {
            EXCHANGE_BENEFICIARY
        };
        let message_id = message::message_id(&[&format!("exchange:{}", x.id)], &self.from);
        // With [inbound] on, an answer by e-mail comes back to the dossier.
        let reply_to = match self.thread_reply_to(&[dossier.rowid]).await {
            Ok(thread) => thread.or_else(|| self.reply_to.clone()),
            Err(error) => {
                warn!(error = %format!("{error:#}"), "No reply address of the dossier's thread: the forwarding says smtp.reply_to.");
                self.reply_to.clone()
            }
        };
        let small = Small {
            template: (file, ctx),
            to: &recipient,
            reply_to: reply_to.as_ref(),
            message_id: message_id.clone(),
            row: (x.id, due.attempts),
            deadline: x.at
                + chrono::Duration::from_std(self.config.max_age).unwrap_or(chrono::TimeDelta::MAX),
        };
        let (attempt, content) = self.send_small(small, now).await;
        // A copy of what the beneficiary received, for their page.
        if let (false, Some(content)) = (to_service, content) {
            self.keep(&message_id, &recipient, content).await;
        }
        attempt
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dossier_key_is_an_hmac_of_its_row() {
        let key = dossier_key(b"secret", 42);
        assert_eq!(key.len(), KEY_DIGITS);
        assert!(key.chars().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(key, dossier_key(b"secret", 42));
        assert_ne!(key, dossier_key(b"secret", 43));
        assert_ne!(key, dossier_key(b"other", 42));
        assert_eq!(
            staff_url("https://aides.region.test", "ab"),
            "https://aides.region.test/instruction/dossiers/ab"
        );
    }
}
