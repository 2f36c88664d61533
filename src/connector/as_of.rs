//! `[as_of]`: when each export of a connector was taken, read from the file
//! itself, so that archived exports replay the past (issue 19).
//!
//! Owns the table as written (`AsOfDef`, strict), its validation into an
//! [`AsOf`], the dating of one file by it ([`Connector::file_as_of`]), the check
//! that every record of a file dated by a column carries that date
//! ([`AsOf::checked`]), and the reading of an instant given on the command line
//! (`import --as-of`). It does not decide what an import does with the instant:
//! that is `import`'s (its one clock).
//!
//! A file is dated by exactly one of:
//! - `file_name = "export-%Y-%m-%d.csv"`: a pattern matched against the file's
//!   name (`%Y %m %d`, and optionally `%H %M` together; `%%` is a `%`); a name
//!   that does not match is refused, naming the file, the pattern and why;
//! - `modified = true`: the file's modification time;
//! - `column = "Date d'export"` (with `format`, `auto` by default, as a date or
//!   instant field of `[fields]` takes it): the value of that column, which
//!   every record must carry alike (a path of the record for XML).
//!
//! `time = "06:00"` is the time of day of a date without one (a name's date, a
//! column's date written without a time, `--as-of 2025-03-03`), in the Region's
//! time zone; midnight when unset.
//!
//! # A column
//!
//! A file dated by a column is dated by its first record, read with the
//! connector's own reader before the import's transaction (its first pass, its
//! header and one record: a file is never read whole twice more than by the
//! other ways, and `import --backfill` and a drop folder date each file once).
//! The import's own read then checks every record against that date
//! ([`AsOf::checked`]) and refuses the whole snapshot at the first record that
//! does not carry it (an empty value, one that is not a date, another date),
//! naming the file, the line, the column and why: nothing is applied.
//!
//! The column is **volatile**, as if `volatile` listed it: every export carries
//! a new date in every record, which would otherwise make each record look
//! changed at each import, to be mapped again for nothing (the column is no
//! field, and raises no event). Mapping it to a field as well is pointless: a
//! volatile column does not make a record change.
//!
//! `import --as-of TIME` wins over `[as_of]`, as for a name: the file's column
//! is then neither read nor checked. Each file of a backfill is dated by its
//! plan, from the file, and is checked like a file the import dates itself.

use std::path::Path;

use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Utc};
use chrono_tz::Tz;
use serde::Deserialize;
use toml::Spanned;

use super::mapping::{Mapping, date_format, normalize};
use super::table::{FirstPass, Record, Records, Table};
use super::{Connector, Origin};
use crate::diag::FileProblems;
use crate::value::DateFormat;

/// `[as_of]` as written in a connector file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AsOfDef {
    /// A pattern matched against each file's name.
    #[serde(default)]
    file_name: Option<Spanned<String>>,
    /// The file's modification time.
    #[serde(default)]
    modified: Option<Spanned<bool>>,
    /// A column of the file's records.
    #[serde(default)]
    column: Option<Spanned<String>>,
    /// How the column's values are written (`auto`, or a strftime pattern).
    #[serde(default)]
    format: Option<Spanned<String>>,
    /// The time of day of a date without one (`HH:MM`).
    #[serde(default)]
    time: Option<Spanned<String>>,
}

/// Where a file's as-of is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dated {
    /// Its name, matched against this pattern.
    FileName(String),
    /// Its modification time.
    Modified,
    /// A column of its records, which all carry the same date.
    Column(Column),
}

/// The column of an export's records that says when it was taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    /// Its header (for XML, a path of the record).
    pub name: String,
    /// How its values are written.
    format: DateFormat,
}

/// How a connector's exports say when they were taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AsOf {
    /// Where each file's as-of is read.
    pub dated: Dated,
    /// The time of day of a date without one, in the Region's zone.
    pub time: NaiveTime,
}

impl AsOf {
    /// Validates `[as_of]`, reporting every problem with its place.
    pub(crate) fn validate(def: &Spanned<AsOfDef>, fp: &mut FileProblems<'_>) -> Option<Self> {
        let table = def.get_ref();
        let time = match &table.time {
            Some(t) => match time_of_day(t.get_ref()) {
                Ok(time) => Some(time),
                Err(reason) => {
                    fp.at(t.span(), format!("[as_of] time: {reason}"));
                    None
                }
            },
            None => Some(NaiveTime::MIN),
        };
        let dated = dated(def, fp);
        if let (Some(format), None) = (&table.format, &table.column) {
            fp.at(
                format.span(),
                "[as_of] format says how `column` is written: it goes with `column` only",
            );
            return None;
        }
        Some(Self {
            dated: dated?,
            time: time?,
        })
    }

    /// The column files are dated by, if they are.
    pub(crate) fn column(&self) -> Option<&Column> {
        match &self.dated {
            Dated::Column(column) => Some(column),
            Dated::FileName(_) | Dated::Modified => None,
        }
    }

    /// What dating files by a column asks of the rest of the connector: the
    /// column read beside the fields (an XML record names only the paths it is
    /// asked for), and left out of change detection (see the module's comment).
    pub(crate) fn settle(&self, mapping: &mut Mapping, volatile: &mut Vec<String>) {
        let Some(column) = self.column() else {
            return;
        };
        mapping.read_beside(&column.name);
        let name = normalize(&column.name);
        if !volatile.iter().any(|v| normalize(v) == name) {
            volatile.push(column.name.clone());
        }
    }

    /// `table`, each of whose records must carry `expected` (the file's as-of,
    /// read from its first record) in the column files are dated by; `table`
    /// as it is when files are dated otherwise. A record that does not ends
    /// the read with a reason naming the file, the line, the column and why.
    ///
    /// # Errors
    /// When the table has no such column: the file, the header's line and the
    /// closest header.
    pub(crate) fn checked(
        &self,
        table: Table,
        tz: Tz,
        expected: DateTime<Utc>,
    ) -> Result<Table, String> {
        let Some(column) = self.column() else {
            return Ok(table);
        };
        let values = Values::find(column, self.time, tz, table.as_ref())?;
        Ok(Box::new(Checked {
            table,
            values,
            expected,
        }))
    }
}

/// Where `[as_of]` says files are dated, each problem reported.
fn dated(def: &Spanned<AsOfDef>, fp: &mut FileProblems<'_>) -> Option<Dated> {
    let table = def.get_ref();
    match (&table.file_name, &table.modified, &table.column) {
        (Some(pattern), None, None) => match check_pattern(pattern.get_ref()) {
            Ok(()) => Some(Dated::FileName(pattern.get_ref().clone())),
            Err(reason) => {
                fp.at(pattern.span(), format!("[as_of] file_name: {reason}"));
                None
            }
        },
        (None, Some(modified), None) if *modified.get_ref() => Some(Dated::Modified),
        (None, Some(modified), None) => {
            fp.at(
                modified.span(),
                "[as_of] modified = false dates nothing: remove [as_of], or set modified = true",
            );
            None
        }
        (None, None, Some(column)) => {
            column_of(column, table.format.as_ref(), fp).map(Dated::Column)
        }
        _ => {
            fp.at(
                def.span(),
                "[as_of] takes exactly one of `file_name` (a pattern such as \"export-%Y-%m-%d.csv\"), `modified = true` or `column` (a column of the records, such as \"Date d'export\")",
            );
            None
        }
    }
}

/// `[as_of] column` and its `format`, each problem reported.
fn column_of(
    column: &Spanned<String>,
    format: Option<&Spanned<String>>,
    fp: &mut FileProblems<'_>,
) -> Option<Column> {
    let name = column.get_ref();
    let named = !normalize(name).is_empty();
    if !named {
        fp.at(column.span(), "[as_of] column: empty column name");
    }
    let format = match format {
        Some(format) => date_format(Some(format.get_ref()))
            .map_err(|reason| fp.at(format.span(), format!("[as_of] format: {reason}")))
            .ok(),
        None => Some(DateFormat::Auto),
    };
    Some(Column {
        name: name.clone(),
        format: format?,
    })
    .filter(|_| named)
}

impl Connector {
    /// When the file at `path` was taken, in UTC, by the connector's `[as_of]`
    /// (`None` without one); a date without a time is taken at its `time`
    /// in `tz`.
    ///
    /// # Errors
    /// Why the file cannot be dated, naming it: a name that does not match the
    /// pattern (and the pattern, and why), a modification time that cannot be
    /// read, a file that cannot be read or whose first record has no date in
    /// the column (its line, the column, and why).
    pub fn file_as_of(&self, path: &Path, tz: Tz) -> Option<Result<DateTime<Utc>, String>> {
        let as_of = self.as_of.as_ref()?;
        Some(match &as_of.dated {
            Dated::FileName(pattern) => by_name(pattern, as_of.time, path, tz),
            Dated::Modified => by_modification(path),
            Dated::Column(column) => by_first_record(self, column, as_of.time, path, tz),
        })
    }
}

/// The as-of a file's name says, by `pattern`.
fn by_name(pattern: &str, time: NaiveTime, path: &Path, tz: Tz) -> Result<DateTime<Utc>, String> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let local = if pattern.contains("%H") {
        NaiveDateTime::parse_from_str(&name, pattern)
    } else {
        NaiveDate::parse_from_str(&name, pattern).map(|d| d.and_time(time))
    };
    let local = local.map_err(|e| {
        format!(
            "{}: the name '{name}' does not match [as_of] file_name = \"{pattern}\" ({e}); rename the file, or import it with --as-of",
            path.display()
        )
    })?;
    crate::timing::local_instant(local.date(), local.time(), tz)
        .ok_or_else(|| format!("{}: {local} is no time in {tz}", path.display()))
}

/// A file's modification time.
fn by_modification(path: &Path) -> Result<DateTime<Utc>, String> {
    std::fs::metadata(path)
        .and_then(|m| m.modified())
        .map(DateTime::<Utc>::from)
        .map_err(|e| {
            format!(
                "{}: cannot read its modification time ([as_of] modified = true): {e}",
                path.display()
            )
        })
}

/// The date of a file's first record in `column`, read with the connector's
/// own reader (its first pass, header and first record). A reader that panics
/// (a damaged workbook) gives a reason, as it does in an import.
fn by_first_record(
    connector: &Connector,
    column: &Column,
    time: NaiveTime,
    path: &Path,
    tz: Tz,
) -> Result<DateTime<Utc>, String> {
    let read = || {
        let origin = Origin::File(path);
        let first = FirstPass::of(origin, &connector.source)?;
        let (mut table, _) = first.open(origin, connector)?;
        let mut values = Values::find(column, time, tz, table.as_ref())?;
        match table.next_record()? {
            Some(record) => values.read(&record),
            None => Err(format!(
                "{}: no record says when the export was taken ([as_of] column '{}')",
                path.display(),
                column.name
            )),
        }
    };
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(read)).unwrap_or_else(|_| {
        Err(format!(
            "{}: the file cannot be read to date it (its reader failed); a cut or damaged export?",
            path.display()
        ))
    })
}

/// The `[as_of]` column of one opened file: where it is, and the last value
/// read (the records repeat it: it is parsed once).
struct Values {
    /// The column, as `[as_of]` names it.
    name: String,
    format: DateFormat,
    time: NaiveTime,
    tz: Tz,
    /// Its position in the header.
    index: usize,
    /// The file, as reasons name it.
    shown: String,
    /// The last value read, trimmed, and its instant.
    last: Option<(String, DateTime<Utc>)>,
}

impl Values {
    /// The column in `table`'s header.
    fn find(column: &Column, time: NaiveTime, tz: Tz, table: &dyn Records) -> Result<Self, String> {
        let wanted = normalize(&column.name);
        let headers = table.headers();
        let shown = table.path().display().to_string();
        let Some(index) = headers.iter().position(|h| normalize(h) == wanted) else {
            let hint = crate::diag::closest(&column.name, headers.iter().map(String::as_str))
                .map(|c| format!(" (closest header found: '{c}')"))
                .unwrap_or_default();
            return Err(format!(
                "{shown}:{}: no column '{}', which [as_of] column dates the export by{hint}",
                table.header_line(),
                column.name
            ));
        };
        Ok(Self {
            name: column.name.clone(),
            format: column.format.clone(),
            time,
            tz,
            index,
            shown,
            last: None,
        })
    }

    /// The trimmed text of a record's value (empty when it has none).
    fn text<'r>(&self, record: &Record<'r>) -> &'r str {
        record
            .get(self.index)
            .map(crate::value::trim)
            .unwrap_or_default()
    }

    /// The instant a record's value says.
    fn read(&mut self, record: &Record<'_>) -> Result<DateTime<Utc>, String> {
        let text = self.text(record);
        if let Some((last, at)) = &self.last
            && last == text
        {
            return Ok(*at);
        }
        let at = crate::value::parse_instant_at(text, &self.format, self.tz, self.time).map_err(
            |reason| {
                format!(
                    "{}:{}: [as_of] column '{}': {reason}; every record must say when the export was taken",
                    self.shown, record.line, self.name
                )
            },
        )?;
        self.last = Some((text.to_owned(), at));
        Ok(at)
    }
}

/// A file's records, each checked to carry the file's as-of (see
/// [`AsOf::checked`]).
struct Checked {
    table: Table,
    values: Values,
    /// The file's as-of, read from its first record.
    expected: DateTime<Utc>,
}

impl Records for Checked {
    fn headers(&self) -> &[String] {
        self.table.headers()
    }

    fn header_line(&self) -> u64 {
        self.table.header_line()
    }

    fn path(&self) -> &Path {
        self.table.path()
    }

    fn next_record(&mut self) -> Result<Option<Record<'_>>, String> {
        let record = self.table.next_record()?;
        if let Some(record) = &record {
            let at = self.values.read(record)?;
            if at != self.expected {
                let values = &self.values;
                return Err(format!(
                    "{}:{}: [as_of] column '{}' is '{}' ({}), but the export is dated {} by its first record: all the records of an export must carry the date it was taken",
                    values.shown,
                    record.line,
                    values.name,
                    values.text(record),
                    crate::timing::local_time(at, values.tz),
                    crate::timing::local_time(self.expected, values.tz)
                ));
            }
        }
        Ok(record)
    }

    fn vanished(&self, mapping: &Mapping) -> Vec<String> {
        self.table.vanished(mapping)
    }

    fn is_api(&self) -> bool {
        self.table.is_api()
    }

    fn deleted(&self) -> &[crate::model::SourceDeletion] {
        self.table.deleted()
    }

    fn full_snapshot(&self) -> bool {
        self.table.full_snapshot()
    }

    fn cursor(&self) -> Option<String> {
        self.table.cursor()
    }
}

/// A time of day written `HH:MM`.
fn time_of_day(text: &str) -> Result<NaiveTime, String> {
    NaiveTime::parse_from_str(text, "%H:%M")
        .map_err(|_| format!("'{text}' is not a time of day like \"06:00\""))
}

/// A file-name pattern: a date (`%Y`, `%m`, `%d`), optionally a time (`%H`
/// and `%M`), and `%%`; no other directive.
fn check_pattern(pattern: &str) -> Result<(), String> {
    let mut seen = Vec::new();
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            continue;
        }
        match chars.next() {
            Some(d @ ('Y' | 'm' | 'd' | 'H' | 'M')) => seen.push(d),
            Some('%') => {}
            Some(d) => {
                return Err(format!(
                    "'{pattern}': %{d} is not understood here; use %Y, %m, %d, and optionally %H and %M"
                ));
            }
            None => return Err(format!("'{pattern}' ends with a lone %")),
        }
    }
    for d in ['Y', 'm', 'd'] {
        if !seen.contains(&d) {
            return Err(format!(
                "'{pattern}' has no %{d}: a file's date needs %Y, %m and %d"
            ));
        }
    }
    if seen.contains(&'H') != seen.contains(&'M') {
        return Err(format!("'{pattern}': %H and %M go together"));
    }
    if seen.len() != seen.iter().collect::<std::collections::BTreeSet<_>>().len() {
        return Err(format!("'{pattern}' repeats a directive"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::utc;
    use chrono_tz::Europe::Paris;

    fn six() -> NaiveTime {
        time_of_day("06:00").unwrap()
    }

    /// Issue 19: a name's date is taken at the connector's time of day in
    /// Paris: 06:00 is 04:00Z in summer and 05:00Z in winter.
    #[test]
    fn issue_19_a_file_name_dates_the_export_in_the_regions_zone() {
        let pattern = "export-%Y-%m-%d.csv";
        let at = |name: &str| by_name(pattern, six(), &Path::new("/in").join(name), Paris);
        assert_eq!(at("export-2025-07-07.csv"), Ok(utc("2025-07-07T04:00:00Z")));
        assert_eq!(at("export-2025-01-06.csv"), Ok(utc("2025-01-06T05:00:00Z")));
        assert_eq!(
            by_name(
                "extract_%Y%m%d_%H%M.csv",
                six(),
                Path::new("extract_20250707_1830.csv"),
                Paris
            ),
            Ok(utc("2025-07-07T16:30:00Z"))
        );
    }

    #[test]
    fn issue_19_a_name_that_does_not_match_is_refused_naming_file_and_pattern() {
        let error = by_name(
            "export-%Y-%m-%d.csv",
            six(),
            Path::new("/in/export-latest.csv"),
            Paris,
        )
        .unwrap_err();
        assert!(
            error.starts_with("/in/export-latest.csv: the name 'export-latest.csv' does not match [as_of] file_name = \"export-%Y-%m-%d.csv\" ("),
            "{error}"
        );
    }

    /// A connector file `c.toml` in `dir` of kind csv (or `kind`'s own
    /// `[source]` and `[fields]`), with `as_of` at its end.
    fn connector(dir: &Path, head: &str, as_of: &str) -> (Option<Connector>, String) {
        let config = crate::config::Config::load(Some(Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/config.example.toml"
        ))))
        .unwrap();
        let lifecycle = crate::test_support::shipped_lifecycle();
        let mut problems = crate::diag::Problems::default();
        let text = format!("{head}[steps]\n\"a\" = \"depose\"\n{as_of}");
        let c = Connector::parse(
            &dir.join("c.toml"),
            &text,
            &config,
            &lifecycle,
            &mut problems,
        );
        (c, problems.to_string())
    }

    const CSV: &str = "kind = \"csv\"\nvolatile = [\"date d'EXPORT\"]\n[source]\npath = \"*.csv\"\n[fields]\nid = \"id\"\nstep = \"statut\"\n";

    fn csv(dir: &Path, as_of: &str) -> Connector {
        let (c, problems) = connector(dir, CSV, as_of);
        c.unwrap_or_else(|| panic!("{problems}"))
    }

    fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    /// Every record of `path`, read as an import reads them, each checked to
    /// carry `expected`; the reason the read stops at, if it does.
    fn check_all(c: &Connector, path: &Path, expected: &str) -> Result<u64, String> {
        let origin = Origin::File(path);
        let first = FirstPass::of(origin, &c.source)?;
        let (table, _) = first.open(origin, c)?;
        let as_of = c.as_of.as_ref().unwrap();
        let mut table = as_of.checked(table, Paris, utc(expected))?;
        let mut n = 0;
        while table.next_record()?.is_some() {
            n += 1;
        }
        Ok(n)
    }

    /// Issue 19: `[as_of] column` dates a file by its first record's value, a
    /// date alone at the connector's time of day, a date-time as written (in
    /// the Region's zone, or at its offset), with `format` as `[fields]` take it.
    #[test]
    fn issue_19_a_column_dates_a_file_by_its_first_record() {
        let dir = tempfile::tempdir().unwrap();
        let dir = dir.path();
        let by_date = csv(
            dir,
            "[as_of]\ncolumn = \"Date d'export\"\ntime = \"06:00\"\n",
        );
        let file = write(
            dir,
            "a.csv",
            "id;statut;Date d'export\nD1;a;01/10/2025\nD2;a;01/10/2025\n",
        );
        assert_eq!(
            by_date.file_as_of(&file, Paris),
            Some(Ok(utc("2025-10-01T04:00:00Z")))
        );
        let with_time = write(
            dir,
            "b.csv",
            "id;statut;Date d'export\nD1;a;2025-10-01T07:30:00+02:00\n",
        );
        assert_eq!(
            by_date.file_as_of(&with_time, Paris),
            Some(Ok(utc("2025-10-01T05:30:00Z")))
        );
        let by_pattern = csv(
            dir,
            "[as_of]\ncolumn = \"Date d'export\"\nformat = \"%d/%m/%Y %Hh%M\"\n",
        );
        let file = write(
            dir,
            "c.csv",
            "id;statut;Date d'export\nD1;a;07/01/2025 18h30\n",
        );
        assert_eq!(
            by_pattern.file_as_of(&file, Paris),
            Some(Ok(utc("2025-01-07T17:30:00Z")))
        );
        // No first record, no column, no date: refused, naming file, line and column.
        let error = |c: &Connector, text: &str| {
            let file = write(dir, "x.csv", text);
            c.file_as_of(&file, Paris).unwrap().unwrap_err()
        };
        let x = dir.join("x.csv").display().to_string();
        assert_eq!(
            error(&by_date, "id;statut;Date d'export\n"),
            format!(
                "{x}: no record says when the export was taken ([as_of] column 'Date d'export')"
            )
        );
        assert_eq!(
            error(&by_date, "id;statut;Date export\nD1;a;01/10/2025\n"),
            format!(
                "{x}:1: no column 'Date d'export', which [as_of] column dates the export by (closest header found: 'Date export')"
            )
        );
        assert_eq!(
            error(&by_date, "id;statut;Date d'export\nD1;a;\n"),
            format!(
                "{x}:2: [as_of] column 'Date d'export': empty value (expected a date); every record must say when the export was taken"
            )
        );
        let reason = error(&by_pattern, "id;statut;Date d'export\nD1;a;01/10/2025\n");
        assert!(
            reason.starts_with(&format!(
                "{x}:2: [as_of] column 'Date d'export': '01/10/2025' does not match"
            )),
            "{reason}"
        );
    }

    /// Issue 19: the import's read checks each record against the file's
    /// as-of, and stops at the first that does not carry it, naming the file,
    /// the line, the column, the value and both dates.
    #[test]
    fn issue_19_every_record_must_carry_the_files_as_of() {
        let dir = tempfile::tempdir().unwrap();
        let dir = dir.path();
        let c = csv(
            dir,
            "[as_of]\ncolumn = \"Date d'export\"\ntime = \"06:00\"\n",
        );
        let agree = write(
            dir,
            "agree.csv",
            "id;statut;Date d'export\nD1;a;01/10/2025\nD2;a; 1/10/2025 \nD3;a;2025-10-01\n",
        );
        assert_eq!(check_all(&c, &agree, "2025-10-01T04:00:00Z"), Ok(3));
        let disagree = write(
            dir,
            "disagree.csv",
            "id;statut;Date d'export\nD1;a;01/10/2025\nD2;a;01/10/2025\nD3;a;08/10/2025\n",
        );
        let path = disagree.display();
        assert_eq!(
            check_all(&c, &disagree, "2025-10-01T04:00:00Z"),
            Err(format!(
                "{path}:4: [as_of] column 'Date d'export' is '08/10/2025' (2025-10-08 06:00:00 +02:00 (Europe/Paris)), but the export is dated 2025-10-01 06:00:00 +02:00 (Europe/Paris) by its first record: all the records of an export must carry the date it was taken"
            ))
        );
        let missing = write(
            dir,
            "missing.csv",
            "id;statut;Date d'export\nD1;a;01/10/2025\nD2;a;\n",
        );
        let reason = check_all(&c, &missing, "2025-10-01T04:00:00Z").unwrap_err();
        assert!(
            reason.starts_with(&format!(
                "{}:3: [as_of] column 'Date d'export': empty value",
                missing.display()
            )),
            "{reason}"
        );
        let garbled = write(
            dir,
            "garbled.csv",
            "id;statut;Date d'export\nD1;a;01/10/2025\nD2;a;hier\n",
        );
        let reason = check_all(&c, &garbled, "2025-10-01T04:00:00Z").unwrap_err();
        assert!(
            reason.starts_with(&format!(
                "{}:3: [as_of] column 'Date d'export': 'hier' is not a recognised date",
                garbled.display()
            )),
            "{reason}"
        );
        // A connector dated otherwise reads its records unchecked.
        let by_name = csv(dir, "[as_of]\nfile_name = \"%Y-%m-%d.csv\"\n");
        assert_eq!(
            check_all(&by_name, &disagree, "2025-10-01T04:00:00Z"),
            Ok(3)
        );
    }

    /// Issue 19: the `[as_of]` column is volatile (listed once, however
    /// written), and an XML record reads its path beside the fields'.
    #[test]
    fn issue_19_the_as_of_column_is_volatile_and_read_by_xml_records() {
        let dir = tempfile::tempdir().unwrap();
        let dir = dir.path();
        let c = csv(dir, "[as_of]\ncolumn = \"Date d'export\"\n");
        assert_eq!(c.volatile, ["date d'EXPORT"]);
        let (c, problems) = connector(
            dir,
            &CSV.replace("volatile = [\"date d'EXPORT\"]\n", ""),
            "[as_of]\ncolumn = \"Date d'export\"\n",
        );
        assert_eq!(c.expect(&problems).volatile, ["Date d'export"]);
        let xml = "kind = \"xml\"\n[source]\npath = \"*.xml\"\nrecord = \"/export/dossier\"\n[fields]\nid = \"@id\"\nstep = \"etat\"\n";
        let (c, problems) = connector(dir, xml, "[as_of]\ncolumn = \"@exporte\"\n");
        let c = c.expect(&problems);
        let file = write(
            dir,
            "e.xml",
            "<export>\n<dossier id=\"1\" exporte=\"2025-10-01\"><etat>a</etat></dossier>\n<dossier id=\"2\" exporte=\"2025-10-02\"><etat>a</etat></dossier>\n</export>\n",
        );
        assert_eq!(
            c.file_as_of(&file, Paris),
            Some(Ok(utc("2025-09-30T22:00:00Z")))
        );
        let reason = check_all(&c, &file, "2025-09-30T22:00:00Z").unwrap_err();
        assert!(
            reason.starts_with(&format!(
                "{}:3: [as_of] column '@exporte' is '2025-10-02'",
                file.display()
            )),
            "{reason}"
        );
        let (_, problems) = connector(dir, xml, "[as_of]\ncolumn = \"x:date\"\n");
        assert!(
            problems.contains("[as_of] column: path 'x:date': the prefix 'x' is not declared"),
            "{problems}"
        );
    }

    /// Issue 19: a workbook is dated by a column too, its date cells read as
    /// the import reads them, and its rows checked alike.
    #[test]
    fn issue_19_a_workbook_is_dated_by_a_column() {
        let dir = tempfile::tempdir().unwrap();
        let head = "kind = \"spreadsheet\"\n[source]\npath = \"*.xls\"\nsheet = \"Dossiers\"\n[fields]\nid = \"N° dossier\"\nstep = \"Statut\"\n";
        let (c, problems) = connector(
            dir.path(),
            head,
            "[as_of]\ncolumn = \"Date statut\"\ntime = \"06:00\"\n",
        );
        let c = c.expect(&problems);
        let file = Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/sheets/progos-like.xls"
        ));
        // Its rows carry different dates: the first dates it, the second is refused.
        assert_eq!(
            c.file_as_of(file, Paris),
            Some(Ok(utc("2026-09-01T04:00:00Z")))
        );
        let reason = check_all(&c, file, "2026-09-01T04:00:00Z").unwrap_err();
        assert!(
            reason.starts_with(&format!(
                "{}:6: [as_of] column 'Date statut' is '2026-09-02' (2026-09-02 06:00:00 +02:00 (Europe/Paris))",
                file.display()
            )),
            "{reason}"
        );
    }

    /// Issue 19: `[as_of] column` and `format` are checked strictly, each
    /// problem with its line and column.
    #[test]
    fn issue_19_an_as_of_column_is_checked_with_its_place() {
        let dir = tempfile::tempdir().unwrap();
        let dir = dir.path();
        let problems = |as_of: &str| connector(dir, CSV, as_of).1;
        // The [as_of] table starts on line 10.
        let text = problems("[as_of]\ncolumn = \"Date\"\nfile_name = \"%Y-%m-%d.csv\"\n");
        assert!(
            text.contains("c.toml:10:1: [as_of] takes exactly one of `file_name` (a pattern such as \"export-%Y-%m-%d.csv\"), `modified = true` or `column`"),
            "{text}"
        );
        let text = problems("[as_of]\ncolumn = \"Date\"\nformat = \"%d/%m/%Q\"\n");
        assert!(
            text.contains("c.toml:12:10: [as_of] format: '%d/%m/%Q' is not a valid date pattern"),
            "{text}"
        );
        let text = problems("[as_of]\nfile_name = \"%Y-%m-%d.csv\"\nformat = \"%d/%m/%Y\"\n");
        assert!(
            text.contains("c.toml:12:10: [as_of] format says how `column` is written"),
            "{text}"
        );
        let text = problems("[as_of]\ncolumn = \" \"\n");
        assert!(
            text.contains("c.toml:11:10: [as_of] column: empty column name"),
            "{text}"
        );
        let text = problems("[as_of]\ncolumn = \"Date\"\nformats = \"%d/%m/%Y\"\n");
        assert!(
            text.contains("line 12, column 1")
                && text.contains("unknown field `formats`, expected one of `file_name`, `modified`, `column`, `format`, `time`"),
            "{text}"
        );
        assert_eq!(
            problems("[as_of]\ncolumn = \"Date\"\nformat = \"auto\"\ntime = \"06:00\"\n"),
            ""
        );
    }

    #[test]
    fn patterns_take_dates_and_times_only() {
        assert!(check_pattern("export-%Y-%m-%d.csv").is_ok());
        assert!(check_pattern("%Y%m%d-%H%M.xlsx").is_ok());
        assert!(
            check_pattern("export-%Y-%m.csv")
                .unwrap_err()
                .contains("no %d")
        );
        assert!(
            check_pattern("%Y-%m-%d-%H.csv")
                .unwrap_err()
                .contains("go together")
        );
        assert!(check_pattern("%Y-%m-%d-%S.csv").unwrap_err().contains("%S"));
    }

    #[test]
    fn a_given_instant_is_rfc_3339_or_a_date_at_the_time_of_day() {
        let six = time_of_day("06:00").unwrap();
        assert_eq!(
            crate::timing::parse_as_of("2025-03-03T06:00:00+01:00", six, Paris),
            Ok(utc("2025-03-03T05:00:00Z"))
        );
        assert_eq!(
            crate::timing::parse_as_of("2025-07-07", six, Paris),
            Ok(utc("2025-07-07T04:00:00Z"))
        );
        assert_eq!(
            crate::timing::parse_as_of("2025-07-07", NaiveTime::MIN, Paris),
            Ok(utc("2025-07-06T22:00:00Z"))
        );
        assert!(crate::timing::parse_as_of("last monday", six, Paris).is_err());
    }
}
