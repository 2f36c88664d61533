//! The `spreadsheet` kind: `.xls`, `.xlsx`, `.xlsb` and `.ods` workbooks dropped in a folder.
//!
//! Owns everything specific to workbooks: choosing the sheet (by name or
//! position), turning cells into the text the value parsers read (dates held as
//! serial numbers become ISO dates; numbers holding ids or SIRETs keep every
//! digit, never `2.106e13`), and two-level headers (a group row above the column
//! row, a column then being named `Group/Column`). The workbook is read with
//! calamine; the records then go through the same mapping, value parsers and
//! guards as CSV.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use calamine::{Data, DataRef, Dimensions, Range, Reader, Sheets, open_workbook_auto};
use serde::Deserialize;

use super::folder::{AfterImport, DropFolder};
use super::mapping::Mapping;
use super::source::{FileSource, ProgressUnit, Reads, Source, SourceKind};
use super::table::{self, FirstPass, Record, Records, Table};
use crate::diag::FileProblems;

/// The `[source]` table of a `spreadsheet` connector, as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SheetSourceDef {
    path: String,
    #[serde(default)]
    sheet: Option<toml::Value>,
    #[serde(default)]
    header_row: Option<toml::Value>,
    #[serde(default)]
    header_levels: Option<toml::Value>,
    #[serde(default)]
    after_import: AfterImport,
    #[serde(default)]
    archive_dir: Option<String>,
    #[serde(default)]
    settle: Option<String>,
}

/// Which sheet of a workbook to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SheetChoice {
    /// By name, or the first of several names the workbook has (back offices
    /// name the sheet differently from one version to the next).
    Names(Vec<String>),
    /// By position, from 1.
    Position(usize),
}

/// A validated `spreadsheet` source.
#[derive(Debug, Clone)]
pub(crate) struct SheetSource {
    /// Where the files are and what becomes of them.
    pub folder: DropFolder,
    /// The sheet read.
    pub sheet: SheetChoice,
    /// The row of the header (1-based, as the spreadsheet shows it), or `None` to find it.
    pub header_row: Option<u64>,
    /// 1, or 2 when a row of group names sits above the column names.
    pub header_levels: u8,
}

impl SourceKind for SheetSource {
    const NAME: &'static str = "spreadsheet";
    type Settings = SheetSourceDef;

    fn validate(def: SheetSourceDef, base: &Path, fp: &mut FileProblems<'_>) -> Option<Self> {
        let before = fp.count();
        let folder = DropFolder::validate(
            &def.path,
            def.after_import,
            def.archive_dir.as_deref(),
            def.settle.as_deref(),
            base,
            fp,
        );
        let sheet = match def.sheet {
            None => SheetChoice::Position(1),
            Some(toml::Value::String(name)) if !name.trim().is_empty() => {
                SheetChoice::Names(vec![name])
            }
            Some(toml::Value::Array(names))
                if !names.is_empty()
                    && names
                        .iter()
                        .all(|n| n.as_str().is_some_and(|n| !n.trim().is_empty())) =>
            {
                SheetChoice::Names(
                    names
                        .iter()
                        .filter_map(|n| n.as_str().map(str::to_owned))
                        .collect(),
                )
            }
            Some(toml::Value::Integer(n)) if n >= 1 => {
                SheetChoice::Position(usize::try_from(n).unwrap_or(usize::MAX))
            }
            Some(other) => {
                fp.file(format!(
                    "[source] sheet must be a sheet name, a list of names (the first the workbook has), or a position from 1, found {other}"
                ));
                SheetChoice::Position(1)
            }
        };
        let header_row = table::header_row(def.header_row, fp);
        let header_levels = match def.header_levels {
            None => 1,
            Some(toml::Value::Integer(n @ 1..=2)) => n as u8,
            Some(other) => {
                fp.file(format!(
                    "[source] header_levels must be 1 or 2 (a row of group names above the column names), found {other}"
                ));
                1
            }
        };
        let folder = folder?;
        (fp.count() == before).then_some(Self {
            folder,
            sheet,
            header_row,
            header_levels,
        })
    }
}

impl Source for SheetSource {
    fn reads(&self) -> Reads<'_> {
        Reads::Files(self)
    }
}

impl FileSource for SheetSource {
    fn folder(&self) -> &DropFolder {
        &self.folder
    }

    fn open(
        &self,
        path: &Path,
        _first: &FirstPass,
        mapping: &Mapping,
    ) -> Result<(Table, u64), String> {
        let sheet = SheetFile::open(path, self, mapping)?;
        let rows = sheet.rows();
        Ok((Box::new(sheet), rows))
    }

    /// A workbook counts its rows.
    fn progress_unit(&self) -> ProgressUnit {
        ProgressUnit::Rows
    }
}

/// Rows read at once from the reader thread of an `.xlsx` file.
const ROW_BATCH: usize = 256;

/// A row: its index in the sheet (0-based) and the text of its cells from column A.
type Row = (u32, Vec<String>);

/// What the reader thread of an `.xlsx` file sends.
enum Streamed {
    /// The merged areas of the sheet, first.
    Merged(Option<Vec<Dimensions>>),
    /// How many rows the sheet says it has (its `dimension`), second.
    Size(Option<u64>),
    /// Rows, in order.
    Rows(Vec<Row>),
    /// The last row was sent.
    End,
}

/// Where the rows of a sheet come from.
enum Rows {
    /// The whole sheet, loaded (`.xls`, `.ods`, `.xlsb`: their readers load a sheet whole).
    Loaded { cells: Range<Data>, next: usize },
    /// Rows streamed by a thread that reads the `.xlsx` as it goes: memory stays
    /// flat, and the workbook is read while the records before are imported.
    Streamed {
        receiver: std::sync::mpsc::Receiver<Result<Streamed, String>>,
        pending: std::collections::VecDeque<Row>,
        ended: bool,
        size: Option<u64>,
    },
}

impl Rows {
    fn next(&mut self) -> Result<Option<Row>, String> {
        match self {
            Self::Loaded { cells, next } => {
                let Some((first_row, first_col)) = cells.start() else {
                    return Ok(None);
                };
                if *next >= cells.height() {
                    return Ok(None);
                }
                let r = *next;
                *next += 1;
                // Columns before the range's first are empty: keep A as column 0.
                let mut row = vec![String::new(); first_col as usize];
                for c in 0..cells.width() {
                    let mut text = String::new();
                    if let Some(cell) = cells.get((r, c)) {
                        cell_text(cell, &mut text);
                    }
                    row.push(text);
                }
                Ok(Some((first_row + r as u32, row)))
            }
            Self::Streamed {
                receiver,
                pending,
                ended,
                ..
            } => loop {
                if let Some(row) = pending.pop_front() {
                    return Ok(Some(row));
                }
                if *ended {
                    return Ok(None);
                }
                match receiver.recv() {
                    Ok(Ok(Streamed::Rows(rows))) => pending.extend(rows),
                    Ok(Ok(Streamed::Merged(_) | Streamed::Size(_))) => {}
                    Ok(Ok(Streamed::End)) => *ended = true,
                    Ok(Err(reason)) => return Err(reason),
                    // The reader stopped without saying it was done: never a whole sheet.
                    Err(_) => {
                        return Err(
                            "the workbook reader stopped before the end of the sheet".to_owned()
                        );
                    }
                }
            },
        }
    }

    /// How many rows the sheet has, when known (for progress).
    fn len(&self) -> Option<u64> {
        match self {
            Self::Loaded { cells, .. } => Some(cells.height() as u64),
            Self::Streamed { size, .. } => *size,
        }
    }
}

/// A sheet positioned after its header row.
pub(crate) struct SheetFile {
    rows: Rows,
    /// Data rows read while looking for the header.
    ahead: std::collections::VecDeque<Row>,
    current: csv::ByteRecord,
    /// The column names (`Group/Column` under a group).
    pub headers: Vec<String>,
    /// The row of the column names, 1-based.
    pub header_line: u64,
    number: u64,
    path: PathBuf,
}

impl SheetFile {
    /// Opens a workbook, picks the sheet and finds the header row.
    ///
    /// # Errors
    /// A reason naming the file: unreadable, not a workbook, no such sheet, or no header row.
    pub(crate) fn open(
        path: &Path,
        source: &SheetSource,
        mapping: &Mapping,
    ) -> Result<Self, String> {
        super::budget::check_archive(path)?;
        let book = open_by_content(path)
            .map_err(|e| format!("{}: cannot read the workbook: {e}", path.display()))?;
        let names = book.sheet_names();
        let name = match &source.sheet {
            SheetChoice::Names(wanted) => wanted.iter().find_map(|w| {
                names
                    .iter()
                    .find(|n| n.trim().eq_ignore_ascii_case(w.trim()))
                    .cloned()
            }),
            SheetChoice::Position(n) => names.get(n - 1).cloned(),
        }
        .ok_or_else(|| {
            let wanted = match &source.sheet {
                SheetChoice::Names(n) => format!("no sheet named '{}'", n.join("' or '")),
                SheetChoice::Position(n) => format!("no sheet number {n}"),
            };
            format!(
                "{}: {wanted}; its sheets are {}",
                path.display(),
                names
                    .iter()
                    .map(|n| format!("'{n}'"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })?;
        // Merged areas only matter to a group row; finding them in an `.xlsx`
        // takes a whole pass over the sheet.
        let two_levels = source.header_levels == 2;
        let (mut rows, merged) = match book {
            Sheets::Xlsx(book) => stream_xlsx(book, path, &name, two_levels)?,
            mut book => {
                let cells = book
                    .worksheet_range(&name)
                    .map_err(|e| format!("{}: sheet '{name}': {e}", path.display()))?;
                let merged = two_levels.then(|| merged_cells(&mut book, &name)).flatten();
                (Rows::Loaded { cells, next: 0 }, merged)
            }
        };
        // Candidate header rows: the first non-blank rows, each with its names
        // (joined to the group row right above when there are two levels).
        let mut read: Vec<Row> = Vec::new();
        let mut texts = Vec::new();
        let mut lines = Vec::new();
        let mut at_read = Vec::new();
        let mut previous: Option<&Row> = None;
        let mut non_blank = 0;
        while non_blank < table::HEADER_SEARCH {
            let Some(mut row) = rows.next()? else { break };
            for cell in &mut row.1 {
                let trimmed = cell.trim();
                if trimmed.len() != cell.len() {
                    *cell = trimmed.to_owned();
                }
            }
            if row.1.iter().any(|c| !c.is_empty()) {
                non_blank += 1;
            }
            read.push(row);
        }
        for (i, row) in read.iter().enumerate() {
            if row.1.iter().all(String::is_empty) {
                previous = None;
                continue;
            }
            let combined = match previous {
                Some(groups) if source.header_levels == 2 && groups.0 + 1 == row.0 => {
                    two_level(&groups.1, &row.1, |c| {
                        merged_left(&merged, groups.0, c as u32)
                    })
                }
                _ => row.1.clone(),
            };
            texts.push(combined);
            lines.push(u64::from(row.0) + 1);
            at_read.push(i);
            previous = Some(row);
        }
        if texts.is_empty() {
            return Err(format!("{}: sheet '{name}' is empty", path.display()));
        }
        let at = table::pick_header(path, &texts, &lines, source.header_row, mapping)?;
        let mut ahead: std::collections::VecDeque<Row> = read.into();
        ahead.drain(..=at_read[at]);
        Ok(Self {
            rows,
            ahead,
            headers: texts.swap_remove(at),
            header_line: lines[at],
            current: csv::ByteRecord::new(),
            number: 0,
            path: path.to_owned(),
        })
    }

    /// How many rows the sheet has, for progress (0 when unknown: a streamed
    /// sheet whose file does not say).
    pub(crate) fn rows(&self) -> u64 {
        self.rows.len().unwrap_or(0)
    }
}

impl Records for SheetFile {
    fn headers(&self) -> &[String] {
        &self.headers
    }

    fn header_line(&self) -> u64 {
        self.header_line
    }

    fn path(&self) -> &Path {
        &self.path
    }

    /// The next non-blank data row; a reason naming the file when the workbook
    /// cannot be read further.
    fn next_record(&mut self) -> Result<Option<Record<'_>>, String> {
        loop {
            let row = match self.ahead.pop_front() {
                Some(row) => row,
                None => match self.rows.next()? {
                    Some(row) => row,
                    None => return Ok(None),
                },
            };
            if row.1.iter().all(|c| c.trim().is_empty()) {
                continue;
            }
            self.current.clear();
            for cell in &row.1 {
                self.current.push_field(cell.as_bytes());
            }
            // Trailing empty cells are not stored: the row is as wide as the header.
            for _ in row.1.len()..self.headers.len() {
                self.current.push_field(b"");
            }
            self.number += 1;
            return Ok(Some(Record::new(
                u64::from(row.0) + 1,
                self.number,
                &self.current,
                u64::from(row.0),
            )));
        }
    }
}

/// Opens a workbook by what its first bytes say it is, whatever its name: back
/// offices name `.xls` an `.xlsx` (or the other way round); then by its name.
fn open_by_content(
    path: &Path,
) -> Result<Sheets<std::io::BufReader<std::fs::File>>, calamine::Error> {
    use calamine::{Ods, Xls, Xlsb, Xlsx, open_workbook};
    let mut magic = [0u8; 4];
    let read =
        std::fs::File::open(path).and_then(|mut f| std::io::Read::read_exact(&mut f, &mut magic));
    match (read, magic) {
        (Ok(()), [0xD0, 0xCF, 0x11, 0xE0]) => Ok(Sheets::Xls(
            open_workbook::<Xls<_>, _>(path).map_err(calamine::Error::Xls)?,
        )),
        (Ok(()), [b'P', b'K', 3, 4]) => {
            if let Ok(book) = open_workbook::<Xlsx<_>, _>(path) {
                Ok(Sheets::Xlsx(book))
            } else if let Ok(book) = open_workbook::<Ods<_>, _>(path) {
                Ok(Sheets::Ods(book))
            } else {
                Ok(Sheets::Xlsb(
                    open_workbook::<Xlsb<_>, _>(path).map_err(calamine::Error::Xlsb)?,
                ))
            }
        }
        _ => open_workbook_auto(path),
    }
}

/// Starts a thread reading an `.xlsx` sheet cell by cell; returns its rows and,
/// when `merged` is asked for, the sheet's merged areas.
fn stream_xlsx<R: std::io::Read + std::io::Seek + Send + 'static>(
    mut book: calamine::Xlsx<R>,
    path: &Path,
    name: &str,
    merged: bool,
) -> Result<(Rows, Option<Vec<Dimensions>>), String> {
    let (sender, receiver) = std::sync::mpsc::sync_channel(8);
    let (path, name) = (path.to_owned(), name.to_owned());
    std::thread::Builder::new()
        .name("xlsx-reader".to_owned())
        .spawn(move || {
            let fail =
                |e: &dyn std::fmt::Display| format!("{}: sheet '{name}': {e}", path.display());
            let merged = merged
                .then(|| book.merge_cells_by_sheet_name(&name).ok())
                .flatten();
            if sender.send(Ok(Streamed::Merged(merged))).is_err() {
                return;
            }
            let mut cells = match book.worksheet_cells_reader(&name) {
                Ok(cells) => cells,
                Err(e) => {
                    let _ = sender.send(Err(fail(&e)));
                    return;
                }
            };
            let last = cells.dimensions().end.0;
            let size = (last > 0).then(|| u64::from(last) + 1);
            if sender.send(Ok(Streamed::Size(size))).is_err() {
                return;
            }
            let mut batch: Vec<Row> = Vec::with_capacity(ROW_BATCH);
            let mut row: Option<Row> = None;
            loop {
                match cells.next_cell() {
                    Ok(Some(cell)) => {
                        let (r, c) = cell.get_position();
                        if row.as_ref().is_some_and(|(at, _)| *at != r) {
                            batch.extend(row.take());
                            if batch.len() >= ROW_BATCH
                                && sender
                                    .send(Ok(Streamed::Rows(std::mem::take(&mut batch))))
                                    .is_err()
                            {
                                return;
                            }
                        }
                        let (_, texts) = row.get_or_insert_with(|| (r, Vec::new()));
                        let c = c as usize;
                        if texts.len() <= c {
                            texts.resize(c + 1, String::new());
                        }
                        cell_ref_text(cell.get_value(), &mut texts[c]);
                    }
                    Ok(None) => {
                        batch.extend(row.take());
                        let _ = sender.send(Ok(Streamed::Rows(batch)));
                        let _ = sender.send(Ok(Streamed::End));
                        return;
                    }
                    Err(e) => {
                        let _ = sender.send(Err(fail(&e)));
                        return;
                    }
                }
            }
        })
        .map_err(|e| format!("cannot start the workbook reader: {e}"))?;
    // The merged areas come first.
    let merged = match receiver.recv() {
        Ok(Ok(Streamed::Merged(merged))) => merged,
        Ok(Err(reason)) => return Err(reason),
        Ok(Ok(Streamed::Size(_) | Streamed::Rows(_) | Streamed::End)) | Err(_) => None,
    };
    // Then the size, or why the sheet cannot be read.
    let size = match receiver.recv() {
        Ok(Ok(Streamed::Size(size))) => size,
        Ok(Err(reason)) => return Err(reason),
        Ok(Ok(Streamed::Merged(_) | Streamed::Rows(_) | Streamed::End)) | Err(_) => None,
    };
    Ok((
        Rows::Streamed {
            receiver,
            pending: std::collections::VecDeque::new(),
            ended: false,
            size,
        },
        merged,
    ))
}

/// The merged areas of a sheet, where the format keeps them (`.xls`, `.xlsx`);
/// `None` when it does not (`.ods`, `.xlsb`).
fn merged_cells<R: std::io::Read + std::io::Seek>(
    book: &mut Sheets<R>,
    name: &str,
) -> Option<Vec<Dimensions>> {
    match book {
        Sheets::Xls(x) => x.merge_cells_by_sheet_name(name).ok(),
        Sheets::Xlsx(x) => x.merge_cells_by_sheet_name(name).ok(),
        Sheets::Xlsb(_) | Sheets::Ods(_) => None,
    }
}

/// Whether an empty group cell (absolute row and column) continues the group on
/// its left: it does when it lies in a merged area that starts further left, or,
/// for formats that do not say what is merged, always.
fn merged_left(merged: &Option<Vec<Dimensions>>, row: u32, col: u32) -> bool {
    match merged {
        Some(areas) => areas
            .iter()
            .any(|a| a.contains(row, col) && a.start.1 < col),
        None => true,
    }
}

/// Column names under a row of group names: `Group/Column`, or `Column` alone
/// where there is no group. `continues(c)` tells whether an empty group cell at
/// column `c` belongs to the group on its left (a merged cell).
fn two_level(
    groups: &[String],
    names: &[String],
    continues: impl Fn(usize) -> bool,
) -> Vec<String> {
    let mut group = String::new();
    names
        .iter()
        .enumerate()
        .map(|(c, name)| {
            match groups.get(c).filter(|g| !g.is_empty()) {
                Some(g) => group.clone_from(g),
                None if !group.is_empty() && continues(c) => {}
                None => group.clear(),
            }
            match (group.is_empty(), name.is_empty()) {
                (true, _) => name.clone(),
                (false, true) => group.clone(),
                (false, false) => format!("{group}/{name}"),
            }
        })
        .collect()
}

/// Appends the text of a cell as the value parsers expect it.
fn cell_text(cell: &Data, out: &mut String) {
    match cell {
        Data::Empty => {}
        Data::String(s) | Data::DateTimeIso(s) | Data::DurationIso(s) => out.push_str(s),
        Data::Int(i) => {
            let _ = write!(out, "{i}");
        }
        Data::Float(f) => push_number(*f, out),
        Data::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Data::DateTime(d) if d.is_duration() => push_number(d.as_f64(), out),
        Data::DateTime(d) => match d.as_datetime() {
            Some(t) if t.time() == chrono::NaiveTime::MIN => {
                let _ = write!(out, "{}", t.format("%Y-%m-%d"));
            }
            Some(t) => {
                let _ = write!(out, "{}", t.format("%Y-%m-%dT%H:%M:%S"));
            }
            None => push_number(d.as_f64(), out),
        },
        Data::Error(e) => {
            let _ = write!(out, "{e}");
        }
    }
}

/// [`cell_text`] for a cell borrowed from a streamed sheet.
fn cell_ref_text(cell: &DataRef<'_>, out: &mut String) {
    match cell {
        DataRef::SharedString(s) => out.push_str(s),
        DataRef::String(s) => out.push_str(s),
        other => cell_text(&Data::from(other.clone()), out),
    }
}

/// A number as written by a person: integers without a decimal part or an
/// exponent (a SIRET stays `21060004500392`), others in the shortest exact form.
fn push_number(f: f64, out: &mut String) {
    // Integers up to 2^53 are exact in a double.
    if f.fract() == 0.0 && f.abs() < 9_007_199_254_740_992.0 {
        let _ = write!(out, "{}", f as i64);
    } else {
        let _ = write!(out, "{f}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(cell: Data) -> String {
        let mut out = String::new();
        cell_text(&cell, &mut out);
        out
    }

    #[test]
    fn numbers_keep_every_digit() {
        assert_eq!(text(Data::Float(21_060_004_500_392.0)), "21060004500392");
        assert_eq!(text(Data::Float(26_956.0)), "26956");
        assert_eq!(text(Data::Float(8_500.5)), "8500.5");
        assert_eq!(text(Data::Float(-0.25)), "-0.25");
        assert_eq!(text(Data::Float(1e20)), "100000000000000000000");
        assert_eq!(text(Data::Int(732_829_320)), "732829320");
    }

    #[test]
    fn other_cells() {
        assert_eq!(text(Data::Empty), "");
        assert_eq!(text(Data::Bool(true)), "true");
        assert_eq!(text(Data::DateTimeIso("2026-09-05".into())), "2026-09-05");
        assert_eq!(text(Data::Error(calamine::CellErrorType::Div0)), "#DIV/0!");
    }

    #[test]
    fn group_names_prefix_their_columns() {
        let s = |v: &[&str]| v.iter().map(|x| (*x).to_owned()).collect::<Vec<_>>();
        let groups = s(&["Dossier", "", "Montants", "", "", "Suivi"]);
        let names = s(&["N°", "Référence", "Demandé", "Accordé", "Observations", ""]);
        // Columns 1 and 3 lie in merged group cells; column 4 does not.
        let merged = |c: usize| c == 1 || c == 3;
        assert_eq!(
            two_level(&groups, &names, merged),
            s(&[
                "Dossier/N°",
                "Dossier/Référence",
                "Montants/Demandé",
                "Montants/Accordé",
                "Observations",
                "Suivi"
            ])
        );
        // Without merge information, an empty group cell continues the group.
        assert_eq!(
            two_level(&groups, &names, |_| true)[4],
            "Montants/Observations"
        );
    }
}
