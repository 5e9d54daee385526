//! RFC 9421 HTTP message signatures and RFC 9530 Content-Digest, profile `alliance-sig-v1`,
//! with no HTTP framework in sight: callers describe a message as a [`Message`].
pub mod base;
pub mod digest;
pub mod input;
pub mod sign;

pub use base::{signature_base, Message};
pub use input::{parse_request_signature, Component, SignatureInput};

/// Why a signature (or digest) was refused, before any key was looked up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SigError {
    #[error("the request carries no Signature-Input and Signature headers")]
    Missing,
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Digest(String),
}

/// The limits of the profile.
pub const MAX_CLOCK_SKEW_S: i64 = 300;
/// Nonces are remembered this long after `created`: longer than any accepted skew.
pub const NONCE_RETENTION_S: i64 = 900;
pub const NONCE_MIN_LEN: usize = 16;
pub const NONCE_MAX_LEN: usize = 128;
/// Signature-Input and Signature header values longer than this are refused unparsed.
pub const MAX_SIGNATURE_HEADER_LEN: usize = 8 * 1024;
