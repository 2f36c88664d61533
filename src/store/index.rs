//! The change-detection state of each connector, as the store keeps it.
//!
//! Owns the `change_index` table and its encoding. For every dossier of a
//! connector, an [`Entry`] holds 96 bits of the hash of its source id, its row
//! id, the raw hash of its last record and whether it is present: 24 bytes,
//! stored in parts of [`PART_ENTRIES`] entries, little-endian, one blob a part.
//!
//! An import reads the whole state at its start and writes it whole before it
//! commits: a few sequential blobs, where a row a dossier took a million SQLite
//! steps to read, and rewrote a page of that table for every changed dossier.

use rusqlite::{Connection, Transaction, params};

use super::{IdKey, Result, StoreError};

/// Entries in one stored part (1.5 MB): large enough to read and write the state
/// in few steps, small enough never to copy the whole state at once.
pub(crate) const PART_ENTRIES: usize = 65_536;
/// The stored size of an entry.
const ENTRY_BYTES: usize = 24;

/// The change-detection state of one dossier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Entry {
    /// The first 64 bits of the id hash.
    pub hi: u64,
    /// The next 32 bits of the id hash, then the row id.
    pub lo: u64,
    /// The raw hash; its lowest bit holds whether the dossier is present.
    pub hash_present: u64,
}

impl Entry {
    /// The state of the dossier with row id `dossier_id`.
    pub(crate) fn new(key: IdKey, dossier_id: u32, row_hash: u64, present: bool) -> Self {
        Self {
            hi: key.0,
            lo: (u64::from(key.1) << 32) | u64::from(dossier_id),
            hash_present: (row_hash & !1) | u64::from(present),
        }
    }

    /// The hash of the source id.
    pub(crate) fn key(&self) -> IdKey {
        (self.hi, (self.lo >> 32) as u32)
    }

    /// The order entries are kept in: by id hash, then row id.
    pub(crate) fn order(&self) -> (u64, u64) {
        (self.hi, self.lo)
    }

    /// The row id of the dossier.
    pub(crate) fn dossier_id(&self) -> i64 {
        i64::from(self.lo as u32)
    }

    /// Whether the dossier was in the latest snapshot.
    pub(crate) fn present(&self) -> bool {
        self.hash_present & 1 == 1
    }

    /// Whether `hash` is the stored raw hash (63 bits compared).
    pub(crate) fn same_hash(&self, hash: u64) -> bool {
        self.hash_present >> 1 == hash >> 1
    }

    /// Records a new reading of the dossier.
    pub(crate) fn set(&mut self, row_hash: u64, present: bool) {
        self.hash_present = (row_hash & !1) | u64::from(present);
    }

    /// Records that the dossier left its source.
    pub(crate) fn set_absent(&mut self) {
        self.hash_present &= !1;
    }
}

/// The row id as an entry holds it.
///
/// # Errors
/// Beyond the 4 billion dossiers an entry can name.
pub(crate) fn entry_row(dossier_id: i64) -> Result<u32> {
    u32::try_from(dossier_id).map_err(|_| {
        StoreError::Corrupt(format!(
            "dossier row id {dossier_id} is beyond the 4 billion dossiers an index can hold"
        ))
    })
}

/// How many entries a connector has.
pub(super) fn count(conn: &Connection, connector: &str) -> Result<usize> {
    let bytes: i64 = conn
        .prepare_cached(
            "SELECT coalesce(sum(length(entries)), 0) FROM change_index WHERE connector = ?1",
        )?
        .query_row([connector], |r| r.get(0))?;
    Ok(bytes as usize / ENTRY_BYTES)
}

/// Calls `f` with every stored entry of a connector, in stored order.
pub(super) fn read(conn: &Connection, connector: &str, mut f: impl FnMut(Entry)) -> Result<()> {
    let mut stmt = conn.prepare_cached(
        "SELECT part, entries FROM change_index WHERE connector = ?1 ORDER BY part",
    )?;
    let mut rows = stmt.query([connector])?;
    while let Some(row) = rows.next()? {
        let bytes = whole_entries(row, ENTRY_BYTES, |part| {
            format!("change index of connector {connector}, part {part}")
        })?;
        for e in bytes.chunks_exact(ENTRY_BYTES) {
            let word =
                |i: usize| u64::from_le_bytes(e[i * 8..i * 8 + 8].try_into().expect("8 bytes"));
            f(Entry {
                hi: word(0),
                lo: word(1),
                hash_present: word(2),
            });
        }
    }
    Ok(())
}

/// The blob of a stored part (column 1 of `row`, its number in column 0), checked
/// to hold whole entries of `size` bytes; `what` names the part from its number.
pub(super) fn whole_entries<'r>(
    row: &'r rusqlite::Row<'_>,
    size: usize,
    what: impl FnOnce(i64) -> String,
) -> Result<&'r [u8]> {
    let bytes = row.get_ref(1)?.as_blob()?;
    if bytes.len() % size != 0 {
        return Err(StoreError::Corrupt(format!(
            "{}: {} bytes, not a whole number of entries",
            what(row.get(0)?),
            bytes.len()
        )));
    }
    Ok(bytes)
}

/// The row ids of the dossiers, of any connector, whose id hash is `key`.
pub(super) fn rows_with_key(conn: &Connection, key: IdKey) -> Result<Vec<i64>> {
    let mut connectors = Vec::new();
    {
        let mut stmt = conn.prepare_cached("SELECT DISTINCT connector FROM change_index")?;
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            connectors.push(row.get::<_, String>(0)?);
        }
    }
    let mut found = Vec::new();
    for connector in connectors {
        read(conn, &connector, |e| {
            if e.key() == key {
                found.push(e.dossier_id());
            }
        })?;
    }
    Ok(found)
}

/// Replaces the stored entries of a connector, written part by part as they come.
pub(super) fn write(
    tx: &Transaction<'_>,
    connector: &str,
    entries: impl IntoIterator<Item = Entry>,
) -> Result<()> {
    tx.prepare_cached("DELETE FROM change_index WHERE connector = ?1")?
        .execute([connector])?;
    let mut insert = tx.prepare_cached(
        "INSERT INTO change_index (connector, part, entries) VALUES (?1, ?2, ?3)",
    )?;
    let mut entries = entries.into_iter().peekable();
    let mut bytes = Vec::new();
    let mut part = 0i64;
    while entries.peek().is_some() {
        bytes.clear();
        for e in entries.by_ref().take(PART_ENTRIES) {
            bytes.extend_from_slice(&e.hi.to_le_bytes());
            bytes.extend_from_slice(&e.lo.to_le_bytes());
            bytes.extend_from_slice(&e.hash_present.to_le_bytes());
        }
        insert.execute(params![connector, part, bytes])?;
        part += 1;
    }
    Ok(())
}

/// Migration 0010: the rows of `dossier_state` become each connector's stored entries.
pub(super) fn migrate_0010(tx: &Transaction<'_>) -> rusqlite_migration::HookResult {
    let mut by_connector: std::collections::BTreeMap<String, Vec<Entry>> = Default::default();
    {
        let mut stmt = tx.prepare(
            "SELECT connector, id_hash, id_check, dossier_id, row_hash, present
             FROM dossier_state ORDER BY connector, dossier_id",
        )?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            let row = entry_row(r.get(3)?)?;
            by_connector.entry(r.get(0)?).or_default().push(Entry::new(
                (r.get::<_, i64>(1)? as u64, r.get::<_, i64>(2)? as u32),
                row,
                r.get::<_, i64>(4)? as u64,
                r.get(5)?,
            ));
        }
    }
    for (connector, entries) in &by_connector {
        write(tx, connector, entries.iter().copied())?;
    }
    tx.execute_batch("DROP TABLE dossier_state;")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn tx_test(f: impl FnOnce(&Transaction<'_>)) {
        let mut conn = rusqlite::Connection::open_in_memory().expect("in-memory database");
        conn.execute_batch(
            "CREATE TABLE change_index (connector TEXT NOT NULL, part INTEGER NOT NULL,
                 entries BLOB NOT NULL, PRIMARY KEY (connector, part));",
        )
        .expect("schema");
        let tx = conn.transaction().expect("transaction");
        f(&tx);
    }

    proptest! {
        #[test]
        fn entries_come_back_as_written(
            raw in proptest::collection::vec((any::<u64>(), any::<u32>(), any::<u32>(), any::<u64>(), any::<bool>()), 0..200),
            other in 0usize..5,
        ) {
            let entries: Vec<Entry> = raw
                .iter()
                .map(|&(hi, mid, row, hash, present)| Entry::new((hi, mid), row, hash, present))
                .collect();
            tx_test(|tx| {
                write(tx, "other", entries[..other.min(entries.len())].iter().copied()).unwrap();
                write(tx, "p", entries.iter().copied()).unwrap();
                let mut back = Vec::new();
                read(tx, "p", |e| back.push(e)).unwrap();
                assert_eq!(back, entries);
                assert_eq!(count(tx, "p").unwrap(), entries.len());
                assert_eq!(count(tx, "other").unwrap(), other.min(entries.len()));
            });
        }
    }

    #[test]
    fn many_parts_and_rewrites_keep_only_the_latest() {
        let entries: Vec<Entry> = (0..(2 * PART_ENTRIES as u32 + 7))
            .map(|i| Entry::new((u64::from(i) * 7919, i), i, u64::from(i), i % 3 != 0))
            .collect();
        tx_test(|tx| {
            write(tx, "p", entries.iter().copied()).unwrap();
            let parts: i64 = tx
                .query_row("SELECT count(*) FROM change_index", [], |r| r.get(0))
                .unwrap();
            assert_eq!(parts, 3);
            write(tx, "p", entries[..10].iter().copied()).unwrap();
            let mut back = Vec::new();
            read(tx, "p", |e| back.push(e)).unwrap();
            assert_eq!(back, &entries[..10]);
        });
    }

    #[test]
    fn a_cut_part_is_reported() {
        tx_test(|tx| {
            tx.execute("INSERT INTO change_index VALUES ('p', 0, x'0102')", [])
                .unwrap();
            let error = read(tx, "p", |_| {}).unwrap_err().to_string();
            assert!(error.contains("connector p, part 0: 2 bytes"), "{error}");
        });
    }

    #[test]
    fn an_entry_keeps_its_fields_apart() {
        let mut e = Entry::new((1, 2), 3, 0xff, true);
        assert_eq!((e.key(), e.dossier_id(), e.present()), ((1, 2), 3, true));
        assert!(e.same_hash(0xfe) && !e.same_hash(0x1fe));
        e.set_absent();
        assert!(!e.present() && e.same_hash(0xff));
        e.set(0x10, true);
        assert!(e.present() && e.same_hash(0x10));
    }
}
