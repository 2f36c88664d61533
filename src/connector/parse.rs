//! A connector file read and validated, in named steps.
//!
//! Owns the shape every connector file shares ([`ConnectorFile`], whose
//! `[source]` table is its kind's) and [`super::Connector::parse`]: the name
//! checked, the kind found in `super::KINDS`, the file read with that kind's
//! `[source]` table ([`super::source::Kind`]), then the keys every kind shares
//! (schedule, `[fields]` and `[steps]`, `watch`, `link`, `volatile`, guards,
//! `max_age`, `[as_of]`), every problem collected with its line and column. What is
//! specific to a kind is in the kind's file, never here.

use std::collections::BTreeMap;
use std::path::Path;
use std::str::FromStr;

use croner::Cron;
use serde::Deserialize;
use toml::Spanned;

use super::as_of::{AsOf, AsOfDef};
use super::mapping::{FieldDef, Mapping};
use super::source::{Kind, Read, Reads, Source};
use super::{Connector, KINDS, Mode};
use crate::config::{Config, Guards};
use crate::diag::{FileProblems, Problems};
use crate::lifecycle::Lifecycle;

#[derive(Debug, Deserialize)]
struct KindProbe {
    kind: Option<Spanned<String>>,
}

/// The file shape shared by every kind; `S` is the kind's `[source]` table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ConnectorFile<S> {
    #[allow(dead_code)] // Read by `KindProbe`; declared so that it is not an unknown field.
    kind: String,
    #[serde(default)]
    #[allow(dead_code)] // Documentation for admins only.
    description: Option<String>,
    #[serde(default)]
    label: Option<Spanned<String>>,
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
    #[serde(default)]
    as_of: Option<Spanned<AsOfDef>>,
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

/// The keys every kind shares, as written; a kind's [`super::source::SourceKind::settle`]
/// checks them against the kind and may give them its defaults.
pub(crate) struct Common {
    schedule: Spanned<String>,
    alert_on_first_import: bool,
    /// Full snapshots or changes only.
    pub(crate) mode: Mode,
    enabled: bool,
    max_age: Option<Spanned<String>>,
    link: Option<Spanned<String>>,
    label: Option<Spanned<String>>,
    watch: Vec<Spanned<String>>,
    volatile: Vec<String>,
    fields: BTreeMap<Spanned<String>, Spanned<toml::Value>>,
    /// `[steps]`: source labels → canonical steps.
    pub(crate) steps: BTreeMap<Spanned<String>, Spanned<String>>,
    guards: GuardsDef,
    as_of: Option<Spanned<AsOfDef>>,
}

impl Common {
    /// The keys every kind shares, and the kind's `[source]` table.
    pub(crate) fn split<S>(file: ConnectorFile<S>) -> (Self, S) {
        let common = Self {
            schedule: file.schedule,
            alert_on_first_import: file.alert_on_first_import,
            mode: file.mode,
            enabled: file.enabled,
            max_age: file.max_age,
            link: file.link,
            label: file.label,
            watch: file.watch,
            volatile: file.volatile,
            fields: file.fields,
            steps: file.steps,
            guards: file.guards,
            as_of: file.as_of,
        };
        (common, file.source)
    }
}

/// The kinds a connector file may declare, as messages list them:
/// `"csv", "xml" or "http_json"`.
fn kind_names() -> String {
    let names: Vec<String> = KINDS.iter().map(|k| format!("\"{}\"", k.name)).collect();
    match names.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
        _ => names.concat(),
    }
}

impl Connector {
    /// Validates the text of a connector file (no I/O).
    pub(crate) fn parse(
        path: &Path,
        text: &str,
        config: &Config,
        lifecycle: &Lifecycle,
        problems: &mut Problems,
    ) -> Option<Self> {
        let mut fp = FileProblems::new(path, text, problems);
        let before = fp.count();
        let name = name_of(path, &mut fp);
        let kind = kind_of(&mut fp)?;
        let base = path.parent().unwrap_or(Path::new("."));
        let Read { common, source } = (kind.read)(&mut fp, base)?;
        let schedule = schedule(&common.schedule, &mut fp);
        let fields = field_defs(common.fields, kind, &mut fp);
        let mut mapping = Mapping::validate(fields, common.steps, lifecycle, &mut fp);
        let as_of = as_of(common.as_of.as_ref(), source.as_deref(), &mut fp);
        let mut volatile = common.volatile;
        if let (Some(as_of), Some(mapping)) = (&as_of, &mut mapping) {
            as_of.settle(mapping, &mut volatile);
        }
        if let (Some(source), Some(mapping)) = (&source, &mapping) {
            for problem in source.check_mapping(mapping) {
                fp.file(problem);
            }
        }
        if let Some(mapping) = &mapping {
            check_watch(&common.watch, mapping, &mut fp);
        }
        check_link(common.link.as_ref(), &mut fp);
        check_label(common.label.as_ref(), &mut fp);
        for _ in volatile.iter().filter(|v| v.trim().is_empty()) {
            fp.file("`volatile` lists an empty column name");
        }
        let guards = guards(config.guards, &common.guards, &mut fp);
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
            label: common.label.map(|l| l.into_inner().trim().to_owned()),
            watch: common.watch.into_iter().map(Spanned::into_inner).collect(),
            volatile,
            guards,
            mapping,
            source,
            as_of,
        })
    }
}

/// `[as_of]`, for the kinds that read files (an API's snapshot is dated when
/// it is fetched).
fn as_of(
    def: Option<&Spanned<AsOfDef>>,
    source: Option<&dyn Source>,
    fp: &mut FileProblems<'_>,
) -> Option<AsOf> {
    let def = def?;
    if let Some(source) = source
        && matches!(source.reads(), Reads::Api(_))
    {
        fp.at(
            def.span(),
            "[as_of] dates the files of a drop folder; this connector reads an API, whose snapshots are dated when they are fetched",
        );
        return None;
    }
    AsOf::validate(def, fp)
}

/// The connector's name, its file's stem, which must be a plain name.
fn name_of(path: &Path, fp: &mut FileProblems<'_>) -> String {
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
    name
}

/// The kind the file declares, found in the list of kinds.
fn kind_of(fp: &mut FileProblems<'_>) -> Option<&'static Kind> {
    let probe: KindProbe = fp.parse()?;
    let Some(kind) = probe.kind else {
        fp.file(format!("missing `kind` ({})", kind_names()));
        return None;
    };
    let found = KINDS.iter().find(|k| k.name == kind.get_ref());
    if found.is_none() {
        fp.at(
            kind.span(),
            format!(
                "unknown kind '{}', expected {}",
                kind.get_ref(),
                kind_names()
            ),
        );
    }
    found
}

/// The cron pattern of `schedule`.
fn schedule(schedule: &Spanned<String>, fp: &mut FileProblems<'_>) -> Option<Cron> {
    match Cron::from_str(schedule.get_ref()) {
        Ok(c) => Some(c),
        Err(error) => {
            fp.at(
                schedule.span(),
                format!(
                    "schedule '{}' is not a cron pattern like \"0 */15 * * * *\": {error}",
                    schedule.get_ref()
                ),
            );
            None
        }
    }
}

/// The fields of `[fields]` as written, each read on its own; a field that
/// cannot be read is reported and left out.
fn field_defs(
    fields: BTreeMap<Spanned<String>, Spanned<toml::Value>>,
    kind: &Kind,
    fp: &mut FileProblems<'_>,
) -> Vec<(Spanned<String>, FieldDef)> {
    fields
        .into_iter()
        .filter_map(|(k, v)| {
            let span = v.span();
            match FieldDef::from_value(v.into_inner()) {
                Ok(def) if def.champ().is_some() && !kind.reads_champs => {
                    let kinds: Vec<String> = KINDS
                        .iter()
                        .filter(|k| k.reads_champs)
                        .map(|k| format!("kind = \"{}\"", k.name))
                        .collect();
                    fp.at(span, format!(
                        "field '{}': `champ` and `annotation` read a champ of a Démarches Simplifiées dossier: only for {}",
                        k.get_ref(),
                        kinds.join(" or ")
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
        .collect()
}

/// Each watched field must be mapped.
fn check_watch(watch: &[Spanned<String>], mapping: &Mapping, fp: &mut FileProblems<'_>) {
    for w in watch {
        if !mapping.has_field(w.get_ref()) {
            fp.at(
                w.span(),
                format!("watched field '{}' is not mapped in [fields]", w.get_ref()),
            );
        }
    }
}

/// A `label` is what beneficiaries read: one short line.
fn check_label(label: Option<&Spanned<String>>, fp: &mut FileProblems<'_>) {
    let Some(label) = label else { return };
    let text = label.get_ref().trim();
    let why = if text.is_empty() {
        "is empty"
    } else if text.chars().count() > LABEL_MAX {
        "is longer than 80 characters"
    } else if text.contains(['\n', '\r']) {
        "holds a line break"
    } else {
        return;
    };
    fp.at(
        label.span(),
        format!("label {why}: it names this system to beneficiaries on the front office, in one short line (\"Portail des aides de la Région\")"),
    );
}

/// The longest `label`, in characters.
const LABEL_MAX: usize = 80;

/// A `link` is a web address.
fn check_link(link: Option<&Spanned<String>>, fp: &mut FileProblems<'_>) {
    if let Some(link) = link
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
}

/// The configured guards, with the connector's own thresholds where it sets them.
fn guards(mut guards: Guards, def: &GuardsDef, fp: &mut FileProblems<'_>) -> Guards {
    for (value, slot, key) in [
        (
            def.max_rejected_ratio,
            &mut guards.max_rejected_ratio,
            "max_rejected_ratio",
        ),
        (
            def.max_disappeared_ratio,
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
    guards
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> (Option<Connector>, Problems) {
        let config = Config::load(Some(Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/config.example.toml"
        ))))
        .unwrap();
        let lifecycle = crate::test_support::shipped_lifecycle();
        let mut problems = Problems::default();
        let connector = Connector::parse(
            Path::new("c.toml"),
            text,
            &config,
            &lifecycle,
            &mut problems,
        );
        (connector, problems)
    }

    #[test]
    fn the_kinds_messages_list_are_the_registered_kinds() {
        assert_eq!(
            kind_names(),
            "\"csv\", \"spreadsheet\", \"xml\", \"http_json\" or \"demarches_simplifiees\""
        );
        let mut names: Vec<&str> = KINDS.iter().map(|k| k.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), KINDS.len(), "two kinds share a name");
    }

    #[test]
    fn an_unknown_or_missing_kind_names_the_kinds() {
        let (connector, problems) = parse("kind = \"json\"\n[source]\n[fields]\n");
        assert!(connector.is_none());
        assert_eq!(
            problems.to_string().trim(),
            format!("c.toml:1:8: unknown kind 'json', expected {}", kind_names())
        );
        let (_, problems) = parse("[source]\n[fields]\n");
        assert_eq!(
            problems.to_string().trim(),
            format!("c.toml: missing `kind` ({})", kind_names())
        );
    }

    #[test]
    fn each_kind_reads_its_own_source_table() {
        let common = "[fields]\nid = \"id\"\nstep = \"statut\"\n[steps]\n\"a\" = \"depose\"\n";
        let (csv, problems) = parse(&format!(
            "kind = \"csv\"\n[source]\npath = \"*.csv\"\ndelimiter = \";\"\n{common}"
        ));
        assert!(problems.is_empty(), "{problems}");
        assert!(csv.unwrap().source.folder().is_some());
        // A key of another kind's table is unknown here.
        let (xml, problems) = parse(&format!(
            "kind = \"xml\"\n[source]\npath = \"*.xml\"\nrecord = \"dossier\"\ndelimiter = \";\"\n{common}"
        ));
        assert!(xml.is_none());
        assert!(
            problems.to_string().contains("unknown field `delimiter`"),
            "{problems}"
        );
    }

    #[test]
    fn a_kind_checks_the_common_keys_it_depends_on() {
        // http_json: `updated_since` asks for changes only.
        let (_, problems) = parse(
            "kind = \"http_json\"\n[source]\nurl = \"https://x.example/api\"\nrecords = \"/data\"\nupdated_since = \"since\"\n[fields]\nid = \"/id\"\nstep = \"/s\"\n[steps]\n\"a\" = \"depose\"\n",
        );
        assert!(
            problems.to_string().contains("set mode = \"incremental\""),
            "{problems}"
        );
        // demarches_simplifiees: incremental, with default steps.
        let (ds, problems) = parse(
            "kind = \"demarches_simplifiees\"\nmode = \"incremental\"\n[source]\ndemarches = [1]\ntoken_env = \"DS_TOKEN\"\n[fields]\nid = \"/number\"\nstep = \"/state\"\n",
        );
        assert!(problems.is_empty(), "{problems}");
        let ds = ds.unwrap();
        assert_eq!(ds.mapping.step_for("en_instruction"), Some("instruction"));
        assert!(ds.source.address().is_some() && ds.source.folder().is_none());
        // `champ` is for the kinds that read champs.
        let (_, problems) = parse(
            "kind = \"csv\"\n[source]\npath = \"*.csv\"\n[fields]\nid = \"id\"\nstep = \"statut\"\n\"extra.x\" = { champ = \"Q1\" }\n[steps]\n\"a\" = \"depose\"\n",
        );
        assert!(
            problems
                .to_string()
                .contains("only for kind = \"demarches_simplifiees\""),
            "{problems}"
        );
    }

    /// Issue 19: `[as_of]` is read strictly, each problem with its place.
    #[test]
    fn issue_19_as_of_is_checked_with_its_place() {
        let common = "[fields]\nid = \"id\"\nstep = \"statut\"\n[steps]\n\"a\" = \"depose\"\n";
        let csv = |as_of: &str| {
            parse(&format!(
                "kind = \"csv\"\n[source]\npath = \"*.csv\"\n{common}{as_of}"
            ))
        };
        let (c, problems) = csv("[as_of]\nfile_name = \"export-%Y-%m-%d.csv\"\ntime = \"06:00\"\n");
        assert!(problems.is_empty(), "{problems}");
        assert_eq!(c.unwrap().as_of.unwrap().time.to_string(), "06:00:00");
        let (_, problems) = csv("[as_of]\nfile_name = \"x-%Y.csv\"\nmodified = true\n");
        assert!(
            problems
                .to_string()
                .contains("c.toml:9:1: [as_of] takes exactly one of"),
            "{problems}"
        );
        let (_, problems) = csv("[as_of]\nfile_name = \"x-%Y-%m.csv\"\ntime = \"6h\"\n");
        let text = problems.to_string();
        assert!(
            text.contains("c.toml:10:13: [as_of] file_name: 'x-%Y-%m.csv' has no %d"),
            "{text}"
        );
        assert!(
            text.contains("c.toml:11:8: [as_of] time: '6h' is not a time of day"),
            "{text}"
        );
        let (c, problems) = csv("[as_of]\ncolumn = \"Date d'export\"\n");
        assert!(problems.is_empty(), "{problems}");
        assert!(c.unwrap().as_of.unwrap().column().is_some());
        let (_, problems) = parse(
            "kind = \"http_json\"\n[source]\nurl = \"https://x.example/api\"\nrecords = \"/data\"\n[fields]\nid = \"/id\"\nstep = \"/s\"\n[steps]\n\"a\" = \"depose\"\n[as_of]\nmodified = true\n",
        );
        assert!(
            problems.to_string().contains("this connector reads an API"),
            "{problems}"
        );
    }

    #[test]
    fn a_label_is_one_short_line_for_beneficiaries() {
        let common = "[source]\npath = \"*.csv\"\n[fields]\nid = \"id\"\nstep = \"statut\"\n[steps]\n\"a\" = \"depose\"\n";
        let (csv, problems) = parse(&format!(
            "kind = \"csv\"\nlabel = \"  Portail des aides \"\n{common}"
        ));
        assert!(problems.is_empty(), "{problems}");
        assert_eq!(csv.unwrap().label.as_deref(), Some("Portail des aides"));
        for (label, why) in [
            ("\" \"", "label is empty"),
            (
                &format!("\"{}\"", "a".repeat(81)),
                "label is longer than 80 characters",
            ),
            ("\"a\\nb\"", "label holds a line break"),
        ] {
            let (csv, problems) = parse(&format!("kind = \"csv\"\nlabel = {label}\n{common}"));
            assert!(csv.is_none());
            assert!(
                problems
                    .to_string()
                    .starts_with(&format!("c.toml:2:9: {why}: ")),
                "{problems}"
            );
        }
    }
}
