//! What an API connector (`http_json`, `demarches_simplifiees`) sends that must
//! stay secret, and how it is kept so.
//!
//! Owns the header secrets read from the environment or a file
//! (`[source.secret_headers]`), the refusal of credentials in clear (plain
//! `http://` to another machine without `allow_insecure = true`), the credentials
//! written in a connector file itself (which `check` warns about when the file is
//! readable by every user), and the HTTP client: rustls with the system's roots
//! plus `ca_file`, no redirect to another server while credentials go with the
//! requests, and certificate problems named.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use crate::diag::FileProblems;
use crate::secret;
use crate::secret::PasswordSource;

/// One value of `[source.secret_headers]`: `{ env = "VAR" }` or `{ file = "path" }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct HeaderSecretDef {
    #[serde(default)]
    env: Option<String>,
    #[serde(default)]
    file: Option<String>,
}

/// Validates `[source.secret_headers]`: valid header names, not also in
/// `[source.headers]`, each read from exactly one of `env` or `file`.
pub(crate) fn secret_headers(
    defs: BTreeMap<String, HeaderSecretDef>,
    headers: &BTreeMap<String, String>,
    base: &Path,
    fp: &mut FileProblems<'_>,
) -> BTreeMap<String, PasswordSource> {
    let mut valid = BTreeMap::new();
    for (name, def) in defs {
        if reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_err() {
            fp.file(format!(
                "[source.secret_headers] '{name}' is not a valid header name"
            ));
            continue;
        }
        if headers.keys().any(|h| h.eq_ignore_ascii_case(&name)) {
            fp.file(format!(
                "[source.secret_headers] '{name}' is also in [source.headers]: give it once"
            ));
        }
        match (def.env, def.file) {
            (Some(var), None) => {
                valid.insert(name, PasswordSource::Env(var));
            }
            (None, Some(file)) => {
                valid.insert(name, PasswordSource::File(base.join(file)));
            }
            _ => fp.file(format!(
                "[source.secret_headers] '{name}' gives exactly one of env (an environment variable) or file (a file, such as a systemd credential)"
            )),
        }
    }
    valid
}

/// The credentials written in the connector file itself, as messages name them
/// (never their values): `[source.headers]` that carry one (by name, such as
/// `X-Api-Key`, or by value, such as `Bearer …`), a password in `url`, query
/// parameters of `url` named like a credential (`api_key`, `access_token`…).
pub(crate) fn inline_secrets(
    url: &reqwest::Url,
    headers: &BTreeMap<String, String>,
) -> Vec<String> {
    let mut found: Vec<String> = headers
        .iter()
        .filter(|(name, value)| secret::is_secret_header(name, value))
        .map(|(name, _)| format!("header '{name}' in [source.headers]"))
        .collect();
    if url.password().is_some() {
        found.push("the password in url".to_owned());
    }
    found.extend(
        url.query_pairs()
            .filter(|(name, _)| secret::is_secret_name(name))
            .map(|(name, _)| format!("query parameter '{name}' in url")),
    );
    found
}

/// Refuses `sent` (the credentials a source sends, as messages name them) going
/// in clear: `url` (the setting `key`) is plain `http://` to another machine
/// than this one, and the connector does not say `allow_insecure = true`.
pub(crate) fn refuse_cleartext(
    url: &reqwest::Url,
    key: &str,
    sent: &[String],
    allow_insecure: bool,
    fp: &mut FileProblems<'_>,
) {
    let host = url.host_str().unwrap_or_default();
    if url.scheme() != "http" || sent.is_empty() || allow_insecure || secret::is_loopback(host) {
        return;
    }
    fp.file(format!(
        "[source] {key} is plain http:// to {host}: {} would cross the network in clear; use https://, or set allow_insecure = true in [source] if the network to {host} is trusted",
        sent.join(", ")
    ));
}

/// An HTTP client: rustls with the system's roots and the CA file's. While
/// `credentials` go with the requests, a redirect to another server (another
/// scheme, host or port) is not followed: they would go with it.
pub(crate) fn client(
    timeout: Duration,
    ca_file: Option<&Path>,
    credentials: bool,
) -> Result<reqwest::blocking::Client, String> {
    let tls = crate::secret::tls_client(ca_file, "ca_file")?;
    let mut builder = reqwest::blocking::Client::builder()
        .tls_backend_preconfigured(tls)
        .timeout(timeout)
        .user_agent(concat!("alertissimo/", env!("CARGO_PKG_VERSION")));
    if credentials {
        builder = builder.redirect(reqwest::redirect::Policy::custom(same_server_only));
    }
    builder
        .build()
        .map_err(|e| format!("cannot set up the HTTP client: {e}"))
}

fn same_server_only(attempt: reqwest::redirect::Attempt<'_>) -> reqwest::redirect::Action {
    let from = attempt.previous().last().map(reqwest::Url::origin);
    if attempt.previous().len() > 10 {
        attempt.error("more than 10 redirects")
    } else if from.is_some_and(|from| from != attempt.url().origin()) {
        let to = attempt.url().origin().ascii_serialization();
        attempt.error(format!(
            "the server redirects to another server ({to}), where the credentials would go: not followed; set the connector's address to that server if it is the API's"
        ))
    } else {
        attempt.follow()
    }
}

/// The certificate problem behind a failed request, if it is one (an unknown
/// issuer, an expired certificate, a name that does not match…).
pub(crate) fn certificate_problem(error: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut next = Some(error);
    while let Some(e) = next {
        if let Some(tls @ rustls::Error::InvalidCertificate(_)) = rustls_error(e) {
            return Some(tls.to_string());
        }
        next = e.source();
    }
    None
}

/// The rustls error `error` is, or that it wraps in I/O errors (the TLS stream
/// wraps it once, the connector again).
fn rustls_error<'a>(error: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    if let Some(tls) = error.downcast_ref::<rustls::Error>() {
        return Some(tls);
    }
    let inner = error.downcast_ref::<std::io::Error>()?.get_ref()?;
    rustls_error(inner)
}

/// An error and its causes, joined by `: `.
pub(crate) fn describe(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut next = error.source();
    while let Some(e) = next {
        let cause = e.to_string();
        if !text.contains(&cause) {
            text.push_str(": ");
            text.push_str(&cause);
        }
        next = e.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inline_secrets_are_named_without_their_values() {
        let url = reqwest::Url::parse("https://u:pw@api.example.org/x?page=1&api_key=abc").unwrap();
        let headers = BTreeMap::from([
            ("X-Api-Key".to_owned(), "abc".to_owned()),
            ("X-Api-Version".to_owned(), "2".to_owned()),
            ("X-Custom".to_owned(), "Bearer abc".to_owned()),
        ]);
        let found = inline_secrets(&url, &headers);
        assert_eq!(
            found,
            [
                "header 'X-Api-Key' in [source.headers]",
                "header 'X-Custom' in [source.headers]",
                "the password in url",
                "query parameter 'api_key' in url",
            ]
        );
        assert!(
            found
                .iter()
                .all(|f| !f.contains("abc") && !f.contains("pw"))
        );
    }
}
