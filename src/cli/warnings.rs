//! What `check` (and `run`, in its log) warns about without refusing the
//! configuration: things that work but may surprise, each with how to fix it.
//! Warnings never change an exit code.
//!
//! Besides files every user may read, two come from issue 17, item 36: a drop
//! folder outside the folders the configuration lives in (the folder of
//! `config.toml`, the state database's folder, [`STATE_DIRECTORY`]), which the
//! packaged service can neither see (`ProtectHome=`, `PrivateTmp=`) nor write
//! (`ProtectSystem=strict`) unless a drop-in lists it; and `[metrics] listen` on
//! an address other machines can reach, since nothing protects the endpoint.
//! Issue 17, item 25 adds the unsubscribe links of informational messages that
//! nobody could open: no `[web] listen` here, or a `public_url` on this machine
//! while messages leave it (by SMTP: [`crate::transport::Transport::leaves_this_machine`]).
//! Issue 21 adds a front office without `[web] service_email`, where a
//! beneficiary's message about a dossier naming no instructor or service would
//! reach nobody.

use std::path::{Component, Path, PathBuf};

use crate::config::Config;
use crate::connector::Connector;

/// The state folder of the packaged service (`StateDirectory=alertissimo`).
pub(super) const STATE_DIRECTORY: &str = "/var/lib/alertissimo";

/// Every warning about this configuration and its connectors.
pub(super) fn all(config: &Config, connectors: &[Connector]) -> Vec<String> {
    let mut warnings = exposed_files(config, connectors);
    warnings.extend(folders_outside(config, connectors));
    warnings.extend(exposed_metrics(config));
    warnings.extend(no_service_address(config));
    warnings
}

/// The front office is served but a beneficiary's message about a dossier
/// without an instructor or service address would reach nobody (issue 21).
fn no_service_address(config: &Config) -> Option<String> {
    (config.web.front_office().is_some() && config.web.service_email.is_none()).then(|| {
        "[web] service_email is empty: a message a beneficiary writes in the front office about a \
         dossier without instructor.email or service.email is kept on the dossier but reaches \
         nobody; set it to the instructing service's shared mailbox"
            .to_owned()
    })
}

/// The configuration file and the secret files that every user of the machine
/// may read, each with how to fix it.
fn exposed_files(config: &Config, connectors: &[Connector]) -> Vec<String> {
    let mut files: Vec<(String, &Path)> = Vec::new();
    if let Some(file) = &config.file {
        files.push(("the configuration".to_owned(), file));
    }
    for (key, file) in config.delivery.transport.secret_files() {
        files.push((key.to_owned(), file));
    }
    if let Some(file) = config.inbound.as_ref().and_then(|i| i.secret_file()) {
        files.push(("inbound.password_file".to_owned(), file));
    }
    for c in connectors {
        for (key, file) in c.source.secret_files() {
            files.push((format!("{key} of connector {}", c.name), file));
        }
    }
    let mut warnings: Vec<String> = files
        .into_iter()
        .filter_map(|(what, path)| {
            crate::config::readable_by_others(path).map(|mode| {
                format!(
                    "{} ({what}) is readable by every user of this machine (mode {mode:04o}): chmod o-rwx {}",
                    path.display(),
                    path.display()
                )
            })
        })
        .collect();
    // A connector file is not secret, unless a credential is written in it.
    for c in connectors {
        let inline = c.source.inline_secrets();
        if inline.is_empty() {
            continue;
        }
        if let Some(mode) = crate::config::readable_by_others(&c.file) {
            warnings.push(format!(
                "{} (connector {}) holds a secret ({}) and is readable by every user of this machine (mode {mode:04o}): chmod o-rwx {}, or read the secret from the environment or a file ([source.secret_headers], [source.auth])",
                c.file.display(),
                c.name,
                inline.join(", "),
                c.file.display()
            ));
        }
    }
    warnings
}

/// The drop folders (and archive folders, when files are archived) outside the
/// folders the configuration lives in.
fn folders_outside(config: &Config, connectors: &[Connector]) -> Vec<String> {
    let home = config.file.as_deref().and_then(Path::parent).map(absolute);
    let state = config.store.path.parent().map(absolute);
    let allowed: Vec<PathBuf> = [home, state, Some(PathBuf::from(STATE_DIRECTORY))]
        .into_iter()
        .flatten()
        .collect();
    let shown = allowed
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ");
    let mut warnings = Vec::new();
    for c in connectors {
        let Some(source) = c.source.folder() else {
            continue;
        };
        let outside = |folder: &Path| {
            let folder = absolute(folder);
            (!allowed.iter().any(|a| folder.starts_with(a))).then_some(folder)
        };
        let archives = source.after_import == crate::connector::folder::AfterImport::Archive;
        // The archive folder is only named when the files' folder is not.
        let found = outside(&source.pattern)
            .map(|f| ("[source] path", f))
            .or_else(|| {
                archives
                    .then(|| outside(&source.archive_dir))
                    .flatten()
                    .map(|f| ("[source] archive_dir", f))
            });
        if let Some((key, folder)) = found {
            warnings.push(format!(
                "{}: {key} {} is outside the configuration's folders ({shown}): the packaged service cannot read or archive there unless a drop-in lists it in ReadWritePaths= (systemctl edit alertissimo)",
                c.file.display(),
                folder.display()
            ));
        }
    }
    warnings
}

/// The unsubscribe links of informational messages (when a rule is
/// informational) that lead nowhere, each with how to fix it.
pub(super) fn way_out(config: &Config, informational: bool) -> Vec<String> {
    let Some(url) = config.web.public_url.as_deref().filter(|_| informational) else {
        return Vec::new();
    };
    let mut warnings = Vec::new();
    if config.web.listen.is_none() {
        warnings.push(format!(
            "[web] listen is not set: nothing here serves the unsubscribe links of informational messages ({url}{}/…); set it, and public_url to the address that reaches it",
            crate::dispatch::message::UNSUBSCRIBE_PATH
        ));
    }
    let host = url::Url::parse(url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned));
    if config.delivery.transport.leaves_this_machine()
        && host.is_some_and(|h| crate::secret::is_loopback(&h))
    {
        warnings.push(format!(
            "[web] public_url = \"{url}\" is this machine: the recipients of informational messages cannot open their unsubscribe links; set it to the address people use (the Region's reverse proxy)"
        ));
    }
    warnings
}

/// `[metrics] listen` on an address other machines may reach.
fn exposed_metrics(config: &Config) -> Option<String> {
    let addr = config.metrics_listen?;
    (!addr.ip().is_loopback()).then(|| {
        format!(
            "[metrics] listen = \"{addr}\" is reachable from other machines, and nothing protects /metrics, /healthz and /readyz: prefer \"127.0.0.1:{}\" and a local scraper",
            addr.port()
        )
    })
}

/// `path` made absolute (from the working folder) with `.` and `..` resolved
/// in the text, without touching the disk (the folder may not exist yet).
fn absolute(path: &Path) -> PathBuf {
    let path = std::env::current_dir().map_or_else(|_| path.to_owned(), |cwd| cwd.join(path));
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absolute_resolves_dots_in_the_text() {
        assert_eq!(
            absolute(Path::new("/etc/alertissimo/connectors/../inbox/./*.csv")),
            PathBuf::from("/etc/alertissimo/inbox/*.csv")
        );
    }
}
