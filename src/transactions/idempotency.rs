//! Exactly once (contract sections 5 and 13): a successful answer is stored under the
//! partner's Idempotency-Key in the same transaction as the change it describes. A repeat with
//! a byte-identical body gets the stored answer; another body gets `idempotency-key-reused`.
//!
//! A repeat that arrives while the first is still running is refused here with
//! `idempotency-key-in-flight` at once, holding nothing; the caller tries again for a while
//! (`record::until_settled`) and then replays the first one's answer, so a till that retries
//! quickly still gets one transaction and identical answers. On SQLite the single writer
//! already orders them; on PostgreSQL a per-key advisory lock does.
use super::TxnError;
use crate::db::idempotency_keys::{StoredAnswer, StoredResponse};
use crate::db::{in_transaction, locks, write_tx, DbConn};
use chrono::{NaiveDateTime, TimeDelta};

/// A stored or fresh answer: status and the exact body bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    pub body: String,
    /// True when this is the stored answer of an earlier request.
    pub replayed: bool,
}

/// Where an idempotent request is stored.
pub struct Key<'a> {
    pub partner: &'a str,
    pub key: &'a str,
    /// SHA-256 (hex) of the request body as received (of the canonical item, for batch items).
    pub request_sha256: &'a str,
    pub retention: TimeDelta,
}

/// Takes the per-key lock (PostgreSQL) without waiting, and returns the live answer stored
/// under the key, if any: both in one round trip. Another request holding the key is
/// `idempotency-key-in-flight`.
fn lock_and_find(
    conn: &mut DbConn,
    key: &Key<'_>,
    now: NaiveDateTime,
) -> Result<Option<StoredAnswer>, TxnError> {
    let lock = locks::idempotency(key.partner, key.key);
    StoredResponse::try_lock_and_find(conn, lock, key.partner, key.key, now)?
        .ok_or(TxnError::IdempotencyKeyInFlight)
}

/// Runs `work` once per key, in one write transaction with the stored answer: a failed
/// `work` stores nothing and changes nothing. Inside a transaction that is already open (a
/// group-commit job) it runs in that transaction, whose savepoint the caller rolls back when
/// this fails.
pub fn once(
    conn: &mut DbConn,
    key: &Key<'_>,
    now: NaiveDateTime,
    work: impl FnOnce(&mut DbConn) -> Result<(u16, String), TxnError>,
) -> Result<Answer, TxnError> {
    // In a group-commit batch the job's own savepoint already undoes a failure; a second one
    // here would only cost two more statements.
    if in_transaction(conn) {
        return once_in(conn, key, now, work);
    }
    write_tx(conn, |conn| once_in(conn, key, now, work))
}

fn once_in(
    conn: &mut DbConn,
    key: &Key<'_>,
    now: NaiveDateTime,
    work: impl FnOnce(&mut DbConn) -> Result<(u16, String), TxnError>,
) -> Result<Answer, TxnError> {
    {
        if let Some(stored) = lock_and_find(conn, key, now)? {
            return replay(key, stored);
        }
        let (status, body) = work(conn)?;
        if (200..300).contains(&status) {
            StoredResponse::store(
                conn,
                &StoredResponse {
                    partner_code: key.partner.to_owned(),
                    idempotency_key: key.key.to_owned(),
                    request_sha256: key.request_sha256.to_owned(),
                    response_status: i32::from(status),
                    response_body: body.clone(),
                    created_at: now,
                    expires_at: now + key.retention,
                },
            )?;
        }
        Ok(Answer {
            status,
            body,
            replayed: false,
        })
    }
}

/// The answer to a repeat under `key`, whose stored answer was found: the stored status and
/// body for a byte-identical request, `idempotency-key-reused` for another.
pub fn replay(key: &Key<'_>, stored: StoredAnswer) -> Result<Answer, TxnError> {
    if stored.request_sha256 != key.request_sha256 {
        return Err(TxnError::IdempotencyKeyReused);
    }
    Ok(Answer {
        status: u16::try_from(stored.response_status).unwrap_or(200),
        body: stored.response_body,
        replayed: true,
    })
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(ring::digest::digest(&ring::digest::SHA256, bytes))
}
