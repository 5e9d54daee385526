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

/// What a check of the whole chain found.
#[derive(Debug, PartialEq, Eq)]
pub enum ChainCheck {
    /// Every entry checks out; `head` is the last entry's hash (record it elsewhere to detect
    /// a truncated log later).
    Intact { entries: usize, head: String },
    /// The first entry whose content or link does not match.
    Broken { id: i64 },
}

/// Re-computes the chain from the first entry.
pub fn check_chain(conn: &mut DbConn) -> Result<ChainCheck, DbError> {
    let mut prev = GENESIS.to_owned();
    let mut entries = 0;
    for e in AuditEntry::all(conn)? {
        let expected = entry_hash(&prev, e.at, &e.actor, &e.action, &e.subject, &e.detail);
        if e.prev_hash != prev || e.hash != expected {
            return Ok(ChainCheck::Broken { id: e.id });
        }
        prev = e.hash;
        entries += 1;
    }
    Ok(ChainCheck::Intact {
        entries,
        head: prev,
    })
}

/// Re-computes the chain; returns the id of the first entry that does not check out.
pub fn verify_chain(conn: &mut DbConn) -> Result<Option<i64>, DbError> {
    Ok(match check_chain(conn)? {
        ChainCheck::Intact { .. } => None,
        ChainCheck::Broken { id } => Some(id),
    })
}

/// The OS user running an admin command, for the audit log's `actor`: the numeric uid the
/// process really runs as (which an environment variable cannot fake), its name from
/// /etc/passwd, and the login behind `sudo` when there is one.
pub fn admin_actor() -> String {
    use std::os::unix::fs::MetadataExt;
    let Ok(uid) = std::fs::metadata("/proc/self").map(|m| m.uid()) else {
        let user = std::env::var("USER").unwrap_or_else(|_| "unknown".to_owned());
        return format!("admin:{user}");
    };
    let name = std::fs::read_to_string("/etc/passwd")
        .ok()
        .and_then(|passwd| user_name(&passwd, uid))
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_else(|| format!("uid{uid}"));
    match std::env::var("SUDO_USER") {
        Ok(login) if login != name => format!("admin:{name} (uid {uid}, sudo by {login})"),
        _ => format!("admin:{name} (uid {uid})"),
    }
}

fn user_name(passwd: &str, uid: u32) -> Option<String> {
    passwd.lines().find_map(|line| {
        let mut fields = line.split(':');
        let name = fields.next()?;
        let id = fields.nth(1)?;
        (id.parse::<u32>().ok()? == uid).then(|| name.to_owned())
    })
}

/// Records a successful admin action by the OS user, inside the caller's transaction:
/// `detail` gets `"result":"ok"`.
pub fn record_admin(
    conn: &mut DbConn,
    action: &str,
    subject: &str,
    detail: serde_json::Value,
) -> Result<(), DbError> {
    record(
        conn,
        &admin_actor(),
        action,
        subject,
        &with_result(detail, "ok"),
    )
}

/// Records an admin action that failed, in a transaction of its own (the action's own
/// transaction, if any, rolled back). The error message carries no secrets.
pub fn record_admin_failure(
    conn: &mut DbConn,
    action: &str,
    subject: &str,
    args: serde_json::Value,
    error: &str,
) -> Result<(), DbError> {
    let detail = with_result(args, &format!("error: {error}"));
    crate::db::write_tx(conn, |conn| {
        record(conn, &admin_actor(), action, subject, &detail)
    })
}

fn with_result(detail: serde_json::Value, result: &str) -> serde_json::Value {
    let mut map = match detail {
        serde_json::Value::Object(map) => map,
        serde_json::Value::Null => serde_json::Map::new(),
        other => {
            let mut map = serde_json::Map::new();
            map.insert("detail".into(), other);
            map
        }
    };
    map.insert(
        "result".into(),
        serde_json::Value::String(result.to_owned()),
    );
    serde_json::Value::Object(map)
}

/// The `result` recorded in an entry's detail (`ok`, or `error: …`).
pub fn result_of(entry: &AuditEntry) -> String {
    serde_json::from_str::<serde_json::Value>(&entry.detail)
        .ok()
        .and_then(|d| d.get("result").and_then(|r| r.as_str()).map(str::to_owned))
        .unwrap_or_else(|| "ok".to_owned())
}
