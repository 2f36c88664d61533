//! The main configuration file: loading, layering and validation.
//!
//! Owns `config.toml`: figment layers the built-in defaults, then the file given by
//! `--config` (default `/etc/alertissimo/config.toml`), then `ALERTISSIMO_*`
//! environment variables (`__` separates nesting: `ALERTISSIMO_STORE__PATH`).
//! Every key is read and checked on its own so that all problems are reported at
//! once, each naming the key and where its value came from. Relative paths are
//! resolved against the folder of the file that set them.
//!
//! It does not read connector or rule files; see [`crate::connector`] and
//! [`crate::lifecycle`]. [`Problems`] is the shared collector used by all of them.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono_tz::Tz;
use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use figment::value::magic::RelativePathBuf;
use figment::value::{Dict, Value};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::diag::Problems;
use crate::timing::{self, Policy, Window};

/// Where the daemon looks for its configuration when `--config` is not given.
pub const DEFAULT_PATH: &str = "/etc/alertissimo/config.toml";
/// The prefix of environment variables that override the file.
pub const ENV_PREFIX: &str = "ALERTISSIMO_";

const HOUR: Duration = Duration::from_secs(3_600);
const DAY: Duration = Duration::from_secs(86_400);
/// The longest value of the duration keys that allow less than
/// [`crate::diag::MAX_DURATION`] (10 years), as `config.example.toml`
/// documents them: past these a value means nothing, and far past them date
/// arithmetic overflows and panics (issue 17, item 20).
const MAX_DURATIONS: &[(&str, Duration)] = &[
    ("daemon.shutdown_timeout", HOUR),
    ("alerts.debounce", timing::MAX_DEBOUNCE),
    ("delays.refresh", Duration::from_secs(7 * 86_400)),
    ("delays.review_horizon", Duration::from_secs(365 * 86_400)),
    ("delivery.max_age", Duration::from_secs(365 * 86_400)),
    ("delivery.retry_initial", DAY),
    ("delivery.retry_max", DAY),
    ("smtp.timeout", HOUR),
];
/// The range of `delivery.rate_per_second`: below, the interval between two
/// messages overflows; above, no relay keeps up.
pub const RATE_PER_SECOND: std::ops::RangeInclusive<f64> = 0.001..=10_000.0;

/// Every key of the configuration, as written in the file (`section.key`).
pub const KEYS: &[&str] = &[
    "timezone",
    "connectors_dir",
    "rules_dir",
    "store.path",
    "store.cache_mb",
    "log.level",
    "log.format",
    "guards.max_rejected_ratio",
    "guards.max_disappeared_ratio",
    "daemon.import_at_startup",
    "daemon.shutdown_timeout",
    "alerts.debounce",
    "alerts.digest",
    "alerts.send_windows",
    "region.name",
    "region.service",
    "region.email",
    "region.phone",
    "region.website",
    "delays.min_sample",
    "delays.refresh",
    "delays.evaluate",
    "delays.review",
    "delays.review_horizon",
    "retention.personal_data",
    "retention.schedule",
    "metrics.listen",
    "web.listen",
    "web.public_url",
    "delivery.transport",
    "delivery.concurrency",
    "delivery.rate_per_second",
    "delivery.max_per_recipient_per_day",
    "delivery.max_age",
    "delivery.retry_initial",
    "delivery.retry_max",
    "delivery.admin_email",
    "delivery.admin_digest",
    "delivery.notice_dir",
    "delivery.file.dir",
    "smtp.host",
    "smtp.port",
    "smtp.tls",
    "smtp.username",
    "smtp.password_env",
    "smtp.password_file",
    "smtp.allow_insecure_auth",
    "smtp.ca_file",
    "smtp.from",
    "smtp.reply_to",
    "smtp.timeout",
];

/// The built-in defaults: they need nothing installed and work from a checkout.
#[derive(Debug, Serialize)]
struct Defaults {
    timezone: &'static str,
    connectors_dir: &'static str,
    rules_dir: &'static str,
    store: StoreDefaults,
    log: LogDefaults,
    guards: GuardDefaults,
    daemon: DaemonDefaults,
    alerts: AlertDefaults,
    region: RegionDefaults,
    delays: DelaysDefaults,
    retention: RetentionDefaults,
    metrics: MetricsDefaults,
    web: WebDefaults,
    delivery: DeliveryDefaults,
    smtp: SmtpDefaults,
}

#[derive(Debug, Serialize)]
struct MetricsDefaults {
    listen: &'static str,
}

#[derive(Debug, Serialize)]
struct WebDefaults {
    listen: &'static str,
    public_url: &'static str,
}

#[derive(Debug, Serialize)]
struct RetentionDefaults {
    personal_data: &'static str,
    schedule: &'static str,
}

#[derive(Debug, Serialize)]
struct DelaysDefaults {
    min_sample: u64,
    refresh: &'static str,
    evaluate: &'static str,
    review: &'static str,
    review_horizon: &'static str,
}

#[derive(Debug, Serialize)]
struct DeliveryDefaults {
    transport: &'static str,
    concurrency: u32,
    rate_per_second: f64,
    max_per_recipient_per_day: u32,
    max_age: &'static str,
    retry_initial: &'static str,
    retry_max: &'static str,
    admin_email: &'static str,
    admin_digest: &'static str,
    notice_dir: &'static str,
    file: FileDefaults,
}

#[derive(Debug, Serialize)]
struct FileDefaults {
    dir: &'static str,
}

#[derive(Debug, Serialize)]
struct SmtpDefaults {
    host: &'static str,
    port: u16,
    tls: &'static str,
    username: &'static str,
    password_env: &'static str,
    password_file: &'static str,
    allow_insecure_auth: bool,
    ca_file: &'static str,
    from: &'static str,
    reply_to: &'static str,
    timeout: &'static str,
}

#[derive(Debug, Serialize)]
struct AlertDefaults {
    debounce: &'static str,
    digest: &'static str,
    send_windows: &'static [&'static str],
}

#[derive(Debug, Serialize)]
struct RegionDefaults {
    name: &'static str,
    service: &'static str,
    email: &'static str,
    phone: &'static str,
    website: &'static str,
}

#[derive(Debug, Serialize)]
struct StoreDefaults {
    path: &'static str,
    cache_mb: u32,
}

#[derive(Debug, Serialize)]
struct LogDefaults {
    level: &'static str,
    format: &'static str,
}

#[derive(Debug, Serialize)]
struct GuardDefaults {
    max_rejected_ratio: f64,
    max_disappeared_ratio: f64,
}

#[derive(Debug, Serialize)]
struct DaemonDefaults {
    import_at_startup: bool,
    shutdown_timeout: &'static str,
}

const DEFAULTS: Defaults = Defaults {
    timezone: "Europe/Paris",
    connectors_dir: "connectors",
    rules_dir: "rules",
    store: StoreDefaults {
        path: "alertissimo-data/alertissimo.db",
        cache_mb: 12,
    },
    log: LogDefaults {
        level: "info",
        format: "text",
    },
    guards: GuardDefaults {
        max_rejected_ratio: 0.01,
        max_disappeared_ratio: 0.05,
    },
    daemon: DaemonDefaults {
        import_at_startup: true,
        shutdown_timeout: "30s",
    },
    alerts: AlertDefaults {
        debounce: "30m",
        digest: "import",
        send_windows: &["mon-fri 08:00-19:00"],
    },
    region: RegionDefaults {
        name: "Région",
        service: "Service des aides",
        email: "",
        phone: "",
        website: "",
    },
    delays: DelaysDefaults {
        min_sample: 30,
        refresh: "1h",
        evaluate: "0 0 * * * *",
        review: "0 0 7 * * MON",
        review_horizon: "30d",
    },
    retention: RetentionDefaults {
        personal_data: "3y",
        schedule: "0 30 3 * * *",
    },
    metrics: MetricsDefaults { listen: "" },
    // Off, as /metrics; the links of the quick start's informational messages
    // name the address `listen = "127.0.0.1:8080"` would serve, so that the
    // embedded defaults run with the shipped rules (`check` says when nothing
    // here serves them). A production file sets both (config.example.toml).
    web: WebDefaults {
        listen: "",
        public_url: "http://127.0.0.1:8080",
    },
    delivery: DeliveryDefaults {
        transport: "file",
        concurrency: 4,
        rate_per_second: 50.0,
        max_per_recipient_per_day: 20,
        max_age: "5d",
        retry_initial: "1m",
        retry_max: "1h",
        admin_email: "",
        admin_digest: "0 0 8 * * *",
        notice_dir: "alertissimo-data/notices",
        file: FileDefaults {
            dir: "alertissimo-data/outbox",
        },
    },
    smtp: SmtpDefaults {
        host: "localhost",
        port: 587,
        tls: "starttls",
        username: "",
        password_env: "",
        password_file: "",
        allow_insecure_auth: false,
        ca_file: "",
        from: "Alertissimo <alertissimo@localhost>",
        reply_to: "",
        timeout: "30s",
    },
};

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file that was read, if any (the built-in defaults need none).
    pub file: Option<PathBuf>,
    /// The zone used for schedules, naive source dates and display.
    pub timezone: Tz,
    /// The folder of connector files.
    pub connectors_dir: PathBuf,
    /// The folder of rule files and `lifecycle.toml`.
    pub rules_dir: PathBuf,
    /// The SQLite state.
    pub store: StoreConfig,
    /// Logging.
    pub log: LogConfig,
    /// Default guards, which a connector may override.
    pub guards: Guards,
    /// Daemon behaviour.
    pub daemon: DaemonConfig,
    /// When alerts leave.
    pub alerts: Policy,
    /// Who writes to beneficiaries, as messages sign.
    pub region: Region,
    /// Expected delays.
    pub delays: DelaysConfig,
    /// How long closed dossiers keep their personal data (`alertissimo purge`).
    pub personal_data: Duration,
    /// When the daemon purges (none: only `alertissimo purge`).
    pub purge_schedule: Option<croner::Cron>,
    /// Where `/metrics`, `/healthz` and `/readyz` are served (none: off).
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// The web face: the unsubscribe pages.
    pub web: Web,
    /// How alerts leave.
    pub delivery: Delivery,
}

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

/// The permissions of a file every user of the machine may read (`0644`), when
/// it is one: a configuration or a secret should not be.
pub fn readable_by_others(path: &Path) -> Option<u32> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path).ok()?.permissions().mode() & 0o777;
    (mode & 0o004 != 0).then_some(mode)
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

/// The Region as messages present it (header, signature, contact).
#[derive(Debug, Clone, Serialize)]
pub struct Region {
    /// The Region's name ("Région Hauts-de-France").
    pub name: String,
    /// The service that signs ("Direction des aides aux associations").
    pub service: Option<String>,
    /// Where people may write.
    pub email: Option<String>,
    /// A phone number.
    pub phone: Option<String>,
    /// A website.
    pub website: Option<String>,
}

/// The web face (`[web]`): where it listens, and the address people use.
#[derive(Debug, Clone, Default)]
pub struct Web {
    /// Where the daemon serves the pages (none: off).
    pub listen: Option<std::net::SocketAddr>,
    /// The address people open (the Region's reverse proxy in front of
    /// `listen`), without a final `/`: the links in messages start with it. None
    /// when set empty: then no rule may be informational (its messages must
    /// carry a way out).
    pub public_url: Option<String>,
}

/// Where and how the state is stored.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// The SQLite database file.
    pub path: PathBuf,
    /// SQLite page cache, in MiB.
    pub cache_mb: u32,
}

/// Logging settings.
#[derive(Debug, Clone)]
pub struct LogConfig {
    /// A tracing filter (`info`, `alertissimo=debug`); `RUST_LOG` wins when set.
    pub level: String,
    /// Text for people and journald, or one JSON object per line.
    pub format: LogFormat,
}

/// The log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Thresholds above which a whole snapshot is refused.
#[derive(Debug, Clone, Copy, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Guards {
    /// Largest share of rejected records (0.01 = 1 %).
    pub max_rejected_ratio: f64,
    /// Largest share of the connector's dossiers that may disappear at once.
    pub max_disappeared_ratio: f64,
}

/// How expected delays are estimated.
#[derive(Debug, Clone)]
pub struct DelaysConfig {
    /// The fewest stays a scheme (then a step) needs before its history is used.
    pub min_sample: u64,
    /// How long the daemon keeps its estimates before reading the history again.
    pub refresh: Duration,
    /// When the daemon looks for stalled dossiers and deadlines (besides at start-up).
    pub evaluate: croner::Cron,
    /// When the daemon lists, for each instructor, the dossiers to look at.
    pub review: croner::Cron,
    /// How far ahead a review looks for deadlines.
    pub review_horizon: Duration,
}

/// Daemon settings.
#[derive(Debug, Clone)]
pub struct DaemonConfig {
    /// Import every connector once at start-up, before following the schedules.
    pub import_at_startup: bool,
    /// How long shutdown waits for a running import before giving up.
    pub shutdown_timeout: Duration,
}

impl Config {
    /// Loads the configuration.
    ///
    /// `file` is the `--config` argument: when it is `None`, the default path is
    /// used if it exists, else the built-in defaults alone.
    ///
    /// # Errors
    /// Every problem found, each naming the key and the source of its value.
    pub fn load(file: Option<&Path>) -> Result<Self, Problems> {
        let mut problems = Problems::default();
        let file = match file {
            Some(path) => {
                if !path.is_file() {
                    problems.push(path, "cannot read the configuration file: no such file");
                    return Err(problems);
                }
                Some(path.to_owned())
            }
            None => Some(PathBuf::from(DEFAULT_PATH)).filter(|p| p.is_file()),
        };
        let mut figment = Figment::from(Serialized::defaults(DEFAULTS));
        if let Some(path) = &file {
            // Read it ourselves so that an unreadable file is reported as such,
            // and a syntax error once (figment repeats it for every key).
            match std::fs::read_to_string(path) {
                Ok(text) => {
                    if let Some(reason) = syntax_error(&text) {
                        problems.push(path, reason);
                        return Err(problems);
                    }
                }
                Err(error) => {
                    problems.push(path, format!("cannot read the configuration file: {error}"));
                    return Err(problems);
                }
            }
            figment = figment.merge(Toml::file_exact(path));
        }
        // Every ALERTISSIMO_* variable is read, so that a misspelt one is reported rather
        // than silently ignored; ALERTISSIMO_CONFIG is --config, read by the command line.
        figment = figment.merge(Env::prefixed(ENV_PREFIX).split("__").ignore(&["config"]));
        Self::from_figment(&figment, file).map_err(|mut p| {
            p.sort_by_place();
            p
        })
    }

    fn from_figment(figment: &Figment, file: Option<PathBuf>) -> Result<Self, Problems> {
        let mut p = Problems::default();
        check_unknown_keys(figment, &mut p);
        let timezone = get::<String>(figment, "timezone", &mut p).and_then(|tz| {
            tz.parse::<Tz>()
                .map_err(|_| {
                    push_key(
                        figment,
                        "timezone",
                        format!("'{tz}' is not an IANA time zone such as \"Europe/Paris\""),
                        &mut p,
                    )
                })
                .ok()
        });
        let connectors_dir = get_path(figment, "connectors_dir", &mut p);
        let rules_dir = get_path(figment, "rules_dir", &mut p);
        let store_path = get_path(figment, "store.path", &mut p);
        let cache_mb = get::<u32>(figment, "store.cache_mb", &mut p).and_then(|mb| {
            if (1..=4096).contains(&mb) {
                Some(mb)
            } else {
                push_key(
                    figment,
                    "store.cache_mb",
                    "must be between 1 and 4096",
                    &mut p,
                );
                None
            }
        });
        let level = get::<String>(figment, "log.level", &mut p).and_then(|level| {
            match tracing_subscriber::EnvFilter::try_new(&level) {
                Ok(_) => Some(level),
                Err(error) => {
                    push_key(figment, "log.level", format!("'{level}': {error}"), &mut p);
                    None
                }
            }
        });
        let format = get::<String>(figment, "log.format", &mut p).and_then(|f| match f.as_str() {
            "text" => Some(LogFormat::Text),
            "json" => Some(LogFormat::Json),
            _ => {
                push_key(
                    figment,
                    "log.format",
                    format!("'{f}' is not one of \"text\", \"json\""),
                    &mut p,
                );
                None
            }
        });
        let max_rejected_ratio = get_ratio(figment, "guards.max_rejected_ratio", &mut p);
        let max_disappeared_ratio = get_ratio(figment, "guards.max_disappeared_ratio", &mut p);
        let import_at_startup = get::<bool>(figment, "daemon.import_at_startup", &mut p);
        let shutdown_timeout = get_duration(figment, "daemon.shutdown_timeout", &mut p);
        let alerts = timezone.and_then(|tz| alerts(figment, tz, &mut p));
        let region = region(figment, &mut p);
        let delivery = delivery(figment, &mut p);
        let delays = delays(figment, &mut p);
        let personal_data = get_duration(figment, "retention.personal_data", &mut p);
        let purge_schedule = match get::<String>(figment, "retention.schedule", &mut p) {
            Some(text) if text.trim().is_empty() => Some(None),
            Some(_) => get_cron(figment, "retention.schedule", &mut p).map(Some),
            None => None,
        };
        let metrics_listen = get_listen(figment, "metrics.listen", "127.0.0.1:9464", &mut p);
        let web = web(figment, &mut p);
        match (
            timezone,
            connectors_dir,
            rules_dir,
            store_path,
            cache_mb,
            level,
            format,
            max_rejected_ratio,
            max_disappeared_ratio,
            import_at_startup,
            shutdown_timeout,
            alerts,
            region,
            delivery,
            delays,
            personal_data,
            metrics_listen,
            purge_schedule,
            web,
        ) {
            (
                Some(timezone),
                Some(connectors_dir),
                Some(rules_dir),
                Some(path),
                Some(cache_mb),
                Some(level),
                Some(format),
                Some(max_rejected_ratio),
                Some(max_disappeared_ratio),
                Some(import_at_startup),
                Some(shutdown_timeout),
                Some(alerts),
                Some(region),
                Some(delivery),
                Some(delays),
                Some(personal_data),
                Some(metrics_listen),
                Some(purge_schedule),
                Some(web),
            ) if p.is_empty() => Ok(Config {
                file,
                timezone,
                connectors_dir,
                rules_dir,
                store: StoreConfig { path, cache_mb },
                log: LogConfig { level, format },
                guards: Guards {
                    max_rejected_ratio,
                    max_disappeared_ratio,
                },
                daemon: DaemonConfig {
                    import_at_startup,
                    shutdown_timeout,
                },
                alerts,
                region,
                delays,
                personal_data,
                metrics_listen,
                purge_schedule,
                web,
                delivery,
            }),
            _ => Err(p),
        }
    }

    /// The path of the lifecycle file.
    pub fn lifecycle_path(&self) -> PathBuf {
        self.rules_dir.join(crate::lifecycle::FILE_NAME)
    }
}

/// The TOML syntax error of the configuration's text, if any: its line, column
/// and reason, without the line itself, which may hold a secret typed by
/// mistake (a password without quotes). See issue 17, item 36.
fn syntax_error(text: &str) -> Option<String> {
    let error = toml::de::DeTable::parse(text).err()?;
    let reason = error
        .message()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ");
    let place = error.span().map_or_else(String::new, |span| {
        let (line, col) = crate::diag::line_col(text, span.start);
        format!("line {line}, column {col}: ")
    });
    Some(format!(
        "not a valid TOML file: {place}{reason} (the line is not shown: it may hold a secret)"
    ))
}

/// A socket address, or none when the key is empty (off).
fn get_listen(
    figment: &Figment,
    key: &str,
    example: &str,
    p: &mut Problems,
) -> Option<Option<std::net::SocketAddr>> {
    let text = get::<String>(figment, key, p)?;
    if text.trim().is_empty() {
        return Some(None);
    }
    text.trim()
        .parse::<std::net::SocketAddr>()
        .map(Some)
        .map_err(|e| {
            let why = format!("'{text}' is not an address and port like \"{example}\": {e}");
            push_key(figment, key, why, p);
        })
        .ok()
}

/// `[web]`: the listening address and the public address of the pages.
fn web(figment: &Figment, p: &mut Problems) -> Option<Web> {
    let listen = get_listen(figment, "web.listen", "127.0.0.1:8080", p);
    let public_url = get::<String>(figment, "web.public_url", p).and_then(|text| {
        if text.trim().is_empty() {
            return Some(None);
        }
        public_url(text.trim())
            .map(Some)
            .map_err(|why| push_key(figment, "web.public_url", format!("'{text}' {why}"), p))
            .ok()
    });
    Some(Web {
        listen: listen?,
        public_url: public_url?,
    })
}

/// The public address of the web face as links start with it (no final `/`),
/// or why it cannot be one (pure).
pub fn public_url(text: &str) -> Result<String, &'static str> {
    let url = url::Url::parse(text)
        .map_err(|_| "is not an address like \"https://aides.region.example.org\"")?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err("must start with http:// or https://");
    }
    if url.host().is_none() {
        return Err("names no host");
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not hold a user name or password: it is written in every message");
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err("must not have a query (?…) or a fragment (#…): paths are added after it");
    }
    Ok(url.as_str().trim_end_matches('/').to_owned())
}

fn delays(figment: &Figment, p: &mut Problems) -> Option<DelaysConfig> {
    let min_sample = get::<u64>(figment, "delays.min_sample", p).and_then(|n| {
        (n >= 1).then_some(n).or_else(|| {
            push_key(figment, "delays.min_sample", "must be at least 1", p);
            None
        })
    });
    let refresh = get_duration(figment, "delays.refresh", p);
    let evaluate = get_cron(figment, "delays.evaluate", p);
    let review = get_cron(figment, "delays.review", p);
    let review_horizon = get_duration(figment, "delays.review_horizon", p);
    Some(DelaysConfig {
        min_sample: min_sample?,
        refresh: refresh?,
        evaluate: evaluate?,
        review: review?,
        review_horizon: review_horizon?,
    })
}

fn get_cron(figment: &Figment, key: &str, p: &mut Problems) -> Option<croner::Cron> {
    let text = get::<String>(figment, key, p)?;
    <croner::Cron as std::str::FromStr>::from_str(&text)
        .map_err(|e| {
            push_key(
                figment,
                key,
                format!("'{text}' is not a cron schedule like \"0 0 8 * * *\": {e}"),
                p,
            );
        })
        .ok()
}

/// A duration key, within its bound ([`MAX_DURATIONS`], else 10 years).
fn get_duration(figment: &Figment, key: &str, p: &mut Problems) -> Option<Duration> {
    let text = get::<String>(figment, key, p)?;
    let max = MAX_DURATIONS
        .iter()
        .find(|(k, _)| *k == key)
        .map_or(crate::diag::MAX_DURATION, |(_, max)| *max);
    crate::diag::parse_duration_at_most(&text, max)
        .map_err(|reason| push_key(figment, key, reason, p))
        .ok()
}

fn alerts(figment: &Figment, tz: Tz, p: &mut Problems) -> Option<Policy> {
    let debounce = get_duration(figment, "alerts.debounce", p);
    let digest = get::<String>(figment, "alerts.digest", p).and_then(|d| {
        timing::parse_digest(&d)
            .map_err(|reason| push_key(figment, "alerts.digest", reason, p))
            .ok()
    });
    let windows = get::<Vec<String>>(figment, "alerts.send_windows", p).map(|ws| {
        let mut windows = Vec::with_capacity(ws.len());
        for w in ws {
            match w.parse::<Window>() {
                Ok(window) => windows.push(window),
                Err(reason) => push_key(figment, "alerts.send_windows", reason, p),
            }
        }
        windows
    });
    Some(Policy {
        tz,
        debounce: debounce?,
        digest: digest?,
        windows: windows?,
    })
}

fn region(figment: &Figment, p: &mut Problems) -> Option<Region> {
    let mut text = |key: &str| {
        get::<String>(figment, key, p).map(|v| Some(v.trim().to_owned()).filter(|v| !v.is_empty()))
    };
    let name = text("region.name");
    let (service, email, phone, website) = (
        text("region.service"),
        text("region.email"),
        text("region.phone"),
        text("region.website"),
    );
    let name = match name? {
        Some(name) => name,
        None => {
            push_key(figment, "region.name", "must not be empty", p);
            return None;
        }
    };
    if let Some(Some(email)) = &email
        && crate::value::parse_emails(email).is_err()
    {
        push_key(
            figment,
            "region.email",
            format!("'{email}' is not an e-mail address"),
            p,
        );
    }
    Some(Region {
        name,
        service: service?,
        email: email?,
        phone: phone?,
        website: website?,
    })
}

/// A text setting where "" means "not set".
fn get_optional(figment: &Figment, key: &str, p: &mut Problems) -> Option<Option<String>> {
    get::<String>(figment, key, p).map(|v| Some(v.trim().to_owned()).filter(|v| !v.is_empty()))
}

fn get_mailbox(figment: &Figment, key: &str, p: &mut Problems) -> Option<Option<String>> {
    let value = get_optional(figment, key, p)?;
    if let Some(text) = &value
        && text.parse::<lettre::message::Mailbox>().is_err()
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

fn delivery(figment: &Figment, p: &mut Problems) -> Option<Delivery> {
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

/// Describes where the value of `key` came from: "in config.toml", "from ALERTISSIMO_…".
fn source_of(figment: &Figment, key: &str) -> String {
    match figment.find_metadata(key) {
        Some(md) => match &md.source {
            Some(figment::Source::File(path)) => path.display().to_string(),
            _ if md.name.contains("environment") => {
                format!(
                    "environment variable {ENV_PREFIX}{}",
                    key.replace('.', "__").to_uppercase()
                )
            }
            _ => md.name.to_string(),
        },
        None => "configuration".to_owned(),
    }
}

fn push_key(figment: &Figment, key: &str, message: impl Into<String>, p: &mut Problems) {
    p.push(
        source_of(figment, key),
        format!("key `{key}`: {}", message.into()),
    );
}

fn get<T: DeserializeOwned>(figment: &Figment, key: &str, p: &mut Problems) -> Option<T> {
    match figment.extract_inner::<T>(key) {
        Ok(v) => Some(v),
        Err(error) => {
            // Figment's message ends with its own idea of the key and source: keep only the reason.
            push_key(figment, key, error.kind.to_string(), p);
            None
        }
    }
}

fn get_path(figment: &Figment, key: &str, p: &mut Problems) -> Option<PathBuf> {
    let path = get::<RelativePathBuf>(figment, key, p)?;
    if path.original().as_os_str().is_empty() {
        push_key(figment, key, "must not be empty", p);
        return None;
    }
    Some(path.relative())
}

fn get_ratio(figment: &Figment, key: &str, p: &mut Problems) -> Option<f64> {
    let ratio = get::<f64>(figment, key, p)?;
    if (0.0..=1.0).contains(&ratio) {
        Some(ratio)
    } else {
        push_key(
            figment,
            key,
            format!("{ratio} is not a ratio between 0 and 1 (0.05 = 5 %)"),
            p,
        );
        None
    }
}

/// Reports every key set by a file or the environment that the configuration does not know.
fn check_unknown_keys(figment: &Figment, p: &mut Problems) {
    let Ok(dict) = figment.extract::<Dict>() else {
        return;
    };
    let mut found = Vec::new();
    flatten("", &dict, &mut found);
    for key in found {
        if !KEYS.contains(&key.as_str()) {
            let hint = crate::diag::closest(&key, KEYS.iter().copied())
                .map(|k| format!(" (did you mean `{k}`?)"))
                .unwrap_or_default();
            push_key(figment, &key, format!("unknown key{hint}"), p);
        }
    }
}

fn flatten(prefix: &str, dict: &Dict, out: &mut Vec<String>) {
    for (k, v) in dict {
        let key = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        match v {
            Value::Dict(_, inner) => flatten(&key, inner, out),
            _ => out.push(key),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, text: &str) -> PathBuf {
        let path = dir.join("config.toml");
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn defaults_need_nothing() {
        let config =
            Config::from_figment(&Figment::from(Serialized::defaults(DEFAULTS)), None).unwrap();
        assert_eq!(config.timezone, chrono_tz::Europe::Paris);
        assert_eq!(config.guards.max_rejected_ratio, 0.01);
        assert_eq!(config.guards.max_disappeared_ratio, 0.05);
        assert!(
            config
                .store
                .path
                .ends_with("alertissimo-data/alertissimo.db")
        );
    }

    #[test]
    fn relative_paths_follow_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(
            dir.path(),
            "connectors_dir = \"conn\"\n[store]\npath = \"state/a.db\"\n",
        );
        let config = Config::load(Some(&path)).unwrap();
        assert_eq!(config.connectors_dir, dir.path().join("conn"));
        assert_eq!(config.store.path, dir.path().join("state/a.db"));
        assert_eq!(config.file.as_deref(), Some(path.as_path()));
    }

    #[test]
    fn every_problem_is_reported_with_key_and_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(
            dir.path(),
            "timezone = \"Europe/Pariss\"\nconectors_dir = \"x\"\n[guards]\nmax_rejected_ratio = 5\nmax_disappeared_ratio = \"lots\"\n[log]\nformat = \"xml\"\n",
        );
        let problems = Config::load(Some(&path)).unwrap_err();
        let text = problems.to_string();
        let file = path.display().to_string();
        for needle in [
            "key `timezone`: 'Europe/Pariss' is not an IANA time zone",
            "key `conectors_dir`: unknown key (did you mean `connectors_dir`?)",
            "key `guards.max_rejected_ratio`: 5 is not a ratio",
            "key `guards.max_disappeared_ratio`: invalid type",
            "key `log.format`: 'xml' is not one of",
        ] {
            assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
        }
        assert_eq!(problems.len(), 5, "{text}");
        assert!(problems.iter().all(|p| p.place == file), "{text}");
    }

    #[test]
    fn public_urls_are_http_addresses_that_paths_follow() {
        for (text, expected) in [
            (
                "https://aides.region.example.org",
                "https://aides.region.example.org",
            ),
            (
                "https://aides.region.example.org/",
                "https://aides.region.example.org",
            ),
            ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
            (
                "https://www.region.example.org/alertes/",
                "https://www.region.example.org/alertes",
            ),
        ] {
            assert_eq!(public_url(text).as_deref(), Ok(expected), "{text}");
        }
        for (text, why) in [
            ("aides.region.example.org", "is not an address"),
            ("ftp://aides.region.example.org", "http:// or https://"),
            ("https://aides.region.example.org/?x=1", "query"),
            ("https://aides.region.example.org/#haut", "fragment"),
            ("https://moi:secret@aides.region.example.org", "password"),
        ] {
            let error = public_url(text).unwrap_err();
            assert!(error.contains(why), "{text}: {error}");
        }
        let dir = tempfile::tempdir().unwrap();
        let path = write(
            dir.path(),
            "[web]\npublic_url = \"ftp://x\"\nlisten = \"here\"\n",
        );
        let text = Config::load(Some(&path)).unwrap_err().to_string();
        assert!(
            text.contains("key `web.public_url`: 'ftp://x' must start with http"),
            "{text}"
        );
        assert!(
            text.contains("key `web.listen`: 'here' is not an address and port"),
            "{text}"
        );
    }

    #[test]
    fn missing_explicit_file_is_an_error() {
        let problems = Config::load(Some(Path::new("/nonexistent/alertissimo.toml"))).unwrap_err();
        assert!(problems.to_string().contains("no such file"));
    }

    #[test]
    /// A later layer (the environment's place in `Config::load`) wins over the
    /// file. The environment itself is tested through the binary
    /// (`tests/it/check.rs`, `environment_overrides_the_file`).
    fn a_later_layer_overrides_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "[guards]\nmax_rejected_ratio = 0.02\n");
        let figment = Figment::from(Serialized::defaults(DEFAULTS))
            .merge(Toml::file_exact(&path))
            .merge(Serialized::default("guards.max_rejected_ratio", 0.5));
        let config = Config::from_figment(&figment, Some(path)).unwrap();
        assert_eq!(config.guards.max_rejected_ratio, 0.5);
    }

    #[test]
    fn example_config_is_complete_and_valid() {
        let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("config.example.toml");
        let text = std::fs::read_to_string(&example).unwrap();
        let config = Config::load(Some(&example)).unwrap_or_else(|p| panic!("{p}"));
        assert!(config.connectors_dir.ends_with("connectors"));
        // Every key is documented in the example, set to its default or commented out.
        let table: toml::Table = toml::from_str(&text).unwrap();
        let mut documented = Vec::new();
        for key in KEYS {
            let name = key.rsplit('.').next().unwrap_or(key);
            let mut value: Option<&toml::Value> = None;
            for (i, part) in key.split('.').enumerate() {
                value = if i == 0 {
                    table.get(part)
                } else {
                    value.and_then(|v| v.get(part))
                };
            }
            let set = value.is_some();
            if set || text.contains(&format!("# {name} =")) {
                documented.push(*key);
            }
        }
        assert_eq!(
            documented, KEYS,
            "config.example.toml must document every key"
        );
    }
}
