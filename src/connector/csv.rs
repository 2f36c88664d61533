//! The `csv` kind: delimited text files dropped in a folder.
//!
//! Owns everything specific to CSV exports: finding the files (one path or a
//! glob), what happens to them once imported, the content checksum, encoding
//! detection (UTF-8, UTF-8 with BOM, Windows-1252, a UTF-8 BOM in front of a
//! Windows-1252 body, UTF-16 with BOM), delimiter sniffing, finding the header
//! row below title rows, and streaming records (lines without a quote are split
//! directly, the others read by csv_core). Records are never all held in
//! memory. Mapping records to dossiers is [`super::mapping`]'s job.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use encoding_rs::{Encoding, UTF_8, UTF_16BE, UTF_16LE, WINDOWS_1252};
use serde::Deserialize;
use xxhash_rust::xxh3::Xxh3;

use super::folder::{AfterImport, DropFolder};
use super::mapping::Mapping;
use super::source::{FileSource, Reads, Source, SourceKind};
use super::table::{self, FirstPass, Record, Records, Table};
use crate::diag::FileProblems;

/// How much decoded text the delimiter sniffer reads.
const SNIFF_BYTES: usize = 64 * 1024;

/// The `[source]` table of a `csv` connector, as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CsvSourceDef {
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
pub(crate) enum EncodingChoice {
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
pub(crate) struct CsvSource {
    /// Where the files are and what becomes of them.
    pub folder: DropFolder,
    /// The encoding.
    pub encoding: EncodingChoice,
    /// The delimiter, or `None` to sniff it.
    pub delimiter: Option<u8>,
    /// The line of the header row (1-based), or `None` to find it.
    pub header_row: Option<u64>,
}

impl SourceKind for CsvSource {
    const NAME: &'static str = "csv";
    type Settings = CsvSourceDef;

    fn validate(def: CsvSourceDef, base: &Path, fp: &mut FileProblems<'_>) -> Option<Self> {
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

impl Source for CsvSource {
    fn reads(&self) -> Reads<'_> {
        Reads::Files(self)
    }
}

impl FileSource for CsvSource {
    fn folder(&self) -> &DropFolder {
        &self.folder
    }

    /// A text file: its checksum, byte order mark and encoding.
    fn first_pass(&self, path: &Path) -> Result<FirstPass, String> {
        inspect(path, self.encoding).map(FirstPass::Text)
    }

    fn open(
        &self,
        path: &Path,
        first: &FirstPass,
        mapping: &Mapping,
    ) -> Result<(Table, u64), String> {
        let FirstPass::Text(inspected) = first else {
            return Err(format!(
                "{}: read as a binary file by a csv connector",
                path.display()
            ));
        };
        let file = CsvFile::open(path, inspected, self, mapping)?;
        Ok((Box::new(file), inspected.bytes))
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
}

/// Reads a file once: checksum, byte order mark and encoding.
///
/// # Errors
/// A reason naming the file (and the line, for invalid UTF-8 in a file declared UTF-8).
pub(crate) fn inspect(path: &Path, choice: EncodingChoice) -> Result<Inspected, String> {
    let mut file = File::open(path).map_err(|e| format!("{}: cannot open: {e}", path.display()))?;
    let mut hasher = Xxh3::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut head = Vec::new();
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
        if head.len() < 4 {
            head.extend_from_slice(&chunk[..chunk.len().min(4 - head.len())]);
        }
        if invalid_at.is_none() {
            let start = offset - carry.len() as u64;
            carry.extend_from_slice(chunk);
            // Most of this pass: simdutf8 checks text several times as fast as std.
            match simdutf8::compat::from_utf8(&carry) {
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
        EncodingChoice::Auto => match (bom_encoding, invalid_at) {
            (Some(e), _) if e != UTF_8 => e,
            (_, None) => UTF_8,
            // Invalid bytes beside valid multi-byte UTF-8: a damaged or mixed
            // export. Decoding it all as Windows-1252 would turn every accented
            // letter into mojibake, sent to beneficiaries: refused, naming the
            // first bad byte.
            (_, Some(at)) if holds_multibyte_utf8(path, skip)? => {
                let (line, byte) = locate(path, at)?;
                return Err(format!(
                    "{}:{line}: not valid UTF-8 (byte 0x{byte:02X} at offset {at}), though the file holds UTF-8 text elsewhere: a damaged or mixed export; fix it, or set encoding = \"utf-8\" or \"windows-1252\" in the connector",
                    path.display()
                ));
            }
            // A UTF-8 byte order mark in front of a Windows-1252 body: real open-data files do that.
            (_, Some(_)) => WINDOWS_1252,
        },
    };
    // Skip a byte order mark only when it belongs to the encoding family we decode
    // with, or is the stray UTF-8 one in front of a Windows-1252 body.
    let skip = match (bom_encoding, encoding) {
        (Some(b), e) if b == e => skip,
        (Some(b), e) if b == UTF_8 && e == WINDOWS_1252 => skip,
        _ => 0,
    };
    Ok(Inspected {
        checksum: format!("{:032x}", hasher.digest128()),
        encoding,
        skip,
        bytes: offset,
    })
}

/// Whether a file (past its first `skip` bytes, a byte order mark) holds at
/// least one well-formed multi-byte UTF-8 character. Read only for a file with
/// invalid UTF-8, to tell Windows-1252 from damaged UTF-8.
fn holds_multibyte_utf8(path: &Path, skip: u64) -> Result<bool, String> {
    let cannot = |e: std::io::Error| format!("{}: cannot read: {e}", path.display());
    let mut file = File::open(path).map_err(cannot)?;
    file.seek(SeekFrom::Start(skip)).map_err(cannot)?;
    let mut buf = vec![0u8; 1 << 20];
    // The bytes of a character cut by the end of a chunk, read again with the next.
    let mut carry: Vec<u8> = Vec::new();
    loop {
        let n = file.read(&mut buf).map_err(cannot)?;
        if n == 0 {
            return Ok(false);
        }
        carry.extend_from_slice(&buf[..n]);
        let mut tail = 0;
        for chunk in carry.utf8_chunks() {
            if !chunk.valid().is_ascii() {
                return Ok(true);
            }
            // An incomplete sequence at the very end may complete in the next chunk.
            tail = chunk.invalid().len().min(3);
        }
        let keep = carry.len() - tail;
        carry.drain(..keep);
    }
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
pub(crate) fn sniff_delimiter(sample: &[u8]) -> u8 {
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

/// Splits decoded text into raw records.
///
/// A line without a quote, most records of an export, is split at the delimiter
/// directly; from a line with a quote, csv_core reads the record (quoted fields,
/// embedded delimiters and newlines) with the rules the csv crate applies. Either
/// way the fields are the same: only lines with a quote can read differently.
struct Splitter {
    source: Box<dyn Read + Send>,
    /// `buf[at..filled]` is read and not split yet.
    buf: Vec<u8>,
    at: usize,
    filled: usize,
    eof: bool,
    /// Boxed: its tables would make every table reader as large.
    core: Box<csv_core::Reader>,
    delimiter: u8,
    /// The line and byte offset of `buf[at]`.
    line: u64,
    byte: u64,
    /// csv_core's output: the fields' bytes, and where each field ends.
    out: Vec<u8>,
    ends: Vec<usize>,
}

/// Where a raw record was in the text.
struct Span {
    line: u64,
    byte: u64,
}

impl Splitter {
    fn new(source: Box<dyn Read + Send>, delimiter: u8, capacity: usize) -> Self {
        Self {
            source,
            // At least a byte: the buffer doubles from there when a line fills it.
            buf: vec![0; capacity.max(1)],
            at: 0,
            filled: 0,
            eof: false,
            core: Box::new(
                csv_core::ReaderBuilder::new()
                    .delimiter(delimiter)
                    // Ending records on LF alone keeps the line count exact on CRLF files
                    // (the CR stays at the end of the last field, where trimming removes it).
                    .terminator(csv_core::Terminator::Any(b'\n'))
                    .build(),
            ),
            delimiter,
            line: 1,
            byte: 0,
            out: vec![0; 1024],
            ends: vec![0; 64],
        }
    }

    /// Reads more text behind what is left, growing the buffer when a line fills it.
    fn fill(&mut self) -> std::io::Result<()> {
        // Kept bytes move to the front once; a long line filled chunk after chunk
        // is not moved again at each one (that was quadratic in its length).
        if self.at > 0 {
            self.buf.copy_within(self.at..self.filled, 0);
            self.filled -= self.at;
            self.at = 0;
        }
        if self.filled == self.buf.len() {
            self.buf.resize(self.buf.len() * 2, 0);
        }
        loop {
            match self.source.read(&mut self.buf[self.filled..]) {
                Ok(0) => self.eof = true,
                Ok(n) => self.filled += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
            return Ok(());
        }
    }

    /// Consumes `n` bytes of the buffer.
    fn advance(&mut self, n: usize) {
        let consumed = &self.buf[self.at..self.at + n];
        self.line += memchr::memchr_iter(b'\n', consumed).count() as u64;
        self.byte += n as u64;
        self.at += n;
    }

    /// Reads the next raw record (blank ones included) into `record`.
    fn next(&mut self, record: &mut csv::ByteRecord) -> std::io::Result<Option<Span>> {
        // How much of the rest was searched for the end of the line already.
        let mut searched = 0;
        loop {
            let rest = &self.buf[self.at..self.filled];
            let (line, terminated) = match memchr::memchr(b'\n', &rest[searched..]) {
                Some(end) => (&rest[..searched + end], true),
                None if !self.eof => {
                    searched = rest.len();
                    self.fill()?;
                    continue;
                }
                None if rest.is_empty() => return Ok(None),
                None => (rest, false),
            };
            if memchr::memchr(b'"', line).is_some() {
                return self.quoted(record);
            }
            record.clear();
            let mut start = 0;
            for end in memchr::memchr_iter(self.delimiter, line) {
                record.push_field(&line[start..end]);
                start = end + 1;
            }
            record.push_field(&line[start..]);
            let span = Span {
                line: self.line,
                byte: self.byte,
            };
            self.line += 1;
            self.byte += line.len() as u64 + u64::from(terminated);
            self.at += line.len() + usize::from(terminated);
            return Ok(Some(span));
        }
    }

    /// Reads a record that starts on a line with a quote, through csv_core.
    fn quoted(&mut self, record: &mut csv::ByteRecord) -> std::io::Result<Option<Span>> {
        let (line, byte) = (self.line, self.byte);
        let (mut out, mut ends) = (0, 0);
        loop {
            let input = &self.buf[self.at..self.filled];
            let (result, read, wrote, ended) =
                self.core
                    .read_record(input, &mut self.out[out..], &mut self.ends[ends..]);
            self.advance(read);
            out += wrote;
            ends += ended;
            match result {
                csv_core::ReadRecordResult::InputEmpty if !self.eof => self.fill()?,
                // At the end, csv_core is called with no input to end the record.
                csv_core::ReadRecordResult::InputEmpty => {}
                csv_core::ReadRecordResult::OutputFull => {
                    self.out.resize(self.out.len() * 2, 0);
                }
                csv_core::ReadRecordResult::OutputEndsFull => {
                    self.ends.resize(self.ends.len() * 2, 0);
                }
                csv_core::ReadRecordResult::Record => {
                    record.clear();
                    let mut start = 0;
                    for &end in &self.ends[..ends] {
                        record.push_field(&self.out[start..end]);
                        start = end;
                    }
                    return Ok(Some(Span { line, byte }));
                }
                csv_core::ReadRecordResult::End => return Ok(None),
            }
        }
    }
}

/// A CSV file positioned after its header row.
pub(crate) struct CsvFile {
    reader: Splitter,
    pending: VecDeque<csv::ByteRecord>,
    current: csv::ByteRecord,
    at_end: bool,
    /// The header row.
    pub headers: Vec<String>,
    /// The line of the header row.
    pub header_line: u64,
    number: u64,
    path: PathBuf,
}

fn line_of(record: &csv::ByteRecord) -> u64 {
    record.position().map_or(0, |p| p.line())
}

impl CsvFile {
    /// Opens a file, finds its delimiter and header row.
    ///
    /// # Errors
    /// A reason naming the file: unreadable, empty, or without a header row.
    pub(crate) fn open(
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
        let reader = Splitter::new(Box::new(text), delimiter, 1 << 16);
        let mut file = Self {
            reader,
            pending: VecDeque::new(),
            current: csv::ByteRecord::new(),
            at_end: false,
            headers: Vec::new(),
            header_line: 0,
            number: 0,
            path: path.to_owned(),
        };
        let mut candidates = Vec::new();
        while candidates.len() < table::HEADER_SEARCH {
            let mut record = csv::ByteRecord::new();
            if !file.read_raw(&mut record)? {
                file.at_end = true;
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
            match self.reader.next(record) {
                Ok(None) => return Ok(false),
                // Blank lines and rows of empty cells (spreadsheet leftovers) carry nothing.
                Ok(Some(_)) if record.iter().all(|f| f.trim_ascii().is_empty()) => continue,
                Ok(Some(span)) => {
                    let mut at = csv::Position::new();
                    at.set_line(span.line).set_byte(span.byte);
                    record.set_position(Some(at));
                    return Ok(true);
                }
                Err(error) => {
                    return Err(format!(
                        "{}:{}: cannot read: {error}",
                        self.path.display(),
                        self.reader.line
                    ));
                }
            }
        }
    }
}

impl Records for CsvFile {
    fn headers(&self) -> &[String] {
        &self.headers
    }

    fn header_line(&self) -> u64 {
        self.header_line
    }

    fn path(&self) -> &Path {
        &self.path
    }

    /// The next data record; a reason naming the file and line when the text
    /// cannot be read at all.
    fn next_record(&mut self) -> Result<Option<Record<'_>>, String> {
        match self.pending.pop_front() {
            Some(next) => self.current = next,
            None if self.at_end => return Ok(None),
            None => {
                let mut record = std::mem::take(&mut self.current);
                let more = self.read_raw(&mut record)?;
                self.current = record;
                if !more {
                    self.at_end = true;
                    return Ok(None);
                }
            }
        }
        self.number += 1;
        Ok(Some(Record::new(
            line_of(&self.current),
            self.number,
            &self.current,
            self.current.position().map_or(0, |p| p.byte()),
        )))
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

    /// Regression: one invalid byte anywhere made a whole UTF-8 export
    /// Windows-1252, and its names were stored and sent as mojibake.
    #[test]
    fn auto_never_decodes_utf8_text_as_windows_1252() {
        let err = inspect_bytes(
            "Nom;Ville\nHélène;Lille\nbad;\u{0}"
                .as_bytes()
                .iter()
                .copied()
                .chain([b'\n', b'x', b';', 0xE9, b'\n'])
                .collect::<Vec<_>>()
                .as_slice(),
            EncodingChoice::Auto,
        )
        .unwrap_err();
        assert!(
            err.contains("f.csv:4: not valid UTF-8 (byte 0xE9")
                && err.contains("holds UTF-8 text elsewhere"),
            "{err}"
        );
        // A multi-byte character after the bad byte counts too, even one cut by
        // the end of the first chunk read.
        let mut bytes = b"a;\xE9\n".to_vec();
        bytes.resize((1 << 20) - 1, b'a');
        bytes.extend_from_slice("é\n".as_bytes());
        assert!(inspect_bytes(&bytes, EncodingChoice::Auto).is_err());
        // Invalid bytes and no UTF-8 at all: Windows-1252, as before.
        let mut bytes = b"a;\xE9\n".to_vec();
        bytes.resize(1 << 21, b'a');
        let i = inspect_bytes(&bytes, EncodingChoice::Auto).unwrap();
        assert_eq!(i.encoding, WINDOWS_1252);
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
    use crate::diag::Problems;

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

    /// The records of `text`, blank ones left out, split by `Splitter` with a
    /// buffer of `capacity` bytes, or by the csv crate.
    fn split(text: &[u8], capacity: usize, by_csv: bool) -> Vec<Vec<Vec<u8>>> {
        let mut out = Vec::new();
        let mut record = csv::ByteRecord::new();
        let mut keep = |r: &csv::ByteRecord| {
            if !r.iter().all(|f| f.trim_ascii().is_empty()) {
                out.push(r.iter().map(<[u8]>::to_vec).collect());
            }
        };
        if by_csv {
            let mut reader = csv::ReaderBuilder::new()
                .has_headers(false)
                .flexible(true)
                .delimiter(b';')
                .terminator(csv::Terminator::Any(b'\n'))
                .from_reader(text);
            while reader.read_byte_record(&mut record).unwrap() {
                keep(&record);
            }
        } else {
            let source = Box::new(std::io::Cursor::new(text.to_vec()));
            let mut splitter = Splitter::new(source, b';', capacity);
            while splitter.next(&mut record).unwrap().is_some() {
                keep(&record);
            }
        }
        out
    }

    proptest::proptest! {
        /// Lines without quotes are split directly: the records are those the csv
        /// crate reads, whatever the text and wherever the buffer cuts it.
        #[test]
        fn the_splitter_reads_what_csv_reads(
            text in proptest::collection::vec(proptest::sample::select(b"ab; \"\n\r".to_vec()), 0..300),
            capacity in 1usize..64,
        ) {
            proptest::prop_assert_eq!(split(&text, capacity, false), split(&text, capacity, true));
        }
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
