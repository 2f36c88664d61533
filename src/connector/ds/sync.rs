//! One synchronisation of a `demarches_simplifiees` connector: its démarches read
//! page by page, then their deletions, every error naming its démarche.
//!
//! Owns the requests and the reading of DS's answers; the shape of each dossier
//! is `record`'s, where the synchronisation stands is the parent's [`Cursor`].

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::record::{self, Wanted};
use super::{Cursor, DELETED_QUERY, DOSSIERS_QUERY, DsSource, PENDING_DELETED_QUERY};
use crate::connector::fetch::Fetcher;
use crate::connector::http::Auth;
use crate::connector::mapping::DsChamp;
use crate::connector::spool::{Live, SyncEnd};
use crate::model::{SourceDeletion, SourceMessage};

/// The dossiers of a connector's démarches, fetched page by page as they are read.
pub(crate) struct DsTable {
    fetcher: Fetcher,
    endpoint: reqwest::Url,
    base: String,
    demarches: Vec<i64>,
    /// The démarche being read, as an index in `demarches`.
    at: usize,
    /// Its title.
    title: Option<String>,
    cursor: Cursor,
    /// Whether this synchronisation reads every dossier (it started over).
    full: bool,
    /// The champs and annotations the connector maps.
    wanted: Wanted,
    /// When this synchronisation started: the next `deletedSince`.
    started: String,
    page: std::vec::IntoIter<Value>,
    /// Whether the démarche being read has more pages.
    more: bool,
    deleted: Vec<SourceDeletion>,
    pages: u64,
}

impl Live for DsTable {
    /// The next dossier; a reason naming the démarche: an HTTP or GraphQL
    /// error, a malformed answer.
    fn next(&mut self) -> Result<Option<(Value, Vec<SourceMessage>)>, String> {
        loop {
            if let Some(node) = self.page.next() {
                let demarche = self.demarches[self.at];
                let shown = record::Demarche {
                    base: &self.base,
                    number: demarche,
                    title: self.title.as_deref(),
                };
                let record = record::flatten(&node, &shown, &mut self.wanted);
                return Ok(Some((record, record::messages(&node))));
            }
            if self.at >= self.demarches.len() {
                self.wanted.report_unmatched(&self.demarches);
                return Ok(None);
            }
            if self.more {
                self.fetch_dossiers()?;
            } else {
                self.fetch_deleted(Deletions::Deleted)?;
                self.fetch_deleted(Deletions::Pending)?;
                let demarche = self.demarches[self.at];
                self.cursor
                    .positions
                    .entry(demarche)
                    .or_default()
                    .deleted_since = Some(self.started.clone());
                self.at += 1;
                self.more = true;
                self.title = None;
            }
        }
    }

    fn pages(&self) -> u64 {
        self.pages
    }

    /// The dossiers DS deleted since the last synchronisation (for good, or by
    /// their usager), with when and why; where the synchronisation ends (JSON);
    /// and whether it read every dossier of the connector's démarches (it
    /// started over): a dossier it did not read is gone.
    fn end(&self) -> SyncEnd {
        SyncEnd {
            deleted: self.deleted.clone(),
            cursor: Some(serde_json::to_string(&self.cursor).unwrap_or_default()),
            full: self.full,
        }
    }
}

/// The two lists of deleted dossiers of a démarche.
#[derive(Clone, Copy)]
enum Deletions {
    /// `deletedDossiers`: deleted for good.
    Deleted,
    /// `pendingDeletedDossiers`: deleted by their usager, awaiting expiry.
    Pending,
}

impl Deletions {
    fn query(self) -> &'static str {
        match self {
            Self::Deleted => DELETED_QUERY,
            Self::Pending => PENDING_DELETED_QUERY,
        }
    }

    fn field(self) -> &'static str {
        match self {
            Self::Deleted => "deletedDossiers",
            Self::Pending => "pendingDeletedDossiers",
        }
    }
}

impl DsTable {
    /// Prepares a synchronisation from the stored `cursor` (JSON, when there was
    /// one); `champs` are the champs and annotations the connector maps.
    ///
    /// # Errors
    /// When the token cannot be read or the stored cursor is not readable.
    pub(crate) fn open(
        source: &DsSource,
        cursor: Option<&str>,
        started: String,
        fingerprint: &str,
        champs: &[&DsChamp],
    ) -> Result<Self, String> {
        let stored: Option<Cursor> = match cursor {
            Some(text) => Some(
                serde_json::from_str(text)
                    .map_err(|e| format!("the stored DS cursor is not readable ({e})"))?,
            ),
            None => None,
        };
        let (cursor, full) = Cursor::resume(stored, fingerprint, &source.demarches);
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
            full,
            wanted: Wanted::new(champs),
            started,
            page: Vec::new().into_iter(),
            more: true,
            deleted: Vec::new(),
            pages: 0,
        })
    }

    /// `reason` about démarche `demarche`, as every error of a synchronisation
    /// says it: the endpoint, then the démarche.
    fn about(&self, demarche: i64, reason: &str) -> String {
        let url = self.endpoint.as_str();
        let reason = reason
            .strip_prefix(url)
            .and_then(|r| r.strip_prefix(": "))
            .unwrap_or(reason);
        format!("{url}: démarche {demarche}: {reason}")
    }

    fn query(&self, demarche: i64, query: &str, variables: Value) -> Result<Value, String> {
        let body = json!({ "query": query, "variables": variables }).to_string();
        let (page, _) = self
            .fetcher
            .send(&self.endpoint, Some(body))
            .map_err(|e| self.about(demarche, &e))?;
        if !page.is_object() {
            return Err(self.about(demarche, "the answer is not a GraphQL response"));
        }
        if let Some(errors) = page
            .get("errors")
            .and_then(Value::as_array)
            .filter(|e| !e.is_empty())
        {
            if errors.iter().any(|e| {
                e.pointer("/extensions/code").and_then(Value::as_str) == Some("unauthorized")
            }) {
                return Err(self.about(
                    demarche,
                    "the token has no access to it (DS answered 'unauthorized'): is it the token of an instructeur or administrateur of this démarche?",
                ));
            }
            let messages: Vec<&str> = errors
                .iter()
                .filter_map(|e| e.get("message").and_then(Value::as_str))
                .collect();
            return Err(self.about(
                demarche,
                &format!(
                    "DS answered with errors (the data may be partial, nothing is applied): {}",
                    messages.join("; ")
                ),
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
            .or_insert_with(|| super::Position {
                updated_since: super::EPOCH.to_owned(),
                ..super::Position::default()
            });
        let variables = json!({
            "demarche": demarche,
            "after": position.end_cursor,
            "updatedSince": position.updated_since,
            "champs": self.wanted.champs(),
            "annotations": self.wanted.annotations(),
        });
        let page = self.query(demarche, DOSSIERS_QUERY, variables)?;
        self.title = page
            .pointer("/data/demarche/title")
            .and_then(Value::as_str)
            .map(str::to_owned);
        let connection = page
            .pointer("/data/demarche/dossiers")
            .ok_or_else(|| self.about(demarche, "no dossiers in the answer"))?;
        let nodes = connection
            .get("nodes")
            .and_then(Value::as_array)
            .cloned()
            .ok_or_else(|| self.about(demarche, "the answer's dossiers have no list of nodes"))?;
        if nodes
            .iter()
            .any(|n| n.get("number").and_then(Value::as_i64).is_none())
        {
            return Err(self.about(demarche, "a dossier of the answer has no number"));
        }
        let end_cursor = connection
            .pointer("/pageInfo/endCursor")
            .and_then(Value::as_str);
        let position = self.cursor.positions.entry(demarche).or_default();
        if !nodes.is_empty() && end_cursor.is_some() && end_cursor == position.end_cursor.as_deref()
        {
            let reason = "DS answered the same cursor again; the synchronisation stops here";
            return Err(self.about(demarche, reason));
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

    /// Reads one list of deletions of the démarche being read, since its last
    /// synchronisation (none for a first one: what is gone is not there).
    fn fetch_deleted(&mut self, list: Deletions) -> Result<(), String> {
        let demarche = self.demarches[self.at];
        let Some(since) = self
            .cursor
            .positions
            .get(&demarche)
            .and_then(|p| p.deleted_since.clone())
        else {
            return Ok(());
        };
        let mut after: Option<String> = None;
        loop {
            let variables = json!({ "demarche": demarche, "after": after, "deletedSince": since });
            let page = self.query(demarche, list.query(), variables)?;
            let connection = page
                .pointer(&format!("/data/demarche/{}", list.field()))
                .ok_or_else(|| {
                    self.about(demarche, &format!("no {} in the answer", list.field()))
                })?;
            for node in connection
                .get("nodes")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let deletion = record::deletion(node).ok_or_else(|| {
                    let what = format!("a dossier of {} has no number", list.field());
                    self.about(demarche, &what)
                })?;
                self.deleted.push(deletion);
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
                return Ok(());
            }
        }
    }
}
