//! The daemon under systemd: the watchdog's heartbeat, reloads and SIGTERM, on a
//! notification socket of the test's own (as `daemon::the_daemon_tells_systemd_…`).

use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

use crate::common::{Daemon, Install, fixture};

/// A daemon started as systemd starts a `Type=notify` unit with `WatchdogSec=`,
/// and the socket it notifies.
struct Notified {
    daemon: Daemon,
    socket: UnixDatagram,
}

impl Notified {
    /// Starts the daemon of `install` with `WATCHDOG_USEC` = `watchdog_usec`.
    fn start(install: &Install, watchdog_usec: u64) -> Self {
        let socket_path = install.root().join("notify.sock");
        let socket = UnixDatagram::bind(&socket_path).unwrap();
        // systemd gives the watchdog to the main process by its pid: the shell
        // hands its own to the daemon it becomes.
        let daemon = Daemon(
            std::process::Command::new("sh")
                .arg("-c")
                .arg(format!(
                    "WATCHDOG_PID=$$ exec '{}' run --config '{}'",
                    crate::common::BIN,
                    install.config().display()
                ))
                .env("NOTIFY_SOCKET", &socket_path)
                .env("WATCHDOG_USEC", watchdog_usec.to_string())
                .env_remove("RUST_LOG")
                .stderr(std::fs::File::create(install.root().join("daemon.log")).unwrap())
                .spawn()
                .unwrap(),
        );
        Self { daemon, socket }
    }

    /// The next notification, if one comes within `limit`.
    fn next_within(&self, limit: Duration) -> Option<String> {
        self.socket.set_read_timeout(Some(limit)).unwrap();
        let mut buf = [0u8; 256];
        let n = self.socket.recv(&mut buf).ok()?;
        Some(String::from_utf8_lossy(&buf[..n]).trim().to_owned())
    }

    /// Waits (30 s at most) for `state`, passing over the heartbeats.
    fn wait_for(&self, state: &str) {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(30) {
            if self.next_within(Duration::from_secs(1)).as_deref() == Some(state) {
                return;
            }
        }
        panic!("no {state} within 30 s");
    }

    /// The heartbeats received during `window`.
    fn heartbeats_during(&self, window: Duration) -> usize {
        let start = Instant::now();
        let mut beats = 0;
        while let Some(left) = window.checked_sub(start.elapsed()) {
            match self.next_within(left.max(Duration::from_millis(1))) {
                Some(s) if s == "WATCHDOG=1" => beats += 1,
                Some(_) => {}
                None => break,
            }
        }
        beats
    }

    /// Whether the heartbeats pause for `silence` within `limit`.
    fn falls_silent(&self, silence: Duration, limit: Duration) -> bool {
        let start = Instant::now();
        while start.elapsed() < limit {
            match self.next_within(silence) {
                None => return true,
                Some(_) => continue,
            }
        }
        false
    }

    fn signal(&self, name: &str) {
        let status = std::process::Command::new("kill")
            .args([&format!("-{name}"), &self.daemon.0.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }
}

fn applied_imports(install: &Install) -> i64 {
    install
        .sql()
        .query_row(
            "SELECT count(*) FROM runs WHERE status = 'applied' AND kind = 'import'",
            [],
            |r| r.get(0),
        )
        .unwrap_or(0)
}

/// An installation whose daemon imported export-1 at start-up, its
/// notifications followed.
fn started(watchdog_usec: u64, config: &str) -> (Install, Notified) {
    let install = Install::tolerant();
    install.append_config(config);
    std::fs::copy(fixture("export-1.csv"), install.root().join("inbox/a.csv")).unwrap();
    let notified = Notified::start(&install, watchdog_usec);
    notified.wait_for("READY=1");
    let start = Instant::now();
    while !(install.db().exists() && applied_imports(&install) == 1) {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no start-up import"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    (install, notified)
}

/// Holds the write lock of the state database (`BEGIN EXCLUSIVE`), and drops a
/// new export in the inbox: the daemon's next import waits on the lock, and with
/// it the store thread.
fn block_the_store(install: &Install) -> rusqlite::Connection {
    let conn = install.sql();
    conn.execute_batch("BEGIN EXCLUSIVE").unwrap();
    std::fs::copy(fixture("export-2.csv"), install.root().join("inbox/b.csv")).unwrap();
    conn
}

/// The watchdog is told the daemon lives only while its store thread answers: a
/// store stuck behind another process's lock stops the heartbeat (systemd would
/// restart the daemon), and it beats again once the lock is gone.
// See: issue 17, item 19.
#[test]
fn issue_17_item_19_the_watchdog_beats_only_while_the_store_answers() {
    let (install, notified) = started(400_000, "");
    assert!(
        notified.heartbeats_during(Duration::from_secs(2)) >= 3,
        "no heartbeat of an idle daemon"
    );
    let lock = block_the_store(&install);
    assert!(
        notified.falls_silent(Duration::from_millis(1500), Duration::from_secs(6)),
        "the heartbeat went on while the store was stuck"
    );
    lock.execute_batch("ROLLBACK").unwrap();
    drop(lock);
    assert!(
        notified.heartbeats_during(Duration::from_secs(3)) >= 3,
        "the heartbeat did not come back with the store"
    );
    let mut notified = notified;
    let exit = crate::common::terminate(&mut notified.daemon.0);
    assert!(exit.success(), "{exit}");
}

/// A reload starts no second heartbeat: after three SIGHUPs the watchdog is
/// told as often as before.
// See: issue 17, item 19.
#[test]
fn issue_17_item_19_reloads_start_no_second_heartbeat() {
    let (_install, notified) = started(200_000, "");
    let before = notified.heartbeats_during(Duration::from_secs(2));
    assert!(before >= 4, "{before} heartbeats in 2 s");
    for _ in 0..3 {
        notified.signal("HUP");
        notified.wait_for("RELOADING=1");
        notified.wait_for("READY=1");
    }
    let after = notified.heartbeats_during(Duration::from_secs(2));
    assert!(
        after >= 4 && after <= before * 3 / 2 + 2,
        "{before} heartbeats in 2 s before the reloads, {after} after"
    );
    let mut notified = notified;
    let exit = crate::common::terminate(&mut notified.daemon.0);
    assert!(exit.success(), "{exit}");
}

/// SIGTERM while a reload waits for the running import is honoured within
/// `daemon.shutdown_timeout`, not once the reload ends.
// See: issue 17, item 19.
#[test]
fn issue_17_item_19_sigterm_during_a_reload_stops_within_the_timeout() {
    let (install, notified) = started(400_000, "[daemon]\nshutdown_timeout = \"1s\"\n");
    let lock = block_the_store(&install);
    // The import (every second) is under way, and waits on the lock.
    std::thread::sleep(Duration::from_secs(2));
    notified.signal("HUP");
    std::thread::sleep(Duration::from_millis(300));
    let asked = Instant::now();
    notified.signal("TERM");
    let mut notified = notified;
    let exit = loop {
        if let Some(exit) = notified.daemon.0.try_wait().unwrap() {
            break exit;
        }
        assert!(
            asked.elapsed() < Duration::from_secs(4),
            "the daemon did not stop within shutdown_timeout (1 s) and a margin:\n{}",
            std::fs::read_to_string(install.root().join("daemon.log")).unwrap()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(exit.success(), "{exit}");
    drop(lock);
}
