//! The canonical lifecycle of a dossier, read from `rules/lifecycle.toml`.
//!
//! Owns the list of steps (id, French label, order, final, expected duration,
//! when a dossier counts as stalled there), the deadlines dossiers are reminded
//! of, and their validation. Connectors map their labels onto these step ids; the
//! diff and the rules only ever see step ids.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::calendar::Sittings;
use crate::diag::{Problems, closest, parse_duration};

/// The file name of the lifecycle inside the rules folder.
pub(crate) const FILE_NAME: &str = "lifecycle.toml";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LifecycleDef {
    stalled_after: Option<String>,
    step: Vec<StepDef>,
    #[serde(default)]
    pieces: Vec<PiecesDef>,
    #[serde(default)]
    deadline: Vec<DeadlineDef>,
    #[serde(default)]
    calendar: Vec<CalendarDef>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CalendarDef {
    step: String,
    schemes: Option<Vec<String>>,
    sessions: Vec<chrono::NaiveDate>,
    lead_time: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DeadlineDef {
    field: String,
    label: String,
    before: Vec<String>,
    #[serde(default)]
    steps: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PiecesDef {
    scheme: String,
    step: String,
    list: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StepDef {
    id: String,
    label: String,
    order: u32,
    #[serde(default)]
    r#final: bool,
    expected_duration: Option<String>,
    #[serde(default)]
    pieces: Vec<String>,
    next: Option<Vec<String>>,
    stalled_after: Option<String>,
    #[serde(default)]
    counted_in: Counted,
}

/// How the time a dossier spends in a step is counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Counted {
    /// Calendar days.
    #[default]
    Days,
    /// Business days: weekdays that are not public holidays of metropolitan
    /// France. The step's durations count them: `10d` is ten business days, a
    /// week five.
    BusinessDays,
}

/// When a dossier counts as stalled in a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stall {
    /// Never.
    Off,
    /// Past this percentile (80 or 90) of the stays in the step, as the delay
    /// estimates give it (or past the expected duration, when they rest on it).
    Percentile(u8),
    /// Past a fixed time in the step.
    After(Duration),
}

impl Stall {
    /// Parses `off`, `p80`, `p90` or a duration (`8w`).
    ///
    /// # Errors
    /// A reason naming the value.
    pub(crate) fn parse(text: &str) -> Result<Self, String> {
        match text.trim() {
            "off" => Ok(Self::Off),
            "p80" => Ok(Self::Percentile(80)),
            "p90" => Ok(Self::Percentile(90)),
            other => parse_duration(other).map(Self::After).map_err(|_| {
                format!("'{text}' is not \"off\", \"p80\", \"p90\" or a duration like \"8w\"")
            }),
        }
    }

    /// As written in the lifecycle, for events and messages.
    pub(crate) fn text(self) -> String {
        match self {
            Self::Off => "off".to_owned(),
            Self::Percentile(p) => format!("p{p}"),
            Self::After(d) => humantime::format_duration(d).to_string(),
        }
    }
}

/// A date field dossiers are reminded of, some days before.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deadline {
    /// The date field (`justification_due`, `expires_on`, `extra.…`).
    pub field: String,
    /// What the date is, in French, for messages (`la date limite des justificatifs`).
    pub label: String,
    /// How many days before it a reminder is due, largest first.
    pub days_before: Vec<u32>,
    /// The steps the dossier must be in (empty: any step that is not final).
    pub steps: Vec<String>,
}

/// One canonical step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Step {
    /// Stable identifier (`instruction`).
    pub id: String,
    /// French label shown to people (`En cours d'instruction`).
    pub label: String,
    /// Position in the normal course of a dossier.
    pub order: u32,
    /// Whether a dossier normally stays in this step for good.
    pub is_final: bool,
    /// The usual time spent in the step, when declared.
    pub expected_duration: Option<Duration>,
    /// What the beneficiary is expected to provide at this step.
    pub pieces: Vec<String>,
    /// The usual next steps, when declared (else: the steps of the next order).
    pub next: Option<Vec<String>>,
    /// When a dossier counts as stalled here (always `Off` for a final step).
    pub stalled_after: Stall,
    /// How the time spent here is counted.
    pub counted_in: Counted,
}

/// The sessions that end a step, for the schemes matching globs (all: `None`).
#[derive(Debug, Clone)]
struct SchemeSittings {
    step: String,
    schemes: Option<Vec<globset::GlobMatcher>>,
    sittings: Sittings,
}

/// The pieces expected at a step for the schemes matching a glob.
#[derive(Debug, Clone)]
struct SchemePieces {
    scheme: globset::GlobMatcher,
    step: String,
    list: Vec<String>,
}

/// The validated lifecycle.
#[derive(Debug, Clone)]
pub struct Lifecycle {
    steps: Vec<Step>,
    pieces: Vec<SchemePieces>,
    calendars: Vec<SchemeSittings>,
    /// The deadlines dossiers are reminded of.
    pub deadlines: Vec<Deadline>,
    /// Where it was read from, for messages.
    pub path: PathBuf,
}

impl Lifecycle {
    /// Reads and validates the lifecycle file, adding every problem to `problems`.
    ///
    /// Returns `None` when the file cannot be used at all.
    pub fn load(path: &Path, problems: &mut Problems) -> Option<Self> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(error) => {
                problems.push(path, format!("cannot read the lifecycle: {error}"));
                return None;
            }
        };
        Self::parse(path, &text, problems)
    }

    /// Validates the text of a lifecycle file (pure; see [`Lifecycle::load`]).
    pub(crate) fn parse(path: &Path, text: &str, problems: &mut Problems) -> Option<Self> {
        let def: LifecycleDef = match crate::diag::from_toml(text) {
            Ok(def) => def,
            Err(errors) => {
                for error in errors {
                    problems.push(path, error.to_string().trim_end().to_owned());
                }
                return None;
            }
        };
        let before = problems.len();
        let default_stall =
            stall(path, def.stalled_after.as_deref(), "", problems).unwrap_or(Stall::Off);
        let mut steps = steps(path, def.step, default_stall, problems);
        let known = Known {
            path,
            ids: steps.iter().map(|s| s.id.as_str()).collect(),
        };
        for s in &steps {
            for next in s.next.iter().flatten() {
                known.check(next, &format!("step '{}', next", s.id), problems);
            }
        }
        let pieces = pieces(&known, def.pieces, problems);
        let calendars = def
            .calendar
            .into_iter()
            .filter_map(|c| calendar(&known, &steps, c, problems))
            .collect();
        let deadlines = def
            .deadline
            .into_iter()
            .map(|d| deadline(&known, d, problems))
            .collect();
        steps.sort_by_key(|s| s.order);
        (problems.len() == before).then(|| Self {
            steps,
            pieces,
            calendars,
            deadlines,
            path: path.to_owned(),
        })
    }

    /// The step with this id.
    pub(crate) fn step(&self, id: &str) -> Option<&Step> {
        self.steps.iter().find(|s| s.id == id)
    }

    /// Every step, by order.
    pub(crate) fn steps(&self) -> &[Step] {
        &self.steps
    }

    /// The French label of a step, or its id when it is unknown (a step removed
    /// from the lifecycle after it was stored).
    pub(crate) fn label<'a>(&'a self, id: &'a str) -> &'a str {
        self.step(id).map_or(id, |s| s.label.as_str())
    }

    /// What the beneficiary is expected to provide at `step` for `scheme`: the
    /// first `[[pieces]]` entry matching both, else the step's own list.
    pub(crate) fn pieces<'a>(&'a self, step: &str, scheme: Option<&str>) -> &'a [String] {
        scheme
            .and_then(|scheme| {
                self.pieces
                    .iter()
                    .find(|p| p.step == step && p.scheme.is_match(scheme))
            })
            .map(|p| p.list.as_slice())
            .or_else(|| self.step(step).map(|s| s.pieces.as_slice()))
            .unwrap_or(&[])
    }

    /// The sessions that end `step` for a dossier of `scheme`: the first
    /// `[[calendar]]` of the step whose `schemes` match (one without serves
    /// every scheme).
    pub(crate) fn sittings(&self, step: &str, scheme: Option<&str>) -> Option<&Sittings> {
        self.calendars
            .iter()
            .find(|c| {
                c.step == step
                    && c.schemes.as_ref().is_none_or(|globs| {
                        scheme.is_some_and(|s| globs.iter().any(|g| g.is_match(s)))
                    })
            })
            .map(|c| &c.sittings)
    }

    /// The `[[calendar]]`s whose sessions run out within `days` of `today`
    /// (past the last one, the step falls back to its duration in days), each
    /// as a warning that says what to do.
    pub(crate) fn sessions_running_out(&self, today: chrono::NaiveDate, days: i64) -> Vec<String> {
        let soon = crate::calendar::day_number(today) + days;
        self.calendars
            .iter()
            .filter_map(|c| {
                let last = c.sittings.last()?;
                (crate::calendar::day_number(last) < soon).then(|| {
                    let whom = c.schemes.as_ref().map_or(String::new(), |_| " (for some schemes)".to_owned());
                    format!(
                        "{}: the sessions of step '{}'{whom} end on {last}: past it, its dossiers are predicted by duration again; list the next sessions in its [[calendar]]",
                        self.path.display(),
                        c.step
                    )
                })
            })
            .collect()
    }

    /// The usual next steps after `step`: its `next` list, else the steps of the
    /// smallest order above its own (none after a final step).
    pub(crate) fn next(&self, step: &str) -> Vec<&Step> {
        let Some(current) = self.step(step) else {
            return Vec::new();
        };
        if let Some(next) = &current.next {
            return next.iter().filter_map(|id| self.step(id)).collect();
        }
        if current.is_final {
            return Vec::new();
        }
        let following = self
            .steps
            .iter()
            .map(|s| s.order)
            .filter(|&o| o > current.order)
            .min();
        self.steps
            .iter()
            .filter(|s| Some(s.order) == following)
            .collect()
    }

    /// The closest known step id, for "did you mean" hints.
    pub(crate) fn closest(&self, id: &str) -> Option<&str> {
        closest(id, self.steps.iter().map(|s| s.id.as_str()))
    }
}

/// A `stalled_after` of the lifecycle (`what` names the step, or is empty).
fn stall(path: &Path, text: Option<&str>, what: &str, problems: &mut Problems) -> Option<Stall> {
    let text = text?;
    Stall::parse(text)
        .map_err(|reason| problems.push(path, format!("{what}stalled_after: {reason}")))
        .ok()
}

/// The `[[step]]`s, in the file's order.
fn steps(
    path: &Path,
    defs: Vec<StepDef>,
    default_stall: Stall,
    problems: &mut Problems,
) -> Vec<Step> {
    let mut seen = HashSet::new();
    let mut steps = Vec::with_capacity(defs.len());
    for s in defs {
        if !is_identifier(&s.id) {
            problems.push(
                path,
                format!("step id '{}' must use only a-z, 0-9 and _", s.id),
            );
        }
        if !seen.insert(s.id.clone()) {
            problems.push(path, format!("step '{}' is declared twice", s.id));
        }
        if s.label.trim().is_empty() {
            problems.push(path, format!("step '{}' has an empty label", s.id));
        }
        let expected_duration = match s.expected_duration.as_deref().map(parse_duration) {
            None => None,
            Some(Ok(d)) => Some(counted(s.counted_in, s.expected_duration.as_deref(), d)),
            Some(Err(reason)) => {
                problems.push(path, format!("step '{}': expected_duration {reason}", s.id));
                None
            }
        };
        let stalled_after = if s.r#final {
            Stall::Off
        } else {
            let what = format!("step '{}': ", s.id);
            match stall(path, s.stalled_after.as_deref(), &what, problems) {
                Some(Stall::After(d)) => {
                    Stall::After(counted(s.counted_in, s.stalled_after.as_deref(), d))
                }
                Some(other) => other,
                None => default_stall,
            }
        };
        steps.push(Step {
            id: s.id,
            label: s.label,
            order: s.order,
            is_final: s.r#final,
            expected_duration,
            pieces: s.pieces,
            next: s.next,
            stalled_after,
            counted_in: s.counted_in,
        });
    }
    if steps.is_empty() {
        problems.push(path, "the lifecycle declares no [[step]]");
    }
    steps
}

/// A duration written for a step, in the step's time: counted in business
/// days, days (`d`) are business days and longer units count five a week.
fn counted(counted_in: Counted, text: Option<&str>, d: Duration) -> Duration {
    let days = text.is_some_and(|t| t.trim_end().ends_with('d') || t.trim_end().ends_with("days"));
    match counted_in {
        Counted::BusinessDays if !days => d * 5 / 7,
        _ => d,
    }
}

/// One `[[calendar]]`: the step must be declared, not final, the sessions listed.
fn calendar(
    known: &Known<'_>,
    steps: &[Step],
    c: CalendarDef,
    problems: &mut Problems,
) -> Option<SchemeSittings> {
    let what = format!("[[calendar]] {}", c.step);
    known.check(&c.step, "[[calendar]] step", problems);
    if steps.iter().any(|s| s.id == c.step && s.is_final) {
        problems.push(
            known.path,
            format!("{what}: a final step has no sessions to wait for"),
        );
    }
    if c.sessions.is_empty() {
        problems.push(
            known.path,
            format!("{what}: sessions lists no date (\"2027-01-22\")"),
        );
    }
    let lead = match c.lead_time.as_deref().map(parse_duration) {
        None => Duration::ZERO,
        Some(Ok(d)) => d,
        Some(Err(reason)) => {
            problems.push(known.path, format!("{what}: lead_time {reason}"));
            Duration::ZERO
        }
    };
    let mut globs = Vec::new();
    for scheme in c.schemes.iter().flatten() {
        match globset::Glob::new(scheme) {
            Ok(glob) => globs.push(glob.compile_matcher()),
            Err(error) => problems.push(
                known.path,
                format!("{what}: scheme '{scheme}' is not a valid glob: {error}"),
            ),
        }
    }
    Some(SchemeSittings {
        schemes: c.schemes.map(|_| globs),
        sittings: Sittings::new(
            &c.sessions,
            i64::try_from(lead.as_secs()).unwrap_or(i64::MAX),
        ),
        step: c.step,
    })
}

/// The step ids a lifecycle declares, to check the steps other entries name.
struct Known<'a> {
    path: &'a Path,
    ids: HashSet<&'a str>,
}

impl Known<'_> {
    /// Says so when `id` is no declared step (`what`: where it is named).
    fn check(&self, id: &str, what: &str, problems: &mut Problems) {
        if !self.ids.contains(id) {
            let hint = closest(id, self.ids.iter().copied())
                .map(|c| format!(" (did you mean '{c}'?)"))
                .unwrap_or_default();
            problems.push(self.path, format!("{what}: unknown step '{id}'{hint}"));
        }
    }
}

/// The `[[pieces]]` entries.
fn pieces(known: &Known<'_>, defs: Vec<PiecesDef>, problems: &mut Problems) -> Vec<SchemePieces> {
    let mut pieces = Vec::with_capacity(defs.len());
    for p in defs {
        known.check(&p.step, "[[pieces]] step", problems);
        match globset::Glob::new(&p.scheme) {
            Ok(glob) => pieces.push(SchemePieces {
                scheme: glob.compile_matcher(),
                step: p.step,
                list: p.list,
            }),
            Err(error) => problems.push(
                known.path,
                format!(
                    "[[pieces]] scheme '{}' is not a valid glob: {error}",
                    p.scheme
                ),
            ),
        }
    }
    pieces
}

/// One `[[deadline]]`.
fn deadline(known: &Known<'_>, d: DeadlineDef, problems: &mut Problems) -> Deadline {
    let path = known.path;
    let what = format!("[[deadline]] {}", d.field);
    let date = crate::model::FIELDS
        .iter()
        .any(|f| f.name == d.field && f.kind == crate::model::FieldKind::Date);
    if !date && !d.field.starts_with(crate::model::EXTRA_PREFIX) {
        problems.push(
            path,
            format!(
                "{what}: not a date field (one of justification_due, expires_on, decided_on, filed_on, or an extra.* field of format \"date\")"
            ),
        );
    }
    if d.label.trim().is_empty() {
        problems.push(path, format!("{what}: the label is empty"));
    }
    for step in &d.steps {
        known.check(step, &format!("{what}, steps"), problems);
    }
    let mut days_before = Vec::with_capacity(d.before.len());
    for b in &d.before {
        match parse_duration(b) {
            Ok(lead) => days_before.push((lead.as_secs() / 86_400) as u32),
            Err(reason) => problems.push(path, format!("{what}: before: {reason}")),
        }
    }
    if d.before.is_empty() {
        problems.push(
            path,
            format!("{what}: before lists no delay (\"30d\", \"7d\")"),
        );
    }
    days_before.sort_unstable_by(|a, b| b.cmp(a));
    days_before.dedup();
    Deadline {
        field: d.field,
        label: d.label,
        days_before,
        steps: d.steps,
    }
}

/// Whether `s` is a lowercase identifier (`a-z`, `0-9`, `_`).
pub(crate) fn is_identifier(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHIPPED: &str = include_str!("../rules/lifecycle.toml");

    #[test]
    fn shipped_lifecycle_is_valid() {
        let mut problems = Problems::default();
        let lc = Lifecycle::parse(Path::new("lifecycle.toml"), SHIPPED, &mut problems)
            .unwrap_or_else(|| panic!("{problems}"));
        assert_eq!(lc.steps()[0].id, "depose");
        assert_eq!(lc.label("instruction"), "En cours d'instruction");
        assert!(lc.step("cloture").unwrap().is_final);
        assert_eq!(
            lc.step("instruction").unwrap().expected_duration,
            Some(Duration::from_secs(6 * 7 * 86400))
        );
    }

    #[test]
    fn every_problem_is_reported() {
        let text = r#"
            [[step]]
            id = "Instruction"
            label = ""
            order = 1
            expected_duration = "soon"
            [[step]]
            id = "Instruction"
            label = "x"
            order = 2
        "#;
        let mut problems = Problems::default();
        assert!(Lifecycle::parse(Path::new("lc.toml"), text, &mut problems).is_none());
        let all = problems.to_string();
        assert!(all.contains("must use only"), "{all}");
        assert!(all.contains("declared twice"), "{all}");
        assert!(all.contains("empty label"), "{all}");
        assert!(all.contains("'soon' is not a duration"), "{all}");
    }

    /// Issue 19: a calendar's problems are each named; a scheme's calendar
    /// comes before the one for every scheme; business durations count five a week.
    #[test]
    fn calendars_and_business_days() {
        let text = r#"
            [[step]]
            id = "complet"
            label = "Complet"
            order = 1
            counted_in = "business_days"
            expected_duration = "2w"
            stalled_after = "3d"
            [[step]]
            id = "commission"
            label = "Commission"
            order = 2
            [[step]]
            id = "clos"
            label = "Clos"
            order = 3
            final = true
            [[calendar]]
            step = "commission"
            schemes = ["Invest*"]
            sessions = ["2027-02-26"]
            [[calendar]]
            step = "commission"
            sessions = ["2027-03-05", "2027-01-22"]
            lead_time = "10d"
        "#;
        let mut problems = Problems::default();
        let lc = Lifecycle::parse(Path::new("lc.toml"), text, &mut problems)
            .unwrap_or_else(|| panic!("{problems}"));
        let complet = lc.step("complet").unwrap();
        assert_eq!(complet.counted_in, Counted::BusinessDays);
        assert_eq!(
            complet.expected_duration,
            Some(Duration::from_secs(10 * 86_400))
        );
        assert_eq!(
            complet.stalled_after,
            Stall::After(Duration::from_secs(3 * 86_400))
        );
        let day = |d: &str| crate::calendar::day_number(d.parse().unwrap());
        let entered = day("2027-01-01") * 86_400;
        let utc = crate::calendar::Zone::new(chrono_tz::UTC);
        let first = |scheme| {
            lc.sittings("commission", scheme)
                .and_then(|s| s.nth(&utc, entered, 1))
        };
        assert_eq!(first(Some("Investissement")), Some(day("2027-02-26")));
        assert_eq!(first(Some("Culture")), Some(day("2027-01-22")));
        assert_eq!(first(None), Some(day("2027-01-22")));
        assert!(lc.sittings("complet", None).is_none());
        // Sessions running out within 60 days are said, each calendar once.
        let warnings = lc.sessions_running_out("2027-01-10".parse().unwrap(), 60);
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(
            warnings[1].contains("the sessions of step 'commission' end on 2027-03-05"),
            "{warnings:?}"
        );
        assert!(warnings[0].contains("(for some schemes)"), "{warnings:?}");
        assert!(
            lc.sessions_running_out("2026-12-01".parse().unwrap(), 60)
                .is_empty()
        );

        let bad = r#"
            [[step]]
            id = "clos"
            label = "Clos"
            order = 1
            final = true
            [[calendar]]
            step = "clos"
            sessions = []
            lead_time = "soon"
            [[calendar]]
            step = "comission"
            sessions = ["2027-01-22"]
            schemes = ["[a"]
        "#;
        let mut problems = Problems::default();
        assert!(Lifecycle::parse(Path::new("lc.toml"), bad, &mut problems).is_none());
        let all = problems.to_string();
        for expected in [
            "[[calendar]] clos: a final step has no sessions",
            "[[calendar]] clos: sessions lists no date",
            "[[calendar]] clos: lead_time 'soon' is not a duration",
            "[[calendar]] step: unknown step 'comission'",
            "scheme '[a' is not a valid glob",
        ] {
            assert!(all.contains(expected), "{expected}: {all}");
        }
        let mut problems = Problems::default();
        let date = "[[step]]\nid = \"a\"\nlabel = \"A\"\norder = 1\n[[calendar]]\nstep = \"a\"\nsessions = [\"2027-02-30\"]\n";
        assert!(Lifecycle::parse(Path::new("lc.toml"), date, &mut problems).is_none());
        assert!(problems.to_string().contains("line 7"), "{problems}");
    }

    #[test]
    fn unknown_key_names_line_and_column() {
        let text = "[[step]]\nid = \"a\"\nlabel = \"A\"\norder = 1\nfinall = true\n";
        let mut problems = Problems::default();
        assert!(Lifecycle::parse(Path::new("lc.toml"), text, &mut problems).is_none());
        let all = problems.to_string();
        assert!(all.contains("line 5"), "{all}");
        assert!(all.contains("unknown field `finall`"), "{all}");
    }
}
