//! An API's answer kept on disk between fetching it and importing it.
//!
//! Owns the two halves of an API import. [`fetch`] reads a whole synchronisation
//! (every page of an `http_json` source, every démarche of a Démarches Simplifiées
//! source, and its deletions), through the [`Live`] reader the kind opens
//! ([`super::source::ApiSource`]), into a spool file, without touching the database;
//! [`SpoolTable`] then replays the spool as a table, in the import's one
//! transaction. Waiting on the network therefore never holds the database's write
//! lock: the daemon fetches on a thread of its own while alerts go on being
//! delivered, and a synchronisation that fails half-way has applied nothing.
//!
//! The spool is an unnamed temporary file in the state folder (it vanishes when
//! closed, even after a crash), one JSON line per record, ended by the line that
//! says how the synchronisation ended: its deletions and cursor, or the reason it
//! failed. Memory holds one page, whatever the number of dossiers. On a file
//! system without unnamed files (`O_TMPFILE`), it is created as `.tmpXXXXXX` and
//! removed at once: a crash in between leaves that file, which the retention
//! expires ([`is_left_over`]).

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Seek, Write};
use std::path::Path;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::Connector;
use super::http::JsonRows;
use super::mapping::Mapping;
use super::source::Reads;
use super::table::{Record, Records};
use crate::model::{SourceDeletion, SourceMessage};

/// Whether `name` may be a spool left over by a crash: the name `tempfile` gives
/// a temporary file where the file system has no unnamed ones (`.tmp` and six
/// letters or digits).
pub(crate) fn is_left_over(name: &str) -> bool {
    name.strip_prefix(".tmp")
        .is_some_and(|rest| rest.len() == 6 && rest.bytes().all(|b| b.is_ascii_alphanumeric()))
}

/// Where an API source stands when a synchronisation starts, as the store knows it.
#[derive(Debug, Clone, Default)]
pub struct ApiState {
    /// When its last applied import with the same connector file started, less a
    /// margin for clocks that differ (RFC 3339), for `updated_since`.
    pub last_start: Option<String>,
    /// Its stored synchronisation cursor.
    pub cursor: Option<String>,
}

/// One line of a spool.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
enum Line {
    /// A record, from page `page`, with the messages the source keeps about it.
    Record {
        page: u64,
        record: Value,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        messages: Vec<SourceMessage>,
    },
    /// The synchronisation ended: what the source said was deleted, where it
    /// stands now, and whether it read every dossier (a full snapshot).
    End {
        deleted: Vec<SourceDeletion>,
        cursor: Option<String>,
        #[serde(default)]
        full: bool,
    },
    /// The synchronisation failed: nothing of it is applied.
    Failed { reason: String },
}

/// A synchronisation fetched, ready to import.
#[derive(Debug)]
pub(crate) struct Spool {
    file: File,
    /// When the fetching started: the import's start, from which the next
    /// incremental synchronisation asks for changes.
    pub started_at: DateTime<Utc>,
    /// How many pages were fetched.
    pub pages: u64,
}

/// Why a synchronisation was not spooled. The source's own failures (HTTP
/// errors, bad pages, a missing secret) are not among them: they are spooled, for
/// the import to refuse the run with their reason.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SpoolError {
    /// A shutdown was asked while fetching.
    #[error("the synchronisation was interrupted by a shutdown")]
    Interrupted,
    /// The spool file could not be written.
    #[error("cannot write the spool file of connector {connector} in {dir}: {source}")]
    Io {
        /// The connector.
        connector: String,
        /// The folder.
        dir: String,
        /// Why.
        source: std::io::Error,
    },
}

/// One synchronisation of an API, as it answers page by page: what an API kind
/// opens ([`super::source::ApiSource::open`]).
pub trait Live {
    /// The next record, with the messages the source keeps about its dossier.
    ///
    /// # Errors
    /// A reason naming the source: an HTTP or API error, a malformed answer.
    fn next(&mut self) -> Result<Option<(Value, Vec<SourceMessage>)>, String>;

    /// How many pages were fetched so far.
    fn pages(&self) -> u64;

    /// How the synchronisation ended, once [`Live::next`] gave `None`: by
    /// default, no deletions, no cursor, changes only.
    fn end(&self) -> SyncEnd {
        SyncEnd::default()
    }
}

/// Where a synchronisation starts: what an API kind's reader is opened with.
pub struct SyncStart<'a> {
    /// Where the source stands, as the store knows it.
    pub state: ApiState,
    /// When the fetching started (RFC 3339).
    pub started: String,
    /// The connector's fingerprint (a changed connector file may start over).
    pub fingerprint: String,
    /// The connector's mapping (what the records must hold).
    pub mapping: &'a Mapping,
}

/// How a synchronisation ended.
#[derive(Debug, Default)]
pub struct SyncEnd {
    /// What the source said was deleted.
    pub deleted: Vec<SourceDeletion>,
    /// Where the source stands now, to store with the import.
    pub cursor: Option<String>,
    /// Whether it read every dossier (a full snapshot, not changes only).
    pub full: bool,
}

/// Opens the synchronisation of an API connector.
fn open(connector: &Connector, state: ApiState, started: String) -> Result<Box<dyn Live>, String> {
    let Reads::Api(api) = connector.source.reads() else {
        return Err(format!(
            "connector {}: reads files, not an API: give the file to import",
            connector.name
        ));
    };
    api.open(SyncStart {
        state,
        started,
        fingerprint: connector.fingerprint_text(),
        mapping: &connector.mapping,
    })
}

/// Fetches one whole synchronisation of an API connector into a spool in `dir`,
/// starting from `state`. `stop` is asked between pages; `progress` is told how
/// many pages were fetched.
///
/// # Errors
/// When a shutdown was asked, or the spool cannot be written.
pub(crate) fn fetch(
    connector: &Connector,
    state: ApiState,
    dir: &Path,
    stop: &dyn Fn() -> bool,
    progress: &dyn Fn(u64),
) -> Result<Spool, SpoolError> {
    let started_at = Utc::now();
    let io = |source| SpoolError::Io {
        connector: connector.name.clone(),
        dir: dir.display().to_string(),
        source,
    };
    let mut out = BufWriter::new(tempfile::tempfile_in(dir).map_err(io)?);
    let write = |out: &mut BufWriter<File>, line: &Line| -> std::io::Result<()> {
        serde_json::to_writer(&mut *out, line)?;
        out.write_all(b"\n")
    };
    let mut pages = 0;
    match open(connector, state, crate::model::instant_text(started_at)) {
        Err(reason) => write(&mut out, &Line::Failed { reason }).map_err(io)?,
        Ok(mut live) => loop {
            if stop() {
                return Err(SpoolError::Interrupted);
            }
            match live.next() {
                Ok(Some((record, messages))) => {
                    let line = Line::Record {
                        page: live.pages(),
                        record,
                        messages,
                    };
                    write(&mut out, &line).map_err(io)?;
                    if live.pages() != pages {
                        pages = live.pages();
                        progress(pages);
                    }
                }
                Ok(None) => {
                    pages = live.pages();
                    let SyncEnd {
                        deleted,
                        cursor,
                        full,
                    } = live.end();
                    let end = Line::End {
                        deleted,
                        cursor,
                        full,
                    };
                    write(&mut out, &end).map_err(io)?;
                    break;
                }
                Err(reason) => {
                    pages = live.pages();
                    write(&mut out, &Line::Failed { reason }).map_err(io)?;
                    break;
                }
            }
        },
    }
    let mut file = out.into_inner().map_err(|e| io(e.into_error()))?;
    file.rewind().map_err(io)?;
    Ok(Spool {
        file,
        started_at,
        pages,
    })
}

/// A spool read back as a table.
pub(crate) struct SpoolTable {
    reader: BufReader<File>,
    text: String,
    /// The records as rows.
    pub rows: JsonRows,
    end: SyncEnd,
    ended: bool,
}

impl SpoolTable {
    /// Reads `spool` from its start; `shown` names the source in messages.
    ///
    /// # Errors
    /// When the spool file cannot be read.
    pub(crate) fn open(spool: &Spool, mapping: &Mapping, shown: String) -> Result<Self, String> {
        let unreadable =
            |e: std::io::Error| format!("{shown}: cannot read the spooled synchronisation ({e})");
        let mut file = spool.file.try_clone().map_err(unreadable)?;
        file.rewind().map_err(unreadable)?;
        Ok(Self {
            reader: BufReader::with_capacity(256 * 1024, file),
            text: String::new(),
            rows: JsonRows::new(mapping, shown),
            end: SyncEnd::default(),
            ended: false,
        })
    }
}

impl Records for SpoolTable {
    fn headers(&self) -> &[String] {
        &self.rows.columns.headers
    }

    fn path(&self) -> &Path {
        Path::new(self.rows.shown())
    }

    /// The next record; the reason the synchronisation failed, when it did.
    fn next_record(&mut self) -> Result<Option<Record<'_>>, String> {
        if self.ended {
            return Ok(None);
        }
        let unreadable = |shown: &str, e: &dyn std::fmt::Display| {
            format!("{shown}: the spooled synchronisation cannot be read back ({e})")
        };
        self.text.clear();
        let read = self
            .reader
            .read_line(&mut self.text)
            .map_err(|e| unreadable(self.rows.shown(), &e))?;
        if read == 0 {
            return Err(unreadable(self.rows.shown(), &"it ends early"));
        }
        match serde_json::from_str(&self.text).map_err(|e| unreadable(self.rows.shown(), &e))? {
            Line::Record {
                page,
                record,
                messages,
            } => {
                let mut row = self.rows.row(&record, page);
                row.messages = messages;
                Ok(Some(row))
            }
            Line::End {
                deleted,
                cursor,
                full,
            } => {
                self.ended = true;
                self.end = SyncEnd {
                    deleted,
                    cursor,
                    full,
                };
                Ok(None)
            }
            Line::Failed { reason } => {
                self.ended = true;
                Err(reason)
            }
        }
    }

    fn vanished(&self, mapping: &Mapping) -> Vec<String> {
        self.rows.vanished(mapping)
    }

    fn is_api(&self) -> bool {
        true
    }

    /// The dossiers the source said were deleted, once every record is read.
    fn deleted(&self) -> &[SourceDeletion] {
        &self.end.deleted
    }

    /// Whether the synchronisation read every dossier (a snapshot, not changes
    /// only), once every record is read.
    fn full_snapshot(&self) -> bool {
        self.end.full
    }

    /// Where the synchronisation ends, once every record is read.
    fn cursor(&self) -> Option<String> {
        self.end.cursor.clone()
    }
}
