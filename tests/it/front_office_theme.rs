//! The Region's look (`[web.theme]`, issue 20, item 2) through the binary: a
//! configured theme (name, logo, colour, contact, legal notice) shows on the
//! sign-in page and on a dossier's page, the logo embedded as a `data:` URI that
//! the security policy allows (and nothing else); without a theme, the default
//! look: the `[region]`'s name and contact, the sober blue, no logo, no legal
//! notice.

use std::time::Duration;

use crate::daemon::wait_for;
use crate::dossier_page::{dossier_links, sign_in};
use crate::front_office::{http, install};

/// The smallest PNG's signature and a few bytes: the daemon checks the type by
/// its first bytes, a browser would show a broken image (not opened here).
const LOGO: &[u8] = b"\x89PNG\r\n\x1a\nlogo";

/// `GET /` and a dossier's page of Lune, signed in.
fn pages(install: &crate::common::Install, port: u16) -> [String; 2] {
    wait_for("the web face", Duration::from_secs(30), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    let home = http(port, "GET", "/", "", "");
    assert_eq!(home.status, 200, "{}", home.body);
    let csp = home.header("content-security-policy").unwrap();
    assert!(csp.contains("img-src data:;"), "{csp}");
    assert!(csp.starts_with("default-src 'none';"), "{csp}");
    let lune = sign_in(install, port, "lune@example.org");
    let list = http(port, "GET", "/dossiers", &lune, "");
    let page = http(port, "GET", &dossier_links(&list)[0], &lune, "");
    assert_eq!(page.status, 200, "{}", page.body);
    // minijinja escapes "/" in attributes.
    [home.body, page.body].map(|body| body.replace("&#x2f;", "/"))
}

#[test]
fn issue_20_the_regions_theme_shows_on_every_page() {
    let dir = tempfile::tempdir().unwrap();
    let logo = dir.path().join("logo.png");
    std::fs::write(&logo, LOGO).unwrap();
    let (install, port) = install(&format!(
        "[web.theme]\nname = \"Région Exemple\"\nlogo = \"{}\"\ncolour = \"#6A1B9A\"\n\
         email = \"aides@region.example.org\"\nphone = \"03 00 00 00 00\"\n\
         legal_notice = \"https://www.region.example.org/mentions-legales\"\n",
        logo.display()
    ));
    let _daemon = install.daemon();
    let pages = pages(&install, port);
    let dossier = &pages[1];
    // The dossier's contact block: the theme's address and phone, the dossier
    // naming no service address of its own.
    assert!(
        dossier.contains("Pour toute question, écrivez à <a href=\"mailto:aides@region.example.org\">aides@region.example.org</a> ou appelez le 03 00 00 00 00"),
        "{dossier}"
    );
    for body in pages {
        for needle in [
            "<header><p><img src=\"data:image/png;base64,iVBORw0KGgpsb2dv\" alt=\"\">Région Exemple</p></header>",
            " – Région Exemple</title>",
            "header{background:#6a1b9a;",
            "h1{font-size:1.5rem;color:#6a1b9a;",
            "a{color:#6a1b9a}",
            "background:#6a1b9a;color:#fff;cursor:pointer}",
            "<a href=\"mailto:aides@region.example.org\">aides@region.example.org</a> ou 03 00 00 00 00.",
            "<a href=\"https://www.region.example.org/mentions-legales\">Mentions légales</a>",
        ] {
            assert!(body.contains(needle), "missing {needle:?} in:\n{body}");
        }
        assert!(!body.contains("#003b6f"), "{body}");
    }
}

#[test]
fn issue_20_without_a_theme_the_default_look_is_unchanged() {
    let (install, port) = install("");
    let _daemon = install.daemon();
    for body in pages(&install, port) {
        for needle in [
            "<header><p>",
            "header{background:#003b6f;",
            "a{color:#003b6f}",
        ] {
            assert!(body.contains(needle), "missing {needle:?} in:\n{body}");
        }
        for absent in ["<img", "data:", "Mentions légales", "header img"] {
            assert!(!body.contains(absent), "{absent:?} in:\n{body}");
        }
    }
}
