//! The staff view in a real browser (issue 21, Tests): the chief (`pilotage`)
//! signs in through the real form, lands on `/instruction`, filters it with
//! the form's selects, opens a dossier, answers the beneficiary with the reply
//! form, and reads `/pilotage`; `check` on each page runs axe-core's WCAG 2.1
//! AA rules at 1280 and 360 px and keeps the screenshots.

use std::time::Duration;

use crate::browser::Browser;
use crate::daemon::wait_for;
use crate::front_office::{link_of, sign_in_messages};
use crate::staff_view::{CHIEF, install};

#[test]
fn issue_21_the_staff_view_passes_axe_in_a_real_browser_at_both_widths() {
    let Some(browser) = Browser::open("staff_view") else {
        return;
    };
    let (install, port) = install("");
    let _daemon = install.daemon();
    wait_for("the web face", Duration::from_secs(30), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    let base = format!("http://127.0.0.1:{port}");

    browser.goto(&format!("{base}/"));
    browser.fill("#email", CHIEF);
    browser.click("form button[type=submit]");
    wait_for("the sign-in message", Duration::from_secs(30), || {
        !sign_in_messages(&install).is_empty()
    });
    browser.goto(&format!(
        "{base}{}",
        link_of(&sign_in_messages(&install)[0])
    ));
    assert!(browser.url().ends_with("/instruction"), "{}", browser.url());
    assert!(
        browser.text().contains("Tous les dossiers"),
        "{}",
        browser.text()
    );
    browser.check("instruction");

    // The filters: a GET form of labelled selects.
    browser.script("document.querySelector('#dispositif').value = 'Sport'; return null");
    browser.click("form.filtres button[type=submit]");
    assert!(
        browser.url().contains("dispositif=Sport"),
        "{}",
        browser.url()
    );
    assert!(browser.text().contains("REF-F1"), "{}", browser.text());
    assert!(!browser.text().contains("REF-F3"), "{}", browser.text());
    browser.check("instruction-filtree");

    // A dossier, and an answer to its beneficiary.
    browser.click("main table a[href*='/instruction/dossiers/']");
    assert!(
        browser.text().contains("Dossier REF-F1"),
        "{}",
        browser.text()
    );
    browser.check("instruction-dossier");
    browser.fill(
        "#texte",
        "Bonjour, la convention vous sera adressée la semaine prochaine.",
    );
    browser.click("form[action*='/reponses'] button[type=submit]");
    assert!(
        browser
            .text()
            .contains("la convention vous sera adressée la semaine prochaine."),
        "{}",
        browser.text()
    );
    browser.check("instruction-dossier-repondu");

    browser.goto(&format!("{base}/pilotage"));
    assert!(
        browser.text().contains("Durée des étapes par dispositif"),
        "{}",
        browser.text()
    );
    browser.check("pilotage");
}
