use super::ParseError;

/// Membership tiers. Imports may use the Chinese labels; the API always says the English name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Tier {
    Regular,
    Silver,
    Gold,
    Platinum,
}

impl Tier {
    pub const ALL: [Tier; 4] = [Tier::Regular, Tier::Silver, Tier::Gold, Tier::Platinum];

    pub fn parse(s: &str) -> Result<Self, ParseError> {
        match s.trim() {
            "regular" | "普通" => Ok(Tier::Regular),
            "silver" | "银卡" => Ok(Tier::Silver),
            "gold" | "金卡" => Ok(Tier::Gold),
            "platinum" | "铂金卡" => Ok(Tier::Platinum),
            other => Err(ParseError::new(format!(
                "unknown tier {other:?} (expected regular, silver, gold, platinum or 普通, 银卡, 金卡, 铂金卡)"
            ))),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Regular => "regular",
            Tier::Silver => "silver",
            Tier::Gold => "gold",
            Tier::Platinum => "platinum",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MemberStatus {
    Active,
    Frozen,
    Closed,
}

impl MemberStatus {
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        match s.trim() {
            "active" => Ok(MemberStatus::Active),
            "frozen" => Ok(MemberStatus::Frozen),
            "closed" => Ok(MemberStatus::Closed),
            other => Err(ParseError::new(format!(
                "unknown status {other:?} (expected active, frozen or closed)"
            ))),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            MemberStatus::Active => "active",
            MemberStatus::Frozen => "frozen",
            MemberStatus::Closed => "closed",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiers_parse_in_english_and_chinese() {
        assert_eq!(Tier::parse("铂金卡").unwrap(), Tier::Platinum);
        assert_eq!(Tier::parse("silver").unwrap(), Tier::Silver);
        assert_eq!(Tier::parse("普通").unwrap().as_str(), "regular");
        assert!(Tier::parse("diamond").is_err());
    }
}
