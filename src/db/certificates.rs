use super::schema::certificates;
use super::DbConn;
use chrono::NaiveDateTime;
use diesel::prelude::*;

/// A certificate the alliance CA issued, looked up by fingerprint on every request.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = certificates)]
pub struct Certificate {
    pub serial_hex: String,
    pub identity: String,
    pub fingerprint_sha256: String,
    pub not_before: NaiveDateTime,
    pub not_after: NaiveDateTime,
    pub status: String,
    pub created_at: NaiveDateTime,
    pub revoked_at: Option<NaiveDateTime>,
    pub revocation_reason: Option<String>,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = certificates)]
pub struct NewCertificate<'a> {
    pub serial_hex: &'a str,
    pub identity: &'a str,
    pub fingerprint_sha256: &'a str,
    pub not_before: NaiveDateTime,
    pub not_after: NaiveDateTime,
    pub status: &'a str,
    pub created_at: NaiveDateTime,
}

impl Certificate {
    pub const ACTIVE: &'static str = "active";
    pub const REVOKED: &'static str = "revoked";

    pub fn find_by_fingerprint(
        conn: &mut DbConn,
        fingerprint_sha256: &str,
    ) -> QueryResult<Option<Certificate>> {
        concrete!(conn, |c| certificates::table
            .filter(certificates::fingerprint_sha256.eq(fingerprint_sha256))
            .select(Certificate::as_select())
            .first(c)
            .optional())
    }

    pub fn for_identity(conn: &mut DbConn, identity: &str) -> QueryResult<Vec<Certificate>> {
        certificates::table
            .filter(certificates::identity.eq(identity))
            .order(certificates::created_at.asc())
            .select(Certificate::as_select())
            .load(conn)
    }

    pub fn find(conn: &mut DbConn, serial_hex: &str) -> QueryResult<Option<Certificate>> {
        certificates::table
            .find(serial_hex)
            .select(Certificate::as_select())
            .first(conn)
            .optional()
    }

    /// Every certificate of every identity, oldest first.
    pub fn all(conn: &mut DbConn) -> QueryResult<Vec<Certificate>> {
        certificates::table
            .order((certificates::identity.asc(), certificates::created_at.asc()))
            .select(Certificate::as_select())
            .load(conn)
    }

    /// What the CRL lists: every revoked certificate with its revocation time.
    pub fn revoked(conn: &mut DbConn) -> QueryResult<Vec<(String, Option<NaiveDateTime>)>> {
        certificates::table
            .filter(certificates::status.eq(Self::REVOKED))
            .order(certificates::serial_hex.asc())
            .select((certificates::serial_hex, certificates::revoked_at))
            .load(conn)
    }

    /// Active certificates whose validity ends before `before`.
    pub fn count_active_expiring(
        conn: &mut DbConn,
        now: NaiveDateTime,
        before: NaiveDateTime,
    ) -> QueryResult<i64> {
        certificates::table
            .filter(certificates::status.eq(Self::ACTIVE))
            .filter(certificates::not_after.ge(now))
            .filter(certificates::not_after.lt(before))
            .count()
            .get_result(conn)
    }

    pub fn revoke(
        conn: &mut DbConn,
        serial_hex: &str,
        reason: Option<&str>,
        now: NaiveDateTime,
    ) -> QueryResult<()> {
        diesel::update(certificates::table.find(serial_hex))
            .set((
                certificates::status.eq(Self::REVOKED),
                certificates::revoked_at.eq(Some(now)),
                certificates::revocation_reason.eq(reason),
            ))
            .execute(conn)
            .map(|_| ())
    }

    pub fn insert(conn: &mut DbConn, new: &NewCertificate<'_>) -> QueryResult<()> {
        diesel::insert_into(certificates::table)
            .values(new)
            .execute(conn)
            .map(|_| ())
    }

    /// Active and inside its validity window at `now`.
    pub fn is_usable_at(&self, now: NaiveDateTime) -> bool {
        self.status == Self::ACTIVE && self.not_before <= now && now <= self.not_after
    }

    /// Active and ending within `days` of `now`: time to renew.
    pub fn expires_within(&self, now: NaiveDateTime, days: i64) -> bool {
        self.status == Self::ACTIVE
            && now <= self.not_after
            && self.not_after < now + chrono::TimeDelta::days(days)
    }
}
