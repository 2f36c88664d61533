//! One import of one connector: read a snapshot, reconcile it with the store,
//! apply it whole or refuse it whole.
//!
//! # The stages
//!
//! An import is a pipeline of named stages, each a function with typed input
//! and output. The snapshot streams through the first, second and fourth, record
//! by record, on two threads; the third waits for the whole snapshot, and only
//! then is the one transaction committed or rolled back:
//!
//! ```text
//!  open         snapshot::open   first pass (checksum, encoding), the transaction, the stored Index,
//!               the run; or done already (the last snapshot's content, refused before, unreadable)
//!  ─ reader thread ────────────────────────────────────────────────────────────────────────────────
//!  1 read+map   read::read       record ─▶ id, raw hash ─▶ Sighting in the index (reconcile's first
//!                                look: an unchanged raw hash is counted, not even mapped) ─▶ Read:
//!                                a dossier mapped | a record rejected | an id seen twice
//!                                (then Encoded: the fields' stored form, made here for stage 4)
//!  ─ store thread, in the transaction ─────────────────────────────────────────────────────────────
//!  2 reconcile  reconcile::plan  stored state ─▶ diff ─▶ Plan: its events, and an Action:
//!                                Create | Change | Unchanged
//!  4 apply      apply::Applied   the plan written: dossier, events, alerts, messages ─▶ Applied
//!                                (counts, rejections, reasons, the index's changes)
//!  ─ once the snapshot is read ────────────────────────────────────────────────────────────────────
//!  2 reconcile  reconcile::disappearances   stored dossiers not seen (full) or deleted at the source
//!  3 guards     guards::check    a column gone, no data, too many rejected or gone ─▶ refuse:
//!                                rollback, the run recorded alone (guards::refuse)
//!  4 commit     apply::commit    disappearances, the source's cursor, the index, the run ─▶ commit
//! ```
//!
//! Memory stays flat whatever the file size: records stream through in batches,
//! the only per-dossier state held is the compact `Index` (id hash → raw hash),
//! and a dossier's plan is applied as it comes, in the transaction that the
//! guards may still roll back: that is how a refusal applies nothing without the
//! snapshot being held.
//!
//! # One clock
//!
//! The caller gives the import's instant: [`Options::now`] (the command line
//! and the daemon pass the wall clock), unless the snapshot is dated: by
//! [`Options::as_of`] (`import --as-of`, each file of `import --backfill`) or
//! its connector's `[as_of]` (from the file's name, its modification time, or
//! a column of its records, which the read then checks on every record).
//! A dated snapshot runs at its as-of as if it were the wall clock; one after
//! `now`, or before the connector's last applied snapshot's as-of (kept with
//! each run), is refused. Nothing in the pipeline reads the wall clock:
//! - events are detected at `now` (a creation or step change without the
//!   source's own date, a field change, a disappearance), alerts are planned
//!   from it, the source's cursor is stamped with it, and a drop-folder file is
//!   archived under it;
//! - times of record (when a run starts and ends, when a file was seen or a
//!   source failed) are `now` plus the time the import has taken so far, on a
//!   monotonic clock ([`Clock`]), so that a run keeps its real duration;
//! - an API run starts at its spool's `started_at`: when the source was asked,
//!   the instant the next synchronisation asks for changes since. It is the
//!   source's instant, not the import's: its events are still at `now`.
//!
//! # Files
//!
//! Here: the entry points (a file, a drop folder, an API's spool), the summary,
//! the options and the clock. `dating` says when a snapshot was taken (and
//! refuses one out of date order), `backfill` plans `import --backfill`.
//! `snapshot` drives the stages; `read`, `reconcile`,
//! `guards` and `apply` are the stages; `index` the in-memory change index and
//! its changes; `files` the drop folders.

use std::path::Path;
use std::sync::mpsc::sync_channel;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tracing::{debug, error, info, warn};
use xxhash_rust::xxh3::xxh3_64_with_seed;

use crate::alerting::Alerting;
use crate::connector::budget;
use crate::connector::folder::AfterImport;
use crate::connector::mapping::{FieldIssue, Mapped, Resolved};
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

mod apply;
pub mod backfill;
mod dating;
mod files;
mod guards;
mod index;
mod read;
mod reconcile;
mod snapshot;

pub use crate::timing::local_time;
use apply::*;
use dating::*;
pub use files::import_pending;
use files::*;
use guards::*;
use index::*;
use read::*;
use reconcile::*;
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
    /// When the export was taken, when the import was dated (`--as-of`, the
    /// connector's `[as_of]`); absent when it ran at the wall clock.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub as_of: Option<DateTime<Utc>>,
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
            as_of: None,
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
    /// The present, as the caller reads it (the wall clock): the import's
    /// instant, unless the snapshot is dated (`as_of`, or the connector's
    /// `[as_of]`); events are detected at that instant, and the times of record
    /// are counted from it (see [the clock](self#one-clock)).
    pub now: DateTime<Utc>,
    /// When the export was taken, given by the caller (`import --as-of`): the
    /// import's instant. Without it a file is dated by its connector's
    /// `[as_of]`, else the import runs at `now`. An as-of after `now` is refused.
    pub as_of: Option<DateTime<Utc>>,
    /// Whether `as_of` is the file's own, read by its connector's `[as_of]`
    /// (each file of `import --backfill`, dated by its plan) rather than given
    /// by a person (`import --as-of`, which wins over the file): the records
    /// of a file dated by a column are then checked against it, as when the
    /// import dates the file itself.
    pub as_of_from_file: bool,
    /// Record the snapshot as a baseline (events recorded, no alert), whatever
    /// the connector's history: a backfill (`import --backfill`).
    pub baseline: bool,
    /// Import even a content already imported.
    pub force: bool,
    /// Called with the byte offset reached in the file, for progress bars.
    pub progress: Option<&'a (dyn Fn(u64, u64) + Sync)>,
    /// Tells that a shutdown was asked: no further file is started.
    pub stop: Option<&'a (dyn Fn() -> bool + Sync)>,
    /// The rules deciding which alerts events queue (none: events alone).
    pub rules: Option<&'a Rules>,
}

/// What a command asks of an import, besides its file: the options a person
/// chooses (`import --force`, `--as-of`, `--backfill`), carried as they are to
/// the daemon.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Asked {
    /// [`Options::force`].
    pub force: bool,
    /// [`Options::as_of`].
    pub as_of: Option<DateTime<Utc>>,
    /// [`Options::as_of_from_file`].
    pub as_of_from_file: bool,
    /// [`Options::baseline`].
    pub baseline: bool,
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

/// The one clock of an import: the instant it happens at, given by the caller
/// ([`Options::now`]), and the time it has taken since it began, measured on a
/// monotonic clock.
#[derive(Debug, Clone, Copy)]
struct Clock {
    now: DateTime<Utc>,
    began: std::time::Instant,
}

impl Clock {
    /// The clock of an import beginning at `now`.
    fn start(now: DateTime<Utc>) -> Self {
        Self {
            now,
            began: std::time::Instant::now(),
        }
    }

    /// The import's instant, at which events are detected.
    fn now(&self) -> DateTime<Utc> {
        self.now
    }

    /// `now` plus the time the import has taken so far: when a run starts or
    /// ends, when a file was seen.
    fn at(&self) -> DateTime<Utc> {
        self.now + chrono::Duration::from_std(self.began.elapsed()).unwrap_or_default()
    }

    /// How long the import has taken so far, in milliseconds (for the logs).
    fn elapsed_ms(&self) -> u64 {
        u64::try_from(self.began.elapsed().as_millis()).unwrap_or(u64::MAX)
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
    dated(store, connector, Origin::Api(spool), tz, options)
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
    dated(store, connector, Origin::File(path), tz, options)
}

/// Imports one snapshot on its own clock: at its as-of when it is dated
/// (given, or by its connector's `[as_of]`), else at the caller's `now`; or
/// refuses it when it cannot be dated.
fn dated(
    store: &mut Store,
    connector: &Connector,
    origin: Origin<'_>,
    tz: chrono_tz::Tz,
    options: &Options<'_>,
) -> Result<Summary, StoreError> {
    let as_of = snapshot_as_of(connector, origin, tz, options);
    match snapshot_clock(connector, origin, tz, options, as_of) {
        Ok((clock, as_of)) => {
            let mut summary = guarded(store, connector, origin, tz, options, &clock)?;
            summary.as_of = as_of;
            Ok(summary)
        }
        Err(why) => undated(
            store,
            connector,
            origin,
            why.reason,
            &Clock::start(options.now),
        ),
    }
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
    clock: &Clock,
) -> Result<Summary, StoreError> {
    let attempt = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        import_snapshot(store, connector, origin, tz, options, clock)
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
            clock.at(),
        )
    };
    let summary = Summary::new(&connector.name, shown.clone());
    let reason = format!(
        "{shown}: the file cannot be read (its reader failed: {cause}); a cut or damaged export? It is read again once it changes"
    );
    refuse(
        store,
        Refusal::before_reading(run, reason, summary),
        clock.at(),
    )
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

    /// Issue 18, item 2: an import runs on the one instant it is given, never
    /// on the wall clock: its events are detected at `now`, and its run starts
    /// at `now` and ends a moment later, whether it is applied or refused.
    #[test]
    fn issue_18_an_import_runs_on_the_instant_it_is_given() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("state.db"), 8).unwrap();
        let connector = model_connector();
        let within = |t: DateTime<Utc>, now: DateTime<Utc>| {
            assert!(
                t >= now && t - now < chrono::Duration::minutes(1),
                "{t} is not a moment after {now}"
            );
        };
        let mut import = |n: u32, text: &str| {
            let now =
                crate::test_support::utc("2020-03-02T08:00:00Z") + chrono::Duration::days(n.into());
            let file = dir.path().join(format!("export-{n}.csv"));
            std::fs::write(&file, text).unwrap();
            let options = Options {
                now,
                as_of: None,
                as_of_from_file: false,
                baseline: false,
                force: false,
                progress: None,
                stop: None,
                rules: None,
            };
            let summary = import_file(
                &mut store,
                &connector,
                &file,
                chrono_tz::Europe::Paris,
                &options,
            )
            .unwrap();
            let run = store.run(summary.run_id.unwrap()).unwrap().unwrap();
            within(run.started_at, now);
            within(run.finished_at, run.started_at);
            (now, summary.status)
        };
        let (first, status) = import(0, "id;statut;montant\nD1;Déposé;\nD2;Déposé;\n");
        assert_eq!(status, "applied");
        let (second, status) = import(1, "id;statut;montant\nD1;Déposé;\n");
        assert_eq!(status, "applied");
        let (_, status) = import(2, "id;statut;montant\n");
        assert_eq!(status, "refused");
        let events = |id: &str| {
            let rowid = store.find_dossiers(id).unwrap()[0].rowid;
            store.events(rowid).unwrap()
        };
        let created = &events("D1")[0];
        assert_eq!(created.event.kind, EventKind::Created);
        assert_eq!(created.event.occurred_at, first);
        within(created.detected_at, first);
        let gone = events("D2").pop().unwrap();
        assert_eq!(gone.event.kind, EventKind::Disappeared);
        assert_eq!(gone.event.occurred_at, second);
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
                let options = Options {
                    now, as_of: None, as_of_from_file: false, baseline: false, force: false, progress: None, stop: None,
                    rules: None,
                };
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
