//! The `csv` kind: delimited text files dropped in a folder.
//!
//! Owns everything specific to CSV exports: finding the files (one path or a
//! glob), what happens to them once imported, the content checksum, encoding
//! detection (UTF-8, UTF-8 with BOM, Windows-1252, a UTF-8 BOM in front of a
//! Windows-1252 body, UTF-16 with BOM), delimiter sniffing, finding the header
//! row below title rows, and streaming records. Records are never all held in
//! memory. Mapping records to dossiers is [`super::mapping`]'s job.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use encoding_rs::{Encoding, UTF_8, UTF_16BE, UTF_16LE, WINDOWS_1252};
use serde::Deserialize;
use xxhash_rust::xxh3::Xxh3;

use super::FileProblems;
use super::folder::{AfterImport, DropFolder};
use super::mapping::Mapping;
use super::table::{self, Record};

/// How much decoded text the delimiter sniffer reads.
const SNIFF_BYTES: usize = 64 * 1024;

/// The `[source]` table of a `csv` connector, as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CsvSourceDef {
    path: String,
    #[serde(default)]
    encoding: Option<String>,
    #[serde(default)]
    delimiter: Option<String>,
    #[serde(default)]
    header_row: Option<toml::Value>,
    #[serde(default)]
    after_import: AfterImport,
    #[serde(default)]
    archive_dir: Option<String>,
    #[serde(default)]
    settle: Option<String>,
}

/// The encoding of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EncodingChoice {
    /// Detect it per file.
    Auto,
    /// Always this one.
    Fixed(&'static Encoding),
}

impl EncodingChoice {
    /// Reads an `encoding` setting: `"auto"` (or absent), or a WHATWG label.
    pub(crate) fn parse(label: Option<&str>, fp: &mut FileProblems<'_>) -> Self {
        match label {
            None | Some("auto") => Self::Auto,
            Some(label) => match Encoding::for_label(label.as_bytes()) {
                Some(e) => Self::Fixed(e),
                None => {
                    fp.file(format!(
                        "[source] encoding '{label}' is unknown; use \"auto\", \"utf-8\", \"windows-1252\" or \"iso-8859-1\""
                    ));
                    Self::Auto
                }
            },
        }
    }
}

/// A validated `csv` source.
#[derive(Debug, Clone)]
pub struct CsvSource {
    /// Where the files are and what becomes of them.
    pub folder: DropFolder,
    /// The encoding.
    pub encoding: EncodingChoice,
    /// The delimiter, or `None` to sniff it.
    pub delimiter: Option<u8>,
    /// The line of the header row (1-based), or `None` to find it.
    pub header_row: Option<u64>,
}

impl CsvSource {
    pub(crate) fn validate(
        def: CsvSourceDef,
        base: &Path,
        fp: &mut FileProblems<'_>,
    ) -> Option<Self> {
        let before = fp.count();
        let folder = DropFolder::validate(
            &def.path,
            def.after_import,
            def.archive_dir.as_deref(),
            def.settle.as_deref(),
            base,
            fp,
        );
        let encoding = EncodingChoice::parse(def.encoding.as_deref(), fp);
        let delimiter = match def.delimiter.as_deref() {
            None | Some("auto") => None,
            Some("\\t" | "tab") => Some(b'\t'),
            Some(d) if d.len() == 1 && d.is_ascii() && d != "\"" && d != "\n" && d != "\r" => {
                Some(d.as_bytes()[0])
            }
            Some(d) => {
                fp.file(format!(
                    "[source] delimiter '{d}' must be \"auto\" or one ASCII character such as \";\", \",\" or \"\\t\""
                ));
                None
            }
        };
        let header_row = table::header_row(def.header_row, fp);
        let folder = folder?;
        (fp.count() == before).then_some(Self {
            folder,
            encoding,
            delimiter,
            header_row,
        })
    }
}

/// What a first pass over a file learnt.
#[derive(Debug, Clone)]
pub struct Inspected {
    /// xxh3-128 of the whole content, hex.
    pub checksum: String,
    /// The encoding to decode with.
    pub encoding: &'static Encoding,
    /// Bytes to skip at the start (a byte order mark).
    pub skip: u64,
    /// The file size.
    pub bytes: u64,
    /// Whether the text ends with a line feed (else its last record is one line further).
    pub ends_with_newline: bool,
}

/// Reads a file once: checksum, byte order mark and encoding.
///
/// # Errors
/// A reason naming the file (and the line, for invalid UTF-8 in a file declared UTF-8).
pub fn inspect(path: &Path, choice: EncodingChoice) -> Result<Inspected, String> {
    let mut file = File::open(path).map_err(|e| format!("{}: cannot open: {e}", path.display()))?;
    let mut hasher = Xxh3::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut head = Vec::new();
    let mut tail = [0u8; 2];
    let mut carry: Vec<u8> = Vec::new();
    let mut offset = 0u64;
    let mut invalid_at: Option<u64> = None;
    loop {
        let n = file
            .read(&mut buf)
            .map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
        if n == 0 {
            break;
        }
        let chunk = &buf[..n];
        hasher.update(chunk);
        if n >= 2 {
            tail = [chunk[n - 2], chunk[n - 1]];
        } else {
            tail = [tail[1], chunk[0]];
        }
        if head.len() < 4 {
            head.extend_from_slice(&chunk[..chunk.len().min(4 - head.len())]);
        }
        if invalid_at.is_none() {
            let start = offset - carry.len() as u64;
            carry.extend_from_slice(chunk);
            match std::str::from_utf8(&carry) {
                Ok(_) => carry.clear(),
                Err(e) if e.error_len().is_none() => {
                    carry.drain(..e.valid_up_to());
                }
                Err(e) => {
                    invalid_at = Some(start + e.valid_up_to() as u64);
                    carry.clear();
                }
            }
        }
        offset += n as u64;
    }
    if invalid_at.is_none() && !carry.is_empty() {
        invalid_at = Some(offset - carry.len() as u64);
    }
    let (bom_encoding, skip) = if head.starts_with(b"\xEF\xBB\xBF") {
        (Some(UTF_8), 3)
    } else if head.starts_with(b"\xFF\xFE") {
        (Some(UTF_16LE), 2)
    } else if head.starts_with(b"\xFE\xFF") {
        (Some(UTF_16BE), 2)
    } else {
        (None, 0)
    };
    let encoding = match choice {
        EncodingChoice::Fixed(e) if e == UTF_8 => {
            if let Some(at) = invalid_at {
                let (line, byte) = locate(path, at)?;
                return Err(format!(
                    "{}:{line}: not valid UTF-8 (byte 0x{byte:02X} at offset {at}); set encoding = \"windows-1252\" or \"auto\" in the connector",
                    path.display()
                ));
            }
            UTF_8
        }
        EncodingChoice::Fixed(e) => e,
        EncodingChoice::Auto => match bom_encoding {
            Some(e) if e != UTF_8 => e,
            // A UTF-8 byte order mark in front of a Windows-1252 body: real open-data files do that.
            _ if invalid_at.is_some() => WINDOWS_1252,
            _ => UTF_8,
        },
    };
    // Skip a byte order mark only when it belongs to the encoding family we decode
    // with, or is the stray UTF-8 one in front of a Windows-1252 body.
    let skip = match (bom_encoding, encoding) {
        (Some(b), e) if b == e => skip,
        (Some(b), e) if b == UTF_8 && e == WINDOWS_1252 => skip,
        _ => 0,
    };
    let ends_with_newline = if encoding == UTF_16LE {
        tail == [b'\n', 0]
    } else if encoding == UTF_16BE {
        tail == [0, b'\n']
    } else {
        tail[1] == b'\n'
    };
    Ok(Inspected {
        checksum: format!("{:032x}", hasher.digest128()),
        encoding,
        skip,
        bytes: offset,
        ends_with_newline,
    })
}

/// The line (1-based) and byte value at a byte offset of a file.
fn locate(path: &Path, at: u64) -> Result<(u64, u8), String> {
    let mut bytes = Vec::new();
    File::open(path)
        .and_then(|f| f.take(at + 1).read_to_end(&mut bytes))
        .map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
    let line = bytes[..bytes.len().saturating_sub(1)]
        .iter()
        .filter(|&&b| b == b'\n')
        .count() as u64
        + 1;
    Ok((line, bytes.last().copied().unwrap_or(0)))
}

/// Opens the decoded text of a file.
fn decoded(path: &Path, inspected: &Inspected) -> Result<Box<dyn Read + Send>, String> {
    let mut file = File::open(path).map_err(|e| format!("{}: cannot open: {e}", path.display()))?;
    file.seek(SeekFrom::Start(inspected.skip))
        .map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
    if inspected.encoding == UTF_8 {
        Ok(Box::new(file))
    } else {
        Ok(Box::new(
            encoding_rs_io::DecodeReaderBytesBuilder::new()
                .encoding(Some(inspected.encoding))
                .bom_sniffing(false)
                .build(file),
        ))
    }
}

/// Picks the delimiter of a CSV sample: the candidate whose count per record is
/// the same on most records (quotes respected), preferring larger counts.
pub fn sniff_delimiter(sample: &[u8]) -> u8 {
    const CANDIDATES: [u8; 4] = [b';', b',', b'\t', b'|'];
    let mut best = (0usize, 0usize, b';');
    for &d in &CANDIDATES {
        let mut counts: Vec<usize> = Vec::new();
        let (mut in_quotes, mut count) = (false, 0usize);
        for &b in sample {
            match b {
                b'"' => in_quotes = !in_quotes,
                b'\n' if !in_quotes => {
                    counts.push(count);
                    count = 0;
                }
                _ if b == d && !in_quotes => count += 1,
                _ => {}
            }
        }
        // The last line of a sample may be cut: ignore it unless it is the only one.
        if counts.is_empty() {
            counts.push(count);
        }
        let mut freq: Vec<(usize, usize)> = Vec::new();
        for &c in counts.iter().filter(|&&c| c > 0) {
            match freq.iter_mut().find(|(v, _)| *v == c) {
                Some(slot) => slot.1 += 1,
                None => freq.push((c, 1)),
            }
        }
        if let Some(&(value, times)) = freq.iter().max_by_key(|(v, n)| (*n, *v))
            && (times, value) > (best.0, best.1)
        {
            best = (times, value, d);
        }
    }
    best.2
}

/// A CSV file positioned after its header row.
pub struct CsvFile {
    reader: csv::Reader<Box<dyn Read + Send>>,
    pending: VecDeque<csv::ByteRecord>,
    current: csv::ByteRecord,
    spare: csv::ByteRecord,
    at_end: bool,
    ends_with_newline: bool,
    /// The header row.
    pub headers: Vec<String>,
    /// The line of the header row.
    pub header_line: u64,
    /// The delimiter used.
    pub delimiter: u8,
    number: u64,
    path: PathBuf,
}

fn line_of(record: &csv::ByteRecord) -> u64 {
    record.position().map_or(0, |p| p.line())
}

impl CsvFile {
    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Opens a file, finds its delimiter and header row.
    ///
    /// # Errors
    /// A reason naming the file: unreadable, empty, or without a header row.
    pub fn open(
        path: &Path,
        inspected: &Inspected,
        source: &CsvSource,
        mapping: &Mapping,
    ) -> Result<Self, String> {
        let mut text = BufReader::with_capacity(SNIFF_BYTES * 4, decoded(path, inspected)?);
        let sample = text
            .fill_buf()
            .map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
        if sample.iter().all(|b| b.is_ascii_whitespace()) {
            return Err(format!("{}: the file is empty", path.display()));
        }
        let delimiter = source
            .delimiter
            .unwrap_or_else(|| sniff_delimiter(&sample[..sample.len().min(SNIFF_BYTES)]));
        let reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .delimiter(delimiter)
            // Ending records on LF alone keeps csv's line count exact on CRLF files
            // (the CR stays at the end of the last field, where trimming removes it).
            .terminator(::csv::Terminator::Any(b'\n'))
            .buffer_capacity(1 << 16)
            .from_reader(Box::new(text) as Box<dyn Read + Send>);
        let mut file = Self {
            reader,
            pending: VecDeque::new(),
            current: csv::ByteRecord::new(),
            spare: csv::ByteRecord::new(),
            at_end: false,
            ends_with_newline: inspected.ends_with_newline,
            headers: Vec::new(),
            header_line: 0,
            delimiter,
            number: 0,
            path: path.to_owned(),
        };
        let mut candidates = Vec::new();
        while candidates.len() < table::HEADER_SEARCH {
            let mut record = csv::ByteRecord::new();
            if !file.read_raw(&mut record)? {
                file.at_end = true;
                if !file.ends_with_newline
                    && let Some(last) = candidates.last_mut()
                {
                    bump_line(last);
                }
                break;
            }
            candidates.push(record);
        }
        let text_of = |r: &csv::ByteRecord| -> Vec<String> {
            r.iter()
                .map(|f| String::from_utf8_lossy(f).into_owned())
                .collect()
        };
        let texts: Vec<Vec<String>> = candidates.iter().map(text_of).collect();
        let lines: Vec<u64> = candidates.iter().map(line_of).collect();
        let at = table::pick_header(path, &texts, &lines, source.header_row, mapping)?;
        let mut rest = candidates.split_off(at);
        let header = rest.remove(0);
        file.headers = text_of(&header);
        file.header_line = line_of(&header);
        file.pending = rest.into();
        Ok(file)
    }

    /// Reads the next non-blank record into `record`; false at the end.
    fn read_raw(&mut self, record: &mut csv::ByteRecord) -> Result<bool, String> {
        loop {
            match self.reader.read_byte_record(record) {
                Ok(false) => return Ok(false),
                // Blank lines and rows of empty cells (spreadsheet leftovers) carry nothing.
                Ok(true) if record.iter().all(|f| f.trim_ascii().is_empty()) => continue,
                Ok(true) => {
                    // csv stamps a record with the position where reading started, before
                    // the blank lines it skips: count back from where the record ended.
                    let end = self.reader.position().clone();
                    let inner = record.as_slice().iter().filter(|&&b| b == b'\n').count() as u64;
                    let terminated = u64::from(!self.reader.is_done());
                    let mut start = end.clone();
                    start.set_line(end.line().saturating_sub(inner + terminated).max(1));
                    record.set_position(Some(start));
                    return Ok(true);
                }
                Err(error) => {
                    let line = error.position().map_or(0, |p| p.line());
                    return Err(format!("{}:{line}: {error}", self.path.display()));
                }
            }
        }
    }

    /// The next data record.
    ///
    /// # Errors
    /// A reason naming the file and line when the text cannot be read at all.
    pub fn next_record(&mut self) -> Result<Option<Record<'_>>, String> {
        self.read_ahead()?;
        let Some(next) = self.pending.pop_front() else {
            return Ok(None);
        };
        self.spare = std::mem::replace(&mut self.current, next);
        // One record ahead tells whether this one is the last, whose line is one
        // more when the file does not end with a line feed.
        if self.read_ahead()? && !self.ends_with_newline {
            bump_line(&mut self.current);
        }
        self.number += 1;
        Ok(Some(Record {
            line: line_of(&self.current),
            number: self.number,
            fields: &self.current,
            offset: self.current.position().map_or(0, |p| p.byte()),
            messages: Vec::new(),
        }))
    }

    /// Makes sure one record is read ahead, unless at the end. Returns true when it
    /// just found the end.
    fn read_ahead(&mut self) -> Result<bool, String> {
        if self.at_end || !self.pending.is_empty() {
            return Ok(false);
        }
        let mut record = std::mem::take(&mut self.spare);
        if self.read_raw(&mut record)? {
            self.pending.push_back(record);
            Ok(false)
        } else {
            self.spare = record;
            self.at_end = true;
            Ok(true)
        }
    }
}

fn bump_line(record: &mut csv::ByteRecord) {
    if let Some(mut position) = record.position().cloned() {
        position.set_line(position.line() + 1);
        record.set_position(Some(position));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case::semicolon_with_french_amounts("a;b;c\n1;26 956,00;x\n2;1,5;y\n", b';')]
    #[case::comma("a,b,c\n1,2,3\n4,5,6\n", b',')]
    #[case::tab("a\tb\tc\n1\t2,5\t3\n", b'\t')]
    #[case::title_rows_above("Export du 02/10/2026\n\na;b;c;d\n1;2;3;4\n5;6;7;8\n", b';')]
    #[case::quoted_delimiters("a;b\n\"x,y,z\";1\n\"u,v\";2\n", b';')]
    #[case::multiline_quoted("a;b;c\n1;\"line\nwith, commas, here\";3\n4;5;6\n", b';')]
    fn delimiter_is_sniffed(#[case] sample: &str, #[case] expected: u8) {
        assert_eq!(sniff_delimiter(sample.as_bytes()) as char, expected as char);
    }

    fn inspect_bytes(bytes: &[u8], choice: EncodingChoice) -> Result<Inspected, String> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.csv");
        std::fs::write(&path, bytes).unwrap();
        inspect(&path, choice)
    }

    #[rstest]
    #[case::utf8(b"N\xC2\xB0;x\n".as_slice(), "UTF-8", 0)]
    #[case::utf8_bom(b"\xEF\xBB\xBFN\xC2\xB0;x\n".as_slice(), "UTF-8", 3)]
    #[case::windows_1252(b"N\xB0;\xE9t\xE9\n".as_slice(), "windows-1252", 0)]
    #[case::bom_then_windows_1252(b"\xEF\xBB\xBFN\xB0;\xE9t\xE9\n".as_slice(), "windows-1252", 3)]
    #[case::utf16le_bom(b"\xFF\xFEa\x00;\x00".as_slice(), "UTF-16LE", 2)]
    fn encoding_is_detected(#[case] bytes: &[u8], #[case] name: &str, #[case] skip: u64) {
        let i = inspect_bytes(bytes, EncodingChoice::Auto).unwrap();
        assert_eq!(i.encoding.name(), name);
        assert_eq!(i.skip, skip);
    }

    #[test]
    fn utf8_split_across_chunks_is_still_utf8() {
        let mut bytes = vec![b'a'; (1 << 20) - 1];
        bytes.extend_from_slice("é;è\n".as_bytes());
        let i = inspect_bytes(&bytes, EncodingChoice::Auto).unwrap();
        assert_eq!(i.encoding, UTF_8);
    }

    #[test]
    fn declared_utf8_with_latin1_bytes_names_the_line() {
        let err =
            inspect_bytes(b"a;b\nok;ok\nbad;\xE9\n", EncodingChoice::Fixed(UTF_8)).unwrap_err();
        assert!(err.contains("f.csv:3: not valid UTF-8 (byte 0xE9"), "{err}");
    }

    #[test]
    fn checksum_depends_on_content_only() {
        let a = inspect_bytes(b"x;y\n", EncodingChoice::Auto).unwrap();
        let b = inspect_bytes(b"x;y\n", EncodingChoice::Auto).unwrap();
        let c = inspect_bytes(b"x;z\n", EncodingChoice::Auto).unwrap();
        assert_eq!(a.checksum, b.checksum);
        assert_ne!(a.checksum, c.checksum);
    }
}

#[cfg(test)]
mod line_tests {
    use super::*;
    use crate::config::Problems;

    fn lines_of(text: &str, header_row: Option<u64>) -> (u64, Vec<u64>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.csv");
        std::fs::write(&path, text).unwrap();
        let mut problems = Problems::default();
        let lifecycle = crate::lifecycle::Lifecycle::parse(
            Path::new("lifecycle.toml"),
            include_str!("../../rules/lifecycle.toml"),
            &mut problems,
        )
        .unwrap();
        let mapping = {
            let connector = "kind = \"csv\"\n[source]\npath = \"x\"\n[fields]\nid = \"id\"\nstep = \"statut\"\n[steps]\n\"a\" = \"depose\"\n";
            let config = crate::config::Config::load(Some(Path::new(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/config.example.toml"
            ))))
            .unwrap();
            crate::connector::Connector::parse(
                Path::new("c.toml"),
                connector,
                &config,
                &lifecycle,
                &mut problems,
            )
            .unwrap_or_else(|| panic!("{problems}"))
            .mapping
        };
        let source = CsvSource {
            folder: DropFolder {
                pattern: path.clone(),
                after_import: AfterImport::Keep,
                archive_dir: dir.path().to_owned(),
                settle: std::time::Duration::ZERO,
            },
            encoding: EncodingChoice::Auto,
            delimiter: None,
            header_row,
        };
        let inspected = inspect(&path, EncodingChoice::Auto).unwrap();
        let mut file = CsvFile::open(&path, &inspected, &source, &mapping).unwrap();
        let mut lines = Vec::new();
        while let Some(r) = file.next_record().unwrap() {
            lines.push(r.line);
        }
        (file.header_line, lines)
    }

    #[test]
    fn line_numbers_count_blank_lines_and_embedded_newlines() {
        let text = "Export\n\n\nid;statut\n1;a\n\n2;\"x\ny\"\n3;a\n\n\n4;a";
        assert_eq!(lines_of(text, None), (4, vec![5, 7, 9, 12]));
        assert_eq!(lines_of(text, Some(4)).0, 4);
        let crlf = text.replace('\n', "\r\n");
        assert_eq!(lines_of(&crlf, None), (4, vec![5, 7, 9, 12]));
        let trailing = format!("{text}\n");
        assert_eq!(lines_of(&trailing, None), (4, vec![5, 7, 9, 12]));
    }
}
