use super::ParseError;
use std::fmt;

/// A partner code: `[A-Z0-9][A-Z0-9-]{2,31}` (contract section 2).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PartnerCode(String);

impl PartnerCode {
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        let bytes = s.as_bytes();
        let ok = (3..=32).contains(&bytes.len())
            && (bytes[0].is_ascii_uppercase() || bytes[0].is_ascii_digit())
            && bytes[1..]
                .iter()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || *b == b'-');
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(ParseError::new(format!(
                "partner code {s:?} must match [A-Z0-9][A-Z0-9-]{{2,31}}"
            )))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PartnerCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_contract_examples_and_refuses_others() {
        assert!(PartnerCode::parse("P-RST-001").is_ok());
        assert!(PartnerCode::parse("MALL").is_ok());
        assert!(PartnerCode::parse("p-rst").is_err());
        assert!(PartnerCode::parse("-AB").is_err());
        assert!(PartnerCode::parse("AB").is_err());
        assert!(PartnerCode::parse(&"A".repeat(33)).is_err());
    }
}
