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

impl MemberToken {
    pub fn insert(conn: &mut DbConn, t: &NewMemberToken<'_>) -> QueryResult<()> {
        diesel::insert_into(member_tokens::table)
            .values(t)
            .execute(conn)
            .map(|_| ())
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
        let n = diesel::update(
            member_tokens::table
                .filter(member_tokens::member_id.eq(member_id))
                .filter(member_tokens::token_sha256.eq(token_sha256))
                .filter(member_tokens::used_at.is_null())
                .filter(member_tokens::expires_at.gt(now)),
        )
        .set((
            member_tokens::used_at.eq(Some(now)),
            member_tokens::used_by_txn.eq(Some(txn_id)),
        ))
        .execute(conn)?;
        Ok(n == 1)
    }

    /// Forgets tokens that expired more than a day ago (used ones included).
    pub fn prune(conn: &mut DbConn, before: NaiveDateTime) -> QueryResult<usize> {
        diesel::delete(member_tokens::table.filter(member_tokens::expires_at.lt(before)))
            .execute(conn)
    }
}
