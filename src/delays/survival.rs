//! The Kaplan–Meier estimator of how long dossiers stay in a step, with right
//! censoring (dossiers still in the step) and delayed entry (dossiers first seen
//! when they had already spent some time in it).
//!
//! Pure arithmetic over durations in seconds: no clock, no I/O.
//!
//! A dossier counts in the risk set at duration `t` when it was under observation
//! then: `entry < t <= time`. Its `entry` is the time it had already spent in the
//! step when Alertissimo first saw it there (0 when the source's step date is the
//! moment it was seen); without this, the dossiers found in a step by the first
//! import, which are those that stay long, would make every step look slow.

/// One dossier's stay in a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stay {
    /// Seconds already spent in the step when first observed there.
    pub entry: i64,
    /// Seconds in the step when it left it (`left`) or when observation stopped.
    pub time: i64,
    /// Whether it left the step at `time` (false: still in it, or no longer followed).
    pub left: bool,
}

/// A survival curve: the share of dossiers still in the step after each duration.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Curve {
    /// Durations (seconds) at which some dossier left, increasing.
    times: Vec<i64>,
    /// The estimated share still in the step just after each of them.
    survival: Vec<f64>,
    /// How many stays were at risk at each of them.
    at_risk: Vec<u32>,
    /// The first point where the risk set is at its fullest.
    peak: usize,
    /// How many stays were observed.
    pub stays: u64,
    /// How many of them ended (left the step).
    pub left: u64,
}

/// The shortest risk set an event time may have to count: below, one dossier
/// would move the whole curve (stays seen late make the first durations thin).
const MIN_AT_RISK: u64 = 3;

/// The shortest risk set a point of the curve may have to answer for a dossier,
/// before the risk set is at its fullest: on weekly exports, the first days of a
/// short step rest on the few stays seen early, and three of them leaving
/// together would take the curve to zero. Below, the estimate falls back to a
/// broader basis.
pub(crate) const MIN_RELIABLE: u64 = 10;

/// Stays as the estimator reads them: when each was first seen in the step, when
/// it stopped being followed, and when those that left did, each list sorted (in
/// seconds, up to 68 years: millions are held at once).
#[derive(Debug, Clone, Default)]
pub(crate) struct Sorted {
    entries: Vec<i32>,
    exits: Vec<i32>,
    events: Vec<i32>,
}

impl Sorted {
    /// Adds a stay (then [`Sorted::sort`]). A stay whose times are negative or
    /// shorter than its entry is left out (a source date in the future).
    pub(crate) fn push(&mut self, s: &Stay) {
        if s.entry < 0 || s.time < s.entry || s.time <= 0 {
            return;
        }
        let short = |t: i64| i32::try_from(t).unwrap_or(i32::MAX);
        self.entries.push(short(s.entry));
        self.exits.push(short(s.time));
        if s.left {
            self.events.push(short(s.time));
        }
    }

    /// Sorts what was pushed.
    pub(crate) fn sort(&mut self) {
        self.entries.sort_unstable();
        self.exits.sort_unstable();
        self.events.sort_unstable();
    }

    /// Whether no stay was kept.
    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Every part's stays together. The parts are sorted runs, which the sort
    /// merges rather than sorting again.
    pub(crate) fn merge(parts: &[Sorted]) -> Self {
        let join = |list: fn(&Sorted) -> &Vec<i32>| {
            let mut all: Vec<i32> = Vec::with_capacity(parts.iter().map(|p| list(p).len()).sum());
            for p in parts {
                all.extend_from_slice(list(p));
            }
            all.sort();
            all
        };
        Self {
            entries: join(|p| &p.entries),
            exits: join(|p| &p.exits),
            events: join(|p| &p.events),
        }
    }
}

impl Curve {
    /// Estimates the curve from stays (any order). Stays whose times are negative
    /// or shorter than their entry are left out (a source date in the future).
    #[cfg(test)]
    pub(crate) fn estimate<S: std::borrow::Borrow<Stay>>(
        stays: impl IntoIterator<Item = S>,
    ) -> Self {
        let mut sorted = Sorted::default();
        for s in stays {
            sorted.push(s.borrow());
        }
        sorted.sort();
        Self::of(&sorted)
    }

    /// The curve of sorted stays.
    pub(crate) fn of(sorted: &Sorted) -> Self {
        let Sorted {
            entries,
            exits,
            events,
        } = sorted;
        let mut curve = Self {
            stays: entries.len() as u64,
            left: events.len() as u64,
            ..Self::default()
        };
        let (mut e, mut x, mut s) = (0usize, 0usize, 1.0f64);
        let mut i = 0;
        while i < events.len() {
            let t = events[i];
            let mut deaths = 0u64;
            while i < events.len() && events[i] == t {
                deaths += 1;
                i += 1;
            }
            // At risk at t: entered before t, not yet gone before t.
            while e < entries.len() && entries[e] < t {
                e += 1;
            }
            while x < exits.len() && exits[x] < t {
                x += 1;
            }
            let at_risk = (e - x) as u64;
            if at_risk < MIN_AT_RISK.max(deaths) {
                continue;
            }
            s *= 1.0 - deaths as f64 / at_risk as f64;
            curve.times.push(i64::from(t));
            curve.survival.push(s);
            let at_risk = u32::try_from(at_risk).unwrap_or(u32::MAX);
            if curve
                .at_risk
                .get(curve.peak)
                .is_none_or(|&most| at_risk > most)
            {
                curve.peak = curve.at_risk.len();
            }
            curve.at_risk.push(at_risk);
        }
        curve
    }

    /// The share still in the step after `t` seconds.
    pub(crate) fn survival(&self, t: i64) -> f64 {
        match self.times.partition_point(|&x| x <= t) {
            0 => 1.0,
            n => self.survival[n - 1],
        }
    }

    /// The duration by which a share `q` (0.5 for the median) of dossiers left the
    /// step; `None` when the observations do not reach it.
    pub(crate) fn quantile(&self, q: f64) -> Option<i64> {
        self.quantile_after(0, q)
    }

    /// Whether the point that answers [`Curve::quantile_after`] for `elapsed`
    /// and `q` is too thin to trust: before the risk set is at its fullest, and
    /// resting on fewer than [`MIN_RELIABLE`] stays. (The tail thins as stays
    /// end, which is no reason to doubt it; an answer the observations do not
    /// reach is no answer, not a doubtful one.)
    pub(crate) fn doubtful(&self, elapsed: i64, q: f64) -> bool {
        let Some(further) = self.quantile_after(elapsed, q) else {
            return false;
        };
        let at = self.times.partition_point(|&t| t < elapsed + further);
        at < self.peak && u64::from(self.at_risk.get(at).copied().unwrap_or(0)) < MIN_RELIABLE
    }

    /// For a dossier already `elapsed` seconds in the step: the further seconds by
    /// which it leaves with probability `q`, from the curve conditioned on having
    /// stayed that long. `None` when the observations do not reach it.
    pub(crate) fn quantile_after(&self, elapsed: i64, q: f64) -> Option<i64> {
        let base = self.survival(elapsed);
        if base <= 0.0 {
            return None;
        }
        // A small tolerance: 1 - 0.8 is not exactly 0.2 in floating point.
        let target = (1.0 - q) * base + 1e-12;
        // The curve does not rise: the first point at or below the target is found
        // by halving.
        let from = self.times.partition_point(|&x| x <= elapsed);
        let at = from + self.survival[from..].partition_point(|&s| s > target);
        self.times.get(at).map(|t| t - elapsed)
    }

    /// [`Curve::quantile_after`], or past the longest stay that ended, the
    /// curve's tail continued at the constant rate that brought it there (the
    /// share still in the step falling as `S(t) = S(last) · e^(−λ(t − last))`,
    /// `λ = −ln S(last) / last`). The flag says the answer was extrapolated.
    /// `None` when nobody ever left.
    pub(crate) fn quantile_beyond(&self, elapsed: i64, q: f64) -> Option<(i64, bool)> {
        if let Some(further) = self.quantile_after(elapsed, q) {
            return Some((further, false));
        }
        let (&last, &at_last) = (self.times.last()?, self.survival.last()?);
        if last <= 0 || at_last >= 1.0 {
            return None;
        }
        // At least some of them never leave in the data: the rate is bounded below
        // by what the tail did, however slow.
        let rate = -at_last.max(1e-9).ln() / last as f64;
        let from = elapsed.max(last);
        let already = (from - elapsed) as f64;
        // Those still in at `from` leave at `rate`: the further time by which a
        // share q of those still in at `elapsed` left.
        let at_from = at_last * (-rate * (from - last) as f64).exp();
        let start = if elapsed >= last {
            at_from
        } else {
            self.survival(elapsed)
        };
        let target = start.max(1e-12) * (1.0 - q);
        let further = if at_from <= target {
            already
        } else {
            already + (at_from / target).ln() / rate
        };
        Some((further.min(i64::MAX as f64 / 2.0) as i64, true))
    }

    /// The points of the curve, for charts: `(seconds, share still in the step)`.
    pub(crate) fn points(&self) -> impl Iterator<Item = (i64, f64)> + '_ {
        self.times
            .iter()
            .copied()
            .zip(self.survival.iter().copied())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400;

    fn left(days: i64) -> Stay {
        Stay {
            entry: 0,
            time: days * DAY,
            left: true,
        }
    }

    fn still(days: i64) -> Stay {
        Stay {
            entry: 0,
            time: days * DAY,
            left: false,
        }
    }

    fn close(a: f64, b: f64) {
        assert!((a - b).abs() < 1e-9, "{a} != {b}");
    }

    #[test]
    fn without_censoring_it_is_the_empirical_distribution() {
        let stays: Vec<Stay> = (1..=10).map(left).collect();
        let c = Curve::estimate(&stays);
        // The risk set must hold 3 dossiers: the last two event times do not count.
        close(c.survival(DAY), 0.9);
        close(c.survival(5 * DAY), 0.5);
        close(c.survival(8 * DAY), 0.2);
        assert_eq!(c.quantile(0.5), Some(5 * DAY));
        assert_eq!(c.quantile(0.8), Some(8 * DAY));
        assert_eq!(c.quantile(0.9), None);
        assert_eq!((c.stays, c.left), (10, 10));
    }

    #[test]
    fn censoring_and_ties_by_hand() {
        // Times (days): 2, 3+, 4, 4, 5+, 6, 7+, 8, 9, 10 ("+" = still in the step).
        let stays = [
            left(2),
            still(3),
            left(4),
            left(4),
            still(5),
            left(6),
            still(7),
            left(8),
            left(9),
            left(10),
        ];
        let c = Curve::estimate(stays);
        // t=2: 10 at risk, 1 leaves: 0.9.
        close(c.survival(2 * DAY), 0.9);
        // t=4: 8 at risk (3 was censored), 2 leave: 0.9 * 6/8 = 0.675.
        close(c.survival(4 * DAY), 0.675);
        // t=6: 5 at risk, 1 leaves: 0.675 * 4/5 = 0.54.
        close(c.survival(6 * DAY), 0.54);
        // t=8: 3 at risk, 1 leaves: 0.54 * 2/3 = 0.36.
        close(c.survival(8 * DAY), 0.36);
        // t=9 and t=10: fewer than 3 at risk, left out.
        close(c.survival(10 * DAY), 0.36);
        // 0.54 is still above a half: the median is 8 days, where the median of the
        // completed stays alone (2, 4, 4, 6, 8, 9, 10) would say 6.
        assert_eq!(c.quantile(0.5), Some(8 * DAY));
        assert_eq!(c.quantile(0.8), None);
    }

    #[test]
    fn delayed_entry_keeps_late_seen_stays_out_of_early_risk_sets() {
        // Six dossiers followed from their entry leave at 1..=6 days; three more were
        // first seen at 10 days and leave at 12, 13 and 14.
        let mut stays: Vec<Stay> = (1..=6).map(left).collect();
        for t in [12, 13, 14] {
            stays.push(Stay {
                entry: 10 * DAY,
                time: t * DAY,
                left: true,
            });
        }
        let c = Curve::estimate(&stays);
        // At 1 day only the six followed from the start are at risk.
        close(c.survival(DAY), 5.0 / 6.0);
        close(c.survival(3 * DAY), 0.5);
        // 4 is the last time with 3 at risk among the first six (4, 5, 6).
        close(c.survival(4 * DAY), 0.5 * 2.0 / 3.0);
        // At 12 days the three late ones are at risk: 1/3 of the survivors leave.
        close(c.survival(12 * DAY), 0.5 * 2.0 / 3.0 * 2.0 / 3.0);
        // Treating them as followed from 0 would have put them in every early risk set.
        let naive: Vec<Stay> = stays.iter().map(|s| Stay { entry: 0, ..*s }).collect();
        assert!(Curve::estimate(&naive).survival(DAY) > c.survival(DAY));
    }

    #[test]
    fn conditional_quantiles_given_the_time_already_spent() {
        let stays: Vec<Stay> = (1..=20).map(left).collect();
        let c = Curve::estimate(&stays);
        assert_eq!(c.quantile_after(0, 0.5), Some(10 * DAY));
        // Ten days in: of the ten left (11..=20), half leave within 5 more days.
        assert_eq!(c.quantile_after(10 * DAY, 0.5), Some(5 * DAY));
        // Half a day in, nobody left yet: the same as from the start, less the half day.
        assert_eq!(c.quantile_after(DAY / 2, 0.5), Some(10 * DAY - DAY / 2));
        // Beyond what was observed, nothing can be said.
        assert_eq!(c.quantile_after(30 * DAY, 0.5), None);
    }

    #[test]
    fn past_the_longest_stay_that_ended_the_tail_is_continued() {
        // Half leave at 10 days, the other half are still in after 20.
        let mut stays: Vec<Stay> = (0..10).map(|_| left(10)).collect();
        stays.extend((0..10).map(|_| still(20)));
        let c = Curve::estimate(&stays);
        assert_eq!(c.quantile_after(0, 0.9), None);
        assert_eq!(c.quantile_beyond(0, 0.5), Some((10 * DAY, false)));
        // Half gone in 10 days: the rest at the same rate, a half every 10 days;
        // 90 % gone when a fifth of the half is left: 10 + 10·log2(5) days.
        let (further, extrapolated) = c.quantile_beyond(0, 0.9).unwrap();
        assert!(extrapolated);
        let expected = 10.0 + 10.0 * 5f64.log2();
        assert!(
            (further as f64 / DAY as f64 - expected).abs() < 1e-3,
            "{further}"
        );
        // Thirty days in, it is memoryless: 90 % of them gone within 10·log2(10) days.
        let (further, _) = c.quantile_beyond(30 * DAY, 0.9).unwrap();
        assert!((further as f64 / DAY as f64 - 10.0 * 10f64.log2()).abs() < 1e-3);
        assert_eq!(
            Curve::estimate([still(5), still(6), still(7)]).quantile_beyond(0, 0.5),
            None
        );
    }

    /// Issue 19: ties at the boundary of the risk set. A stay first seen at the
    /// very duration another leaves is not at risk for that exit (it was seen
    /// because it had not left by then); a stay censored at that duration is
    /// (it was still there when the other left).
    #[test]
    fn ties_at_the_boundary_of_the_risk_set() {
        let mut stays: Vec<Stay> = (0..4).map(|_| still(10)).collect();
        stays.push(left(3));
        let base = Curve::estimate(&stays);
        close(base.survival(3 * DAY), 4.0 / 5.0);
        // Entering at 3 days: not at risk then.
        let mut entering = stays.clone();
        entering.push(Stay {
            entry: 3 * DAY,
            time: 10 * DAY,
            left: false,
        });
        close(Curve::estimate(&entering).survival(3 * DAY), 4.0 / 5.0);
        // Censored at 3 days: at risk then.
        let mut censored = stays;
        censored.push(still(3));
        close(Curve::estimate(&censored).survival(3 * DAY), 5.0 / 6.0);
    }

    #[test]
    fn impossible_stays_are_left_out() {
        let stays = [
            Stay {
                entry: 0,
                time: -DAY,
                left: true,
            },
            Stay {
                entry: 5 * DAY,
                time: 2 * DAY,
                left: true,
            },
            left(1),
        ];
        let c = Curve::estimate(stays);
        assert_eq!(c.stays, 1);
    }
}
