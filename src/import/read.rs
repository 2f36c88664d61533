//! Stage 1, read and map, on the reader's thread: each record of the table is
//! hashed, sighted in the stored index (the first look of stage 2, which passes
//! over a record whose raw hash did not change without mapping it), and mapped
//! into a [`Read`]: a dossier, a rejected record, or an id seen twice. Nothing
//! here is encoded for storage; [`Encoded`] is the stored form of the fields
//! that stage 4 writes, made on this thread so that the store's thread only
//! writes.

use super::*;

/// What stage 1 makes of one record that needs the store's attention.
pub(super) enum Read {
    /// A dossier whose raw record changed, or a new one: mapped.
    Dossier(ReadDossier),
    /// A record that cannot be used, with why.
    Rejected(RejectedRecord),
    /// An id seen twice in the snapshot.
    Duplicate(DuplicateId),
}

/// A record mapped into a dossier, with what stage 2 needs to find its stored state.
pub(super) struct ReadDossier {
    pub(super) line: u64,
    pub(super) mapped: Mapped,
    /// The id's hash.
    pub(super) key: IdKey,
    /// The hash of the raw record (and of its messages).
    pub(super) row_hash: u64,
    /// Where the stored dossier with this id is in the index.
    pub(super) at: Option<usize>,
    /// Messages about it on the source.
    pub(super) messages: Vec<model::SourceMessage>,
}

/// A record that cannot be used.
pub(super) struct RejectedRecord {
    pub(super) line: u64,
    pub(super) number: u64,
    pub(super) id: Option<String>,
    pub(super) issues: Vec<FieldIssue>,
}

/// A record whose id an earlier record of the snapshot had.
pub(super) struct DuplicateId {
    pub(super) line: u64,
    pub(super) first_line: u64,
    /// The id, or its hash when the store must say which id it was.
    pub(super) id: Result<String, IdKey>,
}

/// What the store's thread receives: a [`Read`], a dossier's with the stored
/// form of its fields ([`FieldEncoder`]).
pub(super) enum Encoded {
    Dossier(ReadDossier, Vec<u8>),
    Rejected(RejectedRecord),
    Duplicate(DuplicateId),
}

impl Encoded {
    /// Encodes the fields of a dossier read, for stage 4.
    fn of(read: Read, encoder: &FieldEncoder) -> Result<Self, String> {
        Ok(match read {
            Read::Dossier(d) => {
                let fields = encoder.encode(&d.mapped.dossier.fields)?;
                Self::Dossier(d, fields)
            }
            Read::Rejected(r) => Self::Rejected(r),
            Read::Duplicate(d) => Self::Duplicate(d),
        })
    }
}

/// What stage 1 learnt from the whole table, once read.
pub(super) struct ReadEnd {
    pub(super) rows: u64,
    /// Records whose raw hash did not change: not even mapped.
    pub(super) unchanged: u64,
    /// The line where each stored dossier was seen, by index position (0: not seen).
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

/// Stage 1 over a whole table, on the calling thread: every record that needs
/// the store is encoded and sent to `send` in batches.
pub(super) fn read(
    connector: &Connector,
    mut table: Table,
    index: &Index,
    encoder: &FieldEncoder,
    tz: chrono_tz::Tz,
    progress: impl Fn(u64),
    send: impl Fn(Vec<Encoded>) -> bool,
) -> Result<ReadEnd, String> {
    let resolved = table.resolve(&connector.mapping)?;
    let mut reader = Reader {
        connector,
        index,
        width: table.headers().len(),
        volatile: table.volatile_columns(&connector.volatile),
        headers: table.headers().to_vec(),
        shown: table.path().display().to_string(),
        sightings: Sightings::new(index, table.is_api()),
        rows: 0,
        unchanged: 0,
        buf: Vec::with_capacity(1024),
    };
    let interrupted = || "the import was interrupted".to_owned();
    let mut batch = Vec::with_capacity(BATCH);
    while let Some(record) = table.next_record()? {
        let offset = record.offset;
        let Some(read) = reader.record(record, &resolved, tz)? else {
            continue;
        };
        batch.push(Encoded::of(read, encoder)?);
        if batch.len() >= BATCH {
            progress(offset);
            if !send(std::mem::replace(&mut batch, Vec::with_capacity(BATCH))) {
                return Err(interrupted());
            }
        }
    }
    let (seen, duplicates) = reader.sightings.end();
    batch.extend(duplicates.into_iter().map(Encoded::Duplicate));
    if !batch.is_empty() && !send(batch) {
        return Err(interrupted());
    }
    Ok(ReadEnd {
        rows: reader.rows,
        unchanged: reader.unchanged,
        seen,
        vanished: table.vanished(&connector.mapping),
        deleted: table.deleted().to_vec(),
        full_snapshot: table.full_snapshot(),
        cursor: table.cursor(),
    })
}

/// Stage 1's state while a table streams through.
struct Reader<'a> {
    connector: &'a Connector,
    index: &'a Index,
    /// How many fields the header has.
    width: usize,
    /// The columns left out of the raw hash.
    volatile: Vec<usize>,
    headers: Vec<String>,
    /// The file, as reasons name it.
    shown: String,
    /// Which stored ids the snapshot holds, and which new ones.
    sightings: Sightings,
    rows: u64,
    unchanged: u64,
    /// The raw record's bytes, hashed.
    buf: Vec<u8>,
}

impl Reader<'_> {
    /// One record: `None` when the store needs nothing of it (its raw hash is unchanged).
    fn record(
        &mut self,
        mut record: Record<'_>,
        resolved: &Resolved<'_>,
        tz: chrono_tz::Tz,
    ) -> Result<Option<Read>, String> {
        self.rows += 1;
        self.check_budget(&record)?;
        let messages = std::mem::take(&mut record.messages);
        let get = |i: usize| record.get(i);
        let id = resolved.id(&get);
        let key = id.as_deref().map(id_key);
        // Whatever happens to the record, a known id is seen: a dossier whose line
        // is rejected keeps its last known state rather than disappearing.
        let sighting = match key {
            Some(key) => self.sightings.sight(self.index, key, record.line),
            None => Sighting::New,
        };
        let (known, repeated) = match sighting {
            Sighting::Duplicate { first_line } => {
                return Ok(Some(Read::Duplicate(DuplicateId {
                    line: record.line,
                    first_line,
                    id: Ok(id.unwrap_or_default().into_owned()),
                })));
            }
            Sighting::Known { at, repeated } => (Some(at), repeated),
            Sighting::New => (None, false),
        };
        let fields = record.fields;
        let rejected = |issues| {
            Read::Rejected(RejectedRecord {
                line: record.line,
                number: record.number,
                id: id.as_deref().map(str::to_owned),
                issues,
            })
        };
        if let Some(reason) = self.misshapen(fields) {
            let issue = FieldIssue {
                field: String::new(),
                reason,
            };
            return Ok(Some(rejected(vec![issue])));
        }
        let mut hash = row_hash(
            self.connector.fingerprint,
            &record,
            self.width,
            &self.volatile,
            &mut self.buf,
        );
        // A new message changes the record, though no field did.
        for m in &messages {
            hash = xxh3_64_with_seed(m.id.as_bytes(), hash);
        }
        if known.is_some_and(|at| !repeated && self.index.unchanged(at, hash)) {
            self.unchanged += 1;
            return Ok(None);
        }
        let text = record.text();
        Ok(Some(match resolved.map(|i| text.get(i), tz) {
            Ok(mapped) => Read::Dossier(ReadDossier {
                line: record.line,
                mapped,
                key: key.unwrap_or_default(),
                row_hash: hash,
                at: known,
                messages,
            }),
            Err(issues) => rejected(issues),
        }))
    }

    /// The read budget: whole records are measured, fields only past it.
    fn check_budget(&self, record: &Record<'_>) -> Result<(), String> {
        if record.fields.as_slice().len() > budget::MAX_FIELD_BYTES {
            let headers = &self.headers;
            budget::check_fields(
                &self.shown,
                record.line,
                record.fields.iter().enumerate(),
                |i| {
                    headers
                        .get(i)
                        .cloned()
                        .unwrap_or_else(|| format!("column {}", i + 1))
                },
            )?;
        }
        if self.rows > budget::MAX_RECORDS {
            return Err(format!(
                "{}: more than {} records, past the read budget of a snapshot; nothing was applied",
                self.shown,
                budget::MAX_RECORDS
            ));
        }
        Ok(())
    }

    /// Why a record does not have the header's shape, if it does not.
    fn misshapen(&self, fields: &::csv::ByteRecord) -> Option<String> {
        let width = self.width;
        (fields.len() < width
            || fields
                .iter()
                .skip(width)
                .any(|f| !f.trim_ascii().is_empty()))
        .then(|| {
            format!(
                "the record has {} fields but the header has {width} (a cut line, or a stray delimiter?)",
                fields.len()
            )
        })
    }
}
