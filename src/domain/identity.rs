use super::{ParseError, PartnerCode};
use std::fmt;

/// A finance user's name: `[a-z0-9][a-z0-9._-]{1,31}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FinanceName(String);

impl FinanceName {
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        let b = s.as_bytes();
        let ok = (2..=32).contains(&b.len())
            && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
            && b[1..].iter().all(|c| {
                c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'.' | b'_' | b'-')
            });
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(ParseError::new(format!(
                "finance name {s:?} must match [a-z0-9][a-z0-9._-]{{1,31}}"
            )))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Who is calling, as named by the one `urn:alliance:` URI SAN of the client certificate.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Identity {
    Partner(PartnerCode),
    Finance(FinanceName),
}

const PARTNER_PREFIX: &str = "urn:alliance:partner:";
const FINANCE_PREFIX: &str = "urn:alliance:finance:";

impl Identity {
    /// Parses `urn:alliance:partner:<CODE>` or `urn:alliance:finance:<NAME>`.
    pub fn from_urn(urn: &str) -> Result<Self, ParseError> {
        if let Some(code) = urn.strip_prefix(PARTNER_PREFIX) {
            Ok(Identity::Partner(PartnerCode::parse(code)?))
        } else if let Some(name) = urn.strip_prefix(FINANCE_PREFIX) {
            Ok(Identity::Finance(FinanceName::parse(name)?))
        } else {
            Err(ParseError::new("not an urn:alliance identity"))
        }
    }

    pub fn urn(&self) -> String {
        match self {
            Identity::Partner(code) => format!("{PARTNER_PREFIX}{code}"),
            Identity::Finance(name) => format!("{FINANCE_PREFIX}{}", name.as_str()),
        }
    }

    /// The prefix of this identity's signing key ids: `<CODE>` or `finance:<NAME>`.
    pub fn key_id_prefix(&self) -> String {
        match self {
            Identity::Partner(code) => code.to_string(),
            Identity::Finance(name) => format!("finance:{}", name.as_str()),
        }
    }

    /// True when the URI SAN is in the alliance's namespace at all (valid or not).
    pub fn is_alliance_urn(urn: &str) -> bool {
        urn.starts_with("urn:alliance:")
    }
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.urn())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urns_round_trip() {
        let p = Identity::from_urn("urn:alliance:partner:P-RST-001").unwrap();
        assert_eq!(p.urn(), "urn:alliance:partner:P-RST-001");
        assert_eq!(p.key_id_prefix(), "P-RST-001");
        let f = Identity::from_urn("urn:alliance:finance:alice.w").unwrap();
        assert_eq!(f.key_id_prefix(), "finance:alice.w");
        assert!(Identity::from_urn("urn:alliance:partner:bad").is_err());
        assert!(Identity::from_urn("urn:other:x").is_err());
    }
}
