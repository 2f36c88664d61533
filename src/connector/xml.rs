//! The `xml` kind: XML exports dropped in a folder, streamed.
//!
//! Owns everything specific to XML: the encoding (from the byte order mark or the
//! XML declaration: UTF-8, ISO-8859-1, Windows-1252…, decoded to UTF-8 as it is
//! read), the path of the record element, field paths relative to it (child
//! elements, attributes, namespace prefixes declared in the connector), and the
//! defences: no DTD is processed and no entity is expanded, so a "billion laughs"
//! file is refused at its DOCTYPE. Records stream through with constant memory:
//! only the element being read is held. Each record becomes a row whose columns
//! are the paths the mapping names, so the mapping, value parsers and guards are
//! those of CSV.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use encoding_rs::{Encoding, UTF_8};
use quick_xml::events::Event;
use quick_xml::name::{QName, ResolveResult};
use quick_xml::{NsReader, Reader};
use serde::Deserialize;

use super::csv::EncodingChoice;
use super::folder::{AfterImport, DropFolder};
use super::mapping::{Mapping, ValueSource};
use super::source::{FileSource, Reads, Source, SourceKind};
use super::table::{FirstPass, NamedColumns, Record, Records, Table};
use crate::diag::FileProblems;

/// The `[source]` table of an `xml` connector, as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct XmlSourceDef {
    path: String,
    record: String,
    #[serde(default)]
    encoding: Option<String>,
    #[serde(default)]
    namespaces: BTreeMap<String, String>,
    #[serde(default)]
    after_import: AfterImport,
    #[serde(default)]
    archive_dir: Option<String>,
    #[serde(default)]
    settle: Option<String>,
}

/// One step of a path: a local name, in a namespace when it had a prefix.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Step {
    namespace: Option<String>,
    local: String,
}

impl Step {
    fn matches(&self, element: &Step) -> bool {
        self.local == element.local
            && self
                .namespace
                .as_ref()
                .is_none_or(|ns| element.namespace.as_ref() == Some(ns))
    }
}

/// A field path relative to the record element: child elements, then maybe an attribute.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FieldPath {
    elements: Vec<Step>,
    attribute: Option<Step>,
}

/// A validated `xml` source.
#[derive(Debug, Clone)]
pub(crate) struct XmlSource {
    /// Where the files are and what becomes of them.
    pub folder: DropFolder,
    /// The record path as written.
    pub record_text: String,
    record: Vec<Step>,
    /// Whether the record path starts at the root (`/export/dossier`) rather than
    /// matching the element wherever it is (`dossier`).
    absolute: bool,
    /// The encoding, or `Auto` to read it from the file.
    pub encoding: EncodingChoice,
    namespaces: BTreeMap<String, String>,
}

impl SourceKind for XmlSource {
    const NAME: &'static str = "xml";
    type Settings = XmlSourceDef;

    fn validate(def: XmlSourceDef, base: &Path, fp: &mut FileProblems<'_>) -> Option<Self> {
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
        for (prefix, uri) in &def.namespaces {
            if prefix.is_empty() || prefix.contains([':', '/', '@']) || uri.trim().is_empty() {
                fp.file(format!(
                    "[source.namespaces] '{prefix}' = '{uri}': a prefix is a name without ':', '/' or '@', and its namespace is not empty"
                ));
            }
        }
        let absolute = def.record.starts_with('/');
        let record = match parse_steps(def.record.trim_start_matches('/'), &def.namespaces) {
            Ok(steps) if !steps.is_empty() => Some(steps),
            Ok(_) => {
                fp.file("[source] record must name the element of one record, such as \"/export/dossiers/dossier\"");
                None
            }
            Err(reason) => {
                fp.file(format!("[source] record '{}': {reason}", def.record));
                None
            }
        };
        let (folder, record) = (folder?, record?);
        (fp.count() == before).then_some(Self {
            folder,
            record_text: def.record,
            record,
            absolute,
            encoding,
            namespaces: def.namespaces,
        })
    }
}

impl Source for XmlSource {
    fn reads(&self) -> Reads<'_> {
        Reads::Files(self)
    }

    /// Each path `[fields]` (and `[as_of] column`) reads must be a path of
    /// this file's records.
    fn check_mapping(&self, mapping: &Mapping) -> Vec<String> {
        let mut problems = Vec::new();
        for f in mapping.fields() {
            if let ValueSource::Column(paths) | ValueSource::Columns(paths, _) = &f.source {
                for path in paths {
                    if let Err(reason) = self.check_path(path) {
                        problems.push(format!("field '{}': path '{path}': {reason}", f.name));
                    }
                }
            }
        }
        for path in mapping.beside() {
            if let Err(reason) = self.check_path(path) {
                problems.push(format!("[as_of] column: path '{path}': {reason}"));
            }
        }
        problems
    }
}

impl FileSource for XmlSource {
    fn folder(&self) -> &DropFolder {
        &self.folder
    }

    fn open(
        &self,
        path: &Path,
        first: &FirstPass,
        mapping: &Mapping,
    ) -> Result<(Table, u64), String> {
        let file = XmlFile::open(path, self, mapping)?;
        Ok((Box::new(file), first.bytes()))
    }
}

impl XmlSource {
    /// Checks a field path of the mapping (`child/grandchild`, `@attribute`,
    /// `child/@attribute`, `prefix:child`).
    ///
    /// # Errors
    /// Why the path cannot be read.
    pub(crate) fn check_path(&self, path: &str) -> Result<(), String> {
        field_path(path, &self.namespaces).map(|_| ())
    }
}

fn parse_step(text: &str, namespaces: &BTreeMap<String, String>) -> Result<Step, String> {
    let (prefix, local) = match text.split_once(':') {
        Some((p, l)) => (Some(p), l),
        None => (None, text),
    };
    if local.is_empty() || local.contains(['@', ':', ' ']) {
        return Err(format!("'{text}' is not an element or attribute name"));
    }
    let namespace =
        match prefix {
            Some(p) => Some(namespaces.get(p).cloned().ok_or_else(|| {
                format!("the prefix '{p}' is not declared in [source.namespaces]")
            })?),
            None => None,
        };
    Ok(Step {
        namespace,
        local: local.to_owned(),
    })
}

fn parse_steps(text: &str, namespaces: &BTreeMap<String, String>) -> Result<Vec<Step>, String> {
    text.split('/')
        .filter(|s| !s.is_empty())
        .map(|s| parse_step(s, namespaces))
        .collect()
}

fn field_path(text: &str, namespaces: &BTreeMap<String, String>) -> Result<FieldPath, String> {
    let text = text.trim();
    let (elements, attribute) = match text.rsplit_once('/') {
        Some((elements, last)) if last.starts_with('@') => (elements, Some(last)),
        None if text.starts_with('@') => ("", Some(text)),
        _ => (text, None),
    };
    let elements = parse_steps(elements, namespaces)?;
    let attribute = attribute
        .map(|a| parse_step(&a[1..], namespaces))
        .transpose()?;
    if elements.is_empty() && attribute.is_none() {
        return Err(format!(
            "'{text}' is not a path such as \"beneficiaire/nom\" or \"@id\""
        ));
    }
    Ok(FieldPath {
        elements,
        attribute,
    })
}

/// An XML file positioned at its first record.
pub(crate) struct XmlFile {
    reader: XmlReader,
    buf: Vec<u8>,
    /// The path of an element or attribute, written here to check whether it is new.
    name: String,
    source: XmlSource,
    /// The columns: the paths the mapping names, as written.
    pub columns: NamedColumns,
    paths: Vec<FieldPath>,
    stack: Vec<Step>,
    /// Steps of closed elements, whose names are written over by the next ones.
    spare: Vec<Step>,
    /// The depth of the record element being read.
    record_depth: Option<usize>,
    /// Fields whose element is open: (field, depth).
    captures: Vec<(usize, usize)>,
    values: Vec<String>,
    present: Vec<bool>,
    current: csv::ByteRecord,
    line: u64,
    record_line: u64,
    number: u64,
    path: PathBuf,
}

impl XmlFile {
    /// Opens a file: its encoding, and the paths the mapping reads.
    ///
    /// # Errors
    /// A reason naming the file: unreadable, empty, or a mapped path that is not
    /// a path.
    pub(crate) fn open(path: &Path, source: &XmlSource, mapping: &Mapping) -> Result<Self, String> {
        let mut file = BufReader::new(
            File::open(path).map_err(|e| format!("{}: cannot open: {e}", path.display()))?,
        );
        let head = file
            .fill_buf()
            .map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
        if head.iter().all(u8::is_ascii_whitespace) {
            return Err(format!("{}: the file is empty", path.display()));
        }
        let (encoding, bom) = match Encoding::for_bom(head) {
            Some((e, len)) => (e, len),
            None => (declared_encoding(head).unwrap_or(UTF_8), 0),
        };
        let encoding = match source.encoding {
            EncodingChoice::Fixed(e) => e,
            EncodingChoice::Auto => encoding,
        };
        file.consume(bom);
        let text: Box<dyn Read + Send> = if encoding == UTF_8 {
            Box::new(file)
        } else {
            Box::new(
                encoding_rs_io::DecodeReaderBytesBuilder::new()
                    .encoding(Some(encoding))
                    .bom_sniffing(false)
                    .build(file),
            )
        };
        let text = BufReader::with_capacity(1 << 16, text);
        // Without namespaces in the connector, paths match local names whatever the
        // namespace: resolving them would be wasted.
        let mut reader = if source.namespaces.is_empty() {
            XmlReader::Plain(Reader::from_reader(text))
        } else {
            XmlReader::Namespaced(NsReader::from_reader(text))
        };
        reader.config_mut().expand_empty_elements = true;
        let columns = NamedColumns::of(mapping);
        let paths = columns
            .headers
            .iter()
            .map(|h| {
                field_path(h, &source.namespaces)
                    .map_err(|reason| format!("{}: field path '{h}': {reason}", path.display()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            reader,
            buf: Vec::with_capacity(4096),
            name: String::new(),
            source: source.clone(),
            values: vec![String::new(); columns.headers.len()],
            present: vec![false; columns.headers.len()],
            columns,
            paths,
            stack: Vec::new(),
            spare: Vec::new(),
            record_depth: None,
            captures: Vec::new(),
            current: csv::ByteRecord::new(),
            line: 1,
            record_line: 0,
            number: 0,
            path: path.to_owned(),
        })
    }

    fn error(&self, what: impl std::fmt::Display) -> String {
        format!("{}:{}: {what}", self.path.display(), self.line)
    }

    /// Reads events up to the end of the next record (true) or of the file (false).
    fn advance(&mut self, buf: &mut Vec<u8>) -> Result<bool, String> {
        loop {
            buf.clear();
            let (resolved, event) = match self.reader.read(buf) {
                Ok(read) => read,
                Err(e) => return Err(self.error(format!("malformed XML: {e}"))),
            };
            let newlines = memchr_count(event.as_bytes());
            match event {
                Event::Eof => {
                    if !self.stack.is_empty() {
                        return Err(self.error(format!(
                            "the file ends inside <{}>: is it truncated?",
                            self.stack.last().map_or("", |s| s.local.as_str())
                        )));
                    }
                    return Ok(false);
                }
                Event::DocType(text) => {
                    if text.contains("<!ENTITY") {
                        return Err(self.error(
                            "the DOCTYPE declares entities (<!ENTITY …>); Alertissimo never expands them \
                             (an 'entity expansion' or 'billion laughs' file could exhaust the server): \
                             export the file without a DTD",
                        ));
                    }
                }
                Event::Start(start) => {
                    let mut step = self.spare.pop().unwrap_or_default();
                    step.namespace = resolved;
                    step.local.clear();
                    step.local.push_str(start.local_name().as_ref());
                    self.stack.push(step);
                    let depth = self.stack.len();
                    match self.record_depth {
                        None if self.is_record() => {
                            self.record_depth = Some(depth);
                            self.record_line = self.line;
                            for v in &mut self.values {
                                v.clear();
                            }
                            self.present.fill(false);
                            self.open_fields(depth, &start)?;
                        }
                        Some(record) if depth > record => self.open_fields(record, &start)?,
                        _ => {}
                    }
                }
                Event::End(_) => {
                    let depth = self.stack.len();
                    self.captures.retain(|&(_, d)| d != depth);
                    self.spare.extend(self.stack.pop());
                    if self.record_depth == Some(depth) {
                        self.record_depth = None;
                        self.line += newlines;
                        return Ok(true);
                    }
                }
                Event::Text(text) => {
                    let text = text.xml10_content();
                    self.capture(&text);
                }
                Event::CData(data) => self.capture(&data),
                Event::GeneralRef(reference) => {
                    let text = match reference.resolve_char_ref() {
                        Ok(Some(c)) => c.to_string(),
                        Ok(None) => match predefined(&reference) {
                            Some(c) => c.to_owned(),
                            None => {
                                return Err(self.error(format!(
                                    "unknown entity '&{};' (entities are never expanded)",
                                    &*reference
                                )));
                            }
                        },
                        Err(e) => return Err(self.error(format!("bad character reference: {e}"))),
                    };
                    self.capture(&text);
                }
                Event::Empty(_) | Event::Comment(_) | Event::Decl(_) | Event::PI(_) => {}
            }
            self.line += newlines;
        }
    }

    fn is_record(&self) -> bool {
        let record = &self.source.record;
        if self.source.absolute {
            self.stack.len() == record.len()
                && record.iter().zip(&self.stack).all(|(r, e)| r.matches(e))
        } else {
            self.stack.len() >= record.len()
                && record
                    .iter()
                    .rev()
                    .zip(self.stack.iter().rev())
                    .all(|(r, e)| r.matches(e))
        }
    }

    /// At an element inside a record (or the record itself), starts the fields it holds.
    fn open_fields(
        &mut self,
        record: usize,
        start: &quick_xml::events::BytesStart<'_>,
    ) -> Result<(), String> {
        let depth = self.stack.len();
        let relative = &self.stack[record..];
        if self.columns.wants_names() && !relative.is_empty() {
            display_path(&mut self.name, relative, None);
            self.columns.saw(&self.name);
        }
        for (i, path) in self.paths.iter().enumerate() {
            if path.elements.len() != relative.len()
                || !path
                    .elements
                    .iter()
                    .zip(relative)
                    .all(|(p, e)| p.matches(e))
            {
                continue;
            }
            match &path.attribute {
                None => {
                    if self.present[i] {
                        // A repeated element: its values are listed.
                        self.values[i].push_str("; ");
                    }
                    self.present[i] = true;
                    self.captures.push((i, depth));
                }
                Some(wanted) => {
                    for attribute in start.attributes() {
                        let attribute = attribute
                            .map_err(|e| self.error(format!("malformed attribute: {e}")))?;
                        let step = Step {
                            namespace: self.reader.attribute_namespace(attribute.key),
                            local: attribute.key.local_name().as_ref().to_owned(),
                        };
                        if wanted.matches(&step) {
                            if self.present[i] {
                                // The same attribute on a repeated element: values are listed.
                                self.values[i].push_str("; ");
                            }
                            let value = attribute
                                .normalized_value(quick_xml::XmlVersion::Implicit1_0)
                                .map_err(|e| {
                                    self.error(format!("attribute '{}': {e}", step.local))
                                })?;
                            self.values[i].push_str(&value);
                            self.present[i] = true;
                        }
                    }
                }
            }
        }
        if self.columns.wants_names() {
            for attribute in start.attributes().flatten() {
                let local = attribute.key.local_name();
                display_path(&mut self.name, relative, Some(local.into_inner()));
                self.columns.saw(&self.name);
            }
        }
        Ok(())
    }

    fn capture(&mut self, text: &str) {
        for &(i, _) in &self.captures {
            self.values[i].push_str(text);
        }
    }

    fn emit(&mut self) -> Record<'_> {
        self.current.clear();
        for (i, value) in self.values.iter().enumerate() {
            if self.present[i] {
                self.columns.found(i);
            }
            self.current.push_field(value.trim().as_bytes());
        }
        self.number += 1;
        Record::new(
            self.record_line,
            self.number,
            &self.current,
            self.reader.buffer_position(),
        )
    }
}

impl Records for XmlFile {
    /// The paths the mapping names.
    fn headers(&self) -> &[String] {
        &self.columns.headers
    }

    fn path(&self) -> &Path {
        &self.path
    }

    /// The next record; a reason naming the file and line: malformed XML, a DTD
    /// declaring entities, an unknown entity.
    fn next_record(&mut self) -> Result<Option<Record<'_>>, String> {
        // The events borrow this buffer rather than self, which reading them changes.
        let mut buf = std::mem::take(&mut self.buf);
        let ended = self.advance(&mut buf);
        self.buf = buf;
        Ok(ended?.then(|| self.emit()))
    }

    /// After the last record: the mapped fields that no record had, each named
    /// with the closest path the records do have.
    fn vanished(&self, mapping: &Mapping) -> Vec<String> {
        if self.number == 0 {
            return Vec::new();
        }
        self.columns.vanished(
            mapping,
            &self.path.display().to_string(),
            &format!(
                "<{}> record",
                self.source.record_text.trim_start_matches('/')
            ),
            "path",
        )
    }
}

/// The reader of a file: resolving namespaces only when the connector names some.
enum XmlReader {
    Plain(Reader<BufReader<Box<dyn Read + Send>>>),
    Namespaced(NsReader<BufReader<Box<dyn Read + Send>>>),
}

impl XmlReader {
    fn config_mut(&mut self) -> &mut quick_xml::reader::Config {
        match self {
            Self::Plain(r) => r.config_mut(),
            Self::Namespaced(r) => r.config_mut(),
        }
    }

    /// The next event, and the namespace of its element when resolved.
    fn read<'b>(&mut self, buf: &'b mut Vec<u8>) -> quick_xml::Result<(Option<String>, Event<'b>)> {
        match self {
            Self::Plain(r) => Ok((None, r.read_event_into(buf)?)),
            Self::Namespaced(r) => {
                let (resolved, event) = r.read_resolved_event_into(buf)?;
                Ok((namespace_of(&resolved), event))
            }
        }
    }

    /// The namespace of an attribute of the element just read, when resolved.
    fn attribute_namespace(&self, key: QName<'_>) -> Option<String> {
        match self {
            Self::Plain(_) => None,
            Self::Namespaced(r) => namespace_of(&r.resolver().resolve_attribute(key).0),
        }
    }

    fn buffer_position(&self) -> u64 {
        match self {
            Self::Plain(r) => r.buffer_position(),
            Self::Namespaced(r) => r.buffer_position(),
        }
    }
}

fn namespace_of(resolved: &ResolveResult<'_>) -> Option<String> {
    match resolved {
        ResolveResult::Bound(ns) => Some(ns.as_ref().to_owned()),
        ResolveResult::Unbound | ResolveResult::Unknown(_) => None,
    }
}

/// Writes into `out` the path of an element (`a/b`), or of its attribute (`a/b/@c`).
fn display_path(out: &mut String, elements: &[Step], attribute: Option<&str>) {
    out.clear();
    for (i, step) in elements.iter().enumerate() {
        if i > 0 {
            out.push('/');
        }
        out.push_str(&step.local);
    }
    if let Some(a) = attribute {
        if !out.is_empty() {
            out.push('/');
        }
        out.push('@');
        out.push_str(a);
    }
}

fn predefined(name: &str) -> Option<&'static str> {
    Some(match name {
        "amp" => "&",
        "lt" => "<",
        "gt" => ">",
        "quot" => "\"",
        "apos" => "'",
        _ => return None,
    })
}

fn memchr_count(bytes: &[u8]) -> u64 {
    bytes.iter().filter(|&&b| b == b'\n').count() as u64
}

/// The encoding an XML declaration names (`<?xml version="1.0" encoding="ISO-8859-1"?>`).
fn declared_encoding(head: &[u8]) -> Option<&'static Encoding> {
    let head = &head[..head.len().min(1024)];
    let text = String::from_utf8_lossy(head);
    let decl = text.trim_start().strip_prefix("<?xml")?;
    let decl = &decl[..decl.find("?>")?];
    let at = decl.find("encoding")?;
    let rest = decl[at + "encoding".len()..]
        .trim_start()
        .strip_prefix('=')?
        .trim_start();
    let quote = rest.chars().next().filter(|c| *c == '"' || *c == '\'')?;
    let value = &rest[1..];
    let label = &value[..value.find(quote)?];
    Encoding::for_label(label.trim().as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declared_encodings() {
        let e = |s: &str| declared_encoding(s.as_bytes()).map(Encoding::name);
        assert_eq!(
            e(r#"<?xml version="1.0" encoding="ISO-8859-1"?><a/>"#),
            Some("windows-1252")
        );
        assert_eq!(
            e("<?xml version='1.0' encoding='windows-1252' ?>"),
            Some("windows-1252")
        );
        assert_eq!(
            e(r#"<?xml version="1.0" encoding = "utf-8"?>"#),
            Some("UTF-8")
        );
        assert_eq!(e(r#"<?xml version="1.0"?><a/>"#), None);
        assert_eq!(e("<export/>"), None);
    }

    #[test]
    fn field_paths() {
        let ns = BTreeMap::from([("g".to_owned(), "urn:grants".to_owned())]);
        let p = field_path("beneficiaire/g:siret", &ns).unwrap();
        assert_eq!(p.elements.len(), 2);
        assert_eq!(p.elements[1].namespace.as_deref(), Some("urn:grants"));
        let p = field_path("@id", &ns).unwrap();
        assert!(p.elements.is_empty());
        assert_eq!(p.attribute.unwrap().local, "id");
        let p = field_path("statut/@depuis", &ns).unwrap();
        assert_eq!(
            (p.elements.len(), p.attribute.unwrap().local.as_str()),
            (1, "depuis")
        );
        assert!(
            field_path("x:nom", &ns)
                .unwrap_err()
                .contains("'x' is not declared")
        );
        assert!(field_path("", &ns).is_err());
    }
}
