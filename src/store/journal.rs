//! The journal mode of the database: WAL, except during a bulk import
//! (see `Store::begin_bulk_import`), which uses SQLite's rollback journal when
//! no other program has the database open.

use rusqlite::Connection;

use super::Result;

/// Sets the journal mode; returns whether the database is in it now (SQLite
/// keeps the old mode when another connection prevents the change).
fn set(conn: &Connection, mode: &str) -> Result<bool> {
    let now: String = conn.query_row(&format!("PRAGMA journal_mode = {mode}"), [], |r| r.get(0))?;
    Ok(now.eq_ignore_ascii_case(mode))
}

/// Switches to the rollback journal, with full syncs (the journal is synced
/// before the database is written: a power cut cannot leave half a
/// transaction); false when another program has the database open.
pub(super) fn rollback(conn: &Connection) -> Result<bool> {
    // Leaving the WAL needs the database alone: do not wait for others.
    conn.busy_timeout(std::time::Duration::ZERO)?;
    let switched = set(conn, "delete");
    conn.busy_timeout(super::BUSY_TIMEOUT)?;
    match switched {
        Ok(true) => {
            conn.pragma_update(None, "synchronous", "FULL")?;
            Ok(true)
        }
        Ok(false) | Err(_) => {
            tracing::debug!("Another program has the database open: the import uses the WAL.");
            Ok(false)
        }
    }
}

/// Makes sure the database is in WAL mode (with the rollback journal's full
/// syncs while another program prevents it).
pub(super) fn wal(conn: &Connection) -> Result<()> {
    let in_wal = set(conn, "wal")?;
    if !in_wal {
        tracing::warn!(
            "The database is not in WAL mode and another program holds it: trying again at the next import."
        );
    }
    let synchronous = if in_wal { "NORMAL" } else { "FULL" };
    conn.pragma_update(None, "synchronous", synchronous)?;
    Ok(())
}

/// Puts the database back in WAL mode, with the WAL's usual syncs, once an
/// import's transaction ended.
pub(super) struct Restore<'a>(pub(super) &'a Connection);

impl Drop for Restore<'_> {
    fn drop(&mut self) {
        if let Err(error) = wal(self.0) {
            tracing::error!(%error, "Cannot put the database back in WAL mode; trying again at the next import.");
        }
    }
}
