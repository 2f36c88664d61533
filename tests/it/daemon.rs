//! `alertissimo run`: the daemon imports on its schedule and stops cleanly.

use std::time::{Duration, Instant};

use crate::common::{Install, fixture};

fn applied_runs(install: &Install) -> i64 {
    if !install.db().exists() {
        return 0;
    }
    install
        .sql()
        .query_row(
            "SELECT count(*) FROM runs WHERE status = 'applied'",
            [],
            |r| r.get(0),
        )
        .unwrap_or(0)
}

fn wait_for(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn daemon_follows_the_schedule_and_stops_on_sigterm() {
    // Every second; a failing connector next to it must not stop it.
    let install = Install::tolerant();
    std::fs::write(
        install.root().join("connectors/broken.toml"),
        std::fs::read_to_string(fixture("connector.toml"))
            .unwrap()
            .replace("../inbox/*.csv", "../broken-inbox/*.csv"),
    )
    .unwrap();
    std::fs::create_dir_all(install.root().join("broken-inbox")).unwrap();
    // An invalid connector is left out; the others run.
    std::fs::write(
        install.root().join("connectors/invalid.toml"),
        "kind = \"csv\"\nschedule = \"never\"\n",
    )
    .unwrap();
    std::fs::write(
        install.root().join("broken-inbox/garbage.csv"),
        "not;an;export\n1;2;3\n",
    )
    .unwrap();
    let inbox = install.root().join("inbox");
    std::fs::copy(fixture("export-1.csv"), inbox.join("a.csv")).unwrap();
    let mut daemon = crate::common::Daemon(install.cmd(&["run"]).spawn().unwrap());
    wait_for("the start-up import", Duration::from_secs(30), || {
        applied_runs(&install) == 1
    });
    std::fs::copy(fixture("export-2.csv"), inbox.join("b.csv")).unwrap();
    wait_for("the scheduled import", Duration::from_secs(30), || {
        applied_runs(&install) == 2
    });
    let refused: i64 = install
        .sql()
        .query_row(
            "SELECT count(*) FROM runs WHERE connector = 'broken' AND status = 'refused'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(
        refused, 1,
        "the broken export is refused once, then skipped by its checksum"
    );

    let exit = crate::common::terminate(&mut daemon.0);
    assert!(exit.success(), "{exit:?}");
    assert!(inbox.join("archive").is_dir());
}
