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
//! estimate as dates is its [`Prediction`] (`prediction.rs`).

mod prediction;
pub(crate) mod survival;

pub use prediction::Prediction;

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use crate::lifecycle::Lifecycle;
use crate::model::EventKind;
use survival::{Curve, Sorted, Stay};

/// The bounds of an estimate's 80 % interval, and its middle.
const LOW: f64 = 0.1;
const MIDDLE: f64 = 0.5;
const HIGH: f64 = 0.9;

/// A dossier's stay in a step, while the history is read.
#[derive(Debug, Clone, Copy)]
struct Open {
    step: u16,
    /// When it entered the step, per the source when known (Unix seconds).
    entered: i64,
    /// When Alertissimo first saw it there.
    seen: i64,
}

impl Open {
    /// The stay from `entered` to `end`. A source's step dates are often days: a
    /// dossier seen at 08:00 that left "on that day" left at midnight, before it
    /// was seen. It was seen in the step, so its observation starts just before
    /// it left.
    fn stay(self, entered: i64, end: i64, left: bool) -> Stay {
        let time = end - entered;
        Stay {
            entry: (self.seen - entered).clamp(0, (time - 1).max(0)),
            time,
            left,
        }
    }
}

/// A stay as the history keeps it: 16 bytes, durations up to 68 years.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stayed {
    scheme: u32,
    entry: i32,
    time: i32,
    step: u16,
    left: bool,
}

impl Stayed {
    fn new(scheme: u32, step: u16, stay: Stay) -> Self {
        let short = |t: i64| i32::try_from(t).unwrap_or(if t < 0 { i32::MIN } else { i32::MAX });
        Self {
            scheme,
            entry: short(stay.entry),
            time: short(stay.time),
            step,
            left: stay.left,
        }
    }

    fn stay(self) -> Stay {
        Stay {
            entry: i64::from(self.entry),
            time: i64::from(self.time),
            left: self.left,
        }
    }
}

/// What the history keeps of a dossier.
#[derive(Debug, Clone, Copy, Default)]
struct Known {
    scheme: u32,
    /// Its current step, and when it entered it (the source may have corrected
    /// that date since the event).
    step: u16,
    entered: i64,
    present: bool,
    /// When an export last saw it (its connector's last applied import; 0:
    /// unknown, the end of the history).
    last_seen: i64,
    open: Option<Open>,
}

/// Strings numbered in the order they are first seen.
#[derive(Debug, Default)]
struct Interner {
    ids: HashMap<String, u32>,
    names: Vec<String>,
}

impl Interner {
    fn id(&mut self, name: &str) -> u32 {
        // A few dozen steps or schemes, asked for again and again: the last one, or
        // a short scan, costs less than hashing.
        if let Some(last) = self.names.last()
            && last == name
        {
            return self.names.len() as u32 - 1;
        }
        if self.names.len() <= 16 {
            if let Some(i) = self.names.iter().position(|n| n == name) {
                return i as u32;
            }
        } else if let Some(&id) = self.ids.get(name) {
            return id;
        }
        let id = self.names.len() as u32;
        self.ids.insert(name.to_owned(), id);
        self.names.push(name.to_owned());
        id
    }
}

/// The stays of every dossier in every step: fed the stored dossiers, then their
/// step events in the order they were recorded.
#[derive(Debug, Default)]
pub struct History {
    steps: Interner,
    schemes: Interner,
    /// By dossier row id.
    dossiers: Vec<Known>,
    /// Stays that ended.
    stays: Vec<Stayed>,
    /// By step: dossiers entering (+1) and leaving (−1) it, by month: how many
    /// were in each step over time.
    moves: Vec<Months>,
}

/// Counts by month, from the first month counted.
#[derive(Debug, Default)]
struct Months {
    first: i32,
    counts: Vec<i64>,
}

impl Months {
    /// The counts of `step`.
    fn of(moves: &mut Vec<Months>, step: u16) -> &mut Months {
        let step = usize::from(step);
        if moves.len() <= step {
            moves.resize_with(step + 1, Months::default);
        }
        &mut moves[step]
    }

    fn add(&mut self, month: i32, n: i64) {
        if self.counts.is_empty() {
            self.first = month;
        }
        if month < self.first {
            let before = usize::try_from(self.first - month).unwrap_or(0);
            self.counts.splice(0..0, std::iter::repeat_n(0, before));
            self.first = month;
        }
        let i = usize::try_from(month - self.first).unwrap_or(0);
        if self.counts.len() <= i {
            self.counts.resize(i + 1, 0);
        }
        self.counts[i] += n;
    }
}

/// The month of an instant (UTC): years × 12 + month − 1. Computed, not looked
/// up: millions of stays are counted.
fn month(t: i64) -> i32 {
    let (y, m, _) = crate::model::civil_from_days(t.div_euclid(86_400));
    i32::try_from(y * 12 + m - 1).unwrap_or(0)
}

impl History {
    /// An empty history.
    pub fn new() -> Self {
        Self::default()
    }

    fn known(&mut self, dossier: i64) -> &mut Known {
        let i = usize::try_from(dossier).unwrap_or(0);
        if self.dossiers.len() <= i {
            self.dossiers.resize(i + 1, Known::default());
        }
        &mut self.dossiers[i]
    }

    /// Makes room for dossiers whose row ids go up to `n` (they are dense), and
    /// their stays (a dossier goes through a few steps).
    pub(crate) fn reserve(&mut self, n: usize) {
        self.dossiers.reserve(n.saturating_sub(self.dossiers.len()));
        self.stays.reserve((4 * n).saturating_sub(self.stays.len()));
    }

    /// A stored dossier: its scheme, current step, and when it entered it (Unix
    /// seconds). It is taken to be in its source, until `History::absent` says
    /// otherwise.
    pub fn dossier(&mut self, dossier: i64, scheme: Option<&str>, step: &str, entered: i64) {
        let scheme = self.schemes.id(scheme.unwrap_or(""));
        let step = self.steps.id(step) as u16;
        let known = self.known(dossier);
        known.scheme = scheme;
        known.step = step;
        known.entered = entered;
        known.present = true;
    }

    /// When an export last saw a dossier still in its source: a stay still open
    /// is censored there, not at the end of the history (an export a week old
    /// says nothing of the week since).
    pub(crate) fn last_seen(&mut self, dossier: i64, at: i64) {
        self.known(dossier).last_seen = at;
    }

    /// A stored dossier that is no longer in its source.
    pub(crate) fn absent(&mut self, dossier: i64) {
        self.known(dossier).present = false;
    }

    fn close(&mut self, dossier: i64, at: i64, left: bool) {
        let known = self.known(dossier);
        let scheme = known.scheme;
        if let Some(open) = known.open.take() {
            self.stays.push(Stayed::new(
                scheme,
                open.step,
                open.stay(open.entered, at, left),
            ));
            let months = Months::of(&mut self.moves, open.step);
            months.add(month(open.entered), 1);
            months.add(month(at) + 1, -1);
        }
    }

    /// One stored event of a dossier: `occurred` is when it happened (per the
    /// source, when it gave a step date), `seen` when the import that noticed it
    /// started (Unix seconds). Events of one dossier come in the order recorded.
    pub fn event(
        &mut self,
        dossier: i64,
        kind: EventKind,
        to_step: Option<&str>,
        occurred: i64,
        seen: i64,
    ) {
        match kind {
            EventKind::Created | EventKind::StepChanged | EventKind::Reappeared => {
                // A dossier back after a gap: the stay before was closed when it went.
                if kind != EventKind::Reappeared {
                    self.close(dossier, occurred, true);
                }
                if let Some(step) = to_step {
                    let step = self.steps.id(step) as u16;
                    self.known(dossier).open = Some(Open {
                        step,
                        entered: occurred.min(seen),
                        seen,
                    });
                }
            }
            // No longer followed: all that is known is that it lasted so far.
            EventKind::Disappeared => self.close(dossier, occurred, false),
            _ => {}
        }
    }

    /// The estimates, once everything is read: the stays still open at `now` are
    /// censored there; final steps (which nobody leaves) have none.
    pub fn finish(mut self, lifecycle: &Lifecycle, min_sample: u64, now: i64) -> Delays {
        let in_step = self.close_open(now);
        let followed: Vec<bool> = self
            .steps
            .names
            .iter()
            .map(|n| lifecycle.step(n).is_some_and(|s| !s.is_final))
            .collect();
        let mut delays = Delays {
            min_sample,
            lifecycle: lifecycle
                .steps()
                .iter()
                .filter(|s| !s.is_final)
                .filter_map(|s| {
                    s.expected_duration
                        .map(|d| (s.id.clone(), i64::try_from(d.as_secs()).unwrap_or(i64::MAX)))
                })
                .collect(),
            occupancy: BTreeMap::new(),
            ..Delays::default()
        };
        delays.occupancy = self.occupancy(&followed, now);
        self.curves(&followed, &mut delays);
        self.now_in_step(in_step, &followed, &mut delays);
        delays
    }

    /// Censors at `now` the stays still open: (scheme, step, age) of each.
    fn close_open(&mut self, now: i64) -> Vec<(u32, u16, i64)> {
        let mut in_step = Vec::new();
        for known in &mut self.dossiers {
            let Some(open) = known.open.take() else {
                continue;
            };
            if !known.present {
                continue;
            }
            // A corrected source date for the current step wins.
            let entered = if open.step == known.step {
                known.entered
            } else {
                open.entered
            };
            let censored = match known.last_seen {
                0 => now,
                seen => seen.min(now).max(open.seen),
            };
            self.stays.push(Stayed::new(
                known.scheme,
                open.step,
                open.stay(entered, censored, false),
            ));
            Months::of(&mut self.moves, open.step).add(month(entered), 1);
            in_step.push((known.scheme, open.step, now - entered));
        }
        in_step
    }

    /// Dossiers in each followed step at the end of each month, up to now.
    fn occupancy(&self, followed: &[bool], now: i64) -> BTreeMap<String, Vec<(String, u64)>> {
        let last = month(now);
        let mut occupancy = BTreeMap::new();
        for (step, months) in self.moves.iter().enumerate() {
            if !followed[step] || months.counts.is_empty() {
                continue;
            }
            let mut series = Vec::new();
            let mut count = 0i64;
            for m in months.first..=last {
                let i = usize::try_from(m - months.first).unwrap_or(usize::MAX);
                count += months.counts.get(i).copied().unwrap_or(0);
                // Ten years at most: a step date typed "0226" would make centuries.
                if m > last - 120 {
                    series.push((
                        format!("{}-{:02}", m.div_euclid(12), m.rem_euclid(12) + 1),
                        count.max(0) as u64,
                    ));
                }
            }
            occupancy.insert(self.steps.names[step].clone(), series);
        }
        occupancy
    }

    /// Each followed step's curve, overall and per scheme.
    fn curves(&mut self, followed: &[bool], delays: &mut Delays) {
        // Each scheme's stays in each step, sorted; a step's schemes together are
        // their merge.
        let schemes = self.schemes.names.len().max(1);
        let mut groups = vec![Sorted::default(); self.steps.names.len() * schemes];
        for s in std::mem::take(&mut self.stays) {
            if followed[usize::from(s.step)] {
                groups[usize::from(s.step) * schemes + s.scheme as usize].push(&s.stay());
            }
        }
        for g in &mut groups {
            g.sort();
        }
        for (step, parts) in groups.chunks(schemes).enumerate() {
            if parts.iter().all(Sorted::is_empty) {
                continue;
            }
            let step_name = self.steps.names[step].clone();
            for (scheme, part) in parts.iter().enumerate().filter(|(_, p)| !p.is_empty()) {
                delays.by_scheme.insert(
                    (self.schemes.names[scheme].clone(), step_name.clone()),
                    Curve::of(part),
                );
            }
            delays
                .by_step
                .insert(step_name, Curve::of(&Sorted::merge(parts)));
        }
    }

    /// How many dossiers are in each (scheme, followed step) now, and how many of
    /// them overdue: each group's threshold computed once.
    fn now_in_step(
        &self,
        mut in_step: Vec<(u32, u16, i64)>,
        followed: &[bool],
        delays: &mut Delays,
    ) {
        in_step.retain(|s| followed[usize::from(s.1)]);
        in_step.sort_unstable_by_key(|s| (s.0, s.1));
        for group in in_step.chunk_by(|a, b| (a.0, a.1) == (b.0, b.1)) {
            let (scheme, step) = (
                self.schemes.names[group[0].0 as usize].clone(),
                self.steps.names[usize::from(group[0].1)].clone(),
            );
            let threshold = delays.overdue_after(Some(&scheme), &step);
            let overdue = group
                .iter()
                .filter(|s| threshold.is_some_and(|t| s.2 > t))
                .count();
            delays
                .now_in_step
                .insert((scheme, step), (group.len() as u64, overdue as u64));
        }
    }
}

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
    /// The same as dates, once the instant and the zone are known
    /// ([`Estimate::dated`]): what messages quote as `delay.dates.*` (`none`
    /// before, so that a template can test it).
    pub dates: Option<Prediction>,
}

/// The estimates of every scheme and step, ready to answer for one dossier.
#[derive(Debug, Clone, Default)]
pub struct Delays {
    min_sample: u64,
    /// The lifecycle's expected durations of the steps that are not final.
    lifecycle: BTreeMap<String, i64>,
    /// By (scheme, step); scheme "" for dossiers without one.
    pub by_scheme: BTreeMap<(String, String), Curve>,
    /// By step, every scheme together.
    pub by_step: BTreeMap<String, Curve>,
    /// By (scheme, step): the dossiers in it at the end of the history, and how
    /// many of them are overdue.
    pub now_in_step: BTreeMap<(String, String), (u64, u64)>,
    /// By step that is not final: the dossiers in it during each month
    /// (`YYYY-MM`), from its first (ten years ago at most) to now.
    pub occupancy: BTreeMap<String, Vec<(String, u64)>>,
}

impl Delays {
    /// Whether a curve has enough stays to answer, and reaches its median.
    fn usable(&self, curve: &Curve) -> bool {
        curve.stays >= self.min_sample && curve.quantile(MIDDLE).is_some()
    }

    /// The estimate for a dossier of `scheme` that has spent `elapsed` seconds in
    /// `step`; `None` for a final step, or one without history or expected duration.
    pub fn estimate(&self, scheme: Option<&str>, step: &str, elapsed: i64) -> Option<Estimate> {
        let elapsed = elapsed.max(0);
        // The scheme's own history, else every scheme's: the first whose curve
        // does not answer this dossier's median or 90 % bound from too thin a
        // risk set (the stall thresholds rest on them too).
        let own = self
            .by_scheme
            .get(&(scheme.unwrap_or("").to_owned(), step.to_owned()))
            .map(|c| (Basis::Scheme, c));
        let pooled = self.by_step.get(step).map(|c| (Basis::Step, c));
        let answers = |c: &Curve| {
            self.usable(c) && !c.doubtful(elapsed, MIDDLE) && !c.doubtful(elapsed, HIGH)
        };
        if let Some((basis, curve)) = [own, pooled]
            .into_iter()
            .flatten()
            .find(|(_, c)| answers(c))
        {
            let p90 = curve.quantile(HIGH);
            return Some(Estimate {
                basis,
                sample: curve.stays,
                median: curve.quantile(MIDDLE),
                p80: curve.quantile(0.8),
                p90,
                elapsed,
                remaining: curve.quantile_after(elapsed, MIDDLE),
                low: curve.quantile_after(elapsed, LOW),
                high: curve.quantile_after(elapsed, HIGH),
                // When too many dossiers are still waiting for p90 to be known, none is
                // called overdue.
                overdue: p90.is_some_and(|p| elapsed > p),
                dates: None,
            });
        }
        let expected = *self.lifecycle.get(step)?;
        Some(Estimate {
            basis: Basis::Lifecycle,
            sample: 0,
            median: Some(expected),
            p80: None,
            p90: None,
            elapsed,
            remaining: Some((expected - elapsed).max(0)),
            low: None,
            high: None,
            overdue: elapsed > expected,
            dates: None,
        })
    }

    /// How long a dossier of `scheme` may stay in `step` before it is overdue: the
    /// 90th percentile of the stays its estimate rests on, or the lifecycle's
    /// expected duration. `None` when neither is known (when too many dossiers
    /// are still waiting for the 90th percentile to be known, none is overdue).
    pub(crate) fn overdue_after(&self, scheme: Option<&str>, step: &str) -> Option<i64> {
        let e = self.estimate(scheme, step, 0)?;
        match e.basis {
            Basis::Lifecycle => e.median,
            Basis::Scheme | Basis::Step => e.p90,
        }
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
                let estimate = self.estimate(Some(scheme), step, 0);
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
    use crate::test_support::shipped_lifecycle;

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
        let delays = h.finish(&shipped_lifecycle(), 30, NOW * DAY);
        let e = delays.estimate(Some("Culture"), "instruction", 0).unwrap();
        assert_eq!(e.basis, Basis::Scheme);
        assert_eq!(e.sample, 40);
        assert_eq!(e.median, Some(20 * DAY));
        // Ten days in: half of the 30 dossiers left (11..=40) go within 15 more days.
        let later = delays
            .estimate(Some("Culture"), "instruction", 10 * DAY)
            .unwrap();
        assert_eq!(later.remaining, Some(15 * DAY));
        assert!(later.low.unwrap() < later.remaining.unwrap());
        assert!(later.high.unwrap() > later.remaining.unwrap());
        assert!(!later.overdue);
        assert!(
            delays
                .estimate(Some("Culture"), "instruction", 37 * DAY)
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
        let delays = h.finish(&lifecycle, 30, NOW * DAY);
        let small = delays.estimate(Some("Petit"), "instruction", 0).unwrap();
        assert_eq!(small.basis, Basis::Step);
        assert_eq!(small.sample, 45);
        // No history at all for this step: the lifecycle's expected duration (6 weeks).
        let commission = delays.estimate(Some("Petit"), "depose", 10 * DAY).unwrap();
        assert_eq!(commission.basis, Basis::Lifecycle);
        assert_eq!(commission.median, Some(14 * DAY));
        assert_eq!(commission.remaining, Some(4 * DAY));
        assert!(delays.estimate(Some("Petit"), "cloture", 0).is_none());
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
        let delays = h.finish(&shipped_lifecycle(), 30, NOW * DAY);
        let e = delays.estimate(Some("Culture"), "instruction", 0).unwrap();
        // Half left within 5 days; the mean of completed stays would say 5 days for
        // everyone, the estimator knows that the other half takes over 100.
        assert_eq!(e.median, Some(5 * DAY));
        assert_eq!(e.p80, None);
        let table = delays.table(&shipped_lifecycle());
        let line = table.iter().find(|l| l.step == "instruction").unwrap();
        assert_eq!((line.in_step, line.own_left), (20, 20));
    }

    #[test]
    fn months_are_computed_as_chrono_reads_them() {
        use chrono::Datelike;
        let mut t = -3 * 365 * DAY;
        while t < 80 * 365 * DAY {
            let expected = chrono::DateTime::from_timestamp(t, 0).unwrap();
            assert_eq!(
                month(t),
                expected.year() * 12 + expected.month0() as i32,
                "{expected}"
            );
            t += 86_399;
        }
        let mut m = Months::default();
        m.add(100, 1);
        m.add(98, 2);
        m.add(103, -1);
        assert_eq!((m.first, m.counts), (98, vec![2, 0, 1, 0, 0, -1]));
    }

    #[test]
    fn a_baseline_enters_late_and_a_disappearance_censors() {
        let mut h = History::new();
        // Seen first on day 100, in instruction since day 40 (the source's date).
        h.dossier(1, None, "commission", 130 * DAY);
        h.event(
            1,
            EventKind::Created,
            Some("instruction"),
            40 * DAY,
            100 * DAY,
        );
        h.event(
            1,
            EventKind::StepChanged,
            Some("commission"),
            130 * DAY,
            131 * DAY,
        );
        // Gone on day 120 while in instruction since day 110.
        h.dossier(2, None, "instruction", 110 * DAY);
        h.absent(2);
        h.event(
            2,
            EventKind::Created,
            Some("instruction"),
            110 * DAY,
            110 * DAY,
        );
        h.event(2, EventKind::Disappeared, None, 120 * DAY, 120 * DAY);
        let stays: Vec<(&str, Stay)> = h
            .stays
            .iter()
            .map(|s| (h.steps.names[usize::from(s.step)].as_str(), s.stay()))
            .collect();
        assert_eq!(
            stays,
            [
                (
                    "instruction",
                    Stay {
                        entry: 60 * DAY,
                        time: 90 * DAY,
                        left: true
                    }
                ),
                (
                    "instruction",
                    Stay {
                        entry: 0,
                        time: 10 * DAY,
                        left: false
                    }
                ),
            ]
        );
        // The dossier gone is not counted as in its step now.
        let delays = h.finish(&shipped_lifecycle(), 1, 140 * DAY);
        assert_eq!(delays.now_in_step.values().map(|n| n.0).sum::<u64>(), 1);
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
            h.finish(&lifecycle, 30, 100 * DAY).by_step["instruction"].clone()
        };
        // Still at risk on day 10 when censored at the end: 1 in 41 never leaves.
        assert_eq!(at_end(None).quantile(0.99), None);
        // Censored on day 5, it no longer weighs on day 10: every stay ends then.
        assert_eq!(at_end(Some(5)).quantile(0.99), Some(10 * DAY));
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
        let delays = h.finish(&shipped_lifecycle(), 30, NOW * DAY);
        let culture = &delays.by_scheme[&("Culture".to_owned(), "instruction".to_owned())];
        assert_eq!(
            culture.quantile(0.5),
            Some(DAY),
            "the scheme's own curve collapses"
        );
        let e = delays.estimate(Some("Culture"), "instruction", 0).unwrap();
        assert_eq!(e.basis, Basis::Step, "{e:?}");
        assert!(e.remaining.unwrap() > 10 * DAY, "{e:?}");
        // Ten days in, past the thin start, the scheme answers for itself.
        let later = delays
            .estimate(Some("Culture"), "instruction", 10 * DAY)
            .unwrap();
        assert_eq!(later.basis, Basis::Scheme, "{later:?}");
    }
}
