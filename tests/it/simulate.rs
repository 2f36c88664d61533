//! A simulated history of grant dossiers whose step durations are known, for the
//! accuracy test and benchmark of the delay estimates (shared with
//! `examples/bench_delays.rs` and `simulate_replay.rs`).
//!
//! Four schemes, each a speed factor on shared log-normal step durations; arrivals
//! peak in spring. The Commission permanente sits on session dates every 4 to 6
//! weeks, drawn per seed, none in August ([`sessions`]): a dossier reaches the
//! first session at least [`LEAD`] days after it entered the `commission` step,
//! one in ten is deferred to the following one, and one in five is refused there.
//! The `complet` step is counted in French business days (weekdays that are not
//! public holidays, [`is_business_day`]): its length is drawn in business days and
//! converted to a date. Dates are those of the Region's zone (Europe/Paris).
//! Each dossier's whole path is drawn, also past the end of the simulation. What
//! Alertissimo would have seen — imports from `follow_from` (the day it was
//! installed: dossiers already under way are a baseline, first seen late) to `end`
//! — is fed to a [`History`] ([`observe_every`]), or written as exports and replayed
//! through the binary (`simulate_replay.rs`); what happens after `end` is kept
//! apart, as the truth the estimates are judged against.

#![allow(dead_code)] // Each user takes what it needs.

use alertissimo::delays::History;
use alertissimo::model::EventKind;
use chrono::{Datelike, Days, NaiveDate, TimeZone, Utc, Weekday};
use chrono_tz::Europe::Paris;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A day, in seconds.
pub const DAY: i64 = 86_400;

/// The schemes: name, speed factor on the durations, dossiers a year.
pub const SCHEMES: [(&str, f64, f64); 4] = [
    ("Aide aux TPE", 0.7, 2_000.0),
    ("Culture", 1.0, 1_500.0),
    ("Emploi associatif", 1.3, 800.0),
    ("Investissement", 2.0, 300.0),
];

/// One stay of a simulated dossier in a step.
#[derive(Debug, Clone)]
pub struct Stay {
    /// The step.
    pub step: &'static str,
    /// When the dossier entered it (Unix seconds).
    pub entered: i64,
    /// When it left it; `None` for a final step.
    pub left: Option<i64>,
}

/// A simulated dossier: its scheme and whole path.
#[derive(Debug, Clone)]
pub struct Dossier {
    /// Index in [`SCHEMES`].
    pub scheme: usize,
    /// Its stays, in order.
    pub stays: Vec<Stay>,
}

/// A dossier in a step at the end of the simulation, and its truth.
#[derive(Debug, Clone)]
pub struct Held {
    /// Its scheme.
    pub scheme: &'static str,
    /// Its step at the end.
    pub step: &'static str,
    /// The time it had spent in it at the end.
    pub elapsed: i64,
    /// The further time it really stayed.
    pub remaining: i64,
}

/// The start of the simulated time: 1 January 2020.
pub fn origin() -> i64 {
    Utc.with_ymd_and_hms(2020, 1, 1, 0, 0, 0)
        .unwrap()
        .timestamp()
}

fn log_normal(rng: &mut ChaCha8Rng, median_days: f64, sigma: f64) -> i64 {
    // Box–Muller.
    let (u1, u2): (f64, f64) = (rng.random::<f64>().max(1e-12), rng.random::<f64>());
    let z = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
    (median_days * (sigma * z).exp() * DAY as f64) as i64
}

/// The minimum time, in days, between entering the `commission` step and the
/// session that votes on the dossier.
pub const LEAD: u64 = 10;

/// The share of dossiers deferred to the session after the first they could reach.
pub const DEFERRED: f64 = 0.1;

/// The Region's local date of an instant (Unix seconds).
pub fn local_date(t: i64) -> NaiveDate {
    Utc.timestamp_opt(t, 0)
        .unwrap()
        .with_timezone(&Paris)
        .date_naive()
}

/// The instant (Unix seconds) of a local date and time of day in the Region's zone.
pub fn local_instant(date: NaiveDate, hour: u32, minute: u32) -> i64 {
    let naive = date.and_hms_opt(hour, minute, 0).unwrap();
    Paris
        .from_local_datetime(&naive)
        .earliest()
        .unwrap_or_else(|| Paris.from_utc_datetime(&naive))
        .timestamp()
}

/// Easter Sunday of `year` (the anonymous Gregorian algorithm).
fn easter(year: i32) -> NaiveDate {
    let (a, b, c) = (year % 19, year / 100, year % 100);
    let (d, e) = (b / 4, b % 4);
    let f = (b + 8) / 25;
    let g = (b - f + 1) / 3;
    let h = (19 * a + b - d - g + 15) % 30;
    let (i, k) = (c / 4, c % 4);
    let l = (32 + 2 * e + 2 * i - h - k) % 7;
    let m = (a + 11 * h + 22 * l) / 451;
    let month = (h + l - 7 * m + 114) / 31;
    let day = (h + l - 7 * m + 114) % 31 + 1;
    NaiveDate::from_ymd_opt(year, month as u32, day as u32).unwrap()
}

/// Whether `date` is a French public holiday (the eleven of metropolitan France).
pub fn is_holiday(date: NaiveDate) -> bool {
    let fixed = [
        (1, 1),
        (5, 1),
        (5, 8),
        (7, 14),
        (8, 15),
        (11, 1),
        (11, 11),
        (12, 25),
    ];
    if fixed.contains(&(date.month(), date.day())) {
        return true;
    }
    let easter = easter(date.year());
    // Easter Monday, Ascension Thursday, Whit Monday.
    [1, 39, 50].iter().any(|&d| easter + Days::new(d) == date)
}

/// Whether `date` is a business day: a weekday that is not a public holiday.
pub fn is_business_day(date: NaiveDate) -> bool {
    !matches!(date.weekday(), Weekday::Sat | Weekday::Sun) && !is_holiday(date)
}

/// The `n`th business day after `date`.
pub fn add_business_days(mut date: NaiveDate, n: u32) -> NaiveDate {
    for _ in 0..n {
        date = date + Days::new(1);
        while !is_business_day(date) {
            date = date + Days::new(1);
        }
    }
    date
}

/// The sessions of the Commission permanente, drawn for `seed`, from January of
/// the first simulated year to three years past the last (paths run past the
/// end): on Fridays (the Thursday before when the Friday is a holiday), 4 to 6
/// weeks apart, none in August (a session that would fall in it moves to the
/// first week of September).
pub fn sessions(seed: u64, years: u32) -> Vec<NaiveDate> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5e55_1045_c0de_0001);
    let first_year = local_date(origin()).year();
    let last_year = first_year + years as i32 + 3;
    // The first Friday on or after 8 January, then 0 to 2 weeks later.
    let mut friday = NaiveDate::from_ymd_opt(first_year, 1, 8).unwrap();
    while friday.weekday() != Weekday::Fri {
        friday = friday + Days::new(1);
    }
    friday = friday + Days::new(7 * rng.random_range(0..3u64));
    let mut out = Vec::new();
    while friday.year() < last_year {
        while friday.month() == 8 {
            friday = friday + Days::new(7);
        }
        out.push(if is_holiday(friday) {
            friday - Days::new(1)
        } else {
            friday
        });
        friday = friday + Days::new(7 * rng.random_range(4..=6u64));
    }
    out
}

/// The session that votes on a dossier that entered the `commission` step at
/// `t`: the first at least [`LEAD`] days after the day it entered, or with
/// probability [`DEFERRED`] the one after; at 10:00 in the Region's zone.
fn vote(rng: &mut ChaCha8Rng, sessions: &[NaiveDate], t: i64) -> i64 {
    let earliest = local_date(t) + Days::new(LEAD);
    let first = sessions.partition_point(|s| *s < earliest);
    let at = first + usize::from(rng.random_bool(DEFERRED));
    let session = sessions
        .get(at)
        .expect("sessions drawn far enough past the simulated years");
    local_instant(*session, 10, 0)
}

/// Draws the dossiers arriving over `years`, `scale` times the schemes' yearly numbers.
pub fn dossiers(seed: u64, years: u32, scale: f64) -> Vec<Dossier> {
    let sessions = sessions(seed, years);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let start = origin();
    let mut out = Vec::new();
    for day in 0..i64::from(years) * 365 {
        // A spring peak: twice as many arrivals in April as in October.
        let season = 1.0 + 0.33 * (std::f64::consts::TAU * (day as f64 - 105.0) / 365.0).cos();
        for (scheme, &(_, speed, per_year)) in SCHEMES.iter().enumerate() {
            let expected = per_year * scale * season / 365.0;
            // Poisson arrivals, by inversion.
            let mut arrivals = 0;
            let (mut p, threshold) = (1.0, (-expected).exp());
            loop {
                p *= rng.random::<f64>();
                if p <= threshold {
                    break;
                }
                arrivals += 1;
            }
            for _ in 0..arrivals {
                let filed = start + day * DAY + rng.random_range(8 * 3600..18 * 3600);
                out.push(path(&mut rng, &sessions, scheme, speed, filed));
            }
        }
    }
    out
}

fn path(
    rng: &mut ChaCha8Rng,
    sessions: &[NaiveDate],
    scheme: usize,
    speed: f64,
    filed: i64,
) -> Dossier {
    let mut stays = Vec::with_capacity(7);
    let mut t = filed;
    let mut stay = |step: &'static str, t: &mut i64, until: Option<i64>| {
        stays.push(Stay {
            step,
            entered: *t,
            left: until,
        });
        if let Some(u) = until {
            *t = u;
        }
    };
    let depose = t + log_normal(rng, 12.0 * speed, 0.6);
    stay("depose", &mut t, Some(depose));
    // A median of 5 business days, left during office hours.
    let business = (log_normal(rng, 5.0, 0.5) as f64 / DAY as f64)
        .round()
        .max(1.0) as u32;
    let complet = local_instant(
        add_business_days(local_date(t), business),
        rng.random_range(9..18),
        rng.random_range(0..60),
    );
    stay("complet", &mut t, Some(complet));
    let instruction = t + log_normal(rng, 40.0 * speed, 0.5);
    stay("instruction", &mut t, Some(instruction));
    let vote = vote(rng, sessions, t);
    stay("commission", &mut t, Some(vote));
    if rng.random_bool(0.2) {
        stay("refuse", &mut t, None);
    } else {
        let accorde = t + log_normal(rng, 20.0 * speed, 0.5);
        stay("accorde", &mut t, Some(accorde));
        let convention = t + log_normal(rng, 45.0 * speed, 0.6);
        stay("convention", &mut t, Some(convention));
        stay("cloture", &mut t, None);
    }
    Dossier { scheme, stays }
}

/// The first daily import (06:00 UTC) at or after `t`, from `follow_from` on.
fn seen(t: i64, follow_from: i64) -> i64 {
    let t = t.max(follow_from);
    let day = (t - 6 * 3600).div_euclid(DAY) * DAY + 6 * 3600;
    if day >= t { day } else { day + DAY }
}

/// Feeds `history` with what daily imports from `follow_from` to `end` saw of
/// `dossiers` (row ids from 1), and returns the dossiers in a step that is not final
/// at `end`, with their truth.
pub fn observe(
    dossiers: &[Dossier],
    follow_from: i64,
    end: i64,
    history: impl FnMut(Fed),
) -> Vec<Held> {
    observe_every(dossiers, follow_from, end, DAY, history).0
}

/// What imports every `period` (daily at 06:00 UTC from the first one at or
/// after `follow_from`, or weekly on that weekday) up to `end` saw of
/// `dossiers`, fed to `history`: a stay begun and ended between two imports is
/// never seen, and, past daily imports, the source dates its steps by the day.
/// Returns the dossiers in a step that is not final at the last import, with
/// their truth, and that import's instant.
pub fn observe_every(
    dossiers: &[Dossier],
    follow_from: i64,
    end: i64,
    period: i64,
    mut history: impl FnMut(Fed),
) -> (Vec<Held>, i64) {
    let first = seen(follow_from, follow_from);
    let last = first + (end - first).div_euclid(period) * period;
    // The first import at or after `t`.
    let import = |t: i64| first + (t.max(first) - first + period - 1).div_euclid(period) * period;
    let dated = |t: i64| {
        if period == DAY {
            t
        } else {
            t.div_euclid(DAY) * DAY
        }
    };
    let mut held = Vec::new();
    for (i, d) in dossiers.iter().enumerate() {
        let id = i as i64 + 1;
        let scheme = SCHEMES[d.scheme].0;
        // The stays an import saw: in the step at some import up to the last.
        let visible: Vec<&Stay> = d
            .stays
            .iter()
            .filter(|s| {
                let at = import(s.entered);
                at <= last && s.left.is_none_or(|l| l > at)
            })
            .collect();
        let Some(first_stay) = visible.first() else {
            continue;
        };
        let current = visible[visible.len() - 1];
        history(Fed::Dossier {
            id,
            scheme,
            step: current.step,
            entered: dated(current.entered),
        });
        for (k, s) in visible.iter().enumerate() {
            history(Fed::Event {
                id,
                kind: if k == 0 {
                    EventKind::Created
                } else {
                    EventKind::StepChanged
                },
                step: s.step,
                occurred: dated(s.entered),
                seen: if k == 0 {
                    import(first_stay.entered)
                } else {
                    import(s.entered)
                },
            });
        }
        if let Some(left) = current.left {
            held.push(Held {
                scheme,
                step: current.step,
                elapsed: last - dated(current.entered),
                remaining: left - last,
            });
        }
    }
    (held, last)
}

/// What [`observe`] tells a history.
#[derive(Debug, Clone, Copy)]
pub enum Fed {
    /// A dossier as stored at the end.
    Dossier {
        id: i64,
        scheme: &'static str,
        step: &'static str,
        entered: i64,
    },
    /// One of its step events.
    Event {
        id: i64,
        kind: EventKind,
        step: &'static str,
        occurred: i64,
        seen: i64,
    },
}

/// Feeds one fact to a history.
pub fn feed(history: &mut History, fed: Fed) {
    match fed {
        Fed::Dossier {
            id,
            scheme,
            step,
            entered,
        } => history.dossier(id, Some(scheme), step, entered),
        Fed::Event {
            id,
            kind,
            step,
            occurred,
            seen,
        } => history.event(id, kind, Some(step), occurred, seen),
    }
}

/// How well the estimates predicted what happened after the end.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Accuracy {
    /// Dossiers simulated.
    pub dossiers: usize,
    /// Dossiers in a step that is not final at the end (the held-out ones).
    pub held: usize,
    /// Of them, those whose estimate had an 80 % interval.
    pub with_interval: usize,
    /// The share of held-out dossiers whose real exit day fell in the interval's
    /// days (a dossier without an interval counts as missed).
    pub coverage: f64,
    /// The median absolute error of the predicted date of leaving the step, in days.
    pub median_error_days: f64,
    /// The same for the naive prediction: the mean of the completed stays observed
    /// in the scheme's step, less the time already spent (0 when past it).
    pub naive_median_error_days: f64,
}

fn median(mut values: Vec<i64>) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_unstable();
    values[values.len() / 2] as f64 / DAY as f64
}

/// Simulates `years` of dossiers (`scale` times the schemes' yearly numbers),
/// followed from the second year on, and judges the estimates made at the end.
pub fn evaluate(
    lifecycle: &alertissimo::lifecycle::Lifecycle,
    seed: u64,
    years: u32,
    scale: f64,
) -> Accuracy {
    evaluate_every(lifecycle, seed, years, scale, DAY)
}

/// [`evaluate`], with imports every `period` (a day, or a week).
pub fn evaluate_every(
    lifecycle: &alertissimo::lifecycle::Lifecycle,
    seed: u64,
    years: u32,
    scale: f64,
    period: i64,
) -> Accuracy {
    let dossiers = dossiers(seed, years, scale);
    let follow_from = origin() + 365 * DAY;
    let mut history = History::new();
    let (held, end) = observe_every(
        &dossiers,
        follow_from,
        origin() + i64::from(years) * 365 * DAY,
        period,
        |f| feed(&mut history, f),
    );
    // The naive observer's mean of the stays it saw end.
    let mut completed: std::collections::HashMap<(&str, &str), (i64, i64)> =
        std::collections::HashMap::new();
    for d in &dossiers {
        for s in &d.stays {
            if let Some(left) = s.left
                && left > follow_from
                && left <= end
            {
                let sum = completed.entry((SCHEMES[d.scheme].0, s.step)).or_default();
                sum.0 += left - s.entered;
                sum.1 += 1;
            }
        }
    }
    // The Region's zone: sessions and business days are its dates.
    let delays = history.finish(lifecycle, 30, end, Paris);
    let (mut covered, mut with_interval) = (0usize, 0usize);
    let (mut errors, mut naive_errors) = (Vec::new(), Vec::new());
    for h in &held {
        let estimate = delays.estimate(Some(h.scheme), h.step, end - h.elapsed, end);
        let (low, middle, high) = estimate
            .as_ref()
            .map_or((None, None, None), |e| (e.low, e.remaining, e.high));
        if let (Some(low), Some(high)) = (low, high) {
            with_interval += 1;
            // Inclusive days, as `stats --dossiers` gives them: a session's day
            // holds a vote made during it.
            let day = |remaining: i64| local_date(end + remaining);
            if (day(low)..=day(high)).contains(&day(h.remaining)) {
                covered += 1;
            }
        }
        errors.push((middle.unwrap_or(0) - h.remaining).abs());
        let naive = completed
            .get(&(h.scheme, h.step))
            .map_or(0, |(sum, n)| (sum / n.max(&1) - h.elapsed).max(0));
        naive_errors.push((naive - h.remaining).abs());
    }
    Accuracy {
        dossiers: dossiers.len(),
        held: held.len(),
        with_interval,
        coverage: covered as f64 / held.len().max(1) as f64,
        median_error_days: median(errors),
        naive_median_error_days: median(naive_errors),
    }
}
