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
    /// Claims a nonce. `Ok(false)` when it was already claimed: a replay.
    pub fn claim(conn: &mut DbConn, new: &NewNonce<'_>) -> QueryResult<bool> {
        let inserted = super::exclusive_write(conn, |conn| {
            let insert = diesel::insert_into(request_nonces::table).values(new);
            concrete!(conn, |c| insert.execute(c))
        });
        match inserted {
            Ok(_) => Ok(true),
            Err(e) if super::is_unique_violation(&e) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Deletes nonces whose window has passed; a replay of them fails on `created` anyway.
    pub fn prune(conn: &mut DbConn, now: NaiveDateTime) -> QueryResult<usize> {
        diesel::delete(request_nonces::table.filter(request_nonces::expires_at.lt(now)))
            .execute(conn)
    }

    pub fn count(conn: &mut DbConn) -> QueryResult<i64> {
        request_nonces::table.count().get_result(conn)
    }
}
