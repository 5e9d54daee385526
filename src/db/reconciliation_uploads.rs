use super::schema::reconciliation_uploads;
use super::DbConn;
use chrono::{NaiveDate, NaiveDateTime};
use diesel::prelude::*;

/// A partner's own records for a day, as uploaded. Every upload is kept.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = reconciliation_uploads)]
pub struct Upload {
    pub id: i64,
    pub partner_code: String,
    pub business_date: NaiveDate,
    pub rows: i64,
    pub body_sha256: String,
    pub body: String,
    pub created_at: NaiveDateTime,
    pub body_bytes: i64,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = reconciliation_uploads)]
pub struct NewUpload<'a> {
    pub partner_code: &'a str,
    pub business_date: NaiveDate,
    pub rows: i64,
    pub body_sha256: &'a str,
    pub body: &'a str,
    pub created_at: NaiveDateTime,
    pub body_bytes: i64,
}

impl Upload {
    pub fn insert(conn: &mut DbConn, new: &NewUpload<'_>) -> QueryResult<i64> {
        diesel::insert_into(reconciliation_uploads::table)
            .values(new)
            .returning(reconciliation_uploads::id)
            .get_result(conn)
    }

    /// How many uploads `partner` stored from `since` on, and their bytes.
    pub fn received_since(
        conn: &mut DbConn,
        partner: &str,
        since: NaiveDateTime,
    ) -> QueryResult<(i64, i64)> {
        use diesel::dsl::{count_star, sql};
        use diesel::sql_types::{BigInt, Nullable};
        // diesel sums a BIGINT as NUMERIC on PostgreSQL; the cast keeps it an i64 on both.
        let (n, bytes): (i64, Option<i64>) = reconciliation_uploads::table
            .filter(reconciliation_uploads::partner_code.eq(partner))
            .filter(reconciliation_uploads::created_at.ge(since))
            .select((
                count_star(),
                sql::<Nullable<BigInt>>("CAST(SUM(body_bytes) AS BIGINT)"),
            ))
            .first(conn)?;
        Ok((n, bytes.unwrap_or(0)))
    }

    /// The latest upload of each partner for `day`: partner code → upload id.
    pub fn latest_ids(
        conn: &mut DbConn,
        day: NaiveDate,
    ) -> QueryResult<std::collections::BTreeMap<String, i64>> {
        let rows: Vec<(String, i64)> = reconciliation_uploads::table
            .filter(reconciliation_uploads::business_date.eq(day))
            .order(reconciliation_uploads::id.asc())
            .select((
                reconciliation_uploads::partner_code,
                reconciliation_uploads::id,
            ))
            .load(conn)?;
        Ok(rows.into_iter().collect())
    }

    pub fn find(conn: &mut DbConn, id: i64) -> QueryResult<Option<Upload>> {
        reconciliation_uploads::table
            .find(id)
            .select(Upload::as_select())
            .first(conn)
            .optional()
    }

    /// Days with an upload since `since` (for the ticker to pick up late uploads).
    pub fn days_uploaded_since(
        conn: &mut DbConn,
        since: NaiveDateTime,
    ) -> QueryResult<Vec<NaiveDate>> {
        reconciliation_uploads::table
            .filter(reconciliation_uploads::created_at.ge(since))
            .select(reconciliation_uploads::business_date)
            .distinct()
            .load(conn)
    }
}
