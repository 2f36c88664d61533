//! Parsers for the cell values found in the Regions' grant exports (CSV files and
//! spreadsheets): dates and instants, amounts in euros, SIRET numbers and lists of
//! e-mail addresses.
//!
//! Everything here is pure: no I/O, no clock. Each parser takes one already-trimmed,
//! non-empty cell and returns either the canonical value or a reason. Reasons are
//! lowercase English without a final period, name the problem and echo the
//! offending value, because callers show them to admins with the file, line and
//! field prepended.
//!
//! One file per kind of value: `dates`, `amounts`, `siret`, `emails`; the
//! formats columns declare (`DateFormat`, `AmountFormat`) are here.

use chrono::format::StrftimeItems;

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

mod amounts;
mod dates;
mod emails;
mod siret;

use amounts::SPACES;
use dates::pattern_has_time;

pub use amounts::parse_amount;
pub(crate) use dates::{parse_date, parse_instant, parse_instant_at};
pub(crate) use emails::{email_list, mailbox, parse_emails, recipient};
pub(crate) use siret::parse_siret;

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

#[cfg(test)]
mod tests {
    use chrono::NaiveDate;

    use super::amounts::{parse_any_amount, plain_amount};
    use super::emails::{normalize_email, plain_email};
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

    /// Issue 19: an export's date (`[as_of] column`) is taken at the
    /// connector's time of day; a date-time keeps its own time.
    #[rstest]
    #[case::date_alone_summer("01/07/2025", "2025-07-01T04:00:00Z")]
    #[case::date_alone_winter("2025-01-06", "2025-01-06T05:00:00Z")]
    #[case::date_time_as_written("01/07/2025 18:30", "2025-07-01T16:30:00Z")]
    #[case::offset_as_written("2025-07-01T06:00:00Z", "2025-07-01T06:00:00Z")]
    #[case::spring_gap_ends("30/03/2025", "2025-03-30T01:00:00Z")]
    fn issue_19_parse_instant_at_takes_a_date_alone_at_the_time_of_day(
        #[case] raw: &str,
        #[case] expected: &str,
    ) {
        let at = |h, m| chrono::NaiveTime::from_hms_opt(h, m, 0).unwrap();
        let time = if raw == "30/03/2025" {
            at(2, 30)
        } else {
            at(6, 0)
        };
        assert_eq!(
            parse_instant_at(raw, &DateFormat::Auto, Europe::Paris, time),
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
        assert_eq!(crate::model::amount_text(cents), expected);
    }

    #[rstest]
    #[case::french("26 956,00")]
    #[case::negative("-150,5")]
    #[case::noisy("1234.5649999")]
    fn format_amount_round_trips(#[case] raw: &str) {
        let cents = parse_amount(raw, AmountFormat::Auto).expect("valid amount");
        assert_eq!(
            parse_amount(&crate::model::amount_text(cents), AmountFormat::Auto),
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
