//! Every key of `config.toml`: its name ([`KEYS`]), its built-in default
//! ([`DEFAULTS`]) and its bounds ([`MAX_DURATIONS`], [`RATE_PER_SECOND`]). A
//! new key is written here, and read and checked by its section's reader; a
//! transport's keys are written in its file instead ([`crate::transport::Kind`]),
//! and [`all_keys`] and [`DEFAULTS`] add them.

use std::time::Duration;

use figment::value::{Dict, Value};
use serde::Serialize;

use crate::timing;
use crate::transport::KeyDefault;

const HOUR: Duration = Duration::from_secs(3_600);
const DAY: Duration = Duration::from_secs(86_400);
/// The longest value of the duration keys that allow less than
/// [`crate::diag::MAX_DURATION`] (10 years), as `config.example.toml`
/// documents them: past these a value means nothing, and far past them date
/// arithmetic overflows and panics (issue 17, item 20).
pub(super) const MAX_DURATIONS: &[(&str, Duration)] = &[
    ("daemon.shutdown_timeout", HOUR),
    ("alerts.debounce", timing::MAX_DEBOUNCE),
    ("delays.refresh", Duration::from_secs(7 * 86_400)),
    ("delays.review_horizon", Duration::from_secs(365 * 86_400)),
    ("delivery.max_age", Duration::from_secs(365 * 86_400)),
    ("delivery.retry_initial", DAY),
    ("delivery.retry_max", DAY),
    ("web.login_link_lifetime", DAY),
    ("web.session_idle", Duration::from_secs(30 * 86_400)),
    ("web.session_max", Duration::from_secs(90 * 86_400)),
];
/// The range of `delivery.rate_per_second`: below, the interval between two
/// messages overflows; above, no relay keeps up.
pub(crate) const RATE_PER_SECOND: std::ops::RangeInclusive<f64> = 0.001..=10_000.0;

/// Every key of the configuration but the transports', as written in the file
/// (`section.key`).
pub(crate) const KEYS: &[&str] = &[
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
    "web.login_link_lifetime",
    "web.session_idle",
    "web.session_max",
    "web.trusted_proxies",
    "web.service_email",
    "web.staff",
    "web.theme.name",
    "web.theme.logo",
    "web.theme.colour",
    "web.theme.email",
    "web.theme.phone",
    "web.theme.legal_notice",
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
    "smtp.from",
    "smtp.reply_to",
    "inbound.host",
    "inbound.port",
    "inbound.tls",
    "inbound.user",
    "inbound.password_env",
    "inbound.password_file",
    "inbound.ca_file",
    "inbound.folder",
    "inbound.processed_folder",
    "inbound.unmatched_folder",
    "inbound.poll_interval",
    "inbound.timeout",
    "inbound.address",
];

/// Every key of the configuration: [`KEYS`], then each transport's.
pub(crate) fn all_keys() -> impl Iterator<Item = &'static str> {
    KEYS.iter()
        .copied()
        .chain(crate::transport::keys().map(|key| key.name))
}

/// The built-in defaults: they need nothing installed and work from a checkout.
/// Those of [`KEYS`], with each transport's keys at their defaults.
#[derive(Debug)]
pub(super) struct Defaults(Common);

impl Serialize for Defaults {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut dict = Value::serialize(&self.0)
            .ok()
            .and_then(Value::into_dict)
            .ok_or_else(|| serde::ser::Error::custom("the built-in defaults are not a table"))?;
        for key in crate::transport::keys() {
            let value = match key.default {
                KeyDefault::Text(text) => Value::from(text),
                KeyDefault::Integer(n) => Value::from(n),
                KeyDefault::Flag(flag) => Value::from(flag),
            };
            insert(&mut dict, key.name, value);
        }
        dict.serialize(serializer)
    }
}

/// Sets `value` at the dotted `key` of `dict`, making the tables on the way.
fn insert(dict: &mut Dict, key: &str, value: Value) {
    match key.split_once('.') {
        None => {
            dict.insert(key.to_owned(), value);
        }
        Some((table, rest)) => {
            let inner = dict
                .entry(table.to_owned())
                .or_insert_with(|| Value::from(Dict::new()));
            if let Value::Dict(_, inner) = inner {
                insert(inner, rest, value);
            }
        }
    }
}

#[derive(Debug, Serialize)]
struct Common {
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
    inbound: InboundDefaults,
}

/// `[inbound]`: off (no host).
#[derive(Debug, Serialize)]
struct InboundDefaults {
    host: &'static str,
    port: u16,
    tls: bool,
    user: &'static str,
    password_env: &'static str,
    password_file: &'static str,
    ca_file: &'static str,
    folder: &'static str,
    processed_folder: &'static str,
    unmatched_folder: &'static str,
    poll_interval: &'static str,
    timeout: &'static str,
    address: &'static str,
}

#[derive(Debug, Serialize)]
struct MetricsDefaults {
    listen: &'static str,
}

#[derive(Debug, Serialize)]
struct WebDefaults {
    listen: &'static str,
    public_url: &'static str,
    login_link_lifetime: &'static str,
    session_idle: &'static str,
    session_max: &'static str,
    trusted_proxies: [&'static str; 0],
    service_email: &'static str,
    staff: [&'static str; 0],
    theme: ThemeDefaults,
}

/// `[web.theme]`: empty means "the `[region]`'s" (name, email, phone) or none.
#[derive(Debug, Serialize)]
struct ThemeDefaults {
    name: &'static str,
    logo: &'static str,
    colour: &'static str,
    email: &'static str,
    phone: &'static str,
    legal_notice: &'static str,
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
}

/// The keys of `[smtp]` that every transport's messages use.
#[derive(Debug, Serialize)]
struct SmtpDefaults {
    from: &'static str,
    reply_to: &'static str,
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

pub(super) const DEFAULTS: Defaults = Defaults(Common {
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
        login_link_lifetime: "15m",
        session_idle: "1h",
        session_max: "12h",
        trusted_proxies: [],
        service_email: "",
        staff: [],
        theme: ThemeDefaults {
            name: "",
            logo: "",
            colour: super::theme::DEFAULT_COLOUR,
            email: "",
            phone: "",
            legal_notice: "",
        },
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
    },
    smtp: SmtpDefaults {
        from: "Alertissimo <alertissimo@localhost>",
        reply_to: "",
    },
    inbound: InboundDefaults {
        host: "",
        port: 993,
        tls: true,
        user: "",
        password_env: "",
        password_file: "",
        ca_file: "",
        folder: "INBOX",
        processed_folder: "Alertissimo-traites",
        unmatched_folder: "Alertissimo-non-rattaches",
        poll_interval: "1m",
        timeout: "30s",
        address: "",
    },
});
