//! `[delivery]` and `[smtp]`: how alerts leave, the SMTP relay, and the
//! password and CA certificates it is read with.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::value::magic::RelativePathBuf;

use super::{RATE_PER_SECOND, get, get_cron, get_duration, get_optional, get_path, push_key};
use crate::diag::Problems;

/// How alerts are delivered.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// Where messages go.
    pub transport: Transport,
    /// Messages handed to the transport at once.
    pub concurrency: usize,
    /// At most this many messages a second to the transport.
    pub rate_per_second: f64,
    /// At most this many messages to one address in 24 hours; the rest wait.
    pub max_per_recipient_per_day: u32,
    /// A transient failure is retried until the alert is this old, then it fails.
    pub max_age: Duration,
    /// The first retry waits this long; each next one twice as long…
    pub retry_initial: Duration,
    /// … up to this.
    pub retry_max: Duration,
    /// Where failed alerts and refused snapshots are reported, if anywhere.
    pub admin_email: Option<String>,
    /// When that report leaves (a cron schedule in the configured zone).
    pub admin_digest: croner::Cron,
    /// Where notices that cannot count on the relay (its own outage) are
    /// written, as `.eml` files.
    pub notice_dir: PathBuf,
    /// The folder of the `file` transport (`[delivery.file] dir`), kept whatever
    /// the transport: the purge expires the `.eml` files an earlier use left.
    pub file_dir: PathBuf,
    /// The `From` of every message.
    pub from: String,
    /// The `Reply-To` of every message, if any.
    pub reply_to: Option<String>,
}

/// Where messages go.
#[derive(Debug, Clone)]
pub enum Transport {
    /// Each message written as an `.eml` file into a folder.
    File {
        /// The folder.
        dir: PathBuf,
    },
    /// An SMTP relay.
    Smtp(Smtp),
}

/// How the SMTP relay is reached.
#[derive(Debug, Clone)]
pub struct Smtp {
    /// Host name or address.
    pub host: String,
    /// Port.
    pub port: u16,
    /// Transport security.
    pub tls: Tls,
    /// User name, when the relay wants authentication.
    pub username: Option<String>,
    /// Where the password is: the environment or a file, never this file. It is
    /// read when the transport starts (a systemd credential exists only then).
    pub password: Option<PasswordSource>,
    /// Whether the password may go in clear (`tls = "none"`) to a relay that is
    /// not this machine: `smtp.allow_insecure_auth`, off by default.
    pub allow_insecure_auth: bool,
    /// Extra CA certificates (PEM) trusted for the relay's certificate, besides
    /// the system's: a relay whose certificate comes from a private CA.
    pub ca_file: Option<PathBuf>,
    /// How long one exchange with the relay may take.
    pub timeout: Duration,
}

/// Where the SMTP password is read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PasswordSource {
    /// An environment variable.
    Env(String),
    /// A file (a systemd credential), its content without the final line break.
    File(PathBuf),
}

impl PasswordSource {
    /// Reads the password.
    ///
    /// # Errors
    /// A reason naming the variable or the file.
    pub fn read(&self) -> Result<Secret, String> {
        self.read_as("smtp.password")
    }

    /// The file it is read from, if it is one.
    pub fn file(&self) -> Option<&Path> {
        match self {
            Self::File(path) => Some(path),
            Self::Env(_) => None,
        }
    }

    /// Reads the secret that the keys `{key}_env` or `{key}_file` name.
    ///
    /// # Errors
    /// A reason naming the key and the variable or the file.
    pub fn read_as(&self, key: &str) -> Result<Secret, String> {
        match self {
            Self::Env(_) => self.read_for(&format!("{key}_env")),
            Self::File(_) => self.read_for(&format!("{key}_file")),
        }
    }

    /// Reads the secret; an error starts with `setting`, the key that names it.
    ///
    /// # Errors
    /// A reason naming the setting and the variable or the file.
    pub fn read_for(&self, setting: &str) -> Result<Secret, String> {
        match self {
            Self::Env(var) => match std::env::var(var) {
                Ok(v) if !v.is_empty() => Ok(Secret(v)),
                _ => Err(format!(
                    "{setting}: the environment variable {var} is not set"
                )),
            },
            Self::File(path) => std::fs::read_to_string(path)
                .map(|v| Secret(v.trim_end_matches(['\r', '\n']).to_owned()))
                .map_err(|e| format!("{setting}: cannot read {}: {e}", path.display())),
        }
    }
}

/// The CA certificates of the PEM file that the setting `key` names (a
/// connector's `ca_file`, `smtp.ca_file`).
///
/// # Errors
/// A reason naming the key and the file: unreadable, not PEM, no certificate.
pub fn read_ca_file(
    path: &Path,
    key: &str,
) -> Result<Vec<rustls_pki_types::CertificateDer<'static>>, String> {
    use rustls_pki_types::pem::PemObject;
    let problem = |reason: String| format!("{key} {}: {reason}", path.display());
    let certs = rustls_pki_types::CertificateDer::pem_file_iter(path)
        .map_err(|e| problem(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| problem(e.to_string()))?;
    if certs.is_empty() {
        return Err(problem(
            "no certificate in it (a PEM file: -----BEGIN CERTIFICATE-----)".to_owned(),
        ));
    }
    Ok(certs)
}

/// A secret that is never printed.
#[derive(Clone)]
pub struct Secret(pub String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Transport security with the relay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tls {
    /// STARTTLS, required, certificate verified (port 587).
    StartTls,
    /// Implicit TLS (port 465).
    Tls,
    /// Plain text: only when explicitly configured (a relay on the same host).
    None,
}

fn get_mailbox(figment: &Figment, key: &str, p: &mut Problems) -> Option<Option<String>> {
    let value = get_optional(figment, key, p)?;
    if let Some(text) = &value
        && crate::value::mailbox(text).is_err()
    {
        push_key(
            figment,
            key,
            format!(
                "'{text}' is not an address like \"Région <aides@region.example.org>\" or \"aides@region.example.org\""
            ),
            p,
        );
        return None;
    }
    Some(value)
}

pub(super) fn delivery(figment: &Figment, p: &mut Problems) -> Option<Delivery> {
    let kind = get::<String>(figment, "delivery.transport", p);
    let concurrency = get::<u32>(figment, "delivery.concurrency", p).and_then(|n| {
        (1..=64).contains(&n).then_some(n as usize).or_else(|| {
            push_key(
                figment,
                "delivery.concurrency",
                "must be between 1 and 64",
                p,
            );
            None
        })
    });
    let rate = get::<f64>(figment, "delivery.rate_per_second", p).and_then(|r| {
        RATE_PER_SECOND.contains(&r).then_some(r).or_else(|| {
            push_key(
                figment,
                "delivery.rate_per_second",
                format!(
                    "must be between {} and {} (messages a second)",
                    RATE_PER_SECOND.start(),
                    RATE_PER_SECOND.end()
                ),
                p,
            );
            None
        })
    });
    let per_day = get::<u32>(figment, "delivery.max_per_recipient_per_day", p).and_then(|n| {
        (n > 0).then_some(n).or_else(|| {
            push_key(
                figment,
                "delivery.max_per_recipient_per_day",
                "must be at least 1",
                p,
            );
            None
        })
    });
    let max_age = get_duration(figment, "delivery.max_age", p);
    let retry_initial = get_duration(figment, "delivery.retry_initial", p);
    let retry_max = get_duration(figment, "delivery.retry_max", p);
    let admin_email = get_mailbox(figment, "delivery.admin_email", p);
    let admin_digest = get_cron(figment, "delivery.admin_digest", p);
    let dir = get_path(figment, "delivery.file.dir", p);
    let notice_dir = get_path(figment, "delivery.notice_dir", p);
    let from = get_mailbox(figment, "smtp.from", p).and_then(|f| {
        f.or_else(|| {
            push_key(figment, "smtp.from", "must not be empty", p);
            None
        })
    });
    let reply_to = get_mailbox(figment, "smtp.reply_to", p);
    let transport = match kind.as_deref() {
        Some("file") => dir.clone().map(|dir| Transport::File { dir }),
        Some("smtp") => smtp(figment, p).map(Transport::Smtp),
        Some(other) => {
            push_key(
                figment,
                "delivery.transport",
                format!("'{other}' is not one of \"file\", \"smtp\""),
                p,
            );
            None
        }
        None => None,
    };
    Some(Delivery {
        transport: transport?,
        concurrency: concurrency?,
        rate_per_second: rate?,
        max_per_recipient_per_day: per_day?,
        max_age: max_age?,
        retry_initial: retry_initial?,
        retry_max: retry_max?,
        admin_email: admin_email?,
        admin_digest: admin_digest?,
        notice_dir: notice_dir?,
        file_dir: dir?,
        from: from?,
        reply_to: reply_to?,
    })
}

fn smtp(figment: &Figment, p: &mut Problems) -> Option<Smtp> {
    let host = get_optional(figment, "smtp.host", p).and_then(|h| {
        h.or_else(|| {
            push_key(figment, "smtp.host", "must not be empty", p);
            None
        })
    });
    let port = get::<u16>(figment, "smtp.port", p);
    let tls = get::<String>(figment, "smtp.tls", p).and_then(|t| match t.as_str() {
        "starttls" => Some(Tls::StartTls),
        "tls" => Some(Tls::Tls),
        "none" => Some(Tls::None),
        other => {
            push_key(
                figment,
                "smtp.tls",
                format!("'{other}' is not one of \"starttls\", \"tls\", \"none\""),
                p,
            );
            None
        }
    });
    let username = get_optional(figment, "smtp.username", p);
    let password_env = get_optional(figment, "smtp.password_env", p);
    // Relative to the file that set it, as every path; "" means none.
    let password_file = get::<RelativePathBuf>(figment, "smtp.password_file", p)
        .map(|path| (!path.original().as_os_str().is_empty()).then(|| path.relative()));
    let timeout = get_duration(figment, "smtp.timeout", p);
    let password = match (password_env?, password_file?) {
        (Some(_), Some(_)) => {
            push_key(
                figment,
                "smtp.password_file",
                "give the password through password_env or password_file, not both",
                p,
            );
            None
        }
        (Some(var), None) => Some(Some(PasswordSource::Env(var))),
        (None, Some(file)) => Some(Some(PasswordSource::File(file))),
        (None, None) => Some(None),
    };
    let allow_insecure_auth = get::<bool>(figment, "smtp.allow_insecure_auth", p);
    let ca_file = get::<RelativePathBuf>(figment, "smtp.ca_file", p)
        .map(|path| (!path.original().as_os_str().is_empty()).then(|| path.relative()));
    let username = username?;
    let password = password?;
    if username.is_some() != password.is_some() {
        push_key(
            figment,
            "smtp.username",
            "a user name needs a password (password_env or password_file), and a password a user name",
            p,
        );
        return None;
    }
    let smtp = Smtp {
        host: host?,
        port: port?,
        tls: tls?,
        username,
        password,
        allow_insecure_auth: allow_insecure_auth?,
        ca_file: ca_file?,
        timeout: timeout?,
    };
    if let Some(reason) = smtp.password_in_clear() {
        push_key(figment, "smtp.tls", reason, p);
        return None;
    }
    Some(smtp)
}

impl Smtp {
    /// Why the password would cross the network in clear, if it would: `tls =
    /// "none"` with a user name, to a relay that is not this machine, without
    /// `allow_insecure_auth`.
    fn password_in_clear(&self) -> Option<String> {
        let user = self.username.as_deref()?;
        (self.tls == Tls::None
            && !self.allow_insecure_auth
            && !crate::secret::is_loopback(&self.host))
        .then(|| {
            format!(
                "tls = \"none\" would send the password of '{user}' to {} in clear: use \"starttls\" or \"tls\", or set smtp.allow_insecure_auth = true if the network to the relay is trusted",
                self.host
            )
        })
    }
}
