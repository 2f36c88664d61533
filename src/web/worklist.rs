//! The staff list's order (issue 21, item 2), pure: `now` is an argument.
//!
//! Owns how the dossiers of `/instruction` are grouped: first those whose
//! beneficiary wrote last and waits for an answer (the longest wait first), then
//! those stalled in their step as the evaluations decide it
//! ([`crate::timers::stalled_from`], the longest stalled first), then those with
//! a `[[deadline]]` within the review horizon
//! ([`crate::timers::nearest_deadline`], the nearest first), then the others,
//! most recently changed first. A dossier is in the first group it fits; each
//! group shows at most [`SHOWN`] dossiers and says how many it holds.

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use chrono_tz::Tz;

use crate::delays::Delays;
use crate::lifecycle::Lifecycle;
use crate::store::{Side, WorkRow};

/// The most dossiers a group shows.
pub(super) const SHOWN: usize = 100;

/// The time the list is made at.
#[derive(Debug, Clone, Copy)]
pub(super) struct Clock {
    /// The Region's zone, whose days count.
    pub tz: Tz,
    /// Now.
    pub now: DateTime<Utc>,
    /// How far ahead deadlines count (`[delays] review_horizon`).
    pub horizon: std::time::Duration,
}

/// Why a dossier is in its group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Why {
    /// Its beneficiary wrote last, then.
    Waiting(DateTime<Utc>),
    /// Stalled in its step since then.
    Stalled(DateTime<Utc>),
    /// A deadline comes on that day: its label.
    Deadline(NaiveDate, String),
    /// Nothing to look at first.
    Rest,
}

/// A dossier of the list and why it is where it is.
#[derive(Debug, Clone)]
pub(super) struct Item<'r> {
    pub row: &'r WorkRow,
    pub why: Why,
}

/// The four groups, each bounded, and how many each holds.
#[derive(Debug, Default)]
pub(super) struct Groups<'r> {
    pub waiting: Vec<Item<'r>>,
    pub stalled: Vec<Item<'r>>,
    pub deadlines: Vec<Item<'r>>,
    pub rest: Vec<Item<'r>>,
    /// How many dossiers each group holds, in the order above.
    pub totals: [usize; 4],
}

/// Why `row` is looked at, from the first group it fits. `row.values` starts
/// with the values of the lifecycle's deadlines' fields.
pub(super) fn why(row: &WorkRow, lifecycle: &Lifecycle, delays: &Delays, clock: Clock) -> Why {
    if let Some((Side::Beneficiary, at)) = row.last_message {
        return Why::Waiting(at);
    }
    let step = lifecycle.step(&row.step).filter(|s| !s.is_final);
    let Some(step) = step.filter(|_| row.present) else {
        return Why::Rest;
    };
    let stalled = crate::timers::stalled_from(
        lifecycle,
        delays,
        (row.scheme.as_deref(), &row.step),
        row.entered.timestamp(),
    )
    .filter(|t| clock.now.timestamp() >= *t)
    .and_then(|t| DateTime::from_timestamp(t, 0));
    if let Some(at) = stalled {
        return Why::Stalled(at);
    }
    let today = clock.now.with_timezone(&clock.tz).date_naive();
    let values = &row.values[..lifecycle.deadlines.len().min(row.values.len())];
    match crate::timers::nearest_deadline(lifecycle, step, values, today, clock.horizon) {
        Some((day, deadline)) => Why::Deadline(day, deadline.label.clone()),
        None => Why::Rest,
    }
}

/// The rows in their groups and order.
pub(super) fn sort<'r>(
    rows: &'r [WorkRow],
    lifecycle: &Lifecycle,
    delays: &Delays,
    clock: Clock,
) -> Groups<'r> {
    let mut groups = Groups::default();
    for row in rows {
        let why = why(row, lifecycle, delays, clock);
        let list = match why {
            Why::Waiting(_) => &mut groups.waiting,
            Why::Stalled(_) => &mut groups.stalled,
            Why::Deadline(..) => &mut groups.deadlines,
            Why::Rest => &mut groups.rest,
        };
        list.push(Item { row, why });
    }
    let key = |i: &Item<'_>| match &i.why {
        Why::Waiting(at) | Why::Stalled(at) => (at.timestamp(), i.row.rowid),
        Why::Deadline(day, _) => (
            day.and_hms_opt(0, 0, 0)
                .map_or(0, |t| t.and_utc().timestamp()),
            i.row.rowid,
        ),
        Why::Rest => (-i.row.changed_at.timestamp(), -i.row.rowid),
    };
    for (n, list) in [
        &mut groups.waiting,
        &mut groups.stalled,
        &mut groups.deadlines,
        &mut groups.rest,
    ]
    .into_iter()
    .enumerate()
    {
        list.sort_by_key(key);
        groups.totals[n] = list.len();
        list.truncate(SHOWN);
    }
    groups
}

/// How long someone has waited, in French: "2 jours", "5 heures", "moins
/// d'une heure".
pub(super) fn waited(d: TimeDelta) -> String {
    let plural = |n: i64, one: &str, many: &str| format!("{n} {}", if n > 1 { many } else { one });
    match (d.num_days(), d.num_hours()) {
        (days, _) if days >= 1 => plural(days, "jour", "jours"),
        (_, hours) if hours >= 1 => plural(hours, "heure", "heures"),
        _ => "moins d'une heure".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    fn row(rowid: i64, step: &str, last: Option<(Side, &str)>, deadline: Option<&str>) -> WorkRow {
        WorkRow {
            rowid,
            connector: "p".into(),
            reference: format!("REF-{rowid}"),
            scheme: Some("Culture".into()),
            step: step.into(),
            entered: at("2026-03-01T08:00:00Z"),
            changed_at: at("2026-03-01T08:00:00Z") + TimeDelta::hours(rowid),
            present: true,
            values: vec![deadline.map(str::to_owned)],
            last_message: last.map(|(s, t)| (s, at(t))),
        }
    }

    fn lifecycle() -> Lifecycle {
        let mut p = crate::diag::Problems::default();
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("rules/lifecycle.toml");
        Lifecycle::load(&path, &mut p).expect("the shipped lifecycle")
    }

    #[test]
    fn waiting_beneficiaries_come_first_then_stalls_deadlines_and_the_rest() {
        let lc = lifecycle();
        let now = at("2026-03-20T10:00:00Z");
        let delays = crate::delays::History::new().finish(
            &lc,
            30,
            now.timestamp(),
            chrono_tz::Europe::Paris,
        );
        let field = lc.deadlines.first().map(|d| d.field.clone());
        assert!(field.is_some(), "the shipped lifecycle has deadlines");
        let rows = vec![
            row(1, "depose", None, None),
            row(
                2,
                "depose",
                Some((Side::Beneficiary, "2026-03-17T09:00:00Z")),
                None,
            ),
            row(
                3,
                "depose",
                Some((Side::Service, "2026-03-18T09:00:00Z")),
                None,
            ),
            row(
                4,
                "depose",
                Some((Side::Beneficiary, "2026-03-10T09:00:00Z")),
                None,
            ),
        ];
        let clock = Clock {
            tz: chrono_tz::Europe::Paris,
            now,
            horizon: std::time::Duration::from_secs(30 * 86_400),
        };
        let groups = sort(&rows, &lc, &delays, clock);
        let ids = |items: &[Item<'_>]| items.iter().map(|i| i.row.rowid).collect::<Vec<_>>();
        assert_eq!(ids(&groups.waiting), [4, 2], "the longest wait first");
        assert_eq!(groups.totals[0], 2);
        // An answered dossier is no longer waiting.
        assert!(!ids(&groups.waiting).contains(&3));
        assert_eq!(
            [
                &groups.waiting,
                &groups.stalled,
                &groups.deadlines,
                &groups.rest
            ]
            .iter()
            .map(|g| g.len())
            .sum::<usize>(),
            4,
            "every dossier is in exactly one group"
        );
        assert_eq!(waited(now - at("2026-03-17T09:00:00Z")), "3 jours");
        assert_eq!(waited(TimeDelta::hours(5)), "5 heures");
        assert_eq!(waited(TimeDelta::minutes(5)), "moins d'une heure");
    }
}
