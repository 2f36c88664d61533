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
