//! The front office's state (issue 20): single-use sign-in links, sessions, the
//! sign-in messages waiting to leave, the per-client counts of sign-ins asked,
//! the audit of what was shown to whom, and the secret that signs CSRF tokens.
//!
//! Owns the tables of migration 0020. Tokens and cookie values are drawn from
//! the operating system's CSPRNG by the unsubscribe links' own helper
//! ([`super::recipients`], 192 bits) and only their SHA-256 is kept ([`digest`]);
//! e-mail addresses are kept in lowercase and compared so. Which dossiers an
//! address may see is [`Store::beneficiary_dossiers`], found through the index
//! of [`super::beneficiaries`]: a purged dossier never counts. The pages, the limits' values and the cookies are the `web` module's.

use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, params};

use super::{Result, Store, StoreError, beneficiaries, format_time, parse_time, recipients};

/// The SHA-256 of `text`, in lowercase hex: what is kept of a token or a cookie.
pub(crate) fn digest(text: &str) -> String {
    ring::digest::digest(&ring::digest::SHA256, text.as_bytes())
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// What a sign-in asked led to (the page answers the same for the first two).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Asked {
    /// A link was queued for the address.
    Queued,
    /// Nothing left: an address of no dossier, or one that had its links this hour.
    Nothing,
    /// The client asked too often: refused.
    ClientLimited,
}

/// The limits of sign-ins asked within an hour.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SignInLimits {
    /// Links sent to one address.
    pub per_address: u32,
    /// Sign-ins asked from one client address.
    pub per_client: u32,
}

/// What following a sign-in link led to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Redeemed {
    /// A session opened: the cookie's value (never stored), and the address.
    Opened {
        /// The cookie's value.
        cookie: String,
        /// The session's address, in lowercase.
        email: String,
    },
    /// The link was used already.
    Used,
    /// The link is too old.
    Expired,
    /// No such link.
    Unknown,
}

/// One of an address's dossiers, as the front office lists it.
#[derive(Debug, Clone)]
pub(crate) struct FrontDossier {
    /// The dossier and its bookkeeping.
    pub stored: super::StoredDossier,
    /// Its last change (its latest event), or when it entered its step.
    pub changed_at: DateTime<Utc>,
}

/// One record of the front office's audit of a dossier.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub(crate) struct AuditRecord {
    /// When.
    pub at: DateTime<Utc>,
    /// Who: the session's address.
    pub email: String,
    /// `sign-in` or `list`.
    pub action: String,
    /// The client's IP address.
    pub client: Option<String>,
}

/// A sign-in message due.
#[derive(Debug, Clone)]
pub(crate) struct SignInMail {
    /// Its row.
    pub id: i64,
    /// Whom to.
    pub recipient: String,
    /// The link's token.
    pub token: String,
    /// When the link was made.
    pub created_at: DateTime<Utc>,
    /// When the link expires: the message is useless after.
    pub expires_at: DateTime<Utc>,
    /// Attempts so far.
    pub attempts: u32,
}

/// How often a session's last page is noted, at most.
const SEEN_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

/// How long the per-client counts are kept.
const REQUESTS_KEPT: chrono::TimeDelta = chrono::TimeDelta::days(1);

impl Store {
    /// The secret that signs CSRF tokens, drawn the first time.
    ///
    /// # Errors
    /// On a database error, or when the system gives no random bytes.
    pub(crate) fn web_secret(&mut self, now: DateTime<Utc>) -> Result<Vec<u8>> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(|e| StoreError::Random(e.to_string()))?;
        self.conn.execute(
            "INSERT INTO web_secret (id, secret, created_at) VALUES (1, ?1, ?2)
             ON CONFLICT (id) DO NOTHING",
            params![bytes.to_vec(), format_time(now)],
        )?;
        Ok(self
            .conn
            .query_row("SELECT secret FROM web_secret WHERE id = 1", [], |r| {
                r.get(0)
            })?)
    }

    /// The dossiers whose beneficiary e-mail is `email` (any case; one of its
    /// addresses when it holds several), purged ones never, last changed first.
    ///
    /// # Errors
    /// On a database error or a corrupt row.
    pub(crate) fn beneficiary_dossiers(&self, email: &str) -> Result<Vec<FrontDossier>> {
        let email = beneficiaries::normalize(email);
        let mut stmt = self.conn.prepare_cached(
            "SELECT d.id, d.connector, d.source_id, d.step, d.status, d.fields,
                    d.present, d.step_entered_at, d.scheme,
                    coalesce((SELECT max(e.occurred_at) FROM events e WHERE e.dossier_id = d.id),
                             d.step_entered_at)
             FROM beneficiary_emails b JOIN dossiers d ON d.id = b.dossier_id
             WHERE b.email = ?1 AND d.purged_at IS NULL",
        )?;
        let mut rows = stmt.query([&email])?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            let stored = self.read_dossier(row)?;
            let changed_at = parse_time(row.get_ref(9)?.as_str()?)?;
            out.push(FrontDossier { stored, changed_at });
        }
        out.sort_by_key(|d| std::cmp::Reverse(d.changed_at));
        Ok(out)
    }

    /// Whether `email` (any case) is the beneficiary address of a dossier that
    /// is not purged.
    ///
    /// # Errors
    /// On a database error.
    pub(crate) fn is_beneficiary(&self, email: &str) -> Result<bool> {
        beneficiaries::listed(&self.conn, &beneficiaries::BENEFICIARIES, email)
    }

    /// Records a sign-in asked for `email` from `client` and, when the address
    /// is a beneficiary's, an instructor's or `listed` (`[web] staff`) within
    /// `limits`, queues a link valid `lifetime`, due at once; all in one
    /// transaction.
    ///
    /// # Errors
    /// On a database error, or when the system gives no random bytes.
    pub(crate) fn ask_sign_in(
        &mut self,
        email: &str,
        client: &str,
        (limits, listed): (SignInLimits, bool),
        lifetime: std::time::Duration,
        now: DateTime<Utc>,
    ) -> Result<Asked> {
        let email = email.trim().to_lowercase();
        let hour_ago = format_time(now - chrono::TimeDelta::hours(1));
        let known = listed || self.is_beneficiary(&email)? || self.is_instructor(&email)?;
        let tx = self.conn.transaction()?;
        tx.execute(
            "DELETE FROM sign_in_requests WHERE at < ?1",
            [format_time(now - REQUESTS_KEPT)],
        )?;
        let asked: u32 = tx.query_row(
            "SELECT count(*) FROM sign_in_requests WHERE client = ?1 AND at >= ?2",
            params![client, hour_ago],
            |r| r.get(0),
        )?;
        if asked >= limits.per_client {
            tx.commit()?;
            return Ok(Asked::ClientLimited);
        }
        tx.execute(
            "INSERT INTO sign_in_requests (at, client) VALUES (?1, ?2)",
            params![format_time(now), client],
        )?;
        let sent: u32 = tx.query_row(
            "SELECT count(*) FROM login_tokens WHERE email = ?1 AND created_at >= ?2",
            params![email, hour_ago],
            |r| r.get(0),
        )?;
        if !known || sent >= limits.per_address {
            tx.commit()?;
            return Ok(Asked::Nothing);
        }
        let token = recipients::new_token()?;
        let expires =
            now + chrono::Duration::from_std(lifetime).unwrap_or(chrono::TimeDelta::minutes(15));
        let (now_text, expires_text) = (format_time(now), format_time(expires));
        tx.execute(
            "INSERT INTO login_tokens (hash, email, created_at, expires_at) VALUES (?1, ?2, ?3, ?4)",
            params![digest(&token), email, now_text, expires_text],
        )?;
        tx.execute(
            "INSERT INTO sign_in_messages (recipient, token, expires_at, status, created_at, due_at)
             VALUES (?1, ?2, ?3, 'pending', ?4, ?4)",
            params![email, token, expires_text, now_text],
        )?;
        tx.commit()?;
        Ok(Asked::Queued)
    }

    /// Follows a sign-in link: a valid one is used up, opens a session and is
    /// recorded in the audit of each of the address's dossiers.
    ///
    /// # Errors
    /// On a database error, or when the system gives no random bytes.
    pub(crate) fn redeem(
        &mut self,
        token: &str,
        client: &str,
        now: DateTime<Utc>,
    ) -> Result<Redeemed> {
        if !recipients::token_shape(token) {
            return Ok(Redeemed::Unknown);
        }
        let found: Option<(String, String, Option<String>)> = self
            .conn
            .query_row(
                "SELECT email, expires_at, used_at FROM login_tokens WHERE hash = ?1",
                [digest(token)],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()?;
        let Some((email, expires, used)) = found else {
            return Ok(Redeemed::Unknown);
        };
        if used.is_some() {
            return Ok(Redeemed::Used);
        }
        if parse_time(&expires)? <= now {
            return Ok(Redeemed::Expired);
        }
        let dossiers = self.beneficiary_dossiers(&email)?;
        let cookie = recipients::new_token()?;
        let now_text = format_time(now);
        let tx = self.conn.transaction()?;
        let taken = tx.execute(
            "UPDATE login_tokens SET used_at = ?2 WHERE hash = ?1 AND used_at IS NULL",
            params![digest(token), now_text],
        )?;
        if taken == 0 {
            return Ok(Redeemed::Used);
        }
        tx.execute(
            "INSERT INTO sessions (hash, email, created_at, last_seen_at) VALUES (?1, ?2, ?3, ?3)",
            params![digest(&cookie), email, now_text],
        )?;
        audit(&tx, &email, "sign-in", &dossiers, client, now)?;
        tx.commit()?;
        Ok(Redeemed::Opened { cookie, email })
    }

    /// The address of the session whose cookie is `cookie`, when it is still
    /// open (used within `idle`, opened within `max`); it is seen now. A session
    /// past either is deleted.
    ///
    /// # Errors
    /// On a database error or a corrupt row.
    pub(crate) fn session(
        &mut self,
        cookie: &str,
        idle: std::time::Duration,
        max: std::time::Duration,
        now: DateTime<Utc>,
    ) -> Result<Option<String>> {
        if !recipients::token_shape(cookie) {
            return Ok(None);
        }
        let hash = digest(cookie);
        let found: Option<(String, String, String)> = self
            .conn
            .query_row(
                "SELECT email, created_at, last_seen_at FROM sessions WHERE hash = ?1",
                [&hash],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()?;
        let Some((email, created, seen)) = found else {
            return Ok(None);
        };
        let within = |since: &str, limit: std::time::Duration| -> Result<bool> {
            Ok((now - parse_time(since)?).to_std().unwrap_or_default() < limit)
        };
        if !within(&created, max)? || !within(&seen, idle)? {
            self.conn
                .execute("DELETE FROM sessions WHERE hash = ?1", [&hash])?;
            return Ok(None);
        }
        // Its last page is noted once a minute at most (or within half the idle
        // limit, when shorter): a write per page would keep the store's thread
        // busy for nothing.
        if !within(&seen, SEEN_EVERY.min(idle / 2))? {
            self.conn.execute(
                "UPDATE sessions SET last_seen_at = ?2 WHERE hash = ?1",
                params![hash, format_time(now)],
            )?;
        }
        Ok(Some(email))
    }

    /// Ends the session whose cookie is `cookie`.
    ///
    /// # Errors
    /// On a database error.
    pub(crate) fn end_session(&mut self, cookie: &str) -> Result<()> {
        self.conn
            .execute("DELETE FROM sessions WHERE hash = ?1", [digest(cookie)])?;
        Ok(())
    }

    /// Records that `email` was shown `dossiers` (their row ids) from `client`.
    ///
    /// # Errors
    /// On a database error.
    pub(crate) fn record_list(
        &mut self,
        email: &str,
        dossiers: &[FrontDossier],
        client: &str,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let tx = self.conn.transaction()?;
        audit(&tx, email, "list", dossiers, client, now)?;
        tx.commit()?;
        Ok(())
    }

    /// The front office's audit of one dossier (its row id), oldest first.
    ///
    /// # Errors
    /// On a database error or a corrupt row.
    pub(crate) fn audit(&self, dossier: i64) -> Result<Vec<AuditRecord>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT at, email, action, client FROM web_audit WHERE dossier_id = ?1 ORDER BY at, id",
        )?;
        let mut rows = stmt.query([dossier])?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            out.push(AuditRecord {
                at: parse_time(r.get_ref(0)?.as_str()?)?,
                email: r.get(1)?,
                action: r.get(2)?,
                client: r.get(3)?,
            });
        }
        Ok(out)
    }

    /// The sign-in messages due at `now`, oldest first.
    ///
    /// # Errors
    /// On a database error or a corrupt row.
    pub(crate) fn due_sign_ins(&self, now: DateTime<Utc>) -> Result<Vec<SignInMail>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, recipient, token, expires_at, attempts, created_at FROM sign_in_messages
             WHERE status = 'pending' AND due_at <= ?1 AND token IS NOT NULL
             ORDER BY due_at, id LIMIT 100",
        )?;
        let mut rows = stmt.query([format_time(now)])?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            out.push(SignInMail {
                id: r.get(0)?,
                recipient: r.get(1)?,
                token: r.get(2)?,
                expires_at: parse_time(r.get_ref(3)?.as_str()?)?,
                attempts: r.get(4)?,
                created_at: parse_time(r.get_ref(5)?.as_str()?)?,
            });
        }
        Ok(out)
    }

    /// When the next pending sign-in message falls due.
    ///
    /// # Errors
    /// On a database error or a corrupt row.
    pub(crate) fn next_sign_in(&self) -> Result<Option<DateTime<Utc>>> {
        next_due(&self.conn, "sign_in_messages")
    }

    /// Records an attempt at a sign-in message: `sent` (with its Message-ID),
    /// `pending` again at `retry_at`, or `failed` with `reason`. The token goes
    /// once the message is no longer pending.
    ///
    /// # Errors
    /// On a database error.
    pub(crate) fn sign_in_attempt(&mut self, id: i64, attempt: &SmallAttempt<'_>) -> Result<()> {
        record_attempt(
            &self.conn,
            "sign_in_messages",
            ", token = CASE WHEN ?2 = 'pending' THEN token END",
            id,
            attempt,
        )
    }
}

/// An attempt at a message of a small outbox (sign-in messages, exchanges'
/// forwardings): its new status (`sent`, `pending` or `failed`), when to try
/// again, its Message-ID once sent, why it did not leave, and when.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SmallAttempt<'a> {
    /// `sent`, `pending` or `failed`.
    pub status: &'a str,
    /// When to try again (`pending`).
    pub retry_at: Option<DateTime<Utc>>,
    /// The Message-ID it left with.
    pub message_id: Option<&'a str>,
    /// Why it did not leave.
    pub reason: Option<&'a str>,
    /// When.
    pub now: DateTime<Utc>,
}

/// When the next pending row of the small outbox `table` falls due.
pub(super) fn next_due(conn: &rusqlite::Connection, table: &str) -> Result<Option<DateTime<Utc>>> {
    let at: Option<String> = conn.query_row(
        &format!("SELECT min(due_at) FROM {table} WHERE status = 'pending'"),
        [],
        |r| r.get(0),
    )?;
    at.map(|t| parse_time(&t)).transpose()
}

/// Records `attempt` at row `id` of the small outbox `table`, with `more`
/// (`, column = …`, which may read `?2`, the status) set too.
pub(super) fn record_attempt(
    conn: &rusqlite::Connection,
    table: &str,
    more: &str,
    id: i64,
    a: &SmallAttempt<'_>,
) -> Result<()> {
    conn.prepare_cached(&format!(
        "UPDATE {table} SET status = ?2, attempts = attempts + 1,
                due_at = coalesce(?3, due_at), message_id = coalesce(?4, message_id),
                reason = ?5, sent_at = CASE WHEN ?2 = 'sent' THEN ?6 END{more}
         WHERE id = ?1"
    ))?
    .execute(params![
        id,
        a.status,
        a.retry_at.map(format_time),
        a.message_id,
        a.reason,
        format_time(a.now)
    ])?;
    Ok(())
}

/// Records `action` by `email` on each of `dossiers`, in `tx`.
pub(super) fn audit(
    tx: &rusqlite::Transaction<'_>,
    email: &str,
    action: &str,
    dossiers: &[FrontDossier],
    client: &str,
    now: DateTime<Utc>,
) -> Result<()> {
    let mut stmt = tx.prepare_cached(
        "INSERT INTO web_audit (at, email, action, dossier_id, client) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    for d in dossiers {
        stmt.execute(params![
            format_time(now),
            email,
            action,
            d.stored.rowid,
            client
        ])?;
    }
    Ok(())
}

/// The front office's part of the purge, in the purge's transaction: the
/// audit of the dossiers `purged` (row ids), their exchanges (`exchanges`),
/// their reply tokens and the messages kept about them (`front_pages`), the
/// unmatched replies told to the administrators a month ago or more
/// (`inbound`), sessions past `max` or unseen for `idle`, links expired and
/// sign-in messages done more than a day ago.
/// Returns how many rows went.
///
/// # Errors
/// On a database error.
pub(super) fn purge(
    tx: &rusqlite::Transaction<'_>,
    purged: &[i64],
    (idle, max): (std::time::Duration, std::time::Duration),
    now: DateTime<Utc>,
    dry_run: bool,
) -> Result<u64> {
    let ago = |d: std::time::Duration| {
        format_time(now - chrono::Duration::from_std(d).unwrap_or(chrono::TimeDelta::MAX))
    };
    let ids = serde_json::to_string(purged).unwrap_or_else(|_| "[]".to_owned());
    let day_ago = format_time(now - chrono::TimeDelta::days(1));
    let month_ago = format_time(now - chrono::TimeDelta::days(30));
    let statements: [(&str, Vec<String>); 8] = [
        (
            "web_audit WHERE dossier_id IN (SELECT value FROM json_each(?1))",
            vec![ids.clone()],
        ),
        (
            "thread_tokens WHERE dossier_id IN (SELECT value FROM json_each(?1))",
            vec![ids.clone()],
        ),
        // Unmatched replies (a sender, a subject): told, and a month old.
        (
            "inbound_unmatched WHERE reported = 1 AND received_at < ?1",
            vec![month_ago],
        ),
        (
            "exchanges WHERE dossier_id IN (SELECT value FROM json_each(?1))",
            vec![ids.clone()],
        ),
        (
            "kept_messages WHERE message_id IN (SELECT message_id FROM alerts
             WHERE dossier_id IN (SELECT value FROM json_each(?1)))",
            vec![ids],
        ),
        (
            "sessions WHERE created_at < ?1 OR last_seen_at < ?2",
            vec![ago(max), ago(idle)],
        ),
        ("login_tokens WHERE expires_at < ?1", vec![day_ago.clone()]),
        (
            "sign_in_messages WHERE status <> 'pending' AND created_at < ?1",
            vec![day_ago],
        ),
    ];
    let mut n = 0;
    for (what, values) in statements {
        let values = rusqlite::params_from_iter(values);
        n += if dry_run {
            tx.query_row(&format!("SELECT count(*) FROM {what}"), values, |r| {
                r.get::<_, i64>(0)
            })? as u64
        } else {
            tx.execute(&format!("DELETE FROM {what}"), values)? as u64
        };
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_are_sha256_in_hex() {
        assert_eq!(
            digest("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
