//! The `xml` kind through the binary: encodings from the declaration, namespaces,
//! attributes, repeated elements, CDATA, and the files it refuses (billion laughs,
//! malformed, truncated, a mapped path no record has).

use crate::common::{Install, text};

const CONNECTOR: &str = r#"kind = "xml"
schedule = "* * * * * *"

[source]
path = "../inbox/*.xml"
record = "/g:export/g:dossiers/g:dossier"
settle = "0s"

[source.namespaces]
g = "urn:region-exemple:aides:1"

[fields]
id = "@numero"
reference = "g:reference"
scheme = "dispositif"
"beneficiary.name" = "beneficiaire/raisonSociale"
"beneficiary.siret" = "beneficiaire/@siret"
"beneficiary.email" = "beneficiaire/courriel"
step = "statut"
step_since = { column = "statut/@depuis", format = "%d/%m/%Y" }
amount_granted = { column = "montants/accorde", format = "fr_decimal", optional = true }
"extra.commentaire" = { column = "commentaire", optional = true }

[steps]
"Déposé" = "depose"
"Instruction en cours" = "instruction"
"Passage en CP" = "commission"
"Voté en CP" = "accorde"
"Convention signée" = "convention"
"#;

/// The same connector naming no namespace: its paths match local names (and the
/// file is read without resolving namespaces).
fn without_namespaces() -> String {
    let plain = CONNECTOR
        .replace(
            "[source.namespaces]\ng = \"urn:region-exemple:aides:1\"\n",
            "",
        )
        .replace("g:", "");
    assert!(!plain.contains("namespaces") && !plain.contains("g:"));
    plain
}

fn refused(fixture: &str, connector: &str) -> String {
    let install = Install::with_text(connector);
    let (summary, code) = install.import_fixture("xml", fixture);
    assert_eq!(code, 1, "{summary}");
    assert_eq!(summary["status"], "refused", "{summary}");
    assert!(install.dossiers().is_empty(), "nothing is applied");
    summary["reasons"].to_string()
}

#[test]
fn namespaces_attributes_and_encodings() {
    for (fixture, connector) in [
        ("export-iso-8859-1.xml", CONNECTOR.to_owned()),
        ("export-utf8.xml", CONNECTOR.to_owned()),
        ("export-iso-8859-1.xml", without_namespaces()),
    ] {
        let install = Install::with_text(connector);
        let (summary, code) = install.import_fixture("xml", fixture);
        assert_eq!(code, 0, "{fixture}: {summary}");
        assert_eq!(summary["created"], 5, "{fixture}: {summary}");
        assert_eq!(summary["rejected"], 0, "{fixture}: {summary}");
        let d1 = install.fields("REF-1");
        // An entity reference, accents from ISO-8859-1, a repeated element, CDATA.
        assert_eq!(
            d1["beneficiary.name"], "Boulangerie Lefèvre & Fils",
            "{fixture}"
        );
        assert_eq!(
            d1["beneficiary.email"], "contact@lefevre.fr, compta@lefevre.fr",
            "{fixture}"
        );
        assert_eq!(
            d1["extra.commentaire"], "Pièces <reçues> le 02/09",
            "{fixture}"
        );
        assert_eq!(d1["beneficiary.siret"], "73282932000074", "{fixture}");
        assert_eq!(d1["step_since"], "2026-08-31T22:00:00Z", "{fixture}");
        let d5 = install.fields("REF-5");
        assert_eq!(d5["amount_granted"], "8500.50", "{fixture}");
        assert_eq!(d5["beneficiary.name"], "Théâtre Éphémère", "{fixture}");
    }
}

#[test]
fn record_lines_are_those_of_the_record_elements() {
    // D5's opening tag spans two lines; its rejection names the line where it starts.
    for connector in [CONNECTOR.to_owned(), without_namespaces()] {
        let install =
            Install::with_text(connector.replace("\"Convention signée\" = \"convention\"\n", ""));
        let (summary, _) = install.import_fixture("xml", "export-iso-8859-1.xml");
        let rejections = summary["rejections"].to_string();
        assert!(
            rejections.contains("\"line\":46")
                && rejections.contains("unknown status label 'Convention signée'"),
            "{rejections}"
        );
    }
}

#[test]
fn billion_laughs_is_refused_at_its_doctype() {
    let started = std::time::Instant::now();
    let reasons = refused("billion-laughs.xml", CONNECTOR);
    assert!(
        reasons.contains("billion-laughs.xml:")
            && reasons.contains("the DOCTYPE declares entities"),
        "{reasons}"
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
}

#[test]
fn malformed_and_truncated_files_are_refused_with_their_line() {
    let reasons = refused("malformed.xml", CONNECTOR);
    assert!(
        reasons.contains("malformed.xml:21: malformed XML"),
        "{reasons}"
    );
    let reasons = refused("truncated.xml", CONNECTOR);
    assert!(
        reasons.contains("truncated.xml:") && reasons.contains("is it truncated?"),
        "{reasons}"
    );
}

#[test]
fn a_path_no_record_has_is_named_with_the_closest_path() {
    let reasons = refused(
        "export-utf8.xml",
        &CONNECTOR.replace("beneficiaire/raisonSociale", "beneficiaire/raison_sociale"),
    );
    assert!(
        reasons.contains(
            "no <g:export/g:dossiers/g:dossier> record has 'beneficiaire/raison_sociale' for field 'beneficiary.name' (closest path found: 'beneficiaire/raisonSociale')"
        ),
        "{reasons}"
    );
}

#[test]
fn check_names_bad_xml_settings() {
    for (from, to, needle) in [
        (
            "record = \"/g:export/g:dossiers/g:dossier\"",
            "record = \"/h:export/dossier\"",
            "record '/h:export/dossier': the prefix 'h' is not declared in [source.namespaces]",
        ),
        (
            "\"beneficiary.siret\" = \"beneficiaire/@siret\"",
            "\"beneficiary.siret\" = \"q:siret\"",
            "field 'beneficiary.siret': path 'q:siret': the prefix 'q' is not declared",
        ),
        (
            "record = ",
            "delimiter = \";\"\nrecord = ",
            "unknown field `delimiter`",
        ),
    ] {
        let bad = Install::with_text(CONNECTOR.replace(from, to));
        let out = bad.run(&["check"]);
        assert_eq!(out.status.code(), Some(78), "{}", text(&out));
        assert!(
            text(&out).contains(needle),
            "{needle:?} not in {}",
            text(&out)
        );
    }
}
