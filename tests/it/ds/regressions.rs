//! Regressions of the `demarches_simplifiees` kind, each named after its defect.
//! See: issue 17, item 13.

use serde_json::{Value, json};
use wiremock::matchers::{body_partial_json, body_string_contains, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use super::{
    TOKEN_VAR, connector, deletions, message, no_deletions, no_pending_deletions, node, page,
    refused_with,
};
use crate::common::{Install, n, repo, text};

/// The dossiers page of a synchronisation started from the beginning, answered
/// once: a changed connector file asks for everything again.
async fn everything_once(server: &MockServer, nodes: Vec<Value>) {
    Mock::given(method("POST"))
        .and(path("/api/v2/graphql"))
        .and(body_string_contains("alertissimoDossiers"))
        .and(body_partial_json(json!({ "variables": {
            "demarche": 123, "after": null, "updatedSince": "2015-01-01T00:00:00Z"
        } })))
        .respond_with(page(nodes, Some("c1"), false))
        .up_to_n_times(1)
        .expect(1)
        .mount(server)
        .await;
}

/// The dossiers page after cursor `after`, answered once.
async fn after_once(server: &MockServer, after: &str, nodes: Vec<Value>, end: &str) {
    Mock::given(body_string_contains("alertissimoDossiers"))
        .and(body_partial_json(
            json!({ "variables": { "after": after } }),
        ))
        .respond_with(page(nodes, Some(end), false))
        .up_to_n_times(1)
        .expect(1)
        .mount(server)
        .await;
}

/// The dossier `reference` as `dossier --json` shows it.
fn dossier(install: &Install, reference: &str) -> Value {
    let out = install.run(&["dossier", reference, "--json"]);
    assert!(out.status.success(), "{}", text(&out));
    let found: Value = serde_json::from_slice(&out.stdout).unwrap();
    found[0].clone()
}

/// The message `rule` would send about dossier `reference`, as `render --json` prints it.
fn render(install: &Install, rule: &str, reference: &str) -> Value {
    let out = install.run(&["render", rule, "--dossier", reference, "--json"]);
    assert!(out.status.success(), "{}", text(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Editing the connector file (another schedule) used to start the
/// synchronisation over without ever asking for deletions: a dossier deleted
/// just before stayed present forever. The synchronisation started over is a
/// full snapshot: a dossier it does not return disappears, within the
/// connector's `max_disappeared_ratio`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_17_editing_the_connector_file_never_loses_deletions() {
    let server = MockServer::start().await;
    let text = format!(
        "{}\n[guards]\nmax_disappeared_ratio = 0.5\n",
        connector(&server)
    );
    everything_once(
        &server,
        vec![
            node(1, "en_construction"),
            node(2, "en_instruction"),
            node(3, "accepte"),
        ],
    )
    .await;
    let install = Install::with_text(text.clone());
    let (summary, code) = install.import_api(TOKEN_VAR, "ds-s3cret").await;
    assert_eq!((code, n(&summary, "created")), (0, 3), "{summary}");

    // Dossier 2 is deleted on DS, and DS's deletion lists do not say so (they are
    // asked, from the last synchronisation, but only for their date and reason).
    // The administrators change the schedule.
    no_deletions(&server).await;
    let edited = text.replace(
        r#"schedule = "* * * * * *""#,
        r#"schedule = "0 */5 * * * *""#,
    );
    assert_ne!(edited, text);
    std::fs::write(install.root().join("connectors/portail.toml"), &edited).unwrap();

    // Two of three gone is more than the guard allows: refused, nothing applied.
    everything_once(&server, vec![node(1, "en_construction")]).await;
    let (summary, code) = install.import_api(TOKEN_VAR, "ds-s3cret").await;
    assert_eq!(code, 1, "{summary}");
    let reasons = summary["reasons"].to_string();
    assert!(
        reasons.contains("2 of 3 dossiers would disappear"),
        "{reasons}"
    );

    // Started over again (nothing was applied): dossier 2 is gone, 1 and 3 unchanged.
    everything_once(
        &server,
        vec![node(1, "en_construction"), node(3, "accepte")],
    )
    .await;
    let (summary, code) = install.import_api(TOKEN_VAR, "ds-s3cret").await;
    assert_eq!(code, 0, "{summary}");
    assert_eq!(n(&summary, "disappeared"), 1, "{summary}");
    for key in ["created", "step_changed", "field_changed", "reappeared"] {
        assert_eq!(n(&summary, key), 0, "{key}: {summary}");
    }
    assert_eq!(dossier(&install, "2")["present"], false);
    for kept in ["1", "3"] {
        let d = dossier(&install, kept);
        assert_eq!(d["present"], true, "{d}");
        assert_eq!(
            d["events"].as_array().unwrap().len(),
            1,
            "only created: {d}"
        );
    }

    // From then on, the synchronisation goes on from where this one ended.
    after_once(&server, "c1", vec![], "c1").await;
    let (summary, code) = install.import_api(TOKEN_VAR, "ds-s3cret").await;
    assert_eq!((code, n(&summary, "disappeared")), (0, 0), "{summary}");
}

/// Beneficiaries used to be sent the instructeurs' address of their dossier
/// (`/procedures/P/dossiers/N`), which they cannot open. They get the usager's
/// (`/dossiers/N`); instructors keep theirs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_17_beneficiaries_get_the_usager_address_of_their_dossier() {
    let server = MockServer::start().await;
    everything_once(&server, vec![node(1, "en_construction")]).await;
    let install = Install::with_text(connector(&server));
    let (summary, code) = install.import_api(TOKEN_VAR, "ds-s3cret").await;
    assert_eq!(code, 0, "{summary}");

    let usager = format!("{}/dossiers/1", server.uri());
    let instructeur = format!("{}/procedures/123/dossiers/1", server.uri());
    let beneficiary = render(&install, "depot-recu", "1");
    assert_eq!(beneficiary["to"], "usager1@exemple.fr");
    for part in ["text", "html"] {
        let body = beneficiary[part].as_str().unwrap();
        assert!(body.contains(&usager), "{part}:\n{body}");
        assert!(!body.contains("/procedures/"), "{part}:\n{body}");
    }
    let instructor = render(&install, "instructeur-dossier-bloque", "1");
    assert_eq!(instructor["to"], "instructrice@region.example.org");
    let body = instructor["text"].as_str().unwrap();
    assert!(body.contains(&instructeur), "{body}");
}

/// Champs and annotations could not be mapped: amounts, dates and any champ
/// of a DS dossier could not be watched. `{ champ = … }` and
/// `{ annotation = … }` read them by label or by id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_17_champs_and_annotations_map_to_fields_by_label_or_id() {
    let server = MockServer::start().await;
    let fixture = repo().join("tests/fixtures/ds/dossier-champs-annotations.json");
    let dossier_node: Value =
        serde_json::from_str(&std::fs::read_to_string(fixture).unwrap()).unwrap();
    let text = connector(&server)
        .replace(
            "mode = \"incremental\"\n",
            "mode = \"incremental\"\nwatch = [\"amount_granted\"]\n",
        )
        .replace(
            "[fields]\n",
            r#"[fields]
title = { champ = "Q2hhbXAtMzAwMw==" }
amount_requested = { champ = "montant demandé", format = "auto" }
"extra.debut" = { champ = "Date de début du projet", type = "date" }
"extra.ecologie" = { champ = "Le projet concourt-il à la transition écologique ?" }
"extra.budget" = { champ = "Budget prévisionnel signé", optional = true }
amount_granted = { annotation = "Montant proposé en commission (€)" }
decided_on = { annotation = "Date de passage en commission" }
"extra.avis" = { annotation = "Q2hhbXAtOTAwMg==" }
"#,
        );
    // The champs and annotations are asked only because some are mapped.
    Mock::given(body_string_contains("alertissimoDossiers"))
        .and(body_partial_json(json!({ "variables": {
            "after": null, "champs": true, "annotations": true
        } })))
        .respond_with(page(vec![dossier_node.clone()], Some("c1"), false))
        .up_to_n_times(1)
        .expect(1)
        .mount(&server)
        .await;
    let install = Install::with_text(text);
    let (summary, code) = install.import_api(TOKEN_VAR, "ds-s3cret").await;
    assert_eq!((code, n(&summary, "created")), (0, 1), "{summary}");
    let fields = install.fields("20417");
    assert_eq!(fields["title"], "Jardin partagé du quartier des Tanneurs");
    assert_eq!(fields["amount_requested"], "12500.50");
    assert_eq!(fields["extra.debut"], "2026-03-02");
    assert_eq!(fields["extra.ecologie"], "true");
    assert!(fields.get("extra.budget").is_none(), "{fields}");
    assert_eq!(fields["amount_granted"], "10000.00");
    assert_eq!(fields["decided_on"], "2026-03-26");
    assert_eq!(
        fields["extra.avis"],
        "Favorable sous réserve du plan de financement"
    );

    // The commission's amount changes: a watched annotation is a field change.
    let mut changed = dossier_node;
    changed["annotations"][2]["stringValue"] = json!("9 000,00");
    after_once(&server, "c1", vec![changed], "c2").await;
    no_deletions(&server).await;
    let (summary, code) = install.import_api(TOKEN_VAR, "ds-s3cret").await;
    assert_eq!((code, n(&summary, "field_changed")), (0, 1), "{summary}");
    assert_eq!(install.fields("20417")["amount_granted"], "9000.00");
}

/// `champ` and `annotation` belong to DS dossiers: another kind refuses them.
#[test]
fn issue_17_champs_are_only_for_ds_connectors() {
    let install = Install::with_connector(|c| {
        c.replace(
            "[fields]\n",
            "[fields]\n\"extra.montant\" = { champ = \"Montant demandé\" }\n",
        )
    });
    let out = install.run(&["check", "--no-environment"]);
    assert_eq!(out.status.code(), Some(78), "{}", text(&out));
    assert!(
        text(&out).contains("only for kind = \"demarches_simplifiees\""),
        "{}",
        text(&out)
    );
}

/// A deletion on DS used to be dated by the import that noticed it, without its
/// reason, and told to instructors as a possible export error. It is dated by
/// DS's `dateSupression`, carries its `reason`, and the instructor is told the
/// dossier was deleted; a dossier its usager deleted (`pendingDeletedDossiers`)
/// goes too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_17_a_ds_deletion_is_dated_and_told_as_a_deletion() {
    let server = MockServer::start().await;
    everything_once(
        &server,
        vec![
            node(1, "en_construction"),
            node(2, "en_instruction"),
            node(3, "en_construction"),
        ],
    )
    .await;
    let install = Install::with_text(connector(&server));
    let (summary, code) = install.import_api(TOKEN_VAR, "ds-s3cret").await;
    assert_eq!(code, 0, "{summary}");

    after_once(&server, "c1", vec![], "c1").await;
    Mock::given(body_string_contains("alertissimoDeleted"))
        .respond_with(deletions(
            "deletedDossiers",
            vec![
                json!({ "number": 2, "dateSupression": "2026-04-03T10:00:00+02:00",
                          "reason": "instructeur_request" }),
            ],
        ))
        .mount(&server)
        .await;
    Mock::given(body_string_contains("alertissimoPendingDeletions"))
        .respond_with(deletions(
            "pendingDeletedDossiers",
            vec![
                json!({ "number": 3, "dateSupression": "2026-04-04T18:30:00+02:00",
                          "reason": "user_request" }),
            ],
        ))
        .mount(&server)
        .await;
    let (summary, code) = install.import_api(TOKEN_VAR, "ds-s3cret").await;
    assert_eq!(code, 0, "{summary}");
    assert_eq!(n(&summary, "disappeared"), 2, "{summary}");
    assert!(n(&summary, "alerts_queued") >= 2, "{summary}");

    for (reference, at, reason) in [
        ("2", "2026-04-03T08:00:00Z", "instructeur_request"),
        ("3", "2026-04-04T16:30:00Z", "user_request"),
    ] {
        let d = dossier(&install, reference);
        assert_eq!(d["present"], false, "{d}");
        let gone = d["events"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["kind"] == "disappeared")
            .unwrap_or_else(|| panic!("no disappeared event: {d}"));
        let occurred = chrono::DateTime::parse_from_rfc3339(gone["occurred_at"].as_str().unwrap())
            .unwrap()
            .with_timezone(&chrono::Utc);
        assert_eq!(
            occurred.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            at
        );
        assert_eq!(gone["field"], "deleted_on_source");
        assert_eq!(gone["new_value"], reason);
    }
    let timeline = text(&install.run(&["dossier", "2"]));
    assert!(
        timeline.contains("supprimé sur la source (motif : instructeur_request)"),
        "{timeline}"
    );

    let told = render(&install, "instructeur-dossier-disparu", "2");
    assert_eq!(told["to"], "instructrice@region.example.org");
    let subject = told["subject"].as_str().unwrap();
    assert!(
        subject.contains("supprimé sur Démarches Simplifiées"),
        "{subject}"
    );
    let body = told["text"].as_str().unwrap();
    for needle in [
        "a été supprimé sur Démarches Simplifiées le 3 avril 2026",
        "motif : supprimé par un instructeur",
    ] {
        assert!(body.contains(needle), "{needle:?} not in:\n{body}");
    }
    for absent in [
        "révéler une erreur d'export",
        "n'apparaît plus dans le dernier export",
    ] {
        assert!(!body.contains(absent), "{absent:?} in:\n{body}");
    }
}

/// `created` was never marked `notified_by_source`, though DS e-mails its own
/// deposit receipt (and mirrors it in the messagerie), as step changes are.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_17_created_is_notified_by_source_after_ds_deposit_email() {
    let server = MockServer::start().await;
    everything_once(&server, vec![node(1, "en_instruction")]).await;
    let install = Install::with_text(connector(&server));
    let (summary, code) = install.import_api(TOKEN_VAR, "ds-s3cret").await;
    assert_eq!(code, 0, "{summary}");

    // Two new dossiers: DS e-mailed the receipt of 4 (deposited at 10:00), not of 5.
    let mut received = node(4, "en_construction");
    received["messages"] = json!([message(
        "M-40",
        "Contact@Demarches-Simplifiees.fr",
        "<p>[Votre dossier nº 4 a bien été déposé (Aide aux projets culturels)]</p>",
        "2026-03-01T10:00:04+01:00",
    )]);
    let mut silent = node(5, "en_construction");
    silent["messages"] = json!([message(
        "M-50",
        "usager5@exemple.fr",
        "Bonjour, voici mon dossier.",
        "2026-03-01T10:02:00+01:00",
    )]);
    after_once(&server, "c1", vec![received, silent], "c2").await;
    no_deletions(&server).await;
    let (summary, code) = install.import_api(TOKEN_VAR, "ds-s3cret").await;
    assert_eq!((code, n(&summary, "created")), (0, 2), "{summary}");
    let notified = |id: &str| -> bool {
        install
            .sql()
            .query_row(
                "SELECT e.notified_by_source FROM events e JOIN dossiers d ON d.id = e.dossier_id
                 WHERE e.kind = 'created' AND d.source_id = ?1",
                [id],
                |r| r.get(0),
            )
            .unwrap()
    };
    assert!(notified("4"), "DS sent the receipt of dossier 4");
    assert!(!notified("5"), "DS sent nothing about dossier 5");
}

/// Some errors of a synchronisation did not name their démarche (HTTP errors, a
/// malformed answer): with several démarches, which one failed was a guess.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_17_every_ds_error_names_its_demarche() {
    refused_with(ResponseTemplate::new(403), "démarche 123: 403 Forbidden").await;
    refused_with(ResponseTemplate::new(401), "démarche 123: 401 Unauthorized").await;
    refused_with(
        ResponseTemplate::new(200).set_body_string("<html>Maintenance</html>"),
        "démarche 123: the response is not valid JSON",
    )
    .await;
    refused_with(
        ResponseTemplate::new(200).set_body_json(json!({ "data": { "demarche": {
            "number": 123, "title": "x", "dossiers": { "pageInfo": { "hasNextPage": false } } } } })),
        "démarche 123: the answer's dossiers have no list of nodes",
    )
    .await;

    // Two démarches: the second is outside the token's scope, and so named.
    let server = MockServer::start().await;
    Mock::given(body_partial_json(
        json!({ "variables": { "demarche": 123 } }),
    ))
    .and(body_string_contains("alertissimoDossiers"))
    .respond_with(page(vec![node(1, "accepte")], Some("c1"), false))
    .mount(&server)
    .await;
    Mock::given(body_partial_json(json!({ "variables": { "demarche": 456 } })))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "data": null,
            "errors": [{ "message": "Permissions insuffisantes", "extensions": { "code": "unauthorized" } }]
        })))
        .mount(&server)
        .await;
    no_pending_deletions(&server).await;
    let text = connector(&server).replace("demarches = [123]", "demarches = [123, 456]");
    let install = Install::with_text(text);
    let (summary, code) = install.import_api(TOKEN_VAR, "ds-s3cret").await;
    assert_eq!(code, 1, "{summary}");
    let reasons = summary["reasons"].to_string();
    assert!(
        reasons.contains("démarche 456: the token has no access to it"),
        "{reasons}"
    );
}
