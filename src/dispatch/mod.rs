//! Delivery: drains the outbox into a transport, with retries, limits and crash
//! safety.
//!
//! ```text
//!  store (due alerts) ─▶ plan (pure: debounce check, daily limit, digests)
//!        ▲                  │ groups of alerts, one message each
//!        │                  ▼
//!        │   claim `sending` (commit) ─▶ render ─▶ transport (file | smtp) ─▶ outcome
//!        └──────────── record the attempt: sent | retry later | failed (commit)
//! ```
//!
//! An alert is claimed (`sending`, with this process as its owner and the
//! Message-ID of its message) before its message is handed over, and its attempt
//! is committed right after: a crash in between leaves it `sending` until its
//! owner is known to be gone, then it is sent again under the same Message-ID
//! (at least once; a duplicate only if the relay had accepted it). Transient
//! failures are retried with exponential backoff and jitter until the alert is
//! `max_age` old; permanent ones fail at once. A relay that fails as a whole
//! (no connection, TLS, authentication, 421…) fails no alert: the transport
//! pauses with the same backoff (a circuit breaker shared through the store), the
//! alerts wait, and the administrators are told once per outage
//! ([`admin`]). A group that goes wrong (a panic, a database error) never stops
//! the others: its alerts go back to pending.
//!
//! An informational alert to an address that unsubscribed from informational
//! messages is cancelled, not sent (within a digest, only such alerts drop
//! out); a message of informational alerts only carries the address's
//! unsubscribe link, a message with a mandatory alert says why it cannot be
//! turned off ([`message::Footer`]; issue 17, item 25).
//!
//! The front office's sign-in messages have an outbox of their own, drained
//! first in each pass: due at once, retried until their link expires
//! ([`sign_in`]); the exchanges between beneficiaries and the service (issue
//! 21) right after them, forwarded at once ([`exchanges`]).
//!
//! Submodules: `plan` (what a pass does with the alerts it read, pure),
//! `groups` (the groups sent a few at a time, one going wrong stopping none),
//! [`message`] (the e-mail), [`admin`] (the administrators' digest and
//! notices), `thread` (the reply address of a message about a dossier when
//! `[inbound]` is on). The transports are [`crate::transport`]'s: the dispatcher starts
//! the chosen one and knows none by name.

pub mod admin;
pub mod exchanges;
mod groups;
pub mod message;
mod plan;
pub mod sign_in;
mod small;
mod thread;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use lettre::message::Mailbox;
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::config::Delivery;
use crate::delays::Delays;
use crate::model::Sources;
use crate::rules::{Class, Rules, Scene};
use crate::store::{Attempt, DueAlert, OutboxChange};
use crate::store::{DelayCache, StoreHandle};
use crate::transport::{Outcome, Ready};

pub use plan::plan;

/// Alerts read from the outbox at once.
const BATCH: usize = 500;
/// Alerts one digest message lists at most.
const MAX_DIGEST: usize = 50;
/// The role of a dossier's beneficiary: their messages are kept for the front
/// office's dossier pages.
const BENEFICIARY: &str = "beneficiary";
/// How long a claim holds beyond the longest a send may take: past it, another
/// process may take the alerts back even though their owner still runs.
const CLAIM_MARGIN: Duration = Duration::from_secs(15 * 60);

/// What one pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PassReport {
    /// Messages accepted by the transport.
    pub messages: u64,
    /// Alerts they carried.
    pub sent: u64,
    /// Alerts to retry later.
    pub retried: u64,
    /// Alerts failed for good.
    pub failed: u64,
    /// Alerts cancelled (their dossier left the step they were about).
    pub cancelled: u64,
    /// Alerts put off (a recipient's daily limit).
    pub deferred: u64,
    /// Alerts that wait for the transport (paused after a relay-level failure).
    pub waiting: u64,
    /// Groups that went wrong (a panic, a database error): their alerts wait.
    pub errors: u64,
    /// Until when the transport is paused, when it is.
    pub paused_until: Option<DateTime<Utc>>,
}

impl PassReport {
    fn add(&mut self, other: PassReport) {
        self.messages += other.messages;
        self.sent += other.sent;
        self.retried += other.retried;
        self.failed += other.failed;
        self.cancelled += other.cancelled;
        self.deferred += other.deferred;
        self.waiting += other.waiting;
        self.errors += other.errors;
        self.paused_until = self.paused_until.max(other.paused_until);
    }
}

/// Drains the outbox.
#[derive(Clone)]
pub struct Dispatcher {
    inner: Arc<Inner>,
}

/// Everything a send needs, shared by the concurrent sends of a pass.
struct Inner {
    store: StoreHandle,
    rules: Arc<Rules>,
    /// What it needs of the connectors: links, and the sources the digest watches.
    sources: Arc<Sources>,
    config: Delivery,
    transport: Ready,
    from: Mailbox,
    reply_to: Option<Mailbox>,
    /// `[web] public_url`: where unsubscribe links lead.
    public_url: Option<String>,
    /// The earliest instant the next message may leave (rate limit).
    next_slot: Mutex<tokio::time::Instant>,
    /// Told to stop: no new message starts.
    stop: CancellationToken,
    /// The estimates messages quote.
    delays: Arc<DelayCache>,
    /// The transport was paused when this pass began: a message accepted now
    /// ends the outage.
    recovering: AtomicBool,
    /// A relay-level failure in this pass: no further message starts.
    tripped: AtomicBool,
}

impl Dispatcher {
    /// Prepares the transport; `public_url` is `[web] public_url`, where the
    /// unsubscribe links of informational messages lead.
    ///
    /// # Errors
    /// When the transport cannot be set up (TLS settings).
    pub fn new(
        store: StoreHandle,
        rules: Arc<Rules>,
        sources: Arc<Sources>,
        config: &Delivery,
        public_url: Option<String>,
        delays: Arc<DelayCache>,
        stop: CancellationToken,
    ) -> anyhow::Result<Self> {
        let transport =
            Ready::start(&config.transport, config.concurrency).map_err(anyhow::Error::msg)?;
        let parse =
            |text: &str| crate::value::mailbox(text).map_err(|e| anyhow::anyhow!("'{text}': {e}"));
        Ok(Self {
            inner: Arc::new(Inner {
                store,
                rules,
                sources,
                transport,
                from: parse(&config.from)?,
                reply_to: config.reply_to.as_deref().map(parse).transpose()?,
                public_url,
                config: config.clone(),
                next_slot: Mutex::new(tokio::time::Instant::now()),
                stop,
                delays,
                recovering: AtomicBool::new(false),
                tripped: AtomicBool::new(false),
            }),
        })
    }

    /// Takes back the alerts whose sending process is gone (a crash, a kill) or
    /// whose claim ran out; returns how many (each a possible duplicate). The
    /// claims of live processes, this one included, are left alone.
    ///
    /// # Errors
    /// When the store fails.
    pub async fn recover(&self) -> anyhow::Result<u64> {
        let n = self
            .inner
            .store
            .call(|s| s.recover_orphaned(Utc::now()))
            .await??;
        if n > 0 {
            warn!(
                alerts = n,
                "Alerts were being sent by a process that stopped: they are sent again (possible duplicates)."
            );
        }
        Ok(n)
    }

    /// Gives back this process's claims that no send will record: call once every
    /// send has ended (an orderly stop). Returns how many.
    ///
    /// # Errors
    /// When the store fails.
    pub async fn release(&self) -> anyhow::Result<u64> {
        Ok(self
            .inner
            .store
            .call(|s| s.release_claims(Utc::now()))
            .await??)
    }

    /// When the dispatcher has something to do next: the next pending alert's due
    /// time, not before the end of a transport's pause.
    ///
    /// # Errors
    /// When the store fails.
    pub async fn next_due(&self) -> anyhow::Result<Option<DateTime<Utc>>> {
        let name = self.inner.transport.name();
        let (due, state) = self
            .inner
            .store
            .call(move |s| -> Result<_, crate::store::StoreError> {
                let due = [s.next_due()?, s.next_sign_in()?, s.next_exchange()?]
                    .into_iter()
                    .flatten()
                    .min();
                Ok((due, s.transport_state(name)?))
            })
            .await??;
        Ok(due.map(|d| d.max(state.paused_until.unwrap_or(d))))
    }

    /// Sends everything due now (`force`: everything pending, and the transport
    /// tried even while paused), batch after batch.
    ///
    /// # Errors
    /// When the store fails; transport failures are outcomes, not errors.
    pub async fn drain(&self, force: bool) -> anyhow::Result<PassReport> {
        let mut total = self.inner.send_sign_ins().await?;
        total.add(self.inner.send_exchanges().await?);
        loop {
            let (report, read) = self.pass(force).await?;
            total.add(report);
            // Stop at a short batch, or one where nothing moved (all put off).
            let moved = report.messages + report.retried + report.failed + report.cancelled;
            if read < BATCH
                || moved == 0
                || report.paused_until.is_some()
                || report.errors > 0
                || (force && report.retried > 0)
                || self.inner.stop.is_cancelled()
            {
                return Ok(total);
            }
        }
    }

    /// One batch: returns what it did and how many alerts it read.
    async fn pass(&self, force: bool) -> anyhow::Result<(PassReport, usize)> {
        let inner = &self.inner;
        let now = Utc::now();
        let until = (!force).then_some(now);
        let since = now - chrono::Duration::hours(24);
        let name = inner.transport.name();
        let state = inner.store.call(move |s| s.transport_state(name)).await??;
        if let Some(paused) = state.paused_until.filter(|p| *p > now && !force) {
            return Ok((
                PassReport {
                    paused_until: Some(paused),
                    ..PassReport::default()
                },
                0,
            ));
        }
        inner
            .recovering
            .store(state.paused_since.is_some(), Ordering::Relaxed);
        inner.tripped.store(false, Ordering::Relaxed);
        let (due, sent, opted_out) = inner
            .store
            .call(move |s| -> Result<_, crate::store::StoreError> {
                let due = s.due_alerts(until, BATCH)?;
                let (mut sent, mut opted_out) = (HashMap::new(), HashSet::new());
                for a in &due {
                    if let std::collections::hash_map::Entry::Vacant(slot) =
                        sent.entry(a.recipient.to_lowercase())
                    {
                        let n = s.messages_sent_since(slot.key(), since)?;
                        if s.opted_out(slot.key())? {
                            opted_out.insert(slot.key().clone());
                        }
                        slot.insert(n);
                    }
                }
                Ok((due, sent, opted_out))
            })
            .await??;
        let read = due.len();
        let planned = plan(
            due,
            &sent,
            &opted_out,
            inner.config.max_per_recipient_per_day,
            now,
            &inner.rules.policy,
            &inner.rules.lifecycle,
        );
        let mut report = PassReport {
            cancelled: planned.cancelled,
            deferred: planned.deferred,
            ..PassReport::default()
        };
        if !planned.changes.is_empty() {
            let changes = planned.changes;
            inner.store.call(move |s| s.apply(&changes, now)).await??;
        }
        report.add(self.send_all(planned.groups, now).await?);
        self.log(&report);
        Ok((report, read))
    }

    /// Sends each group as one message, `concurrency` at a time. While the
    /// transport recovers from an outage, the first message goes alone (a probe).
    /// A group that goes wrong is recorded on its own alerts; the others finish.
    async fn send_all(
        &self,
        groups: Vec<Vec<DueAlert>>,
        now: DateTime<Utc>,
    ) -> anyhow::Result<PassReport> {
        let inner = &self.inner;
        // Only messages to render need the estimates.
        let mut report = if groups.is_empty() {
            PassReport::default()
        } else {
            let delays = inner.delays.get(now).await?;
            groups::each(
                groups,
                |group| group.iter().map(|a| a.id).collect(),
                groups::Sending {
                    concurrency: inner.config.concurrency,
                    probe: inner.recovering.load(Ordering::Relaxed),
                    stop: || inner.stop.is_cancelled() || inner.tripped.load(Ordering::Relaxed),
                    send: |group| {
                        let this = Arc::clone(&self.inner);
                        let delays = Arc::clone(&delays);
                        async move { this.send_group(group, &delays).await }
                    },
                    give_back: |ids: Vec<i64>, why: String| async move {
                        inner.give_back(ids, &why).await
                    },
                },
            )
            .await?
        };
        if inner.tripped.load(Ordering::Relaxed) {
            let name = inner.transport.name();
            let state = inner.store.call(move |s| s.transport_state(name)).await??;
            report.paused_until = state.paused_until;
        }
        Ok(report)
    }

    fn log(&self, report: &PassReport) {
        if *report != PassReport::default() {
            info!(
                messages = report.messages,
                sent = report.sent,
                retried = report.retried,
                failed = report.failed,
                cancelled = report.cancelled,
                deferred = report.deferred,
                waiting = report.waiting,
                errors = report.errors,
                transport = self.inner.transport.name(),
                "Delivered alerts."
            );
        }
    }
}
impl Inner {
    /// Waits for this message's turn under the rate limit.
    async fn wait_turn(&self) {
        let interval = Duration::from_secs_f64(1.0 / self.config.rate_per_second);
        let at = {
            let mut next = self.next_slot.lock().await;
            let now = tokio::time::Instant::now();
            let at = (*next).max(now);
            *next = at + interval;
            at
        };
        tokio::time::sleep_until(at).await;
    }

    /// How long a claim holds: the longest a send may wait for its turn and
    /// take, with a wide margin.
    fn lease(&self) -> chrono::Duration {
        let turn = Duration::from_secs_f64(
            (self.config.concurrency as f64 / self.config.rate_per_second).min(86_400.0),
        );
        let exchange = self.transport.longest_exchange();
        chrono::Duration::from_std(turn + exchange + CLAIM_MARGIN).unwrap_or(chrono::TimeDelta::MAX)
    }

    /// Sends one message for a group of alerts to one recipient and records the
    /// attempt for each alert. The Message-ID is the one the group's alerts were
    /// claimed with before, if they were (a copy keeps its identity).
    async fn send_group(
        &self,
        group: Vec<DueAlert>,
        delays: &Delays,
    ) -> anyhow::Result<PassReport> {
        // The rule of the first alert may give its own sender (a service's address).
        let rule = self.rules.rule(&group[0].rule);
        let from = rule
            .and_then(|r| r.sender.as_deref())
            .and_then(|f| crate::value::mailbox(f).ok())
            .unwrap_or_else(|| self.from.clone());
        let dossiers: Vec<i64> = group.iter().map(|a| a.dossier.rowid).collect();
        let reply_to = match self.thread_reply_to(&dossiers).await? {
            Some(thread) => Some(thread),
            None => rule
                .and_then(|r| r.reply_to.as_deref())
                .and_then(|f| crate::value::mailbox(f).ok())
                .or_else(|| self.reply_to.clone()),
        };
        let message_id = group[0].message_id.clone().unwrap_or_else(|| {
            let keys: Vec<&str> = group.iter().map(|a| a.key.as_str()).collect();
            message::message_id(&keys, &from)
        });
        let ids: Vec<i64> = group.iter().map(|a| a.id).collect();
        let (id, now) = (message_id.clone(), Utc::now());
        let lease = now + self.lease();
        let claimed = self
            .store
            .call(move |s| s.claim(&ids, &id, lease, now))
            .await??;
        // Cancelled meanwhile, or taken by another process (`outbox flush`).
        let group: Vec<DueAlert> = group
            .into_iter()
            .filter(|a| claimed.contains(&a.id))
            .collect();
        if group.is_empty() {
            return Ok(PassReport::default());
        }
        let recipient = group[0].recipient.clone();
        let footer = self.footer(&group).await?;
        let mut kept = None;
        let outcome = match self.render(&group, delays).and_then(|content| {
            kept = Some((content.subject.clone(), content.text.clone()));
            message::build(
                &content,
                &from,
                reply_to.as_ref(),
                &recipient,
                &message_id,
                Utc::now(),
                &footer,
            )
        }) {
            Err(reason) => Outcome::Permanent(reason),
            Ok(email) => self.transmit(email, &message_id).await,
        };
        if let (Outcome::Sent(_), Some(content)) = (&outcome, kept)
            && group.iter().any(|a| a.role == BENEFICIARY)
        {
            self.keep(&message_id, &recipient, content).await;
        }
        self.conclude(&group, outcome, &message_id).await
    }

    /// Keeps a message delivered to a beneficiary, for their dossiers' pages
    /// in the front office (issue 20, item 5). A failure is logged: the
    /// message left, and only its copy is missing.
    async fn keep(&self, message_id: &str, recipient: &str, (subject, text): (String, String)) {
        let (id, to, now) = (message_id.to_owned(), recipient.to_owned(), Utc::now());
        let kept = self
            .store
            .call(move |s| s.keep_message(&id, &to, (&subject, &text), now))
            .await;
        if let Err(error) = kept.and_then(|r| Ok(r?)) {
            warn!(error = %format!("{error:#}"), "A message left, but its copy for the front office could not be kept.");
        }
    }

    /// What a group's message says about turning such messages off: a message of
    /// informational alerts only gets its recipient's unsubscribe link (their
    /// token drawn the first time), one with a mandatory alert says why not.
    async fn footer(&self, group: &[DueAlert]) -> anyhow::Result<message::Footer> {
        let informational = Class::Informational.as_str();
        if group.iter().any(|a| a.class != informational) {
            return Ok(message::Footer::Mandatory);
        }
        let Some(public_url) = self.public_url.clone() else {
            return Ok(message::Footer::Nothing);
        };
        let recipient = group[0].recipient.clone();
        let token = self
            .store
            .call(move |s| s.recipient_token(&recipient, Utc::now()))
            .await??;
        Ok(message::Footer::Unsubscribe(message::unsubscribe_url(
            &public_url,
            &token,
        )))
    }

    /// Records what became of a group's message on each of its alerts, and
    /// what it says of the transport.
    async fn conclude(
        &self,
        group: &[DueAlert],
        outcome: Outcome,
        message_id: &str,
    ) -> anyhow::Result<PassReport> {
        let now = Utc::now();
        let mut report = PassReport::default();
        let relay_until = match &outcome {
            Outcome::Relay(reason) => Some(self.trip(reason, now).await?),
            _ => None,
        };
        let changes: Vec<OutboxChange> = group
            .iter()
            .map(|alert| {
                let (change, counted) = attempt(
                    alert,
                    &outcome,
                    (self.transport.name(), message_id),
                    now,
                    relay_until,
                    &self.config,
                    &self.rules.policy,
                );
                match (counted, &outcome) {
                    ("sent", _) => report.sent += 1,
                    ("pending", Outcome::Relay(_)) => report.waiting += 1,
                    ("pending", _) => report.retried += 1,
                    _ => report.failed += 1,
                }
                change
            })
            .collect();
        match &outcome {
            Outcome::Sent(_) => {
                report.messages = 1;
                if self.recovering.swap(false, Ordering::Relaxed) {
                    self.resume(now).await?;
                }
            }
            Outcome::Relay(_) => {}
            other => warn!(
                to = %group[0].recipient, alerts = group.len(), outcome = ?other,
                "A message was not delivered."
            ),
        }
        self.record(changes, now).await?;
        Ok(report)
    }

    /// Hands one message to the transport, in its turn under the rate limit.
    async fn transmit(&self, email: lettre::Message, message_id: &str) -> Outcome {
        self.wait_turn().await;
        self.transport.send(email, message_id).await
    }

    /// Writes alerts' changes, trying again while the database is busy (another
    /// process holding its lock): a recorded outcome is never dropped. Gives up
    /// only when the store thread is gone, or after a few tries once told to
    /// stop; the claims then stay with this process, and are taken back once it
    /// has ended.
    async fn record(&self, changes: Vec<OutboxChange>, now: DateTime<Utc>) -> anyhow::Result<()> {
        let changes = Arc::new(changes);
        let mut wait = Duration::from_millis(500);
        let mut tries_after_stop = 0;
        loop {
            let these = Arc::clone(&changes);
            match self.store.call(move |s| s.apply(&these, now)).await? {
                Ok(()) => return Ok(()),
                Err(error) => {
                    let error = anyhow::Error::new(error);
                    if self.stop.is_cancelled() {
                        tries_after_stop += 1;
                        if tries_after_stop > 3 {
                            return Err(error.context("cannot record what became of the alerts"));
                        }
                    }
                    warn!(error = %format!("{error:#}"), retry_in = ?wait,
                        "Cannot record what became of the alerts; trying again.");
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(Duration::from_secs(30));
                }
            }
        }
    }

    /// Gives a group's alerts back to pending after its send went wrong, with an
    /// `interrupted` attempt (the message may have left: a possible duplicate).
    async fn give_back(&self, ids: Vec<i64>, why: &str) -> anyhow::Result<()> {
        let now = Utc::now();
        let changes = ids
            .into_iter()
            .map(|id| OutboxChange::Attempt {
                id,
                delivery: Attempt {
                    attempted_at: now,
                    transport: self.transport.name().to_owned(),
                    outcome: "interrupted".to_owned(),
                    reply: Some(format!("l'envoi a échoué, il est refait : {why}")),
                    message_id: None,
                },
                status: "pending",
                retry_at: Some(now),
            })
            .collect();
        self.record(changes, now).await
    }

    /// The message of a group: one alert's own, or a digest of several.
    fn render(
        &self,
        group: &[DueAlert],
        delays: &Delays,
    ) -> Result<crate::rules::template::Message, String> {
        let now = Utc::now();
        let mut items = Vec::with_capacity(group.len());
        let links: Vec<Option<String>> = group
            .iter()
            .map(|a| {
                self.sources
                    .link_of(&a.dossier.connector, &a.dossier.dossier)
            })
            .collect();
        for (alert, link) in group.iter().zip(&links) {
            let stored = &alert.dossier;
            let delay = delays.of(&stored.dossier, stored.step_entered_at, now);
            let scene = Scene {
                connector: &stored.connector,
                link: link.as_deref(),
                dossier: &stored.dossier,
                event: &alert.event,
                delay: delay.as_ref(),
            };
            let ctx = self.rules.context(
                &scene,
                Some((alert.role.as_str(), alert.recipient.as_str())),
            );
            items.push((alert.template.as_str(), ctx));
        }
        self.rules
            .templates
            .render_many(&items)
            .map_err(|reason| format!("le message ne peut pas être composé : {reason}"))
    }
}

/// The recorded attempt for one alert of a message, and its new status.
///
/// `via` is the transport's name and the message's Message-ID; `relay_until`,
/// for a relay-level failure, when the paused transport is tried again: the
/// alert waits until then, whatever its age (the relay, not the message, failed).
fn attempt(
    alert: &DueAlert,
    outcome: &Outcome,
    (transport, message_id): (&str, &str),
    now: DateTime<Utc>,
    relay_until: Option<DateTime<Utc>>,
    config: &Delivery,
    policy: &crate::timing::Policy,
) -> (OutboxChange, &'static str) {
    let (outcome_name, reply) = match outcome {
        Outcome::Sent(r) => ("sent", r),
        Outcome::Transient(r) | Outcome::Relay(r) => ("transient", r),
        Outcome::Permanent(r) => ("permanent", r),
    };
    let delivery = Attempt {
        attempted_at: now,
        transport: transport.to_owned(),
        outcome: outcome_name.to_owned(),
        reply: Some(reply.clone()),
        message_id: Some(message_id.to_owned()),
    };
    let age = (now - alert.created_at).to_std().unwrap_or_default();
    let (status, retry_at, reply) = match outcome {
        Outcome::Sent(_) => ("sent", None, None),
        Outcome::Relay(reply) => (
            "pending",
            Some(relay_until.unwrap_or(now)),
            Some(format!(
                "le relais de messagerie ne répond pas, le message attend : {reply}"
            )),
        ),
        Outcome::Transient(reply) if age < config.max_age => {
            let at = policy.next_open(retry_at(now, alert.attempts + 1, alert.id, config));
            (
                "pending",
                Some(at),
                Some(format!("nouvel essai prévu : {reply}")),
            )
        }
        Outcome::Transient(reply) => (
            "failed",
            None,
            Some(format!(
                "abandonné après {} d'essais : {reply}",
                crate::rules::french::duration(config.max_age)
            )),
        ),
        Outcome::Permanent(reply) => (
            "failed",
            None,
            Some(format!("refus définitif, non renvoyé : {reply}")),
        ),
    };
    let delivery = Attempt {
        reply: reply.or(delivery.reply.clone()),
        ..delivery
    };
    (
        OutboxChange::Attempt {
            id: alert.id,
            delivery,
            status,
            retry_at,
        },
        status,
    )
}

/// When to try again after `attempts` attempts: `retry_initial`, doubling, at most
/// `retry_max`, with ±10 % jitter (derived from the alert, so that alerts failed
/// together do not all come back at the same instant).
pub fn retry_at(now: DateTime<Utc>, attempts: u32, seed: i64, config: &Delivery) -> DateTime<Utc> {
    let doublings = attempts.saturating_sub(1).min(30);
    let base = config
        .retry_initial
        .saturating_mul(1u32 << doublings)
        .min(config.retry_max);
    let spread = xxhash_rust::xxh3::xxh3_64(
        &[seed.to_le_bytes(), i64::from(attempts).to_le_bytes()].concat(),
    );
    let factor = 0.9 + (spread % 2001) as f64 / 10_000.0;
    now + chrono::Duration::from_std(base.mul_f64(factor)).unwrap_or(chrono::TimeDelta::MAX)
}

#[cfg(test)]
mod tests {
    use super::plan::tests::{alert, policy};
    use super::*;
    use crate::test_support::utc;

    fn delivery() -> Delivery {
        Delivery {
            transport: std::sync::Arc::new(crate::transport::file::FileTransport {
                dir: std::path::PathBuf::from("x"),
            }),
            concurrency: 1,
            rate_per_second: 1.0,
            max_per_recipient_per_day: 1,
            max_age: Duration::from_secs(5 * 86_400),
            retry_initial: Duration::from_secs(60),
            retry_max: Duration::from_secs(3_600),
            admin_email: None,
            admin_digest: "0 0 8 * * *".parse().unwrap(),
            notice_dir: std::path::PathBuf::from("notices"),
            file_dir: std::path::PathBuf::from("x"),
            from: "a@x.fr".to_owned(),
            reply_to: None,
            thread_address: None,
        }
    }

    #[test]
    fn retries_double_up_to_the_cap_with_jitter() {
        let now = utc("2026-03-10T09:00:00Z");
        let config = delivery();
        for (attempts, base) in [
            (1, 60.0),
            (2, 120.0),
            (3, 240.0),
            (7, 3_600.0),
            (30, 3_600.0),
        ] {
            for seed in 0..50 {
                let wait = (retry_at(now, attempts, seed, &config) - now).as_seconds_f64();
                assert!(
                    (base * 0.9..=base * 1.1).contains(&wait),
                    "attempt {attempts}: {wait} s"
                );
            }
        }
        // Alerts failing together do not all come back at the same instant.
        let spread: std::collections::HashSet<_> = (0..20)
            .map(|seed| retry_at(now, 3, seed, &config))
            .collect();
        assert!(spread.len() > 10);
    }

    #[test]
    fn outcomes_become_sent_retried_or_failed() {
        let config = delivery();
        let policy = policy(&[]);
        let now = utc("2026-03-10T09:00:00Z");
        let a = alert(1, "a@x.fr", true, "instruction", None);
        let status = |o: Outcome, created: DateTime<Utc>| {
            let mut a = a.clone();
            a.created_at = created;
            attempt(&a, &o, ("smtp", "<m@x.fr>"), now, None, &config, &policy).1
        };
        assert_eq!(status(Outcome::Sent("250 OK".into()), now), "sent");
        assert_eq!(status(Outcome::Transient("451".into()), now), "pending");
        assert_eq!(status(Outcome::Permanent("550".into()), now), "failed");
        // Past the maximum age, a transient failure is final.
        assert_eq!(
            status(
                Outcome::Transient("451".into()),
                now - chrono::Duration::days(6)
            ),
            "failed"
        );
    }
}
