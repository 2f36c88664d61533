//! The index of beneficiary addresses (issue 20): `beneficiary_emails` follows
//! the dossiers through imports (a creation, a change of address, a list of
//! addresses, a disappearance), the RGPD purge, and the migration of a database
//! written before it. Sign-in and `GET /dossiers` find a beneficiary's dossiers
//! through it.

use chrono::{Duration, Utc};

use crate::common::{Install, text};

fn day(offset: i64) -> String {
    (Utc::now() + Duration::days(offset))
        .format("%d/%m/%Y")
        .to_string()
}

/// The index's rows, as `email|source id`, sorted.
fn index(install: &Install) -> Vec<String> {
    let conn = install.sql();
    let mut stmt = conn
        .prepare(
            "SELECT b.email || '|' || d.source_id FROM beneficiary_emails b
             JOIN dossiers d ON d.id = b.dossier_id ORDER BY 1",
        )
        .unwrap();
    stmt.query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

const HEAD: &str =
    "N° dossier;Référence;Dispositif;Bénéficiaire;SIRET;Courriel;Statut;Date statut;Montant voté\n";

fn install() -> Install {
    Install::with_connector(|c| {
        c.replace(
            "\"Convention signée\" = \"convention\"",
            "\"Convention signée\" = \"convention\"\n\"Clôturé\" = \"cloture\"",
        )
        .replace(
            "max_disappeared_ratio = 0.05",
            "max_disappeared_ratio = 1.0",
        )
    })
}

fn import(install: &Install, name: &str, rows: &str) {
    let path = install.root().join("exports").join(name);
    std::fs::write(&path, format!("{HEAD}{rows}")).unwrap();
    let (summary, code) = install.import_path(&path);
    assert_eq!(code, 0, "{summary}");
}

#[test]
fn issue_20_the_index_follows_imports_and_the_purge() {
    let install = install();
    let old = day(-4 * 365);
    let recent = day(-10);
    import(
        &install,
        "1.csv",
        &format!(
            "A;REF-A;Culture;Lune;;Lune@Example.org;Instruction en cours;{recent};1000\n\
             B;REF-B;Sport;Lune;;lune@example.org, Autre@example.org;Instruction en cours;{recent};2000\n\
             C;REF-C;Culture;Soleil;;soleil@example.org;Clôturé;{old};500\n\
             D;REF-D;Culture;Etoile;;etoile@example.org;Instruction en cours;{recent};500\n\
             E;REF-E;Culture;Sans adresse;;;Instruction en cours;{recent};500\n"
        ),
    );
    // Creations: each address of a dossier, in lowercase; none for an empty one.
    assert_eq!(
        index(&install),
        [
            "autre@example.org|B",
            "etoile@example.org|D",
            "lune@example.org|A",
            "lune@example.org|B",
            "soleil@example.org|C",
        ]
    );
    // A change of address, a dossier gone from the export (D: still listed,
    // its dossier is still the beneficiary's), an address given to E.
    import(
        &install,
        "2.csv",
        &format!(
            "A;REF-A;Culture;Lune;;nouvelle@example.org;Instruction en cours;{recent};1000\n\
             B;REF-B;Sport;Lune;;AUTRE@example.org,lune@example.org;Instruction en cours;{recent};2500\n\
             C;REF-C;Culture;Soleil;;soleil@example.org;Clôturé;{old};500\n\
             E;REF-E;Culture;Sans adresse;;e@example.org;Instruction en cours;{recent};500\n"
        ),
    );
    assert_eq!(
        index(&install),
        [
            "autre@example.org|B",
            "e@example.org|E",
            "etoile@example.org|D",
            "lune@example.org|B",
            "nouvelle@example.org|A",
            "soleil@example.org|C",
        ]
    );
    // The purge takes C's address out of the index with its personal data.
    let out = install.run(&["purge", "--json"]);
    assert!(out.status.success(), "{}", text(&out));
    let purged: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(purged["purged"]["dossiers"], 1, "{purged}");
    assert!(
        !index(&install).iter().any(|row| row.starts_with("soleil")),
        "{:?}",
        index(&install)
    );
    // The index and the dossiers' addresses agree, row for row.
    assert_eq!(index(&install).len(), 5);
}

#[test]
fn issue_20_the_migration_fills_the_index_of_an_existing_database() {
    let install = install();
    let recent = day(-10);
    import(
        &install,
        "1.csv",
        &format!(
            "A;REF-A;Culture;Lune;;Lune@Example.org;Instruction en cours;{recent};1000\n\
             B;REF-B;Sport;Lune;;lune@example.org, autre@example.org;Instruction en cours;{recent};2000\n"
        ),
    );
    let before = index(&install);
    assert_eq!(before.len(), 3, "{before:?}");
    // The database as version 21 left it: no index, its dossiers stored; and
    // none of what the migrations after 0022 made (each adds its own here).
    let version: i64 = {
        let conn = install.sql();
        conn.execute_batch(
            "DROP TABLE beneficiary_emails;
             DROP TABLE exchanges; DROP TABLE instructor_emails;
             DROP TABLE thread_tokens; DROP TABLE inbound_unmatched; DROP TABLE inbound_state;
             DROP INDEX alerts_message_id;",
        )
        .unwrap();
        let version = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        conn.pragma_update(None, "user_version", 21).unwrap();
        version
    };
    // Any command that opens the store migrates it.
    let out = install.run(&["dossier", "REF-A"]);
    assert!(out.status.success(), "{}", text(&out));
    let now: i64 = install
        .sql()
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(now, version);
    assert_eq!(index(&install), before);
}
