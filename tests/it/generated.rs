//! Exports made up for delivery tests and the dispatch benchmark (shared with
//! `examples/bench_dispatch.rs`): `n` dossiers in the fixture connector's format.

/// An export of `n` dossiers, all with the status label `status`, each with its
/// own address `asso{i}@example.org`.
pub fn export_text(n: usize, status: &str) -> String {
    let mut text = String::from(
        "N° dossier;Référence;Dispositif;Bénéficiaire;SIRET;Courriel;Statut;Date statut;Montant voté;Date d'export\n",
    );
    for i in 0..n {
        text.push_str(&format!(
            "C{i};REF-C{i};Culture;Association {i};;asso{i}@example.org;{status};01/10/2026;;01/10/2026 06:00\n"
        ));
    }
    text
}
