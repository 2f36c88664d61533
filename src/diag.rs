//! Reading admin-written TOML so that one pass says everything.
//!
//! Owns [`from_toml`]: serde stops at the first unknown key of a struct with
//! `deny_unknown_fields`, so a file with three typos took three runs of `check`
//! (issue 17, item 36). Here every unknown key is reported, each with its line,
//! column and snippet. It does not collect the problems: callers put the errors
//! into their [`crate::config::Problems`].

use std::ops::Range;

use serde::de::DeserializeOwned;
use toml::de::{DeTable, DeValue, Deserializer, Error};

/// At most this many unknown keys are reported for one file.
const MAX_UNKNOWN_KEYS: usize = 100;

/// Deserializes `text`, or gives every error found: a syntax error alone, or each
/// unknown key, then the first other error (a missing key, a wrong type) if any.
/// Each error shows its line, column and snippet.
///
/// # Errors
/// Every error found, in that order.
pub fn from_toml<T: DeserializeOwned>(text: &str) -> Result<T, Vec<Error>> {
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
