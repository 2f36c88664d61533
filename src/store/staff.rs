//! What the staff view reads (issue 21): the dossiers an instructor instructs,
//! found through the lookup of [`super::beneficiaries`] (`instructor_emails`),
//! or every dossier for the `pilotage` role, with filters; one dossier's whole
//! record; the exchanges' times for the figures of `/pilotage`; and the audit of
//! what staff were shown.
//!
//! Owns no table: it reads `dossiers`, `events`, `alerts`, `deliveries` and
//! `exchanges`, and writes `web_audit` (actions `staff-dossier`, `staff-reply`,
//! migration 0025). A purged dossier is never listed nor shown.
//! Who may see what, the grouping of the list and the wording are the `web`
//! module's.

use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, params};

use super::{
    AlertRecord, Attempt, Channel, Exchange, ExchangeKind, FrontDossier, NewExchange, Result, Side,
    Store, StoredEvent, beneficiaries, format_time, parse_time,
};

/// Which dossiers a staff list covers: those of one instructor (any when
/// none), of one scheme, step and connector (any when none).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub(crate) struct Scope {
    /// An instructor's address (`instructor.email`).
    pub instructor: Option<String>,
    /// A scheme.
    pub scheme: Option<String>,
    /// A step.
    pub step: Option<String>,
    /// A connector.
    pub connector: Option<String>,
}

/// One dossier as the staff list reads it: its columns, the few fields asked
/// for, and its last message exchanged.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct WorkRow {
    /// Its row id.
    pub rowid: i64,
    /// Its connector.
    pub connector: String,
    /// Its reference.
    pub reference: String,
    /// Its scheme.
    pub scheme: Option<String>,
    /// Its step.
    pub step: String,
    /// When it entered its step.
    pub entered: DateTime<Utc>,
    /// Its last change (its latest event), or when it entered its step.
    pub changed_at: DateTime<Utc>,
    /// Whether its source still lists it.
    pub present: bool,
    /// The values of the fields asked for, in their order.
    pub values: Vec<Option<String>>,
    /// Its last message exchanged (not an auto-reply nor a bounce): who wrote
    /// it, and when.
    pub last_message: Option<(Side, DateTime<Utc>)>,
}

/// What the filters of the `pilotage` list offer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Choices {
    /// The schemes of the dossiers, sorted.
    pub schemes: Vec<String>,
    /// The connectors of the dossiers, sorted.
    pub connectors: Vec<String>,
    /// The instructors' addresses, sorted.
    pub instructors: Vec<String>,
}

/// What an answer written on the staff view led to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Replied {
    /// Recorded, for the beneficiary's first address when it has one.
    Recorded,
    /// The dossier is gone (purged) or was never there.
    NoDossier,
    /// Its author wrote too many messages within the hour: nothing recorded.
    Limited,
}

/// One dossier as its staff page shows it.
#[derive(Debug, Clone)]
pub(crate) struct StaffPage {
    /// The dossier.
    pub dossier: FrontDossier,
    /// Its events, oldest first.
    pub events: Vec<StoredEvent>,
    /// Every alert about it, with its delivery attempts.
    pub alerts: Vec<(AlertRecord, Vec<Attempt>)>,
    /// Its exchanges, oldest first.
    pub exchanges: Vec<Exchange>,
}

impl Store {
    /// Whether `email` (any case) is the instructor address of a dossier that
    /// is not purged.
    ///
    /// # Errors
    /// On a database error.
    pub(crate) fn is_instructor(&self, email: &str) -> Result<bool> {
        beneficiaries::listed(&self.conn, &beneficiaries::INSTRUCTORS, email)
    }

    /// Whether `email` (any case) is an instructor address of dossier `rowid`.
    ///
    /// # Errors
    /// On a database error.
    pub(crate) fn instructs(&self, email: &str, rowid: i64) -> Result<bool> {
        Ok(self
            .conn
            .prepare_cached(
                "SELECT EXISTS (SELECT 1 FROM instructor_emails WHERE email = ?1 AND dossier_id = ?2)",
            )?
            .query_row(params![beneficiaries::normalize(email), rowid], |r| r.get(0))?)
    }

    /// The dossiers of `scope` that are not purged, with the values of
    /// `fields`, in no order.
    ///
    /// # Errors
    /// On a database error or a corrupt row.
    pub(crate) fn work_rows(&self, scope: &Scope, fields: &[String]) -> Result<Vec<WorkRow>> {
        let mut wanted = Vec::with_capacity(fields.len());
        for name in fields {
            let id: Option<i64> = self
                .conn
                .query_row("SELECT id FROM field_names WHERE name = ?1", [name], |r| {
                    r.get(0)
                })
                .optional()?;
            wanted.push(id.map_or(u64::MAX, |id| id as u64));
        }
        // An instructor's dossiers are found through their index (a scan of
        // every dossier would hold the store's thread for all the others).
        let from = if scope.instructor.is_some() {
            "FROM instructor_emails i JOIN dossiers d ON d.id = i.dossier_id
             WHERE i.email = ?1 AND d.purged_at IS NULL"
        } else {
            "FROM dossiers d WHERE ?1 IS NULL AND d.purged_at IS NULL"
        };
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT d.id, d.connector, d.reference, d.scheme, d.step, d.step_entered_at, d.present,
                    d.fields,
                    -- The latest event recorded (the index gives it without
                    -- reading the dossier's others).
                    coalesce((SELECT e.occurred_at FROM events e WHERE e.dossier_id = d.id
                              ORDER BY e.id DESC LIMIT 1),
                             d.step_entered_at),
                    (SELECT x.direction || ' ' || x.at FROM exchanges x
                     WHERE x.dossier_id = d.id AND x.kind = 'message'
                     ORDER BY x.at DESC, x.id DESC LIMIT 1)
             {from}
               AND (?2 IS NULL OR d.scheme = ?2)
               AND (?3 IS NULL OR d.step = ?3)
               AND (?4 IS NULL OR d.connector = ?4)"
        ))?;
        let instructor = scope.instructor.as_deref().map(beneficiaries::normalize);
        let mut rows = stmt.query(params![
            instructor,
            scope.scheme,
            scope.step,
            scope.connector
        ])?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            let mut picked = vec![None; wanted.len()];
            if !wanted.is_empty() {
                super::fields::pick(r.get_ref(7)?.as_blob()?, &wanted, &mut picked);
            }
            let last_message = match r.get_ref(9)?.as_str_or_null()? {
                Some(text) => {
                    let (side, at) = text.split_once(' ').unwrap_or((text, ""));
                    Some((Side::parse(side)?, parse_time(at)?))
                }
                None => None,
            };
            out.push(WorkRow {
                rowid: r.get(0)?,
                connector: r.get(1)?,
                reference: r.get(2)?,
                scheme: r.get(3)?,
                step: r.get(4)?,
                entered: parse_time(r.get_ref(5)?.as_str()?)?,
                present: r.get(6)?,
                changed_at: parse_time(r.get_ref(8)?.as_str()?)?,
                values: picked.iter().map(|v| v.map(str::to_owned)).collect(),
                last_message,
            });
        }
        Ok(out)
    }

    /// The schemes, connectors and instructors of the dossiers that are not purged.
    ///
    /// # Errors
    /// On a database error.
    pub(crate) fn staff_choices(&self) -> Result<Choices> {
        let list = |sql: &str| -> Result<Vec<String>> {
            let mut stmt = self.conn.prepare_cached(sql)?;
            let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
            Ok(rows.collect::<std::result::Result<_, _>>()?)
        };
        Ok(Choices {
            schemes: list(
                "SELECT DISTINCT scheme FROM dossiers
                 WHERE purged_at IS NULL AND scheme IS NOT NULL ORDER BY 1",
            )?,
            connectors: list(
                "SELECT DISTINCT connector FROM dossiers WHERE purged_at IS NULL ORDER BY 1",
            )?,
            instructors: list("SELECT DISTINCT email FROM instructor_emails ORDER BY 1")?,
        })
    }

    /// The row ids of the dossiers after `after` (purged ones too): what the
    /// staff view's addresses are made from.
    ///
    /// # Errors
    /// On a database error.
    pub(crate) fn dossier_ids_after(&self, after: i64) -> Result<Vec<i64>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT id FROM dossiers WHERE id > ?1 ORDER BY id")?;
        let rows = stmt.query_map([after], |r| r.get(0))?;
        Ok(rows.collect::<std::result::Result<_, _>>()?)
    }

    /// Dossier `rowid` with its whole record, unless it is purged (or there is
    /// none). Reads only (the store's reader serves it): the page served is
    /// recorded by [`Store::record_staff`].
    ///
    /// # Errors
    /// On a database error or a corrupt row.
    pub(crate) fn staff_page(&self, rowid: i64) -> Result<Option<StaffPage>> {
        let Some(dossier) = self.front_dossier(rowid)? else {
            return Ok(None);
        };
        let events = self.events(rowid)?;
        let alerts = self
            .alerts(None, Some(rowid), usize::MAX)?
            .into_iter()
            .map(|a| {
                let attempts = self.deliveries(a.id)?;
                Ok((a, attempts))
            })
            .collect::<Result<Vec<_>>>()?;
        let exchanges = self.exchanges(rowid)?;
        Ok(Some(StaffPage {
            dossier,
            events,
            alerts,
            exchanges,
        }))
    }

    /// Dossier `rowid` as the front office reads it, unless it is purged.
    ///
    /// # Errors
    /// On a database error or a corrupt row.
    pub(crate) fn front_dossier(&self, rowid: i64) -> Result<Option<FrontDossier>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT d.id, d.connector, d.source_id, d.step, d.status, d.fields,
                    d.present, d.step_entered_at, d.scheme,
                    coalesce((SELECT max(e.occurred_at) FROM events e WHERE e.dossier_id = d.id),
                             d.step_entered_at)
             FROM dossiers d WHERE d.id = ?1 AND d.purged_at IS NULL",
        )?;
        let mut rows = stmt.query([rowid])?;
        let Some(row) = rows.next()? else {
            return Ok(None);
        };
        let stored = self.read_dossier(row)?;
        let changed_at = parse_time(row.get_ref(9)?.as_str()?)?;
        Ok(Some(FrontDossier { stored, changed_at }))
    }

    /// Records `action` by `email` from `client` on each of the dossiers `rowids`.
    ///
    /// # Errors
    /// On a database error.
    pub(crate) fn record_staff(
        &mut self,
        email: &str,
        action: &str,
        rowids: &[i64],
        client: &str,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let tx = self.conn.transaction()?;
        {
            let mut stmt = tx.prepare_cached(
                "INSERT INTO web_audit (at, email, action, dossier_id, client)
                 VALUES (?1, lower(?2), ?3, ?4, ?5)",
            )?;
            for rowid in rowids {
                stmt.execute(params![format_time(now), email, action, rowid, client])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Records the service's answer `body` on dossier `rowid`, written by
    /// `author` on the staff view from `client`: to be forwarded to the
    /// beneficiary's first address, and recorded in the dossier's audit
    /// (`staff-reply`); unless `author` wrote `per_hour` messages within the
    /// hour before `now`. The same text by the same author on the same
    /// dossier within `resent_within` (the form sent twice: a double click) is
    /// the same answer, recorded once.
    ///
    /// # Errors
    /// On a database error or a corrupt row.
    pub(crate) fn record_reply(
        &mut self,
        rowid: i64,
        (author, client): (&str, &str),
        body: String,
        (per_hour, resent_within): (u32, chrono::TimeDelta),
        now: DateTime<Utc>,
    ) -> Result<Replied> {
        let Some(found) = self.front_dossier(rowid)? else {
            return Ok(Replied::NoDossier);
        };
        let author = beneficiaries::normalize(author);
        let again = self.exchanges(rowid)?.iter().rev().any(|x| {
            x.side == Side::Service
                && x.author == author
                && x.body == body
                && now - x.at < resent_within
        });
        if again {
            return Ok(Replied::Recorded);
        }
        let author = author.as_str();
        if self.written_since(author, now - chrono::TimeDelta::hours(1))? >= per_hour {
            return Ok(Replied::Limited);
        }
        let recipient =
            beneficiaries::addresses(&beneficiaries::BENEFICIARIES, &found.stored.dossier)
                .into_iter()
                .next();
        let new = NewExchange {
            dossier: rowid,
            side: Side::Service,
            channel: Channel::Web,
            kind: ExchangeKind::Message,
            author: author.to_owned(),
            body,
            original: None,
            received_id: None,
            recipient,
        };
        self.record_exchange(&new, now)?;
        self.record_staff(author, "staff-reply", &[rowid], client, now)?;
        Ok(Replied::Recorded)
    }

    /// How many messages `author` (any case) wrote on a page since `since`.
    ///
    /// # Errors
    /// On a database error.
    pub(crate) fn written_since(&self, author: &str, since: DateTime<Utc>) -> Result<u32> {
        Ok(self
            .conn
            .prepare_cached(
                "SELECT count(*) FROM exchanges
                 WHERE author = ?1 AND channel = 'web' AND at >= ?2",
            )?
            .query_row(
                params![beneficiaries::normalize(author), format_time(since)],
                |r| r.get(0),
            )?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A store with three dossiers: 1 and 2 instructed by A (2 in Sport), 3 by B.
    fn store() -> (Store, tempfile::TempDir) {
        let (store, dir) = super::super::test_store(
            "(1, 'p', 'D1', 'REF-1', 'Culture', 'depose', 'Déposé', '2026-01-03T00:00:00Z', x'01', 1, 1),
                        (2, 'p', 'D2', 'REF-2', 'Sport', 'instruction', 'En cours', '2026-01-04T00:00:00Z', x'01', 1, 1),
                        (3, 'q', 'D3', 'REF-3', 'Culture', 'depose', 'Déposé', '2026-01-05T00:00:00Z', x'01', 1, 1)",
            "INSERT INTO instructor_emails (email, dossier_id)
                 VALUES ('a@region.fr', 1), ('a@region.fr', 2), ('b@region.fr', 3);",
        );
        (store, dir)
    }

    /// Two answers an hour, the same one twice within ten minutes is one.
    const LIMITS: (u32, chrono::TimeDelta) = (2, chrono::TimeDelta::minutes(10));

    fn refs(rows: &[WorkRow]) -> Vec<&str> {
        let mut refs: Vec<&str> = rows.iter().map(|r| r.reference.as_str()).collect();
        refs.sort_unstable();
        refs
    }

    #[test]
    fn a_scope_is_an_instructor_a_scheme_a_step_and_a_connector() {
        let (store, _dir) = store();
        let rows = |scope: Scope| store.work_rows(&scope, &[]).unwrap();
        assert_eq!(refs(&rows(Scope::default())), ["REF-1", "REF-2", "REF-3"]);
        let mine = Scope {
            instructor: Some(" A@Region.FR ".into()),
            ..Scope::default()
        };
        assert_eq!(refs(&rows(mine.clone())), ["REF-1", "REF-2"]);
        let sport = Scope {
            scheme: Some("Sport".into()),
            ..mine
        };
        assert_eq!(refs(&rows(sport)), ["REF-2"]);
        let step = Scope {
            step: Some("depose".into()),
            connector: Some("q".into()),
            ..Scope::default()
        };
        assert_eq!(refs(&rows(step)), ["REF-3"]);
        assert!(store.is_instructor("B@region.fr").unwrap());
        assert!(!store.is_instructor("c@region.fr").unwrap());
        assert!(store.instructs("a@region.fr", 2).unwrap());
        assert!(!store.instructs("a@region.fr", 3).unwrap());
        let choices = store.staff_choices().unwrap();
        assert_eq!(choices.schemes, ["Culture", "Sport"]);
        assert_eq!(choices.connectors, ["p", "q"]);
        assert_eq!(choices.instructors, ["a@region.fr", "b@region.fr"]);
    }

    #[test]
    fn the_last_message_says_who_waits_and_replies_are_limited() {
        let (mut store, _dir) = store();
        let now: DateTime<Utc> = "2026-03-02T09:00:00Z".parse().unwrap();
        let asked = NewExchange {
            dossier: 1,
            side: Side::Beneficiary,
            channel: Channel::Web,
            kind: ExchangeKind::Message,
            author: "lune@asso.fr".into(),
            body: "Où en est-on ?".into(),
            original: None,
            received_id: None,
            recipient: None,
        };
        store.record_exchange(&asked, now).unwrap();
        let last = |store: &Store| {
            store
                .work_rows(&Scope::default(), &[])
                .unwrap()
                .into_iter()
                .find(|r| r.rowid == 1)
                .unwrap()
                .last_message
        };
        assert_eq!(last(&store), Some((Side::Beneficiary, now)));
        let later = now + chrono::TimeDelta::minutes(5);
        let reply = |store: &mut Store, at: DateTime<Utc>| {
            let text = format!("Bientôt ({at}).");
            store.record_reply(1, ("A@region.fr", "127.0.0.1"), text, LIMITS, at)
        };
        assert_eq!(reply(&mut store, later).unwrap(), Replied::Recorded);
        assert_eq!(last(&store), Some((Side::Service, later)));
        // The same answer posted twice (a double click): recorded once.
        assert_eq!(reply(&mut store, later).unwrap(), Replied::Recorded);
        assert_eq!(store.exchanges(1).unwrap().len(), 2);
        let other = later + chrono::TimeDelta::seconds(1);
        assert_eq!(reply(&mut store, other).unwrap(), Replied::Recorded);
        let third = other + chrono::TimeDelta::seconds(1);
        assert_eq!(reply(&mut store, third).unwrap(), Replied::Limited);
        let next_hour = later + chrono::TimeDelta::minutes(61);
        assert_eq!(reply(&mut store, next_hour).unwrap(), Replied::Recorded);
        assert_eq!(
            store
                .record_reply(9, ("a@region.fr", "x"), "?".into(), LIMITS, now)
                .unwrap(),
            Replied::NoDossier
        );
        assert_eq!(store.exchanges(1).unwrap().len(), 4);
        // Without a beneficiary address, a reply is recorded for nobody.
        assert!(store.exchanges(1).unwrap()[1].recipient.is_none());
        assert_eq!(store.audit(1).unwrap()[0].action, "staff-reply");
    }
}
