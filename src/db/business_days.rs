use super::schema::business_days;
use super::DbConn;
use chrono::NaiveDate;
use diesel::prelude::*;

pub struct BusinessDays;

impl BusinessDays {
    pub const CLOSED: &'static str = "closed";

    /// The last closed business day. Days close oldest first, so every day up to it is closed.
    pub fn last_closed(conn: &mut DbConn) -> QueryResult<Option<NaiveDate>> {
        business_days::table
            .filter(business_days::status.eq(Self::CLOSED))
            .select(diesel::dsl::max(business_days::business_date))
            .first(conn)
    }
}
