//! Delivery under faults, through the binary: a relay that fails as a whole
//! pauses delivery and fails no alert, the administrators' digest backs off, and
//! several processes draining one outbox send each alert once.

use std::time::{Duration, Instant};

use rstest::rstest;

use crate::common::{Install, text};
use crate::delivery::{
    all, flush, flush_undelivered, install, pending_or_sending, per_address, queue_alerts,
    statuses, three_alerts,
};
use crate::smtp_server::{Mode, SmtpServer};

/// How many attempts the alerts have had, all together.
fn attempts(install: &Install) -> i64 {
    install
        .sql()
        .query_row("SELECT sum(attempts) FROM alerts", [], |r| r.get(0))
        .unwrap()
}

/// A relay that is down, refuses the sender, closes the service or never
/// answers is the relay's failure, not the messages': with `max_age = "0s"`, a
/// failure blamed on a message would fail it at once. Regression: each of these
/// failed or aged out every alert it touched.
#[rstest]
#[case::connection_dropped(Mode::Drop)]
#[case::never_answers(Mode::Silent)]
#[case::sender_refused(Mode::RejectSender)]
#[case::service_closing(Mode::Closing)]
fn a_broken_relay_is_not_a_broken_message(#[case] mode: Mode) {
    let server = SmtpServer::start(mode);
    let install = install(
        &server,
        "max_age = \"0s\"\nretry_initial = \"1h\"\nnotice_dir = \"notices\"\n\
         admin_email = \"admin@region.example.org\"",
    );
    let config = std::fs::read_to_string(install.config())
        .unwrap()
        .replace("timeout = \"5s\"", "timeout = \"1s\"");
    std::fs::write(install.config(), config).unwrap();
    three_alerts(&install);

    let start = Instant::now();
    let report = flush_undelivered(&install, false);
    assert!(
        start.elapsed() < Duration::from_secs(20),
        "{:?}",
        start.elapsed()
    );
    assert!(
        report.contains("the smtp transport fails") && report.contains("waiting"),
        "{report}"
    );
    assert_eq!(statuses(&install), all("pending"), "{report}");
    let list = text(&install.run(&["outbox", "list"]));
    assert!(list.contains("transport smtp: PAUSED since"), "{list}");
    assert!(
        list.contains("le relais de messagerie ne répond pas"),
        "{list}"
    );

    // Paused: the next flush waits for the backoff and touches nothing.
    let tried = attempts(&install);
    let report = flush_undelivered(&install, false);
    assert_eq!(attempts(&install), tried, "{report}");

    // The administrators were told without the relay: a notice file.
    let notices: Vec<_> = std::fs::read_dir(install.root().join("notices"))
        .expect("the notice folder")
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .collect();
    assert_eq!(notices.len(), 1, "one notice per outage");
    let notice = notices[0].replace("=\r\n", "");
    assert!(
        notice.contains("To: admin@region.example.org") && notice.contains("outbox flush"),
        "{notice}"
    );

    // Mended: a forced flush tries the relay at once, and the outage ends.
    server.set_mode(Mode::Accept);
    let report = flush(&install, true);
    assert!(report.contains("3 messages sent"), "{report}");
    assert_eq!(statuses(&install), all("sent"));
    let list = text(&install.run(&["outbox", "list"]));
    assert!(!list.contains("PAUSED"), "{list}");
}

/// Regression: a digest that could not be sent was tried again on every loop
/// of the dispatcher, forever, and left no trace.
#[test]
fn the_administrators_digest_backs_off_and_records_its_failures() {
    let server = SmtpServer::start(Mode::Transient);
    let install = install(
        &server,
        "admin_email = \"admin@region.example.org\"\nadmin_digest = \"* * * * * *\"\n\
         retry_initial = \"1h\"",
    );
    let (refused, _) = install.import("empty.csv", &[]);
    assert_eq!(refused["status"], "refused");
    let mut daemon = install.daemon();
    let recorded = |install: &Install| -> i64 {
        install
            .sql()
            .query_row("SELECT count(*) FROM admin_attempts", [], |r| r.get(0))
            .unwrap_or(0)
    };
    let start = Instant::now();
    while recorded(&install) == 0 {
        assert!(start.elapsed().as_secs() < 30, "no attempt was recorded");
        std::thread::sleep(Duration::from_millis(100));
    }
    // Loops and digest ticks go by: the backoff holds.
    std::thread::sleep(Duration::from_secs(3));
    crate::common::terminate(&mut daemon.0);
    let (n, outcome, reply): (i64, String, String) = install
        .sql()
        .query_row(
            "SELECT count(*), max(outcome), max(reply) FROM admin_attempts",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!(n, 1, "tried again before its backoff");
    assert_eq!(outcome, "transient");
    assert!(reply.contains("450"), "{reply}");
}

/// Regression: a reload of the daemon took back the claims of an `outbox flush`
/// running beside it, and both sent the same alerts. Here two `outbox flush`
/// started before the daemon (so each works alone, with claims of its own; a
/// flush started after it hands its pass to the daemon) drain one outbox with
/// the daemon while it starts and is reloaded three times.
#[test]
fn several_processes_drain_one_outbox_and_send_each_alert_once() {
    const ALERTS: usize = 150;
    let server = SmtpServer::start(Mode::Accept);
    let install = install(&server, "concurrency = 2\nrate_per_second = 40.0");
    queue_alerts(&install, ALERTS);

    let flushes: Vec<_> = (0..2)
        .map(|_| {
            install
                .cmd(&["outbox", "flush"])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    let start = Instant::now();
    while server.received().is_empty() {
        assert!(start.elapsed().as_secs() < 30, "the flushes sent nothing");
        std::thread::sleep(Duration::from_millis(20));
    }
    let daemon = install.daemon();
    for _ in 0..3 {
        std::thread::sleep(Duration::from_millis(300));
        let hup = std::process::Command::new("kill")
            .args(["-HUP", &daemon.0.id().to_string()])
            .status()
            .unwrap();
        assert!(hup.success());
    }
    for mut flush in flushes {
        flush.wait().unwrap();
    }
    let start = Instant::now();
    while pending_or_sending(&install) > 0 {
        assert!(start.elapsed().as_secs() < 60, "the outbox did not drain");
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(daemon);

    let per_address = per_address(&server);
    let doubled: Vec<_> = per_address.iter().filter(|(_, n)| **n > 1).collect();
    assert!(doubled.is_empty(), "sent more than once: {doubled:?}");
    assert_eq!(per_address.len(), ALERTS, "every alert arrived");
    let interrupted: i64 = install
        .sql()
        .query_row(
            "SELECT count(*) FROM deliveries WHERE outcome = 'interrupted'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(interrupted, 0, "a live process's claim was taken back");
}

/// Regression: with the database's write lock held by another program past the
/// busy timeout, the daemon left alerts `sending` (some never handed over) until
/// a restart, then sent them again. Now what cannot be recorded is recorded once
/// the lock is free, and nothing stays claimed.
#[test]
fn a_busy_database_strands_no_alert() {
    const ALERTS: usize = 40;
    let server = SmtpServer::start(Mode::Accept);
    let install = install(&server, "concurrency = 2\nrate_per_second = 8.0");
    queue_alerts(&install, ALERTS);
    let daemon = install.daemon();
    let start = Instant::now();
    while server.received().is_empty() {
        assert!(start.elapsed().as_secs() < 30, "nothing was sent");
        std::thread::sleep(Duration::from_millis(50));
    }
    // Another program takes the write lock for longer than the busy timeout.
    let holder = install.sql();
    holder.execute_batch("BEGIN IMMEDIATE").unwrap();
    std::thread::sleep(Duration::from_secs(12));
    holder.execute_batch("COMMIT").unwrap();
    let start = Instant::now();
    while pending_or_sending(&install) > 0 {
        assert!(start.elapsed().as_secs() < 60, "the outbox did not drain");
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(daemon);
    let per_address = per_address(&server);
    assert_eq!(per_address.len(), ALERTS, "every alert arrived");
    let doubled: Vec<_> = per_address.iter().filter(|(_, n)| **n > 1).collect();
    assert!(doubled.is_empty(), "sent more than once: {doubled:?}");
}
