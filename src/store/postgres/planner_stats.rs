//! Planner statistics for young tables (PostgreSQL).
//!
//! Why: diesel prepares every statement once per connection, and after a few executions
//! PostgreSQL keeps one generic plan for it. A table that has never been analysed has no
//! statistics, so the planner cannot tell a unique index from any other index with the same
//! leading column. On a fresh database it planned the duplicate `partner_txn_id` lookup on
//! `transactions_day_seq` (filtering on `partner_txn_id`) instead of the unique index: every
//! sale read all of its partner's sales, 1.5 ms each after 6,000 sales and growing. Autovacuum
//! analyses a table only at its next wake-up (a minute by default), so the whole first minute of
//! a new deployment ran that way. The same happens after a table grows by orders of magnitude
//! faster than autovacuum looks.
//!
//! What we do: every few seconds the gateway analyses each of its tables that has seen at least
//! [`MIN_CHANGES`] row changes and at least as many changes as it had rows when last analysed
//! (so its statistics are never off by more than a factor of two in size). ANALYZE invalidates
//! the cached plans, so the next execution is planned with the statistics. A table's rounds are
//! logarithmic in its size, and a settled table is left to autovacuum.
use crate::db::{DbConn, DbError};
use diesel::sql_types::Text;
use diesel::RunQueryDsl;

/// Changes a table must see before it is analysed here (autovacuum's own base threshold).
pub const MIN_CHANGES: i64 = 50;

#[derive(diesel::QueryableByName)]
struct Due {
    #[diesel(sql_type = Text)]
    relname: String,
}

/// Analyses the tables of the current schema whose statistics are missing or stale by the rule
/// above; returns their names. Does nothing on SQLite, whose planner has no cached generic plans
/// and where `ANALYZE` is left to the operator.
pub fn refresh(conn: &mut DbConn) -> Result<Vec<String>, DbError> {
    let DbConn::Postgres(pg) = conn else {
        return Ok(Vec::new());
    };
    // reltuples is -1 for a table never analysed (PostgreSQL 14 and later), 0 or more after.
    let due: Vec<Due> = diesel::sql_query(
        "SELECT s.relname::text AS relname \
         FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid \
         WHERE s.schemaname = current_schema() \
           AND s.n_mod_since_analyze >= GREATEST($1, c.reltuples::bigint) \
         ORDER BY s.relname",
    )
    .bind::<diesel::sql_types::BigInt, _>(MIN_CHANGES)
    .load(pg)?;
    let mut analysed = Vec::with_capacity(due.len());
    for Due { relname } in due {
        // The name comes from the catalog; quoted all the same.
        let quoted = format!("\"{}\"", relname.replace('"', "\"\""));
        diesel::sql_query(format!("ANALYZE {quoted}")).execute(pg)?;
        analysed.push(relname);
    }
    Ok(analysed)
}
