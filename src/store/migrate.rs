//! The schema's versions: the migrations (`migrations/NNNN_name.sql`), each with
//! the Rust hook that converts what SQL cannot, and how a database is brought to
//! the latest one, also when two programs open a new database at once.

use rusqlite::{Connection, Transaction};
use rusqlite_migration::{M, Migrations};

use super::{StoreError, beneficiaries, fields, index, references};

/// A migration hook's error from the store's: SQLite's stays itself, the others
/// become their message.
impl From<StoreError> for rusqlite_migration::HookError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Sqlite(e) | StoreError::Locked(e) => Self::RusqliteError(e),
            other => Self::Hook(other.to_string()),
        }
    }
}

/// A migration: its SQL, then the Rust code that converts what SQL cannot.
type Migration = (
    &'static str,
    Option<fn(&Transaction<'_>) -> rusqlite_migration::HookResult>,
);

pub(super) const MIGRATIONS: &[Migration] = &[
    (include_str!("migrations/0001_init.sql"), None),
    (include_str!("migrations/0002_outbox.sql"), None),
    (include_str!("migrations/0003_delivery.sql"), None),
    (include_str!("migrations/0004_admin_reports.sql"), None),
    (
        include_str!("migrations/0005_compact_state.sql"),
        Some(fields::migrate_0005),
    ),
    (include_str!("migrations/0006_sources.sql"), None),
    (include_str!("migrations/0007_messages.sql"), None),
    (include_str!("migrations/0008_timers.sql"), None),
    (include_str!("migrations/0009_retention.sql"), None),
    (
        include_str!("migrations/0010_change_index.sql"),
        Some(index::migrate_0010),
    ),
    (
        include_str!("migrations/0011_reference_index.sql"),
        Some(references::migrate_0011),
    ),
    (include_str!("migrations/0012_claims.sql"), None),
    (include_str!("migrations/0013_unchanged_runs.sql"), None),
    (
        include_str!("migrations/0014_run_encoding_and_changed.sql"),
        None,
    ),
    (include_str!("migrations/0015_files_seen.sql"), None),
    (include_str!("migrations/0016_left_out.sql"), None),
    (include_str!("migrations/0017_gauge_totals.sql"), None),
    (include_str!("migrations/0018_unsubscribe.sql"), None),
    (include_str!("migrations/0019_run_as_of.sql"), None),
    (include_str!("migrations/0020_front_office.sql"), None),
    (include_str!("migrations/0021_kept_messages.sql"), None),
    (
        include_str!("migrations/0022_beneficiary_emails.sql"),
        Some(beneficiaries::migrate_0022),
    ),
    (include_str!("migrations/0023_exchanges.sql"), None),
    (include_str!("migrations/0024_inbound.sql"), None),
    (
        include_str!("migrations/0025_staff.sql"),
        Some(beneficiaries::migrate_0025),
    ),
];

fn migrations() -> Migrations<'static> {
    Migrations::new(
        MIGRATIONS
            .iter()
            .map(|(sql, hook)| match hook {
                Some(hook) => M::up_with_hook(sql, *hook),
                None => M::up(sql),
            })
            .collect(),
    )
}

pub(super) fn migrations_count() -> i64 {
    MIGRATIONS.len() as i64
}

/// Migrates the database to this version's schema. Two programs opening a new
/// database at once both find it empty; the second one's migration fails on
/// the tables the first one made, or is refused at once: then what counts is
/// whether the schema is the latest now (issue 17, item 31).
pub(super) fn migrate(conn: &mut Connection) -> std::result::Result<(), rusqlite_migration::Error> {
    super::patiently(
        |error| matches!(error, rusqlite_migration::Error::RusqliteError { err, .. } if super::is_busy(err)),
        || match migrations().to_latest(conn) {
            Err(error) if migrations().pending_migrations(conn) != Ok(0) => Err(error),
            _ => Ok(()),
        },
    )
}
