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

/// Expired nonces deleted per write.
pub const PRUNE_BATCH: i64 = 2_000;
/// Batches per pruning call (4 million rows).
pub const PRUNE_MAX_BATCHES: usize = 2_000;

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

    /// Deletes nonces whose window has passed; a replay of them fails on `created` anyway.
    /// In batches of [`PRUNE_BATCH`], each its own short write, so that requests (whose nonce
    /// inserts need the writer) get in between: at 5,000 requests/s a minute's expired nonces
    /// are 300,000 rows, far too long to hold SQLite's only writer. At most
    /// [`PRUNE_MAX_BATCHES`] per call; the next call takes the rest.
    pub fn prune(conn: &mut DbConn, now: NaiveDateTime) -> QueryResult<usize> {
        use diesel::sql_types::{BigInt, Timestamp};
        const DELETE: &str = "DELETE FROM request_nonces WHERE (key_id, nonce_sha256) IN \
             (SELECT key_id, nonce_sha256 FROM request_nonces WHERE expires_at < {now} LIMIT {n})";
        let sqlite = DELETE.replace("{now}", "?").replace("{n}", "?");
        let postgres = DELETE.replace("{now}", "$1").replace("{n}", "$2");
        let mut total = 0;
        for _ in 0..PRUNE_MAX_BATCHES {
            let deleted = super::exclusive_write(conn, |conn| match conn {
                DbConn::Sqlite(c) => diesel::sql_query(&sqlite)
                    .bind::<Timestamp, _>(now)
                    .bind::<BigInt, _>(PRUNE_BATCH)
                    .execute(c),
                DbConn::Postgres(c) => diesel::sql_query(&postgres)
                    .bind::<Timestamp, _>(now)
                    .bind::<BigInt, _>(PRUNE_BATCH)
                    .execute(c),
            })?;
            total += deleted;
            if (deleted as i64) < PRUNE_BATCH {
                break;
            }
        }
        Ok(total)
    }

    pub fn count(conn: &mut DbConn) -> QueryResult<i64> {
        request_nonces::table.count().get_result(conn)
    }
}
