use super::ParseError;

/// A membership card number: 6–32 ASCII letters or digits. Never logged, never returned.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct CardNo(String);

impl CardNo {
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        let ok = (6..=32).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric());
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(ParseError::new("card_no must be 6 to 32 letters or digits"))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Redacted on purpose: a card number must never reach a log line through `{:?}`.
impl std::fmt::Debug for CardNo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CardNo(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn card_numbers_are_checked_and_never_printed() {
        let c = CardNo::parse("8800123456").unwrap();
        assert_eq!(format!("{c:?}"), "CardNo(<redacted>)");
        assert!(CardNo::parse("12345").is_err());
        assert!(CardNo::parse("8800 123456").is_err());
    }
}
