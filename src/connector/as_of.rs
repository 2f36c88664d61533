//! `[as_of]`: when each export of a connector was taken, read from the file
//! itself, so that archived exports replay the past (issue 19).
//!
//! Owns the table as written (`AsOfDef`, strict), its validation into an
//! [`AsOf`], the dating of one file by it, and the reading of an instant given
//! on the command line (`import --as-of`). It does not decide what an import
//! does with the instant: that is `import`'s (its one clock).
//!
//! A file is dated by exactly one of:
//! - `file_name = "export-%Y-%m-%d.csv"`: a pattern matched against the file's
//!   name (`%Y %m %d`, and optionally `%H %M` together; `%%` is a `%`); a name
//!   that does not match is refused, naming the file, the pattern and why;
//! - `modified = true`: the file's modification time.
//!
//! `time = "06:00"` is the time of day of a date without one (a name's date,
//! `--as-of 2025-03-03`), in the Region's time zone; midnight when unset.
//! (A `column` of the first record was considered, and left out: the file
//! would have to be read before its import's transaction.)

use std::path::Path;

use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Utc};
use chrono_tz::Tz;
use serde::Deserialize;
use toml::Spanned;

use crate::diag::FileProblems;

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
        let dated = match (&table.file_name, &table.modified) {
            (Some(pattern), None) => match check_pattern(pattern.get_ref()) {
                Ok(()) => Some(Dated::FileName(pattern.get_ref().clone())),
                Err(reason) => {
                    fp.at(pattern.span(), format!("[as_of] file_name: {reason}"));
                    None
                }
            },
            (None, Some(modified)) if *modified.get_ref() => Some(Dated::Modified),
            (None, Some(modified)) => {
                fp.at(
                    modified.span(),
                    "[as_of] modified = false dates nothing: remove [as_of], or set modified = true",
                );
                None
            }
            _ => {
                fp.at(
                    def.span(),
                    "[as_of] takes exactly one of `file_name` (a pattern such as \"export-%Y-%m-%d.csv\") or `modified = true`",
                );
                None
            }
        };
        Some(Self {
            dated: dated?,
            time: time?,
        })
    }

    /// When the file at `path` was taken, in UTC, its date (without a time)
    /// taken at [`AsOf::time`] in `tz`.
    ///
    /// # Errors
    /// When its name does not match the pattern (naming the file, the pattern
    /// and why), or its modification time cannot be read.
    pub fn of_file(&self, path: &Path, tz: Tz) -> Result<DateTime<Utc>, String> {
        match &self.dated {
            Dated::FileName(pattern) => {
                let name = path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let local = if pattern.contains("%H") {
                    NaiveDateTime::parse_from_str(&name, pattern)
                } else {
                    NaiveDate::parse_from_str(&name, pattern).map(|d| d.and_time(self.time))
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
            Dated::Modified => std::fs::metadata(path)
                .and_then(|m| m.modified())
                .map(DateTime::<Utc>::from)
                .map_err(|e| {
                    format!(
                        "{}: cannot read its modification time ([as_of] modified = true): {e}",
                        path.display()
                    )
                }),
        }
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

    fn by_name(pattern: &str, time: &str) -> AsOf {
        AsOf {
            dated: Dated::FileName(pattern.to_owned()),
            time: time_of_day(time).unwrap(),
        }
    }

    /// Issue 19: a name's date is taken at the connector's time of day in
    /// Paris: 06:00 is 04:00Z in summer and 05:00Z in winter.
    #[test]
    fn issue_19_a_file_name_dates_the_export_in_the_regions_zone() {
        let as_of = by_name("export-%Y-%m-%d.csv", "06:00");
        let at = |name: &str| as_of.of_file(Path::new("/in").join(name).as_path(), Paris);
        assert_eq!(at("export-2025-07-07.csv"), Ok(utc("2025-07-07T04:00:00Z")));
        assert_eq!(at("export-2025-01-06.csv"), Ok(utc("2025-01-06T05:00:00Z")));
        let with_time = by_name("extract_%Y%m%d_%H%M.csv", "06:00");
        assert_eq!(
            with_time.of_file(Path::new("extract_20250707_1830.csv"), Paris),
            Ok(utc("2025-07-07T16:30:00Z"))
        );
    }

    #[test]
    fn issue_19_a_name_that_does_not_match_is_refused_naming_file_and_pattern() {
        let as_of = by_name("export-%Y-%m-%d.csv", "06:00");
        let error = as_of
            .of_file(Path::new("/in/export-latest.csv"), Paris)
            .unwrap_err();
        assert!(
            error.starts_with("/in/export-latest.csv: the name 'export-latest.csv' does not match [as_of] file_name = \"export-%Y-%m-%d.csv\" ("),
            "{error}"
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
