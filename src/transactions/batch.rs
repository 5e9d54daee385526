//! `POST /v1/transactions/batch`: 1–500 sales and reversals from a till that was offline,
//! processed in order, each standing alone with its own Idempotency-Key. A reversal item
//! names its sale by `partner_txn_id`, which may be an earlier item of the same batch.
use super::idempotency::{self, Answer, Key};
use super::input::{parse_idempotency_key, ReversalRequest, SaleRequest};
use super::reversal::{self, Original};
use super::{sale, Ctx, TxnError};
use crate::db::DbConn;
use base64::Engine;
use chrono::TimeDelta;
use serde_json::Value;

pub const MAX_ITEMS: usize = 500;

/// One item's outcome, in request order.
pub struct ItemOutcome {
    pub index: usize,
    pub result: Result<Answer, TxnError>,
}

/// Checks the envelope: `{"items":[…]}` with 1–500 items.
pub fn items(body: Value) -> Result<Vec<Value>, TxnError> {
    let Value::Object(mut map) = body else {
        return Err(TxnError::validation(
            "items",
            "the body must be {\"items\":[…]}",
        ));
    };
    if map.keys().any(|k| k != "items") {
        return Err(TxnError::validation(
            "items",
            "the body must hold only \"items\"",
        ));
    }
    match map.remove("items") {
        Some(Value::Array(items)) if (1..=MAX_ITEMS).contains(&items.len()) => Ok(items),
        Some(Value::Array(_)) => Err(TxnError::validation(
            "items",
            format!("a batch holds 1 to {MAX_ITEMS} items"),
        )),
        _ => Err(TxnError::validation("items", "must be an array")),
    }
}

/// Processes every item in order; one item's failure never affects another.
pub fn run(conn: &mut DbConn, ctx: &Ctx<'_>, items: Vec<Value>) -> Vec<ItemOutcome> {
    items
        .into_iter()
        .enumerate()
        .map(|(index, item)| ItemOutcome {
            index,
            result: one(conn, ctx, item),
        })
        .collect()
}

fn one(conn: &mut DbConn, ctx: &Ctx<'_>, item: Value) -> Result<Answer, TxnError> {
    // The item's digest covers the whole item, kind and idempotency_key included, in RFC 8785
    // canonical form, so "the same item" does not depend on key order or spacing.
    let canonical = serde_json_canonicalizer::to_vec(&item)
        .map_err(|e| TxnError::Malformed(format!("item: {e}")))?;
    let sha = ring::digest::digest(&ring::digest::SHA256, &canonical);
    let request_digest = format!(
        "sha-256=:{}:",
        base64::engine::general_purpose::STANDARD.encode(sha.as_ref())
    );
    let request_sha256 = hex::encode(sha.as_ref());
    let Value::Object(mut fields) = item else {
        return Err(TxnError::validation("items", "each item must be an object"));
    };
    let kind = fields.remove("kind");
    let key = fields.remove("idempotency_key");
    let key = parse_idempotency_key(key.as_ref().and_then(Value::as_str))
        .map_err(|e| TxnError::validation("idempotency_key", e.to_string()))?;
    let s = ctx.settings;
    let idem = Key {
        partner: ctx.partner.as_str(),
        key: &key,
        request_sha256: &request_sha256,
        retention: TimeDelta::hours(i64::from(s.idempotency_retention_hours)),
        in_flight_wait_ms: idempotency::IN_FLIGHT_WAIT_MS,
    };
    let now = crate::db::now_utc();
    match kind.as_ref().and_then(Value::as_str) {
        Some("sale") => {
            let req: SaleRequest = crate::json_shape::from_value(Value::Object(fields))
                .map_err(|(field, message)| TxnError::validation(&field, message))?;
            let parsed = req.parse(ctx.now, s.max_backdate_days, s.max_txn_fen)?;
            idempotency::once(conn, &idem, now, |conn| {
                let receipt = sale::record(conn, ctx, &parsed, &request_digest)?;
                Ok((201, to_json(&receipt)?))
            })
        }
        Some("reversal") => {
            let partner_txn_id = match fields.remove("partner_txn_id") {
                Some(Value::String(id)) => id,
                _ => {
                    return Err(TxnError::validation(
                        "partner_txn_id",
                        "a reversal item names its sale by partner_txn_id",
                    ))
                }
            };
            let req: ReversalRequest = crate::json_shape::from_value(Value::Object(fields))
                .map_err(|(field, message)| TxnError::validation(&field, message))?;
            let parsed = req.parse(ctx.now, s.max_backdate_days, s.max_txn_fen)?;
            idempotency::once(conn, &idem, now, |conn| {
                let receipt = reversal::record(
                    conn,
                    ctx,
                    Original::PartnerTxnId(&partner_txn_id),
                    &parsed,
                    &request_digest,
                )?;
                Ok((201, to_json(&receipt)?))
            })
        }
        _ => Err(TxnError::validation(
            "kind",
            "must be \"sale\" or \"reversal\"",
        )),
    }
}

pub fn to_json(value: &impl serde::Serialize) -> Result<String, TxnError> {
    serde_json::to_string(value)
        .map_err(|e| TxnError::Db(crate::db::DbError::Invariant(format!("receipt: {e}"))))
}
