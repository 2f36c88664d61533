//! Issue 19, item 1: replaying the past. `import --as-of`, a connector's
//! `[as_of]`, the history read in date order, and `import --backfill`.
//! See: issue 19 ("Delays that hold on a real history").

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::common::{Install, fixture, n, outbox_rows, text};

/// `[as_of]` by the file's name: a time first, so that names sort apart from dates.
const BY_NAME: &str = "[as_of]\nfile_name = \"%H%M-%Y-%m-%d.csv\"\n";

/// A fixture export moved to 2025 (so that no as-of is ever in the future),
/// written to `path`, with `edit` applied to its bytes.
fn export_2025(fixture_name: &str, path: &Path, edit: &[(&[u8], &[u8])]) -> PathBuf {
    let mut bytes = std::fs::read(fixture(fixture_name)).unwrap();
    for (from, to) in [(&b"/2026"[..], &b"/2025"[..])].iter().chain(edit) {
        bytes = replace(&bytes, from, to);
    }
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap();
    path.to_owned()
}

fn replace(bytes: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut rest = bytes;
    while let Some(at) = rest.windows(from.len()).position(|w| w == from) {
        out.extend_from_slice(&rest[..at]);
        out.extend_from_slice(to);
        rest = &rest[at + from.len()..];
    }
    out.extend_from_slice(rest);
    out
}

fn json(out: &std::process::Output) -> Vec<Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|_| panic!("{}", text(out))))
        .collect()
}

/// `import portail FILE --json --as-of AT`.
fn import_as_of(install: &Install, file: &Path, at: &str) -> std::process::Output {
    install.run(&[
        "import",
        "portail",
        file.to_str().unwrap(),
        "--json",
        "--as-of",
        at,
    ])
}

fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn instant(install: &Install, sql: &str) -> DateTime<Utc> {
    let t: String = install.sql().query_row(sql, [], |r| r.get(0)).unwrap();
    utc(&t)
}

/// `t` is a moment after `at` (a run keeps its real duration).
fn just_after(t: DateTime<Utc>, at: DateTime<Utc>) {
    assert!(
        t >= at && t - at < chrono::Duration::minutes(1),
        "{t} is not just after {at}"
    );
}

#[test]
fn issue_19_as_of_sets_every_instant_an_import_records() {
    // Without `step_since`, the source gives no step dates: a step is entered
    // at the import's instant.
    let install = Install::with_connector(|c| {
        c.replace(
            "max_disappeared_ratio = 0.05",
            "max_disappeared_ratio = 0.5",
        )
        .replace(
            "step_since = { column = \"Date statut\", format = \"%d/%m/%Y\" }\n",
            "",
        )
    });
    let exports = install.root().join("exports");
    let first = export_2025("export-1.csv", &exports.join("e1.csv"), &[]);
    let second = export_2025("export-2.csv", &exports.join("e2.csv"), &[]);
    // A date alone is midnight in Paris (no [as_of] time): 22:00Z the day before.
    let out = import_as_of(&install, &first, "2025-10-01");
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(json(&out)[0]["as_of"], "2025-09-30T22:00:00Z");
    let created = instant(
        &install,
        "SELECT min(occurred_at) FROM events WHERE run_id = 1",
    );
    assert_eq!(created, utc("2025-09-30T22:00:00Z"));
    let at = "2025-10-08T06:00:00+02:00";
    let out = import_as_of(&install, &second, at);
    assert!(out.status.success(), "{}", text(&out));
    let at = utc(at);
    just_after(
        instant(&install, "SELECT started_at FROM runs WHERE id = 2"),
        at,
    );
    just_after(
        instant(&install, "SELECT finished_at FROM runs WHERE id = 2"),
        at,
    );
    for kind in ["field_changed", "disappeared", "step_changed"] {
        let occurred = instant(
            &install,
            &format!("SELECT occurred_at FROM events WHERE run_id = 2 AND kind = '{kind}'"),
        );
        assert_eq!(occurred, at, "{kind}");
    }
    let entered = instant(
        &install,
        "SELECT step_entered_at FROM dossiers WHERE source_id = 'D1'",
    );
    assert_eq!(entered, at);
    // The text summary says when the export was taken, in Paris.
    let third = export_2025("export-3.csv", &exports.join("e3.csv"), &[]);
    let out = install.run(&[
        "import",
        "portail",
        third.to_str().unwrap(),
        "--as-of",
        "2025-10-15T06:00:00+02:00",
    ]);
    assert!(
        text(&out).contains("as of 2025-10-15 06:00:00 +02:00 (Europe/Paris)"),
        "{}",
        text(&out)
    );
}

#[test]
fn issue_19_an_export_older_than_the_last_applied_one_is_refused() {
    let install = Install::tolerant();
    let exports = install.root().join("exports");
    let first = export_2025("export-1.csv", &exports.join("e1.csv"), &[]);
    let second = export_2025("export-2.csv", &exports.join("e2.csv"), &[]);
    let out = import_as_of(&install, &second, "2025-10-08T06:00:00+02:00");
    assert!(out.status.success(), "{}", text(&out));
    let out = import_as_of(&install, &first, "2025-10-01T06:00:00+02:00");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let refused = &json(&out)[0];
    assert_eq!(refused["status"], "refused");
    let reason = refused["reasons"][0].as_str().unwrap();
    assert!(
        reason.contains("dated 2025-10-01 06:00:00 +02:00 (Europe/Paris), before the last applied snapshot's 2025-10-08 06:00:00 +02:00 (Europe/Paris) (run 1)"),
        "{reason}"
    );
    assert_eq!(n(refused, "created"), 0);
    // Given its right date, the same file is read again, not skipped as refused before.
    let out = import_as_of(&install, &first, "2025-10-09T06:00:00+02:00");
    assert_eq!(json(&out)[0]["status"], "applied", "{}", text(&out));
    // An as-of in the future is refused before anything is read.
    let out = install.run(&[
        "import",
        "portail",
        first.to_str().unwrap(),
        "--as-of",
        "2999-01-01",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("in the future"), "{}", text(&out));
    // Without --as-of, the wall clock is after every as-of given: applied.
    let out = install.run(&["import", "portail", second.to_str().unwrap(), "--json"]);
    assert_eq!(json(&out)[0]["status"], "applied", "{}", text(&out));
    assert!(json(&out)[0].get("as_of").is_none());
}

#[test]
fn issue_19_a_file_name_that_does_not_match_the_pattern_is_refused() {
    let install = Install::with_connector(|c| format!("{c}\n{BY_NAME}"));
    let file = export_2025(
        "export-1.csv",
        &install.root().join("exports/latest.csv"),
        &[],
    );
    let (summary, code) = install.import_path(&file);
    assert_eq!(code, 1, "{summary}");
    assert_eq!(summary["status"], "refused");
    let reason = summary["reasons"][0].as_str().unwrap();
    assert!(
        reason.contains("latest.csv: the name 'latest.csv' does not match [as_of] file_name = \"%H%M-%Y-%m-%d.csv\" ("),
        "{reason}"
    );
    // A name that matches dates the export (summer: 06:00 Paris is 04:00Z).
    let file = export_2025(
        "export-1.csv",
        &install.root().join("exports/0600-2025-07-07.csv"),
        &[],
    );
    let (summary, code) = install.import_path(&file);
    assert_eq!(code, 0, "{summary}");
    assert_eq!(summary["as_of"], "2025-07-07T04:00:00Z");
    // A typo in [as_of] is reported with its place, like every common key.
    let install = Install::with_connector(|c| format!("{c}\n[as_of]\nfile_nam = \"x\"\n"));
    let out = install.run(&["check", "--no-environment"]);
    assert_eq!(out.status.code(), Some(78), "{}", text(&out));
    assert!(
        text(&out).contains("unknown field `file_nam`"),
        "{}",
        text(&out)
    );
}

/// The weekly archives of the backfill test, named so that name order is not
/// date order; each file's as-of by its name (Paris).
fn archives(dir: &Path) -> Vec<(PathBuf, &'static str)> {
    vec![
        (
            export_2025(
                "export-3-shuffled.csv",
                &dir.join("0500-2025-10-22.csv"),
                &[],
            ),
            "2025-10-22T05:00:00+02:00",
        ),
        (
            export_2025("export-2.csv", &dir.join("0700-2025-10-08.csv"), &[]),
            "2025-10-08T07:00:00+02:00",
        ),
        (
            export_2025("export-1.csv", &dir.join("0900-2025-10-01.csv"), &[]),
            "2025-10-01T09:00:00+02:00",
        ),
        (
            export_2025("export-3.csv", &dir.join("0600-2025-10-15.csv"), &[]),
            "2025-10-15T06:00:00+02:00",
        ),
    ]
}

/// The events as comparable rows, with their instants (baseline left out).
fn dated_events(install: &Install) -> Vec<String> {
    let conn = install.sql();
    let mut stmt = conn
        .prepare(
            "SELECT d.source_id || ' ' || e.kind || ' ' || e.occurred_at || ' ' || r.started_at
             FROM events e JOIN dossiers d ON d.id = e.dossier_id JOIN runs r ON r.id = e.run_id
             ORDER BY e.run_id, d.source_id, e.id",
        )
        .unwrap();
    let rows = stmt.query_map([], |r| r.get::<_, String>(0)).unwrap();
    rows.map(Result::unwrap)
        // The runs' starts to the minute (each keeps its real duration).
        .map(|row| row[..row.len() - 4].to_owned())
        .collect()
}

#[test]
fn issue_19_a_backfill_builds_the_history_one_by_one_imports_build_without_alerting() {
    let connector = |c: String| {
        format!("{c}\n{BY_NAME}").replace(
            "max_disappeared_ratio = 0.05",
            "max_disappeared_ratio = 0.5",
        )
    };
    let backfilled = Install::with_connector(connector);
    let one_by_one = Install::with_connector(connector);
    let dir = backfilled.root().join("archives");
    let files = archives(&dir);

    let out = backfilled.run(&[
        "import",
        "portail",
        "--backfill",
        dir.to_str().unwrap(),
        "--json",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let summaries = json(&out);
    let order: Vec<&str> = summaries
        .iter()
        .map(|s| s["file"].as_str().unwrap())
        .collect();
    let mut by_date = files.clone();
    by_date.sort_by_key(|(_, at)| utc(at));
    let expected: Vec<String> = by_date
        .iter()
        .map(|(p, _)| p.display().to_string())
        .collect();
    assert_eq!(order, expected);
    assert!(
        summaries
            .iter()
            .all(|s| s["status"] == "applied" && s["baseline"] == true)
    );
    // Files given to import are never moved.
    assert!(files.iter().all(|(p, _)| p.exists()));

    for (file, at) in &by_date {
        let out = import_as_of(&one_by_one, file, at);
        assert!(out.status.success(), "{}", text(&out));
    }
    assert_eq!(backfilled.dossiers(), one_by_one.dossiers());
    assert_eq!(dated_events(&backfilled), dated_events(&one_by_one));
    let strip = |events: Vec<String>| -> Vec<String> {
        events
            .into_iter()
            .map(|e| e[..e.rfind(" baseline=").unwrap()].to_owned())
            .collect()
    };
    assert_eq!(strip(backfilled.events()), strip(one_by_one.events()));
    // The backfill queued no alert; imported one by one, the past alerts.
    let keys = ["id", "rule", "status", "to"];
    assert_eq!(outbox_rows(&backfilled, keys), []);
    assert!(!outbox_rows(&one_by_one, keys).is_empty());

    // Again: every file is passed over (not after the last applied one).
    let out = backfilled.run(&["import", "portail", "--backfill", dir.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(text(&out).matches("SKIPPED").count(), 4, "{}", text(&out));

    // A later normal import (dated by its name) alerts: D1 voted.
    let later = export_2025(
        "export-3.csv",
        &backfilled.root().join("exports/0600-2025-10-29.csv"),
        &[(
            b"Instruction en cours;08/10/2025",
            b"Vot\xe9 en CP;20/10/2025",
        )],
    );
    let (summary, code) = backfilled.import_path(&later);
    assert_eq!(code, 0, "{summary}");
    assert_eq!(summary["baseline"], false);
    assert!(n(&summary, "alerts_queued") > 0, "{summary}");
    assert!(!outbox_rows(&backfilled, keys).is_empty());
}

#[test]
fn issue_19_a_backfill_needs_as_of_and_stops_at_the_first_refusal() {
    let install = Install::tolerant();
    let dir = install.root().join("archives");
    export_2025("export-1.csv", &dir.join("0900-2025-10-01.csv"), &[]);
    let out = install.run(&["import", "portail", "--backfill", dir.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).contains("connector 'portail' has no [as_of]"),
        "{}",
        text(&out)
    );
    // --backfill goes with neither a file nor --as-of.
    let out = install.run(&[
        "import",
        "portail",
        "x.csv",
        "--backfill",
        dir.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));

    let install = Install::with_connector(|c| format!("{c}\n{BY_NAME}"));
    let dir = install.root().join("archives");
    export_2025("export-1.csv", &dir.join("0900-2025-10-01.csv"), &[]);
    export_2025("empty.csv", &dir.join("0900-2025-10-08.csv"), &[]);
    export_2025("export-2.csv", &dir.join("0900-2025-10-15.csv"), &[]);
    let out = install.run(&[
        "import",
        "portail",
        "--backfill",
        dir.join("*.csv").to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let statuses: Vec<Value> = json(&out).iter().map(|s| s["status"].clone()).collect();
    assert_eq!(statuses, ["applied", "refused"]);
    assert!(
        text(&out).contains("1 later file(s) not imported"),
        "{}",
        text(&out)
    );
}

/// Beside a running daemon, each backfilled file is handed to it over the
/// control socket with its as-of and as a baseline.
#[test]
fn issue_19_a_backfill_beside_the_daemon_is_done_by_it_dated_and_silent() {
    let install = Install::with_connector(|c| {
        format!("{c}\n{BY_NAME}").replace(
            "max_disappeared_ratio = 0.05",
            "max_disappeared_ratio = 0.5",
        )
    });
    let dir = install.root().join("archives");
    archives(&dir);
    let log = install.root().join("daemon.log");
    let daemon = crate::common::Daemon(
        install
            .cmd(&["run"])
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    let socket = PathBuf::from(format!("{}.sock", install.db().display()));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !socket.exists() {
        assert!(std::time::Instant::now() < deadline, "no control socket");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let out = install.run(&[
        "import",
        "portail",
        "--backfill",
        dir.to_str().unwrap(),
        "--json",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let summaries = json(&out);
    assert_eq!(summaries.len(), 4);
    for s in &summaries {
        assert_eq!(
            (&s["status"], &s["baseline"]),
            (&"applied".into(), &true.into()),
            "{s}"
        );
        assert_eq!(n(s, "alerts_queued"), 0, "{s}");
    }
    assert_eq!(summaries[0]["as_of"], "2025-10-01T07:00:00Z");
    let last = instant(&install, "SELECT max(as_of) FROM runs");
    assert_eq!(last, utc("2025-10-22T03:00:00Z"));
    drop(daemon);
    let logged = std::fs::read_to_string(&log).unwrap();
    assert_eq!(
        logged.matches("Asked over the control socket").count(),
        4,
        "{logged}"
    );
}

/// A drop folder's files are dated by their names and imported in date order
/// (not name order); a name that does not match is refused once, then passed
/// over while unchanged; a file dated in the future is refused until its time.
#[test]
fn issue_19_drop_folder_files_are_dated_by_their_names() {
    let install = Install::with_connector(|c| {
        format!("{c}\n{BY_NAME}").replace(
            "max_disappeared_ratio = 0.05",
            "max_disappeared_ratio = 0.5",
        )
    });
    let inbox = install.root().join("inbox");
    export_2025("export-1.csv", &inbox.join("0900-2025-10-01.csv"), &[]);
    export_2025("export-2.csv", &inbox.join("0700-2025-10-08.csv"), &[]);
    export_2025("export-3.csv", &inbox.join("export.csv"), &[]);
    export_2025("export-3.csv", &inbox.join("0600-2999-10-15.csv"), &[]);
    let out = install.run(&["import", "portail", "--json"]);
    let summaries = json(&out);
    let got: Vec<(String, String)> = summaries
        .iter()
        .map(|s| {
            let file = s["file"].as_str().unwrap();
            let name = file.rsplit('/').next().unwrap().to_owned();
            (name, s["status"].as_str().unwrap().to_owned())
        })
        .collect();
    let expected = [
        ("export.csv", "refused"),
        ("0900-2025-10-01.csv", "applied"),
        ("0700-2025-10-08.csv", "applied"),
        ("0600-2999-10-15.csv", "refused"),
    ];
    let expected: Vec<(String, String)> = expected
        .iter()
        .map(|(f, s)| ((*f).to_owned(), (*s).to_owned()))
        .collect();
    assert_eq!(got, expected, "{}", text(&out));
    assert!(
        summaries[3]["reasons"][0]
            .as_str()
            .unwrap()
            .contains("in the future"),
        "{}",
        text(&out)
    );
    let out = install.run(&["import", "portail", "--json"]);
    let statuses: Vec<Value> = json(&out).iter().map(|s| s["status"].clone()).collect();
    assert_eq!(statuses, ["skipped", "refused"], "{}", text(&out));
}

/// `[as_of]` by a column of the records, the connector's own `volatile`
/// left out: the column is volatile by itself.
fn by_column(connector: String, as_of: &str) -> String {
    format!("{connector}\n[as_of]\ncolumn = \"Date d'export\"\n{as_of}")
        .replace("volatile = [\"Date d'export\"]\n", "")
        .replace(
            "max_disappeared_ratio = 0.05",
            "max_disappeared_ratio = 0.5",
        )
}

/// Three weekly exports named so that name order is not date order (their
/// `Date d'export` column dates them), and their as-of in UTC.
fn exports_by_column(dir: &Path) -> Vec<(PathBuf, &'static str)> {
    vec![
        (
            export_2025("export-2.csv", &dir.join("a.csv"), &[]),
            "2025-10-08T04:00:00Z",
        ),
        (
            export_2025("export-3.csv", &dir.join("b.csv"), &[]),
            "2025-10-15T04:00:00Z",
        ),
        (
            export_2025("export-1.csv", &dir.join("c.csv"), &[]),
            "2025-10-01T04:00:00Z",
        ),
    ]
}

/// Issue 19, item 1: exports dated by a column. A backfill of three of them,
/// out of name order, builds the history in as-of order, the same as a drop
/// folder (whose files are dated alike) and as imports given each `--as-of`;
/// and the column, volatile by itself, changes no record.
#[test]
fn issue_19_a_backfill_dated_by_a_column_builds_the_history_in_as_of_order() {
    let connector = |c: String| by_column(c, "");
    let backfilled = Install::with_connector(connector);
    let dropped = Install::with_connector(connector);
    let given = Install::with_connector(connector);
    let dir = backfilled.root().join("archives");
    let files = exports_by_column(&dir);
    let mut by_date = files.clone();
    by_date.sort_by_key(|(_, at)| utc(at));

    let out = backfilled.run(&[
        "import",
        "portail",
        "--backfill",
        dir.to_str().unwrap(),
        "--json",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let got: Vec<(String, String, String)> = json(&out)
        .iter()
        .map(|s| {
            let field = |k: &str| s[k].as_str().unwrap_or_default().to_owned();
            (field("file"), field("status"), field("as_of"))
        })
        .collect();
    let expected: Vec<(String, String, String)> = by_date
        .iter()
        .map(|(p, at)| {
            (
                p.display().to_string(),
                "applied".to_owned(),
                (*at).to_owned(),
            )
        })
        .collect();
    assert_eq!(got, expected);

    // The drop folder dates its waiting files by the column too, and reads them
    // in date order.
    for (file, _) in &files {
        std::fs::copy(
            file,
            dropped.root().join("inbox").join(file.file_name().unwrap()),
        )
        .unwrap();
    }
    let out = dropped.run(&["import", "portail", "--json"]);
    assert!(out.status.success(), "{}", text(&out));
    let as_of: Vec<Value> = json(&out).iter().map(|s| s["as_of"].clone()).collect();
    let expected: Vec<Value> = by_date.iter().map(|(_, at)| (*at).into()).collect();
    assert_eq!(as_of, expected, "{}", text(&out));

    for (file, at) in &by_date {
        let out = import_as_of(&given, file, at);
        assert!(out.status.success(), "{}", text(&out));
    }
    assert_eq!(backfilled.dossiers(), dropped.dossiers());
    assert_eq!(backfilled.dossiers(), given.dossiers());
    assert_eq!(dated_events(&backfilled), dated_events(&dropped));
    assert_eq!(dated_events(&backfilled), dated_events(&given));
    let last = instant(&backfilled, "SELECT max(as_of) FROM runs");
    assert_eq!(last, utc("2025-10-15T04:00:00Z"));

    // The last export again, a week later: only its date column changed, and
    // no record did (the column is volatile without being listed).
    let later = export_2025(
        "export-3.csv",
        &backfilled.root().join("exports/d.csv"),
        &[(b"15/10/2025 06:00", b"22/10/2025 06:00")],
    );
    let (summary, code) = backfilled.import_path(&later);
    assert_eq!(code, 0, "{summary}");
    assert_eq!(summary["as_of"], "2025-10-22T04:00:00Z");
    assert_eq!(n(&summary, "changed"), 0, "{summary}");
    assert_eq!(n(&summary, "unchanged"), n(&summary, "rows"), "{summary}");
}

/// Issue 19, item 1: an export whose records do not all carry the same date in
/// the `[as_of]` column is refused whole, naming the file, the line, the
/// column and both dates: nothing is applied, by an import or by a backfill.
/// `--as-of` wins over the column, which is then not read.
#[test]
fn issue_19_an_export_whose_records_disagree_on_the_as_of_column_is_refused() {
    let install = Install::with_connector(|c| {
        by_column(c, "format = \"%d/%m/%Y %H:%M\"\ntime = \"06:00\"\n")
    });
    let dir = install.root().join("archives");
    let first = export_2025("export-1.csv", &dir.join("1.csv"), &[]);
    let (summary, code) = install.import_path(&first);
    assert_eq!(code, 0, "{summary}");
    let (dossiers, events) = (install.dossiers(), install.events());

    let bad = export_2025(
        "export-2.csv",
        &dir.join("2.csv"),
        &[(
            b"Passage en CP;03/09/2025;;08/10/2025 06:00",
            b"Passage en CP;03/09/2025;;09/10/2025 06:00",
        )],
    );
    let (summary, code) = install.import_path(&bad);
    assert_eq!(code, 1, "{summary}");
    assert_eq!(summary["status"], "refused");
    let reasons = summary["reasons"].to_string();
    let expected = format!(
        "{}:7: [as_of] column 'Date d'export' is '09/10/2025 06:00' (2025-10-09 06:00:00 +02:00 (Europe/Paris)), but the export is dated 2025-10-08 06:00:00 +02:00 (Europe/Paris) by its first record",
        bad.display()
    );
    assert!(reasons.contains(&expected), "{reasons}");
    assert_eq!(install.dossiers(), dossiers);
    assert_eq!(install.events(), events);

    // A record without a date, or with something else, is refused alike.
    let empty = export_2025(
        "export-2.csv",
        &install.root().join("exports/empty-date.csv"),
        &[(
            b"Passage en CP;03/09/2025;;08/10/2025 06:00",
            b"Passage en CP;03/09/2025;;",
        )],
    );
    let (summary, code) = install.import_path(&empty);
    assert_eq!(code, 1, "{summary}");
    let reasons = summary["reasons"].to_string();
    assert!(
        reasons.contains(&format!(
            "{}:7: [as_of] column 'Date d'export': empty value (expected a date)",
            empty.display()
        )),
        "{reasons}"
    );
    assert_eq!(install.dossiers(), dossiers);

    // A backfill checks each file as it imports it, and stops at the refusal
    // (`--force`: the same content was refused above).
    let out = install.run(&[
        "import",
        "portail",
        "--backfill",
        dir.to_str().unwrap(),
        "--json",
        "--force",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let summaries = json(&out);
    let statuses: Vec<&Value> = summaries.iter().map(|s| &s["status"]).collect();
    assert_eq!(statuses, ["skipped", "refused"], "{}", text(&out));
    assert!(
        summaries[1]["reasons"].to_string().contains(&expected),
        "{}",
        text(&out)
    );
    assert_eq!(install.dossiers(), dossiers);
    assert_eq!(install.events(), events);

    // Given by hand, the as-of wins: the column is neither read nor checked.
    let out = import_as_of(&install, &bad, "2025-10-08");
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(json(&out)[0]["as_of"], "2025-10-08T04:00:00Z");
}
