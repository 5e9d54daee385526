//! The append-only, hash-chained audit log of admin and finance actions.
use crate::db::audit_log::{AuditEntry, NewAuditEntry};
use crate::db::{locks, serialise, DbConn, DbError};
use ring::digest;

const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Appends one entry, chained to the previous one. Call inside a write transaction, so the
/// entry lands with the change it records (or not at all).
pub fn record(
    conn: &mut DbConn,
    actor: &str,
    action: &str,
    subject: &str,
    detail: &serde_json::Value,
) -> Result<(), DbError> {
    serialise(conn, locks::AUDIT_LOG)?;
    let prev = AuditEntry::last_hash(conn)?.unwrap_or_else(|| GENESIS.to_owned());
    let at = crate::db::now_utc();
    let detail = detail.to_string();
    let hash = entry_hash(&prev, at, actor, action, subject, &detail);
    AuditEntry::insert(
        conn,
        &NewAuditEntry {
            at,
            actor,
            action,
            subject,
            detail: &detail,
            prev_hash: &prev,
            hash: &hash,
        },
    )?;
    Ok(())
}

fn entry_hash(
    prev: &str,
    at: chrono::NaiveDateTime,
    actor: &str,
    action: &str,
    subject: &str,
    detail: &str,
) -> String {
    let body = serde_json::json!({
        "prev_hash": prev,
        "at": at.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string(),
        "actor": actor,
        "action": action,
        "subject": subject,
        "detail": detail,
    });
    hex::encode(digest::digest(&digest::SHA256, body.to_string().as_bytes()))
}

/// Re-computes the chain; returns the id of the first entry that does not check out.
pub fn verify_chain(conn: &mut DbConn) -> Result<Option<i64>, DbError> {
    let mut prev = GENESIS.to_owned();
    for e in AuditEntry::all(conn)? {
        let expected = entry_hash(&prev, e.at, &e.actor, &e.action, &e.subject, &e.detail);
        if e.prev_hash != prev || e.hash != expected {
            return Ok(Some(e.id));
        }
        prev = e.hash;
    }
    Ok(None)
}

/// The OS user running an admin command, for the audit log's `actor`.
pub fn admin_actor() -> String {
    let user = std::env::var("SUDO_USER")
        .or_else(|_| std::env::var("USER"))
        .unwrap_or_else(|_| "unknown".to_owned());
    format!("admin:{user}")
}
