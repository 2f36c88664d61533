//! Snapshots of the staff view's pages (issue 21, item 2), served by the
//! binary: an instructor's list (a beneficiary waiting for an answer), the
//! chief's list with its filters, a dossier's staff page with an exchange each
//! way, `/pilotage`, and the refusals. What changes from run to run is replaced
//! as for the front office's snapshots, and the times of day; the table of
//! dossiers per month, whose columns follow the calendar, is left out.
//! `INSTA_UPDATE=always` writes them.

use std::time::Duration;

use crate::daemon::wait_for;
use crate::front_office::http;
use crate::front_office_snapshots::normalised;
use crate::staff_view::{CHIEF, install, links, sign_in};

/// `page` normalised, its times of day ("à 09:41") too.
fn stable(page: &str, port: u16) -> String {
    let page = normalised(page, port);
    let mut out = String::with_capacity(page.len());
    let mut rest = page.as_str();
    while let Some(at) = rest.find(" à ") {
        let (before, after) = rest.split_at(at + " à ".len());
        out.push_str(before);
        let time = after.as_bytes();
        if time.len() >= 5
            && time[2] == b':'
            && [0, 1, 3, 4].iter().all(|&i| time[i].is_ascii_digit())
        {
            out.push_str("HH:MM");
            rest = &after[5..];
        } else {
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

fn snapshot(name: &str, content: &str) {
    let mut settings = insta::Settings::clone_current();
    settings.set_omit_expression(true);
    settings.set_prepend_module_to_snapshot(false);
    settings.set_snapshot_path("snapshots/staff");
    settings.bind(|| insta::assert_snapshot!(name, content));
}

#[test]
fn issue_21_every_page_of_the_staff_view() {
    let (install, port) = install("");
    let db = rusqlite::Connection::open(install.root().join("state/alertissimo.db")).unwrap();
    db.execute(
        "INSERT INTO exchanges (dossier_id, at, direction, channel, kind, author, body)
         SELECT id, '2026-10-05T08:00:00Z', 'beneficiary', 'web', 'message', 'lune@example.org',
                'Bonjour, nous attendons la convention.'
         FROM dossiers WHERE reference = 'REF-F0'",
        [],
    )
    .unwrap();
    drop(db);
    // The stalls are recorded before the pages are read.
    let out = install.run(&["evaluate"]);
    assert!(out.status.success(), "{}", crate::common::text(&out));
    let _daemon = install.daemon();
    wait_for("the web face", Duration::from_secs(30), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    let (a, _) = sign_in(&install, port, "agent.a@region.example.org");
    let list = http(port, "GET", "/instruction", &a, "");
    assert_eq!(list.status, 200);
    // The wait grows with the calendar: said once, then left out.
    assert!(list.body.contains("attend une réponse depuis "));
    let body = list
        .body
        .split("attend une réponse depuis ")
        .enumerate()
        .map(|(i, part)| {
            if i == 0 {
                part.to_owned()
            } else {
                format!(
                    "attend une réponse depuis N{}",
                    &part[part.find('<').unwrap()..]
                )
            }
        })
        .collect::<String>();
    snapshot("instruction", &stable(&body, port));

    let f0 = links(&list)
        .into_iter()
        .find(|(r, _)| r == "REF-F0")
        .unwrap()
        .1;
    let page = http(port, "GET", &f0, &a, "");
    let sent = http(
        port,
        "POST",
        &format!("{f0}/reponses"),
        &a,
        &format!(
            "csrf={}&texte=La+convention+part+cette+semaine.%0ABien+cordialement.",
            page.csrf()
        ),
    );
    assert_eq!(sent.status, 303, "{}", sent.body);
    // Once the dispatcher has forwarded the answer, the page says so.
    wait_for("the answer forwarded", Duration::from_secs(30), || {
        http(port, "GET", &f0, &a, "").body.contains("transmis le")
    });
    let page = http(port, "GET", &f0, &a, "");
    assert_eq!(page.status, 200);
    snapshot("instruction-dossier", &stable(&page.body, port));

    let (chief, _) = sign_in(&install, port, CHIEF);
    let all = http(port, "GET", "/instruction?dispositif=Culture", &chief, "");
    assert_eq!(all.status, 200);
    snapshot("instruction-pilotage", &stable(&all.body, port));
    let pilotage = http(port, "GET", "/pilotage", &chief, "");
    assert_eq!(pilotage.status, 200);
    let cut = pilotage.body.find("<h2 id=\"etapes\">").unwrap();
    snapshot("pilotage", &stable(&pilotage.body[..cut], port));

    let (lune, _) = sign_in(&install, port, "lune@example.org");
    let refused = http(port, "GET", "/instruction", &lune, "");
    assert_eq!(refused.status, 403);
    snapshot("reserve-aux-agents", &stable(&refused.body, port));
    let missing = http(
        port,
        "GET",
        &format!("/instruction/dossiers/{}", "0".repeat(32)),
        &a,
        "",
    );
    assert_eq!(missing.status, 404);
    snapshot("instruction-introuvable", &stable(&missing.body, port));
}
