use super::registry_generation::RegistryGeneration;
use super::schema::request_nonces;
use super::{DbConn, DbError};
use chrono::NaiveDateTime;
use diesel::prelude::*;
use std::collections::HashSet;

/// Nonce claims in one statement ([`Nonce::claim_many`]): bounds the arrays sent.
pub const MAX_CLAIMS_PER_STATEMENT: usize = 64;

#[derive(Debug, Insertable)]
#[diesel(table_name = request_nonces)]
pub struct NewNonce<'a> {
    pub key_id: &'a str,
    pub nonce_sha256: &'a str,
    pub expires_at: NaiveDateTime,
}

pub struct Nonce;

/// Deletes up to `$2` nonces whose window ended before `$1` (see `db::prune_in_batches`).
const PRUNE_EXPIRED: &str = "DELETE FROM request_nonces WHERE (key_id, nonce_sha256) IN \
     (SELECT key_id, nonce_sha256 FROM request_nonces WHERE expires_at < $1 LIMIT $2)";

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

    /// Claims several nonces at once, as [`Nonce::claim_reading_generation`] claims one:
    /// `(fresh, generation)`, `fresh[i]` for `claims[i]`. On PostgreSQL one statement over
    /// arrays, outside any transaction, committed without waiting for its WAL flush (why that
    /// is safe: [`Nonce::claim_reading_generation`]). For `store::postgres::nonce_batch`.
    ///
    /// A nonce named twice in `claims` is fresh at most once, at its first place: two requests
    /// that carry one nonce are a replay, whichever comes second. At most
    /// [`MAX_CLAIMS_PER_STATEMENT`] claims.
    pub fn claim_many(
        conn: &mut DbConn,
        claims: &[NewNonce<'_>],
    ) -> Result<(Vec<bool>, i64), DbError> {
        use diesel::sql_types::{Array, BigInt, Text, Timestamp};
        if claims.len() > MAX_CLAIMS_PER_STATEMENT {
            return Err(DbError::Invariant(format!(
                "{} nonce claims in one statement; at most {MAX_CLAIMS_PER_STATEMENT}",
                claims.len()
            )));
        }
        // Each nonce once: the first place it is named.
        let mut seen = HashSet::with_capacity(claims.len());
        let firsts: Vec<usize> = (0..claims.len())
            .filter(|&i| seen.insert((claims[i].key_id, claims[i].nonce_sha256)))
            .collect();
        let mut fresh = vec![false; claims.len()];
        if super::in_transaction(conn) {
            // Its commit without a flush would become the enclosing transaction's.
            return Err(DbError::Invariant(
                "nonce claims in one statement must not run inside a transaction".into(),
            ));
        }
        let pg = match conn {
            DbConn::Postgres(pg) => pg,
            DbConn::Sqlite(_) => {
                for &i in &firsts {
                    fresh[i] = Self::claim(conn, &claims[i])?;
                }
                return Ok((fresh, RegistryGeneration::current(conn)?));
            }
        };
        #[derive(QueryableByName)]
        struct Claimed {
            /// The 1-based places (in the arrays sent) of the nonces inserted.
            #[diesel(sql_type = Array<BigInt>)]
            inserted: Vec<i64>,
            #[diesel(sql_type = BigInt)]
            generation: i64,
        }
        let key_ids: Vec<&str> = firsts.iter().map(|&i| claims[i].key_id).collect();
        let nonces: Vec<&str> = firsts.iter().map(|&i| claims[i].nonce_sha256).collect();
        let expires: Vec<NaiveDateTime> = firsts.iter().map(|&i| claims[i].expires_at).collect();
        // A fixed text, so that it stays prepared (see `prepared`).
        let row = super::prepared::prepared(
            "WITH c AS (SELECT * FROM unnest($1::text[], $2::text[], $3::timestamp[]) \
             WITH ORDINALITY AS c(key_id, nonce_sha256, expires_at, i)), \
             n AS (INSERT INTO request_nonces (key_id, nonce_sha256, expires_at) \
             SELECT key_id, nonce_sha256, expires_at FROM c ON CONFLICT DO NOTHING \
             RETURNING key_id, nonce_sha256), \
             a AS (SELECT set_config('synchronous_commit', 'off', true)) \
             SELECT ARRAY(SELECT c.i FROM c JOIN n USING (key_id, nonce_sha256)) AS inserted, \
             g.generation FROM registry_generation g, a WHERE g.id = 1",
        )
        .bind::<Array<Text>, _>(key_ids)
        .bind::<Array<Text>, _>(nonces)
        .bind::<Array<Timestamp>, _>(expires)
        .get_result::<Claimed>(pg)?;
        for place in row.inserted {
            let sent = usize::try_from(place - 1).ok().and_then(|p| firsts.get(p));
            match sent {
                Some(&i) => fresh[i] = true,
                None => {
                    return Err(DbError::Invariant(format!(
                        "nonce claim: place {place} of {} sent",
                        firsts.len()
                    )))
                }
            }
        }
        Ok((fresh, row.generation))
    }

    /// Deletes nonces whose window has passed, in batches (see `db::prune_in_batches`); a
    /// replay of them fails on `created` anyway.
    pub fn prune(conn: &mut DbConn, now: NaiveDateTime) -> QueryResult<usize> {
        super::prune_in_batches(conn, PRUNE_EXPIRED, now)
    }

    pub fn count(conn: &mut DbConn) -> QueryResult<i64> {
        request_nonces::table.count().get_result(conn)
    }
}
