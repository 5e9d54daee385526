use super::registry_generation::RegistryGeneration;
use super::schema::request_nonces;
use super::DbConn;
use chrono::NaiveDateTime;
use diesel::prelude::*;

#[derive(Debug, Insertable)]
#[diesel(table_name = request_nonces)]
pub struct NewNonce<'a> {
    pub key_id: &'a str,
    pub nonce_sha256: &'a str,
    pub expires_at: NaiveDateTime,
}

pub struct Nonce;

impl Nonce {
    /// Claims a nonce. `Ok(false)` when it was already claimed: a replay. A conflict inserts
    /// nothing rather than failing, so inside a group-commit batch it costs no savepoint.
    pub fn claim(conn: &mut DbConn, new: &NewNonce<'_>) -> QueryResult<bool> {
        use diesel::sql_types::{Text, Timestamp};
        // Hand-written so that it stays prepared (see `db::prepared`).
        let insert = super::prepared::prepared(
            "INSERT INTO request_nonces (key_id, nonce_sha256, expires_at) VALUES ($1, $2, $3) \
             ON CONFLICT DO NOTHING",
        )
        .bind::<Text, _>(new.key_id)
        .bind::<Text, _>(new.nonce_sha256)
        .bind::<Timestamp, _>(new.expires_at);
        let inserted = if super::in_transaction(conn) {
            concrete!(conn, |c| insert.execute(c))?
        } else {
            super::exclusive_write(conn, |conn| concrete!(conn, |c| insert.execute(c)))?
        };
        Ok(inserted == 1)
    }

    /// Claims a nonce, as [`Nonce::claim`], and reads the registry generation as of the claim:
    /// `(fresh, generation)`. A request checked against the cached registry confirms with it
    /// that the cache was current when its nonce was claimed (`auth`, "checked, then
    /// confirmed"). On PostgreSQL both go in one statement, one round trip where they were two;
    /// on SQLite, which has no round trips, in two.
    ///
    /// On PostgreSQL a claim made outside any transaction commits without waiting for its WAL
    /// flush (`synchronous_commit` off for that one transaction, `set_config(…, true)`). Why
    /// this is safe: whatever the same request then writes commits later, synchronously, and a
    /// synchronous commit flushes the WAL up to its own record, the claim's included. So a
    /// request that changed anything has a durable nonce. Only the nonce of a request that
    /// wrote nothing (a verify, a read, a refusal) can be lost, and only if PostgreSQL itself
    /// or its host crashes within the WAL writer's delay (`docs/decisions.md`). Why bother:
    /// the flush was a second synchronous commit per sale, 4–11 % of a sale's CPU on
    /// PostgreSQL (`docs/benchmarks.md`). Inside a transaction the claim leaves its commit
    /// alone.
    pub fn claim_reading_generation(
        conn: &mut DbConn,
        new: &NewNonce<'_>,
    ) -> QueryResult<(bool, i64)> {
        use diesel::connection::TransactionManager;
        use diesel::sql_types::{BigInt, Text, Timestamp};
        #[derive(QueryableByName)]
        struct Claimed {
            #[diesel(sql_type = BigInt)]
            inserted: i64,
            #[diesel(sql_type = BigInt)]
            generation: i64,
        }
        match conn {
            DbConn::Postgres(pg) => {
                let in_transaction = !matches!(
                    diesel::connection::AnsiTransactionManager::transaction_manager_status_mut(pg)
                        .transaction_depth(),
                    Ok(None)
                );
                // Fixed texts, so that each stays prepared (see `prepared`).
                let sql = if in_transaction {
                    "WITH n AS (INSERT INTO request_nonces (key_id, nonce_sha256, expires_at) \
                     VALUES ($1, $2, $3) ON CONFLICT DO NOTHING RETURNING 1) \
                     SELECT (SELECT count(*) FROM n) AS inserted, g.generation \
                     FROM registry_generation g WHERE g.id = 1"
                } else {
                    "WITH n AS (INSERT INTO request_nonces (key_id, nonce_sha256, expires_at) \
                     VALUES ($1, $2, $3) ON CONFLICT DO NOTHING RETURNING 1), \
                     a AS (SELECT set_config('synchronous_commit', 'off', true)) \
                     SELECT (SELECT count(*) FROM n) AS inserted, g.generation \
                     FROM registry_generation g, a WHERE g.id = 1"
                };
                let row = super::prepared::prepared(sql)
                    .bind::<Text, _>(new.key_id)
                    .bind::<Text, _>(new.nonce_sha256)
                    .bind::<Timestamp, _>(new.expires_at)
                    .get_result::<Claimed>(pg)?;
                Ok((row.inserted == 1, row.generation))
            }
            DbConn::Sqlite(_) => {
                let fresh = Self::claim(conn, new)?;
                Ok((fresh, RegistryGeneration::current(conn)?))
            }
        }
    }

    /// Deletes nonces whose window has passed, in batches (see `db::prune_in_batches`); a
    /// replay of them fails on `created` anyway.
    pub fn prune(conn: &mut DbConn, now: NaiveDateTime) -> QueryResult<usize> {
        super::prune_in_batches(
            conn,
            "DELETE FROM request_nonces WHERE (key_id, nonce_sha256) IN \
             (SELECT key_id, nonce_sha256 FROM request_nonces WHERE expires_at < $1 LIMIT $2)",
            now,
        )
    }

    pub fn count(conn: &mut DbConn) -> QueryResult<i64> {
        request_nonces::table.count().get_result(conn)
    }
}
