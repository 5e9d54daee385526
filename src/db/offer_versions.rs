use super::schema::offer_versions;
use super::DbConn;
use chrono::{NaiveDate, NaiveDateTime};
use diesel::prelude::*;

/// One version of a partner's offer and settlement terms, stored as the validated JSON.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = offer_versions)]
pub struct OfferVersion {
    pub partner_code: String,
    pub version: i64,
    pub effective_from: NaiveDate,
    pub terms_json: String,
    pub created_at: NaiveDateTime,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = offer_versions)]
pub struct NewOfferVersion<'a> {
    pub partner_code: &'a str,
    pub version: i64,
    pub effective_from: NaiveDate,
    pub terms_json: &'a str,
    pub created_at: NaiveDateTime,
}

impl OfferVersion {
    pub fn latest(conn: &mut DbConn, partner_code: &str) -> QueryResult<Option<OfferVersion>> {
        offer_versions::table
            .filter(offer_versions::partner_code.eq(partner_code))
            .order(offer_versions::version.desc())
            .select(OfferVersion::as_select())
            .first(conn)
            .optional()
    }

    /// Version 1, or the lowest there is.
    pub fn earliest(conn: &mut DbConn, partner_code: &str) -> QueryResult<Option<OfferVersion>> {
        offer_versions::table
            .filter(offer_versions::partner_code.eq(partner_code))
            .order(offer_versions::version.asc())
            .select(OfferVersion::as_select())
            .first(conn)
            .optional()
    }

    /// The version in force on business day `day`: the highest version effective by then.
    pub fn in_force(
        conn: &mut DbConn,
        partner_code: &str,
        day: NaiveDate,
    ) -> QueryResult<Option<OfferVersion>> {
        concrete!(conn, |c| offer_versions::table
            .filter(offer_versions::partner_code.eq(partner_code))
            .filter(offer_versions::effective_from.le(day))
            .order(offer_versions::version.desc())
            .select(OfferVersion::as_select())
            .first(c)
            .optional())
    }

    pub fn for_partner(conn: &mut DbConn, partner_code: &str) -> QueryResult<Vec<OfferVersion>> {
        offer_versions::table
            .filter(offer_versions::partner_code.eq(partner_code))
            .order(offer_versions::version.asc())
            .select(OfferVersion::as_select())
            .load(conn)
    }

    pub fn insert(conn: &mut DbConn, new: &NewOfferVersion<'_>) -> QueryResult<()> {
        diesel::insert_into(offer_versions::table)
            .values(new)
            .execute(conn)
            .map(|_| ())
    }
}
