//! `[web] staff`: the Region's staff who sign in to the front office's staff
//! view besides the dossiers' instructors, each with a role (issue 21).
//!
//! Owns the list's type and its reading: each entry an address and a role,
//! every address valid and listed once (any case), every role known. Which
//! pages a role opens is the `web` module's.

use figment::Figment;
use serde::{Deserialize, Serialize};

use super::{get, push_key};
use crate::diag::Problems;

/// What a staff member may see.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum StaffRole {
    /// `instructeur`: the dossiers they instruct (those whose
    /// `instructor.email` is their address), as an instructor of the source.
    Instructor,
    /// `pilotage`: every dossier, with filters, and the managers' figures.
    Pilotage,
}

impl StaffRole {
    /// The role as the file writes it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Instructor => "instructeur",
            Self::Pilotage => "pilotage",
        }
    }
}

/// One entry of `[web] staff`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StaffMember {
    /// The address, trimmed and in lowercase.
    pub email: String,
    /// The role.
    pub role: StaffRole,
}

/// An entry as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    email: String,
    role: String,
}

/// Reads `web.staff`: every problem found is reported, the list is given when
/// there is none.
pub(super) fn staff(figment: &Figment, p: &mut Problems) -> Option<Vec<StaffMember>> {
    let raw = get::<Vec<Raw>>(figment, "web.staff", p)?;
    let mut out: Vec<StaffMember> = Vec::with_capacity(raw.len());
    let mut fine = true;
    for (i, entry) in raw.iter().enumerate() {
        match member(entry, &out) {
            Ok(member) => out.push(member),
            Err(why) => {
                fine = false;
                push_key(figment, "web.staff", format!("entry {}: {why}", i + 1), p);
            }
        }
    }
    fine.then_some(out)
}

/// One entry, checked against those before it, or why not (pure).
fn member(raw: &Raw, before: &[StaffMember]) -> Result<StaffMember, String> {
    let email = raw.email.trim().to_lowercase();
    let plain = crate::value::recipient(&email)
        .map_err(|e| format!("'{}' is not an e-mail address ({e})", raw.email))?;
    if plain.to_string() != email {
        return Err(format!(
            "'{}' is not a bare e-mail address like \"agent@region.example.org\"",
            raw.email
        ));
    }
    let role = match raw.role.trim() {
        "instructeur" => StaffRole::Instructor,
        "pilotage" => StaffRole::Pilotage,
        other => {
            return Err(format!(
                "role '{other}' of {email} is not one of \"instructeur\", \"pilotage\""
            ));
        }
    };
    if before.iter().any(|m| m.email == email) {
        return Err(format!(
            "{email} is listed twice: give each address one role (\"pilotage\" sees what \"instructeur\" sees)"
        ));
    }
    Ok(StaffMember { email, role })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(email: &str, role: &str) -> Raw {
        Raw {
            email: email.to_owned(),
            role: role.to_owned(),
        }
    }

    #[test]
    fn entries_are_checked_one_by_one() {
        let first = member(&raw(" Chef@Region.FR ", "pilotage"), &[]).unwrap();
        assert_eq!(first.email, "chef@region.fr");
        assert_eq!(first.role, StaffRole::Pilotage);
        let again = member(&raw("chef@region.fr", "instructeur"), &[first]).unwrap_err();
        assert!(again.contains("listed twice"), "{again}");
        let role = member(&raw("a@region.fr", "admin"), &[]).unwrap_err();
        assert!(role.contains("role 'admin'"), "{role}");
        let bad = member(&raw("pas une adresse", "pilotage"), &[]).unwrap_err();
        assert!(bad.contains("is not an e-mail address"), "{bad}");
        let named = member(&raw("Chef <chef@region.fr>", "pilotage"), &[]).unwrap_err();
        assert!(named.contains("is not"), "{named}");
    }
}
