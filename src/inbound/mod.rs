//! Replies by e-mail (issue 21, item 3): the mailbox of `[inbound]`, read over
//! IMAP; each message matched to its dossier and recorded as an exchange.
//!
//! ```text
//!  poll ─▶ IMAP: log in, make the folders, select `folder`, UIDs
//!   each message ─▶ fetch (left unseen) ─▶ mail::parse (message, auto-reply, bounce;
//!   │               new text without its quoted history)
//!   │  store thread: match (the token of a plus address in To/Cc/Delivered-To,
//!   │  else In-Reply-To/References against the Message-IDs sent), then record:
//!   │    matched: an exchange (a message: forwarded to the other side, pending);
//!   │             a bounce of alerts: those alerts failed
//!   │    unmatched: a row for the administrators' digest
//!   └─▶ move it to `processed_folder` or `unmatched_folder`
//! ```
//!
//! **Crash safety.** A message is recorded first, then moved. Its Message-ID is
//! unique in the store (a message without one gets one made of a hash of its
//! bytes), so a message read again after a crash between the two (a kill, a
//! lost connection) is recorded once: the second reading finds it recorded and
//! only moves it. A failed poll (server down, login refused) is recorded
//! (`/metrics`, `outbox list`), logged and tried again at the next interval.
//!
//! **Who wrote it, and to whom it goes.** The sender is the beneficiary's side
//! when it is one of the dossier's `beneficiary.email` addresses, the
//! service's when it is one of `instructor.email` or `service.email`; an
//! unknown sender is on the side the answered message went to, and on the
//! beneficiary's when nothing tells. A person's message is forwarded to the
//! other side: the beneficiary's first address, or the service's address as
//! the front office resolves it ([`Dossier::service_recipient`]: the
//! instructor, else `service.email`, else `[web] service_email`).
//! Auto-replies and bounces are never forwarded; a bounce of alerts marks them
//! failed, and so does a bounce of a forwarded exchange.
//!
//! **Test hook.** With the environment variable `INBOUND_TEST_PAUSE_BEFORE_MOVE`
//! set, the daemon stops after recording a message and before moving it, and
//! logs so: the test of crash safety kills it (SIGKILL) there. Never set it in
//! production.
//!
//! Submodules: `mail` (pure: an e-mail parsed and classified), `quote` (pure:
//! a reply's new text), `imap` (the session with the server).

mod imap;
mod mail;
mod quote;

use chrono::{DateTime, Utc};
use tracing::{info, warn};

use crate::config::Inbound;
use crate::model::Dossier;
use crate::store::{
    Answered, Channel, ExchangeKind, NewExchange, Side, Store, StoreError, StoreHandle,
};
use mail::Incoming;

/// The environment variable of the test hook (see the module's opening).
const PAUSE_BEFORE_MOVE: &str = "INBOUND_TEST_PAUSE_BEFORE_MOVE";

/// What one poll did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PollReport {
    /// Messages read from the folder.
    pub read: u64,
    /// Exchanges recorded (messages, auto-replies, bounces).
    pub recorded: u64,
    /// Of them, messages forwarded to the other side.
    pub forwarded: u64,
    /// Messages recorded before (read again after an interruption).
    pub again: u64,
    /// Messages that matched no dossier.
    pub unmatched: u64,
    /// Alerts and forwardings marked failed by a bounce.
    pub bounced_alerts: u64,
}

/// What became of one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Handled {
    /// Recorded on a dossier (`new`: not before), forwarded or not, failing
    /// `bounced` alerts.
    Recorded {
        new: bool,
        forwarded: bool,
        bounced: u64,
    },
    /// Matched no dossier (`new`: not recorded before).
    Unmatched { new: bool },
}

/// Reads the folder once: every message recorded and moved.
///
/// # Errors
/// Why the server could not be read (unreachable, login refused, a command
/// refused), or the store failed; the messages handled before stay handled.
///
/// `service_email` is `[web] service_email`: whom a beneficiary's reply goes to
/// when the dossier names neither an instructor nor a service.
pub(crate) async fn poll(
    config: &Inbound,
    service_email: Option<&str>,
    store: &StoreHandle,
) -> Result<PollReport, String> {
    let password = config.password.read_as("inbound.password")?;
    let mailbox = crate::value::mailbox(&config.address)
        .map_err(|e| format!("inbound.address: {e}"))?
        .email;
    let mut imap = imap::Connection::open(config, &password.0).await?;
    let mut report = PollReport::default();
    let result = async {
        for uid in imap.uids().await? {
            let Some(raw) = imap.fetch(uid).await? else {
                continue;
            };
            report.read += 1;
            let (address, service) = (mailbox.clone(), service_email.map(str::to_owned));
            let handled = store
                .call(move |s| handle(s, &raw, (&address, service.as_deref()), Utc::now()))
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| format!("{:#}", anyhow::Error::from(e)))?;
            let folder = match handled {
                Handled::Recorded {
                    new,
                    forwarded,
                    bounced,
                } => {
                    report.recorded += u64::from(new);
                    report.again += u64::from(!new);
                    report.forwarded += u64::from(forwarded);
                    report.bounced_alerts += bounced;
                    &config.processed_folder
                }
                Handled::Unmatched { new } => {
                    report.unmatched += 1;
                    report.again += u64::from(!new);
                    &config.unmatched_folder
                }
            };
            if std::env::var_os(PAUSE_BEFORE_MOVE).is_some() {
                warn!(
                    uid,
                    "Test hook {PAUSE_BEFORE_MOVE}: recorded, paused before the move."
                );
                std::future::pending::<()>().await;
            }
            imap.move_to(uid, folder).await?;
        }
        Ok::<_, String>(())
    }
    .await;
    imap.logout().await;
    result.map(|()| report)
}

/// Matches one e-mail to its dossier and records it, on the store thread.
fn handle(
    s: &mut Store,
    raw: &[u8],
    (mailbox, service_email): (&lettre::Address, Option<&str>),
    now: DateTime<Utc>,
) -> Result<Handled, StoreError> {
    let Some(incoming) = mail::parse(raw) else {
        let id = mail::unreadable_id(raw);
        let new = s.record_unmatched(&id, ("", "(illisible)"), ExchangeKind::Message, now)?;
        return Ok(Handled::Unmatched { new });
    };
    let mut dossier = None;
    for token in mail::tokens(&incoming.recipients, mailbox) {
        dossier = dossier.or(s.dossier_of_token(&token)?);
    }
    let ids = match incoming.kind {
        ExchangeKind::Bounce => &incoming.bounced,
        _ => &incoming.answers,
    };
    let answered = s.answered(ids)?;
    let dossier = dossier
        .or(answered.as_ref().map(|a| a.dossier))
        .map(|rowid| s.dossier_by_rowid(rowid))
        .transpose()?
        .flatten();
    let Some(stored) = dossier else {
        let who = (incoming.sender.as_str(), incoming.subject.as_str());
        let new = s.record_unmatched(&incoming.message_id, who, incoming.kind, now)?;
        return Ok(Handled::Unmatched { new });
    };
    // An answered message of another dossier tells nothing of this one.
    let answered = answered.filter(|a| a.dossier == stored.rowid);
    let exchange = exchange(
        &incoming,
        raw,
        stored.rowid,
        &stored.dossier,
        answered.as_ref(),
        service_email,
    );
    let forwarded = exchange.recipient.is_some();
    if exchange.kind == ExchangeKind::Message && !forwarded {
        warn!(dossier = %stored.dossier.reference(), side = exchange.side.as_str(),
            "A reply by e-mail is recorded, but the dossier names no one on the other side to forward it to.");
    }
    let new = s.record_exchange(&exchange, now)?.is_some();
    let mut bounced = 0;
    if let (ExchangeKind::Bounce, Some(answered)) = (incoming.kind, &answered) {
        let reason = format!(
            "le message n'a pas été remis (avis de non-remise reçu) : {}",
            incoming
                .diagnostic
                .as_deref()
                .unwrap_or("raison non précisée")
        );
        bounced = s.alerts_bounced(&answered.alerts, &reason, now)?;
        if let Some(id) = answered.exchange {
            bounced += u64::from(s.exchange_bounced(id, &reason)?);
        }
    }
    Ok(Handled::Recorded {
        new,
        forwarded: forwarded && new,
        bounced,
    })
}

/// The exchange an e-mail matched to `dossier` makes: its side, its author, its
/// text, and whom it is forwarded to (a person's message only).
fn exchange(
    incoming: &Incoming,
    raw: &[u8],
    rowid: i64,
    dossier: &Dossier,
    answered: Option<&Answered>,
    service_email: Option<&str>,
) -> NewExchange {
    let beneficiary = dossier.emails("beneficiary.email");
    let service: Vec<String> = dossier
        .emails("instructor.email")
        .into_iter()
        .chain(dossier.emails("service.email"))
        .collect();
    let side = if beneficiary.contains(&incoming.sender) {
        Side::Beneficiary
    } else if service.contains(&incoming.sender) {
        Side::Service
    } else {
        answered.map_or(Side::Beneficiary, |a| a.sent_to)
    };
    let recipient = match (incoming.kind, side) {
        (ExchangeKind::Message, Side::Beneficiary) => dossier.service_recipient(service_email),
        (ExchangeKind::Message, Side::Service) => beneficiary.first().cloned(),
        _ => None,
    };
    let body = match incoming.kind {
        ExchangeKind::Bounce => format!(
            "Message non remis : {}",
            incoming.diagnostic.as_deref().unwrap_or(&incoming.subject)
        ),
        _ if incoming.text.is_empty() => "(message sans texte nouveau)".to_owned(),
        _ => incoming.text.clone(),
    };
    NewExchange {
        dossier: rowid,
        side,
        channel: Channel::Email,
        kind: incoming.kind,
        author: if incoming.sender.is_empty() {
            "(expéditeur inconnu)".to_owned()
        } else {
            incoming.sender.clone()
        },
        body,
        original: Some(String::from_utf8_lossy(raw).into_owned()),
        received_id: Some(incoming.message_id.clone()),
        recipient,
    }
}

/// Logs what a poll did, when it did something.
pub(crate) fn log(report: &PollReport) {
    if report.read > 0 {
        info!(
            read = report.read,
            recorded = report.recorded,
            forwarded = report.forwarded,
            again = report.again,
            unmatched = report.unmatched,
            bounced_alerts = report.bounced_alerts,
            "Read the replies' mailbox."
        );
    }
}

#[cfg(test)]
mod tests;
