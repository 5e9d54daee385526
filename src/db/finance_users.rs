use super::schema::finance_users;
use super::DbConn;
use chrono::NaiveDateTime;
use diesel::prelude::*;

/// A member of the finance staff. Their certificates and keys are registered under
/// `urn:alliance:finance:<name>`; a removed user's certificates are revoked.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = finance_users)]
pub struct FinanceUser {
    pub name: String,
    pub status: String,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = finance_users)]
pub struct NewFinanceUser<'a> {
    pub name: &'a str,
    pub status: &'a str,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

impl FinanceUser {
    pub const ACTIVE: &'static str = "active";
    pub const REMOVED: &'static str = "removed";

    pub fn find(conn: &mut DbConn, name: &str) -> QueryResult<Option<FinanceUser>> {
        finance_users::table
            .find(name)
            .select(FinanceUser::as_select())
            .first(conn)
            .optional()
    }

    pub fn all(conn: &mut DbConn) -> QueryResult<Vec<FinanceUser>> {
        finance_users::table
            .order(finance_users::name.asc())
            .select(FinanceUser::as_select())
            .load(conn)
    }

    pub fn insert(conn: &mut DbConn, new: &NewFinanceUser<'_>) -> QueryResult<()> {
        diesel::insert_into(finance_users::table)
            .values(new)
            .execute(conn)
            .map(|_| ())
    }

    pub fn set_status(
        conn: &mut DbConn,
        name: &str,
        status: &str,
        now: NaiveDateTime,
    ) -> QueryResult<()> {
        diesel::update(finance_users::table.find(name))
            .set((
                finance_users::status.eq(status),
                finance_users::updated_at.eq(now),
            ))
            .execute(conn)
            .map(|_| ())
    }
}
