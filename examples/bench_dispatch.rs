//! Dispatch benchmark: how many messages a second the daemon hands to a local SMTP
//! server with 100 000 alerts queued, and how much memory it takes meanwhile.
//!
//! Usage (from the repository root):
//!
//! ```text
//! cargo build --release --bin alertissimo
//! cargo run --release --example bench_dispatch -- [--alerts 100000] [--runs 3]
//!     [--seconds 20] [--concurrency 16] [--bin PATH] [--json]
//! ```
//!
//! Requirements: GNU time (`/usr/bin/time`) for the peak memory of the daemon.
//!
//! Steps:
//!
//! 1. An SMTP server starts on 127.0.0.1 in this process (the one the tests use:
//!    `tests/it/smtp_server.rs`, the `mailin` protocol library), accepting everything.
//! 2. A temporary installation gets the test connector, the shipped rules, and an SMTP
//!    delivery to that server (`--concurrency` connections, no rate limit, no sending
//!    hours, no debounce). Two exports of `--alerts` dossiers are imported: a baseline,
//!    then every dossier changing step, which queues `--alerts` alerts.
//! 3. Each of the `--runs` runs starts `alertissimo run` under GNU time, lets it
//!    deliver for `--seconds`, stops it with SIGTERM, and counts the messages the
//!    server received in that window (the rate counts from the first message, so
//!    start-up is left out). The queue stays far above 90 000 alerts throughout.
//! 4. The reference, measured in the same run: lettre alone (pooled, the same
//!    concurrency) sending an already built message of the same size to the same
//!    server for the same time: the ceiling of the client and server used.
//! 5. Medians are printed with the ratio to the reference and the target (at least
//!    300 messages a second); with `--json` also written to
//!    `target/bench-dispatch/results.json`. A missed target does not change the exit
//!    code (it depends on the machine).

#![allow(clippy::print_stdout, clippy::print_stderr)]

#[path = "../tests/it/smtp_server.rs"]
#[allow(dead_code)]
mod smtp_server;

#[path = "../tests/it/generated.rs"]
mod generated;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use clap::Parser;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use smtp_server::{Mode, SmtpServer};

/// Command-line arguments.
#[derive(Debug, Parser)]
#[command(about = "Times delivery to a local SMTP server with a large outbox")]
struct Args {
    /// Alerts queued.
    #[arg(long, default_value_t = 100_000)]
    alerts: usize,
    /// Measured runs (the medians are reported).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    runs: u32,
    /// Length of each run.
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    /// Connections to the server.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// The alertissimo binary [default: target/release/alertissimo].
    #[arg(long)]
    bin: Option<PathBuf>,
    /// Also write the results to target/bench-dispatch/results.json.
    #[arg(long)]
    json: bool,
}

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn export(path: &Path, n: usize, status: &str) {
    std::fs::write(path, generated::export_text(n, status)).expect("the export");
}

fn run(bin: &Path, config: &Path, args: &[&str]) {
    let out = Command::new(bin)
        .args(args)
        .arg("--config")
        .arg(config)
        .output()
        .expect("alertissimo runs");
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// One run of the daemon: (messages a second, peak RSS in MB).
fn daemon_run(
    bin: &Path,
    config: &Path,
    server: &SmtpServer,
    seconds: u64,
    dir: &Path,
) -> (f64, f64) {
    let time_file = dir.join("time.txt");
    let before = server.received().len();
    let mut child = Command::new("/usr/bin/time")
        .arg("-f")
        .arg("%M")
        .arg("-o")
        .arg(&time_file)
        .arg(bin)
        .args(["run", "--config"])
        .arg(config)
        .stderr(Stdio::null())
        .spawn()
        .expect("GNU time (apt-get install time)");
    // The window starts with the first message.
    let wait = Instant::now();
    while server.received().len() == before {
        assert!(
            wait.elapsed() < Duration::from_secs(60),
            "no message arrived"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let start = Instant::now();
    let first = server.received().len();
    std::thread::sleep(Duration::from_secs(seconds));
    let sent = server.received().len() - first;
    let elapsed = start.elapsed().as_secs_f64();
    // SIGTERM to the daemon itself, GNU time's child, so that time reports its peak.
    let _ = Command::new("pkill")
        .args(["-TERM", "-P", &child.id().to_string()])
        .status();
    let _ = child.wait();
    let rss_kb: f64 = std::fs::read_to_string(&time_file)
        .ok()
        .and_then(|t| t.lines().last().and_then(|l| l.trim().parse().ok()))
        .unwrap_or(0.0);
    (sent as f64 / elapsed, rss_kb / 1024.0)
}

/// lettre alone, for `seconds`: messages a second.
fn reference(server: &SmtpServer, concurrency: usize, seconds: u64, size: usize) -> f64 {
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    runtime.block_on(async {
        let transport = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous("127.0.0.1")
            .port(server.port)
            .pool_config(lettre::transport::smtp::PoolConfig::new().max_size(concurrency as u32))
            .build();
        let body = "x".repeat(size);
        let message = lettre::Message::builder()
            .from(
                "Région <ne-pas-repondre@example.org>"
                    .parse()
                    .expect("an address"),
            )
            .to("asso@example.org".parse().expect("an address"))
            .subject("Référence")
            .body(body)
            .expect("a message");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(seconds);
        let mut tasks = Vec::new();
        for _ in 0..concurrency {
            let (transport, message) = (transport.clone(), message.clone());
            tasks.push(tokio::spawn(async move {
                let mut n = 0u64;
                while tokio::time::Instant::now() < deadline {
                    if transport.send(message.clone()).await.is_ok() {
                        n += 1;
                    }
                }
                n
            }));
        }
        let mut total = 0;
        for t in tasks {
            total += t.await.unwrap_or(0);
        }
        total as f64 / seconds as f64
    })
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let args = Args::parse();
    let bin = args
        .bin
        .clone()
        .unwrap_or_else(|| repo().join("target/release/alertissimo"));
    let server = SmtpServer::start(Mode::Accept);
    let dir = tempfile::tempdir().expect("a temporary folder");
    let root = dir.path();
    std::fs::create_dir_all(root.join("connectors")).expect("a folder");
    let connector = std::fs::read_to_string(repo().join("tests/fixtures/csv/connector.toml"))
        .expect("the test connector")
        .replace(
            "max_disappeared_ratio = 0.05",
            "max_disappeared_ratio = 0.5",
        );
    std::fs::write(root.join("connectors/bench.toml"), connector).expect("the connector");
    let config = root.join("config.toml");
    std::fs::write(
        &config,
        format!(
            "connectors_dir = \"connectors\"\nrules_dir = \"{}\"\n[store]\npath = \"state/a.db\"\n\
             [daemon]\nimport_at_startup = false\n[alerts]\ndebounce = \"0s\"\nsend_windows = []\n\
             [delivery]\ntransport = \"smtp\"\nconcurrency = {}\nrate_per_second = 1000000.0\n\
             max_per_recipient_per_day = 1000\n\
             [smtp]\nhost = \"127.0.0.1\"\nport = {}\ntls = \"none\"\n\
             from = \"Région <ne-pas-repondre@example.org>\"\n",
            repo().join("rules").display(),
            args.concurrency.min(64),
            server.port
        ),
    )
    .expect("the configuration");
    eprintln!("bench_dispatch: queueing {} alerts…", args.alerts);
    for (name, status) in [
        ("first.csv", "Déposé"),
        ("second.csv", "Instruction en cours"),
    ] {
        let path = root.join(name);
        export(&path, args.alerts, status);
        run(
            &bin,
            &config,
            &["import", "bench", path.to_str().unwrap_or_default()],
        );
    }
    let (mut rates, mut rss, mut refs) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..args.runs {
        let (rate, mb) = daemon_run(&bin, &config, &server, args.seconds, root);
        let size = server.received().last().map_or(8_000, |m| m.data.len());
        let reference = reference(&server, args.concurrency, args.seconds, size);
        eprintln!(
            "run {}: alertissimo {rate:.0} messages/s, peak RSS {mb:.1} MB; lettre alone {reference:.0} messages/s",
            i + 1
        );
        rates.push(rate);
        rss.push(mb);
        refs.push(reference);
    }
    let (rate, mb, reference) = (median(rates), median(rss), median(refs));
    let pass = rate >= 300.0;
    println!(
        "dispatch with {} alerts queued, {} connections: median {rate:.0} messages/s, peak RSS {mb:.1} MB; \
         reference (lettre alone, same server) {reference:.0} messages/s, ratio {:.2}; target ≥ 300 messages/s: {}",
        args.alerts,
        args.concurrency,
        rate / reference,
        if pass { "PASS" } else { "FAIL" }
    );
    if args.json {
        let out = repo().join("target/bench-dispatch");
        let result = serde_json::json!({
            "alerts": args.alerts, "concurrency": args.concurrency, "runs": args.runs,
            "seconds": args.seconds, "messages_per_second": rate, "peak_rss_mb": mb,
            "reference_messages_per_second": reference, "ratio": rate / reference,
            "target": 300, "pass": pass,
        });
        if std::fs::create_dir_all(&out).is_ok() {
            let _ = std::fs::write(out.join("results.json"), result.to_string());
        }
    }
}
