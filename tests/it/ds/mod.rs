//! The `demarches_simplifiees` kind through the binary, against a GraphQL server on
//! 127.0.0.1 (wiremock): synchronisation as DS recommends it (fixed `updatedSince`,
//! opaque `endCursor` never replaced by a null), deletions, DS's errors; and the
//! queries checked against DS's published schema. The regressions of issue 17
//! (item 13) are in `regressions`.

mod regressions;

use serde_json::{Value, json};
use wiremock::matchers::{body_partial_json, body_string_contains, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::common::{Install, n, repo, text};

pub(super) const TOKEN_VAR: &str = "REGION_TEST_DS_TOKEN";

pub(super) fn connector(server: &MockServer) -> String {
    format!(
        r#"kind = "demarches_simplifiees"
schedule = "* * * * * *"
mode = "incremental"

[source]
base_url = "{}"
demarches = [123]
token_env = "{TOKEN_VAR}"
timeout = "2s"
retries = 0

[fields]
id = "/number"
scheme = "/demarche/title"
"beneficiary.name" = "/demandeur/nom"
"beneficiary.siret" = {{ column = "/demandeur/siret", optional = true }}
"beneficiary.email" = "/usager/email"
"instructor.email" = {{ column = "/instructeurs", optional = true }}
step = "/state"
step_since = "/etapeDepuis"
url = "/url"
"instructor.url" = "/urlInstructeur"
"#,
        server.uri()
    )
}

pub(super) fn node(number: i64, state: &str) -> Value {
    let demandeur = if number % 2 == 0 {
        json!({ "__typename": "PersonnePhysique", "civilite": "Mme", "prenom": "Jeanne", "nom": "Martin", "email": null })
    } else {
        json!({ "__typename": "PersonneMorale", "siret": "21060004500392",
                "entreprise": { "raisonSociale": "Théâtre Éphémère" } })
    };
    json!({
        "number": number,
        "state": state,
        "dateDepot": "2026-03-01T10:00:00+01:00",
        "datePassageEnInstruction": "2026-03-10T09:00:00+01:00",
        "dateTraitement": "2026-04-02T15:00:00+02:00",
        "dateDerniereModification": "2026-04-02T15:00:00+02:00",
        "usager": { "email": format!("usager{number}@exemple.fr") },
        "instructeurs": [{ "email": "instructrice@region.example.org" }],
        "demandeur": demandeur,
        "messages": []
    })
}

/// A message of DS's messagerie.
pub(super) fn message(id: &str, from: &str, body: &str, at: &str) -> Value {
    json!({ "id": id, "email": from, "body": body, "createdAt": at })
}

pub(super) fn page(nodes: Vec<Value>, end_cursor: Option<&str>, more: bool) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "data": { "demarche": { "number": 123, "title": "Aide aux projets culturels", "dossiers": {
            "pageInfo": { "hasNextPage": more, "endCursor": end_cursor },
            "nodes": nodes
        } } }
    }))
}

pub(super) async fn dossiers_after(
    server: &MockServer,
    after: Option<&str>,
    response: ResponseTemplate,
) {
    Mock::given(method("POST"))
        .and(path("/api/v2/graphql"))
        .and(body_string_contains("alertissimoDossiers"))
        .and(body_partial_json(
            json!({ "variables": { "demarche": 123, "after": after, "updatedSince": "2015-01-01T00:00:00Z" } }),
        ))
        .respond_with(response)
        .expect(1)
        .mount(server)
        .await;
}

/// DS has deleted nothing (an empty page answers a null cursor).
pub(super) async fn no_deletions(server: &MockServer) {
    Mock::given(body_string_contains("alertissimoDeleted"))
        .respond_with(deletions("deletedDossiers", vec![]))
        .mount(server)
        .await;
    no_pending_deletions(server).await;
}

/// No usager has deleted a dossier.
pub(super) async fn no_pending_deletions(server: &MockServer) {
    Mock::given(body_string_contains("alertissimoPendingDeletions"))
        .respond_with(deletions("pendingDeletedDossiers", vec![]))
        .mount(server)
        .await;
}

/// A page of `deletedDossiers` or `pendingDeletedDossiers` (`list`).
pub(super) fn deletions(list: &str, nodes: Vec<Value>) -> ResponseTemplate {
    let end_cursor = (!nodes.is_empty()).then_some("d1");
    ResponseTemplate::new(200).set_body_json(json!({
        "data": { "demarche": { list: {
            "pageInfo": { "hasNextPage": false, "endCursor": end_cursor }, "nodes": nodes
        } } }
    }))
}

pub(super) fn stored_cursor(install: &Install) -> Value {
    let text: String = install
        .sql()
        .query_row(
            "SELECT cursor FROM source_status WHERE connector = 'portail'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    serde_json::from_str(&text).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn synchronisation_as_ds_recommends() {
    let server = MockServer::start().await;
    // First synchronisation: every dossier, over two pages. Dossier 1 has DS's own
    // e-mail in its messagerie.
    let deposited = message(
        "M-1",
        "contact@demarches-simplifiees.fr",
        "<p>[Votre dossier nº 1 a bien été déposé]</p><div>Bonjour,<br>Votre dossier <strong>a bien été déposé</strong>.</div>",
        "2026-03-01T10:00:05+01:00",
    );
    let mut first = node(1, "en_construction");
    first["messages"] = json!([deposited.clone()]);
    dossiers_after(
        &server,
        None,
        page(vec![first, node(2, "en_instruction")], Some("c1"), true),
    )
    .await;
    dossiers_after(
        &server,
        Some("c1"),
        page(vec![node(3, "accepte")], Some("c2"), false),
    )
    .await;
    let install = Install::with_text(connector(&server));
    let (summary, code) = install.import_api(TOKEN_VAR, "ds-s3cret").await;
    assert_eq!(code, 0, "{summary}");
    assert_eq!(n(&summary, "created"), 3, "{summary}");
    assert_eq!(n(&summary, "messages"), 1, "{summary}");
    assert_eq!(
        stored_cursor(&install)["positions"]["123"]["end_cursor"],
        "c2"
    );

    let out = install.run(&["dossier", "1", "--json"]);
    let d1: Value = serde_json::from_slice(&out.stdout).unwrap();
    let fields = &d1[0]["fields"];
    assert_eq!(fields["beneficiary.name"], "Théâtre Éphémère");
    assert_eq!(fields["beneficiary.siret"], "21060004500392");
    assert_eq!(fields["beneficiary.email"], "usager1@exemple.fr");
    assert_eq!(fields["scheme"], "Aide aux projets culturels");
    assert_eq!(fields["step_since"], "2026-03-01T09:00:00Z");
    // The usager's page, for beneficiaries; the instructeurs' one for staff.
    assert_eq!(fields["url"], format!("{}/dossiers/1", server.uri()));
    assert_eq!(
        fields["instructor.url"],
        format!("{}/procedures/123/dossiers/1", server.uri())
    );
    assert_eq!(d1[0]["step"], "depose");
    let out = install.run(&["dossier", "2", "--json"]);
    let d2: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(d2[0]["fields"]["beneficiary.name"], "Jeanne Martin");
    assert_eq!(d2[0]["step"], "instruction");

    // Second: the same updatedSince, after the stored cursor; dossier 1 was
    // accepted, dossier 2 deleted since the first synchronisation started.
    let mut accepted = node(1, "accepte");
    accepted["messages"] = json!([
        deposited,
        message(
            "M-2",
            "instructrice@region.example.org",
            "Merci d'envoyer le RIB &amp; le budget.",
            "2026-03-20T14:00:00+01:00"
        ),
        // DS's own e-mail about the decision, sent as it was taken.
        message(
            "M-3",
            "contact@demarches-simplifiees.fr",
            "<p>Votre dossier nº 1 a été accepté</p>",
            "2026-04-02T15:00:20+02:00"
        ),
    ]);
    dossiers_after(&server, Some("c2"), page(vec![accepted], Some("c3"), false)).await;
    let first_start: String = install
        .sql()
        .query_row("SELECT started_at FROM runs WHERE id = 1", [], |r| r.get(0))
        .unwrap();
    Mock::given(body_string_contains("alertissimoDeleted"))
        .and(body_partial_json(
            json!({ "variables": { "deletedSince": first_start } }),
        ))
        .respond_with(deletions(
            "deletedDossiers",
            vec![json!({ "number": 2, "dateSupression": "2026-04-03T10:00:00+02:00", "reason": "user_request" })],
        ))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    no_pending_deletions(&server).await;
    let (summary, code) = install.import_api(TOKEN_VAR, "ds-s3cret").await;
    assert_eq!(code, 0, "{summary}");
    assert_eq!(n(&summary, "step_changed"), 1, "{summary}");
    assert_eq!(n(&summary, "disappeared"), 1, "{summary}");
    assert_eq!(n(&summary, "created"), 0, "{summary}");
    // The messagerie joins the timeline, each message once.
    assert_eq!(n(&summary, "messages"), 2, "{summary}");
    // DS e-mailed the decision itself: rules can tell (`event.notified_by_source`).
    let notified: bool = install
        .sql()
        .query_row(
            "SELECT notified_by_source FROM events WHERE kind = 'step_changed'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(notified, "the acceptance was e-mailed by DS");
    let timeline = text(&install.run(&["dossier", "1"]));
    for needle in [
        "message de contact@demarches-simplifiees.fr : [Votre dossier nº 1 a bien été déposé] Bonjour, Votre dossier a bien été déposé.",
        "message de instructrice@region.example.org : Merci d'envoyer le RIB & le budget.",
    ] {
        assert!(timeline.contains(needle), "{needle:?} not in:\n{timeline}");
    }

    // Third: nothing changed: DS answers an empty page with a null cursor, which
    // never replaces the stored one.
    dossiers_after(&server, Some("c3"), page(vec![], None, false)).await;
    no_deletions(&server).await;
    let (summary, code) = install.import_api(TOKEN_VAR, "ds-s3cret").await;
    assert_eq!(code, 0, "{summary}");
    assert_eq!(
        stored_cursor(&install)["positions"]["123"]["end_cursor"],
        "c3"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dossier_updated_during_a_synchronisation_counts_once_in_its_last_state() {
    let server = MockServer::start().await;
    // DS moves a dossier updated meanwhile to the end of its list: 1 comes again.
    dossiers_after(
        &server,
        None,
        page(
            vec![node(1, "en_construction"), node(2, "en_instruction")],
            Some("c1"),
            true,
        ),
    )
    .await;
    dossiers_after(
        &server,
        Some("c1"),
        page(
            vec![node(3, "accepte"), node(1, "en_instruction")],
            Some("c2"),
            false,
        ),
    )
    .await;
    let install = Install::with_text(connector(&server));
    let (summary, code) = install.import_api(TOKEN_VAR, "ds-s3cret").await;
    assert_eq!(code, 0, "{summary}");
    assert_eq!(n(&summary, "created"), 3, "{summary}");
    let out = install.run(&["dossier", "1", "--json"]);
    let d1: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(d1.as_array().unwrap().len(), 1, "one dossier: {d1}");
    assert_eq!(d1[0]["step"], "instruction");

    // Next time, 1 is accepted, then sent again as it was before (a decision
    // withdrawn during the synchronisation): the last copy wins, even though it
    // is the state stored before this import.
    dossiers_after(
        &server,
        Some("c2"),
        page(vec![node(1, "accepte")], Some("c3"), true),
    )
    .await;
    dossiers_after(
        &server,
        Some("c3"),
        page(vec![node(1, "en_instruction")], Some("c4"), false),
    )
    .await;
    no_deletions(&server).await;
    let (summary, code) = install.import_api(TOKEN_VAR, "ds-s3cret").await;
    assert_eq!(code, 0, "{summary}");
    let out = install.run(&["dossier", "1", "--json"]);
    let d1: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(d1[0]["step"], "instruction", "{summary}");
}

pub(super) async fn refused_with(response: ResponseTemplate, needle: &str) {
    let server = MockServer::start().await;
    Mock::given(path("/api/v2/graphql"))
        .respond_with(response)
        .mount(&server)
        .await;
    let install = Install::with_text(connector(&server));
    let (summary, code) = install.import_api(TOKEN_VAR, "ds-s3cret").await;
    assert_eq!(code, 1, "{summary}");
    let reasons = summary["reasons"].to_string();
    assert!(reasons.contains(needle), "{needle:?} not in {reasons}");
    assert!(install.dossiers().is_empty(), "nothing is applied");
    // A refused synchronisation leaves no cursor: the next one starts over.
    let cursors: i64 = install
        .sql()
        .query_row("SELECT count(cursor) FROM source_status", [], |r| r.get(0))
        .unwrap_or(0);
    assert_eq!(cursors, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ds_errors_refuse_the_synchronisation() {
    refused_with(ResponseTemplate::new(403), "403 Forbidden").await;
    refused_with(ResponseTemplate::new(401), "401 Unauthorized").await;
    refused_with(
        ResponseTemplate::new(200).set_body_json(json!({
            "data": null,
            "errors": [{ "message": "Permissions insuffisantes", "extensions": { "code": "unauthorized" } }]
        })),
        "démarche 123: the token has no access to it",
    )
    .await;
    refused_with(
        ResponseTemplate::new(200).set_body_json(json!({
            "data": { "demarche": { "number": 123, "title": "x", "dossiers": {
                "pageInfo": { "hasNextPage": false, "endCursor": "c1" }, "nodes": [node(1, "accepte")] } } },
            "errors": [{ "message": "Timeout on champs" }]
        })),
        "DS answered with errors (the data may be partial, nothing is applied): Timeout on champs",
    )
    .await;
    refused_with(
        ResponseTemplate::new(200).set_body_json(json!({ "data": { "demarche": null } })),
        "démarche 123: no dossiers in the answer",
    )
    .await;
}

/// The queries the connector sends are valid against DS's published schema
/// (`../shared/fixtures/ds/schema.graphql`, present in CI, where its absence fails).
#[test]
fn queries_match_the_published_schema() {
    let schema_path = repo().join("../shared/fixtures/ds/schema.graphql");
    let Ok(schema_text) = std::fs::read_to_string(&schema_path) else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must validate the DS queries, but {} is missing",
            schema_path.display()
        );
        eprintln!("skipped: no DS schema at {}", schema_path.display());
        return;
    };
    let schema = apollo_compiler::Schema::parse_and_validate(schema_text, "schema.graphql")
        .unwrap_or_else(|e| panic!("the DS schema does not parse: {e}"));
    for (name, query) in [
        ("dossiers", alertissimo::connector::ds::DOSSIERS_QUERY),
        ("deleted", alertissimo::connector::ds::DELETED_QUERY),
        (
            "pending deletions",
            alertissimo::connector::ds::PENDING_DELETED_QUERY,
        ),
    ] {
        apollo_compiler::ExecutableDocument::parse_and_validate(&schema, query, name)
            .unwrap_or_else(|e| panic!("the {name} query is not valid against DS's schema:\n{e}"));
    }
}
