//! The e-mail itself: an RFC 5322 message built with lettre from a rendered
//! [`crate::rules::template::Message`].
//!
//! Owns the headers: From and Reply-To from the configuration, To, a Subject that
//! can hold no line break (lettre encodes non-ASCII text), a `Message-ID` derived
//! from the alerts' idempotency keys (the same alerts always make the same
//! Message-ID, so a message sent again after a crash can be recognised),
//! `Auto-Submitted: auto-generated` (RFC 3834: no auto-replies), and a
//! multipart/alternative body with the text and HTML parts.

use chrono::{DateTime, Utc};
use lettre::message::header::{ContentType, Header, HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart, SinglePart};
use xxhash_rust::xxh3::xxh3_128;

use crate::rules::template::Message;

/// `Auto-Submitted: auto-generated` (RFC 3834).
#[derive(Debug, Clone)]
struct AutoSubmitted;

impl Header for AutoSubmitted {
    fn name() -> HeaderName {
        HeaderName::new_from_ascii_str("Auto-Submitted")
    }

    fn parse(_: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(Self)
    }

    fn display(&self) -> HeaderValue {
        HeaderValue::new(Self::name(), "auto-generated".to_owned())
    }
}

/// The Message-ID of the message carrying these alerts: a hash of their keys, at
/// the domain of the sender.
pub fn message_id(keys: &[&str], from: &Mailbox) -> String {
    let mut sorted = keys.to_vec();
    sorted.sort_unstable();
    let hash = xxh3_128(sorted.join("\n").as_bytes());
    format!("<{hash:032x}.alertissimo@{}>", from.email.domain())
}

/// Builds the e-mail.
///
/// # Errors
/// When an address is not one (the recipient comes from data, checked at import,
/// but a stored value could still be wrong): a permanent failure.
pub fn build(
    content: &Message,
    from: &Mailbox,
    reply_to: Option<&Mailbox>,
    to: &str,
    message_id: &str,
    date: DateTime<Utc>,
) -> Result<lettre::Message, String> {
    let to: Mailbox = to.parse().map_err(|e| {
        format!("« {to} » n'est pas une adresse valide, le message ne peut pas partir : {e}")
    })?;
    // Rendered subjects hold no line break; make sure of it all the same.
    let subject: String = content
        .subject
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let mut builder = lettre::Message::builder()
        .from(from.clone())
        .to(to)
        .subject(subject)
        .message_id(Some(message_id.to_owned()))
        .date(date.into())
        .header(AutoSubmitted);
    if let Some(reply_to) = reply_to {
        builder = builder.reply_to(reply_to.clone());
    }
    builder
        .multipart(
            MultiPart::alternative()
                .singlepart(
                    SinglePart::builder()
                        .header(ContentType::TEXT_PLAIN)
                        .body(content.text.clone()),
                )
                .singlepart(
                    SinglePart::builder()
                        .header(ContentType::TEXT_HTML)
                        .body(content.html.clone()),
                ),
        )
        .map_err(|e| format!("cannot build the message: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn content(subject: &str) -> Message {
        Message {
            subject: subject.to_owned(),
            text: "Bonjour,\n\nVotre dossier avance.\n".to_owned(),
            html: "<p>Bonjour,</p>".to_owned(),
        }
    }

    fn from() -> Mailbox {
        "Région Exemple <ne-pas-repondre@region.example.org>"
            .parse()
            .unwrap()
    }

    fn built(subject: &str, to: &str) -> Result<String, String> {
        let date = DateTime::parse_from_rfc3339("2026-03-10T09:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let reply: Mailbox = "aides@region.example.org".parse().unwrap();
        build(
            &content(subject),
            &from(),
            Some(&reply),
            to,
            "<x@region.example.org>",
            date,
        )
        .map(|m| String::from_utf8(m.formatted()).unwrap())
    }

    #[test]
    fn headers_and_both_parts() {
        let text = built("Dossier AR-1 : aide accordée", "asso@example.org").unwrap();
        for needle in [
            "From: =?utf-8?b?",
            "Reply-To: aides@region.example.org",
            "To: asso@example.org",
            "Subject: Dossier AR-1 : aide =?utf-8?b?",
            "Message-ID: <x@region.example.org>",
            "Auto-Submitted: auto-generated",
            "Content-Type: multipart/alternative",
            "Content-Type: text/plain; charset=utf-8",
            "Content-Type: text/html; charset=utf-8",
        ] {
            assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
        }
    }

    #[test]
    fn no_header_injection_from_data() {
        let text = built("AR-1\r\nBcc: victim@example.org", "asso@example.org").unwrap();
        let headers = text.split("\r\n\r\n").next().unwrap();
        assert!(!headers.contains("\r\nBcc:"), "{headers}");
        // The would-be header stays inside the subject's line.
        assert!(
            headers.lines().any(|l| l.starts_with("Subject: AR-1")),
            "{headers}"
        );
        assert!(
            !headers
                .lines()
                .any(|l| l.to_ascii_lowercase().starts_with("bcc")),
            "{headers}"
        );
        assert!(
            built("x", "asso@example.org\r\nBcc: victim@example.org").is_err(),
            "an address with a line break is refused"
        );
    }

    #[test]
    fn message_ids_depend_on_the_alerts_only() {
        let a = message_id(&["r/1/2/a@x.fr", "r/3/4/a@x.fr"], &from());
        let b = message_id(&["r/3/4/a@x.fr", "r/1/2/a@x.fr"], &from());
        assert_eq!(a, b);
        assert!(a.ends_with(".alertissimo@region.example.org>"), "{a}");
        assert_ne!(a, message_id(&["r/1/2/a@x.fr"], &from()));
    }
}
