//! The mapping from a source's records to canonical dossiers, shared by every
//! tabular kind.
//!
//! Owns the `[fields]` and `[steps]` tables of connector files: validation,
//! resolution of column names against a header row (aliases, tolerant matching,
//! "closest header" hints), and turning one record into a [`Dossier`](crate::model::Dossier) or the list
//! of reasons it is rejected (`resolved`: the mapping matched to one file's
//! columns). Pure: no I/O, no clock.

use std::collections::{BTreeMap, HashMap};
use std::ops::Range;

use serde::Deserialize;
use toml::Spanned;

use crate::diag::FileProblems;
use crate::diag::closest;
use crate::lifecycle::Lifecycle;
use crate::model::{self, EXTRA_PREFIX, FieldKind, ID, STEP};
use crate::value::{AmountFormat, DateFormat};

/// What to do with a value that does not parse.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum OnInvalid {
    /// Reject the whole record (the default: a bad value is never guessed).
    #[default]
    Reject,
    /// Keep the record without this value, and report it as a warning.
    Ignore,
}

/// What an empty cell does to a value stored before.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum OnEmpty {
    /// The value is erased (watched, the field changes).
    Clear,
    /// The stored value is kept, and a warning says so on the run: the default
    /// for amounts and dates, which a back office never empties (an empty cell
    /// there is a cut row or a failed export, and must not erase a granted
    /// amount unnoticed).
    Keep,
    /// The record is rejected.
    Reject,
}

/// Where a field's value comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ValueSource {
    /// One column, known by any of these header names.
    Column(Vec<String>),
    /// Several columns joined with a separator (composite ids).
    Columns(Vec<String>, String),
    /// The same value for every record (a source with one status, such as SCDL).
    Constant(String),
}

/// A champ, or an annotation privée, of a Démarches Simplifiées dossier, named
/// by its id or its label: `{ champ = "Montant demandé" }`,
/// `{ annotation = "Q2hhbXAtMTIz" }`. The DS connector reads it under the JSON
/// pointer [`DsChamp::pointer`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DsChamp {
    /// An annotation privée (instructeurs' own champs), not a champ of the usager.
    pub annotation: bool,
    /// The id or the label, as written.
    pub key: String,
}

impl DsChamp {
    /// A champ of the usager's form.
    pub(crate) fn champ(key: &str) -> Self {
        Self {
            annotation: false,
            key: key.to_owned(),
        }
    }

    /// An annotation privée.
    pub(crate) fn annotation(key: &str) -> Self {
        Self {
            annotation: true,
            key: key.to_owned(),
        }
    }

    /// Where a DS record holds its value: `/champ/<key>` or `/annotation/<key>`.
    pub(crate) fn pointer(&self) -> String {
        let list = if self.annotation {
            "annotation"
        } else {
            "champ"
        };
        format!("/{list}/{}", self.key.replace('~', "~0").replace('/', "~1"))
    }
}

/// One entry of `[fields]`, before validation.
#[derive(Debug, Clone)]
pub(crate) struct FieldDef {
    source: ValueSource,
    champ: Option<DsChamp>,
    format: Option<String>,
    kind: Option<FieldKind>,
    optional: bool,
    on_invalid: OnInvalid,
    on_empty: Option<OnEmpty>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DetailedDef {
    column: Option<OneOrMany>,
    columns: Option<Vec<String>>,
    separator: Option<String>,
    value: Option<String>,
    champ: Option<String>,
    annotation: Option<String>,
    format: Option<String>,
    r#type: Option<FieldKind>,
    #[serde(default)]
    optional: bool,
    #[serde(default)]
    on_invalid: OnInvalid,
    on_empty: Option<OnEmpty>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl FieldDef {
    /// Reads one `[fields]` value: a header name, a list of header aliases, or a table.
    ///
    /// # Errors
    /// A reason naming what is wrong with the value.
    pub(crate) fn from_value(value: toml::Value) -> Result<Self, String> {
        let plain = |source| FieldDef {
            source,
            champ: None,
            format: None,
            kind: None,
            optional: false,
            on_invalid: OnInvalid::Reject,
            on_empty: None,
        };
        match value {
            toml::Value::String(s) => Ok(plain(ValueSource::Column(vec![s]))),
            toml::Value::Array(items) => {
                let aliases = items
                    .into_iter()
                    .map(|v| match v {
                        toml::Value::String(s) => Ok(s),
                        other => Err(format!("header aliases must be strings, found {other}")),
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(plain(ValueSource::Column(aliases)))
            }
            toml::Value::Table(t) => {
                let d =
                    DetailedDef::deserialize(toml::Value::Table(t)).map_err(|e| e.to_string())?;
                let champ = match (d.champ, d.annotation) {
                    (Some(key), None) => Some(DsChamp::champ(&key)),
                    (None, Some(key)) => Some(DsChamp::annotation(&key)),
                    (None, None) => None,
                    (Some(_), Some(_)) => return Err(ONE_SOURCE.to_owned()),
                };
                if champ.as_ref().is_some_and(|c| normalize(&c.key).is_empty()) {
                    return Err("`champ` and `annotation` name a champ by its id or its label, not an empty text".to_owned());
                }
                let source = match (d.column, d.columns, d.value, &champ) {
                    (Some(OneOrMany::One(c)), None, None, None) => ValueSource::Column(vec![c]),
                    (Some(OneOrMany::Many(c)), None, None, None) => ValueSource::Column(c),
                    (None, Some(c), None, None) => ValueSource::Columns(
                        c,
                        d.separator.clone().unwrap_or_else(|| "-".to_owned()),
                    ),
                    (None, None, Some(v), None) => ValueSource::Constant(v),
                    (None, None, None, Some(c)) => ValueSource::Column(vec![c.pointer()]),
                    _ => return Err(ONE_SOURCE.to_owned()),
                };
                if d.separator.is_some() && !matches!(source, ValueSource::Columns(..)) {
                    return Err("`separator` only goes with `columns`".to_owned());
                }
                Ok(FieldDef {
                    source,
                    champ,
                    format: d.format,
                    kind: d.r#type,
                    optional: d.optional,
                    on_invalid: d.on_invalid,
                    on_empty: d.on_empty,
                })
            }
            other => Err(format!(
                "expected a header name, a list of header aliases or a table such as {{ column = \"Date statut\", format = \"%d/%m/%Y\" }}, found {other}"
            )),
        }
    }
}

/// What a table of `[fields]` must give exactly one of.
const ONE_SOURCE: &str = "give exactly one of `column` (a header or a list of aliases), `columns` (joined), `value` (a constant), `champ` or `annotation` (Démarches Simplifiées, by id or label)";

impl FieldDef {
    /// The DS champ or annotation it reads, if it reads one.
    pub(crate) fn champ(&self) -> Option<&DsChamp> {
        self.champ.as_ref()
    }
}

/// How a field's text is parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Parse {
    Text,
    Date(DateFormat),
    Instant(DateFormat),
    Amount(AmountFormat),
    Siret,
    Emails,
}

/// One validated field mapping.
#[derive(Debug, Clone)]
pub(crate) struct FieldMap {
    /// The canonical name (`amount_granted`, `extra.commune`).
    pub name: String,
    /// Where the value comes from.
    pub source: ValueSource,
    /// The DS champ or annotation it reads (its pointer is `source`).
    pub champ: Option<DsChamp>,
    /// `name`, shared by every dossier mapped.
    key: model::FieldName,
    parse: Parse,
    optional: bool,
    on_invalid: OnInvalid,
    on_empty: OnEmpty,
}

impl FieldMap {
    /// Whether its column may be missing from a file.
    pub(crate) fn optional(&self) -> bool {
        self.optional
    }

    /// The kind of value it holds.
    pub(crate) fn kind(&self) -> crate::model::FieldKind {
        use crate::model::FieldKind;
        match self.parse {
            Parse::Text => FieldKind::Text,
            Parse::Date(_) => FieldKind::Date,
            Parse::Instant(_) => FieldKind::Instant,
            Parse::Amount(_) => FieldKind::Amount,
            Parse::Siret => FieldKind::Siret,
            Parse::Emails => FieldKind::Emails,
        }
    }
}

/// The validated `[fields]` and `[steps]` of a connector.
#[derive(Debug, Clone)]
pub struct Mapping {
    fields: Vec<FieldMap>,
    /// Normalized source label → step id.
    steps: HashMap<String, String>,
    /// Source label as the connector file writes it → step id: most exports
    /// write their labels the same way, and this spares normalizing each one.
    written: HashMap<String, String>,
    /// Columns read beside the fields, mapped to none (the `[as_of]` column):
    /// a source whose records name their fields (XML) reads them too.
    beside: Vec<String>,
}

/// Normalizes a header or a label for tolerant matching: trimmed (NBSP and BOM
/// included), inner runs of white space folded to one space, lowercase.
pub(crate) fn normalize(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for word in s
        .split(|c: char| c.is_whitespace() || c == '\u{feff}')
        .filter(|w| !w.is_empty())
    {
        if !out.is_empty() {
            out.push(' ');
        }
        out.extend(word.chars().flat_map(char::to_lowercase));
    }
    out
}

impl Mapping {
    /// Validates `[fields]` and `[steps]` against the canonical fields and the lifecycle.
    pub(crate) fn validate(
        fields: Vec<(Spanned<String>, FieldDef)>,
        steps: BTreeMap<Spanned<String>, Spanned<String>>,
        lifecycle: &Lifecycle,
        fp: &mut FileProblems<'_>,
    ) -> Option<Self> {
        let before = fp.count();
        let mut fields = fields;
        // File order, so that messages and rejections follow what the admin wrote.
        fields.sort_by_key(|(name, _)| name.span().start);
        let out: Vec<FieldMap> = fields
            .into_iter()
            .filter_map(|(name, def)| field_map(name, def, fp))
            .collect();
        for required in [ID, STEP] {
            if !out.iter().any(|f| f.name == required) {
                fp.file(format!("[fields] must map '{required}'"));
            }
        }
        let (table, written) = step_table(steps, lifecycle, fp);
        (fp.count() == before).then_some(Mapping {
            fields: out,
            steps: table,
            written,
            beside: Vec::new(),
        })
    }

    /// Reads `column` too, beside the fields (the `[as_of]` column).
    pub(crate) fn read_beside(&mut self, column: &str) {
        if !self.beside.iter().any(|c| c == column) {
            self.beside.push(column.to_owned());
        }
    }

    /// The columns read beside the fields.
    pub(crate) fn beside(&self) -> &[String] {
        &self.beside
    }

    /// Whether `name` is mapped.
    pub(crate) fn has_field(&self, name: &str) -> bool {
        self.fields.iter().any(|f| f.name == name)
    }

    /// The canonical names of every mapped field.
    pub(crate) fn field_names(&self) -> impl Iterator<Item = &str> {
        self.fields.iter().map(|f| f.name.as_str())
    }

    /// Every mapped field.
    pub(crate) fn fields(&self) -> &[FieldMap] {
        &self.fields
    }

    /// The DS champs and annotations the fields read.
    pub(crate) fn ds_champs(&self) -> Vec<&DsChamp> {
        self.fields
            .iter()
            .filter_map(|f| f.champ.as_ref())
            .collect()
    }

    /// The step a source label maps onto.
    pub(crate) fn step_for(&self, label: &str) -> Option<&str> {
        self.written
            .get(label)
            .or_else(|| self.steps.get(&normalize(label)))
            .map(String::as_str)
    }

    /// How many fields of `row` look like headers of this mapping (to find the header row).
    pub(crate) fn header_score(&self, row: &[String]) -> usize {
        let cells: Vec<String> = row.iter().map(|c| normalize(c)).collect();
        self.fields
            .iter()
            .filter(|f| {
                headers_of(&f.source)
                    .iter()
                    .any(|h| cells.contains(&normalize(h)))
            })
            .count()
    }
}

/// The kind of the field `name`: fixed for the canonical ones, declared (or
/// text) for an extra one; `None`, reported, for an unknown name.
fn field_kind(
    name: &str,
    def: &FieldDef,
    span: &Range<usize>,
    fp: &mut FileProblems<'_>,
) -> Option<FieldKind> {
    let canonical = model::field(name).map(|f| f.kind);
    let kind = if name == ID || name == STEP {
        FieldKind::Text
    } else if let Some(kind) = canonical {
        kind
    } else if name
        .strip_prefix(EXTRA_PREFIX)
        .is_some_and(|rest| !rest.is_empty())
    {
        def.kind.unwrap_or(FieldKind::Text)
    } else {
        let all = [ID, STEP]
            .into_iter()
            .chain(model::FIELDS.iter().map(|f| f.name));
        let hint = closest(name, all)
            .map(|c| format!(" (did you mean '{c}'?)"))
            .unwrap_or_default();
        fp.at(
            span.clone(),
            format!("unknown field '{name}'{hint}; extra fields are named 'extra.something'"),
        );
        return None;
    };
    if let (Some(given), Some(fixed)) = (def.kind, canonical)
        && given != fixed
    {
        fp.at(
            span.clone(),
            format!("field '{name}' is always of type '{}'", fixed.name()),
        );
    }
    Some(kind)
}

/// One `[fields]` entry validated; `None` when it cannot be used (reported).
fn field_map(name: Spanned<String>, def: FieldDef, fp: &mut FileProblems<'_>) -> Option<FieldMap> {
    let span = name.span();
    let name = name.into_inner();
    let kind = field_kind(&name, &def, &span, fp)?;
    let parse = parser(kind, def.format.as_deref())
        .map_err(|reason| fp.at(span.clone(), format!("field '{name}': {reason}")))
        .ok()?;
    let empty_header = match &def.source {
        ValueSource::Column(c) | ValueSource::Columns(c, _) => {
            c.is_empty() || c.iter().any(|h| normalize(h).is_empty())
        }
        ValueSource::Constant(_) => false,
    };
    if empty_header {
        fp.at(span.clone(), format!("field '{name}': empty column name"));
    }
    let required = name == ID || name == STEP;
    if required && (def.optional || def.on_invalid == OnInvalid::Ignore) {
        fp.at(
            span.clone(),
            format!("field '{name}' is required: it cannot be optional or ignored"),
        );
    }
    // Amounts and dates keep their stored value when a cell is empty;
    // text follows the export (an instructor removed is removed).
    let on_empty = def.on_empty.unwrap_or(match parse {
        Parse::Amount(_) | Parse::Date(_) | Parse::Instant(_) => OnEmpty::Keep,
        Parse::Text | Parse::Siret | Parse::Emails => OnEmpty::Clear,
    });
    if required && def.on_empty.is_some() {
        fp.at(
            span,
            format!("field '{name}' is required: an empty one always rejects the record"),
        );
    }
    Some(FieldMap {
        key: model::FieldName::from(name.as_str()),
        name,
        source: def.source,
        champ: def.champ,
        parse,
        optional: def.optional,
        on_invalid: def.on_invalid,
        on_empty,
    })
}

/// `[steps]` validated: the labels, normalised and as written, to their steps.
fn step_table(
    steps: BTreeMap<Spanned<String>, Spanned<String>>,
    lifecycle: &Lifecycle,
    fp: &mut FileProblems<'_>,
) -> (HashMap<String, String>, HashMap<String, String>) {
    let mut table = HashMap::new();
    let mut written = HashMap::new();
    for (label, step) in steps {
        let key = normalize(label.get_ref());
        written.insert(label.get_ref().clone(), step.get_ref().clone());
        if lifecycle.step(step.get_ref()).is_none() {
            let hint = lifecycle
                .closest(step.get_ref())
                .map(|c| format!(" (did you mean '{c}'?)"))
                .unwrap_or_default();
            fp.at(
                step.span(),
                format!(
                    "'{}' is not a step of {}{hint}",
                    step.get_ref(),
                    lifecycle.path.display()
                ),
            );
        }
        if table.insert(key, step.get_ref().clone()).is_some() {
            fp.at(
                label.span(),
                format!(
                    "status label '{}' is mapped twice (labels ignore case and extra spaces)",
                    label.get_ref()
                ),
            );
        }
    }
    if table.is_empty() {
        fp.file("[steps] must map the source's status labels onto lifecycle steps");
    }
    (table, written)
}

fn headers_of(source: &ValueSource) -> &[String] {
    match source {
        ValueSource::Column(c) | ValueSource::Columns(c, _) => c,
        ValueSource::Constant(_) => &[],
    }
}

fn missing_message(field: &str, aliases: &[String], headers: &[String]) -> String {
    let wanted = aliases
        .iter()
        .map(|a| format!("'{a}'"))
        .collect::<Vec<_>>()
        .join(" or ");
    let nearest = aliases
        .iter()
        .filter_map(|a| {
            let a = normalize(a);
            // Under two header levels, `Group/Column` is close to `Column`.
            headers
                .iter()
                .map(|h| {
                    let whole = normalize(h);
                    let leaf = whole.rsplit('/').next().unwrap_or_default();
                    let score =
                        strsim::jaro_winkler(&a, &whole).max(strsim::jaro_winkler(&a, leaf));
                    (score, h)
                })
                .max_by(|x, y| x.0.total_cmp(&y.0))
        })
        .max_by(|x, y| x.0.total_cmp(&y.0));
    match nearest {
        Some((score, h)) if score > 0.6 => {
            format!("missing column {wanted} for field '{field}' (closest header found: '{h}')")
        }
        _ => format!("missing column {wanted} for field '{field}'"),
    }
}

/// How a date or instant column is written, as its `format` says: `auto` (the
/// default) or a strftime pattern. What `[fields]` and `[as_of] column` read.
///
/// # Errors
/// A pattern chrono cannot read.
pub(crate) fn date_format(format: Option<&str>) -> Result<DateFormat, String> {
    check_pattern(format)?;
    Ok(match format {
        None | Some("auto") => DateFormat::Auto,
        Some(p) => DateFormat::pattern(p),
    })
}

fn parser(kind: FieldKind, format: Option<&str>) -> Result<Parse, String> {
    Ok(match kind {
        FieldKind::Date => Parse::Date(date_format(format)?),
        FieldKind::Instant => Parse::Instant(date_format(format)?),
        FieldKind::Amount => Parse::Amount(match format {
            None | Some("auto") => AmountFormat::Auto,
            Some("fr_decimal") => AmountFormat::FrDecimal,
            Some("decimal") => AmountFormat::Decimal,
            Some(other) => {
                return Err(format!(
                    "amount format '{other}' is not one of \"auto\", \"fr_decimal\" (26 956,00), \"decimal\" (26956.00)"
                ));
            }
        }),
        FieldKind::Text | FieldKind::Siret | FieldKind::Emails if format.is_some() => {
            return Err(format!(
                "`format` does not apply to a field of type '{}'",
                kind.name()
            ));
        }
        FieldKind::Text => Parse::Text,
        FieldKind::Siret => Parse::Siret,
        FieldKind::Emails => Parse::Emails,
    })
}

fn check_pattern(format: Option<&str>) -> Result<(), String> {
    use chrono::format::{Item, StrftimeItems};
    match format {
        Some(p) if p != "auto" => {
            if StrftimeItems::new(p).any(|i| matches!(i, Item::Error)) {
                Err(format!(
                    "'{p}' is not a valid date pattern (chrono strftime, e.g. \"%d/%m/%Y\")"
                ))
            } else {
                Ok(())
            }
        }
        _ => Ok(()),
    }
}

mod resolved;

pub(crate) use resolved::{FieldIssue, Mapped, Resolved};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diag::Problems;
    use std::path::Path;

    fn lifecycle() -> Lifecycle {
        let mut p = Problems::default();
        Lifecycle::parse(
            Path::new("lifecycle.toml"),
            include_str!("../../../rules/lifecycle.toml"),
            &mut p,
        )
        .unwrap()
    }

    fn mapping(fields: &str, steps: &str) -> Result<Mapping, String> {
        #[derive(Deserialize)]
        struct T {
            fields: BTreeMap<Spanned<String>, Spanned<toml::Value>>,
            steps: BTreeMap<Spanned<String>, Spanned<String>>,
        }
        let text = format!("[fields]\n{fields}\n[steps]\n{steps}\n");
        let t: T = toml::from_str(&text).unwrap();
        let mut problems = Problems::default();
        let mut fp = FileProblems::new(Path::new("c.toml"), &text, &mut problems);
        let mut defs = Vec::new();
        for (k, v) in t.fields {
            let span = v.span();
            match FieldDef::from_value(v.into_inner()) {
                Ok(d) => defs.push((k, d)),
                Err(e) => fp.at(span, e),
            }
        }
        Mapping::validate(defs, t.steps, &lifecycle(), &mut fp).ok_or_else(|| problems.to_string())
    }

    fn row(cells: &[&str]) -> Vec<String> {
        cells.iter().map(|s| s.to_string()).collect()
    }

    const FIELDS: &str = r#"
        id = ["N° dossier", "Dossier - Code"]
        step = "Statut"
        amount_granted = { column = "Montant voté", format = "fr_decimal" }
        "beneficiary.siret" = { column = "SIRET", on_invalid = "ignore" }
        "extra.date_cp" = { column = "Date CP", type = "date", optional = true }
    "#;
    const STEPS: &str = r#""Voté en CP" = "accorde"
        "Instruction en cours" = "instruction""#;

    #[test]
    fn headers_match_tolerantly_with_aliases() {
        let m = mapping(FIELDS, STEPS).unwrap();
        let headers = row(&["  dossier -  code ", "STATUT", "Montant\u{a0}voté", "Siret"]);
        let r = m.resolve(&headers).unwrap();
        let rec = row(&["HDF-1", " voté  en cp ", "26 956,00 €", "123"]);
        let get = |i: usize| rec.get(i).map(String::as_str);
        let mapped = r.map(get, chrono_tz::Europe::Paris).unwrap();
        assert_eq!(mapped.dossier.id, "HDF-1");
        assert_eq!(mapped.dossier.step, "accorde");
        assert_eq!(
            mapped
                .dossier
                .get("amount_granted")
                .map(ToString::to_string)
                .as_deref(),
            Some("26956.00")
        );
        assert_eq!(mapped.dossier.get("beneficiary.siret"), None);
        assert_eq!(mapped.warnings.len(), 1);
        assert_eq!(mapped.warnings[0].field, "beneficiary.siret");
    }

    #[test]
    fn a_date_read_again_reads_the_same_in_its_time_zone() {
        let fields = r#"
            id = "N°"
            step = "Statut"
            step_since = { column = "Date", format = "%d/%m/%Y" }
            "extra.vote" = { column = "Vote", type = "instant" }
        "#;
        let m = mapping(fields, STEPS).unwrap();
        let r = m.resolve(&row(&["N°", "Statut", "Date", "Vote"])).unwrap();
        let map = |date: &str, vote: &str, tz| {
            let rec = row(&["1", "Voté en CP", date, vote]);
            r.map(|i: usize| rec.get(i).map(String::as_str), tz)
        };
        let paris = chrono_tz::Europe::Paris;
        for _ in 0..2 {
            let d = map("30/03/2025", "2025-03-30 12:00", paris)
                .unwrap()
                .dossier;
            assert_eq!(
                d.get("step_since").map(ToString::to_string).as_deref(),
                Some("2025-03-29T23:00:00Z")
            );
            assert_eq!(
                d.get("extra.vote").map(ToString::to_string).as_deref(),
                Some("2025-03-30T10:00:00Z")
            );
            let errors = map("31/02/2025", "", paris).unwrap_err();
            assert_eq!(errors.len(), 1, "{errors:?}");
            assert_eq!(errors[0].field, "step_since");
            assert!(errors[0].reason.contains("31/02/2025"), "{errors:?}");
        }
        let d = map("30/03/2025", "2025-03-30 12:00", chrono_tz::UTC)
            .unwrap()
            .dossier;
        assert_eq!(
            d.get("step_since").map(ToString::to_string).as_deref(),
            Some("2025-03-30T00:00:00Z")
        );
        assert_eq!(
            d.get("extra.vote").map(ToString::to_string).as_deref(),
            Some("2025-03-30T12:00:00Z")
        );
    }

    #[test]
    fn status_labels_map_as_written_or_tolerantly() {
        let m = mapping(FIELDS, STEPS).unwrap();
        assert_eq!(m.step_for("Voté en CP"), Some("accorde"));
        assert_eq!(m.step_for("VOTÉ\u{a0}EN  cp"), Some("accorde"));
        assert_eq!(m.step_for("instruction en cours"), Some("instruction"));
        assert_eq!(m.step_for("Voté"), None);
    }

    #[test]
    fn missing_header_names_the_closest() {
        let m = mapping(FIELDS, STEPS).unwrap();
        let err = m
            .resolve(&row(&["N° dossier", "Statuts", "Montant vote", "SIRET"]))
            .unwrap_err();
        assert_eq!(err.len(), 2, "{err:?}");
        assert!(
            err[0].contains(
                "missing column 'Statut' for field 'step' (closest header found: 'Statuts')"
            ),
            "{err:?}"
        );
        assert!(err[1].contains("'Montant voté'"), "{err:?}");
    }

    #[test]
    fn record_errors_are_all_reported() {
        let m = mapping(FIELDS, STEPS).unwrap();
        let headers = row(&["N° dossier", "Statut", "Montant voté", "SIRET"]);
        let r = m.resolve(&headers).unwrap();
        let rec = row(&["", "Payé", "beaucoup", ""]);
        let errors = r
            .map(|i| rec.get(i).map(String::as_str), chrono_tz::Europe::Paris)
            .unwrap_err();
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["id", "amount_granted", "step"], "{errors:?}");
        assert!(errors[2].reason.contains("unknown status label 'Payé'"));
    }

    #[test]
    fn constant_and_joined_columns() {
        let m = mapping(
            r#"id = { columns = ["idAttribuant", "referenceDecision"], separator = "/" }
               step = { value = "Attribuée" }"#,
            r#""attribuée" = "accorde""#,
        )
        .unwrap();
        let r = m
            .resolve(&row(&["referenceDecision", "idAttribuant"]))
            .unwrap();
        let rec = row(&["CONV-12", "21590001"]);
        let d = r
            .map(|i| rec.get(i).map(String::as_str), chrono_tz::Europe::Paris)
            .unwrap()
            .dossier;
        assert_eq!(d.id, "21590001/CONV-12");
        assert_eq!(d.step, "accorde");
        // An empty part keeps its place, so that different grants do not collide.
        let rec = row(&["", "21590001"]);
        let id = r.id(&|i| rec.get(i).map(String::as_str)).unwrap();
        assert_eq!(id, "21590001/");
        let rec = row(&["", " "]);
        assert!(r.id(&|i| rec.get(i).map(String::as_str)).is_none());
    }

    #[test]
    fn invalid_mapping_reports_every_problem() {
        let err = mapping(
            r#"id = "N°"
               benefciary_email = "Courriel"
               amount_granted = { column = "M", format = "euros" }
               "beneficiary.name" = { column = "B", colum = "x" }"#,
            r#""Voté" = "acorde""#,
        )
        .unwrap_err();
        for needle in [
            "unknown field 'benefciary_email' (did you mean 'beneficiary.email'?)",
            "amount format 'euros'",
            "unknown field `colum`",
            "'acorde' is not a step of lifecycle.toml (did you mean 'accorde'?)",
            "[fields] must map 'step'",
        ] {
            assert!(err.contains(needle), "missing {needle:?} in:\n{err}");
        }
        assert!(err.contains("c.toml:"), "{err}");
    }

    #[test]
    fn header_score_finds_the_header_row() {
        let m = mapping(FIELDS, STEPS).unwrap();
        assert_eq!(m.header_score(&row(&["Export des dossiers", "", ""])), 0);
        assert_eq!(
            m.header_score(&row(&["N° dossier", "Statut", "Montant voté", "SIRET"])),
            4
        );
    }
}
