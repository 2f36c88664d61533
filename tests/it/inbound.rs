//! Replies by e-mail (issue 21, item 3) through the binary, against a real IMAP
//! server: Debian's Dovecot, started by `.ci/dovecot` (`.ci/run` starts it and
//! exports `IMAP_TEST_*`; outside CI the test starts it itself when Dovecot is
//! installed). The daemon reads over TLS (port 10993, the script's self-signed
//! certificate as `ca_file`); the test delivers its mails with IMAP `APPEND` and
//! looks at the folders over plain IMAP (port 10143). Each test has folders of
//! its own on the one test user.
//!
//! When Dovecot cannot be had, a test fails in CI (`CI=true`) and wherever
//! `IMAP_TESTS_REQUIRED=1` is set, and elsewhere says it did not run.
//!
//! - a reply with quoted history is matched by its token, another by
//!   `References` only; both recorded without the quote, forwarded to the
//!   instructor (the `.eml` outbox, answerable to the dossier's thread), and
//!   moved to the processed folder;
//! - an out-of-office reply and a bounce are recorded and not forwarded; the
//!   bounce marks the alert failed;
//! - an unmatched message is filed apart and told in the administrators' digest;
//! - the daemon killed (SIGKILL) between recording and moving a message records
//!   it once;
//! - a refused password is logged, shown by `/metrics` and `outbox list`, and the
//!   daemon goes on.

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::sync::OnceLock;
use std::time::Duration;

use futures_util::TryStreamExt;

use crate::common::{Daemon, Install, terminate, text};
use crate::daemon::wait_for;

/// Makes a missing Dovecot a failure outside CI too.
const REQUIRED: &str = "IMAP_TESTS_REQUIRED";
/// The mailbox's address in the tests' configuration.
const MAILBOX: &str = "suivi-aides@region.example.org";

/// The test server, as `.ci/dovecot start` prints it.
#[derive(Debug, Clone)]
struct Server {
    tls: String,
    plain: String,
    user: String,
    password: String,
    ca: String,
}

/// The server, from the environment or started once by `.ci/dovecot`; `None`
/// (said on standard error) when there is none outside CI.
fn server(test: &str) -> Option<Server> {
    static STARTED: OnceLock<Result<Server, String>> = OnceLock::new();
    let found = STARTED.get_or_init(|| {
        let from_env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        if let (Some(tls), Some(plain), Some(user), Some(password), Some(ca)) = (
            from_env("IMAP_TEST_SERVER"),
            from_env("IMAP_TEST_PLAIN"),
            from_env("IMAP_TEST_USER"),
            from_env("IMAP_TEST_PASSWORD"),
            from_env("IMAP_TEST_CA"),
        ) {
            return Ok(Server {
                tls,
                plain,
                user,
                password,
                ca,
            });
        }
        start_dovecot()
    });
    match found {
        Ok(server) => Some(server.clone()),
        Err(why) => {
            let ci = std::env::var("CI").is_ok_and(|v| v == "true");
            let required = std::env::var(REQUIRED).is_ok_and(|v| !v.is_empty() && v != "0");
            assert!(
                !ci && !required,
                "the IMAP test {test} cannot run: {why}\nCI must run it: .ci/run installs and \
                 starts Dovecot (.ci/dovecot start)."
            );
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr(),
                "\n!!! IMAP TEST {test} DID NOT RUN: {why}; start Dovecot with \
                 `eval \"$(.ci/dovecot start)\"` (as root: it installs dovecot-imapd)\n"
            );
            None
        }
    }
}

/// Runs `.ci/dovecot start` when Dovecot is installed, and reads what it prints.
fn start_dovecot() -> Result<Server, String> {
    let installed = std::process::Command::new("sh")
        .args(["-c", "command -v dovecot"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !installed {
        return Err("Dovecot is not installed and IMAP_TEST_SERVER is not set".to_owned());
    }
    let script = crate::common::repo().join(".ci/dovecot");
    let out = std::process::Command::new(script)
        .arg("start")
        .output()
        .map_err(|e| format!(".ci/dovecot: {e}"))?;
    if !out.status.success() {
        return Err(format!(".ci/dovecot start failed: {}", text(&out)));
    }
    let printed = String::from_utf8_lossy(&out.stdout);
    let var = |name: &str| {
        printed
            .lines()
            .find_map(|l| l.strip_prefix(&format!("export {name}=")))
            .map(str::to_owned)
            .ok_or_else(|| format!(".ci/dovecot did not print {name}"))
    };
    Ok(Server {
        tls: var("IMAP_TEST_SERVER")?,
        plain: var("IMAP_TEST_PLAIN")?,
        user: var("IMAP_TEST_USER")?,
        password: var("IMAP_TEST_PASSWORD")?,
        ca: var("IMAP_TEST_CA")?,
    })
}

/// A test's own folders.
struct Folders {
    inbox: String,
    done: String,
    unmatched: String,
}

impl Folders {
    fn of(test: &str) -> Self {
        let base = format!("t{}-{test}", std::process::id());
        Self {
            inbox: base.clone(),
            done: format!("{base}-done"),
            unmatched: format!("{base}-unmatched"),
        }
    }
}

/// Runs an IMAP session over plain IMAP (the test's own view of the mailbox).
fn imap<R>(
    server: &Server,
    work: impl AsyncFnOnce(&mut async_imap::Session<tokio::net::TcpStream>) -> R,
) -> R {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let tcp = tokio::net::TcpStream::connect(&server.plain).await.unwrap();
        let mut client = async_imap::Client::new(tcp);
        client.read_response().await.unwrap();
        let mut session = client
            .login(&server.user, &server.password)
            .await
            .map_err(|(e, _)| e)
            .unwrap();
        let out = work(&mut session).await;
        session.logout().await.unwrap();
        out
    })
}

/// Creates `folder` and delivers `mails` into it.
fn deliver(server: &Server, folder: &str, mails: &[String]) {
    imap(server, async |s| {
        let _ = s.create(folder).await;
        for mail in mails {
            s.append(folder, None, None, mail.replace('\n', "\r\n"))
                .await
                .unwrap();
        }
    });
}

/// How many messages `folder` holds (0 when it does not exist).
fn count(server: &Server, folder: &str) -> u32 {
    imap(server, async |s| {
        s.examine(folder).await.map(|m| m.exists).unwrap_or(0)
    })
}

/// The Message-IDs of `folder`'s messages.
fn ids_in(server: &Server, folder: &str) -> Vec<String> {
    imap(server, async |s| {
        s.examine(folder).await.unwrap();
        let fetched: Vec<_> = s
            .fetch("1:*", "BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)]")
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap();
        let mut ids: Vec<String> = fetched
            .iter()
            .filter_map(|f| f.header())
            .map(|h| String::from_utf8_lossy(h).trim().to_owned())
            .collect();
        ids.sort();
        ids
    })
}

/// Lune's dossier REF-F0 (instructor Marc) at « Déposé », then « Voté en CP ».
const HEADER: &str = "N° dossier;Référence;Dispositif;Bénéficiaire;SIRET;Courriel;Instructeur;\
                      Statut;Date statut;Montant voté;Date d'export\n";

/// An installation reading the test's folders, with one alert sent to Lune
/// (`outbox flush --force`); returns it, its Reply-To and its Message-ID.
fn installed(server: &Server, folders: &Folders) -> (Install, String, String) {
    let install = Install::with_connector(|c| {
        c.replace(
            "\"beneficiary.email\" = \"Courriel\"",
            "\"beneficiary.email\" = \"Courriel\"\n\"instructor.email\" = \"Instructeur\"",
        )
    });
    let (host, port) = server.tls.rsplit_once(':').unwrap();
    install.append_config(&format!(
        "[delivery]\nadmin_email = \"admin@region.example.org\"\nadmin_digest = \"* * * * * *\"\n\
         [delivery.file]\ndir = \"outbox\"\n\
         [inbound]\nhost = \"{host}\"\nport = {port}\nuser = \"{}\"\n\
         password_env = \"IMAP_TEST_PASSWORD\"\nca_file = \"{}\"\nfolder = \"{}\"\n\
         processed_folder = \"{}\"\nunmatched_folder = \"{}\"\npoll_interval = \"5s\"\n\
         address = \"Suivi des aides <{MAILBOX}>\"\n",
        server.user, server.ca, folders.inbox, folders.done, folders.unmatched
    ));
    for (n, step, day) in [(1, "Déposé", "01"), (2, "Voté en CP", "02")] {
        let path = install.root().join(format!("exports/{n}.csv"));
        std::fs::write(
            &path,
            format!(
                "{HEADER}F0;REF-F0;Culture;Association Lune;;lune@example.org;\
                 marc@region.example.org;{step};{day}/10/2026;12 000,00;{day}/10/2026 06:00\n"
            ),
        )
        .unwrap();
        let out = install.run(&["import", "portail", path.to_str().unwrap()]);
        assert!(out.status.success(), "{}", text(&out));
    }
    let out = install
        .cmd(&["outbox", "flush", "--force"])
        .env("IMAP_TEST_PASSWORD", &server.password)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let sent = emails(&install);
    assert_eq!(sent.len(), 1, "one alert to Lune");
    let header = |name: &str| {
        sent[0]
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name}: ")))
            .unwrap_or_else(|| panic!("no {name} in {}", sent[0]))
            .trim()
            .to_owned()
    };
    let reply_to = header("Reply-To");
    let address = reply_to
        .rsplit_once('<')
        .map_or(reply_to.as_str(), |(_, a)| a.trim_end_matches('>'))
        .to_owned();
    assert!(
        address.starts_with("suivi-aides+") && address.ends_with("@region.example.org"),
        "a plus address with the dossier's token: {reply_to}"
    );
    // The layout no longer asks not to answer: the answer is kept.
    let body = mail_parser::MessageParser::default()
        .parse(sent[0].as_bytes())
        .and_then(|m| m.body_text(0).map(|b| b.into_owned()))
        .unwrap();
    assert!(
        body.contains("Vous pouvez répondre à ce message : votre réponse sera jointe au dossier et transmise au service qui l'instruit.")
            && !body.contains("merci de ne pas y répondre"),
        "{body}"
    );
    (install, address, header("Message-ID"))
}

/// The `.eml` files of the outbox, as text.
fn emails(install: &Install) -> Vec<String> {
    let mut files: Vec<_> = std::fs::read_dir(install.root().join("outbox"))
        .map(|d| d.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default();
    files.sort();
    files
        .iter()
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect()
}

/// The daemon (killed when dropped), with the password in its environment and
/// its log read line by line.
fn daemon(
    install: &Install,
    server: &Server,
    hook: bool,
) -> (Daemon, std::sync::mpsc::Receiver<String>) {
    let mut cmd = install.cmd(&["run"]);
    cmd.env("IMAP_TEST_PASSWORD", &server.password)
        .stderr(Stdio::piped())
        .stdout(Stdio::null());
    if hook {
        cmd.env("INBOUND_TEST_PAUSE_BEFORE_MOVE", "1");
    } else {
        cmd.env_remove("INBOUND_TEST_PAUSE_BEFORE_MOVE");
    }
    let mut child = cmd.spawn().unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    (Daemon(child), rx)
}

/// The rows of `exchanges`: kind, direction, author, body, recipient, status,
/// and whether the original is kept.
type ExchangeRow = (
    String,
    String,
    String,
    String,
    Option<String>,
    Option<String>,
    bool,
);

fn exchanges(install: &Install) -> Vec<ExchangeRow> {
    let db = rusqlite::Connection::open(install.db()).unwrap();
    let mut stmt = db
        .prepare(
            "SELECT kind, direction, author, body, recipient, status, original IS NOT NULL
             FROM exchanges ORDER BY id",
        )
        .unwrap();
    stmt.query_map([], |r| {
        Ok((
            r.get(0)?,
            r.get(1)?,
            r.get(2)?,
            r.get(3)?,
            r.get(4)?,
            r.get(5)?,
            r.get(6)?,
        ))
    })
    .unwrap()
    .collect::<Result<_, _>>()
    .unwrap()
}

/// A reply from `from` to `to`, answering `references`, with quoted history.
fn reply(id: &str, from: &str, to: &str, references: &str, body: &str) -> String {
    let refs = if references.is_empty() {
        String::new()
    } else {
        format!("In-Reply-To: {references}\nReferences: {references}\n")
    };
    format!(
        "From: {from}\nTo: {to}\nSubject: Re: Votre dossier REF-F0\nMessage-ID: {id}\n{refs}\
         Date: Mon, 5 Oct 2026 10:00:00 +0200\nMIME-Version: 1.0\n\
         Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n{body}"
    )
}

#[test]
fn replies_are_matched_recorded_without_quotes_and_filed() {
    let Some(server) = server("replies_are_matched_recorded_without_quotes_and_filed") else {
        return;
    };
    let folders = Folders::of("replies");
    let (install, reply_to, alert_id) = installed(&server, &folders);
    let mails = [
        // Matched by its token; Gmail's French quote left out.
        reply(
            "<token-reply@example.org>",
            "Association Lune <Lune@Example.org>",
            &format!("Suivi des aides <{reply_to}>"),
            "",
            "Bonjour,\n\nVoici le RIB demandé.\n\nLune\n\nLe lun. 5 oct. 2026 à 09:00, Suivi des aides \
             <suivi-aides@region.example.org> a écrit :\n> Bonjour,\n> Votre aide est accordée.\n",
        ),
        // To the mailbox itself, from an unknown address: matched by References
        // only; Outlook's quoted header block left out.
        reply(
            "<refs-reply@example.org>",
            "tresorier@example.org",
            MAILBOX,
            &alert_id,
            "Merci, la convention suivra.\n\nJean, trésorier\n\n-----Message d'origine-----\n\
             De : Suivi des aides\nEnvoyé : lundi 5 octobre 2026 09:00\nÀ : Lune\nObjet : Votre dossier\n\n\
             Votre aide est accordée.\n",
        ),
        // An out-of-office reply.
        reply(
            "<oof@example.org>",
            "lune@example.org",
            &reply_to,
            &alert_id,
            "Je suis absente jusqu'au 12 octobre.\n",
        )
        .replace(
            "Subject: Re:",
            "Auto-Submitted: auto-replied\nSubject: Réponse automatique :",
        ),
        // A bounce of the alert.
        format!(
            "From: Mail Delivery System <MAILER-DAEMON@mx.example.org>\nTo: {MAILBOX}\n\
             Subject: Undelivered Mail Returned to Sender\nMessage-ID: <dsn@mx.example.org>\n\
             MIME-Version: 1.0\n\
             Content-Type: multipart/report; report-type=delivery-status; boundary=\"r\"\n\n\
             --r\nContent-Type: text/plain\n\nYour message could not be delivered.\n\
             --r\nContent-Type: message/delivery-status\n\nReporting-MTA: dns; mx.example.org\n\n\
             Final-Recipient: rfc822; lune@example.org\nAction: failed\nStatus: 5.1.1\n\
             Diagnostic-Code: smtp; 550 5.1.1 User unknown\n\
             --r\nContent-Type: text/rfc822-headers\n\nFrom: Alertissimo <alertissimo@localhost>\n\
             To: lune@example.org\nMessage-ID: {alert_id}\nSubject: Votre dossier\n--r--\n"
        ),
        // About nothing Alertissimo sent.
        reply(
            "<stray@example.org>",
            "inconnu@example.org",
            MAILBOX,
            "",
            "Bonjour, comment demander une aide ?\n",
        )
        .replace("Re: Votre dossier REF-F0", "Question sans dossier"),
    ];
    deliver(&server, &folders.inbox, &mails);
    assert_eq!(count(&server, &folders.inbox), 5);
    let (mut child, _log) = daemon(&install, &server, false);
    wait_for("the mailbox read", Duration::from_secs(60), || {
        count(&server, &folders.inbox) == 0
    });
    assert_eq!(count(&server, &folders.done), 4);
    assert_eq!(
        ids_in(&server, &folders.unmatched),
        vec!["Message-ID: <stray@example.org>"]
    );
    // The alert, the two forwardings to the instructor, the digest.
    wait_for(
        "the forwardings and the administrators' digest",
        Duration::from_secs(30),
        || emails(&install).len() >= 4,
    );
    assert!(terminate(&mut child.0).success());

    let lune = "lune@example.org".to_owned();
    let marc = Some("marc@region.example.org".to_owned());
    let sent = Some("sent".to_owned());
    assert_eq!(
        exchanges(&install),
        vec![
            (
                "message".into(),
                "beneficiary".into(),
                lune.clone(),
                "Bonjour,\n\nVoici le RIB demandé.\n\nLune".into(),
                marc.clone(),
                sent.clone(),
                true
            ),
            (
                "message".into(),
                "beneficiary".into(),
                "tresorier@example.org".into(),
                "Merci, la convention suivra.\n\nJean, trésorier".into(),
                marc,
                sent,
                true
            ),
            (
                "auto_reply".into(),
                "beneficiary".into(),
                lune,
                "Je suis absente jusqu'au 12 octobre.".into(),
                None,
                None,
                true
            ),
            (
                "bounce".into(),
                "beneficiary".into(),
                "mailer-daemon@mx.example.org".into(),
                "Message non remis : smtp; 550 5.1.1 User unknown".into(),
                None,
                None,
                true
            ),
        ]
    );
    // Forwarded to the instructor without the quote, answerable to the thread.
    let forwarded: Vec<String> = emails(&install)
        .into_iter()
        .filter(|m| m.contains("To: marc@region.example.org"))
        .collect();
    assert_eq!(forwarded.len(), 2);
    for mail in &forwarded {
        let parsed = mail_parser::MessageParser::default()
            .parse(mail.as_bytes())
            .unwrap();
        let reply = parsed.reply_to().and_then(|a| a.first()).unwrap();
        assert_eq!(reply.address(), Some(reply_to.as_str()));
        let body = parsed.body_text(0).unwrap();
        assert!(!body.contains("Votre aide est accordée"), "{body}");
        assert!(
            body.contains("votre réponse sera jointe au dossier et transmise à son bénéficiaire"),
            "{body}"
        );
    }
    assert!(
        forwarded.iter().any(|m| {
            let parsed = mail_parser::MessageParser::default()
                .parse(m.as_bytes())
                .unwrap();
            parsed
                .body_text(0)
                .unwrap()
                .contains("Voici le RIB demandé.")
        }),
        "{forwarded:?}"
    );
    // The bounce failed the alert, and the digest tells it with the stray mail.
    let out = install.run(&["outbox", "list", "--json"]);
    let alerts: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(alerts[0]["status"], "failed", "{alerts}");
    assert!(
        alerts[0]["reason"]
            .as_str()
            .unwrap()
            .contains("550 5.1.1 User unknown"),
        "{alerts}"
    );
    let digest = emails(&install)
        .into_iter()
        .find(|m| m.contains("To: admin@region.example.org"))
        .expect("the administrators' digest");
    let parsed = mail_parser::MessageParser::default()
        .parse(digest.as_bytes())
        .unwrap();
    let subject = parsed.subject().unwrap();
    assert!(
        subject.contains("1 alerte en échec") && subject.contains("1 réponse non rattachée"),
        "{subject}"
    );
    let body = parsed.body_text(0).unwrap();
    assert!(
        body.contains("rattachés à aucun dossier (1)")
            && body.contains("de inconnu@example.org : « Question sans dossier »"),
        "{body}"
    );
}

#[test]
fn a_daemon_killed_between_recording_and_moving_records_once() {
    let Some(server) = server("a_daemon_killed_between_recording_and_moving_records_once") else {
        return;
    };
    let folders = Folders::of("crash");
    let (install, reply_to, _) = installed(&server, &folders);
    deliver(
        &server,
        &folders.inbox,
        &[reply(
            "<once@example.org>",
            "lune@example.org",
            &reply_to,
            "",
            "Une seule fois, s'il vous plaît.\n",
        )],
    );
    // Recorded, then stopped before the move (the test hook), and killed there.
    let (mut child, log) = daemon(&install, &server, true);
    let start = std::time::Instant::now();
    loop {
        let line = log
            .recv_timeout(Duration::from_secs(60).saturating_sub(start.elapsed()))
            .expect("the daemon reaches the test hook");
        if line.contains("INBOUND_TEST_PAUSE_BEFORE_MOVE") {
            break;
        }
    }
    child.0.kill().unwrap(); // SIGKILL
    child.0.wait().unwrap();
    assert_eq!(exchanges(&install).len(), 1, "recorded before the kill");
    assert_eq!(count(&server, &folders.inbox), 1, "not moved");
    // Read again by the next daemon: recorded once, and moved.
    let (mut child, _log) = daemon(&install, &server, false);
    wait_for("the message moved", Duration::from_secs(60), || {
        count(&server, &folders.done) == 1
    });
    assert!(terminate(&mut child.0).success());
    assert_eq!(count(&server, &folders.inbox), 0);
    let recorded = exchanges(&install);
    assert_eq!(recorded.len(), 1, "{recorded:?}");
    assert_eq!(recorded[0].3, "Une seule fois, s'il vous plaît.");
}

#[test]
fn a_refused_login_is_shown_and_the_daemon_goes_on() {
    let Some(mut server) = server("a_refused_login_is_shown_and_the_daemon_goes_on") else {
        return;
    };
    let folders = Folders::of("refused");
    let (install, _, _) = installed(&server, &folders);
    let port = install.serve_metrics();
    server.password = "not-the-password".to_owned();
    let (mut child, log) = daemon(&install, &server, false);
    let start = std::time::Instant::now();
    loop {
        let line = log
            .recv_timeout(Duration::from_secs(60).saturating_sub(start.elapsed()))
            .expect("the failure is logged");
        if line.contains("Cannot read the replies' mailbox") {
            assert!(line.contains("refused the login"), "{line}");
            break;
        }
    }
    wait_for("the failure in /metrics", Duration::from_secs(30), || {
        crate::front_office::http(port, "GET", "/metrics", "", "")
            .body
            .contains("alertissimo_inbound_failures 1")
    });
    let out = install.run(&["outbox", "list"]);
    assert!(
        text(&out).contains("replies' mailbox ([inbound]): CANNOT BE READ"),
        "{}",
        text(&out)
    );
    assert!(child.0.try_wait().unwrap().is_none(), "the daemon goes on");
    assert!(terminate(&mut child.0).success());
}

#[test]
fn check_names_what_inbound_needs_from_the_environment() {
    let install = Install::new();
    std::fs::create_dir_all(install.root().join("state")).unwrap();
    install.append_config(
        "[inbound]\nhost = \"imap.region.example.org\"\nuser = \"suivi\"\n\
         password_env = \"INBOUND_TEST_NO_SUCH_VARIABLE\"\nca_file = \"no-such-ca.pem\"\n\
         address = \"suivi-aides@region.example.org\"\n",
    );
    let out = install
        .cmd(&["check"])
        .env_remove("INBOUND_TEST_NO_SUCH_VARIABLE")
        .output()
        .unwrap();
    let said = text(&out);
    assert!(!out.status.success(), "{said}");
    for needle in [
        "inbound.password_env: the environment variable INBOUND_TEST_NO_SUCH_VARIABLE is not set",
        "inbound.ca_file",
    ] {
        assert!(said.contains(needle), "{needle:?} in {said}");
    }
    // A wrong setting is named with its key.
    let config = std::fs::read_to_string(install.config())
        .unwrap()
        .replace("address = \"suivi-aides@", "address = \"suivi-aides+x@");
    std::fs::write(install.config(), config).unwrap();
    let said = text(&install.run(&["check"]));
    assert!(said.contains("key `inbound.address`"), "{said}");
}
