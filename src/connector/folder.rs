//! Drop folders: where file exports arrive, and where they go once read.
//!
//! Owns the part of a source shared by every file kind (`csv`, `spreadsheet`, `xml`): the
//! path or glob of the files, how long a file must stay unmodified before it is read
//! (a file still being written is left for the next tick), and what happens to it
//! once imported (archived, kept or deleted).

use std::io;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::FileProblems;

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
        let settle = match settle.map(crate::lifecycle::parse_duration) {
            None => std::time::Duration::from_secs(DEFAULT_SETTLE_SECONDS),
            Some(Ok(d)) => d,
            Some(Err(reason)) => {
                fp.file(format!("[source] settle: {reason}"));
                std::time::Duration::ZERO
            }
        };
        let archive_dir = match archive_dir {
            Some(dir) => base.join(dir),
            None => pattern
                .parent()
                .map_or_else(|| base.join("archive"), |p| p.join("archive")),
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
    pub fn files(&self) -> Result<Vec<PathBuf>, String> {
        let pattern = self.pattern.to_string_lossy();
        let paths = glob::glob(&pattern).map_err(|e| format!("bad pattern {pattern}: {e}"))?;
        let mut files = Vec::new();
        for entry in paths {
            let path = entry.map_err(|e| format!("cannot list {pattern}: {e}"))?;
            let Ok(meta) = std::fs::metadata(&path) else {
                continue;
            };
            if !meta.is_file() {
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
                    "Left a file modified moments ago (it may still be written); it is read at the next tick."
                );
                continue;
            }
            files.push(path);
        }
        files.sort();
        Ok(files)
    }

    /// Archives, keeps or deletes a file of the drop folder once imported.
    ///
    /// # Errors
    /// When the file cannot be moved or deleted.
    pub fn dispose(&self, file: &Path, stamp: &str) -> io::Result<Option<PathBuf>> {
        match self.after_import {
            AfterImport::Keep => Ok(None),
            AfterImport::Delete => std::fs::remove_file(file).map(|()| None),
            AfterImport::Archive => {
                std::fs::create_dir_all(&self.archive_dir)?;
                let name = file
                    .file_name()
                    .map(|n| n.to_string_lossy())
                    .unwrap_or_default();
                let target = self.archive_dir.join(format!("{stamp}-{name}"));
                if std::fs::rename(file, &target).is_err() {
                    // Another file system: copy, then remove.
                    std::fs::copy(file, &target)?;
                    std::fs::remove_file(file)?;
                }
                Ok(Some(target))
            }
        }
    }
}

/// The content checksum (xxh3-128, hex) and size of a file, read once.
///
/// # Errors
/// A reason naming the file when it cannot be read.
pub fn checksum(path: &Path) -> Result<(String, u64), String> {
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
