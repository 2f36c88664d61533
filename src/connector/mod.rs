//! Connector files: how to fetch an export and how to map its records to dossiers.
//!
//! Owns `connectors/*.toml` (one connector per file, its stem is its name): strict
//! parsing with `file:line:column` in every message, validation against the
//! lifecycle, and the [`Connector`] type the importer works from. Each source kind
//! lives in its own module (`csv`, `spreadsheet`, `xml`); what file kinds share is in
//! [`folder`] (the drop folder) and [`table`] (header row, records); the field
//! mapping shared by all kinds is in [`mapping`], the value parsers in `value`.

pub mod budget;
pub(crate) mod credentials;
pub mod csv;
pub mod ds;
pub(crate) mod fetch;
pub mod folder;
pub mod http;
pub mod mapping;
pub mod spool;
pub mod spreadsheet;
pub mod table;
pub mod xml;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use croner::Cron;
use serde::Deserialize;
use toml::Spanned;

use crate::config::{Config, Guards};
use crate::diag::{FileProblems, Problems};
use crate::lifecycle::Lifecycle;
use mapping::{FieldDef, Mapping};

/// The kinds of sources a connector can read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// CSV files dropped in a folder.
    Csv,
    /// Workbooks (`.xls`, `.xlsx`, `.xlsb`, `.ods`) dropped in a folder.
    Spreadsheet,
    /// XML files dropped in a folder.
    Xml,
    /// An HTTP JSON API.
    HttpJson,
    /// The Démarches Simplifiées GraphQL API.
    DemarchesSimplifiees,
}

#[derive(Debug, Deserialize)]
struct KindProbe {
    kind: Option<Spanned<String>>,
}

/// The file shape shared by every kind; `S` is the kind's `[source]` table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConnectorFile<S> {
    #[allow(dead_code)] // Read by `KindProbe`; declared so that it is not an unknown field.
    kind: Kind,
    #[serde(default)]
    #[allow(dead_code)] // Documentation for admins only.
    description: Option<String>,
    #[serde(default = "default_schedule")]
    schedule: Spanned<String>,
    #[serde(default)]
    alert_on_first_import: bool,
    #[serde(default)]
    mode: Mode,
    #[serde(default = "yes")]
    enabled: bool,
    #[serde(default)]
    max_age: Option<Spanned<String>>,
    #[serde(default)]
    link: Option<Spanned<String>>,
    #[serde(default)]
    watch: Vec<Spanned<String>>,
    #[serde(default)]
    volatile: Vec<String>,
    source: S,
    fields: BTreeMap<Spanned<String>, Spanned<toml::Value>>,
    #[serde(default)]
    steps: BTreeMap<Spanned<String>, Spanned<String>>,
    #[serde(default)]
    guards: GuardsDef,
}

fn yes() -> bool {
    true
}

fn default_schedule() -> Spanned<String> {
    Spanned::new(0..0, "0 */15 * * * *".to_owned())
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct GuardsDef {
    max_rejected_ratio: Option<f64>,
    max_disappeared_ratio: Option<f64>,
}

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
    /// Fields whose changes become `field_changed` events.
    pub watch: Vec<String>,
    /// Source columns ignored by change detection (an export timestamp…).
    pub volatile: Vec<String>,
    /// Thresholds above which a snapshot is refused.
    pub guards: Guards,
    /// How records become dossiers.
    pub mapping: Mapping,
    /// Where and how to read.
    pub source: Source,
}

/// The kind-specific part of a connector.
#[derive(Debug, Clone)]
pub enum Source {
    /// CSV files.
    Csv(csv::CsvSource),
    /// Workbooks.
    Spreadsheet(spreadsheet::SheetSource),
    /// XML files.
    Xml(xml::XmlSource),
    /// An HTTP JSON API.
    Http(http::HttpSource),
    /// Démarches Simplifiées.
    Ds(ds::DsSource),
}

impl Source {
    /// The drop folder of a file source (none for an API).
    pub fn folder(&self) -> Option<&folder::DropFolder> {
        match self {
            Self::Csv(s) => Some(&s.folder),
            Self::Spreadsheet(s) => Some(&s.folder),
            Self::Xml(s) => Some(&s.folder),
            Self::Http(_) | Self::Ds(_) => None,
        }
    }

    /// Checks that the secrets of an API source can be read.
    ///
    /// # Errors
    /// A reason naming the setting and the variable or file (never the value).
    pub fn check_secrets(&self) -> Result<(), String> {
        match self {
            Self::Http(s) => {
                match &s.auth {
                    Some(http::Auth::Bearer(token)) => token.read_as("auth.token").map(drop)?,
                    Some(http::Auth::Basic(_, password)) => {
                        password.read_as("auth.password").map(drop)?;
                    }
                    None => {}
                }
                s.secret_headers.iter().try_for_each(|(name, value)| {
                    value
                        .read_for(&format!("[source.secret_headers] '{name}'"))
                        .map(drop)
                })
            }
            Self::Ds(s) => s.check_token(),
            Self::Csv(_) | Self::Spreadsheet(_) | Self::Xml(_) => Ok(()),
        }
    }

    /// The files its secrets are read from, with the setting that names each.
    pub fn secret_files(&self) -> Vec<(String, &Path)> {
        let mut files = Vec::new();
        match self {
            Self::Http(s) => {
                match &s.auth {
                    Some(http::Auth::Bearer(token)) => {
                        files.push(("auth.token_file".to_owned(), token.file()));
                    }
                    Some(http::Auth::Basic(_, password)) => {
                        files.push(("auth.password_file".to_owned(), password.file()));
                    }
                    None => {}
                }
                for (name, value) in &s.secret_headers {
                    files.push((format!("secret_headers '{name}'"), value.file()));
                }
            }
            Self::Ds(s) => files.push(("token_file".to_owned(), s.token_file())),
            Self::Csv(_) | Self::Spreadsheet(_) | Self::Xml(_) => {}
        }
        files
            .into_iter()
            .filter_map(|(key, file)| file.map(|f| (key, f)))
            .collect()
    }

    /// The credentials written in the connector file itself, as messages name
    /// them (never their values).
    pub fn inline_secrets(&self) -> &[String] {
        match self {
            Self::Http(s) => &s.inline_secrets,
            _ => &[],
        }
    }

    /// The senders of the source's own automatic e-mails to applicants (DS).
    pub fn automatic_senders(&self) -> &[String] {
        match self {
            Self::Ds(s) => &s.automatic_senders,
            _ => &[],
        }
    }

    /// The address of an API source.
    pub fn address(&self) -> Option<String> {
        match self {
            Self::Http(s) => Some(s.url.to_string()),
            Self::Ds(s) => Some(s.endpoint()),
            Self::Csv(_) | Self::Spreadsheet(_) | Self::Xml(_) => None,
        }
    }
}

/// The kinds a connector file may declare, as listed in messages.
const KINDS: &str = "\"csv\", \"spreadsheet\", \"xml\", \"http_json\" or \"demarches_simplifiees\"";

/// Where a snapshot is read from.
#[derive(Debug, Clone, Copy)]
pub enum Origin<'a> {
    /// A file.
    File(&'a Path),
    /// The connector's API, its synchronisation spooled.
    Api(&'a spool::Spool),
}

/// A connector file that does not validate. The daemon runs without it and says
/// so (its log, `/metrics`, the administrators' digest); `check` warns of it, and
/// fails on it with `--strict`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeftOut {
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
    pub fn reason(&self) -> String {
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
    pub fn fingerprint_text(&self) -> String {
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
    pub fn sources(connectors: &[Connector]) -> crate::model::Sources {
        crate::model::Sources::new(connectors.iter().map(|c| {
            let facts = crate::model::SourceFacts {
                link: c.link.clone(),
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
    pub fn load_each(
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
    pub fn load(
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

    /// Validates the text of a connector file (no I/O).
    pub fn parse(
        path: &Path,
        text: &str,
        config: &Config,
        lifecycle: &Lifecycle,
        problems: &mut Problems,
    ) -> Option<Self> {
        let mut fp = FileProblems::new(path, text, problems);
        let before = fp.count();
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            fp.file(format!(
                "connector name '{name}' (the file name) must use only letters, digits, '-' and '_'"
            ));
        }
        let probe: KindProbe = fp.parse()?;
        let Some(kind) = probe.kind else {
            fp.file(format!("missing `kind` ({KINDS})"));
            return None;
        };
        let base = path.parent().unwrap_or(Path::new("."));
        let (common, source) = match kind.get_ref().as_str() {
            "csv" => {
                let (common, def) = Common::split(fp.parse::<ConnectorFile<_>>()?);
                let source = csv::CsvSource::validate(def, base, &mut fp);
                (common, source.map(Source::Csv))
            }
            "spreadsheet" => {
                let (common, def) = Common::split(fp.parse::<ConnectorFile<_>>()?);
                let source = spreadsheet::SheetSource::validate(def, base, &mut fp);
                (common, source.map(Source::Spreadsheet))
            }
            "xml" => {
                let (common, def) = Common::split(fp.parse::<ConnectorFile<_>>()?);
                let source = xml::XmlSource::validate(def, base, &mut fp);
                (common, source.map(Source::Xml))
            }
            "http_json" => {
                let (common, def) = Common::split(fp.parse::<ConnectorFile<_>>()?);
                let source = http::HttpSource::validate(def, base, &mut fp);
                if source.as_ref().is_some_and(|s| s.updated_since.is_some())
                    && common.mode != Mode::Incremental
                {
                    fp.file("[source] updated_since asks only for the dossiers that changed: set mode = \"incremental\"");
                }
                (common, source.map(Source::Http))
            }
            "demarches_simplifiees" => {
                let (mut common, def) = Common::split(fp.parse::<ConnectorFile<_>>()?);
                let source = ds::DsSource::validate(def, base, &mut fp);
                if common.mode != Mode::Incremental {
                    fp.file("Démarches Simplifiées sends the dossiers that changed: set mode = \"incremental\" (deletions come from its deletedDossiers)");
                }
                if common.steps.is_empty() {
                    for (state, step) in ds::DEFAULT_STEPS {
                        common.steps.insert(
                            Spanned::new(0..0, state.to_owned()),
                            Spanned::new(0..0, step.to_owned()),
                        );
                    }
                }
                (common, source.map(Source::Ds))
            }
            other => {
                fp.at(
                    kind.span(),
                    format!("unknown kind '{other}', expected {KINDS}"),
                );
                return None;
            }
        };
        let schedule = match Cron::from_str(common.schedule.get_ref()) {
            Ok(c) => Some(c),
            Err(error) => {
                fp.at(
                    common.schedule.span(),
                    format!(
                        "schedule '{}' is not a cron pattern like \"0 */15 * * * *\": {error}",
                        common.schedule.get_ref()
                    ),
                );
                None
            }
        };
        let fields: Vec<(Spanned<String>, FieldDef)> = common
            .fields
            .into_iter()
            .filter_map(|(k, v)| {
                let span = v.span();
                match FieldDef::from_value(v.into_inner()) {
                    Ok(def) if def.champ().is_some() && kind.get_ref() != "demarches_simplifiees" => {
                        fp.at(span, format!(
                            "field '{}': `champ` and `annotation` read a champ of a Démarches Simplifiées dossier: only for kind = \"demarches_simplifiees\"",
                            k.get_ref()
                        ));
                        None
                    }
                    Ok(def) => Some((k, def)),
                    Err(reason) => {
                        fp.at(span, reason);
                        None
                    }
                }
            })
            .collect();
        let mapping = Mapping::validate(fields, common.steps, lifecycle, &mut fp);
        if let (Some(Source::Xml(x)), Some(m)) = (&source, &mapping) {
            for f in m.fields() {
                if let mapping::ValueSource::Column(paths)
                | mapping::ValueSource::Columns(paths, _) = &f.source
                {
                    for path in paths {
                        if let Err(reason) = x.check_path(path) {
                            fp.file(format!("field '{}': path '{path}': {reason}", f.name));
                        }
                    }
                }
            }
        }
        if let Some(m) = &mapping {
            for w in &common.watch {
                if !m.has_field(w.get_ref()) {
                    fp.at(
                        w.span(),
                        format!("watched field '{}' is not mapped in [fields]", w.get_ref()),
                    );
                }
            }
        }
        if let Some(link) = &common.link
            && !(link.get_ref().starts_with("https://") || link.get_ref().starts_with("http://"))
        {
            fp.at(
                link.span(),
                format!(
                    "link '{}' must start with https:// or http://",
                    link.get_ref()
                ),
            );
        }
        for v in &common.volatile {
            if v.trim().is_empty() {
                fp.file("`volatile` lists an empty column name");
            }
        }
        let mut guards = config.guards;
        for (value, slot, key) in [
            (
                common.guards.max_rejected_ratio,
                &mut guards.max_rejected_ratio,
                "max_rejected_ratio",
            ),
            (
                common.guards.max_disappeared_ratio,
                &mut guards.max_disappeared_ratio,
                "max_disappeared_ratio",
            ),
        ] {
            if let Some(v) = value {
                if (0.0..=1.0).contains(&v) {
                    *slot = v;
                } else {
                    fp.file(format!("guards.{key}: {v} is not a ratio between 0 and 1"));
                }
            }
        }
        let max_age = common.max_age.as_ref().and_then(|m| {
            crate::diag::parse_duration(m.get_ref())
                .map_err(|reason| fp.at(m.span(), format!("max_age: {reason}")))
                .ok()
        });
        let (Some(schedule), Some(mapping), Some(source)) = (schedule, mapping, source) else {
            return None;
        };
        (fp.count() == before).then(|| Connector {
            name,
            file: path.to_owned(),
            fingerprint: xxhash_rust::xxh3::xxh3_64(text.as_bytes()),
            schedule_text: common.schedule.into_inner(),
            schedule,
            alert_on_first_import: common.alert_on_first_import,
            mode: common.mode,
            enabled: common.enabled,
            max_age,
            link: common.link.map(Spanned::into_inner),
            watch: common.watch.into_iter().map(Spanned::into_inner).collect(),
            volatile: common.volatile,
            guards,
            mapping,
            source,
        })
    }
}

struct Common {
    schedule: Spanned<String>,
    alert_on_first_import: bool,
    mode: Mode,
    enabled: bool,
    max_age: Option<Spanned<String>>,
    link: Option<Spanned<String>>,
    watch: Vec<Spanned<String>>,
    volatile: Vec<String>,
    fields: BTreeMap<Spanned<String>, Spanned<toml::Value>>,
    steps: BTreeMap<Spanned<String>, Spanned<String>>,
    guards: GuardsDef,
}

impl Common {
    /// The keys every kind shares, and the kind's `[source]` table.
    fn split<S>(file: ConnectorFile<S>) -> (Self, S) {
        let common = Self {
            schedule: file.schedule,
            alert_on_first_import: file.alert_on_first_import,
            mode: file.mode,
            enabled: file.enabled,
            max_age: file.max_age,
            link: file.link,
            watch: file.watch,
            volatile: file.volatile,
            fields: file.fields,
            steps: file.steps,
            guards: file.guards,
        };
        (common, file.source)
    }
}
