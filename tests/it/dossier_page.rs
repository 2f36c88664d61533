//! The front office's dossier page through the binary (issue 20, item 5): a
//! beneficiary opens one of their dossiers from the list; its address does not
//! lead anyone else to it (the same 404 for an unknown, a foreign and a made-up
//! address, by the dossier's and the messages' paths); without a session, the
//! sign-in page; each page served is in the audit of `dossier REF`.

use std::time::Duration;

use crate::common::text;
use crate::daemon::wait_for;
use crate::front_office::{Answer, http, install};

/// Signs `email` in through the real flow (its newest link); returns the
/// session's cookie.
pub(crate) fn sign_in(install: &crate::common::Install, port: u16, email: &str) -> String {
    crate::staff_view::sign_in(install, port, email).0
}

/// The addresses of the dossier pages a list links to.
pub(crate) fn dossier_links(list: &Answer) -> Vec<String> {
    // minijinja escapes "/" in attributes.
    let body = list.body.replace("&#x2f;", "/");
    body.match_indices("href=\"/dossiers/")
        .map(|(at, _)| {
            let rest = &body[at + "href=\"".len()..];
            rest[..rest.find('"').unwrap()].to_owned()
        })
        .collect()
}

#[test]
fn issue_20_the_dossier_page_is_its_beneficiarys_only() {
    let (install, port) = install("");
    let mut daemon = install.daemon();
    wait_for("the web face", Duration::from_secs(30), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    let lune = sign_in(&install, port, "lune@example.org");
    let list = http(port, "GET", "/dossiers", &lune, "");
    let links = dossier_links(&list);
    assert_eq!(links.len(), 3, "{}", list.body);
    // 128 bits of an HMAC: nothing to count up from.
    assert!(
        links.iter().all(|l| l.len() == "/dossiers/".len() + 32),
        "{links:?}"
    );

    let page = http(port, "GET", &links[0], &lune, "");
    assert_eq!(page.status, 200, "{}", page.body);
    for needle in [
        "Dossier REF-F",
        "Où en est votre dossier",
        "Les étapes de votre dossier",
        "aria-current=\"step\"",
        "Montants",
        "Les messages que nous vous avons envoyés",
        "Vos contacts",
        "Retour à mes dossiers",
        "name=\"csrf\"",
    ] {
        assert!(page.body.contains(needle), "{needle}: {}", page.body);
    }
    let f0 = links
        .iter()
        .map(|l| http(port, "GET", l, &lune, ""))
        .find(|p| p.body.contains("REF-F0"))
        .expect("REF-F0's page");
    for needle in [
        "« En cours d&#x27;instruction »",
        "À venir : En attente du vote de la Commission permanente",
        "Montant accordé : 12",
        "Délai indicatif de cette étape",
    ] {
        assert!(f0.body.contains(needle), "{needle}: {}", f0.body);
    }

    // Soleil, and nobody: the same 404 for Lune's page, a made-up one, a message.
    let soleil = sign_in(&install, port, "soleil@example.org");
    let foreign = http(port, "GET", &links[0], &soleil, "");
    let made_up = http(
        port,
        "GET",
        &format!("/dossiers/{}", "0".repeat(32)),
        &soleil,
        "",
    );
    let message = http(
        port,
        "GET",
        &format!("{}/messages/{}", links[0], "0".repeat(32)),
        &soleil,
        "",
    );
    let own_message = http(
        port,
        "GET",
        &format!("{}/messages/{}", links[0], "0".repeat(32)),
        &lune,
        "",
    );
    assert_eq!(foreign.status, 404, "{}", foreign.body);
    for other in [&made_up, &message, &own_message] {
        assert_eq!((other.status, &other.body), (404, &foreign.body));
    }
    assert!(!foreign.body.contains("REF-F"), "{}", foreign.body);
    let nobody = http(port, "GET", &links[0], "", "");
    assert_eq!(nobody.status, 303);
    assert_eq!(nobody.header("location").as_deref(), Some("/"));

    let exit = crate::common::terminate(&mut daemon.0);
    assert!(exit.success(), "{exit}");
    let out = install.run(&["dossier", "REF-F0"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("page du dossier consultée par lune@example.org"),
        "{}",
        text(&out)
    );
}
