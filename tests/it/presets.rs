//! The shipped presets (`connectors/*.toml`) on files as Regions really get
//! them, the preset used as shipped (only its `path` pointed at the test's drop
//! folder). Regression (issue 17, item 12): real SCDL files lacking optional
//! columns, with a decision number shared by several grants, and real Progos
//! extractions (one sheet `Feuil1`, three title rows, headers with doubled and
//! trailing spaces) were refused.

use serde_json::Value;

use crate::common::{Install, n, repo};

/// An installation with the shipped preset `name`, reading `pattern` in the
/// test's inbox.
fn preset(name: &str, shipped_path: &str, pattern: &str) -> Install {
    let text = std::fs::read_to_string(repo().join("connectors").join(format!("{name}.toml")))
        .unwrap()
        .replace(shipped_path, pattern);
    let install = Install::with_text(text);
    std::fs::rename(
        install.root().join("connectors/portail.toml"),
        install.root().join(format!("connectors/{name}.toml")),
    )
    .unwrap();
    install
}

fn import(install: &Install, name: &str, file: &std::path::Path) -> Value {
    let out = install.run(&["import", name, file.to_str().unwrap(), "--json"]);
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", crate::common::text(&out)))
}

/// A published SCDL file: UTF-8 byte order mark in front of a Windows-1252
/// body, `;`, CRLF, French dates and amounts, headers with stray spaces, no
/// `rnaBeneficiaire`, `notificationUE`, `pourcentageSubvention`, `idRAE` or
/// `dispositifAide`; one decision for three grants, and the same beneficiary
/// twice on one day under it.
fn scdl_file() -> Vec<u8> {
    let text = "nomAttribuant;idAttribuant;dateConvention;referenceDecision;nomBeneficiaire ;\
        idBeneficiaire;objet;montant;nature;conditionsVersement;datesPeriodeVersement\r\n\
        Département Exemple;22330001300016;14/03/2025;DEL 2025-117;Théâtre du Fil;\
        41234567800015;Saison culturelle 2025;12 500,00;aide en numéraire;unique;2025-03-14/2025-12-31\r\n\
        Département Exemple;22330001300016;14/03/2025;DEL 2025-117;Club de Judo;\
        51234567800012;Équipement des tatamis;3 000,00;aide en numéraire;unique;2025-03-14/2025-12-31\r\n\
        Département Exemple;22330001300016;14/03/2025;DEL 2025-117;Club de Judo;\
        51234567800012;Déplacements en compétition;1 800,50;aide en numéraire;échelonné;2025-03-14/2025-12-31\r\n\
        Département Exemple;22330001300016;02/05/2025;DEL 2025-201;Association Lire Ensemble;\
        ;Fonctionnement;26 956,00;aide en numéraire;unique;2025-05-02/2025-12-31\r\n";
    let (body, _, unmappable) = encoding_rs::WINDOWS_1252.encode(text);
    assert!(!unmappable);
    let mut bytes = b"\xEF\xBB\xBF".to_vec();
    bytes.extend_from_slice(&body);
    bytes
}

#[test]
fn the_scdl_preset_imports_real_open_data_files() {
    let install = preset("scdl-subventions", "samples/scdl/*.csv", "../inbox/*.csv");
    let file = install.root().join("inbox/subventions-2025.csv");
    std::fs::write(&file, scdl_file()).unwrap();
    let summary = import(&install, "scdl-subventions", &file);
    assert_eq!(summary["status"], "applied", "{summary}");
    assert_eq!(n(&summary, "created"), 4, "{summary}");
    assert_eq!(n(&summary, "rejected"), 0, "{summary}");
    // The same file again: the same snapshot.
    let again = import(&install, "scdl-subventions", &file);
    assert_eq!(again["status"], "unchanged", "{again}");
}

#[test]
fn the_progos_preset_imports_a_real_extraction() {
    let install = preset("progos-export", "samples/progos/*.xls", "../inbox/*.xls");
    let file = install.root().join("inbox/extraction.xls");
    std::fs::copy(
        repo().join("tests/fixtures/sheets/progos-extraction.xls"),
        &file,
    )
    .unwrap();
    let summary = import(&install, "progos-export", &file);
    assert_eq!(summary["status"], "applied", "{summary}");
    assert!(n(&summary, "created") >= 5, "{summary}");
    assert_eq!(n(&summary, "rejected"), 0, "{summary}");
}
