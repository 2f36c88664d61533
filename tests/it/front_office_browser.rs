//! The front office in a real browser (issue 20, Tests): Chromium signs in
//! through the real form (its CSRF field and cookie included), reads the link
//! from the `.eml` outbox, follows it, opens the list and a dossier, and looks
//! at the used-link page and the 404 page; `check` on each page runs axe-core's
//! WCAG 2.1 AA rules at 1280 and 360 px and keeps the screenshots. The pages
//! wear a `[web.theme]` (a logo, a colour, a legal notice). Issue 21: the
//! beneficiary writes to the service from the dossier's page (an empty message
//! refused first), sees the message, then the service's reply.

use std::time::Duration;

use crate::browser::Browser;
use crate::daemon::wait_for;
use crate::front_office::{EXPORT, install, link_of, sign_in_messages};

/// How many messages the `.eml` outbox holds.
fn messages(install: &crate::common::Install) -> usize {
    std::fs::read_dir(install.root().join("outbox"))
        .map(|e| {
            e.filter(|e| {
                e.as_ref()
                    .unwrap()
                    .path()
                    .extension()
                    .is_some_and(|x| x == "eml")
            })
            .count()
        })
        .unwrap_or(0)
}

#[test]
fn issue_20_the_front_office_passes_axe_in_a_real_browser_at_both_widths() {
    let Some(browser) = Browser::open("front_office") else {
        return;
    };
    // The Region's look (`[web.theme]`): a logo, another colour, a legal
    // notice, so that axe sees them too (the default look is the snapshots').
    let logo = tempfile::tempdir().unwrap();
    let svg = logo.path().join("logo.svg");
    std::fs::write(
        &svg,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"96\" height=\"48\">\
         <circle cx=\"48\" cy=\"24\" r=\"20\" fill=\"#e0a000\"/></svg>",
    )
    .unwrap();
    // Alerts leave at once: no debounce, no sending window.
    let (install, port) = install(&format!(
        "[web.theme]\nlogo = \"{}\"\ncolour = \"#6a1b9a\"\n\
         legal_notice = \"https://www.region.example.org/mentions-legales\"\n\
         [alerts]\ndebounce = \"0s\"\nsend_windows = []",
        svg.display()
    ));
    // REF-F0 is granted: the shipped rule `aide-accordee` writes to Lune.
    let path = install.root().join("exports").join("2.csv");
    std::fs::write(
        &path,
        EXPORT.replace("Instruction en cours;01/10/2026", "Voté en CP;03/10/2026"),
    )
    .unwrap();
    let out = install.run(&["import", "portail", path.to_str().unwrap()]);
    assert!(out.status.success(), "{}", crate::common::text(&out));
    let _daemon = install.daemon();
    wait_for("the web face", Duration::from_secs(30), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    let base = format!("http://127.0.0.1:{port}");

    // The home page: two sentences and one field.
    browser.goto(&format!("{base}/"));
    assert!(
        browser.text().contains("Votre adresse électronique"),
        "{}",
        browser.text()
    );
    browser.check("accueil");

    // The real form posts, with its CSRF field and cookie.
    browser.fill("#email", "lune@example.org");
    browser.click("form button[type=submit]");
    assert!(
        browser.text().contains("Si cette adresse figure"),
        "{}",
        browser.text()
    );
    browser.check("envoye");
    wait_for("the sign-in message", Duration::from_secs(30), || {
        !sign_in_messages(&install).is_empty()
    });
    let link = format!("{base}{}", link_of(&sign_in_messages(&install)[0]));

    // The link opens a session and lands on the list.
    wait_for("the message about REF-F0", Duration::from_secs(30), || {
        messages(&install) > sign_in_messages(&install).len()
    });
    browser.goto(&link);
    assert!(browser.url().ends_with("/dossiers"), "{}", browser.url());
    assert!(
        browser.text().contains("Dossier REF-F0"),
        "{}",
        browser.text()
    );
    browser.check("dossiers");

    // REF-F0's page, from its link in the list.
    let href = browser.script(
        "return [...document.querySelectorAll('li.dossier h3 a')]\
         .find(a => a.textContent.includes('REF-F0')).href",
    );
    browser.goto(href.as_str().unwrap());
    assert!(browser.url().contains("/dossiers/"), "{}", browser.url());
    assert!(
        browser.text().contains("Où en est votre dossier"),
        "{}",
        browser.text()
    );
    browser.check("dossier");

    // The message the rule sent, kept and readable on its own page.
    browser.click("main ul li a[href*='/messages/']");
    assert!(
        browser.text().contains("Retour au dossier REF-F0"),
        "{}",
        browser.text()
    );
    browser.check("message");

    // Issue 21: writing to the service. Empty first (the page again, with why),
    // then a question, shown at once on the page; then the service's reply
    // (recorded as the staff view records it) on the same page.
    browser.goto(href.as_str().unwrap());
    browser.click("form[action$='/messages'] button[type=submit]");
    assert!(
        browser.text().contains("Votre message est vide"),
        "{}",
        browser.text()
    );
    browser.check("dossier-message-vide");
    browser.fill("#texte", "Bonjour, quand le versement aura-t-il lieu ?");
    browser.click("form[action$='/messages'] button[type=submit]");
    assert!(browser.url().ends_with("#echanges"), "{}", browser.url());
    let page = browser.text();
    assert!(
        page.contains("Votre message, écrit le")
            && page.contains("quand le versement aura-t-il lieu ?"),
        "{page}"
    );
    install
        .sql()
        .execute(
            "INSERT INTO exchanges (dossier_id, at, direction, channel, kind, author, body)
             SELECT id, strftime('%Y-%m-%dT%H:%M:%SZ', 'now', '+1 second'), 'service', 'web',
                    'message', 'instruction@region.example.org', 'Le versement part demain.'
             FROM dossiers WHERE source_id = 'F0'",
            [],
        )
        .unwrap();
    browser.goto(href.as_str().unwrap());
    assert!(
        browser.text().contains("Réponse du service, le")
            && browser.text().contains("Le versement part demain."),
        "{}",
        browser.text()
    );
    browser.check("dossier-echanges");

    // A dossier that is not the session's: the 404 page.
    browser.goto(&format!("{base}/dossiers/{}", "0".repeat(32)));
    assert!(
        browser.text().contains("Retour à la page d'accueil"),
        "{}",
        browser.text()
    );
    browser.check("introuvable");

    // The same link a second time: the used-link page.
    browser.goto(&link);
    assert!(
        browser
            .text()
            .contains("Demander un nouveau lien de connexion"),
        "{}",
        browser.text()
    );
    browser.check("lien-utilise");
}
