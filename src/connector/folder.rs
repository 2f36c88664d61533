//! Drop folders: where file exports arrive, and where they go once read.
//!
//! Owns the part of a source shared by every file kind (`csv`, `spreadsheet`, `xml`): the
//! path or glob of the files, how long a file must stay unmodified before it is read
//! (a file still being written is left until it has settled), and what happens to it
//! once imported (archived, kept or deleted).

use std::io;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::diag::FileProblems;

/// How long a drop-folder file must stay unmodified before it is read, by default.
const DEFAULT_SETTLE_SECONDS: u64 = 5;

/// What happens to a file of the drop folder once imported.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AfterImport {
    /// Move it into the archive folder, prefixed with the import time (the default).
    #[default]
    Archive,
    /// Leave it in place (its checksum prevents importing it twice).
    Keep,
    /// Delete it.
    Delete,
}

/// The files of a source and what becomes of them.
#[derive(Debug, Clone)]
pub struct DropFolder {
    /// An absolute path or glob pattern.
    pub pattern: PathBuf,
    /// What to do with imported files.
    pub after_import: AfterImport,
    /// Where archived files go.
    pub archive_dir: PathBuf,
    /// How long a file of the drop folder must stay unmodified before it is read.
    pub settle: std::time::Duration,
}

impl DropFolder {
    /// Validates the `path`, `after_import`, `archive_dir` and `settle` keys of a
    /// `[source]` table; relative paths are against `base`, the connector's folder.
    pub(crate) fn validate(
        path: &str,
        after_import: AfterImport,
        archive_dir: Option<&str>,
        settle: Option<&str>,
        base: &Path,
        fp: &mut FileProblems<'_>,
    ) -> Option<Self> {
        let before = fp.count();
        if path.trim().is_empty() {
            fp.file("[source] path must not be empty");
        }
        let pattern = base.join(path);
        if let Err(error) = glob::Pattern::new(&pattern.to_string_lossy()) {
            fp.file(format!(
                "[source] path '{path}' is not a valid glob pattern: {error}"
            ));
        }
        let settle = match settle.map(crate::diag::parse_duration) {
            None => std::time::Duration::from_secs(DEFAULT_SETTLE_SECONDS),
            Some(Ok(d)) => d,
            Some(Err(reason)) => {
                fp.file(format!("[source] settle: {reason}"));
                std::time::Duration::ZERO
            }
        };
        // By default beside the files, in the folder the pattern names before
        // any wildcard (`inbox/**/*.csv` → `inbox/archive`, never a folder
        // literally named `**`). Files under it are never read as new exports.
        let archive_dir = match archive_dir {
            Some(dir) => base.join(dir),
            None => literal_folder(&pattern).join("archive"),
        };
        (fp.count() == before).then_some(Self {
            pattern,
            after_import,
            archive_dir,
            settle,
        })
    }

    /// The files waiting in the drop folder, in name order (name exports so that
    /// they sort by date, as most back offices do: `export-2026-11-27.csv`).
    ///
    /// # Errors
    /// When the folder cannot be listed.
    pub(crate) fn files(&self) -> Result<Vec<PathBuf>, String> {
        let pattern = self.pattern.to_string_lossy();
        let paths = glob::glob(&pattern).map_err(|e| format!("bad pattern {pattern}: {e}"))?;
        let mut files = Vec::new();
        for entry in paths {
            let path = entry.map_err(|e| format!("cannot list {pattern}: {e}"))?;
            let Ok(meta) = std::fs::metadata(&path) else {
                continue;
            };
            // Archived files are never new exports, whatever the pattern matches.
            if !meta.is_file() || path.starts_with(&self.archive_dir) {
                continue;
            }
            let age = meta
                .modified()
                .ok()
                .and_then(|m| m.elapsed().ok())
                .unwrap_or_default();
            if age < self.settle {
                tracing::info!(
                    file = %path.display(),
                    "Left a file modified moments ago (it may still be written); it is read once it has stayed unmodified for the connector's settle time."
                );
                continue;
            }
            files.push(path);
        }
        files.sort();
        Ok(files)
    }

    /// How long until the youngest file of the drop folder that is still too
    /// recent to be read ([`Self::files`] leaves it) has stayed unmodified for
    /// `settle`; none when no file waits so. The daemon looks again then, not at
    /// the connector's next scheduled import.
    pub(crate) fn settling(&self) -> Option<std::time::Duration> {
        let pattern = self.pattern.to_string_lossy();
        glob::glob(&pattern)
            .ok()?
            .flatten()
            .filter(|path| !path.starts_with(&self.archive_dir))
            .filter_map(|path| std::fs::metadata(path).ok())
            .filter(std::fs::Metadata::is_file)
            .filter_map(|meta| meta.modified().ok()?.elapsed().ok())
            .filter(|age| *age < self.settle)
            .map(|age| self.settle - age)
            .max()
    }

    /// Archives, keeps or deletes a file of the drop folder once imported. An
    /// archived file never replaces another (two files of one name from two
    /// sub-folders, or archived in the same second, both survive: the second
    /// gets `-2`), and the move is synced to the disk (both folders) before this
    /// returns, as the import it follows was.
    ///
    /// # Errors
    /// When the file cannot be moved or deleted.
    pub(crate) fn dispose(&self, file: &Path, stamp: &str) -> io::Result<Option<PathBuf>> {
        let from = file.parent().map(Path::to_owned).unwrap_or_default();
        match self.after_import {
            AfterImport::Keep => Ok(None),
            AfterImport::Delete => {
                std::fs::remove_file(file)?;
                sync_folder(&from)?;
                Ok(None)
            }
            AfterImport::Archive => {
                std::fs::create_dir_all(&self.archive_dir)?;
                let name = file
                    .file_name()
                    .map(|n| n.to_string_lossy())
                    .unwrap_or_default();
                let target = archive_without_clobbering(file, &self.archive_dir, stamp, &name)?;
                sync_folder(&self.archive_dir)?;
                sync_folder(&from)?;
                Ok(Some(target))
            }
        }
    }
}

/// Whether `name` is the name of an archived export, `<stamp>-<name>` (the
/// stamp being the import's time, `20261205T200000Z`): the retention expires
/// these, and nothing else an archive folder may hold.
pub(crate) fn is_archived_name(name: &str) -> bool {
    let b = name.as_bytes();
    b.len() > 17
        && b[..8].iter().all(u8::is_ascii_digit)
        && b[8] == b'T'
        && b[9..15].iter().all(u8::is_ascii_digit)
        && b[15] == b'Z'
        && b[16] == b'-'
}

/// The folder a pattern names before its first wildcard: for a pattern
/// without one, the file's folder.
fn literal_folder(pattern: &Path) -> PathBuf {
    let mut components: Vec<_> = pattern.components().collect();
    components.pop(); // the file's name, or its pattern
    let mut folder = PathBuf::new();
    for c in components {
        if c.as_os_str().to_string_lossy().contains(['*', '?', '[']) {
            break;
        }
        folder.push(c);
    }
    folder
}

/// Moves `file` into `dir` as `<stamp>-<name>`, or `<stamp>-<n>-<name>` when
/// that is taken: a hard link never replaces an existing file, then the
/// original goes. Across file systems, a copy made with `create_new`, synced.
fn archive_without_clobbering(
    file: &Path,
    dir: &Path,
    stamp: &str,
    name: &str,
) -> io::Result<PathBuf> {
    for n in 1..10_000u32 {
        let target = if n == 1 {
            dir.join(format!("{stamp}-{name}"))
        } else {
            dir.join(format!("{stamp}-{n}-{name}"))
        };
        let placed = match std::fs::hard_link(file, &target) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            // Another file system (or no hard links there): copy, without replacing.
            Err(_) => copy_new(file, &target),
        };
        match placed {
            Ok(()) => {
                std::fs::remove_file(file)?;
                return Ok(target);
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::other(format!(
        "{}: every archive name for {name} is taken",
        dir.display()
    )))
}

/// Copies `from` into a new file `to` (never replacing one), synced.
fn copy_new(from: &Path, to: &Path) -> io::Result<()> {
    let mut target = std::fs::File::options()
        .write(true)
        .create_new(true)
        .open(to)?;
    io::copy(&mut std::fs::File::open(from)?, &mut target)?;
    target.sync_all()
}

/// Makes a folder's entries durable (a rename or a removal in it survives a
/// power cut once this returns).
fn sync_folder(dir: &Path) -> io::Result<()> {
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    std::fs::File::open(dir)?.sync_all()
}

/// The content checksum (xxh3-128, hex) and size of a file, read once.
///
/// # Errors
/// A reason naming the file when it cannot be read.
pub(crate) fn checksum(path: &Path) -> Result<(String, u64), String> {
    use std::io::Read;
    let mut file =
        std::fs::File::open(path).map_err(|e| format!("{}: cannot open: {e}", path.display()))?;
    let mut hasher = xxhash_rust::xxh3::Xxh3::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut bytes = 0u64;
    loop {
        let n = file
            .read(&mut buf)
            .map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
        if n == 0 {
            return Ok((format!("{:032x}", hasher.digest128()), bytes));
        }
        hasher.update(&buf[..n]);
        bytes += n as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn folder(pattern: &Path, archive_dir: PathBuf) -> DropFolder {
        DropFolder {
            pattern: pattern.to_owned(),
            after_import: AfterImport::Archive,
            archive_dir,
            settle: std::time::Duration::ZERO,
        }
    }

    #[test]
    fn archived_names_are_told_from_other_files() {
        assert!(is_archived_name("20261205T200000Z-export.csv"));
        assert!(is_archived_name("20261205T200000Z-2-export.csv"));
        for other in [
            "export.csv",
            "20261205T200000Z-",
            "2026-12-05-export.csv",
            "notes.txt",
        ] {
            assert!(!is_archived_name(other), "{other}");
        }
    }

    /// Regression: two files of one name (from two sub-folders, or archived in
    /// the same second) went to one archive name, the second replacing the first.
    #[test]
    fn archive_names_never_collide() {
        let dir = tempfile::tempdir().unwrap();
        let inbox = dir.path().join("inbox");
        for (sub, text) in [("a", "first"), ("b", "second")] {
            std::fs::create_dir_all(inbox.join(sub)).unwrap();
            std::fs::write(inbox.join(sub).join("export.csv"), text).unwrap();
        }
        let drop = folder(&inbox.join("*/*.csv"), inbox.join("archive"));
        let files = drop.files().unwrap();
        assert_eq!(files.len(), 2);
        let archived: Vec<PathBuf> = files
            .iter()
            .map(|f| drop.dispose(f, "20261205T200000Z").unwrap().unwrap())
            .collect();
        assert_ne!(archived[0], archived[1]);
        let mut texts: Vec<String> = archived
            .iter()
            .map(|p| std::fs::read_to_string(p).unwrap())
            .collect();
        texts.sort();
        assert_eq!(texts, ["first", "second"]);
        assert!(drop.files().unwrap().is_empty(), "the originals are gone");
    }

    /// Regression: with `**` in the pattern, the default archive was a folder
    /// literally named `**`, which the pattern matched again: archived files
    /// came back as new exports.
    #[test]
    fn the_default_archive_never_lies_inside_the_glob() {
        let dir = tempfile::tempdir().unwrap();
        let inbox = dir.path().join("inbox");
        std::fs::create_dir_all(inbox.join("2026")).unwrap();
        std::fs::write(inbox.join("2026/export.csv"), "x").unwrap();
        let pattern = inbox.join("**/*.csv");
        let archive = literal_folder(&pattern).join("archive");
        assert_eq!(archive, inbox.join("archive"));
        assert_eq!(literal_folder(&inbox.join("export.csv")), inbox);
        let drop = folder(&pattern, archive);
        let file = drop.files().unwrap().pop().unwrap();
        let archived = drop.dispose(&file, "20261205T200000Z").unwrap().unwrap();
        assert!(archived.starts_with(inbox.join("archive")), "{archived:?}");
        assert!(
            drop.files().unwrap().is_empty(),
            "archived files are not read again"
        );
        assert!(!inbox.join("**").exists());
    }
}
