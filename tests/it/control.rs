//! One writer while the daemon runs (issue 17, item 31): the commands that write
//! hand their work to the running daemon over its control socket; without a
//! daemon, commands opening the store at once neither race nor fail early.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::{Daemon, Install, repo, terminate, text};

/// Waits (at most 20 s) for the daemon's control socket; returns its path.
fn socket_of(install: &Install) -> PathBuf {
    let socket = PathBuf::from(format!("{}.sock", install.db().display()));
    let start = Instant::now();
    while !socket.exists() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "no control socket at {}",
            socket.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    socket
}

/// A configuration of the same state with no connector at all: a command run
/// with it can import only by handing the work to the daemon.
fn bare_config(install: &Install) -> PathBuf {
    let empty = install.root().join("no-connectors");
    std::fs::create_dir_all(&empty).unwrap();
    let bare = install.root().join("bare.toml");
    std::fs::write(
        &bare,
        format!(
            "connectors_dir = \"{}\"\nrules_dir = \"{}\"\n[store]\npath = \"{}\"\n",
            empty.display(),
            repo().join("rules").display(),
            install.db().display()
        ),
    )
    .unwrap();
    bare
}

#[test]
fn issue_17_item_31_commands_beside_the_daemon_hand_their_work_to_it() {
    use std::os::unix::fs::PermissionsExt;
    let install = Install::tolerant();
    let log = install.root().join("daemon.log");
    let mut daemon = Daemon(
        install
            .cmd(&["run"])
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    let socket = socket_of(&install);
    let mode = std::fs::metadata(&socket).unwrap().permissions().mode();
    assert_eq!(
        mode & 0o777,
        0o660,
        "the socket is the owner's and group's only"
    );

    let bare = bare_config(&install);
    let run = |args: &[&str]| {
        std::process::Command::new(crate::common::BIN)
            .args(args)
            .arg("--config")
            .arg(&bare)
            .env_remove("RUST_LOG")
            .output()
            .unwrap()
    };
    // The daemon's connector imports, though this command's configuration has none.
    let first = install.export("export-1.csv");
    let out = run(&["import", "portail", first.to_str().unwrap(), "--json"]);
    assert!(out.status.success(), "{}", text(&out));
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["status"], "applied", "{summary}");
    assert_eq!(summary["baseline"], true, "{summary}");
    let second = install.export("export-2.csv");
    let out = run(&["import", "portail", second.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains(": APPLIED (run "), "{}", text(&out));

    // The daemon's dispatcher makes the pass: one sending rate.
    let out = run(&["outbox", "flush", "--force"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("sent"), "{}", text(&out));
    let out = run(&["evaluate", "--json"]);
    assert!(out.status.success(), "{}", text(&out));
    let evaluated: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(evaluated["dossiers"].as_u64().unwrap() > 0, "{evaluated}");
    let out = run(&["purge", "--dry-run", "--json"]);
    assert!(out.status.success(), "{}", text(&out));
    let purged: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(purged["dry_run"], true, "{purged}");
    // A refusal is the same as without a daemon.
    let out = run(&["outbox", "cancel", "999999"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("alert 999999 is not pending (no such alert)"),
        "{}",
        text(&out)
    );
    let out = run(&["outbox", "retry", "--failed"]);
    assert!(
        text(&out).contains("0 alerts pending again"),
        "{}",
        text(&out)
    );
    let out = run(&["import", "elsewhere"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("the running daemon has no connector 'elsewhere' (known: portail)"),
        "{}",
        text(&out)
    );

    assert!(terminate(&mut daemon.0).success());
    let logged = std::fs::read_to_string(&log).unwrap();
    assert_eq!(
        logged.matches("Asked over the control socket").count(),
        8,
        "{logged}"
    );
    assert!(!socket.exists(), "the socket goes with the daemon");
    // Without the daemon, that configuration knows no connector.
    let third = install.export("export-3.csv");
    let out = run(&["import", "portail", third.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(78), "{}", text(&out));
    assert!(
        text(&out).contains("no connector file (*.toml)"),
        "{}",
        text(&out)
    );
}

/// Regression: two commands on a new store both found it empty, and the second
/// failed in the migrations ("table runs already exists").
#[test]
fn issue_17_item_31_commands_on_a_new_store_do_not_race_in_its_migrations() {
    for _ in 0..3 {
        let install = Install::tolerant();
        let file = install.export("export-1.csv");
        let children: Vec<_> = (0..4)
            .map(|_| {
                install
                    .cmd(&["import", "portail", file.to_str().unwrap(), "--json"])
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        let mut applied = 0;
        for child in children {
            let out = child.wait_with_output().unwrap();
            assert!(out.status.success(), "{}", text(&out));
            let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
            match summary["status"].as_str() {
                Some("applied") => applied += 1,
                Some("unchanged") => {}
                other => panic!("{other:?}: {summary}"),
            }
        }
        assert_eq!(applied, 1, "the content is applied once");
    }
}

/// Regression: a command found the database locked at once, or after 5 s, with
/// no hint of why; it waits the documented 10 s, then says what holds it.
#[test]
fn issue_17_item_31_a_busy_database_is_reported_after_the_busy_timeout_with_why() {
    let install = Install::tolerant();
    let (summary, code) = install.import("export-1.csv", &[]);
    assert_eq!(code, 0, "{summary}");
    let conn = install.sql();
    conn.execute_batch("BEGIN IMMEDIATE").unwrap();
    let start = Instant::now();
    let out = install.run(&["outbox", "retry", "--failed"]);
    let waited = start.elapsed();
    conn.execute_batch("ROLLBACK").unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(waited >= Duration::from_secs(9), "{waited:?}");
    assert!(
        text(&out).contains("the state database is busy")
            && text(&out).contains("alertissimo runs"),
        "{}",
        text(&out)
    );
    let out = install.run(&["outbox", "retry", "--failed"]);
    assert!(out.status.success(), "{}", text(&out));
}
