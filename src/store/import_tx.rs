//! The one transaction of an import: how it starts (the write lock, the journal,
//! the checks SQLite skips until it ends), the statements it prepares once, and
//! the dossiers and events it writes, applied whole or not at all.

use std::cell::RefCell;

use chrono::{DateTime, Utc};
use rusqlite::{Connection, Transaction, params};

use super::runs::{insert_rejections, insert_run};
use super::sticky::{self, Param};
use super::{
    Entry, FieldEncoder, NewRun, Rejection, Result, RunStatus, Store, StoreError, beneficiaries,
    fields, format_time, index, journal, parse_time, references,
};
use crate::model::{Dossier, Event, EventKind};

impl Store {
    /// Starts the one transaction of an import, taking the database's write lock
    /// at once: what the import reads (the index, the checksums) cannot change
    /// under it, even from another process.
    ///
    /// # Errors
    /// When another import holds the lock longer than the busy timeout, or on a
    /// database error.
    pub(crate) fn begin_import(&mut self) -> Result<ImportTx<'_>> {
        self.begin(false)
    }

    /// Starts the transaction of an import that writes a great many new rows (a
    /// connector's first import, which records every dossier), with SQLite's
    /// rollback journal rather than its WAL when no other program has the
    /// database open.
    ///
    /// A rollback journal keeps the pages an import changes as they were; new
    /// pages, past the end of the file, need nothing kept: they are written
    /// once, where the WAL writes them twice (into the WAL, then into the
    /// database at the checkpoint). Meanwhile other programs reading the
    /// database wait for the import (up to the busy timeout), where with the WAL
    /// they would read the state before it. The WAL comes back when the
    /// transaction ends, committed or not.
    ///
    /// # Errors
    /// As [`Store::begin_import`].
    pub(crate) fn begin_bulk_import(&mut self) -> Result<ImportTx<'_>> {
        self.begin(true)
    }

    fn begin(&mut self, bulk: bool) -> Result<ImportTx<'_>> {
        let conn = &self.conn;
        let journal = if bulk && journal::rollback(conn)? {
            journal::Restore(conn)
        } else {
            // Back in WAL mode if an earlier bulk import could not restore it.
            journal::wal(conn)?;
            // An import's commit is synced to the disk before it returns: the
            // file it read may be archived or deleted right after, so a power cut
            // must not take the import back. (Other commits keep the WAL's
            // `synchronous = NORMAL`; the guard below puts it back.)
            conn.pragma_update(None, "synchronous", "FULL")?;
            journal::Restore(conn)
        };
        // The import only links rows to the run it created and to dossiers it
        // created or read in this transaction: SQLite's own checks of those links
        // would cost a tenth of a first import. Debug builds check every link
        // before committing (ImportTx::finish).
        conn.pragma_update(None, "foreign_keys", false)?;
        let foreign_keys = ForeignKeysGuard(conn);
        let names = NamesGuard(&self.names);
        let tx = Transaction::new_unchecked(conn, rusqlite::TransactionBehavior::Immediate)
            .map_err(|e| match e.sqlite_error_code() {
                Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) => {
                    StoreError::Busy(self.path.clone())
                }
                _ => e.into(),
            })?;
        let prepare = |sql| sticky::Sticky::prepare(conn, sql).map(RefCell::new);
        Ok(ImportTx {
            hot: Statements {
                insert_dossier: prepare(INSERT_DOSSIER)?,
                insert_event: prepare(INSERT_EVENT)?,
            },
            references: RefCell::default(),
            beneficiaries: RefCell::default(),
            last_time: RefCell::default(),
            tx,
            run_id: 0,
            names,
            _foreign_keys: foreign_keys,
            _journal: journal,
        })
    }
}

/// The single transaction of an import. Dropping it without [`ImportTx::finish`] rolls back.
pub(crate) struct ImportTx<'a> {
    // Fields drop in this order: the statements, the transaction (rolled back
    // unless finished), then the guards.
    hot: Statements<'a>,
    /// The reference index entries of the dossiers this import created or renamed.
    references: RefCell<references::Pending>,
    /// The beneficiary addresses of the dossiers this import created.
    beneficiaries: RefCell<beneficiaries::Pending>,
    /// The last instant written, and its text: a new dossier's `created` event
    /// happened when it entered its step, written just before.
    last_time: RefCell<(Option<DateTime<Utc>>, String)>,
    pub(super) tx: Transaction<'a>,
    pub(super) run_id: i64,
    names: NamesGuard<'a>,
    _foreign_keys: ForeignKeysGuard<'a>,
    /// Once it ended: back to the WAL and its usual syncs (a bulk import ran
    /// with the rollback journal, any import with full syncs).
    _journal: journal::Restore<'a>,
}

/// The statements an import runs for every new dossier, prepared once per import
/// (a statement cache lookup costs more than some of these inserts).
struct Statements<'a> {
    insert_dossier: RefCell<sticky::Sticky<'a>>,
    insert_event: RefCell<sticky::Sticky<'a>>,
}

const INSERT_DOSSIER: &str = "INSERT INTO dossiers (connector, source_id, reference, scheme,
        step, status, step_entered_at, fields, first_run, last_run)
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9)";
const INSERT_EVENT: &str = "INSERT INTO events (run_id, dossier_id, kind, from_step, to_step,
        field, old_value, new_value, occurred_at, baseline, notified_by_source, external_id)
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)
    ON CONFLICT (dossier_id, external_id) WHERE external_id IS NOT NULL DO NOTHING";

/// Turns the foreign key checks back on once an import's transaction ended
/// (the pragma does nothing inside a transaction).
struct ForeignKeysGuard<'a>(&'a Connection);

impl Drop for ForeignKeysGuard<'_> {
    fn drop(&mut self) {
        if let Err(error) = self.0.pragma_update(None, "foreign_keys", true) {
            tracing::error!(%error, "Cannot turn the foreign key checks back on.");
        }
    }
}

/// Forgets the field names cached during an import once it ends: a rolled-back
/// import may have cached names that were never committed.
struct NamesGuard<'a>(&'a RefCell<fields::Names>);

impl Drop for NamesGuard<'_> {
    fn drop(&mut self) {
        self.0.borrow_mut().clear();
    }
}

/// The state of a dossier to write.
#[derive(Debug)]
pub(crate) struct DossierWrite<'a> {
    /// The canonical state.
    pub dossier: &'a Dossier,
    /// When it entered its step.
    pub step_entered_at: DateTime<Utc>,
    /// The canonical fields as stored, encoded by the caller's thread
    /// ([`FieldEncoder`]).
    pub fields: &'a [u8],
}

impl DossierWrite<'_> {
    /// The stored columns of its state, in the order both writes use.
    fn state<'s>(&'s self, step_entered_at: &'s str) -> [Param<'s>; 6] {
        let d = self.dossier;
        [
            Param::Text(d.reference()),
            Param::text_or_null(d.text("scheme")),
            Param::Text(&d.step),
            Param::Text(&d.status),
            Param::Text(step_entered_at),
            Param::Blob(self.fields),
        ]
    }
}

impl ImportTx<'_> {
    /// Debug builds: every row links to rows that exist, as the foreign keys say,
    /// although SQLite did not check them during the import.
    #[cfg(debug_assertions)]
    fn check_links(&self) -> Result<()> {
        let mut stmt = self.tx.prepare("PRAGMA foreign_key_check")?;
        let broken: Vec<(String, Option<i64>, String)> = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
            .collect::<rusqlite::Result<_>>()?;
        match broken.first() {
            None => Ok(()),
            Some((table, row, parent)) => Err(StoreError::Corrupt(format!(
                "the import would leave {} rows linked to missing rows, the first in {table} \
                 (row {row:?}) to {parent}",
                broken.len()
            ))),
        }
    }

    /// The change-detection state of a connector, in stored order.
    ///
    /// # Errors
    /// On a database error, or when the stored state is cut.
    pub(crate) fn load_index(&self, connector: &str) -> Result<Vec<Entry>> {
        // Sized first: growing a large vector by doubling would briefly hold 1.5 copies of it.
        let mut entries = Vec::with_capacity(index::count(&self.tx, connector)?);
        index::read(&self.tx, connector, |e| entries.push(e))?;
        Ok(entries)
    }

    /// Replaces the change-detection state of a connector, with the import.
    ///
    /// # Errors
    /// On a database error.
    pub(crate) fn save_index(
        &self,
        connector: &str,
        entries: impl IntoIterator<Item = Entry>,
    ) -> Result<()> {
        index::write(&self.tx, connector, entries)
    }

    /// Gives every field name a stored id, and returns the encoder of an
    /// import's dossiers.
    ///
    /// # Errors
    /// On a database error.
    pub(crate) fn field_encoder<'n>(
        &self,
        names: impl IntoIterator<Item = &'n str>,
    ) -> Result<FieldEncoder> {
        fields::register(&self.tx, names)
    }

    /// Records a run whose content is the connector's last applied snapshot's,
    /// read no further, and commits; returns its id.
    ///
    /// # Errors
    /// On a database error; then nothing is recorded.
    pub(crate) fn finish_unchanged(self, run: &NewRun) -> Result<i64> {
        let id = insert_run(&self.tx, run, RunStatus::Unchanged)?;
        drop(self.hot);
        self.tx.commit()?;
        Ok(id)
    }

    /// Reads the stored state of a dossier.
    ///
    /// # Errors
    /// On a database error or a corrupt row.
    pub(crate) fn get(&self, rowid: i64) -> Result<Option<(Dossier, DateTime<Utc>)>> {
        let mut stmt = self.tx.prepare_cached(
            "SELECT source_id, step, status, fields, step_entered_at, scheme
             FROM dossiers WHERE id = ?1",
        )?;
        let mut rows = stmt.query([rowid])?;
        let Some(row) = rows.next()? else {
            return Ok(None);
        };
        let dossier = Dossier {
            id: row.get(0)?,
            step: row.get(1)?,
            status: row.get(2)?,
            fields: fields::decode(
                row.get_ref(3)?.as_blob()?,
                row.get(5)?,
                self.names.0,
                &self.tx,
            )?,
        };
        Ok(Some((dossier, parse_time(row.get_ref(4)?.as_str()?)?)))
    }

    /// The text of an instant, as stored.
    fn time_text(&self, t: DateTime<Utc>) -> std::cell::Ref<'_, str> {
        let mut last = self.last_time.borrow_mut();
        if last.0 != Some(t) {
            *last = (Some(t), format_time(t));
        }
        drop(last);
        std::cell::Ref::map(self.last_time.borrow(), |(_, text)| text.as_str())
    }

    /// Inserts a new dossier and returns its row id. The caller has made sure
    /// that its id is not stored yet for this connector.
    ///
    /// # Errors
    /// On a database error.
    pub(crate) fn insert(&self, connector: &str, w: &DossierWrite<'_>) -> Result<i64> {
        let entered = self.time_text(w.step_entered_at);
        let [reference, scheme, step, status, entered, fields] = w.state(&entered);
        self.hot.insert_dossier.borrow_mut().execute(&[
            Param::Kept(connector),
            Param::Text(&w.dossier.id),
            reference,
            scheme,
            step,
            status,
            entered,
            fields,
            Param::Int(self.run_id),
        ])?;
        let rowid = self.tx.last_insert_rowid();
        self.references
            .borrow_mut()
            .push(&self.tx, w.dossier.reference(), rowid)?;
        self.beneficiaries.borrow_mut().push(w.dossier, rowid);
        Ok(rowid)
    }

    /// Replaces the state of a stored dossier, which was `stored`, and marks
    /// it present.
    ///
    /// # Errors
    /// On a database error.
    pub(crate) fn update(&self, rowid: i64, stored: &Dossier, w: &DossierWrite<'_>) -> Result<()> {
        beneficiaries::changed(&self.tx, rowid, stored, w.dossier)?;
        if w.dossier.reference() != stored.reference() {
            self.references
                .borrow_mut()
                .push(&self.tx, w.dossier.reference(), rowid)?;
        }
        let entered = self.time_text(w.step_entered_at);
        let [reference, scheme, step, status, entered, fields] = w.state(&entered);
        self.tx
            .prepare_cached(
                "UPDATE dossiers SET reference = ?2, scheme = ?3, step = ?4, status = ?5,
                        step_entered_at = ?6, fields = ?7, last_run = ?8, present = 1
                 WHERE id = ?1",
            )?
            .execute(params![
                rowid,
                reference,
                scheme,
                step,
                status,
                entered,
                fields,
                self.run_id,
            ])?;
        Ok(())
    }

    /// The current step of a stored dossier.
    ///
    /// # Errors
    /// On a database error.
    pub(crate) fn step_of(&self, rowid: i64) -> Result<String> {
        Ok(self
            .tx
            .prepare_cached("SELECT step FROM dossiers WHERE id = ?1")?
            .query_row([rowid], |r| r.get(0))?)
    }

    /// Marks a dossier as missing from the latest snapshot.
    ///
    /// # Errors
    /// On a database error.
    pub(crate) fn mark_disappeared(&self, rowid: i64) -> Result<()> {
        self.tx
            .prepare_cached("UPDATE dossiers SET present = 0, last_run = ?2 WHERE id = ?1")?
            .execute(params![rowid, self.run_id])?;
        Ok(())
    }

    /// Records an event on a dossier.
    ///
    /// # Errors
    /// On a database error.
    pub(crate) fn insert_event(&self, rowid: i64, event: &Event, baseline: bool) -> Result<i64> {
        // Without a key, the row is always inserted.
        self.insert_event_keyed(rowid, event, baseline, None)
            .map(|id| id.unwrap_or_default())
    }

    /// Records an event; with a `key` (what it is about: a stay, a reminder), once:
    /// returns its id, or `None` when an event of this dossier has that key already.
    ///
    /// # Errors
    /// On a database error.
    pub(crate) fn insert_event_keyed(
        &self,
        rowid: i64,
        event: &Event,
        baseline: bool,
        key: Option<&str>,
    ) -> Result<Option<i64>> {
        fn text(v: &Option<String>) -> Param<'_> {
            Param::text_or_null(v.as_deref())
        }
        let inserted = self.hot.insert_event.borrow_mut().execute(&[
            Param::Int(self.run_id),
            Param::Int(rowid),
            Param::Static(event.kind.as_str()),
            text(&event.from_step),
            text(&event.to_step),
            text(&event.field),
            text(&event.old_value),
            text(&event.new_value),
            Param::Text(&self.time_text(event.occurred_at)),
            Param::Int(baseline.into()),
            Param::Int(event.notified_by_source.into()),
            Param::text_or_null(key),
        ])?;
        Ok((inserted == 1).then(|| self.tx.last_insert_rowid()))
    }

    /// Adds a message of the source to a dossier's timeline, once: returns false
    /// when this message is already there.
    ///
    /// # Errors
    /// On a database error.
    pub(crate) fn insert_message(
        &self,
        rowid: i64,
        message: &crate::model::SourceMessage,
        baseline: bool,
    ) -> Result<bool> {
        let mut event = Event::new(EventKind::Message, message.at);
        event.field = Some(message.from.clone());
        event.new_value = Some(message.text.clone());
        Ok(self
            .insert_event_keyed(rowid, &event, baseline, Some(&message.id))?
            .is_some())
    }

    /// Writes the final counts and rejections of the run and commits everything.
    ///
    /// # Errors
    /// On a database error; then nothing of the import is kept.
    pub(crate) fn finish(self, run: &NewRun, rejections: &[Rejection]) -> Result<i64> {
        let c = &run.counts;
        self.tx.execute(
            "UPDATE runs SET finished_at = ?2, rows = ?3, unchanged = ?4, created = ?5,
                    step_changed = ?6, field_changed = ?7, disappeared = ?8, reappeared = ?9,
                    rejected = ?10, warnings = ?11, alerts_queued = ?12, alerts_cancelled = ?13,
                    messages = ?14, stalled = ?15, deadline = ?16, review = ?17, changed = ?18
             WHERE id = ?1",
            params![
                self.run_id,
                format_time(run.finished_at),
                c.rows as i64,
                c.unchanged as i64,
                c.created as i64,
                c.step_changed as i64,
                c.field_changed as i64,
                c.disappeared as i64,
                c.reappeared as i64,
                c.rejected as i64,
                c.warnings as i64,
                c.alerts_queued as i64,
                c.alerts_cancelled as i64,
                c.messages as i64,
                c.stalled as i64,
                c.deadline as i64,
                c.review as i64,
                c.changed as i64,
            ],
        )?;
        insert_rejections(&self.tx, self.run_id, rejections)?;
        self.references.borrow_mut().flush(&self.tx)?;
        self.beneficiaries.borrow_mut().flush(&self.tx)?;
        #[cfg(debug_assertions)]
        self.check_links()?;
        drop(self.hot);
        self.tx.commit()?;
        Ok(self.run_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::BUSY_TIMEOUT;

    fn new_run() -> NewRun {
        NewRun::new("portail", "export.csv", "0".to_owned(), Utc::now())
    }

    fn foreign_keys(store: &Store) -> bool {
        store
            .conn
            .pragma_query_value(None, "foreign_keys", |r| r.get(0))
            .unwrap()
    }

    fn journal_mode(conn: &Connection) -> String {
        conn.query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap()
    }

    fn runs(conn: &Connection) -> i64 {
        conn.query_row("SELECT count(*) FROM runs", [], |r| r.get(0))
            .unwrap()
    }

    #[test]
    fn a_bulk_import_uses_the_rollback_journal_then_the_wal_again() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        let mut store = Store::open(&path, 8).unwrap();
        let run = new_run();
        // Committed.
        let mut tx = store.begin_bulk_import().unwrap();
        assert_eq!(journal_mode(&tx.tx), "delete");
        tx.start_run(&run).unwrap();
        tx.finish(&run, &[]).unwrap();
        assert_eq!(journal_mode(&store.conn), "wal");
        assert_eq!(runs(&store.conn), 1);
        // Rolled back.
        let mut tx = store.begin_bulk_import().unwrap();
        tx.start_run(&run).unwrap();
        drop(tx);
        assert_eq!(journal_mode(&store.conn), "wal");
        assert_eq!(runs(&store.conn), 1, "the rolled-back run is gone");
        assert!(!dir.path().join("state.db-journal").exists());
        // Another program has the database open: the WAL, without waiting.
        let other = Connection::open(&path).unwrap();
        assert_eq!(runs(&other), 1);
        let started = std::time::Instant::now();
        let mut tx = store.begin_bulk_import().unwrap();
        assert_eq!(journal_mode(&tx.tx), "wal");
        assert!(
            started.elapsed() < BUSY_TIMEOUT / 2,
            "{:?}",
            started.elapsed()
        );
        tx.start_run(&run).unwrap();
        tx.finish(&run, &[]).unwrap();
        assert_eq!(runs(&other), 2, "the other program reads the import");
    }

    fn synchronous(conn: &Connection) -> i64 {
        conn.query_row("PRAGMA synchronous", [], |r| r.get(0))
            .unwrap()
    }

    /// Regression: an import committed with the WAL's `synchronous = NORMAL`,
    /// so a power cut right after could take it back while its file was
    /// already archived or deleted.
    #[test]
    fn an_import_commits_durably_and_other_writes_keep_the_wal_syncs() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("state.db"), 8).unwrap();
        assert_eq!(synchronous(&store.conn), 1, "NORMAL outside imports");
        let run = new_run();
        for bulk in [true, false] {
            let mut tx = if bulk {
                store.begin_bulk_import().unwrap()
            } else {
                store.begin_import().unwrap()
            };
            assert_eq!(synchronous(&tx.tx), 2, "FULL during an import");
            tx.start_run(&run).unwrap();
            tx.finish(&run, &[]).unwrap();
            assert_eq!(synchronous(&store.conn), 1, "NORMAL again after it");
        }
    }

    #[test]
    fn an_import_that_would_break_a_link_is_not_committed() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("state.db"), 8).unwrap();
        let mut tx = store.begin_import().unwrap();
        let run = new_run();
        tx.start_run(&run).unwrap();
        // An event of a dossier that does not exist.
        tx.insert_event_keyed(
            4242,
            &Event::new(EventKind::Created, run.started_at),
            false,
            None,
        )
        .unwrap();
        let error = tx.finish(&run, &[]).unwrap_err().to_string();
        assert!(error.contains("events"), "{error}");
        assert!(foreign_keys(&store), "checks are back on after the import");
        let runs: i64 = store
            .conn
            .query_row("SELECT count(*) FROM runs", [], |r| r.get(0))
            .unwrap();
        assert_eq!(runs, 0, "nothing of the import was committed");
    }

    #[test]
    fn foreign_keys_are_checked_again_after_an_import_rolls_back() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("state.db"), 8).unwrap();
        drop(store.begin_import().unwrap());
        assert!(foreign_keys(&store));
        let orphan = store.conn.execute(
            "INSERT INTO events (run_id, dossier_id, kind, occurred_at, baseline)
             VALUES (1, 1, 'created', '2026-01-01T00:00:00Z', 0)",
            [],
        );
        assert!(orphan.is_err(), "outside imports SQLite checks the links");
    }
}
