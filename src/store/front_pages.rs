//! What the front office's dossier page reads (issue 20, item 5): one of an
//! address's dossiers with its timeline, and the messages Alertissimo sent
//! about it to that address, kept as they left (table `kept_messages`,
//! migration 0021).
//!
//! Owns `kept_messages`: the dispatcher keeps each message it delivered
//! ([`Store::keep_message`]), the page reads those of one dossier and one
//! address, with its exchanges ([`Store::dossier_page`]), and the purge deletes those of purged
//! dossiers (`front::purge`). Which dossiers an address may see stays
//! [`Store::beneficiary_dossiers`]; the page's address, wording and layout are
//! the `web` module's.

use chrono::{DateTime, Utc};
use rusqlite::params;

use super::{FrontDossier, Result, Store, StoredEvent, format_time, parse_time};

/// A message sent about a dossier to the page's address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct KeptMessage {
    /// Its Message-ID.
    pub message_id: String,
    /// When it left.
    pub sent_at: DateTime<Utc>,
    /// Its subject, when it was kept (messages sent before version 0021 of
    /// the database were not).
    pub subject: Option<String>,
    /// Its plain text, when it was kept.
    pub text: Option<String>,
}

/// One dossier as its page shows it.
#[derive(Debug, Clone)]
pub(crate) struct DossierPage {
    /// The dossier.
    pub dossier: FrontDossier,
    /// Its events, oldest first (steps, fields, the source's messagerie).
    pub events: Vec<StoredEvent>,
    /// The messages sent about it to the address, oldest first.
    pub messages: Vec<KeptMessage>,
    /// Its exchanges with the service (issue 21), oldest first.
    pub exchanges: Vec<super::Exchange>,
}

impl Store {
    /// Keeps a message delivered to `recipient`: what the dossier page shows
    /// again. A message sent again (same Message-ID) replaces its copy.
    ///
    /// # Errors
    /// On a database error.
    pub(crate) fn keep_message(
        &mut self,
        message_id: &str,
        recipient: &str,
        (subject, text): (&str, &str),
        sent_at: DateTime<Utc>,
    ) -> Result<()> {
        self.conn.execute(
            "INSERT OR REPLACE INTO kept_messages (message_id, recipient, subject, text, sent_at)
             VALUES (?1, lower(?2), ?3, ?4, ?5)",
            params![message_id, recipient, subject, text, format_time(sent_at)],
        )?;
        Ok(())
    }

    /// The page of `dossier`, one of `email`'s, with its events and the
    /// messages sent about it to `email`; the page served is recorded in the
    /// dossier's audit (`dossier` or `message`, from `client`).
    ///
    /// # Errors
    /// On a database error or a corrupt row.
    pub(crate) fn dossier_page(
        &mut self,
        email: &str,
        dossier: FrontDossier,
        (action, client): (&str, &str),
        now: DateTime<Utc>,
    ) -> Result<DossierPage> {
        let rowid = dossier.stored.rowid;
        let events = self.events(rowid)?;
        let messages = self.sent_about(rowid, email)?;
        let exchanges = self.exchanges(rowid)?;
        let tx = self.conn.transaction()?;
        super::front::audit(
            &tx,
            email,
            action,
            std::slice::from_ref(&dossier),
            client,
            now,
        )?;
        tx.commit()?;
        Ok(DossierPage {
            dossier,
            events,
            messages,
            exchanges,
        })
    }

    /// The messages sent about dossier `rowid` to `email`, oldest first.
    fn sent_about(&self, rowid: i64, email: &str) -> Result<Vec<KeptMessage>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT a.message_id, min(a.sent_at), k.subject, k.text
             FROM alerts a LEFT JOIN kept_messages k ON k.message_id = a.message_id
             WHERE a.dossier_id = ?1 AND a.status = 'sent' AND a.message_id IS NOT NULL
               AND a.sent_at IS NOT NULL AND lower(a.recipient) = ?2
             GROUP BY a.message_id ORDER BY min(a.sent_at), a.message_id",
        )?;
        let mut rows = stmt.query(params![rowid, email.trim().to_lowercase()])?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            out.push(KeptMessage {
                message_id: r.get(0)?,
                sent_at: parse_time(r.get_ref(1)?.as_str()?)?,
                subject: r.get(2)?,
                text: r.get(3)?,
            });
        }
        Ok(out)
    }
}
