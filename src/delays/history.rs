//! The history the estimates learn from: the stored dossiers and their step
//! events, folded into stays in steps, then into one curve per scheme and step
//! on the step's own time axis (`axis.rs`).
//!
//! Pure: the store streams rows in, `now` is an argument.

use std::collections::{BTreeMap, HashMap};

use chrono_tz::Tz;

use super::Delays;
use super::axis::Axis;
use super::survival::{Curve, Sorted, Stay};
use crate::lifecycle::Lifecycle;
use crate::model::EventKind;

/// A dossier's stay in a step, while the history is read.
#[derive(Debug, Clone, Copy)]
struct Open {
    step: u16,
    /// When it entered the step, per the source when known (Unix seconds).
    entered: i64,
    /// When Alertissimo first saw it there.
    seen: i64,
}

/// A stay as the history keeps it (24 bytes): when it entered the step, and
/// when it was first seen there and when it ended, after that (up to 68 years).
/// It is read on its step's time axis once the history is complete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stayed {
    entered: i64,
    seen: i32,
    end: i32,
    scheme: u32,
    step: u16,
    left: bool,
}

impl Stayed {
    fn new(scheme: u32, step: u16, entered: i64, seen: i64, end: i64, left: bool) -> Self {
        let short = |t: i64| i32::try_from(t).unwrap_or(if t < 0 { i32::MIN } else { i32::MAX });
        Self {
            entered,
            seen: short(seen - entered),
            end: short(end - entered),
            scheme,
            step,
            left,
        }
    }

    /// The stay on `axis`.
    fn on(self, axis: Axis<'_>) -> Stay {
        axis.stay(
            self.entered,
            self.entered + i64::from(self.seen),
            self.entered + i64::from(self.end),
            self.left,
        )
    }
}

/// When the import that noticed an event started, and when its connector's
/// export before it was taken (Unix seconds; `None` for a first import, or
/// when unknown).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seen {
    /// When the import started.
    pub at: i64,
    /// When the export before it was taken.
    pub since: Option<i64>,
}

impl From<i64> for Seen {
    fn from(at: i64) -> Self {
        Self { at, since: None }
    }
}

/// How close to its import's start an event's date must be to be the import's
/// own date (the source gave none), in seconds.
const UNDATED: i64 = 120;

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
                open.entered,
                open.seen,
                at,
                left,
            ));
            let months = Months::of(&mut self.moves, open.step);
            months.add(month(open.entered), 1);
            months.add(month(at) + 1, -1);
        }
    }

    /// One stored event of a dossier: `occurred` is when it happened (per the
    /// source, when it gave a step date), `seen` when the import that noticed it
    /// started (Unix seconds), and when the export before it was taken. Events
    /// of one dossier come in the order recorded.
    ///
    /// A source without step dates leaves a change dated when an import
    /// noticed it: it happened between that export and the one before, so it
    /// is put midway, for the stay it ends as for the one it begins; a
    /// disappearance is censored at the last export that saw the dossier.
    pub fn event(
        &mut self,
        dossier: i64,
        kind: EventKind,
        to_step: Option<&str>,
        occurred: i64,
        seen: impl Into<Seen>,
    ) {
        let Seen { at: seen, since } = seen.into();
        let between = since.filter(|&s| s < seen && (occurred - seen).abs() <= UNDATED);
        let occurred = match (kind, between) {
            (EventKind::Disappeared, Some(since)) => since,
            (_, Some(since)) => since + (seen - since) / 2,
            (_, None) => occurred,
        };
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
    /// censored there; final steps (which nobody leaves) have none. Days are
    /// those of `tz`, the Region's zone.
    pub fn finish(mut self, lifecycle: &Lifecycle, min_sample: u64, now: i64, tz: Tz) -> Delays {
        let in_step = self.close_open(now);
        let followed: Vec<bool> = self
            .steps
            .names
            .iter()
            .map(|n| lifecycle.step(n).is_some_and(|s| !s.is_final))
            .collect();
        let mut delays = Delays::new(lifecycle, min_sample, now, tz);
        delays.occupancy = self.occupancy(&followed, now);
        self.curves(&followed, &mut delays);
        self.now_in_step(in_step, &followed, &mut delays);
        delays
    }

    /// Censors at `now` the stays still open: (scheme, step, entered) of each.
    fn close_open(&mut self, now: i64) -> Vec<(u32, u16, i64)> {
        let mut in_step = Vec::new();
        for known in &mut self.dossiers {
            let Some(open) = known.open.take() else {
                continue;
            };
            if !known.present {
                continue;
            }
            // A corrected source date for the current step wins (the stored date
            // of an undated step is when it was noticed: the event's is better).
            let entered = if open.step == known.step && (known.entered - open.seen).abs() > UNDATED
            {
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
                entered,
                open.seen,
                censored,
                false,
            ));
            Months::of(&mut self.moves, open.step).add(month(entered), 1);
            in_step.push((known.scheme, open.step, entered));
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

    /// Each followed step's curve, overall and per scheme, on the step's axis;
    /// and for a step that ends at sessions, its curves in sessions too.
    fn curves(&mut self, followed: &[bool], delays: &mut Delays) {
        // Each scheme's stays in each step, sorted; a step's schemes together are
        // their merge.
        let schemes = self.schemes.names.len().max(1);
        let groups = self.steps.names.len() * schemes;
        let (mut timed, mut sessions) = (
            vec![Sorted::default(); groups],
            vec![Sorted::default(); groups],
        );
        let axes: Vec<Axis<'_>> = self.steps.names.iter().map(|n| delays.axis(n)).collect();
        // The sessions of each (step, scheme), looked up once.
        let sittings: Vec<Option<&crate::calendar::Sittings>> = (0..groups)
            .map(|g| {
                let step = &self.steps.names[g / schemes];
                let scheme = self.schemes.names.get(g % schemes).map(String::as_str);
                delays
                    .lifecycle
                    .sittings(step, scheme.filter(|s| !s.is_empty()))
            })
            .collect();
        for s in std::mem::take(&mut self.stays) {
            let step = usize::from(s.step);
            if !followed[step] {
                continue;
            }
            let g = step * schemes + s.scheme as usize;
            timed[g].push(&s.on(axes[step]));
            if let Some(sittings) = sittings[g] {
                sessions[g].push(&s.on(Axis::Sessions(sittings, &delays.zone)));
            }
        }
        for g in timed.iter_mut().chain(&mut sessions) {
            g.sort();
        }
        for (on_sessions, groups) in [(false, timed), (true, sessions)] {
            for (step, parts) in groups.chunks(schemes).enumerate() {
                if parts.iter().all(Sorted::is_empty) {
                    continue;
                }
                let step_name = self.steps.names[step].clone();
                let (by_scheme, by_step) = delays.curves_mut(on_sessions);
                for (scheme, part) in parts.iter().enumerate().filter(|(_, p)| !p.is_empty()) {
                    by_scheme.insert(
                        (self.schemes.names[scheme].clone(), step_name.clone()),
                        Curve::of(part),
                    );
                }
                by_step.insert(step_name, Curve::of(&Sorted::merge(parts)));
            }
        }
    }

    /// How many dossiers are in each (scheme, followed step) now, and how many of
    /// them overdue.
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
            let now = delays.at;
            let past_p90 = |entered: i64| {
                delays
                    .estimate(Some(&scheme), &step, entered, entered)
                    .and_then(|e| e.past_p90)
            };
            // Counted in days, every dossier of the group has the same threshold,
            // computed once; in business days or sessions, it depends on the entry.
            let same = matches!(delays.axis(&step), Axis::Days(_))
                && delays.lifecycle.sittings(&step, Some(&scheme)).is_none();
            let threshold = same.then(|| past_p90(now).map(|t| t - now)).flatten();
            let overdue = group
                .iter()
                .filter(|s| {
                    if same {
                        threshold.is_some_and(|t| now >= s.2.saturating_add(t))
                    } else {
                        past_p90(s.2).is_some_and(|t| now >= t)
                    }
                })
                .count();
            delays
                .now_in_step
                .insert((scheme, step), (group.len() as u64, overdue as u64));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::shipped_lifecycle;

    const DAY: i64 = 86_400;

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
        let utc = crate::calendar::Zone::new(chrono_tz::UTC);
        let stays: Vec<(&str, Stay)> = h
            .stays
            .iter()
            .map(|s| {
                (
                    h.steps.names[usize::from(s.step)].as_str(),
                    s.on(Axis::Days(&utc)),
                )
            })
            .collect();
        assert_eq!(
            stays,
            [
                (
                    "instruction",
                    Stay {
                        entry: 60 * DAY - 1,
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
        let delays = h.finish(&shipped_lifecycle(), 1, 140 * DAY, chrono_tz::UTC);
        assert_eq!(delays.now_in_step.values().map(|n| n.0).sum::<u64>(), 1);
    }

    /// Issue 19: a source without step dates: a change an export found
    /// happened since the export before, and is put midway; a disappearance is
    /// censored at the last export that saw the dossier.
    #[test]
    fn an_undated_change_is_put_between_the_two_exports() {
        let week = 7 * DAY;
        let seen = |at: i64, since: Option<i64>| Seen { at, since };
        let mut h = History::new();
        // Noticed in instruction by the export of week 1 (the one before: week 0),
        // out of it by the export of week 3 (the one before: week 2).
        h.dossier(1, None, "commission", 3 * week);
        h.event(
            1,
            EventKind::Created,
            Some("instruction"),
            week,
            seen(week, Some(0)),
        );
        h.event(
            1,
            EventKind::StepChanged,
            Some("commission"),
            3 * week,
            seen(3 * week, Some(2 * week)),
        );
        // Seen in instruction at week 1, gone from the source by week 3.
        h.dossier(2, None, "instruction", week);
        h.absent(2);
        h.event(
            2,
            EventKind::Created,
            Some("instruction"),
            week,
            seen(week, Some(0)),
        );
        h.event(
            2,
            EventKind::Disappeared,
            None,
            3 * week,
            seen(3 * week, Some(2 * week)),
        );
        // A source date is kept as it is.
        h.dossier(3, None, "commission", 3 * week);
        h.event(
            3,
            EventKind::Created,
            Some("instruction"),
            DAY,
            seen(week, Some(0)),
        );
        h.event(
            3,
            EventKind::StepChanged,
            Some("commission"),
            2 * week + DAY,
            seen(3 * week, Some(2 * week)),
        );
        let utc = crate::calendar::Zone::new(chrono_tz::UTC);
        let axis = Axis::Days(&utc);
        let stays: Vec<(i64, Stay)> = h.stays.iter().map(|s| (s.entered, s.on(axis))).collect();
        let half = week / 2;
        assert_eq!(stays[0].0, half);
        assert_eq!(
            stays[0].1,
            Stay {
                entry: week - half,
                time: 2 * week,
                left: true
            }
        );
        assert_eq!(
            stays[1].1,
            Stay {
                entry: week - half,
                time: 2 * week - half,
                left: false
            }
        );
        assert_eq!(stays[2].0, DAY);
        assert_eq!(stays[2].1.time, 2 * week);
    }
}
