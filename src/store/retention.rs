//! Retention of personal data (RGPD): closed dossiers lose it after a while.
//!
//! Owns what counts as personal data in the store and its erasure. A dossier is
//! closed when it is in a final step, or gone from its source; once closed for
//! longer than `[retention] personal_data`, it loses the fields that name or reach
//! people (see [`PERSONAL`]), the senders and bodies of its messages, the values of
//! its changes to those fields, and the addresses and relay replies of its alerts.
//! Its steps, dates, scheme and amounts stay: the delay statistics keep using it.
//! The records imports rejected go too once their import is that old, whatever
//! their dossier. The copies in files are the `retention` module's.

use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, params};
use serde::Serialize;

use super::{Result, Store, fields, format_time};
use crate::lifecycle::Lifecycle;

/// The fields that name or reach people (besides every `extra.*` field, whose
/// content nobody knows): they go.
pub(crate) const PERSONAL: [&str; 6] = [
    "title",
    "beneficiary.name",
    "beneficiary.email",
    "beneficiary.siret",
    "instructor.name",
    "instructor.email",
];

/// What a purge erased (or would erase).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub(crate) struct Purged {
    /// Dossiers that lost their personal data.
    pub dossiers: u64,
    /// Fields erased from them.
    pub fields: u64,
    /// Messages whose sender and text were erased.
    pub messages: u64,
    /// Field changes whose values were erased.
    pub field_changes: u64,
    /// Alerts whose address and relay replies were erased.
    pub alerts: u64,
    /// Rejected records (their reasons and ids echo the values they held) of
    /// imports that ended before the cut-off, deleted.
    pub rejections: u64,
    /// Front office records deleted: the audit of the dossiers purged, sessions
    /// ended, links expired, sign-in messages done.
    #[serde(default)]
    pub front_office: u64,
}

/// The dossiers closed before `before` and not purged yet: in a final step since
/// then, or gone from their source since then.
const CLOSED: &str = "
    SELECT d.id FROM dossiers d
    WHERE d.purged_at IS NULL
      AND ((d.step IN (SELECT value FROM json_each(?1)) AND d.step_entered_at < ?2)
        OR (d.present = 0 AND (SELECT max(occurred_at) FROM events e
                               WHERE e.dossier_id = d.id AND e.kind = 'disappeared') < ?2))";

/// The instant before which a dossier closed at `now` has been closed for longer
/// than `keep`; `None` when `keep` reaches before any representable time.
pub(crate) fn closed_before(
    now: DateTime<Utc>,
    keep: std::time::Duration,
) -> Option<DateTime<Utc>> {
    chrono::Duration::from_std(keep)
        .ok()
        .and_then(|keep| now.checked_sub_signed(keep))
}

impl Store {
    /// Erases the personal data of the dossiers closed before `before` (in a final
    /// step of `lifecycle`, or gone from their source), and the rejected records
    /// of the imports that ended before then, and the front office's records
    /// that are over (`sessions`: `[web] session_idle` and `session_max`), in
    /// one transaction; with `dry_run`, only counts.
    ///
    /// # Errors
    /// On a database error; then nothing is erased.
    pub(crate) fn purge(
        &mut self,
        lifecycle: &Lifecycle,
        before: DateTime<Utc>,
        now: DateTime<Utc>,
        sessions: (std::time::Duration, std::time::Duration),
        dry_run: bool,
    ) -> Result<Purged> {
        // What is erased is overwritten with zeros in the file, not just unlinked.
        self.conn.pragma_update(None, "secure_delete", "ON")?;
        let tx = self.conn.transaction()?;
        let finals: Vec<&str> = lifecycle
            .steps()
            .iter()
            .filter(|s| s.is_final)
            .map(|s| s.id.as_str())
            .collect();
        let steps = serde_json::to_string(&finals).unwrap_or_else(|_| "[]".to_owned());
        let ids: Vec<i64> = {
            let mut stmt = tx.prepare(CLOSED)?;
            let rows = stmt.query_map(params![steps, format_time(before)], |r| r.get(0))?;
            rows.collect::<std::result::Result<_, _>>()?
        };
        // The name ids of the personal fields (a name never stored has none).
        let mut drop = Vec::new();
        {
            let mut stmt =
                tx.prepare("SELECT id FROM field_names WHERE name = ?1 OR name LIKE 'extra.%'")?;
            for name in PERSONAL {
                let mut rows = stmt.query([name])?;
                while let Some(row) = rows.next()? {
                    let id: i64 = row.get(0)?;
                    drop.push(id as u64);
                }
            }
            drop.sort_unstable();
            drop.dedup();
        }
        let personal = serde_json::to_string(&PERSONAL).unwrap_or_else(|_| "[]".to_owned());
        let mut purged = Purged::default();
        for &id in &ids {
            purged.dossiers += 1;
            let blob: Option<Vec<u8>> = tx
                .query_row("SELECT fields FROM dossiers WHERE id = ?1", [id], |r| {
                    r.get(0)
                })
                .optional()?;
            let (stripped, dropped) = fields::strip(&blob.unwrap_or_default(), &drop);
            purged.fields += dropped;
            let count = |sql: &str, p: &[&dyn rusqlite::ToSql]| -> Result<u64> {
                Ok(tx.query_row(sql, p, |r| r.get::<_, i64>(0))? as u64)
            };
            purged.messages += count(
                "SELECT count(*) FROM events WHERE dossier_id = ?1 AND kind = 'message'
                 AND (field IS NOT NULL OR new_value IS NOT NULL)",
                &[&id],
            )?;
            purged.field_changes += count(
                "SELECT count(*) FROM events WHERE dossier_id = ?1 AND kind = 'field_changed'
                 AND (field IN (SELECT value FROM json_each(?2)) OR field LIKE 'extra.%')
                 AND (old_value IS NOT NULL OR new_value IS NOT NULL)",
                &[&id, &personal],
            )?;
            purged.alerts += count(
                "SELECT count(*) FROM alerts WHERE dossier_id = ?1 AND recipient <> ''",
                &[&id],
            )?;
            if dry_run {
                continue;
            }
            tx.execute(
                "UPDATE dossiers SET fields = ?2, purged_at = ?3 WHERE id = ?1",
                params![id, stripped, format_time(now)],
            )?;
            tx.execute(
                "UPDATE events SET field = NULL, new_value = NULL
                 WHERE dossier_id = ?1 AND kind = 'message'",
                [id],
            )?;
            tx.execute(
                "UPDATE events SET old_value = NULL, new_value = NULL
                 WHERE dossier_id = ?1 AND kind = 'field_changed'
                   AND (field IN (SELECT value FROM json_each(?2)) OR field LIKE 'extra.%')",
                params![id, personal],
            )?;
            tx.execute(
                "UPDATE deliveries SET reply = NULL
                 WHERE alert_id IN (SELECT id FROM alerts WHERE dossier_id = ?1)",
                [id],
            )?;
            // The key names the recipient too: it becomes the alert's id. An alert
            // still waiting has nobody to go to any more.
            tx.execute(
                "UPDATE alerts SET recipient = '', key = 'purged:' || id,
                        reason = CASE WHEN status = 'pending'
                                      THEN 'données personnelles effacées (purge)' END,
                        status = CASE WHEN status = 'pending' THEN 'cancelled' ELSE status END
                 WHERE dossier_id = ?1",
                [id],
            )?;
        }
        if !dry_run {
            super::beneficiaries::purge(&tx, &ids)?;
        }
        purged.rejections = purge_rejections(&tx, before, dry_run)?;
        purged.front_office = super::front::purge(&tx, &ids, sessions, now, dry_run)?;
        if !dry_run {
            tx.commit()?;
        }
        Ok(purged)
    }
}

/// Deletes (with `dry_run`, counts) the rejected records of the imports that
/// ended before `before`, whatever their dossiers: a rejected record may belong
/// to none.
fn purge_rejections(
    tx: &rusqlite::Transaction<'_>,
    before: DateTime<Utc>,
    dry_run: bool,
) -> Result<u64> {
    let old_runs = "SELECT id FROM runs WHERE finished_at < ?1";
    let count = tx.query_row(
        &format!("SELECT count(*) FROM rejections WHERE run_id IN ({old_runs})"),
        [format_time(before)],
        |r| r.get::<_, i64>(0),
    )?;
    if !dry_run {
        tx.execute(
            &format!("DELETE FROM rejections WHERE run_id IN ({old_runs})"),
            [format_time(before)],
        )?;
    }
    Ok(count as u64)
}

#[cfg(test)]
mod tests {
    const SESSIONS: (std::time::Duration, std::time::Duration) = (
        std::time::Duration::from_secs(3_600),
        std::time::Duration::from_secs(43_200),
    );
    use super::*;
    use crate::test_support::utc;

    /// A store with one closed dossier of 2020 whose events, alerts, deliveries
    /// and rejections name its beneficiary, and one recent rejection.
    fn seeded(dir: &std::path::Path) -> Store {
        let store = Store::open(&dir.join("state.db"), 8).unwrap();
        let encoder =
            fields::register(&store.conn, ["beneficiary.email", "amount_granted"]).unwrap();
        let blob = encoder
            .encode(
                &[
                    ("beneficiary.email", "jeanne@example.org"),
                    ("amount_granted", "1000.00"),
                ]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
            )
            .unwrap();
        store
            .conn
            .execute_batch(
                "INSERT INTO runs (id, connector, source, fingerprint, started_at, finished_at, status, baseline)
                 VALUES (1, 'p', 'f', '0', '2020-01-01T00:00:00Z', '2020-01-01T00:00:00Z', 'applied', 1);",
            )
            .unwrap();
        store
            .conn
            .execute(
                "INSERT INTO dossiers (id, connector, source_id, reference, scheme, step, status,
                                       step_entered_at, fields, first_run, last_run)
                 VALUES (1, 'p', 'D1', 'REF-1', 'Culture', 'cloture', 'Clôturé',
                         '2020-01-03T00:00:00Z', ?1, 1, 1)",
                [&blob],
            )
            .unwrap();
        store
            .conn
            .execute_batch(
                "INSERT INTO events (id, run_id, dossier_id, kind, field, new_value, occurred_at, baseline)
                 VALUES (1, 1, 1, 'message', 'jeanne@example.org', 'Bonjour, je suis Jeanne', '2020-01-02T00:00:00Z', 0),
                        (2, 1, 1, 'field_changed', 'beneficiary.email', 'jeanne@example.org', '2020-01-02T00:00:00Z', 0),
                        (3, 1, 1, 'step_changed', NULL, NULL, '2020-01-03T00:00:00Z', 0);
                 UPDATE events SET old_value = 'j@example.org' WHERE id = 2;
                 INSERT INTO alerts (id, key, run_id, event_id, dossier_id, rule, template, class, role,
                                     recipient, digest, status, created_at, due_at, updated_at)
                 VALUES (1, 'r:1:3:jeanne@example.org', 1, 3, 1, 'r', 't', 'mandatory', 'beneficiary',
                         'jeanne@example.org', 1, 'sent', '2020-01-03T00:00:00Z', '2020-01-03T00:00:00Z', '2020-01-03T00:00:00Z'),
                        (2, 'r:1:3:instr@example.org', 1, 3, 1, 'r', 't', 'mandatory', 'instructor',
                         'instr@example.org', 1, 'pending', '2020-01-03T00:00:00Z', '2020-01-03T00:00:00Z', '2020-01-03T00:00:00Z');
                 INSERT INTO deliveries (alert_id, attempted_at, transport, outcome, reply)
                 VALUES (1, '2020-01-03T00:00:00Z', 'smtp', 'sent', '250 OK <jeanne@example.org>');
                 INSERT INTO runs (id, connector, source, fingerprint, started_at, finished_at, status, baseline)
                 VALUES (2, 'p', 'g', '0', '2025-12-01T00:00:00Z', '2025-12-01T00:00:00Z', 'applied', 0);
                 INSERT INTO rejections (run_id, severity, file, source_id, reason)
                 VALUES (1, 'rejected', 'f', 'jeanne@example.org', 'not a SIRET: jeanne'),
                        (2, 'rejected', 'g', 'D2', 'recent: kept');",
            )
            .unwrap();
        store
    }

    #[test]
    fn messages_changes_and_alerts_lose_what_names_people() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = seeded(dir.path());
        let lifecycle = crate::test_support::shipped_lifecycle();
        let now = utc("2026-01-01T00:00:00Z");
        let before = utc("2023-01-01T00:00:00Z");
        let dry = store
            .purge(&lifecycle, before, now, SESSIONS, true)
            .unwrap();
        let expected = Purged {
            dossiers: 1,
            fields: 1,
            messages: 1,
            field_changes: 1,
            alerts: 2,
            rejections: 1,
            front_office: 0,
        };
        assert_eq!(dry, expected);
        assert_eq!(
            store
                .purge(&lifecycle, before, now, SESSIONS, false)
                .unwrap(),
            expected
        );
        let text: String = store
            .conn
            .query_row(
                "SELECT group_concat(coalesce(field, '') || coalesce(old_value, '') || coalesce(new_value, ''), '|')
                 FROM events",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert!(!text.contains("jeanne"), "{text}");
        let alerts: Vec<(String, String, String)> = {
            let mut stmt = store
                .conn
                .prepare("SELECT key, recipient, status FROM alerts ORDER BY id")
                .unwrap();
            stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .unwrap()
                .collect::<std::result::Result<_, _>>()
                .unwrap()
        };
        assert_eq!(
            alerts,
            [
                ("purged:1".to_owned(), String::new(), "sent".to_owned()),
                ("purged:2".to_owned(), String::new(), "cancelled".to_owned()),
            ]
        );
        let reply: Option<String> = store
            .conn
            .query_row("SELECT reply FROM deliveries", [], |r| r.get(0))
            .unwrap();
        assert_eq!(reply, None);
        let kept: String = store
            .conn
            .query_row("SELECT group_concat(reason) FROM rejections", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(kept, "recent: kept");
        // The amount and the step stay.
        let step: String = store
            .conn
            .query_row("SELECT step FROM dossiers", [], |r| r.get(0))
            .unwrap();
        assert_eq!(step, "cloture");
        assert_eq!(
            store
                .purge(&lifecycle, before, now, SESSIONS, false)
                .unwrap(),
            Purged::default()
        );
    }
}
