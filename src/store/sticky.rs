//! The statements an import runs for every new dossier and every event,
//! prepared once per import. SQLite keeps a statement's parameters from one run
//! to the next, so a parameter is bound again only when its value may have
//! changed: the run, the connector, an event's kind and its many empty columns
//! are bound once, where binding every parameter of every row took a tenth of
//! the work of a first import.

use rusqlite::types::{ToSql, ToSqlOutput, ValueRef};
use rusqlite::{Connection, Statement};

use super::Result;

/// One parameter of a run of a [`Sticky`] statement (or of any statement).
#[derive(Debug, Clone, Copy)]
pub(super) enum Param<'v> {
    Null,
    Int(i64),
    /// Text that outlives the import (an event kind): compared, not rebound.
    Static(&'static str),
    /// Text that seldom changes (the connector): kept, compared, rebound when it changed.
    Kept(&'v str),
    /// Text that changes from row to row: always bound.
    Text(&'v str),
    Blob(&'v [u8]),
}

impl<'v> Param<'v> {
    /// Text, or NULL when there is none.
    pub(super) fn text_or_null(text: Option<&'v str>) -> Self {
        text.map_or(Self::Null, Self::Text)
    }

    /// Whether this value is bound already.
    fn is(self, bound: &Bound) -> bool {
        match (self, bound) {
            (Self::Null, Bound::Null) => true,
            (Self::Int(v), Bound::Int(b)) => v == *b,
            (Self::Static(s), Bound::Static(b)) => s == *b,
            (Self::Kept(s), Bound::Kept(b)) => s == b,
            _ => false,
        }
    }

    /// What the statement keeps of this value once bound.
    fn memo(self) -> Bound {
        match self {
            Self::Null => Bound::Null,
            Self::Int(v) => Bound::Int(v),
            Self::Static(s) => Bound::Static(s),
            Self::Kept(s) => Bound::Kept(s.to_owned()),
            Self::Text(_) | Self::Blob(_) => Bound::Unknown,
        }
    }
}

impl ToSql for Param<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Borrowed(match *self {
            Self::Null => ValueRef::Null,
            Self::Int(v) => ValueRef::Integer(v),
            Self::Static(s) => ValueRef::Text(s.as_bytes()),
            Self::Kept(s) | Self::Text(s) => ValueRef::Text(s.as_bytes()),
            Self::Blob(b) => ValueRef::Blob(b),
        }))
    }
}

/// What is known to be bound to a parameter.
#[derive(Debug, Clone)]
enum Bound {
    /// Nothing, or a value not kept (text and blobs are bound at every run).
    Unknown,
    Null,
    Int(i64),
    Static(&'static str),
    Kept(String),
}

/// A prepared statement that rebinds only the parameters whose value changed.
pub(super) struct Sticky<'c> {
    stmt: Statement<'c>,
    bound: Vec<Bound>,
}

impl<'c> Sticky<'c> {
    pub(super) fn prepare(conn: &'c Connection, sql: &str) -> Result<Self> {
        let stmt = conn.prepare(sql)?;
        let bound = vec![Bound::Unknown; stmt.parameter_count()];
        Ok(Self { stmt, bound })
    }

    /// Runs the statement with `params` (one for each of its parameters, in
    /// order); returns how many rows it changed.
    pub(super) fn execute(&mut self, params: &[Param<'_>]) -> Result<usize> {
        assert_eq!(params.len(), self.bound.len(), "one value a parameter");
        for (index, (&param, bound)) in params.iter().zip(&mut self.bound).enumerate() {
            if param.is(bound) {
                continue;
            }
            // Unknown until the bind succeeded.
            *bound = Bound::Unknown;
            self.stmt.raw_bind_parameter(index + 1, param)?;
            *bound = param.memo();
        }
        Ok(self.stmt.raw_execute()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Row = (i64, Option<String>, Option<Vec<u8>>, Option<String>);

    /// A database with the table `t (a, b, c, d)`, `a` declared as `a_type`.
    fn table(a_type: &str) -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(&format!(
            "CREATE TABLE t (a {a_type}, b TEXT, c BLOB, d TEXT)"
        ))
        .unwrap();
        conn
    }

    const INSERT: &str = "INSERT INTO t VALUES (?1, ?2, ?3, ?4)";

    fn rows(conn: &Connection) -> Vec<Row> {
        let mut stmt = conn
            .prepare("SELECT a, b, c, d FROM t ORDER BY rowid")
            .unwrap();
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap()
    }

    #[test]
    fn every_row_holds_its_own_values_whichever_were_bound_again() {
        let conn = table("INTEGER");
        let mut insert = Sticky::prepare(&conn, INSERT).unwrap();
        let runs: [[Param<'_>; 4]; 5] = [
            [
                Param::Int(1),
                Param::Static("created"),
                Param::Blob(b"x"),
                Param::Kept("a"),
            ],
            [
                Param::Int(1),
                Param::Static("created"),
                Param::Null,
                Param::Text("é"),
            ],
            [
                Param::Int(2),
                Param::Static("step_changed"),
                Param::Null,
                Param::Kept("é"),
            ],
            [
                Param::Int(2),
                Param::Kept("step_changed"),
                Param::Blob(b"yz"),
                Param::Kept("é"),
            ],
            [
                Param::Int(1),
                Param::Static("created"),
                Param::Blob(b"yz"),
                Param::Null,
            ],
        ];
        for run in &runs {
            assert_eq!(insert.execute(run).unwrap(), 1);
        }
        let text = |s: &str| Some(s.to_owned());
        assert_eq!(
            rows(&conn),
            vec![
                (1, text("created"), Some(b"x".to_vec()), text("a")),
                (1, text("created"), None, text("é")),
                (2, text("step_changed"), None, text("é")),
                (2, text("step_changed"), Some(b"yz".to_vec()), text("é")),
                (1, text("created"), Some(b"yz".to_vec()), None),
            ]
        );
    }

    #[test]
    fn a_failed_run_leaves_the_next_one_whole() {
        let conn = table("INTEGER UNIQUE");
        let mut insert = Sticky::prepare(&conn, INSERT).unwrap();
        let first = [Param::Int(1), Param::Static("a"), Param::Null, Param::Null];
        insert.execute(&first).unwrap();
        assert!(insert.execute(&first).is_err(), "a duplicate is refused");
        insert
            .execute(&[
                Param::Int(2),
                Param::Static("a"),
                Param::Null,
                Param::Text("d"),
            ])
            .unwrap();
        assert_eq!(
            rows(&conn)[1],
            (2, Some("a".to_owned()), None, Some("d".to_owned()))
        );
    }
}
