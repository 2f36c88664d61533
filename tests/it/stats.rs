//! `alertissimo stats` through the binary: the figures of every scheme's steps,
//! the basis each rests on, the dossiers in each step and those overdue.

use chrono::{Duration, Utc};
use serde_json::Value;

use crate::common::{Install, n, text};

/// An export of dossiers in instruction, the i-th since `days[i]` days ago.
fn export(install: &Install, name: &str, scheme: &str, days: &[i64]) -> std::path::PathBuf {
    let mut csv = String::from(
        "N° dossier;Référence;Dispositif;Bénéficiaire;SIRET;Courriel;Statut;Date statut;Montant voté;Date d'export\n",
    );
    for (i, d) in days.iter().enumerate() {
        let since = (Utc::now() - Duration::days(*d)).format("%d/%m/%Y");
        csv.push_str(&format!(
            "{scheme}{i};REF-{scheme}{i};{scheme};Association {i};;asso{i}@example.org;Instruction en cours;{since};;\n"
        ));
    }
    let path = install.root().join("exports").join(name);
    std::fs::write(&path, csv).unwrap();
    path
}

#[test]
fn stats_per_scheme_and_step_in_every_format() {
    let install = Install::new();
    // 45 dossiers: 40 in instruction for 1 to 40 days, 5 for 60 days, longer than
    // the lifecycle's 6 weeks.
    let mut days: Vec<i64> = (1..=40).collect();
    days.extend([60; 5]);
    let (summary, code) = install.import_path(&export(&install, "a.csv", "Culture", &days));
    assert_eq!(code, 0, "{summary}");
    assert_eq!(n(&summary, "created"), 45);

    let out = install.run(&["stats", "--format", "json"]);
    assert!(out.status.success(), "{}", text(&out));
    let rows: Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
    let row = &rows[0];
    assert_eq!(row["scheme"], "Culture");
    assert_eq!(row["step"], "instruction");
    // Every dossier was first seen by this import, already in its step: nothing is
    // known yet of how long a stay lasts, so the lifecycle answers.
    assert_eq!(row["basis"], "lifecycle");
    assert_eq!(row["own_stays"], 45);
    assert_eq!(row["own_left"], 0);
    assert_eq!(row["median"], 42 * 86_400);
    assert_eq!(row["in_step"], 45);
    assert_eq!(row["overdue"], 5);

    let out = install.run(&["stats", "--format", "csv"]);
    assert!(out.status.success(), "{}", text(&out));
    let csv = String::from_utf8(out.stdout).unwrap();
    let mut lines = csv.lines();
    assert_eq!(
        lines.next(),
        Some(
            "scheme,step,basis,sample,own_stays,own_left,median_days,p80_days,p90_days,in_step,overdue"
        )
    );
    assert_eq!(
        lines.next(),
        Some("Culture,instruction,lifecycle,0,45,0,42.0,,,45,5")
    );

    let out = install.run(&["stats"]);
    assert!(out.status.success(), "{}", text(&out));
    let table = text(&out);
    assert!(table.contains("SCHEME"), "{table}");
    assert!(table.contains("Culture"), "{table}");
    assert!(table.contains("BASIS: what the figures rest on"), "{table}");
}

#[test]
fn the_report_is_one_html_file_that_needs_nothing_else() {
    let install = Install::new();
    let days: Vec<i64> = (1..=90).collect();
    let (summary, code) = install.import_path(&export(&install, "a.csv", "Culture", &days));
    assert_eq!(code, 0, "{summary}");
    let out_file = install.root().join("rapport.html");
    let out = install.run(&["report", "--out", out_file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    let html = std::fs::read_to_string(&out_file).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>"), "{html}");
    assert!(html.contains("Délais des aides"));
    // The months since the oldest step date are charted; the dossiers in
    // instruction for longer than its 6 weeks are stalled, and have no instructor.
    assert!(html.contains("<svg"), "{html}");
    assert!(html.contains("(sans instructeur)"), "{html}");
    for needle in ["<script", "src=", "href="] {
        assert!(!html.contains(needle), "{needle}");
    }
    // A folder that does not exist: said, and nothing half-written.
    let out = install.run(&["report", "--out", "/nonexistent/rapport.html"]);
    assert!(!out.status.success());
    assert!(text(&out).contains("/nonexistent"), "{}", text(&out));
}

#[test]
fn stats_without_a_database_says_what_to_do() {
    let install = Install::new();
    let out = install.run(&["stats"]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("run an import or the daemon first"),
        "{}",
        text(&out)
    );
}

/// Issue 19, item 4: one dossier's prediction, the same in `dossier --json`
/// and `stats --dossiers`, as of the last applied import unless `--as-of` says.
#[test]
fn issue_19_a_dossiers_prediction_is_the_same_everywhere_and_dated_as_of() {
    let install = Install::new();
    // Three dossiers in instruction for 1, 10 and 20 days: no stay has ended, so
    // the prediction rests on the lifecycle's 6 weeks.
    let (summary, code) = install.import_path(&export(&install, "a.csv", "Culture", &[1, 10, 20]));
    assert_eq!(code, 0, "{summary}");
    let entered = |days: i64| (Utc::now() - Duration::days(days)).date_naive();
    let day = |d: chrono::NaiveDate| d.format("%Y-%m-%d").to_string();

    let out = install.run(&["dossier", "REF-Culture1", "--json"]);
    assert!(out.status.success(), "{}", text(&out));
    let d: Value = serde_json::from_slice(&out.stdout).unwrap();
    let delay = &d[0]["delay"];
    assert_eq!(delay["basis"], "lifecycle", "{delay}");
    assert_eq!(delay["sample"], 0);
    // Entered at midnight (Paris) 10 days ago: 6 weeks after that.
    let expected = day(entered(10) + Duration::days(42));
    assert_eq!(delay["expected"], expected.as_str(), "{delay}");
    assert_eq!(delay["high"], Value::Null);

    // The same figure in `stats --dossiers`, JSON and CSV.
    let out = install.run(&["stats", "--dossiers", "--format", "json"]);
    assert!(out.status.success(), "{}", text(&out));
    let rows: Value = serde_json::from_slice(&out.stdout).unwrap();
    let row = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["reference"] == "REF-Culture1")
        .unwrap_or_else(|| panic!("{rows}"));
    assert_eq!(row["expected"], expected.as_str());
    assert_eq!(
        (row["step"].as_str(), row["basis"].as_str()),
        (Some("instruction"), Some("lifecycle"))
    );
    let out = install.run(&["stats", "--dossiers", "--format", "csv"]);
    let csv = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        csv.starts_with("connector,id,reference,scheme,step,entered,expected,low,high,basis\n"),
        "{csv}"
    );
    assert_eq!(csv.lines().count(), 4, "{csv}");
    assert!(
        csv.lines()
            .any(|l| l.contains("REF-Culture1") && l.contains(&expected)),
        "{csv}"
    );

    // As of a later day: past its 6 weeks, the dossier is expected that very day.
    let later = entered(10) + Duration::days(60);
    let out = install.run(&["dossier", "REF-Culture1", "--json", "--as-of", &day(later)]);
    let d: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        d[0]["delay"]["expected"],
        day(later).as_str(),
        "{}",
        d[0]["delay"]
    );

    let out = install.run(&["stats", "--dossiers", "--as-of", "yesterday"]);
    assert!(!out.status.success());
    assert!(text(&out).contains("--as-of 'yesterday'"), "{}", text(&out));
}
