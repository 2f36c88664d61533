//! Connector files: how to fetch an export and how to map its records to dossiers.
//!
//! Owns `connectors/*.toml` (one connector per file, its stem is its name): the
//! list of kinds (`KINDS`), loading the files of the connectors folder, and the
//! [`Connector`] type the importer works from. Each kind lives in its own module
//! (`csv`, `spreadsheet`, `xml`, `http`, `ds/`), which implements
//! `source::SourceKind`: a new kind is one file and one line in `KINDS`
//! (`docs/CONTRIBUTING.md`, "Add a connector kind"). What kinds share: `source`
//! (the traits), `parse` (the keys every connector file has, read and validated
//! with `file:line:column` in every message), `folder` (drop folders), `table`
//! (header row, records, the first pass over a file), `spool` (an API's
//! synchronisation kept on disk), `mapping` (`[fields]`, `[steps]`; pure),
//! `budget` (the read budget), `as_of` (when a file was taken), `fetch` and
//! `credentials` (API requests and secrets).

pub(crate) mod as_of;
pub(crate) mod budget;
pub(crate) mod credentials;
pub(crate) mod csv;
pub mod ds;
pub(crate) mod fetch;
pub(crate) mod folder;
pub(crate) mod http;
pub(crate) mod mapping;
pub(crate) mod parse;
pub(crate) mod source;
pub(crate) mod spool;
pub(crate) mod spreadsheet;
pub(crate) mod table;
pub(crate) mod xml;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use croner::Cron;
use serde::Deserialize;

use crate::config::{Config, Guards};
use crate::diag::Problems;
use crate::lifecycle::Lifecycle;
use mapping::Mapping;
use source::Kind;
pub(crate) use source::Source;

/// The kinds of sources a connector can read, in the order messages list them.
/// A kind is registered by one line here (and its `mod` line above).
pub(crate) const KINDS: &[Kind] = &[
    Kind::of::<csv::CsvSource>(),
    Kind::of::<spreadsheet::SheetSource>(),
    Kind::of::<xml::XmlSource>(),
    Kind::of::<http::HttpSource>(),
    Kind::of::<ds::DsSource>(),
];

/// Whether each import holds the whole population of the source.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Each snapshot is every dossier: one missing has disappeared (within the guard).
    #[default]
    Full,
    /// Each snapshot holds only dossiers that changed: nothing disappears by absence.
    Incremental,
}

/// A validated connector.
#[derive(Debug, Clone)]
pub struct Connector {
    /// Its name: the file stem.
    pub name: String,
    /// The connector file.
    pub file: PathBuf,
    /// A hash of the file's text: a changed mapping re-reads every record.
    pub fingerprint: u64,
    /// The cron pattern, as written.
    pub schedule_text: String,
    /// When to import, in the configured zone.
    pub schedule: Cron,
    /// Whether the first import alerts (by default it is a silent baseline).
    pub alert_on_first_import: bool,
    /// Full snapshots or changes only.
    pub mode: Mode,
    /// Whether the daemon imports it on schedule (`import` still can, by hand).
    pub enabled: bool,
    /// How long the source may go without a successful import before the
    /// administrators are told (none: never).
    pub max_age: Option<std::time::Duration>,
    /// The address of a dossier on the source portal, with `{id}` and `{reference}`
    /// placeholders, for dossiers that have no `url` field.
    pub link: Option<String>,
    /// What beneficiaries call this system (`label`), shown on the front
    /// office beside each of its dossiers.
    pub label: Option<String>,
    /// Fields whose changes become `field_changed` events.
    pub watch: Vec<String>,
    /// Source columns ignored by change detection (an export timestamp…).
    pub volatile: Vec<String>,
    /// Thresholds above which a snapshot is refused.
    pub guards: Guards,
    /// How records become dossiers.
    pub mapping: Mapping,
    /// Where and how to read: the kind's validated `[source]`.
    pub source: Arc<dyn Source>,
    /// How each file says when it was taken (`[as_of]`; none: when imported).
    pub as_of: Option<as_of::AsOf>,
}

/// Where a snapshot is read from.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Origin<'a> {
    /// A file.
    File(&'a Path),
    /// The connector's API, its synchronisation spooled.
    Api(&'a spool::Spool),
}

/// A connector file that does not validate. The daemon runs without it and says
/// so (its log, `/metrics`, the administrators' digest); `check` warns of it, and
/// fails on it with `--strict`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LeftOut {
    /// The connector's name: its file's stem.
    pub name: String,
    /// Its file.
    pub file: PathBuf,
    /// Why, each problem with its line and column when it has them.
    pub problems: Problems,
}

impl LeftOut {
    /// Why, one problem a line, each without the file's path (named apart) but
    /// with its line and column (`3:12: schedule …`).
    pub(crate) fn reason(&self) -> String {
        let file = self.file.display().to_string();
        self.problems
            .iter()
            .map(|p| match p.place.strip_prefix(&file) {
                Some("") => p.message.clone(),
                Some(at) => format!("{}: {}", at.trim_start_matches(':'), p.message),
                None => format!("{}: {}", p.place, p.message),
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Connector {
    /// Its fingerprint as the store records it on runs, cursors and files seen.
    pub(crate) fn fingerprint_text(&self) -> String {
        format!("{:016x}", self.fingerprint)
    }

    /// The `extra.*` fields `connectors` declare, each with its kind: what the
    /// rules' templates may name besides the canonical fields.
    pub fn extra_fields(
        connectors: &[Connector],
    ) -> std::collections::BTreeMap<String, crate::model::FieldKind> {
        connectors
            .iter()
            .flat_map(|c| c.mapping.fields())
            .filter(|f| f.name.starts_with(crate::model::EXTRA_PREFIX))
            .map(|f| (f.name.clone(), f.kind()))
            .collect()
    }

    /// The address of a dossier on the source portal: its `url` field, else the
    /// connector's `link` with `{id}` and `{reference}` filled in.
    pub fn link_for(&self, dossier: &crate::model::Dossier) -> Option<String> {
        crate::model::link(dossier, self.link.as_deref())
    }

    /// What the layers downstream of the import need of `connectors`.
    pub(crate) fn sources(connectors: &[Connector]) -> crate::model::Sources {
        crate::model::Sources::new(connectors.iter().map(|c| {
            let facts = crate::model::SourceFacts {
                link: c.link.clone(),
                label: c.label.clone(),
                enabled: c.enabled,
                max_age: c.max_age,
            };
            (c.name.clone(), facts)
        }))
    }

    /// Reads every `*.toml` of the connectors folder, in name order.
    ///
    /// Valid connectors are returned even when others are not: the daemon runs
    /// what it can, `check` reports the rest. Every problem goes into `problems`.
    pub fn load_all(config: &Config, lifecycle: &Lifecycle, problems: &mut Problems) -> Vec<Self> {
        let (valid, left_out) = Self::load_each(config, lifecycle, problems);
        for l in left_out {
            problems.append(l.problems);
        }
        valid
    }

    /// Reads every `*.toml` of the connectors folder, in name order: the valid
    /// connectors, and the files left out with their problems. A problem of the
    /// folder itself (unreadable, without connector files) goes into `problems`.
    pub(crate) fn load_each(
        config: &Config,
        lifecycle: &Lifecycle,
        problems: &mut Problems,
    ) -> (Vec<Self>, Vec<LeftOut>) {
        let dir = &config.connectors_dir;
        let mut paths = match std::fs::read_dir(dir) {
            Ok(entries) => entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "toml") && p.is_file())
                .collect::<Vec<_>>(),
            Err(error) => {
                problems.push(dir, format!("cannot read the connectors folder: {error}"));
                return (Vec::new(), Vec::new());
            }
        };
        paths.sort();
        if paths.is_empty() {
            problems.push(dir, "no connector file (*.toml) in the connectors folder");
        }
        let (mut valid, mut left_out) = (Vec::new(), Vec::new());
        for path in paths {
            let mut found = Problems::default();
            match Self::load(&path, config, lifecycle, &mut found) {
                Some(connector) if found.is_empty() => valid.push(connector),
                _ => left_out.push(LeftOut {
                    name: path
                        .file_stem()
                        .map(|s| s.to_string_lossy().into_owned())
                        .unwrap_or_default(),
                    file: path,
                    problems: found,
                }),
            }
        }
        (valid, left_out)
    }

    /// Reads and validates one connector file.
    pub(crate) fn load(
        path: &Path,
        config: &Config,
        lifecycle: &Lifecycle,
        problems: &mut Problems,
    ) -> Option<Self> {
        match std::fs::read_to_string(path) {
            Ok(text) => Self::parse(path, &text, config, lifecycle, problems),
            Err(error) => {
                problems.push(path, format!("cannot read the connector file: {error}"));
                None
            }
        }
    }
}
