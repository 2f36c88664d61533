//! Change detection: compares a dossier read from a snapshot with its stored state.
//!
//! Pure: no I/O, no SQL, no clock (`now` is an argument). The importer calls
//! [`compare`] for every record whose raw hash changed and [`disappeared`] for
//! every stored dossier missing from a full snapshot; `snapshot` and `apply`
//! (compiled for the tests) compose them over whole snapshots: the model the
//! importer's property test checks it against.

#[cfg(test)]
use std::collections::{BTreeMap, HashSet};

use chrono::{DateTime, Utc};

use crate::model::{DELETED_ON_SOURCE, Dossier, Event, EventKind, STEP_SINCE, SourceDeletion};

/// The stored state of a dossier, as the diff needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Known {
    /// The canonical state.
    pub dossier: Dossier,
    /// Whether it was in the previous snapshot.
    pub present: bool,
    /// When it entered its current step.
    pub step_entered_at: DateTime<Utc>,
}

/// What a new reading of a dossier changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// The events, in the order they happened.
    pub events: Vec<Event>,
    /// When the dossier entered its (possibly new) step.
    pub step_entered_at: DateTime<Utc>,
    /// Whether the stored state must be rewritten (false: identical, nothing to write).
    pub state_changed: bool,
}

/// The source's own step date, if the connector maps one.
fn step_since(d: &Dossier) -> Option<DateTime<Utc>> {
    d.get(STEP_SINCE).and_then(crate::model::Value::instant)
}

/// Compares `next` (just read) with `previous` (stored, if any).
///
/// `watch` lists the fields whose changes become `field_changed` events; other
/// fields are updated silently. Step changes are dated by the source's
/// `step_since` when it has one, else by `now`.
pub fn compare(
    previous: Option<&Known>,
    next: &Dossier,
    watch: &[String],
    now: DateTime<Utc>,
) -> Change {
    let source_date = step_since(next);
    let Some(prev) = previous else {
        let entered = source_date.unwrap_or(now);
        let mut created = Event::new(EventKind::Created, entered);
        created.to_step = Some(next.step.clone());
        return Change {
            events: vec![created],
            step_entered_at: entered,
            state_changed: true,
        };
    };
    let mut events = Vec::new();
    if !prev.present {
        let mut back = Event::new(EventKind::Reappeared, now);
        back.to_step = Some(next.step.clone());
        events.push(back);
    }
    let step_entered_at = if prev.dossier.step != next.step {
        let when = source_date.unwrap_or(now);
        let mut moved = Event::new(EventKind::StepChanged, when);
        moved.from_step = Some(prev.dossier.step.clone());
        moved.to_step = Some(next.step.clone());
        events.push(moved);
        when
    } else {
        // Same step: a corrected source date wins, else keep what we knew.
        source_date.unwrap_or(prev.step_entered_at)
    };
    for field in watch {
        let old = prev.dossier.get(field);
        let new = next.get(field);
        let same = match (old, new) {
            (Some(old), Some(new)) => old.same(new),
            (old, new) => old.is_none() && new.is_none(),
        };
        if !same {
            let mut changed = Event::new(EventKind::FieldChanged, now);
            changed.field = Some(field.clone());
            changed.old_value = old.map(ToString::to_string);
            changed.new_value = new.map(ToString::to_string);
            events.push(changed);
        }
    }
    Change {
        state_changed: !prev.present
            || prev.dossier.id != next.id
            || prev.dossier.step != next.step
            || prev.dossier.status != next.status
            || !prev.dossier.fields.same(&next.fields)
            || prev.step_entered_at != step_entered_at,
        events,
        step_entered_at,
    }
}

/// The event of a stored dossier, last seen in `step`, missing from a full snapshot.
pub fn disappeared(step: &str, now: DateTime<Utc>) -> Event {
    let mut gone = Event::new(EventKind::Disappeared, now);
    gone.from_step = Some(step.to_owned());
    gone
}

/// The event of a stored dossier, last seen in `step`, its source said it
/// deleted: a `disappeared` dated by the source when it says (else `now`), its
/// `field` [`DELETED_ON_SOURCE`] and its `new_value` the source's reason.
pub fn deleted_on_source(step: &str, deletion: &SourceDeletion, now: DateTime<Utc>) -> Event {
    let mut gone = disappeared(step, deletion.at.unwrap_or(now));
    gone.field = Some(DELETED_ON_SOURCE.to_owned());
    gone.new_value.clone_from(&deletion.reason);
    gone
}

/// The changes from a stored state to a full snapshot, by dossier id: the
/// model the importer is tested against (`import`'s property test), which
/// streams the same decisions over an index instead.
///
/// Dossiers identical to their stored state are left out; stored dossiers absent
/// from `next` (and still present) disappear.
#[cfg(test)]
pub fn snapshot(
    previous: &BTreeMap<String, Known>,
    next: &[Dossier],
    watch: &[String],
    now: DateTime<Utc>,
) -> BTreeMap<String, Delta> {
    let mut out = BTreeMap::new();
    let read: HashSet<&str> = next.iter().map(|d| d.id.as_str()).collect();
    for d in next {
        let change = compare(previous.get(&d.id), d, watch, now);
        if change.state_changed {
            out.insert(d.id.clone(), Delta::Upsert(d.clone(), change));
        }
    }
    for (id, known) in previous {
        if known.present && !read.contains(id.as_str()) {
            out.insert(
                id.clone(),
                Delta::Disappear(disappeared(&known.dossier.step, now)),
            );
        }
    }
    out
}

/// One dossier's part of a snapshot diff.
#[cfg(test)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delta {
    /// Store this state.
    Upsert(Dossier, Change),
    /// Mark it missing.
    Disappear(Event),
}

/// Applies a snapshot diff to a stored state.
#[cfg(test)]
pub fn apply(state: &mut BTreeMap<String, Known>, deltas: BTreeMap<String, Delta>) {
    for (id, delta) in deltas {
        match delta {
            Delta::Upsert(dossier, change) => {
                state.insert(
                    id,
                    Known {
                        dossier,
                        present: true,
                        step_entered_at: change.step_entered_at,
                    },
                );
            }
            Delta::Disappear(_) => {
                if let Some(known) = state.get_mut(&id) {
                    known.present = false;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use proptest::prelude::*;

    fn at(day: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, day, 9, 0, 0).unwrap()
    }

    fn dossier(id: &str, step: &str, amount: Option<&str>) -> Dossier {
        let mut fields = crate::model::Fields::default();
        if let Some(a) = amount {
            fields.insert_text("amount_granted", a);
        }
        Dossier {
            id: id.to_owned(),
            step: step.to_owned(),
            status: step.to_owned(),
            fields,
        }
    }

    fn known(d: Dossier, present: bool) -> Known {
        Known {
            dossier: d,
            present,
            step_entered_at: at(1),
        }
    }

    fn watch() -> Vec<String> {
        vec!["amount_granted".to_owned()]
    }

    #[test]
    fn new_dossier_is_created_in_its_step() {
        let change = compare(None, &dossier("A", "depose", None), &watch(), at(2));
        assert_eq!(change.events.len(), 1);
        assert_eq!(change.events[0].kind, EventKind::Created);
        assert_eq!(change.events[0].to_step.as_deref(), Some("depose"));
        assert_eq!(change.step_entered_at, at(2));
    }

    #[test]
    fn step_change_is_dated_by_the_source_when_it_can() {
        let prev = known(dossier("A", "depose", None), true);
        let mut next = dossier("A", "instruction", None);
        next.fields.insert_text(STEP_SINCE, "2026-03-01T23:00:00Z");
        let change = compare(Some(&prev), &next, &watch(), at(5));
        let e = &change.events[0];
        assert_eq!(e.kind, EventKind::StepChanged);
        assert_eq!(e.from_step.as_deref(), Some("depose"));
        assert_eq!(e.to_step.as_deref(), Some("instruction"));
        assert_eq!(
            e.occurred_at,
            Utc.with_ymd_and_hms(2026, 3, 1, 23, 0, 0).unwrap()
        );
        assert_eq!(change.step_entered_at, e.occurred_at);
    }

    #[test]
    fn watched_and_unwatched_fields() {
        let prev = known(dossier("A", "accorde", Some("1000.00")), true);
        let next = dossier("A", "accorde", Some("1200.00"));
        let change = compare(Some(&prev), &next, &watch(), at(5));
        assert_eq!(change.events.len(), 1);
        let e = &change.events[0];
        assert_eq!(e.kind, EventKind::FieldChanged);
        assert_eq!(
            (e.old_value.as_deref(), e.new_value.as_deref()),
            (Some("1000.00"), Some("1200.00"))
        );
        // Unwatched: no event, but the state is rewritten.
        let change = compare(Some(&prev), &next, &[], at(5));
        assert!(change.events.is_empty());
        assert!(change.state_changed);
        assert_eq!(change.step_entered_at, at(1));
    }

    #[test]
    fn reappearance_then_step_change() {
        let prev = known(dossier("A", "depose", None), false);
        let change = compare(
            Some(&prev),
            &dossier("A", "instruction", None),
            &watch(),
            at(5),
        );
        let kinds: Vec<_> = change.events.iter().map(|e| e.kind).collect();
        assert_eq!(kinds, [EventKind::Reappeared, EventKind::StepChanged]);
    }

    #[test]
    fn identical_reading_changes_nothing() {
        let prev = known(dossier("A", "depose", Some("5.00")), true);
        let change = compare(Some(&prev), &prev.dossier.clone(), &watch(), at(5));
        assert!(change.events.is_empty());
        assert!(!change.state_changed);
    }

    const STEPS: &[&str] = &["depose", "instruction", "accorde", "cloture"];

    fn arb_dossier() -> impl Strategy<Value = Dossier> {
        (0u8..20, 0usize..STEPS.len(), proptest::option::of(0u32..5)).prop_map(
            |(id, step, amount)| {
                dossier(
                    &format!("D{id}"),
                    STEPS[step],
                    amount.map(|a| format!("{a}00.00")).as_deref(),
                )
            },
        )
    }

    fn arb_snapshot() -> impl Strategy<Value = Vec<Dossier>> {
        proptest::collection::vec(arb_dossier(), 0..15).prop_map(|v| {
            let mut by_id = BTreeMap::new();
            for d in v {
                by_id.insert(d.id.clone(), d);
            }
            by_id.into_values().collect()
        })
    }

    fn state_of(snapshot: &[Dossier]) -> BTreeMap<String, Known> {
        snapshot
            .iter()
            .map(|d| (d.id.clone(), known(d.clone(), true)))
            .collect()
    }

    proptest! {
        #[test]
        fn diff_of_a_snapshot_with_itself_is_empty(a in arb_snapshot()) {
            let state = state_of(&a);
            prop_assert!(snapshot(&state, &a, &watch(), at(9)).is_empty());
        }

        #[test]
        fn applying_the_diff_yields_the_new_snapshot(a in arb_snapshot(), b in arb_snapshot()) {
            let mut state = state_of(&a);
            let deltas = snapshot(&state, &b, &watch(), at(9));
            apply(&mut state, deltas);
            let present: Vec<Dossier> = state
                .values()
                .filter(|k| k.present)
                .map(|k| k.dossier.clone())
                .collect();
            prop_assert_eq!(present, b.clone());
            // And once applied, the same snapshot changes nothing more.
            prop_assert!(snapshot(&state, &b, &watch(), at(10)).is_empty());
        }
    }
}
