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
//!
//! Here: [`Config`], its layering and the readers every section shares; in
//! `keys.rs`, every key with its default and bounds (but the transports', which
//! each transport of `crate::transport` lists); in `delivery.rs`,
//! `[delivery]` and the chosen transport's settings; in `inbound.rs`,
//! `[inbound]` (the replies' mailbox); in `sections.rs`, the other sections.

use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono_tz::Tz;
use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use figment::value::magic::RelativePathBuf;
use figment::value::{Dict, Value};
use serde::de::DeserializeOwned;

use crate::diag::Problems;
use crate::timing::Policy;

mod delivery;
mod inbound;
mod keys;
mod sections;
mod staff;
mod theme;

pub(crate) use delivery::Delivery;
use delivery::delivery;
pub use inbound::{Inbound, thread_address};
use keys::{DEFAULTS, MAX_DURATIONS};
pub(crate) use keys::{RATE_PER_SECOND, all_keys};
pub use sections::{
    DaemonConfig, DelaysConfig, Guards, LogConfig, LogFormat, Region, StoreConfig, Web, public_url,
};
use sections::{alerts, delays, region, web};
pub use staff::{StaffMember, StaffRole};
pub use theme::{Theme, contrast_with_white};

/// Where the daemon looks for its configuration when `--config` is not given.
pub(crate) const DEFAULT_PATH: &str = "/etc/alertissimo/config.toml";
/// The prefix of environment variables that override the file.
pub(crate) const ENV_PREFIX: &str = "ALERTISSIMO_";

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
    /// The replies' mailbox, read over IMAP (none: off).
    pub inbound: Option<Inbound>,
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
        // Every setting is read, in this order, before any is missed: one run
        // names every problem.
        let timezone = timezone(figment, &mut p);
        let connectors_dir = get_path(figment, "connectors_dir", &mut p);
        let rules_dir = get_path(figment, "rules_dir", &mut p);
        let store = store(figment, &mut p);
        let log = log(figment, &mut p);
        let guards = guards(figment, &mut p);
        let daemon = daemon(figment, &mut p);
        let alerts = timezone.and_then(|tz| alerts(figment, tz, &mut p));
        let region = region(figment, &mut p);
        let delivery = delivery(figment, &mut p);
        let delays = delays(figment, &mut p);
        let personal_data = get_duration(figment, "retention.personal_data", &mut p);
        let purge_schedule = purge_schedule(figment, &mut p);
        let metrics_listen = get_listen(figment, "metrics.listen", "127.0.0.1:9464", &mut p);
        let web = web(figment, region.as_ref(), &mut p);
        let inbound = inbound::inbound(figment, &mut p);
        let config = (|| {
            let inbound = inbound?;
            let mut delivery = delivery?;
            delivery.thread_address = inbound.as_ref().map(|i| i.address.clone());
            Some(Config {
                file,
                timezone: timezone?,
                connectors_dir: connectors_dir?,
                rules_dir: rules_dir?,
                store: store?,
                log: log?,
                guards: guards?,
                daemon: daemon?,
                alerts: alerts?,
                region: region?,
                delays: delays?,
                personal_data: personal_data?,
                metrics_listen: metrics_listen?,
                purge_schedule: purge_schedule?,
                web: web?,
                delivery,
                inbound,
            })
        })();
        match config {
            Some(config) if p.is_empty() => Ok(config),
            _ => Err(p),
        }
    }

    /// The path of the lifecycle file.
    pub fn lifecycle_path(&self) -> PathBuf {
        self.rules_dir.join(crate::lifecycle::FILE_NAME)
    }
}

/// `timezone`: an IANA zone.
fn timezone(figment: &Figment, p: &mut Problems) -> Option<Tz> {
    get::<String>(figment, "timezone", p).and_then(|tz| {
        tz.parse::<Tz>()
            .map_err(|_| {
                push_key(
                    figment,
                    "timezone",
                    format!("'{tz}' is not an IANA time zone such as \"Europe/Paris\""),
                    p,
                )
            })
            .ok()
    })
}

/// `[store]`.
fn store(figment: &Figment, p: &mut Problems) -> Option<StoreConfig> {
    let path = get_path(figment, "store.path", p);
    let cache_mb = get::<u32>(figment, "store.cache_mb", p).and_then(|mb| {
        if (1..=4096).contains(&mb) {
            Some(mb)
        } else {
            push_key(figment, "store.cache_mb", "must be between 1 and 4096", p);
            None
        }
    });
    Some(StoreConfig {
        path: path?,
        cache_mb: cache_mb?,
    })
}

/// `[log]`.
fn log(figment: &Figment, p: &mut Problems) -> Option<LogConfig> {
    let level = get::<String>(figment, "log.level", p).and_then(|level| {
        match tracing_subscriber::EnvFilter::try_new(&level) {
            Ok(_) => Some(level),
            Err(error) => {
                push_key(figment, "log.level", format!("'{level}': {error}"), p);
                None
            }
        }
    });
    let format = get::<String>(figment, "log.format", p).and_then(|f| match f.as_str() {
        "text" => Some(LogFormat::Text),
        "json" => Some(LogFormat::Json),
        _ => {
            push_key(
                figment,
                "log.format",
                format!("'{f}' is not one of \"text\", \"json\""),
                p,
            );
            None
        }
    });
    Some(LogConfig {
        level: level?,
        format: format?,
    })
}

/// `[guards]`.
fn guards(figment: &Figment, p: &mut Problems) -> Option<Guards> {
    let max_rejected_ratio = get_ratio(figment, "guards.max_rejected_ratio", p);
    let max_disappeared_ratio = get_ratio(figment, "guards.max_disappeared_ratio", p);
    Some(Guards {
        max_rejected_ratio: max_rejected_ratio?,
        max_disappeared_ratio: max_disappeared_ratio?,
    })
}

/// `[daemon]`.
fn daemon(figment: &Figment, p: &mut Problems) -> Option<DaemonConfig> {
    let import_at_startup = get::<bool>(figment, "daemon.import_at_startup", p);
    let shutdown_timeout = get_duration(figment, "daemon.shutdown_timeout", p);
    Some(DaemonConfig {
        import_at_startup: import_at_startup?,
        shutdown_timeout: shutdown_timeout?,
    })
}

/// `[retention] schedule`: a cron pattern, or empty for no scheduled purge.
fn purge_schedule(figment: &Figment, p: &mut Problems) -> Option<Option<croner::Cron>> {
    match get::<String>(figment, "retention.schedule", p) {
        Some(text) if text.trim().is_empty() => Some(None),
        Some(_) => get_cron(figment, "retention.schedule", p).map(Some),
        None => None,
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

/// Reports every key set by a file or the environment that the configuration does not know.
fn check_unknown_keys(figment: &Figment, p: &mut Problems) {
    let Ok(dict) = figment.extract::<Dict>() else {
        return;
    };
    let mut found = Vec::new();
    flatten("", &dict, &mut found);
    let known: Vec<&str> = all_keys().collect();
    for key in found {
        if !known.contains(&key.as_str()) {
            let hint = crate::diag::closest(&key, known.iter().copied())
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

/// The permissions of a file every user of the machine may read (`0644`), when
/// it is one: a configuration or a secret should not be.
pub(crate) fn readable_by_others(path: &Path) -> Option<u32> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path).ok()?.permissions().mode() & 0o777;
    (mode & 0o004 != 0).then_some(mode)
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

/// A text setting where "" means "not set".
fn get_optional(figment: &Figment, key: &str, p: &mut Problems) -> Option<Option<String>> {
    get::<String>(figment, key, p).map(|v| Some(v.trim().to_owned()).filter(|v| !v.is_empty()))
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
    let max = MAX_DURATIONS
        .iter()
        .find(|(k, _)| *k == key)
        .map_or(crate::diag::MAX_DURATION, |(_, max)| *max);
    get_duration_at_most(figment, key, max, p)
}

/// A duration key of at most `max`.
fn get_duration_at_most(
    figment: &Figment,
    key: &str,
    max: Duration,
    p: &mut Problems,
) -> Option<Duration> {
    let text = get::<String>(figment, key, p)?;
    crate::diag::parse_duration_at_most(&text, max)
        .map_err(|reason| push_key(figment, key, reason, p))
        .ok()
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

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn write(dir: &Path, text: &str) -> PathBuf {
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
        let keys: Vec<&str> = all_keys().collect();
        for key in &keys {
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
            documented, keys,
            "config.example.toml must document every key"
        );
    }
}
