use super::schema::idempotency_keys;
use super::DbConn;
use chrono::NaiveDateTime;
use diesel::prelude::*;

/// A successful answer stored under a partner's Idempotency-Key.
#[derive(Debug, Clone, Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = idempotency_keys)]
pub struct StoredResponse {
    pub partner_code: String,
    pub idempotency_key: String,
    pub request_sha256: String,
    pub response_status: i32,
    pub response_body: String,
    pub created_at: NaiveDateTime,
    pub expires_at: NaiveDateTime,
}

impl StoredResponse {
    /// The stored answer, unless it has expired.
    pub fn find(
        conn: &mut DbConn,
        partner: &str,
        key: &str,
        now: NaiveDateTime,
    ) -> QueryResult<Option<StoredResponse>> {
        concrete!(conn, |c| idempotency_keys::table
            .find((partner, key))
            .filter(idempotency_keys::expires_at.gt(now))
            .select(StoredResponse::as_select())
            .first(c)
            .optional())
    }

    /// Stores an answer, replacing an expired one under the same key (a live one was found
    /// by [`StoredResponse::find`] first, under the key's lock). One statement: an upsert.
    pub fn store(conn: &mut DbConn, r: &StoredResponse) -> QueryResult<()> {
        let upsert = diesel::insert_into(idempotency_keys::table)
            .values(r)
            .on_conflict((
                idempotency_keys::partner_code,
                idempotency_keys::idempotency_key,
            ))
            .do_update()
            .set(r);
        concrete!(conn, |c| upsert.execute(c).map(|_| ()))
    }

    pub fn prune(conn: &mut DbConn, now: NaiveDateTime) -> QueryResult<usize> {
        diesel::delete(idempotency_keys::table.filter(idempotency_keys::expires_at.le(now)))
            .execute(conn)
    }
}
