//! One import of one connector: read a snapshot, diff it with the store, apply it
//! whole or refuse it whole.
//!
//! Owns the import pipeline and its guards:
//!
//! ```text
//!  parser thread                              store (this thread, one transaction)
//!  file ─▶ records ─▶ id, raw hash ─▶ index ──changed/new/rejected──▶ diff ─▶ dossiers, events
//!                                  (unchanged: nothing sent)          guards ─▶ commit | rollback
//! ```
//!
//! Memory stays flat whatever the file size: records stream through, and the
//! only per-dossier state held is the compact `Index` (id hash → raw hash).
//! Records whose raw hash did not change are not even parsed.

use std::path::Path;
use std::sync::mpsc::sync_channel;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tracing::{debug, error, info, warn};
use xxhash_rust::xxh3::xxh3_64_with_seed;

use crate::alerting::Alerting;
use crate::connector::budget;
use crate::connector::folder::AfterImport;
use crate::connector::mapping::{FieldIssue, Mapped};
use crate::connector::spool::{self, ApiState, Spool};
use crate::connector::table::{FirstPass, Record, Table};
use crate::connector::{Connector, Mode, Origin};
use crate::diff::{self, Known};
use crate::model::{self, Event, EventKind};
use crate::rules::Rules;
use crate::store::{
    Counts, DossierWrite, Entry, FieldEncoder, IdKey, ImportTx, MAX_STORED_REJECTIONS, NewRun,
    Rejection, RunStatus, SeenFile, Store, StoreError, entry_row, id_key,
};

/// How many rejections a summary shows; all are stored with the run.
const SHOWN_REJECTIONS: usize = 20;
/// Records sent from the parser to the store at once.
const BATCH: usize = 512;

/// The statuses of a summary.
const STATUSES: &[&str] = &["applied", "refused", "skipped", "unchanged", "no_file"];

/// A summary's status, read back (a daemon's answer over the control socket).
fn known_status<'de, D: serde::Deserializer<'de>>(d: D) -> Result<&'static str, D::Error> {
    model::one_of(d, STATUSES)
}

/// The outcome of importing one file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Summary {
    /// The run recorded (for `skipped`, the earlier run that read the same content).
    pub run_id: Option<i64>,
    /// `applied`, `refused`, `unchanged`, `skipped` (or `no_file`).
    #[serde(deserialize_with = "known_status")]
    pub status: model::StaticName,
    /// The connector.
    pub connector: String,
    /// The file read.
    pub file: String,
    /// Whether this was the connector's baseline (its first import: no alerts).
    pub baseline: bool,
    /// What was counted.
    #[serde(flatten)]
    pub counts: Counts,
    /// Why the snapshot was refused or skipped.
    pub reasons: Vec<String>,
    /// The first rejected records (and ignored values), with where and why.
    pub rejections: Vec<Rejection>,
    /// How many more are stored with the run (`alertissimo runs --rejections RUN`).
    pub more_rejections: usize,
    /// Where the file was archived, if it was.
    pub archived_to: Option<String>,
    /// The encoding a text export was decoded with (`UTF-8`, `windows-1252`…).
    pub encoding: Option<String>,
    /// The content checksum of a file read whole.
    #[serde(skip)]
    pub checksum: Option<String>,
    /// Whether a drop-folder file may be archived or deleted now (applied, or
    /// already applied before).
    #[serde(skip)]
    pub dispose: bool,
}

impl Summary {
    /// The summary of reading `file` for `connector`, before anything is known
    /// of it (refused until said otherwise).
    pub fn new(connector: &str, file: String) -> Self {
        Self {
            run_id: None,
            status: "refused",
            connector: connector.to_owned(),
            file,
            baseline: false,
            counts: Counts::default(),
            reasons: Vec::new(),
            rejections: Vec::new(),
            more_rejections: 0,
            archived_to: None,
            encoding: None,
            checksum: None,
            dispose: false,
        }
    }

    /// Keeps the first rejections to show, and counts the others.
    fn show(&mut self, rejections: Vec<Rejection>) {
        self.more_rejections = rejections.len().saturating_sub(SHOWN_REJECTIONS);
        self.rejections = rejections.into_iter().take(SHOWN_REJECTIONS).collect();
    }
}

/// How an import runs.
pub struct Options<'a> {
    /// The instant events are detected at.
    pub now: DateTime<Utc>,
    /// Import even a content already imported.
    pub force: bool,
    /// Called with the byte offset reached in the file, for progress bars.
    pub progress: Option<&'a (dyn Fn(u64, u64) + Sync)>,
    /// Tells that a shutdown was asked: no further file is started.
    pub stop: Option<&'a (dyn Fn() -> bool + Sync)>,
    /// The rules deciding which alerts events queue (none: events alone).
    pub rules: Option<&'a Rules>,
}

/// Why the waiting files of a connector could not be imported at all.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The state database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The drop folder could not be listed.
    #[error("connector {connector}: {reason}")]
    Folder {
        /// The connector.
        connector: String,
        /// Why.
        reason: String,
    },
    /// An API's synchronisation could not be spooled.
    #[error(transparent)]
    Spool(#[from] crate::connector::spool::SpoolError),
}

/// The compact state of a connector, 24 bytes a dossier: for every stored dossier,
/// 96 bits of the hash of its id, its row id, the raw hash of its last record and
/// whether it is present (the store's [`Entry`], read whole at the start of an
/// import and written whole before it commits). Sorted by id hash, with a
/// directory on the top bits of the hash, so that a lookup touches one or two
/// cache lines instead of twenty (the hashes are uniform). Two ids sharing 96
/// hash bits among millions is a 1-in-10^16 event, and the store still compares
/// the real ids before using a match.
struct Index {
    entries: Vec<Entry>,
    /// `entries[buckets[b]..buckets[b + 1]]` holds the keys whose top `bits` bits are `b`.
    buckets: Vec<u32>,
    bits: u32,
}

impl Index {
    fn load(store: &ImportTx<'_>, connector: &str) -> Result<Self, StoreError> {
        Ok(Self::sorted(store.load_index(connector)?))
    }

    /// Sorts entries by key, in place, and builds the directory: a radix pass
    /// on the top 8 bits of the id hash (American flag sort: each swap puts an
    /// entry in its part for good), then a comparison sort of each part, small
    /// enough to stay in the cache. A radix pass on the top 20 bits, whose swaps
    /// land anywhere in the 24 MB of a million entries, took 0.2 s more at the
    /// end of a first import.
    fn sorted(mut entries: Vec<Entry>) -> Self {
        // A stored index is stored sorted.
        if !entries.is_sorted_by_key(Entry::order) {
            sort_by_hash(&mut entries, |e| e.hi, Entry::order);
        }
        // The directory for lookups: where each value of the top `bits` bits starts.
        let bits = entries.len().max(2).ilog2().clamp(1, 24);
        let bucket_of = |e: &Entry| (e.hi >> (64 - bits)) as usize;
        let mut buckets = vec![0u32; (1 << bits) + 1];
        for e in &entries {
            buckets[bucket_of(e) + 1] += 1;
        }
        for b in 1..buckets.len() {
            buckets[b] += buckets[b - 1];
        }
        Self {
            entries,
            buckets,
            bits,
        }
    }

    fn find(&self, key: IdKey) -> Option<usize> {
        let bucket = (key.0 >> (64 - self.bits)) as usize;
        let (from, to) = (
            self.buckets[bucket] as usize,
            self.buckets[bucket + 1] as usize,
        );
        self.entries[from..to]
            .iter()
            .position(|e| e.key() == key)
            .map(|i| from + i)
    }
}

/// Sorts items by `order`, whose first part is the hash `hash` gives (see
/// `Index::sorted`): hashes spread evenly over the 256 parts of the radix pass.
fn sort_by_hash<T, K: Ord>(items: &mut [T], hash: impl Fn(&T) -> u64, order: impl Fn(&T) -> K) {
    const PARTS: usize = 256;
    let part_of = |item: &T| (hash(item) >> 56) as usize;
    let mut starts = [0usize; PARTS + 1];
    for item in items.iter() {
        starts[part_of(item) + 1] += 1;
    }
    for p in 1..=PARTS {
        starts[p] += starts[p - 1];
    }
    let mut next = starts;
    for p in 0..PARTS {
        while next[p] < starts[p + 1] {
            let home = part_of(&items[next[p]]);
            if home != p {
                items.swap(next[p], next[home]);
            }
            next[home] += 1;
        }
    }
    for p in 0..PARTS {
        items[starts[p]..starts[p + 1]].sort_unstable_by_key(&order);
    }
}

/// The entries of two lists sorted by key, in key order.
fn merge_sorted<'a>(a: &'a [Entry], b: &'a [Entry]) -> impl Iterator<Item = Entry> + 'a {
    let (mut i, mut j) = (0, 0);
    std::iter::from_fn(move || {
        let next = match (a.get(i), b.get(j)) {
            (Some(x), Some(y)) if y.order() < x.order() => {
                j += 1;
                y
            }
            (Some(x), _) => {
                i += 1;
                x
            }
            (None, Some(y)) => {
                j += 1;
                y
            }
            (None, None) => return None,
        };
        Some(*next)
    })
}

/// Where the stored state of a dossier read again is.
#[derive(Clone, Copy)]
enum Slot {
    /// In the index, at this position.
    Stored(usize),
    /// Among the dossiers this import created, at this position.
    Added(usize),
}

/// What the parser sends to the store.
enum Item {
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
struct Parsed {
    rows: u64,
    unchanged: u64,
    seen: Vec<u32>,
    /// Mapped columns that no record had (refusal reasons).
    vanished: Vec<String>,
    /// The dossiers the source said were deleted.
    deleted: Vec<model::SourceDeletion>,
    /// Whether an incremental source read every dossier this time.
    full_snapshot: bool,
    /// Where the source's synchronisation ends.
    cursor: Option<String>,
}

/// Hash of a raw record, volatile columns left out; `seed` is the connector's fingerprint.
fn row_hash(
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
fn parse(
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

/// Imports every waiting file of a connector's drop folder, in name order, then
/// archives (or keeps, or deletes) each one that was read.
///
/// # Errors
/// On a store failure, or when the drop folder cannot be listed; problems with
/// the files themselves become refused runs.
pub fn import_pending(
    store: &mut Store,
    connector: &Connector,
    tz: chrono_tz::Tz,
    options: &Options<'_>,
) -> Result<Vec<Summary>, ImportError> {
    let Some(source) = connector.source.folder() else {
        // An API: one snapshot (or one batch of changes) per import, fetched first.
        let state = api_state(store, connector)?;
        let dir = spool_dir(store.path());
        let stop = || options.stop.is_some_and(|stop| stop());
        let progress = |pages| {
            if let Some(progress) = options.progress {
                progress(pages, 0);
            }
        };
        let spool = match spool::fetch(connector, state, &dir, &stop, &progress) {
            Ok(spool) => spool,
            Err(spool::SpoolError::Interrupted) => {
                info!(connector = %connector.name, "Stopping: the synchronisation is left for the next start.");
                return Ok(Vec::new());
            }
            Err(error) => {
                let reason = error.to_string();
                store.record_source_error(&connector.name, Utc::now(), &reason)?;
                return Err(ImportError::Spool(error));
            }
        };
        return Ok(vec![import_spool(store, connector, &spool, tz, options)?]);
    };
    let files = match source.files() {
        Ok(files) => files,
        Err(reason) => {
            store.record_source_error(&connector.name, Utc::now(), &reason)?;
            return Err(ImportError::Folder {
                connector: connector.name.clone(),
                reason,
            });
        }
    };
    let mut out = Vec::with_capacity(files.len());
    for file in files {
        if options.stop.is_some_and(|stop| stop()) {
            info!(connector = %connector.name, "Stopping: the files still waiting are left for the next start.");
            break;
        }
        let shown = file.display().to_string();
        let state = file_state(&file);
        match passed_over(
            store,
            connector,
            &shown,
            state,
            source.after_import,
            options,
        )? {
            Seen::Refused(summary) => {
                out.push(*summary);
                continue;
            }
            Seen::Kept => continue,
            Seen::ToRead => {}
        }
        let mut summary = import_file(store, connector, &file, tz, options)?;
        if let Some((size, mtime_ns)) = state {
            let seen = SeenFile {
                size,
                mtime_ns,
                checksum: summary.checksum.clone(),
                outcome: summary.status.to_owned(),
                run_id: summary.run_id,
                fingerprint: connector.fingerprint_text(),
            };
            store.record_file_seen(&connector.name, &shown, &seen, Utc::now())?;
        }
        // A refused file stays where it is, for the administrators to look at; its
        // checksum keeps it from being read again until it or the connector changes.
        if summary.dispose {
            let stamp = options.now.format("%Y%m%dT%H%M%SZ").to_string();
            match source.dispose(&file, &stamp) {
                Ok(target) => summary.archived_to = target.map(|t| t.display().to_string()),
                Err(error) => warn!(
                    connector = %connector.name, file = %file.display(), %error,
                    "Cannot archive or delete an imported file; its checksum prevents importing it twice."
                ),
            }
        }
        out.push(summary);
    }
    Ok(out)
}

/// A value of a record that was not used, as the run reports it.
fn warning(file: &str, line: u64, id: &str, field: String, reason: String) -> Rejection {
    Rejection {
        severity: "warning",
        file: file.to_owned(),
        line: Some(line),
        record: None,
        source_id: Some(id.to_owned()),
        field: Some(field),
        reason,
    }
}

/// Puts back the stored values of the fields a record left empty with
/// `on_empty = "keep"` (see [`crate::connector::mapping::OnEmpty`]), and the
/// stored form of its fields with them; returns the fields kept.
fn keep_stored(
    mut mapped: Mapped,
    fields: Vec<u8>,
    stored: Option<&model::Dossier>,
    encoder: &FieldEncoder,
) -> Result<(Mapped, Vec<u8>, Vec<String>), StoreError> {
    let Some(stored) = stored.filter(|_| !mapped.kept.is_empty()) else {
        return Ok((mapped, fields, Vec::new()));
    };
    let mut kept = Vec::new();
    for name in std::mem::take(&mut mapped.kept) {
        if let Some(value) = stored.fields.get(&name) {
            mapped.dossier.fields.insert(name.clone(), value.clone());
            kept.push(name);
        }
    }
    if kept.is_empty() {
        return Ok((mapped, fields, kept));
    }
    let fields = encoder
        .encode(&mapped.dossier.fields)
        .map_err(StoreError::Corrupt)?;
    Ok((mapped, fields, kept))
}

/// A drop-folder file's size and modification time (nanoseconds since 1970).
fn file_state(path: &Path) -> Option<(u64, i64)> {
    let meta = std::fs::metadata(path).ok()?;
    let modified = meta.modified().ok()?;
    let since = modified.duration_since(std::time::UNIX_EPOCH).ok()?;
    Some((meta.len(), i64::try_from(since.as_nanos()).ok()?))
}

/// What becomes of a drop-folder file the connector may have read before.
enum Seen {
    /// New or changed (or `--force`): read it.
    ToRead,
    /// Refused before by the same connector file, unchanged since: said again
    /// as skipped, without being opened.
    Refused(Box<Summary>),
    /// Kept in place after its import, unchanged since: passed over silently.
    Kept,
}

/// Whether a file unchanged since the connector last read it (same size and
/// modification time) is passed over without being opened.
fn passed_over(
    store: &Store,
    connector: &Connector,
    shown: &str,
    state: Option<(u64, i64)>,
    after_import: AfterImport,
    options: &Options<'_>,
) -> Result<Seen, StoreError> {
    let Some((size, mtime_ns)) = state.filter(|_| !options.force) else {
        return Ok(Seen::ToRead);
    };
    let Some(seen) = store.file_seen(&connector.name, shown)? else {
        return Ok(Seen::ToRead);
    };
    if seen.size != size || seen.mtime_ns != mtime_ns {
        return Ok(Seen::ToRead);
    }
    let same_connector = seen.fingerprint == connector.fingerprint_text();
    match seen.outcome.as_str() {
        // Once the connector file changes (a mapping fixed), a refused file is read again.
        "refused" | "skipped" if same_connector => {
            debug!(connector = %connector.name, file = %shown, "Passed over a file refused before and unchanged since.");
            let mut summary = Summary::new(&connector.name, shown.to_owned());
            summary.status = "skipped";
            summary.run_id = seen.run_id;
            summary.reasons.push(format!(
                "unchanged since run {} refused it; fix the export or the connector, or use --force",
                seen.run_id.map_or_else(|| "?".to_owned(), |id| id.to_string())
            ));
            Ok(Seen::Refused(Box::new(summary)))
        }
        _ if after_import == AfterImport::Keep => Ok(Seen::Kept),
        _ => Ok(Seen::ToRead),
    }
}

/// Where an API connector's synchronisation starts from, as the store knows it.
///
/// # Errors
/// On a store failure.
pub fn api_state(store: &Store, connector: &Connector) -> Result<ApiState, StoreError> {
    Ok(ApiState {
        // A margin for a server whose clock is behind ours: a change seen twice is harmless.
        last_start: store
            .last_applied_start(&connector.name, &connector.fingerprint_text())?
            .map(|t| crate::store::format_time(t - chrono::Duration::minutes(5))),
        cursor: store.source_cursor(&connector.name)?,
    })
}

/// The folder where API synchronisations are spooled: the state database's.
pub fn spool_dir(database: &Path) -> std::path::PathBuf {
    match database.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_owned(),
        _ => std::path::PathBuf::from("."),
    }
}

/// Imports an API connector's synchronisation, fetched before by [`spool::fetch`].
///
/// # Errors
/// Only on a store failure; the source's failures become a refused run.
pub fn import_spool(
    store: &mut Store,
    connector: &Connector,
    spool: &Spool,
    tz: chrono_tz::Tz,
    options: &Options<'_>,
) -> Result<Summary, StoreError> {
    guarded(store, connector, Origin::Api(spool), tz, options)
}

/// Imports one file as one snapshot of a connector.
///
/// # Errors
/// Only on a store failure; problems with the file become a refused run.
pub fn import_file(
    store: &mut Store,
    connector: &Connector,
    path: &Path,
    tz: chrono_tz::Tz,
    options: &Options<'_>,
) -> Result<Summary, StoreError> {
    guarded(store, connector, Origin::File(path), tz, options)
}

/// Imports one snapshot, a panic while reading it included: a parser that
/// panics on a hostile or cut file (calamine on a truncated workbook, say) rolls
/// the import back, and the snapshot is refused naming the file and the cause,
/// recorded as a run with the file's checksum, so that it is not read again
/// until it changes and the other connectors go on.
fn guarded(
    store: &mut Store,
    connector: &Connector,
    origin: Origin<'_>,
    tz: chrono_tz::Tz,
    options: &Options<'_>,
) -> Result<Summary, StoreError> {
    let attempt = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        import_snapshot(store, connector, origin, tz, options)
    }));
    let panic = match attempt {
        Ok(outcome) => return outcome,
        Err(panic) => panic,
    };
    let cause = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown cause".to_owned());
    let (shown, checksum) = match origin {
        Origin::File(path) => (
            path.display().to_string(),
            crate::connector::folder::checksum(path)
                .ok()
                .map(|(c, _)| c),
        ),
        Origin::Api(_) => (connector.source.address().unwrap_or_default(), None),
    };
    let run = NewRun {
        checksum,
        ..NewRun::new(
            &connector.name,
            &shown,
            connector.fingerprint_text(),
            Utc::now(),
        )
    };
    let summary = Summary::new(&connector.name, shown.clone());
    let reason = format!(
        "{shown}: the file cannot be read (its reader failed: {cause}); a cut or damaged export? It is read again once it changes"
    );
    refuse(store, run, vec![reason], Vec::new(), summary)
}

/// Imports one snapshot of a connector, from a file or its API.
fn import_snapshot(
    store: &mut Store,
    connector: &Connector,
    origin: Origin<'_>,
    tz: chrono_tz::Tz,
    options: &Options<'_>,
) -> Result<Summary, StoreError> {
    let (started_at, shown) = match origin {
        Origin::File(path) => (Utc::now(), path.display().to_string()),
        // The next synchronisation asks for what changed since this one began.
        Origin::Api(spool) => (
            spool.started_at,
            connector.source.address().unwrap_or_default(),
        ),
    };
    let stamp = || match origin {
        Origin::File(path) => file_stamp(path),
        Origin::Api(_) => None,
    };
    let stamp_before = stamp();
    // The first pass (checksum, and the encoding of text) reads the whole file
    // before the write transaction: a slow drop folder (a network share) never
    // holds the database's lock, and a file passed over is never read under it.
    let inspected = FirstPass::of(origin, &connector.source);
    // One import at a time per database: what is read below cannot change under it.
    // A connector's first import records every dossier: it writes them once
    // with a rollback journal, where the WAL would write them twice. The journal
    // is chosen before the transaction (SQLite cannot change it inside one), so
    // whether this is the baseline is asked again below, under the lock.
    let mut tx = if store.has_applied_run(&connector.name)? {
        store.begin_import()?
    } else {
        store.begin_bulk_import()?
    };
    let baseline = !tx.has_applied_run(&connector.name)?;
    let mut summary = Summary {
        baseline: baseline && !connector.alert_on_first_import,
        ..Summary::new(&connector.name, shown.clone())
    };
    let index = Index::load(&tx, &connector.name)?;
    let clock = std::time::Instant::now();
    debug!(connector = %connector.name, dossiers = index.entries.len(), elapsed_ms = (Utc::now() - started_at).num_milliseconds(), "Loaded the change-detection index.");
    let mut run = NewRun {
        baseline: summary.baseline,
        ..NewRun::new(
            &connector.name,
            &summary.file,
            connector.fingerprint_text(),
            started_at,
        )
    };
    let inspected: FirstPass = match inspected {
        Ok(i) => i,
        Err(reason) => {
            drop(tx);
            return refuse(store, run, vec![reason], Vec::new(), summary);
        }
    };
    run.checksum = inspected.checksum().map(str::to_owned);
    run.encoding = inspected.encoding().map(str::to_owned);
    summary.encoding.clone_from(&run.encoding);
    summary.checksum.clone_from(&run.checksum);
    // An empty file is refused every time: all empty files share one checksum.
    if !options.force
        && inspected.bytes() > 0
        && let Some(checksum) = inspected.checksum()
    {
        // The very content of the last applied snapshot: nothing to read again.
        // A content applied long ago, with other snapshots since, is read again.
        if let Some(last) = tx.last_snapshot(&connector.name)?
            && last.checksum.as_deref() == Some(checksum)
        {
            info!(
                connector = %connector.name, file = %shown, run = last.id,
                "The file holds the same content as the last applied snapshot: recorded as unchanged."
            );
            run.finished_at = Utc::now();
            run.reasons.push(format!(
                "same content as the last applied snapshot (run {}); use --force to read it again",
                last.id
            ));
            summary.run_id = Some(tx.finish_unchanged(&run)?);
            summary.status = RunStatus::Unchanged.as_str();
            summary.dispose = true;
            summary.reasons = run.reasons;
            return Ok(summary);
        }
        // Refused by this very connector: refusing it again would change nothing.
        // Once the connector is fixed (another fingerprint), the file is read again.
        if let Some(earlier) = tx.run_with_checksum(&connector.name, checksum)?
            && earlier.status == RunStatus::Refused
            && earlier.fingerprint == run.fingerprint
        {
            summary.run_id = Some(earlier.id);
            warn!(
                connector = %connector.name, file = %shown, run = earlier.id,
                "Skipped a file refused before; fix the export or the connector, or import it with --force."
            );
            summary.status = "skipped";
            summary.reasons.push(format!(
                "same content as the file refused by run {} with the same connector; fix the export or the connector, or use --force",
                earlier.id
            ));
            return Ok(summary);
        }
    }
    let (file, size) = match inspected.open(origin, connector) {
        Ok(f) => f,
        Err(reason) => {
            drop(tx);
            return refuse(store, run, vec![reason], Vec::new(), summary);
        }
    };
    let file_name = summary.file.clone();
    tx.start_run(&run)?;
    let encoder = tx.field_encoder(
        connector
            .mapping
            .field_names()
            .filter(|&name| name != model::ID && name != model::STEP),
    )?;
    let mut counts = Counts::default();
    let mut rejections: Vec<Rejection> = Vec::new();
    let mut reasons: Vec<String> = Vec::new();
    // The dossiers this import created, when an API may send one again.
    let repeats_replace = file.is_api();
    let mut inserted: std::collections::HashMap<IdKey, usize> = std::collections::HashMap::new();
    // What becomes of the index: new raw hashes of stored dossiers (by position),
    // and the dossiers this import created.
    let mut rehashed: Vec<(usize, u64)> = Vec::new();
    let mut added: Vec<Entry> = Vec::new();
    // Duplicate ids named in the reasons; beyond, counted.
    let mut duplicates = 0u64;
    let mut alerting = options
        .rules
        .filter(|_| !summary.baseline)
        .map(|rules| Alerting::new(rules, connector, options.now));
    let reject = |rejections: &mut Vec<Rejection>, r: Rejection| {
        if rejections.len() < MAX_STORED_REJECTIONS {
            rejections.push(r);
        }
    };
    let (parsed, store_result) = std::thread::scope(|s| {
        let (sender, receiver) = sync_channel::<Vec<Item>>(8);
        // The dossiers the store is done with go back to the parser to be freed:
        // freeing their fields costs the busier thread a twentieth of a first import.
        let (recycle, recycled) = std::sync::mpsc::channel::<Vec<model::Dossier>>();
        let parser = s.spawn(|| {
            parse(
                connector,
                file,
                &index,
                &encoder,
                tz,
                |offset| {
                    if let Some(progress) = options.progress {
                        progress(offset, size);
                    }
                },
                move |batch| {
                    recycled.try_iter().for_each(drop);
                    sender.send(batch).is_ok()
                },
            )
        });
        let mut apply = || -> Result<(), StoreError> {
            for batch in receiver.iter() {
                let mut spent = Vec::with_capacity(batch.len());
                for item in batch {
                    match item {
                        Item::Rejected {
                            line,
                            number,
                            id,
                            issues,
                        } => {
                            counts.rejected += 1;
                            for issue in issues {
                                reject(
                                    &mut rejections,
                                    Rejection {
                                        severity: "rejected",
                                        file: file_name.clone(),
                                        line: Some(line),
                                        record: Some(number),
                                        source_id: id.clone(),
                                        field: Some(issue.field).filter(|f| !f.is_empty()),
                                        reason: issue.reason,
                                    },
                                );
                            }
                        }
                        Item::Duplicate {
                            line,
                            first_line,
                            id,
                        } => {
                            duplicates += 1;
                            if duplicates > SHOWN_REJECTIONS as u64 {
                                continue;
                            }
                            let id = match id {
                                Ok(id) => Some(id),
                                // Both copies are new: the first was just inserted.
                                Err(key) => match added.iter().find(|e| e.key() == key) {
                                    Some(e) => tx.get(e.dossier_id())?.map(|(d, _)| d.id),
                                    None => None,
                                },
                            };
                            reasons.push(duplicate(&file_name, line, first_line, id.as_deref()));
                        }
                        Item::Changed {
                            line,
                            mapped,
                            key,
                            fields,
                            row_hash,
                            at,
                            messages,
                        } => {
                            let mut previous = None;
                            // A stored dossier, or one this import created and now reads again.
                            let slot = match at {
                                Some(i) => Some(Slot::Stored(i)),
                                None => inserted.get(&key).map(|&a| Slot::Added(a)),
                            };
                            let stored = slot.map(|slot| match slot {
                                Slot::Stored(i) => {
                                    let e = &index.entries[i];
                                    (e.dossier_id(), e.present())
                                }
                                Slot::Added(a) => (added[a].dossier_id(), true),
                            });
                            if let Some((rowid, present)) = stored
                                && let Some((dossier, step_entered_at)) = tx.get(rowid)?
                                // Equal 96-bit id hashes of different ids: never seen, but cheap to rule out.
                                && dossier.id == mapped.dossier.id
                            {
                                previous = Some((
                                    rowid,
                                    Known {
                                        dossier,
                                        present,
                                        step_entered_at,
                                    },
                                ));
                            }
                            let (mapped, fields, kept) = keep_stored(
                                mapped,
                                fields,
                                previous.as_ref().map(|(_, known)| &known.dossier),
                                &encoder,
                            )?;
                            for field in kept {
                                counts.warnings += 1;
                                let reason = "empty in this export: the stored value is kept (on_empty = \"keep\")";
                                reject(
                                    &mut rejections,
                                    warning(
                                        &file_name,
                                        line,
                                        &mapped.dossier.id,
                                        field,
                                        reason.to_owned(),
                                    ),
                                );
                            }
                            let mut change = diff::compare(
                                previous.as_ref().map(|(_, known)| known),
                                &mapped.dossier,
                                &connector.watch,
                                options.now,
                            );
                            mark_notified_by_source(
                                &mut change.events,
                                &messages,
                                connector.source.automatic_senders(),
                            );
                            let write = DossierWrite {
                                dossier: &mapped.dossier,
                                step_entered_at: change.step_entered_at,
                                fields: &fields,
                            };
                            if let Some((rowid, known)) = &previous
                                && change.state_changed
                            {
                                tx.update(*rowid, known.dossier.reference(), &write)?;
                            }
                            let rowid = match (previous, slot) {
                                (Some((rowid, _)), Some(Slot::Stored(i))) => {
                                    rehashed.push((i, row_hash));
                                    rowid
                                }
                                (Some((rowid, _)), Some(Slot::Added(a))) => {
                                    added[a].set(row_hash, true);
                                    rowid
                                }
                                _ => {
                                    let rowid = tx.insert(&connector.name, &write)?;
                                    if repeats_replace {
                                        inserted.insert(key, added.len());
                                    }
                                    added.push(Entry::new(key, entry_row(rowid)?, row_hash, true));
                                    rowid
                                }
                            };
                            let mut stored = Vec::with_capacity(change.events.len());
                            for event in &change.events {
                                stored.push((
                                    tx.insert_event(rowid, event, summary.baseline)?,
                                    event,
                                ));
                                counts.add(event.kind);
                            }
                            if let Some(alerting) = &mut alerting
                                && !stored.is_empty()
                            {
                                alerting.on_events(
                                    &tx,
                                    rowid,
                                    &mapped.dossier,
                                    &stored,
                                    &mut counts,
                                )?;
                            }
                            let mut told = !stored.is_empty();
                            for message in &messages {
                                if tx.insert_message(rowid, message, summary.baseline)? {
                                    counts.add(EventKind::Message);
                                    told = true;
                                }
                            }
                            if told {
                                counts.changed += 1;
                            } else {
                                counts.unchanged += 1;
                            }
                            for w in mapped.warnings {
                                counts.warnings += 1;
                                let reason = format!("{} (value ignored)", w.reason);
                                reject(
                                    &mut rejections,
                                    warning(&file_name, line, &mapped.dossier.id, w.field, reason),
                                );
                            }
                            spent.push(mapped.dossier);
                        }
                    }
                }
                // Once the parser ended, they are freed here.
                let _ = recycle.send(spent);
            }
            Ok(())
        };
        let store_result = apply();
        // On a store error, dropping the receiver stops the parser at its next batch.
        drop(receiver);
        let parsed = parser
            .join()
            .unwrap_or_else(|_| Err("the file parser panicked".to_owned()));
        (parsed, store_result)
    });
    store_result?;
    if duplicates > SHOWN_REJECTIONS as u64 {
        reasons.push(format!(
            "{file_name}: … and {} more ids that appear more than once",
            duplicates - SHOWN_REJECTIONS as u64
        ));
    }
    debug!(connector = %connector.name, elapsed_ms = clock.elapsed().as_millis() as u64, "Read the snapshot and wrote its changes.");
    let parsed = match parsed {
        Ok(p) => p,
        Err(reason) => {
            drop(tx);
            reasons.insert(0, reason);
            run.counts = counts;
            return refuse(store, run, reasons, rejections, summary);
        }
    };
    counts.rows = parsed.rows;
    counts.unchanged += parsed.unchanged;
    // A file still being written would look truncated: neither apply nor refuse it,
    // read it again later.
    if stamp() != stamp_before {
        drop(tx);
        warn!(
            connector = %connector.name, file = %file_name,
            "The file changed while it was read; nothing was applied, it is read again at the next tick."
        );
        summary.status = "skipped";
        summary.reasons.push(format!(
            "{file_name}: the file changed while it was read; nothing was applied"
        ));
        return Ok(summary);
    }

    // Guards.
    let guards = &connector.guards;
    // A column no record has: a broken export, or (for a batch of changes) a batch too small to say.
    if connector.mode == Mode::Full {
        reasons.extend(parsed.vanished);
    }
    // An incremental source with nothing new is normal; a full export without data is not.
    if parsed.rows == 0 && connector.mode == Mode::Full {
        reasons.push(format!(
            "{file_name}: the export holds no data record, only a header"
        ));
    }
    let rejected_ratio = ratio(counts.rejected, parsed.rows);
    if parsed.rows > 0 && rejected_ratio > guards.max_rejected_ratio {
        reasons.push(format!(
            "{file_name}: {} of {} records rejected ({:.1} %), above max_rejected_ratio ({:.1} %)",
            counts.rejected,
            parsed.rows,
            rejected_ratio * 100.0,
            guards.max_rejected_ratio * 100.0
        ));
    }
    // Only a full snapshot tells who is gone by absence (an incremental one holds
    // changes only, unless it started over); the source's own deletions always do.
    let full = connector.mode == Mode::Full || parsed.full_snapshot;
    let gone = gone(&index.entries, &parsed.seen, full, &parsed.deleted);
    let present_before = index.entries.iter().filter(|e| e.present()).count() as u64;
    // The guard is against truncated snapshots; deletions a source states are not guessed.
    let missing = gone.iter().filter(|(_, stated)| stated.is_none()).count() as u64;
    let disappeared_ratio = ratio(missing, present_before);
    if full && missing > 0 && disappeared_ratio > guards.max_disappeared_ratio {
        reasons.push(format!(
            "{missing} of {present_before} dossiers would disappear ({:.1} %), above max_disappeared_ratio ({:.1} %): is the export truncated?",
            disappeared_ratio * 100.0,
            guards.max_disappeared_ratio * 100.0
        ));
    }
    if !reasons.is_empty() {
        drop(tx);
        run.counts = counts;
        return refuse(store, run, reasons, rejections, summary);
    }
    let mut entries = index.entries;
    for (i, row_hash) in rehashed {
        entries[i].set(row_hash, true);
    }
    for (i, stated) in gone {
        entries[i].set_absent();
        let rowid = entries[i].dossier_id();
        let step = tx.step_of(rowid)?;
        tx.mark_disappeared(rowid)?;
        let event = match stated {
            Some(deletion) => diff::deleted_on_source(&step, deletion, options.now),
            None => diff::disappeared(&step, options.now),
        };
        let event_id = tx.insert_event(rowid, &event, summary.baseline)?;
        counts.add(event.kind);
        if let Some(alerting) = &mut alerting
            && let Some((dossier, _)) = tx.get(rowid)?
        {
            alerting.on_events(&tx, rowid, &dossier, &[(event_id, &event)], &mut counts)?;
        }
    }
    if let Some(alerting) = &alerting {
        alerting.report();
        if counts.alerts_queued > 1 {
            tx.align_digests()?;
        }
    }
    if let Some(cursor) = &parsed.cursor {
        // With the import, in its transaction: it advances only with applied data.
        tx.set_source_cursor(&connector.name, cursor, options.now)?;
    }
    // Stored in key order, so that the next import sorts nothing; merged rather
    // than appended, which would copy the whole index into a vector twice as large.
    let added = Index::sorted(added).entries;
    tx.save_index(&connector.name, merge_sorted(&entries, &added))?;
    run.counts = counts;
    run.finished_at = Utc::now();
    let before_commit = std::time::Instant::now();
    let run_id = tx.finish(&run, &rejections)?;
    debug!(connector = %connector.name, elapsed_ms = before_commit.elapsed().as_millis() as u64, "Committed.");
    info!(
        connector = %connector.name, file = %file_name, run = run_id, rows = counts.rows,
        created = counts.created, step_changed = counts.step_changed,
        field_changed = counts.field_changed, disappeared = counts.disappeared,
        reappeared = counts.reappeared, rejected = counts.rejected, baseline = summary.baseline,
        alerts_queued = counts.alerts_queued, "Applied a snapshot."
    );
    summary.run_id = Some(run_id);
    summary.status = RunStatus::Applied.as_str();
    summary.dispose = true;
    summary.counts = counts;
    summary.show(rejections);
    Ok(summary)
}

/// The stored dossiers a snapshot makes go, as positions in the index, each with
/// the deletion the source stated for it, if it did: those the source said it
/// deleted and, from a `full` snapshot, every present one it did not hold.
fn gone<'d>(
    entries: &[Entry],
    seen: &[u32],
    full: bool,
    deleted: &'d [model::SourceDeletion],
) -> Vec<(usize, Option<&'d model::SourceDeletion>)> {
    let mut stated: Vec<(IdKey, &model::SourceDeletion)> =
        deleted.iter().map(|d| (id_key(&d.id), d)).collect();
    stated.sort_unstable_by_key(|(key, _)| *key);
    entries
        .iter()
        .zip(seen)
        .enumerate()
        .filter(|(_, (e, _))| e.present())
        .filter_map(|(i, (e, seen))| {
            let deletion = stated
                .binary_search_by_key(&e.key(), |(key, _)| *key)
                .ok()
                .map(|at| stated[at].1);
            (deletion.is_some() || (full && *seen == 0)).then_some((i, deletion))
        })
        .collect()
}

/// Marks the creations and step changes the source already e-mailed the
/// applicant about (DS's deposit e-mail, its e-mail on each state change): one
/// of its automatic messages (from `senders`) within an hour of the event.
fn mark_notified_by_source(
    events: &mut [Event],
    messages: &[crate::model::SourceMessage],
    senders: &[String],
) {
    if senders.is_empty() {
        return;
    }
    for event in events
        .iter_mut()
        .filter(|e| matches!(e.kind, EventKind::Created | EventKind::StepChanged))
    {
        event.notified_by_source = messages.iter().any(|m| {
            senders.contains(&m.from.to_lowercase())
                && (m.at - event.occurred_at).abs() <= chrono::Duration::hours(1)
        });
    }
}

fn duplicate(file: &str, line: u64, first_line: u64, id: Option<&str>) -> String {
    match id {
        Some(id) => {
            format!("{file}:{line}: id '{id}' appears more than once (first at line {first_line})")
        }
        // Both records were rejected: the id is in the rejections.
        None => format!("{file}:{line}: the id of line {first_line} appears again"),
    }
}

/// Size and modification time of a file, to notice it changing while read.
fn file_stamp(path: &Path) -> Option<(u64, std::time::SystemTime)> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.len(), meta.modified().ok()?))
}

fn ratio(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

/// Records a refused run: nothing of the snapshot is applied.
fn refuse(
    store: &mut Store,
    mut run: NewRun,
    reasons: Vec<String>,
    rejections: Vec<Rejection>,
    mut summary: Summary,
) -> Result<Summary, StoreError> {
    run.finished_at = Utc::now();
    run.reasons = reasons;
    // The transaction was rolled back: nothing was created, changed or queued.
    // What was read (rows, records unchanged or rejected, values ignored) stays.
    let read = run.counts;
    run.counts = Counts {
        rows: read.rows,
        unchanged: read.unchanged,
        rejected: read.rejected,
        warnings: read.warnings,
        ..Counts::default()
    };
    let run_id = store.record_refused(&run, &rejections)?;
    error!(
        connector = %run.connector, file = %run.source, run = run_id,
        reasons = %run.reasons.join("; "),
        "Refused a snapshot: nothing was changed."
    );
    summary.run_id = Some(run_id);
    summary.status = RunStatus::Refused.as_str();
    summary.counts = run.counts;
    summary.reasons = run.reasons;
    summary.show(rejections);
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(hi: u64, row: u32) -> Entry {
        Entry::new((hi, row.wrapping_mul(7)), row, 0, true)
    }

    proptest::proptest! {
        /// The radix sort orders entries as a comparison sort does, and every key
        /// is found where it is.
        #[test]
        fn the_index_sorts_and_finds_every_key(
            his in proptest::collection::vec(proptest::prelude::any::<u64>(), 0..3000),
            clustered in proptest::prelude::any::<bool>(),
        ) {
            // Clustered: keys sharing their top bits, unlike real hashes.
            let entries: Vec<Entry> = his
                .iter()
                .enumerate()
                .map(|(row, &hi)| entry(if clustered { hi >> 20 } else { hi }, row as u32))
                .collect();
            let mut expected: Vec<(u64, u64)> = entries.iter().map(Entry::order).collect();
            expected.sort_unstable();
            let index = Index::sorted(entries);
            let got: Vec<(u64, u64)> = index.entries.iter().map(Entry::order).collect();
            proptest::prop_assert_eq!(&got, &expected);
            for (at, e) in index.entries.iter().enumerate() {
                let found = index.find(e.key()).expect("every key is found");
                proptest::prop_assert_eq!(index.entries[found].key(), e.key());
                proptest::prop_assert!(found <= at);
            }
            let stored = expected.iter().any(|&(hi, lo)| hi == 1 && lo >> 32 == 1);
            proptest::prop_assert_eq!(index.find((1, 1)).is_some(), stored);
        }

        /// New ids sort by hash then line, as a comparison sort does: each
        /// repeated id's first line comes first.
        #[test]
        fn new_ids_sort_by_hash_then_line(
            ids in proptest::collection::vec((0u64..4, 0u32..3, 0u32..1000), 0..2000),
        ) {
            // Few distinct hashes, shifted into the top bits: many repeats.
            let mut new_ids: Vec<(IdKey, u32)> =
                ids.iter().map(|&(h, c, line)| ((h << 62 | h, c), line)).collect();
            let mut expected = new_ids.clone();
            expected.sort_unstable();
            sort_by_hash(&mut new_ids, |(key, _)| key.0, |&item| item);
            proptest::prop_assert_eq!(new_ids, expected);
        }

        /// Merging two sorted indexes gives what sorting them together gives.
        #[test]
        fn merged_indexes_stay_sorted(
            his in proptest::collection::vec(proptest::prelude::any::<u64>(), 0..500),
            split in 0usize..500,
        ) {
            let entries: Vec<Entry> =
                his.iter().enumerate().map(|(row, &hi)| entry(hi, row as u32)).collect();
            let mut left = entries.clone();
            let right = left.split_off(split.min(left.len()));
            let (left, right) = (Index::sorted(left).entries, Index::sorted(right).entries);
            let merged: Vec<Entry> = merge_sorted(&left, &right).collect();
            proptest::prop_assert_eq!(merged, Index::sorted(entries).entries);
        }
    }

    /// The status labels of the property test's connector, and their steps.
    const LABELS: [(&str, &str); 4] = [
        ("Déposé", "depose"),
        ("Instruction", "instruction"),
        ("Voté", "accorde"),
        ("Payé", "paiement_solde"),
    ];

    /// The connector of the property test: ids, a status, a watched amount.
    fn model_connector() -> Connector {
        let mut problems = crate::diag::Problems::default();
        let lifecycle = crate::test_support::shipped_lifecycle();
        let config = crate::config::Config::load(Some(Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/config.example.toml"
        ))))
        .expect("the example configuration");
        let mut text = String::from(
            "kind = \"csv\"\nwatch = [\"amount_granted\"]\n[source]\npath = \"x\"\n\
             [fields]\nid = \"id\"\nreference = \"id\"\nstep = \"statut\"\n\
             amount_granted = { column = \"montant\", format = \"auto\", on_empty = \"clear\" }\n\
             [guards]\nmax_rejected_ratio = 1.0\nmax_disappeared_ratio = 1.0\n[steps]\n",
        );
        for (label, step) in LABELS {
            text.push_str(&format!("\"{label}\" = \"{step}\"\n"));
        }
        Connector::parse(
            Path::new("model.toml"),
            &text,
            &config,
            &lifecycle,
            &mut problems,
        )
        .unwrap_or_else(|| panic!("{problems}"))
    }

    /// One snapshot: (id, status index, amount) a dossier, ids distinct.
    fn arb_snapshot() -> impl proptest::strategy::Strategy<Value = Vec<(u8, usize, Option<u32>)>> {
        use proptest::prelude::*;
        proptest::collection::vec(
            (0u8..12, 0..LABELS.len(), proptest::option::of(0u32..4)),
            1..10,
        )
        .prop_map(|mut v| {
            v.sort_by_key(|d| d.0);
            v.dedup_by_key(|d| d.0);
            v
        })
    }

    /// The dossier the mapping makes of one record of a snapshot.
    fn model_dossier(&(id, label, amount): &(u8, usize, Option<u32>)) -> model::Dossier {
        let id = format!("D{id}");
        let mut fields = std::collections::BTreeMap::from([("reference".to_owned(), id.clone())]);
        if let Some(a) = amount {
            fields.insert("amount_granted".to_owned(), format!("{}.00", a * 1000));
        }
        model::Dossier {
            id,
            step: LABELS[label].1.to_owned(),
            status: LABELS[label].0.to_owned(),
            fields,
        }
    }

    fn csv_of(snapshot: &[(u8, usize, Option<u32>)]) -> String {
        let mut text = String::from("id;statut;montant\n");
        for (id, label, amount) in snapshot {
            let amount = amount.map(|a| format!("{}", a * 1000)).unwrap_or_default();
            text.push_str(&format!("D{id};{};{amount}\n", LABELS[*label].0));
        }
        text
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(24))]

        /// Regression (issue 17, item 22): change detection was tested on a
        /// model of the importer, not on the importer. Random sequences of
        /// snapshots go through the real import into a real SQLite file: after
        /// each, the stored state equals the snapshot (dossiers missing from it
        /// are kept, not present), and the events it recorded are those of the
        /// pure change detection (`diff::snapshot`) on the same states.
        #[test]
        fn the_importer_agrees_with_the_model(
            snapshots in proptest::collection::vec(arb_snapshot(), 1..5),
        ) {
            let dir = tempfile::tempdir().unwrap();
            let mut store = Store::open(&dir.path().join("state.db"), 8).unwrap();
            let connector = model_connector();
            let mut state: std::collections::BTreeMap<String, diff::Known> = Default::default();
            let start = crate::test_support::utc("2026-03-02T08:00:00Z");
            for (n, snapshot) in snapshots.iter().enumerate() {
                let now = start + chrono::Duration::days(n as i64);
                let file = dir.path().join(format!("export-{n}.csv"));
                std::fs::write(&file, csv_of(snapshot)).unwrap();
                let options = Options { now, force: false, progress: None, stop: None, rules: None };
                let summary =
                    import_file(&mut store, &connector, &file, chrono_tz::Europe::Paris, &options)
                        .unwrap();
                proptest::prop_assert!(
                    summary.status != "refused",
                    "snapshot {n} refused: {:?}", summary.reasons
                );
                let next: Vec<model::Dossier> = snapshot.iter().map(model_dossier).collect();
                let deltas = diff::snapshot(&state, &next, &connector.watch, now);
                // The events the model expects, by dossier, kinds in order.
                let mut expected: std::collections::BTreeMap<String, Vec<EventKind>> =
                    Default::default();
                for (id, delta) in &deltas {
                    let kinds = match delta {
                        diff::Delta::Upsert(_, change) => {
                            change.events.iter().map(|e| e.kind).collect()
                        }
                        diff::Delta::Disappear(_) => vec![EventKind::Disappeared],
                    };
                    if !kinds.is_empty() {
                        expected.insert(id.clone(), kinds);
                    }
                }
                diff::apply(&mut state, deltas);
                let mut got: std::collections::BTreeMap<String, Vec<EventKind>> =
                    Default::default();
                for (id, known) in &state {
                    let stored = store.find_dossiers(id).unwrap();
                    proptest::prop_assert_eq!(stored.len(), 1, "dossier {}", id);
                    let stored = &stored[0];
                    proptest::prop_assert_eq!(&stored.dossier.step, &known.dossier.step);
                    proptest::prop_assert_eq!(
                        stored.dossier.get("amount_granted"),
                        known.dossier.get("amount_granted"),
                        "dossier {} after snapshot {}", id, n
                    );
                    proptest::prop_assert_eq!(stored.present, known.present, "dossier {}", id);
                    let kinds: Vec<EventKind> = store
                        .events(stored.rowid)
                        .unwrap()
                        .into_iter()
                        .filter(|e| Some(e.run_id) == summary.run_id && summary.status == "applied")
                        .map(|e| e.event.kind)
                        .collect();
                    if !kinds.is_empty() {
                        got.insert(id.clone(), kinds);
                    }
                }
                proptest::prop_assert_eq!(&got, &expected, "events of snapshot {}", n);
            }
        }
    }
}
