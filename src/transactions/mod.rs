//! Cross-merchant transactions on the points ledger (contract sections 5, 7, 8 and 13): sales,
//! reversals, member tokens, idempotency, the per-partner hash chain and the reads. The
//! gateway is the authority: it judges every amount against the offer in force, computes the
//! points itself, and records each sale once however often a till retries.
//!
//! Framework-free: the HTTP edge parses bodies into the request types here and maps
//! [`TxnError`] to problems.
pub mod arithmetic;
pub mod batch;
pub mod chain;
pub mod idempotency;
pub mod input;
pub mod read;
pub mod record;
pub mod reversal;
pub mod sale;
pub mod tokens;

use crate::config::Settings;
use crate::db::DbError;
use crate::domain::FieldError;
use crate::domain::PartnerCode;
use crate::pki::secrets::MemberKeys;
use chrono::{DateTime, Utc};

/// What a use case needs besides the database connection.
pub struct Ctx<'a> {
    pub settings: &'a Settings,
    pub keys: &'a MemberKeys,
    pub partner: &'a PartnerCode,
    pub now: DateTime<Utc>,
    /// The registry as the request's checks read it (offers come from its cache).
    pub registry: &'a crate::registry::RegistryView,
}

#[derive(Debug, thiserror::Error)]
pub enum TxnError {
    #[error("the request is not valid")]
    Validation(Vec<FieldError>),
    #[error("{0}")]
    Malformed(String),
    #[error("no member matches")]
    MemberNotFound,
    #[error("the member's card is {0}")]
    MemberInactive(String),
    #[error("{0}")]
    MemberAuthenticationRequired(String),
    #[error("{0}")]
    OfferRuleViolation(String),
    #[error("the member has {balance} points; {asked} cannot be redeemed")]
    InsufficientPoints { balance: i64, asked: i64 },
    #[error("partner_txn_id was already recorded")]
    DuplicatePartnerTxnId { txn_id: String },
    #[error("partner_reversal_id was already recorded for this transaction")]
    DuplicatePartnerReversalId { reversal_id: String },
    #[error("this Idempotency-Key was used with another request body")]
    IdempotencyKeyReused,
    #[error("a request with this Idempotency-Key is still being processed")]
    IdempotencyKeyInFlight,
    #[error("no such transaction")]
    TransactionNotFound,
    #[error("the reversal would take back more than the original: {remaining_fen} fen remain reversible")]
    ReversalExceedsOriginal { remaining_fen: i64 },
    #[error("{0}")]
    Forbidden(String),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl crate::store::DbFailure for TxnError {
    fn is_db_failure(&self) -> bool {
        matches!(self, TxnError::Db(_))
    }
}

impl From<diesel::result::Error> for TxnError {
    fn from(e: diesel::result::Error) -> Self {
        TxnError::Db(DbError::Query(e))
    }
}

impl TxnError {
    pub fn validation(field: &str, message: impl Into<String>) -> Self {
        TxnError::Validation(vec![FieldError {
            field: field.to_owned(),
            message: message.into(),
        }])
    }
}

/// A new opaque gateway id: a prefix and 26 base32 characters of randomness (130 bits).
/// Could `s` be an id [`new_id`] made? Anything else (a NUL byte, a 3,000-character path
/// segment) names no record, and is never sent to the database: PostgreSQL refuses a NUL in
/// text outright.
pub fn is_gateway_id(s: &str) -> bool {
    (1..=64).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

pub fn new_id(prefix: &str) -> Result<String, DbError> {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 17];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| DbError::Invariant("no system randomness".into()))?;
    let encoded = data_encoding::BASE32_NOPAD
        .encode(&bytes)
        .to_ascii_lowercase();
    Ok(format!("{prefix}_{}", &encoded[..26]))
}

/// Ledger accounts of a partner: points its customers earned there come out of `issued`;
/// points redeemed there go into `redeemed`.
pub fn issued_account(partner: &str) -> String {
    format!("partner:{partner}:issued")
}

pub fn redeemed_account(partner: &str) -> String {
    format!("partner:{partner}:redeemed")
}

/// The points a sale or reversal moves for one member at one partner: a sale earns
/// (`earned` ≥ 0, credited) and redeems (`redeemed` ≥ 0, debited); a reversal has negative
/// amounts (points clawed back, redeemed points returned).
#[derive(Clone, Copy)]
pub struct PointsMove<'a> {
    pub partner: &'a str,
    pub member_id: i64,
    pub earned: i64,
    pub redeemed: i64,
}

/// The balanced postings of a points move; none when no points move.
pub fn postings<'a>(
    mv: &PointsMove<'_>,
    issued: &'a str,
    redeemed_acc: &'a str,
) -> Vec<crate::db::ledger::Posting<'a>> {
    use crate::db::ledger::{accounts, Posting};
    let PointsMove {
        member_id,
        earned,
        redeemed,
        ..
    } = *mv;
    if earned == 0 && redeemed == 0 {
        return Vec::new();
    }
    let mut postings = vec![Posting {
        account: accounts::MEMBER,
        member_id: Some(member_id),
        amount_points: earned - redeemed,
    }];
    if earned != 0 {
        postings.push(Posting {
            account: issued,
            member_id: None,
            amount_points: -earned,
        });
    }
    if redeemed != 0 {
        postings.push(Posting {
            account: redeemed_acc,
            member_id: None,
            amount_points: redeemed,
        });
    }
    postings
}

/// Posts one balanced journal for a points move; nothing when no points move. Returns the
/// member's change.
pub fn post_points(
    conn: &mut crate::db::DbConn,
    kind: &str,
    reference: &str,
    mv: &PointsMove<'_>,
    now: chrono::NaiveDateTime,
) -> Result<i64, DbError> {
    let (issued, redeemed_acc) = (issued_account(mv.partner), redeemed_account(mv.partner));
    let postings = postings(mv, &issued, &redeemed_acc);
    if postings.is_empty() {
        return Ok(0);
    }
    crate::db::ledger::Ledger::post(conn, kind, reference, &postings, now)?;
    Ok(mv.earned - mv.redeemed)
}

/// A request's Idempotency-Key, the SHA-256 of its body (hex) and its Content-Digest (echoed
/// in receipts as `request_digest`).
#[derive(Clone)]
pub struct Idempotent {
    pub key: String,
    pub request_sha256: String,
    pub request_digest: String,
}

impl Idempotent {
    /// Where the answer is stored: under `partner`'s key, kept `retention_hours`.
    pub fn key<'a>(&'a self, partner: &'a str, retention_hours: u32) -> idempotency::Key<'a> {
        idempotency::Key {
            partner,
            key: &self.key,
            request_sha256: &self.request_sha256,
            retention: chrono::TimeDelta::hours(i64::from(retention_hours)),
        }
    }
}

/// The sale a reversal names: by its gateway id (the route's path) or by the partner's own id
/// (a batch item).
#[derive(Clone)]
pub enum ReversalOf {
    TxnId(String),
    PartnerTxnId(String),
}

pub fn to_json(value: &impl serde::Serialize) -> Result<String, TxnError> {
    serde_json::to_string(value)
        .map_err(|e| TxnError::Db(crate::db::DbError::Invariant(format!("receipt: {e}"))))
}
