//! The RGPD purge beyond the state database: the copies of exports, records and
//! messages that Alertissimo keeps in files, expired once older than `[retention]
//! personal_data`.
//!
//! Owns which files are such copies and their deletion; the store's part of the
//! purge (the personal data of closed dossiers, the rejected records of old
//! imports) is `store::retention`. What goes, by modification time:
//! - the exports archived by file connectors (`<stamp>-<name>` in their
//!   `[source] archive_dir`);
//! - the `.eml` files of the `file` transport (`[delivery.file] dir`), whatever
//!   the transport is now;
//! - the API spools a crash left beside the database (see
//!   [`crate::connector::spool::is_left_over`]).
//!
//! Only files whose names Alertissimo gives are deleted, never a folder, and
//! never a file in a sub-folder.
// See: issue 17, item 17 (the RGPD purge reaches every copy).

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::Serialize;

use crate::config::Config;
use crate::connector::Connector;

/// The folders that hold copies, and which of their files are copies.
#[derive(Debug, Clone)]
pub struct Copies {
    /// The archive folders of the file connectors.
    archives: Vec<PathBuf>,
    /// The folder of the `file` transport.
    messages: PathBuf,
    /// The folder of the API spools: the state database's.
    spools: PathBuf,
}

/// How many copies a purge deleted (or would delete).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Swept {
    /// Archived exports.
    pub archived_files: u64,
    /// Messages written by the `file` transport.
    pub eml_files: u64,
    /// API spools left by a crash.
    pub spool_files: u64,
}

impl Swept {
    /// How many files in all.
    pub fn total(&self) -> u64 {
        self.archived_files + self.eml_files + self.spool_files
    }
}

impl Copies {
    /// Where the copies of `config` and its (valid) `connectors` lie.
    pub fn of(config: &Config, connectors: &[Connector]) -> Self {
        let mut archives: Vec<PathBuf> = connectors
            .iter()
            .filter_map(|c| c.source.folder())
            .map(|f| f.archive_dir.clone())
            .collect();
        archives.sort();
        archives.dedup();
        Self {
            archives,
            messages: config.delivery.file_dir.clone(),
            spools: crate::import::spool_dir(&config.store.path),
        }
    }

    /// Deletes (with `dry_run`, counts) the copies last modified before `before`.
    /// A folder that does not exist holds none.
    ///
    /// # Errors
    /// The files or folders that could not be read or deleted, each named with
    /// the reason; the others are deleted all the same.
    pub fn sweep(&self, before: SystemTime, dry_run: bool) -> (Swept, Vec<String>) {
        let mut swept = Swept::default();
        let mut failures = Vec::new();
        for dir in &self.archives {
            swept.archived_files += sweep_dir(
                dir,
                crate::connector::folder::is_archived_name,
                before,
                dry_run,
                &mut failures,
            );
        }
        swept.eml_files = sweep_dir(
            &self.messages,
            crate::transport::file::is_message_file,
            before,
            dry_run,
            &mut failures,
        );
        swept.spool_files = sweep_dir(
            &self.spools,
            crate::connector::spool::is_left_over,
            before,
            dry_run,
            &mut failures,
        );
        (swept, failures)
    }
}

/// Deletes the files of `dir` (not of its sub-folders) whose name is a copy's and
/// that were last modified before `before`; returns how many.
fn sweep_dir(
    dir: &Path,
    is_copy: fn(&str) -> bool,
    before: SystemTime,
    dry_run: bool,
    failures: &mut Vec<String>,
) -> u64 {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return 0,
        Err(error) => {
            failures.push(format!("cannot list {}: {error}", dir.display()));
            return 0;
        }
    };
    let mut deleted = 0;
    for entry in entries.filter_map(Result::ok) {
        let path = entry.path();
        if !entry.file_name().to_str().is_some_and(is_copy) {
            continue;
        }
        // Not followed: a link is never a copy Alertissimo made.
        let Ok(meta) = entry.metadata() else {
            continue;
        };
        if !meta.is_file() || meta.modified().map_or(true, |m| m >= before) {
            continue;
        }
        if dry_run {
            deleted += 1;
            continue;
        }
        match std::fs::remove_file(&path) {
            Ok(()) => deleted += 1,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => failures.push(format!("cannot delete {}: {error}", path.display())),
        }
    }
    deleted
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn aged(path: &Path, age: Duration) {
        std::fs::write(path, "Jeanne Martin").unwrap();
        let file = std::fs::File::options().write(true).open(path).unwrap();
        file.set_modified(SystemTime::now() - age).unwrap();
    }

    #[test]
    fn only_old_copies_named_by_alertissimo_go() {
        let dir = tempfile::tempdir().unwrap();
        let (archive, outbox, state) = (
            dir.path().join("archive"),
            dir.path().join("outbox"),
            dir.path().join("state"),
        );
        for d in [&archive, &outbox, &state] {
            std::fs::create_dir_all(d).unwrap();
        }
        let year = Duration::from_secs(365 * 86_400);
        let old = [
            archive.join("20200101T000000Z-export.csv"),
            outbox.join("abc.alertissimo_x.fr.eml"),
            outbox.join(".def.alertissimo_x.fr.eml.tmp"),
            state.join(".tmpAb12Cd"),
        ];
        let kept = [
            archive.join("notes.txt"),
            outbox.join("readme.txt"),
            state.join("alertissimo.db"),
            state.join(".tmp-notes"),
        ];
        for path in old.iter().chain(&kept) {
            aged(path, 4 * year);
        }
        let recent = archive.join("20261201T000000Z-export.csv");
        aged(&recent, Duration::from_secs(60));
        let copies = Copies {
            archives: vec![archive.clone(), dir.path().join("missing")],
            messages: outbox,
            spools: state,
        };
        let before = SystemTime::now() - 3 * year;
        let expected = Swept {
            archived_files: 1,
            eml_files: 2,
            spool_files: 1,
        };
        assert_eq!(copies.sweep(before, true), (expected, Vec::new()));
        assert!(old.iter().all(|p| p.exists()), "a dry run deleted");
        assert_eq!(copies.sweep(before, false), (expected, Vec::new()));
        assert!(old.iter().all(|p| !p.exists()));
        assert!(kept.iter().chain([&recent]).all(|p| p.exists()));
    }
}
