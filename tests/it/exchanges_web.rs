//! A beneficiary writes to the instructing service from the front office
//! (issue 21, items 1, 4 and 5), through the binary: the message is on the
//! dossier's page at once, its e-mail reaches the dossier's instructor (the
//! `.eml` outbox, then the in-process SMTP relay) with the reference, the text
//! and the staff view's link, or `[web] service_email` when the dossier names
//! no instructor; CSRF, another beneficiary's dossier, the length and the rate
//! limits; the service's usual answer delay; the service's reply forwarded to
//! the beneficiary; `dossier REF` lists the exchanges, `backup` keeps them and
//! `purge` removes those of purged dossiers.

use std::time::Duration;

use crate::common::{Install, text};
use crate::daemon::wait_for;
use crate::dossier_page::{dossier_links, sign_in};
use crate::front_office::{Answer, http};
use crate::smtp_server::{Mode, SmtpServer};

/// Lune's three dossiers (REF-F0 with an instructor, REF-F1 without, REF-F2
/// refused long ago), Soleil's one.
const EXPORT: &str = "N° dossier;Référence;Dispositif;Bénéficiaire;SIRET;Courriel;Instructeur;Statut;Date statut;Montant voté;Date d'export\n\
F0;REF-F0;Culture;Association Lune;;lune@example.org;anne.instructrice@region.example.org;Instruction en cours;01/10/2026;12 000,00;01/10/2026 06:00\n\
F1;REF-F1;Sport;Association Lune;;lune@example.org;;Voté en CP;02/10/2026;3 500,50;01/10/2026 06:00\n\
F2;REF-F2;Culture;Association Lune;;lune@example.org;;Refusé;01/02/2020;1 000,00;01/10/2026 06:00\n\
F3;REF-F3;Culture;Association Soleil;;soleil@example.org;;Déposé;01/10/2026;500,00;01/10/2026 06:00\n";

/// The instructing service's shared mailbox, `[web] service_email`.
const SERVICE: &str = "instruction-aides@region.example.org";

/// An installation whose connector maps the instructor's address, the web
/// face on a free port, `delivery` its delivery (`[delivery.file]` or
/// `[smtp]`), and [`EXPORT`] imported.
fn install(delivery: &str, extra: &str) -> (Install, u16) {
    let install = Install::with_connector(|c| {
        c.replace(
            "\"beneficiary.email\" = \"Courriel\"",
            "\"beneficiary.email\" = \"Courriel\"\n\"instructor.email\" = \"Instructeur\"",
        )
        .replace(
            "\"Voté en CP\" = \"accorde\"",
            "\"Voté en CP\" = \"accorde\"\n\"Refusé\" = \"refuse\"",
        )
    });
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    install.append_config(&format!(
        "[web]\nlisten = \"127.0.0.1:{port}\"\npublic_url = \"http://127.0.0.1:{port}\"\n\
         service_email = \"{SERVICE}\"\n{extra}\n{delivery}\n"
    ));
    let path = install.root().join("exports").join("1.csv");
    std::fs::write(&path, EXPORT).unwrap();
    let out = install.run(&["import", "portail", path.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    (install, port)
}

/// Quoted-printable undone (soft breaks, `=XX`), as UTF-8.
fn unquote(raw: &str) -> String {
    crate::unsubscribe::quoted_printable(raw)
}

/// The subject of a raw message, its encoded words (RFC 2047) decoded.
fn subject(raw: &str) -> String {
    use base64::Engine;
    let line = raw
        .split("\r\n\r\n")
        .next()
        .unwrap()
        .replace("\r\n ", " ")
        .lines()
        .find_map(|l| l.strip_prefix("Subject: ").map(str::to_owned))
        .expect("a subject");
    // Encoded words decoded; the space between two of them goes (RFC 2047).
    let mut out = String::new();
    let mut after_encoded = false;
    for word in line.split(' ') {
        let lower = word.to_lowercase();
        let inner = word
            .get(10..word.len().saturating_sub(2))
            .unwrap_or_default();
        let decoded = if lower.starts_with("=?utf-8?b?") && lower.ends_with("?=") {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(inner)
                .unwrap();
            Some(String::from_utf8(bytes).unwrap())
        } else if lower.starts_with("=?utf-8?q?") && lower.ends_with("?=") {
            Some(unquote(&inner.replace('_', " ")))
        } else {
            None
        };
        let joined = after_encoded && decoded.is_some();
        if !(out.is_empty() || joined) {
            out.push(' ');
        }
        after_encoded = decoded.is_some();
        out.push_str(&decoded.unwrap_or_else(|| word.to_owned()));
    }
    out
}

/// The messages of the `.eml` outbox to `to`, each its subject and its text.
fn mails_to(install: &Install, to: &str) -> Vec<(String, String)> {
    let Ok(entries) = std::fs::read_dir(install.root().join("outbox")) else {
        return Vec::new();
    };
    let mut files: Vec<_> = entries.map(|e| e.unwrap().path()).collect();
    files.sort();
    files
        .iter()
        .filter(|p| p.extension().is_some_and(|x| x == "eml"))
        .map(|p| std::fs::read_to_string(p).unwrap())
        .filter(|m| m.contains(&format!("To: {to}")))
        .map(|m| (subject(&m), unquote(&m)))
        .collect()
}

/// `dossier`'s page of `session`, among the session's list, by its reference.
fn page_of(port: u16, session: &str, reference: &str) -> (String, Answer) {
    let list = http(port, "GET", "/dossiers", session, "");
    dossier_links(&list)
        .into_iter()
        .map(|link| {
            let page = http(port, "GET", &link, session, "");
            (link, page)
        })
        .find(|(_, page)| page.body.contains(&format!("Dossier {reference}")))
        .expect("the dossier's page")
}

/// Posts `text` to the message form of the page at `link`.
fn write(port: u16, session: &str, link: &str, csrf: &str, text: &str) -> Answer {
    let body: String = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("csrf", csrf)
        .append_pair("texte", text)
        .finish();
    http(port, "POST", &format!("{link}/messages"), session, &body)
}

#[test]
fn issue_21_a_beneficiary_writes_and_the_instructor_gets_it() {
    let (install, port) = install("[delivery.file]\ndir = \"outbox\"", "");
    let mut daemon = install.daemon();
    wait_for("the web face", Duration::from_secs(30), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    let lune = sign_in(&install, port, "lune@example.org");
    let soleil = sign_in(&install, port, "soleil@example.org");
    let (f0, page) = page_of(port, &lune, "REF-F0");
    assert!(
        page.body.contains("name=\"texte\"")
            && page
                .body
                .contains("Vous n'avez pas encore écrit au service")
            && page
                .body
                .contains("Votre message est transmis par courriel au service"),
        "{}",
        page.body
    );
    let csrf = page.csrf();

    // No CSRF field, or another session's: refused; Soleil's dossier: 404.
    let bare = http(
        port,
        "POST",
        &format!("{f0}/messages"),
        &lune,
        "texte=Bonjour",
    );
    assert_eq!(bare.status, 403, "{}", bare.body);
    let (f3, soleil_page) = page_of(port, &soleil, "REF-F3");
    let crossed = write(port, &lune, &f0, &soleil_page.csrf(), "Bonjour");
    assert_eq!(crossed.status, 403);
    let foreign = write(port, &lune, &f3, &csrf, "Bonjour");
    assert_eq!(foreign.status, 404, "{}", foreign.body);
    assert!(!foreign.body.contains("REF-F3"));
    let nobody = http(port, "POST", &format!("{f0}/messages"), "", "texte=x");
    assert_eq!(nobody.status, 303);

    // Empty, then too long: the page again, the text kept, nothing recorded.
    let empty = write(port, &lune, &f0, &csrf, "  \r\n ");
    assert_eq!(empty.status, 422);
    assert!(
        empty.body.contains("Votre message est vide"),
        "{}",
        empty.body
    );
    assert!(empty.body.contains("aria-invalid=\"true\""));
    let long = format!("Debut {}", "x".repeat(5_000));
    let refused = write(port, &lune, &f0, &csrf, &long);
    assert_eq!(refused.status, 422);
    assert!(
        refused.body.contains("5\u{a0}006 caractères"),
        "{}",
        refused.body
    );
    assert!(refused.body.contains(&long), "the text is kept");

    // A message: 303 back to the page, which shows it as sent.
    let question = "Bonjour,\nou en est le versement de notre aide ?\nMerci, Lune";
    let sent = write(port, &lune, &f0, &csrf, question);
    assert_eq!(sent.status, 303, "{}", sent.body);
    assert_eq!(
        sent.header("location").as_deref(),
        Some(format!("{f0}#echanges").as_str())
    );
    // Sent twice (a double click): recorded once.
    assert_eq!(write(port, &lune, &f0, &csrf, question).status, 303);
    let after = http(port, "GET", &f0, &lune, "");
    assert_eq!(after.body.matches("Votre message, envoyé le").count(), 1);
    for needle in [
        "Votre message, envoyé le",
        "ou en est le versement de notre aide ?",
        "Le service vous répondra dès que possible",
    ] {
        assert!(after.body.contains(needle), "{needle}: {}", after.body);
    }
    assert!(
        !after.body.contains("habituellement sous"),
        "too few answers"
    );

    // The instructor's e-mail: the reference, the state, the text, the link.
    wait_for("the instructor's e-mail", Duration::from_secs(30), || {
        !mails_to(&install, "anne.instructrice@region.example.org").is_empty()
    });
    let (subject, mail) = &mails_to(&install, "anne.instructrice@region.example.org")[0];
    assert_eq!(subject, "Dossier REF-F0 : message du bénéficiaire");
    let staff = format!("http://127.0.0.1:{port}/instruction/dossiers/{}", &f0[10..]);
    for needle in [
        "ou en est le versement de notre aide ?",
        "étape « En cours d'instruction » depuis le 1er octobre 2026",
        "lune@example.org",
        staff.as_str(),
    ] {
        assert!(mail.contains(needle), "{needle}: {mail}");
    }
    assert!(!mail.contains("desabonnement"), "no unsubscribe footer");
    wait_for("the page says it left", Duration::from_secs(30), || {
        http(port, "GET", &f0, &lune, "")
            .body
            .contains("transmis au service")
    });

    // No instructor on REF-F1: the service's mailbox.
    let (f1, page) = page_of(port, &lune, "REF-F1");
    assert_eq!(
        write(port, &lune, &f1, &page.csrf(), "Question sur F1").status,
        303
    );
    wait_for("the service's e-mail", Duration::from_secs(30), || {
        !mails_to(&install, SERVICE).is_empty()
    });
    assert!(mails_to(&install, SERVICE)[0].1.contains("Question sur F1"));

    // Ten messages an hour from one address, over all its dossiers.
    for i in 2..10 {
        assert_eq!(
            write(port, &lune, &f1, &csrf, &format!("Message {i}")).status,
            303
        );
    }
    let limited = write(port, &lune, &f0, &csrf, "Onzieme message");
    assert_eq!(limited.status, 429, "{}", limited.body);
    assert!(limited.body.contains("dans une heure"), "{}", limited.body);
    assert!(limited.body.contains("Onzieme message"), "the text is kept");

    // `dossier REF` lists it, with its forwarding.
    let out = install.run(&["dossier", "REF-F0", "--json"]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let exchanges = json[0]["exchanges"].as_array().unwrap();
    assert_eq!(exchanges.len(), 1, "{json}");
    assert_eq!(exchanges[0]["direction"], "beneficiary");
    assert_eq!(exchanges[0]["channel"], "web");
    assert_eq!(exchanges[0]["kind"], "message");
    assert_eq!(exchanges[0]["author"], "lune@example.org");
    assert_eq!(
        exchanges[0]["recipient"],
        "anne.instructrice@region.example.org"
    );
    assert_eq!(exchanges[0]["status"], "sent");
    let out = text(&install.run(&["dossier", "REF-F0"]));
    assert!(
        out.contains("bénéficiaire → service, espace en ligne, message, de lune@example.org : transmis à anne.instructrice@region.example.org"),
        "{out}"
    );
    let exit = crate::common::terminate(&mut daemon.0);
    assert!(exit.success(), "{exit}");
}

/// Ten questions answered in two business days are in the history: a new
/// question reads "sous 2 jours ouvrés". A reply of the service, due in the
/// exchanges' outbox, reaches the beneficiary through the SMTP relay and shows
/// on the page.
#[test]
fn issue_21_the_usual_answer_delay_and_a_reply_to_the_beneficiary() {
    let server = SmtpServer::start(Mode::Accept);
    let (install, port) = install(
        &format!(
            "[delivery]\ntransport = \"smtp\"\n[smtp]\nhost = \"127.0.0.1\"\nport = {}\n\
             tls = \"none\"\ntimeout = \"5s\"\nfrom = \"Région Test <aides@region.example.org>\"\n",
            server.port
        ),
        "",
    );
    {
        let sql = install.sql();
        let f3: i64 = sql
            .query_row("SELECT id FROM dossiers WHERE source_id = 'F3'", [], |r| {
                r.get(0)
            })
            .unwrap();
        // Mondays of 2026 at 10:00, answered on the Wednesday.
        for week in 0..10 {
            let day = 12 + 7 * week;
            let (asked, answered) = (
                chrono::NaiveDate::from_yo_opt(2026, day).unwrap(),
                chrono::NaiveDate::from_yo_opt(2026, day + 2).unwrap(),
            );
            for (at, side) in [(asked, "beneficiary"), (answered, "service")] {
                sql.execute(
                    "INSERT INTO exchanges (dossier_id, at, direction, channel, kind, author, body)
                     VALUES (?1, ?2, ?3, 'web', 'message', 'x@example.org', 'x')",
                    rusqlite::params![f3, format!("{at}T09:00:00Z"), side],
                )
                .unwrap();
            }
        }
    }
    let mut daemon = install.daemon();
    wait_for("the web face", Duration::from_secs(30), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    // Sign in through the relay: the link is in the message it received.
    assert_eq!(
        crate::front_office::ask(port, "lune@example.org").status,
        200
    );
    wait_for("the sign-in message", Duration::from_secs(30), || {
        !server.received().is_empty()
    });
    let link = crate::front_office::link_of(&unquote(&server.received()[0].data));
    let opened = http(port, "GET", &link, "", "");
    let lune = format!("session={}", opened.cookie("session").unwrap());
    let (f0, page) = page_of(port, &lune, "REF-F0");
    assert_eq!(
        write(port, &lune, &f0, &page.csrf(), "Une question").status,
        303
    );
    let after = http(port, "GET", &f0, &lune, "");
    assert!(
        after
            .body
            .contains("Le service répond habituellement sous 2 jours ouvrés."),
        "{}",
        after.body
    );
    wait_for("the instructor's e-mail", Duration::from_secs(30), || {
        server
            .received()
            .iter()
            .any(|m| m.to == ["anne.instructrice@region.example.org"])
    });
    let mail = server
        .received()
        .into_iter()
        .find(|m| m.to == ["anne.instructrice@region.example.org"])
        .unwrap();
    assert_eq!(
        subject(&mail.data),
        "Dossier REF-F0 : message du bénéficiaire"
    );
    assert!(unquote(&mail.data).contains("Une question"));
    assert!(mail.header("List-Unsubscribe").is_none());

    // The service answers (the staff view records it so): forwarded to Lune.
    {
        let sql = install.sql();
        sql.execute(
            "INSERT INTO exchanges (dossier_id, at, direction, channel, kind, author, body,
                                    recipient, status, due_at)
             SELECT id, strftime('%Y-%m-%dT%H:%M:%SZ', 'now'), 'service', 'web', 'message',
                    'anne.instructrice@region.example.org', 'Le versement part demain.',
                    'lune@example.org', 'pending', strftime('%Y-%m-%dT%H:%M:%SZ', 'now')
             FROM dossiers WHERE source_id = 'F0'",
            [],
        )
        .unwrap();
    }
    // Asked outside the daemon: a flush over the control socket sends it.
    let out = install.run(&["outbox", "flush"]);
    assert!(out.status.success(), "{}", text(&out));
    wait_for("the reply's e-mail", Duration::from_secs(60), || {
        server
            .received()
            .iter()
            .any(|m| m.to == ["lune@example.org"] && m.data.contains("demain"))
    });
    let reply = server
        .received()
        .into_iter()
        .find(|m| m.to == ["lune@example.org"] && m.data.contains("demain"))
        .unwrap();
    assert_eq!(
        subject(&reply.data),
        "Dossier REF-F0 : réponse du service instructeur"
    );
    assert!(unquote(&reply.data).contains(&format!("http://127.0.0.1:{port}{f0}")));
    let page = http(port, "GET", &f0, &lune, "");
    assert!(
        page.body.contains("Réponse du service, le")
            && page.body.contains("Le versement part demain."),
        "{}",
        page.body
    );
    assert!(
        !page.body.contains("habituellement sous"),
        "answered: no delay"
    );
    let exit = crate::common::terminate(&mut daemon.0);
    assert!(exit.success(), "{exit}");
}

/// `backup` keeps the exchanges; `purge` removes those of purged dossiers.
#[test]
fn issue_21_backup_keeps_the_exchanges_and_purge_removes_them() {
    let (install, port) = install("[delivery.file]\ndir = \"outbox\"", "");
    install.append_config("[retention]\npersonal_data = \"30d\"\n");
    let mut daemon = install.daemon();
    wait_for("the web face", Duration::from_secs(30), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    let lune = sign_in(&install, port, "lune@example.org");
    for reference in ["REF-F0", "REF-F2"] {
        let (link, page) = page_of(port, &lune, reference);
        let sent = write(
            port,
            &lune,
            &link,
            &page.csrf(),
            &format!("Sur {reference}"),
        );
        assert_eq!(sent.status, 303);
    }
    let exit = crate::common::terminate(&mut daemon.0);
    assert!(exit.success(), "{exit}");
    let count = |db: &std::path::Path, reference: &str| -> i64 {
        rusqlite::Connection::open(db)
            .unwrap()
            .query_row(
                "SELECT count(*) FROM exchanges x JOIN dossiers d ON d.id = x.dossier_id
                 WHERE d.reference = ?1",
                [reference],
                |r| r.get(0),
            )
            .unwrap()
    };
    let copy = install.root().join("copie.db");
    let out = install.run(&["backup", copy.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!((count(&copy, "REF-F0"), count(&copy, "REF-F2")), (1, 1));

    let out = install.run(&["purge", "--json"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        (
            count(&install.db(), "REF-F0"),
            count(&install.db(), "REF-F2")
        ),
        (1, 0)
    );
}

/// `check` warns while the front office is served without `[web]
/// service_email`, and refuses one that is not an address.
#[test]
fn issue_21_check_warns_without_a_service_address() {
    let check = |web: &str| {
        let install = Install::with_connector(|c| c.to_owned());
        install.append_config(&format!(
            "[web]\nlisten = \"127.0.0.1:1\"\npublic_url = \"http://127.0.0.1:1\"\n{web}\n"
        ));
        install.run(&["check"])
    };
    let warning = "[web] service_email is empty";
    let without = check("");
    assert!(without.status.success(), "{}", text(&without));
    assert!(text(&without).contains(warning), "{}", text(&without));
    let with = check(&format!("service_email = \"{SERVICE}\""));
    assert!(with.status.success(), "{}", text(&with));
    assert!(!text(&with).contains(warning), "{}", text(&with));
    let wrong = check("service_email = \"instruction\"");
    assert_eq!(wrong.status.code(), Some(78), "{}", text(&wrong));
    assert!(
        text(&wrong).contains("key `web.service_email`: 'instruction' is not one e-mail address"),
        "{}",
        text(&wrong)
    );
}

/// The forwarding templates are the front office's: `check` refuses a rules
/// folder without them, or with one that fails on a sample dossier, naming
/// the file.
#[test]
fn issue_21_check_renders_the_exchange_templates() {
    let install = Install::with_connector(|c| c.to_owned());
    let rules = install.root().join("rules");
    let copy = |from: &std::path::Path, to: &std::path::Path| {
        std::fs::create_dir_all(to).unwrap();
        for entry in std::fs::read_dir(from).unwrap() {
            let path = entry.unwrap().path();
            if path.is_file() {
                std::fs::copy(&path, to.join(path.file_name().unwrap())).unwrap();
            }
        }
    };
    let repo = crate::common::repo().join("rules");
    copy(&repo, &rules);
    copy(&repo.join("templates"), &rules.join("templates"));
    std::fs::remove_file(rules.join("templates/_echange_beneficiaire.jinja")).unwrap();
    let service = rules.join("templates/_echange_service.jinja");
    let template = std::fs::read_to_string(&service).unwrap();
    std::fs::write(
        &service,
        template.replace("{{ exchange.text }}", "{{ exchange.texte }}"),
    )
    .unwrap();
    let config = install.root().join("config.toml");
    let settings: String = std::fs::read_to_string(&config)
        .unwrap()
        .lines()
        .map(|l| {
            if l.starts_with("rules_dir") {
                "rules_dir = \"rules\"\n".to_owned()
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    std::fs::write(&config, settings).unwrap();
    install.append_config(
        "[web]\nlisten = \"127.0.0.1:1\"\npublic_url = \"http://127.0.0.1:1\"\n\
         service_email = \"instruction@region.example.org\"\n",
    );
    let out = install.run(&["check"]);
    assert_eq!(out.status.code(), Some(78), "{}", text(&out));
    assert!(
        text(&out).contains("_echange_beneficiaire.jinja: the front office ([web] listen and public_url are set) sends the service's replies to beneficiaries with this template, which is missing"),
        "{}",
        text(&out)
    );
    // The samples are rendered once nothing is missing.
    std::fs::copy(
        repo.join("templates/_echange_beneficiaire.jinja"),
        rules.join("templates/_echange_beneficiaire.jinja"),
    )
    .unwrap();
    let out = install.run(&["check"]);
    assert_eq!(out.status.code(), Some(78), "{}", text(&out));
    assert!(
        text(&out)
            .contains("_echange_service.jinja: fails to render for a complete sample dossier"),
        "{}",
        text(&out)
    );
    std::fs::copy(repo.join("templates/_echange_service.jinja"), &service).unwrap();
    let out = install.run(&["check"]);
    assert!(out.status.success(), "{}", text(&out));
}
