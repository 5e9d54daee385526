//! Parse, don't validate: request bodies become typed values or a list of field errors
//! (contract sections 5, 7 and 13). Nothing is looked up here.
use super::TxnError;
use crate::domain::CardNo;
use crate::domain::FieldError;
use chrono::{DateTime, TimeDelta, Utc};
use serde::Deserialize;

/// The largest gross the contract allows at all (¥100,000,000); the configured maximum
/// (`ALLIANCE_MAX_TXN_FEN`) is usually far lower.
pub const MAX_GROSS_FEN: i64 = 10_000_000_000;
/// A bound on redeem points, so no product of them can approach i64 (10¹² points).
pub const MAX_REDEEM_POINTS: i64 = 1_000_000_000_000;
/// `occurred_at` may be this far in the future (a till's clock running ahead).
pub const MAX_FUTURE_S: i64 = 300;
/// Reversal reasons are free text, bounded.
pub const MAX_REASON_CHARS: usize = 200;

/// `[A-Za-z0-9][A-Za-z0-9._:/-]{0,63}`: partner_txn_id, partner_reversal_id, store_id.
pub fn is_partner_id(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 64
        && b[0].is_ascii_alphanumeric()
        && b[1..]
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b':' | b'/' | b'-'))
}

/// Idempotency keys: 8–64 characters of `[A-Za-z0-9._:-]`.
pub fn parse_idempotency_key(header: Option<&str>) -> Result<String, TxnError> {
    match header {
        Some(k)
            if (8..=64).contains(&k.len())
                && k.bytes().all(|c| {
                    c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b':' | b'-')
                }) =>
        {
            Ok(k.to_owned())
        }
        Some(_) => Err(TxnError::Malformed(
            "Idempotency-Key must be 8–64 characters of A-Z a-z 0-9 . _ : -".into(),
        )),
        None => Err(TxnError::Malformed(
            "this request needs an Idempotency-Key header".into(),
        )),
    }
}

/// How a sale names its member.
#[derive(Debug, Clone)]
pub enum MemberName {
    Card(CardNo),
    Ref(String),
}

/// A sale as sent (`POST /v1/transactions` and batch items).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SaleRequest {
    pub partner_txn_id: String,
    pub card_no: Option<String>,
    pub member_ref: Option<String>,
    pub store_id: String,
    pub occurred_at: String,
    pub gross_fen: i64,
    #[serde(default)]
    pub discount_fen: i64,
    #[serde(default)]
    pub redeem_points: i64,
    pub member_token: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Sale {
    pub partner_txn_id: String,
    pub member: MemberName,
    pub store_id: String,
    pub occurred_at: DateTime<Utc>,
    pub gross_fen: i64,
    pub discount_fen: i64,
    pub redeem_points: i64,
    pub member_token: Option<String>,
}

/// A reversal as sent (`POST /v1/transactions/{txn_id}/reversals`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReversalRequest {
    pub partner_reversal_id: String,
    pub gross_fen: i64,
    pub reason: String,
    pub occurred_at: Option<String>,
}

#[derive(Debug, Clone)]
pub struct ReversalInput {
    pub partner_reversal_id: String,
    pub gross_fen: i64,
    pub reason: String,
    /// None: when it is received.
    pub occurred_at: Option<DateTime<Utc>>,
}

/// Field errors, collected so a partner sees every problem at once.
#[derive(Default)]
struct Errors(Vec<FieldError>);

impl Errors {
    fn add(&mut self, field: &str, message: impl Into<String>) {
        self.0.push(FieldError {
            field: field.to_owned(),
            message: message.into(),
        });
    }

    fn finish<T>(self, value: impl FnOnce() -> T) -> Result<T, TxnError> {
        if self.0.is_empty() {
            Ok(value())
        } else {
            Err(TxnError::Validation(self.0))
        }
    }
}

/// The time window `occurred_at` must fall in: at most 5 minutes ahead of `now`, at most the
/// backdate window behind it.
fn check_time(
    errors: &mut Errors,
    field: &str,
    value: &str,
    now: DateTime<Utc>,
    max_backdate_days: u32,
) -> Option<DateTime<Utc>> {
    let t = match crate::domain::day::parse_rfc3339(value) {
        Ok(t) => t,
        Err(e) => {
            errors.add(field, e.to_string());
            return None;
        }
    };
    let t = t.with_timezone(&Utc);
    if t > now + TimeDelta::seconds(MAX_FUTURE_S) {
        errors.add(field, "is more than 5 minutes in the future");
        return None;
    }
    if t < now - TimeDelta::days(i64::from(max_backdate_days)) {
        errors.add(
            field,
            format!("is older than the {max_backdate_days}-day backdate window"),
        );
        return None;
    }
    Some(t)
}

fn check_gross(errors: &mut Errors, gross_fen: i64, max_txn_fen: i64) {
    let max = max_txn_fen.min(MAX_GROSS_FEN);
    if !(1..=max).contains(&gross_fen) {
        errors.add("gross_fen", format!("must be between 1 and {max}"));
    }
}

impl SaleRequest {
    pub fn parse(
        self,
        now: DateTime<Utc>,
        max_backdate_days: u32,
        max_txn_fen: i64,
    ) -> Result<Sale, TxnError> {
        let mut e = Errors::default();
        if !is_partner_id(&self.partner_txn_id) {
            e.add(
                "partner_txn_id",
                "must match [A-Za-z0-9][A-Za-z0-9._:/-]{0,63}",
            );
        }
        if !is_partner_id(&self.store_id) {
            e.add("store_id", "must match [A-Za-z0-9][A-Za-z0-9._:/-]{0,63}");
        }
        let member = match (self.card_no, self.member_ref) {
            (Some(c), None) => match CardNo::parse(&c) {
                Ok(card) => Some(MemberName::Card(card)),
                Err(err) => {
                    e.add("card_no", err.to_string());
                    None
                }
            },
            (None, Some(r)) => {
                if r.len() == 26
                    && r.bytes()
                        .all(|b| b.is_ascii_uppercase() || (b'2'..=b'7').contains(&b))
                {
                    Some(MemberName::Ref(r))
                } else {
                    e.add(
                        "member_ref",
                        "must be the 26-character ref this partner received from verify",
                    );
                    None
                }
            }
            _ => {
                e.add("card_no", "give exactly one of card_no or member_ref");
                None
            }
        };
        let occurred_at = check_time(
            &mut e,
            "occurred_at",
            &self.occurred_at,
            now,
            max_backdate_days,
        );
        check_gross(&mut e, self.gross_fen, max_txn_fen);
        if self.discount_fen < 0 {
            e.add("discount_fen", "must be 0 or more");
        } else if self.discount_fen > self.gross_fen.max(0) {
            e.add("discount_fen", "must not exceed gross_fen");
        }
        if !(0..=MAX_REDEEM_POINTS).contains(&self.redeem_points) {
            e.add(
                "redeem_points",
                format!("must be between 0 and {MAX_REDEEM_POINTS}"),
            );
        }
        // A member_token of any form is taken as sent: one the gateway never issued (a typo, a
        // code with a dash) is simply not valid, which a redemption answers with
        // `member-authentication-required` in its turn (contract section 5), and a sale that
        // redeems nothing ignores.
        e.finish(|| Sale {
            partner_txn_id: self.partner_txn_id,
            member: member.unwrap_or(MemberName::Ref(String::new())),
            store_id: self.store_id,
            occurred_at: occurred_at.unwrap_or(now),
            gross_fen: self.gross_fen,
            discount_fen: self.discount_fen,
            redeem_points: self.redeem_points,
            member_token: self.member_token,
        })
    }
}

impl ReversalRequest {
    pub fn parse(
        self,
        now: DateTime<Utc>,
        max_backdate_days: u32,
        max_txn_fen: i64,
    ) -> Result<ReversalInput, TxnError> {
        let mut e = Errors::default();
        if !is_partner_id(&self.partner_reversal_id) {
            e.add(
                "partner_reversal_id",
                "must match [A-Za-z0-9][A-Za-z0-9._:/-]{0,63}",
            );
        }
        check_gross(&mut e, self.gross_fen, max_txn_fen);
        if self.reason.trim().is_empty()
            || self.reason.chars().count() > MAX_REASON_CHARS
            || self.reason.chars().any(char::is_control)
        {
            e.add(
                "reason",
                format!("must be 1–{MAX_REASON_CHARS} characters without control characters"),
            );
        }
        let occurred_at = match &self.occurred_at {
            Some(v) => check_time(&mut e, "occurred_at", v, now, max_backdate_days),
            None => None,
        };
        e.finish(|| ReversalInput {
            partner_reversal_id: self.partner_reversal_id,
            gross_fen: self.gross_fen,
            reason: self.reason,
            occurred_at,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partner_ids_follow_the_contract() {
        assert!(is_partner_id("POS-7/2026:0001_a.b"));
        assert!(!is_partner_id(""));
        assert!(!is_partner_id("-starts-with-dash"));
        assert!(!is_partner_id(&"a".repeat(65)));
        assert!(is_partner_id(&"a".repeat(64)));
        assert!(!is_partner_id("has space"));
    }

    #[test]
    fn idempotency_keys_are_bounded() {
        assert!(parse_idempotency_key(Some("abcd-1234")).is_ok());
        assert!(parse_idempotency_key(Some("short")).is_err());
        assert!(parse_idempotency_key(Some(&"k".repeat(65))).is_err());
        assert!(parse_idempotency_key(Some("bad key!")).is_err());
        assert!(parse_idempotency_key(None).is_err());
    }
}
