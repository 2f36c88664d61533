//! The recipients' choices (issue 17, item 25): each address an informational
//! message went to has a random token, the capability of its unsubscribe link,
//! and may have left the informational class.
//!
//! Owns the `recipients` and `opt_outs` tables. The token is drawn from the
//! operating system's CSPRNG ([`TOKEN_BYTES`] bytes) and is all a link carries:
//! the address never shows in it. Which messages are informational, and what a
//! choice does to the outbox, is the dispatcher's business.

use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, params};

use super::{Result, Store, StoreError, format_time, parse_time};

/// Random bytes in a token: 192 bits, written as 48 lowercase hex digits.
pub(crate) const TOKEN_BYTES: usize = 24;

/// How an address left a class of messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OptOutHow {
    /// A mail client's one-click POST (RFC 8058, `List-Unsubscribe-Post`).
    OneClick,
    /// The button of the unsubscribe page.
    Page,
}

impl OptOutHow {
    /// The stored name.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::OneClick => "one-click",
            Self::Page => "page",
        }
    }
}

/// An address's choice to receive no more informational messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OptOut {
    /// Since when.
    pub since: DateTime<Utc>,
    /// `one-click` or `page`.
    pub how: String,
}

/// What a token's holder chose, as the unsubscribe pages show it (without the
/// address).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Subscription {
    /// The address left the informational messages, when it did.
    pub opted_out: Option<OptOut>,
}

/// Whether `text` has the shape of a token: what is not one is not looked up.
pub(crate) fn token_shape(text: &str) -> bool {
    text.len() == TOKEN_BYTES * 2 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// A fresh token.
pub(crate) fn new_token() -> Result<String> {
    let mut bytes = [0u8; TOKEN_BYTES];
    getrandom::fill(&mut bytes).map_err(|e| StoreError::Random(e.to_string()))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

const INFORMATIONAL: &str = "informational";

impl Store {
    /// The token of `address` (any case), drawn and recorded the first time.
    ///
    /// # Errors
    /// On a database error, or when the system gives no random bytes.
    pub(crate) fn recipient_token(&mut self, address: &str, now: DateTime<Utc>) -> Result<String> {
        let address = address.to_lowercase();
        if let Some(token) = self.token_of(&address)? {
            return Ok(token);
        }
        self.conn
            .prepare_cached(
                "INSERT INTO recipients (address, token, created_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (address) DO NOTHING",
            )?
            .execute(params![address, new_token()?, format_time(now)])?;
        self.token_of(&address)?
            .ok_or_else(|| StoreError::Corrupt(format!("no token recorded for {address}")))
    }

    fn token_of(&self, address: &str) -> Result<Option<String>> {
        Ok(self
            .conn
            .prepare_cached("SELECT token FROM recipients WHERE address = ?1")?
            .query_row([address], |r| r.get(0))
            .optional()?)
    }

    /// What the holder of `token` chose; `None` for a token nobody holds.
    ///
    /// # Errors
    /// On a database error or a corrupt row.
    pub(crate) fn subscription(&self, token: &str) -> Result<Option<Subscription>> {
        let found: Option<(Option<String>, Option<String>)> = self
            .conn
            .prepare_cached(
                "SELECT o.since, o.how FROM recipients r
                 LEFT JOIN opt_outs o ON o.address = r.address AND o.class = ?2
                 WHERE r.token = ?1",
            )?
            .query_row(params![token, INFORMATIONAL], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .optional()?;
        let Some((since, how)) = found else {
            return Ok(None);
        };
        let opted_out = match (since, how) {
            (Some(since), Some(how)) => Some(OptOut {
                since: parse_time(&since)?,
                how,
            }),
            _ => None,
        };
        Ok(Some(Subscription { opted_out }))
    }

    /// Records that the holder of `token` wants no more informational messages
    /// (a choice made before keeps its date); `None` for an unknown token.
    ///
    /// # Errors
    /// On a database error.
    pub(crate) fn opt_out(
        &mut self,
        token: &str,
        how: OptOutHow,
        now: DateTime<Utc>,
    ) -> Result<Option<Subscription>> {
        self.conn
            .prepare_cached(
                "INSERT INTO opt_outs (address, class, since, how)
                 SELECT address, ?2, ?3, ?4 FROM recipients WHERE token = ?1
                 ON CONFLICT (address, class) DO NOTHING",
            )?
            .execute(params![
                token,
                INFORMATIONAL,
                format_time(now),
                how.as_str()
            ])?;
        self.subscription(token)
    }

    /// Takes back the choice of the holder of `token`: informational messages go
    /// to the address again; `None` for an unknown token.
    ///
    /// # Errors
    /// On a database error.
    pub(crate) fn opt_in(&mut self, token: &str) -> Result<Option<Subscription>> {
        self.conn
            .prepare_cached(
                "DELETE FROM opt_outs WHERE class = ?2
                 AND address = (SELECT address FROM recipients WHERE token = ?1)",
            )?
            .execute(params![token, INFORMATIONAL])?;
        self.subscription(token)
    }

    /// Whether `address` (any case) left the informational messages.
    ///
    /// # Errors
    /// On a database error.
    pub(crate) fn opted_out(&self, address: &str) -> Result<bool> {
        Ok(self
            .conn
            .prepare_cached("SELECT 1 FROM opt_outs WHERE address = ?1 AND class = ?2")?
            .query_row(params![address.to_lowercase(), INFORMATIONAL], |_| Ok(()))
            .optional()?
            .is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        crate::test_support::utc("2026-03-10T09:00:00Z")
    }

    /// A store in a folder of its own (kept while the test runs).
    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("state.db"), 8).unwrap();
        (dir, store)
    }

    #[test]
    fn a_token_is_drawn_once_per_address_whatever_its_case() {
        let (_dir, mut store) = store();
        let a = store.recipient_token("Asso@Example.org", now()).unwrap();
        assert!(token_shape(&a), "{a}");
        assert_eq!(store.recipient_token("asso@example.org", now()).unwrap(), a);
        let b = store.recipient_token("other@example.org", now()).unwrap();
        assert_ne!(a, b);
        assert!(!a.contains("asso"), "the token does not reveal the address");
    }

    #[test]
    fn opting_out_and_back_in() {
        let (_dir, mut store) = store();
        let token = store.recipient_token("asso@example.org", now()).unwrap();
        assert!(!store.opted_out("ASSO@example.org").unwrap());
        let chosen = store.opt_out(&token, OptOutHow::OneClick, now()).unwrap();
        let expected = OptOut {
            since: now(),
            how: "one-click".to_owned(),
        };
        assert_eq!(chosen.unwrap().opted_out.as_ref(), Some(&expected));
        assert!(store.opted_out("ASSO@example.org").unwrap());
        // A second click keeps the first date and way.
        let later = now() + chrono::Duration::days(1);
        let again = store.opt_out(&token, OptOutHow::Page, later).unwrap();
        assert_eq!(again.unwrap().opted_out, Some(expected));
        let back = store.opt_in(&token).unwrap().unwrap();
        assert_eq!(back.opted_out, None);
        assert!(!store.opted_out("asso@example.org").unwrap());
    }

    #[test]
    fn an_unknown_token_changes_nothing() {
        let (_dir, mut store) = store();
        store.recipient_token("asso@example.org", now()).unwrap();
        let stranger = "0".repeat(TOKEN_BYTES * 2);
        assert_eq!(store.subscription(&stranger).unwrap(), None);
        assert_eq!(
            store.opt_out(&stranger, OptOutHow::Page, now()).unwrap(),
            None
        );
        assert_eq!(store.opt_in(&stranger).unwrap(), None);
        assert!(!store.opted_out("asso@example.org").unwrap());
    }

    #[test]
    fn token_shapes() {
        assert!(token_shape(&"a1".repeat(TOKEN_BYTES)));
        assert!(!token_shape(&"A1".repeat(TOKEN_BYTES)));
        assert!(!token_shape("abc"));
        assert!(!token_shape(&"g".repeat(TOKEN_BYTES * 2)));
    }
}
