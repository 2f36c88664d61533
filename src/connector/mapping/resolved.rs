//! A mapping matched to the columns of one file ([`Resolved`]), and one record
//! turned into a dossier through it ([`Mapped`]), or the reasons it is rejected.
//! Values repeated down a column are parsed once (a small memo per column).

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::HashMap;

use chrono::Timelike;
use chrono_tz::Tz;

use super::*;
use crate::model::{Dossier, Fields, ID, STEP, Value};
use crate::value;

impl Mapping {
    /// Matches the mapping to a header row.
    ///
    /// # Errors
    /// One message per missing column, naming the closest header found.
    pub(crate) fn resolve(&self, headers: &[String]) -> Result<Resolved<'_>, Vec<String>> {
        let normalized: Vec<String> = headers.iter().map(|h| normalize(h)).collect();
        let find = |name: &str| normalized.iter().position(|h| *h == normalize(name));
        let mut missing = Vec::new();
        let mut columns = Vec::with_capacity(self.fields.len());
        for f in &self.fields {
            let resolution = match &f.source {
                ValueSource::Constant(_) => Resolution::Constant,
                ValueSource::Column(aliases) => match aliases.iter().find_map(|a| find(a)) {
                    Some(i) => Resolution::Index(i),
                    None if f.optional => Resolution::Absent,
                    None => {
                        missing.push(missing_message(&f.name, aliases, headers));
                        Resolution::Absent
                    }
                },
                ValueSource::Columns(names, _) => {
                    let found: Vec<Option<usize>> = names.iter().map(|n| find(n)).collect();
                    if found.iter().all(Option::is_some) {
                        Resolution::Indexes(found.into_iter().flatten().collect())
                    } else if f.optional {
                        Resolution::Absent
                    } else {
                        for (n, _) in names.iter().zip(&found).filter(|(_, i)| i.is_none()) {
                            missing.push(missing_message(
                                &f.name,
                                std::slice::from_ref(n),
                                headers,
                            ));
                        }
                        Resolution::Absent
                    }
                }
            };
            columns.push(resolution);
        }
        if missing.is_empty() {
            let dates = self
                .fields
                .iter()
                .map(|f| match f.parse {
                    Parse::Date(_) | Parse::Instant(_) => Memo::Kept(Tz::UTC, HashMap::new()),
                    _ => Memo::NotDate,
                })
                .collect();
            let mut by_name: Vec<usize> = (0..self.fields.len())
                .filter(|&i| ![ID, STEP].contains(&self.fields[i].name.as_str()))
                .collect();
            by_name.sort_by_key(|&i| &self.fields[i].name);
            Ok(Resolved {
                mapping: self,
                columns,
                dates: RefCell::new(dates),
                by_name,
            })
        } else {
            Err(missing)
        }
    }
}

#[derive(Debug, Clone)]
enum Resolution {
    Index(usize),
    Indexes(Vec<usize>),
    Constant,
    Absent,
}

/// A mapping matched to the columns of one file.
#[derive(Debug, Clone)]
pub(crate) struct Resolved<'m> {
    mapping: &'m Mapping,
    columns: Vec<Resolution>,
    /// What each date field's values were read as (by field index), see [`Memo`].
    dates: RefCell<Vec<Memo>>,
    /// The indexes of the fields of a dossier's map, in name order.
    by_name: Vec<usize>,
}

/// The outcome of reading each value of a date field so far. An export holds a
/// few thousand distinct dates in a million records, and reading a date in the
/// time zone took a twentieth of the parsing of a file.
#[derive(Debug, Clone, Default)]
enum Memo {
    /// Not a date field.
    #[default]
    NotDate,
    /// In the time zone of the values read.
    Kept(Tz, HashMap<String, Result<Value, String>>),
    /// Too many distinct values (date-times): each is read.
    TooMany,
}

/// How many distinct values of a date field are kept before each is read afresh.
const MEMO_VALUES: usize = 16_384;

/// A field of a record that could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FieldIssue {
    /// The canonical field name.
    pub field: String,
    /// Why.
    pub reason: String,
}

/// A record turned into a dossier, with the values that were ignored.
#[derive(Debug, Clone)]
pub(crate) struct Mapped {
    /// The dossier.
    pub dossier: Dossier,
    /// Values that did not parse, on fields with `on_invalid = "ignore"`.
    pub warnings: Vec<FieldIssue>,
    /// Fields whose cell was empty, with `on_empty = "keep"`: the stored value,
    /// if any, stays.
    pub kept: Vec<String>,
}

impl<'m> Resolved<'m> {
    fn raw<'r>(&self, index: usize, get: &impl Fn(usize) -> Option<&'r str>) -> Option<Cow<'r, str>>
    where
        'm: 'r,
    {
        let f = &self.mapping.fields[index];
        match (&self.columns[index], &f.source) {
            (Resolution::Index(i), _) => get(*i).map(|v| Cow::Borrowed(value::trim(v))),
            (Resolution::Indexes(is), ValueSource::Columns(_, sep)) => {
                // Empty parts keep their place: ("A", "", "B") and ("A", "B", "") differ.
                let parts: Vec<&str> = is.iter().map(|i| get(*i).map_or("", value::trim)).collect();
                if parts.iter().all(|p| p.is_empty()) {
                    None
                } else {
                    Some(Cow::Owned(parts.join(sep)))
                }
            }
            (Resolution::Constant, ValueSource::Constant(v)) => Some(Cow::Borrowed(v.as_str())),
            _ => None,
        }
        .filter(|v| !v.is_empty())
    }

    /// The id of a record, if it has one; cheap, for change detection before mapping.
    pub(crate) fn id<'r>(&self, get: &impl Fn(usize) -> Option<&'r str>) -> Option<Cow<'r, str>>
    where
        'm: 'r,
    {
        let index = self.mapping.fields.iter().position(|f| f.name == ID)?;
        self.raw(index, get)
    }

    /// Turns a record into a dossier.
    ///
    /// `get(i)` returns the text of column `i`. Naive dates and times are read in `tz`.
    ///
    /// # Errors
    /// Every field that prevents using the record.
    pub(crate) fn map<'r>(
        &self,
        get: impl Fn(usize) -> Option<&'r str>,
        tz: Tz,
    ) -> Result<Mapped, Vec<FieldIssue>>
    where
        'm: 'r,
    {
        let mut errors = Vec::new();
        let mut warnings = Vec::new();
        let mut kept = Vec::new();
        let mut id = None;
        let mut status = None;
        // By field index, then made a map at once in name order (see below).
        let mut values: Vec<Option<Value>> = vec![None; self.mapping.fields.len()];
        for (index, f) in self.mapping.fields.iter().enumerate() {
            let raw = self.raw(index, &get);
            let issue = |reason: String| FieldIssue {
                field: f.name.clone(),
                reason,
            };
            if f.name == ID {
                match raw {
                    Some(v) => id = Some(v.into_owned()),
                    None => errors.push(issue("empty id".to_owned())),
                }
                continue;
            }
            if f.name == STEP {
                match raw {
                    Some(v) => status = Some(v.into_owned()),
                    None => errors.push(issue("empty status".to_owned())),
                }
                continue;
            }
            let Some(raw) = raw else {
                match f.on_empty {
                    OnEmpty::Clear => {}
                    OnEmpty::Keep => kept.push(f.name.clone()),
                    OnEmpty::Reject => errors.push(issue(
                        "empty, and this field has on_empty = \"reject\"".to_owned(),
                    )),
                }
                continue;
            };
            match self.parse(index, &f.parse, &raw, tz) {
                Ok(v) => values[index] = Some(v),
                Err(reason) => match f.on_invalid {
                    OnInvalid::Reject => errors.push(issue(reason)),
                    OnInvalid::Ignore => warnings.push(issue(reason)),
                },
            }
        }
        let step = status.as_deref().and_then(|s| {
            let step = self.mapping.step_for(s);
            if step.is_none() {
                errors.push(FieldIssue {
                    field: STEP.to_owned(),
                    reason: format!("unknown status label '{s}': map it onto a step in [steps]"),
                });
            }
            step
        });
        match (id, step, status) {
            (Some(id), Some(step), Some(status)) if errors.is_empty() => {
                // Taken in name order, the fields need no sorting, and their
                // shared names no allocation.
                let mut fields = Vec::with_capacity(self.by_name.len());
                for &i in &self.by_name {
                    if let Some(value) = values[i].take() {
                        fields.push((self.mapping.fields[i].key.clone(), value));
                    }
                }
                Ok(Mapped {
                    dossier: Dossier {
                        id,
                        step: step.to_owned(),
                        status,
                        fields: Fields::from_sorted(fields),
                    },
                    warnings,
                    kept,
                })
            }
            _ => Err(errors),
        }
    }
}

impl Resolved<'_> {
    /// The typed value `raw` of field `index`.
    fn parse(&self, index: usize, how: &Parse, raw: &str, tz: Tz) -> Result<Value, String> {
        let mut dates = self.dates.borrow_mut();
        let Some(memo) = dates.get_mut(index) else {
            return parse(how, raw, tz);
        };
        match memo {
            Memo::Kept(zone, known) => {
                if *zone != tz {
                    *zone = tz;
                    known.clear();
                }
                if let Some(outcome) = known.get(raw) {
                    return outcome.clone();
                }
                let outcome = parse(how, raw, tz);
                if known.len() < MEMO_VALUES {
                    known.insert(raw.to_owned(), outcome.clone());
                } else {
                    *memo = Memo::TooMany;
                }
                outcome
            }
            Memo::NotDate | Memo::TooMany => parse(how, raw, tz),
        }
    }
}

fn parse(how: &Parse, raw: &str, tz: Tz) -> Result<Value, String> {
    Ok(match how {
        Parse::Text => Value::Text(raw.to_owned()),
        Parse::Date(f) => Value::Date(value::parse_date(raw, f)?),
        // To the second, as the store keeps it.
        Parse::Instant(f) => Value::Instant(
            value::parse_instant(raw, f, tz)?
                .with_nanosecond(0)
                .ok_or_else(|| format!("'{raw}' is not a valid instant"))?,
        ),
        Parse::Amount(f) => Value::Amount(value::parse_amount(raw, *f)?),
        Parse::Siret => Value::Siret(value::parse_siret(raw)?),
        Parse::Emails => Value::Emails(value::email_list(raw)?),
    })
}
