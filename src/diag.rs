//! Reading admin-written TOML so that one pass says everything, and the
//! problems found in it.
//!
//! Owns [`Problems`] (every problem found in the configuration, connectors,
//! rules and templates, each with its place), the reading of the values every
//! such file shares (durations, bounded: `parse_duration`; "did you mean"
//! hints: `closest`; where a byte lies: `line_col`; the problems of one
//! file, each at its line and column: `FileProblems`), and `from_toml`: serde stops at the first unknown key of a struct with
//! `deny_unknown_fields`, so a file with three typos took three runs of `check`
//! (issue 17, item 36). Here every unknown key is reported, each with its line,
//! column and snippet. It does not collect the problems: callers put the errors
//! into their [`Problems`].

use std::fmt;
use std::ops::Range;
use std::path::Path;
use std::time::Duration;

use serde::de::DeserializeOwned;
use toml::de::{DeTable, DeValue, Deserializer, Error};

/// One problem found while checking admin-written files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Problem {
    /// Where: a file, or a key and the source of its value.
    pub place: String,
    /// What is wrong.
    pub message: String,
}

/// Every problem found, in the order found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Problems(Vec<Problem>);

impl Problems {
    /// Records a problem found in `place` (usually a file path).
    pub(crate) fn push(&mut self, place: impl AsRef<Path>, message: impl Into<String>) {
        self.0.push(Problem {
            place: place.as_ref().display().to_string(),
            message: message.into(),
        });
    }

    /// How many problems were found.
    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether no problem was found.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Every problem.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &Problem> {
        self.0.iter()
    }

    /// Orders the problems by place (a file, a key), keeping the order found
    /// within one place.
    pub(crate) fn sort_by_place(&mut self) {
        self.0.sort_by(|a, b| a.place.cmp(&b.place));
    }

    /// Adds every problem of `other`, after these.
    pub(crate) fn append(&mut self, other: Problems) {
        self.0.extend(other.0);
    }
}

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for p in &self.0 {
            // A toml error spans several lines (snippet and caret): indent them.
            let message = p.message.replace('\n', "\n    ");
            writeln!(f, "{}: {message}", p.place)?;
        }
        Ok(())
    }
}

impl std::error::Error for Problems {}

/// A year as durations count it (`1y`): 365.25 days.
const YEAR_SECS: u64 = 31_557_600;

/// The longest duration any setting may hold: 10 years. None is meaningful
/// longer, and far longer ones overflow date arithmetic, which panics
/// (issue 17, item 20). Some keys allow less ([`parse_duration_at_most`]).
pub(crate) const MAX_DURATION: Duration = Duration::from_secs(10 * YEAR_SECS);

/// Parses a human duration such as `45d`, `6w`, `12h`, of at most [`MAX_DURATION`].
///
/// # Errors
/// A reason naming the value when it is not a duration, or a longer one.
pub(crate) fn parse_duration(s: &str) -> Result<Duration, String> {
    parse_duration_at_most(s, MAX_DURATION)
}

/// Parses a human duration of at most `max` (itself at most [`MAX_DURATION`]).
///
/// # Errors
/// A reason naming the value and the bound when it is not a duration, or a longer one.
pub(crate) fn parse_duration_at_most(s: &str, max: Duration) -> Result<Duration, String> {
    let max = max.min(MAX_DURATION);
    let d = humantime::parse_duration(s.trim())
        .map_err(|e| format!("'{s}' is not a duration like \"45d\", \"6w\" or \"12h\" ({e})"))?;
    if d > max {
        return Err(format!(
            "'{s}' is too long: at most {}",
            short_duration(max)
        ));
    }
    Ok(d)
}

/// A bound as the settings write it: `10y`, `30d`, `1h`, `90s`.
pub(crate) fn short_duration(d: Duration) -> String {
    let secs = d.as_secs();
    match secs {
        0 => "0s".to_owned(),
        s if s % YEAR_SECS == 0 => format!("{}y", s / YEAR_SECS),
        s if s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s % 3_600 == 0 => format!("{}h", s / 3_600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

/// The candidate closest to `word` (Jaro-Winkler over lowercase), if reasonably close.
pub(crate) fn closest<'a>(
    word: &str,
    candidates: impl Iterator<Item = &'a str>,
) -> Option<&'a str> {
    let word = word.to_lowercase();
    candidates
        .map(|c| (strsim::jaro_winkler(&word, &c.to_lowercase()), c))
        .filter(|(score, _)| *score > 0.7)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

/// Line and column (1-based) of a byte offset in `text`.
pub(crate) fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

/// Collects problems for one file, prefixing each with `file:line:column`.
pub(crate) struct FileProblems<'a> {
    path: &'a Path,
    text: &'a str,
    problems: &'a mut Problems,
}

impl<'a> FileProblems<'a> {
    /// Collects the problems of the file at `path` whose text is `text`.
    pub(crate) fn new(path: &'a Path, text: &'a str, problems: &'a mut Problems) -> Self {
        Self {
            path,
            text,
            problems,
        }
    }

    /// A problem at a byte span of the file.
    pub(crate) fn at(&mut self, span: std::ops::Range<usize>, message: impl Into<String>) {
        let (line, col) = line_col(self.text, span.start);
        self.problems
            .push(format!("{}:{line}:{col}", self.path.display()), message);
    }

    /// Deserializes the file's TOML; a syntax or shape error (which names its
    /// line and column) is recorded, every unknown key at once, and gives `None`.
    pub(crate) fn parse<T: serde::de::DeserializeOwned>(&mut self) -> Option<T> {
        crate::diag::from_toml(self.text)
            .map_err(|errors| {
                for error in errors {
                    self.file(error.to_string().trim_end());
                }
            })
            .ok()
    }

    /// A problem about the whole file.
    pub(crate) fn file(&mut self, message: impl Into<String>) {
        self.problems.push(self.path, message);
    }

    /// How many problems have been collected so far, for all files.
    pub(crate) fn count(&self) -> usize {
        self.problems.len()
    }
}

/// At most this many unknown keys are reported for one file.
const MAX_UNKNOWN_KEYS: usize = 100;

/// Deserializes `text`, or gives every error found: a syntax error alone, or each
/// unknown key, then the first other error (a missing key, a wrong type) if any.
/// Each error shows its line, column and snippet.
///
/// # Errors
/// Every error found, in that order.
pub(crate) fn from_toml<T: DeserializeOwned>(text: &str) -> Result<T, Vec<Error>> {
    let mut table = DeTable::parse(text).map_err(|e| vec![e])?;
    let mut unknown: Vec<Error> = Vec::new();
    let other = loop {
        match T::deserialize(Deserializer::from(table.clone())) {
            Ok(value) if unknown.is_empty() => return Ok(value),
            Ok(_) => break None,
            Err(mut error) => {
                error.set_input(Some(text));
                // An error on a key (not on its value, nor on a table) is an
                // unknown key: drop it and read again, for the next problem.
                if unknown.len() < MAX_UNKNOWN_KEYS
                    && error
                        .span()
                        .is_some_and(|span| remove_key(table.get_mut(), &span))
                {
                    unknown.push(error);
                } else {
                    break Some(error);
                }
            }
        }
    };
    // In the order of the file (serde meets keys in their sorted order).
    unknown.sort_by_key(|e| e.span().map_or(0, |s| s.start));
    unknown.extend(other);
    Err(unknown)
}

/// Removes, from `table` or a table within it, the key written at `span`.
fn remove_key(table: &mut DeTable<'_>, span: &Range<usize>) -> bool {
    if let Some(key) = table.keys().find(|k| k.span() == *span).cloned() {
        return table.remove(&key).is_some();
    }
    table.iter_mut().any(|(_, v)| remove_in(v.get_mut(), span))
}

fn remove_in(value: &mut DeValue<'_>, span: &Range<usize>) -> bool {
    match value {
        DeValue::Table(table) => remove_key(table, span),
        DeValue::Array(items) => items.iter_mut().any(|v| remove_in(v.get_mut(), span)),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_bounded() {
        assert_eq!(parse_duration("10y"), Ok(MAX_DURATION));
        let reason = parse_duration("100000000y").unwrap_err();
        assert_eq!(reason, "'100000000y' is too long: at most 10y");
        let day = Duration::from_secs(86_400);
        assert_eq!(parse_duration_at_most("1d", day), Ok(day));
        assert!(
            parse_duration_at_most("25h", day)
                .unwrap_err()
                .contains("at most 1d")
        );
        assert_eq!(short_duration(Duration::from_secs(90)), "90s");
        assert_eq!(short_duration(Duration::from_secs(3_600)), "1h");
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)] // Read by serde only.
    struct File {
        name: String,
        #[serde(default)]
        inner: Vec<Inner>,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)] // Read by serde only.
    struct Inner {
        size: u32,
    }

    #[test]
    fn every_unknown_key_is_reported_in_one_pass() {
        let text = "nmae = \"a\"\ncolour = 1\n[[inner]]\nsize = 1\nsise = 2\n";
        let errors = from_toml::<File>(text).unwrap_err();
        let said: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(errors.len(), 4, "{said:#?}");
        for (error, needle) in said.iter().zip([
            "line 1, column 1",
            "line 2, column 1",
            "line 5, column 1",
            "missing field `name`",
        ]) {
            assert!(error.contains(needle), "{needle:?} not in {error}");
        }
        assert!(said[0].contains("unknown field `nmae`"), "{}", said[0]);
    }

    #[test]
    fn a_valid_file_and_a_syntax_error() {
        assert!(from_toml::<File>("name = \"a\"\n").is_ok());
        let errors = from_toml::<File>("name = a\nfoo = 1\n").unwrap_err();
        assert_eq!(errors.len(), 1);
    }
}
