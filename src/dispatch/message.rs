//! The e-mail itself: an RFC 5322 message built with lettre from a rendered
//! [`crate::rules::template::Message`].
//!
//! Owns the headers: From and Reply-To from the configuration, To, a Subject that
//! can hold no line break (lettre encodes non-ASCII text), a `Message-ID` derived
//! from the alerts' idempotency keys (the same alerts always make the same
//! Message-ID, so a message sent again after a crash can be recognised),
//! `Auto-Submitted: auto-generated` (RFC 3834: no auto-replies), and a
//! multipart/alternative body with the text and HTML parts.
//!
//! Also owns the [`Footer`] every message ends with, whatever the templates
//! write (issue 17, item 25): a message made only of informational alerts
//! carries `List-Unsubscribe` and `List-Unsubscribe-Post` (RFC 8058) and a
//! French line with its unsubscribe link; a message with a mandatory alert says
//! why it cannot be turned off.

use chrono::{DateTime, Utc};
use lettre::message::header::{ContentType, Header, HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart, SinglePart};
use xxhash_rust::xxh3::xxh3_128;

use crate::rules::template::Message;

/// The path of the unsubscribe pages (served by `web`), below `[web] public_url`.
pub const UNSUBSCRIBE_PATH: &str = "/desabonnement";

/// The address of the unsubscribe link of the holder of `token`, under
/// `public_url` (validated, without a final `/`).
pub fn unsubscribe_url(public_url: &str, token: &str) -> String {
    format!("{public_url}{UNSUBSCRIBE_PATH}/{token}")
}

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

/// `List-Unsubscribe: <URL>` (RFC 2369).
#[derive(Debug, Clone)]
struct ListUnsubscribe(String);

impl Header for ListUnsubscribe {
    fn name() -> HeaderName {
        HeaderName::new_from_ascii_str("List-Unsubscribe")
    }

    fn parse(text: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(Self(text.to_owned()))
    }

    fn display(&self) -> HeaderValue {
        HeaderValue::new(Self::name(), self.0.clone())
    }
}

/// `List-Unsubscribe-Post: List-Unsubscribe=One-Click` (RFC 8058).
#[derive(Debug, Clone)]
struct ListUnsubscribePost;

impl Header for ListUnsubscribePost {
    fn name() -> HeaderName {
        HeaderName::new_from_ascii_str("List-Unsubscribe-Post")
    }

    fn parse(_: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(Self)
    }

    fn display(&self) -> HeaderValue {
        HeaderValue::new(Self::name(), "List-Unsubscribe=One-Click".to_owned())
    }
}

/// What a message says, at its very end, about turning such messages off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Footer {
    /// Only informational alerts: the way out, at this address (built from
    /// `[web] public_url` and the recipient's token, never from data).
    Unsubscribe(String),
    /// At least one mandatory alert: why it cannot be turned off.
    Mandatory,
    /// Nothing is said: the administrators' own digest and notices, and
    /// informational alerts without a `[web] public_url` to build a link from
    /// (queued under an earlier configuration: `check` refuses informational
    /// rules without it).
    Nothing,
}

/// The line of a mandatory message, in both parts.
const MANDATORY_LINE: &str = "Ce message ne peut pas être désactivé : il concerne une étape \
     du dossier (une décision, une pièce manquante, une échéance) qu'il vous faut connaître.";
/// The question before the unsubscribe link.
const UNSUBSCRIBE_QUESTION: &str = "Vous ne souhaitez plus recevoir ces messages d'information ?";

impl Footer {
    /// `content` with the footer at the end of its text part and before the end
    /// of its HTML body (at its very end when the layout has no `</body>`).
    pub fn apply(&self, content: &Message) -> Message {
        let (text, html) = match self {
            Self::Nothing => return content.clone(),
            Self::Mandatory => (
                MANDATORY_LINE.to_owned(),
                format!(
                    "<p style=\"{STYLE}\">{}</p>\n",
                    crate::rules::template::escaped(MANDATORY_LINE)
                ),
            ),
            Self::Unsubscribe(url) => (
                format!("{UNSUBSCRIBE_QUESTION} Désabonnez-vous : {url}"),
                format!(
                    "<p style=\"{STYLE}\">{} <a href=\"{}\" style=\"color:#003b6f;\">Désabonnez-vous</a>.</p>\n",
                    crate::rules::template::escaped(UNSUBSCRIBE_QUESTION),
                    crate::rules::template::escaped(url)
                ),
            ),
        };
        let mut out = content.clone();
        if !out.text.ends_with('\n') {
            out.text.push('\n');
        }
        out.text.push('\n');
        out.text.push_str(&text);
        out.text.push('\n');
        let at = out
            .html
            .to_ascii_lowercase()
            .rfind("</body>")
            .unwrap_or(out.html.len());
        out.html.insert_str(at, &html);
        out
    }

    /// The link of `List-Unsubscribe`, when the message has one.
    fn link(&self) -> Option<&str> {
        match self {
            Self::Unsubscribe(url) => Some(url),
            Self::Mandatory | Self::Nothing => None,
        }
    }
}

/// The footer's paragraph style, as the shipped layout's footer.
const STYLE: &str = "margin:16px auto; max-width:640px; padding:0 24px; font-family:Arial, \
     Helvetica, sans-serif; font-size:13px; line-height:1.5; color:#555555;";

/// The Message-ID of the message carrying these alerts: a hash of their keys, at
/// the domain of the sender.
pub fn message_id(keys: &[&str], from: &Mailbox) -> String {
    let mut sorted = keys.to_vec();
    sorted.sort_unstable();
    let hash = xxh3_128(sorted.join("\n").as_bytes());
    format!("<{hash:032x}.alertissimo@{}>", from.email.domain())
}

/// Builds the e-mail, `footer` included.
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
    footer: &Footer,
) -> Result<lettre::Message, String> {
    let content = &footer.apply(content);
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
    if let Some(link) = footer.link() {
        builder = builder
            .header(ListUnsubscribe(format!("<{link}>")))
            .header(ListUnsubscribePost);
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

    #[test]
    fn links_are_built_under_the_public_address() {
        assert_eq!(
            unsubscribe_url("https://aides.region.example.org/alertes", "0a1b"),
            "https://aides.region.example.org/alertes/desabonnement/0a1b"
        );
    }

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
        built_with(subject, to, &Footer::Mandatory)
    }

    fn built_with(subject: &str, to: &str, footer: &Footer) -> Result<String, String> {
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
            footer,
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

    const LINK: &str = "https://aides.region.example.org/desabonnement/0a1b";

    #[test]
    fn an_informational_message_carries_the_one_click_way_out() {
        let text = built_with(
            "x",
            "asso@example.org",
            &Footer::Unsubscribe(LINK.to_owned()),
        )
        .unwrap();
        let headers = text.split("\r\n\r\n").next().unwrap();
        for needle in [
            &format!("List-Unsubscribe: <{LINK}>"),
            "List-Unsubscribe-Post: List-Unsubscribe=One-Click",
        ] {
            assert!(
                headers.contains(needle),
                "missing {needle:?} in:\n{headers}"
            );
        }
        let with = Footer::Unsubscribe(LINK.to_owned()).apply(&content("x"));
        assert!(
            with.text.ends_with(&format!(
                "\n\nVous ne souhaitez plus recevoir ces messages d'information ? Désabonnez-vous : {LINK}\n"
            )),
            "{}",
            with.text
        );
        assert!(with.text.starts_with("Bonjour,\n\nVotre dossier avance.\n"));
        assert!(
            with.html.contains(&format!(
                "<a href=\"{LINK}\" style=\"color:#003b6f;\">Désabonnez-vous</a>"
            )),
            "{}",
            with.html
        );
    }

    #[test]
    fn a_mandatory_message_says_why_it_cannot_be_turned_off() {
        let text = built("x", "asso@example.org").unwrap();
        assert!(!text.contains("List-Unsubscribe"), "{text}");
        let mut page = content("x");
        page.html = "<html><body><p>Bonjour,</p></BODY></html>".to_owned();
        let with = Footer::Mandatory.apply(&page);
        assert!(
            with.text.ends_with(&format!("\n{MANDATORY_LINE}\n")),
            "{}",
            with.text
        );
        assert!(MANDATORY_LINE.contains("ne peut pas être désactivé"));
        // Inside the body, before its end, and escaped (« qu'il » has an apostrophe).
        assert!(
            with.html.ends_with("ne peut pas être désactivé : il concerne une étape du dossier (une décision, une pièce manquante, une échéance) qu&#39;il vous faut connaître.</p>\n</BODY></html>"),
            "{}",
            with.html
        );
        assert!(!with.html.contains("href"), "{}", with.html);
        // Without a link to give, nothing is said.
        assert_eq!(Footer::Nothing.apply(&page), page);
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
