//! Delay estimates benchmark: their accuracy on a simulated history whose truth is
//! known, and the speed of `alertissimo stats` over a million dossiers.
//!
//! Usage (from the repository root):
//!
//! ```text
//! cargo build --release --locked --bin alertissimo --example bench_delays
//! cargo run --release --locked --example bench_delays -- [--seeds 5] [--weekly] [--dossiers 1000000]
//!     [--events 10000000] [--runs 3] [--json]
//! ```
//!
//! Requirements: GNU time (`/usr/bin/time`) for peak memory.
//!
//! 1. **Accuracy.** For each of `--seeds` seeds, `tests/it/simulate.rs` draws four
//!    years of dossiers of four schemes (log-normal step durations with a speed per
//!    scheme, a spring peak of arrivals, a Commission permanente sitting monthly but
//!    in August, refusals), and feeds what daily imports from the second year on
//!    would have seen to the estimator. The dossiers still in a step at the end are
//!    held out: their real further stay is compared with the estimate made at the
//!    end (the coverage of the 80 % interval, target 80 % ± 5 %; the median
//!    absolute error of the predicted leaving date) and with the naive mean of the
//!    completed stays (which the estimate must beat). Medians over the seeds.
//! 2. **Speed.** A state database is written (through SQLite directly, with the
//!    store's own schema) with `--dossiers` simulated dossiers and their step events,
//!    padded with field changes up to `--events` events. Each of `--runs` runs times
//!    `alertissimo stats --format json` (the release binary, under GNU time), and, as
//!    the reference in the same run, the bare reading of the same rows with SQLite
//!    (the three queries the history reads, each row stepped, nothing computed).
//!    Target: at most 5 s.
//!
//! A missed target does not change the exit code (it depends on the machine).

#![allow(clippy::print_stdout, clippy::print_stderr)]
// A benchmark reads top to bottom: the limit on long functions holds in src/.
#![allow(clippy::too_many_lines)]

#[path = "../tests/it/simulate.rs"]
mod simulate;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use alertissimo::diag::Problems;
use alertissimo::lifecycle::Lifecycle;
use alertissimo::store::{Store, format_time};
use chrono::{TimeZone, Utc};
use clap::Parser;
use simulate::{DAY, Fed};

/// Command-line arguments.
#[derive(Debug, Parser)]
#[command(about = "Judges the delay estimates on a simulated history, and times `stats`")]
struct Args {
    /// Seeds of the accuracy simulation (1, 2, …).
    #[arg(long, default_value_t = 5)]
    seeds: u64,
    /// Dossiers in the database `stats` reads.
    #[arg(long, default_value_t = 1_000_000)]
    dossiers: usize,
    /// Events in that database.
    #[arg(long, default_value_t = 10_000_000)]
    events: usize,
    /// Timed runs of `stats` (the median is reported).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    runs: u32,
    /// Also write the results to target/bench-delays/results.json.
    #[arg(long)]
    json: bool,
    /// Write the database (and its config.toml) in this folder, and keep it (to
    /// look at it, or profile `stats` on it).
    #[arg(long, value_name = "DIR")]
    keep: Option<PathBuf>,
    /// Simulate weekly imports, the source dating its steps by the day (most
    /// Regions' exports), rather than daily ones.
    #[arg(long)]
    weekly: bool,
}

impl Args {
    /// The time between two simulated imports.
    fn period(&self) -> i64 {
        if self.weekly {
            7 * simulate::DAY
        } else {
            simulate::DAY
        }
    }
}

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let args = Args::parse();
    let mut problems = Problems::default();
    let lifecycle = Lifecycle::load(&repo().join("rules/lifecycle.toml"), &mut problems)
        .unwrap_or_else(|| panic!("{problems}"));

    println!(
        "accuracy: {} seeds of 4 simulated years, {} imports",
        args.seeds,
        if args.weekly { "weekly" } else { "daily" }
    );
    let results: Vec<simulate::Accuracy> = (1..=args.seeds)
        .map(|seed| {
            let a = simulate::evaluate_every(&lifecycle, seed, 4, 1.0, args.period());
            println!(
                "  seed {seed}: {} dossiers, {} held out, coverage {:.1} %, median error {:.1} d (naive {:.1} d)",
                a.dossiers,
                a.held,
                a.coverage * 100.0,
                a.median_error_days,
                a.naive_median_error_days
            );
            a
        })
        .collect();
    let coverage = median(results.iter().map(|a| a.coverage).collect());
    let error = median(results.iter().map(|a| a.median_error_days).collect());
    let naive = median(results.iter().map(|a| a.naive_median_error_days).collect());
    let calibrated = (0.75..=0.85).contains(&coverage);
    println!(
        "  median: coverage of the 80 % interval {:.1} % (target 80 ± 5: {}), median error {error:.1} d vs naive mean {naive:.1} d ({})",
        coverage * 100.0,
        if calibrated { "PASS" } else { "FAIL" },
        if error < naive {
            "better: PASS"
        } else {
            "not better: FAIL"
        },
    );

    let temporary = tempfile::tempdir().expect("a temporary folder");
    let dir = match &args.keep {
        Some(dir) => {
            std::fs::create_dir_all(dir).expect("the --keep folder");
            for name in ["state.db", "state.db-wal", "state.db-shm"] {
                let _ = std::fs::remove_file(dir.join(name));
            }
            dir.clone()
        }
        None => temporary.path().to_owned(),
    };
    let (dossiers, events) = write_database(&dir, args.dossiers, args.events);
    println!(
        "\nspeed: `alertissimo stats` over {dossiers} dossiers and {events} events, {} runs",
        args.runs
    );
    let binary = repo().join("target/release/alertissimo");
    assert!(
        binary.exists(),
        "build it first: cargo build --release --locked --bin alertissimo"
    );
    let (mut stats, mut reference, mut rss) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..args.runs {
        let (seconds, kb) = time_stats(&binary, &dir);
        stats.push(seconds);
        rss.push(kb as f64 / 1024.0);
        reference.push(bare_reading(&dir.join("state.db")));
    }
    let (stats, reference, rss) = (median(stats), median(reference), median(rss));
    println!(
        "  stats {stats:.2} s (peak RSS {rss:.0} MB); bare SQLite reading {reference:.2} s; ratio {:.2}; target <= 5 s: {}",
        stats / reference,
        if stats <= 5.0 { "PASS" } else { "FAIL" }
    );
    // The evaluation of stalled dossiers and deadlines, in this process, with the
    // estimates computed beforehand (the daemon keeps them): a first one records
    // every stall and reminder already due, the next ones find nothing new.
    let (first, steady, scan, found) = time_evaluation(&dir, &lifecycle, args.runs);
    println!(
        "\nevaluation of stalled dossiers and deadlines over the open dossiers: first {first:.2} s ({} stalled, {} reminders recorded); then {steady:.2} s (median, nothing new); bare reading of the dossiers {scan:.2} s; ratio {:.2}; target <= 2 s: {}",
        found.stalled,
        found.deadline,
        steady / scan,
        if first.max(steady) <= 2.0 {
            "PASS"
        } else {
            "FAIL"
        }
    );
    if args.json {
        let out = repo().join("target/bench-delays");
        std::fs::create_dir_all(&out).expect("target/bench-delays");
        let json = serde_json::json!({
            "accuracy": { "weekly": args.weekly, "seeds": results, "coverage": coverage, "median_error_days": error,
                          "naive_median_error_days": naive },
            "speed": { "dossiers": dossiers, "events": events, "stats_seconds": stats,
                       "reference_seconds": reference, "peak_rss_mb": rss },
            "evaluation": { "first_seconds": first, "steady_seconds": steady,
                            "reference_seconds": scan, "stalled": found.stalled,
                            "deadline": found.deadline },
        });
        std::fs::write(out.join("results.json"), json.to_string()).expect("results.json");
    }
}

/// Writes a state database of about `dossiers` simulated dossiers with their step
/// events, padded with field changes up to `events`; returns both counts.
fn write_database(dir: &Path, dossiers: usize, events: usize) -> (usize, usize) {
    let clock = Instant::now();
    let db = dir.join("state.db");
    drop(Store::open(&db, 64).expect("a new state database"));
    std::fs::write(
        dir.join("config.toml"),
        format!(
            "rules_dir = \"{}\"\n[store]\npath = \"state.db\"\n",
            repo().join("rules").display()
        ),
    )
    .expect("config.toml");
    // About 3.2 years of each dossier's stays are seen: scale the arrivals to match.
    let years = 4;
    let mut all = simulate::dossiers(1, years, dossiers as f64 / (4_600.0 * 3.2));
    let start = simulate::origin();
    let follow_from = start + 365 * DAY;
    let end = start + i64::from(years) * 365 * DAY;
    let mut fed = Vec::with_capacity(dossiers * 6);
    simulate::observe(&all, follow_from, end, |f| fed.push(f));
    all.clear();
    // The last `dossiers` dossiers that arrived, and their step events: those
    // still under way at the end are among them.
    let total = fed
        .iter()
        .filter(|f| matches!(f, Fed::Dossier { .. }))
        .count();
    let skip = total.saturating_sub(dossiers);
    if let Some(first) = fed
        .iter()
        .enumerate()
        .filter(|(_, f)| matches!(f, Fed::Dossier { .. }))
        .nth(skip)
        .map(|(i, _)| i)
    {
        fed.drain(..first);
    }
    let visible = total - skip;
    let steps = fed.len() - visible;
    let padding = events.saturating_sub(steps.min(events));
    let mut conn = rusqlite::Connection::open(&db).expect("the state database");
    conn.execute_batch("PRAGMA synchronous = OFF; PRAGMA cache_size = -262144;")
        .expect("pragmas");
    let tx = conn.transaction().expect("a transaction");
    tx.execute(
        "INSERT INTO field_names (id, name) VALUES (1, 'justification_due')",
        [],
    )
    .expect("a field name");
    let run_at = |seen: i64| (seen - (follow_from + 6 * 3600)) / DAY + 1;
    {
        let mut run = tx
            .prepare(
                "INSERT INTO runs (id, connector, source, fingerprint, started_at, finished_at, status, baseline)
                 VALUES (?1, 'portail', 'export.csv', '0', ?2, ?2, 'applied', ?3)",
            )
            .expect("runs");
        let mut day = follow_from + 6 * 3600;
        while day <= end + DAY {
            let at = format_time(Utc.timestamp_opt(day, 0).unwrap());
            run.execute(rusqlite::params![
                run_at(day),
                at,
                day == follow_from + 6 * 3600
            ])
            .expect("a run");
            day += DAY;
        }
        let mut dossier = tx
            .prepare(
                "INSERT INTO dossiers (id, connector, source_id, reference, scheme, step, status,
                     step_entered_at, fields, first_run, last_run)
                 VALUES (?1, 'portail', ?2, ?2, ?3, ?4, ?4, ?5, ?6, 1, 1)",
            )
            .expect("dossiers");
        let mut event = tx
            .prepare(
                "INSERT INTO events (run_id, dossier_id, kind, to_step, field, old_value, new_value,
                     occurred_at, baseline)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 0)",
            )
            .expect("events");
        let (mut written, mut padded) = (0usize, 0usize);
        let mut last_seen = follow_from;
        for f in &fed {
            match *f {
                Fed::Dossier {
                    id,
                    scheme,
                    step,
                    entered,
                } => {
                    if written == visible {
                        break;
                    }
                    written += 1;
                    let at = format_time(Utc.timestamp_opt(entered, 0).unwrap());
                    // A justification date 0 to 89 days after the end, in the
                    // store's compact encoding (format 1, then name id 1, length, text).
                    let due = Utc.timestamp_opt(end + (id % 90) * DAY, 0).unwrap();
                    let mut fields = vec![1u8, 1, 10];
                    fields.extend_from_slice(due.format("%Y-%m-%d").to_string().as_bytes());
                    dossier
                        .execute(rusqlite::params![
                            id,
                            format!("D{id}"),
                            scheme,
                            step,
                            at,
                            fields
                        ])
                        .expect("a dossier");
                    // This dossier's share of the padding, after its events.
                    let share = padding * written / visible - padded;
                    for _ in 0..share {
                        let at = format_time(Utc.timestamp_opt(last_seen, 0).unwrap());
                        event
                            .execute(rusqlite::params![
                                run_at(last_seen).max(1),
                                id,
                                "field_changed",
                                None::<&str>,
                                "amount_granted",
                                "10000.00",
                                "12000.00",
                                at
                            ])
                            .expect("a field change");
                    }
                    padded += share;
                }
                Fed::Event {
                    id,
                    kind,
                    step,
                    occurred,
                    seen,
                } => {
                    last_seen = seen;
                    let at = format_time(Utc.timestamp_opt(occurred, 0).unwrap());
                    event
                        .execute(rusqlite::params![
                            run_at(seen),
                            id,
                            kind.as_str(),
                            step,
                            None::<&str>,
                            None::<&str>,
                            None::<&str>,
                            at
                        ])
                        .expect("an event");
                }
            }
        }
    }
    tx.commit().expect("commit");
    let count = |table: &str| -> usize {
        conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| {
            r.get::<_, i64>(0)
        })
        .expect("a count") as usize
    };
    let counts = (count("dossiers"), count("events"));
    println!(
        "\nwrote {} dossiers and {} events in {:.0} s",
        counts.0,
        counts.1,
        clock.elapsed().as_secs_f64()
    );
    counts
}

/// Runs `stats` under GNU time: seconds and peak RSS (KiB).
fn time_stats(binary: &Path, dir: &Path) -> (f64, u64) {
    let time_file: PathBuf = dir.join("time.txt");
    let clock = Instant::now();
    let out = Command::new("/usr/bin/time")
        .arg("-f")
        .arg("%M")
        .arg("-o")
        .arg(&time_file)
        .arg(binary)
        .args(["stats", "--format", "json", "--config"])
        .arg(dir.join("config.toml"))
        .output()
        .expect("GNU time (apt-get install time)");
    let seconds = clock.elapsed().as_secs_f64();
    assert!(
        out.status.success(),
        "stats failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).expect("stats JSON");
    assert!(
        rows.as_array().is_some_and(|r| !r.is_empty()),
        "no statistics"
    );
    let kb = std::fs::read_to_string(&time_file)
        .expect("GNU time's output")
        .trim()
        .lines()
        .last()
        .and_then(|l| l.parse().ok())
        .expect("a peak RSS");
    (seconds, kb)
}

/// Times evaluations of time-based events: the first, the median of `runs` more,
/// and the bare reading of the dossiers (reference).
fn time_evaluation(
    dir: &Path,
    lifecycle: &Lifecycle,
    runs: u32,
) -> (f64, f64, f64, alertissimo::timers::Evaluated) {
    let mut store = Store::open(&dir.join("state.db"), 64).expect("the state database");
    // The end of the simulation: the simulated dossiers' "now".
    let now = Utc
        .timestamp_opt(simulate::origin() + 4 * 365 * DAY, 0)
        .unwrap();
    let delays = store
        .delays(lifecycle, 30, now, chrono_tz::UTC)
        .expect("the estimates");
    let mut evaluate = || {
        let clock = Instant::now();
        let summary = alertissimo::timers::evaluate(
            &mut store,
            &delays,
            None,
            &alertissimo::model::Sources::default(),
            lifecycle,
            alertissimo::timers::Clock {
                tz: chrono_tz::Europe::Paris,
                now,
            },
            alertissimo::timers::Pass::Events,
        )
        .expect("an evaluation");
        (clock.elapsed().as_secs_f64(), summary)
    };
    let (first, found) = evaluate();
    let steady = median((0..runs).map(|_| evaluate().0).collect());
    let clock = Instant::now();
    let conn = rusqlite::Connection::open(dir.join("state.db")).expect("the state database");
    let mut stmt = conn
        .prepare(
            "SELECT id, connector, scheme, step, step_entered_at, first_run, fields FROM dossiers",
        )
        .expect("a query");
    let mut rows = stmt.query([]).expect("rows");
    let mut total = 0i64;
    while let Some(row) = rows.next().expect("a row") {
        total += row.get::<_, i64>(0).expect("an id");
    }
    std::hint::black_box(total);
    (first, steady, clock.elapsed().as_secs_f64(), found)
}

/// The reference: the rows the history reads, stepped through with SQLite alone.
fn bare_reading(db: &Path) -> f64 {
    let clock = Instant::now();
    let conn = rusqlite::Connection::open(db).expect("the state database");
    let mut total = 0i64;
    for sql in [
        "SELECT id, unixepoch(started_at) FROM runs",
        "SELECT id, scheme, step, unixepoch(step_entered_at), present FROM dossiers",
        "SELECT dossier_id, kind, to_step, unixepoch(occurred_at), run_id FROM events
         WHERE kind IN ('created', 'step_changed', 'reappeared', 'disappeared') ORDER BY id",
    ] {
        let mut stmt = conn.prepare(sql).expect("a query");
        let mut rows = stmt.query([]).expect("rows");
        while let Some(row) = rows.next().expect("a row") {
            total += row.get::<_, i64>(0).expect("an id");
        }
    }
    std::hint::black_box(total);
    clock.elapsed().as_secs_f64()
}
