//! Expected delays: how long dossiers stay in each step, learnt from the Region's
//! own history, and what that says about one dossier.
//!
//! Owns the reading of a history ([`History`]: the stored dossiers and their step
//! events, folded into stays in steps), the estimates per scheme and step
//! ([`Delays`], one Kaplan–Meier curve each, see `survival`), and the estimate
//! for one dossier given the time it has already spent in its step
//! ([`Delays::estimate`]), with its fallbacks: the scheme's own history, then every
//! scheme's history for the step, then the step's `expected_duration` in
//! `rules/lifecycle.toml`. Every estimate says which basis it used.
//!
//! Pure: the store streams rows in, `now` is an argument. One dossier's
//! estimate as dates is its [`Prediction`] (`prediction.rs`). How long the
//! service takes to answer a beneficiary's message is `answers` (issue 21).

pub(crate) mod answers;
mod axis;
mod history;
mod prediction;
pub(crate) mod survival;

pub use history::{History, Seen};
pub use prediction::Prediction;

use std::collections::BTreeMap;

use chrono_tz::Tz;
use serde::Serialize;

use crate::calendar::{Business, Zone};
use crate::lifecycle::{Counted, Lifecycle, Stall};
use axis::Axis;
use survival::Curve;

/// The bounds of an estimate's 80 % interval, and its middle.
const LOW: f64 = 0.1;
const MIDDLE: f64 = 0.5;
const HIGH: f64 = 0.9;

/// What an estimate is based on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Basis {
    /// The history of the dossier's scheme in this step.
    Scheme,
    /// The history of every scheme in this step (the scheme's own is too short).
    Step,
    /// The step's `expected_duration` in the lifecycle (no history long enough).
    Lifecycle,
}

impl Basis {
    /// As templates and the commands show it.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Scheme => "scheme",
            Self::Step => "step",
            Self::Lifecycle => "lifecycle",
        }
    }
}

/// What the history says of a dossier's stay in its step. Durations in seconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Estimate {
    /// What it is based on.
    pub basis: Basis,
    /// How many dossiers' stays it is based on (0 for the lifecycle).
    pub sample: u64,
    /// Half of the stays in the step end within this.
    pub median: Option<i64>,
    /// 80 % of them end within this.
    pub p80: Option<i64>,
    /// 90 % of them end within this.
    pub p90: Option<i64>,
    /// How long the dossier has been in the step.
    pub elapsed: i64,
    /// Given that: the further time within which it leaves the step with even
    /// odds (for the lifecycle basis: the expected duration less the elapsed time).
    pub remaining: Option<i64>,
    /// The bounds of the 80 % interval of that further time (history only).
    pub low: Option<i64>,
    /// See `low`.
    pub high: Option<i64>,
    /// Whether the dossier has been in the step longer than 90 % of stays (or than
    /// the lifecycle's expected duration).
    pub overdue: bool,
    /// Whether it rests on the sessions of the step's `[[calendar]]`: the dossier
    /// leaves at a session it can reach.
    pub sessions: bool,
    /// Whether a bound lies past the longest stay that ended, on the tail of the
    /// curve continued (see `Curve::quantile_beyond`).
    pub extrapolated: bool,
    /// From when the dossier is past the 80th and 90th percentiles (or the
    /// lifecycle's expected duration), Unix seconds: the stall thresholds.
    #[serde(skip)]
    pub past_p80: Option<i64>,
    /// See `past_p80`.
    #[serde(skip)]
    pub past_p90: Option<i64>,
    /// The same as dates, once the instant and the zone are known
    /// ([`Estimate::dated`]): what messages quote as `delay.dates.*` (`none`
    /// before, so that a template can test it).
    pub dates: Option<Prediction>,
}

/// The estimates of every scheme and step, ready to answer for one dossier.
#[derive(Debug, Clone)]
pub struct Delays {
    min_sample: u64,
    lifecycle: Lifecycle,
    /// The Region's zone, whose days count.
    zone: Zone,
    /// The end of the history (Unix seconds).
    at: i64,
    /// Business time, when a step is counted in business days.
    business: Option<Business>,
    /// By (scheme, step), on the step's axis; scheme "" for dossiers without one.
    pub by_scheme: Curves,
    /// By step, every scheme together.
    pub by_step: BTreeMap<String, Curve>,
    /// The same in sessions, for the steps a `[[calendar]]` ends.
    sessions_by_scheme: Curves,
    /// See `sessions_by_scheme`.
    sessions_by_step: BTreeMap<String, Curve>,
    /// By (scheme, step): the dossiers in it at the end of the history, and how
    /// many of them are overdue.
    pub now_in_step: BTreeMap<(String, String), (u64, u64)>,
    /// By step that is not final: the dossiers in it during each month
    /// (`YYYY-MM`), from its first (ten years ago at most) to now.
    pub occupancy: BTreeMap<String, Vec<(String, u64)>>,
}

/// Curves by (scheme, step).
type Curves = BTreeMap<(String, String), Curve>;

/// A curve an estimate may rest on, and its basis.
type Candidate<'a> = (Basis, &'a Curve);

impl Delays {
    /// No curve yet, for a history that ends at `at`.
    fn new(lifecycle: &Lifecycle, min_sample: u64, at: i64, tz: Tz) -> Self {
        let zone = Zone::new(tz);
        let business = lifecycle
            .steps()
            .iter()
            .any(|s| s.counted_in == Counted::BusinessDays)
            .then(|| Business::new(zone.clone()));
        Self {
            min_sample,
            lifecycle: lifecycle.clone(),
            zone,
            at,
            business,
            by_scheme: BTreeMap::new(),
            by_step: BTreeMap::new(),
            sessions_by_scheme: BTreeMap::new(),
            sessions_by_step: BTreeMap::new(),
            now_in_step: BTreeMap::new(),
            occupancy: BTreeMap::new(),
        }
    }

    /// The curves on the steps' axes, or in sessions.
    fn curves_mut(&mut self, sessions: bool) -> (&mut Curves, &mut BTreeMap<String, Curve>) {
        if sessions {
            (&mut self.sessions_by_scheme, &mut self.sessions_by_step)
        } else {
            (&mut self.by_scheme, &mut self.by_step)
        }
    }

    /// How time is counted in `step`: business time when it is counted in
    /// business days, else seconds.
    fn axis(&self, step: &str) -> Axis<'_> {
        match (
            &self.business,
            self.lifecycle.step(step).map(|s| s.counted_in),
        ) {
            (Some(b), Some(Counted::BusinessDays)) => Axis::Business(b),
            _ => Axis::Days(&self.zone),
        }
    }

    /// Whether a curve has enough stays to answer, and reaches its median.
    fn usable(&self, curve: &Curve) -> bool {
        curve.stays >= self.min_sample && curve.quantile(MIDDLE).is_some()
    }

    /// The estimate for a dossier of `scheme` that entered `step` at `entered`
    /// (Unix seconds), at `now`; `None` for a final step, or one without
    /// history or expected duration. A step a `[[calendar]]` ends answers in
    /// sessions while they are listed; the scheme's own history answers first,
    /// then every scheme's, then the lifecycle.
    pub fn estimate<'a>(
        &'a self,
        scheme: Option<&str>,
        step: &str,
        entered: i64,
        now: i64,
    ) -> Option<Estimate> {
        let key = (scheme.unwrap_or("").to_owned(), step.to_owned());
        let own = |map: &'a Curves| map.get(&key);
        let sittings = self.lifecycle.sittings(step, scheme);
        if let Some(sittings) = sittings {
            let candidates = [
                own(&self.sessions_by_scheme).map(|c| (Basis::Scheme, c)),
                self.sessions_by_step.get(step).map(|c| (Basis::Step, c)),
            ];
            let axis = Axis::Sessions(sittings, &self.zone);
            if let Some(e) = self.on_history(&candidates, axis, entered, now) {
                return Some(e);
            }
        }
        let candidates = [
            own(&self.by_scheme).map(|c| (Basis::Scheme, c)),
            self.by_step.get(step).map(|c| (Basis::Step, c)),
        ];
        let axis = self.axis(step);
        self.on_history(&candidates, axis, entered, now)
            .or_else(|| self.indicative(step, sittings, entered, now))
    }

    /// The estimate for `dossier`, in its step since `entered`, at `now`, with
    /// its dates in the Region's zone: what messages and commands quote.
    pub(crate) fn of(
        &self,
        dossier: &crate::model::Dossier,
        entered: chrono::DateTime<chrono::Utc>,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Option<Estimate> {
        self.estimate(
            dossier.text("scheme"),
            &dossier.step,
            entered.timestamp(),
            now.timestamp(),
        )
        .map(|e| e.dated(now, self.zone.tz()))
    }

    /// The estimate from the first candidate curve that does not answer this
    /// dossier's median or 90 % bound from too thin a risk set (the stall
    /// thresholds rest on them too). `None` when none does, or when on
    /// sessions the answer lies past the last session listed.
    fn on_history(
        &self,
        candidates: &[Option<Candidate<'_>>],
        axis: Axis<'_>,
        entered: i64,
        now: i64,
    ) -> Option<Estimate> {
        let elapsed = axis.elapsed(entered, now).max(0);
        let answers = |c: &Curve| {
            self.usable(c) && !c.doubtful(elapsed, MIDDLE) && !c.doubtful(elapsed, HIGH)
        };
        let (basis, curve) = candidates.iter().flatten().find(|(_, c)| answers(c))?;
        let sessions = matches!(axis, Axis::Sessions(..));
        // From the entry, in seconds.
        let total = |q: f64| {
            curve
                .quantile(q)
                .and_then(|t| axis.instant(entered, t))
                .map(|t| t - entered)
        };
        let mut extrapolated = false;
        let mut further = |q: f64| -> Option<i64> {
            let (f, beyond) = curve.quantile_beyond(elapsed, q)?;
            extrapolated |= beyond;
            axis.instant(entered, elapsed + f).map(|t| (t - now).max(0))
        };
        let (remaining, low, high) = (further(MIDDLE), further(LOW), further(HIGH));
        if sessions && remaining.is_none() {
            return None;
        }
        let past = |q: f64| curve.quantile(q).and_then(|t| axis.crossing(entered, t));
        let past_p90 = past(HIGH);
        Some(Estimate {
            basis: *basis,
            sample: curve.stays,
            median: total(MIDDLE),
            p80: total(0.8),
            p90: total(HIGH),
            elapsed: now - entered,
            remaining,
            low,
            high,
            // When too many dossiers are still waiting for p90 to be known, none is
            // called overdue.
            overdue: past_p90.is_some_and(|t| now >= t),
            sessions,
            extrapolated,
            past_p80: past(0.8),
            past_p90,
            dates: None,
        })
    }

    /// From when a dossier of `scheme` that entered `step` at `entered` is
    /// stalled under `stall` (Unix seconds): past its percentile of the stays
    /// its estimate rests on (a session step: the day after the session that
    /// percentile falls on), or the lifecycle's expected duration, or a fixed
    /// time counted on the step's axis. `None` when it never is, or nothing
    /// tells how long stays last.
    pub(crate) fn stalled_from(
        &self,
        stall: Stall,
        scheme: Option<&str>,
        step: &str,
        entered: i64,
    ) -> Option<i64> {
        match stall {
            Stall::Off => None,
            Stall::After(d) => self
                .axis(step)
                .crossing(entered, i64::try_from(d.as_secs()).unwrap_or(i64::MAX / 2)),
            Stall::Percentile(p) => {
                let e = self.estimate(scheme, step, entered, entered)?;
                if p == 80 { e.past_p80 } else { e.past_p90 }
            }
        }
    }

    /// Without history: the first session the dossier can still reach, else the
    /// step's expected duration in the lifecycle, counted on its axis.
    fn indicative(
        &self,
        step: &str,
        sittings: Option<&crate::calendar::Sittings>,
        entered: i64,
        now: i64,
    ) -> Option<Estimate> {
        let next_session = sittings.and_then(|s| {
            let axis = Axis::Sessions(s, &self.zone);
            let next = axis.elapsed(entered, now) + axis::SESSION - 1;
            Some((axis.instant(entered, next)?, axis.crossing(entered, next)?))
        });
        let (end, past) = match next_session {
            Some(session) => session,
            None => {
                let step = self.lifecycle.step(step).filter(|s| !s.is_final)?;
                let expected = i64::try_from(step.expected_duration?.as_secs()).ok()?;
                let axis = self.axis(&step.id);
                (
                    axis.instant(entered, expected)?,
                    axis.crossing(entered, expected)?,
                )
            }
        };
        Some(Estimate {
            basis: Basis::Lifecycle,
            sample: 0,
            median: Some(end - entered),
            p80: None,
            p90: None,
            elapsed: now - entered,
            remaining: Some((end - now).max(0)),
            low: None,
            high: None,
            overdue: now >= past,
            sessions: next_session.is_some(),
            extrapolated: false,
            past_p80: Some(past),
            past_p90: Some(past),
            dates: None,
        })
    }
}

/// One line of `alertissimo stats`: what the estimates of a scheme's step rest on.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct StepStats {
    /// The scheme ("" for dossiers without one).
    pub scheme: String,
    /// The step.
    pub step: String,
    /// What the figures are based on (none: no history and no expected duration).
    pub basis: Option<Basis>,
    /// How many stays the figures rest on.
    pub sample: u64,
    /// Of the scheme's own stays in the step: how many were seen, and how many ended.
    pub own_stays: u64,
    /// See `own_stays`.
    pub own_left: u64,
    /// Median, 80th and 90th percentiles of the time spent in the step, in seconds.
    pub median: Option<i64>,
    /// See `median`.
    pub p80: Option<i64>,
    /// See `median`.
    pub p90: Option<i64>,
    /// The dossiers in the step now.
    pub in_step: u64,
    /// How many of them have been there longer than the 90th percentile (or the
    /// expected duration).
    pub overdue: u64,
}

impl Delays {
    /// Every scheme's steps with a history or dossiers in them, by scheme, then
    /// in the lifecycle's order.
    pub(crate) fn table(&self, lifecycle: &Lifecycle) -> Vec<StepStats> {
        let mut keys: Vec<&(String, String)> = self
            .by_scheme
            .keys()
            .chain(self.now_in_step.keys())
            .collect();
        let order = |step: &str| {
            lifecycle
                .steps()
                .iter()
                .position(|s| s.id == step)
                .unwrap_or(usize::MAX)
        };
        keys.sort_by(|a, b| (&a.0, order(&a.1), &a.1).cmp(&(&b.0, order(&b.1), &b.1)));
        keys.dedup();
        // A group whose every stay was unusable (a step date after the stay's end).
        keys.retain(|key| {
            self.by_scheme.get(*key).is_some_and(|c| c.stays > 0)
                || self.now_in_step.get(*key).is_some_and(|n| n.0 > 0)
        });
        keys.into_iter()
            .map(|key| {
                let (scheme, step) = key;
                let estimate = self.estimate(Some(scheme), step, self.at, self.at);
                let own = self.by_scheme.get(key);
                let (in_step, overdue) = self.now_in_step.get(key).copied().unwrap_or_default();
                StepStats {
                    scheme: scheme.clone(),
                    step: step.clone(),
                    basis: estimate.as_ref().map(|e| e.basis),
                    sample: estimate.as_ref().map_or(0, |e| e.sample),
                    own_stays: own.map_or(0, |c| c.stays),
                    own_left: own.map_or(0, |c| c.left),
                    median: estimate.as_ref().and_then(|e| e.median),
                    p80: estimate.as_ref().and_then(|e| e.p80),
                    p90: estimate.as_ref().and_then(|e| e.p90),
                    in_step,
                    overdue,
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::EventKind;
    use crate::test_support::shipped_lifecycle;
    use chrono_tz::UTC;

    const DAY: i64 = 86_400;
    /// The end of the history, in days.
    const NOW: i64 = 400;

    /// A history where every dossier of `scheme` (ids from `first`) is created in
    /// "instruction" on day `start` (seen that day) and moves to "commission"
    /// after `days[i]` days (`None`: still in instruction).
    fn history(h: &mut History, first: i64, scheme: &str, start: i64, days: &[Option<i64>]) {
        for (i, d) in days.iter().enumerate() {
            let id = first + i as i64;
            let (step, entered) = match d {
                Some(d) => ("commission", (start + d) * DAY),
                None => ("instruction", start * DAY),
            };
            h.dossier(id, Some(scheme), step, entered);
            h.event(
                id,
                EventKind::Created,
                Some("instruction"),
                start * DAY,
                start * DAY,
            );
            if let Some(d) = d {
                let at = (start + d) * DAY;
                h.event(id, EventKind::StepChanged, Some("commission"), at, at);
            }
        }
    }

    #[test]
    fn a_scheme_with_enough_history_answers_for_itself() {
        let mut h = History::new();
        let days: Vec<Option<i64>> = (1..=40).map(Some).collect();
        history(&mut h, 1, "Culture", 0, &days);
        let delays = h.finish(&shipped_lifecycle(), 30, NOW * DAY, UTC);
        let e = delays
            .estimate(Some("Culture"), "instruction", NOW * DAY, NOW * DAY)
            .unwrap();
        assert_eq!(e.basis, Basis::Scheme);
        assert_eq!(e.sample, 40);
        assert_eq!(e.median, Some(20 * DAY));
        // Ten days in: half of the 30 dossiers left (11..=40) go within 15 more days.
        let later = delays
            .estimate(Some("Culture"), "instruction", (NOW - 10) * DAY, NOW * DAY)
            .unwrap();
        assert_eq!(later.remaining, Some(15 * DAY));
        assert!(later.low.unwrap() < later.remaining.unwrap());
        assert!(later.high.unwrap() > later.remaining.unwrap());
        assert!(!later.overdue);
        assert!(
            delays
                .estimate(Some("Culture"), "instruction", (NOW - 37) * DAY, NOW * DAY)
                .unwrap()
                .overdue
        );
    }

    #[test]
    fn below_the_minimum_sample_the_step_then_the_lifecycle_answer() {
        let mut h = History::new();
        // A small scheme: 5 dossiers. A large one: 40.
        history(
            &mut h,
            1,
            "Petit",
            0,
            &[Some(2), Some(3), Some(4), Some(5), Some(6)],
        );
        let days: Vec<Option<i64>> = (1..=40).map(Some).collect();
        history(&mut h, 100, "Grand", 0, &days);
        let lifecycle = shipped_lifecycle();
        let delays = h.finish(&lifecycle, 30, NOW * DAY, UTC);
        let small = delays
            .estimate(Some("Petit"), "instruction", NOW * DAY, NOW * DAY)
            .unwrap();
        assert_eq!(small.basis, Basis::Step);
        assert_eq!(small.sample, 45);
        // No history at all for this step: the lifecycle's expected duration (6 weeks).
        let commission = delays
            .estimate(Some("Petit"), "depose", (NOW - 10) * DAY, NOW * DAY)
            .unwrap();
        assert_eq!(commission.basis, Basis::Lifecycle);
        assert_eq!(commission.median, Some(14 * DAY));
        assert_eq!(commission.remaining, Some(4 * DAY));
        assert!(
            delays
                .estimate(Some("Petit"), "cloture", NOW * DAY, NOW * DAY)
                .is_none()
        );
        // The table says which basis each line uses.
        let table = delays.table(&lifecycle);
        let line = |scheme: &str, step: &str| {
            table
                .iter()
                .find(|l| l.scheme == scheme && l.step == step)
                .unwrap()
                .clone()
        };
        assert_eq!(line("Petit", "instruction").basis, Some(Basis::Step));
        assert_eq!(line("Petit", "instruction").own_stays, 5);
        assert_eq!(line("Grand", "instruction").basis, Some(Basis::Scheme));
        // Everyone is in commission now: 45 there, none overdue against 5 weeks.
        assert_eq!(line("Grand", "commission").in_step, 40);
        assert_eq!(line("Grand", "commission").basis, Some(Basis::Lifecycle));
    }

    #[test]
    fn dossiers_still_in_the_step_are_censored_not_ignored() {
        let mut h = History::new();
        // 20 left quickly (5 days); 20 are still waiting after 100 days.
        let mut days = vec![Some(5); 20];
        days.extend([None; 20]);
        history(&mut h, 1, "Culture", NOW - 100, &days);
        let delays = h.finish(&shipped_lifecycle(), 30, NOW * DAY, UTC);
        let e = delays
            .estimate(Some("Culture"), "instruction", NOW * DAY, NOW * DAY)
            .unwrap();
        // Half left within 5 days; the mean of completed stays would say 5 days for
        // everyone, the estimator knows that the other half takes over 100.
        assert_eq!(e.median, Some(5 * DAY));
        assert_eq!(e.p80, None);
        let table = delays.table(&shipped_lifecycle());
        let line = table.iter().find(|l| l.step == "instruction").unwrap();
        assert_eq!((line.in_step, line.own_left), (20, 20));
    }

    /// Issue 19: a stay still open is censored at the last export that saw it,
    /// not at the end of the history: an export a month old says nothing of the
    /// month since.
    #[test]
    fn an_open_stay_is_censored_when_an_export_last_saw_it() {
        let lifecycle = shipped_lifecycle();
        // 40 dossiers leave instruction after 10 days; one is still there, seen
        // last on day 5 of its stay; the history ends on day 100.
        let days: Vec<Option<i64>> = (0..40).map(|_| Some(10)).chain([None]).collect();
        let at_end = |last_seen: Option<i64>| {
            let mut h = History::new();
            history(&mut h, 1, "Culture", 0, &days);
            if let Some(day) = last_seen {
                for id in 1..=41 {
                    h.last_seen(id, day * DAY);
                }
            }
            h.finish(&lifecycle, 30, 100 * DAY, UTC).by_step["instruction"].clone()
        };
        // Still at risk on day 10 when censored at the end: 1 in 41 never leaves.
        assert_eq!(at_end(None).quantile(0.99), None);
        // Censored on day 5, it no longer weighs on day 10: every stay ends then.
        assert_eq!(at_end(Some(5)).quantile(0.99), Some(10 * DAY));
    }

    /// A lifecycle with a Commission that sits on the 20th of each month, and
    /// a completeness check counted in business days.
    fn calendar_lifecycle() -> Lifecycle {
        let sessions: Vec<String> = (1..=12).map(|m| format!("\"2027-{m:02}-20\"")).collect();
        let text = format!(
            r#"
            [[step]]
            id = "complet"
            label = "Complet"
            order = 1
            counted_in = "business_days"
            expected_duration = "5d"
            [[step]]
            id = "commission"
            label = "Commission"
            order = 2
            expected_duration = "5w"
            [[step]]
            id = "accorde"
            label = "Accordé"
            order = 3
            final = true
            [[calendar]]
            step = "commission"
            sessions = [{}]
            lead_time = "10d"
            "#,
            sessions.join(", ")
        );
        let mut problems = crate::diag::Problems::default();
        Lifecycle::parse(std::path::Path::new("lc.toml"), &text, &mut problems)
            .unwrap_or_else(|| panic!("{problems}"))
    }

    fn instant(text: &str) -> i64 {
        chrono::DateTime::parse_from_rfc3339(text)
            .unwrap()
            .timestamp()
    }

    /// Issue 19: a step a calendar ends answers in sessions: the first session
    /// a dossier can reach, adjusted by the deferrals of the history; a dossier
    /// waiting for a session that has not sat is not stalled.
    #[test]
    fn a_step_that_ends_at_sessions_is_predicted_at_a_session() {
        let lc = calendar_lifecycle();
        let paris = chrono_tz::Europe::Paris;
        let mut h = History::new();
        // 60 dossiers enter on 1 February 2027 (reachable: 20 February); 50 are
        // voted then, 10 deferred to 20 March.
        let entered = instant("2027-02-01T00:00:00+01:00");
        for id in 1..=60 {
            let voted = if id <= 50 { "2027-02-20" } else { "2027-03-20" };
            let voted = instant(&format!("{voted}T00:00:00+01:00"));
            h.dossier(id, Some("Culture"), "accorde", voted);
            h.event(id, EventKind::Created, Some("commission"), entered, entered);
            h.event(
                id,
                EventKind::StepChanged,
                Some("accorde"),
                voted,
                voted + 3_600,
            );
        }
        let now = instant("2027-04-02T08:00:00+02:00");
        let delays = h.finish(&lc, 30, now, paris);
        // A dossier entered on 15 April: too late for 20 April (10 days' lead),
        // expected on 20 May, and 9 in 10 by then too (a deferral is rarer).
        let now = instant("2027-04-15T08:00:00+02:00");
        let e = delays
            .estimate(Some("Culture"), "commission", now - 3_600, now)
            .unwrap();
        assert!(e.sessions, "{e:?}");
        let p = e.predict(chrono::DateTime::from_timestamp(now, 0).unwrap(), paris);
        let date = |d: &str| Some(d.parse().unwrap());
        assert_eq!(p.expected, date("2027-05-20"), "{p:?}");
        assert_eq!(p.low, date("2027-05-20"));
        assert_eq!(p.high, date("2027-06-20"));
        // Not stalled while waiting for its first session, nor on its day; past it
        // (and the 90th percentile, the deferral's session), from when its outcome
        // would be recorded (a week and a day after it).
        let stalled = delays
            .stalled_from(
                Stall::Percentile(90),
                Some("Culture"),
                "commission",
                now - 3_600,
            )
            .unwrap();
        assert_eq!(stalled, instant("2027-06-28T00:00:00+02:00"));
        // Without history for the step, the next session it can reach, said as such.
        let empty = History::new().finish(&lc, 30, now, paris);
        let e = empty
            .estimate(None, "commission", now - 3_600, now)
            .unwrap();
        assert_eq!((e.basis, e.sessions), (Basis::Lifecycle, true));
        let p = e.predict(chrono::DateTime::from_timestamp(now, 0).unwrap(), paris);
        assert_eq!(p.expected, date("2027-05-20"));
    }

    /// Issue 19: a step counted in business days predicts by counting them.
    #[test]
    fn a_step_counted_in_business_days_skips_weekends_and_holidays() {
        let lc = calendar_lifecycle();
        let paris = chrono_tz::Europe::Paris;
        // Without history: five business days from Wednesday 5 May 2027 at 10:00
        // skip Ascension (Thursday 6 May) and the weekend: Thursday 13 May.
        let now = instant("2027-05-05T10:00:00+02:00");
        let delays = History::new().finish(&lc, 30, now, paris);
        let e = delays.estimate(None, "complet", now, now).unwrap();
        let p = e.predict(chrono::DateTime::from_timestamp(now, 0).unwrap(), paris);
        assert_eq!(p.expected, Some("2027-05-13".parse().unwrap()));
        assert_eq!(e.median, Some(8 * DAY));
    }

    /// Issue 19: on weekly exports, three stays seen early and leaving together
    /// would take a scheme's curve to zero at one day; its estimate falls back
    /// to every scheme's history rather than answer from three stays.
    #[test]
    fn a_curve_that_collapses_on_a_thin_risk_set_gives_way_to_a_broader_basis() {
        let mut h = History::new();
        let mut id = 0;
        let mut stay = |h: &mut History, scheme: &str, seen: i64, left: i64| {
            id += 1;
            h.dossier(id, Some(scheme), "commission", left * DAY);
            h.event(id, EventKind::Created, Some("instruction"), 0, seen * DAY);
            h.event(
                id,
                EventKind::StepChanged,
                Some("commission"),
                left * DAY,
                left * DAY,
            );
        };
        // "Culture": three stays seen at once that leave on day 1; 30 first seen on
        // day 5, that leave from day 20 on.
        for _ in 0..3 {
            stay(&mut h, "Culture", 0, 1);
        }
        for i in 0..30 {
            stay(&mut h, "Culture", 5, 20 + i);
        }
        // "Sport": 40 stays seen at once, leaving on days 10 to 49.
        for i in 0..40 {
            stay(&mut h, "Sport", 0, 10 + i);
        }
        let delays = h.finish(&shipped_lifecycle(), 30, NOW * DAY, UTC);
        let culture = &delays.by_scheme[&("Culture".to_owned(), "instruction".to_owned())];
        assert_eq!(
            culture.quantile(0.5),
            Some(DAY),
            "the scheme's own curve collapses"
        );
        let e = delays
            .estimate(Some("Culture"), "instruction", NOW * DAY, NOW * DAY)
            .unwrap();
        assert_eq!(e.basis, Basis::Step, "{e:?}");
        assert!(e.remaining.unwrap() > 10 * DAY, "{e:?}");
        // Ten days in, past the thin start, the scheme answers for itself.
        let later = delays
            .estimate(Some("Culture"), "instruction", (NOW - 10) * DAY, NOW * DAY)
            .unwrap();
        assert_eq!(later.basis, Basis::Scheme, "{later:?}");
    }
}
