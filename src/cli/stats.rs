//! `alertissimo stats` and `alertissimo report`: how long dossiers stay in each
//! step, per scheme, as a table or as a page for managers.

use anyhow::Context;
use chrono::Utc;
use clap::ValueEnum;

use super::{Exit, lifecycle, open_existing};
use crate::config::Config;
use crate::delays::StepStats;

/// How `stats` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(super) enum Format {
    /// Aligned columns, durations in days
    Table,
    /// Comma-separated values with a header, durations in days
    Csv,
    /// One JSON array, durations in seconds
    Json,
}

const DAY: f64 = 86_400.0;

/// Writes the managers' report to `out` (whole, or not at all).
pub(super) fn report(config: &Config, out: &std::path::Path) -> anyhow::Result<Exit> {
    let lifecycle = match lifecycle(config) {
        Ok(l) => l,
        Err(exit) => return Ok(exit),
    };
    let store = open_existing(config)?;
    let report = crate::report::gather(
        &store,
        &lifecycle,
        &config.region.name,
        config.delays.min_sample,
        Utc::now(),
        config.timezone,
    )?;
    let html =
        crate::report::render(&report, &lifecycle, config.timezone).map_err(anyhow::Error::msg)?;
    let dir = match out.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => std::path::Path::new("."),
    };
    let mut file = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("cannot write in {}", dir.display()))?;
    std::io::Write::write_all(&mut file, html.as_bytes())
        .with_context(|| format!("cannot write {}", out.display()))?;
    file.persist(out)
        .with_context(|| format!("cannot write {}", out.display()))?;
    eprintln!("wrote {} ({} KB)", out.display(), html.len() / 1024);
    Ok(Exit::Ok)
}

/// Prints the statistics of every scheme's steps, or with `dossiers` every
/// open dossier's prediction, as of `as_of` (default: the last applied import).
pub(super) fn run(
    config: &Config,
    format: Format,
    dossiers: bool,
    as_of: Option<&str>,
) -> anyhow::Result<Exit> {
    let lifecycle = match lifecycle(config) {
        Ok(l) => l,
        Err(exit) => return Ok(exit),
    };
    let store = open_existing(config)?;
    let at = super::as_of(config, &store, as_of)?;
    let delays = store.delays(&lifecycle, config.delays.min_sample, at, config.timezone)?;
    if dossiers {
        return predictions(config, &store, &delays, at, format);
    }
    let rows = delays.table(&lifecycle);
    match format {
        Format::Json => out!("{}", serde_json::to_string_pretty(&rows)?),
        Format::Csv => {
            let mut w = csv::Writer::from_writer(std::io::stdout());
            w.write_record(HEADER)?;
            for row in &rows {
                w.write_record(cells(row))?;
            }
            w.flush()?;
        }
        Format::Table => table(&rows, config.delays.min_sample),
    }
    Ok(Exit::Ok)
}

/// The columns of `stats --dossiers`.
const DOSSIER_HEADER: [&str; 10] = [
    "connector",
    "id",
    "reference",
    "scheme",
    "step",
    "entered",
    "expected",
    "low",
    "high",
    "basis",
];

/// One row of `stats --dossiers`.
#[derive(serde::Serialize)]
struct Predicted {
    connector: String,
    id: String,
    reference: String,
    scheme: Option<String>,
    step: String,
    entered: String,
    expected: Option<chrono::NaiveDate>,
    low: Option<chrono::NaiveDate>,
    high: Option<chrono::NaiveDate>,
    basis: Option<crate::delays::Basis>,
    #[serde(skip_serializing_if = "Option::is_none")]
    not_before: Option<chrono::NaiveDate>,
    sample: u64,
    /// Whether the dates are sessions of the step's `[[calendar]]`.
    sessions: bool,
    /// Why a bound is missing or extrapolated.
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'static str>,
}

/// Prints every open dossier's prediction (none for a final step).
fn predictions(
    config: &Config,
    store: &crate::store::Store,
    delays: &crate::delays::Delays,
    at: chrono::DateTime<Utc>,
    format: Format,
) -> anyhow::Result<Exit> {
    let tz = config.timezone;
    let rows: Vec<Predicted> = store
        .open_dossiers()?
        .into_iter()
        .map(|d| {
            let p = delays
                .estimate(
                    d.scheme.as_deref(),
                    &d.step,
                    d.entered.timestamp(),
                    at.timestamp(),
                )
                .map(|e| e.predict(at, tz));
            Predicted {
                entered: d.entered.with_timezone(&tz).to_rfc3339(),
                expected: p.as_ref().and_then(|p| p.expected),
                low: p.as_ref().and_then(|p| p.low),
                high: p.as_ref().and_then(|p| p.high),
                basis: p.as_ref().map(|p| p.basis),
                not_before: p.as_ref().and_then(|p| p.not_before),
                sample: p.as_ref().map_or(0, |p| p.sample),
                sessions: p.as_ref().is_some_and(|p| p.sessions),
                reason: p.as_ref().and_then(|p| p.reason),
                connector: d.connector,
                id: d.id,
                reference: d.reference,
                scheme: d.scheme,
                step: d.step,
            }
        })
        .collect();
    if format == Format::Json {
        out!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(Exit::Ok);
    }
    let cells = |r: &Predicted| {
        let day = |d: Option<chrono::NaiveDate>| d.map(|d| d.to_string()).unwrap_or_default();
        [
            r.connector.clone(),
            r.id.clone(),
            r.reference.clone(),
            r.scheme.clone().unwrap_or_default(),
            r.step.clone(),
            r.entered.clone(),
            day(r.expected),
            day(r.low),
            day(r.high),
            r.basis.map_or("", |b| b.as_str()).to_owned(),
        ]
    };
    let sep = if format == Format::Csv { b',' } else { b'\t' };
    let mut w = csv::WriterBuilder::new()
        .delimiter(sep)
        .from_writer(std::io::stdout());
    w.write_record(DOSSIER_HEADER)?;
    for row in &rows {
        w.write_record(cells(row))?;
    }
    w.flush()?;
    Ok(Exit::Ok)
}

const HEADER: [&str; 11] = [
    "scheme",
    "step",
    "basis",
    "sample",
    "own_stays",
    "own_left",
    "median_days",
    "p80_days",
    "p90_days",
    "in_step",
    "overdue",
];

fn days(seconds: Option<i64>) -> String {
    seconds.map_or_else(String::new, |s| format!("{:.1}", s as f64 / DAY))
}

fn cells(row: &StepStats) -> [String; 11] {
    [
        row.scheme.clone(),
        row.step.clone(),
        row.basis.map_or("", |b| b.as_str()).to_owned(),
        row.sample.to_string(),
        row.own_stays.to_string(),
        row.own_left.to_string(),
        days(row.median),
        days(row.p80),
        days(row.p90),
        row.in_step.to_string(),
        row.overdue.to_string(),
    ]
}

fn table(rows: &[StepStats], min_sample: u64) {
    if rows.is_empty() {
        out!("No dossier history yet: import an export first.");
        return;
    }
    let shown: Vec<[String; 11]> = rows
        .iter()
        .map(|r| {
            let mut c = cells(r);
            if c[0].is_empty() {
                c[0] = "(none)".to_owned();
            }
            if c[2].is_empty() {
                c[2] = "-".to_owned();
            }
            for cell in &mut c[6..9] {
                if cell.is_empty() {
                    *cell = "-".to_owned();
                }
            }
            c
        })
        .collect();
    let header = [
        "SCHEME", "STEP", "BASIS", "SAMPLE", "SEEN", "LEFT", "MEDIAN", "P80", "P90", "NOW",
        "OVERDUE",
    ];
    let widths: Vec<usize> = (0..header.len())
        .map(|i| {
            shown
                .iter()
                .map(|c| c[i].chars().count())
                .chain([header[i].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: &[&str]| {
        let mut text = String::new();
        for (i, cell) in cells.iter().enumerate() {
            let pad = widths[i].saturating_sub(cell.chars().count());
            // Text to the left, numbers to the right.
            if i < 3 {
                text.push_str(cell);
                text.push_str(&" ".repeat(pad));
            } else {
                text.push_str(&" ".repeat(pad));
                text.push_str(cell);
            }
            text.push_str("  ");
        }
        text.trim_end().to_owned()
    };
    out!("{}", line(&header));
    for c in &shown {
        out!("{}", line(&c.each_ref().map(String::as_str)));
    }
    out!(
        "\nDurations in days. BASIS: what the figures rest on: scheme = the scheme's own history\n\
         ({min_sample} dossiers or more), step = every scheme's history of the step, lifecycle =\n\
         the expected_duration of rules/lifecycle.toml. SEEN, LEFT: the scheme's own stays in the\n\
         step, and how many ended. NOW: dossiers in the step now; OVERDUE: there for longer than\n\
         90 % of stays (or than the expected duration)."
    );
}
