//! E-mail addresses, the one place they are checked: lists as the exports
//! write them (separators, display names refused), each checked and normalised;
//! the mailboxes settings and rules write (`From`, `Reply-To`), and recipients,
//! both as the message builder and the transport will read them.

use std::collections::HashSet;
use std::str::FromStr;

use email_address::EmailAddress;

/// Validates a list of e-mail addresses; returns them joined by `, `, the
/// canonical form of e-mail fields.
pub(crate) fn email_list(raw: &str) -> Result<String, String> {
    match plain_email(raw.trim()) {
        Some(address) => Ok(address),
        None => Ok(parse_email_tokens(raw)?.join(", ")),
    }
}

/// A sender or reply-to as settings and rules write it, `"Région
/// <aides@region.example.org>"` or a bare address: what the headers will carry.
///
/// # Errors
/// Why it is not one.
pub(crate) fn mailbox(text: &str) -> Result<lettre::message::Mailbox, String> {
    text.parse::<lettre::message::Mailbox>()
        .map_err(|e| e.to_string())
}

/// A recipient as the transport will write it in the envelope.
///
/// # Errors
/// Why it cannot be one.
pub(crate) fn recipient(address: &str) -> Result<lettre::Address, String> {
    address
        .parse::<lettre::Address>()
        .map_err(|e| e.to_string())
}

/// Splits and validates a list of e-mail addresses; returns them in order, deduplicated
/// (case-insensitive).
pub(crate) fn parse_emails(raw: &str) -> Result<Vec<String>, String> {
    match plain_email(raw.trim()) {
        Some(address) => Ok(vec![address]),
        None => parse_email_tokens(raw),
    }
}

/// The full parser behind [`parse_emails`], for what is not one plain address.
fn parse_email_tokens(raw: &str) -> Result<Vec<String>, String> {
    let mut addresses = Vec::new();
    let mut seen = HashSet::new();
    let mut push = |address: String| {
        if seen.insert(address.to_lowercase()) {
            addresses.push(address);
        }
    };
    // Words without '@' (and quoted strings) are kept aside: they are a display
    // name if an `<address>` follows, an invalid address otherwise.
    let mut display: Vec<&str> = Vec::new();
    for token in email_tokens(raw)? {
        match token {
            EmailToken::Word(word) if word.contains('@') && !is_single_quoted(word) => {
                reject_display(&display)?;
                push(normalize_email(word)?);
            }
            EmailToken::Word(text) | EmailToken::Quoted(text) => display.push(text),
            EmailToken::Angle(inner) => {
                display.clear();
                push(normalize_email(inner)?);
            }
        }
    }
    reject_display(&display)?;
    if addresses.is_empty() {
        return Err(format!("no e-mail address found in '{raw}'"));
    }
    Ok(addresses)
}

/// A piece of an e-mail list.
enum EmailToken<'a> {
    /// Text between separators (`;`, `,`, whitespace).
    Word(&'a str),
    /// Text between double quotes, only ever a display name.
    Quoted(&'a str),
    /// Text between `<` and `>`, an address.
    Angle(&'a str),
}

fn email_tokens<'a>(raw: &'a str) -> Result<Vec<EmailToken<'a>>, String> {
    let mut tokens = Vec::new();
    let mut rest = raw;
    loop {
        rest = rest.trim_start_matches(|c: char| c == ';' || c == ',' || c.is_whitespace());
        let Some(first) = rest.chars().next() else {
            return Ok(tokens);
        };
        let (closing, make): (char, fn(&'a str) -> EmailToken<'a>) = match first {
            '"' => ('"', EmailToken::Quoted),
            '<' => ('>', EmailToken::Angle),
            _ => {
                let end = rest
                    .find(|c: char| c == ';' || c == ',' || c == '<' || c.is_whitespace())
                    .unwrap_or(rest.len());
                let (word, after) = rest.split_at(end);
                tokens.push(EmailToken::Word(word));
                rest = after;
                continue;
            }
        };
        let inner = &rest[1..];
        let end = inner
            .find(closing)
            .ok_or_else(|| format!("unbalanced '{first}' in '{raw}'"))?;
        tokens.push(make(inner[..end].trim()));
        rest = &inner[end + 1..];
    }
}

fn is_single_quoted(word: &str) -> bool {
    word.len() >= 2 && word.starts_with('\'') && word.ends_with('\'')
}

/// Words that were not followed by an `<address>`: not an address themselves.
fn reject_display(display: &[&str]) -> Result<(), String> {
    if display.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "'{}' is not a valid e-mail address",
            display.join(" ")
        ))
    }
}

/// The common case, one plain address such as `jean.dupont@asso-exemple.fr`,
/// recognised without the full parser: ASCII dot-atoms on both sides of one `@`,
/// domain labels of letters, digits and inner hyphens, a dot in the domain. The
/// full parser accepts every such address and returns the same (a test checks it);
/// anything else goes to it.
pub(super) fn plain_email(text: &str) -> Option<String> {
    // One pass over the bytes: an import checks two addresses a record.
    let bytes = text.as_bytes();
    let at = bytes.iter().position(|&b| b == b'@')?;
    let (local, domain) = (&bytes[..at], &bytes[at + 1..]);
    if local.len() > 64 || domain.len() > 253 {
        return None;
    }
    // Dot-separated runs of atom characters (an empty one too fails).
    let mut previous = b'.';
    for &b in local {
        if (b == b'.' && previous == b'.') || (b != b'.' && !is_atom(b)) {
            return None;
        }
        previous = b;
    }
    if previous == b'.' {
        return None;
    }
    // Dot-separated labels, at least two, of 1 to 63 letters, digits and inner hyphens.
    let (mut label, mut dots) = (0usize, 0usize);
    previous = b'.';
    for &b in domain {
        if b == b'.' {
            if label == 0 || previous == b'-' {
                return None;
            }
            (label, dots) = (0, dots + 1);
        } else if b.is_ascii_alphanumeric() || (b == b'-' && label > 0) {
            label += 1;
            if label > 63 {
                return None;
            }
        } else {
            return None;
        }
        previous = b;
    }
    if label == 0 || previous == b'-' || dots == 0 {
        return None;
    }
    let mut address = text.to_owned();
    address[at + 1..].make_ascii_lowercase();
    Some(address)
}

/// An `atext` character of RFC 5322, ASCII only.
fn is_atom(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'!' | b'#'
                | b'$'
                | b'%'
                | b'&'
                | b'*'
                | b'+'
                | b'/'
                | b'='
                | b'?'
                | b'^'
                | b'_'
                | b'`'
                | b'{'
                | b'|'
                | b'}'
                | b'~'
                | b'-'
        )
}

/// Validates one address; returns it with its domain in lowercase.
pub(super) fn normalize_email(written: &str) -> Result<String, String> {
    let address = match written.get(..7) {
        Some(prefix) if prefix.eq_ignore_ascii_case("mailto:") => &written[7..],
        _ => written,
    };
    let invalid = || format!("'{written}' is not a valid e-mail address");
    let parsed = EmailAddress::from_str(address).map_err(|_| invalid())?;
    if !parsed.display_part().is_empty() {
        return Err(invalid());
    }
    let domain = parsed.domain();
    if !domain.contains('.') {
        return Err(format!(
            "'{written}' is not a valid e-mail address (no dot in the domain)"
        ));
    }
    Ok(format!("{}@{}", parsed.local_part(), domain.to_lowercase()))
}
