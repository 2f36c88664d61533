//! A file export read as a table: a header row, then data records.
//!
//! Owns what every kind shares once its bytes are read: the [`FirstPass`] over a
//! file before the import's transaction, the [`Records`] trait each kind's reader
//! implements and the [`Table`] the importer streams records from (a CSV file, a
//! sheet of a workbook, an XML file, an API's spooled synchronisation), the
//! search for the header row below title rows, resolving a mapping against the
//! header, and the volatile columns left out of change detection.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;

use super::csv::Inspected;
use super::mapping::{Mapping, Resolved, ValueSource, normalize};
use super::source::{Reads, Source};
use super::spool::SpoolTable;
use super::{Connector, Origin, folder};
use crate::diag::FileProblems;

/// How many records are searched for the header row.
pub(crate) const HEADER_SEARCH: usize = 50;

/// A data record and where it is, borrowed from the reader's buffer.
#[derive(Debug)]
pub struct Record<'a> {
    /// The line where the record starts (1-based).
    pub line: u64,
    /// Its number among data records (1 = first after the header).
    pub number: u64,
    /// Its fields, valid UTF-8 (the whole text was checked or decoded before,
    /// or converted from spreadsheet cells).
    pub fields: &'a ::csv::ByteRecord,
    /// How far into the file it is, in bytes (CSV) or rows (spreadsheets), for
    /// progress.
    pub offset: u64,
    /// Messages about the dossier the source keeps (Démarches Simplifiées).
    pub messages: Vec<crate::model::SourceMessage>,
}

impl<'a> Record<'a> {
    /// A record without messages.
    pub(crate) fn new(line: u64, number: u64, fields: &'a ::csv::ByteRecord, offset: u64) -> Self {
        Self {
            line,
            number,
            fields,
            offset,
            messages: Vec::new(),
        }
    }

    /// The text of field `i`.
    pub(crate) fn get(&self, i: usize) -> Option<&'a str> {
        // Each field on its own: most imports read only the id of most records
        // (their hash is unchanged), and checking whole records cost a re-import
        // a tenth of its time.
        self.fields.get(i).and_then(|b| std::str::from_utf8(b).ok())
    }

    /// The text of every field, checked in one pass: cheaper than [`Record::get`]
    /// when most fields are read (to map a record).
    pub(crate) fn text(&self) -> RecordText<'a> {
        RecordText {
            fields: self.fields,
            text: std::str::from_utf8(self.fields.as_slice()).ok(),
        }
    }
}

/// The fields of a record read as text (see [`Record::text`]).
pub(crate) struct RecordText<'a> {
    fields: &'a ::csv::ByteRecord,
    /// All the fields end to end, when that is UTF-8.
    text: Option<&'a str>,
}

impl<'a> RecordText<'a> {
    /// The text of field `i`, as [`Record::get`] gives it.
    pub(crate) fn get(&self, i: usize) -> Option<&'a str> {
        // A field is the text between its bounds; `None` if a bound is not at
        // a character's start, as a field that is not UTF-8 on its own would be.
        let range = self.fields.range(i)?;
        match self.text {
            Some(text) => text.get(range),
            None => std::str::from_utf8(&self.fields.as_slice()[range]).ok(),
        }
    }
}

/// What the first pass over a file learnt.
pub enum FirstPass {
    /// A text file: its checksum, size and encoding.
    Text(Inspected),
    /// A binary file (a workbook): its checksum and size.
    Binary {
        /// xxh3-128 of the content, hex.
        checksum: String,
        /// The size.
        bytes: u64,
    },
    /// An API: nothing to read before the records.
    Api,
}

impl FirstPass {
    /// Reads a file of a source once (nothing for an API).
    ///
    /// # Errors
    /// A reason naming the file.
    pub(crate) fn of(origin: Origin<'_>, source: &Arc<dyn Source>) -> Result<Self, String> {
        match (origin, source.reads()) {
            (Origin::File(path), Reads::Files(files)) => files.first_pass(path),
            (Origin::File(path), Reads::Api(_)) => {
                folder::checksum(path).map(|(checksum, bytes)| Self::Binary { checksum, bytes })
            }
            (Origin::Api(_), _) => Ok(Self::Api),
        }
    }

    /// The encoding a text file is decoded with (its WHATWG name).
    pub(crate) fn encoding(&self) -> Option<&'static str> {
        match self {
            Self::Text(i) => Some(i.encoding.name()),
            Self::Binary { .. } | Self::Api => None,
        }
    }

    /// The content checksum, for files.
    pub(crate) fn checksum(&self) -> Option<&str> {
        match self {
            Self::Text(i) => Some(&i.checksum),
            Self::Binary { checksum, .. } => Some(checksum),
            Self::Api => None,
        }
    }

    /// The file size (0 for an API).
    pub(crate) fn bytes(&self) -> u64 {
        match self {
            Self::Text(i) => i.bytes,
            Self::Binary { bytes, .. } => *bytes,
            Self::Api => 0,
        }
    }

    /// Opens the file (or the spooled synchronisation) as a table, and how far its
    /// records' offsets go (for progress).
    ///
    /// # Errors
    /// A reason naming the file: unreadable, or no header row.
    pub(crate) fn open(
        &self,
        origin: Origin<'_>,
        connector: &Connector,
    ) -> Result<(Table, u64), String> {
        match (origin, connector.source.reads()) {
            (Origin::Api(spool), _) => {
                let shown = connector.source.address().unwrap_or_default();
                let table = SpoolTable::open(spool, &connector.mapping, shown)?;
                Ok((Box::new(table), spool.pages))
            }
            (Origin::File(path), Reads::Files(files)) => files.open(path, self, &connector.mapping),
            (Origin::File(path), Reads::Api(_)) => Err(format!(
                "{}: connector {} reads its API, not files",
                path.display(),
                connector.name
            )),
        }
    }
}

/// An opened export, positioned on its first record: what every kind's reader
/// gives the importer.
pub(crate) type Table = Box<dyn Records>;

/// The records of an opened export (a CSV file, a sheet of a workbook, an XML
/// file, an API's spooled synchronisation), one at a time.
pub trait Records: Send {
    /// The header row, one name per column (the mapping's own names for a
    /// source whose records name their fields).
    fn headers(&self) -> &[String];

    /// The line (row) of the header.
    fn header_line(&self) -> u64 {
        // A source whose records name their fields has no header row: its
        // "header" is the mapping's own names.
        1
    }

    /// The file (or the address of an API).
    fn path(&self) -> &Path;

    /// The next data record.
    ///
    /// # Errors
    /// A reason naming the file and line when the file cannot be read further.
    fn next_record(&mut self) -> Result<Option<Record<'_>>, String>;

    /// Once every record is read: the mapped columns no record had (for
    /// sources whose records name their fields; a missing CSV or spreadsheet
    /// column is found in the header, before any record).
    fn vanished(&self, _mapping: &Mapping) -> Vec<String> {
        Vec::new()
    }

    /// Whether it is an API (whose synchronisations may send a dossier twice).
    fn is_api(&self) -> bool {
        false
    }

    /// The dossiers the source said were deleted (an explicit deletion feed).
    fn deleted(&self) -> &[crate::model::SourceDeletion] {
        &[]
    }

    /// Whether an API's synchronisation read every dossier, though the connector
    /// is incremental (DS, started over after its connector file changed).
    fn full_snapshot(&self) -> bool {
        false
    }

    /// Where the source's synchronisation ends, to store with the import.
    fn cursor(&self) -> Option<String> {
        None
    }
}

impl dyn Records {
    /// Resolves a mapping against the header, as one refusal reason.
    ///
    /// # Errors
    /// The missing columns, with the file name and the header's line.
    pub(crate) fn resolve<'m>(&self, mapping: &'m Mapping) -> Result<Resolved<'m>, String> {
        mapping.resolve(self.headers()).map_err(|missing| {
            format!(
                "{}:{}: {}",
                self.path().display(),
                self.header_line(),
                missing.join("; ")
            )
        })
    }

    /// Indexes of the volatile columns.
    pub(crate) fn volatile_columns(&self, volatile: &[String]) -> Vec<usize> {
        let wanted: Vec<String> = volatile.iter().map(|v| normalize(v)).collect();
        self.headers()
            .iter()
            .enumerate()
            .filter(|(_, h)| wanted.contains(&normalize(h)))
            .map(|(i, _)| i)
            .collect()
    }
}

/// The columns of a source whose records name their fields (XML paths, JSON
/// pointers): the names the mapping uses, how many records had each, and names
/// seen in the records, to suggest one for a name no record has.
pub(crate) struct NamedColumns {
    /// The column names, as the mapping writes them.
    pub headers: Vec<String>,
    found: Vec<u64>,
    known: BTreeSet<String>,
}

/// How many names seen are kept for suggestions.
const KNOWN_NAMES: usize = 512;

impl NamedColumns {
    /// Every name `mapping` reads a column by, its fields' then the columns
    /// it reads beside them.
    pub(crate) fn of(mapping: &Mapping) -> Self {
        let mut headers: Vec<String> = Vec::new();
        let fields = mapping.fields().iter().filter_map(|f| match &f.source {
            ValueSource::Column(names) | ValueSource::Columns(names, _) => Some(names),
            ValueSource::Constant(_) => None,
        });
        for name in fields.flatten().chain(mapping.beside()) {
            if !headers.contains(name) {
                headers.push(name.clone());
            }
        }
        Self {
            found: vec![0; headers.len()],
            headers,
            known: BTreeSet::new(),
        }
    }

    /// A record had column `i`.
    pub(crate) fn found(&mut self, i: usize) {
        self.found[i] += 1;
    }

    /// Whether more names seen are worth keeping.
    pub(crate) fn wants_names(&self) -> bool {
        self.known.len() < KNOWN_NAMES
    }

    /// A name seen in a record (copied only the first time).
    pub(crate) fn saw(&mut self, name: &str) {
        if self.wants_names() && !self.known.contains(name) {
            self.known.insert(name.to_owned());
        }
    }

    /// After the last record: a refusal reason for each mapped field that no record
    /// had, naming the closest name seen (`what` is "path" or "pointer"; `source`
    /// and `record` say where: `"export.xml"`, `"<dossier> record"`).
    pub(crate) fn vanished(
        &self,
        mapping: &Mapping,
        source: &str,
        record: &str,
        what: &str,
    ) -> Vec<String> {
        let mut reasons = Vec::new();
        for f in mapping.fields() {
            let ValueSource::Column(names) = &f.source else {
                continue;
            };
            let found = names.iter().any(|n| {
                self.headers
                    .iter()
                    .position(|h| h == n)
                    .is_some_and(|i| self.found[i] > 0)
            });
            if found || f.optional() {
                continue;
            }
            let wanted = names
                .iter()
                .map(|n| format!("'{n}'"))
                .collect::<Vec<_>>()
                .join(" or ");
            let hint = names
                .iter()
                .filter_map(|n| crate::diag::closest(n, self.known.iter().map(String::as_str)))
                .next()
                .map(|c| format!(" (closest {what} found: '{c}')"))
                .unwrap_or_default();
            reasons.push(format!(
                "{source}: no {record} has {wanted} for field '{}'{hint}",
                f.name
            ));
        }
        reasons
    }
}

/// Reads a `header_row` setting: `"auto"` (or absent) to search, or a line from 1.
pub(crate) fn header_row(value: Option<toml::Value>, fp: &mut FileProblems<'_>) -> Option<u64> {
    match value {
        None => None,
        Some(toml::Value::String(s)) if s == "auto" => None,
        Some(toml::Value::Integer(n)) if n >= 1 => Some(n as u64),
        Some(other) => {
            fp.file(format!(
                "[source] header_row must be \"auto\" or a line number from 1, found {other}"
            ));
            None
        }
    }
}

/// Which of the first rows of a file (`texts`, starting at `lines`) is the header:
/// the one at `header_row` when set, else the one matching the most mapped columns.
///
/// # Errors
/// A reason naming the file when there is no such row.
pub(crate) fn pick_header(
    path: &Path,
    texts: &[Vec<String>],
    lines: &[u64],
    header_row: Option<u64>,
    mapping: &Mapping,
) -> Result<usize, String> {
    match header_row {
        Some(line) => lines.iter().position(|&l| l == line).ok_or_else(|| {
            format!(
                "{}: no record starts at line {line} (header_row)",
                path.display()
            )
        }),
        None => {
            let scores: Vec<usize> = texts.iter().map(|t| mapping.header_score(t)).collect();
            let best = scores.iter().copied().max().unwrap_or(0);
            if best == 0 {
                return Err(format!(
                    "{}: no header row found in the first {HEADER_SEARCH} records (expected columns such as {})",
                    path.display(),
                    expected_headers(mapping)
                ));
            }
            Ok(scores.iter().position(|s| *s == best).unwrap_or(0))
        }
    }
}

fn expected_headers(mapping: &Mapping) -> String {
    use super::mapping::ValueSource;
    mapping
        .fields()
        .iter()
        .filter_map(|f| match &f.source {
            ValueSource::Column(c) | ValueSource::Columns(c, _) => c.first(),
            ValueSource::Constant(_) => None,
        })
        .take(4)
        .map(|h| format!("'{h}'"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(fields: &[&[u8]]) -> ::csv::ByteRecord {
        let mut record = ::csv::ByteRecord::new();
        for field in fields {
            record.push_field(field);
        }
        record
    }

    /// Both ways of reading a record's fields, which must agree.
    fn read(fields: &::csv::ByteRecord) -> Vec<Option<&str>> {
        let r = Record::new(2, 1, fields, 0);
        let text = r.text();
        let out: Vec<Option<&str>> = (0..=fields.len()).map(|i| r.get(i)).collect();
        let whole: Vec<Option<&str>> = (0..=fields.len()).map(|i| text.get(i)).collect();
        assert_eq!(out, whole, "{fields:?}");
        out
    }

    #[test]
    fn fields_read_as_text() {
        let fields = record(&[
            b"HDF-1",
            "Équipement médiathèque".as_bytes(),
            b"",
            "€".as_bytes(),
        ]);
        assert_eq!(
            read(&fields),
            [
                Some("HDF-1"),
                Some("Équipement médiathèque"),
                Some(""),
                Some("€"),
                None
            ]
        );
    }

    #[test]
    fn a_field_that_is_not_text_on_its_own_reads_as_none() {
        // "é" is C3 A9: cut between two fields, the whole buffer is valid UTF-8
        // but neither field is.
        let fields = record(&[b"a", b"x\xc3", b"\xa9y", b"z"]);
        assert_eq!(read(&fields), [Some("a"), None, None, Some("z"), None]);
        // A buffer that is not UTF-8 at all: each field is checked on its own.
        let fields = record(&[b"ok", b"\xff", "été".as_bytes()]);
        assert_eq!(read(&fields), [Some("ok"), None, Some("été"), None]);
    }
}
