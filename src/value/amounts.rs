//! Amounts in euros as the exports write them (French or English separators,
//! currency signs, groups of digits), into integer cents, and back to text.

use super::*;

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
pub(super) fn plain_amount(raw: &str, format: AmountFormat) -> Option<i64> {
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
pub(super) fn parse_any_amount(raw: &str, format: AmountFormat) -> Result<i64, String> {
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

/// The spaces that separate groups of digits: plain, no-break and narrow no-break.
pub(super) const SPACES: [char; 3] = [' ', '\u{a0}', '\u{202f}'];

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
