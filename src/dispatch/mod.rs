//! Delivery: drains the outbox into a transport, with retries, limits and crash
//! safety.
//!
//! ```text
//!  store (due alerts) ─▶ plan (pure: debounce check, daily limit, digests)
//!        ▲                  │ groups of alerts, one message each
//!        │                  ▼
//!        │   mark `sending` (commit) ─▶ render ─▶ transport (file | smtp) ─▶ outcome
//!        └──────────── record the attempt: sent | retry later | failed (commit)
//! ```
//!
//! An alert is committed as `sending` before its message is handed over, and its
//! attempt is committed right after: a crash in between leaves it `sending`, and
//! the next start sends it again (at least once; a duplicate only if the relay had
//! accepted it). Transient failures are retried with exponential backoff and
//! jitter until the alert is `max_age` old; permanent ones fail at once.
//!
//! Submodules: [`message`] (the e-mail), [`mod@file`] and [`smtp`] (the transports).

pub mod file;
pub mod message;
pub mod smtp;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use lettre::message::Mailbox;
use tokio::sync::{Mutex, Semaphore};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::config::{Delivery, Transport as TransportConfig};
use crate::connector::Connector;
use crate::daemon::{DelayCache, StoreHandle};
use crate::delays::Delays;
use crate::rules::{Rules, Scene};
use crate::store::{Change, Delivery as Attempt, DueAlert};

/// Alerts read from the outbox at once.
const BATCH: usize = 500;
/// Alerts one digest message lists at most.
const MAX_DIGEST: usize = 50;

/// What a transport made of a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Accepted (the relay's reply, or where the file went).
    Sent(String),
    /// Worth retrying (4xx, connection refused or dropped, timeout, full disk).
    Transient(String),
    /// Never worth retrying (5xx, invalid address, a message that cannot be made).
    Permanent(String),
}

/// A transport, ready.
#[derive(Clone)]
enum Transport {
    File(std::path::PathBuf),
    Smtp(smtp::Relay),
}

impl Transport {
    fn name(&self) -> &'static str {
        match self {
            Self::File(_) => "file",
            Self::Smtp(_) => "smtp",
        }
    }
}

/// What one pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Report {
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
}

impl Report {
    fn add(&mut self, other: Report) {
        self.messages += other.messages;
        self.sent += other.sent;
        self.retried += other.retried;
        self.failed += other.failed;
        self.cancelled += other.cancelled;
        self.deferred += other.deferred;
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
    connectors: Arc<Vec<Connector>>,
    config: Delivery,
    transport: Transport,
    from: Mailbox,
    reply_to: Option<Mailbox>,
    /// The earliest instant the next message may leave (rate limit).
    next_slot: Mutex<tokio::time::Instant>,
    /// Told to stop: no new message starts.
    stop: CancellationToken,
    /// The estimates messages quote.
    delays: Arc<DelayCache>,
}

impl Dispatcher {
    /// Prepares the transport.
    ///
    /// # Errors
    /// When the transport cannot be set up (TLS settings).
    pub fn new(
        store: StoreHandle,
        rules: Arc<Rules>,
        connectors: Arc<Vec<Connector>>,
        config: &Delivery,
        delays: Arc<DelayCache>,
        stop: CancellationToken,
    ) -> anyhow::Result<Self> {
        let transport = match &config.transport {
            TransportConfig::File { dir } => Transport::File(dir.clone()),
            TransportConfig::Smtp(smtp) => Transport::Smtp(
                smtp::Relay::new(smtp, config.concurrency).map_err(anyhow::Error::msg)?,
            ),
        };
        let parse = |text: &str| {
            text.parse::<Mailbox>()
                .map_err(|e| anyhow::anyhow!("'{text}': {e}"))
        };
        Ok(Self {
            inner: Arc::new(Inner {
                store,
                rules,
                connectors,
                transport,
                from: parse(&config.from)?,
                reply_to: config.reply_to.as_deref().map(parse).transpose()?,
                config: config.clone(),
                next_slot: Mutex::new(tokio::time::Instant::now()),
                stop,
                delays,
            }),
        })
    }

    /// Turns the alerts a crash left `sending` back into `pending`; returns how many
    /// (each a possible duplicate).
    ///
    /// # Errors
    /// When the store fails.
    pub async fn recover(&self) -> anyhow::Result<u64> {
        let n = self
            .inner
            .store
            .call(|s| s.recover_interrupted(Utc::now()))
            .await??;
        if n > 0 {
            warn!(
                alerts = n,
                "Alerts were being sent when the daemon stopped: they are sent again (possible duplicates)."
            );
        }
        Ok(n)
    }

    /// When the next pending alert is due, if any.
    ///
    /// # Errors
    /// When the store fails.
    pub async fn next_due(&self) -> anyhow::Result<Option<DateTime<Utc>>> {
        Ok(self.inner.store.call(|s| s.next_due()).await??)
    }

    /// Sends everything due now (`force`: everything pending), batch after batch.
    ///
    /// # Errors
    /// When the store fails; transport failures are outcomes, not errors.
    pub async fn drain(&self, force: bool) -> anyhow::Result<Report> {
        let mut total = Report::default();
        loop {
            let (report, read) = self.pass(force).await?;
            total.add(report);
            // Stop at a short batch, or one where nothing moved (all put off).
            let moved = report.messages + report.retried + report.failed + report.cancelled;
            if read < BATCH
                || moved == 0
                || (force && report.retried > 0)
                || self.inner.stop.is_cancelled()
            {
                return Ok(total);
            }
        }
    }

    /// One batch: returns what it did and how many alerts it read.
    async fn pass(&self, force: bool) -> anyhow::Result<(Report, usize)> {
        let inner = &self.inner;
        let now = Utc::now();
        let until = (!force).then_some(now);
        let since = now - chrono::Duration::hours(24);
        let (due, sent) = inner
            .store
            .call(move |s| -> Result<_, crate::store::StoreError> {
                let due = s.due_alerts(until, BATCH)?;
                let mut sent = HashMap::new();
                for a in &due {
                    if let std::collections::hash_map::Entry::Vacant(slot) =
                        sent.entry(a.recipient.to_lowercase())
                    {
                        let n = s.messages_sent_since(slot.key(), since)?;
                        slot.insert(n);
                    }
                }
                Ok((due, sent))
            })
            .await??;
        let read = due.len();
        let planned = plan(
            due,
            &sent,
            inner.config.max_per_recipient_per_day,
            now,
            &inner.rules.policy,
            &inner.rules.lifecycle,
        );
        let mut report = Report {
            cancelled: planned.cancelled,
            deferred: planned.deferred,
            ..Report::default()
        };
        if !planned.changes.is_empty() {
            let changes = planned.changes;
            inner.store.call(move |s| s.apply(&changes, now)).await??;
        }
        let delays = if planned.groups.is_empty() {
            Arc::default()
        } else {
            inner.delays.get(now).await?
        };
        let permits = Arc::new(Semaphore::new(inner.config.concurrency));
        let mut tasks = tokio::task::JoinSet::new();
        for group in planned.groups {
            let permit = Arc::clone(&permits).acquire_owned().await?;
            // On shutdown, no new message starts; those in flight are recorded.
            if self.inner.stop.is_cancelled() {
                break;
            }
            let inner = Arc::clone(&self.inner);
            let delays = Arc::clone(&delays);
            tasks.spawn(async move {
                let report = inner.send_group(group, &delays).await;
                drop(permit);
                report
            });
        }
        while let Some(done) = tasks.join_next().await {
            report.add(done??);
        }
        if report != Report::default() {
            info!(
                messages = report.messages,
                sent = report.sent,
                retried = report.retried,
                failed = report.failed,
                cancelled = report.cancelled,
                deferred = report.deferred,
                transport = inner.transport.name(),
                "Delivered alerts."
            );
        }
        Ok((report, read))
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

    /// Sends one message for a group of alerts to one recipient and records the
    /// attempt for each alert.
    async fn send_group(&self, group: Vec<DueAlert>, delays: &Delays) -> anyhow::Result<Report> {
        let ids: Vec<i64> = group.iter().map(|a| a.id).collect();
        let claimed = self
            .store
            .call(move |s| s.claim(&ids, Utc::now()))
            .await??;
        // Cancelled meanwhile, or taken by another dispatcher (`outbox flush`).
        let group: Vec<DueAlert> = group
            .into_iter()
            .filter(|a| claimed.contains(&a.id))
            .collect();
        if group.is_empty() {
            return Ok(Report::default());
        }
        // The rule of the first alert may give its own sender (a service's address).
        let rule = self.rules.rule(&group[0].rule);
        let from = rule
            .and_then(|r| r.sender.as_deref())
            .and_then(|f| f.parse::<Mailbox>().ok())
            .unwrap_or_else(|| self.from.clone());
        let reply_to = rule
            .and_then(|r| r.reply_to.as_deref())
            .and_then(|f| f.parse::<Mailbox>().ok())
            .or_else(|| self.reply_to.clone());
        let keys: Vec<&str> = group.iter().map(|a| a.key.as_str()).collect();
        let message_id = message::message_id(&keys, &from);
        let recipient = group[0].recipient.clone();
        let outcome = match self.render(&group, delays).and_then(|content| {
            message::build(
                &content,
                &from,
                reply_to.as_ref(),
                &recipient,
                &message_id,
                Utc::now(),
            )
        }) {
            Err(reason) => Outcome::Permanent(reason),
            Ok(email) => self.transmit(email, &message_id).await?,
        };
        let now = Utc::now();
        let mut report = Report::default();
        let changes: Vec<Change> = group
            .iter()
            .map(|alert| {
                let (change, counted) = attempt(
                    alert,
                    &outcome,
                    self.transport.name(),
                    &message_id,
                    now,
                    &self.config,
                    &self.rules.policy,
                );
                match counted {
                    "sent" => report.sent += 1,
                    "pending" => report.retried += 1,
                    _ => report.failed += 1,
                }
                change
            })
            .collect();
        if matches!(outcome, Outcome::Sent(_)) {
            report.messages = 1;
        } else {
            warn!(
                to = %recipient, alerts = group.len(), outcome = ?outcome,
                "A message was not delivered."
            );
        }
        self.store.call(move |s| s.apply(&changes, now)).await??;
        Ok(report)
    }

    /// Hands one message to the transport, in its turn under the rate limit.
    async fn transmit(&self, email: lettre::Message, message_id: &str) -> anyhow::Result<Outcome> {
        self.wait_turn().await;
        Ok(match &self.transport {
            Transport::File(dir) => {
                let (dir, id, bytes) = (dir.clone(), message_id.to_owned(), email.formatted());
                tokio::task::spawn_blocking(move || file::write(&dir, &id, &bytes)).await?
            }
            Transport::Smtp(relay) => relay.send(email).await,
        })
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
                self.connectors
                    .iter()
                    .find(|c| c.name == a.dossier.connector)
                    .and_then(|c| c.link_for(&a.dossier.dossier))
            })
            .collect();
        for (alert, link) in group.iter().zip(&links) {
            let stored = &alert.dossier;
            let delay = delays.estimate(
                stored.dossier.get("scheme"),
                &stored.dossier.step,
                (now - stored.step_entered_at).num_seconds(),
            );
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
            .map_err(|reason| format!("the message cannot be rendered: {reason}"))
    }
}

impl Dispatcher {
    /// Sends the administrators' digest when its schedule has ticked since the last
    /// one and something failed or was refused meanwhile; returns whether it sent.
    ///
    /// # Errors
    /// When the store fails; a transport failure is logged and retried next time.
    pub async fn admin_digest(&self) -> anyhow::Result<bool> {
        let inner = &self.inner;
        let Some(admin) = inner.config.admin_email.clone() else {
            return Ok(false);
        };
        let now = Utc::now();
        let last = inner.store.call(|s| s.last_admin_report()).await??;
        let tz = inner.rules.policy.tz;
        let due = match last {
            Some(last) => crate::daemon::next_run(&inner.config.admin_digest, tz, last)
                .is_ok_and(|tick| tick <= now),
            None => true,
        };
        if !due {
            return Ok(false);
        }
        let sources: Vec<_> = inner
            .connectors
            .iter()
            .filter(|c| c.enabled)
            .map(|c| (c.name.clone(), c.max_age))
            .collect();
        let news = inner
            .store
            .call(move |s| s.admin_news(&sources, now))
            .await??;
        if news.is_empty() {
            // Nothing to tell: the next report starts from here.
            inner
                .store
                .call(move |s| s.record_admin_report(now, now, &news, None))
                .await??;
            return Ok(false);
        }
        let text = admin_text(&news, last, tz);
        let content = crate::rules::template::Message {
            subject: admin_subject(&news),
            html: crate::rules::template::to_html(&text),
            text,
        };
        let key = format!("admin/{}", crate::store::format_time(now));
        let message_id = message::message_id(&[key.as_str()], &inner.from);
        let outcome = match message::build(&content, &inner.from, None, &admin, &message_id, now) {
            Ok(email) => inner.transmit(email, &message_id).await?,
            Err(reason) => Outcome::Permanent(reason),
        };
        match outcome {
            Outcome::Sent(_) => {
                info!(to = %admin, failed = news.failed.len(), refused = news.refused.len(), stale = news.stale.len(), "Sent the administrators' digest.");
                inner
                    .store
                    .call(move |s| s.record_admin_report(now, now, &news, Some(&message_id)))
                    .await??;
                Ok(true)
            }
            other => {
                warn!(to = %admin, outcome = ?other, "The administrators' digest was not delivered; it is tried again later.");
                Ok(false)
            }
        }
    }
}

/// The subject of the administrators' digest, in French: what it tells, counted.
fn admin_subject(news: &crate::store::AdminNews) -> String {
    let plural = |n: usize| if n > 1 { "s" } else { "" };
    let mut parts = vec![
        format!(
            "{} alerte{} en échec",
            news.failed.len(),
            plural(news.failed.len())
        ),
        format!(
            "{} import{} refusé{}",
            news.refused.len(),
            plural(news.refused.len()),
            plural(news.refused.len())
        ),
    ];
    if !news.stale.is_empty() {
        parts.push(format!(
            "{} source{} sans import récent",
            news.stale.len(),
            plural(news.stale.len())
        ));
    }
    format!("Alertissimo : {}", parts.join(", "))
}

/// The text of the administrators' digest, in French.
fn admin_text(
    news: &crate::store::AdminNews,
    since: Option<DateTime<Utc>>,
    tz: chrono_tz::Tz,
) -> String {
    let mut text = String::from("Bonjour,\n\n");
    text.push_str(&match since {
        Some(since) => format!(
            "Voici ce qui demande votre attention depuis le {} :",
            since.with_timezone(&tz).format("%d/%m/%Y à %H:%M")
        ),
        None => "Voici ce qui demande votre attention :".to_owned(),
    });
    text.push_str("\n\n");
    if !news.failed.is_empty() {
        text.push_str(&format!(
            "Alertes qui n'ont pas pu être envoyées ({}) :\n",
            news.failed.len()
        ));
        for (_, reference, rule, recipient, reason) in news.failed.iter().take(200) {
            text.push_str(&format!(
                "- dossier {reference}, règle {rule}, à {recipient} : {reason}\n"
            ));
        }
        if news.failed.len() > 200 {
            text.push_str(&format!("- … et {} autres\n", news.failed.len() - 200));
        }
        text.push_str("\nPour les renvoyer une fois la cause corrigée : alertissimo outbox retry --failed\n\n");
    }
    if !news.refused.is_empty() {
        text.push_str(&format!(
            "Imports refusés ({}) : rien n'a été modifié, le fichier attend une correction.\n",
            news.refused.len()
        ));
        for (run, connector, file, reasons) in &news.refused {
            text.push_str(&format!(
                "- import {run}, connecteur {connector}, fichier {file} : {}\n",
                reasons.join(" ; ")
            ));
        }
        text.push_str("\nLe détail : alertissimo runs --rejections NUMÉRO\n");
    }
    if !news.stale.is_empty() {
        text.push_str(&format!(
            "{}Sources sans import réussi dans le délai prévu ({}) : les dossiers ne sont plus suivis.\n",
            if news.failed.is_empty() && news.refused.is_empty() { "" } else { "\n" },
            news.stale.len()
        ));
        for source in &news.stale {
            let last = source.last_success.map_or_else(
                || "aucun import réussi".to_owned(),
                |t| {
                    format!(
                        "dernier import réussi le {}",
                        t.with_timezone(&tz).format("%d/%m/%Y à %H:%M")
                    )
                },
            );
            let age = source
                .max_age_seconds
                .map(|s| crate::rules::french::duration(std::time::Duration::from_secs(s)))
                .unwrap_or_default();
            text.push_str(&format!(
                "- connecteur {} : {last} (délai prévu : {age})",
                source.connector
            ));
            if let Some(error) = &source.last_error {
                text.push_str(&format!(" ; dernière erreur : {error}"));
            }
            text.push('\n');
        }
        text.push_str("\nL'état des sources : alertissimo runs --sources\n");
    }
    text
}

/// What a pass will do with the alerts it read.
#[derive(Debug, Default)]
pub struct Planned {
    /// One message each: alerts to the same recipient, or one alone.
    pub groups: Vec<Vec<DueAlert>>,
    /// Cancellations and deferrals, applied before sending.
    pub changes: Vec<Change>,
    /// How many were cancelled.
    pub cancelled: u64,
    /// How many were put off.
    pub deferred: u64,
}

/// Decides what to do with due alerts (pure): cancel those whose dossier left the
/// step they were held for, put off those past a recipient's daily limit, and
/// gather the digestible alerts of each recipient into one message. Addresses
/// compare without case, and `sent_today` is keyed by lowercase address.
pub fn plan(
    due: Vec<DueAlert>,
    sent_today: &HashMap<String, u32>,
    per_day: u32,
    now: DateTime<Utc>,
    policy: &crate::rules::timing::Policy,
    lifecycle: &crate::lifecycle::Lifecycle,
) -> Planned {
    let mut planned = Planned::default();
    let mut digests: HashMap<String, usize> = HashMap::new();
    let mut messages: HashMap<String, u32> = HashMap::new();
    for alert in due {
        if let Some(held) = &alert.hold_step
            && *held != alert.dossier.dossier.step
        {
            planned.changes.push(Change::Cancel {
                id: alert.id,
                reason: crate::rules::left_step(lifecycle.label(&alert.dossier.dossier.step)),
            });
            planned.cancelled += 1;
            continue;
        }
        let address = alert.recipient.to_lowercase();
        if alert.digest
            && let Some(&g) = digests.get(&address)
            && planned.groups[g].len() < MAX_DIGEST
        {
            planned.groups[g].push(alert);
            continue;
        }
        let count = sent_today.get(&address).copied().unwrap_or(0)
            + messages.get(&address).copied().unwrap_or(0);
        if count >= per_day {
            planned.changes.push(Change::Defer {
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
        if alert.digest {
            digests.insert(address, planned.groups.len());
        }
        planned.groups.push(vec![alert]);
    }
    planned
}

/// The recorded attempt for one alert of a message, and its new status.
fn attempt(
    alert: &DueAlert,
    outcome: &Outcome,
    transport: &str,
    message_id: &str,
    now: DateTime<Utc>,
    config: &Delivery,
    policy: &crate::rules::timing::Policy,
) -> (Change, &'static str) {
    let (outcome_name, reply) = match outcome {
        Outcome::Sent(r) => ("sent", r),
        Outcome::Transient(r) => ("transient", r),
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
                humantime::format_duration(config.max_age)
            )),
        ),
        Outcome::Permanent(reply) => ("failed", None, Some(reply.clone())),
    };
    let delivery = Attempt {
        reply: reply.or(delivery.reply.clone()),
        ..delivery
    };
    (
        Change::Attempt {
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
    use super::*;
    use crate::model::{Dossier, Event, EventKind};
    use crate::rules::timing::{Digest, Policy};
    use crate::store::StoredDossier;
    use crate::test_support::{shipped_lifecycle as lifecycle, utc};

    fn policy(windows: &[&str]) -> Policy {
        Policy {
            tz: chrono_tz::Europe::Paris,
            debounce: Duration::ZERO,
            digest: Digest::Import,
            windows: windows.iter().map(|w| w.parse().unwrap()).collect(),
        }
    }

    fn alert(id: i64, to: &str, digest: bool, step: &str, hold: Option<&str>) -> DueAlert {
        let now = utc("2026-03-10T09:00:00Z");
        DueAlert {
            id,
            key: format!("r/{id}/{id}/{to}"),
            rule: "r".to_owned(),
            template: "t".to_owned(),
            role: "beneficiary".to_owned(),
            recipient: to.to_owned(),
            digest,
            hold_step: hold.map(str::to_owned),
            attempts: 0,
            created_at: now,
            due_at: now,
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
        let planned = plan(due, &HashMap::new(), 20, now, &policy(&[]), &lifecycle());
        let groups: Vec<Vec<i64>> = planned.groups.iter().map(|g| ids(g)).collect();
        assert_eq!(groups, [vec![1, 3], vec![2], vec![4]]);
        assert!(planned.changes.is_empty());
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
            20,
            utc("2026-03-10T09:00:00Z"),
            &policy(&[]),
            &lifecycle(),
        );
        assert_eq!(planned.cancelled, 1);
        assert!(matches!(&planned.changes[0], Change::Cancel { id: 1, .. }));
        // The reason names the step as the import's cancellations do: by its label.
        assert!(
            matches!(&planned.changes[0], Change::Cancel { reason, .. }
                if reason.ends_with("(désormais : En attente du vote de la Commission permanente)")),
            "{:?}",
            planned.changes[0]
        );
        assert_eq!(planned.groups.len(), 1);
        assert_eq!(ids(&planned.groups[0]), [2]);
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
            2,
            now,
            &policy(&["mon-fri 08:00-19:00"]),
            &lifecycle(),
        );
        let groups: Vec<Vec<i64>> = planned.groups.iter().map(|g| ids(g)).collect();
        assert_eq!(groups, [vec![1], vec![3]]);
        assert_eq!(planned.deferred, 1);
        match &planned.changes[0] {
            Change::Defer { id, until, reason } => {
                assert_eq!(*id, 2);
                assert_eq!(*until, utc("2026-03-11T07:00:00Z"));
                assert!(reason.contains("limite de 2 messages par jour"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
    }

    fn delivery() -> Delivery {
        Delivery {
            transport: TransportConfig::File {
                dir: std::path::PathBuf::from("x"),
            },
            concurrency: 1,
            rate_per_second: 1.0,
            max_per_recipient_per_day: 1,
            max_age: Duration::from_secs(5 * 86_400),
            retry_initial: Duration::from_secs(60),
            retry_max: Duration::from_secs(3_600),
            admin_email: None,
            admin_digest: "0 0 8 * * *".parse().unwrap(),
            from: "a@x.fr".to_owned(),
            reply_to: None,
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
            attempt(&a, &o, "smtp", "<m@x.fr>", now, &config, &policy).1
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
