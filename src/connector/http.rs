//! The `http_json` kind: dossiers read from an HTTP JSON API, page by page.
//!
//! Owns what is specific to this kind: the request as written (GET or POST,
//! headers, `[source.secret_headers]` and a bearer token or basic credentials read
//! from the environment or a file at each import, `allow_insecure`), pagination
//! (page number, offset, cursor, or the `Link` header), the record array and field
//! paths (JSON pointers), and incremental polling (an `updated_since` parameter
//! fed with the start of the last applied import). Requests go through
//! `super::fetch` (timeouts, retries, `Retry-After`, a maximum response size)
//! and `super::credentials` (no credential in clear, TLS with the system roots
//! plus `ca_file`). [`HttpTable`] hands the records over one by one to
//! [`super::spool`], which keeps them on disk until they are imported: memory
//! holds one page, whatever the number of dossiers.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use super::Mode;
use super::credentials::{self, HeaderSecretDef};
use super::fetch::Fetcher;
use super::mapping::Mapping;
use super::parse::Common;
use super::source::{ApiSource, Reads, Source, SourceKind};
use super::spool::{Live, SyncStart};
use super::table::{NamedColumns, Record};
use crate::diag::FileProblems;
use crate::model::SourceMessage;
use crate::secret::PasswordSource;

/// The longest `timeout` of one request (issue 17, item 20).
pub(crate) const MAX_TIMEOUT: Duration = Duration::from_secs(3_600);
/// The range of `max_response_mb`: in bytes, 4096 MB still fits every counter
/// (issue 17, item 20: a huge value overflowed).
const MAX_RESPONSE_MB: std::ops::RangeInclusive<u64> = 1..=4096;

/// The `[source]` table of an `http_json` connector, as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct HttpSourceDef {
    url: String,
    #[serde(default)]
    method: Option<String>,
    #[serde(default)]
    body: Option<String>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    #[serde(default)]
    auth: Option<AuthDef>,
    records: String,
    #[serde(default)]
    pagination: Option<PaginationDef>,
    #[serde(default)]
    updated_since: Option<String>,
    #[serde(default)]
    timeout: Option<String>,
    #[serde(default)]
    retries: Option<u32>,
    #[serde(default)]
    max_response_mb: Option<u64>,
    #[serde(default)]
    ca_file: Option<String>,
    #[serde(default)]
    secret_headers: BTreeMap<String, HeaderSecretDef>,
    #[serde(default)]
    allow_insecure: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, tag = "kind", rename_all = "snake_case")]
enum AuthDef {
    Bearer {
        token_env: Option<String>,
        token_file: Option<String>,
    },
    Basic {
        username: String,
        password_env: Option<String>,
        password_file: Option<String>,
    },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, tag = "kind", rename_all = "snake_case")]
enum PaginationDef {
    None,
    Page {
        #[serde(default = "default_page_param")]
        param: String,
        #[serde(default)]
        size_param: Option<String>,
        #[serde(default)]
        size: Option<u64>,
        #[serde(default = "one")]
        start: u64,
    },
    Offset {
        #[serde(default = "default_offset_param")]
        param: String,
        #[serde(default = "default_limit_param")]
        size_param: String,
        #[serde(default = "default_size")]
        size: u64,
    },
    Cursor {
        #[serde(default = "default_cursor_param")]
        param: String,
        next: String,
    },
    Link,
}

fn default_page_param() -> String {
    "page".to_owned()
}
fn default_offset_param() -> String {
    "offset".to_owned()
}
fn default_limit_param() -> String {
    "limit".to_owned()
}
fn default_cursor_param() -> String {
    "cursor".to_owned()
}
fn default_size() -> u64 {
    100
}
fn one() -> u64 {
    1
}

/// How a request authenticates.
#[derive(Debug, Clone)]
pub(crate) enum Auth {
    /// `Authorization: Bearer <token>`.
    Bearer(PasswordSource),
    /// `Authorization: Basic …`.
    Basic(String, PasswordSource),
}

/// How pages follow each other.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Pagination {
    /// One request.
    None,
    /// `param` = 1, 2, 3… (with `size_param` = `size` when given), until a short or empty page.
    Page {
        /// The page number's parameter.
        param: String,
        /// The page size's parameter and value.
        size: Option<(String, u64)>,
        /// The first page number.
        start: u64,
    },
    /// `param` = 0, size, 2 × size…, `size_param` = size, until a short or empty page.
    Offset {
        /// The offset's parameter.
        param: String,
        /// The page size's parameter.
        size_param: String,
        /// The page size.
        size: u64,
    },
    /// `param` = the value at the pointer `next` of the previous page, until it is missing.
    Cursor {
        /// The cursor's parameter.
        param: String,
        /// Where the next cursor is, in a page.
        next: String,
    },
    /// The `Link: <…>; rel="next"` header of each page.
    Link,
}

/// A validated `http_json` source.
#[derive(Debug, Clone)]
pub(crate) struct HttpSource {
    /// The address of the first page.
    pub url: reqwest::Url,
    /// Whether requests are POST (with `body`) rather than GET.
    pub post: bool,
    /// The JSON body of POST requests.
    pub body: Option<String>,
    /// Extra request headers.
    pub headers: BTreeMap<String, String>,
    /// Extra request headers whose values are secrets, read at each import from
    /// the environment or a file (`[source.secret_headers]`), never logged.
    pub secret_headers: BTreeMap<String, PasswordSource>,
    /// Credentials written in the connector file itself, as messages name them
    /// (`check` warns when the file is readable by every user).
    pub inline_secrets: Vec<String>,
    /// Authentication.
    pub auth: Option<Auth>,
    /// The JSON pointer of the records' array in a page.
    pub records: String,
    /// How pages follow each other.
    pub pagination: Pagination,
    /// The query parameter that asks for the records changed since the last import.
    pub updated_since: Option<String>,
    /// The timeout of one request.
    pub timeout: Duration,
    /// How many times a failed request is tried again.
    pub retries: u32,
    /// The largest response accepted, in bytes.
    pub max_response: u64,
    /// An extra CA certificate file (PEM) trusted besides the system's.
    pub ca_file: Option<PathBuf>,
}

/// Reads the `{key}_env` and `{key}_file` settings of `table`: exactly one.
pub(crate) fn secret(
    env: Option<String>,
    file: Option<String>,
    (table, key): (&str, &str),
    base: &Path,
    fp: &mut FileProblems<'_>,
) -> Option<PasswordSource> {
    match (env, file) {
        (Some(var), None) => Some(PasswordSource::Env(var)),
        (None, Some(file)) => Some(PasswordSource::File(base.join(file))),
        _ => {
            fp.file(format!(
                "{table} give exactly one of {key}_env (an environment variable) or {key}_file (a file, such as a systemd credential)"
            ));
            None
        }
    }
}

/// Reads a `timeout` setting (default 30 s, at most [`MAX_TIMEOUT`]).
pub(crate) fn timeout(value: Option<&str>, fp: &mut FileProblems<'_>) -> Duration {
    match value.map(|v| crate::diag::parse_duration_at_most(v, MAX_TIMEOUT)) {
        None => Duration::from_secs(30),
        Some(Ok(d)) if !d.is_zero() => d,
        Some(Ok(_)) => {
            fp.file("[source] timeout must be above 0");
            Duration::from_secs(30)
        }
        Some(Err(reason)) => {
            fp.file(format!("[source] timeout: {reason}"));
            Duration::from_secs(30)
        }
    }
}

impl SourceKind for HttpSource {
    const NAME: &'static str = "http_json";
    type Settings = HttpSourceDef;

    fn validate(def: HttpSourceDef, base: &Path, fp: &mut FileProblems<'_>) -> Option<Self> {
        let before = fp.count();
        let url = match reqwest::Url::parse(&def.url) {
            Ok(u) if matches!(u.scheme(), "http" | "https") => Some(u),
            Ok(_) | Err(_) => {
                fp.file(format!(
                    "[source] url '{}' is not an http:// or https:// address",
                    def.url
                ));
                None
            }
        };
        let post = match def
            .method
            .as_deref()
            .map(str::to_ascii_uppercase)
            .as_deref()
        {
            None | Some("GET") => false,
            Some("POST") => true,
            Some(other) => {
                fp.file(format!(
                    "[source] method '{other}' must be \"GET\" or \"POST\""
                ));
                false
            }
        };
        if let Some(body) = &def.body {
            if !post {
                fp.file("[source] body is only sent with method = \"POST\"");
            } else if let Err(e) = serde_json::from_str::<Value>(body) {
                fp.file(format!("[source] body is not JSON: {e}"));
            }
        }
        let auth = match def.auth {
            None => None,
            Some(AuthDef::Bearer {
                token_env,
                token_file,
            }) => secret(token_env, token_file, ("[source.auth]", "token"), base, fp)
                .map(Auth::Bearer),
            Some(AuthDef::Basic {
                username,
                password_env,
                password_file,
            }) => secret(
                password_env,
                password_file,
                ("[source.auth]", "password"),
                base,
                fp,
            )
            .map(|p| Auth::Basic(username, p)),
        };
        if !(def.records.is_empty() || def.records.starts_with('/')) {
            fp.file(format!(
                "[source] records '{}' must be a JSON pointer such as \"/data\" (or \"\" for a page that is the array)",
                def.records
            ));
        }
        let pagination = pagination(def.pagination, fp);
        let timeout = timeout(def.timeout.as_deref(), fp);
        let max_response_mb = def.max_response_mb.unwrap_or(50);
        if !MAX_RESPONSE_MB.contains(&max_response_mb) {
            fp.file(format!(
                "[source] max_response_mb {max_response_mb} must be between {} and {}",
                MAX_RESPONSE_MB.start(),
                MAX_RESPONSE_MB.end()
            ));
        }
        let ca_file = def.ca_file.map(|f| base.join(f));
        let secret_headers =
            credentials::secret_headers(def.secret_headers, &def.headers, base, fp);
        let url = url?;
        let inline_secrets = credentials::inline_secrets(&url, &def.headers);
        let sent = sent_credentials(auth.as_ref(), &secret_headers, &inline_secrets);
        credentials::refuse_cleartext(&url, "url", &sent, def.allow_insecure, fp);
        (fp.count() == before).then_some(Self {
            url,
            post,
            body: def.body,
            headers: def.headers,
            secret_headers,
            inline_secrets,
            auth,
            records: def.records,
            pagination,
            updated_since: def.updated_since,
            timeout,
            retries: def.retries.unwrap_or(3),
            max_response: max_response_mb.saturating_mul(1024 * 1024),
            ca_file,
        })
    }

    /// `updated_since` asks for the dossiers that changed only.
    fn settle(source: Option<&Self>, common: &mut Common, fp: &mut FileProblems<'_>) {
        if source.is_some_and(|s| s.updated_since.is_some()) && common.mode != Mode::Incremental {
            fp.file("[source] updated_since asks only for the dossiers that changed: set mode = \"incremental\"");
        }
    }
}

impl Source for HttpSource {
    fn reads(&self) -> Reads<'_> {
        Reads::Api(self)
    }

    fn check_secrets(&self) -> Result<(), String> {
        match &self.auth {
            Some(Auth::Bearer(token)) => token.read_as("auth.token").map(drop)?,
            Some(Auth::Basic(_, password)) => password.read_as("auth.password").map(drop)?,
            None => {}
        }
        self.secret_headers.iter().try_for_each(|(name, value)| {
            value
                .read_for(&format!("[source.secret_headers] '{name}'"))
                .map(drop)
        })
    }

    fn secret_files(&self) -> Vec<(String, &Path)> {
        let mut files = Vec::new();
        match &self.auth {
            Some(Auth::Bearer(token)) => files.push(("auth.token_file".to_owned(), token.file())),
            Some(Auth::Basic(_, password)) => {
                files.push(("auth.password_file".to_owned(), password.file()));
            }
            None => {}
        }
        for (name, value) in &self.secret_headers {
            files.push((format!("secret_headers '{name}'"), value.file()));
        }
        files
            .into_iter()
            .filter_map(|(key, file)| file.map(|f| (key, f)))
            .collect()
    }

    fn inline_secrets(&self) -> &[String] {
        &self.inline_secrets
    }
}

impl ApiSource for HttpSource {
    fn address(&self) -> String {
        self.url.to_string()
    }

    /// Pages asked from the start of the last applied import (`updated_since`).
    fn open(&self, start: SyncStart<'_>) -> Result<Box<dyn Live>, String> {
        Ok(Box::new(HttpTable::open(self, start.state.last_start)?))
    }
}

/// Validates `[source.pagination]` (none when left out).
fn pagination(def: Option<PaginationDef>, fp: &mut FileProblems<'_>) -> Pagination {
    match def {
        None | Some(PaginationDef::None) => Pagination::None,
        Some(PaginationDef::Page {
            param,
            size_param,
            size,
            start,
        }) => Pagination::Page {
            param,
            size: match (size_param, size) {
                (Some(p), Some(s)) if s > 0 => Some((p, s)),
                (None, None) => None,
                _ => {
                    fp.file("[source.pagination] size_param and size (above 0) go together");
                    None
                }
            },
            start,
        },
        Some(PaginationDef::Offset {
            param,
            size_param,
            size,
        }) => {
            if size == 0 {
                fp.file("[source.pagination] size must be above 0");
            }
            Pagination::Offset {
                param,
                size_param,
                size,
            }
        }
        Some(PaginationDef::Cursor { param, next }) => {
            if !next.starts_with('/') {
                fp.file(format!(
                    "[source.pagination] next '{next}' must be a JSON pointer such as \"/meta/next_cursor\""
                ));
            }
            Pagination::Cursor { param, next }
        }
        Some(PaginationDef::Link) => Pagination::Link,
    }
}

/// The credentials requests carry, as messages name them (never their values).
fn sent_credentials(
    auth: Option<&Auth>,
    secret_headers: &BTreeMap<String, PasswordSource>,
    inline_secrets: &[String],
) -> Vec<String> {
    let mut sent = Vec::new();
    match auth {
        Some(Auth::Bearer(_)) => sent.push("the bearer token of [source.auth]".to_owned()),
        Some(Auth::Basic(..)) => sent.push("the password of [source.auth]".to_owned()),
        None => {}
    }
    sent.extend(
        secret_headers
            .keys()
            .map(|name| format!("header '{name}' of [source.secret_headers]")),
    );
    sent.extend(inline_secrets.iter().cloned());
    sent
}

/// JSON records as rows whose columns are the JSON pointers a mapping names.
pub(crate) struct JsonRows {
    /// The columns: the pointers the mapping names.
    pub columns: NamedColumns,
    current: csv::ByteRecord,
    number: u64,
    shown: String,
}

impl JsonRows {
    /// The columns of `mapping`; `shown` names the source in messages.
    pub(crate) fn new(mapping: &Mapping, shown: String) -> Self {
        Self {
            columns: NamedColumns::of(mapping),
            current: csv::ByteRecord::new(),
            number: 0,
            shown,
        }
    }

    /// The source, as messages name it.
    pub(crate) fn shown(&self) -> &str {
        &self.shown
    }

    /// The row of one record; `offset` tells progress how far the reading is.
    pub(crate) fn row(&mut self, record: &Value, offset: u64) -> Record<'_> {
        if self.columns.wants_names() {
            collect_pointers(record, String::new(), &mut self.columns);
        }
        self.current.clear();
        let mut text = String::new();
        for i in 0..self.columns.headers.len() {
            text.clear();
            if let Some(value) = record.pointer(&self.columns.headers[i]) {
                if !value.is_null() {
                    self.columns.found(i);
                }
                value_text(value, &mut text);
            }
            self.current.push_field(text.trim().as_bytes());
        }
        self.number += 1;
        Record::new(self.number, self.number, &self.current, offset)
    }

    /// After the last record: the mapped pointers that no record had, each named
    /// with the closest pointer the records do have.
    pub(crate) fn vanished(&self, mapping: &Mapping) -> Vec<String> {
        if self.number == 0 {
            return Vec::new();
        }
        self.columns
            .vanished(mapping, &self.shown, "record", "pointer")
    }
}

/// Where the next page is.
enum Next {
    /// A page number or offset.
    Number(u64),
    /// A cursor.
    Cursor(Option<String>),
    /// An address.
    Url(reqwest::Url),
    /// No more pages.
    Done,
}

/// The records of an API, fetched page by page as they are read.
pub(crate) struct HttpTable {
    fetcher: Fetcher,
    source: HttpSource,
    since: Option<String>,
    next: Next,
    page: std::vec::IntoIter<Value>,
    pages: u64,
    /// A hash of the last page's records, to notice a page sent again.
    last_page: Option<u64>,
}

impl HttpTable {
    /// Prepares the reading of an API; `since` is the instant of the last applied
    /// import (RFC 3339), for incremental polling.
    ///
    /// # Errors
    /// A reason when a secret cannot be read or the client cannot be set up.
    pub(crate) fn open(source: &HttpSource, since: Option<String>) -> Result<Self, String> {
        let fetcher = Fetcher::new(
            source.auth.as_ref(),
            source.headers.clone(),
            &source.secret_headers,
            source.timeout,
            source.retries,
            source.max_response,
            source.ca_file.as_deref(),
        )?;
        let next = match &source.pagination {
            Pagination::None | Pagination::Link => Next::Url(source.url.clone()),
            Pagination::Page { start, .. } => Next::Number(*start),
            Pagination::Offset { .. } => Next::Number(0),
            Pagination::Cursor { .. } => Next::Cursor(None),
        };
        Ok(Self {
            fetcher,
            source: source.clone(),
            since: since.filter(|_| source.updated_since.is_some()),
            next,
            page: Vec::new().into_iter(),
            pages: 0,
            last_page: None,
        })
    }

    /// Fetches the next page into `self.page`; false when there is none.
    fn fetch_next(&mut self) -> Result<bool, String> {
        let mut url = match &self.next {
            Next::Done => return Ok(false),
            Next::Url(u) => u.clone(),
            Next::Number(_) | Next::Cursor(_) => self.source.url.clone(),
        };
        {
            let mut query = url.query_pairs_mut();
            match (&self.source.pagination, &self.next) {
                (Pagination::Page { param, size, .. }, Next::Number(n)) => {
                    query.append_pair(param, &n.to_string());
                    if let Some((p, s)) = size {
                        query.append_pair(p, &s.to_string());
                    }
                }
                (
                    Pagination::Offset {
                        param,
                        size_param,
                        size,
                    },
                    Next::Number(n),
                ) => {
                    query.append_pair(param, &n.to_string());
                    query.append_pair(size_param, &size.to_string());
                }
                (Pagination::Cursor { param, .. }, Next::Cursor(Some(c))) => {
                    query.append_pair(param, c);
                }
                _ => {}
            }
            // The link of a `Link` header already carries its parameters.
            if let (Some(param), Some(since)) = (&self.source.updated_since, &self.since)
                && !(matches!(self.next, Next::Url(_)) && self.pages > 0)
            {
                query.append_pair(param, since);
            }
        }
        let url = strip_empty_query(url);
        let body = self
            .source
            .post
            .then(|| self.source.body.clone().unwrap_or_default());
        let (page, link) = self.fetcher.send(&url, body)?;
        self.pages += 1;
        let records = match page.pointer(&self.source.records) {
            Some(Value::Array(records)) => records.clone(),
            Some(Value::Null) | None if self.source.records.is_empty() => Vec::new(),
            Some(other) => {
                return Err(format!(
                    "{url}: the records at '{}' are {}, not an array",
                    self.source.records,
                    kind_of(other)
                ));
            }
            None => {
                return Err(format!(
                    "{url}: no records at '{}' in the page (is `records` right?)",
                    self.source.records
                ));
            }
        };
        let count = records.len() as u64;
        // A server that ignores the paging parameter sends the same page forever.
        // Serialising a list of values cannot fail.
        let fingerprint =
            xxhash_rust::xxh3::xxh3_64(&serde_json::to_vec(&records).unwrap_or_default());
        if count > 0 && self.last_page == Some(fingerprint) {
            return Err(format!(
                "{url}: the same records as the page before: does the API read the paging parameter (see [source.pagination])?"
            ));
        }
        self.last_page = Some(fingerprint);
        self.next = match (&self.source.pagination, &self.next) {
            (Pagination::None, _) => Next::Done,
            (Pagination::Page { size, .. }, Next::Number(n)) => {
                if count == 0 || size.as_ref().is_some_and(|(_, s)| count < *s) {
                    Next::Done
                } else {
                    Next::Number(n.saturating_add(1))
                }
            }
            (Pagination::Offset { size, .. }, Next::Number(n)) => {
                if count < *size {
                    Next::Done
                } else {
                    Next::Number(n.saturating_add(count))
                }
            }
            (Pagination::Cursor { next, .. }, _) => match page.pointer(next) {
                Some(Value::String(c)) if !c.is_empty() && count > 0 => {
                    Next::Cursor(Some(c.clone()))
                }
                Some(Value::Number(c)) if count > 0 => Next::Cursor(Some(c.to_string())),
                _ => Next::Done,
            },
            (Pagination::Link, _) => match link {
                Some(next) => Next::Url(next),
                None => Next::Done,
            },
            _ => Next::Done,
        };
        self.page = records.into_iter();
        Ok(true)
    }
}

impl Live for HttpTable {
    /// The next record, fetching the next page when this one is read; a reason
    /// naming the page's address: an HTTP error, a timeout after the retries, a
    /// response too large, a page that is not the expected JSON.
    fn next(&mut self) -> Result<Option<(Value, Vec<SourceMessage>)>, String> {
        loop {
            if let Some(record) = self.page.next() {
                return Ok(Some((record, Vec::new())));
            }
            if !self.fetch_next()? {
                return Ok(None);
            }
        }
    }

    fn pages(&self) -> u64 {
        self.pages
    }
}

fn strip_empty_query(mut url: reqwest::Url) -> reqwest::Url {
    if url.query() == Some("") {
        url.set_query(None);
    }
    url
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The text the value parsers read: strings as they are, numbers as written,
/// lists of texts joined by `; ` (an e-mail list), other structures as JSON.
fn value_text(value: &Value, out: &mut String) {
    match value {
        Value::Null => {}
        Value::String(s) => out.push_str(s),
        Value::Number(n) => out.push_str(&n.to_string()),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Array(items) if items.iter().all(|i| !i.is_array() && !i.is_object()) => {
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str("; ");
                }
                value_text(item, out);
            }
        }
        other => out.push_str(&other.to_string()),
    }
}

fn collect_pointers(value: &Value, prefix: String, into: &mut NamedColumns) {
    if !into.wants_names() {
        return;
    }
    if let Value::Object(map) = value {
        for (key, child) in map {
            let pointer = format!("{prefix}/{}", key.replace('~', "~0").replace('/', "~1"));
            into.saw(&pointer);
            collect_pointers(child, pointer, into);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_become_text() {
        let text = |v: Value| {
            let mut out = String::new();
            value_text(&v, &mut out);
            out
        };
        assert_eq!(
            text(serde_json::json!(21060004500392_u64)),
            "21060004500392"
        );
        assert_eq!(text(serde_json::json!(8500.5)), "8500.5");
        assert_eq!(
            text(serde_json::json!(["a@x.fr", "b@y.fr"])),
            "a@x.fr; b@y.fr"
        );
        assert_eq!(text(serde_json::json!(null)), "");
        assert_eq!(text(serde_json::json!({"a": 1})), "{\"a\":1}");
    }
}
