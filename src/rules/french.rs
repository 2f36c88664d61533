//! French formatting of dates, amounts and durations, as messages show them.
//!
//! Owns the pure functions behind the template filters `date`, `montant` and
//! `duree`: "12 mars 2024", "26 956,00 €", "environ 3 semaines". Instants are
//! shown in the configured time zone, so that a step entered at 23:30 UTC on the
//! last day of March reads as the 1st of April in Paris.

use std::time::Duration;

use chrono::{DateTime, Datelike, NaiveDate};
use chrono_tz::Tz;

/// A no-break space: French typography separates thousands and the euro sign
/// with it, and it keeps "26 956,00 €" on one line.
const NBSP: char = '\u{a0}';

const MONTHS: [&str; 12] = [
    "janvier",
    "février",
    "mars",
    "avril",
    "mai",
    "juin",
    "juillet",
    "août",
    "septembre",
    "octobre",
    "novembre",
    "décembre",
];

/// A calendar date in French: "1er mars 2024", "12 mars 2024".
pub(crate) fn date(d: NaiveDate) -> String {
    let day = d.day();
    let day = if day == 1 {
        "1er".to_owned()
    } else {
        day.to_string()
    };
    format!("{day} {} {}", MONTHS[d.month0() as usize], d.year())
}

/// A stored date (`2024-03-12`) or instant (`2024-03-12T09:30:00Z`) in French,
/// instants taken in `tz`.
///
/// # Errors
/// When the text is neither.
pub(crate) fn date_text(text: &str, tz: Tz) -> Result<String, String> {
    if let Ok(d) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return Ok(date(d));
    }
    DateTime::parse_from_rfc3339(text)
        .map(|t| date(t.with_timezone(&tz).date_naive()))
        .map_err(|_| format!("'{text}' is not a date (YYYY-MM-DD) nor an instant (RFC 3339)"))
}

/// An amount of cents in French: "26 956,00 €", "-150,50 €".
pub(crate) fn amount(cents: i64) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    let magnitude = cents.unsigned_abs();
    let euros = (magnitude / 100).to_string();
    let mut grouped = String::with_capacity(euros.len() + euros.len() / 3 * 2);
    for (i, digit) in euros.chars().enumerate() {
        if i > 0 && (euros.len() - i).is_multiple_of(3) {
            grouped.push(NBSP);
        }
        grouped.push(digit);
    }
    format!("{sign}{grouped},{:02}{NBSP}€", magnitude % 100)
}

/// A duration as people say it: "15 minutes", "environ 5 heures", "environ 4
/// jours", "environ 3 semaines", "environ 5 mois" (under a day, without
/// "environ" when it is exact: a sign-in link lasts "15 minutes").
pub(crate) fn duration(d: Duration) -> String {
    const DAY: f64 = 86_400.0;
    let days = d.as_secs_f64() / DAY;
    if days < 1.0 {
        return under_a_day(d.as_secs());
    }
    let (n, one, many) = if days < 14.0 && !(days.round() as u64).is_multiple_of(7) {
        // Whole weeks read as weeks: "1w" is "environ 1 semaine", not 7 days.
        (days.round(), "jour", "jours")
    } else if days < 60.0 {
        ((days / 7.0).round(), "semaine", "semaines")
    } else {
        ((days / 30.44).round(), "mois", "mois")
    };
    let n = n as u64;
    format!("environ {n} {}", if n > 1 { many } else { one })
}

/// A duration under a day: minutes below an hour, else hours.
fn under_a_day(secs: u64) -> String {
    let (unit, one, many) = match secs {
        0..60 => return "moins d'une minute".to_owned(),
        60..3_600 => (60, "minute", "minutes"),
        _ => (3_600, "heure", "heures"),
    };
    let n = (secs + unit / 2) / unit;
    let about = if secs.is_multiple_of(unit) {
        ""
    } else {
        "environ "
    };
    format!("{about}{n} {}", if n > 1 { many } else { one })
}

/// A refused snapshot's reason, as the administrators' digest says it: the
/// guards' and the usual readers' reasons in French; any other one behind a
/// French label, as the log gives it.
pub(crate) fn refusal(reason: &str) -> String {
    // "{where}: {what}", where "where" is the file (and line) when there is one.
    let (place, what) = match reason.split_once(": ") {
        Some((place, what)) if !place.contains(' ') || place.contains('/') => {
            (format!("{place} : "), what)
        }
        _ => (String::new(), reason),
    };
    if let Some(rest) = what.strip_suffix(": is the export truncated?")
        && let Some((counts, ratios)) = rest.split_once(" dossiers would disappear ")
        && let Some((missing, of)) = counts.split_once(" of ")
    {
        return format!(
            "{place}{missing} dossiers sur {of} disparaîtraient {} : l'export est-il tronqué ?",
            ratios.replace("above ", "au-delà du seuil ")
        );
    }
    if let Some((counts, ratios)) = what.split_once(" records rejected ")
        && let Some((rejected, of)) = counts.split_once(" of ")
    {
        return format!(
            "{place}{rejected} enregistrements rejetés sur {of} {}",
            ratios.replace("above ", "au-delà du seuil ")
        );
    }
    if what == "the export holds no data record, only a header" {
        return format!("{place}l'export ne contient aucun enregistrement, seulement l'en-tête");
    }
    if let Some(rest) = what.strip_prefix("id '")
        && let Some((id, first)) = rest.split_once("' appears more than once (first at line ")
    {
        return format!(
            "{place}l'identifiant « {id} » apparaît plusieurs fois (d'abord à la ligne {}",
            first
        );
    }
    format!("{place}motif (tel que le journal le donne) : {what}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case("2024-03-12", "12 mars 2024")]
    #[case("2024-03-01", "1er mars 2024")]
    #[case("2024-08-15", "15 août 2024")]
    #[case("2024-12-31", "31 décembre 2024")]
    // 23:30 UTC on 31 March is already 1 April in Paris (summer time, UTC+2).
    #[case("2024-03-31T23:30:00Z", "1er avril 2024")]
    // ... and 22:30 UTC on 31 December is 23:30 in Paris (winter time, UTC+1).
    #[case("2024-12-31T22:30:00Z", "31 décembre 2024")]
    fn dates_read_in_french(#[case] text: &str, #[case] expected: &str) {
        assert_eq!(
            date_text(text, chrono_tz::Europe::Paris).as_deref(),
            Ok(expected)
        );
    }

    #[test]
    fn a_non_date_is_named() {
        let err = date_text("bientôt", chrono_tz::Europe::Paris).unwrap_err();
        assert!(err.contains("'bientôt'"), "{err}");
    }

    #[rstest]
    #[case(2_695_600, "26\u{a0}956,00\u{a0}€")]
    #[case(0, "0,00\u{a0}€")]
    #[case(5, "0,05\u{a0}€")]
    #[case(99_999, "999,99\u{a0}€")]
    #[case(100_000, "1\u{a0}000,00\u{a0}€")]
    #[case(12_345_678_900, "123\u{a0}456\u{a0}789,00\u{a0}€")]
    #[case(-15_050, "-150,50\u{a0}€")]
    fn amounts_read_in_french(#[case] cents: i64, #[case] expected: &str) {
        assert_eq!(amount(cents), expected);
    }

    #[rstest]
    #[case(0, "moins d'une minute")]
    #[case(900, "15 minutes")]
    #[case(1_000, "environ 17 minutes")]
    #[case(3_600, "1 heure")]
    #[case(5 * 3_600 + 100, "environ 5 heures")]
    #[case(86_400, "environ 1 jour")]
    #[case(4 * 86_400, "environ 4 jours")]
    #[case(14 * 86_400, "environ 2 semaines")]
    #[case(7 * 86_400, "environ 1 semaine")]
    #[case(10 * 86_400, "environ 10 jours")]
    #[case(6 * 7 * 86_400, "environ 6 semaines")]
    #[case(26 * 7 * 86_400, "environ 6 mois")]
    #[case(61 * 86_400, "environ 2 mois")]
    fn durations_read_in_french(#[case] secs: u64, #[case] expected: &str) {
        assert_eq!(duration(Duration::from_secs(secs)), expected);
    }

    /// Regression (issue 17, item 23): the digest gave refused snapshots'
    /// reasons in English.
    #[test]
    fn refusals_read_in_french() {
        assert_eq!(
            refusal("/x/a.csv: 3 of 5 records rejected (60.0 %), above max_rejected_ratio (1.0 %)"),
            "/x/a.csv : 3 enregistrements rejetés sur 5 (60.0 %), au-delà du seuil max_rejected_ratio (1.0 %)"
        );
        assert_eq!(
            refusal(
                "4 of 5 dossiers would disappear (80.0 %), above max_disappeared_ratio (20.0 %): is the export truncated?"
            ),
            "4 dossiers sur 5 disparaîtraient (80.0 %), au-delà du seuil max_disappeared_ratio (20.0 %) : l'export est-il tronqué ?"
        );
        assert_eq!(
            refusal("/x/a.csv: the export holds no data record, only a header"),
            "/x/a.csv : l'export ne contient aucun enregistrement, seulement l'en-tête"
        );
        assert_eq!(
            refusal("/x/a.csv:7: id 'D1' appears more than once (first at line 3)"),
            "/x/a.csv:7 : l'identifiant « D1 » apparaît plusieurs fois (d'abord à la ligne 3)"
        );
        assert!(
            refusal("/x/a.csv: cannot read: denied")
                .contains("motif (tel que le journal le donne) : cannot read")
        );
    }
}
