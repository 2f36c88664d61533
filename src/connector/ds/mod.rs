//! The `demarches_simplifiees` kind: dossiers of one or more démarches read from
//! the Démarches Simplifiées (Démarche Numérique) GraphQL API v2.
//!
//! Owns the GraphQL queries ([`DOSSIERS_QUERY`], [`DELETED_QUERY`],
//! [`PENDING_DELETED_QUERY`], checked against DS's published schema by the tests),
//! the `[source]` table and where a synchronisation stands (`Cursor`). The
//! synchronisation itself is in `sync` (`DsTable`: a fixed `updatedSince`, the
//! last `endCursor` kept as an opaque token and never replaced by a null,
//! deletions read from `deletedDossiers` and `pendingDeletedDossiers`, a changed
//! connector file read again as a full snapshot, DS's errors named with their
//! démarche); the shape of each dossier as the connector's `[fields]` see it
//! (demandeur, the date it entered its state, its addresses for the usager and
//! for instructeurs, its champs and annotations) is in `record`. Requests go
//! through the `http_json` machinery (timeouts, retries, `Retry-After`).

mod record;
mod sync;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use toml::Spanned;

use super::Mode;
use super::credentials;
use super::http;
use super::parse::Common;
use super::source::{ApiSource, Reads, Source, SourceKind};
use super::spool::{Live, SyncStart};
use crate::diag::FileProblems;
use crate::secret::PasswordSource;

pub(crate) use sync::DsTable;

/// The dossiers of a démarche changed since `updatedSince`, 100 at a time; their
/// champs and annotations only when the connector maps some (`$champs`,
/// `$annotations`), with the typed value of dates (DS writes `stringValue` of a
/// date in words: "15 janvier 2025").
pub const DOSSIERS_QUERY: &str = r"query alertissimoDossiers($demarche: Int!, $after: String, $updatedSince: ISO8601DateTime, $champs: Boolean!, $annotations: Boolean!) {
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
        champs @include(if: $champs) { ...alertissimoChamp }
        annotations @include(if: $annotations) { ...alertissimoChamp }
      }
    }
  }
}

fragment alertissimoChamp on Champ {
  id
  label
  stringValue
  ... on DateChamp { date }
  ... on DatetimeChamp { datetime }
}";

/// The dossiers of a démarche deleted since `deletedSince`, 100 at a time, with
/// when and why.
pub const DELETED_QUERY: &str = r"query alertissimoDeleted($demarche: Int!, $after: String, $deletedSince: ISO8601DateTime) {
  demarche(number: $demarche) {
    deletedDossiers(first: 100, after: $after, deletedSince: $deletedSince) {
      pageInfo { hasNextPage endCursor }
      nodes { number dateSupression reason }
    }
  }
}";

/// The dossiers of a démarche their usager deleted since `deletedSince`, awaiting
/// their final deletion (DS keeps them a while, and the usager may restore them),
/// 100 at a time, with when and why.
pub const PENDING_DELETED_QUERY: &str = r"query alertissimoPendingDeletions($demarche: Int!, $after: String, $deletedSince: ISO8601DateTime) {
  demarche(number: $demarche) {
    pendingDeletedDossiers(first: 100, after: $after, deletedSince: $deletedSince) {
      pageInfo { hasNextPage endCursor }
      nodes { number dateSupression reason }
    }
  }
}";

/// The version of the shape of the records `record` makes: part of the cursor's
/// fingerprint, so that a new shape (the usager's address in `/url` since
/// version 2) is read again whole, as a changed connector file is.
const RECORD_VERSION: u32 = 2;

/// The `updatedSince` of a first synchronisation: before any DS dossier.
const EPOCH: &str = "2015-01-01T00:00:00Z";

/// The default steps of DS's states.
pub(crate) const DEFAULT_STEPS: [(&str, &str); 5] = [
    ("en_construction", "depose"),
    ("en_instruction", "instruction"),
    ("accepte", "accorde"),
    ("refuse", "refuse"),
    ("sans_suite", "sans_suite"),
];

/// The `[source]` table of a `demarches_simplifiees` connector, as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DsSourceDef {
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
pub(crate) const AUTOMATIC_SENDERS: [&str; 2] = [
    "contact@demarches-simplifiees.fr",
    "contact@demarche.numerique.gouv.fr",
];

/// A validated `demarches_simplifiees` source.
#[derive(Debug, Clone)]
pub(crate) struct DsSource {
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

impl SourceKind for DsSource {
    const NAME: &'static str = "demarches_simplifiees";
    const READS_CHAMPS: bool = true;
    type Settings = DsSourceDef;

    fn validate(def: DsSourceDef, base: &Path, fp: &mut FileProblems<'_>) -> Option<Self> {
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

    /// DS sends the dossiers that changed; its states map to steps by default.
    fn settle(_source: Option<&Self>, common: &mut Common, fp: &mut FileProblems<'_>) {
        if common.mode != Mode::Incremental {
            fp.file("Démarches Simplifiées sends the dossiers that changed: set mode = \"incremental\" (deletions come from its deletedDossiers)");
        }
        if common.steps.is_empty() {
            for (state, step) in DEFAULT_STEPS {
                common.steps.insert(
                    Spanned::new(0..0, state.to_owned()),
                    Spanned::new(0..0, step.to_owned()),
                );
            }
        }
    }
}

impl Source for DsSource {
    fn reads(&self) -> Reads<'_> {
        Reads::Api(self)
    }

    fn check_secrets(&self) -> Result<(), String> {
        self.token.read_as("token").map(drop)
    }

    fn secret_files(&self) -> Vec<(String, &Path)> {
        self.token
            .file()
            .map(|file| ("token_file".to_owned(), file))
            .into_iter()
            .collect()
    }

    fn automatic_senders(&self) -> &[String] {
        &self.automatic_senders
    }
}

impl ApiSource for DsSource {
    fn address(&self) -> String {
        self.endpoint()
    }

    /// From the stored cursor; the champs and annotations the mapping reads.
    fn open(&self, start: SyncStart<'_>) -> Result<Box<dyn Live>, String> {
        let table = DsTable::open(
            self,
            start.state.cursor.as_deref(),
            start.started,
            &start.fingerprint,
            &start.mapping.ds_champs(),
        )?;
        Ok(Box::new(table))
    }
}

impl DsSource {
    /// The GraphQL endpoint.
    pub(crate) fn endpoint(&self) -> String {
        format!(
            "{}/api/v2/graphql",
            self.base_url.as_str().trim_end_matches('/')
        )
    }
}

/// Where the synchronisation of one démarche stands, kept in the state database.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Position {
    /// The fixed `updatedSince` of every synchronisation.
    pub updated_since: String,
    /// The last non-null `endCursor`, opaque.
    pub end_cursor: Option<String>,
    /// When the deletions were last read.
    pub deleted_since: Option<String>,
}

/// Where the synchronisation of a connector stands: the positions of its
/// démarches, and the connector file they were read with. A changed connector
/// (a fixed mapping, another démarche, another instance) starts over with a full
/// snapshot, so that dossiers rejected before are read again and those no longer
/// there (deleted, or of a démarche no longer read) disappear.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Cursor {
    /// The connector's fingerprint.
    pub fingerprint: String,
    /// The positions, by démarche number.
    pub positions: BTreeMap<i64, Position>,
}

impl Cursor {
    /// Where a synchronisation with the connector file of `fingerprint` starts,
    /// from the `stored` cursor, and whether it is a full snapshot. The same
    /// connector file (and record shape) goes on from where the last one ended; a
    /// changed one, or none stored, starts every démarche over, and what it reads
    /// is then every dossier of the connector. The deletions since the last
    /// synchronisation of a démarche still read are asked for all the same, for
    /// their date and reason.
    pub(crate) fn resume(
        stored: Option<Cursor>,
        fingerprint: &str,
        demarches: &[i64],
    ) -> (Self, bool) {
        let fingerprint = format!("{fingerprint}/v{RECORD_VERSION}");
        match stored {
            Some(cursor) if cursor.fingerprint == fingerprint => (cursor, false),
            stored => {
                let positions = stored
                    .map(|c| c.positions)
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|(demarche, _)| demarches.contains(demarche))
                    .map(|(demarche, p)| {
                        let position = Position {
                            updated_since: EPOCH.to_owned(),
                            end_cursor: None,
                            deleted_since: p.deleted_since,
                        };
                        (demarche, position)
                    })
                    .collect();
                (
                    Cursor {
                        fingerprint,
                        positions,
                    },
                    true,
                )
            }
        }
    }
}
