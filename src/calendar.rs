//! The Region's calendar: French public holidays, business days, and the days
//! a body sits on (the Commission permanente's sessions).
//!
//! Owns the arithmetic of time counted on the Region's calendar: business time
//! ([`Business`]: seconds counted on business days only, weekdays that are not
//! public holidays of metropolitan France: New Year, Easter Monday, 1 and 8
//! May, Ascension, Whit Monday, 14 July, 15 August, 1 and 11 November,
//! Christmas), and sessions ([`Sittings`]: which
//! sessions a dossier that entered a step can reach, and how many of them have
//! passed). Days are the Region's local days, from its time zone.
//!
//! Pure: instants are Unix seconds, dates are days since 1970-01-01.

use std::sync::{Arc, OnceLock};

use chrono::{Datelike, NaiveDate, NaiveTime, TimeZone, Timelike};
use chrono_tz::Tz;

/// A day, in seconds.
pub(crate) const DAY: i64 = 86_400;

/// The day number (days since 1970-01-01) of a date.
pub(crate) fn day_number(date: NaiveDate) -> i64 {
    i64::from(date.num_days_from_ce()) - 719_163
}

/// The date of a day number.
pub(crate) fn date_of(day: i64) -> NaiveDate {
    NaiveDate::from_num_days_from_ce_opt(i32::try_from(day + 719_163).unwrap_or(i32::MAX))
        .unwrap_or(NaiveDate::MAX)
}

/// The local day of an instant in `tz`, and the seconds since its midnight.
fn local_day(tz: Tz, t: i64) -> (i64, i64) {
    let local = tz.timestamp_opt(t, 0).single().map_or_else(
        || {
            chrono::DateTime::from_timestamp(t, 0)
                .unwrap_or_default()
                .naive_utc()
        },
        |d| d.naive_local(),
    );
    (
        day_number(local.date()),
        i64::from(local.time().num_seconds_from_midnight()),
    )
}

/// The instant a local day starts in `tz` (its first existing minute).
fn day_start(tz: Tz, day: i64) -> i64 {
    let midnight = date_of(day).and_time(NaiveTime::MIN);
    tz.from_local_datetime(&midnight)
        .earliest()
        .map_or_else(|| midnight.and_utc().timestamp() + 3_600, |d| d.timestamp())
}

/// The public holidays on fixed dates: (month, day).
const FIXED: [(u32, u32); 8] = [
    (1, 1),
    (5, 1),
    (5, 8),
    (7, 14),
    (8, 15),
    (11, 1),
    (11, 11),
    (12, 25),
];

/// The public holidays after Easter Sunday, in days: Easter Monday, Ascension
/// Thursday, Whit Monday.
const EASTER: [u64; 3] = [1, 39, 50];

/// The Region's zone, with the start of each of its days from 1970 to 2100
/// worked out once, when first asked: millions of stays are read by the day,
/// and a lookup in the zone's rules costs more than a search in a table.
#[derive(Debug, Clone)]
pub(crate) struct Zone {
    tz: Tz,
    starts: Arc<OnceLock<Vec<i64>>>,
}

/// The days [`Zone`] tables: 1970-01-01 to 2100-01-01.
const TABLED: i64 = 47_482;

impl Zone {
    /// The days of `tz`.
    pub(crate) fn new(tz: Tz) -> Self {
        Self {
            tz,
            starts: Arc::default(),
        }
    }

    /// The zone.
    pub(crate) fn tz(&self) -> Tz {
        self.tz
    }

    fn starts(&self) -> &[i64] {
        self.starts
            .get_or_init(|| (0..=TABLED).map(|d| day_start(self.tz, d)).collect())
    }

    /// The local day of instant `t`, and the seconds since it started.
    pub(crate) fn local_day(&self, t: i64) -> (i64, i64) {
        let starts = self.starts();
        if t < starts[0] || t >= starts[starts.len() - 1] {
            return local_day(self.tz, t);
        }
        let day = starts.partition_point(|&s| s <= t) - 1;
        (day as i64, t - starts[day])
    }

    /// The instant local day `day` starts.
    pub(crate) fn day_start(&self, day: i64) -> i64 {
        usize::try_from(day)
            .ok()
            .and_then(|d| self.starts().get(d).copied())
            .unwrap_or_else(|| day_start(self.tz, day))
    }
}

/// Whether day `day` is a weekday of the week (Monday to Friday).
fn is_weekday(day: i64) -> bool {
    // 1970-01-01 was a Thursday.
    (day + 3).rem_euclid(7) < 5
}

/// Business time in a zone: the seconds of business days only, from 1970.
#[derive(Debug, Clone)]
pub(crate) struct Business {
    zone: Zone,
    /// The public holidays that fall on a weekday, as day numbers, sorted.
    holidays: Vec<i64>,
}

/// The years whose holidays are known: dates outside count weekends only.
const YEARS: std::ops::RangeInclusive<i32> = 1950..=2150;

impl Business {
    /// Business time in `zone`.
    pub(crate) fn new(zone: Zone) -> Self {
        let mut holidays: Vec<i64> = YEARS
            .flat_map(|year| {
                let fixed = FIXED
                    .iter()
                    .filter_map(move |&(m, d)| NaiveDate::from_ymd_opt(year, m, d));
                let easter = computus::gregorian_naive(year).ok();
                let moving = easter.into_iter().flat_map(|e| {
                    EASTER
                        .iter()
                        .map(move |&after| e + chrono::Days::new(after))
                });
                fixed.chain(moving)
            })
            .map(day_number)
            .filter(|&d| is_weekday(d))
            .collect();
        holidays.sort_unstable();
        holidays.dedup();
        Self { zone, holidays }
    }

    /// The zone whose days it counts.
    pub(crate) fn zone(&self) -> &Zone {
        &self.zone
    }

    /// Whether `day` is a business day.
    pub(crate) fn is_business_day(&self, day: i64) -> bool {
        is_weekday(day) && self.holidays.binary_search(&day).is_err()
    }

    /// How many business days come before `day` (from 1970-01-01; negative before).
    fn days_before(&self, day: i64) -> i64 {
        let weeks = day.div_euclid(7);
        let partial = (0..day.rem_euclid(7))
            .filter(|i| is_weekday(weeks * 7 + i))
            .count() as i64;
        let holidays = self.holidays.partition_point(|&h| h < day) as i64
            - self.holidays.partition_point(|&h| h < 0) as i64;
        weeks * 5 + partial - holidays
    }

    /// The business time of instant `t`: business seconds since 1970-01-01.
    pub(crate) fn at(&self, t: i64) -> i64 {
        let (day, seconds) = self.zone.local_day(t);
        let into = if self.is_business_day(day) {
            seconds.min(DAY - 1)
        } else {
            0
        };
        self.days_before(day) * DAY + into
    }

    /// The first instant whose business time is `b` (the inverse of [`Business::at`]).
    pub(crate) fn instant(&self, b: i64) -> i64 {
        let (n, into) = (b.div_euclid(DAY), b.rem_euclid(DAY));
        // The n-th business day: the first day with more than n business days
        // up to and including it, found by halving around 7/5 of n days, give or
        // take a day for every holiday there could be.
        let slack = n.abs() / 20 + 14;
        let (mut low, mut high) = (n * 7 / 5 - slack, n * 7 / 5 + slack);
        while low < high {
            let mid = low + (high - low) / 2;
            if self.days_before(mid + 1) > n {
                high = mid;
            } else {
                low = mid + 1;
            }
        }
        self.zone.day_start(low) + into
    }

    /// `seconds` of business time after `t`, as an instant.
    pub(crate) fn add(&self, t: i64, seconds: i64) -> i64 {
        self.instant(self.at(t) + seconds)
    }
}

/// The days a body sits on, and how long before a session a dossier must be in
/// the step to reach it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Sittings {
    /// The sessions' days, sorted, without repeats.
    days: Vec<i64>,
    /// In seconds.
    lead: i64,
}

impl Sittings {
    /// Sessions on `dates` (any order), reachable `lead` seconds after entering.
    pub(crate) fn new(dates: &[NaiveDate], lead: i64) -> Self {
        let mut days: Vec<i64> = dates.iter().map(|&d| day_number(d)).collect();
        days.sort_unstable();
        days.dedup();
        Self { days, lead }
    }

    /// The last session listed.
    pub(crate) fn last(&self) -> Option<NaiveDate> {
        self.days.last().map(|&d| date_of(d))
    }

    /// The index of the first session a dossier that entered the step at
    /// `entered` can reach: the first on or after the day `lead` later.
    fn first_reachable(&self, zone: &Zone, entered: i64) -> usize {
        let (earliest, _) = zone.local_day(entered + self.lead);
        self.days.partition_point(|&d| d < earliest)
    }

    /// How many sessions reachable from `entered` sat before day `day`.
    pub(crate) fn passed_before(&self, zone: &Zone, entered: i64, day: i64) -> i64 {
        let first = self.first_reachable(zone, entered);
        let upto = self.days.partition_point(|&d| d < day);
        upto.saturating_sub(first) as i64
    }

    /// The `n`-th session (from 1) reachable from `entered`, as a day number;
    /// `None` past the last one listed.
    pub(crate) fn nth(&self, zone: &Zone, entered: i64, n: i64) -> Option<i64> {
        let i = self.first_reachable(zone, entered) + usize::try_from(n.max(1) - 1).ok()?;
        self.days.get(i).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PARIS: Tz = chrono_tz::Europe::Paris;

    fn date(text: &str) -> NaiveDate {
        text.parse().unwrap()
    }

    fn at(text: &str) -> i64 {
        chrono::DateTime::parse_from_rfc3339(text)
            .unwrap()
            .timestamp()
    }

    #[test]
    fn french_public_holidays_follow_easter() {
        let b = Business::new(Zone::new(PARIS));
        let business = |d: &str| b.is_business_day(day_number(date(d)));
        // 2026: Easter on 5 April; these holidays fall on weekdays.
        for holiday in [
            "2026-01-01",
            "2026-04-06",
            "2026-05-01",
            "2026-05-08",
            "2026-05-14",
            "2026-05-25",
            "2026-07-14",
            "2026-11-11",
            "2026-12-25",
        ] {
            assert!(!business(holiday), "{holiday}");
        }
        for day in ["2026-04-03", "2026-04-07", "2026-05-15", "2026-12-24"] {
            assert!(business(day), "{day}");
        }
        assert!(!business("2026-12-26"), "a Saturday");
        // 2027: Easter on 28 March, Ascension on 6 May, Whit Monday on 17 May.
        for holiday in ["2027-03-29", "2027-05-06", "2027-05-17"] {
            assert!(!business(holiday), "{holiday}");
        }
    }

    #[test]
    fn business_time_skips_weekends_and_holidays_in_the_regions_zone() {
        let b = Business::new(Zone::new(PARIS));
        // Friday 8 May 2026 is a holiday: from Thursday 7 May at 09:00 Paris, one
        // business day later is Monday 11 May at 09:00.
        let thursday = at("2026-05-07T09:00:00+02:00");
        assert_eq!(b.add(thursday, DAY), at("2026-05-11T09:00:00+02:00"));
        // A weekend instant counts as the start of the next business day.
        assert_eq!(
            b.at(at("2026-05-09T15:00:00+02:00")),
            b.at(at("2026-05-11T00:00:00+02:00"))
        );
        // Ten business days from Monday 23 March 2026 at 10:00, across the switch
        // to summer time and Easter Monday (6 April): Tuesday 7 April at 10:00.
        let monday = at("2026-03-23T10:00:00+01:00");
        assert_eq!(b.add(monday, 10 * DAY), at("2026-04-07T10:00:00+02:00"));
        // Before 1970 too.
        let old = at("1965-06-15T10:00:00+01:00");
        assert_eq!(b.instant(b.at(old)), old);
        // The inverse holds on every business instant of two years.
        let mut t = at("2025-12-20T08:00:00+01:00");
        while t < at("2027-12-31T00:00:00+01:00") {
            let (day, _) = b.zone().local_day(t);
            assert_eq!(day, local_day(PARIS, t).0, "{t}");
            if b.is_business_day(day) {
                assert_eq!(b.instant(b.at(t)), t, "{t}");
            }
            t += 7 * 3_600 + 13;
        }
    }

    #[test]
    fn a_dossier_reaches_the_first_session_after_the_lead_time() {
        let paris = Zone::new(PARIS);
        let s = Sittings::new(
            &[date("2026-03-20"), date("2026-01-23"), date("2026-02-20")],
            10 * DAY,
        );
        // In the step from 12 January: 23 January is 11 days later, reachable.
        let entered = at("2026-01-12T09:00:00+01:00");
        assert_eq!(
            s.nth(&paris, entered, 1),
            Some(day_number(date("2026-01-23")))
        );
        // From 15 January: too late for the 23rd, the first is 20 February.
        let late = at("2026-01-15T09:00:00+01:00");
        assert_eq!(s.nth(&paris, late, 1), Some(day_number(date("2026-02-20"))));
        assert_eq!(s.nth(&paris, late, 2), Some(day_number(date("2026-03-20"))));
        assert_eq!(s.nth(&paris, late, 3), None);
        // On 21 February, one reachable session has passed; on its day, none yet.
        let day = |d: &str| day_number(date(d));
        assert_eq!(s.passed_before(&paris, late, day("2026-02-21")), 1);
        assert_eq!(s.passed_before(&paris, late, day("2026-02-20")), 0);
        assert_eq!(s.passed_before(&paris, entered, day("2026-02-21")), 2);
    }
}
