use super::schema::member_tokens;
use super::DbConn;
use chrono::NaiveDateTime;
use diesel::prelude::*;

#[derive(Debug, Insertable)]
#[diesel(table_name = member_tokens)]
pub struct NewMemberToken<'a> {
    pub member_id: i64,
    pub token_sha256: &'a str,
    pub issuer: &'a str,
    pub created_at: NaiveDateTime,
    pub expires_at: NaiveDateTime,
}

pub struct MemberToken;

/// Deletes up to `$2` tokens that expired before `$1` (see `db::prune_in_batches`).
const PRUNE_EXPIRED: &str = "DELETE FROM member_tokens WHERE (member_id, token_sha256) IN \
     (SELECT member_id, token_sha256 FROM member_tokens WHERE expires_at < $1 LIMIT $2)";

impl MemberToken {
    /// Hand-written so that it stays prepared (see `db::prepared`).
    pub fn insert(conn: &mut DbConn, t: &NewMemberToken<'_>) -> QueryResult<()> {
        use diesel::sql_types::{BigInt, Text, Timestamp};
        let insert = super::prepared::prepared(
            "INSERT INTO member_tokens (member_id, token_sha256, issuer, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind::<BigInt, _>(t.member_id)
        .bind::<Text, _>(t.token_sha256)
        .bind::<Text, _>(t.issuer)
        .bind::<Timestamp, _>(t.created_at)
        .bind::<Timestamp, _>(t.expires_at);
        concrete!(conn, |c| insert.execute(c).map(|_| ()))
    }

    /// Uses a token: true when it was valid (this member's, unexpired, unused), and now is
    /// used by `txn_id`. One conditional UPDATE, so two redemptions cannot both use it.
    pub fn consume(
        conn: &mut DbConn,
        member_id: i64,
        token_sha256: &str,
        txn_id: &str,
        now: NaiveDateTime,
    ) -> QueryResult<bool> {
        use diesel::sql_types::{BigInt, Text, Timestamp};
        // Hand-written so that it stays prepared (see `db::prepared`).
        let update = super::prepared::prepared(
            "UPDATE member_tokens SET used_at = $4, used_by_txn = $3 \
             WHERE member_id = $1 AND token_sha256 = $2 AND used_at IS NULL \
             AND expires_at > $4",
        )
        .bind::<BigInt, _>(member_id)
        .bind::<Text, _>(token_sha256)
        .bind::<Text, _>(txn_id)
        .bind::<Timestamp, _>(now);
        let n = concrete!(conn, |c| update.execute(c))?;
        Ok(n == 1)
    }

    /// Forgets tokens that expired more than a day ago (used ones included).
    /// In batches (see `db::prune_in_batches`).
    pub fn prune(conn: &mut DbConn, before: NaiveDateTime) -> QueryResult<usize> {
        super::prune_in_batches(conn, PRUNE_EXPIRED, before)
    }
}
