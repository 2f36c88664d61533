//! The lookup of a beneficiary's dossiers by e-mail address (issue 20).
//!
//! Owns the `beneficiary_emails` table: one row for each address of a dossier's
//! `beneficiary.email` (a list of addresses is split on `,` and `;`), trimmed and
//! in lowercase, with the dossier's row id. It follows the dossiers' fields
//! exactly: an import adds the rows of a new dossier and, when a dossier's
//! addresses change, deletes the old ones and adds the new ones, in its one
//! transaction; the RGPD purge deletes a purged dossier's rows (an address is
//! personal data). Migration 0022 fills it from the stored dossiers.
//!
//! The rows of the dossiers an import creates are gathered and written sorted
//! when it ends: in the random order of the addresses, each insert would land on
//! another page of the table (as an SQL index on the references did, about a
//! seventh of the first import of a million dossiers, see [`super::references`]).

use std::cell::RefCell;

use rusqlite::{Connection, Transaction, params};

use super::{Result, fields};
use crate::model::{Dossier, Value};

/// The name of the field that holds a dossier's beneficiary addresses.
const FIELD: &str = "beneficiary.email";

/// An address as the table keeps it, and as it is looked up.
pub(super) fn normalize(email: &str) -> String {
    email.trim().to_lowercase()
}

/// The beneficiary addresses of `dossier`, as the table keeps them: each once,
/// sorted, empty ones left out.
pub(super) fn addresses(dossier: &Dossier) -> Vec<String> {
    let Some(Value::Emails(list) | Value::Text(list)) = dossier.get(FIELD) else {
        return Vec::new();
    };
    let mut out: Vec<String> = list
        .split([',', ';'])
        .map(normalize)
        .filter(|one| !one.is_empty())
        .collect();
    out.sort_unstable();
    out.dedup();
    out
}

/// The rows of the dossiers an import created, written when it ends.
#[derive(Debug, Default)]
pub(super) struct Pending {
    rows: Vec<(String, i64)>,
}

impl Pending {
    /// Notes the addresses of the new dossier `rowid`.
    pub(super) fn push(&mut self, dossier: &Dossier, rowid: i64) {
        self.rows
            .extend(addresses(dossier).into_iter().map(|email| (email, rowid)));
    }

    /// Writes what is gathered, sorted, in the import's transaction.
    pub(super) fn flush(&mut self, tx: &Transaction<'_>) -> Result<()> {
        self.rows.sort_unstable();
        let mut stmt = tx.prepare_cached(INSERT)?;
        for (email, rowid) in self.rows.drain(..) {
            stmt.execute(params![email, rowid])?;
        }
        Ok(())
    }
}

const INSERT: &str = "INSERT OR IGNORE INTO beneficiary_emails (email, dossier_id) VALUES (?1, ?2)";

/// Keeps the rows of the stored dossier `rowid` in step when its fields go from
/// `before` to `after`: nothing when its addresses are the same.
pub(super) fn changed(
    conn: &Connection,
    rowid: i64,
    before: &Dossier,
    after: &Dossier,
) -> Result<()> {
    let (old, new) = (addresses(before), addresses(after));
    if old == new {
        return Ok(());
    }
    let mut delete =
        conn.prepare_cached("DELETE FROM beneficiary_emails WHERE email = ?1 AND dossier_id = ?2")?;
    for email in old.iter().filter(|e| !new.contains(e)) {
        delete.execute(params![email, rowid])?;
    }
    let mut insert = conn.prepare_cached(INSERT)?;
    for email in new.iter().filter(|e| !old.contains(e)) {
        insert.execute(params![email, rowid])?;
    }
    Ok(())
}

/// Deletes the rows of the purged dossiers `ids`, in the purge's transaction:
/// one pass over the table (the table has no index by dossier).
pub(super) fn purge(tx: &Transaction<'_>, ids: &[i64]) -> Result<()> {
    if ids.is_empty() {
        return Ok(());
    }
    let ids = serde_json::to_string(ids).unwrap_or_else(|_| "[]".to_owned());
    tx.execute(
        "DELETE FROM beneficiary_emails WHERE dossier_id IN (SELECT value FROM json_each(?1))",
        [ids],
    )?;
    Ok(())
}

/// Migration 0022: the rows of the stored dossiers that are not purged (a
/// dossier without fields has none).
pub(super) fn migrate_0022(tx: &Transaction<'_>) -> rusqlite_migration::HookResult {
    let names = RefCell::new(fields::Names::default());
    let mut pending = Pending::default();
    {
        let mut stmt = tx.prepare(
            "SELECT id, source_id, step, status, fields, scheme FROM dossiers
             WHERE purged_at IS NULL AND length(fields) > 0 ORDER BY id",
        )?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            let dossier = Dossier {
                id: r.get(1)?,
                step: r.get(2)?,
                status: r.get(3)?,
                fields: fields::decode(
                    r.get_ref(4)?.as_blob().map_err(rusqlite::Error::from)?,
                    r.get(5)?,
                    &names,
                    tx,
                )?,
            };
            pending.push(&dossier, r.get(0)?);
        }
    }
    pending.flush(tx)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dossier(email: Option<Value>) -> Dossier {
        let mut d = Dossier {
            id: "D1".to_owned(),
            step: "depose".to_owned(),
            status: "Déposé".to_owned(),
            fields: crate::model::Fields::default(),
        };
        if let Some(email) = email {
            d.fields.insert(FIELD, email);
        }
        d
    }

    #[test]
    fn a_list_gives_each_address_once_in_lowercase() {
        let d = dossier(Some(Value::Emails(
            " Lune@Example.org; autre@example.org,LUNE@example.org ,".to_owned(),
        )));
        assert_eq!(addresses(&d), ["autre@example.org", "lune@example.org"]);
        assert!(addresses(&dossier(None)).is_empty());
        assert!(addresses(&dossier(Some(Value::Text("  ".to_owned())))).is_empty());
    }
}
