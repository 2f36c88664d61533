//! HTTPS and SMTP TLS are tested (issue 17, item 15), with a private CA made in
//! the test (`pki`): an API over HTTPS is refused without its `ca_file`, naming
//! the certificate problem, and read with it; a relay offering STARTTLS or
//! implicit TLS and requiring AUTH (PLAIN, LOGIN) gets the messages when
//! `smtp.ca_file` trusts its CA, and an untrusted certificate or a wrong password
//! is the relay's failure: the alerts wait.

use mailin::AuthMechanism;
use serde_json::{Value, json};

use crate::common::{Install, n, text};
use crate::delivery::{all, flush, flush_undelivered, statuses, three_alerts};
use crate::http::{TOKEN_VAR, connector_at, page};
use crate::pki::{Pki, serve_https};
use crate::smtp_server::{Login, Mode, Security, SmtpServer};

/// `import portail --json` with the API token set: the summary and exit code.
fn import(install: &Install) -> (Value, i32) {
    let out = install
        .cmd(&["import", "portail", "--json"])
        .env(TOKEN_VAR, "s3cret")
        .output()
        .unwrap();
    let summary = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not one JSON object ({e}):\n{}", text(&out)));
    (summary, out.status.code().unwrap_or(-1))
}

fn assert_untrusted(summary: &Value, code: i32) {
    assert_eq!(code, 1, "{summary}");
    assert_eq!(summary["status"], "refused", "{summary}");
    let reasons = summary["reasons"].to_string();
    for needle in [
        "the server's TLS certificate is not trusted (invalid peer certificate: UnknownIssuer)",
        "set ca_file in [source] to that CA's PEM file",
    ] {
        assert!(reasons.contains(needle), "{needle:?} not in {reasons}");
    }
}

#[test]
fn an_https_api_signed_by_a_private_ca_needs_its_ca_file() {
    let pki = Pki::new();
    let port = serve_https(&pki, page(1..=2).to_string());
    for host in ["127.0.0.1", "localhost"] {
        let base = format!("https://{host}:{port}");
        let without = Install::with_text(connector_at(&base, "kind = \"none\"", "", "full"));
        let (summary, code) = import(&without);
        assert_untrusted(&summary, code);
        assert!(without.dossiers().is_empty());

        let with = Install::with_text(connector_at(
            &base,
            "kind = \"none\"",
            "ca_file = \"region-ca.pem\"",
            "full",
        ));
        pki.copy_ca_to(&with.root().join("connectors/region-ca.pem"));
        let (summary, code) = import(&with);
        assert_eq!((code, n(&summary, "created")), (0, 2), "{summary}");
    }
}

#[test]
fn demarches_simplifiees_over_https_uses_its_ca_file() {
    let pki = Pki::new();
    let empty = json!({ "pageInfo": { "hasNextPage": false, "endCursor": null }, "nodes": [] });
    let body = json!({ "data": { "demarche": {
        "number": 123, "title": "Aide", "dossiers": empty, "deletedDossiers": empty
    } } });
    let port = serve_https(&pki, body.to_string());
    let connector = |extra: &str| {
        format!(
            "kind = \"demarches_simplifiees\"\nmode = \"incremental\"\n[source]\n\
             base_url = \"https://127.0.0.1:{port}\"\ndemarches = [123]\ntoken_env = \"{TOKEN_VAR}\"\n\
             retries = 0\n{extra}\n[fields]\nid = \"/number\"\nstep = \"/state\"\n"
        )
    };
    let (summary, code) = import(&Install::with_text(connector("")));
    assert_untrusted(&summary, code);
    let with = Install::with_text(connector("ca_file = \"ds-ca.pem\""));
    pki.copy_ca_to(&with.root().join("connectors/ds-ca.pem"));
    let (summary, code) = import(&with);
    assert_eq!(code, 0, "{summary}");
}

const USER: &str = "alertissimo";
const PASSWORD: &str = "smtp-s3cret";

fn login(mechanism: AuthMechanism) -> Option<Login> {
    Some(Login {
        user: USER.to_owned(),
        password: PASSWORD.to_owned(),
        mechanisms: vec![mechanism],
    })
}

/// The fixture connector, alerts sent at once, and the relay `server` reached
/// with `tls`, the password `password` (a file), and `extra` [smtp] keys.
fn install(server: &SmtpServer, tls: &str, password: &str, extra: &str) -> Install {
    let install = Install::tolerant();
    let file = install.root().join("smtp-password");
    std::fs::write(&file, format!("{password}\n")).unwrap();
    install.append_config(&format!(
        "[alerts]\ndebounce = \"0s\"\nsend_windows = []\n\
         [delivery]\ntransport = \"smtp\"\n\
         [smtp]\nhost = \"127.0.0.1\"\nport = {}\ntls = \"{tls}\"\ntimeout = \"5s\"\n\
         username = \"{USER}\"\npassword_file = \"smtp-password\"\n{extra}\n\
         from = \"Région Test <aides@region.example.org>\"\n",
        server.port
    ));
    install
}

/// An installation that trusts `pki`'s CA through `smtp.ca_file`.
fn trusting(pki: &Pki, server: &SmtpServer, tls: &str, password: &str) -> Install {
    let install = install(server, tls, password, "ca_file = \"relay-ca.pem\"");
    pki.copy_ca_to(&install.root().join("relay-ca.pem"));
    install
}

fn delivered_over_tls_as_user(server: &SmtpServer) {
    let received = server.received();
    assert_eq!(received.len(), 3);
    assert!(
        received
            .iter()
            .all(|r| r.tls && r.user.as_deref() == Some(USER))
    );
}

#[test]
fn starttls_and_auth_plain_deliver_when_the_relay_ca_is_trusted() {
    let pki = Pki::new();
    let security = Security::StartTls(pki.server.clone());
    let server = SmtpServer::start_with(Mode::Accept, security, login(AuthMechanism::Plain));
    let install = trusting(&pki, &server, "starttls", PASSWORD);
    let check = install.run(&["check"]);
    assert_eq!(check.status.code(), Some(0), "{}", text(&check));
    three_alerts(&install);
    let report = flush(&install, false);
    assert_eq!(statuses(&install), all("sent"), "{report}");
    delivered_over_tls_as_user(&server);
}

#[test]
fn implicit_tls_and_auth_login_deliver_when_the_relay_ca_is_trusted() {
    let pki = Pki::new();
    let security = Security::Implicit(pki.server.clone());
    let server = SmtpServer::start_with(Mode::Accept, security, login(AuthMechanism::Login));
    let install = trusting(&pki, &server, "tls", PASSWORD);
    three_alerts(&install);
    let report = flush(&install, false);
    assert_eq!(statuses(&install), all("sent"), "{report}");
    delivered_over_tls_as_user(&server);
}

/// A flush that the relay fails: the transport pauses, every alert waits, and
/// `needle` (the relay's trouble) is told.
fn relay_fails(install: &Install, needle: &str) {
    three_alerts(install);
    let report = flush_undelivered(install, false);
    assert!(report.contains("the smtp transport fails"), "{report}");
    assert_eq!(statuses(install), all("pending"), "{report}");
    let list = text(&install.run(&["outbox", "list"]));
    assert!(
        report.contains(needle) || list.contains(needle),
        "{needle:?} not in {report}\n{list}"
    );
}

#[test]
fn an_untrusted_relay_certificate_is_a_relay_failure() {
    let pki = Pki::new();
    let starttls = SmtpServer::start_with(
        Mode::Accept,
        Security::StartTls(pki.server.clone()),
        login(AuthMechanism::Plain),
    );
    relay_fails(
        &install(&starttls, "starttls", PASSWORD, ""),
        "UnknownIssuer",
    );
    let implicit = SmtpServer::start_with(
        Mode::Accept,
        Security::Implicit(pki.server.clone()),
        login(AuthMechanism::Plain),
    );
    relay_fails(&install(&implicit, "tls", PASSWORD, ""), "UnknownIssuer");
    assert!(starttls.received().is_empty() && implicit.received().is_empty());
}

#[test]
fn a_wrong_smtp_password_is_a_relay_failure() {
    let pki = Pki::new();
    let security = Security::StartTls(pki.server.clone());
    let server = SmtpServer::start_with(Mode::Accept, security, login(AuthMechanism::Plain));
    relay_fails(
        &trusting(&pki, &server, "starttls", "wrong-password"),
        "535",
    );
    assert!(server.received().is_empty());
}
