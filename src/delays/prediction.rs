//! One dossier's prediction, the same wherever it is shown (`dossier --json`,
//! `stats --dossiers`): when it is expected to leave its step, and the 80 %
//! interval around it, as inclusive dates in the Region's time zone.
//!
//! Pure: made from an [`Estimate`], the instant it holds at and the zone.

use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;
use serde::Serialize;

use super::{Basis, Estimate};

/// When a dossier is expected to leave its step. Dates are inclusive, in the
/// Region's zone; the interval's `low` is the day of the prediction itself when
/// the dossier may leave that very day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Prediction {
    /// The day it leaves with even odds.
    pub expected: Option<NaiveDate>,
    /// The first day of the 80 % interval (history only).
    pub low: Option<NaiveDate>,
    /// The last day of the 80 % interval (history only; none when the history
    /// has no stay this long that ended: then `not_before` says so).
    pub high: Option<NaiveDate>,
    /// When there is no upper bound: the day before which it is unlikely to leave.
    pub not_before: Option<NaiveDate>,
    /// Why a bound is missing, in a sentence.
    pub reason: Option<&'static str>,
    /// What it rests on.
    pub basis: Basis,
    /// How many stays it rests on (0 for the lifecycle).
    pub sample: u64,
    /// Whether the dates are sessions of the step's `[[calendar]]`.
    pub sessions: bool,
}

/// No upper bound: too few of the stays as long as this one have ended.
const UNBOUNDED: &str = "too few stays this long have ended in the history to bound it";
/// The lifecycle's expected duration, without history.
const INDICATIVE: &str = "indicative: the step's expected_duration, without history to bound it";
/// The next session of the step's calendar, without history.
const NEXT_SESSION: &str =
    "indicative: the next session the dossier can reach, without history to bound it";
/// The high bound lies past the longest stay that ended.
const EXTRAPOLATED: &str =
    "the high bound continues the history's tail past the longest stay that ended";

impl Estimate {
    /// This estimate with its dates at `now` in `tz` (see [`Estimate::predict`]).
    #[must_use]
    pub fn dated(mut self, now: DateTime<Utc>, tz: Tz) -> Self {
        self.dates = Some(self.predict(now, tz));
        self
    }

    /// This estimate as dates, at `now` in `tz`.
    pub fn predict(&self, now: DateTime<Utc>, tz: Tz) -> Prediction {
        // On the wall clock: six weeks after a midnight is a midnight, whatever
        // the daylight-saving changes in between.
        let local = now.with_timezone(&tz).naive_local();
        let day =
            |seconds: Option<i64>| seconds.map(|s| (local + chrono::Duration::seconds(s)).date());
        let (low, high) = (day(self.low), day(self.high));
        let (not_before, reason) = match (self.basis, high) {
            (Basis::Lifecycle, _) if self.sessions => (None, Some(NEXT_SESSION)),
            (Basis::Lifecycle, _) => (None, Some(INDICATIVE)),
            (_, None) => (low.or_else(|| day(Some(0))), Some(UNBOUNDED)),
            _ if self.extrapolated => (None, Some(EXTRAPOLATED)),
            _ => (None, None),
        };
        Prediction {
            expected: day(self.remaining),
            low,
            high,
            not_before,
            reason,
            basis: self.basis,
            sample: self.sample,
            sessions: self.sessions,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{estimate, utc};

    const DAY: i64 = 86_400;

    fn date(text: &str) -> Option<NaiveDate> {
        Some(text.parse().unwrap())
    }

    #[test]
    fn dates_are_inclusive_days_of_the_regions_zone_today_included() {
        // 23:30 in Paris on 28 March 2026, the eve of the switch to summer time.
        let now = utc("2026-03-28T22:30:00Z");
        let p = estimate(Basis::Scheme, 3 * DAY, Some(0), Some(9 * DAY))
            .predict(now, chrono_tz::Europe::Paris);
        assert_eq!(p.low, date("2026-03-28"), "an exit today is possible");
        // 3 and 9 days later on the wall clock, whatever the switch to summer time.
        assert_eq!(p.expected, date("2026-03-31"));
        assert_eq!(p.high, date("2026-04-06"));
        assert_eq!((p.not_before, p.reason), (None, None));
        // The same instant is already the 29th in UTC: the zone decides.
        let p = estimate(Basis::Scheme, 0, Some(0), Some(DAY)).predict(now, chrono_tz::UTC);
        assert_eq!(p.low, date("2026-03-28"));
        let p = estimate(Basis::Scheme, 0, Some(3600), Some(DAY)).predict(now, chrono_tz::UTC);
        assert_eq!(p.low, date("2026-03-28"));
        let p = estimate(Basis::Scheme, 0, Some(2 * 3600), Some(DAY)).predict(now, chrono_tz::UTC);
        assert_eq!(p.low, date("2026-03-29"));
    }

    #[test]
    fn a_long_wait_says_not_before_and_why_and_the_lifecycle_is_indicative() {
        let now = utc("2026-06-01T08:00:00Z");
        let p = estimate(Basis::Step, 20 * DAY, Some(5 * DAY), None)
            .predict(now, chrono_tz::Europe::Paris);
        assert_eq!(p.high, None);
        assert_eq!(p.not_before, date("2026-06-06"));
        assert_eq!(p.reason, Some(UNBOUNDED));
        let p =
            estimate(Basis::Lifecycle, 4 * DAY, None, None).predict(now, chrono_tz::Europe::Paris);
        assert_eq!(
            (p.low, p.high, p.expected),
            (None, None, date("2026-06-05"))
        );
        assert_eq!(p.reason, Some(INDICATIVE));
        let json = serde_json::to_value(&p).unwrap();
        assert_eq!(json["basis"], "lifecycle");
        assert_eq!(json["expected"], "2026-06-05");
        assert_eq!(json["not_before"], serde_json::Value::Null);
    }
}
