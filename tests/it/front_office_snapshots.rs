//! Snapshots of every page of the front office (issue 20, Tests), served by the
//! binary: for a dossier with a full history (steps passed, amounts requested,
//! granted and paid, messages sent, an instructor) and for a sparse one (a
//! reference, a step, the address). What changes from run to run is replaced:
//! the port, the keys of the addresses, the CSRF field, today's date, the
//! time of a message written. Issue 21 adds the page with a message refused
//! and with a message written.
//! `INSTA_UPDATE=always` writes them (docs/CONTRIBUTING.md, "Message snapshots").

use std::time::Duration;

use crate::common::{Install, text};
use crate::daemon::wait_for;
use crate::dossier_page::{dossier_links, sign_in};
use crate::front_office::http;

const HEAD: &str = "N° dossier;Référence;Titre;Dispositif;Bénéficiaire;Courriel;Instructeur;Statut;Date statut;Montant demandé;Montant voté;Montant versé;Date d'export\n";

/// The full dossier's line at each import; the sparse one stays the same.
const HISTORY: [&str; 4] = [
    "P1;REF-P1;Festival des Lunes;Culture;Association Lune;lune@example.org;Camille Martin;Déposé;01/09/2026;20 000,00;;;01/09/2026 06:00",
    "P1;REF-P1;Festival des Lunes;Culture;Association Lune;lune@example.org;Camille Martin;Instruction en cours;15/09/2026;20 000,00;;;15/09/2026 06:00",
    "P1;REF-P1;Festival des Lunes;Culture;Association Lune;lune@example.org;Camille Martin;Voté en CP;01/10/2026;20 000,00;15 000,00;;01/10/2026 06:00",
    "P1;REF-P1;Festival des Lunes;Culture;Association Lune;lune@example.org;Camille Martin;Convention signée;10/10/2026;20 000,00;15 000,00;5 000,00;10/10/2026 06:00",
];
const SPARSE: &str = "S1;REF-S1;;;;lune@example.org;;Déposé;;;;;01/09/2026 06:00";

/// The installation: the test connector with the columns above, alerts that
/// leave at once, the web face on a free port, the four imports done.
fn install() -> (Install, u16) {
    let install = Install::with_connector(|c| {
        c.replace(
            "\"beneficiary.siret\" = \"SIRET\"\n",
            "title = \"Titre\"\n\"instructor.name\" = \"Instructeur\"\n\
             amount_requested = { column = \"Montant demandé\", format = \"auto\" }\n\
             amount_paid = { column = \"Montant versé\", format = \"auto\" }\n",
        )
        .replace(
            "watch = [\"amount_granted\"]",
            "label = \"Portail des aides de la Région\"\nwatch = [\"amount_granted\", \"amount_paid\"]",
        )
    });
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
    for (i, line) in HISTORY.iter().enumerate() {
        let path = install.root().join("exports").join(format!("{i}.csv"));
        std::fs::write(&path, format!("{HEAD}{line}\n{SPARSE}\n")).unwrap();
        let out = install.run(&["import", "portail", path.to_str().unwrap()]);
        assert!(out.status.success(), "{}", text(&out));
    }
    (install, port)
}

/// `page` with what changes between runs replaced.
fn normalised(page: &str, port: u16) -> String {
    let mut page = page.replace(&format!("127.0.0.1:{port}"), "127.0.0.1:PORT");
    for field in ["name=\"csrf\" value=\""] {
        let mut from = 0;
        while let Some(at) = page[from..].find(field) {
            let start = from + at + field.len();
            let end = start + page[start..].find('"').unwrap();
            page.replace_range(start..end, "CSRF");
            from = start;
        }
    }
    // Today in the Region's zone, as the pages say it (and the day before, for a
    // page rendered just before midnight there).
    let now = chrono::Utc::now().with_timezone(&chrono_tz::Europe::Paris);
    for day in [
        now.date_naive(),
        (now - chrono::Duration::minutes(5)).date_naive(),
    ] {
        page = page.replace(&crate::front_office_snapshots::french(day), "AUJOURD'HUI");
    }
    // The time of a message written in the test: "à 10 h 05".
    let mut at = 0;
    while let Some(found) = page[at..].find(" h ") {
        let start = at + found;
        let digits = |range: std::ops::Range<usize>| {
            page.get(range)
                .is_some_and(|d| d.chars().all(|c| c.is_ascii_digit()))
        };
        let hours = (1..=2)
            .rev()
            .find(|&n| start >= n && digits(start - n..start));
        if let Some(n) = hours
            && digits(start + 3..start + 5)
        {
            page.replace_range(start - n..start + 5, "HH h MM");
        }
        at = start + 3;
    }
    // The 32 hex digits of a key.
    let mut out = String::with_capacity(page.len());
    let mut run = String::new();
    for c in page.chars().chain(std::iter::once(' ')) {
        if c.is_ascii_hexdigit() {
            run.push(c);
            continue;
        }
        out.push_str(if run.len() == 32 { "KEY" } else { &run });
        run.clear();
        out.push(c);
    }
    out.pop();
    out
}

/// A date as the pages write it: "1er octobre 2026".
pub(crate) fn french(date: chrono::NaiveDate) -> String {
    use chrono::Datelike;
    const MONTHS: [&str; 12] = [
        "janvier",
        "février",
        "mars",
        "avril",
        "mai",
        "juin",
        "juillet",
        "août",
        "septembre",
        "octobre",
        "novembre",
        "décembre",
    ];
    let day = match date.day() {
        1 => "1er".to_owned(),
        d => d.to_string(),
    };
    format!("{day} {} {}", MONTHS[date.month0() as usize], date.year())
}

fn snapshot(name: &str, content: &str) {
    let mut settings = insta::Settings::clone_current();
    settings.set_omit_expression(true);
    settings.set_prepend_module_to_snapshot(false);
    settings.set_snapshot_path("snapshots/front_office");
    settings.bind(|| insta::assert_snapshot!(name, content));
}

/// Issue 21: the dossier's page with a message refused (empty), then with a
/// message written (the dossier names no instructor and no `[web]
/// service_email` is set: it is kept, not forwarded, and the page says so).
fn write_and_snapshot(port: u16, session: &str, link: &str, csrf: &str) {
    let refused = http(
        port,
        "POST",
        &format!("{link}/messages"),
        session,
        &format!("csrf={csrf}&texte=+"),
    );
    assert_eq!(refused.status, 422, "{}", refused.body);
    snapshot("dossier-message-refuse", &normalised(&refused.body, port));
    let sent = http(
        port,
        "POST",
        &format!("{link}/messages"),
        session,
        &format!("csrf={csrf}&texte=Bonjour%2C%0D%0Aquand+sera+vers%C3%A9+le+solde+%3F"),
    );
    assert_eq!(sent.status, 303, "{}", sent.body);
    let page = http(port, "GET", link, session, "");
    snapshot("dossier-echanges", &normalised(&page.body, port));
}

#[test]
fn issue_20_every_page_of_the_front_office_for_a_full_and_a_sparse_dossier() {
    let (install, port) = install();
    let _daemon = install.daemon();
    wait_for("the web face", Duration::from_secs(30), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    let page = |path: &str, cookies: &str| {
        let answer = http(port, "GET", path, cookies, "");
        (answer.status, normalised(&answer.body, port))
    };
    let (status, home) = page("/", "");
    assert_eq!(status, 200);
    snapshot("accueil", &home);
    let form = http(port, "GET", "/", "", "");
    let sent = http(
        port,
        "POST",
        "/connexion",
        &format!("csrf={}", form.cookie("csrf").unwrap()),
        &format!("csrf={}&email=nobody%40example.org", form.csrf()),
    );
    assert_eq!(sent.status, 200, "{}", sent.body);
    snapshot("envoye", &normalised(&sent.body, port));

    // The granted message must be kept before the pages are read.
    wait_for("the messages about REF-P1", Duration::from_secs(30), || {
        std::fs::read_dir(install.root().join("outbox")).is_ok_and(|d| {
            d.filter(|e| {
                e.as_ref()
                    .unwrap()
                    .path()
                    .extension()
                    .is_some_and(|x| x == "eml")
            })
            .count()
                >= 1
        })
    });
    let session = sign_in(&install, port, "lune@example.org");
    let list = http(port, "GET", "/dossiers", &session, "");
    assert_eq!(list.status, 200);
    snapshot("dossiers", &normalised(&list.body, port));
    for link in dossier_links(&list) {
        let dossier = http(port, "GET", &link, &session, "");
        assert_eq!(dossier.status, 200, "{}", dossier.body);
        let name = if dossier.body.contains("REF-P1") {
            "dossier-complet"
        } else {
            "dossier-succinct"
        };
        snapshot(name, &normalised(&dossier.body, port));
        if name == "dossier-complet" {
            write_and_snapshot(port, &session, &link, &dossier.csrf());
        }
        let body = dossier.body.replace("&#x2f;", "/");
        if let Some(at) = body.find("/messages/") {
            let start = body[..at].rfind('"').unwrap() + 1;
            let end = at + body[at..].find('"').unwrap();
            let (status, message) = page(&body[start..end], &session);
            assert_eq!(status, 200, "{message}");
            snapshot("message", &message);
        }
    }
    let (status, missing) = page(&format!("/dossiers/{}", "0".repeat(32)), &session);
    assert_eq!(status, 404);
    snapshot("introuvable", &missing);
    let (status, unknown) = page(&format!("/connexion/{}", "0".repeat(48)), "");
    assert_eq!(status, 404);
    snapshot("lien-inconnu", &unknown);
}
