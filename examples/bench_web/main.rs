//! Front office benchmark (issues 20 and 21): signed-in beneficiaries and
//! staff browsing on the real daemon, beneficiaries writing to the service at a
//! steady rate, while an import runs beside them.
//!
//! Usage (from the repository root):
//!
//! ```text
//! cargo build --release --locked --bin alertissimo --example bench_web
//! cargo run --release --locked --example bench_web -- [--dossiers 100000]
//!     [--addresses 60000] [--instructors 100] [--clients 200] [--staff 20]
//!     [--exchanges-per-minute 1000] [--seconds 30] [--seed 42]
//!     [--dir DIR] [--bin PATH] [--json]
//! ```
//!
//! Requirements: Linux (the daemon's peak memory is read from
//! `/proc/PID/status`, `VmHWM`). `--bin` is the `alertissimo` built beside this
//! example by default; `--dir` is `target/bench-web` (deleted and written anew).
//!
//! Steps:
//!
//! 1. **A state** ([`state`]): three CSV exports of `--dossiers` dossiers (a
//!    `csv` connector `bench`), whose beneficiary e-mails are drawn among
//!    `--addresses` addresses (so that many have several dossiers) and whose
//!    `instructor.email` among `--instructors`, imported by the binary one after
//!    the other: the second moves 40 % of the dossiers on a step and changes an
//!    amount of 10 %, so that dossiers have a history; then two more exports,
//!    `3a` and `3b`, each moving another, distinct 2 % of the dossiers on.
//! 2. **The daemon**: `BIN run` with `[web] listen` and `public_url` on a free
//!    port of 127.0.0.1, `trusted_proxies = ["127.0.0.1"]` (each client sends its
//!    own `X-Forwarded-For`, as behind the Region's proxy: the sign-in limit per
//!    client holds per client), one `pilotage` member in `[web] staff`, and the
//!    `file` transport.
//! 3. **The import alone**: `BIN import bench 3a.csv` beside the daemon (handed
//!    to it through the control socket), timed.
//! 4. **Sessions** ([`http`]), through the real flow: `GET /` (the CSRF cookie
//!    and field), `POST /connexion`, the link read from the `.eml` outbox, `GET
//!    /connexion/<token>` (the session cookie), for the browsing beneficiaries,
//!    the writers and the staff.
//! 5. **The load** ([`load`]): `--clients` concurrent clients (tokio,
//!    hyper-util's client, one keep-alive connection each) for `--seconds`:
//!    beneficiaries ask for `/dossiers` and every page it links under
//!    `/dossiers/`; `--staff` of them are staff: instructors ask for
//!    `/instruction` and five staff pages it links, the `pilotage` member for
//!    `/pilotage`; each then for the home page `GET /`, the reference: a page of
//!    the same server that reads no dossier. Writers post a message in turn
//!    (`POST /dossiers/{key}/messages`), `--exchanges-per-minute` together. A
//!    third of the way in, `BIN import bench 3b.csv` runs beside, timed.
//! 6. **Report**: p50 and p99 of every page, of each kind, of the messages
//!    written and of the reference, pages per second, messages written a minute,
//!    errors, the daemon's peak RSS, the import alone and under load, the
//!    messages the daemon delivered during the load (the forwardings included);
//!    each target met or MISSED (p99 of the pages ≤ 50 ms, ≥ 1 000 pages/s, the
//!    asked rate of messages, peak RSS ≤ 150 MB; the import goes on). With
//!    `--json`, also `DIR/results.json`.
//!
//! A missed target does not change the exit code (it depends on the machine); a
//! failed sign-in or a page in error does.

#![allow(clippy::print_stdout, clippy::print_stderr)]
// A benchmark reads top to bottom: the limit on long functions holds in src/.
#![allow(clippy::too_many_lines)]

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::json;

mod http;
mod load;
mod state;

use http::*;
use load::*;
use state::*;

/// Command-line arguments.
#[derive(Debug, Parser)]
#[command(about = "Signed-in clients browsing the front office of the real daemon")]
struct Args {
    /// Dossiers in the state.
    #[arg(long, default_value_t = 100_000)]
    dossiers: usize,
    /// Distinct beneficiary addresses the dossiers are spread over.
    #[arg(long, default_value_t = 60_000)]
    addresses: usize,
    /// Concurrent signed-in clients browsing: `--staff` of them are staff,
    /// the others beneficiaries.
    #[arg(long, default_value_t = 200)]
    clients: usize,
    /// Instructors the dossiers are spread over.
    #[arg(long, default_value_t = 100)]
    instructors: usize,
    /// Of the clients, how many are staff: one `pilotage` member on
    /// `/pilotage`, the others instructors on `/instruction` and their
    /// dossiers' staff pages.
    #[arg(long, default_value_t = 20)]
    staff: usize,
    /// Messages beneficiaries write to the service, a minute, during the load.
    #[arg(long, default_value_t = 1_000)]
    exchanges_per_minute: u32,
    /// Length of the load, in seconds.
    #[arg(long, default_value_t = 30)]
    seconds: u64,
    /// Seed of the exports.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Working folder [default: target/bench-web].
    #[arg(long)]
    dir: Option<PathBuf>,
    /// The alertissimo binary [default: the one built beside this program].
    #[arg(long)]
    bin: Option<PathBuf>,
    /// Also write the results to DIR/results.json.
    #[arg(long)]
    json: bool,
}

/// The targets of issue 20.
const P99_MS: f64 = 50.0;
const PAGES_PER_SECOND: f64 = 1_000.0;
const RSS_MB: f64 = 150.0;

const STEPS: &[(&str, &str)] = &[
    ("Déposé", "depose"),
    ("Complet", "complet"),
    ("En instruction", "instruction"),
    ("Passage en commission", "commission"),
    ("Accordé", "accorde"),
    ("Convention signée", "convention"),
    ("Solde versé", "paiement_solde"),
    ("Clôturé", "cloture"),
];

const SCHEMES: &[&str] = &[
    "Pass Rénovation",
    "Culture en territoire",
    "Sport pour tous",
    "Aide à l'investissement",
    "Transition écologique",
];

fn main() -> ExitCode {
    let args = Args::parse();
    let exe = std::env::current_exe().expect("this program's path");
    // This program is `<target>/<profile>/examples/bench_web`.
    let target = exe
        .parent()
        .and_then(Path::parent)
        .and_then(Path::parent)
        .map_or_else(|| PathBuf::from("target"), Path::to_path_buf);
    let profile = exe
        .parent()
        .and_then(Path::parent)
        .map_or_else(|| target.join("release"), Path::to_path_buf);
    let bin = args
        .bin
        .clone()
        .unwrap_or_else(|| profile.join("alertissimo"));
    let dir = args.dir.clone().unwrap_or_else(|| target.join("bench-web"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("connectors")).expect("the working folder");
    std::fs::create_dir_all(dir.join("outbox")).expect("the outbox");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    write_config(&dir, port);

    // 1. The state.
    let clock = Instant::now();
    let emails = write_exports(&args, &dir);
    for name in ["1.csv", "2.csv"] {
        let (secs, ok) = import(&bin, &dir, name);
        assert!(ok, "the import of {name} failed");
        println!("imported {name} in {secs:.1} s");
    }
    println!(
        "state of {} dossiers written in {:.0} s",
        args.dossiers,
        clock.elapsed().as_secs_f64()
    );

    // 2. The daemon.
    let mut daemon = Command::new(&bin)
        .args(["run", "--config"])
        .arg(dir.join("config.toml"))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("daemon.log")).expect("daemon.log"))
        .spawn()
        .expect("the daemon starts");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let base = format!("http://127.0.0.1:{port}");
    let ready = runtime.block_on(wait_ready(&base));
    if !ready {
        stop(&mut daemon);
        eprintln!(
            "the daemon did not answer: see {}",
            dir.join("daemon.log").display()
        );
        return ExitCode::FAILURE;
    }

    // 3. The import alone.
    let (alone, alone_ok) = import(&bin, &dir, "3a.csv");
    println!("import of 3a.csv alone, beside the idle daemon: {alone:.2} s");

    // 4. Sessions.
    let clock = Instant::now();
    // Each writer writes at most 8 messages during the load (a beneficiary may
    // write 10 an hour).
    let writers = (u64::from(args.exchanges_per_minute) * args.seconds).div_ceil(60 * 8) as usize;
    let staff_clients = args.staff.min(args.clients);
    let beneficiaries = args.clients - staff_clients;
    let (browsing, writing) = emails.split_at(beneficiaries);
    let staff: Vec<String> = (0..staff_clients.saturating_sub(1).min(args.instructors))
        .map(instructor)
        .chain((staff_clients > 0).then(|| PILOTAGE.to_owned()))
        .collect();
    let signed_in = runtime.block_on(async {
        let beneficiaries = sign_in_all(&base, &dir, browsing, 0).await?;
        let first = beneficiaries.len();
        let writers = sign_in_all(&base, &dir, &writing[..writers], first).await?;
        let mut staff = sign_in_all(&base, &dir, &staff, first + writers.len()).await?;
        let pilotage = staff.split_off(staff.len().saturating_sub(1));
        Some(Clients {
            beneficiaries,
            instructors: staff,
            pilotage,
            writers,
            per_minute: args.exchanges_per_minute,
        })
    });
    let Some(clients) = signed_in else {
        stop(&mut daemon);
        return ExitCode::FAILURE;
    };
    println!(
        "{} beneficiaries browsing, {} writing, {} instructors and {} pilotage member signed in in {:.1} s",
        clients.beneficiaries.len(),
        clients.writers.len(),
        clients.instructors.len(),
        clients.pilotage.len(),
        clock.elapsed().as_secs_f64()
    );

    // 5. The load, and the import beside it.
    let delivered_before = eml_count(&dir);
    let load = runtime.block_on(load(&base, clients, args.seconds, &bin, &dir));
    let delivered = eml_count(&dir).saturating_sub(delivered_before);
    let rss_mb = peak_rss_kib(daemon.id()).unwrap_or(0) as f64 / 1024.0;
    stop(&mut daemon);

    // 6. The report.
    let all: Vec<f64> = [&load.pages, &load.staff, &load.pilotage]
        .into_iter()
        .flatten()
        .copied()
        .collect();
    let [all, pages, staff, pilotage, writes, reference] = [
        &all,
        &load.pages,
        &load.staff,
        &load.pilotage,
        &load.writes,
        &load.reference,
    ]
    .map(|v| summary(v));
    let per_second = all.count as f64 / load.elapsed;
    // The writers write while the clients browse, `--seconds`.
    let written_per_minute = writes.count as f64 * 60.0 / args.seconds as f64;
    let met = |ok: bool| if ok { "met" } else { "MISSED" };
    let import_ok = alone_ok && load.import_ok;
    println!(
        "\n{} dossiers, {} clients, {:.1} s of load on 127.0.0.1\n",
        args.dossiers, load.clients, load.elapsed
    );
    println!("| page | requests | p50 ms | p99 ms | max ms |");
    println!("|---|---:|---:|---:|---:|");
    for (name, s) in [
        (
            "every page below but the reference and the messages written",
            &all,
        ),
        ("beneficiaries' pages (`/dossiers`, `/dossiers/…`)", &pages),
        (
            "instructors' pages (`/instruction`, `/instruction/dossiers/…`)",
            &staff,
        ),
        ("`/pilotage`", &pilotage),
        ("messages written (`POST /dossiers/…/messages`)", &writes),
        ("reference: home page `GET /`", &reference),
    ] {
        println!(
            "| {name} | {} | {:.1} | {:.1} | {:.1} |",
            s.count, s.p50, s.p99, s.max
        );
    }
    println!(
        "\npages a second: {per_second:.0} (lists: {}, a dossier's page: {})",
        load.lists, load.details
    );
    println!(
        "messages written a minute: {written_per_minute:.0} (asked: {})",
        args.exchanges_per_minute
    );
    println!("errors: {}", load.errors);
    println!("daemon's peak RSS (VmHWM): {rss_mb:.0} MB");
    println!(
        "import of 2 % changes: alone {alone:.2} s, under the load {:.2} s ({:.1}x)",
        load.import_secs,
        load.import_secs / alone
    );
    println!("messages the daemon delivered during the load (forwardings included): {delivered}");
    println!("\ntargets:");
    let targets = [
        (
            format!("p99 of the pages ≤ {P99_MS} ms: {:.1} ms", all.p99),
            all.p99 <= P99_MS,
        ),
        (
            format!("≥ {PAGES_PER_SECOND} pages/s: {per_second:.0}"),
            per_second >= PAGES_PER_SECOND,
        ),
        (
            format!(
                "{} messages written a minute: {written_per_minute:.0}",
                args.exchanges_per_minute
            ),
            written_per_minute >= 0.95 * f64::from(args.exchanges_per_minute),
        ),
        (
            format!("daemon's peak RSS ≤ {RSS_MB} MB: {rss_mb:.0} MB"),
            rss_mb <= RSS_MB,
        ),
        (
            "the import went on under the load (applied)".to_owned(),
            import_ok,
        ),
    ];
    for (what, ok) in &targets {
        println!("  {}: {what}", met(*ok));
    }
    if args.json {
        let results = json!({
            "dossiers": args.dossiers,
            "addresses": args.addresses,
            "clients": load.clients,
            "seconds": load.elapsed,
            "pages": {"count": all.count, "p50_ms": all.p50, "p99_ms": all.p99, "max_ms": all.max,
                      "per_second": per_second, "lists": load.lists, "details": load.details},
            "beneficiaries": {"count": pages.count, "p50_ms": pages.p50, "p99_ms": pages.p99, "max_ms": pages.max},
            "instructors": {"count": staff.count, "p50_ms": staff.p50, "p99_ms": staff.p99, "max_ms": staff.max},
            "pilotage": {"count": pilotage.count, "p50_ms": pilotage.p50, "p99_ms": pilotage.p99, "max_ms": pilotage.max},
            "writes": {"count": writes.count, "p50_ms": writes.p50, "p99_ms": writes.p99, "max_ms": writes.max,
                       "per_minute": written_per_minute, "asked_per_minute": args.exchanges_per_minute},
            "reference": {"count": reference.count, "p50_ms": reference.p50, "p99_ms": reference.p99,
                          "max_ms": reference.max},
            "errors": load.errors,
            "peak_rss_mb": rss_mb,
            "import": {"alone_s": alone, "under_load_s": load.import_secs, "applied": import_ok},
            "delivered_during_load": delivered,
            "targets": targets.iter().map(|(w, ok)| json!({"target": w, "met": ok})).collect::<Vec<_>>(),
        });
        let path = dir.join("results.json");
        std::fs::write(&path, format!("{results:#}\n")).expect("results.json");
        println!("\nresults written to {}", path.display());
    }
    if load.errors > 0 || !import_ok {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
