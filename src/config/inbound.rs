//! `[inbound]` (issue 21, item 3): the mailbox replies go to, read over IMAP.
//!
//! Off unless `host` is set. Then `user`, a password (`password_env` or
//! `password_file`, never this file) and `address` (the mailbox's address, whose
//! plus addresses carry the dossiers' tokens) are required; TLS (implicit, port
//! 993) is on by default, with the system's CA store plus `ca_file`; plain IMAP
//! is refused to a server that is not this machine (the password would cross
//! the network in clear).

use std::path::PathBuf;
use std::time::Duration;

use figment::Figment;
use figment::value::magic::RelativePathBuf;

use super::{Problems, get, get_duration_at_most, get_optional, push_key};
use crate::secret::PasswordSource;

/// The longest `inbound.poll_interval` and `inbound.timeout`.
const MAX_INTERVAL: Duration = Duration::from_secs(86_400);
/// The shortest `inbound.poll_interval`: a mailbox is not hammered.
const MIN_INTERVAL: Duration = Duration::from_secs(5);

/// How the replies' mailbox is reached and handled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inbound {
    /// The IMAP server.
    pub host: String,
    /// Its port (993 with TLS, 143 without).
    pub port: u16,
    /// Implicit TLS (on by default); plain IMAP only to this machine.
    pub tls: bool,
    /// The user name.
    pub user: String,
    /// Where the password is: the environment or a file.
    pub password: PasswordSource,
    /// Extra CA certificates (PEM) trusted for the server's certificate.
    pub ca_file: Option<PathBuf>,
    /// The folder read (`INBOX`).
    pub folder: String,
    /// Where recorded messages are moved.
    pub processed_folder: String,
    /// Where messages that match no dossier are moved.
    pub unmatched_folder: String,
    /// How often the folder is read.
    pub poll_interval: Duration,
    /// How long one exchange with the server may take.
    pub timeout: Duration,
    /// The mailbox's address, as written (`Suivi <suivi-aides@region.fr>` or
    /// `suivi-aides@region.fr`): replies go to its plus addresses.
    pub address: String,
}

impl Inbound {
    /// What the environment must offer: the password (from its variable or
    /// file) and `ca_file`, each problem named by its key; for `check`.
    pub fn check_environment(&self) -> Vec<String> {
        let password = self.password.read_as("inbound.password").map(drop);
        let ca = self
            .ca_file
            .as_deref()
            .map(|f| crate::secret::read_ca_file(f, "inbound.ca_file").map(drop));
        [Some(password), ca]
            .into_iter()
            .flatten()
            .filter_map(Result::err)
            .collect()
    }

    /// The file the password is read from, if it is one.
    pub fn secret_file(&self) -> Option<&std::path::Path> {
        self.password.file()
    }
}

/// Reads and checks `[inbound]`: `None` on a problem, `Some(None)` when off.
pub(super) fn inbound(figment: &Figment, p: &mut Problems) -> Option<Option<Inbound>> {
    let host = get_optional(figment, "inbound.host", p);
    let port = get::<u16>(figment, "inbound.port", p);
    let tls = get::<bool>(figment, "inbound.tls", p);
    let user = get_optional(figment, "inbound.user", p);
    let password_env = get_optional(figment, "inbound.password_env", p);
    let password_file = optional_path(figment, "inbound.password_file", p);
    let ca_file = optional_path(figment, "inbound.ca_file", p);
    let folders = [
        "inbound.folder",
        "inbound.processed_folder",
        "inbound.unmatched_folder",
    ]
    .map(|key| folder(figment, key, p));
    let poll_interval = get_duration_at_most(figment, "inbound.poll_interval", MAX_INTERVAL, p)
        .and_then(|d| {
            if d >= MIN_INTERVAL {
                Some(d)
            } else {
                push_key(figment, "inbound.poll_interval", "must be at least 5s", p);
                None
            }
        });
    let timeout = get_duration_at_most(figment, "inbound.timeout", MAX_INTERVAL, p);
    let address = get_optional(figment, "inbound.address", p).and_then(|a| match a {
        Some(text) => address(&text)
            .map_err(|why| push_key(figment, "inbound.address", why, p))
            .ok()
            .map(|()| Some(text)),
        None => Some(None),
    });
    let Some(host) = host? else {
        return Some(None);
    };
    let missing = |key: &str, p: &mut Problems| {
        push_key(
            figment,
            key,
            "is required when inbound.host is set (the replies' mailbox is read)",
            p,
        );
    };
    let (user, address) = (user?, address?);
    if user.is_none() {
        missing("inbound.user", p);
    }
    if address.is_none() {
        missing("inbound.address", p);
    }
    let (Some(user), Some(address)) = (user, address) else {
        return None;
    };
    let password = match (password_env?, password_file?) {
        (Some(_), Some(_)) => {
            let why = "give the password through password_env or password_file, not both";
            push_key(figment, "inbound.password_file", why, p);
            return None;
        }
        (Some(var), None) => PasswordSource::Env(var),
        (None, Some(file)) => PasswordSource::File(file),
        (None, None) => {
            let why = "a password is required: password_env (an environment variable) or \
                       password_file (a file, such as a systemd credential)";
            push_key(figment, "inbound.password_env", why, p);
            return None;
        }
    };
    let tls = tls?;
    if !tls && !crate::secret::is_loopback(&host) {
        let why = format!(
            "tls = false would send the password of '{user}' to {host} in clear: IMAP without \
             TLS is only allowed to this machine"
        );
        push_key(figment, "inbound.tls", why, p);
        return None;
    }
    let [folder, processed_folder, unmatched_folder] = folders;
    Some(Some(Inbound {
        host,
        port: port?,
        tls,
        user,
        password,
        ca_file: ca_file?,
        folder: folder?,
        processed_folder: processed_folder?,
        unmatched_folder: unmatched_folder?,
        poll_interval: poll_interval?,
        timeout: timeout?,
        address,
    }))
}

fn optional_path(figment: &Figment, key: &str, p: &mut Problems) -> Option<Option<PathBuf>> {
    get::<RelativePathBuf>(figment, key, p)
        .map(|path| (!path.original().as_os_str().is_empty()).then(|| path.relative()))
}

/// A folder name: printable ASCII (IMAP writes other characters in modified
/// UTF-7, which Alertissimo does not), none of IMAP's wildcards or quotes.
fn folder(figment: &Figment, key: &str, p: &mut Problems) -> Option<String> {
    let name = get::<String>(figment, key, p)?.trim().to_owned();
    let bad = name.is_empty()
        || name
            .chars()
            .any(|c| !c.is_ascii() || c.is_ascii_control() || matches!(c, '"' | '\\' | '*' | '%'));
    if bad {
        let why = format!(
            "'{name}' is not a folder name Alertissimo can use: letters without accents, digits, \
             spaces, '-', '_', '.' or '/' (such as \"Alertissimo-traites\")"
        );
        push_key(figment, key, why, p);
        return None;
    }
    Some(name)
}

/// Checks `[inbound] address`: one mailbox, whose local part carries no `+`
/// (the tokens go there).
fn address(text: &str) -> Result<(), String> {
    let mailbox = crate::value::mailbox(text).map_err(|e| {
        format!("'{text}' is not an address like \"suivi-aides@region.example.org\": {e}")
    })?;
    if mailbox.email.user().contains('+') {
        return Err(format!(
            "'{text}': write the mailbox's own address, without '+' (Alertissimo adds \
             '+' and each dossier's token to it)"
        ));
    }
    Ok(())
}

/// The plus address of `token` at the mailbox `address` (validated), with its
/// display name: `Suivi <suivi-aides+TOKEN@region.fr>`.
pub fn thread_address(address: &str, token: &str) -> Option<lettre::message::Mailbox> {
    let mailbox = crate::value::mailbox(address).ok()?;
    let user = format!("{}+{token}", mailbox.email.user());
    let email = lettre::Address::new(user, mailbox.email.domain()).ok()?;
    Some(lettre::message::Mailbox::new(mailbox.name, email))
}

#[cfg(test)]
mod tests {
    use super::*;
    use figment::providers::{Format, Serialized, Toml};

    fn read(toml: &str) -> Result<Option<Inbound>, String> {
        let figment =
            Figment::from(Serialized::defaults(super::super::DEFAULTS)).merge(Toml::string(toml));
        let mut p = Problems::default();
        match inbound(&figment, &mut p) {
            Some(i) if p.is_empty() => Ok(i),
            _ => Err(p.to_string()),
        }
    }

    const ON: &str = r#"
        [inbound]
        host = "imap.region.example.org"
        user = "suivi-aides"
        password_env = "INBOUND_PASSWORD"
        address = "Suivi des aides <suivi-aides@region.example.org>"
    "#;

    #[test]
    fn off_by_default_and_sensible_defaults_when_on() {
        assert_eq!(read("").unwrap(), None);
        let on = read(ON).unwrap().unwrap();
        assert_eq!((on.port, on.tls), (993, true));
        assert_eq!(on.folder, "INBOX");
        assert_eq!(on.poll_interval, Duration::from_secs(60));
        assert_eq!(on.password, PasswordSource::Env("INBOUND_PASSWORD".into()));
        let reply = thread_address(&on.address, "0a1b").unwrap();
        assert_eq!(
            reply.to_string(),
            "Suivi des aides <suivi-aides+0a1b@region.example.org>"
        );
    }

    #[test]
    fn problems_are_named() {
        let err = read("[inbound]\nhost = \"imap.x.fr\"").unwrap_err();
        for needle in ["inbound.user", "inbound.address", "is required"] {
            assert!(err.contains(needle), "{needle} in {err}");
        }
        let err = read(&format!("{ON}\ntls = false")).unwrap_err();
        assert!(err.contains("in clear"), "{err}");
        let local = ON.replace("imap.region.example.org", "127.0.0.1");
        assert!(!read(&format!("{local}\ntls = false")).unwrap().unwrap().tls);
        let err = read(&ON.replace("suivi-aides@", "suivi-aides+x@")).unwrap_err();
        assert!(err.contains("without '+'"), "{err}");
        let err = read(&format!("{ON}\nprocessed_folder = \"Traités\"")).unwrap_err();
        assert!(err.contains("inbound.processed_folder"), "{err}");
        let err = read(&format!("{ON}\npoll_interval = \"1s\"")).unwrap_err();
        assert!(err.contains("at least 5s"), "{err}");
        let err = read(&format!("{ON}\npassword_file = \"/x\"")).unwrap_err();
        assert!(err.contains("not both"), "{err}");
    }
}
