//! Parsers for the cell values found in the Regions' grant exports (CSV files and
//! spreadsheets): dates and instants, amounts in euros, SIRET numbers and lists of
//! e-mail addresses.
//!
//! Everything here is pure: no I/O, no clock. Each parser takes one already-trimmed,
//! non-empty cell and returns either the canonical value or a reason. Reasons are
//! lowercase English without a final period, name the problem and echo the
//! offending value, because callers show them to admins with the file, line and
//! field prepended.

use std::collections::HashSet;
use std::str::FromStr;

use chrono::{
    DateTime, FixedOffset, NaiveDate, NaiveTime, TimeDelta, TimeZone, Utc,
    format::{ParseErrorKind, Parsed, StrftimeItems},
};
use chrono_tz::Tz;
use email_address::EmailAddress;

/// How a date column is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum DateFormat {
    /// Recognise the usual French and ISO layouts: day first unless the first
    /// group has four digits (year first), never month first.
    Auto,
    /// Only this chrono strftime pattern, e.g. `%d/%m/%Y` or `%d/%m/%Y %H:%M`.
    Pattern(Pattern),
}

/// A chrono strftime pattern, read once rather than for every value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Pattern {
    text: String,
    /// `None` when chrono cannot read it (the connector's check reports it):
    /// each value is then parsed with the text, and fails with chrono's reason.
    items: Option<Vec<chrono::format::Item<'static>>>,
    has_time: bool,
}

impl DateFormat {
    /// Only `pattern`.
    pub(crate) fn pattern(pattern: &str) -> Self {
        Self::Pattern(Pattern {
            text: pattern.to_owned(),
            items: StrftimeItems::new(pattern).parse_to_owned().ok(),
            has_time: pattern_has_time(pattern),
        })
    }
}

/// How an amount column is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AmountFormat {
    /// Guess the decimal separator from the value itself.
    Auto,
    /// `,` is the decimal separator and `.` may separate thousands (`1.234.567,89`).
    FrDecimal,
    /// `.` is the decimal separator and `,` may separate thousands (`1,234,567.89`).
    Decimal,
}

/// Parses a calendar date. Accepts date-times too (keeps the date as written, in local time).
pub(crate) fn parse_date(raw: &str, format: &DateFormat) -> Result<NaiveDate, String> {
    Ok(parse_written(raw, format)?.date)
}

/// Parses an instant. A date alone means midnight in `tz`; a naive date-time is local time in `tz`
/// (DST: a nonexistent local time (spring gap) is an error naming it; an ambiguous one (autumn)
/// takes the earlier instant); an explicit offset or `Z` is honoured.
pub(crate) fn parse_instant(
    raw: &str,
    format: &DateFormat,
    tz: Tz,
) -> Result<DateTime<Utc>, String> {
    let written = parse_written(raw, format)?;
    match (written.time, written.offset) {
        (Some(time), Some(offset)) => written
            .date
            .and_time(time)
            .and_local_timezone(offset)
            .single()
            .map(|instant| instant.with_timezone(&Utc))
            .ok_or_else(|| format!("'{raw}' is out of the supported range of dates")),
        (Some(time), None) => tz
            .from_local_datetime(&written.date.and_time(time))
            .earliest()
            .map(|instant| instant.with_timezone(&Utc))
            .ok_or_else(|| {
                format!(
                    "'{raw}' does not exist in {} (skipped when clocks went forward)",
                    tz.name()
                )
            }),
        (None, _) => start_of_day(written.date, tz).ok_or_else(|| {
            format!(
                "'{raw}' has no start of day in {} (the day was skipped)",
                tz.name()
            )
        }),
    }
}

/// Parses an amount in euros into cents.
pub fn parse_amount(raw: &str, format: AmountFormat) -> Result<i64, String> {
    match plain_amount(raw, format) {
        Some(cents) => Ok(cents),
        None => parse_any_amount(raw, format),
    }
}

/// The cents of an amount written plainly, as most exports do ("26 956,00",
/// "4429.00"): digits in groups of three between spaces (plain, no-break or
/// narrow no-break), one decimal separator, no sign, no currency. `None` for
/// anything else, which [`parse_any_amount`] reads.
fn plain_amount(raw: &str, format: AmountFormat) -> Option<i64> {
    let bytes = raw.as_bytes();
    if !bytes.first()?.is_ascii_digit() || !bytes.last()?.is_ascii_digit() {
        return None;
    }
    let commas = bytes.iter().filter(|&&b| b == b',').count();
    let dots = bytes.iter().filter(|&&b| b == b'.').count();
    let decimal = match (format, commas, dots) {
        (_, 0, 0) => None,
        (AmountFormat::FrDecimal | AmountFormat::Auto, 1, 0) => Some(','),
        (AmountFormat::Decimal | AmountFormat::Auto, 0, 1) => Some('.'),
        _ => return None,
    };
    let (integer, fraction) = match decimal {
        Some(separator) => raw.split_once(separator)?,
        None => (raw, ""),
    };
    if !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut groups = integer.split(SPACES);
    let first = groups.next()?;
    let mut grouped = false;
    for group in groups {
        if group.len() != 3 || !group.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        grouped = true;
    }
    if !first.bytes().all(|b| b.is_ascii_digit()) || (grouped && first.len() > 3) {
        return None;
    }
    cents_from_digits(integer, fraction)
}

/// Parses an amount in euros into cents, whichever way it is written.
fn parse_any_amount(raw: &str, format: AmountFormat) -> Result<i64, String> {
    let invalid = |detail: &str| format!("'{raw}' is not a valid amount ({detail})");
    let (negative, body) = split_sign_and_currency(raw).map_err(&invalid)?;
    if body.is_empty() {
        return Err(invalid("no digits"));
    }
    if let Some(bad) = body
        .chars()
        .find(|&c| !(c.is_ascii_digit() || c == ',' || c == '.' || is_group_separator(c)))
    {
        let detail = match bad {
            '-' => "a minus sign is only accepted in front".to_owned(),
            '(' | ')' => "parentheses are not accepted, use a leading minus sign".to_owned(),
            _ => format!("unexpected character '{bad}'"),
        };
        return Err(invalid(&detail));
    }

    let (decimal, thousands) = separators(body, format);
    let mut pieces = body.split(decimal);
    let integer = pieces.next().unwrap_or_default();
    let fraction = pieces.next();
    if pieces.next().is_some() {
        return Err(invalid(&format!(
            "more than one decimal separator '{decimal}'"
        )));
    }
    let integer_digits = ungroup(integer, thousands).map_err(&invalid)?;
    let fraction_digits = match fraction {
        None => "",
        Some(digits) if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) => digits,
        Some(_) => return Err(invalid("misplaced decimal separator")),
    };
    let magnitude =
        cents_from_digits(&integer_digits, fraction_digits).ok_or_else(|| invalid("too large"))?;
    Ok(if negative { -magnitude } else { magnitude })
}

/// `str::trim`, faster when the text starts and ends with ASCII (most values).
pub(crate) fn trim(text: &str) -> &str {
    let t = text.trim_ascii();
    match (t.as_bytes().first(), t.as_bytes().last()) {
        // `trim_ascii` keeps the vertical tab, which `trim` removes; any other
        // whitespace it keeps is not ASCII.
        (Some(&first), Some(&last))
            if first.is_ascii() && last.is_ascii() && first != 0x0b && last != 0x0b =>
        {
            t
        }
        (None, _) | (_, None) => t,
        _ => t.trim(),
    }
}

/// Canonical text of an amount in cents: "26956.00", "-5.10", "0.00".
pub(crate) fn format_amount(cents: i64) -> String {
    // By hand: a first import formats a million amounts.
    let mut out = String::with_capacity(24);
    if cents < 0 {
        out.push('-');
    }
    let magnitude = cents.unsigned_abs();
    crate::model::push_digits(&mut out, magnitude / 100, 1);
    out.push('.');
    crate::model::push_digits(&mut out, magnitude % 100, 2);
    out
}

/// Validates a SIRET; returns its 14 digits.
pub(crate) fn parse_siret(raw: &str) -> Result<String, String> {
    let digits: String = if raw.bytes().all(|b| b.is_ascii_digit()) {
        raw.to_owned()
    } else {
        raw.chars()
            .filter(|c| !(SPACES.contains(c) || matches!(c, '.' | '-')))
            .collect()
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("'{raw}' is not a valid SIRET (14 digits expected)"));
    }
    match digits.len() {
        14 => {}
        9 => {
            return Err(format!(
                "'{raw}' is a SIREN (9 digits), not a SIRET (14 digits expected)"
            ));
        }
        13 => {
            return Err(format!(
                "'{raw}' is not a valid SIRET (13 digits instead of 14: a leading zero \
                 may have been lost, e.g. by a spreadsheet)"
            ));
        }
        n => {
            return Err(format!(
                "'{raw}' is not a valid SIRET (14 digits expected, found {n})"
            ));
        }
    }
    let valid = luhn_valid(&digits)
        || (digits.starts_with(LA_POSTE_SIREN) && digit_sum(&digits).is_multiple_of(5));
    if valid {
        Ok(digits)
    } else {
        Err(format!(
            "'{raw}' is not a valid SIRET (invalid check digit)"
        ))
    }
}

/// Validates a list of e-mail addresses; returns them joined by `, `, the
/// canonical form of e-mail fields.
pub(crate) fn email_list(raw: &str) -> Result<String, String> {
    match plain_email(raw.trim()) {
        Some(address) => Ok(address),
        None => Ok(parse_email_tokens(raw)?.join(", ")),
    }
}

/// Splits and validates a list of e-mail addresses; returns them in order, deduplicated
/// (case-insensitive).
pub(crate) fn parse_emails(raw: &str) -> Result<Vec<String>, String> {
    match plain_email(raw.trim()) {
        Some(address) => Ok(vec![address]),
        None => parse_email_tokens(raw),
    }
}

/// The full parser behind [`parse_emails`], for what is not one plain address.
fn parse_email_tokens(raw: &str) -> Result<Vec<String>, String> {
    let mut addresses = Vec::new();
    let mut seen = HashSet::new();
    let mut push = |address: String| {
        if seen.insert(address.to_lowercase()) {
            addresses.push(address);
        }
    };
    // Words without '@' (and quoted strings) are kept aside: they are a display
    // name if an `<address>` follows, an invalid address otherwise.
    let mut display: Vec<&str> = Vec::new();
    for token in email_tokens(raw)? {
        match token {
            EmailToken::Word(word) if word.contains('@') && !is_single_quoted(word) => {
                reject_display(&display)?;
                push(normalize_email(word)?);
            }
            EmailToken::Word(text) | EmailToken::Quoted(text) => display.push(text),
            EmailToken::Angle(inner) => {
                display.clear();
                push(normalize_email(inner)?);
            }
        }
    }
    reject_display(&display)?;
    if addresses.is_empty() {
        return Err(format!("no e-mail address found in '{raw}'"));
    }
    Ok(addresses)
}

// ---------------------------------------------------------------------------
// Dates
// ---------------------------------------------------------------------------

/// A date or date-time as written in a cell, before any time zone is applied.
struct Written {
    date: NaiveDate,
    time: Option<NaiveTime>,
    offset: Option<FixedOffset>,
}

fn parse_written(raw: &str, format: &DateFormat) -> Result<Written, String> {
    if raw.trim().is_empty() {
        return Err("empty value (expected a date)".to_owned());
    }
    match format {
        DateFormat::Auto => parse_auto(raw),
        DateFormat::Pattern(pattern) => parse_pattern(raw, pattern),
    }
}

fn unrecognised_date(raw: &str) -> String {
    let hint = if raw.bytes().all(|b| b.is_ascii_digit()) {
        "a bare number, maybe a spreadsheet date serial; expected"
    } else {
        "expected"
    };
    format!(
        "'{raw}' is not a recognised date ({hint} day/month/year such as 31/12/2024, \
         or year-month-day such as 2024-12-31)"
    )
}

fn parse_auto(raw: &str) -> Result<Written, String> {
    let text = raw.trim();
    let date_len = text
        .find(|c: char| !(c.is_ascii_digit() || matches!(c, '/' | '-' | '.')))
        .unwrap_or(text.len());
    let (date_text, rest) = text.split_at(date_len);
    let date = parse_auto_date(raw, date_text)?;
    if rest.is_empty() {
        return Ok(Written {
            date,
            time: None,
            offset: None,
        });
    }
    let time_text = if let Some(after) = rest.strip_prefix(['T', 't']) {
        after
    } else if rest.starts_with(char::is_whitespace) {
        rest.trim_start()
    } else {
        return Err(unrecognised_date(raw));
    };
    let (time, offset) = parse_auto_time(raw, time_text)?;
    Ok(Written {
        date,
        time: Some(time),
        offset,
    })
}

fn parse_auto_date(raw: &str, text: &str) -> Result<NaiveDate, String> {
    let unrecognised = || unrecognised_date(raw);
    let sep = text
        .chars()
        .find(|c| !c.is_ascii_digit())
        .ok_or_else(unrecognised)?;
    let groups: Vec<&str> = text.split(sep).collect();
    let &[first, second, third] = groups.as_slice() else {
        return Err(unrecognised());
    };
    if groups
        .iter()
        .any(|g| g.is_empty() || !g.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(unrecognised());
    }
    // Every group is at most 4 ASCII digits once the layout is checked below.
    let number = |group: &str| group.parse::<u32>().unwrap_or(u32::MAX);
    let (year, month, day, expected) =
        if first.len() == 4 && matches!(sep, '/' | '-') && second.len() <= 2 && third.len() <= 2 {
            (number(first), second, third, "year-month-day")
        } else if first.len() <= 2
            && second.len() <= 2
            && (third.len() == 4 || (third.len() == 2 && sep == '/'))
        {
            let year = match (third.len(), number(third)) {
                (2, yy) if yy < 70 => 2000 + yy,
                (2, yy) => 1900 + yy,
                (_, yyyy) => yyyy,
            };
            (year, second, first, "day/month/year")
        } else {
            return Err(unrecognised());
        };
    i32::try_from(year)
        .ok()
        .and_then(|year| NaiveDate::from_ymd_opt(year, number(month), number(day)))
        .ok_or_else(|| format!("'{raw}' is not a valid date (expected {expected})"))
}

/// A tiny cursor over ASCII text, for the time part of an `Auto` date-time.
struct Cursor<'a> {
    rest: &'a str,
}

impl<'a> Cursor<'a> {
    fn eat(&mut self, c: char) -> bool {
        match self.rest.strip_prefix(c) {
            Some(rest) => {
                self.rest = rest;
                true
            }
            None => false,
        }
    }

    /// Takes between `min` and `max` ASCII digits.
    fn digits(&mut self, min: usize, max: usize) -> Option<&'a str> {
        let len = self
            .rest
            .bytes()
            .take_while(u8::is_ascii_digit)
            .count()
            .min(max);
        if len < min {
            return None;
        }
        let (digits, rest) = self.rest.split_at(len);
        self.rest = rest;
        Some(digits)
    }

    fn number(&mut self, min: usize, max: usize) -> Option<u32> {
        self.digits(min, max)?.parse().ok()
    }
}

fn parse_auto_time(raw: &str, text: &str) -> Result<(NaiveTime, Option<FixedOffset>), String> {
    let mut cursor = Cursor { rest: text };
    let unrecognised = || unrecognised_date(raw);
    let hour = cursor.number(1, 2).ok_or_else(unrecognised)?;
    if !cursor.eat(':') {
        return Err(unrecognised());
    }
    let minute = cursor.number(2, 2).ok_or_else(unrecognised)?;
    let mut second = 0;
    let mut nano = 0;
    if cursor.eat(':') {
        second = cursor.number(2, 2).ok_or_else(unrecognised)?;
        if cursor.eat('.') || cursor.eat(',') {
            let fraction = cursor.digits(1, usize::MAX).ok_or_else(unrecognised)?;
            let kept = &fraction[..fraction.len().min(9)];
            let scale = 10u32.pow(9 - u32::try_from(kept.len()).unwrap_or(9));
            nano = kept.parse::<u32>().map_err(|_| unrecognised())? * scale;
        }
    }
    let time = NaiveTime::from_hms_nano_opt(hour, minute, second, nano).ok_or_else(|| {
        format!("'{raw}' is not a valid time (expected 00:00 to 23:59, seconds 00 to 59)")
    })?;
    cursor.rest = cursor.rest.trim_start();
    let offset = if cursor.rest.is_empty() {
        None
    } else if cursor.eat('Z') || cursor.eat('z') {
        Some(FixedOffset::east_opt(0).ok_or_else(unrecognised)?)
    } else {
        let sign = if cursor.eat('+') {
            1
        } else if cursor.eat('-') || cursor.eat('\u{2212}') {
            -1
        } else {
            return Err(unrecognised());
        };
        let hours = cursor.number(2, 2).ok_or_else(unrecognised)?;
        let minutes = if cursor.rest.is_empty() {
            0
        } else {
            cursor.eat(':');
            cursor.number(2, 2).ok_or_else(unrecognised)?
        };
        let offset = (minutes < 60)
            .then(|| i32::try_from(hours * 3600 + minutes * 60).ok())
            .flatten()
            .and_then(|seconds| FixedOffset::east_opt(sign * seconds))
            .ok_or_else(|| format!("'{raw}' has an invalid time zone offset"))?;
        Some(offset)
    };
    if !cursor.rest.is_empty() {
        return Err(unrecognised());
    }
    Ok((time, offset))
}

fn parse_pattern(raw: &str, pattern: &Pattern) -> Result<Written, String> {
    let text = raw.trim();
    let shown = &pattern.text;
    let describe = |error: chrono::ParseError, what: &str| match error.kind() {
        ParseErrorKind::OutOfRange | ParseErrorKind::Impossible => {
            format!("'{raw}' is not a valid {what} (expected {shown})")
        }
        _ => format!("'{raw}' does not match the {what} format '{shown}' ({error})"),
    };
    let what = if pattern.has_time {
        "date-time"
    } else {
        "date"
    };
    // What chrono's `parse_from_str` functions do, with the pattern read once.
    let mut parsed = Parsed::new();
    match &pattern.items {
        Some(items) => chrono::format::parse(&mut parsed, text, items.iter()),
        None => chrono::format::parse(&mut parsed, text, StrftimeItems::new(shown)),
    }
    .map_err(|error| describe(error, what))?;
    let date_only = |parsed: &Parsed| {
        parsed.to_naive_date().map(|date| Written {
            date,
            time: None,
            offset: None,
        })
    };
    if !pattern.has_time {
        return date_only(&parsed).map_err(|error| describe(error, what));
    }
    if let Ok(instant) = parsed.to_datetime() {
        let local = instant.naive_local();
        return Ok(Written {
            date: local.date(),
            time: Some(local.time()),
            offset: Some(*instant.offset()),
        });
    }
    match parsed.to_naive_datetime_with_offset(0) {
        Ok(local) => Ok(Written {
            date: local.date(),
            time: Some(local.time()),
            offset: None,
        }),
        // A pattern with an hour but no minute, say, still names a date.
        Err(error) => date_only(&parsed).map_err(|_| describe(error, what)),
    }
}

/// Whether a strftime pattern has a time-of-day (or offset) specifier.
fn pattern_has_time(pattern: &str) -> bool {
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            continue;
        }
        let spec =
            chars.find(|c| !(matches!(c, '-' | '_' | '0' | '#' | ':' | '.') || c.is_ascii_digit()));
        if matches!(
            spec,
            Some(
                'H' | 'k'
                    | 'I'
                    | 'l'
                    | 'M'
                    | 'S'
                    | 'f'
                    | 'p'
                    | 'P'
                    | 'R'
                    | 'T'
                    | 'X'
                    | 'r'
                    | 'c'
                    | 's'
                    | '+'
                    | 'z'
            )
        ) {
            return true;
        }
    }
    false
}

/// The first instant of `date` in `tz`: midnight, or the end of a gap that swallowed it.
fn start_of_day(date: NaiveDate, tz: Tz) -> Option<DateTime<Utc>> {
    let midnight = date.and_time(NaiveTime::MIN);
    (0..96).find_map(|quarter| {
        let local = midnight.checked_add_signed(TimeDelta::minutes(15 * quarter))?;
        if local.date() != date {
            return None;
        }
        tz.from_local_datetime(&local)
            .earliest()
            .map(|instant| instant.with_timezone(&Utc))
    })
}

// ---------------------------------------------------------------------------
// Amounts
// ---------------------------------------------------------------------------

/// The spaces that separate groups of digits: plain, no-break and narrow no-break.
const SPACES: [char; 3] = [' ', '\u{a0}', '\u{202f}'];

fn is_group_separator(c: char) -> bool {
    SPACES.contains(&c) || matches!(c, '\'' | '\u{2019}')
}

/// Removes the sign and the currency marks, returns whether the amount is negative
/// and the bare number.
fn split_sign_and_currency(raw: &str) -> Result<(bool, &str), &'static str> {
    let mut text = strip_currency(raw.trim());
    let negative = match text.strip_prefix(['-', '\u{2212}']) {
        Some(rest) => {
            text = strip_currency(rest.trim_start());
            true
        }
        None => false,
    };
    if text.starts_with(['-', '\u{2212}', '+']) {
        return Err("misplaced sign");
    }
    Ok((negative, text))
}

/// Strips one `€` or `EUR` at the start or the end, and the spaces around it.
fn strip_currency(text: &str) -> &str {
    let text = text.trim();
    if let Some(rest) = text.strip_suffix('€') {
        return rest.trim();
    }
    if let Some(rest) = text.strip_prefix('€') {
        return rest.trim();
    }
    let len = text.len();
    if len >= 3 && text.is_char_boundary(len - 3) && text[len - 3..].eq_ignore_ascii_case("eur") {
        return text[..len - 3].trim();
    }
    if text
        .get(..3)
        .is_some_and(|head| head.eq_ignore_ascii_case("eur"))
    {
        return text[3..].trim();
    }
    text
}

/// The decimal separator of `body` and its thousands separator, if any besides spaces.
fn separators(body: &str, format: AmountFormat) -> (char, Option<char>) {
    match format {
        AmountFormat::FrDecimal => (',', Some('.')),
        AmountFormat::Decimal => ('.', Some(',')),
        AmountFormat::Auto => {
            let commas = body.matches(',').count();
            let dots = body.matches('.').count();
            match (commas, dots) {
                (0, 0) => ('.', None),
                (_, 0) if commas > 1 => ('.', Some(',')),
                (_, 0) => (',', None),
                (0, _) if dots > 1 => (',', Some('.')),
                (0, _) => ('.', None),
                _ if body.rfind(',') > body.rfind('.') => (',', Some('.')),
                _ => ('.', Some(',')),
            }
        }
    }
}

/// Checks the grouping of the integer part and returns its digits alone.
fn ungroup(integer: &str, thousands: Option<char>) -> Result<String, &'static str> {
    let is_separator = |c: char| is_group_separator(c) || Some(c) == thousands;
    if integer.is_empty() {
        return Err("no digits before the decimal separator");
    }
    if !integer.contains(is_separator) {
        return if integer.bytes().all(|b| b.is_ascii_digit()) {
            Ok(integer.to_owned())
        } else {
            Err("misplaced separator")
        };
    }
    // One kind of separator only: all spaces, all apostrophes, or all `thousands`.
    let kind = |c: char| match c {
        c if SPACES.contains(&c) => 0,
        '\'' | '\u{2019}' => 1,
        _ => 2,
    };
    let mut kinds = integer.chars().filter(|&c| is_separator(c)).map(kind);
    let first_kind = kinds.next();
    if kinds.any(|k| Some(k) != first_kind) {
        return Err("mixed thousands separators");
    }
    let mut digits = String::with_capacity(integer.len());
    for (index, group) in integer.split(is_separator).enumerate() {
        let well_formed = group.bytes().all(|b| b.is_ascii_digit())
            && if index == 0 {
                (1..=3).contains(&group.len())
            } else {
                group.len() == 3
            };
        if !well_formed {
            return Err("misplaced thousands separator");
        }
        digits.push_str(group);
    }
    Ok(digits)
}

/// Cents from the integer digits (anything between them is skipped) and the
/// fraction digits, rounded half away from zero; `None` on overflow.
fn cents_from_digits(integer: &str, fraction: &str) -> Option<i64> {
    let mut euros: i64 = 0;
    for b in integer.bytes().filter(u8::is_ascii_digit) {
        euros = euros.checked_mul(10)?.checked_add(i64::from(b - b'0'))?;
    }
    let mut fraction_digits = fraction.bytes().map(|b| i64::from(b - b'0'));
    let tenths = fraction_digits.next().unwrap_or(0);
    let hundredths = fraction_digits.next().unwrap_or(0);
    let round_up = fraction_digits.next().is_some_and(|digit| digit >= 5);
    euros
        .checked_mul(100)?
        .checked_add(tenths * 10 + hundredths + i64::from(round_up))
}

// ---------------------------------------------------------------------------
// SIRET
// ---------------------------------------------------------------------------

/// La Poste's SIREN: its establishments' SIRETs have a digit sum divisible by 5
/// instead of a Luhn key (its head office, 356 000 000 00048, has a Luhn key).
const LA_POSTE_SIREN: &str = "356000000";

fn digit_sum(digits: &str) -> u32 {
    digits.bytes().map(|b| u32::from(b - b'0')).sum()
}

fn luhn_valid(digits: &str) -> bool {
    let sum: u32 = digits
        .bytes()
        .rev()
        .enumerate()
        .map(|(index, b)| {
            let digit = u32::from(b - b'0');
            if index % 2 == 1 {
                let doubled = digit * 2;
                if doubled > 9 { doubled - 9 } else { doubled }
            } else {
                digit
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

// ---------------------------------------------------------------------------
// E-mail addresses
// ---------------------------------------------------------------------------

/// A piece of an e-mail list.
enum EmailToken<'a> {
    /// Text between separators (`;`, `,`, whitespace).
    Word(&'a str),
    /// Text between double quotes, only ever a display name.
    Quoted(&'a str),
    /// Text between `<` and `>`, an address.
    Angle(&'a str),
}

fn email_tokens<'a>(raw: &'a str) -> Result<Vec<EmailToken<'a>>, String> {
    let mut tokens = Vec::new();
    let mut rest = raw;
    loop {
        rest = rest.trim_start_matches(|c: char| c == ';' || c == ',' || c.is_whitespace());
        let Some(first) = rest.chars().next() else {
            return Ok(tokens);
        };
        let (closing, make): (char, fn(&'a str) -> EmailToken<'a>) = match first {
            '"' => ('"', EmailToken::Quoted),
            '<' => ('>', EmailToken::Angle),
            _ => {
                let end = rest
                    .find(|c: char| c == ';' || c == ',' || c == '<' || c.is_whitespace())
                    .unwrap_or(rest.len());
                let (word, after) = rest.split_at(end);
                tokens.push(EmailToken::Word(word));
                rest = after;
                continue;
            }
        };
        let inner = &rest[1..];
        let end = inner
            .find(closing)
            .ok_or_else(|| format!("unbalanced '{first}' in '{raw}'"))?;
        tokens.push(make(inner[..end].trim()));
        rest = &inner[end + 1..];
    }
}

fn is_single_quoted(word: &str) -> bool {
    word.len() >= 2 && word.starts_with('\'') && word.ends_with('\'')
}

/// Words that were not followed by an `<address>`: not an address themselves.
fn reject_display(display: &[&str]) -> Result<(), String> {
    if display.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "'{}' is not a valid e-mail address",
            display.join(" ")
        ))
    }
}

/// The common case, one plain address such as `jean.dupont@asso-exemple.fr`,
/// recognised without the full parser: ASCII dot-atoms on both sides of one `@`,
/// domain labels of letters, digits and inner hyphens, a dot in the domain. The
/// full parser accepts every such address and returns the same (a test checks it);
/// anything else goes to it.
fn plain_email(text: &str) -> Option<String> {
    // One pass over the bytes: an import checks two addresses a record.
    let bytes = text.as_bytes();
    let at = bytes.iter().position(|&b| b == b'@')?;
    let (local, domain) = (&bytes[..at], &bytes[at + 1..]);
    if local.len() > 64 || domain.len() > 253 {
        return None;
    }
    // Dot-separated runs of atom characters (an empty one too fails).
    let mut previous = b'.';
    for &b in local {
        if (b == b'.' && previous == b'.') || (b != b'.' && !is_atom(b)) {
            return None;
        }
        previous = b;
    }
    if previous == b'.' {
        return None;
    }
    // Dot-separated labels, at least two, of 1 to 63 letters, digits and inner hyphens.
    let (mut label, mut dots) = (0usize, 0usize);
    previous = b'.';
    for &b in domain {
        if b == b'.' {
            if label == 0 || previous == b'-' {
                return None;
            }
            (label, dots) = (0, dots + 1);
        } else if b.is_ascii_alphanumeric() || (b == b'-' && label > 0) {
            label += 1;
            if label > 63 {
                return None;
            }
        } else {
            return None;
        }
        previous = b;
    }
    if label == 0 || previous == b'-' || dots == 0 {
        return None;
    }
    let mut address = text.to_owned();
    address[at + 1..].make_ascii_lowercase();
    Some(address)
}

/// An `atext` character of RFC 5322, ASCII only.
fn is_atom(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'!' | b'#'
                | b'$'
                | b'%'
                | b'&'
                | b'*'
                | b'+'
                | b'/'
                | b'='
                | b'?'
                | b'^'
                | b'_'
                | b'`'
                | b'{'
                | b'|'
                | b'}'
                | b'~'
                | b'-'
        )
}

/// Validates one address; returns it with its domain in lowercase.
fn normalize_email(written: &str) -> Result<String, String> {
    let address = match written.get(..7) {
        Some(prefix) if prefix.eq_ignore_ascii_case("mailto:") => &written[7..],
        _ => written,
    };
    let invalid = || format!("'{written}' is not a valid e-mail address");
    let parsed = EmailAddress::from_str(address).map_err(|_| invalid())?;
    if !parsed.display_part().is_empty() {
        return Err(invalid());
    }
    let domain = parsed.domain();
    if !domain.contains('.') {
        return Err(format!(
            "'{written}' is not a valid e-mail address (no dot in the domain)"
        ));
    }
    Ok(format!("{}@{}", parsed.local_part(), domain.to_lowercase()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::utc;
    use chrono_tz::Europe;
    use rstest::rstest;

    fn ymd(year: i32, month: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(year, month, day).expect("valid test date")
    }

    fn pattern(p: &str) -> DateFormat {
        DateFormat::pattern(p)
    }

    /// A reason is lowercase-friendly, has no final period and echoes the value.
    fn assert_reason(reason: &str, raw: &str, fragment: &str) {
        assert!(reason.contains(fragment), "{reason:?} lacks {fragment:?}");
        assert!(
            raw.trim().is_empty() || reason.contains(raw),
            "{reason:?} does not echo {raw:?}"
        );
        assert!(!reason.ends_with('.'), "{reason:?} ends with a period");
        assert!(
            !reason.starts_with(|c: char| c.is_uppercase()),
            "{reason:?} starts with a capital"
        );
    }

    // --- dates -------------------------------------------------------------

    #[rstest]
    #[case::french("31/12/2024", ymd(2024, 12, 31))]
    #[case::single_digits("5/3/2024", ymd(2024, 3, 5))]
    #[case::two_digit_year("05/03/24", ymd(2024, 3, 5))]
    #[case::two_digit_year_69("01/01/69", ymd(2069, 1, 1))]
    #[case::two_digit_year_70("01/01/70", ymd(1970, 1, 1))]
    #[case::year_first_slashes("2024/03/05", ymd(2024, 3, 5))]
    #[case::iso("2024-03-05", ymd(2024, 3, 5))]
    #[case::iso_single_digits("2024-3-5", ymd(2024, 3, 5))]
    #[case::french_dashes("05-03-2024", ymd(2024, 3, 5))]
    #[case::french_dots("05.03.2024", ymd(2024, 3, 5))]
    #[case::leap_day("29/02/2024", ymd(2024, 2, 29))]
    #[case::with_minutes("05/03/2024 14:30", ymd(2024, 3, 5))]
    #[case::with_seconds("05/03/2024 14:30:15", ymd(2024, 3, 5))]
    #[case::iso_t("2024-03-05T14:30:15", ymd(2024, 3, 5))]
    #[case::iso_fraction_z("2024-03-05T23:30:15.123Z", ymd(2024, 3, 5))]
    #[case::iso_offset("2024-03-05T23:30:00+01:00", ymd(2024, 3, 5))]
    #[case::iso_negative_offset("2024-03-05T23:30:00-05:00", ymd(2024, 3, 5))]
    #[case::single_digit_hour("5/3/2024 9:05", ymd(2024, 3, 5))]
    #[case::surrounding_spaces("  05/03/2024  ", ymd(2024, 3, 5))]
    fn parse_date_auto_accepts(#[case] raw: &str, #[case] expected: NaiveDate) {
        assert_eq!(parse_date(raw, &DateFormat::Auto), Ok(expected));
    }

    #[rstest]
    #[case::day_month("%d/%m/%Y", "05/03/2024", ymd(2024, 3, 5))]
    #[case::month_first_on_request("%m/%d/%Y", "03/05/2024", ymd(2024, 3, 5))]
    #[case::date_time("%d/%m/%Y %H:%M", "05/03/2024 23:59", ymd(2024, 3, 5))]
    #[case::date_time_offset("%d/%m/%Y %H:%M %z", "05/03/2024 23:59 +0100", ymd(2024, 3, 5))]
    fn parse_date_pattern_accepts(
        #[case] format: &str,
        #[case] raw: &str,
        #[case] expected: NaiveDate,
    ) {
        assert_eq!(parse_date(raw, &pattern(format)), Ok(expected));
    }

    #[rstest]
    #[case::empty("", "empty value")]
    #[case::blank("   ", "empty value")]
    #[case::feb_31("31/02/2024", "is not a valid date (expected day/month/year)")]
    #[case::not_leap("29/02/2023", "is not a valid date")]
    #[case::month_13_us_order("12/13/2024", "is not a valid date (expected day/month/year)")]
    #[case::iso_month_13("2024-13-01", "is not a valid date (expected year-month-day)")]
    #[case::day_zero("00/01/2024", "is not a valid date")]
    #[case::words("tomorrow", "is not a recognised date")]
    #[case::excel_serial("45678", "spreadsheet date serial")]
    #[case::two_groups("05/2024", "is not a recognised date")]
    #[case::mixed_separators("05/03-2024", "is not a recognised date")]
    #[case::three_digit_year("05/03/202", "is not a recognised date")]
    #[case::two_digit_year_dashes("05-03-24", "is not a recognised date")]
    #[case::year_first_dots("2024.03.05", "is not a recognised date")]
    #[case::hour_25("05/03/2024 25:00", "is not a valid time")]
    #[case::minute_60("05/03/2024 10:60", "is not a valid time")]
    #[case::trailing_text("05/03/2024 10:00 CET", "is not a recognised date")]
    #[case::time_without_minutes("05/03/2024 10h", "is not a recognised date")]
    #[case::glued_time("05/03/202410:00", "is not a recognised date")]
    #[case::bad_offset("2024-03-05T10:00:00+25:00", "invalid time zone offset")]
    fn parse_date_auto_rejects(#[case] raw: &str, #[case] fragment: &str) {
        let reason = parse_date(raw, &DateFormat::Auto).expect_err("should be rejected");
        assert_reason(&reason, raw, fragment);
    }

    #[rstest]
    #[case::wrong_layout("%d/%m/%Y", "2024-03-05", "does not match the date format '%d/%m/%Y'")]
    #[case::impossible("%d/%m/%Y", "31/02/2024", "is not a valid date (expected %d/%m/%Y)")]
    #[case::missing_time("%d/%m/%Y %H:%M", "05/03/2024", "does not match the date-time format")]
    fn parse_date_pattern_rejects(#[case] format: &str, #[case] raw: &str, #[case] fragment: &str) {
        let reason = parse_date(raw, &pattern(format)).expect_err("should be rejected");
        assert_reason(&reason, raw, fragment);
    }

    #[rstest]
    #[case::date_alone_winter("15/01/2025", "2025-01-14T23:00:00Z")]
    #[case::date_alone_summer("15/07/2025", "2025-07-14T22:00:00Z")]
    #[case::summer_time("15/07/2025 10:00", "2025-07-15T08:00:00Z")]
    #[case::winter_time("15/01/2025 10:00:30", "2025-01-15T09:00:30Z")]
    #[case::autumn_ambiguous_takes_earlier("26/10/2025 02:30", "2025-10-26T00:30:00Z")]
    #[case::just_after_spring_gap("30/03/2025 03:00", "2025-03-30T01:00:00Z")]
    #[case::explicit_z("2025-07-15T10:00:00Z", "2025-07-15T10:00:00Z")]
    #[case::explicit_offset("2025-07-15T10:00:00+01:00", "2025-07-15T09:00:00Z")]
    #[case::offset_without_colon("2025-07-15 10:00:00 +0530", "2025-07-15T04:30:00Z")]
    #[case::offset_in_gap_honoured("2025-03-30T02:30:00+01:00", "2025-03-30T01:30:00Z")]
    #[case::fraction("2025-07-15T10:00:00.5Z", "2025-07-15T10:00:00.5Z")]
    fn parse_instant_auto_in_paris(#[case] raw: &str, #[case] expected: &str) {
        assert_eq!(
            parse_instant(raw, &DateFormat::Auto, Europe::Paris),
            Ok(utc(expected))
        );
    }

    #[rstest]
    #[case::spring_gap("30/03/2025 02:30")]
    #[case::spring_gap_iso("2025-03-30T02:00")]
    fn parse_instant_rejects_nonexistent_local_time(#[case] raw: &str) {
        let reason = parse_instant(raw, &DateFormat::Auto, Europe::Paris)
            .expect_err("local time in the spring gap");
        assert_reason(&reason, raw, "does not exist in Europe/Paris");
    }

    #[rstest]
    #[case::date_only("%d/%m/%Y", "15/01/2025", "2025-01-14T23:00:00Z")]
    #[case::local_time("%d/%m/%Y %H:%M", "15/07/2025 10:00", "2025-07-15T08:00:00Z")]
    #[case::ambiguous("%d/%m/%Y %H:%M", "26/10/2025 02:30", "2025-10-26T00:30:00Z")]
    #[case::offset("%d/%m/%Y %H:%M %z", "15/07/2025 10:00 +0000", "2025-07-15T10:00:00Z")]
    fn parse_instant_pattern_in_paris(
        #[case] format: &str,
        #[case] raw: &str,
        #[case] expected: &str,
    ) {
        assert_eq!(
            parse_instant(raw, &pattern(format), Europe::Paris),
            Ok(utc(expected))
        );
    }

    #[test]
    fn parse_instant_pattern_rejects_spring_gap() {
        let raw = "30/03/2025 02:30";
        let reason = parse_instant(raw, &pattern("%d/%m/%Y %H:%M"), Europe::Paris)
            .expect_err("local time in the spring gap");
        assert_reason(&reason, raw, "does not exist in Europe/Paris");
    }

    #[test]
    fn parse_instant_date_alone_when_midnight_is_skipped() {
        // Chile moved its clocks from 00:00 to 01:00 on 12 August 2018.
        assert_eq!(
            parse_instant(
                "12/08/2018",
                &DateFormat::Auto,
                chrono_tz::America::Santiago
            ),
            Ok(utc("2018-08-12T04:00:00Z"))
        );
    }

    #[rstest]
    #[case::empty("")]
    #[case::blank(" \t ")]
    fn parse_instant_rejects_empty(#[case] raw: &str) {
        let reason = parse_instant(raw, &DateFormat::Auto, Europe::Paris).expect_err("empty");
        assert_reason(&reason, raw, "empty value");
    }

    // --- amounts -----------------------------------------------------------

    #[rstest]
    #[case::french_space("26 956,00", AmountFormat::Auto, 2_695_600)]
    #[case::french_nbsp_euro("26\u{a0}956,00\u{a0}€", AmountFormat::Auto, 2_695_600)]
    #[case::french_narrow_nbsp("26\u{202f}956,00", AmountFormat::Auto, 2_695_600)]
    #[case::euro_before("€ 26 956,00", AmountFormat::Auto, 2_695_600)]
    #[case::eur_after("26 956,00 EUR", AmountFormat::Auto, 2_695_600)]
    #[case::eur_before("EUR 12", AmountFormat::Auto, 1_200)]
    #[case::dot_decimal("99786.57", AmountFormat::Auto, 9_978_657)]
    #[case::fr_thousands_dots("1.234.567,89", AmountFormat::Auto, 123_456_789)]
    #[case::en_thousands_commas("1,234,567.89", AmountFormat::Auto, 123_456_789)]
    #[case::negative_comma("-150,5", AmountFormat::Auto, -15_050)]
    #[case::negative_euro("-150,50 €", AmountFormat::Auto, -15_050)]
    #[case::negative_before_euro("- €150", AmountFormat::Auto, -15_000)]
    #[case::unicode_minus("\u{2212}3,00", AmountFormat::Auto, -300)]
    #[case::comma_decimal("1,5", AmountFormat::Auto, 150)]
    #[case::single_comma_three_digits("1,234", AmountFormat::Auto, 123)]
    #[case::comma_thousands("1,234,567", AmountFormat::Auto, 123_456_700)]
    #[case::dot_thousands("1.234.567", AmountFormat::Auto, 123_456_700)]
    #[case::integer("150", AmountFormat::Auto, 15_000)]
    #[case::zero("0", AmountFormat::Auto, 0)]
    #[case::negative_zero("-0,00", AmountFormat::Auto, 0)]
    #[case::apostrophe("1'234.50", AmountFormat::Auto, 123_450)]
    #[case::space_grouped_integer("1 234 567", AmountFormat::Auto, 123_456_700)]
    #[case::excel_noise_down("1234.5649999", AmountFormat::Auto, 123_456)]
    #[case::excel_noise_up("1234.5650001", AmountFormat::Auto, 123_457)]
    #[case::half_away_from_zero("0,005", AmountFormat::Auto, 1)]
    #[case::negative_half_away_from_zero("-0,005", AmountFormat::Auto, -1)]
    #[case::fr_format_dot_thousands("1.234", AmountFormat::FrDecimal, 123_400)]
    #[case::fr_format_full("1.234.567,89", AmountFormat::FrDecimal, 123_456_789)]
    #[case::fr_format_spaces("26 956,00", AmountFormat::FrDecimal, 2_695_600)]
    #[case::decimal_format_comma_thousands("1,234", AmountFormat::Decimal, 123_400)]
    #[case::decimal_format_full("1,234,567.89", AmountFormat::Decimal, 123_456_789)]
    #[case::decimal_format_plain("99786.57", AmountFormat::Decimal, 9_978_657)]
    #[case::near_max("92233720368547758,07", AmountFormat::Auto, i64::MAX)]
    fn parse_amount_accepts(
        #[case] raw: &str,
        #[case] format: AmountFormat,
        #[case] expected: i64,
    ) {
        assert_eq!(parse_amount(raw, format), Ok(expected));
    }

    #[rstest]
    #[case::empty("", AmountFormat::Auto, "no digits")]
    #[case::blank("  ", AmountFormat::Auto, "no digits")]
    #[case::euro_only("€", AmountFormat::Auto, "no digits")]
    #[case::minus_only("-", AmountFormat::Auto, "no digits")]
    #[case::letters("12a", AmountFormat::Auto, "unexpected character 'a'")]
    #[case::scientific("1.5E+06", AmountFormat::Auto, "unexpected character 'E'")]
    #[case::trailing_minus("150-", AmountFormat::Auto, "minus sign")]
    #[case::parentheses("(150)", AmountFormat::Auto, "parentheses")]
    #[case::double_minus("--150", AmountFormat::Auto, "misplaced sign")]
    #[case::plus("+150", AmountFormat::Auto, "misplaced sign")]
    #[case::bad_comma_groups("12,34,5", AmountFormat::Auto, "misplaced thousands separator")]
    #[case::bad_space_groups("12 34,00", AmountFormat::Auto, "misplaced thousands separator")]
    #[case::double_space("1  234", AmountFormat::Auto, "misplaced thousands separator")]
    #[case::mixed_groups("1.234 567,89", AmountFormat::Auto, "mixed thousands separators")]
    #[case::no_integer_digits(",50", AmountFormat::Auto, "no digits before the decimal separator")]
    #[case::no_fraction_digits("150,", AmountFormat::Auto, "misplaced decimal separator")]
    #[case::group_in_fraction("1,234 56", AmountFormat::Auto, "misplaced decimal separator")]
    #[case::two_decimal_fr(
        "1,234,567",
        AmountFormat::FrDecimal,
        "more than one decimal separator ','"
    )]
    #[case::fr_rejects_dot_decimal(
        "99786.57",
        AmountFormat::FrDecimal,
        "misplaced thousands separator"
    )]
    #[case::decimal_rejects_comma_decimal(
        "150,50",
        AmountFormat::Decimal,
        "misplaced thousands separator"
    )]
    #[case::two_dots_then_comma(
        "1.234,567.89",
        AmountFormat::Auto,
        "more than one decimal separator '.'"
    )]
    #[case::overflow("92233720368547758,08", AmountFormat::Auto, "too large")]
    #[case::absurd("99999999999999999999999999", AmountFormat::Auto, "too large")]
    fn parse_amount_rejects(
        #[case] raw: &str,
        #[case] format: AmountFormat,
        #[case] fragment: &str,
    ) {
        let reason = parse_amount(raw, format).expect_err("should be rejected");
        assert_reason(&reason, raw, fragment);
        assert!(reason.contains("is not a valid amount"), "{reason:?}");
    }

    #[rstest]
    #[case::plain(" Jean.Dupont@Region-Exemple.FR ", "Jean.Dupont@region-exemple.fr")]
    #[case::list("a@x.fr; A@X.FR, Jean <b@Y.fr>", "a@x.fr, b@y.fr")]
    fn email_lists_are_joined(#[case] raw: &str, #[case] expected: &str) {
        assert_eq!(email_list(raw).as_deref(), Ok(expected));
    }

    #[test]
    fn email_lists_are_checked() {
        let reason = email_list("a@x.fr; n/a").expect_err("should be rejected");
        assert!(
            reason.contains("'n/a' is not a valid e-mail address"),
            "{reason:?}"
        );
    }

    #[rstest]
    #[case::whole(2_695_600, "26956.00")]
    #[case::negative(-510, "-5.10")]
    #[case::zero(0, "0.00")]
    #[case::one_cent(1, "0.01")]
    #[case::minus_one_cent(-1, "-0.01")]
    #[case::max(i64::MAX, "92233720368547758.07")]
    #[case::min(i64::MIN, "-92233720368547758.08")]
    fn format_amount_is_canonical(#[case] cents: i64, #[case] expected: &str) {
        assert_eq!(format_amount(cents), expected);
    }

    #[rstest]
    #[case::french("26 956,00")]
    #[case::negative("-150,5")]
    #[case::noisy("1234.5649999")]
    fn format_amount_round_trips(#[case] raw: &str) {
        let cents = parse_amount(raw, AmountFormat::Auto).expect("valid amount");
        assert_eq!(
            parse_amount(&format_amount(cents), AmountFormat::Auto),
            Ok(cents)
        );
    }

    // --- SIRET -------------------------------------------------------------

    #[rstest]
    #[case::plain("73282932000074", "73282932000074")]
    #[case::spaced("732 829 320 00074", "73282932000074")]
    #[case::nbsp("732\u{a0}829\u{a0}320\u{a0}00017", "73282932000017")]
    #[case::dots_and_dash("233.500.016-00016", "23350001600016")]
    #[case::region("13000823800011", "13000823800011")]
    #[case::la_poste_digit_sum("35600000042190", "35600000042190")]
    #[case::la_poste_head_office_luhn("35600000000048", "35600000000048")]
    fn parse_siret_accepts(#[case] raw: &str, #[case] expected: &str) {
        assert_eq!(parse_siret(raw), Ok(expected.to_owned()));
    }

    #[rstest]
    #[case::bad_key("73282932000075", "invalid check digit")]
    #[case::la_poste_bad_sum("35600000042191", "invalid check digit")]
    #[case::siren("732829320", "is a SIREN (9 digits), not a SIRET (14 digits expected)")]
    #[case::lost_leading_zero("3282932000074", "a leading zero may have been lost")]
    #[case::too_long("732829320000740", "14 digits expected, found 15")]
    #[case::too_short("12345", "14 digits expected, found 5")]
    #[case::letters("7328293200007A", "is not a valid SIRET (14 digits expected)")]
    #[case::scientific("7.3282932000074E+13", "is not a valid SIRET")]
    #[case::empty("", "is not a valid SIRET")]
    #[case::blank("   ", "is not a valid SIRET")]
    fn parse_siret_rejects(#[case] raw: &str, #[case] fragment: &str) {
        let reason = parse_siret(raw).expect_err("should be rejected");
        assert_reason(&reason, raw, fragment);
    }

    // --- e-mails -----------------------------------------------------------

    #[rstest]
    #[case::single("jean.dupont@example.fr", &["jean.dupont@example.fr"])]
    #[case::semicolons("a@x.fr;b@y.fr", &["a@x.fr", "b@y.fr"])]
    #[case::commas_and_spaces("a@x.fr, b@y.fr ,c@z.fr", &["a@x.fr", "b@y.fr", "c@z.fr"])]
    #[case::newlines("a@x.fr\nb@y.fr\r\nc@z.fr", &["a@x.fr", "b@y.fr", "c@z.fr"])]
    #[case::spaces_only("a@x.fr b@y.fr", &["a@x.fr", "b@y.fr"])]
    #[case::empty_parts(";;a@x.fr;; ;", &["a@x.fr"])]
    #[case::display_name("Jean Dupont <jean.dupont@example.fr>", &["jean.dupont@example.fr"])]
    #[case::display_names("Jean Dupont <j@x.fr>; Marie <m@y.fr>", &["j@x.fr", "m@y.fr"])]
    #[case::quoted_display("\"Dupont, Jean\" <j@x.fr>", &["j@x.fr"])]
    #[case::unquoted_comma_display("Dupont, Jean <j@x.fr>", &["j@x.fr"])]
    #[case::address_then_display("a@x.fr Jean <j@x.fr>", &["a@x.fr", "j@x.fr"])]
    #[case::echoed_display("'j@x.fr' <j@x.fr>", &["j@x.fr"])]
    #[case::glued_display("Jean<j@x.fr>", &["j@x.fr"])]
    #[case::mailto("mailto:j@x.fr", &["j@x.fr"])]
    #[case::mailto_upper("MAILTO:j@x.fr", &["j@x.fr"])]
    #[case::mailto_in_angle("Jean <mailto:j@x.fr>", &["j@x.fr"])]
    #[case::domain_lowercased("Jean.Dupont@Region-Exemple.FR", &["Jean.Dupont@region-exemple.fr"])]
    #[case::dedup_case_insensitive("a@x.fr; A@X.FR; b@y.fr; a@X.fr", &["a@x.fr", "b@y.fr"])]
    #[case::dedup_keeps_first_spelling("Jean@x.fr; jean@x.fr", &["Jean@x.fr"])]
    #[case::plus_tag("jean+grants@x.fr", &["jean+grants@x.fr"])]
    fn parse_emails_accepts(#[case] raw: &str, #[case] expected: &[&str]) {
        assert_eq!(
            parse_emails(raw),
            Ok(expected.iter().map(|&e| e.to_owned()).collect::<Vec<_>>())
        );
    }

    /// The shortcut's rules written plainly, to check the one-pass version against.
    fn plain_email_as_specified(text: &str) -> Option<String> {
        let (local, domain) = text.split_once('@')?;
        let atom = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&*+/=?^_`{|}~-".contains(&b);
        let label = |l: &str| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        };
        let plain = local.len() <= 64
            && domain.len() <= 253
            && local
                .split('.')
                .all(|part| !part.is_empty() && part.bytes().all(atom))
            && domain.contains('.')
            && domain.split('.').all(label);
        plain.then(|| format!("{local}@{}", domain.to_ascii_lowercase()))
    }

    proptest::proptest! {
        /// Amounts written plainly read as the full parser reads them.
        #[test]
        fn plain_amounts_read_as_any_amount(
            raw in "[0-9 ,.\\-€\u{a0}\u{202f}']{0,14}",
            format in proptest::sample::select(vec![
                AmountFormat::Auto,
                AmountFormat::FrDecimal,
                AmountFormat::Decimal,
            ]),
        ) {
            if let Some(cents) = plain_amount(&raw, format) {
                proptest::prop_assert_eq!(Ok(cents), parse_any_amount(&raw, format));
            }
        }

        /// Amounts written the usual ways take the shortcut.
        #[test]
        fn usual_amounts_take_the_shortcut(
            raw in "[1-9][0-9]{0,2}([ \u{a0}\u{202f}][0-9]{3}){0,4}(,[0-9]{1,3})?",
        ) {
            let cents = plain_amount(&raw, AmountFormat::FrDecimal);
            proptest::prop_assert!(cents.is_some());
            proptest::prop_assert_eq!(cents, plain_amount(&raw, AmountFormat::Auto));
            proptest::prop_assert_eq!(Ok(cents.unwrap_or_default()), parse_any_amount(&raw, AmountFormat::Auto));
        }

        /// The shortcut trims as `str::trim` does.
        #[test]
        fn trimming_is_str_trim(
            text in "[ \\t\\n\\r\\x0b\\x0c\u{a0}\u{202f}\u{2000}\u{85}aé;.]{0,8}",
        ) {
            proptest::prop_assert_eq!(trim(&text), text.trim());
        }

        /// The one-pass shortcut follows its rules exactly.
        #[test]
        fn plain_emails_follow_their_rules(
            text in "[a-zA-Z0-9.!#$%&*+/=?^_`{|}~'@é -]{0,12}@?[a-zA-Z0-9.@-]{0,70}",
        ) {
            proptest::prop_assert_eq!(plain_email(&text), plain_email_as_specified(&text));
        }

        /// The shortcut for plain addresses agrees with the full parser.
        #[test]
        fn plain_emails_parse_as_the_full_parser_does(
            text in "[a-zA-Z0-9.!#$%&*+/=?^_`{|}~'-]{1,70}@[a-zA-Z0-9.-]{1,70}",
        ) {
            if let Some(plain) = plain_email(&text) {
                proptest::prop_assert_eq!(Ok(plain), normalize_email(&text));
            }
        }
    }

    #[test]
    fn plain_emails_keep_their_length_limits() {
        let label = |n: usize| "d".repeat(n);
        let domain = |labels: usize| vec![label(63); labels].join(".");
        for text in [
            format!("{}@x.fr", "a".repeat(64)),
            format!("{}@x.fr", "a".repeat(65)),
            format!("a@{}.fr", label(63)),
            format!("a@{}.fr", label(64)),
            format!("a@{}.fr", domain(3)),
            format!("a@{}.{}", domain(3), label(58)),
            format!("a@{}.{}", domain(3), label(59)),
            "a.@x.fr".to_owned(),
            ".a@x.fr".to_owned(),
            "a@x.fr.".to_owned(),
            "a@x-.fr".to_owned(),
            "a@x.-fr".to_owned(),
        ] {
            assert_eq!(
                plain_email(&text),
                plain_email_as_specified(&text),
                "{text}"
            );
        }
    }

    #[test]
    fn plain_emails_take_the_shortcut() {
        assert_eq!(
            plain_email("Jean.Dupont+aides@Asso-Exemple.FR").as_deref(),
            Some("Jean.Dupont+aides@asso-exemple.fr")
        );
        for other in [
            "a@localhost",
            "a..b@x.fr",
            "a@-x.fr",
            "mailto:a@x.fr",
            "a@x.fr; b@y.fr",
            "é@x.fr",
        ] {
            assert_eq!(plain_email(other), None, "{other}");
        }
    }

    #[rstest]
    #[case::empty("", "no e-mail address found")]
    #[case::blank(" \n ", "no e-mail address found")]
    #[case::separators_only(" ; , ", "no e-mail address found")]
    #[case::no_at("jean.dupont", "'jean.dupont' is not a valid e-mail address")]
    #[case::first_invalid_named("a@x.fr; n/a; b@@y; c@z.fr", "'n/a' is not a valid e-mail address")]
    #[case::double_at("a@x.fr; b@@y.fr", "'b@@y.fr' is not a valid e-mail address")]
    #[case::no_dot_in_domain("jean@localhost", "no dot in the domain")]
    #[case::empty_local("@x.fr", "'@x.fr' is not a valid e-mail address")]
    #[case::empty_domain("jean@", "'jean@' is not a valid e-mail address")]
    #[case::display_without_address("Jean Dupont", "'Jean Dupont' is not a valid e-mail address")]
    #[case::display_before_plain("Jean a@x.fr", "'Jean' is not a valid e-mail address")]
    #[case::unbalanced_angle("Jean <j@x.fr", "unbalanced '<'")]
    #[case::unbalanced_quote("\"Jean <j@x.fr>", "unbalanced '\"'")]
    #[case::bad_angle(
        "Jean <not an address>",
        "'not an address' is not a valid e-mail address"
    )]
    fn parse_emails_rejects(#[case] raw: &str, #[case] fragment: &str) {
        let reason = parse_emails(raw).expect_err("should be rejected");
        assert!(reason.contains(fragment), "{reason:?} lacks {fragment:?}");
        assert!(!reason.ends_with('.'), "{reason:?} ends with a period");
    }
}
