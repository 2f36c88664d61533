//! SIRET numbers: 14 digits with a Luhn key (La Poste's establishments aside).

use super::*;

/// Validates a SIRET; returns its 14 digits.
pub(crate) fn parse_siret(raw: &str) -> Result<String, String> {
    let digits: String = if raw.bytes().all(|b| b.is_ascii_digit()) {
        raw.to_owned()
    } else {
        raw.chars()
            .filter(|c| !(SPACES.contains(c) || matches!(c, '.' | '-')))
            .collect()
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("'{raw}' is not a valid SIRET (14 digits expected)"));
    }
    match digits.len() {
        14 => {}
        9 => {
            return Err(format!(
                "'{raw}' is a SIREN (9 digits), not a SIRET (14 digits expected)"
            ));
        }
        13 => {
            return Err(format!(
                "'{raw}' is not a valid SIRET (13 digits instead of 14: a leading zero \
                 may have been lost, e.g. by a spreadsheet)"
            ));
        }
        n => {
            return Err(format!(
                "'{raw}' is not a valid SIRET (14 digits expected, found {n})"
            ));
        }
    }
    let valid = luhn_valid(&digits)
        || (digits.starts_with(LA_POSTE_SIREN) && digit_sum(&digits).is_multiple_of(5));
    if valid {
        Ok(digits)
    } else {
        Err(format!(
            "'{raw}' is not a valid SIRET (invalid check digit)"
        ))
    }
}

/// La Poste's SIREN: its establishments' SIRETs have a digit sum divisible by 5
/// instead of a Luhn key (its head office, 356 000 000 00048, has a Luhn key).
const LA_POSTE_SIREN: &str = "356000000";

fn digit_sum(digits: &str) -> u32 {
    digits.bytes().map(|b| u32::from(b - b'0')).sum()
}

fn luhn_valid(digits: &str) -> bool {
    let sum: u32 = digits
        .bytes()
        .rev()
        .enumerate()
        .map(|(index, b)| {
            let digit = u32::from(b - b'0');
            if index % 2 == 1 {
                let doubled = digit * 2;
                if doubled > 9 { doubled - 9 } else { doubled }
            } else {
                digit
            }
        })
        .sum();
    sum.is_multiple_of(10)
}
