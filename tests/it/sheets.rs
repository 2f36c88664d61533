//! The `spreadsheet` kind through the binary: `.xls` with title rows, `.xlsx` and
//! `.ods` with two header levels, serial dates, big numeric ids, and bad workbooks.
//! The fixtures are written by `tests/fixtures/sheets/generate.py`.

use serde_json::Value;

use crate::common::{Install, text};

/// A Progos-like export: the second sheet, title rows above the header.
const PROGOS: &str = r#"kind = "spreadsheet"
schedule = "* * * * * *"

[source]
path = "../inbox/*.xls"
sheet = "Dossiers"
settle = "0s"

[fields]
id = "N° dossier"
reference = "Référence"
scheme = "Dispositif"
"beneficiary.name" = "Bénéficiaire"
"beneficiary.siret" = "SIRET"
"beneficiary.email" = "Courriel"
step = "Statut"
step_since = "Date statut"
amount_granted = { column = "Montant voté", format = "auto" }

[steps]
"Déposé" = "depose"
"Instruction en cours" = "instruction"
"Passage en CP" = "commission"
"Voté en CP" = "accorde"
"Convention signée" = "convention"
"#;

/// An Osiris-like export: a group row above the column names.
const OSIRIS: &str = r#"kind = "spreadsheet"
schedule = "* * * * * *"

[source]
path = "../inbox/*.xlsx"
header_levels = 2
settle = "0s"

[fields]
id = "Dossier/N°"
reference = "Dossier/Référence"
scheme = "Dossier/Dispositif"
"beneficiary.name" = "Bénéficiaire/Raison sociale"
"beneficiary.siret" = "Bénéficiaire/SIRET"
"beneficiary.email" = "Bénéficiaire/Courriel"
amount_requested = { column = "Montants/Demandé", format = "auto" }
amount_granted = { column = "Montants/Accordé", format = "auto" }
step = "Suivi/Statut"
step_since = "Suivi/Depuis"
"extra.observations" = "Observations"

[steps]
"Déposé" = "depose"
"Instruction en cours" = "instruction"
"Passage en CP" = "commission"
"Voté en CP" = "accorde"
"Convention signée" = "convention"
"#;

#[test]
fn xls_with_title_rows_serial_dates_and_numeric_ids() {
    let install = Install::with_text(PROGOS);
    let (summary, code) = install.import_fixture("sheets", "progos-like.xls");
    assert_eq!(code, 0, "{summary}");
    assert_eq!(summary["created"], 5, "{summary}");
    assert_eq!(summary["rejected"], 0, "{summary}");
    let d5 = install.fields("REF-5");
    // A SIRET held in a numeric cell keeps every digit.
    assert_eq!(d5["beneficiary.siret"], "21060004500392");
    assert_eq!(d5["beneficiary.name"], "Théâtre Éphémère");
    assert_eq!(d5["amount_granted"], "8500.50");
    // 05/09/2026 as an Excel serial date, midnight in Paris.
    assert_eq!(d5["step_since"], "2026-09-04T22:00:00Z");
    // The same workbook again: unchanged, by its checksum.
    let (again, code) = install.import_fixture("sheets", "progos-like.xls");
    assert_eq!(
        (again["status"].as_str(), code),
        (Some("unchanged"), 0),
        "{again}"
    );
}

#[test]
fn xlsx_with_two_header_levels() {
    let install = Install::with_text(OSIRIS);
    let (summary, code) = install.import_fixture("sheets", "osiris-like.xlsx");
    assert_eq!(code, 0, "{summary}");
    assert_eq!(summary["created"], 5, "{summary}");
    let d4 = install.fields("REF-4");
    assert_eq!(d4["amount_requested"], "10000.00");
    assert_eq!(d4["amount_granted"], "10000.00");
    assert_eq!(d4["beneficiary.siret"], "41821357500024");
    assert_eq!(d4["step_since"], "2026-09-03T22:00:00Z");
    // A column outside any group keeps its own name.
    assert_eq!(
        install.fields("REF-5")["extra.observations"],
        "Pièce manquante relancée le 12/09"
    );
}

#[test]
fn ods_with_two_header_levels() {
    let connector = OSIRIS
        .replace("*.xlsx", "*.ods")
        .replace("\"extra.observations\" = \"Observations\"\n", "");
    let install = Install::with_text(connector);
    let (summary, code) = install.import_fixture("sheets", "osiris-like.ods");
    assert_eq!(code, 0, "{summary}");
    assert_eq!(summary["created"], 5, "{summary}");
    let d5 = install.fields("REF-5");
    assert_eq!(d5["beneficiary.siret"], "21060004500392");
    assert_eq!(d5["amount_granted"], "8500.50");
    assert_eq!(d5["step_since"], "2026-09-04T22:00:00Z");
}

#[test]
fn a_missing_sheet_is_named_with_the_sheets_there_are() {
    let install = Install::with_text(PROGOS.replace("sheet = \"Dossiers\"", "sheet = \"Export\""));
    let (summary, code) = install.import_fixture("sheets", "progos-like.xls");
    assert_eq!(code, 1, "{summary}");
    let reasons = summary["reasons"].to_string();
    assert!(
        reasons.contains(
            "progos-like.xls: no sheet named 'Export'; its sheets are 'Paramètres', 'Dossiers'"
        ),
        "{reasons}"
    );
}

#[test]
fn a_grouped_column_addressed_without_its_group_is_refused_with_the_closest_name() {
    let install = Install::with_text(OSIRIS.replace("\"Montants/Accordé\"", "\"Accordé\""));
    let (summary, code) = install.import_fixture("sheets", "osiris-like.xlsx");
    assert_eq!(code, 1, "{summary}");
    let reasons = summary["reasons"].to_string();
    assert!(reasons.contains("Accordé"), "{reasons}");
    assert!(reasons.contains("Montants/Accordé"), "{reasons}");
}

#[test]
fn a_file_that_is_not_a_workbook_is_refused() {
    let install = Install::with_text(PROGOS);
    let file = install.root().join("exports/broken.xls");
    std::fs::write(&file, "N° dossier;Statut\nD1;Déposé\n").unwrap();
    let out = install.run(&["import", "portail", file.to_str().unwrap(), "--json"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        summary["reasons"][0]
            .as_str()
            .unwrap()
            .contains("broken.xls: cannot read the workbook"),
        "{summary}"
    );
}

#[test]
fn check_names_bad_spreadsheet_settings() {
    // A key of another kind is unknown here.
    let bad =
        Install::with_text(PROGOS.replace("settle = \"0s\"", "settle = \"0s\"\ndelimiter = \";\""));
    let out = bad.run(&["check"]);
    assert_eq!(out.status.code(), Some(78), "{}", text(&out));
    assert!(
        text(&out).contains("unknown field `delimiter`"),
        "{}",
        text(&out)
    );
    let bad =
        Install::with_text(PROGOS.replace("sheet = \"Dossiers\"", "sheet = 0\nheader_levels = 3"));
    let out = bad.run(&["check"]);
    assert_eq!(out.status.code(), Some(78), "{}", text(&out));
    for needle in [
        "sheet must be a sheet name, a list of names (the first the workbook has), or a position from 1, found 0",
        "header_levels must be 1 or 2",
    ] {
        assert!(
            text(&out).contains(needle),
            "{needle:?} not in {}",
            text(&out)
        );
    }
}

/// Regression: a truncated `.xls` made calamine panic (index out of bounds in
/// its CFB reader): `import` exited 101 with a backtrace, no run was recorded
/// and no file named, and the daemon panicked again on every tick. Now a cut
/// workbook, at any point, is a refused snapshot naming the file, recorded as a
/// run, and not read again until it changes.
#[test]
fn a_cut_workbook_is_a_refused_snapshot_never_a_crash() {
    for (fixture, connector) in [
        ("progos-like.xls", PROGOS.to_owned()),
        ("osiris-like.xlsx", OSIRIS.to_owned()),
        ("osiris-like.ods", OSIRIS.replace("*.xlsx", "*.ods")),
    ] {
        let whole = std::fs::read(
            crate::common::repo()
                .join("tests/fixtures/sheets")
                .join(fixture),
        )
        .unwrap();
        let install = Install::with_text(connector);
        let cuts = 24;
        for i in 1..cuts {
            let at = whole.len() * i / cuts;
            let name = format!("cut-{at}-{fixture}");
            let file = install.root().join("exports").join(&name);
            std::fs::write(&file, &whole[..at]).unwrap();
            let out = install.run(&["import", "portail", file.to_str().unwrap(), "--json"]);
            let code = out.status.code();
            let summary: Value = serde_json::from_slice(&out.stdout)
                .unwrap_or_else(|e| panic!("{fixture} cut at {at}: {e}: {}", text(&out)));
            // A cut past the last cell the reader needs loses nothing.
            if summary["status"] == "applied" {
                assert_eq!(summary["rows"], 5, "{fixture} cut at {at}: {summary}");
                continue;
            }
            assert_eq!(code, Some(1), "{fixture} cut at {at}: {}", text(&out));
            assert_eq!(summary["status"], "refused", "{summary}");
            assert!(
                summary["run_id"].is_number(),
                "a run is recorded: {summary}"
            );
            assert!(
                summary["reasons"][0].as_str().unwrap().contains(&name),
                "the file is named: {summary}"
            );
            // Not read again until it changes.
            let again = install.run(&["import", "portail", file.to_str().unwrap(), "--json"]);
            let again: Value = serde_json::from_slice(&again.stdout).unwrap();
            assert_eq!(again["status"], "skipped", "{again}");
        }
    }
}

/// Regression: a 300 KB `.xlsx` or `.ods` whose shared strings (content)
/// inflate to hundreds of megabytes made the process allocate gigabytes and
/// abort, with no run recorded and no file named. Such a file is refused by its
/// declared sizes, before anything is inflated.
#[test]
fn a_workbook_bomb_is_refused_unread() {
    for (fixture, connector) in [
        ("bomb.xlsx", OSIRIS.to_owned()),
        ("bomb.ods", OSIRIS.replace("*.xlsx", "*.ods")),
    ] {
        let install = Install::with_text(connector);
        let started = std::time::Instant::now();
        let (summary, code) = install.import_fixture("sheets", fixture);
        assert_eq!(code, 1, "{summary}");
        assert!(started.elapsed().as_secs() < 10, "{:?}", started.elapsed());
        let reason = summary["reasons"][0].as_str().unwrap();
        assert!(
            reason.contains(fixture) && reason.contains("read budget of 256 MiB"),
            "{summary}"
        );
        assert!(summary["run_id"].is_number(), "{summary}");
    }
}
