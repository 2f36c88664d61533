//! When an alert may be sent: debounce, digest windows and sending windows; and
//! when a cron schedule fires, read in the Region's zone ([`next_run`]). A leaf:
//! it uses no other module of the crate.
//!
//! Owns the pure computation of an alert's `due_at` from `now` (injected, so that
//! tests are exact) and the `[alerts]` policy of the configuration:
//!
//! - **debounce**: a step alert waits this long; it is cancelled if the dossier
//!   leaves that step meanwhile (see [`crate::store`]), so flip-flops do not spam;
//! - **digest**: alerts to one person due at the same moment become one message;
//!   with a schedule (`"0 0 8 * * *"`), alerts wait for its next tick and gather;
//! - **sending windows** (`"mon-fri 08:00-19:00"`): outside them alerts wait for the
//!   next opening; they are never dropped.
//!
//! Everything is evaluated in the configured time zone, daylight-saving included.

use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Datelike, Days, NaiveTime, TimeZone, Utc, Weekday};
use chrono_tz::Tz;
use croner::Cron;

/// When alerts to one recipient are gathered into one message.
#[derive(Debug, Clone)]
pub enum Digest {
    /// Alerts due at the same moment (from one import) are gathered.
    Import,
    /// Alerts wait for the next tick of this schedule and are gathered then.
    Schedule(Box<Cron>),
}

/// Days and hours during which messages may leave, in the configured zone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    /// Monday first.
    days: [bool; 7],
    start: NaiveTime,
    end: NaiveTime,
}

/// The longest debounce, of `[alerts]` or of a rule: an alert held longer is
/// news no more (issue 17, item 20).
pub const MAX_DEBOUNCE: Duration = Duration::from_secs(30 * 86_400);

/// The timing policy of alerts.
#[derive(Debug, Clone)]
pub struct Policy {
    /// The zone windows and schedules are read in.
    pub tz: Tz,
    /// How long step alerts wait by default.
    pub debounce: Duration,
    /// How alerts are gathered.
    pub digest: Digest,
    /// When messages may leave; empty means at any time.
    pub windows: Vec<Window>,
}

const DAYS: [(&str, Weekday); 7] = [
    ("mon", Weekday::Mon),
    ("tue", Weekday::Tue),
    ("wed", Weekday::Wed),
    ("thu", Weekday::Thu),
    ("fri", Weekday::Fri),
    ("sat", Weekday::Sat),
    ("sun", Weekday::Sun),
];

fn weekday(name: &str) -> Result<usize, String> {
    DAYS.iter()
        .position(|(n, _)| n.eq_ignore_ascii_case(name.trim()))
        .ok_or_else(|| format!("'{name}' is not a day (mon, tue, wed, thu, fri, sat, sun)"))
}

impl FromStr for Window {
    type Err = String;

    /// Parses `"mon-fri 08:00-19:00"`, `"sat 09:00-12:00"`, `"mon,wed 14:00-17:30"`.
    fn from_str(text: &str) -> Result<Self, String> {
        let expected = || {
            format!(
                "'{text}' is not a sending window like \"mon-fri 08:00-19:00\" or \"sat 09:00-12:00\""
            )
        };
        let (days_text, hours) = text.trim().split_once(' ').ok_or_else(expected)?;
        let mut days = [false; 7];
        for part in days_text.split(',') {
            match part.split_once('-') {
                Some((a, b)) => {
                    let (a, b) = (weekday(a)?, weekday(b)?);
                    if a > b {
                        return Err(format!("'{part}': the first day must come before the last"));
                    }
                    days[a..=b].iter_mut().for_each(|d| *d = true);
                }
                None => days[weekday(part)?] = true,
            }
        }
        let (start, end) = hours.trim().split_once('-').ok_or_else(expected)?;
        let time = |t: &str| {
            NaiveTime::parse_from_str(t.trim(), "%H:%M")
                .map_err(|_| format!("'{t}' is not a time like 08:00 ({})", expected()))
        };
        let (start, end) = (time(start)?, time(end)?);
        if start >= end {
            return Err(format!(
                "'{text}': the window must end after it starts (use two windows to span midnight)"
            ));
        }
        Ok(Self { days, start, end })
    }
}

impl Policy {
    /// When an alert queued at `now` may leave: after its debounce, at the next
    /// digest tick when digests are scheduled, and inside a sending window.
    pub fn due_at(&self, now: DateTime<Utc>, debounce: Duration, digest: bool) -> DateTime<Utc> {
        let mut due = now + chrono::Duration::from_std(debounce).unwrap_or(chrono::TimeDelta::MAX);
        if digest && let Digest::Schedule(cron) = &self.digest {
            // A schedule that never fires again leaves the alert where it is.
            if let Ok(tick) = next_run(cron, self.tz, due) {
                due = tick;
            }
        }
        self.next_open(due)
    }

    /// The first instant at or after `t` inside a sending window.
    pub fn next_open(&self, t: DateTime<Utc>) -> DateTime<Utc> {
        if self.windows.is_empty() {
            return t;
        }
        let local = t.with_timezone(&self.tz);
        let mut best: Option<DateTime<Utc>> = None;
        // A week and a day covers every weekly pattern.
        for offset in 0..=7 {
            let Some(day) = local.date_naive().checked_add_days(Days::new(offset)) else {
                break;
            };
            let index = day.weekday().num_days_from_monday() as usize;
            for w in self.windows.iter().filter(|w| w.days[index]) {
                let (Some(start), Some(end)) = (
                    self.resolve(day.and_time(w.start)),
                    self.resolve(day.and_time(w.end)),
                ) else {
                    continue;
                };
                let candidate = if start <= t && t < end {
                    t
                } else if start > t {
                    start
                } else {
                    continue;
                };
                best = Some(best.map_or(candidate, |b| b.min(candidate)));
            }
            if best.is_some() {
                break;
            }
        }
        best.unwrap_or(t)
    }

    /// A local wall-clock time as an instant. In the autumn overlap the first
    /// occurrence counts; a time skipped in spring moves to the end of the gap.
    fn resolve(&self, local: chrono::NaiveDateTime) -> Option<DateTime<Utc>> {
        (0..=2).find_map(|hours| {
            self.tz
                .from_local_datetime(&(local + chrono::Duration::hours(hours)))
                .earliest()
                .map(|t| t.with_timezone(&Utc))
        })
    }
}

/// Parses the `digest` setting: `"import"` or a cron schedule.
///
/// # Errors
/// A reason naming the value.
pub fn parse_digest(text: &str) -> Result<Digest, String> {
    if text.trim() == "import" {
        return Ok(Digest::Import);
    }
    Cron::from_str(text)
        .map(|c| Digest::Schedule(Box::new(c)))
        .map_err(|e| {
            format!("'{text}' is neither \"import\" nor a cron schedule like \"0 0 8 * * *\": {e}")
        })
}

/// The next time a cron schedule fires after `now`, the pattern being read in `tz`
/// (so "every day at 07:00" stays at 07:00 Paris time across daylight-saving changes).
///
/// # Errors
/// When the pattern never fires again.
pub fn next_run(
    schedule: &croner::Cron,
    tz: Tz,
    now: chrono::DateTime<Utc>,
) -> Result<chrono::DateTime<Utc>, croner::errors::CronError> {
    schedule
        .find_next_occurrence(&now.with_timezone(&tz), false)
        .map(|t| t.with_timezone(&Utc))
}

/// The first instant of `date` in `tz`, in UTC: midnight, or the end of a
/// daylight-saving gap that swallowed it. The one way days start here (values
/// read from exports, deadline reminders).
pub fn start_of_day(date: chrono::NaiveDate, tz: Tz) -> Option<DateTime<Utc>> {
    let midnight = date.and_time(NaiveTime::MIN);
    (0..96).find_map(|quarter| {
        let local = midnight.checked_add_signed(chrono::TimeDelta::minutes(15 * quarter))?;
        if local.date() != date {
            return None;
        }
        tz.from_local_datetime(&local)
            .earliest()
            .map(|instant| instant.with_timezone(&Utc))
    })
}

/// The instant `time` of `date` in `tz`, in UTC: the earlier of two when the
/// clocks go back, the end of the gap when they go forward past it. How a date
/// written without a time (an export's date, `import --as-of 2025-03-03`)
/// becomes an instant.
pub fn local_instant(date: chrono::NaiveDate, time: NaiveTime, tz: Tz) -> Option<DateTime<Utc>> {
    let local = date.and_time(time);
    (0..=8).find_map(|quarter| {
        let local = local.checked_add_signed(chrono::TimeDelta::minutes(15 * quarter))?;
        tz.from_local_datetime(&local)
            .earliest()
            .map(|instant| instant.with_timezone(&Utc))
    })
}

/// An instant as the Region reads it: `2025-03-03 06:00:00 +01:00 (Europe/Paris)`.
pub fn local_time(t: DateTime<Utc>, tz: Tz) -> String {
    format!(
        "{} ({tz})",
        t.with_timezone(&tz).format("%Y-%m-%d %H:%M:%S %:z")
    )
}

/// An instant given on the command line (`--as-of`): RFC 3339
/// (`2025-03-03T06:00:00+01:00`), or a date (`2025-03-03`) taken at `time` in
/// `tz`.
///
/// # Errors
/// When it is neither, saying what is expected.
pub fn parse_as_of(text: &str, time: NaiveTime, tz: Tz) -> Result<DateTime<Utc>, String> {
    if let Ok(instant) = DateTime::parse_from_rfc3339(text) {
        return Ok(instant.with_timezone(&Utc));
    }
    let date = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d").map_err(|_| {
        format!(
            "--as-of '{text}' is neither an RFC 3339 instant (2025-03-03T06:00:00+01:00) nor a date (2025-03-03)"
        )
    })?;
    local_instant(date, time, tz)
        .ok_or_else(|| format!("--as-of '{text}': {date} {time} is no time in {tz}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::utc;
    use chrono_tz::Europe::Paris;

    fn policy(windows: &[&str], digest: &str) -> Policy {
        Policy {
            tz: Paris,
            debounce: Duration::from_secs(1800),
            digest: parse_digest(digest).unwrap(),
            windows: windows.iter().map(|w| w.parse().unwrap()).collect(),
        }
    }

    /// Issue 19: a local time of day in Paris is two hours from UTC in
    /// summer, one in winter; a time the clocks skip is the gap's end.
    #[test]
    fn issue_19_a_local_time_of_day_follows_daylight_saving() {
        let date = |s: &str| s.parse::<chrono::NaiveDate>().unwrap();
        let six = NaiveTime::from_hms_opt(6, 0, 0).unwrap();
        assert_eq!(
            local_instant(date("2025-07-07"), six, Paris),
            Some(utc("2025-07-07T04:00:00Z"))
        );
        assert_eq!(
            local_instant(date("2025-01-06"), six, Paris),
            Some(utc("2025-01-06T05:00:00Z"))
        );
        let half_past_two = NaiveTime::from_hms_opt(2, 30, 0).unwrap();
        assert_eq!(
            local_instant(date("2025-03-30"), half_past_two, Paris),
            Some(utc("2025-03-30T01:00:00Z"))
        );
    }

    #[test]
    fn windows_parse_and_reject_nonsense() {
        let w: Window = "mon-fri 08:00-19:00".parse().unwrap();
        assert_eq!(w.days, [true, true, true, true, true, false, false]);
        let w: Window = "mon,WED,sun 14:00-17:30".parse().unwrap();
        assert_eq!(w.days, [true, false, true, false, false, false, true]);
        for (bad, says) in [
            ("weekdays 08:00-19:00", "'weekdays' is not a day"),
            ("fri-mon 08:00-19:00", "must come before"),
            ("mon 19:00-08:00", "must end after"),
            ("mon 8h-19h", "'8h' is not a time"),
            ("mon", "is not a sending window"),
        ] {
            let err = bad.parse::<Window>().unwrap_err();
            assert!(err.contains(says), "{bad}: {err}");
        }
    }

    #[test]
    fn inside_a_window_an_alert_leaves_after_its_debounce() {
        let p = policy(&["mon-fri 08:00-19:00"], "import");
        // Tuesday 10:00 Paris (winter: UTC+1).
        let now = utc("2026-01-13T09:00:00Z");
        assert_eq!(p.due_at(now, p.debounce, true), utc("2026-01-13T09:30:00Z"));
    }

    #[test]
    fn quiet_hours_boundary() {
        let p = policy(&["mon-fri 08:00-19:00"], "import");
        // Tuesday 18:59:59 Paris is open; 19:00 is closed until Wednesday 08:00.
        assert_eq!(
            p.next_open(utc("2026-01-13T17:59:59Z")),
            utc("2026-01-13T17:59:59Z")
        );
        assert_eq!(
            p.next_open(utc("2026-01-13T18:00:00Z")),
            utc("2026-01-14T07:00:00Z")
        );
        // Friday evening waits for Monday morning.
        assert_eq!(
            p.next_open(utc("2026-01-16T20:00:00Z")),
            utc("2026-01-19T07:00:00Z")
        );
        // A debounce that ends after closing time moves to the next morning.
        assert_eq!(
            p.due_at(utc("2026-01-13T17:45:00Z"), p.debounce, true),
            utc("2026-01-14T07:00:00Z")
        );
    }

    #[test]
    fn windows_follow_daylight_saving() {
        let p = policy(&["mon-fri 08:00-19:00"], "import");
        // Saturday 28 March 2026 -> Monday 30 March, after the spring change:
        // 08:00 Paris is 06:00 UTC (UTC+2), not 07:00.
        assert_eq!(
            p.next_open(utc("2026-03-28T12:00:00Z")),
            utc("2026-03-30T06:00:00Z")
        );
        // Saturday 24 October 2026 -> Monday 26 October, after the autumn change: 07:00 UTC.
        assert_eq!(
            p.next_open(utc("2026-10-24T12:00:00Z")),
            utc("2026-10-26T07:00:00Z")
        );
    }

    #[test]
    fn a_window_starting_in_the_spring_gap_opens_at_its_end() {
        // 02:30 does not exist in Paris on Sunday 29 March 2026.
        let p = policy(&["sun 02:30-04:00"], "import");
        assert_eq!(
            p.next_open(utc("2026-03-28T12:00:00Z")),
            utc("2026-03-29T01:30:00Z") // 03:30 Paris (UTC+2)
        );
    }

    #[test]
    fn scheduled_digest_waits_for_the_next_tick_in_paris_time() {
        let p = policy(&[], "0 0 8 * * *");
        // Queued on Tuesday 14:00 Paris: leaves on Wednesday 08:00 Paris.
        assert_eq!(
            p.due_at(utc("2026-01-13T13:00:00Z"), Duration::ZERO, true),
            utc("2026-01-14T07:00:00Z")
        );
        // In summer 08:00 Paris is 06:00 UTC.
        assert_eq!(
            p.due_at(utc("2026-07-14T13:00:00Z"), Duration::ZERO, true),
            utc("2026-07-15T06:00:00Z")
        );
        // A rule that opts out of digests leaves after its debounce alone.
        assert_eq!(
            p.due_at(utc("2026-07-14T13:00:00Z"), Duration::ZERO, false),
            utc("2026-07-14T13:00:00Z")
        );
    }

    #[test]
    fn no_window_means_always_open() {
        let p = policy(&[], "import");
        let t = utc("2026-01-17T03:00:00Z");
        assert_eq!(p.next_open(t), t);
    }

    #[test]
    fn digest_setting_is_checked() {
        assert!(matches!(parse_digest("import"), Ok(Digest::Import)));
        let err = parse_digest("daily").unwrap_err();
        assert!(err.contains("'daily' is neither"), "{err}");
    }

    /// An instant in UTC.
    fn at(y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, h, min, 0).unwrap()
    }

    #[test]
    fn daily_schedule_follows_paris_time_across_dst() {
        let cron = croner::Cron::from_str("0 0 7 * * *").unwrap();
        let paris = chrono_tz::Europe::Paris;
        // Winter: 07:00 Paris is 06:00 UTC.
        assert_eq!(
            next_run(&cron, paris, at(2026, 3, 27, 12, 0)).unwrap(),
            at(2026, 3, 28, 6, 0)
        );
        // The night of 28 to 29 March 2026 moves to summer time: 07:00 Paris is 05:00 UTC.
        assert_eq!(
            next_run(&cron, paris, at(2026, 3, 28, 12, 0)).unwrap(),
            at(2026, 3, 29, 5, 0)
        );
        // Back to winter time on 25 October 2026.
        assert_eq!(
            next_run(&cron, paris, at(2026, 10, 24, 12, 0)).unwrap(),
            at(2026, 10, 25, 6, 0)
        );
    }

    #[test]
    fn nonexistent_local_time_is_not_skipped_forever() {
        // 02:30 does not exist in Paris on 29 March 2026; the schedule still fires
        // (at the next existing time) and the day after at 02:30 again.
        let cron = croner::Cron::from_str("0 30 2 * * *").unwrap();
        let paris = chrono_tz::Europe::Paris;
        let first = next_run(&cron, paris, at(2026, 3, 28, 12, 0)).unwrap();
        assert!(
            first > at(2026, 3, 28, 12, 0) && first <= at(2026, 3, 30, 0, 30),
            "{first}"
        );
        let second = next_run(&cron, paris, first).unwrap();
        assert_eq!(second, at(2026, 3, 30, 0, 30));
    }

    #[test]
    fn every_fifteen_minutes() {
        let cron = croner::Cron::from_str("0 */15 * * * *").unwrap();
        let next = next_run(&cron, chrono_tz::Europe::Paris, at(2026, 11, 28, 22, 47)).unwrap();
        assert_eq!(next, at(2026, 11, 28, 23, 0));
    }

    #[test]
    fn an_as_of_is_an_instant_or_the_start_of_a_day_in_the_zone() {
        let paris = chrono_tz::Europe::Paris;
        assert_eq!(
            parse_as_of("2026-07-01", NaiveTime::MIN, paris),
            Ok(utc("2026-06-30T22:00:00Z"))
        );
        assert_eq!(
            parse_as_of("2026-01-15", NaiveTime::MIN, paris),
            Ok(utc("2026-01-14T23:00:00Z"))
        );
        assert_eq!(
            parse_as_of("2026-01-15T08:00:00+01:00", NaiveTime::MIN, paris),
            Ok(utc("2026-01-15T07:00:00Z"))
        );
        assert!(
            parse_as_of("15/01/2026", NaiveTime::MIN, paris)
                .unwrap_err()
                .contains("15/01/2026")
        );
    }
}
