//! RFC 9530 Content-Digest with `sha-256` only.
use super::SigError;
use base64::Engine;
use ring::digest;

/// `sha-256=:<base64>:` for `body`.
pub fn content_digest(body: &[u8]) -> String {
    let d = digest::digest(&digest::SHA256, body);
    format!(
        "sha-256=:{}:",
        base64::engine::general_purpose::STANDARD.encode(d.as_ref())
    )
}

/// The SHA-256 a Content-Digest header claims. Other algorithms alone are refused.
pub fn claimed_sha256(header: &str) -> Result<Vec<u8>, SigError> {
    let dict: sfv::Dictionary = sfv::Parser::new(header)
        .parse()
        .map_err(|_| SigError::Digest("Content-Digest is not a structured dictionary".into()))?;
    match dict.get("sha-256") {
        Some(sfv::ListEntry::Item(item)) => match item.bare_item.as_byte_sequence() {
            Some(bytes) if bytes.len() == 32 => Ok(bytes.to_vec()),
            _ => Err(SigError::Digest(
                "Content-Digest sha-256 must be a 32-byte byte sequence".into(),
            )),
        },
        _ => Err(SigError::Digest("Content-Digest must use sha-256".into())),
    }
}

/// True when `claimed` is the SHA-256 of `body`, compared in constant time.
pub fn matches(claimed: &[u8], body: &[u8]) -> bool {
    let actual = digest::digest(&digest::SHA256, body);
    ring_constant_time_eq(claimed, actual.as_ref())
}

fn ring_constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_round_trip_and_other_algorithms_are_refused() {
        // RFC 9530 Appendix B.1: {"hello": "world"}
        let body = b"{\"hello\": \"world\"}";
        assert_eq!(
            content_digest(body),
            "sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:"
        );
        let claimed = claimed_sha256(&content_digest(body)).unwrap();
        assert!(matches(&claimed, body));
        assert!(!matches(&claimed, b"{\"hello\": \"World\"}"));
        assert!(claimed_sha256("sha-512=:AAAA:").is_err());
        assert!(claimed_sha256("not a dict ((").is_err());
    }
}
