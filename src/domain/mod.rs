//! Parsed values: once a value of these types exists, it is valid ("parse, don't validate").
mod card_no;
pub mod day;
mod identity;
mod member;
mod money;
mod partner_code;
mod phone;
pub mod terms;

pub use card_no::CardNo;
pub use identity::{FinanceName, Identity};
pub use member::{MemberStatus, Tier};
pub use money::{Fen, Points};
pub use partner_code::PartnerCode;
pub use phone::Phone;

/// One field's error in a `validation-failed` problem: the field's path and what is wrong,
/// never the value sent (it may be a card or phone number).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

/// Why a value was refused, in words fit for a problem `detail` or an import report.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ParseError(pub String);

impl ParseError {
    pub fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }
}
