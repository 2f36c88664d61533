//! `alertissimo import`: successive exports, re-imports, drop folders, guards, encodings.

use serde_json::Value;

use crate::common::{Install, fixture, n, text};

fn counts(v: &Value) -> [u64; 6] {
    [
        n(v, "created"),
        n(v, "step_changed"),
        n(v, "field_changed"),
        n(v, "disappeared"),
        n(v, "reappeared"),
        n(v, "rejected"),
    ]
}

#[test]
fn three_successive_exports_give_the_expected_events() {
    let install = Install::tolerant();
    let (first, code) = install.import("export-1.csv", &[]);
    assert_eq!(code, 0, "{first}");
    assert_eq!(first["status"], "applied");
    assert_eq!(first["baseline"], true);
    assert_eq!(n(&first, "run_id"), 1);
    assert_eq!(n(&first, "rows"), 5);
    assert_eq!(counts(&first), [5, 0, 0, 0, 0, 0]);

    let (second, _) = install.import("export-2.csv", &[]);
    assert_eq!(second["status"], "applied", "{second}");
    assert_eq!(second["baseline"], false);
    // D6 new; D1 depose → instruction; D4 amount 10 000 → 12 000; D5 gone.
    assert_eq!(counts(&second), [1, 1, 1, 1, 0, 0], "{second}");

    let (third, _) = install.import("export-3.csv", &[]);
    // D5 back; D2 instruction → accorde.
    assert_eq!(counts(&third), [0, 1, 0, 0, 1, 0], "{third}");

    let (shuffled, _) = install.import("export-3-shuffled.csv", &[]);
    assert_eq!(shuffled["status"], "applied", "{shuffled}");
    assert_eq!(counts(&shuffled), [0; 6], "{shuffled}");
    assert_eq!(n(&shuffled, "unchanged"), 6);

    let events = install.events();
    let expected = [
        "run1 D1 created >depose  > baseline=1",
        "run1 D2 created >instruction  > baseline=1",
        "run1 D3 created >commission  > baseline=1",
        "run1 D4 created >accorde  > baseline=1",
        "run1 D5 created >convention  > baseline=1",
        "run2 D1 step_changed depose>instruction  > baseline=0",
        "run2 D4 field_changed > amount_granted 10000.00>12000.00 baseline=0",
        "run2 D5 disappeared convention>  > baseline=0",
        "run2 D6 created >depose  > baseline=0",
        "run3 D2 step_changed instruction>accorde  > baseline=0",
        "run3 D5 reappeared >convention  > baseline=0",
    ];
    assert_eq!(events, expected);

    // The timeline of D5, by reference, in time order.
    let out = install.run(&["dossier", "REF-5", "--json"]);
    assert!(out.status.success(), "{}", text(&out));
    let timeline: Value = serde_json::from_slice(&out.stdout).unwrap();
    let kinds: Vec<&str> = timeline[0]["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["created", "disappeared", "reappeared"]);
    assert_eq!(
        timeline[0]["step_label"],
        "Convention signée, décision notifiée"
    );
    assert_eq!(
        timeline[0]["fields"]["beneficiary.name"],
        "Théâtre Éphémère"
    );

    // The step change is dated by the source's status date (08/10/2026, Paris), not the import.
    let out = install.run(&["dossier", "D1", "--json"]);
    let timeline: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        timeline[0]["events"][1]["occurred_at"],
        "2026-10-08T00:00:00+02:00"
    );
    let human = text(&install.run(&["dossier", "REF-1"]));
    assert!(
        human.contains("Dossier déposé → En cours d'instruction"),
        "{human}"
    );
}

#[test]
fn a_dossier_is_found_by_its_current_reference() {
    let install = Install::tolerant();
    install.import("export-1.csv", &[]);
    // The source renames REF-1 (and only it) in its next export.
    let renamed = install.root().join("exports").join("renamed.csv");
    let bytes = std::fs::read(fixture("export-1.csv")).unwrap();
    let (text, _, malformed) = encoding_rs::WINDOWS_1252.decode(&bytes);
    assert!(!malformed);
    let text = text.replace("D1;REF-1;", "D1;REF-1-BIS;");
    assert!(text.contains("REF-1-BIS"));
    std::fs::write(&renamed, encoding_rs::WINDOWS_1252.encode(&text).0).unwrap();
    let (summary, code) = install.import_path(&renamed);
    assert_eq!(code, 0, "{summary}");

    let found = |reference: &str| -> Vec<String> {
        let out = install.run(&["dossier", reference, "--json"]);
        let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        v.as_array()
            .map(|all| {
                all.iter()
                    .map(|d| d["id"].as_str().unwrap().to_owned())
                    .collect()
            })
            .unwrap_or_default()
    };
    assert_eq!(found("REF-1-BIS"), ["D1"]);
    assert!(
        found("REF-1").is_empty(),
        "the old reference still finds D1"
    );
    assert_eq!(found("D1"), ["D1"]);
    assert_eq!(found("REF-2"), ["D2"]);
}

#[test]
fn baseline_import_records_without_alerting() {
    let install = Install::new();
    install.import("export-1.csv", &[]);
    let conn = install.sql();
    let (all, baseline): (i64, i64) = conn
        .query_row("SELECT count(*), sum(baseline) FROM events", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    assert_eq!((all, baseline), (5, 5));

    // Told to alert on its first import, the connector has no baseline.
    let install =
        Install::with_connector(|c| c.replace("watch =", "alert_on_first_import = true\nwatch ="));
    let (summary, _) = install.import("export-1.csv", &[]);
    assert_eq!(summary["baseline"], false);
    assert!(install.events().iter().all(|e| e.ends_with("baseline=0")));
}

#[test]
fn the_last_snapshot_again_is_unchanged_unless_forced() {
    let install = Install::new();
    let (first, _) = install.import("export-1.csv", &[]);
    let (again, code) = install.import("export-1.csv", &[]);
    assert_eq!(code, 0);
    assert_eq!(again["status"], "unchanged", "{again}");
    assert_ne!(
        again["run_id"], first["run_id"],
        "an unchanged snapshot is a run"
    );
    assert!(again["reasons"][0].as_str().unwrap().contains("--force"));
    let (forced, _) = install.import("export-1.csv", &["--force"]);
    assert_eq!(forced["status"], "applied");
    assert_eq!(counts(&forced), [0; 6]);
    assert_eq!(n(&forced, "unchanged"), 5);
    let statuses: Vec<String> = install
        .sql()
        .prepare("SELECT status FROM runs ORDER BY id")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(statuses, ["applied", "unchanged", "applied"]);
    // A source that sends the same file every day is healthy.
    let out = install.run(&["runs", "--sources", "--json"]);
    let health: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(health[0]["stale"], false, "{health}");
}

/// Regression: a content applied once, long ago, was skipped forever, even
/// after later snapshots changed the state (A, then B, then A again left the
/// state at B).
#[test]
fn a_content_applied_long_ago_is_read_again() {
    let install = Install::tolerant();
    install.import("export-1.csv", &[]);
    let (b, _) = install.import("export-2.csv", &[]);
    assert_eq!(n(&b, "step_changed"), 1, "{b}");
    let (a, code) = install.import("export-1.csv", &[]);
    assert_eq!(code, 0, "{a}");
    assert_eq!(a["status"], "applied", "{a}");
    assert_eq!(n(&a, "step_changed"), 1, "the state goes back to A: {a}");
}

#[test]
fn drop_folder_files_are_imported_in_order_and_archived() {
    let install = Install::tolerant();
    let inbox = install.root().join("inbox");
    std::fs::copy(
        crate::common::fixture("export-2.csv"),
        inbox.join("export-2026-10-08.csv"),
    )
    .unwrap();
    std::fs::copy(
        crate::common::fixture("export-1.csv"),
        inbox.join("export-2026-10-01.csv"),
    )
    .unwrap();
    let out = install.run(&["import", "portail", "--json"]);
    assert!(out.status.success(), "{}", text(&out));
    let lines: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert!(
        lines[0]["file"]
            .as_str()
            .unwrap()
            .ends_with("export-2026-10-01.csv")
    );
    assert_eq!(lines[0]["baseline"], true);
    assert_eq!(n(&lines[1], "step_changed"), 1);
    for l in &lines {
        let archived = l["archived_to"].as_str().expect("archived");
        assert!(std::path::Path::new(archived).is_file(), "{archived}");
        assert!(archived.contains("/inbox/archive/"), "{archived}");
    }
    assert!(
        std::fs::read_dir(&inbox)
            .unwrap()
            .all(|e| e.unwrap().path().is_dir())
    );

    let out = install.run(&["import", "portail", "--json"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["status"], "no_file");

    // The last snapshot dropped again is recognised by its content.
    std::fs::copy(
        crate::common::fixture("export-2.csv"),
        inbox.join("export-again.csv"),
    )
    .unwrap();
    let out = install.run(&["import", "portail", "--json"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["status"], "unchanged", "{v}");
}

/// Imports the baseline, then `bad`: the snapshot must be refused, the dossiers
/// untouched, and the reasons must contain `needle`. Returns the summary.
fn refused(install: &Install, bad: &str, needle: &str) -> Value {
    install.import("export-1.csv", &[]);
    let before = install.dossiers();
    let (summary, code) = install.import(bad, &[]);
    assert_eq!(code, 1, "a refused snapshot exits with 1: {summary}");
    assert_eq!(summary["status"], "refused", "{summary}");
    let reasons = summary["reasons"].to_string();
    assert!(reasons.contains(needle), "{needle:?} not in {reasons}");
    assert_eq!(
        install.dossiers(),
        before,
        "a refused snapshot changes nothing"
    );
    let events_after_baseline = install
        .events()
        .iter()
        .filter(|e| !e.starts_with("run1 "))
        .count();
    assert_eq!(events_after_baseline, 0);
    let conn = install.sql();
    let (status, stored): (String, String) = conn
        .query_row(
            "SELECT status, reasons FROM runs WHERE id = ?1",
            [summary["run_id"].as_i64().unwrap()],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(status, "refused");
    assert!(
        stored.contains(needle.split('\'').next().unwrap()),
        "{stored}"
    );
    summary
}

#[test]
fn guard_too_many_rejected_records() {
    let install = Install::new();
    let summary = refused(
        &install,
        "rejected-records.csv",
        "2 of 5 records rejected (40.0 %), above max_rejected_ratio (1.0 %)",
    );
    let rejections = summary["rejections"].as_array().unwrap();
    assert_eq!(rejections.len(), 2);
    assert_eq!(rejections[0]["line"], 6);
    assert_eq!(rejections[0]["record"], 2);
    assert_eq!(rejections[0]["source_id"], "D2");
    assert_eq!(rejections[0]["field"], "amount_granted");
    assert!(
        rejections[0]["reason"]
            .as_str()
            .unwrap()
            .contains("'beaucoup'")
    );
    assert!(
        rejections[0]["file"]
            .as_str()
            .unwrap()
            .ends_with("rejected-records.csv")
    );
    assert_eq!(rejections[1]["line"], 7);
    assert_eq!(rejections[1]["field"], "step");
    assert!(
        rejections[1]["reason"]
            .as_str()
            .unwrap()
            .contains("unknown status label 'Statut inconnu'")
    );
    // Stored with the run, and shown by `runs --rejections`.
    let out = install.run(&["runs", "--rejections", &summary["run_id"].to_string()]);
    let listed = text(&out);
    assert!(
        listed.contains("rejected-records.csv:6: record 2 id 'D2' field 'amount_granted'"),
        "{listed}"
    );
}

#[test]
fn guard_below_the_threshold_rejects_only_the_bad_records() {
    let install = Install::with_connector(|c| {
        c.replace("max_rejected_ratio = 0.01", "max_rejected_ratio = 0.5")
    });
    install.import("export-1.csv", &[]);
    let (summary, code) = install.import("rejected-records.csv", &[]);
    assert_eq!(code, 0);
    assert_eq!(summary["status"], "applied");
    assert_eq!(n(&summary, "rejected"), 2);
    // The rejected dossiers keep their last known state and do not disappear.
    assert_eq!(n(&summary, "disappeared"), 0);
    assert_eq!(n(&summary, "unchanged"), 3);
}

#[test]
fn guard_truncated_export() {
    refused(
        &Install::new(),
        "truncated.csv",
        "3 of 5 dossiers would disappear (60.0 %)",
    );
}

#[test]
fn guard_missing_header_names_the_closest() {
    refused(
        &Install::new(),
        "missing-header.csv",
        "missing column 'Statut' for field 'step' (closest header found: 'Statuts')",
    );
}

#[test]
fn guard_empty_file() {
    refused(&Install::new(), "empty.csv", "the file is empty");
}

#[test]
fn guard_header_without_records() {
    refused(
        &Install::new(),
        "header-only.csv",
        "the export holds no data record",
    );
}

#[test]
fn guard_duplicate_id() {
    refused(
        &Install::new(),
        "duplicate-id.csv",
        "duplicate-id.csv:10: id 'D3' appears more than once",
    );
}

#[test]
fn guard_duplicate_new_ids() {
    // A first import: every id is new, and the store has no unique index on ids.
    let install = Install::new();
    let header = "N° dossier;Référence;Dispositif;Bénéficiaire;SIRET;Courriel;Statut;Date statut;Montant voté;Date d'export";
    let row = |id: &str, status: &str| {
        format!(
            "{id};REF-{id};Culture;Théâtre;50123488900019;t@ephemere.fr;{status};05/09/2026;;01/10/2026 06:00"
        )
    };
    let mut lines = vec![header.to_owned()];
    for i in 1..=200 {
        lines.push(row(&format!("N{i}"), "Déposé"));
    }
    lines.push(row("N7", "Déposé"));
    lines.push(row("X1", "Inconnu"));
    lines.push(row("X1", "Inconnu"));
    let file = install.root().join("duplicates.csv");
    std::fs::write(&file, lines.join("\r\n")).unwrap();
    let out = install.run(&["import", "portail", file.to_str().unwrap(), "--json"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["status"], "refused", "{summary}");
    let reasons = summary["reasons"].to_string();
    assert!(
        reasons.contains("duplicates.csv:202: id 'N7' appears more than once (first at line 8)"),
        "{reasons}"
    );
    // Both X1 records were rejected (unknown status): the line says which.
    assert!(
        reasons.contains("duplicates.csv:204: the id of line 203 appears again"),
        "{reasons}"
    );
    assert!(install.dossiers().is_empty(), "nothing is applied");
}

#[test]
fn an_incremental_source_never_infers_disappearance() {
    let install = Install::with_connector(|c| {
        c.replace("kind = \"csv\"", "kind = \"csv\"\nmode = \"incremental\"")
    });
    let (first, code) = install.import("export-1.csv", &[]);
    assert_eq!((code, n(&first, "created")), (0, 5), "{first}");
    // Only D1, changed: the four others are not gone, they just did not change.
    let export = std::fs::read(crate::common::fixture("export-2.csv")).unwrap();
    let lines: Vec<&[u8]> = export.split(|&b| b == b'\n').collect();
    // The title rows, the header (line 4), then D1's record only (Windows-1252 bytes).
    let mut changes: Vec<u8> = lines[..4].join(&b'\n');
    changes.push(b'\n');
    changes.extend_from_slice(lines.iter().find(|l| l.starts_with(b"D1;")).unwrap());
    let file = install.root().join("changes.csv");
    std::fs::write(&file, changes).unwrap();
    let out = install.run(&["import", "portail", file.to_str().unwrap(), "--json"]);
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["status"], "applied", "{summary}");
    assert_eq!(n(&summary, "disappeared"), 0, "{summary}");
    assert_eq!(n(&summary, "rows"), 1, "{summary}");
}

#[test]
fn guard_cut_last_line() {
    let summary = refused(
        &Install::new(),
        "cut-last-line.csv",
        "1 of 5 records rejected",
    );
    let r = &summary["rejections"][0];
    assert_eq!(r["line"], 9);
    assert!(
        r["reason"]
            .as_str()
            .unwrap()
            .contains("the record has 6 fields but the header has 10"),
        "{r}"
    );
}

#[test]
fn guard_wrong_declared_encoding() {
    let install = Install::with_connector(|c| {
        c.replace(
            "after_import = \"archive\"",
            "after_import = \"archive\"\nencoding = \"utf-8\"",
        )
    });
    let (summary, code) = install.import("export-1.csv", &[]);
    assert_eq!(code, 1);
    let reason = summary["reasons"][0].as_str().unwrap();
    assert!(
        reason.contains("export-1.csv:1: not valid UTF-8 (byte 0xE9"),
        "{reason}"
    );
    assert!(reason.contains("windows-1252"), "{reason}");
}

#[test]
fn encodings_and_layouts_of_real_exports() {
    for file in [
        "utf8-bom.csv",
        "bom-then-windows-1252.csv",
        "comma-utf8-no-title.csv",
        "multiline.csv",
        "export-1.csv",
    ] {
        let install = Install::new();
        let (summary, code) = install.import(file, &[]);
        assert_eq!(code, 0, "{file}: {summary}");
        assert_eq!(counts(&summary), [5, 0, 0, 0, 0, 0], "{file}: {summary}");
        assert_eq!(
            install.fields("REF-5")["beneficiary.name"],
            "Théâtre Éphémère",
            "{file}"
        );
        assert_eq!(
            install.fields("REF-4")["amount_granted"],
            "10000.00",
            "{file}"
        );
        if file == "multiline.csv" {
            assert_eq!(
                install.fields("REF-2")["beneficiary.name"],
                "Garage Müller\r\n(ancien « Garage du Centre » ; repris en 2025)",
                "{file}"
            );
        }
    }
}

#[test]
fn unknown_connector_is_named() {
    let install = Install::new();
    let out = install.run(&["import", "nope"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("no connector 'nope'"), "{}", text(&out));
    assert!(text(&out).contains("known: portail"));
}

#[test]
fn runs_lists_imports() {
    let install = Install::tolerant();
    install.import("export-1.csv", &[]);
    install.import("export-2.csv", &[]);
    let out = install.run(&["runs", "--json"]);
    let runs: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(runs.as_array().unwrap().len(), 2);
    assert_eq!(runs[0]["run_id"], 2);
    assert_eq!(runs[0]["step_changed"], 1);
    assert_eq!(runs[1]["baseline"], true);
    let human = text(&install.run(&["runs"]));
    assert!(human.contains("baseline"), "{human}");
}

#[test]
fn refused_drop_file_stays_until_it_or_the_connector_changes() {
    let install = Install::new();
    let inbox = install.root().join("inbox");
    std::fs::copy(crate::common::fixture("export-1.csv"), inbox.join("a.csv")).unwrap();
    assert!(install.run(&["import", "portail"]).status.success());
    std::fs::copy(
        crate::common::fixture("rejected-records.csv"),
        inbox.join("b.csv"),
    )
    .unwrap();
    let out = install.run(&["import", "portail", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        inbox.join("b.csv").is_file(),
        "a refused file stays in the drop folder"
    );
    // Unchanged, by the same connector: skipped without being opened (its size
    // and modification time say it), still not archived.
    let out = install.run(&["import", "portail", "--json"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["status"], "skipped", "{v}");
    assert!(
        v["reasons"][0]
            .as_str()
            .unwrap()
            .contains("unchanged since run 2 refused it"),
        "{v}"
    );
    assert!(inbox.join("b.csv").is_file());
    // Once the connector changes, the file is read again.
    let path = install.root().join("connectors/portail.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(
        &path,
        text.replace("max_rejected_ratio = 0.01", "max_rejected_ratio = 0.5"),
    )
    .unwrap();
    let out = install.run(&["import", "portail", "--json"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["status"], "applied", "{v}");
    assert!(!inbox.join("b.csv").exists(), "archived once applied");
}

#[test]
fn a_cut_line_of_a_known_dossier_does_not_make_it_disappear() {
    let install = Install::with_connector(|c| {
        c.replace("max_rejected_ratio = 0.01", "max_rejected_ratio = 0.5")
    });
    install.import("export-1.csv", &[]);
    let (summary, _) = install.import("cut-last-line.csv", &[]);
    assert_eq!(summary["status"], "applied", "{summary}");
    assert_eq!(n(&summary, "rejected"), 1);
    assert_eq!(n(&summary, "disappeared"), 0, "{summary}");
}

#[test]
fn empty_drop_folder_in_json() {
    let install = Install::new();
    let out = install.run(&["import", "portail", "--json"]);
    assert!(out.status.success());
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["status"], "no_file");
    for key in [
        "rows",
        "created",
        "step_changed",
        "field_changed",
        "disappeared",
        "reappeared",
        "rejected",
    ] {
        assert_eq!(v[key], 0, "{key} in {v}");
    }
}

#[test]
fn a_second_writer_waits_then_says_why() {
    let install = Install::tolerant();
    install.import("export-1.csv", &[]);
    // Another process (here, this test) holds the write lock for longer than the busy timeout.
    let conn = install.sql();
    conn.execute_batch("BEGIN IMMEDIATE").unwrap();
    let file = install.export("export-2.csv");
    let out = install.run(&["import", "portail", file.to_str().unwrap()]);
    conn.execute_batch("ROLLBACK").unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).contains("another import is writing to"),
        "{}",
        text(&out)
    );
    // Nothing was half-done: the import goes through once the lock is free.
    let out = install.run(&["import", "portail", file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
}

#[test]
fn a_file_modified_moments_ago_waits_for_the_next_tick() {
    let install = Install::with_connector(|c| c.replace("settle = \"0s\"", "settle = \"1h\""));
    std::fs::copy(
        crate::common::fixture("export-1.csv"),
        install.root().join("inbox/a.csv"),
    )
    .unwrap();
    let out = install.run(&["import", "portail", "--json"]);
    assert!(out.status.success(), "{}", text(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["status"], "no_file", "{v}");
    assert!(install.root().join("inbox/a.csv").is_file());
}

/// Regression: with `encoding = "auto"`, one invalid byte anywhere made a whole
/// UTF-8 export Windows-1252, so its names were stored as mojibake and sent to
/// beneficiaries. Such a file is refused naming the line and byte; a real
/// Windows-1252 file is still read as such, and the encoding is on the run.
#[test]
fn a_utf8_export_with_one_bad_byte_is_refused_not_turned_into_mojibake() {
    let install = Install::new();
    let latin1 = std::fs::read(crate::common::fixture("export-1.csv")).unwrap();
    let (first, code) = install.import("export-1.csv", &[]);
    assert_eq!(code, 0, "{first}");
    assert_eq!(first["encoding"], "windows-1252", "{first}");
    let out = install.run(&["runs", "--json"]);
    let runs: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(runs[0]["encoding"], "windows-1252", "{runs}");

    let (text_1252, _, _) = encoding_rs::WINDOWS_1252.decode(&latin1);
    let mut utf8 = text_1252.replace("Lefèvre", "Lefèvre Hélène").into_bytes();
    let line = utf8.iter().filter(|&&b| b == b'\n').count() + 1;
    utf8.extend_from_slice(
        b"X9;REF-X9;Culture;Caf\xE9;;x@example.org;D\xE9pos\xE9;01/10/2026;;\r\n",
    );
    let file = install.root().join("exports/mixed.csv");
    std::fs::write(&file, &utf8).unwrap();
    let (summary, code) = install.import_path(&file);
    assert_eq!(code, 1, "{summary}");
    let reason = summary["reasons"][0].as_str().unwrap();
    assert!(
        reason.contains(&format!("mixed.csv:{line}: not valid UTF-8 (byte 0xE9")),
        "{summary}"
    );
}

/// Regression: rows updated without an event (a field nobody watches) were
/// counted nowhere, and a refused snapshot reported `created` counts for
/// dossiers it never created. Every record read is now unchanged, changed or
/// rejected, and a refused run reports what it read, nothing it would have done.
#[test]
fn counts_add_up_and_a_refused_run_creates_nothing() {
    let install = Install::tolerant();
    let adds_up = |s: &Value| {
        assert_eq!(
            n(s, "rows"),
            n(s, "unchanged") + n(s, "changed") + n(s, "rejected"),
            "{s}"
        );
    };
    let (first, _) = install.import("export-1.csv", &[]);
    adds_up(&first);
    assert_eq!(n(&first, "changed"), 5, "{first}");
    let (second, _) = install.import("export-2.csv", &[]);
    adds_up(&second);
    let (refused, code) = install.import("empty.csv", &[]);
    assert_eq!(code, 1, "{refused}");
    for key in [
        "created",
        "step_changed",
        "field_changed",
        "disappeared",
        "changed",
    ] {
        assert_eq!(n(&refused, key), 0, "{key}: {refused}");
    }
}

/// Regression: a 50 MB CSV field was accepted (490 MB of memory) and became a
/// 104 MB e-mail. A field past the read budget refuses the snapshot, naming the
/// line, the column and the limit.
#[test]
fn a_huge_field_is_refused_by_the_read_budget() {
    let install = Install::new();
    let mut text = std::fs::read(crate::common::fixture("export-1.csv")).unwrap();
    text.extend_from_slice(b"D9;REF-9;Aide aux TPE;");
    text.extend(std::iter::repeat_n(b'x', 50 << 20));
    text.extend_from_slice(b";;x@example.org;D\xE9pos\xE9;01/09/2026;;01/10/2026 06:00\r\n");
    let file = install.root().join("exports/huge.csv");
    std::fs::write(&file, &text).unwrap();
    let (summary, code) = install.import_path(&file);
    assert_eq!(code, 1, "{summary}");
    let reason = summary["reasons"][0].as_str().unwrap();
    assert!(
        reason.contains("huge.csv:10: the field 'Bénéficiaire' holds 51200 KiB")
            && reason.contains("read budget of 128 KiB"),
        "{summary}"
    );
    assert_eq!(install.dossiers().len(), 0, "nothing applied");
}

/// Regression: a file kept in the drop folder (`after_import = "keep"`) was
/// opened and checksummed again at every tick, for ever. A file unchanged since
/// its import (same size and modification time) is passed over unopened; once
/// it changes, it is read again.
#[test]
fn a_kept_file_unchanged_is_not_read_again() {
    let install = Install::with_connector(|c| {
        c.replace("after_import = \"archive\"", "after_import = \"keep\"")
    });
    let inbox = install.root().join("inbox");
    let file = inbox.join("export.csv");
    std::fs::copy(crate::common::fixture("export-1.csv"), &file).unwrap();
    assert!(install.run(&["import", "portail"]).status.success());
    let runs = |install: &Install| -> i64 {
        install
            .sql()
            .query_row("SELECT count(*) FROM runs", [], |r| r.get(0))
            .unwrap()
    };
    for _ in 0..3 {
        let out = install.run(&["import", "portail", "--json"]);
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["status"], "no_file", "{v}");
    }
    assert_eq!(runs(&install), 1, "no run for a file passed over");
    // Rewritten with the same content: read again, an unchanged snapshot.
    std::fs::copy(crate::common::fixture("export-1.csv"), &file).unwrap();
    let mtime = std::fs::metadata(&file).unwrap().modified().unwrap();
    let later = mtime + std::time::Duration::from_secs(60);
    std::fs::File::options()
        .write(true)
        .open(&file)
        .unwrap()
        .set_modified(later)
        .unwrap();
    let out = install.run(&["import", "portail", "--json"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["status"], "unchanged", "{v}");
    assert!(file.is_file(), "kept");
}

/// Regression: export data could steer a terminal: an escape sequence or a
/// carriage return in a value went as it was to `outbox list`, `dossier` and
/// `runs`. They are shown escaped.
#[test]
fn export_data_cannot_steer_the_terminal() {
    let install = Install::tolerant();
    install.import("export-1.csv", &[]);
    let latin1 = std::fs::read(crate::common::fixture("export-2.csv")).unwrap();
    let (text_1252, _, _) = encoding_rs::WINDOWS_1252.decode(&latin1);
    let hostile: Vec<u8> = text_1252
        .replace("Boulangerie Lef", "\x1b[2J\x1b[31m\x07Boulangerie\rLef")
        .into_bytes();
    let file = install.root().join("exports/hostile.csv");
    std::fs::write(&file, hostile).unwrap();
    let (summary, _) = install.import_path(&file);
    assert_eq!(summary["status"], "applied", "{summary}");
    for args in [
        vec!["dossier", "REF-1"],
        vec!["outbox", "list"],
        vec!["runs"],
        vec!["runs", "--rejections", "2"],
    ] {
        let out = install.run(&args);
        let shown = String::from_utf8_lossy(&out.stdout);
        assert!(
            !shown.contains(['\x1b', '\r', '\x07']),
            "{args:?}: {shown:?}"
        );
    }
    let timeline = text(&install.run(&["dossier", "REF-1"]));
    assert!(timeline.contains("\\u{1b}[2J"), "{timeline}");
}

/// Regression: an empty cell silently erased a stored value: a cut spreadsheet
/// row turned a granted amount into nothing without anyone knowing. Amounts and
/// dates keep their stored value by default, with a warning on the run;
/// `on_empty = "clear"` erases, `on_empty = "reject"` rejects the record.
#[rstest::rstest]
#[case::keep_by_default(None, "applied", Some("10000.00"))]
#[case::clear(Some("clear"), "applied", None)]
fn an_empty_cell_does_not_silently_erase_a_stored_value(
    #[case] on_empty: Option<&str>,
    #[case] status: &str,
    #[case] amount: Option<&str>,
) {
    let install = Install::with_connector(|c| match on_empty {
        Some(choice) => c.replace(
            "format = \"auto\" }",
            &format!("format = \"auto\", on_empty = \"{choice}\" }}"),
        ),
        None => c,
    });
    let (first, _) = install.import("export-1.csv", &[]);
    assert_eq!(
        install.fields("REF-4")["amount_granted"],
        "10000.00",
        "{first}"
    );
    let latin1 = std::fs::read(crate::common::fixture("export-1.csv")).unwrap();
    let (text_1252, _, _) = encoding_rs::WINDOWS_1252.decode(&latin1);
    let cut = text_1252.replace(";10 000,00;", ";;");
    let file = install.root().join("exports/cut-amount.csv");
    std::fs::write(&file, cut).unwrap();
    let (summary, _) = install.import_path(&file);
    assert_eq!(summary["status"], status, "{summary}");
    let stored = install.fields("REF-4");
    assert_eq!(stored["amount_granted"].as_str(), amount, "{summary}");
    if on_empty.is_none() {
        assert_eq!(n(&summary, "warnings"), 1, "{summary}");
        assert!(
            summary["rejections"][0]["reason"]
                .as_str()
                .unwrap()
                .contains("the stored value is kept"),
            "{summary}"
        );
    }
}

/// `on_empty = "reject"`: a record with the cell empty is rejected, naming the
/// field and the reason.
#[test]
fn on_empty_reject_rejects_the_record() {
    let install = Install::with_connector(|c| {
        c.replace(
            "format = \"auto\" }",
            "format = \"auto\", on_empty = \"reject\" }",
        )
        .replace("max_rejected_ratio = 0.01", "max_rejected_ratio = 0.9")
    });
    let (summary, _) = install.import("export-1.csv", &[]);
    assert_eq!(n(&summary, "rejected"), 3, "{summary}");
    let rejection = &summary["rejections"][0];
    assert_eq!(rejection["field"], "amount_granted", "{summary}");
    assert!(
        rejection["reason"]
            .as_str()
            .unwrap()
            .contains("on_empty = \"reject\""),
        "{summary}"
    );
}
