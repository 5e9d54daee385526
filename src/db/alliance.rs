use super::schema::alliance;
use super::DbConn;
use chrono::{NaiveDate, NaiveDateTime};
use diesel::prelude::*;

/// The one row describing this alliance.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = alliance)]
pub struct Alliance {
    pub id: i32,
    pub name: String,
    pub timezone: String,
    pub first_business_day: NaiveDate,
    pub created_at: NaiveDateTime,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = alliance)]
pub struct NewAlliance<'a> {
    pub id: i32,
    pub name: &'a str,
    pub timezone: &'a str,
    pub first_business_day: NaiveDate,
    pub created_at: NaiveDateTime,
}

impl Alliance {
    pub fn find(conn: &mut DbConn) -> QueryResult<Option<Alliance>> {
        alliance::table
            .select(Alliance::as_select())
            .first(conn)
            .optional()
    }

    pub fn insert(conn: &mut DbConn, new: &NewAlliance<'_>) -> QueryResult<()> {
        diesel::insert_into(alliance::table)
            .values(new)
            .execute(conn)
            .map(|_| ())
    }
}
