//! The simulated history of `simulate.rs` replayed through the real binary, the
//! way a Region loads its archives (shared with `examples/bench_delays.rs`).
//!
//! For one seed: the exports the Region's software would have written every week
//! (or day) from the second year on, as `exports/export-YYYY-MM-DD.csv` (one row
//! per dossier filed by then: id, reference, scheme, the current step's source
//! label, the day it entered it, an e-mail), a `csv` connector whose `[as_of]`
//! reads the date from the file name (06:00 in the Region's zone), a copy of
//! `rules/lifecycle.toml` with the Commission permanente's calendar and the
//! `complet` step counted in business days, and a `config.toml`, all in a
//! folder; then, with the binary:
//!
//! ```text
//! alertissimo --config config.toml import simulated --backfill exports
//! alertissimo --config config.toml stats --format json
//! alertissimo --config config.toml stats --dossiers --format json
//! ```
//!
//! Both `stats` are as of the last export. They are scored against what really
//! happened after it ([`Score`]), next to a naive predictor measured in the same
//! run: the mean of the completed stays seen in the scheme's step.

#![allow(dead_code)] // Each user takes what it needs.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use chrono::{Datelike, Days, NaiveDate, Weekday};
use serde_json::Value;

use crate::simulate::{self, DAY, Dossier, SCHEMES};

/// The connector's name.
pub const CONNECTOR: &str = "simulated";

/// The time of day of every export, in the Region's zone.
const EXPORT_HOUR: u32 = 6;

/// The steps of the simulation and the labels the source gives them.
const LABELS: [(&str, &str); 8] = [
    ("depose", "Déposé"),
    ("complet", "Complet"),
    ("instruction", "Instruction en cours"),
    ("commission", "Passage en CP"),
    ("accorde", "Voté en CP"),
    ("refuse", "Refusé"),
    ("convention", "Convention signée"),
    ("cloture", "Clôturé"),
];

/// A step whose true median is at least this long (days) is a long step.
pub const LONG_DAYS: f64 = 30.0;

/// A scheme's step is scored when at least this many of its stays began in the
/// followed period.
const MIN_GROUP: usize = 30;

/// What to simulate and replay.
#[derive(Debug, Clone, Copy)]
pub struct Setup {
    /// The seed of the dossiers and of the sessions.
    pub seed: u64,
    /// Simulated years; exports are written from the second on.
    pub years: u32,
    /// Times the schemes' yearly numbers of dossiers.
    pub scale: f64,
    /// Weekly exports (on Mondays), or daily ones.
    pub weekly: bool,
    /// Give the lifecycle the Commission permanente's calendar and count the
    /// `complet` step in business days.
    pub calendar: bool,
}

/// The days of the exports: every Monday (or every day) from the first year's
/// end to the last year's.
pub fn export_days(years: u32, weekly: bool) -> Vec<NaiveDate> {
    let mut day = simulate::local_date(simulate::origin() + 365 * DAY);
    let last = simulate::local_date(simulate::origin() + i64::from(years) * 365 * DAY);
    if weekly {
        while day.weekday() != Weekday::Mon {
            day = day + Days::new(1);
        }
    }
    let step = Days::new(if weekly { 7 } else { 1 });
    let mut out = Vec::new();
    while day <= last {
        out.push(day);
        day = day + step;
    }
    out
}

/// The instant of the export of `day`.
fn export_instant(day: NaiveDate) -> i64 {
    simulate::local_instant(day, EXPORT_HOUR, 0)
}

/// The stay a dossier was in at `t`, if it had been filed by then.
fn stay_at(d: &Dossier, t: i64) -> Option<&simulate::Stay> {
    d.stays.iter().rev().find(|s| s.entered <= t)
}

/// Writes one export per day of `days` into `dir`; returns the rows written.
///
/// # Panics
///
/// When a file cannot be written.
pub fn write_exports(dossiers: &[Dossier], days: &[NaiveDate], dir: &Path) -> usize {
    std::fs::create_dir_all(dir).expect("the exports folder");
    let label: HashMap<&str, &str> = LABELS.into_iter().collect();
    let mut rows = 0;
    let mut text = String::new();
    for &day in days {
        let at = export_instant(day);
        text.clear();
        text.push_str("id,reference,scheme,status,since,email\n");
        for (i, d) in dossiers.iter().enumerate() {
            let Some(stay) = stay_at(d, at) else {
                continue;
            };
            let id = i + 1;
            let _ = writeln!(
                text,
                "{id},R{id:06},{},{},{},d{id}@example.org",
                SCHEMES[d.scheme].0,
                label[stay.step],
                simulate::local_date(stay.entered).format("%Y-%m-%d"),
            );
            rows += 1;
        }
        let path = dir.join(format!("export-{}.csv", day.format("%Y-%m-%d")));
        let mut file = std::io::BufWriter::new(std::fs::File::create(&path).expect("an export"));
        file.write_all(text.as_bytes()).expect("an export");
    }
    rows
}

/// The connector reading the exports of [`write_exports`] from `exports/`.
pub fn connector_toml() -> String {
    let mut steps = String::new();
    for (step, label) in LABELS {
        let _ = writeln!(steps, "\"{label}\" = \"{step}\"");
    }
    format!(
        r#"# The simulated Region's weekly export (tests/it/simulate_replay.rs).
kind = "csv"
schedule = "0 0 6 * * *"

[source]
path = "../exports/*.csv"
encoding = "utf-8"
delimiter = ","
after_import = "keep"
settle = "0s"

[fields]
id = "id"
reference = "reference"
scheme = "scheme"
step = "status"
step_since = {{ column = "since", format = "%Y-%m-%d" }}
"beneficiary.email" = "email"

[steps]
{steps}
[as_of]
file_name = "export-%Y-%m-%d.csv"
time = "0{EXPORT_HOUR}:00"
"#
    )
}

/// The shipped lifecycle, with (if `calendar`) the `complet` step counted in
/// business days (the shipped one is) and the Commission permanente's `sessions`
/// up to a year after `until` (a Region knows its calendar a year ahead).
pub fn lifecycle_toml(sessions: &[NaiveDate], until: NaiveDate, calendar: bool) -> String {
    let shipped =
        std::fs::read_to_string(repo().join("rules/lifecycle.toml")).expect("rules/lifecycle.toml");
    if !calendar {
        return shipped;
    }
    let complet = shipped
        .find("id = \"complet\"\n")
        .expect("a `complet` step");
    let block = &shipped[complet..];
    let block = &block[..block.find("[[step]]").unwrap_or(block.len())];
    let mut text = if block.contains("counted_in") {
        shipped
    } else {
        shipped.replacen(
            "id = \"complet\"\n",
            "id = \"complet\"\ncounted_in = \"business_days\"\n",
            1,
        )
    };
    let horizon = until + Days::new(365);
    let dates: Vec<String> = sessions
        .iter()
        .filter(|s| **s <= horizon)
        .map(|s| format!("\"{s}\""))
        .collect();
    let _ = write!(
        text,
        "\n# The simulated Commission permanente (tests/it/simulate.rs).\n[[calendar]]\nstep = \"commission\"\nsessions = [{}]\nlead_time = \"{}d\"\n",
        dates.join(", "),
        simulate::LEAD
    );
    text
}

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// How well the replayed estimates predicted what happened after the last
/// export, next to the naive predictor.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Score {
    /// The seed.
    pub seed: u64,
    /// Dossiers simulated, exports written, rows in them.
    pub dossiers: usize,
    /// See `dossiers`.
    pub exports: usize,
    /// See `dossiers`.
    pub rows: usize,
    /// The time `import --backfill` took, in seconds.
    pub import_seconds: f64,
    /// Dossiers in a step that is not final at the last export (held out).
    pub held: usize,
    /// Of them, those `stats --dossiers` gave no `low` and `high` (counted missed).
    pub without_interval: usize,
    /// The share of held-out dossiers whose true exit day is in [low, high].
    pub coverage: f64,
    /// The median absolute error of `expected` against the true exit day, in days.
    pub expected_error_days: f64,
    /// The same for the naive predictor.
    pub naive_error_days: f64,
    /// The same for an oracle that knows the simulation's true durations: the
    /// median of the stays of the dossier's scheme and step that lasted longer
    /// than it has (in a step a calendar ends, our own prediction). No point
    /// estimate does much better: it is the floor of the expected day's error.
    pub oracle_error_days: f64,
    /// Scheme-step groups scored against their true quantiles.
    pub groups: usize,
    /// The median (over groups) relative error of the step's median, p80, p90.
    pub median_error: f64,
    /// See `median_error`.
    pub p80_error: f64,
    /// See `median_error`.
    pub p90_error: f64,
    /// The groups whose true median is at least [`LONG_DAYS`].
    pub long_groups: usize,
    /// Their median relative error of the median, and the naive mean's.
    pub long_median_error: f64,
    /// See `long_median_error`.
    pub long_naive_error: f64,
    /// Stays that ended in the followed period in a step with a p90.
    pub stays_ended: usize,
    /// The share of them longer than their step's p90 (a stall raised).
    pub stall_rate: f64,
    /// The same figures per step (all schemes).
    pub steps: Vec<StepScore>,
}

/// [`Score`]'s per-dossier and stall figures for one step.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StepScore {
    /// The step.
    pub step: &'static str,
    /// Held-out dossiers in it, those without an interval, their coverage, and
    /// the two errors in days.
    pub held: usize,
    /// See `held`.
    pub without_interval: usize,
    /// See `held`.
    pub coverage: f64,
    /// See `held`.
    pub expected_error_days: f64,
    /// See `held`.
    pub naive_error_days: f64,
    /// See `held`.
    pub oracle_error_days: f64,
    /// The median relative error of its schemes' medians, when scored by
    /// durations.
    pub median_error: f64,
    /// Its share of stays past the p90, when scored by durations.
    pub stall_rate: f64,
    /// Whether it is scored by its durations (not only by its dossiers).
    pub by_duration: bool,
}

/// Simulates `setup`, replays it through `binary` in the folder `root` (exports,
/// connector, lifecycle, config and database are written there), and scores it.
///
/// # Panics
///
/// When a command fails or prints what is not expected.
pub fn replay(binary: &Path, setup: Setup, root: &Path) -> Score {
    let dossiers = simulate::dossiers(setup.seed, setup.years, setup.scale);
    let sessions = simulate::sessions(setup.seed, setup.years);
    let days = export_days(setup.years, setup.weekly);
    let rows = write_exports(&dossiers, &days, &root.join("exports"));
    std::fs::create_dir_all(root.join("connectors")).expect("connectors/");
    // The lifecycle and the shipped templates, no rules: a backfill raises no alert.
    std::fs::create_dir_all(root.join("rules/templates")).expect("rules/templates/");
    for entry in std::fs::read_dir(repo().join("rules/templates")).expect("rules/templates/") {
        let path = entry.expect("a template").path();
        std::fs::copy(
            &path,
            root.join("rules/templates").join(path.file_name().unwrap()),
        )
        .expect("a template");
    }
    std::fs::write(
        root.join(format!("connectors/{CONNECTOR}.toml")),
        connector_toml(),
    )
    .expect("the connector");
    let last_day = *days.last().expect("at least one export");
    std::fs::write(
        root.join("rules/lifecycle.toml"),
        lifecycle_toml(&sessions, last_day, setup.calendar),
    )
    .expect("the lifecycle");
    std::fs::write(
        root.join("config.toml"),
        "timezone = \"Europe/Paris\"\nconnectors_dir = \"connectors\"\nrules_dir = \"rules\"\n[store]\npath = \"state.db\"\n",
    )
    .expect("config.toml");
    let run = |args: &[&str]| {
        let out = Command::new(binary)
            .arg("--config")
            .arg(root.join("config.toml"))
            .args(args)
            .env_remove("RUST_LOG")
            .env("NO_COLOR", "1")
            .output()
            .expect("the binary runs");
        assert!(
            out.status.success(),
            "alertissimo {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    };
    let clock = Instant::now();
    let exports = root.join("exports");
    run(&[
        "import",
        CONNECTOR,
        "--backfill",
        exports.to_str().expect("a UTF-8 path"),
    ]);
    let import_seconds = clock.elapsed().as_secs_f64();
    let stats: Value =
        serde_json::from_slice(&run(&["stats", "--format", "json"])).expect("stats JSON");
    let predicted: Value =
        serde_json::from_slice(&run(&["stats", "--dossiers", "--format", "json"]))
            .expect("stats --dossiers JSON");
    // A step that ends at a session has no duration of its own: `stats` gives
    // the time from the last export to the session its quantile falls on, and
    // its stalls wait for that session. It is scored by its dossiers alone.
    let sessions_step: &[&str] = if setup.calendar { &["commission"] } else { &[] };
    let mut score = score(&dossiers, &days, &stats, &predicted, sessions_step);
    score.seed = setup.seed;
    score.rows = rows;
    score.import_seconds = import_seconds;
    score
}

/// The median of `values` (0 when empty).
pub fn median(mut values: Vec<f64>) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// The `q` quantile of sorted `values` (nearest rank).
fn quantile(sorted: &[i64], q: f64) -> f64 {
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1] as f64
}

/// A held-out dossier: where it was at the last export, and its truth.
struct Held {
    id: usize,
    scheme: &'static str,
    step: &'static str,
    /// The day it entered the step (what the export said).
    entered: NaiveDate,
    /// The instant it entered the step.
    entered_at: i64,
    /// The day it really left.
    exit: NaiveDate,
}

/// The held-out dossiers of one step, as they are scored.
#[derive(Default)]
struct Tally {
    held: usize,
    covered: usize,
    without_interval: usize,
    errors: Vec<f64>,
    naive_errors: Vec<f64>,
    oracle_errors: Vec<f64>,
}

/// A day of a JSON field.
fn day(v: &Value) -> Option<NaiveDate> {
    v.as_str().and_then(|s| s.parse().ok())
}

fn days_between(a: NaiveDate, b: NaiveDate) -> f64 {
    (a - b).num_days().abs() as f64
}

/// Scores the output of `stats` and `stats --dossiers` against the truth; the
/// steps of `by_dossier_only` only by their dossiers' intervals and dates.
fn score(
    dossiers: &[Dossier],
    days: &[NaiveDate],
    stats: &Value,
    predicted: &Value,
    by_dossier_only: &[&str],
) -> Score {
    let (first, last) = (
        export_instant(days[0]),
        export_instant(days[days.len() - 1]),
    );
    let instants: Vec<i64> = days.iter().map(|d| export_instant(*d)).collect();
    let today = days[days.len() - 1];
    // Truth: every stay begun in the followed period, by scheme and step; the
    // naive observer: the stays it saw end, by scheme and step.
    let mut truth: HashMap<(&str, &str), Vec<i64>> = HashMap::new();
    // Every stay simulated, by scheme and step, sorted: what the oracle knows.
    let mut population: HashMap<(&str, &str), Vec<i64>> = HashMap::new();
    let mut naive: HashMap<(&str, &str), (i64, i64)> = HashMap::new();
    let mut ended: Vec<(&str, &str, i64)> = Vec::new();
    let mut held = Vec::new();
    for (i, d) in dossiers.iter().enumerate() {
        let scheme = SCHEMES[d.scheme].0;
        for s in &d.stays {
            let Some(left) = s.left else { continue };
            let key = (scheme, s.step);
            population.entry(key).or_default().push(left - s.entered);
            let by_duration = !by_dossier_only.contains(&s.step);
            if by_duration && (first..=last).contains(&s.entered) {
                truth.entry(key).or_default().push(left - s.entered);
            }
            if left > first && left <= last {
                if by_duration {
                    ended.push((scheme, s.step, left - s.entered));
                }
                // Seen: in the step at some export.
                let at = instants.partition_point(|&t| t < s.entered);
                if instants.get(at).is_some_and(|&t| t < left) {
                    let sum = naive.entry(key).or_default();
                    sum.0 += left - s.entered;
                    sum.1 += 1;
                }
            }
        }
        if let Some(stay) = stay_at(d, last)
            && let Some(left) = stay.left
        {
            held.push(Held {
                id: i + 1,
                scheme,
                step: stay.step,
                entered: simulate::local_date(stay.entered),
                entered_at: stay.entered,
                exit: simulate::local_date(left),
            });
        }
    }
    let naive_mean = |key: &(&str, &str)| naive.get(key).map(|(sum, n)| sum / n);
    for stays in population.values_mut() {
        stays.sort_unstable();
    }
    // The oracle's exit: the median of the true stays longer than this one so far.
    let oracle_exit = |h: &Held| {
        let stays = population.get(&(h.scheme, h.step))?;
        let elapsed = last - h.entered_at;
        let longer = &stays[stays.partition_point(|&d| d <= elapsed)..];
        let d = *longer.get(longer.len() / 2)?;
        Some(simulate::local_date(h.entered_at + d).max(today))
    };
    let rows: HashMap<&str, &Value> = predicted
        .as_array()
        .expect("an array of dossiers")
        .iter()
        .map(|r| (r["id"].as_str().unwrap_or_default(), r))
        .collect();
    // Per dossier.
    let mut by_step: HashMap<&str, Tally> = HashMap::new();
    let (mut covered, mut without_interval) = (0, 0);
    let (mut errors, mut naive_errors, mut oracle_errors) = (Vec::new(), Vec::new(), Vec::new());
    for h in &held {
        let row = rows.get(h.id.to_string().as_str());
        if let Some(row) = row {
            assert_eq!(row["step"], h.step, "dossier {}: {row}", h.id);
        }
        let bounds = row.and_then(|r| Some((day(&r["low"])?, day(&r["high"])?)));
        let hit = bounds.is_some_and(|(low, high)| (low..=high).contains(&h.exit));
        if bounds.is_none() {
            without_interval += 1;
        }
        covered += usize::from(hit);
        let expected = row.and_then(|r| day(&r["expected"])).unwrap_or(today);
        let error = days_between(expected, h.exit);
        let naive_exit = naive_mean(&(h.scheme, h.step)).map_or(today, |mean| {
            let entered = simulate::local_instant(h.entered, 0, 0);
            simulate::local_date(entered + mean).max(today)
        });
        let naive_error = days_between(naive_exit, h.exit);
        let oracle_error = if by_dossier_only.contains(&h.step) {
            error
        } else {
            oracle_exit(h).map_or(error, |exit| days_between(exit, h.exit))
        };
        let step = by_step.entry(h.step).or_default();
        step.held += 1;
        step.covered += usize::from(hit);
        step.without_interval += usize::from(bounds.is_none());
        step.errors.push(error);
        step.naive_errors.push(naive_error);
        step.oracle_errors.push(oracle_error);
        errors.push(error);
        naive_errors.push(naive_error);
        oracle_errors.push(oracle_error);
    }
    // Per scheme and step.
    let stats: HashMap<(&str, &str), &Value> = stats
        .as_array()
        .expect("an array of steps")
        .iter()
        .map(|r| {
            (
                (
                    r["scheme"].as_str().unwrap_or_default(),
                    r["step"].as_str().unwrap_or_default(),
                ),
                r,
            )
        })
        .collect();
    let relative =
        |estimate: Option<f64>, truth: f64| estimate.map_or(1.0, |e| (e - truth).abs() / truth);
    let seconds = |v: &Value| v.as_i64().map(|s| s as f64);
    let (mut med, mut p80, mut p90) = (Vec::new(), Vec::new(), Vec::new());
    let (mut long, mut long_naive) = (Vec::new(), Vec::new());
    let mut step_medians: HashMap<&str, Vec<f64>> = HashMap::new();
    let mut keys: Vec<_> = truth.keys().copied().collect();
    keys.sort_unstable();
    for key in keys {
        let stays = truth.get_mut(&key).expect("a key of truth");
        if stays.len() < MIN_GROUP {
            continue;
        }
        stays.sort_unstable();
        let row = stats.get(&key);
        let field = |name: &str| row.and_then(|r| seconds(&r[name]));
        let true_median = quantile(stays, 0.5);
        let error = relative(field("median"), true_median);
        med.push(error);
        step_medians.entry(key.1).or_default().push(error);
        p80.push(relative(field("p80"), quantile(stays, 0.8)));
        p90.push(relative(field("p90"), quantile(stays, 0.9)));
        if true_median >= LONG_DAYS * DAY as f64 {
            long.push(error);
            long_naive.push(relative(naive_mean(&key).map(|m| m as f64), true_median));
        }
    }
    // Stalls: the stays that ended in the followed period, past their p90.
    let mut stalls: HashMap<&str, (usize, usize)> = HashMap::new();
    for (scheme, step, duration) in ended {
        let Some(p90) = stats.get(&(scheme, step)).and_then(|r| seconds(&r["p90"])) else {
            continue;
        };
        let s = stalls.entry(step).or_default();
        s.0 += 1;
        s.1 += usize::from(duration as f64 > p90);
    }
    let (stays_ended, stalled) = stalls
        .values()
        .fold((0, 0), |(a, b), (n, s)| (a + n, b + s));
    let steps = LABELS
        .iter()
        .filter_map(|(step, _)| {
            let t = by_step.remove(step)?;
            let (ended, stalled) = stalls.get(step).copied().unwrap_or_default();
            Some(StepScore {
                step,
                held: t.held,
                without_interval: t.without_interval,
                coverage: t.covered as f64 / t.held.max(1) as f64,
                expected_error_days: median(t.errors),
                naive_error_days: median(t.naive_errors),
                oracle_error_days: median(t.oracle_errors),
                median_error: median(step_medians.remove(step).unwrap_or_default()),
                stall_rate: stalled as f64 / ended.max(1) as f64,
                by_duration: !by_dossier_only.contains(step),
            })
        })
        .collect();
    Score {
        seed: 0,
        dossiers: dossiers.len(),
        exports: days.len(),
        rows: 0,
        import_seconds: 0.0,
        held: held.len(),
        without_interval,
        coverage: covered as f64 / held.len().max(1) as f64,
        expected_error_days: median(errors),
        naive_error_days: median(naive_errors),
        oracle_error_days: median(oracle_errors),
        groups: med.len(),
        median_error: median(med),
        p80_error: median(p80),
        p90_error: median(p90),
        long_groups: long.len(),
        long_median_error: median(long),
        long_naive_error: median(long_naive),
        stays_ended,
        stall_rate: stalled as f64 / stays_ended.max(1) as f64,
        steps,
    }
}
