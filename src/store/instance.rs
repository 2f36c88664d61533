//! One daemon per state database, and copies of it while it runs.
//!
//! Owns the instance lock (`<database>.lock` beside the database, held by the
//! daemon for its whole life: a second daemon on the same state stops at once,
//! naming the first one's process) and the online backup (`VACUUM INTO`: a
//! consistent copy made inside one read transaction, while imports and deliveries
//! go on).

use std::fs::File;
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use super::{Result, Store, StoreError};

/// The instance lock, released when dropped (or when the process ends, however).
#[derive(Debug)]
pub struct InstanceLock {
    _file: File,
}

/// Why the lock could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another daemon holds it.
    #[error(
        "another Alertissimo daemon{pid} already uses the state database {database} (lock {lock}); stop it first, or give this one another store.path"
    )]
    Held {
        /// The database.
        database: String,
        /// The lock file.
        lock: String,
        /// " (process N)", when the lock file says.
        pid: String,
    },
    /// The lock file cannot be opened or written.
    #[error("cannot take the instance lock {lock}: {source}")]
    Io {
        /// The lock file.
        lock: String,
        /// Why.
        source: std::io::Error,
    },
}

/// The lock file of a database.
pub fn lock_path(database: &Path) -> PathBuf {
    let mut name = database.file_name().unwrap_or_default().to_os_string();
    name.push(".lock");
    database.with_file_name(name)
}

impl InstanceLock {
    /// Takes the lock of `database` for this process, or says who holds it.
    ///
    /// # Errors
    /// When another process holds it, or the file cannot be used.
    pub fn acquire(database: &Path) -> std::result::Result<Self, LockError> {
        let lock = lock_path(database);
        let io = |source| LockError::Io {
            lock: lock.display().to_string(),
            source,
        };
        if let Some(dir) = lock.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock)
            .map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut text = String::new();
                let _ = file.read_to_string(&mut text);
                let pid = text
                    .trim()
                    .parse::<u32>()
                    .map(|p| format!(" (process {p})"))
                    .unwrap_or_default();
                return Err(LockError::Held {
                    database: database.display().to_string(),
                    lock: lock.display().to_string(),
                    pid,
                });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io(e)),
        }
        file.set_len(0).map_err(io)?;
        file.rewind().map_err(io)?;
        writeln!(file, "{}", std::process::id()).map_err(io)?;
        Ok(Self { _file: file })
    }
}

impl Store {
    /// Writes a consistent copy of the database to `target` (which must not exist),
    /// while other connections go on writing: the copy is the state at one instant.
    /// It is written beside `target` and renamed, so that `target` is whole or absent.
    ///
    /// # Errors
    /// When `target` exists or cannot be written, or on a database error.
    pub(crate) fn backup(&self, target: &Path) -> Result<u64> {
        if target.exists() {
            return Err(StoreError::Backup(format!(
                "{} exists already: give a new file name",
                target.display()
            )));
        }
        let dir = match target.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        let partial = tempfile::Builder::new()
            .prefix(".alertissimo-backup-")
            .tempfile_in(dir)
            .map_err(|e| StoreError::Backup(format!("cannot write in {}: {e}", dir.display())))?
            .into_temp_path();
        // VACUUM INTO wants a file that does not exist yet.
        std::fs::remove_file(&partial)
            .map_err(|e| StoreError::Backup(format!("{}: {e}", partial.display())))?;
        self.conn.execute(
            "VACUUM INTO ?1",
            [partial.to_str().ok_or_else(|| {
                StoreError::Backup(format!("{}: not a UTF-8 path", partial.display()))
            })?],
        )?;
        let bytes = std::fs::metadata(&partial).map(|m| m.len()).unwrap_or(0);
        partial
            .persist(target)
            .map_err(|e| StoreError::Backup(format!("{}: {e}", target.display())))?;
        Ok(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_daemon_is_told_who_holds_the_state() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("state/alertissimo.db");
        let first = InstanceLock::acquire(&db).unwrap();
        let second = InstanceLock::acquire(&db).unwrap_err().to_string();
        assert!(second.contains("another Alertissimo daemon"), "{second}");
        assert!(
            second.contains(&format!("process {}", std::process::id())),
            "{second}"
        );
        assert!(second.contains("alertissimo.db.lock"), "{second}");
        drop(first);
        assert!(InstanceLock::acquire(&db).is_ok());
    }
}
