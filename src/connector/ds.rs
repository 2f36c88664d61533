//! The `demarches_simplifiees` kind: dossiers of one or more démarches read from
//! the Démarches Simplifiées (Démarche Numérique) GraphQL API v2.
//!
//! Owns the GraphQL queries ([`DOSSIERS_QUERY`], [`DELETED_QUERY`], checked against
//! DS's published schema by the tests), the incremental synchronisation as DS
//! recommends it (a fixed `updatedSince`, the last `endCursor` kept as an opaque
//! token and never replaced by a null, deletions read from `deletedDossiers`), the
//! shape of each dossier as the connector's `[fields]` see it (demandeur as a
//! company or a person, the date the dossier entered its state), and DS's errors:
//! HTTP 401 and 403, and `errors[].extensions.code = "unauthorized"` in a 200.
//! Requests go through the `http_json` machinery (timeouts, retries, `Retry-After`).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::FileProblems;
use super::credentials;
use super::fetch::Fetcher;
use super::http::{self, Auth};
use crate::config::PasswordSource;
use crate::model::SourceMessage;

/// The dossiers of a démarche changed since `updatedSince`, 100 at a time.
pub const DOSSIERS_QUERY: &str = r"query alertissimoDossiers($demarche: Int!, $after: String, $updatedSince: ISO8601DateTime) {
  demarche(number: $demarche) {
    number
    title
    dossiers(first: 100, after: $after, updatedSince: $updatedSince) {
      pageInfo { hasNextPage endCursor }
      nodes {
        number
        state
        dateDepot
        datePassageEnInstruction
        dateTraitement
        dateDerniereModification
        usager { email }
        instructeurs { email }
        demandeur {
          __typename
          ... on PersonneMorale { siret entreprise { raisonSociale } }
          ... on PersonnePhysique { civilite nom prenom email }
        }
        messages { id email body createdAt }
      }
    }
  }
}";

/// The dossiers of a démarche deleted since `deletedSince`, 100 at a time.
pub const DELETED_QUERY: &str = r"query alertissimoDeleted($demarche: Int!, $after: String, $deletedSince: ISO8601DateTime) {
  demarche(number: $demarche) {
    deletedDossiers(first: 100, after: $after, deletedSince: $deletedSince) {
      pageInfo { hasNextPage endCursor }
      nodes { number dateSupression }
    }
  }
}";

/// The `updatedSince` of a first synchronisation: before any DS dossier.
const EPOCH: &str = "2015-01-01T00:00:00Z";

/// The default steps of DS's states.
pub const DEFAULT_STEPS: [(&str, &str); 5] = [
    ("en_construction", "depose"),
    ("en_instruction", "instruction"),
    ("accepte", "accorde"),
    ("refuse", "refuse"),
    ("sans_suite", "sans_suite"),
];

/// The `[source]` table of a `demarches_simplifiees` connector, as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DsSourceDef {
    #[serde(default)]
    base_url: Option<String>,
    demarches: Vec<i64>,
    #[serde(default)]
    token_env: Option<String>,
    #[serde(default)]
    token_file: Option<String>,
    #[serde(default)]
    timeout: Option<String>,
    #[serde(default)]
    retries: Option<u32>,
    #[serde(default)]
    automatic_senders: Option<Vec<String>>,
    #[serde(default)]
    ca_file: Option<String>,
    #[serde(default)]
    allow_insecure: bool,
}

/// The addresses DS sends its automatic e-mails from, by default.
pub const AUTOMATIC_SENDERS: [&str; 2] = [
    "contact@demarches-simplifiees.fr",
    "contact@demarche.numerique.gouv.fr",
];

/// A validated `demarches_simplifiees` source.
#[derive(Debug, Clone)]
pub struct DsSource {
    /// The instance, such as `https://www.demarches-simplifiees.fr`.
    pub base_url: reqwest::Url,
    /// The démarches read, in this order.
    pub demarches: Vec<i64>,
    token: PasswordSource,
    timeout: Duration,
    retries: u32,
    /// The senders of DS's own automatic e-mails (lowercase).
    pub automatic_senders: Vec<String>,
    /// An extra CA certificate file (PEM) trusted besides the system's.
    pub ca_file: Option<std::path::PathBuf>,
}

impl DsSource {
    pub(crate) fn validate(
        def: DsSourceDef,
        base: &Path,
        fp: &mut FileProblems<'_>,
    ) -> Option<Self> {
        let before = fp.count();
        let text = def
            .base_url
            .unwrap_or_else(|| "https://www.demarches-simplifiees.fr".to_owned());
        let base_url = match reqwest::Url::parse(&text) {
            Ok(u) if matches!(u.scheme(), "http" | "https") => Some(u),
            _ => {
                fp.file(format!(
                    "[source] base_url '{text}' is not an https:// address"
                ));
                None
            }
        };
        if def.demarches.is_empty() || def.demarches.iter().any(|n| *n <= 0) {
            fp.file(
                "[source] demarches lists the numbers of the démarches to read, such as [12345]",
            );
        }
        let token = http::secret(
            def.token_env,
            def.token_file,
            ("[source]", "token"),
            base,
            fp,
        );
        let timeout = http::timeout(def.timeout.as_deref(), fp);
        let (base_url, token) = (base_url?, token?);
        credentials::refuse_cleartext(
            &base_url,
            "base_url",
            &["the API token (token_env or token_file)".to_owned()],
            def.allow_insecure,
            fp,
        );
        (fp.count() == before).then_some(Self {
            base_url,
            demarches: def.demarches,
            token,
            timeout,
            retries: def.retries.unwrap_or(3),
            automatic_senders: def
                .automatic_senders
                .unwrap_or_else(|| AUTOMATIC_SENDERS.map(str::to_owned).to_vec())
                .into_iter()
                .map(|s| s.trim().to_lowercase())
                .collect(),
            ca_file: def.ca_file.map(|f| base.join(f)),
        })
    }

    /// The file the token is read from, if it is one.
    pub fn token_file(&self) -> Option<&Path> {
        self.token.file()
    }

    /// Checks that the token can be read.
    ///
    /// # Errors
    /// A reason naming the variable or file (never the value).
    pub fn check_token(&self) -> Result<(), String> {
        self.token.read_as("token").map(drop)
    }

    /// The GraphQL endpoint.
    pub fn endpoint(&self) -> String {
        format!(
            "{}/api/v2/graphql",
            self.base_url.as_str().trim_end_matches('/')
        )
    }
}

/// Where the synchronisation of one démarche stands, kept in the state database.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    /// The fixed `updatedSince` of every synchronisation.
    pub updated_since: String,
    /// The last non-null `endCursor`, opaque.
    pub end_cursor: Option<String>,
    /// When the deletions were last read.
    pub deleted_since: Option<String>,
}

/// Where the synchronisation of a connector stands: the positions of its
/// démarches, and the connector file they were read with. A changed connector
/// (a fixed mapping) starts over, so that dossiers rejected before are read again.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    /// The connector's fingerprint.
    pub fingerprint: String,
    /// The positions, by démarche number.
    pub positions: BTreeMap<i64, Position>,
}

/// The dossiers of a connector's démarches, fetched page by page as they are read.
pub struct DsTable {
    fetcher: Fetcher,
    endpoint: reqwest::Url,
    base: String,
    demarches: Vec<i64>,
    /// The démarche being read, as an index in `demarches`.
    at: usize,
    /// Its title.
    title: Option<String>,
    cursor: Cursor,
    /// When this synchronisation started: the next `deletedSince`.
    started: String,
    page: std::vec::IntoIter<Value>,
    /// Whether the démarche being read has more pages.
    more: bool,
    deleted: Vec<String>,
    pages: u64,
}

impl DsTable {
    /// Prepares a synchronisation from the stored `cursor` (JSON, when there was one).
    ///
    /// # Errors
    /// When the token cannot be read or the stored cursor is not readable.
    pub fn open(
        source: &DsSource,
        cursor: Option<&str>,
        started: String,
        fingerprint: &str,
    ) -> Result<Self, String> {
        let stored: Cursor = match cursor {
            Some(text) => serde_json::from_str(text)
                .map_err(|e| format!("the stored DS cursor is not readable ({e})"))?,
            None => Cursor::default(),
        };
        let cursor = if stored.fingerprint == fingerprint {
            stored
        } else {
            Cursor {
                fingerprint: fingerprint.to_owned(),
                positions: BTreeMap::new(),
            }
        };
        let endpoint = reqwest::Url::parse(&source.endpoint())
            .map_err(|e| format!("{}: {e}", source.endpoint()))?;
        let fetcher = Fetcher::new(
            Some(&Auth::Bearer(source.token.clone())),
            BTreeMap::new(),
            &BTreeMap::new(),
            source.timeout,
            source.retries,
            100 * 1024 * 1024,
            source.ca_file.as_deref(),
        )?;
        Ok(Self {
            fetcher,
            endpoint,
            base: source.base_url.as_str().trim_end_matches('/').to_owned(),
            demarches: source.demarches.clone(),
            at: 0,
            title: None,
            cursor,
            started,
            page: Vec::new().into_iter(),
            more: true,
            deleted: Vec::new(),
            pages: 0,
        })
    }

    /// The next dossier.
    ///
    /// # Errors
    /// A reason naming the démarche: an HTTP or GraphQL error.
    pub fn next_value(&mut self) -> Result<Option<(Value, Vec<SourceMessage>)>, String> {
        loop {
            if let Some(node) = self.page.next() {
                let record = flatten(
                    &node,
                    &self.base,
                    self.demarches[self.at],
                    self.title.as_deref(),
                );
                return Ok(Some((record, messages(&node))));
            }
            if self.at >= self.demarches.len() {
                return Ok(None);
            }
            if self.more {
                self.fetch_dossiers()?;
            } else {
                self.fetch_deleted()?;
                self.at += 1;
                self.more = true;
                self.title = None;
            }
        }
    }

    /// How many pages were fetched.
    pub fn pages(&self) -> u64 {
        self.pages
    }

    /// The ids of the dossiers DS deleted since the last synchronisation.
    pub fn deleted(&self) -> &[String] {
        &self.deleted
    }

    /// Where the synchronisation ends, to store with the import (JSON).
    pub fn cursor(&self) -> String {
        serde_json::to_string(&self.cursor).unwrap_or_default()
    }

    fn query(&self, demarche: i64, query: &str, variables: Value) -> Result<Value, String> {
        let body = json!({ "query": query, "variables": variables }).to_string();
        let (page, _) = self.fetcher.send(&self.endpoint, Some(body))?;
        if let Some(errors) = page
            .get("errors")
            .and_then(Value::as_array)
            .filter(|e| !e.is_empty())
        {
            if errors.iter().any(|e| {
                e.pointer("/extensions/code").and_then(Value::as_str) == Some("unauthorized")
            }) {
                return Err(format!(
                    "{}: démarche {demarche}: the token has no access to it (DS answered 'unauthorized'): is it the token of an instructeur or administrateur of this démarche?",
                    self.endpoint
                ));
            }
            let messages: Vec<&str> = errors
                .iter()
                .filter_map(|e| e.get("message").and_then(Value::as_str))
                .collect();
            return Err(format!(
                "{}: démarche {demarche}: DS answered with errors (the data may be partial, nothing is applied): {}",
                self.endpoint,
                messages.join("; ")
            ));
        }
        Ok(page)
    }

    fn fetch_dossiers(&mut self) -> Result<(), String> {
        let demarche = self.demarches[self.at];
        let position = self
            .cursor
            .positions
            .entry(demarche)
            .or_insert_with(|| Position {
                updated_since: EPOCH.to_owned(),
                ..Position::default()
            });
        let variables = json!({
            "demarche": demarche,
            "after": position.end_cursor,
            "updatedSince": position.updated_since,
        });
        let page = self.query(demarche, DOSSIERS_QUERY, variables)?;
        self.title = page
            .pointer("/data/demarche/title")
            .and_then(Value::as_str)
            .map(str::to_owned);
        let connection = page.pointer("/data/demarche/dossiers").ok_or_else(|| {
            format!(
                "{}: démarche {demarche}: no dossiers in the answer",
                self.endpoint
            )
        })?;
        let nodes = connection
            .get("nodes")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let end_cursor = connection
            .pointer("/pageInfo/endCursor")
            .and_then(Value::as_str);
        let position = self.cursor.positions.entry(demarche).or_default();
        if !nodes.is_empty() && end_cursor.is_some() && end_cursor == position.end_cursor.as_deref()
        {
            return Err(format!(
                "{}: démarche {demarche}: DS answered the same cursor again; the synchronisation stops here",
                self.endpoint
            ));
        }
        // An empty page answers a null cursor: the stored one stays.
        if let Some(end) = end_cursor {
            position.end_cursor = Some(end.to_owned());
        }
        self.more = connection
            .pointer("/pageInfo/hasNextPage")
            .and_then(Value::as_bool)
            .unwrap_or(false)
            && !nodes.is_empty();
        self.pages += 1;
        self.page = nodes.into_iter();
        Ok(())
    }

    fn fetch_deleted(&mut self) -> Result<(), String> {
        let demarche = self.demarches[self.at];
        let since = self
            .cursor
            .positions
            .get(&demarche)
            .and_then(|p| p.deleted_since.clone());
        // A first synchronisation has no deletion to read: what is gone is not there.
        if since.is_some() {
            let mut after: Option<String> = None;
            loop {
                let variables =
                    json!({ "demarche": demarche, "after": after, "deletedSince": since });
                let page = self.query(demarche, DELETED_QUERY, variables)?;
                let connection =
                    page.pointer("/data/demarche/deletedDossiers")
                        .ok_or_else(|| {
                            format!(
                                "{}: démarche {demarche}: no deletedDossiers in the answer",
                                self.endpoint
                            )
                        })?;
                for node in connection
                    .get("nodes")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    if let Some(number) = node.get("number").and_then(Value::as_i64) {
                        self.deleted.push(number.to_string());
                    }
                }
                after = connection
                    .pointer("/pageInfo/endCursor")
                    .and_then(Value::as_str)
                    .map(str::to_owned);
                let more = connection
                    .pointer("/pageInfo/hasNextPage")
                    .and_then(Value::as_bool)
                    .unwrap_or(false);
                if !more || after.is_none() {
                    break;
                }
            }
        }
        self.cursor
            .positions
            .entry(demarche)
            .or_default()
            .deleted_since = Some(self.started.clone());
        Ok(())
    }
}

/// The messages of a dossier's messagerie (DS mirrors its own e-mails there too),
/// their HTML made plain text.
fn messages(node: &Value) -> Vec<SourceMessage> {
    node.get("messages")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|m| {
            let at = chrono::DateTime::parse_from_rfc3339(m.get("createdAt")?.as_str()?).ok()?;
            Some(SourceMessage {
                id: m.get("id")?.as_str()?.to_owned(),
                from: m
                    .get("email")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
                text: plain_text(m.get("body").and_then(Value::as_str).unwrap_or_default()),
                at: at.with_timezone(&chrono::Utc),
            })
        })
        .collect()
}

/// The text of a little HTML (DS message bodies): line breaks for `<br>`, `</p>`
/// and `</div>`, other tags dropped, the common entities decoded, blank lines squeezed.
pub fn plain_text(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut rest = html;
    while let Some(start) = rest.find('<') {
        out.push_str(&rest[..start]);
        let Some(end) = rest[start..].find('>') else {
            out.push_str(&rest[start..]);
            rest = "";
            break;
        };
        let tag = rest[start + 1..start + end].trim().to_ascii_lowercase();
        if tag.starts_with("br") || tag == "/p" || tag == "/div" || tag == "/li" {
            out.push('\n');
        }
        rest = &rest[start + end + 1..];
    }
    out.push_str(rest);
    let decoded = out
        .replace("&nbsp;", " ")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&");
    let mut text = String::new();
    for line in decoded.lines().map(str::trim) {
        if line.is_empty() && (text.is_empty() || text.ends_with("\n\n")) {
            continue;
        }
        text.push_str(line);
        text.push('\n');
    }
    text.trim_end().to_owned()
}

/// A DS dossier as the connector's `[fields]` see it: DS's own fields, plus
/// `/demandeur/nom` (a company's name or a person's first and last names),
/// `/demandeur/siret`, `/etapeDepuis` (when it entered its state), `/url` (its
/// page for instructeurs), `/instructeurs` (their e-mails) and `/demarche/number`
/// and `/demarche/title`.
fn flatten(node: &Value, base: &str, demarche: i64, title: Option<&str>) -> Value {
    let text = |p: &str| node.pointer(p).and_then(Value::as_str).map(str::to_owned);
    let state = text("/state").unwrap_or_default();
    let since = match state.as_str() {
        "en_construction" => text("/dateDepot"),
        "en_instruction" => text("/datePassageEnInstruction").or_else(|| text("/dateDepot")),
        _ => text("/dateTraitement").or_else(|| text("/dateDerniereModification")),
    };
    let demandeur = match text("/demandeur/__typename").as_deref() {
        Some("PersonneMorale") => json!({
            "type": "PersonneMorale",
            "nom": text("/demandeur/entreprise/raisonSociale"),
            "siret": text("/demandeur/siret"),
        }),
        Some("PersonnePhysique") => {
            let name = [text("/demandeur/prenom"), text("/demandeur/nom")]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(" ");
            json!({
                "type": "PersonnePhysique",
                "nom": name,
                "email": text("/demandeur/email"),
            })
        }
        _ => Value::Null,
    };
    let number = node.get("number").cloned().unwrap_or(Value::Null);
    let mut out = node.clone();
    if let Value::Object(map) = &mut out {
        map.insert("demandeur".to_owned(), demandeur);
        map.insert(
            "etapeDepuis".to_owned(),
            since.map_or(Value::Null, Value::String),
        );
        map.insert(
            "url".to_owned(),
            Value::String(format!("{base}/procedures/{demarche}/dossiers/{number}")),
        );
        map.insert(
            "instructeurs".to_owned(),
            Value::Array(
                node.get("instructeurs")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(|i| i.get("email").cloned())
                    .collect(),
            ),
        );
        map.insert(
            "demarche".to_owned(),
            json!({ "number": demarche, "title": title }),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_bodies_become_plain_text() {
        assert_eq!(
            plain_text(
                "<p>[Votre dossier nº 42 a bien été déposé]</p><div> Bonjour, <br><br>\n</div><div>Votre dossier <strong>a bien été déposé</strong>.<br>Cordialement &amp; à bientôt</div>"
            ),
            "[Votre dossier nº 42 a bien été déposé]\nBonjour,\n\nVotre dossier a bien été déposé.\nCordialement & à bientôt"
        );
        assert_eq!(
            plain_text("Pièce manquante : le RIB"),
            "Pièce manquante : le RIB"
        );
    }

    #[test]
    fn a_company_and_a_person_as_fields_see_them() {
        let company = flatten(
            &json!({
                "number": 42, "state": "en_instruction",
                "dateDepot": "2026-03-01T10:00:00+01:00",
                "datePassageEnInstruction": "2026-03-10T09:00:00+01:00",
                "usager": { "email": "depot@asso.fr" },
                "instructeurs": [{ "email": "a@region.fr" }],
                "demandeur": { "__typename": "PersonneMorale", "siret": "21060004500392",
                               "entreprise": { "raisonSociale": "Théâtre Éphémère" } }
            }),
            "https://ds.example.org",
            123,
            Some("Aide aux associations"),
        );
        assert_eq!(company["demarche"]["title"], "Aide aux associations");
        assert_eq!(company["demandeur"]["nom"], "Théâtre Éphémère");
        assert_eq!(company["demandeur"]["siret"], "21060004500392");
        assert_eq!(company["etapeDepuis"], "2026-03-10T09:00:00+01:00");
        assert_eq!(
            company["url"],
            "https://ds.example.org/procedures/123/dossiers/42"
        );
        assert_eq!(company["instructeurs"], json!(["a@region.fr"]));
        let person = flatten(
            &json!({ "number": 7, "state": "accepte", "dateTraitement": "2026-04-01T12:00:00+02:00",
                     "demandeur": { "__typename": "PersonnePhysique", "prenom": "Jeanne", "nom": "Martin" } }),
            "https://ds.example.org",
            123,
            None,
        );
        assert_eq!(person["demandeur"]["nom"], "Jeanne Martin");
        assert_eq!(person["etapeDepuis"], "2026-04-01T12:00:00+02:00");
    }
}
