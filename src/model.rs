//! The canonical model: what a dossier is once read from any source, and the events
//! detected on it.
//!
//! This module owns the vocabulary shared by connectors, the diff, the store and
//! (later) the rules: [`Dossier`], the canonical `Field`s with their [`FieldKind`],
//! and [`Event`]. It does no I/O.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Datelike, NaiveDate, SecondsFormat, Timelike, Utc};
use serde::{Deserialize, Serialize};

mod value;

#[cfg(test)]
pub(crate) use value::amount_text;
pub(crate) use value::{FieldName, Fields, Value};

/// What kind of value a field holds, which decides how it is parsed and compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldKind {
    /// Free text, trimmed.
    Text,
    /// A calendar date, stored as `YYYY-MM-DD`.
    Date,
    /// An instant, stored in UTC as RFC 3339 (`2024-03-12T09:30:00Z`).
    Instant,
    /// An amount in euros, in integer cents, stored with two decimals (`26956.00`).
    Amount,
    /// A SIRET (14 digits, valid check key).
    Siret,
    /// One or more e-mail addresses, stored comma-separated.
    Emails,
}

impl FieldKind {
    /// The name used in connector files (`format = "date"` on extra fields).
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Text => "text",
            Self::Date => "date",
            Self::Instant => "instant",
            Self::Amount => "amount",
            Self::Siret => "siret",
            Self::Emails => "emails",
        }
    }
}

/// A date in its canonical form, `YYYY-MM-DD`.
pub(crate) fn date_text(date: NaiveDate) -> String {
    match date_bytes(date) {
        Some(text) => ascii(&text),
        None => date.format("%Y-%m-%d").to_string(),
    }
}

/// `YYYY-MM-DD`, written by hand; `None` beyond four-digit years.
pub(crate) fn date_bytes(date: NaiveDate) -> Option<[u8; 10]> {
    let mut text = *b"0000-00-00";
    write_date(&mut text, date).then_some(text)
}

/// An instant in its canonical form, RFC 3339 in UTC to the second
/// (`2024-03-12T09:30:00Z`), as fields and the store keep it.
pub(crate) fn instant_text(t: DateTime<Utc>) -> String {
    match instant_bytes(t) {
        Some(text) => ascii(&text),
        None => t.to_rfc3339_opts(SecondsFormat::Secs, true),
    }
}

/// [`instant_text`] on the stack; `None` beyond four-digit years.
pub(crate) fn instant_bytes(t: DateTime<Utc>) -> Option<[u8; 20]> {
    // By hand: an import writes millions, and chrono's formatting (through
    // `fmt::Write`, growing its string) took 4 % of a first import's writing.
    let mut text = *b"0000-00-00T00:00:00Z";
    let (date, time) = (t.naive_utc().date(), t.naive_utc().time());
    if !write_date(&mut text, date) {
        return None;
    }
    // A leap second (never from a parsed value) shows as :60, as chrono writes it.
    let leap = u32::from(time.nanosecond() >= 1_000_000_000);
    write_digits(&mut text[11..13], time.hour());
    write_digits(&mut text[14..16], time.minute());
    write_digits(&mut text[17..19], time.second() + leap);
    Some(text)
}

/// Reads an instant in RFC 3339 (as [`instant_text`] writes it, or any other
/// form with an offset); `None` when it is not one.
pub(crate) fn parse_instant_text(text: &str) -> Option<DateTime<Utc>> {
    match instant_seconds(text.as_bytes()) {
        Some(seconds) => DateTime::from_timestamp(seconds, 0),
        None => DateTime::parse_from_rfc3339(text)
            .ok()
            .map(|t| t.with_timezone(&Utc)),
    }
}

/// An instant written as [`instant_text`] writes it, in Unix seconds: read by
/// hand, as imports and reports read millions; `None` for any other form.
pub(crate) fn instant_seconds(text: &[u8]) -> Option<i64> {
    let digits = |range: std::ops::Range<usize>| {
        text[range].iter().try_fold(0i64, |n, &b| {
            b.is_ascii_digit().then(|| n * 10 + i64::from(b - b'0'))
        })
    };
    let [
        _,
        _,
        _,
        _,
        b'-',
        _,
        _,
        b'-',
        _,
        _,
        b'T',
        _,
        _,
        b':',
        _,
        _,
        b':',
        _,
        _,
        b'Z',
    ] = text
    else {
        return None;
    };
    let (y, m, d) = (digits(0..4)?, digits(5..7)?, digits(8..10)?);
    let (h, min, s) = (digits(11..13)?, digits(14..16)?, digits(17..19)?);
    // A real date and time of day, as chrono checks them; a leap second the long way.
    let leap_year = y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
    let month_days = match m {
        2 => 28 + i64::from(leap_year),
        4 | 6 | 9 | 11 => 30,
        1..=12 => 31,
        _ => return None,
    };
    if !(1..=month_days).contains(&d) || h > 23 || min > 59 || s > 59 {
        return None;
    }
    Some(days_from_civil(y, m, d) * 86_400 + h * 3_600 + min * 60 + s)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// algorithm): computed, not looked up, as imports and the delays read millions.
pub fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let day_of_year = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The inverse of [`days_from_civil`]: (year, month 1–12, day 1–31).
pub fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    (year_of_era + era * 400 + i64::from(month <= 2), month, day)
}

/// Writes `YYYY-MM-DD` over the start of `text`; false beyond four-digit years.
fn write_date(text: &mut [u8], date: NaiveDate) -> bool {
    let Ok(year @ 0..=9999) = u32::try_from(date.year()) else {
        return false;
    };
    write_digits(&mut text[0..4], year);
    write_digits(&mut text[5..7], date.month());
    write_digits(&mut text[8..10], date.day());
    true
}

/// Fills `slot` with the last digits of `n`, zero-padded.
fn write_digits(slot: &mut [u8], mut n: u32) {
    for digit in slot.iter_mut().rev() {
        *digit = b'0' + (n % 10) as u8;
        n /= 10;
    }
}

/// Digits and separators as a string.
fn ascii(text: &[u8]) -> String {
    std::str::from_utf8(text).unwrap_or_default().to_owned()
}

/// A name out of a fixed list (a status, a severity). Spelled as an alias so that
/// serde does not take a field of this type for text borrowed from its input.
pub(crate) type StaticName = &'static str;

/// One of `names`, read back as the static text it was written from (a status
/// or severity in a daemon's answer over the control socket).
///
/// # Errors
/// A text that is none of `names`.
pub(crate) fn one_of<'de, D: serde::Deserializer<'de>>(
    d: D,
    names: &[&'static str],
) -> Result<&'static str, D::Error> {
    let text = String::deserialize(d)?;
    names
        .iter()
        .find(|n| **n == text)
        .copied()
        .ok_or_else(|| serde::de::Error::unknown_variant(&text, &[]))
}

/// A canonical field a connector can fill, with its kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Field {
    /// The key used in connector `[fields]` tables and in stored dossiers.
    pub name: &'static str,
    /// How values are parsed.
    pub kind: FieldKind,
    /// A short English description, for `check` messages and docs.
    pub doc: &'static str,
}

/// Key of the source system's identifier. Required in every connector.
pub(crate) const ID: &str = "id";
/// Key of the source status label. Required in every connector.
pub(crate) const STEP: &str = "step";
/// Key of the date the dossier entered its current step, when the source gives it.
pub(crate) const STEP_SINCE: &str = "step_since";
/// Prefix of free extra fields (`extra.commune`).
pub(crate) const EXTRA_PREFIX: &str = "extra.";

/// Every canonical field, except `id` and `step` which are special (see [`ID`], [`STEP`]).
pub(crate) const FIELDS: &[Field] = &[
    Field {
        name: "reference",
        kind: FieldKind::Text,
        doc: "reference shown to people (defaults to the id)",
    },
    Field {
        name: "title",
        kind: FieldKind::Text,
        doc: "title of the project",
    },
    Field {
        name: "scheme",
        kind: FieldKind::Text,
        doc: "grant scheme (dispositif)",
    },
    Field {
        name: STEP_SINCE,
        kind: FieldKind::Instant,
        doc: "when the dossier entered its current step",
    },
    Field {
        name: "filed_on",
        kind: FieldKind::Date,
        doc: "date the application was filed",
    },
    Field {
        name: "decided_on",
        kind: FieldKind::Date,
        doc: "date of the decision (vote, arrêté)",
    },
    Field {
        name: "justification_due",
        kind: FieldKind::Date,
        doc: "deadline for proof of spending",
    },
    Field {
        name: "expires_on",
        kind: FieldKind::Date,
        doc: "date the grant lapses",
    },
    Field {
        name: "beneficiary.name",
        kind: FieldKind::Text,
        doc: "name of the beneficiary",
    },
    Field {
        name: "beneficiary.siret",
        kind: FieldKind::Siret,
        doc: "SIRET of the beneficiary",
    },
    Field {
        name: "beneficiary.email",
        kind: FieldKind::Emails,
        doc: "e-mail addresses of the beneficiary",
    },
    Field {
        name: "instructor.name",
        kind: FieldKind::Text,
        doc: "name of the instructor in charge",
    },
    Field {
        name: "instructor.email",
        kind: FieldKind::Emails,
        doc: "e-mail addresses of the instructor",
    },
    Field {
        name: "service",
        kind: FieldKind::Text,
        doc: "name of the Region's service in charge",
    },
    Field {
        name: "service.email",
        kind: FieldKind::Emails,
        doc: "e-mail addresses of the service",
    },
    Field {
        name: "amount_requested",
        kind: FieldKind::Amount,
        doc: "amount requested, in euros",
    },
    Field {
        name: "amount_granted",
        kind: FieldKind::Amount,
        doc: "amount granted, in euros",
    },
    Field {
        name: "amount_paid",
        kind: FieldKind::Amount,
        doc: "amount paid so far, in euros",
    },
    Field {
        name: "url",
        kind: FieldKind::Text,
        doc: "link to the dossier in the source portal, for the beneficiary",
    },
    Field {
        name: "instructor.url",
        kind: FieldKind::Text,
        doc: "link to the dossier for the Region's staff, when it differs (the link of instructor and service messages)",
    },
];

/// Looks up a canonical field by name.
pub(crate) fn field(name: &str) -> Option<&'static Field> {
    FIELDS.iter().find(|f| f.name == name)
}

/// The canonical record of one grant application, as last read from its source.
///
/// Field values are typed (see `Value`); their canonical text is what the store
/// keeps, so that a stored dossier reads back exactly.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dossier {
    /// The source system's identifier, unique within a connector.
    pub id: String,
    /// The canonical step (an id from `rules/lifecycle.toml`).
    pub step: String,
    /// The status label as the source wrote it.
    pub status: String,
    /// Every other mapped field that has a value, sorted by canonical name.
    pub fields: Fields,
}

impl Dossier {
    /// The value of a field, if the source gave one.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.fields.get(name)
    }

    /// The text of a field held as text (text, SIRET, e-mails), if it has one.
    pub(crate) fn text(&self, name: &str) -> Option<&str> {
        self.fields.get(name).and_then(Value::as_str)
    }

    /// The reference shown to people: the `reference` field, or the id.
    pub fn reference(&self) -> &str {
        self.text("reference").unwrap_or(&self.id)
    }

    /// The addresses of an e-mail field (`beneficiary.email`…), in lowercase,
    /// a list split on `,` and `;`.
    pub(crate) fn emails(&self, name: &str) -> Vec<String> {
        self.text(name)
            .map(|list| {
                list.split([',', ';'])
                    .map(|a| a.trim().to_lowercase())
                    .filter(|a| !a.is_empty())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Whom a message to the instructing service about this dossier goes to
    /// (issue 21): its instructor (the first address of `instructor.email`),
    /// else its service (`service.email`), else `fallback` (`[web]
    /// service_email`). The front office's messages and the replies by e-mail
    /// share it.
    pub(crate) fn service_recipient(&self, fallback: Option<&str>) -> Option<String> {
        ["instructor.email", "service.email"]
            .iter()
            .find_map(|field| self.emails(field).into_iter().next())
            .or_else(|| fallback.map(str::to_owned))
    }
}

/// What the layers downstream of the import need of the connectors, by name:
/// each one's `link` pattern (its dossiers' links), and whether the daemon
/// imports it on schedule with how long it may go without a successful import
/// (the administrators' digest). Built once where the connectors are loaded, so
/// that no connector travels downstream.
#[derive(Debug, Clone, Default)]
pub struct Sources(BTreeMap<String, SourceFacts>);

/// What [`Sources`] knows of one connector.
#[derive(Debug, Clone, Default)]
pub(crate) struct SourceFacts {
    /// Its `link` pattern, with `{id}` and `{reference}` placeholders.
    pub link: Option<String>,
    /// What beneficiaries call it (`label`).
    pub label: Option<String>,
    /// Whether the daemon imports it on schedule.
    pub enabled: bool,
    /// How long it may go without a successful import (none: forever).
    pub max_age: Option<std::time::Duration>,
}

impl Sources {
    /// The facts of connectors given as `(name, facts)`.
    pub(crate) fn new(connectors: impl IntoIterator<Item = (String, SourceFacts)>) -> Self {
        Self(connectors.into_iter().collect())
    }

    /// Whether connector `name` is among the loaded ones.
    pub(crate) fn knows(&self, name: &str) -> bool {
        self.0.contains_key(name)
    }

    /// The `link` pattern of connector `name`, when it has one.
    pub(crate) fn pattern(&self, name: &str) -> Option<&str> {
        self.0.get(name).and_then(|f| f.link.as_deref())
    }

    /// What beneficiaries call connector `name`, when it says.
    pub(crate) fn label(&self, name: &str) -> Option<&str> {
        self.0.get(name).and_then(|f| f.label.as_deref())
    }

    /// The address of a dossier of connector `name` on its source portal
    /// (see [`link`]).
    pub(crate) fn link_of(&self, name: &str, dossier: &Dossier) -> Option<String> {
        link(dossier, self.pattern(name))
    }

    /// The connectors imported on schedule, each with its `max_age`.
    pub(crate) fn scheduled(&self) -> Vec<(String, Option<std::time::Duration>)> {
        self.0
            .iter()
            .filter(|(_, f)| f.enabled)
            .map(|(name, f)| (name.clone(), f.max_age))
            .collect()
    }
}

/// The address of a dossier on its source portal: its `url` field, else the
/// connector's `link` pattern with `{id}` and `{reference}` filled in.
pub(crate) fn link(dossier: &Dossier, pattern: Option<&str>) -> Option<String> {
    dossier.text("url").map(str::to_owned).or_else(|| {
        pattern.map(|l| {
            l.replace("{id}", &dossier.id)
                .replace("{reference}", dossier.reference())
        })
    })
}

/// The kinds of events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// A dossier seen for the first time.
    Created,
    /// A dossier moved to another step.
    StepChanged,
    /// A watched field changed.
    FieldChanged,
    /// A dossier missing from a full export.
    Disappeared,
    /// A dossier back in an export after it had disappeared.
    Reappeared,
    /// A message exchanged about the dossier on the source (Démarches Simplifiées'
    /// messagerie), kept for traceability; it never alerts.
    Message,
    /// A dossier has been in its step longer than the lifecycle's `stalled_after`
    /// (raised once per stay, by the daemon's evaluation of time-based events).
    Stalled,
    /// A date field of the dossier is near (raised once per `[[deadline]]` reminder).
    Deadline,
    /// The periodic review of a dossier its instructor should look at: stalled, or
    /// a deadline within `[delays] review_horizon` (raised on `[delays] review`).
    Review,
}

impl EventKind {
    /// Every kind rules can react to, in a stable order.
    pub(crate) const ALL: [EventKind; 8] = [
        Self::Created,
        Self::StepChanged,
        Self::FieldChanged,
        Self::Disappeared,
        Self::Reappeared,
        Self::Stalled,
        Self::Deadline,
        Self::Review,
    ];

    /// The name used in the store, in rules and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::StepChanged => "step_changed",
            Self::FieldChanged => "field_changed",
            Self::Disappeared => "disappeared",
            Self::Reappeared => "reappeared",
            Self::Message => "message",
            Self::Stalled => "stalled",
            Self::Deadline => "deadline",
            Self::Review => "review",
        }
    }

    /// Parses the stored name.
    pub(crate) fn parse(s: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .chain([Self::Message])
            .find(|k| k.as_str() == s)
    }

    /// Whether rules can react to it.
    pub(crate) fn alerts(self) -> bool {
        Self::ALL.contains(&self)
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A message about a dossier, as the source keeps it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SourceMessage {
    /// The source's id of the message (it is stored once).
    pub id: String,
    /// Who wrote it (an e-mail address).
    pub from: String,
    /// Its text.
    pub text: String,
    /// When it was written.
    pub at: DateTime<Utc>,
}

/// A dossier its source says it deleted (Démarches Simplifiées' `deletedDossiers`
/// and `pendingDeletedDossiers`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SourceDeletion {
    /// The dossier's id.
    pub id: String,
    /// When it was deleted, when the source says.
    pub at: Option<DateTime<Utc>>,
    /// Why, as the source words it (DS: `user_request`, `expired`…).
    pub reason: Option<String>,
}

/// The `field` of a `disappeared` event whose source said it deleted the dossier
/// (its `new_value` is the source's reason), rather than left it out of an export.
pub(crate) const DELETED_ON_SOURCE: &str = "deleted_on_source";

/// A fact detected on a dossier, before it is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// What happened.
    pub kind: EventKind,
    /// The step before (for `step_changed`).
    pub from_step: Option<String>,
    /// The step after (for `created`, `step_changed`, `reappeared`).
    pub to_step: Option<String>,
    /// The changed field (for `field_changed`).
    pub field: Option<String>,
    /// The value before (for `field_changed`).
    pub old_value: Option<String>,
    /// The value after (for `field_changed`).
    pub new_value: Option<String>,
    /// When it happened: the source's step date when it gives one, else when it was detected.
    pub occurred_at: DateTime<Utc>,
    /// Whether the source already e-mailed the applicant about it (one of
    /// Démarches Simplifiées' automatic messages): rules may leave it to the source.
    pub notified_by_source: bool,
}

impl Event {
    /// An event of `kind` with no detail, at `occurred_at`.
    pub fn new(kind: EventKind, occurred_at: DateTime<Utc>) -> Self {
        Self {
            kind,
            from_step: None,
            to_step: None,
            field: None,
            old_value: None,
            new_value: None,
            occurred_at,
            notified_by_source: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn dates_are_written_as_chrono_writes_them() {
        for (y, m, d) in [
            (2024, 3, 12),
            (1999, 12, 31),
            (5, 1, 1),
            (999, 6, 30),
            (9999, 12, 31),
            (10_000, 1, 1),
            (-1, 1, 1),
        ] {
            let date = NaiveDate::from_ymd_opt(y, m, d).unwrap();
            assert_eq!(
                date_text(date),
                date.format("%Y-%m-%d").to_string(),
                "{date:?}"
            );
        }
    }

    proptest::proptest! {
        /// Instants are written as chrono writes them, from year 0 to 9999 and beyond.
        #[test]
        fn instants_are_written_as_chrono_writes_them(
            seconds in -62_200_000_000i64..300_000_000_000,
            nanos in 0u32..1_000_000_000,
        ) {
            let t = Utc.timestamp_opt(seconds, nanos).unwrap();
            proptest::prop_assert_eq!(instant_text(t), t.to_rfc3339_opts(SecondsFormat::Secs, true));
        }
    }

    proptest::proptest! {
        /// What `instant_text` writes reads back, by hand as chrono would.
        #[test]
        fn instants_read_back(seconds in -62_000_000_000i64..253_000_000_000) {
            let t = Utc.timestamp_opt(seconds, 0).unwrap();
            let text = instant_text(t);
            proptest::prop_assert_eq!(instant_seconds(text.as_bytes()), Some(seconds));
            proptest::prop_assert_eq!(parse_instant_text(&text), Some(t));
        }
    }

    #[test]
    fn instants_are_read_in_other_forms_or_refused() {
        let t = |s: &str| parse_instant_text(s).map(|t| t.timestamp());
        assert_eq!(t("2024-03-12T10:30:00+01:00"), Some(1_710_235_800));
        assert_eq!(t("2024-03-12T09:30:00.250Z"), Some(1_710_235_800));
        assert_eq!(t("2024-02-29T00:00:00Z"), Some(1_709_164_800));
        for refused in [
            "2023-02-29T00:00:00Z",
            "1900-02-29T00:00:00Z",
            "2024-04-31T00:00:00Z",
            "2024-02-30T00:00:00Z",
            "2024-03-12T24:00:00Z",
            "2024-13-01T00:00:00Z",
            "12/03/2024",
            "",
        ] {
            assert_eq!(instant_seconds(refused.as_bytes()), None, "{refused}");
            assert_eq!(t(refused), None, "{refused}");
        }
    }

    #[test]
    fn a_leap_second_is_written_as_chrono_writes_it() {
        let t = NaiveDate::from_ymd_opt(2016, 12, 31)
            .unwrap()
            .and_hms_milli_opt(23, 59, 59, 1_500)
            .unwrap()
            .and_utc();
        assert_eq!(instant_text(t), "2016-12-31T23:59:60Z");
        assert_eq!(
            instant_text(t),
            t.to_rfc3339_opts(SecondsFormat::Secs, true)
        );
    }
}
