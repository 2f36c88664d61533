//! How the time a dossier spends in a step is counted, for the estimator: in
//! seconds, in business seconds (a step counted in business days), or in
//! sessions passed (a step that ends at a session of a body, such as the
//! Commission permanente).
//!
//! Owns the reading of a stay on an axis (with the stays a source dates by the
//! day read by the day), the time a dossier has spent on it, and the way back
//! from a time on an axis to an instant.
//!
//! Pure: instants are Unix seconds, the zone is an argument.

use super::survival::Stay;
use crate::calendar::{Business, DAY, Sittings, Zone};

/// One session on the sessions axis: the curve counts sessions as days, so
/// that its quantiles read as "after n sessions".
pub(crate) const SESSION: i64 = DAY;

/// An exit up to this many days after a session it could reach is taken as
/// that session's decision (the source records the vote's outcome a few days
/// later, and a weekly export sees it later still). So a dossier still waiting
/// has passed a session only this long after it: until then, its outcome may
/// not be recorded yet.
const RECORDED_WITHIN: i64 = 7;

/// A time axis.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Axis<'a> {
    /// Seconds.
    Days(&'a Zone),
    /// Seconds of business days.
    Business(&'a Business),
    /// Sessions passed, the dossier's own reachable ones.
    Sessions(&'a Sittings, &'a Zone),
}

impl Axis<'_> {
    /// A stay on this axis: in the step from `entered`, first seen there at
    /// `seen`, until `end` (when it `left`, or when observation stopped).
    pub(crate) fn stay(self, entered: i64, seen: i64, end: i64, left: bool) -> Stay {
        let (entry, time) = match self {
            Axis::Days(zone) => (observed_from(zone, entered, seen) - entered, end - entered),
            Axis::Business(b) => {
                let start = b.at(entered);
                (
                    b.at(observed_from(b.zone(), entered, seen)) - start,
                    b.at(end) - start,
                )
            }
            Axis::Sessions(s, zone) => {
                let (seen_day, _) = zone.local_day(seen);
                let entry = s.passed_before(zone, entered, seen_day - RECORDED_WITHIN) * SESSION;
                let (end_day, _) = zone.local_day(end);
                let passed = s.passed_before(zone, entered, end_day + 1);
                let recorded = s
                    .nth(zone, entered, passed)
                    .is_some_and(|d| passed > 0 && end_day - d <= RECORDED_WITHIN);
                let time = if left && recorded {
                    passed * SESSION
                } else if left {
                    // Left between two sessions: past the last one that sat before.
                    s.passed_before(zone, entered, end_day) * SESSION + SESSION / 2
                } else {
                    // Still waiting: past the sessions whose outcome would be known.
                    s.passed_before(zone, entered, end_day - RECORDED_WITHIN) * SESSION
                        + SESSION / 2
                };
                (entry, time)
            }
        };
        Stay {
            // Seen in the step, so in it from then on; an exit the source dates
            // before it was seen is where it joins those at risk.
            entry: entry.clamp(0, (time - 1).max(0)),
            time,
            left,
        }
    }

    /// The time spent on this axis by `now` since `entered`. On sessions: just
    /// past the sessions whose outcome would be known by now (a dossier still
    /// waiting did not leave at them).
    pub(crate) fn elapsed(self, entered: i64, now: i64) -> i64 {
        match self {
            Axis::Days(_) => now - entered,
            Axis::Business(b) => b.at(now) - b.at(entered),
            Axis::Sessions(s, zone) => {
                let known = zone.local_day(now).0 - RECORDED_WITHIN;
                s.passed_before(zone, entered, known) * SESSION + 1
            }
        }
    }

    /// When a dossier that entered at `entered` reaches time `at` on this axis;
    /// on sessions, midday of the session that decides (`None` past the last
    /// session listed).
    pub(crate) fn instant(self, entered: i64, at: i64) -> Option<i64> {
        match self {
            Axis::Days(_) => Some(entered.saturating_add(at)),
            Axis::Business(b) => Some(b.add(entered, at)),
            Axis::Sessions(s, zone) => {
                let n = (at + SESSION - 1).div_euclid(SESSION);
                if n <= 0 {
                    return Some(entered);
                }
                s.nth(zone, entered, n).map(|d| zone.day_start(d) + DAY / 2)
            }
        }
    }

    /// The first instant at which a dossier that entered at `entered` has spent
    /// more than `threshold` on this axis: on sessions, once the outcome of the
    /// last session within it would be known (`None` past the last session
    /// listed).
    pub(crate) fn crossing(self, entered: i64, threshold: i64) -> Option<i64> {
        match self {
            Axis::Sessions(s, zone) => {
                let n = (threshold + SESSION - 1).div_euclid(SESSION);
                if n <= 0 {
                    return Some(entered);
                }
                s.nth(zone, entered, n)
                    .map(|d| zone.day_start(d + 1 + RECORDED_WITHIN))
            }
            _ => self.instant(entered, threshold),
        }
    }
}

/// From when a stay was observed in its step: when it was first `seen`, or,
/// when the source dates the step by the day (it `entered` at a local
/// midnight), from the start of the day it was seen. A dossier dated Friday,
/// seen on Monday morning and dated out on Monday joins those at risk on
/// Monday with every other Friday dossier seen then, not alone a second before
/// it leaves.
fn observed_from(zone: &Zone, entered: i64, seen: i64) -> i64 {
    // Midnights fall on a quarter of an hour in every zone: most instants are
    // told apart without a look at the zone.
    if entered % 900 != 0 || seen <= entered {
        return seen;
    }
    let (_, into) = zone.local_day(entered);
    if into != 0 {
        return seen;
    }
    let (day, _) = zone.local_day(seen);
    (zone.day_start(day) - 1).max(entered)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paris() -> Zone {
        Zone::new(chrono_tz::Europe::Paris)
    }

    fn at(text: &str) -> i64 {
        chrono::DateTime::parse_from_rfc3339(text)
            .unwrap()
            .timestamp()
    }

    /// Issue 19: dated Friday, seen on Monday at 06:00, dated out on Monday: on
    /// the Monday, every Friday dossier seen then is at risk, not only it.
    #[test]
    fn a_stay_dated_by_the_day_is_observed_from_the_start_of_the_day_it_was_seen() {
        let zone = paris();
        let axis = Axis::Days(&zone);
        let friday = at("2026-03-06T00:00:00+01:00");
        let monday_seen = at("2026-03-09T06:00:00+01:00");
        let monday = at("2026-03-09T00:00:00+01:00");
        let gone = axis.stay(friday, monday_seen, monday, true);
        let staying = axis.stay(friday, monday_seen, at("2026-03-20T00:00:00+01:00"), true);
        assert_eq!(gone.time, 3 * DAY);
        assert_eq!(gone.entry, 3 * DAY - 1);
        assert_eq!(staying.entry, gone.entry, "both join on Monday");
        // An instant of the source (not a midnight) is observed from when it was seen.
        let stamped = axis.stay(friday + 3_600, monday_seen, monday + DAY, true);
        assert_eq!(stamped.entry, monday_seen - friday - 3_600);
    }

    #[test]
    fn sessions_count_the_reachable_ones_and_an_exit_is_the_decision_of_one() {
        let date = |t: &str| t.parse().unwrap();
        let s = Sittings::new(
            &[
                date("2026-01-23"),
                date("2026-02-20"),
                date("2026-03-20"),
                date("2026-04-24"),
            ],
            10 * DAY,
        );
        let zone = paris();
        let axis = Axis::Sessions(&s, &zone);
        // Entered 15 January (too late for the 23rd), seen the 16th.
        let entered = at("2026-01-15T00:00:00+01:00");
        let seen = at("2026-01-16T06:00:00+01:00");
        // Voted at the second reachable session (20 March), recorded on the 23rd.
        let voted = axis.stay(entered, seen, at("2026-03-23T00:00:00+01:00"), true);
        assert_eq!((voted.entry, voted.time), (0, 2 * SESSION));
        // Withdrawn on 1 March: between the first and the second.
        let withdrawn = axis.stay(entered, seen, at("2026-03-01T00:00:00+01:00"), true);
        assert_eq!(withdrawn.time, SESSION + SESSION / 2);
        // Still waiting on 1 March, seen first on the 28th of February: it had
        // passed one session when seen (20 February, more than a week before).
        let late = axis.stay(
            entered,
            at("2026-02-28T06:00:00+01:00"),
            at("2026-03-01T06:00:00+01:00"),
            false,
        );
        assert_eq!((late.entry, late.time), (SESSION, SESSION + SESSION / 2));
        // Seen on the 24th, the outcome of the 20th may not be recorded yet.
        let recent = axis.stay(
            entered,
            at("2026-02-24T06:00:00+01:00"),
            at("2026-02-25T06:00:00+01:00"),
            false,
        );
        assert_eq!((recent.entry, recent.time), (0, SESSION / 2));
        // On 1 March it has passed one session; it is expected at the next. On
        // the 24th of February, the first may still be its decision.
        assert_eq!(
            axis.elapsed(entered, at("2026-03-01T10:00:00+01:00")),
            SESSION + 1
        );
        assert_eq!(axis.elapsed(entered, at("2026-02-24T10:00:00+01:00")), 1);
        assert_eq!(
            axis.instant(entered, 2 * SESSION),
            Some(at("2026-03-20T12:00:00+01:00"))
        );
        // Stalled past two sessions: once the second's outcome would be known, a
        // week and a day after it.
        assert_eq!(
            axis.crossing(entered, 2 * SESSION),
            Some(at("2026-03-28T00:00:00+01:00"))
        );
        assert_eq!(axis.instant(entered, 4 * SESSION), None, "past the list");
    }
}
