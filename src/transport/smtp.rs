//! The `smtp` transport: a relay reached with lettre's SMTP client over tokio,
//! with a small pool of open connections. Its keys are those of `[smtp]` but
//! `from` and `reply_to`, which every transport's messages carry.
//!
//! TLS is `starttls` (required, certificate verified) by default, `tls` (implicit,
//! port 465), or `none`, which must be configured explicitly (and, with a
//! password, to a relay on this machine or with `allow_insecure_auth`). The
//! relay's certificate is checked against the system's store, plus `ca_file`.
//!
//! The exchange is driven a command at a time, so that each reply is judged by
//! what it answers (as Postfix does):
//! - the relay itself failing (no connection, TLS, greeting, EHLO,
//!   authentication, any reply to `MAIL FROM`, 421, 454, 530, 535, a dropped
//!   connection, a timeout) is [`Outcome::Relay`]: the message is fine, the
//!   transport pauses and the alerts wait;
//! - a refusal of this message (a reply to `RCPT TO` or to its data) is
//!   [`Outcome::Transient`] for a 4xx and [`Outcome::Permanent`] for a 5xx.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lettre::address::Envelope;
use lettre::transport::smtp::authentication::{Credentials, DEFAULT_MECHANISMS};
use lettre::transport::smtp::client::{AsyncSmtpConnection, Certificate, TlsParameters};
use lettre::transport::smtp::commands::{Data, Mail, Rcpt};
use lettre::transport::smtp::extension::{ClientId, Extension, MailBodyParameter, MailParameter};

use super::{Key, KeyDefault, Keys, Kind, Outcome, Sender, Sending, Transport};
use crate::secret::{PasswordSource, read_ca_file};

/// Its line of the registry.
pub const KIND: Kind = Kind {
    name: "smtp",
    keys: &[
        key("smtp.host", KeyDefault::Text("localhost")),
        key("smtp.port", KeyDefault::Integer(587)),
        key("smtp.tls", KeyDefault::Text("starttls")),
        key("smtp.username", KeyDefault::Text("")),
        key("smtp.password_env", KeyDefault::Text("")),
        key("smtp.password_file", KeyDefault::Text("")),
        key("smtp.allow_insecure_auth", KeyDefault::Flag(false)),
        key("smtp.ca_file", KeyDefault::Text("")),
        key("smtp.timeout", KeyDefault::Text("30s")),
    ],
    settings: |keys| smtp(keys).map(|smtp| Arc::new(smtp) as Arc<dyn Transport>),
};

/// The longest `smtp.timeout`.
const MAX_TIMEOUT: Duration = Duration::from_secs(3_600);

const fn key(name: &'static str, default: KeyDefault) -> Key {
    Key { name, default }
}

/// How the SMTP relay is reached.
#[derive(Debug, Clone)]
pub struct Smtp {
    /// Host name or address.
    pub host: String,
    /// Port.
    pub port: u16,
    /// Transport security.
    pub tls: Security,
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

/// Transport security with the relay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    /// STARTTLS, required, certificate verified (port 587).
    StartTls,
    /// Implicit TLS (port 465).
    Tls,
    /// Plain text: only when explicitly configured (a relay on the same host).
    None,
}

/// Reads and checks `[smtp]`, every problem told to `keys`.
fn smtp(keys: &mut dyn Keys) -> Option<Smtp> {
    let host = keys.optional("smtp.host").and_then(|h| {
        h.or_else(|| {
            keys.problem("smtp.host", "must not be empty".to_owned());
            None
        })
    });
    let port = keys.port("smtp.port");
    let tls = keys.text("smtp.tls").and_then(|t| match t.as_str() {
        "starttls" => Some(Security::StartTls),
        "tls" => Some(Security::Tls),
        "none" => Some(Security::None),
        other => {
            keys.problem(
                "smtp.tls",
                format!("'{other}' is not one of \"starttls\", \"tls\", \"none\""),
            );
            None
        }
    });
    let username = keys.optional("smtp.username");
    let password_env = keys.optional("smtp.password_env");
    // Relative to the file that set it, as every path; "" means none.
    let password_file = keys.optional_path("smtp.password_file");
    let timeout = keys.duration("smtp.timeout", MAX_TIMEOUT);
    let password = match (password_env?, password_file?) {
        (Some(_), Some(_)) => {
            keys.problem(
                "smtp.password_file",
                "give the password through password_env or password_file, not both".to_owned(),
            );
            None
        }
        (Some(var), None) => Some(Some(PasswordSource::Env(var))),
        (None, Some(file)) => Some(Some(PasswordSource::File(file))),
        (None, None) => Some(None),
    };
    let allow_insecure_auth = keys.flag("smtp.allow_insecure_auth");
    let ca_file = keys.optional_path("smtp.ca_file");
    let username = username?;
    let password = password?;
    if username.is_some() != password.is_some() {
        keys.problem(
            "smtp.username",
            "a user name needs a password (password_env or password_file), and a password a user name".to_owned(),
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
        keys.problem("smtp.tls", reason);
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
        (self.tls == Security::None
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

impl Transport for Smtp {
    fn name(&self) -> &'static str {
        KIND.name
    }

    /// A relay that stops answering is given up on after three exchange
    /// timeouts ([`Relay::send`]).
    fn longest_exchange(&self) -> Duration {
        self.timeout.saturating_mul(3)
    }

    fn leaves_this_machine(&self) -> bool {
        true
    }

    fn secret_files(&self) -> Vec<(&'static str, &Path)> {
        self.password
            .as_ref()
            .and_then(PasswordSource::file)
            .map(|file| ("smtp.password_file", file))
            .into_iter()
            .collect()
    }

    fn check_environment(&self) -> Vec<String> {
        let password = self.password.as_ref().map(|p| p.read().map(drop));
        let ca = self
            .ca_file
            .as_deref()
            .map(|f| read_ca_file(f, "smtp.ca_file").map(drop));
        [password, ca]
            .into_iter()
            .flatten()
            .filter_map(Result::err)
            .collect()
    }

    fn start(&self, concurrency: usize) -> Result<Box<dyn Sender>, String> {
        Ok(Box::new(Relay::new(self, concurrency)?))
    }
}

impl Sender for Relay {
    fn send<'a>(&'a self, message: lettre::Message, _message_id: &'a str) -> Sending<'a> {
        Box::pin(Relay::send(self, message))
    }
}

/// An idle connection is not reused past this age (relays close idle sessions,
/// Postfix after 300 s).
const IDLE_LIMIT: Duration = Duration::from_secs(60);

/// Replies that speak for the relay, whatever command they answer: service
/// closing (421), TLS or authentication unavailable (454), authentication
/// required (530) or refused (535).
const RELAY_CODES: [u16; 4] = [421, 454, 530, 535];

/// The relay, ready to be reached.
#[derive(Clone)]
pub struct Relay {
    settings: Arc<Settings>,
    idle: Arc<Mutex<Vec<(AsyncSmtpConnection, Instant)>>>,
    pool_size: usize,
}

struct Settings {
    host: String,
    port: u16,
    tls: Security,
    parameters: Option<TlsParameters>,
    timeout: Duration,
    credentials: Option<Credentials>,
    hello: ClientId,
}

/// How one transaction on one connection ended.
enum Ended {
    /// The outcome for the message; `true` when the connection may serve again.
    Done(Outcome, bool),
    /// A pooled connection that the relay had closed meanwhile: try a fresh one.
    Stale,
}

impl Relay {
    /// Prepares the relay; nothing connects before the first message.
    ///
    /// # Errors
    /// When the TLS settings cannot be built for this host, or the password
    /// cannot be read.
    pub fn new(config: &Smtp, pool_size: usize) -> Result<Self, String> {
        let parameters = match config.tls {
            Security::None => None,
            Security::StartTls | Security::Tls => Some(tls_parameters(config)?),
        };
        let credentials = match (&config.username, &config.password) {
            (Some(user), Some(source)) => Some(Credentials::new(user.clone(), source.read()?.0)),
            _ => None,
        };
        Ok(Self {
            settings: Arc::new(Settings {
                host: config.host.clone(),
                port: config.port,
                tls: config.tls,
                parameters,
                timeout: config.timeout,
                credentials,
                hello: ClientId::default(),
            }),
            idle: Arc::default(),
            pool_size,
        })
    }

    /// Hands one message to the relay. A relay that stops answering mid-way is
    /// given up on after a few exchange timeouts, so that it never holds the
    /// dispatcher.
    pub async fn send(&self, message: lettre::Message) -> Outcome {
        let limit = self.settings.timeout.saturating_mul(3);
        let envelope = message.envelope().clone();
        let bytes = message.formatted();
        match tokio::time::timeout(limit, self.exchange(&envelope, &bytes)).await {
            Ok(outcome) => outcome,
            Err(_) => Outcome::Relay(format!(
                "the relay did not answer within {}",
                humantime::format_duration(limit)
            )),
        }
    }

    async fn exchange(&self, envelope: &Envelope, bytes: &[u8]) -> Outcome {
        if let Some(mut conn) = self.pooled() {
            match transaction(&mut conn, envelope, bytes, true).await {
                Ended::Stale => conn.abort().await,
                Ended::Done(outcome, reusable) => {
                    return self.finish(conn, outcome, reusable).await;
                }
            }
        }
        let mut conn = match self.connect().await {
            Ok(conn) => conn,
            Err(error) => return Outcome::Relay(describe("connection", &error)),
        };
        match transaction(&mut conn, envelope, bytes, false).await {
            Ended::Done(outcome, reusable) => self.finish(conn, outcome, reusable).await,
            Ended::Stale => {
                conn.abort().await;
                Outcome::Relay("MAIL FROM: the relay closed the connection".to_owned())
            }
        }
    }

    /// An idle connection young enough to serve, if any.
    fn pooled(&self) -> Option<AsyncSmtpConnection> {
        let mut idle = self.idle.lock().expect("the pool lock is never poisoned");
        while let Some((conn, since)) = idle.pop() {
            if since.elapsed() < IDLE_LIMIT && !conn.has_broken() {
                return Some(conn);
            }
        }
        None
    }

    /// Keeps a connection that may serve again (up to the pool's size), closes
    /// the others.
    async fn finish(
        &self,
        mut conn: AsyncSmtpConnection,
        outcome: Outcome,
        reusable: bool,
    ) -> Outcome {
        if reusable {
            let mut idle = self.idle.lock().expect("the pool lock is never poisoned");
            if idle.len() < self.pool_size {
                idle.push((conn, Instant::now()));
                return outcome;
            }
        }
        conn.abort().await;
        outcome
    }

    /// A new session: connection, greeting, EHLO, TLS, authentication.
    async fn connect(&self) -> Result<AsyncSmtpConnection, lettre::transport::smtp::Error> {
        let s = &self.settings;
        let implicit = matches!(s.tls, Security::Tls)
            .then(|| s.parameters.clone())
            .flatten();
        let mut conn = AsyncSmtpConnection::connect_tokio1(
            (s.host.as_str(), s.port),
            Some(s.timeout),
            &s.hello,
            implicit,
            None,
        )
        .await?;
        if let (Security::StartTls, Some(parameters)) = (s.tls, &s.parameters) {
            conn.starttls(parameters.clone(), &s.hello).await?;
        }
        if let Some(credentials) = &s.credentials {
            conn.auth(DEFAULT_MECHANISMS, credentials).await?;
        }
        Ok(conn)
    }
}

/// The TLS settings: the system's certificate store, plus the CA certificates of
/// `smtp.ca_file` when it is set (a relay with a certificate from a private CA).
fn tls_parameters(config: &Smtp) -> Result<TlsParameters, String> {
    let mut builder = TlsParameters::builder(config.host.clone());
    if let Some(path) = &config.ca_file {
        for der in read_ca_file(path, "smtp.ca_file")? {
            let cert = Certificate::from_der(der.to_vec())
                .map_err(|e| format!("smtp.ca_file {}: {e}", path.display()))?;
            builder = builder.add_root_certificate(cert);
        }
    }
    builder.build().map_err(|e| format!("smtp: {e}"))
}

/// One message on one open session: `MAIL FROM`, each `RCPT TO`, `DATA`.
async fn transaction(
    conn: &mut AsyncSmtpConnection,
    envelope: &Envelope,
    bytes: &[u8],
    pooled: bool,
) -> Ended {
    let mut options = Vec::new();
    let non_ascii = envelope
        .from()
        .into_iter()
        .chain(envelope.to())
        .any(|a: &lettre::Address| !AsRef::<str>::as_ref(a).is_ascii());
    if non_ascii {
        if !conn.server_info().supports_feature(Extension::SmtpUtfEight) {
            return Ended::Done(
                Outcome::Permanent(
                    "the relay does not take non-ASCII addresses (no SMTPUTF8)".to_owned(),
                ),
                true,
            );
        }
        options.push(MailParameter::SmtpUtfEight);
    }
    if !bytes.is_ascii() && conn.server_info().supports_feature(Extension::EightBitMime) {
        options.push(MailParameter::Body(MailBodyParameter::EightBitMime));
    }
    if let Err(error) = conn
        .command(Mail::new(envelope.from().cloned(), options))
        .await
    {
        // A pooled session the relay closed meanwhile fails here without a reply.
        if pooled && error.status().is_none() {
            return Ended::Stale;
        }
        return Ended::Done(Outcome::Relay(describe("MAIL FROM", &error)), false);
    }
    for to in envelope.to() {
        if let Err(error) = conn.command(Rcpt::new(to.clone(), vec![])).await {
            return Ended::Done(refusal(&format!("RCPT TO <{to}>"), &error), false);
        }
    }
    if let Err(error) = conn.command(Data).await {
        return Ended::Done(refusal("DATA", &error), false);
    }
    match conn.message(bytes).await {
        Ok(response) => Ended::Done(
            Outcome::Sent(format!(
                "{} {}",
                response.code(),
                response.message().collect::<Vec<_>>().join(" ")
            )),
            true,
        ),
        Err(error) => Ended::Done(refusal("the message's data", &error), false),
    }
}

/// A failed reply about this message: the relay's own trouble (no reply, a
/// relay-level code) pauses the transport; otherwise 4xx is transient, 5xx
/// permanent.
fn refusal(what: &str, error: &lettre::transport::smtp::Error) -> Outcome {
    let text = describe(what, error);
    match error.status().map(u16::from) {
        None => Outcome::Relay(text),
        Some(code) if RELAY_CODES.contains(&code) => Outcome::Relay(text),
        Some(code) if code >= 500 => Outcome::Permanent(text),
        Some(_) => Outcome::Transient(text),
    }
}

/// What was asked, then the relay's reply when there is one, else what went wrong.
fn describe(what: &str, error: &lettre::transport::smtp::Error) -> String {
    let mut text = format!("{what}: {error}");
    let mut source = std::error::Error::source(error);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::tests::Given;

    fn given(changes: &[(&'static str, &str)]) -> Given {
        let mut values: Vec<(&'static str, String)> = KIND
            .keys
            .iter()
            .map(|key| {
                let value = match key.default {
                    KeyDefault::Text(text) => text.to_owned(),
                    KeyDefault::Integer(n) => n.to_string(),
                    KeyDefault::Flag(flag) => flag.to_string(),
                };
                (key.name, value)
            })
            .collect();
        for (key, value) in changes {
            values.retain(|(k, _)| k != key);
            values.push((key, (*value).to_owned()));
        }
        Given {
            values,
            ..Given::default()
        }
    }

    #[test]
    fn the_defaults_reach_a_relay_on_this_machine() {
        let mut keys = given(&[]);
        let smtp = smtp(&mut keys).unwrap();
        assert!(keys.problems.is_empty(), "{:?}", keys.problems);
        assert_eq!((smtp.host.as_str(), smtp.port), ("localhost", 587));
        assert_eq!(smtp.tls, Security::StartTls);
        assert_eq!(smtp.longest_exchange(), Duration::from_secs(90));
        assert!(smtp.leaves_this_machine() && smtp.secret_files().is_empty());
    }

    #[test]
    fn a_password_never_crosses_the_network_in_clear() {
        let mut keys = given(&[
            ("smtp.host", "relay.example.org"),
            ("smtp.tls", "none"),
            ("smtp.username", "u"),
            ("smtp.password_file", "/run/credentials/smtp-password"),
        ]);
        assert!(smtp(&mut keys).is_none());
        assert_eq!(keys.problems.len(), 1);
        assert!(
            keys.problems[0].starts_with(
                "key `smtp.tls`: tls = \"none\" would send the password of 'u' to relay.example.org in clear"
            ),
            "{:?}",
            keys.problems
        );
        let mut keys = given(&[
            ("smtp.tls", "none"),
            ("smtp.username", "u"),
            ("smtp.password_file", "/run/credentials/smtp-password"),
        ]);
        let smtp = smtp(&mut keys).unwrap();
        assert_eq!(
            smtp.secret_files(),
            [(
                "smtp.password_file",
                Path::new("/run/credentials/smtp-password")
            )]
        );
    }
}
