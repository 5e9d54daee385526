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
        concrete!(conn, |c| signing_keys::table
            .find(key_id)
            .select(SigningKey::as_select())
            .first(c)
            .optional())
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

    /// Retires `key_id`: it still verifies until `retire_after` (the rotation's overlap), and
    /// is `unknown-key` from then on. Never moves a deadline later.
    pub fn retire(conn: &mut DbConn, key_id: &str, retire_after: NaiveDateTime) -> QueryResult<()> {
        let current = Self::find(conn, key_id)?;
        let deadline = match current.and_then(|k| k.retire_after) {
            Some(existing) if existing < retire_after => existing,
            _ => retire_after,
        };
        diesel::update(signing_keys::table.find(key_id))
            .set((
                signing_keys::status.eq(Self::RETIRED),
                signing_keys::retire_after.eq(Some(deadline)),
            ))
            .execute(conn)
            .map(|_| ())
    }

    /// The `N` of `k<N>`, for naming the next key.
    pub fn number(&self) -> Option<u32> {
        self.key_id.rsplit_once("/k")?.1.parse().ok()
    }

    /// Usable for verification at `now`: active, or retired but still inside its overlap.
    pub fn is_usable_at(&self, now: NaiveDateTime) -> bool {
        match self.retire_after {
            Some(deadline) => now < deadline,
            None => self.status == Self::ACTIVE,
        }
    }

    /// The state `partner show` prints: active, overlap (retired but still verifying), retired.
    pub fn state_at(&self, now: NaiveDateTime) -> &'static str {
        match (self.status.as_str(), self.is_usable_at(now)) {
            (Self::ACTIVE, _) => "active",
            (_, true) => "overlap",
            _ => "retired",
        }
    }
}
