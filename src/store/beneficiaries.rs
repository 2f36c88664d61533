//! The lookup of dossiers by the addresses of their beneficiaries (issue 20)
//! and of their instructors (issue 21: the staff view).
//!
//! Owns the `beneficiary_emails` and `instructor_emails` tables: one row for
//! each address of a dossier's `beneficiary.email` (resp. `instructor.email`;
//! a list of addresses is split on `,` and `;`), trimmed and in lowercase, with
//! the dossier's row id. They follow the dossiers' fields exactly: an import
//! adds the rows of a new dossier and, when a dossier's addresses change,
//! deletes the old ones and adds the new ones, in its one transaction; the
//! RGPD purge deletes a purged dossier's rows (an address is personal data).
//! Migrations 0022 and 0025 fill them from the stored dossiers.
//!
//! The rows of the dossiers an import creates are gathered and written sorted
//! when it ends: in the random order of the addresses, each insert would land on
//! another page of the table (as an SQL index on the references did, about a
//! seventh of the first import of a million dossiers, see [`super::references`]).

use std::cell::RefCell;

use rusqlite::{Connection, Transaction, params};

use super::{Result, fields};
use crate::model::{Dossier, Value};

/// One of the lookups: its table and the field whose addresses it holds.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Lookup {
    table: &'static str,
    field: &'static str,
}

/// The beneficiaries' addresses.
pub(super) const BENEFICIARIES: Lookup = Lookup {
    table: "beneficiary_emails",
    field: "beneficiary.email",
};
/// The instructors' addresses.
pub(super) const INSTRUCTORS: Lookup = Lookup {
    table: "instructor_emails",
    field: "instructor.email",
};
/// Both, as imports and the purge keep them.
const LOOKUPS: [&Lookup; 2] = [&BENEFICIARIES, &INSTRUCTORS];

/// The field that holds a dossier's beneficiary addresses (the tests').
#[cfg(test)]
const FIELD: &str = BENEFICIARIES.field;

/// An address as the table keeps it, and as it is looked up.
pub(super) fn normalize(email: &str) -> String {
    email.trim().to_lowercase()
}

/// Whether `email` (any case) is in `lookup` for a dossier that is not purged.
pub(super) fn listed(conn: &Connection, lookup: &Lookup, email: &str) -> Result<bool> {
    let email = normalize(email);
    Ok(!email.is_empty()
        && conn
            .prepare_cached(&format!(
                "SELECT EXISTS (SELECT 1 FROM {} l JOIN dossiers d ON d.id = l.dossier_id
                                WHERE l.email = ?1 AND d.purged_at IS NULL)",
                lookup.table
            ))?
            .query_row([&email], |r| r.get(0))?)
}

/// The addresses of `dossier` in `lookup`, as its table keeps them: each once,
/// sorted, empty ones left out.
pub(super) fn addresses(lookup: &Lookup, dossier: &Dossier) -> Vec<String> {
    let Some(Value::Emails(list) | Value::Text(list)) = dossier.get(lookup.field) else {
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
    rows: Vec<(&'static Lookup, String, i64)>,
}

impl Pending {
    /// Notes the addresses of the new dossier `rowid`, in every lookup.
    pub(super) fn push(&mut self, dossier: &Dossier, rowid: i64) {
        for lookup in LOOKUPS {
            self.push_in(lookup, dossier, rowid);
        }
    }

    /// Notes the addresses of `dossier` in `lookup` only.
    fn push_in(&mut self, lookup: &'static Lookup, dossier: &Dossier, rowid: i64) {
        self.rows.extend(
            addresses(lookup, dossier)
                .into_iter()
                .map(|email| (lookup, email, rowid)),
        );
    }

    /// Writes what is gathered, sorted, in the import's transaction.
    pub(super) fn flush(&mut self, tx: &Transaction<'_>) -> Result<()> {
        self.rows.sort_unstable();
        for (lookup, email, rowid) in self.rows.drain(..) {
            tx.prepare_cached(&insert(lookup))?
                .execute(params![email, rowid])?;
        }
        Ok(())
    }
}

fn insert(lookup: &Lookup) -> String {
    format!(
        "INSERT OR IGNORE INTO {} (email, dossier_id) VALUES (?1, ?2)",
        lookup.table
    )
}

/// Keeps the rows of the stored dossier `rowid` in step when its fields go from
/// `before` to `after`: nothing when its addresses are the same.
pub(super) fn changed(
    conn: &Connection,
    rowid: i64,
    before: &Dossier,
    after: &Dossier,
) -> Result<()> {
    for lookup in LOOKUPS {
        let (old, new) = (addresses(lookup, before), addresses(lookup, after));
        if old == new {
            continue;
        }
        let mut delete = conn.prepare_cached(&format!(
            "DELETE FROM {} WHERE email = ?1 AND dossier_id = ?2",
            lookup.table
        ))?;
        for email in old.iter().filter(|e| !new.contains(e)) {
            delete.execute(params![email, rowid])?;
        }
        let mut insert = conn.prepare_cached(&insert(lookup))?;
        for email in new.iter().filter(|e| !old.contains(e)) {
            insert.execute(params![email, rowid])?;
        }
    }
    Ok(())
}

/// Deletes the rows of the purged dossiers `ids`, in the purge's transaction:
/// one pass over each table (they have no index by dossier).
pub(super) fn purge(tx: &Transaction<'_>, ids: &[i64]) -> Result<()> {
    if ids.is_empty() {
        return Ok(());
    }
    let ids = serde_json::to_string(ids).unwrap_or_else(|_| "[]".to_owned());
    for lookup in LOOKUPS {
        tx.execute(
            &format!(
                "DELETE FROM {} WHERE dossier_id IN (SELECT value FROM json_each(?1))",
                lookup.table
            ),
            [&ids],
        )?;
    }
    Ok(())
}

/// Migration 0022: the beneficiaries' rows of the stored dossiers.
pub(super) fn migrate_0022(tx: &Transaction<'_>) -> rusqlite_migration::HookResult {
    fill(tx, &BENEFICIARIES)
}

/// Migration 0025: the instructors' rows of the stored dossiers.
pub(super) fn migrate_0025(tx: &Transaction<'_>) -> rusqlite_migration::HookResult {
    fill(tx, &INSTRUCTORS)
}

/// The rows of `lookup` for the stored dossiers that are not purged (a
/// dossier without fields has none).
fn fill(tx: &Transaction<'_>, lookup: &'static Lookup) -> rusqlite_migration::HookResult {
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
            pending.push_in(lookup, &dossier, r.get(0)?);
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
        assert_eq!(
            addresses(&BENEFICIARIES, &d),
            ["autre@example.org", "lune@example.org"]
        );
        assert!(addresses(&INSTRUCTORS, &d).is_empty());
        assert!(addresses(&BENEFICIARIES, &dossier(None)).is_empty());
        assert!(addresses(&BENEFICIARIES, &dossier(Some(Value::Text("  ".to_owned())))).is_empty());
    }
}
