//! Pure: one e-mail of the replies' mailbox, parsed (mail-parser) into what
//! Alertissimo needs of it: who sent it, the addresses it was delivered to (for
//! the thread token), the Message-IDs it answers, what it is (a message, an
//! automatic reply, a bounce) and its new text.
//!
//! - A **bounce** is a delivery status notification: `multipart/report;
//!   report-type=delivery-status` (RFC 3464), or a message from `MAILER-DAEMON`
//!   or `postmaster`. The Message-IDs of the message that did not arrive are
//!   read from its attached message or headers (`message/rfc822`,
//!   `text/rfc822-headers`), and the reason from its `Diagnostic-Code` or
//!   `Status`.
//! - An **automatic reply** carries `Auto-Submitted` other than `no` (RFC
//!   3834), `Precedence: bulk, junk, list or auto_reply`, `X-Autoreply`,
//!   `X-Autorespond`, or a subject such as "Réponse automatique", "Absence",
//!   "Out of office", "Automatic reply".
//! - Anything else is a **message** written by a person.
//!
//! The text is the plain part, or the HTML part turned into text when there is
//! none, without its quoted history ([`super::quote`]).

use std::borrow::Cow;

use mail_parser::{HeaderValue, Message, MessageParser, MimeHeaders, PartType};
use ring::digest;

use crate::store::ExchangeKind;

/// An e-mail of the mailbox, as Alertissimo reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Incoming {
    /// Its Message-ID, in angle brackets; one made from a hash of the whole
    /// message when it has none (it is recorded once all the same).
    pub message_id: String,
    /// The sender's address (`From`), in lowercase; empty when it has none.
    pub sender: String,
    /// Its subject.
    pub subject: String,
    /// The addresses it was delivered to: `To`, `Cc`, `Delivered-To`,
    /// `X-Original-To`, in lowercase.
    pub recipients: Vec<String>,
    /// The Message-IDs it answers (`References`, then `In-Reply-To`: the most
    /// recent last), in angle brackets.
    pub answers: Vec<String>,
    /// A message, an automatic reply or a bounce.
    pub kind: ExchangeKind,
    /// The new text (a bounce: its report's readable part, trimmed).
    pub text: String,
    /// A bounce: the Message-IDs of the message that did not arrive.
    pub bounced: Vec<String>,
    /// A bounce: why (the `Diagnostic-Code`, else the `Status`).
    pub diagnostic: Option<String>,
}

/// The longest text kept as an exchange's body (the original keeps it all).
const MAX_TEXT: usize = 20_000;

/// Parses an e-mail. `None` when it is not one (no header at all).
pub(crate) fn parse(raw: &[u8]) -> Option<Incoming> {
    let message = MessageParser::default().parse(raw)?;
    if message.headers().is_empty() {
        return None;
    }
    let message_id = message
        .message_id()
        .map_or_else(|| unreadable_id(raw), bracketed);
    let sender = message
        .from()
        .and_then(|a| a.first())
        .and_then(|a| a.address())
        .unwrap_or_default()
        .to_lowercase();
    let subject = message.subject().unwrap_or_default().trim().to_owned();
    let kind = classify(&message, &sender, &subject);
    let (text, bounced, diagnostic) = match kind {
        ExchangeKind::Bounce => bounce(&message),
        _ => (
            super::quote::new_text(&message.body_text(0).unwrap_or(Cow::Borrowed(""))),
            Vec::new(),
            None,
        ),
    };
    Some(Incoming {
        message_id,
        recipients: recipients(&message),
        answers: answers(&message),
        sender,
        subject,
        kind,
        text: truncate(text),
        bounced,
        diagnostic,
    })
}

/// The Message-ID of an e-mail that has none (or cannot be read): made of a
/// hash of its bytes, so that reading it again finds it recorded.
pub(crate) fn unreadable_id(raw: &[u8]) -> String {
    let hash = digest::digest(&digest::SHA256, raw);
    let hex: String = hash.as_ref()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("<{hex}@sans-message-id.alertissimo>")
}

/// What an e-mail is.
fn classify(message: &Message<'_>, sender: &str, subject: &str) -> ExchangeKind {
    let report = message.content_type().is_some_and(|ct| {
        ct.ctype().eq_ignore_ascii_case("multipart")
            && ct
                .subtype()
                .is_some_and(|s| s.eq_ignore_ascii_case("report"))
            && ct
                .attribute("report-type")
                .is_some_and(|t| t.eq_ignore_ascii_case("delivery-status"))
    });
    let local = sender.split('@').next().unwrap_or_default();
    if report || local == "mailer-daemon" || local == "postmaster" {
        return ExchangeKind::Bounce;
    }
    let header = |name: &str| {
        message
            .header_raw(name)
            .map(|v| v.trim().to_ascii_lowercase())
    };
    let auto_submitted = header("Auto-Submitted").is_some_and(|v| !v.is_empty() && v != "no");
    let precedence = header("Precedence")
        .is_some_and(|v| ["bulk", "junk", "list", "auto_reply"].contains(&v.as_str()));
    let flagged = header("X-Autoreply").is_some() || header("X-Autorespond").is_some();
    if auto_submitted || precedence || flagged || automatic_subject(subject) {
        ExchangeKind::AutoReply
    } else {
        ExchangeKind::Message
    }
}

/// Whether a subject is one of an automatic reply's.
fn automatic_subject(subject: &str) -> bool {
    let lower = subject.trim().to_lowercase();
    const STARTS: &[&str] = &[
        "réponse automatique",
        "reponse automatique",
        "absence",
        "automatic reply",
        "auto:",
        "autoreply",
        "auto-reply",
        "out of office",
        "out of the office",
        "abwesenheit",
    ];
    STARTS.iter().any(|s| lower.starts_with(s)) || lower.contains("out of office")
}

/// A bounce's readable text, the Message-IDs of what did not arrive, and why.
fn bounce(message: &Message<'_>) -> (String, Vec<String>, Option<String>) {
    let mut bounced = Vec::new();
    let mut diagnostic = None;
    for part in &message.parts {
        let (ctype, subtype) = part
            .content_type()
            .map_or((String::new(), String::new()), |ct| {
                (
                    ct.ctype().to_ascii_lowercase(),
                    ct.subtype().unwrap_or_default().to_ascii_lowercase(),
                )
            });
        match (&part.body, ctype.as_str(), subtype.as_str()) {
            (PartType::Message(inner), ..) => bounced.extend(inner.message_id().map(bracketed)),
            (_, "text", "rfc822-headers") => {
                // The headers alone: a blank line ends them.
                let mut text = part.contents().to_vec();
                text.extend_from_slice(b"\r\n\r\n");
                if let Some(headers) = MessageParser::default().parse_headers(&text) {
                    bounced.extend(headers.message_id().map(bracketed));
                }
            }
            (_, "message", "delivery-status") => {
                diagnostic = delivery_status(&String::from_utf8_lossy(part.contents()));
            }
            _ => {}
        }
    }
    if bounced.is_empty() {
        bounced = answers(message);
    }
    let text = message
        .body_text(0)
        .map(|t| t.trim().to_owned())
        .unwrap_or_default();
    (text, bounced, diagnostic)
}

/// The reason of a `message/delivery-status` part: its `Diagnostic-Code`, else
/// its `Status`.
fn delivery_status(text: &str) -> Option<String> {
    let field = |name: &str| {
        text.lines().find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.trim()
                .eq_ignore_ascii_case(name)
                .then(|| value.trim().to_owned())
                .filter(|v| !v.is_empty())
        })
    };
    field("Diagnostic-Code").or_else(|| field("Status"))
}

/// The addresses an e-mail was delivered to.
fn recipients(message: &Message<'_>) -> Vec<String> {
    let mut out: Vec<String> = message
        .to()
        .into_iter()
        .chain(message.cc())
        .flat_map(|a| a.iter())
        .filter_map(|a| a.address())
        .map(str::to_lowercase)
        .collect();
    for name in ["Delivered-To", "X-Original-To"] {
        for value in message.header_values(name) {
            if let Some(text) = value.as_text() {
                out.push(text.trim().trim_matches(['<', '>']).to_lowercase());
            }
        }
    }
    out.retain(|a| !a.is_empty());
    out.dedup();
    out
}

/// The Message-IDs an e-mail answers: `References` in order, then
/// `In-Reply-To`, each once.
fn answers(message: &Message<'_>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for value in [message.references(), message.in_reply_to()] {
        let ids: Vec<&str> = match value {
            HeaderValue::Text(id) => vec![id.as_ref()],
            HeaderValue::TextList(ids) => ids.iter().map(AsRef::as_ref).collect(),
            _ => Vec::new(),
        };
        for id in ids {
            let id = bracketed(id);
            out.retain(|known| *known != id);
            out.push(id);
        }
    }
    out
}

/// A Message-ID as Alertissimo stores it: in angle brackets.
fn bracketed(id: &str) -> String {
    format!("<{}>", id.trim().trim_matches(['<', '>']))
}

fn truncate(mut text: String) -> String {
    if text.len() > MAX_TEXT {
        let mut at = MAX_TEXT;
        while !text.is_char_boundary(at) {
            at -= 1;
        }
        text.truncate(at);
        text.push_str("\n[…]");
    }
    text
}

/// The thread tokens in `recipients`: the part after `+` of the plus addresses
/// of the mailbox `address` (its local part and domain, any case).
pub(crate) fn tokens(recipients: &[String], address: &lettre::Address) -> Vec<String> {
    let user = address.user().to_lowercase();
    let domain = address.domain().to_lowercase();
    recipients
        .iter()
        .filter_map(|r| {
            let (local, at) = r.rsplit_once('@')?;
            let token = local.strip_prefix(&user)?.strip_prefix('+')?;
            (at == domain && !token.is_empty()).then(|| token.to_owned())
        })
        .collect()
}

#[cfg(test)]
mod tests;
