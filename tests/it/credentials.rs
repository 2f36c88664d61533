//! Credentials are never sent in clear (issue 17, item 14): an `http://` API that
//! would carry a token, a password or a secret header, and an SMTP relay with a
//! password and `tls = "none"`, are refused by `check`, `import` and `run`, except
//! on this machine or with `allow_insecure` / `allow_insecure_auth`; header
//! secrets come from the environment or a file; a connector file that holds a
//! credential and that every user may read is warned about.

use std::os::unix::fs::PermissionsExt;
use std::process::Output;
use std::time::{Duration, Instant};

use wiremock::matchers::{header, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::common::{Install, n, text};
use crate::http::{TOKEN_VAR, connector_at, page};

const KEY_VAR: &str = "REGION_TEST_API_KEY";
const SMTP_PASSWORD_VAR: &str = "REGION_TEST_SMTP_PASSWORD";

/// The bearer connector of `tests/it/http.rs`, at `base`, with `extra` in [source].
fn api(base: &str, extra: &str) -> String {
    connector_at(base, "kind = \"none\"", extra, "full")
}

/// The same connector without `[source.auth]`.
fn without_auth(text: &str) -> String {
    text.replace(
        &format!("[source.auth]\nkind = \"bearer\"\ntoken_env = \"{TOKEN_VAR}\"\n"),
        "",
    )
}

/// `text` with `table` (a `[source.…]` table) inserted before `[source.pagination]`.
fn with_table(text: &str, table: &str) -> String {
    text.replace(
        "[source.pagination]",
        &format!("{table}\n[source.pagination]"),
    )
}

fn ds(base_url: &str, extra: &str) -> String {
    format!(
        r#"kind = "demarches_simplifiees"
mode = "incremental"
[source]
base_url = "{base_url}"
demarches = [123]
token_env = "{TOKEN_VAR}"
{extra}
[fields]
id = "/number"
step = "/state"
"#
    )
}

/// A command with the secrets' variables set.
fn run(install: &Install, args: &[&str]) -> Output {
    install
        .cmd(args)
        .env(TOKEN_VAR, "s3cret")
        .env(KEY_VAR, "k-from-env")
        .env(SMTP_PASSWORD_VAR, "smtp-s3cret")
        .output()
        .unwrap()
}

/// The exit code of `run`, or `None` when it still runs after 10 s (then stopped).
fn daemon_exit(install: &Install) -> Option<i32> {
    let mut child = install
        .cmd(&["run"])
        .env(TOKEN_VAR, "s3cret")
        .env(SMTP_PASSWORD_VAR, "smtp-s3cret")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(10) {
        if let Some(status) = child.try_wait().unwrap() {
            return status.code();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    crate::common::terminate(&mut child);
    None
}

/// `check`, `import` and `run` all refuse the installation with exit 78, and
/// `check` names the place and the reason.
fn refused(install: &Install, place: &str, needles: &[&str]) {
    let out = run(install, &["check"]);
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(78), "{shown}");
    assert!(shown.contains(place), "{place:?} not in {shown}");
    for needle in needles {
        assert!(shown.contains(needle), "{needle:?} not in {shown}");
    }
    let import = run(install, &["import", "portail", "--json"]);
    assert_eq!(import.status.code(), Some(78), "{}", text(&import));
    assert_eq!(daemon_exit(install), Some(78), "run refuses too");
}

fn accepted(install: &Install) {
    let out = run(install, &["check"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}

#[test]
fn credentials_over_plain_http_to_another_machine_are_refused() {
    let clear = "is plain http:// to api.example.org";
    let advice = "use https://, or set allow_insecure = true in [source]";
    let bearer = Install::with_text(api("http://api.example.org", ""));
    refused(
        &bearer,
        "portail.toml",
        &[clear, "the bearer token of [source.auth]", advice],
    );
    let basic = Install::with_text(api("http://api.example.org", "").replace(
        &format!("kind = \"bearer\"\ntoken_env = \"{TOKEN_VAR}\""),
        &format!("kind = \"basic\"\nusername = \"region\"\npassword_env = \"{TOKEN_VAR}\""),
    ));
    refused(
        &basic,
        "portail.toml",
        &[clear, "the password of [source.auth]"],
    );
    let secret_header = Install::with_text(with_table(
        &without_auth(&api("http://api.example.org", "")),
        &format!("[source.secret_headers]\n\"X-Api-Key\" = {{ env = \"{KEY_VAR}\" }}"),
    ));
    refused(
        &secret_header,
        "portail.toml",
        &[clear, "header 'X-Api-Key' of [source.secret_headers]"],
    );
    let inline = Install::with_text(without_auth(&api(
        "http://api.example.org",
        "headers = { \"X-Api-Key\" = \"k-inline-123\" }",
    )));
    refused(
        &inline,
        "portail.toml",
        &[clear, "header 'X-Api-Key' in [source.headers]"],
    );
    let in_url = Install::with_text(without_auth(&api(
        "http://region:pw-456@api.example.org",
        "",
    )));
    refused(&in_url, "portail.toml", &[clear, "the password in url"]);
    for install in [&inline, &in_url] {
        let shown = text(&run(install, &["check"]));
        assert!(
            !shown.contains("k-inline-123") && !shown.contains("pw-456"),
            "{shown}"
        );
    }
    let demarches = Install::with_text(ds("http://ds.example.org", ""));
    refused(
        &demarches,
        "portail.toml",
        &[
            "[source] base_url is plain http:// to ds.example.org",
            "the API token (token_env or token_file)",
        ],
    );
}

#[test]
fn plain_http_is_accepted_on_this_machine_or_when_allow_insecure_says_so() {
    for base in [
        "http://127.0.0.1:9",
        "http://localhost:9",
        "http://[::1]:9",
        "http://127.2.3.4",
    ] {
        accepted(&Install::with_text(api(base, "")));
        accepted(&Install::with_text(ds(base, "")));
    }
    accepted(&Install::with_text(api(
        "http://api.example.org",
        "allow_insecure = true",
    )));
    accepted(&Install::with_text(ds(
        "http://ds.example.org",
        "allow_insecure = true",
    )));
    // Nothing secret: nothing to refuse.
    accepted(&Install::with_text(without_auth(&api(
        "http://api.example.org",
        "",
    ))));
    accepted(&Install::with_text(api("https://api.example.org", "")));
}

/// An installation delivering to `host` with `tls` and a password, plus `extra` [smtp] keys.
fn smtp_install(host: &str, tls: &str, extra: &str) -> Install {
    let install = Install::new();
    install.append_config(&format!(
        "[delivery]\ntransport = \"smtp\"\n[smtp]\nhost = \"{host}\"\nport = 2525\ntls = \"{tls}\"\n\
         username = \"alertissimo\"\npassword_env = \"{SMTP_PASSWORD_VAR}\"\n{extra}\n"
    ));
    install
}

#[test]
fn an_smtp_password_in_clear_to_another_machine_is_refused() {
    let install = smtp_install("relay.example.org", "none", "");
    refused(
        &install,
        "config.toml",
        &[
            "key `smtp.tls`",
            "tls = \"none\" would send the password of 'alertissimo' to relay.example.org in clear",
            "smtp.allow_insecure_auth = true",
        ],
    );
    let flush = run(&install, &["outbox", "flush"]);
    assert_eq!(flush.status.code(), Some(78), "{}", text(&flush));
}

#[test]
fn an_smtp_password_in_clear_is_accepted_on_this_machine_or_when_allowed() {
    for host in ["127.0.0.1", "localhost", "::1"] {
        accepted(&smtp_install(host, "none", ""));
    }
    accepted(&smtp_install(
        "relay.example.org",
        "none",
        "allow_insecure_auth = true",
    ));
    accepted(&smtp_install("relay.example.org", "starttls", ""));
    accepted(&smtp_install("relay.example.org", "tls", ""));
}

/// A wiremock API that answers only when `X-Api-Key` is `value`.
async fn api_wanting_key(value: &str) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(path("/api/dossiers"))
        .and(header("X-Api-Key", value))
        .respond_with(ResponseTemplate::new(200).set_body_json(page(1..=2)))
        .expect(1)
        .mount(&server)
        .await;
    server
}

async fn import_with_keys(install: &Install) -> (serde_json::Value, i32, String) {
    tokio::task::block_in_place(|| {
        let out = run(install, &["import", "portail", "--json"]);
        let summary = serde_json::from_slice(&out.stdout).unwrap_or_default();
        (summary, out.status.code().unwrap_or(-1), text(&out))
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_header_secret_is_read_from_the_environment() {
    let server = api_wanting_key("k-from-env").await;
    let install = Install::with_text(with_table(
        &api(&server.uri(), ""),
        &format!("[source.secret_headers]\n\"X-Api-Key\" = {{ env = \"{KEY_VAR}\" }}"),
    ));
    let (summary, code, shown) = import_with_keys(&install).await;
    assert_eq!((code, n(&summary, "created")), (0, 2), "{shown}");
    assert!(!shown.contains("k-from-env"), "never shown: {shown}");

    // Unset, it is named (never its value).
    let out = install
        .cmd(&["check"])
        .env(TOKEN_VAR, "s3cret")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(78), "{}", text(&out));
    assert!(
        text(&out).contains(&format!(
            "[source.secret_headers] 'X-Api-Key': the environment variable {KEY_VAR} is not set"
        )),
        "{}",
        text(&out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_header_secret_is_read_from_a_file() {
    let server = api_wanting_key("k-from-file").await;
    let install = Install::with_text(with_table(
        &api(&server.uri(), ""),
        "[source.secret_headers]\n\"X-Api-Key\" = { file = \"api-key\" }",
    ));
    let key = install.root().join("connectors/api-key");
    std::fs::write(&key, "k-from-file\n").unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let (summary, code, shown) = import_with_keys(&install).await;
    assert_eq!((code, n(&summary, "created")), (0, 2), "{shown}");
    assert!(!shown.contains("k-from-file"), "never shown: {shown}");

    // A key file every user may read is warned about, like every secret file.
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = run(&install, &["check"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains(
            "(secret_headers 'X-Api-Key' of connector portail) is readable by every user"
        ),
        "{}",
        text(&out)
    );
}

#[test]
fn a_connector_file_holding_a_secret_readable_by_others_is_warned_about() {
    let inline = Install::with_text(without_auth(&api(
        "https://api.example.org",
        "headers = { \"X-Api-Key\" = \"k-inline-123\", \"X-Api-Version\" = \"2\" }",
    )));
    let file = inline.root().join("connectors/portail.toml");
    let warning = "holds a secret (header 'X-Api-Key' in [source.headers]) and is readable by every user of this machine (mode 0644)";
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = run(&inline, &["check"]);
    assert_eq!(out.status.code(), Some(0), "a warning: {}", text(&out));
    assert!(text(&out).contains(warning), "{}", text(&out));
    assert!(text(&out).contains("warning: "), "{}", text(&out));
    assert!(!text(&out).contains("k-inline-123"), "{}", text(&out));

    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o640)).unwrap();
    let out = run(&inline, &["check"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(!text(&out).contains("holds a secret"), "{}", text(&out));

    // Secrets read from the environment leave the connector file nothing to hide.
    let from_env = Install::with_text(api("https://api.example.org", ""));
    let file = from_env.root().join("connectors/portail.toml");
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = run(&from_env, &["check"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(!text(&out).contains("holds a secret"), "{}", text(&out));
}
