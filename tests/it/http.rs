//! The `http_json` kind through the binary, against a real HTTP server on
//! 127.0.0.1 (wiremock): pagination by page, offset, cursor and `Link`, bearer
//! tokens, incremental polling, and the errors an API gives (401, 403, 429 with
//! `Retry-After`, timeouts, malformed JSON, a response too large).

use serde_json::{Value, json};
use wiremock::matchers::{header, method, path, query_param, query_param_is_missing};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::common::{Install, n, text};

pub(crate) const TOKEN_VAR: &str = "REGION_TEST_API_TOKEN";

/// An `http_json` connector reading `server`, with this `[source.pagination]`.
pub(crate) fn connector(
    server: &MockServer,
    pagination: &str,
    extra_source: &str,
    mode: &str,
) -> String {
    connector_at(&server.uri(), pagination, extra_source, mode)
}

/// An `http_json` connector reading `{base}/api/dossiers`, with this `[source.pagination]`.
pub(crate) fn connector_at(base: &str, pagination: &str, extra_source: &str, mode: &str) -> String {
    format!(
        r#"kind = "http_json"
schedule = "* * * * * *"
mode = "{mode}"

[source]
url = "{}/api/dossiers"
records = "/data"
timeout = "1s"
retries = 1
{extra_source}

[source.auth]
kind = "bearer"
token_env = "{TOKEN_VAR}"

[source.pagination]
{pagination}

[fields]
id = "/id"
reference = "/reference"
scheme = "/dispositif"
"beneficiary.name" = "/beneficiaire/nom"
"beneficiary.siret" = "/beneficiaire/siret"
"beneficiary.email" = "/beneficiaire/courriels"
step = "/statut"
step_since = "/statut_depuis"
amount_granted = {{ column = "/montant_accorde", format = "auto", optional = true }}

[steps]
"Déposé" = "depose"
"Instruction en cours" = "instruction"
"Voté en CP" = "accorde"
"#,
        base
    )
}

fn dossier(i: usize) -> Value {
    json!({
        "id": format!("D{i}"),
        "reference": format!("REF-{i}"),
        "dispositif": "Aide aux TPE",
        "beneficiaire": {
            "nom": format!("Entreprise n°{i}"),
            "siret": 73282932000074_u64,
            "courriels": [format!("contact{i}@exemple.fr"), "compta@exemple.fr"]
        },
        "statut": if i.is_multiple_of(2) { "Déposé" } else { "Instruction en cours" },
        "statut_depuis": "2026-09-01",
        "montant_accorde": if i == 5 { json!(8500.5) } else { Value::Null }
    })
}

pub(crate) fn page(items: std::ops::RangeInclusive<usize>) -> Value {
    json!({ "data": items.map(dossier).collect::<Vec<_>>() })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn page_numbers_with_a_bearer_token() {
    let server = MockServer::start().await;
    for (number, items) in [(1, 1..=2), (2, 3..=4), (3, 5..=5)] {
        Mock::given(method("GET"))
            .and(path("/api/dossiers"))
            .and(query_param("page", number.to_string()))
            .and(query_param("per_page", "2"))
            .and(header("Authorization", "Bearer s3cret"))
            .respond_with(ResponseTemplate::new(200).set_body_json(page(items)))
            .expect(1)
            .mount(&server)
            .await;
    }
    let install = Install::with_text(connector(
        &server,
        "kind = \"page\"\nparam = \"page\"\nsize_param = \"per_page\"\nsize = 2",
        "",
        "full",
    ));
    let (summary, code) = install.import_api(TOKEN_VAR, "s3cret").await;
    assert_eq!(code, 0, "{summary}");
    assert_eq!(n(&summary, "created"), 5, "{summary}");
    let d5 = install.fields("REF-5");
    // Numbers keep every digit; a list of e-mails is read as a list.
    assert_eq!(d5["beneficiary.siret"], "73282932000074");
    assert_eq!(d5["amount_granted"], "8500.50");
    assert_eq!(
        d5["beneficiary.email"],
        "contact5@exemple.fr, compta@exemple.fr"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offsets_and_link_headers() {
    let server = MockServer::start().await;
    for (offset, items) in [(0, 1..=2), (2, 3..=4), (4, 5..=5)] {
        Mock::given(path("/api/dossiers"))
            .and(query_param("offset", offset.to_string()))
            .and(query_param("limit", "2"))
            .respond_with(ResponseTemplate::new(200).set_body_json(page(items)))
            .mount(&server)
            .await;
    }
    let install_offset = Install::with_text(connector(
        &server,
        "kind = \"offset\"\nsize = 2",
        "",
        "full",
    ));
    let (summary, code) = install_offset.import_api(TOKEN_VAR, "s3cret").await;
    assert_eq!((code, n(&summary, "created")), (0, 5), "{summary}");

    let server = MockServer::start().await;
    let next = format!("<{}/api/dossiers?after=D2>; rel=\"next\"", server.uri());
    Mock::given(path("/api/dossiers"))
        .and(query_param_is_missing("after"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("Link", next.as_str())
                .set_body_json(page(1..=2)),
        )
        .mount(&server)
        .await;
    Mock::given(path("/api/dossiers"))
        .and(query_param("after", "D2"))
        .respond_with(ResponseTemplate::new(200).set_body_json(page(3..=4)))
        .mount(&server)
        .await;
    let install_link = Install::with_text(connector(&server, "kind = \"link\"", "", "full"));
    let (summary, code) = install_link.import_api(TOKEN_VAR, "s3cret").await;
    assert_eq!((code, n(&summary, "created")), (0, 4), "{summary}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cursor_pages_and_incremental_polling() {
    let server = MockServer::start().await;
    let mut first = page(1..=3);
    first["meta"] = json!({ "next": "c-2" });
    Mock::given(path("/api/dossiers"))
        .and(query_param_is_missing("cursor"))
        .and(query_param_is_missing("updated_since"))
        .respond_with(ResponseTemplate::new(200).set_body_json(first))
        .expect(1)
        .mount(&server)
        .await;
    let mut last = page(4..=5);
    last["meta"] = json!({ "next": null });
    Mock::given(path("/api/dossiers"))
        .and(query_param("cursor", "c-2"))
        .respond_with(ResponseTemplate::new(200).set_body_json(last))
        .expect(1)
        .mount(&server)
        .await;
    let install = Install::with_text(connector(
        &server,
        "kind = \"cursor\"\nnext = \"/meta/next\"",
        "updated_since = \"updated_since\"",
        "incremental",
    ));
    let (summary, code) = install.import_api(TOKEN_VAR, "s3cret").await;
    assert_eq!((code, n(&summary, "created")), (0, 5), "{summary}");

    // The next import asks only for what changed since the first one started:
    // D2 moved on; the others, absent, have not disappeared.
    let mut changed = dossier(2);
    changed["statut"] = json!("Voté en CP");
    Mock::given(path("/api/dossiers"))
        .and(query_param_is_missing("cursor"))
        .and(query_param("updated_since", started_at(&install)))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({ "data": [changed], "meta": {} })),
        )
        .expect(1)
        .mount(&server)
        .await;
    let (summary, code) = install.import_api(TOKEN_VAR, "s3cret").await;
    assert_eq!(code, 0, "{summary}");
    assert_eq!(n(&summary, "step_changed"), 1, "{summary}");
    assert_eq!(n(&summary, "disappeared"), 0, "{summary}");
}

/// What `updated_since` carries after the first run: when it started, less the
/// five-minute margin for clocks that differ.
fn started_at(install: &Install) -> String {
    let started: String = install
        .sql()
        .query_row("SELECT started_at FROM runs WHERE id = 1", [], |r| r.get(0))
        .unwrap();
    let started = chrono::DateTime::parse_from_rfc3339(&started).unwrap();
    (started - chrono::Duration::minutes(5))
        .to_utc()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

async fn refused_with(response: ResponseTemplate, needle: &str) {
    let server = MockServer::start().await;
    Mock::given(path("/api/dossiers"))
        .respond_with(response)
        .mount(&server)
        .await;
    let install = Install::with_text(connector(
        &server,
        "kind = \"none\"",
        "max_response_mb = 1",
        "full",
    ));
    let (summary, code) = install.import_api(TOKEN_VAR, "s3cret").await;
    assert_eq!(code, 1, "{summary}");
    assert_eq!(summary["status"], "refused", "{summary}");
    let reasons = summary["reasons"].to_string();
    assert!(reasons.contains(needle), "{needle:?} not in {reasons}");
    assert!(install.dossiers().is_empty(), "nothing is applied");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_errors_refuse_the_snapshot_with_a_clear_reason() {
    refused_with(
        ResponseTemplate::new(401),
        "401 Unauthorized: the credentials were refused",
    )
    .await;
    refused_with(
        ResponseTemplate::new(403).set_body_string("IP not allowed"),
        "403 Forbidden: the credentials do not give access",
    )
    .await;
    refused_with(
        ResponseTemplate::new(200).set_body_string("{\"data\": [ {\"id\": "),
        "the response is not valid JSON",
    )
    .await;
    refused_with(
        ResponseTemplate::new(200).set_body_json(json!({ "items": [] })),
        "no records at '/data' in the page",
    )
    .await;
    refused_with(
        ResponseTemplate::new(200)
            .set_body_json(page(1..=1))
            .set_delay(std::time::Duration::from_secs(3)),
        "no answer within 1 s (2 attempts)",
    )
    .await;
    refused_with(ResponseTemplate::new(500), "still failing after 2 attempts").await;
    let huge = "x".repeat(1024 * 1024 + 1);
    refused_with(
        ResponseTemplate::new(200).set_body_json(json!({ "data": [], "padding": huge })),
        "the response is larger than 1 MB",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pointer_no_record_has_is_named_with_the_closest_pointer() {
    let server = MockServer::start().await;
    Mock::given(path("/api/dossiers"))
        .respond_with(ResponseTemplate::new(200).set_body_json(page(1..=2)))
        .mount(&server)
        .await;
    let install = Install::with_text(
        connector(&server, "kind = \"none\"", "", "full")
            .replace("\"/beneficiaire/nom\"", "\"/beneficiaire/name\""),
    );
    let (summary, code) = install.import_api(TOKEN_VAR, "s3cret").await;
    assert_eq!(code, 1, "{summary}");
    let reasons = summary["reasons"].to_string();
    assert!(
        reasons.contains("no record has '/beneficiaire/name' for field 'beneficiary.name' (closest pointer found: '/beneficiaire/nom')"),
        "{reasons}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_ignores_the_paging_parameter_is_stopped() {
    let server = MockServer::start().await;
    Mock::given(path("/api/dossiers"))
        .respond_with(ResponseTemplate::new(200).set_body_json(page(1..=2)))
        .mount(&server)
        .await;
    let install = Install::with_text(connector(
        &server,
        "kind = \"page\"\nparam = \"p\"\nsize_param = \"per_page\"\nsize = 2",
        "",
        "full",
    ));
    let (summary, code) = install.import_api(TOKEN_VAR, "s3cret").await;
    assert_eq!(code, 1, "{summary}");
    assert!(
        summary["reasons"]
            .to_string()
            .contains("the same records as the page before"),
        "{summary}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_many_requests_waits_as_told() {
    let server = MockServer::start().await;
    Mock::given(path("/api/dossiers"))
        .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", "1"))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(path("/api/dossiers"))
        .respond_with(ResponseTemplate::new(200).set_body_json(page(1..=2)))
        .mount(&server)
        .await;
    let install = Install::with_text(connector(&server, "kind = \"none\"", "", "full"));
    let started = std::time::Instant::now();
    let (summary, code) = install.import_api(TOKEN_VAR, "s3cret").await;
    assert_eq!((code, n(&summary, "created")), (0, 2), "{summary}");
    assert!(started.elapsed() >= std::time::Duration::from_secs(1));
}

#[test]
fn a_missing_token_is_named() {
    let install = Install::with_text(
        r#"kind = "http_json"
[source]
url = "http://127.0.0.1:9/api"
records = "/data"
[source.auth]
kind = "bearer"
token_env = "REGION_TEST_NO_SUCH_TOKEN"
[fields]
id = "/id"
step = "/statut"
[steps]
"Déposé" = "depose"
"#
        .to_owned(),
    );
    let out = install.run(&["import", "portail", "--json"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains(
            "auth.token_env: the environment variable REGION_TEST_NO_SUCH_TOKEN is not set"
        ),
        "{}",
        text(&out)
    );
}
