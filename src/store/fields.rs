//! The stored form of a dossier's fields and of its id.
//!
//! Owns the `field_names` dictionary and the compact encoding of the `dossiers.fields`
//! column: a format byte, then for each field the id of its name and the length of
//! its value (LEB128 varints) and the value's UTF-8 bytes. A name is stored once in
//! the dictionary rather than in every row (as JSON keys, names took more room than
//! values). `scheme`, a column of its own, is not repeated in the blob.
//!
//! A value is written as its canonical text (`26956.00`, `2024-03-12`), the
//! bytes every version has written, and read back typed by its field's kind:
//! the canonical fields' kinds are known here; an extra field's kind is its
//! connector's, so it reads back as text, which compares and shows the same
//! (see [`Value::same`]).
//!
//! Also owns the hash of a source id that the change-detection state keeps.

use std::cell::RefCell;
use std::collections::BTreeMap;

use rusqlite::Connection;
use xxhash_rust::xxh3::xxh3_128;

use super::{Result, StoreError};
use crate::model::{FieldKind, FieldName, Fields, Value};

/// The first byte of every encoded blob.
const FORMAT: u8 = 1;

/// The canonical field kept in its own column.
const SCHEME: &str = "scheme";

/// The 96-bit hash of a source id, as (first 64 bits, next 32 bits).
pub(crate) type IdKey = (u64, u32);

/// Hashes a source id the way the change-detection state stores it.
pub(crate) fn id_key(id: &str) -> IdKey {
    let h = xxh3_128(id.as_bytes());
    ((h >> 64) as u64, (h >> 32) as u32)
}

/// The dictionary as this connection last read it. Ids are never reused nor
/// renamed once committed, so the cache can only miss names: it reloads then.
#[derive(Debug, Default)]
pub(super) struct Names {
    by_id: Vec<Option<(FieldName, FieldKind)>>,
}

impl Names {
    /// Forgets everything (after a rolled-back import that may have named fields).
    pub(super) fn clear(&mut self) {
        self.by_id.clear();
    }

    fn reload(&mut self, conn: &Connection) -> Result<()> {
        self.by_id.clear();
        let mut stmt = conn.prepare_cached("SELECT id, name FROM field_names")?;
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            let id = usize::try_from(row.get::<_, i64>(0)?)
                .map_err(|_| StoreError::Corrupt("negative field name id".to_owned()))?;
            if self.by_id.len() <= id {
                self.by_id.resize(id + 1, None);
            }
            let name: String = row.get(1)?;
            let kind = crate::model::field(&name).map_or(FieldKind::Text, |f| f.kind);
            self.by_id[id] = Some((FieldName::from(name), kind));
        }
        Ok(())
    }

    /// The name of id `id` and the kind of its values.
    fn name(&mut self, conn: &Connection, id: u64) -> Result<&(FieldName, FieldKind)> {
        let id = usize::try_from(id).unwrap_or(usize::MAX);
        if self.by_id.get(id).is_none_or(Option::is_none) {
            self.reload(conn)?;
        }
        self.by_id.get(id).and_then(Option::as_ref).ok_or_else(|| {
            StoreError::Corrupt(format!("dossier fields: unknown field name id {id}"))
        })
    }
}

/// Encodes fields with the dictionary ids of an import (see `ImportTx::field_encoder`).
#[derive(Debug, Clone, Default)]
pub(crate) struct FieldEncoder {
    /// Names and their ids, sorted by name like the fields of a dossier, so that
    /// encoding walks both in step.
    ids: Vec<(String, u64)>,
}

impl FieldEncoder {
    /// The stored form of `fields`.
    ///
    /// # Errors
    /// When a field's name was not registered (a bug: every mapped name is).
    pub(crate) fn encode(&self, fields: &Fields) -> std::result::Result<Vec<u8>, String> {
        let mut out = Vec::with_capacity(1 + fields.len() * 16);
        out.push(FORMAT);
        let mut ids = self.ids.iter();
        for (name, value) in fields.iter() {
            let name = &**name;
            if name == SCHEME {
                continue;
            }
            // Both sorted by name: one walk, the lengths compared first.
            let id = ids
                .find(|(n, _)| n.len() == name.len() && n == name)
                .map(|(_, id)| *id)
                .ok_or_else(|| format!("the field '{name}' has no stored name"))?;
            push_varint(&mut out, id);
            value.with_text(|text| {
                push_varint(&mut out, text.len() as u64);
                out.extend_from_slice(text.as_bytes());
            });
        }
        Ok(out)
    }
}

/// Gives every name in `names` a dictionary id (inside the caller's transaction)
/// and returns an encoder for them.
pub(super) fn register<'n>(
    conn: &Connection,
    names: impl IntoIterator<Item = &'n str>,
) -> Result<FieldEncoder> {
    let mut ids: BTreeMap<String, u64> = BTreeMap::new();
    let mut select = conn.prepare_cached("SELECT id FROM field_names WHERE name = ?1")?;
    let mut insert = conn.prepare_cached("INSERT INTO field_names (name) VALUES (?1)")?;
    for name in names {
        if ids.contains_key(name) {
            continue;
        }
        let id: i64 = match select.query_row([name], |r| r.get(0)) {
            Ok(id) => id,
            Err(rusqlite::Error::QueryReturnedNoRows) => {
                insert.execute([name])?;
                conn.last_insert_rowid()
            }
            Err(e) => return Err(e.into()),
        };
        ids.insert(name.to_owned(), id as u64);
    }
    Ok(FieldEncoder {
        ids: ids.into_iter().collect(),
    })
}

/// Reads stored fields back, typed; `scheme` is the column's value.
pub(super) fn decode(
    blob: &[u8],
    scheme: Option<String>,
    names: &RefCell<Names>,
    conn: &Connection,
) -> Result<Fields> {
    let corrupt = |what: &str| StoreError::Corrupt(format!("dossier fields: {what}"));
    let mut fields = Vec::new();
    let Some((&format, mut rest)) = blob.split_first() else {
        return Err(corrupt("empty value"));
    };
    if format != FORMAT {
        return Err(corrupt(&format!("unknown format {format}")));
    }
    let mut names = names.borrow_mut();
    while !rest.is_empty() {
        let id = take_varint(&mut rest).ok_or_else(|| corrupt("truncated name id"))?;
        let len = take_varint(&mut rest).ok_or_else(|| corrupt("truncated length"))?;
        let len = usize::try_from(len).unwrap_or(usize::MAX);
        if len > rest.len() {
            return Err(corrupt("truncated value"));
        }
        let (value, after) = rest.split_at(len);
        rest = after;
        let value = std::str::from_utf8(value).map_err(|_| corrupt("a value is not UTF-8"))?;
        let (name, kind) = names.name(conn, id)?;
        fields.push((name.clone(), Value::from_text(*kind, value)));
    }
    // Written in name order: sorting is a check, unless a name was repeated.
    if !fields.windows(2).all(|w| w[0].0 < w[1].0) {
        fields.sort_by(|a, b| a.0.cmp(&b.0));
        fields.dedup_by(|later, earlier| later.0 == earlier.0);
    }
    let mut fields = Fields::from_sorted(fields);
    if let Some(scheme) = scheme {
        fields.insert(SCHEME, Value::Text(scheme));
    }
    Ok(fields)
}

/// A stored blob without the fields whose name ids are in `drop`, and how many
/// were dropped. A blob that cannot be read is kept as it is.
pub(super) fn strip(blob: &[u8], drop: &[u64]) -> (Vec<u8>, u64) {
    let mut out = Vec::with_capacity(blob.len());
    let Some((&FORMAT, mut rest)) = blob.split_first() else {
        return (blob.to_vec(), 0);
    };
    out.push(FORMAT);
    let mut dropped = 0;
    while !rest.is_empty() {
        let before = rest;
        let (Some(id), Some(len)) = (take_varint(&mut rest), take_varint(&mut rest)) else {
            return (blob.to_vec(), 0);
        };
        let len = usize::try_from(len).unwrap_or(usize::MAX);
        if len > rest.len() {
            return (blob.to_vec(), 0);
        }
        let header = before.len() - rest.len();
        rest = &rest[len..];
        if drop.contains(&id) {
            dropped += 1;
        } else {
            out.extend_from_slice(&before[..header + len]);
        }
    }
    (out, dropped)
}

/// The values of the fields whose name ids are `wanted`, read from a stored
/// blob without decoding the rest: `out[i]` is the value of `wanted[i]`, if any.
/// A blob that cannot be read gives no value (`decode` reports it).
pub(super) fn pick<'b>(blob: &'b [u8], wanted: &[u64], out: &mut [Option<&'b str>]) {
    out.fill(None);
    let Some((&FORMAT, mut rest)) = blob.split_first() else {
        return;
    };
    while !rest.is_empty() {
        let (Some(id), Some(len)) = (take_varint(&mut rest), take_varint(&mut rest)) else {
            return;
        };
        let len = usize::try_from(len).unwrap_or(usize::MAX);
        if len > rest.len() {
            return;
        }
        let (value, after) = rest.split_at(len);
        rest = after;
        if let Some(i) = wanted.iter().position(|&w| w == id) {
            out[i] = std::str::from_utf8(value).ok();
        }
    }
}

fn push_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn take_varint(bytes: &mut &[u8]) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let (&b, rest) = bytes.split_first()?;
        *bytes = rest;
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

/// Migration 0005: JSON fields become the compact encoding, and the
/// change-detection state moves from `dossier_keys` (keyed by source id) to
/// `dossier_state` (keyed by dossier row, with the id's hash).
pub(super) fn migrate_0005(tx: &rusqlite::Transaction<'_>) -> rusqlite_migration::HookResult {
    let mut rows: Vec<(i64, String)> = Vec::new();
    {
        let mut stmt = tx.prepare("SELECT id, fields FROM dossiers")?;
        let mut query = stmt.query([])?;
        while let Some(row) = query.next()? {
            rows.push((row.get(0)?, row.get(1)?));
        }
    }
    let mut parsed = Vec::with_capacity(rows.len());
    for (id, json) in rows {
        let fields: BTreeMap<String, String> = serde_json::from_str(&json).map_err(|e| {
            rusqlite_migration::HookError::Hook(format!("dossier {id}: fields: {e}"))
        })?;
        // As text: the bytes stored are the bytes the JSON held.
        let fields = Fields::from_pairs(
            fields
                .into_iter()
                .map(|(name, text)| (FieldName::from(name), Value::Text(text))),
        );
        parsed.push((id, fields));
    }
    let encoder = register(tx, parsed.iter().flat_map(|(_, f)| f.names()))?;
    {
        let mut update = tx.prepare("UPDATE dossiers SET fields = ?2 WHERE id = ?1")?;
        for (id, fields) in &parsed {
            let blob = encoder
                .encode(fields)
                .map_err(rusqlite_migration::HookError::Hook)?;
            update.execute(rusqlite::params![id, blob])?;
        }
    }
    {
        let mut keys: Vec<(String, i64, String, i64, bool)> = Vec::new();
        let mut stmt = tx.prepare(
            "SELECT connector, dossier_id, source_id, row_hash, present FROM dossier_keys",
        )?;
        let mut query = stmt.query([])?;
        while let Some(row) = query.next()? {
            keys.push((
                row.get(0)?,
                row.get(1)?,
                row.get(2)?,
                row.get(3)?,
                row.get(4)?,
            ));
        }
        let mut insert = tx.prepare(
            "INSERT INTO dossier_state (connector, dossier_id, id_hash, id_check, row_hash, present)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?;
        for (connector, dossier_id, source_id, row_hash, present) in keys {
            let (hash, check) = id_key(&source_id);
            insert.execute(rusqlite::params![
                connector,
                dossier_id,
                hash as i64,
                i64::from(check),
                row_hash,
                present
            ])?;
        }
    }
    tx.execute_batch("DROP TABLE dossier_keys;")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Fields of texts, typed as a mapping types them.
    fn typed(fields: &BTreeMap<String, String>) -> Fields {
        Fields::from_texts(fields.iter().map(|(n, v)| (n.as_str(), v.as_str())), |_| {
            FieldKind::Text
        })
    }

    fn store() -> Connection {
        let conn = Connection::open_in_memory().expect("in-memory database");
        conn.execute_batch(
            "CREATE TABLE field_names (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);",
        )
        .expect("schema");
        conn
    }

    proptest! {
        #[test]
        fn decode_reverses_encode(
            fields in proptest::collection::btree_map("[a-z_.]{1,12}", "\\PC{0,40}", 0..12),
        ) {
            let conn = store();
            let encoder = register(&conn, fields.keys().map(String::as_str)).expect("register");
            let blob = encoder.encode(&typed(&fields)).expect("encode");
            let scheme = fields.get(SCHEME).cloned();
            let names = RefCell::new(Names::default());
            prop_assert_eq!(decode(&blob, scheme, &names, &conn).expect("decode"), typed(&fields));
        }

        #[test]
        fn strip_leaves_exactly_the_other_fields(
            fields in proptest::collection::btree_map("[a-z_.]{1,12}", "\\PC{0,40}", 0..12),
            drop_every in 1usize..4,
        ) {
            let conn = store();
            let encoder = register(&conn, fields.keys().map(String::as_str)).expect("register");
            let blob = encoder.encode(&typed(&fields)).expect("encode");
            let names = RefCell::new(Names::default());
            // Drop every n-th field (by its name's id).
            let mut ids = Vec::new();
            let mut kept = fields.clone();
            for (i, name) in fields.keys().enumerate() {
                if i % drop_every == 0 {
                    let id: i64 = conn
                        .query_row("SELECT id FROM field_names WHERE name = ?1", [name], |r| r.get(0))
                        .expect("a registered name");
                    ids.push(id as u64);
                    kept.remove(name);
                }
            }
            let (stripped, dropped) = strip(&blob, &ids);
            prop_assert_eq!(dropped as usize, fields.len() - kept.len());
            let scheme = kept.get(SCHEME).cloned();
            prop_assert_eq!(decode(&stripped, scheme, &names, &conn).expect("decode"), typed(&kept));
        }
    }

    #[test]
    fn names_are_stored_once_and_not_in_the_value() {
        let conn = store();
        let fields: BTreeMap<String, String> = [
            ("beneficiary.email", "contact@asso.fr"),
            ("scheme", "Pass Rénovation"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let encoder = register(&conn, fields.keys().map(String::as_str)).expect("register");
        let again = register(&conn, ["scheme", "beneficiary.email"]).expect("register again");
        assert_eq!(encoder.ids, again.ids);
        let blob = encoder.encode(&typed(&fields)).expect("encode");
        assert_eq!(blob.len(), 1 + 2 + "contact@asso.fr".len());
    }

    /// A blob as every earlier version wrote it (canonical texts) reads back
    /// typed, and is written back byte for byte.
    #[test]
    fn a_stored_blob_reads_back_typed_and_unchanged() {
        let conn = store();
        let encoder = register(&conn, ["amount_granted", "extra.vote", "filed_on", "title"])
            .expect("register");
        let id = |name: &str| encoder.ids.iter().find(|(n, _)| n == name).unwrap().1 as u8;
        let mut blob = vec![FORMAT];
        for (name, text) in [
            ("amount_granted", "26956.40"),
            ("extra.vote", "2024-03-12"),
            ("filed_on", "2024-03-01"),
            ("title", "Toiture"),
        ] {
            blob.extend([id(name), text.len() as u8]);
            blob.extend_from_slice(text.as_bytes());
        }
        let names = RefCell::new(Names::default());
        let fields = decode(&blob, Some("Culture".to_owned()), &names, &conn).expect("decode");
        assert_eq!(
            fields.get("amount_granted"),
            Some(&Value::Amount(2_695_640))
        );
        assert_eq!(
            fields.get("filed_on").and_then(Value::date),
            chrono::NaiveDate::from_ymd_opt(2024, 3, 1)
        );
        // An extra field's kind is its connector's: text here, the same text.
        assert_eq!(
            fields.get("extra.vote"),
            Some(&Value::Text("2024-03-12".to_owned()))
        );
        assert_eq!(
            fields.get("scheme"),
            Some(&Value::Text("Culture".to_owned()))
        );
        assert_eq!(encoder.encode(&fields).expect("encode"), blob);
    }

    #[test]
    fn corrupt_values_are_reported() {
        let conn = store();
        let names = RefCell::new(Names::default());
        for (blob, reason) in [
            (&[][..], "empty value"),
            (&[9][..], "unknown format 9"),
            (&[FORMAT, 1, 5, b'a'][..], "truncated value"),
            (&[FORMAT, 0x80][..], "truncated name id"),
            (&[FORMAT, 7, 1, b'a'][..], "unknown field name id 7"),
        ] {
            let err = decode(blob, None, &names, &conn).expect_err("corrupt");
            assert!(err.to_string().contains(reason), "{err} lacks {reason}");
        }
    }

    #[test]
    fn an_unregistered_name_is_an_error_not_a_loss() {
        let conn = store();
        let encoder = register(&conn, ["title"]).expect("register");
        let fields = BTreeMap::from([("amount".to_owned(), "1".to_owned())]);
        assert!(
            encoder
                .encode(&typed(&fields))
                .unwrap_err()
                .contains("'amount'")
        );
    }

    #[test]
    fn migrations_0005_0010_and_0011_convert_stored_dossiers() {
        let dir = tempfile::tempdir().expect("temporary folder");
        let path = dir.path().join("state.db");
        let mut conn = Connection::open(&path).expect("database");
        rusqlite_migration::Migrations::new(
            super::super::migrate::MIGRATIONS[..4]
                .iter()
                .map(|(sql, _)| rusqlite_migration::M::up(sql))
                .collect(),
        )
        .to_latest(&mut conn)
        .expect("migrations 1 to 4");
        conn.execute_batch(
            r#"INSERT INTO runs (id, connector, source, fingerprint, started_at, finished_at, status, baseline)
                 VALUES (1, 'portail', 'a.csv', '0', '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z', 'applied', 1);
               INSERT INTO dossiers (id, connector, source_id, reference, scheme, step, status, step_entered_at, fields, first_run, last_run)
                 VALUES (7, 'portail', 'D1', 'REF-1', 'Pass Rénovation', 'depose', 'Déposé', '2026-01-01T00:00:00Z',
                         '{"reference":"REF-1","scheme":"Pass Rénovation","title":"Toiture"}', 1, 1);
               INSERT INTO dossier_keys (connector, source_id, dossier_id, row_hash, present)
                 VALUES ('portail', 'D1', 7, -5, 0);"#,
        )
        .expect("a version 4 state");
        drop(conn);
        let store = super::super::Store::open(&path, 8).expect("migrated");
        // By reference through the index migration 0011 filled, and by source id.
        for lookup in ["REF-1", "D1"] {
            let found = store.find_dossiers(lookup).expect("found");
            assert_eq!(found.len(), 1, "{lookup}");
            let d = &found[0];
            assert_eq!(d.rowid, 7);
            assert!(!d.present);
            assert_eq!(d.dossier.text("title"), Some("Toiture"));
            assert_eq!(d.dossier.text("scheme"), Some("Pass Rénovation"));
            assert_eq!(d.dossier.reference(), "REF-1");
        }
        // Migration 0010 then moved the state into the change index.
        let mut entries = Vec::new();
        super::super::index::read(&store.conn, "portail", |e| entries.push(e)).expect("index");
        assert_eq!(
            entries,
            [super::super::Entry::new(
                id_key("D1"),
                7,
                -5i64 as u64,
                false
            )]
        );
    }
}
