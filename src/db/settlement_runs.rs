use super::schema::settlement_runs;
use super::DbConn;
use chrono::{NaiveDate, NaiveDateTime};
use diesel::prelude::*;

/// A settled business day (one version of it).
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = settlement_runs)]
pub struct SettlementRun {
    pub business_date: NaiveDate,
    pub version: i64,
    pub closed_at: NaiveDateTime,
    pub snapshot_json: String,
    pub recon_json: String,
    pub manifest_sha256: Option<String>,
    pub created_at: NaiveDateTime,
}

impl SettlementRun {
    pub fn insert(conn: &mut DbConn, r: &SettlementRun) -> QueryResult<()> {
        diesel::insert_into(settlement_runs::table)
            .values(r)
            .execute(conn)
            .map(|_| ())
    }

    /// The latest version of a day.
    pub fn latest(conn: &mut DbConn, day: NaiveDate) -> QueryResult<Option<SettlementRun>> {
        settlement_runs::table
            .filter(settlement_runs::business_date.eq(day))
            .order(settlement_runs::version.desc())
            .select(SettlementRun::as_select())
            .first(conn)
            .optional()
    }

    /// Runs whose files were never completed (a process stopped between closing the day, or
    /// starting a rerun, and writing the manifest), oldest first.
    pub fn unfinished(conn: &mut DbConn) -> QueryResult<Vec<SettlementRun>> {
        settlement_runs::table
            .filter(settlement_runs::manifest_sha256.is_null())
            .order((
                settlement_runs::business_date.asc(),
                settlement_runs::version.asc(),
            ))
            .select(SettlementRun::as_select())
            .load(conn)
    }

    pub fn set_manifest(
        conn: &mut DbConn,
        day: NaiveDate,
        version: i64,
        sha256: &str,
    ) -> QueryResult<()> {
        diesel::update(settlement_runs::table.find((day, version)))
            .set(settlement_runs::manifest_sha256.eq(Some(sha256)))
            .execute(conn)
            .map(|_| ())
    }

    /// Runs in a date range (inclusive), newest version first within a day.
    pub fn in_range(
        conn: &mut DbConn,
        from: NaiveDate,
        to: NaiveDate,
    ) -> QueryResult<Vec<SettlementRun>> {
        settlement_runs::table
            .filter(settlement_runs::business_date.ge(from))
            .filter(settlement_runs::business_date.le(to))
            .order((
                settlement_runs::business_date.asc(),
                settlement_runs::version.desc(),
            ))
            .select(SettlementRun::as_select())
            .load(conn)
    }
}
