use super::schema::business_days;
use super::DbConn;
use chrono::NaiveDate;
use diesel::prelude::*;

pub struct BusinessDays;

impl BusinessDays {
    pub const CLOSED: &'static str = "closed";

    /// The last closed business day. Days close oldest first, so every day up to it is closed.
    pub fn last_closed(conn: &mut DbConn) -> QueryResult<Option<NaiveDate>> {
        concrete!(conn, |c| business_days::table
            .filter(business_days::status.eq(Self::CLOSED))
            .select(diesel::dsl::max(business_days::business_date))
            .first(c))
    }

    /// Closes `day`. Call holding the booking lock exclusively; false when it was closed.
    pub fn close(
        conn: &mut DbConn,
        day: NaiveDate,
        now: chrono::NaiveDateTime,
    ) -> QueryResult<bool> {
        let existing: Option<String> = business_days::table
            .find(day)
            .select(business_days::status)
            .first(conn)
            .optional()?;
        match existing.as_deref() {
            Some(Self::CLOSED) => Ok(false),
            Some(_) => {
                diesel::update(business_days::table.find(day))
                    .set((
                        business_days::status.eq(Self::CLOSED),
                        business_days::closed_at.eq(Some(now)),
                    ))
                    .execute(conn)?;
                Ok(true)
            }
            None => {
                diesel::insert_into(business_days::table)
                    .values((
                        business_days::business_date.eq(day),
                        business_days::status.eq(Self::CLOSED),
                        business_days::closed_at.eq(Some(now)),
                    ))
                    .execute(conn)?;
                Ok(true)
            }
        }
    }
}
