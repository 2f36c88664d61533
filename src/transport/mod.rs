//! The transports: what a rendered message is handed to (`[delivery]
//! transport`), one file each.
//!
//! A transport's file owns everything about it: its name, its keys of
//! `config.toml` (each with its built-in default, read and checked through
//! [`Keys`] with the problems `check` reports), what `check` looks at (the
//! secrets it reads, whether its messages leave this machine), and how it sends
//! a message, which comes back as an [`Outcome`]. Its [`Kind`] is one line of
//! [`TRANSPORTS`], the one list of transports: `config` reads the chosen one's
//! settings into a [`Transport`], `dispatch` starts it ([`Ready`]) and hands it
//! messages. Nothing else names a transport.
//!
//! Here: the trait, the registry and the reader of keys; [`mod@file`] (`.eml`
//! files in a folder) and [`smtp`] (a relay).

pub mod file;
pub mod smtp;

use std::fmt;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

/// Every transport, by the name `[delivery] transport` gives it.
pub const TRANSPORTS: &[Kind] = &[file::KIND, smtp::KIND];

/// What a transport made of a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Accepted (the relay's reply, or where the file went).
    Sent(String),
    /// This message is refused for now (a 4xx to its recipient or its data).
    Transient(String),
    /// This message is refused for good (a 5xx to its recipient or its data, an
    /// invalid address, a message that cannot be made).
    Permanent(String),
    /// The transport itself failed (no connection, TLS, authentication, a 421, a
    /// timeout, a folder that cannot be written): the message is not at fault.
    Relay(String),
}

/// A transport as the registry knows it, before the configuration is read.
pub struct Kind {
    /// Its name: the value of `[delivery] transport`.
    pub name: &'static str,
    /// Its keys of `config.toml` (`section.key`), each with its built-in
    /// default: they are known keys whatever the transport.
    pub keys: &'static [Key],
    /// Reads and checks its settings when it is the chosen transport, every
    /// problem told to `keys`; `None` when one is wrong.
    pub settings: fn(&mut dyn Keys) -> Option<Arc<dyn Transport>>,
}

/// One key of `config.toml` that a transport owns.
pub struct Key {
    /// As written in the file: `section.key`.
    pub name: &'static str,
    /// Its built-in default.
    pub default: KeyDefault,
}

/// The built-in default of a key.
#[derive(Debug, Clone, Copy)]
pub enum KeyDefault {
    /// Text (`""` for none, when the key may be empty).
    Text(&'static str),
    /// A whole number.
    Integer(i64),
    /// Yes or no.
    Flag(bool),
}

/// How a transport reads its keys: each value from the layers of
/// `config.toml` (built-in defaults, the file, `ALERTISSIMO_*` variables), each
/// problem naming the key and where its value came from. `config` implements
/// it; a key read twice reports its problem once.
pub trait Keys {
    /// A text.
    fn text(&mut self, key: &str) -> Option<String>;
    /// A text where `""` means "not set".
    fn optional(&mut self, key: &str) -> Option<Option<String>>;
    /// A port number.
    fn port(&mut self, key: &str) -> Option<u16>;
    /// Yes or no.
    fn flag(&mut self, key: &str) -> Option<bool>;
    /// A duration such as `"30s"`, of at most `max`.
    fn duration(&mut self, key: &str, max: Duration) -> Option<Duration>;
    /// A path that must be set, relative to the file that set it.
    fn path(&mut self, key: &str) -> Option<PathBuf>;
    /// A path relative to the file that set it, where `""` means "none".
    fn optional_path(&mut self, key: &str) -> Option<Option<PathBuf>>;
    /// Reports a problem with the value of `key`.
    fn problem(&mut self, key: &str, message: String);
}

/// A transport's checked settings, as the configuration holds them.
pub trait Transport: fmt::Debug + Send + Sync {
    /// Its name, as in the configuration: the logs, the recorded attempts,
    /// `/metrics` and `outbox list` use it.
    fn name(&self) -> &'static str;

    /// The longest one exchange with it may take (a claim must outlive it).
    fn longest_exchange(&self) -> Duration {
        Duration::ZERO
    }

    /// Whether its messages are read on other machines (a relay sends them
    /// on), so that a link in them must not lead to this one.
    fn leaves_this_machine(&self) -> bool {
        false
    }

    /// The files holding its secrets, each with the key that names it (`check`
    /// warns when every user may read one).
    fn secret_files(&self) -> Vec<(&'static str, &Path)> {
        Vec::new()
    }

    /// What it needs of this machine that is missing (`check`, unless
    /// `--no-environment`): a secret that cannot be read, a CA file that is not
    /// one. Each reason names the key.
    fn check_environment(&self) -> Vec<String> {
        Vec::new()
    }

    /// Gets ready to send, `concurrency` messages at once at most (a client, a
    /// pool); nothing is reached before the first message.
    ///
    /// # Errors
    /// A reason naming the key at fault (a secret that cannot be read, TLS
    /// settings that cannot be built).
    fn start(&self, concurrency: usize) -> Result<Box<dyn Sender>, String>;
}

/// A message on its way: what [`Sender::send`] returns.
pub type Sending<'a> = Pin<Box<dyn Future<Output = Outcome> + Send + 'a>>;

/// A started transport: hands over messages.
pub trait Sender: Send + Sync {
    /// Hands over one message, whose Message-ID is `message_id`. Blocking I/O
    /// goes to `tokio::task::spawn_blocking`.
    fn send<'a>(&'a self, message: lettre::Message, message_id: &'a str) -> Sending<'a>;
}

/// The chosen transport, started.
#[derive(Clone)]
pub struct Ready {
    settings: Arc<dyn Transport>,
    sender: Arc<dyn Sender>,
}

impl Ready {
    /// Starts the transport `settings` describes.
    ///
    /// # Errors
    /// When it cannot be set up ([`Transport::start`]).
    pub fn start(settings: &Arc<dyn Transport>, concurrency: usize) -> Result<Self, String> {
        Ok(Self {
            settings: Arc::clone(settings),
            sender: Arc::from(settings.start(concurrency)?),
        })
    }

    /// Its name.
    pub fn name(&self) -> &'static str {
        self.settings.name()
    }

    /// The longest one exchange with it may take.
    pub fn longest_exchange(&self) -> Duration {
        self.settings.longest_exchange()
    }

    /// Hands over one message.
    pub async fn send(&self, message: lettre::Message, message_id: &str) -> Outcome {
        self.sender.send(message, message_id).await
    }
}

/// The settings of the transport called `name` (`[delivery] transport`), read
/// through `keys`; `None` when a problem was told to `keys`.
pub fn settings(name: &str, keys: &mut dyn Keys) -> Option<Arc<dyn Transport>> {
    if let Some(kind) = TRANSPORTS.iter().find(|kind| kind.name == name) {
        return (kind.settings)(keys);
    }
    let names: Vec<String> = TRANSPORTS
        .iter()
        .map(|kind| format!("\"{}\"", kind.name))
        .collect();
    keys.problem(
        "delivery.transport",
        format!("'{name}' is not one of {}", names.join(", ")),
    );
    None
}

/// Every key of every transport, in the order of [`TRANSPORTS`].
pub fn keys() -> impl Iterator<Item = &'static Key> {
    TRANSPORTS.iter().flat_map(|kind| kind.keys)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Keys read from a list of values (`None`: the key's problem), problems
    /// kept in order.
    #[derive(Default)]
    pub(crate) struct Given {
        pub values: Vec<(&'static str, String)>,
        pub problems: Vec<String>,
    }

    impl Given {
        fn get(&mut self, key: &str) -> Option<String> {
            let found = self
                .values
                .iter()
                .find(|(k, _)| *k == key)
                .map(|(_, v)| v.clone());
            if found.is_none() {
                self.problems.push(format!("key `{key}`: missing"));
            }
            found
        }
    }

    impl Keys for Given {
        fn text(&mut self, key: &str) -> Option<String> {
            self.get(key)
        }
        fn optional(&mut self, key: &str) -> Option<Option<String>> {
            self.get(key)
                .map(|v| Some(v.trim().to_owned()).filter(|v| !v.is_empty()))
        }
        fn port(&mut self, key: &str) -> Option<u16> {
            self.get(key).and_then(|v| v.parse().ok())
        }
        fn flag(&mut self, key: &str) -> Option<bool> {
            self.get(key).and_then(|v| v.parse().ok())
        }
        fn duration(&mut self, key: &str, max: Duration) -> Option<Duration> {
            self.get(key)
                .and_then(|v| crate::diag::parse_duration_at_most(&v, max).ok())
        }
        fn path(&mut self, key: &str) -> Option<PathBuf> {
            self.get(key).map(PathBuf::from)
        }
        fn optional_path(&mut self, key: &str) -> Option<Option<PathBuf>> {
            self.get(key)
                .map(|v| (!v.is_empty()).then(|| PathBuf::from(v)))
        }
        fn problem(&mut self, key: &str, message: String) {
            self.problems.push(format!("key `{key}`: {message}"));
        }
    }

    #[test]
    fn names_are_unique_and_keys_owned_once() {
        let mut names: Vec<&str> = TRANSPORTS.iter().map(|k| k.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), TRANSPORTS.len());
        let mut keys: Vec<&str> = keys().map(|k| k.name).collect();
        let all = keys.len();
        keys.sort_unstable();
        keys.dedup();
        assert_eq!(keys.len(), all, "a key owned by two transports");
    }

    #[test]
    fn an_unknown_transport_names_every_known_one() {
        let mut given = Given::default();
        assert!(settings("pigeon", &mut given).is_none());
        // The transports in the order of the registry (more after these).
        assert_eq!(given.problems.len(), 1);
        assert!(
            given.problems[0]
                .starts_with("key `delivery.transport`: 'pigeon' is not one of \"file\", \"smtp\""),
            "{:?}",
            given.problems
        );
    }
}
