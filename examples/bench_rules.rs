//! Rule evaluation benchmark: how long deciding which alerts 100 000 events owe
//! takes against 50 rules, on one core.
//!
//! Usage (from the repository root):
//!
//! ```text
//! cargo run --release --example bench_rules -- [--events 100000] [--rules 50] [--runs 5]
//!     [--seed 42] [--json]
//! ```
//!
//! Steps:
//!
//! 1. A temporary rules folder gets the shipped `lifecycle.toml` and templates, and a
//!    rule file of `--rules` rules modelled on the shipped ones: step rules on every
//!    step, field rules, disappearance rules; one in four with a scheme glob, one in
//!    five with a condition (`dossier.amount_granted and dossier.amount_granted > N`),
//!    a few limited to a connector. It is loaded as the daemon loads it (every
//!    template rendered against the samples).
//! 2. `--events` events on realistic dossiers are generated with a fixed seed:
//!    60 % step changes, 20 % new dossiers, 15 % watched field changes, 5 %
//!    disappearances.
//! 3. Each run times `Rules::plan` over every event on this thread (matching,
//!    conditions, recipients and timing: everything an import does per event except
//!    the SQLite write), and, as a reference measured in the same run, serializing
//!    each dossier and event to JSON with serde_json.
//! 4. The median, minimum and maximum over `--runs`, the ratio to the reference and
//!    the target (at most 1 s) are printed; with `--json` also written to
//!    `target/bench-rules/results.json`. A missed target does not change the exit
//!    code (it depends on the machine).

#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use alertissimo::config::Config;
use alertissimo::diag::Problems;
use alertissimo::lifecycle::Lifecycle;
use alertissimo::model::{Dossier, Event, EventKind};
use alertissimo::rules::{Rules, Scene};
use chrono::{DateTime, Utc};
use clap::Parser;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Command-line arguments.
#[derive(Debug, Parser)]
#[command(about = "Times rule evaluation: events against rules, on one core")]
struct Args {
    /// Number of events.
    #[arg(long, default_value_t = 100_000)]
    events: usize,
    /// Number of rules.
    #[arg(long, default_value_t = 50)]
    rules: usize,
    /// Number of measured runs (the medians are reported).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..))]
    runs: u32,
    /// Seed of the generated events.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Also write the results to target/bench-rules/results.json.
    #[arg(long)]
    json: bool,
}

const STEPS: [&str; 14] = [
    "depose",
    "incomplet",
    "complet",
    "instruction",
    "commission",
    "accorde",
    "refuse",
    "ajourne",
    "convention",
    "paiement_avance",
    "paiement_acompte",
    "paiement_solde",
    "cloture",
    "sans_suite",
];
const SCHEMES: [&str; 6] = [
    "Soutien aux manifestations culturelles",
    "Pass Rénovation",
    "Aide à l'export",
    "Emploi associatif",
    "Sport pour tous",
    "Investissement des TPE",
];
const TEMPLATES: [&str; 4] = [
    "en_instruction",
    "aide_accordee",
    "montant_modifie",
    "instructeur_action",
];

fn rule_file(n: usize) -> String {
    let mut text = String::new();
    for i in 0..n {
        let step = STEPS[i % STEPS.len()];
        let (on, filter) = match i % 10 {
            0..=5 => ("step_changed", format!("to = \"{step}\"\n")),
            6 | 7 => ("created", format!("to = [\"{step}\", \"depose\"]\n")),
            8 => ("field_changed", "field = \"amount_granted\"\n".to_owned()),
            _ => ("disappeared", String::new()),
        };
        text.push_str(&format!(
            "[[rule]]\nname = \"r{i}\"\non = \"{on}\"\n{filter}notify = [\"beneficiary\", \"instructor\"]\ntemplate = \"{}\"\n",
            TEMPLATES[i % TEMPLATES.len()]
        ));
        if i % 4 == 1 {
            text.push_str(&format!(
                "scheme = [\"{}*\", \"Pass *\"]\n",
                &SCHEMES[i % SCHEMES.len()][..8]
            ));
        }
        if i % 5 == 2 {
            text.push_str(&format!(
                "when = \"dossier.amount_granted and dossier.amount_granted > {}\"\n",
                5_000 * (i % 7)
            ));
        }
        if i % 12 == 3 {
            text.push_str("connector = \"portail-*\"\n");
        }
        text.push('\n');
    }
    text
}

fn load_rules(dir: &Path, n: usize) -> Rules {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("rules");
    let rules = dir.join("rules");
    std::fs::create_dir_all(rules.join("templates")).expect("a temporary folder");
    std::fs::copy(repo.join("lifecycle.toml"), rules.join("lifecycle.toml"))
        .expect("the shipped lifecycle");
    for entry in std::fs::read_dir(repo.join("templates")).expect("the shipped templates") {
        let path = entry.expect("a template").path();
        std::fs::copy(
            &path,
            rules
                .join("templates")
                .join(path.file_name().unwrap_or_default()),
        )
        .expect("a template copy");
    }
    std::fs::write(rules.join("bench.toml"), rule_file(n)).expect("the rule file");
    std::fs::write(
        dir.join("config.toml"),
        "rules_dir = \"rules\"\n[alerts]\nsend_windows = [\"mon-fri 08:00-19:00\"]\n",
    )
    .expect("the configuration");
    let config = Config::load(Some(&dir.join("config.toml"))).unwrap_or_else(|p| panic!("{p}"));
    let mut problems = Problems::default();
    let lifecycle = Lifecycle::load(&config.lifecycle_path(), &mut problems)
        .unwrap_or_else(|| panic!("{problems}"));
    Rules::load(
        &config,
        Arc::new(lifecycle),
        Default::default(),
        &mut problems,
    )
    .unwrap_or_else(|| panic!("{problems}"))
}

fn scenes(n: usize, seed: u64, at: DateTime<Utc>) -> Vec<(String, Dossier, Event)> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..n)
        .map(|i| {
            let step = STEPS[rng.random_range(0..STEPS.len())];
            let mut fields = std::collections::BTreeMap::new();
            let mut put = |k: &str, v: String| {
                fields.insert(k.to_owned(), v);
            };
            put("reference", format!("AR-26-{i:06}"));
            put("title", "Rénovation de la salle des fêtes".to_owned());
            put(
                "scheme",
                SCHEMES[rng.random_range(0..SCHEMES.len())].to_owned(),
            );
            put(
                "beneficiary.name",
                "Association Les Jardins partagés".to_owned(),
            );
            put(
                "beneficiary.email",
                format!("contact{}@example.org", i % 5000),
            );
            if rng.random_bool(0.7) {
                put(
                    "instructor.email",
                    format!("instructeur{}@region.example.org", i % 40),
                );
            }
            if rng.random_bool(0.6) {
                put(
                    "amount_granted",
                    format!("{}.00", rng.random_range(1_000..60_000)),
                );
            }
            let dossier = Dossier {
                id: format!("D{i}"),
                step: step.to_owned(),
                status: step.to_owned(),
                fields: fields.into_iter().collect(),
            };
            let roll = rng.random_range(0..100);
            let kind = match roll {
                0..=59 => EventKind::StepChanged,
                60..=79 => EventKind::Created,
                80..=94 => EventKind::FieldChanged,
                _ => EventKind::Disappeared,
            };
            let mut event = Event::new(kind, at);
            match kind {
                EventKind::StepChanged => {
                    event.from_step = Some(STEPS[rng.random_range(0..STEPS.len())].to_owned());
                    event.to_step = Some(step.to_owned());
                }
                EventKind::Created => event.to_step = Some(step.to_owned()),
                EventKind::FieldChanged => {
                    event.field = Some("amount_granted".to_owned());
                    event.old_value = Some("10000.00".to_owned());
                    event.new_value = Some("12000.00".to_owned());
                }
                _ => event.from_step = Some(step.to_owned()),
            }
            let connector = if i % 3 == 0 {
                "scdl-subventions"
            } else {
                "portail-aides"
            };
            (connector.to_owned(), dossier, event)
        })
        .collect()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let args = Args::parse();
    let dir = tempfile::tempdir().expect("a temporary folder");
    let rules = load_rules(dir.path(), args.rules);
    let now = DateTime::parse_from_rfc3339("2026-03-10T17:45:00+01:00")
        .expect("a fixed instant")
        .with_timezone(&Utc);
    let scenes = scenes(args.events, args.seed, now);
    let portail = rules.for_connector("portail-aides");
    let scdl = rules.for_connector("scdl-subventions");
    let (mut times, mut refs) = (Vec::new(), Vec::new());
    let mut alerts = 0;
    for run in 0..args.runs {
        let start = Instant::now();
        let mut queued = 0usize;
        for (connector, dossier, event) in &scenes {
            let applicable = if connector == "portail-aides" {
                &portail
            } else {
                &scdl
            };
            let scene = Scene {
                connector,
                link: None,
                dossier,
                event,
                delay: None,
            };
            let plan = rules.plan(applicable, &scene, now);
            queued += plan.alerts.len();
        }
        times.push(start.elapsed());
        alerts = queued;
        let start = Instant::now();
        let mut bytes = 0usize;
        for (_, dossier, event) in &scenes {
            bytes += serde_json::to_string(dossier).map_or(0, |s| s.len());
            bytes += format!("{event:?}").len();
        }
        refs.push(start.elapsed());
        eprintln!(
            "run {}: rules {:.3} s, reference {:.3} s ({bytes} bytes)",
            run + 1,
            times[run as usize].as_secs_f64(),
            refs[run as usize].as_secs_f64()
        );
    }
    let (min, max) = (
        times.iter().min().copied().unwrap_or_default(),
        times.iter().max().copied().unwrap_or_default(),
    );
    let (m, r) = (median(times), median(refs));
    let pass = m <= Duration::from_secs(1);
    println!(
        "{} events × {} rules on one core: median {:.3} s (min {:.3}, max {:.3}), {} alerts; \
         reference (serde_json of each dossier and event) {:.3} s, ratio {:.2}; target ≤ 1 s: {}",
        args.events,
        rules.rules.len(),
        m.as_secs_f64(),
        min.as_secs_f64(),
        max.as_secs_f64(),
        alerts,
        r.as_secs_f64(),
        m.as_secs_f64() / r.as_secs_f64(),
        if pass { "PASS" } else { "FAIL" }
    );
    if args.json {
        let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-rules");
        let result = serde_json::json!({
            "events": args.events, "rules": rules.rules.len(), "runs": args.runs,
            "median_s": m.as_secs_f64(), "min_s": min.as_secs_f64(), "max_s": max.as_secs_f64(),
            "alerts": alerts, "reference_s": r.as_secs_f64(),
            "ratio": m.as_secs_f64() / r.as_secs_f64(), "target_s": 1.0, "pass": pass,
        });
        if std::fs::create_dir_all(&out).is_ok() {
            let _ = std::fs::write(out.join("results.json"), result.to_string());
        }
    }
}
