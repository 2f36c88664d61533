//! Time-based events through the binary: `alertissimo evaluate` raises stalled
//! dossiers and deadline reminders once, across runs, and queues their alerts.

use chrono::{Duration, Utc};
use serde_json::Value;

use crate::common::{Install, text};

fn day(offset: i64) -> String {
    (Utc::now() + Duration::days(offset))
        .format("%d/%m/%Y")
        .to_string()
}

fn evaluate(install: &Install) -> Value {
    let out = install.run(&["evaluate", "--json"]);
    assert!(out.status.success(), "{}", text(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn stalls_and_deadlines_are_raised_once_and_alert_as_the_rules_say() {
    let install = Install::with_connector(|c| {
        c.replace(
            "amount_granted = { column = \"Montant voté\", format = \"auto\" }",
            "amount_granted = { column = \"Montant voté\", format = \"auto\" }\n\
             justification_due = { column = \"Fin justificatifs\", format = \"%d/%m/%Y\" }\n\
             \"instructor.email\" = \"Instructeur\"",
        )
    });
    install.append_config("[delivery.file]\ndir = \"mail\"\n");
    let export = install.root().join("exports/a.csv");
    std::fs::write(
        &export,
        format!(
            "N° dossier;Référence;Dispositif;Bénéficiaire;SIRET;Courriel;Statut;Date statut;Montant voté;Fin justificatifs;Instructeur\n\
             A;REF-A;Culture;Compagnie A;;a@example.org;Convention signée;{};12000;{};claire@region.example.org\n\
             B;REF-B;Culture;Compagnie B;;b@example.org;Instruction en cours;{};;;claire@region.example.org\n\
             C;REF-C;Culture;Compagnie C;;c@example.org;Déposé;{};;;claire@region.example.org\n",
            day(-3),
            day(20),
            day(-100),
            day(-2),
        ),
    )
    .unwrap();
    let (summary, code) = install.import_path(&export);
    assert_eq!(code, 0, "{summary}");

    // A: its justification period ends in 20 days, past the 30-day reminder. B: in
    // instruction for 100 days, longer than the 6 weeks expected, but it already
    // was when first seen: recorded, nobody alerted. C: nothing yet.
    let first = evaluate(&install);
    assert_eq!(first["dossiers"], 3, "{first}");
    assert_eq!(first["stalled"], 1, "{first}");
    assert_eq!(first["deadline"], 1, "{first}");
    assert_eq!(first["alerts_queued"], 1, "{first}");
    assert!(first["run_id"].is_i64(), "{first}");

    // Another process, later: nothing new.
    let second = evaluate(&install);
    assert_eq!(second["stalled"], 0, "{second}");
    assert_eq!(second["deadline"], 0, "{second}");
    assert_eq!(second["run_id"], Value::Null, "{second}");

    let out = install.run(&["outbox", "list", "--json"]);
    let alerts: Value = serde_json::from_slice(&out.stdout).unwrap();
    let alerts = alerts.as_array().unwrap();
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(alerts[0]["rule"], "rappel-echeance");
    assert_eq!(alerts[0]["recipient"], "a@example.org");

    // Both are in the dossiers' timelines.
    let a = text(&install.run(&["dossier", "REF-A"]));
    assert!(a.contains("échéance justification_due"), "{a}");
    assert!(a.contains("rappel à J-30"), "{a}");
    let b = text(&install.run(&["dossier", "REF-B"]));
    assert!(b.contains("depuis plus longtemps que prévu"), "{b}");

    // The message says it in French.
    let out = install.run(&["render", "rappel-echeance", "--dossier", "REF-A", "--json"]);
    assert!(out.status.success(), "{}", text(&out));
    let message: Value = serde_json::from_slice(&out.stdout).unwrap();
    let body = message["text"].as_str().unwrap();
    assert!(
        body.contains("la date limite de remise des justificatifs est fixée au"),
        "{body}"
    );

    // The weekly review: A (deadline within 30 days) and B (stalled) go to their
    // instructor, once per day whatever the evaluations.
    let review = |install: &Install| {
        let out = install.run(&["evaluate", "--review", "--json"]);
        assert!(out.status.success(), "{}", text(&out));
        serde_json::from_slice::<Value>(&out.stdout).unwrap()
    };
    let first = review(&install);
    assert_eq!(first["review"], 2, "{first}");
    assert_eq!(first["alerts_queued"], 2, "{first}");
    assert_eq!(review(&install)["review"], 0);
    // The two go as one message.
    let out = install.run(&["outbox", "flush", "--force"]);
    assert!(out.status.success(), "{}", text(&out));
    let outbox = install.root().join("mail");
    let mails: Vec<String> = std::fs::read_dir(&outbox)
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .filter(|m| m.contains("claire@region.example.org"))
        .collect();
    assert_eq!(mails.len(), 1, "{mails:?}");
    let mail = mails[0].replace("=\r\n", "");
    for needle in ["REF-A", "REF-B", "2 dossiers"] {
        assert!(mail.contains(needle), "missing {needle:?} in:\n{mail}");
    }

    // Evaluations are not imports: `runs` lists the import alone.
    let out = install.run(&["runs", "--json"]);
    let runs: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(runs.as_array().map(Vec::len), Some(1), "{runs}");
}
