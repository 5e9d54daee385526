use super::schema::members;
use super::DbConn;
use chrono::NaiveDateTime;
use diesel::prelude::*;

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = members)]
pub struct Member {
    pub id: i64,
    pub card_no: String,
    pub tier: String,
    pub status: String,
    pub birth_month: Option<i32>,
    pub phone_hash: Option<String>,
    pub phone_key_version: Option<i32>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = members)]
pub struct NewMember<'a> {
    pub card_no: &'a str,
    pub tier: &'a str,
    pub status: &'a str,
    pub birth_month: Option<i32>,
    pub phone_hash: Option<&'a str>,
    pub phone_key_version: Option<i32>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

impl Member {
    pub fn find(conn: &mut DbConn, id: i64) -> QueryResult<Option<Member>> {
        concrete!(conn, |c| members::table
            .find(id)
            .select(Member::as_select())
            .first(c)
            .optional())
    }

    pub fn find_by_card(conn: &mut DbConn, card_no: &str) -> QueryResult<Option<Member>> {
        concrete!(conn, |c| members::table
            .filter(members::card_no.eq(card_no))
            .select(Member::as_select())
            .first(c)
            .optional())
    }

    pub fn find_by_phone_hash(conn: &mut DbConn, phone_hash: &str) -> QueryResult<Option<Member>> {
        members::table
            .filter(members::phone_hash.eq(phone_hash))
            .select(Member::as_select())
            .first(conn)
            .optional()
    }

    pub fn insert(conn: &mut DbConn, new: &NewMember<'_>) -> QueryResult<i64> {
        diesel::insert_into(members::table)
            .values(new)
            .returning(members::id)
            .get_result(conn)
    }

    /// Re-imports change tier and status only; balances live in the ledger and never here.
    pub fn update_tier_status(
        conn: &mut DbConn,
        id: i64,
        tier: &str,
        status: &str,
        now: NaiveDateTime,
    ) -> QueryResult<()> {
        diesel::update(members::table.find(id))
            .set((
                members::tier.eq(tier),
                members::status.eq(status),
                members::updated_at.eq(now),
            ))
            .execute(conn)
            .map(|_| ())
    }

    pub fn count(conn: &mut DbConn) -> QueryResult<i64> {
        members::table.count().get_result(conn)
    }
}
