//! The store's part of the replies by e-mail (issue 21, item 3; migration 0024).
//!
//! Owns `thread_tokens` (the per-dossier token of the plus address replies go
//! to), `inbound_unmatched` (messages of the mailbox that match no dossier, told
//! once in the administrators' digest) and `inbound_state` (the mailbox's
//! health, for `/metrics` and `outbox list`); reads the Message-IDs that alerts
//! and exchanges were sent with, to match a reply to what it answers; marks an
//! alert whose message bounced as failed. Reading the mailbox, parsing and
//! deciding are `crate::inbound`'s.

use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, params};

use super::{ExchangeKind, Result, Side, Store, StoredDossier, format_time, parse_time};

/// A message we sent, found by its Message-ID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Answered {
    /// Its dossier's row id.
    pub dossier: i64,
    /// The side it went to: a reply from an unknown address is that side's.
    pub sent_to: Side,
    /// The alerts it carried (none for a forwarded exchange).
    pub alerts: Vec<i64>,
    /// The exchange it forwarded, when it was a forwarding.
    pub exchange: Option<i64>,
}

/// A message of the mailbox that matched no dossier.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub(crate) struct Unmatched {
    /// Its row.
    pub id: i64,
    /// When it was taken from the mailbox.
    pub received_at: DateTime<Utc>,
    /// Its sender.
    pub sender: String,
    /// Its subject.
    pub subject: String,
    /// A message, an auto-reply or a bounce.
    pub kind: String,
}

/// The mailbox's health.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub(crate) struct InboundState {
    /// The last poll that worked.
    pub last_success: Option<DateTime<Utc>>,
    /// The last poll that failed.
    pub last_failure: Option<DateTime<Utc>>,
    /// Consecutive failed polls (0: the last one worked).
    pub failures: u64,
    /// Why the last poll failed, while it does.
    pub error: Option<String>,
    /// Messages taken from the mailbox, ever.
    pub received: u64,
}

/// Whether `text` has the shape of a thread token: what is not one is not
/// looked up.
pub(crate) fn thread_token_shape(text: &str) -> bool {
    text.len() == TOKEN_CHARS && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// A thread token: 80 random bits in lowercase hexadecimal (a plus address
/// survives mail systems that change the case of local parts).
const TOKEN_CHARS: usize = 20;

impl Store {
    /// The thread token of a dossier, drawn and recorded the first time.
    ///
    /// # Errors
    /// On a database error, or when the system gives no random bytes.
    pub(crate) fn thread_token(&mut self, dossier: i64, now: DateTime<Utc>) -> Result<String> {
        let known: Option<String> = self
            .conn
            .prepare_cached("SELECT token FROM thread_tokens WHERE dossier_id = ?1")?
            .query_row([dossier], |r| r.get(0))
            .optional()?;
        if let Some(token) = known {
            return Ok(token);
        }
        let token = super::new_token()?[..TOKEN_CHARS].to_owned();
        self.conn
            .prepare_cached(
                "INSERT INTO thread_tokens (dossier_id, token, created_at) VALUES (?1, ?2, ?3)",
            )?
            .execute(params![dossier, token, format_time(now)])?;
        Ok(token)
    }

    /// The dossier of a thread token, if it is one's.
    ///
    /// # Errors
    /// On a database error.
    pub(crate) fn dossier_of_token(&self, token: &str) -> Result<Option<i64>> {
        let token = token.to_ascii_lowercase();
        if !thread_token_shape(&token) {
            return Ok(None);
        }
        Ok(self
            .conn
            .prepare_cached("SELECT dossier_id FROM thread_tokens WHERE token = ?1")?
            .query_row([token], |r| r.get(0))
            .optional()?)
    }

    /// The message we sent under one of `ids` (Message-IDs, with their angle
    /// brackets), the last named first: an alert's (a digest about several
    /// dossiers matches none) or an exchange's forwarding.
    ///
    /// # Errors
    /// On a database error.
    pub(crate) fn answered(&self, ids: &[String]) -> Result<Option<Answered>> {
        for id in ids.iter().rev() {
            let mut stmt = self.conn.prepare_cached(
                "SELECT id, dossier_id, role FROM alerts WHERE message_id = ?1 ORDER BY id",
            )?;
            let rows: Vec<(i64, i64, String)> = stmt
                .query_map([id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                .collect::<rusqlite::Result<_>>()?;
            if let Some((_, dossier, role)) = rows.first() {
                if rows.iter().any(|(_, d, _)| d != dossier) {
                    continue;
                }
                return Ok(Some(Answered {
                    dossier: *dossier,
                    sent_to: if role == "beneficiary" {
                        Side::Beneficiary
                    } else {
                        Side::Service
                    },
                    alerts: rows.iter().map(|(a, ..)| *a).collect(),
                    exchange: None,
                }));
            }
            let forwarded: Option<(i64, i64, String)> = self
                .conn
                .prepare_cached(
                    "SELECT id, dossier_id, direction FROM exchanges WHERE message_id = ?1 LIMIT 1",
                )?
                .query_row([id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .optional()?;
            if let Some((exchange, dossier, direction)) = forwarded {
                let from = Side::parse(&direction)?;
                return Ok(Some(Answered {
                    dossier,
                    sent_to: from.other(),
                    alerts: Vec::new(),
                    exchange: Some(exchange),
                }));
            }
        }
        Ok(None)
    }

    /// A dossier by its row id.
    ///
    /// # Errors
    /// On a database error or a corrupt row.
    pub(crate) fn dossier_by_rowid(&self, rowid: i64) -> Result<Option<StoredDossier>> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "{} WHERE d.id = ?1",
            super::dossiers::DOSSIER_SELECT
        ))?;
        let mut rows = stmt.query([rowid])?;
        rows.next()?.map(|r| self.read_dossier(r)).transpose()
    }

    /// Marks the sent alerts `ids` failed: their message bounced (`reason`, the
    /// report's diagnostic). The failure is told in the next administrators'
    /// digest, as any. Returns how many were marked.
    ///
    /// # Errors
    /// On a database error; then none is marked.
    pub(crate) fn alerts_bounced(
        &mut self,
        ids: &[i64],
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<u64> {
        let tx = self.conn.transaction()?;
        let mut n = 0;
        for id in ids {
            let changed = tx
                .prepare_cached(
                    "UPDATE alerts SET status = 'failed', reason = ?2, updated_at = ?3, reported = 0
                     WHERE id = ?1 AND status = 'sent'",
                )?
                .execute(params![id, reason, format_time(now)])?;
            if changed == 1 {
                tx.prepare_cached(
                    "INSERT INTO deliveries (alert_id, attempted_at, transport, outcome, reply, message_id)
                     SELECT id, ?2, 'inbound', 'permanent', ?3, message_id FROM alerts WHERE id = ?1",
                )?
                .execute(params![id, format_time(now), reason])?;
                n += 1;
            }
        }
        tx.commit()?;
        Ok(n)
    }

    /// Marks the forwarding of exchange `id` failed: its message bounced
    /// (`reason`). Returns whether it was marked (a forwarding sent).
    ///
    /// # Errors
    /// On a database error.
    pub(crate) fn exchange_bounced(&mut self, id: i64, reason: &str) -> Result<bool> {
        let n = self
            .conn
            .prepare_cached(
                "UPDATE exchanges SET status = 'failed', reason = ?2, sent_at = NULL
                 WHERE id = ?1 AND status = 'sent'",
            )?
            .execute(params![id, reason])?;
        Ok(n == 1)
    }

    /// Records a message that matched no dossier; `false` when its Message-ID
    /// was recorded already (read again after a crash).
    ///
    /// # Errors
    /// On a database error.
    pub(crate) fn record_unmatched(
        &mut self,
        received_id: &str,
        (sender, subject): (&str, &str),
        kind: ExchangeKind,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let n = self
            .conn
            .prepare_cached(
                "INSERT INTO inbound_unmatched (received_at, received_id, sender, subject, kind)
                 VALUES (?1, ?2, lower(?3), ?4, ?5) ON CONFLICT (received_id) DO NOTHING",
            )?
            .execute(params![
                format_time(now),
                received_id,
                sender,
                subject,
                kind.as_str()
            ])?;
        Ok(n == 1)
    }

    /// The unmatched messages no administrators' digest told yet, oldest first.
    ///
    /// # Errors
    /// On a database error or a corrupt row.
    pub(crate) fn unmatched_untold(&self) -> Result<Vec<Unmatched>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, received_at, sender, subject, kind FROM inbound_unmatched
             WHERE reported = 0 ORDER BY received_at, id",
        )?;
        let mut rows = stmt.query([])?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            out.push(Unmatched {
                id: r.get(0)?,
                received_at: parse_time(r.get_ref(1)?.as_str()?)?,
                sender: r.get(2)?,
                subject: r.get(3)?,
                kind: r.get(4)?,
            });
        }
        Ok(out)
    }

    /// Records that a digest told these unmatched messages, in its transaction.
    pub(super) fn mark_unmatched_told(
        tx: &rusqlite::Transaction<'_>,
        told: &[Unmatched],
    ) -> Result<()> {
        for u in told {
            tx.prepare_cached("UPDATE inbound_unmatched SET reported = 1 WHERE id = ?1")?
                .execute([u.id])?;
        }
        Ok(())
    }

    /// Records a poll of the mailbox: `Ok(n)`, it worked and took `n` messages;
    /// `Err(reason)`, it failed.
    ///
    /// # Errors
    /// On a database error.
    pub(crate) fn record_poll(
        &mut self,
        outcome: std::result::Result<u64, &str>,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let now = format_time(now);
        match outcome {
            Ok(n) => self.conn.prepare_cached(
                "INSERT INTO inbound_state (id, last_success, failures, received) VALUES (1, ?1, 0, ?2)
                 ON CONFLICT (id) DO UPDATE SET last_success = ?1, failures = 0, error = NULL,
                                                received = received + ?2",
            )?
            .execute(params![now, n as i64])?,
            Err(reason) => self.conn.prepare_cached(
                "INSERT INTO inbound_state (id, last_failure, failures, error) VALUES (1, ?1, 1, ?2)
                 ON CONFLICT (id) DO UPDATE SET last_failure = ?1, failures = failures + 1, error = ?2",
            )?
            .execute(params![now, reason])?,
        };
        Ok(())
    }

    /// The mailbox's health (all empty before the first poll).
    ///
    /// # Errors
    /// On a database error or a corrupt row.
    pub(crate) fn inbound_state(&self) -> Result<InboundState> {
        let row = self
            .conn
            .prepare_cached(
                "SELECT last_success, last_failure, failures, error, received
                 FROM inbound_state WHERE id = 1",
            )?
            .query_row([], |r| {
                Ok((
                    r.get::<_, Option<String>>(0)?,
                    r.get::<_, Option<String>>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, Option<String>>(3)?,
                    r.get::<_, i64>(4)?,
                ))
            })
            .optional()?;
        let Some((success, failure, failures, error, received)) = row else {
            return Ok(InboundState::default());
        };
        Ok(InboundState {
            last_success: success.as_deref().map(parse_time).transpose()?,
            last_failure: failure.as_deref().map(parse_time).transpose()?,
            failures: failures.max(0) as u64,
            error,
            received: received.max(0) as u64,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Channel, NewExchange, SmallAttempt};

    fn store_with_alerts() -> (Store, tempfile::TempDir) {
        let (store, dir) = super::super::test_store(
            "(1, 'p', 'D1', 'REF-1', 'Culture', 'depose', 'Déposé',
                         '2026-01-03T00:00:00Z', x'', 1, 1),
                        (2, 'p', 'D2', 'REF-2', 'Culture', 'depose', 'Déposé',
                         '2026-01-03T00:00:00Z', x'', 1, 1)",
            "INSERT INTO events (id, run_id, dossier_id, kind, occurred_at, baseline)
                 VALUES (1, 1, 1, 'created', '2026-01-03T00:00:00Z', 0);
                 INSERT INTO alerts (id, key, event_id, dossier_id, rule, template, class, role,
                                     recipient, digest, status, created_at, due_at, updated_at,
                                     message_id)
                 VALUES (1, 'k1', 1, 1, 'r', 't', 'mandatory', 'beneficiary', 'a@x.fr', 0, 'sent',
                         '2026-01-03T00:00:00Z', '2026-01-03T00:00:00Z', '2026-01-03T00:00:00Z', '<one@x>'),
                        (2, 'k2', 1, 1, 'r', 't', 'mandatory', 'instructor', 'i@x.fr', 1, 'sent',
                         '2026-01-03T00:00:00Z', '2026-01-03T00:00:00Z', '2026-01-03T00:00:00Z', '<digest@x>'),
                        (3, 'k3', 1, 2, 'r', 't', 'mandatory', 'instructor', 'i@x.fr', 1, 'sent',
                         '2026-01-03T00:00:00Z', '2026-01-03T00:00:00Z', '2026-01-03T00:00:00Z', '<digest@x>');",
        );
        (store, dir)
    }

    #[test]
    fn a_dossier_keeps_its_token_and_only_tokens_are_looked_up() {
        let (mut store, _dir) = store_with_alerts();
        let now: DateTime<Utc> = "2026-03-02T09:00:00Z".parse().unwrap();
        let token = store.thread_token(1, now).unwrap();
        assert!(thread_token_shape(&token), "{token}");
        assert_eq!(store.thread_token(1, now).unwrap(), token);
        assert_ne!(store.thread_token(2, now).unwrap(), token);
        assert_eq!(store.dossier_of_token(&token).unwrap(), Some(1));
        assert_eq!(
            store.dossier_of_token(&token.to_uppercase()).unwrap(),
            Some(1)
        );
        assert_eq!(store.dossier_of_token("' OR 1 --").unwrap(), None);
    }

    #[test]
    fn replies_are_matched_by_what_they_answer() {
        let (mut store, _dir) = store_with_alerts();
        let now: DateTime<Utc> = "2026-03-02T09:00:00Z".parse().unwrap();
        let ids = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        let alert = store.answered(&ids(&["<one@x>"])).unwrap().unwrap();
        assert_eq!(alert.dossier, 1);
        assert_eq!(alert.sent_to, Side::Beneficiary);
        assert_eq!(alert.alerts, vec![1]);
        // A digest about two dossiers names none; an unknown id neither.
        assert_eq!(
            store.answered(&ids(&["<digest@x>", "<no@x>"])).unwrap(),
            None
        );
        // The last named first: the newest message of the thread.
        let id = store
            .record_exchange(
                &NewExchange {
                    dossier: 2,
                    side: Side::Beneficiary,
                    channel: Channel::Web,
                    kind: ExchangeKind::Message,
                    author: "a@x.fr".into(),
                    body: "?".into(),
                    original: None,
                    received_id: None,
                    recipient: Some("i@x.fr".into()),
                },
                now,
            )
            .unwrap()
            .unwrap();
        store
            .exchange_attempt(
                id,
                &SmallAttempt {
                    status: "sent",
                    retry_at: None,
                    message_id: Some("<fwd@x>"),
                    reason: None,
                    now,
                },
            )
            .unwrap();
        let forwarded = store
            .answered(&ids(&["<one@x>", "<fwd@x>"]))
            .unwrap()
            .unwrap();
        assert_eq!((forwarded.dossier, forwarded.sent_to), (2, Side::Service));
        assert_eq!(forwarded.exchange, Some(id));
        assert!(store.exchange_bounced(id, "550").unwrap());
        assert!(!store.exchange_bounced(id, "550").unwrap());
        let x = &store.exchanges(2).unwrap()[0];
        assert_eq!(
            (x.status.as_deref(), x.reason.as_deref()),
            (Some("failed"), Some("550"))
        );
        // A bounce fails a sent alert once.
        assert_eq!(
            store.alerts_bounced(&[1], "550 unknown user", now).unwrap(),
            1
        );
        assert_eq!(
            store.alerts_bounced(&[1], "550 unknown user", now).unwrap(),
            0
        );
        assert_eq!(store.alert_status(1).unwrap().as_deref(), Some("failed"));
        assert_eq!(
            store.deliveries(1).unwrap().last().unwrap().outcome,
            "permanent"
        );
    }

    #[test]
    fn unmatched_messages_are_told_once_and_polls_counted() {
        let (mut store, _dir) = store_with_alerts();
        let now: DateTime<Utc> = "2026-03-02T09:00:00Z".parse().unwrap();
        let who = ("X@Y.fr", "Bonjour");
        assert!(
            store
                .record_unmatched("<u@y>", who, ExchangeKind::Message, now)
                .unwrap()
        );
        assert!(
            !store
                .record_unmatched("<u@y>", who, ExchangeKind::Message, now)
                .unwrap()
        );
        let untold = store.unmatched_untold().unwrap();
        assert_eq!(untold.len(), 1);
        assert_eq!(untold[0].sender, "x@y.fr");
        let tx = store.conn.transaction().unwrap();
        Store::mark_unmatched_told(&tx, &untold).unwrap();
        tx.commit().unwrap();
        assert!(store.unmatched_untold().unwrap().is_empty());
        assert_eq!(store.inbound_state().unwrap(), InboundState::default());
        store.record_poll(Err("refused"), now).unwrap();
        store.record_poll(Err("refused"), now).unwrap();
        let state = store.inbound_state().unwrap();
        assert_eq!(
            (state.failures, state.error.as_deref()),
            (2, Some("refused"))
        );
        store.record_poll(Ok(3), now).unwrap();
        let state = store.inbound_state().unwrap();
        assert_eq!((state.failures, state.error, state.received), (0, None, 3));
        assert_eq!(state.last_success, Some(now));
    }
}
