//! How an API connector's requests are sent: the client (see [`super::credentials`]),
//! the credentials and headers of every request, retries with backoff on timeouts,
//! connection errors, `5xx` and `429`/`503` (as `Retry-After` says), the errors
//! that end an import at once (`401`, `403`, other `4xx`, an untrusted
//! certificate), the maximum response size, and the `Link` header's next page.
//! Shared by `http_json` and `demarches_simplifiees`.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;
use std::time::Duration;

use reqwest::header::{HeaderName, HeaderValue};
use serde_json::Value;

use super::credentials;
use super::http::Auth;
use crate::secret::{PasswordSource, Secret};

/// The longest wait a `Retry-After` may impose before the import gives up.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);

/// How requests are sent: the client, the credentials, the retries and limits.
pub(crate) struct Fetcher {
    client: reqwest::blocking::Client,
    credentials: Option<(Option<String>, Secret)>,
    headers: BTreeMap<String, String>,
    /// Marked sensitive: never shown, even in debug output.
    secret_headers: Vec<(HeaderName, HeaderValue)>,
    timeout: Duration,
    retries: u32,
    max_response: u64,
}

impl Fetcher {
    /// Reads the secret of `auth` and sets up the client.
    ///
    /// # Errors
    /// A reason naming the secret's key when it cannot be read, or the CA file.
    pub(crate) fn new(
        auth: Option<&Auth>,
        headers: BTreeMap<String, String>,
        secret_headers: &BTreeMap<String, PasswordSource>,
        timeout: Duration,
        retries: u32,
        max_response: u64,
        ca_file: Option<&Path>,
    ) -> Result<Self, String> {
        let credentials = match auth {
            None => None,
            Some(Auth::Bearer(token)) => Some((None, token.read_as("auth.token")?)),
            Some(Auth::Basic(user, password)) => {
                Some((Some(user.clone()), password.read_as("auth.password")?))
            }
        };
        let secret_headers = read_secret_headers(secret_headers)?;
        let sends_secrets = credentials.is_some()
            || !secret_headers.is_empty()
            || headers
                .iter()
                .any(|(name, value)| crate::secret::is_secret_header(name, value));
        Ok(Self {
            client: credentials::client(timeout, ca_file, sends_secrets)?,
            credentials,
            headers,
            secret_headers,
            timeout,
            retries,
            max_response,
        })
    }

    /// One request (a POST of `body` when given, else a GET), tried again on
    /// timeouts, connection errors, `5xx` and `429`; returns the JSON page and the
    /// `rel="next"` address of its `Link` header.
    ///
    /// # Errors
    /// A reason naming the address: `401`, `403`, other `4xx`, still failing after
    /// the retries, too large, not JSON.
    pub(crate) fn send(
        &self,
        url: &reqwest::Url,
        body: Option<String>,
    ) -> Result<(Value, Option<reqwest::Url>), String> {
        let mut attempt = 0u32;
        loop {
            let (wait, reason) = match self.request(url, body.as_ref()).send() {
                Ok(response) if response.status().is_success() => {
                    let link = next_link(&response);
                    let body = self.read_body(url, response)?;
                    let page = serde_json::from_slice(&body)
                        .map_err(|e| format!("{url}: the response is not valid JSON ({e})"))?;
                    return Ok((page, link));
                }
                Ok(response) => {
                    let status = response.status().to_string();
                    (refused_status(url, response, attempt)?, status)
                }
                Err(e) => self.request_failed(url, &e, attempt)?,
            };
            if attempt >= self.retries {
                return Err(format!(
                    "{url}: still failing after {} attempts ({reason}); the import is tried again at the next tick",
                    attempt + 1
                ));
            }
            tracing::warn!(url = %url, attempt = attempt + 1, wait_ms = wait.as_millis() as u64, reason = %reason, "Request failed; trying again.");
            std::thread::sleep(wait);
            attempt += 1;
        }
    }

    /// A request (a POST of `body` when given, else a GET) with every header.
    fn request(
        &self,
        url: &reqwest::Url,
        body: Option<&String>,
    ) -> reqwest::blocking::RequestBuilder {
        let mut request = match body {
            Some(body) => self
                .client
                .post(url.clone())
                .header("Content-Type", "application/json")
                .body(body.clone()),
            None => self.client.get(url.clone()),
        };
        request = request.header("Accept", "application/json");
        for (name, value) in &self.headers {
            request = request.header(name, value);
        }
        for (name, value) in &self.secret_headers {
            request = request.header(name.clone(), value.clone());
        }
        match &self.credentials {
            None => request,
            Some((None, token)) => request.bearer_auth(&token.0),
            Some((Some(user), password)) => request.basic_auth(user, Some(&password.0)),
        }
    }

    /// A request that got no answer: how long to wait before trying again and
    /// why, or the reason to give up now (a timeout after the retries, a
    /// certificate that is not trusted, a redirect not followed).
    fn request_failed(
        &self,
        url: &reqwest::Url,
        e: &reqwest::Error,
        attempt: u32,
    ) -> Result<(Duration, String), String> {
        if e.is_timeout() {
            if attempt >= self.retries {
                return Err(format!(
                    "{url}: no answer within {} s ({} attempts)",
                    self.timeout.as_secs(),
                    attempt + 1
                ));
            }
            return Ok((backoff(attempt), "no answer".to_owned()));
        }
        if let Some(problem) = credentials::certificate_problem(e) {
            return Err(format!(
                "{url}: the server's TLS certificate is not trusted ({problem}); if a private CA signed it, set ca_file in [source] to that CA's PEM file"
            ));
        }
        let reason = credentials::describe(e);
        if e.is_connect() || e.is_request() {
            Ok((backoff(attempt), reason))
        } else {
            Err(format!("{url}: {reason}"))
        }
    }

    fn read_body(
        &self,
        url: &reqwest::Url,
        response: reqwest::blocking::Response,
    ) -> Result<Vec<u8>, String> {
        let max = self.max_response;
        let too_large = || {
            format!(
                "{url}: the response is larger than {} MB (max_response_mb)",
                max / 1024 / 1024
            )
        };
        if response.content_length().is_some_and(|n| n > max) {
            return Err(too_large());
        }
        let mut body = Vec::new();
        response
            .take(max + 1)
            .read_to_end(&mut body)
            .map_err(|e| format!("{url}: the response was cut: {e}"))?;
        if body.len() as u64 > max {
            return Err(too_large());
        }
        Ok(body)
    }
}

/// Reads the values of `[source.secret_headers]`, marked sensitive.
fn read_secret_headers(
    sources: &BTreeMap<String, PasswordSource>,
) -> Result<Vec<(HeaderName, HeaderValue)>, String> {
    sources
        .iter()
        .map(|(name, source)| {
            let setting = format!("[source.secret_headers] '{name}'");
            let secret = source.read_for(&setting)?;
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| format!("{setting} is not a valid header name"))?;
            let mut value = HeaderValue::from_str(&secret.0).map_err(|_| {
                format!(
                    "{setting}: the value read is not a valid header value (a line break inside?)"
                )
            })?;
            value.set_sensitive(true);
            Ok((name, value))
        })
        .collect()
}

/// An answer that is not a success: how long to wait before trying again (`429`
/// and `503` as `Retry-After` says, `5xx`), or the reason to give up now.
fn refused_status(
    url: &reqwest::Url,
    response: reqwest::blocking::Response,
    attempt: u32,
) -> Result<Duration, String> {
    let status = response.status();
    let retry_after = response
        .headers()
        .get("Retry-After")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    let text = response
        .text()
        .unwrap_or_default()
        .chars()
        .take(300)
        .collect::<String>();
    match status.as_u16() {
        401 => Err(format!(
            "{url}: 401 Unauthorized: the credentials were refused (expired or wrong token?) {text}"
        )),
        403 => Err(format!(
            "{url}: 403 Forbidden: the credentials do not give access (missing rights, or this server's address is not allowed) {text}"
        )),
        429 | 503 => match retry_after {
            Some(wait) if wait > MAX_RETRY_AFTER => Err(format!(
                "{url}: {status}: the server asks to wait {} s, longer than {} s; the import is tried again at the next tick",
                wait.as_secs(),
                MAX_RETRY_AFTER.as_secs()
            )),
            Some(wait) => Ok(wait),
            None => Ok(backoff(attempt)),
        },
        500..=599 => Ok(backoff(attempt)),
        _ => Err(format!("{url}: {status} {text}")),
    }
}

fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(500u64.saturating_mul(1 << attempt.min(6)))
}

/// The `rel="next"` address of a `Link` header.
fn next_link(response: &reqwest::blocking::Response) -> Option<reqwest::Url> {
    let header = response.headers().get("Link")?.to_str().ok()?;
    header.split(',').find_map(|part| {
        let (target, params) = part.split_once(';')?;
        let is_next = params
            .split(';')
            .any(|p| p.trim().replace(' ', "") == "rel=\"next\"" || p.trim() == "rel=next");
        let target = target.trim().strip_prefix('<')?.strip_suffix('>')?;
        // Credentials go with the next page: only to the same server.
        is_next
            .then(|| response.url().join(target).ok())
            .flatten()
            .filter(|next| next.origin() == response.url().origin())
    })
}
