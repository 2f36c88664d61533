//! The parser thread's side of an import: each record of a table read, hashed,
//! looked up in the index, and mapped (only when its raw hash changed) into the
//! items the store's side applies.

use super::*;

/// Where the stored state of a dossier read again is.
#[derive(Clone, Copy)]
pub(super) enum Slot {
    /// In the index, at this position.
    Stored(usize),
    /// Among the dossiers this import created, at this position.
    Added(usize),
}

/// What the parser sends to the store.
pub(super) enum Item {
    Changed {
        line: u64,
        mapped: Mapped,
        /// The id's hash.
        key: IdKey,
        /// The stored form of the fields.
        fields: Vec<u8>,
        row_hash: u64,
        /// Where the stored dossier with this id is in the index.
        at: Option<usize>,
        /// Messages about it on the source.
        messages: Vec<crate::model::SourceMessage>,
    },
    Rejected {
        line: u64,
        number: u64,
        id: Option<String>,
        issues: Vec<FieldIssue>,
    },
    Duplicate {
        line: u64,
        first_line: u64,
        /// The id, or its hash when the store must say which id it was.
        id: Result<String, IdKey>,
    },
}

/// What the parser learnt from the whole file.
pub(super) struct Parsed {
    pub(super) rows: u64,
    pub(super) unchanged: u64,
    pub(super) seen: Vec<u32>,
    /// Mapped columns that no record had (refusal reasons).
    pub(super) vanished: Vec<String>,
    /// The dossiers the source said were deleted.
    pub(super) deleted: Vec<model::SourceDeletion>,
    /// Whether an incremental source read every dossier this time.
    pub(super) full_snapshot: bool,
    /// Where the source's synchronisation ends.
    pub(super) cursor: Option<String>,
}

/// Hash of a raw record, volatile columns left out; `seed` is the connector's fingerprint.
pub(super) fn row_hash(
    seed: u64,
    record: &Record<'_>,
    width: usize,
    volatile: &[usize],
    buf: &mut Vec<u8>,
) -> u64 {
    buf.clear();
    for (i, field) in record.fields.iter().take(width).enumerate() {
        if !volatile.contains(&i) {
            buf.extend_from_slice(field);
            buf.push(0x1f);
        }
    }
    xxh3_64_with_seed(buf, seed)
}

/// Reads a whole file on the calling thread, sending what changed to `send`.
pub(super) fn parse(
    connector: &Connector,
    mut file: Table,
    index: &Index,
    encoder: &FieldEncoder,
    tz: chrono_tz::Tz,
    progress: impl Fn(u64),
    send: impl Fn(Vec<Item>) -> bool,
) -> Result<Parsed, String> {
    let resolved = file.resolve(&connector.mapping)?;
    let width = file.headers().len();
    let volatile = file.volatile_columns(&connector.volatile);
    // The line where each stored id was seen (0: not seen), to name both lines of a duplicate.
    let mut seen = vec![0u32; index.entries.len()];
    // Ids not stored yet, and their line: sorted at the end, they show the ids that
    // appear twice (the store has no unique index on ids: this is it). 16 bytes a
    // record, where a hash map would take three times as much.
    let mut new_ids: Vec<(IdKey, u32)> = Vec::new();
    // An API may send a dossier twice in one synchronisation (DS moves a dossier
    // updated meanwhile to the end of its list): the later copy is newer and
    // replaces the earlier. In a file, an id twice is a broken export.
    let repeats_replace = file.is_api();
    let (mut rows, mut unchanged) = (0u64, 0u64);
    let mut batch = Vec::with_capacity(BATCH);
    let mut buf = Vec::with_capacity(1024);
    let shown = file.path().display().to_string();
    let headers = file.headers().to_vec();
    while let Some(mut record) = file.next_record()? {
        rows += 1;
        // The read budget: whole records are measured, fields only past it.
        if record.fields.as_slice().len() > budget::MAX_FIELD_BYTES {
            budget::check_fields(&shown, record.line, record.fields.iter().enumerate(), |i| {
                headers
                    .get(i)
                    .cloned()
                    .unwrap_or_else(|| format!("column {}", i + 1))
            })?;
        }
        if rows > budget::MAX_RECORDS {
            return Err(format!(
                "{shown}: more than {} records, past the read budget of a snapshot; nothing was applied",
                budget::MAX_RECORDS
            ));
        }
        let messages = std::mem::take(&mut record.messages);
        let get = |i: usize| record.get(i);
        let fields = record.fields;
        let id = resolved.id(&get);
        // Whatever happens to the record, a known id is seen: a dossier whose line
        // is rejected keeps its last known state rather than disappearing.
        let mut known: Option<usize> = None;
        // Sent again in this import (an API): the store may hold the earlier copy.
        let mut repeated = false;
        let key = id.as_deref().map(id_key);
        if let (Some(id), Some(key)) = (&id, key) {
            let line = u32::try_from(record.line).unwrap_or(u32::MAX).max(1);
            match index.find(key) {
                Some(i) if seen[i] != 0 && !repeats_replace => {
                    batch.push(Item::Duplicate {
                        line: record.line,
                        first_line: u64::from(seen[i]),
                        id: Ok(id.clone().into_owned()),
                    });
                    continue;
                }
                Some(i) => {
                    repeated = seen[i] != 0;
                    seen[i] = line;
                    known = Some(i);
                }
                None => new_ids.push((key, line)),
            }
        }
        if fields.len() < width
            || fields
                .iter()
                .skip(width)
                .any(|f| !f.trim_ascii().is_empty())
        {
            batch.push(Item::Rejected {
                line: record.line,
                number: record.number,
                id: id.map(|c| c.into_owned()),
                issues: vec![FieldIssue {
                    field: String::new(),
                    reason: format!(
                        "the record has {} fields but the header has {width} (a cut line, or a stray delimiter?)",
                        fields.len()
                    ),
                }],
            });
        } else {
            let mut hash = row_hash(connector.fingerprint, &record, width, &volatile, &mut buf);
            // A new message changes the record, though no field did.
            for m in &messages {
                hash = xxh3_64_with_seed(m.id.as_bytes(), hash);
            }
            // Unchanged since the last import, unless an earlier copy in this one changed it.
            if !repeated
                && known.is_some_and(|i| {
                    let e = &index.entries[i];
                    e.same_hash(hash) && e.present()
                })
            {
                unchanged += 1;
                continue;
            }
            let text = record.text();
            batch.push(match resolved.map(|i| text.get(i), tz) {
                Ok(mapped) => Item::Changed {
                    line: record.line,
                    fields: encoder.encode(&mapped.dossier.fields)?,
                    key: key.unwrap_or_default(),
                    mapped,
                    row_hash: hash,
                    at: known,
                    messages,
                },
                Err(issues) => Item::Rejected {
                    line: record.line,
                    number: record.number,
                    id: id.map(|c| c.into_owned()),
                    issues,
                },
            });
        }
        if batch.len() >= BATCH {
            progress(record.offset);
            if !send(std::mem::replace(&mut batch, Vec::with_capacity(BATCH))) {
                return Err("the import was interrupted".to_owned());
            }
        }
    }
    if repeats_replace {
        new_ids.clear();
    }
    // In order of id hash, then of line: each id's first line comes first.
    sort_by_hash(&mut new_ids, |(key, _)| key.0, |&item| item);
    let mut first = 0;
    for (i, &(key, line)) in new_ids.iter().enumerate().skip(1) {
        if key == new_ids[first].0 {
            batch.push(Item::Duplicate {
                line: u64::from(line),
                first_line: u64::from(new_ids[first].1),
                id: Err(key),
            });
        } else {
            first = i;
        }
    }
    if !batch.is_empty() && !send(batch) {
        return Err("the import was interrupted".to_owned());
    }
    Ok(Parsed {
        rows,
        unchanged,
        seen,
        vanished: file.vanished(&connector.mapping),
        deleted: file.deleted().to_vec(),
        full_snapshot: file.full_snapshot(),
        cursor: file.cursor(),
    })
}
