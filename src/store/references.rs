//! The lookup of dossiers by reference.
//!
//! Owns the `reference_index` table: parts of 8-byte entries, each the 32-bit
//! hash of a reference and the row id of a dossier that had it, little-endian.
//! Imports only append to it: an entry for every new dossier and for every
//! dossier whose reference changed. A lookup scans every part (8 MB for a million
//! dossiers) for the hash, then keeps the candidates whose row holds the
//! reference, so an entry left by an older reference, or two references with the
//! same hash, only add a candidate that the check drops.
//!
//! An SQL index on `dossiers.reference` did the same, but took its entries in the
//! random order of the references: about a seventh of the first import of a million
//! dossiers, where appending these entries takes a few milliseconds.

use rusqlite::{Connection, Transaction};
use xxhash_rust::xxh3::xxh3_64;

use super::Result;

/// Entries gathered before they are written as one part (512 KB).
const PART_ENTRIES: usize = 65_536;
/// The stored size of an entry.
const ENTRY_BYTES: usize = 8;

/// The stored hash of a reference.
fn hash(reference: &str) -> u32 {
    xxh3_64(reference.as_bytes()) as u32
}

/// The entries of an import not written yet.
#[derive(Debug, Default)]
pub(super) struct Pending {
    bytes: Vec<u8>,
}

impl Pending {
    /// Notes that the dossier `rowid` has the reference `reference`; writes a part
    /// once enough are gathered.
    pub(super) fn push(&mut self, tx: &Transaction<'_>, reference: &str, rowid: i64) -> Result<()> {
        let row = super::entry_row(rowid)?;
        self.bytes.extend_from_slice(&hash(reference).to_le_bytes());
        self.bytes.extend_from_slice(&row.to_le_bytes());
        if self.bytes.len() >= PART_ENTRIES * ENTRY_BYTES {
            self.flush(tx)?;
        }
        Ok(())
    }

    /// Writes what is gathered, in the import's transaction.
    pub(super) fn flush(&mut self, tx: &Transaction<'_>) -> Result<()> {
        if !self.bytes.is_empty() {
            append(tx, &self.bytes)?;
            self.bytes.clear();
        }
        Ok(())
    }
}

fn append(conn: &Connection, bytes: &[u8]) -> Result<()> {
    conn.prepare_cached("INSERT INTO reference_index (entries) VALUES (?1)")?
        .execute([bytes])?;
    Ok(())
}

/// The row ids of the dossiers that may have the reference `reference` (each
/// once, in row order): the caller checks their reference.
pub(super) fn candidates(conn: &Connection, reference: &str) -> Result<Vec<i64>> {
    let wanted = hash(reference).to_le_bytes();
    let mut stmt = conn.prepare_cached("SELECT id, entries FROM reference_index ORDER BY id")?;
    let mut rows = stmt.query([])?;
    let mut found = Vec::new();
    while let Some(row) = rows.next()? {
        let bytes = super::index::whole_entries(row, ENTRY_BYTES, |part| {
            format!("reference index, part {part}")
        })?;
        for e in bytes.chunks_exact(ENTRY_BYTES) {
            if e[..4] == wanted {
                let row = u32::from_le_bytes(e[4..].try_into().expect("4 bytes"));
                found.push(i64::from(row));
            }
        }
    }
    found.sort_unstable();
    found.dedup();
    Ok(found)
}

/// Migration 0011: the entries of the stored dossiers, in place of the SQL index.
pub(super) fn migrate_0011(tx: &Transaction<'_>) -> rusqlite_migration::HookResult {
    let mut pending = Pending::default();
    let mut stmt = tx.prepare("SELECT id, reference FROM dossiers ORDER BY id")?;
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        pending.push(tx, &r.get::<_, String>(1)?, r.get(0)?)?;
    }
    pending.flush(tx)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_table(f: impl FnOnce(&Transaction<'_>)) {
        let mut conn = Connection::open_in_memory().expect("in-memory database");
        conn.execute_batch(
            "CREATE TABLE reference_index (id INTEGER PRIMARY KEY, entries BLOB NOT NULL);",
        )
        .expect("schema");
        let tx = conn.transaction().expect("transaction");
        f(&tx);
    }

    #[test]
    fn every_row_that_had_a_reference_is_a_candidate_once() {
        with_table(|tx| {
            let mut pending = Pending::default();
            // More than a part, so that candidates come from several.
            for row in 1..=(PART_ENTRIES as i64 + 10) {
                pending.push(tx, &format!("AR-{row}"), row).unwrap();
            }
            pending.push(tx, "AR-7", 3).unwrap();
            pending.push(tx, "AR-7", 7).unwrap();
            pending.flush(tx).unwrap();
            let parts: i64 = tx
                .query_row("SELECT count(*) FROM reference_index", [], |r| r.get(0))
                .unwrap();
            assert_eq!(parts, 2);
            assert_eq!(candidates(tx, "AR-7").unwrap(), [3, 7]);
            assert_eq!(
                candidates(tx, &format!("AR-{}", PART_ENTRIES + 10)).unwrap(),
                [PART_ENTRIES as i64 + 10]
            );
            assert!(candidates(tx, "absent").unwrap().is_empty());
        });
    }

    #[test]
    fn a_cut_part_is_reported() {
        with_table(|tx| {
            tx.execute("INSERT INTO reference_index VALUES (4, x'010203')", [])
                .unwrap();
            let error = candidates(tx, "AR-1").unwrap_err().to_string();
            assert!(
                error.contains("reference index, part 4: 3 bytes"),
                "{error}"
            );
        });
    }
}
