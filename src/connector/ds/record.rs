//! A DS dossier as the connector's `[fields]` see it, its messagerie, and a
//! deleted dossier as DS lists it.
//!
//! Pure: no I/O. Owns the pointers DS records have besides DS's own fields
//! (`/demandeur/nom`, `/etapeDepuis`, `/url`, `/urlInstructeur`, `/champ/…`,
//! `/annotation/…`) and the reading of champs and annotations by id or label.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

use crate::connector::mapping::{DsChamp, normalize};
use crate::model::{SourceDeletion, SourceMessage};

/// The démarche a dossier was read from, and the instance.
pub(super) struct Demarche<'a> {
    /// The instance's address, without a final `/`.
    pub base: &'a str,
    /// The démarche's number.
    pub number: i64,
    /// Its title, when DS gave it.
    pub title: Option<&'a str>,
}

/// One champ or annotation the connector maps, and whether a dossier had it.
struct Key {
    /// As the connector file writes it: an id, or a label.
    written: String,
    /// The label form, to compare with labels.
    label: String,
    matched: bool,
}

/// The champs and annotations the connector maps, by id or label.
pub(super) struct Wanted {
    champs: Vec<Key>,
    annotations: Vec<Key>,
    /// How many dossiers were read.
    read: u64,
}

impl Wanted {
    pub(super) fn new(mapped: &[&DsChamp]) -> Self {
        let keys = |annotation: bool| {
            let mut keys: Vec<Key> = Vec::new();
            for c in mapped.iter().filter(|c| c.annotation == annotation) {
                if !keys.iter().any(|k| k.written == c.key) {
                    keys.push(Key {
                        written: c.key.clone(),
                        label: normalize(&c.key),
                        matched: false,
                    });
                }
            }
            keys
        };
        Self {
            champs: keys(false),
            annotations: keys(true),
            read: 0,
        }
    }

    /// Whether the query asks for champs.
    pub(super) fn champs(&self) -> bool {
        !self.champs.is_empty()
    }

    /// Whether the query asks for annotations.
    pub(super) fn annotations(&self) -> bool {
        !self.annotations.is_empty()
    }

    /// Logs the champs and annotations no dossier read had (a label mistyped, or
    /// changed on DS), once dossiers were read.
    pub(super) fn report_unmatched(&mut self, demarches: &[i64]) {
        if self.read == 0 {
            return;
        }
        for (list, keys) in [("champ", &self.champs), ("annotation", &self.annotations)] {
            for key in keys.iter().filter(|k| !k.matched) {
                tracing::warn!(
                    demarches = ?demarches, dossiers = self.read, key = %key.written,
                    "No dossier read has this {list} (by id or label): check the connector's [fields]."
                );
            }
        }
        // Said once per synchronisation.
        self.read = 0;
    }
}

/// The values of `keys` among a dossier's `champs` (or `annotations`): the
/// champ whose id is the key, else the first whose label is (ignoring case and
/// spaces). A date is its ISO form; any other champ its `stringValue`.
fn champ_values(champs: Option<&Value>, keys: &mut [Key]) -> Value {
    let list = champs.and_then(Value::as_array);
    let mut out = Map::new();
    for key in keys {
        let found = list.and_then(|list| {
            list.iter()
                .find(|c| c.get("id").and_then(Value::as_str) == Some(&key.written))
                .or_else(|| {
                    list.iter().find(|c| {
                        c.get("label")
                            .and_then(Value::as_str)
                            .is_some_and(|l| normalize(l) == key.label)
                    })
                })
        });
        let Some(champ) = found else { continue };
        key.matched = true;
        let text = ["date", "datetime", "stringValue"]
            .iter()
            .find_map(|f| champ.get(*f).and_then(Value::as_str))
            .unwrap_or_default();
        out.insert(key.written.clone(), Value::String(text.to_owned()));
    }
    Value::Object(out)
}

/// A DS dossier as the connector's `[fields]` see it: DS's own fields, plus
/// `/demandeur/nom` (a company's name or a person's first and last names),
/// `/demandeur/siret`, `/etapeDepuis` (when it entered its state), `/url` (its
/// page for the usager), `/urlInstructeur` (its page for instructeurs),
/// `/instructeurs` (their e-mails), `/demarche/number` and `/demarche/title`, and
/// the champs and annotations the connector maps, under `/champ/<key>` and
/// `/annotation/<key>` (the raw lists are left out).
pub(super) fn flatten(node: &Value, demarche: &Demarche<'_>, wanted: &mut Wanted) -> Value {
    wanted.read += 1;
    let text = |p: &str| node.pointer(p).and_then(Value::as_str).map(str::to_owned);
    let state = text("/state").unwrap_or_default();
    let since = match state.as_str() {
        "en_construction" => text("/dateDepot"),
        "en_instruction" => text("/datePassageEnInstruction").or_else(|| text("/dateDepot")),
        _ => text("/dateTraitement").or_else(|| text("/dateDerniereModification")),
    };
    let number = node.get("number").cloned().unwrap_or(Value::Null);
    let base = demarche.base;
    let mut out = node.clone();
    let Value::Object(map) = &mut out else {
        return out;
    };
    let champs = map.remove("champs");
    let annotations = map.remove("annotations");
    map.insert("demandeur".to_owned(), demandeur(node));
    map.insert(
        "etapeDepuis".to_owned(),
        since.map_or(Value::Null, Value::String),
    );
    // The usager's page: the instructeurs' one is not theirs to open.
    map.insert(
        "url".to_owned(),
        Value::String(format!("{base}/dossiers/{number}")),
    );
    map.insert(
        "urlInstructeur".to_owned(),
        Value::String(format!(
            "{base}/procedures/{}/dossiers/{number}",
            demarche.number
        )),
    );
    map.insert(
        "instructeurs".to_owned(),
        Value::Array(
            node.get("instructeurs")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|i| i.get("email").cloned())
                .collect(),
        ),
    );
    map.insert(
        "demarche".to_owned(),
        json!({ "number": demarche.number, "title": demarche.title }),
    );
    if wanted.champs() {
        let values = champ_values(champs.as_ref(), &mut wanted.champs);
        map.insert("champ".to_owned(), values);
    }
    if wanted.annotations() {
        let values = champ_values(annotations.as_ref(), &mut wanted.annotations);
        map.insert("annotation".to_owned(), values);
    }
    out
}

/// The demandeur: a company (`PersonneMorale`) or a person (`PersonnePhysique`).
fn demandeur(node: &Value) -> Value {
    let text = |p: &str| node.pointer(p).and_then(Value::as_str).map(str::to_owned);
    match text("/demandeur/__typename").as_deref() {
        Some("PersonneMorale") => json!({
            "type": "PersonneMorale",
            "nom": text("/demandeur/entreprise/raisonSociale"),
            "siret": text("/demandeur/siret"),
        }),
        Some("PersonnePhysique") => {
            let name = [text("/demandeur/prenom"), text("/demandeur/nom")]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(" ");
            json!({
                "type": "PersonnePhysique",
                "nom": name,
                "email": text("/demandeur/email"),
            })
        }
        _ => Value::Null,
    }
}

/// A dossier of `deletedDossiers` or `pendingDeletedDossiers`: its number, when
/// (`dateSupression`, so spelt by DS) and why (`reason`); `None` without a number.
pub(super) fn deletion(node: &Value) -> Option<SourceDeletion> {
    let number = node.get("number").and_then(Value::as_i64)?;
    Some(SourceDeletion {
        id: number.to_string(),
        at: node
            .get("dateSupression")
            .and_then(Value::as_str)
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&Utc)),
        reason: node
            .get("reason")
            .and_then(Value::as_str)
            .map(str::to_owned),
    })
}

/// The messages of a dossier's messagerie (DS mirrors its own e-mails there too),
/// their HTML made plain text.
pub(super) fn messages(node: &Value) -> Vec<SourceMessage> {
    node.get("messages")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|m| {
            let at = DateTime::parse_from_rfc3339(m.get("createdAt")?.as_str()?).ok()?;
            Some(SourceMessage {
                id: m.get("id")?.as_str()?.to_owned(),
                from: m
                    .get("email")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
                text: plain_text(m.get("body").and_then(Value::as_str).unwrap_or_default()),
                at: at.with_timezone(&Utc),
            })
        })
        .collect()
}

/// The text of a little HTML (DS message bodies): line breaks for `<br>`, `</p>`
/// and `</div>`, other tags dropped, the common entities decoded, blank lines squeezed.
pub(crate) fn plain_text(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut rest = html;
    while let Some(start) = rest.find('<') {
        out.push_str(&rest[..start]);
        let Some(end) = rest[start..].find('>') else {
            out.push_str(&rest[start..]);
            rest = "";
            break;
        };
        let tag = rest[start + 1..start + end].trim().to_ascii_lowercase();
        if tag.starts_with("br") || tag == "/p" || tag == "/div" || tag == "/li" {
            out.push('\n');
        }
        rest = &rest[start + end + 1..];
    }
    out.push_str(rest);
    let decoded = out
        .replace("&nbsp;", " ")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&");
    let mut text = String::new();
    for line in decoded.lines().map(str::trim) {
        if line.is_empty() && (text.is_empty() || text.ends_with("\n\n")) {
            continue;
        }
        text.push_str(line);
        text.push('\n');
    }
    text.trim_end().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shown(title: Option<&str>) -> Demarche<'_> {
        Demarche {
            base: "https://ds.example.org",
            number: 123,
            title,
        }
    }

    #[test]
    fn message_bodies_become_plain_text() {
        assert_eq!(
            plain_text(
                "<p>[Votre dossier nº 42 a bien été déposé]</p><div> Bonjour, <br><br>\n</div><div>Votre dossier <strong>a bien été déposé</strong>.<br>Cordialement &amp; à bientôt</div>"
            ),
            "[Votre dossier nº 42 a bien été déposé]\nBonjour,\n\nVotre dossier a bien été déposé.\nCordialement & à bientôt"
        );
        assert_eq!(
            plain_text("Pièce manquante : le RIB"),
            "Pièce manquante : le RIB"
        );
    }

    #[test]
    fn a_company_and_a_person_as_fields_see_them() {
        let mut wanted = Wanted::new(&[]);
        let company = flatten(
            &json!({
                "number": 42, "state": "en_instruction",
                "dateDepot": "2026-03-01T10:00:00+01:00",
                "datePassageEnInstruction": "2026-03-10T09:00:00+01:00",
                "usager": { "email": "depot@asso.fr" },
                "instructeurs": [{ "email": "a@region.fr" }],
                "demandeur": { "__typename": "PersonneMorale", "siret": "21060004500392",
                               "entreprise": { "raisonSociale": "Théâtre Éphémère" } }
            }),
            &shown(Some("Aide aux associations")),
            &mut wanted,
        );
        assert_eq!(company["demarche"]["title"], "Aide aux associations");
        assert_eq!(company["demandeur"]["nom"], "Théâtre Éphémère");
        assert_eq!(company["demandeur"]["siret"], "21060004500392");
        assert_eq!(company["etapeDepuis"], "2026-03-10T09:00:00+01:00");
        assert_eq!(company["url"], "https://ds.example.org/dossiers/42");
        assert_eq!(
            company["urlInstructeur"],
            "https://ds.example.org/procedures/123/dossiers/42"
        );
        assert_eq!(company["instructeurs"], json!(["a@region.fr"]));
        let person = flatten(
            &json!({ "number": 7, "state": "accepte", "dateTraitement": "2026-04-01T12:00:00+02:00",
                     "demandeur": { "__typename": "PersonnePhysique", "prenom": "Jeanne", "nom": "Martin" } }),
            &shown(None),
            &mut wanted,
        );
        assert_eq!(person["demandeur"]["nom"], "Jeanne Martin");
        assert_eq!(person["etapeDepuis"], "2026-04-01T12:00:00+02:00");
    }

    #[test]
    fn champs_are_read_by_id_or_by_label() {
        let mapped = [
            DsChamp::champ("Montant demandé"),
            DsChamp::champ("Q2hhbXAtNDI="),
            DsChamp::champ("Date de début du projet"),
            DsChamp::annotation("Montant  VOTÉ"),
            DsChamp::champ("Champ absent"),
        ];
        let mut wanted = Wanted::new(&mapped.iter().collect::<Vec<_>>());
        let record = flatten(
            &json!({
                "number": 42, "state": "en_construction",
                "champs": [
                    { "id": "Q2hhbXAtNDE=", "label": "Montant demandé ", "stringValue": "12 500,50" },
                    { "id": "Q2hhbXAtNDI=", "label": "Commune", "stringValue": "Lille" },
                    { "id": "Q2hhbXAtNDM=", "label": "Date de début du projet",
                      "stringValue": "15 janvier 2027", "date": "2027-01-15" }
                ],
                "annotations": [
                    { "id": "Q2hhbXAtOTk=", "label": "Montant voté", "stringValue": null }
                ]
            }),
            &shown(None),
            &mut wanted,
        );
        assert_eq!(
            record["champ"],
            json!({
                "Montant demandé": "12 500,50",
                "Q2hhbXAtNDI=": "Lille",
                "Date de début du projet": "2027-01-15"
            })
        );
        assert_eq!(record["annotation"], json!({ "Montant  VOTÉ": "" }));
        assert!(record.get("champs").is_none(), "the raw list is left out");
        let unmatched: Vec<&str> = wanted
            .champs
            .iter()
            .filter(|k| !k.matched)
            .map(|k| k.written.as_str())
            .collect();
        assert_eq!(unmatched, ["Champ absent"]);
    }

    #[test]
    fn a_deletion_has_its_date_and_reason() {
        let d = deletion(&json!({ "number": 9, "dateSupression": "2026-04-03T10:00:00+02:00", "reason": "user_request" }))
            .unwrap();
        assert_eq!(d.id, "9");
        assert_eq!(d.at.unwrap().to_rfc3339(), "2026-04-03T08:00:00+00:00");
        assert_eq!(d.reason.as_deref(), Some("user_request"));
        assert!(deletion(&json!({ "dateSupression": "2026-04-03T10:00:00+02:00" })).is_none());
    }
}
