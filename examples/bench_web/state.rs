//! The benchmark's state: its configuration, the exports, the imports by the
//! binary, and what is read of the daemon (its memory, the messages it wrote).

use super::*;

pub(crate) fn write_config(dir: &Path, port: u16) {
    let rules = concat!(env!("CARGO_MANIFEST_DIR"), "/rules");
    let config = format!(
        "connectors_dir = \"connectors\"\n\
         rules_dir = \"{rules}\"\n\
         [store]\npath = \"state/alertissimo.db\"\n\
         [web]\nlisten = \"127.0.0.1:{port}\"\npublic_url = \"http://127.0.0.1:{port}\"\n\
         trusted_proxies = [\"127.0.0.1\"]\n\
         staff = [{{ email = \"{PILOTAGE}\", role = \"pilotage\" }}]\n\
         [delivery]\ntransport = \"file\"\n\
         [delivery.file]\ndir = \"{}\"\n",
        dir.join("outbox").display()
    );
    std::fs::write(dir.join("config.toml"), config).expect("config.toml");
    let mut connector = String::from(
        "kind = \"csv\"\n\
         schedule = \"0 0 3 1 1 *\"\n\
         watch = [\"amount_granted\", \"beneficiary.email\"]\n\
         [source]\npath = \"../1.csv\"\nencoding = \"utf-8\"\ndelimiter = \";\"\n\
         header_row = 1\nafter_import = \"keep\"\n\
         [guards]\nmax_disappeared_ratio = 0.05\n\
         [fields]\nid = \"N° dossier\"\nreference = \"Référence\"\nscheme = \"Dispositif\"\n\
         title = \"Intitulé\"\n\"beneficiary.name\" = \"Bénéficiaire\"\n\
         \"beneficiary.email\" = \"Courriel\"\nstep = \"Statut\"\n\
         step_since = { column = \"Date statut\", format = \"%d/%m/%Y\" }\n\
         amount_requested = { column = \"Montant demandé\", format = \"fr_decimal\" }\n\
         amount_granted = { column = \"Montant voté\", format = \"fr_decimal\" }\n\
         \"instructor.name\" = \"Instructeur\"\n\
         \"instructor.email\" = \"Courriel instructeur\"\n\
         [steps]\n",
    );
    for (label, step) in STEPS {
        let _ = writeln!(connector, "\"{label}\" = \"{step}\"");
    }
    std::fs::write(dir.join("connectors/bench.toml"), connector).expect("the connector");
}

/// The address of instructor `k`.
pub(crate) fn instructor(k: usize) -> String {
    format!("instructeur{k}@region-exemple.fr")
}

/// The address of the `[web] staff` member with the `pilotage` role.
pub(crate) const PILOTAGE: &str = "pilotage@region-exemple.fr";

/// Writes `1.csv`, `2.csv`, `3a.csv` and `3b.csv`; returns addresses that have
/// a dossier, in a random order.
pub(crate) fn write_exports(args: &Args, dir: &Path) -> Vec<String> {
    let mut rng = ChaCha8Rng::seed_from_u64(args.seed);
    let n = args.dossiers;
    let owner: Vec<usize> = (0..n)
        .map(|_| rng.random_range(0..args.addresses))
        .collect();
    // Each dossier's step in each export, and its step's date (days before today).
    let first: Vec<usize> = (0..n)
        .map(|_| rng.random_range(0..STEPS.len() - 1))
        .collect();
    let second: Vec<usize> = first
        .iter()
        .map(|&s| {
            if rng.random_range(0..10) < 4 {
                (s + 1).min(STEPS.len() - 1)
            } else {
                s
            }
        })
        .collect();
    let amount_changed: Vec<bool> = (0..n).map(|_| rng.random_range(0..10) == 0).collect();
    let header = "N° dossier;Référence;Dispositif;Intitulé;Bénéficiaire;Courriel;Statut;Date statut;\
                  Montant demandé;Montant voté;Instructeur;Courriel instructeur\n";
    let today = chrono::Utc::now().date_naive();
    let date = |days: i64| (today - chrono::Days::new(days as u64)).format("%d/%m/%Y");
    let write = |name: &str,
                 step: &dyn Fn(usize) -> (usize, i64),
                 amount: &dyn Fn(usize) -> u64| {
        let mut out = String::with_capacity(n * 160);
        out.push_str(header);
        for i in 0..n {
            let (s, days) = step(i);
            let _ = writeln!(
                out,
                "D{i};AR-{i:07};{};Projet n° {i};Beneficiaire {};beneficiaire{}@exemple.fr;{};{};{} 000,00;{};Claire Fontaine;{}",
                SCHEMES[i % SCHEMES.len()],
                owner[i],
                owner[i],
                STEPS[s].0,
                date(days),
                5 + i % 40,
                if s >= 4 {
                    format!("{} 000,00", amount(i))
                } else {
                    String::new()
                },
                instructor(i % args.instructors),
            );
        }
        std::fs::write(dir.join(name), out).expect("an export");
    };
    write("1.csv", &|i| (first[i], 200 + (i % 100) as i64), &|i| {
        (3 + i % 30) as u64
    });
    let amount2 = |i: usize| (3 + i % 30) as u64 + u64::from(amount_changed[i]);
    let step2 = |i: usize| {
        if second[i] == first[i] {
            (first[i], 200 + (i % 100) as i64)
        } else {
            (second[i], 60 + (i % 100) as i64)
        }
    };
    write("2.csv", &step2, &amount2);
    // 3a and 3b: a distinct 2 % each moves on a step.
    let (second, step2) = (&second, &step2);
    let third = |start: usize| {
        move |i: usize| {
            if i % 50 == start {
                ((second[i] + 1).min(STEPS.len() - 1), 1)
            } else {
                step2(i)
            }
        }
    };
    write("3a.csv", &third(7), &amount2);
    write("3b.csv", &third(31), &amount2);
    let mut seen = vec![false; args.addresses];
    let mut emails: Vec<String> = Vec::new();
    for &o in &owner {
        if !seen[o] {
            seen[o] = true;
            emails.push(format!("beneficiaire{o}@exemple.fr"));
        }
    }
    // A random order: addresses with one dossier and with several alike.
    for i in (1..emails.len()).rev() {
        emails.swap(i, rng.random_range(0..=i));
    }
    assert!(emails.len() >= args.clients, "fewer addresses than clients");
    emails
}

/// Runs `BIN import bench DIR/name`: seconds, and whether it was applied.
pub(crate) fn import(bin: &Path, dir: &Path, name: &str) -> (f64, bool) {
    let clock = Instant::now();
    let out = Command::new(bin)
        .args(["import", "bench"])
        .arg(dir.join(name))
        .args(["--json", "--config"])
        .arg(dir.join("config.toml"))
        .output()
        .expect("the import runs");
    let secs = clock.elapsed().as_secs_f64();
    if !out.status.success() {
        eprintln!(
            "import {name}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    (secs, out.status.success())
}

pub(crate) fn stop(daemon: &mut Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &daemon.id().to_string()])
        .status();
    let _ = daemon.wait();
}

/// The peak resident memory of a process, in KiB (Linux).
pub(crate) fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

pub(crate) fn eml_count(dir: &Path) -> usize {
    std::fs::read_dir(dir.join("outbox")).map_or(0, |entries| {
        entries
            .filter_map(Result::ok)
            .filter(|e| e.path().extension().is_some_and(|x| x == "eml"))
            .count()
    })
}

pub(crate) type HttpClient = Client<HttpConnector, Full<Bytes>>;
