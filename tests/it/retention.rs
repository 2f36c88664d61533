//! `alertissimo purge`: closed dossiers lose their personal data after
//! `retention.personal_data`; their steps and dates stay for the statistics.

use chrono::{Duration, Utc};
use serde_json::Value;

use crate::common::{Install, text};

fn day(offset: i64) -> String {
    (Utc::now() + Duration::days(offset))
        .format("%d/%m/%Y")
        .to_string()
}

fn purge(install: &Install, dry_run: bool) -> Value {
    let mut args = vec!["purge", "--json"];
    if dry_run {
        args.push("--dry-run");
    }
    let out = install.run(&args);
    assert!(out.status.success(), "{}", text(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn closed_dossiers_lose_their_personal_data_once_and_keep_their_history() {
    let install = Install::with_connector(|c| {
        c.replace(
            "\"Convention signée\" = \"convention\"",
            "\"Convention signée\" = \"convention\"\n\"Clôturé\" = \"cloture\"",
        )
        .replace(
            "step = \"Statut\"",
            "step = \"Statut\"\n\"instructor.name\" = \"Instructeur\"",
        )
    });
    let export = install.root().join("exports/a.csv");
    std::fs::write(
        &export,
        format!(
            "N° dossier;Référence;Dispositif;Bénéficiaire;SIRET;Courriel;Statut;Date statut;Montant voté;Instructeur\n\
             OLD;REF-OLD;Culture;Jeanne Martin;;jeanne.martin@example.org;Clôturé;{};12000;Claire Fontaine\n\
             NEW;REF-NEW;Culture;Paul Durand;;paul.durand@example.org;Clôturé;{};8000;Claire Fontaine\n\
             OPEN;REF-OPEN;Culture;Lucie Bernard;;lucie@example.org;Instruction en cours;{};;Claire Fontaine\n",
            day(-4 * 365),
            day(-365),
            day(-10),
        ),
    )
    .unwrap();
    let (summary, code) = install.import_path(&export);
    assert_eq!(code, 0, "{summary}");

    // Only REF-OLD is closed for over 3 years (the default).
    let dry = purge(&install, true);
    assert_eq!(dry["dry_run"], true);
    assert_eq!(dry["purged"]["dossiers"], 1, "{dry}");
    assert_eq!(dry["purged"]["fields"], 3, "{dry}");
    let before = install.fields("REF-OLD");
    assert_eq!(
        before["beneficiary.name"], "Jeanne Martin",
        "nothing changed yet"
    );

    let done = purge(&install, false);
    assert_eq!(done["purged"], dry["purged"], "{done}");
    let after = install.fields("REF-OLD");
    for gone in ["beneficiary.name", "beneficiary.email", "instructor.name"] {
        assert!(after.get(gone).is_none(), "{gone} is still there: {after}");
    }
    // What the statistics need stays.
    assert_eq!(after["scheme"], "Culture");
    assert_eq!(after["amount_granted"], "12000.00");
    assert_eq!(install.fields("REF-NEW")["beneficiary.name"], "Paul Durand");
    assert_eq!(
        install.fields("REF-OPEN")["beneficiary.name"],
        "Lucie Bernard"
    );
    let db = std::fs::read(install.db()).unwrap();
    let wal = std::fs::read(install.db().with_extension("db-wal")).unwrap_or_default();
    for bytes in [&db, &wal] {
        assert!(
            !bytes.windows(13).any(|w| w == b"Jeanne Martin") || bytes.is_empty(),
            "the name is still in the database file"
        );
    }

    // Once only.
    assert_eq!(purge(&install, false)["purged"]["dossiers"], 0);
}

#[test]
fn the_daemon_purges_on_its_schedule() {
    let install = Install::with_connector(|c| {
        c.replace(
            "\"Convention signée\" = \"convention\"",
            "\"Convention signée\" = \"convention\"\n\"Clôturé\" = \"cloture\"",
        )
    });
    install.append_config("[retention]\npersonal_data = \"1d\"\nschedule = \"* * * * * *\"\n");
    std::fs::write(
        install.root().join("inbox/a.csv"),
        format!(
            "N° dossier;Référence;Dispositif;Bénéficiaire;SIRET;Courriel;Statut;Date statut;Montant voté\n\
             OLD;REF-OLD;Culture;Jeanne Martin;;jeanne.martin@example.org;Clôturé;{};12000\n",
            day(-2),
        ),
    )
    .unwrap();
    let mut daemon = install.daemon();
    let start = std::time::Instant::now();
    loop {
        // Once imported (the dossier is found), its fields.
        let found = install.db().exists()
            && install
                .run(&["dossier", "REF-OLD", "--json"])
                .status
                .success();
        let fields = found.then(|| install.fields("REF-OLD"));
        if fields
            .as_ref()
            .is_some_and(|f| f.get("scheme").is_some() && f.get("beneficiary.name").is_none())
        {
            break;
        }
        assert!(start.elapsed().as_secs() < 30, "not purged: {fields:?}");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let exit = crate::common::terminate(&mut daemon.0);
    assert!(exit.success(), "{exit}");
}

/// Writes `path` (its folder too) and sets its modification time `days` ago.
fn aged(path: &std::path::Path, days: u64) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    if !path.exists() {
        std::fs::write(path, "Jeanne Martin <jeanne.martin@example.org>").unwrap();
    }
    let file = std::fs::File::options().write(true).open(path).unwrap();
    file.set_modified(std::time::SystemTime::now() - std::time::Duration::from_secs(days * 86_400))
        .unwrap();
}

/// The file in `dir` whose name ends with `suffix`.
fn one_ending(dir: &std::path::Path, suffix: &str) -> std::path::PathBuf {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().ends_with(suffix))
        .unwrap_or_else(|| panic!("no *{suffix} in {}", dir.display()))
}

/// The purge reaches the copies of personal data outside the dossiers: the
/// rejected records of old imports, the archived exports, the `.eml` files of the
/// file transport and the API spools a crash left, each once older than
/// `retention.personal_data`; recent ones, and files Alertissimo did not name,
/// stay. `--dry-run` counts them and deletes nothing.
// See: issue 17, item 17 (the RGPD purge reaches every copy).
#[test]
fn issue_17_item_17_the_purge_reaches_every_copy() {
    let install = Install::tolerant();
    install.append_config("[delivery.file]\ndir = \"outbox\"\n");
    let root = install.root();
    // Rejected records: of an import four years old, and of one today.
    let (old_run, _) = install.import("rejected-records.csv", &[]);
    assert_eq!(old_run["status"], "refused", "{old_run}");
    let old_run = old_run["run_id"].as_i64().unwrap();
    install
        .sql()
        .execute(
            "UPDATE runs SET started_at = '2022-01-01T00:00:00Z', finished_at = '2022-01-01T00:00:00Z' WHERE id = ?1",
            [old_run],
        )
        .unwrap();
    let again = root.join("exports/rejected-again.csv");
    let mut bytes = std::fs::read(crate::common::fixture("rejected-records.csv")).unwrap();
    bytes
        .extend_from_slice(b"D6;REF-6;Culture;X;;;Statut inconnu;06/09/2026;;01/10/2026 06:00\r\n");
    std::fs::write(&again, bytes).unwrap();
    let (new_run, _) = install.import_path(&again);
    assert_eq!(new_run["status"], "refused", "{new_run}");
    let new_run = new_run["run_id"].as_i64().unwrap();
    // Archived exports: one four years old, one of today.
    let (inbox, archive) = (root.join("inbox"), root.join("inbox/archive"));
    for (fixture, name) in [("export-1.csv", "a.csv"), ("export-2.csv", "b.csv")] {
        std::fs::copy(crate::common::fixture(fixture), inbox.join(name)).unwrap();
        let out = install.run(&["import", "portail", "--json"]);
        assert!(out.status.success(), "{}", text(&out));
    }
    let (old_archive, new_archive) = (
        one_ending(&archive, "-a.csv"),
        one_ending(&archive, "-b.csv"),
    );
    aged(&old_archive, 4 * 365);
    aged(&archive.join("notes.txt"), 4 * 365);
    // Messages of the file transport, and spools left by a crash.
    let (outbox, state) = (root.join("outbox"), root.join("state"));
    aged(
        &outbox.join("0f3a.alertissimo_region.example.org.eml"),
        4 * 365,
    );
    aged(&outbox.join("77b2.alertissimo_region.example.org.eml"), 1);
    aged(&state.join(".tmpAb12Cd"), 4 * 365);
    aged(&state.join(".tmpZz99Yy"), 1);
    let gone = [
        old_archive,
        outbox.join("0f3a.alertissimo_region.example.org.eml"),
        state.join(".tmpAb12Cd"),
    ];
    let kept = [
        new_archive,
        archive.join("notes.txt"),
        outbox.join("77b2.alertissimo_region.example.org.eml"),
        state.join(".tmpZz99Yy"),
    ];
    let rejections = |run: i64| -> usize {
        let out = install.run(&["runs", "--rejections", &run.to_string(), "--json"]);
        serde_json::from_slice::<Value>(&out.stdout)
            .unwrap()
            .as_array()
            .unwrap()
            .len()
    };
    assert_eq!((rejections(old_run), rejections(new_run)), (2, 3));

    let dry = purge(&install, true);
    for (key, count) in [
        ("rejections", 2),
        ("archived_files", 1),
        ("eml_files", 1),
        ("spool_files", 1),
    ] {
        assert_eq!(dry["purged"][key], count, "{key}: {dry}");
    }
    assert!(
        gone.iter().chain(&kept).all(|p| p.exists()),
        "--dry-run deleted"
    );
    assert_eq!(rejections(old_run), 2);

    let done = purge(&install, false);
    assert_eq!(done["purged"], dry["purged"], "{done}");
    for path in &gone {
        assert!(!path.exists(), "{} is still there", path.display());
    }
    for path in &kept {
        assert!(path.exists(), "{} is gone", path.display());
    }
    assert_eq!((rejections(old_run), rejections(new_run)), (0, 3));
    // Once only.
    let twice = purge(&install, false);
    for key in ["rejections", "archived_files", "eml_files", "spool_files"] {
        assert_eq!(twice["purged"][key], 0, "{key}: {twice}");
    }
}

/// The daemon's purge, on `[retention] schedule`, reaches the copies too.
// See: issue 17, item 17 (the RGPD purge reaches every copy).
#[test]
fn issue_17_item_17_the_daemon_expires_the_copies_on_its_schedule() {
    let install = Install::new();
    install.append_config(
        "[retention]\npersonal_data = \"1d\"\nschedule = \"* * * * * *\"\n[delivery.file]\ndir = \"outbox\"\n",
    );
    let root = install.root();
    let old = [
        root.join("inbox/archive/20200101T000000Z-a.csv"),
        root.join("outbox/0f3a.alertissimo_region.example.org.eml"),
        root.join("state/.tmpAb12Cd"),
    ];
    let recent = root.join("outbox/77b2.alertissimo_region.example.org.eml");
    for path in &old {
        aged(path, 2);
    }
    aged(&recent, 0);
    let mut daemon = install.daemon();
    let start = std::time::Instant::now();
    while old.iter().any(|p| p.exists()) {
        assert!(start.elapsed().as_secs() < 30, "not purged: {old:?}");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    assert!(recent.exists());
    let exit = crate::common::terminate(&mut daemon.0);
    assert!(exit.success(), "{exit}");
}
