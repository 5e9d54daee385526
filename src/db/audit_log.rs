use super::schema::audit_log;
use super::DbConn;
use chrono::NaiveDateTime;
use diesel::prelude::*;

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = audit_log)]
pub struct AuditEntry {
    pub id: i64,
    pub at: NaiveDateTime,
    pub actor: String,
    pub action: String,
    pub subject: String,
    pub detail: String,
    pub prev_hash: String,
    pub hash: String,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = audit_log)]
pub struct NewAuditEntry<'a> {
    pub at: NaiveDateTime,
    pub actor: &'a str,
    pub action: &'a str,
    pub subject: &'a str,
    pub detail: &'a str,
    pub prev_hash: &'a str,
    pub hash: &'a str,
}

impl AuditEntry {
    pub fn last_hash(conn: &mut DbConn) -> QueryResult<Option<String>> {
        audit_log::table
            .order(audit_log::id.desc())
            .select(audit_log::hash)
            .first(conn)
            .optional()
    }

    pub fn insert(conn: &mut DbConn, new: &NewAuditEntry<'_>) -> QueryResult<()> {
        diesel::insert_into(audit_log::table)
            .values(new)
            .execute(conn)
            .map(|_| ())
    }

    /// The latest `limit` entries, oldest first.
    pub fn recent(conn: &mut DbConn, limit: i64) -> QueryResult<Vec<AuditEntry>> {
        let mut rows: Vec<AuditEntry> = audit_log::table
            .order(audit_log::id.desc())
            .limit(limit)
            .select(AuditEntry::as_select())
            .load(conn)?;
        rows.reverse();
        Ok(rows)
    }

    pub fn all(conn: &mut DbConn) -> QueryResult<Vec<AuditEntry>> {
        audit_log::table
            .order(audit_log::id.asc())
            .select(AuditEntry::as_select())
            .load(conn)
    }
}
