//! A field's value, typed ([`Value`]), and a dossier's fields ([`Fields`]): a
//! vector sorted by name rather than a map of strings.
//!
//! A value is parsed once (by the mapping, from an export's cell) and stays
//! typed: amounts are integer cents, dates and instants chrono's. Its canonical
//! text (`26956.00`, `2024-03-12`, `2024-03-12T09:30:00Z`) is what the store keeps,
//! what events and JSON show, and what two values of different kinds compare
//! by. Names are shared (`Arc<str>`): a mapped or read dossier allocates no name.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use super::{FieldKind, date_bytes, instant_bytes, instant_seconds};

/// A field's name, shared by every dossier that has the field.
pub(crate) type FieldName = Arc<str>;

/// The value of one field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// Free text, trimmed.
    Text(String),
    /// A calendar date.
    Date(NaiveDate),
    /// An instant, to the second.
    Instant(DateTime<Utc>),
    /// An amount in euros, in integer cents.
    Amount(i64),
    /// A SIRET: its 14 digits.
    Siret(String),
    /// One or more e-mail addresses, joined by `, `.
    Emails(String),
}

/// The longest canonical text of an amount: a sign, 17 digits, a point, 2 digits.
const AMOUNT_BYTES: usize = 24;

impl Value {
    /// The kind of value it is.
    pub(crate) fn kind(&self) -> FieldKind {
        match self {
            Self::Text(_) => FieldKind::Text,
            Self::Date(_) => FieldKind::Date,
            Self::Instant(_) => FieldKind::Instant,
            Self::Amount(_) => FieldKind::Amount,
            Self::Siret(_) => FieldKind::Siret,
            Self::Emails(_) => FieldKind::Emails,
        }
    }

    /// The text of a value held as text (text, SIRET, e-mails); `None` for the others.
    pub(crate) fn as_str(&self) -> Option<&str> {
        match self {
            Self::Text(s) | Self::Siret(s) | Self::Emails(s) => Some(s),
            Self::Date(_) | Self::Instant(_) | Self::Amount(_) => None,
        }
    }

    /// The date of a date.
    #[cfg(test)]
    pub(crate) fn date(&self) -> Option<NaiveDate> {
        match self {
            Self::Date(d) => Some(*d),
            _ => None,
        }
    }

    /// The instant of an instant.
    pub(crate) fn instant(&self) -> Option<DateTime<Utc>> {
        match self {
            Self::Instant(t) => Some(*t),
            _ => None,
        }
    }

    /// Calls `f` with the canonical text, written on the stack for the kinds
    /// that are not held as text: encoding a million dossiers allocates nothing.
    pub(crate) fn with_text<R>(&self, f: impl FnOnce(&str) -> R) -> R {
        match self {
            Self::Text(s) | Self::Siret(s) | Self::Emails(s) => f(s),
            Self::Amount(cents) => {
                let mut buf = [0u8; AMOUNT_BYTES];
                f(amount_str(*cents, &mut buf))
            }
            Self::Date(d) => match date_bytes(*d) {
                Some(bytes) => f(std::str::from_utf8(&bytes).unwrap_or_default()),
                None => f(&super::date_text(*d)),
            },
            Self::Instant(t) => match instant_bytes(*t) {
                Some(bytes) => f(std::str::from_utf8(&bytes).unwrap_or_default()),
                None => f(&super::instant_text(*t)),
            },
        }
    }

    /// The canonical text, borrowed when the value is held as text.
    pub(crate) fn text(&self) -> Cow<'_, str> {
        match self.as_str() {
            Some(s) => Cow::Borrowed(s),
            None => Cow::Owned(self.with_text(str::to_owned)),
        }
    }

    /// A value of `kind` read back from its canonical text (as the store keeps
    /// it, as a rule test case writes it); text when it is not one, so that
    /// nothing is lost.
    pub(crate) fn from_text(kind: FieldKind, text: &str) -> Self {
        let typed = match kind {
            FieldKind::Text => None,
            FieldKind::Date => NaiveDate::parse_from_str(text, "%Y-%m-%d")
                .ok()
                .filter(|d| date_bytes(*d).is_some_and(|b| b == text.as_bytes()))
                .map(Self::Date),
            FieldKind::Instant => instant_seconds(text.as_bytes())
                .and_then(|s| DateTime::from_timestamp(s, 0))
                .map(Self::Instant),
            FieldKind::Amount => decimal_cents(text).map(Self::Amount),
            FieldKind::Siret => Some(Self::Siret(text.to_owned())),
            FieldKind::Emails => Some(Self::Emails(text.to_owned())),
        };
        typed.unwrap_or_else(|| Self::Text(text.to_owned()))
    }

    /// Whether two values say the same: equal, or of different kinds with the
    /// same canonical text (a value read back as text from an older state).
    pub(crate) fn same(&self, other: &Self) -> bool {
        self == other
            || (self.kind() != other.kind() && self.with_text(|a| other.with_text(|b| a == b)))
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.with_text(|text| f.write_str(text))
    }
}

impl Serialize for Value {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.with_text(|text| s.serialize_str(text))
    }
}

/// The canonical text of an amount (`26956.00`, `-5.10`), written in `buf`.
fn amount_str(cents: i64, buf: &mut [u8; AMOUNT_BYTES]) -> &str {
    let mut at = buf.len();
    let mut put = |b: u8| {
        at -= 1;
        buf[at] = b;
    };
    let magnitude = cents.unsigned_abs();
    let (mut euros, fraction) = (magnitude / 100, magnitude % 100);
    put(b'0' + (fraction % 10) as u8);
    put(b'0' + (fraction / 10) as u8);
    put(b'.');
    loop {
        put(b'0' + (euros % 10) as u8);
        euros /= 10;
        if euros == 0 {
            break;
        }
    }
    if cents < 0 {
        put(b'-');
    }
    std::str::from_utf8(&buf[at..]).unwrap_or_default()
}

/// The canonical text of an amount in cents: `26956.00`, `-5.10`, `0.00`.
#[cfg(test)]
pub(crate) fn amount_text(cents: i64) -> String {
    let mut buf = [0u8; AMOUNT_BYTES];
    amount_str(cents, &mut buf).to_owned()
}

/// The cents of a plain decimal (`26956.00`, `26956.5`, `-12`), as the store and
/// rule test cases write amounts; `None` for anything else.
pub(crate) fn decimal_cents(text: &str) -> Option<i64> {
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() || fraction.len() > 2 || !all_digits(whole) || !all_digits(fraction) {
        return None;
    }
    let euros: i64 = whole.parse().ok()?;
    let mut cents: i64 = fraction.parse().unwrap_or(0);
    if fraction.len() == 1 {
        cents *= 10;
    }
    let total = euros.checked_mul(100)?.checked_add(cents)?;
    Some(if negative { -total } else { total })
}

/// The fields of a dossier that have a value, sorted by name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fields(Vec<(FieldName, Value)>);

impl Fields {
    /// Fields from pairs already sorted by name, each name once (the mapping
    /// and the store give them so).
    pub(crate) fn from_sorted(pairs: Vec<(FieldName, Value)>) -> Self {
        debug_assert!(pairs.windows(2).all(|w| w[0].0 < w[1].0), "sorted fields");
        Self(pairs)
    }

    /// Fields from pairs in any order; a later value of a name wins.
    pub(crate) fn from_pairs(pairs: impl IntoIterator<Item = (FieldName, Value)>) -> Self {
        let mut fields = Self::default();
        for (name, value) in pairs {
            fields.insert(name, value);
        }
        fields
    }

    /// Fields from canonical texts, each typed by its canonical field's kind
    /// (`kind_of` for the others: the connectors' extra fields).
    pub(crate) fn from_texts<'a>(
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
        kind_of: impl Fn(&str) -> FieldKind,
    ) -> Self {
        Self::from_pairs(pairs.into_iter().map(|(name, text)| {
            let kind = super::field(name).map_or_else(|| kind_of(name), |f| f.kind);
            (FieldName::from(name), Value::from_text(kind, text))
        }))
    }

    fn position(&self, name: &str) -> Result<usize, usize> {
        self.0.binary_search_by(|(n, _)| (**n).cmp(name))
    }

    /// Where a field is. A dossier has a score of fields with short names, and
    /// an import looks a few of them up in each of millions of records: a scan
    /// that compares the lengths first (they are in the names' fat pointers)
    /// compares the bytes of about one name, where a binary search compares
    /// several (`bench_import`).
    fn find(&self, name: &str) -> Option<usize> {
        self.0
            .iter()
            .position(|(n, _)| n.len() == name.len() && n.as_bytes() == name.as_bytes())
    }

    /// The value of a field.
    pub(crate) fn get(&self, name: &str) -> Option<&Value> {
        self.find(name).map(|i| &self.0[i].1)
    }

    /// Whether the field has a value.
    #[cfg(test)]
    pub(crate) fn contains(&self, name: &str) -> bool {
        self.find(name).is_some()
    }

    /// Sets a field's value; returns the one it replaces.
    pub(crate) fn insert(
        &mut self,
        name: impl Into<FieldName> + AsRef<str>,
        value: Value,
    ) -> Option<Value> {
        match self.position(name.as_ref()) {
            Ok(i) => Some(std::mem::replace(&mut self.0[i].1, value)),
            Err(i) => {
                self.0.insert(i, (name.into(), value));
                None
            }
        }
    }

    /// Sets a field from its canonical text, typed by the canonical field's kind
    /// (text for the others).
    pub fn insert_text(&mut self, name: &str, text: &str) -> Option<Value> {
        let kind = super::field(name).map_or(FieldKind::Text, |f| f.kind);
        self.insert(name, Value::from_text(kind, text))
    }

    /// Removes a field; returns its value.
    pub fn remove(&mut self, name: &str) -> Option<Value> {
        self.position(name).ok().map(|i| self.0.remove(i).1)
    }

    /// The fields, in name order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&FieldName, &Value)> {
        self.0.iter().map(|(n, v)| (n, v))
    }

    /// The names, in order.
    pub(crate) fn names(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|(n, _)| &**n)
    }

    /// Whether both have the same fields saying the same (see [`Value::same`]).
    pub(crate) fn same(&self, other: &Self) -> bool {
        self.0.len() == other.0.len()
            && self
                .0
                .iter()
                .zip(&other.0)
                .all(|((n, a), (m, b))| n == m && a.same(b))
    }

    /// How many fields have a value.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether no field has a value.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Fields from canonical texts, each typed by its canonical field's kind (extra
/// fields as text).
impl<N: AsRef<str>, T: AsRef<str>> FromIterator<(N, T)> for Fields {
    fn from_iter<I: IntoIterator<Item = (N, T)>>(pairs: I) -> Self {
        let mut fields = Self::default();
        for (name, text) in pairs {
            fields.insert_text(name.as_ref(), text.as_ref());
        }
        fields
    }
}

/// A map from names to canonical texts, as JSON has always shown fields.
impl Serialize for Fields {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.0.iter().map(|(n, v)| (&**n, v)))
    }
}

/// From the map [`Fields`]' serialisation writes: canonical fields typed by
/// their kind, extra fields as text.
impl<'de> Deserialize<'de> for Fields {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let map = std::collections::BTreeMap::<String, String>::deserialize(d)?;
        Ok(Self::from_texts(
            map.iter().map(|(n, v)| (n.as_str(), v.as_str())),
            |_| FieldKind::Text,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Any amount's text reads back to its cents, and is what the old
        /// text formatting wrote.
        #[test]
        fn amounts_read_back(cents in any::<i64>()) {
            let text = amount_text(cents);
            let sign = if cents < 0 { "-" } else { "" };
            let old = format!("{sign}{}.{:02}", cents.unsigned_abs() / 100, cents.unsigned_abs() % 100);
            prop_assert_eq!(&text, &old);
            if cents != i64::MIN {
                prop_assert_eq!(decimal_cents(&text), Some(cents));
                prop_assert_eq!(Value::from_text(FieldKind::Amount, &text), Value::Amount(cents));
            }
        }
    }

    #[test]
    fn texts_that_are_not_of_their_kind_stay_text() {
        for (kind, text) in [
            (FieldKind::Amount, "1 000,00"),
            (FieldKind::Amount, "12.345"),
            (FieldKind::Date, "12/03/2024"),
            (FieldKind::Date, "2024-3-12"),
            (FieldKind::Instant, "2024-03-12"),
        ] {
            assert_eq!(
                Value::from_text(kind, text),
                Value::Text(text.to_owned()),
                "{text}"
            );
        }
        assert_eq!(decimal_cents("26956.5"), Some(2_695_650));
        assert_eq!(decimal_cents("-12"), Some(-1200));
    }

    #[test]
    fn fields_stay_sorted_and_serialise_as_texts() {
        let mut fields = Fields::from_texts(
            [("title", "Toiture"), ("amount_granted", "26956.00")],
            |_| FieldKind::Text,
        );
        fields.insert_text("filed_on", "2024-03-12");
        assert_eq!(
            fields.names().collect::<Vec<_>>(),
            ["amount_granted", "filed_on", "title"]
        );
        assert_eq!(
            fields.get("amount_granted"),
            Some(&Value::Amount(2_695_600))
        );
        assert_eq!(
            serde_json::to_string(&fields).unwrap(),
            r#"{"amount_granted":"26956.00","filed_on":"2024-03-12","title":"Toiture"}"#
        );
        let back: Fields = serde_json::from_str(&serde_json::to_string(&fields).unwrap()).unwrap();
        assert_eq!(back, fields);
        assert_eq!(
            fields.remove("filed_on").map(|v| v.to_string()).as_deref(),
            Some("2024-03-12")
        );
        assert!(!fields.contains("filed_on"));
    }

    #[test]
    fn values_of_different_kinds_are_the_same_when_their_text_is() {
        let date = Value::Date(NaiveDate::from_ymd_opt(2024, 3, 12).unwrap());
        assert!(date.same(&Value::Text("2024-03-12".to_owned())));
        assert!(!date.same(&Value::Text("12/03/2024".to_owned())));
        assert!(!Value::Amount(1).same(&Value::Amount(2)));
    }
}
