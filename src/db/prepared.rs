//! Hand-written statements that stay prepared on their connection, on either backend.
//!
//! Why: diesel 2.3 never caches a `sql_query` (its text may be built at run time), nor any
//! single-row INSERT of its query builder (a field may turn into `DEFAULT`), nor any UPDATE or
//! `ON CONFLICT DO UPDATE`. So the database parsed, analysed and planned each of them on every
//! call. On PostgreSQL's sale path, eight such statements a sale, that was over a tenth of all
//! CPU (measured with `perf`: `pg_parse_query`, `pg_analyze_and_rewrite_varparams`,
//! `pg_plan_queries`; the server log showed them as `parse <unnamed>`). A [`Prepared`]
//! statement's text is a `&'static str`, so it cannot be built from values: diesel caches it
//! under its text, like any cacheable statement of its query builder.
//!
//! The text names its binds `$1`, `$2`, … as PostgreSQL does; a bind may appear more than
//! once. A `$` followed by digits is always a bind, even inside a quoted literal, so a text
//! that needs such a literal must take it as a bind instead. Each is written as the backend's own placeholder (`$n` or `?`), so one text serves
//! both backends when its SQL does. Rows are read by name (`QueryableByName`), as with
//! `sql_query`.
use diesel::backend::Backend;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::result::Error;
use diesel::serialize::ToSql;
use diesel::sql_types::{HasSqlType, Untyped};
use diesel::{QueryResult, RunQueryDsl};
use std::marker::PhantomData;

/// A statement with fixed text; see the module's documentation.
#[derive(Debug, Clone, Copy)]
#[must_use = "a statement runs only when executed or loaded"]
pub struct Prepared<B> {
    sql: &'static str,
    binds: B,
}

/// Starts a statement whose binds are added, in `$n` order, with [`Prepared::bind`].
pub fn prepared(sql: &'static str) -> Prepared<()> {
    Prepared { sql, binds: () }
}

impl<B> Prepared<B> {
    /// Adds the next bind: the first call gives `$1`, the second `$2`, and so on.
    pub fn bind<ST, V>(self, value: V) -> Prepared<Bind<B, V, ST>> {
        Prepared {
            sql: self.sql,
            binds: Bind {
                earlier: self.binds,
                value,
                _sql_type: PhantomData,
            },
        }
    }
}

/// One bind value with its SQL type, after the binds before it.
#[derive(Debug, Clone, Copy)]
pub struct Bind<B, V, ST> {
    earlier: B,
    value: V,
    _sql_type: PhantomData<ST>,
}

/// A list of binds that can push its `n`-th (from 0) into a statement.
pub trait Binds<DB: Backend> {
    const LEN: usize;
    fn push<'b>(&'b self, n: usize, out: &mut AstPass<'_, 'b, DB>) -> QueryResult<()>;
}

impl<DB: Backend> Binds<DB> for () {
    const LEN: usize = 0;
    fn push<'b>(&'b self, n: usize, _out: &mut AstPass<'_, 'b, DB>) -> QueryResult<()> {
        Err(Error::QueryBuilderError(
            format!("the statement names ${} but has no such bind", n + 1).into(),
        ))
    }
}

impl<DB, B, V, ST> Binds<DB> for Bind<B, V, ST>
where
    DB: Backend + HasSqlType<ST>,
    B: Binds<DB>,
    V: ToSql<ST, DB>,
{
    const LEN: usize = B::LEN + 1;
    fn push<'b>(&'b self, n: usize, out: &mut AstPass<'_, 'b, DB>) -> QueryResult<()> {
        if n == B::LEN {
            out.push_bind_param::<ST, V>(&self.value)
        } else {
            self.earlier.push(n, out)
        }
    }
}

impl<DB: Backend, B: Binds<DB>> QueryFragment<DB> for Prepared<B> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        // Each `$n` of the text is replaced by a push of bind n, which writes a placeholder of
        // its own (numbered in push order) and sends the value.
        let mut rest = self.sql;
        while let Some(at) = rest.find('$') {
            let digits = rest[at + 1..]
                .bytes()
                .take_while(u8::is_ascii_digit)
                .count();
            if digits == 0 {
                out.push_sql(&rest[..=at]);
                rest = &rest[at + 1..];
                continue;
            }
            out.push_sql(&rest[..at]);
            let n: usize = rest[at + 1..at + 1 + digits]
                .parse()
                .map_err(|_| Error::QueryBuilderError("a bind number is too long".into()))?;
            if n == 0 || n > B::LEN {
                return Err(Error::QueryBuilderError(
                    format!("the statement names ${n} but has {} binds", B::LEN).into(),
                ));
            }
            self.binds.push(n - 1, &mut out)?;
            rest = &rest[at + 1 + digits..];
        }
        out.push_sql(rest);
        Ok(())
    }
}

/// No static id: diesel keys its cache on the statement's text (which is fixed).
impl<B> QueryId for Prepared<B> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<B> Query for Prepared<B> {
    type SqlType = Untyped;
}

impl<B, C> RunQueryDsl<C> for Prepared<B> {}

#[cfg(test)]
mod tests {
    use super::*;
    use diesel::pg::Pg;
    use diesel::sql_types::{BigInt, Text};

    #[test]
    fn binds_go_where_the_text_names_them_even_twice() {
        let q = prepared("SELECT $2, $1, $2, '$' || $1")
            .bind::<BigInt, _>(7_i64)
            .bind::<Text, _>("x");
        let sql = diesel::debug_query::<Pg, _>(&q).to_string();
        assert!(
            sql.starts_with("SELECT $1, $2, $3, '$' || $4 -- binds: [\"x\", 7, \"x\", 7]"),
            "{sql}"
        );
        let sql = diesel::debug_query::<diesel::sqlite::Sqlite, _>(&q).to_string();
        assert!(
            sql.starts_with("SELECT ?, ?, ?, '$' || ? -- binds: "),
            "{sql}"
        );
    }

    #[test]
    fn a_missing_bind_is_an_error_not_a_panic() {
        let q = prepared("SELECT $1, $2").bind::<BigInt, _>(1_i64);
        let mut built = diesel::pg::PgQueryBuilder::default();
        assert!(q.to_sql(&mut built, &Pg).is_err());
    }
}
