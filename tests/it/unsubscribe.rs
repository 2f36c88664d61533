//! Unsubscribing from informational messages through the binary (issue 17,
//! item 25): the daemon with the `.eml` transport and `[web] listen` on a free
//! port of 127.0.0.1; the delivered message's headers and footer; the one-click
//! POST; a later informational alert cancelled while a mandatory one still
//! goes; GET changes nothing; an unknown token is a 404; subscribing again.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::common::{Install, text};
use crate::daemon::wait_for;

/// One informational rule and one mandatory rule, both to the beneficiary.
const RULES: &str = r#"
[[rule]]
name = "info-instruction"
on = "step_changed"
to = ["instruction"]
notify = ["beneficiary"]
template = "en_instruction"
class = "informational"

[[rule]]
name = "decision-accordee"
on = "step_changed"
to = ["accorde"]
notify = ["beneficiary"]
template = "aide_accordee"
class = "mandatory"
"#;

/// An export where three dossiers share one beneficiary address, in these
/// statuses.
fn export(statuses: [&str; 3]) -> String {
    let mut text = String::from(
        "N° dossier;Référence;Dispositif;Bénéficiaire;SIRET;Courriel;Statut;Date statut;Montant voté;Date d'export\n",
    );
    for (i, status) in statuses.iter().enumerate() {
        text.push_str(&format!(
            "U{i};REF-U{i};Culture;Association Lune;;Lune@Example.org;{status};01/10/2026;12 000,00;01/10/2026 06:00\n"
        ));
    }
    text
}

/// An installation with [`RULES`] only, alerts sent at once, `.eml` files in
/// `outbox/` and the web face on a free port; returns it and the port.
fn install() -> (Install, u16) {
    let install = Install::tolerant();
    let rules = install.own_rules();
    for file in ["beneficiaires.toml", "instructeurs.toml"] {
        std::fs::remove_file(rules.join(file)).unwrap();
    }
    std::fs::write(rules.join("alertes.toml"), RULES).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    install.append_config(&format!(
        "[alerts]\ndebounce = \"0s\"\nsend_windows = []\n\
         [web]\nlisten = \"127.0.0.1:{port}\"\npublic_url = \"http://127.0.0.1:{port}\"\n\
         [delivery.file]\ndir = \"outbox\"\n"
    ));
    (install, port)
}

/// Imports `text` with the command line.
fn import(install: &Install, name: &str, text: &str) {
    let path = install.root().join("exports").join(name);
    std::fs::write(&path, text).unwrap();
    let out = install.run(&["import", "portail", path.to_str().unwrap()]);
    assert!(out.status.success(), "{}", crate::common::text(&out));
}

/// Drops `text` into the daemon's inbox, whole (written aside, then renamed).
fn drop_in_inbox(install: &Install, name: &str, text: &str) {
    let aside = install.root().join(format!("{name}.part"));
    std::fs::write(&aside, text).unwrap();
    std::fs::rename(aside, install.root().join("inbox").join(name)).unwrap();
}

/// The `.eml` files delivered so far.
fn delivered(install: &Install) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(install.root().join("outbox"))
        .map(|entries| entries.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default();
    files.retain(|p| p.extension().is_some_and(|x| x == "eml"));
    files
}

/// A message as its reader sees it: the headers as written, and the body with
/// quoted-printable undone.
fn read_eml(path: &Path) -> (String, String) {
    let raw = std::fs::read_to_string(path).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    (head.to_owned(), quoted_printable(body))
}

/// Quoted-printable undone (soft breaks, `=XX`), as UTF-8.
pub(crate) fn quoted_printable(text: &str) -> String {
    let text = text.replace("=\r\n", "");
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'=', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The value of a header of `head` (first occurrence, unfolded).
fn header(head: &str, name: &str) -> Option<String> {
    let unfolded = head.replace("\r\n ", " ").replace("\r\n\t", " ");
    unfolded.split("\r\n").find_map(|line| {
        let (n, v) = line.split_once(':')?;
        n.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
    })
}

/// One HTTP/1.1 request to 127.0.0.1:`port`: the status code and the body.
fn request(port: u16, method: &str, path: &str, body: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    // The pages are small: hyper sends them whole, with a Content-Length.
    (status, body.to_owned())
}

/// The recorded choices: (address, class, how).
fn opt_outs(install: &Install) -> Vec<(String, String, String)> {
    let conn = install.sql();
    let mut stmt = conn
        .prepare("SELECT address, class, how FROM opt_outs ORDER BY address")
        .unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

/// The alerts of `outbox list --json`: (reference, rule, status, reason).
fn alerts(install: &Install) -> Vec<(String, String, String, String)> {
    crate::common::outbox_rows(install, ["reference", "rule", "status", "reason"])
}

#[test]
fn issue_17_item_25_informational_messages_can_be_left_in_one_click() {
    let (install, port) = install();
    // Baseline, then U0 moves into instruction: one informational alert.
    import(
        &install,
        "1.csv",
        &export(["Déposé", "Instruction en cours", "Déposé"]),
    );
    import(
        &install,
        "2.csv",
        &export(["Instruction en cours", "Instruction en cours", "Déposé"]),
    );
    let mut daemon = install.daemon();
    wait_for("the informational message", Duration::from_secs(30), || {
        delivered(&install).len() == 1
    });
    let first = delivered(&install).remove(0);
    let (head, body) = read_eml(&first);
    let link = header(&head, "List-Unsubscribe").unwrap_or_else(|| panic!("{head}"));
    let prefix = format!("<http://127.0.0.1:{port}/desabonnement/");
    assert!(link.starts_with(&prefix) && link.ends_with('>'), "{link}");
    let url = &link[1..link.len() - 1];
    let path = &url[format!("http://127.0.0.1:{port}").len()..];
    let token = &path["/desabonnement/".len()..];
    assert_eq!(token.len(), 48, "{token}");
    assert!(
        !url.to_lowercase().contains("lune"),
        "the link shows no address: {url}"
    );
    assert_eq!(
        header(&head, "List-Unsubscribe-Post").as_deref(),
        Some("List-Unsubscribe=One-Click")
    );
    assert!(
        body.contains(&format!(
            "Vous ne souhaitez plus recevoir ces messages d'information ? Désabonnez-vous : {url}"
        )),
        "{body}"
    );
    assert!(body.contains(&format!("<a href=\"{url}\"")), "{body}");

    // A GET (a mail scanner) shows the button and changes nothing.
    let (status, page) = request(port, "GET", path, "");
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("<form method=\"post\""), "{page}");
    assert!(!page.to_lowercase().contains("lune@"), "{page}");
    assert!(opt_outs(&install).is_empty());

    // A token nobody holds, and what is not a token: a French 404.
    for unknown in [
        format!("/desabonnement/{}", "0".repeat(48)),
        "/desabonnement/lune".to_owned(),
    ] {
        let (status, page) = request(port, "POST", &unknown, "List-Unsubscribe=One-Click");
        assert_eq!(status, 404, "{unknown}: {page}");
        assert!(page.contains("Lien inconnu"), "{page}");
    }
    assert!(opt_outs(&install).is_empty());

    // The mail client's one-click POST (RFC 8058).
    let (status, page) = request(port, "POST", path, "List-Unsubscribe=One-Click");
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("Vous êtes désabonné"), "{page}");
    let expected = (
        "lune@example.org".to_owned(),
        "informational".to_owned(),
        "one-click".to_owned(),
    );
    assert_eq!(opt_outs(&install), [expected]);

    // Then U2 moves into instruction (informational) and U1 is granted
    // (mandatory), in one export: only the mandatory alert goes.
    drop_in_inbox(
        &install,
        "3.csv",
        &export(["Instruction en cours", "Voté en CP", "Instruction en cours"]),
    );
    wait_for("the mandatory message", Duration::from_secs(30), || {
        delivered(&install).len() == 2
    });
    let rows = alerts(&install);
    let cancelled = rows
        .iter()
        .find(|r| r.0 == "REF-U2")
        .unwrap_or_else(|| panic!("{rows:?}"));
    assert_eq!(
        (cancelled.1.as_str(), cancelled.2.as_str()),
        ("info-instruction", "cancelled"),
        "{rows:?}"
    );
    assert!(
        cancelled
            .3
            .contains("s'est désabonné des messages d'information"),
        "{rows:?}"
    );
    let granted = rows.iter().find(|r| r.0 == "REF-U1").unwrap();
    assert_eq!(
        (granted.1.as_str(), granted.2.as_str()),
        ("decision-accordee", "sent")
    );
    let second = delivered(&install)
        .into_iter()
        .find(|p| *p != first)
        .unwrap();
    let (head, body) = read_eml(&second);
    assert_eq!(header(&head, "List-Unsubscribe"), None, "{head}");
    assert_eq!(header(&head, "List-Unsubscribe-Post"), None, "{head}");
    assert!(
        body.contains("Ce message ne peut pas être désactivé"),
        "{body}"
    );
    assert!(!body.contains("/desabonnement/"), "{body}");

    // Subscribing again.
    let (status, page) = request(port, "POST", &format!("{path}/annuler"), "");
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("de nouveau"), "{page}");
    assert!(opt_outs(&install).is_empty());
    let (_, page) = request(port, "GET", path, "");
    assert!(page.contains("Me désabonner"), "{page}");

    let exit = crate::common::terminate(&mut daemon.0);
    assert!(exit.success(), "{exit}");
}

#[test]
fn issue_17_item_25_the_pages_button_unsubscribes_and_headers_protect_it() {
    let (install, port) = install();
    import(&install, "1.csv", &export(["Déposé", "Déposé", "Déposé"]));
    import(
        &install,
        "2.csv",
        &export(["Instruction en cours", "Déposé", "Déposé"]),
    );
    let _daemon = install.daemon();
    wait_for("the informational message", Duration::from_secs(30), || {
        delivered(&install).len() == 1
    });
    let (head, _) = read_eml(&delivered(&install)[0]);
    let link = header(&head, "List-Unsubscribe").unwrap();
    let path = link[1..link.len() - 1]
        .split_once(&format!(":{port}"))
        .unwrap()
        .1
        .to_owned();
    // The page's own form posts an empty body.
    let (status, page) = request(port, "POST", &path, "");
    assert_eq!(status, 200, "{page}");
    assert_eq!(opt_outs(&install)[0].2, "page");
    // Security headers on every answer.
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let head = response.split("\r\n\r\n").next().unwrap().to_lowercase();
    for needle in [
        "x-content-type-options: nosniff",
        "referrer-policy: no-referrer",
        "content-security-policy: default-src 'none'",
        "cache-control: no-store",
    ] {
        assert!(head.contains(needle), "missing {needle:?} in:\n{head}");
    }
    // The page of an address that left offers to come back.
    assert!(response.contains("annuler\""), "{response}");
}

#[test]
fn issue_17_item_25_an_informational_rule_needs_a_public_url() {
    let (install, _) = install();
    let config: Vec<String> = std::fs::read_to_string(install.config())
        .unwrap()
        .lines()
        .map(|l| match l.starts_with("public_url") {
            true => "public_url = \"\"".to_owned(),
            false => l.to_owned(),
        })
        .collect();
    std::fs::write(install.config(), config.join("\n")).unwrap();
    let out = install.run(&["check", "--no-environment"]);
    assert_eq!(out.status.code(), Some(78), "{}", text(&out));
    let said = text(&out);
    assert!(
        said.contains("alertes.toml: rule 'info-instruction' is informational: its messages must carry a way out: set [web] public_url and [web] listen"),
        "{said}"
    );
    assert!(!said.contains("decision-accordee"), "{said}");
}

/// The unsubscribe pages in a real browser (issue 20, Tests: the harness of
/// `browser.rs`, proven on the pages that exist): the page a message's link
/// opens, its button (the form posts), the page that says it is done, its
/// button to take it back, and an unknown link; each at 1280 and 360 px, with
/// a screenshot and axe-core's WCAG 2.1 AA rules.
#[test]
fn issue_20_the_unsubscribe_pages_pass_axe_in_a_real_browser_at_both_widths() {
    let Some(browser) = crate::browser::Browser::open("unsubscribe") else {
        return;
    };
    let (install, port) = install();
    import(&install, "1.csv", &export(["Déposé", "Déposé", "Déposé"]));
    import(
        &install,
        "2.csv",
        &export(["Instruction en cours", "Déposé", "Déposé"]),
    );
    let _daemon = install.daemon();
    wait_for("the informational message", Duration::from_secs(30), || {
        delivered(&install).len() == 1
    });
    let (head, _) = read_eml(&delivered(&install)[0]);
    let link = header(&head, "List-Unsubscribe").unwrap_or_else(|| panic!("{head}"));
    let url = &link[1..link.len() - 1];

    // The page a scanner or a person opens: what the link does, one button.
    browser.goto(url);
    assert!(
        browser
            .text()
            .contains("Se désabonner des messages d'information"),
        "{}",
        browser.text()
    );
    browser.check("page");

    // The button posts the form: the choice is recorded, the page says so.
    browser.click("form button[type=submit]");
    assert!(
        browser.text().contains("Vous êtes désabonné"),
        "{}",
        browser.text()
    );
    assert_eq!(opt_outs(&install)[0].2, "page");
    browser.check("done");

    // Taking it back.
    browser.click("form button[type=submit]");
    assert!(browser.text().contains("de nouveau"), "{}", browser.text());
    assert!(opt_outs(&install).is_empty());
    browser.check("undone");

    // A link nobody holds.
    browser.goto(&format!(
        "http://127.0.0.1:{port}/desabonnement/{}",
        "0".repeat(48)
    ));
    assert!(
        browser.text().contains("Lien inconnu"),
        "{}",
        browser.text()
    );
    browser.check("unknown");
}
