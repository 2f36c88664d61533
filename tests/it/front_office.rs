//! The front office through the binary (issue 20): the daemon with the `.eml`
//! transport as the mailbox and `[web] listen` on a free port of 127.0.0.1.
//! The whole sign-in (ask, read the link in the message, follow it, see the
//! dossiers); the same answer for a known and an unknown address; a link used
//! twice, expired or forged; CSRF; the security headers; the rate limit per
//! address; one beneficiary never sees another's dossiers; the audit in
//! `dossier REF`; the purge of sessions and of purged dossiers' audit.

use std::path::PathBuf;
use std::time::Duration;

use crate::common::{Install, text};
use crate::daemon::wait_for;

/// Three dossiers of Lune (one refused long ago), one of Soleil.
pub(crate) const EXPORT: &str = "N° dossier;Référence;Dispositif;Bénéficiaire;SIRET;Courriel;Statut;Date statut;Montant voté;Date d'export\n\
F0;REF-F0;Culture;Association Lune;;Lune@Example.org;Instruction en cours;01/10/2026;12 000,00;01/10/2026 06:00\n\
F1;REF-F1;Sport;Association Lune;;lune@example.org;Voté en CP;02/10/2026;3 500,50;01/10/2026 06:00\n\
F2;REF-F2;Culture;Association Lune;;LUNE@example.org;Refusé;01/02/2020;1 000,00;01/10/2026 06:00\n\
F3;REF-F3;Culture;Association Soleil;;soleil@example.org;Déposé;01/10/2026;500,00;01/10/2026 06:00\n";

/// An installation with the web face on a free port, `extra` appended to its
/// `[web]` section, and [`EXPORT`] imported; returns it and the port.
pub(crate) fn install(extra: &str) -> (Install, u16) {
    let install = Install::with_connector(|c| {
        c.replace(
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
        "[web]\nlisten = \"127.0.0.1:{port}\"\npublic_url = \"http://127.0.0.1:{port}\"\n{extra}\n\
         [delivery.file]\ndir = \"outbox\"\n"
    ));
    let path = install.root().join("exports").join("1.csv");
    std::fs::write(&path, EXPORT).unwrap();
    let out = install.run(&["import", "portail", path.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    (install, port)
}

/// An answer: status, head (lowercase names kept as sent), body.
pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) head: String,
    pub(crate) body: String,
}

impl Answer {
    pub(crate) fn header(&self, name: &str) -> Option<String> {
        self.head.split("\r\n").find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
        })
    }

    /// The value of cookie `name` set by this answer.
    pub(crate) fn cookie(&self, name: &str) -> Option<String> {
        self.head.split("\r\n").find_map(|line| {
            let (n, v) = line.split_once(':')?;
            let v = v.trim().strip_prefix(&format!("{name}="))?;
            n.eq_ignore_ascii_case("set-cookie")
                .then(|| v.split(';').next().unwrap_or_default().to_owned())
        })
    }

    /// The value of the hidden `csrf` field of the page.
    pub(crate) fn csrf(&self) -> String {
        let at = self
            .body
            .find("name=\"csrf\" value=\"")
            .expect("a csrf field");
        let rest = &self.body[at + "name=\"csrf\" value=\"".len()..];
        rest[..rest.find('"').unwrap()].to_owned()
    }
}

/// One HTTP/1.1 request to 127.0.0.1:`port`, with `cookies`.
pub(crate) fn http(port: u16, method: &str, path: &str, cookies: &str, body: &str) -> Answer {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let cookie = if cookies.is_empty() {
        String::new()
    } else {
        format!("Cookie: {cookies}\r\n")
    };
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n{cookie}\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    Answer {
        status: head.split(' ').nth(1).unwrap().parse().unwrap(),
        head: head.to_owned(),
        body: body.to_owned(),
    }
}

/// Asks for a sign-in link for `email` as a browser does (the form, then its
/// POST); returns the answer.
pub(crate) fn ask(port: u16, email: &str) -> Answer {
    let form = http(port, "GET", "/", "", "");
    assert_eq!(form.status, 200, "{}", form.body);
    let nonce = form.cookie("csrf").expect("the form's cookie");
    http(
        port,
        "POST",
        "/connexion",
        &format!("csrf={nonce}"),
        &format!("csrf={}&email={}", form.csrf(), email.replace('@', "%40")),
    )
}

/// The sign-in messages delivered so far, their text with quoted-printable undone.
pub(crate) fn sign_in_messages(install: &Install) -> Vec<String> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(install.root().join("outbox"))
        .map(|entries| entries.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default();
    files.retain(|p| p.extension().is_some_and(|x| x == "eml"));
    // Oldest first: the last one to an address is its newest link.
    files.sort_by_key(|p| (p.metadata().and_then(|m| m.modified()).ok(), p.clone()));
    files
        .iter()
        .map(|p| {
            std::fs::read_to_string(p)
                .unwrap()
                .replace("=\r\n", "")
                .replace("=3D", "=")
        })
        .filter(|m| m.contains("/connexion/"))
        .collect()
}

/// The path of the sign-in link in a message.
pub(crate) fn link_of(message: &str) -> String {
    let at = message.find("/connexion/").unwrap();
    message[at..at + "/connexion/".len() + 48].to_owned()
}

#[test]
fn issue_20_a_beneficiary_signs_in_and_sees_their_dossiers_only() {
    let (install, port) = install("");
    let mut daemon = install.daemon();
    wait_for("the web face", Duration::from_secs(30), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    let home = http(port, "GET", "/", "", "");
    assert_eq!(home.status, 200);
    for needle in [
        "lang=\"fr\"",
        "name=\"email\"",
        "<label for=\"email\"",
        "type=\"hidden\" name=\"csrf\"",
    ] {
        assert!(home.body.contains(needle), "{needle}: {}", home.body);
    }
    let head = home.head.to_lowercase();
    for needle in [
        "x-content-type-options: nosniff",
        "referrer-policy: no-referrer",
        "content-security-policy: default-src 'none'",
        "frame-ancestors 'none'",
        "set-cookie: csrf=",
        "httponly; samesite=lax",
    ] {
        assert!(head.contains(needle), "missing {needle:?} in:\n{head}");
    }
    assert!(!head.contains("secure"), "http: no Secure cookie\n{head}");

    // Known (in another case) and unknown addresses: the same page.
    let known = ask(port, "LUNE@example.org");
    let unknown = ask(port, "personne@example.org");
    assert_eq!((known.status, unknown.status), (200, 200));
    assert_eq!(known.body, unknown.body);
    assert!(
        known
            .body
            .contains("Si cette adresse figure dans un de vos dossiers"),
        "{}",
        known.body
    );
    wait_for("the sign-in message", Duration::from_secs(30), || {
        !sign_in_messages(&install).is_empty()
    });
    std::thread::sleep(Duration::from_millis(500));
    let messages = sign_in_messages(&install);
    assert_eq!(messages.len(), 1, "nothing for an unknown address");
    assert!(
        messages[0].contains("To: lune@example.org"),
        "{}",
        messages[0]
    );
    let link = link_of(&messages[0]);

    // A forged token, then the link, then the link again.
    let forged = http(
        port,
        "GET",
        &format!("/connexion/{}", "a".repeat(48)),
        "",
        "",
    );
    assert_eq!(forged.status, 404);
    assert!(
        forged.body.contains("Demander un nouveau lien"),
        "{}",
        forged.body
    );
    let opened = http(port, "GET", &link, "", "");
    assert_eq!(opened.status, 303, "{}", opened.body);
    assert_eq!(opened.header("location").as_deref(), Some("/dossiers"));
    let session_header = opened.head.to_lowercase();
    assert!(
        session_header.contains("set-cookie: session="),
        "{session_header}"
    );
    assert!(
        session_header.contains("httponly; samesite=lax"),
        "{session_header}"
    );
    let session = format!("session={}", opened.cookie("session").unwrap());
    let again = http(port, "GET", &link, "", "");
    assert_eq!(again.status, 410);
    assert!(again.body.contains("a déjà servi"), "{}", again.body);

    // The list: Lune's dossiers, the one refused long ago apart; never Soleil's.
    let list = http(port, "GET", "/dossiers", &session, "");
    assert_eq!(list.status, 200, "{}", list.body);
    let body = &list.body;
    for needle in [
        "REF-F0",
        "REF-F1",
        "REF-F2",
        "3\u{a0}500,50\u{a0}€",
        "instruction",
        "clos depuis longtemps",
    ] {
        assert!(body.contains(needle), "{needle}: {body}");
    }
    assert!(body.find("REF-F1").unwrap() < body.find("REF-F2").unwrap());
    assert!(
        !body.contains("REF-F3") && !body.contains("soleil"),
        "{body}"
    );
    assert_eq!(http(port, "GET", "/dossiers", "", "").status, 303);

    // The audit, in `dossier REF`.
    let out = install.run(&["dossier", "REF-F0", "--json"]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let actions: Vec<&str> = json[0]["front_office"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["sign-in", "list"]);
    assert_eq!(json[0]["front_office"][0]["email"], "lune@example.org");
    let out = install.run(&["dossier", "REF-F3"]);
    assert!(!text(&out).contains("espace en ligne"), "{}", text(&out));

    // Signing out: refused without its CSRF field, done with it.
    let refused = http(port, "POST", "/deconnexion", &session, "");
    assert_eq!(refused.status, 403);
    assert!(
        refused.body.contains("Formulaire expiré"),
        "{}",
        refused.body
    );
    let out = http(
        port,
        "POST",
        "/deconnexion",
        &session,
        &format!("csrf={}", list.csrf()),
    );
    assert_eq!(out.status, 303);
    assert_eq!(http(port, "GET", "/dossiers", &session, "").status, 303);
    let exit = crate::common::terminate(&mut daemon.0);
    assert!(exit.success(), "{exit}");
}

#[test]
fn issue_20_csrf_the_per_address_limit_and_an_expired_link() {
    let (install, port) = install("login_link_lifetime = \"3s\"");
    let _daemon = install.daemon();
    wait_for("the web face", Duration::from_secs(30), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    // No CSRF field, or one of another cookie: refused, nothing sent.
    let bare = http(port, "POST", "/connexion", "", "email=lune%40example.org");
    assert_eq!(bare.status, 403);
    assert!(bare.body.contains("lang=\"fr\""), "{}", bare.body);
    let form = http(port, "GET", "/", "", "");
    let other = http(
        port,
        "POST",
        "/connexion",
        &format!("csrf={}", "b".repeat(48)),
        &format!("csrf={}&email=lune%40example.org", form.csrf()),
    );
    assert_eq!(other.status, 403);
    // Five asks: three links.
    for _ in 0..5 {
        assert_eq!(ask(port, "lune@example.org").status, 200);
    }
    wait_for("three sign-in messages", Duration::from_secs(30), || {
        sign_in_messages(&install).len() >= 3
    });
    std::thread::sleep(Duration::from_secs(4));
    let messages = sign_in_messages(&install);
    assert_eq!(messages.len(), 3);
    assert!(
        messages[0].contains("Si vous n'avez rien demand"),
        "{}",
        messages[0]
    );
    // Past its lifetime, a link only says so.
    let late = http(port, "GET", &link_of(&messages[0]), "", "");
    assert_eq!(late.status, 410);
    assert!(late.body.contains("a expiré"), "{}", late.body);
}

#[test]
fn issue_20_purge_removes_sessions_and_the_audit_of_purged_dossiers() {
    let (install, port) = install("session_idle = \"1s\"\nsession_max = \"2s\"");
    install.append_config("[retention]\npersonal_data = \"30d\"\n");
    let mut daemon = install.daemon();
    wait_for("the web face", Duration::from_secs(30), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    ask(port, "lune@example.org");
    wait_for("the sign-in message", Duration::from_secs(30), || {
        !sign_in_messages(&install).is_empty()
    });
    let opened = http(
        port,
        "GET",
        &link_of(&sign_in_messages(&install)[0]),
        "",
        "",
    );
    assert_eq!(opened.status, 303);
    let audit = |reference: &str| -> usize {
        let out = install.run(&["dossier", reference, "--json"]);
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        json[0]["front_office"].as_array().unwrap().len()
    };
    assert_eq!((audit("REF-F0"), audit("REF-F2")), (1, 1));
    std::thread::sleep(Duration::from_secs(3));
    let out = install.run(&["purge", "--json"]);
    assert!(out.status.success(), "{}", text(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["purged"]["dossiers"], 1, "{json}");
    // The refused dossier's audit and the session went; REF-F0's audit stays.
    assert!(
        json["purged"]["front_office"].as_u64().unwrap() >= 2,
        "{json}"
    );
    assert_eq!((audit("REF-F0"), audit("REF-F2")), (1, 0));
    let sessions: i64 = install
        .sql()
        .query_row("SELECT count(*) FROM sessions", [], |r| r.get(0))
        .unwrap();
    assert_eq!(sessions, 0);
    let exit = crate::common::terminate(&mut daemon.0);
    assert!(exit.success(), "{exit}");
}

/// HSTS (issue 20, item 7): on every answer (pages, redirects, 404) when
/// `public_url` is https, on none when it is http.
#[test]
fn issue_20_hsts_when_the_public_address_is_https_only() {
    for https in [true, false] {
        let install = Install::with_connector(|c| c.to_owned());
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let public = match https {
            true => "https://aides.region.example.org".to_owned(),
            false => format!("http://127.0.0.1:{port}"),
        };
        install.append_config(&format!(
            "[web]\nlisten = \"127.0.0.1:{port}\"\npublic_url = \"{public}\"\n\
             [delivery.file]\ndir = \"outbox\"\n"
        ));
        let _daemon = install.daemon();
        wait_for("the web face", Duration::from_secs(30), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        for (path, status) in [("/", 200), ("/dossiers", 303), ("/nulle-part", 404)] {
            let answer = http(port, "GET", path, "", "");
            assert_eq!(answer.status, status, "{path}: {}", answer.body);
            let hsts = answer.header("strict-transport-security");
            let expected = https.then(|| "max-age=31536000".to_owned());
            assert_eq!(hsts, expected, "{public}{path}:\n{}", answer.head);
        }
    }
}
