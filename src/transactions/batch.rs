//! `POST /v1/transactions/batch`: 1–500 sales and reversals from a till that was offline,
//! processed in order, each standing alone with its own Idempotency-Key. A reversal item
//! names its sale by `partner_txn_id`, which may be an earlier item of the same batch.
use super::idempotency::Answer;
use super::input::{parse_idempotency_key, ReversalInput, ReversalRequest, Sale, SaleRequest};
use super::{Ctx, TxnError};
use super::{Idempotent, ReversalOf};
use base64::Engine;
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

/// A batch item, parsed: what the single request of its kind would carry.
pub enum Item {
    Sale(Sale, Idempotent),
    Reversal(ReversalOf, ReversalInput, Idempotent),
}

/// Parses one item (`record::record_batch` records it). Its digest covers the whole item,
/// `kind` and `idempotency_key` included, in RFC 8785 canonical form, so "the same item" does
/// not depend on key order or spacing.
pub fn parse_item(ctx: &Ctx<'_>, item: Value) -> Result<Item, TxnError> {
    let canonical = serde_json_canonicalizer::to_vec(&item)
        .map_err(|e| TxnError::Malformed(format!("item: {e}")))?;
    let sha = ring::digest::digest(&ring::digest::SHA256, &canonical);
    let Value::Object(mut fields) = item else {
        return Err(TxnError::validation("items", "each item must be an object"));
    };
    let kind = fields.remove("kind");
    let key = fields.remove("idempotency_key");
    let key = parse_idempotency_key(key.as_ref().and_then(Value::as_str))
        .map_err(|e| TxnError::validation("idempotency_key", e.to_string()))?;
    let idem = Idempotent {
        key,
        request_sha256: hex::encode(sha.as_ref()),
        request_digest: format!(
            "sha-256=:{}:",
            base64::engine::general_purpose::STANDARD.encode(sha.as_ref())
        ),
    };
    let s = ctx.settings;
    match kind.as_ref().and_then(Value::as_str) {
        Some("sale") => {
            let req: SaleRequest = crate::json_shape::from_value(Value::Object(fields))
                .map_err(|(field, message)| TxnError::validation(&field, message))?;
            let sale = req.parse(ctx.now, s.max_backdate_days, s.max_txn_fen)?;
            Ok(Item::Sale(sale, idem))
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
            let input = req.parse(ctx.now, s.max_backdate_days, s.max_txn_fen)?;
            Ok(Item::Reversal(
                ReversalOf::PartnerTxnId(partner_txn_id),
                input,
                idem,
            ))
        }
        _ => Err(TxnError::validation(
            "kind",
            "must be \"sale\" or \"reversal\"",
        )),
    }
}
