//! An offer version's terms: what the gateway judges transactions and settles by.
use crate::domain::Tier;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TierMap {
    pub regular: i64,
    pub silver: i64,
    pub gold: i64,
    pub platinum: i64,
}

impl TierMap {
    pub fn get(&self, tier: Tier) -> i64 {
        match tier {
            Tier::Regular => self.regular,
            Tier::Silver => self.silver,
            Tier::Gold => self.gold,
            Tier::Platinum => self.platinum,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberDay {
    pub day_of_month: u32,
    pub multiplier_bps: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Redeem {
    pub enabled: bool,
    /// 0 when redemption is disabled.
    pub fen_per_point: i64,
    pub max_share_bps: i64,
    pub requires_member_token: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Offer {
    pub discount_bps: TierMap,
    pub discount_cap_fen: i64,
    pub min_spend_fen: i64,
    pub earn_points_per_yuan: i64,
    pub tier_multiplier_bps: TierMap,
    pub member_day: Option<MemberDay>,
    /// 10000 when the spec leaves it out: no birthday bonus.
    pub birthday_month_multiplier_bps: i64,
    pub redeem: Redeem,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SettlementTerms {
    pub issue_fee_fen_per_1000_points: i64,
    pub redeem_reimburse_fen_per_1000_points: i64,
    pub discount_subsidy_bps: i64,
    pub commission_bps: i64,
}

/// `[offer]` and `[settlement]` together: a change to either makes a new offer version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Terms {
    pub offer: Offer,
    pub settlement: SettlementTerms,
}

/// 10000 basis points = ×1.
pub const BPS_ONE: i64 = 10_000;

impl Offer {
    /// The member-day multiplier on local date `day_of_month`.
    pub fn day_bps(&self, day_of_month: u32) -> i64 {
        match &self.member_day {
            Some(md) if md.day_of_month == day_of_month => md.multiplier_bps,
            _ => BPS_ONE,
        }
    }

    /// `floor(tier_bps × day_bps × birth_bps / 10000²)`, in i128 so it cannot wrap.
    pub fn earn_multiplier_bps(&self, tier: Tier, day_bps: i64, birth_bps: i64) -> i64 {
        let product = i128::from(self.tier_multiplier_bps.get(tier))
            * i128::from(day_bps)
            * i128::from(birth_bps)
            / (i128::from(BPS_ONE) * i128::from(BPS_ONE));
        i64::try_from(product).unwrap_or(i64::MAX)
    }
}
