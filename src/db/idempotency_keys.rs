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

/// What a repeat needs of a stored answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredAnswer {
    pub request_sha256: String,
    pub response_status: i32,
    pub response_body: String,
}

impl StoredResponse {
    /// Tries the key's lock (`lock_key`, PostgreSQL) and, when it is got, reads the live answer
    /// stored under the key: one round trip, through `alliance_try_lock_answer` (migration
    /// `lock_then_read`), whose read sees everything the lock's previous holder committed.
    /// `None` when another request holds the key. SQLite's single writer needs no lock.
    pub fn try_lock_and_find(
        conn: &mut DbConn,
        lock_key: i64,
        partner: &str,
        key: &str,
        now: NaiveDateTime,
    ) -> QueryResult<Option<Option<StoredAnswer>>> {
        use diesel::sql_types::{BigInt, Bool, Integer, Nullable, Text, Timestamp};
        #[derive(QueryableByName)]
        struct Tried {
            #[diesel(sql_type = Bool)]
            locked: bool,
            #[diesel(sql_type = Nullable<Text>)]
            request_sha256: Option<String>,
            #[diesel(sql_type = Nullable<Integer>)]
            response_status: Option<i32>,
            #[diesel(sql_type = Nullable<Text>)]
            response_body: Option<String>,
        }
        match conn {
            DbConn::Postgres(pg) => {
                let tried = super::prepared::prepared(
                    "SELECT locked, request_sha256, response_status, response_body \
                     FROM alliance_try_lock_answer($1, $2, $3, $4)",
                )
                .bind::<BigInt, _>(lock_key)
                .bind::<Text, _>(partner)
                .bind::<Text, _>(key)
                .bind::<Timestamp, _>(now)
                .get_result::<Tried>(pg)?;
                if !tried.locked {
                    return Ok(None);
                }
                Ok(Some(
                    match (
                        tried.request_sha256,
                        tried.response_status,
                        tried.response_body,
                    ) {
                        (Some(request_sha256), Some(response_status), Some(response_body)) => {
                            Some(StoredAnswer {
                                request_sha256,
                                response_status,
                                response_body,
                            })
                        }
                        _ => None,
                    },
                ))
            }
            DbConn::Sqlite(_) => Ok(Some(Self::find(conn, partner, key, now)?.map(|r| {
                StoredAnswer {
                    request_sha256: r.request_sha256,
                    response_status: r.response_status,
                    response_body: r.response_body,
                }
            }))),
        }
    }

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
    /// by [`StoredResponse::find`] first, under the key's lock). One statement: an upsert,
    /// hand-written so that it stays prepared (see `db::prepared`).
    pub fn store(conn: &mut DbConn, r: &StoredResponse) -> QueryResult<()> {
        use diesel::sql_types::{Integer, Text, Timestamp};
        let upsert = super::prepared::prepared(
            "INSERT INTO idempotency_keys (partner_code, idempotency_key, request_sha256, \
             response_status, response_body, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (partner_code, idempotency_key) DO UPDATE SET \
             request_sha256 = excluded.request_sha256, \
             response_status = excluded.response_status, \
             response_body = excluded.response_body, \
             created_at = excluded.created_at, expires_at = excluded.expires_at",
        )
        .bind::<Text, _>(&r.partner_code)
        .bind::<Text, _>(&r.idempotency_key)
        .bind::<Text, _>(&r.request_sha256)
        .bind::<Integer, _>(r.response_status)
        .bind::<Text, _>(&r.response_body)
        .bind::<Timestamp, _>(r.created_at)
        .bind::<Timestamp, _>(r.expires_at);
        concrete!(conn, |c| upsert.execute(c).map(|_| ()))
    }

    /// Deletes answers past their retention, in batches (see `db::prune_in_batches`).
    pub fn prune(conn: &mut DbConn, now: NaiveDateTime) -> QueryResult<usize> {
        super::prune_in_batches(
            conn,
            "DELETE FROM idempotency_keys WHERE (partner_code, idempotency_key) IN \
             (SELECT partner_code, idempotency_key FROM idempotency_keys \
              WHERE expires_at <= $1 LIMIT $2)",
            now,
        )
    }
}
