//! `import --backfill`: a Region's archived exports, found in a folder (or by
//! a glob), each dated by its connector's `[as_of]`, put in date order, the
//! ones not after the last applied snapshot set aside (issue 19). A file dated
//! by a column is read here up to its first record; its import, given that
//! as-of as the file's own (`Options::as_of_from_file`), checks the others.
//!
//! Owns the plan only: which files, in which order, at which as-of. Each file
//! is then imported by the caller as any other (`import_file`, or the daemon
//! over the control socket), as a baseline: events recorded, no alert.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};

use crate::connector::Connector;

/// One archived export and when it was taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dated {
    /// The file.
    pub path: PathBuf,
    /// When it was taken, by the connector's `[as_of]`.
    pub as_of: DateTime<Utc>,
}

/// What a backfill does, file by file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Backfill {
    /// The files to import, oldest first.
    pub files: Vec<Dated>,
    /// The files taken no later than the last applied snapshot: passed over.
    pub passed_over: Vec<Dated>,
}

/// The plan of a backfill of `connector` from `spec` (a folder, or a glob),
/// given when its last applied snapshot was taken (`last`).
///
/// # Errors
/// When the connector has no `[as_of]`, nothing is found, or a file cannot
/// be dated: one message, each file on a line of its own.
pub fn plan(
    connector: &Connector,
    spec: &Path,
    last: Option<DateTime<Utc>>,
    tz: chrono_tz::Tz,
) -> Result<Backfill, String> {
    if connector.as_of.is_none() {
        return Err(format!(
            "connector '{}' has no [as_of]: a backfill dates each file by it; add to {} a table such as\n  [as_of]\n  file_name = \"export-%Y-%m-%d.csv\"\n  time = \"06:00\"\n(see docs/connectors.md), or import each file with --as-of",
            connector.name,
            connector.file.display()
        ));
    }
    let mut dated = Vec::new();
    let mut problems = Vec::new();
    for path in files(spec)? {
        match connector.file_as_of(&path, tz) {
            Some(Ok(at)) => dated.push(Dated { path, as_of: at }),
            Some(Err(reason)) => problems.push(reason),
            None => {}
        }
    }
    if !problems.is_empty() {
        return Err(format!(
            "nothing imported: {} file(s) cannot be dated (leave them out with a glob):\n  {}",
            problems.len(),
            problems.join("\n  ")
        ));
    }
    dated.sort_by(|a, b| (a.as_of, &a.path).cmp(&(b.as_of, &b.path)));
    let (passed_over, files) = dated
        .into_iter()
        .partition(|d| last.is_some_and(|last| d.as_of <= last));
    Ok(Backfill { files, passed_over })
}

/// The files of a folder (not its sub-folders, nor hidden files), or those a
/// glob matches.
fn files(spec: &Path) -> Result<Vec<PathBuf>, String> {
    let shown = spec.display();
    let mut found = Vec::new();
    if spec.is_dir() {
        let entries = std::fs::read_dir(spec).map_err(|e| format!("cannot list {shown}: {e}"))?;
        for entry in entries {
            let path = entry
                .map_err(|e| format!("cannot list {shown}: {e}"))?
                .path();
            let hidden = path
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('.'));
            if path.is_file() && !hidden {
                found.push(path);
            }
        }
    } else {
        let pattern = spec.to_string_lossy();
        let paths = glob::glob(&pattern).map_err(|e| format!("bad pattern {pattern}: {e}"))?;
        for path in paths {
            let path = path.map_err(|e| format!("cannot list {pattern}: {e}"))?;
            if path.is_file() {
                found.push(path);
            }
        }
    }
    if found.is_empty() {
        return Err(format!("no file in {shown}"));
    }
    found.sort();
    Ok(found)
}
