//! The exchanges between a beneficiary and the instructing service (issue 21):
//! what either side wrote about a dossier, through the front office, the staff
//! view or by e-mail, kept on the dossier, and the forwarding of each to the
//! other side (table `exchanges`, migration 0023).
//!
//! Owns `exchanges`. A row is one exchange and the outbox of its forwarding:
//! recorded `pending` with its recipient ([`Store::record_exchange`]), handed to
//! the transport by the dispatcher ([`Store::due_exchanges`]), then `sent` or
//! `failed` ([`Store::exchange_attempt`]). An exchange that forwards nothing
//! (an auto-reply, a bounce) has no recipient and no status. An e-mail received
//! is recorded once: its Message-ID is unique ([`NewExchange::received_id`]).
//! The purge deletes the exchanges of purged dossiers (`front::purge`). Who may
//! write, the wording and the e-mails are the `web` and `dispatch` modules'.

use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, params};

use super::{Result, SmallAttempt, Store, format_time, parse_time};
use crate::delays::answers::{self, AnswerDelays, Said};

/// Who wrote an exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Side {
    /// The beneficiary (or someone writing from their address).
    Beneficiary,
    /// The instructing service: an instructor, a `[web] staff` member.
    Service,
}

impl Side {
    /// The stored name.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Beneficiary => "beneficiary",
            Self::Service => "service",
        }
    }

    /// The other side: whom an exchange is forwarded to.
    pub(crate) fn other(self) -> Self {
        match self {
            Self::Beneficiary => Self::Service,
            Self::Service => Self::Beneficiary,
        }
    }

    pub(super) fn parse(s: &str) -> Result<Self> {
        match s {
            "beneficiary" => Ok(Self::Beneficiary),
            "service" => Ok(Self::Service),
            other => Err(super::StoreError::Corrupt(format!(
                "exchange direction {other:?}"
            ))),
        }
    }
}

/// How an exchange came in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Channel {
    /// Written on a page: the front office or the staff view.
    Web,
    /// Received by e-mail (a reply to a message Alertissimo sent).
    Email,
}

impl Channel {
    /// The stored name.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Web => "web",
            Self::Email => "email",
        }
    }

    fn parse(s: &str) -> Result<Self> {
        match s {
            "web" => Ok(Self::Web),
            "email" => Ok(Self::Email),
            other => Err(super::StoreError::Corrupt(format!(
                "exchange channel {other:?}"
            ))),
        }
    }
}

/// What an exchange is: a message written by someone, or what a mail system
/// answered on its own (never forwarded, never answered).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum ExchangeKind {
    /// Written by a person.
    Message,
    /// An automatic answer (out of office, `Auto-Submitted`, `Precedence`).
    AutoReply,
    /// A delivery status notification: a message did not arrive.
    Bounce,
}

impl ExchangeKind {
    /// The stored name.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Message => "message",
            Self::AutoReply => "auto_reply",
            Self::Bounce => "bounce",
        }
    }

    fn parse(s: &str) -> Result<Self> {
        match s {
            "message" => Ok(Self::Message),
            "auto_reply" => Ok(Self::AutoReply),
            "bounce" => Ok(Self::Bounce),
            other => Err(super::StoreError::Corrupt(format!(
                "exchange kind {other:?}"
            ))),
        }
    }
}

/// An exchange to record.
#[derive(Debug, Clone)]
pub(crate) struct NewExchange {
    /// The dossier's row id.
    pub dossier: i64,
    /// Who wrote it.
    pub side: Side,
    /// How it came in.
    pub channel: Channel,
    /// A message, an auto-reply or a bounce.
    pub kind: ExchangeKind,
    /// The writer's e-mail address.
    pub author: String,
    /// The new text.
    pub body: String,
    /// An e-mail as received, kept whole.
    pub original: Option<String>,
    /// An e-mail's Message-ID: the same one is recorded once.
    pub received_id: Option<String>,
    /// Whom to forward it to (none for what is not forwarded).
    pub recipient: Option<String>,
}

/// An exchange as stored.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub(crate) struct Exchange {
    /// Its row.
    pub id: i64,
    /// The dossier's row id.
    pub dossier: i64,
    /// When it was written or received.
    pub at: DateTime<Utc>,
    /// Who wrote it.
    pub side: Side,
    /// How it came in.
    pub channel: Channel,
    /// A message, an auto-reply or a bounce.
    pub kind: ExchangeKind,
    /// The writer's address.
    pub author: String,
    /// The new text.
    pub body: String,
    /// Whom it is forwarded to.
    pub recipient: Option<String>,
    /// `pending`, `sent` or `failed`; none when nothing is forwarded.
    pub status: Option<String>,
    /// When its forwarding left.
    pub sent_at: Option<DateTime<Utc>>,
    /// Why its forwarding did not (yet) leave.
    pub reason: Option<String>,
}

/// An exchange whose forwarding is due.
#[derive(Debug, Clone)]
pub(crate) struct DueExchange {
    /// The exchange.
    pub exchange: Exchange,
    /// Attempts so far.
    pub attempts: u32,
}

const COLUMNS: &str = "id, dossier_id, at, direction, channel, kind, author, body, recipient,
                       status, sent_at, reason, attempts";

fn exchange_row(r: &rusqlite::Row<'_>) -> Result<DueExchange> {
    let time = |i: usize| -> Result<Option<DateTime<Utc>>> {
        r.get_ref(i)?.as_str_or_null()?.map(parse_time).transpose()
    };
    Ok(DueExchange {
        exchange: Exchange {
            id: r.get(0)?,
            dossier: r.get(1)?,
            at: parse_time(r.get_ref(2)?.as_str()?)?,
            side: Side::parse(r.get_ref(3)?.as_str()?)?,
            channel: Channel::parse(r.get_ref(4)?.as_str()?)?,
            kind: ExchangeKind::parse(r.get_ref(5)?.as_str()?)?,
            author: r.get(6)?,
            body: r.get(7)?,
            recipient: r.get(8)?,
            status: r.get(9)?,
            sent_at: time(10)?,
            reason: r.get(11)?,
        },
        attempts: r.get(12)?,
    })
}

impl Store {
    /// Records an exchange at `now`, its forwarding due at once when it has a
    /// recipient. Returns its row, or `None` when an e-mail of the same
    /// Message-ID was recorded already.
    ///
    /// # Errors
    /// On a database error.
    pub(crate) fn record_exchange(
        &mut self,
        new: &NewExchange,
        now: DateTime<Utc>,
    ) -> Result<Option<i64>> {
        let at = format_time(now);
        let status = new.recipient.as_ref().map(|_| "pending");
        let id = self
            .conn
            .query_row(
                "INSERT INTO exchanges (dossier_id, at, direction, channel, kind, author, body,
                                        original, received_id, recipient, status, due_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, lower(?6), ?7, ?8, ?9, lower(?10), ?11,
                         CASE WHEN ?11 IS NOT NULL THEN ?2 END)
                 ON CONFLICT (received_id) DO NOTHING
                 RETURNING id",
                params![
                    new.dossier,
                    at,
                    new.side.as_str(),
                    new.channel.as_str(),
                    new.kind.as_str(),
                    new.author,
                    new.body,
                    new.original,
                    new.received_id,
                    new.recipient,
                    status,
                ],
                |r| r.get(0),
            )
            .optional()?;
        Ok(id)
    }

    /// The exchanges of a dossier, oldest first.
    ///
    /// # Errors
    /// On a database error or a corrupt row.
    pub(crate) fn exchanges(&self, dossier: i64) -> Result<Vec<Exchange>> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {COLUMNS} FROM exchanges WHERE dossier_id = ?1 ORDER BY at, id"
        ))?;
        let mut rows = stmt.query([dossier])?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            out.push(exchange_row(r)?.exchange);
        }
        Ok(out)
    }

    /// How many messages `author` wrote through the front office since
    /// `since`, on the dossiers `dossiers` (row ids: the session's): what its
    /// rate limit counts.
    ///
    /// # Errors
    /// On a database error.
    pub(crate) fn beneficiary_written_since(
        &self,
        author: &str,
        dossiers: &[i64],
        since: DateTime<Utc>,
    ) -> Result<u32> {
        let rows = serde_json::to_string(dossiers).expect("integers serialise");
        Ok(self
            .conn
            .prepare_cached(
                "SELECT count(*) FROM exchanges
             WHERE dossier_id IN (SELECT value FROM json_each(?1)) AND author = lower(?2)
               AND direction = 'beneficiary' AND channel = 'web' AND at > ?3",
            )?
            .query_row(params![rows, author.trim(), format_time(since)], |r| {
                r.get(0)
            })?)
    }

    /// How long the service takes to answer a beneficiary's message, from every
    /// message kept (auto-replies and bounces left out), at `now`, in
    /// `business` days (`delays::answers`).
    ///
    /// # Errors
    /// On a database error or a corrupt row.
    pub(crate) fn answer_delays(
        &self,
        now: DateTime<Utc>,
        business: &crate::calendar::Business,
    ) -> Result<AnswerDelays> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT dossier_id, at, direction FROM exchanges WHERE kind = 'message'",
        )?;
        let mut rows = stmt.query([])?;
        let mut said = Vec::new();
        while let Some(r) = rows.next()? {
            said.push(Said {
                dossier: r.get(0)?,
                at: parse_time(r.get_ref(1)?.as_str()?)?,
                by_beneficiary: Side::parse(r.get_ref(2)?.as_str()?)? == Side::Beneficiary,
            });
        }
        Ok(answers::answer_delays(&said, now, business))
    }

    /// The exchanges whose forwarding is due at `now`, oldest first.
    ///
    /// # Errors
    /// On a database error or a corrupt row.
    pub(crate) fn due_exchanges(&self, now: DateTime<Utc>) -> Result<Vec<DueExchange>> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {COLUMNS} FROM exchanges WHERE status = 'pending' AND due_at <= ?1
             ORDER BY due_at, id LIMIT 100"
        ))?;
        let mut rows = stmt.query([format_time(now)])?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            out.push(exchange_row(r)?);
        }
        Ok(out)
    }

    /// When the next pending forwarding falls due.
    ///
    /// # Errors
    /// On a database error or a corrupt row.
    pub(crate) fn next_exchange(&self) -> Result<Option<DateTime<Utc>>> {
        super::front::next_due(&self.conn, "exchanges")
    }

    /// Records an attempt at forwarding an exchange: `sent` (with its
    /// Message-ID), `pending` again at `retry_at`, or `failed` with `reason`.
    ///
    /// # Errors
    /// On a database error.
    pub(crate) fn exchange_attempt(&mut self, id: i64, attempt: &SmallAttempt<'_>) -> Result<()> {
        super::front::record_attempt(&self.conn, "exchanges", "", id, attempt)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A store with one dossier (row 1).
    fn store_with_dossier() -> (Store, i64, tempfile::TempDir) {
        let (store, dir) = super::super::test_store(
            "(1, 'p', 'D1', 'REF-1', 'Culture', 'depose', 'Déposé',
                         '2026-01-03T00:00:00Z', x'', 1, 1)",
            "",
        );
        (store, 1, dir)
    }

    fn written(dossier: i64, received_id: Option<&str>) -> NewExchange {
        NewExchange {
            dossier,
            side: Side::Beneficiary,
            channel: Channel::Web,
            kind: ExchangeKind::Message,
            author: "Claire@Asso.FR".into(),
            body: "Bonjour, où en est mon dossier ?".into(),
            original: None,
            received_id: received_id.map(str::to_owned),
            recipient: Some("Instructeur@Region.FR".into()),
        }
    }

    #[test]
    fn an_exchange_is_recorded_due_at_once_and_forwarded_once() {
        let (mut store, dossier, _dir) = store_with_dossier();
        let now: DateTime<Utc> = "2026-03-02T09:00:00Z".parse().unwrap();
        let id = store
            .record_exchange(&written(dossier, None), now)
            .unwrap()
            .unwrap();
        let listed = store.exchanges(dossier).unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].author, "claire@asso.fr");
        assert_eq!(
            listed[0].recipient.as_deref(),
            Some("instructeur@region.fr")
        );
        assert_eq!(listed[0].status.as_deref(), Some("pending"));
        assert_eq!(store.next_exchange().unwrap(), Some(now));
        let due = store.due_exchanges(now).unwrap();
        assert_eq!(due.len(), 1);
        store
            .exchange_attempt(
                id,
                &SmallAttempt {
                    status: "sent",
                    retry_at: None,
                    message_id: Some("<m@x>"),
                    reason: None,
                    now,
                },
            )
            .unwrap();
        assert!(store.due_exchanges(now).unwrap().is_empty());
        assert_eq!(store.exchanges(dossier).unwrap()[0].sent_at, Some(now));
    }

    #[test]
    fn an_email_received_twice_is_recorded_once() {
        let (mut store, dossier, _dir) = store_with_dossier();
        let now: DateTime<Utc> = "2026-03-02T09:00:00Z".parse().unwrap();
        let mail = written(dossier, Some("<reply-1@asso.fr>"));
        assert!(store.record_exchange(&mail, now).unwrap().is_some());
        assert!(store.record_exchange(&mail, now).unwrap().is_none());
        assert_eq!(store.exchanges(dossier).unwrap().len(), 1);
    }

    #[test]
    fn the_rate_limit_counts_an_address_s_web_messages_on_its_dossiers() {
        let (mut store, dossier, _dir) = store_with_dossier();
        let now: DateTime<Utc> = "2026-03-02T09:00:00Z".parse().unwrap();
        let hour_ago = now - chrono::TimeDelta::hours(1);
        for minutes in [-90, -30, -1] {
            let at = now + chrono::TimeDelta::minutes(minutes);
            store.record_exchange(&written(dossier, None), at).unwrap();
        }
        let mut reply = written(dossier, None);
        reply.side = Side::Service;
        store.record_exchange(&reply, now).unwrap();
        let count = |author: &str, rows: &[i64]| {
            store
                .beneficiary_written_since(author, rows, hour_ago)
                .unwrap()
        };
        assert_eq!(count("CLAIRE@asso.fr", &[dossier]), 2);
        assert_eq!(
            count("claire@asso.fr", &[]),
            0,
            "not the session's dossiers"
        );
        assert_eq!(count("autre@asso.fr", &[dossier]), 0);
    }

    #[test]
    fn answer_delays_read_messages_only() {
        let (mut store, dossier, _dir) = store_with_dossier();
        let business =
            crate::calendar::Business::new(crate::calendar::Zone::new(chrono_tz::Europe::Paris));
        let monday: DateTime<Utc> = "2026-03-02T09:00:00Z".parse().unwrap();
        store
            .record_exchange(&written(dossier, None), monday)
            .unwrap();
        let mut auto = written(dossier, None);
        auto.side = Side::Service;
        auto.kind = ExchangeKind::AutoReply;
        store.record_exchange(&auto, monday).unwrap();
        let now = monday + chrono::TimeDelta::days(7);
        let found = store.answer_delays(now, &business).unwrap();
        assert_eq!(
            (found.answered, found.waiting),
            (0, 1),
            "an auto-reply answers nothing"
        );
        let mut reply = written(dossier, None);
        reply.side = Side::Service;
        store
            .record_exchange(&reply, monday + chrono::TimeDelta::days(2))
            .unwrap();
        let found = store.answer_delays(now, &business).unwrap();
        assert_eq!((found.answered, found.waiting), (1, 0));
        assert_eq!(found.median_days, None, "fewer than ten answers");
    }
}
