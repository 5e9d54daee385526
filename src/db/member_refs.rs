use super::schema::member_refs;
use super::DbConn;
use chrono::NaiveDateTime;
use diesel::prelude::*;

#[derive(Debug, Insertable)]
#[diesel(table_name = member_refs)]
pub struct NewMemberRef<'a> {
    pub partner_code: &'a str,
    pub member_ref: &'a str,
    pub member_id: i64,
    pub created_at: NaiveDateTime,
}

pub struct MemberRef;

impl MemberRef {
    /// The member a partner's ref names, if this partner was ever given that ref.
    pub fn member_id(
        conn: &mut DbConn,
        partner_code: &str,
        member_ref: &str,
    ) -> QueryResult<Option<i64>> {
        concrete!(conn, |c| member_refs::table
            .find((partner_code, member_ref))
            .select(member_refs::member_id)
            .first(c)
            .optional())
    }

    /// Records that `partner_code` was given `member_ref`. Idempotent and safe against a
    /// concurrent insert of the same row: `ON CONFLICT DO NOTHING` (a unique violation would
    /// abort a PostgreSQL transaction). One statement whether or not the row exists.
    /// Hand-written so that it stays prepared (see `db::prepared`).
    pub fn remember(conn: &mut DbConn, new: &NewMemberRef<'_>) -> QueryResult<()> {
        use diesel::sql_types::{BigInt, Text, Timestamp};
        let insert = super::prepared::prepared(
            "INSERT INTO member_refs (partner_code, member_ref, member_id, created_at) \
             VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
        )
        .bind::<Text, _>(new.partner_code)
        .bind::<Text, _>(new.member_ref)
        .bind::<BigInt, _>(new.member_id)
        .bind::<Timestamp, _>(new.created_at);
        concrete!(conn, |c| insert.execute(c))?;
        Ok(())
    }
}
