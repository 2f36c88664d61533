//! Stage 2, reconcile: a snapshot against the stored index. Three looks, each
//! typed:
//! - on the reader's thread, each id is sighted in the index ([`Sightings`]):
//!   new, known (and where), or seen twice; a known record whose raw hash did not
//!   change is unchanged and goes no further;
//! - on the store's thread, each dossier read gets a [`Plan`]: the events of
//!   its change and the [`Action`] it asks of the store (a creation, a change,
//!   or an unchanged state whose raw record changed);
//! - once the whole snapshot is read, the stored dossiers it makes go
//!   ([`Disappearances`]).

use super::*;

/// What the index says of an id read.
pub(super) enum Sighting {
    /// Not stored (or an id the index cannot say anything of).
    New,
    /// Stored, at this position in the index; `repeated` when this snapshot
    /// held it before (an API sending a dossier again).
    Known { at: usize, repeated: bool },
    /// Held by an earlier record of this snapshot, at `first_line`.
    Duplicate { first_line: u64 },
}

/// Which stored ids a snapshot holds, and which new ones.
pub(super) struct Sightings {
    /// The line where each stored id was seen (0: not seen), to name both lines of a duplicate.
    seen: Vec<u32>,
    /// Ids not stored yet, and their line: sorted at the end, they show the ids that
    /// appear twice (the store has no unique index on ids: this is it). 16 bytes a
    /// record, where a hash map would take three times as much.
    new_ids: Vec<(IdKey, u32)>,
    /// An API may send a dossier twice in one synchronisation (DS moves a dossier
    /// updated meanwhile to the end of its list): the later copy is newer and
    /// replaces the earlier. In a file, an id twice is a broken export.
    repeats_replace: bool,
}

impl Sightings {
    pub(super) fn new(index: &Index, repeats_replace: bool) -> Self {
        Self {
            seen: vec![0; index.entries.len()],
            new_ids: Vec::new(),
            repeats_replace,
        }
    }

    /// Looks up the id hashed `key`, read at `line`.
    pub(super) fn sight(&mut self, index: &Index, key: IdKey, line: u64) -> Sighting {
        let line = u32::try_from(line).unwrap_or(u32::MAX).max(1);
        match index.find(key) {
            Some(at) if self.seen[at] != 0 && !self.repeats_replace => Sighting::Duplicate {
                first_line: u64::from(self.seen[at]),
            },
            Some(at) => {
                let repeated = self.seen[at] != 0;
                self.seen[at] = line;
                Sighting::Known { at, repeated }
            }
            None => {
                self.new_ids.push((key, line));
                Sighting::New
            }
        }
    }

    /// The line where each stored id was seen, and the new ids seen twice.
    pub(super) fn end(mut self) -> (Vec<u32>, Vec<DuplicateId>) {
        if self.repeats_replace {
            self.new_ids.clear();
        }
        let new_ids = &mut self.new_ids;
        // In order of id hash, then of line: each id's first line comes first.
        sort_by_hash(new_ids, |(key, _)| key.0, |&item| item);
        let mut duplicates = Vec::new();
        let mut first = 0;
        for (i, &(key, line)) in new_ids.iter().enumerate().skip(1) {
            if key == new_ids[first].0 {
                duplicates.push(DuplicateId {
                    line: u64::from(line),
                    first_line: u64::from(new_ids[first].1),
                    id: Err(key),
                });
            } else {
                first = i;
            }
        }
        (self.seen, duplicates)
    }
}

/// What the store's side of an import works with: its transaction, and what
/// its stages read.
pub(super) struct Context<'a, 't> {
    pub(super) tx: &'a ImportTx<'t>,
    pub(super) connector: &'a Connector,
    pub(super) index: &'a Index,
    pub(super) encoder: &'a FieldEncoder,
    /// The import's instant: events are detected at it.
    pub(super) now: DateTime<Utc>,
    /// Whether this is the connector's baseline (events recorded as such, no alerts).
    pub(super) baseline: bool,
}

/// A stored dossier a record reads again, and whether it was present.
#[derive(Clone, Copy)]
pub(super) struct Held {
    pub(super) rowid: i64,
    pub(super) present: bool,
    pub(super) slot: Slot,
}

/// What a dossier read asks of the store.
pub(super) enum Action {
    /// Not stored yet: inserted.
    Create,
    /// Stored, and its state changed (its step, a field, a date, or it is back):
    /// rewritten. `stored` is the state it had.
    Change { held: Held, stored: Known },
    /// Stored, and its state did not change (its raw record did, in what is not
    /// mapped): its new raw hash is noted.
    Unchanged { held: Held },
}

/// Stage 2's plan for one dossier read.
pub(super) struct Plan {
    /// The dossier read, with the stored values of the fields it kept.
    pub(super) read: ReadDossier,
    /// The stored form of its fields.
    pub(super) fields: Vec<u8>,
    /// The fields left empty in the export whose stored value was kept.
    pub(super) kept: Vec<String>,
    /// Its events, and when it entered its step.
    pub(super) change: diff::Change,
    pub(super) action: Action,
}

/// Plans what a dossier read does to its stored state (stored before, or
/// created by this very import and read again).
pub(super) fn plan(
    cx: &Context<'_, '_>,
    changes: &IndexChanges,
    mut read: ReadDossier,
    mut fields: Vec<u8>,
) -> Result<Plan, StoreError> {
    let held = changes.held(cx.index, read.at, read.key);
    let previous = match held {
        Some(held) => stored(cx.tx, held, &read.mapped.dossier.id)?,
        None => None,
    };
    let stored_dossier = previous.as_ref().map(|known| &known.dossier);
    let kept = keep_stored(&mut read.mapped, &mut fields, stored_dossier, cx.encoder)?;
    let mut change = diff::compare(
        previous.as_ref(),
        &read.mapped.dossier,
        &cx.connector.watch,
        cx.now,
    );
    mark_notified_by_source(
        &mut change.events,
        &read.messages,
        cx.connector.source.automatic_senders(),
    );
    let action = match (previous, held) {
        (Some(stored), Some(held)) if change.state_changed => Action::Change { held, stored },
        (Some(_), Some(held)) => Action::Unchanged { held },
        _ => Action::Create,
    };
    Ok(Plan {
        read,
        fields,
        kept,
        change,
        action,
    })
}

/// The stored state of a dossier held, if its id is `id`.
fn stored(tx: &ImportTx<'_>, held: Held, id: &str) -> Result<Option<Known>, StoreError> {
    Ok(match tx.get(held.rowid)? {
        // Equal 96-bit id hashes of different ids: never seen, but cheap to rule out.
        Some((dossier, step_entered_at)) if dossier.id == id => Some(Known {
            dossier,
            present: held.present,
            step_entered_at,
        }),
        _ => None,
    })
}

/// Puts back the stored values of the fields a record left empty with
/// `on_empty = "keep"` (see [`crate::connector::mapping::OnEmpty`]), and the
/// stored form of its fields with them; returns the fields kept.
pub(super) fn keep_stored(
    mapped: &mut Mapped,
    fields: &mut Vec<u8>,
    stored: Option<&model::Dossier>,
    encoder: &FieldEncoder,
) -> Result<Vec<String>, StoreError> {
    let Some(stored) = stored.filter(|_| !mapped.kept.is_empty()) else {
        return Ok(Vec::new());
    };
    let mut kept = Vec::new();
    for name in std::mem::take(&mut mapped.kept) {
        if let Some(value) = stored.fields.get(&name) {
            mapped.dossier.fields.insert(name.clone(), value.clone());
            kept.push(name);
        }
    }
    if !kept.is_empty() {
        *fields = encoder
            .encode(&mapped.dossier.fields)
            .map_err(StoreError::Corrupt)?;
    }
    Ok(kept)
}

/// Marks the creations and step changes the source already e-mailed the
/// applicant about (DS's deposit e-mail, its e-mail on each state change): one
/// of its automatic messages (from `senders`) within an hour of the event.
pub(super) fn mark_notified_by_source(
    events: &mut [Event],
    messages: &[model::SourceMessage],
    senders: &[String],
) {
    if senders.is_empty() {
        return;
    }
    for event in events
        .iter_mut()
        .filter(|e| matches!(e.kind, EventKind::Created | EventKind::StepChanged))
    {
        event.notified_by_source = messages.iter().any(|m| {
            senders.contains(&m.from.to_lowercase())
                && (m.at - event.occurred_at).abs() <= chrono::Duration::hours(1)
        });
    }
}

/// The stored dossiers a whole snapshot makes go.
pub(super) struct Disappearances<'d> {
    /// Positions in the index, each with the deletion the source stated for it, if it did.
    pub(super) gone: Vec<(usize, Option<&'d model::SourceDeletion>)>,
    /// Whether the snapshot tells who is gone by absence.
    pub(super) full: bool,
    /// How many stored dossiers were present before it.
    pub(super) present_before: u64,
    /// How many go by absence alone, not by a deletion the source stated.
    pub(super) missing: u64,
}

/// The stored dossiers the snapshot read makes go.
pub(super) fn disappearances<'d>(
    index: &Index,
    read: &'d ReadEnd,
    mode: Mode,
) -> Disappearances<'d> {
    // Only a full snapshot tells who is gone by absence (an incremental one holds
    // changes only, unless it started over); the source's own deletions always do.
    let full = mode == Mode::Full || read.full_snapshot;
    let gone = gone(&index.entries, &read.seen, full, &read.deleted);
    // The guard is against truncated snapshots; deletions a source states are not guessed.
    let missing = gone.iter().filter(|(_, stated)| stated.is_none()).count() as u64;
    Disappearances {
        full,
        present_before: index.entries.iter().filter(|e| e.present()).count() as u64,
        missing,
        gone,
    }
}

/// The stored dossiers a snapshot makes go, as positions in the index, each with
/// the deletion the source stated for it, if it did: those the source said it
/// deleted and, from a `full` snapshot, every present one it did not hold.
pub(super) fn gone<'d>(
    entries: &[Entry],
    seen: &[u32],
    full: bool,
    deleted: &'d [model::SourceDeletion],
) -> Vec<(usize, Option<&'d model::SourceDeletion>)> {
    let mut stated: Vec<(IdKey, &model::SourceDeletion)> =
        deleted.iter().map(|d| (id_key(&d.id), d)).collect();
    stated.sort_unstable_by_key(|(key, _)| *key);
    entries
        .iter()
        .zip(seen)
        .enumerate()
        .filter(|(_, (e, _))| e.present())
        .filter_map(|(i, (e, seen))| {
            let deletion = stated
                .binary_search_by_key(&e.key(), |(key, _)| *key)
                .ok()
                .map(|at| stated[at].1);
            (deletion.is_some() || (full && *seen == 0)).then_some((i, deletion))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An index of the stored ids `ids`, present, their raw hash 7.
    fn index_of(ids: &[&str]) -> Index {
        let entries = ids
            .iter()
            .zip(1..)
            .map(|(id, row)| Entry::new(id_key(id), row, 7, true))
            .collect();
        Index::sorted(entries)
    }

    #[test]
    fn an_id_read_twice_from_a_file_is_a_duplicate_naming_its_first_line() {
        let index = index_of(&["A"]);
        let mut sightings = Sightings::new(&index, false);
        assert!(matches!(
            sightings.sight(&index, id_key("A"), 2),
            Sighting::Known {
                repeated: false,
                ..
            }
        ));
        assert!(matches!(
            sightings.sight(&index, id_key("A"), 5),
            Sighting::Duplicate { first_line: 2 }
        ));
        // New ids seen twice are found once the file is read.
        assert!(matches!(
            sightings.sight(&index, id_key("B"), 3),
            Sighting::New
        ));
        sightings.sight(&index, id_key("C"), 4);
        sightings.sight(&index, id_key("B"), 9);
        let (seen, duplicates) = sightings.end();
        assert_eq!(seen, [2]);
        let named: Vec<(u64, u64, Result<String, IdKey>)> = duplicates
            .into_iter()
            .map(|d| (d.line, d.first_line, d.id))
            .collect();
        assert_eq!(named, [(9, 3, Err(id_key("B")))]);
    }

    #[test]
    fn an_api_sending_a_dossier_again_is_no_duplicate() {
        let index = index_of(&["A"]);
        let mut sightings = Sightings::new(&index, true);
        sightings.sight(&index, id_key("A"), 2);
        assert!(matches!(
            sightings.sight(&index, id_key("A"), 5),
            Sighting::Known { repeated: true, .. }
        ));
        sightings.sight(&index, id_key("B"), 3);
        sightings.sight(&index, id_key("B"), 8);
        let (seen, duplicates) = sightings.end();
        assert_eq!(seen, [5], "the later copy is the one seen");
        assert!(duplicates.is_empty());
    }

    #[test]
    fn a_full_snapshot_makes_go_the_dossiers_it_lacks_and_any_snapshot_those_deleted() {
        let index = index_of(&["A", "B", "C"]);
        let deleted = vec![model::SourceDeletion {
            id: "C".to_owned(),
            at: None,
            reason: None,
        }];
        let at = |id: &str| index.find(id_key(id)).unwrap();
        let mut seen = vec![0; 3];
        seen[at("A")] = 2;
        seen[at("C")] = 3;
        let full = gone(&index.entries, &seen, true, &deleted);
        let mut positions: Vec<(usize, bool)> =
            full.iter().map(|&(i, d)| (i, d.is_some())).collect();
        positions.sort_unstable();
        let mut expected = vec![(at("B"), false), (at("C"), true)];
        expected.sort_unstable();
        assert_eq!(positions, expected);
        let incremental = gone(&index.entries, &seen, false, &deleted);
        assert_eq!(incremental.len(), 1);
        assert_eq!(incremental[0].0, at("C"));
    }
}
