use super::schema::signing_keys;
use super::DbConn;
use chrono::NaiveDateTime;
use diesel::prelude::*;

/// A caller's request-signing public key. Private keys are never stored.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = signing_keys)]
pub struct SigningKey {
    pub key_id: String,
    pub identity: String,
    pub alg: String,
    pub public_key: Vec<u8>,
    pub status: String,
    pub retire_after: Option<NaiveDateTime>,
    pub created_at: NaiveDateTime,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = signing_keys)]
pub struct NewSigningKey<'a> {
    pub key_id: &'a str,
    pub identity: &'a str,
    pub alg: &'a str,
    pub public_key: &'a [u8],
    pub status: &'a str,
    pub created_at: NaiveDateTime,
}

impl SigningKey {
    pub const ACTIVE: &'static str = "active";
    pub const RETIRED: &'static str = "retired";

    pub fn find(conn: &mut DbConn, key_id: &str) -> QueryResult<Option<SigningKey>> {
        signing_keys::table
            .find(key_id)
            .select(SigningKey::as_select())
            .first(conn)
            .optional()
    }

    pub fn for_identity(conn: &mut DbConn, identity: &str) -> QueryResult<Vec<SigningKey>> {
        signing_keys::table
            .filter(signing_keys::identity.eq(identity))
            .order(signing_keys::created_at.asc())
            .select(SigningKey::as_select())
            .load(conn)
    }

    pub fn insert(conn: &mut DbConn, new: &NewSigningKey<'_>) -> QueryResult<()> {
        diesel::insert_into(signing_keys::table)
            .values(new)
            .execute(conn)
            .map(|_| ())
    }

    /// Usable for verification at `now`: active, or retiring but still inside its overlap.
    pub fn is_usable_at(&self, now: NaiveDateTime) -> bool {
        match self.retire_after {
            Some(deadline) => now <= deadline,
            None => self.status == Self::ACTIVE,
        }
    }
}
