use super::ParseError;

/// A phone number normalised to digits: mainland numbers as 11 digits (with or without `+86`),
/// others as their international digits. Only ever stored as a keyed hash.
#[derive(Clone, PartialEq, Eq)]
pub struct Phone(String);

impl Phone {
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        let trimmed = s.trim();
        let international = trimmed.starts_with('+') || trimmed.starts_with("00");
        if !trimmed
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '+' | ' ' | '-' | '(' | ')'))
        {
            return Err(ParseError::new(
                "phone may hold only digits, spaces, + - ( )",
            ));
        }
        let mut digits: String = trimmed.chars().filter(|c| c.is_ascii_digit()).collect();
        if trimmed.starts_with("00") {
            digits.drain(..2);
        }
        // Mainland numbers: 1xxxxxxxxxx, optionally prefixed by the country code 86.
        if digits.len() == 13 && digits.starts_with("86") && digits.as_bytes()[2] == b'1' {
            digits.drain(..2);
            return Ok(Self(digits));
        }
        if digits.len() == 11 && digits.starts_with('1') && !international {
            return Ok(Self(digits));
        }
        if international && (8..=15).contains(&digits.len()) {
            return Ok(Self(format!("+{digits}")));
        }
        Err(ParseError::new(
            "phone must be a mainland mobile number (11 digits, optional +86) or an international number",
        ))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Phone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Phone(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mainland_numbers_normalise_with_or_without_country_code() {
        for raw in [
            "13800138000",
            "+86 138-0013-8000",
            "+8613800138000",
            "008613800138000",
        ] {
            assert_eq!(Phone::parse(raw).unwrap().as_str(), "13800138000", "{raw}");
        }
        assert_eq!(
            Phone::parse("+852 9123 4567").unwrap().as_str(),
            "+85291234567"
        );
        assert!(Phone::parse("12345").is_err());
        assert!(Phone::parse("138abc").is_err());
    }
}
