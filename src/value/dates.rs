//! Dates and instants as the exports write them: the usual French and ISO
//! layouts (`auto`) or one strftime pattern, and the start of a day in a zone.

use chrono::{
    DateTime, FixedOffset, NaiveDate, NaiveTime, TimeZone, Utc,
    format::{ParseErrorKind, Parsed, StrftimeItems},
};
use chrono_tz::Tz;

use super::*;

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
    parse_instant_at(raw, format, tz, NaiveTime::MIN)
}

/// Parses an instant as [`parse_instant`] does, but a date alone is taken at
/// `day_time` of that day in `tz` (as [`crate::timing::local_instant`] takes it:
/// past a gap when the clocks skip it), its start when `day_time` is midnight:
/// an export's date (`[as_of] column`) at the time of day the export is made.
pub(crate) fn parse_instant_at(
    raw: &str,
    format: &DateFormat,
    tz: Tz,
    day_time: NaiveTime,
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
        (None, _) if day_time == NaiveTime::MIN => crate::timing::start_of_day(written.date, tz)
            .ok_or_else(|| {
                format!(
                    "'{raw}' has no start of day in {} (the day was skipped)",
                    tz.name()
                )
            }),
        (None, _) => crate::timing::local_instant(written.date, day_time, tz)
            .ok_or_else(|| format!("'{raw}' at {day_time} is no time in {}", tz.name())),
    }
}

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
pub(super) fn pattern_has_time(pattern: &str) -> bool {
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
