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

/// An estimate from 40 stays of a step, for a dossier just entered: `remaining`,
/// `low` and `high` in seconds.
pub fn estimate(
    basis: crate::delays::Basis,
    remaining: i64,
    low: Option<i64>,
    high: Option<i64>,
) -> crate::delays::Estimate {
    crate::delays::Estimate {
        basis,
        sample: 40,
        median: Some(10 * 86_400),
        p80: None,
        p90: None,
        elapsed: 0,
        remaining: Some(remaining),
        low,
        high,
        overdue: false,
        sessions: false,
        extrapolated: false,
        past_p80: None,
        past_p90: None,
        dates: None,
    }
}
