//! Import benchmark: times `alertissimo import` on a synthetic export and compares it
//! with the `sqlite3` command-line tool importing the same file.
//!
//! Usage (from the repository root):
//!
//! ```text
//! cargo build --release --bin alertissimo --example gen_export
//! cargo run --release --example bench_import -- [--rows 1000000] [--runs 5] [--seed 42]
//!     [--dir DIR] [--bin PATH] [--json]
//! ```
//!
//! Requirements: GNU time (`/usr/bin/time`, `apt-get install time`) to measure the
//! peak memory of each command, and the `sqlite3` CLI (`apt-get install sqlite3`) for
//! the reference measurement.
//!
//! Defaults: `--dir` is `target/bench-import` and `--bin` is `target/release/alertissimo`
//! (both in Cargo's target folder, found from this program's own path).
//!
//! Steps:
//!
//! 1. `gen_export` (built next to this program) writes the export with `--rows` and
//!    `--seed` into `DIR/data`, unless `DIR/data/params.json` shows it is already there
//!    for the same rows and seed (delete `DIR/data` to force a new one).
//! 2. Each of the `--runs` runs deletes `DIR/data/state` then times, each as
//!    `BIN import bench FILE --json --config DIR/data/config.toml`: `snapshot-1.csv`
//!    (baseline into an empty store), `snapshot-2.csv` (the changes), then
//!    `snapshot-2-shuffled.csv` (the same records in another order: no event).
//!    Wall time comes from this program's clock, the peak RSS of the child alone from
//!    GNU time's `%M`.
//! 3. The counts reported for snapshot 2 must equal `DIR/data/expected.json`, and the
//!    shuffled file must yield no event at all; otherwise the program exits with 1.
//! 4. The reference: `sqlite3 DIR/ref.db -cmd '.mode csv' -cmd '.separator ;'
//!    '.import DIR/data/snapshot-2.csv t'` into a new database, timed the same way.
//! 5. A table of median, minimum and maximum wall times, median peak RSS and the ratio
//!    to the sqlite3 reference is printed to stdout with the targets (snapshot 2 in at
//!    most 2.0 s and 100 MB, snapshot 1 in at most 4.5 s, no event from the shuffled
//!    file), the time targets also as ratios to the reference (they were set where
//!    `sqlite3 .import` took 3.6 s: 0.56x and 1.25x), and PASS or FAIL for each. Missed timing or memory targets do not change
//!    the exit code (they depend on the machine); wrong counts do. With `--json` the
//!    results are also written to `DIR/results.json`.

#![allow(clippy::print_stdout, clippy::print_stderr)]
// A benchmark reads top to bottom: the limit on long functions holds in src/.
#![allow(clippy::too_many_lines)]

use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::Instant;

use clap::Parser;
use serde_json::{Value, json};

/// Command-line arguments.
#[derive(Debug, Parser)]
#[command(about = "Times `alertissimo import` on a synthetic export against sqlite3 .import")]
struct Args {
    /// Number of dossiers in snapshot 1.
    #[arg(long, default_value_t = 1_000_000)]
    rows: usize,
    /// Number of measured runs (the medians are reported).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..))]
    runs: u32,
    /// Seed of the generated export.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Working folder [default: target/bench-import].
    #[arg(long)]
    dir: Option<PathBuf>,
    /// The alertissimo binary to measure [default: target/release/alertissimo].
    #[arg(long)]
    bin: Option<PathBuf>,
    /// Also write the results to DIR/results.json.
    #[arg(long)]
    json: bool,
}

/// GNU time, used for the peak RSS of each measured command.
const GNU_TIME: &str = "/usr/bin/time";

/// Targets.
const TARGET_SNAPSHOT_2_SECONDS: f64 = 2.0;
const TARGET_SNAPSHOT_2_MB: f64 = 100.0;
const TARGET_SNAPSHOT_1_SECONDS: f64 = 4.5;
/// What `sqlite3 .import` took on the machine the time targets were set on: the
/// targets as ratios to it carry over to machines faster or slower than that one.
const TARGET_REFERENCE_SECONDS: f64 = 3.6;

/// Why the benchmark stopped.
enum Failure {
    /// Something is missing or a command failed.
    Setup(String),
    /// The import reported wrong counts.
    Mismatch(String),
}

type Result<T> = std::result::Result<T, Failure>;

fn setup<E: std::fmt::Display>(context: impl std::fmt::Display) -> impl FnOnce(E) -> Failure {
    move |err| Failure::Setup(format!("{context}: {err}"))
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Setup(message)) => {
            eprintln!("bench_import: error: {message}");
            ExitCode::FAILURE
        }
        Err(Failure::Mismatch(message)) => {
            eprintln!("bench_import: WRONG RESULT: {message}");
            ExitCode::FAILURE
        }
    }
}

/// The paths used by a benchmark.
struct Paths {
    bin: PathBuf,
    gen_export: PathBuf,
    dir: PathBuf,
    data: PathBuf,
    config: PathBuf,
    snapshot_1: PathBuf,
    snapshot_2: PathBuf,
    shuffled: PathBuf,
    reference_db: PathBuf,
    time_output: PathBuf,
}

impl Paths {
    fn new(args: &Args) -> Result<Self> {
        let exe = std::env::current_exe().map_err(setup("cannot locate this program"))?;
        // This program is `<target>/<profile>/examples/bench_import`.
        let examples = exe.parent().unwrap_or(Path::new("."));
        let target = examples
            .parent()
            .and_then(Path::parent)
            .map_or_else(|| PathBuf::from("target"), Path::to_path_buf);
        let exe_name = |name: &str| format!("{name}{}", std::env::consts::EXE_SUFFIX);
        let bin = args
            .bin
            .clone()
            .unwrap_or_else(|| target.join("release").join(exe_name("alertissimo")));
        let gen_export = examples.join(exe_name("gen_export"));
        let dir = args
            .dir
            .clone()
            .unwrap_or_else(|| target.join("bench-import"));
        fs::create_dir_all(&dir).map_err(setup(format!("cannot create {}", dir.display())))?;
        let dir = fs::canonicalize(&dir).map_err(setup(dir.display()))?;
        let data = dir.join("data");
        Ok(Self {
            config: data.join("config.toml"),
            snapshot_1: data.join("snapshot-1.csv"),
            snapshot_2: data.join("snapshot-2.csv"),
            shuffled: data.join("snapshot-2-shuffled.csv"),
            reference_db: dir.join("ref.db"),
            time_output: dir.join("time-output.txt"),
            bin,
            gen_export,
            dir,
            data,
        })
    }
}

/// Counts `gen_export` promises in `expected.json`.
struct Expected {
    created: u64,
    step_changed: u64,
    disappeared: u64,
    rows_snapshot_1: u64,
    rows_snapshot_2: u64,
}

/// The JSON object printed by `alertissimo import --json`.
#[derive(Debug)]
struct ImportReport {
    status: String,
    rows: u64,
    created: u64,
    step_changed: u64,
    field_changed: u64,
    disappeared: u64,
    reappeared: u64,
    rejected: u64,
}

impl ImportReport {
    fn events(&self) -> u64 {
        self.created + self.step_changed + self.field_changed + self.disappeared + self.reappeared
    }
}

/// One measured command.
#[derive(Clone, Copy)]
struct Sample {
    seconds: f64,
    peak_rss_kib: u64,
}

/// The measured steps, in table order.
const STEPS: [&str; 4] = [
    "import snapshot-1 (baseline)",
    "import snapshot-2",
    "import snapshot-2-shuffled",
    "reference: sqlite3 .import snapshot-2",
];
const REFERENCE: usize = 3;

fn run(args: &Args) -> Result<()> {
    let paths = Paths::new(args)?;
    check_prerequisites(&paths)?;
    prepare_data(args, &paths)?;
    let expected = read_expected(&paths.data.join("expected.json"))?;
    let snapshot_2_bytes = fs::metadata(&paths.snapshot_2)
        .map_err(setup(paths.snapshot_2.display()))?
        .len();

    let mut samples: [Vec<Sample>; 4] = Default::default();
    let mut shuffled_events = 0;
    for run in 1..=args.runs {
        let state = paths.data.join("state");
        if state.exists() {
            fs::remove_dir_all(&state)
                .map_err(setup(format!("cannot delete {}", state.display())))?;
        }

        let (sample, first) = measure_import(&paths, &paths.snapshot_1)?;
        check_applied("snapshot-1", &first)?;
        warn_rows("snapshot-1", &first, expected.rows_snapshot_1);
        if first.created != expected.rows_snapshot_1 {
            eprintln!(
                "bench_import: warning: the baseline import of snapshot-1 created {} dossiers, \
                 expected {}",
                first.created, expected.rows_snapshot_1
            );
        }
        samples[0].push(sample);

        let (sample, second) = measure_import(&paths, &paths.snapshot_2)?;
        check_applied("snapshot-2", &second)?;
        warn_rows("snapshot-2", &second, expected.rows_snapshot_2);
        let mismatches: Vec<String> = [
            ("created", second.created, expected.created),
            ("step_changed", second.step_changed, expected.step_changed),
            ("disappeared", second.disappeared, expected.disappeared),
        ]
        .iter()
        .filter(|(_, got, want)| got != want)
        .map(|(key, got, want)| format!("{key} = {got}, expected {want}"))
        .collect();
        if !mismatches.is_empty() {
            return Err(Failure::Mismatch(format!(
                "import of snapshot-2 (run {run}): {} (full report: {second:?})",
                mismatches.join(", ")
            )));
        }
        samples[1].push(sample);

        let (sample, shuffled) = measure_import(&paths, &paths.shuffled)?;
        check_applied("snapshot-2-shuffled", &shuffled)?;
        warn_rows("snapshot-2-shuffled", &shuffled, expected.rows_snapshot_2);
        if shuffled.events() != 0 {
            return Err(Failure::Mismatch(format!(
                "import of snapshot-2-shuffled after snapshot-2 (run {run}) must yield no event, \
                 got created + step_changed + field_changed + disappeared + reappeared = {} \
                 (full report: {shuffled:?})",
                shuffled.events()
            )));
        }
        shuffled_events = shuffled_events.max(shuffled.events());
        samples[2].push(sample);

        let sample = measure_reference(&paths, run == 1, expected.rows_snapshot_2)?;
        samples[REFERENCE].push(sample);

        eprintln!(
            "bench_import: run {run}/{}: snapshot-1 {:.2} s, snapshot-2 {:.2} s, shuffled {:.2} s, \
             sqlite3 {:.2} s",
            args.runs,
            samples[0][samples[0].len() - 1].seconds,
            samples[1][samples[1].len() - 1].seconds,
            samples[2][samples[2].len() - 1].seconds,
            samples[REFERENCE][samples[REFERENCE].len() - 1].seconds,
        );
    }

    report(
        args,
        &paths,
        &expected,
        snapshot_2_bytes,
        &samples,
        shuffled_events,
    )
}

/// Fails with a clear message when a tool or binary is missing.
fn check_prerequisites(paths: &Paths) -> Result<()> {
    // BusyBox and BSD `time` lack `-f` and `-o`: make sure this is GNU time.
    let gnu_time_works = Command::new(GNU_TIME)
        .arg("--version")
        .output()
        .is_ok_and(|output| {
            let text = [output.stdout, output.stderr].concat();
            String::from_utf8_lossy(&text).contains("GNU")
        });
    if !gnu_time_works {
        return Err(Failure::Setup(format!(
            "GNU time is required at {GNU_TIME} to measure peak memory: install it with \
             `apt-get install time`"
        )));
    }
    let sqlite3 = Command::new("sqlite3")
        .arg("-version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    if !sqlite3.is_ok_and(|status| status.success()) {
        return Err(Failure::Setup(
            "the sqlite3 command-line tool is required for the reference measurement: install \
             it with `apt-get install sqlite3`"
                .into(),
        ));
    }
    if !paths.bin.is_file() {
        return Err(Failure::Setup(format!(
            "{} does not exist: run `cargo build --release` first (or pass --bin PATH)",
            paths.bin.display()
        )));
    }
    if !paths.gen_export.is_file() {
        return Err(Failure::Setup(format!(
            "{} does not exist: run `cargo build --release --example gen_export` first",
            paths.gen_export.display()
        )));
    }
    Ok(())
}

/// Runs `gen_export` unless `DIR/data` already holds the export for these rows and seed.
fn prepare_data(args: &Args, paths: &Paths) -> Result<()> {
    let params_path = paths.data.join("params.json");
    let params = json!({ "rows": args.rows, "seed": args.seed });
    let complete = [
        &paths.config,
        &paths.snapshot_1,
        &paths.snapshot_2,
        &paths.shuffled,
        &paths.data.join("expected.json"),
    ]
    .iter()
    .all(|path| path.is_file());
    let recorded = fs::read_to_string(&params_path)
        .ok()
        .and_then(|text| serde_json::from_str::<Value>(&text).ok());
    if complete && recorded.as_ref() == Some(&params) {
        eprintln!(
            "bench_import: reusing the export in {} ({} rows, seed {})",
            paths.data.display(),
            args.rows,
            args.seed
        );
        return Ok(());
    }

    if params_path.exists() {
        fs::remove_file(&params_path).map_err(setup(params_path.display()))?;
    }
    eprintln!(
        "bench_import: generating {} rows (seed {}) into {}",
        args.rows,
        args.seed,
        paths.data.display()
    );
    let status = Command::new(&paths.gen_export)
        .arg("--rows")
        .arg(args.rows.to_string())
        .arg("--seed")
        .arg(args.seed.to_string())
        .arg("--out")
        .arg(&paths.data)
        .stdin(Stdio::null())
        .status()
        .map_err(setup(paths.gen_export.display()))?;
    if !status.success() {
        return Err(Failure::Setup(format!("gen_export failed ({status})")));
    }
    let mut text = serde_json::to_string_pretty(&params).map_err(setup("params.json"))?;
    text.push('\n');
    fs::write(&params_path, text).map_err(setup(params_path.display()))?;
    Ok(())
}

fn read_expected(path: &Path) -> Result<Expected> {
    let text = fs::read_to_string(path).map_err(setup(path.display()))?;
    let value: Value = serde_json::from_str(&text).map_err(setup(path.display()))?;
    let count = |key: &str| {
        value
            .get(key)
            .and_then(Value::as_u64)
            .ok_or_else(|| Failure::Setup(format!("{}: missing count `{key}`", path.display())))
    };
    Ok(Expected {
        created: count("created")?,
        step_changed: count("step_changed")?,
        disappeared: count("disappeared")?,
        rows_snapshot_1: count("rows_snapshot_1")?,
        rows_snapshot_2: count("rows_snapshot_2")?,
    })
}

/// Times `BIN import bench FILE --json --config CONFIG` and parses its report.
fn measure_import(paths: &Paths, file: &Path) -> Result<(Sample, ImportReport)> {
    let args: Vec<OsString> = vec![
        "import".into(),
        "bench".into(),
        file.into(),
        "--json".into(),
        "--config".into(),
        paths.config.clone().into(),
    ];
    let (sample, stdout) = measure(paths, &paths.bin, &args)?;
    let name = file.file_name().unwrap_or_default().to_string_lossy();
    let report = parse_report(&stdout).map_err(|err| {
        Failure::Mismatch(format!(
            "import of {name}: cannot read the JSON report ({err}); stdout was:\n{stdout}"
        ))
    })?;
    Ok((sample, report))
}

/// Times the sqlite3 reference import of snapshot 2 into a new database.
fn measure_reference(paths: &Paths, check_rows: bool, rows: u64) -> Result<Sample> {
    if paths.reference_db.exists() {
        fs::remove_file(&paths.reference_db).map_err(setup(paths.reference_db.display()))?;
    }
    let import = format!(".import {} t", dot_command_arg(&paths.snapshot_2));
    let args: Vec<OsString> = vec![
        paths.reference_db.clone().into(),
        "-cmd".into(),
        ".mode csv".into(),
        "-cmd".into(),
        ".separator ;".into(),
        import.into(),
    ];
    let (sample, _) = measure(paths, Path::new("sqlite3"), &args)?;
    if check_rows {
        // Once: make sure sqlite3 read the multi-line records as one row each.
        let output = Command::new("sqlite3")
            .arg(&paths.reference_db)
            .arg("SELECT count(*) FROM t;")
            .output()
            .map_err(setup("sqlite3"))?;
        let count = String::from_utf8_lossy(&output.stdout).trim().to_owned();
        if count != rows.to_string() {
            eprintln!(
                "bench_import: warning: sqlite3 imported {count} rows from snapshot-2.csv, \
                 expected {rows}"
            );
        }
    }
    Ok(sample)
}

/// Quotes a path for a sqlite3 dot-command argument.
fn dot_command_arg(path: &Path) -> String {
    let text = path.to_string_lossy();
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
}

/// Runs `program args` under GNU time: wall time from our clock, peak RSS from `%M`.
/// Returns the sample and the standard output.
fn measure(paths: &Paths, program: &Path, args: &[OsString]) -> Result<(Sample, String)> {
    if paths.time_output.exists() {
        fs::remove_file(&paths.time_output).map_err(setup(paths.time_output.display()))?;
    }
    let mut command = Command::new(GNU_TIME);
    command
        .args(["-f", "%e %M", "-o"])
        .arg(&paths.time_output)
        .arg(program)
        .args(args)
        .current_dir(&paths.data)
        .stdin(Stdio::null());
    let shown = format!(
        "{} {}",
        program.display(),
        args.iter()
            .map(|arg| arg.to_string_lossy())
            .collect::<Vec<_>>()
            .join(" ")
    );
    let started = Instant::now();
    let output = command.output().map_err(setup(&shown))?;
    let seconds = started.elapsed().as_secs_f64();
    if !output.status.success() {
        return Err(Failure::Setup(format!(
            "`{shown}` failed ({}):\n{}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )));
    }
    let (_, peak_rss_kib) = read_gnu_time(&paths.time_output)?;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    Ok((
        Sample {
            seconds,
            peak_rss_kib,
        },
        stdout,
    ))
}

/// Reads `%e %M` (elapsed seconds, peak RSS in KiB) from GNU time's output file.
fn read_gnu_time(path: &Path) -> Result<(f64, u64)> {
    let text = fs::read_to_string(path).map_err(setup(path.display()))?;
    let line = text.lines().rev().find(|line| !line.trim().is_empty());
    let mut fields = line.unwrap_or_default().split_whitespace();
    match (
        fields.next().and_then(|field| field.parse().ok()),
        fields.next().and_then(|field| field.parse().ok()),
    ) {
        (Some(seconds), Some(kib)) => Ok((seconds, kib)),
        _ => Err(Failure::Setup(format!(
            "unexpected GNU time output in {}: {text:?}",
            path.display()
        ))),
    }
}

/// Parses the JSON object printed by `import --json` (the whole output, or else its
/// last line that is a JSON object).
fn parse_report(stdout: &str) -> std::result::Result<ImportReport, String> {
    let value: Value = serde_json::from_str(stdout.trim())
        .ok()
        .or_else(|| {
            stdout
                .lines()
                .rev()
                .map(str::trim)
                .filter(|line| line.starts_with('{'))
                .find_map(|line| serde_json::from_str(line).ok())
        })
        .ok_or("no JSON object on stdout")?;
    let count = |key: &str| {
        value
            .get(key)
            .and_then(Value::as_u64)
            .ok_or_else(|| format!("missing or non-integer `{key}`"))
    };
    if value.get("run_id").is_none() {
        return Err("missing `run_id`".into());
    }
    Ok(ImportReport {
        status: value
            .get("status")
            .and_then(Value::as_str)
            .ok_or("missing `status`")?
            .to_owned(),
        rows: count("rows")?,
        created: count("created")?,
        step_changed: count("step_changed")?,
        field_changed: count("field_changed")?,
        disappeared: count("disappeared")?,
        reappeared: count("reappeared")?,
        rejected: count("rejected")?,
    })
}

fn check_applied(name: &str, report: &ImportReport) -> Result<()> {
    if report.status == "applied" {
        Ok(())
    } else {
        Err(Failure::Mismatch(format!(
            "import of {name}: status is {:?}, expected \"applied\" (full report: {report:?})",
            report.status
        )))
    }
}

/// Non-fatal checks: every row read, none rejected.
fn warn_rows(name: &str, report: &ImportReport, rows: u64) {
    if report.rows != rows {
        eprintln!(
            "bench_import: warning: import of {name} reports rows = {}, the file has {rows}",
            report.rows
        );
    }
    if report.rejected != 0 {
        eprintln!(
            "bench_import: warning: import of {name} rejected {} rows",
            report.rejected
        );
    }
}

/// Median, minimum and maximum.
fn stats(values: &[f64]) -> (f64, f64, f64) {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    if n == 0 {
        return (f64::NAN, f64::NAN, f64::NAN);
    }
    let median = if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    };
    (median, sorted[0], sorted[n - 1])
}

/// "model name" from /proc/cpuinfo.
fn cpu_model() -> String {
    fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|line| line.starts_with("model name"))
                .and_then(|line| line.split_once(':'))
                .map(|(_, model)| model.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".into())
}

fn report(
    args: &Args,
    paths: &Paths,
    expected: &Expected,
    snapshot_2_bytes: u64,
    samples: &[Vec<Sample>; 4],
    shuffled_events: u64,
) -> Result<()> {
    let cpus = std::thread::available_parallelism().map_or(0, usize::from);
    let model = cpu_model();
    let bytes_per_row = if expected.rows_snapshot_2 == 0 {
        0.0
    } else {
        snapshot_2_bytes as f64 / expected.rows_snapshot_2 as f64
    };

    // Per step: (median s, min s, max s, median peak RSS MB).
    let figures: Vec<(f64, f64, f64, f64)> = samples
        .iter()
        .map(|step| {
            let seconds: Vec<f64> = step.iter().map(|sample| sample.seconds).collect();
            let rss: Vec<f64> = step
                .iter()
                .map(|sample| sample.peak_rss_kib as f64 * 1024.0 / 1e6)
                .collect();
            let (median, min, max) = stats(&seconds);
            (median, min, max, stats(&rss).0)
        })
        .collect();
    let reference = figures[REFERENCE].0;
    let ratio = |step: usize| figures[step].0 / reference;

    println!("alertissimo import benchmark");
    println!("machine:  {cpus} CPUs, {model}");
    println!(
        "data:     {} rows in snapshot-1, {} rows in snapshot-2 ({snapshot_2_bytes} bytes, \
         {bytes_per_row:.1} bytes/row), seed {}",
        expected.rows_snapshot_1, expected.rows_snapshot_2, args.seed
    );
    println!("binary:   {}", paths.bin.display());
    println!("runs:     {}", args.runs);
    println!();
    println!(
        "{:<40} {:>9} {:>9} {:>9} {:>13} {:>12}",
        "step", "median s", "min s", "max s", "peak RSS MB", "vs sqlite3"
    );
    for (step, name) in STEPS.iter().enumerate() {
        let (median, min, max, rss) = figures[step];
        let versus = if step == REFERENCE {
            "1.00x (ref)".to_owned()
        } else {
            format!("{:.2}x", ratio(step))
        };
        println!("{name:<40} {median:>9.3} {min:>9.3} {max:>9.3} {rss:>13.1} {versus:>12}");
    }

    let verdict = |pass: bool| if pass { "PASS" } else { "FAIL" };
    // A time target as a ratio to the reference measured in the same run.
    let relative = |name, step: usize, seconds: f64| {
        let limit = seconds / TARGET_REFERENCE_SECONDS;
        let measured = ratio(step);
        (
            name,
            format!("<= {limit:.2}x"),
            format!("{measured:.2}x"),
            measured <= limit,
        )
    };
    let targets = [
        (
            "snapshot-2 import time",
            format!("<= {TARGET_SNAPSHOT_2_SECONDS:.1} s"),
            format!("{:.3} s", figures[1].0),
            figures[1].0 <= TARGET_SNAPSHOT_2_SECONDS,
        ),
        relative("snapshot-2 time / sqlite3", 1, TARGET_SNAPSHOT_2_SECONDS),
        (
            "snapshot-2 import peak RSS",
            format!("<= {TARGET_SNAPSHOT_2_MB:.0} MB"),
            format!("{:.1} MB", figures[1].3),
            figures[1].3 <= TARGET_SNAPSHOT_2_MB,
        ),
        (
            "snapshot-1 import time",
            format!("<= {TARGET_SNAPSHOT_1_SECONDS:.1} s"),
            format!("{:.3} s", figures[0].0),
            figures[0].0 <= TARGET_SNAPSHOT_1_SECONDS,
        ),
        relative("snapshot-1 time / sqlite3", 0, TARGET_SNAPSHOT_1_SECONDS),
        (
            "shuffled snapshot-2 events",
            "= 0".to_owned(),
            shuffled_events.to_string(),
            shuffled_events == 0,
        ),
    ];
    println!();
    println!(
        "{:<30} {:>10} {:>12}  result",
        "target", "limit", "measured"
    );
    for (name, limit, measured, pass) in &targets {
        println!("{name:<30} {limit:>10} {measured:>12}  {}", verdict(*pass));
    }
    println!(
        "(counts of snapshot-2 checked against expected.json: created {}, step_changed {}, \
         disappeared {})",
        expected.created, expected.step_changed, expected.disappeared
    );

    if args.json {
        let steps: Vec<Value> = STEPS
            .iter()
            .enumerate()
            .map(|(step, name)| {
                let (median, min, max, rss) = figures[step];
                json!({
                    "step": name,
                    "median_seconds": median,
                    "min_seconds": min,
                    "max_seconds": max,
                    "median_peak_rss_mb": rss,
                    "ratio_to_sqlite3": ratio(step),
                    "samples": samples[step]
                        .iter()
                        .map(|sample| json!({
                            "seconds": sample.seconds,
                            "peak_rss_kib": sample.peak_rss_kib,
                        }))
                        .collect::<Vec<_>>(),
                })
            })
            .collect();
        let results = json!({
            "machine": { "cpus": cpus, "model": model },
            "rows_snapshot_1": expected.rows_snapshot_1,
            "rows_snapshot_2": expected.rows_snapshot_2,
            "snapshot_2_bytes": snapshot_2_bytes,
            "bytes_per_row": bytes_per_row,
            "seed": args.seed,
            "runs": args.runs,
            "binary": paths.bin.display().to_string(),
            "steps": steps,
            "targets": targets
                .iter()
                .map(|(name, limit, measured, pass)| json!({
                    "target": name,
                    "limit": limit,
                    "measured": measured,
                    "pass": pass,
                }))
                .collect::<Vec<_>>(),
        });
        let path = paths.dir.join("results.json");
        let mut text = serde_json::to_string_pretty(&results).map_err(setup("results.json"))?;
        text.push('\n');
        fs::write(&path, text).map_err(setup(path.display()))?;
        eprintln!("bench_import: results written to {}", path.display());
    }
    Ok(())
}
