use super::schema::gateway_keys;
use super::DbConn;
use chrono::NaiveDateTime;
use diesel::prelude::*;

/// The gateway's own response/statement signing keys, retired ones kept for old receipts.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = gateway_keys)]
pub struct GatewayKey {
    pub key_id: String,
    pub public_key: Vec<u8>,
    pub status: String,
    pub created_at: NaiveDateTime,
}

impl GatewayKey {
    pub fn all(conn: &mut DbConn) -> QueryResult<Vec<GatewayKey>> {
        gateway_keys::table
            .order(gateway_keys::created_at.asc())
            .select(GatewayKey::as_select())
            .load(conn)
    }

    pub fn find(conn: &mut DbConn, key_id: &str) -> QueryResult<Option<GatewayKey>> {
        gateway_keys::table
            .find(key_id)
            .select(GatewayKey::as_select())
            .first(conn)
            .optional()
    }

    /// Registers the key unless it is already there.
    pub fn register(conn: &mut DbConn, key: &GatewayKey) -> QueryResult<()> {
        if Self::find(conn, &key.key_id)?.is_some() {
            return Ok(());
        }
        diesel::insert_into(gateway_keys::table)
            .values(key)
            .execute(conn)
            .map(|_| ())
    }
}
