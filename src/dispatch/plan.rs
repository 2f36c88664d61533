//! What a pass does with the alerts it read, decided without I/O: which are
//! cancelled (their dossier left the step they were held for; informational
//! ones to an address that unsubscribed), which are put off (a recipient's daily
//! limit), and which go together in one message (a recipient's digest, or the
//! copy of an interrupted message under its Message-ID).

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};

use super::MAX_DIGEST;
use crate::rules::Class;
use crate::store::{DueAlert, OutboxChange};

/// What a pass will do with the alerts it read.
#[derive(Debug, Default)]
pub struct PassPlan {
    /// One message each: alerts to the same recipient, or one alone.
    pub groups: Vec<Vec<DueAlert>>,
    /// Cancellations and deferrals, applied before sending.
    pub changes: Vec<OutboxChange>,
    /// How many were cancelled.
    pub cancelled: u64,
    /// How many were put off.
    pub deferred: u64,
}

/// Why an informational alert to an address that unsubscribed is not sent.
pub const UNSUBSCRIBED: &str =
    "le destinataire s'est désabonné des messages d'information : non envoyé";

/// Decides what to do with due alerts (pure): cancel those whose dossier left the
/// step they were held for and the informational ones to an address that
/// unsubscribed from them, put off those past a recipient's daily limit, and
/// gather the digestible alerts of each recipient into one message. Alerts tried
/// before under a Message-ID go together again, and with no other alert: the
/// copy of an interrupted message is the same message. Addresses compare
/// without case: `sent_today` (messages sent in the last 24 hours) and
/// `opted_out` (addresses that left the informational messages) are keyed by
/// lowercase address.
pub fn plan(
    due: Vec<DueAlert>,
    sent_today: &HashMap<String, u32>,
    opted_out: &HashSet<String>,
    per_day: u32,
    now: DateTime<Utc>,
    policy: &crate::timing::Policy,
    lifecycle: &crate::lifecycle::Lifecycle,
) -> PassPlan {
    let mut planned = PassPlan::default();
    let mut digests: HashMap<String, usize> = HashMap::new();
    let mut resumed: HashMap<String, usize> = HashMap::new();
    let mut messages: HashMap<String, u32> = HashMap::new();
    for alert in due {
        if let Some(held) = &alert.hold_step
            && *held != alert.dossier.dossier.step
        {
            planned.changes.push(OutboxChange::Cancel {
                id: alert.id,
                reason: crate::rules::left_step(lifecycle.label(&alert.dossier.dossier.step)),
            });
            planned.cancelled += 1;
            continue;
        }
        let address = alert.recipient.to_lowercase();
        if alert.class == Class::Informational.as_str() && opted_out.contains(&address) {
            planned.changes.push(OutboxChange::Cancel {
                id: alert.id,
                reason: UNSUBSCRIBED.to_owned(),
            });
            planned.cancelled += 1;
            continue;
        }
        // A message tried before goes again as it was, under its Message-ID.
        if let Some(&g) = alert.message_id.as_ref().and_then(|id| resumed.get(id)) {
            planned.groups[g].push(alert);
            continue;
        }
        if alert.digest
            && alert.message_id.is_none()
            && let Some(&g) = digests.get(&address)
            && planned.groups[g].len() < MAX_DIGEST
        {
            planned.groups[g].push(alert);
            continue;
        }
        let count = sent_today.get(&address).copied().unwrap_or(0)
            + messages.get(&address).copied().unwrap_or(0);
        if count >= per_day {
            planned.changes.push(OutboxChange::Defer {
                id: alert.id,
                until: policy.next_open(now + chrono::Duration::hours(1)),
                reason: format!(
                    "limite de {per_day} messages par jour atteinte pour cette adresse : envoi reporté"
                ),
            });
            planned.deferred += 1;
            continue;
        }
        *messages.entry(address.clone()).or_default() += 1;
        if let Some(id) = &alert.message_id {
            resumed.insert(id.clone(), planned.groups.len());
        } else if alert.digest {
            digests.insert(address, planned.groups.len());
        }
        planned.groups.push(vec![alert]);
    }
    planned
}

#[cfg(test)]
pub(super) mod tests {
    use std::time::Duration;

    use super::*;
    use crate::model::{Dossier, Event, EventKind};
    use crate::store::StoredDossier;
    use crate::test_support::{shipped_lifecycle as lifecycle, utc};
    use crate::timing::{Digest, Policy};

    pub(in crate::dispatch) fn policy(windows: &[&str]) -> Policy {
        Policy {
            tz: chrono_tz::Europe::Paris,
            debounce: Duration::ZERO,
            digest: Digest::Import,
            windows: windows.iter().map(|w| w.parse().unwrap()).collect(),
        }
    }

    pub(in crate::dispatch) fn alert(
        id: i64,
        to: &str,
        digest: bool,
        step: &str,
        hold: Option<&str>,
    ) -> DueAlert {
        let now = utc("2026-03-10T09:00:00Z");
        DueAlert {
            id,
            key: format!("r/{id}/{id}/{to}"),
            rule: "r".to_owned(),
            template: "t".to_owned(),
            role: "beneficiary".to_owned(),
            class: "mandatory".to_owned(),
            recipient: to.to_owned(),
            digest,
            hold_step: hold.map(str::to_owned),
            attempts: 0,
            created_at: now,
            dossier: StoredDossier {
                rowid: id,
                connector: "c".to_owned(),
                dossier: Dossier {
                    id: format!("D{id}"),
                    step: step.to_owned(),
                    status: step.to_owned(),
                    fields: Default::default(),
                },
                present: true,
                step_entered_at: now,
            },
            event: Event::new(EventKind::StepChanged, now),
            message_id: None,
        }
    }

    fn ids(group: &[DueAlert]) -> Vec<i64> {
        group.iter().map(|a| a.id).collect()
    }

    #[test]
    fn digests_gather_one_recipient_and_others_go_alone() {
        let due = vec![
            alert(1, "a@x.fr", true, "instruction", None),
            alert(2, "b@x.fr", true, "instruction", None),
            alert(3, "A@x.fr", true, "instruction", None),
            alert(4, "a@x.fr", false, "refuse", None),
        ];
        let now = utc("2026-03-10T09:00:00Z");
        let planned = plan(
            due,
            &HashMap::new(),
            &HashSet::new(),
            20,
            now,
            &policy(&[]),
            &lifecycle(),
        );
        let groups: Vec<Vec<i64>> = planned.groups.iter().map(|g| ids(g)).collect();
        assert_eq!(groups, [vec![1, 3], vec![2], vec![4]]);
        assert!(planned.changes.is_empty());
    }

    /// Regression: after a crash, a regrouped digest went out again under a new
    /// Message-ID (with other alerts in it), so mail clients could not see a copy.
    #[test]
    fn an_interrupted_message_goes_again_whole_under_its_message_id() {
        let resumed = |id: i64, to: &str| {
            let mut a = alert(id, to, true, "instruction", None);
            a.message_id = Some("<m1@x.fr>".to_owned());
            a
        };
        let due = vec![
            alert(1, "a@x.fr", true, "instruction", None),
            resumed(2, "a@x.fr"),
            alert(3, "a@x.fr", true, "instruction", None),
            resumed(4, "a@x.fr"),
        ];
        let now = utc("2026-03-10T09:00:00Z");
        let planned = plan(
            due,
            &HashMap::new(),
            &HashSet::new(),
            20,
            now,
            &policy(&[]),
            &lifecycle(),
        );
        let groups: Vec<Vec<i64>> = planned.groups.iter().map(|g| ids(g)).collect();
        assert_eq!(groups, [vec![1, 3], vec![2, 4]]);
    }

    #[test]
    fn a_dossier_that_left_the_held_step_cancels_its_alert() {
        let due = vec![
            alert(1, "a@x.fr", true, "commission", Some("instruction")),
            alert(2, "b@x.fr", true, "instruction", Some("instruction")),
        ];
        let planned = plan(
            due,
            &HashMap::new(),
            &HashSet::new(),
            20,
            utc("2026-03-10T09:00:00Z"),
            &policy(&[]),
            &lifecycle(),
        );
        assert_eq!(planned.cancelled, 1);
        assert!(matches!(
            &planned.changes[0],
            OutboxChange::Cancel { id: 1, .. }
        ));
        // The reason names the step as the import's cancellations do: by its label.
        assert!(
            matches!(&planned.changes[0], OutboxChange::Cancel { reason, .. }
                if reason.ends_with("(désormais : En attente du vote de la Commission permanente)")),
            "{:?}",
            planned.changes[0]
        );
        assert_eq!(planned.groups.len(), 1);
        assert_eq!(ids(&planned.groups[0]), [2]);
    }

    #[test]
    fn an_unsubscribed_address_gets_only_its_mandatory_alerts() {
        let informational = |id: i64, to: &str| {
            let mut a = alert(id, to, true, "instruction", None);
            a.class = "informational".to_owned();
            a
        };
        let due = vec![
            informational(1, "A@x.fr"),
            alert(2, "a@x.fr", true, "instruction", None),
            informational(3, "a@x.fr"),
            informational(4, "b@x.fr"),
        ];
        let opted_out = HashSet::from(["a@x.fr".to_owned()]);
        let now = utc("2026-03-10T09:00:00Z");
        let planned = plan(
            due,
            &HashMap::new(),
            &opted_out,
            20,
            now,
            &policy(&[]),
            &lifecycle(),
        );
        let groups: Vec<Vec<i64>> = planned.groups.iter().map(|g| ids(g)).collect();
        // Within a digest, only the informational alerts drop out.
        assert_eq!(groups, [vec![2], vec![4]]);
        assert_eq!(planned.cancelled, 2);
        assert_eq!(
            planned.changes,
            [1, 3].map(|id| OutboxChange::Cancel {
                id,
                reason: UNSUBSCRIBED.to_owned()
            })
        );
    }

    #[test]
    fn the_daily_limit_puts_off_the_rest_into_the_next_sending_window() {
        let due = vec![
            alert(1, "a@x.fr", false, "instruction", None),
            alert(2, "a@x.fr", false, "instruction", None),
            alert(3, "b@x.fr", false, "instruction", None),
        ];
        let sent = HashMap::from([("a@x.fr".to_owned(), 1)]);
        // Tuesday 18:30 Paris: an hour later is past 19:00, so Wednesday 08:00.
        let now = utc("2026-03-10T17:30:00Z");
        let planned = plan(
            due,
            &sent,
            &HashSet::new(),
            2,
            now,
            &policy(&["mon-fri 08:00-19:00"]),
            &lifecycle(),
        );
        let groups: Vec<Vec<i64>> = planned.groups.iter().map(|g| ids(g)).collect();
        assert_eq!(groups, [vec![1], vec![3]]);
        assert_eq!(planned.deferred, 1);
        match &planned.changes[0] {
            OutboxChange::Defer { id, until, reason } => {
                assert_eq!(*id, 2);
                assert_eq!(*until, utc("2026-03-11T07:00:00Z"));
                assert!(reason.contains("limite de 2 messages par jour"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
    }
}
