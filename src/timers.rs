//! Time-based events: dossiers stalled in their step, deadlines coming up, and
//! the periodic review of what each instructor should look at.
//!
//! Owns the decisions for one open dossier (`due` and `review`, pure: `now`
//! is an argument) and the evaluation of every open dossier ([`evaluate`]), which
//! the daemon runs at start-up and on `[delays] evaluate` (and, for reviews, on
//! `[delays] review`), and `alertissimo evaluate` runs by hand. Each threshold
//! crossing is one event, raised once across evaluations and restarts: its key
//! names the stay (`stalled:STEP:ENTERED`), the reminder
//! (`deadline:FIELD:DATE:DAYS`) or the review (`review:DAY`), and the store keeps
//! one event per key and dossier. New events queue their alerts in the same
//! transaction, as an import's do; an evaluation that finds nothing new records
//! nothing.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;
use serde::Serialize;
use tracing::info;

use crate::alerting::Alerting;
use crate::delays::Delays;
use crate::lifecycle::{Lifecycle, Step};
use crate::model::{Event, EventKind, Sources};
use crate::rules::Rules;
use crate::store::{Counts, NewRun, OpenDossier, Store, StoreError};

/// A time-based event one dossier owes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Due {
    /// The event.
    pub event: Event,
    /// What it is about, so that it is raised once.
    pub key: String,
    /// Whether it was already true when Alertissimo first saw the dossier: it is
    /// recorded, and alerts nobody (as a first import's events).
    pub baseline: bool,
}

/// When an open dossier is stalled in its step from (Unix seconds): past the
/// step's threshold, counted from its entry on the step's axis; `None` when it
/// never is.
fn stalled_at(step: &Step, delays: &Delays, dossier: &OpenDossier<'_>) -> Option<i64> {
    delays.stalled_from(
        step.stalled_after,
        dossier.scheme,
        &step.id,
        dossier.entered,
    )
}

/// What an open dossier owes at `now`: a `stalled` event once it has been in its
/// step longer than the lifecycle's `stalled_after`, and for each `[[deadline]]`
/// whose date field it has, a `deadline` event for the nearest reminder due
/// (days counted in `tz`), until the end of that day.
pub(crate) fn due(
    lifecycle: &Lifecycle,
    delays: &Delays,
    tz: Tz,
    dossier: &OpenDossier<'_>,
    now: DateTime<Utc>,
) -> Vec<Due> {
    let mut out = Vec::new();
    let Some(step) = lifecycle.step(dossier.step) else {
        return out;
    };
    if step.is_final {
        return out;
    }
    if let Some(crossing) = stalled_at(step, delays, dossier)
        && now.timestamp() >= crossing
        && let Some(at) = DateTime::from_timestamp(crossing, 0)
    {
        let mut event = Event::new(EventKind::Stalled, at);
        event.from_step = Some(step.id.clone());
        event.new_value = Some(step.stalled_after.text());
        out.push(Due {
            event,
            key: format!("stalled:{}:{}", step.id, dossier.entered),
            baseline: crossing < dossier.first_seen,
        });
    }
    for (deadline, date) in lifecycle.deadlines.iter().zip(dossier.values) {
        if !deadline.steps.is_empty() && !deadline.steps.contains(&step.id) {
            continue;
        }
        let Some(day) = date.and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok()) else {
            continue;
        };
        let Some(end) = day
            .succ_opt()
            .and_then(|d| crate::timing::start_of_day(d, tz))
        else {
            continue;
        };
        if now >= end {
            continue;
        }
        // The nearest reminder whose day has come (the others are behind it).
        let reminder = deadline.days_before.iter().rev().find_map(|&days| {
            let start = crate::timing::start_of_day(day - chrono::Days::new(u64::from(days)), tz)?;
            (now >= start).then_some((days, start))
        });
        if let Some((days, at)) = reminder {
            let mut event = Event::new(EventKind::Deadline, at);
            event.field = Some(deadline.field.clone());
            event.old_value = Some(day.format("%Y-%m-%d").to_string());
            event.new_value = Some(days.to_string());
            out.push(Due {
                event,
                key: format!("deadline:{}:{day}:{days}", deadline.field),
                baseline: false,
            });
        }
    }
    out
}

/// Whether an open dossier goes into its instructor's periodic review at `now`:
/// when it has an instructor (`instructor`), and it is stalled in its step or one
/// of its deadlines falls within `horizon`. The event carries the step
/// (`from_step`), `new_value = "stalled"` when it is, and the nearest deadline
/// (`field`, and its date in `old_value`).
pub(crate) fn review(
    lifecycle: &Lifecycle,
    delays: &Delays,
    tz: Tz,
    dossier: &OpenDossier<'_>,
    instructor: bool,
    horizon: std::time::Duration,
    now: DateTime<Utc>,
) -> Option<Due> {
    let step = lifecycle.step(dossier.step)?;
    if !instructor || step.is_final {
        return None;
    }
    let stalled = stalled_at(step, delays, dossier).is_some_and(|t| now.timestamp() >= t);
    let today = now.with_timezone(&tz).date_naive();
    let nearest = nearest_deadline(lifecycle, step, dossier.values, today, horizon);
    if !stalled && nearest.is_none() {
        return None;
    }
    let mut event = Event::new(EventKind::Review, now);
    event.from_step = Some(step.id.clone());
    event.new_value = stalled.then(|| "stalled".to_owned());
    if let Some((day, deadline)) = nearest {
        event.field = Some(deadline.field.clone());
        event.old_value = Some(day.format("%Y-%m-%d").to_string());
    }
    Some(Due {
        event,
        key: format!("review:{today}"),
        baseline: false,
    })
}

/// The nearest of the lifecycle's `[[deadline]]`s of a dossier in `step` that
/// falls between `today` and `horizon` later: its day and its deadline. `values`
/// are the dossier's values of the deadlines' fields, in their order.
pub(crate) fn nearest_deadline<'l, S: AsRef<str>>(
    lifecycle: &'l Lifecycle,
    step: &Step,
    values: &[Option<S>],
    today: NaiveDate,
    horizon: std::time::Duration,
) -> Option<(NaiveDate, &'l crate::lifecycle::Deadline)> {
    let last = today + chrono::Days::new(horizon.as_secs() / 86_400);
    lifecycle
        .deadlines
        .iter()
        .zip(values)
        .filter(|(d, _)| d.steps.is_empty() || d.steps.contains(&step.id))
        .filter_map(|(d, date)| {
            let day = NaiveDate::parse_from_str(date.as_ref()?.as_ref(), "%Y-%m-%d").ok()?;
            (today..=last).contains(&day).then_some((day, d))
        })
        .min_by_key(|(day, _)| *day)
}

/// When a dossier of `scheme` that entered `step` at `entered` (Unix seconds)
/// is stalled from (Unix seconds), as the evaluations decide it: `None` for a
/// final or unknown step, or one that never stalls.
pub(crate) fn stalled_from(
    lifecycle: &Lifecycle,
    delays: &Delays,
    (scheme, step): (Option<&str>, &str),
    entered: i64,
) -> Option<i64> {
    let step = lifecycle.step(step).filter(|s| !s.is_final)?;
    delays.stalled_from(step.stalled_after, scheme, &step.id, entered)
}

/// How many dossiers are stalled now, by instructor (their name, else their
/// address in lowercase; "" for dossiers without one), most first.
///
/// # Errors
/// On a store failure.
pub(crate) fn stalled_by_instructor(
    store: &Store,
    delays: &Delays,
    lifecycle: &Lifecycle,
    now: DateTime<Utc>,
) -> Result<Vec<(String, u64)>, StoreError> {
    let fields = ["instructor.name".to_owned(), "instructor.email".to_owned()];
    let mut counts: HashMap<String, u64> = HashMap::new();
    store.for_each_open(&fields, |d| {
        let Some(step) = lifecycle.step(d.step).filter(|s| !s.is_final) else {
            return Ok(());
        };
        if stalled_at(step, delays, d).is_some_and(|t| now.timestamp() >= t) {
            // An address in any case is one instructor.
            let who = match (d.values[0], d.values[1]) {
                (Some(name), _) => name.to_owned(),
                (None, Some(email)) => email.trim().to_lowercase(),
                (None, None) => String::new(),
            };
            *counts.entry(who).or_default() += 1;
        }
        Ok(())
    })?;
    let mut out: Vec<(String, u64)> = counts.into_iter().collect();
    out.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    Ok(out)
}

/// What an evaluation looks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pass {
    /// Stalled dossiers and deadline reminders.
    Events,
    /// The dossiers each instructor should look at, with deadlines this far ahead.
    Review(std::time::Duration),
}

/// What an evaluation did.
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize)]
pub struct Evaluated {
    /// Its run, when it found something new (else nothing was recorded).
    pub run_id: Option<i64>,
    /// Open dossiers looked at.
    pub dossiers: u64,
    /// New `stalled` events.
    pub stalled: u64,
    /// New `deadline` events.
    pub deadline: u64,
    /// Dossiers put in a review.
    pub review: u64,
    /// Alerts they queued.
    pub alerts_queued: u64,
}

/// The time: what an evaluation is told of the world.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    /// The zone days are counted in.
    pub tz: Tz,
    /// Now.
    pub now: DateTime<Utc>,
}

/// Raises the time-based events every open dossier owes at `now` (`pass`: the
/// stalls and reminders, or a review), and queues their alerts (none when `rules`
/// is `None`), in one transaction.
///
/// # Errors
/// On a store failure; then nothing of the evaluation is kept.
pub fn evaluate(
    store: &mut Store,
    delays: &Delays,
    rules: Option<&Rules>,
    sources: &Sources,
    lifecycle: &Lifecycle,
    clock: Clock,
    pass: Pass,
) -> Result<Evaluated, StoreError> {
    let Clock { tz, now } = clock;
    let mut tx = store.begin_import()?;
    let run_id = tx.start_evaluation(now)?;
    let mut fields: Vec<String> = lifecycle
        .deadlines
        .iter()
        .map(|d| d.field.clone())
        .collect();
    fields.push("instructor.email".to_owned());
    let mut owed: Vec<(i64, String, Due)> = Vec::new();
    let mut dossiers = 0u64;
    tx.for_each_open(&fields, |d| {
        dossiers += 1;
        let owes = match pass {
            Pass::Events => due(lifecycle, delays, tz, d, now),
            Pass::Review(horizon) => {
                let instructor = d
                    .values
                    .last()
                    .is_some_and(|e| e.is_some_and(|e| !e.is_empty()));
                review(lifecycle, delays, tz, d, instructor, horizon, now)
                    .into_iter()
                    .collect()
            }
        };
        for due in owes {
            owed.push((d.rowid, d.connector.to_owned(), due));
        }
        Ok(())
    })?;
    let mut counts = Counts {
        rows: dossiers,
        ..Counts::default()
    };
    let mut alerting: HashMap<&str, Alerting<'_>> = HashMap::new();
    for (rowid, connector, due) in &owed {
        let Some(event_id) =
            tx.insert_event_keyed(*rowid, &due.event, due.baseline, Some(&due.key))?
        else {
            continue;
        };
        counts.add(due.event.kind);
        let Some(rules) = rules.filter(|_| !due.baseline) else {
            continue;
        };
        // A connector removed from the configuration: its dossiers' events are
        // recorded, and alert nobody.
        if !sources.knows(connector) {
            continue;
        }
        let Some((dossier, _)) = tx.get(*rowid)? else {
            continue;
        };
        alerting
            .entry(connector.as_str())
            .or_insert_with(|| Alerting::new(rules, connector, sources.pattern(connector), now))
            .on_events(
                &tx,
                *rowid,
                &dossier,
                &[(event_id, &due.event)],
                &mut counts,
            )?;
    }
    let summary = Evaluated {
        run_id: None,
        dossiers,
        stalled: counts.stalled,
        deadline: counts.deadline,
        review: counts.review,
        alerts_queued: counts.alerts_queued,
    };
    if counts.stalled + counts.deadline + counts.review == 0 {
        // Nothing new: the transaction is dropped, no run is recorded.
        return Ok(summary);
    }
    for a in alerting.values() {
        a.report();
    }
    if counts.alerts_queued > 0 {
        tx.align_digests()?;
    }
    let run = NewRun {
        finished_at: Utc::now(),
        counts,
        ..NewRun::new("", "evaluation", String::new(), now)
    };
    tx.finish(&run, &[])?;
    info!(
        run = run_id,
        dossiers,
        stalled = summary.stalled,
        deadline = summary.deadline,
        review = summary.review,
        alerts_queued = summary.alerts_queued,
        "Evaluated stalled dossiers, deadlines and reviews."
    );
    Ok(Evaluated {
        run_id: Some(run_id),
        ..summary
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::delays::History;
    use crate::lifecycle::Stall;
    use crate::test_support::{shipped_lifecycle, utc};

    const DAY: i64 = 86_400;

    fn open<'a>(
        step: &'a str,
        entered: &str,
        first_seen: &str,
        dates: &'a [Option<&'a str>],
    ) -> OpenDossier<'a> {
        OpenDossier {
            rowid: 1,
            connector: "portail",
            scheme: Some("Culture"),
            step,
            entered: utc(entered).timestamp(),
            first_seen: utc(first_seen).timestamp(),
            values: dates,
        }
    }

    /// No history: the shipped lifecycle's expected durations are the thresholds.
    fn no_history(lifecycle: &Lifecycle) -> Delays {
        History::new().finish(lifecycle, 30, 0, chrono_tz::Europe::Paris)
    }

    /// What `d` owes at `at`, under the shipped lifecycle without history, in Paris.
    fn owed(d: &OpenDossier<'_>, at: &str) -> Vec<Due> {
        let lc = shipped_lifecycle();
        due(&lc, &no_history(&lc), chrono_tz::Europe::Paris, d, utc(at))
    }

    #[test]
    fn a_dossier_is_stalled_once_past_its_threshold() {
        // Instruction: 6 weeks expected. Entered on 1 March, seen the same day.
        let d = open(
            "instruction",
            "2026-03-01T08:00:00Z",
            "2026-03-01T09:00:00Z",
            &[None, None],
        );
        assert!(owed(&d, "2026-04-12T07:59:59Z").is_empty());
        let due_now = owed(&d, "2026-04-12T08:00:00Z");
        assert_eq!(due_now.len(), 1);
        assert_eq!(due_now[0].event.kind, EventKind::Stalled);
        assert_eq!(due_now[0].event.from_step.as_deref(), Some("instruction"));
        assert_eq!(due_now[0].event.occurred_at, utc("2026-04-12T08:00:00Z"));
        assert_eq!(due_now[0].event.new_value.as_deref(), Some("p90"));
        assert!(!due_now[0].baseline);
        // The same stay gives the same key at every evaluation: raised once.
        let later = owed(&d, "2026-06-01T00:00:00Z");
        assert_eq!(later[0].key, due_now[0].key);
        // A new stay in the step is another key.
        let again = open(
            "instruction",
            "2026-07-01T08:00:00Z",
            "2026-03-01T09:00:00Z",
            &[None, None],
        );
        let due_again = owed(&again, "2026-09-01T00:00:00Z");
        assert_ne!(due_again[0].key, due_now[0].key);
    }

    #[test]
    fn stalled_before_it_was_first_seen_is_a_baseline() {
        let d = open(
            "instruction",
            "2025-01-01T00:00:00Z",
            "2026-03-01T09:00:00Z",
            &[None, None],
        );
        let due_now = owed(&d, "2026-03-01T10:00:00Z");
        assert!(due_now[0].baseline);
    }

    #[test]
    fn final_steps_never_stall() {
        let d = open(
            "cloture",
            "2020-01-01T00:00:00Z",
            "2020-01-01T00:00:00Z",
            &[None, None],
        );
        assert!(owed(&d, "2026-03-01T10:00:00Z").is_empty());
    }

    #[test]
    fn the_nearest_deadline_reminder_is_due_from_the_start_of_its_day_in_paris() {
        // justification_due on 5 April 2026, reminders 30 and 7 days before; the
        // dossier entered its step on 20 March (not stalled before 17 April).
        let dates = [Some("2026-04-05"), None];
        let d = open(
            "convention",
            "2026-03-20T00:00:00Z",
            "2026-03-01T00:00:00Z",
            &dates,
        );
        // 30 days before is 6 March, from 00:00 Paris (23:00 UTC the day before).
        assert!(owed(&d, "2026-03-05T22:59:59Z").is_empty());
        let due_now = owed(&d, "2026-03-05T23:00:00Z");
        assert_eq!(due_now.len(), 1);
        assert_eq!(due_now[0].event.kind, EventKind::Deadline);
        assert_eq!(due_now[0].event.new_value.as_deref(), Some("30"));
        assert_eq!(due_now[0].key, "deadline:justification_due:2026-04-05:30");
        // 7 days before is 29 March, the night clocks go forward: 00:00 Paris is
        // still 23:00 UTC the day before (summer time starts at 02:00).
        let due_now = owed(&d, "2026-03-28T23:00:00Z");
        assert_eq!(due_now[0].event.new_value.as_deref(), Some("7"));
        assert_eq!(due_now[0].event.occurred_at, utc("2026-03-28T23:00:00Z"));
        // Met for the first time 3 days before: only the 7-day reminder.
        let due_now = owed(&d, "2026-04-02T10:00:00Z");
        assert_eq!(due_now.len(), 1);
        assert_eq!(due_now[0].event.new_value.as_deref(), Some("7"));
        // The day after the date (from 00:00 Paris, summer time), nothing.
        assert!(owed(&d, "2026-04-05T22:00:00Z").is_empty());
        assert_eq!(owed(&d, "2026-04-05T21:59:59Z").len(), 1);
    }

    #[test]
    fn a_deadline_only_applies_in_its_steps() {
        let dates = [Some("2026-04-05"), None];
        let d = open(
            "depose",
            "2026-03-30T00:00:00Z",
            "2026-03-30T00:00:00Z",
            &dates,
        );
        assert!(owed(&d, "2026-04-01T10:00:00Z").is_empty());
    }

    #[test]
    fn a_review_lists_stalled_dossiers_and_near_deadlines_of_instructed_dossiers() {
        let lc = shipped_lifecycle();
        let delays = no_history(&lc);
        let paris = chrono_tz::Europe::Paris;
        let horizon = std::time::Duration::from_secs(30 * 86_400);
        let now = utc("2026-03-02T06:00:00Z");
        // In convention since February, justification due in 20 days.
        let dates = [Some("2026-03-22"), None];
        let near = open(
            "convention",
            "2026-02-20T00:00:00Z",
            "2026-02-20T00:00:00Z",
            &dates,
        );
        let item = review(&lc, &delays, paris, &near, true, horizon, now).unwrap();
        assert_eq!(item.event.kind, EventKind::Review);
        assert_eq!(item.event.field.as_deref(), Some("justification_due"));
        assert_eq!(item.event.old_value.as_deref(), Some("2026-03-22"));
        assert_eq!(item.event.new_value, None);
        assert_eq!(item.key, "review:2026-03-02");
        // Without an instructor, nobody to tell.
        assert!(review(&lc, &delays, paris, &near, false, horizon, now).is_none());
        // A deadline beyond the horizon, and not stalled: not listed.
        let far = [Some("2026-05-22"), None];
        let calm = open(
            "convention",
            "2026-02-20T00:00:00Z",
            "2026-02-20T00:00:00Z",
            &far,
        );
        assert!(review(&lc, &delays, paris, &calm, true, horizon, now).is_none());
        // Stalled (instruction for 3 months, 6 weeks expected): listed as such.
        let stuck = open(
            "instruction",
            "2025-12-01T00:00:00Z",
            "2025-12-01T00:00:00Z",
            &[None, None],
        );
        let item = review(&lc, &delays, paris, &stuck, true, horizon, now).unwrap();
        assert_eq!(item.event.new_value.as_deref(), Some("stalled"));
        assert_eq!(item.event.field, None);
    }

    #[test]
    fn percentile_thresholds_come_from_the_history() {
        let lc = shipped_lifecycle();
        let mut h = History::new();
        // 40 dossiers of Culture left instruction after 1 to 40 days.
        for i in 1..=40i64 {
            h.dossier(i, Some("Culture"), "commission", i * DAY);
            h.event(i, EventKind::Created, Some("instruction"), 0, 0);
            h.event(
                i,
                EventKind::StepChanged,
                Some("commission"),
                i * DAY,
                i * DAY,
            );
        }
        let delays = h.finish(&lc, 30, 100 * DAY, chrono_tz::Europe::Paris);
        let entered = 200 * DAY;
        let p90 = delays
            .estimate(Some("Culture"), "instruction", entered, entered)
            .unwrap()
            .p90
            .unwrap();
        let stalled = |stall, scheme| delays.stalled_from(stall, scheme, "instruction", entered);
        assert_eq!(
            stalled(Stall::Percentile(90), Some("Culture")),
            Some(entered + p90)
        );
        assert_eq!(
            stalled(
                Stall::After(std::time::Duration::from_secs(3 * 86_400)),
                None
            ),
            Some(entered + 3 * DAY)
        );
        assert_eq!(stalled(Stall::Off, None), None);
    }
}
