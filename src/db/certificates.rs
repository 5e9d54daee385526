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
        certificates::table
            .filter(certificates::fingerprint_sha256.eq(fingerprint_sha256))
            .select(Certificate::as_select())
            .first(conn)
            .optional()
    }

    pub fn for_identity(conn: &mut DbConn, identity: &str) -> QueryResult<Vec<Certificate>> {
        certificates::table
            .filter(certificates::identity.eq(identity))
            .order(certificates::created_at.asc())
            .select(Certificate::as_select())
            .load(conn)
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
}
