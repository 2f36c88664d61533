//! The read budget of a source: how much one export may make Alertissimo read
//! and hold, so that a hostile or damaged file (a decompression bomb, a 50 MB
//! cell) is refused, naming the file and the limit, instead of exhausting the
//! memory of the daemon.
//!
//! | what | limit |
//! |---|---|
//! | one field (a CSV field, a cell, an XML value, a JSON value) | 128 KiB |
//! | records in one snapshot | 20 million |
//! | an `.xlsx` / `.ods` archive, all its members inflated (the shared strings included) | 256 MiB |
//!
//! An API's answers have their own limit (`max_response_mb`).

use std::path::Path;

/// The longest field, in bytes (Excel holds at most 32 767 characters a cell).
pub(crate) const MAX_FIELD_BYTES: usize = 128 * 1024;
/// The most records one snapshot may hold.
pub(crate) const MAX_RECORDS: u64 = 20_000_000;
/// The most an `.xlsx` or `.ods` archive may inflate to, all members together.
pub(crate) const MAX_INFLATED_BYTES: u64 = 256 * 1024 * 1024;

/// Checks the declared sizes of a zip-based workbook (`.xlsx`, `.ods`) against
/// the budget before anything is inflated (the zip reader never reads past a
/// member's declared size). Other files pass.
///
/// # Errors
/// A reason naming the file, the member and the limit.
pub(crate) fn check_archive(path: &Path) -> Result<(), String> {
    let file =
        std::fs::File::open(path).map_err(|e| format!("{}: cannot open: {e}", path.display()))?;
    let mut magic = [0u8; 4];
    if std::io::Read::read_exact(&mut &file, &mut magic).is_err() || magic != *b"PK\x03\x04" {
        return Ok(());
    }
    let Ok(mut archive) = zip::ZipArchive::new(file) else {
        // Not a readable archive: the workbook reader says why.
        return Ok(());
    };
    let mut total = 0u64;
    for i in 0..archive.len() {
        let Ok(member) = archive.by_index_raw(i) else {
            continue;
        };
        total = total.saturating_add(member.size());
        if total > MAX_INFLATED_BYTES {
            return Err(format!(
                "{}: the workbook inflates past the read budget of {} MiB (member '{}' alone is {} MiB): a damaged or hostile file; nothing was read",
                path.display(),
                MAX_INFLATED_BYTES >> 20,
                member.name().unwrap_or_default(),
                member.size() >> 20
            ));
        }
    }
    Ok(())
}

/// Checks one record's fields against the budget.
///
/// # Errors
/// A reason naming the file, the line, the field and the limit.
pub(crate) fn check_fields<'a>(
    file: &str,
    line: u64,
    fields: impl IntoIterator<Item = (usize, &'a [u8])>,
    header: impl Fn(usize) -> String,
) -> Result<(), String> {
    for (i, field) in fields {
        if field.len() > MAX_FIELD_BYTES {
            return Err(format!(
                "{file}:{line}: the field '{}' holds {} KiB, past the read budget of {} KiB a field: a damaged or hostile export; nothing was applied",
                header(i),
                field.len() >> 10,
                MAX_FIELD_BYTES >> 10
            ));
        }
    }
    Ok(())
}
