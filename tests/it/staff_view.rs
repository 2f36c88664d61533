//! The staff view through the binary (issue 21, item 2): staff sign in by the
//! instructor address of their dossiers or by `[web] staff`, and land on
//! `/instruction`; an instructor sees their dossiers and no other's (the same
//! 404 by the page and by the reply form); `pilotage` sees every dossier and
//! filters them, and reads `/pilotage`; a beneficiary's session gets 403 on
//! every staff address; a reply is refused without its CSRF field, and else
//! recorded (on the page, in the store, in `dossier REF`, in the audit) and
//! e-mailed to the beneficiary; a beneficiary who wrote last waits for an
//! answer at the top of the list; the instructors' lookup follows imports and
//! its migration; a role removed by a reload is gone; `check` checks `[web]
//! staff`. The pages' snapshots are `staff_snapshots`'.

use std::time::Duration;

use crate::common::{Install, text};
use crate::daemon::wait_for;
use crate::front_office::{Answer, ask, http, link_of, sign_in_messages};

/// Two dossiers instructed by agent A (one in Sport), one by agent B, one
/// without instructor.
pub(crate) const EXPORT: &str = "N° dossier;Référence;Dispositif;Bénéficiaire;SIRET;Courriel;Instructeur;Statut;Date statut;Montant voté;Date d'export\n\
F0;REF-F0;Culture;Association Lune;;lune@example.org;Agent.A@region.example.org;Instruction en cours;01/10/2026;12 000,00;01/10/2026 06:00\n\
F1;REF-F1;Sport;Association Lune;;lune@example.org;agent.a@region.example.org;Voté en CP;02/10/2026;3 500,50;01/10/2026 06:00\n\
F3;REF-F3;Culture;Association Soleil;;soleil@example.org;agent.b@region.example.org;Déposé;01/10/2026;500,00;01/10/2026 06:00\n\
F4;REF-F4;Culture;Association Étoile;;etoile@example.org;;Déposé;01/10/2026;;01/10/2026 06:00\n";

/// The chief of the service, `pilotage` in `[web] staff`.
pub(crate) const CHIEF: &str = "chef@region.example.org";

/// An installation with the web face on a free port, the instructors' column
/// mapped, `[web] staff` naming [`CHIEF`], and [`EXPORT`] imported.
pub(crate) fn install(extra: &str) -> (Install, u16) {
    let install = Install::with_connector(|c| {
        c.replace(
            "\"beneficiary.email\" = \"Courriel\"\n",
            "\"beneficiary.email\" = \"Courriel\"\n\"instructor.email\" = \"Instructeur\"\n",
        )
    });
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    install.append_config(&format!(
        "[web]\nlisten = \"127.0.0.1:{port}\"\npublic_url = \"http://127.0.0.1:{port}\"\n\
         staff = [ {{ email = \"Chef@Region.example.org\", role = \"pilotage\" }} ]\n{extra}\n\
         [delivery.file]\ndir = \"outbox\"\n"
    ));
    let path = install.root().join("exports").join("1.csv");
    std::fs::write(&path, EXPORT).unwrap();
    let out = install.run(&["import", "portail", path.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    (install, port)
}

/// Signs `email` in through the real flow; returns the session's cookie and
/// where the link led.
pub(crate) fn sign_in(install: &Install, port: u16, email: &str) -> (String, String) {
    let before = sign_in_messages(install).len();
    assert_eq!(ask(port, email).status, 200);
    wait_for("the sign-in message", Duration::from_secs(30), || {
        sign_in_messages(install).len() > before
    });
    let messages = sign_in_messages(install);
    let message = messages
        .iter()
        .rev()
        .find(|m| m.contains(&format!("To: {email}")))
        .expect("a message to the address");
    let opened = http(port, "GET", &link_of(message), "", "");
    assert_eq!(opened.status, 303, "{}", opened.body);
    (
        format!("session={}", opened.cookie("session").unwrap()),
        opened.header("location").unwrap_or_default(),
    )
}

/// The staff pages a list links to, by reference.
pub(crate) fn links(list: &Answer) -> Vec<(String, String)> {
    let body = list.body.replace("&#x2f;", "/");
    body.match_indices("href=\"/instruction/dossiers/")
        .map(|(at, _)| {
            let rest = &body[at + "href=\"".len()..];
            let end = rest.find('"').unwrap();
            let reference = &rest[end + 2..];
            let reference = &reference[..reference.find('<').unwrap()];
            (reference.to_owned(), rest[..end].to_owned())
        })
        .collect()
}

/// The messages of the `.eml` outbox, their text with quoted-printable undone.
fn outbox(install: &Install) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(install.root().join("outbox")) else {
        return Vec::new();
    };
    entries
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "eml"))
        .map(|p| {
            std::fs::read_to_string(p)
                .unwrap()
                .replace("=\r\n", "")
                .replace("=3D", "=")
        })
        .collect()
}

fn link<'l>(links: &'l [(String, String)], reference: &str) -> &'l str {
    &links
        .iter()
        .find(|(r, _)| r == reference)
        .unwrap_or_else(|| panic!("{reference} in {links:?}"))
        .1
}

/// Records a beneficiary's message on `reference` written `days` ago, as the
/// front office would (another program writing the store, as the daemon
/// allows).
fn beneficiary_wrote(install: &Install, reference: &str, days: i64) {
    let db = rusqlite::Connection::open(install.root().join("state/alertissimo.db")).unwrap();
    db.busy_timeout(Duration::from_secs(10)).unwrap();
    let at = (chrono::Utc::now() - chrono::Duration::days(days))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    db.execute(
        "INSERT INTO exchanges (dossier_id, at, direction, channel, kind, author, body)
         SELECT id, ?2, 'beneficiary', 'web', 'message', 'lune@example.org',
                'Bonjour, où en est notre dossier ?'
         FROM dossiers WHERE reference = ?1",
        rusqlite::params![reference, at],
    )
    .unwrap();
}

#[test]
fn issue_21_instructors_see_theirs_pilotage_sees_all_beneficiaries_nothing() {
    let (install, port) = install("");
    beneficiary_wrote(&install, "REF-F1", 3);
    let mut daemon = install.daemon();
    wait_for("the web face", Duration::from_secs(30), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });

    // Without a session, the sign-in page.
    let nobody = http(port, "GET", "/instruction", "", "");
    assert_eq!(nobody.status, 303);
    assert_eq!(nobody.header("location").as_deref(), Some("/"));

    // Agent A signs in by their dossiers' instructor address (in another case).
    let (a, to) = sign_in(&install, port, "agent.a@region.example.org");
    assert_eq!(to, "/instruction");
    let list = http(port, "GET", "/instruction", &a, "");
    assert_eq!(list.status, 200, "{}", list.body);
    // The router's layers protect the staff pages as every other one.
    let head = list.head.to_lowercase();
    for needle in [
        "content-security-policy: default-src 'none'",
        "x-content-type-options: nosniff",
        "referrer-policy: no-referrer",
        "cache-control: no-store",
        "x-frame-options: deny",
    ] {
        assert!(head.contains(needle), "missing {needle:?} in:\n{head}");
    }
    let mine = links(&list);
    let refs: Vec<&str> = mine.iter().map(|(r, _)| r.as_str()).collect();
    assert_eq!(refs.len(), 2, "{refs:?}");
    assert!(
        refs.contains(&"REF-F0") && refs.contains(&"REF-F1"),
        "{refs:?}"
    );
    // Lune wrote about REF-F1 three days ago: first, with how long she waits.
    let waiting = &list.body[list.body.find("Ils attendent une réponse").unwrap()..];
    assert!(
        waiting.starts_with("Ils attendent une réponse (1)"),
        "{}",
        list.body
    );
    assert!(
        list.body.contains("attend une réponse depuis 3 jours"),
        "{}",
        list.body
    );
    assert!(waiting.find("REF-F1").unwrap() < waiting.find("REF-F0").unwrap());
    // Not pilotage: no filters, no /pilotage.
    assert!(!list.body.contains("name=\"dispositif\""), "{}", list.body);
    assert_eq!(http(port, "GET", "/pilotage", &a, "").status, 403);

    // The chief (`[web] staff`, pilotage) sees every dossier, and filters them.
    let (chief, to) = sign_in(&install, port, CHIEF);
    assert_eq!(to, "/instruction");
    let all = http(port, "GET", "/instruction", &chief, "");
    assert_eq!(all.status, 200, "{}", all.body);
    let every = links(&all);
    assert_eq!(every.len(), 4, "{every:?}");
    for needle in [
        "<label for=\"dispositif\">",
        "<label for=\"etape\">",
        "<label for=\"instructeur\">",
        "<label for=\"connecteur\">",
        "<option value=\"agent.b@region.example.org\">",
    ] {
        assert!(all.body.contains(needle), "{needle}: {}", all.body);
    }
    let b_only = http(
        port,
        "GET",
        "/instruction?instructeur=agent.b%40region.example.org&dispositif=&etape=&connecteur=",
        &chief,
        "",
    );
    let refs: Vec<String> = links(&b_only).into_iter().map(|(r, _)| r).collect();
    assert_eq!(refs, ["REF-F3"], "{}", b_only.body);
    let sport = http(port, "GET", "/instruction?dispositif=Sport", &chief, "");
    let refs: Vec<String> = links(&sport).into_iter().map(|(r, _)| r).collect();
    assert_eq!(refs, ["REF-F1"]);
    assert!(
        sport.body.contains("<option value=\"Sport\" selected>"),
        "{}",
        sport.body
    );
    let step = http(
        port,
        "GET",
        "/instruction?etape=depose&connecteur=portail",
        &chief,
        "",
    );
    assert_eq!(links(&step).len(), 2, "{}", step.body);
    let pilotage = http(port, "GET", "/pilotage", &chief, "");
    assert_eq!(pilotage.status, 200, "{}", pilotage.body);
    for needle in [
        "Délai de réponse aux bénéficiaires",
        "Durée des étapes par dispositif",
        "Dossiers bloqués par instructeur",
        "Dossiers à chaque étape, mois par mois",
        "<th scope=\"col\">",
    ] {
        assert!(
            pilotage.body.contains(needle),
            "{needle}: {}",
            pilotage.body
        );
    }

    // Agent A and agent B's dossier: the same 404 as a made-up address, by
    // the page and by the reply form.
    let foreign = link(&every, "REF-F3");
    let page = http(port, "GET", foreign, &a, "");
    assert_eq!(page.status, 404, "{}", page.body);
    assert!(!page.body.contains("REF-F3"));
    let made_up = http(
        port,
        "GET",
        &format!("/instruction/dossiers/{}", "0".repeat(32)),
        &a,
        "",
    );
    assert_eq!((made_up.status, &made_up.body), (404, &page.body));
    let own = http(port, "GET", link(&mine, "REF-F0"), &a, "");
    assert_eq!(own.status, 200, "{}", own.body);
    let csrf = own.csrf();
    let post = http(
        port,
        "POST",
        &format!("{foreign}/reponses"),
        &a,
        &format!("csrf={csrf}&texte=Intrusion"),
    );
    assert_eq!(post.status, 404, "{}", post.body);

    // A beneficiary's session: 403 on every staff address, and no data.
    let (lune, to) = sign_in(&install, port, "lune@example.org");
    assert_eq!(to, "/dossiers");
    for path in [
        "/instruction".to_owned(),
        "/pilotage".to_owned(),
        link(&mine, "REF-F0").to_owned(),
        "/instruction/autre".to_owned(),
    ] {
        let refused = http(port, "GET", &path, &lune, "");
        assert_eq!(refused.status, 403, "{path}: {}", refused.body);
        assert!(
            refused.body.contains("réservée aux agents"),
            "{}",
            refused.body
        );
        assert!(!refused.body.contains("REF-F"), "{path}");
    }
    let refused = http(
        port,
        "POST",
        &format!("{}/reponses", link(&mine, "REF-F0")),
        &lune,
        &format!("csrf={csrf}&texte=x"),
    );
    assert_eq!(refused.status, 403);

    // A reply: without its CSRF field refused, with it recorded and shown.
    let reply = format!("{}/reponses", link(&mine, "REF-F0"));
    let forged = http(port, "POST", &reply, &a, "texte=Sans+jeton");
    assert_eq!(forged.status, 403, "{}", forged.body);
    let long = http(
        port,
        "POST",
        &reply,
        &a,
        &format!("csrf={csrf}&texte={}", "a".repeat(5_001)),
    );
    assert_eq!(long.status, 422, "{}", long.body);
    let sent = http(
        port,
        "POST",
        &reply,
        &a,
        &format!(
            "csrf={csrf}&texte=Bonjour%2C+votre+dossier+passe+en+commission+le+mois+prochain."
        ),
    );
    assert_eq!(sent.status, 303, "{}", sent.body);
    assert_eq!(
        sent.header("location").unwrap(),
        format!("{}#echanges", link(&mine, "REF-F0"))
    );
    // The dispatcher e-mails the answer to the beneficiary (`.eml` outbox).
    wait_for("the answer's e-mail", Duration::from_secs(30), || {
        outbox(&install).iter().any(|m| {
            m.contains("To: lune@example.org") && m.contains("passe en commission le mois")
        })
    });
    let after = http(port, "GET", link(&mine, "REF-F0"), &a, "");
    for needle in [
        "votre dossier passe en commission le mois prochain.",
        "Le service</strong> (agent.a@region.example.org), en ligne",
        "Transmission à lune@example.org",
    ] {
        assert!(after.body.contains(needle), "{needle}: {}", after.body);
    }

    let exit = crate::common::terminate(&mut daemon.0);
    assert!(exit.success(), "{exit}");
    let db = rusqlite::Connection::open(install.root().join("state/alertissimo.db")).unwrap();
    let row: (String, String, String, String, String) = db
        .query_row(
            "SELECT x.direction, x.channel, x.author, x.recipient, x.body
             FROM exchanges x JOIN dossiers d ON d.id = x.dossier_id
             WHERE d.reference = 'REF-F0'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
        )
        .unwrap();
    assert_eq!(
        row,
        (
            "service".to_owned(),
            "web".to_owned(),
            "agent.a@region.example.org".to_owned(),
            "lune@example.org".to_owned(),
            "Bonjour, votre dossier passe en commission le mois prochain.".to_owned()
        )
    );
    // `dossier REF --json` lists the answer among the exchanges, sent.
    let out = install.run(&["dossier", "REF-F0", "--json"]);
    assert!(out.status.success(), "{}", text(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let listed = &json[0]["exchanges"][0];
    assert_eq!(listed["direction"], "service", "{json}");
    assert_eq!(listed["channel"], "web");
    assert_eq!(listed["author"], "agent.a@region.example.org");
    assert_eq!(listed["recipient"], "lune@example.org");
    assert_eq!(listed["status"], "sent");
    let out = install.run(&["dossier", "REF-F0"]);
    assert!(out.status.success(), "{}", text(&out));
    for needle in [
        "page agent du dossier consultée par agent.a@region.example.org",
        "réponse écrite depuis la vue des agents par agent.a@region.example.org",
    ] {
        assert!(text(&out).contains(needle), "{needle}: {}", text(&out));
    }
}

#[test]
fn issue_21_a_staff_member_who_is_also_a_beneficiary_sees_the_staff_view_first() {
    // Lune's address is also a `[web] staff` instructor's.
    let (install, port) = install("");
    let config = std::fs::read_to_string(install.config()).unwrap().replace(
        "role = \"pilotage\" }",
        "role = \"pilotage\" }, { email = \"lune@example.org\", role = \"instructeur\" }",
    );
    std::fs::write(install.config(), config).unwrap();
    let _daemon = install.daemon();
    wait_for("the web face", Duration::from_secs(30), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    let (lune, to) = sign_in(&install, port, "lune@example.org");
    assert_eq!(to, "/instruction");
    let list = http(port, "GET", "/instruction", &lune, "");
    assert_eq!(list.status, 200, "{}", list.body);
    assert!(
        list.body.contains("Mes propres dossiers d'aide"),
        "{}",
        list.body
    );
    assert!(
        list.body.contains("Aucun dossier ne vous est attribué"),
        "{}",
        list.body
    );
    // Their own dossiers stay theirs to see.
    assert_eq!(http(port, "GET", "/dossiers", &lune, "").status, 200);
}

#[test]
fn issue_21_staff_settings_are_checked() {
    let (install, _port) = install("");
    let config = std::fs::read_to_string(install.config()).unwrap().replace(
        "staff = [ { email = \"Chef@Region.example.org\", role = \"pilotage\" } ]",
        "staff = [ { email = \"chef@region.example.org\", role = \"pilotage\" },\n\
         { email = \"CHEF@region.example.org\", role = \"instructeur\" },\n\
         { email = \"agent@region.example.org\", role = \"directeur\" },\n\
         { email = \"pas-une-adresse\", role = \"instructeur\" } ]",
    );
    std::fs::write(install.config(), config).unwrap();
    let out = install.run(&["check"]);
    assert_eq!(out.status.code(), Some(78), "{}", text(&out));
    for needle in [
        "entry 2: chef@region.example.org is listed twice",
        "entry 3: role 'directeur' of agent@region.example.org is not one of",
        "entry 4: 'pas-une-adresse' is not an e-mail address",
    ] {
        assert!(text(&out).contains(needle), "{needle}: {}", text(&out));
    }
}

/// The instructors' lookup, as `email|reference`, sorted.
fn instructors(install: &Install) -> Vec<String> {
    let conn = install.sql();
    let mut stmt = conn
        .prepare(
            "SELECT i.email || '|' || d.reference FROM instructor_emails i
             JOIN dossiers d ON d.id = i.dossier_id ORDER BY 1",
        )
        .unwrap();
    stmt.query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

#[test]
fn issue_21_the_instructors_lookup_follows_imports_and_the_migration() {
    let (install, _port) = install("");
    assert_eq!(
        instructors(&install),
        [
            "agent.a@region.example.org|REF-F0",
            "agent.a@region.example.org|REF-F1",
            "agent.b@region.example.org|REF-F3",
        ]
    );
    // REF-F3 passes to agent A, REF-F4 gets agent B.
    let path = install.root().join("exports").join("2.csv");
    std::fs::write(
        &path,
        EXPORT
            .replace(
                "soleil@example.org;agent.b@region.example.org",
                "soleil@example.org;agent.a@region.example.org",
            )
            .replace(
                "etoile@example.org;;",
                "etoile@example.org;Agent.B@region.example.org;",
            ),
    )
    .unwrap();
    let out = install.run(&["import", "portail", path.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    let after = instructors(&install);
    assert_eq!(
        after,
        [
            "agent.a@region.example.org|REF-F0",
            "agent.a@region.example.org|REF-F1",
            "agent.a@region.example.org|REF-F3",
            "agent.b@region.example.org|REF-F4",
        ]
    );
    // A database as version 24 left it: migration 0025 fills the lookup.
    {
        let conn = install.sql();
        conn.execute_batch("DROP TABLE instructor_emails;").unwrap();
        conn.pragma_update(None, "user_version", 24).unwrap();
    }
    let out = install.run(&["dossier", "REF-F0"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(instructors(&install), after);
}

#[test]
fn issue_21_a_role_removed_by_a_reload_is_gone_at_the_next_page() {
    let (install, port) = install("");
    let daemon = install.daemon();
    wait_for("the web face", Duration::from_secs(30), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    let (chief, _) = sign_in(&install, port, CHIEF);
    assert_eq!(http(port, "GET", "/pilotage", &chief, "").status, 200);
    // The chief leaves `[web] staff`; the daemon reloads (SIGHUP).
    let config = std::fs::read_to_string(install.config())
        .unwrap()
        .replace("role = \"pilotage\"", "role = \"instructeur\"");
    std::fs::write(install.config(), config).unwrap();
    let status = std::process::Command::new("kill")
        .args(["-HUP", &daemon.0.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    // The same session: an instructor now, with no dossier of theirs.
    wait_for("the reload", Duration::from_secs(30), || {
        http(port, "GET", "/pilotage", &chief, "").status == 403
    });
    let list = http(port, "GET", "/instruction", &chief, "");
    assert_eq!(list.status, 200, "{}", list.body);
    assert!(links(&list).is_empty(), "{}", list.body);
}
