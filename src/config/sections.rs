//! The other sections' types and readers: `[region]`, `[web]`, `[delays]` and
//! `[alerts]`, and the types of `[store]`, `[log]`, `[guards]` and `[daemon]`
//! (read with the top-level keys, in `Config::load`).

use std::path::PathBuf;
use std::time::Duration;

use chrono_tz::Tz;
use figment::Figment;
use serde::Serialize;

use super::{get, get_cron, get_duration, get_listen, push_key};
use crate::diag::Problems;
use crate::timing::{self, Policy, Window};

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
    /// How long a sign-in link of the front office stays valid (15 minutes).
    pub login_link_lifetime: Duration,
    /// A front office session ends after this long without a page asked.
    pub session_idle: Duration,
    /// A front office session ends this long after its sign-in, however used.
    pub session_max: Duration,
    /// The reverse proxies whose `X-Forwarded-For` names the client (none: the
    /// peer of the connection is the client).
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// The Region's look on the front office's pages (`[web.theme]`).
    pub theme: super::Theme,
    /// Where a beneficiary's message written in the front office goes when
    /// its dossier names no instructor (`instructor.email`) and no service
    /// (`service.email`): the instructing service's shared mailbox.
    pub service_email: Option<String>,
}

impl Web {
    /// Whether the front office is served: a listener, and an address for its links.
    pub fn front_office(&self) -> Option<&str> {
        self.listen.and(self.public_url.as_deref())
    }
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

/// `[web]`: the listening address and the public address of the pages.
/// `region`: the `[region]` read, whose name and contact the theme defaults to
/// (none: it has a problem of its own, and the theme is checked all the same).
pub(super) fn web(figment: &Figment, region: Option<&Region>, p: &mut Problems) -> Option<Web> {
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
    let link = get_duration(figment, "web.login_link_lifetime", p);
    let idle = get_duration(figment, "web.session_idle", p);
    let max = get_duration(figment, "web.session_max", p);
    if let (Some(idle), Some(max)) = (idle, max)
        && idle > max
    {
        push_key(
            figment,
            "web.session_idle",
            format!(
                "{} is longer than web.session_max ({}): a session never lives past session_max",
                humantime::format_duration(idle),
                humantime::format_duration(max)
            ),
            p,
        );
    }
    let proxies = get::<Vec<String>>(figment, "web.trusted_proxies", p).map(|list| {
        list.iter()
            .filter_map(|text| {
                proxy(text)
                    .map_err(|why| push_key(figment, "web.trusted_proxies", why, p))
                    .ok()
            })
            .collect::<Vec<_>>()
    });
    let theme = super::theme::theme(figment, region, p);
    let service_email = get::<String>(figment, "web.service_email", p).and_then(|text| {
        let text = text.trim();
        if text.is_empty() {
            return Some(None);
        }
        match crate::value::parse_emails(text) {
            Ok(mut list) if list.len() == 1 => Some(list.pop()),
            _ => {
                push_key(
                    figment,
                    "web.service_email",
                    format!("'{text}' is not one e-mail address"),
                    p,
                );
                None
            }
        }
    });
    Some(Web {
        listen: listen?,
        public_url: public_url?,
        login_link_lifetime: link?,
        session_idle: idle?,
        session_max: max?,
        trusted_proxies: proxies?,
        theme: theme?,
        service_email: service_email?,
    })
}

/// One entry of `web.trusted_proxies`: an address (`10.0.0.5`, `::1`) or a
/// network (`10.0.0.0/8`), or why not (pure).
pub(super) fn proxy(text: &str) -> Result<ipnet::IpNet, String> {
    let text = text.trim();
    text.parse::<ipnet::IpNet>()
        .or_else(|_| text.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
        .map(|net| net.trunc())
        .map_err(|_| {
            format!("'{text}' is not an address (\"10.0.0.5\") or a network (\"10.0.0.0/8\")")
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

pub(super) fn delays(figment: &Figment, p: &mut Problems) -> Option<DelaysConfig> {
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

pub(super) fn alerts(figment: &Figment, tz: Tz, p: &mut Problems) -> Option<Policy> {
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

pub(super) fn region(figment: &Figment, p: &mut Problems) -> Option<Region> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::config::tests::write;

    #[test]
    fn trusted_proxies_are_addresses_or_networks() {
        assert_eq!(proxy("10.0.0.5").unwrap().to_string(), "10.0.0.5/32");
        assert_eq!(proxy(" 10.1.2.3/8 ").unwrap().to_string(), "10.0.0.0/8");
        assert_eq!(proxy("::1").unwrap().to_string(), "::1/128");
        assert!(
            proxy("proxy.example.org")
                .unwrap_err()
                .contains("not an address")
        );
        let dir = tempfile::tempdir().unwrap();
        let path = write(
            dir.path(),
            "[web]\ntrusted_proxies = [\"x\"]\nsession_idle = \"2d\"\nsession_max = \"1d\"\n",
        );
        let text = Config::load(Some(&path)).unwrap_err().to_string();
        assert!(
            text.contains("key `web.trusted_proxies`: 'x' is not"),
            "{text}"
        );
        assert!(
            text.contains("key `web.session_idle`: 2days is longer"),
            "{text}"
        );
        let config = Config::load(None).unwrap();
        assert_eq!(config.web.login_link_lifetime, Duration::from_secs(900));
        assert!(config.web.trusted_proxies.is_empty());
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
}
