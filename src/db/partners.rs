use super::schema::partners;
use super::DbConn;
use chrono::NaiveDateTime;
use diesel::prelude::*;

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = partners)]
pub struct Partner {
    pub code: String,
    pub name: String,
    pub category: String,
    pub capabilities: String,
    pub contact_email: String,
    pub status: String,
    pub status_reason: Option<String>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = partners)]
pub struct NewPartner<'a> {
    pub code: &'a str,
    pub name: &'a str,
    pub category: &'a str,
    pub capabilities: &'a str,
    pub contact_email: &'a str,
    pub status: &'a str,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

impl Partner {
    pub const ACTIVE: &'static str = "active";
    pub const SUSPENDED: &'static str = "suspended";

    pub fn find(conn: &mut DbConn, code: &str) -> QueryResult<Option<Partner>> {
        concrete!(conn, |c| partners::table
            .find(code)
            .select(Partner::as_select())
            .first(c)
            .optional())
    }

    pub fn insert(conn: &mut DbConn, new: &NewPartner<'_>) -> QueryResult<()> {
        diesel::insert_into(partners::table)
            .values(new)
            .execute(conn)
            .map(|_| ())
    }

    /// Name, category, capabilities and contact may change on re-onboarding; nothing else.
    pub fn update_details(
        conn: &mut DbConn,
        code: &str,
        name: &str,
        category: &str,
        capabilities: &str,
        contact_email: &str,
        now: NaiveDateTime,
    ) -> QueryResult<()> {
        diesel::update(partners::table.find(code))
            .set((
                partners::name.eq(name),
                partners::category.eq(category),
                partners::capabilities.eq(capabilities),
                partners::contact_email.eq(contact_email),
                partners::updated_at.eq(now),
            ))
            .execute(conn)
            .map(|_| ())
    }

    pub fn all(conn: &mut DbConn) -> QueryResult<Vec<Partner>> {
        partners::table
            .order(partners::code.asc())
            .select(Partner::as_select())
            .load(conn)
    }

    /// Suspends or reactivates; history (certificates, keys, ledger) is untouched.
    pub fn set_status(
        conn: &mut DbConn,
        code: &str,
        status: &str,
        reason: Option<&str>,
        now: NaiveDateTime,
    ) -> QueryResult<()> {
        diesel::update(partners::table.find(code))
            .set((
                partners::status.eq(status),
                partners::status_reason.eq(reason),
                partners::updated_at.eq(now),
            ))
            .execute(conn)
            .map(|_| ())
    }

    pub fn has_capability(&self, capability: &str) -> bool {
        self.capabilities.split(',').any(|c| c == capability)
    }
}
