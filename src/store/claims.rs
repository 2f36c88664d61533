//! Who is sending what: claims on alerts, the owners that hold them, and the
//! shared state of each transport.
//!
//! Several processes may drain one outbox (the daemon, `outbox flush` beside it).
//! An alert is claimed (`sending`) by one owner: this process's id and a random
//! start token, with a lease. Each owner holds a lock file
//! (`<database>.claims/<token>.lock`) for its whole life; the kernel releases it
//! when the process ends, however it ends. A claim is taken back
//! ([`Store::recover_orphaned`]) only when its owner's lock is no longer held or
//! its lease has run out: never from a live process, and never from this one.
//!
//! The transports' state (a relay that refuses connections pauses its transport)
//! lives here too, so that every process and `/metrics` see the same outage.

use std::fs::File;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use rusqlite::params;

use super::{Attempt, Result, Store, StoreError, format_time, parse_time};

/// This process as the owner of claims: its token (`<pid>-<random>`, what
/// claims record), and the lock that says it lives.
#[derive(Debug)]
pub(super) struct ClaimOwner {
    token: String,
    _lock: File,
}

/// A transport's state, as every process sees it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub(crate) struct TransportState {
    /// `file` or `smtp`.
    pub name: String,
    /// When the outage began; `None` while the transport works.
    pub paused_since: Option<DateTime<Utc>>,
    /// When the transport is tried again.
    pub paused_until: Option<DateTime<Utc>>,
    /// Relay-level failures in a row.
    pub failures: u32,
    /// The last one.
    pub reason: Option<String>,
}

/// The folder of the owners' lock files of a database.
fn owners_dir(database: &Path) -> PathBuf {
    let mut name = database.file_name().unwrap_or_default().to_os_string();
    name.push(".claims");
    database.with_file_name(name)
}

/// Whether the owner whose lock file is `path` is gone: the file is missing, or
/// its lock can be taken (then the file is removed: nobody will use it again).
fn owner_gone(path: &Path) -> bool {
    let Ok(file) = File::options().read(true).write(true).open(path) else {
        return true;
    };
    match file.try_lock() {
        Ok(()) => {
            let _ = std::fs::remove_file(path);
            true
        }
        Err(_) => false,
    }
}

impl Store {
    /// This process's claim owner, registered at its first use.
    ///
    /// # Errors
    /// When its lock file cannot be made.
    fn claim_owner(&mut self) -> Result<&ClaimOwner> {
        if self.owner.is_none() {
            let random: String =
                self.conn
                    .query_row("SELECT lower(hex(randomblob(8)))", [], |r| r.get(0))?;
            let token = format!("{}-{random}", std::process::id());
            let dir = owners_dir(&self.path);
            let io = |source| StoreError::Folder {
                path: dir.clone(),
                source,
            };
            std::fs::create_dir_all(&dir).map_err(io)?;
            // The folder belongs to the database's owner, whoever made it: an
            // `outbox flush` run as root first must not keep the daemon's user
            // from registering there (as another user, this changes nothing).
            if let Ok(db) = std::fs::metadata(&self.path) {
                use std::os::unix::fs::MetadataExt;
                let _ = std::os::unix::fs::chown(&dir, Some(db.uid()), Some(db.gid()));
            }
            // Locked under a temporary name, then renamed: a lock file is never
            // seen unlocked while its owner lives.
            let temporary = dir.join(format!(".{token}.tmp"));
            let lock = File::create(&temporary).map_err(io)?;
            lock.try_lock()
                .map_err(|e| io(std::io::Error::other(e.to_string())))?;
            std::fs::rename(&temporary, dir.join(format!("{token}.lock"))).map_err(io)?;
            self.owner = Some(ClaimOwner { token, _lock: lock });
        }
        Ok(self.owner.as_ref().expect("set above"))
    }

    /// Marks alerts `sending` for this process (one more attempt, a lease until
    /// `lease_until`, the Message-ID their message will carry), in one
    /// transaction, and returns those that were still `pending`: an alert
    /// cancelled meanwhile, or taken by another process, is not sent.
    ///
    /// # Errors
    /// On a database error; then none is marked.
    pub(crate) fn claim(
        &mut self,
        ids: &[i64],
        message_id: &str,
        lease_until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Vec<i64>> {
        let owner = self.claim_owner()?.token.clone();
        let tx = self.conn.transaction()?;
        let mut claimed = Vec::with_capacity(ids.len());
        {
            let mut stmt = tx.prepare_cached(
                "UPDATE alerts SET status = 'sending', attempts = attempts + 1, updated_at = ?2,
                        claimed_by = ?3, claimed_until = ?4, message_id = ?5
                 WHERE id = ?1 AND status = 'pending'",
            )?;
            for &id in ids {
                let n = stmt.execute(params![
                    id,
                    format_time(now),
                    owner,
                    format_time(lease_until),
                    message_id
                ])?;
                if n == 1 {
                    claimed.push(id);
                }
            }
        }
        tx.commit()?;
        Ok(claimed)
    }

    /// Takes back the claims whose owner is gone (its lock no longer held) or
    /// whose lease ran out, recording an `interrupted` attempt for each (the
    /// relay may have accepted them: each is a possible duplicate), and keeping
    /// their Message-ID for the copy. Returns how many. This process's own
    /// claims are never taken.
    ///
    /// # Errors
    /// On a database error.
    pub(crate) fn recover_orphaned(&mut self, now: DateTime<Utc>) -> Result<u64> {
        let me = self.claim_owner()?.token.clone();
        let now_text = format_time(now);
        let owners: Vec<Option<String>> = self
            .conn
            .prepare("SELECT DISTINCT claimed_by FROM alerts WHERE status = 'sending'")?
            .query_map([], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        let dir = owners_dir(&self.path);
        let mut recovered = 0;
        for owner in owners {
            if owner.as_deref() == Some(me.as_str()) {
                continue;
            }
            // Claims from before owners were recorded have none: their owner is gone.
            let gone = owner
                .as_deref()
                .is_none_or(|o| owner_gone(&dir.join(format!("{o}.lock"))));
            recovered += self.take_back(owner.as_deref(), gone, &now_text, now)?;
        }
        Ok(recovered)
    }

    /// Takes back one owner's claims: all of them when it is `gone`, else those
    /// whose lease ran out.
    fn take_back(
        &mut self,
        owner: Option<&str>,
        gone: bool,
        now_text: &str,
        now: DateTime<Utc>,
    ) -> Result<u64> {
        let tx = self.conn.transaction()?;
        let ids: Vec<i64> = tx
            .prepare(
                "SELECT id FROM alerts WHERE status = 'sending' AND claimed_by IS ?1
                   AND (?2 OR coalesce(claimed_until, '') < ?3)",
            )?
            .query_map(params![owner, gone, now_text], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        for id in &ids {
            super::outbox::insert_delivery(
                &tx,
                *id,
                &Attempt {
                    attempted_at: now,
                    transport: String::new(),
                    outcome: "interrupted".to_owned(),
                    reply: Some(
                        "le processus qui l'envoyait s'est arrêté : renvoyé (doublon possible)"
                            .to_owned(),
                    ),
                    message_id: None,
                },
            )?;
            tx.prepare_cached(
                "UPDATE alerts SET status = 'pending', claimed_by = NULL, claimed_until = NULL,
                        updated_at = ?2
                 WHERE id = ?1 AND status = 'sending'",
            )?
            .execute(params![id, now_text])?;
        }
        tx.commit()?;
        Ok(ids.len() as u64)
    }

    /// Gives back this process's claims that no send will record (its sends
    /// ended without recording their outcome): pending again with an
    /// `interrupted` attempt, as if this process had crashed. Returns how many.
    ///
    /// # Errors
    /// On a database error.
    pub(crate) fn release_claims(&mut self, now: DateTime<Utc>) -> Result<u64> {
        let Some(owner) = self.owner.as_ref().map(|o| o.token.clone()) else {
            return Ok(0);
        };
        self.take_back(Some(&owner), true, &format_time(now), now)
    }

    /// Alerts claimed before `at` and not recorded yet (stuck sends).
    ///
    /// # Errors
    /// On a database error.
    pub(crate) fn claims_older_than(&self, at: DateTime<Utc>) -> Result<u64> {
        let n: i64 = self.conn.query_row(
            "SELECT count(*) FROM alerts WHERE status = 'sending' AND updated_at < ?1",
            [format_time(at)],
            |r| r.get(0),
        )?;
        Ok(n.max(0) as u64)
    }
}

impl Store {
    /// The state of every transport that ever failed, by name.
    ///
    /// # Errors
    /// On a database error or a corrupt row.
    pub(crate) fn transport_states(&self) -> Result<Vec<TransportState>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT name, paused_since, paused_until, failures, reason FROM transports
             ORDER BY name",
        )?;
        let mut rows = stmt.query([])?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            let time = |i: usize| -> Result<Option<DateTime<Utc>>> {
                r.get_ref(i)?.as_str_or_null()?.map(parse_time).transpose()
            };
            out.push(TransportState {
                name: r.get(0)?,
                paused_since: time(1)?,
                paused_until: time(2)?,
                failures: r.get(3)?,
                reason: r.get(4)?,
            });
        }
        Ok(out)
    }

    /// The state of one transport (working when never recorded).
    ///
    /// # Errors
    /// On a database error or a corrupt row.
    pub(crate) fn transport_state(&self, name: &str) -> Result<TransportState> {
        Ok(self
            .transport_states()?
            .into_iter()
            .find(|t| t.name == name)
            .unwrap_or_else(|| TransportState {
                name: name.to_owned(),
                paused_since: None,
                paused_until: None,
                failures: 0,
                reason: None,
            }))
    }

    /// Records a relay-level failure: the transport is paused until `until`.
    /// Returns its new state (`failures` is 1 at the start of an outage).
    ///
    /// # Errors
    /// On a database error.
    pub(crate) fn pause_transport(
        &mut self,
        name: &str,
        reason: &str,
        until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<TransportState> {
        self.conn.execute(
            "INSERT INTO transports (name, paused_since, paused_until, failures, reason, updated_at)
             VALUES (?1, ?4, ?3, 1, ?2, ?4)
             ON CONFLICT (name) DO UPDATE SET
                 paused_since = coalesce(paused_since, excluded.paused_since),
                 paused_until = excluded.paused_until,
                 failures = CASE WHEN paused_since IS NULL THEN 1 ELSE failures + 1 END,
                 reason = excluded.reason, updated_at = excluded.updated_at",
            params![name, reason, format_time(until), format_time(now)],
        )?;
        self.transport_state(name)
    }

    /// Records that the transport works; returns the outage it ends, if any.
    ///
    /// # Errors
    /// On a database error.
    pub(crate) fn resume_transport(
        &mut self,
        name: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<TransportState>> {
        let before = self.transport_state(name)?;
        if before.paused_since.is_none() {
            return Ok(None);
        }
        self.conn.execute(
            "UPDATE transports SET paused_since = NULL, paused_until = NULL, failures = 0,
                    updated_at = ?2
             WHERE name = ?1",
            params![name, format_time(now)],
        )?;
        Ok(Some(before))
    }
}

impl Store {
    /// Failed attempts at the administrators' digest since the last one sent, and
    /// when the next may be made.
    ///
    /// # Errors
    /// On a database error or a corrupt row.
    pub(crate) fn admin_backoff(&self) -> Result<(u32, Option<DateTime<Utc>>)> {
        let (n, until): (u32, Option<String>) = self.conn.query_row(
            "SELECT count(*), max(retry_at) FROM admin_attempts
             WHERE attempted_at > coalesce((SELECT max(sent_at) FROM admin_reports), '')",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        Ok((n, until.map(|t| parse_time(&t)).transpose()?))
    }

    /// Records an attempt at the administrators' digest that did not succeed.
    ///
    /// # Errors
    /// On a database error.
    pub(crate) fn record_admin_attempt(
        &mut self,
        outcome: &str,
        reply: &str,
        retry_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<()> {
        self.conn.execute(
            "INSERT INTO admin_attempts (attempted_at, outcome, reply, retry_at)
             VALUES (?1, ?2, ?3, ?4)",
            params![format_time(now), outcome, reply, format_time(retry_at)],
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt;

    use super::*;

    /// An `outbox flush` run as root before the daemon ever claimed must leave
    /// the owners' folder to the database's owner (the service user), or the
    /// daemon could not register there and would send nothing. As another user
    /// than root this cannot be arranged, and the test says so.
    #[test]
    fn the_owners_folder_belongs_to_the_databases_owner() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        let mut store = Store::open(&path, 8).unwrap();
        // The database belongs to another user (nobody), as under systemd.
        if let Err(error) = std::os::unix::fs::chown(&path, Some(65_534), Some(65_534)) {
            // CI runs as root: there, this case must run.
            assert!(
                std::env::var_os("CI").is_none(),
                "CI must run as root: {error}"
            );
            #[allow(clippy::print_stderr)]
            {
                eprintln!(
                    "not root ({error}): the case of root's `outbox flush` cannot be made here"
                );
            }
            return;
        }
        store.claim_owner().unwrap();
        let owners = std::fs::metadata(owners_dir(&path)).unwrap();
        assert_eq!((owners.uid(), owners.gid()), (65_534, 65_534));
    }
}
