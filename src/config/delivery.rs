//! `[delivery]`: how alerts leave, whatever the transport (limits, retries, the
//! administrators' reports, `smtp.from` and `smtp.reply_to`), and the chosen
//! transport's settings, which its file in [`crate::transport`] reads through
//! [`FigmentKeys`].

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use figment::Figment;
use figment::value::magic::RelativePathBuf;

use super::{
    RATE_PER_SECOND, get, get_cron, get_duration, get_duration_at_most, get_optional, get_path,
    push_key,
};
use crate::diag::Problems;
use crate::transport::{Keys, Transport};

/// How alerts are delivered.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// Where messages go: the chosen transport's settings.
    pub transport: Arc<dyn Transport>,
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
    /// `[inbound] address`, when `[inbound]` is on: a message about a dossier
    /// is answered to its plus address with the dossier's token instead.
    pub thread_address: Option<String>,
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
    // The purge's folder is the `file` transport's key: read through `keys`, as
    // the transport's settings below, its problem is reported once.
    let mut keys = FigmentKeys {
        figment,
        p,
        failed: BTreeSet::new(),
    };
    let dir = keys.path(crate::transport::file::DIR);
    let p = &mut *keys.p;
    let notice_dir = get_path(figment, "delivery.notice_dir", p);
    let from = get_mailbox(figment, "smtp.from", p).and_then(|f| {
        f.or_else(|| {
            push_key(figment, "smtp.from", "must not be empty", p);
            None
        })
    });
    let reply_to = get_mailbox(figment, "smtp.reply_to", p);
    let transport = kind.and_then(|name| crate::transport::settings(&name, &mut keys));
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
        thread_address: None,
    })
}

/// The keys of `config.toml` as a transport reads them ([`Keys`]): from the
/// layered figment, each problem naming the key and where its value came from.
/// A key read twice (`[delivery.file] dir`: the purge's and the `file`
/// transport's) reports its problem once.
struct FigmentKeys<'a> {
    figment: &'a Figment,
    p: &'a mut Problems,
    /// The keys whose problem is reported.
    failed: BTreeSet<String>,
}

impl FigmentKeys<'_> {
    /// Reads `key` with `read`, unless its problem is already reported.
    fn read<T>(
        &mut self,
        key: &str,
        read: impl FnOnce(&Figment, &str, &mut Problems) -> Option<T>,
    ) -> Option<T> {
        if self.failed.contains(key) {
            return None;
        }
        let value = read(self.figment, key, self.p);
        if value.is_none() {
            self.failed.insert(key.to_owned());
        }
        value
    }
}

impl Keys for FigmentKeys<'_> {
    fn text(&mut self, key: &str) -> Option<String> {
        self.read(key, get::<String>)
    }

    fn optional(&mut self, key: &str) -> Option<Option<String>> {
        self.read(key, get_optional)
    }

    fn port(&mut self, key: &str) -> Option<u16> {
        self.read(key, get::<u16>)
    }

    fn flag(&mut self, key: &str) -> Option<bool> {
        self.read(key, get::<bool>)
    }

    fn duration(&mut self, key: &str, max: Duration) -> Option<Duration> {
        self.read(key, |figment, key, p| {
            get_duration_at_most(figment, key, max, p)
        })
    }

    fn path(&mut self, key: &str) -> Option<PathBuf> {
        self.read(key, get_path)
    }

    fn optional_path(&mut self, key: &str) -> Option<Option<PathBuf>> {
        self.read(key, |figment, key, p| {
            get::<RelativePathBuf>(figment, key, p)
                .map(|path| (!path.original().as_os_str().is_empty()).then(|| path.relative()))
        })
    }

    fn problem(&mut self, key: &str, message: String) {
        self.failed.insert(key.to_owned());
        push_key(self.figment, key, message, self.p);
    }
}
