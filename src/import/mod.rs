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
//!
//! Here: the entry points (a file, a drop folder, an API's spool), the summary and
//! the options. `parse` is the parser thread's side, `index` the in-memory
//! change index, `snapshot` the store's side in one transaction with its guards,
//! `files` the drop folders.

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

mod files;
mod index;
mod parse;
mod snapshot;

pub use files::import_pending;
use files::*;
use index::*;
use parse::*;
use snapshot::*;

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
            fields: fields.into_iter().collect(),
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
