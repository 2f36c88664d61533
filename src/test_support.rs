//! Helpers shared by the unit tests of several modules.

use chrono::{DateTime, Utc};

/// An instant written in RFC 3339 (`2026-03-10T09:00:00Z`, or with an offset).
pub fn utc(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .expect("valid test instant")
        .with_timezone(&Utc)
}

/// The shipped `rules/lifecycle.toml`.
pub fn shipped_lifecycle() -> crate::lifecycle::Lifecycle {
    let mut problems = crate::diag::Problems::default();
    crate::lifecycle::Lifecycle::parse(
        std::path::Path::new("lifecycle.toml"),
        include_str!("../rules/lifecycle.toml"),
        &mut problems,
    )
    .expect("the shipped lifecycle")
}
