//! Alerts through the binary: queued by imports once, cancelled by flip-flops,
//! and the admin tools around rules (`check`, `test`, `render`, `outbox list`).

use serde_json::Value;

use crate::common::{Install, n, text};

/// The fixture connector tolerating one dossier in five disappearing, with alerts
/// that leave at any time after `debounce`.
fn install(debounce: &str) -> Install {
    let install = Install::tolerant();
    install.append_config(&format!(
        "[alerts]\ndebounce = \"{debounce}\"\nsend_windows = []\n"
    ));
    install
}

/// The outbox as `(status, rule, recipient, reference)`, sorted.
fn outbox(install: &Install) -> Vec<(String, String, String, String)> {
    crate::common::outbox_rows(install, ["status", "rule", "recipient", "reference"])
}

fn row(status: &str, rule: &str, to: &str, reference: &str) -> (String, String, String, String) {
    (status.into(), rule.into(), to.into(), reference.into())
}

#[test]
fn an_export_queues_its_alerts_once_and_the_baseline_none() {
    let install = install("0s");
    let (first, _) = install.import("export-1.csv", &[]);
    assert_eq!(first["baseline"], true);
    assert_eq!(n(&first, "alerts_queued"), 0, "a baseline never alerts");

    // D1 depose → instruction, D4 amount 10 000 → 12 000, D6 new at depose; D5 gone
    // (its instructor rule has nobody to write to: the fixture has no instructor).
    let (second, _) = install.import("export-2.csv", &[]);
    assert_eq!(n(&second, "alerts_queued"), 3, "{second}");
    assert_eq!(
        outbox(&install),
        [
            row("pending", "depot-recu", "lune@cie.fr", "REF-6"),
            row("pending", "en-instruction", "contact@lefevre.fr", "REF-1"),
            row("pending", "montant-modifie", "club@sport.fr", "REF-4"),
        ]
    );

    // The same data again, even forced: no event, so no alert.
    let (again, _) = install.import("export-2.csv", &["--force"]);
    assert_eq!(again["status"], "applied");
    assert_eq!(n(&again, "alerts_queued"), 0, "{again}");
    assert_eq!(outbox(&install).len(), 3);

    // D2 instruction → accorde; D5 back.
    let (third, _) = install.import("export-3.csv", &[]);
    assert_eq!(n(&third, "alerts_queued"), 1, "{third}");
    assert!(outbox(&install).contains(&row(
        "pending",
        "aide-accordee",
        "garage@muller.fr",
        "REF-2"
    )));

    // The run records what it queued.
    let out = install.run(&["runs", "--json"]);
    let runs: Value = serde_json::from_str(String::from_utf8_lossy(&out.stdout).trim()).unwrap();
    let queued: Vec<u64> = runs
        .as_array()
        .unwrap()
        .iter()
        .map(|r| n(r, "alerts_queued"))
        .collect();
    assert_eq!(queued, [1, 0, 3, 0], "newest first: {runs}");
}

/// export-1 with D1 moved from "Déposé" to "Instruction en cours".
fn d1_in_instruction(install: &Install) -> std::path::PathBuf {
    let original = std::fs::read(crate::common::fixture("export-1.csv")).unwrap();
    let mut out = Vec::new();
    for line in original.split_inclusive(|&b| b == b'\n') {
        if line.starts_with(b"D1;") {
            let at = line
                .windows(7)
                .position(|w| w == b"D\xe9pos\xe9;")
                .expect("D1 is filed in export-1");
            out.extend_from_slice(&line[..at]);
            out.extend_from_slice(b"Instruction en cours;");
            out.extend_from_slice(&line[at + 7..]);
        } else {
            out.extend_from_slice(line);
        }
    }
    let path = install.root().join("exports/flip.csv");
    std::fs::write(&path, out).unwrap();
    path
}

#[test]
fn a_step_undone_within_the_debounce_tells_nobody() {
    let install = install("1h");
    install.import("export-1.csv", &[]);
    let flip = d1_in_instruction(&install);
    let out = install.run(&["import", "portail", flip.to_str().unwrap(), "--json"]);
    let there: Value = serde_json::from_str(String::from_utf8_lossy(&out.stdout).trim()).unwrap();
    assert_eq!(n(&there, "step_changed"), 1, "{there}");
    assert_eq!(n(&there, "alerts_queued"), 1, "{there}");

    // Back to "Déposé" before the hour is up: the pending alert is cancelled and
    // the return to where the beneficiary was last told it is, is not news.
    let (back, _) = install.import("export-1.csv", &["--force"]);
    assert_eq!(n(&back, "step_changed"), 1, "{back}");
    assert_eq!(n(&back, "alerts_cancelled"), 1, "{back}");
    assert_eq!(n(&back, "alerts_queued"), 0, "{back}");
    assert_eq!(
        outbox(&install),
        [row(
            "cancelled",
            "en-instruction",
            "contact@lefevre.fr",
            "REF-1"
        )]
    );
    let out = install.run(&["outbox", "list", "--status", "cancelled"]);
    assert!(text(&out).contains("quitté l'étape"), "{}", text(&out));
    // The dossier's timeline shows the message and why it was not sent.
    let out = install.run(&["dossier", "REF-1"]);
    let timeline = text(&out);
    assert!(timeline.contains("messages :"), "{timeline}");
    assert!(
        timeline.contains("en-instruction annulé à contact@lefevre.fr"),
        "{timeline}"
    );
}

#[test]
fn invalid_rules_stop_check_import_and_the_daemon_with_78() {
    let install = install("0s");
    let rules = install.own_rules();
    std::fs::write(
        rules.join("extra.toml"),
        "[[rule]]\nname = \"x\"\non = \"step_changed\"\nto = \"acorde\"\nnotify = \"beneficiary\"\ntemplate = \"aide_accordee\"\n",
    )
    .unwrap();
    let out = install.run(&["check"]);
    assert_eq!(out.status.code(), Some(78), "{}", text(&out));
    assert!(
        text(&out).contains(
            "extra.toml:4:6: rule 'x': `to`: unknown step 'acorde' (did you mean 'accorde'?)"
        ),
        "{}",
        text(&out)
    );
    let file = install.export("export-1.csv");
    let out = install.run(&["import", "portail", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(78), "{}", text(&out));
    let out = install.run(&["run"]);
    assert_eq!(out.status.code(), Some(78), "{}", text(&out));
    assert!(!install.db().exists(), "nothing was imported");
}

#[test]
fn the_shipped_rule_cases_pass_and_a_failing_case_fails() {
    // The shipped cases name the shipped connectors: run them with the example configuration.
    let out = std::process::Command::new(crate::common::BIN)
        .args(["test", "--config"])
        .arg(crate::common::repo().join("config.example.toml"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains(" 0 failed"), "{}", text(&out));

    let install = install("0s");
    let rules = install.own_rules();
    let case = rules.join("tests/wrong.toml");
    std::fs::write(
        &case,
        "[[case]]\nname = \"wrong recipient\"\n[case.before]\nstep = \"complet\"\nfields = { \"beneficiary.email\" = \"a@example.org\" }\n[case.after]\nstep = \"instruction\"\n[[case.expect]]\nrule = \"en-instruction\"\nto = [\"b@example.org\"]\nsubject_contains = [\"n'existe pas\"]\n",
    )
    .unwrap();
    let out = install.run(&["test", case.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let report = text(&out);
    assert!(
        report.contains("FAIL  wrong recipient (line 1)"),
        "{report}"
    );
    assert!(
        report.contains("rule 'en-instruction' wrote to [a@example.org], expected [b@example.org]"),
        "{report}"
    );
    assert!(
        report.contains("the subject does not contain \"n'existe pas\""),
        "{report}"
    );
    assert!(report.contains("1 case: 0 passed, 1 failed"), "{report}");

    std::fs::write(&case, "[[case]]\nnom = \"x\"\n").unwrap();
    let out = install.run(&["test", case.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(78), "{}", text(&out));
    assert!(text(&out).contains("unknown field `nom`"), "{}", text(&out));
}

/// Regression (issue 17, item 21): `alertissimo test` planned and rendered
/// alerts on its own path, so a case could pass that production would not
/// send: an address no relay takes was "sent". Cases now run the import's
/// alerting path, where such an alert is queued as failed, and the case says so.
#[test]
fn a_rule_case_runs_the_imports_alerting_path() {
    let install = install("0s");
    let rules = install.own_rules();
    let case = rules.join("tests/invalid.toml");
    std::fs::write(
        &case,
        "[[case]]\nname = \"invalid address\"\n[case.before]\nstep = \"complet\"\n\
         fields = { \"beneficiary.email\" = \"contact(at)example.org\" }\n\
         [case.after]\nstep = \"instruction\"\n[[case.expect]]\nrule = \"en-instruction\"\n",
    )
    .unwrap();
    let out = install.run(&["test", case.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let report = text(&out);
    assert!(
        report.contains("rule 'en-instruction' to contact(at)example.org: adresse invalide"),
        "{report}"
    );
}

#[test]
fn render_shows_the_message_for_a_stored_dossier() {
    let install = install("0s");
    install.import("export-1.csv", &[]);
    let out = install.run(&["render", "en-instruction", "--dossier", "REF-2", "--json"]);
    assert!(out.status.success(), "{}", text(&out));
    let m: Value = serde_json::from_str(String::from_utf8_lossy(&out.stdout).trim()).unwrap();
    assert_eq!(m["to"], "garage@muller.fr");
    assert!(m["subject"].as_str().unwrap().contains("REF-2"), "{m}");
    assert!(m["text"].as_str().unwrap().starts_with("Bonjour"), "{m}");
    assert!(m["html"].as_str().unwrap().contains("<p>Bonjour"), "{m}");

    let out = install.run(&["render", "nope", "--dossier", "REF-2"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("no rule 'nope'"), "{}", text(&out));
}

#[test]
fn the_alerts_of_one_import_to_one_person_leave_together() {
    let install = install("30m");
    install.import("export-1.csv", &[]);
    // The club's contact is also the bakery's: a step alert (held 30 min) and an
    // amount alert (not held) for the same person from one import.
    // The file is Windows-1252: replace bytes, not text.
    let mut bytes = std::fs::read(crate::common::fixture("export-2.csv")).unwrap();
    let (from, to) = (
        b"club@sport.fr".as_slice(),
        b"contact@lefevre.fr".as_slice(),
    );
    let at = bytes.windows(from.len()).position(|w| w == from).unwrap();
    bytes.splice(at..at + from.len(), to.iter().copied());
    let path = install.root().join("exports/shared.csv");
    std::fs::write(&path, bytes).unwrap();
    let out = install.run(&["import", "portail", path.to_str().unwrap(), "--json"]);
    assert!(out.status.success(), "{}", text(&out));
    let out = install.run(&["outbox", "list", "--json"]);
    let all: Value = serde_json::from_slice(&out.stdout).unwrap();
    let due: Vec<String> = all
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| v["recipient"] == "contact@lefevre.fr")
        .map(|v| v["due_at"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(due.len(), 2, "{due:?}");
    assert_eq!(due[0], due[1], "one due time, so one message");
}
