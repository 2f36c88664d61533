//! Pure: the new text of a reply, its quoted history and signature left out.
//!
//! What mail clients add below (or around) what the person wrote, in French and
//! English: lines quoted with `>`; the attribution line that starts a quote
//! ("Le lun. 2 mars 2026 à 10:00, X a écrit :", "On Mon, Mar 2, 2026, X
//! wrote:", possibly wrapped on two lines) and everything after it; Outlook's
//! separators ("-----Original Message-----", "-----Message d'origine-----")
//! and header blocks ("De : … / Envoyé : … / À : … / Objet : …", "From: … /
//! Sent: …") and everything after them; a signature after the `-- ` line
//! (RFC 3676) and a mobile client's "Envoyé de mon iPhone". What is left keeps
//! its lines, without blank lines at its ends and never more than one blank
//! line in a row.

/// The new text of a reply's plain text.
pub(crate) fn new_text(text: &str) -> String {
    let text = text.replace("\r\n", "\n");
    let lines: Vec<&str> = text.lines().collect();
    let mut kept: Vec<&str> = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        if starts_history(&lines, i) {
            break;
        }
        if line.trim_start().starts_with('>') {
            continue;
        }
        kept.push(line.trim_end());
    }
    while kept
        .last()
        .is_some_and(|l| l.trim().is_empty() || is_mobile_signature(l) || is_rule(l))
    {
        kept.pop();
    }
    let mut out = String::new();
    let mut blank = true;
    for line in kept {
        let is_blank = line.trim().is_empty();
        if is_blank && blank {
            continue;
        }
        out.push_str(line);
        out.push('\n');
        blank = is_blank;
    }
    out.trim_end().to_owned()
}

/// Whether line `i` starts what is not new: a signature, a separator, an
/// attribution, a header block of a quoted message.
fn starts_history(lines: &[&str], i: usize) -> bool {
    let line = lines[i].trim_end();
    if line == "--" || line == "-- " || lines[i] == "-- " {
        return true;
    }
    let lower = line.trim().to_lowercase();
    if is_separator(&lower) {
        return true;
    }
    let joined = match lines.get(i + 1) {
        Some(next) => format!("{lower} {}", next.trim().to_lowercase()),
        None => lower.clone(),
    };
    let quote_opens = |text: &str| {
        text.ends_with("a écrit :")
            || text.ends_with("a écrit:")
            || text.ends_with("a ecrit :")
            || text.ends_with("a ecrit:")
            || text.ends_with("wrote:")
            || text.ends_with("wrote :")
    };
    let attribution = (lower.starts_with("le ") || lower.starts_with("on "))
        && (quote_opens(&lower) || quote_opens(&joined));
    attribution || is_header_block(lines, i)
}

/// Outlook's and other clients' separators before a quoted message.
fn is_separator(lower: &str) -> bool {
    let core = lower.trim_matches(|c: char| c == '-' || c == '_' || c.is_whitespace());
    let dashed = lower.starts_with("---") || lower.starts_with("___");
    dashed
        && [
            "original message",
            "message d'origine",
            "message d’origine",
            "message original",
            "forwarded message",
            "message transféré",
        ]
        .contains(&core)
}

/// A quoted message's header block: a `From:`/`De :` line followed, within the
/// next three lines, by a `Sent:`/`Envoyé :`/`Date :`/`To:`/`À :`/`Subject:`/
/// `Objet :` line.
fn is_header_block(lines: &[&str], i: usize) -> bool {
    let field = |line: &str, names: &[&str]| {
        let lower = line.trim().to_lowercase();
        names.iter().any(|name| {
            lower
                .strip_prefix(name)
                .is_some_and(|rest| rest.trim_start().starts_with(':'))
        })
    };
    let opens = field(lines[i], &["from", "de", "*from", "*de"]);
    opens
        && lines.iter().skip(i + 1).take(3).any(|l| {
            field(
                l,
                &[
                    "sent", "envoyé", "envoye", "date", "to", "à", "a", "subject", "objet",
                    "*sent", "*envoyé",
                ],
            )
        })
}

/// A line drawn with `_` or `-` (Outlook's, above a quoted header block).
fn is_rule(line: &str) -> bool {
    let line = line.trim();
    line.len() >= 5 && line.chars().all(|c| c == '_' || c == '-')
}

/// The line a mobile mail client adds: "Envoyé de mon iPhone".
fn is_mobile_signature(line: &str) -> bool {
    let lower = line.trim().to_lowercase();
    lower.starts_with("envoyé de mon ")
        || lower.starts_with("envoye de mon ")
        || lower.starts_with("sent from my ")
}

#[cfg(test)]
mod tests {
    use super::new_text;

    #[test]
    fn gmail_in_french() {
        let mail = "Bonjour,\r\n\r\nVoici la pièce demandée : le RIB est joint.\r\n\r\nCordialement,\r\nClaire\r\n\r\n\
            Le lun. 2 mars 2026 à 10:00, Région Exemple <suivi-aides+0a1b@region.fr> a\r\n\
            écrit :\r\n\r\n> Bonjour,\r\n> Il manque une pièce à votre dossier AR-1.\r\n";
        assert_eq!(
            new_text(mail),
            "Bonjour,\n\nVoici la pièce demandée : le RIB est joint.\n\nCordialement,\nClaire"
        );
    }

    #[test]
    fn thunderbird_in_english_with_a_signature() {
        let mail = "Thanks, I will send it tomorrow.\n\n-- \nJohn Smith\nTreasurer\n\n\
            On 02/03/2026 10:00, Région wrote:\n> Hello\n";
        assert_eq!(new_text(mail), "Thanks, I will send it tomorrow.");
        let mail = "Done.\n\nOn Mon, Mar 2, 2026 at 10:00 AM Région <a@b.fr> wrote:\n> x\n";
        assert_eq!(new_text(mail), "Done.");
    }

    #[test]
    fn outlook_in_french_and_english() {
        let mail = "Bonjour,\nle dossier est complet.\n\nMarc Dupont\nService culture\n\n\
            De : Alertissimo <ne-pas-repondre@region.fr>\nEnvoyé : lundi 2 mars 2026 10:00\n\
            À : Marc Dupont <marc@region.fr>\nObjet : Dossier AR-1\n\nBonjour, …\n";
        assert_eq!(
            new_text(mail),
            "Bonjour,\nle dossier est complet.\n\nMarc Dupont\nService culture"
        );
        let mail = "Approved.\n\n-----Original Message-----\nFrom: A\nSent: Monday\nTo: B\n\nold\n";
        assert_eq!(new_text(mail), "Approved.");
        let mail = "Vu.\n\n-----Message d'origine-----\nDe : A\nold\n";
        assert_eq!(new_text(mail), "Vu.");
        let mail = "OK\n________________________________\nFrom: A <a@b.fr>\nSent: Monday\n";
        assert_eq!(new_text(mail), "OK");
    }

    #[test]
    fn inline_quotes_are_dropped_and_mobile_lines_too() {
        let mail = "> Avez-vous le RIB ?\nOui, ci-joint.\n> Et le budget ?\nDemain.\n\n\nEnvoyé de mon iPhone\n";
        assert_eq!(new_text(mail), "Oui, ci-joint.\nDemain.");
    }

    #[test]
    fn text_that_only_mentions_words_stays() {
        let mail = "Le dossier est parti.\nDe plus, le budget suit.\nOn verra demain.";
        assert_eq!(new_text(mail), mail);
        assert_eq!(new_text(""), "");
    }
}
